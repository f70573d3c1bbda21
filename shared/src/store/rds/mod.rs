//! RDS adapters: DB instance snapshots and Aurora DB cluster snapshots, one implementation.
//!
//! The two APIs mirror each other with different type names. [`Family`] is the thin part
//! that differs (which SDK call, which fields); [`Rds`] holds everything else once: "already
//! exists" and "not found" handling, the mapping onto [`Snapshot`], the `restore` attribute.

use super::{
    CopyRequest, Database, Resource, RestoreSpec, Restored, Snapshot, SnapshotStore, Status, absent_ok, to_chrono,
};
use crate::ResourceKind;
use crate::error::{Error, Result, Retry};
use crate::tags::{self, Tags};
use async_trait::async_trait;
use aws_sdk_rds::Client;
use aws_sdk_rds::types::Tag;
use tracing::warn;

/// Implements [`Family`] for one RDS snapshot family: the calls whose only difference between
/// the families is the names of the SDK's operations, fields and types are written once
/// here; the family's own items (`raw`, listing its databases, restoring) follow as `items`.
macro_rules! family {
    (
        $family:ident: $kind:expr, $snapshot:ty, quota $quota:literal;
        create $create:ident($create_resource:ident, $create_name:ident) -> $created:ident, $create_op:literal;
        describe $describe:ident($describe_name:ident) -> $described:ident, $describe_op:literal;
        copy $copy:ident($copy_source:ident, $copy_target:ident $(, $copy_option_group:ident, $copy_the_option_group:ident)?) -> $copied:ident, $copy_op:literal;
        share $modify:ident($modify_name:ident), $modify_op:literal;
        attributes $attributes:ident($attributes_name:ident) -> $result:ident.$list:ident, $attributes_op:literal;
        delete $delete:ident($delete_name:ident), $delete_op:literal;
        items { $($items:tt)* }
    ) => {
        #[async_trait::async_trait]
        impl $crate::store::rds::Family for $family {
            const KIND: $crate::ResourceKind = $kind;
            const QUOTA: &'static str = $quota;
            type Snapshot = $snapshot;

            async fn create(&self, client: &Client, resource_id: &str, name: &str, tags: Vec<Tag>) -> Result<Option<$snapshot>> {
                let out = client
                    .$create()
                    .$create_resource(resource_id)
                    .$create_name(name)
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .map_err(|e| Error::from_sdk($create_op, e))?;
                Ok(out.$created)
            }

            async fn describe(&self, client: &Client, snapshot: &str) -> Result<Option<$snapshot>> {
                let r = client
                    .$describe()
                    .$describe_name(snapshot)
                    .include_shared(true)
                    .send()
                    .await
                    .map_err(|e| Error::from_sdk($describe_op, e));
                Ok($crate::store::absent_ok(r)?.and_then(|out| out.$described.and_then(|v| v.into_iter().next())))
            }

            async fn list(&self, client: &Client, snapshot_type: Option<&str>) -> Result<Vec<$snapshot>> {
                let pages = client.$describe().set_snapshot_type(snapshot_type.map(str::to_string)).into_paginator().send();
                $crate::store::paced(&$crate::store::rds::region_of(client), pages, |page| page.$described.unwrap_or_default())
                    .await
                    .map_err(|e| Error::from_sdk($describe_op, e))
            }

            async fn list_of(&self, client: &Client, resource_id: &str) -> Result<Vec<$snapshot>> {
                let pages = client.$describe().$create_resource(resource_id).snapshot_type("manual").into_paginator().send();
                $crate::store::paced(&$crate::store::rds::region_of(client), pages, |page| page.$described.unwrap_or_default())
                    .await
                    .map_err(|e| Error::from_sdk($describe_op, e))
            }

            async fn list_shared(&self, client: &Client) -> Result<Vec<$snapshot>> {
                let pages = client.$describe().snapshot_type("shared").include_shared(true).into_paginator().send();
                $crate::store::paced(&$crate::store::rds::region_of(client), pages, |page| page.$described.unwrap_or_default())
                    .await
                    .map_err(|e| Error::from_sdk($describe_op, e))
            }

            async fn copy(&self, client: &Client, request: &CopyRequest<'_>, tags: Vec<Tag>) -> Result<Option<$snapshot>> {
                let call = client
                    .$copy()
                    .$copy_source(request.source)
                    .$copy_target(request.target_id)
                    .set_kms_key_id(request.kms_key_id.map(str::to_string))
                    .set_tags(Some(tags));
                $(
                    let call = call
                        .$copy_option_group(request.option_group.map(str::to_string))
                        .$copy_the_option_group(request.copy_option_group.then_some(true));
                )?
                let out = call.send().await.map_err(|e| Error::from_sdk($copy_op, e))?;
                Ok(out.$copied)
            }

            async fn share(&self, client: &Client, snapshot: &str, add: &[String], remove: &[String]) -> Result<()> {
                client
                    .$modify()
                    .$modify_name(snapshot)
                    .attribute_name($crate::store::rds::RESTORE_ATTRIBUTE)
                    .set_values_to_add(Some(add.to_vec()).filter(|a| !a.is_empty()))
                    .set_values_to_remove(Some(remove.to_vec()).filter(|r| !r.is_empty()))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| Error::from_sdk($modify_op, e))
            }

            async fn restorable_by(&self, client: &Client, snapshot: &str) -> Result<Vec<String>> {
                let out = client
                    .$attributes()
                    .$attributes_name(snapshot)
                    .send()
                    .await
                    .map_err(|e| Error::from_sdk($attributes_op, e))?;
                Ok(out
                    .$result()
                    .map(|r| r.$list())
                    .unwrap_or_default()
                    .iter()
                    .filter(|a| a.attribute_name() == Some($crate::store::rds::RESTORE_ATTRIBUTE))
                    .flat_map(|a| a.attribute_values().iter().cloned())
                    .collect())
            }

            async fn delete(&self, client: &Client, snapshot: &str) -> Result<()> {
                client
                    .$delete()
                    .$delete_name(snapshot)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| Error::from_sdk($delete_op, e))
            }

            $($items)*
        }
    };
}

