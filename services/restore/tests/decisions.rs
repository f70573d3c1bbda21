//! Every decision restore makes, on the in-memory cloud: whether to test a copy at all,
//! how it restores (isolated, smallest class per engine), each verdict of the verification,
//! the clock-driven timeout, duplicates, and each error class.

use chrono::Duration;
use snapferry::ResourceKind::{self, DbCluster, DbInstance};
use snapferry::config::Env;
use snapferry::error::Retry;
use snapferry::events::{PipelineEvent, Step};
use snapferry::memory::{Cloud, deliver, step_env};
use snapferry::sqs::Outcome;
use snapferry::step::PipelineStep;
use snapferry::store::{Restored, Snapshot, Status};
use snapferry::{naming, tags};
use snapferry_restore::{Config, Handler, STEP};

const SOURCE: &str = "111111111111";
const TARGET: &str = "222222222222";
const REGION: &str = "us-east-1";
const TARGET_KEY: &str = "arn:aws:kms:us-east-1:222222222222:key/backup";

fn config() -> Config {
    Config {
        step: step_env(),
        enabled: true,
        every_nth: 1,
        subnet_group: Some("isolated".into()),
        security_group_ids: vec!["sg-1".into()],
        instance_class: None,
        target_key: TARGET_KEY.into(),
        timeout: Duration::minutes(120),
        availability_zone: None,
        lock: None,
        data_checks: None,
    }
}

fn handler(cloud: &Cloud, config: Config) -> Handler {
    Handler::new(cloud.context(TARGET, REGION, config.step.clone()), config)
}

/// A copy in the backup account, as copy-shared-snapshot makes it, and its "copied" event.
fn copied(cloud: &Cloud, kind: ResourceKind, name: &str, resource: &str) -> (Snapshot, PipelineEvent) {
    let mut t = tags::LineageTags {
        source_arn: format!("arn:aws:rds:{REGION}:{SOURCE}:snapshot:{name}"),
        source_account: SOURCE.into(),
        correlation_id: format!("run-{name}"),
        step: "copy".into(),
    }
    .tags();
    t.insert(tags::ORIGIN_RESOURCE.into(), resource.into());
    let copy = Snapshot {
        encrypted: true,
        kms_key_id: Some(TARGET_KEY.into()),
        tags: t,
        ..cloud.snapshot(kind, TARGET, REGION, name, resource)
    };
    cloud.put_snapshot(copy.clone());
    let event =
        PipelineEvent::new(format!("run-{name}"), copy.to_ref(), copy.to_ref(), Step::Copied { copied_from: None });
    (copy, event)
}

async fn store_delete(cloud: &Cloud, s: &Snapshot) {
    cloud.stores(TARGET, REGION).store(s.kind).delete(s).await.unwrap();
}

/// Starts the restore test of `event`; returns the re-check it sends itself.
async fn start_test(h: &Handler, event: &PipelineEvent) -> String {
    match h.step(deliver::pipeline(event, Some(TARGET)), deliver::record()).await.unwrap() {
        Outcome::Later { body, .. } => body,
        other => panic!("a restore test comes back to look at its restore: {other:?}"),
    }
}

/// Runs the restore test of `event` to its end with `change` applied to the restored
/// resource once it is up; returns the events it published.
async fn run(
    cloud: &Cloud,
    h: &Handler,
    event: &PipelineEvent,
    change: impl FnOnce(&mut Restored),
) -> Vec<PipelineEvent> {
    let body = start_test(h, event).await;
    cloud.complete_all();
    cloud.set_restore(&naming::restore_id(&event.snapshot.id), change);
    cloud.advance(Duration::minutes(7));
    assert_eq!(h.step(deliver::body(&body), deliver::record()).await.unwrap(), Outcome::Done);
    cloud.take_published()
}

