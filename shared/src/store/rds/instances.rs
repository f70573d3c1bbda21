//! The DB instance snapshot family of the RDS API.

use super::{Raw, delete_instance, describe_instance, from_rds_tags, status, to_rds_tags};
use crate::ResourceKind;
use crate::error::{Error, Result};
use crate::store::{CopyRequest, Database, Endpoint, Resource, RestoreSpec, Restored, Snapshot, to_chrono};
use aws_sdk_rds::Client;
use aws_sdk_rds::types::Tag;

/// DB instance snapshots.
#[derive(Debug, Default)]
pub struct Instances;

family! {
    Instances: ResourceKind::DbInstance, aws_sdk_rds::types::DbSnapshot, quota "ManualSnapshots";
    create create_db_snapshot(db_instance_identifier, db_snapshot_identifier) -> db_snapshot, "CreateDBSnapshot";
    describe describe_db_snapshots(db_snapshot_identifier) -> db_snapshots, "DescribeDBSnapshots";
    copy copy_db_snapshot(source_db_snapshot_identifier, target_db_snapshot_identifier, set_option_group_name, set_copy_option_group) -> db_snapshot, "CopyDBSnapshot";
    share modify_db_snapshot_attribute(db_snapshot_identifier), "ModifyDBSnapshotAttribute";
    attributes describe_db_snapshot_attributes(db_snapshot_identifier)
        -> db_snapshot_attributes_result.db_snapshot_attributes, "DescribeDBSnapshotAttributes";
    delete delete_db_snapshot(db_snapshot_identifier), "DeleteDBSnapshot";
    items {
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
                percent: s.percent_progress(),
                option_group: s.option_group_name(),
                engine: s.engine(),
                engine_version: s.engine_version(),
                tags: s.tag_list(),
            }
        }

        async fn list_resources(&self, client: &Client) -> Result<Vec<Resource>> {
            let pages = client.describe_db_instances().into_paginator().send();
            let dbs = crate::store::paced(&super::region_of(client), pages, |p| p.db_instances.unwrap_or_default())
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
                    members: Vec::new(),
                    created_at: to_chrono(d.instance_create_time()),
                })
                .collect())
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
                size_gib: None,
                endpoint: endpoint(&d),
            }))
        }

        async fn database(&self, client: &Client, resource_id: &str) -> Result<Option<Database>> {
            Ok(describe_instance(client, resource_id).await?.map(|d| Database {
                id: resource_id.to_string(),
                engine: d.engine().map(str::to_string),
                endpoint: endpoint(&d),
                master_secret_arn: d.master_user_secret().and_then(|s| s.secret_arn()).map(str::to_string),
            }))
        }

        async fn set_master_password(&self, client: &Client, restore_id: &str, password: &str) -> Result<()> {
            client
                .modify_db_instance()
                .db_instance_identifier(restore_id)
                .master_user_password(password)
                .apply_immediately(true)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| Error::from_sdk("ModifyDBInstance", e))
        }

        async fn delete_restore(&self, client: &Client, restore_id: &str) -> Result<()> {
            delete_instance(client, restore_id).await
        }
    }
}

/// Where a DB instance answers, and its master user.
fn endpoint(d: &aws_sdk_rds::types::DbInstance) -> Option<Endpoint> {
    let e = d.endpoint()?;
    Some(Endpoint {
        host: e.address()?.to_string(),
        port: u16::try_from(e.port()?).ok()?,
        user: d.master_username()?.to_string(),
        database: d.db_name().map(str::to_string),
    })
}
