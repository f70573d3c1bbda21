//! MySQL (RDS MySQL, RDS MariaDB, Aurora MySQL): mysql_async over rustls.
//!
//! MySQL and MariaDB name their statement time limit differently: MySQL's
//! `max_execution_time` (milliseconds, `SELECT` only; Aurora MySQL the same), MariaDB's
//! `max_statement_time` (seconds). The server says which it is in its version string, so
//! the limit follows the server, not the RDS engine name.

use super::{NotReached, Rows, Session, Target, Tls, backstop};
use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, SslOpts, Value};
use std::time::Duration;

/// A logged-in MySQL connection and what its server is.
pub struct MySession {
    pub conn: Conn,
    mariadb: bool,
    /// The database logged in to: the catalogue lists its tables only, under this name.
    database: Option<String>,
}

/// A TLS connection to `target`, certificate verified against `tls`'s CAs and the host
/// name; its session on UTC (so `TIMESTAMP` values come back in UTC) and under the
/// statement time limit.
pub async fn connect(target: &Target<'_>, tls: &Tls, timeout: Duration) -> Result<MySession, NotReached> {
    // mysql_async builds its rustls configuration from the process's default provider.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let roots = tls.pems.iter().map(|pem| pem.clone().into()).collect();
    let ssl = SslOpts::default().with_root_certs(roots).with_disable_built_in_roots(true);
    let opts = OptsBuilder::default()
        .ip_or_hostname(target.host)
        .tcp_port(target.port)
        .user(Some(target.user))
        .pass(Some(target.password.expose()))
        .db_name(target.database)
        // Else, on finding the server on the same host, it would go on over a Unix socket.
        .prefer_socket(false)
        .ssl_opts(ssl);
    let mut conn = match tokio::time::timeout(timeout, Conn::new(opts)).await {
        Err(_) => return Err(NotReached(format!("no answer within {} s", timeout.as_secs()))),
        Ok(Err(e)) => return Err(NotReached(describe(&e))),
        Ok(Ok(conn)) => conn,
    };
    let version: Option<String> = conn.query_first("SELECT VERSION()").await.map_err(|e| NotReached(describe(&e)))?;
    let mariadb = version.is_some_and(|v| v.contains("MariaDB"));
    let limit = if mariadb {
        format!("SET SESSION max_statement_time = {:.3}", timeout.as_secs_f64())
    } else {
        format!("SET SESSION max_execution_time = {}", timeout.as_millis().max(1))
    };
    conn.query_drop("SET time_zone = '+00:00'").await.map_err(|e| NotReached(describe(&e)))?;
    conn.query_drop(limit).await.map_err(|e| NotReached(describe(&e)))?;
    Ok(MySession { conn, mariadb, database: target.database.map(str::to_string) })
}

const CATALOGUE: &str = "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS, DATA_LENGTH FROM information_schema.TABLES \
     WHERE TABLE_TYPE = 'BASE TABLE' \
     AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') ORDER BY 1, 2 LIMIT 10001";
/// Logged in to a database: its tables only (MySQL's schemas are databases).
const CATALOGUE_OF_DATABASE: &str = "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS, DATA_LENGTH \
     FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA = DATABASE() ORDER BY 1, 2 LIMIT 10001";

/// InnoDB's estimate is a sample that lags (MySQL 8 also caches it for
/// `information_schema_stats_expiry`, a day): a small table is counted exactly, so a
/// freshly written one does not pass for empty; a large one keeps the estimate.
const TRUSTED_ESTIMATE_BYTES: i64 = super::EXACT_COUNT_MAX_BYTES;

#[async_trait]
impl Session for MySession {
    async fn read_only(&mut self, sql: &str, timeout: Duration) -> Result<Rows, String> {
        let work = async {
            self.conn.query_drop("START TRANSACTION READ ONLY").await.map_err(|e| describe(&e))?;
            let result = self.conn.query::<mysql_async::Row, _>(sql).await.map_err(|e| describe(&e));
            // Nothing to keep: the transaction was read-only.
            let _ = self.conn.query_drop("ROLLBACK").await;
            Ok(result?.into_iter().map(|row| row.unwrap().into_iter().map(text).collect()).collect())
        };
        match tokio::time::timeout(backstop(timeout), work).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} s", timeout.as_secs())),
        }
    }

    fn catalogue_sql(&self) -> &'static str {
        if self.database.is_some() { CATALOGUE_OF_DATABASE } else { CATALOGUE }
    }

    fn schema_name(&self, reported: String) -> String {
        self.database.clone().unwrap_or(reported)
    }

    fn estimate(&self, estimate: i64, bytes: i64) -> Option<u64> {
        (bytes > TRUSTED_ESTIMATE_BYTES).then(|| u64::try_from(estimate).unwrap_or(0))
    }

    fn count_sql(&self, schema: &str, table: &str) -> String {
        // A table of the database logged in to is named as such, whatever the server calls
        // that database.
        if self.database.as_deref() == Some(schema) {
            format!("SELECT count(*) FROM {}", quote_ident(table))
        } else {
            format!("SELECT count(*) FROM {}.{}", quote_ident(schema), quote_ident(table))
        }
    }
}

