//! What every Lambda `main` does, once: tracing, configuration, the runtime loop.

use crate::config::Env;
use crate::error::Result;
use crate::sqs::BatchHandler;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};
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
}

impl StepEnv {
    pub fn from_env(env: &Env) -> Result<StepEnv> {
        Ok(StepEnv {
            queue_url: env.required("QUEUE_URL")?,
            dlq_url: env.required("DLQ_URL")?,
            pipeline_bus: env.optional("PIPELINE_BUS").unwrap_or_else(|| "snapferry".into()),
            recheck: Duration::from_secs(env.parse("RECHECK_SECONDS", 30u64)?),
            retry_base: Duration::from_secs(env.parse("RETRY_BASE_SECONDS", 10u64)?),
        })
    }
}

/// Runs `handler` as the Lambda's SQS event handler. Logs are JSON when the function's
/// log format is JSON (`AWS_LAMBDA_LOG_FORMAT`), which the runtime's subscriber honours.
pub async fn serve<H: BatchHandler + 'static>(handler: H) -> Result<(), lambda_runtime::Error> {
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

/// What every step handler holds: its clients, its queue, its publisher and settings.
#[derive(Debug, Clone)]
pub struct StepContext {
    pub clients: crate::clients::Clients,
    pub queue: crate::sqs::Queue,
    pub publisher: crate::publish::Publisher,
    pub env: StepEnv,
}

impl StepContext {
    pub fn new(clients: crate::clients::Clients, env: StepEnv) -> Self {
        let mut queue = crate::sqs::Queue::new(clients.sqs.clone(), env.queue_url.clone(), env.dlq_url.clone());
        queue.backoff_base = env.retry_base;
        let publisher = crate::publish::Publisher::new(clients.events.clone());
        StepContext { clients, queue, publisher, env }
    }

    /// Publishes pipeline events on this account's pipeline bus.
    pub async fn publish(&self, events: &[crate::events::PipelineEvent]) -> Result<()> {
        let entries = events
            .iter()
            .map(|e| crate::publish::Entry::pipeline(&self.env.pipeline_bus, e))
            .collect::<Result<Vec<_>>>()?;
        self.publisher.publish(&entries).await
    }

    /// The outcome "look at this again after the re-check interval".
    pub fn recheck(&self, recheck: crate::events::Recheck) -> Result<crate::sqs::Outcome> {
        Ok(crate::sqs::Outcome::Later { delay: self.env.recheck, body: recheck_body(recheck)? })
    }
}

pub fn recheck_body(recheck: crate::events::Recheck) -> Result<String> {
    serde_json::to_string(&recheck.into_envelope())
        .map_err(|e| crate::error::Error::BadInput(format!("re-check not serialisable: {e}")))
}

/// One pipeline step: what it does with one parsed message. Every step is a
/// [`BatchHandler`](crate::sqs::BatchHandler) through [`crate::sqs::run_batch`], so the SQS
/// handling (partial batch responses, DLQ routing, re-checks) is written once.
#[async_trait::async_trait]
pub trait PipelineStep: Send + Sync {
    fn context(&self) -> &StepContext;
    async fn step(&self, incoming: crate::events::Incoming, record: crate::sqs::Record) -> Result<crate::sqs::Outcome>;
}

#[async_trait::async_trait]
impl<T: PipelineStep> crate::sqs::BatchHandler for T {
    async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        crate::sqs::run_batch(&self.context().queue, event, |incoming, record| self.step(incoming, record)).await
    }
}
