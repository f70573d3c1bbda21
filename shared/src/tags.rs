//! The tags that mark snapferry's resources and carry their lineage.
//!
//! Tags are the only state snapferry keeps: the steps decide what is ours, where it came
//! from and which pipeline run made it by reading them back. Anything without [`MANAGED`] = `true` is never touched.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::{DateTime, SecondsFormat, Utc};
use regex::Regex;

/// Tags as RDS and EC2 take them; ordered so generated requests and tests are stable.
pub type Tags = BTreeMap<String, String>;

/// `"true"` on every resource snapferry created; nothing else is ever deleted by it.
pub const MANAGED: &str = "snapferry:managed";
/// The value of [`MANAGED`].
pub const MANAGED_VALUE: &str = "true";
/// ARN of the original snapshot in the source account.
pub const SOURCE_ARN: &str = "snapferry:source-arn";
/// Account id of the source account.
pub const SOURCE_ACCOUNT: &str = "snapferry:source-account";
/// The pipeline run's correlation id, to join logs and events across accounts.
pub const CORRELATION_ID: &str = "snapferry:correlation-id";
/// The step that created the resource (`create`, `share`, `copy`, `restore`).
pub const STEP: &str = "snapferry:step";
/// The value of [`STEP`] on the backup account's copies (the lineage's `MadeBy::Copy`).
pub const STEP_COPY: &str = "copy";
/// When this copy was announced as copied; a later look at it (the re-check that backs up
/// a lost event) then has nothing left to do.
pub const COPIED_AT: &str = "snapferry:copied-at";
/// When a restore test of this copy last succeeded (RFC 3339, see [`timestamp_value`]).
pub const VERIFIED_AT: &str = "snapferry:verified-at";
/// `"true"` on DB instances / clusters / volumes created by a restore test, so whatever a
/// crashed run left behind can be found (the teardown in `docs/deploy.md` lists them by it).
pub const RESTORE_TEST: &str = "snapferry:restore-test";
/// When snapferry created the resource (RFC 3339); retention counts from here.
pub const CREATED_AT: &str = "snapferry:created-at";
/// On a copy: the snapshot it was copied from, so a copy that fails can be made again.
pub const COPIED_FROM: &str = "snapferry:copied-from";
/// On a copy: when it was asked for (RFC 3339). RDS leaves `SnapshotCreateTime` out while a
/// snapshot is being made, so this is what times a copy in progress (see
/// [`crate::store::CopyInProgress`]).
pub const COPY_STARTED_AT: &str = "snapferry:copy-started-at";
/// On a copy: which attempt at making it this is (1 when absent).
pub const COPY_ATTEMPT: &str = "snapferry:copy-attempt";
/// On a source snapshot: when the backup account reported its copy and the share was
/// withdrawn; the share step leaves it alone, and an intermediate copy goes a grace period later.
pub const RELEASED_AT: &str = "snapferry:released-at";
/// On a snapshot whose stalled chain reconcile restarted: when (a repair is not repeated
/// within a day).
pub const RECONCILED_AT: &str = "snapferry:reconciled-at";
/// On a verified copy: how long its restore test took to become available, in seconds.
pub const RESTORE_SECONDS: &str = "snapferry:restore-seconds";
/// On a verified copy whose data checks ran: its data recovery point, in seconds (the
/// snapshot's time minus the newest data its restore test found).
pub const DATA_RECOVERY_SECONDS: &str = "snapferry:data-recovery-seconds";
/// On a copy whose restore test failed: when the failure was reported, so a re-check of
/// that test arriving after its restore was deleted ends quietly instead of reporting the
/// failure again as a restore that disappeared.
pub const RESTORE_FAILED_AT: &str = "snapferry:restore-failed-at";
/// On a copy whose restore test failed: why, as reported ("Restore Failed"), cut to a tag
/// value: the copy itself is the record of it when the event is long gone (the report).
pub const RESTORE_FAILURE: &str = "snapferry:restore-failure";
/// On a copy sampled for a restore test (`RESTORE_EVERY_NTH` above 1): when its test
/// started, so the next test is counted from it whatever retention deleted since.
pub const RESTORE_TESTED_AT: &str = "snapferry:restore-tested-at";
/// The backup set a snapshot belongs to (the volumes of one EC2 instance, taken together).
pub const SET: &str = "snapferry:set";
/// How many snapshots that set has.
pub const SET_SIZE: &str = "snapferry:set-size";
/// snapferry's deterministic name of a resource whose id AWS picks (EBS snapshots and
/// test volumes: `snap-...`, `vol-...`).
pub const ID: &str = "snapferry:id";
/// The most members a set may claim: an instance has at most 128 EBS volumes attached
/// (EC2 User Guide, volume_limits); a larger figure in a source's event is refused.
pub const MAX_SET_SIZE: u32 = 128;

