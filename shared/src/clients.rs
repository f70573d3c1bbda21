//! AWS clients, built once per process (Lambda init) and shared by reference.
//!
//! Endpoints follow the standard `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` variables,
//! which `aws-config` reads itself; that is all it takes to point everything at the emulator.

use crate::ResourceKind;
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

impl Clients {
    /// Loads the environment's configuration and learns the account id (one STS call at init).
    pub async fn from_env() -> Result<Self> {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::from_config(config).await
    }

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
