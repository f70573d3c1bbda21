//! `snapferry dlq` against the emulator: a failure is shown with its reason, SQS's redrive
//! moves it back and the chain completes; a selected replay moves only what matches, and a
//! send that fails mid-replay loses nothing.

use aws_sdk_sqs::types::MessageAttributeValue;
use snapferry::ResourceKind;
use snapferry::routing::Routing;
use snapferry::sqs::{ATTR_ERROR_CODE, ATTR_ERROR_REASON};
use snapferry_cli::dlq::{self, REDRIVEN, Selection};
use snapferry_e2e::chain::*;
use snapferry_e2e::control;
use std::time::Duration;

fn queue<'a>(p: &'a LocalPipeline, step: &str) -> &'a snapferry_local::DeployedQueue {
    p.deployment.queues().find(|q| q.function == step && q.account == p.target.account).expect("deployed")
}

/// The stack's delivery DLQ, which the local host does not deploy, made in the backup account.
async fn delivery_dlq(p: &LocalPipeline, routing: &Routing) -> String {
    p.target
        .sqs
        .create_queue()
        .queue_name(&routing.delivery_dlq)
        .send()
        .await
        .expect("create the delivery DLQ")
        .queue_url()
        .expect("url")
        .to_string()
}

#[tokio::test]
async fn a_dead_letter_is_shown_with_its_reason_replayed_by_sqs_and_the_chain_completes() {
    let p = start(&fast_options()).await;
    // The copy is refused once for good (no permission): the message goes to the DLQ at once.
    control::fault("CopyDBSnapshot", Some(&p.target.account), 1, "AccessDenied", 403);
    instance(&p.source, "dead", Encryption::Key(&p.sharing_key), &[]).await;
    p.host.fire_schedule().await.expect("fire the schedule");
    let copy_dlq = queue(&p, "copy-shared-snapshot").dlq_url.clone();
    let mut events = Vec::new();
    drive_until(&p, &mut events, "the copy dead-lettered", || async {
        (queue_depth(&p.target, &copy_dlq).await == 1).then_some(())
    })
    .await;

    let routing = Routing::load();
    let states = dlq::list(&p.target, &routing).await.expect("dlq list");
    let copy = states.iter().find(|s| s.step == "copy-shared-snapshot").expect("the copy step's queues");
    assert_eq!(copy.dead_letters, 1);
    assert!(copy.oldest_dead_letter_age_seconds.is_some_and(|s| s >= 0), "{copy:?}");
    assert!(states.iter().all(|s| s.step == "copy-shared-snapshot" || s.dead_letters == 0), "{states:?}");
    assert!(!states.iter().any(|s| s.step == "create-snapshot"), "the source's steps are not in this account");

    let letters = dlq::show(&p.target, &routing, "copy-shared-snapshot").await.expect("dlq show").letters;
    let [letter] = &letters[..] else { panic!("{letters:?}") };
    assert!(letter.reason.contains("AccessDenied"), "{letter:?}");
    assert_eq!(letter.resource.as_deref(), Some("dead"));
    assert!(letter.correlation_id.is_some());
    // Looking does not take: the message is still there for the replay.
    assert_eq!(queue_depth(&p.target, &copy_dlq).await, 1);

    let mut seen = Vec::new();
    let replayed = dlq::replay_all(
        &p.target,
        &routing,
        "copy-shared-snapshot",
        None,
        |moved, total| seen.push((moved, total)),
        std::future::pending(),
    )
    .await
    .expect("dlq replay");
    assert_eq!((replayed.moved, replayed.cancelled), (1, false));
    assert!(!seen.is_empty(), "progress was reported");
    run_until(&p, &mut events, "dead verified after the replay", verified(&["dead"])).await;
    settle(&p, &mut events).await;
    assert_eq!(made_by(&p.target, ResourceKind::DbInstance, "copy", "dead").await.len(), 1, "one copy");
    assert_dlqs_empty(&p).await;
}

