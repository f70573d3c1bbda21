"""SQS dead-letter queue redrive (StartMessageMoveTask / ListMessageMoveTasks / CancelMessageMoveTask)."""

from __future__ import annotations

import base64
import json
import random
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from conftest import error_code, wait_for

ATTRS = {"kind": {"DataType": "String", "StringValue": "copy"}, "n": {"DataType": "Number", "StringValue": "7"}}


def _name(prefix: str) -> str:
    return f"{prefix}{random.randint(0, 10**9)}"


def _arn(sqs: Any, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _queue(sqs: Any, prefix: str = "q", **attributes: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=_name(prefix), Attributes=attributes)["QueueUrl"]
    return url, _arn(sqs, url)


def _source_of(sqs: Any, dlq_arn: str) -> str:
    """A queue whose redrive policy moves a message to the DLQ on its second receive."""
    url, _ = _queue(sqs, "src", RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1}))
    return url


def _count(sqs: Any, url: str) -> int:
    return int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"])


def _send(sqs: Any, url: str, bodies: list[str], **extra: Any) -> None:
    for i in range(0, len(bodies), 10):
        entries = [{"Id": str(j), "MessageBody": b, **extra} for j, b in enumerate(bodies[i : i + 10])]
        assert not sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")


def _dead_letter(sqs: Any, source_url: str, dlq_url: str, bodies: list[str]) -> None:
    """Send through the source queue and let SQS's redrive policy move them to the DLQ."""
    before = _count(sqs, dlq_url)
    _send(sqs, source_url, bodies, MessageAttributes=ATTRS)

    def moved() -> bool:
        # The first receive counts against maxReceiveCount, the next one moves the message.
        sqs.receive_message(QueueUrl=source_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        return _count(sqs, dlq_url) == before + len(bodies)

    wait_for(moved, what="messages dead-lettered")


def _drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get("Messages", [])
        if not msgs:
            return out
        out.extend(msgs)


def _task(sqs: Any, arn: str) -> dict[str, Any]:
    return sqs.list_message_move_tasks(SourceArn=arn)["Results"][0]


def _wait_status(sqs: Any, arn: str, status: str) -> dict[str, Any]:
    return wait_for(lambda: (t := _task(sqs, arn))["Status"] == status and t, what=f"task {status}")


def test_redrive_back_to_each_source_queue(emu, accounts):
    (acct,) = accounts(1)
    sqs = emu.client("sqs", acct)
    dlq_url, dlq_arn = _queue(sqs, "dlq")
    first, second = _source_of(sqs, dlq_arn), _source_of(sqs, dlq_arn)
    _dead_letter(sqs, first, dlq_url, ["a1", "a2", "a3"])
    _dead_letter(sqs, second, dlq_url, ["b1", "b2"])
    dead_ids = {m["MessageId"] for m in sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]}
    assert len(dead_ids) == 5

    started = int(time.time() * 1000)
    handle = sqs.start_message_move_task(SourceArn=dlq_arn)["TaskHandle"]
    assert json.loads(base64.b64decode(handle))["sourceArn"] == dlq_arn

    task = _wait_status(sqs, dlq_arn, "COMPLETED")
    assert task["ApproximateNumberOfMessagesMoved"] == task["ApproximateNumberOfMessagesToMove"] == 5
    assert task["SourceArn"] == dlq_arn
    assert started - 1000 <= task["StartedTimestamp"] <= int(time.time() * 1000)
    # Only sent when they apply: a handle while RUNNING, a destination or rate when given.
    assert not {"TaskHandle", "DestinationArn", "MaxNumberOfMessagesPerSecond", "FailureReason"} & set(task)

    got_first, got_second = _drain(sqs, first), _drain(sqs, second)
    assert sorted(m["Body"] for m in got_first) == ["a1", "a2", "a3"]
    assert sorted(m["Body"] for m in got_second) == ["b1", "b2"]
    for msg in got_first + got_second:
        assert msg["MessageAttributes"] == ATTRS
        assert msg["MessageId"] not in dead_ids  # redriven messages are new messages
    assert _count(sqs, dlq_url) == 0


def test_direct_dead_letters_need_a_destination(emu, accounts):
    """Messages sent straight to the DLQ (snapferry's own dead letters) have no source SQS knows of."""
    (acct,) = accounts(1)
    sqs = emu.client("sqs", acct)
    dlq_url, dlq_arn = _queue(sqs, "dlq")
    source = _source_of(sqs, dlq_arn)
    source_arn = _arn(sqs, source)
    sqs.send_message(
        QueueUrl=dlq_url,
        MessageBody="step failed",
        MessageAttributes={"snapferry-source-queue": {"DataType": "String", "StringValue": source}},
    )

    sqs.start_message_move_task(SourceArn=dlq_arn)
    task = _wait_status(sqs, dlq_arn, "FAILED")
    assert task["FailureReason"] == "CouldNotDetermineMessageSource"
    assert task["ApproximateNumberOfMessagesMoved"] == 0
    assert _count(sqs, dlq_url) == 1 and _count(sqs, source) == 0

    sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=source_arn)
    assert _wait_status(sqs, dlq_arn, "COMPLETED")["ApproximateNumberOfMessagesMoved"] == 1
    moved = _drain(sqs, source)
    assert [m["Body"] for m in moved] == ["step failed"]
    assert moved[0]["MessageAttributes"]["snapferry-source-queue"]["StringValue"] == source


