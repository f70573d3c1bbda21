//! Publishing pipeline events to EventBridge.
//!
//! PutEvents answers HTTP 200 even when some entries were refused: the refusals are in
//! `FailedEntryCount` and in the per-entry `ErrorCode`, lined up with the request order.
//! This publisher chunks entries (at most 10 a call, under the size budget), checks every
//! answer and retries only the refused entries.

use crate::error::{Error, Retry};
use crate::events::{PipelineEvent, SOURCE};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use tracing::warn;

/// AWS's limit of entries per PutEvents call.
pub const MAX_ENTRIES: usize = 10;
/// Size budget per call. AWS allows 1 MB since 2026-01; 256 KiB stays valid in every
/// partition and on older emulators.
pub const MAX_CALL_BYTES: usize = 256 * 1024;
/// Tries per entry before the step fails and SQS redelivers its message, after the step's
/// backoff (the way a step waits: no sleeping in a handler).
const ATTEMPTS: usize = 3;
/// Entry error codes worth trying again (EventBridge API reference, PutEventsResultEntry);
/// any other (`AccessDeniedException`, `MalformedDetail`, `InvalidArgument`, ...) is final.
const ENTRY_RETRYABLE: &[&str] = &["InternalFailure", "ThrottlingException"];

/// One event to put.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Bus name or ARN.
    pub bus: String,
    pub detail_type: String,
    pub detail: String,
    pub resources: Vec<String>,
}

impl Entry {
    pub fn pipeline(bus: &str, event: &PipelineEvent) -> Result<Entry, Error> {
        Ok(Entry {
            bus: bus.to_string(),
            detail_type: event.step.detail_type().to_string(),
            detail: serde_json::to_string(event)
                .map_err(|e| Error::BadInput(format!("event not serialisable: {e}")))?,
            resources: vec![event.snapshot.arn.clone()],
        })
    }

    /// Size as EventBridge counts it: Source + DetailType + Detail + Resources.
    pub fn size(&self) -> usize {
        SOURCE.len()
            + self.detail_type.len()
            + self.detail.len()
            + self.resources.iter().map(String::len).sum::<usize>()
    }

    fn to_request(&self) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(&self.detail_type)
            .detail(&self.detail)
            .set_resources(Some(self.resources.clone()))
            .build()
    }
}

#[derive(Debug, Clone)]
pub struct Publisher {
    client: aws_sdk_eventbridge::Client,
}

impl Publisher {
    pub fn new(client: aws_sdk_eventbridge::Client) -> Self {
        Publisher { client }
    }

    /// Puts every entry, or fails with the codes of those that were still refused.
    pub async fn publish(&self, entries: &[Entry]) -> Result<(), Error> {
        if let Some(big) = entries.iter().find(|e| e.size() > MAX_CALL_BYTES) {
            return Err(Error::BadInput(format!(
                "event {} of {} bytes exceeds the PutEvents budget of {MAX_CALL_BYTES}",
                big.detail_type,
                big.size()
            )));
        }
        for chunk in chunks(entries) {
            self.put_chunk(chunk).await?;
        }
        Ok(())
    }

    async fn put_chunk(&self, chunk: &[Entry]) -> Result<(), Error> {
        let mut pending: Vec<&Entry> = chunk.iter().collect();
        let mut last_codes = Vec::new();
        for attempt in 1..=ATTEMPTS {
            let out = self
                .client
                .put_events()
                .set_entries(Some(pending.iter().map(|e| e.to_request()).collect()))
                .send()
                .await
                .map_err(|e| Error::from_sdk("PutEvents", e))?;
            if out.failed_entry_count() == 0 {
                return Ok(());
            }
            // Response entries line up with request entries; keep only the refused ones.
            let results = out.entries();
            last_codes.clear();
            let mut refused = Vec::new();
            for (i, entry) in pending.into_iter().enumerate() {
                let Some(result) = results.get(i) else { continue };
                let Some(code) = result.error_code() else { continue };
                if !ENTRY_RETRYABLE.contains(&code) {
                    // Refused for good (access, malformed detail): trying again changes nothing.
                    return Err(Error::Permanent {
                        op: "PutEvents",
                        code: code.to_string(),
                        message: format!(
                            "{} refused: {}",
                            entry.detail_type,
                            result.error_message().unwrap_or("no message")
                        ),
                        hint: None,
                    });
                }
                last_codes.push(code.to_string());
                refused.push(entry);
            }
            pending = refused;
            warn!(attempt, refused = pending.len(), codes = ?last_codes, "PutEvents refused some entries");
            if pending.is_empty() {
                // FailedEntryCount said otherwise, but no entry carries an error: trust the entries.
                return Ok(());
            }
        }
        Err(Error::Retryable {
            retry: Retry::Transient,
            op: "PutEvents",
            code: last_codes.first().cloned().unwrap_or_else(|| "FailedEntry".into()),
            message: format!("{} entries still refused after {ATTEMPTS} tries: {last_codes:?}", pending.len()),
        })
    }
}

