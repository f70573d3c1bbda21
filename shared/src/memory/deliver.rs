//! Messages as a step receives them: serialized as AWS delivers them, then read by the
//! real inbound parser, so tests exercise the parsing too.

use crate::events::{
    BACKUP_REQUESTED, BackupRequest, EventEnvelope, PipelineEvent, SCHEDULE_SOURCE, SCHEDULED_EVENT, SOURCE,
};
use crate::inbound::{Incoming, native, parse_message};
use crate::sqs::Record;
use crate::store::Snapshot;
use chrono::{DateTime, Utc};
use serde_json::json;

fn parsed(body: &str) -> Incoming {
    parse_message(body).unwrap_or_else(|e| panic!("test message does not parse: {e}\n{body}"))
}

/// The first delivery of a message.
pub fn record() -> Record {
    Record { message_id: "m-1".into(), receive_count: 1, attempt: 0, waiting_since: None, first_id: None }
}

pub fn schedule(time: DateTime<Utc>) -> Incoming {
    let mut e = EventEnvelope::new(SCHEDULE_SOURCE, SCHEDULED_EVENT, json!({}));
    e.time = Some(time);
    parsed(&serde_json::to_string(&e).unwrap_or_default())
}

pub fn backup_requested(request: BackupRequest, time: DateTime<Utc>) -> Incoming {
    let mut e = EventEnvelope::new(SOURCE, BACKUP_REQUESTED, request);
    e.time = Some(time);
    parsed(&serde_json::to_string(&e).unwrap_or_default())
}

/// An `aws.rds` snapshot event about `snapshot` (DB snapshot or cluster snapshot event
/// by its kind), as the account's default bus delivers it.
pub fn rds_event(snapshot: &Snapshot, event_id: &str) -> Incoming {
    let detail_type = match snapshot.kind {
        crate::ResourceKind::DbCluster => native::RDS_DB_CLUSTER_SNAPSHOT_EVENT,
        _ => native::RDS_DB_SNAPSHOT_EVENT,
    };
    let body = json!({
        "version": "0", "id": format!("ev-{event_id}"), "detail-type": detail_type, "source": native::RDS_SOURCE,
        "account": snapshot.account, "region": snapshot.region, "resources": [snapshot.arn],
        "detail": {
            "EventCategories": ["creation"], "SourceType": "SNAPSHOT", "SourceArn": snapshot.arn,
            "SourceIdentifier": snapshot.id, "Message": "test", "EventID": event_id,
        }
    });
    parsed(&body.to_string())
}

/// An `aws.ec2` "EBS Snapshot Notification" about `snapshot` delivered to `account`
/// (`shareSnapshot` goes to the account it was shared with, `source` the sharing account).
pub fn ebs_event(snapshot: &Snapshot, event: &str, result: &str, account: &str, source: &str) -> Incoming {
    let arn = format!("arn:aws:ec2::{}:snapshot/{}", snapshot.region, snapshot.id);
    let body = json!({
        "version": "0", "id": format!("ev-{event}-{}", snapshot.id), "detail-type": native::EBS_SNAPSHOT_NOTIFICATION,
        "source": native::EC2_SOURCE, "account": account, "region": snapshot.region, "resources": [arn],
        "detail": { "event": event, "result": result, "cause": "", "request-id": "r", "snapshot_id": arn, "source": source }
    });
    parsed(&body.to_string())
}

/// A pipeline event as the receiving bus delivers it; `account` is the envelope's
/// sending account (EventBridge sets it; a forged event can set anything).
pub fn pipeline(event: &PipelineEvent, account: Option<&str>) -> Incoming {
    parsed(&pipeline_body(event, account))
}

/// The SQS body of [`pipeline`]: for batches.
pub fn pipeline_body(event: &PipelineEvent, account: Option<&str>) -> String {
    let mut e = EventEnvelope::new(SOURCE, event.detail_type(), event.clone());
    e.account = account.map(str::to_string);
    serde_json::to_string(&e).unwrap_or_default()
}

/// What a step sent to its own queue, delivered back by SQS as a batch of one, with the
/// message attributes it was sent with.
pub fn redelivered(sent: &super::Sent) -> aws_lambda_events::event::sqs::SqsEvent {
    let mut event = batch(&[&sent.body]);
    let attribute = |value: String| {
        let mut a = aws_lambda_events::event::sqs::SqsMessageAttribute::default();
        a.data_type = Some("String".into());
        a.string_value = Some(value);
        a
    };
    let m = &mut event.records[0];
    m.message_attributes.insert(crate::sqs::ATTR_ATTEMPT.into(), attribute(sent.attempt.to_string()));
    if let Some(since) = sent.waiting_since {
        m.message_attributes.insert(crate::sqs::ATTR_WAITING_SINCE.into(), attribute(since.to_rfc3339()));
    }
    if let Some(handling) = &sent.handling {
        m.message_attributes.insert(crate::sqs::ATTR_HANDLING.into(), attribute(handling.clone()));
    }
    event
}

/// A body a step sent to its own queue, delivered back.
pub fn body(body: &str) -> Incoming {
    parsed(body)
}

/// An SQS batch of `bodies` as Lambda hands it to a function, first deliveries, message
/// ids `m-0`, `m-1`, ... and receipt handles `rh-0`, ...
pub fn batch(bodies: &[&str]) -> aws_lambda_events::event::sqs::SqsEvent {
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    for (i, body) in bodies.iter().enumerate() {
        let mut m = aws_lambda_events::event::sqs::SqsMessage::default();
        m.message_id = Some(format!("m-{i}"));
        m.receipt_handle = Some(format!("rh-{i}"));
        m.body = Some(body.to_string());
        m.attributes.insert("ApproximateReceiveCount".into(), "1".into());
        event.records.push(m);
    }
    event
}
