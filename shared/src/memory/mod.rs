//! An in-memory cloud with AWS's semantics, behind every port a step uses: snapshot stores
//! for the three kinds in any number of accounts and regions, the step's queue, the
//! pipeline bus and the clock. The steps' decision tests run on it in milliseconds.
//!
//! What it reproduces, as the emulator does (and as the RDS and EBS API references say):
//! "already exists" on a name that exists, not-found, snapshots shared with an account
//! visible to it (and only to it) by ARN, `creating` until [`Cloud::complete_all`], no
//! sharing of automated snapshots or of snapshots on an AWS-managed key, `KmsKeyId`
//! required to copy a shared encrypted snapshot, the manual-snapshot and copies-in-progress
//! quotas, restore classes Aurora does not offer, and injected errors by operation.

use crate::ResourceKind;
use crate::error::{Error, Result, classify};
use crate::events::PipelineEvent;
use crate::ports::{Clock, EventBus, Metrics, StepQueue};
use crate::step::{StepContext, StepEnv};
use crate::store::{Resource, Restored, Snapshot, Status, Stores};
use crate::tags::Tags;
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub mod deliver;
mod ledger;
mod store;

/// A message a step sent back to its own queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub body: String,
    pub delay: Duration,
    pub attempt: u32,
    pub waiting_since: Option<DateTime<Utc>>,
    /// The first id of the message it goes on from, where it is that message sent again.
    pub handling: Option<String>,
}

/// A test restore as the cloud holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemRestore {
    pub kind: ResourceKind,
    pub account: String,
    pub region: String,
    pub class: Option<String>,
    pub spec_tags: Tags,
    pub restored: Restored,
}

#[derive(Debug)]
struct Fault {
    op: &'static str,
    code: String,
    remaining: usize,
}

#[derive(Debug, Default)]
struct State {
    now: Option<DateTime<Utc>>,
    instant: bool,
    finish_on_wait: bool,
    slept: Vec<std::time::Duration>,
    resources: Vec<(String, String, Resource, Option<String>)>,
    snapshots: Vec<(Snapshot, Vec<String>)>,
    restores: Vec<MemRestore>,
    aws_managed_keys: Vec<String>,
    faults: Vec<Fault>,
    manual_quota: Option<usize>,
    copy_quota: Option<usize>,
    calls: Vec<String>,
    published: Vec<PipelineEvent>,
    /// `"<metric> <step>"` per count.
    metrics: Vec<String>,
    sent: Vec<Sent>,
    dead: Vec<(String, String)>,
    retried: Vec<(String, Duration)>,
    next_id: u64,
    /// Ids of EBS snapshots under a snapshot lock: deleting them is refused.
    locked: Vec<String>,
    /// Messages sent to other steps' queues: (queue URL, body).
    sent_to: Vec<(String, String)>,
    /// Each account's copy ledger, by pool.
    ledgers: std::collections::BTreeMap<(String, crate::ledger::Pool), crate::ledger::Book>,
}

/// The whole in-memory cloud; cheap to clone (one shared state).
#[derive(Debug, Clone, Default)]
pub struct Cloud {
    state: Arc<Mutex<State>>,
}

/// The engine a database of `kind` runs in the cloud.
fn engine(kind: ResourceKind) -> (Option<String>, Option<String>) {
    crate::kinds::of(kind).default_engine.map_or((None, None), |(e, v)| (Some(e.into()), Some(v.into())))
}

impl Cloud {
    pub fn new() -> Cloud {
        Cloud::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread poisons nothing another test reads: each test has its own cloud.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.lock().now.unwrap_or_else(|| Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap())
    }

    pub fn set_now(&self, t: DateTime<Utc>) {
        self.lock().now = Some(t);
    }

    pub fn advance(&self, d: chrono::Duration) {
        let t = self.now() + d;
        self.set_now(t);
    }

    /// A step's wait in its handler ([`Clock::sleep`]) finishes every snapshot, copy and
    /// restore in progress, as if the wait were as long as they take.
    pub fn set_finish_on_wait(&self, finish: bool) {
        self.lock().finish_on_wait = finish;
    }

    /// The waits the steps made in their handlers, in order.
    pub fn slept(&self) -> Vec<std::time::Duration> {
        self.lock().slept.clone()
    }

    /// Snapshots, copies and restores become available at once (AWS takes minutes).
    pub fn set_instant(&self, instant: bool) {
        self.lock().instant = instant;
    }

    /// At most `n` manual snapshots per kind, account and region.
    pub fn set_manual_quota(&self, n: usize) {
        self.lock().manual_quota = Some(n);
    }

    /// At most `n` copies in progress per kind, account and destination region.
    pub fn set_copy_quota(&self, n: usize) {
        self.lock().copy_quota = Some(n);
    }

