//! Lambda's SQS event source mapping, played against the emulator.

use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use chrono::SubsecRound;
use serde_json::json;
use snapferry::clients::Clients;
use snapferry::error::{Error, Result, Retry};
use snapferry::events::{EventEnvelope, SCHEDULE_SOURCE, SCHEDULED_EVENT};
use snapferry::sqs::BatchHandler;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use crate::deploy::{DeployedQueue, DeployedSchedule, Deployment};

/// SQS accepts at most 10 entries per `DeleteMessageBatch`.
const DELETE_BATCH_MAX: usize = 10;
/// How long a poller rests after a poll that received nothing: short enough that a local
/// pipeline feels instant, long enough not to spin on the emulator.
const IDLE_PAUSE: Duration = Duration::from_millis(200);
/// After a failed poll (emulator restarting, say) `run_forever` waits longer before retrying.
const ERROR_PAUSE: Duration = Duration::from_secs(2);
/// One function as the host runs it.
struct Hosted {
    queue: DeployedQueue,
    sqs: aws_sdk_sqs::Client,
    handler: Arc<dyn BatchHandler>,
    /// Invocations so far, and the one (1-based; 0: none) [`Host::kill_invocation`] kills.
    invocations: AtomicUsize,
    kill_at: AtomicUsize,
    counts: Arc<Counts>,
}

/// What the host did, as Lambda's metrics would show it.
#[derive(Debug, Default)]
struct Counts {
    /// Messages deleted after their handler acknowledged them (SQS confirmed the delete), by
    /// id: one handled by two invocations at once (its visibility timeout passed while the
    /// first ran, as in AWS) is one message.
    acknowledged: std::sync::Mutex<HashSet<String>>,
    /// Invocations killed by [`Host::kill_invocation`].
    killed: AtomicU64,
}

/// Lambda's SQS event source mapping, for every registered function.
pub struct Host {
    functions: Vec<Arc<Hosted>>,
    /// Invocations of one function at once: what Lambda's event source mapping runs (at
    /// least 2, its minimum maximum concurrency), each with a batch of its own.
    concurrency: usize,
    schedules: Vec<DeployedSchedule>,
    queues: BTreeMap<(String, String), DeployedQueue>,
    counts: Arc<Counts>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hosted: Vec<_> = self.functions.iter().map(|h| (&h.queue.account, &h.queue.function)).collect();
        f.debug_struct("Host").field("functions", &hosted).field("schedules", &self.schedules).finish()
    }
}

impl Host {
    /// A host for `deployment` with no function registered yet.
    pub fn new(deployment: &Deployment) -> Host {
        Host {
            functions: Vec::new(),
            concurrency: 1,
            schedules: deployment.schedules.clone(),
            queues: deployment.queues.clone(),
            counts: Arc::default(),
        }
    }

    /// Runs `handler` for `function`'s queue in `clients`' account (its SQS client is used
    /// for receiving and deleting, as the Lambda's execution role would be).
    pub fn register(&mut self, clients: &Clients, function: &str, handler: Arc<dyn BatchHandler>) -> Result<&mut Host> {
        let key = (clients.account.clone(), function.to_string());
        let queue = self
            .queues
            .get(&key)
            .cloned()
            .ok_or_else(|| Error::Config(format!("{function} is not deployed in account {}", clients.account)))?;
        self.functions.retain(|h| (&h.queue.account, &h.queue.function) != (&key.0, &key.1));
        self.functions.push(Arc::new(Hosted {
            queue,
            sqs: clients.sqs.clone(),
            handler,
            invocations: AtomicUsize::new(0),
            kill_at: AtomicUsize::new(0),
            counts: Arc::clone(&self.counts),
        }));
        Ok(self)
    }

    /// Runs up to `n` invocations of each function at once (at least one).
    pub fn set_concurrency(&mut self, n: usize) -> &mut Host {
        self.concurrency = n.max(1);
        self
    }

    /// Fault injection for tests: the `nth` invocation from now (1: the next) of `function`
    /// in `account` runs its handler to the end, then is killed before Lambda would delete
    /// what it acknowledged, as when a Lambda dies after its work (out of memory, timed out
    /// on its last call). Nothing of that batch is deleted, so SQS delivers all of it again
    /// after its visibility timeout: the step must find its own work done.
    pub fn kill_invocation(&self, account: &str, function: &str, nth: usize) -> Result<()> {
        let hosted = self
            .functions
            .iter()
            .find(|h| h.queue.account == account && h.queue.function == function)
            .ok_or_else(|| Error::Config(format!("{function} is not registered for account {account}")))?;
        hosted.kill_at.store(hosted.invocations.load(Ordering::SeqCst) + nth.max(1), Ordering::SeqCst);
        Ok(())
    }

