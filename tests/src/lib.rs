//! Test harness for the end-to-end tests: one emulator per test binary, one set of
//! account ids per test, so tests run in parallel without resetting each other (what a
//! test changes in the emulator, it scopes to its accounts: [`control::quotas`],
//! [`control::fault`], dropped events by account).
//!
//! The emulator is started as `python -m snapferry_emulator --parent-pid <this process>`,
//! so it exits by itself when the test binary does (Rust has no reliable at-exit hook for
//! statics). Set `SNAPFERRY_EMULATOR_URL` to reuse an emulator that is already running.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use serde_json::Value;
use snapferry::clients::Clients;
// Tests reach any kind's store through the clients, as the steps do.
pub use snapferry::store::Stores;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const REGION: &str = "us-east-1";
pub const OTHER_REGION: &str = "eu-west-1";

/// A running emulator.
#[derive(Debug)]
pub struct Emulator {
    pub endpoint: String,
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The emulator for this test binary, started on first use.
pub fn emulator() -> &'static Emulator {
    static EMULATOR: OnceLock<Emulator> = OnceLock::new();
    EMULATOR.get_or_init(|| {
        if let Ok(endpoint) = std::env::var("SNAPFERRY_EMULATOR_URL") {
            return Emulator { endpoint };
        }
        start_emulator()
    })
}

fn start_emulator() -> Emulator {
    let root = repo_root();
    let python = root.join(".venv/bin/python");
    assert!(python.exists(), "no {} — run scripts/test (it creates the venv)", python.display());
    let mut child = Command::new(&python)
        .args(["-m", "snapferry_emulator", "--port", "0", "--parent-pid", &std::process::id().to_string()])
        .env("PYTHONPATH", root.join("emulator"))
        .env("SNAPFERRY_EMULATOR_DELAY", std::env::var("SNAPFERRY_EMULATOR_DELAY").unwrap_or_else(|_| "1".into()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the emulator");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let endpoint = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(url) = line.strip_prefix("AWS_ENDPOINT_URL=") {
                    break url.trim().to_string();
                }
            }
            _ => panic!("the emulator exited before printing AWS_ENDPOINT_URL (exit: {:?})", child.try_wait()),
        }
    };
    // Keep draining stdout so the emulator never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Emulator { endpoint }
}

/// A fresh 12-digit account id, unique within this test run (tests share one emulator).
pub fn new_account() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // pid and time keep concurrent test binaries apart; the counter keeps tests apart.
    let seed = (std::process::id() as u64 % 10_000) * 10_000_000 + (fastrand::u64(0..1000) * 10_000) + n;
    format!("9{:011}", seed % 100_000_000_000)
}

/// SDK configuration acting as `account` in `region`, through STS AssumeRole as in AWS.
pub async fn sdk_config(account: &str, region: &str) -> SdkConfig {
    let endpoint = &emulator().endpoint;
    let base = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sts::config::Credentials::new("testing", "testing", None, None, "harness"))
        .load()
        .await;
    let role = format!("arn:aws:iam::{account}:role/snapferry-test");
    Clients::assume_role(&base, &role, "snapferry-test").await.expect("AssumeRole on the emulator")
}

/// All clients for `account` in `region`.
pub async fn clients(account: &str, region: &str) -> Clients {
    Clients::with_account(sdk_config(account, region).await, account.to_string()).expect("region is set")
}

/// Clients whose SDK does not retry, so one injected fault reaches the caller as it is.
pub async fn clients_without_retries(account: &str, region: &str) -> Clients {
    let config =
        sdk_config(account, region).await.to_builder().retry_config(aws_config::retry::RetryConfig::disabled()).build();
    Clients::with_account(config, account.to_string()).expect("region is set")
}

/// The emulator's control API (`/_snapferry/...`), over plain HTTP/1.1 on loopback.
pub mod control {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    /// Calls the control API and returns its JSON answer; panics on a non-2xx status.
    pub fn call(method: &str, path: &str, body: Option<Value>) -> Value {
        let endpoint = &emulator().endpoint;
        let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
        let mut stream = TcpStream::connect(host).expect("connect to the emulator");
        stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("write the request");
        let mut raw = String::new();
        stream.read_to_string(&mut raw).expect("read the response");
        let (head, payload) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!((200..300).contains(&status), "{method} {path} answered {status}: {payload}");
        if payload.trim().is_empty() { Value::Null } else { serde_json::from_str(payload).expect("JSON answer") }
    }

