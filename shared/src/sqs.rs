//! The SQS batch helper every Lambda runs its step through.
//!
//! Each record is parsed on its own, so one malformed body never fails the batch. What
//! happens to a record depends only on how its step ended:
//!
//! | step result | what the helper does |
//! |---|---|
//! | `Ok(Outcome::Done)` | acknowledged (deleted by Lambda) |
//! | `Ok(Outcome::Later)` | the given body is sent to this queue again with a delay, then acknowledged: how steps wait without sleeping |
//! | `Err` retryable, copy quota full | sent again with the step's delay (when its turn for a slot comes; without one, a jittered, capped backoff) and acknowledged: waiting for copies to finish is normal, so it must never reach the DLQ through `maxReceiveCount` |
//! | `Err` other retryable (throttled, not ready, transient) | reported as a batch item failure, its visibility timeout set to a jittered backoff; after `maxReceiveCount` tries SQS moves it to the DLQ |
//! | `Err` permanent, or a body that does not parse | sent straight to the DLQ with the reason in message attributes, logged, and acknowledged |
//!
//! Sending permanent failures to the DLQ ourselves (rather than failing them until
//! `maxReceiveCount`) keeps the reason next to the message, where an operator reads it
//! before replaying, and stops pointless retries at once.

use crate::error::{Error, Retry};
use crate::inbound::{Incoming, parse_message};
use crate::ports::StepQueue;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::MessageAttributeValue;
use chrono::{DateTime, Utc};
use std::future::Future;
use std::time::Duration;
use tracing::{error, info, warn};

/// Message attributes snapferry sets; read by operators next to a dead letter, and by the next attempt.
pub const ATTR_ATTEMPT: &str = "snapferry-attempt";
/// Since when a message has waited for a full quota of copies in progress (RFC 3339).
pub const ATTR_WAITING_SINCE: &str = "snapferry-waiting-since";
/// On a message snapferry sent again: the id of the message it first was (see [`Record::handling`]).
pub const ATTR_HANDLING: &str = "snapferry-handling";
pub const ATTR_ERROR_CODE: &str = "snapferry-error-code";
pub const ATTR_ERROR_REASON: &str = "snapferry-error-reason";
pub const ATTR_FAILED_AT: &str = "snapferry-failed-at";
pub const ATTR_SOURCE_QUEUE: &str = "snapferry-source-queue";

/// SQS refuses `DelaySeconds` above 900 and visibility timeouts above 12 hours.
const MAX_DELAY: Duration = Duration::from_secs(900);

/// The ARN of the queue at `url` (SQS addresses a queue by URL; policies and redrive by ARN).
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> crate::error::Result<String> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| Error::from_sdk("GetQueueAttributes", e))?;
    out.attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| Error::Config(format!("GetQueueAttributes {url} returned no QueueArn")))
}

/// SQS behind a step: its queue and its dead-letter queue.
#[derive(Debug, Clone)]
pub struct Queue {
    pub sqs: aws_sdk_sqs::Client,
    pub url: String,
    pub dlq_url: String,
}

impl Queue {
    pub fn new(sqs: aws_sdk_sqs::Client, url: String, dlq_url: String) -> Self {
        Queue { sqs, url, dlq_url }
    }
}