impl MySession {
    /// Whether the server is MariaDB (RDS MariaDB) rather than MySQL.
    pub fn is_mariadb(&self) -> bool {
        self.mariadb
    }
}

/// A value of the text protocol as text (`None`: NULL).
fn text(value: Value) -> Option<String> {
    match value {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        Value::Int(n) => Some(n.to_string()),
        Value::UInt(n) => Some(n.to_string()),
        Value::Float(n) => Some(n.to_string()),
        Value::Double(n) => Some(n.to_string()),
        Value::Date(y, mo, d, h, mi, s, us) => Some(format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}")),
        Value::Time(neg, d, h, mi, s, us) => {
            Some(format!("{}{:02}:{mi:02}:{s:02}.{us:06}", if neg { "-" } else { "" }, d * 24 + u32::from(h)))
        }
    }
}

fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A server error as reported: its code and SQLSTATE always; the server's message only
/// where it names objects, access or limits, never values (a duplicate key, a bad value
/// can quote row data).
fn describe(e: &mysql_async::Error) -> String {
    let mysql_async::Error::Server(server) = e else {
        return crate::with_causes(e);
    };
    let (code, state) = (server.code, server.state.as_str());
    // 3024: MySQL's max_execution_time; 1969: MariaDB's max_statement_time.
    if code == 3024 || code == 1969 {
        return "timed out (statement time limit)".into();
    }
    // Access (1044, 1045, 1142, 1143), unknown database / table / column (1049, 1146, 1054),
    // no database selected (1046), syntax (1064), read-only transaction (1792), too many
    // connections (1040); SQLSTATE classes 42 (syntax, access), 28 (authorization), 3D, 08.
    let safe_codes = [1040, 1044, 1045, 1046, 1049, 1054, 1064, 1142, 1143, 1146, 1792];
    let safe = safe_codes.contains(&code) || ["42", "28", "3D", "08"].iter().any(|c| state.starts_with(c));
    if safe { format!("error {code} ({state}): {}", server.message) } else { format!("error {code} ({state})") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: u16, state: &str, message: &str) -> mysql_async::Error {
        mysql_async::Error::Server(mysql_async::ServerError { code, state: state.into(), message: message.into() })
    }

    #[test]
    fn errors_keep_the_message_only_where_it_cannot_quote_data() {
        let missing = describe(&server(1146, "42S02", "Table 'shop.orders' doesn't exist"));
        assert_eq!(missing, "error 1146 (42S02): Table 'shop.orders' doesn't exist");
        let duplicate = describe(&server(1062, "23000", "Duplicate entry 'alice@example.com' for key 'email'"));
        assert_eq!(duplicate, "error 1062 (23000)");
        let bad_value = describe(&server(1292, "22007", "Incorrect datetime value: 'secret'"));
        assert!(!bad_value.contains("secret"), "{bad_value}");
        assert_eq!(
            describe(&server(3024, "HY000", "maximum statement execution time exceeded")),
            "timed out (statement time limit)"
        );
        assert_eq!(
            describe(&server(1969, "70100", "Query execution was interrupted")),
            "timed out (statement time limit)"
        );
    }

    #[test]
    fn values_come_back_as_text_and_names_quoted() {
        assert_eq!(text(Value::NULL), None);
        assert_eq!(text(Value::Bytes(b"42".to_vec())).as_deref(), Some("42"));
        assert_eq!(text(Value::Date(2026, 11, 28, 1, 2, 3, 500_000)).as_deref(), Some("2026-11-28 01:02:03.500000"));
        assert_eq!(quote_ident("we`ird"), "`we``ird`");
    }
}
