//! `snapferry demo` and `snapferry local`: the whole chain on the local emulator.
//!
//! Two accounts act through STS AssumeRole, as an operator would against AWS. The demo
//! creates three databases in the source account (MySQL on the AWS-managed key, PostgreSQL
//! on the sharing CMK, an Aurora cluster), fires the schedule and runs the real handlers
//! until every backup is restore-verified in the backup account, then prints a table.

use crate::pipeline::{LocalPipeline, PipelineOptions};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use snapferry::clients::Clients;
use snapferry::error::{Error, Result};
use snapferry::events::{EventEnvelope, PipelineEvent, Step};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Documentation placeholder account ids; the emulator accepts any.
pub const SOURCE_ACCOUNT: &str = "111111111111";
pub const TARGET_ACCOUNT: &str = "222222222222";

#[derive(Debug, Clone, clap::Args)]
pub struct LocalArgs {
    /// The emulator's endpoint (as printed by `scripts/emulator start`).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub endpoint: String,
    #[arg(long, default_value = "us-east-1", env = "AWS_REGION")]
    pub region: String,
    /// Regions the backup account copies to besides its own (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "eu-west-1")]
    pub extra_regions: Vec<String>,
    /// Databases to back up: a regex on the database identifier.
    #[arg(long, default_value = ".*")]
    pub select: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub local: LocalArgs,
    /// Give up when not every backup is verified after this long.
    #[arg(long, default_value = "240")]
    pub timeout_seconds: u64,
    /// Keep the pipeline running afterwards, until Ctrl-C.
    #[arg(long)]
    pub keep_running: bool,
}

/// Acts as `account` through the emulator (STS AssumeRole, as against AWS).
pub async fn account(endpoint: &str, region: &str, account: &str) -> Result<Clients> {
    let base = base_config(endpoint, region).await;
    let config =
        Clients::assume_role(&base, &format!("arn:aws:iam::{account}:role/snapferry-operator"), "snapferry").await?;
    Clients::with_account(config, account.to_string())
}

async fn base_config(endpoint: &str, region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(aws_credential_types::Credentials::new("local", "local", None, None, "local"))
        .load()
        .await
}

async fn start(args: &LocalArgs) -> Result<LocalPipeline> {
    let source = account(&args.endpoint, &args.region, SOURCE_ACCOUNT).await?;
    let target = account(&args.endpoint, &args.region, TARGET_ACCOUNT).await?;
    regex::Regex::new(&args.select).map_err(|e| Error::Config(format!("--select: {e}")))?;
    let options = PipelineOptions {
        select_regex: Some(args.select.clone()),
        extra_regions: args.extra_regions.iter().filter(|r| !r.is_empty()).cloned().collect(),
        ..Default::default()
    };
    LocalPipeline::start(source, target, &options).await
}

pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    let started = Instant::now();
    println!(
        "snapferry demo on {} ({}): source account {SOURCE_ACCOUNT}, backup account {TARGET_ACCOUNT}, extra regions {:?}",
        args.local.endpoint, args.local.region, args.local.extra_regions
    );
    let pipeline = start(&args.local).await?;
    println!(
        "[setup]  pipeline deployed from shared/routing.json: buses, rules, queues with DLQs, cross-account route"
    );
    println!("[setup]  source sharing CMK {}", pipeline.sharing_key);
    println!("[setup]  backup CMK {}", pipeline.target_key);
    let databases = create_databases(&pipeline).await?;
    for (name, what) in &databases {
        println!("[source] database {name}: {what}");
    }
    pipeline.host.fire_schedule().await?;
    println!("[source] schedule fired\n");

    let fired = chrono::Utc::now();
    let mut rows: BTreeMap<String, Row> = databases.iter().map(|(n, _)| (n.to_string(), Row::default())).collect();
    let deadline = Instant::now() + Duration::from_secs(args.timeout_seconds);
    while !rows.values().all(Row::finished) {
        if Instant::now() > deadline {
            println!("\ntimed out after {}s", args.timeout_seconds);
            break;
        }
        let handled = pipeline.host.poll_once().await?;
        for event in pipeline.events().await? {
            print_progress(&event, fired);
            if let Some(row) = rows.get_mut(&event.detail.origin.resource_id) {
                row.record(&event.detail, fired);
            }
        }
        if handled == 0 {
            // Nothing queued: the emulator is still creating or copying.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    print_table(&rows);
    let ok = rows.values().all(|r| r.verified.is_some());
    println!(
        "\n{} in {:.1}s",
        if ok { "OK: every backup was copied, and proven to restore" } else { "FAILED: not every backup was verified" },
        started.elapsed().as_secs_f64()
    );
    if args.keep_running {
        serve(&pipeline, &args.local).await?;
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `snapferry local`: the pipeline without demo data, until Ctrl-C.
pub async fn local(args: LocalArgs) -> Result<ExitCode> {
    let pipeline = start(&args).await?;
    serve(&pipeline, &args).await?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(pipeline: &LocalPipeline, args: &LocalArgs) -> Result<()> {
    println!("\nsnapferry is running locally; Ctrl-C stops it.");
    println!("  AWS_ENDPOINT_URL={}", args.endpoint);
    println!(
        "  source account {SOURCE_ACCOUNT} (role arn:aws:iam::{SOURCE_ACCOUNT}:role/any), backup account {TARGET_ACCOUNT}"
    );
    println!("  any AWS client acting as the source account sets the chain off, e.g. taking a snapshot;");
    let me = std::env::args().next().unwrap_or_else(|| "snapferry".into());
    println!("  fire the schedule with: {me} fire-schedule --endpoint {}", args.endpoint);
    let fired = chrono::Utc::now();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            handled = pipeline.host.poll_once() => {
                for event in pipeline.events().await? {
                    print_progress(&event, fired);
                }
                if handled? == 0 {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        }
    }
}

/// `snapferry fire-schedule`: what the EventBridge schedule does, on demand.
pub async fn fire_schedule(args: LocalArgs) -> Result<ExitCode> {
    let pipeline = start(&args).await?;
    let sent = pipeline.host.fire_schedule().await?;
    println!("fired {sent} schedule(s); a running `snapferry local` or `demo --keep-running` picks it up");
    Ok(ExitCode::SUCCESS)
}

async fn create_databases(pipeline: &LocalPipeline) -> Result<Vec<(&'static str, String)>> {
    let rds = &pipeline.source.rds;
    let instance = |id: &'static str, engine: &'static str, version: &'static str, key: Option<String>| async move {
        let r = rds
            .create_db_instance()
            .db_instance_identifier(id)
            .engine(engine)
            .engine_version(version)
            .db_instance_class("db.t4g.micro")
            .allocated_storage(20)
            .master_username("admin")
            .manage_master_user_password(true)
            .storage_encrypted(true)
            .set_kms_key_id(key)
            .send()
            .await;
        exists_ok(r.map(|_| ()).map_err(|e| Error::from_sdk("CreateDBInstance", e)))
    };
    instance("orders-mysql", "mysql", "8.0.39", None).await?;
    instance("billing-postgres", "postgres", "16.4", Some(pipeline.sharing_key.clone())).await?;
    let r = rds
        .create_db_cluster()
        .db_cluster_identifier("inventory-aurora")
        .engine("aurora-postgresql")
        .engine_version("16.4")
        .master_username("admin")
        .manage_master_user_password(true)
        .storage_encrypted(true)
        .send()
        .await;
    exists_ok(r.map(|_| ()).map_err(|e| Error::from_sdk("CreateDBCluster", e)))?;
    Ok(vec![
        ("orders-mysql", "MySQL 8.0 instance on the AWS-managed key aws/rds (must be re-encrypted to share)".into()),
        ("billing-postgres", "PostgreSQL 16 instance on the sharing CMK (shared as it is)".into()),
        ("inventory-aurora", "Aurora PostgreSQL cluster on aws/rds (no copy-finished event: re-checked)".into()),
    ])
}

fn exists_ok(r: Result<()>) -> Result<()> {
    match r {
        Err(Error::AlreadyExists { .. }) => Ok(()),
        other => other,
    }
}

fn since(t: chrono::DateTime<chrono::Utc>, from: chrono::DateTime<chrono::Utc>) -> f64 {
    (t - from).num_milliseconds() as f64 / 1000.0
}

fn print_progress(event: &EventEnvelope<PipelineEvent>, fired: chrono::DateTime<chrono::Utc>) {
    let e = &event.detail;
    let detail = match &e.step {
        Step::Shared { target_account, .. } => format!("{} shared with {target_account}", e.snapshot.id),
        Step::CopyStarted { destination_region } => format!("copying to {} in {destination_region}", e.snapshot.id),
        Step::Copied {} => format!("{} available in {}", e.snapshot.id, e.snapshot.region),
        Step::RestoreVerified { restore_seconds, .. } => format!("{} restored in {restore_seconds:.1}s", e.snapshot.id),
        Step::RestoreFailed { reason } => format!("{}: {reason}", e.snapshot.id),
        Step::Rejected { reason, .. } => format!("{}: {reason}", e.snapshot.id),
        Step::Expired {} => e.snapshot.id.clone(),
    };
    println!(
        "[+{:>5.1}s] {:<17} {:<22} {detail}",
        since(e.emitted_at, fired),
        e.origin.resource_id,
        e.step.detail_type()
    );
}

#[derive(Debug, Default)]
struct Row {
    source_snapshot: Option<String>,
    shared_copy: Option<String>,
    copies: Vec<String>,
    shared_at: Option<f64>,
    copied_at: Option<f64>,
    verified_at: Option<f64>,
    verified: Option<f64>,
    failed: Option<String>,
}

impl Row {
    fn record(&mut self, e: &PipelineEvent, fired: chrono::DateTime<chrono::Utc>) {
        let t = since(e.emitted_at, fired);
        self.source_snapshot = Some(e.origin.id.clone());
        match &e.step {
            Step::Shared { .. } => {
                self.shared_copy = Some(e.snapshot.id.clone());
                self.shared_at.get_or_insert(t);
            }
            Step::Copied {} => {
                let copy = format!("{} ({})", e.snapshot.id, e.snapshot.region);
                if !self.copies.contains(&copy) {
                    self.copies.push(copy);
                }
                self.copied_at.get_or_insert(t);
            }
            Step::RestoreVerified { restore_seconds, .. } => {
                self.verified = Some(*restore_seconds);
                self.verified_at.get_or_insert(t);
            }
            Step::RestoreFailed { reason } | Step::Rejected { reason, .. } => self.failed = Some(reason.clone()),
            _ => {}
        }
    }

    fn finished(&self) -> bool {
        self.verified.is_some() || self.failed.is_some()
    }
}

fn print_table(rows: &BTreeMap<String, Row>) {
    let dash = || "-".to_string();
    println!(
        "\n{:<17} {:<44} {:<44} {:<58} {:<16} {:>7} {:>7} {:>7}",
        "resource", "source snapshot", "shared copy", "target copies", "restore", "share s", "copy s", "test s"
    );
    for (name, r) in rows {
        let copies = if r.copies.is_empty() { dash() } else { r.copies.join(", ") };
        let restore = match (&r.verified, &r.failed) {
            (Some(s), _) => format!("verified {s:.1}s"),
            (None, Some(why)) => format!("FAILED: {why}"),
            _ => "not yet".into(),
        };
        let step = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.1}", b - a),
            _ => dash(),
        };
        println!(
            "{:<17} {:<44} {:<44} {:<58} {:<16} {:>7} {:>7} {:>7}",
            name,
            r.source_snapshot.clone().unwrap_or_else(dash),
            r.shared_copy.clone().unwrap_or_else(dash),
            copies,
            restore,
            r.shared_at.map(|t| format!("{t:.1}")).unwrap_or_else(dash),
            step(r.shared_at, r.copied_at),
            step(r.copied_at, r.verified_at),
        );
    }
}
