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
//!   probe returns.
//!
//! Every statement runs in its own read-only transaction under a statement time limit.
//! Results carry counts and timestamps only, never row data: a probe whose value is neither
//! is reported as such, and a database error is reported with its message only where the
//! server's message cannot quote data (undefined objects, syntax, access, the time limit).
//! What differs between the engines (connecting, the time limit, the catalogue, quoting,
//! errors) is in [`postgres`] and [`mysql`] behind one [`Session`]; the rest is written once.

mod mysql;
mod postgres;

pub use mysql::connect as connect_mysql;
pub use postgres::connect as connect_postgres;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use regex::Regex;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;
use snapferry::error::{Error, Result};
use std::sync::Arc;
use std::time::Duration;
use tracing::info;

/// The root CAs of Amazon RDS and Aurora (see `certs/README.md`), trusted by default.
const RDS_CA_BUNDLE: &[u8] = include_bytes!("../certs/rds-ca-bundle.pem");

/// Tables no larger than this whose estimate cannot be trusted are counted exactly (`count(*)`
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
    /// The database to log in to; the restored resource's `DBName`, else `postgres`
    /// (PostgreSQL) or none (MySQL: every database is listed).
    pub database: Option<String>,
    /// `schema.table` names that must exist and hold rows (MySQL: `database.table`).
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

/// Whom the data checks trust: RDS's CAs, and those of `DATA_CHECK_CA_BUNDLE`.
#[derive(Debug, Clone)]
pub struct Tls {
    /// For PostgreSQL (tokio-postgres-rustls takes a rustls configuration).
    pub config: Arc<rustls::ClientConfig>,
    /// The same CAs as PEM, for MySQL (mysql_async builds its rustls configuration itself).
    pub pems: Vec<Vec<u8>>,
}

/// The TLS client configuration: RDS's CAs, and those of `extra` (a PEM file) when given.
/// Certificates are verified against the host name (`verify-full`).
pub fn tls_config(extra: Option<&str>) -> Result<Tls> {
    let mut roots = rustls::RootCertStore::empty();
    let mut pems = Vec::new();
    let mut add = |pem: Vec<u8>, from: &str| -> Result<()> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::Config(format!("{from} is not a PEM certificate bundle: {e}")))?;
        if certs.is_empty() {
            return Err(Error::Config(format!("{from} holds no certificate")));
        }
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(Error::Config(format!("{from}: no certificate in it can be used as a CA")));
        }
        pems.push(pem);
        Ok(())
    };
    add(RDS_CA_BUNDLE.to_vec(), "the built-in RDS CA bundle")?;
    if let Some(path) = extra {
        let pem = std::fs::read(path).map_err(|e| Error::Config(format!("DATA_CHECK_CA_BUNDLE {path}: {e}")))?;
        add(pem, &format!("DATA_CHECK_CA_BUNDLE {path}"))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Tls { config: Arc::new(config), pems })
}

/// The SDK's crypto provider, for every TLS connection of the checks.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
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

/// The database engines the checks speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    MySql,
}

impl Engine {
    /// The engine of an RDS `Engine` name: `postgres`, `aurora-postgresql`; `mysql`,
    /// `mariadb`, `aurora-mysql` (and `aurora`, Aurora MySQL 5.6's). Others have none.
    pub fn of(rds_engine: &str) -> Option<Engine> {
        match rds_engine {
            "postgres" | "aurora-postgresql" => Some(Engine::Postgres),
            "mysql" | "mariadb" | "aurora-mysql" | "aurora" => Some(Engine::MySql),
            _ => None,
        }
    }

    /// The database to log in to when none is configured and the resource has no `DBName`.
    pub fn default_database(self) -> Option<&'static str> {
        match self {
            Engine::Postgres => Some("postgres"),
            Engine::MySql => None,
        }
    }
}

/// Where the restored database answers.
#[derive(Debug)]
pub struct Target<'a> {
    pub engine: Engine,
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    /// MySQL: `None` logs in to no database in particular.
    pub database: Option<&'a str>,
    pub password: &'a Password,
}

/// Rows of a result, every value as text (`None`: NULL).
pub(crate) type Rows = Vec<Vec<Option<String>>>;