    /// The next `times` calls of store operation `op` (`create`, `describe`, `copy`,
    /// `share`, ..., or `publish`) fail with AWS error `code`, classified as from AWS.
    pub fn fail(&self, op: &'static str, code: &str, times: usize) {
        self.lock().faults.push(Fault { op, code: code.to_string(), remaining: times });
    }

    /// The AWS-managed key (`aws/rds`, `aws/ebs`) of an account and region.
    pub fn aws_managed_key(&self, account: &str, region: &str, kind: ResourceKind) -> String {
        let service = crate::kinds::of(kind).key_service;
        let arn = format!("arn:aws:kms:{region}:{account}:key/aws-managed-{service}");
        let mut s = self.lock();
        if !s.aws_managed_keys.contains(&arn) {
            s.aws_managed_keys.push(arn.clone());
        }
        arn
    }

    /// A database or volume, encrypted with `key` when given.
    pub fn add_resource(
        &self,
        kind: ResourceKind,
        account: &str,
        region: &str,
        id: &str,
        key: Option<&str>,
        tags: &[(&str, &str)],
    ) {
        let resource = Resource {
            kind,
            id: id.to_string(),
            arn: crate::kinds::of(kind).resource_arn(region, account, id),
            encrypted: key.is_some(),
            kms_key_id: key.map(str::to_string),
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            members: Vec::new(),
            created_at: Some(self.now()),
        };
        self.lock().resources.push((account.to_string(), region.to_string(), resource, None));
    }

    /// Puts a snapshot as it is (an automated one, one another tool made, ...).
    pub fn put_snapshot(&self, snapshot: Snapshot) {
        let mut s = self.lock();
        s.snapshots.retain(|(x, _)| x.arn != snapshot.arn);
        s.snapshots.push((snapshot, Vec::new()));
    }

    /// A snapshot of `resource_id` named `name`, available, as AWS would describe it.
    pub fn snapshot(&self, kind: ResourceKind, account: &str, region: &str, name: &str, resource_id: &str) -> Snapshot {
        let (engine, engine_version) = engine(kind);
        Snapshot {
            kind,
            id: name.to_string(),
            name: name.to_string(),
            arn: crate::arn::snapshot_arn(kind, region, account, name),
            account: account.to_string(),
            region: region.to_string(),
            resource_id: resource_id.to_string(),
            status: Status::Available,
            encrypted: false,
            kms_key_id: None,
            automated: false,
            created_at: Some(self.now()),
            engine,
            engine_version,
            tags: Tags::new(),
            description: None,
            size_gib: None,
            progress: None,
            option_group: None,
        }
    }

    /// Every snapshot `account` owns in `region`.
    pub fn snapshots(&self, account: &str, region: &str) -> Vec<Snapshot> {
        self.lock()
            .snapshots
            .iter()
            .filter(|(x, _)| x.account == account && x.region == region)
            .map(|(x, _)| x.clone())
            .collect()
    }

    /// The accounts the snapshot with this ARN is shared with.
    pub fn shared_with(&self, arn: &str) -> Vec<String> {
        self.lock().snapshots.iter().find(|(x, _)| x.arn == arn).map(|(_, w)| w.clone()).unwrap_or_default()
    }

    pub fn set_status(&self, arn: &str, status: Status) {
        if let Some((x, _)) = self.lock().snapshots.iter_mut().find(|(x, _)| x.arn == arn) {
            x.status = status;
        }
    }

    /// Locks the EBS snapshot `id` (EBS Snapshot Lock): deleting it is refused.
    pub fn lock_snapshot(&self, id: &str) {
        self.lock().locked.push(id.to_string());
    }

    pub fn set_tag(&self, arn: &str, key: &str, value: &str) {
        if let Some((x, _)) = self.lock().snapshots.iter_mut().find(|(x, _)| x.arn == arn) {
            x.tags.insert(key.to_string(), value.to_string());
        }
    }

    /// Every snapshot and test restore in progress finishes.
    pub fn complete_all(&self) {
        let mut s = self.lock();
        for (x, _) in s.snapshots.iter_mut().filter(|(x, _)| x.status == Status::Creating) {
            x.status = Status::Available;
        }
        for r in s.restores.iter_mut().filter(|r| r.restored.status == Status::Creating) {
            r.restored.status = Status::Available;
        }
    }

    pub fn restores(&self) -> Vec<MemRestore> {
        self.lock().restores.clone()
    }

    pub fn set_restore(&self, id: &str, change: impl FnOnce(&mut Restored)) {
        if let Some(r) = self.lock().restores.iter_mut().find(|r| r.restored.id == id) {
            change(&mut r.restored);
        }
    }

    /// Every store call so far, as `op kind account region`.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Events published so far, on any account's bus; taken, so the next call sees only newer ones.
    pub fn take_published(&self) -> Vec<PipelineEvent> {
        std::mem::take(&mut self.lock().published)
    }

