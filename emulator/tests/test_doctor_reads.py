"""What ``snapferry doctor`` reads, with the misconfigurations it must detect seeded.

KMS key states and policies, event bus policies, SQS redrive policies, RDS
option groups with persistent/permanent options, Multi-AZ DB clusters and RDS
Custom instances: each answers the way AWS documents it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError
from conftest import REGION, create_db, create_key, error_code


# ------------------------------------------------------------------------ KMS
def test_kms_describe_key_disabled_then_pending_deletion(emu, accounts):
    source, backup = accounts(2)
    kms = emu.client("kms", source)
    arn = create_key(emu, source)
    kms.disable_key(KeyId=arn)
    meta = kms.describe_key(KeyId=arn)["KeyMetadata"]
    assert (meta["KeyState"], meta["Enabled"]) == ("Disabled", False)
    assert "DeletionDate" not in meta
    # The backup account reads the source's key by ARN (DescribeKey works across accounts).
    assert emu.client("kms", backup).describe_key(KeyId=arn)["KeyMetadata"]["KeyState"] == "Disabled"

    scheduled = kms.schedule_key_deletion(KeyId=arn, PendingWindowInDays=7)
    meta = kms.describe_key(KeyId=arn)["KeyMetadata"]
    assert (meta["KeyState"], meta["Enabled"]) == ("PendingDeletion", False)
    assert meta["DeletionDate"] == scheduled["DeletionDate"]
    assert timedelta(days=6) < meta["DeletionDate"] - datetime.now(timezone.utc) <= timedelta(days=7)


@pytest.mark.parametrize("alias", ["alias/aws/rds", "alias/aws/ebs"])
def test_kms_aws_managed_keys(emu, accounts, alias):
    (account,) = accounts(1)
    meta = emu.client("kms", account).describe_key(KeyId=alias)["KeyMetadata"]
    assert meta["KeyManager"] == "AWS" and meta["KeyState"] == "Enabled"
    assert meta["Arn"].startswith(f"arn:aws:kms:{REGION}:{account}:key/")


def test_kms_key_policy_round_trip(emu, accounts):
    source, backup = accounts(2)
    kms = emu.client("kms", source)
    arn = create_key(emu, source)
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "admins", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{source}:root"}, "Action": "kms:*", "Resource": "*"},
                {
                    "Sid": "backup",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{backup}:root"},
                    "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:CreateGrant"],
                    "Resource": "*",
                },
            ],
        }
    )
    kms.put_key_policy(KeyId=arn, PolicyName="default", Policy=policy)
    got = kms.get_key_policy(KeyId=arn, PolicyName="default")
    assert got["Policy"] == policy and got["PolicyName"] == "default"
    # PolicyName is optional (default "default"), for both calls.
    assert kms.get_key_policy(KeyId=arn)["Policy"] == policy
    kms.put_key_policy(KeyId=arn, Policy=policy.replace("kms:CreateGrant", "kms:ReEncrypt*"))
    assert "kms:ReEncrypt*" in kms.get_key_policy(KeyId=arn)["Policy"]
    with pytest.raises(ClientError) as exc:
        kms.get_key_policy(KeyId=arn, PolicyName="other")
    assert error_code(exc) == "NotFoundException"


# -------------------------------------------------------------- EventBridge
def statements(events, bus):
    answer = events.describe_event_bus(Name=bus)
    return {s["Sid"]: s for s in json.loads(answer["Policy"])["Statement"]} if "Policy" in answer else {}


def test_event_bus_policy_put_describe_remove(emu, accounts):
    owner, backup, other = accounts(3)
    events = emu.client("events", owner)
    bus_arn = events.create_event_bus(Name="snapferry")["EventBusArn"]
    assert statements(events, "snapferry") == {}

    # Principal form: one statement per call, principal rendered as the account root.
    events.put_permission(EventBusName="snapferry", Action="events:PutEvents", Principal=backup, StatementId="backup")
    events.put_permission(EventBusName="snapferry", Action="events:PutEvents", Principal=other, StatementId="other")
    got = statements(events, "snapferry")
    assert got["backup"] == {
        "Sid": "backup",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{backup}:root"},
        "Action": "events:PutEvents",
        "Resource": bus_arn,
    }
    assert set(got) == {"backup", "other"}

    events.remove_permission(EventBusName="snapferry", StatementId="other")
    assert set(statements(events, "snapferry")) == {"backup"}
    with pytest.raises(ClientError) as exc:
        events.remove_permission(EventBusName="snapferry", StatementId="other")
    assert error_code(exc) == "ResourceNotFoundException"

    # Policy form: the document replaces the whole policy.
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "src", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{other}:root"}, "Action": "events:PutEvents", "Resource": bus_arn},
            {"Sid": "src2", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{backup}:root"}, "Action": "events:PutEvents", "Resource": bus_arn},
        ],
    }
    events.put_permission(EventBusName="snapferry", Policy=json.dumps(policy))
    got = statements(events, "snapferry")
    assert set(got) == {"src", "src2"} and got["src"]["Principal"] == {"AWS": f"arn:aws:iam::{other}:root"}

    # A malformed policy is refused and leaves the policy as it was.
    with pytest.raises(ClientError) as exc:
        events.put_permission(EventBusName="snapferry", Policy="{not json")
    assert error_code(exc) == "ValidationException"
    assert set(statements(events, "snapferry")) == {"src", "src2"}

    events.remove_permission(EventBusName="snapferry", StatementId="src2")
    assert set(statements(events, "snapferry")) == {"src"}
    events.remove_permission(EventBusName="snapferry", RemoveAllPermissions=True)
    assert "Policy" not in events.describe_event_bus(Name="snapferry")
    with pytest.raises(ClientError) as exc:
        events.remove_permission(EventBusName="snapferry", StatementId="src")
    assert error_code(exc) == "ResourceNotFoundException"


# ---------------------------------------------------------------------- SQS
def test_sqs_redrive_policy_reported_and_removed_by_empty_string(emu, accounts):
    (account,) = accounts(1)
    sqs = emu.client("sqs", account)
    dlq = sqs.create_queue(QueueName="step-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5})
    url = sqs.create_queue(QueueName="step", Attributes={"RedrivePolicy": redrive, "VisibilityTimeout": "720"})["QueueUrl"]

    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert json.loads(attrs["RedrivePolicy"]) == {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}
    assert attrs["VisibilityTimeout"] == "720"
    assert sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == [url]

    # An empty RedrivePolicy removes it (the seeded "no DLQ" misconfiguration).
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": ""})
    assert "RedrivePolicy" not in sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert "Attributes" not in sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
    assert sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == []


# ---------------------------------------------------------------------- RDS
def test_oracle_tde_option_group_is_persistent_and_permanent(emu, accounts):
    (account,) = accounts(1)
    rds = emu.client("rds", account)
    rds.create_option_group(OptionGroupName="ora-tde", EngineName="oracle-ee", MajorEngineVersion="19", OptionGroupDescription="TDE")
    modified = rds.modify_option_group(
        OptionGroupName="ora-tde", OptionsToInclude=[{"OptionName": "TDE"}, {"OptionName": "STATSPACK"}], ApplyImmediately=True
    )["OptionGroup"]
    described = rds.describe_option_groups(OptionGroupName="ora-tde")["OptionGroupsList"][0]
    for group in (modified, described):
        flags = {o["OptionName"]: (o["Persistent"], o["Permanent"]) for o in group["Options"]}
        assert flags == {"TDE": (True, True), "STATSPACK": (False, False)}
    assert described["EngineName"] == "oracle-ee" and described["MajorEngineVersion"] == "19"

    rds.create_db_instance(
        DBInstanceIdentifier="ora1",
        DBInstanceClass="db.m5.large",
        Engine="oracle-ee",
        LicenseModel="bring-your-own-license",
        AllocatedStorage=20,
        MasterUsername="admin",
        MasterUserPassword="password123",
        OptionGroupName="ora-tde",
    )
    db = rds.describe_db_instances(DBInstanceIdentifier="ora1")["DBInstances"][0]
    assert db["Engine"] == "oracle-ee"
    assert db["OptionGroupMemberships"] == [{"OptionGroupName": "ora-tde", "Status": "in-sync"}]


@pytest.mark.parametrize("option", ["TDE", "TRANSPARENT_DATA_ENCRYPTION"])
def test_sqlserver_tde_option_is_persistent_not_permanent(emu, accounts, option):
    (account,) = accounts(1)
    rds = emu.client("rds", account)
    rds.create_option_group(OptionGroupName="ss-tde", EngineName="sqlserver-ee", MajorEngineVersion="15.00", OptionGroupDescription="TDE")
    rds.modify_option_group(OptionGroupName="ss-tde", OptionsToInclude=[{"OptionName": option}], ApplyImmediately=True)
    (opt,) = rds.describe_option_groups(OptionGroupName="ss-tde")["OptionGroupsList"][0]["Options"]
    assert (opt["OptionName"], opt["Persistent"], opt["Permanent"]) == (option, True, False)


@pytest.mark.parametrize("engine", ["postgres", "mysql"])
def test_multi_az_db_cluster(emu, accounts, engine):
    (account,) = accounts(1)
    rds = emu.client("rds", account)
    created = rds.create_db_cluster(
        DBClusterIdentifier="maz",
        Engine=engine,
        DBClusterInstanceClass="db.m6gd.large",
        AllocatedStorage=100,
        StorageType="io1",
        Iops=1000,
        MasterUsername="admin",
        MasterUserPassword="password123",
    )["DBCluster"]
    assert created["Engine"] == engine
    cluster = rds.describe_db_clusters(DBClusterIdentifier="maz")["DBClusters"][0]
    assert cluster["Engine"] == engine and cluster["DBClusterInstanceClass"] == "db.m6gd.large"
    assert cluster["MultiAZ"] is True
    assert (cluster["AllocatedStorage"], cluster["StorageType"], cluster["Iops"]) == (100, "io1", 1000)
    # An Aurora cluster has no DBClusterInstanceClass and is not a Multi-AZ DB cluster.
    aurora = rds.create_db_cluster(DBClusterIdentifier="aur", Engine="aurora-postgresql", MasterUsername="admin", MasterUserPassword="password123")["DBCluster"]
    assert "DBClusterInstanceClass" not in aurora and aurora["MultiAZ"] is False


@pytest.mark.parametrize(
    ("engine", "version", "port"),
    [("custom-oracle-ee", "19.my_cev1", 1521), ("custom-sqlserver-ee", None, 1433)],
)
def test_rds_custom_instance(emu, accounts, engine, version, port):
    (account,) = accounts(1)
    rds = emu.client("rds", account)
    key = create_key(emu, account)
    params = dict(
        DBInstanceIdentifier="custom1",
        DBInstanceClass="db.m5.large",
        Engine=engine,
        AllocatedStorage=40,
        CustomIamInstanceProfile="AWSRDSCustomInstanceProfile",
        KmsKeyId=key,
        MasterUsername="admin",
        MasterUserPassword="password123",
    )
    if version:
        params["EngineVersion"] = version
    rds.create_db_instance(**params)
    db = rds.describe_db_instances(DBInstanceIdentifier="custom1")["DBInstances"][0]
    assert db["Engine"] == engine and db["DBInstanceStatus"] == "available"
    assert db["CustomIamInstanceProfile"] == "AWSRDSCustomInstanceProfile"
    assert db["StorageEncrypted"] is True and db["KmsKeyId"] == key
    assert db["Endpoint"]["Port"] == port
    if version:
        assert db["EngineVersion"] == version
    # Engine filters see it, and ordinary engines carry no instance profile.
    create_db(emu, account, "plain")
    found = rds.describe_db_instances(Filters=[{"Name": "engine", "Values": [engine]}])["DBInstances"]
    assert [d["DBInstanceIdentifier"] for d in found] == ["custom1"]
    plain = rds.describe_db_instances(DBInstanceIdentifier="plain")["DBInstances"][0]
    assert "CustomIamInstanceProfile" not in plain
