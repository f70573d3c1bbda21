//! The local Lambda host (`snapferry_local`) against the emulator: the topology it
//! deploys matches shared/routing.json, events reach the right queues across accounts, and
//! the host gives handlers Lambda's SQS semantics (partial batch failures, crashes,
//! redrive to the DLQ, scheduled events). Each test uses its own accounts.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use serde_json::{Value, json};
use snapferry::clients::Clients;
use snapferry::inbound::{Incoming, parse_message};
use snapferry::routing::{Bus, Routing, Side};
use snapferry::sqs::BatchHandler;
use snapferry_e2e::{REGION, clients, eventually, new_account};
use snapferry_local::{DeployOptions, Deployment, Host, deploy};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

struct Accounts {
    routing: Routing,
    source: Clients,
    targets: Vec<Clients>,
}

async fn accounts(targets: usize) -> Accounts {
    let source = clients(&new_account(), REGION).await;
    let mut target_clients = Vec::new();
    for _ in 0..targets {
        target_clients.push(clients(&new_account(), REGION).await);
    }
    Accounts { routing: Routing::load(), source, targets: target_clients }
}

/// Deploys with a short visibility timeout, so failed records come back within a second.
async fn deployed(targets: usize) -> (Accounts, Deployment) {
    let a = accounts(targets).await;
    let options = DeployOptions { visibility_timeout_override: Some(1), copied_back: true };
    let deployment = deploy(&a.routing, std::slice::from_ref(&a.source), &a.targets, &options).await.expect("deploy");
    (a, deployment)
}

fn bus_name(routing: &Routing, bus: Bus) -> &str {
    match bus {
        Bus::Default => "default",
        Bus::Pipeline => &routing.pipeline_bus,
    }
}

async fn queue_attributes(c: &Clients, url: &str) -> HashMap<String, String> {
    let out = c
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("GetQueueAttributes");
    out.attributes().cloned().unwrap_or_default().into_iter().map(|(k, v)| (k.as_str().to_string(), v)).collect()
}

/// Messages in the queue, visible or in flight.
async fn depth(c: &Clients, url: &str) -> u64 {
    let a = queue_attributes(c, url).await;
    let n = |k: &str| a.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n("ApproximateNumberOfMessages") + n("ApproximateNumberOfMessagesNotVisible")
}

async fn send(c: &Clients, url: &str, body: &str) -> String {
    let out = c.sqs.send_message().queue_url(url).message_body(body).send().await.expect("SendMessage");
    out.message_id().expect("message id").to_string()
}