/// The tags that record `set` on a snapshot.
pub fn set_tags(set: &crate::events::BackupSet) -> Tags {
    Tags::from([(SET.to_string(), set.id.clone()), (SET_SIZE.to_string(), set.size.to_string())])
}

/// The backup set recorded by [`set_tags`], if the tags hold a well-formed one. Also used
/// on what a source account sends, so an id must look like snapferry's names and a size
/// must be plausible.
pub fn set_from_tags(tags: &Tags) -> Option<crate::events::BackupSet> {
    let set = crate::events::BackupSet {
        id: tags.get(SET)?.clone(),
        size: tags.get(SET_SIZE)?.parse().ok()?,
        verified: None,
    };
    valid_set(&set).then_some(set)
}

/// A set id is one of snapferry's names (`[a-z0-9-]`, at most 255) and its size 1 to [`MAX_SET_SIZE`].
pub fn valid_set(set: &crate::events::BackupSet) -> bool {
    (1..=MAX_SET_SIZE).contains(&set.size)
        && !set.id.is_empty()
        && set.id.len() <= 255
        && set.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// On a verified copy whose data checks ran: what its restore held ([`RestoredFigures`]),
/// which the next copy of its resource is compared with.
pub const RESTORED_DATA: &str = "snapferry:restored-data";
/// On a verified copy whose data fell against the previous good copy of its resource: when
/// that was found ("Restore Suspicious"). Retention keeps the copy before it while this copy
/// is not accepted ([`ACCEPTED_AT`]).
pub const SUSPICIOUS_AT: &str = "snapferry:suspicious-at";
/// On a suspicious copy an operator accepted (`snapferry accept`): when. It counts as a
/// good copy from then on.
pub const ACCEPTED_AT: &str = "snapferry:accepted-at";

/// What a copy's restore held when its data checks ran ([`RESTORED_DATA`]):
/// `tables=12 rows=34567 newest=2026-11-27T09:58:00Z` (`newest=-` where no probe measured
/// the newest data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoredFigures {
    pub tables: u32,
    pub rows: u64,
    pub newest_data_at: Option<DateTime<Utc>>,
}

impl RestoredFigures {
    /// The value of [`RESTORED_DATA`].
    pub fn tag_value(&self) -> String {
        let newest = self.newest_data_at.map_or_else(|| "-".to_string(), timestamp_value);
        format!("tables={} rows={} newest={newest}", self.tables, self.rows)
    }

    /// The figures a copy's tags hold, if [`RESTORED_DATA`] is there and well-formed.
    pub fn from_tags(tags: &Tags) -> Option<RestoredFigures> {
        let mut fields = tags.get(RESTORED_DATA)?.split(' ');
        let mut field = |name: &str| fields.next()?.strip_prefix(name)?.strip_prefix('=');
        let (tables, rows, newest) = (field("tables")?, field("rows")?, field("newest")?);
        let newest_data_at = match newest {
            "-" => None,
            t => Some(parse_timestamp(t)?),
        };
        if fields.next().is_some() {
            return None;
        }
        Some(RestoredFigures { tables: tables.parse().ok()?, rows: rows.parse().ok()?, newest_data_at })
    }
}

/// On a copy: the source database's figures when it was shared (see [`SourceFigures`]), so
/// the restore test can compare against them. One tag of at most 60 characters, not three,
/// since a copy keeps the source's own tags too and AWS allows 50 in all.
pub const SOURCE_DATA: &str = "snapferry:source-data";

