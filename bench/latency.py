#!/usr/bin/env python3
"""snapferry's event-to-action latency on the local host (issue 12, item 4).

Runs `snapferry demo` (three databases and three EBS volumes backed up from 111111111111
into 222222222222, each step run by the local host with Lambda's SQS semantics) --runs
times against an emulator, resetting it before each run, and measures two hops per backup
from the emulator's own logs, both stamped with its wall clock (`at`, Unix seconds):

  created -> share   from the "snapshot created" event the emulator emits (RDS-EVENT-0042
                     for a DB snapshot, RDS-EVENT-0075 for a cluster snapshot, EBS
                     createSnapshot, or createSnapshots for each member of a set) to the share
                     step's first action on that snapshot: the share call
                     (ModifyDBSnapshotAttribute, ModifyDBClusterSnapshotAttribute,
                     ModifySnapshotAttribute) or, for a snapshot on an AWS-managed key, the
                     re-encrypting copy (CopyDBSnapshot, CopyDBClusterSnapshot, CopySnapshot)
                     that must come before it
  shared -> copy     from the share step's `Snapshot Shared` PutEvents to the backup
                     account's copy call (CopyDBSnapshot, CopyDBClusterSnapshot,
                     CopySnapshot by copy-shared-snapshot) in the same region

The request log names the role that signed each call (`principal`: snapferry-<step>) but not
the snapshot it was about, so events and calls are paired in time order (match()); how and
why that is sound here: bench/README.md.

Prints the RESULTS.md section as markdown (and writes it to --markdown); --json keeps every
sample. Exit status 1 when a demo run failed or a hop lacked its action.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import urllib.request

SOURCE = "111111111111"
BACKUP = "222222222222"
SHARE_ROLE = "snapferry-share-snapshot"
COPY_ROLE = "snapferry-copy-shared-snapshot"
KINDS = ("DB instance", "DB cluster", "EBS")
CREATED = {"RDS-EVENT-0042": "DB instance", "RDS-EVENT-0075": "DB cluster", "createSnapshot": "EBS", "createSnapshots": "EBS"}
COPIES = {"CopyDBSnapshot": "DB instance", "CopyDBClusterSnapshot": "DB cluster", "CopySnapshot": "EBS"}
SHARES = {"ModifyDBSnapshotAttribute": "DB instance", "ModifyDBClusterSnapshotAttribute": "DB cluster",
          "ModifySnapshotAttribute": "EBS"}
POLL_MINUTES = (10, 30)  # the existing tools' polling interval (issue 12)


def control(endpoint: str, method: str, path: str):
    req = urllib.request.Request(f"{endpoint}/_snapferry{path}", method=method)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def created(events: list[dict]) -> list[dict]:
    """Each snapshot the source account's "created" events announce: {at, kind, region}."""
    found = []
    for e in events:
        kind = CREATED.get(e["event_id_or_name"])
        if e["dropped"] or e["account"] != SOURCE or kind is None:
            continue
        detail = e["event"]["detail"]
        if kind == "EBS" and detail.get("result") != "succeeded":
            continue  # a failed snapshot is reported, not shared
        # A createSnapshots event announces the whole set: each member is one backup.
        for _ in detail.get("snapshots") or [None]:
            found.append({"at": e["at"], "kind": kind, "region": e["region"]})
    return found


def calls(requests: list[dict], account: str, role: str, operations: dict[str, str]) -> list[dict]:
    return [{"at": r["at"], "kind": operations[r["operation"]], "region": r["region"], "operation": r["operation"]}
            for r in requests
            if r["account"] == account and r["principal"] == role and r["operation"] in operations
            and r["error_code"] is None]


def match(starts: list[dict], actions: list[dict]) -> tuple[list[tuple[dict, dict]], int]:
    """Pairs each start, earliest first, with the earliest action of its kind and region
    after it that no earlier start took. Returns the pairs and how many found none."""
    pairs, missing, free = [], 0, sorted(actions, key=lambda a: a["at"])
    for start in sorted(starts, key=lambda s: s["at"]):
        action = next((a for a in free if a["kind"] == start["kind"] and a["region"] == start["region"]
                       and a["at"] >= start["at"]), None)
        if action is None:
            missing += 1
            continue
        free.remove(action)
        pairs.append((start, action))
    return pairs, missing


def announcements(requests: list[dict]) -> list[dict]:
    """The share step's `Snapshot Shared` PutEvents, with the kind of snapshot announced.

    The step announces just before its share call, so each share call is paired with the
    latest PutEvents before it; a PutEvents that announced something else (a rejection) is
    followed by no share call and is left out."""
    puts = [r for r in requests if r["account"] == SOURCE and r["principal"] == SHARE_ROLE
            and r["operation"] == "PutEvents" and r["error_code"] is None]
    found = []
    for share in sorted(calls(requests, SOURCE, SHARE_ROLE, SHARES), key=lambda c: c["at"]):
        before = [p for p in puts if p["region"] == share["region"] and p["at"] <= share["at"]]
        if before:
            put = max(before, key=lambda p: p["at"])
            puts.remove(put)
            found.append({"at": put["at"], "kind": share["kind"], "region": share["region"]})
    return found


