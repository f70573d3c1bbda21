"""Behaviour 4 (client events): envelope 'account', cross-account buses and policies."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from conftest import REGION, error_code, make_queue_for_rule, wait_for

PATTERN = {"source": ["snapferry.pipeline"]}


def put(emu, account, bus=None, detail=None):
    entry = {"Source": "snapferry.pipeline", "DetailType": "Snapshot Shared", "Detail": json.dumps(detail or {"n": 1}), "Resources": ["arn:x"]}
    if bus:
        entry["EventBusName"] = bus
    return emu.client("events", account).put_events(Entries=[entry])


def allow(emu, owner, sender, bus="default"):
    emu.client("events", owner).put_permission(EventBusName=bus, Action="events:PutEvents", Principal=sender, StatementId=f"allow-{sender}")


def test_put_events_envelope_has_account(emu, accounts):
    (acct,) = accounts(1)
    drain = make_queue_for_rule(emu, acct, PATTERN)
    out = put(emu, acct)
    assert out["FailedEntryCount"] == 0
    msg = wait_for(lambda: drain(), what="delivery")[0]
    assert msg["account"] == acct and msg["region"] == REGION
    assert msg["id"] == out["Entries"][0]["EventId"]
    assert msg["detail"] == {"n": 1} and msg["resources"] == ["arn:x"] and msg["version"] == "0"


def test_rule_forwarding_to_other_account_keeps_envelope_when_allowed(emu, accounts):
    src, dst = accounts(2)
    drain = make_queue_for_rule(emu, dst, PATTERN)
    events_src = emu.client("events", src)
    events_src.put_rule(Name="fwd", EventPattern=json.dumps(PATTERN))
    events_src.put_targets(Rule="fwd", Targets=[{"Id": "1", "Arn": f"arn:aws:events:{REGION}:{dst}:event-bus/default"}])

    # Target bus policy does not admit src yet: dropped, and logged.
    put(emu, src)
    dropped = [r for r in emu.requests_for(src) if r["operation"] == "DeliverToEventBus"]
    assert dropped and dropped[0]["error_code"] == "AccessDeniedException"
    assert drain() == []

    allow(emu, dst, src)
    out = put(emu, src)
    msg = wait_for(lambda: drain(), what="forwarded event")[0]
    assert msg["account"] == src
    assert msg["id"] == out["Entries"][0]["EventId"]
    assert msg["resources"] == ["arn:x"]


def test_put_events_to_other_accounts_bus_arn(emu, accounts):
    src, dst, stranger = accounts(3)
    emu.client("events", dst).create_event_bus(Name="inbox")
    bus_arn = f"arn:aws:events:{REGION}:{dst}:event-bus/inbox"
    drain = make_queue_for_rule(emu, dst, PATTERN, bus="inbox")
    with pytest.raises(ClientError) as exc:
        put(emu, src, bus_arn)
    assert error_code(exc) == "AccessDeniedException"

    emu.client("events", dst).put_permission(
        EventBusName="inbox",
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "src",
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{src}:root"},
                        "Action": "events:PutEvents",
                        "Resource": bus_arn,
                    }
                ],
            }
        ),
    )
    out = put(emu, src, bus_arn, {"snapshot": "s1"})
    assert out["FailedEntryCount"] == 0
    msg = wait_for(lambda: drain(), what="delivery to other account's bus")[0]
    assert msg["account"] == src and msg["detail"] == {"snapshot": "s1"}
    with pytest.raises(ClientError) as exc:
        put(emu, stranger, bus_arn)
    assert error_code(exc) == "AccessDeniedException"


def test_put_events_entry_errors_still_per_entry(emu, accounts):
    (acct,) = accounts(1)
    out = emu.client("events", acct).put_events(Entries=[{"Source": "a", "DetailType": "b", "Detail": "{not json"}])
    assert out["FailedEntryCount"] == 1 and out["Entries"][0]["ErrorCode"] == "MalformedDetail"


def test_cross_account_sqs_target_and_unsupported_targets(emu, accounts):
    src, dst = accounts(2)
    sqs_dst = emu.client("sqs", dst)
    url = sqs_dst.create_queue(QueueName="inbox")["QueueUrl"]
    arn = sqs_dst.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events_src = emu.client("events", src)
    events_src.put_rule(Name="r", EventPattern=json.dumps(PATTERN))
    events_src.put_targets(
        Rule="r",
        Targets=[
            {"Id": "lambda", "Arn": f"arn:aws:lambda:{REGION}:{src}:function:handler"},
            {"Id": "q", "Arn": arn},
        ],
    )
    assert put(emu, src)["FailedEntryCount"] == 0
    msgs = wait_for(lambda: sqs_dst.receive_message(QueueUrl=url).get("Messages"), what="cross-account sqs delivery")
    assert json.loads(msgs[0]["Body"])["account"] == src


def test_schedule_rules_match_no_events(emu, accounts):
    """A rule with only a ScheduleExpression is fired by its schedule, never by bus events."""
    (account,) = accounts(1)
    events = emu.client("events", account)
    sqs = emu.client("sqs", account)
    url = sqs.create_queue(QueueName="scheduled")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="hourly", ScheduleExpression="rate(1 hour)")
    events.put_targets(Rule="hourly", Targets=[{"Id": "q", "Arn": arn}])
    events.put_rule(Name="everything", EventPattern='{"source": ["acme"]}')
    events.put_targets(Rule="everything", Targets=[{"Id": "q", "Arn": arn}])
    events.put_events(Entries=[{"Source": "acme", "DetailType": "Thing", "Detail": "{}"}])
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    assert len(received) == 1, "only the pattern rule delivers; the schedule rule does not"


# ----------------------------------------------- drop rules on PutEvents entries
PIPELINE = {"source": ["snapferry"], "detail-type": ["Snapshot Shared"]}


def shared_entry(bus, n):
    return {"Source": "snapferry", "DetailType": "Snapshot Shared", "Detail": json.dumps({"n": n}), "EventBusName": bus}


def test_drop_rule_drops_one_put_events_entry(emu, accounts):
    """A drop rule with count 1 loses exactly one matching PutEvents entry; it is accepted and logged."""
    (acct,) = accounts(1)
    events = emu.client("events", acct)
    events.create_event_bus(Name="snapferry")
    drain = make_queue_for_rule(emu, acct, PIPELINE, bus="snapferry")
    drain_other = make_queue_for_rule(emu, acct, {"source": ["snapferry"], "detail-type": ["Snapshot Copied"]}, bus="snapferry")
    emu.control("POST", "/drop-events", {"detail_type": "Snapshot Shared", "account": acct, "count": 1})

    out = events.put_events(
        Entries=[
            shared_entry("snapferry", 1),
            {"Source": "snapferry", "DetailType": "Snapshot Copied", "Detail": "{}", "EventBusName": "snapferry"},
            shared_entry("snapferry", 2),
        ]
    )
    assert out["FailedEntryCount"] == 0 and all("EventId" in e for e in out["Entries"])
    delivered = wait_for(lambda: drain(), what="the second Snapshot Shared")
    assert [m["detail"] for m in delivered] == [{"n": 2}], "only the first matching entry is dropped"
    assert delivered[0]["id"] == out["Entries"][2]["EventId"]
    assert len(wait_for(lambda: drain_other(), what="the Snapshot Copied")) == 1, "other detail types are delivered"
    assert [d for d in emu.control("GET", "/drop-events") if d["account"] == acct] == [], "count 1: the rule is used up"

    recorded = emu.events_for(acct)
    assert len(recorded) == 1
    rec = recorded[0]
    assert rec["dropped"] is True and rec["detail_type"] == "Snapshot Shared" and rec["event_id_or_name"] == "snapferry"
    assert rec["event_bus"] == f"arn:aws:events:{REGION}:{acct}:event-bus/snapferry"
    assert rec["event"]["id"] == out["Entries"][0]["EventId"] and rec["event"]["detail"] == {"n": 1}
    assert rec["event"]["account"] == acct and rec["event"]["source"] == "snapferry"

    # The rule is used up: the next one is delivered.
    events.put_events(Entries=[shared_entry("snapferry", 3)])
    wait_for(lambda: len(drain()) == 2, what="the third Snapshot Shared")
    assert [m["detail"]["n"] for m in drain()] == [2, 3]
    assert len(emu.events_for(acct)) == 1


def test_drop_rule_applies_to_put_events_by_bus_arn(emu, accounts):
    """Cross-account PutEvents by bus ARN: the rule's account is the caller's; event_id matches the Source."""
    src, dst = accounts(2)
    emu.client("events", dst).create_event_bus(Name="snapferry")
    bus_arn = f"arn:aws:events:{REGION}:{dst}:event-bus/snapferry"
    emu.client("events", dst).put_permission(EventBusName="snapferry", Action="events:PutEvents", Principal=src, StatementId="src")
    drain = make_queue_for_rule(emu, dst, PIPELINE, bus="snapferry")
    # Rules of another account or another source do not apply.
    emu.control("POST", "/drop-events", {"detail_type": "Snapshot Shared", "account": dst, "count": 1})
    emu.control("POST", "/drop-events", {"detail_type": "Snapshot Shared", "event_id": "other.source", "account": src, "count": 1})
    emu.control("POST", "/drop-events", {"detail_type": "Snapshot Shared", "event_id": "snapferry", "account": src, "count": 1})

    events = emu.client("events", src)
    first = events.put_events(Entries=[shared_entry(bus_arn, 1)])
    second = events.put_events(Entries=[shared_entry(bus_arn, 2)])
    assert first["FailedEntryCount"] == 0 and "EventId" in first["Entries"][0]
    delivered = wait_for(lambda: drain(), what="the second event")
    assert [m["detail"] for m in delivered] == [{"n": 2}] and delivered[0]["id"] == second["Entries"][0]["EventId"]
    rec = emu.events_for(src)
    assert [(r["dropped"], r["event_bus"], r["event"]["id"]) for r in rec] == [(True, bus_arn, first["Entries"][0]["EventId"])]
    left = [d for d in emu.control("GET", "/drop-events") if d["account"] in (src, dst)]
    assert sorted((d["account"], d["event_id"]) for d in left) == sorted([(dst, None), (src, "other.source")])
    emu.control("DELETE", "/drop-events")


def test_drop_rule_leaves_invalid_entries_failing(emu, accounts):
    """An entry PutEvents refuses stays refused (and does not use up the rule)."""
    (acct,) = accounts(1)
    emu.control("POST", "/drop-events", {"detail_type": "Snapshot Shared", "account": acct, "count": 1})
    events = emu.client("events", acct)
    out = events.put_events(Entries=[{"Source": "snapferry", "DetailType": "Snapshot Shared", "Detail": "{bad"}])
    assert out["FailedEntryCount"] == 1 and out["Entries"][0]["ErrorCode"] == "MalformedDetail"
    assert [d["count"] for d in emu.control("GET", "/drop-events") if d["account"] == acct] == [1]
    emu.control("DELETE", "/drop-events")
