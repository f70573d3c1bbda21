"""Behaviours 3 and 4 for RDS: creating -> available over time, native events."""

from __future__ import annotations

from conftest import (
    OTHER_REGION,
    REGION,
    cluster_snapshot,
    create_cluster,
    create_db,
    create_key,
    db_snapshot,
    make_queue_for_rule,
    wait_cluster_snapshot,
    wait_db_snapshot,
    wait_for,
)

RDS_PATTERN = {"source": ["aws.rds"]}


def event_ids(events):
    return [e["detail"]["EventID"] for e in events]


def test_manual_snapshot_creating_then_available_with_events(emu, accounts):
    (acct,) = accounts(1)
    drain = make_queue_for_rule(emu, acct, RDS_PATTERN)
    create_db(emu, acct)
    rds = emu.client("rds", acct)
    snap = rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="s1")["DBSnapshot"]
    assert snap["Status"] == "creating" and snap["PercentProgress"] == 0
    described = rds.describe_db_snapshots(DBSnapshotIdentifier="s1")["DBSnapshots"][0]
    assert described["Status"] == "creating"
    # Nobody polls: the ticker still finishes it and the event arrives.
    events = wait_for(lambda: "RDS-EVENT-0042" in event_ids(drain()) and drain(), what="0042 event")
    assert event_ids(events) == ["RDS-EVENT-0042"]  # completion only; no creation-start event
    done = events[-1]
    arn = f"arn:aws:rds:{REGION}:{acct}:snapshot:s1"
    assert done["version"] == "0" and done["source"] == "aws.rds"
    assert done["detail-type"] == "RDS DB Snapshot Event"
    assert done["account"] == acct and done["region"] == REGION
    assert done["resources"] == [arn]
    assert done["id"] and done["time"].endswith("Z")
    detail = done["detail"]
    assert detail["EventCategories"] == ["creation"]
    assert detail["SourceType"] == "SNAPSHOT" and detail["SourceArn"] == arn and detail["SourceIdentifier"] == "s1"
    assert detail["Message"] == "Manual snapshot created" and detail["Date"]
    final = rds.describe_db_snapshots(DBSnapshotIdentifier="s1")["DBSnapshots"][0]
    assert final["Status"] == "available" and final["PercentProgress"] == 100


def test_same_and_cross_region_copy_events(emu, accounts):
    (acct,) = accounts(1)
    db_snapshot(emu, acct)
    drain_here = make_queue_for_rule(emu, acct, RDS_PATTERN)
    drain_there = make_queue_for_rule(emu, acct, RDS_PATTERN, region=OTHER_REGION)
    rds = emu.client("rds", acct)
    copy = rds.copy_db_snapshot(SourceDBSnapshotIdentifier="s1", TargetDBSnapshotIdentifier="c1")["DBSnapshot"]
    assert copy["Status"] == "creating"
    wait_for(lambda: "RDS-EVENT-0197" in event_ids(drain_here()), what="0197")
    assert event_ids(drain_here()) == ["RDS-EVENT-0196", "RDS-EVENT-0197"]
    assert drain_here()[-1]["detail"]["SourceIdentifier"] == "c1"

    src_arn = f"arn:aws:rds:{REGION}:{acct}:snapshot:s1"
    rds_there = emu.client("rds", acct, OTHER_REGION)
    rds_there.copy_db_snapshot(SourceDBSnapshotIdentifier=src_arn, TargetDBSnapshotIdentifier="x1")
    wait_for(lambda: "RDS-EVENT-0060" in event_ids(drain_there()), what="0060")
    assert event_ids(drain_there()) == ["RDS-EVENT-0059", "RDS-EVENT-0060"]
    assert drain_there()[-1]["region"] == OTHER_REGION
    wait_db_snapshot(emu, acct, "x1", region=OTHER_REGION)


