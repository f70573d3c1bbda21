//! The source database's figures at share time (`SOURCE_DATA_CHECKS`): the restore test of
//! its copy compares against them. The same built-in checks the restore step runs (the
//! catalogue's tables and estimated rows, see [`snapferry_data`]), over TLS, in read-only
//! transactions under the statement time limit, logged in with the master user's secret
//! (RDS's own, or one configured). Counts only: the event carries no row data and no
//! credential.

use async_trait::async_trait;
use regex::Regex;
use serde::Deserialize;
use snapferry::error::{Error, Result};
use snapferry::store::Database;
use snapferry::tags::SourceFigures;
use snapferry_data::secrets::Secrets;
use snapferry_data::{Connection, Engine, Target};

/// `SOURCE_DATA_CHECKS`, with how to reach the databases.
#[derive(Debug, Clone)]
pub struct SourceDataConfig {
    pub databases: Vec<SourceDatabase>,
    pub connection: Connection,
}

/// The source databases `resources` matches (the first matching entry applies; a
/// database no entry matches is not measured).
#[derive(Debug, Clone)]
pub struct SourceDatabase {
    pub resources: Regex,
    /// The database to log in to; the resource's `DBName`, else `postgres` (PostgreSQL) or
    /// none (MySQL: every database is listed), as the restore step does.
    pub database: Option<String>,
    /// The Secrets Manager secret to log in with; `None`: the one RDS manages for the
    /// master user (`MasterUserSecret`).
    pub secret: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    databases: Vec<RawDatabase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    resources: String,
    database: Option<String>,
    secret: Option<String>,
}

impl SourceDataConfig {
    /// Parses and validates `SOURCE_DATA_CHECKS`; every error names the entry at fault.
    pub fn parse(raw: &str, connection: Connection) -> Result<SourceDataConfig> {
        let bad = |m: String| Error::Config(format!("SOURCE_DATA_CHECKS: {m}"));
        let parsed: RawConfig = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
        if parsed.databases.is_empty() {
            return Err(bad("databases is empty: name the databases to measure, or unset the variable".into()));
        }
        let mut databases = Vec::new();
        for (i, db) in parsed.databases.into_iter().enumerate() {
            let at = format!("databases[{i}]");
            let resources =
                Regex::new(&db.resources).map_err(|e| bad(format!("{at}.resources is not a valid regex: {e}")))?;
            if db.database.as_deref().is_some_and(|d| d.trim().is_empty()) {
                return Err(bad(format!("{at}.database is empty")));
            }
            if let Some(secret) = &db.secret
                && !is_secret_arn(secret)
            {
                return Err(bad(format!("{at}.secret {secret:?} is not a Secrets Manager secret ARN")));
            }
            databases.push(SourceDatabase { resources, database: db.database, secret: db.secret });
        }
        Ok(SourceDataConfig { databases, connection })
    }

    /// The entry for the source database `resource`, if it is to be measured.
    pub fn for_resource(&self, resource: &str) -> Option<&SourceDatabase> {
        self.databases.iter().find(|d| d.resources.is_match(resource))
    }
}

/// `arn:<partition>:secretsmanager:<region>:<account>:secret:<name>`.
fn is_secret_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "secretsmanager", region, account, "secret", name]
        if !partition.is_empty() && !region.is_empty() && snapferry::config::is_account_id(account) && !name.is_empty())
}

/// Measures a source database: the port behind the share step's figures, so its decisions
/// are tested without a database.
#[async_trait]
pub trait Meter: Send + Sync {
    /// The figures of `database` as `entry` says to log in to it; why not, as a sentence
    /// that names no credential.
    async fn measure(&self, database: &Database, entry: &SourceDatabase) -> std::result::Result<SourceFigures, String>;
}

/// The meter of a Lambda: the secret from Secrets Manager, a TLS login, the catalogue.
pub struct AwsMeter {
    secrets: Secrets,
    connection: Connection,
}

