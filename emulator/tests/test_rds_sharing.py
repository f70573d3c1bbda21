"""Behaviour 1: cross-account sharing, describing, copying, restoring (RDS)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from conftest import (
    OTHER_REGION,
    REGION,
    cluster_snapshot,
    create_key,
    db_snapshot,
    error_code,
    wait_cluster_snapshot,
    wait_db_snapshot,
    wait_for,
)


def test_shared_db_snapshot_visible_copyable_restorable(emu, accounts):
    src, dst = accounts(2)
    key = create_key(emu, src)
    snap = db_snapshot(emu, src, StorageEncrypted=True, KmsKeyId=key, Tags=[{"Key": "team", "Value": "a"}], CopyTagsToSnapshot=True)
    arn = snap["DBSnapshotArn"]
    rds_src = emu.client("rds", src)
    rds_dst = emu.client("rds", dst)

    # Not shared yet: the target sees nothing and gets AWS's not-found error.
    assert rds_dst.describe_db_snapshots(SnapshotType="shared")["DBSnapshots"] == []
    with pytest.raises(ClientError) as exc:
        rds_dst.describe_db_snapshots(DBSnapshotIdentifier=arn)
    assert error_code(exc) == "DBSnapshotNotFound"
    with pytest.raises(ClientError) as exc:
        rds_dst.copy_db_snapshot(SourceDBSnapshotIdentifier=arn, TargetDBSnapshotIdentifier="copy", KmsKeyId=create_key(emu, dst))
    assert error_code(exc) == "DBSnapshotNotFound"

    rds_src.modify_db_snapshot_attribute(DBSnapshotIdentifier="s1", AttributeName="restore", ValuesToAdd=[dst])
    attrs = rds_src.describe_db_snapshot_attributes(DBSnapshotIdentifier="s1")["DBSnapshotAttributesResult"]["DBSnapshotAttributes"]
    assert {"AttributeName": "restore", "AttributeValues": [dst]} in attrs

    shared = rds_dst.describe_db_snapshots(SnapshotType="shared")["DBSnapshots"]
    assert [s["DBSnapshotArn"] for s in shared] == [arn]
    included = rds_dst.describe_db_snapshots(IncludeShared=True)["DBSnapshots"]
    assert arn in [s["DBSnapshotArn"] for s in included]
    assert rds_dst.describe_db_snapshots()["DBSnapshots"] == []  # not without IncludeShared
    by_arn = rds_dst.describe_db_snapshots(DBSnapshotIdentifier=arn)["DBSnapshots"][0]
    assert by_arn["Engine"] == "postgres" and by_arn["KmsKeyId"] == key

    dst_key = create_key(emu, dst)
    copy = rds_dst.copy_db_snapshot(
        SourceDBSnapshotIdentifier=arn, TargetDBSnapshotIdentifier="copy", KmsKeyId=dst_key, CopyTags=True
    )["DBSnapshot"]
    assert copy["Status"] == "creating"
    assert copy["DBSnapshotArn"].split(":")[4] == dst
    done = wait_db_snapshot(emu, dst, "copy")
    assert done["KmsKeyId"] == dst_key and done["Encrypted"] is True
    assert done["Engine"] == "postgres" and done["EngineVersion"] == "16.3" and done["AllocatedStorage"] == 20
    assert done["SnapshotType"] == "manual"
    assert done["SourceDBSnapshotIdentifier"] == arn
    tags = rds_dst.list_tags_for_resource(ResourceName=done["DBSnapshotArn"])["TagList"]
    assert tags == [{"Key": "team", "Value": "a"}]

    # The copy (owned by the target, on its key) restores fine.
    db = rds_dst.restore_db_instance_from_db_snapshot(DBInstanceIdentifier="restored", DBSnapshotIdentifier="copy")["DBInstance"]
    assert db["DBInstanceStatus"] == "creating"
    wait_for(
        lambda: rds_dst.describe_db_instances(DBInstanceIdentifier="restored")["DBInstances"][0]["DBInstanceStatus"] == "available",
        what="restored instance available",
    )

    # Unshare: the target loses access again.
    rds_src.modify_db_snapshot_attribute(DBSnapshotIdentifier="s1", AttributeName="restore", ValuesToRemove=[dst])
    assert rds_dst.describe_db_snapshots(SnapshotType="shared")["DBSnapshots"] == []
    with pytest.raises(ClientError) as exc:
        rds_dst.describe_db_snapshots(DBSnapshotIdentifier=arn)
    assert error_code(exc) == "DBSnapshotNotFound"


def test_copy_tags_explicit_tags_win(emu, accounts):
    src, dst = accounts(2)
    snap = db_snapshot(emu, src)
    emu.client("rds", src).modify_db_snapshot_attribute(DBSnapshotIdentifier="s1", AttributeName="restore", ValuesToAdd=[dst])
    rds_dst = emu.client("rds", dst)
    rds_dst.copy_db_snapshot(
        SourceDBSnapshotIdentifier=snap["DBSnapshotArn"], TargetDBSnapshotIdentifier="c", Tags=[{"Key": "k", "Value": "v"}], CopyTags=True
    )
    done = wait_db_snapshot(emu, dst, "c")
    assert done["Encrypted"] is False and "KmsKeyId" not in done
    assert rds_dst.list_tags_for_resource(ResourceName=done["DBSnapshotArn"])["TagList"] == [{"Key": "k", "Value": "v"}]


def test_shared_unencrypted_snapshot_restores_directly(emu, accounts):
    src, dst = accounts(2)
    snap = db_snapshot(emu, src)
    emu.client("rds", src).modify_db_snapshot_attribute(DBSnapshotIdentifier="s1", AttributeName="restore", ValuesToAdd=[dst])
    rds_dst = emu.client("rds", dst)
    db = rds_dst.restore_db_instance_from_db_snapshot(DBInstanceIdentifier="r1", DBSnapshotIdentifier=snap["DBSnapshotArn"])["DBInstance"]
    assert db["DBInstanceStatus"] == "creating" and db["Engine"] == "postgres"
    assert db["DBInstanceArn"].split(":")[4] == dst


def test_unshared_restore_is_not_found(emu, accounts):
    src, dst = accounts(2)
    snap = db_snapshot(emu, src)
    with pytest.raises(ClientError) as exc:
        emu.client("rds", dst).restore_db_instance_from_db_snapshot(DBInstanceIdentifier="r1", DBSnapshotIdentifier=snap["DBSnapshotArn"])
    assert error_code(exc) == "DBSnapshotNotFound"


def test_cross_region_copy_lands_in_caller_region(emu, accounts):
    src, dst = accounts(2)
    key = create_key(emu, src)
    snap = db_snapshot(emu, src, StorageEncrypted=True, KmsKeyId=key)
    emu.client("rds", src).modify_db_snapshot_attribute(DBSnapshotIdentifier="s1", AttributeName="restore", ValuesToAdd=[dst])
    dst_key = create_key(emu, dst, OTHER_REGION)
    rds_dst = emu.client("rds", dst, OTHER_REGION)
    copy = rds_dst.copy_db_snapshot(SourceDBSnapshotIdentifier=snap["DBSnapshotArn"], TargetDBSnapshotIdentifier="x", KmsKeyId=dst_key)["DBSnapshot"]
    assert copy["DBSnapshotArn"].startswith(f"arn:aws:rds:{OTHER_REGION}:{dst}:snapshot:x")
    done = wait_db_snapshot(emu, dst, "x", region=OTHER_REGION)
    assert done["SourceRegion"] == REGION and done["KmsKeyId"] == dst_key


def test_shared_cluster_snapshot(emu, accounts):
    src, dst = accounts(2)
    key = create_key(emu, src)
    snap = cluster_snapshot(emu, src, StorageEncrypted=True, KmsKeyId=key)
    arn = snap["DBClusterSnapshotArn"]
    rds_src, rds_dst = emu.client("rds", src), emu.client("rds", dst)
    dst_key = create_key(emu, dst)

    with pytest.raises(ClientError) as exc:
        rds_dst.copy_db_cluster_snapshot(SourceDBClusterSnapshotIdentifier=arn, TargetDBClusterSnapshotIdentifier="cc", KmsKeyId=dst_key)
    assert error_code(exc) == "DBClusterSnapshotNotFoundFault"
    with pytest.raises(ClientError) as exc:
        rds_dst.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=arn)
    assert error_code(exc) == "DBClusterSnapshotNotFoundFault"

    rds_src.modify_db_cluster_snapshot_attribute(DBClusterSnapshotIdentifier="cs1", AttributeName="restore", ValuesToAdd=[dst])
    attrs = rds_src.describe_db_cluster_snapshot_attributes(DBClusterSnapshotIdentifier="cs1")["DBClusterSnapshotAttributesResult"]
    assert attrs["DBClusterSnapshotAttributes"][0]["AttributeValues"] == [dst]
    assert [s["DBClusterSnapshotArn"] for s in rds_dst.describe_db_cluster_snapshots(SnapshotType="shared")["DBClusterSnapshots"]] == [arn]
    assert arn in [s["DBClusterSnapshotArn"] for s in rds_dst.describe_db_cluster_snapshots(IncludeShared=True)["DBClusterSnapshots"]]
    assert rds_dst.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=arn)["DBClusterSnapshots"][0]["Engine"] == "aurora-postgresql"

    out = rds_dst.copy_db_cluster_snapshot(SourceDBClusterSnapshotIdentifier=arn, TargetDBClusterSnapshotIdentifier="cc", KmsKeyId=dst_key)
    assert out["DBClusterSnapshot"]["Status"] == "creating"
    done = wait_cluster_snapshot(emu, dst, "cc")
    assert done["KmsKeyId"] == dst_key and done["StorageEncrypted"] is True
    assert done["Engine"] == "aurora-postgresql" and done["EngineVersion"] == "16.4"

    cluster = rds_dst.restore_db_cluster_from_snapshot(DBClusterIdentifier="rc", SnapshotIdentifier="cc", Engine="aurora-postgresql")["DBCluster"]
    assert cluster["Status"] == "creating"
    wait_for(lambda: rds_dst.describe_db_clusters(DBClusterIdentifier="rc")["DBClusters"][0]["Status"] == "available", what="cluster available")

    rds_src.modify_db_cluster_snapshot_attribute(DBClusterSnapshotIdentifier="cs1", AttributeName="restore", ValuesToRemove=[dst])
    assert rds_dst.describe_db_cluster_snapshots(SnapshotType="shared")["DBClusterSnapshots"] == []


def test_instance_in_cluster_goes_creating_then_available(emu, accounts):
    (acct,) = accounts(1)
    cluster_snapshot(emu, acct)
    rds = emu.client("rds", acct)
    db = rds.create_db_instance(DBInstanceIdentifier="i1", DBClusterIdentifier="c1", Engine="aurora-postgresql", DBInstanceClass="db.r6g.large")
    assert db["DBInstance"]["DBInstanceStatus"] == "creating"
    wait_for(lambda: rds.describe_db_instances(DBInstanceIdentifier="i1")["DBInstances"][0]["DBInstanceStatus"] == "available", what="instance available")


def test_shared_unencrypted_cluster_snapshot_restores_directly(emu, accounts):
    src, dst = accounts(2)
    snap = cluster_snapshot(emu, src)
    emu.client("rds", src).modify_db_cluster_snapshot_attribute(DBClusterSnapshotIdentifier="cs1", AttributeName="restore", ValuesToAdd=[dst])
    rds_dst = emu.client("rds", dst)
    out = rds_dst.restore_db_cluster_from_snapshot(DBClusterIdentifier="rc", SnapshotIdentifier=snap["DBClusterSnapshotArn"], Engine="aurora-postgresql")
    assert out["DBCluster"]["DBClusterArn"].split(":")[4] == dst


def test_new_cluster_can_be_snapshotted_at_once(emu, accounts):
    """Like moto: CreateDBCluster answers 'creating' but the cluster is usable right away."""
    (acct,) = accounts(1)
    rds = emu.client("rds", acct)
    out = rds.create_db_cluster(DBClusterIdentifier="quick", Engine="aurora-postgresql", MasterUsername="a", MasterUserPassword="password123")
    assert out["DBCluster"]["Status"] == "creating"
    assert rds.create_db_cluster_snapshot(DBClusterIdentifier="quick", DBClusterSnapshotIdentifier="qs")["DBClusterSnapshot"]["Status"] == "creating"


def test_restore_cluster_with_managed_master_password(emu, accounts):
    (acct,) = accounts(1)
    rds = emu.client("rds", acct)
    rds.create_db_cluster(DBClusterIdentifier="m", Engine="aurora-postgresql", MasterUsername="admin", ManageMasterUserPassword=True)
    rds.create_db_cluster_snapshot(DBClusterIdentifier="m", DBClusterSnapshotIdentifier="ms")
    wait_cluster_snapshot(emu, acct, "ms")
    out = rds.restore_db_cluster_from_snapshot(DBClusterIdentifier="mr", SnapshotIdentifier="ms", Engine="aurora-postgresql")
    assert out["DBCluster"]["Status"] == "creating"