    /// Sets `account`'s own maximums of the emulator's quotas (`{"manual_db_snapshots": 3}`):
    /// AWS's quotas are per account, so tests that lower one share the emulator with the rest.
    pub fn quotas(account: &str, quotas: Value) {
        call("POST", "/_snapferry/config", Some(serde_json::json!({ "account": account, "quotas": quotas })));
    }

    /// "The next `count` calls of `operation` by `account` fail with `code`."
    pub fn fault(operation: &str, account: Option<&str>, count: u32, code: &str, status: u16) {
        call(
            "POST",
            "/_snapferry/faults",
            Some(serde_json::json!({
                "operation": operation, "account": account, "count": count, "error_code": code, "status": status
            })),
        );
    }

    /// The emulator's request log entries of `account`.
    fn logged(account: &str) -> Vec<Value> {
        call("GET", "/_snapferry/requests", None)["requests"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r["account"] == account)
            .collect()
    }

    /// AWS calls the emulator saw from `account`: (operation, error code).
    pub fn requests(account: &str) -> Vec<(String, Option<String>)> {
        logged(account)
            .into_iter()
            .map(|r| {
                (r["operation"].as_str().unwrap_or_default().to_string(), r["error_code"].as_str().map(str::to_string))
            })
            .collect()
    }

    /// AWS calls the emulator saw from `account`, with the role that made each:
    /// (IAM action `service:Operation`, role name, error code).
    pub fn calls(account: &str) -> Vec<(String, Option<String>, Option<String>)> {
        logged(account)
            .into_iter()
            .map(|r| {
                let (service, operation) =
                    (r["service"].as_str().unwrap_or_default(), r["operation"].as_str().unwrap_or_default());
                // SQS authorizes a batch call as the single-message action (SQS Developer
                // Guide, sqs-api-permissions-reference): there is no sqs:SendMessageBatch.
                let operation = if service == "sqs" { operation.trim_end_matches("Batch") } else { operation };
                let action = format!("{service}:{operation}");
                (action, r["principal"].as_str().map(str::to_string), r["error_code"].as_str().map(str::to_string))
            })
            .collect()
    }

    /// Native events the emulator emitted for `account` (dropped ones included, flagged).
    pub fn events(account: &str) -> Vec<Value> {
        call("GET", "/_snapferry/events", None)
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e["account"] == account)
            .collect()
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `deadline`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the handlers log in this test process (the local host runs them in it), as JSON
/// lines: for tests that look for what must never be logged (passwords, row data).
pub fn captured_logs() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    use std::sync::{Arc, Mutex};
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log buffer").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || Captured(writer.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber for the test process");
        buffer
    })
    .clone()
}

/// Source-side fixtures: a resource of each kind and keys, through the real SDK.
pub mod fixtures {
    use snapferry::ResourceKind;
    use snapferry::clients::Clients;
    use snapferry::store::{Snapshot, SnapshotStore, Status};
    use std::time::Duration;

    /// A CMK in `clients`' account whose policy lets `users` copy snapshots encrypted with it.
    pub async fn sharing_key(clients: &Clients, users: &[String]) -> String {
        let policy = snapferry::kms::sharing_key_policy(&clients.account, &clients.region, users);
        let key = clients.kms.create_key().policy(policy.to_string()).send().await.expect("CreateKey");
        key.key_metadata().and_then(|m| m.arn()).expect("key arn").to_string()
    }

