//! The one abstraction over the three resource kinds snapferry backs up: a
//! [`SnapshotStore`] per kind, account and region, and [`Stores`], the port a step gets
//! its stores from. Everything that differs between a DB instance, an Aurora cluster and
//! an EBS volume is answered here (identifiers, ARNs, how the end of a copy is learned,
//! status mapping, restore sizing), never by a branch on the kind in a step.

pub mod ebs;
pub mod rds;

use crate::ResourceKind;
use crate::error::Result;
use crate::events::SnapshotRef;
use crate::tags::Tags;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// Where a snapshot (or a restored test resource) is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Creating,
    Available,
    Failed(String),
    /// Any other state AWS reports (`deleting`, ...), kept verbatim.
    Other(String),
}

/// A snapshot as any of the three kinds describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub kind: ResourceKind,
    /// DB snapshot identifier, cluster snapshot identifier, or `snap-...`.
    pub id: String,
    /// The deterministic name snapferry gave it: the identifier for RDS, the
    /// `snapferry:id` tag for EBS (whose ids AWS picks); the id when it has none.
    pub name: String,
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
    /// EBS: the snapshot's description (DLM-style filters select on it); RDS has none.
    pub description: Option<String>,
    /// EBS: the size of the volume it was taken of, in GiB.
    pub size_gib: Option<i32>,
    /// How far AWS says it is while in progress (`PercentProgress`, EBS `Progress`), 0 to 100.
    pub progress: Option<u8>,
    /// DB instance snapshots: the option group of the instance it was taken of
    /// (`default:<engine>-<version>` for the engine's default), which a copy keeps.
    pub option_group: Option<String>,
}

impl Snapshot {
    /// It, as a copy in progress: when it was asked for (snapferry's own tag, as RDS leaves
    /// `SnapshotCreateTime` out while a snapshot is made), and how far it is.
    pub fn as_in_progress(&self) -> CopyInProgress {
        CopyInProgress {
            id: self.id.clone(),
            started_at: self
                .tags
                .get(crate::tags::COPY_STARTED_AT)
                .and_then(|v| crate::tags::parse_timestamp(v))
                .or(self.created_at),
            percent: self.progress,
            source: self.copy_source(),
        }
    }

    /// The source account of a snapferry copy (as its lineage records it: AWS's owner of the
    /// snapshot copied); `None` for anything else.
    fn copy_source(&self) -> Option<String> {
        let copy = crate::tags::is_managed(&self.tags)
            && self.tags.get(crate::tags::STEP).is_some_and(|s| s == crate::tags::STEP_COPY);
        copy.then(|| self.tags.get(crate::tags::SOURCE_ACCOUNT).cloned()).flatten()
    }

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
    /// What a snapshot of it is made of when that is several resources: the EBS volumes of
    /// an EC2 instance, snapshotted together as one backup set. Empty for a single resource.
    pub members: Vec<String>,
    /// When AWS created it (launched, for an instance), where AWS says.
    pub created_at: Option<DateTime<Utc>>,
}

impl Resource {
    /// Whether `selection` selects it: a single resource by [`Selection::matches`] (an EBS
    /// volume by its `Name` tag too); a set (an EC2 instance and its volumes) by its
    /// explicit id or the instance tag only, so `SELECT_REGEX=.*` does not snapshot every
    /// attached volume twice.
    ///
    /// [`Selection::matches`]: crate::select::Selection::matches
    pub fn selected_by(&self, selection: &crate::select::Selection) -> bool {
        if self.members.is_empty() {
            // Where AWS picks the id (EBS), a person names the resource by its Name tag.
            let name = (!crate::kinds::of(self.kind).named_by_identifier).then(|| self.tags.get("Name")).flatten();
            selection.matches(&self.id, &self.tags) || name.is_some_and(|n| selection.matches_id(n))
        } else {
            selection.identifiers.contains(&self.id) || crate::select::tag_matches(&selection.instance_tag, &self.tags)
        }
    }

