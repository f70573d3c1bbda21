//! A snapshot's lineage, typed: who made it ([`MadeBy`]), in which pipeline run, from which
//! origin, and the marks of its life ([`Mark`]: copied, verified, restore-tested, released,
//! reconciled). snapferry keeps no state but its tags, and this module is where the steps
//! read ([`Lineage`]) and write ([`Made`], [`CopyRecord`], [`stamp`]) them: no step reads
//! or writes a `snapferry:` tag by its key.
//!
//! The tags are snapferry's own, on snapshots of its own account. On a copy in the backup
//! account, what they record of the source is what AWS reported of the shared snapshot:
//! the account that owns it, the snapshot copied, and (where copies name it) the resource it
//! was taken of. Only the origin snapshot's ARN is the source's word, checked to lie in that
//! same account: the backup account cannot see the source's other snapshots.

use crate::events::{BackupSet, SnapshotRef};
use crate::store::{Resource, Snapshot};
use crate::tags::{self, RestoredFigures, SourceFigures, Tags};
use chrono::{DateTime, Utc};

/// Which step made a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MadeBy {
    /// create-snapshot's scheduled or requested snapshot, in the source account.
    Create,
    /// share-snapshot's re-encrypting copy (onto the sharing key), in the source account.
    Share,
    /// copy-shared-snapshot's copy, in the backup account (home or an extra region).
    Copy,
}

impl MadeBy {
    /// The value of the `snapferry:step` tag.
    pub fn as_str(self) -> &'static str {
        match self {
            MadeBy::Create => "create",
            MadeBy::Share => "share",
            MadeBy::Copy => tags::STEP_COPY,
        }
    }

    fn parse(value: &str) -> Option<MadeBy> {
        [MadeBy::Create, MadeBy::Share, MadeBy::Copy].into_iter().find(|m| m.as_str() == value)
    }
}

impl std::fmt::Display for MadeBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A moment of a snapshot's life that snapferry records on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// A copy was announced as copied ("Snapshot Copied").
    Copied,
    /// A restore test of a copy succeeded.
    Verified,
    /// A restore test of a sampled copy started (`RESTORE_EVERY_NTH` counts from it).
    RestoreTested,
    /// A restore test of a copy failed, and was reported.
    RestoreFailed,
    /// The backup account reported the copy of a source snapshot; its share was withdrawn.
    Released,
    /// Reconcile restarted the snapshot's stalled chain.
    Reconciled,
    /// A verified copy's data fell against the previous good copy ("Restore Suspicious").
    Suspicious,
    /// An operator accepted a suspicious copy: it is a good copy from then on.
    Accepted,
}

impl Mark {
    fn key(self) -> &'static str {
        match self {
            Mark::Copied => tags::COPIED_AT,
            Mark::Verified => tags::VERIFIED_AT,
            Mark::RestoreTested => tags::RESTORE_TESTED_AT,
            Mark::RestoreFailed => tags::RESTORE_FAILED_AT,
            Mark::Released => tags::RELEASED_AT,
            Mark::Reconciled => tags::RECONCILED_AT,
            Mark::Suspicious => tags::SUSPICIOUS_AT,
            Mark::Accepted => tags::ACCEPTED_AT,
        }
    }
}

/// The tags recording `mark` at `at`, to add to the snapshot.
pub fn stamp(mark: Mark, at: DateTime<Utc>) -> Tags {
    Tags::from([(mark.key().to_string(), tags::timestamp_value(at))])
}

/// The tags of a verified copy: when, how long its restore took to become available, and
/// where data checks ran, its data recovery point and what its restore held.
pub fn verified(
    at: DateTime<Utc>,
    restore_seconds: f64,
    data_recovery_seconds: Option<f64>,
    figures: Option<RestoredFigures>,
) -> Tags {
    let mut t = stamp(Mark::Verified, at);
    t.insert(tags::RESTORE_SECONDS.into(), format!("{restore_seconds:.1}"));
    if let Some(point) = data_recovery_seconds {
        t.insert(tags::DATA_RECOVERY_SECONDS.into(), format!("{point:.0}"));
    }
    if let Some(figures) = figures {
        t.insert(tags::RESTORED_DATA.into(), figures.tag_value());
    }
    t
}

/// The tags of a copy whose restore test failed: when, and why (cut to a tag value).
pub fn restore_failed(at: DateTime<Utc>, reason: &str) -> Tags {
    let mut t = stamp(Mark::RestoreFailed, at);
    t.insert(tags::RESTORE_FAILURE.into(), tags::sanitize_value(reason));
    t
}