    /// Records deleted after their handler acknowledged them, since the host was made.
    pub fn acknowledged(&self) -> u64 {
        self.counts.acknowledged.lock().map(|ids| ids.len() as u64).unwrap_or_default()
    }

    /// Invocations killed by [`Host::kill_invocation`].
    pub fn killed(&self) -> u64 {
        self.counts.killed.load(Ordering::SeqCst)
    }

    /// One round over every registered function: receive a batch, run the handler, delete
    /// what succeeded. Returns how many messages were handed to handlers.
    pub async fn poll_once(&self) -> Result<usize> {
        let mut rounds = JoinSet::new();
        for hosted in &self.functions {
            rounds.spawn(Arc::clone(hosted).poll_round(self.concurrency));
        }
        let mut handled = 0;
        let mut first_error = None;
        while let Some(joined) = rounds.join_next().await {
            match joined {
                Ok(Ok(n)) => handled += n,
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => {
                    // Only our own code runs here (handlers run in their own task), so this is a bug.
                    first_error.get_or_insert(Error::Config(format!("host task failed: {e}")));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(handled),
        }
    }

    /// Polls until `done()` answers true; fails when `deadline` passes first.
    pub async fn run_until<F, Fut>(&self, deadline: Duration, mut done: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let start = Instant::now();
        loop {
            if done().await {
                return Ok(());
            }
            if start.elapsed() >= deadline {
                return Err(Error::Retryable {
                    retry: Retry::NotReady,
                    op: "run_until",
                    code: "DeadlineExceeded".into(),
                    message: format!("condition not reached within {deadline:?}"),
                });
            }
            if self.poll_once().await? == 0 {
                tokio::time::sleep(IDLE_PAUSE).await;
            }
        }
    }

    /// `snapferry local`: polls until Ctrl-C, then finishes the round in progress and returns.
    pub async fn run_forever(&self) -> Result<()> {
        self.run_until_stopped(async {
            if let Err(e) = tokio::signal::ctrl_c().await {
                // Without a signal handler the host can still be stopped by killing the process.
                warn!(error = %e, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        })
        .await
    }

    /// Polls until `stop` completes. Each function polls its queue on its own (with as many
    /// pollers as its concurrency), as each SQS event source mapping does in AWS, so a slow handler holds up its own queue only (in
    /// rounds, every queue would wait for the slowest handler of the round). An invocation
    /// in progress is finished first, so no handler is cut off between its work and the
    /// deletion of its messages.
    pub async fn run_until_stopped<S: Future<Output = ()>>(&self, stop: S) -> Result<()> {
        let (stopping, stopped) = tokio::sync::watch::channel(false);
        let mut pollers = JoinSet::new();
        for hosted in self.functions.iter().flat_map(|h| std::iter::repeat_n(h, self.concurrency)) {
            let (hosted, mut stopped) = (Arc::clone(hosted), stopped.clone());
            pollers.spawn(async move {
                while !*stopped.borrow() {
                    let pause = match Arc::clone(&hosted).poll().await {
                        Ok(0) => IDLE_PAUSE,
                        Ok(_) => continue,
                        Err(e) => {
                            // The emulator restarting or a queue deleted by hand: keep polling.
                            let (function, account) = (&hosted.queue.function, &hosted.queue.account);
                            error!(function, account, error = %e, "polling failed; trying again");
                            ERROR_PAUSE
                        }
                    };
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        _ = stopped.changed() => {}
                    }
                }
            });
        }
        stop.await;
        info!("stopping after the invocations in progress");
        // Every poller holds a receiver, so the send reaches them all.
        let _ = stopping.send(true);
        while let Some(joined) = pollers.join_next().await {
            if let Err(e) = joined {
                // Only our own code runs here (handlers run in their own task), so this is a bug.
                return Err(Error::Config(format!("host task failed: {e}")));
            }
        }
        info!("stopped");
        Ok(())
    }

    /// Delivers what EventBridge would for each schedule rule (the emulator fires none) to
    /// the rule's queue. Returns how many events were sent.
    pub async fn fire_schedule(&self) -> Result<usize> {
        self.fire(None, chrono::Utc::now()).await
    }

    /// [`Host::fire_schedule`] for the schedules of `step` only (every step's when `None`),
    /// stamped `at` as if EventBridge fired them then (a test's later hour).
    pub async fn fire(&self, step: Option<&str>, at: chrono::DateTime<chrono::Utc>) -> Result<usize> {
        if let Some(step) = step
            && !self.schedules.iter().any(|s| s.function == step)
        {
            let known: Vec<&str> = self.schedules.iter().map(|s| s.function.as_str()).collect();
            return Err(Error::Config(format!("{step} has no schedule; scheduled steps: {}", known.join(", "))));
        }
        let mut sent = 0;
        for schedule in self.schedules.iter().filter(|s| step.is_none_or(|f| s.function == f)) {
            let hosted = self
                .functions
                .iter()
                .find(|h| h.queue.account == schedule.account && h.queue.function == schedule.function)
                .ok_or_else(|| {
                    Error::Config(format!(
                        "{} is not registered for account {}; cannot fire {}",
                        schedule.function, schedule.account, schedule.rule_name
                    ))
                })?;
            let mut event = EventEnvelope::new(SCHEDULE_SOURCE, SCHEDULED_EVENT, json!({}));
            event.account = Some(schedule.account.clone());
            event.region = Some(schedule.region.clone());
            // EventBridge stamps scheduled events to the second.
            event.time = Some(at.trunc_subsecs(0));
            event.resources = vec![schedule.rule_arn.clone()];
            let body = serde_json::to_string(&event)
                .map_err(|e| Error::Config(format!("cannot serialize the scheduled event: {e}")))?;
            hosted
                .sqs
                .send_message()
                .queue_url(&hosted.queue.queue_url)
                .message_body(body)
                .send()
                .await
                .map_err(|e| Error::from_sdk("SendMessage", e))?;
            info!(rule = schedule.rule_name, account = schedule.account, "schedule fired");
            sent += 1;
        }
        Ok(sent)
    }
}

impl Hosted {
    async fn poll(self: Arc<Self>) -> Result<usize> {
        match self.receive().await? {
            Some(messages) => self.invoke(messages).await,
            None => Ok(0),
        }
    }

    /// One round of this function: a look at its queue, and only when that found work, the
    /// other `concurrency - 1` invocations' looks, beside the first one's handling. An idle
    /// queue costs one `ReceiveMessage` a round, not one per invocation.
    async fn poll_round(self: Arc<Self>, concurrency: usize) -> Result<usize> {
        let Some(messages) = self.receive().await? else { return Ok(0) };
        let mut others = JoinSet::new();
        for _ in 1..concurrency {
            others.spawn(Arc::clone(&self).poll());
        }
        let mut handled = Arc::clone(&self).invoke(messages).await;
        while let Some(joined) = others.join_next().await {
            let n = joined.map_err(|e| Error::Config(format!("host task failed: {e}")))?;
            handled = match (handled, n) {
                (Ok(a), Ok(b)) => Ok(a + b),
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
        }
        handled
    }

    /// A batch from the queue, as the event source mapping receives it; `None` when empty.
    async fn receive(&self) -> Result<Option<Vec<Message>>> {
        let q = &self.queue;
        // Lambda's BatchSize goes up to 10 000 with a batching window; SQS gives at most 10 per call.
        let max = i32::try_from(q.batch_size.clamp(1, 10)).unwrap_or(10);
        let out = self
            .sqs
            .receive_message()
            .queue_url(&q.queue_url)
            .max_number_of_messages(max)
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| Error::from_sdk("ReceiveMessage", e))?;
        let messages = out.messages.unwrap_or_default();
        Ok((!messages.is_empty()).then_some(messages))
    }

    /// Runs the handler on `messages` and deletes what it acknowledged, as Lambda does.
    async fn invoke(self: Arc<Self>, messages: Vec<Message>) -> Result<usize> {
        let q = &self.queue;
        let messages = &messages[..];
        let mut event = SqsEvent::default();
        event.records = messages.iter().map(|m| to_lambda_record(m, &q.queue_arn, &q.region)).collect();
        let ids: Vec<String> = event.records.iter().filter_map(|r| r.message_id.clone()).collect();
        debug!(function = q.function, account = q.account, count = messages.len(), "invoking");

        let invocation_number = self.invocations.fetch_add(1, Ordering::SeqCst) + 1;
        let handler = Arc::clone(&self.handler);
        // Its own task, so a panic is caught like a crashed Lambda instead of taking down the host.
        let mut invocation = tokio::spawn(async move { handler.handle(event).await });
        let response = match tokio::time::timeout(q.timeout, &mut invocation).await {
            Ok(Ok(response)) => Some(response),
            Ok(Err(e)) => {
                error!(function = q.function, account = q.account, error = %e, "handler crashed; the whole batch will be retried");
                None
            }
            Err(_) => {
                invocation.abort();
                error!(
                    function = q.function,
                    account = q.account,
                    timeout_s = q.timeout.as_secs(),
                    "handler timed out; the whole batch will be retried"
                );
                None
            }
        };
        if self.kill_at.load(Ordering::SeqCst) == invocation_number {
            self.counts.killed.fetch_add(1, Ordering::SeqCst);
            warn!(
                function = q.function,
                account = q.account,
                "invocation killed (test fault); the whole batch will be retried"
            );
            return Ok(messages.len());
        }
        let succeeded = match response {
            Some(response) => succeeded_records(&q.function, messages, &ids, &response),
            None => Vec::new(),
        };
        self.delete(&succeeded).await;
        Ok(messages.len())
    }

    /// Deletes `messages`; a failure only means they are delivered again (at least once).
    async fn delete(&self, messages: &[&Message]) {
        for chunk in messages.chunks(DELETE_BATCH_MAX) {
            let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .set_receipt_handle(m.receipt_handle().map(str::to_string))
                        .build()
                        .ok()
                })
                .collect();
            if entries.is_empty() {
                continue;
            }
            let q = &self.queue;
            match self.sqs.delete_message_batch().queue_url(&q.queue_url).set_entries(Some(entries)).send().await {
                Ok(out) => {
                    if let Ok(mut ids) = self.counts.acknowledged.lock() {
                        for ok in out.successful() {
                            let message = ok.id().parse::<usize>().ok().and_then(|i| chunk.get(i));
                            ids.extend(message.and_then(|m| m.message_id()).map(str::to_string));
                        }
                    }
                    for failed in out.failed() {
                        warn!(
                            function = q.function,
                            id = failed.id(),
                            code = failed.code(),
                            "could not delete; it will be delivered again"
                        );
                    }
                }
                Err(e) => {
                    let e = Error::from_sdk("DeleteMessageBatch", e);
                    warn!(function = q.function, error = %e, "could not delete; the batch will be delivered again");
                }
            }
        }
    }
}

/// The records Lambda deletes after a `ReportBatchItemFailures` response. As Lambda does, a
/// response naming an id that is empty or not in the batch fails the whole batch.
fn succeeded_records<'a>(
    function: &str,
    messages: &'a [Message],
    ids: &[String],
    response: &SqsBatchResponse,
) -> Vec<&'a Message> {
    let batch: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut failed = HashSet::new();
    for failure in &response.batch_item_failures {
        let id = failure.item_identifier.as_str();
        if !batch.contains(id) {
            error!(
                function,
                item_identifier = id,
                "batch item failure names no record of the batch; the whole batch will be retried"
            );
            return Vec::new();
        }
        failed.insert(id);
    }
    messages.iter().filter(|m| m.message_id().is_some_and(|id| !failed.contains(id))).collect()
}

