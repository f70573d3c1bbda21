"""End-to-end flows the snapferry pipeline runs, driven only by native events."""

from __future__ import annotations

import json

from conftest import REGION, create_db, create_key, ebs_snapshot, make_queue_for_rule, wait_db_snapshot, wait_for


def test_automated_on_aws_key_to_target_account(emu, accounts):
    """automated (aws/rds) -> manual copy on a CMK -> share -> pipeline event -> target copy."""
    src, dst = accounts(2)
    src_events = make_queue_for_rule(emu, src, {"source": ["aws.rds"], "detail": {"EventID": ["RDS-EVENT-0091", "RDS-EVENT-0197"]}})
    dst_events = make_queue_for_rule(emu, dst, {"source": ["aws.rds", "snapferry.pipeline"], "detail": {"EventID": ["RDS-EVENT-0197", "shared"]}})
    emu.client("events", dst).put_permission(Action="events:PutEvents", Principal=src, StatementId="src")
    create_db(emu, src, StorageEncrypted=True)
    rds_src, rds_dst = emu.client("rds", src), emu.client("rds", dst)
    cmk = create_key(emu, src)
    auto = emu.control("POST", "/automated-snapshot", {"account": src, "region": REGION, "db_instance_identifier": "db1"})

    ev = wait_for(lambda: src_events(), what="0091")[0]
    assert ev["detail"]["SourceIdentifier"] == auto["db_snapshot_identifier"]
    rds_src.copy_db_snapshot(SourceDBSnapshotIdentifier=ev["detail"]["SourceIdentifier"], TargetDBSnapshotIdentifier="db1-manual", KmsKeyId=cmk)
    ev = wait_for(lambda: len(src_events()) == 2 and src_events()[1], what="0197")
    assert ev["detail"]["EventID"] == "RDS-EVENT-0197"
    rds_src.modify_db_snapshot_attribute(DBSnapshotIdentifier="db1-manual", AttributeName="restore", ValuesToAdd=[dst])
    emu.client("events", src).put_events(
        Entries=[
            {
                "Source": "snapferry.pipeline",
                "DetailType": "Snapshot Shared",
                "Detail": json.dumps({"EventID": "shared", "arn": ev["detail"]["SourceArn"]}),
                "EventBusName": f"arn:aws:events:{REGION}:{dst}:event-bus/default",
            }
        ]
    )
    shared = wait_for(lambda: dst_events(), what="pipeline event in target")[0]
    assert shared["account"] == src
    rds_dst.copy_db_snapshot(
        SourceDBSnapshotIdentifier=shared["detail"]["arn"], TargetDBSnapshotIdentifier="backup", KmsKeyId=create_key(emu, dst)
    )
    done = wait_for(lambda: len(dst_events()) == 2 and dst_events()[1], what="target 0197")
    assert done["account"] == dst and done["detail"]["SourceIdentifier"] == "backup"
    assert wait_db_snapshot(emu, dst, "backup")["Encrypted"] is True


def test_ebs_on_aws_key_to_target_account(emu, accounts):
    src, dst = accounts(2)
    pattern = {"source": ["aws.ec2"], "detail-type": ["EBS Snapshot Notification"]}
    src_events, dst_events = make_queue_for_rule(emu, src, pattern), make_queue_for_rule(emu, dst, pattern)
    snap = ebs_snapshot(emu, src, Encrypted=True)
    ec2_src, ec2_dst = emu.client("ec2", src), emu.client("ec2", dst)
    cmk = create_key(emu, src)
    copy = ec2_src.copy_snapshot(SourceSnapshotId=snap["SnapshotId"], SourceRegion=REGION, KmsKeyId=cmk, Encrypted=True)
    wait_for(lambda: [e for e in src_events() if e["detail"]["event"] == "copySnapshot"], what="copySnapshot")
    ec2_src.modify_snapshot_attribute(SnapshotId=copy["SnapshotId"], Attribute="createVolumePermission", OperationType="add", UserIds=[dst])
    share = wait_for(lambda: dst_events(), what="shareSnapshot")[0]["detail"]
    shared_id = share["snapshot_id"].split("/")[-1]
    assert shared_id == copy["SnapshotId"] and share["source"] == src
    target = ec2_dst.copy_snapshot(SourceSnapshotId=shared_id, SourceRegion=REGION, KmsKeyId=create_key(emu, dst), Encrypted=True)
    wait_for(lambda: [e for e in dst_events() if e["detail"]["event"] == "copySnapshot" and e["detail"]["result"] == "succeeded"], what="target copy")
    assert ec2_dst.describe_snapshots(SnapshotIds=[target["SnapshotId"]])["Snapshots"][0]["OwnerId"] == dst