/// A logged-in connection of one engine: what the checks need of it.
#[async_trait::async_trait]
pub(crate) trait Session: Send {
    /// Runs `sql` in a read-only transaction under the statement time limit, with a
    /// backstop in case the server does not honour it.
    async fn read_only(&mut self, sql: &str, timeout: Duration) -> std::result::Result<Rows, String>;
    /// The catalogue: per base table outside the system schemas, its schema, name,
    /// estimated rows and size in bytes.
    fn catalogue_sql(&self) -> &'static str;
    /// The name a table's schema is reported (and required tables are matched) under.
    fn schema_name(&self, reported: String) -> String {
        reported
    }
    /// The rows of a table from the catalogue's figures, when they can be trusted.
    fn estimate(&self, estimate: i64, bytes: i64) -> Option<u64>;
    /// `SELECT count(*)` of one table, its names quoted.
    fn count_sql(&self, schema: &str, table: &str) -> String;
}

/// The client-side backstop behind the server's statement time limit.
pub(crate) fn backstop(timeout: Duration) -> Duration {
    timeout + Duration::from_secs(5)
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
    tls: &Tls,
    checks: Option<&DatabaseChecks>,
    snapshot_at: DateTime<Utc>,
    timeout: Duration,
) -> std::result::Result<Report, NotReached> {
    let mut session: Box<dyn Session> = match target.engine {
        Engine::Postgres => Box::new(postgres::connect(target, tls, timeout).await?),
        Engine::MySql => Box::new(mysql::connect(target, tls, timeout).await?),
    };
    let session = session.as_mut();
    let mut report = Report {
        database: target.database.unwrap_or("(every database)").to_string(),
        tables: Vec::new(),
        checks: Vec::new(),
        newest_data_at: None,
        recovery_point_seconds: None,
    };
    match catalogue(session, timeout).await {
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
        let value = probe_value(session, &probe.sql, timeout).await;
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

async fn catalogue(session: &mut dyn Session, timeout: Duration) -> std::result::Result<Vec<TableStat>, String> {
    let rows = session.read_only(session.catalogue_sql(), timeout).await?;
    let mut tables = Vec::new();
    let mut counts_left = EXACT_COUNTS;
    for row in rows {
        let field = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let (schema, name) = (session.schema_name(field(0)), field(1));
        let estimate: i64 = field(2).parse().unwrap_or(-1);
        let bytes: i64 = field(3).parse().unwrap_or(0);
        let rows = match session.estimate(estimate, bytes) {
            Some(rows) => Some(rows),
            None if bytes <= EXACT_COUNT_MAX_BYTES && counts_left > 0 => {
                counts_left -= 1;
                let sql = session.count_sql(&schema, &name);
                session.read_only(&sql, timeout).await.ok().and_then(|r| single(&r)).and_then(|v| v.parse().ok())
            }
            None => None,
        };
        tables.push(TableStat { schema, name, rows, bytes });
    }
    info!(tables = tables.len(), "catalogue read");
    Ok(tables)
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

async fn probe_value(session: &mut dyn Session, sql: &str, timeout: Duration) -> ProbeValue {
    let rows = session.read_only(sql, timeout).await?;
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
    fn engines_are_told_by_their_rds_name() {
        for (name, engine) in [
            ("postgres", Some(Engine::Postgres)),
            ("aurora-postgresql", Some(Engine::Postgres)),
            ("mysql", Some(Engine::MySql)),
            ("mariadb", Some(Engine::MySql)),
            ("aurora-mysql", Some(Engine::MySql)),
            ("oracle-ee", None),
            ("sqlserver-ex", None),
        ] {
            assert_eq!(Engine::of(name), engine, "{name}");
        }
        assert_eq!(Engine::Postgres.default_database(), Some("postgres"));
        assert_eq!(Engine::MySql.default_database(), None);
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
        let tls = tls_config(None).unwrap();
        assert_eq!(tls.pems.len(), 1);
        let e = tls_config(Some("/nonexistent/ca.pem")).unwrap_err().to_string();
        assert!(e.contains("DATA_CHECK_CA_BUNDLE /nonexistent/ca.pem"), "{e}");
        let p = Password::generate();
        assert_eq!(p.expose().len(), 32);
        assert!(!format!("{p:?}").contains(p.expose()));
        assert_ne!(Password::generate().expose(), p.expose());
    }
}
