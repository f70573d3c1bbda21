//! `snapferry dlq`: every step's dead-letter queue, what is in it and why, and replaying it.
//!
//! A whole DLQ is replayed with SQS's own redrive (`StartMessageMoveTask`, followed with
//! `ListMessageMoveTasks`, cancelled on Ctrl-C). A selection (`--reason`, `--resource`,
//! `--correlation-id`, `--max`) is moved message by message: each leaves the DLQ only
//! after its send to the step's queue succeeded, so a crash mid-replay at worst sends one
//! twice (the steps are idempotent) and never loses one.

use crate::account::{Account, age};
use crate::table::Grid;
use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};
use serde::Serialize;
use snapferry::clients::Clients;
use snapferry::error::{Error, Result};
use snapferry::inbound::{Incoming, parse_message};
use snapferry::routing::{Function, Routing};
use snapferry::sqs::queue_arn;
use snapferry::sqs::{ATTR_ERROR_CODE, ATTR_ERROR_REASON};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct DlqArgs {
    #[command(flatten)]
    pub account: Account,
    #[command(subcommand)]
    pub command: DlqCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum DlqCommand {
    /// Every step's queue and DLQ in this account: depth, and age of the oldest dead letter.
    /// Exit 1 when any DLQ holds a message.
    #[command(after_help = "Example:\n  snapferry dlq list --profile backup --region eu-west-1")]
    List,
    /// The dead letters of one step (`undelivered`: the events EventBridge could not deliver
    /// to a rule's target), grouped by the reason each failed. Exit 1 when there are any.
    #[command(after_help = "Example:\n  snapferry dlq show copy-shared-snapshot --profile backup --json")]
    Show { step: String },
    /// Move a step's dead letters back to its queue: all of them with SQS's redrive, or a
    /// selection one by one (each leaves the DLQ only once it is back in the queue).
    /// `undelivered`: the events EventBridge could not deliver, each to the step queue it
    /// was for, one by one.
    #[command(after_help = "Examples:\n  snapferry dlq replay restore --profile backup\n  \
        snapferry dlq replay copy-shared-snapshot --reason KMSKeyNotAccessible --max 5 --dry-run\n  \
        snapferry dlq replay undelivered --profile backup")]
    Replay {
        step: String,
        /// Only dead letters whose reason matches this regex.
        #[arg(long)]
        reason: Option<String>,
        /// Only dead letters about this resource (database, cluster or volume id).
        #[arg(long)]
        resource: Option<String>,
        /// Only dead letters of this run.
        #[arg(long)]
        correlation_id: Option<String>,
        /// Move at most this many.
        #[arg(long)]
        max: Option<usize>,
        /// Show what would move; move nothing.
        #[arg(long)]
        dry_run: bool,
        /// Messages per second of SQS's redrive (1 to 500; SQS picks one when absent),
        /// to spare a step's downstream a burst.
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..=500))]
        rate: Option<i32>,
    },
}

/// A step's queue and DLQ as they are now.
#[derive(Debug, Clone, Serialize)]
pub struct QueueState {
    pub step: String,
    pub queue: String,
    pub waiting: u64,
    pub in_flight: u64,
    pub dead_letters: u64,
    /// Seconds since the oldest dead letter was first sent (none when the DLQ is empty).
    pub oldest_dead_letter_age_seconds: Option<i64>,
}

/// Whether a dead letter naming `account` and `resource` is about `for_account`'s
/// `for_resource`, keyed by (account, resource): another source's database of the same name
/// is not this one. A letter that names no account (a native event without one) counts for
/// every account's resource of its name.
pub fn is_about(account: Option<&str>, resource: Option<&str>, for_account: &str, for_resource: &str) -> bool {
    resource == Some(for_resource) && account.is_none_or(|a| a == for_account)
}