    /// A MySQL instance; its tags go on its snapshots, as AWS does with `CopyTagsToSnapshot`.
    pub async fn db_instance(
        clients: &Clients,
        name: &str,
        encrypted: bool,
        kms_key: Option<&str>,
        tags: &[(&str, &str)],
    ) {
        clients
            .rds
            .create_db_instance()
            .db_instance_identifier(name)
            .engine("mysql")
            .engine_version("8.0.39")
            .db_instance_class("db.t4g.micro")
            .allocated_storage(20)
            .master_username("admin")
            .master_user_password("not-a-secret-1")
            .storage_encrypted(encrypted)
            .set_kms_key_id(kms_key.map(str::to_string))
            .copy_tags_to_snapshot(true)
            .set_tags(Some(
                tags.iter().map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(*k).value(*v).build()).collect(),
            ))
            .send()
            .await
            .expect("CreateDBInstance");
    }

    /// A database / cluster / volume of `kind`, encrypted with `kms_key` (None: the AWS-managed key).
    pub async fn resource(clients: &Clients, kind: ResourceKind, name: &str, kms_key: Option<&str>) -> String {
        match kind {
            ResourceKind::DbInstance => {
                db_instance(clients, name, true, kms_key, &[]).await;
                name.to_string()
            }
            ResourceKind::DbCluster => {
                clients
                    .rds
                    .create_db_cluster()
                    .db_cluster_identifier(name)
                    .engine("aurora-postgresql")
                    .engine_version("16.4")
                    .master_username("admin")
                    .master_user_password("not-a-secret-1")
                    .storage_encrypted(true)
                    .set_kms_key_id(kms_key.map(str::to_string))
                    .send()
                    .await
                    .expect("CreateDBCluster");
                name.to_string()
            }
            ResourceKind::Ebs => {
                let v = clients
                    .ec2
                    .create_volume()
                    .availability_zone(format!("{}a", clients.region))
                    .size(8)
                    .encrypted(true)
                    .set_kms_key_id(kms_key.map(str::to_string))
                    .send()
                    .await
                    .expect("CreateVolume");
                v.volume_id().expect("volume id").to_string()
            }
        }
    }

    /// The master password of the fixtures' databases.
    pub const MASTER_PASSWORD: &str = "not-a-secret-1";

    /// A PostgreSQL DB instance or Aurora PostgreSQL cluster (the emulator backs both with
    /// a real PostgreSQL database) with a database `app`, on the AWS-managed key.
    pub async fn postgres(clients: &Clients, kind: ResourceKind, name: &str) {
        database(clients, kind, name, ("postgres", "16.4"), ("aurora-postgresql", "16.4"), false).await
    }

    /// [`postgres`] whose master password RDS manages in Secrets Manager (`MasterUserSecret`).
    pub async fn postgres_with_managed_secret(clients: &Clients, kind: ResourceKind, name: &str) {
        database(clients, kind, name, ("postgres", "16.4"), ("aurora-postgresql", "16.4"), true).await
    }

    /// A MySQL DB instance or Aurora MySQL cluster (the emulator backs both with a real
    /// MariaDB database) with a database `app`, on the AWS-managed key.
    pub async fn mysql(clients: &Clients, kind: ResourceKind, name: &str) {
        database(clients, kind, name, ("mysql", "8.0.39"), ("aurora-mysql", "8.0.mysql_aurora.3.07.1"), false).await
    }

    /// The master password RDS manages for `name`, read from its secret.
    pub async fn managed_password(clients: &Clients, kind: ResourceKind, name: &str) -> String {
        let database = snapferry::store::Stores::store(clients, kind).database(name).await.expect("describe");
        let arn = database.and_then(|d| d.master_secret_arn).expect("a managed master secret");
        let secrets = snapferry_data::secrets::Secrets::new(&clients.config);
        secrets.credentials(&arn).await.expect("the secret").password.expose().to_string()
    }

    /// A DB instance or cluster of the engine and version given for its kind, with a
    /// database `app` and the master user `owner`; its password [`MASTER_PASSWORD`], or one
    /// RDS manages (`managed`).
    async fn database(
        clients: &Clients,
        kind: ResourceKind,
        name: &str,
        (instance_engine, instance_version): (&str, &str),
        (cluster_engine, cluster_version): (&str, &str),
        managed: bool,
    ) {
        let password = (!managed).then(|| MASTER_PASSWORD.to_string());
        match kind {
            ResourceKind::DbInstance => {
                clients
                    .rds
                    .create_db_instance()
                    .db_instance_identifier(name)
                    .engine(instance_engine)
                    .engine_version(instance_version)
                    .db_instance_class("db.t4g.micro")
                    .allocated_storage(20)
                    .db_name("app")
                    .master_username("owner")
                    .set_master_user_password(password)
                    .set_manage_master_user_password(managed.then_some(true))
                    .storage_encrypted(true)
                    .send()
                    .await
                    .expect("CreateDBInstance");
            }
            ResourceKind::DbCluster => {
                clients
                    .rds
                    .create_db_cluster()
                    .db_cluster_identifier(name)
                    .engine(cluster_engine)
                    .engine_version(cluster_version)
                    .database_name("app")
                    .master_username("owner")
                    .set_master_user_password(password)
                    .set_manage_master_user_password(managed.then_some(true))
                    .storage_encrypted(true)
                    .send()
                    .await
                    .expect("CreateDBCluster");
            }
            ResourceKind::Ebs => panic!("a volume has no database"),
        }
    }

    /// Runs `sql` in the database `app` of the PostgreSQL instance or cluster `name`, as its
    /// master user (in clear text: the emulator does not require TLS, as RDS does not by default).
    pub async fn sql(clients: &Clients, kind: ResourceKind, name: &str, sql: &str) {
        sql_as(clients, kind, name, MASTER_PASSWORD, sql).await
    }

    /// [`sql`] with the master user's `password`.
    pub async fn sql_as(clients: &Clients, kind: ResourceKind, name: &str, password: &str, sql: &str) {
        // Described by the store, as the restore step's data checks find a restored one.
        let restored = snapferry::store::Stores::store(clients, kind).restore_status(name).await.expect("describe");
        let endpoint = restored.and_then(|r| r.endpoint).expect("an endpoint");
        let (host, port) = (endpoint.host, endpoint.port);
        let conn = format!("host={host} port={port} user=owner password={password} dbname=app");
        let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(connection);
        client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Runs each of `statements` in the database `app` of the MySQL instance or cluster
    /// `name`, as its master user (in clear text, as [`sql`]).
    pub async fn mysql_sql(clients: &Clients, kind: ResourceKind, name: &str, statements: &[String]) {
        use mysql_async::prelude::Queryable;
        let restored = snapferry::store::Stores::store(clients, kind).restore_status(name).await.expect("describe");
        let endpoint = restored.and_then(|r| r.endpoint).expect("an endpoint");
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(endpoint.host)
            .tcp_port(endpoint.port)
            .user(Some("owner"))
            .pass(Some(MASTER_PASSWORD))
            .db_name(Some("app"))
            .prefer_socket(false);
        let mut conn = mysql_async::Conn::new(opts).await.expect("connect");
        for sql in statements {
            conn.query_drop(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        conn.disconnect().await.expect("disconnect");
    }

    /// Waits (with a deadline) until the snapshot is available.
    pub async fn available(store: &dyn SnapshotStore, id: &str) -> Snapshot {
        crate::eventually(&format!("{id} to become available"), Duration::from_secs(30), || async {
            match store.describe(id).await.expect("describe") {
                Some(s) if s.status == Status::Available => Some(s),
                Some(Snapshot { status: Status::Failed(why), .. }) => panic!("{id} failed: {why}"),
                _ => None,
            }
        })
        .await
    }
}

/// The whole chain on the emulator (`snapferry_local::pipeline::LocalPipeline`): start it for
/// two fresh accounts, drive its host until pipeline events are seen, and read back what
/// it made through the SDK.
pub mod chain {
    use super::*;
    use aws_sdk_sqs::types::{Message, QueueAttributeName};
    use snapferry::ResourceKind;
    use snapferry::events::{EventEnvelope, PipelineEvent, Step};
    use snapferry::store::{Snapshot, Stores};
    use snapferry::tags;
    pub use snapferry_local::pipeline::{LocalPipeline, PipelineOptions};
    use std::collections::BTreeMap;

    pub type Event = EventEnvelope<PipelineEvent>;

    /// How long a scenario may take before the test fails.
    pub const DEADLINE: Duration = Duration::from_secs(60);

    /// Set to a path, the handlers' logs (JSON, at debug) are kept from the pipeline's start
    /// and written there when a scenario times out: what each step decided, and why.
    pub const LOGS_ENV: &str = "SNAPFERRY_E2E_LOGS";

    /// The failure message of a scenario that ran out of time: what it waited for, the step
    /// queues still holding messages, and the events seen.
    async fn timed_out(p: &LocalPipeline, seen: &[Event], what: &str) -> String {
        let pending = pending_queues(p).await;
        let mut logs = String::new();
        if let Some(path) = std::env::var_os(LOGS_ENV) {
            let buffer = crate::captured_logs().lock().expect("log buffer").clone();
            match std::fs::write(&path, buffer) {
                Ok(()) => logs = format!("; the handlers' logs are in {}", path.to_string_lossy()),
                Err(e) => logs = format!("; the handlers' logs could not be written: {e}"),
            }
        }
        format!(
            "timed out after {DEADLINE:?} waiting for {what} (step queues holding messages: {}){logs}; events seen:\n{}",
            if pending.is_empty() { "none".to_string() } else { pending.join(", ") },
            summary(seen)
        )
    }

    /// Damages the scheduled snapshot of each DB instance of `damage` (its name, and the
    /// emulator's `corrupt-snapshot` action; `null`: left whole) once it exists, before
    /// anything copies it. The databases themselves are left as they are.
    pub async fn damage_scheduled_snapshots(p: &LocalPipeline, seen: &mut Vec<Event>, damage: &[(&str, &Value)]) {
        let snapshots = drive_until(p, seen, "the scheduled snapshots", || async {
            let mut arns = Vec::new();
            for (name, _) in damage {
                let made = made_by(&p.source, ResourceKind::DbInstance, "create", name).await;
                match made.first() {
                    Some(s) if s.status == snapferry::store::Status::Available => arns.push(s.arn.clone()),
                    _ => return None,
                }
            }
            Some(arns)
        })
        .await;
        for (arn, (_, action)) in snapshots.iter().zip(damage) {
            if action.is_null() {
                continue;
            }
            let mut body = (*action).clone();
            body["snapshot_arn"] = Value::from(arn.as_str());
            control::call("POST", "/_snapferry/corrupt-snapshot", Some(body));
        }
    }

    pub const SHARED: &str = "Snapshot Shared";
    pub const COPY_STARTED: &str = "Snapshot Copy Started";
    pub const COPIED: &str = "Snapshot Copied";
    pub const VERIFIED: &str = "Restore Verified";
    pub const RESTORE_FAILED: &str = "Restore Failed";
    pub const REJECTED: &str = "Snapshot Rejected";

    /// Options with short re-checks, backoffs and visibility timeouts, so retries come back fast.
    /// `snapferry <command> --json` as an operator runs it against the emulator: in `p`'s
    /// backup account, with its source account, each by assuming the test role.
    pub async fn run_cli(p: &LocalPipeline, command: &str) -> std::process::ExitCode {
        let endpoint = crate::emulator().endpoint.clone();
        let args = [
            "snapferry",
            command,
            "--json",
            "--endpoint",
            &endpoint,
            "--region",
            crate::REGION,
            "--account",
            &p.target.account,
            "--source-account",
            &p.source.account,
            "--role",
            "snapferry-test",
        ];
        let cli = <snapferry_cli::Cli as clap::Parser>::try_parse_from(args).expect("arguments");
        snapferry_cli::run(cli).await.unwrap_or_else(|e| panic!("snapferry {command}: {e}"))
    }

    pub fn fast_options() -> PipelineOptions {
        PipelineOptions {
            recheck: Duration::from_secs(1),
            retry_base: Duration::from_secs(1),
            visibility_timeout_override: Some(3),
            ..Default::default()
        }
    }

    /// A pipeline between two fresh accounts.
    pub async fn start(options: &PipelineOptions) -> LocalPipeline {
        if std::env::var_os(LOGS_ENV).is_some() {
            crate::captured_logs();
        }
        let source = clients(&new_account(), REGION).await;
        let target = clients(&new_account(), REGION).await;
        LocalPipeline::start(source, target, options).await.expect("start the pipeline")
    }

    /// A MySQL instance in `c`'s account, encrypted as said, with `tags` (copied to its snapshots).
    pub async fn instance(c: &Clients, name: &str, encryption: Encryption<'_>, tags: &[(&str, &str)]) {
        let (encrypted, key) = match encryption {
            Encryption::AwsManaged => (true, None),
            Encryption::Key(k) => (true, Some(k)),
            Encryption::None => (false, None),
        };
        crate::fixtures::db_instance(c, name, encrypted, key, tags).await;
    }

    #[derive(Debug, Clone, Copy)]
    pub enum Encryption<'a> {
        AwsManaged,
        Key(&'a str),
        None,
    }

    /// Drives the host until `done(events seen so far)`; panics after [`DEADLINE`], listing
    /// what was seen. `seen` accumulates every pipeline event (each once).
    pub async fn run_until(p: &LocalPipeline, seen: &mut Vec<Event>, what: &str, done: impl Fn(&[Event]) -> bool) {
        let start = Instant::now();
        loop {
            collect(p, seen).await;
            if done(seen) {
                return;
            }
            if start.elapsed() >= DEADLINE {
                panic!("{}", timed_out(p, seen, what).await);
            }
            if p.host.poll_once().await.expect("poll the queues") == 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// Drives the host until `check` (run between rounds, while no handler runs) answers
    /// `Some`; panics after [`DEADLINE`].
    pub async fn drive_until<T, F, Fut>(p: &LocalPipeline, seen: &mut Vec<Event>, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let start = Instant::now();
        loop {
            collect(p, seen).await;
            if let Some(v) = check().await {
                return v;
            }
            if start.elapsed() >= DEADLINE {
                panic!("{}", timed_out(p, seen, what).await);
            }
            if p.host.poll_once().await.expect("poll the queues") == 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// Adds the events published since the last call (an event forwarded across accounts
    /// reaches both monitors: kept once).
    pub async fn collect(p: &LocalPipeline, seen: &mut Vec<Event>) {
        for e in p.events().await.expect("read the monitors") {
            if !seen.iter().any(|s| s.id == e.id) {
                seen.push(e);
            }
        }
    }

    /// Drives the host until every step queue is empty (nothing visible, in flight or
    /// delayed), so duplicates and re-checks still on their way have been handled too.
    pub async fn settle(p: &LocalPipeline, seen: &mut Vec<Event>) {
        let start = Instant::now();
        let mut quiet_rounds = 0;
        loop {
            let handled = p.host.poll_once().await.expect("poll the queues");
            collect(p, seen).await;
            let pending = pending_queues(p).await;
            quiet_rounds = if handled == 0 && pending.is_empty() { quiet_rounds + 1 } else { 0 };
            if quiet_rounds >= 2 {
                return;
            }
            if start.elapsed() >= DEADLINE {
                panic!("{}", timed_out(p, seen, "every step queue to empty").await);
            }
            if handled == 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// The step queues holding messages (visible, in flight or delayed), with their depths.
    async fn pending_queues(p: &LocalPipeline) -> Vec<String> {
        let mut pending = Vec::new();
        for q in p.deployment.queues() {
            let depth = queue_depth(account_clients(p, &q.account), &q.queue_url).await;
            if depth > 0 {
                pending.push(format!("{} in {}/{}: {depth}", q.function, q.account, q.region));
            }
        }
        pending
    }

    fn account_clients<'a>(p: &'a LocalPipeline, account: &str) -> &'a Clients {
        if account == p.source.account { &p.source } else { &p.target }
    }

    /// Messages in a queue: visible, in flight and delayed.
    pub async fn queue_depth(c: &Clients, url: &str) -> u64 {
        let out = c
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .expect("GetQueueAttributes");
        let attrs = out.attributes().cloned().unwrap_or_default();
        [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            QueueAttributeName::ApproximateNumberOfMessagesDelayed,
        ]
        .iter()
        .filter_map(|k| attrs.get(k).and_then(|v| v.parse::<u64>().ok()))
        .sum()
    }

    /// A string message attribute of `message` ("" when absent).
    pub fn attribute(message: &Message, name: &str) -> String {
        message
            .message_attributes()
            .and_then(|a| a.get(name))
            .and_then(|v| v.string_value())
            .unwrap_or_default()
            .to_string()
    }

    /// Every message in a DLQ, with its message attributes (received, not deleted).
    pub async fn dlq_messages(c: &Clients, dlq_url: &str) -> Vec<Message> {
        let mut all: Vec<Message> = Vec::new();
        loop {
            let out = c
                .sqs
                .receive_message()
                .queue_url(dlq_url)
                .max_number_of_messages(10)
                .visibility_timeout(60)
                .message_attribute_names("All")
                .send()
                .await
                .expect("ReceiveMessage");
            if out.messages().is_empty() {
                return all;
            }
            all.extend(out.messages().iter().cloned());
        }
    }

    /// Asserts that no step's DLQ in either account holds a message.
    pub async fn assert_dlqs_empty(p: &LocalPipeline) {
        for q in p.deployment.queues() {
            let c = account_clients(p, &q.account);
            if queue_depth(c, &q.dlq_url).await > 0 {
                let reasons: Vec<String> = dlq_messages(c, &q.dlq_url)
                    .await
                    .iter()
                    .map(|m| format!("{}: {}", attribute(m, snapferry::sqs::ATTR_ERROR_REASON), m.body().unwrap_or("")))
                    .collect();
                panic!("{}'s DLQ in {} is not empty:\n{}", q.function, q.account, reasons.join("\n"));
            }
        }
    }

    /// The events about `resource` (the source database), in order.
    pub fn about<'a>(events: &'a [Event], resource: &str) -> Vec<&'a Event> {
        events.iter().filter(|e| e.detail.origin.resource_id == resource).collect()
    }

    /// How many events of `detail_type` are about `resource`.
    pub fn count(events: &[Event], resource: &str, detail_type: &str) -> usize {
        about(events, resource).iter().filter(|e| e.detail.step.detail_type() == detail_type).count()
    }

    pub fn has(events: &[Event], resource: &str, detail_type: &str) -> bool {
        count(events, resource, detail_type) > 0
    }

    /// The first event of `detail_type` about `resource`.
    pub fn first<'a>(events: &'a [Event], resource: &str, detail_type: &str) -> &'a Event {
        about(events, resource)
            .into_iter()
            .find(|e| e.detail.step.detail_type() == detail_type)
            .unwrap_or_else(|| panic!("no {detail_type} event for {resource}; events:\n{}", summary(events)))
    }

    /// Every resource named has been restore-verified (and none failed its restore).
    pub fn verified(resources: &[&str]) -> impl Fn(&[Event]) -> bool {
        let resources: Vec<String> = resources.iter().map(|r| r.to_string()).collect();
        move |events| {
            for r in &resources {
                if let Some(e) = about(events, r).iter().find(|e| matches!(e.detail.step, Step::RestoreFailed { .. })) {
                    panic!("the restore of {r} failed: {:?}", e.detail.step);
                }
            }
            resources.iter().all(|r| has(events, r, VERIFIED))
        }
    }

    /// One line per event, for failure messages.
    pub fn summary(events: &[Event]) -> String {
        events
            .iter()
            .map(|e| {
                format!(
                    "  {} {} {} ({}/{}) {:?}",
                    e.detail.origin.resource_id,
                    e.detail.step.detail_type(),
                    e.detail.snapshot.id,
                    e.detail.snapshot.account,
                    e.detail.snapshot.region,
                    e.detail.step
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// snapferry's snapshots of `kind` in `c`'s account and region.
    pub async fn managed(c: &Clients, kind: ResourceKind) -> Vec<Snapshot> {
        c.store(kind).list_managed().await.expect("list snapferry snapshots")
    }

    /// snapferry's snapshots of `kind` in `c`'s account, counted by the step that made them
    /// (`create`, `share`, `copy`) and the source database they come from.
    pub async fn count_by_step(c: &Clients, kind: ResourceKind) -> BTreeMap<(String, String), usize> {
        let mut counts = BTreeMap::new();
        for s in managed(c, kind).await {
            let step = s.tags.get(tags::STEP).cloned().unwrap_or_default();
            let origin = s.tags.get(tags::ORIGIN_RESOURCE).cloned().unwrap_or_else(|| s.resource_id.clone());
            *counts.entry((step, origin)).or_insert(0) += 1;
        }
        counts
    }

    /// snapferry's snapshots of `kind` made by `step` for `resource`.
    pub async fn made_by(c: &Clients, kind: ResourceKind, step: &str, resource: &str) -> Vec<Snapshot> {
        managed(c, kind)
            .await
            .into_iter()
            .filter(|s| s.tags.get(tags::STEP).is_some_and(|v| v == step))
            .filter(|s| s.tags.get(tags::ORIGIN_RESOURCE).unwrap_or(&s.resource_id) == resource)
            .collect()
    }

    /// The accounts a DB snapshot is shared with (its `restore` attribute).
    pub async fn shared_with(c: &Clients, snapshot_id: &str) -> Vec<String> {
        let out = c
            .rds
            .describe_db_snapshot_attributes()
            .db_snapshot_identifier(snapshot_id)
            .send()
            .await
            .expect("DescribeDBSnapshotAttributes");
        out.db_snapshot_attributes_result()
            .map(|r| r.db_snapshot_attributes())
            .unwrap_or_default()
            .iter()
            .filter(|a| a.attribute_name() == Some("restore"))
            .flat_map(|a| a.attribute_values().iter().cloned())
            .collect()
    }

    /// Waits until `c`'s account has no DB instance and no DB cluster left whose id starts
    /// with `snapferry-restore` (restore tests clean up after themselves).
    pub async fn no_restore_resources_left(c: &Clients) {
        eventually("restore-test resources to be deleted", DEADLINE, || async {
            let instances = c.rds.describe_db_instances().send().await.expect("DescribeDBInstances");
            let clusters = c.rds.describe_db_clusters().send().await.expect("DescribeDBClusters");
            let left: Vec<String> = instances
                .db_instances()
                .iter()
                .filter_map(|i| i.db_instance_identifier())
                .chain(clusters.db_clusters().iter().filter_map(|c| c.db_cluster_identifier()))
                .filter(|id| id.starts_with(snapferry::naming::RESTORE_PREFIX))
                .map(str::to_string)
                .collect();
            left.is_empty().then_some(())
        })
        .await
    }

    /// Whether `key` is the key `expected` (an ARN or key id either way).
    pub fn same_key(key: Option<&str>, expected: &str) -> bool {
        key.is_some_and(|k| snapferry::kms::same_key(k, expected))
    }
}

/// Helpers of the fault campaign (`tests/tests/fault_campaign.rs`), usable by any chain test.
pub mod faults {
    use super::chain::{LocalPipeline, dlq_messages};
    use super::*;
    use aws_sdk_eventbridge::types::Target;
    use snapferry::routing::{Bus, Routing};
    use std::collections::BTreeMap;

    /// Every SQS queue's counts of messages in and out, as the emulator keeps them
    /// (`GET /_snapferry/sqs-counts`), by queue ARN.
    pub fn sqs_counts() -> BTreeMap<String, Value> {
        control::call("GET", "/_snapferry/sqs-counts", None)["queues"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|q| (q["arn"].as_str().unwrap_or_default().to_string(), q))
            .collect()
    }

    /// Gives every rule of the pipeline (and the cross-account forwarding) a second target
    /// on the same queue / bus, so EventBridge delivers every event twice. Returns how many
    /// rules have one now.
    pub async fn deliver_everything_twice(p: &LocalPipeline) -> usize {
        let mut duplicated = 0;
        let routing = Routing::load();
        let bus = |b: Bus| if b == Bus::Default { "default".to_string() } else { routing.pipeline_bus.clone() };
        for q in p.deployment.queues() {
            let c = if q.account == p.source.account { &p.source } else { &p.target };
            let function = routing.functions.iter().find(|f| f.name == q.function).expect("function in routing.json");
            for rule in function.rules.iter().filter(|r| r.pattern.is_some()) {
                let target = Target::builder().id("duplicate").arn(&q.queue_arn).build().expect("target");
                let put = c.events.put_targets().rule(&rule.name).event_bus_name(bus(rule.bus)).targets(target);
                put.send().await.expect("PutTargets");
                duplicated += 1;
            }
        }
        let (rule, _) = routing.cross_account.for_account(&p.target.account);
        let target_bus = p.deployment.pipeline_bus_arn(&p.target.account).expect("target bus");
        let target = Target::builder().id("duplicate").arn(target_bus).build().expect("target");
        let put = p.source.events.put_targets().rule(rule).event_bus_name(bus(routing.cross_account.bus));
        put.targets(target).send().await.expect("PutTargets");
        duplicated + 1
    }

    /// AWS calls the emulator logged from `account`: (service, operation as called, role).
    pub fn logged_calls(account: &str) -> Vec<(String, String, Option<String>)> {
        let all =
            control::call("GET", "/_snapferry/requests", None)["requests"].as_array().cloned().unwrap_or_default();
        all.into_iter()
            .filter(|r| r["account"] == account)
            .map(|r| {
                let text = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                (text("service"), text("operation"), r["principal"].as_str().map(str::to_string))
            })
            .collect()
    }

    /// EBS volumes left in `c`'s account and region that a restore test made (tagged
    /// `snapferry:restore-test`).
    pub async fn restore_test_volumes(c: &Clients) -> Vec<String> {
        let filter =
            aws_sdk_ec2::types::Filter::builder().name("tag-key").values(snapferry::tags::RESTORE_TEST).build();
        let out = c.ec2.describe_volumes().filters(filter).send().await.expect("DescribeVolumes");
        out.volumes().iter().filter_map(|v| v.volume_id().map(str::to_string)).collect()
    }

    /// DB instances and clusters left in `c`'s account and region that a restore test made
    /// (named `snapferry-restore-*`).
    pub async fn restore_test_databases(c: &Clients) -> Vec<String> {
        let instances = c.rds.describe_db_instances().send().await.expect("DescribeDBInstances");
        let clusters = c.rds.describe_db_clusters().send().await.expect("DescribeDBClusters");
        instances
            .db_instances()
            .iter()
            .filter_map(|i| i.db_instance_identifier())
            .chain(clusters.db_clusters().iter().filter_map(|c| c.db_cluster_identifier()))
            .filter(|id| id.starts_with(snapferry::naming::RESTORE_PREFIX))
            .map(str::to_string)
            .collect()
    }

    /// Every dead letter of the pipeline's DLQs in `p`'s two accounts: (step, account, message).
    pub async fn dead_letters(p: &LocalPipeline) -> Vec<(String, String, aws_sdk_sqs::types::Message)> {
        let mut all = Vec::new();
        for q in p.deployment.queues() {
            let c = if q.account == p.source.account { &p.source } else { &p.target };
            for m in dlq_messages(c, &q.dlq_url).await {
                all.push((q.function.clone(), q.account.clone(), m));
            }
        }
        all
    }

    /// Runs the operator CLI, `snapferry <args> --endpoint <emulator> --region us-east-1
    /// --account <account> --role snapferry-test`, as an operator would.
    pub async fn run_cli_in(account: &str, args: &[&str]) -> std::process::ExitCode {
        let endpoint = emulator().endpoint.clone();
        let mut all = vec!["snapferry"];
        all.extend_from_slice(args);
        all.extend_from_slice(&[
            "--endpoint",
            &endpoint,
            "--region",
            REGION,
            "--account",
            account,
            "--role",
            "snapferry-test",
        ]);
        let cli = <snapferry_cli::Cli as clap::Parser>::try_parse_from(&all).expect("arguments");
        snapferry_cli::run(cli).await.unwrap_or_else(|e| panic!("snapferry {}: {e}", args.join(" ")))
    }
}
