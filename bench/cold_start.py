#!/usr/bin/env python3
"""snapferry's cold-start and memory benchmark (issue 12, item 1), on the local emulator.

One step, copy-shared-snapshot, started the way Lambda starts a function (see
lambda_init.py) and served one event that makes it do one real AWS call: an SQS batch of one
"Snapshot Shared" pipeline event about a DB snapshot the source account really shared (set up
here with boto3). The step describes the shared snapshot (DescribeDBSnapshots with the ARN and
IncludeShared), finds it owned by the allowlisted sender, and stops there because its name
does not match IDENTIFIER_REGEX: every run makes the same one call and leaves nothing behind,
so runs can repeat against the same emulator.

Contenders, alternating run by run (lambda_init.run_alternating):
  rust           the release snapferry-lambda binary, with ACCOUNT_ID set as the stacks set it
  rust, STS      the same binary without ACCOUNT_ID: it asks STS GetCallerIdentity at init,
                 as every cold start did before ACCOUNT_ID (and as a run outside the stacks does)
  python+boto3   python_handler.py: the same first step in Python with boto3

Each contender signs as its own assumed role, so the emulator's request log
(GET /_snapferry/requests, which names the role in `principal`) tells whose calls are whose.
After the timed runs, one probe run per contender reads that log at the moment the first
/next arrives (before answering it): the calls made before it are the calls made during init.

Writes the figures as JSON (--json) and the RESULTS.md section as markdown (--markdown).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import os
import statistics
import sys
import time
import urllib.request
import uuid

import boto3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lambda_init as li  # noqa: E402

SOURCE = "111111111111"
BACKUP = "222222222222"
REGION = "us-east-1"
STEP = "copy-shared-snapshot"
QUEUE = "snapferry-copy-shared-snapshot"  # shared/routing.json
FUNCTION = "snapferry-copy-shared-snapshot"
MEMORY_MB = 256  # infra/config/example.json lambdaMemoryMb
DB = "staging-orders"
SNAPSHOT = "staging-orders-bench"
# The snapshot is not "prod-...": the step describes it, then filters it out (one call).
IDENTIFIER_REGEX = "^prod-"
INIT_GOAL = 40  # issue 12: Rust init at most 1/40 of Python's


# --------------------------------------------------------------------------- emulator set-up


def credentials(endpoint: str, account: str, role: str) -> dict[str, str]:
    """Session credentials of `role` in `account` (moto maps the session's key to the account)."""
    sts = boto3.client("sts", endpoint_url=endpoint, region_name=REGION,
                       aws_access_key_id="bench", aws_secret_access_key="bench")
    c = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/{role}", RoleSessionName=role)["Credentials"]
    return {"AWS_ACCESS_KEY_ID": c["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": c["SecretAccessKey"],
            "AWS_SESSION_TOKEN": c["SessionToken"]}


def client(endpoint: str, service: str, creds: dict[str, str]):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
                        aws_session_token=creds["AWS_SESSION_TOKEN"])


@dataclasses.dataclass
class Scenario:
    snapshot_arn: str
    sharing_key: str
    target_key: str
    queue_url: str
    dlq_url: str
    queue_arn: str


def set_up(endpoint: str) -> Scenario:
    """The source account shares an encrypted DB snapshot with the backup account, which has
    its key and the step's queues."""
    src = credentials(endpoint, SOURCE, "snapferry-bench-setup")
    sharing_key = client(endpoint, "kms", src).create_key(Description="bench sharing key")["KeyMetadata"]["Arn"]
    rds = client(endpoint, "rds", src)
    rds.create_db_instance(DBInstanceIdentifier=DB, Engine="postgres", DBInstanceClass="db.t4g.micro",
                           AllocatedStorage=20, MasterUsername="bench", MasterUserPassword="bench-bench-1",
                           StorageEncrypted=True, KmsKeyId=sharing_key)
    arn = rds.create_db_snapshot(DBSnapshotIdentifier=SNAPSHOT, DBInstanceIdentifier=DB)["DBSnapshot"]["DBSnapshotArn"]
    deadline = time.monotonic() + 30
    while rds.describe_db_snapshots(DBSnapshotIdentifier=SNAPSHOT)["DBSnapshots"][0]["Status"] != "available":
        if time.monotonic() > deadline:
            raise RuntimeError(f"{SNAPSHOT} not available within 30 s")
        time.sleep(0.1)
    rds.modify_db_snapshot_attribute(DBSnapshotIdentifier=SNAPSHOT, AttributeName="restore", ValuesToAdd=[BACKUP])

    bak = credentials(endpoint, BACKUP, "snapferry-bench-setup")
    target_key = client(endpoint, "kms", bak).create_key(Description="bench backup key")["KeyMetadata"]["Arn"]
    sqs = client(endpoint, "sqs", bak)
    dlq_url = sqs.create_queue(QueueName=f"{QUEUE}-dlq")["QueueUrl"]
    queue_url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    client(endpoint, "events", bak).create_event_bus(Name="snapferry")
    seen = client(endpoint, "rds", bak).describe_db_snapshots(DBSnapshotIdentifier=arn, IncludeShared=True)
    if not seen["DBSnapshots"]:
        raise RuntimeError(f"the backup account does not see {arn}")
    return Scenario(arn, sharing_key, target_key, queue_url, dlq_url, queue_arn)


def sqs_event(s: Scenario) -> bytes:
    """An SQS batch of one "Snapshot Shared" event, as Lambda's SQS event source delivers it."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ref = {"kind": "db-instance", "arn": s.snapshot_arn, "id": SNAPSHOT, "account": SOURCE, "region": REGION,
           "resource_id": DB, "encrypted": True, "kms_key_id": s.sharing_key}
    detail = {"version": 1, "correlation_id": str(uuid.uuid4()), "emitted_at": now.isoformat(),
              "snapshot": ref, "origin": ref, "step": "shared", "target_account": BACKUP}
    envelope = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Snapshot Shared", "source": "snapferry",
                "account": SOURCE, "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": REGION,
                "resources": [s.snapshot_arn], "detail": detail}
    body = json.dumps(envelope)
    sent = str(int(now.timestamp() * 1000))
    record = {"messageId": str(uuid.uuid4()), "receiptHandle": "bench-receipt-handle", "body": body,
              "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": sent, "SenderId": "AIDABENCH",
                             "ApproximateFirstReceiveTimestamp": sent},
              "messageAttributes": {}, "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
              "eventSource": "aws:sqs", "eventSourceARN": s.queue_arn, "awsRegion": REGION}
    return json.dumps({"Records": [record]}).encode()


def handled(body: bytes) -> str | None:
    """The one record succeeded: an empty batchItemFailures."""
    try:
        failures = json.loads(body).get("batchItemFailures")
    except (ValueError, AttributeError):
        return "not a JSON object"
    return None if failures == [] else f"batchItemFailures {failures}"


# --------------------------------------------------------------------------- request log


def requests_since(endpoint: str, seq: int) -> list[dict]:
    with urllib.request.urlopen(f"{endpoint}/_snapferry/requests?since={seq}", timeout=10) as r:
        return [e for e in json.load(r)["requests"] if e["seq"] > seq]


def last_seq(endpoint: str) -> int:
    return max((e["seq"] for e in requests_since(endpoint, 0)), default=0)


# --------------------------------------------------------------------------- contenders


@dataclasses.dataclass
class Entry:
    contender: li.Contender
    role: str
    what: str


def contenders(endpoint: str, rust_binary: str, python: str, bench_dir: str) -> list[Entry]:
    def env(role: str, account_id: bool) -> tuple[tuple[str, str], ...]:
        pairs = list(credentials(endpoint, BACKUP, role).items())
        if account_id:
            pairs.append(("ACCOUNT_ID", BACKUP))
        return tuple(pairs)

    rust_dir = os.path.dirname(os.path.abspath(rust_binary))
    return [
        Entry(li.Contender("rust", (rust_binary,), env("snapferry-bench-rust", True), cwd=rust_dir),
              "snapferry-bench-rust", "release `snapferry-lambda`, `ACCOUNT_ID` set as the stacks set it"),
        Entry(li.Contender("rust, STS", (rust_binary,), env("snapferry-bench-rust-sts", False), cwd=rust_dir),
              "snapferry-bench-rust-sts", "the same binary without `ACCOUNT_ID`: STS `GetCallerIdentity` at init"),
        Entry(li.Contender("python+boto3", (python, os.path.join(bench_dir, "python_handler.py")),
                           env("snapferry-bench-python", True), cwd=bench_dir),
              "snapferry-bench-python", "`bench/python_handler.py`: the same first step, Python + boto3"),
    ]


def common_env(endpoint: str, s: Scenario) -> list[tuple[str, str]]:
    """The step's environment as the stacks set it (shared/environment.json), on the emulator."""
    return [
        ("_HANDLER", STEP),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("AWS_ENDPOINT_URL", endpoint),
        ("QUEUE_URL", s.queue_url),
        ("DLQ_URL", s.dlq_url),
        ("PIPELINE_BUS", "snapferry"),
        ("SOURCE_ACCOUNTS", SOURCE),
        ("TARGET_KMS_KEY_ARN", s.target_key),
        ("IDENTIFIER_REGEX", IDENTIFIER_REGEX),
    ]


def probe(entry: Entry, endpoint: str, run_kwargs: dict) -> dict:
    """One run that reads the request log when the first /next arrives: the AWS calls made
    before it (init) and after it (the event), by this contender's role."""
    before_next: list[dict] = []
    start = last_seq(endpoint)

    def at_first_next() -> None:
        before_next.extend(requests_since(endpoint, start))

    result = li.run_once(entry.contender, on_first_next=at_first_next, **run_kwargs)
    everything = requests_since(endpoint, start)
    mine = lambda es: [f"{e['service']}:{e['operation']}" for e in es if e.get("principal") == entry.role]  # noqa: E731
    init_seqs = {e["seq"] for e in before_next}
    return {
        "ok": result.ok,
        "failure": result.failure,
        "init_calls": mine(before_next),
        "event_calls": mine([e for e in everything if e["seq"] not in init_seqs]),
    }


# --------------------------------------------------------------------------- report


def stats(values: list[float]) -> dict | None:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def cell(s: dict | None, fmt: str) -> str:
    if s is None:
        return "-"
    return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}–{fmt.format(s['max'])})"