    /// snapferry's name for it: the `snapferry:id` tag where AWS picks the id (EBS test
    /// volumes), else its id.
    pub fn name(&self) -> &str {
        self.tags.get(crate::tags::ID).map(String::as_str).unwrap_or(&self.id)
    }
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
    /// The deterministic name of the copy (see [`Snapshot::name`]).
    pub target_id: &'a str,
    /// Key for the copy. Required by AWS when copying a shared encrypted snapshot.
    pub kms_key_id: Option<&'a str>,
    pub tags: &'a Tags,
    /// DB instance snapshots into another region: the option group there, which AWS
    /// requires for a snapshot of a non-default option group with options.
    pub option_group: Option<&'a str>,
    /// DB instance snapshots shared by another account: copy their option group into this
    /// account with them (`CopyOptionGroup`); without it the copy has the engine's default.
    pub copy_option_group: bool,
}

/// Where and how to restore a copy to prove it restores.
#[derive(Debug, Clone, Default)]
pub struct RestoreSpec {
    /// Deterministic identifier of the test DB instance / cluster (EBS: a `snapferry:id` tag).
    pub restore_id: String,
    pub subnet_group: Option<String>,
    pub security_group_ids: Vec<String>,
    /// The class to restore as; the store's smallest for the engine when `None`.
    pub instance_class: Option<String>,
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
    /// EBS: the test volume's size in GiB.
    pub size_gib: Option<i32>,
    /// RDS: where the restored database answers once available.
    pub endpoint: Option<Endpoint>,
}

/// Where a restored database answers, and its master user (the snapshot's: a restore
/// takes no master credentials).
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The database created with the source (`DBName`), if one was.
    pub database: Option<String>,
}

/// A database of this account as the share step's data checks find it: where it answers,
/// and the Secrets Manager secret RDS manages for its master user, if it does.
#[derive(Debug, Clone, PartialEq)]
pub struct Database {
    pub id: String,
    pub engine: Option<String>,
    pub endpoint: Option<Endpoint>,
    /// `MasterUserSecret.SecretArn`: set where RDS manages the master password.
    pub master_secret_arn: Option<String>,
}

/// How full an account's quota of manual snapshots of one kind is, in one region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaUsage {
    /// AWS's name of the quota (`ManualSnapshots`, `ManualClusterSnapshots`).
    pub name: &'static str,
    pub used: u64,
    pub max: u64,
}

/// A copy into a store's account and region that AWS has not finished: it holds one of the
/// region's copy slots for its kind.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyInProgress {
    pub id: String,
    /// When the copy started (RDS's `SnapshotCreateTime` of a copy, EBS's `StartTime`).
    pub started_at: Option<DateTime<Utc>>,
    /// How far AWS says it is (`PercentProgress`, EBS `Progress`), 0 to 100.
    pub percent: Option<u8>,
    /// A snapferry copy's source account.
    pub source: Option<String>,
}

impl CopyInProgress {
    /// How long the whole copy takes at the least, from how far AWS says it is after how
    /// long; `None` when it does not say (0 %, no figure, no start time). AWS reports whole
    /// percents, rounded down: at the top of the percent the copy ends soonest, so a look
    /// timed by this comes at the end or a little before it, never long after.
    pub fn duration(&self, now: DateTime<Utc>) -> Option<chrono::Duration> {
        let percent = f64::from(self.percent.filter(|p| (1..100).contains(p))?);
        let elapsed = (now - self.started_at?).num_milliseconds().max(0) as f64;
        Some(chrono::Duration::milliseconds((elapsed * 100.0 / (percent + 1.0)) as i64))
    }

    /// When it should end, as [`CopyInProgress::duration`] estimates.
    pub fn ends_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        Some(self.started_at? + self.duration(now)?)
    }
}

/// One source's copies in one store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceCopies {
    /// Held, in progress or not.
    pub held: usize,
    /// Still in progress.
    pub in_flight: usize,
}

/// Pages of one listing asked of AWS a second, at most, per region and process, after its
/// first page: a third of RDS's 12 requests a second (per account and region, shared with
/// every other caller; EC2's `Describe*` bucket refills at 20). A sweep of 10,000 snapshots
/// (100 pages) then takes 25 s and leaves the rest of the account's budget to everything
/// else; a listing of one page is not slowed. Within a sweep's five-minute timeout that is
/// some 1,200 pages in all.
pub const LIST_PAGES_PER_SECOND: u32 = 4;

