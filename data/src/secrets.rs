//! A database's master credentials from Secrets Manager: the secret RDS manages for the
//! master user (`MasterUserSecret`), or one an operator configured, both JSON with
//! `username` and `password` as RDS writes them. Nothing read here is ever logged or put in
//! an error: an error says what was wrong with the secret, never what it holds.

use crate::Password;
use serde::Deserialize;

/// Reads secrets with the step's own role.
#[derive(Debug, Clone)]
pub struct Secrets {
    client: aws_sdk_secretsmanager::Client,
}

/// A user name and its password.
#[derive(Debug)]
pub struct Credentials {
    pub username: String,
    pub password: Password,
}

#[derive(Deserialize)]
struct Stored {
    username: String,
    password: String,
}

impl Secrets {
    pub fn new(config: &aws_config::SdkConfig) -> Secrets {
        Secrets { client: aws_sdk_secretsmanager::Client::new(config) }
    }

    /// The credentials in the secret `arn`; why not, as a sentence naming only the secret.
    pub async fn credentials(&self, arn: &str) -> Result<Credentials, String> {
        let out = self.client.get_secret_value().secret_id(arn).send().await.map_err(|e| {
            let e = snapferry::Error::from_sdk("GetSecretValue", e);
            format!("secret {arn} could not be read: {e}")
        })?;
        parse(out.secret_string().unwrap_or_default()).ok_or_else(|| {
            format!("secret {arn} is not JSON with a username and a password (as RDS writes a master user's secret)")
        })
    }
}

/// The credentials of a secret's text; `None` (and no detail: it may quote the secret) if
/// it is not RDS's JSON.
fn parse(text: &str) -> Option<Credentials> {
    let stored: Stored = serde_json::from_str(text).ok()?;
    (!stored.username.is_empty() && !stored.password.is_empty())
        .then(|| Credentials { username: stored.username, password: stored.password.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_master_secret_is_read_as_rds_writes_it_and_nothing_else() {
        let c = parse(r#"{"username": "owner", "password": "p4ss-w0rd", "engine": "postgres"}"#).unwrap();
        assert_eq!((c.username.as_str(), c.password.expose()), ("owner", "p4ss-w0rd"));
        assert!(!format!("{c:?}").contains("p4ss-w0rd"), "a debug print shows no password");
        for bad in ["p4ss-w0rd", "", "{}", r#"{"username": "owner"}"#, r#"{"username": "", "password": "x"}"#] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }
}
