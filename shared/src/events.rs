//! The versioned pipeline event contract, and the one parser every step runs on an SQS body.
//!
//! Our events travel as EventBridge events (`source` = [`SOURCE`]) from one step to the
//! next, and across accounts from the source account's share step to the target account's
//! bus. Their `detail` is one of the types below; JSON Schemas generated from them are
//! committed in `shared/schemas/` for other teams (see [`json_schemas`]).
//!
//! Compatibility rule: within a [`CONTRACT_VERSION`], changes are additive only (new
//! optional fields, new steps); readers ignore unknown fields. Anything else bumps the
//! version, and a step refuses versions it does not know (see [`parse_message`]) rather
//! than guessing, so the message lands in the DLQ with a readable reason.

use chrono::{DateTime, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::ResourceKind;
use crate::native::{self, NativeEvent};

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
    "Snapshot Rejected",
    "Snapshot Expired",
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
    },
    /// The target account started copying into `destination_region`.
    CopyStarted { destination_region: String },
    /// The copy `snapshot` is available.
    Copied {},
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
    },
    /// The test restore of `snapshot` failed.
    RestoreFailed { reason: String },
    /// The target account refused a shared snapshot (unknown sender, wrong key, ...).
    Rejected {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sender_account: Option<String>,
    },
    /// `snapshot` was deleted by retention.
    Expired {},
}

impl Step {
    /// The EventBridge detail-type this step is published under (one of [`DETAIL_TYPES`]).
    pub fn detail_type(&self) -> &'static str {
        match self {
            Step::Shared { .. } => "Snapshot Shared",
            Step::CopyStarted { .. } => "Snapshot Copy Started",
            Step::Copied {} => "Snapshot Copied",
            Step::RestoreVerified { .. } => "Restore Verified",
            Step::RestoreFailed { .. } => "Restore Failed",
            Step::Rejected { .. } => "Snapshot Rejected",
            Step::Expired {} => "Snapshot Expired",
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
    /// Check the test restore `restored_resource_id` of `copy`, started at `started_at`.
    RestoreProgress {
        copy: SnapshotRef,
        origin: SnapshotRef,
        restored_resource_id: String,
        #[schemars(schema_with = "date_time_schema")]
        started_at: DateTime<Utc>,
    },
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
    /// [`parse_message`] reads back as [`Incoming::Recheck`].
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

/// One SQS body, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// One of our [`DETAIL_TYPES`].
    Pipeline(EventEnvelope<PipelineEvent>),
    BackupRequested(EventEnvelope<BackupRequest>),
    Recheck(EventEnvelope<Recheck>),
    /// An EventBridge scheduled rule fired (`aws.events`, "Scheduled Event").
    Schedule(EventEnvelope<Value>),
    /// An `aws.rds` / `aws.ec2` snapshot event.
    Native(NativeEvent),
}

impl Incoming {
    /// The EventBridge event id, for logs.
    pub fn event_id(&self) -> &str {
        match self {
            Incoming::Pipeline(e) => &e.id,
            Incoming::BackupRequested(e) => &e.id,
            Incoming::Recheck(e) => &e.id,
            Incoming::Schedule(e) => &e.id,
            Incoming::Native(e) => &e.id,
        }
    }

    /// What the message is, for errors and logs: `detail-type (id)`.
    pub fn describe(&self) -> String {
        let detail_type = match self {
            Incoming::Pipeline(e) => e.detail_type.as_str(),
            Incoming::BackupRequested(e) => e.detail_type.as_str(),
            Incoming::Recheck(e) => e.detail_type.as_str(),
            Incoming::Schedule(e) => e.detail_type.as_str(),
            Incoming::Native(e) => e.detail_type.as_str(),
        };
        format!("{detail_type:?} event {}", self.event_id())
    }