impl AwsMeter {
    pub fn new(aws: &aws_config::SdkConfig, connection: Connection) -> AwsMeter {
        AwsMeter { secrets: Secrets::new(aws), connection }
    }
}

#[async_trait]
impl Meter for AwsMeter {
    async fn measure(&self, database: &Database, entry: &SourceDatabase) -> std::result::Result<SourceFigures, String> {
        let rds_engine = database.engine.as_deref().unwrap_or_default();
        let engine = Engine::of(rds_engine).ok_or_else(|| format!("engine {rds_engine:?} has no data checks"))?;
        let endpoint = database.endpoint.as_ref().ok_or("RDS reports no endpoint")?;
        let secret = entry.secret.as_deref().or(database.master_secret_arn.as_deref()).ok_or(
            "no secret to log in with: RDS does not manage this database's master password and none is configured",
        )?;
        let credentials = self.secrets.credentials(secret).await?;
        let name = entry.database.as_deref().or(endpoint.database.as_deref()).or(engine.default_database());
        let target = Target {
            engine,
            host: &endpoint.host,
            port: endpoint.port,
            user: &credentials.username,
            database: name,
            password: &credentials.password,
        };
        let timeout = self.connection.timeout;
        let mut session = snapferry_data::connect(&target, &self.connection.tls, timeout)
            .await
            .map_err(|snapferry_data::NotReached(why)| format!("could not log in: {why}"))?;
        let tables = snapferry_data::catalogue(session.as_mut(), timeout).await?;
        Ok(snapferry_data::figures(&tables))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection() -> Connection {
        Connection { timeout: std::time::Duration::from_secs(10), tls: snapferry_data::tls_config(None).unwrap() }
    }

    #[test]
    fn the_config_is_validated_and_errors_name_the_entry() {
        let secret = "arn:aws:secretsmanager:us-east-1:111111111111:secret:orders-reader-AbCdEf";
        let raw = format!(
            r#"{{"databases": [{{"resources": "^prod-orders$", "database": "app", "secret": "{secret}"}},
                               {{"resources": "^prod-"}}]}}"#
        );
        let c = SourceDataConfig::parse(&raw, connection()).unwrap();
        let orders = c.for_resource("prod-orders").unwrap();
        assert_eq!((orders.database.as_deref(), orders.secret.as_deref()), (Some("app"), Some(secret)));
        let other = c.for_resource("prod-billing").unwrap();
        assert_eq!((other.database.as_deref(), other.secret.as_deref()), (None, None), "RDS's own secret");
        assert!(c.for_resource("staging-orders").is_none(), "not measured");
        let cases = [
            (r#"{"databases": []}"#, "databases is empty"),
            (r#"{}"#, "missing field `databases`"),
            (
                r#"{"databases": [{"resources": "x"}, {"resources": "("}]}"#,
                "databases[1].resources is not a valid regex",
            ),
            (r#"{"databases": [{"database": "app"}]}"#, "missing field `resources`"),
            (r#"{"databases": [{"resources": "x", "database": " "}]}"#, "databases[0].database is empty"),
            (r#"{"databases": [{"resources": "x", "secret": "orders-reader"}]}"#, "databases[0].secret"),
            (
                r#"{"databases": [{"resources": "x", "secret": "arn:aws:secretsmanager:us-east-1:1111:secret:x"}]}"#,
                "not a Secrets Manager secret ARN",
            ),
            (
                r#"{"databases": [{"resources": "x", "secret": "arn:aws:ssm:us-east-1:111111111111:parameter/x"}]}"#,
                "not a Secrets Manager secret ARN",
            ),
            (r#"{"databases": [{"resources": "x", "password": "p"}]}"#, "unknown field `password`"),
            ("not json", "SOURCE_DATA_CHECKS"),
        ];
        for (raw, want) in cases {
            let e = SourceDataConfig::parse(raw, connection()).unwrap_err().to_string();
            assert!(e.contains("SOURCE_DATA_CHECKS") && e.contains(want), "{raw}: {e}");
        }
    }
}
