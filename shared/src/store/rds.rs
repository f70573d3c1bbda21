//! RDS adapters: DB instance snapshots and Aurora DB cluster snapshots, one implementation.
//!
//! The two APIs mirror each other with different type names. [`Family`] is the thin part
//! that differs (which SDK call, which fields); [`Rds`] holds everything else once: "already
//! exists" and "not found" handling, the mapping onto [`Snapshot`], the `restore` attribute.

use super::{CopyRequest, Resource, RestoreSpec, Restored, Snapshot, SnapshotStore, Status, absent_ok, to_chrono};
use crate::ResourceKind;
use crate::error::{Error, Result};
use crate::tags::{self, Tags};
use async_trait::async_trait;
use aws_sdk_rds::Client;
use aws_sdk_rds::types::{DbClusterSnapshotAttribute, DbSnapshotAttribute, Tag};

/// Only accounts are ever added to the `restore` attribute: never `all`.
const RESTORE_ATTRIBUTE: &str = "restore";

/// The fields snapferry reads from an RDS snapshot of either family.
struct Raw<'a> {
    id: &'a str,
    arn: &'a str,
    resource_id: &'a str,
    status: Option<&'a str>,
    snapshot_type: Option<&'a str>,
    encrypted: Option<bool>,
    kms_key_id: Option<&'a str>,
    created: Option<&'a aws_smithy_types::DateTime>,
    engine: Option<&'a str>,
    engine_version: Option<&'a str>,
    tags: &'a [Tag],
}

/// What differs between the DB instance and DB cluster snapshot APIs.
#[async_trait]
trait Family: Send + Sync {
    const KIND: ResourceKind;
    type Snapshot: Send + Sync;
    fn raw(s: &Self::Snapshot) -> Raw<'_>;

    async fn list_resources(&self, client: &Client) -> Result<Vec<Resource>>;
    async fn create(
        &self,
        client: &Client,
        resource_id: &str,
        name: &str,
        tags: Vec<Tag>,
    ) -> Result<Option<Self::Snapshot>>;
    async fn describe(&self, client: &Client, snapshot: &str) -> Result<Option<Self::Snapshot>>;
    async fn list_manual(&self, client: &Client) -> Result<Vec<Self::Snapshot>>;
    async fn copy(&self, client: &Client, request: &CopyRequest<'_>, tags: Vec<Tag>) -> Result<Option<Self::Snapshot>>;
    async fn share(&self, client: &Client, snapshot: &str, accounts: &[String]) -> Result<()>;
    /// Every account in the `restore` attribute.
    async fn restorable_by(&self, client: &Client, snapshot: &str) -> Result<Vec<String>>;
    async fn delete(&self, client: &Client, snapshot: &str) -> Result<()>;
    async fn restore(&self, client: &Client, snapshot: &Snapshot, spec: &RestoreSpec, class: &str) -> Result<()>;
    async fn restore_status(&self, client: &Client, restore_id: &str) -> Result<Option<Restored>>;
    async fn delete_restore(&self, client: &Client, restore_id: &str) -> Result<()>;
}

/// An RDS snapshot store of one family, in one account and region.
pub struct Rds<F> {
    client: Client,
    account: String,
    region: String,
    family: F,
}

pub type RdsInstance = Rds<Instances>;
pub type RdsCluster = Rds<Clusters>;

impl<F: Default> Rds<F> {
    pub fn new(client: Client, account: &str, region: &str) -> Self {
        Rds { client, account: account.to_string(), region: region.to_string(), family: F::default() }
    }
}

fn to_rds_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

fn from_rds_tags(tags: &[Tag]) -> Tags {
    tags.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect()
}

/// RDS snapshot states (RDS API reference, DBSnapshot.Status / DBInstance.DBInstanceStatus).
fn status(raw: Option<&str>) -> Status {
    match raw.unwrap_or("unknown") {
        "creating" | "copying" | "backing-up" | "modifying" | "pending" => Status::Creating,
        "available" => Status::Available,
        s @ ("failed" | "incompatible-restore" | "inaccessible-encryption-credentials" | "incompatible-parameters") => {
            Status::Failed(s.to_string())
        }
        other => Status::Other(other.to_string()),
    }
}

fn exists_ok(r: Result<()>) -> Result<()> {
    match r {
        Err(Error::AlreadyExists { .. }) => Ok(()),
        other => other,
    }
}

/// Deleting the test instance first is what lets an Aurora cluster be deleted at all.
async fn delete_instance(client: &Client, id: &str) -> Result<()> {
    let r = client
        .delete_db_instance()
        .db_instance_identifier(id)
        .skip_final_snapshot(true)
        .delete_automated_backups(true)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| Error::from_sdk("DeleteDBInstance", e));
    absent_ok(r).map(|_| ())
}

