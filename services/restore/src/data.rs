//! Data checks of a restored database: PostgreSQL (RDS PostgreSQL, Aurora PostgreSQL) and
//! MySQL (RDS MySQL, RDS MariaDB, Aurora MySQL). The restore step logs in over TLS with a
//! password it has just set, and proves the data is there and how fresh it is, not only
//! that the instance came up.
//!
//! - built-in: the database answers, and the catalogue lists its tables with their
//!   estimated row counts (cheap on any size: PostgreSQL's `pg_class.reltuples`, MySQL's
//!   `information_schema.TABLES`; a small table whose estimate cannot be trusted is counted
//!   exactly, a large one left unknown);
//! - configured per database: tables that must exist and hold rows, and probes, SQL that
//!   returns one number or one timestamp, each with an expectation;
//! - the data recovery point: the snapshot's time minus the newest timestamp a freshness
//!   probe returns;
//! - against the source (where the share step measured it, see [`compare`]): the same
//!   tables, and the rows within a tolerance.
//!
//! Every statement runs in its own read-only transaction under a statement time limit.
//! Results carry counts and timestamps only, never row data: a probe whose value is neither
//! is reported as such, and a database error is reported with its message only where the
//! server's message cannot quote data (undefined objects, syntax, access, the time limit).
//! Logging in and reading the catalogue is [`snapferry_data`]'s, which the share step uses
//! on the source too, so both count the same way.

pub use snapferry_data::{
    Connection, Engine, NotReached, Password, Session, TableStat, Target, Tls, connect_mysql, connect_postgres,
    tls_config,
};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use regex::Regex;
use serde::Deserialize;
use snapferry::error::{Error, Result};
use snapferry::events::SourceComparison;
use snapferry::tags::{RestoredFigures, SourceFigures, timestamp_value};
use std::time::Duration;

/// How long one restore test's data checks may take in all, whatever the database holds
/// (each statement has its own limit too): well within the restore function's timeout. A
/// check not finished by then fails with that reason.
pub const TOTAL_LIMIT: Duration = Duration::from_secs(120);

/// How far a restore's rows may be from its source's by default: the source is measured
/// when its snapshot is shared, minutes after it was taken, and keeps changing meanwhile.
pub const DEFAULT_ROW_TOLERANCE_PERCENT: f64 = 10.0;

/// How far a restore's rows may fall below the previous good copy's by default before the
/// copy is reported suspicious: a database that loses half its rows between two backups is
/// rarely one that meant to.
pub const DEFAULT_ROWS_DROP_PERCENT: f64 = 50.0;

/// `DATA_CHECKS`: which databases are checked and how.
#[derive(Debug, Clone, Default)]
pub struct DataChecks {
    pub databases: Vec<DatabaseChecks>,
}

/// The checks of the restores of the resources `resources` matches (the first matching
/// entry applies; a restore no entry matches gets the built-in checks only).
#[derive(Debug, Clone)]
pub struct DatabaseChecks {
    pub resources: Regex,
    /// The database to log in to; the restored resource's `DBName`, else `postgres`
    /// (PostgreSQL) or none (MySQL: every database is listed).
    pub database: Option<String>,
    /// `schema.table` names that must exist and hold rows (MySQL: `database.table`).
    pub tables: Vec<String>,
    pub probes: Vec<Probe>,
    /// How far the restore's rows may be from the source's, in percent, where the copy
    /// carries the source's figures; `None`: not compared.
    pub compare_with_source: Option<f64>,
    /// How far the restore's rows may fall below the previous good copy's, in percent,
    /// before the copy is suspicious; `None`: not compared.
    pub compare_with_previous: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub name: String,
    pub sql: String,
    pub expect: Expect,
}

