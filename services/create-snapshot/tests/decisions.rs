//! Every decision create-snapshot makes, on the in-memory cloud: which resources, when a
//! snapshot is skipped, what a duplicate event does, quotas, and each error class.

use chrono::{Duration, TimeZone, Utc};
use snapferry::ResourceKind::{self, DbCluster, DbInstance};
use snapferry::config::Env;
use snapferry::error::Retry;
use snapferry::events::{BackupRequest, PipelineEvent, Step};
use snapferry::memory::{Cloud, deliver, step_env};
use snapferry::select::Selection;
use snapferry::step::PipelineStep;
use snapferry::store::Snapshot;
use snapferry::tags;
use snapferry_create_snapshot::{Config, Handler, STEP};

const ACCOUNT: &str = "111111111111";
const REGION: &str = "us-east-1";

fn slot() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 13, 0, 0).unwrap()
}

fn config(selection: Selection) -> Config {
    Config {
        step: step_env(),
        kinds: vec![DbInstance, DbCluster],
        selection,
        min_interval: Duration::minutes(60),
        manual_snapshot_quota: 100,
    }
}

fn regex(re: &str) -> Selection {
    Selection { regex: Some(regex::Regex::new(re).unwrap()), ..Default::default() }
}

/// A cloud with an instance `orders` (tagged), a cluster `ledger` and an instance `scratch`.
fn cloud() -> Cloud {
    let cloud = Cloud::new();
    cloud.set_now(slot());
    cloud.add_resource(
        DbInstance,
        ACCOUNT,
        REGION,
        "orders",
        Some("k"),
        &[("team", "shop"), ("aws:cloudformation:stack-name", "x")],
    );
    cloud.add_resource(DbCluster, ACCOUNT, REGION, "ledger", None, &[("backup", "yes")]);
    cloud.add_resource(DbInstance, ACCOUNT, REGION, "scratch", None, &[]);
    cloud
}

fn handler(cloud: &Cloud, config: Config) -> Handler {
    Handler::new(cloud.context(ACCOUNT, REGION, config.step.clone()), config)
}

fn snapshotted(cloud: &Cloud) -> Vec<String> {
    let mut r: Vec<_> = cloud.snapshots(ACCOUNT, REGION).into_iter().map(|s| s.resource_id).collect();
    r.sort();
    r
}

#[tokio::test]
async fn the_schedule_snapshots_exactly_the_selected_resources() {
    let tag = |spec: &str| Selection {
        tag: Some(spec.split_once('=').map_or((spec.into(), None), |(k, v)| (k.into(), Some(v.into())))),
        ..Default::default()
    };
    let cases: Vec<(&str, Selection, Vec<&str>)> = vec![
        ("nothing configured selects nothing", Selection::default(), vec![]),
        ("regex on the resource id", regex("^or"), vec!["orders"]),
        (
            "explicit ids",
            Selection { identifiers: vec!["scratch".into(), "ledger".into()], ..Default::default() },
            vec!["ledger", "scratch"],
        ),
        ("opt-in tag, any value", tag("backup"), vec!["ledger"]),
        ("opt-in tag with a value that differs", tag("backup=no"), vec![]),
        ("everything", regex(".*"), vec!["ledger", "orders", "scratch"]),
        (
            "selectors combine as a union",
            Selection {
                identifiers: vec!["scratch".into()],
                tag: Some(("team".into(), Some("shop".into()))),
                ..Default::default()
            },
            vec!["orders", "scratch"],
        ),
    ];
    for (name, selection, expected) in cases {
        let cloud = cloud();
        let outcome = handler(&cloud, config(selection)).step(deliver::schedule(slot()), deliver::record()).await;
        assert!(outcome.is_ok(), "{name}: {outcome:?}");
        assert_eq!(snapshotted(&cloud), expected, "{name}");
        assert!(cloud.take_published().is_empty(), "{name}: nothing to announce");
    }
}

#[tokio::test]
async fn snapshots_carry_the_resource_tags_and_the_lineage() {
    let cloud = cloud();
    handler(&cloud, config(regex("^orders$"))).step(deliver::schedule(slot()), deliver::record()).await.unwrap();
    let [s]: [Snapshot; 1] = cloud.snapshots(ACCOUNT, REGION).try_into().unwrap();
    assert_eq!(s.name, snapferry::naming::create_snapshot_id("orders", slot()));
    assert_eq!(s.tags.get("team").map(String::as_str), Some("shop"));
    assert!(!s.tags.keys().any(|k| k.starts_with("aws:")), "aws: tags cannot be set: {:?}", s.tags);
    let lineage = tags::lineage_of(&s.tags).expect("lineage tags");
    assert_eq!((lineage.step.as_str(), lineage.source_account.as_str()), ("create", ACCOUNT));
    assert!(lineage.source_arn.ends_with(":db:orders"), "{}", lineage.source_arn);
}

