"""Multi-volume snapshot sets (CreateSnapshots), the archive tier, and EBS gaps.

AWS: EBS User Guide ebs-creating-snapshot (multi-volume), ebs-cloud-watch-events
(createSnapshots), snapshot-archive, working-with-snapshot-archiving; EC2 API
CreateSnapshots, InstanceSpecification, ModifySnapshotTier.

Already covered elsewhere (not repeated here):
* shareSnapshot event in the receiving account, detail.source = sharing account;
  copySnapshot event in the destination region with the source ARN, succeeded:
  test_ebs.py::test_share_describe_copy_cross_account
* copySnapshot failed (same region): test_ebs.py::test_failed_copy_emits_failed_event
* aws/ebs key sharing refused: test_ebs.py::test_share_refused_on_aws_managed_key
* public sharing of an encrypted snapshot refused: test_ebs.py::test_share_encrypted_publicly_refused
* ResourceLimitExceeded at the copy quota: test_ebs.py::test_copy_quota
* DeleteSnapshot of a locked snapshot refused: test_ebs_lock.py::test_governance_lock_blocks_delete_until_unlocked
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from botocore.exceptions import ClientError
from conftest import OTHER_REGION, REGION, create_key, ebs_snapshot, error_code, make_queue_for_rule, wait_for
from test_iam import allow, as_role, make_role

SET_TYPE = "EBS Multi-Volume Snapshots Completion Status"
SET_PATTERN = {"source": ["aws.ec2"], "detail-type": [SET_TYPE]}
SINGLE_PATTERN = {"source": ["aws.ec2"], "detail-type": ["EBS Snapshot Notification"]}


def arn(kind: str, ident: str, region: str = REGION) -> str:
    return f"arn:aws:ec2::{region}:{kind}/{ident}"


def instance_with_volumes(emu, account, key=None):
    """An instance with a root volume (10 GiB), an encrypted data volume (20 GiB) and a plain one (30 GiB)."""
    ec2 = emu.client("ec2", account)
    encrypted = {"Encrypted": True, **({"KmsKeyId": key} if key else {})}
    inst = ec2.run_instances(
        ImageId="ami-12345678",
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.micro",
        BlockDeviceMappings=[
            {"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 10}},
            {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 20, **encrypted}},
            {"DeviceName": "/dev/sdg", "Ebs": {"VolumeSize": 30}},
        ],
    )["Instances"][0]
    devices = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in inst["BlockDeviceMappings"]}
    return inst["InstanceId"], devices


def wait_ended(ec2, snapshot_ids):
    def check():
        snaps = ec2.describe_snapshots(SnapshotIds=snapshot_ids)["Snapshots"]
        return all(s["State"] in ("completed", "error") for s in snaps) and {s["SnapshotId"]: s for s in snaps}

    return wait_for(check, what="snapshot set ended")


def refused(call, **kwargs):
    with pytest.raises(ClientError) as exc:
        call(**kwargs)
    return error_code(exc), exc.value.response["Error"]["Message"]


# ------------------------------------------------------------ CreateSnapshots
def test_run_instances_attaches_the_mapped_volumes(emu, accounts):
    (acct,) = accounts(1)
    key = create_key(emu, acct)
    iid, devices = instance_with_volumes(emu, acct, key)
    assert set(devices) == {"/dev/sda1", "/dev/sdf", "/dev/sdg"}
    ec2 = emu.client("ec2", acct)
    inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    assert inst["RootDeviceName"] == "/dev/sda1"
    vols = {v["VolumeId"]: v for v in ec2.describe_volumes(VolumeIds=list(devices.values()))["Volumes"]}
    for device, vid in devices.items():
        assert vols[vid]["State"] == "in-use"
        assert vols[vid]["Attachments"][0]["InstanceId"] == iid and vols[vid]["Attachments"][0]["Device"] == device
    assert [vols[devices[d]]["Size"] for d in ("/dev/sda1", "/dev/sdf", "/dev/sdg")] == [10, 20, 30]
    assert vols[devices["/dev/sdf"]]["Encrypted"] is True and vols[devices["/dev/sdf"]]["KmsKeyId"] == key


def test_create_snapshots_one_event_for_the_whole_set(emu, accounts):
    (acct,) = accounts(1)
    key = create_key(emu, acct)
    iid, devices = instance_with_volumes(emu, acct, key)
    drain_set = make_queue_for_rule(emu, acct, SET_PATTERN)
    drain_single = make_queue_for_rule(emu, acct, SINGLE_PATTERN)
    ec2 = emu.client("ec2", acct)
    before = datetime.now(timezone.utc).replace(microsecond=0)

    answer = ec2.create_snapshots(
        InstanceSpecification={"InstanceId": iid},
        Description="nightly",
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "set", "Value": "s1"}]}],
    )["Snapshots"]

    assert [s["VolumeId"] for s in answer] == [devices["/dev/sda1"], devices["/dev/sdf"], devices["/dev/sdg"]]
    for snap, size, encrypted in zip(answer, (10, 20, 30), (False, True, False)):
        assert snap["SnapshotId"].startswith("snap-")
        assert snap["State"] == "pending" and snap["Progress"] == "0%"
        assert snap["OwnerId"] == acct and snap["VolumeSize"] == size and snap["Encrypted"] is encrypted
        assert snap["Description"] == "nightly" and snap["Tags"] == [{"Key": "set", "Value": "s1"}]
        assert snap["StartTime"] >= before
    ids = [s["SnapshotId"] for s in answer]

    done = wait_ended(ec2, ids)
    assert all(done[i]["State"] == "completed" and done[i]["Progress"] == "100%" for i in ids)
    assert done[ids[1]]["KmsKeyId"] == key and "KmsKeyId" not in done[ids[0]]

    [event] = wait_for(lambda: drain_set(), what="createSnapshots event")
    assert event["source"] == "aws.ec2" and event["detail-type"] == SET_TYPE
    assert event["account"] == acct and event["region"] == REGION
    assert event["resources"] == [arn("snapshot", i) for i in ids]
    d = event["detail"]
    assert (d["event"], d["result"], d["cause"]) == ("createSnapshots", "succeeded", "")
    assert d["request-id"] and d["startTime"] <= d["endTime"]
    assert d["snapshots"] == [
        {"snapshot_id": arn("snapshot", i), "source": arn("volume", v), "status": "completed"}
        for i, v in zip(ids, (devices["/dev/sda1"], devices["/dev/sdf"], devices["/dev/sdg"]))
    ]
    # No per-snapshot createSnapshot events for members of a set.
    assert drain_single() == []
    assert [e["event_id_or_name"] for e in emu.events_for(acct)] == ["createSnapshots"]


def test_create_snapshots_exclusions_and_tags(emu, accounts):
    (acct,) = accounts(1)
    iid, devices = instance_with_volumes(emu, acct)
    ec2 = emu.client("ec2", acct)
    ec2.create_tags(Resources=[devices["/dev/sdg"]], Tags=[{"Key": "app", "Value": "db"}, {"Key": "tier", "Value": "volume"}])

    answer = ec2.create_snapshots(
        InstanceSpecification={"InstanceId": iid, "ExcludeBootVolume": True, "ExcludeDataVolumeIds": [devices["/dev/sdf"]]},
        CopyTagsFromSource="volume",
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "tier", "Value": "spec"}]}],
    )["Snapshots"]
    assert [s["VolumeId"] for s in answer] == [devices["/dev/sdg"]]
    # The volume's tags are copied; TagSpecification wins on the same key.
    assert sorted((t["Key"], t["Value"]) for t in answer[0]["Tags"]) == [("app", "db"), ("tier", "spec")]
    done = wait_ended(ec2, [answer[0]["SnapshotId"]])
    assert sorted((t["Key"], t["Value"]) for t in done[answer[0]["SnapshotId"]]["Tags"]) == [("app", "db"), ("tier", "spec")]

    # Without CopyTagsFromSource the volume's tags stay on the volume.
    plain = ec2.create_snapshots(InstanceSpecification={"InstanceId": iid, "ExcludeBootVolume": True})["Snapshots"]
    assert [s["VolumeId"] for s in plain] == [devices["/dev/sdf"], devices["/dev/sdg"]]
    assert all(s.get("Tags", []) == [] for s in plain)

    # InstanceSpecification: naming the root volume in ExcludeDataVolumeIds fails the request.
    code, message = refused(ec2.create_snapshots, InstanceSpecification={"InstanceId": iid, "ExcludeDataVolumeIds": [devices["/dev/sda1"]]})
    assert code == "InvalidParameterValue" and "ExcludeBootVolume" in message


def test_create_snapshots_failed_member_fails_the_set(emu, accounts):
    (acct,) = accounts(1)
    iid, devices = instance_with_volumes(emu, acct)
    drain = make_queue_for_rule(emu, acct, SET_PATTERN)
    emu.control("POST", "/fail-completions", {"kind": "ebs", "account": acct, "count": 1})
    ec2 = emu.client("ec2", acct)
    ids = [s["SnapshotId"] for s in ec2.create_snapshots(InstanceSpecification={"InstanceId": iid})["Snapshots"]]

    done = wait_ended(ec2, ids)
    states = [done[i]["State"] for i in ids]
    assert sorted(states) == ["completed", "completed", "error"]
    failed = ids[states.index("error")]

    [event] = wait_for(lambda: drain(), what="failed createSnapshots event")
    d = event["detail"]
    assert d["result"] == "failed" and d["cause"] == f"Snapshot {failed} is in status error"
    assert [s["status"] for s in d["snapshots"]] == states
    assert event["resources"] == [arn("snapshot", i) for i in ids]


def test_create_snapshots_unknown_instance(emu, accounts):
    (acct,) = accounts(1)
    code, _ = refused(emu.client("ec2", acct).create_snapshots, InstanceSpecification={"InstanceId": "i-0123456789abcdef0"})
    assert code == "InvalidInstanceID.NotFound"


def test_create_snapshots_is_its_own_iam_action(emu, accounts):
    (acct,) = accounts(1)
    iid, _ = instance_with_volumes(emu, acct)
    single_only = make_role(emu, acct, allow("ec2:CreateSnapshot", "ec2:DescribeSnapshots"))
    with pytest.raises(ClientError) as exc:
        as_role(emu, acct, single_only, "ec2").create_snapshots(InstanceSpecification={"InstanceId": iid})
    err = exc.value.response
    assert (err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]) == ("UnauthorizedOperation", 403)
    assert err["Error"]["Message"] == (
        f"You are not authorized to perform this operation. User: arn:aws:sts::{acct}:assumed-role/{single_only}/step "
        "is not authorized to perform: ec2:CreateSnapshots because no identity-based policy allows the ec2:CreateSnapshots action"
    )
    assert emu.client("ec2", acct).describe_snapshots(OwnerIds=["self"])["Snapshots"] == []  # nothing was created

    multi = make_role(emu, acct, allow("ec2:CreateSnapshots"))
    assert len(as_role(emu, acct, multi, "ec2").create_snapshots(InstanceSpecification={"InstanceId": iid})["Snapshots"]) == 3


# ------------------------------------------------------------ archive tier
def test_archive_tier_blocks_sharing_copying_and_volumes(emu, accounts):
    src, dst = accounts(2)
    ec2 = emu.client("ec2", src)
    sid = ebs_snapshot(emu, src)["SnapshotId"]
    other = ebs_snapshot(emu, src)["SnapshotId"]
    ec2.modify_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission", OperationType="add", UserIds=[dst])
    assert emu.client("ec2", dst).describe_snapshots(RestorableByUserIds=["self"])["Snapshots"]
    before = datetime.now(timezone.utc).replace(microsecond=0)

    answer = ec2.modify_snapshot_tier(SnapshotId=sid, StorageTier="archive")
    assert answer["SnapshotId"] == sid and answer["TieringStartTime"] >= before
    tiers = {s["SnapshotId"]: s["StorageTier"] for s in ec2.describe_snapshots(SnapshotIds=[sid, other])["Snapshots"]}
    assert tiers == {sid: "archive", other: "standard"}

    # Archiving ends the sharing (snapshot-archive, Limitations).
    assert ec2.describe_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission")["CreateVolumePermissions"] == []
    assert emu.client("ec2", dst).describe_snapshots(RestorableByUserIds=["self"])["Snapshots"] == []

    for call, kwargs in (
        (ec2.modify_snapshot_attribute, dict(SnapshotId=sid, Attribute="createVolumePermission", OperationType="add", UserIds=[dst])),
        (ec2.modify_snapshot_attribute, dict(SnapshotId=sid, Attribute="createVolumePermission", CreateVolumePermission={"Add": [{"UserId": dst}]})),
        (ec2.copy_snapshot, dict(SourceSnapshotId=sid, SourceRegion=REGION)),
        (emu.client("ec2", src, OTHER_REGION).copy_snapshot, dict(SourceSnapshotId=sid, SourceRegion=REGION)),
        (ec2.create_volume, dict(SnapshotId=sid, AvailabilityZone=f"{REGION}a")),
    ):
        code, message = refused(call, **kwargs)
        assert code == "IncorrectState" and sid in message and "archive" in message, (call, code, message)

    # A permanent restore makes it usable again.
    ec2.restore_snapshot_tier(SnapshotId=sid, PermanentRestore=True)
    assert ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["StorageTier"] == "standard"
    assert ec2.copy_snapshot(SourceSnapshotId=sid, SourceRegion=REGION)["SnapshotId"]


def test_archive_only_own_completed_snapshots_and_temporary_restore(emu, accounts, config):
    src, dst = accounts(2)
    ec2 = emu.client("ec2", src)
    sid = ebs_snapshot(emu, src)["SnapshotId"]
    ec2.modify_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission", OperationType="add", UserIds=[dst])
    code, _ = refused(emu.client("ec2", dst).modify_snapshot_tier, SnapshotId=sid, StorageTier="archive")
    assert code == "InvalidSnapshot.NotFound"  # shared with dst, not dst's to archive

    ec2.modify_snapshot_tier(SnapshotId=sid, StorageTier="archive")
    # Temporarily restored: in the standard tier and usable until the restore expires.
    ec2.restore_snapshot_tier(SnapshotId=sid, TemporaryRestoreDays=2)
    assert ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["StorageTier"] == "standard"
    assert ec2.describe_snapshots(Filters=[{"Name": "storage-tier", "Values": ["standard"]}], SnapshotIds=[sid])["Snapshots"]
    assert ec2.create_volume(SnapshotId=sid, AvailabilityZone=f"{REGION}a")["SnapshotId"] == sid

    config(delay_seconds=30)
    pending = ebs_snapshot(emu, src, wait=False)["SnapshotId"]
    code, _ = refused(ec2.modify_snapshot_tier, SnapshotId=pending, StorageTier="archive")
    assert code == "IncorrectState"


# ------------------------------------------------------------ copy events, volumes
def test_failed_cross_region_copy_event_in_destination_region(emu, accounts):
    (acct,) = accounts(1)
    sid = ebs_snapshot(emu, acct)["SnapshotId"]
    drain = make_queue_for_rule(emu, acct, SINGLE_PATTERN, region=OTHER_REGION)
    emu.control("POST", "/fail-completions", {"kind": "ebs", "account": acct, "count": 1})
    dst = emu.client("ec2", acct, OTHER_REGION)
    copy = dst.copy_snapshot(SourceSnapshotId=sid, SourceRegion=REGION)["SnapshotId"]
    [event] = wait_for(lambda: drain(), what="failed copySnapshot event")
    assert event["region"] == OTHER_REGION and event["resources"] == [arn("snapshot", copy, OTHER_REGION)]
    d = event["detail"]
    assert (d["event"], d["result"]) == ("copySnapshot", "failed") and d["cause"]
    assert d["source"] == arn("snapshot", sid) and d["snapshot_id"] == arn("snapshot", copy, OTHER_REGION)
    assert dst.describe_snapshots(SnapshotIds=[copy])["Snapshots"][0]["State"] == "error"


def test_create_volume_from_snapshot_defaults(emu, accounts):
    (acct,) = accounts(1)
    ec2 = emu.client("ec2", acct)
    key, other_key = create_key(emu, acct), create_key(emu, acct)
    vol = ec2.create_volume(Size=20, AvailabilityZone=f"{REGION}a", Encrypted=True, KmsKeyId=key)
    snap = ec2.create_snapshot(VolumeId=vol["VolumeId"])
    wait_ended(ec2, [snap["SnapshotId"]])
    plain = ebs_snapshot(emu, acct)  # 8 GiB, not encrypted

    # Size, encryption and key default to the snapshot's; the zone given is kept.
    restored = ec2.create_volume(SnapshotId=snap["SnapshotId"], AvailabilityZone=f"{REGION}b")
    assert (restored["Size"], restored["Encrypted"], restored["KmsKeyId"]) == (20, True, key)
    assert restored["AvailabilityZone"] == f"{REGION}b" and restored["SnapshotId"] == snap["SnapshotId"]
    described = ec2.describe_volumes(VolumeIds=[restored["VolumeId"]])["Volumes"][0]
    assert (described["Size"], described["Encrypted"], described["KmsKeyId"], described["AvailabilityZone"]) == (20, True, key, f"{REGION}b")

    # A KmsKeyId given is used; a larger Size is kept.
    rekeyed = ec2.create_volume(SnapshotId=snap["SnapshotId"], AvailabilityZone=f"{REGION}c", Encrypted=True, KmsKeyId=other_key, Size=50)
    assert (rekeyed["Size"], rekeyed["Encrypted"], rekeyed["KmsKeyId"], rekeyed["AvailabilityZone"]) == (50, True, other_key, f"{REGION}c")

    unencrypted = ec2.create_volume(SnapshotId=plain["SnapshotId"], AvailabilityZone=f"{REGION}a")
    assert (unencrypted["Size"], unencrypted["Encrypted"]) == (8, False) and "KmsKeyId" not in unencrypted
