//! The one abstraction over the three resource kinds snapferry backs up.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a snapshot is a snapshot of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceKind {
    /// An RDS DB instance snapshot (`rds:...:snapshot:...`).
    DbInstance,
    /// An Aurora DB cluster snapshot (`rds:...:cluster-snapshot:...`).
    DbCluster,
    /// An EBS volume snapshot (`snap-...`).
    Ebs,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 3] = [ResourceKind::DbInstance, ResourceKind::DbCluster, ResourceKind::Ebs];

    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::DbInstance => "db-instance",
            ResourceKind::DbCluster => "db-cluster",
            ResourceKind::Ebs => "ebs",
        }
    }
}

impl std::fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ResourceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ResourceKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown resource kind {s:?} (expected db-instance, db-cluster or ebs)"))
    }
}

pub mod ebs;
pub mod rds;

use crate::error::Result;
use crate::events::SnapshotRef;
use crate::tags::Tags;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Where a snapshot (or a restored test resource) is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Creating,
    Available,
    Failed(String),
    /// Any other state AWS reports (`deleting`, `copying`, ...), kept verbatim.
    Other(String),
}

impl Status {
    /// One mapping for RDS (`creating`/`available`/`failed`) and EC2 (`pending`/`completed`/`error`).
    pub fn from_aws(raw: &str) -> Status {
        match raw {
            "creating" | "pending" | "copying" | "backing-up" | "modifying" => Status::Creating,
            "available" | "completed" | "in-use" => Status::Available,
            "failed" | "error" | "incompatible-restore" | "inaccessible-encryption-credentials" => {
                Status::Failed(raw.to_string())
            }
            other => Status::Other(other.to_string()),
        }
    }
}

/// A snapshot as any of the three kinds describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub kind: ResourceKind,
    /// DB snapshot identifier, cluster snapshot identifier, or `snap-...`.
    pub id: String,
    pub arn: String,
    /// The owning account (differs from ours for a snapshot shared with us).
    pub account: String,
    pub region: String,
    /// The DB instance, DB cluster or volume it was taken of.
    pub resource_id: String,
    pub status: Status,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    /// AWS took it (automated backup), not a user: it cannot be shared as it is.
    pub automated: bool,
    pub created_at: Option<DateTime<Utc>>,
    pub engine: Option<String>,
    pub engine_version: Option<String>,
    pub tags: Tags,
}

impl Snapshot {
    pub fn to_ref(&self) -> SnapshotRef {
        SnapshotRef {
            kind: self.kind,
            arn: self.arn.clone(),
            id: self.id.clone(),
            account: self.account.clone(),
            region: self.region.clone(),
            resource_id: self.resource_id.clone(),
            encrypted: self.encrypted,
            kms_key_id: self.kms_key_id.clone(),
        }
    }
}

/// A database or volume that can be backed up (for selection by id, regex and tag).
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub kind: ResourceKind,
    pub id: String,
    pub arn: String,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    pub tags: Tags,
}

/// A copy of a snapshot into this store's account and region.
#[derive(Debug, Clone)]
pub struct CopyRequest<'a> {
    /// Identifier or ARN of the source; an ARN for a snapshot shared by another account
    /// or one in another region.
    pub source: &'a str,
    /// The region the source lives in, when it is not this store's region. EBS needs it;
    /// RDS reads it from the source ARN (the Rust SDK has no `SourceRegion` presigning).
    pub source_region: Option<&'a str>,
    /// The deterministic identifier (for EBS: the `snapferry:id` tag) of the copy.
    pub target_id: &'a str,
    /// Key for the copy. Required by AWS when copying a shared encrypted snapshot.
    pub kms_key_id: Option<&'a str>,
    pub tags: &'a Tags,
}

/// Where and how to restore a copy to prove it restores.
#[derive(Debug, Clone, Default)]
pub struct RestoreSpec {
    /// Deterministic identifier of the test DB instance / cluster (EBS: a `snapferry:id` tag).
    pub restore_id: String,
    pub subnet_group: Option<String>,
    pub security_group_ids: Vec<String>,
    pub instance_class: String,
    /// EBS only: the availability zone for the test volume.
    pub availability_zone: Option<String>,
    pub tags: Tags,
}

