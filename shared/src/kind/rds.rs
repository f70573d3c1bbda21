//! RDS adapters: DB instance snapshots and Aurora DB cluster snapshots.
//!
//! The two APIs mirror each other with different type names; each adapter maps its own
//! types onto [`Snapshot`] and leaves every decision to the services.

use super::{CopyRequest, Resource, RestoreSpec, Restored, Snapshot, SnapshotStore, Status};
use crate::ResourceKind;
use crate::clients::Clients;
use crate::error::{Error, Result};
use crate::tags::{self, Tags};
use async_trait::async_trait;
use aws_sdk_rds::types::Tag;

/// Only accounts are ever added to the `restore` attribute: never `all`.
const RESTORE_ATTRIBUTE: &str = "restore";

pub struct RdsInstance {
    client: aws_sdk_rds::Client,
    account: String,
    region: String,
}

pub struct RdsCluster {
    client: aws_sdk_rds::Client,
    account: String,
    region: String,
}

impl RdsInstance {
    pub fn new(clients: &Clients) -> Self {
        Self::with_client(clients.rds.clone(), &clients.account, &clients.region)
    }

    pub fn with_client(client: aws_sdk_rds::Client, account: &str, region: &str) -> Self {
        RdsInstance { client, account: account.to_string(), region: region.to_string() }
    }

    fn arn(&self, id: &str) -> String {
        format!("arn:aws:rds:{}:{}:snapshot:{id}", self.region, self.account)
    }
}

impl RdsCluster {
    pub fn new(clients: &Clients) -> Self {
        Self::with_client(clients.rds.clone(), &clients.account, &clients.region)
    }

    pub fn with_client(client: aws_sdk_rds::Client, account: &str, region: &str) -> Self {
        RdsCluster { client, account: account.to_string(), region: region.to_string() }
    }

    fn arn(&self, id: &str) -> String {
        format!("arn:aws:rds:{}:{}:cluster-snapshot:{id}", self.region, self.account)
    }
}

pub(crate) fn to_rds_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

fn from_rds_tags(tags: &[Tag]) -> Tags {
    tags.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect()
}

