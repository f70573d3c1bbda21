//! `snapferry demo`: the cross-account share on the local emulator, step by step.
//!
//! Uses the same resource-kind abstraction the Lambdas use, acting as each account via
//! STS AssumeRole exactly as an operator would against AWS.

use aws_config::{BehaviorVersion, Region};
use snapferry::clients::Clients;
use snapferry::error::{Error, Result};
use snapferry::kind::{CopyRequest, Snapshot, SnapshotStore, Status};
use snapferry::tags::{Lineage, Tags};
use snapferry::{ResourceKind, naming};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Documentation placeholder account ids; the emulator accepts any.
pub const SOURCE_ACCOUNT: &str = "111111111111";
pub const TARGET_ACCOUNT: &str = "222222222222";
const SHARING_KEY_ALIAS: &str = "alias/snapferry-sharing";
const DATABASE: &str = "orders-mysql";

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The emulator's endpoint (as printed by `scripts/emulator start`).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub endpoint: String,
    #[arg(long, default_value = "us-east-1", env = "AWS_REGION")]
    pub region: String,
    /// How long to wait for any one snapshot to become available.
    #[arg(long, default_value = "60")]
    pub timeout_seconds: u64,
}

pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    println!(
        "snapferry demo on {} ({}): source account {SOURCE_ACCOUNT}, backup account {TARGET_ACCOUNT}",
        args.endpoint, args.region
    );
    let base = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(args.region.clone()))
        .endpoint_url(&args.endpoint)
        .credentials_provider(aws_credential_types::Credentials::new("demo", "demo", None, None, "demo"))
        .load()
        .await;
    let act_as = |account: &'static str| {
        let base = base.clone();
        async move {
            let config =
                Clients::assume_role(&base, &format!("arn:aws:iam::{account}:role/snapferry-demo"), "demo").await?;
            Clients::with_account(config, account.to_string())
        }
    };
    let source = act_as(SOURCE_ACCOUNT).await?;
    let target = act_as(TARGET_ACCOUNT).await?;
    let timeout = Duration::from_secs(args.timeout_seconds);

    let key_arn = sharing_key(&source).await?;
    println!("[source] sharing CMK {SHARING_KEY_ALIAS}: {key_arn}");
    database_on_aws_managed_key(&source).await?;
    println!("[source] database {DATABASE}: MySQL, encrypted with the AWS-managed key aws/rds");

    let store = source.store(ResourceKind::DbInstance);
    let started = Instant::now();
    let snapshot_id = naming::create_snapshot_id(DATABASE, chrono::Utc::now());
    let lineage = |step: &str, source_arn: &str| {
        Lineage {
            source_arn: source_arn.to_string(),
            source_account: SOURCE_ACCOUNT.to_string(),
            correlation_id: "demo".to_string(),
            step: step.to_string(),
        }
        .tags()
    };
    let db_arn = format!("arn:aws:rds:{}:{SOURCE_ACCOUNT}:db:{DATABASE}", args.region);
    store.create(DATABASE, &snapshot_id, &lineage("create", &db_arn)).await?;
    let original = wait_available(store.as_ref(), &snapshot_id, timeout).await?;
    println!(
        "[source] snapshot {} available in {:.1}s (key {})",
        original.id,
        started.elapsed().as_secs_f64(),
        key_of(&original)
    );

    match store.share(&original, &[TARGET_ACCOUNT.to_string()]).await {
        Err(e) => println!("[source] sharing it as it is is refused, as in AWS: {e}"),
        Ok(()) => {
            println!("[source] ERROR: sharing a snapshot on aws/rds was accepted; the emulator layer is not active");
            return Ok(ExitCode::FAILURE);
        }
    }

    let started = Instant::now();
    let copy_id = naming::shared_copy_id(&original.id);
    let tags: Tags = lineage("share", &original.arn);
    store
        .copy(&CopyRequest {
            source: &original.id,
            source_region: None,
            target_id: &copy_id,
            kms_key_id: Some(&key_arn),
            tags: &tags,
        })
        .await?;
    let copy = wait_available(store.as_ref(), &copy_id, timeout).await?;
    println!(
        "[source] re-encrypted copy {} available in {:.1}s (key {})",
        copy.id,
        started.elapsed().as_secs_f64(),
        key_of(&copy)
    );
    store.share(&copy, &[TARGET_ACCOUNT.to_string()]).await?;
    println!("[source] shared {} with {TARGET_ACCOUNT}", copy.id);

    let seen = target.store(ResourceKind::DbInstance).describe(&copy.arn).await?;
    let hidden = target.store(ResourceKind::DbInstance).describe(&original.arn).await?;
    println!();
    println!("{:<46} {:<14} {:<10} key", "snapshot (as the backup account sees it)", "owner", "encrypted");
    for (arn, s) in [(&copy.arn, &seen), (&original.arn, &hidden)] {
        match s {
            Some(s) => println!("{:<46} {:<14} {:<10} {}", s.id, s.account, s.encrypted, key_of(s)),
            None => println!(
                "{:<46} {:<14} {:<10} not visible (not shared)",
                arn.rsplit(':').next().unwrap_or(arn),
                "-",
                "-"
            ),
        }
    }
    let ok = seen.as_ref().is_some_and(|s| s.encrypted && s.kms_key_id.as_deref() == Some(key_arn.as_str()))
        && hidden.is_none();
    println!();
    if ok {
        println!("OK: the backup account sees the re-encrypted copy, and only that.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("FAILED: the backup account does not see exactly the re-encrypted copy.");
        Ok(ExitCode::FAILURE)
    }
}

