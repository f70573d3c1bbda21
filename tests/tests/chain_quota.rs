//! The chain against AWS's copy quota, lowered to one copy in progress per account and
//! region. The quota is a global emulator setting, so this binary has its own emulator.

use serde_json::json;
use snapferry::ResourceKind;
use snapferry_e2e::chain::*;
use snapferry_e2e::control;

#[tokio::test]
async fn copies_beyond_the_copy_quota_wait_and_complete_without_dead_letters() {
    control::call("POST", "/_snapferry/config", Some(json!({"quotas": {"rds_instance_copies": 1}})));
    let p = start(&fast_options()).await;
    let databases = ["quota-a", "quota-b", "quota-c"];
    for name in databases {
        instance(&p.source, name, Encryption::Key(&p.sharing_key), &[]).await;
    }
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    run_until(&p, &mut events, "every database verified", verified(&databases)).await;
    settle(&p, &mut events).await;

    let quota_hits = control::requests(&p.target.account)
        .into_iter()
        .filter(|(op, e)| op == "CopyDBSnapshot" && e.as_deref() == Some("SnapshotQuotaExceeded"))
        .count();
    assert!(quota_hits > 0, "three shared snapshots at once never hit a quota of one copy");
    for name in databases {
        let copies = made_by(&p.target, ResourceKind::DbInstance, "copy", name).await;
        assert_eq!(copies.len(), 1, "{name}");
        assert!(same_key(copies[0].kms_key_id.as_deref(), &p.target_key));
        assert_eq!(count(&events, name, VERIFIED), 1, "{name}:\n{}", summary(&events));
    }
    assert_dlqs_empty(&p).await;
}
