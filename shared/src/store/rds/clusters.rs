//! The Aurora DB cluster snapshot family of the RDS API.

use super::{Raw, delete_instance, describe_instance, exists_ok, from_rds_tags, status, to_rds_tags};
use crate::ResourceKind;
use crate::error::{Error, Result};
use crate::store::{
    CopyRequest, Database, Endpoint, Resource, RestoreSpec, Restored, Snapshot, Status, absent_ok, to_chrono,
};
use aws_sdk_rds::Client;
use aws_sdk_rds::types::Tag;

/// Aurora DB cluster snapshots.
#[derive(Debug, Default)]
pub struct Clusters;

impl Clusters {
    /// Aurora restores a cluster, then needs one instance in it to be usable; its id is
    /// derived from the cluster's and, like it, at most 63 characters.
    pub(super) fn instance_id(restore_id: &str) -> String {
        crate::naming::db_identifier("snapferry-restore-instance", &[restore_id])
    }
}

family! {
    Clusters: ResourceKind::DbCluster, aws_sdk_rds::types::DbClusterSnapshot, quota "ManualClusterSnapshots";
    create create_db_cluster_snapshot(db_cluster_identifier, db_cluster_snapshot_identifier)
        -> db_cluster_snapshot, "CreateDBClusterSnapshot";
    describe describe_db_cluster_snapshots(db_cluster_snapshot_identifier) -> db_cluster_snapshots, "DescribeDBClusterSnapshots";
    copy copy_db_cluster_snapshot(source_db_cluster_snapshot_identifier, target_db_cluster_snapshot_identifier)
        -> db_cluster_snapshot, "CopyDBClusterSnapshot";
    share modify_db_cluster_snapshot_attribute(db_cluster_snapshot_identifier), "ModifyDBClusterSnapshotAttribute";
    attributes describe_db_cluster_snapshot_attributes(db_cluster_snapshot_identifier)
        -> db_cluster_snapshot_attributes_result.db_cluster_snapshot_attributes, "DescribeDBClusterSnapshotAttributes";
    delete delete_db_cluster_snapshot(db_cluster_snapshot_identifier), "DeleteDBClusterSnapshot";
    items {
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
                percent: s.percent_progress(),
                option_group: None,
                engine: s.engine(),
                engine_version: s.engine_version(),
                tags: s.tag_list(),
            }
        }

        async fn list_resources(&self, client: &Client) -> Result<Vec<Resource>> {
            // DescribeDBClusters lists DocumentDB, Neptune and Multi-AZ DB clusters too; the
            // kind's engines, as AWS's `engine` filter, keep them out.
            let engines = crate::kinds::of(Self::KIND).engines.unwrap_or_default();
            let filter = aws_sdk_rds::types::Filter::builder()
                .name("engine")
                .set_values(Some(engines.iter().map(|e| e.to_string()).collect()))
                .build();
            let pages = client.describe_db_clusters().filters(filter).into_paginator().send();
            let clusters = crate::store::paced(&super::region_of(client), pages, |p| p.db_clusters.unwrap_or_default())
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
                    members: Vec::new(),
                    created_at: to_chrono(c.cluster_create_time()),
                })
                .collect())
        }

        async fn restore(&self, client: &Client, snapshot: &Snapshot, spec: &RestoreSpec, class: &str) -> Result<()> {
            // A snapshot that names no engine is restored as the kind's default one.
            let default = crate::kinds::of(Self::KIND).default_engine.map(|(engine, _)| engine);
            let engine = snapshot.engine.as_deref().or(default);
            let r = client
                .restore_db_cluster_from_snapshot()
                .db_cluster_identifier(&spec.restore_id)
                .snapshot_identifier(&snapshot.id)
                .set_engine(engine.map(str::to_string))
                .set_engine_version(snapshot.engine_version.clone())
                .set_db_subnet_group_name(spec.subnet_group.clone())
                .set_vpc_security_group_ids(Some(spec.security_group_ids.clone()))
                .set_tags(Some(to_rds_tags(&spec.tags)))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| Error::from_sdk("RestoreDBClusterFromSnapshot", e));
            // The cluster may be there from an attempt that stopped before its instance: the
            // instance, made last, says who started the restore.
            exists_ok(r)?;
            client
                .create_db_instance()
                .db_instance_identifier(Self::instance_id(&spec.restore_id))
                .db_cluster_identifier(&spec.restore_id)
                .set_engine(engine.map(str::to_string))
                .db_instance_class(class)
                .publicly_accessible(false)
                .set_tags(Some(to_rds_tags(&spec.tags)))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| Error::from_sdk("CreateDBInstance", e))
        }

        async fn restore_status(&self, client: &Client, restore_id: &str) -> Result<Option<Restored>> {
            let Some(cluster) = describe_cluster(client, restore_id).await? else {
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
                size_gib: None,
                // The writer endpoint: the test cluster's one instance.
                endpoint: endpoint(&cluster),
            }))
        }

        async fn database(&self, client: &Client, resource_id: &str) -> Result<Option<Database>> {
            Ok(describe_cluster(client, resource_id).await?.map(|c| Database {
                id: resource_id.to_string(),
                engine: c.engine().map(str::to_string),
                endpoint: endpoint(&c),
                master_secret_arn: c.master_user_secret().and_then(|s| s.secret_arn()).map(str::to_string),
            }))
        }

        async fn set_master_password(&self, client: &Client, restore_id: &str, password: &str) -> Result<()> {
            client
                .modify_db_cluster()
                .db_cluster_identifier(restore_id)
                .master_user_password(password)
                .apply_immediately(true)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| Error::from_sdk("ModifyDBCluster", e))
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
}

async fn describe_cluster(client: &Client, id: &str) -> Result<Option<aws_sdk_rds::types::DbCluster>> {
    let r = client
        .describe_db_clusters()
        .db_cluster_identifier(id)
        .send()
        .await
        .map_err(|e| Error::from_sdk("DescribeDBClusters", e));
    Ok(absent_ok(r)?.and_then(|out| out.db_clusters().first().cloned()))
}

/// A cluster's writer endpoint, and its master user.
fn endpoint(cluster: &aws_sdk_rds::types::DbCluster) -> Option<Endpoint> {
    Some(Endpoint {
        host: cluster.endpoint()?.to_string(),
        port: u16::try_from(cluster.port()?).ok()?,
        user: cluster.master_username()?.to_string(),
        database: cluster.database_name().map(str::to_string),
    })
}
