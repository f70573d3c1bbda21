"""One emulator process per pytest session; helpers to talk to it.

Each test makes its own random 12-digit account ids, so tests are isolated
without resetting the emulator between them.  Tests that change global
configuration (delay, quotas) restore it with the ``config`` fixture.
"""

from __future__ import annotations

import json
import os
import random
import signal
import ssl
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import boto3
import pytest
import requests
from botocore.config import Config

EMULATOR_DIR = Path(__file__).resolve().parents[1]
TEST_DELAY = 0.4
REGION = "us-east-1"
OTHER_REGION = "eu-west-1"


class Emulator:
    def __init__(self, url: str, proc: subprocess.Popen[str]) -> None:
        self.url = url
        self.proc = proc
        self._sessions: dict[str, dict[str, str]] = {}

    # control API
    def control(self, method: str, path: str, body: Any = None, expect: int | None = 200) -> Any:
        resp = requests.request(method, f"{self.url}/_snapferry{path}", json=body, timeout=10)
        if expect is not None:
            assert resp.status_code == expect, resp.text
        return resp.json()

    def requests_for(self, account: str) -> list[dict[str, Any]]:
        return [r for r in self.control("GET", "/requests")["requests"] if r.get("account") == account]

    def events_for(self, account: str) -> list[dict[str, Any]]:
        return [e for e in self.control("GET", "/events") if e["account"] == account]

    # AWS clients, authenticated as the account through STS AssumeRole (as the Rust SDK does)
    def client(self, service: str, account: str, region: str = REGION) -> Any:
        if account not in self._sessions:
            sts = boto3.client(
                "sts",
                endpoint_url=self.url,
                region_name=REGION,
                aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
                aws_secret_access_key="secret",
            )
            creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/snapferry-test", RoleSessionName="snapferry-test")["Credentials"]
            self._sessions[account] = {
                "aws_access_key_id": creds["AccessKeyId"],
                "aws_secret_access_key": creds["SecretAccessKey"],
                "aws_session_token": creds["SessionToken"],
            }
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=region,
            config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
            **self._sessions[account],
        )


def _start() -> tuple[str, subprocess.Popen[str]]:
    env = dict(os.environ, PYTHONPATH=str(EMULATOR_DIR))
    env.pop("MOTO_ACCOUNT_ID", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "snapferry_emulator", "--port", "0", "--delay", str(TEST_DELAY), "--parent-pid", str(os.getpid())],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.startswith("AWS_ENDPOINT_URL=http://127.0.0.1:"), line
    return line.split("=", 1)[1], proc


@pytest.fixture(scope="session")
def emu() -> Any:
    url, proc = _start()
    emulator = Emulator(url, proc)
    yield emulator
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def config(emu: Emulator) -> Any:
    """Change emulator config for one test; restored afterwards."""
    before = emu.control("GET", "/config")

    def update(**changes: Any) -> dict[str, Any]:
        return emu.control("POST", "/config", changes)

    yield update
    emu.control("POST", "/config", before)


def new_account() -> str:
    return str(random.randint(100000000000, 999999999999))


@pytest.fixture
def accounts() -> Callable[[int], list[str]]:
    return lambda n=2: [new_account() for _ in range(n)]


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def error_code(excinfo: Any) -> str:
    return excinfo.value.response["Error"]["Code"]