/// What snapferry recorded on a snapshot (or a restore-test resource): a view of its tags.
#[derive(Debug, Clone, Copy)]
pub struct Lineage<'a> {
    kind: crate::ResourceKind,
    tags: &'a Tags,
}

impl<'a> Lineage<'a> {
    pub fn of(snapshot: &'a Snapshot) -> Self {
        Lineage { kind: snapshot.kind, tags: &snapshot.tags }
    }

    pub fn of_resource(resource: &'a Resource) -> Self {
        Lineage { kind: resource.kind, tags: &resource.tags }
    }

    fn get(&self, key: &str) -> Option<&'a str> {
        self.tags.get(key).map(String::as_str)
    }

    /// snapferry made it (anything else is never touched).
    pub fn is_managed(&self) -> bool {
        tags::is_managed(self.tags)
    }

    /// Which step made it, if snapferry did.
    pub fn made_by(&self) -> Option<MadeBy> {
        self.is_managed().then(|| self.get(tags::STEP).and_then(MadeBy::parse)).flatten()
    }

    /// Whether `by` made it.
    pub fn is(&self, by: MadeBy) -> bool {
        self.made_by() == Some(by)
    }

    /// The pipeline run that made it; empty when none is recorded.
    pub fn correlation_id(&self) -> String {
        self.recorded_correlation_id().unwrap_or_default().to_string()
    }

    /// The pipeline run that made it, where one is recorded.
    pub fn recorded_correlation_id(&self) -> Option<&'a str> {
        self.get(tags::CORRELATION_ID)
    }

    /// The origin snapshot's ARN, as recorded.
    pub fn source_arn(&self) -> Option<&'a str> {
        self.get(tags::SOURCE_ARN)
    }

    /// The source account, as recorded.
    pub fn source_account(&self) -> Option<&'a str> {
        self.get(tags::SOURCE_ACCOUNT)
    }

    /// The resource the origin snapshot was taken of, as recorded.
    pub fn origin_resource(&self) -> Option<&'a str> {
        self.get(tags::ORIGIN_RESOURCE)
    }

    /// The origin snapshot, from its recorded ARN (the rest as far as recorded).
    pub fn origin(&self) -> Option<SnapshotRef> {
        tags::origin_from_tags(self.kind, self.tags)
    }

    /// The origin, where the whole of it was recorded (its resource too): a snapshot made
    /// from another; `None` for one that is its own origin.
    pub fn recorded_origin(&self) -> Option<SnapshotRef> {
        self.origin_resource().and_then(|_| self.origin())
    }

    /// When `mark` was recorded.
    pub fn at(&self, mark: Mark) -> Option<DateTime<Utc>> {
        self.get(mark.key()).and_then(tags::parse_timestamp)
    }

    /// Whether `mark` is recorded (whatever its value).
    pub fn has(&self, mark: Mark) -> bool {
        self.tags.contains_key(mark.key())
    }

    /// A copy: the snapshot it was copied from.
    pub fn copied_from(&self) -> Option<&'a str> {
        self.get(tags::COPIED_FROM)
    }

    /// A copy: which attempt at making it this is (1 when not recorded).
    pub fn copy_attempt(&self) -> u32 {
        self.get(tags::COPY_ATTEMPT).and_then(|v| v.parse().ok()).unwrap_or(1)
    }

    /// A copy: when the snapshot it was made of was taken.
    pub fn snapshot_taken_at(&self) -> Option<DateTime<Utc>> {
        self.get(tags::SNAPSHOT_TAKEN_AT).and_then(tags::parse_timestamp)
    }

    /// A verified copy: how long its restore test took to become available.
    pub fn restore_seconds(&self) -> Option<f64> {
        self.get(tags::RESTORE_SECONDS).and_then(|v| v.parse().ok())
    }

    /// A verified copy: its data recovery point, where data checks measured one.
    pub fn data_recovery_seconds(&self) -> Option<f64> {
        self.get(tags::DATA_RECOVERY_SECONDS).and_then(|v| v.parse().ok())
    }

    /// A copy whose restore test failed: why, as recorded then.
    pub fn restore_failure(&self) -> Option<&'a str> {
        self.get(tags::RESTORE_FAILURE)
    }

    /// The backup set it belongs to.
    pub fn set(&self) -> Option<BackupSet> {
        tags::set_from_tags(self.tags)
    }

    /// A copy: its source database's figures, where they were measured and plausible.
    pub fn source_figures(&self) -> Option<SourceFigures> {
        SourceFigures::from_tags(self.tags)
    }

    /// A verified copy: what its restore held, where data checks ran.
    pub fn restored_figures(&self) -> Option<RestoredFigures> {
        RestoredFigures::from_tags(self.tags)
    }

    /// A verified copy a later one may be compared with, and that retention counts as its
    /// resource's newest verified copy: not found suspicious, or accepted since.
    pub fn is_good(&self) -> bool {
        self.has(Mark::Verified) && (!self.has(Mark::Suspicious) || self.has(Mark::Accepted))
    }

    /// A restore test's resource (tagged so when it was made).
    pub fn is_restore_test(&self) -> bool {
        self.get(tags::RESTORE_TEST) == Some("true")
    }

    /// When snapferry created it (restore-test resources).
    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        self.get(tags::CREATED_AT).and_then(tags::parse_timestamp)
    }

    /// Its own tags, the users': without `aws:` keys and without snapferry's.
    pub fn user_tags(&self) -> Tags {
        tags::user_tags(self.tags)
    }

    /// Of `wanted` (the tags a copy of the same would be made with now), those this one
    /// lacks that may be added later: its users' tags, and the set and the source's
    /// figures, which only the pipeline's event brings. The rest of the lineage stays as
    /// first written.
    /// Users' tags only as far as they fit beside the room kept for snapferry's later ones.
    pub fn lacking(&self, wanted: &Tags) -> Tags {
        let later = [tags::SET, tags::SET_SIZE, tags::SOURCE_DATA];
        let (ours, users): (Tags, Tags) = wanted
            .iter()
            .filter(|(k, _)| !k.starts_with(tags::OWN_PREFIX) || later.contains(&k.as_str()))
            .filter(|(k, _)| !self.tags.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .partition(|(k, _)| k.starts_with(tags::OWN_PREFIX));
        let fit = tags::room(self.tags).saturating_sub(self.tags.len());
        ours.into_iter().chain(users.into_iter().take(fit)).collect()
    }
}

