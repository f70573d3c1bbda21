"""What PostgreSQL- and MySQL-engine data have in common: the resources' bookkeeping and the moto patches.

``pgdata`` backs PostgreSQL engines with a PostgreSQL server, ``mydata``
backs MySQL engines with a MariaDB server; each is an ``Engine`` here (its
server, SQL and endpoint protocol stay in its module).  What both do, and
why (the pinned moto's behaviour in brackets):

* One set of patches on moto's RDS backend (``install``).  A new instance or
  cluster goes to the engine whose engine names claim it (``postgres`` /
  ``aurora-postgresql``: pgdata; ``mysql``, ``mariadb`` / ``aurora-mysql``:
  mydata); everything else (other engines, Multi-AZ DB clusters, read
  replicas) keeps moto's metadata only and starts no server.
* The engine's server starts lazily with the first resource it backs (so a
  broken install shows at once) and stops when the emulator exits; each
  backed instance or cluster is one database on it, reached as on AWS:
  ``Endpoint.Address`` ``127.0.0.1`` and ``Endpoint.Port`` a port of its own
  (an ``Endpoint``: the engine's protocol proxy) [moto: an endpoint that
  resolves nowhere].  Aurora: the cluster's ``Endpoint``, ``ReaderEndpoint``
  and ``Port`` and every member instance's endpoint reach the cluster's
  database.  The configured port stays in ``__dict__["port"]`` (what moto
  copies on restore).
* TLS as on RDS: the endpoints offer TLS (1.2 or 1.3) with a certificate for
  ``127.0.0.1`` and ``localhost`` (subjectAltName) signed by an emulator CA,
  made on first use (the first TLS request or ``GET /_snapferry/rds-ca``),
  once per emulator process and kept in memory, so a client can verify the
  server (``verify-full``) against that CA as it does against AWS's RDS CA
  bundle.  The leg from the proxy to the server is clear text over
  127.0.0.1.  Each connection is one thread passing bytes both ways (an SSL
  object must not be read and written from two threads at once).
* A snapshot (manual, automated, final) is a copy of the database taken when
  the snapshot completes (the ticker calls ``snapshot_completed``); a final
  snapshot (or any snapshot still in progress) is taken at once when its
  instance or cluster is deleted.  Copies (any account or region) copy the
  snapshot's database when they complete, so each snapshot owns its data and
  deleting one never affects another.  The snapshot keeps the master password
  it had (AWS restores the snapshot's master user and password:
  RestoreDBInstanceFromDBSnapshot and RestoreDBClusterFromSnapshot take no
  master password, RDS API Reference).
* RestoreDBInstanceFromDBSnapshot / RestoreDBClusterFromSnapshot create the
  new database from the snapshot's.  ``ModifyDBInstance`` /
  ``ModifyDBCluster`` ``MasterUserPassword`` change the password at once (RDS
  API *ModifyDBInstance*: "applied as soon as possible"); a rename keeps the
  data.  Deleting an instance, cluster or snapshot drops its database.
* Naming on a server: ``rds_<account>_<region>_<id>`` (clusters ``rdsc_``,
  snapshots ``snap_``, cluster snapshots ``csnap_``), lower case,
  ``[a-z0-9_]``, at most 63 characters (longer names are cut and end in a
  hash), unique among that server's databases.
* Control API: ``GET /_snapferry/postgres`` and ``GET /_snapferry/mysql`` show
  an engine's server, its databases and the master passwords set
  (``Engine.status``); ``POST /_snapferry/corrupt-snapshot`` is parsed here
  (``parse_corruption``, ``Engine.snapshot_data``) and done by the snapshot's
  engine; ``GET /_snapferry/rds-ca`` gives the CA certificate (PEM).
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import ipaddress
import logging
import os
import re
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, ClassVar, Generic, TypeVar

from .rdslookup import RDS_ARN_RE, find_snapshot, rds_backend, snapshot_store
from .state import ControlError

LOG = logging.getLogger("snapferry_emulator")

ADDRESS = "127.0.0.1"
MAX_NAME = 63  # PostgreSQL's NAMEDATALEN - 1; MariaDB allows 64
START_TIMEOUT = 60.0  # how long a server may take to accept connections
LIVE_KINDS = ("instance", "cluster")  # the kinds with an endpoint and a master who logs in
# (kind, account, region, identifier); kind: instance | cluster | snapshot | cluster-snapshot
Key = tuple[str, str, str, str]


class DataError(RuntimeError):
    """A database server could not be started or an operation on it failed."""


# ------------------------------------------------------------------ registry
@dataclass
class Backing:
    """One database on an engine's server (for instances and clusters, with a login of the same name)."""

    # The database a client may name besides ``db`` and ``db_name``: the engine's default.
    default_database: ClassVar[str] = ""

    db: str
    kind: str  # instance | cluster | snapshot | cluster-snapshot
    account: str
    region: str
    identifier: str
    master_username: str
    db_name: str | None = None  # the RDS DBName / DatabaseName clients may ask for
    proxy: "Endpoint | None" = field(default=None, repr=False)

    @property
    def key(self) -> Key:
        return (self.kind, self.account, self.region, self.identifier)

    @property
    def port(self) -> int | None:
        return self.proxy.port if self.proxy else None

    def accepts(self, database: str) -> bool:
        return database in (self.default_database, self.db) or (self.db_name is not None and database == self.db_name)

    def to_json(self) -> dict[str, Any]:
        return {
            "database": self.db,
            "kind": self.kind,
            "account": self.account,
            "region": self.region,
            "identifier": self.identifier,
            "master_username": self.master_username,
            "db_name": self.db_name,
            "endpoint_port": self.port,
        }