/// The most tables a source's figures may claim: far beyond any database's catalogue, so a
/// larger number is a sender's mistake or a lie, not a measurement.
pub const MAX_SOURCE_TABLES: u32 = 1_000_000;
/// The most rows they may claim (10^15).
pub const MAX_SOURCE_ROWS: u64 = 1_000_000_000_000_000;
/// Hex digits of a table list's digest.
pub const DIGEST_LEN: usize = 16;

/// A source database's figures as the backup account keeps them on a copy
/// ([`SOURCE_DATA`]): `tables=12 rows=34567 digest=0123456789abcdef` (spaces, as RDS and EC2
/// refuse a comma in a tag value). Only these three, each checked, whatever the source
/// account sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFigures {
    pub tables: u32,
    pub rows: u64,
    /// [`DIGEST_LEN`] lowercase hex digits.
    pub digest: String,
}

impl SourceFigures {
    /// The figures of a source's event, if they are plausible: counts within bounds, a
    /// digest of [`DIGEST_LEN`] lowercase hex digits.
    pub fn checked(tables: u32, rows: u64, digest: &str) -> Option<SourceFigures> {
        let hex =
            digest.len() == DIGEST_LEN && digest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        (tables <= MAX_SOURCE_TABLES && rows <= MAX_SOURCE_ROWS && hex).then(|| SourceFigures {
            tables,
            rows,
            digest: digest.to_string(),
        })
    }

    pub fn from_event(data: &crate::events::SourceData) -> Option<SourceFigures> {
        Self::checked(data.tables, data.rows, &data.table_digest)
    }

    /// The value of [`SOURCE_DATA`].
    pub fn tag_value(&self) -> String {
        format!("tables={} rows={} digest={}", self.tables, self.rows, self.digest)
    }

    /// The figures a copy's tags hold, if [`SOURCE_DATA`] is there and well-formed.
    pub fn from_tags(tags: &Tags) -> Option<SourceFigures> {
        let value = tags.get(SOURCE_DATA)?;
        let mut fields = value.split(' ');
        let mut field = |name: &str| fields.next()?.strip_prefix(name)?.strip_prefix('=');
        let (tables, rows, digest) = (field("tables")?, field("rows")?, field("digest")?);
        if fields.next().is_some()
            || [tables, rows].iter().any(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        Self::checked(tables.parse().ok()?, rows.parse().ok()?, digest)
    }
}

/// AWS reserves this key prefix; `AddTagsToResource` / `CreateTags` refuse such keys, so
/// they must be dropped when copying a snapshot's tags onto the copy.
const AWS_RESERVED_PREFIX: &str = "aws:";
/// The prefix of every tag snapferry writes.
pub(crate) const OWN_PREFIX: &str = "snapferry:";
/// Most tags RDS and EC2 accept on one resource (RDS User Guide, USER_Tagging; EC2 User
/// Guide, Using_Tags, tag restrictions).
pub const MAX_TAGS: usize = 50;
/// Longest tag value RDS and EC2 accept, in Unicode characters.
pub const MAX_VALUE_CHARS: usize = 256;

/// Where a snapshot came from and which pipeline run made it, as its tags hold it (the
/// steps read and write it typed, through the `lineage` module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineageTags {
    pub source_arn: String,
    pub source_account: String,
    pub correlation_id: String,
    pub step: String,
}

impl LineageTags {
    /// The tags to put on a resource with this lineage, [`MANAGED`] included. Values are
    /// passed through [`sanitize_value`] because a tag request with one bad value fails
    /// as a whole.
    pub fn tags(&self) -> Tags {
        [
            (MANAGED, MANAGED_VALUE),
            (SOURCE_ARN, self.source_arn.as_str()),
            (SOURCE_ACCOUNT, self.source_account.as_str()),
            (CORRELATION_ID, self.correlation_id.as_str()),
            (STEP, self.step.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), sanitize_value(v)))
        .collect()
    }
}

