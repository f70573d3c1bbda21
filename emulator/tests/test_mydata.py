"""MariaDB data behind mysql / mariadb instances and Aurora MySQL clusters (mydata)."""

from __future__ import annotations

import ssl
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pymysql
import pytest
import requests
from conftest import (
    REGION, child_pids, create_db, instance, private_emulator, private_rds, rds_ca, restore, snapshot, stop_leaving_no_server, trusting_emulator_ca,
    wait_available, wait_cluster_available, wait_cluster_snapshot, wait_db_snapshot,
)  # fmt: skip

PASSWORD = "password123"


def connect(endpoint: dict[str, Any], password: str = PASSWORD, user: str = "admin", database: str | None = None, tls: ssl.SSLContext | None = None, **kw: Any) -> Any:
    """A PyMySQL connection; ``tls`` = verify-full against that context's CAs (None: PyMySQL's default,
    TLS without verification; ``ssl_disabled=True``: clear text)."""
    return pymysql.connect(
        host=endpoint["Address"], port=endpoint["Port"], user=user, password=password, database=database, ssl=tls, connect_timeout=10, autocommit=True, **kw
    )


def query(conn: Any, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def count(endpoint: dict[str, Any], table: str = "orders", password: str = PASSWORD, user: str = "admin", database: str | None = None) -> int:
    conn = connect(endpoint, password, user, database)
    try:
        return int(query(conn, f"SELECT COUNT(*) FROM {table}")[0][0])
    finally:
        conn.close()


def seed(endpoint: dict[str, Any], rows: int, password: str = PASSWORD, user: str = "admin") -> None:
    conn = connect(endpoint, password, user)
    try:
        query(conn, "CREATE TABLE IF NOT EXISTS orders (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(100), created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))")
        for i in range(rows):
            query(conn, "INSERT INTO orders (note) VALUES (%s)", (f"row {i}",))
    finally:
        conn.close()


def create_my(emu: Any, account: str, ident: str, **kwargs: Any) -> dict[str, Any]:
    return create_db(emu, account, ident, **{"Engine": "mysql", "EngineVersion": "8.0.39", **kwargs})


def access_denied(call: Any) -> int:
    with pytest.raises(pymysql.err.OperationalError) as exc:
        call()
    return int(exc.value.args[0])


def database_of(emu: Any, account: str, kind: str, identifier: str) -> str:
    found = [d["database"] for d in emu.control("GET", "/mysql")["databases"] if (d["account"], d["kind"], d["identifier"]) == (account, kind, identifier)]
    assert len(found) == 1, found
    return found[0]


def assert_tls(conn: Any) -> None:
    sock = conn._sock
    assert isinstance(sock, ssl.SSLSocket) and sock.version() in ("TLSv1.2", "TLSv1.3"), sock


# ---------------------------------------------------------------- instances
def test_instance_tls_snapshot_cross_account_copy_and_restore(emu, accounts):
    src, dst = accounts(2)
    created = create_my(emu, src, "shop", DBName="shop")
    endpoint = instance(emu, src, "shop")["Endpoint"]
    assert endpoint == created["Endpoint"] and endpoint["Address"] == "127.0.0.1" and endpoint["Port"] != 3306
    status = emu.control("GET", "/mysql")
    assert status["running"] is True and "MariaDB" in status["version"]
    internal = database_of(emu, src, "instance", "shop")
    assert internal in status["server_databases"]

    context = trusting_emulator_ca(emu)
    conn = connect(endpoint, database="shop", tls=context)
    assert_tls(conn)
    assert query(conn, "SELECT DATABASE(), CURRENT_USER()") == [(internal, f"{internal}@%")]
    query(conn, "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(50), upper_name VARCHAR(50) AS (UPPER(name)) VIRTUAL)")
    query(conn, "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, customer INT, note VARCHAR(100), FOREIGN KEY (customer) REFERENCES customers (id))")
    query(conn, "INSERT INTO customers (id, name) VALUES (1, 'ada'), (2, 'bob')")
    query(conn, "INSERT INTO orders (customer, note) VALUES (1, 'a'), (1, 'b'), (2, 'c')")
    big = "x" * 3_000_000  # several TLS records each way
    assert query(conn, "SELECT LENGTH(%s), MD5(%s) = MD5(REPEAT('x', 3000000))", (big, big)) == [(3_000_000, 1)]
    conn.close()

    arn = snapshot(emu, src, "shop", "s1")["DBSnapshotArn"]
    seed(endpoint, 0)  # no-op DDL after the snapshot ...
    conn = connect(endpoint)  # ... and no database given: the instance's database is the default
    query(conn, "INSERT INTO orders (customer, note) VALUES (2, 'after')")
    conn.close()
    emu.client("rds", src).modify_db_snapshot_attribute(DBSnapshotIdentifier="s1", AttributeName="restore", ValuesToAdd=[dst])
    emu.client("rds", dst).copy_db_snapshot(SourceDBSnapshotIdentifier=arn, TargetDBSnapshotIdentifier="copy")
    wait_db_snapshot(emu, dst, "copy")
    emu.client("rds", src).delete_db_snapshot(DBSnapshotIdentifier="s1")  # the copy owns its data

    restored = restore(emu, dst, "copy", "restored")
    desc = instance(emu, dst, "restored")
    assert (desc["DBName"], desc["MasterUsername"], desc["Engine"]) == ("shop", "admin", "mysql")
    assert restored["Address"] == "127.0.0.1" and restored["Port"] != endpoint["Port"]
    conn = connect(restored, database="shop", tls=context)
    assert query(conn, "SELECT id, customer, note FROM orders ORDER BY id") == [(1, 1, "a"), (2, 1, "b"), (3, 2, "c")]
    assert query(conn, "SELECT upper_name FROM customers ORDER BY id") == [("ADA",), ("BOB",)]
    assert "FOREIGN KEY" in query(conn, "SHOW CREATE TABLE orders")[0][1]
    query(conn, "INSERT INTO orders (customer, note) VALUES (2, 'restored')")  # the master owns the restored data
    assert query(conn, "SELECT MAX(id) FROM orders") == [(4,)]  # AUTO_INCREMENT carried over
    conn.close()
    assert count(endpoint) == 4  # independent databases


def test_open_sessions_survive_a_snapshot(emu, accounts):
    """As on RDS, taking a snapshot doesn't disconnect clients: an idle session and one
    in the middle of a transaction go on (not even writers wait); the snapshot holds
    what was committed when it was taken, not that transaction's writes."""
    (acct,) = accounts(1)
    endpoint = create_my(emu, acct, "db1", DBName="app")["Endpoint"]
    seed(endpoint, 3)
    conn = connect(endpoint, database="app")
    query(conn, "CREATE TABLE audit (id INT PRIMARY KEY, payload BLOB, ratio FLOAT, flags BIT(3), doubled INT AS (id * 2) VIRTUAL)")
    query(conn, "INSERT INTO audit (id, payload, ratio, flags) VALUES (1, x'00090a5c4e0d', 1.1, b'101'), (2, NULL, NULL, NULL)")
    before = {t: query(conn, f"SELECT * FROM {t} ORDER BY id") for t in ("orders", "audit")}
    idle = connect(endpoint, database="app")
    query(conn, "START TRANSACTION")
    query(conn, "INSERT INTO orders (note) VALUES ('uncommitted')")
    query(conn, "UPDATE audit SET payload = 'changed' WHERE id = 2")

    started = time.monotonic()
    snapshot(emu, acct, "db1", "s1")  # both sessions open meanwhile
    assert query(idle, "SELECT COUNT(*) FROM orders") == [(3,)]  # the same sessions go on
    assert time.monotonic() - started < 2  # nothing waited for the open transaction
    query(conn, "INSERT INTO orders (note) VALUES ('second')")
    query(conn, "COMMIT")
    assert query(conn, "SELECT COUNT(*) FROM orders") == [(5,)] and query(idle, "SELECT COUNT(*) FROM orders") == [(5,)]
    idle.close()
    conn.close()

    restored = connect(restore(emu, acct, "s1", "db2"), database="app")
    assert {t: query(restored, f"SELECT * FROM {t} ORDER BY id") for t in before} == before
    query(restored, "INSERT INTO orders (note) VALUES ('restored')")  # the master owns the copy
    assert query(restored, "SELECT MAX(id) FROM orders")[0][0] > 4
    restored.close()


def test_snapshot_closes_a_session_whose_table_lock_blocks_it(emu, accounts):
    """The one case a snapshot still ends sessions: a LOCK TABLES ... WRITE keeps a
    table from being read for 2 s (then the database's sessions are closed)."""
    (acct,) = accounts(1)
    endpoint = create_my(emu, acct, "db1")["Endpoint"]
    seed(endpoint, 2)
    locker = connect(endpoint)
    query(locker, "LOCK TABLES orders WRITE")
    started = time.monotonic()
    snapshot(emu, acct, "db1", "s1")
    assert time.monotonic() - started >= 2
    with pytest.raises(pymysql.err.OperationalError):
        query(locker, "SELECT 1")
    assert count(restore(emu, acct, "s1", "db2")) == 2


def test_tls_refusals_plain_text_and_databases(emu, accounts):
    (acct,) = accounts(1)
    endpoint = create_my(emu, acct, "db1", DBName="app")["Endpoint"]
    with pytest.raises((ssl.SSLError, pymysql.err.OperationalError)):
        connect(endpoint, tls=ssl.create_default_context())  # the system CAs only
    plain = connect(endpoint, database="app", ssl_disabled=True)
    assert not isinstance(plain._sock, ssl.SSLSocket)
    assert query(plain, "SELECT DATABASE()") == [(database_of(emu, acct, "instance", "db1"),)]
    plain.close()
    context = trusting_emulator_ca(emu)
    assert access_denied(lambda: connect(endpoint, database="other", tls=context)) == 1049
    assert access_denied(lambda: connect(endpoint, database="other", ssl_disabled=True)) == 1049
    assert access_denied(lambda: connect(endpoint, password="wrong", ssl_disabled=True)) == 1045
    assert access_denied(lambda: connect(endpoint, password="wrong", tls=context)) == 1045
    assert access_denied(lambda: connect(endpoint, user="someone", tls=context)) == 1045


class _Sha2FirstConnection(pymysql.connections.Connection):
    """Answers the greeting with caching_sha2_password, as MySQL 8 clients do by default."""

    def _get_server_information(self) -> None:
        super()._get_server_information()
        self._auth_plugin_name = "caching_sha2_password"


def test_auth_switch_over_tls(emu, accounts):
    (acct,) = accounts(1)
    endpoint = create_my(emu, acct, "db1")["Endpoint"]
    conn = _Sha2FirstConnection(host=endpoint["Address"], port=endpoint["Port"], user="admin", password=PASSWORD, ssl=trusting_emulator_ca(emu), connect_timeout=10)
    assert_tls(conn)
    assert query(conn, "SELECT 41 + 1") == [(42,)]
    conn.close()
    with pytest.raises(pymysql.err.OperationalError) as exc:
        _Sha2FirstConnection(host=endpoint["Address"], port=endpoint["Port"], user="admin", password="wrong", ssl=trusting_emulator_ca(emu), connect_timeout=10)
    assert exc.value.args[0] == 1045


def test_modify_master_password_and_restores_keep_the_snapshots(emu, accounts):
    (acct,) = accounts(1)
    rds = emu.client("rds", acct)
    context = trusting_emulator_ca(emu)
    endpoint = create_my(emu, acct, "db1", MasterUsername="owner1")["Endpoint"]
    seed(endpoint, 2, user="owner1")
    snapshot(emu, acct, "db1", "with-old-password")
    rds.modify_db_instance(DBInstanceIdentifier="db1", MasterUserPassword="new-password-1", ApplyImmediately=True)
    conn = connect(endpoint, "new-password-1", "owner1", tls=context)
    assert query(conn, "SELECT COUNT(*) FROM orders") == [(2,)]
    conn.close()
    assert access_denied(lambda: connect(endpoint, user="owner1", tls=context)) == 1045
    shown = requests.get(f"{emu.url}/_snapferry/mysql", timeout=10).json()["master_passwords_set"]
    assert {"account": acct, "region": REGION, "identifier": "db1", "password": "new-password-1"} in shown

    # A snapshot keeps the password it was taken with (as AWS); the restore takes a new one.
    restored = restore(emu, acct, "with-old-password", "db2")
    assert count(restored, user="owner1") == 2
    rds.modify_db_instance(DBInstanceIdentifier="db2", MasterUserPassword="new-password-2", ApplyImmediately=True)
    assert count(restored, password="new-password-2", user="owner1") == 2
    assert access_denied(lambda: connect(restored, user="owner1", tls=context)) == 1045
    # A renamed instance keeps its data and endpoint.
    rds.modify_db_instance(DBInstanceIdentifier="db1", NewDBInstanceIdentifier="db1-renamed", ApplyImmediately=True)
    assert instance(emu, acct, "db1-renamed")["Endpoint"] == endpoint
    assert count(endpoint, password="new-password-1", user="owner1") == 2


def test_mariadb_engine_final_snapshot_and_delete(emu, accounts):
    (acct,) = accounts(1)
    endpoint = create_my(emu, acct, "m1", Engine="mariadb", EngineVersion="10.11.9")["Endpoint"]
    seed(endpoint, 2)
    rds = emu.client("rds", acct)
    name = database_of(emu, acct, "instance", "m1")
    rds.delete_db_instance(DBInstanceIdentifier="m1", FinalDBSnapshotIdentifier="final", DeleteAutomatedBackups=False)
    wait_db_snapshot(emu, acct, "final")
    assert name not in emu.control("GET", "/mysql")["server_databases"]
    with pytest.raises(pymysql.err.OperationalError):
        connect(endpoint)
    assert count(restore(emu, acct, "final", "from-final")) == 2
    snap_db = database_of(emu, acct, "snapshot", "final")
    rds.delete_db_snapshot(DBSnapshotIdentifier="final")
    assert snap_db not in emu.control("GET", "/mysql")["server_databases"]


# ----------------------------------------------------------- corrupt-snapshot
def test_corrupt_snapshot_actions(emu, accounts):
    (acct,) = accounts(1)
    endpoint = create_my(emu, acct, "db1", DBName="app")["Endpoint"]
    seed(endpoint, 3)
    conn = connect(endpoint)
    query(conn, "CREATE TABLE audit (id INT)")
    query(conn, "INSERT INTO audit VALUES (1), (2)")
    before = query(conn, "SELECT id, created_at FROM orders ORDER BY id")
    conn.close()
    rds = emu.client("rds", acct)
    names = ("dropped", "truncated", "backdated", "intact")
    for name in names:
        rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier=name)
    arns = {name: wait_db_snapshot(emu, acct, name)["DBSnapshotArn"] for name in names}

    answer = emu.control("POST", "/corrupt-snapshot", {"snapshot_arn": arns["dropped"], "action": "drop-table", "table": "audit"})
    assert answer["ok"] is True and answer["database"] == database_of(emu, acct, "snapshot", "dropped")
    assert emu.control("POST", "/corrupt-snapshot", {"snapshot_arn": arns["truncated"], "action": "truncate", "table": "app.orders"})["rows"] == 3
    body = {"snapshot_arn": arns["backdated"], "action": "backdate", "table": "orders", "column": "created_at", "interval": "5 hours"}
    assert emu.control("POST", "/corrupt-snapshot", body)["rows"] == 3
    bad = [
        {**body, "interval": "not an interval"},
        {**body, "interval": "5 fortnights"},
        {**body, "table": "missing"},
        {**body, "table": "otherdb.orders"},
        {"snapshot_arn": arns["intact"], "action": "truncate"},
    ]
    for refused in bad:
        assert "error" in emu.control("POST", "/corrupt-snapshot", refused, expect=400), refused

    for name in names:
        rds.restore_db_instance_from_db_snapshot(DBSnapshotIdentifier=name, DBInstanceIdentifier=f"r-{name}")
    ends = {name: wait_available(emu, acct, f"r-{name}")["Endpoint"] for name in names}
    conn = connect(ends["dropped"], database="app")
    assert query(conn, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'audit'") == [(0,)]
    conn.close()
    assert count(ends["dropped"]) == 3 and count(ends["truncated"]) == 0
    conn = connect(ends["backdated"])
    after = query(conn, "SELECT id, created_at FROM orders ORDER BY id")
    conn.close()
    assert [(i, ts + timedelta(hours=5)) for i, ts in after] == before
    assert count(ends["intact"]) == 3 and count(ends["intact"], "audit") == 2
    assert count(endpoint) == 3 and count(endpoint, "audit") == 2


# ------------------------------------------------------------------- Aurora
def test_aurora_mysql_cluster(emu, accounts):
    (acct,) = accounts(1)
    rds = emu.client("rds", acct)
    rds.create_db_cluster(DBClusterIdentifier="c1", Engine="aurora-mysql", DatabaseName="appdb", MasterUsername="owner2", MasterUserPassword=PASSWORD)
    wait_cluster_available(emu, acct, "c1")
    rds.create_db_instance(DBInstanceIdentifier="c1-a", DBClusterIdentifier="c1", Engine="aurora-mysql", DBInstanceClass="db.r6g.large")
    member = wait_available(emu, acct, "c1-a")["Endpoint"]
    cluster = rds.describe_db_clusters(DBClusterIdentifier="c1")["DBClusters"][0]
    assert cluster["Endpoint"] == cluster["ReaderEndpoint"] == "127.0.0.1"
    writer = {"Address": cluster["Endpoint"], "Port": cluster["Port"]}
    assert member == writer
    seed(writer, 2, user="owner2")

    rds.create_db_cluster_snapshot(DBClusterIdentifier="c1", DBClusterSnapshotIdentifier="cs1")
    wait_cluster_snapshot(emu, acct, "cs1")
    seed(writer, 1, user="owner2")
    rds.restore_db_cluster_from_snapshot(DBClusterIdentifier="c2", SnapshotIdentifier="cs1", Engine="aurora-mysql")
    c2 = wait_cluster_available(emu, acct, "c2")
    assert (c2["DatabaseName"], c2["MasterUsername"]) == ("appdb", "owner2")
    restored = {"Address": c2["Endpoint"], "Port": c2["Port"]}
    assert restored["Port"] != writer["Port"]
    context = trusting_emulator_ca(emu)
    conn = connect(restored, user="owner2", database="appdb", tls=context)
    assert query(conn, "SELECT COUNT(*) FROM orders") == [(2,)]
    conn.close()
    rds.modify_db_cluster(DBClusterIdentifier="c2", MasterUserPassword="cluster-pass-2", ApplyImmediately=True)
    assert count(restored, password="cluster-pass-2", user="owner2", database="appdb") == 2
    assert access_denied(lambda: connect(restored, user="owner2", tls=context)) == 1045
    assert count(writer, user="owner2") == 3

    name = database_of(emu, acct, "cluster", "c1")
    rds.delete_db_instance(DBInstanceIdentifier="c1-a", SkipFinalSnapshot=True)
    rds.delete_db_cluster(DBClusterIdentifier="c1", SkipFinalSnapshot=True)
    assert name not in emu.control("GET", "/mysql")["server_databases"]


def test_rds_ca_is_shared_with_postgres(emu):
    assert rds_ca(emu).startswith("-----BEGIN CERTIFICATE-----")


# -------------------------------------------------------- server lifecycle
def _create_my_instance(rds: Any) -> dict[str, Any]:
    return rds.create_db_instance(
        DBInstanceIdentifier="my1", DBInstanceClass="db.t3.micro", Engine="mysql", AllocatedStorage=20, MasterUsername="admin", MasterUserPassword=PASSWORD
    )["DBInstance"]


def _mariadbd_children(pid: int) -> list[int]:
    return [c for c in child_pids(pid) if Path(f"/proc/{c}/exe").resolve().name == "mariadbd"]


@pytest.mark.parametrize("how", ["terminate", "kill"])
def test_server_is_lazy_reset_and_never_orphaned(how):
    """A private emulator: no MariaDB until a MySQL-engine resource (other engines,
    Multi-AZ DB clusters don't start it); reset drops the databases; no server
    is left after exit, even after SIGKILL."""
    with private_emulator() as (url, proc):
        ctl = lambda: requests.get(f"{url}/_snapferry/mysql", timeout=10).json()  # noqa: E731
        rds = private_rds(url)
        rds.create_db_instance(DBInstanceIdentifier="o1", DBInstanceClass="db.m5.large", Engine="oracle-ee", AllocatedStorage=20, MasterUsername="admin", MasterUserPassword=PASSWORD)
        rds.create_db_cluster(
            DBClusterIdentifier="maz", Engine="mysql", DBClusterInstanceClass="db.m6gd.large", AllocatedStorage=100, StorageType="io1", Iops=1000,
            MasterUsername="admin", MasterUserPassword=PASSWORD,
        )  # fmt: skip
        assert ctl()["running"] is False and ctl()["pid"] is None and _mariadbd_children(proc.pid) == []

        started = time.monotonic()
        created = _create_my_instance(rds)
        first = time.monotonic() - started
        status = ctl()
        assert status["running"] is True and _mariadbd_children(proc.pid) == [status["pid"]]
        data_dir = Path(status["data_dir"])
        assert data_dir.is_dir()
        print(f"first mysql CreateDBInstance: {first:.2f}s (server start {status['start_seconds']:.2f}s)")
        my_pid = status["pid"]
        if how == "terminate":
            connect(created["Endpoint"]).close()
            assert len(status["databases"]) == 1 and len(status["server_databases"]) == 1
            assert requests.post(f"{url}/_snapferry/reset", timeout=30).json() == {"ok": True}
            assert ctl()["databases"] == [] and ctl()["server_databases"] == [] and ctl()["pid"] == my_pid
        stop_leaving_no_server(proc, how, my_pid, data_dir, lambda url: _create_my_instance(private_rds(url)))