#[tokio::test]
async fn a_good_copy_is_verified_tagged_and_cleaned_up() {
    for kind in [DbInstance, DbCluster, ResourceKind::Ebs] {
        let cloud = Cloud::new();
        let (copy, event) = copied(&cloud, kind, "snapferry-copy-a", "orders");
        let events = run(&cloud, &handler(&cloud, config()), &event, |_| {}).await;
        let [PipelineEvent { step: Step::RestoreVerified { restore_seconds, engine, .. }, correlation_id, .. }] =
            &events[..]
        else {
            panic!("{kind}: {events:?}")
        };
        assert_eq!(*restore_seconds, 420.0, "{kind}: measured on the step's clock");
        assert_eq!(engine.as_deref(), copy.engine.as_deref());
        assert_eq!(correlation_id, &event.correlation_id);
        let verified = cloud.snapshots(TARGET, REGION).into_iter().find(|s| s.id == copy.id).unwrap();
        assert_eq!(verified.tags.get(tags::VERIFIED_AT), Some(&tags::timestamp_value(cloud.now())), "{kind}");
        assert!(cloud.restores().is_empty(), "{kind}: the test restore is deleted");
    }
}

#[tokio::test]
async fn restores_are_isolated_and_sized_per_engine() {
    // (kind, configured class, class used)
    let cases = [
        (DbInstance, None, "db.t4g.micro"),
        // Aurora has no micro class (the in-memory cloud refuses it, as AWS does).
        (DbCluster, None, "db.t4g.medium"),
        (DbInstance, Some("db.m7g.large"), "db.m7g.large"),
    ];
    for (kind, configured, used) in cases {
        let cloud = Cloud::new();
        let (copy, event) = copied(&cloud, kind, "snapferry-copy-a", "orders");
        let c = Config { instance_class: configured.map(str::to_string), ..config() };
        handler(&cloud, c).step(deliver::pipeline(&event, Some(TARGET)), deliver::record()).await.unwrap();
        let [r] = &cloud.restores()[..] else { panic!("{kind}: one restore") };
        assert_eq!(r.class.as_deref(), Some(used), "{kind}");
        assert_eq!(r.restored.id, naming::restore_id(&copy.id));
        assert_eq!(r.spec_tags.get(tags::RESTORE_TEST).map(String::as_str), Some("true"), "tagged as a test resource");
    }
}

#[tokio::test]
async fn every_failed_verification_is_reported_and_the_copy_kept() {
    // (case, what is wrong with the restore, the reason says)
    type Change = fn(&mut Restored);
    let cases: [(&str, Change, &str); 4] = [
        ("not encrypted", |r| r.encrypted = false, "not encrypted"),
        (
            "on another key",
            |r| r.kms_key_id = Some("arn:aws:kms:us-east-1:222222222222:key/other".into()),
            "not the backup account's key",
        ),
        ("another engine version", |r| r.engine_version = Some("9.6".into()), "but the snapshot is"),
        ("the restore failed", |r| r.status = Status::Failed("incompatible-restore".into()), "the restore failed"),
    ];
    for (name, change, why) in cases {
        let cloud = Cloud::new();
        let (copy, event) = copied(&cloud, DbInstance, "snapferry-copy-a", "orders");
        let events = run(&cloud, &handler(&cloud, config()), &event, change).await;
        let [PipelineEvent { step: Step::RestoreFailed { reason, .. }, .. }] = &events[..] else {
            panic!("{name}: {events:?}")
        };
        assert!(reason.contains(why), "{name}: {reason}");
        let kept = cloud.snapshots(TARGET, REGION).into_iter().find(|s| s.id == copy.id).expect("the copy is kept");
        assert!(!kept.tags.contains_key(tags::VERIFIED_AT), "{name}");
        // The copy records why, for the report once the event is gone (a tag value: RDS's
        // characters only).
        assert_eq!(kept.tags.get(tags::RESTORE_FAILURE), Some(&tags::sanitize_value(reason)), "{name}");
        assert!(cloud.restores().is_empty(), "{name}: the test restore is deleted");
    }
}

