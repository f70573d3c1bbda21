//! Every decision share-snapshot makes, on the in-memory cloud: share as it is or
//! re-encrypt first, how a copy's end is awaited, selection, duplicates, and each error.

use snapferry::ResourceKind::{self, DbCluster, DbInstance, Ebs};
use snapferry::config::Env;
use snapferry::error::Retry;
use snapferry::events::{RecheckWhat, Step};
use snapferry::inbound::Incoming;
use snapferry::memory::{Cloud, deliver, step_env};
use snapferry::select::Selection;
use snapferry::sqs::Outcome;
use snapferry::step::PipelineStep;
use snapferry::store::{Snapshot, Status};
use snapferry::{naming, tags};
use snapferry_share_snapshot::{Config, Handler, STEP};

const SOURCE: &str = "111111111111";
const TARGET: &str = "222222222222";
const REGION: &str = "us-east-1";
const SHARING_KEY: &str = "arn:aws:kms:us-east-1:111111111111:key/sharing";
const OTHER_KEY: &str = "arn:aws:kms:us-east-1:111111111111:key/app";

fn config(selection: Selection) -> Config {
    Config {
        step: step_env(),
        target_accounts: vec![TARGET.into()],
        sharing_key: SHARING_KEY.into(),
        selection,
        source_data: None,
    }
}

fn everything() -> Selection {
    Selection { regex: Some(regex::Regex::new(".*").unwrap()), ..Default::default() }
}

fn handler(cloud: &Cloud, config: Config) -> Handler {
    Handler::new(cloud.context(SOURCE, REGION, config.step.clone()), config)
}

/// The key a snapshot is on, for the table below.
#[derive(Debug, Clone, Copy)]
enum Key {
    Sharing,
    AwsManaged,
    Other,
    Unencrypted,
}

/// A snapshot of `db` in the source account: managed (taken by create-snapshot) or not,
/// manual or automated, on `key`.
fn snapshot(cloud: &Cloud, kind: ResourceKind, name: &str, key: Key, managed: bool, automated: bool) -> Snapshot {
    let kms = match key {
        Key::Sharing => Some(SHARING_KEY.to_string()),
        Key::AwsManaged => Some(cloud.aws_managed_key(SOURCE, REGION, kind)),
        Key::Other => Some(OTHER_KEY.to_string()),
        Key::Unencrypted => None,
    };
    let mut tags = tags::Tags::from([("team".to_string(), "shop".to_string())]);
    if managed {
        tags.extend(
            tags::LineageTags {
                source_arn: format!("arn:aws:rds:{REGION}:{SOURCE}:db:db"),
                source_account: SOURCE.into(),
                correlation_id: "run-1".into(),
                step: "create".into(),
            }
            .tags(),
        );
    }
    let s = Snapshot {
        encrypted: kms.is_some(),
        kms_key_id: kms,
        automated,
        tags,
        ..cloud.snapshot(kind, SOURCE, REGION, name, "db")
    };
    cloud.put_snapshot(s.clone());
    s
}