fn key_of(s: &Snapshot) -> &str {
    s.kms_key_id.as_deref().unwrap_or("none")
}

/// The sharing CMK: the target account may use it, the source account keeps managing it
/// (see ../shared/AWS-FACTS.md, "KMS permissions").
async fn sharing_key(source: &Clients) -> Result<String> {
    if let Ok(found) = source.kms.describe_key().key_id(SHARING_KEY_ALIAS).send().await
        && let Some(arn) = found.key_metadata().and_then(|m| m.arn())
    {
        return Ok(arn.to_string());
    }
    let policy = snapferry::kms::sharing_key_policy(SOURCE_ACCOUNT, &[TARGET_ACCOUNT.to_string()]);
    let created = source
        .kms
        .create_key()
        .description("snapferry sharing key")
        .policy(policy.to_string())
        .send()
        .await
        .map_err(|e| Error::from_sdk("CreateKey", e))?;
    let meta = created.key_metadata().ok_or_else(|| Error::BadInput("CreateKey returned no key".into()))?;
    source
        .kms
        .create_alias()
        .alias_name(SHARING_KEY_ALIAS)
        .target_key_id(meta.key_id())
        .send()
        .await
        .map_err(|e| Error::from_sdk("CreateAlias", e))?;
    Ok(meta.arn().unwrap_or(meta.key_id()).to_string())
}

async fn database_on_aws_managed_key(source: &Clients) -> Result<()> {
    let created = source
        .rds
        .create_db_instance()
        .db_instance_identifier(DATABASE)
        .engine("mysql")
        .engine_version("8.0.39")
        .db_instance_class("db.t4g.micro")
        .allocated_storage(20)
        .master_username("admin")
        .manage_master_user_password(true)
        .storage_encrypted(true)
        .send()
        .await;
    match created.map_err(|e| Error::from_sdk("CreateDBInstance", e)) {
        Ok(_) | Err(Error::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Polls with a deadline: the CLI has no queue to come back through.
async fn wait_available(store: &dyn SnapshotStore, id: &str, timeout: Duration) -> Result<Snapshot> {
    let deadline = Instant::now() + timeout;
    loop {
        match store.describe(id).await? {
            Some(s) if s.status == Status::Available => return Ok(s),
            Some(Snapshot { status: Status::Failed(why), .. }) => {
                return Err(Error::Permanent {
                    op: "wait",
                    code: "SnapshotFailed".into(),
                    message: format!("{id}: {why}"),
                    hint: None,
                });
            }
            _ if Instant::now() > deadline => {
                return Err(Error::Retryable {
                    retry: snapferry::error::Retry::NotReady,
                    op: "wait",
                    code: "Timeout".into(),
                    message: format!("{id} not available after {timeout:?}"),
                });
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
