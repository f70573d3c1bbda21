//! Behaviour 5: AWS's quotas, lowered so a test can reach them, for the test's own account
//! (AWS's quotas are per account), so other tests on the emulator keep AWS's defaults.

use serde_json::json;
use snapferry::ResourceKind;
use snapferry::error::Retry;
use snapferry::store::CopyRequest;
use snapferry::store::Stores;
use snapferry::tags::Tags;
use snapferry_e2e::{REGION, clients_without_retries, control, fixtures, new_account};

async fn copy_quota(kind: ResourceKind, quota_key: &str, code: &str) {
    let account = new_account();
    control::quotas(&account, json!({ quota_key: 1 }));
    let c = clients_without_retries(&account, REGION).await;
    let store = c.store(kind);
    let resource = fixtures::resource(&c, kind, "busy", None).await;
    let snapshot = store.create(&resource, "quota-source", &Tags::new()).await.unwrap();
    let snapshot = fixtures::available(store.as_ref(), &snapshot.id).await;
    let no_tags = Tags::new();
    let copy = |target_id| CopyRequest {
        source: &snapshot.id,
        source_region: None,
        target_id,
        kms_key_id: None,
        tags: &no_tags,
        option_group: None,
        copy_option_group: false,
    };

    let first = store.copy(&copy("first-copy")).await.unwrap();
    let err = store.copy(&copy("second-copy")).await.unwrap_err();
    assert_eq!(err.code(), code, "{kind}: {err}");
    assert_eq!(err.retry(), Some(Retry::QuotaExceeded), "{kind}: a full copy quota is worth waiting for");
    if kind != ResourceKind::Ebs {
        let asked = control::requests(&account).into_iter().filter(|(op, _)| op == "DescribeAccountAttributes").count();
        assert_eq!(asked, 1, "{kind}: the account's quotas told the two apart");
    }
    // Once the first copy is done, the slot is free again.
    fixtures::available(store.as_ref(), &first.id).await;
    store.copy(&copy("second-copy")).await.expect("copy after the first one finished");
}

#[tokio::test]
async fn quotas() {
    copy_quota(ResourceKind::DbInstance, "rds_instance_copies", "SnapshotQuotaExceeded").await;
    copy_quota(ResourceKind::DbCluster, "rds_cluster_copies", "SnapshotQuotaExceeded").await;
    copy_quota(ResourceKind::Ebs, "ebs_copies", "ResourceLimitExceeded").await;

    // Manual snapshots per region.
    let account = new_account();
    control::quotas(&account, json!({ "manual_db_snapshots": 2 }));
    let c = clients_without_retries(&account, REGION).await;
    let store = c.store(ResourceKind::DbInstance);
    fixtures::resource(&c, ResourceKind::DbInstance, "many", None).await;
    store.create("many", "manual-1", &Tags::new()).await.unwrap();
    store.create("many", "manual-2", &Tags::new()).await.unwrap();
    // AWS answers SnapshotQuotaExceeded as for copies in progress; the account's quota
    // figures (DescribeAccountAttributes) make it the full count it is, which never clears.
    let err = store.create("many", "manual-3", &Tags::new()).await.unwrap_err();
    assert_eq!((err.code(), err.retry()), (snapferry::error::QUOTA_FULL, None), "{err}");
    assert!(err.to_string().contains("2 of 2 ManualSnapshots used"), "{err}");
    // The same identifier again is not a new snapshot: idempotent create still answers.
    assert_eq!(store.create("many", "manual-2", &Tags::new()).await.unwrap().id, "manual-2");
}
