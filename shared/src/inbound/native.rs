//! Parsers for the native `aws.rds` and `aws.ec2` snapshot events, and their meaning for
//! the pipeline.
//!
//! AWS delivers these on the default bus, best effort: "might be out of sequence or
//! missing" (RDS User Guide, working-with-events). So [`NativeEvent::signal`] only says
//! what an event *claims*; steps re-read the snapshot before acting, and waits on an event
//! need a re-check as a backstop. Parsing is lenient about fields the pipeline does not need
//! (AWS adds fields, and older events lack some) and strict about the ones it does.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use super::ParseError;
use crate::ResourceKind;
use crate::arn::Arn;
use crate::events::EventEnvelope;

/// `source` of RDS events.
pub const RDS_SOURCE: &str = "aws.rds";
/// `source` of EC2 (EBS) events.
pub const EC2_SOURCE: &str = "aws.ec2";
/// detail-type of DB (instance) snapshot events.
pub const RDS_DB_SNAPSHOT_EVENT: &str = "RDS DB Snapshot Event";
/// detail-type of DB cluster snapshot events.
pub const RDS_DB_CLUSTER_SNAPSHOT_EVENT: &str = "RDS DB Cluster Snapshot Event";
/// detail-type of EBS snapshot events.
pub const EBS_SNAPSHOT_NOTIFICATION: &str = "EBS Snapshot Notification";
/// detail-type of the one event a multi-volume `CreateSnapshots` ends with (EBS User Guide,
/// ebs-cloud-watch-events, "createSnapshots").
pub const EBS_MULTI_VOLUME_NOTIFICATION: &str = "EBS Multi-Volume Snapshots Completion Status";

/// Whether `(source, detail_type)` is a native event this module parses.
pub fn is_native(source: &str, detail_type: &str) -> bool {
    matches!(
        (source, detail_type),
        (RDS_SOURCE, RDS_DB_SNAPSHOT_EVENT | RDS_DB_CLUSTER_SNAPSHOT_EVENT)
            | (EC2_SOURCE, EBS_SNAPSHOT_NOTIFICATION | EBS_MULTI_VOLUME_NOTIFICATION)
    )
}

/// RDS event IDs the pipeline cares about.
///
/// Source: Amazon RDS User Guide, "Amazon RDS event categories and event messages"
/// (`USER_Events.Messages`), sections "DB snapshot events" and "DB cluster snapshot
/// events" (the cluster ones also in the Aurora User Guide). RDS sends no event when a
/// snapshot is shared, and none when a *cluster* snapshot copy finishes: those are
/// signalled by snapferry's own events and delayed re-checks instead.
pub mod rds_event {
    /// DB snapshot: "Creating manual snapshot". Not done yet: ignored.
    pub const CREATING_MANUAL_SNAPSHOT: &str = "RDS-EVENT-0040";
    /// DB snapshot: "Deleted user snapshot".
    pub const DELETED_SNAPSHOT: &str = "RDS-EVENT-0041";
    /// DB snapshot: "Manual snapshot created".
    pub const MANUAL_SNAPSHOT_CREATED: &str = "RDS-EVENT-0042";
    /// DB snapshot: "Started cross-Region copy".
    pub const CROSS_REGION_COPY_STARTED: &str = "RDS-EVENT-0059";
    /// DB snapshot: "Finished cross-Region copy".
    pub const CROSS_REGION_COPY_FINISHED: &str = "RDS-EVENT-0060";
    /// DB snapshot: "Canceled cross-Region copy".
    pub const CROSS_REGION_COPY_CANCELED: &str = "RDS-EVENT-0061";
    /// DB snapshot: "Creating automated snapshot". Not done yet: ignored.
    pub const CREATING_AUTOMATED_SNAPSHOT: &str = "RDS-EVENT-0090";
    /// DB snapshot: "Automated snapshot created".
    pub const AUTOMATED_SNAPSHOT_CREATED: &str = "RDS-EVENT-0091";
    /// DB snapshot: "Canceled same-Region copy".
    pub const SAME_REGION_COPY_CANCELED: &str = "RDS-EVENT-0190";
    /// DB snapshot: "Started same-Region copy".
    pub const SAME_REGION_COPY_STARTED: &str = "RDS-EVENT-0196";
    /// DB snapshot: "Finished same-Region copy".
    pub const SAME_REGION_COPY_FINISHED: &str = "RDS-EVENT-0197";
    /// DB cluster snapshot: "Creating manual cluster snapshot". Not done yet: ignored.
    pub const CREATING_MANUAL_CLUSTER_SNAPSHOT: &str = "RDS-EVENT-0074";
    /// DB cluster snapshot: "Manual cluster snapshot created".
    pub const MANUAL_CLUSTER_SNAPSHOT_CREATED: &str = "RDS-EVENT-0075";
    /// DB cluster snapshot: "Creating automated cluster snapshot". Not done yet: ignored.
    pub const CREATING_AUTOMATED_CLUSTER_SNAPSHOT: &str = "RDS-EVENT-0168";
    /// DB cluster snapshot: "Automated cluster snapshot created".
    pub const AUTOMATED_CLUSTER_SNAPSHOT_CREATED: &str = "RDS-EVENT-0169";
    /// **Not an AWS event.** AWS documents no EventID for a failed snapshot creation; the
    /// snapferry emulator sends this one so the failure path can be tested end to end.
    /// Mapping it costs nothing in production, where it never arrives.
    pub const EMULATOR_SNAPSHOT_FAILED: &str = "SNAPFERRY-EVENT-SNAPSHOT-FAILED";
}

