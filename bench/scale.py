#!/usr/bin/env python3
"""A backup's AWS calls against the backup account's size, on the local host (issue 26, item 5).

For each N in --sizes (default 100, 1000, 10000), on a fresh emulator state (POST
/_snapferry/reset):

  1. raises the manual-snapshot quotas out of the way (100,000 per account and region),
     sets every snapshot's and copy's time (--delay, default 30 s), and seeds the backup
     account 222222222222 (us-east-1) with N manual DB snapshots (POST /_snapferry/seed:
     untagged, available, no parent database; --seed-clusters puts a share of them in
     DB cluster snapshots). A listing of the account's manual snapshots pages over them,
     100 a page, as RDS pages;
  2. starts `snapferry local --sources 3 --concurrency 5 --no-restore-tests` (API
     throttling on, its default: RDS 300 burst / 12 a second per account and region, EC2's
     buckets), copying into the backup account's home region only (--regions: none by
     default, the scope of the minimum in tests/tests/e2e/api_economy.rs), and watches the
     pipeline buses of the four accounts;
  3. creates --databases MySQL instances (50) in each source account (111111111111,
     444444444444, 333333333333), each on its account's sharing key, and delivers --rounds
     (2) hourly schedule events to each at once: 3 x 50 x 2 = 300 backups;
  4. waits until every backup has its outcome (the home copy's `Snapshot Copied`, or
     `Snapshot Rejected`), lets every step queue empty (late re-checks, the sources'
     share releases), stops the pipeline (SIGINT) and computes, from the emulator's
     request log (GET /_snapferry/requests: each call's account, service, operation, IAM
     actions, error code, time and principal, the role `snapferry-<step>` it signed as),
     its copy log and events, its SQS counts and the DLQs:

  calls per backup   per step and IAM action (a DynamoDB transaction as its items'
                     actions, as tests/tests/e2e/api_economy.rs counts them; the SQS event
                     source mapping's receive and delete left out), against MINIMUM read
                     from that test: per backup + per run x runs / backups + per look x
                     the step's looks (its own SQS sends per backup)
  request rates      per account, RDS calls (every caller, refused ones included) over the
                     backlog's span (the schedule events to the last copy's end): the most
                     in any 1 s, the mean, the most in any 60 s / 60, and the mean while
                     every DB instance copy slot was busy; against 12 a second and the
                     goal 3 a second (25 %)
  throttling         calls answered Throttling / ThrottlingException /
                     RequestLimitExceeded per account and step; messages in every DLQ
                     (the steps' and the delivery DLQ, all accounts) and whether any
                     dead letter's reason is throttling
  backlog            wall time against the ideal and slot utilization, as
                     bench/copy_slots.py computes them (ceil(copies / slots) x the mean
                     copy time; the share of the time work waited during which every
                     slot was busy)

Prints the RESULTS.md section as markdown (and writes it to --markdown); --json keeps
every figure and the per-second RDS series; --png draws calls per backup against N and
the backup account's RDS requests per second over time. --from-json FILE redraws the
markdown and the plot from an earlier --json without running anything. Exit status 1
when a run failed, timed out, or lost or duplicated a backup; the goals are reported,
not enforced.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import copy_slots as cs  # noqa: E402 - a sibling script: its run and utilization logic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REGION = cs.REGION
BACKUP = cs.BACKUP
# `snapferry local --sources 3`: local/src/demo.rs SOURCE_ACCOUNT, NEIGHBOUR_ACCOUNT, THIRD_ACCOUNT.
SOURCES = ("111111111111", "444444444444", "333333333333")
ACCOUNTS = (BACKUP, *SOURCES)
THROTTLE_CODES = {"Throttling", "ThrottlingException", "RequestLimitExceeded"}
THROTTLE_RE = re.compile(r"throttl|rate exceeded|requestlimitexceeded", re.I)
POLL_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage"}  # the event source mapping's, as api_economy.rs
MINIMUM_FILE = os.path.join(ROOT, "tests", "tests", "e2e", "api_economy.rs")
RDS_BUDGET = 12.0  # requests a second, sustained (RDS User Guide, "Request throttling for the Amazon RDS API")
GOAL_RATE = 3.0  # 25 % of it (issue 26)
GOAL_UTILIZATION = cs.GOAL_UTILIZATION
ERROR_ATTRS = ("snapferry-error-code", "snapferry-error-reason", "ERROR_CODE", "ERROR_MESSAGE")

# copy_slots' event and utilization logic reads its SOURCES global for the accounts whose
# "created" events are backups: here the three source accounts.
cs.SOURCES = SOURCES


def log(msg: str) -> None:
    print(f"scale: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the minimum


def read_minimum(path: str = MINIMUM_FILE) -> list[dict]:
    """MINIMUM of api_economy.rs: (step, action, per backup, per run, per look)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    block = re.search(r"const MINIMUM[^=]*=\s*&\[(.*?)\n\];", text, re.S)
    if not block:
        raise RuntimeError(f"no MINIMUM table in {path}")
    rows = re.findall(r'\(\s*"([a-z-]+)",\s*"([a-z0-9]+:[A-Za-z]+)",\s*(\d+),\s*(\d+),\s*(\d+),', block.group(1))
    if not rows:
        raise RuntimeError(f"MINIMUM in {path} has no rows this script can read")
    return [{"step": s, "action": a, "per_backup": int(b), "per_run": int(r), "per_look": int(k)}
            for s, a, b, r, k in rows]


