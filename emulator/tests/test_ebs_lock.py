"""EBS snapshot lock: LockSnapshot, UnlockSnapshot, DescribeLockedSnapshots, DeleteSnapshot refusals.

AWS: EBS User Guide ebs-snapshot-lock, snapshot-lock-concepts,
snapshot-lock-considerations; EC2 API LockSnapshot, UnlockSnapshot,
DescribeLockedSnapshots.  Cool-offs (hours) and lock durations (days) are
crossed by moving the emulator's clock (``clock_offset_seconds``), which the
``config`` fixture restores after each test.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from conftest import OTHER_REGION, REGION, create_key, ebs_snapshot, error_code, wait_for

HOUR = 3600
DAY = 24 * HOUR
LOCKED = "SnapshotLocked"


def locks(ec2, **kwargs):
    return ec2.describe_locked_snapshots(**kwargs)["Snapshots"]


def lock_state(ec2, snapshot_id):
    return locks(ec2, SnapshotIds=[snapshot_id])[0]["LockState"]


def refused(call, **kwargs):
    with pytest.raises(ClientError) as exc:
        call(**kwargs)
    return error_code(exc), exc.value.response["Error"]["Message"]


def unvalidated_ec2(emu, account):
    """An EC2 client without botocore's own parameter checks, to see the emulator's."""
    emu.client("ec2", account)  # assumes the role once, caching the session keys
    return boto3.client(
        "ec2",
        endpoint_url=emu.url,
        region_name=REGION,
        config=Config(parameter_validation=False, retries={"total_max_attempts": 1, "mode": "standard"}),
        **emu._sessions[account],
    )


def test_governance_lock_blocks_delete_until_unlocked(emu, accounts):
    (acct,) = accounts(1)
    ec2 = emu.client("ec2", acct)
    sid = ebs_snapshot(emu, acct)["SnapshotId"]
    before = datetime.now(timezone.utc) - timedelta(seconds=5)

    lock = ec2.lock_snapshot(SnapshotId=sid, LockMode="governance", LockDuration=30)
    assert lock["SnapshotId"] == sid and lock["LockState"] == "governance" and lock["LockDuration"] == 30
    assert lock["LockCreatedOn"] >= before and lock["LockDurationStartTime"] == lock["LockCreatedOn"]
    assert lock["LockExpiresOn"] == lock["LockDurationStartTime"] + timedelta(days=30)
    assert "CoolOffPeriod" not in lock and "CoolOffPeriodExpiresOn" not in lock

    [info] = locks(ec2)
    assert info["OwnerId"] == acct
    assert {k: v for k, v in info.items() if k != "OwnerId"} == {k: v for k, v in lock.items() if k != "ResponseMetadata"}

    code, message = refused(ec2.delete_snapshot, SnapshotId=sid)
    assert code == LOCKED and sid in message and "locked" in message
    assert ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"]

    assert ec2.unlock_snapshot(SnapshotId=sid)["SnapshotId"] == sid
    assert locks(ec2) == []
    ec2.delete_snapshot(SnapshotId=sid)
    code, _ = refused(ec2.describe_snapshots, SnapshotIds=[sid])
    assert code == "InvalidSnapshot.NotFound"


def test_governance_lock_can_be_shortened_extended_and_made_compliance(emu, accounts):
    (acct,) = accounts(1)
    ec2 = emu.client("ec2", acct)
    sid = ebs_snapshot(emu, acct)["SnapshotId"]
    first = ec2.lock_snapshot(SnapshotId=sid, LockMode="governance", LockDuration=30)
    shorter = ec2.lock_snapshot(SnapshotId=sid, LockMode="governance", LockDuration=2)
    assert shorter["LockDuration"] == 2 and shorter["LockCreatedOn"] == first["LockCreatedOn"]
    assert shorter["LockExpiresOn"] == first["LockDurationStartTime"] + timedelta(days=2)
    longer = ec2.lock_snapshot(SnapshotId=sid, LockMode="governance", LockDuration=400)
    assert longer["LockExpiresOn"] == first["LockDurationStartTime"] + timedelta(days=400)
    now_compliance = ec2.lock_snapshot(SnapshotId=sid, LockMode="compliance", LockDuration=400)
    assert now_compliance["LockState"] == "compliance"


def test_pending_snapshot_lock_starts_when_completed(emu, accounts):
    (acct,) = accounts(1)
    ec2 = emu.client("ec2", acct)
    snap = ebs_snapshot(emu, acct, wait=False)
    sid = snap["SnapshotId"]
    assert snap["State"] == "pending"
    lock = ec2.lock_snapshot(SnapshotId=sid, LockMode="governance", LockDuration=7)
    assert lock["LockState"] == "governance" and lock["LockDuration"] == 7 and "LockCreatedOn" in lock
    # The lock duration starts only when the snapshot completes (snapshot-lock-considerations).
    assert "LockDurationStartTime" not in lock and "LockExpiresOn" not in lock
    code, _ = refused(ec2.delete_snapshot, SnapshotId=sid)
    assert code == LOCKED

    wait_for(lambda: ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["State"] == "completed", what="completed")
    [info] = locks(ec2, SnapshotIds=[sid])
    assert info["LockDurationStartTime"] >= info["LockCreatedOn"]
    assert info["LockExpiresOn"] == info["LockDurationStartTime"] + timedelta(days=7)


def test_lock_on_failed_snapshot_is_canceled(emu, accounts):
    (acct,) = accounts(1)
    ec2 = emu.client("ec2", acct)
    emu.control("POST", "/fail-completions", {"kind": "ebs", "account": acct})
    sid = ebs_snapshot(emu, acct, wait=False)["SnapshotId"]
    ec2.lock_snapshot(SnapshotId=sid, LockMode="compliance", LockDuration=7)
    wait_for(lambda: ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["State"] == "error", what="error")
    assert locks(ec2) == []
    code, _ = refused(ec2.lock_snapshot, SnapshotId=sid, LockMode="governance", LockDuration=1)
    assert code == "IncorrectState"  # only pending or completed snapshots can be locked
    ec2.delete_snapshot(SnapshotId=sid)


@pytest.mark.parametrize(
    "params, code",
    [
        ({"LockMode": "governance", "LockDuration": 1}, "MissingParameter"),  # no SnapshotId
        ({"SnapshotId": None, "LockDuration": 1}, "MissingParameter"),  # no LockMode
        ({"SnapshotId": None, "LockMode": "legal-hold", "LockDuration": 1}, "InvalidParameterValue"),
        ({"SnapshotId": None, "LockMode": "governance"}, "MissingParameter"),  # neither duration nor date
        ({"SnapshotId": None, "LockMode": "governance", "LockDuration": 1, "ExpirationDate": "2099-01-01T00:00:00Z"}, "InvalidParameterCombination"),
        ({"SnapshotId": None, "LockMode": "governance", "LockDuration": 0}, "InvalidParameterValue"),
        ({"SnapshotId": None, "LockMode": "governance", "LockDuration": 36501}, "InvalidParameterValue"),
        ({"SnapshotId": None, "LockMode": "governance", "LockDuration": 1, "CoolOffPeriod": 1}, "InvalidParameterCombination"),
        ({"SnapshotId": None, "LockMode": "compliance", "LockDuration": 1, "CoolOffPeriod": 0}, "InvalidParameterValue"),
        ({"SnapshotId": None, "LockMode": "compliance", "LockDuration": 1, "CoolOffPeriod": 73}, "InvalidParameterValue"),
        ({"SnapshotId": None, "LockMode": "governance", "ExpirationDate": "2001-01-01T00:00:00Z"}, "InvalidParameterValue"),
    ],
)
def test_lock_parameters_are_validated(emu, accounts, params, code):
    (acct,) = accounts(1)
    sid = ebs_snapshot(emu, acct)["SnapshotId"]
    if "SnapshotId" in params:
        params = {**params, "SnapshotId": sid}
    got, _ = refused(unvalidated_ec2(emu, acct).lock_snapshot, **params)
    assert got == code
    assert locks(emu.client("ec2", acct)) == []


def test_boundary_values_are_accepted(emu, accounts):
    (acct,) = accounts(1)
    ec2 = emu.client("ec2", acct)
    a, b = (ebs_snapshot(emu, acct)["SnapshotId"] for _ in range(2))
    assert ec2.lock_snapshot(SnapshotId=a, LockMode="compliance", LockDuration=36500, CoolOffPeriod=72)["CoolOffPeriod"] == 72
    assert ec2.lock_snapshot(SnapshotId=b, LockMode="compliance", LockDuration=1, CoolOffPeriod=1)["LockDuration"] == 1


def test_only_the_owner_can_lock(emu, accounts):
    src, dst = accounts(2)
    sid = ebs_snapshot(emu, src)["SnapshotId"]
    emu.client("ec2", src).modify_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission", OperationType="add", UserIds=[dst])
    ec2_dst = emu.client("ec2", dst)
    assert ec2_dst.describe_snapshots(SnapshotIds=[sid])["Snapshots"]  # visible to dst, but not dst's to lock
    code, _ = refused(ec2_dst.lock_snapshot, SnapshotId=sid, LockMode="governance", LockDuration=1)
    assert code == "InvalidSnapshot.NotFound"
    code, _ = refused(ec2_dst.lock_snapshot, SnapshotId="snap-0123456789abcdef0", LockMode="governance", LockDuration=1)
    assert code == "InvalidSnapshot.NotFound"
    emu.client("ec2", src).lock_snapshot(SnapshotId=sid, LockMode="governance", LockDuration=1)
    code, _ = refused(ec2_dst.unlock_snapshot, SnapshotId=sid)
    assert code == "InvalidSnapshot.NotFound"
    assert locks(ec2_dst) == []


def test_compliance_cool_off_then_only_extension(emu, accounts, config):
    (acct,) = accounts(1)
    ec2 = emu.client("ec2", acct)
    sid = ebs_snapshot(emu, acct)["SnapshotId"]
    lock = ec2.lock_snapshot(SnapshotId=sid, LockMode="compliance", LockDuration=10, CoolOffPeriod=2)
    assert lock["LockState"] == "compliance-cooloff" and lock["CoolOffPeriod"] == 2
    assert lock["CoolOffPeriodExpiresOn"] == lock["LockCreatedOn"] + timedelta(hours=2)
    assert refused(ec2.delete_snapshot, SnapshotId=sid)[0] == LOCKED

    # During the cool-off the lock can be shortened, switched to governance, unlocked.
    assert ec2.lock_snapshot(SnapshotId=sid, LockMode="compliance", LockDuration=5, CoolOffPeriod=2)["LockDuration"] == 5
    assert ec2.lock_snapshot(SnapshotId=sid, LockMode="governance", LockDuration=5)["LockState"] == "governance"
    ec2.unlock_snapshot(SnapshotId=sid)
    assert locks(ec2) == []

    lock = ec2.lock_snapshot(SnapshotId=sid, LockMode="compliance", LockDuration=10, CoolOffPeriod=2)
    config(clock_offset_seconds=3 * HOUR)
    assert lock_state(ec2, sid) == "compliance"
    assert [x["SnapshotId"] for x in locks(ec2, Filters=[{"Name": "lock-state", "Values": ["compliance"]}])] == [sid]
    for call, kwargs in (
        (ec2.unlock_snapshot, {}),
        (ec2.lock_snapshot, {"LockMode": "compliance", "LockDuration": 9}),
        (ec2.lock_snapshot, {"LockMode": "governance", "LockDuration": 10}),
        (ec2.lock_snapshot, {"LockMode": "compliance", "LockDuration": 20, "CoolOffPeriod": 1}),
        (ec2.lock_snapshot, {"LockMode": "compliance", "ExpirationDate": lock["LockExpiresOn"] - timedelta(hours=1)}),
    ):
        code, message = refused(call, SnapshotId=sid, **kwargs)
        assert code == "IncorrectState" and "compliance" in message, kwargs
    assert refused(ec2.delete_snapshot, SnapshotId=sid)[0] == LOCKED

    extended = ec2.lock_snapshot(SnapshotId=sid, LockMode="compliance", LockDuration=20)
    assert extended["LockState"] == "compliance" and extended["LockDuration"] == 20
    assert extended["LockExpiresOn"] == lock["LockDurationStartTime"] + timedelta(days=20)
    assert extended["LockCreatedOn"] == lock["LockCreatedOn"]
    until = datetime(2099, 1, 1, tzinfo=timezone.utc)
    dated = ec2.lock_snapshot(SnapshotId=sid, LockMode="compliance", ExpirationDate=until)
    assert dated["LockExpiresOn"] == until and "LockDuration" not in dated


def test_compliance_without_cool_off_is_immediate(emu, accounts):
    (acct,) = accounts(1)
    ec2 = emu.client("ec2", acct)
    sid = ebs_snapshot(emu, acct)["SnapshotId"]
    lock = ec2.lock_snapshot(SnapshotId=sid, LockMode="compliance", LockDuration=1)
    assert lock["LockState"] == "compliance" and "CoolOffPeriod" not in lock
    assert refused(ec2.unlock_snapshot, SnapshotId=sid)[0] == "IncorrectState"


def test_expired_lock_does_not_block_delete(emu, accounts, config):
    (acct,) = accounts(1)
    ec2 = emu.client("ec2", acct)
    by_days, by_date = (ebs_snapshot(emu, acct)["SnapshotId"] for _ in range(2))
    ec2.lock_snapshot(SnapshotId=by_days, LockMode="compliance", LockDuration=1)
    until = datetime.now(timezone.utc) + timedelta(days=1, hours=1)
    dated = ec2.lock_snapshot(SnapshotId=by_date, LockMode="governance", ExpirationDate=until)
    assert "LockDuration" not in dated and dated["LockExpiresOn"] == until.replace(microsecond=0)
    assert refused(ec2.delete_snapshot, SnapshotId=by_days)[0] == LOCKED

    config(clock_offset_seconds=2 * DAY)
    expired = locks(ec2, Filters=[{"Name": "lock-state", "Values": ["expired"]}])
    assert sorted(x["SnapshotId"] for x in expired) == sorted([by_days, by_date])
    ec2.delete_snapshot(SnapshotId=by_days)
    ec2.delete_snapshot(SnapshotId=by_date)
    assert locks(ec2) == []


def test_expired_lock_can_be_locked_again(emu, accounts, config):
    (acct,) = accounts(1)
    ec2 = emu.client("ec2", acct)
    sid = ebs_snapshot(emu, acct)["SnapshotId"]
    ec2.lock_snapshot(SnapshotId=sid, LockMode="compliance", LockDuration=1)
    config(clock_offset_seconds=2 * DAY)
    again = ec2.lock_snapshot(SnapshotId=sid, LockMode="governance", LockDuration=3)
    assert again["LockState"] == "governance" and again["LockCreatedOn"] > datetime.now(timezone.utc) + timedelta(days=1)


def test_describe_locked_snapshots_scope_and_filters(emu, accounts):
    acct, other = accounts(2)
    ec2 = emu.client("ec2", acct)
    gov, comp, plain = (ebs_snapshot(emu, acct)["SnapshotId"] for _ in range(3))
    elsewhere = ebs_snapshot(emu, acct, region=OTHER_REGION)["SnapshotId"]
    ec2.lock_snapshot(SnapshotId=gov, LockMode="governance", LockDuration=1)
    ec2.lock_snapshot(SnapshotId=comp, LockMode="compliance", LockDuration=1, CoolOffPeriod=1)
    emu.client("ec2", acct, OTHER_REGION).lock_snapshot(SnapshotId=elsewhere, LockMode="governance", LockDuration=1)

    assert sorted(x["SnapshotId"] for x in locks(ec2)) == sorted([gov, comp])
    assert [x["SnapshotId"] for x in locks(emu.client("ec2", acct, OTHER_REGION))] == [elsewhere]
    assert locks(emu.client("ec2", other)) == []
    assert [x["SnapshotId"] for x in locks(ec2, SnapshotIds=[comp, plain])] == [comp]
    cooling = locks(ec2, Filters=[{"Name": "lock-state", "Values": ["compliance-cooloff", "expired"]}])
    assert [x["SnapshotId"] for x in cooling] == [comp]
    assert locks(ec2, SnapshotIds=[gov], Filters=[{"Name": "lock-state", "Values": ["compliance"]}]) == []

    assert refused(ec2.describe_locked_snapshots, Filters=[{"Name": "lock-mode", "Values": ["x"]}])[0] == "InvalidParameterValue"
    assert refused(ec2.describe_locked_snapshots, SnapshotIds=["snap-0123456789abcdef0"])[0] == "InvalidSnapshot.NotFound"

    page = ec2.describe_locked_snapshots(MaxResults=5)
    assert len(page["Snapshots"]) == 2 and "NextToken" not in page


def test_describe_locked_snapshots_pages(emu, accounts):
    (acct,) = accounts(1)
    ec2 = emu.client("ec2", acct)
    ids = [ebs_snapshot(emu, acct)["SnapshotId"] for _ in range(6)]
    for sid in ids:
        ec2.lock_snapshot(SnapshotId=sid, LockMode="governance", LockDuration=1)
    first = ec2.describe_locked_snapshots(MaxResults=5)
    second = ec2.describe_locked_snapshots(MaxResults=5, NextToken=first["NextToken"])
    assert len(first["Snapshots"]) == 5 and "NextToken" not in second
    assert sorted(x["SnapshotId"] for x in first["Snapshots"] + second["Snapshots"]) == sorted(ids)


def test_locked_snapshot_can_be_shared_and_copied_without_the_lock(emu, accounts):
    src, dst = accounts(2)
    key = create_key(emu, src)
    dst_key = create_key(emu, dst)
    ec2_src, ec2_dst = emu.client("ec2", src), emu.client("ec2", dst)
    sid = ebs_snapshot(emu, src, Encrypted=True, KmsKeyId=key)["SnapshotId"]
    ec2_src.lock_snapshot(SnapshotId=sid, LockMode="compliance", LockDuration=1)

    ec2_src.modify_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission", OperationType="add", UserIds=[dst])
    copy = ec2_dst.copy_snapshot(SourceSnapshotId=sid, SourceRegion=REGION, KmsKeyId=dst_key, Encrypted=True)["SnapshotId"]
    own_copy = ec2_src.copy_snapshot(SourceSnapshotId=sid, SourceRegion=REGION)["SnapshotId"]
    for ec2, cid in ((ec2_dst, copy), (ec2_src, own_copy)):
        wait_for(lambda: ec2.describe_snapshots(SnapshotIds=[cid])["Snapshots"][0]["State"] == "completed", what="copy")
        assert locks(ec2, SnapshotIds=[cid]) == []  # the lock does not travel to the copy
        ec2.delete_snapshot(SnapshotId=cid)
    assert lock_state(ec2_src, sid) == "compliance"


def test_lock_calls_are_logged_and_faultable(emu, accounts):
    (acct,) = accounts(1)
    ec2 = emu.client("ec2", acct)
    sid = ebs_snapshot(emu, acct)["SnapshotId"]
    emu.control("POST", "/faults", {"operation": "LockSnapshot", "account": acct, "error_code": "RequestLimitExceeded", "status": 503})
    assert refused(ec2.lock_snapshot, SnapshotId=sid, LockMode="governance", LockDuration=1)[0] == "RequestLimitExceeded"
    assert locks(ec2) == []
    ec2.lock_snapshot(SnapshotId=sid, LockMode="governance", LockDuration=1)
    refused(ec2.delete_snapshot, SnapshotId=sid)
    ec2.unlock_snapshot(SnapshotId=sid)
    assert refused(ec2.lock_snapshot, SnapshotId=sid, LockMode="governance", LockDuration=1, DryRun=True)[0] == "DryRunOperation"

    ops = {"LockSnapshot", "UnlockSnapshot", "DescribeLockedSnapshots", "DeleteSnapshot"}
    logged = [(r["operation"], r["status"], r["error_code"]) for r in emu.requests_for(acct) if r["operation"] in ops]
    assert logged == [
        ("LockSnapshot", 503, "RequestLimitExceeded"),
        ("DescribeLockedSnapshots", 200, None),
        ("LockSnapshot", 200, None),
        ("DeleteSnapshot", 400, LOCKED),
        ("UnlockSnapshot", 200, None),
        ("LockSnapshot", 412, "DryRunOperation"),
    ]


def test_unlock_of_unlocked_snapshot_is_refused(emu, accounts):
    (acct,) = accounts(1)
    ec2 = emu.client("ec2", acct)
    sid = ebs_snapshot(emu, acct)["SnapshotId"]
    code, message = refused(ec2.unlock_snapshot, SnapshotId=sid)
    assert code == "IncorrectState" and "not locked" in message


@pytest.mark.parametrize("value", [-1, "x", True])
def test_bad_clock_offset_is_400(emu, value):
    assert "error" in emu.control("POST", "/config", {"clock_offset_seconds": value}, expect=400)


def test_lock_does_not_protect_the_kms_key(emu, accounts):
    (acct,) = accounts(1)
    key = create_key(emu, acct)
    ec2 = emu.client("ec2", acct)
    sid = ebs_snapshot(emu, acct, Encrypted=True, KmsKeyId=key)["SnapshotId"]
    ec2.lock_snapshot(SnapshotId=sid, LockMode="compliance", LockDuration=1)
    emu.client("kms", acct).disable_key(KeyId=key)  # the lock does not stop this
    assert lock_state(ec2, sid) == "compliance"
    assert refused(ec2.copy_snapshot, SourceSnapshotId=sid, SourceRegion=REGION)[0] == "KMS.DisabledException"
