"""Progress of snapshots and copies in progress, and the copy log.

Why: the copy step looks at the copies in progress in a destination region
before starting one and estimates when a slot frees from each copy's start
and progress, so the emulator must report both as AWS does (RDS
``PercentProgress`` / ``SnapshotCreateTime``, EC2 ``progress`` /
``startTime``), and the copy-slot benchmark reads slot occupancy from
``GET /_snapferry/copies``.
"""

from __future__ import annotations

import pytest
from conftest import OTHER_REGION, REGION, cluster_snapshot, db_snapshot, ebs_snapshot, wait_for

DELAY = 1.5  # long enough to read a few intermediate values, short enough for a quick test


def _rising(read: object, what: str) -> list[int]:
    """Values of ``read()`` (percent, done) until the item is done; asserts they never
    fall, end at 100 and pass through a value in between."""
    seen: list[int] = []

    def done() -> bool:
        percent, finished = read()  # type: ignore[operator]
        if seen:
            assert percent >= seen[-1], f"{what}: progress fell {seen} -> {percent}"
        seen.append(percent)
        return finished

    wait_for(done, timeout=DELAY + 5, interval=0.1, what=what)
    assert seen[-1] == 100 and any(0 < p < 100 for p in seen), seen
    return seen


def test_db_snapshot_copy_reports_progress_and_times(emu, accounts, config):
    (acct,) = accounts(1)
    source = db_snapshot(emu, acct)
    config(delay_seconds=DELAY)
    rds = emu.client("rds", acct, OTHER_REGION)
    answer = rds.copy_db_snapshot(SourceDBSnapshotIdentifier=source["DBSnapshotArn"], TargetDBSnapshotIdentifier="x1")["DBSnapshot"]
    assert answer["Status"] == "creating"
    assert answer["PercentProgress"] < 50
    # a copy is a snapshot of its own: SnapshotCreateTime is when it was made,
    # OriginalSnapshotCreateTime the source's (RDS API DBSnapshot)
    assert answer["SnapshotCreateTime"] > source["SnapshotCreateTime"]
    assert answer["OriginalSnapshotCreateTime"] == source["OriginalSnapshotCreateTime"]
    assert answer["SourceDBSnapshotIdentifier"] == source["DBSnapshotArn"]
    assert answer["SourceRegion"] == REGION
    in_progress: list[dict] = []

    def read() -> tuple[int, bool]:
        snap = rds.describe_db_snapshots(DBSnapshotIdentifier="x1")["DBSnapshots"][0]
        if snap["Status"] == "creating":
            in_progress.append(snap)
            assert snap["PercentProgress"] < 100
        return snap["PercentProgress"], snap["Status"] == "available"

    _rising(read, "copy x1 available")
    assert all(s["SnapshotCreateTime"] == answer["SnapshotCreateTime"] for s in in_progress)


def test_db_snapshot_create_reports_progress(emu, accounts, config):
    (acct,) = accounts(1)
    db_snapshot(emu, acct)
    config(delay_seconds=DELAY)
    rds = emu.client("rds", acct)
    rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="s2")

    def read() -> tuple[int, bool]:
        snap = rds.describe_db_snapshots(DBSnapshotIdentifier="s2")["DBSnapshots"][0]
        return snap["PercentProgress"], snap["Status"] == "available"

    _rising(read, "snapshot s2 available")


def test_cluster_snapshot_copy_reports_progress(emu, accounts, config):
    (acct,) = accounts(1)
    source = cluster_snapshot(emu, acct)
    config(delay_seconds=DELAY)
    rds = emu.client("rds", acct)
    answer = rds.copy_db_cluster_snapshot(SourceDBClusterSnapshotIdentifier="cs1", TargetDBClusterSnapshotIdentifier="cc1")["DBClusterSnapshot"]
    assert answer["Status"] == "creating"
    assert answer["SourceDBClusterSnapshotArn"] == source["DBClusterSnapshotArn"]
    assert answer["SnapshotCreateTime"] > source["SnapshotCreateTime"]

    def read() -> tuple[int, bool]:
        snap = rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier="cc1")["DBClusterSnapshots"][0]
        if snap["Status"] == "creating":
            assert snap["PercentProgress"] < 100
        return snap["PercentProgress"], snap["Status"] == "available"

    _rising(read, "cluster copy cc1 available")


def test_ebs_copy_reports_progress_and_start_time(emu, accounts, config):
    (acct,) = accounts(1)
    source = ebs_snapshot(emu, acct)
    config(delay_seconds=DELAY)
    ec2 = emu.client("ec2", acct, OTHER_REGION)
    copy_id = ec2.copy_snapshot(SourceSnapshotId=source["SnapshotId"], SourceRegion=REGION)["SnapshotId"]
    first = ec2.describe_snapshots(SnapshotIds=[copy_id])["Snapshots"][0]
    assert first["State"] == "pending"
    assert first["StartTime"] >= source["StartTime"]

    def read() -> tuple[int, bool]:
        snap = ec2.describe_snapshots(SnapshotIds=[copy_id])["Snapshots"][0]
        assert snap["Progress"].endswith("%")
        assert snap["StartTime"] == first["StartTime"]
        if snap["State"] == "pending":
            assert snap["Progress"] != "100%"
        return int(snap["Progress"].rstrip("%")), snap["State"] == "completed"

    _rising(read, "ebs copy completed")


def test_copy_log_lists_each_copy_interval(emu, accounts, config):
    (acct,) = accounts(1)
    source = db_snapshot(emu, acct)
    ebs = ebs_snapshot(emu, acct)
    config(delay_seconds=0.3)
    rds = emu.client("rds", acct, OTHER_REGION)
    rds.copy_db_snapshot(SourceDBSnapshotIdentifier=source["DBSnapshotArn"], TargetDBSnapshotIdentifier="x1")
    emu.control("POST", "/fail-completions", {"kind": "ebs", "account": acct})
    ebs_copy = emu.client("ec2", acct, OTHER_REGION).copy_snapshot(SourceSnapshotId=ebs["SnapshotId"], SourceRegion=REGION)["SnapshotId"]

    def mine() -> list[dict]:
        return [c for c in emu.control("GET", "/copies")["copies"] if c["account"] == acct]

    assert {c["status"] for c in mine()} == {"in-progress"}
    copies = wait_for(lambda: (cs := mine()) and all(c["ended_at"] for c in cs) and cs, what="copies ended")
    by_kind = {c["kind"]: c for c in copies}
    assert set(by_kind) == {"db-instance", "ebs"}  # creating the sources is no copy
    db = by_kind["db-instance"]
    assert db["bucket"] == "rds_instance_copies" and db["region"] == OTHER_REGION
    assert db["snapshot_id"] == "x1" and db["source_arn"] == source["DBSnapshotArn"]
    assert db["status"] == "available"
    assert db["started_at"] < db["ended_at"] and db["due_at"] - db["started_at"] == pytest.approx(0.3)
    assert by_kind["ebs"]["bucket"] == "ebs_copies" and by_kind["ebs"]["snapshot_id"] == ebs_copy
    assert by_kind["ebs"]["status"] == "error"