/// What a probe's one value must be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Expect {
    AtLeast(f64),
    AtMost(f64),
    /// A timestamp at most this old at the snapshot's time (and not after it).
    NoOlderThan(chrono::Duration),
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::AtLeast(n) => write!(f, ">= {n}"),
            Expect::AtMost(n) => write!(f, "<= {n}"),
            Expect::NoOlderThan(d) => write!(f, "a timestamp at most {} minutes before the snapshot", d.num_minutes()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChecks {
    #[serde(default)]
    databases: Vec<RawDatabase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    resources: Option<String>,
    database: Option<String>,
    #[serde(default)]
    tables: Vec<String>,
    #[serde(default)]
    probes: Vec<RawProbe>,
    /// `false`, `true`, or `{"row_tolerance_percent": N}`; absent: `true`.
    compare_with_source: Option<serde_json::Value>,
    /// `false`, `true`, or `{"rows_drop_percent": N}`; absent: `true`.
    compare_with_previous: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    name: String,
    sql: String,
    min: Option<f64>,
    max: Option<f64>,
    max_age_minutes: Option<u32>,
}

impl DataChecks {
    /// Parses and validates `DATA_CHECKS`; every error names the entry at fault.
    pub fn parse(raw: &str) -> Result<DataChecks> {
        let bad = |m: String| Error::Config(format!("DATA_CHECKS: {m}"));
        let parsed: RawChecks = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
        let mut databases = Vec::new();
        for (i, db) in parsed.databases.into_iter().enumerate() {
            let at = format!("databases[{i}]");
            let pattern = db.resources.unwrap_or_else(|| ".*".into());
            let resources =
                Regex::new(&pattern).map_err(|e| bad(format!("{at}.resources is not a valid regex: {e}")))?;
            if db.database.as_deref().is_some_and(|d| d.trim().is_empty()) {
                return Err(bad(format!("{at}.database is empty")));
            }
            if let Some(t) = db.tables.iter().find(|t| split_table(t).is_none()) {
                return Err(bad(format!("{at}.tables has {t:?}, which is not `schema.table`")));
            }
            let mut probes: Vec<Probe> = Vec::new();
            for (j, p) in db.probes.into_iter().enumerate() {
                let at = format!("{at}.probes[{j}]");
                if p.name.trim().is_empty() || p.sql.trim().is_empty() {
                    return Err(bad(format!("{at} needs a name and sql")));
                }
                if probes.iter().any(|q| q.name == p.name) {
                    return Err(bad(format!("{at}: a second probe named {:?}", p.name)));
                }
                let expect = match (p.min, p.max, p.max_age_minutes) {
                    (Some(n), None, None) => Expect::AtLeast(n),
                    (None, Some(n), None) => Expect::AtMost(n),
                    (None, None, Some(m)) if m > 0 => Expect::NoOlderThan(chrono::Duration::minutes(m.into())),
                    _ => {
                        return Err(bad(format!(
                            "{at} ({:?}) needs exactly one expectation: min, max or max_age_minutes (more than 0)",
                            p.name
                        )));
                    }
                };
                probes.push(Probe { name: p.name, sql: p.sql, expect });
            }
            let compare_with_source = percent_or_off(
                db.compare_with_source,
                "row_tolerance_percent",
                DEFAULT_ROW_TOLERANCE_PERCENT,
                &format!("{at}.compare_with_source"),
            )
            .map_err(bad)?;
            let compare_with_previous = percent_or_off(
                db.compare_with_previous,
                "rows_drop_percent",
                DEFAULT_ROWS_DROP_PERCENT,
                &format!("{at}.compare_with_previous"),
            )
            .map_err(bad)?;
            databases.push(DatabaseChecks {
                resources,
                database: db.database,
                tables: db.tables,
                probes,
                compare_with_source,
                compare_with_previous,
            });
        }
        Ok(DataChecks { databases })
    }

    /// The checks configured for restores of `resource`.
    pub fn for_resource(&self, resource: &str) -> Option<&DatabaseChecks> {
        self.databases.iter().find(|d| d.resources.is_match(resource))
    }

    /// How far restores of `resource` may fall below the previous good copy's rows before
    /// they are suspicious; `None`: not compared. On by default.
    pub fn previous_drop(&self, resource: &str) -> Option<f64> {
        self.for_resource(resource).map_or(Some(DEFAULT_ROWS_DROP_PERCENT), |c| c.compare_with_previous)
    }

    /// The row tolerance restores of `resource` are compared with their source by; `None`:
    /// not compared. On by default: a copy carries the source's figures only where the
    /// source account chose to measure them.
    pub fn source_tolerance(&self, resource: &str) -> Option<f64> {
        self.for_resource(resource).map_or(Some(DEFAULT_ROW_TOLERANCE_PERCENT), |c| c.compare_with_source)
    }
}

/// `false` (off), `true` or absent (`default`), or `{"<field>": N}` with N from 0 to 100.
fn percent_or_off(
    value: Option<serde_json::Value>,
    field: &str,
    default: f64,
    at: &str,
) -> std::result::Result<Option<f64>, String> {
    match value {
        None | Some(serde_json::Value::Bool(true)) => Ok(Some(default)),
        Some(serde_json::Value::Bool(false)) => Ok(None),
        Some(serde_json::Value::Object(o)) if o.len() == 1 => match o.get(field).and_then(serde_json::Value::as_f64) {
            Some(t) if (0.0..=100.0).contains(&t) => Ok(Some(t)),
            _ => Err(format!("{at}.{field} must be 0 to 100")),
        },
        Some(_) => Err(format!("{at} must be true, false or {{\"{field}\": N}}")),
    }
}

/// How a restore's figures fell against the previous good copy's, one finding each: a
/// table gone, rows down by more than `drop_percent`, the newest data older than before.
/// Empty: nothing fell.
pub fn fell(previous: &RestoredFigures, now: &RestoredFigures, drop_percent: f64) -> Vec<String> {
    let mut findings = Vec::new();
    if now.tables < previous.tables {
        findings.push(format!("tables: {} -> {}", previous.tables, now.tables));
    }
    if previous.rows > 0 {
        let dropped = (previous.rows.saturating_sub(now.rows)) as f64 * 100.0 / previous.rows as f64;
        if dropped > drop_percent {
            findings.push(format!("rows: {} -> {} (-{dropped:.0}%)", previous.rows, now.rows));
        }
    }
    if let (Some(before), Some(after)) = (previous.newest_data_at, now.newest_data_at)
        && after < before
    {
        findings.push(format!("newest data: {} -> {}", timestamp_value(before), timestamp_value(after)));
    }
    findings
}

fn split_table(name: &str) -> Option<(&str, &str)> {
    let (schema, table) = name.split_once('.')?;
    (!schema.is_empty() && !table.is_empty() && !table.contains('.')).then_some((schema, table))
}

/// One check's outcome, as reported: no row data, only counts and timestamps.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub name: String,
    pub expectation: String,
    pub actual: String,
    pub passed: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub database: String,
    pub tables: Vec<TableStat>,
    pub checks: Vec<CheckResult>,
    /// The newest timestamp a freshness probe returned.
    pub newest_data_at: Option<DateTime<Utc>>,
    /// The snapshot's time minus `newest_data_at`.
    pub recovery_point_seconds: Option<f64>,
    /// The restore against its source's figures, where compared.
    pub source: Option<Box<SourceComparison>>,
}

