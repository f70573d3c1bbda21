"""Behaviours 1-5 for EBS snapshots."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from conftest import OTHER_REGION, REGION, create_key, ebs_snapshot, error_code, make_queue_for_rule, wait_for

EBS_PATTERN = {"source": ["aws.ec2"], "detail-type": ["EBS Snapshot Notification"]}


def wait_state(ec2, snapshot_id, state="completed"):
    return wait_for(
        lambda: (s := ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0])["State"] == state and s,
        what=f"{snapshot_id} {state}",
    )


def test_create_pending_then_completed_with_event(emu, accounts):
    (acct,) = accounts(1)
    drain = make_queue_for_rule(emu, acct, EBS_PATTERN)
    ec2 = emu.client("ec2", acct)
    vol = ec2.create_volume(Size=8, AvailabilityZone="us-east-1a")
    snap = ec2.create_snapshot(VolumeId=vol["VolumeId"])
    # Progress is the elapsed share of the delay when the response is rendered: 0% unless
    # the machine is loaded enough that rendering takes part of the delay.
    assert snap["State"] == "pending" and int(snap["Progress"].rstrip("%")) < 100, snap
    done = wait_state(ec2, snap["SnapshotId"])
    assert done["Progress"] == "100%"
    event = wait_for(lambda: drain(), what="event")[0]
    assert event["detail-type"] == "EBS Snapshot Notification" and event["source"] == "aws.ec2"
    assert event["account"] == acct and event["region"] == REGION
    d = event["detail"]
    assert d["event"] == "createSnapshot" and d["result"] == "succeeded" and d["cause"] == ""
    assert d["snapshot_id"] == f"arn:aws:ec2::{REGION}:snapshot/{snap['SnapshotId']}"
    assert d["source"] == f"arn:aws:ec2::{REGION}:volume/{vol['VolumeId']}"
    assert d["startTime"] and d["endTime"] and "request-id" in d
    assert event["resources"] == [d["snapshot_id"]]


def test_share_describe_copy_cross_account(emu, accounts):
    src, dst = accounts(2)
    key = create_key(emu, src)
    snap = ebs_snapshot(emu, src, Encrypted=True, KmsKeyId=key)
    sid = snap["SnapshotId"]
    assert snap["KmsKeyId"] == key and snap["Encrypted"] is True
    ec2_src, ec2_dst = emu.client("ec2", src), emu.client("ec2", dst)
    drain_dst = make_queue_for_rule(emu, dst, EBS_PATTERN)

    # Not shared: not visible, not copyable.
    assert ec2_dst.describe_snapshots(OwnerIds=[src])["Snapshots"] == []
    with pytest.raises(ClientError) as exc:
        ec2_dst.describe_snapshots(SnapshotIds=[sid])
    assert error_code(exc) == "InvalidSnapshot.NotFound"
    with pytest.raises(ClientError) as exc:
        ec2_dst.copy_snapshot(SourceSnapshotId=sid, SourceRegion=REGION)
    assert error_code(exc) == "InvalidSnapshot.NotFound"

    ec2_src.modify_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission", OperationType="add", UserIds=[dst])
    perms = ec2_src.describe_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission")["CreateVolumePermissions"]
    assert perms == [{"UserId": dst}]
    share_event = wait_for(lambda: drain_dst(), what="shareSnapshot event")[0]
    assert share_event["account"] == dst
    assert share_event["detail"]["event"] == "shareSnapshot" and share_event["detail"]["source"] == src

    for kwargs in ({"RestorableByUserIds": ["self"]}, {"RestorableByUserIds": [dst]}, {"OwnerIds": [src]}, {"SnapshotIds": [sid]}, {}):
        found = ec2_dst.describe_snapshots(**kwargs)["Snapshots"]
        assert [s["SnapshotId"] for s in found] == [sid], kwargs
        assert found[0]["OwnerId"] == src
    assert ec2_dst.describe_snapshots(OwnerIds=["self"])["Snapshots"] == []

    dst_key = create_key(emu, dst, OTHER_REGION)
    ec2_dst_other = emu.client("ec2", dst, OTHER_REGION)
    drain_copy = make_queue_for_rule(emu, dst, EBS_PATTERN, region=OTHER_REGION)
    copy = ec2_dst_other.copy_snapshot(
        SourceSnapshotId=sid,
        SourceRegion=REGION,
        KmsKeyId=dst_key,
        Encrypted=True,
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "k", "Value": "v"}]}],
    )
    done = wait_state(ec2_dst_other, copy["SnapshotId"])
    assert done["OwnerId"] == dst and done["KmsKeyId"] == dst_key and done["Encrypted"] is True
    assert done["VolumeSize"] == 8 and {"Key": "k", "Value": "v"} in done["Tags"]
    ev = wait_for(lambda: drain_copy(), what="copySnapshot event")[0]["detail"]
    assert ev["event"] == "copySnapshot" and ev["result"] == "succeeded"
    assert ev["source"] == f"arn:aws:ec2::{REGION}:snapshot/{sid}"
    assert ev["snapshot_id"] == f"arn:aws:ec2::{OTHER_REGION}:snapshot/{copy['SnapshotId']}"

    ec2_src.modify_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission", OperationType="remove", UserIds=[dst])
    assert ec2_dst.describe_snapshots(RestorableByUserIds=["self"])["Snapshots"] == []


def test_share_refused_on_aws_managed_key(emu, accounts):
    src, dst = accounts(2)
    snap = ebs_snapshot(emu, src, Encrypted=True)
    key = emu.client("kms", src).describe_key(KeyId=snap["KmsKeyId"])["KeyMetadata"]
    assert key["KeyManager"] == "AWS"
    with pytest.raises(ClientError) as exc:
        emu.client("ec2", src).modify_snapshot_attribute(
            SnapshotId=snap["SnapshotId"], Attribute="createVolumePermission", OperationType="add", UserIds=[dst]
        )
    assert error_code(exc) == "InvalidParameter"
    assert "AWS Managed CMK can't be shared" in exc.value.response["Error"]["Message"]


def test_share_encrypted_publicly_refused(emu, accounts):
    (src,) = accounts(1)
    snap = ebs_snapshot(emu, src, Encrypted=True, KmsKeyId=create_key(emu, src))
    with pytest.raises(ClientError) as exc:
        emu.client("ec2", src).modify_snapshot_attribute(
            SnapshotId=snap["SnapshotId"], Attribute="createVolumePermission", OperationType="add", GroupNames=["all"]
        )
    assert error_code(exc) == "InvalidParameter"


def test_pending_snapshot_cannot_be_copied_or_shared(emu, accounts, config):
    config(delay_seconds=30)
    src, dst = accounts(2)
    snap = ebs_snapshot(emu, src, wait=False)
    ec2 = emu.client("ec2", src)
    with pytest.raises(ClientError) as exc:
        ec2.copy_snapshot(SourceSnapshotId=snap["SnapshotId"], SourceRegion=REGION)
    assert error_code(exc) == "IncorrectState"
    with pytest.raises(ClientError) as exc:
        ec2.modify_snapshot_attribute(SnapshotId=snap["SnapshotId"], Attribute="createVolumePermission", OperationType="add", UserIds=[dst])
    assert error_code(exc) == "IncorrectState"


def test_disabled_keys_refused(emu, accounts):
    src, dst = accounts(2)
    key = create_key(emu, src)
    snap = ebs_snapshot(emu, src, Encrypted=True, KmsKeyId=key)
    emu.client("ec2", src).modify_snapshot_attribute(
        SnapshotId=snap["SnapshotId"], Attribute="createVolumePermission", OperationType="add", UserIds=[dst]
    )
    dst_key = create_key(emu, dst)
    emu.client("kms", dst).disable_key(KeyId=dst_key)
    ec2_dst = emu.client("ec2", dst)
    with pytest.raises(ClientError) as exc:
        ec2_dst.copy_snapshot(SourceSnapshotId=snap["SnapshotId"], SourceRegion=REGION, KmsKeyId=dst_key, Encrypted=True)
    assert error_code(exc) == "KMS.DisabledException"
    emu.client("kms", dst).enable_key(KeyId=dst_key)
    emu.client("kms", src).disable_key(KeyId=key)
    with pytest.raises(ClientError) as exc:
        ec2_dst.copy_snapshot(SourceSnapshotId=snap["SnapshotId"], SourceRegion=REGION, KmsKeyId=dst_key, Encrypted=True)
    assert error_code(exc) == "KMS.DisabledException"


def test_copy_quota(emu, accounts, config):
    config(delay_seconds=30, quotas={"ebs_copies": 2})
    (acct,) = accounts(1)
    ec2 = emu.client("ec2", acct)
    config(delay_seconds=0)
    snap = ebs_snapshot(emu, acct)
    config(delay_seconds=30)
    ec2.copy_snapshot(SourceSnapshotId=snap["SnapshotId"], SourceRegion=REGION)
    ec2.copy_snapshot(SourceSnapshotId=snap["SnapshotId"], SourceRegion=REGION)
    with pytest.raises(ClientError) as exc:
        ec2.copy_snapshot(SourceSnapshotId=snap["SnapshotId"], SourceRegion=REGION)
    assert error_code(exc) == "ResourceLimitExceeded"
    assert "Too many snapshot copies in progress" in exc.value.response["Error"]["Message"]
    # Another destination region has its own budget.
    emu.client("ec2", acct, OTHER_REGION).copy_snapshot(SourceSnapshotId=snap["SnapshotId"], SourceRegion=REGION)


def test_failed_copy_emits_failed_event(emu, accounts):
    (acct,) = accounts(1)
    snap = ebs_snapshot(emu, acct)
    drain = make_queue_for_rule(emu, acct, EBS_PATTERN)
    emu.control("POST", "/fail-completions", {"kind": "ebs", "account": acct})
    ec2 = emu.client("ec2", acct)
    copy = ec2.copy_snapshot(SourceSnapshotId=snap["SnapshotId"], SourceRegion=REGION)
    wait_state(ec2, copy["SnapshotId"], "error")
    ev = wait_for(lambda: drain(), what="failed event")[0]["detail"]
    assert ev["event"] == "copySnapshot" and ev["result"] == "failed" and ev["cause"]


def test_drop_ebs_event_by_name(emu, accounts):
    (acct,) = accounts(1)
    emu.control("POST", "/drop-events", {"detail_type": "EBS Snapshot Notification", "event_id": "createSnapshot", "account": acct, "count": 1})
    ebs_snapshot(emu, acct)
    ebs_snapshot(emu, acct)
    recorded = wait_for(lambda: len(emu.events_for(acct)) == 2 and emu.events_for(acct), what="2 events")
    assert [e["dropped"] for e in recorded] == [True, False]
    assert recorded[0]["event_id_or_name"] == "createSnapshot"


def test_create_volume_from_shared_snapshot(emu, accounts):
    src, dst, stranger = accounts(3)
    key = create_key(emu, src)
    snap = ebs_snapshot(emu, src, Encrypted=True, KmsKeyId=key)
    ec2_src = emu.client("ec2", src)
    own = ec2_src.create_volume(AvailabilityZone="us-east-1a", SnapshotId=snap["SnapshotId"])
    assert own["KmsKeyId"] == key and own["Size"] == 8 and own["SnapshotId"] == snap["SnapshotId"]
    ec2_src.modify_snapshot_attribute(SnapshotId=snap["SnapshotId"], Attribute="createVolumePermission", OperationType="add", UserIds=[dst])
    dst_key = create_key(emu, dst)
    vol = emu.client("ec2", dst).create_volume(AvailabilityZone="us-east-1a", SnapshotId=snap["SnapshotId"], Encrypted=True, KmsKeyId=dst_key)
    assert vol["Encrypted"] is True and vol["KmsKeyId"] == dst_key
    with pytest.raises(ClientError) as exc:
        emu.client("ec2", stranger).create_volume(AvailabilityZone="us-east-1a", SnapshotId=snap["SnapshotId"])
    assert error_code(exc) == "InvalidSnapshot.NotFound"


def test_structured_create_volume_permission(emu, accounts):
    """CreateVolumePermission={Add/Remove: [{UserId}]} is how the Rust SDK shares."""
    src, dst = accounts(2)
    snap = ebs_snapshot(emu, src)
    ec2 = emu.client("ec2", src)
    ec2.modify_snapshot_attribute(SnapshotId=snap["SnapshotId"], Attribute="createVolumePermission", CreateVolumePermission={"Add": [{"UserId": dst}]})
    perms = ec2.describe_snapshot_attribute(SnapshotId=snap["SnapshotId"], Attribute="createVolumePermission")["CreateVolumePermissions"]
    assert perms == [{"UserId": dst}]
    wait_for(lambda: [e for e in emu.events_for(dst) if e["event_id_or_name"] == "shareSnapshot"], what="shareSnapshot")
    ec2.modify_snapshot_attribute(SnapshotId=snap["SnapshotId"], Attribute="createVolumePermission", CreateVolumePermission={"Remove": [{"UserId": dst}]})
    assert ec2.describe_snapshot_attribute(SnapshotId=snap["SnapshotId"], Attribute="createVolumePermission")["CreateVolumePermissions"] == []