#[tokio::test]
async fn a_selected_replay_moves_only_what_matches_and_a_failed_send_loses_nothing() {
    let p = start(&fast_options()).await;
    let restore = queue(&p, "restore").clone();
    // Dead letters as the steps leave them (reason in the attributes), and one SQS moved.
    let text = |v: &str| MessageAttributeValue::builder().data_type("String").string_value(v).build().unwrap();
    for (body, reason) in [
        ("{\"a\":1}", Some("reason A")),
        ("{\"a\":2}", Some("reason A")),
        ("{\"b\":1}", Some("reason B")),
        ("{\"c\":1}", None),
    ] {
        let mut send = p.target.sqs.send_message().queue_url(&restore.dlq_url).message_body(body);
        if let Some(reason) = reason {
            send = send
                .message_attributes(ATTR_ERROR_REASON, text(reason))
                .message_attributes(ATTR_ERROR_CODE, text("BadInput"));
        }
        send.send().await.expect("SendMessage");
    }
    let routing = Routing::load();
    let letters = dlq::show(&p.target, &routing, "restore").await.expect("show").letters;
    let mut reasons: Vec<&str> = letters.iter().map(|d| d.reason.as_str()).collect();
    reasons.sort();
    assert_eq!(
        reasons,
        ["exceeded maxReceiveCount (moved by SQS's redrive policy)", "reason A", "reason A", "reason B"]
    );
    assert!(reasons.contains(&REDRIVEN));

    let only_a = Selection { reason: Some(regex::Regex::new("^reason A$").unwrap()), ..Default::default() };
    let dry = dlq::replay_selected(&p.target, &routing, "restore", &only_a, true).await.expect("dry run");
    assert_eq!((dry.moved, dry.messages.len()), (0, 2));
    assert_eq!(queue_depth(&p.target, &restore.dlq_url).await, 4, "a dry run moves nothing");

    // Every attempt of the first send fails (the SDK retries twice): nothing moves, nothing is lost.
    control::fault("SendMessage", Some(&p.target.account), 3, "InternalError", 500);
    dlq::replay_selected(&p.target, &routing, "restore", &only_a, false).await.expect_err("the send fails");
    assert_eq!(queue_depth(&p.target, &restore.dlq_url).await, 4, "still in the DLQ");
    assert_eq!(queue_depth(&p.target, &restore.queue_url).await, 0);

    let moved = dlq::replay_selected(&p.target, &routing, "restore", &only_a, false).await.expect("replay");
    assert_eq!(moved.moved, 2);
    assert_eq!(queue_depth(&p.target, &restore.dlq_url).await, 2, "B and the redriven one stay");
    assert_eq!(queue_depth(&p.target, &restore.queue_url).await, 2, "back in the step's queue");
    let one = Selection { max: Some(1), ..Default::default() };
    assert_eq!(dlq::replay_selected(&p.target, &routing, "restore", &one, false).await.expect("max").moved, 1);
    assert_eq!(queue_depth(&p.target, &restore.dlq_url).await, 1);
    let e = dlq::show(&p.target, &routing, "no-such-step").await.expect_err("unknown step");
    assert!(e.to_string().contains("copy-shared-snapshot"), "names the steps: {e}");
}

