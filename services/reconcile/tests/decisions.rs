//! Every decision reconcile-snapshots and reconcile-copies make, on the in-memory cloud:
//! which stalled chains are restarted where, which are not (young, done, already repaired),
//! the dead-man's switch in both accounts, and the recovery point per resource.

use chrono::{DateTime, Duration, TimeZone, Utc};
use snapferry::ResourceKind::DbInstance;
use snapferry::events::{PipelineEvent, RecheckWhat, Step};
use snapferry::inbound::{Incoming, parse_message};
use snapferry::memory::{Cloud, deliver, step_env};
use snapferry::select::Selection;
use snapferry::step::PipelineStep;
use snapferry::store::Snapshot;
use snapferry::tags::{self, Tags};
use snapferry_reconcile::{BACKUP_STEP, Config, Handler, SOURCE_STEP};

const SOURCE: &str = "111111111111";
const TARGET: &str = "222222222222";
const REGION: &str = "us-east-1";
const EXTRA: &str = "eu-west-1";
const SHARE_QUEUE: &str = "memory://share";
const COPY_QUEUE: &str = "memory://copy";
const RESTORE_QUEUE: &str = "memory://restore";

fn config(name: &'static str) -> Config {
    Config {
        step: step_env(),
        name,
        kinds: vec![DbInstance],
        selection: Selection { regex: Some(regex::Regex::new(".*").unwrap()), ..Default::default() },
        schedule: Duration::hours(1),
        grace: Duration::hours(1),
        rpo: Duration::hours(24),
        rules: Vec::new(),
        extra_regions: vec![EXTRA.into()],
        restore_every_copy: true,
        restore_enabled: true,
        share_queue: SHARE_QUEUE.into(),
        copy_queue: COPY_QUEUE.into(),
        restore_queue: RESTORE_QUEUE.into(),
    }
}

fn t(h: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap() + Duration::hours(h)
}

async fn run(cloud: &Cloud, config: Config, at: DateTime<Utc>) -> (Vec<(String, Incoming)>, Vec<PipelineEvent>) {
    cloud.set_now(at);
    let account = if config.name == SOURCE_STEP { SOURCE } else { TARGET };
    let h = Handler::new(cloud.context(account, REGION, config.step.clone()), config);
    h.step(deliver::schedule(at), deliver::record()).await.unwrap();
    let sent = cloud.take_sent_to().into_iter().map(|(q, body)| (q, parse_message(&body).unwrap())).collect();
    (sent, cloud.take_published())
}

/// A snapshot made by `step` of `resource` at `at`, with the tags that step writes.
fn ours(
    cloud: &Cloud,
    region: &str,
    step: &str,
    name: &str,
    resource: &str,
    at: DateTime<Utc>,
    extra: &[(&str, &str)],
) -> Snapshot {
    let mut t: Tags = tags::LineageTags {
        source_arn: format!("arn:aws:rds:{REGION}:{SOURCE}:db:{resource}"),
        source_account: SOURCE.into(),
        correlation_id: format!("run-{name}"),
        step: step.into(),
    }
    .tags();
    if step == "copy" {
        t.insert(tags::ORIGIN_RESOURCE.into(), resource.into());
    }
    t.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    // Copies are the backup account's; the rest the source's.
    let account = if step == "copy" { TARGET } else { SOURCE };
    let s = Snapshot { created_at: Some(at), tags: t, ..cloud.snapshot(DbInstance, account, region, name, resource) };
    cloud.put_snapshot(s.clone());
    s
}

