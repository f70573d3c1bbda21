//! The cross-account chain end to end on the emulator, through the four real handlers
//! hosted with Lambda's SQS semantics (`LocalPipeline`): create → share → copy → restore
//! test. Each test has its own source and target accounts; assertions read back what the
//! pipeline made through the SDK and the pipeline events it published.

use serde_json::json;
use snapferry::ResourceKind;
use snapferry::events::{EventEnvelope, PipelineEvent, SOURCE, Step};
use snapferry::sqs::{ATTR_ERROR_CODE, ATTR_ERROR_REASON, ATTR_SOURCE_QUEUE};
use snapferry::store::Stores;
use snapferry::tags;
use snapferry_e2e::chain::*;
use snapferry_e2e::{OTHER_REGION, REGION, clients, control, fixtures, new_account};

fn names(snapshots: &[snapferry::store::Snapshot]) -> Vec<&str> {
    snapshots.iter().map(|s| s.id.as_str()).collect()
}

/// Checks the target copy of `resource`: one, on the backup CMK, tagged verified, with lineage.
async fn assert_verified_copy(p: &LocalPipeline, kind: ResourceKind, resource: &str) -> snapferry::store::Snapshot {
    let copies = made_by(&p.target, kind, "copy", resource).await;
    assert_eq!(copies.len(), 1, "one copy of {resource} in the target: {:?}", names(&copies));
    let copy = copies.into_iter().next().expect("one copy");
    assert!(copy.encrypted, "{} is not encrypted", copy.id);
    assert!(same_key(copy.kms_key_id.as_deref(), &p.target_key), "{} is on {:?}", copy.id, copy.kms_key_id);
    assert!(copy.tags.contains_key(tags::VERIFIED_AT), "{} not tagged verified: {:?}", copy.id, copy.tags);
    assert_eq!(copy.tags.get(tags::SOURCE_ACCOUNT), Some(&p.source.account), "lineage: {:?}", copy.tags);
    copy
}

#[tokio::test]
async fn instance_on_the_aws_managed_key_is_reencrypted_shared_copied_and_restore_verified() {
    let p = start(&fast_options()).await;
    instance(&p.source, "orders", Encryption::AwsManaged, &[("team", "payments"), ("aws:reserved", "x")]).await;
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    // The restore test's instance, caught while it exists (the host runs only between checks).
    let restored = drive_until(&p, &mut events, "the restore-test instance", || async {
        let out = p.target.rds.describe_db_instances().send().await.expect("DescribeDBInstances");
        out.db_instances()
            .iter()
            .find(|i| i.db_instance_identifier().is_some_and(|id| id.starts_with(snapferry::naming::RESTORE_PREFIX)))
            .cloned()
    })
    .await;
    // The emulator leaves PubliclyAccessible out of restored instances; it must at least not be true.
    assert_ne!(restored.publicly_accessible(), Some(true));
    assert_eq!(restored.db_instance_class(), Some("db.t4g.micro"));
    assert_eq!(restored.db_subnet_group().and_then(|g| g.db_subnet_group_name()), Some("snapferry-restore-test"));
    let test_tag = restored.tag_list().iter().find(|t| t.key() == Some(tags::RESTORE_TEST)).and_then(|t| t.value());
    assert_eq!(test_tag, Some("true"), "{:?}", restored.tag_list());
    run_until(&p, &mut events, "orders verified", verified(&["orders"])).await;

    // Source: the scheduled snapshot on aws/rds, and a re-encrypted copy on the sharing CMK, shared.
    let created = made_by(&p.source, ResourceKind::DbInstance, "create", "orders").await;
    assert_eq!(created.len(), 1, "{:?}", names(&created));
    assert!(!same_key(created[0].kms_key_id.as_deref(), &p.sharing_key), "the database is on aws/rds");
    assert!(shared_with(&p.source, &created[0].id).await.is_empty(), "an aws/rds snapshot must never be shared");
    let shared = made_by(&p.source, ResourceKind::DbInstance, "share", "orders").await;
    assert_eq!(shared.len(), 1, "{:?}", names(&shared));
    assert!(shared[0].id.starts_with("snapferry-shared-"), "{}", shared[0].id);
    assert!(same_key(shared[0].kms_key_id.as_deref(), &p.sharing_key), "{:?}", shared[0].kms_key_id);
    assert_eq!(shared_with(&p.source, &shared[0].id).await, vec![p.target.account.clone()]);
    let event = first(&events, "orders", SHARED);
    assert_eq!(event.detail.snapshot.id, shared[0].id, "the re-encrypted copy is what is shared");
    assert_eq!(event.detail.origin.id, created[0].id, "lineage names the scheduled snapshot");

    // Target: a copy on the backup CMK, verified, carrying the database's own tags (not `aws:` ones).
    let copy = assert_verified_copy(&p, ResourceKind::DbInstance, "orders").await;
    assert_eq!(created[0].tags.get("team").map(String::as_str), Some("payments"), "{:?}", created[0].tags);
    assert_eq!(copy.tags.get("team").map(String::as_str), Some("payments"), "{:?}", copy.tags);
    assert!(!copy.tags.keys().any(|k| k.starts_with("aws:")), "{:?}", copy.tags);
    for step in [SHARED, COPY_STARTED, COPIED, VERIFIED] {
        assert_eq!(count(&events, "orders", step), 1, "{step}:\n{}", summary(&events));
    }
    let verified = first(&events, "orders", VERIFIED);
    assert_eq!(verified.detail.snapshot.id, copy.id);
    let Step::RestoreVerified { restore_seconds, engine, restored_resource_id, .. } = &verified.detail.step else {
        unreachable!()
    };
    assert!(*restore_seconds > 0.0);
    assert_eq!(engine.as_deref(), Some("mysql"));
    assert_eq!(restored_resource_id, &snapferry::naming::restore_id(&copy.id));
    // The test instance was really restored, then deleted.
    let ops: Vec<String> = control::requests(&p.target.account).into_iter().map(|(op, _)| op).collect();
    for op in ["RestoreDBInstanceFromDBSnapshot", "DeleteDBInstance"] {
        assert!(ops.iter().any(|o| o == op), "no {op} by the target account: {ops:?}");
    }
    no_restore_resources_left(&p.target).await;
}