/// The pipeline bus of this account, through [`Publisher`].
#[derive(Debug, Clone)]
pub struct PipelineBus {
    pub publisher: Publisher,
    /// Bus name or ARN.
    pub bus: String,
}

#[async_trait::async_trait]
impl crate::ports::EventBus for PipelineBus {
    async fn publish(&self, events: &[PipelineEvent]) -> Result<(), Error> {
        let entries = events.iter().map(|e| Entry::pipeline(&self.bus, e)).collect::<Result<Vec<_>, _>>()?;
        self.publisher.publish(&entries).await
    }
}

/// Splits entries into calls of at most [`MAX_ENTRIES`] and [`MAX_CALL_BYTES`].
pub fn chunks(entries: &[Entry]) -> Vec<&[Entry]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, entry) in entries.iter().enumerate() {
        if i > start && (i - start == MAX_ENTRIES || bytes + entry.size() > MAX_CALL_BYTES) {
            out.push(&entries[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += entry.size();
    }
    if start < entries.len() {
        out.push(&entries[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_eventbridge::operation::put_events::PutEventsOutput;
    use aws_sdk_eventbridge::types::PutEventsResultEntry;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    fn entry(n: usize, size: usize) -> Entry {
        Entry { bus: "b".into(), detail_type: format!("T{n}"), detail: "x".repeat(size), resources: vec![] }
    }

    #[test]
    fn chunks_respect_count_and_size() {
        let many: Vec<_> = (0..25).map(|n| entry(n, 10)).collect();
        let sizes: Vec<_> = chunks(&many).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![10, 10, 5]);
        let big: Vec<_> = (0..4).map(|n| entry(n, 100 * 1024)).collect();
        let sizes: Vec<_> = chunks(&big).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![2, 2]);
        assert!(chunks(&[]).is_empty());
    }

    #[tokio::test]
    async fn retries_only_the_refused_entries() {
        let first = mock!(aws_sdk_eventbridge::Client::put_events)
            .match_requests(|r| r.entries().len() == 3)
            .then_output(|| {
                PutEventsOutput::builder()
                    .failed_entry_count(1)
                    .entries(PutEventsResultEntry::builder().event_id("1").build())
                    .entries(PutEventsResultEntry::builder().error_code("ThrottlingException").build())
                    .entries(PutEventsResultEntry::builder().event_id("3").build())
                    .build()
            });
        let retry = mock!(aws_sdk_eventbridge::Client::put_events)
            .match_requests(|r| r.entries().len() == 1 && r.entries()[0].detail_type() == Some("T1"))
            .then_output(|| {
                PutEventsOutput::builder()
                    .failed_entry_count(0)
                    .entries(PutEventsResultEntry::builder().event_id("2").build())
                    .build()
            });
        let client = mock_client!(aws_sdk_eventbridge, RuleMode::MatchAny, [&first, &retry]);
        let entries: Vec<_> = (0..3).map(|n| entry(n, 5)).collect();
        Publisher::new(client).publish(&entries).await.unwrap();
        assert_eq!(first.num_calls(), 1);
        assert_eq!(retry.num_calls(), 1);
    }

    #[tokio::test]
    async fn gives_up_with_a_retryable_error() {
        let refuse = mock!(aws_sdk_eventbridge::Client::put_events).then_output(|| {
            PutEventsOutput::builder()
                .failed_entry_count(1)
                .entries(PutEventsResultEntry::builder().error_code("InternalFailure").build())
                .build()
        });
        let client = mock_client!(aws_sdk_eventbridge, RuleMode::MatchAny, [&refuse]);
        let err = Publisher::new(client).publish(&[entry(0, 5)]).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert_eq!(err.code(), "InternalFailure");
        assert_eq!(refuse.num_calls(), ATTEMPTS);
    }

    #[tokio::test]
    async fn a_permanent_refusal_is_not_retried() {
        let refuse = mock!(aws_sdk_eventbridge::Client::put_events).then_output(|| {
            PutEventsOutput::builder()
                .failed_entry_count(1)
                .entries(PutEventsResultEntry::builder().event_id("1").build())
                .entries(
                    PutEventsResultEntry::builder()
                        .error_code("AccessDeniedException")
                        .error_message("not authorized on bus snapferry")
                        .build(),
                )
                .build()
        });
        let client = mock_client!(aws_sdk_eventbridge, RuleMode::MatchAny, [&refuse]);
        let err = Publisher::new(client).publish(&[entry(0, 5), entry(1, 5)]).await.unwrap_err();
        assert!(!err.is_retryable(), "{err}");
        assert_eq!(err.code(), "AccessDeniedException");
        assert!(err.to_string().contains("not authorized"), "{err}");
        assert_eq!(refuse.num_calls(), 1, "no second try");
    }

    #[tokio::test]
    async fn oversized_entries_are_refused_before_any_call() {
        let never = mock!(aws_sdk_eventbridge::Client::put_events).then_output(|| PutEventsOutput::builder().build());
        let client = mock_client!(aws_sdk_eventbridge, RuleMode::MatchAny, [&never]);
        let err = Publisher::new(client).publish(&[entry(0, MAX_CALL_BYTES + 1)]).await.unwrap_err();
        assert!(matches!(err, Error::BadInput(_)), "{err}");
        assert_eq!(never.num_calls(), 0);
    }
}

/// Metrics in CloudWatch's embedded metric format: one JSON object per line on stdout,
/// which Lambda writes to the function's log group and CloudWatch turns into the metric
/// (CloudWatch User Guide, CloudWatch_Embedded_Metric_Format_Specification). No API call,
/// so counting never fails a step.
#[derive(Debug, Clone)]
pub struct Emf {
    pub namespace: String,
}

impl Emf {
    /// The one line that counts `name` once for `step` at `time`.
    pub fn line(&self, name: &str, step: &str, time: chrono::DateTime<chrono::Utc>) -> String {
        serde_json::json!({
            "_aws": {
                "Timestamp": time.timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [["Step"]],
                    "Metrics": [{ "Name": name, "Unit": "Count" }],
                }],
            },
            "Step": step,
            name: 1,
        })
        .to_string()
    }
}

impl Emf {
    /// The one line that records `value` of `name` for `step` (and `resource`) at `time`.
    pub fn value_line(
        &self,
        name: &str,
        step: &str,
        resource: Option<&str>,
        value: f64,
        unit: &str,
        time: chrono::DateTime<chrono::Utc>,
    ) -> String {
        let dimensions =
            if resource.is_some() { serde_json::json!([["Step", "Resource"]]) } else { serde_json::json!([["Step"]]) };
        let mut line = serde_json::json!({
            "_aws": {
                "Timestamp": time.timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": dimensions,
                    "Metrics": [{ "Name": name, "Unit": unit }],
                }],
            },
            "Step": step,
            name: value,
        });
        if let Some(resource) = resource {
            line["Resource"] = resource.into();
        }
        line.to_string()
    }
}