#[tokio::test]
async fn ctrl_c_cancels_a_running_replay_and_nothing_is_lost() {
    // SIGINT is taken by the process's signal handling from here on (as in the CLI, which
    // listens for it while a replay runs); without this it would end the test process.
    let mut interrupts =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).expect("listen for SIGINT");
    let p = start(&fast_options()).await;
    let restore = queue(&p, "restore").clone();
    for i in 0..20 {
        let send = p.target.sqs.send_message().queue_url(&restore.dlq_url).message_body(format!("{{\"n\":{i}}}"));
        send.send().await.expect("SendMessage");
    }
    // The whole CLI, as an operator runs it: two messages a second, so it is still moving
    // when Ctrl-C comes.
    let endpoint = snapferry_e2e::emulator().endpoint.clone();
    let args = [
        "snapferry",
        "dlq",
        "replay",
        "restore",
        "--rate",
        "2",
        "--endpoint",
        &endpoint,
        "--region",
        snapferry_e2e::REGION,
        "--account",
        &p.target.account,
        "--role",
        "snapferry-test",
    ];
    let cli = <snapferry_cli::Cli as clap::Parser>::try_parse_from(args).expect("arguments");
    let replay = tokio::spawn(snapferry_cli::run(cli));
    snapferry_e2e::eventually("the replay moving", Duration::from_secs(30), || async {
        (queue_depth(&p.target, &restore.queue_url).await >= 2).then_some(())
    })
    .await;
    let pid = std::process::id().to_string();
    let kill = std::process::Command::new("kill").args(["-INT", &pid]).status().expect("kill -INT");
    assert!(kill.success());
    interrupts.recv().await;
    let code =
        tokio::time::timeout(Duration::from_secs(30), replay).await.expect("ends").expect("joins").expect("runs");
    assert_eq!(code, std::process::ExitCode::from(1), "a cancelled replay is not a success");

    // SQS's task was cancelled, not left running: the DLQ keeps the rest, nothing is lost.
    let source = snapferry::sqs::queue_arn(&p.target.sqs, &restore.dlq_url).await.expect("DLQ ARN");
    let tasks = p.target.sqs.list_message_move_tasks().source_arn(&source).send().await.expect("ListMessageMoveTasks");
    assert_eq!(tasks.results().first().and_then(|t| t.status()), Some("CANCELLED"), "{tasks:?}");
    // A message SQS was moving when the task was cancelled is in one queue or the other,
    // counted once it is visible again.
    let (moved, left) =
        snapferry_e2e::eventually("every message in one of the two queues", Duration::from_secs(30), || async {
            let moved = queue_depth(&p.target, &restore.queue_url).await;
            let left = queue_depth(&p.target, &restore.dlq_url).await;
            (moved + left == 20).then_some((moved, left))
        })
        .await;
    assert!(left > 0 && moved >= 2, "moved {moved}, left {left}");
}

#[tokio::test]
async fn a_large_dlq_is_counted_from_its_attributes_and_read_in_a_bounded_sample_once_each() {
    let p = start(&fast_options()).await;
    let dlq_url = queue(&p, "restore").dlq_url.clone();
    for batch in 0..25 {
        let entries: Vec<_> = (0..10)
            .map(|i| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .message_body(format!("{{\"not\": \"an event\", \"n\": {}}}", batch * 10 + i))
                    .build()
                    .expect("entry")
            })
            .collect();
        p.target.sqs.send_message_batch().queue_url(&dlq_url).set_entries(Some(entries)).send().await.expect("send");
    }
    let routing = Routing::load();
    let shown = dlq::show(&p.target, &routing, "restore").await.expect("show");
    assert_eq!(shown.total, 250, "counted by SQS, not by reading them all");
    assert_eq!(shown.letters.len(), dlq::SAMPLE);
    let mut ids: Vec<&str> = shown.letters.iter().map(|d| d.message_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), dlq::SAMPLE, "each letter once");
    let states = dlq::list(&p.target, &routing).await.expect("list");
    let restore = states.iter().find(|s| s.step == "restore").expect("restore's queues");
    assert_eq!(restore.dead_letters, 250);
    // Everything read was made visible again: nothing is lost by looking.
    assert_eq!(queue_depth(&p.target, &dlq_url).await, 250);

    // The stack's delivery DLQ (events EventBridge could not deliver) is counted beside them.
    assert!(!states.iter().any(|s| s.step == dlq::UNDELIVERED), "not deployed by the local host: no row");
    let undelivered = delivery_dlq(&p, &routing).await;
    for _ in 0..3 {
        p.target.sqs.send_message().queue_url(&undelivered).message_body("{}").send().await.expect("send");
    }
    let states = dlq::list(&p.target, &routing).await.expect("list");
    let row = states.iter().find(|s| s.step == dlq::UNDELIVERED).expect("the delivery DLQ's row");
    assert_eq!((row.queue.as_str(), row.dead_letters), (routing.delivery_dlq.as_str(), 3));
    assert!(row.oldest_dead_letter_age_seconds.is_some());
}