fn repaired(events: &[PipelineEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.step {
            Step::Repaired { stalled_at } => Some((e.snapshot.id.clone(), stalled_at.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_snapshot_never_shared_is_restarted_at_the_share_step_once() {
    let cloud = Cloud::new();
    cloud.set_now(t(0));
    cloud.add_resource(DbInstance, SOURCE, REGION, "db", None, &[]);
    let lost = ours(&cloud, REGION, "create", "snapferry-db-lost", "db", t(1), &[]);
    // Not stalled at the share step: feeding a re-encrypted copy; too young; released.
    let fed = ours(&cloud, REGION, "create", "snapferry-db-fed", "db", t(1), &[]);
    let mut copy = ours(&cloud, REGION, "share", "snapferry-shared-db-fed", "db", t(1), &[(tags::RELEASED_AT, "x")]);
    copy.tags.insert(tags::SOURCE_ARN.into(), fed.arn.clone());
    copy.tags.insert(tags::ORIGIN_RESOURCE.into(), "db".into());
    cloud.put_snapshot(copy);
    ours(&cloud, REGION, "create", "snapferry-db-young", "db", t(4) - Duration::minutes(10), &[]);
    ours(&cloud, REGION, "create", "snapferry-db-released", "db", t(1), &[(tags::RELEASED_AT, "x")]);

    let (sent, events) = run(&cloud, config(SOURCE_STEP), t(3)).await;
    let [(queue, Incoming::Recheck(r))] = &sent[..] else { panic!("one repair: {sent:?}") };
    assert_eq!(queue, SHARE_QUEUE);
    let RecheckWhat::ShareWhenAvailable { copy, origin } = &r.detail.what else { panic!("{r:?}") };
    assert_eq!((copy.id.as_str(), origin.id.as_str()), ("snapferry-db-lost", "snapferry-db-lost"));
    assert_eq!(r.detail.correlation_id, "run-snapferry-db-lost", "the run it belongs to");
    assert_eq!(repaired(&events), [("snapferry-db-lost".to_string(), "share".to_string())]);
    let marked = cloud.snapshots(SOURCE, REGION).into_iter().find(|s| s.id == lost.id).unwrap();
    assert!(marked.tags.contains_key(tags::RECONCILED_AT));
    // An hour later it is not repaired again.
    let (sent, _) = run(&cloud, config(SOURCE_STEP), t(4)).await;
    assert!(sent.is_empty(), "{sent:?}");
}

/// A snapshot of `resource` snapferry did not take (by hand, or RDS's automated one).
fn taken_elsewhere(cloud: &Cloud, name: &str, resource: &str, at: DateTime<Utc>, automated: bool) -> Snapshot {
    let s = Snapshot { created_at: Some(at), automated, ..cloud.snapshot(DbInstance, SOURCE, REGION, name, resource) };
    cloud.put_snapshot(s.clone());
    s
}

#[tokio::test]
async fn a_snapshot_taken_by_hand_or_by_rds_whose_event_was_lost_is_backed_up_while_recent() {
    let cloud = Cloud::new();
    cloud.set_now(t(-10));
    cloud.add_resource(DbInstance, SOURCE, REGION, "db", None, &[]);
    cloud.add_resource(DbInstance, SOURCE, REGION, "other", None, &[]);
    let by_hand = taken_elsewhere(&cloud, "before-migration", "db", t(1), false);
    let automated = taken_elsewhere(&cloud, "rds:db-2026-11-20-01-30", "db", t(1) + Duration::minutes(30), true);
    // Not lost: backed up (its re-encrypted copy, released and all, is here); too young;
    // taken before the lookback (before snapferry could see it); not of a selected database.
    let backed_up = taken_elsewhere(&cloud, "backed-up", "db", t(1), false);
    let mut copy = ours(&cloud, REGION, "share", "snapferry-shared-backed-up", "db", t(1), &[(tags::RELEASED_AT, "x")]);
    copy.tags.insert(tags::SOURCE_ARN.into(), backed_up.arn.clone());
    cloud.put_snapshot(copy);
    taken_elsewhere(&cloud, "young", "db", t(3) - Duration::minutes(10), false);
    taken_elsewhere(&cloud, "long-ago", "db", t(3) - Duration::hours(7), false);
    taken_elsewhere(&cloud, "not-selected", "other", t(1), false);
    let selected = Selection { regex: Some(regex::Regex::new("^db$").unwrap()), ..Default::default() };

    let (sent, events) = run(&cloud, Config { selection: selected.clone(), ..config(SOURCE_STEP) }, t(3)).await;
    let mut restarted: Vec<(String, String)> = sent
        .iter()
        .map(|(queue, m)| {
            assert_eq!(queue, SHARE_QUEUE);
            let Incoming::Recheck(r) = m else { panic!("{m:?}") };
            let RecheckWhat::ShareWhenAvailable { copy, origin } = &r.detail.what else { panic!("{r:?}") };
            assert_eq!(copy.arn, origin.arn, "the run starts from the snapshot itself");
            assert_eq!(r.detail.correlation_id, snapferry::naming::run_of_snapshot(&copy.arn), "the share step's run");
            (copy.id.clone(), r.detail.correlation_id.clone())
        })
        .collect();
    restarted.sort();
    let ids: Vec<&str> = restarted.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, [by_hand.id.as_str(), automated.id.as_str()]);
    let mut said = repaired(&events);
    said.sort();
    assert_eq!(said, [(by_hand.id.clone(), "share".into()), (automated.id.clone(), "share".into())]);
    let untouched = cloud.snapshots(SOURCE, REGION).into_iter().find(|s| s.id == by_hand.id).unwrap();
    assert!(untouched.tags.is_empty(), "not snapferry's: not tagged");
    // Each hour until its copy is made (not tagged, it is looked at again) and while it is
    // within the lookback: the young one by now, not the two of six hours ago.
    let (sent, _) = run(&cloud, Config { selection: selected.clone(), ..config(SOURCE_STEP) }, t(8)).await;
    let ids: Vec<String> = sent.iter().map(|(_, m)| m.describe()).collect();
    let young = |m: &Incoming| matches!(m, Incoming::Recheck(r) if matches!(&r.detail.what, RecheckWhat::ShareWhenAvailable { copy, .. } if copy.id == "young"));
    assert!(matches!(&sent[..], [(_, m)] if young(m)), "{ids:?}");
    let (sent, _) = run(&cloud, Config { selection: selected, ..config(SOURCE_STEP) }, t(10)).await;
    assert!(sent.is_empty(), "{sent:?}");
}

#[tokio::test]
async fn one_snapshot_that_cannot_be_repaired_does_not_stop_the_others() {
    let cloud = Cloud::new();
    cloud.set_now(t(0));
    cloud.add_resource(DbInstance, SOURCE, REGION, "db", None, &[]);
    ours(&cloud, REGION, "create", "snapferry-db-a", "db", t(1), &[]);
    ours(&cloud, REGION, "create", "snapferry-db-b", "db", t(1), &[]);
    // AWS refuses to say whom the first is shared with.
    cloud.fail("shared_with", "AccessDenied", 1);
    let (sent, events) = run(&cloud, config(SOURCE_STEP), t(3)).await;
    let [(queue, _)] = &sent[..] else { panic!("the other is repaired: {sent:?}") };
    assert_eq!(queue, SHARE_QUEUE);
    let rejected: Vec<_> = events.iter().filter(|e| matches!(e.step, Step::Rejected { .. })).collect();
    let [r] = &rejected[..] else { panic!("one report: {events:?}") };
    assert_eq!(r.snapshot.id, "snapferry-db-a");
    assert_eq!(repaired(&events), [("snapferry-db-b".to_string(), "share".to_string())]);
    assert_eq!(cloud.take_metrics().iter().filter(|m| m.starts_with("ResourceFailed")).count(), 1);
}

#[tokio::test]
async fn a_kind_that_cannot_be_listed_does_not_stop_the_others() {
    for (step, listing, account) in [(SOURCE_STEP, "list_own", SOURCE), (BACKUP_STEP, "list_managed", TARGET)] {
        let cloud = Cloud::new();
        cloud.set_now(t(0));
        cloud.add_resource(DbInstance, SOURCE, REGION, "db", None, &[]);
        if step == SOURCE_STEP {
            ours(&cloud, REGION, "create", "snapferry-db-lost", "db", t(1), &[]);
        } else {
            ours(&cloud, REGION, "copy", "c-db", "db", t(1), &[]);
        }
        // The first kind's listing fails (AWS is unavailable for it); the second's does not.
        cloud.fail(listing, "ServiceUnavailable", 1);
        cloud.set_now(t(3));
        let config = Config { kinds: vec![snapferry::ResourceKind::DbCluster, DbInstance], ..config(step) };
        let h = Handler::new(cloud.context(account, REGION, config.step.clone()), config);
        let err = h.step(deliver::schedule(t(3)), deliver::record()).await.unwrap_err();
        assert_eq!(err.code(), "ServiceUnavailable", "{step}: the run is tried again: {err}");
        let repaired = repaired(&cloud.take_published());
        assert_eq!(repaired.len(), 1, "{step}: the other kind was reconciled: {repaired:?}");
    }
}

#[tokio::test]
async fn a_snapshot_shared_and_never_copied_is_announced_again_once() {
    let cloud = Cloud::new();
    cloud.set_now(t(0));
    cloud.add_resource(DbInstance, SOURCE, REGION, "db", None, &[]);
    let store = cloud.stores(SOURCE, REGION).store(DbInstance);
    let user = ("team", "payments");
    let shared = ours(&cloud, REGION, "create", "snapferry-db-shared", "db", t(1), &[user]);
    store.share(&shared, &[TARGET.to_string()]).await.unwrap();
    // Not stalled: shared just now (its copy may be on its way); copied, so released.
    let young = ours(&cloud, REGION, "create", "snapferry-db-young", "db", t(3) - Duration::minutes(10), &[]);
    store.share(&young, &[TARGET.to_string()]).await.unwrap();
    ours(&cloud, REGION, "create", "snapferry-db-released", "db", t(1), &[(tags::RELEASED_AT, "x")]);

    let (sent, events) = run(&cloud, config(SOURCE_STEP), t(3)).await;
    assert!(sent.is_empty(), "announced, not queued: {sent:?}");
    let announced: Vec<_> = events.iter().filter(|e| matches!(e.step, Step::Shared { .. })).collect();
    let [e] = &announced[..] else { panic!("one announcement: {events:?}") };
    assert_eq!(e.snapshot.id, "snapferry-db-shared");
    assert_eq!(e.correlation_id, "run-snapferry-db-shared", "the run it belongs to");
    let Step::Shared { target_account, tags: sent_tags, .. } = &e.step else { unreachable!() };
    assert_eq!(target_account, TARGET, "the account AWS says it is shared with");
    assert_eq!(sent_tags.get("team").map(String::as_str), Some("payments"), "the user's tags, as the share step sends");
    assert!(!sent_tags.contains_key(tags::CORRELATION_ID), "not snapferry's own: {sent_tags:?}");
    assert_eq!(repaired(&events), [("snapferry-db-shared".to_string(), "copy".to_string())]);
    // Not again within a day; the young one is stalled by now.
    let (_, events) = run(&cloud, config(SOURCE_STEP), t(5)).await;
    assert_eq!(repaired(&events), [("snapferry-db-young".to_string(), "copy".to_string())]);
}

#[tokio::test]
async fn the_source_dead_mans_switch() {
    // (case, resource created, newest snapshot, overdue at t(10))
    let cases = [
        ("a fresh snapshot", t(0), Some(t(9)), false),
        ("the newest is three hours old", t(0), Some(t(7)), true),
        ("never backed up, created long ago", t(0), None, true),
        ("never backed up, created just now", t(9) + Duration::minutes(30), None, false),
    ];
    for (case, created, newest, overdue) in cases {
        let cloud = Cloud::new();
        cloud.set_now(created);
        cloud.add_resource(DbInstance, SOURCE, REGION, "db", None, &[]);
        if let Some(at) = newest {
            ours(&cloud, REGION, "create", "snapferry-db-1", "db", at, &[(tags::RELEASED_AT, "x")]);
        }
        let (_, events) = run(&cloud, config(SOURCE_STEP), t(10)).await;
        let overdue_events: Vec<_> = events.iter().filter(|e| matches!(e.step, Step::Overdue { .. })).collect();
        assert_eq!(overdue_events.len(), usize::from(overdue), "{case}: {events:?}");
        let metrics = cloud.take_metrics();
        assert_eq!(metrics.iter().filter(|m| m.starts_with("BackupOverdue")).count(), usize::from(overdue), "{case}");
        if let [e] = &overdue_events[..] {
            assert_eq!(e.snapshot.resource_id, "db", "{case}");
            assert_eq!(e.step, Step::Overdue { last: newest, limit_minutes: 120 }, "{case}");
        }
    }
}

#[tokio::test]
async fn a_stalled_copy_is_restarted_where_it_stalled() {
    // (case, tags on the copy, in the extra region too, restore tests every copy, restarted at)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool, bool, Option<(&'a str, &'a str)>);
    let cases: [Case; 6] = [
        ("never announced", &[], false, true, Some((COPY_QUEUE, "announce the copy"))),
        ("announced, never tested", &[(tags::COPIED_AT, "x")], true, true, Some((RESTORE_QUEUE, "restore test"))),
        ("announced, sampled out", &[(tags::COPIED_AT, "x")], true, false, None),
        (
            "verified, missing in the extra region",
            &[(tags::COPIED_AT, "x"), (tags::VERIFIED_AT, "x")],
            false,
            true,
            Some((COPY_QUEUE, "copy to eu-west-1")),
        ),
        ("verified and everywhere", &[(tags::COPIED_AT, "x"), (tags::VERIFIED_AT, "x")], true, true, None),
        ("repaired an hour ago", &[(tags::RECONCILED_AT, "2026-11-20T05:00:00Z")], false, true, None),
    ];
    for (case, extra, everywhere, every_copy, restarted) in cases {
        let cloud = Cloud::new();
        let copy = ours(&cloud, REGION, "copy", "snapferry-copy-db-1", "db", t(1), extra);
        if everywhere {
            ours(&cloud, EXTRA, "copy", "snapferry-copy-db-1", "db", t(1), &[]);
        }
        let c = Config { restore_every_copy: every_copy, ..config(BACKUP_STEP) };
        let (sent, events) = run(&cloud, c, t(6)).await;
        match restarted {
            None => assert!(sent.is_empty() && repaired(&events).is_empty(), "{case}: {sent:?}"),
            Some((queue, at)) => {
                let [(q, message)] = &sent[..] else { panic!("{case}: {sent:?}") };
                assert_eq!(q, queue, "{case}");
                assert_eq!(repaired(&events), [(copy.id.clone(), at.to_string())], "{case}");
                match message {
                    Incoming::Recheck(r) => match &r.detail.what {
                        RecheckWhat::CopyWhenAvailable { copy: c, .. } | RecheckWhat::CopyToRegion { copy: c, .. } => {
                            assert_eq!(c.id, copy.id, "{case}")
                        }
                        other => panic!("{case}: {other:?}"),
                    },
                    // What the restore step reads from the bus, as from this account.
                    Incoming::Pipeline(e) => {
                        assert_eq!(e.detail.step, Step::Copied { copied_from: None });
                        assert_eq!(e.account.as_deref(), Some(TARGET), "{case}");
                    }
                    other => panic!("{case}: {other:?}"),
                }
            }
        }
    }
}

#[tokio::test]
async fn a_copy_the_extra_regions_rules_no_longer_keep_is_not_copied_back_there() {
    let cloud = Cloud::new();
    let done: &[(&str, &str)] = &[(tags::VERIFIED_AT, "x"), (tags::COPIED_AT, "x")];
    // Home keeps a week of orders; the extra region's rules keep the newest two there.
    let week: Vec<Snapshot> =
        (0..7).map(|d| ours(&cloud, REGION, "copy", &format!("c-orders-{d}"), "orders", t(24 * d), done)).collect();
    for c in &week[4..] {
        ours(&cloud, EXTRA, "copy", &c.name, "orders", c.created_at.unwrap(), &[]);
    }
    let rules =
        snapferry::retention::parse(&format!(r#"[{{"regions": ["{EXTRA}"], "keep_last": 2}}, {{"keep_last": 7}}]"#))
            .unwrap();
    let config = Config { rules, ..config(BACKUP_STEP) };
    let (sent, _) = run(&cloud, config.clone(), t(24 * 6 + 2)).await;
    // c-orders-4 is the oldest there and the rules would not keep it beside 5 and 6; 0 to 3
    // were deleted there by expire-copies: none of them is copied back.
    assert!(sent.is_empty(), "{sent:?}");
    // The newest is missing there (its copy was lost): that one is repaired.
    let lost = ours(&cloud, REGION, "copy", "c-orders-7", "orders", t(24 * 7), done);
    let (sent, _) = run(&cloud, config, t(24 * 7 + 2)).await;
    let [(queue, Incoming::Recheck(r))] = &sent[..] else { panic!("one repair: {sent:?}") };
    assert_eq!(queue, COPY_QUEUE);
    let RecheckWhat::CopyToRegion { copy, destination_region, .. } = &r.detail.what else { panic!("{r:?}") };
    assert_eq!((copy.id.as_str(), destination_region.as_str()), (lost.id.as_str(), EXTRA));
}

#[tokio::test]
async fn the_recovery_point_of_each_resource_and_the_rpo() {
    let cloud = Cloud::new();
    // orders: verified 2 h before the run; ledger: verified 30 h before; scratch: never verified.
    ours(&cloud, REGION, "copy", "c-orders-old", "orders", t(0), &[(tags::VERIFIED_AT, "x"), (tags::COPIED_AT, "x")]);
    ours(
        &cloud,
        REGION,
        "copy",
        "c-orders",
        "orders",
        t(28),
        &[(tags::VERIFIED_AT, "x"), (tags::COPIED_AT, "x"), (tags::RESTORE_SECONDS, "312.5")],
    );
    ours(&cloud, REGION, "copy", "c-ledger", "ledger", t(0), &[(tags::VERIFIED_AT, "x"), (tags::COPIED_AT, "x")]);
    ours(&cloud, REGION, "copy", "c-scratch", "scratch", t(29), &[(tags::COPIED_AT, "x")]);
    // The extra region's copies, made from the home ones: the newest of orders there is
    // 29 hours old (its copy of c-orders never came), ledger's as at home.
    for (name, resource, at) in
        [("c-orders-old", "orders", t(1)), ("c-ledger", "ledger", t(1)), ("c-scratch", "scratch", t(29))]
    {
        ours(&cloud, EXTRA, "copy", name, resource, at, &[]);
    }
    let (_, events) = run(&cloud, config(BACKUP_STEP), t(30)).await;
    let metrics = cloud.take_metrics();
    for want in [
        "RecoveryPointAgeSeconds reconcile-copies 111111111111/orders = 7200 Seconds",
        "RestoreSeconds reconcile-copies 111111111111/orders = 312.5 Seconds",
        "RecoveryPointAgeSeconds reconcile-copies 111111111111/ledger = 108000 Seconds",
        "RecoveryPointAgeSeconds reconcile-copies 111111111111/orders@eu-west-1 = 104400 Seconds",
        "RecoveryPointAgeSeconds reconcile-copies 111111111111/ledger@eu-west-1 = 104400 Seconds",
        "MaxRecoveryPointAgeSeconds reconcile-copies = 108000 Seconds",
        "BackupOverdue reconcile-copies",
    ] {
        assert!(metrics.iter().any(|m| m == want), "{want} in {metrics:#?}");
    }
    assert!(!metrics.iter().any(|m| m.contains("scratch")), "an unverified copy is no recovery point: {metrics:?}");
    assert_eq!(metrics.iter().filter(|m| m.starts_with("RestoreSeconds")).count(), 1, "home copies' tests only");
    let overdue: Vec<_> = events.iter().filter(|e| matches!(e.step, Step::Overdue { .. })).collect();
    let mut late: Vec<(&str, &str)> =
        overdue.iter().map(|e| (e.snapshot.resource_id.as_str(), e.snapshot.region.as_str())).collect();
    late.sort();
    assert_eq!(late, [("ledger", EXTRA), ("ledger", REGION), ("orders", EXTRA)], "{events:?}");
    let home = overdue.iter().find(|e| e.snapshot.region == REGION).unwrap();
    assert_eq!(home.step, Step::Overdue { last: Some(t(0)), limit_minutes: 24 * 60 });
}

#[test]
fn config_from_the_declared_environment() {
    use snapferry::config::Env;
    let env = Env::from_pairs(SOURCE_STEP, [("QUEUE_URL", "q"), ("DLQ_URL", "d"), ("SHARE_QUEUE_URL", "s")]).unwrap();
    let c = Config::from_env(&env).unwrap();
    assert_eq!((c.schedule, c.grace), (Duration::hours(1), Duration::hours(1)));
    assert!(env.unread().is_empty(), "{:?}", env.unread());
    let env = Env::from_pairs(
        BACKUP_STEP,
        [
            ("QUEUE_URL", "q"),
            ("DLQ_URL", "d"),
            ("COPY_QUEUE_URL", "c"),
            ("RESTORE_QUEUE_URL", "r"),
            ("RESTORE_EVERY_NTH", "3"),
        ],
    )
    .unwrap();
    let c = Config::from_env(&env).unwrap();
    assert_eq!(c.rpo, Duration::days(1));
    assert!(!c.restore_every_copy, "sampled restore tests: an untested copy is not stalled");
    let default = |step: &str| snapferry::environment::var(step, "RETENTION").and_then(|v| v.default.clone());
    assert_eq!(default(BACKUP_STEP), default("expire-copies"), "expire-copies' rules, the same by default");
    assert!(default(BACKUP_STEP).is_some());
    assert!(env.unread().is_empty(), "{:?}", env.unread());
    let bad = Env::from_pairs(
        SOURCE_STEP,
        [("QUEUE_URL", "q"), ("DLQ_URL", "d"), ("SHARE_QUEUE_URL", "s"), ("GRACE_MINUTES", "0")],
    )
    .unwrap();
    assert!(Config::from_env(&bad).unwrap_err().to_string().contains("GRACE_MINUTES"));
}