def measure(requests: list[dict], events: list[dict]) -> dict:
    """Both hops' samples in one run's logs, and how many starts found no action."""
    hops, missing = {}, {}
    for hop, starts, actions in (
        ("created", created(events), calls(requests, SOURCE, SHARE_ROLE, {**COPIES, **SHARES})),
        ("shared", announcements(requests), calls(requests, BACKUP, COPY_ROLE, COPIES)),
    ):
        pairs, missing[hop] = match(starts, actions)
        hops[hop] = [{"kind": s["kind"], "ms": (a["at"] - s["at"]) * 1000, "action": a["operation"]} for s, a in pairs]
    return {"hops": hops, "missing": missing}


def run_demo(endpoint: str, snapferry: str, timeout: int) -> tuple[bool, float, str]:
    control(endpoint, "POST", "/reset")  # a clean slate: each run backs up the same six resources
    start = time.monotonic()
    try:
        done = subprocess.run([snapferry, "demo", "--endpoint", endpoint], capture_output=True, text=True,
                              timeout=timeout)
        ok, output = done.returncode == 0, done.stdout + done.stderr
    except subprocess.TimeoutExpired:
        ok, output = False, f"timed out after {timeout} s"
    return ok, time.monotonic() - start, output


def row(label: str, values: list[float]) -> str:
    if not values:
        return f"| {label} | 0 | - | - | - |"
    return f"| {label} | {len(values)} | {statistics.median(values):.0f} | {min(values):.0f} | {max(values):.0f} |"


def markdown(samples: dict[str, list[dict]], runs: int, ok_runs: int, walls: list[float], delay: float,
             load: tuple[str, str], missing: dict[str, int]) -> str:
    lines = [
        f"`snapferry demo` {runs} times ({ok_runs} completed; {statistics.median(walls):.1f} s median each) on the "
        f"emulator (delay {delay:g} s), each run backing up 3 databases and 3 EBS volumes. Milliseconds, "
        "per backup, between the emulator's wall-clock stamps of the event and of the call's arrival.",
        "",
        "| hop | samples | median ms | min ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    titles = {"created": "snapshot created → share step's first action (share call, or the re-encrypting copy)",
              "shared": "`Snapshot Shared` PutEvents → backup account's copy call"}
    for hop, title in titles.items():
        lines.append(row(f"**{title}**", [s["ms"] for s in samples[hop]]))
        for kind in KINDS:
            lines.append(row(f"&nbsp;&nbsp;{kind}", [s["ms"] for s in samples[hop] if s["kind"] == kind]))
    medians = [statistics.median([s["ms"] for s in samples[h]]) for h in titles if samples[h]]
    if medians:
        worst = max(medians)
        lo, hi = POLL_MINUTES
        lines += ["", f"Against polling: the existing tools poll every {lo} to {hi} minutes, so a new snapshot waits "
                  f"{lo // 2} to {hi // 2} minutes on average (half an interval) and up to {lo} to {hi} before anything "
                  f"acts on it, at each hop. Here the slower hop's median is {worst:.0f} ms: "
                  f"{lo / 2 * 60000 / worst:,.0f} to {hi / 2 * 60000 / worst:,.0f} times shorter than a poller's average wait."]
    if any(missing.values()):
        lines += ["", f"**Unmatched**: {missing['created']} created events and {missing['shared']} announcements "
                  "found no action of their kind after them (see bench/README.md, item 4)."]
    lines += ["", f"Load average before and after the runs: {load[0]} / {load[1]} (1, 5, 15 min)."]
    return "\n".join(lines) + "\n"


def loadavg() -> str:
    with open("/proc/loadavg", encoding="ascii") as f:
        return " ".join(f.read().split()[:3])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--endpoint", required=True, help="the emulator, http://127.0.0.1:PORT (reset before each run)")
    p.add_argument("--snapferry", required=True, help="the CLI, target/debug/snapferry")
    p.add_argument("--runs", type=int, default=3, help="demo runs (default 3)")
    p.add_argument("--timeout", type=int, default=300, help="seconds one demo run may take (default 300)")
    p.add_argument("--markdown", metavar="FILE")
    p.add_argument("--json", metavar="FILE", help="every sample, per run")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")

    delay = control(args.endpoint, "GET", "/config")["delay_seconds"]
    samples: dict[str, list[dict]] = {"created": [], "shared": []}
    missing = {"created": 0, "shared": 0}
    per_run, walls, ok_runs = [], [], 0
    load_before = loadavg()
    for n in range(1, args.runs + 1):
        ok, wall, output = run_demo(args.endpoint, args.snapferry, args.timeout)
        walls.append(wall)
        if not ok:
            print(f"latency: demo run {n} failed:\n{output[-3000:]}", file=sys.stderr)
        ok_runs += ok
        got = measure(control(args.endpoint, "GET", "/requests")["requests"], control(args.endpoint, "GET", "/events"))
        for hop in samples:
            samples[hop] += got["hops"][hop]
            missing[hop] += got["missing"][hop]
        per_run.append({"run": n, "ok": ok, "wall_seconds": wall, **got})
        print(f"latency: run {n}: {'ok' if ok else 'FAILED'} in {wall:.1f} s, "
              + ", ".join(f"{hop} {len(got['hops'][hop])} samples" for hop in samples), file=sys.stderr)
    text = markdown(samples, args.runs, ok_runs, walls, delay, (load_before, loadavg()), missing)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"delay_seconds": delay, "runs": per_run}, f, indent=2)
    print(text, end="")
    return 0 if ok_runs == args.runs and not any(missing.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