/// A restored test resource as described now.
#[derive(Debug, Clone, PartialEq)]
pub struct Restored {
    pub id: String,
    pub status: Status,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    pub engine: Option<String>,
    pub engine_version: Option<String>,
}

/// The one abstraction the services are written against. Every call is idempotent:
/// "already exists" answers with what exists, "not found" on delete is success.
#[async_trait]
pub trait SnapshotStore: Send + Sync {
    fn kind(&self) -> ResourceKind;
    fn account(&self) -> &str;
    fn region(&self) -> &str;

    /// Databases / volumes in this account and region.
    async fn list_resources(&self) -> Result<Vec<Resource>>;
    /// Take a snapshot with a deterministic id; an existing one of that id is returned as is.
    async fn create(&self, resource_id: &str, snapshot_id: &str, tags: &Tags) -> Result<Snapshot>;
    /// By id or ARN, including snapshots shared with this account; `None` when not there.
    async fn describe(&self, snapshot: &str) -> Result<Option<Snapshot>>;
    /// Snapshots this account owns that carry snapferry's managed tag.
    async fn list_managed(&self) -> Result<Vec<Snapshot>>;
    /// Copy into this account and region; an existing copy of that id is returned as is.
    async fn copy(&self, request: &CopyRequest<'_>) -> Result<Snapshot>;
    /// Let these accounts restore/copy the snapshot. Never `all`.
    async fn share(&self, snapshot: &Snapshot, accounts: &[String]) -> Result<()>;
    /// The accounts it is shared with.
    async fn shared_with(&self, snapshot: &Snapshot) -> Result<Vec<String>>;
    async fn tag(&self, snapshot: &Snapshot, tags: &Tags) -> Result<()>;
    /// Delete; already gone is success.
    async fn delete(&self, snapshot: &Snapshot) -> Result<()>;
    /// Start a test restore; an existing restore of that id is left as is.
    async fn restore(&self, snapshot: &Snapshot, spec: &RestoreSpec) -> Result<()>;
    async fn restore_status(&self, restore_id: &str) -> Result<Option<Restored>>;
    /// Delete what a test restore created (no final snapshot); already gone is success.
    async fn delete_restore(&self, restore_id: &str) -> Result<()>;
}

/// The parts of an ARN snapferry needs: `arn:aws:SERVICE:REGION:ACCOUNT:RESOURCE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn<'a> {
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    pub fn parse(s: &'a str) -> Option<Arn<'a>> {
        let mut parts = s.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        let _partition = parts.next()?;
        let (service, region, account, resource) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        Some(Arn { service, region, account, resource })
    }

    /// The identifier after the resource type: RDS `snapshot:ID` (IDs may hold `:`, as
    /// automated `rds:...` ones do) and EC2 `snapshot/ID`.
    pub fn name(&self) -> &'a str {
        self.resource.split_once([':', '/']).map_or(self.resource, |(_, id)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_parse() {
        let a = Arn::parse("arn:aws:rds:eu-west-1:111111111111:cluster-snapshot:rds:db-2026").unwrap();
        assert_eq!((a.service, a.region, a.account), ("rds", "eu-west-1", "111111111111"));
        assert_eq!(a.resource, "cluster-snapshot:rds:db-2026");
        assert_eq!(a.name(), "rds:db-2026");
        let e = Arn::parse("arn:aws:ec2:us-east-1:222222222222:snapshot/snap-0abc").unwrap();
        assert_eq!(e.name(), "snap-0abc");
        assert_eq!(Arn::parse("snap-0abc"), None);
    }

    #[test]
    fn statuses_map_across_services() {
        assert_eq!(Status::from_aws("pending"), Status::Creating);
        assert_eq!(Status::from_aws("completed"), Status::Available);
        assert_eq!(Status::from_aws("available"), Status::Available);
        assert!(matches!(Status::from_aws("error"), Status::Failed(_)));
        assert_eq!(Status::from_aws("deleting"), Status::Other("deleting".into()));
    }
}