#[tokio::test]
async fn a_restore_that_takes_too_long_fails_on_the_clock() {
    let cloud = Cloud::new();
    let (_, event) = copied(&cloud, DbInstance, "snapferry-copy-a", "orders");
    let h = handler(&cloud, Config { timeout: Duration::minutes(30), ..config() });
    let body = start_test(&h, &event).await;
    cloud.advance(Duration::minutes(29));
    let again = h.step(deliver::body(&body), deliver::record()).await.unwrap();
    let Outcome::Later { body, .. } = again else { panic!("still within the limit: {again:?}") };
    cloud.advance(Duration::minutes(2));
    assert_eq!(h.step(deliver::body(&body), deliver::record()).await.unwrap(), Outcome::Done);
    let events = cloud.take_published();
    assert!(
        matches!(&events[..], [PipelineEvent { step: Step::RestoreFailed { reason, .. }, .. }] if reason.contains("30 minutes")),
        "{events:?}"
    );
    assert!(cloud.restores().is_empty());
}

#[tokio::test]
async fn which_copies_are_tested() {
    // Off, another region's copy, another account's, one already verified, one gone: no test.
    let cloud = Cloud::new();
    let (copy, event) = copied(&cloud, DbInstance, "snapferry-copy-a", "orders");
    let off = handler(&cloud, Config { enabled: false, ..config() });
    assert_eq!(off.step(deliver::pipeline(&event, Some(TARGET)), deliver::record()).await.unwrap(), Outcome::Done);
    let h = handler(&cloud, config());
    for (name, mut e) in [("another region", event.clone()), ("another account", event.clone())] {
        if name == "another region" {
            e.snapshot.region = "eu-west-1".into();
        } else {
            e.snapshot.account = SOURCE.into();
        }
        assert_eq!(
            h.step(deliver::pipeline(&e, Some(TARGET)), deliver::record()).await.unwrap(),
            Outcome::Done,
            "{name}"
        );
    }
    cloud.set_tag(&copy.arn, tags::VERIFIED_AT, "2026-11-24T12:00:00Z");
    assert_eq!(h.step(deliver::pipeline(&event, Some(TARGET)), deliver::record()).await.unwrap(), Outcome::Done);
    let mut gone = event.clone();
    gone.snapshot.id = "snapferry-copy-gone".into();
    assert_eq!(h.step(deliver::pipeline(&gone, Some(TARGET)), deliver::record()).await.unwrap(), Outcome::Done);
    assert!(cloud.restores().is_empty(), "none of these started a restore");

    // Every 2nd copy of each database, counted in creation order.
    let cloud = Cloud::new();
    let h = handler(&cloud, Config { every_nth: 2, ..config() });
    let mut tested = Vec::new();
    for (i, resource) in ["orders", "orders", "billing", "orders"].iter().enumerate() {
        cloud.advance(Duration::hours(1));
        let (_, event) = copied(&cloud, DbInstance, &format!("snapferry-copy-{i}"), resource);
        if let Outcome::Later { .. } = h.step(deliver::pipeline(&event, Some(TARGET)), deliver::record()).await.unwrap()
        {
            tested.push(i);
        }
    }
    // orders' copies 0, 1 and 3 are its 1st, 2nd and 3rd: the 1st and 3rd are tested;
    // billing's copy 2 is its 1st.
    assert_eq!(tested, vec![0, 2, 3]);

    // Another source's database of the same name is counted on its own: its 1st copy is tested.
    let (mut other, _) = copied(&cloud, DbInstance, "snapferry-copy-neighbour", "orders");
    cloud.advance(Duration::hours(1));
    other.tags.insert(tags::SOURCE_ACCOUNT.into(), "444444444444".into());
    other.tags.insert(tags::SOURCE_ARN.into(), "arn:aws:rds:us-east-1:444444444444:snapshot:snapferry-orders".into());
    other.created_at = Some(cloud.now());
    cloud.put_snapshot(other.clone());
    let event = PipelineEvent::new("run-n", other.to_ref(), other.to_ref(), Step::Copied { copied_from: None });
    let outcome = h.step(deliver::pipeline(&event, Some(TARGET)), deliver::record()).await.unwrap();
    assert!(matches!(outcome, Outcome::Later { .. }), "its own 1st copy: {outcome:?}");
    store_delete(&cloud, &other).await;

    // Retention keeps only orders' newest copy before each new one: the count goes on from
    // the last test (a position among the survivors would be the same for every new copy,
    // tested never).
    let store = cloud.stores(TARGET, REGION).store(DbInstance);
    let orders = || async {
        let mut copies: Vec<Snapshot> = store
            .list_managed()
            .await
            .unwrap()
            .into_iter()
            .filter(|s| s.tags.get(tags::ORIGIN_RESOURCE).is_some_and(|r| r == "orders"))
            .collect();
        copies.sort_by_key(|s| s.created_at);
        copies
    };
    let mut tested = Vec::new();
    for i in 4..10 {
        for old in orders().await.iter().rev().skip(1) {
            store.delete(old).await.unwrap();
        }
        cloud.advance(Duration::hours(1));
        let (_, event) = copied(&cloud, DbInstance, &format!("snapferry-copy-{i}"), "orders");
        if let Outcome::Later { .. } = h.step(deliver::pipeline(&event, Some(TARGET)), deliver::record()).await.unwrap()
        {
            tested.push(i);
        }
    }
    assert_eq!(tested, vec![5, 7, 9]);
}

