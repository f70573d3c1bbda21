//! snapferry's event contract: the versioned pipeline events, the types other teams
//! consume, and their JSON Schemas. This crate depends on no AWS SDK crate, so it can be
//! published and used on its own; parsing SQS bodies (and AWS's native events) is the
//! `snapferry` crate's `inbound` module, above this one.
//!
//! Our events travel as EventBridge events (`source` = [`SOURCE`]) from one step to the
//! next, and across accounts from the source account's share step to the target account's
//! bus. Their `detail` is one of the types below; JSON Schemas generated from them are
//! committed in `contract/schemas/` for other teams (see [`json_schemas`]).
//!
//! Compatibility rule: within a [`CONTRACT_VERSION`], changes are additive only (new
//! optional fields, new steps); readers ignore unknown fields. Anything else bumps the
//! version, and a step refuses versions it does not know rather
//! than guessing, so the message lands in the DLQ with a readable reason.

use chrono::{DateTime, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

mod schema;
pub use schema::json_schemas;

/// Our EventBridge `source`. Custom sources must not start with `aws.`.
pub const SOURCE: &str = "snapferry";
/// The `version` of every detail type in this module.
pub const CONTRACT_VERSION: u32 = 1;

/// detail-type of the on-demand [`BackupRequest`].
pub const BACKUP_REQUESTED: &str = "Backup Requested";
/// detail-type of the internal delayed [`Recheck`] messages.
pub const RECHECK: &str = "Snapferry Recheck";
/// `source` of EventBridge scheduled-rule events.
pub const SCHEDULE_SOURCE: &str = "aws.events";
/// detail-type of EventBridge scheduled-rule events.
pub const SCHEDULED_EVENT: &str = "Scheduled Event";

/// The detail-types of [`PipelineEvent`]s, one per [`Step`], in pipeline order.
pub const DETAIL_TYPES: &[&str] = &[
    "Snapshot Shared",
    "Snapshot Copy Started",
    "Snapshot Copied",
    "Restore Verified",
    "Restore Failed",
    "Restore Suspicious",
    "Snapshot Rejected",
    "Snapshot Expired",
    "Snapshot Quota Warning",
    "Backup Overdue",
    "Backup Repaired",
];

/// Everything needed to identify a snapshot and the key it is encrypted with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotRef {
    pub kind: ResourceKind,
    /// Full ARN; for EBS the regular form `arn:aws:ec2:<region>:<account>:snapshot/snap-...`.
    pub arn: String,
    /// DB snapshot / DB cluster snapshot identifier, or the EBS `snap-...` id.
    pub id: String,
    /// Account that owns this snapshot.
    pub account: String,
    pub region: String,
    /// What the snapshot is of: DB instance id, DB cluster id or EBS volume id.
    pub resource_id: String,
    pub encrypted: bool,
    /// ARN of the KMS key the snapshot is encrypted with, when encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

/// Snapshots taken together: all volumes of one EC2 instance, crash-consistent, by one
/// multi-volume `CreateSnapshots` call. Every member carries the same correlation id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BackupSet {
    /// The set's deterministic name (the same for every member).
    pub id: String,
    /// How many snapshots the set has.
    pub size: u32,
    /// How many members are verified (in "Restore Verified" only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<u32>,
}

/// The data checks of a restored database: counts and timestamps only, never row data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DataChecked {
    /// The database logged in to.
    pub database: String,
    /// Tables the catalogue lists, and their estimated rows (tables never analysed and too
    /// large to count add none).
    pub tables: u32,
    pub rows: u64,
    /// Checks run, every one passed.
    pub checks: u32,
    /// The newest timestamp a freshness probe returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_date_time_schema")]
    pub newest_data_at: Option<DateTime<Utc>>,
    /// The data recovery point: the snapshot's time minus `newest_data_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_point_seconds: Option<f64>,
    /// The restore against the source database as the share step measured it, where the
    /// source was measured and the comparison is on.
    // Boxed: rare, and every pipeline event would carry its size otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Box<SourceComparison>>,
}

/// The built-in checks' figures of a source database, measured by the share step when it
/// shares a snapshot of it: counts only, never row data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SourceData {
    /// Tables the catalogue lists.
    pub tables: u32,
    /// Their estimated rows, added up.
    pub rows: u64,
    /// The table list's fingerprint: the first 16 hex digits of the SHA-256 of the sorted
    /// table names, one a line, each as the JSON pair `["schema","table"]`.
    pub table_digest: String,
    #[schemars(schema_with = "date_time_schema")]
    pub measured_at: DateTime<Utc>,
}

