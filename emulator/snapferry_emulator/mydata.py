"""MariaDB data behind mysql / mariadb DB instances and Aurora MySQL clusters.

The MySQL-engine twin of ``pgdata`` (read that first: the same shapes and
names are used here wherever they apply).  What changes and why (the pinned
moto's behaviour in brackets):

* ``Engine=mysql`` and ``Engine=mariadb`` DB instances and ``aurora-mysql``
  DB clusters are backed by a real MariaDB server (Debian's
  ``mariadb-server-core``: ``/usr/sbin/mariadbd``, installed by
  ``scripts/lib.sh`` ``ensure_mariadb``) that the emulator starts itself,
  lazily on the first such CreateDBInstance/CreateDBCluster/restore, and stops
  when it exits [moto keeps metadata only: an endpoint that resolves
  nowhere].  Each instance or cluster is one database and one account on that
  server; a client reaches it as on AWS: ``Endpoint.Address``
  (``127.0.0.1``) and ``Endpoint.Port`` (a port of its own), the master user
  name and password, and the ``DBName`` given at creation or no database.
  Aurora: the cluster's ``Endpoint``, ``ReaderEndpoint`` and ``Port`` and
  every member instance's endpoint reach the cluster's database.
* Each endpoint port is a small proxy speaking the MySQL client/server
  protocol up to the end of authentication, then passing bytes.  It forwards
  the server's greeting (adding ``CLIENT_SSL``), answers a client's
  SSLRequest with a TLS handshake (the certificate and CA of ``pgdata``:
  ``GET /_snapferry/rds-ca``), and rewrites the HandshakeResponse41 before the
  server sees it: the master user name becomes the instance's own account
  (MariaDB accounts are server-wide, RDS master users are per instance), the
  database (``DBName``, the internal name, or none) becomes the instance's
  database, ``CLIENT_SSL`` is cleared and the sequence id is the one the
  server expects (it never saw the SSLRequest; the proxy renumbers the
  packets of the rest of the authentication exchange, e.g. an auth switch).
  The ``mysql_native_password`` scramble doesn't depend on the user name, so
  the server checks the real password.  Accounts use
  ``mysql_native_password``: a client that answers with another plugin
  (``caching_sha2_password``, MySQL 8's default) is switched to it by the
  server.  The leg to the server is clear text over 127.0.0.1; clients that
  don't ask for TLS go on in clear text.  Later ``COM_CHANGE_USER`` packets
  pass unrewritten (changing to the master user name mid-session fails).
* Databases and accounts are made at once (a few milliseconds: no lazy
  creation as in ``pgdata``).
* A snapshot (manual, automated, final) is a copy of the database taken when
  the snapshot completes: for each base table ``SHOW CREATE TABLE`` in the
  snapshot's database and ``INSERT ... SELECT`` of its rows, all source tables
  read-locked meanwhile (writers wait; open connections stay, except those
  whose uncommitted writes hold a table for 2 s: they are closed).  Copies (any
  account or region) copy the snapshot's database when they complete;
  restores copy it into the new database.  The snapshot keeps the master
  password (hash) the account had when it was taken (AWS restores take no
  master password: RDS API RestoreDBInstanceFromDBSnapshot,
  RestoreDBClusterFromSnapshot).  Views, routines, triggers, events and
  sequences are not copied.
* ``ModifyDBInstance`` / ``ModifyDBCluster`` ``MasterUserPassword`` change the
  account's password at once (RDS API *ModifyDBInstance*).  Deleting an
  instance, cluster or snapshot drops its database (and account).
* Control API: ``POST /_snapferry/corrupt-snapshot`` (drop-table, truncate,
  backdate; the interval "5 hours" is MySQL's ``INTERVAL 5 HOUR``) and
  ``GET /_snapferry/mysql`` (the server, its databases, the passwords set).

Naming on the server: database and account (``'<name>'@'%'``) are
``rds_<account>_<region>_<id>`` (clusters ``rdsc_``, snapshots ``snap_``,
cluster snapshots ``csnap_``; snapshots have no account), lower case,
``[a-z0-9_]``, at most 63 characters (longer names end in a hash), as in
``pgdata``.  The account has all privileges on its database with grant
option, plus ``CREATE USER`` (as RDS's master user); accounts the master
creates are server-wide and reach their database through the proxy under
their own names.

Everything else (Multi-AZ DB clusters, read replicas, other engines) is not
touched: no server is started for them.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import pgdata
from .pgdata import ACCEPTOR, ADDRESS, PG_MAX_NAME, _close, _key, _managed_password, _pump, _recv_exact
from .state import ControlError

LOG = logging.getLogger("snapferry_emulator")

INSTANCE_ENGINES = ("mysql", "mariadb")
CLUSTER_ENGINES = ("aurora-mysql",)
ENGINES = INSTANCE_ENGINES + CLUSTER_ENGINES
MARIADBD = "/usr/sbin/mariadbd"
SHARE = Path("/usr/share/mysql")  # Debian's SQL scripts for the system tables
START_TIMEOUT = 60.0
LOCK_WAIT_SECONDS = 2  # how long a snapshot waits for clients' uncommitted writes before closing their connections
SYSTEM_DATABASES = ("mysql", "information_schema", "performance_schema", "sys")

# Capability flags and packet headers (MySQL client/server protocol, "Capabilities Flags",
# "Protocol::HandshakeResponse41", "Protocol::SSLRequest", "OK_Packet", "ERR_Packet").
CLIENT_CONNECT_WITH_DB = 0x00000008
CLIENT_SSL = 0x00000800
CLIENT_SECURE_CONNECTION = 0x00008000
CLIENT_PLUGIN_AUTH = 0x00080000
CLIENT_CONNECT_ATTRS = 0x00100000
CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 0x00200000
SSL_REQUEST_LENGTH = 32
OK, ERR = 0x00, 0xFF
ER_ACCESS_DENIED = 1045
ER_BAD_DB = 1049
ER_SERVER_SHUTDOWN = 1053
ER_LOCK_WAIT_TIMEOUT = 1205

_LOCK = threading.RLock()
_TLS = threading.local()


class MyError(RuntimeError):
    """The MariaDB server could not be started or an operation on it failed."""


# ------------------------------------------------------------------ registry
@dataclass
class Backing:
    """One database on the server (and, for instances and clusters, its account of the same name)."""

    db: str
    kind: str  # instance | cluster | snapshot | cluster-snapshot
    account: str
    region: str
    identifier: str
    master_username: str
    db_name: str | None = None  # the RDS DBName / DatabaseName clients may ask for
    proxy: "_Proxy | None" = field(default=None, repr=False)
    # Snapshots: the master's mysql_native_password hash when the snapshot was taken.
    password_hash: str = field(default="", repr=False)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.kind, self.account, self.region, self.identifier)

    @property
    def port(self) -> int | None:
        return self.proxy.port if self.proxy else None

    def accepts(self, database: str) -> bool:
        return database in ("", self.db) or (self.db_name is not None and database == self.db_name)

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


_BY_KEY: dict[tuple[str, str, str, str], Backing] = {}
# snapshot key -> key of the instance/cluster whose data it takes when it completes
_PENDING: dict[tuple[str, str, str, str], tuple[str, str, str, str]] = {}


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


def _my_name(kind: str, account: str, region: str, identifier: str) -> str:
    """pgdata's naming scheme, unique among this server's databases."""
    import hashlib

    prefix = {"instance": "rds", "cluster": "rdsc", "snapshot": "snap", "cluster-snapshot": "csnap"}[kind]
    raw = f"{prefix}_{account}_{region}_{identifier}".lower()
    name = re.sub(r"[^a-z0-9_]", "_", raw)
    if len(name) > PG_MAX_NAME:
        name = f"{name[:PG_MAX_NAME - 9]}_{hashlib.sha1(raw.encode()).hexdigest()[:8]}"
    taken = {b.db for b in _BY_KEY.values()}
    base, n = name, 2
    while name in taken:
        suffix = f"_{n}"
        name = base[: PG_MAX_NAME - len(suffix)] + suffix
        n += 1
    return name


# -------------------------------------------------------------------- server
def _clean_stale(base: Path) -> None:
    """Remove data dirs of emulators that died without cleaning up (SIGKILL)."""
    for path in base.glob("snapferry-my-*"):
        try:
            owner = int((path / "owner.pid").read_text().strip())
        except (OSError, ValueError):
            continue
        if pgdata._pid_alive(owner):
            continue
        try:  # its server normally died with it (parent-death signal); make sure
            pid = int((path / "mariadbd.pid").read_text().split()[0])
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if str(path).encode() in fh.read():
                    os.kill(pid, signal.SIGKILL)
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
        assert self.root is not None
        return str(self.root / "mariadbd.sock")

    def ensure(self) -> None:
        if self.running:
            return
        if self.proc is not None:  # it died: start afresh (the databases are gone with it)
            LOG.error("the MariaDB server exited (code %s); starting a new one", self.proc.poll())
            self.stop()
        self._start()

    def _common(self, root: Path) -> list[str]:
        # --no-defaults must come first: no /etc/mysql/my.cnf.  mariadbd refuses to run as
        # root unless told so; the emulator's own user is the simplest honest choice.
        argv = [MARIADBD, "--no-defaults", f"--datadir={root / 'data'}", f"--tmpdir={root}"]
        if os.geteuid() == 0:
            argv.append("--user=root")
        return argv + [
            # Test data: no durability needed; small files (they live in memory under /dev/shm).
            "--skip-log-bin",
            "--innodb-flush-log-at-trx-commit=0",
            "--innodb-doublewrite=0",
            "--innodb-log-file-size=16M",
            "--innodb-buffer-pool-size=64M",
            "--performance-schema=OFF",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            "--max-allowed-packet=64M",  # RDS's default
        ]

    def _start(self) -> None:
        if not os.access(MARIADBD, os.X_OK):
            raise MyError(f"{MARIADBD} is missing: install Debian's mariadb-server-core (scripts/lib.sh ensure_mariadb does)")
        started = time.monotonic()
        base = pgdata._data_parent()
        base.mkdir(parents=True, exist_ok=True)
        _clean_stale(base)
        root = Path(tempfile.mkdtemp(prefix="snapferry-my-", dir=base))
        (root / "owner.pid").write_text(f"{os.getpid()}\n")
        (root / "data").mkdir()
        self.root = root
        done = subprocess.run(
            [*self._common(root), "--bootstrap", "--log-warnings=0", "--enforce-storage-engine="],
            input=_bootstrap_sql(), capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            self.root = None
            raise MyError(f"mariadbd --bootstrap failed ({done.returncode}): {done.stderr.decode(errors='replace').strip()[-2000:]}")
        if not self._atexit:
            atexit.register(shutdown)
            self._atexit = True
            pgdata._raise_fd_limit()
        last = ""
        for _ in range(3):  # another process may take the free port first
            self.port = pgdata._free_port()
            argv = [
                *self._common(root),
                f"--port={self.port}",
                f"--bind-address={ADDRESS}",
                f"--socket={self.socket_path}",
                f"--pid-file={root / 'mariadbd.pid'}",
                f"--log-error={root / 'mariadbd.log'}",
                "--skip-name-resolve",
                "--default-time-zone=+00:00",
                "--max-connections=200",
            ]
            self.proc = pgdata._spawn(argv, root / "mariadbd.out", {}, name="mariadb")
            if self._wait_ready():
                self.start_seconds = time.monotonic() - started
                self.version = str(self._query("SELECT VERSION()")[0][0])
                LOG.info("MariaDB %s started on %s:%s in %.2fs", self.version, ADDRESS, self.port, self.start_seconds)
                return
            last = pgdata._tail(root / "mariadbd.log")
            self._kill()
            if "Address already in use" not in last:
                break
        shutil.rmtree(root, ignore_errors=True)
        self.root = self.proc = self.port = None
        raise MyError(f"the MariaDB server did not start: {last}")

    def _connect(self) -> Any:
        import pymysql
        from pymysql.constants import CLIENT

        # FOUND_ROWS: UPDATE answers the rows matched, as PostgreSQL's row count.
        return pymysql.connect(unix_socket=self.socket_path, user="root", autocommit=True, client_flag=CLIENT.FOUND_ROWS, connect_timeout=5)

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            if os.path.exists(self.socket_path):
                try:
                    self.conn = self._connect()
                    return True
                except Exception:  # noqa: BLE001 - still starting
                    pass
            time.sleep(0.02)
        return False

    def admin(self) -> Any:
        """The admin (root, over the unix socket) connection; reconnects if it broke."""
        self.ensure()
        if self.conn is not None:
            try:
                self.conn.ping(reconnect=False)
                return self.conn
            except Exception:  # noqa: BLE001
                self.conn = None
        self.conn = self._connect()
        return self.conn

    def _query(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def _kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # normal shutdown
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


def _bootstrap_sql() -> bytes:
    """What ``mariadb-install-db`` feeds ``mariadbd --bootstrap``, less the help
    tables and the sys schema (seconds of work nobody here reads), and with one
    account: root@localhost without password, reachable over the unix socket
    only (``--skip-name-resolve``: TCP clients are never ``localhost``).
    Bootstrap mode reads one statement per line."""
    parts = [b"CREATE DATABASE IF NOT EXISTS mysql;\nUSE mysql;\nSET @auth_root_socket=NULL;\n"]
    for name in ("mysql_system_tables.sql", "mysql_performance_tables.sql"):
        try:
            parts.append((SHARE / name).read_bytes() + b"\n")
        except OSError as exc:
            raise MyError(f"{SHARE / name} is missing (Debian's mariadb-server-core ships it): {exc}") from None
    parts.append(b"""INSERT INTO global_priv VALUES ('localhost', 'root', '{"access":18446744073709551615}');\n""")
    return b"".join(parts)


SERVER = _Server()


def shutdown() -> None:
    """Stop the server and every proxy (emulator exit, atexit)."""
    locked = _LOCK.acquire(timeout=10)
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
    """moto reset: every database and account goes with the resources (the server stays up)."""
    with _LOCK:
        backings = list(_BY_KEY.values())
        _BY_KEY.clear()
        _PENDING.clear()
        for backing in backings:
            if backing.proxy:
                backing.proxy.close()
            if SERVER.running:
                _drop(backing.db)


def _server_databases() -> list[str]:
    rows = _run("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY 1")
    return [r[0] for r in rows if r[0] not in SYSTEM_DATABASES]


def status() -> dict[str, Any]:
    """``GET /_snapferry/mysql``."""
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
    return "`" + name.replace("`", "``") + "`"


def _run(sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    """One statement on the admin connection (call under _LOCK)."""
    conn = SERVER.admin()
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def _my_message(exc: Exception) -> str:
    args = getattr(exc, "args", ())
    if len(args) >= 2 and isinstance(args[0], int):
        return f"({args[0]}) {args[1]}"
    return str(exc)


def _drop(name: str) -> None:
    _run(f"DROP DATABASE IF EXISTS {_ident(name)}")
    _run("DROP USER IF EXISTS %s@'%%'", (name,))


def _password_hash(account: str) -> str:
    rows = _run("SELECT authentication_string FROM mysql.user WHERE User = %s AND Host = '%%'", (account,))
    return str(rows[0][0] or "") if rows else ""


def _create_account(name: str, password: str | None = None, password_hash: str = "") -> None:
    """The master's account: mysql_native_password (so any client's plugin is switched to it)."""
    if password_hash:
        _run("CREATE USER %s@'%%' IDENTIFIED VIA mysql_native_password USING %s", (name, password_hash))
    else:
        _run("CREATE USER %s@'%%' IDENTIFIED VIA mysql_native_password USING PASSWORD(%s)", (name, password or ""))
    _run(f"GRANT ALL PRIVILEGES ON {_ident(name)}.* TO %s@'%%' WITH GRANT OPTION", (name,))
    _run("GRANT CREATE USER ON *.* TO %s@'%%'", (name,))


def _create_database(name: str, like: str | None = None) -> None:
    charset, collation = "utf8mb4", "utf8mb4_general_ci"
    if like is not None:
        rows = _run("SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (like,))
        if rows:
            charset, collation = rows[0]
    _run(f"CREATE DATABASE {_ident(name)} CHARACTER SET {charset} COLLATE {collation}")


def _copy_tables(src: str, dst: str) -> None:
    """``dst`` (new, empty) := the base tables of ``src``, definitions and rows.

    ``SHOW CREATE TABLE`` keeps indexes, foreign keys and AUTO_INCREMENT
    counters (``CREATE TABLE ... LIKE`` drops foreign keys); generated columns
    are left out of the INSERT.  The rows are copied under ``LOCK TABLES``:
    one consistent moment across tables; clients' writes wait meanwhile.  A
    client whose uncommitted writes hold a table for ``LOCK_WAIT_SECONDS``
    has its connections closed (as ``pgdata`` closes them for TEMPLATE).
    """
    conn = SERVER.admin()
    tables = [r[0] for r in _run("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1", (src,))]
    if not tables:
        return
    with conn.cursor() as cur:
        cur.execute(f"SET SESSION lock_wait_timeout = {LOCK_WAIT_SECONDS}")
        cur.execute("SET SESSION foreign_key_checks = 0")
        try:
            cur.execute(f"USE {_ident(dst)}")
            columns: dict[str, list[str]] = {}
            for table in tables:
                cur.execute(f"SHOW CREATE TABLE {_ident(src)}.{_ident(table)}")
                cur.execute(cur.fetchone()[1])  # unqualified: created in dst; same-database foreign keys point into dst
                cur.execute(
                    "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND IS_GENERATED = 'NEVER' ORDER BY ORDINAL_POSITION",
                    (src, table),
                )
                columns[table] = [r[0] for r in cur.fetchall()]
            locks = [f"{_ident(src)}.{_ident(t)} READ" for t in tables] + [f"{_ident(dst)}.{_ident(t)} WRITE" for t in tables]
            try:
                cur.execute("LOCK TABLES " + ", ".join(locks))
            except Exception as exc:  # noqa: BLE001
                if getattr(exc, "args", (None,))[0] != ER_LOCK_WAIT_TIMEOUT:
                    raise
                # A client's uncommitted writes hold the tables: close its connections (it reconnects).
                cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE (DB = %s OR USER = %s) AND ID <> CONNECTION_ID()", (src, src))
                for (session,) in cur.fetchall():
                    cur.execute(f"KILL CONNECTION {int(session)}")
                cur.execute("LOCK TABLES " + ", ".join(locks))
            try:
                for table in tables:
                    cols = ", ".join(_ident(c) for c in columns[table])
                    cur.execute(f"INSERT INTO {_ident(dst)}.{_ident(table)} ({cols}) SELECT {cols} FROM {_ident(src)}.{_ident(table)}")
            finally:
                cur.execute("UNLOCK TABLES")
        finally:
            cur.execute("SET SESSION foreign_key_checks = 1")
            cur.execute("USE mysql")


# --------------------------------------------------------------------- proxy
class _Proxy:
    """The endpoint of one instance/cluster: MySQL protocol up to authentication, then bytes."""

    def __init__(self, key: tuple[str, str, str, str]) -> None:
        self.key = key
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ADDRESS, 0))
        self.sock.listen(64)
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])
        self.closed = False
        ACCEPTOR.add(self)  # pgdata's accept thread: it calls serve() on a thread per connection

    def close(self) -> None:
        self.closed = True
        ACCEPTOR.remove(self)
        self.sock.close()

    def serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            client.settimeout(30)  # also bounds the TLS handshake
            backing = _BY_KEY.get(self.key)
            server_port = SERVER.port if SERVER.running else None
            if backing is None or self.closed or not server_port:
                client.sendall(_packet(0, _err_payload(ER_SERVER_SHUTDOWN, "08S01", "the DB instance is not available", protocol41=False)))
                return
            # The leg to the server stays plain: it never leaves 127.0.0.1.
            upstream = socket.create_connection((ADDRESS, server_port), timeout=30)
            seq, greeting = _read_packet(upstream)
            context = pgdata._server_context()
            if greeting[:1] != bytes([ERR]) and context is not None:
                greeting = _with_ssl_capability(greeting)
            client.sendall(_packet(seq, greeting))
            if greeting[:1] == bytes([ERR]):
                return
            seq, response = _read_packet(client)
            shift = 0  # how far the client's sequence ids run ahead of the server's
            if len(response) == SSL_REQUEST_LENGTH and _caps(response) & CLIENT_SSL:
                if context is None:
                    return  # nothing to answer it with; the greeting didn't offer TLS
                try:
                    client = context.wrap_socket(client, server_side=True)
                except OSError as exc:  # e.g. the client doesn't trust the emulator CA
                    LOG.info("%s: TLS handshake failed: %s", self.key[3], exc)
                    return
                seq, response = _read_packet(client)
                shift = 1
            login = _parse_response(response)
            database = login["database"]
            if not backing.accepts(database):
                client.sendall(_packet(seq + 1, _err_payload(ER_BAD_DB, "42000", f"Unknown database '{database}'")))
                return
            login["database"] = backing.db
            if login["user"] == backing.master_username:
                login["user"] = backing.db
            upstream.sendall(_packet(seq - shift, _build_response(login)))
            if shift:
                _relay_auth(client, upstream, shift)
            _pump(client, upstream)
        except (OSError, ValueError, struct.error, IndexError):
            pass
        finally:
            for s in (client, upstream):
                if s is not None:
                    _close(s)


def _read_packet(sock: socket.socket) -> tuple[int, bytes]:
    """One MySQL packet: (sequence id, payload).  Only login packets are read this way (< 16 MiB)."""
    head = _recv_exact(sock, 4)
    length = head[0] | head[1] << 8 | head[2] << 16
    return head[3], _recv_exact(sock, length) if length else b""


def _packet(seq: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq & 0xFF]) + payload


def _err_payload(code: int, sqlstate: str, message: str, protocol41: bool = True) -> bytes:
    return bytes([ERR]) + struct.pack("<H", code) + (b"#" + sqlstate.encode() if protocol41 else b"") + message.encode()


def _caps(response: bytes) -> int:
    return int(struct.unpack("<I", response[:4])[0])


def _with_ssl_capability(greeting: bytes) -> bytes:
    """Protocol::HandshakeV10 with CLIENT_SSL in the lower capability flags."""
    at = greeting.index(b"\0", 1) + 1 + 4 + 8 + 1  # version string, connection id, auth data part 1, filler
    lower = struct.unpack("<H", greeting[at : at + 2])[0] | CLIENT_SSL
    return greeting[:at] + struct.pack("<H", lower) + greeting[at + 2 :]


def _cstring(data: bytes, at: int) -> tuple[bytes, int]:
    end = data.index(b"\0", at)
    return data[at:end], end + 1


def _lenenc(data: bytes, at: int) -> tuple[int, int]:
    first = data[at]
    if first < 0xFB:
        return first, at + 1
    size = {0xFC: 2, 0xFD: 3, 0xFE: 8}[first]
    return int.from_bytes(data[at + 1 : at + 1 + size], "little"), at + 1 + size


def _lenenc_bytes(n: int) -> bytes:
    if n < 0xFB:
        return bytes([n])
    if n < 1 << 16:
        return b"\xfc" + n.to_bytes(2, "little")
    if n < 1 << 24:
        return b"\xfd" + n.to_bytes(3, "little")
    return b"\xfe" + n.to_bytes(8, "little")


def _parse_response(data: bytes) -> dict[str, Any]:
    """Protocol::HandshakeResponse41 (fields by the client's capability flags)."""
    caps = _caps(data)
    head = data[:32]  # flags, max packet size, character set, filler (MariaDB's extended flags)
    user, at = _cstring(data, 32)
    if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
        n, at = _lenenc(data, at)
        auth, at = data[at : at + n], at + n
    elif caps & CLIENT_SECURE_CONNECTION:
        n = data[at]
        auth, at = data[at + 1 : at + 1 + n], at + 1 + n
    else:
        auth, at = _cstring(data, at)
    database = b""
    if caps & CLIENT_CONNECT_WITH_DB and at < len(data):
        database, at = _cstring(data, at)
    return {
        "caps": caps,
        "head": head,
        "user": user.decode("utf-8", "replace"),
        "auth": auth,
        "database": database.decode("utf-8", "replace"),
        "rest": data[at:],  # plugin name, connection attributes, ...: unchanged
    }


def _build_response(login: dict[str, Any]) -> bytes:
    caps = (login["caps"] | CLIENT_CONNECT_WITH_DB) & ~CLIENT_SSL
    auth: bytes = login["auth"]
    if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
        auth_field = _lenenc_bytes(len(auth)) + auth
    elif caps & CLIENT_SECURE_CONNECTION:
        auth_field = bytes([len(auth)]) + auth
    else:
        auth_field = auth + b"\0"
    return (
        struct.pack("<I", caps)
        + login["head"][4:]
        + login["user"].encode()
        + b"\0"
        + auth_field
        + login["database"].encode()
        + b"\0"
        + login["rest"]
    )


def _relay_auth(client: socket.socket, upstream: socket.socket, shift: int) -> None:
    """Pass the rest of authentication packet by packet, renumbered: the client
    counted the SSLRequest, the server did not.  Ends with the server's OK or
    ERR; from then on every command starts again at sequence id 0."""
    while True:
        pending = isinstance(client, ssl.SSLSocket) and client.pending() > 0  # decrypted bytes select() can't see
        ready = [client] if pending else select.select([client, upstream], [], [], 30)[0]
        if not ready:
            raise ValueError("authentication timed out")
        for sock in ready:
            seq, payload = _read_packet(sock)
            if sock is upstream:
                client.sendall(_packet(seq + shift, payload))
                if payload[:1] in (bytes([OK]), bytes([ERR])):
                    return
            else:
                upstream.sendall(_packet(seq - shift, payload))


# ------------------------------------------------------- lifecycle of data
def _new_backing(kind: str, obj_key: tuple[str, str, str, str], master: str, db_name: str | None, endpoint: bool) -> Backing:
    _, account, region, ident = obj_key
    backing = Backing(_my_name(kind, account, region, ident), kind, account, region, ident, master, db_name)
    if endpoint:
        backing.proxy = _Proxy(backing.key)
    return backing


def _back_resource(resource: Any, kind: str, master: str, db_name: str | None, password: str | None, restore_from: Any) -> None:
    """Register a new instance/cluster: its endpoint, database and account (a copy of a snapshot's for a restore)."""
    key = _key(resource)
    assert key is not None
    with _LOCK:
        SERVER.ensure()  # started with the first MySQL-engine resource, so failures show at once
        _forget(key)  # a leftover under the same identifier (not expected: moto refuses duplicates)
        backing = _new_backing(kind, key, master, db_name, endpoint=True)
        try:
            source = _BY_KEY.get(_key(restore_from)) if restore_from is not None else None  # type: ignore[arg-type]
            _drop(backing.db)  # a leftover of an earlier failure
            if source is not None:
                backing.master_username = source.master_username
                _create_database(backing.db, like=source.db)
                _create_account(backing.db, password_hash=source.password_hash)
                _copy_tables(source.db, backing.db)
            else:
                _create_database(backing.db)
                _create_account(backing.db, password=password)
        except BaseException:
            if backing.proxy:
                backing.proxy.close()
            try:
                _drop(backing.db)
            except Exception:  # noqa: BLE001
                pass
            raise
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
        if SERVER.running:
            _drop(backing.db)


def _snapshot_of(snap_key: tuple[str, str, str, str], source: Backing) -> None:
    """A new snapshot database ``snap_key`` := a copy of ``source`` (an instance, cluster or snapshot)."""
    kind, account, region, ident = snap_key
    backing = Backing(_my_name(kind, account, region, ident), kind, account, region, ident, source.master_username, source.db_name)
    backing.password_hash = source.password_hash if source.kind.endswith("snapshot") else _password_hash(source.db)
    _drop(backing.db)
    try:
        _create_database(backing.db, like=source.db)
        _copy_tables(source.db, backing.db)
    except BaseException:
        try:
            _drop(backing.db)
        except Exception:  # noqa: BLE001
            pass
        raise
    _BY_KEY[snap_key] = backing


def _capture(snap_key: tuple[str, str, str, str], source_key: tuple[str, str, str, str]) -> None:
    source = _BY_KEY.get(source_key)
    if source is None:
        raise MyError(f"the data of {source_key[3]} is gone")
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
            LOG.exception("snapshot %s: copying its MariaDB data failed", snap_key[3])
            return False


# Every master password set by ModifyDBInstance/ModifyDBCluster (shown on ``GET /_snapferry/mysql``).
_PASSWORDS_SET: list[dict[str, str]] = []


def _set_password(resource: Any, password: str) -> None:
    backing = _BY_KEY.get(_key(resource))  # type: ignore[arg-type]
    if backing is None or backing.kind not in ("instance", "cluster"):
        return
    with _LOCK:
        _, account, region, identifier = backing.key
        _PASSWORDS_SET.append({"account": account, "region": region, "identifier": identifier, "password": password})
        _run("ALTER USER %s@'%%' IDENTIFIED VIA mysql_native_password USING PASSWORD(%s)", (backing.db, password))


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
CORRUPT_ACTIONS = pgdata.CORRUPT_ACTIONS
# PostgreSQL interval words -> MySQL INTERVAL units ("5 hours" -> INTERVAL 5 HOUR).
_UNITS = {
    "microsecond": "MICROSECOND", "microseconds": "MICROSECOND",
    "second": "SECOND", "seconds": "SECOND", "sec": "SECOND", "secs": "SECOND",
    "minute": "MINUTE", "minutes": "MINUTE", "min": "MINUTE", "mins": "MINUTE",
    "hour": "HOUR", "hours": "HOUR",
    "day": "DAY", "days": "DAY",
    "week": "WEEK", "weeks": "WEEK",
    "month": "MONTH", "months": "MONTH", "mon": "MONTH", "mons": "MONTH",
    "year": "YEAR", "years": "YEAR",
}  # fmt: skip


def mysql_interval(text: str) -> str:
    """``"1 day 5 hours"`` -> ``"- INTERVAL 1 DAY - INTERVAL 5 HOUR"``: what to append to a column to move it back."""
    parts = text.strip().lower().split()
    if not parts or len(parts) % 2:
        raise ControlError(f"interval {text!r}: expected '<integer> <unit>' pairs, e.g. \"5 hours\"")
    out = []
    for number, unit in zip(parts[::2], parts[1::2]):
        if not re.fullmatch(r"[+-]?\d+", number) or unit not in _UNITS:
            raise ControlError(f"interval {text!r}: expected '<integer> <unit>' pairs with units {sorted(set(_UNITS.values()))}")
        out.append(f"- INTERVAL {int(number)} {_UNITS[unit]}")
    return " ".join(out)


def is_mysql_snapshot(body: Any) -> bool:
    """Whether ``POST /_snapferry/corrupt-snapshot`` names a MySQL-engine snapshot (call under the moto lock)."""
    from . import rds

    arn = body.get("snapshot_arn") if isinstance(body, dict) else None
    m = rds.RDS_ARN_RE.match(arn) if isinstance(arn, str) else None
    if not m or m.group("type") not in ("snapshot", "cluster-snapshot"):
        return False
    store = rds._store(rds.rds_backend(m.group("account"), m.group("region")), m.group("type") == "cluster-snapshot")
    snap = store.get(m.group("name"))
    return snap is not None and getattr(snap, "engine", None) in ENGINES


def corrupt_snapshot(body: Any) -> dict[str, Any]:
    """``POST /_snapferry/corrupt-snapshot`` for a MySQL-engine snapshot (call under the moto lock)."""
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
    back = mysql_interval(interval) if action == "backdate" else ""
    m = rds.RDS_ARN_RE.match(arn)
    if not m or m.group("type") not in ("snapshot", "cluster-snapshot"):
        raise ControlError(f"not an RDS snapshot or cluster snapshot ARN: {arn}")
    store = rds._store(rds.rds_backend(m.group("account"), m.group("region")), m.group("type") == "cluster-snapshot")
    snap = store.get(m.group("name"))
    if snap is None:
        raise ControlError(f"no snapshot {arn}")
    snap_key = _key(snap)
    with _LOCK:
        backing = _BY_KEY.get(snap_key)  # type: ignore[arg-type]
        if backing is None:
            if snap_key in _PENDING or snap.status == "creating":
                raise ControlError(f"snapshot {arn} is still being created (status {snap.status}): its data is taken when it completes")
            raise ControlError(f"snapshot {arn} has no MySQL data (engine {snap.engine})")
        schema, _, name = table.rpartition(".")
        if schema and not backing.accepts(schema):
            raise ControlError(f"{action} on {table}: the snapshot's database is {backing.db_name or backing.db!r}")
        target = f"{_ident(backing.db)}.{_ident(name)}"
        rows: int | None = None
        try:
            if action == "drop-table":
                # No CASCADE in MySQL: foreign key checks are off instead (referencing tables stay).
                _run("SET SESSION foreign_key_checks = 0")
                try:
                    _run(f"DROP TABLE {target}")
                finally:
                    _run("SET SESSION foreign_key_checks = 1")
            elif action == "truncate":
                rows = int(_run(f"SELECT COUNT(*) FROM {target}")[0][0])
                _run("SET SESSION foreign_key_checks = 0")
                try:
                    _run(f"TRUNCATE TABLE {target}")
                finally:
                    _run("SET SESSION foreign_key_checks = 1")
            else:
                conn = SERVER.admin()
                with conn.cursor() as cur:
                    rows = int(cur.execute(f"UPDATE {target} SET {_ident(column)} = {_ident(column)} {back}"))
        except Exception as exc:  # noqa: BLE001
            raise ControlError(f"{action} on {table} in {backing.db}: {_my_message(exc)}") from None
    return {"ok": True, "snapshot_arn": arn, "database": backing.db, "action": action, "table": table, "rows": rows}


# ---------------------------------------------------------------- install
def _is_my_instance(db: Any) -> bool:
    return getattr(db, "engine", None) in INSTANCE_ENGINES and not getattr(db, "db_cluster_identifier", None)


def _is_my_cluster(cluster: Any) -> bool:
    return getattr(cluster, "engine", None) in CLUSTER_ENGINES


def install() -> None:  # noqa: C901 - one place for all MariaDB patches
    """Wrap the RDS backend (after ``pgdata.install``: these wrap its patches, engine by engine)."""
    from moto.rds import models as m

    from . import rds

    B = m.RDSBackend
    if getattr(B, "_snapferry_my", False):
        return
    B._snapferry_my = True

    # Endpoints: 127.0.0.1 and the proxy's port for backed resources (the
    # configured port stays where pgdata keeps it).
    orig_address, orig_port, orig_cluster_port = m.DBInstance.address, m.DBInstance.port, m.DBCluster.port
    orig_endpoint, orig_reader = m.DBCluster.endpoint, m.DBCluster.reader_endpoint

    def _port(orig: property) -> property:
        def get(self: Any) -> Any:
            backing = backing_of(self)
            if backing is not None and backing.port:
                return backing.port
            return orig.fget(self)  # type: ignore[misc]

        return property(get, orig.fset)

    m.DBInstance.address = property(lambda self: ADDRESS if backing_of(self) is not None else orig_address.fget(self))
    m.DBInstance.port = _port(orig_port)
    m.DBCluster.port = _port(orig_cluster_port)
    m.DBCluster.endpoint = property(lambda self: ADDRESS if backing_of(self) is not None else orig_endpoint.fget(self))
    m.DBCluster.reader_endpoint = property(lambda self: ADDRESS if backing_of(self) is not None else orig_reader.fget(self))

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
        if _is_my_instance(db):
            password = _managed_password(db) if getattr(db, "manage_master_user_password", False) else db_kwargs.get("master_user_password")
            try:
                _back_resource(db, "instance", db.master_username or "admin", db.db_name, password, restore_from)
            except BaseException:
                self.databases.pop(db.db_instance_identifier, None)
                raise
        return db

    def create_db_cluster(self: Any, kwargs: dict[str, Any]) -> Any:
        restore_from = _take_restore()
        answer = orig_create_cluster(self, kwargs)
        cluster = self.clusters.get(answer.db_cluster_identifier)
        if cluster is not None and _is_my_cluster(cluster):
            password = _managed_password(cluster) if getattr(cluster, "manage_master_user_password", False) else kwargs.get("master_user_password")
            try:
                _back_resource(cluster, "cluster", cluster.master_username or "admin", cluster.database_name, password, restore_from)
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
