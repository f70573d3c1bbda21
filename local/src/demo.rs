//! `snapferry demo` and `snapferry local`: the whole chain on the local emulator.
//!
//! Two accounts act through STS AssumeRole, as an operator would against AWS. The demo
//! creates three databases in the source account (MySQL on the AWS-managed key, PostgreSQL
//! on the sharing CMK, an Aurora cluster), an EBS volume on the AWS-managed key and an EC2
//! instance with two volumes (one crash-consistent set), fires the schedule and runs the
//! real handlers until every backup is restore-verified (and each EBS copy locked) in the
//! backup account, then prints a table. Rows are written into the PostgreSQL instance and
//! the Aurora PostgreSQL cluster first, and each of their restore tests checks them (data
//! checks): the table shows the tables and rows found and the data recovery point.

use crate::pipeline::{LocalPipeline, PipelineOptions};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use snapferry::ResourceKind;
use snapferry::clients::Clients;
use snapferry::error::{Error, Result};
use snapferry::events::{EventEnvelope, PipelineEvent, Step};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Documentation placeholder account ids; the emulator accepts any.
pub const SOURCE_ACCOUNT: &str = "111111111111";
pub const TARGET_ACCOUNT: &str = "222222222222";
/// A second source account into the same backup account: its backups go on beside the
/// first's, each counted and budgeted on its own.
pub const NEIGHBOUR_ACCOUNT: &str = "444444444444";
/// The opt-in tag of the demo's EC2 instance.
const DEMO_INSTANCE_TAG: &str = "backup=snapferry";

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Example:\n  snapferry local --endpoint http://127.0.0.1:5000")]
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
    /// Copies of a kind the emulator runs at once into one region, where its copy quotas
    /// were lowered (`kind=count,...`, e.g. `db-instance=4,db-cluster=2,ebs=4`); AWS's
    /// defaults (20, 5, 20) otherwise.
    #[arg(long)]
    pub copy_slots: Option<String>,
    /// Source accounts copying into the backup account: 111111111111, then 444444444444,
    /// then 333333333333.
    #[arg(long, default_value = "2", value_parser = clap::value_parser!(u8).range(1..=3))]
    pub sources: u8,
    /// Invocations of each step at once, as the SQS event source mapping's maximum
    /// concurrency (the stacks' default and the mapping's least is 2).
    #[arg(long, default_value = "2", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub concurrency: u16,
    /// Leave the emulator's API throttling off (on by default: RDS's 300-request burst and
    /// 12 a second per account and region, and EC2's buckets, as AWS enforces them).
    #[arg(long)]
    pub no_throttling: bool,
    /// No restore tests (RESTORE_ENABLED=false): a copy is the end of its backup.
    #[arg(long)]
    pub no_restore_tests: bool,
}

/// A third source account, for `--sources 3`.
pub const THIRD_ACCOUNT: &str = "333333333333";

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  scripts/demo    (starts the emulator and runs this)\n  \
    snapferry demo --endpoint http://127.0.0.1:5000 --keep-running")]
pub struct DemoArgs {
    #[command(flatten)]
    pub local: LocalArgs,
    /// Give up when not every backup is verified after this long.
    #[arg(long, default_value = "240")]
    pub timeout_seconds: u64,
    /// Keep the pipeline running afterwards, until Ctrl-C.
    #[arg(long)]
    pub keep_running: bool,
    /// Where the demo writes its report (`snapferry report` of the backup account: the
    /// HTML page, its CSV and JSON).
    #[arg(long, default_value = "target/demo-report")]
    pub report_dir: std::path::PathBuf,
}

