//! EBS through the same chain as the databases, on the emulator: volumes selected by their
//! `Name` tag on the AWS-managed key, on the sharing CMK and unencrypted; an EC2 instance's
//! volumes as one crash-consistent set; AWS's own `shareSnapshot` notification racing the
//! pipeline's "shared" event; a stranger sharing a snapshot; a snapshot that fails.

use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, InstanceType, ResourceType, Tag, TagSpecification,
};
use serde_json::json;
use snapferry::ResourceKind::Ebs;
use snapferry::clients::Clients;
use snapferry::events::Step;
use snapferry::store::ebs::DESCRIPTION_PREFIX;
use snapferry::tags;
use snapferry_e2e::chain::*;
use snapferry_e2e::{REGION, clients, control, eventually, new_account};
use snapferry_local::pipeline::PipelineOptions;

fn tagged(resource: ResourceType, pairs: &[(&str, &str)]) -> TagSpecification {
    let tags = pairs.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect();
    TagSpecification::builder().resource_type(resource).set_tags(Some(tags)).build()
}

/// A volume named `name` (its `Name` tag), encrypted with `key`, or on `aws/ebs` when
/// `key` is `Some("")`, or unencrypted when `None`.
async fn volume(c: &Clients, name: &str, key: Option<&str>, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![("Name", name)];
    pairs.extend_from_slice(extra);
    c.ec2
        .create_volume()
        .availability_zone(format!("{REGION}a"))
        .size(4)
        .encrypted(key.is_some())
        .set_kms_key_id(key.filter(|k| !k.is_empty()).map(str::to_string))
        .tag_specifications(tagged(ResourceType::Volume, &pairs))
        .send()
        .await
        .expect("CreateVolume")
        .volume_id()
        .expect("a volume id")
        .to_string()
}

/// An EC2 instance with a root and a data volume, tagged `backup=snapferry`; its volume ids.
async fn instance_with_two_volumes(c: &Clients) -> Vec<String> {
    let disk = |device: &str, size: i32| {
        BlockDeviceMapping::builder()
            .device_name(device)
            .ebs(EbsBlockDevice::builder().volume_size(size).encrypted(true).build())
            .build()
    };
    let run = c
        .ec2
        .run_instances()
        .image_id("ami-12345678")
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .block_device_mappings(disk("/dev/sda1", 8))
        .block_device_mappings(disk("/dev/sdf", 16))
        .tag_specifications(tagged(
            ResourceType::Instance,
            &[("Name", "app"), ("backup", "snapferry"), ("team", "web")],
        ))
        .send()
        .await
        .expect("RunInstances");
    let instance = &run.instances()[0];
    instance.block_device_mappings().iter().filter_map(|m| m.ebs()?.volume_id().map(str::to_string)).collect()
}

fn ebs_options() -> PipelineOptions {
    PipelineOptions {
        kinds: vec![Ebs],
        select_regex: Some("^(logs|data|plain)$".into()),
        select_instance_tag: Some("backup=snapferry".into()),
        lock: Some(("governance".into(), 1)),
        ..fast_options()
    }
}

/// The accounts an EBS snapshot is shared with (its createVolumePermission).
async fn volume_permissions(c: &Clients, snapshot_id: &str) -> Vec<String> {
    let out = c
        .ec2
        .describe_snapshot_attribute()
        .snapshot_id(snapshot_id)
        .attribute(aws_sdk_ec2::types::SnapshotAttributeName::CreateVolumePermission)
        .send()
        .await
        .expect("DescribeSnapshotAttribute");
    out.create_volume_permissions().iter().filter_map(|p| p.user_id().map(str::to_string)).collect()
}

