//! The ports a step depends on besides its stores ([`crate::store::Stores`]): the step's
//! own queue, the pipeline bus, metrics and the clock. The AWS adapters are
//! [`crate::sqs::Queue`], [`crate::publish::PipelineBus`] and [`crate::publish::Emf`]; the in-memory ones are in `snapferry::memory`
//! (feature `memory`), for decision tests that run in milliseconds.

use crate::error::{Error, Result};
use crate::events::PipelineEvent;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The queue a step consumes, and its dead-letter queue.
#[async_trait]
pub trait StepQueue: Send + Sync {
    /// Delivers `body` to this step again after `delay` (SQS caps delays at 900 s),
    /// counted as attempt `attempt`; `waiting_since` travels with it while it waits for a
    /// full quota of copies in progress, and `handling` (the message it goes on from, see
    /// [`crate::sqs::Record::handling`]) where it is the same message sent again.
    async fn send_later(
        &self,
        body: &str,
        delay: Duration,
        attempt: u32,
        waiting_since: Option<DateTime<Utc>>,
        handling: Option<&str>,
    ) -> Result<()>;
    /// Parks `body` in the dead-letter queue, with the reason next to it.
    async fn dead_letter(&self, body: &str, error: &Error) -> Result<()>;
    /// Makes a record that failed visible again only after `delay` (its retry backoff).
    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<()>;
    /// Sends `body` to another step's queue (reconcile restarts a stalled step there).
    async fn send_to(&self, queue_url: &str, body: &str) -> Result<()>;
}

/// This account's pipeline bus.
#[async_trait]
pub trait EventBus: Send + Sync {
    /// Publishes every event, or fails (nothing is silently dropped).
    async fn publish(&self, events: &[PipelineEvent]) -> Result<()>;
}

/// Numbers the stacks alarm on (names in `shared/routing.json` under `metrics`).
pub trait Metrics: Send + Sync {
    /// Counts one occurrence of metric `name` for the function `step`.
    fn count(&self, name: &str, step: &str);
    /// Records `value` of metric `name` (in `unit`, CloudWatch's names: `Seconds`, ...) for
    /// `step`, and for one `resource` when given.
    fn value(&self, name: &str, step: &str, resource: Option<&str>, value: f64, unit: &str);
}

/// What time it is; steps decide by this clock, not the system clock, so tests can set it.
/// The exception is waiting on a real database, which a test's clock cannot hurry: the
/// restore step's login wait for data checks (`LOGIN_WAIT` in `services/restore`, up to
/// 30 s while RDS applies the master password it has just set) is timed in real time
/// (`std::time::Instant`, `tokio::time::sleep`), as are the data checks' connection and
/// statement time limits (`tokio::time::timeout` in `snapferry-data`).
#[async_trait]
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    /// Waits `d`: a step's short waits in its handler (`StepContext::wait`) go through the
    /// clock too, so a test's clock moves on instead of sleeping (the login wait above aside).
    async fn sleep(&self, d: Duration);
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}
