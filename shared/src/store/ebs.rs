//! EBS adapter. EC2 picks snapshot ids itself (`snap-...`), so the deterministic identifier
//! lives in the [`ID_TAG`] tag, and "already exists" means "a snapshot with that tag exists".

use super::{
    CopyInProgress, CopyRequest, LockMode, Resource, RestoreSpec, Restored, Snapshot, SnapshotStore, Status, to_chrono,
};
use crate::ResourceKind;
use crate::error::{Error, Result};
use crate::tags::{self, Tags};
use async_trait::async_trait;
use aws_sdk_ec2::types::{
    CopyTagsFromSource, CreateVolumePermission, CreateVolumePermissionModifications, Filter, InstanceSpecification,
    LockMode as Ec2LockMode, ResourceType, SnapshotAttributeName, StorageTier, Tag, TagSpecification,
};
use chrono::{DateTime, Utc};

/// The tag that carries snapferry's deterministic identifier of an EBS snapshot or test volume.
pub const ID_TAG: &str = crate::tags::ID;

/// How every snapshot snapferry takes or copies is described, so a DLM-style description
/// filter (`DESCRIPTION_REGEX=^snapferry backup `) selects exactly them.
pub const DESCRIPTION_PREFIX: &str = "snapferry backup ";

/// The description of the snapshot snapferry names `name`.
pub fn description(name: &str) -> String {
    format!("{DESCRIPTION_PREFIX}{name}")
}

/// Why an archived snapshot goes no further: it cannot be shared or copied (EBS User Guide,
/// snapshot-archive: "you can't share or copy an archived snapshot"), and bringing it back
/// takes up to 72 hours, so it is reported, not waited for.
pub const ARCHIVED: &str = "archived: an archived snapshot cannot be shared or copied; restore it to the standard tier (up to 72 h) and replay";

pub struct Ebs {
    client: aws_sdk_ec2::Client,
    account: String,
    region: String,
}

impl Ebs {
    pub fn new(client: aws_sdk_ec2::Client, account: &str, region: &str) -> Self {
        Ebs { client, account: account.to_string(), region: region.to_string() }
    }

    fn to_snapshot(&self, s: &aws_sdk_ec2::types::Snapshot) -> Snapshot {
        let id = s.snapshot_id().unwrap_or_default().to_string();
        let account = s.owner_id().unwrap_or(&self.account).to_string();
        let tags = from_ec2_tags(s.tags());
        let archived = s.storage_tier() == Some(&StorageTier::Archive);
        Snapshot {
            kind: ResourceKind::Ebs,
            arn: crate::arn::snapshot_arn(ResourceKind::Ebs, &self.region, &account, &id),
            name: tags.get(ID_TAG).cloned().unwrap_or_else(|| id.clone()),
            id,
            account,
            region: self.region.clone(),
            resource_id: s.volume_id().unwrap_or_default().to_string(),
            status: if archived { Status::Failed(ARCHIVED.into()) } else { status(s.state().map(|s| s.as_str())) },
            encrypted: s.encrypted().unwrap_or(false),
            kms_key_id: s.kms_key_id().map(str::to_string),
            // Snapshots that AWS services take for themselves (DLM, AWS Backup) are not "automated"
            // in the RDS sense: EBS snapshots can all be shared once on a CMK.
            automated: false,
            created_at: to_chrono(s.start_time()),
            engine: None,
            engine_version: None,
            tags,
            description: s.description().map(str::to_string),
            size_gib: s.volume_size(),
            progress: s.progress().and_then(|p| p.trim_end_matches('%').trim().parse::<u8>().ok()).map(|p| p.min(100)),
            option_group: None,
        }
    }

    /// Every snapshot carrying our deterministic id (several for a backup set), in this account.
    async fn all_by_id_tag(&self, id: &str) -> Result<Vec<Snapshot>> {
        let out = self
            .client
            .describe_snapshots()
            .owner_ids("self")
            .filters(Filter::builder().name(format!("tag:{ID_TAG}")).values(id).build())
            .send()
            .await
            .map_err(|e| Error::from_sdk("DescribeSnapshots", e))?;
        Ok(out.snapshots().iter().map(|s| self.to_snapshot(s)).collect())
    }

