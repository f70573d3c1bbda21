//! Data checks of a restored PostgreSQL database (RDS PostgreSQL, Aurora PostgreSQL): the
//! restore step logs in over TLS with a password it has just set, and proves the data is
//! there and how fresh it is, not only that the instance came up.
//!
//! - built-in: the database answers, and the catalogue lists its tables with their
//!   estimated row counts (`pg_class.reltuples`, cheap on any size; a table never analysed
//!   is counted exactly when it is small, else left unknown);
//! - configured per database: tables that must exist and hold rows, and probes, SQL that
//!   returns one number or one timestamp, each with an expectation;
//! - the data recovery point: the snapshot's time minus the newest timestamp a freshness
//!   probe returns.
//!
//! Every statement runs in its own read-only transaction under a statement timeout.
//! Results carry counts and timestamps only, never row data: a probe whose value is neither
//! is reported as such, and a database error is reported with its message only where
//! PostgreSQL's message cannot quote data (undefined objects, syntax, the timeout).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use regex::Regex;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;
use snapferry::error::{Error, Result};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::{Client, SimpleQueryMessage};
use tracing::{info, warn};

/// The root CAs of Amazon RDS and Aurora (see `certs/README.md`), trusted by default.
const RDS_CA_BUNDLE: &[u8] = include_bytes!("../certs/rds-ca-bundle.pem");

/// Tables no larger than this that were never analysed are counted exactly (`count(*)`
/// reads them whole), at most [`EXACT_COUNTS`] of them; others are left unknown rather
/// than scanned.
const EXACT_COUNT_MAX_BYTES: i64 = 8 << 20;
const EXACT_COUNTS: usize = 100;

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
    /// The database to log in to; the restored resource's `DBName`, else `postgres`.
    pub database: Option<String>,
    /// `schema.table` names that must exist and hold rows.
    pub tables: Vec<String>,
    pub probes: Vec<Probe>,
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
            databases.push(DatabaseChecks { resources, database: db.database, tables: db.tables, probes });
        }
        Ok(DataChecks { databases })
    }

    /// The checks configured for restores of `resource`.
    pub fn for_resource(&self, resource: &str) -> Option<&DatabaseChecks> {
        self.databases.iter().find(|d| d.resources.is_match(resource))
    }
}

fn split_table(name: &str) -> Option<(&str, &str)> {
    let (schema, table) = name.split_once('.')?;
    (!schema.is_empty() && !table.is_empty() && !table.contains('.')).then_some((schema, table))
}

/// The TLS client configuration: RDS's CAs, and those of `extra` (a PEM file) when given.
/// Certificates are verified against the host name (`verify-full`).
pub fn tls_config(extra: Option<&str>) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    let mut add = |pem: &[u8], from: &str| -> Result<()> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::Config(format!("{from} is not a PEM certificate bundle: {e}")))?;
        if certs.is_empty() {
            return Err(Error::Config(format!("{from} holds no certificate")));
        }
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(Error::Config(format!("{from}: no certificate in it can be used as a CA")));
        }
        Ok(())
    };
    add(RDS_CA_BUNDLE, "the built-in RDS CA bundle")?;
    if let Some(path) = extra {
        let pem = std::fs::read(path).map_err(|e| Error::Config(format!("DATA_CHECK_CA_BUNDLE {path}: {e}")))?;
        add(&pem, &format!("DATA_CHECK_CA_BUNDLE {path}"))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A password that never shows in a log line or a debug print.
pub struct Password(String);

impl Password {
    /// A fresh one for each attempt: 32 hex digits (122 random bits), within the 8 to 128
    /// printable characters RDS accepts for a PostgreSQL master password, none of `/ @ " '`.
    pub fn generate() -> Password {
        Password(uuid::Uuid::new_v4().simple().to_string())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Where the restored database answers.
#[derive(Debug)]
pub struct Target<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub database: &'a str,
    pub password: &'a Password,
}

/// One check's outcome, as reported: no row data, only counts and timestamps.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub name: String,
    pub expectation: String,
    pub actual: String,
    pub passed: bool,
}

/// A table the catalogue lists, with its estimated row count (`None`: never analysed and
/// too large to count).
#[derive(Debug, Clone, PartialEq)]
pub struct TableStat {
    pub schema: String,
    pub name: String,
    pub rows: Option<u64>,
    pub bytes: i64,
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
}

impl Report {
    pub fn failed(&self) -> Option<&CheckResult> {
        self.checks.iter().find(|c| !c.passed)
    }

    pub fn rows(&self) -> u64 {
        self.tables.iter().filter_map(|t| t.rows).sum()
    }
}

/// Why no report could be made yet: the login or the connection failed. The caller
/// retries (the new password may not be applied yet) until its restore timeout.
#[derive(Debug)]
pub struct NotReached(pub String);

/// Connects to `target` over TLS and runs the built-in checks and `checks`.
pub async fn run(
    target: &Target<'_>,
    tls: &Arc<rustls::ClientConfig>,
    checks: Option<&DatabaseChecks>,
    snapshot_at: DateTime<Utc>,
    timeout: Duration,
) -> std::result::Result<Report, NotReached> {
    let client = connect(target, tls, timeout).await?;
    let mut report = Report {
        database: target.database.to_string(),
        tables: Vec::new(),
        checks: Vec::new(),
        newest_data_at: None,
        recovery_point_seconds: None,
    };
    match catalogue(&client, timeout).await {
        Ok(tables) => {
            report.checks.push(CheckResult {
                name: "catalogue".into(),
                expectation: "the database answers and lists its tables".into(),
                actual: format!("{} tables", tables.len()),
                passed: true,
            });
            report.tables = tables;
        }
        Err(e) => report.checks.push(CheckResult {
            name: "catalogue".into(),
            expectation: "the database answers and lists its tables".into(),
            actual: e,
            passed: false,
        }),
    }
    let Some(checks) = checks else { return Ok(report) };
    for table in &checks.tables {
        report.checks.push(required_table(&report.tables, table));
    }
    for probe in &checks.probes {
        let value = probe_value(&client, &probe.sql, timeout).await;
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
    Ok(report)
}

/// A TLS connection to `target`, certificate verified against `tls`'s CAs and the host name.
pub async fn connect(
    target: &Target<'_>,
    tls: &Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> std::result::Result<Client, NotReached> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(target.host)
        .port(target.port)
        .user(target.user)
        .password(target.password.expose())
        .dbname(target.database)
        .application_name("snapferry-restore-check")
        .ssl_mode(tokio_postgres::config::SslMode::Require)
        .connect_timeout(timeout);
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new((**tls).clone());
    let connecting = tokio::time::timeout(timeout, config.connect(tls));
    let (client, connection) = match connecting.await {
        Err(_) => return Err(NotReached(format!("no answer within {} s", timeout.as_secs()))),
        Ok(Err(e)) => return Err(NotReached(describe(&e))),
        Ok(Ok(pair)) => pair,
    };
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            warn!(error = %describe(&e), "data check connection ended with an error");
        }
    });
    Ok(client)
}