/// Waits for `region`'s next page slot ([`LIST_PAGES_PER_SECOND`]), shared by every listing
/// of the process.
async fn pace(region: &str) {
    static NEXT: std::sync::Mutex<std::collections::BTreeMap<String, std::time::Instant>> =
        std::sync::Mutex::new(std::collections::BTreeMap::new());
    let interval = std::time::Duration::from_secs(1) / LIST_PAGES_PER_SECOND;
    let wait = {
        let now = std::time::Instant::now();
        let mut next = NEXT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let at = next.get(region).copied().filter(|t| *t > now).unwrap_or(now);
        next.insert(region.to_string(), at + interval);
        at - now
    };
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
}

/// Every item of a paginated listing in `region`, its pages after the first paced
/// ([`LIST_PAGES_PER_SECOND`]); `items` takes a page's items out.
pub(crate) async fn paced<O, E, T>(
    region: &str,
    mut pages: aws_smithy_async::future::pagination_stream::PaginationStream<std::result::Result<O, E>>,
    items: impl Fn(O) -> Vec<T>,
) -> std::result::Result<Vec<T>, E> {
    let mut out = Vec::new();
    let mut first = true;
    loop {
        if !first {
            pace(region).await;
        }
        first = false;
        match pages.next().await {
            Some(page) => out.extend(items(page?)),
            None => return Ok(out),
        }
    }
}

/// How many copies of `kind` AWS runs at once into one destination region of an account, by
/// default ([`crate::kinds::Kind::copy_slots`]). AWS refuses more with
/// `SnapshotQuotaExceeded` / `ResourceLimitExceeded`.
pub fn default_copy_slots(kind: ResourceKind) -> usize {
    crate::kinds::of(kind).copy_slots
}

/// How a snapshot is locked against deletion (EBS Snapshot Lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Users with `ec2:UnlockSnapshot` can unlock it or shorten the lock.
    Governance,
    /// Nobody, the root user included, can unlock it or shorten the lock once the cool-off
    /// period has passed (EBS User Guide, snapshot-lock-concepts).
    Compliance,
}

/// How a step learns that a copy it started in a store's region has finished (per kind:
/// [`crate::kinds::Kind::copy_completion`]).
pub use crate::kinds::CopyCompletion;

/// The one abstraction the services are written against. Every call is idempotent:
/// "already exists" answers with what exists, "not found" on delete is success.
#[async_trait]
pub trait SnapshotStore: Send + Sync {
    fn kind(&self) -> ResourceKind;
    fn account(&self) -> &str;
    fn region(&self) -> &str;

    /// The ARN a snapshot named `name` has (or would have) in this store.
    fn snapshot_arn(&self, name: &str) -> String {
        crate::arn::snapshot_arn(self.kind(), self.region(), self.account(), name)
    }

    /// How the end of a copy into this store is learned.
    fn copy_completion(&self) -> CopyCompletion {
        crate::kinds::of(self.kind()).copy_completion
    }