async fn describe_instance(client: &Client, id: &str) -> Result<Option<aws_sdk_rds::types::DbInstance>> {
    let r = client
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .map_err(|e| Error::from_sdk("DescribeDBInstances", e));
    Ok(absent_ok(r)?.and_then(|out| out.db_instances().first().cloned()))
}

// The family is an implementation detail: callers name `RdsInstance` / `RdsCluster`.
#[allow(private_bounds)]
impl<F: Family> Rds<F> {
    fn to_snapshot(&self, s: &F::Snapshot) -> Snapshot {
        let raw = F::raw(s);
        // Owner and region come from the ARN, so snapshots shared with us report their real owner.
        let (account, region) = match crate::arn::Arn::parse(raw.arn) {
            Some(a) => (a.account.to_string(), a.region.to_string()),
            None => (self.account.clone(), self.region.clone()),
        };
        Snapshot {
            kind: F::KIND,
            automated: raw.snapshot_type == Some("automated") || raw.id.starts_with("rds:"),
            id: raw.id.to_string(),
            name: raw.id.to_string(),
            arn: raw.arn.to_string(),
            account,
            region,
            resource_id: raw.resource_id.to_string(),
            status: status(raw.status),
            encrypted: raw.encrypted.unwrap_or(false),
            kms_key_id: raw.kms_key_id.map(str::to_string),
            created_at: to_chrono(raw.created),
            engine: raw.engine.map(str::to_string),
            engine_version: raw.engine_version.map(str::to_string),
            tags: from_rds_tags(raw.tags),
        }
    }

    /// What an "already exists" answer refers to.
    async fn existing(&self, name: &str) -> Result<Snapshot> {
        self.describe(name).await?.ok_or_else(|| Error::NotFound { op: "Describe", what: self.snapshot_arn(name) })
    }

    async fn created(&self, r: Result<Option<F::Snapshot>>, name: &str) -> Result<Snapshot> {
        match r {
            Ok(Some(s)) => Ok(self.to_snapshot(&s)),
            Ok(None) => Err(Error::BadInput(format!("RDS returned no snapshot for {name}"))),
            Err(Error::AlreadyExists { .. }) => self.existing(name).await,
            Err(e) => Err(e),
        }
    }
}

#[allow(private_bounds)]
#[async_trait]
impl<F: Family> SnapshotStore for Rds<F> {
    fn kind(&self) -> ResourceKind {
        F::KIND
    }
    fn account(&self) -> &str {
        &self.account
    }
    fn region(&self) -> &str {
        &self.region
    }

    async fn list_resources(&self) -> Result<Vec<Resource>> {
        self.family.list_resources(&self.client).await
    }

    async fn create(&self, resource_id: &str, name: &str, tags: &Tags) -> Result<Snapshot> {
        let r = self.family.create(&self.client, resource_id, name, to_rds_tags(tags)).await;
        self.created(r, name).await
    }

    async fn describe(&self, snapshot: &str) -> Result<Option<Snapshot>> {
        Ok(self.family.describe(&self.client, snapshot).await?.map(|s| self.to_snapshot(&s)))
    }

    async fn list_managed(&self) -> Result<Vec<Snapshot>> {
        let all = self.family.list_manual(&self.client).await?;
        Ok(all.iter().map(|s| self.to_snapshot(s)).filter(|s| tags::is_managed(&s.tags)).collect())
    }

