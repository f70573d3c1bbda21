//! Logging in to a database for snapferry's data checks, and reading its catalogue:
//! PostgreSQL (RDS PostgreSQL, Aurora PostgreSQL) and MySQL (RDS MySQL, RDS MariaDB, Aurora
//! MySQL), always over TLS verified against RDS's CAs. The restore step checks restored
//! copies with it; the share step measures a source database with it, so the two count
//! tables and rows the same way and their figures compare.
//!
//! Every statement runs in its own read-only transaction under a statement time limit.
//! What differs between the engines (connecting, the time limit, the catalogue, quoting,
//! errors) is in [`postgres`] and [`mysql`] behind one [`Session`]; the rest is written once.

mod mysql;
mod postgres;
pub mod secrets;

pub use mysql::connect as connect_mysql;
pub use postgres::connect as connect_postgres;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use snapferry::config::Env;
use snapferry::error::{Error, Result};
use snapferry::tags::{DIGEST_LEN, SourceFigures};
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

/// Most tables the catalogue lists (its queries ask for one more, to tell): the database is
/// the source's data, and a function of 256 MB does not hold a million table names.
pub const MAX_TABLES: usize = 10_000;

/// `sql` (a configured probe) as it runs: at most two rows come back, whatever it selects,
/// so a probe that would return a table's rows costs neither the time to send them nor the
/// memory to hold them (two tell "more than one" apart).
pub fn bounded_probe(sql: &str) -> String {
    let sql = sql.trim().trim_end_matches(';').trim_end();
    format!("SELECT * FROM ({sql}) AS snapferry_probe LIMIT 2")
}

/// How a step reaches databases: the time limit of the connection and of each statement,
/// and whom TLS trusts.
#[derive(Debug, Clone)]
pub struct Connection {
    pub timeout: Duration,
    pub tls: Tls,
}

