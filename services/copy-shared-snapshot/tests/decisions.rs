//! Every decision copy-shared-snapshot makes, on the in-memory cloud: whom it trusts,
//! what it filters, how it copies and learns a copy's end, extra regions, duplicates,
//! and each error class.

use snapferry::ResourceKind::{self, DbCluster, DbInstance};
use snapferry::config::Env;
use snapferry::copy::Slots;
use snapferry::error::Retry;
use snapferry::events::{PipelineEvent, RecheckWhat, SnapshotRef, Step};
use snapferry::inbound::Incoming;
use snapferry::ledger::{Claim, Pool, Taken};
use snapferry::lineage::{self, Lineage, Mark};
use snapferry::memory::{Cloud, deliver, step_env};
use snapferry::sqs::Outcome;
use snapferry::step::PipelineStep;
use snapferry::store::{Snapshot, Status};
use snapferry::{naming, tags};
use snapferry_copy_shared_snapshot::{Config, Handler, STEP};

const SOURCE: &str = "111111111111";
const TARGET: &str = "222222222222";
const STRANGER: &str = "333333333333";
const REGION: &str = "us-east-1";
const EXTRA: &str = "eu-west-1";
const SHARING_KEY: &str = "arn:aws:kms:us-east-1:111111111111:key/sharing";
const TARGET_KEY: &str = "arn:aws:kms:us-east-1:222222222222:key/backup";
const EXTRA_KEY: &str = "arn:aws:kms:eu-west-1:222222222222:key/backup";

fn config() -> Config {
    Config {
        step: step_env(),
        source_accounts: vec![SOURCE.into()],
        target_key: TARGET_KEY.into(),
        extra_regions: vec![],
        identifier_regex: None,
        description_regex: None,
        copy_slots: Slots::default(),
        copies_held: Default::default(),
        copies_in_flight: Default::default(),
        option_groups: Vec::new(),
    }
}

fn handler(cloud: &Cloud, config: Config) -> Handler {
    Handler::new(cloud.context(TARGET, REGION, config.step.clone()), config)
}

/// A snapshot `owner` shared with the backup account, and the "shared" event for it.
async fn shared(cloud: &Cloud, kind: ResourceKind, owner: &str, name: &str) -> (Snapshot, PipelineEvent) {
    let s = Snapshot {
        encrypted: true,
        kms_key_id: Some(SHARING_KEY.into()),
        ..cloud.snapshot(kind, owner, REGION, name, "db")
    };
    cloud.put_snapshot(s.clone());
    cloud.stores(owner, REGION).store(kind).share(&s, &[TARGET.to_string()]).await.unwrap();
    let source_tags = tags::Tags::from([
        ("team".to_string(), "shop".to_string()),
        ("Description".to_string(), "nightly".to_string()),
    ]);
    let event = PipelineEvent::new(
        "run-1",
        s.to_ref(),
        s.to_ref(),
        Step::Shared { target_account: TARGET.into(), tags: source_tags, set: None, source_data: None },
    );
    (s, event)
}

fn copies(cloud: &Cloud, region: &str) -> Vec<Snapshot> {
    cloud.snapshots(TARGET, region)
}

fn steps(events: &[PipelineEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.detail_type()).collect()
}

#[tokio::test]
async fn only_allowlisted_senders_and_owners_are_copied() {
    // (case, sending account in the envelope, owner of the snapshot, rejected because)
    let cases = [
        ("allowlisted sender and owner", Some(SOURCE), SOURCE, None),
        ("no sending account", None, SOURCE, Some("names no sending account")),
        ("a stranger sends", Some(STRANGER), SOURCE, Some("sender account 333333333333 is not in SOURCE_ACCOUNTS")),
        ("a stranger's snapshot", Some(SOURCE), STRANGER, Some("owned by 333333333333, not by the sending account")),
        (
            "the backup account itself sends",
            Some(TARGET),
            SOURCE,
            Some("sender account 222222222222 is not in SOURCE_ACCOUNTS"),
        ),
    ];
    for (name, sender, owner, rejected) in cases {
        let cloud = Cloud::new();
        let (_, event) = shared(&cloud, DbInstance, owner, "snap-1").await;
        let outcome =
            handler(&cloud, config()).step(deliver::pipeline(&event, sender), deliver::record()).await.unwrap();
        assert_eq!(
            matches!(outcome, Outcome::Later { .. }),
            rejected.is_none(),
            "{name}: a copy is waited for: {outcome:?}"
        );
        let events = cloud.take_published();
        match rejected {
            None => {
                assert_eq!(copies(&cloud, REGION).len(), 1, "{name}");
                assert_eq!(steps(&events), ["Snapshot Copy Started"], "{name}");
            }
            Some(why) => {
                assert!(copies(&cloud, REGION).is_empty(), "{name}: nothing is copied");
                let [PipelineEvent { step: Step::Rejected { reason, .. }, .. }] = &events[..] else {
                    panic!("{name}: {events:?}")
                };
                assert!(reason.contains(why), "{name}: {reason}");
            }
        }
    }
}

#[tokio::test]
async fn forged_events_are_checked_against_what_aws_describes() {
    const OTHER_SOURCE: &str = "444444444444";
    let allow_both = || Config { source_accounts: vec![SOURCE.into(), OTHER_SOURCE.into()], ..config() };
    // An allowlisted account relays a snapshot another allowlisted account owns: laundering.
    let cloud = Cloud::new();
    let (_, event) = shared(&cloud, DbInstance, OTHER_SOURCE, "snap-1").await;
    handler(&cloud, allow_both()).step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
    assert!(copies(&cloud, REGION).is_empty(), "relayed by another account");
    assert!(matches!(&cloud.take_published()[..], [PipelineEvent { step: Step::Rejected { .. }, .. }]));

    // EBS describes by the bare `snap-` id: a stranger's snapshot under an allowlisted ARN.
    let cloud = Cloud::new();
    let (real, mut event) = shared(&cloud, ResourceKind::Ebs, STRANGER, "snap-0123").await;
    event.snapshot.arn = real.arn.replace(STRANGER, SOURCE);
    event.snapshot.account = SOURCE.into();
    event.origin = event.snapshot.clone();
    handler(&cloud, config()).step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
    assert!(copies(&cloud, REGION).is_empty(), "the stranger's snapshot is not copied");
    let [PipelineEvent { step: Step::Rejected { reason, .. }, .. }] = &cloud.take_published()[..] else { panic!() };
    assert!(reason.contains("owned by 333333333333"), "{reason}");

    // The origin must be in the sending account too.
    let cloud = Cloud::new();
    let (_, mut event) = shared(&cloud, DbInstance, SOURCE, "snap-1").await;
    event.origin.account = OTHER_SOURCE.into();
    handler(&cloud, allow_both()).step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
    assert!(copies(&cloud, REGION).is_empty(), "an origin in another account");
}

#[tokio::test]
async fn the_copy_records_the_origin_aws_reports_and_names_what_it_copied() {
    const OTHER_SOURCE: &str = "444444444444";
    let allow_both = || Config { source_accounts: vec![SOURCE.into(), OTHER_SOURCE.into()], ..config() };
    // A source announces its own hand-made snapshot as a copy of another source's snapshot:
    // the copy's "Snapshot Copied" would go to that account, which would stop sharing it.
    let cloud = Cloud::new();
    let (_, mut event) = shared(&cloud, DbInstance, OTHER_SOURCE, "snap-1").await;
    let victim = cloud.snapshot(DbInstance, SOURCE, REGION, "snapferry-db-202612070100", "db");
    event.origin = SnapshotRef { account: OTHER_SOURCE.into(), ..victim.to_ref() };
    handler(&cloud, allow_both()).step(deliver::pipeline(&event, Some(OTHER_SOURCE)), deliver::record()).await.unwrap();
    assert!(copies(&cloud, REGION).is_empty(), "an origin whose ARN names another account is not copied");
    let [PipelineEvent { step: Step::Rejected { reason, .. }, .. }] = &cloud.take_published()[..] else { panic!() };
    assert!(reason.contains("not a db-instance snapshot of the sending account 444444444444"), "{reason}");

    // A source names a fresh resource for each snapshot (to escape retention and budgets):
    // the copy records the database AWS says the snapshot is of.
    let cloud = Cloud::new();
    let (s, mut event) = shared(&cloud, DbInstance, SOURCE, "snap-1").await;
    event.origin.resource_id = "fresh-0001".into();
    event.origin.account = SOURCE.into();
    let h = handler(&cloud, config());
    h.step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
    cloud.complete_all();
    let [copy]: [Snapshot; 1] = copies(&cloud, REGION).try_into().unwrap();
    assert_eq!(copy.tags.get(tags::ORIGIN_RESOURCE).map(String::as_str), Some("db"), "AWS's DBInstanceIdentifier");
    assert_eq!(copy.tags.get(tags::SOURCE_ACCOUNT).map(String::as_str), Some(SOURCE));
    // Its announcement names the snapshot AWS copied, the one the source may stop sharing.
    cloud.take_published();
    h.step(deliver::rds_event(&copy, "RDS-EVENT-0197"), deliver::record()).await.unwrap();
    let events = cloud.take_published();
    let [PipelineEvent { step: Step::Copied { copied_from }, origin, .. }] = &events[..] else { panic!("{events:?}") };
    assert_eq!(copied_from.as_deref(), Some(s.arn.as_str()));
    assert_eq!((origin.account.as_str(), origin.resource_id.as_str()), (SOURCE, "db"));
}

