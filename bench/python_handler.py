#!/usr/bin/env python3
"""The Python + boto3 contender of the cold-start benchmark: copy-shared-snapshot's first
step as a tool in Python would write it, run as a custom runtime (the way every existing
tool in this space is written, in Python with boto3).

It does what the Rust binary does for the benchmark's event, no more and no less:
- init: reads the step's configuration from the environment, takes the account from
  ACCOUNT_ID (STS GetCallerIdentity only when it is unset, as the Rust binary), and creates
  the boto3 clients the step uses (RDS and EC2 for the snapshots, SQS for re-checks,
  EventBridge for its events), as module-level clients, the usual pattern;
- the event: an SQS batch of "Snapshot Shared" pipeline events; for each, it checks the
  target account and the sender against SOURCE_ACCOUNTS, describes the shared snapshot
  (DescribeDBSnapshots with the ARN and IncludeShared, the Rust store's one call), checks
  its owner and status, and applies IDENTIFIER_REGEX. Anything the benchmark does not
  exercise (copying) is reported as a failed record rather than faked.

Python 3 standard library (urllib) for the Runtime API, boto3 for AWS.
"""

import json
import os
import re
import sys
import traceback
import urllib.request

import boto3
from botocore.exceptions import ClientError

API = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2018-06-01/runtime"


def init() -> None:
    """The function's init: configuration and clients, once per process."""
    global SOURCE_ACCOUNTS, TARGET_KMS_KEY_ARN, IDENTIFIER_REGEX, QUEUE_URL, rds, ec2, sqs, events, ACCOUNT
    SOURCE_ACCOUNTS = [a.strip() for a in os.environ["SOURCE_ACCOUNTS"].split(",") if a.strip()]
    TARGET_KMS_KEY_ARN = os.environ["TARGET_KMS_KEY_ARN"]
    IDENTIFIER_REGEX = re.compile(os.environ["IDENTIFIER_REGEX"]) if os.environ.get("IDENTIFIER_REGEX") else None
    QUEUE_URL = os.environ["QUEUE_URL"]
    rds = boto3.client("rds")
    ec2 = boto3.client("ec2")
    sqs = boto3.client("sqs")
    events = boto3.client("events")
    ACCOUNT = os.environ.get("ACCOUNT_ID") or boto3.client("sts").get_caller_identity()["Account"]


class Retry(Exception):
    """The record is retried (SQS redelivers it)."""


def on_shared(envelope: dict) -> None:
    detail = envelope["detail"]
    if detail.get("target_account") != ACCOUNT:
        return
    sender = envelope.get("account")
    if sender not in SOURCE_ACCOUNTS:
        raise NotImplementedError(f"sender {sender} is not allowlisted: rejecting is not part of the benchmark")
    snapshot = detail["snapshot"]
    if snapshot["kind"] != "db-instance":
        raise NotImplementedError(f"{snapshot['kind']} is not part of the benchmark")
    try:
        found = rds.describe_db_snapshots(DBSnapshotIdentifier=snapshot["arn"], IncludeShared=True)["DBSnapshots"]
    except ClientError as e:
        if e.response["Error"]["Code"] == "DBSnapshotNotFound":
            found = []
        else:
            raise
    if not found:
        raise Retry(f"{snapshot['arn']} is not visible to this account yet")
    shared = found[0]
    owner = shared["DBSnapshotArn"].split(":")[4]
    if owner != sender or snapshot["account"] != owner or detail["origin"]["account"] != sender:
        raise NotImplementedError("an owner refusal is not part of the benchmark")
    if shared["Status"] == "failed":
        raise NotImplementedError("a failed snapshot is not part of the benchmark")
    if IDENTIFIER_REGEX is not None and not IDENTIFIER_REGEX.search(shared["DBSnapshotIdentifier"]):
        print(json.dumps({"message": "filtered out; not copied", "snapshot_arn": shared["DBSnapshotArn"]}), flush=True)
        return
    raise NotImplementedError("copying is not part of the benchmark")


def handle(event: dict) -> dict:
    failures = []
    for record in event.get("Records", []):
        try:
            envelope = json.loads(record["body"])
            if envelope.get("source") == "snapferry" and envelope.get("detail-type") == "Snapshot Shared":
                on_shared(envelope)
        except Exception:  # noqa: BLE001 - one bad record never fails its batch
            traceback.print_exc()
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def post(path: str, body: dict, headers: dict | None = None) -> None:
    req = urllib.request.Request(f"{API}{path}", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    urllib.request.urlopen(req).read()


def main() -> None:
    while True:
        with urllib.request.urlopen(f"{API}/invocation/next") as r:
            request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
            event = json.loads(r.read())
        try:
            result = handle(event)
        except Exception as e:  # noqa: BLE001 - reported to Lambda as the invocation's error
            post(f"/invocation/{request_id}/error", {"errorMessage": str(e), "errorType": type(e).__name__},
                 {"Lambda-Runtime-Function-Error-Type": "Unhandled"})
            continue
        post(f"/invocation/{request_id}/response", result)


if __name__ == "__main__":
    try:
        init()
    except Exception as e:  # noqa: BLE001 - reported as Lambda's runtimes report an init failure
        post("/init/error", {"errorMessage": str(e), "errorType": type(e).__name__},
             {"Lambda-Runtime-Function-Error-Type": "Runtime.Unknown"})
        raise
    main()