impl Report {
    pub fn failed(&self) -> Option<&CheckResult> {
        self.checks.iter().find(|c| !c.passed)
    }

    pub fn rows(&self) -> u64 {
        self.tables.iter().filter_map(|t| t.rows).sum()
    }
}

/// The source's figures a restore is compared with, and the row tolerance in percent.
pub type SourceCheck<'a> = (&'a SourceFigures, f64);

/// Connects to `target` over TLS and runs the built-in checks, `checks`, and the
/// comparison with the source where `source` is given.
pub async fn run(
    target: &Target<'_>,
    tls: &Tls,
    checks: Option<&DatabaseChecks>,
    source: Option<SourceCheck<'_>>,
    snapshot_at: DateTime<Utc>,
    timeout: Duration,
) -> std::result::Result<Report, NotReached> {
    let deadline = tokio::time::Instant::now() + TOTAL_LIMIT;
    let mut session = snapferry_data::connect(target, tls, timeout).await?;
    let session = session.as_mut();
    let mut report = Report {
        database: target.database.unwrap_or("(every database)").to_string(),
        tables: Vec::new(),
        checks: Vec::new(),
        newest_data_at: None,
        recovery_point_seconds: None,
        source: None,
    };
    let over = || format!("not finished within the data checks' total time limit of {} s", TOTAL_LIMIT.as_secs());
    let listed = tokio::time::timeout_at(deadline, snapferry_data::catalogue(session, timeout))
        .await
        .unwrap_or_else(|_| Err(over()));
    report.checks.push(CheckResult {
        name: "catalogue".into(),
        expectation: "the database answers and lists its tables".into(),
        actual: match &listed {
            Ok(tables) => format!("{} tables", tables.len()),
            Err(e) => e.clone(),
        },
        passed: listed.is_ok(),
    });
    report.tables = listed.clone().unwrap_or_default();
    for table in checks.map(|c| c.tables.as_slice()).unwrap_or_default() {
        report.checks.push(required_table(&report.tables, table));
    }
    for probe in checks.map(|c| c.probes.as_slice()).unwrap_or_default() {
        let value = tokio::time::timeout_at(deadline, probe_value(session, &probe.sql, timeout))
            .await
            .unwrap_or_else(|_| Err(over()));
        let (result, newest) = judge(probe, value, snapshot_at);
        if let Some(at) = newest
            && report.newest_data_at.is_none_or(|n| at > n)
        {
            report.newest_data_at = Some(at);
        }
        report.checks.push(result);
    }
    report.recovery_point_seconds =
        report.newest_data_at.map(|at| (snapshot_at - at).num_milliseconds() as f64 / 1000.0);
    // Last: a configured check that fails names the damage more precisely. Only on a
    // catalogue read: one that failed has failed its own check already.
    if let (Ok(tables), Some((figures, tolerance))) = (&listed, source) {
        let (result, comparison) = compare(figures, tables, tolerance);
        report.source = Some(Box::new(comparison));
        report.checks.push(result);
    }
    Ok(report)
}

