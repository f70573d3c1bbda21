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
use crate::arn::Arn;
use crate::error::{Error, Result, classify};
use crate::events::PipelineEvent;
use crate::ports::{Clock, EventBus, StepQueue};
use crate::step::{StepContext, StepEnv};
use crate::store::{CopyRequest, Resource, RestoreSpec, Restored, Snapshot, SnapshotStore, Status, Stores};
use crate::tags::{self, Tags};
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// A message a step sent back to its own queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub body: String,
    pub delay: Duration,
    pub attempt: u32,
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
    resources: Vec<(String, String, Resource, Option<String>)>,
    snapshots: Vec<(Snapshot, Vec<String>)>,
    restores: Vec<MemRestore>,
    aws_managed_keys: Vec<String>,
    faults: Vec<Fault>,
    manual_quota: Option<usize>,
    copy_quota: Option<usize>,
    calls: Vec<String>,
    published: Vec<PipelineEvent>,
    sent: Vec<Sent>,
    dead: Vec<(String, String)>,
    retried: Vec<(String, Duration)>,
    next_id: u64,
}

/// The whole in-memory cloud; cheap to clone (one shared state).
#[derive(Debug, Clone, Default)]
pub struct Cloud {
    state: Arc<Mutex<State>>,
}

/// The engine a database of `kind` runs in the cloud.
fn engine(kind: ResourceKind) -> (Option<String>, Option<String>) {
    match kind {
        ResourceKind::DbInstance => (Some("postgres".into()), Some("16.4".into())),
        ResourceKind::DbCluster => (Some("aurora-postgresql".into()), Some("16.4".into())),
        ResourceKind::Ebs => (None, None),
    }
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
        let service = if kind == ResourceKind::Ebs { "ebs" } else { "rds" };
        let arn = format!("arn:aws:kms:{region}:{account}:key/aws-managed-{service}");
        let mut s = self.lock();
        if !s.aws_managed_keys.contains(&arn) {
            s.aws_managed_keys.push(arn.clone());
        }
        arn
    }

    /// A database or volume, encrypted with `key` when given.
    pub fn add_resource(&self, kind: ResourceKind, account: &str, region: &str, id: &str, key: Option<&str>, tags: &[(&str, &str)]) {
        let resource = Resource {
            kind,
            id: id.to_string(),
            arn: format!("arn:aws:{}:{region}:{account}:{}{id}", if kind == ResourceKind::Ebs { "ec2" } else { "rds" }, match kind {
                ResourceKind::DbInstance => "db:",
                ResourceKind::DbCluster => "cluster:",
                ResourceKind::Ebs => "volume/",
            }),
            encrypted: key.is_some(),
            kms_key_id: key.map(str::to_string),
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
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
        }
    }

    /// Every snapshot `account` owns in `region`.
    pub fn snapshots(&self, account: &str, region: &str) -> Vec<Snapshot> {
        self.lock().snapshots.iter().filter(|(x, _)| x.account == account && x.region == region).map(|(x, _)| x.clone()).collect()
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
        Arc::new(MemStores { cloud: self.clone(), account: account.to_string(), region: region.to_string() })
    }

    /// A step context whose every port is this cloud, for a step in `account` and `region`.
    pub fn context(&self, account: &str, region: &str, env: StepEnv) -> StepContext {
        StepContext {
            stores: self.stores(account, region),
            queue: Arc::new(self.clone()),
            bus: Arc::new(self.clone()),
            clock: Arc::new(self.clone()),
            env,
        }
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
    async fn send_later(&self, body: &str, delay: Duration, attempt: u32) -> Result<()> {
        self.call("send", String::new())?;
        self.lock().sent.push(Sent { body: body.to_string(), delay: delay.min(Duration::from_secs(900)), attempt });
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
}

#[async_trait]
impl EventBus for Cloud {
    async fn publish(&self, events: &[PipelineEvent]) -> Result<()> {
        self.call("publish", String::new())?;
        self.lock().published.extend(events.iter().cloned());
        Ok(())
    }
}

impl Clock for Cloud {
    fn now(&self) -> DateTime<Utc> {
        Cloud::now(self)
    }
}

struct MemStores {
    cloud: Cloud,
    account: String,
    region: String,
}

impl Stores for MemStores {
    fn account(&self) -> &str {
        &self.account
    }
    fn region(&self) -> &str {
        &self.region
    }
    fn store_in(&self, kind: ResourceKind, region: &str) -> Arc<dyn SnapshotStore> {
        Arc::new(MemStore { cloud: self.cloud.clone(), kind, account: self.account.clone(), region: region.to_string() })
    }
}

/// One kind's snapshots in one account and region.
pub struct MemStore {
    cloud: Cloud,
    kind: ResourceKind,
    account: String,
    region: String,
}

impl MemStore {
    fn call(&self, op: &'static str) -> Result<()> {
        self.cloud.call(op, format!("{} {} {}", self.kind, self.account, self.region))
    }

    fn owns(&self, x: &Snapshot) -> bool {
        x.kind == self.kind && x.account == self.account && x.region == self.region
    }

    /// What `snapshot` (id, name or ARN) names that this account can see, with who it is shared with.
    fn visible(&self, s: &State, snapshot: &str, region: &str) -> Option<(Snapshot, Vec<String>)> {
        let arn = Arn::parse(snapshot);
        s.snapshots
            .iter()
            .filter(|(x, _)| x.kind == self.kind && x.region == region)
            .find(|(x, shared)| {
                let named = match &arn {
                    Some(_) => x.arn == snapshot,
                    None => x.id == snapshot,
                };
                named && (x.account == self.account || shared.contains(&self.account))
            })
            .cloned()
    }

    fn err(&self, op: &'static str, code: &str, message: String) -> Error {
        classify(op, code.to_string(), message, Some(400))
    }

    fn manual_count(&self, s: &State) -> usize {
        s.snapshots.iter().filter(|(x, _)| self.owns(x) && !x.automated).count()
    }

    fn new_id(&self, s: &mut State, name: &str) -> String {
        s.next_id += 1;
        if self.kind == ResourceKind::Ebs { format!("snap-{:017x}", s.next_id) } else { name.to_string() }
    }
}

#[async_trait]
impl SnapshotStore for MemStore {
    fn kind(&self) -> ResourceKind {
        self.kind
    }
    fn account(&self) -> &str {
        &self.account
    }
    fn region(&self) -> &str {
        &self.region
    }

    async fn list_resources(&self) -> Result<Vec<Resource>> {
        self.call("list_resources")?;
        let s = self.cloud.lock();
        Ok(s.resources
            .iter()
            .filter(|(a, r, res, _)| *a == self.account && *r == self.region && res.kind == self.kind)
            .map(|(_, _, res, _)| res.clone())
            .collect())
    }

    async fn create(&self, resource_id: &str, name: &str, tags: &Tags) -> Result<Snapshot> {
        self.call("create")?;
        let now = self.cloud.now();
        let mut s = self.cloud.lock();
        if let Some((x, _)) = s.snapshots.iter().find(|(x, _)| self.owns(x) && x.name == name) {
            return Ok(x.clone());
        }
        let Some((_, _, resource, _)) = s
            .resources
            .iter()
            .find(|(a, r, res, _)| *a == self.account && *r == self.region && res.kind == self.kind && res.id == resource_id)
            .cloned()
        else {
            return Err(Error::NotFound { op: "create", what: resource_id.to_string() });
        };
        if s.manual_quota.is_some_and(|q| self.manual_count(&s) >= q) {
            return Err(self.err("create", "SnapshotQuotaExceeded", "the manual snapshot quota is reached".into()));
        }
        let id = self.new_id(&mut s, name);
        let (engine, engine_version) = engine(self.kind);
        let mut all_tags = tags.clone();
        if self.kind == ResourceKind::Ebs {
            all_tags.insert(crate::store::ebs::ID_TAG.to_string(), name.to_string());
        }
        let snapshot = Snapshot {
            kind: self.kind,
            arn: crate::arn::snapshot_arn(self.kind, &self.region, &self.account, &id),
            id,
            name: name.to_string(),
            account: self.account.clone(),
            region: self.region.clone(),
            resource_id: resource_id.to_string(),
            status: if s.instant { Status::Available } else { Status::Creating },
            encrypted: resource.encrypted,
            kms_key_id: resource.kms_key_id.clone(),
            automated: false,
            created_at: Some(now),
            engine,
            engine_version,
            tags: all_tags,
        };
        s.snapshots.push((snapshot.clone(), Vec::new()));
        Ok(snapshot)
    }

    async fn describe(&self, snapshot: &str) -> Result<Option<Snapshot>> {
        self.call("describe")?;
        let s = self.cloud.lock();
        Ok(self.visible(&s, snapshot, &self.region).map(|(x, _)| x))
    }

    async fn list_managed(&self) -> Result<Vec<Snapshot>> {
        self.call("list_managed")?;
        let s = self.cloud.lock();
        Ok(s.snapshots
            .iter()
            .filter(|(x, _)| self.owns(x) && !x.automated && tags::is_managed(&x.tags))
            .map(|(x, _)| x.clone())
            .collect())
    }

    async fn copy(&self, request: &CopyRequest<'_>) -> Result<Snapshot> {
        self.call("copy")?;
        let now = self.cloud.now();
        let mut s = self.cloud.lock();
        if let Some((x, _)) = s.snapshots.iter().find(|(x, _)| self.owns(x) && x.name == request.target_id) {
            return Ok(x.clone());
        }
        let source_region = request.source_region.unwrap_or(&self.region);
        let Some((source, _)) = self.visible(&s, request.source, source_region) else {
            return Err(Error::NotFound { op: "copy", what: request.source.to_string() });
        };
        if source.status != Status::Available {
            return Err(self.err("copy", "InvalidDBSnapshotState", format!("{} is not available", source.id)));
        }
        let cross_account = source.account != self.account;
        if source.encrypted && request.kms_key_id.is_none() && (cross_account || source_region != self.region) {
            return Err(self.err(
                "copy",
                "InvalidParameterValue",
                "KmsKeyId must be specified when copying an encrypted snapshot from another account or region".into(),
            ));
        }
        if s.manual_quota.is_some_and(|q| self.manual_count(&s) >= q) {
            return Err(self.err("copy", "SnapshotQuotaExceeded", "the manual snapshot quota is reached".into()));
        }
        let in_progress = s.snapshots.iter().filter(|(x, _)| self.owns(x) && x.status == Status::Creating).count();
        if s.copy_quota.is_some_and(|q| in_progress >= q) {
            let code = if self.kind == ResourceKind::Ebs { "ResourceLimitExceeded" } else { "SnapshotQuotaExceeded" };
            return Err(self.err("copy", code, "too many snapshot copies in progress".into()));
        }
        let id = self.new_id(&mut s, request.target_id);
        let mut copy_tags = request.tags.clone();
        if self.kind == ResourceKind::Ebs {
            copy_tags.insert(crate::store::ebs::ID_TAG.to_string(), request.target_id.to_string());
        }
        let copy = Snapshot {
            kind: self.kind,
            arn: crate::arn::snapshot_arn(self.kind, &self.region, &self.account, &id),
            id,
            name: request.target_id.to_string(),
            account: self.account.clone(),
            region: self.region.clone(),
            resource_id: source.resource_id.clone(),
            status: if s.instant { Status::Available } else { Status::Creating },
            encrypted: source.encrypted || request.kms_key_id.is_some(),
            kms_key_id: request.kms_key_id.map(str::to_string).or(source.kms_key_id.clone()),
            automated: false,
            created_at: Some(now),
            engine: source.engine.clone(),
            engine_version: source.engine_version.clone(),
            tags: copy_tags,
        };
        s.snapshots.push((copy.clone(), Vec::new()));
        Ok(copy)
    }

    async fn share(&self, snapshot: &Snapshot, accounts: &[String]) -> Result<()> {
        self.call("share")?;
        let mut s = self.cloud.lock();
        let managed_keys = s.aws_managed_keys.clone();
        let Some((x, shared)) = s.snapshots.iter_mut().find(|(x, _)| self.owns(x) && x.id == snapshot.id) else {
            return Err(Error::NotFound { op: "share", what: snapshot.id.clone() });
        };
        if accounts.iter().any(|a| a == "all") && x.encrypted {
            return Err(classify("share", "InvalidParameterValue".into(), "encrypted snapshots can't be public".into(), Some(400)));
        }
        if x.automated {
            return Err(classify("share", "InvalidDBSnapshotState".into(), "only manual snapshots may be shared".into(), Some(400)));
        }
        if x.kms_key_id.as_ref().is_some_and(|k| managed_keys.contains(k)) {
            let message = "snapshots encrypted with the AWS-managed key can't be shared".to_string();
            return Err(classify("share", "InvalidParameterValue".into(), message, Some(400)));
        }
        for a in accounts {
            if !shared.contains(a) {
                shared.push(a.clone());
            }
        }
        Ok(())
    }

    async fn shared_with(&self, snapshot: &Snapshot) -> Result<Vec<String>> {
        self.call("shared_with")?;
        let s = self.cloud.lock();
        Ok(s.snapshots.iter().find(|(x, _)| self.owns(x) && x.id == snapshot.id).map(|(_, w)| w.clone()).unwrap_or_default())
    }

    async fn tag(&self, snapshot: &Snapshot, new: &Tags) -> Result<()> {
        self.call("tag")?;
        let mut s = self.cloud.lock();
        match s.snapshots.iter_mut().find(|(x, _)| self.owns(x) && x.id == snapshot.id) {
            Some((x, _)) => {
                x.tags.extend(new.iter().map(|(k, v)| (k.clone(), v.clone())));
                Ok(())
            }
            None => Err(Error::NotFound { op: "tag", what: snapshot.arn.clone() }),
        }
    }

    async fn delete(&self, snapshot: &Snapshot) -> Result<()> {
        self.call("delete")?;
        self.cloud.lock().snapshots.retain(|(x, _)| !(self.owns(x) && x.id == snapshot.id));
        Ok(())
    }

    async fn restore(&self, snapshot: &Snapshot, spec: &RestoreSpec) -> Result<()> {
        self.call("restore")?;
        let class = spec.instance_class.clone().or(self.smallest_restore_class(snapshot.engine.as_deref()).map(str::to_string));
        let mut s = self.cloud.lock();
        if s.restores.iter().any(|r| r.account == self.account && r.region == self.region && r.restored.id == spec.restore_id) {
            return Ok(());
        }
        let Some((source, _)) = self.visible(&s, &snapshot.id, &self.region) else {
            return Err(Error::NotFound { op: "restore", what: snapshot.id.clone() });
        };
        if self.kind == ResourceKind::DbCluster && class.as_deref() == Some("db.t4g.micro") {
            // Aurora offers no micro class: AWS refuses the cluster's instance.
            let message = "RDS does not support creating a DB instance with db.t4g.micro for aurora-postgresql".into();
            return Err(classify("restore", "InvalidParameterCombination".into(), message, Some(400)));
        }
        let restored = Restored {
            id: spec.restore_id.clone(),
            status: if s.instant { Status::Available } else { Status::Creating },
            encrypted: source.encrypted,
            kms_key_id: source.kms_key_id.clone(),
            engine: source.engine.clone(),
            engine_version: source.engine_version.clone(),
        };
        s.restores.push(MemRestore {
            kind: self.kind,
            account: self.account.clone(),
            region: self.region.clone(),
            class,
            spec_tags: spec.tags.clone(),
            restored,
        });
        Ok(())
    }

    async fn restore_status(&self, restore_id: &str) -> Result<Option<Restored>> {
        self.call("restore_status")?;
        let s = self.cloud.lock();
        Ok(s.restores
            .iter()
            .find(|r| r.account == self.account && r.region == self.region && r.restored.id == restore_id)
            .map(|r| r.restored.clone()))
    }

    async fn delete_restore(&self, restore_id: &str) -> Result<()> {
        self.call("delete_restore")?;
        self.cloud.lock().restores.retain(|r| !(r.account == self.account && r.region == self.region && r.restored.id == restore_id));
        Ok(())
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
    }
}

/// Messages as a step receives them: serialized as AWS delivers them, then read by the
/// real inbound parser, so tests exercise the parsing too.
pub mod deliver {
    use crate::events::{
        BACKUP_REQUESTED, BackupRequest, EventEnvelope, PipelineEvent, SCHEDULE_SOURCE, SCHEDULED_EVENT, SOURCE,
    };
    use crate::inbound::{Incoming, native, parse_message};
    use crate::sqs::Record;
    use crate::store::Snapshot;
    use chrono::{DateTime, Utc};
    use serde_json::json;

    fn parsed(body: &str) -> Incoming {
        parse_message(body).unwrap_or_else(|e| panic!("test message does not parse: {e}\n{body}"))
    }

    /// The first delivery of a message.
    pub fn record() -> Record {
        Record { message_id: "m-1".into(), receive_count: 1, attempt: 0 }
    }

    pub fn schedule(time: DateTime<Utc>) -> Incoming {
        let mut e = EventEnvelope::new(SCHEDULE_SOURCE, SCHEDULED_EVENT, json!({}));
        e.time = Some(time);
        parsed(&serde_json::to_string(&e).unwrap_or_default())
    }

    pub fn backup_requested(request: BackupRequest, time: DateTime<Utc>) -> Incoming {
        let mut e = EventEnvelope::new(SOURCE, BACKUP_REQUESTED, request);
        e.time = Some(time);
        parsed(&serde_json::to_string(&e).unwrap_or_default())
    }

    /// An `aws.rds` snapshot event about `snapshot` (DB snapshot or cluster snapshot event
    /// by its kind), as the account's default bus delivers it.
    pub fn rds_event(snapshot: &Snapshot, event_id: &str) -> Incoming {
        let detail_type = match snapshot.kind {
            crate::ResourceKind::DbCluster => native::RDS_DB_CLUSTER_SNAPSHOT_EVENT,
            _ => native::RDS_DB_SNAPSHOT_EVENT,
        };
        let body = json!({
            "version": "0", "id": format!("ev-{event_id}"), "detail-type": detail_type, "source": native::RDS_SOURCE,
            "account": snapshot.account, "region": snapshot.region, "resources": [snapshot.arn],
            "detail": {
                "EventCategories": ["creation"], "SourceType": "SNAPSHOT", "SourceArn": snapshot.arn,
                "SourceIdentifier": snapshot.id, "Message": "test", "EventID": event_id,
            }
        });
        parsed(&body.to_string())
    }

    /// A pipeline event as the receiving bus delivers it; `account` is the envelope's
    /// sending account (EventBridge sets it; a forged event can set anything).
    pub fn pipeline(event: &PipelineEvent, account: Option<&str>) -> Incoming {
        let mut e = EventEnvelope::new(SOURCE, event.detail_type(), event.clone());
        e.account = account.map(str::to_string);
        parsed(&serde_json::to_string(&e).unwrap_or_default())
    }

    /// A body a step sent to its own queue, delivered back.
    pub fn body(body: &str) -> Incoming {
        parsed(body)
    }
}