#[async_trait::async_trait]
impl StepQueue for Queue {
    async fn send_later(
        &self,
        body: &str,
        delay: Duration,
        attempt: u32,
        waiting_since: Option<DateTime<Utc>>,
        handling: Option<&str>,
    ) -> Result<(), Error> {
        let mut attributes =
            std::collections::HashMap::from([(ATTR_ATTEMPT.to_string(), string_attribute(&attempt.to_string()))]);
        if let Some(since) = waiting_since {
            attributes.insert(ATTR_WAITING_SINCE.to_string(), string_attribute(&since.to_rfc3339()));
        }
        if let Some(handling) = handling {
            attributes.insert(ATTR_HANDLING.to_string(), string_attribute(handling));
        }
        self.sqs
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(delay.min(MAX_DELAY).as_secs() as i32)
            .set_message_attributes(Some(attributes))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::from_sdk("SendMessage", e))
    }

    async fn send_to(&self, queue_url: &str, body: &str) -> Result<(), Error> {
        self.sqs
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::from_sdk("SendMessage", e))
    }

    async fn dead_letter(&self, body: &str, error: &Error) -> Result<(), Error> {
        let mut reason = error.to_string();
        // SQS attribute values are limited only by the 256 KiB message size; keep them readable.
        reason.truncate(reason.floor_char_boundary(4000));
        self.sqs
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(body)
            .message_attributes(ATTR_ERROR_CODE, string_attribute(error.code()))
            .message_attributes(ATTR_ERROR_REASON, string_attribute(&reason))
            .message_attributes(ATTR_FAILED_AT, string_attribute(&chrono::Utc::now().to_rfc3339()))
            .message_attributes(ATTR_SOURCE_QUEUE, string_attribute(&self.url))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::from_sdk("SendMessage", e))
    }

    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<(), Error> {
        self.sqs
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(delay.as_secs() as i32)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::from_sdk("ChangeMessageVisibility", e))
    }
}

/// Backoff of retried messages: full jitter between `base` and a doubling ceiling, capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    /// How long a message may wait for a full quota of copies in progress.
    pub quota_wait: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(10),
            cap: Duration::from_secs(300),
            quota_wait: Duration::from_secs(24 * 3600),
        }
    }
}

/// How a step ended for one record, when it did not fail.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done,
    /// Look again later: `body` is delivered to this step again after `delay`.
    Later {
        delay: Duration,
        body: String,
    },
}

/// What a step knows about the SQS record besides its parsed body.
#[derive(Debug, Clone)]
pub struct Record {
    pub message_id: String,
    /// How many times SQS has delivered this message (1 on the first delivery).
    pub receive_count: u32,
    /// How many times snapferry re-sent it after a quota hit or a `Later` (0 at first).
    pub attempt: u32,
    /// Since when it has waited for a full quota of copies in progress, if it has.
    pub waiting_since: Option<DateTime<Utc>>,
    /// The id of the message it first was, when snapferry sent it again (throttled, a quota
    /// full, later): the same message for what it holds (a copy's slot in the ledger).
    pub first_id: Option<String>,
}

impl Record {
    /// This message's own id across snapferry's re-sends: its first id.
    pub fn handling(&self) -> &str {
        self.first_id.as_deref().unwrap_or(&self.message_id)
    }

    /// Whether it has waited for copies in progress longer than `limit`, as of `now`.
    pub fn waited_past(&self, limit: Duration, now: DateTime<Utc>) -> bool {
        self.waiting_since.is_some_and(|since| (now - since).to_std().is_ok_and(|waited| waited > limit))
    }
}

/// A step's Lambda handler: one SQS batch in, the ids to retry out. The Lambda `main`s and
/// the local host (`snapferry local`) both drive steps through this.
#[async_trait::async_trait]
pub trait BatchHandler: Send + Sync {
    async fn handle(&self, event: SqsEvent) -> SqsBatchResponse;
}

/// Full-jitter exponential backoff: a random delay in `[base, min(cap, base * 2^attempt)]`.
pub fn backoff_delay(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = base.saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX)).min(cap);
    let span = ceiling.saturating_sub(base).as_millis() as u64;
    (base + Duration::from_millis(fastrand::u64(0..=span))).min(cap)
}