#[tokio::test]
async fn lost_copy_finished_events_are_covered_by_the_re_checks() {
    let p = start(&fast_options()).await;
    // RDS events are best effort: here every RDS-EVENT-0197 of both accounts is lost.
    for account in [&p.source.account, &p.target.account] {
        let drop = json!({"detail_type": "RDS DB Snapshot Event", "event_id": "RDS-EVENT-0197", "account": account});
        control::call("POST", "/_snapferry/drop-events", Some(drop));
    }
    instance(&p.source, "orders", Encryption::AwsManaged, &[]).await;
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    run_until(&p, &mut events, "orders verified without copy-finished events", verified(&["orders"])).await;
    for account in [&p.source.account, &p.target.account] {
        let dropped = control::events(account)
            .into_iter()
            .filter(|e| e["event_id_or_name"] == "RDS-EVENT-0197" && e["dropped"] == true)
            .count();
        assert_eq!(dropped, 1, "{account}: the copy's event was really lost");
    }
    for step in [SHARED, COPIED, VERIFIED] {
        assert_eq!(count(&events, "orders", step), 1, "{step}:\n{}", summary(&events));
    }
    assert_dlqs_empty(&p).await;
}

#[tokio::test]
async fn instance_on_the_sharing_cmk_is_shared_as_it_is() {
    let p = start(&fast_options()).await;
    instance(&p.source, "billing", Encryption::Key(&p.sharing_key), &[]).await;
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    run_until(&p, &mut events, "billing verified", verified(&["billing"])).await;

    let created = made_by(&p.source, ResourceKind::DbInstance, "create", "billing").await;
    assert_eq!(created.len(), 1, "{:?}", names(&created));
    let shared = made_by(&p.source, ResourceKind::DbInstance, "share", "billing").await;
    assert!(shared.is_empty(), "no re-encrypted copy needed: {:?}", names(&shared));
    assert_eq!(shared_with(&p.source, &created[0].id).await, vec![p.target.account.clone()]);
    assert_eq!(first(&events, "billing", SHARED).detail.snapshot.id, created[0].id);
    assert!(!control::requests(&p.source.account).iter().any(|(op, _)| op == "CopyDBSnapshot"));
    assert_verified_copy(&p, ResourceKind::DbInstance, "billing").await;
    no_restore_resources_left(&p.target).await;
}