def key_of(obj: Any) -> Key | None:
    """Registry key of a moto DBInstance / DBCluster / DBSnapshot / DBClusterSnapshot."""
    try:
        backend = obj.__dict__.get("backend")
        if backend is None:
            return None
        where = (backend.account_id, backend.region_name)
        if hasattr(obj, "db_cluster_snapshot_identifier"):
            return ("cluster-snapshot", *where, obj.db_cluster_snapshot_identifier)
        if hasattr(obj, "db_snapshot_identifier"):
            return ("snapshot", *where, obj.db_snapshot_identifier)
        if hasattr(obj, "db_instance_identifier"):
            return ("instance", *where, obj.db_instance_identifier)
        return ("cluster", *where, obj.db_cluster_identifier)
    except Exception:  # noqa: BLE001 - half-built moto objects (properties read during __init__)
        return None


def _db_name(key: Key, taken: set[str]) -> str:
    kind, account, region, identifier = key
    prefix = {"instance": "rds", "cluster": "rdsc", "snapshot": "snap", "cluster-snapshot": "csnap"}[kind]
    raw = f"{prefix}_{account}_{region}_{identifier}".lower()
    name = re.sub(r"[^a-z0-9_]", "_", raw)
    if len(name) > MAX_NAME:
        name = f"{name[:MAX_NAME - 9]}_{hashlib.sha1(raw.encode()).hexdigest()[:8]}"
    base, n = name, 2
    while name in taken:  # e.g. an instance renamed and a new one with its old identifier
        suffix = f"_{n}"
        name = base[: MAX_NAME - len(suffix)] + suffix
        n += 1
    return name


BackingT = TypeVar("BackingT", bound=Backing)