    async fn volumes(&self, filter: Option<Filter>) -> Result<Vec<Resource>> {
        let pages = self.client.describe_volumes().set_filters(filter.map(|f| vec![f])).into_paginator().send();
        let volumes = super::paced(&self.region, pages, |p| p.volumes.unwrap_or_default())
            .await
            .map_err(|e| Error::from_sdk("DescribeVolumes", e))?;
        Ok(volumes
            .iter()
            .map(|v| {
                let id = v.volume_id().unwrap_or_default().to_string();
                Resource {
                    kind: ResourceKind::Ebs,
                    arn: format!("arn:aws:ec2:{}:{}:volume/{id}", self.region, self.account),
                    id,
                    encrypted: v.encrypted().unwrap_or(false),
                    kms_key_id: v.kms_key_id().map(str::to_string),
                    tags: from_ec2_tags(v.tags()),
                    members: Vec::new(),
                    created_at: to_chrono(v.create_time()),
                }
            })
            .collect())
    }

    /// EC2 instances with their attached EBS volumes: candidates for a multi-volume set.
    async fn instances(&self) -> Result<Vec<Resource>> {
        let pages = self.client.describe_instances().into_paginator().send();
        let reservations = super::paced(&self.region, pages, |p| p.reservations.unwrap_or_default())
            .await
            .map_err(|e| Error::from_sdk("DescribeInstances", e))?;
        Ok(reservations
            .iter()
            .flat_map(|r| r.instances())
            .filter(|i| i.state().and_then(|s| s.name()).is_none_or(|n| n.as_str() != "terminated"))
            .map(|i| {
                let id = i.instance_id().unwrap_or_default().to_string();
                Resource {
                    kind: ResourceKind::Ebs,
                    arn: format!("arn:aws:ec2:{}:{}:instance/{id}", self.region, self.account),
                    id,
                    encrypted: false,
                    kms_key_id: None,
                    tags: from_ec2_tags(i.tags()),
                    members: i
                        .block_device_mappings()
                        .iter()
                        .filter_map(|m| m.ebs()?.volume_id().map(str::to_string))
                        .collect(),
                    created_at: to_chrono(i.launch_time()),
                }
            })
            .filter(|r| !r.members.is_empty())
            .collect())
    }

    /// The snapshot carrying our deterministic id, in this account.
    async fn find_by_id_tag(&self, id: &str) -> Result<Option<Snapshot>> {
        Ok(super::first_made(&self.all_by_id_tag(id).await?).cloned())
    }

    /// Every volume carrying our deterministic id (a test restore's), in this account.
    async fn volumes_by_id_tag(&self, id: &str) -> Result<Vec<aws_sdk_ec2::types::Volume>> {
        let out = self
            .client
            .describe_volumes()
            .filters(Filter::builder().name(format!("tag:{ID_TAG}")).values(id).build())
            .send()
            .await
            .map_err(|e| Error::from_sdk("DescribeVolumes", e))?;
        Ok(out.volumes().to_vec())
    }

    async fn volume_by_id_tag(&self, id: &str) -> Result<Option<aws_sdk_ec2::types::Volume>> {
        Ok(self.volumes_by_id_tag(id).await?.into_iter().next())
    }

    /// Adds or removes accounts' createVolumePermission (never `all`: only user ids).
    async fn volume_permission(
        &self,
        snapshot: &Snapshot,
        change: aws_sdk_ec2::types::builders::CreateVolumePermissionModificationsBuilder,
    ) -> Result<()> {
        self.client
            .modify_snapshot_attribute()
            .snapshot_id(&snapshot.id)
            .create_volume_permission(change.build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::from_sdk("ModifySnapshotAttribute", e))
    }

    fn tag_spec(resource: ResourceType, id: &str, tags: &Tags) -> TagSpecification {
        let mut all = tags.clone();
        all.insert(ID_TAG.to_string(), id.to_string());
        TagSpecification::builder().resource_type(resource).set_tags(Some(to_ec2_tags(&all))).build()
    }
}

fn users(accounts: &[String]) -> Vec<CreateVolumePermission> {
    accounts.iter().map(|a| CreateVolumePermission::builder().user_id(a).build()).collect()
}

fn to_ec2_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

fn from_ec2_tags(tags: &[Tag]) -> Tags {
    tags.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect()
}

/// EC2 takes bare `snap-...` ids; callers may hold an ARN.
fn bare_id(snapshot: &str) -> &str {
    crate::arn::name_of(snapshot)
}

/// EC2 snapshot and volume states (EC2 API reference, Snapshot.State / Volume.State).
fn status(raw: Option<&str>) -> Status {
    match raw.unwrap_or("unknown") {
        "pending" | "creating" => Status::Creating,
        "completed" | "available" | "in-use" => Status::Available,
        s @ ("error" | "recoverable" | "recovering") => Status::Failed(s.to_string()),
        other => Status::Other(other.to_string()),
    }
}

