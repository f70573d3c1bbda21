//! Test harness for the end-to-end tests, by concern: this file starts the emulator (one
//! per test binary) and acts as an account on it; [`control`] is the emulator's control
//! API, [`fixtures`] makes databases and volumes, [`chain`] runs the whole pipeline and
//! waits for its events, [`faults`] injects what the fault campaign needs. One set of
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

pub mod control;

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

pub mod fixtures;

pub mod chain;

pub mod faults;