#[tokio::test]
async fn a_copy_in_progress_is_followed_by_one_chain_of_re_checks_only() {
    let cloud = Cloud::new();
    let (_, event) = shared(&cloud, DbCluster, SOURCE, "snap-1").await;
    let h = handler(&cloud, config());
    let first = h.step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
    assert!(matches!(first, Outcome::Later { .. }), "the handling that copies follows the copy: {first:?}");
    // A duplicate of the event (another message): the copy has its chain already. Two chains
    // would both make a failed copy again, one deleting what the other just made.
    let other = snapferry::sqs::Record { message_id: "m-2".into(), ..deliver::record() };
    let duplicate = h.step(deliver::pipeline(&event, Some(SOURCE)), other.clone()).await.unwrap();
    assert_eq!(duplicate, Outcome::Done);
    // Delivered again, it is still not the message whose handling follows the copy.
    let duplicate = h
        .step(deliver::pipeline(&event, Some(SOURCE)), snapferry::sqs::Record { receive_count: 2, ..other })
        .await
        .unwrap();
    assert_eq!(duplicate, Outcome::Done);
    // The same message delivered again (its first handling died before its re-check was
    // sent): it follows the copy, so no chain is lost.
    let redelivered = snapferry::sqs::Record { receive_count: 2, ..deliver::record() };
    let again = h.step(deliver::pipeline(&event, Some(SOURCE)), redelivered).await.unwrap();
    assert!(matches!(again, Outcome::Later { .. }), "{again:?}");
    // The same message sent again by snapferry (its handling was throttled after the copy
    // call, say): a new SQS id, its first id the holder's; it follows the copy too.
    let sent_again = snapferry::sqs::Record {
        message_id: "m-7".into(),
        attempt: 1,
        first_id: Some("m-1".into()),
        ..deliver::record()
    };
    let again = h.step(deliver::pipeline(&event, Some(SOURCE)), sent_again).await.unwrap();
    assert!(matches!(again, Outcome::Later { .. }), "{again:?}");
    assert_eq!(copies(&cloud, REGION).len(), 1);
}

#[tokio::test]
async fn a_lost_snapshot_copied_is_said_again_when_the_source_announces_its_share_again() {
    let cloud = Cloud::new();
    let (s, event) = shared(&cloud, DbInstance, SOURCE, "snap-1").await;
    let h = handler(&cloud, config());
    h.step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
    cloud.complete_all();
    let [copy]: [Snapshot; 1] = copies(&cloud, REGION).try_into().unwrap();
    h.step(deliver::rds_event(&copy, "RDS-EVENT-0197"), deliver::record()).await.unwrap();
    assert!(steps(&cloud.take_published()).contains(&"Snapshot Copied"));
    // That "Snapshot Copied" never reached the source, whose reconcile announces the share again.
    h.step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
    let events = cloud.take_published();
    let copied: Vec<_> = events.iter().filter(|e| matches!(e.step, Step::Copied { .. })).collect();
    let [again] = &copied[..] else { panic!("said again: {events:?}") };
    assert_eq!(again.step, Step::Copied { copied_from: Some(s.arn.clone()) });
    assert_eq!(copies(&cloud, REGION).len(), 1, "never copied again");
}

#[tokio::test]
async fn tags_from_the_source_are_data_not_state() {
    let cloud = Cloud::new();
    let (_, mut event) = shared(&cloud, DbInstance, SOURCE, "snap-1").await;
    let Step::Shared { tags: source_tags, .. } = &mut event.step else { unreachable!() };
    source_tags.insert(tags::VERIFIED_AT.into(), "2026-11-24T12:00:00Z".into());
    source_tags.insert(tags::CREATED_AT.into(), "2020-01-01T00:00:00Z".into());
    source_tags.insert(tags::STEP.into(), "create".into());
    source_tags.extend((0..60).map(|i| (format!("k{i:02}"), "v".to_string())));
    handler(&cloud, config()).step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
    let [copy]: [Snapshot; 1] = copies(&cloud, REGION).try_into().unwrap();
    assert!(!copy.tags.contains_key(tags::VERIFIED_AT), "a forged verified-at would skip the restore test");
    assert!(!copy.tags.contains_key(tags::CREATED_AT));
    assert_eq!(copy.tags.get(tags::STEP).map(String::as_str), Some("copy"), "our lineage wins");
    assert_eq!(copy.tags.len(), tags::MAX_TAGS - tags::LATER.len(), "as many of the source's as fit");
    assert_eq!(copy.tags.get("Description").map(String::as_str), Some("nightly"), "in key order");
    // Every tag a later step adds still fits in AWS's limit (the in-memory store refuses a
    // 51st, as RDS and EC2 do): announced, restore-tested, verified, reconciled, released.
    let store = cloud.stores(TARGET, REGION).store(DbInstance);
    let at = cloud.now();
    for mark in [Mark::Copied, Mark::RestoreTested, Mark::RestoreFailed, Mark::Reconciled, Mark::Released] {
        store.tag(&copy, &lineage::stamp(mark, at)).await.unwrap_or_else(|e| panic!("{mark:?}: {e}"));
    }
    store.tag(&copy, &lineage::verified(at, 300.0, Some(60.0), None)).await.unwrap();
    let again = lineage::made_again(&Lineage::of(&store.describe(&copy.id).await.unwrap().unwrap()), at);
    assert!(again.len() <= tags::MAX_TAGS, "a copy made again fits too: {}", again.len());
}

#[tokio::test]
async fn the_sources_figures_are_kept_as_one_tag_only_when_plausible() {
    let measured_at = "2026-11-27T12:00:00Z".parse().unwrap();
    let figures = |tables, rows, digest: &str| {
        Box::new(snapferry::events::SourceData { tables, rows, table_digest: digest.into(), measured_at })
    };
    let cases = [
        (
            "plausible",
            Some(figures(12, 34_567, "0123456789abcdef")),
            Some("tables=12 rows=34567 digest=0123456789abcdef"),
        ),
        ("none sent", None, None),
        ("a digest that is not hex", Some(figures(12, 1, "snapferry:manage")), None),
        ("a digest of another length", Some(figures(12, 1, "0123")), None),
        ("a digest with a space and more fields", Some(figures(1, 1, "0 rows=9 x=abcd")), None),
        ("too many tables", Some(figures(tags::MAX_SOURCE_TABLES + 1, 1, "0123456789abcdef")), None),
        ("too many rows", Some(figures(1, u64::MAX, "0123456789abcdef")), None),
    ];
    for (name, sent, kept) in cases {
        let cloud = Cloud::new();
        let (_, mut event) = shared(&cloud, DbInstance, SOURCE, "snap-1").await;
        let Step::Shared { source_data, .. } = &mut event.step else { unreachable!() };
        *source_data = sent;
        handler(&cloud, config()).step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
        let [copy]: [Snapshot; 1] = copies(&cloud, REGION).try_into().unwrap_or_else(|_| panic!("{name}: one copy"));
        assert_eq!(copy.tags.get(tags::SOURCE_DATA).map(String::as_str), kept, "{name}");
        assert_eq!(
            tags::SourceFigures::from_tags(&copy.tags).is_some(),
            kept.is_some(),
            "{name}: the restore reads it back"
        );
    }
}

#[tokio::test]
async fn the_sources_figures_travel_to_extra_region_copies() {
    let cloud = Cloud::new();
    let (_, mut event) = shared(&cloud, DbInstance, SOURCE, "snap-1").await;
    let Step::Shared { source_data, .. } = &mut event.step else { unreachable!() };
    *source_data = Some(Box::new(snapferry::events::SourceData {
        tables: 2,
        rows: 53,
        table_digest: "0123456789abcdef".into(),
        measured_at: "2026-11-27T12:00:00Z".parse().unwrap(),
    }));
    let h = handler(&cloud, Config { extra_regions: vec![(EXTRA.into(), EXTRA_KEY.into())], ..config() });
    h.step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
    cloud.complete_all();
    let [home]: [Snapshot; 1] = copies(&cloud, REGION).try_into().unwrap();
    h.step(deliver::rds_event(&home, "RDS-EVENT-0197"), deliver::record()).await.unwrap();
    let [to_region] = &cloud.take_sent()[..] else { panic!("one copy to the extra region") };
    h.step(deliver::body(&to_region.body), deliver::record()).await.unwrap();
    let [extra]: [Snapshot; 1] = copies(&cloud, EXTRA).try_into().expect("one extra-region copy");
    let value = Some("tables=2 rows=53 digest=0123456789abcdef");
    assert_eq!(home.tags.get(tags::SOURCE_DATA).map(String::as_str), value);
    assert_eq!(extra.tags.get(tags::SOURCE_DATA).map(String::as_str), value, "kept with the other lineage tags");
}

#[tokio::test]
async fn identifier_regex_matches_the_snapshot_name_not_the_arn_it_is_shared_under() {
    let cloud = Cloud::new();
    let (_, event) = shared(&cloud, DbInstance, SOURCE, "snap-1").await;
    let c = Config { identifier_regex: Some(regex::Regex::new("^snap-").unwrap()), ..config() };
    handler(&cloud, c).step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
    assert_eq!(copies(&cloud, REGION).len(), 1);
}

#[tokio::test]
async fn a_snapshot_name_deleted_and_used_again_is_copied_again() {
    let cloud = Cloud::new();
    let h = handler(&cloud, config());
    let (first, event) = shared(&cloud, DbInstance, SOURCE, "snap-1").await;
    h.step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
    cloud.stores(SOURCE, REGION).store(DbInstance).delete(&first).await.unwrap();
    cloud.advance(chrono::Duration::days(1));
    let (_, event) = shared(&cloud, DbInstance, SOURCE, "snap-1").await;
    h.step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
    assert_eq!(copies(&cloud, REGION).len(), 2, "the new snapshot of the same name has its own copy");
}

