//! The emulator layer's behaviours, proven through the Rust SDK and snapferry's own
//! resource-kind abstraction (the same code the Lambdas run). Each test uses its own
//! accounts, so they run in parallel on one emulator. A reset of the whole emulator lives in
//! a test binary of its own (`emulator_reset.rs`), with its own emulator.

use aws_sdk_rds::error::ProvideErrorMetadata;
use serde_json::{Value, json};
use snapferry::ResourceKind;
use snapferry::error::{Error, Retry};
use snapferry::inbound::{Incoming, parse_message};
use snapferry::naming;
use snapferry::store::Stores;
use snapferry::store::{CopyRequest, RestoreSpec, Status};
use snapferry::tags::Tags;
use snapferry_e2e::{REGION, clients, clients_without_retries, control, eventually, fixtures, new_account};
use std::time::Duration;

fn now_id(resource: &str) -> String {
    naming::create_snapshot_id(resource, chrono::Utc::now())
}

/// Behaviour 1: a target account sees, copies and restores a snapshot only once it is shared.
async fn shared_snapshots_work_across_accounts(kind: ResourceKind) {
    let (src_account, dst_account) = (new_account(), new_account());
    let (src, dst) = (clients(&src_account, REGION).await, clients(&dst_account, REGION).await);
    let src_key = fixtures::sharing_key(&src, std::slice::from_ref(&dst_account)).await;
    let dst_key = fixtures::sharing_key(&dst, &[]).await;
    let resource = fixtures::resource(&src, kind, "payments", Some(&src_key)).await;
    let (source, target) = (src.store(kind), dst.store(kind));
    let created = source.create(&resource, &now_id(&resource), &Tags::new()).await.unwrap();
    let snapshot = fixtures::available(source.as_ref(), &created.id).await;
    let no_tags = Tags::new();
    let copy_request = |target_id: &'static str| CopyRequest {
        source: &snapshot.arn,
        source_region: Some(REGION),
        target_id,
        kms_key_id: Some(&dst_key),
        tags: &no_tags,
        option_group: None,
        copy_option_group: false,
    };

    assert_eq!(target.describe(&snapshot.arn).await.unwrap(), None, "{kind}: visible before it was shared");
    let err = target.copy(&copy_request("early-copy")).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{kind}: copying an unshared snapshot gave {err}");

    source.share(&snapshot, std::slice::from_ref(&dst_account)).await.unwrap();
    assert_eq!(source.shared_with(&snapshot).await.unwrap(), vec![dst_account.clone()]);
    let seen = target.describe(&snapshot.arn).await.unwrap().expect("visible once shared");
    assert_eq!((seen.account.as_str(), seen.id.as_str()), (src_account.as_str(), snapshot.id.as_str()));

    let copy = target.copy(&copy_request("backup-copy")).await.unwrap();
    let copy = fixtures::available(target.as_ref(), &copy.id).await;
    assert_eq!(copy.account, dst_account, "{kind}: the copy lives in the target account");
    assert!(copy.encrypted);
    assert_eq!(copy.kms_key_id.as_deref(), Some(dst_key.as_str()), "{kind}: copy is on the target's key");
    let again = target.copy(&copy_request("backup-copy")).await.unwrap();
    assert_eq!(again.id, copy.id, "{kind}: a second copy request answers with the existing copy");

    let spec = RestoreSpec {
        restore_id: "restore-test-1".into(),
        instance_class: Some("db.t4g.micro".into()),
        security_group_ids: vec![],
        ..Default::default()
    };
    target.restore(&copy, &spec).await.unwrap();
    let restored = eventually("the restore to become available", Duration::from_secs(30), || async {
        target.restore_status(&spec.restore_id).await.unwrap().filter(|r| r.status == Status::Available)
    })
    .await;
    assert!(restored.encrypted, "{kind}: restored resource is encrypted");
    target.delete_restore(&spec.restore_id).await.unwrap();
    target.delete_restore(&spec.restore_id).await.unwrap();
}

#[tokio::test]
async fn db_instance_snapshots_are_shared_like_aws() {
    shared_snapshots_work_across_accounts(ResourceKind::DbInstance).await;
}

#[tokio::test]
async fn db_cluster_snapshots_are_shared_like_aws() {
    shared_snapshots_work_across_accounts(ResourceKind::DbCluster).await;
}