/// Runs `step` on every record and returns exactly the ids that must be retried; `now` is
/// when the batch arrived, by the step's clock. The records are handled at once; what
/// may overlap is the step's to say (pipeline steps take turns, giving theirs up only
/// while they wait in the handler: `BatchHandler` for `PipelineStep` in `crate::step`).
pub async fn run_batch<F, Fut>(
    queue: &dyn StepQueue,
    backoff: Backoff,
    now: DateTime<Utc>,
    event: SqsEvent,
    step: F,
) -> SqsBatchResponse
where
    F: Fn(Incoming, Record) -> Fut,
    Fut: Future<Output = Result<Outcome, Error>>,
{
    let step = &step;
    let records = event.records.iter().filter_map(|message| match message.message_id.as_deref() {
        Some(id) => Some(async move { (!handle(queue, backoff, now, message, id, step).await).then_some(id) }),
        None => {
            // Without an id Lambda cannot be told which record failed; nothing to report.
            warn!("SQS record without a message id skipped");
            None
        }
    });
    let mut response = SqsBatchResponse::default();
    for id in futures_util::future::join_all(records).await.into_iter().flatten() {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id.to_string();
        response.batch_item_failures.push(failure);
    }
    response
}

/// Returns false when the record must be reported as a batch item failure.
async fn handle<F, Fut>(
    queue: &dyn StepQueue,
    backoff: Backoff,
    now: DateTime<Utc>,
    message: &SqsMessage,
    id: &str,
    step: &F,
) -> bool
where
    F: Fn(Incoming, Record) -> Fut,
    Fut: Future<Output = Result<Outcome, Error>>,
{
    let body = message.body.as_deref().unwrap_or_default();
    let record = Record {
        message_id: id.to_string(),
        receive_count: message.attributes.get("ApproximateReceiveCount").and_then(|v| v.parse().ok()).unwrap_or(1),
        attempt: message
            .message_attributes
            .get(ATTR_ATTEMPT)
            .and_then(|a| a.string_value.as_deref())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        waiting_since: message
            .message_attributes
            .get(ATTR_WAITING_SINCE)
            .and_then(|a| a.string_value.as_deref())
            .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
            .map(|t| t.with_timezone(&Utc)),
        first_id: message.message_attributes.get(ATTR_HANDLING).and_then(|a| a.string_value.clone()),
    };
    let parsed = match parse_message(body) {
        Ok(parsed) => parsed,
        Err(e) => {
            let error = Error::BadInput(e.to_string());
            error!(message_id = id, error = %error, "malformed message sent to the DLQ");
            return dead_letter(queue, body, &error).await;
        }
    };
    match step(parsed, record.clone()).await {
        Ok(Outcome::Done) => true,
        Ok(Outcome::Later { delay, body }) => requeue(queue, &body, record.attempt + 1, delay, None, None).await,
        Err(e) => match e.retry() {
            Some(Retry::QuotaExceeded) => {
                // Copies take minutes; start slower than for throttling. The step reports
                // the wait as over (a permanent error) once it passed `quota_wait`.
                let delay = e
                    .retry_after()
                    .unwrap_or_else(|| backoff_delay(record.attempt, backoff.base.saturating_mul(3), backoff.cap));
                info!(message_id = id, error = %e, delay_s = delay.as_secs(), "quota full; trying again later");
                let since = record.waiting_since.unwrap_or(now);
                requeue(queue, body, record.attempt + 1, delay, Some(since), Some(record.handling())).await
            }
            Some(Retry::Throttled) => {
                // The account's API budget is shared with every other caller: throttling says
                // nothing about this message, so it never counts towards the DLQ's receive
                // count. Re-sent with a backoff that grows with its attempts; only a wait past
                // `quota_wait` (an account throttled all day needs a person) is reported.
                let since = record.waiting_since.unwrap_or(now);
                let waited = (now - since).to_std().unwrap_or_default();
                if waited > backoff.quota_wait {
                    let gave_up = Error::Permanent {
                        op: "throttled",
                        code: e.code().to_string(),
                        message: format!("throttled by AWS for {} s, past QUOTA_WAIT_HOURS: {e}", waited.as_secs()),
                        hint: Some(
                            "the account's API request rate is exhausted: find the caller, or ask AWS to raise it",
                        ),
                    };
                    error!(message_id = id, error = %gave_up, "throttled for too long; sent to the DLQ");
                    return dead_letter(queue, body, &gave_up).await;
                }
                let delay = backoff_delay(record.attempt, backoff.base, backoff.cap);
                info!(message_id = id, error = %e, delay_s = delay.as_secs(), "throttled; trying again later");
                requeue(queue, body, record.attempt + 1, delay, Some(since), Some(record.handling())).await
            }
            Some(_) => {
                let delay = backoff_delay(record.receive_count.saturating_sub(1), backoff.base, backoff.cap);
                warn!(message_id = id, error = %e, receive_count = record.receive_count, "retryable failure");
                set_visibility(queue, message, delay).await;
                false
            }
            None => {
                error!(message_id = id, error = %e, code = e.code(), "permanent failure sent to the DLQ");
                dead_letter(queue, body, &e).await
            }
        },
    }
}