/// A JSON number or a numeric string (SQS returns attribute values as strings, moto keeps
/// what it parsed).
fn as_u64(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

#[tokio::test]
async fn deploy_creates_the_topology_of_routing_json() {
    let a = accounts(2).await;
    let r = &a.routing;
    let deployment =
        deploy(r, std::slice::from_ref(&a.source), &a.targets, &DeployOptions::default()).await.expect("deploy");

    let sides = [(Side::Source, std::slice::from_ref(&a.source)), (Side::Target, a.targets.as_slice())];
    for (side, accounts) in sides {
        for c in accounts {
            for f in &r.functions {
                let deployed = deployment.queue(&c.account, &f.name);
                if f.account != side {
                    assert!(deployed.is_none(), "{} deployed in the {side:?} account", f.name);
                    let missing = c.sqs.get_queue_url().queue_name(&f.queue).send().await;
                    assert!(missing.is_err(), "{} exists in the {side:?} account", f.queue);
                    continue;
                }
                let q = deployed.unwrap_or_else(|| panic!("{} not deployed in {}", f.name, c.account));
                assert_eq!(deployment.queue_url(&c.account, &f.name), Some(q.queue_url.as_str()));
                let url = c.sqs.get_queue_url().queue_name(&f.queue).send().await.expect("GetQueueUrl");
                assert_eq!(url.queue_url(), Some(q.queue_url.as_str()));
                let dlq_url = c.sqs.get_queue_url().queue_name(r.dlq_name(f)).send().await.expect("DLQ exists");
                assert_eq!(dlq_url.queue_url(), Some(q.dlq_url.as_str()));

                let attrs = queue_attributes(c, &q.queue_url).await;
                assert_eq!(attrs["QueueArn"], q.queue_arn);
                assert_eq!(attrs["VisibilityTimeout"], (f.timeout_seconds * r.visibility_timeout_factor).to_string());
                let redrive: Value = serde_json::from_str(&attrs["RedrivePolicy"]).expect("RedrivePolicy is JSON");
                let dlq_attrs = queue_attributes(c, &q.dlq_url).await;
                assert_eq!(redrive["deadLetterTargetArn"], dlq_attrs["QueueArn"], "{}", f.name);
                assert_eq!(as_u64(&redrive["maxReceiveCount"]), Some(u64::from(r.max_receive_count)));
                assert_eq!(dlq_attrs["MessageRetentionPeriod"], (u64::from(r.dlq_retention_days) * 86_400).to_string());
                let policy: Value = serde_json::from_str(&attrs["Policy"]).expect("queue policy is JSON");

                for rule in &f.rules {
                    let bus = bus_name(r, rule.bus);
                    let described = c
                        .events
                        .describe_rule()
                        .name(&rule.name)
                        .event_bus_name(bus)
                        .send()
                        .await
                        .expect("DescribeRule");
                    assert_eq!(described.state().map(|s| s.as_str()), Some("ENABLED"), "{}", rule.name);
                    let pattern = described.event_pattern().map(|p| serde_json::from_str::<Value>(p).expect("JSON"));
                    assert_eq!(pattern.as_ref(), rule.pattern.as_ref(), "{}", rule.name);
                    assert_eq!(described.schedule_expression(), rule.schedule.as_deref(), "{}", rule.name);
                    let targets = c
                        .events
                        .list_targets_by_rule()
                        .rule(&rule.name)
                        .event_bus_name(bus)
                        .send()
                        .await
                        .expect("ListTargetsByRule");
                    let arns: Vec<&str> = targets.targets().iter().map(|t| t.arn()).collect();
                    assert_eq!(arns, vec![q.queue_arn.as_str()], "{}", rule.name);
                    let rule_arn = described.arn().expect("rule arn");
                    let admitted = policy["Statement"].as_array().expect("statements").iter().any(|s| {
                        s["Principal"]["Service"] == "events.amazonaws.com"
                            && s["Condition"]["ArnEquals"]["aws:SourceArn"] == rule_arn
                            && s["Action"].as_array().is_some_and(|a| a.contains(&json!("sqs:SendMessage")))
                    });
                    assert!(admitted, "queue policy of {} does not admit {rule_arn}: {policy}", f.queue);
                }
            }
        }
    }

    let source_bus = bus_name(r, r.cross_account.bus);
    for t in &a.targets {
        let (rule_name, pattern) = r.cross_account.for_account(&t.account);
        let described = a
            .source
            .events
            .describe_rule()
            .name(&rule_name)
            .event_bus_name(source_bus)
            .send()
            .await
            .expect("forwarding rule");
        assert_eq!(described.event_pattern().map(|p| serde_json::from_str::<Value>(p).expect("JSON")), Some(pattern));
        let target_bus = t.events.describe_event_bus().name(&r.pipeline_bus).send().await.expect("target bus");
        let targets = a
            .source
            .events
            .list_targets_by_rule()
            .rule(&rule_name)
            .event_bus_name(source_bus)
            .send()
            .await
            .expect("ListTargetsByRule");
        let arns: Vec<&str> = targets.targets().iter().map(|t| t.arn()).collect();
        assert_eq!(arns, vec![target_bus.arn().expect("bus arn")]);
        assert_eq!(deployment.pipeline_bus_arn(&t.account), target_bus.arn());
        let policy: Value = serde_json::from_str(target_bus.policy().expect("target bus has a policy")).expect("JSON");
        assert!(policy.to_string().contains(&a.source.account), "bus policy does not admit the source: {policy}");
    }
    // Each schedule rule of routing.json, in every account its function runs in.
    let schedules = |side: Side| {
        a.routing
            .functions
            .iter()
            .filter(|f| f.account == side)
            .flat_map(|f| &f.rules)
            .filter(|r| r.schedule.is_some())
            .count()
    };
    let expected = schedules(Side::Source) + a.targets.len() * schedules(Side::Target);
    assert_eq!(deployment.schedules().len(), expected, "one per schedule rule and account");
}

#[tokio::test]
async fn deploying_twice_changes_nothing_and_a_new_override_updates_the_queues() {
    let a = accounts(1).await;
    let t = &a.targets[0];
    let first = deploy(&a.routing, std::slice::from_ref(&a.source), &a.targets, &DeployOptions::default())
        .await
        .expect("first deploy");
    let second = deploy(&a.routing, std::slice::from_ref(&a.source), &a.targets, &DeployOptions::default())
        .await
        .expect("second deploy");
    let queues = |d: &Deployment| d.queues().cloned().collect::<Vec<_>>();
    assert_eq!(queues(&first), queues(&second));
    assert_eq!(first.schedules(), second.schedules());

    for c in [&a.source, t] {
        let listed = c.sqs.list_queues().send().await.expect("ListQueues");
        let deployed = second.queues().filter(|q| q.account == c.account).count();
        assert_eq!(listed.queue_urls().len(), deployed * 2, "one queue and one DLQ per function");
        for bus in ["default", a.routing.pipeline_bus.as_str()] {
            let rules = c.events.list_rules().event_bus_name(bus).send().await.expect("ListRules");
            for rule in rules.rules() {
                let name = rule.name().expect("rule name");
                let targets =
                    c.events.list_targets_by_rule().rule(name).event_bus_name(bus).send().await.expect("targets");
                assert_eq!(targets.targets().len(), 1, "{name} has one target after two deploys");
            }
        }
    }
    let bus = t.events.describe_event_bus().name(&a.routing.pipeline_bus).send().await.expect("bus");
    let policy: Value = serde_json::from_str(bus.policy().expect("policy")).expect("JSON");
    assert_eq!(policy["Statement"].as_array().map(Vec::len), Some(1), "one statement for the source: {policy}");

    let options = DeployOptions { visibility_timeout_override: Some(3), copied_back: false };
    let third = deploy(&a.routing, std::slice::from_ref(&a.source), &a.targets, &options)
        .await
        .expect("deploy with an override");
    assert_eq!(queues(&first).iter().map(|q| &q.queue_url).collect::<Vec<_>>(), {
        third.queues().map(|q| &q.queue_url).collect::<Vec<_>>()
    });
    for q in third.queues() {
        let c = if q.account == a.source.account { &a.source } else { t };
        assert_eq!(queue_attributes(c, &q.queue_url).await["VisibilityTimeout"], "3", "{}", q.function);
    }
}

#[tokio::test]
async fn shared_events_are_forwarded_to_the_named_target_account_only() {
    let (a, deployment) = deployed(2).await;
    let (t1, t2) = (&a.targets[0], &a.targets[1]);
    let entry = PutEventsRequestEntry::builder()
        .event_bus_name(&a.routing.pipeline_bus)
        .source(&a.routing.source)
        .detail_type("Snapshot Shared")
        .detail(json!({ "target_account": t1.account, "correlation_id": "c-1" }).to_string())
        .resources("arn:aws:rds:us-east-1:111111111111:snapshot:s1")
        .build();
    let put = a.source.events.put_events().entries(entry).send().await.expect("PutEvents");
    assert_eq!(put.failed_entry_count(), 0, "{:?}", put.entries());

    let copy_queue = deployment.queue_url(&t1.account, "copy-shared-snapshot").expect("t1 copy queue");
    let body = eventually("the shared event in the target's copy queue", DEADLINE, || async {
        let out = t1.sqs.receive_message().queue_url(copy_queue).send().await.expect("ReceiveMessage");
        out.messages().first().and_then(|m| m.body()).map(str::to_string)
    })
    .await;
    let envelope: Value = serde_json::from_str(&body).expect("envelope is JSON");
    assert_eq!(envelope["detail-type"], "Snapshot Shared");
    assert_eq!(envelope["detail"]["target_account"], t1.account.as_str());
    assert_eq!(envelope["account"], a.source.account.as_str(), "the envelope names the account that sent it: {body}");
    assert_eq!(envelope["resources"], json!(["arn:aws:rds:us-east-1:111111111111:snapshot:s1"]));

    // Forwarding is synchronous in the emulator: once t1 has it, t2 would have it too.
    let other = deployment.queue_url(&t2.account, "copy-shared-snapshot").expect("t2 copy queue");
    assert_eq!(depth(t2, other).await, 0, "an event for t1 reached t2");
    let restore = deployment.queue_url(&t1.account, "restore").expect("t1 restore queue");
    assert_eq!(depth(t1, restore).await, 0, "a Snapshot Shared event reached the restore queue");
}

/// Records every delivery; reports records whose body is `fail` as batch item failures.
#[derive(Default)]
struct FailsSome {
    fail: String,
    seen: Mutex<Vec<SqsMessage>>,
}

impl FailsSome {
    fn deliveries(&self, body: &str) -> Vec<SqsMessage> {
        let seen = self.seen.lock().expect("lock");
        seen.iter().filter(|m| m.body.as_deref() == Some(body)).cloned().collect()
    }
}

#[async_trait::async_trait]
impl BatchHandler for FailsSome {
    async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for record in event.records {
            if record.body.as_deref() == Some(self.fail.as_str()) {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = record.message_id.clone().unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
            self.seen.lock().expect("lock").push(record);
        }
        response
    }
}

#[tokio::test]
async fn records_reported_as_failed_come_back_and_the_others_are_deleted() {
    let (a, deployment) = deployed(0).await;
    let q = deployment.queue(&a.source.account, "share-snapshot").expect("share queue").clone();
    let handler = Arc::new(FailsSome { fail: "b".into(), ..Default::default() });
    let mut host = Host::new(&deployment);
    host.register(&a.source, "share-snapshot", handler.clone()).expect("register");
    let attribute = MessageAttributeValue::builder().data_type("String").string_value("3").build().expect("attr");
    a.source
        .sqs
        .send_message()
        .queue_url(&q.queue_url)
        .message_body("a")
        .message_attributes("snapferry-attempt", attribute)
        .send()
        .await
        .expect("SendMessage");
    let b_id = send(&a.source, &q.queue_url, "b").await;
    send(&a.source, &q.queue_url, "c").await;

    let h = handler.clone();
    host.run_until(DEADLINE, || std::future::ready(h.deliveries("b").len() >= 2)).await.expect("b comes back");

    assert_eq!(depth(&a.source, &q.queue_url).await, 1, "only the failed record is left");
    assert_eq!(handler.deliveries("a").len(), 1, "a was deleted after its first delivery");
    assert_eq!(handler.deliveries("c").len(), 1, "c was deleted after its first delivery");
    let b = handler.deliveries("b");
    assert_eq!(b[1].message_id.as_deref(), Some(b_id.as_str()));
    assert_eq!(b[1].attributes.get("ApproximateReceiveCount").map(String::as_str), Some("2"));
    assert!(b[1].attributes.contains_key("SentTimestamp"), "system attributes: {:?}", b[1].attributes);

    let record = &handler.deliveries("a")[0];
    assert_eq!(record.event_source.as_deref(), Some("aws:sqs"));
    assert_eq!(record.event_source_arn.as_deref(), Some(q.queue_arn.as_str()));
    assert_eq!(record.aws_region.as_deref(), Some(REGION));
    assert!(record.receipt_handle.is_some() && record.md5_of_body.is_some());
    let attempt = &record.message_attributes["snapferry-attempt"];
    assert_eq!((attempt.data_type.as_deref(), attempt.string_value.as_deref()), (Some("String"), Some("3")));
}

/// Spoils its first invocation, by crashing (`crash`) or by naming a record that is not in
/// the batch; handles every later batch and records what it saw.
#[derive(Default)]
struct SpoilsFirstBatch {
    crash: bool,
    invocations: AtomicUsize,
    first_batch: Mutex<Vec<String>>,
    handled: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl BatchHandler for SpoilsFirstBatch {
    async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let ids = event.records.iter().filter_map(|r| r.message_id.clone());
        let mut response = SqsBatchResponse::default();
        if self.invocations.fetch_add(1, Ordering::SeqCst) == 0 {
            self.first_batch.lock().expect("lock").extend(ids);
            if self.crash {
                panic!("the handler crashed (on purpose)");
            }
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = "not-a-message-of-this-batch".into();
            response.batch_item_failures.push(failure);
            return response;
        }
        self.handled.lock().expect("lock").extend(ids);
        response
    }
}

/// Lambda retries the whole batch when the function crashes, and when its response names
/// an item that is not in the batch.
async fn spoiled_batches_come_back_whole(crash: bool) {
    let (a, deployment) = deployed(0).await;
    let url = deployment.queue_url(&a.source.account, "share-snapshot").expect("queue").to_string();
    let handler = Arc::new(SpoilsFirstBatch { crash, ..Default::default() });
    let mut host = Host::new(&deployment);
    host.register(&a.source, "share-snapshot", handler.clone()).expect("register");
    send(&a.source, &url, "one").await;
    send(&a.source, &url, "two").await;

    let received = host.poll_once().await.expect("a spoiled batch does not fail the host");
    assert_eq!(received, 2);
    assert_eq!(handler.first_batch.lock().expect("lock").len(), 2);
    let h = handler.clone();
    host.run_until(DEADLINE, || {
        let spoiled = h.first_batch.lock().expect("lock").clone();
        let handled = h.handled.lock().expect("lock").clone();
        std::future::ready(spoiled.iter().all(|id| handled.contains(id)))
    })
    .await
    .expect("every record of the spoiled batch comes back");
    assert_eq!(depth(&a.source, &url).await, 0, "deleted once handled");
}

#[tokio::test]
async fn a_crashed_handler_gets_its_whole_batch_again() {
    spoiled_batches_come_back_whole(true).await;
}

#[tokio::test]
async fn a_response_naming_an_unknown_record_fails_the_whole_batch() {
    spoiled_batches_come_back_whole(false).await;
}

/// Fails every record it is given.
#[derive(Default)]
struct AlwaysFails {
    deliveries: AtomicUsize,
}

#[async_trait::async_trait]
impl BatchHandler for AlwaysFails {
    async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for record in event.records {
            self.deliveries.fetch_add(1, Ordering::SeqCst);
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = record.message_id.unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
        response
    }
}

#[tokio::test]
async fn a_record_failed_max_receive_count_times_ends_in_the_dlq() {
    let (a, deployment) = deployed(1).await;
    let t = &a.targets[0];
    let q = deployment.queue(&t.account, "restore").expect("restore queue").clone();
    let handler = Arc::new(AlwaysFails::default());
    let mut host = Host::new(&deployment);
    host.register(t, "restore", handler.clone()).expect("register");
    let id = send(t, &q.queue_url, "doomed").await;

    let (sqs, dlq) = (t.sqs.clone(), q.dlq_url.clone());
    host.run_until(Duration::from_secs(60), || {
        let (sqs, dlq) = (sqs.clone(), dlq.clone());
        async move {
            let a = sqs
                .get_queue_attributes()
                .queue_url(dlq)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .send()
                .await
                .expect("GetQueueAttributes");
            a.attributes().and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages)).map(String::as_str)
                == Some("1")
        }
    })
    .await
    .expect("the record reaches the DLQ");

    assert_eq!(handler.deliveries.load(Ordering::SeqCst), a.routing.max_receive_count as usize);
    assert_eq!(depth(t, &q.queue_url).await, 0);
    let dead = t.sqs.receive_message().queue_url(&q.dlq_url).send().await.expect("ReceiveMessage");
    let dead = dead.messages().first().expect("the dead letter");
    assert_eq!((dead.body(), dead.message_id()), (Some("doomed"), Some(id.as_str())));
}

