//! Reconcile on the emulator: a backup (of a scheduled snapshot, or of one taken by hand)
//! whose "snapshot created" event (RDS's, EBS's) or
//! whose "Snapshot Shared" announcement never came is found and finished, with no duplicate; a selected database whose backups stop raises the
//! dead-man's switch with no event at all to go by.

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use chrono::{Duration, Utc};
use serde_json::json;
use snapferry::ResourceKind::{self, DbInstance, Ebs};
use snapferry::events::Step;
use snapferry::store::Stores;
use snapferry_e2e::chain::*;
use snapferry_e2e::{REGION, control};
use snapferry_local::pipeline::PipelineOptions;

/// A volume named `name` on `key`.
async fn volume(c: &snapferry::clients::Clients, name: &str, key: &str) -> String {
    let name_tag = Tag::builder().key("Name").value(name).build();
    let tagged = TagSpecification::builder().resource_type(ResourceType::Volume).tags(name_tag).build();
    let out = c
        .ec2
        .create_volume()
        .availability_zone(format!("{REGION}a"))
        .size(4)
        .encrypted(true)
        .kms_key_id(key)
        .tag_specifications(tagged)
        .send()
        .await
        .expect("CreateVolume");
    out.volume_id().expect("a volume id").to_string()
}

/// One event of a backup is lost (each `drops` rule drops one, in the source account or,
/// with `"account": "backup"`, in the backup account); the chain stops; reconcile,
/// fired past the grace, restarts it at `stalled_at`; it finishes once, and a later run
/// finds nothing to repair.
async fn a_lost_event_is_repaired_once(kind: ResourceKind, drops: &[serde_json::Value], stalled_at: &str) {
    a_lost_event_of_a_snapshot_is_repaired_once(kind, drops, &[stalled_at], None, &fast_options()).await
}

/// As [`a_lost_event_is_repaired_once`], of a snapshot taken by hand and named `by_hand`
/// (`None`: the scheduled one), repaired where each of `stalled_at` says (none: the step's
/// own re-check finished it before reconcile came), with `options`.
async fn a_lost_event_of_a_snapshot_is_repaired_once(
    kind: ResourceKind,
    drops: &[serde_json::Value],
    stalled_at: &[&str],
    by_hand: Option<&str>,
    options: &PipelineOptions,
) {
    // A short grace, as the local pipeline documents: stalled after one minute. The backup
    // account returns "Snapshot Copied" (as the stacks deploy), which ends the share.
    let options =
        PipelineOptions { reconcile_grace_minutes: 1, release_shares: true, kinds: vec![kind], ..options.clone() };
    let p = start(&options).await;
    for drop in drops {
        let mut drop = drop.clone();
        // In the account the event is sent in: the source's, unless said otherwise.
        let in_target = drop["account"] == "backup";
        drop["account"] = json!(if in_target { &p.target.account } else { &p.source.account });
        drop["count"] = json!(1);
        control::call("POST", "/_snapferry/drop-events", Some(drop));
    }
    let resource = if kind == Ebs {
        volume(&p.source, "lost", &p.sharing_key).await
    } else {
        instance(&p.source, "lost", Encryption::Key(&p.sharing_key), &[]).await;
        "lost".to_string()
    };
    let r = resource.as_str();
    let mut events = Vec::new();
    if let Some(name) = by_hand {
        p.source
            .rds
            .create_db_snapshot()
            .db_instance_identifier(r)
            .db_snapshot_identifier(name)
            .send()
            .await
            .expect("CreateDBSnapshot");
        drive_until(&p, &mut events, "the snapshot taken by hand", || async {
            let store = p.source.store(kind);
            let taken = store.describe(name).await.expect("DescribeDBSnapshots");
            taken.is_some_and(|s| s.status == snapferry::store::Status::Available).then_some(())
        })
        .await;
    } else {
        p.host.fire(Some("create-snapshot"), Utc::now()).await.expect("fire create-snapshot");
        // The snapshot exists, and the chain goes no further: an event was lost.
        drive_until(&p, &mut events, "the scheduled snapshot", || async {
            let created = made_by(&p.source, kind, "create", r).await;
            created.first().is_some_and(|s| s.status == snapferry::store::Status::Available).then_some(())
        })
        .await;
    }
    settle(&p, &mut events).await;
    if stalled_at.contains(&"share") || stalled_at.contains(&"copy") {
        assert!(!has(&events, r, COPIED), "nothing copied without the event:\n{}", summary(&events));
    }

    // Both accounts' reconcile runs, as their schedules would: the one where it stalled repairs it.
    for step in ["reconcile-snapshots", "reconcile-copies"] {
        p.host.fire(Some(step), Utc::now() + Duration::minutes(2)).await.expect("fire reconcile");
    }
    run_until(&p, &mut events, "verified after the repair", verified(&[r])).await;
    settle(&p, &mut events).await;
    let mut repaired: Vec<_> = about(&events, r)
        .into_iter()
        .filter_map(|e| match &e.detail.step {
            Step::Repaired { stalled_at } => Some(stalled_at.clone()),
            _ => None,
        })
        .collect();
    repaired.sort();
    assert_eq!(repaired, stalled_at, "{}", summary(&events));
    // Events come at least once (two invocations at once may both announce a copy); what
    // was made, exactly once.
    for step in [COPIED, VERIFIED] {
        assert!(count(&events, r, step) >= 1, "{step}:\n{}", summary(&events));
    }
    assert_eq!(made_by(&p.source, kind, "create", r).await.len(), usize::from(by_hand.is_none()));
    assert_eq!(made_by(&p.target, kind, "copy", r).await.len(), 1);

    // An event was lost (of two rules for one event, the one that matches what the
    // emulator sends): the test is about a loss that happened.
    let dropped: usize = [&p.source.account, &p.target.account]
        .iter()
        .map(|a| control::events(a).iter().filter(|e| e["dropped"] == true).count())
        .sum();
    assert!((1..=drops.len()).contains(&dropped), "{dropped} events lost");

    // The next runs find nothing stalled: the share was withdrawn once the copy was made.
    let later = Utc::now() + Duration::minutes(3);
    p.host.fire(Some("reconcile-snapshots"), later).await.expect("fire reconcile");
    p.host.fire(Some("reconcile-copies"), later).await.expect("fire reconcile");
    settle(&p, &mut events).await;
    let repairs = about(&events, r).iter().filter(|e| matches!(e.detail.step, Step::Repaired { .. })).count();
    assert_eq!(repairs, stalled_at.len(), "{}", summary(&events));
    assert_dlqs_empty(&p).await;
}