    /// The pipeline run this message belongs to, when it names one; every log line of a
    /// step carries it.
    pub fn correlation_id(&self) -> Option<&str> {
        match self {
            Incoming::Pipeline(e) => Some(&e.detail.correlation_id),
            Incoming::BackupRequested(e) => e.detail.correlation_id.as_deref(),
            Incoming::Recheck(e) => Some(&e.detail.correlation_id),
            Incoming::Schedule(_) | Incoming::Native(_) => None,
        }
    }
}

/// Why an SQS body is not a message snapferry understands. The `Display` text is what
/// operators read next to the message in the DLQ, so it names the problem precisely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("message body is not JSON: {0}")]
    NotJson(String),
    #[error("message body is not an EventBridge event: expected a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    #[error("field `{field}` must be {expected}, got {got}")]
    WrongType { field: &'static str, expected: &'static str, got: String },
    #[error("unknown source/detail-type \"{event_source}\"/\"{detail_type}\"")]
    UnknownEvent { event_source: String, detail_type: String },
    #[error(
        "unsupported contract version {version} in \"{detail_type}\" (this build reads version {CONTRACT_VERSION})"
    )]
    UnsupportedVersion { detail_type: String, version: String },
    #[error("invalid envelope: {0}")]
    InvalidEnvelope(String),
    #[error("invalid detail of \"{detail_type}\": {reason}")]
    InvalidDetail { detail_type: String, reason: String },
    #[error("detail-type \"{detail_type}\" does not match step \"{step}\" (expected detail-type \"{expected}\")")]
    StepMismatch { detail_type: String, step: String, expected: &'static str },
}