    async fn copy(&self, request: &CopyRequest<'_>) -> Result<Snapshot> {
        let r = self.family.copy(&self.client, request, to_rds_tags(request.tags)).await;
        self.created(r, request.target_id).await
    }

    async fn share(&self, snapshot: &Snapshot, accounts: &[String]) -> Result<()> {
        self.family.share(&self.client, &snapshot.id, accounts).await
    }

    async fn shared_with(&self, snapshot: &Snapshot) -> Result<Vec<String>> {
        self.family.restorable_by(&self.client, &snapshot.id).await
    }

    async fn tag(&self, snapshot: &Snapshot, tags: &Tags) -> Result<()> {
        self.client
            .add_tags_to_resource()
            .resource_name(&snapshot.arn)
            .set_tags(Some(to_rds_tags(tags)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::from_sdk("AddTagsToResource", e))
    }

    async fn delete(&self, snapshot: &Snapshot) -> Result<()> {
        absent_ok(self.family.delete(&self.client, &snapshot.id).await).map(|_| ())
    }

    async fn restore(&self, snapshot: &Snapshot, spec: &RestoreSpec) -> Result<()> {
        let smallest = self.smallest_restore_class(snapshot.engine.as_deref()).unwrap_or("db.t4g.micro");
        let class = spec.instance_class.as_deref().unwrap_or(smallest);
        exists_ok(self.family.restore(&self.client, snapshot, spec, class).await)
    }

    async fn restore_status(&self, restore_id: &str) -> Result<Option<Restored>> {
        self.family.restore_status(&self.client, restore_id).await
    }

    async fn delete_restore(&self, restore_id: &str) -> Result<()> {
        self.family.delete_restore(&self.client, restore_id).await
    }
}

fn restore_accounts<'a>(names_and_values: impl Iterator<Item = (Option<&'a str>, &'a [String])>) -> Vec<String> {
    names_and_values.filter(|(name, _)| *name == Some(RESTORE_ATTRIBUTE)).flat_map(|(_, v)| v.iter().cloned()).collect()
}

/// DB instance snapshots.
#[derive(Debug, Default)]
pub struct Instances;

#[async_trait]
impl Family for Instances {
    const KIND: ResourceKind = ResourceKind::DbInstance;
    type Snapshot = aws_sdk_rds::types::DbSnapshot;