#[tokio::test]
async fn duplicate_late_and_early_schedule_events() {
    // (what happened before, the event's slot, whether a second snapshot is taken)
    let cases = [
        ("the same event delivered twice", Duration::zero(), false),
        ("a retry seconds later, same minute", Duration::seconds(40), false),
        ("the next hourly slot", Duration::minutes(60), true),
        ("a slot within the minimum interval", Duration::minutes(59), false),
    ];
    for (name, later, second) in cases {
        let cloud = cloud();
        let h = handler(&cloud, config(regex("^orders$")));
        h.step(deliver::schedule(slot()), deliver::record()).await.unwrap();
        cloud.set_now(slot() + later);
        h.step(deliver::schedule(slot() + later), deliver::record()).await.unwrap();
        assert_eq!(cloud.snapshots(ACCOUNT, REGION).len(), if second { 2 } else { 1 }, "{name}");
    }
}

#[tokio::test]
async fn on_demand_requests() {
    let all_instances = BackupRequest::new(Some(DbInstance), vec![]);
    let named = BackupRequest::new(None, vec!["scratch".into()]);
    let cases: Vec<(&str, BackupRequest, Vec<&str>)> = vec![
        // Named resources are backed up even when the selection does not include them.
        ("named resources", named, vec!["scratch"]),
        ("no identifiers: every selected resource of the kind", all_instances, vec!["orders"]),
        (
            "no identifiers, no kind: every selected resource",
            BackupRequest::new(None, vec![]),
            vec!["ledger", "orders"],
        ),
        ("an unknown identifier", BackupRequest::new(None, vec!["nope".into()]), vec![]),
    ];
    for (name, request, expected) in cases {
        let cloud = cloud();
        let selection = Selection { identifiers: vec!["orders".into(), "ledger".into()], ..Default::default() };
        handler(&cloud, config(selection))
            .step(deliver::backup_requested(request, slot()), deliver::record())
            .await
            .unwrap();
        assert_eq!(snapshotted(&cloud), expected, "{name}");
    }
}

#[tokio::test]
async fn on_demand_ignores_the_minimum_interval_and_joins_the_callers_run() {
    let cloud = cloud();
    let h = handler(&cloud, config(regex("^orders$")));
    h.step(deliver::schedule(slot()), deliver::record()).await.unwrap();
    cloud.set_now(slot() + Duration::minutes(5));
    let request =
        BackupRequest { correlation_id: Some("run-42".into()), ..BackupRequest::new(None, vec!["orders".into()]) };
    h.step(deliver::backup_requested(request, slot() + Duration::minutes(5)), deliver::record()).await.unwrap();
    let snapshots = cloud.snapshots(ACCOUNT, REGION);
    assert_eq!(snapshots.len(), 2);
    assert!(snapshots.iter().any(|s| s.tags.get(tags::CORRELATION_ID).map(String::as_str) == Some("run-42")));
}

#[tokio::test]
async fn quotas_refuse_with_an_event_and_go_on() {
    // snapferry's own budget is 1 manual snapshot per kind and region: the instance store
    // already holds one, so orders is refused; the cluster store holds none, so ledger is not.
    let cloud = cloud();
    let mut c = config(Selection { identifiers: vec!["orders".into(), "ledger".into()], ..Default::default() });
    c.manual_snapshot_quota = 1;
    cloud.put_snapshot(Snapshot {
        tags: [(tags::MANAGED.to_string(), "true".to_string())].into(),
        created_at: Some(slot() - Duration::days(3)),
        ..cloud.snapshot(DbInstance, ACCOUNT, REGION, "snapferry-old", "scratch")
    });
    handler(&cloud, c).step(deliver::schedule(slot()), deliver::record()).await.unwrap();
    let events = cloud.take_published();
    assert_eq!(events.len(), 1, "{events:?}");
    let Step::Rejected { reason, .. } = &events[0].step else { panic!("{events:?}") };
    assert!(reason.contains("MANUAL_SNAPSHOT_QUOTA"), "{reason}");
    assert_eq!(events[0].snapshot.resource_id, "orders");
    assert!(events[0].snapshot.arn.contains(":snapshot:snapferry-orders-"), "{}", events[0].snapshot.arn);
    assert_eq!(snapshotted(&cloud), vec!["ledger", "scratch"], "the cluster still got its snapshot");

    // AWS's own quota (SnapshotQuotaExceeded) is a refusal for that resource, not a retry.
    let cloud = self::cloud();
    cloud.set_manual_quota(0);
    handler(&cloud, config(regex("^orders$"))).step(deliver::schedule(slot()), deliver::record()).await.unwrap();
    let events = cloud.take_published();
    assert!(
        matches!(&events[..], [e] if matches!(&e.step, Step::Rejected { reason, .. } if reason.contains("SnapshotQuotaExceeded"))),
        "{events:?}"
    );
}