# --------------------------------------------------------------- fixtures for resources
def make_queue_for_rule(emu: Emulator, account: str, pattern: dict[str, Any], region: str = REGION, bus: str = "default") -> Callable[[], list[dict[str, Any]]]:
    """An SQS queue fed by an EventBridge rule; returns a function draining it."""
    sqs = emu.client("sqs", account, region)
    events = emu.client("events", account, region)
    name = f"q{random.randint(0, 10**9)}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=f"r{name}", EventPattern=json.dumps(pattern), EventBusName=bus)
    events.put_targets(Rule=f"r{name}", EventBusName=bus, Targets=[{"Id": "1", "Arn": arn}])
    received: list[dict[str, Any]] = []

    def drain() -> list[dict[str, Any]]:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        for msg in msgs:
            received.append(json.loads(msg["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
        return received

    return drain


def create_key(emu: Emulator, account: str, region: str = REGION) -> str:
    return emu.client("kms", account, region).create_key(Description="cmk")["KeyMetadata"]["Arn"]


def create_db(emu: Emulator, account: str, ident: str = "db1", region: str = REGION, **kwargs: Any) -> dict[str, Any]:
    rds = emu.client("rds", account, region)
    params = dict(
        DBInstanceIdentifier=ident,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        EngineVersion="16.3",
        AllocatedStorage=20,
        MasterUsername="admin",
        MasterUserPassword="password123",
    )
    params.update(kwargs)
    return rds.create_db_instance(**params)["DBInstance"]


def create_cluster(emu: Emulator, account: str, ident: str = "c1", region: str = REGION, **kwargs: Any) -> dict[str, Any]:
    rds = emu.client("rds", account, region)
    params = dict(
        DBClusterIdentifier=ident,
        Engine="aurora-postgresql",
        EngineVersion="16.4",
        MasterUsername="admin",
        MasterUserPassword="password123",
    )
    params.update(kwargs)
    cluster = rds.create_db_cluster(**params)["DBCluster"]
    wait_for(
        lambda: rds.describe_db_clusters(DBClusterIdentifier=ident)["DBClusters"][0]["Status"] == "available",
        what=f"cluster {ident} available",
    )
    return cluster


def wait_db_snapshot(emu: Emulator, account: str, ident: str, status: str = "available", region: str = REGION) -> dict[str, Any]:
    rds = emu.client("rds", account, region)

    def check() -> Any:
        snap = rds.describe_db_snapshots(DBSnapshotIdentifier=ident)["DBSnapshots"][0]
        return snap if snap["Status"] == status else None

    return wait_for(check, what=f"snapshot {ident} {status}")


def wait_cluster_snapshot(emu: Emulator, account: str, ident: str, status: str = "available", region: str = REGION) -> dict[str, Any]:
    rds = emu.client("rds", account, region)

    def check() -> Any:
        snap = rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=ident)["DBClusterSnapshots"][0]
        return snap if snap["Status"] == status else None

    return wait_for(check, what=f"cluster snapshot {ident} {status}")


def db_snapshot(emu: Emulator, account: str, db: str = "db1", snap: str = "s1", region: str = REGION, wait: bool = True, **db_kwargs: Any) -> dict[str, Any]:
    create_db(emu, account, db, region, **db_kwargs)
    emu.client("rds", account, region).create_db_snapshot(DBInstanceIdentifier=db, DBSnapshotIdentifier=snap)
    return wait_db_snapshot(emu, account, snap, region=region) if wait else {}


def cluster_snapshot(emu: Emulator, account: str, cluster: str = "c1", snap: str = "cs1", region: str = REGION, **kwargs: Any) -> dict[str, Any]:
    create_cluster(emu, account, cluster, region, **kwargs)
    emu.client("rds", account, region).create_db_cluster_snapshot(DBClusterIdentifier=cluster, DBClusterSnapshotIdentifier=snap)
    return wait_cluster_snapshot(emu, account, snap, region=region)


def ebs_snapshot(emu: Emulator, account: str, region: str = REGION, wait: bool = True, **volume_kwargs: Any) -> dict[str, Any]:
    ec2 = emu.client("ec2", account, region)
    vol = ec2.create_volume(Size=8, AvailabilityZone=f"{region}a", **volume_kwargs)
    snap = ec2.create_snapshot(VolumeId=vol["VolumeId"])
    if not wait:
        return snap

    def check() -> Any:
        s = ec2.describe_snapshots(SnapshotIds=[snap["SnapshotId"]])["Snapshots"][0]
        return s if s["State"] == "completed" else None

    return wait_for(check, what="ebs snapshot completed")


# ------------------------------------------------- data behind RDS resources
# (test_pgdata.py and test_mydata.py: PostgreSQL and MariaDB behind RDS resources)
def instance(emu: Any, account: str, ident: str, region: str = REGION) -> dict[str, Any]:
    return emu.client("rds", account, region).describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]


def wait_available(emu: Any, account: str, ident: str, region: str = REGION) -> dict[str, Any]:
    return wait_for(lambda: (lambda d: d if d["DBInstanceStatus"] == "available" else None)(instance(emu, account, ident, region)), what=f"{ident} available")


def wait_cluster_available(emu: Any, account: str, ident: str, region: str = REGION) -> dict[str, Any]:
    rds = emu.client("rds", account, region)
    return wait_for(lambda: (lambda c: c if c["Status"] == "available" else None)(rds.describe_db_clusters(DBClusterIdentifier=ident)["DBClusters"][0]), what=f"{ident} available")


def snapshot(emu: Any, account: str, db: str, snap: str, region: str = REGION) -> dict[str, Any]:
    emu.client("rds", account, region).create_db_snapshot(DBInstanceIdentifier=db, DBSnapshotIdentifier=snap)
    return wait_db_snapshot(emu, account, snap, region=region)


def restore(emu: Any, account: str, snap: str, ident: str, region: str = REGION) -> dict[str, Any]:
    emu.client("rds", account, region).restore_db_instance_from_db_snapshot(DBSnapshotIdentifier=snap, DBInstanceIdentifier=ident)
    return wait_available(emu, account, ident, region)["Endpoint"]


def rds_ca(emu: Any) -> str:
    resp = requests.get(f"{emu.url}/_snapferry/rds-ca", timeout=10)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/x-pem-file"
    return resp.text


def trusting_emulator_ca(emu: Any) -> ssl.SSLContext:
    """verify-full with the emulator's CA only (as the restore step with its CA bundle)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=rds_ca(emu))
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    return context


# ------------------------------------------------------- private emulators
def child_pids(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def private_rds(url: str) -> Any:
    return boto3.client("rds", endpoint_url=url, region_name=REGION, aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="x")


@contextmanager
def private_emulator() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """An emulator of the test's own (its URL and process), stopped at the end if still running."""
    url, proc = _start()
    try:
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def stop_leaving_no_server(proc: subprocess.Popen[str], how: str, server_pid: int, data_dir: Path, start_server: Callable[[str], Any]) -> None:
    """Stop a private emulator (``how``: terminate or kill) and check that no
    database server outlives it: after terminate its data dir is gone; after
    SIGKILL the next emulator that starts a server (``start_server(url)``)
    removes the dead one's data dir."""
    if how == "terminate":
        proc.terminate()
        assert proc.wait(timeout=20) == 0
        assert not data_dir.exists()
    else:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    wait_for(lambda: not process_alive(server_pid), timeout=15, what=f"server {server_pid} gone")
    if how == "kill":
        with private_emulator() as (url, _):
            start_server(url)
            assert not data_dir.exists()
