#!/usr/bin/env python3
"""snapferry's handler CPU per event and Lambda cost per backup (issue 12, item 5), on the
local emulator.

Runs backups of a DB instance through the whole chain, one backup at a time, with every step
served by the release `snapferry-lambda` binary the way Lambda serves it: one long-lived
process per step (`_HANDLER` names it; started as lambda_init.lambda_environment starts a
bootstrap), fed one SQS record per invocation through a Lambda Runtime API on 127.0.0.1 by a
poller that plays Lambda's SQS event source mapping (receive from the step's queue, invoke,
delete unless the response names the record in `batchItemFailures`). The events are the
chain's own: the schedule's event, the emulator's RDS events routed by the deployed
EventBridge rules, the steps' pipeline events and their delayed re-checks; each makes its
step do its real AWS calls against the emulator.

The pipeline (queues, DLQs, rules, cross-account forwarding, the way back of "Snapshot
Copied", keys, the restore network and each step's IAM role) is deployed by
`snapferry fire-schedule --step create-snapshot`, the code `snapferry local` and the
end-to-end tests deploy with; the event it fires is handled during the warm-up. Each step's
variables are set here as the stacks set them (`shared/environment.json`), ACCOUNT_ID
included, and each step signs as its own role (`snapferry-<step>`), so the emulator's
request log says whose each call is. Steps: create-snapshot, share-snapshot (source account),
copy-shared-snapshot, restore (backup account) and the source's expire-snapshots, which
gets every "Snapshot Copied" back and withdraws the share.

One database (MySQL, encrypted with the sharing key, so the share step shares it without a
re-encrypting copy) is backed up again and again: backup i is the hourly schedule's event
stamped i + 3 hours after the current hour, so each passes MIN_INTERVAL_MINUTES=60 and
makes a new snapshot. Between backups the harness deletes the oldest snapshots and copies
beyond what the hourly expire steps keep (SOURCE_KEEP, BACKUP_KEEP), so both accounts hold a
steady number, as under retention (the emulator's describe calls slow down as lists grow,
which would otherwise drift the wall times through the run). A backup is over when restore
and expire-snapshots have handled its "Snapshot Copied" and its restore test, if any, is
verified; its backstop re-check (copy-shared-snapshot, 10 x RECHECK_SECONDS later) runs
during later backups and counts as its own: every invocation is attributed to a backup by
the snapshot name in its message.

Phases: one discarded warm-up backup, then --events backups with RESTORE_EVERY_NTH=1 (every
copy restore-tested: the per-event figures); then, when the config samples restore tests
(restoreTest.everyNth = N > 1), restore is restarted with RESTORE_EVERY_NTH=N and N + 1 more
backups run, the first discarded: N backups in a row, one of them tested, for the cost.

Per invocation:
  CPU ms     the process's CPU time, summed over its threads (/proc/<pid>/task/<tid>/schedstat,
             ns), from just before the event is handed over (the process waits in
             GET .../invocation/next) to the moment its POST .../response arrives
  wall ms    the same interval on the monotonic clock: the duration Lambda bills, rounded
             up to 1 ms
  AWS calls  the emulator's request log entries signed by the step's role in that interval

Writes the figures as JSON (--json) and the RESULTS.md subsections as markdown (--markdown).
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import http.server
import json
import math
import os
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cold_start as cs  # noqa: E402
import lambda_init as li  # noqa: E402

SOURCE, BACKUP, REGION = cs.SOURCE, cs.BACKUP, cs.REGION
# The steps one backup of a DB instance goes through, and the account each runs in. The
# source's expire-snapshots gets every "Snapshot Copied" back (the stacks deploy that route):
# it withdraws the share, an invocation per backup like the others.
STEPS = {
    "create-snapshot": SOURCE,
    "share-snapshot": SOURCE,
    "copy-shared-snapshot": BACKUP,
    "restore": BACKUP,
    "expire-snapshots": SOURCE,
}
SHARING_KEY_ALIAS = "alias/snapferry-sharing"  # services/cli/src/doctor.rs SHARING_KEY_ALIAS
BACKUP_KEY_ALIAS = "alias/snapferry-target"  # shared/src/permissions.rs BACKUP_KEY_ALIAS
RESTORE_NETWORK = "snapferry-restore-test"  # local/src/pipeline.rs
MONITOR_QUEUE = "snapferry-monitor"  # every snapferry event on the account's pipeline bus
RECHECK_SECONDS = 1  # the local pipeline's (the stacks default to 30; the example config 300)
# What the hourly expire steps keep of one database's snapshots, kept here between backups
# so the accounts hold a steady number (the example config: keep_last 2 in the source
# account, keep_last 7 in the backup account's home region, besides its daily and older ones).
SOURCE_KEEP, BACKUP_KEEP = 2, 7
# AWS Lambda pricing, arm64, US East (N. Virginia), first 7.5 billion GB-s a month:
# https://aws.amazon.com/lambda/pricing/
PRICE_GB_S = 0.0000133334
PRICE_PER_REQUEST = 0.20 / 1_000_000
HARNESS_CALLS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:DeleteMessageBatch", "sqs:GetQueueAttributes"}


# --------------------------------------------------------------------------- CPU time


def _schedstat_available() -> bool:
    return os.path.exists(f"/proc/{os.getpid()}/task/{threading.get_native_id()}/schedstat")


SCHEDSTAT = _schedstat_available()
TICK_NS = 1e9 / os.sysconf("SC_CLK_TCK")


def thread_cpu_ns(pid: int) -> dict[int, int]:
    """CPU time of each live thread of `pid`, in ns: schedstat's run time, or (without
    schedstat) utime + stime in clock ticks."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            if SCHEDSTAT:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    out[int(tid)] = int(f.read().split()[0])
            else:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                out[int(tid)] = int((int(fields[11]) + int(fields[12])) * TICK_NS)
        except (OSError, ValueError, IndexError):
            pass
    return out