impl Connection {
    /// `DATA_CHECK_TIMEOUT_SECONDS` and `DATA_CHECK_CA_BUNDLE`, with the checks `variable`
    /// configures (JSON): `None` when it is unset. The time limit is checked either way; the
    /// CAs are read only when checks are on, so a Lambda without them does not pay for them.
    pub fn from_env(env: &Env, variable: &str) -> Result<Option<(String, Connection)>> {
        let seconds: u64 = env.parse("DATA_CHECK_TIMEOUT_SECONDS")?;
        if !(1..=300).contains(&seconds) {
            return Err(Error::Config(format!("DATA_CHECK_TIMEOUT_SECONDS must be 1 to 300, not {seconds}")));
        }
        let bundle = env.optional("DATA_CHECK_CA_BUNDLE");
        let Some(raw) = env.optional(variable) else { return Ok(None) };
        let tls = tls_config(bundle.as_deref())?;
        Ok(Some((raw, Connection { timeout: Duration::from_secs(seconds), tls })))
    }
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

impl From<String> for Password {
    fn from(password: String) -> Password {
        Password(password)
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

/// Where a database answers, and as whom to log in.
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
pub type Rows = Vec<Vec<Option<String>>>;

/// A logged-in connection of one engine: what the checks need of it.
#[async_trait::async_trait]
pub trait Session: Send {
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

/// A connection-level error with every cause it wraps (I/O, TLS, protocol, the driver):
/// these name no data, and the innermost cause is usually the one that says why.
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// The client-side backstop behind the server's statement time limit.
pub(crate) fn backstop(timeout: Duration) -> Duration {
    timeout + Duration::from_secs(5)
}

/// Why a database could not be logged in to: the login or the connection failed.
#[derive(Debug)]
pub struct NotReached(pub String);

/// A TLS connection to `target`, logged in.
pub async fn connect(
    target: &Target<'_>,
    tls: &Tls,
    timeout: Duration,
) -> std::result::Result<Box<dyn Session>, NotReached> {
    Ok(match target.engine {
        Engine::Postgres => Box::new(postgres::connect(target, tls, timeout).await?),
        Engine::MySql => Box::new(mysql::connect(target, tls, timeout).await?),
    })
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

/// The tables of the database `session` is logged in to, with their rows: estimated from
/// the catalogue, or counted where the table is small and its estimate cannot be trusted.
pub async fn catalogue(session: &mut dyn Session, timeout: Duration) -> std::result::Result<Vec<TableStat>, String> {
    let rows = session.read_only(session.catalogue_sql(), timeout).await?;
    if rows.len() > MAX_TABLES {
        return Err(format!("more than {MAX_TABLES} tables; not listed"));
    }
    let mut tables = Vec::new();
    let mut counts_left = EXACT_COUNTS;
    // Counting stops after three statements' time in all, however many tables are small:
    // each count is bounded by the statement limit, a hundred of them are not.
    let counting = std::time::Instant::now();
    for row in rows {
        let field = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let (schema, name) = (session.schema_name(field(0)), field(1));
        let estimate: i64 = field(2).parse().unwrap_or(-1);
        let bytes: i64 = field(3).parse().unwrap_or(0);
        let rows = match session.estimate(estimate, bytes) {
            Some(rows) => Some(rows),
            None if bytes <= EXACT_COUNT_MAX_BYTES && counts_left > 0 && counting.elapsed() < timeout * 3 => {
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

/// The one value of a result of one row of one column.
pub fn single(rows: &[Vec<Option<String>>]) -> Option<String> {
    match rows {
        [row] if row.len() == 1 => row[0].clone(),
        _ => None,
    }
}

/// The figures of a catalogue that a source and its restore are compared by: how many
/// tables, their rows added up, and the digest of their names.
pub fn figures(tables: &[TableStat]) -> SourceFigures {
    SourceFigures {
        tables: u32::try_from(tables.len()).unwrap_or(u32::MAX),
        rows: tables.iter().filter_map(|t| t.rows).sum(),
        digest: table_digest(tables),
    }
}

/// The first [`DIGEST_LEN`] hex digits of the SHA-256 of the sorted table names, one a line,
/// each as the JSON pair `["schema","table"]` (a name may hold a dot or a newline: `a.b` + `c`
/// is not `a` + `b.c`): the same list gives the same digest whatever order the server lists
/// it in.
pub fn table_digest(tables: &[TableStat]) -> String {
    let mut names: Vec<String> =
        tables.iter().map(|t| serde_json::json!([t.schema, t.name]).to_string() + "\n").collect();
    names.sort();
    let hash = Sha256::digest(names.concat().as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect::<String>()[..DIGEST_LEN].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(schema: &str, name: &str, rows: Option<u64>) -> TableStat {
        TableStat { schema: schema.into(), name: name.into(), rows, bytes: 8192 }
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
    fn the_builtin_ca_bundle_loads_and_passwords_never_print() {
        let tls = tls_config(None).unwrap();
        assert_eq!(tls.pems.len(), 1);
        let e = tls_config(Some("/nonexistent/ca.pem")).unwrap_err().to_string();
        assert!(e.contains("DATA_CHECK_CA_BUNDLE /nonexistent/ca.pem"), "{e}");
        let p = Password::generate();
        assert_eq!(p.expose().len(), 32);
        assert!(!format!("{p:?}").contains(p.expose()));
        assert_ne!(Password::generate().expose(), p.expose());
        let from_secret = Password::from("hunter2-from-a-secret".to_string());
        assert!(!format!("{from_secret:?}").contains("hunter2"));
    }

    #[test]
    fn the_table_digest_is_of_the_sorted_names_only() {
        let a = [table("public", "orders", Some(10)), table("public", "items", None)];
        let b = [table("public", "items", Some(99)), table("public", "orders", Some(1))];
        assert_eq!(table_digest(&a), table_digest(&b), "order and counts do not matter");
        assert_eq!(table_digest(&a).len(), DIGEST_LEN);
        assert!(table_digest(&a).bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        let c = [table("public", "orders", Some(10))];
        assert_ne!(table_digest(&a), table_digest(&c), "a table less");
        // `a.bc` + `d` is not `a` + `bc.d`: names are joined with their schema, one a line.
        assert_ne!(table_digest(&[table("a.bc", "d", None)]), table_digest(&[table("a", "bc.d", None)]));
        let f = figures(&a);
        assert_eq!((f.tables, f.rows), (2, 10), "a table left uncounted adds no rows");
        assert_eq!(SourceFigures::checked(f.tables, f.rows, &f.digest), Some(f), "what the copy step accepts");
    }

    #[test]
    fn the_time_limit_is_checked_and_checks_are_off_unless_configured() {
        let env = |pairs: &[(&'static str, &'static str)]| {
            let base = [("QUEUE_URL", "q"), ("DLQ_URL", "d"), ("TARGET_KMS_KEY_ARN", "k")];
            Env::from_pairs("restore", base.iter().chain(pairs).copied()).unwrap()
        };
        assert!(Connection::from_env(&env(&[]), "DATA_CHECKS").unwrap().is_none());
        let (raw, c) = Connection::from_env(&env(&[("DATA_CHECKS", "{}")]), "DATA_CHECKS").unwrap().unwrap();
        assert_eq!((raw.as_str(), c.timeout), ("{}", Duration::from_secs(10)));
        let e = Connection::from_env(&env(&[("DATA_CHECK_TIMEOUT_SECONDS", "0")]), "DATA_CHECKS").unwrap_err();
        assert!(e.to_string().contains("DATA_CHECK_TIMEOUT_SECONDS"), "{e}");
    }
}