    /// Messages steps sent back to their own queues; taken.
    /// Metrics counted so far, as `"<metric> <step>"`; taken.
    pub fn take_metrics(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().metrics)
    }

    /// Messages sent to other steps' queues, as (queue URL, body); taken.
    pub fn take_sent_to(&self) -> Vec<(String, String)> {
        std::mem::take(&mut self.lock().sent_to)
    }

    pub fn take_sent(&self) -> Vec<Sent> {
        std::mem::take(&mut self.lock().sent)
    }

    /// Dead letters as `(body, reason)`; taken.
    pub fn take_dead_letters(&self) -> Vec<(String, String)> {
        std::mem::take(&mut self.lock().dead)
    }

    /// Records whose retry backoff was set, as `(receipt handle, delay)`; taken.
    pub fn take_retried(&self) -> Vec<(String, Duration)> {
        std::mem::take(&mut self.lock().retried)
    }

    pub fn stores(&self, account: &str, region: &str) -> Arc<dyn Stores> {
        Arc::new(store::MemStores { cloud: self.clone(), account: account.to_string(), region: region.to_string() })
    }

    /// A step context whose every port is this cloud, for a step in `account` and `region`.
    pub fn context(&self, account: &str, region: &str, env: StepEnv) -> StepContext {
        StepContext {
            stores: self.stores(account, region),
            queue: Arc::new(self.clone()),
            bus: Arc::new(self.clone()),
            metrics: Arc::new(self.clone()),
            clock: Arc::new(self.clone()),
            ledger: self.ledger(account),
            env,
        }
    }

    /// `account`'s copy ledger.
    pub fn ledger(&self, account: &str) -> Arc<dyn crate::ledger::Ledger> {
        Arc::new(ledger::MemLedger { cloud: self.clone(), account: account.to_string() })
    }

    /// Records the call and answers with an injected fault, if one is due.
    fn call(&self, op: &'static str, what: String) -> Result<()> {
        let mut s = self.lock();
        s.calls.push(format!("{op} {what}"));
        if let Some(f) = s.faults.iter_mut().find(|f| f.op == op && f.remaining > 0) {
            f.remaining -= 1;
            return Err(classify(op, f.code.clone(), format!("injected {}", f.code), Some(400)));
        }
        Ok(())
    }
}

#[async_trait]
impl StepQueue for Cloud {
    async fn send_later(
        &self,
        body: &str,
        delay: Duration,
        attempt: u32,
        waiting_since: Option<DateTime<Utc>>,
        handling: Option<&str>,
    ) -> Result<()> {
        self.call("send", String::new())?;
        let delay = delay.min(Duration::from_secs(900));
        let handling = handling.map(str::to_string);
        self.lock().sent.push(Sent { body: body.to_string(), delay, attempt, waiting_since, handling });
        Ok(())
    }

    async fn dead_letter(&self, body: &str, error: &Error) -> Result<()> {
        self.call("dead-letter", String::new())?;
        self.lock().dead.push((body.to_string(), error.to_string()));
        Ok(())
    }

    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<()> {
        self.lock().retried.push((receipt_handle.to_string(), delay));
        Ok(())
    }

    async fn send_to(&self, queue_url: &str, body: &str) -> Result<()> {
        self.call("send-to", queue_url.to_string())?;
        self.lock().sent_to.push((queue_url.to_string(), body.to_string()));
        Ok(())
    }
}

#[async_trait]
impl EventBus for Cloud {
    async fn publish(&self, events: &[PipelineEvent]) -> Result<()> {
        self.call("publish", String::new())?;
        self.lock().published.extend(events.iter().cloned());
        Ok(())
    }
}

impl Metrics for Cloud {
    fn count(&self, name: &str, step: &str) {
        self.lock().metrics.push(format!("{name} {step}"));
    }

    fn value(&self, name: &str, step: &str, resource: Option<&str>, value: f64, unit: &str) {
        let resource = resource.map(|r| format!(" {r}")).unwrap_or_default();
        self.lock().metrics.push(format!("{name} {step}{resource} = {value} {unit}"));
    }
}

#[async_trait::async_trait]
impl Clock for Cloud {
    fn now(&self) -> DateTime<Utc> {
        Cloud::now(self)
    }

    /// Moves the cloud's time on at once (and finishes what is in progress, when told to).
    async fn sleep(&self, d: std::time::Duration) {
        self.lock().slept.push(d);
        self.advance(chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX));
        if self.lock().finish_on_wait {
            self.complete_all();
        }
        // A sleep gives the other tasks their turn, as a real one does.
        tokio::task::yield_now().await;
    }
}

/// Settings for a step under test: queue names that exist nowhere, 30 s re-checks.
pub fn step_env() -> StepEnv {
    StepEnv {
        queue_url: "memory://queue".into(),
        dlq_url: "memory://dlq".into(),
        pipeline_bus: "snapferry".into(),
        recheck: Duration::from_secs(30),
        retry_base: Duration::from_secs(10),
        max_rechecks: 100,
        quota_wait: Duration::from_secs(24 * 3600),
    }
}
