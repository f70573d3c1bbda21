#!/usr/bin/env python3
"""snapferry's copy-slot utilization under a backlog, on the local host (issue 12, item 2).

A backup account's real throughput limit is AWS's quota of copies in progress per
destination region (20 DB instance, 5 Aurora cluster, 20 EBS snapshot copies). This
benchmark builds a backlog and measures how well the copy step keeps those slots busy:

  1. resets the emulator and sets small copy quotas (--slots-*) and a short delay (every
     snapshot, copy and restore takes --delay seconds); the manual-snapshot quotas are
     raised out of the way so only the copy quotas bind;
  2. starts `snapferry local` (the whole pipeline, copying into the backup account's home
     region and --extra-regions) and watches the pipeline buses of both accounts;
  3. creates --instances MySQL instances, --clusters Aurora MySQL clusters and --volumes
     EBS volumes in the source account 111111111111, all on the sharing CMK (shared as they
     are, so the source account makes no copies of its own);
  4. delivers --rounds hourly schedule events at once, each stamped an hour after the one
     before (so MIN_INTERVAL_MINUTES lets every round through): rounds x resources source
     snapshots, each copied into 222222222222's home region and then every extra region;
  5. waits until every backup has its outcome (Restore Verified, Restore Failed or Snapshot
     Rejected) and every copy has ended, stops the pipeline, and computes from the
     emulator's own logs (GET /_snapferry/copies, /requests, /events) and the pipeline
     events:

  utilization    per destination region and quota bucket, the share of the time work was
                 waiting during which every slot was busy. A backup waits for its copy
                 into the home region from its `Snapshot Shared` event, for its copy into
                 an extra region from its home copy's `Snapshot Copied` (when the pipeline
                 knows the home copy is there), until that copy starts. Overall: the same
                 ratio over all (region, bucket) pairs, time-weighted. Also printed: the
                 strict figure, an extra region's wait counted from the home copy's end as
                 the emulator logs it (the RDS event's or the re-check's latency included:
                 seconds here against copies of seconds, nothing against AWS's minutes)
  refusals       CopyDBSnapshot / CopyDBClusterSnapshot / CopySnapshot calls of the backup
                 account refused for quota (SnapshotQuotaExceeded / ResourceLimitExceeded)
                 per completed copy
  wall time      from the schedule events to the last copy's end, against the ideal: for
                 each (region, bucket), ceil(copies / slots) x the mean copy time; the max
  lost           source snapshots created with no outcome; duplicated: more than one copy
                 (not failed or deleted) of one source snapshot in one region

The defaults (2 rounds x 20 resources = 40 backups, 120 copies; 2 / 1 / 2 slots per region;
30 s per copy) run in about five minutes on 2 cores and keep the copy time long against the
local host's own latency (a debug build handling each message in tens of milliseconds, SQS
delays in whole seconds), as AWS's copies (minutes) are against a Lambda's: a slot that
frees is taken by a waiter that SQS brought back within the second before and that waits
out the rest in its handler, about 0.25 s after its end here (median), a share of a 10 s
copy but less of a 30 s one (and nothing of AWS's minutes); with 1 s copies and 4 / 2 / 4
slots the pipeline, not the quota, is the bottleneck and the figure says nothing about the
copy step.

Two sources (issue 25), `--flood N`: `snapferry local` copies from two allowlisted source
accounts, 111111111111 and its neighbour 444444444444, each with its own sharing key. The
neighbour gets N resources more (split across the kinds in the source's proportions, named
flood-*), fired first, one round: once all N of its snapshots are shared (a flood of old
shares in the backup account's line), the source's --rounds fire. Printed besides the
above, per source account: the copies made and its share of the slot time (per destination
region and quota bucket; overall and while both sources had work there), budget
rejections, and the honest source's delay, `Snapshot Shared` to its home copy's start
(median, p95, max), against the ideal (its copies in a line of its own with its in-flight
budget, ceil(slots / 2) slots, and the mean copy time) and, with --baseline, against the
same run with `--flood 0` (its --json). `--flood 0` is that baseline: the same two-source
pipeline, the neighbour idle. Also printed: the most copies each source had in progress at
once against its budget. The pipeline inherits SNAPFERRY_LOG: with SNAPFERRY_LOG=info its
log (local.err in the directory printed at the end) has each step's waits for a slot or a
budget, with the copy's place in the line.

Prints the RESULTS.md section as markdown (and writes it to --markdown); --json keeps the
raw intervals and samples. Exit status 1 when a backup was lost or duplicated, the run
timed out, or the pipeline failed; the goals (utilization >= 90 %, <= 0.1 refusals per copy)
are reported, not enforced.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import boto3

SOURCE = "111111111111"
NEIGHBOUR = "444444444444"  # local/src/demo.rs NEIGHBOUR_ACCOUNT: `snapferry local`'s second source
SOURCES = (SOURCE, NEIGHBOUR)
BACKUP = "222222222222"
REGION = "us-east-1"
SHARING_KEY_ALIAS = "alias/snapferry-sharing"  # services/cli/src/doctor.rs SHARING_KEY_ALIAS
CREATE_QUEUE = "snapferry-create-snapshot"  # shared/routing.json
SCHEDULE_RULE = "snapferry-create-snapshot-schedule"
PIPELINE_BUS = "snapferry"  # shared/routing.json pipeline_bus
MONITOR = "snapferry-bench-copy-slots"
BUCKETS = ("rds_instance_copies", "rds_cluster_copies", "ebs_copies")
BUCKET_NAMES = {"rds_instance_copies": "DB instance", "rds_cluster_copies": "Aurora cluster", "ebs_copies": "EBS"}
COPY_BUCKET = {"CopyDBSnapshot": "rds_instance_copies", "CopyDBClusterSnapshot": "rds_cluster_copies",
               "CopySnapshot": "ebs_copies"}
QUOTA_CODES = {"SnapshotQuotaExceeded", "ResourceLimitExceeded"}
CREATED = {"RDS-EVENT-0042": "rds_instance_copies", "RDS-EVENT-0075": "rds_cluster_copies",
           "createSnapshot": "ebs_copies"}
OUTCOMES = {"Restore Verified": "verified", "Restore Failed": "restore failed", "Snapshot Rejected": "rejected"}
ENDED_OK = {"available", "completed"}
GOAL_UTILIZATION = 0.90
GOAL_REFUSALS = 0.1


def control(endpoint: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{endpoint}/_snapferry{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


class Account:
    """boto3 clients acting as `account`, through STS AssumeRole as the CLI does."""

    def __init__(self, endpoint: str, account: str) -> None:
        sts = boto3.client("sts", endpoint_url=endpoint, region_name=REGION,
                           aws_access_key_id="local", aws_secret_access_key="local")
        creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/snapferry-operator",
                                RoleSessionName="snapferry-bench")["Credentials"]
        self.endpoint = endpoint
        self.keys = {"aws_access_key_id": creds["AccessKeyId"], "aws_secret_access_key": creds["SecretAccessKey"],
                     "aws_session_token": creds["SessionToken"]}

    def client(self, service: str, region: str = REGION) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name=region, **self.keys)


def snapshot_key(arn: str) -> str:
    """One name per snapshot whatever the ARN's form: EBS ARNs come with and without the
    account (`arn:aws:ec2::<region>:snapshot/snap-…` in EBS events), the snap- id is unique."""
    return arn.rsplit("/", 1)[-1] if ":snapshot/snap-" in arn else arn


# --------------------------------------------------------------------------- the run


class Monitor:
    """Every snapferry event on both accounts' pipeline buses, through a queue of its own
    (`snapferry local` drains its own monitor queues)."""

    def __init__(self, accounts: list[Account]) -> None:
        self.queues = []
        for acct in accounts:
            sqs, events = acct.client("sqs"), acct.client("events")
            url = sqs.create_queue(QueueName=MONITOR)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            events.put_rule(Name=MONITOR, EventBusName=PIPELINE_BUS, EventPattern=json.dumps({"source": ["snapferry"]}))
            events.put_targets(Rule=MONITOR, EventBusName=PIPELINE_BUS, Targets=[{"Id": "bench", "Arn": arn}])
            self.queues.append((sqs, url))
        self.seen: dict[str, dict] = {}

    def drain(self) -> None:
        for sqs, url in self.queues:
            while True:
                msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
                if not msgs:
                    break
                for m in msgs:
                    envelope = json.loads(m["Body"])
                    # An event forwarded to the backup account reaches both queues, same id.
                    self.seen.setdefault(envelope["id"], envelope)
                sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                                 for i, m in enumerate(msgs)])

    def events(self) -> list[dict]:
        return list(self.seen.values())


def create_resources(src: Account, instances: int, clusters: int, volumes: int, prefix: str = "slots") -> None:
    """An account's databases and volumes, all on its sharing CMK (each source account has
    its own under the same alias)."""
    key = src.client("kms").describe_key(KeyId=SHARING_KEY_ALIAS)["KeyMetadata"]["Arn"]
    rds, ec2 = src.client("rds"), src.client("ec2")
    for i in range(instances):
        rds.create_db_instance(DBInstanceIdentifier=f"{prefix}-db-{i:02d}", Engine="mysql", EngineVersion="8.0.39",
                               DBInstanceClass="db.t4g.micro", AllocatedStorage=20, MasterUsername="admin",
                               MasterUserPassword="bench-password-1", StorageEncrypted=True, KmsKeyId=key)
    for i in range(clusters):
        rds.create_db_cluster(DBClusterIdentifier=f"{prefix}-aurora-{i:02d}", Engine="aurora-mysql",
                              EngineVersion="8.0.mysql_aurora.3.05.2", MasterUsername="admin",
                              MasterUserPassword="bench-password-1", StorageEncrypted=True, KmsKeyId=key)
    for i in range(volumes):
        ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=8, VolumeType="gp3", Encrypted=True, KmsKeyId=key,
                          TagSpecifications=[{"ResourceType": "volume",
                                              "Tags": [{"Key": "Name", "Value": f"{prefix}-volume-{i:02d}"}]}])


def flood_split(n: int, args: argparse.Namespace) -> tuple[int, int, int]:
    """`n` resources split across the kinds in the source's proportions (largest remainder)."""
    weights = (args.instances, args.clusters, args.volumes)
    total = sum(weights)
    if n <= 0:
        return 0, 0, 0
    if total == 0:
        return n, 0, 0
    exact = [n * w / total for w in weights]
    parts = [math.floor(x) for x in exact]
    for i in sorted(range(3), key=lambda i: exact[i] - parts[i], reverse=True)[: n - sum(parts)]:
        parts[i] += 1
    return parts[0], parts[1], parts[2]