def minimum_for(minimum: list[dict], calls: dict[tuple[str, str], int], backups: int, runs: int) -> dict:
    """The fewest calls per backup for each (step, action) of MINIMUM, as api_economy.rs
    computes them: per backup + per run x runs / backups + per look x looks, a step's looks
    being its own sqs:SendMessage calls per backup when MINIMUM gives it a per-look send."""
    def looks(step: str) -> float:
        waits = any(m["step"] == step and m["action"] == "sqs:SendMessage" and m["per_look"] > 0 for m in minimum)
        return calls.get((step, "sqs:SendMessage"), 0) / backups if waits and backups else 0.0

    out: dict[tuple[str, str], float] = {}
    for m in minimum:
        key = (m["step"], m["action"])
        out[key] = out.get(key, 0.0) + m["per_backup"] + m["per_run"] * runs / max(backups, 1) + m["per_look"] * looks(m["step"])
    return {"per_action": out, "looks": {s: looks(s) for s in {m["step"] for m in minimum}}}


# --------------------------------------------------------------------------- the run


class RequestLog:
    """The emulator's request log, read as it grows (GET /requests?since=SEQ), keeping what
    the figures need: every call but the event source mapping's receives and deletes,
    which are only counted."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.seq = 0
        self.kept: list[dict] = []
        self.polls = 0

    def pull(self) -> None:
        batch = cs.control(self.endpoint, "GET", f"/requests?since={self.seq}")["requests"]
        for r in batch:
            self.seq = max(self.seq, r["seq"])
            if r["service"] == "sqs" and all(a in POLL_ACTIONS for a in r.get("actions") or []) and r.get("actions"):
                self.polls += 1
                continue
            self.kept.append({k: r.get(k) for k in ("seq", "at", "service", "operation", "account", "region",
                                                     "error_code", "principal", "actions", "throttled")})


def queue_counts(endpoint: str) -> list[dict]:
    return cs.control(endpoint, "GET", "/sqs-counts")["queues"]


def step_queues_empty(endpoint: str) -> tuple[bool, int]:
    pending = sum(q["messages"] for q in queue_counts(endpoint)
                  if q["name"].startswith("snapferry-") and not q["name"].endswith("-dlq") and q["name"] != cs.MONITOR)
    return pending == 0, pending


def dead_letters(endpoint: str, clients: dict[str, cs.Account]) -> list[dict]:
    """Every DLQ holding or having held a message (GET /sqs-counts), with the reasons of its
    messages (read with their attributes: snapferry's error code and reason, EventBridge's)."""
    out = []
    for q in queue_counts(endpoint):
        if not q["name"].endswith("-dlq"):
            continue
        held = q["messages"]
        entered = q["sent"] + q["dead_lettered_in"] + q["moved_in"]
        if not held and not entered:
            continue
        reasons: list[str] = []
        acct = clients.get(q["account"])
        if acct is not None and held:
            sqs = acct.client("sqs", q["region"])
            url = sqs.get_queue_url(QueueName=q["name"])["QueueUrl"]
            for _ in range(20):
                msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=300,
                                           MessageAttributeNames=["All"]).get("Messages", [])
                if not msgs:
                    break
                for m in msgs:
                    attrs = m.get("MessageAttributes", {})
                    text = " / ".join(attrs[a]["StringValue"] for a in ERROR_ATTRS if a in attrs and "StringValue" in attrs[a])
                    reasons.append(text or "(no reason recorded: SQS's redrive)")
        out.append({"account": q["account"], "region": q["region"], "queue": q["name"], "messages": held,
                    "entered": entered, "reasons": reasons,
                    "throttling": sum(1 for r in reasons if THROTTLE_RE.search(r))})
    return out


def local_command(args: argparse.Namespace, slots_flag: str | None) -> list[str]:
    command = [args.snapferry, "local", "--endpoint", args.endpoint, "--region", REGION,
               f"--extra-regions={','.join(args.regions)}", "--sources", str(len(SOURCES)),
               "--concurrency", str(args.concurrency), "--no-restore-tests"]
    if args.no_throttling:
        command.append("--no-throttling")
    if slots_flag:
        command += ["--copy-slots", slots_flag]
    return command


def check_cli(snapferry: str) -> None:
    helptext = subprocess.run([snapferry, "local", "--help"], capture_output=True, text=True).stdout
    missing = [f for f in ("--sources", "--concurrency", "--no-throttling", "--no-restore-tests") if f not in helptext]
    if missing:
        raise SystemExit(f"scale: {snapferry} local has no {', '.join(missing)}: build the CLI first")


def seed(endpoint: str, n: int, cluster_share: float) -> dict:
    clusters = round(n * cluster_share)
    parts = [("db-instance", n - clusters), ("db-cluster", clusters)]
    started = time.monotonic()
    for kind, count in parts:
        done = 0
        while done < count:
            step = min(100_000, count - done)
            cs.control(endpoint, "POST", "/seed", {"account": BACKUP, "region": REGION, "kind": kind, "count": step,
                                                   "prefix": "seed-", "start": done})
            done += step
    return {"db_instance": parts[0][1], "db_cluster": parts[1][1], "seconds": time.monotonic() - started}


def run_size(args: argparse.Namespace, n: int) -> dict:
    """One N: seed, run the backlog, collect the logs."""
    log(f"N = {n}: reset, quotas, seeding")
    cs.control(args.endpoint, "POST", "/reset")
    quotas = {"manual_db_snapshots": 100_000, "manual_cluster_snapshots": 100_000}
    if args.slots:
        quotas.update({"rds_instance_copies": args.slots, "rds_cluster_copies": args.slots, "ebs_copies": args.slots})
    config = cs.control(args.endpoint, "POST", "/config", {"delay_seconds": args.delay, "quotas": quotas})
    slots = {k: config["quotas"][k] for k in cs.BUCKETS}
    seeded = seed(args.endpoint, n, args.seed_clusters)
    log(f"N = {n}: seeded {seeded['db_instance']} DB + {seeded['db_cluster']} cluster snapshots in {seeded['seconds']:.2f} s")
    load_before = cs.loadavg()
    logdir = tempfile.mkdtemp(prefix=f"snapferry-scale-{n}.")
    slots_flag = (f"db-instance={slots['rds_instance_copies']},db-cluster={slots['rds_cluster_copies']},"
                  f"ebs={slots['ebs_copies']}") if args.slots else None
    command = local_command(args, slots_flag)
    started = time.monotonic()
    proc, _ = cs.start_pipeline(command, logdir)
    started_s = time.monotonic() - started
    reqs = RequestLog(args.endpoint)
    timed_out = failed = False
    expected = len(SOURCES) * args.databases * args.rounds
    fired_at = end = time.time()
    backups: dict[str, cs.Backup] = {}
    copies: list[dict] = []
    dlq: list[dict] = []
    try:
        clients = {a: cs.Account(args.endpoint, a) for a in ACCOUNTS}
        monitor = cs.Monitor([clients[a] for a in ACCOUNTS])
        for acct in SOURCES:
            cs.create_resources(clients[acct], args.databases, 0, 0, prefix=f"scale{acct[0]}")
        log(f"N = {n}: {len(SOURCES)} x {args.databases} MySQL instances created; firing {args.rounds} rounds each")
        fired_at = time.time()
        for acct in SOURCES:
            cs.fire_rounds(clients[acct], args.rounds, acct, f"bench-scale-{acct}")
        deadline = time.monotonic() + args.timeout
        last_report = last_pull = 0.0
        while True:
            monitor.drain()
            copies = cs.control(args.endpoint, "GET", "/copies")["copies"]
            backups = cs.source_snapshots(cs.control(args.endpoint, "GET", "/events"))
            cs.attach(backups, copies, monitor.events())
            done = [b for b in backups.values() if b.copied_at is not None or b.outcome is not None]
            running = sum(1 for c in copies if c["status"] == "in-progress")
            if time.monotonic() - last_pull > 5:
                last_pull = time.monotonic()
                reqs.pull()
            if len(backups) >= expected and len(done) == len(backups) and running == 0:
                break
            if proc.poll() is not None:
                log(f"snapferry local exited ({proc.returncode}):{cs.tail(logdir)}")
                failed = True
                break
            if time.monotonic() > deadline:
                timed_out = True
                break
            if time.monotonic() - last_report > 15:
                last_report = time.monotonic()
                log(f"N = {n}: {time.time() - fired_at:.0f} s: {len(backups)}/{expected} snapshots, {len(done)} with "
                    f"an outcome, {sum(1 for c in copies if c['status'] in cs.ENDED_OK and c['account'] == BACKUP)} "
                    f"copies done, {running} in progress, load {cs.loadavg()}")
            time.sleep(2)
        end = time.time()
        # The step queues empty: late re-checks, the sources' share releases.
        settle_deadline = time.monotonic() + args.settle
        quiet = 0
        while not (failed or timed_out) and time.monotonic() < settle_deadline and quiet < 2:
            empty, _pending = step_queues_empty(args.endpoint)
            quiet = quiet + 1 if empty else 0
            time.sleep(1)
        settled_s = time.time() - end
    finally:
        cs.stop_pipeline(proc)
    run_s = time.monotonic() - started
    reqs.pull()
    monitor.drain()
    copies = cs.control(args.endpoint, "GET", "/copies")["copies"]
    backups = cs.source_snapshots(cs.control(args.endpoint, "GET", "/events"))
    cs.attach(backups, copies, monitor.events())
    throttling = cs.control(args.endpoint, "GET", "/throttling")
    try:
        dlq = dead_letters(args.endpoint, clients)
    except Exception as exc:  # noqa: BLE001 - the figures stand without the reasons
        log(f"reading the DLQs failed: {exc!r}")
        dlq = [{"error": repr(exc)}]
    for b in backups.values():
        if b.outcome is None and b.copied_at is not None:
            b.outcome = "copied"
    log(f"N = {n}: done in {run_s:.0f} s (backlog {end - fired_at:.0f} s, settle {settled_s:.0f} s); "
        f"{len(reqs.kept)} calls kept, {reqs.polls} receives/deletes")
    return {
        "n": n, "seeded": seeded, "slots": slots, "command": command, "logdir": logdir,
        "load": [load_before, cs.loadavg()], "run_s": run_s, "start_s": started_s, "settle_s": settled_s,
        "timed_out": timed_out, "failed": failed, "fired_at": fired_at, "end": end, "expected": expected,
        "figures": figures(args, n, backups, copies, reqs.kept, slots, fired_at, end, throttling, dlq),
        "polls": reqs.polls,
        # The raw intervals, for a later look (--json): the backup account's copies, each backup.
        "copies": [c for c in copies if c["account"] == BACKUP],
        "backups": [{k: v for k, v in vars(b).items() if k != "copies"} for b in backups.values()],
    }


# --------------------------------------------------------------------------- the figures


def step_of(principal: str | None) -> str | None:
    return principal[len("snapferry-"):] if principal and principal.startswith("snapferry-") and principal != "snapferry-operator" else None


def rates(times: list[float], start: float, end: float, full: list[tuple[float, float]]) -> dict:
    """Calls a second: the most in any 1 s, the mean over [start, end], the most in any 60 s
    / 60 (None when the span is shorter), the mean over the `full` intervals."""
    ts = sorted(t for t in times if start <= t <= end)
    span = max(end - start, 1e-9)

    def most_within(width: float) -> int:
        best = i = 0
        for j, t in enumerate(ts):
            while t - ts[i] >= width:
                i += 1
            best = max(best, j - i + 1)
        return best

    full_s = sum(b - a for a, b in full)
    in_full = sum(1 for t in ts if any(a <= t < b for a, b in full)) if full else 0
    return {"calls": len(ts), "span_s": span, "peak_1s": most_within(1.0), "mean": len(ts) / span,
            "max_60s": most_within(60.0) / 60.0 if span >= 60 else None,
            "full_s": full_s, "while_full": in_full / full_s if full_s > 0 else None}


def full_intervals(copies: list[dict], slots: int, end: float) -> list[tuple[float, float]]:
    """When every DB instance copy slot of the backup account's home region was busy."""
    changes = sorted([(c["started_at"], 1) for c in copies if c["account"] == BACKUP and c["region"] == REGION
                      and c["bucket"] == "rds_instance_copies"]
                     + [(c["ended_at"] or end, -1) for c in copies if c["account"] == BACKUP and c["region"] == REGION
                        and c["bucket"] == "rds_instance_copies"], key=lambda x: (x[0], x[1]))
    out, running, since = [], 0, None
    for at, d in changes:
        running += d
        if running >= slots and since is None:
            since = at
        elif running < slots and since is not None:
            out.append((since, at))
            since = None
    if since is not None:
        out.append((since, end))
    return out