/// What a demo run came to.
pub struct DemoRun {
    /// Every backup was verified.
    pub ok: bool,
    /// Every pipeline event it saw, in the order seen.
    pub events: Vec<EventEnvelope<PipelineEvent>>,
    pub report: snapferry_cli::report::Written,
    /// The pipeline, still deployed, for `--keep-running`.
    pub pipeline: LocalPipeline,
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
    let mut neighbours = Vec::new();
    for other in [NEIGHBOUR_ACCOUNT, THIRD_ACCOUNT].into_iter().take(usize::from(args.sources) - 1) {
        neighbours.push(account(&args.endpoint, &args.region, other).await?);
    }
    let target = account(&args.endpoint, &args.region, TARGET_ACCOUNT).await?;
    if !args.no_throttling {
        crate::pipeline::throttle_like_aws(&target).await?;
    }
    regex::Regex::new(&args.select).map_err(|e| Error::Config(format!("--select: {e}")))?;
    let options = PipelineOptions {
        select_regex: Some(args.select.clone()),
        kinds: vec![ResourceKind::DbInstance, ResourceKind::DbCluster, ResourceKind::Ebs],
        select_instance_tag: Some(DEMO_INSTANCE_TAG.into()),
        lock: Some(("governance".into(), 1)),
        release_shares: true,
        // Short, so a stalled chain is repaired at the next `fire-schedule` a few minutes on.
        reconcile_grace_minutes: 2,
        extra_regions: args.extra_regions.iter().filter(|r| !r.is_empty()).cloned().collect(),
        data_checks: Some(demo_data_checks()),
        copy_slots: args.copy_slots.clone(),
        concurrency: usize::from(args.concurrency),
        restore_enabled: !args.no_restore_tests,
        ..Default::default()
    };
    LocalPipeline::start_many(source, neighbours, target, &options).await
}

/// The demo's data checks: each PostgreSQL database's table must hold rows, the newest
/// at most two hours older than the snapshot.
fn demo_data_checks() -> String {
    let database = |resource: &str, database: Option<&str>, table: &str, column: &str| {
        serde_json::json!({
            "resources": format!("^{resource}$"),
            "database": database,
            "tables": [format!("{}.{table}", database.unwrap_or("public"))],
            "probes": [
                {"name": format!("{table} rows"), "sql": format!("select count(*) from {table}"), "min": 1},
                {"name": format!("newest {table}"), "sql": format!("select max({column}) from {table}"), "max_age_minutes": 120},
            ],
        })
    };
    serde_json::json!({"databases": [
        database("orders-mysql", Some("shop"), "orders", "placed_at"),
        database("billing-postgres", None, "invoices", "issued_at"),
        database("inventory-aurora", None, "items", "counted_at"),
    ]})
    .to_string()
}

pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    let run = demo(&args).await?;
    if args.keep_running {
        serve(&run.pipeline, &args.local).await?;
    }
    Ok(if run.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The demo: resources in the sources, the schedule fired, the chain run until every backup
/// is verified or failed, the table, and the report.
pub async fn demo(args: &DemoArgs) -> Result<DemoRun> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    println!(
        "snapferry demo on {} ({}): source accounts {SOURCE_ACCOUNT} and {NEIGHBOUR_ACCOUNT}, backup account {TARGET_ACCOUNT}, extra regions {:?}",
        args.local.endpoint, args.local.region, args.local.extra_regions
    );
    let pipeline = start(&args.local).await?;
    println!(
        "[setup]  pipeline deployed from shared/routing.json: buses, rules, queues with DLQs, cross-account route"
    );
    println!("[setup]  source sharing CMK {}", pipeline.sharing_key);
    println!("[setup]  backup CMK {}", pipeline.target_key);
    // (account, resource id, display name, what it is)
    let mut resources: Vec<(String, String, String, String)> = create_databases(&pipeline)
        .await?
        .into_iter()
        .map(|(n, w)| (SOURCE_ACCOUNT.to_string(), n.to_string(), n.to_string(), w))
        .collect();
    resources
        .extend(create_volumes(&pipeline).await?.into_iter().map(|(id, n, w)| (SOURCE_ACCOUNT.to_string(), id, n, w)));
    let (id, what) = create_neighbours_database(&pipeline).await?;
    resources.push((NEIGHBOUR_ACCOUNT.to_string(), id.to_string(), format!("{id} ({NEIGHBOUR_ACCOUNT})"), what));
    for (account, _, name, what) in &resources {
        println!("[{}] {name}: {what}", if account == SOURCE_ACCOUNT { "source" } else { "neighbour" });
    }
    for (name, rows) in write_rows(&pipeline).await? {
        println!("[source] {name}: {rows}");
    }
    pipeline.host.fire_schedule().await?;
    println!("[source] schedule fired\n");

    let fired = chrono::Utc::now();
    // By (account, resource): two sources may have resources of one name.
    let mut rows: BTreeMap<(String, String), Row> = resources
        .iter()
        .map(|(account, id, name, _)| ((account.clone(), id.clone()), Row { name: name.clone(), ..Row::default() }))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(args.timeout_seconds);
    let mut seen = Vec::new();
    while !rows.values().all(Row::finished) {
        if Instant::now() > deadline {
            println!("\ntimed out after {}s", args.timeout_seconds);
            break;
        }
        let handled = pipeline.host.poll_once().await?;
        for event in pipeline.events().await? {
            print_progress(&event, fired);
            let origin = &event.detail.origin;
            if let Some(row) = rows.get_mut(&(origin.account.clone(), origin.resource_id.clone())) {
                row.record(&event.detail, fired);
            }
            seen.push(event);
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
    let report = report(&pipeline, args, started_at).await?;
    Ok(DemoRun { ok, events: seen, report, pipeline })
}

/// The report of the backup account over the demo's run, as `snapferry report` writes it:
/// a line per resource, and where the page is.
async fn report(
    pipeline: &LocalPipeline,
    args: &DemoArgs,
    started_at: chrono::DateTime<chrono::Utc>,
) -> Result<snapferry_cli::report::Written> {
    use snapferry_cli::report;
    let now = chrono::Utc::now();
    let query = report::Query {
        from: started_at - chrono::Duration::minutes(1),
        to: now,
        rpo: chrono::Duration::hours(24),
        extra_regions: args.local.extra_regions.iter().filter(|r| !r.is_empty()).cloned().collect(),
        source_accounts: Vec::new(),
    };
    let routing = snapferry::routing::Routing::load();
    let holdings = report::gather(&pipeline.target, Some(&pipeline.source), &routing, &query).await?;
    let built = report::build(&holdings, &query, now);
    let written = report::write(&built, &args.report_dir)?;
    println!("\nreport of the backup account {TARGET_ACCOUNT}: {}", written.html.display());
    for line in report::summary(&built) {
        println!("  {line}");
    }
    Ok(written)
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

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  snapferry fire-schedule --endpoint http://127.0.0.1:5000\n  \
    snapferry fire-schedule --endpoint http://127.0.0.1:5000 --step reconcile-copies")]
pub struct FireArgs {
    #[command(flatten)]
    pub local: LocalArgs,
    /// Fire only this step's schedule (e.g. `expire-copies`); every scheduled step's when unset.
    #[arg(long)]
    pub step: Option<String>,
}

/// `snapferry fire-schedule`: what the EventBridge schedules do, on demand.
pub async fn fire_schedule(args: FireArgs) -> Result<ExitCode> {
    let pipeline = start(&args.local).await?;
    let sent = pipeline.host.fire(args.step.as_deref(), chrono::Utc::now()).await?;
    println!("fired {sent} schedule(s); a running `snapferry local` or `demo --keep-running` picks it up");
    Ok(ExitCode::SUCCESS)
}

async fn create_databases(pipeline: &LocalPipeline) -> Result<Vec<(&'static str, String)>> {
    let rds = &pipeline.source.rds;
    let instance = |id: &'static str, engine: &'static str, version: &'static str, key: Option<String>| async move {
        // MySQL creates no database unless one is named.
        let db_name = (engine == "mysql").then_some("shop");
        let r = rds
            .create_db_instance()
            .db_instance_identifier(id)
            .engine(engine)
            .engine_version(version)
            .set_db_name(db_name.map(str::to_string))
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

/// The neighbour's database: a PostgreSQL instance on its own sharing key.
async fn create_neighbours_database(pipeline: &LocalPipeline) -> Result<(&'static str, String)> {
    let neighbour = pipeline.neighbours.first().ok_or_else(|| Error::Config("the demo has a neighbour".into()))?;
    let id = "payroll-postgres";
    let r = neighbour
        .rds
        .create_db_instance()
        .db_instance_identifier(id)
        .engine("postgres")
        .engine_version("16.4")
        .db_instance_class("db.t4g.micro")
        .allocated_storage(20)
        .master_username("admin")
        .manage_master_user_password(true)
        .storage_encrypted(true)
        .set_kms_key_id(pipeline.sharing_keys.get(&neighbour.account).cloned())
        .send()
        .await;
    exists_ok(r.map(|_| ()).map_err(|e| Error::from_sdk("CreateDBInstance", e)))?;
    Ok((id, "PostgreSQL 16 instance of a second source account, on its own sharing CMK".into()))
}

/// Rows in the three databases, written over TLS as their master user. The demo sets a
/// password of its own first (it never learns the one RDS manages), so a second run
/// against the same emulator writes again.
async fn write_rows(pipeline: &LocalPipeline) -> Result<Vec<(&'static str, String)>> {
    use mysql_async::prelude::Queryable;
    use snapferry::store::Stores;
    use snapferry_restore::data::{self, Engine};
    let tls = data::tls_config(Some(&crate::pipeline::emulator_ca_bundle(&pipeline.source).await?))?;
    let password = data::Password::generate();
    let written = [
        (ResourceKind::DbInstance, "orders-mysql", Engine::MySql, "orders", "placed_at", 500, 2),
        (ResourceKind::DbInstance, "billing-postgres", Engine::Postgres, "invoices", "issued_at", 1000, 1),
        (ResourceKind::DbCluster, "inventory-aurora", Engine::Postgres, "items", "counted_at", 250, 4),
    ];
    let mut done = Vec::new();
    for (kind, id, engine, table, column, rows, spacing_minutes) in written {
        // The store's calls the restore step's data checks make: a new password, the endpoint.
        let store = pipeline.source.store(kind);
        store.set_master_password(id, password.expose()).await?;
        let endpoint = store.restore_status(id).await?.and_then(|r| r.endpoint);
        let endpoint = endpoint.ok_or_else(|| Error::Config(format!("{id} reports no endpoint")))?;
        let target = data::Target {
            engine,
            host: &endpoint.host,
            port: endpoint.port,
            user: &endpoint.user,
            database: endpoint.database.as_deref().or(engine.default_database()),
            password: &password,
        };
        let unreached = |data::NotReached(why)| Error::Config(format!("{id}: {why}"));
        let failed = |e: &dyn std::fmt::Display| Error::Config(format!("{id}: writing rows: {e}"));
        // The newest row a minute old, the others `spacing_minutes` apart before it.
        match engine {
            Engine::Postgres => {
                let client = data::connect_postgres(&target, &tls, Duration::from_secs(10)).await.map_err(unreached)?;
                let sql = format!(
                    "CREATE TABLE IF NOT EXISTS {table} (id bigserial PRIMARY KEY, amount_cents bigint NOT NULL, {column} timestamptz NOT NULL);
                     INSERT INTO {table} (amount_cents, {column})
                     SELECT (g * 7919) % 100000, now() - interval '1 minute' - (g - 1) * interval '{spacing_minutes} minutes' FROM generate_series(1, {rows}) g;"
                );
                client.batch_execute(&sql).await.map_err(|e| failed(&e))?;
            }
            Engine::MySql => {
                let mut session =
                    data::connect_mysql(&target, &tls, Duration::from_secs(10)).await.map_err(unreached)?;
                let values: Vec<String> = (1..=rows)
                    .map(|g| {
                        format!(
                            "({}, UTC_TIMESTAMP(6) - INTERVAL {} MINUTE)",
                            (g * 7919) % 100000,
                            1 + (g - 1) * spacing_minutes
                        )
                    })
                    .collect();
                let create = format!(
                    "CREATE TABLE IF NOT EXISTS {table} (id bigint AUTO_INCREMENT PRIMARY KEY, amount_cents bigint NOT NULL, {column} datetime(6) NOT NULL)"
                );
                let insert = format!("INSERT INTO {table} (amount_cents, {column}) VALUES {}", values.join(", "));
                for sql in [create, insert] {
                    session.conn.query_drop(sql).await.map_err(|e| failed(&e))?;
                }
            }
        }
        done.push((id, format!("{rows} rows written into {table} over TLS, the newest a minute old")));
    }
    Ok(done)
}

/// A volume on the AWS-managed key `aws/ebs` (never shareable as it is), and an EC2 instance
/// with two volumes snapshotted together. Returns (volume id, display name, description).
async fn create_volumes(pipeline: &LocalPipeline) -> Result<Vec<(String, String, String)>> {
    use aws_sdk_ec2::types::{
        BlockDeviceMapping, EbsBlockDevice, Filter, ResourceType, Tag, TagSpecification, VolumeType,
    };
    let ec2 = &pipeline.source.ec2;
    let tagged = |resource: ResourceType, pairs: &[(&str, &str)]| {
        let tags = pairs.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect();
        TagSpecification::builder().resource_type(resource).set_tags(Some(tags)).build()
    };
    let existing = |name: &'static str| async move {
        let out = ec2
            .describe_volumes()
            .filters(Filter::builder().name("tag:Name").values(name).build())
            .send()
            .await
            .map_err(|e| Error::from_sdk("DescribeVolumes", e))?;
        Ok::<_, Error>(out.volumes().first().and_then(|v| v.volume_id()).map(str::to_string))
    };
    let logs = match existing("logs-volume").await? {
        Some(id) => id,
        None => ec2
            .create_volume()
            .availability_zone(format!("{}a", pipeline.source.region))
            .size(8)
            .volume_type(VolumeType::Gp3)
            .encrypted(true)
            .tag_specifications(tagged(ResourceType::Volume, &[("Name", "logs-volume"), ("team", "platform")]))
            .send()
            .await
            .map_err(|e| Error::from_sdk("CreateVolume", e))?
            .volume_id()
            .unwrap_or_default()
            .to_string(),
    };
    let mut out = vec![(logs, "logs-volume".to_string(), "EBS volume on aws/ebs (re-encrypted to share)".to_string())];
    let reservations = ec2
        .describe_instances()
        .filters(Filter::builder().name("tag:Name").values("app-server").build())
        .send()
        .await
        .map_err(|e| Error::from_sdk("DescribeInstances", e))?;
    let found = reservations.reservations().iter().flat_map(|r| r.instances()).next().cloned();
    let instance = match found {
        Some(i) => i,
        None => {
            let disk = |device: &str, size: i32| {
                BlockDeviceMapping::builder()
                    .device_name(device)
                    .ebs(EbsBlockDevice::builder().volume_size(size).encrypted(true).build())
                    .build()
            };
            let (k, v) = DEMO_INSTANCE_TAG.split_once('=').unwrap_or((DEMO_INSTANCE_TAG, ""));
            let run = ec2
                .run_instances()
                .image_id("ami-12345678")
                .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
                .min_count(1)
                .max_count(1)
                .block_device_mappings(disk("/dev/sda1", 10))
                .block_device_mappings(disk("/dev/sdf", 20))
                .tag_specifications(tagged(ResourceType::Instance, &[("Name", "app-server"), (k, v)]))
                .send()
                .await
                .map_err(|e| Error::from_sdk("RunInstances", e))?;
            run.instances().first().cloned().ok_or_else(|| Error::BadInput("RunInstances started nothing".into()))?
        }
    };
    let id = instance.instance_id().unwrap_or_default();
    for m in instance.block_device_mappings() {
        let (Some(device), Some(volume)) = (m.device_name(), m.ebs().and_then(|e| e.volume_id())) else { continue };
        out.push((
            volume.to_string(),
            format!("app-server {device}"),
            format!("volume {volume} of EC2 instance {id}, tagged {DEMO_INSTANCE_TAG}: one crash-consistent set"),
        ));
    }
    Ok(out)
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
        Step::Copied { .. } => format!("{} available in {}", e.snapshot.id, e.snapshot.region),
        Step::RestoreVerified { restore_seconds, locked_until, set, data, .. } => {
            let mut line = format!("{} restored in {restore_seconds:.1}s", e.snapshot.id);
            if let Some(d) = data {
                line.push_str(&format!(", {} rows in {} tables checked", d.rows, d.tables));
            }
            if let Some(until) = locked_until {
                line.push_str(&format!(", locked until {}", until.format("%Y-%m-%d %H:%M")));
            }
            if let Some(set) = set {
                line.push_str(&format!(", set {} {}/{} verified", set.id, set.verified.unwrap_or(0), set.size));
            }
            line
        }
        Step::RestoreFailed { reason, .. } => format!("{}: {reason}", e.snapshot.id),
        Step::RestoreSuspicious { findings, previous } => {
            format!("{}: {} since {}", e.snapshot.id, findings.join(", "), previous.id)
        }
        Step::Rejected { reason, .. } => format!("{}: {reason}", e.snapshot.id),
        Step::QuotaWarning { quota, used, max } => format!("{quota}: {used} of {max} used"),
        Step::Overdue { last, limit_minutes } => {
            let last = last.map_or_else(|| "never".to_string(), |t| t.format("%Y-%m-%d %H:%M").to_string());
            format!("{}: newest backup {last}, older than {limit_minutes} minutes", e.snapshot.resource_id)
        }
        Step::Repaired { stalled_at } => format!("{} restarted at {stalled_at}", e.snapshot.id),
        Step::Expired { rule, dry_run } => {
            format!("{} {}: {rule}", e.snapshot.id, if *dry_run { "would expire" } else { "expired" })
        }
    };
    println!(
        "[+{:>5.1}s] {:<22} {:<22} {detail}",
        since(e.emitted_at, fired),
        e.origin.resource_id,
        e.step.detail_type()
    );
}

#[derive(Debug, Default)]
struct Row {
    name: String,
    /// EBS: the verified copy is locked (EBS Snapshot Lock), and until when.
    locked: Option<String>,
    source_snapshot: Option<String>,
    shared_copy: Option<String>,
    copies: Vec<String>,
    shared_at: Option<f64>,
    copied_at: Option<f64>,
    verified_at: Option<f64>,
    verified: Option<f64>,
    /// What the data checks found in the restored database.
    data: Option<snapferry::events::DataChecked>,
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
            Step::Copied { .. } => {
                let copy = format!("{}:\n{}", e.snapshot.region, e.snapshot.id);
                if !self.copies.contains(&copy) {
                    self.copies.push(copy);
                }
                self.copied_at.get_or_insert(t);
            }
            Step::RestoreVerified { restore_seconds, locked_until, data, .. } => {
                self.locked = locked_until.map(|t| t.format("%Y-%m-%d").to_string());
                self.data = data.clone();
                self.verified = Some(*restore_seconds);
                self.verified_at.get_or_insert(t);
            }
            Step::RestoreFailed { reason, .. } | Step::Rejected { reason, .. } => self.failed = Some(reason.clone()),
            _ => {}
        }
    }

    fn finished(&self) -> bool {
        self.verified.is_some() || self.failed.is_some()
    }
}