    /// The cheapest class a test restore of `engine` can run on; `None` where there is no
    /// class to choose (EBS volumes).
    fn smallest_restore_class(&self, _engine: Option<&str>) -> Option<&'static str> {
        crate::kinds::of(self.kind()).smallest_restore_class
    }

    /// Databases / volumes in this account and region.
    async fn list_resources(&self) -> Result<Vec<Resource>>;
    /// The test restores in this account and region: resources tagged as restore tests.
    async fn list_restore_tests(&self) -> Result<Vec<Resource>> {
        let all = self.list_resources().await?;
        Ok(all.into_iter().filter(|r| r.tags.get(crate::tags::RESTORE_TEST).is_some_and(|v| v == "true")).collect())
    }
    /// Take a snapshot with a deterministic name; an existing one of that name is returned as is.
    async fn create(&self, resource_id: &str, name: &str, tags: &Tags) -> Result<Snapshot>;
    /// Snapshot `resource`: one snapshot, or for a resource with members (an EC2 instance)
    /// one crash-consistent snapshot of every member, all named `name`. Idempotent as `create`.
    async fn create_set(&self, resource: &Resource, name: &str, tags: &Tags) -> Result<Vec<Snapshot>> {
        Ok(vec![self.create(&resource.id, name, tags).await?])
    }
    /// By id or ARN, including snapshots shared with this account; `None` when not there.
    async fn describe(&self, snapshot: &str) -> Result<Option<Snapshot>>;
    /// This account's snapshot snapferry named `name` (see [`Snapshot::name`]), if it exists.
    async fn find(&self, name: &str) -> Result<Option<Snapshot>> {
        self.describe(name).await
    }
    /// Every snapshot this account owns here named `name`. At most one where AWS names
    /// snapshots by their identifier and refuses a second of a name (RDS); where snapferry
    /// names them by a tag (EBS), nothing refuses a second, and two handlings of one
    /// message at once can each make one: see [`first_made`].
    async fn named(&self, name: &str) -> Result<Vec<Snapshot>> {
        Ok(self.find(name).await?.into_iter().collect())
    }
    /// Snapshots this account owns that carry snapferry's managed tag.
    async fn list_managed(&self) -> Result<Vec<Snapshot>>;
    /// snapferry's snapshots of one resource (a copy's: the resource it was taken of) that
    /// this account owns here: one listing of that resource's snapshots, not the account's.
    async fn managed_of(&self, resource_id: &str) -> Result<Vec<Snapshot>>;
    /// Every snapshot this account owns here: snapferry's, and those taken by hand, by
    /// RDS's automated backups or by other tools. One listing, for the sweeps.
    async fn list_own(&self) -> Result<Vec<Snapshot>>;
    /// The copies into this account and region that AWS is still making (they hold this
    /// kind's copy slots), from one listing of those alone, where the kind's API lists
    /// snapshots by state ([`crate::kinds::Kind::lists_by_state`]); `None` where it does not,
    /// rather than a listing of every snapshot the account holds.
    async fn pending_copies(&self) -> Result<Option<Vec<CopyInProgress>>> {
        Ok(None)
    }
    /// The snapshots other accounts shared with this account, here, in any state.
    async fn shared_with_us(&self) -> Result<Vec<Snapshot>>;
    /// Copy into this account and region; an existing copy of that name is returned as is.
    async fn copy(&self, request: &CopyRequest<'_>) -> Result<Snapshot>;
    /// Let these accounts restore/copy the snapshot. Never `all`.
    async fn share(&self, snapshot: &Snapshot, accounts: &[String]) -> Result<()>;
    /// Withdraw these accounts' access (the share made by [`SnapshotStore::share`]).
    async fn unshare(&self, snapshot: &Snapshot, accounts: &[String]) -> Result<()>;
    /// The accounts it is shared with.
    async fn shared_with(&self, snapshot: &Snapshot) -> Result<Vec<String>>;
    /// How full the account's manual snapshot quota of this kind is; `None` where AWS does
    /// not report it through the kind's API (EBS: Service Quotas only).
    async fn quota_usage(&self) -> Result<Option<QuotaUsage>> {
        Ok(None)
    }
    /// Of `snapshots`, the ids of those locked against deletion (EBS Snapshot Lock); none
    /// where the kind has no lock.
    async fn locked(&self, _snapshots: &[Snapshot]) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
    async fn tag(&self, snapshot: &Snapshot, tags: &Tags) -> Result<()>;
    /// Delete; already gone is success.
    async fn delete(&self, snapshot: &Snapshot) -> Result<()>;
    /// Start a test restore; an existing restore of that id is left as is. True when this
    /// call started it: of two invocations at once (one message delivered twice), the one
    /// that started it follows it, the other leaves it to that one.
    async fn restore(&self, snapshot: &Snapshot, spec: &RestoreSpec) -> Result<bool>;
    async fn restore_status(&self, restore_id: &str) -> Result<Option<Restored>>;
    /// Delete what a test restore created (no final snapshot); already gone is success.
    async fn delete_restore(&self, restore_id: &str) -> Result<()>;
    /// The database (DB instance, Aurora cluster) `resource_id` of this account, to log in
    /// to; `None` where it is gone or the kind has none.
    async fn database(&self, _resource_id: &str) -> Result<Option<Database>> {
        Ok(None)
    }
    /// Sets the master password of a test restore, applied at once, so the restore step
    /// can log in without ever knowing the source's. Kinds with no database refuse.
    async fn set_master_password(&self, _restore_id: &str, _password: &str) -> Result<()> {
        Err(crate::error::Error::Permanent {
            op: "ModifyMasterUserPassword",
            code: "Unsupported".into(),
            message: format!("a {} has no database to log in to", self.kind()),
            hint: None,
        })
    }
    /// Lock the snapshot against deletion for `days`; the end of the lock, or `None` where
    /// the kind has no snapshot lock (RDS and Aurora: AWS Backup vault lock is AWS's answer there).
    async fn lock(&self, _snapshot: &Snapshot, _mode: LockMode, _days: u32) -> Result<Option<DateTime<Utc>>> {
        Ok(None)
    }
}

