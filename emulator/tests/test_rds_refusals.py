"""Behaviour 2: what AWS refuses, with AWS's error codes (RDS)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from conftest import cluster_snapshot, create_db, create_key, db_snapshot, error_code, wait_db_snapshot


def share(emu, account, snap, values, cluster=False):
    rds = emu.client("rds", account)
    if cluster:
        return rds.modify_db_cluster_snapshot_attribute(DBClusterSnapshotIdentifier=snap, AttributeName="restore", ValuesToAdd=values)
    return rds.modify_db_snapshot_attribute(DBSnapshotIdentifier=snap, AttributeName="restore", ValuesToAdd=values)


def test_default_key_is_aws_managed_and_describable(emu, accounts):
    (src,) = accounts(1)
    snap = db_snapshot(emu, src, StorageEncrypted=True)
    key = emu.client("kms", src).describe_key(KeyId=snap["KmsKeyId"])["KeyMetadata"]
    assert snap["KmsKeyId"].startswith(f"arn:aws:kms:us-east-1:{src}:key/")
    assert key["KeyManager"] == "AWS"
    alias_key = emu.client("kms", src).describe_key(KeyId="alias/aws/rds")["KeyMetadata"]
    assert alias_key["Arn"] == snap["KmsKeyId"]


def test_share_refused_on_aws_managed_key(emu, accounts):
    src, dst = accounts(2)
    db_snapshot(emu, src, StorageEncrypted=True)
    with pytest.raises(ClientError) as exc:
        share(emu, src, "s1", [dst])
    assert error_code(exc) == "InvalidParameterValue"
    assert "AWS-managed key" in exc.value.response["Error"]["Message"]


def test_share_refused_on_aws_managed_key_cluster(emu, accounts):
    src, dst = accounts(2)
    cluster_snapshot(emu, src, StorageEncrypted=True)
    with pytest.raises(ClientError) as exc:
        share(emu, src, "cs1", [dst], cluster=True)
    assert error_code(exc) == "InvalidParameterValue"


def test_share_automated_refused(emu, accounts):
    src, dst = accounts(2)
    key = create_key(emu, src)
    create_db(emu, src, StorageEncrypted=True, KmsKeyId=key)
    out = emu.control("POST", "/automated-snapshot", {"account": src, "region": "us-east-1", "db_instance_identifier": "db1"})
    ident = out["snapshot_id"]
    assert ident.startswith("rds:db1-") and out["db_snapshot_identifier"] == ident
    wait_db_snapshot(emu, src, ident)
    with pytest.raises(ClientError) as exc:
        share(emu, src, ident, [dst])
    assert error_code(exc) == "InvalidDBSnapshotState"


def test_share_automated_cluster_refused(emu, accounts):
    src, dst = accounts(2)
    cluster_snapshot(emu, src)
    out = emu.control("POST", "/automated-snapshot", {"account": src, "region": "us-east-1", "db_cluster_identifier": "c1"})
    ident = out["db_cluster_snapshot_identifier"]
    with pytest.raises(ClientError) as exc:
        share(emu, src, ident, [dst], cluster=True)
    assert error_code(exc) == "InvalidDBClusterSnapshotStateFault"


def test_share_all_on_encrypted_refused_but_ok_unencrypted(emu, accounts):
    src, other = accounts(2)
    key = create_key(emu, src)
    db_snapshot(emu, src, StorageEncrypted=True, KmsKeyId=key)
    with pytest.raises(ClientError) as exc:
        share(emu, src, "s1", ["all"])
    assert error_code(exc) == "InvalidParameterValue"
    db_snapshot(emu, other)
    share(emu, other, "s1", ["all"])


def test_share_more_than_20_accounts_refused(emu, accounts):
    (src,) = accounts(1)
    key = create_key(emu, src)
    db_snapshot(emu, src, StorageEncrypted=True, KmsKeyId=key)
    share(emu, src, "s1", accounts(20))
    with pytest.raises(ClientError) as exc:
        share(emu, src, "s1", accounts(1))
    assert error_code(exc) == "SharedSnapshotQuotaExceeded"


def test_restore_shared_encrypted_refused(emu, accounts):
    src, dst = accounts(2)
    key = create_key(emu, src)
    snap = db_snapshot(emu, src, StorageEncrypted=True, KmsKeyId=key)
    share(emu, src, "s1", [dst])
    with pytest.raises(ClientError) as exc:
        emu.client("rds", dst).restore_db_instance_from_db_snapshot(DBInstanceIdentifier="r", DBSnapshotIdentifier=snap["DBSnapshotArn"])
    assert error_code(exc) == "InvalidDBSnapshotState"


def test_restore_shared_encrypted_cluster_refused(emu, accounts):
    src, dst = accounts(2)
    key = create_key(emu, src)
    snap = cluster_snapshot(emu, src, StorageEncrypted=True, KmsKeyId=key)
    share(emu, src, "cs1", [dst], cluster=True)
    with pytest.raises(ClientError) as exc:
        emu.client("rds", dst).restore_db_cluster_from_snapshot(
            DBClusterIdentifier="r", SnapshotIdentifier=snap["DBClusterSnapshotArn"], Engine="aurora-postgresql"
        )
    assert error_code(exc) == "InvalidDBClusterSnapshotStateFault"


def test_copy_shared_encrypted_without_key_refused(emu, accounts):
    src, dst = accounts(2)
    key = create_key(emu, src)
    snap = db_snapshot(emu, src, StorageEncrypted=True, KmsKeyId=key)
    share(emu, src, "s1", [dst])
    with pytest.raises(ClientError) as exc:
        emu.client("rds", dst).copy_db_snapshot(SourceDBSnapshotIdentifier=snap["DBSnapshotArn"], TargetDBSnapshotIdentifier="c")
    assert error_code(exc) == "InvalidParameterValue"


def test_copy_shared_encrypted_cluster_without_key_refused(emu, accounts):
    src, dst = accounts(2)
    key = create_key(emu, src)
    snap = cluster_snapshot(emu, src, StorageEncrypted=True, KmsKeyId=key)
    share(emu, src, "cs1", [dst], cluster=True)
    with pytest.raises(ClientError) as exc:
        emu.client("rds", dst).copy_db_cluster_snapshot(
            SourceDBClusterSnapshotIdentifier=snap["DBClusterSnapshotArn"], TargetDBClusterSnapshotIdentifier="c"
        )
    assert error_code(exc) == "InvalidParameterValue"


def test_disabled_target_key_refused(emu, accounts):
    src, dst = accounts(2)
    key = create_key(emu, src)
    snap = db_snapshot(emu, src, StorageEncrypted=True, KmsKeyId=key)
    share(emu, src, "s1", [dst])
    dst_key = create_key(emu, dst)
    emu.client("kms", dst).disable_key(KeyId=dst_key)
    rds_dst = emu.client("rds", dst)
    with pytest.raises(ClientError) as exc:
        rds_dst.copy_db_snapshot(SourceDBSnapshotIdentifier=snap["DBSnapshotArn"], TargetDBSnapshotIdentifier="c", KmsKeyId=dst_key)
    assert error_code(exc) == "KMSKeyNotAccessibleFault"
    # create with a disabled key
    with pytest.raises(ClientError) as exc:
        create_db(emu, dst, "newdb", StorageEncrypted=True, KmsKeyId=dst_key)
    assert error_code(exc) == "KMSKeyNotAccessibleFault"


def test_disabled_source_key_refused(emu, accounts):
    src, dst = accounts(2)
    key = create_key(emu, src)
    snap = db_snapshot(emu, src, StorageEncrypted=True, KmsKeyId=key)
    share(emu, src, "s1", [dst])
    emu.client("kms", src).disable_key(KeyId=key)
    with pytest.raises(ClientError) as exc:
        emu.client("rds", dst).copy_db_snapshot(
            SourceDBSnapshotIdentifier=snap["DBSnapshotArn"], TargetDBSnapshotIdentifier="c", KmsKeyId=create_key(emu, dst)
        )
    assert error_code(exc) == "KMSKeyNotAccessibleFault"
    # the owner can't snapshot or restore on the disabled key either
    with pytest.raises(ClientError) as exc:
        emu.client("rds", src).create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="s2")
    assert error_code(exc) == "KMSKeyNotAccessibleFault"
    with pytest.raises(ClientError) as exc:
        emu.client("rds", src).restore_db_instance_from_db_snapshot(DBInstanceIdentifier="r", DBSnapshotIdentifier="s1")
    assert error_code(exc) == "KMSKeyNotAccessibleFault"


def test_copy_or_share_while_creating_refused(emu, accounts, config):
    config(delay_seconds=30)
    src, dst = accounts(2)
    create_db(emu, src)
    rds = emu.client("rds", src)
    assert rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="s1")["DBSnapshot"]["Status"] == "creating"
    with pytest.raises(ClientError) as exc:
        rds.copy_db_snapshot(SourceDBSnapshotIdentifier="s1", TargetDBSnapshotIdentifier="c")
    assert error_code(exc) == "InvalidDBSnapshotState"
    with pytest.raises(ClientError) as exc:
        share(emu, src, "s1", [dst])
    assert error_code(exc) == "InvalidDBSnapshotState"


def test_copy_cluster_snapshot_while_creating_refused(emu, accounts, config):
    (src,) = accounts(1)
    cluster_snapshot(emu, src)
    config(delay_seconds=30)
    rds = emu.client("rds", src)
    rds.create_db_cluster_snapshot(DBClusterIdentifier="c1", DBClusterSnapshotIdentifier="cs2")
    with pytest.raises(ClientError) as exc:
        rds.copy_db_cluster_snapshot(SourceDBClusterSnapshotIdentifier="cs2", TargetDBClusterSnapshotIdentifier="x")
    assert error_code(exc) == "InvalidDBClusterSnapshotStateFault"


def test_other_accounts_aws_managed_key_never_usable(emu, accounts):
    """A snapshot on the source's aws/rds key can't be shared, so a copy can't even find it."""
    src, dst = accounts(2)
    snap = db_snapshot(emu, src, StorageEncrypted=True)
    with pytest.raises(ClientError):
        share(emu, src, "s1", [dst])
    with pytest.raises(ClientError) as exc:
        emu.client("rds", dst).copy_db_snapshot(
            SourceDBSnapshotIdentifier=snap["DBSnapshotArn"], TargetDBSnapshotIdentifier="c", KmsKeyId=create_key(emu, dst)
        )
    assert error_code(exc) == "DBSnapshotNotFound"