/// The restore's tables against its source's figures: the same tables (count and digest of
/// their names) and the rows within `tolerance` percent of the source's. The check names both
/// sides' figures, counts only.
pub fn compare(source: &SourceFigures, tables: &[TableStat], tolerance: f64) -> (CheckResult, SourceComparison) {
    let restored = snapferry_data::figures(tables);
    let same_tables = restored.tables == source.tables && restored.digest == source.digest;
    // Against at least one row, so an empty source still gives a finite figure.
    let difference = (restored.rows as f64 - source.rows as f64) * 100.0 / source.rows.max(1) as f64;
    let describe = |f: &SourceFigures| format!("{} tables (digest {}), {} rows", f.tables, f.digest, f.rows);
    let result = CheckResult {
        name: "source drift".into(),
        expectation: format!("the source's {}, rows within {tolerance}%", describe(source)),
        actual: format!("{} ({difference:+.1}% rows)", describe(&restored)),
        passed: same_tables && difference.abs() <= tolerance,
    };
    let comparison = SourceComparison {
        source_tables: source.tables,
        source_rows: source.rows,
        same_tables,
        row_difference_percent: (difference * 10.0).round() / 10.0,
        row_tolerance_percent: tolerance,
    };
    (result, comparison)
}

fn required_table(tables: &[TableStat], wanted: &str) -> CheckResult {
    let (schema, name) = split_table(wanted).unwrap_or(("", wanted));
    let found = tables.iter().find(|t| t.schema == schema && t.name == name);
    let (actual, passed) = match found {
        None => ("missing".to_string(), false),
        Some(t) if t.bytes == 0 || t.rows == Some(0) => ("empty".to_string(), false),
        Some(TableStat { rows: Some(n), .. }) => (format!("about {n} rows"), true),
        Some(t) => (format!("{} bytes, rows not counted", t.bytes), true),
    };
    CheckResult { name: format!("table {wanted}"), expectation: "exists and holds rows".into(), actual, passed }
}

/// What a probe returned: one value, as text.
type ProbeValue = std::result::Result<Option<String>, String>;

async fn probe_value(session: &mut dyn Session, sql: &str, timeout: Duration) -> ProbeValue {
    let rows = session.read_only(&snapferry_data::bounded_probe(sql), timeout).await?;
    match rows.as_slice() {
        [row] if row.len() == 1 => Ok(row[0].clone()),
        [_] => Err("returned more than one column; a probe returns one row of one column".into()),
        [] => Err("returned no row; a probe returns one row of one column".into()),
        _ => Err("returned more than one row; a probe returns one row of one column".into()),
    }
}

/// The probe's result, and the timestamp it returned when it is a freshness probe.
fn judge(probe: &Probe, value: ProbeValue, snapshot_at: DateTime<Utc>) -> (CheckResult, Option<DateTime<Utc>>) {
    let result = |actual: String, passed: bool| CheckResult {
        name: probe.name.clone(),
        expectation: probe.expect.to_string(),
        actual,
        passed,
    };
    let text = match value {
        Err(e) => return (result(e, false), None),
        Ok(None) => return (result("null".into(), false), None),
        Ok(Some(text)) => text,
    };
    let number = |ok: &dyn Fn(f64) -> bool| match text.trim().parse::<f64>() {
        Err(_) => (result("not a number".into(), false), None),
        Ok(n) => (result(format!("{n}"), ok(n)), None),
    };
    match probe.expect {
        Expect::AtLeast(min) => number(&|n| n >= min),
        Expect::AtMost(max) => number(&|n| n <= max),
        Expect::NoOlderThan(limit) => match parse_timestamp(&text) {
            None => (result("not a timestamp".into(), false), None),
            Some(at) => {
                let age = snapshot_at - at;
                let minutes = age.num_seconds() as f64 / 60.0;
                let passed = age <= limit && age >= -chrono::Duration::minutes(5);
                let actual = format!("{} ({minutes:.1} minutes before the snapshot)", at.to_rfc3339());
                (result(actual, passed), Some(at))
            }
        },
    }
}