pub(crate) fn to_chrono(t: Option<&aws_smithy_types::DateTime>) -> Option<chrono::DateTime<chrono::Utc>> {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

/// Owner and region come from the ARN, so snapshots shared with us report their real owner.
fn located(arn: &str, fallback_account: &str, fallback_region: &str) -> (String, String) {
    match super::Arn::parse(arn) {
        Some(a) => (a.account.to_string(), a.region.to_string()),
        None => (fallback_account.to_string(), fallback_region.to_string()),
    }
}

fn instance_snapshot(s: &aws_sdk_rds::types::DbSnapshot, account: &str, region: &str) -> Snapshot {
    let id = s.db_snapshot_identifier().unwrap_or_default().to_string();
    let arn = s.db_snapshot_arn().unwrap_or_default().to_string();
    let (account, region) = located(&arn, account, region);
    Snapshot {
        kind: ResourceKind::DbInstance,
        automated: s.snapshot_type() == Some("automated") || id.starts_with("rds:"),
        id,
        arn,
        account,
        region,
        resource_id: s.db_instance_identifier().unwrap_or_default().to_string(),
        status: Status::from_aws(s.status().unwrap_or("unknown")),
        encrypted: s.encrypted().unwrap_or(false),
        kms_key_id: s.kms_key_id().map(str::to_string),
        created_at: to_chrono(s.snapshot_create_time()),
        engine: s.engine().map(str::to_string),
        engine_version: s.engine_version().map(str::to_string),
        tags: from_rds_tags(s.tag_list()),
    }
}

fn cluster_snapshot(s: &aws_sdk_rds::types::DbClusterSnapshot, account: &str, region: &str) -> Snapshot {
    let id = s.db_cluster_snapshot_identifier().unwrap_or_default().to_string();
    let arn = s.db_cluster_snapshot_arn().unwrap_or_default().to_string();
    let (account, region) = located(&arn, account, region);
    Snapshot {
        kind: ResourceKind::DbCluster,
        automated: s.snapshot_type() == Some("automated") || id.starts_with("rds:"),
        id,
        arn,
        account,
        region,
        resource_id: s.db_cluster_identifier().unwrap_or_default().to_string(),
        status: Status::from_aws(s.status().unwrap_or("unknown")),
        encrypted: s.storage_encrypted().unwrap_or(false),
        kms_key_id: s.kms_key_id().map(str::to_string),
        created_at: to_chrono(s.snapshot_create_time()),
        engine: s.engine().map(str::to_string),
        engine_version: s.engine_version().map(str::to_string),
        tags: from_rds_tags(s.tag_list()),
    }
}

/// `Ok(None)` for not-found, so "describe" and "delete" can treat absence as an answer.
fn absent_ok<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn exists_ok(r: Result<()>) -> Result<()> {
    match r {
        Err(Error::AlreadyExists { .. }) => Ok(()),
        other => other,
    }
}

/// Deleting the test instance first is what lets an Aurora cluster be deleted at all.
async fn delete_instance(client: &aws_sdk_rds::Client, id: &str) -> Result<()> {
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

#[async_trait]
impl SnapshotStore for RdsInstance {
    fn kind(&self) -> ResourceKind {
        ResourceKind::DbInstance
    }
    fn account(&self) -> &str {
        &self.account
    }
    fn region(&self) -> &str {
        &self.region
    }

    async fn list_resources(&self) -> Result<Vec<Resource>> {
        let dbs = self
            .client
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
                kind: ResourceKind::DbInstance,
                id: d.db_instance_identifier().unwrap_or_default().to_string(),
                arn: d.db_instance_arn().unwrap_or_default().to_string(),
                encrypted: d.storage_encrypted().unwrap_or(false),
                kms_key_id: d.kms_key_id().map(str::to_string),
                tags: from_rds_tags(d.tag_list()),
            })
            .collect())
    }

    async fn create(&self, resource_id: &str, snapshot_id: &str, tags: &Tags) -> Result<Snapshot> {
        let created = self
            .client
            .create_db_snapshot()
            .db_instance_identifier(resource_id)
            .db_snapshot_identifier(snapshot_id)
            .set_tags(Some(to_rds_tags(tags)))
            .send()
            .await
            .map_err(|e| Error::from_sdk("CreateDBSnapshot", e));
        match created {
            Ok(out) => out
                .db_snapshot()
                .map(|s| instance_snapshot(s, &self.account, &self.region))
                .ok_or_else(|| Error::BadInput("CreateDBSnapshot returned no snapshot".into())),
            Err(Error::AlreadyExists { .. }) => self.expect(snapshot_id).await,
            Err(e) => Err(e),
        }
    }

    async fn describe(&self, snapshot: &str) -> Result<Option<Snapshot>> {
        let r = self
            .client
            .describe_db_snapshots()
            .db_snapshot_identifier(snapshot)
            .include_shared(true)
            .send()
            .await
            .map_err(|e| Error::from_sdk("DescribeDBSnapshots", e));
        Ok(absent_ok(r)?
            .and_then(|out| out.db_snapshots().first().map(|s| instance_snapshot(s, &self.account, &self.region))))
    }

    async fn list_managed(&self) -> Result<Vec<Snapshot>> {
        let all = self
            .client
            .describe_db_snapshots()
            .snapshot_type("manual")
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| Error::from_sdk("DescribeDBSnapshots", e))?;
        Ok(all
            .iter()
            .map(|s| instance_snapshot(s, &self.account, &self.region))
            .filter(|s| tags::is_managed(&s.tags))
            .collect())
    }

    async fn copy(&self, request: &CopyRequest<'_>) -> Result<Snapshot> {
        let copied = self
            .client
            .copy_db_snapshot()
            .source_db_snapshot_identifier(request.source)
            .target_db_snapshot_identifier(request.target_id)
            .set_kms_key_id(request.kms_key_id.map(str::to_string))
            .set_tags(Some(to_rds_tags(request.tags)))
            .send()
            .await
            .map_err(|e| Error::from_sdk("CopyDBSnapshot", e));
        match copied {
            Ok(out) => out
                .db_snapshot()
                .map(|s| instance_snapshot(s, &self.account, &self.region))
                .ok_or_else(|| Error::BadInput("CopyDBSnapshot returned no snapshot".into())),
            Err(Error::AlreadyExists { .. }) => self.expect(request.target_id).await,
            Err(e) => Err(e),
        }
    }

    async fn share(&self, snapshot: &Snapshot, accounts: &[String]) -> Result<()> {
        self.client
            .modify_db_snapshot_attribute()
            .db_snapshot_identifier(&snapshot.id)
            .attribute_name(RESTORE_ATTRIBUTE)
            .set_values_to_add(Some(accounts.to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::from_sdk("ModifyDBSnapshotAttribute", e))
    }

    async fn shared_with(&self, snapshot: &Snapshot) -> Result<Vec<String>> {
        let out = self
            .client
            .describe_db_snapshot_attributes()
            .db_snapshot_identifier(&snapshot.id)
            .send()
            .await
            .map_err(|e| Error::from_sdk("DescribeDBSnapshotAttributes", e))?;
        Ok(out
            .db_snapshot_attributes_result()
            .map(|r| r.db_snapshot_attributes())
            .unwrap_or_default()
            .iter()
            .filter(|a| a.attribute_name() == Some(RESTORE_ATTRIBUTE))
            .flat_map(|a| a.attribute_values().iter().cloned())
            .collect())
    }

    async fn tag(&self, snapshot: &Snapshot, tags: &Tags) -> Result<()> {
        add_tags(&self.client, &snapshot.arn, tags).await
    }

    async fn delete(&self, snapshot: &Snapshot) -> Result<()> {
        let r = self
            .client
            .delete_db_snapshot()
            .db_snapshot_identifier(&snapshot.id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::from_sdk("DeleteDBSnapshot", e));
        absent_ok(r).map(|_| ())
    }

    async fn restore(&self, snapshot: &Snapshot, spec: &RestoreSpec) -> Result<()> {
        let r = self
            .client
            .restore_db_instance_from_db_snapshot()
            .db_instance_identifier(&spec.restore_id)
            .db_snapshot_identifier(&snapshot.id)
            .db_instance_class(&spec.instance_class)
            .set_db_subnet_group_name(spec.subnet_group.clone())
            .set_vpc_security_group_ids(Some(spec.security_group_ids.clone()))
            .publicly_accessible(false)
            .set_tags(Some(to_rds_tags(&spec.tags)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::from_sdk("RestoreDBInstanceFromDBSnapshot", e));
        exists_ok(r)
    }

    async fn restore_status(&self, restore_id: &str) -> Result<Option<Restored>> {
        let r = self
            .client
            .describe_db_instances()
            .db_instance_identifier(restore_id)
            .send()
            .await
            .map_err(|e| Error::from_sdk("DescribeDBInstances", e));
        Ok(absent_ok(r)?.and_then(|out| {
            out.db_instances().first().map(|d| Restored {
                id: restore_id.to_string(),
                status: Status::from_aws(d.db_instance_status().unwrap_or("unknown")),
                encrypted: d.storage_encrypted().unwrap_or(false),
                kms_key_id: d.kms_key_id().map(str::to_string),
                engine: d.engine().map(str::to_string),
                engine_version: d.engine_version().map(str::to_string),
            })
        }))
    }

    async fn delete_restore(&self, restore_id: &str) -> Result<()> {
        delete_instance(&self.client, restore_id).await
    }
}

impl RdsInstance {
    async fn expect(&self, id: &str) -> Result<Snapshot> {
        self.describe(id).await?.ok_or_else(|| Error::NotFound { op: "DescribeDBSnapshots", what: self.arn(id) })
    }
}

impl RdsCluster {
    async fn expect(&self, id: &str) -> Result<Snapshot> {
        self.describe(id).await?.ok_or_else(|| Error::NotFound { op: "DescribeDBClusterSnapshots", what: self.arn(id) })
    }

    /// Aurora restores a cluster, then needs one instance in it to be usable; its id is
    /// derived from the cluster's and, like it, at most 63 characters.
    fn instance_id(restore_id: &str) -> String {
        crate::naming::db_identifier("snapferry-restore-instance", &[restore_id])
    }
}

async fn add_tags(client: &aws_sdk_rds::Client, arn: &str, tags: &Tags) -> Result<()> {
    client
        .add_tags_to_resource()
        .resource_name(arn)
        .set_tags(Some(to_rds_tags(tags)))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| Error::from_sdk("AddTagsToResource", e))
}