/// A restored database against its source's figures ([`SourceData`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SourceComparison {
    pub source_tables: u32,
    pub source_rows: u64,
    /// The restore lists the same tables as the source (same count and digest).
    pub same_tables: bool,
    /// The restore's rows against the source's, in percent of the source's (negative: fewer).
    pub row_difference_percent: f64,
    /// How far the rows may differ (the source kept changing after its snapshot).
    pub row_tolerance_percent: f64,
}

/// A data check that failed: its name, what it expected, what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FailedCheck {
    pub name: String,
    pub expected: String,
    pub actual: String,
}

/// One hop of the pipeline: what happened to `snapshot`, in the run `correlation_id` that
/// started from `origin`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PipelineEvent {
    /// Contract version of this detail; readers refuse versions they do not know.
    #[schemars(schema_with = "version_schema")]
    pub version: u32,
    /// Same for every event of one pipeline run, across accounts; also tagged on resources.
    pub correlation_id: String,
    /// When the step emitted this event (RFC 3339, UTC).
    #[schemars(schema_with = "date_time_schema")]
    pub emitted_at: DateTime<Utc>,
    /// The snapshot this hop is about (the shared snapshot, the copy, ...).
    pub snapshot: SnapshotRef,
    /// The original snapshot in the source account: the lineage every hop keeps.
    pub origin: SnapshotRef,
    #[serde(flatten)]
    pub step: Step,
}

/// What happened, with the data specific to it. Serialized as a `step` field next to the
/// other [`PipelineEvent`] fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// The source account shared `snapshot` with `target_account` (sent to its bus).
    Shared {
        target_account: String,
        /// The source snapshot's own tags (`aws:` ones removed): the backup account cannot
        /// read tags of another account's snapshot, and copies keep them.
        #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        tags: std::collections::BTreeMap<String, String>,
        /// The backup set `snapshot` belongs to (the volumes of one EC2 instance,
        /// snapshotted together), as the source account says: it only groups reports.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        set: Option<BackupSet>,
        /// The source database's figures when it was shared, where the source account
        /// measures them (`SOURCE_DATA_CHECKS`); the restore test compares against them.
        // Boxed: absent from most events, which would all carry its size otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source_data: Option<Box<SourceData>>,
    },
    /// The target account started copying into `destination_region`.
    CopyStarted { destination_region: String },
    /// The copy `snapshot` is available.
    Copied {
        /// The snapshot the backup account copied it from, as it named it to AWS in the copy
        /// call (a home copy: the source's shared snapshot). The source withdraws the share
        /// of this snapshot only, and only when it is its own and shared with the sender.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        copied_from: Option<String>,
    },
    /// A test restore of `snapshot` came up and passed verification.
    RestoreVerified {
        /// From the restore call to the restored resource being available.
        restore_seconds: f64,
        /// The DB instance / cluster id or EBS volume id of the (since deleted) test restore.
        restored_resource_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        engine: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        engine_version: Option<String>,
        /// EBS: size of the test volume, which must be the snapshot's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size_gib: Option<i32>,
        /// EBS: the copy is locked (EBS Snapshot Lock) until then.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(schema_with = "optional_date_time_schema")]
        locked_until: Option<DateTime<Utc>>,
        /// EBS: why the configured lock could not be set (the copy is verified, not locked).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lock_error: Option<String>,
        /// The copy's backup set, with how many of its members are verified now: the set is
        /// verified when `verified` reaches `size`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        set: Option<BackupSet>,
        /// What the data checks found in the restored database, where they ran.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<DataChecked>,
    },
    /// The test restore of `snapshot` failed; `check` names the data check that failed,
    /// when that is why.
    RestoreFailed {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        check: Option<FailedCheck>,
    },
    /// The copy `snapshot` restored and passed its checks, but its data fell against the
    /// previous verified copy of its resource, `previous` (a table gone, most rows gone, its
    /// newest data older): a backup made after ransomware or a bad migration. It is not its
    /// resource's newest verified copy for retention, which keeps `previous` until an
    /// operator accepts it.
    RestoreSuspicious {
        /// What fell, one finding each: `tables: 3 -> 2`, `rows: 50 -> 5 (-90%)`.
        findings: Vec<String>,
        previous: SnapshotRef,
    },
    /// `snapshot` does not go on, for `reason`: the backup account refused it (unknown
    /// sender, foreign owner, ...), or AWS did (a full snapshot quota, a copy that failed
    /// every attempt, copy slots that stayed full past the wait).
    Rejected {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sender_account: Option<String>,
    },
    /// The account's manual snapshot quota `quota` is `used` of `max` full, past the
    /// warning threshold; `snapshot` is snapferry's newest snapshot counting against it.
    QuotaWarning { quota: String, used: u64, max: u64 },
    /// No backup of `snapshot`'s resource (its newest snapshot or copy, or the resource
    /// itself when there is none) is as recent as it must be: the dead-man's switch.
    Overdue {
        /// When the newest one was taken (none when there is none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(schema_with = "optional_date_time_schema")]
        last: Option<DateTime<Utc>>,
        /// The age it may have, in minutes.
        limit_minutes: u64,
    },
    /// A backup whose chain stalled at `stalled_at` was restarted there.
    Repaired { stalled_at: String },
    /// `snapshot` was deleted by retention (or, with `dry_run`, would have been).
    Expired {
        /// The rule that no longer keeps it, or why it went (an intermediate copy whose
        /// backup copy exists).
        #[serde(default)]
        rule: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        dry_run: bool,
    },
}