/// Keeps the bodies it is given.
#[derive(Default)]
struct Collects {
    bodies: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl BatchHandler for Collects {
    async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        self.bodies.lock().expect("lock").extend(event.records.into_iter().filter_map(|r| r.body));
        SqsBatchResponse::default()
    }
}

#[tokio::test]
async fn fire_schedule_delivers_a_scheduled_event_to_the_create_queue() {
    let (a, deployment) = deployed(0).await;
    let handler = Arc::new(Collects::default());
    let mut host = Host::new(&deployment);
    host.register(&a.source, "create-snapshot", handler.clone()).expect("register");

    // Only this step is hosted here: its schedule alone, as `fire-schedule --step` does.
    let e = host.fire(Some("no-such-step"), chrono::Utc::now()).await.expect_err("an unknown step");
    assert!(e.to_string().contains("create-snapshot"), "names the scheduled steps: {e}");
    assert_eq!(host.fire(Some("create-snapshot"), chrono::Utc::now()).await.expect("fire"), 1);
    let h = handler.clone();
    host.run_until(DEADLINE, || std::future::ready(!h.bodies.lock().expect("lock").is_empty()))
        .await
        .expect("the scheduled event is handled");

    let body = handler.bodies.lock().expect("lock")[0].clone();
    let event: Value = serde_json::from_str(&body).expect("JSON");
    let rule =
        a.routing.function("create-snapshot").expect("create-snapshot").rules.iter().find(|r| r.schedule.is_some());
    let rule = rule.expect("a schedule rule");
    let described = a.source.events.describe_rule().name(&rule.name).send().await.expect("DescribeRule");
    assert_eq!(event["source"], "aws.events");
    assert_eq!(event["detail-type"], "Scheduled Event");
    assert_eq!(event["account"], a.source.account.as_str());
    assert_eq!(event["region"], REGION);
    assert_eq!(event["resources"], json!([described.arn().expect("rule arn")]));
    assert_eq!(event["detail"], json!({}));
    let time = event["time"].as_str().expect("time");
    assert!(time.ends_with('Z') && !time.contains('.'), "EventBridge times are whole seconds: {time}");
    assert!(matches!(parse_message(&body), Ok(Incoming::Schedule(_))), "the steps read it as a schedule");

    let url = deployment.queue_url(&a.source.account, "create-snapshot").expect("queue");
    assert_eq!(depth(&a.source, url).await, 0);
}