#[tokio::test]
async fn an_automated_snapshot_is_copied_to_a_manual_one_and_never_shared_itself() {
    let p = start(&fast_options()).await;
    instance(&p.source, "ledger", Encryption::Key(&p.sharing_key), &[("team", "finance")]).await;
    let automated = control::call(
        "POST",
        "/_snapferry/automated-snapshot",
        Some(json!({"account": p.source.account, "region": REGION, "db_instance_identifier": "ledger"})),
    );
    let automated_id = automated["snapshot_id"].as_str().expect("snapshot_id").to_string();
    assert!(automated_id.starts_with("rds:"), "{automated_id}");
    let mut events = Vec::new();
    run_until(&p, &mut events, "ledger verified", verified(&["ledger"])).await;

    let shared_event = first(&events, "ledger", SHARED);
    assert_eq!(shared_event.detail.origin.id, automated_id);
    let shared = made_by(&p.source, ResourceKind::DbInstance, "share", "ledger").await;
    assert_eq!(names(&shared), vec![shared_event.detail.snapshot.id.as_str()], "the manual copy is what is shared");
    assert!(shared[0].id.starts_with("snapferry-shared-") && !shared[0].automated);
    assert!(shared_with(&p.source, &automated_id).await.is_empty(), "the automated snapshot itself is not shared");
    let refused: Vec<_> = control::requests(&p.source.account)
        .into_iter()
        .filter(|(op, err)| op == "ModifyDBSnapshotAttribute" && err.is_some())
        .collect();
    assert!(refused.is_empty(), "sharing was attempted and refused: {refused:?}");
    assert!(made_by(&p.source, ResourceKind::DbInstance, "create", "ledger").await.is_empty());
    let copy = assert_verified_copy(&p, ResourceKind::DbInstance, "ledger").await;
    // AWS put the database's tags on its automated snapshot; they travel to the backup copy.
    assert_eq!(copy.tags.get("team").map(String::as_str), Some("finance"), "{:?}", copy.tags);
}

#[tokio::test]
async fn aurora_cluster_copy_is_rechecked_restored_as_cluster_and_instance_and_cleaned_up() {
    let p = start(&fast_options()).await;
    fixtures::resource(&p.source, ResourceKind::DbCluster, "inventory", None).await;
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    run_until(&p, &mut events, "inventory verified", verified(&["inventory"])).await;

    let shared = made_by(&p.source, ResourceKind::DbCluster, "share", "inventory").await;
    assert_eq!(shared.len(), 1, "the aws/rds cluster snapshot is re-encrypted: {:?}", names(&shared));
    assert!(same_key(shared[0].kms_key_id.as_deref(), &p.sharing_key));
    let copy = assert_verified_copy(&p, ResourceKind::DbCluster, "inventory").await;
    assert_eq!(first(&events, "inventory", COPIED).detail.snapshot.id, copy.id);
    let Step::RestoreVerified { restored_resource_id, engine, .. } = &first(&events, "inventory", VERIFIED).detail.step
    else {
        unreachable!()
    };
    assert_eq!(engine.as_deref(), Some("aurora-postgresql"));
    // The restore made a cluster and an instance in it: both went through CreateDB* and are gone now.
    let ops: Vec<String> = control::requests(&p.target.account).into_iter().map(|(op, _)| op).collect();
    for op in ["RestoreDBClusterFromSnapshot", "CreateDBInstance", "DeleteDBInstance", "DeleteDBCluster"] {
        assert!(ops.iter().any(|o| o == op), "no {op} by the target account: {ops:?}");
    }
    assert!(restored_resource_id.starts_with("snapferry-restore"), "{restored_resource_id}");
    no_restore_resources_left(&p.target).await;
}

#[tokio::test]
async fn an_unencrypted_instance_is_shared_encrypted_with_the_sharing_cmk() {
    let p = start(&fast_options()).await;
    instance(&p.source, "plain", Encryption::None, &[]).await;
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    run_until(&p, &mut events, "plain verified", verified(&["plain"])).await;

    let created = made_by(&p.source, ResourceKind::DbInstance, "create", "plain").await;
    assert!(!created[0].encrypted, "the scheduled snapshot of an unencrypted database is unencrypted");
    assert!(shared_with(&p.source, &created[0].id).await.is_empty());
    let shared = made_by(&p.source, ResourceKind::DbInstance, "share", "plain").await;
    assert_eq!(shared.len(), 1, "{:?}", names(&shared));
    assert!(shared[0].encrypted && same_key(shared[0].kms_key_id.as_deref(), &p.sharing_key), "{:?}", shared[0]);
    assert_eq!(first(&events, "plain", SHARED).detail.snapshot.id, shared[0].id);
    assert_verified_copy(&p, ResourceKind::DbInstance, "plain").await;
}