/// One dead letter, as an operator needs to judge it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub message_id: String,
    /// Why it failed: the reason snapferry recorded, or SQS's own redrive.
    pub reason: String,
    pub code: Option<String>,
    /// The account of the resource it is about, where the message names it.
    pub account: Option<String>,
    pub resource: Option<String>,
    pub correlation_id: Option<String>,
    pub sent_at: Option<chrono::DateTime<chrono::Utc>>,
    /// An undelivered event's: the rule target EventBridge could not deliver it to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip)]
    receipt_handle: String,
    #[serde(skip)]
    body: String,
    #[serde(skip)]
    attributes: BTreeMap<String, MessageAttributeValue>,
}

/// What a replay moved.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Replayed {
    pub moved: u64,
    /// Selected replays: the dead letters moved (or, in a dry run, that would be).
    pub messages: Vec<DeadLetter>,
    pub cancelled: bool,
    /// Undelivered events left where they are: for a target that is not a step queue here.
    #[serde(skip_serializing_if = "is_zero")]
    pub skipped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Dead letters `list` and `show` read at most, whatever the DLQ holds: the counts come
/// from the queue's attributes, the reasons from a sample of this size. Ten receives.
pub const SAMPLE: usize = 100;
/// Dead letters one selected replay looks through at most; a larger DLQ is replayed in
/// several runs (or whole, with SQS's redrive). Each is hidden while it is looked at, so
/// this bounds the time too: a hundred receives.
pub const SCAN: usize = 1000;

/// A step's dead letters: how many there are, and a sample of them, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    pub step: String,
    /// The DLQ's count (`ApproximateNumberOfMessages`).
    pub total: u64,
    /// At most [`SAMPLE`] of them.
    pub letters: Vec<DeadLetter>,
}

/// What a dead letter lacks when SQS moved it (the step never recorded a reason).
pub const REDRIVEN: &str = "exceeded maxReceiveCount (moved by SQS's redrive policy)";

struct Queues {
    queue_url: String,
    dlq_url: String,
}

async fn queue_url(c: &Clients, name: &str) -> Result<String> {
    c.sqs
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| Error::from_sdk("GetQueueUrl", e))?
        .queue_url()
        .map(str::to_string)
        .ok_or_else(|| Error::NotFound { op: "GetQueueUrl", what: name.to_string() })
}

async fn queues(c: &Clients, routing: &Routing, f: &Function) -> Result<Queues> {
    Ok(Queues { queue_url: queue_url(c, &f.queue).await?, dlq_url: queue_url(c, &routing.dlq_name(f)).await? })
}

fn function<'a>(routing: &'a Routing, step: &str) -> Result<&'a Function> {
    routing.function(step).ok_or_else(|| {
        let known: Vec<&str> = routing.functions.iter().map(|f| f.name.as_str()).collect();
        Error::Config(format!("no step {step:?}; steps: {}", known.join(", ")))
    })
}

async fn attributes(c: &Clients, url: &str) -> Result<BTreeMap<String, String>> {
    let out = c
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .map_err(|e| Error::from_sdk("GetQueueAttributes", e))?;
    Ok(out
        .attributes()
        .map(|a| a.iter().map(|(k, v)| (k.as_str().to_string(), v.clone())).collect())
        .unwrap_or_default())
}

