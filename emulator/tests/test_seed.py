"""``POST /_snapferry/seed``: an account's history of manual snapshots, made in-process.

The scale benchmark (bench/scale.py) seeds a backup account with up to 10,000 manual
snapshots; a listing of them pages as any other (100 a page by default, ``MaxRecords``).
Speed is the endpoint's purpose but not asserted here (it depends on the machine).
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import REGION, new_account

N = 250


def _quota(emu: Any, account: str, n: int) -> None:
    emu.control("POST", "/config", {"account": account, "quotas": {"manual_db_snapshots": n, "manual_cluster_snapshots": n}})


@pytest.fixture
def seeded_config(emu: Any) -> Any:
    before = emu.control("GET", "/config")
    yield
    emu.control("POST", "/config", before)


def _pages(call: Any, items_key: str, id_key: str, **params: Any) -> list[list[str]]:
    pages, marker = [], None
    while True:
        out = call(**params, **({"Marker": marker} if marker else {}))
        pages.append([s[id_key] for s in out[items_key]])
        marker = out.get("Marker")
        if not marker:
            return pages


def test_seeds_db_snapshots_that_page_as_aws_pages_them(emu: Any, seeded_config: Any) -> None:
    account = new_account()
    _quota(emu, account, 1000)
    out = emu.control("POST", "/seed", {"account": account, "region": REGION, "kind": "db-instance", "count": N, "prefix": "seed-"})
    assert out["created"] == N and out["first"] == "seed-00000" and out["last"] == f"seed-{N - 1:05d}"
    assert out["manual_snapshots"] == N and out["seconds"] >= 0

    rds = emu.client("rds", account)
    pages = _pages(rds.describe_db_snapshots, "DBSnapshots", "DBSnapshotIdentifier", SnapshotType="manual")
    assert [len(p) for p in pages] == [100, 100, 50]
    assert sorted(i for p in pages for i in p) == [f"seed-{i:05d}" for i in range(N)]
    pages = _pages(rds.describe_db_snapshots, "DBSnapshots", "DBSnapshotIdentifier", SnapshotType="manual", MaxRecords=20)
    assert len(pages) == 13 and sum(len(p) for p in pages) == N

    # Manual, available, untagged, unencrypted; looked up by identifier as any other.
    snap = rds.describe_db_snapshots(DBSnapshotIdentifier="seed-00042")["DBSnapshots"][0]
    assert (snap["SnapshotType"], snap["Status"], snap["Encrypted"]) == ("manual", "available", False)
    assert snap["DBInstanceIdentifier"] == "seed-db" and snap["Engine"] == "mysql"
    assert rds.list_tags_for_resource(ResourceName=snap["DBSnapshotArn"])["TagList"] == []
    # Their parent is no database of the account.
    assert rds.describe_db_instances()["DBInstances"] == []
    # The quota counts them.
    quotas = {q["AccountQuotaName"]: q for q in rds.describe_account_attributes()["AccountQuotas"]}
    assert quotas["ManualSnapshots"]["Used"] == N
    # No event: they are history, not news.
    assert emu.events_for(account) == []


def test_seeds_cluster_snapshots_and_more_from_a_start(emu: Any, seeded_config: Any) -> None:
    account = new_account()
    _quota(emu, account, 1000)
    emu.control("POST", "/seed", {"account": account, "kind": "db-cluster", "count": 30, "prefix": "old-"})
    out = emu.control("POST", "/seed", {"account": account, "kind": "db-cluster", "count": 10, "prefix": "old-", "start": 30})
    assert (out["first"], out["last"], out["manual_snapshots"]) == ("old-00030", "old-00039", 40)
    rds = emu.client("rds", account)
    pages = _pages(rds.describe_db_cluster_snapshots, "DBClusterSnapshots", "DBClusterSnapshotIdentifier", SnapshotType="manual", MaxRecords=20)
    assert [len(p) for p in pages] == [20, 20]
    assert rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"] == []
    assert rds.describe_db_clusters()["DBClusters"] == []


def test_refuses_past_the_quota_or_over_existing_names(emu: Any, seeded_config: Any) -> None:
    account = new_account()
    _quota(emu, account, 50)
    body = {"account": account, "kind": "db-instance", "count": 40}
    emu.control("POST", "/seed", body)
    err = emu.control("POST", "/seed", {**body, "start": 40, "count": 11}, expect=400)
    assert "quota is 50" in err["error"]
    err = emu.control("POST", "/seed", {**body, "start": 39, "count": 2}, expect=400)
    assert "seed-00039 exists already" in err["error"]
    # Refused whole: nothing of either was made.
    rds = emu.client("rds", account)
    assert len(rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]) == 40


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "db-instance", "count": 1},  # no account
        {"account": "123", "count": 1},
        {"account": "123456789012", "count": 0},
        {"account": "123456789012", "count": True},
        {"account": "123456789012", "count": 1, "kind": "ebs"},
        {"account": "123456789012", "count": 1, "prefix": "Seed-"},
        {"account": "123456789012", "count": 1, "prefix": "a--b"},
        {"account": "123456789012", "count": 1, "start": -1},
        {"account": "123456789012", "count": 1, "colour": "blue"},
    ],
)
def test_malformed_seed_requests_are_400(emu: Any, body: dict[str, Any]) -> None:
    assert "error" in emu.control("POST", "/seed", body, expect=400)


def test_an_encrypted_seed_needs_a_key_the_account_can_use(emu: Any, seeded_config: Any) -> None:
    account = new_account()
    _quota(emu, account, 10)
    key = emu.client("kms", account).create_key()["KeyMetadata"]["Arn"]
    emu.control("POST", "/seed", {"account": account, "count": 2, "kms_key_id": key})
    snap = emu.client("rds", account).describe_db_snapshots(DBSnapshotIdentifier="seed-00001")["DBSnapshots"][0]
    assert snap["Encrypted"] is True and snap["KmsKeyId"] == key
    # A key it can't use (no such key; a disabled one) is refused, as CreateDBInstance refuses it.
    assert "error" in emu.control("POST", "/seed", {"account": account, "count": 1, "start": 2, "kms_key_id": "alias/nope"}, expect=400)
    emu.client("kms", account).disable_key(KeyId=key)
    assert "error" in emu.control("POST", "/seed", {"account": account, "count": 1, "start": 2, "kms_key_id": key}, expect=400)
