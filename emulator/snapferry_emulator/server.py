"""Assemble moto + the layer and serve it on a threaded werkzeug server.

``MOTO_EC2_LOAD_DEFAULT_AMIS=false`` is set before moto is imported (faster,
no ~1,300 built-in snapshots).  ``MOTO_ACCOUNT_ID`` is removed: it would pin
every request to one account and break multi-account.
"""

from __future__ import annotations

import logging
import os
import threading

os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"
os.environ.pop("MOTO_ACCOUNT_ID", None)

from werkzeug.serving import WSGIRequestHandler, make_server  # noqa: E402

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app  # noqa: E402

from . import dbdata, ec2, eventbus, kmsutil, mydata, pgdata, rds, rdsengines, sqs  # noqa: E402
from .app import SnapferryApp  # noqa: E402
from .lifecycle import Lifecycle  # noqa: E402
from .state import DEFAULT_QUOTAS, LayerState  # noqa: E402

LOG = logging.getLogger("snapferry_emulator")


class QuietHandler(MotoRequestHandler):
    """moto's request handler without one stderr line per request."""

    verbose = False

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if self.verbose:
            WSGIRequestHandler.log_request(self, code, size)


class Emulator:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, delay: float = 2.0, quotas: dict[str, int] | None = None, verbose: bool = False) -> None:
        self.state = LayerState(startup_delay=delay, startup_quotas={**DEFAULT_QUOTAS, **(quotas or {})})
        self.moto_lock = threading.RLock()
        self.life = Lifecycle(self.state, self.moto_lock)
        kmsutil.install()
        eventbus.install(self.state)
        rds.install(self.state, self.life)
        rdsengines.install()
        dbdata.install(pgdata.ENGINE, mydata.ENGINE)  # after the RDS patches: it wraps them
        ec2.install(self.state, self.life)
        sqs.install(self.moto_lock)
        moto_app = DomainDispatcherApplication(create_backend_app)
        self.app = SnapferryApp(moto_app, self.state, self.life, self.moto_lock)
        QuietHandler.verbose = verbose
        self.server = make_server(host, port, self.app, threaded=True, request_handler=QuietHandler)
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self.life.start()
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, name="snapferry-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.life.stop()
        self.server.shutdown()
        dbdata.shutdown()  # the PostgreSQL and MariaDB servers, if any was started

    def wait(self, parent_pid: int | None = None) -> int:
        """Block until interrupted, or until ``parent_pid`` is gone."""
        import signal

        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        while not stop.wait(0.25):
            if parent_pid is not None and not _alive(parent_pid):
                LOG.info("parent %s is gone; exiting", parent_pid)
                break
        self.stop()
        return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True