fn print_table(rows: &BTreeMap<(String, String), Row>) {
    println!("\n{}", render_table(rows));
}

/// One row per backup: the resource, its restore test and the seconds each step took (the
/// first counted from the schedule's firing); its snapshots, one per line.
fn render_table(rows: &BTreeMap<(String, String), Row>) -> String {
    let dash = || "-".to_string();
    // Each column as wide as its longest word (a snapshot name, a volume id), no wider.
    let mut t = snapferry_cli::table::Grid::new(&["backup", "snapshots"]);
    for r in rows.values() {
        let mut backup = vec![
            r.name.clone(),
            match (&r.verified, &r.failed) {
                (Some(s), _) => format!("verified in {s:.1}s"),
                (None, Some(why)) => format!("FAILED: {why}"),
                _ => "not yet".into(),
            },
        ];
        backup.extend(r.locked.as_ref().map(|until| format!("locked to {until}")));
        if let Some(d) = &r.data {
            let plural = if d.tables == 1 { "" } else { "s" };
            backup.push(format!("data: {} table{plural}, {} rows, {} checks passed", d.tables, d.rows, d.checks));
            if let Some(point) = d.recovery_point_seconds {
                backup.push(format!("data recovery point {:.1} min", point / 60.0));
            }
        }
        let step = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.1}s", b - a),
            _ => dash(),
        };
        backup.push(format!("share {}", r.shared_at.map(|t| format!("{t:.1}s")).unwrap_or_else(dash)));
        backup.push(format!("copy {}, test {}", step(r.shared_at, r.copied_at), step(r.copied_at, r.verified_at)));
        let mut snapshots = vec![
            format!("source {}", r.source_snapshot.clone().unwrap_or_else(dash)),
            format!("shared {}", r.shared_copy.clone().unwrap_or_else(dash)),
        ];
        snapshots.extend(r.copies.iter().map(|c| format!("copy in {c}")));
        t.row(vec![backup.join("\n"), snapshots.join("\n")]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_table_fits_and_keeps_each_snapshot_on_a_line() {
        let row = Row {
            name: "vol-0abc1234def567890".into(),
            locked: Some("2026-11-28".into()),
            source_snapshot: Some("snap-0123456789abcdef0".into()),
            shared_copy: Some("snap-0fedcba9876543210".into()),
            copies: vec![
                "us-east-1:\nsnap-0aaaabbbbccccdddd".into(),
                "eu-west-1:\nsnapferry-copy-inventory-aurora-202611271954-332aed99-a0966588-daa4ff63".into(),
            ],
            shared_at: Some(0.4),
            copied_at: Some(2.9),
            verified_at: Some(6.1),
            verified: Some(3.2),
            data: None,
            failed: None,
        };
        let failed = Row {
            name: "orders".into(),
            locked: None,
            source_snapshot: Some("snapferry-orders-2026-11-27-09-00".into()),
            shared_copy: None,
            copies: Vec::new(),
            shared_at: None,
            copied_at: None,
            verified_at: None,
            verified: None,
            data: None,
            failed: Some("the restored instance never became available".into()),
        };
        let checked = Row {
            name: "billing-postgres".into(),
            source_snapshot: Some("snapferry-billing-postgres-202611271954-1a2b3c4d".into()),
            shared_at: Some(0.3),
            copied_at: Some(1.1),
            verified_at: Some(2.4),
            verified: Some(1.3),
            data: Some(snapferry::events::DataChecked {
                database: "postgres".into(),
                tables: 1,
                rows: 1000,
                checks: 4,
                newest_data_at: None,
                recovery_point_seconds: Some(61.5),
                source: None,
            }),
            ..Row::default()
        };
        let key = |id: &str| (SOURCE_ACCOUNT.to_string(), id.to_string());
        let rows = BTreeMap::from([(key("a"), row), (key("b"), failed), (key("c"), checked)]);
        insta::assert_snapshot!(render_table(&rows));
    }
}