class Engine(Generic[BackingT]):
    """The resources one server backs, and what happens to their data.

    A subclass says which engine names it claims and supplies the SQL
    (``fill``, ``copy_data``, ``drop_data``, ``change_password``,
    ``server_databases``); the bookkeeping is here.  All of it under
    ``self.lock`` (request threads, the ticker and the endpoints share it).
    """

    instance_engines: ClassVar[tuple[str, ...]] = ()
    cluster_engines: ClassVar[tuple[str, ...]] = ()
    default_master: ClassVar[str] = ""  # the master user name when CreateDB* gives none
    data_label: ClassVar[str] = ""  # "PostgreSQL" / "MySQL", in control API errors
    backing_type: type[BackingT]
    endpoint_type: type["Endpoint"]

    def __init__(self, server: "ServerProcess") -> None:
        self.server = server
        server.on_exit = self.shutdown
        self.lock = threading.RLock()
        self.by_key: dict[Key, BackingT] = {}
        # snapshot key -> key of the instance/cluster whose data it takes when it completes
        self.pending: dict[Key, Key] = {}
        # Every master password set by ModifyDBInstance/ModifyDBCluster, for tests that prove a
        # client never logs or publishes the password it set (the emulator is a test bed: it
        # shows them in ``status``).
        self.passwords_set: list[dict[str, str]] = []

    # ------------------------------------------------------------ the engine's part
    def fill(self, backing: BackingT, password: str | None) -> None:
        """Data of a new instance/cluster: an empty database whose master has ``password``."""
        raise NotImplementedError

    def copy_data(self, source: BackingT, target: BackingT) -> None:
        """``target``'s data (and master password) := ``source``'s."""
        raise NotImplementedError

    def drop_data(self, backing: BackingT) -> None:
        """Drop the database (and login) of a resource that is gone (the server is running)."""
        raise NotImplementedError

    def change_password(self, backing: BackingT, password: str) -> None:
        raise NotImplementedError

    def server_databases(self) -> list[str]:
        """The databases on the server, less its own."""
        raise NotImplementedError

    # ------------------------------------------------------------------ bookkeeping
    def claims(self, resource: Any, kind: str) -> bool:
        """Whether this engine backs a new instance/cluster (an instance in a cluster has the cluster's data)."""
        engine = getattr(resource, "engine", None)
        if kind == "instance":
            return engine in self.instance_engines and not getattr(resource, "db_cluster_identifier", None)
        return engine in self.cluster_engines

    def backing_of(self, obj: Any) -> BackingT | None:
        """The database behind a moto resource; an instance in a cluster resolves to the cluster's."""
        key = key_of(obj)
        if key is None:
            return None
        found = self.by_key.get(key)
        if found is None and key[0] == "instance":
            cluster_id = getattr(obj, "db_cluster_identifier", None)
            if cluster_id:
                found = self.by_key.get(("cluster", key[1], key[2], cluster_id))
        return found

    def new_backing(self, key: Key, master: str, db_name: str | None) -> BackingT:
        """A backing under a name free on this server; instances and clusters get their endpoint."""
        _, account, region, ident = key
        name = _db_name(key, {b.db for b in self.by_key.values()})
        backing = self.backing_type(name, key[0], account, region, ident, master, db_name)
        if key[0] in LIVE_KINDS:
            backing.proxy = self.endpoint_type(backing.key)
        return backing

    def back_resource(self, resource: Any, kind: str, db_name: str | None, password: str | None, restore_from: Any) -> None:
        """Register a new instance/cluster: its endpoint and its data (a copy of the snapshot's for a restore)."""
        key = key_of(resource)
        assert key is not None
        with self.lock:
            self.server.ensure()  # started with the first resource it backs, so failures show at once
            backing = self.new_backing(key, resource.master_username or self.default_master, db_name)
            try:
                source = self.by_key.get(key_of(restore_from)) if restore_from is not None else None  # type: ignore[arg-type]
                if source is not None:
                    backing.master_username = source.master_username
                    self.copy_data(source, backing)
                else:
                    self.fill(backing, password)
            except BaseException:
                if backing.proxy:
                    backing.proxy.close()
                raise
            self.forget(backing.key)  # a leftover under the same identifier (not expected: moto refuses duplicates)
            self.by_key[backing.key] = backing

    def forget(self, key: Key | None) -> None:
        if key is None:
            return
        with self.lock:
            self.pending.pop(key, None)
            backing = self.by_key.pop(key, None)
            if backing is None:
                return
            if backing.proxy:
                backing.proxy.close()
            if self.server.running:
                self.drop_data(backing)

    def rekey(self, old: Key | None, new_identifier: str) -> None:
        if old is None:
            return
        with self.lock:
            backing = self.by_key.pop(old, None)
            if backing is None:
                return
            backing.identifier = new_identifier
            self.by_key[backing.key] = backing
            if backing.proxy:
                backing.proxy.key = backing.key
            for snap_key, src in list(self.pending.items()):
                if src == old:
                    self.pending[snap_key] = backing.key

    def snapshot_of(self, snap_key: Key, source: BackingT) -> None:
        """A new snapshot database ``snap_key`` := a copy of ``source`` (an instance, cluster or snapshot)."""
        backing = self.new_backing(snap_key, source.master_username, source.db_name)
        self.copy_data(source, backing)
        self.by_key[snap_key] = backing

    def capture(self, snap_key: Key, source_key: Key) -> None:
        """Copy the source's database into the snapshot's (the moment the snapshot is taken)."""
        source = self.by_key.get(source_key)
        if source is None:
            raise self.server.error(f"the data of {source_key[3]} is gone")
        self.snapshot_of(snap_key, source)

    def capture_pending_of(self, source_key: Key | None) -> None:
        """Snapshots still in progress take their data now (final snapshot at deletion)."""
        if source_key is None:
            return
        with self.lock:
            for snap_key, src in list(self.pending.items()):
                if src == source_key:
                    del self.pending[snap_key]
                    try:
                        self.capture(snap_key, src)
                    except Exception:  # noqa: BLE001
                        LOG.exception("snapshot %s: taking its data failed", snap_key[3])

    def snapshot_completed(self, snap: Any, copy_of: Any = None) -> bool:
        """A snapshot or copy completes; False = the snapshot failed.

        A created snapshot copies its instance's/cluster's database; a copy
        copies its source snapshot's.  Snapshots this engine doesn't back:
        nothing to do.
        """
        snap_key = key_of(snap)
        if snap_key is None:
            return True
        with self.lock:
            try:
                if copy_of is None:
                    source_key = self.pending.pop(snap_key, None)
                    if source_key is not None:
                        self.capture(snap_key, source_key)
                    return True
                source = self.by_key.get(key_of(copy_of))  # type: ignore[arg-type]
                if source is not None:
                    self.snapshot_of(snap_key, source)
                return True
            except Exception:  # noqa: BLE001
                LOG.exception("snapshot %s: copying its %s data failed", snap_key[3], self.server.label)
                return False

    def set_password(self, resource: Any, password: str) -> None:
        backing = self.by_key.get(key_of(resource))  # type: ignore[arg-type]
        if backing is None or backing.kind not in LIVE_KINDS:
            return
        with self.lock:
            _, account, region, identifier = backing.key
            self.passwords_set.append({"account": account, "region": region, "identifier": identifier, "password": password})
            self.change_password(backing, password)

    # ---------------------------------------------------------------- control
    def snapshot_data(self, arn: str) -> BackingT:
        """The data of snapshot ``arn`` for ``POST /_snapferry/corrupt-snapshot`` (call under the moto lock and ``self.lock``)."""
        snap = snapshot_by_arn(arn)
        snap_key = key_of(snap)
        backing = self.by_key.get(snap_key)  # type: ignore[arg-type]
        if backing is None:
            if snap_key in self.pending or snap.status == "creating":
                raise ControlError(f"snapshot {arn} is still being created (status {snap.status}): its data is taken when it completes")
            raise ControlError(f"snapshot {arn} has no {self.data_label} data (engine {snap.engine})")
        return backing

    def status(self) -> dict[str, Any]:
        """``GET /_snapferry/postgres`` / ``GET /_snapferry/mysql``."""
        with self.lock:
            server = self.server
            running = server.running
            return {
                "running": running,
                "pid": server.proc.pid if running and server.proc else None,
                "port": server.port if running else None,
                "version": server.version if running else None,
                "data_dir": str(server.root) if running else None,
                "start_seconds": server.start_seconds if running else None,
                "databases": [b.to_json() for b in self.by_key.values()],
                "server_databases": self.server_databases() if running else [],
                "pending_snapshots": len(self.pending),
                "master_passwords_set": list(self.passwords_set),
            }

    def reset(self) -> None:
        """moto reset: every database goes with the resources (the server stays up)."""
        with self.lock:
            backings = list(self.by_key.values())
            self.by_key.clear()
            self.pending.clear()
            for backing in backings:
                if backing.proxy:
                    backing.proxy.close()
                if self.server.running:
                    self.drop_data(backing)

    def shutdown(self) -> None:
        """Stop the server and every endpoint (emulator exit, atexit)."""
        locked = self.lock.acquire(timeout=10)  # a request thread stuck mid-operation must not keep the server alive
        try:
            for backing in list(self.by_key.values()):
                if backing.proxy:
                    backing.proxy.close()
            self.by_key.clear()
            self.pending.clear()
            self.passwords_set.clear()
            self.server.stop()
        finally:
            if locked:
                self.lock.release()