    fn raw(s: &Self::Snapshot) -> Raw<'_> {
        Raw {
            id: s.db_snapshot_identifier().unwrap_or_default(),
            arn: s.db_snapshot_arn().unwrap_or_default(),
            resource_id: s.db_instance_identifier().unwrap_or_default(),
            status: s.status(),
            snapshot_type: s.snapshot_type(),
            encrypted: s.encrypted(),
            kms_key_id: s.kms_key_id(),
            created: s.snapshot_create_time(),
            engine: s.engine(),
            engine_version: s.engine_version(),
            tags: s.tag_list(),
        }
    }

    async fn list_resources(&self, client: &Client) -> Result<Vec<Resource>> {
        let dbs = client
            .describe_db_instances()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| Error::from_sdk("DescribeDBInstances", e))?;
        Ok(dbs
            .iter()
            // Aurora members are backed up through their cluster.
            .filter(|d| d.db_cluster_identifier().is_none())
            .map(|d| Resource {
                kind: Self::KIND,
                id: d.db_instance_identifier().unwrap_or_default().to_string(),
                arn: d.db_instance_arn().unwrap_or_default().to_string(),
                encrypted: d.storage_encrypted().unwrap_or(false),
                kms_key_id: d.kms_key_id().map(str::to_string),
                tags: from_rds_tags(d.tag_list()),
            })
            .collect())
    }

    async fn create(
        &self,
        client: &Client,
        resource_id: &str,
        name: &str,
        tags: Vec<Tag>,
    ) -> Result<Option<Self::Snapshot>> {
        let out = client
            .create_db_snapshot()
            .db_instance_identifier(resource_id)
            .db_snapshot_identifier(name)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| Error::from_sdk("CreateDBSnapshot", e))?;
        Ok(out.db_snapshot)
    }

    async fn describe(&self, client: &Client, snapshot: &str) -> Result<Option<Self::Snapshot>> {
        let r = client
            .describe_db_snapshots()
            .db_snapshot_identifier(snapshot)
            .include_shared(true)
            .send()
            .await
            .map_err(|e| Error::from_sdk("DescribeDBSnapshots", e));
        Ok(absent_ok(r)?.and_then(|out| out.db_snapshots.and_then(|v| v.into_iter().next())))
    }

    async fn list_manual(&self, client: &Client) -> Result<Vec<Self::Snapshot>> {
        client
            .describe_db_snapshots()
            .snapshot_type("manual")
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| Error::from_sdk("DescribeDBSnapshots", e))
    }

    async fn copy(&self, client: &Client, request: &CopyRequest<'_>, tags: Vec<Tag>) -> Result<Option<Self::Snapshot>> {
        let out = client
            .copy_db_snapshot()
            .source_db_snapshot_identifier(request.source)
            .target_db_snapshot_identifier(request.target_id)
            .set_kms_key_id(request.kms_key_id.map(str::to_string))
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| Error::from_sdk("CopyDBSnapshot", e))?;
        Ok(out.db_snapshot)
    }

    async fn share(&self, client: &Client, snapshot: &str, accounts: &[String]) -> Result<()> {
        client
            .modify_db_snapshot_attribute()
            .db_snapshot_identifier(snapshot)
            .attribute_name(RESTORE_ATTRIBUTE)
            .set_values_to_add(Some(accounts.to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::from_sdk("ModifyDBSnapshotAttribute", e))
    }

    async fn restorable_by(&self, client: &Client, snapshot: &str) -> Result<Vec<String>> {
        let out = client
            .describe_db_snapshot_attributes()
            .db_snapshot_identifier(snapshot)
            .send()
            .await
            .map_err(|e| Error::from_sdk("DescribeDBSnapshotAttributes", e))?;
        let attributes = out.db_snapshot_attributes_result().map(|r| r.db_snapshot_attributes()).unwrap_or_default();
        Ok(restore_accounts(
            attributes.iter().map(|a: &DbSnapshotAttribute| (a.attribute_name(), a.attribute_values())),
        ))
    }

    async fn delete(&self, client: &Client, snapshot: &str) -> Result<()> {
        client
            .delete_db_snapshot()
            .db_snapshot_identifier(snapshot)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::from_sdk("DeleteDBSnapshot", e))
    }

    async fn restore(&self, client: &Client, snapshot: &Snapshot, spec: &RestoreSpec, class: &str) -> Result<()> {
        client
            .restore_db_instance_from_db_snapshot()
            .db_instance_identifier(&spec.restore_id)
            .db_snapshot_identifier(&snapshot.id)
            .db_instance_class(class)
            .set_db_subnet_group_name(spec.subnet_group.clone())
            .set_vpc_security_group_ids(Some(spec.security_group_ids.clone()))
            .publicly_accessible(false)
            .set_tags(Some(to_rds_tags(&spec.tags)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::from_sdk("RestoreDBInstanceFromDBSnapshot", e))
    }

    async fn restore_status(&self, client: &Client, restore_id: &str) -> Result<Option<Restored>> {
        Ok(describe_instance(client, restore_id).await?.map(|d| Restored {
            id: restore_id.to_string(),
            status: status(d.db_instance_status()),
            encrypted: d.storage_encrypted().unwrap_or(false),
            kms_key_id: d.kms_key_id().map(str::to_string),
            engine: d.engine().map(str::to_string),
            engine_version: d.engine_version().map(str::to_string),
        }))
    }

    async fn delete_restore(&self, client: &Client, restore_id: &str) -> Result<()> {
        delete_instance(client, restore_id).await
    }
}

/// Aurora DB cluster snapshots.
#[derive(Debug, Default)]
pub struct Clusters;

impl Clusters {
    /// The engine a cluster snapshot that does not name one is restored as.
    const DEFAULT_ENGINE: &str = "aurora-postgresql";

    /// Aurora restores a cluster, then needs one instance in it to be usable; its id is
    /// derived from the cluster's and, like it, at most 63 characters.
    fn instance_id(restore_id: &str) -> String {
        crate::naming::db_identifier("snapferry-restore-instance", &[restore_id])
    }
}