#[tokio::test]
async fn aws_errors_end_as_their_class_says() {
    // (operation that fails, AWS code, the retry class, or None for a permanent failure)
    let cases = [
        ("list_resources", "Throttling", Some(Retry::Throttled)),
        ("list_managed", "ServiceUnavailable", Some(Retry::Transient)),
        ("create", "RequestLimitExceeded", Some(Retry::Throttled)),
        ("create", "InvalidDBInstanceState", Some(Retry::NotReady)),
        ("publish", "AccessDeniedException", None),
    ];
    for (op, code, class) in cases {
        let cloud = cloud();
        cloud.set_manual_quota(if op == "publish" { 0 } else { 100 });
        cloud.fail(op, code, 1);
        let err = handler(&cloud, config(regex("^orders$")))
            .step(deliver::schedule(slot()), deliver::record())
            .await
            .expect_err(&format!("{op} {code}"));
        assert_eq!(err.retry(), class, "{op} {code}: {err}");
        assert_eq!(err.code(), code);
    }
}

#[tokio::test]
async fn one_resource_that_fails_does_not_stop_the_others() {
    // (AWS's answer to the first resource's snapshot, whether the run is tried again)
    for (code, again) in [("KMSKeyNotAccessibleFault", false), ("InvalidDBInstanceState", true)] {
        let cloud = cloud();
        cloud.fail("create", code, 1);
        let h = handler(&cloud, config(regex(".*")));
        let outcome = h.step(deliver::schedule(slot()), deliver::record()).await;
        assert_eq!(outcome.is_err(), again, "{code}: {outcome:?}");
        if let Err(e) = &outcome {
            assert_eq!(e.code(), code, "the run fails with the reason, to be dead-lettered with it");
        }
        assert_eq!(snapshotted(&cloud), ["ledger", "scratch"], "{code}: the others are snapshotted");
        let events = cloud.take_published();
        let [PipelineEvent { step: Step::Rejected { reason, .. }, snapshot, .. }] = &events[..] else {
            panic!("{code}: one report: {events:?}")
        };
        assert_eq!(snapshot.resource_id, "orders");
        assert!(reason.contains(code), "{reason}");
        let metrics = cloud.take_metrics();
        assert_eq!(metrics.iter().filter(|m| m.starts_with("ResourceFailed")).count(), 1, "{metrics:?}");
        // SQS brings the failed run again: the failed one is made, nothing twice.
        h.step(deliver::schedule(slot()), deliver::record()).await.unwrap();
        assert_eq!(snapshotted(&cloud), ["ledger", "orders", "scratch"], "{code}");
    }
}

#[tokio::test]
async fn other_messages_are_refused_as_bad_input() {
    let cloud = cloud();
    let s = cloud.snapshot(DbInstance, ACCOUNT, REGION, "x", "orders");
    let err = handler(&cloud, config(regex(".*")))
        .step(deliver::rds_event(&s, "RDS-EVENT-0042"), deliver::record())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "BadInput");
}

#[test]
fn config_comes_from_the_declared_environment() {
    let env = Env::from_pairs(STEP, [("QUEUE_URL", "q"), ("DLQ_URL", "d"), ("SELECT_REGEX", "^prod-")]).unwrap();
    let c = Config::from_env(&env).unwrap();
    assert_eq!(c.kinds, vec![ResourceKind::DbInstance, ResourceKind::DbCluster], "the declared default");
    assert_eq!((c.min_interval, c.manual_snapshot_quota), (Duration::minutes(60), 100));
    assert!(env.unread().is_empty(), "every declared variable is read: {:?}", env.unread());
    let bad = Env::from_pairs(STEP, [("QUEUE_URL", "q"), ("DLQ_URL", "d"), ("KINDS", "db-instance,tape")]).unwrap();
    assert!(Config::from_env(&bad).unwrap_err().to_string().contains("KINDS"));
}

#[tokio::test]
async fn a_database_with_many_tags_still_gets_its_snapshot_with_ours_first() {
    let cloud = cloud();
    let many: Vec<(String, String)> = (0..60).map(|i| (format!("k{i:02}"), "v".to_string())).collect();
    let mut tagged: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    tagged.push((tags::VERIFIED_AT, "forged"));
    cloud.add_resource(DbInstance, ACCOUNT, REGION, "crowded", None, &tagged);
    handler(&cloud, config(regex("^crowded$"))).step(deliver::schedule(slot()), deliver::record()).await.unwrap();
    let [s]: [Snapshot; 1] = cloud.snapshots(ACCOUNT, REGION).try_into().unwrap();
    assert_eq!(s.tags.len(), tags::MAX_TAGS - tags::LATER.len(), "AWS's limit, less the room kept for later marks");
    assert!(tags::lineage_of(&s.tags).is_some(), "snapferry's own tags take precedence");
    assert!(!s.tags.contains_key(tags::VERIFIED_AT), "a database's tags cannot pose as snapferry's");
}