/// Turns one SQS body into exactly one [`Incoming`] message, or says why it cannot.
///
/// Checks, in order: JSON; an object; `source` and `detail-type` strings; `detail`
/// present; a known (source, detail-type); for our own events, a `detail.version` equal
/// to [`CONTRACT_VERSION`]; then the envelope and the detail against their types; for
/// pipeline events, that the detail's `step` matches the detail-type. Never panics.
pub fn parse_message(body: &str) -> Result<Incoming, ParseError> {
    let value: Value = serde_json::from_str(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    let Value::Object(object) = &value else {
        return Err(ParseError::NotAnObject(json_type(&value)));
    };
    let source = string_field(object, "source")?.to_owned();
    let detail_type = string_field(object, "detail-type")?.to_owned();
    let detail = object.get("detail").ok_or(ParseError::MissingField("detail"))?;

    match (source.as_str(), detail_type.as_str()) {
        (SOURCE, BACKUP_REQUESTED) => {
            check_version(detail, &detail_type)?;
            typed(value, &detail_type).map(Incoming::BackupRequested)
        }
        (SOURCE, RECHECK) => {
            check_version(detail, &detail_type)?;
            typed(value, &detail_type).map(Incoming::Recheck)
        }
        (SOURCE, dt) if DETAIL_TYPES.contains(&dt) => {
            check_version(detail, &detail_type)?;
            let envelope: EventEnvelope<PipelineEvent> = typed(value, &detail_type)?;
            let expected = envelope.detail.step.detail_type();
            if expected != envelope.detail_type {
                return Err(ParseError::StepMismatch {
                    step: step_name(&envelope.detail.step),
                    detail_type: envelope.detail_type,
                    expected,
                });
            }
            Ok(Incoming::Pipeline(envelope))
        }
        (SCHEDULE_SOURCE, SCHEDULED_EVENT) => typed(value, &detail_type).map(Incoming::Schedule),
        (src, dt) if native::is_native(src, dt) => {
            let envelope: EventEnvelope<Value> = typed(value, &detail_type)?;
            NativeEvent::from_envelope(envelope).map(Incoming::Native)
        }
        _ => Err(ParseError::UnknownEvent { event_source: source, detail_type }),
    }
}

fn string_field<'a>(object: &'a serde_json::Map<String, Value>, field: &'static str) -> Result<&'a str, ParseError> {
    match object.get(field) {
        None => Err(ParseError::MissingField(field)),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(ParseError::WrongType { field, expected: "a string", got: json_type(other).to_owned() }),
    }
}

fn check_version(detail: &Value, detail_type: &str) -> Result<(), ParseError> {
    let Value::Object(detail) = detail else {
        return Err(ParseError::WrongType {
            field: "detail",
            expected: "an object",
            got: json_type(detail).to_owned(),
        });
    };
    match detail.get("version") {
        None => Err(ParseError::MissingField("detail.version")),
        Some(Value::Number(n)) if n.as_u64() == Some(u64::from(CONTRACT_VERSION)) => Ok(()),
        Some(Value::Number(n)) => {
            Err(ParseError::UnsupportedVersion { detail_type: detail_type.to_owned(), version: n.to_string() })
        }
        Some(other) => Err(ParseError::WrongType {
            field: "detail.version",
            expected: "a number",
            got: json_type(other).to_owned(),
        }),
    }
}

/// Deserializes the envelope first, then the detail, so the error says which one is wrong.
fn typed<D: DeserializeOwned>(value: Value, detail_type: &str) -> Result<EventEnvelope<D>, ParseError> {
    let envelope: EventEnvelope<Value> =
        serde_json::from_value(value).map_err(|e| ParseError::InvalidEnvelope(e.to_string()))?;
    let detail = D::deserialize(&envelope.detail)
        .map_err(|e| ParseError::InvalidDetail { detail_type: detail_type.to_owned(), reason: e.to_string() })?;
    Ok(EventEnvelope {
        version: envelope.version,
        id: envelope.id,
        detail_type: envelope.detail_type,
        source: envelope.source,
        account: envelope.account,
        time: envelope.time,
        region: envelope.region,
        resources: envelope.resources,
        detail,
    })
}

fn step_name(step: &Step) -> String {
    serde_json::to_value(step)
        .ok()
        .and_then(|v| v.get("step").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default()
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
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

/// The committed JSON Schemas: `(file name in shared/schemas/, pretty JSON with a trailing
/// newline)`. The `schemas` integration test keeps the files equal to this.
///
/// Object keys are sorted: whether serde_json keeps insertion order depends on its
/// `preserve_order` feature, which any crate in the build may switch on, and the files
/// must not change with what else happens to be compiled.
pub fn json_schemas() -> Vec<(&'static str, String)> {
    let render = |schema: Schema| {
        let value = canonical(schema.to_value());
        // Serializing a `Value` to a string cannot fail.
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        text
    };
    vec![
        ("pipeline-event.v1.json", render(schemars::schema_for!(PipelineEvent))),
        ("backup-request.v1.json", render(schemars::schema_for!(BackupRequest))),
        ("recheck.v1.json", render(schemars::schema_for!(Recheck))),
    ]
}

/// `value` with the keys of every object in sorted order (arrays keep theirs).
fn canonical(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, canonical(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use serde_json::json;

    fn snapshot(id: &str, account: &str) -> SnapshotRef {
        SnapshotRef {
            kind: ResourceKind::DbInstance,
            arn: format!("arn:aws:rds:us-east-1:{account}:snapshot:{id}"),
            id: id.to_owned(),
            account: account.to_owned(),
            region: "us-east-1".to_owned(),
            resource_id: "mydb".to_owned(),
            encrypted: true,
            kms_key_id: Some(format!("arn:aws:kms:us-east-1:{account}:key/1234abcd-12ab-34cd-56ef-1234567890ab")),
        }
    }

    fn all_steps() -> Vec<Step> {
        vec![
            Step::Shared { target_account: "222222222222".into(), tags: Default::default() },
            Step::CopyStarted { destination_region: "eu-west-1".into() },
            Step::Copied {},
            Step::RestoreVerified {
                restore_seconds: 312.5,
                restored_resource_id: "snapferry-restore-mydb-1a2b3c4d".into(),
                engine: Some("postgres".into()),
                engine_version: None,
            },
            Step::RestoreFailed { reason: "restore timed out".into() },
            Step::Rejected { reason: "sender not allowed".into(), sender_account: Some("222222222222".into()) },
            Step::Expired {},
        ]
    }

    fn event(step: Step) -> PipelineEvent {
        PipelineEvent::new(
            "3f0c7a52-8d1e-4b7f-9c55-0a3c1f2e4d6b",
            snapshot("snapferry-shared-mydb-1", "111111111111"),
            snapshot("mydb-1", "111111111111"),
            step,
        )
    }

    fn body<D: Serialize>(envelope: &EventEnvelope<D>) -> String {
        serde_json::to_string(envelope).unwrap()
    }

    #[test]
    fn detail_types_cover_every_step_once() {
        let got: Vec<&str> = all_steps().iter().map(Step::detail_type).collect();
        assert_eq!(got, DETAIL_TYPES);
    }

    #[test]
    fn pipeline_events_round_trip() {
        for step in all_steps() {
            let e = event(step);
            let envelope = EventEnvelope::new(SOURCE, e.detail_type(), e.clone());
            match parse_message(&body(&envelope)) {
                Ok(Incoming::Pipeline(got)) => assert_eq!(got, envelope),
                other => panic!("{}: {other:?}", e.detail_type()),
            }
        }
    }

    #[test]
    fn wire_shape_is_flat() {
        let e = event(Step::Shared { target_account: "222222222222".into(), tags: Default::default() });
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["step"], "shared");
        assert_eq!(v["target_account"], "222222222222");
        assert_eq!(v["version"], 1);
        assert_eq!(v["snapshot"]["kind"], "db-instance");
        let copied = serde_json::to_value(event(Step::Copied {})).unwrap();
        assert_eq!(copied["step"], "copied");
        let mut keys: Vec<&str> = copied.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["correlation_id", "emitted_at", "origin", "snapshot", "step", "version"]);
    }

    #[test]
    fn next_keeps_run_and_origin() {
        let first = event(Step::Shared { target_account: "222222222222".into(), tags: Default::default() });
        let copy = snapshot("snapferry-copy-mydb-1", "222222222222");
        let second = first.next(copy.clone(), Step::Copied {});
        assert_eq!(second.correlation_id, first.correlation_id);
        assert_eq!(second.origin, first.origin);
        assert_eq!(second.snapshot, copy);
        assert_eq!(second.version, CONTRACT_VERSION);
        assert_eq!(second.detail_type(), "Snapshot Copied");
    }

    #[test]
    fn recheck_round_trips() {
        let started = Utc.with_ymd_and_hms(2026, 11, 24, 13, 0, 0).unwrap();
        let whats = [
            RecheckWhat::ShareWhenAvailable { copy: snapshot("a", "1"), origin: snapshot("b", "1") },
            RecheckWhat::CopyWhenAvailable {
                copy: snapshot("a", "2"),
                origin: snapshot("b", "1"),
                destination_region: "eu-west-1".into(),
            },
            RecheckWhat::RestoreProgress {
                copy: snapshot("a", "2"),
                origin: snapshot("b", "1"),
                restored_resource_id: "snapferry-restore-a".into(),
                started_at: started,
            },
        ];
        for what in whats {
            let envelope = Recheck::new("corr", 2, Some(started), what).into_envelope();
            let parsed = parse_message(&body(&envelope));
            assert_eq!(parsed.as_ref().ok().and_then(Incoming::correlation_id), Some("corr"));
            match parsed {
                Ok(Incoming::Recheck(got)) => assert_eq!(got, envelope),
                other => panic!("{other:?}"),
            }
        }
        let v = serde_json::to_value(Recheck::new(
            "c",
            1,
            None,
            RecheckWhat::ShareWhenAvailable { copy: snapshot("a", "1"), origin: snapshot("b", "1") },
        ))
        .unwrap();
        assert_eq!(v["recheck"], "share-when-available");
        assert!(v.get("not_before").is_none());
    }

    #[test]
    fn backup_request_minimal_and_full() {
        let minimal = json!({
            "version": "0", "id": "1", "detail-type": "Backup Requested", "source": "snapferry",
            "detail": {"version": 1}
        });
        let Ok(Incoming::BackupRequested(e)) = parse_message(&minimal.to_string()) else {
            panic!("minimal backup request rejected")
        };
        assert_eq!(e.detail, BackupRequest { version: 1, correlation_id: None, kind: None, identifiers: vec![] });
        assert_eq!(e.detail, BackupRequest::new(None, vec![]));
        let full = BackupRequest {
            correlation_id: Some("c".into()),
            ..BackupRequest::new(Some(ResourceKind::Ebs), vec!["vol-0123".into()])
        };
        let envelope = EventEnvelope::new(SOURCE, BACKUP_REQUESTED, full);
        let parsed = parse_message(&body(&envelope));
        assert_eq!(parsed.as_ref().ok().and_then(Incoming::correlation_id), Some("c"));
        assert_eq!(parsed.as_ref().map(Incoming::event_id), Ok(envelope.id.as_str()));
        assert_eq!(parsed, Ok(Incoming::BackupRequested(envelope)));
    }

    #[test]
    fn scheduled_event() {
        // Shape from the EventBridge User Guide, scheduled rule events.
        let body = json!({
            "version": "0",
            "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "111111111111",
            "time": "2026-11-24T13:00:00Z",
            "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:111111111111:rule/snapferry-schedule"],
            "detail": {}
        });
        let Ok(Incoming::Schedule(e)) = parse_message(&body.to_string()) else { panic!() };
        assert_eq!(e.time, Some(Utc.with_ymd_and_hms(2026, 11, 24, 13, 0, 0).unwrap()));
        assert_eq!(e.resources.len(), 1);
    }

    #[test]
    fn envelope_without_account_is_accepted() {
        let e = event(Step::Copied {});
        let mut v = serde_json::to_value(EventEnvelope::new(SOURCE, "Snapshot Copied", e)).unwrap();
        v.as_object_mut().unwrap().remove("account");
        v.as_object_mut().unwrap().remove("time");
        assert!(matches!(parse_message(&v.to_string()), Ok(Incoming::Pipeline(_))));
    }

    fn err(body: &str) -> String {
        match parse_message(body) {
            Err(e) => e.to_string(),
            Ok(m) => panic!("accepted {body}: {m:?}"),
        }
    }

    fn pipeline_body(detail_type: &str, detail: Value) -> String {
        json!({"version": "0", "id": "1", "detail-type": detail_type, "source": "snapferry", "detail": detail})
            .to_string()
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(err("not json").starts_with("message body is not JSON"));
        assert!(err("[1]").contains("expected a JSON object, got an array"));
        assert_eq!(err(r#"{"detail-type": "x", "detail": {}}"#), "missing field `source`");
        assert_eq!(err(r#"{"source": "x", "detail": {}}"#), "missing field `detail-type`");
        assert_eq!(err(r#"{"source": 1, "detail-type": "x"}"#), "field `source` must be a string, got a number");
        assert_eq!(err(r#"{"source": "snapferry", "detail-type": "Snapshot Copied"}"#), "missing field `detail`");
        assert_eq!(
            err(r#"{"source": "acme", "detail-type": "Thing Happened", "detail": {}}"#),
            r#"unknown source/detail-type "acme"/"Thing Happened""#
        );
        assert_eq!(
            err(r#"{"source": "aws.rds", "detail-type": "RDS DB Instance Event", "detail": {}}"#),
            r#"unknown source/detail-type "aws.rds"/"RDS DB Instance Event""#
        );
    }

    #[test]
    fn version_is_checked_before_shape() {
        assert_eq!(
            err(&pipeline_body("Snapshot Copied", json!({"version": 2}))),
            r#"unsupported contract version 2 in "Snapshot Copied" (this build reads version 1)"#
        );
        assert_eq!(err(&pipeline_body("Snapshot Copied", json!({}))), "missing field `detail.version`");
        assert_eq!(
            err(&pipeline_body("Snapshot Copied", json!({"version": "1"}))),
            "field `detail.version` must be a number, got a string"
        );
        assert_eq!(
            err(&pipeline_body("Snapshot Copied", json!("x"))),
            "field `detail` must be an object, got a string"
        );
        assert!(
            err(&pipeline_body("Snapshot Copied", json!({"version": 1.5})))
                .contains("unsupported contract version 1.5")
        );
    }

    #[test]
    fn missing_detail_field_is_named() {
        let mut detail = serde_json::to_value(event(Step::Copied {})).unwrap();
        detail.as_object_mut().unwrap().remove("origin");
        let e = err(&pipeline_body("Snapshot Copied", detail));
        assert!(e.starts_with(r#"invalid detail of "Snapshot Copied""#), "{e}");
        assert!(e.contains("missing field `origin`"), "{e}");
    }

    #[test]
    fn missing_envelope_id_is_named() {
        let e = err(r#"{"version": "0", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}"#);
        assert!(e.starts_with("invalid envelope") && e.contains("missing field `id`"), "{e}");
    }

    #[test]
    fn step_must_match_detail_type() {
        let detail = serde_json::to_value(event(Step::Copied {})).unwrap();
        assert_eq!(
            err(&pipeline_body("Snapshot Expired", detail)),
            r#"detail-type "Snapshot Expired" does not match step "copied" (expected detail-type "Snapshot Copied")"#
        );
    }

    #[test]
    fn unknown_fields_are_ignored_within_a_version() {
        let mut detail = serde_json::to_value(event(Step::Copied {})).unwrap();
        detail["added_later"] = json!({"x": 1});
        assert!(matches!(parse_message(&pipeline_body("Snapshot Copied", detail)), Ok(Incoming::Pipeline(_))));
    }

    #[test]
    fn schemas_describe_the_wire_format() {
        let schemas = json_schemas();
        assert_eq!(schemas.len(), 3);
        for (name, text) in &schemas {
            assert!(text.ends_with("}\n"), "{name}");
            let v: Value = serde_json::from_str(text).unwrap();
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

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".*".prop_map(Value::from),
            prop::sample::select(vec!["snapferry", "aws.rds", "aws.ec2", "aws.events", "1", "0"]).prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
                prop::collection::btree_map(
                    prop::sample::select(vec![
                        "version",
                        "id",
                        "source",
                        "detail-type",
                        "detail",
                        "step",
                        "snapshot",
                        "origin",
                        "EventID",
                        "SourceArn",
                        "event",
                        "result",
                        "snapshot_id",
                        "recheck",
                        "x",
                    ])
                    .prop_map(str::to_owned),
                    inner,
                    0..8
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn arb_envelope() -> impl Strategy<Value = Value> {
        let known = prop::sample::select(vec![
            ("snapferry", "Snapshot Shared"),
            ("snapferry", "Snapshot Copied"),
            ("snapferry", "Restore Verified"),
            ("snapferry", BACKUP_REQUESTED),
            ("snapferry", RECHECK),
            ("aws.events", SCHEDULED_EVENT),
            ("aws.rds", "RDS DB Snapshot Event"),
            ("aws.rds", "RDS DB Cluster Snapshot Event"),
            ("aws.ec2", "EBS Snapshot Notification"),
        ]);
        (known, arb_json(), any::<bool>()).prop_map(|((source, dt), detail, with_version)| {
            let mut detail = detail;
            if with_version && let Value::Object(m) = &mut detail {
                m.insert("version".into(), json!(1));
            }
            json!({"version": "0", "id": "x", "source": source, "detail-type": dt, "detail": detail})
        })
    }

    proptest! {
        #[test]
        fn never_panics_on_strings(s in any::<String>()) {
            let _ = parse_message(&s);
        }

        #[test]
        fn never_panics_on_json(v in arb_json()) {
            let _ = parse_message(&v.to_string());
        }

        #[test]
        fn never_panics_on_envelopes(v in arb_envelope()) {
            if let Err(e) = parse_message(&v.to_string()) {
                prop_assert!(!e.to_string().is_empty());
            }
        }

        #[test]
        fn restore_seconds_round_trip(secs in 0.0f64..1e9, corr in "[a-z0-9-]{1,40}") {
            let e = PipelineEvent::new(corr, snapshot("a", "1"), snapshot("b", "1"), Step::RestoreVerified {
                restore_seconds: secs,
                restored_resource_id: "r".into(),
                engine: None,
                engine_version: Some("16.4".into()),
            });
            let mut envelope = EventEnvelope::new(SOURCE, e.detail_type(), e);
            let Ok(Incoming::Pipeline(got)) = parse_message(&body(&envelope)) else {
                return Err(TestCaseError::fail("restore event rejected"));
            };
            // serde_json parses floats to within an ulp, not exactly, unless its
            // `float_roundtrip` feature is on; durations do not need the last ulp.
            let Step::RestoreVerified { restore_seconds, .. } = got.detail.step else {
                return Err(TestCaseError::fail("wrong step"));
            };
            prop_assert!((restore_seconds - secs).abs() <= secs * 1e-15, "{} != {}", restore_seconds, secs);
            if let Step::RestoreVerified { restore_seconds: s, .. } = &mut envelope.detail.step {
                *s = restore_seconds;
            }
            prop_assert_eq!(got, envelope);
        }
    }
}
