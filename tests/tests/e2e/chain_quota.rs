//! The chain against AWS's copy quota, lowered to one copy in progress per account and
//! region, for this test's accounts only.

use serde_json::json;
use snapferry::ResourceKind;
use snapferry_e2e::chain::*;
use snapferry_e2e::control;

/// One copy in progress per account and region, for both of `p`'s accounts.
fn lower_copy_quotas(p: &LocalPipeline) {
    for account in [&p.source.account, &p.target.account] {
        control::quotas(account, json!({"rds_instance_copies": 1, "ebs_copies": 1}));
    }
}

/// The step knows the quota (COPY_SLOTS, as an account at AWS's defaults needs no setting):
/// it looks at the copies in progress and waits for a free slot instead of asking AWS.
#[tokio::test]
async fn copies_beyond_the_copy_slots_wait_for_a_free_slot_without_being_refused() {
    let options = PipelineOptions { copy_slots: Some("db-instance=1".into()), ..fast_options() };
    let p = start(&options).await;
    lower_copy_quotas(&p);
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
    assert_eq!(quota_hits, 0, "a copy was asked for into a full quota");
    for name in databases {
        let copies = made_by(&p.target, ResourceKind::DbInstance, "copy", name).await;
        assert_eq!(copies.len(), 1, "{name}");
        assert!(same_key(copies[0].kms_key_id.as_deref(), &p.target_key));
        assert_eq!(count(&events, name, VERIFIED), 1, "{name}:\n{}", summary(&events));
    }
    assert_dlqs_empty(&p).await;
}

#[tokio::test]
async fn ebs_copies_beyond_the_copy_limit_wait_and_complete_without_dead_letters() {
    use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
    let options = PipelineOptions { kinds: vec![ResourceKind::Ebs], ..fast_options() };
    let p = start(&options).await;
    lower_copy_quotas(&p);
    let mut volumes = Vec::new();
    for _ in 0..3 {
        let name = Tag::builder().key("Name").value("quota").build();
        let out = p
            .source
            .ec2
            .create_volume()
            .availability_zone(format!("{}a", snapferry_e2e::REGION))
            .size(4)
            .encrypted(true)
            .kms_key_id(&p.sharing_key)
            .tag_specifications(TagSpecification::builder().resource_type(ResourceType::Volume).tags(name).build())
            .send()
            .await
            .expect("CreateVolume");
        volumes.push(out.volume_id().expect("volume id").to_string());
    }
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    let all: Vec<&str> = volumes.iter().map(String::as_str).collect();
    run_until(&p, &mut events, "every volume verified", verified(&all)).await;
    settle(&p, &mut events).await;

    // COPY_SLOTS left at AWS's 20 against a limit of 1 (as when other tools copy too): EBS
    // answers ResourceLimitExceeded, and the wait is timed by the copies in progress.
    let limit_hits = control::requests(&p.target.account)
        .into_iter()
        .filter(|(op, e)| op == "CopySnapshot" && e.as_deref() == Some("ResourceLimitExceeded"))
        .count();
    assert!(limit_hits > 0, "three shared snapshots at once never hit a limit of one copy");
    for v in &all {
        assert_eq!(made_by(&p.target, ResourceKind::Ebs, "copy", v).await.len(), 1, "{v}");
        assert_eq!(count(&events, v, VERIFIED), 1, "{v}:\n{}", summary(&events));
    }
    assert_dlqs_empty(&p).await;
}
