//! What every step has: its settings ([`StepEnv`]), its ports ([`StepContext`]), the one
//! SQS wiring ([`PipelineStep`]) and the Lambda runtime loop ([`serve`]).

use crate::clients::Clients;
use crate::config::Env;
use crate::error::{Error, Result, Retry};
use crate::events::{PipelineEvent, Recheck, RecheckWhat, SnapshotRef, Step};
use crate::inbound::Incoming;
use crate::ports::{Clock, EventBus, Metrics, StepQueue, SystemClock};
use crate::sqs::{Backoff, BatchHandler, Outcome, Record};
use crate::store::Stores;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};
use lambda_runtime::{LambdaEvent, service_fn};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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
    /// How long a message waits for a full quota of copies in progress.
    pub quota_wait: Duration,
}

impl StepEnv {
    pub fn from_env(env: &Env) -> Result<StepEnv> {
        // The runtime reads ACCOUNT_ID and the CA variables (Clients::from_env, before any step
        // exists); every step checks them too, so a bad one fails wherever a step's
        // environment is parsed.
        crate::clients::deployed_account(env)?;
        crate::clients::trust(env)?;
        Ok(StepEnv {
            queue_url: env.required("QUEUE_URL")?,
            dlq_url: env.required("DLQ_URL")?,
            pipeline_bus: env.required("PIPELINE_BUS")?,
            recheck: Duration::from_secs(env.parse("RECHECK_SECONDS")?),
            retry_base: Duration::from_secs(env.parse("RETRY_BASE_SECONDS")?),
            max_rechecks: env.parse("MAX_RECHECKS")?,
            quota_wait: Duration::from_secs(env.parse::<u64>("QUOTA_WAIT_HOURS")? * 3600),
        })
    }

    pub fn backoff(&self) -> Backoff {
        Backoff { base: self.retry_base, quota_wait: self.quota_wait, ..Backoff::default() }
    }
}