impl crate::ports::Metrics for Emf {
    fn count(&self, name: &str, step: &str) {
        println!("{}", self.line(name, step, chrono::Utc::now()));
    }

    fn value(&self, name: &str, step: &str, resource: Option<&str>, value: f64, unit: &str) {
        println!("{}", self.value_line(name, step, resource, value, unit, chrono::Utc::now()));
    }
}

#[cfg(test)]
mod emf_tests {
    use super::Emf;
    use chrono::TimeZone;

    #[test]
    fn a_value_per_resource_is_one_line_with_both_dimensions() {
        let emf = Emf { namespace: "snapferry".into() };
        let time = chrono::Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
        let line = emf.value_line(
            "RecoveryPointAgeSeconds",
            "reconcile-copies",
            Some("111111111111/orders"),
            3600.0,
            "Seconds",
            time,
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Dimensions"], serde_json::json!([["Step", "Resource"]]));
        assert_eq!(directive["Metrics"], serde_json::json!([{ "Name": "RecoveryPointAgeSeconds", "Unit": "Seconds" }]));
        assert_eq!(
            (&v["Resource"], &v["RecoveryPointAgeSeconds"]),
            (&serde_json::json!("111111111111/orders"), &serde_json::json!(3600.0))
        );
        let max = emf.value_line("MaxRecoveryPointAgeSeconds", "reconcile-copies", None, 7200.0, "Seconds", time);
        let v: serde_json::Value = serde_json::from_str(&max).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([["Step"]]));
        assert!(v.get("Resource").is_none());
    }

    #[test]
    fn a_count_is_one_embedded_metric_format_line() {
        let emf = Emf { namespace: "snapferry".into() };
        let time = chrono::Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
        let line = emf.line("SnapshotQuotaFull", "copy-shared-snapshot", time);
        assert!(!line.contains('\n'), "one log line");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(v["_aws"]["Timestamp"], time.timestamp_millis());
        assert_eq!(directive["Namespace"], "snapferry");
        assert_eq!(directive["Dimensions"], serde_json::json!([["Step"]]));
        assert_eq!(directive["Metrics"], serde_json::json!([{ "Name": "SnapshotQuotaFull", "Unit": "Count" }]));
        // The metric's value and its dimension are members named after them.
        assert_eq!(
            (&v["SnapshotQuotaFull"], &v["Step"]),
            (&serde_json::json!(1), &serde_json::json!("copy-shared-snapshot"))
        );
    }
}