#[tokio::test]
async fn the_same_copy_announced_twice_is_tested_by_the_invocation_that_started_its_restore_only() {
    let cloud = Cloud::new();
    let h = handler(&cloud, config());
    let (_, event) = copied(&cloud, DbInstance, "snapferry-copy-twice", "orders");
    // Two invocations at once: both found the copy untested; the second finds the restore
    // started and leaves it to the first, so one chain of re-checks follows it.
    let first = h.step(deliver::pipeline(&event, Some(TARGET)), deliver::record()).await.unwrap();
    assert!(matches!(first, Outcome::Later { .. }), "{first:?}");
    let second = h.step(deliver::pipeline(&event, Some(TARGET)), deliver::record()).await.unwrap();
    assert_eq!(second, Outcome::Done);
    assert_eq!(cloud.restores().len(), 1);
}

#[tokio::test]
async fn duplicate_rechecks_after_the_end_do_nothing() {
    let cloud = Cloud::new();
    let (_, event) = copied(&cloud, DbInstance, "snapferry-copy-a", "orders");
    let h = handler(&cloud, config());
    let body = start_test(&h, &event).await;
    cloud.complete_all();
    h.step(deliver::body(&body), deliver::record()).await.unwrap();
    assert_eq!(cloud.take_published().len(), 1);
    // The same re-check delivered again: the restore is gone and the copy verified.
    assert_eq!(h.step(deliver::body(&body), deliver::record()).await.unwrap(), Outcome::Done);
    assert!(cloud.take_published().is_empty(), "no second verdict");
    // The "copied" event again: already verified, no second test.
    assert_eq!(h.step(deliver::pipeline(&event, Some(TARGET)), deliver::record()).await.unwrap(), Outcome::Done);
    assert!(cloud.restores().is_empty());
}

