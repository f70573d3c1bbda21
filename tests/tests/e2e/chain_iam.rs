//! Least privilege on the emulator: each step runs as a role of its own holding exactly its
//! statements of `shared/permissions.json`, and the emulator refuses whatever a role's
//! policy does not grant, as IAM does. So the chain passing proves every call is granted;
//! the tests here prove the converse (a missing action fails the chain with AccessDenied)
//! and that no role holds an action the code never needs.

use snapferry::ResourceKind;
use snapferry::permissions::{Permissions, action_matches};
use snapferry::routing::Routing;
use snapferry::sqs::{ATTR_ERROR_CODE, ATTR_ERROR_REASON};
use snapferry_e2e::chain::*;
use snapferry_e2e::control;
use std::collections::{BTreeMap, BTreeSet};

/// Actions the roles hold that the chain below does not call, each for a reason: a test
/// fails when a role gains an action that is neither called nor listed here.
const GRANTED_NOT_CALLED: &[(&str, &str, &str)] = &[
    // Called by RDS on the step's behalf (forward access), never by the code.
    ("*", "kms:*", "RDS uses the keys for the copy or restore the step asked for"),
    // IAM authorizes tags given on a create or copy call as rds:AddTagsToResource too.
    ("create-snapshot", "rds:AddTagsToResource", "tags passed to CreateDBSnapshot"),
    ("share-snapshot", "rds:AddTagsToResource", "tags passed to CopyDBSnapshot"),
    ("restore", "rds:AddTagsToResource", "tags passed to the restore calls; the verified-at tag"),
    // Only when something goes wrong.
    ("*", "sqs:ChangeMessageVisibility", "the retry backoff of a failed record"),
    (
        "*",
        "sqs:GetQueueAttributes",
        "Lambda's event source mapping reads its queue's attributes; the local host needs not",
    ),
    (
        "create-snapshot",
        "events:PutEvents",
        "a snapshot AWS refused (Snapshot Rejected); the next step starts on RDS's own event",
    ),
    ("*", "rds:DescribeAccountAttributes", "which snapshot quota is full, after SnapshotQuotaExceeded"),
    ("copy-shared-snapshot", "rds:DeleteDBSnapshot", "a failed copy is deleted before it is made again"),
    ("copy-shared-snapshot", "rds:DeleteDBClusterSnapshot", "a failed copy is deleted before it is made again"),
    // Sources on the sharing key are shared as they are; this chain re-encrypts an instance only.
    ("share-snapshot", "rds:CopyDBClusterSnapshot", "an Aurora snapshot on a key the targets cannot use"),
    // IAM authorizes tags given on a create, copy or CreateVolume call as ec2:CreateTags too.
    ("create-snapshot", "ec2:CreateTags", "tags passed to CreateSnapshot / CreateSnapshots"),
    ("share-snapshot", "ec2:CreateTags", "tags passed to CopySnapshot"),
    ("share-snapshot", "ec2:DeleteSnapshot", "a failed copy is deleted before it is made again"),
    ("copy-shared-snapshot", "ec2:DeleteSnapshot", "a failed copy is deleted before it is made again"),
    // The volume on aws/ebs is copied, the instance's volumes on the account's own key.
    ("create-snapshot", "ec2:CreateSnapshot", "a single volume; this chain snapshots an instance's set"),
    // Retention deletes what its rules no longer keep; this chain's one backup per resource
    // is kept (chain_expire deletes past the rules under these roles).
    ("expire-snapshots", "rds:DeleteDBClusterSnapshot", "the cluster was shared as it is: no intermediate copy"),
    ("expire-copies", "rds:DeleteDBSnapshot", "a copy past its rules"),
    ("expire-copies", "rds:DeleteDBClusterSnapshot", "a copy past its rules"),
    ("expire-copies", "ec2:DeleteSnapshot", "a copy past its rules"),
    ("expire-copies", "events:PutEvents", "Snapshot Expired, and the quota warning"),
    // Reconcile acts only on what stalled (chain_reconcile restarts a share under this role).
    ("reconcile-snapshots", "rds:DescribeDB*SnapshotAttributes", "whether a stalled snapshot is shared"),
    ("reconcile-snapshots", "ec2:DescribeSnapshotAttribute", "whether a stalled snapshot is shared"),
    ("reconcile-snapshots", "rds:AddTagsToResource", "marks a repaired snapshot"),
    ("reconcile-snapshots", "ec2:CreateTags", "marks a repaired snapshot"),
    ("reconcile-snapshots", "sqs:SendMessage", "restarts a stalled share"),
    // Held only with source data checks, which this chain leaves off (chain_data_source runs them).
    ("share-snapshot", "secretsmanager:GetSecretValue", "a source database's master secret (SOURCE_DATA_CHECKS)"),
    ("reconcile-snapshots", "events:PutEvents", "Backup Repaired, Backup Overdue"),
    ("reconcile-copies", "rds:AddTagsToResource", "marks a repaired copy"),
    ("reconcile-copies", "ec2:CreateTags", "marks a repaired copy"),
    ("reconcile-copies", "sqs:SendMessage", "restarts a stalled copy or restore test"),
    ("reconcile-copies", "events:PutEvents", "Backup Repaired, Backup Overdue"),
    // The copy ledger is written outside the copy step only when it needs it: a copy of the
    // backup account deleted (this chain's retention deletes none there), an entry AWS
    // contradicts (none here; e2e ledger tests correct one).
    ("expire-copies", "dynamodb:UpdateItem", "counts a deleted copy out of its source's copies held"),
    ("reconcile-copies", "dynamodb:UpdateItem", "sets a source's count of copies held to AWS's"),
    ("reconcile-copies", "dynamodb:DeleteItem", "drops a waiting entry whose copy was made or gave up"),
];

