//! Behaviour 7: reset clears everything (state, request log, faults). Reset is global, so
//! this binary has its own emulator.

use snapferry::ResourceKind;
use snapferry::store::Stores;
use snapferry::tags::Tags;
use snapferry_e2e::{REGION, clients, control, fixtures, new_account};

#[tokio::test]
async fn reset_clears_state_log_and_faults() {
    let account = new_account();
    let c = clients(&account, REGION).await;
    let store = c.store(ResourceKind::DbInstance);
    fixtures::resource(&c, ResourceKind::DbInstance, "doomed", None).await;
    store.create("doomed", "doomed-snap", &Tags::new()).await.unwrap();
    control::fault("DescribeDBSnapshots", Some(&account), 5, "Throttling", 400);
    let ops: Vec<_> = control::requests(&account).into_iter().map(|(op, _)| op).collect();
    assert!(ops.contains(&"CreateDBInstance".to_string()) && ops.contains(&"CreateDBSnapshot".to_string()), "{ops:?}");

    control::call("POST", "/_snapferry/reset", None);

    assert!(control::requests(&account).is_empty(), "the request log is empty after reset");
    assert_eq!(control::call("GET", "/_snapferry/faults", None).as_array().map(Vec::len).unwrap_or(0), 0);
    // The fault is gone, and so is the snapshot.
    assert_eq!(store.describe("doomed-snap").await.unwrap(), None);
}