#[tokio::test]
async fn volumes_and_an_instance_set_are_shared_copied_verified_and_locked() {
    let p = start(&ebs_options()).await;
    let logs = volume(&p.source, "logs", Some(""), &[("team", "platform")]).await;
    let data = volume(&p.source, "data", Some(&p.sharing_key), &[]).await;
    let plain = volume(&p.source, "plain", None, &[]).await;
    let ignored = volume(&p.source, "scratch", Some(""), &[]).await;
    let members = instance_with_two_volumes(&p.source).await;
    assert_eq!(members.len(), 2);
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    let all: Vec<&str> = [&logs, &data, &plain, &members[0], &members[1]].iter().map(|s| s.as_str()).collect();
    run_until(&p, &mut events, "every volume verified", verified(&all)).await;
    settle(&p, &mut events).await;

    // Source: one snapshot per volume, described for DLM-style filters; the unselected volume untouched.
    for v in &all {
        let created = made_by(&p.source, Ebs, "create", v).await;
        assert_eq!(created.len(), 1, "{v}: {created:?}");
        let description = created[0].description.as_deref().unwrap_or_default();
        assert!(description.starts_with(DESCRIPTION_PREFIX), "{v}: {description:?}");
    }
    assert!(made_by(&p.source, Ebs, "create", &ignored).await.is_empty(), "scratch is not selected");
    // aws/ebs and unencrypted snapshots are re-encrypted onto the sharing key; only that copy is shared.
    for v in [&logs, &plain] {
        let created = &made_by(&p.source, Ebs, "create", v).await[0];
        assert!(volume_permissions(&p.source, &created.id).await.is_empty(), "{v}'s own snapshot must not be shared");
        let shared = made_by(&p.source, Ebs, "share", v).await;
        assert_eq!(shared.len(), 1, "{v}: {shared:?}");
        assert!(same_key(shared[0].kms_key_id.as_deref(), &p.sharing_key), "{:?}", shared[0].kms_key_id);
        assert_eq!(volume_permissions(&p.source, &shared[0].id).await, vec![p.target.account.clone()]);
    }
    // On the sharing key already: shared as it is.
    assert!(made_by(&p.source, Ebs, "share", &data).await.is_empty());
    let created = &made_by(&p.source, Ebs, "create", &data).await[0];
    assert_eq!(volume_permissions(&p.source, &created.id).await, vec![p.target.account.clone()]);

    // Backup account: one copy each on the backup key, verified, locked, with the volume's tags.
    // AWS's shareSnapshot notification reached the copy step too, and made no second copy.
    let notified = control::events(&p.target.account)
        .into_iter()
        .filter(|e| e["event"]["detail"]["event"] == "shareSnapshot" && e["dropped"] != json!(true))
        .count();
    assert!(notified >= all.len(), "the backup account got {notified} shareSnapshot notifications");
    let mut copies = Vec::new();
    for v in &all {
        let copies_of = made_by(&p.target, Ebs, "copy", v).await;
        assert_eq!(copies_of.len(), 1, "one copy of {v}: {copies_of:?}");
        let copy = copies_of.into_iter().next().unwrap();
        assert!(same_key(copy.kms_key_id.as_deref(), &p.target_key), "{} is on {:?}", copy.id, copy.kms_key_id);
        assert!(copy.tags.contains_key(tags::VERIFIED_AT), "{:?}", copy.tags);
        copies.push(copy);
    }
    assert_eq!(copies[0].tags.get("team").map(String::as_str), Some("platform"), "{:?}", copies[0].tags);
    let locked = p
        .target
        .ec2
        .describe_locked_snapshots()
        .set_snapshot_ids(Some(copies.iter().map(|c| c.id.clone()).collect()))
        .send()
        .await
        .expect("DescribeLockedSnapshots");
    assert_eq!(locked.snapshots().len(), all.len(), "every verified copy is locked: {locked:?}");
    assert!(locked.snapshots().iter().all(|s| s.lock_state().map(|l| l.as_str()) == Some("governance")));
    let refused = p.target.ec2.delete_snapshot().snapshot_id(&copies[0].id).send().await;
    let code = refused.expect_err("a locked copy cannot be deleted").into_service_error();
    assert_eq!(aws_smithy_types::error::metadata::ProvideErrorMetadata::code(&code), Some("SnapshotLocked"));
    for v in &all {
        let Step::RestoreVerified { locked_until, size_gib, .. } = &first(&events, v, VERIFIED).detail.step else {
            unreachable!()
        };
        assert!(locked_until.is_some(), "{v}'s verdict says until when it is locked");
        assert!(size_gib.is_some(), "{v}'s test volume size is reported");
    }

    // The instance's volumes: one set, one run, verified as a whole once both are.
    let set_members: Vec<_> = set_of(&p, &members).await;
    assert_eq!(set_members[0].0, set_members[1].0, "one correlation id for the set");
    assert_eq!(set_members[0].1, set_members[1].1, "one set name");
    let counts: Vec<u32> = members
        .iter()
        .map(|m| match &first(&events, m, VERIFIED).detail.step {
            Step::RestoreVerified { set: Some(set), .. } => {
                assert_eq!(set.size, 2);
                set.verified.unwrap_or(0)
            }
            other => panic!("{m}: no set in {other:?}"),
        })
        .collect();
    assert_eq!(counts.iter().max(), Some(&2), "the later member reports the set verified: {counts:?}");

    // The test volumes are gone, and nothing was dead-lettered.
    eventually("test volumes deleted", DEADLINE, || async {
        let out = p
            .target
            .ec2
            .describe_volumes()
            .filters(Filter::builder().name(format!("tag:{}", tags::RESTORE_TEST)).values("true").build())
            .send()
            .await
            .expect("DescribeVolumes");
        out.volumes().is_empty().then_some(())
    })
    .await;
    assert_dlqs_empty(&p).await;
}