/// An EC2 instance tagged `backup` with two volumes on the account's `aws/ebs` key; their ids.
async fn ec2_instance(c: &snapferry::clients::Clients) -> Vec<String> {
    use aws_sdk_ec2::types::{BlockDeviceMapping, EbsBlockDevice, ResourceType, Tag, TagSpecification};
    let disk = |device: &str| {
        BlockDeviceMapping::builder()
            .device_name(device)
            .ebs(EbsBlockDevice::builder().volume_size(8).encrypted(true).build())
            .build()
    };
    let tag = Tag::builder().key("backup").value("daily").build();
    let run = c
        .ec2
        .run_instances()
        .image_id("ami-12345678")
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .block_device_mappings(disk("/dev/sda1"))
        .block_device_mappings(disk("/dev/sdf"))
        .tag_specifications(TagSpecification::builder().resource_type(ResourceType::Instance).tags(tag).build())
        .send()
        .await
        .expect("RunInstances");
    run.instances()[0].block_device_mappings().iter().filter_map(|m| m.ebs()?.volume_id().map(str::to_string)).collect()
}

fn excused(step: &str, action: &str) -> bool {
    GRANTED_NOT_CALLED.iter().any(|(s, a, _)| (*s == "*" || *s == step) && action_matches(a, action))
}