# ------------------------------------------------------------ control API
CORRUPT_ACTIONS = ("drop-table", "truncate", "backdate")


@dataclass
class Corruption:
    """A valid ``POST /_snapferry/corrupt-snapshot`` body."""

    arn: str
    action: str
    table: str
    column: str
    interval: str  # column and interval: backdate only ("" otherwise)


def parse_corruption(body: Any) -> Corruption:
    if not isinstance(body, dict):
        raise ControlError("body must be a JSON object")
    arn, action, table = body.get("snapshot_arn"), body.get("action"), body.get("table")
    if not isinstance(arn, str) or not arn:
        raise ControlError("snapshot_arn (string) is required")
    if action not in CORRUPT_ACTIONS:
        raise ControlError(f"action must be one of {list(CORRUPT_ACTIONS)}")
    if not isinstance(table, str) or not table:
        raise ControlError("table (string) is required")
    column, interval = body.get("column"), body.get("interval")
    if action == "backdate" and (not isinstance(column, str) or not column or not isinstance(interval, str) or not interval):
        raise ControlError("backdate needs column and interval (strings, e.g. \"5 hours\")")
    return Corruption(arn, action, table, column if isinstance(column, str) else "", interval if isinstance(interval, str) else "")


def snapshot_by_arn(arn: str) -> Any:
    """The moto DBSnapshot / DBClusterSnapshot of an ARN (call under the moto lock)."""
    m = RDS_ARN_RE.match(arn)
    if not m or m.group("type") not in ("snapshot", "cluster-snapshot"):
        raise ControlError(f"not an RDS snapshot or cluster snapshot ARN: {arn}")
    store = snapshot_store(rds_backend(m.group("account"), m.group("region")), m.group("type") == "cluster-snapshot")
    snap = store.get(m.group("name"))
    if snap is None:
        raise ControlError(f"no snapshot {arn}")
    return snap