#[tokio::test]
async fn the_copy_is_ours_on_our_key_with_the_lineage() {
    let cloud = Cloud::new();
    let (s, event) = shared(&cloud, DbInstance, SOURCE, "snap-1").await;
    handler(&cloud, config()).step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
    let [copy]: [Snapshot; 1] = copies(&cloud, REGION).try_into().unwrap();
    assert_eq!(copy.name, naming::target_copy_id(&s.arn, s.created_at));
    assert_eq!(copy.kms_key_id.as_deref(), Some(TARGET_KEY), "KmsKeyId is always set");
    assert_eq!(copy.tags.get("team").map(String::as_str), Some("shop"), "the source's tags travel");
    let lineage = tags::lineage_of(&copy.tags).unwrap();
    assert_eq!(
        (lineage.step.as_str(), lineage.source_arn.as_str(), lineage.correlation_id.as_str()),
        ("copy", s.arn.as_str(), "run-1")
    );
    assert_eq!(tags::origin_from_tags(DbInstance, &copy.tags).map(|o| o.arn), Some(s.arn.clone()));
}

#[tokio::test]
async fn events_for_other_accounts_filters_and_duplicates() {
    let cloud = Cloud::new();
    let (_, event) = shared(&cloud, DbInstance, SOURCE, "snap-1").await;
    let h = handler(&cloud, config());
    let elsewhere = PipelineEvent {
        step: Step::Shared { target_account: STRANGER.into(), tags: Default::default(), set: None, source_data: None },
        ..event.clone()
    };
    assert_eq!(h.step(deliver::pipeline(&elsewhere, Some(SOURCE)), deliver::record()).await.unwrap(), Outcome::Done);
    assert!(copies(&cloud, REGION).is_empty(), "an event for another backup account");

    // (case, IDENTIFIER_REGEX, DESCRIPTION_REGEX, copied)
    let cases = [
        ("identifier matches", Some("^snap-"), None, true),
        ("identifier does not match", Some("^prod-"), None, false),
        ("description matches, DLM style", None, Some("^night"), true),
        ("description does not match", None, Some("^weekly"), false),
    ];
    for (name, id_re, desc_re, copied) in cases {
        let cloud = Cloud::new();
        let (_, event) = shared(&cloud, DbInstance, SOURCE, "snap-1").await;
        let c = Config {
            identifier_regex: id_re.map(|r| regex::Regex::new(r).unwrap()),
            description_regex: desc_re.map(|r| regex::Regex::new(r).unwrap()),
            ..config()
        };
        handler(&cloud, c).step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
        assert_eq!(copies(&cloud, REGION).len(), usize::from(copied), "{name}");
    }

    for _ in 0..3 {
        h.step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
    }
    assert_eq!(copies(&cloud, REGION).len(), 1, "duplicate events make one copy");
}

#[tokio::test]
async fn how_the_end_of_a_copy_is_learned() {
    // (kind, re-check delay: where RDS announces the end, the re-check only backs it up)
    for (kind, delay) in [(DbInstance, 300), (DbCluster, 30)] {
        let cloud = Cloud::new();
        let (_, event) = shared(&cloud, kind, SOURCE, "snap-1").await;
        let h = handler(&cloud, config());
        let outcome = h.step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
        cloud.take_published();
        let Outcome::Later { body, delay: d } = outcome else {
            panic!("{kind}: every copy is re-checked: {outcome:?}")
        };
        assert_eq!(d, std::time::Duration::from_secs(delay), "{kind}");
        // Still copying: the re-check comes back later again.
        let again = h.step(deliver::body(&body), deliver::record()).await.unwrap();
        assert!(matches!(again, Outcome::Later { .. }), "{kind}: {again:?}");
        cloud.complete_all();
        let [copy]: [Snapshot; 1] = copies(&cloud, REGION).try_into().unwrap();
        if kind == DbInstance {
            // The event comes first; the re-check behind it then finds it announced.
            h.step(deliver::rds_event(&copy, "RDS-EVENT-0197"), deliver::record()).await.unwrap();
        }
        assert_eq!(h.step(deliver::body(&body), deliver::record()).await.unwrap(), Outcome::Done);
        let events = cloud.take_published();
        assert_eq!(steps(&events), ["Snapshot Copied"], "{kind}: announced once");
        assert_eq!((events[0].snapshot.id.as_str(), events[0].origin.account.as_str()), (copy.id.as_str(), SOURCE));
    }
}

#[tokio::test]
async fn a_lost_copy_finished_event_is_covered_by_the_re_check() {
    let cloud = Cloud::new();
    let (_, event) = shared(&cloud, DbInstance, SOURCE, "snap-1").await;
    let h = handler(&cloud, config());
    let Outcome::Later { body, .. } = h.step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap()
    else {
        panic!("a DB instance copy is re-checked too")
    };
    cloud.take_published();
    cloud.complete_all();
    // RDS-EVENT-0197 never arrives.
    h.step(deliver::body(&body), deliver::record()).await.unwrap();
    assert_eq!(steps(&cloud.take_published()), ["Snapshot Copied"]);
    // A failed copy whose event was lost too is found by the same re-check, not waited for forever.
    let cloud = Cloud::new();
    let (_, event) = shared(&cloud, DbInstance, SOURCE, "snap-1").await;
    let Outcome::Later { body, .. } =
        handler(&cloud, config()).step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap()
    else {
        panic!()
    };
    let [copy]: [Snapshot; 1] = copies(&cloud, REGION).try_into().unwrap();
    cloud.set_status(&copy.arn, Status::Failed("failed".into()));
    let again = handler(&cloud, config()).step(deliver::body(&body), deliver::record()).await.unwrap();
    assert!(matches!(again, Outcome::Later { .. }), "made again and waited for: {again:?}");
    let [copy]: [Snapshot; 1] = copies(&cloud, REGION).try_into().unwrap();
    assert_eq!(copy.tags.get(tags::COPY_ATTEMPT).map(String::as_str), Some("2"));
}

#[tokio::test]
async fn a_wait_that_never_ends_is_reported() {
    let cloud = Cloud::new();
    let (_, event) = shared(&cloud, DbCluster, SOURCE, "snap-1").await;
    let h = handler(&cloud, Config { step: snapferry::step::StepEnv { max_rechecks: 3, ..step_env() }, ..config() });
    let mut outcome = h.step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await;
    let mut rechecks = 0;
    while let Ok(Outcome::Later { body, .. }) = outcome {
        rechecks += 1;
        outcome = h.step(deliver::body(&body), deliver::record()).await;
    }
    let err = outcome.unwrap_err();
    assert_eq!((err.retry(), err.code()), (None, "StillInProgress"), "{err}");
    assert_eq!(rechecks, 3, "MAX_RECHECKS re-checks, then the DLQ");
}