/// The lineage a step writes on a snapshot it makes, [`tags::MANAGED`] included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    pub source_arn: String,
    pub source_account: String,
    pub correlation_id: String,
    pub by: MadeBy,
}

impl Made {
    pub fn tags(&self) -> Tags {
        tags::LineageTags {
            source_arn: self.source_arn.clone(),
            source_account: self.source_account.clone(),
            correlation_id: self.correlation_id.clone(),
            step: self.by.as_str().to_string(),
        }
        .tags()
    }
}

/// The lineage of a copy a step makes (share-snapshot's re-encrypting copy, or the backup
/// account's copy): who made it from which origin, and what the copy needs to be made
/// again or judged later.
#[derive(Debug, Clone)]
pub struct CopyRecord<'a> {
    pub made: Made,
    pub origin: &'a SnapshotRef,
    /// The snapshot copied (recorded so a failed copy can be made again from it).
    pub copied_from: Option<&'a str>,
    /// When the copy is asked for; [`stamp_started`] sets it again at the copy call.
    pub started_at: DateTime<Utc>,
    /// When the snapshot copied was taken, as AWS describes it.
    pub taken_at: Option<DateTime<Utc>>,
    pub set: Option<BackupSet>,
    pub source_figures: Option<SourceFigures>,
}

impl CopyRecord<'_> {
    pub fn tags(&self) -> Tags {
        let mut t = self.made.tags();
        t.extend(tags::origin_tags(self.origin));
        if let Some(from) = self.copied_from {
            t.insert(tags::COPIED_FROM.into(), from.to_string());
        }
        stamp_started(&mut t, self.started_at);
        if let Some(taken) = self.taken_at {
            t.insert(tags::SNAPSHOT_TAKEN_AT.into(), tags::timestamp_value(taken));
        }
        if let Some(set) = &self.set {
            t.extend(tags::set_tags(set));
        }
        if let Some(figures) = &self.source_figures {
            t.insert(tags::SOURCE_DATA.into(), figures.tag_value());
        }
        t
    }
}

/// The tags that make a snapshot a member of `set`.
pub fn in_set(set: &BackupSet) -> Tags {
    tags::set_tags(set)
}

/// Records on a copy's tags that it is asked for at `at` (to the millisecond: it times the
/// copy in progress).
pub fn stamp_started(tags: &mut Tags, at: DateTime<Utc>) {
    tags.insert(tags::COPY_STARTED_AT.into(), tags::precise_timestamp_value(at));
}