fn shared_events(events: &[snapferry::events::PipelineEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.step {
            Step::Shared { target_account, .. } => Some((e.snapshot.id.clone(), target_account.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn shares_as_it_is_only_a_managed_snapshot_on_the_sharing_key() {
    // (case, kind, key, managed, automated, shared as it is)
    let cases = [
        ("managed, sharing key", DbInstance, Key::Sharing, true, false, true),
        ("managed cluster, sharing key", DbCluster, Key::Sharing, true, false, true),
        ("managed, aws/rds", DbInstance, Key::AwsManaged, true, false, false),
        ("managed, another CMK", DbInstance, Key::Other, true, false, false),
        ("managed, unencrypted", DbInstance, Key::Unencrypted, true, false, false),
        ("hand-made, sharing key", DbInstance, Key::Sharing, false, false, false),
        ("automated, sharing key", DbInstance, Key::Sharing, false, true, false),
        ("automated cluster, aws/rds", DbCluster, Key::AwsManaged, false, true, false),
        ("managed volume, sharing key", Ebs, Key::Sharing, true, false, true),
        ("managed volume, aws/ebs", Ebs, Key::AwsManaged, true, false, false),
        ("managed volume, another CMK", Ebs, Key::Other, true, false, false),
        ("managed volume, unencrypted", Ebs, Key::Unencrypted, true, false, false),
        ("hand-made volume snapshot, sharing key", Ebs, Key::Sharing, false, false, false),
    ];
    for (name, kind, key, managed, automated, as_is) in cases {
        let cloud = Cloud::new();
        let s = snapshot(&cloud, kind, "snap-1", key, managed, automated);
        let created = match kind {
            Ebs => deliver::ebs_event(&s, "createSnapshot", "succeeded", SOURCE, "arn:aws:ec2::us-east-1:volume/vol-1"),
            _ => deliver::rds_event(&s, "RDS-EVENT-0042"),
        };
        let outcome = handler(&cloud, config(everything()))
            .step(created, deliver::record())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let events = cloud.take_published();
        if as_is {
            assert_eq!(cloud.shared_with(&s.arn), vec![TARGET], "{name}");
            assert_eq!(shared_events(&events), vec![("snap-1".to_string(), TARGET.to_string())], "{name}");
            assert_eq!(outcome, Outcome::Done, "{name}");
            continue;
        }
        assert!(cloud.shared_with(&s.arn).is_empty(), "{name}: the original is never shared");
        assert!(events.is_empty(), "{name}: nothing is shared before the copy is: {events:?}");
        let copy = cloud
            .snapshots(SOURCE, REGION)
            .into_iter()
            .find(|c| c.name == naming::shared_copy_id("snap-1", s.created_at))
            .unwrap_or_else(|| panic!("{name}: a re-encrypting copy"));
        assert_eq!(copy.kms_key_id.as_deref(), Some(SHARING_KEY), "{name}");
        assert!(!copy.automated, "{name}: the copy is manual");
        assert_eq!(copy.tags.get(tags::STEP).map(String::as_str), Some("share"), "{name}");
        assert_eq!(copy.tags.get("team").map(String::as_str), Some("shop"), "{name}: user tags travel");
        // Every copy is re-checked; where RDS announces the end, later, as a backstop.
        let backstop = if kind == DbInstance { 300 } else { 30 };
        match outcome {
            Outcome::Later { body, delay } => {
                assert_eq!(delay, std::time::Duration::from_secs(backstop), "{name}");
                let Incoming::Recheck(r) = deliver::body(&body) else { panic!("{name}: {body}") };
                let RecheckWhat::ShareWhenAvailable { copy: rechecked, origin } = r.detail.what else {
                    panic!("{name}")
                };
                assert_eq!((rechecked.id, origin.id), (copy.id.clone(), s.id.clone()), "{name}");
            }
            other => panic!("{name}: {kind} copy ended with {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_finished_copy_is_shared_with_the_original_as_origin() {
    for kind in [DbInstance, DbCluster] {
        let cloud = Cloud::new();
        let original = snapshot(&cloud, kind, "rds:db-2026-11-24", Key::AwsManaged, false, true);
        let h = handler(&cloud, config(everything()));
        let first = h.step(deliver::rds_event(&original, "RDS-EVENT-0091"), deliver::record()).await.unwrap();
        cloud.complete_all();
        let copy = cloud
            .snapshots(SOURCE, REGION)
            .into_iter()
            .find(|c| c.tags.get(tags::STEP).is_some_and(|s| s == "share"))
            .unwrap();
        // The instance copy's end usually comes as RDS-EVENT-0197 before the re-check,
        // which then finds it shared and stops; the cluster's comes as the re-check.
        let Outcome::Later { body: recheck, .. } = first else { panic!("{kind}: {first:?}") };
        let next = match kind {
            DbInstance => deliver::rds_event(&copy, "RDS-EVENT-0197"),
            _ => deliver::body(&recheck),
        };
        h.step(next, deliver::record()).await.unwrap();
        assert_eq!(h.step(deliver::body(&recheck), deliver::record()).await.unwrap(), Outcome::Done);
        let events = cloud.take_published();
        assert_eq!(shared_events(&events), vec![(copy.id.clone(), TARGET.to_string())], "{kind}: announced once");
        assert_eq!(events[0].origin.arn, original.arn, "{kind}: the run starts from the original");
        let Step::Shared { tags, .. } = &events[0].step else { unreachable!() };
        assert!(tags.keys().all(|k| !k.starts_with("snapferry:")), "{kind}: bookkeeping stays home: {tags:?}");
        assert_eq!(cloud.shared_with(&copy.arn), vec![TARGET], "{kind}: never `all`");
    }
}

#[tokio::test]
async fn duplicate_and_out_of_order_events_make_one_copy() {
    let cloud = Cloud::new();
    let s = snapshot(&cloud, DbInstance, "db-manual", Key::AwsManaged, false, false);
    let h = handler(&cloud, config(everything()));
    for _ in 0..3 {
        h.step(deliver::rds_event(&s, "RDS-EVENT-0042"), deliver::record()).await.unwrap();
    }
    assert_eq!(cloud.snapshots(SOURCE, REGION).len(), 2, "the original and one copy");
    // The copy's "finished" event before it is finished: it comes back later, not shared.
    let copy = cloud.snapshots(SOURCE, REGION).into_iter().find(|c| c.id != "db-manual").unwrap();
    let early = h.step(deliver::rds_event(&copy, "RDS-EVENT-0197"), deliver::record()).await.unwrap();
    assert!(matches!(early, Outcome::Later { .. }), "{early:?}");
    assert!(cloud.shared_with(&copy.arn).is_empty());
}

#[tokio::test]
async fn what_is_not_shared() {
    let cloud = Cloud::new();
    cloud.add_resource(DbInstance, SOURCE, REGION, "db", None, &[("backup", "yes")]);
    let s = snapshot(&cloud, DbInstance, "snap-1", Key::Sharing, true, false);
    // (case, selection, shared)
    let cases = [
        (
            "not selected by regex",
            Selection { regex: Some(regex::Regex::new("^prod-").unwrap()), ..Default::default() },
            false,
        ),
        ("selected by id", Selection { identifiers: vec!["db".into()], ..Default::default() }, true),
        (
            "selected by the database's tag",
            Selection { tag: Some(("backup".into(), Some("yes".into()))), ..Default::default() },
            true,
        ),
        (
            "tag with another value",
            Selection { tag: Some(("backup".into(), Some("no".into()))), ..Default::default() },
            false,
        ),
    ];
    for (name, selection, shared) in cases {
        let c = Cloud::new();
        c.add_resource(DbInstance, SOURCE, REGION, "db", None, &[("backup", "yes")]);
        c.put_snapshot(s.clone());
        handler(&c, config(selection)).step(deliver::rds_event(&s, "RDS-EVENT-0042"), deliver::record()).await.unwrap();
        assert_eq!(!c.shared_with(&s.arn).is_empty(), shared, "{name}");
        assert_eq!(!c.take_published().is_empty(), shared, "{name}");
    }
    // Events that need no share: creation still in progress, and "creating" notices.
    let h = handler(&cloud, config(everything()));
    assert_eq!(h.step(deliver::rds_event(&s, "RDS-EVENT-0040"), deliver::record()).await.unwrap(), Outcome::Done);
    cloud.set_status(&s.arn, Status::Creating);
    let later = h.step(deliver::rds_event(&s, "RDS-EVENT-0042"), deliver::record()).await.unwrap();
    assert!(matches!(later, Outcome::Later { .. }), "a snapshot still creating is looked at again: {later:?}");
    assert!(cloud.shared_with(&s.arn).is_empty());
}

#[tokio::test]
async fn gone_failed_and_aws_errors() {
    let cloud = Cloud::new();
    let s = snapshot(&cloud, DbInstance, "snap-1", Key::Sharing, true, false);
    let h = handler(&cloud, config(everything()));

    let gone = Snapshot { id: "deleted".into(), arn: s.arn.replace("snap-1", "deleted"), ..s.clone() };
    assert_eq!(h.step(deliver::rds_event(&gone, "RDS-EVENT-0042"), deliver::record()).await.unwrap(), Outcome::Done);

    cloud.set_status(&s.arn, Status::Failed("failed".into()));
    let err = h.step(deliver::rds_event(&s, "RDS-EVENT-0042"), deliver::record()).await.unwrap_err();
    assert_eq!((err.retry(), err.code()), (None, "SnapshotFailed"), "{err}");
    cloud.set_status(&s.arn, Status::Available);

    // (operation, AWS code, class: None is permanent)
    let cases = [
        ("describe", "Throttling", Some(Retry::Throttled)),
        ("share", "Throttling", Some(Retry::Throttled)),
        ("share", "SharedSnapshotQuotaExceeded", None),
        ("share", "AccessDenied", None),
        ("publish", "InternalFailure", Some(Retry::Transient)),
    ];
    for (op, code, class) in cases {
        cloud.fail(op, code, 1);
        let err = h.step(deliver::rds_event(&s, "RDS-EVENT-0042"), deliver::record()).await.unwrap_err();
        assert_eq!((err.retry(), err.code()), (class, code), "{op}: {err}");
    }
    // A copy that fails is permanent too (the DLQ keeps the reason).
    cloud.fail("copy", "KMSKeyNotAccessibleFault", 1);
    let other = snapshot(&cloud, DbInstance, "snap-2", Key::Other, true, false);
    let err = h.step(deliver::rds_event(&other, "RDS-EVENT-0042"), deliver::record()).await.unwrap_err();
    assert!(err.to_string().contains("kms:CreateGrant"), "the KMS failure explains itself: {err}");
}

#[tokio::test]
async fn a_re_encrypting_copy_refused_for_copies_in_progress_waits_for_the_first_to_end() {
    for kind in [DbInstance, Ebs] {
        let cloud = Cloud::new();
        // Another copy in progress here, started 10 s ago and saying nothing of its progress,
        // and AWS's quota says one.
        cloud.put_snapshot(Snapshot {
            status: Status::Creating,
            created_at: Some(cloud.now() - chrono::Duration::seconds(10)),
            ..cloud.snapshot(kind, SOURCE, REGION, "someone-elses-copy", "other")
        });
        cloud.set_copy_quota(1);
        let s = snapshot(&cloud, kind, "snap-1", Key::AwsManaged, true, false);
        let h = handler(&cloud, config(everything()));
        let created = match kind {
            Ebs => deliver::ebs_event(&s, "createSnapshot", "succeeded", SOURCE, "arn:aws:ec2::us-east-1:volume/vol-1"),
            _ => deliver::rds_event(&s, "RDS-EVENT-0042"),
        };
        let err = h.step(created, deliver::record()).await.unwrap_err();
        assert_eq!(err.retry(), Some(Retry::QuotaExceeded), "{kind}: {err}");
        let ops: Vec<String> = cloud.calls().iter().filter_map(|c| c.split(' ').next().map(str::to_string)).collect();
        let listed: Vec<&String> = ops.iter().filter(|op| op.contains("list") || op.contains("copies")).collect();
        if kind == DbInstance {
            // RDS lists snapshots by no state: finding the copies in progress would list
            // every snapshot of the account, at every refusal. The backoff decides instead.
            assert_ne!(err.code(), "CopySlotsFull", "{kind}: {err}");
            assert!(listed.is_empty(), "{kind}: nothing listed: {listed:?}");
            continue;
        }
        assert_eq!(err.code(), "CopySlotsFull", "{kind}: {err}");
        assert_eq!(listed, ["pending_copies"], "{kind}: the copies in progress alone");
        // Timed by the copies in progress AWS lists; this step keeps no line: the next to go.
        assert!(err.to_string().contains(&format!("1 of 1 {kind} copy slots in {REGION} taken")), "{kind}: {err}");
        assert!(err.to_string().contains("this one 1"), "{kind}: {err}");
        // Taken to last the re-check interval from its start: back when it should end, not
        // after a backoff that doubles with every refusal.
        let expected = config(everything()).step.recheck - std::time::Duration::from_secs(10);
        assert_eq!(err.retry_after(), Some(expected.max(std::time::Duration::from_secs(1))), "{kind}");
    }
}

#[tokio::test]
async fn a_recheck_of_a_copy_that_vanished_is_an_error() {
    let cloud = Cloud::new();
    let s = snapshot(&cloud, DbCluster, "c-1", Key::AwsManaged, true, false);
    let h = handler(&cloud, config(everything()));
    let Outcome::Later { body, .. } =
        h.step(deliver::rds_event(&s, "RDS-EVENT-0075"), deliver::record()).await.unwrap()
    else {
        panic!("cluster copies are re-checked")
    };
    let copy = cloud.snapshots(SOURCE, REGION).into_iter().find(|c| c.id != "c-1").unwrap();
    cloud.put_snapshot(Snapshot { status: Status::Available, ..copy.clone() });
    let store = cloud.stores(SOURCE, REGION);
    snapferry::store::Stores::store(store.as_ref(), DbCluster).delete(&copy).await.unwrap();
    let err = h.step(deliver::body(&body), deliver::record()).await.unwrap_err();
    assert_eq!(err.code(), "NotFound", "{err}");
}

#[test]
fn config_comes_from_the_declared_environment() {
    let vars =
        [("QUEUE_URL", "q"), ("DLQ_URL", "d"), ("TARGET_ACCOUNTS", TARGET), ("SHARING_KMS_KEY_ARN", SHARING_KEY)];
    let env = Env::from_pairs(STEP, vars).unwrap();
    let c = Config::from_env(&env).unwrap();
    assert_eq!(c.target_accounts, vec![TARGET]);
    assert!(env.unread().is_empty(), "every declared variable is read: {:?}", env.unread());
}

#[tokio::test]
async fn a_re_encrypting_copy_keeps_ours_within_the_tag_limit() {
    let cloud = Cloud::new();
    let mut s = snapshot(&cloud, DbInstance, "snap-1", Key::AwsManaged, true, false);
    s.tags.extend((0..60).map(|i| (format!("k{i:02}"), "v".to_string())));
    cloud.put_snapshot(s.clone());
    handler(&cloud, config(everything()))
        .step(deliver::rds_event(&s, "RDS-EVENT-0042"), deliver::record())
        .await
        .unwrap();
    let copy = cloud.snapshots(SOURCE, REGION).into_iter().find(|c| c.id != "snap-1").expect("a copy");
    assert_eq!(copy.tags.len(), tags::MAX_TAGS - tags::LATER.len(), "room for the marks added later");
    assert_eq!(copy.tags.get(tags::STEP).map(String::as_str), Some("share"));
    assert_eq!(tags::origin_from_tags(DbInstance, &copy.tags).map(|o| o.arn), Some(s.arn.clone()));
}

#[tokio::test]
async fn a_lost_copy_finished_event_is_covered_by_the_re_check() {
    let cloud = Cloud::new();
    let s = snapshot(&cloud, DbInstance, "snap-1", Key::AwsManaged, true, false);
    let h = handler(&cloud, config(everything()));
    let Outcome::Later { body, .. } =
        h.step(deliver::rds_event(&s, "RDS-EVENT-0042"), deliver::record()).await.unwrap()
    else {
        panic!("a DB instance copy is re-checked too")
    };
    cloud.complete_all();
    // RDS-EVENT-0197 never arrives.
    assert_eq!(h.step(deliver::body(&body), deliver::record()).await.unwrap(), Outcome::Done);
    assert_eq!(shared_events(&cloud.take_published()).len(), 1);
}

#[tokio::test]
async fn an_announcement_is_never_lost_between_sharing_and_publishing() {
    let cloud = Cloud::new();
    let s = snapshot(&cloud, DbInstance, "snap-1", Key::Sharing, true, false);
    let h = handler(&cloud, config(everything()));
    cloud.fail("publish", "InternalFailure", 1);
    let err = h.step(deliver::rds_event(&s, "RDS-EVENT-0042"), deliver::record()).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(cloud.shared_with(&s.arn).is_empty(), "not shared before it is announced");
    // SQS delivers the event again; now both happen, once.
    h.step(deliver::rds_event(&s, "RDS-EVENT-0042"), deliver::record()).await.unwrap();
    h.step(deliver::rds_event(&s, "RDS-EVENT-0042"), deliver::record()).await.unwrap();
    assert_eq!(shared_events(&cloud.take_published()).len(), 1, "a third delivery finds it shared");
    assert_eq!(cloud.shared_with(&s.arn), vec![TARGET]);
}

#[tokio::test]
async fn a_failed_re_encrypting_copy_is_made_again_a_bounded_number_of_times_then_reported() {
    let cloud = Cloud::new();
    let s = snapshot(&cloud, DbInstance, "snap-1", Key::AwsManaged, true, false);
    let h = handler(&cloud, config(everything()));
    let Outcome::Later { mut body, .. } =
        h.step(deliver::rds_event(&s, "RDS-EVENT-0042"), deliver::record()).await.unwrap()
    else {
        panic!()
    };
    let ours = |cloud: &Cloud| -> Snapshot {
        let mine: Vec<Snapshot> =
            cloud.snapshots(SOURCE, REGION).into_iter().filter(|x| x.id.starts_with("snapferry-shared-")).collect();
        let [copy]: [Snapshot; 1] = mine.try_into().unwrap();
        copy
    };
    for attempt in 1..snapferry::copy::MAX_COPY_ATTEMPTS {
        let copy = ours(&cloud);
        cloud.set_status(&copy.arn, Status::Failed("canceled".into()));
        // Found by RDS-EVENT-0190 the first time, by the re-check the next.
        if attempt == 1 {
            // The event makes it at once; the re-check chain already waiting goes on.
            let out = h.step(deliver::rds_event(&copy, "RDS-EVENT-0190"), deliver::record()).await.unwrap();
            assert_eq!(out, Outcome::Done);
        } else {
            let Outcome::Later { body: next, .. } = h.step(deliver::body(&body), deliver::record()).await.unwrap()
            else {
                panic!("attempt {attempt}: made again")
            };
            body = next;
        }
        let again = ours(&cloud);
        assert_eq!(again.name, copy.name);
        assert_eq!(again.tags.get(tags::COPY_ATTEMPT), Some(&(attempt + 1).to_string()));
        assert!(again.kms_key_id.as_deref() == Some(SHARING_KEY) && cloud.shared_with(&again.arn).is_empty());
    }
    cloud.set_status(&ours(&cloud).arn, Status::Failed("canceled".into()));
    let err = h.step(deliver::body(&body), deliver::record()).await.unwrap_err();
    assert_eq!((err.retry(), err.code()), (None, "CopyFailed"), "{err}");
    let events = cloud.take_published();
    assert!(
        matches!(&events[..], [e] if matches!(&e.step, Step::Rejected { reason, .. } if reason.contains("failed 3 times"))),
        "{events:?}"
    );
    assert_eq!(events[0].origin.arn, s.arn);
}

/// The one event a multi-volume `CreateSnapshots` ends with, about `members`.
fn set_created(members: &[&Snapshot], result: &str) -> Incoming {
    let snapshots: Vec<_> = members
        .iter()
        .map(|s| {
            serde_json::json!({"snapshot_id": format!("arn:aws:ec2::{REGION}:snapshot/{}", s.id),
                "source": format!("arn:aws:ec2::{REGION}:volume/{}", s.resource_id),
                "status": if result == "succeeded" { "completed" } else { "error" }})
        })
        .collect();
    let body = serde_json::json!({
        "version": "0", "id": "set-1", "detail-type": "EBS Multi-Volume Snapshots Completion Status",
        "source": "aws.ec2", "account": SOURCE, "region": REGION, "resources": [],
        "detail": {"event": "createSnapshots", "result": result, "cause": "", "request-id": "r", "snapshots": snapshots}
    });
    deliver::body(&body.to_string())
}

#[tokio::test]
async fn a_multi_volume_set_is_shared_member_by_member_and_a_failed_one_is_reported_not_shared() {
    for result in ["succeeded", "failed"] {
        let cloud = Cloud::new();
        let set =
            tags::set_tags(&snapferry::events::BackupSet { id: "snapferry-i-1-x".into(), size: 2, verified: None });
        let mut members = Vec::new();
        for (name, key) in [("snap-0a", Key::AwsManaged), ("snap-0b", Key::Unencrypted)] {
            let s = snapshot(&cloud, Ebs, name, key, true, false);
            cloud.put_snapshot(Snapshot { tags: s.tags.clone().into_iter().chain(set.clone()).collect(), ..s.clone() });
            members.push(cloud.snapshots(SOURCE, REGION).into_iter().find(|x| x.id == s.id).unwrap());
        }
        let outcome = handler(&cloud, config(everything()))
            .step(set_created(&members.iter().collect::<Vec<_>>(), result), deliver::record())
            .await
            .unwrap();
        assert!(matches!(outcome, Outcome::Done | Outcome::Later { .. }), "{result}: {outcome:?}");
        let events = cloud.take_published();
        let copies: Vec<_> =
            cloud.snapshots(SOURCE, REGION).into_iter().filter(|s| s.name.starts_with("snapferry-shared-")).collect();
        if result == "succeeded" {
            // Neither member is on the sharing key: both are re-encrypted, and keep the set.
            assert_eq!(copies.len(), 2, "{copies:?}");
            assert!(copies.iter().all(|c| tags::set_from_tags(&c.tags).is_some_and(|s| s.size == 2)), "{copies:?}");
        } else {
            assert!(copies.is_empty(), "a failed set is not crash-consistent: nothing is made from it");
            let rejected = events.iter().filter(|e| matches!(e.step, Step::Rejected { .. })).count();
            assert_eq!(rejected, 2, "each member reported: {events:?}");
        }
    }
}

#[tokio::test]
async fn a_released_snapshot_is_not_shared_again_by_a_late_event_or_re_check() {
    let cloud = Cloud::new();
    let s = snapshot(&cloud, DbInstance, "snap-1", Key::Sharing, true, false);
    cloud.set_tag(&s.arn, tags::RELEASED_AT, "2026-11-24T12:00:00Z");
    let outcome = handler(&cloud, config(everything()))
        .step(deliver::rds_event(&s, "RDS-EVENT-0042"), deliver::record())
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Done);
    assert!(cloud.shared_with(&s.arn).is_empty(), "the backup account has its copy: not shared again");
    assert!(cloud.take_published().is_empty());
}

/// What a meter was asked to measure: the database, its managed secret, the configured one.
type Asked = (String, Option<String>, Option<String>);

/// Measures nothing: answers with `figures` (or why not) and remembers whom it was asked about.
struct FakeMeter {
    figures: Result<tags::SourceFigures, String>,
    asked: std::sync::Mutex<Vec<Asked>>,
}

#[async_trait::async_trait]
impl snapferry_share_snapshot::source_data::Meter for FakeMeter {
    async fn measure(
        &self,
        database: &snapferry::store::Database,
        entry: &snapferry_share_snapshot::source_data::SourceDatabase,
    ) -> Result<tags::SourceFigures, String> {
        let asked = (database.id.clone(), database.master_secret_arn.clone(), entry.secret.clone());
        self.asked.lock().unwrap().push(asked);
        self.figures.clone()
    }
}

fn measuring(checks: &str) -> Config {
    let connection = snapferry_data::Connection {
        timeout: std::time::Duration::from_secs(10),
        tls: snapferry_data::tls_config(None).unwrap(),
    };
    let source_data = snapferry_share_snapshot::source_data::SourceDataConfig::parse(checks, connection).unwrap();
    Config { source_data: Some(source_data), ..config(everything()) }
}

/// Shares a managed snapshot of the database `db` (on the sharing key) with `meter` measuring
/// it under `checks`: the "shared" event's figures, and whom the meter was asked about.
async fn share_measured(
    cloud: &Cloud,
    checks: Option<&str>,
    meter: FakeMeter,
) -> (Option<Box<snapferry::events::SourceData>>, Vec<Asked>) {
    let s = snapshot(cloud, DbInstance, "snap-1", Key::Sharing, true, false);
    let meter = std::sync::Arc::new(meter);
    let handler = match checks {
        Some(checks) => handler(cloud, measuring(checks)).with_meter(meter.clone()),
        None => handler(cloud, config(everything())).with_meter(meter.clone()),
    };
    let outcome = handler.step(deliver::rds_event(&s, "RDS-EVENT-0042"), deliver::record()).await.unwrap();
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(cloud.shared_with(&s.arn), vec![TARGET], "shared whatever the measurement");
    let events = cloud.take_published();
    let [event] = &events[..] else { panic!("one shared event: {events:?}") };
    let Step::Shared { source_data, .. } = &event.step else { panic!("{event:?}") };
    let asked = meter.asked.lock().unwrap().clone();
    (source_data.clone(), asked)
}

fn figures() -> tags::SourceFigures {
    tags::SourceFigures::checked(3, 1200, "0123456789abcdef").unwrap()
}

#[tokio::test]
async fn a_configured_source_database_is_measured_with_its_managed_secret_and_its_figures_shared() {
    let cloud = Cloud::new();
    cloud.add_resource(DbInstance, SOURCE, REGION, "db", None, &[]);
    let meter = FakeMeter { figures: Ok(figures()), asked: Default::default() };
    let (data, asked) = share_measured(&cloud, Some(r#"{"databases": [{"resources": "^db$"}]}"#), meter).await;
    let data = data.expect("the figures travel in the shared event");
    assert_eq!((data.tables, data.rows, data.table_digest.as_str()), (3, 1200, "0123456789abcdef"));
    assert_eq!(data.measured_at, cloud.now());
    let managed = format!("arn:aws:secretsmanager:{REGION}:{SOURCE}:secret:rds!db-db");
    assert_eq!(asked, [("db".to_string(), Some(managed), None)], "the database the snapshot is of, once");
    assert!(cloud.take_metrics().is_empty());
}

#[tokio::test]
async fn a_source_database_that_cannot_be_measured_is_shared_without_figures_and_counted() {
    let cloud = Cloud::new();
    cloud.add_resource(DbInstance, SOURCE, REGION, "db", None, &[]);
    let meter = FakeMeter { figures: Err("could not log in: no answer within 10 s".into()), asked: Default::default() };
    let (data, asked) = share_measured(&cloud, Some(r#"{"databases": [{"resources": ".*"}]}"#), meter).await;
    assert_eq!(data, None);
    assert_eq!(asked.len(), 1);
    assert_eq!(cloud.take_metrics(), ["SourceDataUnmeasured share-snapshot"]);
}

#[tokio::test]
async fn only_the_databases_source_data_checks_names_are_measured() {
    let secret = "arn:aws:secretsmanager:us-east-1:111111111111:secret:reader-AbCdEf";
    let cases = [
        // (case, SOURCE_DATA_CHECKS, the database exists, measured with the secret)
        ("not configured", None, true, None),
        ("another database", Some(r#"{"databases": [{"resources": "^orders$"}]}"#.to_string()), true, None),
        ("gone since its snapshot", Some(r#"{"databases": [{"resources": ".*"}]}"#.to_string()), false, None),
        (
            "a configured secret",
            Some(format!(r#"{{"databases": [{{"resources": "^db$", "secret": "{secret}"}}]}}"#)),
            true,
            Some(secret),
        ),
    ];
    for (name, checks, exists, measured) in cases {
        let cloud = Cloud::new();
        if exists {
            cloud.add_resource(DbInstance, SOURCE, REGION, "db", None, &[]);
        }
        let meter = FakeMeter { figures: Ok(figures()), asked: Default::default() };
        let (data, asked) = share_measured(&cloud, checks.as_deref(), meter).await;
        assert_eq!(data.is_some(), measured.is_some(), "{name}");
        let secrets: Vec<_> = asked.iter().map(|(_, _, configured)| configured.as_deref()).collect();
        assert_eq!(secrets, measured.map(Some).into_iter().collect::<Vec<_>>(), "{name}");
        assert!(cloud.take_metrics().is_empty(), "{name}: nothing failed");
    }
}

/// Two snapshots of one volume under one name: what a schedule delivered twice and handled
/// at once leaves (EC2 refuses no second snapshot of a name, as RDS does). The later one is
/// deleted and never shared, whichever is handled first and however often; the first is
/// shared, or re-encrypted first, as any other.
#[tokio::test]
async fn of_two_volume_snapshots_made_under_one_name_only_the_first_goes_on() {
    for key in [Key::Sharing, Key::Unencrypted] {
        let cloud = Cloud::new();
        let first = snapshot(&cloud, Ebs, "snap-b", key, true, false);
        cloud.advance(chrono::Duration::milliseconds(300));
        // Under the first's name, with an id that sorts before the first's: only the start
        // time decides.
        let later = Snapshot {
            id: "snap-a".into(),
            arn: format!("arn:aws:ec2:{REGION}:{SOURCE}:snapshot/snap-a"),
            created_at: Some(cloud.now()),
            ..first.clone()
        };
        cloud.put_snapshot(later.clone());
        let h = handler(&cloud, config(everything()));
        let created = |s: &Snapshot| {
            deliver::ebs_event(s, "createSnapshot", "succeeded", SOURCE, "arn:aws:ec2::us-east-1:volume/vol-1")
        };
        for s in [&later, &first, &later] {
            let outcome = h.step(created(s), deliver::record()).await.unwrap();
            if s.id == later.id {
                assert_eq!(outcome, Outcome::Done, "{key:?}: a duplicate is done with");
            }
        }
        let held: Vec<String> = cloud.snapshots(SOURCE, REGION).into_iter().map(|s| s.id).collect();
        assert!(!held.contains(&later.id), "{key:?}: the later one is deleted: {held:?}");
        assert!(cloud.shared_with(&later.arn).is_empty(), "{key:?}");
        match key {
            Key::Sharing => {
                assert_eq!(cloud.shared_with(&first.arn), vec![TARGET], "{key:?}");
                assert_eq!(shared_events(&cloud.take_published()), vec![(first.id.clone(), TARGET.to_string())]);
            }
            _ => {
                let copies: Vec<_> = cloud.snapshots(SOURCE, REGION).into_iter().filter(|s| s.id != first.id).collect();
                assert_eq!(copies.len(), 1, "{key:?}: one re-encrypting copy, of the first: {copies:?}");
                assert_eq!(
                    copies[0].name,
                    naming::shared_copy_id(&first.id, first.created_at),
                    "{key:?}: copied from the first"
                );
            }
        }
    }
}