def test_redrive_to_explicit_destination(emu, accounts):
    (acct,) = accounts(1)
    sqs = emu.client("sqs", acct)
    dlq_url, dlq_arn = _queue(sqs, "dlq")
    source = _source_of(sqs, dlq_arn)
    dest_url, dest_arn = _queue(sqs, "dest")
    _dead_letter(sqs, source, dlq_url, [f"m{i}" for i in range(12)])

    sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=dest_arn, MaxNumberOfMessagesPerSecond=500)
    task = _wait_status(sqs, dlq_arn, "COMPLETED")
    assert task["DestinationArn"] == dest_arn and task["MaxNumberOfMessagesPerSecond"] == 500
    assert task["ApproximateNumberOfMessagesMoved"] == 12
    assert sorted(m["Body"] for m in _drain(sqs, dest_url)) == sorted(f"m{i}" for i in range(12))
    assert _count(sqs, source) == 0 and _count(sqs, dlq_url) == 0


@pytest.mark.parametrize("rate", [0, 501])
def test_rate_must_be_1_to_500(emu, accounts, rate):
    (acct,) = accounts(1)
    sqs = emu.client("sqs", acct)
    _, dlq_arn = _queue(sqs, "dlq")
    _source_of(sqs, dlq_arn)
    with pytest.raises(ClientError) as exc:
        sqs.start_message_move_task(SourceArn=dlq_arn, MaxNumberOfMessagesPerSecond=rate)
    assert error_code(exc) == "InvalidParameterValue"
    assert exc.value.response["Error"]["Message"] == f"Value {rate} for parameter MaxNumberOfMessagesPerSecond is invalid. Reason: Must be between 1 and 500."
    assert sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"] == []
    with pytest.raises(ClientError) as exc:
        sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=11)
    assert error_code(exc) == "InvalidParameterValue"


def test_one_active_task_per_source_queue(emu, accounts):
    (acct,) = accounts(1)
    sqs = emu.client("sqs", acct)
    dlq_url, dlq_arn = _queue(sqs, "dlq")
    _source_of(sqs, dlq_arn)
    _, dest_arn = _queue(sqs, "dest")
    _send(sqs, dlq_url, [f"m{i}" for i in range(20)])

    handle = sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=dest_arn, MaxNumberOfMessagesPerSecond=2)["TaskHandle"]
    with pytest.raises(ClientError) as exc:
        sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=dest_arn)
    assert error_code(exc) == "InvalidParameterValue"
    assert exc.value.response["Error"]["Message"] == "There is already a task running. Only one active task is allowed for a source queue arn at a given time."

    sqs.cancel_message_move_task(TaskHandle=handle)
    _wait_status(sqs, dlq_arn, "CANCELLED")
    assert sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=dest_arn)["TaskHandle"] != handle
    _wait_status(sqs, dlq_arn, "COMPLETED")


def test_list_newest_first_with_counts(emu, accounts):
    (acct,) = accounts(1)
    sqs = emu.client("sqs", acct)
    dlq_url, dlq_arn = _queue(sqs, "dlq")
    _source_of(sqs, dlq_arn)
    _, dest_arn = _queue(sqs, "dest")
    for n, rate in [(1, 100), (2, 200), (3, 300)]:
        _send(sqs, dlq_url, [f"r{rate}-{i}" for i in range(n)])
        sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=dest_arn, MaxNumberOfMessagesPerSecond=rate)
        _wait_status(sqs, dlq_arn, "COMPLETED")

    assert [t["MaxNumberOfMessagesPerSecond"] for t in sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"]] == [300]
    results = sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=10)["Results"]
    assert [(t["MaxNumberOfMessagesPerSecond"], t["ApproximateNumberOfMessagesMoved"], t["ApproximateNumberOfMessagesToMove"]) for t in results] == [
        (300, 3, 3),
        (200, 2, 2),
        (100, 1, 1),
    ]
    stamps = [t["StartedTimestamp"] for t in results]
    assert stamps == sorted(stamps, reverse=True)