#[tokio::test]
async fn an_event_eventbridge_could_not_deliver_is_replayed_to_the_step_it_was_for() {
    // One invocation at a time: the copy is announced once, and that announcement is lost on
    // its way to the restore step (as if its queue had refused it), as EventBridge leaves it
    // in the stack's delivery DLQ.
    let options = snapferry_local::pipeline::PipelineOptions { concurrency: 1, ..fast_options() };
    let p = start(&options).await;
    let drop = serde_json::json!({"detail_type": "Snapshot Copied", "account": p.target.account, "count": 1});
    control::call("POST", "/_snapferry/drop-events", Some(drop));
    instance(&p.source, "undelivered", Encryption::Key(&p.sharing_key), &[]).await;
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    let lost = drive_until(&p, &mut events, "the lost Snapshot Copied", || async {
        control::events(&p.target.account).into_iter().find(|e| e["dropped"] == true).map(|e| e["event"].to_string())
    })
    .await;
    settle(&p, &mut events).await;
    assert!(!has(&events, "undelivered", VERIFIED), "{}", summary(&events));

    let routing = Routing::load();
    let undelivered = delivery_dlq(&p, &routing).await;
    let restore = queue(&p, "restore").clone();
    let restore_arn = snapferry::sqs::queue_arn(&p.target.sqs, &restore.queue_url).await.expect("arn");
    let text = |v: &str| MessageAttributeValue::builder().data_type("String").string_value(v).build().unwrap();
    // The lost event for the restore step's queue, and one for a queue that is not a step's here.
    for target in [restore_arn.as_str(), "arn:aws:sqs:us-east-1:444444444444:someone-elses-queue"] {
        p.target
            .sqs
            .send_message()
            .queue_url(&undelivered)
            .message_body(&lost)
            .message_attributes("RULE_ARN", text("arn:aws:events:us-east-1:222222222222:rule/snapferry/restore"))
            .message_attributes("TARGET_ARN", text(target))
            .message_attributes("ERROR_CODE", text("SQS_PERMISSION_DENIED"))
            .message_attributes("ERROR_MESSAGE", text("the queue's policy did not admit the rule"))
            .send()
            .await
            .expect("SendMessage");
    }
    let shown = dlq::show(&p.target, &routing, dlq::UNDELIVERED_STEP).await.expect("show");
    assert_eq!(shown.total, 2);
    assert!(shown.letters.iter().all(|d| d.reason.contains("SQS_PERMISSION_DENIED")), "{:?}", shown.letters);
    assert!(shown.letters.iter().all(|d| d.resource.as_deref() == Some("undelivered")), "{:?}", shown.letters);

    let dry = dlq::replay_undelivered(&p.target, &routing, &Selection::default(), true).await.expect("dry run");
    assert_eq!((dry.moved, dry.messages.len(), dry.skipped), (0, 1, 1));
    let replayed = dlq::replay_undelivered(&p.target, &routing, &Selection::default(), false).await.expect("replay");
    assert_eq!((replayed.moved, replayed.skipped), (1, 1));
    assert_eq!(queue_depth(&p.target, &undelivered).await, 1, "the other target's event stays");
    run_until(&p, &mut events, "verified after the replay", verified(&["undelivered"])).await;
    settle(&p, &mut events).await;
    assert_eq!(count(&events, "undelivered", VERIFIED), 1, "{}", summary(&events));
}