#[tokio::test]
async fn a_failed_test_is_reported_once_however_often_its_re_check_comes() {
    let cloud = Cloud::new();
    let (copy, event) = copied(&cloud, DbInstance, "snapferry-copy-a", "orders");
    let h = handler(&cloud, config());
    let body = start_test(&h, &event).await;
    cloud.complete_all();
    cloud.set_restore(&naming::restore_id(&event.snapshot.id), |r| {
        r.status = Status::Failed("incompatible-restore".into())
    });
    assert_eq!(h.step(deliver::body(&body), deliver::record()).await.unwrap(), Outcome::Done);
    let [PipelineEvent { step: Step::RestoreFailed { reason, .. }, .. }] = &cloud.take_published()[..] else {
        panic!("one verdict")
    };
    assert!(reason.contains("the restore failed"), "{reason}");
    let kept = cloud.snapshots(TARGET, REGION).into_iter().find(|s| s.id == copy.id).unwrap();
    assert!(kept.tags.contains_key(tags::RESTORE_FAILED_AT));
    // The same re-check again (SQS delivered it twice): the restore is gone, the failure
    // was reported; not "the restored resource disappeared" on top.
    assert_eq!(h.step(deliver::body(&body), deliver::record()).await.unwrap(), Outcome::Done);
    assert!(cloud.take_published().is_empty(), "no second verdict");
    // A restore that disappears with no failure reported still fails the test.
    let cloud = Cloud::new();
    let (_, event) = copied(&cloud, DbInstance, "snapferry-copy-b", "billing");
    let h = handler(&cloud, config());
    let body = start_test(&h, &event).await;
    cloud.complete_all();
    let restores = cloud.restores();
    assert_eq!(restores.len(), 1);
    cloud
        .stores(TARGET, REGION)
        .store(DbInstance)
        .delete_restore(&naming::restore_id(&event.snapshot.id))
        .await
        .unwrap();
    assert_eq!(h.step(deliver::body(&body), deliver::record()).await.unwrap(), Outcome::Done);
    let [PipelineEvent { step: Step::RestoreFailed { reason, .. }, .. }] = &cloud.take_published()[..] else {
        panic!("reported")
    };
    assert!(reason.contains("disappeared"), "{reason}");
}

#[tokio::test]
async fn aws_errors_end_as_their_class_says() {
    // (operation, AWS code, class: None is permanent)
    let cases = [
        ("restore", "Throttling", Some(Retry::Throttled)),
        ("restore", "InsufficientDBInstanceCapacity", None),
        ("describe", "InternalFailure", Some(Retry::Transient)),
    ];
    for (op, code, class) in cases {
        let cloud = Cloud::new();
        let (_, event) = copied(&cloud, DbInstance, "snapferry-copy-a", "orders");
        cloud.fail(op, code, 1);
        let err = handler(&cloud, config())
            .step(deliver::pipeline(&event, Some(TARGET)), deliver::record())
            .await
            .unwrap_err();
        assert_eq!((err.retry(), err.code()), (class, code), "{op}: {err}");
    }
}

#[test]
fn config_comes_from_the_declared_environment() {
    let env =
        Env::from_pairs(STEP, [("QUEUE_URL", "q"), ("DLQ_URL", "d"), ("TARGET_KMS_KEY_ARN", TARGET_KEY)]).unwrap();
    let c = Config::from_env(&env).unwrap();
    assert_eq!((c.enabled, c.every_nth, c.timeout), (true, 1, Duration::minutes(120)));
    assert!(env.unread().is_empty(), "every declared variable is read: {:?}", env.unread());
}