def figures(args: argparse.Namespace, n: int, backups: dict[str, cs.Backup], copies: list[dict], requests: list[dict],
            slots: dict[str, int], fired_at: float, end: float, throttling: dict, dlq: list[dict]) -> dict:
    regions = [REGION, *args.regions]
    base = cs.figures(backups, copies, requests, regions, slots, fired_at, end)
    nb = len(backups)
    # Calls per (step, IAM action), the way api_economy.rs counts them.
    calls: dict[tuple[str, str], int] = {}
    throttled: dict[tuple[str, str], int] = {}
    for r in requests:
        step = step_of(r["principal"])
        if step is None:
            continue
        for action in r.get("actions") or []:
            if action in POLL_ACTIONS:
                continue
            calls[(step, action)] = calls.get((step, action), 0) + 1
            if r["error_code"] in THROTTLE_CODES:
                throttled[(step, action)] = throttled.get((step, action), 0) + 1
    minimum = read_minimum()
    runs = len(SOURCES) * args.rounds  # schedule events delivered: each source's create-snapshot runs
    mins = minimum_for(minimum, calls, nb, runs)
    backlog_end = max([c["ended_at"] or end for c in copies if c["account"] == BACKUP]
                      + [b.copied_at for b in backups.values() if b.copied_at] + [fired_at])
    full = full_intervals(copies, slots["rds_instance_copies"], backlog_end)
    per_account = {}
    for acct in ACCOUNTS:
        rds = [r for r in requests if r["account"] == acct and r["service"] == "rds" and r["region"] == REGION]
        per_account[acct] = {
            **rates([r["at"] for r in rds], fired_at, backlog_end, full if acct == BACKUP else []),
            "pipeline_calls": sum(1 for r in rds if step_of(r["principal"])),
            "throttled": {svc: sum(1 for r in requests if r["account"] == acct and r["service"] == svc
                                   and r["error_code"] in THROTTLE_CODES) for svc in ("rds", "ec2")},
            # Refused calls by caller: a step, or another role (the operator's deploy, the bench).
            "throttled_by_step": _count(step_of(r["principal"]) or (r["principal"] or "-") for r in requests
                                        if r["account"] == acct and r["error_code"] in THROTTLE_CODES),
        }
    # The backup account's RDS calls a second, 1-s bins from the schedule (the plot's series).
    bins = max(1, math.ceil(backlog_end - fired_at))
    series = [0] * bins
    for r in requests:
        if r["account"] == BACKUP and r["service"] == "rds" and r["region"] == REGION and fired_at <= r["at"] < fired_at + bins:
            series[int(r["at"] - fired_at)] += 1
    backup_rds_pipeline = sum(v for (s, a), v in calls.items() if a.startswith("rds:") and s in ("copy-shared-snapshot", "restore"))
    return {
        "backups": nb,
        "outcomes": base["outcomes"],
        "rejected_reasons": base["rejected_reasons"],
        "lost": base["lost"],
        "duplicated": base["duplicated"],
        "completed_copies": base["completed_copies"],
        "failed_copies": base["failed_copies"],
        "refused_copy_calls": base["refused"],
        "utilization": base["utilization"],
        "wall_s": base["wall_s"],
        "copy_phase_s": base["copy_phase_s"],
        "ideal_s": base["ideal_s"],
        "copy_s": base["per_bucket"][f"{REGION}/rds_instance_copies"]["copy_s"],
        "backlog_s": backlog_end - fired_at,
        "calls": {f"{s} {a}": v for (s, a), v in sorted(calls.items())},
        "throttled_calls": {f"{s} {a}": v for (s, a), v in sorted(throttled.items())},
        "minimum": {f"{s} {a}": v for (s, a), v in sorted(mins["per_action"].items())},
        "looks": mins["looks"],
        "runs": runs,
        "rates": per_account,
        "backup_rds_calls_per_copy": backup_rds_pipeline / base["completed_copies"] if base["completed_copies"] else None,
        "series": series,
        "throttling_counts": throttling.get("counts", []),
        "throttling_enabled": throttling.get("enabled"),
        "dlq": dlq,
    }


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