# -------------------------------------------------------------------- server
class ServerProcess:
    """A database server the emulator runs: started on first use, restarted
    (empty) if it died, stopped at exit.  A subclass starts it (``_start``,
    built from ``_new_root`` and ``_launch``) and talks to it."""

    label: ClassVar[str] = ""  # "PostgreSQL" / "MariaDB", in messages
    dir_prefix: ClassVar[str] = ""  # its data directory: <_data_parent()>/<dir_prefix>XXXXXXXX
    pid_file: ClassVar[str] = ""  # the server's pid file, relative to that directory
    stop_signal: ClassVar[int] = signal.SIGTERM
    stale_signal: ClassVar[int] = signal.SIGKILL  # for the server of an emulator that died
    error: ClassVar[type[DataError]] = DataError

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.root: Path | None = None
        self.conn: Any = None
        self.start_seconds: float | None = None
        self.version: str | None = None
        self.on_exit: Callable[[], None] = self.stop  # the engine's shutdown (Engine sets it)
        self._atexit = False

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure(self) -> None:
        if self.running:
            return
        if self.proc is not None:  # it died: start afresh (the databases are gone with it)
            LOG.error("the %s server exited (code %s); starting a new one", self.label, self.proc.poll())
            self.stop()
        self._start()

    def _start(self) -> None:
        raise NotImplementedError

    @property
    def socket_path(self) -> str:
        """The server's unix socket (its admin connection)."""
        raise NotImplementedError

    def _connect_admin(self) -> Any:
        raise NotImplementedError

    def _ping(self, conn: Any) -> None:
        """Raise if the admin connection broke."""
        raise NotImplementedError

    def _query_version(self) -> str:
        raise NotImplementedError

    def _wait_ready(self) -> bool:
        """Whether the server came up (then ``self.conn`` is the admin connection)."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            if os.path.exists(self.socket_path):
                try:
                    self.conn = self._connect_admin()
                    return True
                except Exception:  # noqa: BLE001 - still starting ("the database system is starting up")
                    pass
            time.sleep(0.02)
        return False

    def admin(self) -> Any:
        """The admin connection (started if need be; reconnects if it broke)."""
        self.ensure()
        if self.conn is not None:
            try:
                self._ping(self.conn)
                return self.conn
            except Exception:  # noqa: BLE001
                self.conn = None
        self.conn = self._connect_admin()
        return self.conn

    def _new_root(self) -> Path:
        """A fresh directory for the server's data (and the stale ones of dead emulators removed)."""
        base = _data_parent()
        base.mkdir(parents=True, exist_ok=True)
        self._clean_stale(base)
        root = Path(tempfile.mkdtemp(prefix=self.dir_prefix, dir=base))
        (root / "owner.pid").write_text(f"{os.getpid()}\n")
        self.root = root
        return root

    def _clean_stale(self, base: Path) -> None:
        """Remove data dirs of emulators that died without cleaning up (SIGKILL)."""
        for path in base.glob(f"{self.dir_prefix}*"):
            try:
                owner = int((path / "owner.pid").read_text().strip())
            except (OSError, ValueError):
                continue
            if _pid_alive(owner):
                continue
            try:  # its server normally died with it (parent-death signal); make sure
                pid = int((path / self.pid_file).read_text().split()[0])
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    if str(path).encode() in fh.read():
                        os.kill(pid, self.stale_signal)
            except (OSError, ValueError, IndexError):
                pass
            shutil.rmtree(path, ignore_errors=True)

    def _launch(self, started: float, argv: Callable[[], list[str]], out: Path, log: Path, user_kw: dict[str, Any], name: str) -> None:
        """Run the server on a free port (``argv`` reads ``self.port``) until it is ready; raise ``error`` if it never is."""
        assert self.root is not None
        if not self._atexit:
            atexit.register(self.on_exit)
            self._atexit = True
            _raise_fd_limit()  # one listening socket per endpoint
        last = ""
        for _ in range(3):  # another process may take the free port first
            self.port = _free_port()
            self.proc = _spawn(argv(), out, user_kw, name=name)
            if self._wait_ready():
                self.start_seconds = time.monotonic() - started
                self.version = self._query_version()
                LOG.info("%s %s started on %s:%s in %.2fs", self.label, self.version, ADDRESS, self.port, self.start_seconds)
                return
            last = _tail(log)
            self._kill()
            if "already in use" not in last:
                break
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = self.proc = self.port = None
        raise self.error(f"the {self.label} server did not start: {last}")

    def _kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(self.stop_signal)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def stop(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001
                pass
            self.conn = None
        self._kill()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
        self.proc = self.port = self.root = None


def _data_parent() -> Path:
    """Where the data directory goes: ``SNAPFERRY_EMULATOR_PG_DIR``, else ``/dev/shm``
    when it has room (memory: CREATE DATABASE copies ~8 MB, several times
    faster than on a busy disk), else the temp directory."""
    chosen = os.environ.get("SNAPFERRY_EMULATOR_PG_DIR")
    if chosen:
        return Path(chosen)
    shm = Path("/dev/shm")
    try:
        if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free >= 2 << 30:
            return shm
    except OSError:
        pass
    return Path(tempfile.gettempdir())

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((ADDRESS, 0))
        return int(s.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _spawn(argv: list[str], log_path: Path, user_kw: dict[str, Any], name: str = "postgres") -> subprocess.Popen[bytes]:
    """Start the server from a thread that lives as long as it does.

    On Linux the server gets SIGQUIT (immediate shutdown) when that thread
    ends, which happens at the latest when the emulator process dies, however
    it dies: no orphaned server even after SIGKILL.  The parent-death signal
    is per thread, hence the dedicated thread (request threads are short-lived).
    """
    box: dict[str, Any] = {}
    started = threading.Event()
    prctl = None
    if sys.platform.startswith("linux"):
        try:
            prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            prctl = None

    def child_setup() -> None:
        if prctl is not None:
            prctl(1, int(signal.SIGQUIT))  # PR_SET_PDEATHSIG

    def run() -> None:
        try:
            with open(log_path, "ab") as log:
                box["proc"] = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C in a terminal goes to the emulator, which stops it
                    preexec_fn=child_setup,  # noqa: PLW1509 - only a prctl call
                    **user_kw,
                )
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc
            started.set()
            return
        started.set()
        box["proc"].wait()

    threading.Thread(target=run, name=f"snapferry-{name}", daemon=True).start()
    started.wait()
    if "error" in box:
        raise DataError(f"cannot start {name}: {box['error']}")
    return box["proc"]


def _raise_fd_limit() -> None:
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = max(soft, 65536)
        if soft != resource.RLIM_INFINITY and soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""



# ----------------------------------------------------------------------- TLS
CA_NAME = "snapferry emulator RDS CA"
_CERT_LOCK = threading.Lock()
_CERTS: tuple[bytes, ssl.SSLContext] | None = None  # (CA certificate PEM, the endpoints' server context)


def ca_pem() -> bytes:
    """The emulator's CA certificate (PEM), ``GET /_snapferry/rds-ca``: what a
    client trusts to verify the endpoints, as AWS's RDS CA bundle on AWS."""
    return _certs()[0]


def server_context() -> ssl.SSLContext | None:
    try:
        return _certs()[1]
    except Exception:  # noqa: BLE001 - then SSLRequest is answered N: clients may go on in clear text
        LOG.exception("cannot make the endpoints' TLS certificate")
        return None


def _certs() -> tuple[bytes, ssl.SSLContext]:
    """Made on first use (start-up stays fast), once per emulator process."""
    global _CERTS
    with _CERT_LOCK:
        if _CERTS is None:
            _CERTS = _make_certs()
        return _CERTS


def _make_certs() -> tuple[bytes, ssl.SSLContext]:
    """A CA and a server certificate for 127.0.0.1 / localhost that it signs.

    Shaped for rustls/webpki (verify-full), the strictest client: X.509 v3; the
    CA with critical basicConstraints CA=true and keyUsage keyCertSign; the
    leaf an end entity (CA=false) whose names are in subjectAltName (webpki
    ignores the CN), with serverAuth.  EC P-256 keys: made in milliseconds.
    The CA's key is dropped once it has signed; the server's key lives in the
    SSL context (its file exists only while the context loads it).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def usage(**on: bool) -> x509.KeyUsage:
        names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
        return x509.KeyUsage(**{n: on.get(n, False) for n in names})

    def builder(subject: str, issuer: x509.Name, key: Any) -> x509.CertificateBuilder:
        now = datetime.now(timezone.utc)
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))  # clock skew
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    ca = (
        builder(CA_NAME, ca_name, ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        builder("localhost", ca.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ADDRESS)), x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(["postgresql"])  # what PostgreSQL 17+ answers (libpq 17+ offers it)
    # load_cert_chain reads files only: a private directory (0700), the key 0600, gone once loaded.
    tmp = Path(tempfile.mkdtemp(prefix="snapferry-tls-"))
    try:
        (tmp / "cert.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        fd = os.open(tmp / "key.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        context.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ca.public_bytes(serialization.Encoding.PEM), context



# ----------------------------------------------------------------- endpoints
class _Acceptor:
    """One thread accepting connections on every endpoint's listening socket."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.selector: selectors.BaseSelector | None = None

    def add(self, proxy: "Endpoint") -> None:
        with self.lock:
            if self.selector is None:
                self.selector = selectors.DefaultSelector()
                threading.Thread(target=self._loop, args=(self.selector,), name="snapferry-pg-endpoints", daemon=True).start()
            self.selector.register(proxy.sock, selectors.EVENT_READ, proxy)

    def remove(self, proxy: "Endpoint") -> None:
        with self.lock:
            if self.selector is not None:
                try:
                    self.selector.unregister(proxy.sock)
                except (KeyError, ValueError, OSError):
                    pass

    @staticmethod
    def _loop(selector: selectors.BaseSelector) -> None:
        while True:
            try:
                events = selector.select(timeout=0.5)
            except (OSError, ValueError):
                time.sleep(0.05)  # a socket closed meanwhile
                continue
            for key, _ in events:
                proxy = key.data
                try:
                    client, _ = proxy.sock.accept()
                except OSError:
                    continue
                client.setblocking(True)
                threading.Thread(target=proxy.serve, args=(client,), name="snapferry-pg-conn", daemon=True).start()


ACCEPTOR = _Acceptor()


class Endpoint:
    """The port of one instance/cluster: ``serve`` speaks the engine's protocol
    on each accepted connection (a thread per connection)."""

    def __init__(self, key: Key) -> None:
        self.key = key
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ADDRESS, 0))
        self.sock.listen(64)
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])
        self.closed = False
        ACCEPTOR.add(self)

    def close(self) -> None:
        self.closed = True
        ACCEPTOR.remove(self)
        self.sock.close()

    def serve(self, client: socket.socket) -> None:
        raise NotImplementedError


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ValueError("connection closed")
        data += chunk
    return data