/// The `detail` of an `aws.rds` snapshot event. Field names are PascalCase on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RdsSnapshotEvent {
    /// `RDS-EVENT-nnnn`; see [`rds_event`]. Older events may lack it.
    #[serde(rename = "EventID", default)]
    pub event_id: Option<String>,
    /// `SNAPSHOT` or `CLUSTER_SNAPSHOT`.
    #[serde(default)]
    pub source_type: Option<String>,
    /// ARN of the snapshot the event is about.
    pub source_arn: String,
    /// Snapshot identifier (`rds:...` for automated snapshots).
    pub source_identifier: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub date: Option<DateTime<Utc>>,
    #[serde(default)]
    pub event_categories: Vec<String>,
}

/// The `detail` of an `aws.ec2` "EBS Snapshot Notification" (EBS User Guide,
/// "Amazon EventBridge for Amazon EBS").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EbsSnapshotNotification {
    /// `createSnapshot`, `createSnapshots`, `copySnapshot`, `shareSnapshot`, ...
    pub event: String,
    /// `succeeded` or `failed`.
    pub result: String,
    /// Why it failed; empty on success.
    #[serde(default)]
    pub cause: String,
    #[serde(rename = "request-id", default)]
    pub request_id: String,
    /// The snapshot as an ARN with the region in the account field:
    /// `arn:aws:ec2::us-east-1:snapshot/snap-0123`. Absent for multi-volume `createSnapshots`.
    #[serde(default)]
    pub snapshot_id: Option<String>,
    /// The volume ARN (create), the source snapshot ARN (copy) or the sharing account
    /// (share; the AWS sample shows it as a bare number, hence the lenient parser).
    #[serde(default, deserialize_with = "string_or_number")]
    pub source: Option<String>,
    /// Kept as text: AWS documents it loosely and the pipeline never relies on it.
    #[serde(rename = "startTime", default, deserialize_with = "string_or_number")]
    pub start_time: Option<String>,
    #[serde(rename = "endTime", default, deserialize_with = "string_or_number")]
    pub end_time: Option<String>,
    /// `createSnapshots` only: each snapshot of the set, its volume and its status.
    #[serde(default)]
    pub snapshots: Vec<EbsSetMember>,
}