fn count(attributes: &BTreeMap<String, String>, name: &str) -> u64 {
    attributes.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Every step of `routing` whose queue exists in this account.
pub async fn list(c: &Clients, routing: &Routing) -> Result<Vec<QueueState>> {
    let mut out = Vec::new();
    for f in &routing.functions {
        let q = match queues(c, routing, f).await {
            Ok(q) => q,
            // The other account's steps.
            Err(Error::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        let queue = attributes(c, &q.queue_url).await?;
        let dlq = attributes(c, &q.dlq_url).await?;
        let dead_letters = count(&dlq, "ApproximateNumberOfMessages");
        // The oldest of a sample: SQS hands out a standard queue's messages roughly oldest first.
        let oldest = if dead_letters > 0 {
            let letters = peek(c, &q.dlq_url, SAMPLE).await?;
            let oldest = letters.iter().filter_map(|d| d.sent_at).min();
            release(c, &q.dlq_url, &letters).await?;
            oldest.map(|t| (chrono::Utc::now() - t).num_seconds())
        } else {
            None
        };
        out.push(QueueState {
            step: f.name.clone(),
            queue: f.queue.clone(),
            waiting: count(&queue, "ApproximateNumberOfMessages") + count(&queue, "ApproximateNumberOfMessagesDelayed"),
            in_flight: count(&queue, "ApproximateNumberOfMessagesNotVisible"),
            dead_letters,
            oldest_dead_letter_age_seconds: oldest,
        });
    }
    // The events EventBridge could not deliver to a rule's target: no step's, so no queue
    // of its own; its count and the age of its oldest, as for a step's DLQ.
    match queue_url(c, &routing.delivery_dlq).await {
        Ok(url) => {
            let dead_letters = count(&attributes(c, &url).await?, "ApproximateNumberOfMessages");
            let oldest = if dead_letters > 0 {
                let letters = peek(c, &url, SAMPLE).await?;
                release(c, &url, &letters).await?;
                letters.iter().filter_map(|d| d.sent_at).min().map(|t| (chrono::Utc::now() - t).num_seconds())
            } else {
                None
            };
            out.push(QueueState {
                step: UNDELIVERED.to_string(),
                queue: routing.delivery_dlq.clone(),
                waiting: 0,
                in_flight: 0,
                dead_letters,
                oldest_dead_letter_age_seconds: oldest,
            });
        }
        // Not deployed here (the local host, or an account without snapferry's stack).
        Err(Error::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    Ok(out)
}

/// The row of `dlq list` for the stack's delivery DLQ.
pub const UNDELIVERED: &str = "(undelivered events)";
/// The name `dlq show` and `dlq replay` take for it.
pub const UNDELIVERED_STEP: &str = "undelivered";

/// The attributes EventBridge gives each event it puts in a rule target's DLQ (EventBridge
/// User Guide, "Using dead-letter queues to process undelivered events": RULE_ARN,
/// TARGET_ARN, ERROR_CODE, ERROR_MESSAGE).
const EVENTBRIDGE_TARGET_ARN: &str = "TARGET_ARN";
const EVENTBRIDGE_ERROR_CODE: &str = "ERROR_CODE";
/// Every attribute EventBridge adds (those and its retry figures): the record of the failure.
const EVENTBRIDGE_ATTRIBUTES: [&str; 6] =
    ["RULE_ARN", "TARGET_ARN", "ERROR_CODE", "ERROR_MESSAGE", "EXHAUSTED_RETRY_CONDITION", "RETRY_ATTEMPTS"];

fn is_undelivered(step: &str) -> bool {
    step == UNDELIVERED_STEP || step == UNDELIVERED
}

/// At most `limit` messages of the DLQ, each once, received (hidden for a minute) and read;
/// [`release`] makes them visible again. A DLQ has no redrive policy, so receiving one
/// counts against nothing. Bounded in calls too: SQS may answer a receive with fewer
/// messages than it holds, so a few receives more than `limit` needs, and no more.
async fn peek(c: &Clients, dlq_url: &str, limit: usize) -> Result<Vec<DeadLetter>> {
    let mut all: Vec<DeadLetter> = Vec::new();
    for _ in 0..limit.div_ceil(10) + 2 {
        if all.len() >= limit {
            break;
        }
        let out = c
            .sqs
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages((limit - all.len()).min(10) as i32)
            .visibility_timeout(60)
            .message_attribute_names("All")
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| Error::from_sdk("ReceiveMessage", e))?;
        if out.messages().is_empty() {
            break;
        }
        for letter in out.messages().iter().map(dead_letter) {
            // Received again (its minute passed): the same letter, under its newest handle.
            match all.iter_mut().find(|d| d.message_id == letter.message_id) {
                Some(seen) => seen.receipt_handle = letter.receipt_handle,
                None => all.push(letter),
            }
        }
    }
    Ok(all)
}

async fn release(c: &Clients, dlq_url: &str, letters: &[DeadLetter]) -> Result<()> {
    for d in letters {
        c.sqs
            .change_message_visibility()
            .queue_url(dlq_url)
            .receipt_handle(&d.receipt_handle)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(|e| Error::from_sdk("ChangeMessageVisibility", e))?;
    }
    Ok(())
}

fn dead_letter(m: &Message) -> DeadLetter {
    let attributes: BTreeMap<String, MessageAttributeValue> =
        m.message_attributes().map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
    let text = |name: &str| attributes.get(name).and_then(|v| v.string_value()).map(str::to_string);
    let body = m.body().unwrap_or_default().to_string();
    // Which account's resource: two sources may have databases of one name.
    let (account, resource, correlation_id) = match parse_message(&body) {
        Ok(Incoming::Pipeline(e)) => (
            Some(e.detail.origin.account.clone()),
            Some(e.detail.origin.resource_id.clone()),
            Some(e.detail.correlation_id.clone()),
        ),
        Ok(Incoming::Recheck(e)) => {
            let origin = e.detail.what.origin();
            (
                origin.map(|o| o.account.clone()),
                origin.map(|o| o.resource_id.clone()),
                Some(e.detail.correlation_id.clone()),
            )
        }
        Ok(Incoming::Native(n)) => (n.account.clone(), n.resources.first().cloned(), None),
        _ => (None, None, None),
    };
    let sent_at = m
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(chrono::DateTime::from_timestamp_millis);
    DeadLetter {
        message_id: m.message_id().unwrap_or_default().to_string(),
        // snapferry's own reason; else EventBridge's, for an event it could not deliver.
        reason: text(ATTR_ERROR_REASON)
            .or_else(|| {
                let code = text(EVENTBRIDGE_ERROR_CODE)?;
                Some(format!("EventBridge could not deliver it: {code}: {}", text("ERROR_MESSAGE").unwrap_or_default()))
            })
            .unwrap_or_else(|| REDRIVEN.to_string()),
        code: text(ATTR_ERROR_CODE).or_else(|| text(EVENTBRIDGE_ERROR_CODE)),
        target: text(EVENTBRIDGE_TARGET_ARN),
        account,
        resource,
        correlation_id,
        sent_at,
        receipt_handle: m.receipt_handle().unwrap_or_default().to_string(),
        body,
        attributes,
    }
}

/// How many dead letters `step` has, and a sample of at most [`SAMPLE`], oldest first.
pub async fn show(c: &Clients, routing: &Routing, step: &str) -> Result<Shown> {
    let dlq_url = if is_undelivered(step) {
        queue_url(c, &routing.delivery_dlq).await?
    } else {
        queues(c, routing, function(routing, step)?).await?.dlq_url
    };
    let total = count(&attributes(c, &dlq_url).await?, "ApproximateNumberOfMessages");
    let mut letters = if total > 0 { peek(c, &dlq_url, SAMPLE).await? } else { Vec::new() };
    release(c, &dlq_url, &letters).await?;
    letters.sort_by_key(|d| d.sent_at);
    Ok(Shown { step: step.to_string(), total: total.max(letters.len() as u64), letters })
}

/// Which dead letters a selected replay moves.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub reason: Option<regex::Regex>,
    pub resource: Option<String>,
    pub correlation_id: Option<String>,
    pub max: Option<usize>,
}

impl Selection {
    fn is_all(&self) -> bool {
        self.reason.is_none() && self.resource.is_none() && self.correlation_id.is_none() && self.max.is_none()
    }

    fn matches(&self, d: &DeadLetter) -> bool {
        self.reason.as_ref().is_none_or(|r| r.is_match(&d.reason))
            && self.resource.as_ref().is_none_or(|r| d.resource.as_ref() == Some(r))
            && self.correlation_id.as_ref().is_none_or(|c| d.correlation_id.as_ref() == Some(c))
    }
}

/// Moves the selected dead letters of `step` back to its queue, one by one: sent first,
/// deleted from the DLQ only once the send succeeded. The rest are made visible again.
pub async fn replay_selected(
    c: &Clients,
    routing: &Routing,
    step: &str,
    selection: &Selection,
    dry_run: bool,
) -> Result<Replayed> {
    let q = queues(c, routing, function(routing, step)?).await?;
    let letters = peek(c, &q.dlq_url, SCAN).await?;
    let (chosen, rest): (Vec<DeadLetter>, Vec<DeadLetter>) = {
        let mut chosen = Vec::new();
        let mut rest = Vec::new();
        for d in letters {
            if selection.matches(&d) && selection.max.is_none_or(|m| chosen.len() < m) {
                chosen.push(d);
            } else {
                rest.push(d);
            }
        }
        (chosen, rest)
    };
    release(c, &q.dlq_url, &rest).await?;
    let mut replayed = Replayed::default();
    if dry_run {
        release(c, &q.dlq_url, &chosen).await?;
        replayed.messages = chosen;
        return Ok(replayed);
    }
    let moves: Vec<(DeadLetter, String)> = chosen.into_iter().map(|d| (d, q.queue_url.clone())).collect();
    move_each(c, &q.dlq_url, &moves, &mut replayed).await?;
    Ok(replayed)
}

/// Sends each of `moves` (a dead letter, the queue it goes to) there as a fresh message, the
/// record of its failure left behind, then deletes it from `dlq_url`: one by one, each
/// deleted only once its send succeeded. A send that fails makes the rest visible in the
/// DLQ again and is the error: nothing is lost, at worst one is sent twice.
async fn move_each(c: &Clients, dlq_url: &str, moves: &[(DeadLetter, String)], replayed: &mut Replayed) -> Result<()> {
    for (i, (d, to)) in moves.iter().enumerate() {
        let attributes: std::collections::HashMap<String, MessageAttributeValue> = d
            .attributes
            .iter()
            .filter(|(k, _)| {
                !k.starts_with("snapferry-error-")
                    && *k != snapferry::sqs::ATTR_FAILED_AT
                    && !EVENTBRIDGE_ATTRIBUTES.contains(&k.as_str())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let sent = c
            .sqs
            .send_message()
            .queue_url(to)
            .message_body(&d.body)
            .set_message_attributes(Some(attributes).filter(|a| !a.is_empty()))
            .send()
            .await
            .map_err(|e| Error::from_sdk("SendMessage", e));
        if let Err(e) = sent {
            let unsent: Vec<DeadLetter> = moves[i..].iter().map(|(d, _)| d.clone()).collect();
            release(c, dlq_url, &unsent).await?;
            return Err(e);
        }
        c.sqs
            .delete_message()
            .queue_url(dlq_url)
            .receipt_handle(&d.receipt_handle)
            .send()
            .await
            .map_err(|e| Error::from_sdk("DeleteMessage", e))?;
        replayed.moved += 1;
        replayed.messages.push(d.clone());
    }
    Ok(())
}

/// Sends the selected events EventBridge could not deliver on to the step queue each was
/// for (its `TARGET_ARN`), one by one as [`replay_selected`] does: sent first, deleted from
/// the delivery DLQ only once the send succeeded. Only this account's step queues are
/// delivered to: an event for any other target stays where it is, counted in `skipped`.
pub async fn replay_undelivered(
    c: &Clients,
    routing: &Routing,
    selection: &Selection,
    dry_run: bool,
) -> Result<Replayed> {
    let dlq_url = queue_url(c, &routing.delivery_dlq).await?;
    // The step queues here, by ARN: what a rule of the stacks targets.
    let mut steps: BTreeMap<String, String> = BTreeMap::new();
    for f in &routing.functions {
        match queue_url(c, &f.queue).await {
            Ok(url) => {
                steps.insert(queue_arn(&c.sqs, &url).await?, url);
            }
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let letters = peek(c, &dlq_url, SCAN).await?;
    let mut chosen = Vec::new();
    let mut rest = Vec::new();
    let mut skipped = 0;
    for d in letters {
        let to = d.target.as_ref().and_then(|t| steps.get(t)).cloned();
        if !selection.matches(&d) || selection.max.is_some_and(|m| chosen.len() >= m) {
            rest.push(d);
        } else if let Some(to) = to {
            chosen.push((d, to));
        } else {
            skipped += 1;
            rest.push(d);
        }
    }
    release(c, &dlq_url, &rest).await?;
    let mut replayed = Replayed { skipped, ..Default::default() };
    if dry_run {
        let letters: Vec<DeadLetter> = chosen.into_iter().map(|(d, _)| d).collect();
        release(c, &dlq_url, &letters).await?;
        replayed.messages = letters;
        return Ok(replayed);
    }
    // The event as EventBridge would have delivered it: its body, none of the DLQ's attributes.
    move_each(c, &dlq_url, &chosen, &mut replayed).await?;
    Ok(replayed)
}

/// Moves every dead letter of `step` back to its queue with SQS's redrive
/// (`StartMessageMoveTask`), reporting progress to `progress(moved, to_move)` until the
/// task ends; `cancel` resolving first cancels it (`CancelMessageMoveTask`).
pub async fn replay_all(
    c: &Clients,
    routing: &Routing,
    step: &str,
    rate: Option<i32>,
    mut progress: impl FnMut(u64, Option<u64>),
    cancel: impl std::future::Future<Output = ()>,
) -> Result<Replayed> {
    let q = queues(c, routing, function(routing, step)?).await?;
    let (source, destination) = (queue_arn(&c.sqs, &q.dlq_url).await?, queue_arn(&c.sqs, &q.queue_url).await?);
    // The destination is named: snapferry's own dead letters were sent there by the step,
    // not moved by a redrive policy, so SQS could not tell where they came from.
    let task = c
        .sqs
        .start_message_move_task()
        .source_arn(&source)
        .destination_arn(&destination)
        .set_max_number_of_messages_per_second(rate)
        .send()
        .await
        .map_err(|e| Error::from_sdk("StartMessageMoveTask", e))?;
    let handle = task.task_handle().unwrap_or_default().to_string();
    tokio::pin!(cancel);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            () = &mut cancel => {
                c.sqs.cancel_message_move_task().task_handle(&handle).send().await
                    .map_err(|e| Error::from_sdk("CancelMessageMoveTask", e))?;
                let moved = current(c, &source, &handle).await?.map_or(0, |t| t.approximate_number_of_messages_moved());
                return Ok(Replayed { moved: moved.max(0) as u64, cancelled: true, ..Default::default() });
            }
            _ = tick.tick() => {
                let Some(t) = current(c, &source, &handle).await? else { continue };
                let moved = t.approximate_number_of_messages_moved().max(0) as u64;
                progress(moved, t.approximate_number_of_messages_to_move().map(|n| n.max(0) as u64));
                match t.status() {
                    Some("COMPLETED") => return Ok(Replayed { moved, ..Default::default() }),
                    Some("FAILED") => {
                        return Err(Error::Permanent {
                            op: "StartMessageMoveTask",
                            code: "MoveTaskFailed".into(),
                            message: t.failure_reason().unwrap_or("no reason given").to_string(),
                            hint: None,
                        });
                    }
                    Some("CANCELLED") => return Ok(Replayed { moved, cancelled: true, ..Default::default() }),
                    _ => {}
                }
            }
        }
    }
}

async fn current(
    c: &Clients,
    source: &str,
    handle: &str,
) -> Result<Option<aws_sdk_sqs::types::ListMessageMoveTasksResultEntry>> {
    let out = c
        .sqs
        .list_message_move_tasks()
        .source_arn(source)
        .max_results(10)
        .send()
        .await
        .map_err(|e| Error::from_sdk("ListMessageMoveTasks", e))?;
    // A finished task has no handle any more; the newest entry is ours.
    Ok(out.results().iter().find(|t| t.task_handle() == Some(handle)).or(out.results().first()).cloned())
}

/// `snapferry dlq ...`.
pub async fn run(args: DlqArgs) -> Result<ExitCode> {
    let out = args.account.output();
    let c = args.account.clients().await?;
    let routing = Routing::load();
    match args.command {
        DlqCommand::List => {
            let states = list(&c, &routing).await?;
            out.print(&states, || render_list(&states))?;
            Ok(if states.iter().any(|s| s.dead_letters > 0) { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        DlqCommand::Show { step } => {
            let shown = show(&c, &routing, &step).await?;
            out.print(&shown, || {
                let mut text = grouped(&shown.letters);
                if shown.total > shown.letters.len() as u64 {
                    text.push_str(&format!(
                        "\n{} dead letters in all; the reasons above are of a sample of {} (`snapferry dlq replay {} --reason ... --dry-run` selects among up to {SCAN})",
                        shown.total,
                        shown.letters.len(),
                        shown.step
                    ));
                }
                text
            })?;
            Ok(if shown.total == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        DlqCommand::Replay { step, reason, resource, correlation_id, max, dry_run, rate } => {
            let reason = reason
                .map(|r| regex::Regex::new(&r))
                .transpose()
                .map_err(|e| Error::Config(format!("--reason: {e}")))?;
            let selection = Selection { reason, resource, correlation_id, max };
            let replayed = if is_undelivered(&step) {
                replay_undelivered(&c, &routing, &selection, dry_run).await?
            } else if selection.is_all() && !dry_run {
                let bar = out.progress();
                let progress = |moved: u64, total: Option<u64>| {
                    if let Some(total) = total {
                        bar.set_length(total);
                    }
                    bar.set_position(moved);
                };
                let cancel = async {
                    let _ = tokio::signal::ctrl_c().await;
                };
                let r = replay_all(&c, &routing, &step, rate, progress, cancel).await;
                bar.finish_and_clear();
                r?
            } else {
                // A dry run of everything, or a selection: looked at one by one.
                replay_selected(&c, &routing, &step, &selection, dry_run).await?
            };
            out.print(&replayed, || {
                let verb = if dry_run { "would move" } else { "moved" };
                let mut text = format!(
                    "{verb} {} dead letter(s) of {step} back to its queue{}",
                    if dry_run { replayed.messages.len() as u64 } else { replayed.moved },
                    if replayed.cancelled { " before the replay was cancelled" } else { "" }
                );
                if replayed.skipped > 0 {
                    text.push_str(&format!(
                        "\n{} undelivered event(s) left in the DLQ: their target is not one of this account's step queues",
                        replayed.skipped
                    ));
                }
                if !replayed.messages.is_empty() {
                    text.push('\n');
                    text.push_str(&grouped(&replayed.messages));
                }
                text
            })?;
            Ok(if replayed.cancelled { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
    }
}

/// Every step's queues as a table.
pub fn render_list(states: &[QueueState]) -> String {
    // The queue is the step's name with the stacks' prefix (JSON output has it in full).
    let mut t = Grid::new(&["step", "waiting", "in flight", "dead letters", "oldest"]);
    for s in states {
        t.row(vec![
            s.step.clone(),
            s.waiting.to_string(),
            s.in_flight.to_string(),
            s.dead_letters.to_string(),
            s.oldest_dead_letter_age_seconds.map(age).unwrap_or_else(|| "-".into()),
        ]);
    }
    t.render()
}

/// Dead letters as a table per reason, most frequent reason first.
pub fn grouped(letters: &[DeadLetter]) -> String {
    if letters.is_empty() {
        return "no dead letters".into();
    }
    let mut by_reason: BTreeMap<&str, Vec<&DeadLetter>> = BTreeMap::new();
    for d in letters {
        by_reason.entry(&d.reason).or_default().push(d);
    }
    let mut groups: Vec<_> = by_reason.into_iter().collect();
    groups.sort_by_key(|(_, ds)| std::cmp::Reverse(ds.len()));
    let mut out = String::new();
    for (reason, ds) in groups {
        out.push_str(&format!("{} x {reason}\n", ds.len()));
        // SQS message ids are 36 characters, correlation ids up to 40: on a narrow terminal
        // the correlation id leaves the table first.
        let mut t = Grid::new(&["message", "resource", "correlation id", "sent"]).movable(&[2, 3], "message ");
        for d in ds {
            t.row(vec![
                d.message_id.clone(),
                d.resource.clone().unwrap_or_else(|| "-".into()),
                d.correlation_id.clone().unwrap_or_else(|| "-".into()),
                d.sent_at.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_else(|| "-".into()),
            ]);
        }
        out.push_str(&t.render());
        out.push('\n');
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    pub(crate) fn letter(id: &str, reason: &str, resource: Option<&str>, minute: u32) -> DeadLetter {
        DeadLetter {
            message_id: id.into(),
            reason: reason.into(),
            code: None,
            account: None,
            resource: resource.map(str::to_string),
            correlation_id: resource.map(|r| format!("run-{r}")),
            sent_at: Some(chrono::Utc.with_ymd_and_hms(2026, 11, 27, 9, minute, 0).unwrap()),
            target: None,
            receipt_handle: String::new(),
            body: String::new(),
            attributes: BTreeMap::new(),
        }
    }

    #[test]
    fn the_queue_table() {
        let state = |step: &str, dead: u64, oldest: Option<i64>| QueueState {
            step: step.into(),
            queue: format!("snapferry-{step}"),
            waiting: 3,
            in_flight: 1,
            dead_letters: dead,
            oldest_dead_letter_age_seconds: oldest,
        };
        let states = [state("copy-shared-snapshot", 2, Some(5400)), state("restore", 0, None)];
        insta::assert_snapshot!(render_list(&states));
    }

    #[test]
    fn a_dead_re_check_names_the_resource_its_run_started_from() {
        use snapferry::events::{Recheck, RecheckWhat, SnapshotRef};
        let snapshot = |id: &str, resource: &str| SnapshotRef {
            kind: "db-instance".parse().expect("a kind of the contract"),
            arn: format!("arn:aws:rds:us-east-1:222222222222:snapshot:{id}"),
            id: id.into(),
            account: "222222222222".into(),
            region: "us-east-1".into(),
            resource_id: resource.into(),
            encrypted: true,
            kms_key_id: None,
        };
        let what = RecheckWhat::CopyToRegion {
            copy: snapshot("snapferry-copy-orders", "orders"),
            origin: snapshot("rds:orders-2026-11-27", "orders"),
            destination_region: "eu-west-1".into(),
        };
        let body = serde_json::to_string(&Recheck::new("run-orders", 2, None, what).into_envelope()).unwrap();
        let letter = dead_letter(&Message::builder().message_id("m-1").body(body).build());
        assert_eq!(
            (letter.resource.as_deref(), letter.correlation_id.as_deref()),
            (Some("orders"), Some("run-orders"))
        );
        let body =
            serde_json::to_string(&Recheck::new("run-x", 2, None, RecheckWhat::ExpireFrom { unit: 3 }).into_envelope());
        let letter = dead_letter(&Message::builder().message_id("m-2").body(body.unwrap()).build());
        assert_eq!(letter.resource, None, "expiry is about no one resource");
    }

    #[test]
    fn dead_letters_grouped_by_reason_most_frequent_first() {
        let letters = [
            letter("m-1", REDRIVEN, None, 1),
            letter("m-2", "KMSKeyNotAccessibleFault: the backup key is disabled", Some("orders"), 2),
            letter("m-3", "KMSKeyNotAccessibleFault: the backup key is disabled", Some("billing"), 3),
        ];
        insta::assert_snapshot!(grouped(&letters));
        assert_eq!(grouped(&[]), "no dead letters");
    }
}