/// Whether the resource carrying `tags` was created by snapferry.
pub fn is_managed(tags: &Tags) -> bool {
    tags.get(MANAGED).is_some_and(|v| v == MANAGED_VALUE)
}

/// `tags` without the AWS-reserved `aws:` keys (any case), ready to put on a copy.
pub fn copyable(tags: &Tags) -> Tags {
    tags.iter().filter(|(k, _)| !has_prefix(k, AWS_RESERVED_PREFIX)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A resource's or a snapshot's own tags, fit to carry onto what snapferry creates: without
/// `aws:` keys, and without `snapferry:` keys, which only snapferry writes (from another
/// account they would be forged: a `snapferry:verified-at` would skip the restore test).
pub fn user_tags(tags: &Tags) -> Tags {
    copyable(tags).into_iter().filter(|(k, _)| !has_prefix(k, OWN_PREFIX)).collect()
}

/// snapferry's tags that a step adds to a snapshot after it is made (the marks of its life,
/// a restore test's figures, what the pipeline's event brings later, a copy made again):
/// room is kept for each, so no later step is refused by AWS's limit of [`MAX_TAGS`].
pub const LATER: [&str; 16] = [
    COPIED_AT,
    VERIFIED_AT,
    RESTORE_SECONDS,
    DATA_RECOVERY_SECONDS,
    RESTORED_DATA,
    SUSPICIOUS_AT,
    ACCEPTED_AT,
    RESTORE_TESTED_AT,
    RESTORE_FAILED_AT,
    RESTORE_FAILURE,
    RELEASED_AT,
    RECONCILED_AT,
    COPY_ATTEMPT,
    SET,
    SET_SIZE,
    SOURCE_DATA,
];

/// How many tags a resource tagged `tags` may hold besides the room kept for the [`LATER`]
/// ones it lacks.
pub fn room(tags: &Tags) -> usize {
    MAX_TAGS - LATER.iter().filter(|k| !tags.contains_key(**k)).count()
}

/// `ours` together with as many of `user` as fit in AWS's limit of [`MAX_TAGS`] per
/// resource less the room kept for snapferry's [`LATER`] tags (ours first, then users' in
/// key order), and the user keys that did not fit: dropped, never a refusal.
pub fn within_limit(user: &Tags, ours: &Tags) -> (Tags, Vec<String>) {
    let mut all = ours.clone();
    let mut dropped = Vec::new();
    let room = room(ours);
    for (k, v) in user.iter().filter(|(k, _)| !ours.contains_key(*k)) {
        if all.len() < room {
            all.insert(k.clone(), v.clone());
        } else {
            dropped.push(k.clone());
        }
    }
    (all, dropped)
}

fn has_prefix(key: &str, prefix: &str) -> bool {
    key.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// The lineage recorded in `tags`, if all of its tags are there.
pub fn lineage_of(tags: &Tags) -> Option<LineageTags> {
    let get = |k: &str| tags.get(k).cloned();
    Some(LineageTags {
        source_arn: get(SOURCE_ARN)?,
        source_account: get(SOURCE_ACCOUNT)?,
        correlation_id: get(CORRELATION_ID)?,
        step: get(STEP)?,
    })
}

/// Characters RDS accepts in a tag value (RDS API reference, `Tag`:
/// `^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$`); EC2 accepts a superset, so one rule fits both.
static DISALLOWED_VALUE_CHARS: LazyLock<Regex> = LazyLock::new(|| {
    // A constant, tested pattern: failing to compile is a bug, not an input error.
    Regex::new(r"[^\p{L}\p{Z}\p{N}_.:/=+\-@]").expect("valid tag value pattern")
});

/// `v` made acceptable as an RDS/EC2 tag value: every disallowed character becomes `_`
/// and the result is cut to [`MAX_VALUE_CHARS`] characters.
pub fn sanitize_value(v: &str) -> String {
    let replaced = DISALLOWED_VALUE_CHARS.replace_all(v, "_");
    replaced.chars().take(MAX_VALUE_CHARS).collect()
}

/// The tag value form of a timestamp (for [`CREATED_AT`], [`VERIFIED_AT`]):
/// RFC 3339, whole seconds, `Z`; only uses allowed characters.
pub fn timestamp_value(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// [`timestamp_value`] to the millisecond, where a second is too coarse: the start of a
/// copy, which times the looks at it ([`COPY_STARTED_AT`]).
pub fn precise_timestamp_value(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A timestamp tag value read back; `None` when it is not one.
pub fn parse_timestamp(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value).ok().map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn lineage() -> LineageTags {
        LineageTags {
            source_arn: "arn:aws:rds:us-east-1:111111111111:snapshot:mydb-1".into(),
            source_account: "111111111111".into(),
            correlation_id: "3f0c7a52-8d1e-4b7f-9c55-0a3c1f2e4d6b".into(),
            step: "copy".into(),
        }
    }

    #[test]
    fn source_figures_round_trip_through_one_valid_tag_and_hostile_ones_are_refused() {
        let figures = SourceFigures::checked(12, 34_567, "0123456789abcdef").unwrap();
        let value = figures.tag_value();
        assert_eq!(value, "tables=12 rows=34567 digest=0123456789abcdef");
        assert_eq!(sanitize_value(&value), value, "only characters RDS and EC2 accept");
        assert!(value.chars().count() <= MAX_VALUE_CHARS);
        let tags = Tags::from([(SOURCE_DATA.to_string(), value)]);
        assert_eq!(SourceFigures::from_tags(&tags), Some(figures));
        let largest = SourceFigures::checked(MAX_SOURCE_TABLES, MAX_SOURCE_ROWS, "ffffffffffffffff").unwrap();
        assert!(largest.tag_value().len() <= 60, "{}", largest.tag_value());

        // What a source account may send: only plausible counts and a hex digest of 16.
        for (tables, rows, digest) in [
            (MAX_SOURCE_TABLES + 1, 1, "0123456789abcdef"),
            (1, MAX_SOURCE_ROWS + 1, "0123456789abcdef"),
            (1, 1, "0123456789ABCDEF"),
            (1, 1, "0123456789abcde"),
            (1, 1, "0123456789abcdef0"),
            (1, 1, "0123456789abcdeg"),
            (1, 1, "01234567 9abcdef"),
            (1, 1, "snapferry:manage"),
        ] {
            assert_eq!(SourceFigures::checked(tables, rows, digest), None, "{tables} {rows} {digest:?}");
        }
        // What a tag may hold: exactly the three fields, in order, digits only.
        for bad in [
            "",
            "tables=12 rows=34567",
            "tables=12 rows=34567 digest=0123456789abcdef extra=1",
            "rows=34567 tables=12 digest=0123456789abcdef",
            "tables=+12 rows=34567 digest=0123456789abcdef",
            "tables=-1 rows=34567 digest=0123456789abcdef",
            "tables= rows=34567 digest=0123456789abcdef",
            "tables=12  rows=34567 digest=0123456789abcdef",
            "tables=99999999999 rows=1 digest=0123456789abcdef",
            "tables=12 rows=34567 digest=0123456789abcdeF",
        ] {
            let tags = Tags::from([(SOURCE_DATA.to_string(), bad.to_string())]);
            assert_eq!(SourceFigures::from_tags(&tags), None, "{bad:?}");
        }
        assert_eq!(SourceFigures::from_tags(&Tags::new()), None);
    }

    #[test]
    fn lineage_round_trips_through_tags() {
        let tags = lineage().tags();
        assert!(is_managed(&tags));
        assert_eq!(tags.len(), 5);
        assert_eq!(tags[SOURCE_ARN], "arn:aws:rds:us-east-1:111111111111:snapshot:mydb-1");
        assert_eq!(lineage_of(&tags), Some(lineage()));
    }

    #[test]
    fn lineage_needs_every_tag() {
        for key in [SOURCE_ARN, SOURCE_ACCOUNT, CORRELATION_ID, STEP] {
            let mut tags = lineage().tags();
            tags.remove(key);
            assert_eq!(lineage_of(&tags), None, "{key}");
        }
    }

    #[test]
    fn managed_means_exactly_true() {
        let mut tags = Tags::new();
        assert!(!is_managed(&tags));
        tags.insert(MANAGED.into(), "TRUE".into());
        assert!(!is_managed(&tags));
        tags.insert(MANAGED.into(), "true".into());
        assert!(is_managed(&tags));
    }

    #[test]
    fn copyable_drops_reserved_keys_only() {
        let tags: Tags = [
            ("aws:backup:source-resource", "x"),
            ("AWS:cloudformation:stack-name", "y"),
            ("awsome", "kept"),
            ("team", "db"),
            (MANAGED, "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let copied = copyable(&tags);
        let kept: Vec<&str> = copied.keys().map(String::as_str).collect();
        assert_eq!(kept, ["awsome", MANAGED, "team"]);
    }

    #[test]
    fn user_tags_drop_what_only_aws_and_snapferry_write() {
        let tags: Tags = [("aws:x", "1"), ("Snapferry:verified-at", "forged"), (VERIFIED_AT, "forged"), ("team", "db")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(user_tags(&tags).keys().collect::<Vec<_>>(), ["team"]);
    }

    #[test]
    fn ours_win_and_the_limit_holds() {
        let user: Tags = (0..60)
            .map(|i| (format!("k{i:02}"), "v".to_owned()))
            .chain([(MANAGED.to_owned(), "no".to_owned())])
            .collect();
        let (all, dropped) = within_limit(&user, &lineage().tags());
        assert_eq!(all.len(), MAX_TAGS - LATER.len(), "room is kept for every tag added later");
        assert_eq!(all[MANAGED], "true", "ours take precedence");
        assert_eq!(dropped.len(), 60 - (MAX_TAGS - LATER.len() - 5));
        let first_dropped = format!("k{:02}", MAX_TAGS - LATER.len() - 5);
        assert_eq!(dropped[0], first_dropped, "users' tags fit in key order: {dropped:?}");
    }

    #[test]
    fn sanitize_keeps_allowed_and_replaces_the_rest() {
        assert_eq!(sanitize_value("arn:aws:rds:x/y=z+1-2@a_b.c d"), "arn:aws:rds:x/y=z+1-2@a_b.c d");
        assert_eq!(sanitize_value("a,b;c\"d\n"), "a_b_c_d_");
        assert_eq!(sanitize_value("Zürich 東京"), "Zürich 東京");
        assert_eq!(sanitize_value(&"é".repeat(300)).chars().count(), MAX_VALUE_CHARS);
    }

    #[test]
    fn restored_figures_round_trip_through_one_tag() {
        let t = Utc.with_ymd_and_hms(2026, 11, 27, 9, 58, 0).unwrap();
        for figures in [
            RestoredFigures { tables: 3, rows: 1200, newest_data_at: Some(t) },
            RestoredFigures { tables: 0, rows: 0, newest_data_at: None },
        ] {
            let value = figures.tag_value();
            assert_eq!(sanitize_value(&value), value, "only characters RDS and EC2 accept");
            let tags = Tags::from([(RESTORED_DATA.to_string(), value)]);
            assert_eq!(RestoredFigures::from_tags(&tags), Some(figures));
        }
        for bad in [
            "tables=3 rows=12",
            "tables=3 rows=x newest=-",
            "tables=3 rows=1 newest=- more",
            "rows=1 tables=3 newest=-",
        ] {
            let tags = Tags::from([(RESTORED_DATA.to_string(), bad.to_string())]);
            assert_eq!(RestoredFigures::from_tags(&tags), None, "{bad}");
        }
    }

    #[test]
    fn timestamps_are_valid_values() {
        let t = Utc.with_ymd_and_hms(2026, 11, 24, 13, 0, 5).unwrap();
        assert_eq!(timestamp_value(t), "2026-11-24T13:00:05Z");
        assert_eq!(sanitize_value(&timestamp_value(t)), timestamp_value(t));
        let precise = t + chrono::Duration::milliseconds(250);
        assert_eq!(precise_timestamp_value(precise), "2026-11-24T13:00:05.250Z");
        assert_eq!(sanitize_value(&precise_timestamp_value(precise)), precise_timestamp_value(precise));
        assert_eq!(parse_timestamp(&precise_timestamp_value(precise)), Some(precise));
    }

    proptest! {
        #[test]
        fn sanitized_values_are_accepted(v in any::<String>()) {
            let s = sanitize_value(&v);
            prop_assert!(s.chars().count() <= MAX_VALUE_CHARS);
            prop_assert!(!DISALLOWED_VALUE_CHARS.is_match(&s));
            prop_assert_eq!(sanitize_value(&s), s.clone());
        }
    }
}

/// The origin snapshot's identity, kept on every copy so a step woken by a native event
/// (which names only the copy) can rebuild the lineage without any other state.
pub const ORIGIN_RESOURCE: &str = "snapferry:origin-resource";
pub const ORIGIN_KEY: &str = "snapferry:origin-key";
pub const ORIGIN_ENCRYPTED: &str = "snapferry:origin-encrypted";
/// When the snapshot the copy was made of was taken, as AWS describes the shared snapshot
/// to the backup account: the restore step's data checks measure freshness against it.
pub const SNAPSHOT_TAKEN_AT: &str = "snapferry:snapshot-taken-at";

/// Tags recording `origin` (together with [`LineageTags::tags`], whose source ARN is the origin's).
pub fn origin_tags(origin: &crate::events::SnapshotRef) -> Tags {
    let mut tags = Tags::new();
    tags.insert(ORIGIN_RESOURCE.into(), sanitize_value(&origin.resource_id));
    tags.insert(ORIGIN_ENCRYPTED.into(), origin.encrypted.to_string());
    if let Some(key) = &origin.kms_key_id {
        tags.insert(ORIGIN_KEY.into(), sanitize_value(key));
    }
    tags
}

/// The origin recorded by [`origin_tags`] and [`LineageTags::tags`] on a copy of kind `kind`.
/// None when the recorded account and the origin's ARN disagree: a lineage written from a
/// forged announcement before the backup account checked origins, which must not send
/// "Snapshot Copied" to an account that never shared the snapshot.
pub fn origin_from_tags(kind: crate::ResourceKind, tags: &Tags) -> Option<crate::events::SnapshotRef> {
    let arn = tags.get(SOURCE_ARN)?;
    let parsed = crate::arn::Arn::parse(arn)?;
    if tags.get(SOURCE_ACCOUNT).is_some_and(|a| a != parsed.account) {
        return None;
    }
    Some(crate::events::SnapshotRef {
        kind,
        arn: arn.clone(),
        id: parsed.name().to_string(),
        account: parsed.account.to_string(),
        region: parsed.region.to_string(),
        resource_id: tags.get(ORIGIN_RESOURCE).cloned().unwrap_or_default(),
        encrypted: tags.get(ORIGIN_ENCRYPTED).is_some_and(|v| v == "true"),
        kms_key_id: tags.get(ORIGIN_KEY).cloned(),
    })
}

#[cfg(test)]
mod origin_tests {
    use super::*;
    use crate::ResourceKind;
    use crate::events::SnapshotRef;

    #[test]
    fn origin_survives_a_round_trip_through_tags() {
        let origin = SnapshotRef {
            kind: ResourceKind::DbCluster,
            arn: "arn:aws:rds:us-east-1:111111111111:cluster-snapshot:rds:orders-2026-11-24-13-00".into(),
            id: "rds:orders-2026-11-24-13-00".into(),
            account: "111111111111".into(),
            region: "us-east-1".into(),
            resource_id: "orders".into(),
            encrypted: true,
            kms_key_id: Some("arn:aws:kms:us-east-1:111111111111:key/abc".into()),
        };
        let lineage = LineageTags {
            source_arn: origin.arn.clone(),
            source_account: origin.account.clone(),
            correlation_id: "c".into(),
            step: "copy".into(),
        };
        let mut tags = lineage.tags();
        tags.extend(origin_tags(&origin));
        assert_eq!(origin_from_tags(ResourceKind::DbCluster, &tags), Some(origin));
        assert_eq!(origin_from_tags(ResourceKind::DbCluster, &Tags::new()), None);
    }
}