/// One snapshot of a multi-volume `createSnapshots` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EbsSetMember {
    /// `arn:aws:ec2::us-east-1:snapshot/snap-0123` (the event form).
    pub snapshot_id: String,
    /// The volume ARN.
    #[serde(default)]
    pub source: Option<String>,
    /// `completed`, or `error` for a member that failed.
    #[serde(default)]
    pub status: String,
}

impl EbsSnapshotNotification {
    /// The bare `snap-...` id.
    pub fn snapshot_id(&self) -> Option<&str> {
        self.snapshot_id.as_deref().and_then(ebs_snapshot_id_from_arn)
    }

    /// The region in the snapshot ARN.
    pub fn region(&self) -> Option<&str> {
        self.snapshot_id.as_deref().and_then(ebs_region_from_arn)
    }

    fn succeeded(&self) -> bool {
        self.result.eq_ignore_ascii_case("succeeded")
    }
}

/// `snap-0123` from `arn:aws:ec2::us-east-1:snapshot/snap-0123` (EBS event form),
/// `arn:aws:ec2:us-east-1:111111111111:snapshot/snap-0123` (regular form) or `snap-0123`.
pub fn ebs_snapshot_id_from_arn(arn: &str) -> Option<&str> {
    let id = match Arn::parse(arn) {
        Some(a) if a.resource.starts_with("snapshot/") => a.name(),
        Some(_) => return None,
        None => arn,
    };
    (id.starts_with("snap-") && id.len() > "snap-".len()).then_some(id)
}

/// The region of an EC2 ARN, in whichever field it is.
pub fn ebs_region_from_arn(arn: &str) -> Option<&str> {
    Arn::parse(arn)?.region_any_field()
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// The parsed `detail`.
#[derive(Debug, Clone, PartialEq)]
pub enum NativeBody {
    /// An RDS snapshot event; `kind` comes from the detail-type.
    Rds {
        kind: ResourceKind,
        event: RdsSnapshotEvent,
    },
    Ebs(EbsSnapshotNotification),
}

/// A native AWS snapshot event: the envelope fields the pipeline uses and the parsed detail.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeEvent {
    /// EventBridge event id, for logs and de-duplication.
    pub id: String,
    pub detail_type: String,
    /// Account the event was emitted in (absent from some emulators' envelopes).
    pub account: Option<String>,
    pub region: Option<String>,
    pub time: Option<DateTime<Utc>>,
    pub resources: Vec<String>,
    pub body: NativeBody,
}

/// A snapshot named by a native event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeSnapshot {
    pub kind: ResourceKind,
    /// DB (cluster) snapshot identifier, or the EBS `snap-...` id.
    pub id: String,
    /// The ARN as given in the event (for EBS, AWS's event form with the region in the
    /// account field: rebuild a regular ARN before using it in an API call).
    pub arn: Option<String>,
    /// Account the event came from (for `SharedWithUs`, the receiving account).
    pub account: Option<String>,
    pub region: Option<String>,
}

/// What a native event means for the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NativeSignal {
    /// A snapshot finished creating: candidate for sharing.
    SnapshotCreated {
        snapshot: NativeSnapshot,
        /// Taken by AWS's automated backups; must be copied to a manual snapshot to share.
        automated: bool,
    },
    /// A copy finished (the event names the copy, not its source).
    CopyFinished {
        snapshot: NativeSnapshot,
        /// The source snapshot, where the event says (EBS only).
        source: Option<String>,
    },
    /// A copy failed or was canceled.
    CopyFailed { snapshot: NativeSnapshot, reason: String },
    /// Creating a snapshot failed.
    SnapshotFailed { snapshot: NativeSnapshot, reason: String },
    /// An EBS snapshot was shared with this account by `from_account`.
    SharedWithUs { snapshot: NativeSnapshot, from_account: Option<String> },
    /// A multi-volume `CreateSnapshots` ended: every member of the set, and why the set
    /// failed when it did (then no member is shared: the set is not crash-consistent).
    SetCreated { snapshots: Vec<NativeSnapshot>, failed: Option<String> },
    /// Nothing for the pipeline to do; `reason` is for the log.
    Ignored { reason: String },
}