#[tokio::test]
async fn ebs_snapshots_are_shared_like_aws() {
    shared_snapshots_work_across_accounts(ResourceKind::Ebs).await;
}

/// Behaviour 2: AWS's refusals, with AWS's codes, as the Rust SDK reports them.
#[tokio::test]
async fn aws_refusals_are_reproduced() {
    let (src_account, dst_account) = (new_account(), new_account());
    let (src, dst) = (clients(&src_account, REGION).await, clients(&dst_account, REGION).await);
    let targets = [dst_account.clone()];
    let source = src.store(ResourceKind::DbInstance);

    // A snapshot on the AWS-managed key cannot be shared.
    fixtures::resource(&src, ResourceKind::DbInstance, "on-aws-key", None).await;
    let managed = source.create("on-aws-key", &now_id("on-aws-key"), &Tags::new()).await.unwrap();
    let managed = fixtures::available(source.as_ref(), &managed.id).await;
    let err = source.share(&managed, &targets).await.unwrap_err();
    assert_eq!(err.code(), "InvalidParameterValue", "{err}");
    assert!(err.to_string().contains("AWS-managed key"), "the hint explains it: {err}");

    // An automated snapshot cannot be shared.
    let automated = control::call(
        "POST",
        "/_snapferry/automated-snapshot",
        Some(json!({"account": src_account, "region": REGION, "db_instance_identifier": "on-aws-key"})),
    );
    let automated_id = automated["snapshot_id"].as_str().expect("automated snapshot id").to_string();
    let automated = fixtures::available(source.as_ref(), &automated_id).await;
    assert!(automated.automated && automated.id.starts_with("rds:"), "{automated:?}");
    let err = source.share(&automated, &targets).await.unwrap_err();
    assert_eq!(err.code(), "InvalidDBSnapshotState", "{err}");

    // An encrypted snapshot is never shared with `all`.
    let key = fixtures::sharing_key(&src, &targets).await;
    fixtures::resource(&src, ResourceKind::DbInstance, "on-cmk", Some(&key)).await;
    let on_cmk = source.create("on-cmk", &now_id("on-cmk"), &Tags::new()).await.unwrap();
    let on_cmk = fixtures::available(source.as_ref(), &on_cmk.id).await;
    let err = src
        .rds
        .modify_db_snapshot_attribute()
        .db_snapshot_identifier(&on_cmk.id)
        .attribute_name("restore")
        .values_to_add("all")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValue"), "{err:?}");

    // Shared and encrypted: the target must copy it with its own key, not restore it directly.
    source.share(&on_cmk, &targets).await.unwrap();
    let target = dst.store(ResourceKind::DbInstance);
    let err = dst
        .rds
        .restore_db_instance_from_db_snapshot()
        .db_instance_identifier("direct-restore")
        .db_snapshot_identifier(&on_cmk.arn)
        .send()
        .await
        .unwrap_err();
    assert!(
        err.code().is_some_and(|c| c.starts_with("Invalid")),
        "direct restore of a shared encrypted snapshot: {err:?}"
    );
    let no_tags = Tags::new();
    let no_key = CopyRequest {
        source: &on_cmk.arn,
        source_region: None,
        target_id: "no-key",
        kms_key_id: None,
        tags: &no_tags,
        option_group: None,
        copy_option_group: false,
    };
    let err = target.copy(&no_key).await.unwrap_err();
    assert_eq!(err.code(), "InvalidParameterValue", "{err}");

    // A disabled source key makes the copy fail with KMSKeyNotAccessibleFault, explained.
    src.kms.disable_key().key_id(&key).send().await.unwrap();
    let dst_key = fixtures::sharing_key(&dst, &[]).await;
    let with_key = CopyRequest { kms_key_id: Some(&dst_key), target_id: "with-key", ..no_key };
    let err = target.copy(&with_key).await.unwrap_err();
    assert_eq!(err.code(), "KMSKeyNotAccessibleFault", "{err}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("kms:CreateGrant"), "the error says what to check: {err}");
}

/// Behaviour 3: snapshots are `creating` first and `available` after the configured delay.
#[tokio::test]
async fn snapshots_take_time() {
    let account = new_account();
    let src = clients(&account, REGION).await;
    for kind in ResourceKind::ALL {
        let resource = fixtures::resource(&src, kind, "timed", None).await;
        let store = src.store(kind);
        let created = store.create(&resource, &now_id(&resource), &Tags::new()).await.unwrap();
        assert_eq!(created.status, Status::Creating, "{kind}: a new snapshot starts out creating");
        let done = fixtures::available(store.as_ref(), &created.id).await;
        assert_eq!(done.status, Status::Available);
    }
}

/// A queue receiving everything a rule on the default bus matches.
async fn queue_for(clients: &snapferry::clients::Clients, name: &str, pattern: Value) -> String {
    let url = clients.sqs.create_queue().queue_name(name).send().await.unwrap().queue_url().unwrap().to_string();
    let arn = format!("arn:aws:sqs:{}:{}:{name}", clients.region, clients.account);
    clients.events.put_rule().name(name).event_pattern(pattern.to_string()).send().await.unwrap();
    clients
        .events
        .put_targets()
        .rule(name)
        .targets(aws_sdk_eventbridge::types::Target::builder().id("q").arn(arn).build().unwrap())
        .send()
        .await
        .unwrap();
    url
}

async fn receive_one(clients: &snapferry::clients::Clients, url: &str) -> Value {
    eventually("an event in the queue", Duration::from_secs(30), || async {
        let out = clients.sqs.receive_message().queue_url(url).wait_time_seconds(1).send().await.unwrap();
        let message = out.messages().first()?;
        clients.sqs.delete_message().queue_url(url).receipt_handle(message.receipt_handle()?).send().await.unwrap();
        Some(serde_json::from_str(message.body()?).unwrap())
    })
    .await
}

/// Behaviour 4: completions put real `aws.rds` / `aws.ec2` events on the owner's default bus.
#[tokio::test]
async fn native_events_are_emitted() {
    let (src_account, dst_account) = (new_account(), new_account());
    let (src, dst) = (clients(&src_account, REGION).await, clients(&dst_account, REGION).await);
    let rds_queue = queue_for(&src, "rds-events", json!({"source": ["aws.rds"]})).await;
    let ebs_queue = queue_for(&dst, "ebs-events", json!({"source": ["aws.ec2"]})).await;

    let store = src.store(ResourceKind::DbInstance);
    fixtures::resource(&src, ResourceKind::DbInstance, "evented", None).await;
    let snapshot = store.create("evented", &now_id("evented"), &Tags::new()).await.unwrap();
    let event = receive_one(&src, &rds_queue).await;
    assert_eq!(event["detail-type"], "RDS DB Snapshot Event");
    assert_eq!(event["account"], src_account.as_str());
    assert_eq!(event["detail"]["EventID"], "RDS-EVENT-0042");
    assert_eq!(event["detail"]["SourceArn"], snapshot.arn.as_str());
    assert!(matches!(parse_message(&event.to_string()), Ok(Incoming::Native(_))), "snapferry parses it: {event}");

    // EBS shareSnapshot is delivered to the account it was shared with.
    let ebs = src.store(ResourceKind::Ebs);
    let key = fixtures::sharing_key(&src, std::slice::from_ref(&dst_account)).await;
    let volume = fixtures::resource(&src, ResourceKind::Ebs, "vol", Some(&key)).await;
    let snap = ebs.create(&volume, &now_id(&volume), &Tags::new()).await.unwrap();
    let snap = fixtures::available(ebs.as_ref(), &snap.id).await;
    ebs.share(&snap, std::slice::from_ref(&dst_account)).await.unwrap();
    let event = receive_one(&dst, &ebs_queue).await;
    assert_eq!(event["detail-type"], "EBS Snapshot Notification");
    assert_eq!(event["detail"]["event"], "shareSnapshot");
    assert_eq!(event["detail"]["source"], src_account.as_str());
    assert!(event["detail"]["snapshot_id"].as_str().unwrap().ends_with(&snap.id), "{event}");
    assert!(matches!(parse_message(&event.to_string()), Ok(Incoming::Native(_))), "snapferry parses it: {event}");
}

/// Behaviour 6: injected faults reach snapferry as the AWS errors they imitate, per account.
#[tokio::test]
async fn faults_are_injected_per_account() {
    let (account, bystander) = (new_account(), new_account());
    let src = clients_without_retries(&account, REGION).await;
    let other = clients_without_retries(&bystander, REGION).await;
    for c in [&src, &other] {
        fixtures::resource(c, ResourceKind::DbInstance, "faulty", None).await;
    }
    let (store, other_store) = (src.store(ResourceKind::DbInstance), other.store(ResourceKind::DbInstance));

    control::fault("CreateDBSnapshot", Some(&account), 1, "Throttling", 400);
    control::fault("CreateDBSnapshot", Some(&account), 1, "InternalFailure", 500);
    control::fault("CreateDBSnapshot", Some(&account), 1, "KMSKeyNotAccessibleFault", 400);
    // The bystander is not affected by faults aimed at another account.
    other_store.create("faulty", "bystander-snap", &Tags::new()).await.unwrap();

    let first = store.create("faulty", "faulty-snap", &Tags::new()).await.unwrap_err();
    assert_eq!(first.retry(), Some(Retry::Throttled), "{first}");
    let second = store.create("faulty", "faulty-snap", &Tags::new()).await.unwrap_err();
    assert_eq!(second.retry(), Some(Retry::Transient), "{second}");
    let third = store.create("faulty", "faulty-snap", &Tags::new()).await.unwrap_err();
    assert_eq!(third.code(), "KMSKeyNotAccessibleFault");
    assert!(!third.is_retryable());
    store.create("faulty", "faulty-snap", &Tags::new()).await.expect("faults are used up");

    // Behaviour 7: the request log counts every call and its outcome.
    let calls: Vec<_> = control::requests(&account).into_iter().filter(|(op, _)| op == "CreateDBSnapshot").collect();
    let codes: Vec<_> = calls.iter().map(|(_, code)| code.as_deref()).collect();
    assert_eq!(codes, vec![Some("Throttling"), Some("InternalFailure"), Some("KMSKeyNotAccessibleFault"), None]);
}

/// Behaviour 6, events: a dropped native event never arrives; the next one does.
#[tokio::test]
async fn native_events_can_be_dropped() {
    let account = new_account();
    let src = clients(&account, REGION).await;
    let queue = queue_for(&src, "dropped", json!({"source": ["aws.rds"]})).await;
    control::call(
        "POST",
        "/_snapferry/drop-events",
        Some(json!({"detail_type": "RDS DB Snapshot Event", "account": account, "count": 1})),
    );
    let store = src.store(ResourceKind::DbInstance);
    fixtures::resource(&src, ResourceKind::DbInstance, "lossy", None).await;
    let lost = store.create("lossy", "lost-snapshot", &Tags::new()).await.unwrap();
    fixtures::available(store.as_ref(), &lost.id).await;
    let kept = store.create("lossy", "kept-snapshot", &Tags::new()).await.unwrap();
    let event = receive_one(&src, &queue).await;
    assert_eq!(event["detail"]["SourceIdentifier"], kept.id.as_str(), "the first event was dropped: {event}");
    let emitted = control::events(&account);
    let dropped: Vec<_> = emitted.iter().filter(|e| e["dropped"] == true).collect();
    assert_eq!(dropped.len(), 1, "{emitted:?}");
    assert_eq!(dropped[0]["event"]["detail"]["SourceIdentifier"], lost.id.as_str());
}

/// `DescribeDBClusters` lists Neptune (and DocumentDB, Multi-AZ DB) clusters too: the
/// Aurora kind asks for its own engines only, so a Neptune cluster is never taken for one.
#[tokio::test]
async fn the_aurora_kind_lists_aurora_clusters_only() {
    let account = new_account();
    let c = clients(&account, REGION).await;
    let aurora = fixtures::resource(&c, ResourceKind::DbCluster, "aurora-one", None).await;
    c.rds
        .create_db_cluster()
        .db_cluster_identifier("graph-one")
        .engine("neptune")
        .storage_encrypted(true)
        .send()
        .await
        .expect("CreateDBCluster neptune");
    let listed = c.rds.describe_db_clusters().send().await.expect("DescribeDBClusters");
    assert_eq!(listed.db_clusters().len(), 2, "the API lists both");
    let ids: Vec<String> =
        c.store(ResourceKind::DbCluster).list_resources().await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, [aurora]);
}
