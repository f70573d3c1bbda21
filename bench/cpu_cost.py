#!/usr/bin/env python3
"""snapferry's handler CPU per event and Lambda cost per backup (issue 12, item 5), on the
local emulator.

Runs --events backups of a DB instance through the whole chain, one backup at a time after
one discarded warm-up backup, with every step served by the release `snapferry-lambda`
binary the way Lambda serves it: one long-lived process per step (`_HANDLER` names it), fed
one SQS record per invocation through a Lambda Runtime API on 127.0.0.1, by a poller that
plays Lambda's SQS event source mapping (receive from the step's queue, invoke, delete what
the response does not name in `batchItemFailures`). The events are the chain's own: the
schedule's event, the emulator's RDS events routed by the deployed EventBridge rules, the
steps' pipeline events and their delayed re-checks, and each makes the step do its real
AWS calls against the emulator.

The topology (queues, DLQs, rules, cross-account forwarding, keys, the restore network and
each step's IAM role) is deployed by `snapferry fire-schedule --step create-snapshot`, the
same code `snapferry local` and the end-to-end tests use; its scheduled event is the warm-up
backup's. Each step's environment is built here as the stacks build it
(`shared/environment.json`), with ACCOUNT_ID set, and the step signs as its own role
(`snapferry-<step>`), so the emulator's request log says which calls were whose.

Per invocation:
  CPU ms    the process's CPU time (the sum over its threads of /proc/<pid>/task/<tid>/schedstat,
            ns) from just before the event is handed over (the process waits in
            GET .../invocation/next) to the moment its POST .../response arrives
  wall ms   the same interval on the monotonic clock: what Lambda bills (rounded up to 1 ms)
  AWS calls the emulator's request log entries signed by the step's role in that interval

One backup: a new DB instance (MySQL, encrypted with the sharing key, so no re-encrypting
copy in the source account) is created, the create-snapshot schedule fires, and the chain
runs until the backup account's pipeline bus carries its "Restore Verified" and every step's
queue is empty (nothing visible, in flight or delayed); then the instance is deleted, so the
source account holds one database at a time. Every invocation in between is that backup's.

Writes the figures as JSON (--json) and the RESULTS.md subsections as markdown (--markdown).
"""

from __future__ import annotations

import argparse
import dataclasses
import http.server
import json
import math
import os
import queue
import re
import signal
import statistics
import subprocess
import sys
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
RESTORE_NETWORK = "snapferry-restore-test"  # services/cli/src/pipeline.rs
MONITOR_QUEUE = "snapferry-monitor"  # every snapferry event on the account's pipeline bus
RECHECK_SECONDS = 1  # the local pipeline's (the stacks default to 30; the example config 300)
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
    backup: int  # -1: the warm-up backup
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
        attributes[name] = {"stringValue": v.get("StringValue"), "binaryValue": None,
                            "stringListValues": [], "binaryListValues": [], "dataType": v.get("DataType")}
        if "BinaryValue" in v:
            import base64
            attributes[name]["binaryValue"] = base64.b64encode(v["BinaryValue"]).decode()
    return {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m.get("Attributes") or {}, "messageAttributes": attributes,
            "md5OfBody": m.get("MD5OfBody"), "eventSource": "aws:sqs", "eventSourceARN": queue_arn,
            "awsRegion": REGION}


