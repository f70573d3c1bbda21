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
    pub dynamodb: aws_sdk_dynamodb::Client,
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

/// The root certificates of Amazon Trust Services, the CA of every AWS service endpoint:
/// Amazon Root CA 1 to 4 and Starfield Services Root Certificate Authority - G2, the five it
/// recommends a custom trust store include (https://www.amazontrust.com/repository/).
pub const AMAZON_TRUST_SERVICES_PEM: &str = include_str!("../certs/amazon-trust-services.pem");

/// The variables that name CA certificates (OpenSSL's, which the SDK's default trust store
/// reads: then it reads those and nothing else).
pub const CA_VARIABLES: [&str; 2] = ["SSL_CERT_FILE", "SSL_CERT_DIR"];

/// The CA certificates a Lambda's AWS calls trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// [`AMAZON_TRUST_SERVICES_PEM`], compiled in. A Lambda calls AWS and nothing else, and
    /// the system's store costs a cold start every file of its CA directory, parsed again for
    /// each client (the SDK loads it when a client is built, so that no request pays for it).
    AmazonTrustServices,
    /// The SDK's default: what [`CA_VARIABLES`] name, for a function whose calls pass a
    /// TLS-inspecting proxy with a CA of its own.
    Named,
}

/// What the function's environment says to trust. A named file or directory that is not
/// there fails the init, naming the variable: the SDK would only log it, and then trust
/// nothing, so every call would fail with a TLS error.
pub fn trust(env: &Env) -> Result<Trust> {
    let mut trust = Trust::AmazonTrustServices;
    for name in CA_VARIABLES {
        let Some(path) = env.optional(name) else { continue };
        let meta = std::fs::metadata(&path);
        let expected = if name == "SSL_CERT_DIR" { "a directory" } else { "a file" };
        let found = meta.as_ref().map(|m| if name == "SSL_CERT_DIR" { m.is_dir() } else { m.is_file() });
        if !matches!(found, Ok(true)) {
            let why = meta.err().map_or_else(|| format!("not {expected}"), |e| e.to_string());
            return Err(Error::Config(format!("{name}={path:?} must name {expected} of CA certificates: {why}")));
        }
        trust = Trust::Named;
    }
    Ok(trust)
}

/// The SDK's default HTTPS client (rustls on aws-lc-rs, a proxy from `HTTPS_PROXY` and the
/// like), trusting [`AMAZON_TRUST_SERVICES_PEM`] only.
pub fn amazon_trust_services_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore, rustls_provider::CryptoMode};
    use aws_smithy_http_client::{Builder, ConnectorBuilder, proxy::ProxyConfig};
    let roots = TrustStore::empty().with_native_roots(false).with_pem_certificate(AMAZON_TRUST_SERVICES_PEM);
    let tls = TlsContext::builder().with_trust_store(roots).build().expect("a trust store of PEM certificates");
    Builder::new().build_with_connector_fn(move |settings, components| {
        let mut connector =
            ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::AwsLc)).tls_context(tls.clone());
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

impl Clients {
    /// Loads the process's AWS configuration, for the account `env` names in [`ACCOUNT_ID`].
    ///
    /// The stacks set it (the function's account is known at deploy time), so a Lambda's
    /// init makes no network call: the account is not in anything Lambda hands a function
    /// before its first invocation, and asking STS would cost a full TLS round trip on every
    /// cold start. Only where it is unset (the binary run outside the stacks) is the account
    /// learnt from STS `GetCallerIdentity`, as [`Clients::from_config`] does.
    ///
    /// The HTTPS client trusts what [`trust`] says: Amazon Trust Services' roots alone, unless
    /// the function names CA certificates of its own.
    pub async fn from_env(env: &Env) -> Result<Self> {
        let account = deployed_account(env)?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if trust(env)? == Trust::AmazonTrustServices {
            loader = loader.http_client(amazon_trust_services_client());
        }
        Self::for_account(loader.load().await, account).await
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
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
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
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use sha2::{Digest, Sha256};

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

    /// The SHA-256 of each root's subject public key info, as Amazon Trust Services lists
    /// them (https://www.amazontrust.com/repository/): Amazon Root CA 1 to 4, then Starfield
    /// Services Root Certificate Authority - G2.
    const PUBLISHED: [&str; 5] = [
        "fbe3018031f9586bcbf41727e417b7d1c45c2f47f93be372a17b96b50757d5a2",
        "7f4296fc5b6a4e3b35d3c369623e364ab1af381d8fa7121533c9d6c633ea2461",
        "36abc32656acfc645c61b71613c4bf21c787f5cabbee48348d58597803d7abc9",
        "f7ecded5c66047d28ed6466b543c40e0743abe81d109254dcf845d4c2c7853c5",
        "2b071c59a0a0ae76b0eadb2bad23bad4580b69c3601b630c2eaf0613afa83f92",
    ];

    #[test]
    fn the_compiled_in_roots_are_the_five_amazon_trust_services_publishes() {
        let certs: Vec<CertificateDer> = CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES_PEM.as_bytes())
            .collect::<std::result::Result<_, _>>()
            .expect("PEM certificates");
        let hashes: Vec<String> = certs
            .iter()
            .map(|der| {
                let anchor = webpki::anchor_from_trusted_cert(der).expect("a root certificate");
                // webpki keeps the SubjectPublicKeyInfo's contents; the published hash is of
                // the whole DER SEQUENCE.
                let contents = anchor.subject_public_key_info.as_ref();
                let mut spki = vec![0x30];
                match contents.len() {
                    n if n < 0x80 => spki.push(n as u8),
                    n if n < 0x100 => spki.extend([0x81, n as u8]),
                    n => spki.extend([0x82, (n >> 8) as u8, n as u8]),
                }
                spki.extend_from_slice(contents);
                Sha256::digest(&spki).iter().map(|b| format!("{b:02x}")).collect()
            })
            .collect();
        assert_eq!(hashes, PUBLISHED);
    }

    #[test]
    fn naming_a_ca_file_or_directory_turns_to_the_sdks_own_store() {
        let dir = std::env::temp_dir();
        let file = dir.join(format!("snapferry-ca-{}.pem", std::process::id()));
        std::fs::write(&file, AMAZON_TRUST_SERVICES_PEM).unwrap();
        let (file_s, dir_s) = (file.to_string_lossy().to_string(), dir.to_string_lossy().to_string());
        let (file_s, dir_s): (&'static str, &'static str) = (file_s.leak(), dir_s.leak());
        assert_eq!(trust(&env(&[])).unwrap(), Trust::AmazonTrustServices);
        assert_eq!(trust(&env(&[("SSL_CERT_FILE", " ")])).unwrap(), Trust::AmazonTrustServices, "blank is unset");
        assert_eq!(trust(&env(&[("SSL_CERT_FILE", file_s)])).unwrap(), Trust::Named);
        assert_eq!(trust(&env(&[("SSL_CERT_DIR", dir_s)])).unwrap(), Trust::Named);
        // Named but not there (or not of its kind): the init fails, naming the variable.
        for (name, path) in
            [("SSL_CERT_FILE", "/nonexistent/ca.pem"), ("SSL_CERT_FILE", dir_s), ("SSL_CERT_DIR", file_s)]
        {
            let err = trust(&env(&[(name, path)])).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains(path), "{err}");
        }
        let _ = std::fs::remove_file(&file);
    }
}
