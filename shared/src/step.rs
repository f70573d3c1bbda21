//! What every step has: its settings ([`StepEnv`]), its ports ([`StepContext`]), the one
//! SQS wiring ([`PipelineStep`]) and the Lambda runtime loop ([`serve`]).

use crate::clients::Clients;
use crate::config::Env;
use crate::error::{Error, Result};
use crate::events::{PipelineEvent, Recheck};
use crate::inbound::Incoming;
use crate::ports::{Clock, EventBus, StepQueue, SystemClock};
use crate::sqs::{Backoff, BatchHandler, Outcome, Record};
use crate::store::{CopyCompletion, SnapshotStore, Stores};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};
use lambda_runtime::{LambdaEvent, service_fn};
use std::sync::Arc;
use std::time::Duration;

/// Settings every step has: its queue, its dead-letter queue, its pipeline bus, and how
/// long to wait between re-checks of something in progress.
#[derive(Debug, Clone)]
pub struct StepEnv {
    pub queue_url: String,
    pub dlq_url: String,
    pub pipeline_bus: String,
    pub recheck: Duration,
    /// First backoff of a retried message (doubling, jittered, capped at five minutes).
    pub retry_base: Duration,
    /// Re-checks of one thing before the wait is given up and reported.
    pub max_rechecks: u32,
}

/// How much longer than [`StepEnv::recheck`] a step waits before looking at a copy whose
/// end AWS announces: the event normally comes first, the re-check only backs it up.
const BACKSTOP_FACTOR: u32 = 10;
/// SQS delays a message by at most 15 minutes.
const MAX_DELAY: Duration = Duration::from_secs(900);

impl StepEnv {
    pub fn from_env(env: &Env) -> Result<StepEnv> {
        Ok(StepEnv {
            queue_url: env.required("QUEUE_URL")?,
            dlq_url: env.required("DLQ_URL")?,
            pipeline_bus: env.required("PIPELINE_BUS")?,
            recheck: Duration::from_secs(env.parse("RECHECK_SECONDS")?),
            retry_base: Duration::from_secs(env.parse("RETRY_BASE_SECONDS")?),
            max_rechecks: env.parse("MAX_RECHECKS")?,
        })
    }

    pub fn backoff(&self) -> Backoff {
        Backoff { base: self.retry_base, ..Backoff::default() }
    }
}

/// What every step handler holds: the ports it acts through, and its settings.
#[derive(Clone)]
pub struct StepContext {
    pub stores: Arc<dyn Stores>,
    pub queue: Arc<dyn StepQueue>,
    pub bus: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
    pub env: StepEnv,
}

impl std::fmt::Debug for StepContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepContext").field("account", &self.account()).field("env", &self.env).finish()
    }
}

impl StepContext {
    /// The AWS adapters: the stores, SQS and EventBridge of `clients`' account.
    pub fn aws(clients: &Clients, env: StepEnv) -> Self {
        let queue = crate::sqs::Queue::new(clients.sqs.clone(), env.queue_url.clone(), env.dlq_url.clone());
        let bus = crate::publish::PipelineBus {
            publisher: crate::publish::Publisher::new(clients.events.clone()),
            bus: env.pipeline_bus.clone(),
        };
        StepContext {
            stores: Arc::new(clients.clone()),
            queue: Arc::new(queue),
            bus: Arc::new(bus),
            clock: Arc::new(SystemClock),
            env,
        }
    }

    pub fn account(&self) -> &str {
        self.stores.account()
    }

    pub fn region(&self) -> &str {
        self.stores.region()
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Publishes pipeline events on this account's pipeline bus.
    pub async fn publish(&self, events: &[PipelineEvent]) -> Result<()> {
        self.bus.publish(events).await
    }

    /// The outcome "look at this again after the re-check interval"; past
    /// [`StepEnv::max_rechecks`] a permanent error that says what never finished.
    pub fn recheck(&self, recheck: Recheck) -> Result<Outcome> {
        self.recheck_after(recheck, self.env.recheck)
    }

    /// [`Self::recheck`] for a copy into `store`: every copy waited for is re-checked, and
    /// where AWS announces its end the re-check is only a backstop for a lost event
    /// (AWS delivers events best effort), so it comes later.
    pub fn recheck_copy(&self, store: &dyn SnapshotStore, recheck: Recheck) -> Result<Outcome> {
        let delay = match store.copy_completion() {
            CopyCompletion::Event => self.env.recheck.saturating_mul(BACKSTOP_FACTOR).min(MAX_DELAY),
            CopyCompletion::Recheck => self.env.recheck,
        };
        self.recheck_after(recheck, delay)
    }

    fn recheck_after(&self, recheck: Recheck, delay: Duration) -> Result<Outcome> {
        if recheck.attempt > self.env.max_rechecks {
            return Err(Error::Permanent {
                op: "recheck",
                code: "StillInProgress".into(),
                message: format!(
                    "gave up after {} re-checks ({:?} each): {:?}",
                    self.env.max_rechecks, delay, recheck.what
                ),
                hint: Some(
                    "AWS never finished this; look at it in the console, then replay the message if it should go on",
                ),
            });
        }
        Ok(Outcome::Later { delay, body: recheck_body(recheck)? })
    }

    /// Sends a message of its own to this step's queue, delivered after `delay`: for a
    /// step that fans out into more than one follow-up (where [`Outcome::Later`] has room
    /// for one).
    pub async fn follow_up(&self, recheck: Recheck, delay: Duration) -> Result<()> {
        let attempt = recheck.attempt;
        self.queue.send_later(&recheck_body(recheck)?, delay, attempt).await
    }
}

pub fn recheck_body(recheck: Recheck) -> Result<String> {
    serde_json::to_string(&recheck.into_envelope())
        .map_err(|e| Error::BadInput(format!("re-check not serialisable: {e}")))
}

/// One pipeline step: what it does with one parsed message. Every step is a
/// [`BatchHandler`] through [`crate::sqs::run_batch`], so the SQS handling (partial batch
/// responses, DLQ routing, re-checks) is written once.
#[async_trait::async_trait]
pub trait PipelineStep: Send + Sync {
    fn context(&self) -> &StepContext;
    async fn step(&self, incoming: Incoming, record: Record) -> Result<Outcome>;
}

#[async_trait::async_trait]
impl<T: PipelineStep> BatchHandler for T {
    async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let ctx = self.context();
        crate::sqs::run_batch(ctx.queue.as_ref(), ctx.env.backoff(), event, |incoming, record| {
            self.step(incoming, record)
        })
        .await
    }
}

/// Runs `handler` as the Lambda's SQS event handler. Logs are JSON when the function's
/// log format is JSON (`AWS_LAMBDA_LOG_FORMAT`), which the runtime's subscriber honours.
pub async fn serve(handler: Arc<dyn BatchHandler>) -> Result<(), lambda_runtime::Error> {
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, lambda_runtime::Error>(handler.handle(event.payload).await)
    }))
    .await
}

/// Initialises tracing the way the Lambda runtime recommends.
pub fn init_tracing() {
    lambda_runtime::tracing::init_default_subscriber();
}