async fn requeue(
    queue: &dyn StepQueue,
    body: &str,
    attempt: u32,
    delay: Duration,
    waiting_since: Option<DateTime<Utc>>,
    handling: Option<&str>,
) -> bool {
    match queue.send_later(body, delay, attempt, waiting_since, handling).await {
        Ok(()) => true,
        Err(e) => {
            // The original stays in the queue and comes back after its visibility timeout.
            error!(error = %e, "could not re-queue; the message will be redelivered");
            false
        }
    }
}

async fn dead_letter(queue: &dyn StepQueue, body: &str, error: &Error) -> bool {
    match queue.dead_letter(body, error).await {
        Ok(()) => true,
        Err(e) => {
            // Failing the record instead lets SQS's redrive policy deliver it to the DLQ.
            error!(error = %e, "could not write to the DLQ; failing the record");
            false
        }
    }
}

async fn set_visibility(queue: &dyn StepQueue, message: &SqsMessage, delay: Duration) {
    let Some(handle) = message.receipt_handle.as_deref() else { return };
    if let Err(e) = queue.retry_after(handle, delay).await {
        // Best effort: without it the queue's own visibility timeout applies.
        warn!(error = %e, "could not set the retry backoff");
    }
}

fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder().data_type("String").string_value(value).build().expect("data type is set")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{BACKUP_REQUESTED, BackupRequest, EventEnvelope, SOURCE};
    use aws_sdk_sqs::operation::change_message_visibility::ChangeMessageVisibilityOutput;
    use aws_sdk_sqs::operation::send_message::SendMessageOutput;
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};

    const QUEUE: &str = "https://sqs.local/1/step";
    const DLQ: &str = "https://sqs.local/1/step-dlq";

    fn record(id: &str, body: &str) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.to_string());
        m.receipt_handle = Some(format!("rh-{id}"));
        m.body = Some(body.to_string());
        m.attributes.insert("ApproximateReceiveCount".into(), "1".into());
        m
    }

    fn valid_body(identifier: &str) -> String {
        let request = BackupRequest::new(None, vec![identifier.to_string()]);
        serde_json::to_string(&EventEnvelope::new(SOURCE, BACKUP_REQUESTED, request)).unwrap()
    }

    fn batch(records: Vec<SqsMessage>) -> SqsEvent {
        let mut e = SqsEvent::default();
        e.records = records;
        e
    }

    /// Fails the step according to the identifier in the request: how each test picks an outcome.
    async fn step(incoming: Incoming, _: Record) -> Result<Outcome, Error> {
        let Incoming::BackupRequested(e) = incoming else { return Err(Error::BadInput("unexpected".into())) };
        let code = |c: &str| crate::error::classify("Op", c.into(), "msg".into(), Some(400));
        match e.detail.identifiers[0].as_str() {
            "ok" => Ok(Outcome::Done),
            "later" => Ok(Outcome::Later { delay: Duration::from_secs(5000), body: "again".into() }),
            "throttled" => Err(code("Throttling")),
            "quota" => Err(code("SnapshotQuotaExceeded")),
            "transient" => Err(code("InternalFailure")),
            _ => Err(code("AccessDenied")),
        }
    }

    fn sends_to(url: &'static str) -> Rule {
        mock!(aws_sdk_sqs::Client::send_message)
            .match_requests(move |r| r.queue_url() == Some(url))
            .then_output(|| SendMessageOutput::builder().message_id("new").build())
    }

    #[tokio::test]
    async fn each_record_ends_where_its_outcome_says() {
        let to_dlq = sends_to(DLQ);
        let requeue = sends_to(QUEUE);
        let visibility = mock!(aws_sdk_sqs::Client::change_message_visibility)
            .match_requests(|r| r.receipt_handle() == Some("rh-7") && r.visibility_timeout().unwrap_or(0) >= 10)
            .then_output(|| ChangeMessageVisibilityOutput::builder().build());
        let sqs = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&to_dlq, &requeue, &visibility]);
        let queue = Queue::new(sqs, QUEUE.into(), DLQ.into());
        let backoff = Backoff::default();
        let event = batch(vec![
            record("1", &valid_body("ok")),
            record("2", "{not json"),
            record("3", &valid_body("throttled")),
            record("4", &valid_body("quota")),
            record("5", &valid_body("denied")),
            record("6", &valid_body("later")),
            record("7", &valid_body("transient")),
        ]);

        let response = run_batch(&queue, backoff, Utc::now(), event, step).await;

        let failed: Vec<_> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        assert_eq!(failed, vec!["7"], "only the transient failure is retried through SQS");
        assert_eq!(visibility.num_calls(), 1, "its visibility timeout carries the backoff");
        assert_eq!(to_dlq.num_calls(), 2, "the malformed and the denied record go to the DLQ");
        assert_eq!(requeue.num_calls(), 3, "the throttled, the quota hit and the Later outcome come back delayed");
    }

    #[tokio::test]
    async fn the_records_of_a_batch_are_handled_at_once() {
        // Each record waits until both have begun: one after the other, the first would
        // wait for ever (and the test's limit fail it); at once, both finish.
        let visibility = mock!(aws_sdk_sqs::Client::change_message_visibility)
            .then_output(|| ChangeMessageVisibilityOutput::builder().build());
        let sqs = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&visibility]);
        let queue = Queue::new(sqs, QUEUE.into(), DLQ.into());
        let both_begun = tokio::sync::Barrier::new(2);
        let step = |_: Incoming, record: Record| {
            let both_begun = &both_begun;
            async move {
                both_begun.wait().await;
                match record.message_id.as_str() {
                    "1" => Ok(Outcome::Done),
                    _ => Err(crate::error::classify("Op", "InternalFailure".into(), "msg".into(), Some(500))),
                }
            }
        };
        let event = batch(vec![record("1", &valid_body("ok")), record("2", &valid_body("ok"))]);
        let response = tokio::time::timeout(
            Duration::from_secs(30),
            run_batch(&queue, Backoff::default(), Utc::now(), event, step),
        )
        .await
        .expect("the records of the batch wait for each other");
        let failed: Vec<_> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        assert_eq!(failed, ["2"], "each record's own outcome is reported");
    }

    #[tokio::test]
    async fn a_throttled_message_is_never_dead_lettered_for_throttling_alone_until_it_waited_all_day() {
        // Throttled over and over: each time re-sent with a backoff and its wait's start, its
        // receive count starting anew, so SQS's redrive never moves it.
        let since = Utc::now() - chrono::Duration::hours(2);
        let requeue = mock!(aws_sdk_sqs::Client::send_message)
            .match_requests(move |r| {
                let attrs = r.message_attributes().cloned().unwrap_or_default();
                let carried = attrs.get(ATTR_WAITING_SINCE).and_then(|a| a.string_value().map(str::to_string));
                r.queue_url() == Some(QUEUE)
                    && carried == Some(since.to_rfc3339())
                    && r.delay_seconds().is_some_and(|d| (10..=300).contains(&d))
            })
            .then_output(|| SendMessageOutput::builder().build());
        let to_dlq = mock!(aws_sdk_sqs::Client::send_message)
            .match_requests(|r| {
                let attrs = r.message_attributes().cloned().unwrap_or_default();
                let reason = attrs.get(ATTR_ERROR_REASON).and_then(|a| a.string_value().map(str::to_string));
                r.queue_url() == Some(DLQ) && reason.is_some_and(|r| r.contains("throttled by AWS for"))
            })
            .then_output(|| SendMessageOutput::builder().build());
        let sqs = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&requeue, &to_dlq]);
        let queue = Queue::new(sqs, QUEUE.into(), DLQ.into());
        let throttled = |attempt: u32, since: DateTime<Utc>| {
            let mut m = record("1", &valid_body("throttled"));
            m.attributes.insert("ApproximateReceiveCount".into(), "1".into());
            m.message_attributes.insert(ATTR_ATTEMPT.into(), sqs_attribute(&attempt.to_string()));
            m.message_attributes.insert(ATTR_WAITING_SINCE.into(), sqs_attribute(&since.to_rfc3339()));
            m
        };
        // The 20th attempt two hours on: back after a backoff within the cap (300 s), still waiting.
        let response = run_batch(&queue, Backoff::default(), Utc::now(), batch(vec![throttled(20, since)]), step).await;
        assert!(response.batch_item_failures.is_empty(), "not failed: SQS's redrive would count it");
        assert_eq!((requeue.num_calls(), to_dlq.num_calls()), (1, 0));
        // Past QUOTA_WAIT_HOURS (a day by default): reported, with its reason.
        let day_ago = Utc::now() - chrono::Duration::hours(25);
        let response =
            run_batch(&queue, Backoff::default(), Utc::now(), batch(vec![throttled(200, day_ago)]), step).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(to_dlq.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_message_sent_again_keeps_its_first_id_for_what_it_holds() {
        let handling = |r: &aws_sdk_sqs::operation::send_message::SendMessageInput| {
            r.message_attributes().and_then(|a| a.get(ATTR_HANDLING)).and_then(|a| a.string_value()).map(str::to_string)
        };
        let first = mock!(aws_sdk_sqs::Client::send_message)
            .match_requests(move |r| handling(r).as_deref() == Some("1"))
            .then_output(|| SendMessageOutput::builder().build());
        let sqs = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&first]);
        let queue = Queue::new(sqs, QUEUE.into(), DLQ.into());
        // Throttled on its first delivery: sent again as message "1" goes on.
        let response =
            run_batch(&queue, Backoff::default(), Utc::now(), batch(vec![record("1", &valid_body("throttled"))]), step)
                .await;
        assert!(response.batch_item_failures.is_empty());
        // Throttled again as the message SQS gave a new id: still "1".
        let mut again = record("2", &valid_body("throttled"));
        again.message_attributes.insert(ATTR_HANDLING.into(), sqs_attribute("1"));
        let response = run_batch(&queue, Backoff::default(), Utc::now(), batch(vec![again]), step).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(first.num_calls(), 2, "both re-sends name the first message");
        // And the handler is told: `Record::handling`.
        let record = Record {
            message_id: "2".into(),
            receive_count: 1,
            attempt: 1,
            waiting_since: None,
            first_id: Some("1".into()),
        };
        assert_eq!(record.handling(), "1");
        assert_eq!(Record { first_id: None, ..record }.handling(), "2");
    }

    fn sqs_attribute(value: &str) -> aws_lambda_events::event::sqs::SqsMessageAttribute {
        let mut a = aws_lambda_events::event::sqs::SqsMessageAttribute::default();
        a.string_value = Some(value.to_string());
        a.data_type = Some("String".to_string());
        a
    }

    #[tokio::test]
    async fn dead_letters_carry_the_reason() {
        let to_dlq = mock!(aws_sdk_sqs::Client::send_message)
            .match_requests(|r| {
                let attrs = r.message_attributes().cloned().unwrap_or_default();
                let reason = attrs.get(ATTR_ERROR_REASON).and_then(|a| a.string_value().map(str::to_string));
                r.queue_url() == Some(DLQ)
                    && r.message_body() == Some("{not json")
                    && attrs.get(ATTR_ERROR_CODE).and_then(|a| a.string_value()) == Some("BadInput")
                    && reason.is_some_and(|r| r.contains("JSON"))
            })
            .then_output(|| SendMessageOutput::builder().build());
        let sqs = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&to_dlq]);
        let queue = Queue::new(sqs, QUEUE.into(), DLQ.into());
        let backoff = Backoff::default();
        let response = run_batch(&queue, backoff, Utc::now(), batch(vec![record("1", "{not json")]), step).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(to_dlq.num_calls(), 1);
    }

    #[tokio::test]
    async fn requeues_carry_the_attempt_and_a_capped_delay() {
        let requeue = mock!(aws_sdk_sqs::Client::send_message)
            .match_requests(|r| {
                let attempt = r.message_attributes().and_then(|a| a.get(ATTR_ATTEMPT)).and_then(|a| a.string_value());
                r.queue_url() == Some(QUEUE) && r.delay_seconds() == Some(900) && attempt == Some("1")
            })
            .then_output(|| SendMessageOutput::builder().build());
        let sqs = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&requeue]);
        let queue = Queue::new(sqs, QUEUE.into(), DLQ.into());
        let backoff = Backoff::default();
        let response =
            run_batch(&queue, backoff, Utc::now(), batch(vec![record("1", &valid_body("later"))]), step).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(requeue.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_failed_dlq_write_fails_the_record_instead_of_losing_it() {
        let broken = mock!(aws_sdk_sqs::Client::send_message)
            .then_error(|| aws_sdk_sqs::operation::send_message::SendMessageError::unhandled("SQS is down"));
        let sqs = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&broken]);
        let queue = Queue::new(sqs, QUEUE.into(), DLQ.into());
        let backoff = Backoff::default();
        let response =
            run_batch(&queue, backoff, Utc::now(), batch(vec![record("9", &valid_body("denied"))]), step).await;
        let failed: Vec<_> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        assert_eq!(failed, vec!["9"]);
    }

    #[test]
    fn backoff_is_bounded_and_grows() {
        let base = Duration::from_secs(10);
        let cap = Duration::from_secs(300);
        for attempt in 0..40 {
            let d = backoff_delay(attempt, base, cap);
            assert!(d >= base && d <= cap, "attempt {attempt}: {d:?}");
        }
        assert_eq!(backoff_delay(0, base, cap), base);
        // By attempt 10 the ceiling is the cap; over many draws some exceed the early ceiling.
        assert!((0..200).map(|_| backoff_delay(10, base, cap)).any(|d| d > Duration::from_secs(80)));
    }
}