#[tokio::test]
async fn extra_regions_are_copied_from_the_home_copy_each_on_its_own() {
    const THIRD: &str = "ap-southeast-2";
    let cloud = Cloud::new();
    let (_, event) = shared(&cloud, DbInstance, SOURCE, "snap-1").await;
    let regions =
        vec![(EXTRA.into(), EXTRA_KEY.into()), (THIRD.into(), "arn:aws:kms:ap-southeast-2:222222222222:key/b".into())];
    let h = handler(&cloud, Config { extra_regions: regions, ..config() });
    h.step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
    cloud.complete_all();
    let [home]: [Snapshot; 1] = copies(&cloud, REGION).try_into().unwrap();
    // The home copy is announced, and each extra region's copy started at once, each on its
    // own: one region refuses (its key), the other is copied all the same.
    cloud.fail("copy", "KMSKeyNotAccessibleFault", 1);
    h.step(deliver::rds_event(&home, "RDS-EVENT-0197"), deliver::record()).await.unwrap();
    let events = cloud.take_published();
    assert_eq!(steps(&events), ["Snapshot Copy Started", "Snapshot Copied", "Snapshot Copy Started"]);
    assert_eq!(events[2].snapshot.region, THIRD);
    assert!(copies(&cloud, EXTRA).is_empty());
    let [third]: [Snapshot; 1] = copies(&cloud, THIRD).try_into().unwrap();
    assert_eq!(
        third.kms_key_id.as_deref(),
        Some("arn:aws:kms:ap-southeast-2:222222222222:key/b"),
        "the region's own key"
    );
    assert_eq!(third.name, home.name, "the same deterministic name in every region");
    // What goes on later is a message of its own: the refused region's copy, at once, and
    // the re-check of the copy started.
    let sent = cloud.take_sent();
    let what: Vec<(String, bool)> = sent
        .iter()
        .map(|m| match deliver::body(&m.body) {
            Incoming::Recheck(r) => match r.detail.what {
                RecheckWhat::CopyToRegion { destination_region, .. } => (destination_region, m.delay.is_zero()),
                RecheckWhat::CopyWhenAvailable { destination_region, .. } => {
                    (format!("re-check {destination_region}"), m.delay.is_zero())
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(what, [(EXTRA.to_string(), true), (format!("re-check {THIRD}"), false)]);
    // Refused for good: this region's message goes to the DLQ with its reason.
    cloud.fail("copy", "KMSKeyNotAccessibleFault", 1);
    let err = h.step(deliver::body(&sent[0].body), deliver::record()).await.unwrap_err();
    assert_eq!(err.code(), "KMSKeyNotAccessibleFault", "this region's message goes to the DLQ with its reason");
    assert!(copies(&cloud, EXTRA).is_empty());
    assert!(cloud.take_published().is_empty());
    // The regional copy is re-checked, announced once available, and fans out no further.
    cloud.complete_all();
    h.step(deliver::body(&sent[1].body), deliver::record()).await.unwrap();
    let events = cloud.take_published();
    assert_eq!(steps(&events), ["Snapshot Copied"]);
    assert_eq!(events[0].snapshot.region, THIRD);
    assert!(cloud.take_sent().is_empty());
}

#[tokio::test]
async fn a_db_snapshot_of_its_own_option_group_goes_to_an_extra_region_only_where_the_group_is_mapped() {
    use snapferry_copy_shared_snapshot::OptionGroupMapping;
    // (case, the snapshot's option group, mapped in EXTRA, the extra copy's option group)
    let cases = [
        ("the engine's default", "default:postgres-16", false, Some("default:postgres-16")),
        ("a group mapped there", "orders-tz", true, Some("orders-tz-dr")),
        ("a group not mapped there", "orders-tz", false, None),
    ];
    for (case, group, mapped, expected) in cases {
        let cloud = Cloud::new();
        let s = Snapshot {
            encrypted: true,
            kms_key_id: Some(SHARING_KEY.into()),
            option_group: Some(group.into()),
            ..cloud.snapshot(DbInstance, SOURCE, REGION, "snap-1", "db")
        };
        cloud.put_snapshot(s.clone());
        cloud.stores(SOURCE, REGION).store(DbInstance).share(&s, &[TARGET.to_string()]).await.unwrap();
        let step =
            Step::Shared { target_account: TARGET.into(), tags: Default::default(), set: None, source_data: None };
        let event = PipelineEvent::new("run-1", s.to_ref(), s.to_ref(), step);
        let option_groups = if mapped {
            vec![OptionGroupMapping { region: EXTRA.into(), source: group.into(), destination: "orders-tz-dr".into() }]
        } else {
            Vec::new()
        };
        let config = Config { extra_regions: vec![(EXTRA.into(), EXTRA_KEY.into())], option_groups, ..config() };
        let h = handler(&cloud, config);
        h.step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
        cloud.complete_all();
        let [home]: [Snapshot; 1] = copies(&cloud, REGION).try_into().unwrap();
        assert_eq!(home.option_group.as_deref(), Some(group), "{case}: the home copy keeps its group");
        cloud.take_published();
        h.step(deliver::rds_event(&home, "RDS-EVENT-0197"), deliver::record()).await.unwrap();
        let events = cloud.take_published();
        match expected {
            Some(there) => {
                let [extra]: [Snapshot; 1] = copies(&cloud, EXTRA).try_into().unwrap();
                assert_eq!(extra.option_group.as_deref(), Some(there), "{case}");
                assert!(!events.iter().any(|e| matches!(e.step, Step::Rejected { .. })), "{case}: {events:?}");
            }
            None => {
                // Rejected before AWS is asked, naming the mapping to add; the region's own
                // message goes to the DLQ with that reason, to replay once it is added.
                assert!(copies(&cloud, EXTRA).is_empty(), "{case}");
                let reason = events
                    .iter()
                    .find_map(|e| match &e.step {
                        Step::Rejected { reason, .. } => Some(reason.clone()),
                        _ => None,
                    })
                    .unwrap_or_else(|| panic!("{case}: not rejected: {events:?}"));
                assert!(reason.contains("OPTION_GROUPS") && reason.contains("eu-west-1:orders-tz="), "{reason}");
                let sent = cloud.take_sent();
                let region_message = sent.iter().find(|m| m.delay.is_zero()).expect("the region's message");
                let err = h.step(deliver::body(&region_message.body), deliver::record()).await.unwrap_err();
                assert!(matches!(err, snapferry::Error::Rejected(_)), "{case}: {err}");
                assert!(copies(&cloud, EXTRA).is_empty(), "{case}");
            }
        }
    }
}

#[tokio::test]
async fn a_failed_copy_is_made_again_a_bounded_number_of_times_then_reported() {
    let cloud = Cloud::new();
    let (shared_snapshot, event) = shared(&cloud, DbCluster, SOURCE, "snap-1").await;
    let h = handler(&cloud, config());
    let Outcome::Later { body, .. } = h.step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap()
    else {
        panic!()
    };
    cloud.take_published();
    // Attempts 1 and 2 fail (found by the re-check, then by RDS-EVENT-0190): each is made again.
    let mut body = body;
    for attempt in 1..snapferry::copy::MAX_COPY_ATTEMPTS {
        let [copy]: [Snapshot; 1] = copies(&cloud, REGION).try_into().unwrap();
        assert_eq!(copy.tags.get(tags::COPY_ATTEMPT).map(String::as_str).unwrap_or("1"), attempt.to_string());
        assert_eq!(copy.tags.get(tags::COPIED_FROM), Some(&shared_snapshot.arn), "where to copy it from again");
        cloud.set_status(&copy.arn, Status::Failed("canceled".into()));
        if attempt == 1 {
            let Outcome::Later { body: next, .. } = h.step(deliver::body(&body), deliver::record()).await.unwrap()
            else {
                panic!("made again and re-checked")
            };
            body = next;
        } else {
            // The event makes it sooner; the chain already waiting goes on (no second chain).
            let out = h.step(deliver::rds_event(&copy, "RDS-EVENT-0190"), deliver::record()).await.unwrap();
            assert_eq!(out, Outcome::Done);
        }
        assert_eq!(steps(&cloud.take_published()), ["Snapshot Copy Started"]);
        let [again]: [Snapshot; 1] = copies(&cloud, REGION).try_into().unwrap();
        assert_eq!((again.name.as_str(), again.status.clone()), (copy.name.as_str(), Status::Creating));
    }
    // The last attempt fails too: reported with AWS's reason, dead-lettered, the copy kept for a look.
    let [copy]: [Snapshot; 1] = copies(&cloud, REGION).try_into().unwrap();
    cloud.set_status(&copy.arn, Status::Failed("canceled".into()));
    // The event of the last failure leaves the report to the chain: reported once.
    let out = h.step(deliver::rds_event(&copy, "RDS-EVENT-0190"), deliver::record()).await.unwrap();
    assert_eq!(out, Outcome::Done);
    assert!(cloud.take_published().is_empty());
    let err = h.step(deliver::body(&body), deliver::record()).await.unwrap_err();
    assert_eq!((err.retry(), err.code()), (None, "CopyFailed"), "{err}");
    assert!(err.to_string().contains("failed 3 times"), "{err}");
    let [PipelineEvent { step: Step::Rejected { reason, .. }, origin, .. }] = &cloud.take_published()[..] else {
        panic!()
    };
    assert!(reason.contains("canceled"), "{reason}");
    assert_eq!(origin.arn, event.origin.arn);
    assert_eq!(copies(&cloud, REGION).len(), 1);
    // A copy that vanished is an error of its own.
    cloud.stores(TARGET, REGION).store(DbCluster).delete(&copy).await.unwrap();
    let err = h.step(deliver::body(&body), deliver::record()).await.unwrap_err();
    assert_eq!(err.code(), "NotFound", "{err}");
}

#[tokio::test]
async fn native_copy_events_of_snapshots_that_are_not_our_copies_are_ignored() {
    let cloud = Cloud::new();
    let theirs = cloud.snapshot(DbInstance, TARGET, REGION, "manual-copy", "db");
    cloud.put_snapshot(theirs.clone());
    let out = handler(&cloud, config()).step(deliver::rds_event(&theirs, "RDS-EVENT-0197"), deliver::record()).await;
    assert_eq!(out.unwrap(), Outcome::Done);
    assert!(cloud.take_published().is_empty());
}

#[tokio::test]
async fn aws_errors_end_as_their_class_says() {
    // (operation, AWS code, class: None is permanent)
    let cases = [
        ("copy", "SnapshotQuotaExceeded", Some(Retry::QuotaExceeded)),
        ("copy", "Throttling", Some(Retry::Throttled)),
        ("copy", "KMSKeyNotAccessibleFault", None),
        ("copy", "AccessDenied", None),
        ("describe", "InternalFailure", Some(Retry::Transient)),
    ];
    for (op, code, class) in cases {
        let cloud = Cloud::new();
        let (_, event) = shared(&cloud, DbInstance, SOURCE, "snap-1").await;
        cloud.fail(op, code, 1);
        let err = handler(&cloud, config())
            .step(deliver::pipeline(&event, Some(SOURCE)), deliver::record())
            .await
            .unwrap_err();
        // A refusal for copies in progress is timed, as a full slot is.
        let expected = if code == "SnapshotQuotaExceeded" { "CopySlotsFull" } else { code };
        assert_eq!((err.retry(), err.code()), (class, expected), "{op}: {err}");
    }
    // The copies-in-progress quota as the store reports it: come back later, never the DLQ.
    let cloud = Cloud::new();
    cloud.set_copy_quota(0);
    let (_, event) = shared(&cloud, DbCluster, SOURCE, "snap-1").await;
    let err =
        handler(&cloud, config()).step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap_err();
    assert_eq!(err.retry(), Some(Retry::QuotaExceeded), "{err}");
    // Shared but not visible yet (propagation): not ready, retried.
    let cloud = Cloud::new();
    let s = cloud.snapshot(DbInstance, SOURCE, REGION, "unshared", "db");
    let event = PipelineEvent::new(
        "r",
        s.to_ref(),
        s.to_ref(),
        Step::Shared { target_account: TARGET.into(), tags: Default::default(), set: None, source_data: None },
    );
    let err =
        handler(&cloud, config()).step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap_err();
    assert_eq!(err.retry(), Some(Retry::NotReady), "{err}");
}

#[tokio::test]
async fn other_messages_are_refused_as_bad_input() {
    let cloud = Cloud::new();
    let r = snapferry::events::BackupRequest::new(None, vec![]);
    let err =
        handler(&cloud, config()).step(deliver::backup_requested(r, cloud.now()), deliver::record()).await.unwrap_err();
    assert_eq!(err.code(), "BadInput");
}

#[test]
fn config_comes_from_the_declared_environment() {
    let vars = [("QUEUE_URL", "q"), ("DLQ_URL", "d"), ("SOURCE_ACCOUNTS", SOURCE), ("TARGET_KMS_KEY_ARN", TARGET_KEY)];
    let env = Env::from_pairs(STEP, vars).unwrap();
    Config::from_env(&env).unwrap();
    assert!(env.unread().is_empty(), "every declared variable is read: {:?}", env.unread());
}

#[tokio::test]
async fn a_full_snapshot_count_is_reported_at_once_and_a_wait_for_copy_slots_is_bounded() {
    use snapferry::sqs::BatchHandler;
    // The manual snapshot count at its quota never clears by itself: reported at once
    // (event and the alarm's metric), dead-lettered with the figures, never re-sent.
    let cloud = Cloud::new();
    cloud.set_manual_quota(0);
    let (_, event) = shared(&cloud, DbInstance, SOURCE, "snap-1").await;
    let h = handler(&cloud, config());
    h.handle(deliver::batch(&[&deliver::pipeline_body(&event, Some(SOURCE))])).await;
    let [PipelineEvent { step: Step::Rejected { reason, .. }, snapshot, .. }] = &cloud.take_published()[..] else {
        panic!()
    };
    assert!(reason.contains("manual snapshots used"), "{reason}");
    assert_eq!(snapshot.arn, event.snapshot.arn);
    assert_eq!(cloud.take_metrics(), ["SnapshotQuotaFull copy-shared-snapshot"]);
    let dead = cloud.take_dead_letters();
    assert!(matches!(&dead[..], [(_, why)] if why.contains(snapferry::error::QUOTA_FULL)), "{dead:?}");
    assert!(cloud.take_sent().is_empty(), "not re-sent");

    // Copy slots (copies in progress) clear as copies finish: waited for with backoff, the
    // wait's start travelling with the message, until QUOTA_WAIT_HOURS have passed.
    let cloud = Cloud::new();
    cloud.set_copy_quota(0);
    let (_, event) = shared(&cloud, DbInstance, SOURCE, "snap-1").await;
    let h = handler(&cloud, config());
    h.handle(deliver::batch(&[&deliver::pipeline_body(&event, Some(SOURCE))])).await;
    let [first] = &cloud.take_sent()[..] else { panic!("re-sent once") };
    let started = first.waiting_since.expect("the wait's start is recorded");
    cloud.advance(chrono::Duration::hours(23));
    h.handle(deliver::redelivered(first)).await;
    let [second] = &cloud.take_sent()[..] else { panic!("still waiting after 23 h") };
    assert_eq!((second.waiting_since, second.attempt), (Some(started), 2), "one wait, one counter");
    assert!(cloud.take_published().is_empty() && cloud.take_dead_letters().is_empty());
    cloud.advance(chrono::Duration::hours(2));
    h.handle(deliver::redelivered(second)).await;
    assert!(cloud.take_sent().is_empty(), "the wait is over after 24 h");
    let dead = cloud.take_dead_letters();
    assert!(matches!(&dead[..], [(_, why)] if why.contains("QuotaWaitExceeded")), "{dead:?}");
    let [PipelineEvent { step: Step::Rejected { reason, .. }, .. }] = &cloud.take_published()[..] else { panic!() };
    assert!(reason.contains("copies in progress stayed at the quota"), "{reason}");
    assert!(copies(&cloud, REGION).is_empty());
}

#[tokio::test]
async fn aws_share_notification_is_checked_like_the_pipelines_event_and_makes_one_copy() {
    use snapferry::ResourceKind::Ebs;
    // (case, owner of the snapshot, sharing account AWS names, pipeline event first, copied)
    let cases = [
        ("allowlisted owner", SOURCE, SOURCE, false, true),
        ("after the pipeline's event", SOURCE, SOURCE, true, true),
        ("a stranger shares", STRANGER, STRANGER, false, false),
        ("a stranger named as an allowlisted sharer", STRANGER, SOURCE, false, false),
    ];
    for (name, owner, sharer, pipeline_first, copied) in cases {
        let cloud = Cloud::new();
        let (s, event) = shared(&cloud, Ebs, owner, "snap-0a1").await;
        if pipeline_first {
            handler(&cloud, config()).step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
        }
        let notification = deliver::ebs_event(&s, "shareSnapshot", "succeeded", TARGET, sharer);
        handler(&cloud, config()).step(notification, deliver::record()).await.unwrap();
        let events = cloud.take_published();
        assert_eq!(copies(&cloud, REGION).len(), usize::from(copied), "{name}: one copy or none: {events:?}");
        let rejected = events.iter().any(|e| matches!(e.step, Step::Rejected { .. }));
        assert_eq!(rejected, !copied, "{name}: {events:?}");
    }
}

#[tokio::test]
async fn a_message_about_a_share_whose_slot_another_handling_holds_makes_no_second_copy() {
    use snapferry::ResourceKind::Ebs;
    let cloud = Cloud::new();
    let (s, event) = shared(&cloud, Ebs, SOURCE, "snap-0a1").await;
    // The pipeline's event took the copy's slot and has not copied yet (its copy call backs
    // off after a throttle, say). EBS has no name to refuse a second copy by.
    let copy = naming::target_copy_id(&s.arn, s.created_at);
    let claim =
        Claim { copy: &copy, source: SOURCE, by: "m-event", slots: 5, held: None, in_flight: None, now: cloud.now() };
    assert_eq!(cloud.ledger(TARGET).take(&Pool::new(Ebs, REGION), &claim).await.unwrap(), Taken::Slot);
    // AWS's notification meanwhile: that handling makes the copy, this one none, and comes
    // back later.
    let notification = || deliver::ebs_event(&s, "shareSnapshot", "succeeded", TARGET, SOURCE);
    let err = handler(&cloud, config()).step(notification(), deliver::record()).await.unwrap_err();
    assert_eq!((err.retry(), err.code()), (Some(Retry::NotReady), "CopyHeldElsewhere"), "{err}");
    assert!(copies(&cloud, REGION).is_empty(), "no copy made beside the slot's holder");
    // The holder's own message, redelivered (its first handling died): it makes the copy.
    let redelivered = snapferry::sqs::Record { message_id: "m-event".into(), receive_count: 2, ..deliver::record() };
    let made = handler(&cloud, config()).step(deliver::pipeline(&event, Some(SOURCE)), redelivered).await.unwrap();
    assert!(matches!(made, Outcome::Later { .. }), "it follows its copy: {made:?}");
    // The notification back: the copy is made, and followed by its holder's chain only.
    let again = snapferry::sqs::Record { receive_count: 2, ..deliver::record() };
    let back = handler(&cloud, config()).step(notification(), again).await.unwrap();
    assert_eq!(back, Outcome::Done);
    assert_eq!(copies(&cloud, REGION).len(), 1);
}

#[tokio::test]
async fn an_archived_or_failed_shared_snapshot_is_rejected_with_its_reason_not_retried() {
    let cloud = Cloud::new();
    let (s, event) = shared(&cloud, snapferry::ResourceKind::Ebs, SOURCE, "snap-0a2").await;
    cloud.set_status(&s.arn, Status::Failed(snapferry::store::ebs::ARCHIVED.into()));
    let outcome = handler(&cloud, config()).step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await;
    assert!(matches!(outcome, Ok(Outcome::Done)), "{outcome:?}");
    assert!(copies(&cloud, REGION).is_empty());
    let events = cloud.take_published();
    let [PipelineEvent { step: Step::Rejected { reason, .. }, .. }] = &events[..] else { panic!("{events:?}") };
    assert!(reason.contains("archived"), "{reason}");
}

#[tokio::test]
async fn an_ebs_snapshot_is_filtered_by_its_own_description_as_dlm_does() {
    // (description AWS reports, copied by DESCRIPTION_REGEX=^snapferry backup )
    let filter = regex::Regex::new("^snapferry backup ").unwrap();
    for (description, copied) in [(Some("snapferry backup snapferry-vol-1-x"), true), (Some("made by hand"), false)] {
        let cloud = Cloud::new();
        let (s, event) = shared(&cloud, snapferry::ResourceKind::Ebs, SOURCE, "snap-0d1").await;
        // The source's `Description` tag ("nightly") does not count where AWS has a description.
        let described = Snapshot { description: description.map(str::to_string), ..s };
        cloud.put_snapshot(described.clone());
        let store = cloud.stores(SOURCE, REGION).store(snapferry::ResourceKind::Ebs);
        store.share(&described, &[TARGET.to_string()]).await.unwrap();
        let c = Config { description_regex: Some(filter.clone()), ..config() };
        handler(&cloud, c).step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
        assert_eq!(copies(&cloud, REGION).len(), usize::from(copied), "{description:?}");
    }
}

/// `n` copies of ours (of another source, [`STRANGER`]: they count for no source of the
/// test) into `region` of the backup account, in progress, each started at `started`: in
/// AWS and holding their slots in the copy ledger.
async fn ours_in_progress(
    cloud: &Cloud,
    kind: ResourceKind,
    region: &str,
    n: usize,
    started: chrono::DateTime<chrono::Utc>,
) {
    let pool = Pool::new(kind, region);
    for i in 0..n {
        let name = format!("other-copy-{i}");
        cloud.put_snapshot(Snapshot {
            status: Status::Creating,
            created_at: Some(started),
            ..cloud.snapshot(kind, TARGET, region, &name, "db")
        });
        let claim = Claim {
            copy: &name,
            source: STRANGER,
            by: "other-tool",
            slots: n,
            held: None,
            in_flight: None,
            now: started,
        };
        assert_eq!(cloud.ledger(TARGET).take(&pool, &claim).await.unwrap(), Taken::Slot);
    }
}

/// `n` copies of ours into the home region in progress, each started `age` seconds ago.
async fn copies_in_progress(cloud: &Cloud, kind: ResourceKind, n: usize, age: i64) {
    ours_in_progress(cloud, kind, REGION, n, cloud.now() - chrono::Duration::seconds(age)).await;
}

/// `n` copies of other tools in progress into the home region (in AWS only), started now.
fn others_in_progress(cloud: &Cloud, kind: ResourceKind, n: usize) {
    for i in 0..n {
        cloud.put_snapshot(Snapshot {
            status: Status::Creating,
            created_at: Some(cloud.now()),
            ..cloud.snapshot(kind, TARGET, REGION, &format!("their-copy-{i}"), "db")
        });
    }
}

#[tokio::test]
async fn with_every_copy_slot_taken_the_step_waits_for_one_without_asking_aws() {
    let cloud = Cloud::new();
    let (_, event) = shared(&cloud, DbCluster, SOURCE, "snap-1").await;
    // Aurora's five slots taken; the memory store reports no progress, so each copy is
    // taken to last the re-check interval from its start.
    copies_in_progress(&cloud, DbCluster, 5, 10).await;
    let h = handler(&cloud, config());
    let err = h.step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap_err();
    assert_eq!((err.retry(), err.code()), (Some(Retry::QuotaExceeded), "CopySlotsFull"), "{err}");
    assert!(err.to_string().contains("5 of 5 db-cluster copy slots in us-east-1 taken, 1 copies waiting"), "{err}");
    // Started 10 s ago, assumed to take RECHECK_SECONDS (step_env's): back when they end.
    let recheck = config().step.recheck;
    let after = err.retry_after().expect("the step timed the wait");
    let expected = recheck.saturating_sub(std::time::Duration::from_secs(10)).max(std::time::Duration::from_secs(1));
    assert!(after >= expected && after <= expected + std::time::Duration::from_secs(2), "{after:?} vs {expected:?}");
    assert!(!cloud.calls().iter().any(|c| c.starts_with("copy ")), "no copy asked: {:?}", cloud.calls());
    assert!(copies(&cloud, REGION).iter().all(|c| c.name.starts_with("other-copy")));

    // Through SQS: re-sent with that delay, the wait's start travelling with it.
    use snapferry::sqs::BatchHandler;
    h.handle(deliver::batch(&[&deliver::pipeline_body(&event, Some(SOURCE))])).await;
    let [waiting] = &cloud.take_sent()[..] else { panic!("re-sent once") };
    assert!(waiting.delay >= expected && waiting.delay <= expected + std::time::Duration::from_secs(2));
    assert!(waiting.waiting_since.is_some() && cloud.take_dead_letters().is_empty());

    // A copy ends with its end not recorded yet (the step following it looks later): the
    // message comes back at its moment, looks the copy up and takes its slot.
    cloud.set_status(&cloud.snapshots(TARGET, REGION)[0].arn, Status::Available);
    cloud.advance(chrono::Duration::from_std(waiting.delay).unwrap());
    h.handle(deliver::redelivered(waiting)).await;
    assert!(cloud.take_sent().iter().all(|m| m.waiting_since.is_none()), "no longer waiting");
    assert_eq!(
        copies(&cloud, REGION).iter().filter(|c| c.tags.get(tags::STEP).is_some_and(|s| s == "copy")).count(),
        1
    );
}

#[tokio::test]
async fn copy_slots_are_per_kind_and_configurable() {
    let cloud = Cloud::new();
    let (_, event) = shared(&cloud, DbInstance, SOURCE, "snap-1").await;
    // Five instance copies in progress leave 15 of AWS's 20 instance slots free ...
    copies_in_progress(&cloud, DbInstance, 5, 10).await;
    handler(&cloud, config()).step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
    // ... and none of five, where COPY_SLOTS says so.
    let cloud = Cloud::new();
    let (_, event) = shared(&cloud, DbInstance, SOURCE, "snap-1").await;
    copies_in_progress(&cloud, DbInstance, 5, 10).await;
    let c = Config { copy_slots: Slots(vec![(DbInstance, 5)]), ..config() };
    let err = handler(&cloud, c).step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap_err();
    assert_eq!(err.code(), "CopySlotsFull", "{err}");
    let env = |v: &'static str| {
        Env::from_pairs(
            STEP,
            [
                ("QUEUE_URL", "q"),
                ("DLQ_URL", "d"),
                ("SOURCE_ACCOUNTS", SOURCE),
                ("TARGET_KMS_KEY_ARN", TARGET_KEY),
                ("COPY_SLOTS", v),
            ],
        )
        .unwrap()
    };
    let parsed = Config::from_env(&env("db-cluster=2, ebs=4")).unwrap();
    assert_eq!((parsed.slots(DbCluster), parsed.slots(ResourceKind::Ebs), parsed.slots(DbInstance)), (2, 4, 20));
    for bad in ["db-cluster", "aurora=2", "ebs=0", "ebs=x"] {
        let e = Config::from_env(&env(bad)).unwrap_err().to_string();
        assert!(e.contains("COPY_SLOTS") && e.contains("kind=count"), "{bad}: {e}");
    }
}

#[tokio::test]
async fn a_refusal_for_copies_in_progress_is_timed_by_them_too() {
    // Other tools' copies fill the quota (AWS says 2) where COPY_SLOTS says 5 are free.
    let cloud = Cloud::new();
    let (_, event) = shared(&cloud, DbCluster, SOURCE, "snap-1").await;
    others_in_progress(&cloud, DbCluster, 2);
    cloud.set_copy_quota(2);
    let err =
        handler(&cloud, config()).step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap_err();
    assert_eq!(err.code(), "CopySlotsFull", "{err}");
    assert!(err.to_string().contains("AWS refused the db-cluster copy into us-east-1"), "{err}");
    // No copy of ours to time it by: a copy time (the re-check interval) from now.
    assert_eq!(err.retry_after(), Some(config().step.recheck));
    // The slot it took is given back, and it waits in the line.
    let book = cloud.ledger(TARGET).book(&Pool::new(DbCluster, REGION)).await.unwrap();
    assert_eq!((book.in_flight, book.waiting().count(), book.copying().count()), (0, 1, 0), "{book:?}");
}

#[tokio::test]
async fn a_source_that_floods_the_backup_account_is_held_to_its_budget_and_the_other_keeps_its_backups() {
    const FLOODER: &str = "444444444444";
    let cloud = Cloud::new();
    // Ten manual snapshots in all, two sources: five each unless configured otherwise.
    cloud.set_manual_quota(10);
    let config = Config { source_accounts: vec![SOURCE.into(), FLOODER.into()], ..config() };
    let h = handler(&cloud, config);
    let mut refused = Vec::new();
    for i in 0..12 {
        let (_, event) = shared(&cloud, DbInstance, FLOODER, &format!("flood-{i}")).await;
        if let Err(e) = h.step(deliver::pipeline(&event, Some(FLOODER)), deliver::record()).await {
            refused.push(e);
        }
        cloud.complete_all();
    }
    assert_eq!(refused.len(), 7, "{refused:?}");
    assert!(refused.iter().all(|e| e.code() == "Rejected" && e.to_string().contains("COPIES_HELD_PER_SOURCE")));
    let events = cloud.take_published();
    let rejected: Vec<_> = events.iter().filter(|e| matches!(e.step, Step::Rejected { .. })).collect();
    assert_eq!(rejected.len(), 7);
    let Step::Rejected { reason, sender_account } = &rejected[0].step else { unreachable!() };
    assert!(reason.contains("source 444444444444 holds 5 db-instance copies in us-east-1, its budget"), "{reason}");
    assert_eq!(sender_account.as_deref(), Some(FLOODER));
    assert_eq!(cloud.take_metrics().iter().filter(|m| m.starts_with("SourceBudgetExceeded")).count(), 7);
    // The honest source's backups go on.
    for i in 0..3 {
        let (_, event) = shared(&cloud, DbInstance, SOURCE, &format!("nightly-{i}")).await;
        h.step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
        cloud.complete_all();
    }
    assert_eq!(copies(&cloud, REGION).len(), 8, "five of the flood, three of the other's");
}

#[tokio::test]
async fn a_raised_quota_widens_the_default_budgets_within_a_quarter_of_an_hour() {
    const OTHER: &str = "444444444444";
    let cloud = Cloud::new();
    cloud.set_manual_quota(2);
    let h = handler(&cloud, Config { source_accounts: vec![SOURCE.into(), OTHER.into()], ..config() });
    let (_, first) = shared(&cloud, DbInstance, SOURCE, "nightly-1").await;
    h.step(deliver::pipeline(&first, Some(SOURCE)), deliver::record()).await.unwrap();
    cloud.complete_all();
    let (_, second) = shared(&cloud, DbInstance, SOURCE, "nightly-2").await;
    let refused = h.step(deliver::pipeline(&second, Some(SOURCE)), deliver::record()).await.unwrap_err();
    assert!(refused.to_string().contains("its budget (COPIES_HELD_PER_SOURCE) is 1"), "{refused}");
    cloud.set_manual_quota(20);
    // Read again once its quarter of an hour is over: the replayed message is copied then.
    cloud.advance(snapferry_copy_shared_snapshot::QUOTA_READ_EVERY + chrono::Duration::seconds(1));
    h.step(deliver::pipeline(&second, Some(SOURCE)), deliver::record()).await.unwrap();
    assert_eq!(copies(&cloud, REGION).len(), 2);
}

#[tokio::test]
async fn a_source_waits_for_its_own_copies_in_flight_not_the_others() {
    const FLOODER: &str = "444444444444";
    let cloud = Cloud::new();
    let env = Env::from_pairs(
        STEP,
        [
            ("QUEUE_URL", "q"),
            ("DLQ_URL", "d"),
            ("SOURCE_ACCOUNTS", "111111111111,444444444444"),
            ("TARGET_KMS_KEY_ARN", TARGET_KEY),
            ("COPIES_IN_FLIGHT_PER_SOURCE", "3,444444444444=1"),
        ],
    )
    .unwrap();
    let config = Config { step: step_env(), ..Config::from_env(&env).unwrap() };
    let h = handler(&cloud, config);
    let (_, first) = shared(&cloud, DbCluster, FLOODER, "flood-0").await;
    h.step(deliver::pipeline(&first, Some(FLOODER)), deliver::record()).await.unwrap();
    let (_, second) = shared(&cloud, DbCluster, FLOODER, "flood-1").await;
    let err = h.step(deliver::pipeline(&second, Some(FLOODER)), deliver::record()).await.unwrap_err();
    assert!(err.to_string().contains("source 444444444444 has 1 db-cluster copies in progress"), "{err}");
    assert!(err.retry_after().is_some(), "it waits, as for a full slot: {err}");
    for i in 0..3 {
        let (_, event) = shared(&cloud, DbCluster, SOURCE, &format!("nightly-{i}")).await;
        h.step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
    }
    assert_eq!(copies(&cloud, REGION).len(), 4, "the other source's three copies started");
}

#[tokio::test]
async fn a_source_alone_uses_every_free_slot_and_keeps_to_its_share_once_another_waits() {
    const FLOODER: &str = "444444444444";
    let cloud = Cloud::new();
    // Two sources, AWS's 5 Aurora slots, no budget set: each source's share is 3.
    let h = handler(&cloud, Config { source_accounts: vec![SOURCE.into(), FLOODER.into()], ..config() });
    let mut flood = Vec::new();
    for i in 0..6 {
        flood.push(shared(&cloud, DbCluster, FLOODER, &format!("flood-{i}")).await);
    }
    // Alone, it is not held to its share: all five slots copy.
    for (_, event) in &flood[..5] {
        h.step(deliver::pipeline(event, Some(FLOODER)), deliver::record()).await.unwrap();
    }
    assert_eq!(copies(&cloud, REGION).len(), 5, "no slot idle for fairness to nobody");
    // The other source's share waits for a slot; one of the flood's copies ends.
    let (_, honest) = shared(&cloud, DbCluster, SOURCE, "nightly").await;
    let err = h.step(deliver::pipeline(&honest, Some(SOURCE)), deliver::record()).await.unwrap_err();
    assert_eq!(err.code(), "CopySlotsFull", "{err}");
    let ended = copies(&cloud, REGION).into_iter().next().unwrap();
    cloud.set_status(&ended.arn, Status::Available);
    let ended = cloud.stores(TARGET, REGION).store(DbCluster).describe(&ended.id).await.unwrap().unwrap();
    let what = RecheckWhat::CopyWhenAvailable {
        copy: ended.to_ref(),
        origin: ended.to_ref(),
        destination_region: REGION.into(),
    };
    let recheck = snapferry::events::Recheck::new("run-1", 1, None, what);
    h.step(Incoming::Recheck(recheck.into_envelope()), deliver::record()).await.unwrap();
    // The freed slot is not the flood's: past its share, with another source waiting.
    let err = h.step(deliver::pipeline(&flood[5].1, Some(FLOODER)), deliver::record()).await.unwrap_err();
    assert!(err.to_string().contains("source 444444444444 has 4 db-cluster copies in progress"), "{err}");
    h.step(deliver::pipeline(&honest, Some(SOURCE)), deliver::record()).await.unwrap();
    assert_eq!(copies(&cloud, REGION).len(), 6, "the other source's copy took the slot");
}

#[test]
fn budgets_per_source_are_parsed_and_checked() {
    let with = |value: &'static str| {
        let pairs = [
            ("QUEUE_URL", "q"),
            ("DLQ_URL", "d"),
            ("SOURCE_ACCOUNTS", "111111111111,444444444444"),
            ("TARGET_KMS_KEY_ARN", TARGET_KEY),
            ("COPIES_HELD_PER_SOURCE", value),
        ];
        Config::from_env(&Env::from_pairs(STEP, pairs).unwrap())
    };
    let c = with("40,444444444444=10").unwrap();
    assert_eq!((c.copies_held.of("111111111111"), c.copies_held.of("444444444444")), (Some(40), Some(10)));
    assert_eq!(with("444444444444=10").unwrap().copies_held.of("111111111111"), None, "derived");
    for (bad, why) in [
        ("0", "not a count"),
        ("40,50", "a second budget"),
        ("333333333333=5", "not an account in SOURCE_ACCOUNTS"),
        ("444444444444=5,444444444444=6", "that account twice"),
    ] {
        let e = with(bad).unwrap_err().to_string();
        assert!(e.contains("COPIES_HELD_PER_SOURCE") && e.contains(why), "{bad}: {e}");
    }
}

#[tokio::test]
async fn a_source_that_floods_the_line_takes_one_slot_a_round_not_every_slot() {
    const FLOODER: &str = "444444444444";
    let cloud = Cloud::new();
    let mut old = Vec::new();
    for i in 0..6 {
        old.push(shared(&cloud, DbCluster, FLOODER, &format!("old-{i}")).await.1);
        cloud.advance(chrono::Duration::seconds(60));
    }
    let (_, honest) = shared(&cloud, DbCluster, SOURCE, "nightly").await;
    copies_in_progress(&cloud, DbCluster, 2, 10).await;
    let config = Config {
        source_accounts: vec![SOURCE.into(), FLOODER.into()],
        copy_slots: Slots(vec![(DbCluster, 2)]),
        ..config()
    };
    let h = handler(&cloud, config);
    // The flood's old shares ask first, and wait in the line.
    for event in &old {
        h.step(deliver::pipeline(event, Some(FLOODER)), deliver::record()).await.unwrap_err();
    }
    let err = h.step(deliver::pipeline(&honest, Some(SOURCE)), deliver::record()).await.unwrap_err();
    // Oldest first across sources, it would be the 7th, two copy times later; fairly, the 2nd.
    assert!(err.to_string().contains("7 copies waiting, this one 2"), "{err}");
    let first = config_recheck() - std::time::Duration::from_secs(10);
    assert_eq!(err.retry_after(), Some(first), "back when the first slots free");
}

fn config_recheck() -> std::time::Duration {
    config().step.recheck
}

#[tokio::test]
async fn the_copies_waiting_form_a_line_oldest_first_each_coming_back_when_its_turn_comes() {
    // Into the home region: the allowlisted sources' shared snapshots with no copy yet, the
    // oldest first; a stranger's share, or one IDENTIFIER_REGEX leaves out, is not in it.
    let cloud = Cloud::new();
    let mut events = Vec::new();
    for name in ["snap-1", "snap-2", "snap-3", "snap-4"] {
        events.push(shared(&cloud, DbCluster, SOURCE, name).await.1);
        cloud.advance(chrono::Duration::seconds(60));
    }
    let stranger = shared(&cloud, DbCluster, STRANGER, "not-ours").await.1;
    // Shared before all of them: without the filter it would be at the head of the line.
    cloud.advance(chrono::Duration::seconds(-600));
    let manual = shared(&cloud, DbCluster, SOURCE, "manual-never-copied").await.1;
    cloud.advance(chrono::Duration::seconds(600));
    copies_in_progress(&cloud, DbCluster, 2, 10).await;
    let h = handler(
        &cloud,
        Config {
            identifier_regex: Some(regex::Regex::new("^snap-").unwrap()),
            copy_slots: Slots(vec![(DbCluster, 2)]),
            ..config()
        },
    );
    // Each asks once and joins the line; the stranger's share is rejected and the filtered
    // one left alone before they could.
    for event in &events {
        h.step(deliver::pipeline(event, Some(SOURCE)), deliver::record()).await.unwrap_err();
    }
    for (owner, event) in [(STRANGER, &stranger), (SOURCE, &manual)] {
        let _ = h.step(deliver::pipeline(event, Some(owner)), deliver::record()).await;
    }
    let mut waits = Vec::new();
    // Looking again newest first: the place in the line is the snapshot's age, not its turn.
    for (i, event) in events.iter().enumerate().rev() {
        let err = h.step(deliver::pipeline(event, Some(SOURCE)), deliver::record()).await.unwrap_err();
        let place = format!("4 copies waiting, this one {}", i + 1);
        assert!(err.to_string().contains(&place), "{place}: {err}");
        waits.push(err.retry_after().expect("timed"));
    }
    waits.reverse();
    // Two slots, both freeing when the two copies in progress end (taken to last the
    // re-check interval): the first two come back then, the next two a copy time later.
    let recheck = config().step.recheck;
    let first = recheck - std::time::Duration::from_secs(10);
    assert_eq!(waits, [first, first, first + recheck, first + recheck], "in the order of the line");
    // Into an extra region: the home copies with no copy there yet.
    let cloud = Cloud::new();
    let regions = vec![(EXTRA.to_string(), EXTRA_KEY.to_string())];
    let h = handler(&cloud, Config { extra_regions: regions, ..config() });
    for name in ["snap-1", "snap-2"] {
        let (_, event) = shared(&cloud, DbCluster, SOURCE, name).await;
        h.step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
    }
    cloud.complete_all();
    ours_in_progress(&cloud, DbCluster, EXTRA, 5, cloud.now()).await;
    let to_extra = |home: &Snapshot| {
        let what =
            RecheckWhat::CopyToRegion { copy: home.to_ref(), origin: home.to_ref(), destination_region: EXTRA.into() };
        Incoming::Recheck(snapferry::events::Recheck::new("run-1", 1, None, what).into_envelope())
    };
    let mut home = copies(&cloud, REGION);
    home.sort_by_key(|c| Lineage::of(c).snapshot_taken_at());
    // The newer home copy asks first.
    h.step(to_extra(&home[1]), deliver::record()).await.unwrap_err();
    let err = h.step(to_extra(&home[0]), deliver::record()).await.unwrap_err();
    assert!(err.to_string().contains("5 of 5 db-cluster copy slots in eu-west-1 taken, 2 copies waiting"), "{err}");
    assert!(err.to_string().contains("this one 1"), "the older home copy: {err}");
}

#[tokio::test]
async fn a_shared_event_redelivered_after_the_share_was_withdrawn_is_done_once_copied() {
    let cloud = Cloud::new();
    let (s, event) = shared(&cloud, DbInstance, SOURCE, "snap-1").await;
    let h = handler(&cloud, config());
    h.step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
    cloud.complete_all();
    // The source withdraws the share once the copy is announced; then the event comes again.
    cloud.stores(SOURCE, REGION).store(DbInstance).unshare(&s, &[TARGET.to_string()]).await.unwrap();
    let out = h.step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap();
    assert_eq!(out, Outcome::Done);
    assert_eq!(copies(&cloud, REGION).len(), 1, "no second copy");
    // Never copied and not visible: propagation delay, tried again.
    let cloud = Cloud::new();
    let (s, event) = shared(&cloud, DbInstance, SOURCE, "snap-2").await;
    cloud.stores(SOURCE, REGION).store(DbInstance).unshare(&s, &[TARGET.to_string()]).await.unwrap();
    let err =
        handler(&cloud, config()).step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await.unwrap_err();
    assert_eq!(err.retry(), Some(Retry::NotReady), "{err}");
}

#[tokio::test]
async fn a_copy_that_says_how_far_it_is_is_looked_at_when_it_should_end_and_no_later_than_its_age_again() {
    use snapferry::events::Recheck;
    let cloud = Cloud::new();
    let ctx = cloud.context(TARGET, REGION, step_env());
    let store = cloud.stores(TARGET, REGION).store(DbCluster);
    let copy = |progress: Option<u8>| Snapshot {
        status: Status::Creating,
        created_at: Some(cloud.now() - chrono::Duration::seconds(60)),
        progress,
        ..cloud.snapshot(DbCluster, TARGET, REGION, "copy", "db")
    };
    let delay = |c: &Snapshot| {
        let what =
            RecheckWhat::CopyWhenAvailable { copy: c.to_ref(), origin: c.to_ref(), destination_region: REGION.into() };
        match snapferry::copy::Copier::new(&ctx)
            .recheck(store.as_ref(), c, Recheck::new("run-1", 1, None, what))
            .unwrap()
        {
            Outcome::Later { delay, .. } => delay,
            other => panic!("{other:?}"),
        }
    };
    // "50 %" after 60 s: at the soonest (51 %), it takes 117.6 s and ends in 57.6 s; SQS's
    // whole seconds, rounded up.
    assert_eq!(delay(&copy(Some(50))).as_secs(), 58);
    // "1 %" after 60 s puts the end 49 minutes away; an EBS copy can sit at 1 % and then
    // jump, so the look comes no later than the copy's age again.
    assert_eq!(delay(&copy(Some(1))).as_secs(), 60);
    // Saying nothing, or nearly done: the re-check interval.
    assert_eq!(delay(&copy(None)), step_env().recheck);
    assert_eq!(delay(&copy(Some(99))), step_env().recheck.max(std::time::Duration::from_secs(1)));
}

/// `n` copies of ours of `kind` in progress into the home region that, taken to last the
/// re-check interval from their start (no copy has ended to time them by), end `ends_in`
/// from now.
async fn copies_ending_in(cloud: &Cloud, kind: ResourceKind, n: usize, ends_in: chrono::Duration) {
    let recheck = chrono::Duration::from_std(config().step.recheck).unwrap();
    ours_in_progress(cloud, kind, REGION, n, cloud.now() - recheck + ends_in).await;
}

#[tokio::test]
async fn the_records_of_a_batch_take_a_free_slot_one_at_a_time() {
    use snapferry::sqs::BatchHandler;
    // One Aurora slot, AWS's quota as well, and three snapshots shared in one batch,
    // handled at once (the listing of copies answers a round trip later, as AWS's does):
    // one is copied, the other two take their places in line, and AWS is never asked
    // into a full quota.
    let cloud = Cloud::new();
    cloud.set_copy_quota(1);
    let mut bodies = Vec::new();
    for name in ["snap-1", "snap-2", "snap-3"] {
        let (_, event) = shared(&cloud, DbCluster, SOURCE, name).await;
        bodies.push(deliver::pipeline_body(&event, Some(SOURCE)));
    }
    let h = handler(&cloud, Config { copy_slots: Slots(vec![(DbCluster, 1)]), ..config() });
    let response = h.handle(deliver::batch(&bodies.iter().map(String::as_str).collect::<Vec<_>>())).await;
    assert!(response.batch_item_failures.is_empty());
    let asked = cloud.calls().iter().filter(|c| c.starts_with("copy ")).count();
    assert_eq!(asked, 1, "one copy asked of AWS: {:?}", cloud.calls());
    assert_eq!(copies(&cloud, REGION).len(), 1);
    // The memory store says nothing of progress: the copy is taken to last the re-check
    // interval, and the two waiters come back one copy time apart (the copy's own
    // re-check aside).
    let recheck = config().step.recheck.as_secs();
    let sent = cloud.take_sent();
    let mut delays: Vec<u64> = sent.iter().filter(|m| bodies.contains(&m.body)).map(|m| m.delay.as_secs()).collect();
    delays.sort();
    assert_eq!(delays, [recheck, 2 * recheck]);
}

#[tokio::test]
async fn a_record_waiting_in_its_handler_for_a_slot_lets_the_rest_of_its_batch_go_on() {
    use snapferry::sqs::BatchHandler;
    // Aurora's slots free in 0.4 s, the instances' are free: the cluster's record, first
    // in the batch, waits for its slot in its handler, and the instance's is copied
    // meanwhile, not after it.
    let cloud = Cloud::new();
    let (_, cluster) = shared(&cloud, DbCluster, SOURCE, "snap-cluster").await;
    let (_, instance) = shared(&cloud, DbInstance, SOURCE, "snap-instance").await;
    copies_ending_in(&cloud, DbCluster, 5, chrono::Duration::milliseconds(400)).await;
    cloud.set_finish_on_wait(true);
    let bodies = [deliver::pipeline_body(&cluster, Some(SOURCE)), deliver::pipeline_body(&instance, Some(SOURCE))];
    let response = handler(&cloud, config()).handle(deliver::batch(&[&bodies[0], &bodies[1]])).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(cloud.slept(), [std::time::Duration::from_millis(400)]);
    let copied: Vec<String> = cloud.calls().into_iter().filter(|c| c.starts_with("copy ")).collect();
    assert_eq!(
        copied,
        [format!("copy db-instance {TARGET} {REGION}"), format!("copy db-cluster {TARGET} {REGION}")],
        "{:?}",
        cloud.calls()
    );
}

/// A shared snapshot handled while Aurora's five slots are taken by copies ending `ends_in`
/// from now; `finish`: a wait in the handler sees them end.
async fn handled_while_slots_free_in(ends_in_ms: i64, finish: bool) -> (Cloud, snapferry::error::Result<Outcome>) {
    let cloud = Cloud::new();
    let (_, event) = shared(&cloud, DbCluster, SOURCE, "snap-1").await;
    copies_ending_in(&cloud, DbCluster, 5, chrono::Duration::milliseconds(ends_in_ms)).await;
    cloud.set_finish_on_wait(finish);
    let out = handler(&cloud, config()).step(deliver::pipeline(&event, Some(SOURCE)), deliver::record()).await;
    (cloud, out)
}

#[tokio::test]
async fn a_copy_whose_turn_comes_within_the_second_waits_for_it_in_its_handler() {
    use std::time::Duration;
    let ours = |cloud: &Cloud| copies(cloud, REGION).iter().filter(|c| c.name.starts_with("snapferry-copy-")).count();
    // The slots free 0.4 s from now: SQS cannot time that, so the step waits for it itself,
    // then takes the slot.
    let (cloud, out) = handled_while_slots_free_in(400, true).await;
    out.unwrap();
    assert_eq!(cloud.slept(), [Duration::from_millis(400)]);
    assert_eq!(ours(&cloud), 1, "copied once its slot freed");

    // The copies end later than estimated: it looks again after 250 ms, or after as long as
    // they are late (0, 0.25, 0.5 s), and once that is a second, goes back to SQS.
    let (cloud, out) = handled_while_slots_free_in(400, false).await;
    let err = out.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)), "{err}");
    let ms = Duration::from_millis;
    assert_eq!(cloud.slept(), [ms(400), ms(250), ms(250), ms(500)]);
    assert_eq!(ours(&cloud), 0, "nothing asked of a full quota");

    // A turn more than a second away is SQS's to time: back within the second before it,
    // without waiting here.
    let (cloud, out) = handled_while_slots_free_in(3_400, false).await;
    assert_eq!(out.unwrap_err().retry_after(), Some(Duration::from_secs(3)));
    assert!(cloud.slept().is_empty());
}
