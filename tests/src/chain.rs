//! The whole chain on the emulator (`snapferry_local::pipeline::LocalPipeline`): start it for
//! two fresh accounts, drive its host until pipeline events are seen, and read back what
//! it made through the SDK.

use crate::*;
use aws_sdk_sqs::types::{Message, QueueAttributeName};
use snapferry::ResourceKind;
use snapferry::events::{EventEnvelope, PipelineEvent, Step};
use snapferry::store::{Snapshot, Stores};
use snapferry::tags;
pub use snapferry_local::pipeline::{LocalPipeline, PipelineOptions};
use std::collections::BTreeMap;

pub type Event = EventEnvelope<PipelineEvent>;

/// How long a scenario may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Set to a path, the handlers' logs (JSON, at debug) are kept from the pipeline's start
/// and written there when a scenario times out: what each step decided, and why.
pub const LOGS_ENV: &str = "SNAPFERRY_E2E_LOGS";

/// The failure message of a scenario that ran out of time: what it waited for, the step
/// queues still holding messages, and the events seen.
async fn timed_out(p: &LocalPipeline, seen: &[Event], what: &str) -> String {
    let pending = pending_queues(p).await;
    let mut logs = String::new();
    if let Some(path) = std::env::var_os(LOGS_ENV) {
        let buffer = crate::captured_logs().lock().expect("log buffer").clone();
        match std::fs::write(&path, buffer) {
            Ok(()) => logs = format!("; the handlers' logs are in {}", path.to_string_lossy()),
            Err(e) => logs = format!("; the handlers' logs could not be written: {e}"),
        }
    }
    format!(
        "timed out after {DEADLINE:?} waiting for {what} (step queues holding messages: {}){logs}; events seen:\n{}",
        if pending.is_empty() { "none".to_string() } else { pending.join(", ") },
        summary(seen)
    )
}

/// Damages the scheduled snapshot of each DB instance of `damage` (its name, and the
/// emulator's `corrupt-snapshot` action; `null`: left whole) once it exists, before
/// anything copies it. The databases themselves are left as they are.
pub async fn damage_scheduled_snapshots(p: &LocalPipeline, seen: &mut Vec<Event>, damage: &[(&str, &Value)]) {
    let snapshots = drive_until(p, seen, "the scheduled snapshots", || async {
        let mut arns = Vec::new();
        for (name, _) in damage {
            let made = made_by(&p.source, ResourceKind::DbInstance, "create", name).await;
            match made.first() {
                Some(s) if s.status == snapferry::store::Status::Available => arns.push(s.arn.clone()),
                _ => return None,
            }
        }
        Some(arns)
    })
    .await;
    for (arn, (_, action)) in snapshots.iter().zip(damage) {
        if action.is_null() {
            continue;
        }
        let mut body = (*action).clone();
        body["snapshot_arn"] = Value::from(arn.as_str());
        control::call("POST", "/_snapferry/corrupt-snapshot", Some(body));
    }
}

pub const SHARED: &str = "Snapshot Shared";
pub const COPY_STARTED: &str = "Snapshot Copy Started";
pub const COPIED: &str = "Snapshot Copied";
pub const VERIFIED: &str = "Restore Verified";
pub const RESTORE_FAILED: &str = "Restore Failed";
pub const SUSPICIOUS: &str = "Restore Suspicious";
pub const REJECTED: &str = "Snapshot Rejected";

/// Options with short re-checks, backoffs and visibility timeouts, so retries come back fast.
/// `snapferry <command> --json` as an operator runs it against the emulator: in `p`'s
/// backup account, with its source account, each by assuming the test role.
pub async fn run_cli(p: &LocalPipeline, command: &str) -> std::process::ExitCode {
    let endpoint = crate::emulator().endpoint.clone();
    let args = [
        "snapferry",
        command,
        "--json",
        "--endpoint",
        &endpoint,
        "--region",
        crate::REGION,
        "--account",
        &p.target.account,
        "--source-account",
        &p.source.account,
        "--role",
        "snapferry-test",
    ];
    let cli = <snapferry_cli::Cli as clap::Parser>::try_parse_from(args).expect("arguments");
    snapferry_cli::run(cli).await.unwrap_or_else(|e| panic!("snapferry {command}: {e}"))
}