def fire_rounds(src: Account, rounds: int, account: str = SOURCE, tag: str = "bench-copy-slots") -> None:
    """What the hourly schedule rule delivers (local/src/host.rs Host::fire) to `account`'s
    create-snapshot queue, `rounds` times at once, stamped 3, 4, … hours after this hour:
    each round passes MIN_INTERVAL_MINUTES=60 and names its snapshots after its own slot."""
    sqs = src.client("sqs")
    url = sqs.get_queue_url(QueueName=CREATE_QUEUE)["QueueUrl"]
    base = int(time.time()) // 3600 * 3600 + 3 * 3600
    rule = f"arn:aws:events:{REGION}:{account}:rule/{SCHEDULE_RULE}"
    for i in range(rounds):
        at = base + 3600 * i
        event = {"version": "0", "id": f"{tag}-{i}", "detail-type": "Scheduled Event",
                 "source": "aws.events", "account": account, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)),
                 "region": REGION, "resources": [rule], "detail": {}}
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event))


def local_command(args: argparse.Namespace, slots: dict[str, int]) -> list[str]:
    """`snapferry local` for the run. A CLI that knows `--copy-slots` is told the lowered
    quotas (its copy step then plans with them); an older one assumes AWS's 20 / 5 / 20
    and learns from the refusals, which is what it would do on AWS with a lower quota."""
    command = [args.snapferry, "local", "--endpoint", args.endpoint, "--region", REGION,
               "--extra-regions", ",".join(args.regions)]
    helptext = subprocess.run([args.snapferry, "local", "--help"], capture_output=True, text=True).stdout
    if "--copy-slots" in helptext:
        command += ["--copy-slots", f"db-instance={slots['rds_instance_copies']},"
                    f"db-cluster={slots['rds_cluster_copies']},ebs={slots['ebs_copies']}"]
    return command