mod clusters;
mod instances;

pub use clusters::Clusters;
pub use instances::Instances;

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
    percent: Option<i32>,
    /// DB instance snapshots only.
    option_group: Option<&'a str>,
    engine: Option<&'a str>,
    engine_version: Option<&'a str>,
    tags: &'a [Tag],
}

/// What differs between the DB instance and DB cluster snapshot APIs.
#[async_trait]
trait Family: Send + Sync {
    const KIND: ResourceKind;
    /// The account quota on this family's manual snapshots (`DescribeAccountAttributes`).
    const QUOTA: &'static str;
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
    /// This account's snapshots of `snapshot_type` (`manual`, `automated`); `None`: both
    /// (without shared or public ones), as RDS answers without a type.
    async fn list(&self, client: &Client, snapshot_type: Option<&str>) -> Result<Vec<Self::Snapshot>>;
    /// This account's manual snapshots of the database `resource_id` (a copy keeps the id
    /// of the database it was taken of).
    async fn list_of(&self, client: &Client, resource_id: &str) -> Result<Vec<Self::Snapshot>>;
    /// The snapshots other accounts shared with this one.
    async fn list_shared(&self, client: &Client) -> Result<Vec<Self::Snapshot>>;
    async fn copy(&self, client: &Client, request: &CopyRequest<'_>, tags: Vec<Tag>) -> Result<Option<Self::Snapshot>>;
    /// Adds and removes accounts of the `restore` attribute.
    async fn share(&self, client: &Client, snapshot: &str, add: &[String], remove: &[String]) -> Result<()>;
    /// Every account in the `restore` attribute.
    async fn restorable_by(&self, client: &Client, snapshot: &str) -> Result<Vec<String>>;
    async fn delete(&self, client: &Client, snapshot: &str) -> Result<()>;
    async fn restore(&self, client: &Client, snapshot: &Snapshot, spec: &RestoreSpec, class: &str) -> Result<()>;
    async fn restore_status(&self, client: &Client, restore_id: &str) -> Result<Option<Restored>>;
    async fn delete_restore(&self, client: &Client, restore_id: &str) -> Result<()>;
    async fn set_master_password(&self, client: &Client, restore_id: &str, password: &str) -> Result<()>;
    async fn database(&self, client: &Client, resource_id: &str) -> Result<Option<Database>>;
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

/// The region `client` calls, for pacing its listings.
pub(crate) fn region_of(client: &Client) -> String {
    client.config().region().map(|r| r.to_string()).unwrap_or_default()
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
            // A snapshot shared with us is described under its ARN.
            name: crate::arn::name_of(raw.id).to_string(),
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
            description: None,
            size_gib: None,
            progress: raw.percent.and_then(|p| u8::try_from(p.clamp(0, 100)).ok()),
            option_group: raw.option_group.map(str::to_string),
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
            Err(e) if e.retry() == Some(Retry::QuotaExceeded) => Err(self.which_quota(e).await),
            Err(e) => Err(e),
        }
    }

