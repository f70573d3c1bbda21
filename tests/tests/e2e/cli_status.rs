//! `snapferry status` against the emulator: a verified backup is healthy, and past its RPO
//! later on; a backup whose event was lost is stalled at the share step; one whose copy
//! failed for good is stalled at the copy step with the DLQ's reason; in both output forms.

use chrono::{Duration, Utc};
use serde_json::json;
use snapferry::routing::Routing;
use snapferry_cli::status::{self, Health, Policy};
use snapferry_e2e::chain::*;
use snapferry_e2e::control;

#[tokio::test]
async fn status_reports_healthy_stalled_and_past_rpo_backups() {
    let p = start(&PipelineOptions { release_shares: true, ..fast_options() }).await;
    let mut events = Vec::new();
    instance(&p.source, "good", Encryption::Key(&p.sharing_key), &[]).await;
    p.host.fire(Some("create-snapshot"), Utc::now()).await.expect("fire create-snapshot");
    run_until(&p, &mut events, "good verified", verified(&["good"])).await;

    // The next schedule backs up "stuck" (not "good" again, within its interval), and its
    // snapshot's events are lost.
    for event_id in ["RDS-EVENT-0042", "RDS-EVENT-0091"] {
        let drop = json!({"detail_type": "RDS DB Snapshot Event", "event_id": event_id, "account": p.source.account,
            "count": 1});
        control::call("POST", "/_snapferry/drop-events", Some(drop));
    }
    instance(&p.source, "stuck", Encryption::Key(&p.sharing_key), &[]).await;
    p.host.fire(Some("create-snapshot"), Utc::now()).await.expect("fire create-snapshot");
    drive_until(&p, &mut events, "stuck's snapshot", || async {
        let created = made_by(&p.source, snapferry::ResourceKind::DbInstance, "create", "stuck").await;
        created.first().is_some_and(|s| s.status == snapferry::store::Status::Available).then_some(())
    })
    .await;
    settle(&p, &mut events).await;

    // The copy of "dead" is refused for good (no permission): its message goes to the DLQ.
    control::fault("CopyDBSnapshot", Some(&p.target.account), 1, "AccessDenied", 403);
    instance(&p.source, "dead", Encryption::Key(&p.sharing_key), &[]).await;
    p.host.fire(Some("create-snapshot"), Utc::now()).await.expect("fire create-snapshot");
    let copy_dlq =
        p.deployment.queues().find(|q| q.function == "copy-shared-snapshot").expect("copy queue").dlq_url.clone();
    drive_until(&p, &mut events, "dead's copy dead-lettered", || async {
        (queue_depth(&p.target, &copy_dlq).await == 1).then_some(())
    })
    .await;
    settle(&p, &mut events).await;

    let routing = Routing::load();
    let policy = |now| Policy { now, rpo: Duration::days(1), grace: Duration::minutes(1), extra_regions: Vec::new() };
    let soon = Utc::now() + Duration::minutes(2);
    let all = status::collect(&p.target, Some(&p.source), &routing, None, &policy(soon)).await.expect("status");
    let of = |r: &str| all.iter().find(|s| s.resource == r).unwrap_or_else(|| panic!("{r} in {all:#?}")).clone();
    let good = of("good");
    assert_eq!(good.health, Health::Healthy, "{good:#?}");
    assert_eq!(good.source_account, p.source.account);
    assert!(good.recovery_point_seconds.is_some_and(|s| s >= 120), "{good:#?}");
    assert!(good.last_verified_at.is_some() && good.restore_seconds.is_some(), "{good:#?}");
    assert!(good.source_snapshot.is_some() && good.backup_copy.is_some());
    assert!(good.shared_with.is_empty(), "withdrawn once copied: {good:#?}");
    let stuck = of("stuck");
    let Health::Stalled { step, reason } = &stuck.health else { panic!("{stuck:#?}") };
    assert_eq!(step, "share");
    assert!(reason.contains("reconcile"), "{reason}");
    assert!(stuck.backup_copy.is_none() && stuck.recovery_point_seconds.is_none(), "{stuck:#?}");
    let dead = of("dead");
    let Health::Stalled { step, reason } = &dead.health else { panic!("{dead:#?}") };
    assert_eq!(step, "copy", "{dead:#?}");
    assert!(reason.contains("AccessDenied"), "the DLQ's reason: {reason}");
    assert_eq!(dead.shared_with, std::slice::from_ref(&p.target.account), "shared and waiting");
    assert_eq!(all.len(), 3, "{all:#?}");
    assert_eq!(status::exit_code(&all), std::process::ExitCode::from(1));

    // Just the good one, two days on: past its RPO.
    let later = Utc::now() + Duration::days(2);
    let one =
        status::collect(&p.target, Some(&p.source), &routing, Some("good"), &policy(later)).await.expect("status");
    let [good] = &one[..] else { panic!("{one:#?}") };
    assert_eq!(good.health, Health::PastRpo);
    assert_eq!(status::exit_code(&one), std::process::ExitCode::from(1));
    // Seen from the backup account alone, and within its RPO, it is healthy.
    let backup_only = status::collect(&p.target, None, &routing, Some("good"), &policy(soon)).await.expect("status");
    assert_eq!(backup_only[0].health, Health::Healthy);
    assert_eq!(status::exit_code(&backup_only), std::process::ExitCode::SUCCESS);

    // As an operator runs it: exit 1, something is stalled.
    assert_eq!(run_cli(&p, "status").await, std::process::ExitCode::from(1));

    // The machine form says the same.
    let json = serde_json::to_value(&all).expect("JSON");
    let dead_json = json.as_array().unwrap().iter().find(|s| s["resource"] == "dead").unwrap();
    assert_eq!(dead_json["health"]["state"], "stalled");
    assert_eq!(dead_json["health"]["step"], "copy");
    let good_json = json.as_array().unwrap().iter().find(|s| s["resource"] == "good").unwrap();
    assert_eq!(good_json["health"]["state"], "healthy");
    assert_eq!(good_json["kind"], "db-instance");
    // And the table for people names each state.
    let table = status::render(&all, soon);
    for needle in ["good", "healthy", "stuck", "STALLED at share", "dead", "STALLED at copy"] {
        assert!(table.contains(needle), "{needle} in\n{table}");
    }
}
