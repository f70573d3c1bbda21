//! Any bytes as the SQS batch Lambda hands a step: what deserializes runs through
//! `run_batch`, which never panics and reports only ids of the batch for retry.
#![no_main]

use aws_lambda_events::event::sqs::SqsEvent;
use libfuzzer_sys::fuzz_target;
use snapferry::error::Error;
use snapferry::ports::StepQueue;
use snapferry::sqs::{Backoff, Outcome, run_batch};
use std::time::Duration;

/// A queue that accepts everything: the target looks at the handling, not at SQS.
struct Accepting;

#[async_trait::async_trait]
impl StepQueue for Accepting {
    async fn send_later(
        &self,
        _: &str,
        _: Duration,
        _: u32,
        _: Option<chrono::DateTime<chrono::Utc>>,
        _: Option<&str>,
    ) -> Result<(), Error> {
        Ok(())
    }
    async fn send_to(&self, _: &str, _: &str) -> Result<(), Error> {
        Ok(())
    }
    async fn dead_letter(&self, _: &str, _: &Error) -> Result<(), Error> {
        Ok(())
    }
    async fn retry_after(&self, _: &str, _: Duration) -> Result<(), Error> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(event) = serde_json::from_slice::<SqsEvent>(data) else { return };
    let ids: Vec<String> = event.records.iter().filter_map(|m| m.message_id.clone()).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    let response = runtime.block_on(run_batch(&Accepting, Backoff::default(), chrono::Utc::now(), event, |_, _| async {
        Ok(Outcome::Done)
    }));
    assert!(response.batch_item_failures.iter().all(|f| ids.contains(&f.item_identifier)));
});