def test_cluster_snapshot_events_and_no_copy_event(emu, accounts):
    (acct,) = accounts(1)
    drain = make_queue_for_rule(emu, acct, {"source": ["aws.rds"], "detail-type": ["RDS DB Cluster Snapshot Event"]})
    cluster_snapshot(emu, acct)
    events = wait_for(lambda: drain(), what="cluster events")
    assert event_ids(events) == ["RDS-EVENT-0075"]
    assert events[-1]["detail"]["SourceType"] == "CLUSTER_SNAPSHOT"
    assert events[-1]["resources"] == [f"arn:aws:rds:{REGION}:{acct}:cluster-snapshot:cs1"]

    rds = emu.client("rds", acct)
    assert rds.copy_db_cluster_snapshot(SourceDBClusterSnapshotIdentifier="cs1", TargetDBClusterSnapshotIdentifier="cc")["DBClusterSnapshot"]["Status"] == "creating"
    wait_cluster_snapshot(emu, acct, "cc")
    # AWS sends no event for a finished cluster snapshot copy, nor for sharing.
    rds.modify_db_cluster_snapshot_attribute(DBClusterSnapshotIdentifier="cs1", AttributeName="restore", ValuesToAdd=["222222222222"])
    assert event_ids(drain()) == ["RDS-EVENT-0075"]
    assert [e["event_id_or_name"] for e in emu.events_for(acct)] == ["RDS-EVENT-0075"]


def test_no_event_for_db_snapshot_sharing(emu, accounts):
    acct, dst = accounts(2)
    db_snapshot(emu, acct)
    wait_for(lambda: len(emu.events_for(acct)) == 1, what="creation event")
    emu.client("rds", acct).modify_db_snapshot_attribute(DBSnapshotIdentifier="s1", AttributeName="restore", ValuesToAdd=[dst])
    assert len(emu.events_for(acct)) == 1 and emu.events_for(dst) == []


def test_automated_snapshots_via_control(emu, accounts):
    (acct,) = accounts(1)
    key = create_key(emu, acct)
    create_db(emu, acct, StorageEncrypted=True, KmsKeyId=key)
    create_cluster(emu, acct)
    drain = make_queue_for_rule(emu, acct, RDS_PATTERN)
    out = emu.control("POST", "/automated-snapshot", {"account": acct, "region": REGION, "db_instance_identifier": "db1"})
    assert out["status"] == "creating"
    snap = wait_db_snapshot(emu, acct, out["db_snapshot_identifier"])
    assert snap["SnapshotType"] == "automated" and snap["KmsKeyId"] == key
    out2 = emu.control("POST", "/automated-snapshot", {"account": acct, "region": REGION, "db_cluster_identifier": "c1"})
    wait_cluster_snapshot(emu, acct, out2["db_cluster_snapshot_identifier"])
    ids = wait_for(lambda: {"RDS-EVENT-0091", "RDS-EVENT-0169"} <= set(event_ids(drain())) and event_ids(drain()), what="automated events")
    assert sorted(ids) == ["RDS-EVENT-0091", "RDS-EVENT-0169"]
    rds = emu.client("rds", acct)
    manual = rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]
    assert manual == []
    assert [s["SnapshotType"] for s in rds.describe_db_snapshots(SnapshotType="automated")["DBSnapshots"]] == ["automated"]


def test_automated_snapshot_control_rejects_bad_input(emu, accounts):
    (acct,) = accounts(1)
    assert "error" in emu.control("POST", "/automated-snapshot", {"account": acct}, expect=400)
    assert "error" in emu.control("POST", "/automated-snapshot", {"account": acct, "region": REGION, "db_instance_identifier": "nope"}, expect=400)


def test_failed_completion_emits_failure_event(emu, accounts):
    (acct,) = accounts(1)
    db_snapshot(emu, acct)
    drain = make_queue_for_rule(emu, acct, RDS_PATTERN)
    emu.control("POST", "/fail-completions", {"kind": "db-instance", "account": acct, "count": 1})
    rds = emu.client("rds", acct)
    rds.copy_db_snapshot(SourceDBSnapshotIdentifier="s1", TargetDBSnapshotIdentifier="c1")
    wait_db_snapshot(emu, acct, "c1", status="failed")
    assert event_ids(wait_for(lambda: len(drain()) >= 2 and drain(), what="events")) == ["RDS-EVENT-0196", "RDS-EVENT-0190"]
    # Only one failure was requested: the next copy succeeds.
    rds.copy_db_snapshot(SourceDBSnapshotIdentifier="s1", TargetDBSnapshotIdentifier="c2")
    wait_db_snapshot(emu, acct, "c2")


