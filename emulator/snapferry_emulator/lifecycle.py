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
from typing import Callable

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
    ) -> None:
        """Finish something after the configured delay.

        ``complete(failed)`` runs on the ticker thread.  ``failable`` items of
        ``kind`` consume a matching ``fail-completions`` rule when they finish.
        ``copy_bucket`` names the quota the item counts against while pending.
        """
        delay = self.state.config()["delay_seconds"]
        self.state.add_pending(
            Pending(
                due=time.monotonic() + delay,
                kind=kind if failable else f"{kind}:nofail",
                account=account,
                region=region,
                complete=complete,
                counts_as_copy=copy_bucket,
            )
        )

    def run_due(self) -> None:
        for item in self.state.due_pending():
            failed = False
            if not item.kind.endswith(":nofail"):
                failed = self.state.take_fail_completion(item.kind, item.account)
            try:
                with self.moto_lock:
                    item.complete(failed)
            except Exception:  # noqa: BLE001 - never let the ticker die
                LOG.exception("completion of %s for %s failed", item.kind, item.account)

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            self.run_due()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="snapferry-ticker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