impl Step {
    /// The EventBridge detail-type this step is published under (one of [`DETAIL_TYPES`]).
    pub fn detail_type(&self) -> &'static str {
        match self {
            Step::Shared { .. } => "Snapshot Shared",
            Step::CopyStarted { .. } => "Snapshot Copy Started",
            Step::Copied { .. } => "Snapshot Copied",
            Step::RestoreVerified { .. } => "Restore Verified",
            Step::RestoreFailed { .. } => "Restore Failed",
            Step::RestoreSuspicious { .. } => "Restore Suspicious",
            Step::Rejected { .. } => "Snapshot Rejected",
            Step::Expired { .. } => "Snapshot Expired",
            Step::QuotaWarning { .. } => "Snapshot Quota Warning",
            Step::Overdue { .. } => "Backup Overdue",
            Step::Repaired { .. } => "Backup Repaired",
        }
    }
}

impl PipelineEvent {
    /// The first event of a run (or of a hop that starts one): current version, now.
    pub fn new(correlation_id: impl Into<String>, snapshot: SnapshotRef, origin: SnapshotRef, step: Step) -> Self {
        PipelineEvent {
            version: CONTRACT_VERSION,
            correlation_id: correlation_id.into(),
            emitted_at: Utc::now(),
            snapshot,
            origin,
            step,
        }
    }

    /// The next event of the same run: same correlation id and origin.
    pub fn next(&self, snapshot: SnapshotRef, step: Step) -> Self {
        PipelineEvent::new(self.correlation_id.clone(), snapshot, self.origin.clone(), step)
    }

    /// The detail-type to publish this event under.
    pub fn detail_type(&self) -> &'static str {
        self.step.detail_type()
    }
}

/// A fresh correlation id for a new pipeline run.
pub fn new_correlation_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The on-demand "Backup Requested" event: snapshot these resources now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BackupRequest {
    /// Contract version of this detail; readers refuse versions they do not know.
    #[schemars(schema_with = "version_schema")]
    pub version: u32,
    /// Set to join the run to an outer process; a new one is made when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Restrict to one kind; all configured kinds when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ResourceKind>,
    /// DB instance ids, DB cluster ids or volume ids; every configured resource when empty.
    #[serde(default)]
    pub identifiers: Vec<String>,
}

impl BackupRequest {
    /// A request at the current version, without a correlation id.
    pub fn new(kind: Option<ResourceKind>, identifiers: Vec<String>) -> Self {
        BackupRequest { version: CONTRACT_VERSION, correlation_id: None, kind, identifiers }
    }
}

/// An internal delayed re-check a step sends to its own SQS queue, because AWS sends no
/// (reliable) event when the thing it waits for is done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Recheck {
    /// Contract version of this detail; readers refuse versions they do not know.
    #[schemars(schema_with = "version_schema")]
    pub version: u32,
    pub correlation_id: String,
    /// 1 for the first re-check; the step gives up (and reports) past its limit.
    pub attempt: u32,
    /// Do not act before this time (SQS delays at most 900 s; longer waits re-queue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_date_time_schema")]
    pub not_before: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub what: RecheckWhat,
}