/// Bad input at the SQS boundary: whatever a record holds (no body, any bytes, JSON of any
/// shape, huge or malformed attributes), `run_batch` never panics, and each record with an
/// id ends in exactly one place: done, back in the queue, in the DLQ with a classified
/// reason, or reported for Lambda to retry.
#[cfg(test)]
mod bad_input {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder {
        later: Mutex<Vec<String>>,
        dead: Mutex<Vec<(String, String)>>,
        retried: Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl StepQueue for Recorder {
        async fn send_later(
            &self,
            body: &str,
            _: Duration,
            _: u32,
            _: Option<DateTime<Utc>>,
            _: Option<&str>,
        ) -> Result<(), Error> {
            self.later.lock().unwrap().push(body.to_string());
            Ok(())
        }
        async fn send_to(&self, _: &str, _: &str) -> Result<(), Error> {
            Ok(())
        }
        async fn dead_letter(&self, body: &str, error: &Error) -> Result<(), Error> {
            self.dead.lock().unwrap().push((body.to_string(), error.code().to_string()));
            Ok(())
        }
        async fn retry_after(&self, handle: &str, _: Duration) -> Result<(), Error> {
            self.retried.lock().unwrap().push(handle.to_string());
            Ok(())
        }
    }

    fn arb_body() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            Just(None),
            any::<String>().prop_map(Some),
            // Near-valid envelopes: the right keys with wrong values, and huge fields.
            (any::<String>(), any::<String>(), 0usize..70_000).prop_map(|(source, dt, n)| {
                Some(serde_json::json!({"version": "0", "source": source, "detail-type": dt, "detail": {"x": "y".repeat(n)}}).to_string())
            }),
            (0u32..5, any::<String>()).prop_map(|(v, corr)| Some(serde_json::json!({"version": "0", "source": "snapferry",
                "detail-type": "Snapshot Shared", "detail": {"version": v, "correlation_id": corr}}).to_string())),
        ]
    }

    fn arb_record() -> impl Strategy<Value = SqsMessage> {
        (
            proptest::option::of("[a-z0-9-]{1,12}"),
            arb_body(),
            proptest::option::of(any::<String>()),
            proptest::option::of(any::<String>()),
            proptest::option::of(any::<String>()),
        )
            .prop_map(|(id, body, receive_count, attempt, waiting_since)| {
                let mut m = SqsMessage::default();
                m.message_id = id.clone();
                m.receipt_handle = id.map(|i| format!("rh-{i}"));
                m.body = body;
                if let Some(c) = receive_count {
                    m.attributes.insert("ApproximateReceiveCount".into(), c);
                }
                let attribute = |v: String| {
                    let mut a = aws_lambda_events::event::sqs::SqsMessageAttribute::default();
                    a.string_value = Some(v);
                    a.data_type = Some("String".into());
                    a
                };
                if let Some(a) = attempt {
                    m.message_attributes.insert(ATTR_ATTEMPT.into(), attribute(a));
                }
                if let Some(w) = waiting_since {
                    m.message_attributes.insert(ATTR_WAITING_SINCE.into(), attribute(w));
                }
                m
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
        #[test]
        fn every_record_ends_in_one_place_and_bad_ones_in_the_dlq_as_bad_input(
            records in proptest::collection::vec(arb_record(), 0..8)
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let queue = Recorder::default();
            let mut event = SqsEvent::default();
            event.records = records.clone();
            // A step that accepts what parses: what is under test is everything before it.
            let handled = Mutex::new(0usize);
            let response = runtime.block_on(run_batch(&queue, Backoff::default(), Utc::now(), event, |_, _| {
                *handled.lock().unwrap() += 1;
                async { Ok(Outcome::Done) }
            }));
            let with_id: Vec<&SqsMessage> = records.iter().filter(|m| m.message_id.is_some()).collect();
            let dead = queue.dead.lock().unwrap();
            let parsed = with_id.iter().filter(|m| parse_message(m.body.as_deref().unwrap_or_default()).is_ok()).count();
            prop_assert_eq!(*handled.lock().unwrap(), parsed, "each parsed record reaches the step once");
            prop_assert_eq!(dead.len(), with_id.len() - parsed, "every unparsed one is dead-lettered");
            prop_assert!(dead.iter().all(|(_, code)| code == "BadInput"), "classified: {:?}", dead);
            prop_assert!(response.batch_item_failures.is_empty(), "nothing left for Lambda to retry");
            prop_assert!(queue.later.lock().unwrap().is_empty() && queue.retried.lock().unwrap().is_empty());
        }
    }
}