pub fn fast_options() -> PipelineOptions {
    PipelineOptions {
        recheck: Duration::from_secs(1),
        retry_base: Duration::from_secs(1),
        visibility_timeout_override: Some(3),
        ..Default::default()
    }
}

/// A pipeline from a fresh source account to a fresh backup account.
pub async fn start(options: &PipelineOptions) -> LocalPipeline {
    start_sources(options, 0).await
}

/// [`start`] with a fresh neighbour too: a second source account into the same backup
/// account (`p.neighbours[0]`), for a scenario about what one source may do to another. Not
/// every scenario has one: an idle neighbour's queues, polled all the same, cost the whole
/// e2e run a fifth of its time.
pub async fn start_with_neighbour(options: &PipelineOptions) -> LocalPipeline {
    start_sources(options, 1).await
}

async fn start_sources(options: &PipelineOptions, neighbours: usize) -> LocalPipeline {
    if std::env::var_os(LOGS_ENV).is_some() {
        crate::captured_logs();
    }
    let source = clients(&new_account(), REGION).await;
    let mut others = Vec::new();
    for _ in 0..neighbours {
        others.push(clients(&new_account(), REGION).await);
    }
    let target = clients(&new_account(), REGION).await;
    LocalPipeline::start_many(source, others, target, options).await.expect("start the pipeline")
}

/// A MySQL instance in `c`'s account, encrypted as said, with `tags` (copied to its snapshots).
pub async fn instance(c: &Clients, name: &str, encryption: Encryption<'_>, tags: &[(&str, &str)]) {
    let (encrypted, key) = match encryption {
        Encryption::AwsManaged => (true, None),
        Encryption::Key(k) => (true, Some(k)),
        Encryption::None => (false, None),
    };
    crate::fixtures::db_instance(c, name, encrypted, key, tags).await;
}

#[derive(Debug, Clone, Copy)]
pub enum Encryption<'a> {
    AwsManaged,
    Key(&'a str),
    None,
}