#[tokio::test]
async fn registering_a_function_not_deployed_in_the_account_fails() {
    let (a, deployment) = deployed(0).await;
    let mut host = Host::new(&deployment);
    let err =
        host.register(&a.source, "restore", Arc::new(Collects::default())).expect_err("restore is a target function");
    assert!(err.to_string().contains("restore"), "{err}");
    let err = host.fire_schedule().await.expect_err("create-snapshot is not registered");
    assert!(err.to_string().contains("create-snapshot"), "{err}");
}

#[tokio::test]
async fn run_until_stopped_handles_messages_and_returns_when_told() {
    let (a, deployment) = deployed(0).await;
    let url = deployment.queue_url(&a.source.account, "share-snapshot").expect("queue").to_string();
    let handler = Arc::new(Collects::default());
    let mut host = Host::new(&deployment);
    host.register(&a.source, "share-snapshot", handler.clone()).expect("register");
    send(&a.source, &url, "hello").await;

    let h = handler.clone();
    let stop = async move {
        eventually("the message to be handled", DEADLINE, || {
            std::future::ready((!h.bodies.lock().expect("lock").is_empty()).then_some(()))
        })
        .await
    };
    tokio::time::timeout(DEADLINE, host.run_until_stopped(stop))
        .await
        .expect("the host stops when its stop future completes")
        .expect("no polling error");
    assert_eq!(*handler.bodies.lock().expect("lock"), vec!["hello".to_string()]);
    assert_eq!(depth(&a.source, &url).await, 0, "the round in progress finished, deleting the message");
}

