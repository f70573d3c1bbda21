"""IAM actions enforced for sessions of roles that exist in the emulator's IAM."""

from __future__ import annotations

import json
import random
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from conftest import REGION, create_db, create_key, error_code

TRUST = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
)


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(*actions: str, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": list(actions), "Resource": "*", **extra}


def deny(*actions: str, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": list(actions), "Resource": "*", **extra}


def make_role(emu: Any, account: str, *statements: dict[str, Any]) -> str:
    """A role in the account's IAM with one inline policy; returns its name."""
    name = f"snapferry-step-{random.randint(0, 10**9)}"
    iam = emu.client("iam", account)
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST)
    iam.put_role_policy(RoleName=name, PolicyName="step", PolicyDocument=policy(*statements))
    return name


def as_role(emu: Any, account: str, role: str, service: str, region: str = REGION) -> Any:
    """A client signed with a fresh AssumeRole session of the role (session name 'step')."""
    sts = boto3.client("sts", endpoint_url=emu.url, region_name=REGION, aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="secret")
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/{role}", RoleSessionName="step")["Credentials"]
    return boto3.client(
        service,
        endpoint_url=emu.url,
        region_name=region,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def refused(excinfo: Any) -> tuple[str, int, str]:
    err = excinfo.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Message"]


def test_allowed_action_works_other_is_refused(emu, accounts):
    (acct,) = accounts(1)
    create_db(emu, acct)
    role = make_role(emu, acct, allow("rds:DescribeDBSnapshots"))
    rds = as_role(emu, acct, role, "rds")
    assert rds.describe_db_snapshots()["DBSnapshots"] == []
    with pytest.raises(ClientError) as exc:
        rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="s1")
    code, status, message = refused(exc)
    assert (code, status) == ("AccessDenied", 403)
    assert message == (
        f"User: arn:aws:sts::{acct}:assumed-role/{role}/step is not authorized to perform: rds:CreateDBSnapshot "
        "because no identity-based policy allows the rds:CreateDBSnapshot action"
    )
    assert emu.client("rds", acct).describe_db_snapshots()["DBSnapshots"] == []  # nothing was created
    log = [(r["operation"], r["status"], r["error_code"], r["principal"]) for r in emu.requests_for(acct) if r["principal"] == role]
    assert log == [("DescribeDBSnapshots", 200, None, role), ("CreateDBSnapshot", 403, "AccessDenied", role)]


def test_explicit_deny_wins_and_conditional_deny_is_ignored(emu, accounts):
    (acct,) = accounts(1)
    create_db(emu, acct)
    role = make_role(
        emu,
        acct,
        allow("rds:*"),
        deny("rds:CreateDBSnapshot"),
        deny("rds:DescribeDBInstances", Condition={"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}),
    )
    rds = as_role(emu, acct, role, "rds")
    assert rds.describe_db_instances()["DBInstances"]  # the conditional Deny is not evaluated
    with pytest.raises(ClientError) as exc:
        rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="s1")
    code, status, message = refused(exc)
    assert (code, status) == ("AccessDenied", 403)
    assert message.endswith("is not authorized to perform: rds:CreateDBSnapshot with an explicit deny in an identity-based policy")


def test_not_action(emu, accounts):
    (acct,) = accounts(1)
    create_db(emu, acct)
    role = make_role(
        emu,
        acct,
        {"Effect": "Allow", "NotAction": ["rds:CreateDBSnapshot", "iam:*"], "Resource": "*"},
        {"Effect": "Deny", "NotAction": "rds:*", "Resource": "*"},
    )
    rds = as_role(emu, acct, role, "rds")
    assert rds.describe_db_instances()["DBInstances"]
    with pytest.raises(ClientError) as exc:
        rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="s1")
    assert "because no identity-based policy allows" in refused(exc)[2]
    with pytest.raises(ClientError) as exc:
        as_role(emu, acct, role, "kms").list_keys()  # allowed by the first statement, denied by the second
    assert refused(exc)[:2] == ("AccessDeniedException", 400) and "explicit deny" in refused(exc)[2]


def test_wildcards_are_case_insensitive(emu, accounts):
    (acct,) = accounts(1)
    create_db(emu, acct)
    key = create_key(emu, acct)
    role = make_role(emu, acct, allow("rds:describe*", "KMS:Describe?ey"))
    rds = as_role(emu, acct, role, "rds")
    assert rds.describe_db_instances()["DBInstances"] and rds.describe_db_snapshots()["DBSnapshots"] == []
    assert as_role(emu, acct, role, "kms").describe_key(KeyId=key)["KeyMetadata"]["Arn"] == key
    with pytest.raises(ClientError) as exc:
        rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="s1")
    assert error_code(exc) == "AccessDenied"


