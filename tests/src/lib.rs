//! Test harness for the end-to-end tests: one emulator per test binary, one set of
//! account ids per test, so tests run in parallel without resetting each other.
//!
//! The emulator is started as `python -m snapferry_emulator --parent-pid <this process>`,
//! so it exits by itself when the test binary does (Rust has no reliable at-exit hook for
//! statics). Set `SNAPFERRY_EMULATOR_URL` to reuse an emulator that is already running.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use serde_json::Value;
use snapferry::clients::Clients;
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

    /// AWS calls the emulator saw from `account`: (operation, error code).
    pub fn requests(account: &str) -> Vec<(String, Option<String>)> {
        call("GET", "/_snapferry/requests", None)["requests"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r["account"] == account)
            .map(|r| {
                (r["operation"].as_str().unwrap_or_default().to_string(), r["error_code"].as_str().map(str::to_string))
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

/// Source-side fixtures: a resource of each kind and keys, through the real SDK.
pub mod fixtures {
    use snapferry::ResourceKind;
    use snapferry::clients::Clients;
    use snapferry::kind::{Snapshot, SnapshotStore, Status};
    use std::time::Duration;

    /// A CMK in `clients`' account whose policy lets `users` copy snapshots encrypted with it.
    pub async fn sharing_key(clients: &Clients, users: &[String]) -> String {
        let policy = snapferry::kms::sharing_key_policy(&clients.account, users);
        let key = clients.kms.create_key().policy(policy.to_string()).send().await.expect("CreateKey");
        key.key_metadata().and_then(|m| m.arn()).expect("key arn").to_string()
    }

    /// A database / cluster / volume of `kind`, encrypted with `kms_key` (None: the AWS-managed key).
    pub async fn resource(clients: &Clients, kind: ResourceKind, name: &str, kms_key: Option<&str>) -> String {
        match kind {
            ResourceKind::DbInstance => {
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
                    .storage_encrypted(true)
                    .set_kms_key_id(kms_key.map(str::to_string))
                    .send()
                    .await
                    .expect("CreateDBInstance");
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