/// (correlation id, set name) of each member's scheduled snapshot.
async fn set_of(p: &snapferry_local::pipeline::LocalPipeline, members: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for m in members {
        let s = &made_by(&p.source, Ebs, "create", m).await[0];
        out.push((s.tags[tags::CORRELATION_ID].clone(), s.tags.get(tags::SET).cloned().unwrap_or_default()));
    }
    out
}

/// A completed snapshot of a new volume on `key`, in `c`'s account.
async fn completed_snapshot(c: &Clients, key: &str) -> (String, String) {
    let vol = volume(c, "manual", Some(key), &[]).await;
    let snap = c.ec2.create_snapshot().volume_id(&vol).send().await.expect("CreateSnapshot");
    let id = snap.snapshot_id().unwrap().to_string();
    eventually("the snapshot to complete", DEADLINE, || async {
        let out = c.ec2.describe_snapshots().snapshot_ids(&id).send().await.expect("DescribeSnapshots");
        (out.snapshots()[0].state().map(|s| s.as_str()) == Some("completed")).then_some(())
    })
    .await;
    (vol, id)
}

#[tokio::test]
async fn a_snapshot_shared_without_the_pipeline_is_copied_from_aws_notification_and_a_strangers_is_rejected() {
    let p = start(&PipelineOptions { select_regex: None, ..ebs_options() }).await;
    // Shared by hand, so only AWS's shareSnapshot notification tells the backup account.
    let (vol, snap) = completed_snapshot(&p.source, &p.sharing_key).await;
    let share = |c: &Clients, snapshot: String, to: String| {
        let ec2 = c.ec2.clone();
        async move {
            let add = aws_sdk_ec2::types::CreateVolumePermission::builder().user_id(to).build();
            ec2.modify_snapshot_attribute()
                .snapshot_id(snapshot)
                .create_volume_permission(
                    aws_sdk_ec2::types::CreateVolumePermissionModifications::builder().add(add).build(),
                )
                .send()
                .await
                .expect("ModifySnapshotAttribute");
        }
    };
    share(&p.source, snap.clone(), p.target.account.clone()).await;
    // A stranger (not allowlisted) shares one of its own snapshots with the backup account.
    let stranger = clients(&new_account(), REGION).await;
    let stranger_key = stranger.kms.create_key().send().await.expect("CreateKey");
    let stranger_key = stranger_key.key_metadata().unwrap().arn().unwrap().to_string();
    let (stranger_vol, stranger_snap) = completed_snapshot(&stranger, &stranger_key).await;
    share(&stranger, stranger_snap, p.target.account.clone()).await;

    let mut events = Vec::new();
    run_until(&p, &mut events, "the manual share verified and the stranger rejected", |seen| {
        has(seen, &vol, VERIFIED) && has(seen, &stranger_vol, REJECTED)
    })
    .await;
    settle(&p, &mut events).await;
    let copies = made_by(&p.target, Ebs, "copy", &vol).await;
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(copies[0].tags.get(tags::SOURCE_ACCOUNT), Some(&p.source.account), "lineage: {:?}", copies[0].tags);
    let Step::Rejected { reason, .. } = &first(&events, &stranger_vol, REJECTED).detail.step else { unreachable!() };
    assert!(reason.contains("SOURCE_ACCOUNTS"), "{reason}");
    assert!(made_by(&p.target, Ebs, "copy", &stranger_vol).await.is_empty(), "a stranger's snapshot is never copied");
}