impl NativeEvent {
    /// Parses the detail of a native event whose envelope was already read.
    pub fn from_envelope(envelope: EventEnvelope<serde_json::Value>) -> Result<Self, ParseError> {
        let invalid = |e: serde_json::Error| ParseError::InvalidDetail {
            detail_type: envelope.detail_type.clone(),
            reason: e.to_string(),
        };
        let body = match (envelope.source.as_str(), envelope.detail_type.as_str()) {
            (RDS_SOURCE, RDS_DB_SNAPSHOT_EVENT) => NativeBody::Rds {
                kind: ResourceKind::DbInstance,
                event: RdsSnapshotEvent::deserialize(&envelope.detail).map_err(invalid)?,
            },
            (RDS_SOURCE, RDS_DB_CLUSTER_SNAPSHOT_EVENT) => NativeBody::Rds {
                kind: ResourceKind::DbCluster,
                event: RdsSnapshotEvent::deserialize(&envelope.detail).map_err(invalid)?,
            },
            (EC2_SOURCE, EBS_SNAPSHOT_NOTIFICATION | EBS_MULTI_VOLUME_NOTIFICATION) => {
                NativeBody::Ebs(EbsSnapshotNotification::deserialize(&envelope.detail).map_err(invalid)?)
            }
            _ => {
                return Err(ParseError::UnknownEvent {
                    event_source: envelope.source,
                    detail_type: envelope.detail_type,
                });
            }
        };
        Ok(NativeEvent {
            id: envelope.id,
            detail_type: envelope.detail_type,
            account: envelope.account,
            region: envelope.region,
            time: envelope.time,
            resources: envelope.resources,
            body,
        })
    }

    /// Classifies the event. Never fails: whatever the pipeline does not act on is
    /// [`NativeSignal::Ignored`] with a reason for the log.
    pub fn signal(&self) -> NativeSignal {
        match &self.body {
            NativeBody::Rds { kind, event } => self.rds_signal(*kind, event),
            NativeBody::Ebs(n) => self.ebs_signal(n),
        }
    }

    fn rds_signal(&self, kind: ResourceKind, event: &RdsSnapshotEvent) -> NativeSignal {
        use rds_event::*;
        let snapshot = || NativeSnapshot {
            kind,
            id: event.source_identifier.clone(),
            arn: Some(event.source_arn.clone()),
            account: self.account.clone().or_else(|| arn_part(&event.source_arn, |a| a.account)),
            region: self.region.clone().or_else(|| arn_part(&event.source_arn, |a| a.region)),
        };
        let Some(id) = event.event_id.as_deref() else {
            return NativeSignal::Ignored { reason: format!("RDS event without EventID: {:?}", event.message) };
        };
        match id {
            MANUAL_SNAPSHOT_CREATED | MANUAL_CLUSTER_SNAPSHOT_CREATED => {
                NativeSignal::SnapshotCreated { snapshot: snapshot(), automated: false }
            }
            AUTOMATED_SNAPSHOT_CREATED | AUTOMATED_CLUSTER_SNAPSHOT_CREATED => {
                NativeSignal::SnapshotCreated { snapshot: snapshot(), automated: true }
            }
            SAME_REGION_COPY_FINISHED | CROSS_REGION_COPY_FINISHED => {
                NativeSignal::CopyFinished { snapshot: snapshot(), source: None }
            }
            SAME_REGION_COPY_CANCELED | CROSS_REGION_COPY_CANCELED => {
                NativeSignal::CopyFailed { snapshot: snapshot(), reason: format!("{id}: {}", event.message) }
            }
            EMULATOR_SNAPSHOT_FAILED => {
                NativeSignal::SnapshotFailed { snapshot: snapshot(), reason: event.message.clone() }
            }
            other => NativeSignal::Ignored { reason: format!("{other} ({:?}) needs no action", event.message) },
        }
    }

