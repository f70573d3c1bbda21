"""MariaDB data behind mysql / mariadb DB instances and Aurora MySQL clusters.

The MySQL engine of ``dbdata`` (read that first: which resources are
backed, endpoints, TLS, snapshots, restores, modify and delete are the same
for every engine and written there); ``pgdata`` is the PostgreSQL engine.
What is MySQL's and why (the pinned moto's behaviour in brackets):

* ``Engine=mysql`` and ``Engine=mariadb`` DB instances and ``aurora-mysql``
  DB clusters are backed by a real MariaDB server (Debian's
  ``mariadb-server-core``: ``/usr/sbin/mariadbd``, installed by
  ``scripts/lib.sh`` ``ensure_mariadb``) [moto keeps metadata only].  Each
  instance or cluster is one database and one account on that server; a
  client reaches it as on AWS, with the master user name and password and
  the ``DBName`` given at creation or no database.
* Each endpoint port is a small proxy speaking the MySQL client/server
  protocol up to the end of authentication, then passing bytes.  It forwards
  the server's greeting (adding ``CLIENT_SSL``), answers a client's
  SSLRequest with a TLS handshake (``dbdata``'s certificate and CA:
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
  server.  Clients that don't ask for TLS go on in clear text.  Later
  ``COM_CHANGE_USER`` packets pass unrewritten (changing to the master user
  name mid-session fails).
* Databases and accounts are made at once (a few milliseconds: no lazy
  creation as in ``pgdata``).
* A snapshot's copy: for each base table ``SHOW CREATE TABLE`` in the
  snapshot's database, then its rows as of one moment (one ``START
  TRANSACTION WITH CONSISTENT SNAPSHOT``, ``SELECT ... INTO OUTFILE`` and
  ``LOAD DATA INFILE``).  Clients' sessions go on, as on RDS: nothing waits
  for their uncommitted writes, which are not copied (only a ``LOCK TABLES
  ... WRITE`` held for 2 s gets the database's connections closed).
  Restores copy it into the new database.  The snapshot keeps the master
  password (hash) the account had when it was taken.  Views, routines,
  triggers, events and sequences are not copied.
* Control API: ``POST /_snapferry/corrupt-snapshot`` (drop-table, truncate,
  backdate; the interval "5 hours" is MySQL's ``INTERVAL 5 HOUR``) and
  ``GET /_snapferry/mysql`` (the server, its databases, the passwords set).

Naming on the server: database and account (``'<name>'@'%'``) have
``dbdata``'s names (snapshots have no account).  The account has all
privileges on its database with grant option, plus ``CREATE USER`` (as RDS's
master user); accounts the master creates are server-wide and reach their
database through the proxy under their own names.
"""

from __future__ import annotations

import logging
import os
import re
import select
import shutil
import socket
import ssl
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import dbdata
from .dbdata import ADDRESS, Corruption, close_socket, pump, recv_exact, server_context
from .state import ControlError

LOG = logging.getLogger("snapferry_emulator")

INSTANCE_ENGINES = ("mysql", "mariadb")
CLUSTER_ENGINES = ("aurora-mysql",)
ENGINES = INSTANCE_ENGINES + CLUSTER_ENGINES
MARIADBD = "/usr/sbin/mariadbd"
SHARE = Path("/usr/share/mysql")  # Debian's SQL scripts for the system tables
LOCK_WAIT_SECONDS = 2  # how long a snapshot waits for a client's table lock before closing the database's connections
TRANSFER_DIR = "xfer"  # under the server's directory: the files of table copies (the server's --secure-file-priv)
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
ER_TABLE_DEF_CHANGED = 1412
ER_NO_SUCH_TABLE = 1146
ER_BAD_FIELD_ERROR = 1054
# A snapshot's copy runs again after these: a table lock held too long (the connections are
# closed first), a table changed, dropped or altered by a client's DDL during the copy.
COPY_AGAIN = (ER_LOCK_WAIT_TIMEOUT, ER_TABLE_DEF_CHANGED, ER_NO_SUCH_TABLE, ER_BAD_FIELD_ERROR)


class MyError(dbdata.DataError):
    """The MariaDB server could not be started or an operation on it failed."""