def test_cancel_midway(emu, accounts):
    (acct,) = accounts(1)
    sqs = emu.client("sqs", acct)
    dlq_url, dlq_arn = _queue(sqs, "dlq")
    _source_of(sqs, dlq_arn)
    dest_url, dest_arn = _queue(sqs, "dest")
    _send(sqs, dlq_url, [f"m{i}" for i in range(30)])

    handle = sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=dest_arn, MaxNumberOfMessagesPerSecond=5)["TaskHandle"]
    running = wait_for(lambda: (t := _task(sqs, dlq_arn))["ApproximateNumberOfMessagesMoved"] >= 2 and t, what="2 moved")
    assert running["Status"] == "RUNNING" and running["TaskHandle"] == handle
    assert running["ApproximateNumberOfMessagesToMove"] == 30 and running["MaxNumberOfMessagesPerSecond"] == 5

    moved_at_cancel = sqs.cancel_message_move_task(TaskHandle=handle)["ApproximateNumberOfMessagesMoved"]
    assert 2 <= moved_at_cancel < 30
    assert _task(sqs, dlq_arn)["Status"] in ("CANCELLING", "CANCELLED")
    done = _wait_status(sqs, dlq_arn, "CANCELLED")
    assert "TaskHandle" not in done
    moved = done["ApproximateNumberOfMessagesMoved"]
    assert moved == moved_at_cancel == _task(sqs, dlq_arn)["ApproximateNumberOfMessagesMoved"]
    assert _count(sqs, dest_url) == moved and _count(sqs, dlq_url) == 30 - moved

    # Only a RUNNING task can be cancelled.
    with pytest.raises(ClientError) as exc:
        sqs.cancel_message_move_task(TaskHandle=handle)
    assert error_code(exc) == "ResourceNotFoundException"


def test_destination_deleted_while_running_fails_the_task(emu, accounts):
    (acct,) = accounts(1)
    sqs = emu.client("sqs", acct)
    dlq_url, dlq_arn = _queue(sqs, "dlq")
    _source_of(sqs, dlq_arn)
    dest_url, dest_arn = _queue(sqs, "dest")
    _send(sqs, dlq_url, [f"m{i}" for i in range(10)])

    sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=dest_arn, MaxNumberOfMessagesPerSecond=5)
    wait_for(lambda: _task(sqs, dlq_arn)["ApproximateNumberOfMessagesMoved"] >= 1, what="1 moved")
    sqs.delete_queue(QueueUrl=dest_url)
    task = _wait_status(sqs, dlq_arn, "FAILED")
    assert task["FailureReason"] == "AWS.SimpleQueueService.NonExistentQueue"
    assert _count(sqs, dlq_url) == 10 - task["ApproximateNumberOfMessagesMoved"] > 0


def test_errors(emu, accounts):
    (acct,) = accounts(1)
    sqs = emu.client("sqs", acct)
    plain_url, plain_arn = _queue(sqs, "plain")
    dlq_url, dlq_arn = _queue(sqs, "dlq")
    _source_of(sqs, dlq_arn)

    def refused(call: Any, code: str, status: int, message: str | None = None) -> None:
        with pytest.raises(ClientError) as exc:
            call()
        assert error_code(exc) == code
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
        if message:
            assert exc.value.response["Error"]["Message"] == message

    # A queue no redrive policy names is not a dead-letter queue.
    refused(lambda: sqs.start_message_move_task(SourceArn=plain_arn, DestinationArn=dlq_arn), "InvalidParameterValue", 400, "Source queue must be configured as a Dead Letter Queue.")
    refused(lambda: sqs.start_message_move_task(SourceArn=plain_arn + "x"), "ResourceNotFoundException", 404, "The resource that you specified for the SourceArn parameter doesn't exist.")
    refused(lambda: sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=plain_arn + "x"), "ResourceNotFoundException", 404, "The resource that you specified for the DestinationArn parameter doesn't exist.")
    refused(lambda: sqs.list_message_move_tasks(SourceArn=plain_arn + "x"), "ResourceNotFoundException", 404)
    refused(lambda: sqs.cancel_message_move_task(TaskHandle="foobared"), "InvalidParameterValue", 400, "Value for parameter TaskHandle is invalid.")

    # A finished task cannot be cancelled.
    handle = sqs.start_message_move_task(SourceArn=dlq_arn)["TaskHandle"]
    _wait_status(sqs, dlq_arn, "COMPLETED")
    refused(lambda: sqs.cancel_message_move_task(TaskHandle=handle), "ResourceNotFoundException", 404, "Task does not exist.")
    assert sqs.list_message_move_tasks(SourceArn=plain_arn)["Results"] == []


def test_logged_and_fault_injected(emu, accounts):
    (acct,) = accounts(1)
    sqs = emu.client("sqs", acct)
    _, dlq_arn = _queue(sqs, "dlq")
    _source_of(sqs, dlq_arn)
    emu.control("POST", "/faults", {"operation": "StartMessageMoveTask", "account": acct, "error_code": "RequestThrottled", "count": 1})

    with pytest.raises(ClientError) as exc:
        sqs.start_message_move_task(SourceArn=dlq_arn)
    assert error_code(exc) == "RequestThrottled"
    sqs.start_message_move_task(SourceArn=dlq_arn)
    _wait_status(sqs, dlq_arn, "COMPLETED")

    log = [(r["operation"], r["error_code"]) for r in emu.requests_for(acct) if "MessageMoveTask" in r["operation"]]
    assert log[:3] == [("StartMessageMoveTask", "RequestThrottled"), ("StartMessageMoveTask", None), ("ListMessageMoveTasks", None)]