    fn ebs_signal(&self, n: &EbsSnapshotNotification) -> NativeSignal {
        if n.event == "createSnapshots" {
            let snapshots: Vec<NativeSnapshot> = n
                .snapshots
                .iter()
                .filter_map(|m| {
                    Some(NativeSnapshot {
                        kind: ResourceKind::Ebs,
                        id: ebs_snapshot_id_from_arn(&m.snapshot_id)?.to_owned(),
                        arn: Some(m.snapshot_id.clone()),
                        account: self.account.clone(),
                        region: ebs_region_from_arn(&m.snapshot_id).map(str::to_owned).or_else(|| self.region.clone()),
                    })
                })
                .collect();
            let errors: Vec<&str> =
                n.snapshots.iter().filter(|m| m.status != "completed").map(|m| m.snapshot_id.as_str()).collect();
            let failed = (!n.succeeded() || !errors.is_empty()).then(|| {
                format!("createSnapshots {}: {} (members not completed: {})", n.result, n.cause, errors.join(", "))
            });
            return NativeSignal::SetCreated { snapshots, failed };
        }
        let Some(id) = n.snapshot_id() else {
            return NativeSignal::Ignored {
                reason: format!("EBS {} {} without a single snapshot id", n.event, n.result),
            };
        };
        let snapshot = NativeSnapshot {
            kind: ResourceKind::Ebs,
            id: id.to_owned(),
            arn: n.snapshot_id.clone(),
            account: self.account.clone(),
            region: n.region().map(str::to_owned).or_else(|| self.region.clone()),
        };
        let reason = || {
            if n.cause.is_empty() {
                format!("{} {}", n.event, n.result)
            } else {
                format!("{} {}: {}", n.event, n.result, n.cause)
            }
        };
        match (n.event.as_str(), n.succeeded()) {
            ("createSnapshot", true) => NativeSignal::SnapshotCreated { snapshot, automated: false },
            ("createSnapshot", false) => NativeSignal::SnapshotFailed { snapshot, reason: reason() },
            ("copySnapshot", true) => NativeSignal::CopyFinished { snapshot, source: n.source.clone() },
            ("copySnapshot", false) => NativeSignal::CopyFailed { snapshot, reason: reason() },
            ("shareSnapshot", true) => NativeSignal::SharedWithUs { snapshot, from_account: n.source.clone() },
            _ => NativeSignal::Ignored { reason: format!("EBS {} for {id} needs no action", reason()) },
        }
    }
}

