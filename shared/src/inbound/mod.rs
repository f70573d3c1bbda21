//! Inbound parsing: the one parser every step runs on an SQS body. It turns a body into
//! exactly one [`Incoming`] message (one of the contract's events, a scheduled-rule event,
//! or a native `aws.rds` / `aws.ec2` snapshot event, see [`native`]) or says precisely why
//! it cannot, so the message lands in the DLQ with a readable reason.

pub mod native;

use crate::events::{
    BACKUP_REQUESTED, BackupRequest, CONTRACT_VERSION, DETAIL_TYPES, EventEnvelope, PipelineEvent, RECHECK, Recheck,
    SCHEDULE_SOURCE, SCHEDULED_EVENT, SOURCE, Step,
};
use native::NativeEvent;
use serde::de::DeserializeOwned;
use serde_json::Value;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ResourceKind;
    use crate::events::{BackupSet, DataChecked, FailedCheck, RecheckWhat, SnapshotRef};
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;
    use serde::Serialize;
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
            Step::Shared {
                target_account: "222222222222".into(),
                tags: Default::default(),
                set: None,
                source_data: None,
            },
            Step::CopyStarted { destination_region: "eu-west-1".into() },
            Step::Copied {
                copied_from: Some("arn:aws:rds:us-east-1:111111111111:snapshot:snapferry-shared-mydb".into()),
            },
            Step::RestoreVerified {
                restore_seconds: 312.5,
                restored_resource_id: "snapferry-restore-mydb-1a2b3c4d".into(),
                engine: Some("postgres".into()),
                engine_version: None,
                size_gib: None,
                locked_until: None,
                lock_error: None,
                set: Some(BackupSet { id: "snapferry-i-0abc-20261127t1000".into(), size: 2, verified: Some(1) }),
                data: Some(DataChecked {
                    database: "app".into(),
                    tables: 3,
                    rows: 1200,
                    checks: 4,
                    newest_data_at: Some("2026-11-27T09:58:00Z".parse().unwrap()),
                    recovery_point_seconds: Some(120.0),
                    source: None,
                }),
            },
            Step::RestoreFailed {
                reason: "data check failed".into(),
                check: Some(FailedCheck { name: "orders".into(), expected: ">= 1".into(), actual: "0".into() }),
            },
            Step::RestoreSuspicious {
                findings: vec!["rows: 1200 -> 40 (-97%)".into()],
                previous: snapshot("snapferry-copy-mydb-0", "222222222222"),
            },
            Step::Rejected { reason: "sender not allowed".into(), sender_account: Some("222222222222".into()) },
            Step::Expired { rule: "keep_last 7".into(), dry_run: true },
            Step::QuotaWarning { quota: "ManualSnapshots".into(), used: 81, max: 100 },
            Step::Overdue { last: None, limit_minutes: 120 },
            Step::Repaired { stalled_at: "share".into() },
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
        let e = event(Step::Shared {
            target_account: "222222222222".into(),
            tags: Default::default(),
            set: None,
            source_data: None,
        });
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["step"], "shared");
        assert_eq!(v["target_account"], "222222222222");
        assert_eq!(v["version"], 1);
        assert_eq!(v["snapshot"]["kind"], "db-instance");
        let copied = serde_json::to_value(event(Step::Copied { copied_from: None })).unwrap();
        assert_eq!(copied["step"], "copied");
        let mut keys: Vec<&str> = copied.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["correlation_id", "emitted_at", "origin", "snapshot", "step", "version"]);
    }

    #[test]
    fn next_keeps_run_and_origin() {
        let first = event(Step::Shared {
            target_account: "222222222222".into(),
            tags: Default::default(),
            set: None,
            source_data: None,
        });
        let copy = snapshot("snapferry-copy-mydb-1", "222222222222");
        let second = first.next(copy.clone(), Step::Copied { copied_from: None });
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
            RecheckWhat::ExpireFrom { unit: 3 },
            RecheckWhat::CopyWhenAvailable {
                copy: snapshot("a", "2"),
                origin: snapshot("b", "1"),
                destination_region: "eu-west-1".into(),
            },
            RecheckWhat::CopyToRegion {
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
        let e = event(Step::Copied { copied_from: None });
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
        let mut detail = serde_json::to_value(event(Step::Copied { copied_from: None })).unwrap();
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
        let detail = serde_json::to_value(event(Step::Copied { copied_from: None })).unwrap();
        assert_eq!(
            err(&pipeline_body("Snapshot Expired", detail)),
            r#"detail-type "Snapshot Expired" does not match step "copied" (expected detail-type "Snapshot Copied")"#
        );
    }

    #[test]
    fn unknown_fields_are_ignored_within_a_version() {
        let mut detail = serde_json::to_value(event(Step::Copied { copied_from: None })).unwrap();
        detail["added_later"] = json!({"x": 1});
        assert!(matches!(parse_message(&pipeline_body("Snapshot Copied", detail)), Ok(Incoming::Pipeline(_))));
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
                size_gib: None,
                locked_until: None,
                lock_error: None,
                set: None,
                data: None,
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