# --------------------------------------------------------------------------- markdown


def num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def per_step(run: dict) -> dict[str, tuple[float, float | None]]:
    """Per step: calls per backup, and the minimum (None: MINIMUM names no call of it)."""
    f = run["figures"]
    nb = max(f["backups"], 1)
    out: dict[str, list] = {}
    for key, v in f["calls"].items():
        step = key.split(" ")[0]
        out.setdefault(step, [0.0, None])[0] += v / nb
    for key, m in f["minimum"].items():
        step = key.split(" ")[0]
        row = out.setdefault(step, [0.0, None])
        row[1] = (row[1] or 0.0) + m
    # A step that made no call (restore, with restore tests off) is not measured here.
    return {s: (c, m) for s, (c, m) in out.items() if c > 0}


def slot_time_used(run: dict) -> float | None:
    """The slot-time the copies used over the copy phase (first copy's start to last copy's
    end), of all the DB instance slots': a slot idle a few seconds between two copies counts
    as idle for those seconds only, where utilization counts every moment one slot was idle."""
    f = run["figures"]
    if not f["copy_phase_s"]:
        return None
    return f["completed_copies"] * f["copy_s"] / (run["slots"]["rds_instance_copies"] * f["copy_phase_s"])


def markdown(runs: list[dict], args: dict) -> str:
    sizes = [r["n"] for r in runs]
    first = runs[0]
    slots = first["slots"]
    regions = args.get("regions") or []
    lines = [
        f"`snapferry local` (debug build; `--sources 3 --concurrency {args['concurrency']} --no-restore-tests`, API "
        f"throttling {'off' if args.get('no_throttling') else 'on, its default: RDS 300 burst / 12 a second per account and region, EC2 buckets'}) "
        f"copying a backlog of {first['expected']} backups: {args['databases']} MySQL instances in each of "
        f"{', '.join(SOURCES)} (each on its account's sharing key) x {args['rounds']} schedule rounds delivered at once, "
        f"into {BACKUP}'s {REGION}"
        + (f" and {', '.join(regions)}" if regions else " only (no extra region: the scope of `MINIMUM`)")
        + f". Before each run the backup account is seeded with N untagged manual "
        f"{'DB snapshots' if not args.get('seed_clusters') else 'DB and DB cluster snapshots'} (`POST /_snapferry/seed`), "
        f"N = {', '.join(f'{s:,}' for s in sizes)}, each on a fresh emulator state. Every snapshot and copy takes "
        f"{args['delay']:g} s; copy slots per region {slots['rds_instance_copies']} DB instance / "
        f"{slots['rds_cluster_copies']} Aurora / {slots['ebs_copies']} EBS"
        f"{' (AWS' + chr(39) + 's defaults)' if not args.get('slots') else ' (lowered)'}; manual snapshot quotas 100,000.",
        "",
        "**AWS calls per backup**, by step and IAM action (the request log's `principal`, the role `snapferry-<step>` "
        "each step signs as; a DynamoDB transaction counted as its items' actions and the event source mapping's "
        "receives and deletes left out, as `tests/tests/e2e/api_economy.rs` counts them; calls refused by throttling "
        "included). Minimum: `MINIMUM` of that test, per backup + per run x "
        f"{first['figures']['runs']} schedule runs / backups + per look x the step's looks (its own `sqs:SendMessage` "
        "per backup; the minimum column is the largest N's, the looks of each N under the table).",
        "",
        "| step | action | minimum | " + " | ".join(f"N = {s:,}" for s in sizes) + " |",
        "|---|---|---:|" + "---:|" * len(sizes),
    ]
    active = {k.split(" ")[0] for r in runs for k in r["figures"]["calls"]}
    keys = sorted(k for k in {k for r in runs for k in r["figures"]["calls"]} | {k for r in runs for k in r["figures"]["minimum"]}
                  if k.split(" ")[0] in active)
    for key in keys:
        step, action = key.split(" ", 1)
        m = runs[-1]["figures"]["minimum"].get(key)
        cells = []
        for r in runs:
            f = r["figures"]
            v = f["calls"].get(key, 0) / max(f["backups"], 1)
            t = f["throttled_calls"].get(key, 0)
            cells.append(f"{v:.2f}" + (f" ({t} thr.)" if t else ""))
        lines.append(f"| {step} | {action} | {num(m)} | " + " | ".join(cells) + " |")
    steps = sorted({s for r in runs for s in per_step(r)})
    for step in steps:
        cells = []
        for r in runs:
            c, m = per_step(r).get(step, (0.0, None))
            verdict = "" if m is None else (" ✓" if c <= m + 1.0 else " **> min + 1**")
            cells.append(f"**{c:.2f}**{verdict}")
        m = per_step(runs[-1]).get(step, (0.0, None))[1]
        lines.append(f"| **{step}** | **all** | **{num(m)}** | " + " | ".join(cells) + " |")
    lines += ["", "Looks per backup (a step's own re-check sends): " + "; ".join(
        f"N = {r['n']:,}: " + ", ".join(f"{s} {v:.2f}" for s, v in sorted(r["figures"]["looks"].items()) if v)
        for r in runs) + ". Steps `MINIMUM` does not list (e.g. the sources' `expire-snapshots`, which withdraws a "
        "share once the copy is announced) have no minimum here."]
    # Growth with N: a (step, action) whose calls per backup rise from the smallest N to the largest.
    if len(runs) > 1:
        lo, hi = runs[0]["figures"], runs[-1]["figures"]
        grew = []
        for key in keys:
            a = lo["calls"].get(key, 0) / max(lo["backups"], 1)
            b = hi["calls"].get(key, 0) / max(hi["backups"], 1)
            if b > a + 0.25 and b > a * 1.1:
                grew.append(f"`{key}` {a:.2f} → {b:.2f}")
        lines += ["", (f"**Calls per backup that grow with N** (N = {runs[0]['n']:,} → {runs[-1]['n']:,}, by more "
                       f"than 0.25 and 10 %): " + "; ".join(grew) + ".") if grew else
                  f"No step's calls per backup grow with N (none rises by more than 0.25 and 10 % from "
                  f"N = {runs[0]['n']:,} to N = {runs[-1]['n']:,})."]
    lines += [
        "",
        f"**RDS request rate per account** (us-east-1; every caller's RDS calls, refused ones included), over the "
        f"backlog: from the schedule events to the last copy's end. Peak: the most calls in any 1 s; mean: over that "
        f"span; 60 s: the most in any 60 s, / 60; slots full: the mean while every DB instance copy slot of the "
        f"backup account was busy (full copy throughput). Budget {RDS_BUDGET:g} a second, goal ≤ {GOAL_RATE:g} "
        f"(25 %) sustained in the backup account.",
        "",
        "| N | account | RDS calls | peak / s (1 s) | mean / s | max 60-s mean / s | slots full: s, mean / s | refused by throttling: RDS / EC2 |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        for acct in ACCOUNTS:
            x = r["figures"]["rates"][acct]
            role = "backup" if acct == BACKUP else "source"
            full = f"{x['full_s']:.0f} s, {num(x['while_full'])}" if acct == BACKUP and x.get("while_full") is not None else "-"
            lines.append(f"| {r['n']:,} | {acct} ({role}) | {x['calls']:,} | {x['peak_1s']} | {num(x['mean'])} | "
                         f"{num(x['max_60s'])} | {full} | {x['throttled']['rds']} / {x['throttled']['ec2']} |")
    lines += [
        "",
        "**The backlog**: wall time from the schedule events to the last copy's end, against the ideal "
        "(ceil(copies / slots) x the mean copy time, `bench/copy_slots.py`); utilization: the share of the time a "
        "backup waited for its home copy (from its `Snapshot Shared`) during which every slot was busy (the goal's "
        "figure); slot-time used: the copies' slot-seconds / (the slots x the copy phase, first copy's start to last "
        "copy's end), where a slot idle a few seconds between two copies costs only those seconds.",
        "",
        "| N | seeding s | backups: outcome | copies | mean copy s | wall s | ideal s | wall / ideal | copy phase s | "
        "utilization | slot-time used | copy calls refused (quota) | DLQ messages (throttling) | run s |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        f = r["figures"]
        dl = [d for d in f["dlq"] if "error" not in d]
        dlq_n = sum(d["messages"] for d in dl)
        dlq_t = sum(d["throttling"] for d in dl)
        ratio = f"{f['wall_s'] / f['ideal_s']:.2f}x" if f["ideal_s"] else "-"
        status = " **timed out**" if r["timed_out"] else (" **failed**" if r["failed"] else "")
        lines.append(
            f"| {r['n']:,} | {r['seeded']['seconds']:.2f} | "
            f"{', '.join(f'{v} {k}' for k, v in sorted(f['outcomes'].items()))}{status} | {f['completed_copies']} | "
            f"{f['copy_s']:.1f} | {f['wall_s']:.0f} | {f['ideal_s']:.0f} | {ratio} | {f['copy_phase_s']:.0f} | "
            f"{cs.pct(f['utilization'])} | {cs.pct(slot_time_used(r))} | {f['refused_copy_calls']} | {dlq_n} ({dlq_t}) | {r['run_s']:.0f} |")
    # Goals.
    last = runs[-1]
    over = [f"{s} {c:.2f} (minimum {m:.2f})" for s, (c, m) in sorted(per_step(last).items()) if m is not None and c > m + 1.0]
    grew_steps = []
    if len(runs) > 1:
        a, b = per_step(runs[0]), per_step(last)
        grew_steps = [f"{s} {a.get(s, (0.0, None))[0]:.2f} → {c:.2f}" for s, (c, m) in sorted(b.items())
                      if c > a.get(s, (0.0, None))[0] + 0.25 and m is not None]
    rate_bad = [f"N = {r['n']:,}: mean {num(r['figures']['rates'][BACKUP]['mean'])}, max 60-s "
                f"{num(r['figures']['rates'][BACKUP]['max_60s'])}" for r in runs
                if max(r["figures"]["rates"][BACKUP]["mean"], r["figures"]["rates"][BACKUP]["max_60s"] or 0.0) > GOAL_RATE]
    dlq_t = sum(d.get("throttling", 0) for r in runs for d in r["figures"]["dlq"])
    dlq_all = sum(d.get("messages", 0) for r in runs for d in r["figures"]["dlq"])
    util_bad = [f"N = {r['n']:,}: {cs.pct(r['figures']['utilization'])}" for r in runs
                if r["figures"]["utilization"] is None or r["figures"]["utilization"] < GOAL_UTILIZATION]
    util_all = ", ".join("N = {:,}: {}".format(r["n"], cs.pct(r["figures"]["utilization"])) for r in runs)
    met = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    lines += [
        "",
        "| goal (issue 26) | measured | |",
        "|---|---|---|",
        f"| calls per backup at N = {last['n']:,} within the minimum + 1 of each step | "
        f"{'; '.join(over) if over else 'every step within'} | {met(not over)} |",
        f"| the same as at N = {runs[0]['n']:,} (no step's calls grow with N) | "
        f"{'; '.join(grew_steps) if grew_steps else 'no growth past 0.25 a backup'} | {met(not grew_steps)} |",
        f"| the backup account's sustained RDS rate ≤ {GOAL_RATE:g} a second (mean over the backlog and most in "
        f"60 s) | {'; '.join(rate_bad) if rate_bad else 'within at every N'} | {met(not rate_bad)} |",
        f"| 0 messages dead-lettered for throttling | {dlq_t} for throttling, {dlq_all} in all DLQs | {met(dlq_t == 0)} |",
        f"| slot utilization ≥ {cs.pct(GOAL_UTILIZATION)} | "
        f"{util_all} | {met(not util_bad)} |",
    ]
    per_copy = [r["figures"]["backup_rds_calls_per_copy"] for r in runs if r["figures"]["backup_rds_calls_per_copy"]]
    if per_copy:
        cap = slots["rds_instance_copies"] / max(args["delay"], 1e-9)
        lines += ["", f"What the rates depend on: the backup account's RDS calls come with its copies (the copy step's "
                  f"{', '.join(f'{x:.2f}' for x in per_copy)} RDS calls per copy at N = "
                  f"{', '.join('{:,}'.format(r['n']) for r in runs)}), so its rate is about those calls x copies a second. Here a "
                  f"copy takes {args['delay']:g} s and {slots['rds_instance_copies']} run at once: at most "
                  f"{cap:.2f} copies a second, a pace AWS reaches only with {args['delay']:g}-second copies; with "
                  f"copies of minutes the same calls come that many times slower. The figures are this run's, not "
                  f"scaled."]
    notes = []
    for r in runs:
        f = r["figures"]
        if f["rejected_reasons"]:
            notes.append(f"N = {r['n']:,}: rejected: " + "; ".join(f"`{x}`" for x in f["rejected_reasons"][:3]))
        if f["lost"] or f["duplicated"]:
            notes.append(f"N = {r['n']:,}: **{len(f['lost'])} lost, {len(f['duplicated'])} duplicated**")
        reasons = sorted({x for d in f["dlq"] for x in d.get("reasons", [])})
        if reasons:
            notes.append(f"N = {r['n']:,}: dead letters in " + ", ".join(
                f"{d['account']}/{d['queue']} ({d['messages']})" for d in f["dlq"] if d.get("messages"))
                + ": " + "; ".join(f"`{x[:160]}`" for x in reasons[:4]))
        thr = {a: x["throttled_by_step"] for a, x in f["rates"].items() if x["throttled_by_step"]}
        if thr:
            notes.append(f"N = {r['n']:,}: throttled calls by caller: " + "; ".join(
                f"{a}: " + ", ".join(f"{s} {k}" for s, k in sorted(v.items())) for a, v in thr.items()))
    if notes:
        lines += [""] + [f"- {x}" for x in notes]
    lines += ["", "Run: " + "; ".join(
        f"N = {r['n']:,} {r['run_s']:.0f} s (pipeline start {r['start_s']:.0f} s, settle {r['settle_s']:.0f} s; load "
        f"{r['load'][0]} → {r['load'][1]})" for r in runs) + "."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the plot


def plot(runs: list[dict], args: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2))
    sizes = [r["n"] for r in runs]
    steps = sorted({s for r in runs for s in per_step(r)})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, step in enumerate(steps):
        colour = colours[i % len(colours)]
        ys = [per_step(r).get(step, (0.0, None))[0] for r in runs]
        # Markers of different shapes and sizes: steps with the same figures stay visible.
        left.plot(sizes, ys, marker="osD^v"[i % 5], markersize=9 - 1.5 * (i % 4), color=colour, label=step)
        mins = [per_step(r).get(step, (0.0, None))[1] for r in runs]
        if all(m is not None for m in mins):
            left.plot(sizes, [m + 1.0 for m in mins], linestyle=":", color=colour, linewidth=1)
    left.set_xscale("log")
    left.set_xticks(sizes)
    left.set_xticklabels([f"{s:,}" for s in sizes])
    left.set_xlabel("manual snapshots in the backup account (N)")
    left.set_ylabel("AWS calls per backup")
    left.set_title("Calls per backup by step (dotted: minimum + 1)")
    left.set_ylim(bottom=0)
    left.grid(True, alpha=0.3)
    left.legend(fontsize=8)
    for i, r in enumerate(runs):
        series = r["figures"]["series"]
        window = 10
        smooth = [sum(series[max(0, j - window + 1): j + 1]) / min(window, j + 1) for j in range(len(series))]
        right.plot(range(len(series)), series, color=colours[i % len(colours)], alpha=0.18, linewidth=0.7)
        right.plot(range(len(smooth)), smooth, color=colours[i % len(colours)], label=f"N = {r['n']:,} (10-s mean)")
    right.axhline(RDS_BUDGET, color="red", linestyle="--", linewidth=1, label=f"budget {RDS_BUDGET:g}/s")
    right.axhline(GOAL_RATE, color="darkorange", linestyle="--", linewidth=1, label=f"goal {GOAL_RATE:g}/s (25 %)")
    right.set_xlabel("seconds since the schedule events")
    right.set_ylabel("RDS requests per second")
    right.set_title(f"Backup account {BACKUP}: RDS requests per second (faint: each 1 s)")
    right.set_ylim(bottom=0)
    right.grid(True, alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle(f"snapferry local: {runs[0]['expected']} backups from 3 sources, {args['delay']:g}-s copies, "
                 f"{runs[0]['slots']['rds_instance_copies']} slots, concurrency {args['concurrency']}, "
                 f"throttling {'off' if args.get('no_throttling') else 'on'}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--endpoint", help="the emulator, http://127.0.0.1:PORT (reset for each N)")
    p.add_argument("--snapferry", help="the CLI, target/debug/snapferry")
    p.add_argument("--sizes", default="100,1000,10000", help="manual snapshots seeded in the backup account (default 100,1000,10000)")
    p.add_argument("--databases", type=int, default=50, help="MySQL instances per source account (default 50)")
    p.add_argument("--rounds", type=int, default=2, help="schedule rounds delivered at once to each source (default 2)")
    p.add_argument("--concurrency", type=int, default=5, help="snapferry local --concurrency (default 5)")
    p.add_argument("--delay", type=float, default=30.0, help="seconds each snapshot and copy takes (default 30)")
    p.add_argument("--slots", type=int, help="copy slots of every kind per region (default: AWS's 20 / 5 / 20)")
    p.add_argument("--regions", default="", help="extra regions the backup account copies to (default: none)")
    p.add_argument("--seed-clusters", type=float, default=0.0,
                   help="share of the seeded snapshots made DB cluster snapshots (default 0: all DB snapshots)")
    p.add_argument("--no-throttling", action="store_true", help="snapferry local --no-throttling")
    p.add_argument("--timeout", type=int, default=2400, help="seconds to wait for every outcome, per N (default 2400)")
    p.add_argument("--settle", type=int, default=120, help="seconds at most for the step queues to empty afterwards")
    p.add_argument("--markdown", metavar="FILE")
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--png", metavar="FILE")
    p.add_argument("--from-json", metavar="FILE", help="redraw the markdown and plot from an earlier --json; runs nothing")
    args = p.parse_args(argv)
    if args.from_json:
        with open(args.from_json, encoding="utf-8") as fh:
            saved = json.load(fh)
        runs, settings = saved["runs"], saved["args"]
    else:
        if not args.endpoint or not args.snapferry:
            p.error("--endpoint and --snapferry are needed (or --from-json)")
        args.regions = [r for r in args.regions.split(",") if r]
        sizes = [int(s) for s in args.sizes.split(",") if s]
        check_cli(args.snapferry)
        read_minimum()  # fail before the runs, not after
        config_before = cs.control(args.endpoint, "GET", "/config")
        settings = {k: v for k, v in vars(args).items() if k not in ("markdown", "json", "png", "from_json")}
        runs = []
        try:
            for n in sizes:
                runs.append(run_size(args, n))
                if args.json:  # each N as it ends: a later failure keeps the earlier figures
                    with open(args.json, "w", encoding="utf-8") as out:
                        json.dump({"args": settings, "runs": runs}, out, indent=1, default=str)
        finally:
            cs.control(args.endpoint, "POST", "/reset")
            cs.control(args.endpoint, "POST", "/config", config_before)
    text = markdown(runs, settings)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as out:
            out.write(text)
    if args.png:
        plot(runs, settings, args.png)
    print(text, end="")
    bad = any(r["failed"] or r["timed_out"] or r["figures"]["lost"] or r["figures"]["duplicated"] for r in runs)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
