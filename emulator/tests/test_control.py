"""Behaviours 6 and 7: fault injection, request log, reset, control API hygiene."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests
from botocore.exceptions import ClientError
from conftest import EMULATOR_DIR, TEST_DELAY, create_db, error_code


def test_health_and_config(emu, config):
    assert emu.control("GET", "/health") == {"ok": True}
    cfg = emu.control("GET", "/config")
    assert cfg["delay_seconds"] == TEST_DELAY
    assert cfg["quotas"] == {
        "rds_instance_copies": 20,
        "rds_cluster_copies": 5,
        "ebs_copies": 20,
        "manual_db_snapshots": 100,
        "manual_cluster_snapshots": 100,
    }
    updated = config(delay_seconds=1.5, quotas={"ebs_copies": 3})
    assert updated["delay_seconds"] == 1.5 and updated["quotas"]["ebs_copies"] == 3
    assert updated["quotas"]["rds_cluster_copies"] == 5


@pytest.mark.parametrize(
    "body",
    [
        {"delay_seconds": -1},
        {"delay_seconds": "x"},
        {"quotas": {"nope": 1}},
        {"quotas": {"ebs_copies": -2}},
        {"bogus": 1},
    ],
)
def test_bad_config_is_400(emu, body):
    assert "error" in emu.control("POST", "/config", body, expect=400)


def test_malformed_control_requests_are_400(emu):
    r = requests.post(f"{emu.url}/_snapferry/faults", data=b"{not json", timeout=5)
    assert r.status_code == 400 and "error" in r.json()
    assert "error" in emu.control("POST", "/faults", {"operation": "X"}, expect=400)
    assert "error" in emu.control("POST", "/faults", {"operation": "X", "error_code": "Y", "count": 0}, expect=400)
    assert "error" in emu.control("POST", "/faults", ["list"], expect=400)
    assert "error" in emu.control("POST", "/drop-events", {}, expect=400)
    assert "error" in emu.control("POST", "/fail-completions", {"kind": "tape"}, expect=400)
    assert "error" in emu.control("GET", "/requests?since=abc", expect=400)
    assert "error" in emu.control("GET", "/nope", expect=404)
    assert emu.control("GET", "/health") == {"ok": True}


def test_fault_rds_query_shape(emu, accounts):
    acct, other = accounts(2)
    create_db(emu, acct)
    fid = emu.control("POST", "/faults", {"operation": "DescribeDBInstances", "account": acct, "count": 2, "error_code": "Throttling", "message": "Rate exceeded"})["id"]
    assert [f["id"] for f in emu.control("GET", "/faults")] == [fid]
    rds = emu.client("rds", acct)
    emu.client("rds", other).describe_db_instances()  # other accounts unaffected
    for _ in range(2):
        with pytest.raises(ClientError) as exc:
            rds.describe_db_instances()
        err = exc.value.response["Error"]
        assert err["Code"] == "Throttling" and err["Message"] == "Rate exceeded" and err["Type"] == "Sender"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    rds.describe_db_instances()  # consumed
    assert emu.control("GET", "/faults") == []


def test_fault_server_error_500(emu, accounts):
    (acct,) = accounts(1)
    emu.control("POST", "/faults", {"operation": "CopyDBSnapshot", "account": acct, "error_code": "InternalFailure", "status": 500})
    with pytest.raises(ClientError) as exc:
        emu.client("rds", acct).copy_db_snapshot(SourceDBSnapshotIdentifier="a", TargetDBSnapshotIdentifier="b")
    assert error_code(exc) == "InternalFailure"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert exc.value.response["Error"]["Type"] == "Receiver"


def test_fault_ec2_shape(emu, accounts):
    (acct,) = accounts(1)
    emu.control("POST", "/faults", {"operation": "DescribeSnapshots", "account": acct, "error_code": "RequestLimitExceeded", "message": "slow down"})
    with pytest.raises(ClientError) as exc:
        emu.client("ec2", acct).describe_snapshots(OwnerIds=["self"])
    assert error_code(exc) == "RequestLimitExceeded"
    assert exc.value.response["Error"]["Message"] == "slow down"


def test_fault_json_shapes(emu, accounts):
    (acct,) = accounts(1)
    for op, code in (("DescribeKey", "KMSInternalException"), ("PutEvents", "ThrottlingException"), ("SendMessage", "RequestThrottled")):
        emu.control("POST", "/faults", {"operation": op, "account": acct, "error_code": code})
    with pytest.raises(ClientError) as exc:
        emu.client("kms", acct).describe_key(KeyId="alias/aws/rds")
    assert error_code(exc) == "KMSInternalException"
    with pytest.raises(ClientError) as exc:
        emu.client("events", acct).put_events(Entries=[{"Source": "x", "DetailType": "y", "Detail": "{}"}])
    assert error_code(exc) == "ThrottlingException"
    with pytest.raises(ClientError) as exc:
        emu.client("sqs", acct).send_message(QueueUrl="http://x/1/q", MessageBody="m")
    assert error_code(exc) == "RequestThrottled"


def test_fault_until_cleared(emu, accounts):
    (acct,) = accounts(1)
    emu.control("POST", "/faults", {"operation": "DescribeDBSnapshots", "account": acct, "error_code": "Throttling", "count": None})
    rds = emu.client("rds", acct)
    for _ in range(3):
        with pytest.raises(ClientError):
            rds.describe_db_snapshots()
    emu.control("DELETE", "/faults")
    rds.describe_db_snapshots()


def test_request_log(emu, accounts):
    (acct,) = accounts(1)
    rds = emu.client("rds", acct)  # assume-role happens here, logged under the caller's account
    start = emu.control("GET", "/requests")["requests"]
    since = start[-1]["seq"] if start else 0
    rds.describe_db_instances()
    with pytest.raises(ClientError):
        rds.describe_db_snapshots(DBSnapshotIdentifier="missing")
    emu.client("kms", acct).list_keys()
    emu.control("GET", "/health")  # control calls are not logged
    logged = [r for r in emu.control("GET", f"/requests?since={since}")["requests"] if r["account"] == acct]
    assert [(r["service"], r["operation"], r["status"], r["error_code"]) for r in logged] == [
        ("rds", "DescribeDBInstances", 200, None),
        ("rds", "DescribeDBSnapshots", 404, "DBSnapshotNotFound"),
        ("kms", "ListKeys", 200, None),
    ]
    assert all(r["region"] == "us-east-1" for r in logged)
    seqs = [r["seq"] for r in logged]
    assert seqs == sorted(seqs) and all(s > since for s in seqs)


def test_header_account_is_recognised(emu, accounts):
    (acct,) = accounts(1)
    r = requests.post(
        emu.url,
        data={"Action": "DescribeDBInstances", "Version": "2014-10-31"},
        headers={
            "x-moto-account-id": acct,
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20250101/eu-west-1/rds/aws4_request, SignedHeaders=host, Signature=x",
        },
        timeout=5,
    )
    assert r.status_code == 200
    logged = emu.requests_for(acct)
    assert logged[-1]["operation"] == "DescribeDBInstances" and logged[-1]["region"] == "eu-west-1"


def test_reset_clears_everything():
    """Reset in a private emulator so the shared one keeps its state."""
    import json
    import os

    env = dict(os.environ, PYTHONPATH=str(EMULATOR_DIR))
    proc = subprocess.Popen(
        [sys.executable, "-m", "snapferry_emulator", "--port", "0", "--delay", "0.1", "--parent-pid", str(os.getpid())],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        url = proc.stdout.readline().strip().split("=", 1)[1]

        def ctl(method, path, body=None):
            return requests.request(method, f"{url}/_snapferry{path}", data=json.dumps(body) if body is not None else None, timeout=5).json()

        import boto3

        rds = boto3.client("rds", endpoint_url=url, region_name="us-east-1", aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="x")
        create = dict(DBInstanceIdentifier="db1", DBInstanceClass="db.t3.micro", Engine="postgres", AllocatedStorage=20, MasterUsername="a", MasterUserPassword="password123")
        rds.create_db_instance(**create)
        ctl("POST", "/config", {"delay_seconds": 9, "quotas": {"ebs_copies": 1}})
        ctl("POST", "/faults", {"operation": "X", "error_code": "Y"})
        ctl("POST", "/drop-events", {"detail_type": "T"})
        ctl("POST", "/fail-completions", {"kind": "ebs"})
        assert ctl("POST", "/reset") == {"ok": True}
        assert rds.describe_db_instances()["DBInstances"] == []
        assert ctl("GET", "/config")["delay_seconds"] == 0.1
        assert ctl("GET", "/config")["quotas"]["ebs_copies"] == 20
        assert ctl("GET", "/faults") == []
        assert ctl("GET", "/drop-events") == []
        assert ctl("GET", "/fail-completions") == []
        assert [r["operation"] for r in ctl("GET", "/requests")["requests"]] == ["DescribeDBInstances"]
        assert ctl("GET", "/events") == []
        # moto's own reset endpoint works too and also clears the layer's runtime state.
        rds.create_db_instance(**create)
        assert requests.post(f"{url}/moto-api/reset", timeout=5).status_code == 200
        assert rds.describe_db_instances()["DBInstances"] == []
        assert ctl("DELETE", "/requests") == {"ok": True}
        assert ctl("GET", "/requests")["requests"] == []
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_concurrent_calls_do_not_break_the_server(emu, accounts):
    from concurrent.futures import ThreadPoolExecutor

    accts = accounts(4)
    for a in accts:
        create_db(emu, a)
    # boto3 client creation is not thread-safe: make them up front (clients are).
    clients = [(emu.client("rds", a), emu.client("sqs", a)) for a in accts]

    def work(i):
        rds, sqs = clients[i % len(clients)]
        rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier=f"s{i}")
        rds.describe_db_snapshots()
        sqs.list_queues()
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(work, range(24)))
    assert emu.control("GET", "/health") == {"ok": True}