def test_failed_snapshot_creation(emu, accounts):
    (acct,) = accounts(1)
    create_db(emu, acct)
    emu.control("POST", "/fail-completions", {"kind": "db-instance", "account": acct})
    emu.client("rds", acct).create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="s1")
    wait_db_snapshot(emu, acct, "s1", status="failed")
    events = wait_for(lambda: emu.events_for(acct), what="failure event")
    assert len(events) == 1 and events[0]["event"]["detail"]["EventCategories"] == ["failure"]


def test_failed_cluster_snapshot(emu, accounts):
    (acct,) = accounts(1)
    create_cluster(emu, acct)
    emu.control("POST", "/fail-completions", {"kind": "db-cluster", "account": acct})
    emu.client("rds", acct).create_db_cluster_snapshot(DBClusterIdentifier="c1", DBClusterSnapshotIdentifier="cs1")
    wait_cluster_snapshot(emu, acct, "cs1", status="failed")


def test_copy_fails_when_source_deleted_before_done(emu, accounts, config):
    (acct,) = accounts(1)
    db_snapshot(emu, acct)
    config(delay_seconds=1.0)
    rds = emu.client("rds", acct)
    rds.copy_db_snapshot(SourceDBSnapshotIdentifier="s1", TargetDBSnapshotIdentifier="c1")
    rds.delete_db_snapshot(DBSnapshotIdentifier="s1")
    wait_db_snapshot(emu, acct, "c1", status="failed")


def test_drop_native_events(emu, accounts):
    (acct,) = accounts(1)
    create_db(emu, acct)
    drain = make_queue_for_rule(emu, acct, RDS_PATTERN)
    emu.control("POST", "/drop-events", {"detail_type": "RDS DB Snapshot Event", "event_id": "RDS-EVENT-0042", "account": acct, "count": 1})
    rds = emu.client("rds", acct)
    rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="s1")
    wait_db_snapshot(emu, acct, "s1")
    rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="s2")
    wait_db_snapshot(emu, acct, "s2")
    delivered = wait_for(lambda: drain(), what="the second snapshot's event")
    assert event_ids(delivered) == ["RDS-EVENT-0042"] and delivered[0]["detail"]["SourceIdentifier"] == "s2"
    recorded = emu.events_for(acct)
    assert [(e["event_id_or_name"], e["dropped"]) for e in recorded] == [("RDS-EVENT-0042", True), ("RDS-EVENT-0042", False)]
    assert recorded[0]["event"]["detail"]["SourceIdentifier"] == "s1"


def test_drop_until_cleared(emu, accounts):
    (acct,) = accounts(1)
    create_db(emu, acct)
    emu.control("POST", "/drop-events", {"detail_type": "RDS DB Snapshot Event", "account": acct})
    rds = emu.client("rds", acct)
    rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="s1")
    wait_db_snapshot(emu, acct, "s1")
    wait_for(lambda: len(emu.events_for(acct)) == 1, what="events recorded")
    assert all(e["dropped"] for e in emu.events_for(acct))
    emu.control("DELETE", "/drop-events")
    rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="s2")
    wait_db_snapshot(emu, acct, "s2")
    wait_for(lambda: len(emu.events_for(acct)) == 2, what="events recorded")
    assert not emu.events_for(acct)[1]["dropped"]


def test_failed_restore_ends_failed(emu, accounts):
    """A fail-completions rule of kind 'restore' makes the next restore end `failed`."""
    (acct,) = accounts(1)
    db_snapshot(emu, acct)
    emu.control("POST", "/fail-completions", {"kind": "restore", "account": acct, "count": 1})
    rds = emu.client("rds", acct)
    rds.restore_db_instance_from_db_snapshot(DBInstanceIdentifier="r1", DBSnapshotIdentifier="s1")
    wait_for(
        lambda: rds.describe_db_instances(DBInstanceIdentifier="r1")["DBInstances"][0]["DBInstanceStatus"] == "failed",
        what="restore failed",
    )
    rds.restore_db_instance_from_db_snapshot(DBInstanceIdentifier="r2", DBSnapshotIdentifier="s1")
    wait_for(
        lambda: rds.describe_db_instances(DBInstanceIdentifier="r2")["DBInstances"][0]["DBInstanceStatus"] == "available",
        what="the next restore succeeds",
    )


