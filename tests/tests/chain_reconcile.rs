//! Reconcile on the emulator: a backup whose "snapshot created" event never came is found
//! and finished, with no duplicate; a selected database whose backups stop raises the
//! dead-man's switch with no event at all to go by.

use chrono::{Duration, Utc};
use serde_json::json;
use snapferry::ResourceKind::DbInstance;
use snapferry::events::Step;
use snapferry_e2e::chain::*;
use snapferry_e2e::control;

#[tokio::test]
async fn a_backup_whose_created_event_was_lost_is_restarted_and_finished_once() {
    // A short grace, as the local pipeline documents: stalled after one minute.
    let p = start(&PipelineOptions { reconcile_grace_minutes: 1, ..fast_options() }).await;
    for event_id in ["RDS-EVENT-0042", "RDS-EVENT-0091"] {
        let drop = json!({"detail_type": "RDS DB Snapshot Event", "event_id": event_id, "account": p.source.account});
        control::call("POST", "/_snapferry/drop-events", Some(drop));
    }
    instance(&p.source, "lost", Encryption::Key(&p.sharing_key), &[]).await;
    p.host.fire(Some("create-snapshot"), Utc::now()).await.expect("fire create-snapshot");
    let mut events = Vec::new();
    // The snapshot exists, and nothing more happens: its event was lost.
    drive_until(&p, &mut events, "the scheduled snapshot", || async {
        let created = made_by(&p.source, DbInstance, "create", "lost").await;
        created.first().is_some_and(|s| s.status == snapferry::store::Status::Available).then_some(())
    })
    .await;
    settle(&p, &mut events).await;
    assert!(!has(&events, "lost", SHARED), "nothing shared without the event:\n{}", summary(&events));

    p.host.fire(Some("reconcile-snapshots"), Utc::now() + Duration::minutes(2)).await.expect("fire reconcile");
    run_until(&p, &mut events, "lost verified after the repair", verified(&["lost"])).await;
    settle(&p, &mut events).await;
    let repaired: Vec<_> = about(&events, "lost")
        .into_iter()
        .filter_map(|e| match &e.detail.step {
            Step::Repaired { stalled_at } => Some(stalled_at.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(repaired, ["share"], "{}", summary(&events));
    for step in [SHARED, COPIED, VERIFIED] {
        assert_eq!(count(&events, "lost", step), 1, "{step}:\n{}", summary(&events));
    }
    assert_eq!(made_by(&p.source, DbInstance, "create", "lost").await.len(), 1);
    assert_eq!(made_by(&p.target, DbInstance, "copy", "lost").await.len(), 1);

    // The next run finds nothing stalled.
    p.host.fire(Some("reconcile-snapshots"), Utc::now() + Duration::minutes(3)).await.expect("fire reconcile");
    p.host.fire(Some("reconcile-copies"), Utc::now() + Duration::minutes(3)).await.expect("fire reconcile");
    settle(&p, &mut events).await;
    assert_eq!(about(&events, "lost").iter().filter(|e| matches!(e.detail.step, Step::Repaired { .. })).count(), 1);
    assert_dlqs_empty(&p).await;
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
