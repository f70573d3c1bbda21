//! Every decision expire-snapshots and expire-copies make, on the in-memory cloud with a
//! controllable clock: what the rules keep over months of history, what is never deleted
//! whatever the rules say, dry runs, budgets, the source's release of what fed a copy, and
//! the quota warning.

use chrono::{DateTime, Duration, TimeZone, Utc};
use snapferry::ResourceKind::{self, DbInstance, Ebs};
use snapferry::events::{PipelineEvent, RecheckWhat, Step};
use snapferry::inbound::Incoming;
use snapferry::memory::{Cloud, deliver, step_env};
use snapferry::retention;
use snapferry::sqs::Outcome;
use snapferry::step::PipelineStep;
use snapferry::store::{RestoreSpec, Snapshot, Status};
use snapferry::tags::{self, Tags};
use snapferry_expire_snapshots::{BACKUP_STEP, Config, Handler, SOURCE_STEP};

const SOURCE: &str = "111111111111";
const TARGET: &str = "222222222222";
const STRANGER: &str = "333333333333";
const REGION: &str = "us-east-1";
const EXTRA: &str = "eu-west-1";

fn config(name: &'static str, rules: &str) -> Config {
    Config {
        step: step_env(),
        name,
        kinds: vec![DbInstance, Ebs],
        extra_regions: if name == BACKUP_STEP { vec![EXTRA.into()] } else { vec![] },
        rules: retention::parse(rules).unwrap(),
        allow_delete_all: false,
        dry_run: false,
        max_deletes: 1000,
        quota_warning_percent: 80,
        target_accounts: vec![TARGET.into()],
    }
}

fn handler(cloud: &Cloud, config: Config) -> Handler {
    let account = if config.name == BACKUP_STEP { TARGET } else { SOURCE };
    Handler::new(cloud.context(account, REGION, config.step.clone()), config)
}

fn day(m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, m, d, 12, 0, 0).unwrap()
}

/// A snapshot of `resource` made by `step` (`create` in the source, `copy` in the backup
/// account) at `at`, tagged as snapferry's.
fn ours(cloud: &Cloud, step: &str, kind: ResourceKind, region: &str, resource: &str, at: DateTime<Utc>) -> Snapshot {
    let account = if step == "copy" { TARGET } else { SOURCE };
    let name = format!("snapferry-{resource}-{}", at.format("%Y%m%d%H%M"));
    let mut t: Tags = tags::LineageTags {
        source_arn: format!("arn:aws:rds:{REGION}:{SOURCE}:db:{resource}"),
        source_account: SOURCE.into(),
        correlation_id: format!("run-{name}"),
        step: step.into(),
    }
    .tags();
    t.insert(tags::ORIGIN_RESOURCE.into(), resource.into());
    let s = Snapshot { created_at: Some(at), tags: t, ..cloud.snapshot(kind, account, region, &name, resource) };
    cloud.put_snapshot(s.clone());
    s
}

fn names(cloud: &Cloud, account: &str, region: &str) -> Vec<String> {
    let mut n: Vec<String> = cloud.snapshots(account, region).into_iter().map(|s| s.name).collect();
    n.sort();
    n
}

async fn schedule(h: &Handler) -> Outcome {
    h.step(deliver::schedule(Utc::now()), deliver::record()).await.unwrap()
}