def test_failed_copies_name_the_copy_and_can_be_replaced(emu, accounts):
    """0190 (same region) / 0061 (cross region) carry the copy's ARN and identifier, as
    every RDS snapshot event does (RDS User Guide *rds-cloud-watch-events*); a failed
    copy can be deleted and copied again under the same identifier."""
    (acct,) = accounts(1)
    db_snapshot(emu, acct)
    src_arn = f"arn:aws:rds:{REGION}:{acct}:snapshot:s1"
    rds, rds_there = emu.client("rds", acct), emu.client("rds", acct, OTHER_REGION)
    emu.control("POST", "/fail-completions", {"kind": "db-instance", "account": acct, "count": 2})
    rds.copy_db_snapshot(SourceDBSnapshotIdentifier="s1", TargetDBSnapshotIdentifier="c1")
    rds_there.copy_db_snapshot(SourceDBSnapshotIdentifier=src_arn, TargetDBSnapshotIdentifier="x1")
    wait_db_snapshot(emu, acct, "c1", status="failed")
    wait_db_snapshot(emu, acct, "x1", status="failed", region=OTHER_REGION)

    def recorded(event_id):
        return [e for e in emu.events_for(acct) if e["event_id_or_name"] == event_id]

    (same,) = wait_for(lambda: recorded("RDS-EVENT-0190"), what="0190")
    (cross,) = wait_for(lambda: recorded("RDS-EVENT-0061"), what="0061")
    for record, region, ident in ((same, REGION, "c1"), (cross, OTHER_REGION, "x1")):
        arn = f"arn:aws:rds:{region}:{acct}:snapshot:{ident}"
        event = record["event"]
        assert record["region"] == region and event["region"] == region and not record["dropped"]
        assert event["detail-type"] == "RDS DB Snapshot Event" and event["resources"] == [arn]
        assert event["detail"]["SourceArn"] == arn and event["detail"]["SourceIdentifier"] == ident
        assert event["detail"]["SourceType"] == "SNAPSHOT" and event["detail"]["EventCategories"] == ["notification"]

    rds.delete_db_snapshot(DBSnapshotIdentifier="c1")
    rds_there.delete_db_snapshot(DBSnapshotIdentifier="x1")
    assert rds.copy_db_snapshot(SourceDBSnapshotIdentifier="s1", TargetDBSnapshotIdentifier="c1")["DBSnapshot"]["Status"] == "creating"
    rds_there.copy_db_snapshot(SourceDBSnapshotIdentifier=src_arn, TargetDBSnapshotIdentifier="x1")
    wait_db_snapshot(emu, acct, "c1")
    wait_db_snapshot(emu, acct, "x1", region=OTHER_REGION)
    wait_for(lambda: recorded("RDS-EVENT-0197") and recorded("RDS-EVENT-0060"), what="0197 and 0060 for the new copies")


def test_failed_cluster_copy_can_be_deleted_and_replaced(emu, accounts):
    (acct,) = accounts(1)
    cluster_snapshot(emu, acct)
    emu.control("POST", "/fail-completions", {"kind": "db-cluster", "account": acct})
    rds = emu.client("rds", acct)
    rds.copy_db_cluster_snapshot(SourceDBClusterSnapshotIdentifier="cs1", TargetDBClusterSnapshotIdentifier="cc")
    wait_cluster_snapshot(emu, acct, "cc", status="failed")
    rds.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="cc")
    rds.copy_db_cluster_snapshot(SourceDBClusterSnapshotIdentifier="cs1", TargetDBClusterSnapshotIdentifier="cc")
    wait_cluster_snapshot(emu, acct, "cc")