/// Runs `sql` in a read-only transaction under the statement timeout, with a backstop in
/// case the server does not honour it; the rows as text.
async fn read_only(
    client: &Client,
    sql: &str,
    timeout: Duration,
) -> std::result::Result<Vec<Vec<Option<String>>>, String> {
    let millis = timeout.as_millis().max(1);
    let begin = format!("BEGIN TRANSACTION READ ONLY; SET LOCAL statement_timeout = {millis}");
    let work = async {
        client.batch_execute(&begin).await.map_err(|e| describe(&e))?;
        let result = client.simple_query(sql).await.map_err(|e| describe(&e));
        // Nothing to keep: the transaction was read-only. A failed probe aborted it anyway.
        let _ = client.batch_execute("ROLLBACK").await;
        let rows = result?
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some((0..row.len()).map(|i| row.get(i).map(str::to_string)).collect()),
                _ => None,
            })
            .collect();
        Ok(rows)
    };
    match tokio::time::timeout(timeout + Duration::from_secs(5), work).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} s", timeout.as_secs())),
    }
}

const CATALOGUE: &str = "SELECT n.nspname, c.relname, c.reltuples::bigint, pg_relation_size(c.oid) \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2";

async fn catalogue(client: &Client, timeout: Duration) -> std::result::Result<Vec<TableStat>, String> {
    let rows = read_only(client, CATALOGUE, timeout).await?;
    let mut tables = Vec::new();
    let mut counts_left = EXACT_COUNTS;
    for row in rows {
        let field = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let (schema, name) = (field(0), field(1));
        let estimate: i64 = field(2).parse().unwrap_or(-1);
        let bytes: i64 = field(3).parse().unwrap_or(0);
        // reltuples is -1 until the table is first analysed (PostgreSQL 14+).
        let rows = if bytes == 0 {
            Some(0)
        } else if estimate >= 0 {
            Some(estimate as u64)
        } else if bytes <= EXACT_COUNT_MAX_BYTES && counts_left > 0 {
            counts_left -= 1;
            let sql = format!("SELECT count(*) FROM {}.{}", quote_ident(&schema), quote_ident(&name));
            read_only(client, &sql, timeout).await.ok().and_then(|r| single(&r)).and_then(|v| v.parse().ok())
        } else {
            None
        };
        tables.push(TableStat { schema, name, rows, bytes });
    }
    info!(tables = tables.len(), "catalogue read");
    Ok(tables)
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn single(rows: &[Vec<Option<String>>]) -> Option<String> {
    match rows {
        [row] if row.len() == 1 => row[0].clone(),
        _ => None,
    }
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

async fn probe_value(client: &Client, sql: &str, timeout: Duration) -> ProbeValue {
    let rows = read_only(client, sql, timeout).await?;
    match rows.as_slice() {
        [row] if row.len() == 1 => Ok(row[0].clone()),
        _ => Err(format!("returned {} rows; a probe returns one row of one column", rows.len())),
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

/// A timestamp as PostgreSQL prints one (`timestamptz`, `timestamp` taken as UTC, `date`).
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

/// A database error as reported: the SQLSTATE always; PostgreSQL's message only for the
/// classes whose messages name objects or limits, never values (22xxx, 23xxx and others
/// can quote row data).
fn describe(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        // Connection-level: I/O, TLS, protocol. These name no data.
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        return text;
    };
    let code = db.code().code();
    if code == "57014" {
        return "timed out (statement_timeout)".into();
    }
    let safe = ["42", "25", "28", "3D", "3F", "08", "53", "57"].iter().any(|class| code.starts_with(class));
    if safe { format!("error {code}: {}", db.message()) } else { format!("error {code}") }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn the_builtin_ca_bundle_loads_and_passwords_never_print() {
        assert!(tls_config(None).is_ok());
        let e = tls_config(Some("/nonexistent/ca.pem")).unwrap_err().to_string();
        assert!(e.contains("DATA_CHECK_CA_BUNDLE /nonexistent/ca.pem"), "{e}");
        let p = Password::generate();
        assert_eq!(p.expose().len(), 32);
        assert!(!format!("{p:?}").contains(p.expose()));
        assert_ne!(Password::generate().expose(), p.expose());
    }
}