class Chain:
    def __init__(self, args, run_id: str):
        self.args = args
        self.endpoint = args.endpoint
        self.prefix = f"bench-cpu-{run_id}"
        self.setup = {a: cs.credentials(self.endpoint, a, "snapferry-bench-setup") for a in (SOURCE, BACKUP)}
        self.src_rds = cs.client(self.endpoint, "rds", self.setup[SOURCE])
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
        self.samples: list[Sample] = []
        self.verified: set[str] = set()
        self.failed_events: list[str] = []

    def _key(self, account: str, alias: str) -> str:
        return cs.client(self.endpoint, "kms", self.setup[account]).describe_key(KeyId=alias)["KeyMetadata"]["Arn"]

    def env(self, step: str) -> list[tuple[str, str]]:
        """The step's variables as the stacks set them (services/cli/src/pipeline.rs
        PipelineOptions::variables, with the example config's choices where they apply)."""
        url, dlq, _ = self.queues[step]
        select = f"^{self.prefix}-"
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
            v |= {"TARGET_KMS_KEY_ARN": self.target_key, "RESTORE_ENABLED": "true", "RESTORE_EVERY_NTH": "1",
                  "RESTORE_SUBNET_GROUP": RESTORE_NETWORK, "RESTORE_SECURITY_GROUP_IDS": self.security_group,
                  "RESTORE_TIMEOUT_MINUTES": "30"}
        elif step == "expire-snapshots":
            v |= {"KINDS": "db-instance,db-cluster", "TARGET_ACCOUNTS": BACKUP, "EXPIRE_DRY_RUN": "false"}
        return list(self.roles[step].items()) + list(v.items())

    def start(self, memory_mb: int, log_dir: str) -> None:
        for step in STEPS:
            f = Function(step, self.args.rust_binary, self.env(step), memory_mb, os.path.join(log_dir, f"{step}.log"))
            f.start()
            self.functions[step] = f

    def stop(self) -> dict:
        return {step: f.stop() for step, f in self.functions.items()}

    # -- Lambda's SQS event source mapping, one record per invocation

    def poll(self, step: str, backup: int) -> bool:
        url, _, arn = self.queues[step]
        sqs = self.sqs[step]
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=0,
                                  AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
        if not got:
            return False
        m = got[0]
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
        self.samples.append(Sample(step, backup, event_kind(m["Body"]), ok,
                                   inv.cpu_ms if done else None, inv.wall_ms if done else None,
                                   inv.start_wall, inv.end_wall, inv.threads_gone if done else 0, failure))
        if ok:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        else:
            print(f"  {step} backup {backup}: FAILED: {failure}", file=sys.stderr, flush=True)
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
                    resource = e["detail"]["origin"]["resource_id"]
                except (ValueError, KeyError, TypeError):
                    resource = None
                dt = e.get("detail-type") if isinstance(e, dict) else None
                if dt == "Restore Verified" and resource:
                    self.verified.add(resource)
                elif dt in ("Restore Failed", "Snapshot Rejected"):
                    self.failed_events.append(f"{dt} for {resource}")
                sqs.delete_message(QueueUrl=self.monitor, ReceiptHandle=m["ReceiptHandle"])

    def queues_empty(self) -> bool:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                 "ApproximateNumberOfMessagesDelayed"]
        for step, account in STEPS.items():
            a = self.setup_sqs[account].get_queue_attributes(QueueUrl=self.queues[step][0],
                                                            AttributeNames=names)["Attributes"]
            if any(int(a.get(n, "0")) for n in names):
                return False
        return True

    # -- one backup

    def backup(self, index: int) -> str | None:
        """Runs one backup through the chain; returns why it failed, or None."""
        db = f"{self.prefix}-{index + 1}"
        self.src_rds.create_db_instance(
            DBInstanceIdentifier=db, Engine="mysql", EngineVersion="8.0.39", DBInstanceClass="db.t4g.micro",
            AllocatedStorage=20, MasterUsername="admin", MasterUserPassword="not-a-secret-1",
            StorageEncrypted=True, KmsKeyId=self.sharing_key, CopyTagsToSnapshot=True)
        deadline = time.monotonic() + 30
        while self.src_rds.describe_db_instances(DBInstanceIdentifier=db)["DBInstances"][0]["DBInstanceStatus"] \
                != "available":
            if time.monotonic() > deadline:
                return f"{db} not available within 30 s"
            time.sleep(0.05)
        # What the hourly schedule rule delivers (services/cli/src/local/host.rs Host::fire).
        url = self.queues["create-snapshot"][0]
        now = time.gmtime()
        rule = f"arn:aws:events:{REGION}:{SOURCE}:rule/snapferry-create-snapshot-schedule"
        event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
                 "account": SOURCE, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", now), "region": REGION,
                 "resources": [rule], "detail": {}}
        self.setup_sqs[SOURCE].send_message(QueueUrl=url, MessageBody=json.dumps(event))
        deadline = time.monotonic() + self.args.backup_timeout
        quiet_since = None
        while time.monotonic() < deadline:
            handled = False
            for step in STEPS:
                handled |= self.poll(step, index)
            if handled:
                quiet_since = None
                continue
            self.read_monitor()
            if self.failed_events:
                return "; ".join(self.failed_events)
            if db in self.verified and self.queues_empty():
                # Twice, a poll apart: nothing arrived in between either.
                if quiet_since is not None:
                    break
                quiet_since = time.monotonic()
            time.sleep(0.1)
        else:
            return f"{db}: not verified and settled within {self.args.backup_timeout:g} s"
        self.src_rds.delete_db_instance(DBInstanceIdentifier=db, SkipFinalSnapshot=True,
                                        DeleteAutomatedBackups=True)
        return None