#[async_trait]
impl SnapshotStore for RdsCluster {
    fn kind(&self) -> ResourceKind {
        ResourceKind::DbCluster
    }
    fn account(&self) -> &str {
        &self.account
    }
    fn region(&self) -> &str {
        &self.region
    }

    async fn list_resources(&self) -> Result<Vec<Resource>> {
        let clusters = self
            .client
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
                kind: ResourceKind::DbCluster,
                id: c.db_cluster_identifier().unwrap_or_default().to_string(),
                arn: c.db_cluster_arn().unwrap_or_default().to_string(),
                encrypted: c.storage_encrypted().unwrap_or(false),
                kms_key_id: c.kms_key_id().map(str::to_string),
                tags: from_rds_tags(c.tag_list()),
            })
            .collect())
    }

    async fn create(&self, resource_id: &str, snapshot_id: &str, tags: &Tags) -> Result<Snapshot> {
        let created = self
            .client
            .create_db_cluster_snapshot()
            .db_cluster_identifier(resource_id)
            .db_cluster_snapshot_identifier(snapshot_id)
            .set_tags(Some(to_rds_tags(tags)))
            .send()
            .await
            .map_err(|e| Error::from_sdk("CreateDBClusterSnapshot", e));
        match created {
            Ok(out) => out
                .db_cluster_snapshot()
                .map(|s| cluster_snapshot(s, &self.account, &self.region))
                .ok_or_else(|| Error::BadInput("CreateDBClusterSnapshot returned no snapshot".into())),
            Err(Error::AlreadyExists { .. }) => self.expect(snapshot_id).await,
            Err(e) => Err(e),
        }
    }

    async fn describe(&self, snapshot: &str) -> Result<Option<Snapshot>> {
        let r = self
            .client
            .describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier(snapshot)
            .include_shared(true)
            .send()
            .await
            .map_err(|e| Error::from_sdk("DescribeDBClusterSnapshots", e));
        Ok(absent_ok(r)?.and_then(|out| {
            out.db_cluster_snapshots().first().map(|s| cluster_snapshot(s, &self.account, &self.region))
        }))
    }

    async fn list_managed(&self) -> Result<Vec<Snapshot>> {
        let all = self
            .client
            .describe_db_cluster_snapshots()
            .snapshot_type("manual")
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| Error::from_sdk("DescribeDBClusterSnapshots", e))?;
        Ok(all
            .iter()
            .map(|s| cluster_snapshot(s, &self.account, &self.region))
            .filter(|s| tags::is_managed(&s.tags))
            .collect())
    }

    async fn copy(&self, request: &CopyRequest<'_>) -> Result<Snapshot> {
        let copied = self
            .client
            .copy_db_cluster_snapshot()
            .source_db_cluster_snapshot_identifier(request.source)
            .target_db_cluster_snapshot_identifier(request.target_id)
            .set_kms_key_id(request.kms_key_id.map(str::to_string))
            .set_tags(Some(to_rds_tags(request.tags)))
            .send()
            .await
            .map_err(|e| Error::from_sdk("CopyDBClusterSnapshot", e));
        match copied {
            Ok(out) => out
                .db_cluster_snapshot()
                .map(|s| cluster_snapshot(s, &self.account, &self.region))
                .ok_or_else(|| Error::BadInput("CopyDBClusterSnapshot returned no snapshot".into())),
            Err(Error::AlreadyExists { .. }) => self.expect(request.target_id).await,
            Err(e) => Err(e),
        }
    }

    async fn share(&self, snapshot: &Snapshot, accounts: &[String]) -> Result<()> {
        self.client
            .modify_db_cluster_snapshot_attribute()
            .db_cluster_snapshot_identifier(&snapshot.id)
            .attribute_name(RESTORE_ATTRIBUTE)
            .set_values_to_add(Some(accounts.to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::from_sdk("ModifyDBClusterSnapshotAttribute", e))
    }

    async fn shared_with(&self, snapshot: &Snapshot) -> Result<Vec<String>> {
        let out = self
            .client
            .describe_db_cluster_snapshot_attributes()
            .db_cluster_snapshot_identifier(&snapshot.id)
            .send()
            .await
            .map_err(|e| Error::from_sdk("DescribeDBClusterSnapshotAttributes", e))?;
        Ok(out
            .db_cluster_snapshot_attributes_result()
            .map(|r| r.db_cluster_snapshot_attributes())
            .unwrap_or_default()
            .iter()
            .filter(|a| a.attribute_name() == Some(RESTORE_ATTRIBUTE))
            .flat_map(|a| a.attribute_values().iter().cloned())
            .collect())
    }

    async fn tag(&self, snapshot: &Snapshot, tags: &Tags) -> Result<()> {
        add_tags(&self.client, &snapshot.arn, tags).await
    }

    async fn delete(&self, snapshot: &Snapshot) -> Result<()> {
        let r = self
            .client
            .delete_db_cluster_snapshot()
            .db_cluster_snapshot_identifier(&snapshot.id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::from_sdk("DeleteDBClusterSnapshot", e));
        absent_ok(r).map(|_| ())
    }

    async fn restore(&self, snapshot: &Snapshot, spec: &RestoreSpec) -> Result<()> {
        let engine = snapshot.engine.clone().unwrap_or_else(|| "aurora-postgresql".into());
        let r = self
            .client
            .restore_db_cluster_from_snapshot()
            .db_cluster_identifier(&spec.restore_id)
            .snapshot_identifier(&snapshot.id)
            .engine(&engine)
            .set_engine_version(snapshot.engine_version.clone())
            .set_db_subnet_group_name(spec.subnet_group.clone())
            .set_vpc_security_group_ids(Some(spec.security_group_ids.clone()))
            .set_tags(Some(to_rds_tags(&spec.tags)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::from_sdk("RestoreDBClusterFromSnapshot", e));
        exists_ok(r)?;
        let r = self
            .client
            .create_db_instance()
            .db_instance_identifier(Self::instance_id(&spec.restore_id))
            .db_cluster_identifier(&spec.restore_id)
            .engine(&engine)
            .db_instance_class(&spec.instance_class)
            .publicly_accessible(false)
            .set_tags(Some(to_rds_tags(&spec.tags)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::from_sdk("CreateDBInstance", e));
        exists_ok(r)
    }

    async fn restore_status(&self, restore_id: &str) -> Result<Option<Restored>> {
        let r = self
            .client
            .describe_db_clusters()
            .db_cluster_identifier(restore_id)
            .send()
            .await
            .map_err(|e| Error::from_sdk("DescribeDBClusters", e));
        let Some(cluster) = absent_ok(r)?.and_then(|out| out.db_clusters().first().cloned()) else {
            return Ok(None);
        };
        let mut status = Status::from_aws(cluster.status().unwrap_or("unknown"));
        // The cluster is only usable once its instance is: report the slower of the two.
        if status == Status::Available {
            let r = self
                .client
                .describe_db_instances()
                .db_instance_identifier(Self::instance_id(restore_id))
                .send()
                .await
                .map_err(|e| Error::from_sdk("DescribeDBInstances", e));
            status = match absent_ok(r)?.and_then(|out| out.db_instances().first().cloned()) {
                Some(instance) => Status::from_aws(instance.db_instance_status().unwrap_or("unknown")),
                None => Status::Creating,
            };
        }
        Ok(Some(Restored {
            id: restore_id.to_string(),
            status,
            encrypted: cluster.storage_encrypted().unwrap_or(false),
            kms_key_id: cluster.kms_key_id().map(str::to_string),
            engine: cluster.engine().map(str::to_string),
            engine_version: cluster.engine_version().map(str::to_string),
        }))
    }

    async fn delete_restore(&self, restore_id: &str) -> Result<()> {
        delete_instance(&self.client, &Self::instance_id(restore_id)).await?;
        let r = self
            .client
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
        let instance = RdsCluster::instance_id(&long);
        assert!(crate::naming::is_valid_rds_identifier(&instance, crate::naming::MAX_DB_ID_LEN), "{instance}");
        assert_ne!(instance, long);
    }
}