/// What every step handler holds: the ports it acts through, and its settings.
#[derive(Clone)]
pub struct StepContext {
    pub stores: Arc<dyn Stores>,
    pub queue: Arc<dyn StepQueue>,
    pub bus: Arc<dyn EventBus>,
    pub metrics: Arc<dyn Metrics>,
    pub clock: Arc<dyn Clock>,
    /// The backup account's copy ledger (its table in the home region); unused elsewhere.
    pub ledger: Arc<dyn crate::ledger::Ledger>,
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
            metrics: Arc::new(crate::publish::Emf { namespace: crate::routing::Routing::load().metrics.namespace }),
            clock: Arc::new(SystemClock),
            ledger: Arc::new(crate::ledger::DynamoLedger::new(
                clients.dynamodb.clone(),
                crate::routing::Routing::load().copy_ledger,
            )),
            env,
        }
    }

    pub fn account(&self) -> &str {
        self.stores.account()
    }

    /// Waits `d` by the step's clock, within the handler: the other records of the batch
    /// take their turns meanwhile, and this one takes its turn back before it goes on.
    pub async fn wait(&self, d: Duration) {
        let turns = TURN
            .try_with(|turn| {
                turn.held.borrow_mut().take();
                Arc::clone(&turn.turns)
            })
            .ok();
        self.clock.sleep(d).await;
        if let Some(turns) = turns {
            let held = turns.acquire_owned().await.ok();
            let _ = TURN.try_with(|turn| *turn.held.borrow_mut() = held);
        }
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

    /// A message waited for a full quota of copies in progress longer than
    /// [`StepEnv::quota_wait`]: the wait ends as a permanent error (so the message is
    /// dead-lettered with the reason) and, where the message names a snapshot, a Snapshot
    /// Rejected event saying why.
    async fn quota_wait_over(&self, stalled: Option<(String, SnapshotRef, SnapshotRef)>, e: Error) -> Error {
        let error = Error::Permanent {
            op: "QuotaWait",
            code: "QuotaWaitExceeded".into(),
            message: format!("copies in progress stayed at the quota for over {:?}: {e}", self.env.quota_wait),
            hint: Some(
                "copies of other tools or a stuck copy hold the quota; look at the copies in progress, then replay",
            ),
        };
        let Some((correlation_id, snapshot, origin)) = stalled else { return error };
        let rejected = PipelineEvent::new(
            correlation_id,
            snapshot,
            origin,
            Step::Rejected { reason: error.to_string(), sender_account: None },
        );
        match self.publish(&[rejected]).await {
            Ok(()) => error,
            Err(publish) => publish,
        }
    }

    /// The outcome "look at this again after the re-check interval"; past
    /// [`StepEnv::max_rechecks`] a permanent error that says what never finished.
    pub fn recheck(&self, recheck: Recheck) -> Result<Outcome> {
        self.recheck_after(recheck, self.env.recheck)
    }

    pub(crate) fn recheck_after(&self, recheck: Recheck, delay: Duration) -> Result<Outcome> {
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
        self.queue.send_later(&recheck_body(recheck)?, delay, attempt, None, None).await
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

/// The records of a batch take turns: one at a time, as if handled one after the other (a
/// record and its duplicate in the same batch never race, and the second finds what the
/// first did), except that a record waiting in its handler ([`StepContext::wait`]) gives
/// up its turn meanwhile, so its wait holds up no other record.
#[async_trait::async_trait]
impl<T: PipelineStep> BatchHandler for T {
    async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let ctx = self.context();
        let turns = Arc::new(Semaphore::new(1));
        crate::sqs::run_batch(ctx.queue.as_ref(), ctx.env.backoff(), ctx.now(), event, |incoming, record| {
            let turns = Arc::clone(&turns);
            async move {
                // Never closed; a semaphore is fair, so the records go in the batch's order.
                let held = Arc::clone(&turns).acquire_owned().await.ok();
                let turn = RecordTurn { turns, held: std::cell::RefCell::new(held) };
                TURN.scope(turn, async {
                    let stalled = stalled_event(&incoming);
                    let waited_past = record.waited_past(ctx.env.quota_wait, ctx.now());
                    match self.step(incoming, record).await {
                        Err(e) if e.retry() == Some(Retry::QuotaExceeded) && waited_past => {
                            Err(ctx.quota_wait_over(stalled, e).await)
                        }
                        other => other,
                    }
                })
                .await
            }
        })
        .await
    }
}

/// A record's turn within its batch (see [`BatchHandler`] for [`PipelineStep`]s).
struct RecordTurn {
    turns: Arc<Semaphore>,
    held: std::cell::RefCell<Option<OwnedSemaphorePermit>>,
}

tokio::task_local! {
    static TURN: RecordTurn;
}

/// What a Snapshot Rejected event about `incoming` names, when it names a snapshot: the
/// snapshot and origin of a pipeline event or of a re-check of a copy.
fn stalled_event(incoming: &Incoming) -> Option<(String, SnapshotRef, SnapshotRef)> {
    match incoming {
        Incoming::Pipeline(e) => {
            Some((e.detail.correlation_id.clone(), e.detail.snapshot.clone(), e.detail.origin.clone()))
        }
        Incoming::Recheck(e) => match &e.detail.what {
            RecheckWhat::ShareWhenAvailable { copy, origin }
            | RecheckWhat::CopyWhenAvailable { copy, origin, .. }
            | RecheckWhat::CopyToRegion { copy, origin, .. }
            | RecheckWhat::RestoreProgress { copy, origin, .. } => {
                Some((e.detail.correlation_id.clone(), copy.clone(), origin.clone()))
            }
            RecheckWhat::ExpireFrom { .. } => None,
        },
        Incoming::Schedule(_) | Incoming::BackupRequested(_) | Incoming::Native(_) => None,
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