# --------------------------------------------------------------------------- figures


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p % of the values at or below it."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def attribute_calls(samples: list[Sample], requests: list[dict]) -> None:
    """Each invocation's AWS calls: the step role's requests logged while it ran (the harness
    is waiting then, so they are the function's)."""
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


def summarize(samples: list[Sample], backups: int, memory_mb: int, every_nth: int) -> dict:
    measured = [s for s in samples if s.backup >= 0]
    rows = []
    kinds = {}
    for s in measured:
        kinds.setdefault((s.step, s.kind), []).append(s)
    for step in STEPS:
        mine = [s for s in measured if s.step == step]
        groups = [(k, v) for (st, k), v in kinds.items() if st == step]
        groups.sort(key=lambda kv: min(s.start_wall or 0 for s in kv[1]))
        for kind, ss in groups + ([("all events", mine)] if len(groups) > 1 else []):
            ok = [s for s in ss if s.ok and s.cpu_ms is not None]
            cpu = [s.cpu_ms for s in ok]
            wall = [s.wall_ms for s in ok]
            calls = [len(s.calls) for s in ok]
            ops = {}
            for s in ok:
                for c in s.calls:
                    ops[c] = ops.get(c, 0) + 1
            rows.append({
                "step": step, "kind": kind, "events": len(ss), "ok": len(ok),
                "per_backup": len(ss) / backups,
                "cpu_median": statistics.median(cpu) if cpu else None,
                "cpu_p99": percentile(cpu, 99) if cpu else None,
                "wall_median": statistics.median(wall) if wall else None,
                "wall_p99": percentile(wall, 99) if wall else None,
                "calls_median": statistics.median(calls) if calls else None,
                "ops": {k: v / len(ok) for k, v in sorted(ops.items())} if ok else {},
            })
    # Per backup: its invocations and their billed duration (each rounded up to 1 ms).
    per_backup = []
    for b in range(backups):
        mine = [s for s in measured if s.backup == b]
        restore = [s for s in mine if s.step == "restore"]
        billed = sum(math.ceil(s.wall_ms) for s in mine if s.wall_ms is not None)
        billed_restore = sum(math.ceil(s.wall_ms) for s in restore if s.wall_ms is not None)
        per_backup.append({"invocations": len(mine), "restore_invocations": len(restore),
                           "billed_ms": billed, "billed_restore_ms": billed_restore,
                           "cpu_ms": sum(s.cpu_ms for s in mine if s.cpu_ms is not None)})
    gb = memory_mb / 1024

    def cost(invocations: float, billed_ms: float) -> dict:
        gb_s = billed_ms / 1000 * gb
        usd = gb_s * PRICE_GB_S + invocations * PRICE_PER_REQUEST
        return {"invocations": invocations, "billed_ms": billed_ms, "gb_s": gb_s, "usd": usd}

    inv = statistics.median(p["invocations"] for p in per_backup)
    billed = statistics.median(p["billed_ms"] for p in per_backup)
    r_inv = statistics.median(p["restore_invocations"] for p in per_backup)
    r_billed = statistics.median(p["billed_restore_ms"] for p in per_backup)
    sampled = cost(inv - r_inv + r_inv / every_nth, billed - r_billed + r_billed / every_nth)
    looks = {}
    for step in ("copy-shared-snapshot", "restore"):
        ls = [s for s in measured if s.step == step and s.kind.startswith("re-check") and s.ok]
        if ls:
            w = statistics.median(math.ceil(s.wall_ms) for s in ls)
            looks[step] = {"per_backup": len(ls) / backups, "billed_ms": w, "cost": cost(1, w)}
    return {
        "rows": rows,
        "per_backup": per_backup,
        "all_restored": cost(inv, billed),
        "max_billed_ms": max(p["billed_ms"] for p in per_backup),
        "example_config": sampled,
        "every_nth": every_nth,
        "looks": looks,
        "cpu_per_backup_ms": statistics.median(p["cpu_ms"] for p in per_backup),
        "threads_gone": sum(s.threads_gone for s in measured),
        "failed": [f"{s.step} (backup {s.backup + 1}, {s.kind}): {s.failure}" for s in measured if not s.ok],
    }


