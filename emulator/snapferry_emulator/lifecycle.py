"""Time: transient states that finish later, driven by a background ticker.

Why: moto makes snapshots, copies and restores ``available`` at once, so a
pipeline that waits for completion (or reacts to completion events) is never
exercised.  The layer puts them in ``creating`` / ``pending`` and registers a
completion here; the ticker thread finishes each one after the configured
delay (even when nobody polls), under the same global lock that serialises
AWS requests into moto, and the completion callback emits the native event.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from .state import LayerState, Pending

LOG = logging.getLogger("snapferry_emulator")


class Lifecycle:
    def __init__(self, state: LayerState, moto_lock: threading.RLock, tick: float = 0.05) -> None:
        self.state = state
        self.moto_lock = moto_lock
        self.tick = tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def schedule(
        self,
        *,
        kind: str,
        account: str,
        region: str,
        complete: Callable[[bool], None],
        copy_bucket: str | None = None,
        failable: bool = True,
        copy_labels: dict[str, Any] | None = None,
        status_of: Callable[[], str] | None = None,
    ) -> Pending:
        """Finish something after the configured delay; the returned item tells
        how far along it is (``Pending.percent``), which Describe answers report.

        ``complete(failed)`` runs on the ticker thread.  ``failable`` items of
        ``kind`` consume a matching ``fail-completions`` rule when they finish.
        ``copy_bucket`` names the quota the item counts against while pending;
        such items are also kept in the copy log (with ``copy_labels``, and the
        end status ``status_of()`` reads after completion).
        """
        delay = self.state.config()["delay_seconds"]
        now = time.monotonic()
        item = Pending(
            due=now + delay,
            kind=kind if failable else f"{kind}:nofail",
            account=account,
            region=region,
            complete=complete,
            counts_as_copy=copy_bucket,
            started=now,
            delay=delay,
            status_of=status_of,
        )
        if copy_bucket is not None:
            started_at = time.time()
            item.copy_record = self.state.record_copy(
                {
                    "bucket": copy_bucket,
                    "account": account,
                    "region": region,
                    **(copy_labels or {}),
                    "started_at": started_at,
                    "due_at": started_at + delay,
                    "ended_at": None,
                    "status": "in-progress",
                }
            )
        self.state.add_pending(item)
        return item

    def run_due(self) -> None:
        for item in self.state.due_pending():
            failed = False
            if not item.kind.endswith(":nofail"):
                failed = self.state.take_fail_completion(item.kind, item.account)
            status = "failed" if failed else "completed"
            try:
                with self.moto_lock:
                    item.complete(failed)
                    if item.status_of is not None:
                        status = item.status_of()
            except Exception:  # noqa: BLE001 - never let the ticker die
                LOG.exception("completion of %s for %s failed", item.kind, item.account)
            if item.copy_record is not None:
                self.state.end_copy(item.copy_record, status)

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            self.run_due()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="snapferry-ticker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