/// The record Lambda hands a function for an SQS message.
fn to_lambda_record(message: &Message, queue_arn: &str, region: &str) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = message.message_id().map(str::to_string);
    record.receipt_handle = message.receipt_handle().map(str::to_string);
    record.body = message.body().map(str::to_string);
    record.md5_of_body = message.md5_of_body().map(str::to_string);
    record.md5_of_message_attributes = message.md5_of_message_attributes().map(str::to_string);
    record.attributes = message
        .attributes()
        .map(|a| a.iter().map(|(k, v)| (k.as_str().to_string(), v.clone())).collect())
        .unwrap_or_default();
    record.message_attributes = message
        .message_attributes()
        .map(|a| {
            a.iter()
                .map(|(name, value)| {
                    let mut attribute = SqsMessageAttribute::default();
                    attribute.data_type = Some(value.data_type().to_string());
                    attribute.string_value = value.string_value().map(str::to_string);
                    attribute.binary_value = value.binary_value().map(|b| base64_data(b.as_ref()));
                    attribute.string_list_values = value.string_list_values().to_vec();
                    attribute.binary_list_values =
                        value.binary_list_values().iter().map(|b| base64_data(b.as_ref())).collect();
                    (name.clone(), attribute)
                })
                .collect::<HashMap<_, _>>()
        })
        .unwrap_or_default();
    record.event_source = Some("aws:sqs".to_string());
    record.event_source_arn = Some(queue_arn.to_string());
    record.aws_region = Some(region.to_string());
    record
}

/// `Base64Data` is `#[non_exhaustive]`, so it is filled through its `DerefMut` to `Vec<u8>`.
fn base64_data(bytes: &[u8]) -> Base64Data {
    let mut data = Base64Data::default();
    data.extend_from_slice(bytes);
    data
}