    /// RDS answers `SnapshotQuotaExceeded` both when too many copies are in progress (it
    /// clears as they finish: `e` stays a quota wait) and when the account holds as many
    /// manual snapshots as it may (it never clears by itself: a permanent error that says
    /// so). Only the account's quota figures tell them apart (RDS API Reference,
    /// DescribeAccountAttributes: `ManualSnapshots`, `ManualClusterSnapshots`).
    async fn which_quota(&self, e: Error) -> Error {
        let usage = match self.usage().await {
            Ok(usage) => usage,
            Err(lookup) => {
                // Unknown: waiting is the safe reading, bounded like every quota wait.
                warn!(error = %lookup, "could not read the account's snapshot quotas");
                return e;
            }
        };
        match usage.map(|u| (u.used, u.max)) {
            Some((used, max)) if used >= max => super::quota_full(
                &format!("{used} of {max} {} used in {} of account {}", F::QUOTA, self.region, self.account),
                &e,
            ),
            _ => e,
        }
    }
}

#[allow(private_bounds)]
impl<F: Family> Rds<F> {
    /// This family's manual snapshot quota as the account reports it.
    async fn usage(&self) -> Result<Option<super::QuotaUsage>> {
        let out = self
            .client
            .describe_account_attributes()
            .send()
            .await
            .map_err(|e| Error::from_sdk("DescribeAccountAttributes", e))?;
        let quota = out.account_quotas().iter().find(|q| q.account_quota_name() == Some(F::QUOTA));
        Ok(quota.map(|q| super::QuotaUsage {
            name: F::QUOTA,
            used: q.used().unwrap_or(0).max(0) as u64,
            max: q.max().unwrap_or(i64::MAX).max(0) as u64,
        }))
    }
}

#[allow(private_bounds)]
#[async_trait]
impl<F: Family> SnapshotStore for Rds<F> {
    async fn quota_usage(&self) -> Result<Option<super::QuotaUsage>> {
        self.usage().await
    }

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
        let all = self.family.list(&self.client, Some("manual")).await?;
        Ok(all.iter().map(|s| self.to_snapshot(s)).filter(|s| tags::is_managed(&s.tags)).collect())
    }

    async fn managed_of(&self, resource_id: &str) -> Result<Vec<Snapshot>> {
        let all = self.family.list_of(&self.client, resource_id).await?;
        Ok(all.iter().map(|s| self.to_snapshot(s)).filter(|s| tags::is_managed(&s.tags)).collect())
    }

    async fn list_own(&self) -> Result<Vec<Snapshot>> {
        let all = self.family.list(&self.client, None).await?;
        Ok(all.iter().map(|s| self.to_snapshot(s)).collect())
    }

    async fn shared_with_us(&self) -> Result<Vec<Snapshot>> {
        let shared = self.family.list_shared(&self.client).await?;
        Ok(shared.iter().map(|s| self.to_snapshot(s)).collect())
    }

    async fn copy(&self, request: &CopyRequest<'_>) -> Result<Snapshot> {
        let r = self.family.copy(&self.client, request, to_rds_tags(request.tags)).await;
        self.created(r, request.target_id).await
    }

    async fn share(&self, snapshot: &Snapshot, accounts: &[String]) -> Result<()> {
        self.family.share(&self.client, &snapshot.id, accounts, &[]).await
    }

    async fn unshare(&self, snapshot: &Snapshot, accounts: &[String]) -> Result<()> {
        self.family.share(&self.client, &snapshot.id, &[], accounts).await
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

    async fn restore(&self, snapshot: &Snapshot, spec: &RestoreSpec) -> Result<bool> {
        let smallest = self.smallest_restore_class(snapshot.engine.as_deref()).unwrap_or("db.t4g.micro");
        let class = spec.instance_class.as_deref().unwrap_or(smallest);
        // RDS refuses an identifier that exists: whoever it refuses did not start it.
        match self.family.restore(&self.client, snapshot, spec, class).await {
            Ok(()) => Ok(true),
            Err(Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn restore_status(&self, restore_id: &str) -> Result<Option<Restored>> {
        self.family.restore_status(&self.client, restore_id).await
    }

    async fn delete_restore(&self, restore_id: &str) -> Result<()> {
        self.family.delete_restore(&self.client, restore_id).await
    }

    async fn set_master_password(&self, restore_id: &str, password: &str) -> Result<()> {
        self.family.set_master_password(&self.client, restore_id, password).await
    }

    async fn database(&self, resource_id: &str) -> Result<Option<Database>> {
        self.family.database(&self.client, resource_id).await
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