#[tokio::test]
async fn a_snapshot_that_fails_is_reported_and_not_shared() {
    let p = start(&ebs_options()).await;
    let logs = volume(&p.source, "logs", Some(""), &[]).await;
    control::call(
        "POST",
        "/_snapferry/fail-completions",
        Some(json!({"kind": "ebs", "account": p.source.account, "count": 1})),
    );
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    run_until(&p, &mut events, "the failed snapshot reported", |seen| has(seen, &logs, REJECTED)).await;
    settle(&p, &mut events).await;
    let Step::Rejected { reason, .. } = &first(&events, &logs, REJECTED).detail.step else { unreachable!() };
    assert!(reason.contains("failed"), "{reason}");
    assert!(made_by(&p.source, Ebs, "share", &logs).await.is_empty(), "nothing made from a failed snapshot");
    assert!(made_by(&p.target, Ebs, "copy", &logs).await.is_empty());
}

/// EBS has no name to refuse a second snapshot or copy by (RDS answers
/// `DBSnapshotAlreadyExists`): messages about one volume handled at once (every event
/// delivered twice here, and AWS's notification beside the pipeline's event) must still make
/// one snapshot, one re-encrypted copy where one is needed, and one copy in each region.
#[tokio::test]
async fn messages_about_one_share_handled_at_once_make_one_copy_per_region() {
    let options = PipelineOptions {
        select_regex: Some("^(v[0-9])$".into()),
        extra_regions: vec![snapferry_e2e::OTHER_REGION.to_string()],
        concurrency: 6,
        ..ebs_options()
    };
    let p = start(&options).await;
    snapferry_e2e::faults::deliver_everything_twice(&p).await;
    // Copy calls throttled (the SDK's retries back off): the moment between looking for a
    // copy and making it widens, as it does under RDS's and EC2's throttling. So does the
    // moment between looking for a snapshot and taking it, for the schedule delivered twice.
    for account in [&p.source.account, &p.target.account] {
        control::fault("CopySnapshot", Some(account), 8, "RequestLimitExceeded", 503);
    }
    control::fault("CreateSnapshot", Some(&p.source.account), 3, "RequestLimitExceeded", 503);
    let mut volumes = Vec::new();
    for i in 0..4 {
        // Half on aws/ebs: share-snapshot re-encrypts those with a copy of its own.
        let key = if i % 2 == 0 { "" } else { p.sharing_key.as_str() };
        volumes.push(volume(&p.source, &format!("v{i}"), Some(key), &[]).await);
    }
    // The schedule delivered twice (EventBridge delivers at least once): handled at once, each
    // handling finds no snapshot yet and takes one; EC2 refuses no second of a name.
    let at = chrono::Utc::now();
    for _ in 0..2 {
        p.host.fire(Some("create-snapshot"), at).await.expect("fire the schedule");
    }
    let all: Vec<&str> = volumes.iter().map(String::as_str).collect();
    let mut events = Vec::new();
    run_until(&p, &mut events, "every volume verified and in the extra region", |seen| {
        verified(&all)(seen)
            && all.iter().all(|v| {
                about(seen, v).iter().any(|e| {
                    matches!(e.detail.step, Step::Copied { .. })
                        && e.detail.snapshot.region == snapferry_e2e::OTHER_REGION
                })
            })
    })
    .await;
    settle(&p, &mut events).await;
    let regional = p.target.for_region(snapferry_e2e::OTHER_REGION);
    for (i, v) in all.iter().enumerate() {
        let taken = made_by(&p.source, Ebs, "create", v).await;
        assert_eq!(taken.len(), 1, "one snapshot of {v} (a duplicate is deleted): {taken:?}");
        assert_eq!(made_by(&p.source, Ebs, "share", v).await.len(), 1 - i % 2, "re-encrypted once, if at all: {v}");
        let home = made_by(&p.target, Ebs, "copy", v).await;
        assert_eq!(home.len(), 1, "one copy of {v}: {home:?}");
        let extra = made_by(&regional, Ebs, "copy", v).await;
        assert_eq!(extra.len(), 1, "one copy of {v} in {}: {extra:?}", snapferry_e2e::OTHER_REGION);
    }
    assert_dlqs_empty(&p).await;
}
