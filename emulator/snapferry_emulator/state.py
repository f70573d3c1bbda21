"""Layer state: configuration, fault injection, request log, emitted events.

Everything the control API (``/_snapferry/...``) reads or changes lives here,
behind one lock, so request threads, the control API and the background
ticker can share it safely.  ``reset()`` puts it back to the values the
process was started with (CLI flags / environment).
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

DEFAULT_QUOTAS = {
    # Concurrent copies in progress per destination region per account.
    "rds_instance_copies": 20,
    "rds_cluster_copies": 5,
    "ebs_copies": 20,
    # Manual snapshots per region per account.
    "manual_db_snapshots": 100,
    "manual_cluster_snapshots": 100,
}

# "restore": DB instances and clusters being restored or created (they end `failed`).
COMPLETION_KINDS = ("db-instance", "db-cluster", "ebs", "restore")


class ControlError(ValueError):
    """A malformed control request (answered with HTTP 400)."""


@dataclass
class Fault:
    id: int
    operation: str
    error_code: str
    message: str
    status: int
    account: str | None = None
    count: int | None = 1  # None = until cleared

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "operation": self.operation,
            "account": self.account,
            "count": self.count,
            "error_code": self.error_code,
            "message": self.message,
            "status": self.status,
        }


@dataclass
class EventDrop:
    id: int
    detail_type: str
    event_id: str | None = None
    account: str | None = None
    count: int | None = None  # None = until cleared

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "detail_type": self.detail_type,
            "event_id": self.event_id,
            "account": self.account,
            "count": self.count,
        }


@dataclass
class FailCompletion:
    id: int
    kind: str
    account: str | None = None
    count: int | None = 1

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "account": self.account, "count": self.count}


@dataclass
class Pending:
    """A resource in a transient state that the ticker finishes later."""

    due: float
    kind: str  # db-instance | db-cluster | ebs | restore
    account: str
    complete: Callable[[bool], None]  # called with failed=True/False
    counts_as_copy: str | None = None  # quota bucket while in progress
    region: str = ""
    key: Any = None
    done: bool = False
    started: float = 0.0  # time.monotonic() when it was scheduled
    delay: float = 0.0  # the delay it was scheduled with (config changes don't move it)
    copy_record: dict[str, Any] | None = None  # its entry in LayerState.copies, for copies
    status_of: Callable[[], str] | None = None  # the resource's status, read when it ends

    def percent(self, now: float | None = None) -> int:
        """Elapsed share of the delay, 0..99: 100 is kept for "finished", so a
        reader never sees 100 on something still in progress."""
        now = time.monotonic() if now is None else now
        if self.delay <= 0:
            return 99
        return max(0, min(99, int(100 * (now - self.started) / self.delay)))


def _valid_quotas(quotas: Any) -> dict[str, int]:
    if not isinstance(quotas, dict):
        raise ControlError("quotas must be a JSON object")
    for name, value in quotas.items():
        if name not in DEFAULT_QUOTAS:
            raise ControlError(f"unknown quota {name!r}; known: {sorted(DEFAULT_QUOTAS)}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ControlError(f"quota {name} must be an integer >= 0")
    return dict(quotas)


@dataclass
class LayerState:
    startup_delay: float = 2.0
    startup_quotas: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_QUOTAS))

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self._ids = itertools.count(1)
        self.reset()

    # ------------------------------------------------------------------ reset
    def reset(self, keep_config: bool = False) -> None:
        with self.lock:
            if not keep_config:
                self.delay = float(self.startup_delay)
                self.quotas = dict(self.startup_quotas)
                # AWS's quotas are per account and region; an account's own maximums
                # (POST /_snapferry/config with "account") override the emulator's.
                self.account_quotas: dict[str, dict[str, int]] = {}
                self.clock_offset = 0.0
            self.faults: list[Fault] = []
            self.drops: list[EventDrop] = []
            self.fail_completions: list[FailCompletion] = []
            self.requests: list[dict[str, Any]] = []
            self.request_seq = 0
            self.events: list[dict[str, Any]] = []
            self.pending: list[Pending] = []
            self.copies: list[dict[str, Any]] = []

    # ----------------------------------------------------------------- config
    def config(self) -> dict[str, Any]:
        with self.lock:
            return {
                "delay_seconds": self.delay,
                "quotas": dict(self.quotas),
                "account_quotas": {a: dict(q) for a, q in self.account_quotas.items()},
                "clock_offset_seconds": self.clock_offset,
            }

    def update_config(self, body: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ControlError("config body must be a JSON object")
        account = body.get("account")
        if account is not None:
            if not isinstance(account, str) or not account.isdigit() or len(account) != 12:
                raise ControlError("account must be a 12-digit account id")
            if set(body) - {"account", "quotas"}:
                raise ControlError("only quotas can be set for one account (the delay and the clock are the emulator's)")
        with self.lock:
            if "delay_seconds" in body:
                delay = body["delay_seconds"]
                if not isinstance(delay, (int, float)) or isinstance(delay, bool) or delay < 0:
                    raise ControlError("delay_seconds must be a number >= 0")
                self.delay = float(delay)
            if "clock_offset_seconds" in body:
                offset = body["clock_offset_seconds"]
                if not isinstance(offset, (int, float)) or isinstance(offset, bool) or offset < 0:
                    raise ControlError("clock_offset_seconds must be a number >= 0")
                self.clock_offset = float(offset)
            quotas = _valid_quotas(body.get("quotas", {}))
            if "account_quotas" in body:
                if not isinstance(body["account_quotas"], dict):
                    raise ControlError("account_quotas must be a JSON object of account -> quotas")
                self.account_quotas = {a: _valid_quotas(q) for a, q in body["account_quotas"].items()}
            if account is None:
                self.quotas.update(quotas)
            else:
                self.account_quotas.setdefault(account, {}).update(quotas)
            unknown = set(body) - {"delay_seconds", "quotas", "account_quotas", "clock_offset_seconds", "account"}
            if unknown:
                raise ControlError(f"unknown config keys: {sorted(unknown)}")
            return self.config()

    def quota(self, name: str, account: str | None = None) -> int:
        """The maximum of quota ``name`` for ``account``: its own where one was set, else the emulator's."""
        with self.lock:
            return self.account_quotas.get(account or "", {}).get(name, self.quotas[name])

    def now(self) -> datetime:
        """The emulator's wall clock: real UTC time plus ``clock_offset_seconds``.

        Snapshot locks (days, cool-off hours) are judged against it, so tests
        can move past a cool-off or an expiry without waiting.
        """
        with self.lock:
            offset = self.clock_offset
        return datetime.now(timezone.utc) + timedelta(seconds=offset)

    # ----------------------------------------------------------------- faults
    def add_fault(self, body: dict[str, Any]) -> Fault:
        if not isinstance(body, dict):
            raise ControlError("fault body must be a JSON object")
        operation = body.get("operation")
        code = body.get("error_code")
        if not isinstance(operation, str) or not operation:
            raise ControlError("operation (string) is required")
        if not isinstance(code, str) or not code:
            raise ControlError("error_code (string) is required")
        status = body.get("status", 400)
        if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
            raise ControlError("status must be an integer HTTP error status (400..599)")
        count = _optional_count(body, default=1)
        account = _optional_str(body, "account")
        message = body.get("message") or f"Injected fault: {code}"
        if not isinstance(message, str):
            raise ControlError("message must be a string")
        with self.lock:
            fault = Fault(next(self._ids), operation, code, message, status, account, count)
            self.faults.append(fault)
            return fault

    def take_fault(self, operation: str, account: str) -> Fault | None:
        """Consume one matching fault (first registered wins)."""
        with self.lock:
            for fault in self.faults:
                if fault.operation != operation:
                    continue
                if fault.account is not None and fault.account != account:
                    continue
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self.faults.remove(fault)
                return copy.copy(fault)
            return None

    # ------------------------------------------------------------ event drops
    def add_drop(self, body: dict[str, Any]) -> EventDrop:
        if not isinstance(body, dict):
            raise ControlError("drop-events body must be a JSON object")
        detail_type = body.get("detail_type")
        if not isinstance(detail_type, str) or not detail_type:
            raise ControlError("detail_type (string) is required")
        drop = EventDrop(
            next(self._ids),
            detail_type,
            _optional_str(body, "event_id"),
            _optional_str(body, "account"),
            _optional_count(body, default=None),
        )
        with self.lock:
            self.drops.append(drop)
        return drop

    def take_drop(self, detail_type: str, event_id_or_name: str, account: str) -> bool:
        with self.lock:
            for drop in self.drops:
                if drop.detail_type != detail_type:
                    continue
                if drop.event_id is not None and drop.event_id != event_id_or_name:
                    continue
                if drop.account is not None and drop.account != account:
                    continue
                if drop.count is not None:
                    drop.count -= 1
                    if drop.count <= 0:
                        self.drops.remove(drop)
                return True
            return False

    # ------------------------------------------------------- failed completions
    def add_fail_completion(self, body: dict[str, Any]) -> FailCompletion:
        if not isinstance(body, dict):
            raise ControlError("fail-completions body must be a JSON object")
        kind = body.get("kind")
        if kind not in COMPLETION_KINDS:
            raise ControlError(f"kind must be one of {list(COMPLETION_KINDS)}")
        item = FailCompletion(
            next(self._ids), kind, _optional_str(body, "account"), _optional_count(body, default=1)
        )
        with self.lock:
            self.fail_completions.append(item)
        return item

    def take_fail_completion(self, kind: str, account: str) -> bool:
        with self.lock:
            for item in self.fail_completions:
                if item.kind != kind:
                    continue
                if item.account is not None and item.account != account:
                    continue
                if item.count is not None:
                    item.count -= 1
                    if item.count <= 0:
                        self.fail_completions.remove(item)
                return True
            return False

    # ------------------------------------------------------------ request log
    def log_request(self, entry: dict[str, Any]) -> None:
        """Log one call. ``at`` (Unix seconds, wall clock) is when it arrived; the
        caller passes it, else it is now (the layer's own entries happen now)."""
        with self.lock:
            self.request_seq += 1
            self.requests.append({"seq": self.request_seq, "at": time.time(), **entry})

    def requests_since(self, since: int) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.requests if r["seq"] > since]

    def clear_requests(self) -> None:
        with self.lock:
            self.requests = []

    # --------------------------------------------------------- native events
    def record_event(self, record: dict[str, Any]) -> None:
        """Record an event as it is emitted (or dropped): ``at`` is that moment in Unix
        seconds, finer than the envelope's ``time`` (whole seconds, as AWS stamps it)."""
        with self.lock:
            self.events.append({"at": time.time(), **record})

    def events_copy(self) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self.events)

    # -------------------------------------------------------------- pending
    def add_pending(self, item: Pending) -> None:
        with self.lock:
            self.pending.append(item)

    def due_pending(self, now: float | None = None) -> list[Pending]:
        now = time.monotonic() if now is None else now
        with self.lock:
            due = [p for p in self.pending if p.due <= now]
            self.pending = [p for p in self.pending if p.due > now]
            return due

    def record_copy(self, record: dict[str, Any]) -> dict[str, Any]:
        """Keep a copy's interval (start, end, status) for ``GET /_snapferry/copies``:
        the copy-slot benchmark measures slot occupancy from it, which the
        request log alone can't give (a copy ends without any request)."""
        with self.lock:
            self.copies.append(record)
            return record

    def end_copy(self, record: dict[str, Any], status: str) -> None:
        with self.lock:
            record["ended_at"] = time.time()
            record["status"] = status

    def copies_copy(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(c) for c in self.copies]

    def copies_in_progress(self, bucket: str, account: str, region: str) -> int:
        with self.lock:
            return sum(
                1
                for p in self.pending
                if p.counts_as_copy == bucket and p.account == account and p.region == region
            )


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ControlError(f"{key} must be a non-empty string")
    return value


def _optional_count(body: dict[str, Any], default: int | None) -> int | None:
    if "count" not in body:
        return default
    value = body["count"]
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ControlError("count must be an integer >= 1 (or null for 'until cleared')")
    return value