def test_source_cmk_usable_cross_account_by_arn(emu, accounts):
    """The target may use the source account's CMK by ARN (key policies are not evaluated)."""
    src, dst = accounts(2)
    key = create_key(emu, src)
    create_db(emu, dst, "d2", StorageEncrypted=True, KmsKeyId=key)  # same region, other account's CMK
    db = emu.client("rds", dst).describe_db_instances(DBInstanceIdentifier="d2")["DBInstances"][0]
    assert db["KmsKeyId"] == key


def test_kms_cross_account_by_arn(emu, accounts):
    src, dst = accounts(2)
    key = create_key(emu, src)
    kms_dst = emu.client("kms", dst)
    meta = kms_dst.describe_key(KeyId=key)["KeyMetadata"]
    assert meta["Arn"] == key and meta["AWSAccountId"] == src
    grant = kms_dst.create_grant(KeyId=key, GranteePrincipal=f"arn:aws:iam::{dst}:role/copier", Operations=["Decrypt"])
    assert grant["GrantId"]
    # management stays with the owner; another account's AWS-managed key is never usable
    with pytest.raises(ClientError) as exc:
        kms_dst.disable_key(KeyId=key)
    assert error_code(exc) == "NotFoundException"
    aws_key = emu.client("kms", src).describe_key(KeyId="alias/aws/rds")["KeyMetadata"]["Arn"]
    with pytest.raises(ClientError) as exc:
        kms_dst.describe_key(KeyId=aws_key)
    assert error_code(exc) == "NotFoundException"
