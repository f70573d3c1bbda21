"""SQS dead-letter queue redrive: StartMessageMoveTask, ListMessageMoveTasks, CancelMessageMoveTask.

Why: the pinned moto lacks the three operations (its dispatcher answers
HTTP 500), and an operator's DLQ redrive is part of running the pipeline.
They follow the SQS API Reference and the SQS Developer Guide
(*sqs-configure-dead-letter-queue-redrive*, *troubleshooting-dlq-redrive*):

* The source must be a dead-letter queue: some queue's ``RedrivePolicy``
  names it (moto only resolves a DLQ in the same account and region).
* A task moves the messages visible in the DLQ when it starts (that count
  is ``ApproximateNumberOfMessagesToMove``), oldest first, on its own
  thread, at ``MaxNumberOfMessagesPerSecond`` (absent: ``DEFAULT_RATE``).
  Each step runs under the moto lock, like the lifecycle ticker, because
  moto is not thread-safe.  A message is sent to the destination as a new
  message (new MessageId, same body and message attributes) and only then
  removed from the DLQ.
* Without ``DestinationArn`` a message goes back to the queue SQS
  dead-lettered it from.  Only SQS's own redrive (``maxReceiveCount``)
  records that: messages sent straight to the DLQ with SendMessage (this is
  how snapferry's own dead letters get there, the ``snapferry-source-queue``
  attribute is the application's, SQS does not read it) end the task
  ``FAILED`` with ``CouldNotDetermineMessageSource``, as on AWS.  The
  origin is remembered by tagging moto's message objects with the queue
  they were added to (``Queue.add_message``): moto moves the same object
  into the DLQ, so a message whose previous queue differs was dead-lettered
  from that queue.
* A destination (or original queue) that no longer exists ends the task
  ``FAILED`` with ``AWS.SimpleQueueService.NonExistentQueue``; the message
  stays in the DLQ.
* Tasks live on the source queue's moto backend, so a moto reset forgets
  them; a running task's thread notices and stops.

Message counts (``GET /_snapferry/sqs-counts``): every queue counts what entered
it and what left it, so a test can balance its books (nothing lost, nothing
made up).  In: ``sent`` (SendMessage, SendMessageBatch, EventBridge targets),
``moved_in`` (by a move task), ``dead_lettered_in`` (by SQS's redrive policy).
Out: ``deleted`` (DeleteMessage, DeleteMessageBatch), ``moved_out`` (by a move
task), ``dead_lettered_out`` (to the DLQ, by the redrive policy).  Always
``sent + moved_in + dead_lettered_in == deleted + moved_out + dead_lettered_out
+ messages`` unless a queue is purged (not counted) or moto drops a message
past its retention period.  Counts live on moto's queue objects, so a reset
(or deleting the queue) starts them at zero.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

ARN_RE = re.compile(r"^arn:aws[\w-]*:sqs:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):(?P<name>[\w.-]+)$")
MAX_RATE = 500  # API Reference StartMessageMoveTask: "The maximum value for messages per second is 500."
# AWS picks a rate itself when none is given ("system optimized"); moving at
# the maximum keeps the emulator quick.
DEFAULT_RATE = MAX_RATE
MAX_RESULTS = 10  # API Reference ListMessageMoveTasks: "The upper limit is 10."
ACTIVE = ("RUNNING", "CANCELLING")

MOTO_LOCK: threading.RLock | None = None


@dataclass(eq=False)  # identity: a task is the same task however its counters change
class MoveTask:
    task_id: str
    handle: str
    source_arn: str
    destination_arn: str | None
    rate: int | None
    started_ms: int
    pending: list[Any]  # moto Message objects still to move, oldest first
    to_move: int
    moved: int = 0
    status: str = "RUNNING"
    failure_reason: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def entry(self) -> dict[str, Any]:
        """A ListMessageMoveTasksResultEntry: optional fields only when AWS sends them."""
        out: dict[str, Any] = {
            "SourceArn": self.source_arn,
            "Status": self.status,
            "ApproximateNumberOfMessagesMoved": self.moved,
            "ApproximateNumberOfMessagesToMove": self.to_move,
            "StartedTimestamp": self.started_ms,
        }
        if self.status == "RUNNING":
            out["TaskHandle"] = self.handle
        if self.destination_arn:
            out["DestinationArn"] = self.destination_arn
        if self.rate is not None:
            out["MaxNumberOfMessagesPerSecond"] = self.rate
        if self.failure_reason:
            out["FailureReason"] = self.failure_reason
        return out


class MoveTaskError(Exception):
    """An SQS error with the HTTP status AWS answers (moto's serializer would say 400)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _invalid(message: str) -> MoveTaskError:
    return MoveTaskError("InvalidParameterValue", message)


def _not_found(param: str) -> MoveTaskError:
    # Code, wording and 404 as AWS answers (recorded in localstack's AWS-validated
    # tests/aws/services/sqs/test_sqs_move_task.snapshot.json).
    return MoveTaskError("ResourceNotFoundException", f"The resource that you specified for the {param} parameter doesn't exist.", 404)


# ------------------------------------------------------------------ moto access
def _backend(account: str, region: str) -> Any:
    from moto.sqs.models import sqs_backends

    return sqs_backends[account][region]


def _tasks(backend: Any) -> list[MoveTask]:
    # Kept on the backend so that a moto reset (which rebuilds backends) drops them.
    return backend.__dict__.setdefault("_sf_move_tasks", [])


def _queue_by_arn(arn: str) -> Any:
    """The moto queue an ARN names, or None."""
    m = ARN_RE.match(arn)
    if not m:
        return None
    return _backend(m["account"], m["region"]).queues.get(m["name"])


def _require_queue(params: dict[str, Any], name: str) -> Any:
    arn = params.get(name)
    if not arn or not isinstance(arn, str):
        raise MoveTaskError("MissingParameter", f"The request must contain the parameter {name}.")
    if not ARN_RE.match(arn):
        raise _invalid(f"You must use this format to specify the {name}: arn:<partition>:<service>:<region>:<account-id>:<resource-id>")
    queue = _queue_by_arn(arn)
    if queue is None:
        raise _not_found(name)
    return queue


def _optional_int(params: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _invalid(f"Value {value} for parameter {name} is invalid. Reason: Must be between {low} and {high}.")
    return value


# ------------------------------------------------------------------ operations
def start(params: dict[str, Any]) -> dict[str, Any]:
    dlq = _require_queue(params, "SourceArn")
    backend = _backend(dlq.account_id, dlq.region)
    if not backend.list_dead_letter_source_queues(dlq.name):
        raise _invalid("Source queue must be configured as a Dead Letter Queue.")
    destination_arn = params.get("DestinationArn") or None
    if destination_arn is not None:
        _require_queue(params, "DestinationArn")
    rate = _optional_int(params, "MaxNumberOfMessagesPerSecond", 1, MAX_RATE)
    tasks = _tasks(backend)
    if any(t.source_arn == dlq.queue_arn and t.status in ACTIVE for t in tasks):
        raise _invalid("There is already a task running. Only one active task is allowed for a source queue arn at a given time.")
    task_id = str(uuid.uuid4())
    # AWS's handles are base64 JSON of the task id and source ARN; Cancel needs the ARN to find the task.
    handle = base64.b64encode(json.dumps({"taskId": task_id, "sourceArn": dlq.queue_arn}).encode()).decode()
    pending = list(dlq.messages)  # visible, not delayed, in arrival order
    task = MoveTask(task_id, handle, dlq.queue_arn, destination_arn, rate, int(time.time() * 1000), pending, len(pending))
    tasks.append(task)
    threading.Thread(target=_run, args=(task, backend), name=f"snapferry-move-{task_id[:8]}", daemon=True).start()
    return {"TaskHandle": handle}


def list_tasks(params: dict[str, Any]) -> dict[str, Any]:
    dlq = _require_queue(params, "SourceArn")
    limit = _optional_int(params, "MaxResults", 1, MAX_RESULTS) or 1  # default: the most recent task
    tasks = [t for t in _tasks(_backend(dlq.account_id, dlq.region)) if t.source_arn == dlq.queue_arn]
    return {"Results": [t.entry() for t in reversed(tasks)][:limit]}


def cancel(params: dict[str, Any]) -> dict[str, Any]:
    handle = params.get("TaskHandle")
    try:
        doc = json.loads(base64.b64decode(handle or "", validate=True))
        task_id, source_arn = doc["taskId"], doc["sourceArn"]
    except (ValueError, TypeError, KeyError, binascii.Error):
        raise _invalid("Value for parameter TaskHandle is invalid.") from None
    dlq = _queue_by_arn(source_arn) if isinstance(source_arn, str) else None
    if dlq is None:
        raise _not_found("SourceArn")
    task = next((t for t in _tasks(_backend(dlq.account_id, dlq.region)) if t.task_id == task_id), None)
    # Only a RUNNING task can be cancelled (API Reference CancelMessageMoveTask).  AWS documents
    # no error for a finished one; we answer what AWS answers for an unknown task id.
    if task is None or task.status != "RUNNING":
        raise MoveTaskError("ResourceNotFoundException", "Task does not exist.", 404)
    task.status = "CANCELLING"
    task.cancel.set()  # the task's thread wakes and ends CANCELLED
    return {"ApproximateNumberOfMessagesMoved": task.moved}


# ------------------------------------------------------------------ message counts
COUNTERS = ("sent", "moved_in", "dead_lettered_in", "deleted", "moved_out", "dead_lettered_out")
# Set while a move task sends, so add_message counts the message as moved, not sent.
_MOVING = threading.local()


def _count(queue: Any, counter: str, n: int = 1) -> None:
    counts = queue.__dict__.setdefault("_sf_counts", dict.fromkeys(COUNTERS, 0))
    counts[counter] += n


def counts() -> dict[str, Any]:
    """Every queue's counts (``GET /_snapferry/sqs-counts``); call under the moto lock."""
    from moto.sqs.models import sqs_backends

    out = []
    for account, regions in list(sqs_backends.items()):
        for region, backend in list(regions.items()):
            for queue in list(backend.queues.values()):
                row = {"arn": queue.queue_arn, "account": account, "region": region, "name": queue.name}
                row.update(queue.__dict__.get("_sf_counts", dict.fromkeys(COUNTERS, 0)))
                row["messages"] = len(queue._messages)
                out.append(row)
    return {"queues": out}


# ------------------------------------------------------------------ the mover
def _run(task: MoveTask, backend: Any) -> None:
    interval = 1.0 / (task.rate or DEFAULT_RATE)
    assert MOTO_LOCK is not None
    while True:
        with MOTO_LOCK:
            if not _step(task, backend):
                return
        task.cancel.wait(interval)


def _step(task: MoveTask, backend: Any) -> bool:
    """Move one message; False once the task has ended.  Runs under the moto lock."""
    m = ARN_RE.match(task.source_arn)
    assert m is not None
    if _backend(m["account"], m["region"]) is not backend or not any(t is task for t in _tasks(backend)):
        return False  # moto was reset: the task is gone
    if task.cancel.is_set():
        task.status = "CANCELLED"
        return False
    dlq = backend.queues.get(m["name"])
    if dlq is None:
        return _fail(task, "AWS.SimpleQueueService.NonExistentQueue")
    while task.pending:
        msg = task.pending[0]
        # Deleted by a consumer meanwhile, or received and in flight: AWS's task would not get it either.
        if any(x is msg for x in dlq._messages) and msg.visible:
            break
        task.pending.pop(0)
    if not task.pending:
        task.status = "COMPLETED"
        return False
    msg = task.pending[0]
    target_arn = task.destination_arn or getattr(msg, "_sf_dead_letter_source", None)
    if target_arn is None:
        return _fail(task, "CouldNotDetermineMessageSource")
    target = _queue_by_arn(target_arn)
    if target is None:
        return _fail(task, "AWS.SimpleQueueService.NonExistentQueue")
    from moto.sqs.exceptions import SQSException

    _MOVING.active = True
    try:
        _backend(target.account_id, target.region).send_message(
            target.name,
            msg.body,
            message_attributes=copy.deepcopy(msg.message_attributes),
            group_id=msg.group_id if target.fifo_queue else None,
            deduplication_id=msg.deduplication_id if target.fifo_queue else None,
            system_attributes=copy.deepcopy(msg.system_attributes),
        )
    except SQSException as exc:
        return _fail(task, exc.code)
    finally:
        _MOVING.active = False
    # Deleted from the DLQ only once it is in the destination (at-least-once, like AWS).
    # In place under moto's queue condition: add_message appends under it, also from
    # ReceiveMessage calls that run outside the moto lock and dead-letter into this queue.
    with dlq._messages_lock:
        if msg in dlq._messages:
            dlq._messages.remove(msg)
    dlq.pending_messages.discard(msg)
    _count(dlq, "moved_out")
    task.pending.pop(0)
    task.moved += 1
    return True


def _fail(task: MoveTask, reason: str) -> bool:
    task.status, task.failure_reason = "FAILED", reason
    return False


# ------------------------------------------------------------------ install
def install(moto_lock: threading.RLock) -> None:
    global MOTO_LOCK
    MOTO_LOCK = moto_lock
    from moto.core.responses import ActionResult
    from moto.sqs.models import Queue
    from moto.sqs.responses import SQSResponse

    if getattr(Queue.add_message, "_snapferry", False):
        return

    original_add = Queue.add_message

    def add_message(self: Any, message: Any) -> None:
        # moto moves the same Message object from a queue into its DLQ: a
        # previous queue that differs is the queue SQS dead-lettered it from.
        previous = getattr(message, "_sf_queue_arn", None)
        if previous is not None and previous != self.queue_arn:
            message._sf_dead_letter_source = previous
        message._sf_queue_arn = self.queue_arn
        original_add(self, message)
        if not any(m is message for m in self._messages):
            return  # a FIFO duplicate moto dropped: it never entered
        if previous is not None and previous != self.queue_arn:
            _count(self, "dead_lettered_in")
            source = _queue_by_arn(previous)
            if source is not None:
                _count(source, "dead_lettered_out")
        else:
            _count(self, "moved_in" if getattr(_MOVING, "active", False) else "sent")

    add_message._snapferry = True  # type: ignore[attr-defined]
    Queue.add_message = add_message

    original_delete = Queue.delete_message

    def delete_message(self: Any, receipt_handle: str) -> None:
        # Counted before the call: moto answers a repeated delete with success and removes nothing.
        removing = 0 if receipt_handle in self.deleted_messages else sum(1 for m in self._messages if m.had_receipt_handle(receipt_handle))
        original_delete(self, receipt_handle)
        _count(self, "deleted", removing)

    Queue.delete_message = delete_message

    def operation(handler: Any) -> Any:
        def respond(self: Any) -> Any:
            try:
                return ActionResult(handler(self._get_params()))
            except MoveTaskError as exc:
                from moto.sqs.exceptions import SQSException

                status, headers, body = self.serialized(ActionResult(SQSException(exc.code, exc.message)))
                headers["status"] = exc.status
                return body, headers

        return respond

    # moto dispatches X-Amz-Target AmazonSQS.<Op> to the snake_case method of the same name.
    SQSResponse.start_message_move_task = operation(start)
    SQSResponse.list_message_move_tasks = operation(list_tasks)
    SQSResponse.cancel_message_move_task = operation(cancel)