@dataclass
class MyBacking(dbdata.Backing):
    # Snapshots: the master's mysql_native_password hash when the snapshot was taken.
    password_hash: str = field(default="", repr=False)


# -------------------------------------------------------------------- server
class _Server(dbdata.ServerProcess):
    label = "MariaDB"
    dir_prefix = "snapferry-my-"
    pid_file = "mariadbd.pid"
    error = MyError

    @property
    def socket_path(self) -> str:
        assert self.root is not None
        return str(self.root / "mariadbd.sock")

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
        root = self._new_root()
        (root / "data").mkdir()
        (root / TRANSFER_DIR).mkdir()
        done = subprocess.run(
            [*self._common(root), "--bootstrap", "--log-warnings=0", "--enforce-storage-engine="],
            input=_bootstrap_sql(), capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            self.root = None
            raise MyError(f"mariadbd --bootstrap failed ({done.returncode}): {done.stderr.decode(errors='replace').strip()[-2000:]}")

        def argv() -> list[str]:
            return [
                *self._common(root),
                f"--port={self.port}",
                f"--bind-address={ADDRESS}",
                f"--socket={self.socket_path}",
                f"--pid-file={root / 'mariadbd.pid'}",
                f"--log-error={root / 'mariadbd.log'}",
                f"--secure-file-priv={root / TRANSFER_DIR}",  # snapshot copies' files; FILE is root's only
                "--skip-name-resolve",
                "--default-time-zone=+00:00",
                "--max-connections=200",
            ]

        self._launch(started, argv, root / "mariadbd.out", root / "mariadbd.log", {}, "mariadb")

    def _query_version(self) -> str:
        return str(self._query("SELECT VERSION()")[0][0])

    def _connect_admin(self) -> Any:
        """root, over the unix socket."""
        import pymysql
        from pymysql.constants import CLIENT

        # FOUND_ROWS: UPDATE answers the rows matched, as PostgreSQL's row count.
        return pymysql.connect(unix_socket=self.socket_path, user="root", autocommit=True, client_flag=CLIENT.FOUND_ROWS, connect_timeout=5)

    def _ping(self, conn: Any) -> None:
        conn.ping(reconnect=False)

    def _query(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())


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


# ------------------------------------------------------------- SQL on server
def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _run(sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    """One statement on the admin connection (call under ENGINE.lock)."""
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
    """``dst`` (new, empty) := the base tables of ``src``, definitions and rows, as of one moment.

    ``SHOW CREATE TABLE`` keeps indexes, foreign keys and AUTO_INCREMENT
    counters (``CREATE TABLE ... LIKE`` drops foreign keys).  The rows are read
    in one ``START TRANSACTION WITH CONSISTENT SNAPSHOT``: InnoDB's consistent
    reads, one moment across tables, no row locks, so clients' sessions go on
    untouched and their uncommitted writes are not copied (as on RDS).  Each
    table goes through a file (``SELECT ... INTO OUTFILE``, ``LOAD DATA
    INFILE``: the server's own text format, exact for every column type;
    generated columns left out and recomputed).  Only a table lock
    (``LOCK TABLES ... WRITE``) can keep the reads waiting: after
    ``LOCK_WAIT_SECONDS`` the connections of the database's clients are closed
    (as ``pgdata`` closes the one holding a lock) and the copy runs again; so
    it does (up to 3 times) when a client's DDL changed a table under it.
    """
    for attempt in range(1, 4):
        try:
            _copy_tables_once(src, dst)
            return
        except Exception as exc:  # noqa: BLE001
            code = getattr(exc, "args", (None,))[0]
            if code not in COPY_AGAIN or attempt == 3:
                raise
            if code == ER_LOCK_WAIT_TIMEOUT:
                _close_sessions(src)
            LOG.info("copying %s to %s again: %s", src, dst, _my_message(exc))
            _run("SET SESSION foreign_key_checks = 0")
            try:
                for (table,) in _run("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (dst,)):
                    _run(f"DROP TABLE IF EXISTS {_ident(dst)}.{_ident(table)}")
            finally:
                _run("SET SESSION foreign_key_checks = 1")


def _copy_tables_once(src: str, dst: str) -> None:
    conn = SERVER.admin()
    tables = [r[0] for r in _run("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1", (src,))]
    if not tables:
        return
    assert SERVER.root is not None
    files = {table: SERVER.root / TRANSFER_DIR / f"{dst}.{i}.tsv" for i, table in enumerate(tables)}
    with conn.cursor() as cur:
        cur.execute("SELECT @@SESSION.sql_mode")
        sql_mode = cur.fetchone()[0]
        cur.execute(f"SET SESSION lock_wait_timeout = {LOCK_WAIT_SECONDS}")
        cur.execute("SET SESSION foreign_key_checks = 0")
        try:
            cur.execute(f"USE {_ident(dst)}")
            columns: dict[str, str] = {}
            for table in tables:
                cur.execute(f"SHOW CREATE TABLE {_ident(src)}.{_ident(table)}")
                cur.execute(cur.fetchone()[1])  # unqualified: created in dst; same-database foreign keys point into dst
                cur.execute(
                    "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND IS_GENERATED = 'NEVER' ORDER BY ORDINAL_POSITION",
                    (src, table),
                )
                columns[table] = ", ".join(_ident(r[0]) for r in cur.fetchall())
            for path in files.values():
                path.unlink(missing_ok=True)
            # DDL commits implicitly: the tables exist before the snapshot is opened.
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            try:
                for table in tables:
                    cur.execute(f"SELECT {columns[table]} INTO OUTFILE %s CHARACTER SET binary FROM {_ident(src)}.{_ident(table)}", (str(files[table]),))
                cur.execute("COMMIT")
            except BaseException:
                try:
                    cur.execute("ROLLBACK")
                except Exception:  # noqa: BLE001 - the error that caused it is what matters
                    pass
                raise
            cur.execute("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'")  # an AUTO_INCREMENT 0 stays 0 (as mariadb-dump restores)
            for table in tables:
                cur.execute(f"LOAD DATA INFILE %s INTO TABLE {_ident(dst)}.{_ident(table)} CHARACTER SET binary ({columns[table]})", (str(files[table]),))
        finally:
            for path in files.values():
                path.unlink(missing_ok=True)
            cur.execute("SET SESSION sql_mode = %s", (sql_mode,))
            cur.execute("SET SESSION foreign_key_checks = 1")
            cur.execute("USE mysql")


def _close_sessions(src: str) -> None:
    """Close the connections of ``src``'s clients (a table lock of theirs kept a snapshot waiting)."""
    for (session,) in _run("SELECT ID FROM information_schema.PROCESSLIST WHERE (DB = %s OR USER = %s) AND ID <> CONNECTION_ID()", (src, src)):
        LOG.warning("snapshot of %s: closing connection %s (a table lock kept the copy waiting %ss)", src, session, LOCK_WAIT_SECONDS)
        try:
            _run(f"KILL CONNECTION {int(session)}")
        except Exception:  # noqa: BLE001 - gone meanwhile
            pass


# --------------------------------------------------------------------- proxy
class _Proxy(dbdata.Endpoint):
    """The endpoint of one instance/cluster: MySQL protocol up to authentication, then bytes."""

    def serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            client.settimeout(30)  # also bounds the TLS handshake
            backing = ENGINE.by_key.get(self.key)
            server_port = SERVER.port if SERVER.running else None
            if backing is None or self.closed or not server_port:
                client.sendall(_packet(0, _err_payload(ER_SERVER_SHUTDOWN, "08S01", "the DB instance is not available", protocol41=False)))
                return
            # The leg to the server stays plain: it never leaves 127.0.0.1.
            upstream = socket.create_connection((ADDRESS, server_port), timeout=30)
            seq, greeting = _read_packet(upstream)
            context = server_context()
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
            pump(client, upstream)
        except (OSError, ValueError, struct.error, IndexError):
            pass
        finally:
            for s in (client, upstream):
                if s is not None:
                    close_socket(s)


def _read_packet(sock: socket.socket) -> tuple[int, bytes]:
    """One MySQL packet: (sequence id, payload).  Only login packets are read this way (< 16 MiB)."""
    head = recv_exact(sock, 4)
    length = head[0] | head[1] << 8 | head[2] << 16
    return head[3], recv_exact(sock, length) if length else b""


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
def _drop_quietly(name: str) -> None:
    """Clean up after a failed copy or creation (the error that caused it is what matters)."""
    try:
        _drop(name)
    except Exception:  # noqa: BLE001
        pass


class _MyEngine(dbdata.Engine[MyBacking]):
    instance_engines = INSTANCE_ENGINES
    cluster_engines = CLUSTER_ENGINES
    default_master = "admin"
    data_label = "MySQL"
    backing_type = MyBacking
    endpoint_type = _Proxy

    def fill(self, backing: MyBacking, password: str | None) -> None:
        _drop(backing.db)  # a leftover of an earlier failure
        try:
            _create_database(backing.db)
            _create_account(backing.db, password=password)
        except BaseException:
            _drop_quietly(backing.db)
            raise

    def copy_data(self, source: MyBacking, target: MyBacking) -> None:
        """The database's tables and rows; an instance/cluster's account gets the master password the source had."""
        password_hash = source.password_hash if source.kind.endswith("snapshot") else _password_hash(source.db)
        _drop(target.db)  # a leftover of an earlier failure
        try:
            _create_database(target.db, like=source.db)
            if target.kind in dbdata.LIVE_KINDS:
                _create_account(target.db, password_hash=password_hash)
            else:
                target.password_hash = password_hash
            _copy_tables(source.db, target.db)
        except BaseException:
            _drop_quietly(target.db)
            raise

    def drop_data(self, backing: MyBacking) -> None:
        _drop(backing.db)

    def change_password(self, backing: MyBacking, password: str) -> None:
        _run("ALTER USER %s@'%%' IDENTIFIED VIA mysql_native_password USING PASSWORD(%s)", (backing.db, password))

    def server_databases(self) -> list[str]:
        rows = _run("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY 1")
        return [r[0] for r in rows if r[0] not in SYSTEM_DATABASES]


ENGINE = _MyEngine(SERVER)


# ------------------------------------------------------------ control API
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
    arn = body.get("snapshot_arn") if isinstance(body, dict) else None
    if not isinstance(arn, str):
        return False
    try:
        snap = dbdata.snapshot_by_arn(arn)
    except ControlError:
        return False
    return getattr(snap, "engine", None) in ENGINES


def corrupt_snapshot(body: Any) -> dict[str, Any]:
    """``POST /_snapferry/corrupt-snapshot`` for a MySQL-engine snapshot (call under the moto lock)."""
    req: Corruption = dbdata.parse_corruption(body)
    back = mysql_interval(req.interval) if req.action == "backdate" else ""
    with ENGINE.lock:
        backing = ENGINE.snapshot_data(req.arn)
        schema, _, name = req.table.rpartition(".")
        if schema and not backing.accepts(schema):
            raise ControlError(f"{req.action} on {req.table}: the snapshot's database is {backing.db_name or backing.db!r}")
        target = f"{_ident(backing.db)}.{_ident(name)}"
        rows: int | None = None
        try:
            if req.action == "drop-table":
                # No CASCADE in MySQL: foreign key checks are off instead (referencing tables stay).
                _run("SET SESSION foreign_key_checks = 0")
                try:
                    _run(f"DROP TABLE {target}")
                finally:
                    _run("SET SESSION foreign_key_checks = 1")
            elif req.action == "truncate":
                rows = int(_run(f"SELECT COUNT(*) FROM {target}")[0][0])
                _run("SET SESSION foreign_key_checks = 0")
                try:
                    _run(f"TRUNCATE TABLE {target}")
                finally:
                    _run("SET SESSION foreign_key_checks = 1")
            else:
                conn = SERVER.admin()
                with conn.cursor() as cur:
                    rows = int(cur.execute(f"UPDATE {target} SET {_ident(req.column)} = {_ident(req.column)} {back}"))
        except Exception as exc:  # noqa: BLE001
            raise ControlError(f"{req.action} on {req.table} in {backing.db}: {_my_message(exc)}") from None
    return {"ok": True, "snapshot_arn": req.arn, "database": backing.db, "action": req.action, "table": req.table, "rows": rows}
