//! The in-memory snapshot stores: one kind's snapshots in one account and region, with
//! the semantics the module docs list.

use super::{Cloud, MemRestore, State, engine};
use crate::ResourceKind;
use crate::arn::Arn;
use crate::error::{Error, Result, classify};
use crate::store::{CopyRequest, Resource, RestoreSpec, Restored, Snapshot, SnapshotStore, Status, Stores};
use crate::tags::{self, Tags};
use async_trait::async_trait;
use std::sync::Arc;

pub(super) struct MemStores {
    pub(super) cloud: Cloud,
    pub(super) account: String,
    pub(super) region: String,
}

impl Stores for MemStores {
    fn account(&self) -> &str {
        &self.account
    }
    fn region(&self) -> &str {
        &self.region
    }
    fn store_in(&self, kind: ResourceKind, region: &str) -> Arc<dyn SnapshotStore> {
        Arc::new(MemStore {
            cloud: self.cloud.clone(),
            kind,
            account: self.account.clone(),
            region: region.to_string(),
        })
    }
}

/// One kind's snapshots in one account and region.
pub(super) struct MemStore {
    cloud: Cloud,
    kind: ResourceKind,
    account: String,
    region: String,
}

impl MemStore {
    fn row(&self) -> &'static crate::kinds::Kind {
        crate::kinds::of(self.kind)
    }

    fn call(&self, op: &'static str) -> Result<()> {
        self.cloud.call(op, format!("{} {} {}", self.kind, self.account, self.region))
    }

    fn owns(&self, x: &Snapshot) -> bool {
        x.kind == self.kind && x.account == self.account && x.region == self.region
    }

    /// What `snapshot` (id or ARN) names that this account can see, with who it is shared
    /// with. As in AWS: EC2 takes only the bare `snap-` id, so an ARN's account and region
    /// say nothing; RDS describes a snapshot shared with us under its ARN.
    fn visible(&self, s: &State, snapshot: &str, region: &str) -> Option<(Snapshot, Vec<String>)> {
        let by_arn = Arn::parse(snapshot).is_some() && self.row().named_by_identifier;
        let id = crate::arn::name_of(snapshot);
        let (found, shared) = s
            .snapshots
            .iter()
            .filter(|(x, _)| x.kind == self.kind && x.region == region)
            .find(|(x, shared)| {
                let named = if by_arn { x.arn == snapshot } else { x.id == id };
                named && (x.account == self.account || shared.contains(&self.account))
            })
            .cloned()?;
        let foreign_rds = found.account != self.account && self.row().named_by_identifier;
        Some((Snapshot { id: if foreign_rds { found.arn.clone() } else { found.id.clone() }, ..found }, shared))
    }

    /// AWS refuses a request that would leave a resource with more than 50 tags.
    fn check_tag_count(&self, op: &'static str, n: usize) -> Result<()> {
        if n > tags::MAX_TAGS {
            return Err(self.err(op, "TagLimitExceeded", format!("{n} tags; at most {} per resource", tags::MAX_TAGS)));
        }
        Ok(())
    }

    /// What the store answers when the manual snapshot count is at its quota: the RDS
    /// adapters tell it from a quota of copies in progress (the account's quota figures),
    /// the EBS one cannot.
    fn manual_quota_full(&self, op: &'static str, quota: usize) -> Error {
        let refused = self.err(op, "SnapshotQuotaExceeded", "the manual snapshot quota is reached".into());
        match self.row().snapshot_quota {
            None => refused,
            Some(_) => crate::store::quota_full(&format!("{quota} of {quota} manual snapshots used"), &refused),
        }
    }

    fn err(&self, op: &'static str, code: &str, message: String) -> Error {
        classify(op, code.to_string(), message, Some(400))
    }

    fn manual_count(&self, s: &State) -> usize {
        s.snapshots.iter().filter(|(x, _)| self.owns(x) && !x.automated).count()
    }

    fn new_id(&self, s: &mut State, name: &str) -> String {
        s.next_id += 1;
        if self.row().named_by_identifier { name.to_string() } else { format!("snap-{:017x}", s.next_id) }
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
        let ours = |kind: ResourceKind, account: &str, region: &str| {
            kind == self.kind && account == self.account && region == self.region
        };
        let databases =
            s.resources.iter().filter(|(a, r, res, _)| ours(res.kind, a, r)).map(|(_, _, res, _)| res.clone());
        // A test restore is a database like any other (DescribeDBInstances lists it).
        let restores = s.restores.iter().filter(|r| ours(r.kind, &r.account, &r.region)).map(|r| Resource {
            kind: r.kind,
            id: r.restored.id.clone(),
            arn: crate::kinds::of(r.kind).resource_arn(&r.region, &r.account, &r.restored.id),
            encrypted: r.restored.encrypted,
            kms_key_id: r.restored.kms_key_id.clone(),
            tags: r.spec_tags.clone(),
            members: Vec::new(),
            created_at: None,
        });
        Ok(databases.chain(restores).collect())
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
            .find(|(a, r, res, _)| {
                *a == self.account && *r == self.region && res.kind == self.kind && res.id == resource_id
            })
            .cloned()
        else {
            return Err(Error::NotFound { op: "create", what: resource_id.to_string() });
        };
        if let Some(q) = s.manual_quota.filter(|q| self.manual_count(&s) >= *q) {
            return Err(self.manual_quota_full("create", q));
        }
        self.check_tag_count("create", tags.len())?;
        let id = self.new_id(&mut s, name);
        let (engine, engine_version) = engine(self.kind);
        let mut all_tags = tags.clone();
        if !self.row().named_by_identifier {
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
            description: (!self.row().named_by_identifier).then(|| crate::store::ebs::description(name)),
            size_gib: None,
            progress: None,
            option_group: None,
        };
        s.snapshots.push((snapshot.clone(), Vec::new()));
        Ok(snapshot)
    }

    async fn describe(&self, snapshot: &str) -> Result<Option<Snapshot>> {
        self.call("describe")?;
        let s = self.cloud.lock();
        Ok(self.visible(&s, snapshot, &self.region).map(|(x, _)| x))
    }

    async fn find(&self, name: &str) -> Result<Option<Snapshot>> {
        self.call("describe")?;
        let s = self.cloud.lock();
        Ok(s.snapshots.iter().map(|(x, _)| x).find(|x| self.owns(x) && x.name == name).cloned())
    }

    async fn named(&self, name: &str) -> Result<Vec<Snapshot>> {
        self.call("describe")?;
        let s = self.cloud.lock();
        Ok(s.snapshots.iter().map(|(x, _)| x).filter(|x| self.owns(x) && x.name == name).cloned().collect())
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

    async fn managed_of(&self, resource_id: &str) -> Result<Vec<Snapshot>> {
        self.call("managed_of")?;
        let s = self.cloud.lock();
        Ok(s.snapshots
            .iter()
            .map(|(x, _)| x)
            .filter(|x| self.owns(x) && !x.automated && tags::is_managed(&x.tags))
            .filter(|x| crate::lineage::Lineage::of(x).origin_resource().unwrap_or(&x.resource_id) == resource_id)
            .cloned()
            .collect())
    }

    async fn list_own(&self) -> Result<Vec<Snapshot>> {
        self.call("list_own")?;
        let s = self.cloud.lock();
        Ok(s.snapshots.iter().filter(|(x, _)| self.owns(x)).map(|(x, _)| x.clone()).collect())
    }

    async fn pending_copies(&self) -> Result<Option<Vec<crate::store::CopyInProgress>>> {
        if !crate::kinds::of(self.kind).lists_by_state {
            return Ok(None);
        }
        self.call("pending_copies")?;
        let pending = {
            let s = self.cloud.lock();
            s.snapshots
                .iter()
                .filter(|(x, _)| self.owns(x) && x.status == Status::Creating)
                .map(|(x, _)| x.as_in_progress())
                .collect()
        };
        // The answer is as of the request, and comes back a round trip later, as AWS's
        // does: whatever else may run meanwhile does.
        tokio::task::yield_now().await;
        Ok(Some(pending))
    }

    async fn shared_with_us(&self) -> Result<Vec<Snapshot>> {
        self.call("shared_with_us")?;
        let s = self.cloud.lock();
        Ok(s.snapshots
            .iter()
            .filter(|(x, shared)| x.kind == self.kind && x.region == self.region && shared.contains(&self.account))
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
        // AWS refuses a copy into another region of a snapshot of a non-default option group
        // that names none there (RDS API Reference, CopyDBSnapshot, OptionGroupName).
        if let Some(group) = source.option_group.as_deref().filter(|g| !g.starts_with("default:"))
            && source_region != self.region
            && request.option_group.is_none()
        {
            return Err(self.err(
                "copy",
                "InvalidParameterValue",
                format!("The snapshot requires a target option group with the following options: [{group}]"),
            ));
        }
        if let Some(q) = s.manual_quota.filter(|q| self.manual_count(&s) >= *q) {
            return Err(self.manual_quota_full("copy", q));
        }
        let in_progress = s.snapshots.iter().filter(|(x, _)| self.owns(x) && x.status == Status::Creating).count();
        if s.copy_quota.is_some_and(|q| in_progress >= q) {
            let code = self.row().copy_limit_code;
            return Err(self.err("copy", code, "too many snapshot copies in progress".into()));
        }
        self.check_tag_count("copy", request.tags.len())?;
        let id = self.new_id(&mut s, request.target_id);
        let mut copy_tags = request.tags.clone();
        if !self.row().named_by_identifier {
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
            description: (!self.row().named_by_identifier).then(|| crate::store::ebs::description(request.target_id)),
            size_gib: source.size_gib,
            progress: None,
            option_group: request.option_group.map(str::to_string).or(source.option_group.clone()),
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
            return Err(classify(
                "share",
                "InvalidParameterValue".into(),
                "encrypted snapshots can't be public".into(),
                Some(400),
            ));
        }
        if x.automated {
            return Err(classify(
                "share",
                "InvalidDBSnapshotState".into(),
                "only manual snapshots may be shared".into(),
                Some(400),
            ));
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

    async fn unshare(&self, snapshot: &Snapshot, accounts: &[String]) -> Result<()> {
        self.call("unshare")?;
        let mut s = self.cloud.lock();
        if let Some((_, shared)) = s.snapshots.iter_mut().find(|(x, _)| self.owns(x) && x.id == snapshot.id) {
            shared.retain(|a| !accounts.contains(a));
        }
        Ok(())
    }

    async fn quota_usage(&self) -> Result<Option<crate::store::QuotaUsage>> {
        let s = self.cloud.lock();
        let Some(name) = self.row().snapshot_quota else { return Ok(None) };
        Ok(s.manual_quota.map(|max| crate::store::QuotaUsage {
            name,
            used: self.manual_count(&s) as u64,
            max: max as u64,
        }))
    }

    async fn locked(&self, snapshots: &[Snapshot]) -> Result<Vec<String>> {
        let s = self.cloud.lock();
        Ok(snapshots.iter().filter(|x| s.locked.contains(&x.id)).map(|x| x.id.clone()).collect())
    }

    async fn lock(
        &self,
        snapshot: &Snapshot,
        _mode: crate::store::LockMode,
        days: u32,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        if !self.row().lockable {
            return Ok(None);
        }
        self.call("lock")?;
        let until = self.cloud.now() + chrono::Duration::days(i64::from(days));
        self.cloud.lock().locked.push(snapshot.id.clone());
        Ok(Some(until))
    }

    async fn shared_with(&self, snapshot: &Snapshot) -> Result<Vec<String>> {
        self.call("shared_with")?;
        let s = self.cloud.lock();
        Ok(s.snapshots
            .iter()
            .find(|(x, _)| self.owns(x) && x.id == snapshot.id)
            .map(|(_, w)| w.clone())
            .unwrap_or_default())
    }

    async fn tag(&self, snapshot: &Snapshot, new: &Tags) -> Result<()> {
        self.call("tag")?;
        let mut s = self.cloud.lock();
        match s.snapshots.iter_mut().find(|(x, _)| self.owns(x) && x.id == snapshot.id) {
            Some((x, _)) => {
                let mut all = x.tags.clone();
                all.extend(new.iter().map(|(k, v)| (k.clone(), v.clone())));
                self.check_tag_count("tag", all.len())?;
                x.tags = all;
                Ok(())
            }
            None => Err(Error::NotFound { op: "tag", what: snapshot.arn.clone() }),
        }
    }

    async fn delete(&self, snapshot: &Snapshot) -> Result<()> {
        self.call("delete")?;
        let mut s = self.cloud.lock();
        if s.locked.contains(&snapshot.id) {
            // EBS's refusal of a locked snapshot (EBS User Guide, snapshot-lock-concepts).
            return Err(self.err("delete", "SnapshotLocked", format!("{} is locked", snapshot.id)));
        }
        s.snapshots.retain(|(x, _)| !(self.owns(x) && x.id == snapshot.id));
        Ok(())
    }

    async fn restore(&self, snapshot: &Snapshot, spec: &RestoreSpec) -> Result<bool> {
        self.call("restore")?;
        let class =
            spec.instance_class.clone().or(self.smallest_restore_class(snapshot.engine.as_deref()).map(str::to_string));
        let mut s = self.cloud.lock();
        if s.restores
            .iter()
            .any(|r| r.account == self.account && r.region == self.region && r.restored.id == spec.restore_id)
        {
            return Ok(false);
        }
        let Some((source, _)) = self.visible(&s, &snapshot.id, &self.region) else {
            return Err(Error::NotFound { op: "restore", what: snapshot.id.clone() });
        };
        let restored = Restored {
            endpoint: None,
            id: spec.restore_id.clone(),
            status: if s.instant { Status::Available } else { Status::Creating },
            encrypted: source.encrypted,
            kms_key_id: source.kms_key_id.clone(),
            engine: source.engine.clone(),
            engine_version: source.engine_version.clone(),
            size_gib: source.size_gib,
        };
        s.restores.push(MemRestore {
            kind: self.kind,
            account: self.account.clone(),
            region: self.region.clone(),
            class: class.clone(),
            spec_tags: spec.tags.clone(),
            restored,
        });
        if self.row().below_smallest_class(class.as_deref()) {
            // Aurora offers no micro class: AWS restores the cluster, then refuses its instance.
            let message = "RDS does not support creating a DB instance with db.t4g.micro for aurora-postgresql".into();
            return Err(classify("restore", "InvalidParameterCombination".into(), message, Some(400)));
        }
        Ok(true)
    }

    async fn restore_status(&self, restore_id: &str) -> Result<Option<Restored>> {
        self.call("restore_status")?;
        let s = self.cloud.lock();
        Ok(s.restores
            .iter()
            .find(|r| r.account == self.account && r.region == self.region && r.restored.id == restore_id)
            .map(|r| r.restored.clone()))
    }

    /// A database the cloud holds as a resource of this kind, with the endpoint and the
    /// managed master secret RDS would describe.
    async fn database(&self, resource_id: &str) -> Result<Option<crate::store::Database>> {
        self.call("database")?;
        let s = self.cloud.lock();
        let found = s.resources.iter().any(|(a, r, res, _)| {
            a == &self.account && r == &self.region && res.kind == self.kind && res.id == resource_id
        });
        if !found || !self.row().database {
            return Ok(None);
        }
        Ok(Some(crate::store::Database {
            id: resource_id.to_string(),
            engine: engine(self.kind).0,
            endpoint: Some(crate::store::Endpoint {
                host: format!("{resource_id}.{}.rds.memory", self.region),
                port: 5432,
                user: "owner".into(),
                database: Some("app".into()),
            }),
            master_secret_arn: Some(format!(
                "arn:aws:secretsmanager:{}:{}:secret:rds!db-{resource_id}",
                self.region, self.account
            )),
        }))
    }

    async fn delete_restore(&self, restore_id: &str) -> Result<()> {
        self.call("delete_restore")?;
        self.cloud
            .lock()
            .restores
            .retain(|r| !(r.account == self.account && r.region == self.region && r.restored.id == restore_id));
        Ok(())
    }
}