#[tokio::test]
async fn a_batch_ends_each_record_where_its_outcome_says() {
    use snapferry::sqs::BatchHandler;
    let cloud = Cloud::new();
    let (_, good) = copied(&cloud, DbInstance, "snapferry-copy-a", "orders");
    let (_, denied) = copied(&cloud, DbInstance, "snapferry-copy-b", "orders");
    let (_, throttled) = copied(&cloud, DbInstance, "snapferry-copy-c", "orders");
    let body = |e: &PipelineEvent| {
        let mut envelope = snapferry::events::EventEnvelope::new(snapferry::events::SOURCE, e.detail_type(), e.clone());
        envelope.account = Some(TARGET.into());
        serde_json::to_string(&envelope).unwrap()
    };
    let (good, denied, throttled) = (body(&good), body(&denied), body(&throttled));
    let h = handler(&cloud, config());
    // A good record and a malformed one; then one AWS refuses; then one AWS throttles.
    let response = {
        let first = h.handle(deliver::batch(&[&good, "{not json"])).await;
        cloud.fail("restore", "AccessDenied", 1);
        let second = h.handle(deliver::batch(&[&denied])).await;
        cloud.fail("restore", "Throttling", 1);
        let third = h.handle(deliver::batch(&[&throttled])).await;
        (first, second, third)
    };
    assert!(response.0.batch_item_failures.is_empty(), "done and dead-lettered records are not failures");
    assert!(response.1.batch_item_failures.is_empty(), "a permanent failure is dead-lettered, not retried");
    // Throttled: re-sent after the backoff with its wait's start, never failed, so SQS's
    // receive count (and the DLQ behind it) never sees it.
    assert!(response.2.batch_item_failures.is_empty(), "a throttled record is not failed");
    assert!(cloud.take_retried().is_empty());
    let dead = cloud.take_dead_letters();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(dead[0].0 == "{not json" && dead[0].1.contains("not JSON"), "{dead:?}");
    assert!(dead[1].0 == denied && dead[1].1.contains("AccessDenied"), "{dead:?}");
    let sent = cloud.take_sent();
    assert_eq!(sent.len(), 2, "the good restore's re-check and the throttled one again: {sent:?}");
    assert_eq!((sent[0].attempt, sent[0].delay), (1, std::time::Duration::from_secs(30)));
    assert_eq!((&sent[1].body, sent[1].attempt, sent[1].delay), (&throttled, 1, std::time::Duration::from_secs(10)));
    assert!(sent[1].waiting_since.is_some());
}

#[tokio::test]
async fn a_permanent_failure_after_the_restore_started_leaves_nothing_running() {
    // Aurora refuses a micro class after restoring the cluster: the cluster must not stay.
    let cloud = Cloud::new();
    let (_, event) = copied(&cloud, DbCluster, "snapferry-copy-a", "ledger");
    let micro = Config { instance_class: Some("db.t4g.micro".into()), ..config() };
    let err =
        handler(&cloud, micro).step(deliver::pipeline(&event, Some(TARGET)), deliver::record()).await.unwrap_err();
    assert_eq!((err.retry(), err.code()), (None, "InvalidParameterCombination"), "to the DLQ with its reason");
    assert!(cloud.restores().is_empty(), "the restored cluster is deleted");
    let events = cloud.take_published();
    assert!(
        matches!(&events[..], [PipelineEvent { step: Step::RestoreFailed { reason, .. }, .. }] if reason.contains("db.t4g.micro")),
        "{events:?}"
    );

    // A permanent error while the test is under way (here: the role may not describe it).
    let cloud = Cloud::new();
    let (_, event) = copied(&cloud, DbInstance, "snapferry-copy-a", "orders");
    let h = handler(&cloud, config());
    let body = start_test(&h, &event).await;
    cloud.fail("restore_status", "AccessDenied", 1);
    let err = h.step(deliver::body(&body), deliver::record()).await.unwrap_err();
    assert_eq!(err.code(), "AccessDenied");
    assert!(cloud.restores().is_empty(), "the test instance is deleted");
    assert!(matches!(&cloud.take_published()[..], [PipelineEvent { step: Step::RestoreFailed { .. }, .. }]));
}

