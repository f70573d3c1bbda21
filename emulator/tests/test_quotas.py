"""Behaviour 5: configurable quotas with AWS's error codes (RDS; EBS in test_ebs), and RDS DescribeAccountAttributes."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from botocore.exceptions import ClientError
from conftest import OTHER_REGION, REGION, cluster_snapshot, create_db, db_snapshot, error_code, wait_db_snapshot


def test_manual_db_snapshot_quota(emu, accounts, config):
    config(quotas={"manual_db_snapshots": 2})
    (acct,) = accounts(1)
    create_db(emu, acct)
    rds = emu.client("rds", acct)
    rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="a")
    rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="b")
    with pytest.raises(ClientError) as exc:
        rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="c")
    assert error_code(exc) == "SnapshotQuotaExceeded"
    # an existing identifier is "already exists", not a quota problem
    with pytest.raises(ClientError) as exc:
        rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="b")
    assert error_code(exc) == "DBSnapshotAlreadyExists"
    # automated snapshots don't count
    out = emu.control("POST", "/automated-snapshot", {"account": acct, "region": REGION, "db_instance_identifier": "db1"})
    assert out["status"] == "creating"


def test_manual_cluster_snapshot_quota(emu, accounts, config):
    (acct,) = accounts(1)
    cluster_snapshot(emu, acct)
    config(quotas={"manual_cluster_snapshots": 1})
    with pytest.raises(ClientError) as exc:
        emu.client("rds", acct).create_db_cluster_snapshot(DBClusterIdentifier="c1", DBClusterSnapshotIdentifier="cs2")
    assert error_code(exc) == "SnapshotQuotaExceeded"


def test_rds_copies_in_progress_quota(emu, accounts, config):
    (acct,) = accounts(1)
    db_snapshot(emu, acct)
    config(delay_seconds=30, quotas={"rds_instance_copies": 2})
    rds = emu.client("rds", acct)
    rds.copy_db_snapshot(SourceDBSnapshotIdentifier="s1", TargetDBSnapshotIdentifier="c1")
    rds.copy_db_snapshot(SourceDBSnapshotIdentifier="s1", TargetDBSnapshotIdentifier="c2")
    with pytest.raises(ClientError) as exc:
        rds.copy_db_snapshot(SourceDBSnapshotIdentifier="s1", TargetDBSnapshotIdentifier="c3")
    assert error_code(exc) == "SnapshotQuotaExceeded"
    assert "Cannot copy more than 2 snapshots" in exc.value.response["Error"]["Message"]
    # the budget is per destination region
    emu.client("rds", acct, OTHER_REGION).copy_db_snapshot(
        SourceDBSnapshotIdentifier=f"arn:aws:rds:{REGION}:{acct}:snapshot:s1", TargetDBSnapshotIdentifier="x1"
    )


def test_cluster_copies_in_progress_quota_default_5(emu, accounts, config):
    (acct,) = accounts(1)
    cluster_snapshot(emu, acct)
    config(delay_seconds=30)
    rds = emu.client("rds", acct)
    for i in range(5):
        rds.copy_db_cluster_snapshot(SourceDBClusterSnapshotIdentifier="cs1", TargetDBClusterSnapshotIdentifier=f"c{i}")
    with pytest.raises(ClientError) as exc:
        rds.copy_db_cluster_snapshot(SourceDBClusterSnapshotIdentifier="cs1", TargetDBClusterSnapshotIdentifier="c5")
    assert error_code(exc) == "SnapshotQuotaExceeded"


def test_finished_copies_free_the_quota(emu, accounts, config):
    (acct,) = accounts(1)
    db_snapshot(emu, acct)
    config(quotas={"rds_instance_copies": 1})
    rds = emu.client("rds", acct)
    rds.copy_db_snapshot(SourceDBSnapshotIdentifier="s1", TargetDBSnapshotIdentifier="c1")
    from conftest import wait_db_snapshot

    wait_db_snapshot(emu, acct, "c1")
    rds.copy_db_snapshot(SourceDBSnapshotIdentifier="s1", TargetDBSnapshotIdentifier="c2")


def _account_quotas(emu, acct, region=REGION):
    quotas = emu.client("rds", acct, region).describe_account_attributes()["AccountQuotas"]
    return {q["AccountQuotaName"]: (q["Used"], q["Max"]) for q in quotas}


def test_describe_account_attributes_counts_manual_snapshots(emu, accounts, config):
    acct, other = accounts(2)
    assert _account_quotas(emu, acct) == {"ManualSnapshots": (0, 100), "ManualClusterSnapshots": (0, 100)}
    db_snapshot(emu, acct)
    rds = emu.client("rds", acct)
    rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="s2")  # counts while still creating
    rds.copy_db_snapshot(SourceDBSnapshotIdentifier="s1", TargetDBSnapshotIdentifier="c1")  # copies are manual snapshots
    emu.control("POST", "/automated-snapshot", {"account": acct, "region": REGION, "db_instance_identifier": "db1"})  # doesn't count
    assert _account_quotas(emu, acct)["ManualSnapshots"] == (3, 100)
    cluster_snapshot(emu, acct)
    assert _account_quotas(emu, acct) == {"ManualSnapshots": (3, 100), "ManualClusterSnapshots": (1, 100)}
    wait_db_snapshot(emu, acct, "c1")
    rds.delete_db_snapshot(DBSnapshotIdentifier="c1")
    rds.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="cs1")
    assert _account_quotas(emu, acct) == {"ManualSnapshots": (2, 100), "ManualClusterSnapshots": (0, 100)}
    # per account and per region
    assert _account_quotas(emu, other)["ManualSnapshots"] == (0, 100)
    assert _account_quotas(emu, acct, OTHER_REGION)["ManualSnapshots"] == (0, 100)
    # Max follows the configured quota, and the quota refuses at Used == Max.
    config(quotas={"manual_db_snapshots": 2, "manual_cluster_snapshots": 7})
    assert _account_quotas(emu, acct) == {"ManualSnapshots": (2, 2), "ManualClusterSnapshots": (0, 7)}
    with pytest.raises(ClientError) as exc:
        rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="s3")
    assert error_code(exc) == "SnapshotQuotaExceeded"


def test_describe_account_attributes_wire_shape(emu, accounts):
    """The XML the Rust SDK parses: <DescribeAccountAttributesResponse><DescribeAccountAttributesResult><AccountQuotas><AccountQuota>..."""
    (acct,) = accounts(1)
    client = emu.client("rds", acct)
    captured = {}
    client.meta.events.register("after-call.rds.DescribeAccountAttributes", lambda http_response, **_: captured.setdefault("body", http_response.content))
    client.describe_account_attributes()
    root = ET.fromstring(captured["body"])
    strip = lambda tag: tag.split("}")[-1]  # noqa: E731
    assert strip(root.tag) == "DescribeAccountAttributesResponse"
    result = root[0]
    assert strip(result.tag) == "DescribeAccountAttributesResult"
    quotas = [q for q in result if strip(q.tag) == "AccountQuotas"][0]
    names = [[strip(f.tag) for f in q] for q in quotas]
    assert [strip(q.tag) for q in quotas] == ["AccountQuota", "AccountQuota"]
    assert names == [["AccountQuotaName", "Used", "Max"]] * 2


def test_an_accounts_own_quota_binds_that_account_only(emu, accounts, config):
    """AWS's quotas are per account: a maximum set for one account leaves the others at the emulator's."""
    lowered, other = accounts(2)
    for acct in (lowered, other):
        create_db(emu, acct)
    cfg = emu.control("POST", "/config", {"account": lowered, "quotas": {"manual_db_snapshots": 1}})
    assert cfg["account_quotas"][lowered] == {"manual_db_snapshots": 1}
    assert cfg["quotas"]["manual_db_snapshots"] == 100
    emu.client("rds", lowered).create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="a")
    with pytest.raises(ClientError) as exc:
        emu.client("rds", lowered).create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="b")
    assert error_code(exc) == "SnapshotQuotaExceeded"
    for snap in ("a", "b"):
        emu.client("rds", other).create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier=snap)
    quotas = emu.client("rds", lowered).describe_account_attributes()["AccountQuotas"]
    assert {q["AccountQuotaName"]: q["Max"] for q in quotas}["ManualSnapshots"] == 1
    # The delay and the clock are the emulator's, not an account's.
    emu.control("POST", "/config", {"account": other, "delay_seconds": 1}, expect=400)
    emu.control("POST", "/config", {"account": "12", "quotas": {"ebs_copies": 1}}, expect=400)
    # GET's answer posted back is the same config (the config fixture restores it so).
    restored = emu.control("POST", "/config", {**cfg, "account_quotas": {}})
    assert restored["account_quotas"] == {}