def pump(client: socket.socket, upstream: socket.socket) -> None:
    """Pass bytes both ways until either side closes, in this one thread.

    One thread and non-blocking sockets, not a thread per direction: an SSL
    object must not be used by two threads at once (OpenSSL; a concurrent
    read and write can corrupt it).  Bytes already decrypted inside the TLS
    layer are invisible to select(), so each round tries to read before it
    waits.  A direction reads again only once what it read is written, so
    when a side closes nothing is left to pass on.
    """
    socks = (client, upstream)
    other = {client: upstream, upstream: client}
    out = {client: b"", upstream: b""}  # read from the other side, not yet written to this one
    # What a recv/send that could not go on waits for (TLS: a read may need to write and vice versa).
    wait = {(s, op): ev for s in socks for op, ev in (("recv", selectors.EVENT_READ), ("send", selectors.EVENT_WRITE))}
    watched = {client: 0, upstream: 0}
    selector = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
    try:
        while True:
            moved = False
            for src in socks:
                dst = other[src]
                if not out[dst]:
                    data = _attempt(wait, src, "recv", src.recv, 65536)
                    if data == b"":
                        return
                    if data:
                        out[dst], moved = data, True
                if out[dst]:
                    # A TLS write that has to wait is retried with the same bytes (OpenSSL's rule).
                    sent = _attempt(wait, dst, "send", dst.send, out[dst])
                    if sent:
                        out[dst], moved = out[dst][sent:], True
            if moved:
                continue
            for s in socks:
                events = (0 if out[other[s]] else wait[s, "recv"]) | (wait[s, "send"] if out[s] else 0)
                if events != watched[s]:
                    if watched[s]:
                        selector.unregister(s)
                    if events:
                        selector.register(s, events)
                    watched[s] = events
            selector.select()
    finally:
        selector.close()


def _attempt(wait: dict[tuple[socket.socket, str], int], sock: socket.socket, op: str, call: Any, arg: Any) -> Any:
    """``call(arg)`` on a non-blocking socket; None if it has to wait (``wait`` says for what)."""
    try:
        return call(arg)
    except ssl.SSLWantReadError:
        wait[sock, op] = selectors.EVENT_READ
    except ssl.SSLWantWriteError:
        wait[sock, op] = selectors.EVENT_WRITE
    except BlockingIOError:
        wait[sock, op] = selectors.EVENT_READ if op == "recv" else selectors.EVENT_WRITE
    return None