#[tokio::test]
async fn a_verdict_is_never_lost_between_recording_and_publishing_it() {
    let cloud = Cloud::new();
    let (copy, event) = copied(&cloud, DbInstance, "snapferry-copy-a", "orders");
    let h = handler(&cloud, config());
    let body = start_test(&h, &event).await;
    cloud.complete_all();
    cloud.fail("publish", "InternalFailure", 1);
    let err = h.step(deliver::body(&body), deliver::record()).await.unwrap_err();
    assert_eq!(err.retry(), Some(Retry::Transient), "retried: {err}");
    // SQS delivers the same re-check again.
    assert_eq!(h.step(deliver::body(&body), deliver::record()).await.unwrap(), Outcome::Done);
    let events = cloud.take_published();
    assert!(matches!(&events[..], [PipelineEvent { step: Step::RestoreVerified { .. }, .. }]), "{events:?}");
    let tagged = cloud.snapshots(TARGET, REGION).into_iter().find(|s| s.id == copy.id).unwrap();
    assert!(tagged.tags.contains_key(tags::VERIFIED_AT));
    assert!(cloud.restores().is_empty());
}

#[tokio::test]
async fn the_sweep_deletes_only_test_restores_older_than_the_timeout() {
    let cloud = Cloud::new();
    let h = handler(&cloud, config());
    // A test restore whose re-check chain was lost, one under way, and what is not ours.
    let (_, lost) = copied(&cloud, DbCluster, "snapferry-copy-a", "ledger");
    start_test(&h, &lost).await;
    cloud.advance(Duration::minutes(100));
    let (_, running) = copied(&cloud, DbInstance, "snapferry-copy-b", "orders");
    start_test(&h, &running).await;
    let test_tag = [(tags::RESTORE_TEST, "true")];
    cloud.add_resource(DbInstance, TARGET, REGION, "production", None, &test_tag);
    cloud.add_resource(DbInstance, TARGET, REGION, "snapferry-restore-undated", None, &test_tag);
    cloud.advance(Duration::minutes(30));
    let _ = cloud.take_published();

    assert_eq!(h.step(deliver::schedule(cloud.now()), deliver::record()).await.unwrap(), Outcome::Done);
    let left: Vec<String> = cloud.restores().into_iter().map(|r| r.restored.id).collect();
    assert_eq!(left, vec![naming::restore_id(&running.snapshot.id)], "130 minutes old is past the 120-minute timeout");
    let deletions: Vec<String> = cloud.calls().into_iter().filter(|c| c.starts_with("delete_restore")).collect();
    assert_eq!(deletions, ["delete_restore db-cluster 222222222222 us-east-1"], "nothing else was touched");
    assert!(cloud.take_published().is_empty(), "the lost chain's verdict is the re-check's to give");

    // A failed deletion is retried; the others are still deleted.
    let (_, another) = copied(&cloud, DbInstance, "snapferry-copy-c", "orders");
    start_test(&h, &another).await;
    cloud.advance(Duration::minutes(121));
    cloud.fail("delete_restore", "Throttling", 1);
    let err = h.step(deliver::schedule(cloud.now()), deliver::record()).await.unwrap_err();
    assert_eq!(err.retry(), Some(Retry::Throttled));
    assert_eq!(cloud.restores().len(), 1, "one of the two old ones went");
    h.step(deliver::schedule(cloud.now()), deliver::record()).await.unwrap();
    assert!(cloud.restores().is_empty());
}

#[tokio::test]
async fn a_test_volume_of_another_size_than_the_snapshot_fails_the_test() {
    let cloud = Cloud::new();
    let (copy, event) = copied(&cloud, ResourceKind::Ebs, "snap-0c1", "vol-1");
    cloud.put_snapshot(Snapshot { size_gib: Some(8), ..copy });
    let events = run(&cloud, &handler(&cloud, config()), &event, |r| r.size_gib = Some(4)).await;
    let [PipelineEvent { step: Step::RestoreFailed { reason, .. }, .. }] = &events[..] else { panic!("{events:?}") };
    assert!(reason.contains("4") && reason.contains("8") && reason.contains("GiB"), "{reason}");
    assert!(cloud.restores().is_empty(), "the test volume is deleted");
}