def test_allow_with_condition_counts(emu, accounts):
    (acct,) = accounts(1)
    create_db(emu, acct)
    role = make_role(emu, acct, allow("rds:CreateDBSnapshot", Condition={"StringEquals": {"aws:RequestTag/snapferry:managed": "true"}}))
    # No tags: AWS would refuse; the emulator leaves conditions to the CDK tests' policy simulator.
    snap = as_role(emu, acct, role, "rds").create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="s1")["DBSnapshot"]
    assert snap["Status"] == "creating"


def test_policy_changes_apply_to_the_next_call(emu, accounts):
    (acct,) = accounts(1)
    role = make_role(emu, acct, allow("rds:DescribeDBSnapshots", "rds:DescribeDBInstances"))
    rds = as_role(emu, acct, role, "rds")
    rds.describe_db_snapshots()
    iam = emu.client("iam", acct)
    iam.put_role_policy(RoleName=role, PolicyName="step", PolicyDocument=policy(allow("rds:DescribeDBInstances")))
    with pytest.raises(ClientError) as exc:
        rds.describe_db_snapshots()  # same session, very next call
    assert "rds:DescribeDBSnapshots" in refused(exc)[2]
    rds.describe_db_instances()
    # Attached managed policies count too, and detaching one takes effect at once.
    arn = iam.create_policy(PolicyName=f"p{random.randint(0, 10**9)}", PolicyDocument=policy(allow("rds:DescribeDBSnapshots")))["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=role, PolicyArn=arn)
    rds.describe_db_snapshots()
    iam.detach_role_policy(RoleName=role, PolicyArn=arn)
    iam.delete_role_policy(RoleName=role, PolicyName="step")
    with pytest.raises(ClientError):
        rds.describe_db_instances()


def test_roles_not_in_iam_and_user_keys_are_unrestricted(emu, accounts):
    (acct,) = accounts(1)
    create_db(emu, acct)
    emu.client("rds", acct).create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="s1")  # snapferry-test
    as_role(emu, acct, "snapferry-operator", "rds").create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="s2")
    iam = emu.client("iam", acct)
    iam.create_user(UserName="u")
    key = iam.create_access_key(UserName="u")["AccessKey"]
    user_rds = boto3.client("rds", endpoint_url=emu.url, region_name=REGION, aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    user_rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="s3")
    principals = [(r["operation"], r["principal"]) for r in emu.requests_for(acct) if r["operation"] == "CreateDBSnapshot"]
    assert principals == [("CreateDBSnapshot", "snapferry-test"), ("CreateDBSnapshot", "snapferry-operator"), ("CreateDBSnapshot", None)]
    assert all(r["error_code"] is None for r in emu.requests_for(acct))


def test_ec2_unauthorized_operation(emu, accounts):
    (acct,) = accounts(1)
    role = make_role(emu, acct, allow("ec2:DescribeVolumes"))
    ec2 = as_role(emu, acct, role, "ec2")
    assert ec2.describe_volumes()["Volumes"] == []
    with pytest.raises(ClientError) as exc:
        ec2.create_volume(Size=8, AvailabilityZone=f"{REGION}a")
    code, status, message = refused(exc)
    assert (code, status) == ("UnauthorizedOperation", 403)
    assert message.startswith("You are not authorized to perform this operation. User: ") and "ec2:CreateVolume" in message


