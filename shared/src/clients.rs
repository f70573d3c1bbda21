//! AWS clients, built once per process (Lambda init) and shared by reference.
//!
//! Endpoints follow the standard `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` variables,
//! which `aws-config` reads itself; that is all it takes to point everything at the emulator.

use crate::ResourceKind;
use crate::config::{Env, is_account_id};
use crate::error::{Error, Result};
use crate::store::{SnapshotStore, Stores, ebs::Ebs, rds::RdsCluster, rds::RdsInstance};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct Clients {
    pub config: SdkConfig,
    pub account: String,
    pub region: String,
    pub rds: aws_sdk_rds::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub kms: aws_sdk_kms::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub events: aws_sdk_eventbridge::Client,
}

/// The platform variable (`shared/environment.json`) the stacks set to the function's account.
pub const ACCOUNT_ID: &str = "ACCOUNT_ID";

/// The account the deployment says the function runs in ([`ACCOUNT_ID`]), when set; one that
/// is not a 12-digit account id fails the init, naming the variable.
pub fn deployed_account(env: &Env) -> Result<Option<String>> {
    match env.optional(ACCOUNT_ID) {
        Some(account) if !is_account_id(&account) => {
            Err(Error::Config(format!("{ACCOUNT_ID}={account:?} is not a 12-digit AWS account id")))
        }
        account => Ok(account),
    }
}

impl Clients {
    /// Loads the process's AWS configuration, for the account `env` names in [`ACCOUNT_ID`].
    ///
    /// The stacks set it (the function's account is known at deploy time), so a Lambda's
    /// init makes no network call: the account is not in anything Lambda hands a function
    /// before its first invocation, and asking STS would cost a full TLS round trip on every
    /// cold start. Only where it is unset (the binary run outside the stacks) is the account
    /// learnt from STS `GetCallerIdentity`, as [`Clients::from_config`] does.
    pub async fn from_env(env: &Env) -> Result<Self> {
        let account = deployed_account(env)?;
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::for_account(config, account).await
    }

    /// `account` when it is known, else the account STS names for `config`'s identity.
    async fn for_account(config: SdkConfig, account: Option<String>) -> Result<Self> {
        match account {
            Some(account) => Self::with_account(config, account),
            None => Self::from_config(config).await,
        }
    }

    /// Learns the account of `config`'s identity: one STS `GetCallerIdentity` call.
    pub async fn from_config(config: SdkConfig) -> Result<Self> {
        let identity = aws_sdk_sts::Client::new(&config)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| Error::from_sdk("GetCallerIdentity", e))?;
        let account = identity
            .account()
            .ok_or_else(|| Error::Config("STS GetCallerIdentity returned no account".into()))?
            .to_string();
        Self::with_account(config, account)
    }

    /// Builds clients when the account is already known (no AWS call).
    pub fn with_account(config: SdkConfig, account: String) -> Result<Self> {
        let region = config
            .region()
            .map(|r| r.to_string())
            .ok_or_else(|| Error::Config("no AWS region: set AWS_REGION".into()))?;
        Ok(Clients {
            rds: aws_sdk_rds::Client::new(&config),
            ec2: aws_sdk_ec2::Client::new(&config),
            kms: aws_sdk_kms::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            events: aws_sdk_eventbridge::Client::new(&config),
            account,
            region,
            config,
        })
    }

    /// The same identity in another region (extra-region copies).
    pub fn for_region(&self, region: &str) -> Self {
        let config = self.config.to_builder().region(Region::new(region.to_string())).build();
        Self::with_account(config, self.account.clone()).expect("region was just set")
    }

    /// Acts as another account: STS AssumeRole into `role_arn`, credentials fixed for the
    /// session (operator CLI and local runs; Lambdas use their own role).
    pub async fn assume_role(base: &SdkConfig, role_arn: &str, session_name: &str) -> Result<SdkConfig> {
        let out = aws_sdk_sts::Client::new(base)
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(session_name)
            .send()
            .await
            .map_err(|e| Error::from_sdk("AssumeRole", e))?;
        let c = out
            .credentials()
            .ok_or_else(|| Error::Config(format!("AssumeRole into {role_arn} returned no credentials")))?;
        let credentials = aws_credential_types::Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "snapferry-assume-role",
        );
        Ok(base.to_builder().credentials_provider(SharedCredentialsProvider::new(credentials)).build())
    }
}

/// The AWS stores of this identity: any kind, in any region.
impl Stores for Clients {
    fn account(&self) -> &str {
        &self.account
    }

    fn region(&self) -> &str {
        &self.region
    }

    fn store_in(&self, kind: ResourceKind, region: &str) -> Arc<dyn SnapshotStore> {
        let clients = if region == self.region { self.clone() } else { self.for_region(region) };
        let (account, region) = (clients.account.as_str(), clients.region.as_str());
        match kind {
            ResourceKind::DbInstance => Arc::new(RdsInstance::new(clients.rds.clone(), account, region)),
            ResourceKind::DbCluster => Arc::new(RdsCluster::new(clients.rds.clone(), account, region)),
            ResourceKind::Ebs => Arc::new(Ebs::new(clients.ec2.clone(), account, region)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::retry::RetryConfig;

    fn env(pairs: &[(&'static str, &'static str)]) -> Env {
        let vars = [("QUEUE_URL", "q"), ("DLQ_URL", "d")].into_iter().chain(pairs.iter().copied());
        Env::from_pairs("restore", vars).unwrap()
    }

    #[test]
    fn the_deployed_account_is_checked() {
        assert_eq!(deployed_account(&env(&[])).unwrap(), None);
        assert_eq!(deployed_account(&env(&[("ACCOUNT_ID", " ")])).unwrap(), None, "blank is unset");
        assert_eq!(deployed_account(&env(&[("ACCOUNT_ID", "222222222222")])).unwrap().as_deref(), Some("222222222222"));
        let err = deployed_account(&env(&[("ACCOUNT_ID", "arn:aws:iam::222222222222:root")])).unwrap_err();
        assert!(err.to_string().contains("ACCOUNT_ID"), "{err}");
    }

    #[tokio::test]
    async fn a_deployed_account_takes_no_aws_call() {
        // Every call fails at once: nothing listens on port 1, and nothing is retried.
        let config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:1")
            .credentials_provider(SharedCredentialsProvider::new(aws_credential_types::Credentials::new(
                "AKID", "secret", None, None, "test",
            )))
            .retry_config(RetryConfig::disabled())
            .build();
        let clients = Clients::for_account(config.clone(), Some("222222222222".into())).await.unwrap();
        assert_eq!((clients.account.as_str(), clients.region.as_str()), ("222222222222", "eu-west-1"));
        let err = Clients::for_account(config, None).await.unwrap_err();
        assert!(err.to_string().contains("GetCallerIdentity"), "without it, STS is asked: {err}");
    }
}
