"""Option groups on DB snapshots and their copies (RDS API CopyDBSnapshot ``OptionGroupName``)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from conftest import OTHER_REGION, REGION, create_db, db_snapshot, error_code, wait_available, wait_db_snapshot

REFUSAL = "The snapshot requires a target option group with the following options: [Timezone]"


def option_group(emu, account, name, options, region=REGION):
    rds = emu.client("rds", account, region)
    rds.create_option_group(OptionGroupName=name, EngineName="oracle-ee", MajorEngineVersion="19", OptionGroupDescription=name)
    if options:
        rds.modify_option_group(OptionGroupName=name, OptionsToInclude=[{"OptionName": o} for o in options], ApplyImmediately=True)


def oracle_snapshot(emu, account, group=None, region=REGION):
    """Snapshot s1 of an Oracle instance db1 (in ``group`` if given, else the default group)."""
    kwargs = dict(Engine="oracle-ee", EngineVersion="19.0.0.0.ru-2024-01.rur-2024-01.r1", LicenseModel="bring-your-own-license")
    if group:
        kwargs["OptionGroupName"] = group
    return db_snapshot(emu, account, region=region, **kwargs)


def test_snapshot_shows_its_option_group_and_copies_keep_it(emu, accounts):
    src, dst = accounts(2)
    option_group(emu, src, "ora-tz", ["Timezone"])
    snap = oracle_snapshot(emu, src, "ora-tz")
    assert snap["OptionGroupName"] == "ora-tz"
    rds_src = emu.client("rds", src)

    # Same region, same account: no OptionGroupName needed, the copy keeps the group.
    created = rds_src.copy_db_snapshot(SourceDBSnapshotIdentifier="s1", TargetDBSnapshotIdentifier="c1")["DBSnapshot"]
    assert created["OptionGroupName"] == "ora-tz"
    assert wait_db_snapshot(emu, src, "c1")["OptionGroupName"] == "ora-tz"

    # Same region, another account (shared): not refused. The group is another account's:
    # without CopyOptionGroup the copy has the engine's default; with it, the group (and its
    # options) is copied into the copying account and the copy has it.
    rds_src.modify_db_snapshot_attribute(DBSnapshotIdentifier="s1", AttributeName="restore", ValuesToAdd=[dst])
    rds_dst = emu.client("rds", dst)
    rds_dst.copy_db_snapshot(SourceDBSnapshotIdentifier=snap["DBSnapshotArn"], TargetDBSnapshotIdentifier="x1")
    assert wait_db_snapshot(emu, dst, "x1")["OptionGroupName"].startswith("default:oracle-ee-19")
    with pytest.raises(ClientError) as exc:
        rds_dst.describe_option_groups(OptionGroupName="ora-tz")
    assert exc.value.response["Error"]["Code"] == "OptionGroupNotFoundFault"
    rds_dst.copy_db_snapshot(SourceDBSnapshotIdentifier=snap["DBSnapshotArn"], TargetDBSnapshotIdentifier="x2", CopyOptionGroup=True)
    assert wait_db_snapshot(emu, dst, "x2")["OptionGroupName"] == "ora-tz"
    copied = rds_dst.describe_option_groups(OptionGroupName="ora-tz")["OptionGroupsList"]
    assert [o["OptionName"] for o in copied[0]["Options"]] == ["Timezone"]


def test_default_option_group_is_shown_and_copies_cross_region(emu, accounts):
    (account,) = accounts(1)
    snap = oracle_snapshot(emu, account)
    assert snap["OptionGroupName"].startswith("default:oracle-ee-19")
    rds_other = emu.client("rds", account, OTHER_REGION)
    rds_other.copy_db_snapshot(SourceDBSnapshotIdentifier=snap["DBSnapshotArn"], TargetDBSnapshotIdentifier="c1")
    assert wait_db_snapshot(emu, account, "c1", region=OTHER_REGION)["OptionGroupName"] == snap["OptionGroupName"]


def test_cross_region_copy_needs_a_target_option_group(emu, accounts):
    (account,) = accounts(1)
    option_group(emu, account, "ora-tz", ["Timezone"])
    arn = oracle_snapshot(emu, account, "ora-tz")["DBSnapshotArn"]
    rds_other = emu.client("rds", account, OTHER_REGION)

    with pytest.raises(ClientError) as exc:
        rds_other.copy_db_snapshot(SourceDBSnapshotIdentifier=arn, TargetDBSnapshotIdentifier="c1")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error_code(exc) == "InvalidParameterValue"
    assert exc.value.response["Error"]["Message"] == REFUSAL
    assert rds_other.describe_db_snapshots()["DBSnapshots"] == []  # nothing copied
    assert all(c["source_arn"] != arn for c in emu.control("GET", "/copies")["copies"])

    # A group the destination account doesn't have in that region.
    with pytest.raises(ClientError) as exc:
        rds_other.copy_db_snapshot(SourceDBSnapshotIdentifier=arn, TargetDBSnapshotIdentifier="c1", OptionGroupName="ora-tz")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert error_code(exc) == "OptionGroupNotFoundFault"
    assert exc.value.response["Error"]["Message"] == "Specified OptionGroupName: ora-tz not found."

    # With one there: the copy carries it, and a restore of the copy uses it.
    option_group(emu, account, "ora-tz-eu", ["Timezone"], region=OTHER_REGION)
    created = rds_other.copy_db_snapshot(SourceDBSnapshotIdentifier=arn, TargetDBSnapshotIdentifier="c1", OptionGroupName="ora-tz-eu")["DBSnapshot"]
    assert created["OptionGroupName"] == "ora-tz-eu"
    assert wait_db_snapshot(emu, account, "c1", region=OTHER_REGION)["OptionGroupName"] == "ora-tz-eu"
    rds_other.restore_db_instance_from_db_snapshot(DBSnapshotIdentifier="c1", DBInstanceIdentifier="r1")
    restored = wait_available(emu, account, "r1", OTHER_REGION)
    assert [m["OptionGroupName"] for m in restored["OptionGroupMemberships"]] == ["ora-tz-eu"]

    # A copy of that copy back in the first region needs a group there too.
    with pytest.raises(ClientError) as exc:
        emu.client("rds", account).copy_db_snapshot(SourceDBSnapshotIdentifier=created["DBSnapshotArn"], TargetDBSnapshotIdentifier="back")
    assert exc.value.response["Error"]["Message"] == REFUSAL


def test_snapshot_keeps_the_options_it_was_taken_with(emu, accounts):
    (account,) = accounts(1)
    option_group(emu, account, "ora-tz", [])
    arn = oracle_snapshot(emu, account, "ora-tz")["DBSnapshotArn"]
    rds = emu.client("rds", account)
    rds.modify_option_group(OptionGroupName="ora-tz", OptionsToInclude=[{"OptionName": "Timezone"}], ApplyImmediately=True)
    rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="s2")
    arn2 = wait_db_snapshot(emu, account, "s2")["DBSnapshotArn"]
    rds_other = emu.client("rds", account, OTHER_REGION)

    # s1 was taken while the group had no option: nothing to carry over, no refusal.
    rds_other.copy_db_snapshot(SourceDBSnapshotIdentifier=arn, TargetDBSnapshotIdentifier="c1")
    assert wait_db_snapshot(emu, account, "c1", region=OTHER_REGION)["OptionGroupName"] == "ora-tz"
    # s2 was taken with Timezone.
    with pytest.raises(ClientError) as exc:
        rds_other.copy_db_snapshot(SourceDBSnapshotIdentifier=arn2, TargetDBSnapshotIdentifier="c2")
    assert exc.value.response["Error"]["Message"] == REFUSAL


def test_cross_region_copy_of_a_shared_snapshot_is_refused_too(emu, accounts):
    src, dst = accounts(2)
    option_group(emu, src, "ora-tz", ["Timezone", "STATSPACK"])
    arn = oracle_snapshot(emu, src, "ora-tz")["DBSnapshotArn"]
    emu.client("rds", src).modify_db_snapshot_attribute(DBSnapshotIdentifier="s1", AttributeName="restore", ValuesToAdd=[dst])
    with pytest.raises(ClientError) as exc:
        emu.client("rds", dst, OTHER_REGION).copy_db_snapshot(SourceDBSnapshotIdentifier=arn, TargetDBSnapshotIdentifier="c1")
    assert error_code(exc) == "InvalidParameterValue"
    assert exc.value.response["Error"]["Message"] == "The snapshot requires a target option group with the following options: [Timezone, STATSPACK]"


def test_snapshot_of_instance_without_group_shows_its_default_group(emu, accounts):
    (account,) = accounts(1)
    db = create_db(emu, account, "p1")
    (membership,) = db["OptionGroupMemberships"]
    assert membership["OptionGroupName"].startswith("default:postgres-16")
    snap = emu.client("rds", account).create_db_snapshot(DBInstanceIdentifier="p1", DBSnapshotIdentifier="ps1")["DBSnapshot"]
    assert snap["OptionGroupName"] == membership["OptionGroupName"]
    assert wait_db_snapshot(emu, account, "ps1")["OptionGroupName"] == membership["OptionGroupName"]
