//! The chain against a full manual snapshot quota in the backup account: AWS answers the
//! copy with the same SnapshotQuotaExceeded as for copies in progress, but this one never
//! clears by itself. The quota is lowered for this test's accounts only.

use serde_json::json;
use snapferry::ResourceKind;
use snapferry::error::QUOTA_FULL;
use snapferry::events::Step;
use snapferry::sqs::{ATTR_ERROR_CODE, ATTR_ERROR_REASON};
use snapferry_e2e::chain::*;
use snapferry_e2e::{control, fixtures};

#[tokio::test]
async fn a_full_snapshot_count_in_the_backup_account_is_reported_at_once_not_retried() {
    let p = start(&fast_options()).await;
    for account in [&p.source.account, &p.target.account] {
        control::quotas(account, json!({"manual_db_snapshots": 1}));
    }
    // The backup account already holds its one allowed manual DB snapshot.
    fixtures::db_instance(&p.target, "other-tool", true, None, &[]).await;
    p.target
        .rds
        .create_db_snapshot()
        .db_instance_identifier("other-tool")
        .db_snapshot_identifier("other-tools-snapshot")
        .send()
        .await
        .expect("CreateDBSnapshot");
    instance(&p.source, "orders", Encryption::Key(&p.sharing_key), &[]).await;
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    run_until(&p, &mut events, "orders rejected", |events| has(events, "orders", REJECTED)).await;
    settle(&p, &mut events).await;

    let rejected = first(&events, "orders", REJECTED);
    let Step::Rejected { reason, .. } = &rejected.detail.step else { unreachable!() };
    assert!(reason.contains("1 of 1 ManualSnapshots used"), "{reason}");
    let copy = p.deployment.queue(&p.target.account, "copy-shared-snapshot").expect("deployed").clone();
    let dead = dlq_messages(&p.target, &copy.dlq_url).await;
    assert_eq!(dead.len(), 1, "dead-lettered once, with its reason");
    assert_eq!(attribute(&dead[0], ATTR_ERROR_CODE), QUOTA_FULL);
    assert!(attribute(&dead[0], ATTR_ERROR_REASON).contains("ManualSnapshots"));
    // One refused copy, not a loop of them; nothing was copied.
    let refused = control::requests(&p.target.account)
        .into_iter()
        .filter(|(op, e)| op == "CopyDBSnapshot" && e.as_deref() == Some("SnapshotQuotaExceeded"))
        .count();
    assert_eq!(refused, 1);
    assert!(made_by(&p.target, ResourceKind::DbInstance, "copy", "orders").await.is_empty());
    assert!(!has(&events, "orders", COPIED));
}