#[async_trait]
impl Family for Clusters {
    const KIND: ResourceKind = ResourceKind::DbCluster;
    type Snapshot = aws_sdk_rds::types::DbClusterSnapshot;

    fn raw(s: &Self::Snapshot) -> Raw<'_> {
        Raw {
            id: s.db_cluster_snapshot_identifier().unwrap_or_default(),
            arn: s.db_cluster_snapshot_arn().unwrap_or_default(),
            resource_id: s.db_cluster_identifier().unwrap_or_default(),
            status: s.status(),
            snapshot_type: s.snapshot_type(),
            encrypted: s.storage_encrypted(),
            kms_key_id: s.kms_key_id(),
            created: s.snapshot_create_time(),
            engine: s.engine(),
            engine_version: s.engine_version(),
            tags: s.tag_list(),
        }
    }

    async fn list_resources(&self, client: &Client) -> Result<Vec<Resource>> {
        let clusters = client
            .describe_db_clusters()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| Error::from_sdk("DescribeDBClusters", e))?;
        Ok(clusters
            .iter()
            .map(|c| Resource {
                kind: Self::KIND,
                id: c.db_cluster_identifier().unwrap_or_default().to_string(),
                arn: c.db_cluster_arn().unwrap_or_default().to_string(),
                encrypted: c.storage_encrypted().unwrap_or(false),
                kms_key_id: c.kms_key_id().map(str::to_string),
                tags: from_rds_tags(c.tag_list()),
            })
            .collect())
    }

    async fn create(
        &self,
        client: &Client,
        resource_id: &str,
        name: &str,
        tags: Vec<Tag>,
    ) -> Result<Option<Self::Snapshot>> {
        let out = client
            .create_db_cluster_snapshot()
            .db_cluster_identifier(resource_id)
            .db_cluster_snapshot_identifier(name)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| Error::from_sdk("CreateDBClusterSnapshot", e))?;
        Ok(out.db_cluster_snapshot)
    }

    async fn describe(&self, client: &Client, snapshot: &str) -> Result<Option<Self::Snapshot>> {
        let r = client
            .describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier(snapshot)
            .include_shared(true)
            .send()
            .await
            .map_err(|e| Error::from_sdk("DescribeDBClusterSnapshots", e));
        Ok(absent_ok(r)?.and_then(|out| out.db_cluster_snapshots.and_then(|v| v.into_iter().next())))
    }

    async fn list_manual(&self, client: &Client) -> Result<Vec<Self::Snapshot>> {
        client
            .describe_db_cluster_snapshots()
            .snapshot_type("manual")
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| Error::from_sdk("DescribeDBClusterSnapshots", e))
    }

    async fn copy(&self, client: &Client, request: &CopyRequest<'_>, tags: Vec<Tag>) -> Result<Option<Self::Snapshot>> {
        let out = client
            .copy_db_cluster_snapshot()
            .source_db_cluster_snapshot_identifier(request.source)
            .target_db_cluster_snapshot_identifier(request.target_id)
            .set_kms_key_id(request.kms_key_id.map(str::to_string))
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| Error::from_sdk("CopyDBClusterSnapshot", e))?;
        Ok(out.db_cluster_snapshot)
    }

    async fn share(&self, client: &Client, snapshot: &str, accounts: &[String]) -> Result<()> {
        client
            .modify_db_cluster_snapshot_attribute()
            .db_cluster_snapshot_identifier(snapshot)
            .attribute_name(RESTORE_ATTRIBUTE)
            .set_values_to_add(Some(accounts.to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::from_sdk("ModifyDBClusterSnapshotAttribute", e))
    }

    async fn restorable_by(&self, client: &Client, snapshot: &str) -> Result<Vec<String>> {
        let out = client
            .describe_db_cluster_snapshot_attributes()
            .db_cluster_snapshot_identifier(snapshot)
            .send()
            .await
            .map_err(|e| Error::from_sdk("DescribeDBClusterSnapshotAttributes", e))?;
        let attributes =
            out.db_cluster_snapshot_attributes_result().map(|r| r.db_cluster_snapshot_attributes()).unwrap_or_default();
        Ok(restore_accounts(
            attributes.iter().map(|a: &DbClusterSnapshotAttribute| (a.attribute_name(), a.attribute_values())),
        ))
    }

    async fn delete(&self, client: &Client, snapshot: &str) -> Result<()> {
        client
            .delete_db_cluster_snapshot()
            .db_cluster_snapshot_identifier(snapshot)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::from_sdk("DeleteDBClusterSnapshot", e))
    }

    async fn restore(&self, client: &Client, snapshot: &Snapshot, spec: &RestoreSpec, class: &str) -> Result<()> {
        let engine = snapshot.engine.as_deref().unwrap_or(Self::DEFAULT_ENGINE);
        let r = client
            .restore_db_cluster_from_snapshot()
            .db_cluster_identifier(&spec.restore_id)
            .snapshot_identifier(&snapshot.id)
            .engine(engine)
            .set_engine_version(snapshot.engine_version.clone())
            .set_db_subnet_group_name(spec.subnet_group.clone())
            .set_vpc_security_group_ids(Some(spec.security_group_ids.clone()))
            .set_tags(Some(to_rds_tags(&spec.tags)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::from_sdk("RestoreDBClusterFromSnapshot", e));
        exists_ok(r)?;
        client
            .create_db_instance()
            .db_instance_identifier(Self::instance_id(&spec.restore_id))
            .db_cluster_identifier(&spec.restore_id)
            .engine(engine)
            .db_instance_class(class)
            .publicly_accessible(false)
            .set_tags(Some(to_rds_tags(&spec.tags)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::from_sdk("CreateDBInstance", e))
    }

    async fn restore_status(&self, client: &Client, restore_id: &str) -> Result<Option<Restored>> {
        let r = client
            .describe_db_clusters()
            .db_cluster_identifier(restore_id)
            .send()
            .await
            .map_err(|e| Error::from_sdk("DescribeDBClusters", e));
        let Some(cluster) = absent_ok(r)?.and_then(|out| out.db_clusters().first().cloned()) else {
            return Ok(None);
        };
        let mut state = status(cluster.status());
        // The cluster is only usable once its instance is: report the slower of the two.
        if state == Status::Available {
            state = match describe_instance(client, &Self::instance_id(restore_id)).await? {
                Some(instance) => status(instance.db_instance_status()),
                None => Status::Creating,
            };
        }
        Ok(Some(Restored {
            id: restore_id.to_string(),
            status: state,
            encrypted: cluster.storage_encrypted().unwrap_or(false),
            kms_key_id: cluster.kms_key_id().map(str::to_string),
            engine: cluster.engine().map(str::to_string),
            engine_version: cluster.engine_version().map(str::to_string),
        }))
    }

    async fn delete_restore(&self, client: &Client, restore_id: &str) -> Result<()> {
        delete_instance(client, &Self::instance_id(restore_id)).await?;
        let r = client
            .delete_db_cluster()
            .db_cluster_identifier(restore_id)
            .skip_final_snapshot(true)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::from_sdk("DeleteDBCluster", e));
        absent_ok(r).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aurora_test_instance_ids_stay_valid_for_the_longest_restore_ids() {
        let long = crate::naming::restore_id(&"snapferry-copy-".repeat(20));
        assert_eq!(long.len(), crate::naming::MAX_DB_ID_LEN);
        let instance = Clusters::instance_id(&long);
        assert!(crate::naming::is_valid_rds_identifier(&instance, crate::naming::MAX_DB_ID_LEN), "{instance}");
        assert_ne!(instance, long);
    }

    #[test]
    fn rds_statuses_map() {
        assert_eq!(status(Some("creating")), Status::Creating);
        assert_eq!(status(Some("available")), Status::Available);
        assert!(matches!(status(Some("failed")), Status::Failed(_)));
        assert_eq!(status(Some("deleting")), Status::Other("deleting".into()));
        assert_eq!(status(None), Status::Other("unknown".into()));
    }
}