def summarize(entries: list[Entry], results: list[li.RunResult], probes: dict[str, dict]) -> dict:
    out = {}
    for e in entries:
        mine = [r for r in results if r.label == e.contender.label]
        ok = [r for r in mine if r.ok]
        out[e.contender.label] = {
            "what": e.what,
            "runs": len(mine),
            "ok": len(ok),
            "init_ms": stats([r.init_ms for r in ok]),
            "first_event_ms": stats([r.first_event_ms for r in ok]),
            "peak_rss_mb": stats([r.peak_rss_mb for r in ok if r.peak_rss_mb is not None]),
            "probe": probes.get(e.contender.label),
            "failures": [r.failure for r in mine if not r.ok],
        }
    return out


def ratio(summary: dict, a: str, b: str, key: str) -> float | None:
    sa, sb = summary[a][key], summary[b][key]
    if not sa or not sb or sb["median"] == 0:
        return None
    return sa["median"] / sb["median"]


def markdown(summary: dict, runs: int, warmup: int, load: tuple[float, float]) -> str:
    lines = [
        "| contender | ok/runs | init ms | first event ms | peak RSS MB | AWS calls during init | during the event |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for label, s in summary.items():
        p = s["probe"]
        if p is None or not p["ok"]:
            init_calls = event_calls = "probe run failed"
        else:
            init_calls = ", ".join(p["init_calls"]) or "none"
            event_calls = ", ".join(p["event_calls"]) or "none"
        lines.append(f"| {label} | {s['ok']}/{s['runs']} | {cell(s['init_ms'], '{:.1f}')} | "
                     f"{cell(s['first_event_ms'], '{:.1f}')} | {cell(s['peak_rss_mb'], '{:.1f}')} | "
                     f"{init_calls} | {event_calls} |")
    lines.append("")
    lines.append("Medians, with min–max in brackets; times from process start. AWS calls: from the emulator's "
                 "request log in one more run per contender, read when the first /next arrived.")
    lines.append("")
    init = ratio(summary, "python+boto3", "rust", "init_ms")
    event = ratio(summary, "python+boto3", "rust", "first_event_ms")
    rss = ratio(summary, "python+boto3", "rust", "peak_rss_mb")
    sts = (summary["rust, STS"]["init_ms"] or {}).get("median", 0) - (summary["rust"]["init_ms"] or {}).get("median", 0)
    if init is not None:
        verdict = "met" if init >= INIT_GOAL else "**not met**"
        lines.append(f"- Python / Rust, medians: init **{init:.0f}x**, first event {event:.0f}x, peak RSS {rss:.1f}x. "
                     f"Goal init ≥ {INIT_GOAL}x: {verdict}.")
        fastest = summary["python+boto3"]["init_ms"]["min"] / summary["rust"]["init_ms"]["min"]
        lines.append(f"- Python / Rust, fastest runs (the least disturbed by other work on the machine): init {fastest:.0f}x.")
    rust_probe = summary["rust"]["probe"]
    if rust_probe is not None and rust_probe["ok"]:
        verdict = "met" if not rust_probe["init_calls"] else "**not met**"
        lines.append(f"- Goal no network call during init: {verdict} (Rust, `ACCOUNT_ID` set: "
                     f"{len(rust_probe['init_calls'])} AWS calls before the first /next; during the event: "
                     f"{', '.join(rust_probe['event_calls']) or 'none'}).")
    lines.append(f"- `ACCOUNT_ID` saves the init's STS call: {sts:.1f} ms (median init without it minus with it) "
                 "against the emulator on localhost; in AWS it is a TLS connection and a round trip to STS.")
    lines.append(f"- {runs} timed runs per contender after {warmup} discarded warm-up round(s), alternating "
                 f"(round r starts with contender r mod 3); load average {load[0]:.2f} before, {load[1]:.2f} after.")
    for label, s in summary.items():
        lines.append(f"- {label}: {s['what']}.")
        for f in s["failures"]:
            lines.append(f"  - failed run: {f.splitlines()[0] if f else f}")
        p = s["probe"]
        if p is not None and not p["ok"]:
            lines.append(f"  - probe run failed: {(p['failure'] or '').splitlines()[0]}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--endpoint", required=True, help="the emulator, http://127.0.0.1:PORT")
    p.add_argument("--rust-binary", required=True, help="target/release/snapferry-lambda")
    p.add_argument("--python", default=sys.executable, help="the Python that runs python_handler.py (with boto3)")
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--markdown", metavar="FILE")
    p.add_argument("--log-dir", metavar="DIR", help="keep each run's output there")
    args = p.parse_args(argv)

    bench_dir = os.path.dirname(os.path.abspath(__file__))
    scenario = set_up(args.endpoint)
    entries = contenders(args.endpoint, args.rust_binary, args.python, bench_dir)
    run_kwargs = dict(common_env=common_env(args.endpoint, scenario), function_name=FUNCTION, region=REGION,
                      account=BACKUP, memory_mb=MEMORY_MB, event=sqs_event(scenario), timeout_s=60.0,
                      log_dir=args.log_dir, check=handled)

    def progress(r: li.RunResult) -> None:
        tag = "warm-up" if r.round < 0 else f"run {r.round + 1}/{args.runs}"
        if r.ok:
            print(f"  {tag} {r.label}: init {r.init_ms:.1f} ms, first event {r.first_event_ms:.1f} ms, "
                  f"peak RSS {r.peak_rss_mb:.1f} MB", file=sys.stderr, flush=True)
        else:
            print(f"  {tag} {r.label}: FAILED: {r.failure}", file=sys.stderr, flush=True)

    load_before = os.getloadavg()[0]
    results = li.run_alternating([e.contender for e in entries], args.runs, warmup=args.warmup,
                                 progress=progress, **run_kwargs)
    load_after = os.getloadavg()[0]
    probes = {e.contender.label: probe(e, args.endpoint, run_kwargs) for e in entries}
    summary = summarize(entries, results, probes)
    md = markdown(summary, args.runs, args.warmup, (load_before, load_after))
    print(md)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(md)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "runs": [dataclasses.asdict(r) for r in results],
                       "load_average": [load_before, load_after]}, f, indent=2)
    failed = any(s["ok"] < s["runs"] for s in summary.values()) or any(not p["ok"] for p in probes.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
