//! PostgreSQL (RDS PostgreSQL, Aurora PostgreSQL): tokio-postgres over rustls.

use super::{NotReached, Rows, Session, Target, Tls, backstop};
use async_trait::async_trait;
use std::time::Duration;
use tokio_postgres::{Client, SimpleQueryMessage};
use tracing::warn;

/// A TLS connection to `target`, certificate verified against `tls`'s CAs and the host name.
pub async fn connect(target: &Target<'_>, tls: &Tls, timeout: Duration) -> Result<Client, NotReached> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(target.host)
        .port(target.port)
        .user(target.user)
        .password(target.password.expose())
        .dbname(target.database.unwrap_or("postgres"))
        .application_name("snapferry-data-check")
        .ssl_mode(tokio_postgres::config::SslMode::Require)
        .connect_timeout(timeout);
    let connector = tokio_postgres_rustls::MakeRustlsConnect::new((*tls.config).clone());
    let connecting = tokio::time::timeout(timeout, config.connect(connector));
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

/// Every name schema-qualified, and at most one table more than [`crate::MAX_TABLES`]: the
/// database is the source's data, and its search_path (a role's or the database's setting,
/// restored with it) could put a schema of its own before `pg_catalog`.
const CATALOGUE: &str = "SELECT n.nspname, c.relname, c.reltuples::pg_catalog.int8, pg_catalog.pg_relation_size(c.oid) \
     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
     WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2 LIMIT 10001";

#[async_trait]
impl Session for Client {
    async fn read_only(&mut self, sql: &str, timeout: Duration) -> Result<Rows, String> {
        let millis = timeout.as_millis().max(1);
        // The search path pinned, `pg_catalog` first and `pg_temp` last, whatever the
        // restored database or role set it to: nothing of the database's own can stand in
        // for a system table, function or operator (the probes' tables still resolve in the
        // user's schema and `public`).
        let begin = format!(
            "BEGIN TRANSACTION READ ONLY; SET LOCAL statement_timeout = {millis}; \
             SET LOCAL search_path = pg_catalog, \"$user\", public, pg_temp"
        );
        let work = async {
            self.batch_execute(&begin).await.map_err(|e| describe(&e))?;
            let result = self.simple_query(sql).await.map_err(|e| describe(&e));
            // Nothing to keep: the transaction was read-only. A failed probe aborted it anyway.
            let _ = self.batch_execute("ROLLBACK").await;
            let rows = result?
                .into_iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(row) => {
                        Some((0..row.len()).map(|i| row.get(i).map(str::to_string)).collect())
                    }
                    _ => None,
                })
                .collect();
            Ok(rows)
        };
        match tokio::time::timeout(backstop(timeout), work).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} s", timeout.as_secs())),
        }
    }

    fn catalogue_sql(&self) -> &'static str {
        CATALOGUE
    }

    fn estimate(&self, estimate: i64, bytes: i64) -> Option<u64> {
        // No pages: empty. reltuples is -1 until the table is first analysed (PostgreSQL 14+).
        if bytes == 0 { Some(0) } else { u64::try_from(estimate).ok() }
    }

    fn count_sql(&self, schema: &str, table: &str) -> String {
        format!("SELECT pg_catalog.count(*) FROM {}.{}", quote_ident(schema), quote_ident(table))
    }
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A database error as reported: the SQLSTATE always; PostgreSQL's message only for the
/// classes whose messages name objects or limits, never values (22xxx, 23xxx and others
/// can quote row data).
fn describe(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        return crate::with_causes(e);
    };
    let code = db.code().code();
    if code == "57014" {
        return "timed out (statement_timeout)".into();
    }
    let safe = ["42", "25", "28", "3D", "3F", "08", "53", "57"].iter().any(|class| code.starts_with(class));
    if safe { format!("error {code}: {}", db.message()) } else { format!("error {code}") }
}