fn expired(events: &[PipelineEvent]) -> Vec<(String, bool)> {
    events
        .iter()
        .filter_map(|e| match &e.step {
            Step::Expired { dry_run, .. } => Some((e.snapshot.id.clone(), *dry_run)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn four_months_of_daily_copies_keep_exactly_what_the_rules_keep() {
    let cloud = Cloud::new();
    // Daily copies from July 1 to October 31 2026, at noon; it is now November 1.
    let mut at = day(7, 1);
    while at <= day(10, 31) {
        ours(&cloud, "copy", DbInstance, REGION, "orders", at);
        at += Duration::days(1);
    }
    cloud.set_now(Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap());
    let h = handler(&cloud, config(BACKUP_STEP, r#"[{"keep_last": 3, "weekly": 2, "monthly": 2}]"#));
    assert_eq!(schedule(&h).await, Outcome::Done);
    // keep_last 3: Oct 29-31; weekly 2: Oct 31 (Saturday) and Sunday Oct 25; monthly 2: Oct 31, Sep 30.
    let kept = names(&cloud, TARGET, REGION);
    let want: Vec<String> = ["20260930", "20261025", "20261029", "20261030", "20261031"]
        .iter()
        .map(|d| format!("snapferry-orders-{d}1200"))
        .collect();
    assert_eq!(kept, want);
    let events = cloud.take_published();
    assert_eq!(expired(&events).len(), 123 - 5, "one event per deletion");
    assert!(expired(&events).iter().all(|(_, dry)| !dry));
    let Step::Expired { rule, .. } = &events[0].step else { unreachable!() };
    assert!(rule.contains("keep_last 3, weekly 2, monthly 2"), "{rule}");
}

#[tokio::test]
async fn rules_per_region_and_resource() {
    let cloud = Cloud::new();
    for d in 1..=10 {
        for region in [REGION, EXTRA] {
            ours(&cloud, "copy", DbInstance, region, "orders", day(10, d));
            ours(&cloud, "copy", DbInstance, region, "scratch", day(10, d));
        }
    }
    cloud.set_now(day(10, 11));
    let rules =
        r#"[{"regions": ["eu-west-1"], "keep_last": 1}, {"resources": "^orders$", "keep_last": 5}, {"keep_last": 2}]"#;
    schedule(&handler(&cloud, config(BACKUP_STEP, rules))).await;
    let count = |region: &str, resource: &str| {
        cloud.snapshots(TARGET, region).iter().filter(|s| s.resource_id == resource).count()
    };
    assert_eq!((count(REGION, "orders"), count(REGION, "scratch")), (5, 2));
    assert_eq!((count(EXTRA, "orders"), count(EXTRA, "scratch")), (1, 1), "the extra region's own rule");
}

#[tokio::test]
async fn what_is_never_deleted_whatever_the_rules_say() {
    let cloud = Cloud::new();
    // keep_last 1 keeps only the newest copy (Oct 10); every other one is a candidate.
    let copies: Vec<Snapshot> = (1..=10).map(|d| ours(&cloud, "copy", Ebs, REGION, "vol-1", day(10, d))).collect();
    let verified = &copies[3];
    cloud.set_tag(&verified.arn, tags::VERIFIED_AT, "2026-10-05T00:00:00Z");
    let older_verified = &copies[1];
    cloud.set_tag(&older_verified.arn, tags::VERIFIED_AT, "2026-10-03T00:00:00Z");
    cloud.set_status(&copies[2].arn, Status::Creating);
    cloud.lock_snapshot(&copies[4].id);
    // A test restore of copies[5] is under way.
    let store = cloud.stores(TARGET, REGION).store(Ebs);
    cloud.set_instant(false);
    let spec = RestoreSpec {
        restore_id: "snapferry-restore-x".into(),
        tags: Tags::from([
            (tags::RESTORE_TEST.to_string(), "true".to_string()),
            (tags::SOURCE_ARN.to_string(), tags::sanitize_value(&copies[5].arn)),
        ]),
        ..Default::default()
    };
    store.restore(&copies[5], &spec).await.unwrap();
    // copies[6] is being copied to the extra region under the same name.
    cloud.put_snapshot(Snapshot {
        region: EXTRA.into(),
        arn: copies[6].arn.replace(REGION, EXTRA),
        status: Status::Creating,
        ..copies[6].clone()
    });
    // Not ours: another tool's snapshot, and one tagged managed but made by no step of ours.
    let foreign = cloud.snapshot(Ebs, TARGET, REGION, "dlm-vol-1", "vol-1");
    cloud.put_snapshot(Snapshot { created_at: Some(day(9, 1)), ..foreign });
    let mut odd = ours(&cloud, "copy", Ebs, REGION, "vol-1", day(9, 2));
    odd.tags.insert(tags::STEP.into(), "other".into());
    cloud.put_snapshot(odd);
    cloud.set_now(day(11, 1));

    schedule(&handler(&cloud, config(BACKUP_STEP, r#"[{"keep_last": 1}]"#))).await;
    let left = names(&cloud, TARGET, REGION);
    for (s, why) in [
        (&copies[9], "kept by the rule"),
        (verified, "the newest verified copy"),
        (&copies[2], "in progress"),
        (&copies[4], "locked"),
        (&copies[5], "being restore-tested"),
        (&copies[6], "being copied to another region"),
    ] {
        assert!(left.contains(&s.name), "{why}: {} was deleted; left {left:?}", s.name);
    }
    assert!(left.contains(&"dlm-vol-1".to_string()) && left.iter().any(|n| n.ends_with("202609021200")), "{left:?}");
    for gone in [&copies[0], older_verified, &copies[3 + 4], &copies[8]] {
        assert!(!left.contains(&gone.name), "{} should be gone: {left:?}", gone.name);
    }
}

#[tokio::test]
async fn a_rule_that_would_keep_nothing_deletes_nothing_unless_allowed() {
    for allow in [false, true] {
        let cloud = Cloud::new();
        for d in 1..=3 {
            ours(&cloud, "copy", DbInstance, REGION, "orders", day(8, d));
        }
        cloud.set_now(day(11, 1));
        let c = Config { allow_delete_all: allow, ..config(BACKUP_STEP, r#"[{"max_age_days": 30}]"#) };
        schedule(&handler(&cloud, c)).await;
        assert_eq!(cloud.snapshots(TARGET, REGION).len(), if allow { 0 } else { 3 }, "allow_delete_all {allow}");
    }
}

#[tokio::test]
async fn a_dry_run_deletes_nothing_and_says_what_it_would() {
    let cloud = Cloud::new();
    for d in 1..=5 {
        ours(&cloud, "copy", DbInstance, REGION, "orders", day(10, d));
    }
    cloud.set_now(day(11, 1));
    let c = Config { dry_run: true, ..config(BACKUP_STEP, r#"[{"keep_last": 2}]"#) };
    schedule(&handler(&cloud, c)).await;
    assert_eq!(cloud.snapshots(TARGET, REGION).len(), 5);
    let events = expired(&cloud.take_published());
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|(_, dry)| *dry), "{events:?}");
    assert!(!cloud.calls().iter().any(|c| c == "delete"), "{:?}", cloud.calls());
}

#[tokio::test]
async fn thousands_of_snapshots_go_in_budgeted_runs_that_hand_over_to_a_follow_up() {
    let cloud = Cloud::new();
    for h in 0..250 {
        ours(&cloud, "copy", DbInstance, REGION, "orders", day(9, 1) + Duration::hours(h));
    }
    cloud.set_now(day(11, 1));
    let h = handler(&cloud, Config { max_deletes: 100, ..config(BACKUP_STEP, r#"[{"keep_last": 10}]"#) });
    let mut runs = 0;
    let mut next = deliver::schedule(Utc::now());
    loop {
        runs += 1;
        h.step(next, deliver::record()).await.unwrap();
        let sent = cloud.take_sent();
        let Some(follow_up) = sent.first() else { break };
        let Incoming::Recheck(r) = deliver::body(&follow_up.body) else { panic!("{}", follow_up.body) };
        assert!(matches!(r.detail.what, RecheckWhat::ExpireFrom { .. }), "{:?}", r.detail.what);
        next = deliver::body(&follow_up.body);
        assert!(runs < 10, "never finishes");
    }
    assert_eq!(runs, 3, "100 + 100 + 40 deletions");
    assert_eq!(cloud.snapshots(TARGET, REGION).len(), 10);
    assert_eq!(expired(&cloud.take_published()).len(), 240);
}

#[tokio::test]
async fn the_source_keeps_what_still_feeds_the_backup_account() {
    let cloud = Cloud::new();
    let creates: Vec<Snapshot> =
        (1..=5).map(|d| ours(&cloud, "create", DbInstance, REGION, "db", day(10, d))).collect();
    let store = cloud.stores(SOURCE, REGION).store(DbInstance);
    // The oldest is still shared as it is; the second still feeds a share copy in progress.
    store.share(&creates[0], &[TARGET.to_string()]).await.unwrap();
    let mut feeding = ours(&cloud, "share", DbInstance, REGION, "db-shared", day(10, 2));
    feeding.tags.extend(tags::origin_tags(&creates[1].to_ref()));
    feeding.tags.insert(tags::SOURCE_ARN.into(), creates[1].arn.clone());
    feeding.status = Status::Creating;
    cloud.put_snapshot(feeding.clone());
    cloud.set_now(day(11, 1));
    schedule(&handler(&cloud, config(SOURCE_STEP, r#"[{"keep_last": 1}]"#))).await;
    let left = names(&cloud, SOURCE, REGION);
    assert!(left.contains(&creates[0].name), "still shared: {left:?}");
    assert!(left.contains(&creates[1].name), "feeding a copy in progress: {left:?}");
    assert!(!left.contains(&creates[2].name) && !left.contains(&creates[3].name), "{left:?}");
    assert!(left.contains(&creates[4].name), "the newest");
    assert!(left.contains(&feeding.name), "share copies are not the rules' to delete");
}

/// A scheduled snapshot, its re-encrypting copy shared with the backup account, and the
/// backup account's copy of that one.
async fn shared_with_the_backup_account(cloud: &Cloud) -> (Snapshot, Snapshot, Snapshot) {
    let origin = ours(cloud, "create", DbInstance, REGION, "db", day(10, 1));
    let mut shared = ours(cloud, "share", DbInstance, REGION, "db", day(10, 1) + Duration::minutes(5));
    shared.name = format!("snapferry-shared-{}", shared.name);
    shared.tags.extend(tags::origin_tags(&origin.to_ref()));
    shared.tags.insert(tags::SOURCE_ARN.into(), origin.arn.clone());
    cloud.put_snapshot(shared.clone());
    cloud.stores(SOURCE, REGION).store(DbInstance).share(&shared, &[TARGET.to_string()]).await.unwrap();
    let copy = cloud.snapshot(DbInstance, TARGET, REGION, "snapferry-copy-db", "db");
    (origin, shared, copy)
}

#[tokio::test]
async fn a_copy_reported_back_withdraws_the_share_and_the_intermediate_copy_goes_after_a_grace() {
    // (case, sender, released)
    for (case, sender, released) in
        [("the backup account", TARGET, true), ("a stranger", STRANGER, false), ("no sender", "", false)]
    {
        let cloud = Cloud::new();
        let (origin, shared, copy) = shared_with_the_backup_account(&cloud).await;
        let store = cloud.stores(SOURCE, REGION).store(DbInstance);
        let copied = Step::Copied { copied_from: Some(shared.arn.clone()) };
        let event = PipelineEvent::new("run-1", copy.to_ref(), origin.to_ref(), copied);
        let sender = Some(sender).filter(|s| !s.is_empty());
        cloud.set_now(day(10, 1) + Duration::hours(1));
        let h = handler(&cloud, config(SOURCE_STEP, r#"[{"keep_last": 7}]"#));
        assert_eq!(h.step(deliver::pipeline(&event, sender), deliver::record()).await.unwrap(), Outcome::Done);
        let after = store.describe(&shared.id).await.unwrap().expect("kept until the grace has passed");
        assert_eq!(store.shared_with(&after).await.unwrap().is_empty(), released, "{case}: the share");
        assert_eq!(after.tags.contains_key(tags::RELEASED_AT), released, "{case}: marked released");
        // The schedule deletes it once no re-check of the share step can still be on its way.
        for (later, gone) in [(Duration::minutes(30), false), (Duration::minutes(61), released)] {
            cloud.set_now(day(10, 1) + Duration::hours(1) + later);
            h.step(deliver::schedule(cloud.now()), deliver::record()).await.unwrap();
            let left = names(&cloud, SOURCE, REGION);
            assert_eq!(!left.contains(&shared.name), gone, "{case} {later}: {left:?}");
            assert!(left.contains(&origin.name), "{case}: the original stays, for the rules");
        }
        let events = expired(&cloud.take_published());
        assert_eq!(events.len(), usize::from(released), "{case}: {events:?}");
    }
}

#[tokio::test]
async fn the_copy_of_a_snapshot_taken_by_hand_stays_while_reconcile_looks_for_it() {
    let cloud = Cloud::new();
    let by_hand = Snapshot {
        created_at: Some(day(10, 1)),
        ..cloud.snapshot(DbInstance, SOURCE, REGION, "before-migration", "db")
    };
    cloud.put_snapshot(by_hand.clone());
    let mut shared = ours(&cloud, "share", DbInstance, REGION, "db", day(10, 1) + Duration::minutes(5));
    shared.tags.extend(tags::origin_tags(&by_hand.to_ref()));
    shared.tags.insert(tags::SOURCE_ARN.into(), by_hand.arn.clone());
    cloud.put_snapshot(shared.clone());
    let store = cloud.stores(SOURCE, REGION).store(DbInstance);
    store.share(&shared, &[TARGET.to_string()]).await.unwrap();
    let copy = cloud.snapshot(DbInstance, TARGET, REGION, "snapferry-copy-db", "db");
    let event = PipelineEvent::new(
        "run-1",
        copy.to_ref(),
        by_hand.to_ref(),
        Step::Copied { copied_from: Some(shared.arn.clone()) },
    );
    cloud.set_now(day(10, 1) + Duration::hours(1));
    let h = handler(&cloud, config(SOURCE_STEP, r#"[{"keep_last": 7}]"#));
    h.step(deliver::pipeline(&event, Some(TARGET)), deliver::record()).await.unwrap();
    // Released; kept past the release grace while reconcile may look for the snapshot it
    // backed up (made at 00:05: six hours old at 06:05), then deleted.
    for (at, gone) in
        [(Duration::hours(2) + Duration::minutes(1), false), (Duration::hours(6) + Duration::minutes(6), true)]
    {
        cloud.set_now(day(10, 1) + at);
        h.step(deliver::schedule(cloud.now()), deliver::record()).await.unwrap();
        let left = names(&cloud, SOURCE, REGION);
        assert_eq!(!left.contains(&shared.name), gone, "{at}: {left:?}");
        assert!(left.contains(&by_hand.name), "not snapferry's to delete");
    }
}

#[tokio::test]
async fn only_the_snapshot_the_backup_account_copied_is_released() {
    // What "Snapshot Copied" names, and whether the source's shared snapshot is released.
    // The event's origin always names that snapshot's origin: it is not what decides.
    type Named = fn(&Snapshot, &Snapshot) -> Option<String>;
    let cases: [(&str, Named, bool); 5] = [
        ("the shared snapshot", |shared, _| Some(shared.arn.clone()), true),
        ("nothing (an extra region's copy, or an old event)", |_, _| None, false),
        ("another snapshot of ours, not shared", |_, origin| Some(origin.arn.clone()), false),
        ("a snapshot in another account", |shared, _| Some(shared.arn.replace(SOURCE, STRANGER)), false),
        ("a snapshot that is not there", |shared, _| Some(format!("{}-gone", shared.arn)), false),
    ];
    for (case, copied_from, released) in cases {
        let cloud = Cloud::new();
        let (origin, shared, copy) = shared_with_the_backup_account(&cloud).await;
        let store = cloud.stores(SOURCE, REGION).store(DbInstance);
        let step = Step::Copied { copied_from: copied_from(&shared, &origin) };
        let event = PipelineEvent::new("run-1", copy.to_ref(), origin.to_ref(), step);
        let h = handler(&cloud, config(SOURCE_STEP, r#"[{"keep_last": 7}]"#));
        assert_eq!(h.step(deliver::pipeline(&event, Some(TARGET)), deliver::record()).await.unwrap(), Outcome::Done);
        let after = store.describe(&shared.id).await.unwrap().unwrap();
        assert_eq!(store.shared_with(&after).await.unwrap().is_empty(), released, "{case}: the share");
        assert_eq!(after.tags.contains_key(tags::RELEASED_AT), released, "{case}: marked released");
        // The scheduled snapshot the released copy was made from is backed up with it.
        let origin_after = store.describe(&origin.id).await.unwrap().unwrap();
        assert_eq!(origin_after.tags.contains_key(tags::RELEASED_AT), released, "{case}: the origin marked");
    }
}

#[tokio::test]
async fn one_snapshot_that_cannot_be_deleted_does_not_stop_the_others() {
    let cloud = Cloud::new();
    let made: Vec<Snapshot> = ["a", "b"]
        .iter()
        .flat_map(|r| (1..=3).map(|d| ours(&cloud, "copy", DbInstance, REGION, r, day(10, d))).collect::<Vec<_>>())
        .collect();
    cloud.set_now(day(11, 1));
    // AWS refuses the first deletion (the oldest of `a`) for as long as the test runs.
    cloud.fail("delete", "InvalidDBSnapshotState", 1);
    let h = handler(&cloud, config(BACKUP_STEP, r#"[{"keep_last": 1}]"#));
    let err = h.step(deliver::schedule(cloud.now()), deliver::record()).await.unwrap_err();
    assert_eq!(err.code(), "InvalidDBSnapshotState", "tried again, then dead-lettered with the reason: {err}");
    let left = names(&cloud, TARGET, REGION);
    assert_eq!(left, [made[0].name.clone(), made[2].name.clone(), made[5].name.clone()], "the rest are expired");
    let events = cloud.take_published();
    let rejected: Vec<_> = events.iter().filter(|e| matches!(e.step, Step::Rejected { .. })).collect();
    let [r] = &rejected[..] else { panic!("one report: {events:?}") };
    assert_eq!(r.snapshot.id, made[0].id);
    assert_eq!(cloud.take_metrics().iter().filter(|m| m.starts_with("ResourceFailed")).count(), 1);
    // SQS brings the run again: the one left is expired too.
    h.step(deliver::schedule(cloud.now()), deliver::record()).await.unwrap();
    assert_eq!(names(&cloud, TARGET, REGION), [made[2].name.clone(), made[5].name.clone()]);
}

#[tokio::test]
async fn copies_are_kept_by_the_day_their_data_was_taken_not_the_day_they_were_copied() {
    let cloud = Cloud::new();
    // A backlog: five daily snapshots, all copied on the 6th.
    let copies: Vec<Snapshot> = (1..=5)
        .map(|d| {
            let mut c = ours(&cloud, "copy", DbInstance, REGION, "db", day(10, 6) + Duration::minutes(i64::from(d)));
            c.tags.insert(tags::SNAPSHOT_TAKEN_AT.into(), tags::timestamp_value(day(10, d)));
            cloud.put_snapshot(c.clone());
            c
        })
        .collect();
    cloud.set_now(day(10, 7));
    schedule(&handler(&cloud, config(BACKUP_STEP, r#"[{"daily": 7}]"#))).await;
    let left = names(&cloud, TARGET, REGION);
    assert_eq!(left.len(), 5, "five days of data, five daily points: {left:?}");
    assert!(copies.iter().all(|c| left.contains(&c.name)));
}

#[tokio::test]
async fn a_nearly_full_quota_is_warned_about() {
    for (held, warned) in [(7, false), (8, true)] {
        let cloud = Cloud::new();
        cloud.set_manual_quota(10);
        for d in 1..=held {
            ours(&cloud, "create", DbInstance, REGION, "db", day(10, d));
        }
        cloud.set_now(day(10, 28));
        schedule(&handler(&cloud, config(SOURCE_STEP, r#"[{"keep_last": 100}]"#))).await;
        let warnings: Vec<_> =
            cloud.take_published().into_iter().filter(|e| matches!(e.step, Step::QuotaWarning { .. })).collect();
        assert_eq!(warnings.len(), usize::from(warned), "{held} of 10: {warnings:?}");
        let metrics = cloud.take_metrics();
        assert_eq!(metrics.iter().filter(|m| m.starts_with("SnapshotQuotaWarning")).count(), usize::from(warned));
        if let [w] = &warnings[..] {
            assert_eq!(w.step, Step::QuotaWarning { quota: "ManualSnapshots".into(), used: 8, max: 10 });
        }
    }
}

#[test]
fn config_from_the_declared_environment() {
    use snapferry::config::Env;
    let base = [("QUEUE_URL", "q"), ("DLQ_URL", "d"), ("TARGET_ACCOUNTS", TARGET)];
    let env = Env::from_pairs(SOURCE_STEP, base).unwrap();
    let c = Config::from_env(&env).unwrap();
    assert_eq!(c.rules.len(), 1);
    assert_eq!(c.rules[0].keep_last, Some(2), "the source's default keeps the newest two");
    assert!(env.unread().is_empty(), "every declared variable is read: {:?}", env.unread());
    let env = Env::from_pairs(BACKUP_STEP, [("QUEUE_URL", "q"), ("DLQ_URL", "d")]).unwrap();
    let c = Config::from_env(&env).unwrap();
    assert_eq!(c.rules[0].criteria(), ["keep_last 7", "daily 7", "weekly 4", "monthly 12"]);
    assert!(env.unread().is_empty(), "every declared variable is read: {:?}", env.unread());
    let bad = Env::from_pairs(BACKUP_STEP, [("QUEUE_URL", "q"), ("DLQ_URL", "d"), ("RETENTION", "[{}]")]).unwrap();
    let e = Config::from_env(&bad).unwrap_err().to_string();
    assert!(e.contains("RETENTION") && e.contains("keeps nothing"), "{e}");
}