/// The tags of a copy made again after `failed` failed: the same lineage, not yet copied,
/// its attempt counted, asked for at `at`.
pub fn made_again(failed: &Lineage<'_>, at: DateTime<Utc>) -> Tags {
    let mut again = failed.tags.clone();
    again.remove(tags::COPIED_AT);
    again.insert(tags::COPY_ATTEMPT.into(), (failed.copy_attempt() + 1).to_string());
    stamp_started(&mut again, at);
    again
}

/// The lineage a copy into another region carries from the home copy: everything but the
/// marks of the home copy's own life (copied, verified).
pub fn for_another_region(home: &Lineage<'_>) -> Tags {
    let mut t = home.tags.clone();
    t.remove(tags::COPIED_AT);
    t.remove(tags::VERIFIED_AT);
    t
}

/// The tags of a restore test's resource: marked as one, with the run and the copy it
/// restores, and when it was made (the sweep deletes it once older than its time).
pub fn restore_test(correlation_id: &str, copy_arn: &str, at: DateTime<Utc>) -> Tags {
    Tags::from([
        (tags::RESTORE_TEST.to_string(), "true".to_string()),
        (tags::CORRELATION_ID.to_string(), tags::sanitize_value(correlation_id)),
        (tags::SOURCE_ARN.to_string(), tags::sanitize_value(copy_arn)),
        (tags::CREATED_AT.to_string(), tags::timestamp_value(at)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ResourceKind;

    fn snapshot(tags: &[(&str, &str)]) -> Snapshot {
        Snapshot {
            kind: ResourceKind::DbInstance,
            id: "c".into(),
            name: "c".into(),
            arn: "arn:aws:rds:us-east-1:222222222222:snapshot:c".into(),
            account: "222222222222".into(),
            region: "us-east-1".into(),
            resource_id: "orders".into(),
            status: crate::store::Status::Available,
            encrypted: true,
            kms_key_id: None,
            automated: false,
            created_at: None,
            engine: None,
            engine_version: None,
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            description: None,
            size_gib: None,
            progress: None,
            option_group: None,
        }
    }

    #[test]
    fn who_made_it_is_read_only_from_snapferrys_own_snapshots() {
        let managed = snapshot(&[(tags::MANAGED, "true"), (tags::STEP, "copy")]);
        assert_eq!(Lineage::of(&managed).made_by(), Some(MadeBy::Copy));
        assert!(Lineage::of(&managed).is(MadeBy::Copy) && !Lineage::of(&managed).is(MadeBy::Share));
        let foreign = snapshot(&[(tags::STEP, "copy")]);
        assert_eq!(Lineage::of(&foreign).made_by(), None, "not managed: made by no step of ours");
        let odd = snapshot(&[(tags::MANAGED, "true"), (tags::STEP, "restore")]);
        assert_eq!(Lineage::of(&odd).made_by(), None);
    }

    #[test]
    fn marks_are_stamped_and_read_back() {
        let at = DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z").unwrap().with_timezone(&Utc);
        let mut s = snapshot(&[(tags::MANAGED, "true")]);
        s.tags.extend(stamp(Mark::Released, at));
        let figures = RestoredFigures { tables: 3, rows: 1200, newest_data_at: Some(at) };
        s.tags.extend(verified(at, 412.04, Some(75.2), Some(figures)));
        let l = Lineage::of(&s);
        assert_eq!(l.at(Mark::Released), Some(at));
        assert!(l.has(Mark::Verified) && !l.has(Mark::Copied));
        assert_eq!(l.restore_seconds(), Some(412.0));
        assert_eq!(s.tags.get(tags::DATA_RECOVERY_SECONDS).map(String::as_str), Some("75"));
        assert_eq!(l.restored_figures(), Some(figures));
        // Good until found suspicious; good again once accepted.
        assert!(l.is_good());
        s.tags.extend(stamp(Mark::Suspicious, at));
        assert!(!Lineage::of(&s).is_good());
        s.tags.extend(stamp(Mark::Accepted, at));
        assert!(Lineage::of(&s).is_good());
    }

    #[test]
    fn a_copy_made_again_counts_its_attempts_and_is_no_longer_copied() {
        let at = Utc::now();
        let failed = snapshot(&[(tags::MANAGED, "true"), (tags::STEP, "copy"), (tags::COPIED_AT, "x")]);
        let again = made_again(&Lineage::of(&failed), at);
        assert_eq!(again.get(tags::COPY_ATTEMPT).map(String::as_str), Some("2"));
        assert!(!again.contains_key(tags::COPIED_AT));
        let third = snapshot(&again.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>());
        assert_eq!(Lineage::of(&third).copy_attempt(), 2);
    }
}