#[tokio::test]
async fn every_call_of_every_step_is_granted_to_its_role_and_no_role_holds_more() {
    // Selected by tag, so both source steps read the databases' and the instance's tags;
    // every kind, and EBS locks, so every EBS statement is exercised too.
    let options = PipelineOptions {
        select_regex: None,
        select_tag: Some("backup".into()),
        select_instance_tag: Some("backup".into()),
        kinds: vec![ResourceKind::DbInstance, ResourceKind::DbCluster, ResourceKind::Ebs],
        lock: Some(("governance".into(), 1)),
        release_shares: true,
        // The built-in data checks on the PostgreSQL instance and cluster: their password resets.
        data_checks: Some(r#"{"databases": []}"#.into()),
        ..fast_options()
    };
    let p = start(&options).await;
    instance(&p.source, "orders", Encryption::AwsManaged, &[("backup", "daily")]).await;
    p.source
        .rds
        .create_db_instance()
        .db_instance_identifier("billing")
        .engine("postgres")
        .db_instance_class("db.t4g.micro")
        .allocated_storage(20)
        .master_username("admin")
        .master_user_password("not-a-secret-1")
        .storage_encrypted(true)
        .tags(aws_sdk_rds::types::Tag::builder().key("backup").value("daily").build())
        .send()
        .await
        .expect("CreateDBInstance");
    let volumes = ec2_instance(&p.source).await;
    p.source
        .rds
        .create_db_cluster()
        .db_cluster_identifier("ledger")
        .engine("aurora-postgresql")
        .master_username("admin")
        .master_user_password("not-a-secret-1")
        .storage_encrypted(true)
        .kms_key_id(&p.sharing_key)
        .tags(aws_sdk_rds::types::Tag::builder().key("backup").value("daily").build())
        .send()
        .await
        .expect("CreateDBCluster");
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    let mut all = vec!["orders", "billing", "ledger"];
    all.extend(volumes.iter().map(String::as_str));
    run_until(&p, &mut events, "all verified", verified(&all)).await;
    // The copies came back to the source, which withdrew its shares; an hour on, retention
    // runs in both accounts and the intermediate copies go.
    settle(&p, &mut events).await;
    let later = chrono::Utc::now() + chrono::Duration::minutes(61);
    for step in ["expire-snapshots", "expire-copies", "reconcile-snapshots", "reconcile-copies"] {
        p.host.fire(Some(step), later).await.expect("fire the expire schedules");
    }
    settle(&p, &mut events).await;
    assert!(count(&events, "orders", "Snapshot Expired") == 1, "{}", summary(&events));
    assert_dlqs_empty(&p).await;

    let permissions = Permissions::load();
    let routing = Routing::load();
    let mut called: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for account in [&p.source.account, &p.target.account] {
        for (action, principal, error) in control::calls(account) {
            let Some(step) = principal.as_deref().and_then(|r| r.strip_prefix("snapferry-")) else { continue };
            if routing.function(step).is_none() {
                continue;
            }
            assert_ne!(error.as_deref(), Some("AccessDenied"), "{step} was refused {action}");
            assert!(permissions.allows(step, &action), "{step} called {action}, which its role does not hold");
            called.entry(step.to_string()).or_default().insert(action.to_ascii_lowercase());
        }
    }
    let mut unneeded = Vec::new();
    for function in &routing.functions {
        let step = function.name.as_str();
        let calls = called.get(step).cloned().unwrap_or_default();
        assert!(!calls.is_empty(), "{step} made no call as its own role: {called:?}");
        for statement in permissions.statements(step) {
            for action in &statement.actions {
                let used = calls.iter().any(|c| action_matches(action, c));
                if !used && !excused(step, action) {
                    unneeded.push(format!("{step}: {action} ({})", statement.sid));
                }
            }
        }
    }
    assert!(unneeded.is_empty(), "held, never called, and no reason excuses it: {unneeded:#?}");
}

#[tokio::test]
async fn a_role_without_one_action_its_step_calls_fails_with_access_denied() {
    // The restore role as it was first deployed: allowed to restore, not to read the copy.
    let mut options = fast_options();
    options.permissions = Permissions::load().without("restore", "rds:DescribeDBSnapshots");
    let p = start(&options).await;
    instance(&p.source, "orders", Encryption::AwsManaged, &[]).await;
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    let restore = p.deployment.queue(&p.target.account, "restore").expect("restore deployed").clone();
    let dead = drive_until(&p, &mut events, "the restore step's dead letter", || async {
        let messages = dlq_messages(&p.target, &restore.dlq_url).await;
        (!messages.is_empty()).then_some(messages)
    })
    .await;
    assert_eq!(attribute(&dead[0], ATTR_ERROR_CODE), "AccessDenied");
    assert!(
        attribute(&dead[0], ATTR_ERROR_REASON).contains("rds:DescribeDBSnapshots"),
        "{}",
        attribute(&dead[0], ATTR_ERROR_REASON)
    );
    assert!(!has(&events, "orders", VERIFIED), "{}", summary(&events));
    // Everything before the restore step went through: the copy is there, unverified.
    assert!(has(&events, "orders", COPIED), "{}", summary(&events));
    let refused: Vec<_> = control::calls(&p.target.account)
        .into_iter()
        .filter(|(_, principal, error)| {
            principal.as_deref() == Some("snapferry-restore") && error.as_deref() == Some("AccessDenied")
        })
        .collect();
    assert!(
        refused.iter().all(|(action, ..)| action == "rds:DescribeDBSnapshots") && !refused.is_empty(),
        "{refused:?}"
    );
}