/// Drives the host until `done(events seen so far)`; panics after [`DEADLINE`], listing
/// what was seen. `seen` accumulates every pipeline event (each once).
pub async fn run_until(p: &LocalPipeline, seen: &mut Vec<Event>, what: &str, done: impl Fn(&[Event]) -> bool) {
    let start = Instant::now();
    loop {
        collect(p, seen).await;
        if done(seen) {
            return;
        }
        if start.elapsed() >= DEADLINE {
            panic!("{}", timed_out(p, seen, what).await);
        }
        if p.host.poll_once().await.expect("poll the queues") == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Drives the host until `check` (run between rounds, while no handler runs) answers
/// `Some`; panics after [`DEADLINE`].
pub async fn drive_until<T, F, Fut>(p: &LocalPipeline, seen: &mut Vec<Event>, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        collect(p, seen).await;
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() >= DEADLINE {
            panic!("{}", timed_out(p, seen, what).await);
        }
        if p.host.poll_once().await.expect("poll the queues") == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Adds the events published since the last call (an event forwarded across accounts
/// reaches both monitors: kept once).
pub async fn collect(p: &LocalPipeline, seen: &mut Vec<Event>) {
    for e in p.events().await.expect("read the monitors") {
        if !seen.iter().any(|s| s.id == e.id) {
            seen.push(e);
        }
    }
}

/// Drives the host until every step queue is empty (nothing visible, in flight or
/// delayed), so duplicates and re-checks still on their way have been handled too.
pub async fn settle(p: &LocalPipeline, seen: &mut Vec<Event>) {
    let start = Instant::now();
    let mut quiet_rounds = 0;
    loop {
        let handled = p.host.poll_once().await.expect("poll the queues");
        collect(p, seen).await;
        let pending = pending_queues(p).await;
        quiet_rounds = if handled == 0 && pending.is_empty() { quiet_rounds + 1 } else { 0 };
        if quiet_rounds >= 2 {
            return;
        }
        if start.elapsed() >= DEADLINE {
            panic!("{}", timed_out(p, seen, "every step queue to empty").await);
        }
        if handled == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The step queues holding messages (visible, in flight or delayed), with their depths.
async fn pending_queues(p: &LocalPipeline) -> Vec<String> {
    let mut pending = Vec::new();
    for q in p.deployment.queues() {
        let depth = queue_depth(account_clients(p, &q.account), &q.queue_url).await;
        if depth > 0 {
            pending.push(format!("{} in {}/{}: {depth}", q.function, q.account, q.region));
        }
    }
    pending
}

pub fn account_clients<'a>(p: &'a LocalPipeline, account: &str) -> &'a Clients {
    std::iter::once(&p.source).chain(&p.neighbours).find(|c| c.account == account).unwrap_or(&p.target)
}

/// Messages in a queue: visible, in flight and delayed.
pub async fn queue_depth(c: &Clients, url: &str) -> u64 {
    let out = c
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("GetQueueAttributes");
    let attrs = out.attributes().cloned().unwrap_or_default();
    [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        QueueAttributeName::ApproximateNumberOfMessagesDelayed,
    ]
    .iter()
    .filter_map(|k| attrs.get(k).and_then(|v| v.parse::<u64>().ok()))
    .sum()
}

/// A string message attribute of `message` ("" when absent).
pub fn attribute(message: &Message, name: &str) -> String {
    message
        .message_attributes()
        .and_then(|a| a.get(name))
        .and_then(|v| v.string_value())
        .unwrap_or_default()
        .to_string()
}

/// Every message in a DLQ, with its message attributes (received, not deleted).
pub async fn dlq_messages(c: &Clients, dlq_url: &str) -> Vec<Message> {
    let mut all: Vec<Message> = Vec::new();
    loop {
        let out = c
            .sqs
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .message_attribute_names("All")
            .send()
            .await
            .expect("ReceiveMessage");
        if out.messages().is_empty() {
            return all;
        }
        all.extend(out.messages().iter().cloned());
    }
}

/// Asserts that no step's DLQ in either account holds a message.
pub async fn assert_dlqs_empty(p: &LocalPipeline) {
    for q in p.deployment.queues() {
        let c = account_clients(p, &q.account);
        if queue_depth(c, &q.dlq_url).await > 0 {
            let reasons: Vec<String> = dlq_messages(c, &q.dlq_url)
                .await
                .iter()
                .map(|m| format!("{}: {}", attribute(m, snapferry::sqs::ATTR_ERROR_REASON), m.body().unwrap_or("")))
                .collect();
            panic!("{}'s DLQ in {} is not empty:\n{}", q.function, q.account, reasons.join("\n"));
        }
    }
}

/// The events about `resource` (the source database), in order.
pub fn about<'a>(events: &'a [Event], resource: &str) -> Vec<&'a Event> {
    events.iter().filter(|e| e.detail.origin.resource_id == resource).collect()
}

/// How many events of `detail_type` are about `resource`.
pub fn count(events: &[Event], resource: &str, detail_type: &str) -> usize {
    about(events, resource).iter().filter(|e| e.detail.step.detail_type() == detail_type).count()
}

pub fn has(events: &[Event], resource: &str, detail_type: &str) -> bool {
    count(events, resource, detail_type) > 0
}

/// The first event of `detail_type` about `resource`.
pub fn first<'a>(events: &'a [Event], resource: &str, detail_type: &str) -> &'a Event {
    about(events, resource)
        .into_iter()
        .find(|e| e.detail.step.detail_type() == detail_type)
        .unwrap_or_else(|| panic!("no {detail_type} event for {resource}; events:\n{}", summary(events)))
}

/// Every resource named has been restore-verified (and none failed its restore).
pub fn verified(resources: &[&str]) -> impl Fn(&[Event]) -> bool {
    let resources: Vec<String> = resources.iter().map(|r| r.to_string()).collect();
    move |events| {
        for r in &resources {
            if let Some(e) = about(events, r).iter().find(|e| matches!(e.detail.step, Step::RestoreFailed { .. })) {
                panic!("the restore of {r} failed: {:?}", e.detail.step);
            }
        }
        resources.iter().all(|r| has(events, r, VERIFIED))
    }
}

