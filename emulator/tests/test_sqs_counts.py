"""GET /_snapferry/sqs-counts: what entered and what left each queue, by way."""

from __future__ import annotations

import json
import random
from typing import Any

from conftest import wait_for


def _queue(sqs: Any, name: str, **attributes: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=f"{name}{random.randint(0, 10**9)}", Attributes=attributes)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _counts(emu: Any, arn: str) -> dict[str, Any]:
    return next(q for q in emu.control("GET", "/sqs-counts")["queues"] if q["arn"] == arn)


def _balanced(row: dict[str, Any]) -> bool:
    entered = row["sent"] + row["moved_in"] + row["dead_lettered_in"]
    return entered == row["deleted"] + row["moved_out"] + row["dead_lettered_out"] + row["messages"]


def test_every_way_in_and_out_is_counted(emu, accounts):
    (acct,) = accounts(1)
    sqs, events = emu.client("sqs", acct), emu.client("events", acct)
    dlq_url, dlq_arn = _queue(sqs, "dlq")
    url, arn = _queue(sqs, "q", RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1}))
    # In: two sends (one batch of two), and one EventBridge delivery.
    sqs.send_message(QueueUrl=url, MessageBody="one")
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "two"}, {"Id": "b", "MessageBody": "three"}])
    events.put_rule(Name="to-q", EventPattern=json.dumps({"source": ["test"]}))
    events.put_targets(Rule="to-q", Targets=[{"Id": "q", "Arn": arn}])
    events.put_events(Entries=[{"Source": "test", "DetailType": "t", "Detail": "{}"}])
    assert _counts(emu, arn)["sent"] == 4

    # Out: one deleted (a second delete with the same handle removes nothing), three
    # dead-lettered by the redrive policy on their second receive.
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    assert len(got) == 4
    sqs.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])
    assert sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []) == []
    row = _counts(emu, arn)
    assert (row["deleted"], row["dead_lettered_out"], row["messages"]) == (1, 3, 0), row
    dlq = _counts(emu, dlq_arn)
    assert (dlq["dead_lettered_in"], dlq["sent"], dlq["messages"]) == (3, 0, 3), dlq

    # A move task takes them back: out of the DLQ, into the queue.
    sqs.start_message_move_task(SourceArn=dlq_arn)
    wait_for(lambda: _counts(emu, dlq_arn)["moved_out"] == 3, what="three moved")
    row, dlq = _counts(emu, arn), _counts(emu, dlq_arn)
    assert (row["moved_in"], row["sent"], row["messages"]) == (3, 4, 3), row
    assert dlq["messages"] == 0
    assert _balanced(row) and _balanced(dlq)


def test_a_queue_made_again_starts_at_zero(emu, accounts):
    (acct,) = accounts(1)
    sqs = emu.client("sqs", acct)
    url = sqs.create_queue(QueueName="again")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    assert _counts(emu, arn)["sent"] == 1
    sqs.delete_queue(QueueUrl=url)
    assert not any(q["arn"] == arn for q in emu.control("GET", "/sqs-counts")["queues"])
    url = sqs.create_queue(QueueName="again")["QueueUrl"]
    assert (_counts(emu, arn)["sent"], _counts(emu, arn)["messages"]) == (0, 0)