def test_kms_sqs_events_sts_iam_codes(emu, accounts):
    (acct,) = accounts(1)
    key = create_key(emu, acct)
    url = emu.client("sqs", acct).create_queue(QueueName="q")["QueueUrl"]
    role = make_role(emu, acct, allow("kms:DescribeKey", "sqs:SendMessage", "sqs:ReceiveMessage"))
    kms, sqs = as_role(emu, acct, role, "kms"), as_role(emu, acct, role, "sqs")
    kms.describe_key(KeyId=key)
    with pytest.raises(ClientError) as exc:
        kms.disable_key(KeyId=key)
    assert refused(exc)[:2] == ("AccessDeniedException", 400)

    sqs.send_message(QueueUrl=url, MessageBody="a")
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "1", "MessageBody": "b"}])  # authorized as sqs:SendMessage
    assert sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)["Messages"]
    with pytest.raises(ClientError) as exc:
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": "1", "ReceiptHandle": "x"}])
    assert refused(exc)[:2] == ("AccessDenied", 403) and "sqs:DeleteMessage " in refused(exc)[2]
    # ReceiveMessage (served outside the moto lock) is checked too.
    emu.client("iam", acct).put_role_policy(RoleName=role, PolicyName="step", PolicyDocument=policy(allow("kms:DescribeKey", "sqs:SendMessage")))
    with pytest.raises(ClientError) as exc:
        sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
    assert refused(exc)[:2] == ("AccessDenied", 403)

    with pytest.raises(ClientError) as exc:
        as_role(emu, acct, role, "events").put_events(Entries=[{"Source": "snapferry", "DetailType": "t", "Detail": "{}"}])
    assert refused(exc)[:2] == ("AccessDeniedException", 400)

    sts = as_role(emu, acct, role, "sts")
    assert sts.get_caller_identity()["Arn"] == f"arn:aws:sts::{acct}:assumed-role/{role}/step"  # needs no permission
    with pytest.raises(ClientError) as exc:
        sts.assume_role(RoleArn=f"arn:aws:iam::{acct}:role/other", RoleSessionName="xx")
    assert refused(exc)[:2] == ("AccessDenied", 403)
    with pytest.raises(ClientError) as exc:
        as_role(emu, acct, role, "iam").list_roles()
    assert refused(exc)[:2] == ("AccessDenied", 403)
    codes = {r["operation"]: r["error_code"] for r in emu.requests_for(acct) if r["principal"] == role}
    assert codes == {
        "DescribeKey": None,
        "DisableKey": "AccessDeniedException",
        "SendMessage": None,
        "SendMessageBatch": None,
        "ReceiveMessage": "AccessDenied",  # the last ReceiveMessage
        "DeleteMessageBatch": "AccessDenied",
        "PutEvents": "AccessDeniedException",
        "GetCallerIdentity": None,
        "AssumeRole": "AccessDenied",
        "ListRoles": "AccessDenied",
    }


def test_refused_call_consumes_no_fault(emu, accounts):
    (acct,) = accounts(1)
    role = make_role(emu, acct, allow("rds:DescribeDBInstances"))
    rds = as_role(emu, acct, role, "rds")
    emu.control("POST", "/faults", {"operation": "DescribeDBSnapshots", "account": acct, "error_code": "Throttling"})
    with pytest.raises(ClientError) as exc:
        rds.describe_db_snapshots()
    assert error_code(exc) == "AccessDenied"
    with pytest.raises(ClientError) as exc:
        emu.client("rds", acct).describe_db_snapshots()
    assert error_code(exc) == "Throttling"