def close_socket(sock: socket.socket) -> None:
    """Close a client or server socket; a TLS client gets a close_notify first
    (non-blocking: sent without waiting for the client's, so it never hangs)."""
    if isinstance(sock, ssl.SSLSocket):
        try:
            sock.setblocking(False)
            sock.unwrap()
        except (OSError, ValueError):
            pass
    try:
        sock.close()
    except OSError:
        pass


def _managed_password(resource: Any) -> str | None:
    """With ManageMasterUserPassword the password is the one in moto's Secrets Manager secret."""
    import json

    try:
        return str(json.loads(resource.master_user_secret.secret.secret_string)["password"])
    except Exception:  # noqa: BLE001
        return None



# ---------------------------------------------------------------- install
_ENGINES: tuple[Engine[Any], ...] = ()
_RESTORE = threading.local()  # .restore: the snapshot a RestoreDB* call restores, for the CreateDB* it makes


def backing_of(obj: Any) -> Backing | None:
    """The database behind a moto resource, whichever engine backs it."""
    for engine in _ENGINES:
        found = engine.backing_of(obj)
        if found is not None:
            return found
    return None


def snapshot_completed(snap: Any, copy_of: Any = None) -> bool:
    """Called by the ticker when a snapshot or copy completes; False = the snapshot failed."""
    return all(engine.snapshot_completed(snap, copy_of) for engine in _ENGINES)


def reset() -> None:
    """moto reset: every backed resource's data goes (the servers stay up)."""
    for engine in _ENGINES:
        engine.reset()


def shutdown() -> None:
    """Stop every server and endpoint (emulator exit)."""
    for engine in _ENGINES:
        engine.shutdown()


