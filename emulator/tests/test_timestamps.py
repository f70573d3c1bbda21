"""The request log and the event log carry wall-clock times (``at``), which
bench/latency.py subtracts to measure event-to-action latency."""

from __future__ import annotations

import time

from conftest import TEST_DELAY, create_db, wait_db_snapshot


def test_requests_and_events_carry_increasing_wall_clock_times(emu, accounts):
    (acct,) = accounts(1)
    before = time.time()
    create_db(emu, acct)
    rds = emu.client("rds", acct)
    rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="s1")
    wait_db_snapshot(emu, acct, "s1")
    rds.describe_db_snapshots(DBSnapshotIdentifier="s1")
    after = time.time()

    calls = emu.requests_for(acct)
    ops = [r["operation"] for r in calls]
    assert ops[:2] == ["CreateDBInstance", "CreateDBSnapshot"] and ops[-1] == "DescribeDBSnapshots"
    times = [r["at"] for r in calls]
    assert all(isinstance(t, float) and before <= t <= after for t in times), times
    # One client, one call at a time: each arrives after the one before.
    assert times == sorted(times) and times[0] < times[-1]

    (created,) = [e for e in emu.events_for(acct) if e["event_id_or_name"] == "RDS-EVENT-0042"]
    create_call = calls[1]["at"]
    # Emitted when the snapshot becomes available: at least the emulator's delay after the call.
    assert create_call + TEST_DELAY * 0.9 <= created["at"] <= after
    assert created["at"] <= calls[-1]["at"]


def test_events_are_timed_in_the_order_they_are_emitted(emu, accounts):
    (acct,) = accounts(1)
    before = time.time()
    rds = emu.client("rds", acct)
    create_db(emu, acct)
    for snap in ("s1", "s2"):
        rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier=snap)
        wait_db_snapshot(emu, acct, snap)
    events = [e for e in emu.events_for(acct) if e["event_id_or_name"] == "RDS-EVENT-0042"]
    assert [e["event"]["detail"]["SourceIdentifier"] for e in events] == ["s1", "s2"]
    assert before < events[0]["at"] < events[1]["at"] <= time.time()