#[async_trait]
impl SnapshotStore for Ebs {
    fn kind(&self) -> ResourceKind {
        ResourceKind::Ebs
    }
    fn account(&self) -> &str {
        &self.account
    }
    fn region(&self) -> &str {
        &self.region
    }

    async fn list_resources(&self) -> Result<Vec<Resource>> {
        Ok(self.volumes(None).await?.into_iter().chain(self.instances().await?).collect())
    }

    /// Only volumes, found by their tag: the restore role needs no DescribeInstances.
    async fn list_restore_tests(&self) -> Result<Vec<Resource>> {
        self.volumes(Some(Filter::builder().name(format!("tag:{}", tags::RESTORE_TEST)).values("true").build())).await
    }

    async fn create(&self, resource_id: &str, name: &str, tags: &Tags) -> Result<Snapshot> {
        let snapshot_id = name;
        if let Some(existing) = self.find_by_id_tag(snapshot_id).await? {
            return Ok(existing);
        }
        let out = self
            .client
            .create_snapshot()
            .volume_id(resource_id)
            .description(description(snapshot_id))
            .tag_specifications(Self::tag_spec(ResourceType::Snapshot, snapshot_id, tags))
            .send()
            .await
            .map_err(|e| Error::from_sdk("CreateSnapshot", e))?;
        let id = out.snapshot_id().ok_or_else(|| Error::BadInput("CreateSnapshot returned no id".into()))?;
        self.describe(id).await?.ok_or_else(|| Error::NotFound { op: "DescribeSnapshots", what: id.to_string() })
    }

    /// An instance's volumes in one crash-consistent `CreateSnapshots` call; every member
    /// carries the set's name as its id tag, so a retry finds the set instead of taking another.
    async fn create_set(&self, resource: &Resource, name: &str, tags: &Tags) -> Result<Vec<Snapshot>> {
        if resource.members.is_empty() {
            return Ok(vec![self.create(&resource.id, name, tags).await?]);
        }
        let existing = self.all_by_id_tag(name).await?;
        if !existing.is_empty() {
            return Ok(existing);
        }
        let out = self
            .client
            .create_snapshots()
            .instance_specification(InstanceSpecification::builder().instance_id(&resource.id).build())
            .description(description(name))
            .copy_tags_from_source(CopyTagsFromSource::Volume)
            .tag_specifications(Self::tag_spec(ResourceType::Snapshot, name, tags))
            .send()
            .await
            .map_err(|e| Error::from_sdk("CreateSnapshots", e))?;
        let ids: Vec<&str> = out.snapshots().iter().filter_map(|s| s.snapshot_id()).collect();
        let mut set = Vec::new();
        for id in ids {
            set.extend(self.describe(id).await?);
        }
        Ok(set)
    }

    async fn find(&self, name: &str) -> Result<Option<Snapshot>> {
        self.find_by_id_tag(name).await
    }

    async fn named(&self, name: &str) -> Result<Vec<Snapshot>> {
        self.all_by_id_tag(name).await
    }