def install(*engines: Engine[Any]) -> None:  # noqa: C901 - one place for all data patches
    """Wrap the RDS backend (after ``rds.install``: these wrap its patches) for ``engines``."""
    global _ENGINES
    from moto.rds import models as m

    B = m.RDSBackend
    if getattr(B, "_snapferry_data", False):
        return
    B._snapferry_data = True
    _ENGINES = engines

    # Endpoints: 127.0.0.1 and the proxy's port for backed resources.  The
    # configured port stays in __dict__["port"] (what moto copies on restore).
    orig_address = m.DBInstance.address

    def _address(self: Any) -> str:
        return ADDRESS if backing_of(self) is not None else orig_address.fget(self)

    def _port_get(self: Any) -> Any:
        backing = backing_of(self)
        if backing is not None and backing.port:
            return backing.port
        return self.__dict__.get("port")

    def _port_set(self: Any, value: Any) -> None:
        self.__dict__["port"] = value

    m.DBInstance.address = property(_address)
    m.DBInstance.port = property(_port_get, _port_set)
    m.DBCluster.port = property(_port_get, _port_set)
    orig_endpoint, orig_reader = m.DBCluster.endpoint, m.DBCluster.reader_endpoint
    m.DBCluster.endpoint = property(lambda self: ADDRESS if backing_of(self) is not None else orig_endpoint.fget(self))
    m.DBCluster.reader_endpoint = property(lambda self: ADDRESS if backing_of(self) is not None else orig_reader.fget(self))

    # Create / restore instances and clusters: the engine that claims it backs it.
    orig_create_instance = B.create_db_instance
    orig_create_cluster = B.create_db_cluster
    orig_restore_instance = B.restore_db_instance_from_db_snapshot
    orig_restore_cluster = B.restore_db_cluster_from_snapshot

    def _take_restore() -> Any:
        snap = getattr(_RESTORE, "restore", None)
        _RESTORE.restore = None
        return snap

    def _back(resource: Any, kind: str, db_name: str | None, kwargs: dict[str, Any], restore_from: Any) -> None:
        for engine in _ENGINES:
            if engine.claims(resource, kind):
                managed = getattr(resource, "manage_master_user_password", False)
                password = _managed_password(resource) if managed else kwargs.get("master_user_password")
                engine.back_resource(resource, kind, db_name, password, restore_from)
                return

    def create_db_instance(self: Any, db_kwargs: dict[str, Any]) -> Any:
        restore_from = _take_restore()
        db = orig_create_instance(self, db_kwargs)
        try:
            _back(db, "instance", db.db_name, db_kwargs, restore_from)
        except BaseException:
            self.databases.pop(db.db_instance_identifier, None)
            raise
        return db

    def create_db_cluster(self: Any, kwargs: dict[str, Any]) -> Any:
        restore_from = _take_restore()
        answer = orig_create_cluster(self, kwargs)
        cluster = self.clusters.get(answer.db_cluster_identifier)
        if cluster is not None:
            try:
                _back(cluster, "cluster", cluster.database_name, kwargs, restore_from)
            except BaseException:
                self.clusters.pop(answer.db_cluster_identifier, None)
                raise
        return answer

    def restore_db_instance_from_db_snapshot(self: Any, from_snapshot_id: str, overrides: dict[str, Any]) -> Any:
        _RESTORE.restore = find_snapshot(self, from_snapshot_id, False)
        try:
            return orig_restore_instance(self, from_snapshot_id, overrides)
        finally:
            _RESTORE.restore = None

    def restore_db_cluster_from_snapshot(self: Any, from_snapshot_id: str, overrides: dict[str, Any]) -> Any:
        _RESTORE.restore = find_snapshot(self, from_snapshot_id, True)
        try:
            return orig_restore_cluster(self, from_snapshot_id, overrides)
        finally:
            _RESTORE.restore = None

    B.create_db_instance = create_db_instance
    B.create_db_cluster = create_db_cluster
    B.restore_db_instance_from_db_snapshot = restore_db_instance_from_db_snapshot
    B.restore_db_cluster_from_snapshot = restore_db_cluster_from_snapshot

    # Snapshots: remember whose data to take when they complete.
    orig_create_snapshot = B.create_db_snapshot
    orig_create_cluster_snapshot = B.create_db_cluster_snapshot

    def _take_later(snap: Any, source_obj: Any, kinds: tuple[str, ...]) -> None:
        for engine in _ENGINES:
            source = engine.backing_of(source_obj)
            if source is not None and source.kind in kinds and snap.status != "available":
                engine.pending[key_of(snap)] = source.key  # type: ignore[index]

    def create_db_snapshot(self: Any, db_instance_identifier: str, db_snapshot_identifier: str, *args: Any, **kwargs: Any) -> Any:
        snap = orig_create_snapshot(self, db_instance_identifier, db_snapshot_identifier, *args, **kwargs)
        _take_later(snap, self.databases.get(db_instance_identifier), ("instance",))
        return snap

    def create_db_cluster_snapshot(self: Any, db_cluster_identifier: str, db_cluster_snapshot_identifier: str, *args: Any, **kwargs: Any) -> Any:
        snap = orig_create_cluster_snapshot(self, db_cluster_identifier, db_cluster_snapshot_identifier, *args, **kwargs)
        _take_later(snap, self.clusters.get(db_cluster_identifier), LIVE_KINDS)
        return snap

    B.create_db_snapshot = create_db_snapshot
    B.create_db_cluster_snapshot = create_db_cluster_snapshot

    # Deletes drop the data (in-progress snapshots of a deleted source take theirs first).
    orig_delete_instance = B.delete_db_instance
    orig_delete_cluster = B.delete_db_cluster
    orig_delete_snapshot = B.delete_db_snapshot
    orig_delete_cluster_snapshot = B.delete_db_cluster_snapshot

    def _drop_source(resource: Any) -> None:
        key = key_of(resource)
        for engine in _ENGINES:
            if key is not None and key in engine.by_key:
                engine.capture_pending_of(key)
                engine.forget(key)

    def _drop_snapshot(snap: Any) -> None:
        for engine in _ENGINES:
            engine.forget(key_of(snap))

    def delete_db_instance(self: Any, db_instance_identifier: str, *args: Any, **kwargs: Any) -> Any:
        db = orig_delete_instance(self, db_instance_identifier, *args, **kwargs)
        _drop_source(db)
        return db

    def delete_db_cluster(self: Any, cluster_identifier: str, *args: Any, **kwargs: Any) -> Any:
        cluster = orig_delete_cluster(self, cluster_identifier, *args, **kwargs)
        _drop_source(cluster)
        return cluster

    def delete_db_snapshot(self: Any, db_snapshot_identifier: str) -> Any:
        snap = orig_delete_snapshot(self, db_snapshot_identifier)
        _drop_snapshot(snap)
        return snap

    def delete_db_cluster_snapshot(self: Any, db_snapshot_identifier: str) -> Any:
        snap = orig_delete_cluster_snapshot(self, db_snapshot_identifier)
        _drop_snapshot(snap)
        return snap

    B.delete_db_instance = delete_db_instance
    B.delete_db_cluster = delete_db_cluster
    B.delete_db_snapshot = delete_db_snapshot
    B.delete_db_cluster_snapshot = delete_db_cluster_snapshot

    # Modify: new master password at once; renames keep the data.
    orig_modify_instance = B.modify_db_instance
    orig_modify_cluster = B.modify_db_cluster

    def _modified(old_key: Key | None, renamed_to: str | None, resource: Any, password: str | None) -> None:
        for engine in _ENGINES:
            if renamed_to and old_key is not None:
                engine.rekey(old_key, renamed_to)
            if password:
                engine.set_password(resource, password)

    # moto pops the new identifier from the arguments: read them first.
    def modify_db_instance(self: Any, db_instance_identifier: str, db_kwargs: dict[str, Any]) -> Any:
        password, new_id = db_kwargs.get("master_user_password"), db_kwargs.get("new_db_instance_identifier")
        old_key = key_of(self.databases.get(db_instance_identifier)) if db_instance_identifier in self.databases else None
        db = orig_modify_instance(self, db_instance_identifier, db_kwargs)
        _modified(old_key, db.db_instance_identifier if new_id else None, db, password)
        return db

    def modify_db_cluster(self: Any, kwargs: dict[str, Any]) -> Any:
        password, new_id = kwargs.get("master_user_password"), kwargs.get("new_db_cluster_identifier")
        old = self.clusters.get(kwargs.get("db_cluster_identifier"))
        old_key = key_of(old) if old is not None else None
        answer = orig_modify_cluster(self, kwargs)
        renamed_to = answer.db_cluster_identifier if new_id else None
        _modified(old_key, renamed_to, self.clusters.get(answer.db_cluster_identifier), password)
        return answer

    B.modify_db_instance = modify_db_instance
    B.modify_db_cluster = modify_db_cluster