/// An option group with one option, for MySQL 8.0 instances, in `c`'s account and region.
async fn option_group(c: &snapferry::clients::Clients, name: &str) {
    c.rds
        .create_option_group()
        .option_group_name(name)
        .engine_name("mysql")
        .major_engine_version("8.0")
        .option_group_description("snapferry test")
        .send()
        .await
        .expect("CreateOptionGroup");
    let option = aws_sdk_rds::types::OptionConfiguration::builder().option_name("MARIADB_AUDIT_PLUGIN").build();
    c.rds
        .modify_option_group()
        .option_group_name(name)
        .options_to_include(option)
        .apply_immediately(true)
        .send()
        .await
        .expect("ModifyOptionGroup");
}

/// AWS refuses a copy into another region of a DB snapshot that uses its own option group
/// and names none there: the mapped one goes with the group mapped there; the unmapped one
/// is rejected for that region, naming the mapping to add, before AWS is asked.
#[tokio::test]
async fn an_option_group_is_mapped_into_the_extra_region_and_an_unmapped_one_is_rejected_there() {
    let options = PipelineOptions {
        extra_regions: vec![OTHER_REGION.to_string()],
        option_groups: Some(format!("{OTHER_REGION}:mapped-audit=mapped-audit-dr")),
        ..fast_options()
    };
    let p = start(&options).await;
    for group in ["mapped-audit", "unmapped-audit"] {
        option_group(&p.source, group).await;
    }
    option_group(&p.target.for_region(OTHER_REGION), "mapped-audit-dr").await;
    for (db, group) in [("audited", "mapped-audit"), ("unmapped", "unmapped-audit")] {
        fixtures::db_instance_request(&p.source, db, true, Some(&p.sharing_key), &[])
            .option_group_name(group)
            .send()
            .await
            .expect("CreateDBInstance");
    }
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    let in_other_region = |seen: &[Event], db: &str| {
        about(seen, db)
            .iter()
            .any(|e| matches!(e.detail.step, Step::Copied { .. }) && e.detail.snapshot.region == OTHER_REGION)
    };
    run_until(&p, &mut events, "both verified, one in the extra region, the other rejected there", |seen| {
        verified(&["audited", "unmapped"])(seen) && in_other_region(seen, "audited") && has(seen, "unmapped", REJECTED)
    })
    .await;
    settle(&p, &mut events).await;

    let home = assert_verified_copy(&p, ResourceKind::DbInstance, "unmapped").await;
    assert_eq!(home.option_group.as_deref(), Some("unmapped-audit"), "the home copy keeps its group");
    let regional = managed(&p.target.for_region(OTHER_REGION), ResourceKind::DbInstance).await;
    assert_eq!(regional.len(), 1, "{:?}", names(&regional));
    assert_eq!(regional[0].option_group.as_deref(), Some("mapped-audit-dr"), "{:?}", regional[0]);
    assert!(!in_other_region(&events, "unmapped"));
    let Step::Rejected { reason, .. } = &first(&events, "unmapped", REJECTED).detail.step else { unreachable!() };
    assert!(
        reason.contains("OPTION_GROUPS") && reason.contains(&format!("{OTHER_REGION}:unmapped-audit=")),
        "{reason}"
    );
    // Never asked of AWS, which would have refused it.
    let refused = control::requests(&p.target.account)
        .into_iter()
        .filter(|(op, e)| op == "CopyDBSnapshot" && e.as_deref() == Some("InvalidParameterValue"))
        .count();
    assert_eq!(refused, 0);
    // The region's message waits in the DLQ with the reason, to replay once the mapping is added.
    let dlq = p.deployment.queues().find(|q| q.function == "copy-shared-snapshot").expect("copy queue").dlq_url.clone();
    assert_eq!(queue_depth(&p.target, &dlq).await, 1);
}

