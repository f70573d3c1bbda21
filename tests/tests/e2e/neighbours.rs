//! Two source accounts into one backup account, one of them hostile: what it sends, floods
//! or forges must not cost the other its backups. The hostile one is an allowlisted source
//! (the pipeline's neighbour), acting as an attacker in that account would: a hand-made
//! snapshot, a share, one `PutEvents`.

use serde_json::json;
use snapferry::ResourceKind;
use snapferry::clients::Clients;
use snapferry::events::{SnapshotRef, Step};
use snapferry::store::{Snapshot, Stores};
use snapferry::tags;
use snapferry_e2e::chain::*;
use snapferry_e2e::*;

/// A snapshot `owner` takes by hand of a new instance `db` on its sharing key, and shares
/// with the backup account.
async fn shared_by_hand(p: &LocalPipeline, owner: &Clients, db: &str, name: &str, tags: &tags::Tags) -> Snapshot {
    let store = owner.store(ResourceKind::DbInstance);
    let snapshot = store.create(db, name, tags).await.expect("snapshot");
    let snapshot = fixtures::available(store.as_ref(), &snapshot.id).await;
    store.share(&snapshot, std::slice::from_ref(&p.target.account)).await.expect("share with the backup account");
    snapshot
}

#[tokio::test]
async fn a_neighbour_that_forges_an_origin_cannot_withdraw_the_others_share_nor_pose_as_its_backup() {
    // The pipeline leaves the victim's snapshot alone (nothing selected), so it stays shared
    // and waiting, as a scheduled one does until its copy is reported.
    let options = PipelineOptions { release_shares: true, select_regex: Some("^none$".into()), ..fast_options() };
    let p = start_with_neighbour(&options).await;
    let hostile = &p.neighbours[0];
    instance(&p.source, "orders", Encryption::Key(&p.sharing_key), &[]).await;
    let lineage = tags::LineageTags {
        source_arn: format!("arn:aws:rds:{REGION}:{}:db:orders", p.source.account),
        source_account: p.source.account.clone(),
        correlation_id: "run-victim".into(),
        step: "create".into(),
    };
    let victims = shared_by_hand(&p, &p.source, "orders", "snapferry-orders-202612070100", &lineage.tags()).await;

    // The neighbour's own snapshot, announced as a copy of the victim's.
    instance(hostile, "decoy", Encryption::Key(&p.sharing_keys[&hostile.account]), &[]).await;
    let decoy = shared_by_hand(&p, hostile, "decoy", "decoy-1", &Default::default()).await;
    let forged_origin = SnapshotRef { account: hostile.account.clone(), ..victims.to_ref() };
    announce(hostile, &p.target.account, decoy.to_ref(), forged_origin, "forged").await;

    let mut events = Vec::new();
    run_until(&p, &mut events, "the forgery rejected", |e| e.iter().any(|e| e.detail.step.detail_type() == REJECTED))
        .await;
    settle(&p, &mut events).await;
    let rejected: Vec<_> = events.iter().filter(|e| e.detail.step.detail_type() == REJECTED).collect();
    let [r] = &rejected[..] else { panic!("{}", summary(&events)) };
    let Step::Rejected { reason, sender_account } = &r.detail.step else { unreachable!() };
    assert!(reason.contains(&format!("snapshot of the sending account {}", hostile.account)), "{reason}");
    assert_eq!(sender_account.as_deref(), Some(hostile.account.as_str()));
    assert!(!events.iter().any(|e| e.detail.step.detail_type() == COPIED), "{}", summary(&events));

    // The victim's snapshot is still shared with the backup account, and not marked released.
    let store = p.source.store(ResourceKind::DbInstance);
    let after = store.describe(&victims.id).await.expect("describe").expect("still there");
    assert_eq!(store.shared_with(&after).await.expect("attributes"), std::slice::from_ref(&p.target.account));
    assert!(!after.tags.contains_key(tags::RELEASED_AT), "{:?}", after.tags);
    // And the backup account holds no copy claiming to be the victim's.
    let copies = p.target.store(ResourceKind::DbInstance).list_managed().await.expect("list");
    assert!(copies.iter().all(|c| c.tags.get(tags::SOURCE_ACCOUNT) != Some(&p.source.account)), "{copies:?}");
}

#[tokio::test]
async fn a_neighbour_flooding_the_backup_account_is_held_to_its_budget_and_the_others_backups_are_verified() {
    // Five invocations of each step at once, as Lambda's event source mapping may run: the
    // flood's shares race for its budget, which the copy ledger takes atomically (at two,
    // a listing-based count once let a fourth copy through).
    let options = PipelineOptions { release_shares: true, concurrency: 5, ..fast_options() };
    let p = start_with_neighbour(&options).await;
    let hostile = &p.neighbours[0];
    // Six manual snapshots in the backup account: three for each of the two sources.
    control::quotas(&p.target.account, json!({"manual_db_snapshots": 6}));
    instance(hostile, "flood", Encryption::Key(&p.sharing_keys[&hostile.account]), &[]).await;
    for i in 0..6 {
        let s = shared_by_hand(&p, hostile, "flood", &format!("flood-{i}"), &Default::default()).await;
        announce(hostile, &p.target.account, s.to_ref(), s.to_ref(), &format!("flood-{i}")).await;
    }
    let mut events = Vec::new();
    run_until(&p, &mut events, "the flood held to its budget", |e| count(e, "flood", REJECTED) == 3).await;
    for e in about(&events, "flood").into_iter().filter(|e| e.detail.step.detail_type() == REJECTED) {
        let Step::Rejected { reason, .. } = &e.detail.step else { unreachable!() };
        assert!(reason.contains("COPIES_HELD_PER_SOURCE"), "{reason}");
    }
    // The other source's scheduled backups still go through, copied and proven.
    instance(&p.source, "orders", Encryption::AwsManaged, &[]).await;
    instance(&p.source, "billing", Encryption::Key(&p.sharing_key), &[]).await;
    p.host.fire(Some("create-snapshot"), chrono::Utc::now()).await.expect("fire create-snapshot");
    run_until(&p, &mut events, "the other source's backups verified", verified(&["orders", "billing"])).await;
    assert_eq!(count(&events, "orders", REJECTED) + count(&events, "billing", REJECTED), 0, "{}", summary(&events));
}