def start_pipeline(command: list[str], logdir: str) -> tuple[subprocess.Popen, str]:
    out = os.path.join(logdir, "local.out")
    with open(out, "w") as stdout, open(os.path.join(logdir, "local.err"), "w") as stderr:
        proc = subprocess.Popen(command, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"snapferry local exited ({proc.returncode}) during start-up: {tail(logdir)}")
        with open(out, encoding="utf-8", errors="replace") as f:
            if "snapferry is running locally" in f.read():
                return proc, out
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"snapferry local did not start within 120 s: {tail(logdir)}")


def stop_pipeline(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # its Ctrl-C: stops between polls
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tail(logdir: str) -> str:
    text = ""
    for name in ("local.out", "local.err"):
        path = os.path.join(logdir, name)
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                text += f"\n--- {name} ---\n" + "".join(f.readlines()[-30:])
    return text


# --------------------------------------------------------------------------- the figures


@dataclass
class Backup:
    """One source snapshot and what became of it."""

    key: str
    bucket: str
    created_at: float
    account: str = SOURCE  # the source account that took it
    shared_at: float | None = None
    copied_at: float | None = None  # the home copy's `Snapshot Copied`
    outcome: str | None = None
    reason: str | None = None
    copies: dict[str, list[dict]] = field(default_factory=dict)  # region -> copy records (every attempt)


def source_snapshots(events: list[dict]) -> dict[str, Backup]:
    """Each snapshot the source accounts' "created" events announce."""
    found: dict[str, Backup] = {}
    for e in events:
        bucket = CREATED.get(e["event_id_or_name"])
        if e["dropped"] or e["account"] not in SOURCES or bucket is None:
            continue
        if bucket == "ebs_copies" and e["event"]["detail"].get("result") != "succeeded":
            continue
        key = snapshot_key(e["event"]["resources"][0])
        found.setdefault(key, Backup(key, bucket, e["at"], e["account"]))
    return found


def attach(backups: dict[str, Backup], copies: list[dict], pipeline_events: list[dict]) -> None:
    """Each backup-account copy to the source snapshot it descends from (a copy's source is
    the shared snapshot or another copy), and the pipeline's share and outcome events."""
    by_key = {snapshot_key(c["arn"]): c for c in copies}

    def origin(key: str, hops: int = 0) -> str | None:
        if key in backups:
            return key
        parent = by_key.get(key)
        return None if parent is None or hops > 5 else origin(snapshot_key(parent["source_arn"]), hops + 1)

    for c in copies:
        if c["account"] != BACKUP:
            continue
        key = origin(snapshot_key(c["source_arn"]))
        if key is not None:
            backups[key].copies.setdefault(c["region"], []).append(c)
    for envelope in sorted(pipeline_events, key=lambda e: e["detail"]["emitted_at"]):
        detail = envelope["detail"]
        b = backups.get(snapshot_key(detail["origin"]["arn"]))
        if b is None:
            continue
        if envelope["detail-type"] == "Snapshot Shared" and b.shared_at is None:
            b.shared_at = parse_time(detail["emitted_at"])
        if (envelope["detail-type"] == "Snapshot Copied" and detail["snapshot"]["region"] == REGION
                and b.copied_at is None):
            b.copied_at = parse_time(detail["emitted_at"])
        outcome = OUTCOMES.get(envelope["detail-type"])
        if outcome is not None and b.outcome is None:
            b.outcome, b.reason = outcome, detail.get("reason")


def parse_time(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def live(c: dict) -> bool:
    return c["status"] in ENDED_OK or c["status"] == "in-progress"


def utilization(backups: dict[str, Backup], copies: list[dict], regions: list[str], slots: dict[str, int],
                end: float, strict: bool = False) -> dict[tuple[str, str], dict]:
    """For each (region, bucket): seconds with work waiting, and of those, seconds with every
    slot busy; sweeps the copies' intervals and the backups' waits in time order. A copy into
    an extra region waits from the home copy's `Snapshot Copied` (the pipeline knows the home
    copy is there); `strict`: from the home copy's end as the emulator logs it, so the time
    the pipeline takes to learn of that end (an RDS event, a re-check) counts as waiting too."""
    out = {}
    for region in regions:
        for bucket in BUCKETS:
            changes: list[tuple[float, int, int]] = []  # (time, d_in_progress, d_waiting)
            for c in copies:
                if c["account"] == BACKUP and c["region"] == region and c["bucket"] == bucket:
                    changes += [(c["started_at"], 1, 0), (c["ended_at"] or end, -1, 0)]
            for b in backups.values():
                if b.bucket != bucket:
                    continue
                if region == REGION:
                    ready = b.shared_at
                else:
                    ready = home_copy_end(b) if strict else (b.copied_at or home_copy_end(b))
                if ready is None:
                    continue
                started = [c["started_at"] for c in b.copies.get(region, [])]
                until = max(ready, min(started)) if started else end
                changes += [(ready, 0, 1), (until, 0, -1)]
            changes.sort()
            waiting_s = busy_s = 0.0
            running = waiting = 0
            last = changes[0][0] if changes else end
            for at, d_run, d_wait in changes:
                span = max(0.0, at - last)
                if waiting > 0:
                    waiting_s += span
                    if running >= slots[bucket]:
                        busy_s += span
                running, waiting, last = running + d_run, waiting + d_wait, at
            done = [c for c in copies if c["account"] == BACKUP and c["region"] == region and c["bucket"] == bucket
                    and c["status"] in ENDED_OK]
            out[(region, bucket)] = {"waiting_s": waiting_s, "busy_while_waiting_s": busy_s, "completed": len(done),
                                     "copy_s": statistics.mean(c["ended_at"] - c["started_at"] for c in done) if done else 0.0}
    return out


def home_copy_end(b: Backup) -> float | None:
    ended = [c["ended_at"] for c in b.copies.get(REGION, []) if c["status"] in ENDED_OK]
    return min(ended) if ended else None


def figures(backups: dict[str, Backup], copies: list[dict], requests: list[dict], regions: list[str],
            slots: dict[str, int], fired_at: float, end: float) -> dict:
    util = utilization(backups, copies, regions, slots, end)
    refused = [r for r in requests if r["account"] == BACKUP and r["operation"] in COPY_BUCKET
               and r["error_code"] in QUOTA_CODES]
    calls = [r for r in requests if r["account"] == BACKUP and r["operation"] in COPY_BUCKET]
    completed = sum(u["completed"] for u in util.values())
    # Whole rounds of copies: with n copies and s slots, ceil(n / s) copy times at best.
    ideal = {k: math.ceil(u["completed"] / slots[k[1]]) * u["copy_s"] for k, u in util.items() if u["completed"]}
    mine = [c for c in copies if c["account"] == BACKUP]
    last_end = max((c["ended_at"] or end for c in mine), default=end)
    lost = sorted(b.key for b in backups.values() if b.outcome is None)
    duplicated = sorted(f"{b.key} in {region}" for b in backups.values() for region, cs in b.copies.items()
                        if sum(1 for c in cs if live(c)) > 1)
    missing = sorted(f"{b.key} in {region}" for b in backups.values() if b.outcome == "verified"
                     for region in regions if not any(c["status"] in ENDED_OK for c in b.copies.get(region, [])))
    waiting = sum(u["waiting_s"] for u in util.values())
    busy = sum(u["busy_while_waiting_s"] for u in util.values())
    strict = utilization(backups, copies, regions, slots, end, strict=True).values()
    strict_waiting = sum(u["waiting_s"] for u in strict)
    strict_busy = sum(u["busy_while_waiting_s"] for u in strict)
    outcomes: dict[str, int] = {}
    for b in backups.values():
        outcomes[b.outcome or "none"] = outcomes.get(b.outcome or "none", 0) + 1
    reasons = sorted({b.reason for b in backups.values() if b.outcome == "rejected" and b.reason})
    return {
        "per_bucket": {f"{r}/{k}": {**u, "refused": sum(1 for x in refused if x["region"] == r and COPY_BUCKET[x["operation"]] == k),
                                     "calls": sum(1 for x in calls if x["region"] == r and COPY_BUCKET[x["operation"]] == k),
                                     "ideal_s": ideal.get((r, k), 0.0)}
                       for (r, k), u in util.items()},
        "utilization": busy / waiting if waiting else None,
        "utilization_strict": strict_busy / strict_waiting if strict_waiting else None,
        "waiting_s": waiting,
        "refused": len(refused),
        "copy_calls": len(calls),
        "completed_copies": completed,
        "failed_copies": sum(1 for c in mine if c["status"] not in ENDED_OK and c["status"] != "in-progress"),
        "refused_per_copy": len(refused) / completed if completed else None,
        "wall_s": last_end - fired_at,
        "copy_phase_s": last_end - min((c["started_at"] for c in mine), default=last_end),
        "ideal_s": max(ideal.values(), default=0.0),
        "ideal_at": max(ideal, key=ideal.get) if ideal else None,
        "backups": len(backups),
        "outcomes": outcomes,
        "rejected_reasons": reasons,
        "lost": lost,
        "duplicated": duplicated,
        "missing_copies": missing,
        "source_account_copies": sum(1 for c in copies if c["account"] in SOURCES),
    }


# --------------------------------------------------------------------------- two sources


def in_flight_budget(slots: int, sources: int = len(SOURCES)) -> int:
    """copy-shared-snapshot's default COPIES_IN_FLIGHT_PER_SOURCE (services/copy-shared-snapshot
    Handler::budget): the kind's slots divided among the allowlisted sources, rounded up."""
    return max(1, -(-slots // sources))


def slot_shares(backups: dict[str, Backup], copies: list[dict], regions: list[str], end: float) -> dict:
    """Per (region, bucket) and source account: copies completed, slot-seconds held (each
    copy's start to end), the slot-seconds held while every source had work there (a copy
    waiting, as `utilization` counts waiting, or in progress): the contended time, where a
    fair line gives each source its share; and the most copies it had in progress at once
    (against its in-flight budget, a share it may pass alone), and the most once it started
    a copy while another source's copy waited (which the share must hold)."""
    owner = {id(c): b for b in backups.values() for cs in b.copies.values() for c in cs}
    out = {}
    for region in regions:
        for bucket in BUCKETS:
            changes: list[tuple[float, str, int, int]] = []  # (time, source, d_running, d_work)
            done = {a: 0 for a in SOURCES}
            for c in copies:
                b = owner.get(id(c))
                if b is None or c["region"] != region or c["bucket"] != bucket:
                    continue
                changes += [(c["started_at"], b.account, 1, 0), (c["ended_at"] or end, b.account, -1, 0)]
                done[b.account] += c["status"] in ENDED_OK
            for b in backups.values():
                if b.bucket != bucket:
                    continue
                ready = b.shared_at if region == REGION else (b.copied_at or home_copy_end(b))
                if ready is None:
                    continue
                started = [c["started_at"] for c in b.copies.get(region, [])]
                until = max(ready, min(started)) if started else end
                changes += [(ready, b.account, 0, 1), (until, b.account, 0, -1)]
            changes.sort(key=lambda x: (x[0], x[2] + x[3]))  # ends before starts at one instant
            running = {a: 0 for a in SOURCES}
            work = {a: 0 for a in SOURCES}
            held = {a: 0.0 for a in SOURCES}
            peak = {a: 0 for a in SOURCES}
            # The most in progress once it started a copy while another source's copy waited: the
            # derived budget is a share, which a source alone may pass and must keep to once
            # another waits (copies it started before the other's came are not taken back).
            peak_waited = {a: 0 for a in SOURCES}
            contended = {a: 0.0 for a in SOURCES}
            contended_s = 0.0
            last = changes[0][0] if changes else end
            for at, acct, d_run, d_work in changes:
                span = max(0.0, at - last)
                both = all(running[a] + work[a] > 0 for a in SOURCES)
                for a in SOURCES:
                    held[a] += running[a] * span
                    if both:
                        contended[a] += running[a] * span
                contended_s += span if both else 0.0
                running[acct] += d_run
                work[acct] += d_work
                peak[acct] = max(peak[acct], running[acct])
                if d_run > 0 and any(work[o] > 0 for o in SOURCES if o != acct):
                    peak_waited[acct] = max(peak_waited[acct], running[acct])
                last = at
            out[(region, bucket)] = {"completed": done, "slot_s": held, "contended_slot_s": contended,
                                     "contended_s": contended_s, "most_in_flight": peak,
                                     "most_in_flight_while_other_waited": peak_waited}
    return out


def stats(xs: list[float]) -> dict:
    """n, median, p95 (nearest rank), max."""
    xs = sorted(xs)
    if not xs:
        return {"n": 0, "median": None, "p95": None, "max": None}
    return {"n": len(xs), "median": statistics.median(xs), "p95": xs[max(0, math.ceil(0.95 * len(xs)) - 1)],
            "max": xs[-1]}


def home_delays(backups: dict[str, Backup], account: str) -> dict[str, float]:
    """Each of `account`'s backups: its `Snapshot Shared` to its home copy's (first) start."""
    out = {}
    for b in backups.values():
        started = [c["started_at"] for c in b.copies.get(REGION, [])]
        if b.account == account and b.shared_at is not None and started:
            out[b.key] = max(0.0, min(started) - b.shared_at)
    return out


def ideal_delays(backups: dict[str, Backup], account: str, slots: dict[str, int], copy_s: dict[str, float],
                 budget: bool = True) -> dict[str, float]:
    """The same delays in a line of `account`'s own: per bucket, its home copies in the order
    they were shared, each starting as soon as one of its in-flight budget's slots is free
    (no handover latency), every copy the bucket's mean copy time. What a fair split owes it
    whatever the neighbour does. `budget=False`: with every slot of the bucket (the source
    alone, no budget)."""
    out = {}
    for bucket in BUCKETS:
        mine = sorted((b for b in backups.values() if b.account == account and b.bucket == bucket
                       and b.shared_at is not None), key=lambda b: b.shared_at)
        free = [float("-inf")] * (in_flight_budget(slots[bucket]) if budget else slots[bucket])
        for b in mine:
            i = min(range(len(free)), key=free.__getitem__)
            start = max(b.shared_at, free[i])
            free[i] = start + copy_s.get(bucket, 0.0)
            out[b.key] = start - b.shared_at
    return out


def source_figures(backups: dict[str, Backup], copies: list[dict], regions: list[str], slots: dict[str, int],
                   end: float, fired: dict[str, float], util: dict) -> dict:
    shares = slot_shares(backups, copies, regions, end)
    copy_s = {k: statistics.mean(u["copy_s"] for (r, kk), u in util.items() if kk == k and u["completed"])
              for k in BUCKETS if any(u["completed"] for (r, kk), u in util.items() if kk == k)}
    per_source = {}
    for acct in SOURCES:
        mine = [b for b in backups.values() if b.account == acct]
        delays = home_delays(backups, acct)
        ideal = ideal_delays(backups, acct, slots, copy_s)
        alone = ideal_delays(backups, acct, slots, copy_s, budget=False)
        outcomes: dict[str, int] = {}
        for b in mine:
            outcomes[b.outcome or "none"] = outcomes.get(b.outcome or "none", 0) + 1
        copy_ends = [c["ended_at"] or end for b in mine for cs in b.copies.values() for c in cs]
        budget_rejections = sorted(b.reason for b in mine if b.outcome == "rejected" and b.reason
                                   and "PER_SOURCE" in b.reason)
        per_source[acct] = {
            "backups": len(mine),
            "outcomes": outcomes,
            "budget_rejections": budget_rejections,
            "delay": stats(list(delays.values())),
            "delay_by_bucket": {k: stats([d for key, d in delays.items() if backups[key].bucket == k]) for k in BUCKETS},
            "ideal": stats(list(ideal.values())),
            "ideal_by_bucket": {k: stats([d for key, d in ideal.items() if backups[key].bucket == k]) for k in BUCKETS},
            "ideal_all_slots": stats(list(alone.values())),
            "ideal_all_slots_by_bucket": {k: stats([d for key, d in alone.items() if backups[key].bucket == k])
                                          for k in BUCKETS},
            "delays": delays,
            "fired_at": fired.get(acct),
            "last_copy_end_s": (max(copy_ends) - fired[acct]) if copy_ends and acct in fired else None,
        }
    return {"per_bucket": {f"{r}/{k}": v for (r, k), v in shares.items()}, "per_source": per_source,
            "in_flight_budget": {k: in_flight_budget(slots[k]) for k in BUCKETS}}


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f} %"


def markdown(f: dict, args: argparse.Namespace, slots: dict[str, int], load: tuple[str, str], run_s: float,
             timed_out: bool, told_slots: bool, flood: int = 0) -> str:
    regions = [REGION, *args.regions]
    resources = args.instances + args.clusters + args.volumes
    lines = [
        f"`snapferry local` (debug build) copying a backlog of {f['backups']} source snapshots "
        f"({args.rounds} schedule rounds delivered at once x {args.instances} MySQL instances, {args.clusters} Aurora "
        f"MySQL clusters, {args.volumes} EBS volumes = {resources} resources) from {SOURCE}"
        f"{f' and {NEIGHBOUR} (its flood: {flood} resources, one round)' if flood else ''} into {BACKUP}'s "
        f"{REGION} and {', '.join(args.regions)}: {f['completed_copies']} copies. Emulator: copy slots per destination "
        f"region {slots['rds_instance_copies']} DB instance / {slots['rds_cluster_copies']} Aurora / "
        f"{slots['ebs_copies']} EBS ({'told to' if told_slots else 'not told to'} the pipeline: "
        f"{'`--copy-slots`' if told_slots else 'this CLI has no `--copy-slots`'}), every snapshot, copy and restore "
        f"{args.delay:g} s. Run {run_s:.0f} s; load average before / after {load[0]} / {load[1]} (1, 5, 15 min).",
        "",
        "| region | bucket | slots | copies | mean copy s | work waiting s | all slots busy while waiting | "
        "refused / calls | ideal s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for region in regions:
        for bucket in BUCKETS:
            u = f["per_bucket"][f"{region}/{bucket}"]
            share = u["busy_while_waiting_s"] / u["waiting_s"] if u["waiting_s"] else None
            lines.append(f"| {region} | {BUCKET_NAMES[bucket]} | {slots[bucket]} | {u['completed']} | {u['copy_s']:.2f} | "
                         f"{u['waiting_s']:.1f} | {pct(share)} | {u['refused']} / {u['calls']} | {u['ideal_s']:.1f} |")
    util, per_copy = f["utilization"], f["refused_per_copy"]
    met = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    ideal_at = f["ideal_at"]
    lines += [
        "",
        "| figure | value | goal |",
        "|---|---:|---|",
        f"| utilization: all slots busy while work waits (time-weighted over regions and buckets) | {pct(util)} | "
        f">= {pct(GOAL_UTILIZATION)}: {met(util is not None and util >= GOAL_UTILIZATION)} |",
        f"| the same, an extra region's copy waiting from the home copy's end (the pipeline's time to learn of "
        f"it included) | {pct(f['utilization_strict'])} | |",
        f"| copy calls refused for quota per completed copy | {f['refused']} / {f['completed_copies']} = "
        f"{'-' if per_copy is None else f'{per_copy:.2f}'} | <= {GOAL_REFUSALS}: "
        f"{met(per_copy is not None and per_copy <= GOAL_REFUSALS)} |",
        f"| wall time, schedule to last copy's end | {f['wall_s']:.1f} s | |",
        f"| copy phase, first copy's start to last copy's end | {f['copy_phase_s']:.1f} s | |",
        f"| ideal: ceil(copies / slots) x mean copy time, slowest (region, bucket)"
        f"{'' if ideal_at is None else f' ({ideal_at[0]}, {BUCKET_NAMES[ideal_at[1]]})'} | {f['ideal_s']:.1f} s "
        f"(wall {f['wall_s'] / f['ideal_s']:.1f}x) |  |" if f["ideal_s"] else "| ideal | - | |",
        f"| backups: outcome | {', '.join(f'{n} {k}' for k, n in sorted(f['outcomes'].items()))} | every one |",
        f"| lost (no outcome) / duplicated (2+ copies of one snapshot in a region) | {len(f['lost'])} / "
        f"{len(f['duplicated'])} | 0 / 0: {met(not f['lost'] and not f['duplicated'])} |",
    ]
    if f["rejected_reasons"]:
        lines += ["", "Rejection reasons: " + "; ".join(f"`{r}`" for r in f["rejected_reasons"][:5]) + "."]
    if f["missing_copies"]:
        lines += ["", f"**Verified without a copy in every region**: {len(f['missing_copies'])} "
                  f"(e.g. {', '.join(f['missing_copies'][:3])})."]
    if f["failed_copies"] or f["source_account_copies"]:
        lines += ["", f"Copies that failed: {f['failed_copies']}; copies made in the source account: "
                  f"{f['source_account_copies']}."]
    if timed_out:
        lines += ["", f"**Timed out** after {args.timeout} s: the figures cover the run so far."]
    return "\n".join(lines) + "\n"


def secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def triple(st: dict) -> str:
    return "-" if not st["n"] else f"{secs(st['median'])} / {secs(st['p95'])} / {secs(st['max'])}"


def markdown_sources(sf: dict, args: argparse.Namespace, slots: dict[str, int], flood: tuple[int, int, int],
                     baseline: dict | None) -> str:
    """The two-source figures: each source's copies and share of the slot time, and the
    honest source's delay against the ideal and the baseline run."""
    regions = [REGION, *args.regions]
    n_flood = sum(flood)
    me, nb = sf["per_source"][SOURCE], sf["per_source"][NEIGHBOUR]
    budget = sf["in_flight_budget"]
    over = lambda n, b: f"**{n}**" if n > b else str(n)  # noqa: E731
    lines = [
        f"Two sources into {BACKUP}: {SOURCE} (the source above) and its neighbour {NEIGHBOUR}, both allowlisted, each "
        f"on its own sharing key; `snapferry local`'s default budgets per source (COPIES_IN_FLIGHT_PER_SOURCE: a share, the "
        f"kind's slots / 2 sources, rounded up, which a source alone may pass: {sf['in_flight_budget']['rds_instance_copies']} DB instance / "
        f"{sf['in_flight_budget']['rds_cluster_copies']} Aurora / {sf['in_flight_budget']['ebs_copies']} EBS copy in "
        f"flight per region; COPIES_HELD_PER_SOURCE: the manual snapshot quota / 2, out of the way here). "
        + (f"Flood: {NEIGHBOUR} has {n_flood} resources ({flood[0]} MySQL instances, {flood[1]} Aurora MySQL clusters, "
           f"{flood[2]} EBS volumes), whose schedule fires first; once all {n_flood} of its snapshots are shared, "
           f"{SOURCE}'s {args.rounds} round(s) fire ({secs(me['fired_at'] - nb['fired_at'])} s later)."
           if n_flood else f"No flood (`--flood 0`): {NEIGHBOUR} has no resources; the baseline."),
        "",
        "| region | bucket | slots | copies " + f"{SOURCE} / {NEIGHBOUR} | slot-s {SOURCE} / {NEIGHBOUR} | "
        f"{SOURCE}'s share of slot time | both sources had work, s | {SOURCE}'s share then | "
        f"most in flight at once {SOURCE} / {NEIGHBOUR}: in all; after a start while the other's copy waited (share) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for region in regions:
        for bucket in BUCKETS:
            u = sf["per_bucket"][f"{region}/{bucket}"]
            waited = u["most_in_flight_while_other_waited"]
            total = sum(u["slot_s"].values())
            contended = sum(u["contended_slot_s"].values())
            lines.append(
                f"| {region} | {BUCKET_NAMES[bucket]} | {slots[bucket]} | {u['completed'][SOURCE]} / "
                f"{u['completed'][NEIGHBOUR]} | {u['slot_s'][SOURCE]:.0f} / {u['slot_s'][NEIGHBOUR]:.0f} | "
                f"{pct(u['slot_s'][SOURCE] / total if total else None)} | {u['contended_s']:.0f} | "
                f"{pct(u['contended_slot_s'][SOURCE] / contended if contended else None)} | "
                f"{u['most_in_flight'][SOURCE]} / {u['most_in_flight'][NEIGHBOUR]}; "
                f"{over(waited[SOURCE], budget[bucket])} / {over(waited[NEIGHBOUR], budget[bucket])} "
                f"({budget[bucket]}) |")
    def share_of(field: str) -> float | None:
        total = sum(sum(u[field].values()) for u in sf["per_bucket"].values())
        return sum(u[field][SOURCE] for u in sf["per_bucket"].values()) / total if total else None

    lines += ["", f"Over every region and bucket: {SOURCE}'s share of the slot time "
              f"{pct(share_of('slot_s'))}, while both sources had work {pct(share_of('contended_slot_s'))}."]
    lines += [
        "",
        f"| source | backups: outcome | budget rejections | `Snapshot Shared` → home copy start, s: median / p95 / max "
        f"| ideal, s | schedule → its last copy's end, s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for acct in SOURCES:
        x = sf["per_source"][acct]
        lines.append(f"| {acct}{' (flood)' if acct == NEIGHBOUR and n_flood else ''} | "
                     f"{', '.join(f'{n} {k}' for k, n in sorted(x['outcomes'].items())) or '-'} | "
                     f"{len(x['budget_rejections'])} | {triple(x['delay'])} | {triple(x['ideal'])} | "
                     f"{secs(x['last_copy_end_s'])} |")
    base = baseline["sources"]["per_source"][SOURCE] if baseline else None
    lines += [
        "",
        f"{SOURCE}'s delay, `Snapshot Shared` to its home copy's start, s (median / p95 / max), per bucket"
        + (": this run, the ideal, the baseline run (`--flood 0`)" if base else ": this run and the ideal")
        + ". Ideal: its copies in a line of their own, each starting as soon as a slot of its in-flight budget is "
        "free, every copy the mean copy time; with every slot: the same without the budget (the source alone).",
        "",
        "| bucket | backups | this run | ideal | ideal, every slot |" + (" baseline | median this / baseline |" if base else ""),
        "|---|---:|---:|---:|---:|" + ("---:|---:|" if base else ""),
    ]
    rows = [(BUCKET_NAMES[k], me["delay_by_bucket"][k], me["ideal_by_bucket"][k], me["ideal_all_slots_by_bucket"][k],
             base["delay_by_bucket"][k] if base else None) for k in BUCKETS]
    rows.append(("**all**", me["delay"], me["ideal"], me["ideal_all_slots"], base["delay"] if base else None))
    for name, st, ideal, alone, b in rows:
        row = f"| {name} | {st['n']} | {triple(st)} | {triple(ideal)} | {triple(alone)} |"
        if base:
            ratio = (f"{st['median'] / b['median']:.2f}x" if st["n"] and b["n"] and b["median"]
                     else "-")
            row += f" {triple(b)} | {ratio} |"
        lines.append(row)
    if base:
        lines += ["", f"Baseline: {SOURCE}'s schedule to its last copy's end {secs(base['last_copy_end_s'])} s "
                  f"(this run {secs(me['last_copy_end_s'])} s)."]
    overruns = sorted(f"{acct}: {u['most_in_flight_while_other_waited'][acct]} {BUCKET_NAMES[key.split('/')[1]]} "
                      f"copies into {key.split('/')[0]}"
                      for key, u in sf["per_bucket"].items() for acct in SOURCES
                      if u["most_in_flight_while_other_waited"][acct] > budget[key.split("/")[1]])
    if overruns:
        lines += ["", f"**Past its in-flight share by a copy started while the other source's copy waited** (copies "
                  f"of one source in progress at once, from the copy log): {'; '.join(overruns)}."]
    rejected = me["budget_rejections"] + nb["budget_rejections"]
    if rejected:
        lines += ["", f"**Budget rejections**: {len(me['budget_rejections'])} of {SOURCE}'s, "
                  f"{len(nb['budget_rejections'])} of {NEIGHBOUR}'s (e.g. `{rejected[0]}`)."]
    return "\n".join(lines) + "\n"


def loadavg() -> str:
    with open("/proc/loadavg", encoding="ascii") as f:
        return " ".join(f.read().split()[:3])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--endpoint", required=True, help="the emulator, http://127.0.0.1:PORT (reset first)")
    p.add_argument("--snapferry", required=True, help="the CLI, target/debug/snapferry")
    p.add_argument("--regions", default="eu-west-1,eu-central-1",
                   help="extra regions the backup account copies to (default eu-west-1,eu-central-1)")
    p.add_argument("--instances", type=int, default=8, help="MySQL DB instances (default 8)")
    p.add_argument("--clusters", type=int, default=4, help="Aurora MySQL clusters (default 4)")
    p.add_argument("--volumes", type=int, default=8, help="EBS volumes (default 8)")
    p.add_argument("--rounds", type=int, default=2, help="schedule rounds delivered at once (default 2)")
    p.add_argument("--delay", type=float, default=30.0, help="seconds each snapshot, copy, restore takes (default 30)")
    p.add_argument("--slots-instance", type=int, default=2, help="DB instance copy slots per region (default 2)")
    p.add_argument("--slots-cluster", type=int, default=1, help="Aurora copy slots per region (default 1)")
    p.add_argument("--slots-ebs", type=int, default=2, help="EBS copy slots per region (default 2)")
    p.add_argument("--flood", type=int, metavar="N",
                   help="two sources: the neighbour 444444444444 shares N snapshots (N resources in the source's "
                        "proportions of kinds) before the source's rounds fire; 0: the same run without the flood "
                        "(the baseline). Prints each source's copies, share of slot time and delay")
    p.add_argument("--baseline", metavar="FILE", help="with --flood: the --json of a `--flood 0` run to compare with")
    p.add_argument("--timeout", type=int, default=900, help="seconds to wait for every outcome (default 900)")
    p.add_argument("--markdown", metavar="FILE")
    p.add_argument("--json", metavar="FILE", help="raw copy intervals, refusals and per-backup records")
    args = p.parse_args(argv)
    args.regions = [r for r in args.regions.split(",") if r]
    if args.baseline and args.flood is None:
        p.error("--baseline needs --flood")
    baseline = None
    if args.baseline:
        with open(args.baseline, encoding="utf-8") as fh:
            baseline = json.load(fh)["figures"]
        if "sources" not in baseline:
            p.error(f"{args.baseline} has no two-source figures: write it with --flood 0 --json")
    flood = flood_split(args.flood or 0, args)
    slots = {"rds_instance_copies": args.slots_instance, "rds_cluster_copies": args.slots_cluster,
             "ebs_copies": args.slots_ebs}
    regions = [REGION, *args.regions]

    config_before = control(args.endpoint, "GET", "/config")
    control(args.endpoint, "POST", "/reset")
    control(args.endpoint, "POST", "/config", {"delay_seconds": args.delay, "quotas": {
        **slots, "manual_db_snapshots": 100000, "manual_cluster_snapshots": 100000}})
    load_before = loadavg()
    logdir = tempfile.mkdtemp(prefix="snapferry-copy-slots.")
    started = time.monotonic()
    command = local_command(args, slots)
    proc, _ = start_pipeline(command, logdir)
    timed_out = failed = False
    fired: dict[str, float] = {}
    try:
        src, bak = Account(args.endpoint, SOURCE), Account(args.endpoint, BACKUP)
        nbr = Account(args.endpoint, NEIGHBOUR) if args.flood is not None else None
        monitor = Monitor([src, bak] + ([nbr] if nbr else []))
        create_resources(src, args.instances, args.clusters, args.volumes)
        expected = (args.instances + args.clusters + args.volumes) * args.rounds + sum(flood)
        if nbr and sum(flood):
            # The flood: the neighbour's snapshots, all shared into the backup account before
            # the source's are taken, so they are older than every one of the source's.
            create_resources(nbr, *flood, prefix="flood")
            fired[NEIGHBOUR] = time.time()
            fire_rounds(nbr, 1, NEIGHBOUR, "bench-copy-slots-flood")
            print(f"copy_slots: the neighbour's flood fired, {sum(flood)} snapshots", file=sys.stderr)
            flood_deadline = time.monotonic() + min(args.timeout, 300)
            while time.monotonic() < flood_deadline:
                monitor.drain()
                backups = source_snapshots(control(args.endpoint, "GET", "/events"))
                attach(backups, [], monitor.events())
                mine = [b for b in backups.values() if b.account == NEIGHBOUR]
                if len(mine) >= sum(flood) and all(b.shared_at or b.outcome for b in mine):
                    break
                time.sleep(0.5)
            else:
                print("copy_slots: the flood was not all shared within its time; the source fires anyway",
                      file=sys.stderr)
        fired_at = time.time()
        fired[SOURCE] = fired_at
        fire_rounds(src, args.rounds)
        print(f"copy_slots: {args.rounds} rounds fired, {expected} backups expected", file=sys.stderr)
        deadline = time.monotonic() + args.timeout
        last_report = 0.0
        while True:
            monitor.drain()
            copies = control(args.endpoint, "GET", "/copies")["copies"]
            backups = source_snapshots(control(args.endpoint, "GET", "/events"))
            attach(backups, copies, monitor.events())
            settled = [b for b in backups.values() if b.outcome is not None and (b.outcome != "verified" or all(
                any(c["status"] in ENDED_OK for c in b.copies.get(r, [])) for r in regions))]
            running = sum(1 for c in copies if c["status"] == "in-progress")
            if len(backups) >= expected and len(settled) == len(backups) and running == 0:
                break
            if proc.poll() is not None:
                print(f"copy_slots: snapferry local exited ({proc.returncode}):{tail(logdir)}", file=sys.stderr)
                failed = True
                break
            if time.monotonic() > deadline:
                timed_out = True
                break
            if time.monotonic() - last_report > 10:
                last_report = time.monotonic()
                print(f"copy_slots: {time.monotonic() - started:.0f} s: {len(backups)}/{expected} snapshots, "
                      f"{len(settled)} settled, {sum(1 for c in copies if c['status'] in ENDED_OK)} copies done, "
                      f"{running} in progress", file=sys.stderr)
            time.sleep(0.5)
    finally:
        stop_pipeline(proc)
    end = time.time()
    run_s = time.monotonic() - started
    requests = control(args.endpoint, "GET", "/requests")["requests"]
    control(args.endpoint, "POST", "/config", config_before)  # later users of this emulator get theirs back
    f = figures(backups, copies, requests, regions, slots, min(fired.values()), end)
    text = markdown(f, args, slots, (load_before, loadavg()), run_s, timed_out, "--copy-slots" in command,
                    sum(flood))
    if args.flood is not None:
        f["sources"] = source_figures(backups, copies, regions, slots, end, fired,
                                      utilization(backups, copies, regions, slots, end))
        f["sources"]["flood"] = list(flood)
        text += "\n" + markdown_sources(f["sources"], args, slots, flood, baseline)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as out:
            out.write(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"args": {k: v for k, v in vars(args).items() if k not in ("markdown", "json")},
                       "command": command, "figures": f,
                       "fired_at": fired_at, "fired": fired, "copies": copies,
                       "refused": [r for r in requests if r["account"] == BACKUP and r["operation"] in COPY_BUCKET
                                   and r["error_code"] in QUOTA_CODES],
                       "backups": [vars(b) for b in backups.values()]}, out, indent=2, default=str)
    print(text, end="")
    print(f"copy_slots: pipeline logs in {logdir}", file=sys.stderr)
    bad = failed or timed_out or f["lost"] or f["duplicated"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