/// One line per event, for failure messages.
pub fn summary(events: &[Event]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "  {} {} {} ({}/{}) {:?}",
                e.detail.origin.resource_id,
                e.detail.step.detail_type(),
                e.detail.snapshot.id,
                e.detail.snapshot.account,
                e.detail.snapshot.region,
                e.detail.step
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// snapferry's snapshots of `kind` in `c`'s account and region.
pub async fn managed(c: &Clients, kind: ResourceKind) -> Vec<Snapshot> {
    c.store(kind).list_managed().await.expect("list snapferry snapshots")
}

/// snapferry's snapshots of `kind` in `c`'s account, counted by the step that made them
/// (`create`, `share`, `copy`) and the source database they come from.
pub async fn count_by_step(c: &Clients, kind: ResourceKind) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for s in managed(c, kind).await {
        let step = s.tags.get(tags::STEP).cloned().unwrap_or_default();
        let origin = s.tags.get(tags::ORIGIN_RESOURCE).cloned().unwrap_or_else(|| s.resource_id.clone());
        *counts.entry((step, origin)).or_insert(0) += 1;
    }
    counts
}

/// snapferry's snapshots of `kind` made by `step` for `resource`.
pub async fn made_by(c: &Clients, kind: ResourceKind, step: &str, resource: &str) -> Vec<Snapshot> {
    managed(c, kind)
        .await
        .into_iter()
        .filter(|s| s.tags.get(tags::STEP).is_some_and(|v| v == step))
        .filter(|s| s.tags.get(tags::ORIGIN_RESOURCE).unwrap_or(&s.resource_id) == resource)
        .collect()
}

/// The accounts a DB snapshot is shared with (its `restore` attribute).
pub async fn shared_with(c: &Clients, snapshot_id: &str) -> Vec<String> {
    let out = c
        .rds
        .describe_db_snapshot_attributes()
        .db_snapshot_identifier(snapshot_id)
        .send()
        .await
        .expect("DescribeDBSnapshotAttributes");
    out.db_snapshot_attributes_result()
        .map(|r| r.db_snapshot_attributes())
        .unwrap_or_default()
        .iter()
        .filter(|a| a.attribute_name() == Some("restore"))
        .flat_map(|a| a.attribute_values().iter().cloned())
        .collect()
}

/// Waits until `c`'s account has no DB instance and no DB cluster left whose id starts
/// with `snapferry-restore` (restore tests clean up after themselves).
pub async fn no_restore_resources_left(c: &Clients) {
    eventually("restore-test resources to be deleted", DEADLINE, || async {
        let instances = c.rds.describe_db_instances().send().await.expect("DescribeDBInstances");
        let clusters = c.rds.describe_db_clusters().send().await.expect("DescribeDBClusters");
        let left: Vec<String> = instances
            .db_instances()
            .iter()
            .filter_map(|i| i.db_instance_identifier())
            .chain(clusters.db_clusters().iter().filter_map(|c| c.db_cluster_identifier()))
            .filter(|id| id.starts_with(snapferry::naming::RESTORE_PREFIX))
            .map(str::to_string)
            .collect();
        left.is_empty().then_some(())
    })
    .await
}

/// Whether `key` is the key `expected` (an ARN or key id either way).
pub fn same_key(key: Option<&str>, expected: &str) -> bool {
    key.is_some_and(|k| snapferry::kms::same_key(k, expected))
}

/// `sender` announces `snapshot` as shared with the backup account `target`, naming `origin`
/// as its origin: a "Snapshot Shared" put on its pipeline bus and forwarded as any other, as
/// an allowlisted source may send whatever it likes.
pub async fn announce(
    sender: &Clients,
    target: &str,
    snapshot: snapferry::events::SnapshotRef,
    origin: snapferry::events::SnapshotRef,
    run: &str,
) {
    let step =
        Step::Shared { target_account: target.to_string(), tags: Default::default(), set: None, source_data: None };
    let detail = PipelineEvent::new(run, snapshot, origin, step);
    let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .event_bus_name(snapferry::routing::Routing::load().pipeline_bus)
        .source(snapferry::events::SOURCE)
        .detail_type(SHARED)
        .detail(serde_json::to_string(&detail).expect("JSON"))
        .build();
    let out = sender.events.put_events().entries(entry).send().await.expect("PutEvents");
    assert_eq!(out.failed_entry_count(), 0);
}
