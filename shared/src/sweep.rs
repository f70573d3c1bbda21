//! A sweep over many resources or snapshots (create's schedule, expire, reconcile) goes on
//! past one that fails: a database with a disabled key, one in `creating`, a snapshot AWS
//! refuses to delete must not cost every resource after it its backup. Each failure is
//! reported on its own (a "Snapshot Rejected" event with AWS's reason, naming the snapshot
//! or resource, and the `ResourceFailed` metric the stacks alarm on); when one of them may
//! pass (throttling, a service error), the run fails at its end, after doing everything
//! else, so SQS brings it again (every step's sweep is idempotent) and, past the queue's
//! receive count, dead-letters it with that reason for an operator to replay.

use crate::error::{Error, Result};
use crate::events::{PipelineEvent, SnapshotRef, Step};
use crate::step::StepContext;
use tracing::warn;

/// How long after it was taken a snapshot snapferry did not make (taken by hand, by RDS's
/// automated backups, by another tool) of a selected resource is looked for by
/// reconcile-snapshots, in case its creation event was lost: the share step backs such a
/// snapshot up when that event comes. Its re-encrypted copy is what tells that it was
/// backed up, so expire-snapshots keeps a released copy until it is this old: no snapshot is
/// backed up twice. Older ones (from before snapferry was deployed, or before the resource
/// was selected) are not backed up after the fact.
pub const TAKEN_ELSEWHERE_LOOKBACK: chrono::Duration = chrono::Duration::hours(6);

/// The failures of one sweep, reported together at its end.
#[must_use = "a sweep's failures are reported by `report`"]
pub struct Failures {
    step: &'static str,
    failed: Vec<(SnapshotRef, Error)>,
}

impl Failures {
    /// No failures yet, for the step named `step` (the metric's `Step` dimension).
    pub fn new(step: &'static str) -> Self {
        Failures { step, failed: Vec::new() }
    }

    /// `about` (the snapshot, or the snapshot a resource would have had) failed with `error`.
    pub fn record(&mut self, about: SnapshotRef, error: Error) {
        warn!(snapshot_arn = about.arn, resource = about.resource_id, error = %error, "failed; the sweep goes on");
        self.failed.push((about, error));
    }

    /// `result`'s value, or `None` with its error recorded against `about`.
    pub fn check<T>(&mut self, about: impl FnOnce() -> SnapshotRef, result: Result<T>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.record(about(), e);
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.failed.is_empty()
    }

    /// Publishes one "Snapshot Rejected" per failure and counts each; then fails with the
    /// first failure that may pass, so the run is tried again and in the end dead-lettered.
    pub async fn report(self, ctx: &StepContext) -> Result<()> {
        if self.failed.is_empty() {
            return Ok(());
        }
        let metric = crate::routing::Routing::load().metrics.resource_failed;
        let events: Vec<PipelineEvent> = self
            .failed
            .iter()
            .map(|(about, e)| {
                ctx.metrics.count(&metric, self.step);
                let correlation_id = format!("{}-{}", self.step, about.resource_id);
                let step = Step::Rejected { reason: format!("{}: {e}", self.step), sender_account: None };
                PipelineEvent::new(correlation_id, about.clone(), about.clone(), step)
            })
            .collect();
        ctx.publish(&events).await?;
        let total = self.failed.len();
        match self.failed.into_iter().find(|(_, e)| e.is_retryable()) {
            Some((about, e)) => {
                warn!(failed = total, "the run is tried again for the failures that may pass");
                Err(match e {
                    Error::Retryable { retry, op, code, message } => {
                        let message = format!("{}: {message} ({total} failed in this run, each reported)", about.arn);
                        Error::Retryable { retry, op, code, message }
                    }
                    other => other,
                })
            }
            None => Ok(()),
        }
    }
}