/// Holds every batch until released.
#[derive(Default)]
struct Blocks {
    started: AtomicUsize,
    release: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl BatchHandler for Blocks {
    async fn handle(&self, _event: SqsEvent) -> SqsBatchResponse {
        self.started.fetch_add(1, Ordering::SeqCst);
        self.release.notified().await;
        SqsBatchResponse::default()
    }
}

#[tokio::test]
async fn a_slow_handler_holds_up_its_own_queue_only() {
    let (a, deployment) = deployed(0).await;
    let slow_url = deployment.queue_url(&a.source.account, "create-snapshot").expect("queue").to_string();
    let url = deployment.queue_url(&a.source.account, "share-snapshot").expect("queue").to_string();
    let (slow, fast) = (Arc::new(Blocks::default()), Arc::new(Collects::default()));
    let mut host = Host::new(&deployment);
    host.register(&a.source, "create-snapshot", slow.clone()).expect("register");
    host.register(&a.source, "share-snapshot", fast.clone()).expect("register");
    send(&a.source, &slow_url, "slow").await;
    send(&a.source, &url, "one").await;

    let (s, f, source) = (slow.clone(), fast.clone(), a.source.clone());
    let stop = async move {
        eventually("the slow handler to be busy", DEADLINE, || {
            std::future::ready((s.started.load(Ordering::SeqCst) > 0).then_some(()))
        })
        .await;
        // Sent while the slow handler is still busy: handled all the same, as Lambda would.
        send(&source, &url, "two").await;
        eventually("the other queue's messages to be handled", DEADLINE, || {
            std::future::ready((f.bodies.lock().expect("lock").len() == 2).then_some(()))
        })
        .await;
        s.release.notify_one();
    };
    tokio::time::timeout(DEADLINE * 3, host.run_until_stopped(stop))
        .await
        .expect("the host stops when its stop future completes")
        .expect("no polling error");
    assert_eq!(*fast.bodies.lock().expect("lock"), vec!["one".to_string(), "two".to_string()]);
    assert_eq!(depth(&a.source, &slow_url).await, 0, "the slow invocation finished, deleting its message");
}