#[tokio::test]
async fn extra_region_copy_is_made_on_that_regions_key() {
    let options = PipelineOptions { extra_regions: vec![OTHER_REGION.to_string()], ..fast_options() };
    let p = start(&options).await;
    instance(&p.source, "reports", Encryption::Key(&p.sharing_key), &[]).await;
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    run_until(&p, &mut events, "reports verified and copied to eu-west-1", |events| {
        verified(&["reports"])(events)
            && about(events, "reports")
                .iter()
                .any(|e| matches!(e.detail.step, Step::Copied { .. }) && e.detail.snapshot.region == OTHER_REGION)
    })
    .await;

    let home = assert_verified_copy(&p, ResourceKind::DbInstance, "reports").await;
    let (_, regional_key) = p.extra_keys.iter().find(|(r, _)| r == OTHER_REGION).expect("a key for eu-west-1");
    let regional = managed(&p.target.for_region(OTHER_REGION), ResourceKind::DbInstance).await;
    assert_eq!(regional.len(), 1, "{:?}", names(&regional));
    let copy = &regional[0];
    assert_eq!(copy.region, OTHER_REGION);
    assert!(same_key(copy.kms_key_id.as_deref(), regional_key), "{:?} is not {regional_key}", copy.kms_key_id);
    assert!(!same_key(copy.kms_key_id.as_deref(), &p.target_key));
    assert_eq!(copy.tags.get(tags::ORIGIN_RESOURCE).map(String::as_str), Some("reports"));
    let started: Vec<_> = about(&events, "reports")
        .into_iter()
        .filter_map(|e| match &e.detail.step {
            Step::CopyStarted { destination_region } => Some(destination_region.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(started, vec![REGION, OTHER_REGION]);
    // Restore tests run in the home region only.
    assert_eq!(count(&events, "reports", VERIFIED), 1);
    assert_eq!(first(&events, "reports", VERIFIED).detail.snapshot.id, home.id);
}

/// Events from a source outside the allowlist are rejected; nothing is copied.
async fn assert_nothing_copied(p: &LocalPipeline, events: &[Event]) {
    for kind in [ResourceKind::DbInstance, ResourceKind::DbCluster] {
        let copies = managed(&p.target, kind).await;
        assert!(copies.is_empty(), "copied: {:?}", names(&copies));
    }
    let copy_calls: Vec<_> =
        control::requests(&p.target.account).into_iter().filter(|(op, _)| op.starts_with("CopyDB")).collect();
    assert!(copy_calls.is_empty(), "the target tried to copy: {copy_calls:?}");
    assert!(!events.iter().any(|e| matches!(e.detail.step, Step::CopyStarted { .. } | Step::Copied { .. })));
}

#[tokio::test]
async fn a_snapshot_shared_by_an_account_outside_the_allowlist_is_rejected_not_copied() {
    let options = PipelineOptions { allowlist: vec![new_account()], ..fast_options() };
    let p = start(&options).await;
    instance(&p.source, "stranger", Encryption::Key(&p.sharing_key), &[]).await;
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    run_until(&p, &mut events, "a rejection", |e| has(e, "stranger", REJECTED)).await;
    settle(&p, &mut events).await;

    let Step::Rejected { reason, sender_account } = &first(&events, "stranger", REJECTED).detail.step else {
        unreachable!()
    };
    assert_eq!(sender_account.as_deref(), Some(p.source.account.as_str()));
    assert!(reason.contains(&p.source.account) && reason.contains("SOURCE_ACCOUNTS"), "{reason}");
    assert_nothing_copied(&p, &events).await;
    assert_dlqs_empty(&p).await;
}

#[tokio::test]
async fn a_forged_shared_event_naming_a_snapshot_of_a_foreign_account_is_rejected() {
    let p = start(&fast_options()).await;
    // Another account really shares a snapshot with the target: only the owner check stops the copy.
    let rogue = clients(&new_account(), REGION).await;
    instance(&rogue, "rogue-db", Encryption::None, &[]).await;
    let store = rogue.store(ResourceKind::DbInstance);
    let snapshot = store.create("rogue-db", "rogue-snapshot", &Default::default()).await.expect("snapshot");
    let snapshot = fixtures::available(store.as_ref(), &snapshot.id).await;
    store.share(&snapshot, std::slice::from_ref(&p.target.account)).await.expect("share with the target");

    let truthful = snapshot.to_ref();
    // The second lies about the owner: the ARN still names the rogue account.
    let lying = snapferry::events::SnapshotRef { account: p.source.account.clone(), ..truthful.clone() };
    for (i, snapshot) in [truthful, lying].into_iter().enumerate() {
        // Sent by the (allowlisted) source account on its pipeline bus, forwarded as any "shared" event.
        announce(&p.source, &p.target.account, snapshot.clone(), snapshot, &format!("forged-{i}")).await;
    }
    let mut events = Vec::new();
    run_until(&p, &mut events, "two rejections", |e| count(e, "rogue-db", REJECTED) == 2).await;
    settle(&p, &mut events).await;

    for e in about(&events, "rogue-db").into_iter().filter(|e| e.detail.step.detail_type() == REJECTED) {
        let Step::Rejected { reason, sender_account } = &e.detail.step else { unreachable!() };
        assert!(reason.contains(&format!("owned by {}, not by the sending account", rogue.account)), "{reason}");
        assert_eq!(sender_account.as_deref(), Some(p.source.account.as_str()));
    }
    assert_nothing_copied(&p, &events).await;
}

#[tokio::test]
async fn every_event_delivered_twice_yields_exactly_one_snapshot_per_step() {
    let p = start(&fast_options()).await;
    snapferry_e2e::faults::deliver_everything_twice(&p).await;
    instance(&p.source, "twice", Encryption::AwsManaged, &[]).await;
    fixtures::resource(&p.source, ResourceKind::DbCluster, "twice-aurora", None).await;
    p.host.fire_schedule().await.expect("fire the schedule");
    p.host.fire_schedule().await.expect("fire the schedule again");
    let mut events = Vec::new();
    run_until(&p, &mut events, "both verified", verified(&["twice", "twice-aurora"])).await;
    settle(&p, &mut events).await;

    // The share step, finding the snapshot already shared, announced it once; the copy step
    // found its copy there and never asked AWS to copy again.
    for resource in ["twice", "twice-aurora"] {
        assert_eq!(count(&events, resource, SHARED), 1, "{resource}:\n{}", summary(&events));
    }
    let ops: Vec<String> = control::requests(&p.target.account).into_iter().map(|(op, _)| op).collect();
    for op in ["CopyDBSnapshot", "CopyDBClusterSnapshot"] {
        assert_eq!(ops.iter().filter(|o| *o == op).count(), 1, "one {op}: {ops:?}");
    }
    for (kind, resource) in [(ResourceKind::DbInstance, "twice"), (ResourceKind::DbCluster, "twice-aurora")] {
        let source = count_by_step(&p.source, kind).await;
        let target = count_by_step(&p.target, kind).await;
        let key = |step: &str| (step.to_string(), resource.to_string());
        assert_eq!(source.get(&key("create")), Some(&1), "{resource}: {source:?}");
        assert_eq!(source.get(&key("share")), Some(&1), "{resource}: {source:?}");
        assert_eq!(target.get(&key("copy")), Some(&1), "{resource}: {target:?}");
        assert_eq!(source.len() + target.len(), 3, "nothing else: {source:?} {target:?}");
        assert_eq!(count(&events, resource, VERIFIED), 1, "{resource}:\n{}", summary(&events));
    }
    no_restore_resources_left(&p.target).await;
    assert_dlqs_empty(&p).await;
}

#[tokio::test]
async fn a_copy_step_that_fails_after_copying_is_redelivered_and_finishes_without_duplicates() {
    let p = start(&fast_options()).await;
    // The target's first PutEvents (with the SDK's retries) is the copy step's "copy started",
    // sent after CopyDBSnapshot succeeded: the step fails there, as if the Lambda died.
    control::fault("PutEvents", Some(&p.target.account), 3, "InternalFailure", 500);
    instance(&p.source, "crashy", Encryption::Key(&p.sharing_key), &[]).await;
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    run_until(&p, &mut events, "crashy verified", verified(&["crashy"])).await;
    settle(&p, &mut events).await;

    let requests = control::requests(&p.target.account);
    let failed_puts = requests.iter().filter(|(op, e)| op == "PutEvents" && e.is_some()).count();
    assert_eq!(failed_puts, 3, "the fault hit: {requests:?}");
    // The redelivered message found the copy made before the failure, and did not copy again.
    let copies: Vec<_> = requests.iter().filter(|(op, _)| op == "CopyDBSnapshot").collect();
    assert_eq!(copies.len(), 1, "one copy call: {copies:?}");
    assert_eq!(copies[0].1, None, "the copy succeeded before the step failed: {copies:?}");
    assert_verified_copy(&p, ResourceKind::DbInstance, "crashy").await;
    assert_eq!(managed(&p.target, ResourceKind::DbInstance).await.len(), 1);
    assert_eq!(count(&events, "crashy", COPY_STARTED), 1, "{}", summary(&events));
    assert_eq!(count(&events, "crashy", VERIFIED), 1, "{}", summary(&events));
    assert_dlqs_empty(&p).await;
}

#[tokio::test]
async fn a_copy_quota_fault_is_retried_and_completes() {
    let p = start(&fast_options()).await;
    control::fault("CopyDBSnapshot", Some(&p.target.account), 2, "SnapshotQuotaExceeded", 400);
    instance(&p.source, "queued", Encryption::Key(&p.sharing_key), &[]).await;
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    run_until(&p, &mut events, "queued verified", verified(&["queued"])).await;
    settle(&p, &mut events).await;

    let quota_hits = control::requests(&p.target.account)
        .into_iter()
        .filter(|(op, e)| op == "CopyDBSnapshot" && e.as_deref() == Some("SnapshotQuotaExceeded"))
        .count();
    assert_eq!(quota_hits, 2);
    assert_verified_copy(&p, ResourceKind::DbInstance, "queued").await;
    assert_dlqs_empty(&p).await;
}

#[tokio::test]
async fn a_malformed_message_goes_to_the_dlq_with_its_reason_and_the_rest_of_its_batch_succeeds() {
    // Nothing selected: the share step leaves these snapshots alone; the test shares them.
    let options = PipelineOptions { select_regex: Some("^nothing$".into()), ..fast_options() };
    let p = start(&options).await;
    let store = p.source.store(ResourceKind::DbInstance);
    let mut bodies = Vec::new();
    for name in ["batch-a", "batch-b"] {
        instance(&p.source, name, Encryption::Key(&p.sharing_key), &[]).await;
        let snapshot = store.create(name, &format!("{name}-manual"), &Default::default()).await.expect("snapshot");
        let snapshot = fixtures::available(store.as_ref(), &snapshot.id).await;
        store.share(&snapshot, std::slice::from_ref(&p.target.account)).await.expect("share");
        let detail = PipelineEvent::new(
            format!("run-{name}"),
            snapshot.to_ref(),
            snapshot.to_ref(),
            Step::Shared {
                target_account: p.target.account.clone(),
                tags: [("team", name), ("aws:cloudformation:stack-name", "src")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                set: None,
                source_data: None,
            },
        );
        let mut envelope = EventEnvelope::new(SOURCE, SHARED, detail);
        envelope.account = Some(p.source.account.clone());
        bodies.push(serde_json::to_string(&envelope).unwrap());
    }
    const MALFORMED: &str = "{\"source\": \"snapferry\", \"detail-type\": \"Snapshot Shared\"";
    bodies.insert(1, MALFORMED.to_string());
    let queue = p.deployment.queue(&p.target.account, "copy-shared-snapshot").expect("copy queue").clone();
    for body in &bodies {
        p.target.sqs.send_message().queue_url(&queue.queue_url).message_body(body).send().await.unwrap();
    }
    let mut events = Vec::new();
    run_until(&p, &mut events, "both copied", |e| has(e, "batch-a", COPIED) && has(e, "batch-b", COPIED)).await;
    settle(&p, &mut events).await;

    let dead = dlq_messages(&p.target, &queue.dlq_url).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].body(), Some(MALFORMED));
    let attribute = |name: &str| {
        dead[0].message_attributes().and_then(|a| a.get(name)).and_then(|v| v.string_value()).map(str::to_string)
    };
    assert_eq!(attribute(ATTR_ERROR_CODE).as_deref(), Some("BadInput"));
    let reason = attribute(ATTR_ERROR_REASON).expect("a reason");
    assert!(reason.contains("not JSON"), "{reason}");
    assert_eq!(attribute(ATTR_SOURCE_QUEUE).as_deref(), Some(queue.queue_url.as_str()));
    for name in ["batch-a", "batch-b"] {
        let copies = made_by(&p.target, ResourceKind::DbInstance, "copy", name).await;
        assert_eq!(copies.len(), 1, "{name}");
        // The source's tags are copied, AWS-reserved ones are not.
        assert_eq!(copies[0].tags.get("team").map(String::as_str), Some(name), "{:?}", copies[0].tags);
        assert!(!copies[0].tags.keys().any(|k| k.starts_with("aws:")), "{:?}", copies[0].tags);
    }
}

#[tokio::test]
async fn a_restore_that_fails_is_reported_the_copy_kept_and_the_test_resources_deleted() {
    let p = start(&fast_options()).await;
    control::call(
        "POST",
        "/_snapferry/fail-completions",
        Some(json!({"kind": "restore", "account": p.target.account, "count": 1})),
    );
    instance(&p.source, "flaky", Encryption::Key(&p.sharing_key), &[]).await;
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    run_until(&p, &mut events, "flaky's restore to fail", |e| has(e, "flaky", RESTORE_FAILED)).await;

    assert!(!has(&events, "flaky", VERIFIED), "{}", summary(&events));
    let Step::RestoreFailed { reason, .. } = &first(&events, "flaky", RESTORE_FAILED).detail.step else {
        unreachable!()
    };
    assert!(reason.contains("failed"), "{reason}");
    let copies = made_by(&p.target, ResourceKind::DbInstance, "copy", "flaky").await;
    assert_eq!(copies.len(), 1, "the copy is kept: {:?}", names(&copies));
    assert!(!copies[0].tags.contains_key(tags::VERIFIED_AT), "{:?}", copies[0].tags);
    no_restore_resources_left(&p.target).await;
}

#[tokio::test]
async fn a_copy_that_fails_once_is_made_again_and_verified() {
    let p = start(&fast_options()).await;
    // The backup account's first DB snapshot copy fails (RDS-EVENT-0190).
    control::call(
        "POST",
        "/_snapferry/fail-completions",
        Some(json!({"kind": "db-instance", "account": p.target.account, "count": 1})),
    );
    instance(&p.source, "wobbly", Encryption::Key(&p.sharing_key), &[]).await;
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    run_until(&p, &mut events, "wobbly verified", verified(&["wobbly"])).await;
    settle(&p, &mut events).await;
    let canceled = control::events(&p.target.account).into_iter().filter(|e| e["event_id_or_name"] == "RDS-EVENT-0190");
    assert_eq!(canceled.count(), 1, "the first copy really failed");
    let copy = assert_verified_copy(&p, ResourceKind::DbInstance, "wobbly").await;
    assert_eq!(copy.tags.get(tags::COPY_ATTEMPT).map(String::as_str), Some("2"));
    assert_eq!(count(&events, "wobbly", COPY_STARTED), 2, "{}", summary(&events));
    assert_eq!(count(&events, "wobbly", COPIED), 1, "{}", summary(&events));
    assert_dlqs_empty(&p).await;
}

#[tokio::test]
async fn a_copy_that_keeps_failing_is_reported_with_its_reason_and_dead_lettered() {
    let p = start(&fast_options()).await;
    control::call(
        "POST",
        "/_snapferry/fail-completions",
        Some(json!({"kind": "db-instance", "account": p.target.account, "count": 10})),
    );
    instance(&p.source, "doomed", Encryption::Key(&p.sharing_key), &[]).await;
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    run_until(&p, &mut events, "doomed rejected", |e| has(e, "doomed", REJECTED)).await;
    settle(&p, &mut events).await;
    let Step::Rejected { reason, .. } = &first(&events, "doomed", REJECTED).detail.step else { unreachable!() };
    assert!(reason.contains("failed 3 times"), "{reason}");
    assert_eq!(count(&events, "doomed", COPY_STARTED), 3, "{}", summary(&events));
    assert!(!has(&events, "doomed", COPIED));
    let queue = p.deployment.queue(&p.target.account, "copy-shared-snapshot").expect("deployed").clone();
    let dead = dlq_messages(&p.target, &queue.dlq_url).await;
    assert_eq!(dead.len(), 1, "one dead letter, to replay once the cause is fixed");
    assert_eq!(attribute(&dead[0], ATTR_ERROR_CODE), "CopyFailed");
}