/// A timestamp as the servers print one: PostgreSQL's `timestamptz`; `timestamp`, MySQL's
/// `DATETIME` and `TIMESTAMP` (the session is on UTC) taken as UTC; `date`.
fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    for format in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%#z"] {
        if let Ok(at) = DateTime::parse_from_str(text, format) {
            return Some(at.with_timezone(&Utc));
        }
    }
    if let Ok(at) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f") {
        return Some(at.and_utc());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|d| d.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn probe(expect: Expect) -> Probe {
        Probe { name: "p".into(), sql: "select 1".into(), expect }
    }

    #[test]
    fn config_is_validated_and_errors_name_the_entry() {
        let ok = DataChecks::parse(
            r#"{"databases": [{"resources": "^orders$", "database": "app", "tables": ["public.orders"],
                "probes": [{"name": "n", "sql": "select count(*) from orders", "min": 1},
                           {"name": "fresh", "sql": "select max(at) from orders", "max_age_minutes": 120}]}]}"#,
        )
        .unwrap();
        let db = ok.for_resource("orders").unwrap();
        assert_eq!(db.probes[1].expect, Expect::NoOlderThan(chrono::Duration::minutes(120)));
        assert!(ok.for_resource("orders-2").is_none());
        let cases = [
            (r#"{"databases": [{"resources": "("}]}"#, "databases[0].resources is not a valid regex"),
            (r#"{"databases": [{"tables": ["orders"]}]}"#, "not `schema.table`"),
            (
                r#"{"databases": [{"probes": [{"name": "a", "sql": "x", "min": 1, "max": 2}]}]}"#,
                "exactly one expectation",
            ),
            (r#"{"databases": [{"probes": [{"name": "a", "sql": "x"}]}]}"#, "exactly one expectation"),
            (
                r#"{"databases": [{"probes": [{"name": "a", "sql": "x", "min": 1}, {"name": "a", "sql": "y", "min": 1}]}]}"#,
                "a second probe named",
            ),
            (r#"{"databases": [{"probes": [{"name": "a", "sql": "x", "max_age_minutes": 0}]}]}"#, "more than 0"),
            (r#"{"databases": [{"resource": "x"}]}"#, "unknown field"),
            (r#"{"databases": [{"database": " "}]}"#, "databases[0].database is empty"),
        ];
        for (raw, want) in cases {
            let e = DataChecks::parse(raw).unwrap_err().to_string();
            assert!(e.contains("DATA_CHECKS") && e.contains(want), "{raw}: {e}");
        }
    }

    #[test]
    fn probes_are_judged_against_their_expectation_and_the_snapshot_time() {
        let snapshot_at = "2026-11-27T12:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let (r, _) = judge(&probe(Expect::AtLeast(1.0)), Ok(Some("3".into())), snapshot_at);
        assert!(r.passed && r.actual == "3", "{r:?}");
        let (r, _) = judge(&probe(Expect::AtLeast(1.0)), Ok(Some("0".into())), snapshot_at);
        assert!(!r.passed && r.expectation == ">= 1", "{r:?}");
        let (r, _) = judge(&probe(Expect::AtMost(5.0)), Ok(Some("6".into())), snapshot_at);
        assert!(!r.passed);
        let (r, _) = judge(&probe(Expect::AtLeast(1.0)), Ok(None), snapshot_at);
        assert_eq!((r.actual.as_str(), r.passed), ("null", false));
        // A value that is not a number is not echoed: it may be row data.
        let (r, _) = judge(&probe(Expect::AtLeast(1.0)), Ok(Some("alice@example.com".into())), snapshot_at);
        assert_eq!(r.actual, "not a number");
        let fresh = probe(Expect::NoOlderThan(chrono::Duration::minutes(120)));
        let (r, at) = judge(&fresh, Ok(Some("2026-11-27 11:30:00.5+00".into())), snapshot_at);
        assert!(r.passed, "{r:?}");
        assert_eq!(at, Some("2026-11-27T11:30:00.5Z".parse().unwrap()));
        let (r, _) = judge(&fresh, Ok(Some("2026-11-27 06:00:00".into())), snapshot_at);
        assert!(!r.passed && r.actual.contains("360.0 minutes before"), "{r:?}");
        let (r, _) = judge(&fresh, Ok(Some("2026-11-26".into())), snapshot_at);
        assert!(!r.passed);
        let (r, _) = judge(&fresh, Ok(Some("secret text".into())), snapshot_at);
        assert_eq!(r.actual, "not a timestamp");
        let (r, _) = judge(&fresh, Err("timed out (statement_timeout)".into()), snapshot_at);
        assert!(!r.passed && r.actual.contains("timed out"));
    }

    #[test]
    fn required_tables_must_exist_and_hold_rows() {
        let t = |name: &str, rows: Option<u64>, bytes: i64| TableStat {
            schema: "public".into(),
            name: name.into(),
            rows,
            bytes,
        };
        let tables = [t("orders", Some(10), 8192), t("empty", Some(0), 0), t("big", None, 1 << 30)];
        assert!(required_table(&tables, "public.orders").passed);
        assert_eq!(required_table(&tables, "public.empty").actual, "empty");
        assert_eq!(required_table(&tables, "public.gone").actual, "missing");
        assert!(required_table(&tables, "public.big").passed);
    }

    #[test]
    fn comparison_with_the_source_is_on_by_default_and_configured_per_database() {
        let c = DataChecks::parse(
            r#"{"databases": [
                {"resources": "^strict$", "compare_with_source": {"row_tolerance_percent": 2.5}},
                {"resources": "^off$", "compare_with_source": false},
                {"resources": "^on$", "compare_with_source": true},
                {"resources": "^plain$"}]}"#,
        )
        .unwrap();
        assert_eq!(c.source_tolerance("strict"), Some(2.5));
        assert_eq!(c.source_tolerance("off"), None);
        assert_eq!(c.source_tolerance("on"), Some(DEFAULT_ROW_TOLERANCE_PERCENT));
        assert_eq!(c.source_tolerance("plain"), Some(DEFAULT_ROW_TOLERANCE_PERCENT));
        assert_eq!(c.source_tolerance("no entry"), Some(DEFAULT_ROW_TOLERANCE_PERCENT));
        let cases = [
            (
                r#"{"databases": [{"compare_with_source": {"row_tolerance_percent": 101}}]}"#,
                "databases[0].compare_with_source.row_tolerance_percent must be 0 to 100",
            ),
            (r#"{"databases": [{"compare_with_source": {"row_tolerance_percent": -1}}]}"#, "0 to 100"),
            (r#"{"databases": [{"compare_with_source": {"row_tolerance_percent": "5"}}]}"#, "0 to 100"),
            (r#"{"databases": [{}, {"compare_with_source": {"rows": 5}}]}"#, "databases[1].compare_with_source"),
            (r#"{"databases": [{"compare_with_source": 10}]}"#, "must be true, false or"),
        ];
        for (raw, want) in cases {
            let e = DataChecks::parse(raw).unwrap_err().to_string();
            assert!(e.contains("DATA_CHECKS") && e.contains(want), "{raw}: {e}");
        }
    }

    #[test]
    fn comparison_with_the_previous_copy_is_on_by_default_and_configured_per_database() {
        let c = DataChecks::parse(
            r#"{"databases": [
                {"resources": "^strict$", "compare_with_previous": {"rows_drop_percent": 10}},
                {"resources": "^off$", "compare_with_previous": false},
                {"resources": "^plain$"}]}"#,
        )
        .unwrap();
        assert_eq!(c.previous_drop("strict"), Some(10.0));
        assert_eq!(c.previous_drop("off"), None);
        assert_eq!(c.previous_drop("plain"), Some(DEFAULT_ROWS_DROP_PERCENT));
        assert_eq!(c.previous_drop("no entry"), Some(DEFAULT_ROWS_DROP_PERCENT));
        for (raw, want) in [
            (
                r#"{"databases": [{"compare_with_previous": {"rows_drop_percent": 120}}]}"#,
                "rows_drop_percent must be 0 to 100",
            ),
            (r#"{"databases": [{"compare_with_previous": {"rows": 5}}]}"#, "databases[0].compare_with_previous"),
            (r#"{"databases": [{"compare_with_previous": "yes"}]}"#, "must be true, false or"),
        ] {
            let e = DataChecks::parse(raw).unwrap_err().to_string();
            assert!(e.contains("DATA_CHECKS") && e.contains(want), "{raw}: {e}");
        }
    }

    #[test]
    fn a_copy_falls_against_the_previous_by_a_table_gone_most_rows_gone_or_older_data() {
        let at = |m: u32| Some(Utc.with_ymd_and_hms(2026, 11, 27, 9, m, 0).unwrap());
        let previous = RestoredFigures { tables: 3, rows: 1000, newest_data_at: at(30) };
        let same = |f: RestoredFigures| fell(&previous, &f, 50.0);
        // Growth, and a fall within the share: nothing.
        assert!(same(RestoredFigures { tables: 4, rows: 1500, newest_data_at: at(45) }).is_empty());
        assert!(same(RestoredFigures { rows: 600, ..previous }).is_empty());
        assert_eq!(same(RestoredFigures { rows: 100, ..previous }), ["rows: 1000 -> 100 (-90%)"]);
        assert_eq!(same(RestoredFigures { tables: 2, ..previous }), ["tables: 3 -> 2"]);
        assert_eq!(
            same(RestoredFigures { newest_data_at: at(10), ..previous }),
            ["newest data: 2026-11-27T09:30:00Z -> 2026-11-27T09:10:00Z"]
        );
        // No newest data measured on either side: not compared; an empty previous: no share.
        assert!(same(RestoredFigures { newest_data_at: None, ..previous }).is_empty());
        let empty = RestoredFigures { tables: 0, rows: 0, newest_data_at: None };
        assert!(fell(&empty, &empty, 0.0).is_empty());
        assert_eq!(fell(&previous, &empty, 50.0).len(), 2, "a table gone and every row");
    }

    fn stat(name: &str, rows: Option<u64>) -> TableStat {
        TableStat { schema: "public".into(), name: name.into(), rows, bytes: 8192 }
    }

    #[test]
    fn a_restore_is_compared_with_its_source_by_tables_and_rows_within_the_tolerance() {
        let source_tables = [stat("orders", Some(1000)), stat("items", Some(200))];
        let source = snapferry_data::figures(&source_tables);
        // The same tables, rows 5 % fewer: within 10 %.
        let (r, c) = compare(&source, &[stat("orders", Some(940)), stat("items", Some(200))], 10.0);
        assert!(r.passed, "{r:?}");
        assert_eq!(r.name, "source drift");
        assert!(c.same_tables && c.row_difference_percent == -5.0, "{c:?}");
        assert_eq!((c.source_tables, c.source_rows, c.row_tolerance_percent), (2, 1200, 10.0));
        // Beyond it: both sides' figures named.
        let (r, c) = compare(&source, &[stat("orders", Some(0)), stat("items", Some(200))], 10.0);
        assert!(!r.passed && c.same_tables, "{r:?}");
        assert!(r.expectation.contains("2 tables") && r.expectation.contains("1200 rows"), "{r:?}");
        assert!(r.expectation.contains(&source.digest) && r.expectation.contains("within 10%"), "{r:?}");
        assert!(r.actual.contains("200 rows") && r.actual.contains("-83.3%"), "{r:?}");
        // More rows than the source beyond the tolerance fail too.
        let (r, _) = compare(&source, &[stat("orders", Some(2000)), stat("items", Some(200))], 10.0);
        assert!(!r.passed, "{r:?}");
        // A table gone, or another in its place (same count): a different list, whatever the rows.
        let (r, c) = compare(&source, &[stat("orders", Some(1200))], 10.0);
        assert!(!r.passed && !c.same_tables && r.actual.starts_with("1 tables"), "{r:?}");
        let (r, c) = compare(&source, &[stat("orders", Some(1000)), stat("other", Some(200))], 10.0);
        assert!(!r.passed && !c.same_tables, "{r:?}");
        assert_ne!(r.actual, r.expectation);
        // An empty source and an empty restore agree.
        let empty = snapferry_data::figures(&[]);
        assert!(compare(&empty, &[], 0.0).0.passed);
    }
}