#[tokio::test]
async fn a_database_snapshot_whose_created_event_was_lost_is_shared_by_the_repair() {
    let drops =
        ["RDS-EVENT-0042", "RDS-EVENT-0091"].map(|id| json!({"detail_type": "RDS DB Snapshot Event", "event_id": id}));
    a_lost_event_is_repaired_once(DbInstance, &drops, "share").await;
}

#[tokio::test]
async fn a_database_snapshot_taken_by_hand_whose_created_event_was_lost_is_shared_by_the_repair() {
    // Not snapferry's: re-encrypted, shared and copied once, as its event would have had it.
    let drops = [json!({"detail_type": "RDS DB Snapshot Event", "event_id": "RDS-EVENT-0042"})];
    a_lost_event_of_a_snapshot_is_repaired_once(
        DbInstance,
        &drops,
        &["share"],
        Some("before-migration"),
        &fast_options(),
    )
    .await;
}

#[tokio::test]
async fn a_lost_snapshot_copied_is_repaired_in_both_accounts() {
    // Neither the restore step nor the source hears that the copy was made: the backup
    // account's reconcile restarts the restore test, the source's announces the share again,
    // to which the copy step answers "Snapshot Copied" again (never a second copy). One
    // invocation at a time, so the copy is announced once and that one is lost.
    let drops = [json!({"detail_type": "Snapshot Copied", "account": "backup"})];
    let options = PipelineOptions { concurrency: 1, ..fast_options() };
    a_lost_event_of_a_snapshot_is_repaired_once(DbInstance, &drops, &["copy", "restore test"], None, &options).await;
}

#[tokio::test]
async fn a_copy_whose_end_event_was_lost_is_finished_by_its_re_check() {
    // RDS's "copy finished" in the backup account: the copy step's own re-check, the backstop
    // of every copy it waits for, finds it done; reconcile has nothing to repair.
    let drops = [json!({"detail_type": "RDS DB Snapshot Event", "event_id": "RDS-EVENT-0197", "account": "backup"})];
    a_lost_event_of_a_snapshot_is_repaired_once(DbInstance, &drops, &[], None, &fast_options()).await;
}

#[tokio::test]
async fn a_volume_snapshot_whose_created_event_was_lost_is_shared_by_the_repair() {
    let drops = [json!({"detail_type": "EBS Snapshot Notification", "event_id": "createSnapshot"})];
    a_lost_event_is_repaired_once(Ebs, &drops, "share").await;
}

#[tokio::test]
async fn a_shared_database_snapshot_whose_announcement_was_lost_is_announced_again() {
    a_lost_event_is_repaired_once(DbInstance, &[json!({"detail_type": "Snapshot Shared"})], "copy").await;
}

#[tokio::test]
async fn a_shared_volume_snapshot_whose_announcements_were_lost_is_announced_again() {
    // The share step's "Snapshot Shared" and EBS's own shareSnapshot notification in the
    // backup account (which the copy step acts on too) are both lost.
    let drops = [
        json!({"detail_type": "Snapshot Shared"}),
        json!({"detail_type": "EBS Snapshot Notification", "event_id": "shareSnapshot", "account": "backup"}),
    ];
    a_lost_event_is_repaired_once(Ebs, &drops, "copy").await;
}

#[tokio::test]
async fn a_database_whose_backups_stop_raises_the_dead_mans_switch() {
    let p = start(&fast_options()).await;
    instance(&p.source, "silent", Encryption::Key(&p.sharing_key), &[]).await;
    let mut events = Vec::new();
    // No schedule ever fires for it (a deleted rule, a broken source stack): three hours on,
    // reconcile says so, though no event at all came.
    p.host.fire(Some("reconcile-snapshots"), Utc::now() + Duration::hours(3)).await.expect("fire reconcile");
    run_until(&p, &mut events, "Backup Overdue about silent", |seen| has(seen, "silent", "Backup Overdue")).await;
    let e = first(&events, "silent", "Backup Overdue");
    assert_eq!(e.detail.step, Step::Overdue { last: None, limit_minutes: 120 });
    assert_dlqs_empty(&p).await;
}