    async fn describe(&self, snapshot: &str) -> Result<Option<Snapshot>> {
        let r = self
            .client
            .describe_snapshots()
            .snapshot_ids(bare_id(snapshot))
            .send()
            .await
            .map_err(|e| Error::from_sdk("DescribeSnapshots", e));
        match r {
            Ok(out) => Ok(out.snapshots().first().map(|s| self.to_snapshot(s))),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_managed(&self) -> Result<Vec<Snapshot>> {
        let managed = Filter::builder().name(format!("tag:{}", tags::MANAGED)).values("true").build();
        let pages = self.client.describe_snapshots().owner_ids("self").filters(managed).into_paginator().send();
        let all = super::paced(&self.region, pages, |p| p.snapshots.unwrap_or_default())
            .await
            .map_err(|e| Error::from_sdk("DescribeSnapshots", e))?;
        Ok(all.iter().map(|s| self.to_snapshot(s)).filter(|s| tags::is_managed(&s.tags)).collect())
    }

    async fn managed_of(&self, resource_id: &str) -> Result<Vec<Snapshot>> {
        // A copy names its volume in its lineage only (EC2 gives copies a placeholder volume
        // id); a snapshot taken here names it in its own VolumeId.
        let by = [
            Filter::builder().name(format!("tag:{}", tags::ORIGIN_RESOURCE)).values(resource_id).build(),
            Filter::builder().name("volume-id").values(resource_id).build(),
        ];
        let mut found: Vec<Snapshot> = Vec::new();
        for filter in by {
            let pages = self.client.describe_snapshots().owner_ids("self").filters(filter).into_paginator().send();
            let page = super::paced(&self.region, pages, |p| p.snapshots.unwrap_or_default())
                .await
                .map_err(|e| Error::from_sdk("DescribeSnapshots", e))?;
            for s in page.iter().map(|s| self.to_snapshot(s)) {
                if tags::is_managed(&s.tags) && !found.iter().any(|f| f.id == s.id) {
                    found.push(s);
                }
            }
        }
        Ok(found)
    }

    async fn list_own(&self) -> Result<Vec<Snapshot>> {
        let pages = self.client.describe_snapshots().owner_ids("self").into_paginator().send();
        let all = super::paced(&self.region, pages, |p| p.snapshots.unwrap_or_default())
            .await
            .map_err(|e| Error::from_sdk("DescribeSnapshots", e))?;
        Ok(all.iter().map(|s| self.to_snapshot(s)).collect())
    }

    async fn pending_copies(&self) -> Result<Option<Vec<CopyInProgress>>> {
        // EC2 names no source on a copy: every snapshot of this account still pending counts
        // (the source account's re-encrypting copies, the backup account's copies).
        let pending = Filter::builder().name("status").values("pending").build();
        let pages = self.client.describe_snapshots().owner_ids("self").filters(pending).into_paginator().send();
        let snapshots = super::paced(&self.region, pages, |p| p.snapshots.unwrap_or_default())
            .await
            .map_err(|e| Error::from_sdk("DescribeSnapshots", e))?;
        // StartTime is whole seconds; snapferry's own copies say more exactly when they were
        // asked for (Snapshot::as_in_progress).
        Ok(Some(snapshots.iter().map(|s| self.to_snapshot(s).as_in_progress()).collect()))
    }

    async fn shared_with_us(&self) -> Result<Vec<Snapshot>> {
        let pages = self.client.describe_snapshots().restorable_by_user_ids("self").into_paginator().send();
        let shared = super::paced(&self.region, pages, |p| p.snapshots.unwrap_or_default())
            .await
            .map_err(|e| Error::from_sdk("DescribeSnapshots", e))?;
        Ok(shared.iter().map(|s| self.to_snapshot(s)).filter(|s| s.account != self.account).collect())
    }

    async fn copy(&self, request: &CopyRequest<'_>) -> Result<Snapshot> {
        if let Some(existing) = self.find_by_id_tag(request.target_id).await? {
            return Ok(existing);
        }
        let out = self
            .client
            .copy_snapshot()
            .source_snapshot_id(bare_id(request.source))
            .source_region(request.source_region.unwrap_or(&self.region))
            .encrypted(request.kms_key_id.is_some())
            .set_kms_key_id(request.kms_key_id.map(str::to_string))
            .description(description(request.target_id))
            .tag_specifications(Self::tag_spec(ResourceType::Snapshot, request.target_id, request.tags))
            .send()
            .await
            .map_err(|e| Error::from_sdk("CopySnapshot", e))?;
        let id = out.snapshot_id().ok_or_else(|| Error::BadInput("CopySnapshot returned no id".into()))?;
        self.describe(id).await?.ok_or_else(|| Error::NotFound { op: "DescribeSnapshots", what: id.to_string() })
    }

    async fn share(&self, snapshot: &Snapshot, accounts: &[String]) -> Result<()> {
        self.volume_permission(snapshot, CreateVolumePermissionModifications::builder().set_add(Some(users(accounts))))
            .await
    }

    async fn unshare(&self, snapshot: &Snapshot, accounts: &[String]) -> Result<()> {
        let remove = CreateVolumePermissionModifications::builder().set_remove(Some(users(accounts)));
        self.volume_permission(snapshot, remove).await
    }

    async fn locked(&self, snapshots: &[Snapshot]) -> Result<Vec<String>> {
        if snapshots.is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .describe_locked_snapshots()
            .set_snapshot_ids(Some(snapshots.iter().map(|s| s.id.clone()).collect()))
            .send()
            .await
            .map_err(|e| Error::from_sdk("DescribeLockedSnapshots", e))?;
        Ok(out.snapshots().iter().filter_map(|s| s.snapshot_id().map(str::to_string)).collect())
    }

    async fn shared_with(&self, snapshot: &Snapshot) -> Result<Vec<String>> {
        let out = self
            .client
            .describe_snapshot_attribute()
            .snapshot_id(&snapshot.id)
            .attribute(SnapshotAttributeName::CreateVolumePermission)
            .send()
            .await
            .map_err(|e| Error::from_sdk("DescribeSnapshotAttribute", e))?;
        Ok(out.create_volume_permissions().iter().filter_map(|p| p.user_id().map(str::to_string)).collect())
    }

    async fn tag(&self, snapshot: &Snapshot, tags: &Tags) -> Result<()> {
        self.client
            .create_tags()
            .resources(&snapshot.id)
            .set_tags(Some(to_ec2_tags(tags)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::from_sdk("CreateTags", e))
    }

    async fn delete(&self, snapshot: &Snapshot) -> Result<()> {
        match self.client.delete_snapshot().snapshot_id(&snapshot.id).send().await {
            Ok(_) => Ok(()),
            Err(e) => match Error::from_sdk("DeleteSnapshot", e) {
                Error::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn restore(&self, snapshot: &Snapshot, spec: &RestoreSpec) -> Result<bool> {
        if self.volume_by_id_tag(&spec.restore_id).await?.is_some() {
            return Ok(false);
        }
        let zone = spec.availability_zone.clone().unwrap_or_else(|| format!("{}a", self.region));
        // Size and encryption come from the snapshot: the test proves the copy as it is.
        let out = self
            .client
            .create_volume()
            .snapshot_id(&snapshot.id)
            .availability_zone(zone)
            .tag_specifications(Self::tag_spec(ResourceType::Volume, &spec.restore_id, &spec.tags))
            .send()
            .await
            .map_err(|e| Error::from_sdk("CreateVolume", e))?;
        // Two invocations at once may both have found none and made one each (EC2 names
        // none): the one with the lowest id stays, whoever made it, the others go.
        let mine = out.volume_id().unwrap_or_default().to_string();
        let mut made: Vec<String> = self
            .volumes_by_id_tag(&spec.restore_id)
            .await?
            .iter()
            .filter_map(|v| v.volume_id().map(str::to_string))
            .collect();
        made.sort();
        for extra in made.iter().skip(1) {
            tracing::info!(volume = extra, restore_id = spec.restore_id, "a test volume made twice at once; deleted");
            let deleted = self.client.delete_volume().volume_id(extra).send().await;
            match deleted.map_err(|e| Error::from_sdk("DeleteVolume", e)) {
                Ok(_) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(made.first().is_none_or(|kept| *kept == mine))
    }

    async fn restore_status(&self, restore_id: &str) -> Result<Option<Restored>> {
        Ok(self.volume_by_id_tag(restore_id).await?.map(|v| Restored {
            endpoint: None,
            id: restore_id.to_string(),
            status: status(v.state().map(|s| s.as_str())),
            encrypted: v.encrypted().unwrap_or(false),
            kms_key_id: v.kms_key_id().map(str::to_string),
            engine: None,
            engine_version: None,
            size_gib: v.size(),
        }))
    }

    async fn delete_restore(&self, restore_id: &str) -> Result<()> {
        let Some(volume) = self.volume_by_id_tag(restore_id).await? else {
            return Ok(());
        };
        match self.client.delete_volume().set_volume_id(volume.volume_id().map(str::to_string)).send().await {
            Ok(_) => Ok(()),
            Err(e) => match Error::from_sdk("DeleteVolume", e) {
                Error::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    /// Locking again with the same mode and duration is accepted by EC2 (it sets the lock
    /// anew), so a redelivered message locks without error.
    async fn lock(&self, snapshot: &Snapshot, mode: LockMode, days: u32) -> Result<Option<DateTime<Utc>>> {
        let mode = match mode {
            LockMode::Governance => Ec2LockMode::Governance,
            LockMode::Compliance => Ec2LockMode::Compliance,
        };
        let out = self
            .client
            .lock_snapshot()
            .snapshot_id(&snapshot.id)
            .lock_mode(mode)
            .lock_duration(days as i32)
            .send()
            .await
            .map_err(|e| Error::from_sdk("LockSnapshot", e))?;
        Ok(to_chrono(out.lock_expires_on()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_ids_from_arns() {
        assert_eq!(bare_id("arn:aws:ec2:us-east-1:111111111111:snapshot/snap-0abc"), "snap-0abc");
        assert_eq!(bare_id("snap-0abc"), "snap-0abc");
    }

    #[test]
    fn ec2_statuses_map() {
        assert_eq!(status(Some("pending")), Status::Creating);
        assert_eq!(status(Some("completed")), Status::Available);
        assert!(matches!(status(Some("error")), Status::Failed(_)));
        assert_eq!(status(Some("deleting")), Status::Other("deleting".into()));
    }
}