/// What to re-check. Serialized as a `recheck` field next to the other [`Recheck`] fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "recheck", rename_all = "kebab-case")]
pub enum RecheckWhat {
    /// Share `copy` (the re-encrypted / manual copy of `origin`) once it is available.
    ShareWhenAvailable { copy: SnapshotRef, origin: SnapshotRef },
    /// Report `copy` in `destination_region` once it is available (cluster copies send
    /// no event).
    CopyWhenAvailable { copy: SnapshotRef, origin: SnapshotRef, destination_region: String },
    /// Copy `copy` (the home region's available copy of `origin`) into
    /// `destination_region`. Each extra region is a message of its own, so a region that
    /// fails holds up neither the home copy nor the other regions.
    CopyToRegion { copy: SnapshotRef, origin: SnapshotRef, destination_region: String },
    /// Go on expiring from `unit` (an index into the step's kinds x regions): the previous
    /// invocation used up its time or deletion budget.
    ExpireFrom { unit: u32 },
    /// Check the test restore `restored_resource_id` of `copy`, started at `started_at`.
    RestoreProgress {
        copy: SnapshotRef,
        origin: SnapshotRef,
        restored_resource_id: String,
        #[schemars(schema_with = "date_time_schema")]
        started_at: DateTime<Utc>,
    },
}

impl RecheckWhat {
    /// The snapshot the run started from, where the re-check is about one run.
    pub fn origin(&self) -> Option<&SnapshotRef> {
        match self {
            RecheckWhat::ShareWhenAvailable { origin, .. }
            | RecheckWhat::CopyWhenAvailable { origin, .. }
            | RecheckWhat::CopyToRegion { origin, .. }
            | RecheckWhat::RestoreProgress { origin, .. } => Some(origin),
            RecheckWhat::ExpireFrom { .. } => None,
        }
    }
}

impl Recheck {
    /// A re-check at the current version.
    pub fn new(
        correlation_id: impl Into<String>,
        attempt: u32,
        not_before: Option<DateTime<Utc>>,
        what: RecheckWhat,
    ) -> Self {
        Recheck { version: CONTRACT_VERSION, correlation_id: correlation_id.into(), attempt, not_before, what }
    }

    /// This re-check wrapped in an envelope, ready to serialize as an SQS body that
    /// the `snapferry` crate's inbound parser reads back as a re-check.
    pub fn into_envelope(self) -> EventEnvelope<Recheck> {
        EventEnvelope::new(SOURCE, RECHECK, self)
    }
}

/// The EventBridge envelope, as it arrives in an SQS body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventEnvelope<D> {
    /// Envelope version, `"0"` for every EventBridge event.
    pub version: String,
    pub id: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    /// Absent in some emulators' deliveries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_date_time_schema")]
    pub time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    pub detail: D,
}

impl<D> EventEnvelope<D> {
    /// An envelope for a message we send ourselves (re-checks straight to SQS, tests): a
    /// fresh id, the current time, no account/region (the receiver does not need them).
    pub fn new(source: impl Into<String>, detail_type: impl Into<String>, detail: D) -> Self {
        EventEnvelope {
            version: "0".to_owned(),
            id: uuid::Uuid::new_v4().to_string(),
            detail_type: detail_type.into(),
            source: source.into(),
            account: None,
            time: Some(Utc::now()),
            region: None,
            resources: Vec::new(),
            detail,
        }
    }
}

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

/// Each schema file is for one contract version, so `version` is a constant in it.
fn version_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "integer", "const": CONTRACT_VERSION })
}

fn date_time_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "format": "date-time" })
}

fn optional_date_time_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": ["string", "null"], "format": "date-time" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_describe_the_wire_format() {
        let schemas = json_schemas();
        assert_eq!(schemas.len(), 3);
        for (name, text) in &schemas {
            assert!(text.ends_with("}\n"), "{name}");
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            assert!(v["$schema"].is_string(), "{name}");
            // Keys sorted whatever serde_json's features: "$defs" < "$schema" < "type".
            let at = |key: &str| text.find(&format!("\n  \"{key}\"")).unwrap();
            assert!(at("$defs") < at("$schema") && at("$schema") < at("type"), "{name}");
        }
        let pipeline = &schemas[0].1;
        for needle in ["\"copy-started\"", "\"restore-verified\"", "\"date-time\"", "\"db-cluster\""] {
            assert!(pipeline.contains(needle), "pipeline schema lacks {needle}");
        }
    }
}