def fmt(v: float | None, f: str = "{:.2f}") -> str:
    return "-" if v is None else f.format(v)


def markdown(summary: dict, args, memory_mb: int, config_path: str, load: tuple[float, float],
             processes: dict, wall_s: float) -> str:
    lines = ["### Handler CPU", "",
             "| step | event | events per backup | CPU ms median | CPU ms p99 | wall ms median | wall ms p99 | "
             "AWS calls per event |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in summary["rows"]:
        ops = ", ".join(f"{op}" + (f" x{n:.2g}" if abs(n - 1) > 1e-9 else "") for op, n in r["ops"].items())
        bad = "" if r["ok"] == r["events"] else f" ({r['events'] - r['ok']} failed)"
        kind = f"**{r['kind']}**" if r["kind"] == "all events" else r["kind"]
        lines.append(f"| {r['step']} | {kind}{bad} | {r['per_backup']:.2f} | {fmt(r['cpu_median'])} | "
                     f"{fmt(r['cpu_p99'])} | {fmt(r['wall_median'], '{:.1f}')} | {fmt(r['wall_p99'], '{:.1f}')} | "
                     f"{ops or 'none'} |")
    clock = "schedstat, ns" if SCHEDSTAT else f"utime+stime, {TICK_NS / 1e6:.0f} ms ticks"
    lines += [
        "",
        f"- {args.events} backups of one DB instance each through the whole chain, one at a time, after one "
        f"discarded warm-up backup; each step one long-lived release `snapferry-lambda` process (native "
        f"x86_64, see below) fed one SQS record per invocation. Took {wall_s:.0f} s; load average "
        f"{load[0]:.2f} before, {load[1]:.2f} after.",
        f"- CPU: the process's CPU time summed over its threads ({clock}) from handing over the event to its "
        "response arriving; wall: the same interval, what Lambda bills. p99 is the nearest rank: with fewer "
        "than 100 events it is the largest. AWS calls: the emulator's request log, signed by the step's role "
        "during the invocation (mean count per event when not 1).",
        f"- Median CPU per backup over all its invocations: {summary['cpu_per_backup_ms']:.1f} ms. "
        f"Threads that ended during an invocation (their CPU uncounted): {summary['threads_gone']}.",
    ]
    for step, p in processes.items():
        pass
    total = {s: p["process_cpu_ms"] for s, p in processes.items() if p["process_cpu_ms"] is not None}
    if total:
        lines.append("- Whole-process CPU (utime+stime at the end, init and warm-up included), peak RSS: " + "; ".join(
            f"{s} {total[s]:.0f} ms, {processes[s]['peak_rss_mb']:.1f} MB" for s in total
            if processes[s]["peak_rss_mb"] is not None) + ".")
    for f in summary["failed"]:
        lines.append(f"  - failed invocation: {f}")

    a, e = summary["all_restored"], summary["example_config"]
    gb = memory_mb / 1024
    lines += [
        "",
        "### Cost of one backup",
        "",
        f"At `lambdaMemoryMb` = {memory_mb} ({config_path}), i.e. {gb:g} GB; arm64 Lambda in us-east-1: "
        f"${PRICE_GB_S:.10f} per GB-second (first 7.5 billion a month) and $0.20 per million requests "
        "(aws.amazon.com/lambda/pricing). Billed duration: each invocation's wall time rounded up to 1 ms.",
        "",
        "| backup | invocations | billed ms | GB-seconds | cost per backup | per 1,000 backups |",
        "|---|---:|---:|---:|---:|---:|",
        f"| as measured: every copy restore-tested (median of {args.events}) | {a['invocations']:.0f} | "
        f"{a['billed_ms']:.0f} | {a['gb_s']:.5f} | ${a['usd']:.8f} | ${a['usd'] * 1000:.5f} |",
        f"| the example config's `restoreTest.everyNth` = {summary['every_nth']}: restore's invocations "
        f"/ {summary['every_nth']} | {e['invocations']:.2f} | {e['billed_ms']:.0f} | {e['gb_s']:.5f} | "
        f"${e['usd']:.8f} | ${e['usd'] * 1000:.5f} |",
        "",
        f"- Largest billed total of one backup: {summary['max_billed_ms']} ms.",
    ]
    for step, l in summary["looks"].items():
        c = l["cost"]
        lines.append(f"- Each further look of {step}'s re-check (one invocation, median {l['billed_ms']:.0f} "
                     f"ms billed): {c['gb_s']:.6f} GB-s, ${c['usd']:.9f}; this run made {l['per_backup']:.2f} "
                     "per backup.")
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
    p.add_argument("--snapferry", required=True, help="the CLI (target/debug/snapferry): deploys the topology")
    p.add_argument("--config", default=None, help="the deployment config whose lambdaMemoryMb and "
                   "restoreTest.everyNth are used (default infra/config/example.json)")
    p.add_argument("--events", type=int, default=50, help="backups measured, so events per step and kind (default 50)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds one invocation may take")
    p.add_argument("--backup-timeout", type=float, default=90.0, help="seconds one backup may take")
    p.add_argument("--reset", action="store_true", help="reset the emulator first (only on an emulator of your own)")
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--markdown", metavar="FILE")
    p.add_argument("--log-dir", metavar="DIR", help="keep each step's output there")
    args = p.parse_args(argv)
    args.rust_binary = os.path.abspath(args.rust_binary)
    if args.events < 1:
        p.error("--events must be at least 1")

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    config_path = args.config or os.path.join(root, "infra", "config", "example.json")
    with open(config_path) as f:
        config = json.load(f)
    memory_mb = int(config["lambdaMemoryMb"])
    every_nth = int(config.get("target", {}).get("restoreTest", {}).get("everyNth", 1))
    shown_config = os.path.relpath(config_path, root) if config_path.startswith(root) else config_path

    if args.reset:
        control(args.endpoint, "POST", "/reset")
    # The topology, keys, restore network and step roles, as `snapferry local` deploys them.
    deploy = subprocess.run([args.snapferry, "fire-schedule", "--endpoint", args.endpoint, "--region", REGION,
                             "--extra-regions=", "--step", "create-snapshot"],
                            capture_output=True, text=True, timeout=300)
    if deploy.returncode != 0:
        print(f"snapferry fire-schedule failed ({deploy.returncode}):\n{deploy.stdout}{deploy.stderr}", file=sys.stderr)
        return 1
    log_dir = args.log_dir or os.path.join("/tmp", f"snapferry-cpu-cost-{os.getpid()}")
    os.makedirs(log_dir, exist_ok=True)
    run_id = uuid.uuid4().hex[:6]
    chain = Chain(args, run_id)
    seq0 = max((e["seq"] for e in cs.requests_since(args.endpoint, 0)), default=0)
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    failure = None
    try:
        chain.start(memory_mb, log_dir)
        for i in range(-1, args.events):
            t = time.monotonic()
            failure = chain.backup(i)
            n = len([s for s in chain.samples if s.backup == i])
            tag = "warm-up" if i < 0 else f"backup {i + 1}/{args.events}"
            print(f"  {tag}: {n} invocations, {time.monotonic() - t:.1f} s" + (f": FAILED: {failure}" if failure else ""),
                  file=sys.stderr, flush=True)
            if failure:
                break
    finally:
        processes = chain.stop()
    wall_s = time.monotonic() - started
    load_after = os.getloadavg()[0]
    attribute_calls(chain.samples, cs.requests_since(args.endpoint, seq0))
    done = len({s.backup for s in chain.samples if s.backup >= 0}) if not failure else 0
    if failure:
        md = f"Not measured: a backup failed: {failure}. Step logs: {log_dir}.\n"
        summary = None
    else:
        summary = summarize(chain.samples, args.events, memory_mb, every_nth)
        md = markdown(summary, args, memory_mb, shown_config, (load_before, load_after), processes, wall_s)
    print(md)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(md)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "processes": processes, "backups_done": done,
                       "samples": [dataclasses.asdict(s) for s in chain.samples],
                       "memory_mb": memory_mb, "load_average": [load_before, load_after]}, f, indent=2)
    if args.log_dir is None and not failure:
        for name in os.listdir(log_dir):
            os.remove(os.path.join(log_dir, name))
        os.rmdir(log_dir)
    return 1 if failure or (summary and summary["failed"]) else 0


if __name__ == "__main__":
    sys.exit(main())