/// One field of an ARN, if it parses and the field is not empty.
fn arn_part<'a>(arn: &'a str, field: impl Fn(&Arn<'a>) -> &'a str) -> Option<String> {
    Arn::parse(arn).map(|a| field(&a).to_owned()).filter(|f| !f.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::{Incoming, parse_message};
    use serde_json::json;

    fn native(body: serde_json::Value) -> NativeEvent {
        match parse_message(&body.to_string()) {
            Ok(Incoming::Native(n)) => n,
            other => panic!("expected a native event, got {other:?}"),
        }
    }

    fn rds(detail_type: &str, event_id: &str, identifier: &str, message: &str) -> NativeEvent {
        let kind = if detail_type == RDS_DB_SNAPSHOT_EVENT { "snapshot" } else { "cluster-snapshot" };
        let arn = format!("arn:aws:rds:us-east-1:111111111111:{kind}:{identifier}");
        // Shape from the RDS User Guide, "RDS DB snapshot event" example.
        native(json!({
            "version": "0",
            "id": "844e2571-85d4-695f-b930-0153b71dcb42",
            "detail-type": detail_type,
            "source": "aws.rds",
            "account": "111111111111",
            "time": "2018-10-06T12:26:13Z",
            "region": "us-east-1",
            "resources": [arn],
            "detail": {
                "EventCategories": ["creation"],
                "SourceType": if kind == "snapshot" { "SNAPSHOT" } else { "CLUSTER_SNAPSHOT" },
                "SourceArn": arn,
                "Date": "2018-10-06T12:26:13.882Z",
                "SourceIdentifier": identifier,
                "Message": message,
                "EventID": event_id
            }
        }))
    }

    fn ebs(event: &str, result: &str, cause: &str, source: serde_json::Value) -> NativeEvent {
        // Shape from the EBS User Guide, "EBS snapshot events".
        native(json!({
            "version": "0",
            "id": "01234567-0123-0123-0123-012345678901",
            "detail-type": "EBS Snapshot Notification",
            "source": "aws.ec2",
            "account": "111111111111",
            "time": "2026-11-24T13:00:00Z",
            "region": "us-east-1",
            "resources": ["arn:aws:ec2::us-west-2:snapshot/snap-01234567"],
            "detail": {
                "event": event,
                "result": result,
                "cause": cause,
                "request-id": "",
                "snapshot_id": "arn:aws:ec2::us-west-2:snapshot/snap-01234567",
                "source": source,
                "startTime": "2026-11-24T12:59:00Z",
                "endTime": "2026-11-24T13:00:00Z"
            }
        }))
    }

    #[test]
    fn automated_instance_snapshot_created() {
        let e = rds(RDS_DB_SNAPSHOT_EVENT, "RDS-EVENT-0091", "rds:mydb-2018-10-06-12-24", "Automated snapshot created");
        let NativeBody::Rds { event, .. } = &e.body else { panic!("not RDS") };
        assert_eq!(event.source_type.as_deref(), Some("SNAPSHOT"));
        assert_eq!(event.event_categories, ["creation"]);
        assert!(event.date.is_some());
        assert_eq!(
            e.signal(),
            NativeSignal::SnapshotCreated {
                snapshot: NativeSnapshot {
                    kind: ResourceKind::DbInstance,
                    id: "rds:mydb-2018-10-06-12-24".into(),
                    arn: Some("arn:aws:rds:us-east-1:111111111111:snapshot:rds:mydb-2018-10-06-12-24".into()),
                    account: Some("111111111111".into()),
                    region: Some("us-east-1".into()),
                },
                automated: true,
            }
        );
    }

    #[test]
    fn created_events_by_kind() {
        let cases = [
            (RDS_DB_SNAPSHOT_EVENT, "RDS-EVENT-0042", ResourceKind::DbInstance, false),
            (RDS_DB_SNAPSHOT_EVENT, "RDS-EVENT-0091", ResourceKind::DbInstance, true),
            (RDS_DB_CLUSTER_SNAPSHOT_EVENT, "RDS-EVENT-0075", ResourceKind::DbCluster, false),
            (RDS_DB_CLUSTER_SNAPSHOT_EVENT, "RDS-EVENT-0169", ResourceKind::DbCluster, true),
        ];
        for (dt, id, want_kind, want_automated) in cases {
            match rds(dt, id, "snap-1", "created").signal() {
                NativeSignal::SnapshotCreated { snapshot, automated } => {
                    assert_eq!((snapshot.kind, automated), (want_kind, want_automated), "{id}");
                }
                other => panic!("{id}: {other:?}"),
            }
        }
    }

    #[test]
    fn copies_finished_and_canceled() {
        for id in ["RDS-EVENT-0197", "RDS-EVENT-0060"] {
            let s = rds(RDS_DB_SNAPSHOT_EVENT, id, "snapferry-copy-x", "Finished copy").signal();
            assert!(matches!(s, NativeSignal::CopyFinished { .. }), "{id}: {s:?}");
        }
        for id in ["RDS-EVENT-0190", "RDS-EVENT-0061"] {
            let s = rds(RDS_DB_SNAPSHOT_EVENT, id, "snapferry-copy-x", "Canceled copy").signal();
            let NativeSignal::CopyFailed { reason, .. } = s else { panic!("{id}: {s:?}") };
            assert_eq!(reason, format!("{id}: Canceled copy"));
        }
    }

    #[test]
    fn emulator_failure_event() {
        for dt in [RDS_DB_SNAPSHOT_EVENT, RDS_DB_CLUSTER_SNAPSHOT_EVENT] {
            let s = rds(dt, "SNAPFERRY-EVENT-SNAPSHOT-FAILED", "mydb-1", "Snapshot creation failed").signal();
            let NativeSignal::SnapshotFailed { reason, .. } = s else { panic!("{dt}: {s:?}") };
            assert_eq!(reason, "Snapshot creation failed");
        }
    }

    #[test]
    fn in_progress_and_deletes_are_ignored() {
        for id in ["RDS-EVENT-0040", "RDS-EVENT-0041", "RDS-EVENT-0059", "RDS-EVENT-0090", "RDS-EVENT-0196"] {
            let s = rds(RDS_DB_SNAPSHOT_EVENT, id, "mydb-1", "Creating manual snapshot").signal();
            assert!(matches!(s, NativeSignal::Ignored { .. }), "{id}: {s:?}");
        }
        for id in ["RDS-EVENT-0074", "RDS-EVENT-0168"] {
            let s = rds(RDS_DB_CLUSTER_SNAPSHOT_EVENT, id, "c-1", "Creating").signal();
            assert!(matches!(s, NativeSignal::Ignored { .. }), "{id}: {s:?}");
        }
    }

    #[test]
    fn rds_event_without_event_id_is_ignored_not_rejected() {
        let mut e = rds(RDS_DB_SNAPSHOT_EVENT, "x", "mydb-1", "Manual snapshot created");
        let NativeBody::Rds { event, .. } = &mut e.body else { panic!("not RDS") };
        event.event_id = None;
        assert!(matches!(e.signal(), NativeSignal::Ignored { .. }));
    }

    #[test]
    fn ebs_create_copy_share() {
        let created = ebs("createSnapshot", "succeeded", "", json!("arn:aws:ec2::us-west-2:volume/vol-01234567"));
        let NativeSignal::SnapshotCreated { snapshot, automated } = created.signal() else { panic!("{created:?}") };
        assert!(!automated);
        assert_eq!(snapshot.id, "snap-01234567");
        assert_eq!(snapshot.kind, ResourceKind::Ebs);
        assert_eq!(snapshot.region.as_deref(), Some("us-west-2"));
        assert_eq!(snapshot.account.as_deref(), Some("111111111111"));

        let copied = ebs("copySnapshot", "succeeded", "", json!("arn:aws:ec2::eu-west-1:snapshot/snap-76543210"));
        let NativeSignal::CopyFinished { source, .. } = copied.signal() else { panic!() };
        assert_eq!(source.as_deref(), Some("arn:aws:ec2::eu-west-1:snapshot/snap-76543210"));

        // The AWS sample prints the sharing account as a bare number.
        let shared = ebs("shareSnapshot", "succeeded", "", json!(12345678901u64));
        let NativeSignal::SharedWithUs { snapshot, from_account } = shared.signal() else { panic!() };
        assert_eq!(snapshot.id, "snap-01234567");
        assert_eq!(from_account.as_deref(), Some("12345678901"));
        let shared = ebs("shareSnapshot", "succeeded", "", json!("222222222222"));
        let NativeSignal::SharedWithUs { from_account, .. } = shared.signal() else { panic!() };
        assert_eq!(from_account.as_deref(), Some("222222222222"));
    }

    #[test]
    fn ebs_failures() {
        let failed = ebs("createSnapshot", "failed", "Source volume doesn't exist", json!("vol"));
        assert_eq!(
            failed.signal(),
            NativeSignal::SnapshotFailed {
                snapshot: NativeSnapshot {
                    kind: ResourceKind::Ebs,
                    id: "snap-01234567".into(),
                    arn: Some("arn:aws:ec2::us-west-2:snapshot/snap-01234567".into()),
                    account: Some("111111111111".into()),
                    region: Some("us-west-2".into()),
                },
                reason: "createSnapshot failed: Source volume doesn't exist".into(),
            }
        );
        let failed = ebs("copySnapshot", "failed", "Snapshot does not exist", json!(null));
        assert!(matches!(failed.signal(), NativeSignal::CopyFailed { .. }));
        let failed = ebs("shareSnapshot", "failed", "", json!(null));
        assert!(matches!(failed.signal(), NativeSignal::Ignored { .. }));
    }

    fn multi_volume(result: &str, statuses: &[&str]) -> NativeEvent {
        let members: Vec<_> = statuses
            .iter()
            .enumerate()
            .map(|(i, status)| {
                json!({"snapshot_id": format!("arn:aws:ec2::us-east-1:snapshot/snap-0{i}"),
                       "source": format!("arn:aws:ec2::us-east-1:volume/vol-0{i}"), "status": status})
            })
            .collect();
        // Shape from the EBS User Guide, ebs-cloud-watch-events, "createSnapshots".
        native(json!({
            "version": "0", "id": "1", "detail-type": "EBS Multi-Volume Snapshots Completion Status",
            "source": "aws.ec2", "account": "111111111111", "time": "2026-11-24T13:00:00Z",
            "region": "us-east-1", "resources": [],
            "detail": {
                "event": "createSnapshots", "result": result, "cause": "", "request-id": "r",
                "startTime": "2026-11-24T12:59:00Z", "endTime": "2026-11-24T13:00:00Z",
                "snapshots": members
            }
        }))
    }

    #[test]
    fn multi_volume_create_snapshots_names_every_member() {
        let NativeSignal::SetCreated { snapshots, failed } =
            multi_volume("succeeded", &["completed", "completed"]).signal()
        else {
            panic!()
        };
        assert_eq!(failed, None);
        let ids: Vec<_> = snapshots.iter().map(|s| (s.id.as_str(), s.region.as_deref())).collect();
        assert_eq!(ids, [("snap-00", Some("us-east-1")), ("snap-01", Some("us-east-1"))]);
        let NativeSignal::SetCreated { failed, .. } = multi_volume("failed", &["completed", "error"]).signal() else {
            panic!()
        };
        assert!(failed.is_some_and(|f| f.contains("snap-01") && !f.contains("snap-00,")));
    }

    #[test]
    fn ebs_arn_helpers() {
        assert_eq!(ebs_snapshot_id_from_arn("arn:aws:ec2::us-east-1:snapshot/snap-0123"), Some("snap-0123"));
        assert_eq!(
            ebs_snapshot_id_from_arn("arn:aws:ec2:us-east-1:111111111111:snapshot/snap-0123"),
            Some("snap-0123")
        );
        assert_eq!(ebs_snapshot_id_from_arn("snap-0123"), Some("snap-0123"));
        assert_eq!(ebs_snapshot_id_from_arn("arn:aws:ec2::us-east-1:volume/vol-1"), None);
        assert_eq!(ebs_snapshot_id_from_arn("foo"), None);
        assert_eq!(ebs_region_from_arn("arn:aws:ec2::us-east-1:snapshot/snap-0123"), Some("us-east-1"));
        assert_eq!(
            ebs_region_from_arn("arn:aws-cn:ec2:cn-north-1:111111111111:snapshot/snap-0123"),
            Some("cn-north-1")
        );
        assert_eq!(ebs_region_from_arn("snap-0123"), None);
        assert_eq!(ebs_region_from_arn("arn:aws:ec2:::snapshot/snap-0123"), None);
    }

    #[test]
    fn rds_detail_missing_required_field_is_an_error() {
        let body = json!({
            "version": "0", "id": "1", "detail-type": "RDS DB Snapshot Event", "source": "aws.rds",
            "detail": {"EventID": "RDS-EVENT-0042", "SourceIdentifier": "mydb-1"}
        });
        let err = parse_message(&body.to_string()).unwrap_err();
        assert!(err.to_string().contains("missing field `SourceArn`"), "{err}");
    }
}