def process_cpu_ms(pid: int) -> float | None:
    """utime + stime of the whole process (threads that exited included), in ms."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * TICK_NS / 1e6
    except (OSError, ValueError, IndexError):
        return None


# --------------------------------------------------------------------------- a long-lived function


@dataclasses.dataclass
class Invocation:
    request_id: str
    event: bytes
    deadline_s: float
    cpu_before: dict[int, int] = dataclasses.field(default_factory=dict)
    cpu_after: dict[int, int] = dataclasses.field(default_factory=dict)
    start_ns: int | None = None
    end_ns: int | None = None
    start_wall: float | None = None
    end_wall: float | None = None
    outcome: str | None = None  # "response", "error", "init/error"
    body: bytes = b""
    done: threading.Event = dataclasses.field(default_factory=threading.Event)

    @property
    def wall_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def cpu_ms(self) -> float:
        return sum(ns - self.cpu_before.get(tid, 0) for tid, ns in self.cpu_after.items()) / 1e6

    @property
    def threads_gone(self) -> int:
        """Threads that ended during the invocation: their CPU since its start is not counted."""
        return len(set(self.cpu_before) - set(self.cpu_after))


class Function:
    """One step's execution environment: the bootstrap process, started once as Lambda starts
    it (lambda_init.lambda_environment), and a Runtime API that hands it one invocation at a
    time (invoke()). Between invocations the process waits in /next, as a warm Lambda does."""

    def __init__(self, step: str, binary: str, env: list[tuple[str, str]], memory_mb: int, log_path: str):
        self.step = step
        self.binary = binary
        self.env = env
        self.memory_mb = memory_mb
        self.log_path = log_path
        self.pending: queue.Queue[Invocation | None] = queue.Queue()
        self.current: Invocation | None = None
        self.init_error: bytes | None = None
        self.proc: subprocess.Popen | None = None
        self.stopping = threading.Event()
        fn = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def do_GET(self):
                fn._next(self)

            def do_POST(self):
                fn._post(self)

        self.server = li._QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name=f"runtime-api-{step}", daemon=True)

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    @property
    def arn(self) -> str:
        return li.FUNCTION_ARN.format(region=REGION, account=STEPS[self.step], name=f"snapferry-{self.step}")

    def start(self) -> None:
        self.thread.start()
        task_root = os.path.dirname(os.path.abspath(self.binary))
        env = li.lambda_environment(self.address, f"snapferry-{self.step}", REGION, self.memory_mb, task_root,
                                    self.env)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([self.binary], env=env, cwd=task_root, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def invoke(self, event: bytes, timeout_s: float) -> Invocation:
        """Hands `event` to the function and waits for its answer (or timeout_s)."""
        inv = Invocation(str(uuid.uuid4()), event, time.time() + timeout_s)
        self.current = inv
        self.pending.put(inv)
        deadline = time.monotonic() + timeout_s
        while not inv.done.wait(0.01):
            if self.proc.poll() is not None:
                inv.outcome = inv.outcome or f"exited with {self.proc.returncode}"
                break
            if time.monotonic() > deadline:
                inv.outcome = inv.outcome or f"no response within {timeout_s:g} s"
                break
        return inv

    def stop(self) -> dict:
        """Kills the process; returns its total CPU and peak RSS, read just before."""
        stats = {"process_cpu_ms": process_cpu_ms(self.proc.pid), "peak_rss_mb": None}
        hwm = li.read_vm_hwm_kb(self.proc.pid)
        stats["peak_rss_mb"] = hwm / 1024 if hwm is not None else None
        self.stopping.set()
        self.pending.put(None)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.server.shutdown()
        self.server.server_close()
        self.log.close()
        return stats

    # -- Runtime API (server threads)

    def _next(self, req) -> None:
        if req.path != f"{li.API_PREFIX}/invocation/next":
            return self._reply(req, 404, b'{"errorMessage":"not found"}')
        inv = self.pending.get()
        if inv is None:  # stopping: hold the request until the process is killed
            self.stopping.wait()
            req.close_connection = True
            return
        headers = {
            "Lambda-Runtime-Aws-Request-Id": inv.request_id,
            "Lambda-Runtime-Deadline-Ms": str(int(inv.deadline_s * 1000)),
            "Lambda-Runtime-Invoked-Function-Arn": self.arn,
            "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};"
                                       f"Parent={uuid.uuid4().hex[:16]};Sampled=0",
        }
        # The process is blocked in this /next: its CPU time stands still until the event is sent.
        inv.cpu_before = thread_cpu_ns(self.proc.pid)
        inv.start_wall = time.time()
        inv.start_ns = time.monotonic_ns()
        self._reply(req, 200, inv.event, headers)

    def _post(self, req) -> None:
        now = time.monotonic_ns()
        cpu = thread_cpu_ns(self.proc.pid)
        wall = time.time()
        body = li._read_body(req)
        m = re.fullmatch(rf"{li.API_PREFIX}/(?:invocation/([^/]+)/(response|error)|init/(error))", req.path)
        inv = self.current
        if m is None:
            return self._reply(req, 404, b'{"errorMessage":"unknown request"}')
        self._reply(req, 202, b'{"status":"OK"}')
        if m.group(3):
            self.init_error = body
            if inv is not None:
                inv.outcome, inv.body = "init/error", body
                inv.done.set()
            return
        if inv is None or m.group(1) != inv.request_id or inv.done.is_set():
            return
        inv.end_ns, inv.cpu_after, inv.end_wall = now, cpu, wall
        inv.outcome, inv.body = m.group(2), body
        inv.done.set()

    @staticmethod
    def _reply(req, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        li.RuntimeApi._reply(req, status, body, headers)


# --------------------------------------------------------------------------- the chain


@dataclasses.dataclass
class Sample:
    step: str
    phase: str  # "main" (RESTORE_EVERY_NTH=1) or "sampled" (the config's everyNth)
    backup: int  # its index in the run; -1: the warm-up backup
    kind: str
    ok: bool
    cpu_ms: float | None
    wall_ms: float | None
    start_wall: float | None
    end_wall: float | None
    threads_gone: int
    failure: str | None = None
    calls: list[str] = dataclasses.field(default_factory=list)


def event_kind(body: str) -> str:
    """What an SQS message asks of a step: the EventBridge detail-type (with the RDS event's
    id, or the re-check's kind)."""
    try:
        b = json.loads(body)
    except ValueError:
        return "not JSON"
    if not isinstance(b, dict):
        return "not an object"
    dt = b.get("detail-type") or "?"
    detail = b.get("detail") if isinstance(b.get("detail"), dict) else {}
    if dt == "Snapferry Recheck":
        return f"re-check `{detail.get('recheck', '?')}`"
    if detail.get("EventID"):
        return f"{dt} {detail['EventID']}"
    return dt


def lambda_record(m: dict, queue_arn: str) -> dict:
    """The record Lambda's SQS event source hands a function for a received message."""
    attributes = {}
    for name, v in (m.get("MessageAttributes") or {}).items():
        attributes[name] = {"stringValue": v.get("StringValue"), "stringListValues": [], "binaryListValues": [],
                            "dataType": v.get("DataType")}
        if "BinaryValue" in v:
            attributes[name]["binaryValue"] = base64.b64encode(v["BinaryValue"]).decode()
    return {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m.get("Attributes") or {}, "messageAttributes": attributes,
            "md5OfBody": m.get("MD5OfBody"), "eventSource": "aws:sqs", "eventSourceARN": queue_arn,
            "awsRegion": REGION}


class Chain:
    """The deployed pipeline, its five functions, the database they back up, and the poller."""

    def __init__(self, args, run_id: str):
        self.args = args
        self.endpoint = args.endpoint
        self.db = f"bench-cpu-{run_id}"
        # A backup's snapshot, copy, restore and events all carry the snapshot's name, which
        # is the database's and the schedule slot's minute (shared/src/naming.rs).
        self.slot_re = re.compile(rf"{re.escape(self.db)}-([0-9]{{12}})")
        self.slots: dict[str, int] = {}  # slot minute -> backup index
        self.phase = "main"
        self.setup = {a: cs.credentials(self.endpoint, a, "snapferry-bench-setup") for a in (SOURCE, BACKUP)}
        self.src_rds = cs.client(self.endpoint, "rds", self.setup[SOURCE])
        self.bak_rds = cs.client(self.endpoint, "rds", self.setup[BACKUP])
        self.roles = {s: cs.credentials(self.endpoint, a, f"snapferry-{s}") for s, a in STEPS.items()}
        self.sqs = {s: cs.client(self.endpoint, "sqs", self.roles[s]) for s in STEPS}
        self.setup_sqs = {a: cs.client(self.endpoint, "sqs", self.setup[a]) for a in (SOURCE, BACKUP)}
        self.queues = {}
        for step, account in STEPS.items():
            sqs = self.setup_sqs[account]
            url = sqs.get_queue_url(QueueName=f"snapferry-{step}")["QueueUrl"]
            dlq = sqs.get_queue_url(QueueName=f"snapferry-{step}-dlq")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            self.queues[step] = (url, dlq, arn)
        self.monitor = self.setup_sqs[BACKUP].get_queue_url(QueueName=MONITOR_QUEUE)["QueueUrl"]
        self.sharing_key = self._key(SOURCE, SHARING_KEY_ALIAS)
        self.target_key = self._key(BACKUP, BACKUP_KEY_ALIAS)
        ec2 = cs.client(self.endpoint, "ec2", self.setup[BACKUP])
        groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [RESTORE_NETWORK]}])
        self.security_group = groups["SecurityGroups"][0]["GroupId"]
        self.functions: dict[str, Function] = {}
        self.stopped: dict[str, dict] = {}
        self.samples: list[Sample] = []
        self.verified: set[str] = set()  # slot minutes whose restore test passed
        self.failed_events: list[str] = []
        # The hourly schedule's slots: backup i is stamped i + 3 hours after this hour, so each
        # is an hour after the one before (MIN_INTERVAL_MINUTES=60 lets it through).
        self.base = int(time.time()) // 3600 * 3600 + 3 * 3600

    def _key(self, account: str, alias: str) -> str:
        return cs.client(self.endpoint, "kms", self.setup[account]).describe_key(KeyId=alias)["KeyMetadata"]["Arn"]

    def env(self, step: str, restore_every_nth: int) -> list[tuple[str, str]]:
        """The step's variables as the stacks set them (local/src/pipeline.rs
        PipelineOptions::variables for the local pipeline)."""
        url, dlq, _ = self.queues[step]
        select = f"^{re.escape(self.db)}$"
        v = {"_HANDLER": step, "AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_ENDPOINT_URL": self.endpoint,
             "QUEUE_URL": url, "DLQ_URL": dlq, "PIPELINE_BUS": "snapferry", "ACCOUNT_ID": STEPS[step],
             "RECHECK_SECONDS": str(RECHECK_SECONDS), "RETRY_BASE_SECONDS": "1"}
        if step == "create-snapshot":
            v |= {"SELECT_REGEX": select, "KINDS": "db-instance,db-cluster", "MIN_INTERVAL_MINUTES": "60"}
        elif step == "share-snapshot":
            v |= {"SELECT_REGEX": select, "TARGET_ACCOUNTS": BACKUP, "SHARING_KMS_KEY_ARN": self.sharing_key}
        elif step == "copy-shared-snapshot":
            v |= {"SOURCE_ACCOUNTS": SOURCE, "TARGET_KMS_KEY_ARN": self.target_key}
        elif step == "restore":
            v |= {"TARGET_KMS_KEY_ARN": self.target_key, "RESTORE_ENABLED": "true",
                  "RESTORE_EVERY_NTH": str(restore_every_nth), "RESTORE_SUBNET_GROUP": RESTORE_NETWORK,
                  "RESTORE_SECURITY_GROUP_IDS": self.security_group, "RESTORE_TIMEOUT_MINUTES": "30"}
        elif step == "expire-snapshots":
            v |= {"KINDS": "db-instance,db-cluster", "TARGET_ACCOUNTS": BACKUP, "EXPIRE_DRY_RUN": "false"}
        return list(self.roles[step].items()) + list(v.items())

    def start(self, step: str, memory_mb: int, log_dir: str, restore_every_nth: int = 1) -> None:
        f = Function(step, self.args.rust_binary, self.env(step, restore_every_nth), memory_mb,
                     os.path.join(log_dir, f"{step}-{self.phase}.log"))
        f.start()
        self.functions[step] = f

    def stop(self, step: str) -> None:
        self.stopped[f"{step} ({self.phase})" if step == "restore" else step] = self.functions.pop(step).stop()

    def stop_all(self) -> dict:
        for step in list(self.functions):
            self.stop(step)
        return self.stopped

    # -- Lambda's SQS event source mapping, one record per invocation

    def owner(self, body: str, current: int) -> int:
        """The backup a message is about, by the slot in its snapshot's name; the backup in
        progress when it names none (the schedule's event); the warm-up for a slot of none
        of ours (the schedule `snapferry fire-schedule` fired while deploying)."""
        m = self.slot_re.search(body)
        if m is None:
            return current
        return self.slots.get(m.group(1), -1)

    def poll(self, step: str, current: int) -> bool:
        url, _, arn = self.queues[step]
        sqs = self.sqs[step]
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=0,
                                  AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
        if not got:
            return False
        m = got[0]
        backup = self.owner(m["Body"], current)
        f = self.functions[step]
        if f.init_error is not None:
            raise RuntimeError(f"{step}: init failed: {f.init_error.decode(errors='replace')}")
        inv = f.invoke(json.dumps({"Records": [lambda_record(m, arn)]}).encode(), self.args.timeout)
        ok, failure = inv.outcome == "response", None
        if ok:
            try:
                failures = json.loads(inv.body).get("batchItemFailures")
            except (ValueError, AttributeError):
                failures = None
            if failures != []:
                ok, failure = False, f"batchItemFailures {failures}"
        else:
            failure = f"{inv.outcome}: {inv.body.decode(errors='replace')[:300]}"
        done = inv.end_ns is not None
        self.samples.append(Sample(step, self.phase, backup, event_kind(m["Body"]), ok,
                                   inv.cpu_ms if done else None, inv.wall_ms if done else None,
                                   inv.start_wall, inv.end_wall, inv.threads_gone if done else 0, failure))
        if ok:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        else:
            print(f"  {step} backup {backup + 1}: FAILED: {failure}", file=sys.stderr, flush=True)
        return True

    def read_monitor(self) -> None:
        sqs = self.setup_sqs[BACKUP]
        while True:
            got = sqs.receive_message(QueueUrl=self.monitor, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                return
            for m in got:
                try:
                    e = json.loads(m["Body"])
                    dt, origin = e["detail-type"], e["detail"]["origin"]["id"]
                except (ValueError, KeyError, TypeError):
                    dt = origin = None
                slot = self.slot_re.search(origin or "")
                if dt == "Restore Verified" and slot:
                    self.verified.add(slot.group(1))
                elif dt in ("Restore Failed", "Snapshot Rejected"):
                    self.failed_events.append(f"{dt} for {origin}")
                sqs.delete_message(QueueUrl=self.monitor, ReceiptHandle=m["ReceiptHandle"])

    def queue_empty(self, step: str) -> bool:
        """Nothing visible, in flight or delayed in the step's queue."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                 "ApproximateNumberOfMessagesDelayed"]
        a = self.setup_sqs[STEPS[step]].get_queue_attributes(QueueUrl=self.queues[step][0],
                                                             AttributeNames=names)["Attributes"]
        return not any(int(a.get(n, "0")) for n in names)

    def queues_empty(self) -> bool:
        return all(self.queue_empty(step) for step in STEPS)

    # -- backups

    def create_database(self) -> None:
        self.src_rds.create_db_instance(
            DBInstanceIdentifier=self.db, Engine="mysql", EngineVersion="8.0.39", DBInstanceClass="db.t4g.micro",
            AllocatedStorage=20, MasterUsername="admin", MasterUserPassword="not-a-secret-1",
            StorageEncrypted=True, KmsKeyId=self.sharing_key, CopyTagsToSnapshot=True)
        deadline = time.monotonic() + 30
        while self.src_rds.describe_db_instances(DBInstanceIdentifier=self.db)["DBInstances"][0][
                "DBInstanceStatus"] != "available":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.db} not available within 30 s")
            time.sleep(0.05)

    def prune(self) -> None:
        """Deletes the database's oldest snapshots and copies beyond what retention keeps
        (SOURCE_KEEP, BACKUP_KEEP), as the hourly expire steps would between backups."""
        for rds, keep in ((self.src_rds, SOURCE_KEEP), (self.bak_rds, BACKUP_KEEP)):
            found = rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]
            mine = sorted((s for s in found if self.db in s["DBSnapshotIdentifier"] and s["Status"] == "available"),
                          key=lambda s: s["SnapshotCreateTime"])
            for old in mine[:-keep]:
                rds.delete_db_snapshot(DBSnapshotIdentifier=old["DBSnapshotIdentifier"])

    def backup(self, index: int) -> str | None:
        """Fires the hourly schedule for backup `index` and runs the chain until restore and
        expire-snapshots have had its "Snapshot Copied" and its restore test, if it has one,
        passed; returns why it failed, or None. What is still due for it then
        (copy-shared-snapshot's backstop re-check) runs during the next backups and is
        counted as its own by the slot in the message."""
        at = self.base + 3600 * (index + 1)
        slot = time.strftime("%Y%m%d%H%M", time.gmtime(at))
        self.slots[slot] = index
        # What the schedule rule delivers (local/src/host.rs Host::fire).
        rule = f"arn:aws:events:{REGION}:{SOURCE}:rule/snapferry-create-snapshot-schedule"
        event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
                 "account": SOURCE, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)),
                 "region": REGION, "resources": [rule], "detail": {}}
        self.setup_sqs[SOURCE].send_message(QueueUrl=self.queues["create-snapshot"][0], MessageBody=json.dumps(event))

        def done() -> bool:
            copied = {x.step for x in self.samples if x.backup == index and x.kind == "Snapshot Copied" and x.ok}
            if not {"restore", "expire-snapshots"} <= copied:
                return False
            return slot in self.verified or self.queue_empty("restore")

        return self.drive(index, done, f"backup {index + 1}: not through the chain")

    def drain(self, index: int) -> str | None:
        """Runs what is left until every step's queue is empty (nothing visible, in flight
        or delayed) at two checks a poll apart."""
        quiet: list[bool] = []
        return self.drive(index, lambda: quiet.append(self.queues_empty()) or quiet[-2:] == [True, True],
                          "the queues did not empty")

    def drive(self, index: int, done, what: str) -> str | None:
        """Plays the event source mapping until done() holds (asked when a round over every
        queue found nothing); returns why it stopped otherwise."""
        deadline = time.monotonic() + self.args.backup_timeout
        while time.monotonic() < deadline:
            handled = False
            for step in STEPS:
                handled |= self.poll(step, index)
            if handled:
                continue
            self.read_monitor()
            if self.failed_events:
                return "; ".join(self.failed_events)
            if done():
                return None
            time.sleep(0.1)
        return f"{what} within {self.args.backup_timeout:g} s"


# --------------------------------------------------------------------------- figures


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p % of the values at or below it."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def attribute_calls(samples: list[Sample], requests: list[dict]) -> None:
    """Each invocation's AWS calls: the step role's requests logged while it ran (the poller
    waits for the response meanwhile, so they are the function's)."""
    by_role: dict[str, list[dict]] = {}
    for r in requests:
        by_role.setdefault(r.get("principal") or "", []).append(r)
    for s in samples:
        if s.start_wall is None or s.end_wall is None:
            continue
        for r in by_role.get(f"snapferry-{s.step}", []):
            op = f"{r['service']}:{r['operation']}"
            if s.start_wall <= r["at"] <= s.end_wall and op not in HARNESS_CALLS:
                s.calls.append(op)
        if s.phase == "sampled" and s.step == "restore" and s.kind == "Snapshot Copied" \
                and "rds:RestoreDBInstanceFromDBSnapshot" not in s.calls:
            s.kind = "Snapshot Copied, not sampled"


def billed_ms(samples: list[Sample]) -> int:
    """Lambda's billed duration: each invocation's rounded up to 1 ms."""
    return sum(math.ceil(s.wall_ms) for s in samples if s.wall_ms is not None)


def cost(invocations: float, billed: float, memory_mb: int) -> dict:
    gb_s = billed / 1000 * memory_mb / 1024
    return {"invocations": invocations, "billed_ms": billed, "gb_s": gb_s,
            "usd": gb_s * PRICE_GB_S + invocations * PRICE_PER_REQUEST}


def summarize(samples: list[Sample], backups: int, sampled: list[int], memory_mb: int) -> dict:
    main = [s for s in samples if s.phase == "main" and s.backup >= 0]
    rows = []
    for step in STEPS:
        mine = [s for s in main if s.step == step]
        kinds: dict[str, list[Sample]] = {}
        for s in mine:
            kinds.setdefault(s.kind, []).append(s)
        groups = sorted(kinds.items(), key=lambda kv: min(s.start_wall or 0 for s in kv[1]))
        for kind, ss in groups + ([("all events", mine)] if len(groups) > 1 else []):
            ok = [s for s in ss if s.ok and s.cpu_ms is not None]
            ops: dict[str, int] = {}
            for s in ok:
                for c in s.calls:
                    ops[c] = ops.get(c, 0) + 1
            cpu, wall = [s.cpu_ms for s in ok], [s.wall_ms for s in ok]
            rows.append({
                "step": step, "kind": kind, "events": len(ss), "ok": len(ok), "per_backup": len(ss) / backups,
                "cpu_median": statistics.median(cpu) if cpu else None,
                "cpu_p99": percentile(cpu, 99) if cpu else None,
                "wall_median": statistics.median(wall) if wall else None,
                "wall_p99": percentile(wall, 99) if wall else None,
                "calls_mean": statistics.mean(len(s.calls) for s in ok) if ok else None,
                "ops": {k: v / len(ok) for k, v in sorted(ops.items())} if ok else {},
            })
    per_backup = []
    for b in range(backups):
        mine = [s for s in main if s.backup == b]
        others = [s for s in mine if s.step != "restore"]
        per_backup.append({"invocations": len(mine), "billed_ms": billed_ms(mine),
                           "others_invocations": len(others), "others_billed_ms": billed_ms(others),
                           "cpu_ms": sum(s.cpu_ms for s in mine if s.cpu_ms is not None),
                           "calls": sum(len(s.calls) for s in mine)})
    out = {
        "rows": rows,
        "per_backup": per_backup,
        "tested": cost(statistics.median(p["invocations"] for p in per_backup),
                       statistics.median(p["billed_ms"] for p in per_backup), memory_mb),
        "max_billed_ms": max(p["billed_ms"] for p in per_backup),
        "cpu_per_backup_ms": statistics.median(p["cpu_ms"] for p in per_backup),
        "calls_per_backup": statistics.median(p["calls"] for p in per_backup),
        "threads_gone": sum(s.threads_gone for s in samples),
        "failed": [f"{s.step} (backup {s.backup + 1}, {s.kind}): {s.failure}" for s in samples if not s.ok],
        "window_cpu_ms": {},
    }
    for s in samples:
        key = f"{s.step} ({s.phase})" if s.step == "restore" else s.step
        out["window_cpu_ms"][key] = out["window_cpu_ms"].get(key, 0.0) + (s.cpu_ms or 0.0)
    looks = {}
    for step in ("copy-shared-snapshot", "restore"):
        ls = [s for s in main if s.step == step and s.kind.startswith("re-check") and s.ok]
        if ls:
            w = statistics.median(math.ceil(s.wall_ms) for s in ls)
            looks[step] = {"per_backup": len(ls) / backups, "billed_ms": w, "cost": cost(1, w, memory_mb)}
    out["looks"] = looks
    skip = [s for s in samples if s.phase == "sampled" and s.backup in sampled
            and s.kind == "Snapshot Copied, not sampled" and s.ok]
    if skip:
        # A backup whose copy is not sampled: the other steps' invocations as in the main
        # phase (50 backups), and restore's one that decides not to test (measured here).
        n = len(sampled)
        tested = out["tested"]
        untested = cost(statistics.median(p["others_invocations"] for p in per_backup) + 1,
                        statistics.median(p["others_billed_ms"] for p in per_backup)
                        + statistics.median(math.ceil(s.wall_ms) for s in skip), memory_mb)
        per = []
        for b in sampled:
            mine = [s for s in samples if s.phase == "sampled" and s.backup == b]
            per.append({"tested": any("rds:RestoreDBInstanceFromDBSnapshot" in s.calls for s in mine),
                        "invocations": len(mine), "billed_ms": billed_ms(mine)})
        out["sampled"] = {
            "backups": n,
            "untested": untested,
            "mean": cost((tested["invocations"] + (n - 1) * untested["invocations"]) / n,
                         (tested["billed_ms"] + (n - 1) * untested["billed_ms"]) / n, memory_mb),
            "direct": cost(statistics.mean(p["invocations"] for p in per),
                           statistics.mean(p["billed_ms"] for p in per), memory_mb),
            "direct_tested": sum(p["tested"] for p in per),
            "skip_cpu": statistics.median(s.cpu_ms for s in skip),
            "skip_wall": statistics.median(s.wall_ms for s in skip),
            "skip_n": len(skip),
        }
    return out


def fmt(v: float | None, f: str = "{:.2f}") -> str:
    return "-" if v is None else f.format(v)


def markdown(summary: dict, args, memory_mb: int, every_nth: int, config_path: str, load: tuple[float, float],
             processes: dict, wall_s: float) -> str:
    lines = ["### Handler CPU", "",
             "| step | event | per backup | CPU ms median | CPU ms p99 | wall ms median | wall ms p99 | "
             "AWS calls per event |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in summary["rows"]:
        if r["kind"] == "all events":
            kind, ops = "**all its events**", f"{fmt(r['calls_mean'], '{:.1f}')} on average"
        else:
            kind = r["kind"]
            ops = ", ".join(op + ("" if abs(n - 1) < 1e-9 else f" ×{n:.2g}") for op, n in r["ops"].items()) or "none"
        bad = "" if r["ok"] == r["events"] else f" ({r['events'] - r['ok']} failed)"
        lines.append(f"| {r['step']} | {kind}{bad} | {r['per_backup']:.2f} | {fmt(r['cpu_median'])} | "
                     f"{fmt(r['cpu_p99'])} | {fmt(r['wall_median'], '{:.1f}')} | {fmt(r['wall_p99'], '{:.1f}')} | "
                     f"{ops} |")
    clock = "schedstat, ns" if SCHEDSTAT else f"utime+stime in {TICK_NS / 1e6:.0f} ms ticks"
    windows = summary["window_cpu_ms"]
    lines += [
        "",
        f"- {args.events} backups of one DB instance through the whole chain with every copy restore-tested "
        f"(`RESTORE_EVERY_NTH=1`), after one discarded warm-up backup; then {every_nth + 1} more with the "
        f"config's `restoreTest.everyNth` = {every_nth} (a new restore process, its first backup discarded), "
        f"for the cost below. Between backups the harness deletes the database's snapshots beyond the newest "
        f"{SOURCE_KEEP} in the source account and its copies beyond the newest {BACKUP_KEEP} in the backup account, "
        f"as the hourly expire runs would. {wall_s:.0f} s in all; load average {load[0]:.2f} before, "
        f"{load[1]:.2f} after.",
        f"- CPU: the process's CPU time over all its threads ({clock}) from handing it the event to its "
        "response arriving; wall: the same interval, the duration Lambda bills. p99 is the nearest rank (with "
        f"fewer than 100 events, the largest). Median CPU of a whole backup: {summary['cpu_per_backup_ms']:.1f} ms. "
        f"Threads that ended during an invocation (CPU uncounted): {summary['threads_gone']}.",
        "- AWS calls: the emulator's request log, signed by the step's role during the invocation (×: mean per "
        f"event when not one); {summary['calls_per_backup']:.0f} per backup (median).",
    ]
    checks = [f"{k} {windows.get(k, 0):.0f} / {p['process_cpu_ms']:.0f} ms, {p['peak_rss_mb']:.1f} MB"
              for k, p in processes.items() if p["process_cpu_ms"] is not None and p["peak_rss_mb"] is not None]
    if checks:
        lines.append("- Cross-check per process, every invocation's CPU summed (warm-up included) / the "
                     "process's utime+stime at the end (init included, 10 ms ticks), and its peak RSS: "
                     + "; ".join(checks) + ".")
    for f in summary["failed"]:
        lines.append(f"  - failed invocation: {f}")

    t = summary["tested"]
    lines += [
        "",
        "### Cost of one backup",
        "",
        f"At `lambdaMemoryMb` = {memory_mb} (`{config_path}`): {memory_mb / 1024:g} GB. Arm64 Lambda, us-east-1: "
        f"${PRICE_GB_S:.10f} per GB-second (the first 7.5 billion GB-s a month) and $0.20 per million requests "
        "(aws.amazon.com/lambda/pricing). Billed duration: each invocation's wall time above, rounded up to 1 ms.",
        "",
        "| backup | invocations | billed ms | GB-seconds | cost | per 1,000 backups |",
        "|---|---:|---:|---:|---:|---:|",
        f"| copy restore-tested (median of {args.events}) | {t['invocations']:.0f} | {t['billed_ms']:.0f} | "
        f"{t['gb_s']:.4f} | ${t['usd']:.8f} | ${t['usd'] * 1000:.5f} |",
    ]
    s = summary.get("sampled")
    if s:
        u, m = s["untested"], s["mean"]
        lines.append(f"| copy not sampled: the other steps' invocations (median of {args.events}) and restore's "
                     f"that does not test (median of {s['skip_n']}) | {u['invocations']:.0f} | {u['billed_ms']:.0f} | "
                     f"{u['gb_s']:.4f} | ${u['usd']:.8f} | ${u['usd'] * 1000:.5f} |")
        lines.append(f"| **`everyNth` = {every_nth}: one copy in {every_nth} tested** | {m['invocations']:.2f} | "
                     f"{m['billed_ms']:.0f} | {m['gb_s']:.4f} | ${m['usd']:.8f} | ${m['usd'] * 1000:.5f} |")
    lines += ["", f"- Largest billed total of one restore-tested backup: {summary['max_billed_ms']} ms."]
    if s:
        d = s["direct"]
        lines.append(f"- restore on a copy not sampled (it lists the copies to count them): CPU "
                     f"{fmt(s['skip_cpu'])} ms, wall {fmt(s['skip_wall'], '{:.1f}')} ms (medians of {s['skip_n']}). "
                     f"Measured directly, the {s['backups']} backups in a row at `everyNth` = {every_nth} "
                     f"({s['direct_tested']} tested) averaged {d['invocations']:.2f} invocations and "
                     f"{d['billed_ms']:.0f} ms billed (means of {s['backups']}: noisier than the row above).")
    for step, l in summary["looks"].items():
        c = l["cost"]
        lines.append(f"- Each look more of {step}'s re-check: one invocation, {l['billed_ms']:.0f} ms billed "
                     f"(median), {c['gb_s']:.5f} GB-s, ${c['usd']:.9f}; here {l['per_backup']:.2f} per backup.")
    per_ms = cost(0, 1, memory_mb)["usd"]
    lines.append(f"- Each millisecond more per AWS call adds {summary['calls_per_backup']:.0f} ms to a backup, "
                 f"${per_ms * summary['calls_per_backup'] * 1000:.7f} per 1,000 backups.")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def control(endpoint: str, method: str, path: str):
    req = urllib.request.Request(f"{endpoint}/_snapferry{path}", method=method)
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--endpoint", required=True, help="the emulator, http://127.0.0.1:PORT")
    p.add_argument("--rust-binary", required=True, help="target/release/snapferry-lambda")
    p.add_argument("--snapferry", required=True, help="the CLI (target/debug/snapferry), which deploys the pipeline")
    p.add_argument("--config", help="the deployment config whose lambdaMemoryMb and restoreTest.everyNth are "
                   "used (default infra/config/example.json)")
    p.add_argument("--events", type=int, default=50,
                   help="backups measured with every copy restore-tested: events per step and kind (default 50)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds one invocation may take (default 60)")
    p.add_argument("--backup-timeout", type=float, default=90.0,
                   help="seconds one backup may take to its Restore Verified (default 90)")
    p.add_argument("--reset", action="store_true", help="reset the emulator first (only on an emulator of your own)")
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--markdown", metavar="FILE")
    p.add_argument("--log-dir", metavar="DIR", help="keep each function's output there (default: a temporary "
                   "directory, removed unless the run failed)")
    args = p.parse_args(argv)
    args.rust_binary = os.path.abspath(args.rust_binary)
    if args.events < 1:
        p.error("--events must be at least 1")

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    config_path = os.path.abspath(args.config or os.path.join(root, "infra", "config", "example.json"))
    with open(config_path) as f:
        config = json.load(f)
    memory_mb = int(config["lambdaMemoryMb"])
    restore_test = config.get("target", {}).get("restoreTest", {})
    every_nth = int(restore_test.get("everyNth", 1)) if restore_test.get("enabled", True) else 1
    shown_config = os.path.relpath(config_path, root) if config_path.startswith(root + os.sep) else config_path

    if args.reset:
        control(args.endpoint, "POST", "/reset")
    # The topology, keys, restore network and step roles, as `snapferry local` deploys them.
    deploy = subprocess.run([args.snapferry, "fire-schedule", "--endpoint", args.endpoint, "--region", REGION,
                             "--extra-regions=", "--step", "create-snapshot"],
                            capture_output=True, text=True, timeout=300)
    if deploy.returncode != 0:
        print(f"snapferry fire-schedule failed ({deploy.returncode}):\n{deploy.stdout}{deploy.stderr}",
              file=sys.stderr)
        return 1
    log_dir = args.log_dir or tempfile.mkdtemp(prefix="snapferry-cpu-cost-")
    os.makedirs(log_dir, exist_ok=True)
    chain = Chain(args, uuid.uuid4().hex[:6])
    seq0 = max((e["seq"] for e in cs.requests_since(args.endpoint, 0)), default=0)
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    failure = None
    sampled: list[int] = []

    def report(index: int, t: float, failure: str | None) -> None:
        if index < 0 or index == args.events:
            tag = "warm-up" + ("" if index < 0 else f", restore with everyNth={every_nth}")
        elif index < args.events:
            tag = f"backup {index + 1}/{args.events}"
        else:
            tag = f"backup {index - args.events}/{every_nth} with everyNth={every_nth}"
        n = len([s for s in chain.samples if s.backup == index])
        print(f"  {tag}: {n} invocations, {time.monotonic() - t:.1f} s" + (f": FAILED: {failure}" if failure else ""),
              file=sys.stderr, flush=True)

    try:
        chain.create_database()
        for step in STEPS:
            chain.start(step, memory_mb, log_dir)
        for i in range(-1, args.events):
            t = time.monotonic()
            failure = chain.backup(i)
            report(i, t, failure)
            if failure:
                break
            chain.prune()
        if not failure and every_nth > 1:
            # The config's sampling: a restore process of its own; its first backup warms it up.
            failure = chain.drain(args.events - 1)
            chain.stop("restore")
            chain.phase = "sampled"
            chain.start("restore", memory_mb, log_dir, restore_every_nth=every_nth)
            for i in range(args.events, args.events + every_nth + 1):
                if failure:
                    break
                t = time.monotonic()
                failure = chain.backup(i)
                report(i, t, failure)
            sampled = list(range(args.events + 1, args.events + every_nth + 1))
        if not failure:
            failure = chain.drain(args.events + every_nth)
    except Exception as e:  # noqa: BLE001 - reported as the section's failure, the processes stopped
        failure = f"{type(e).__name__}: {e}"
    finally:
        processes = chain.stop_all()
    wall_s = time.monotonic() - started
    load_after = os.getloadavg()[0]
    attribute_calls(chain.samples, cs.requests_since(args.endpoint, seq0))
    summary = None
    if failure:
        md = f"Not measured: the chain failed: {failure}. Each function's output: `{log_dir}`.\n"
    else:
        summary = summarize(chain.samples, args.events, sampled, memory_mb)
        md = markdown(summary, args, memory_mb, every_nth, shown_config, (load_before, load_after), processes, wall_s)
    print(md)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(md)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "processes": processes, "memory_mb": memory_mb, "every_nth": every_nth,
                       "samples": [dataclasses.asdict(s) for s in chain.samples],
                       "load_average": [load_before, load_after]}, f, indent=2)
    if args.log_dir is None and not failure:
        shutil.rmtree(log_dir, ignore_errors=True)
    return 1 if failure or summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