/// The error of a full snapshot count quota (`figures` says which and how full), caused by
/// `cause`: permanent, because it clears only when snapshots are deleted or the quota is
/// raised, unlike a quota of copies in progress.
pub fn quota_full(figures: &str, cause: &crate::error::Error) -> crate::error::Error {
    crate::error::Error::QuotaFull {
        op: "SnapshotQuota",
        message: format!("{figures}: {cause}"),
        hint: Some(
            "delete manual snapshots nobody needs, or raise the quota in Service Quotas, then replay the message",
        ),
    }
}

/// The port a step gets its stores from: one per kind, in its own account, in its home
/// region or another one (extra-region copies).
pub trait Stores: Send + Sync {
    fn account(&self) -> &str;
    /// The home region: where the step runs.
    fn region(&self) -> &str;
    fn store_in(&self, kind: ResourceKind, region: &str) -> Arc<dyn SnapshotStore>;
    fn store(&self, kind: ResourceKind) -> Arc<dyn SnapshotStore> {
        self.store_in(kind, self.region())
    }
}

/// `Ok(None)` for not-found, so "describe" and "delete" can treat absence as an answer.
pub(crate) fn absent_ok<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(crate::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Of snapshots named alike (see [`SnapshotStore::named`]) and of one resource, the one
/// made first: the one the pipeline goes on with, wherever it is asked, so that any later
/// one is known for a duplicate by every handling that sees both. Ordered by start time,
/// then by the run that made it (one for every member of a crash-consistent set, so a set
/// is never mixed from two), then by id.
pub fn first_made<'a>(namesakes: impl IntoIterator<Item = &'a Snapshot>) -> Option<&'a Snapshot> {
    namesakes.into_iter().min_by(|a, b| {
        let run = |s: &Snapshot| s.tags.get(crate::tags::CORRELATION_ID).cloned();
        (a.created_at, run(a), &a.id).cmp(&(b.created_at, run(b), &b.id))
    })
}

pub(crate) fn to_chrono(t: Option<&aws_smithy_types::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;
    use crate::select::Selection;

    fn resource(id: &str, tags: &[(&str, &str)], members: &[&str]) -> Resource {
        Resource {
            kind: ResourceKind::Ebs,
            id: id.into(),
            arn: format!("arn:aws:ec2:us-east-1:111111111111:volume/{id}"),
            encrypted: true,
            kms_key_id: None,
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            members: members.iter().map(|m| m.to_string()).collect(),
            created_at: None,
        }
    }

    #[test]
    fn volumes_by_id_name_or_tag_and_instances_by_their_own_tag_only() {
        let env = [("SELECT_REGEX", "^logs$"), ("SELECT_TAG", "backup"), ("SELECT_INSTANCE_TAG", "fleet=web")];
        let s = Selection::from_env(&Env::from_pairs("create-snapshot", env).unwrap()).unwrap();
        assert!(resource("vol-1", &[("Name", "logs")], &[]).selected_by(&s), "by its Name tag");
        assert!(resource("vol-2", &[("backup", "")], &[]).selected_by(&s), "by the opt-in tag");
        assert!(!resource("vol-3", &[("Name", "scratch")], &[]).selected_by(&s));
        assert!(resource("i-1", &[("fleet", "web")], &["vol-4", "vol-5"]).selected_by(&s), "by the instance tag");
        assert!(!resource("i-2", &[("backup", "")], &["vol-6"]).selected_by(&s), "the volume tag does not pick sets");
        let everything =
            Selection::from_env(&Env::from_pairs("create-snapshot", [("SELECT_REGEX", ".*")]).unwrap()).unwrap();
        assert!(!resource("i-3", &[], &["vol-7"]).selected_by(&everything), "a regex never picks a set");
    }
}
