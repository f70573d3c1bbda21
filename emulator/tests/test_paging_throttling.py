"""Paging of RDS / EC2 Describe calls as AWS pages them, and RDS / EC2 API request throttling.

Paging: RDS ``MaxRecords`` 20..100 (default 100) + ``Marker``; EC2
``MaxResults`` + ``NextToken`` (all in one response without ``MaxResults``).
Throttling: token buckets per account and region, off unless switched on
through ``/_snapferry/throttling``.
"""

from __future__ import annotations

import time
from typing import Any, Iterator

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from conftest import REGION, create_db, error_code, new_account, private_emulator, wait_for

N = 250  # snapshots per listing: 100/100/50 by default, 13 pages at MaxRecords 20


def _cheap_db(emu: Any, account: str, ident: str) -> None:
    # An engine with no data server behind it (sqlserver), so creating is cheap.
    create_db(emu, account, ident, Engine="sqlserver-ex", EngineVersion="15.00.4073.23.v1", LicenseModel="license-included")


def _cheap_cluster(emu: Any, account: str, ident: str) -> None:
    # A Multi-AZ DB cluster (engine postgres): no data server behind it either.
    emu.client("rds", account).create_db_cluster(
        DBClusterIdentifier=ident,
        Engine="postgres",
        DBClusterInstanceClass="db.m5d.large",
        AllocatedStorage=100,
        StorageType="io1",
        Iops=1000,
        MasterUsername="admin",
        MasterUserPassword="password123",
    )


@pytest.fixture(scope="module")
def many_snapshots(emu: Any) -> Iterator[str]:
    """One account with N DB snapshots and N DB cluster snapshots (created in shuffled name order)."""
    before = emu.control("GET", "/config")
    account = new_account()
    emu.control("POST", "/config", {"account": account, "quotas": {"manual_db_snapshots": 1000, "manual_cluster_snapshots": 1000}})
    _cheap_db(emu, account, "db1")
    _cheap_cluster(emu, account, "c1")
    rds = emu.client("rds", account)
    for i in sorted(range(N), key=lambda i: (i * 7919) % N):  # not in identifier order
        rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier=f"s{i:03d}")
        rds.create_db_cluster_snapshot(DBClusterIdentifier="c1", DBClusterSnapshotIdentifier=f"cs{i:03d}")
    yield account
    emu.control("POST", "/config", before)


def _pages(call: Any, items_key: str, id_key: str, **params: Any) -> list[list[str]]:
    """Follow Marker to the end; the identifiers of each page."""
    pages, marker = [], None
    while True:
        resp = call(**params, **({"Marker": marker} if marker else {}))
        pages.append([item[id_key] for item in resp[items_key]])
        marker = resp.get("Marker")
        if not marker:
            return pages
        assert len(pages) < 50, "paging does not end"


LISTINGS = [
    ("describe_db_snapshots", "DBSnapshots", "DBSnapshotIdentifier", "s"),
    ("describe_db_cluster_snapshots", "DBClusterSnapshots", "DBClusterSnapshotIdentifier", "cs"),
]


# ------------------------------------------------------------------ RDS paging
@pytest.mark.parametrize("operation,items_key,id_key,prefix", LISTINGS)
def test_rds_snapshots_default_pages_are_100_100_50(emu, many_snapshots, operation, items_key, id_key, prefix):
    call = getattr(emu.client("rds", many_snapshots), operation)
    pages = _pages(call, items_key, id_key)
    assert [len(p) for p in pages] == [100, 100, 50]
    flat = [i for p in pages for i in p]
    assert flat == [f"{prefix}{i:03d}" for i in range(N)]  # every one once, in identifier order


@pytest.mark.parametrize("operation,items_key,id_key,prefix", LISTINGS)
def test_rds_snapshots_at_max_records_20_come_in_13_pages(emu, many_snapshots, operation, items_key, id_key, prefix):
    call = getattr(emu.client("rds", many_snapshots), operation)
    pages = _pages(call, items_key, id_key, MaxRecords=20)
    assert [len(p) for p in pages] == [20] * 12 + [10]
    flat = [i for p in pages for i in p]
    assert len(flat) == len(set(flat)) == N
    assert sorted(flat) == [f"{prefix}{i:03d}" for i in range(N)]
    # The SDK's paginator (what the Rust SDK's into_paginator() does: pass Marker back) sees the same.
    paginator = emu.client("rds", many_snapshots).get_paginator(operation)
    seen = [item[id_key] for page in paginator.paginate(PaginationConfig={"PageSize": 20}) for item in page[items_key]]
    assert seen == flat


@pytest.mark.parametrize("operation,items_key,id_key,prefix", LISTINGS)
def test_rds_marker_keeps_filters_and_type(emu, many_snapshots, operation, items_key, id_key, prefix):
    # Only manual snapshots of that instance/cluster, 40 per page: still all N, same order.
    rds = emu.client("rds", many_snapshots)
    parent = {"DBInstanceIdentifier": "db1"} if prefix == "s" else {"DBClusterIdentifier": "c1"}
    pages = _pages(getattr(rds, operation), items_key, id_key, MaxRecords=40, SnapshotType="manual", **parent)
    assert [len(p) for p in pages] == [40] * 6 + [10]


@pytest.mark.parametrize("max_records", [10, 19, 101, 1000])
@pytest.mark.parametrize(
    "operation",
    ["describe_db_snapshots", "describe_db_cluster_snapshots", "describe_db_instances", "describe_db_clusters"],
)
def test_rds_max_records_outside_20_to_100_is_refused(emu, accounts, operation, max_records):
    (acct,) = accounts(1)
    with pytest.raises(ClientError) as exc:
        getattr(emu.client("rds", acct), operation)(MaxRecords=max_records)
    assert error_code(exc) == "InvalidParameterValue"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert f"Invalid value {max_records} for MaxRecords" in exc.value.response["Error"]["Message"]


@pytest.mark.parametrize("max_records", [20, 100])
def test_rds_max_records_bounds_are_accepted(emu, accounts, max_records):
    (acct,) = accounts(1)
    rds = emu.client("rds", acct)
    assert rds.describe_db_snapshots(MaxRecords=max_records)["DBSnapshots"] == []
    assert rds.describe_db_instances(MaxRecords=max_records)["DBInstances"] == []


def test_rds_instances_and_clusters_page(emu, accounts):
    (acct,) = accounts(1)
    rds = emu.client("rds", acct)
    for i in (3, 0, 24, 11, *range(1, 3), *range(4, 11), *range(12, 24)):
        _cheap_db(emu, acct, f"db{i:02d}")
    pages = _pages(rds.describe_db_instances, "DBInstances", "DBInstanceIdentifier", MaxRecords=20)
    assert [len(p) for p in pages] == [20, 5]
    assert [i for p in pages for i in p] == [f"db{i:02d}" for i in range(25)]
    assert len(rds.describe_db_instances()["DBInstances"]) == 25  # default 100: one page
    assert "Marker" not in rds.describe_db_instances()
    for i in range(22):
        _cheap_cluster(emu, acct, f"c{i:02d}")
    pages = _pages(rds.describe_db_clusters, "DBClusters", "DBClusterIdentifier", MaxRecords=20)
    assert [len(p) for p in pages] == [20, 2]
    assert [i for p in pages for i in p] == [f"c{i:02d}" for i in range(22)]


def test_rds_pages_neither_skip_nor_repeat_when_snapshots_change_between_pages(emu, accounts, config):
    (acct,) = accounts(1)
    config(account=acct, quotas={"manual_db_snapshots": 1000})
    _cheap_db(emu, acct, "db1")
    rds = emu.client("rds", acct)
    for i in range(45):
        rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier=f"s{i:02d}")
    first = rds.describe_db_snapshots(MaxRecords=20)
    assert [s["DBSnapshotIdentifier"] for s in first["DBSnapshots"]] == [f"s{i:02d}" for i in range(20)]
    # Before the next page: one already listed and one not yet listed go away, one sorting before the marker comes.
    rds.delete_db_snapshot(DBSnapshotIdentifier="s05")
    rds.delete_db_snapshot(DBSnapshotIdentifier="s30")
    rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="s00a")
    marker, after = first["Marker"], []
    while marker:
        resp = rds.describe_db_snapshots(MaxRecords=20, Marker=marker)
        after += [s["DBSnapshotIdentifier"] for s in resp["DBSnapshots"]]
        marker = resp.get("Marker")
    assert after == [f"s{i:02d}" for i in range(20, 45) if i != 30]


def test_rds_bad_marker_is_refused(emu, accounts):
    (acct,) = accounts(1)
    with pytest.raises(ClientError) as exc:
        emu.client("rds", acct).describe_db_snapshots(Marker="not-a-marker")
    assert error_code(exc) == "InvalidParameterValue"


def test_rds_shared_snapshots_page_with_own(emu, accounts, config):
    owner, target = accounts(2)
    config(account=owner, quotas={"manual_db_snapshots": 1000})
    config(account=target, quotas={"manual_db_snapshots": 1000})
    _cheap_db(emu, owner, "db1")
    _cheap_db(emu, target, "db1")
    o, t = emu.client("rds", owner), emu.client("rds", target)
    for i in range(15):
        o.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier=f"s{i:02d}")
        t.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier=f"s{i:02d}")  # same names as the owner's
    wait_for(lambda: all(s["Status"] == "available" for s in o.describe_db_snapshots()["DBSnapshots"]), what="owner's snapshots available")
    for i in range(15):
        o.modify_db_snapshot_attribute(DBSnapshotIdentifier=f"s{i:02d}", AttributeName="restore", ValuesToAdd=[target])
    arns: list[str] = []
    marker = None
    while True:
        resp = t.describe_db_snapshots(IncludeShared=True, MaxRecords=20, **({"Marker": marker} if marker else {}))
        arns += [s["DBSnapshotArn"] for s in resp["DBSnapshots"]]
        marker = resp.get("Marker")
        if not marker:
            break
    assert len(arns) == len(set(arns)) == 30
    assert {a.split(":")[4] for a in arns} == {owner, target}


# ------------------------------------------------------------------ EC2 paging
def _ec2_pages(call: Any, items_key: str, id_key: str, **params: Any) -> list[list[str]]:
    pages, token = [], None
    while True:
        resp = call(**params, **({"NextToken": token} if token else {}))
        pages.append([item[id_key] for item in resp[items_key]])
        token = resp.get("NextToken")
        if not token:
            return pages
        assert len(pages) < 50, "paging does not end"


def test_ec2_describe_snapshots_pages_with_max_results(emu, accounts):
    (acct,) = accounts(1)
    ec2 = emu.client("ec2", acct)
    vol = ec2.create_volume(Size=8, AvailabilityZone=f"{REGION}a")["VolumeId"]
    ids = sorted(ec2.create_snapshot(VolumeId=vol)["SnapshotId"] for _ in range(12))
    unpaged = ec2.describe_snapshots(OwnerIds=["self"])
    assert sorted(s["SnapshotId"] for s in unpaged["Snapshots"]) == ids and "NextToken" not in unpaged
    pages = _ec2_pages(ec2.describe_snapshots, "Snapshots", "SnapshotId", OwnerIds=["self"], MaxResults=5)
    assert [len(p) for p in pages] == [5, 5, 2]
    assert [i for p in pages for i in p] == ids
    seen = [s["SnapshotId"] for page in ec2.get_paginator("describe_snapshots").paginate(OwnerIds=["self"], PaginationConfig={"PageSize": 5}) for s in page["Snapshots"]]
    assert seen == ids
    # 1000 is the maximum; larger values are capped, not refused.
    assert len(ec2.describe_snapshots(OwnerIds=["self"], MaxResults=5000)["Snapshots"]) == 12


@pytest.mark.parametrize(
    "params,code",
    [
        ({"MaxResults": 4}, "InvalidParameterValue"),
        ({"MaxResults": 5, "SnapshotIds": ["snap-00000000000000000"]}, "InvalidParameterCombination"),
        ({"MaxResults": 5, "NextToken": "bogus"}, "InvalidPaginationToken"),
    ],
)
def test_ec2_describe_snapshots_paging_refusals(emu, accounts, params, code):
    (acct,) = accounts(1)
    with pytest.raises(ClientError) as exc:
        emu.client("ec2", acct).describe_snapshots(**params)
    assert error_code(exc) == code


def test_ec2_describe_volumes_pages_with_max_results(emu, accounts):
    (acct,) = accounts(1)
    ec2 = emu.client("ec2", acct)
    ids = sorted(ec2.create_volume(Size=1, AvailabilityZone=f"{REGION}a")["VolumeId"] for _ in range(7))
    assert sorted(v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]) == ids
    pages = _ec2_pages(ec2.describe_volumes, "Volumes", "VolumeId", MaxResults=5)
    assert [len(p) for p in pages] == [5, 2]
    assert [i for p in pages for i in p] == ids
    with pytest.raises(ClientError) as exc:
        ec2.describe_volumes(VolumeIds=[ids[0]], MaxResults=5)
    assert error_code(exc) == "InvalidParameterCombination"
    with pytest.raises(ClientError) as exc:
        ec2.describe_volumes(MaxResults=2)
    assert error_code(exc) == "InvalidParameterValue"


# ---------------------------------------------------------------- throttling
@pytest.fixture
def throttling(emu: Any) -> Iterator[Any]:
    """Switch throttling on for one test; off everywhere afterwards."""

    def switch(**body: Any) -> dict[str, Any]:
        return emu.control("POST", "/throttling", body)

    yield switch
    emu.control("DELETE", "/throttling")


def _counts(emu: Any, account: str) -> dict[tuple[str, str], tuple[int, int]]:
    return {(c["region"], c["service"]): (c["admitted"], c["refused"]) for c in emu.control("GET", "/throttling")["counts"] if c["account"] == account}


def test_throttling_is_off_by_default(emu, accounts):
    (acct,) = accounts(1)
    status = emu.control("GET", "/throttling")
    assert status["enabled"] is False and status["all_accounts"] is None and status["accounts"] == {}
    rds = emu.client("rds", acct)
    for _ in range(30):
        rds.describe_db_snapshots()
    assert _counts(emu, acct) == {}


def test_rds_throttling_burst_refill_per_account_and_off(emu, accounts, throttling):
    acct, other = accounts(2)
    status = throttling(account=acct, rds={"burst": 5, "per_second": 1}, ec2=False)
    assert status["enabled"] is True
    assert status["accounts"] == {acct: {"rds": {"burst": 5, "per_second": 1.0}, "ec2": None}}
    rds = emu.client("rds", acct)
    for _ in range(5):
        rds.describe_db_snapshots()
    with pytest.raises(ClientError) as exc:
        rds.describe_db_instances()  # any RDS action takes from the same bucket
    assert error_code(exc) == "Throttling"
    assert exc.value.response["Error"]["Message"] == "Rate exceeded"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert _counts(emu, acct) == {(REGION, "rds"): (5, 1)}
    refused = [r for r in emu.requests_for(acct) if r["error_code"] == "Throttling"]
    assert len(refused) == 1 and refused[0]["throttled"] is True and refused[0]["operation"] == "DescribeDBInstances" and refused[0]["status"] == 400
    # The control API is never throttled.
    for _ in range(10):
        emu.control("GET", "/health")
    # 1 token a second, refilled continuously.
    time.sleep(1.1)
    rds.describe_db_snapshots()
    with pytest.raises(ClientError) as exc:
        rds.describe_db_snapshots()
    assert error_code(exc) == "Throttling"
    assert _counts(emu, acct) == {(REGION, "rds"): (6, 2)}
    # Another account is not throttled; EC2 of this account isn't either (ec2: false).
    other_rds = emu.client("rds", other)
    for _ in range(20):
        other_rds.describe_db_snapshots()
    ec2 = emu.client("ec2", acct)
    for _ in range(10):
        ec2.describe_snapshots(OwnerIds=["self"])
    assert _counts(emu, other) == {}
    assert _counts(emu, acct) == {(REGION, "rds"): (6, 2)}
    # The bucket is per region.
    emu.client("rds", acct, "eu-west-1").describe_db_snapshots()
    # Off for that account: unthrottled again.
    status = throttling(account=acct, off=True)
    assert status["accounts"] == {acct: {"off": True}} and status["enabled"] is False
    for _ in range(20):
        rds.describe_db_snapshots()
    assert _counts(emu, acct) == {(REGION, "rds"): (6, 2), ("eu-west-1", "rds"): (1, 0)}


def test_ec2_throttling_request_limit_exceeded(emu, accounts, throttling):
    (acct,) = accounts(1)
    throttling(account=acct, rds=False, ec2={"non_mutating": {"burst": 5, "per_second": 1}})
    ec2 = emu.client("ec2", acct)
    for _ in range(5):
        ec2.describe_snapshots(OwnerIds=["self"])
    with pytest.raises(ClientError) as exc:
        ec2.describe_volumes()
    assert error_code(exc) == "RequestLimitExceeded"
    assert exc.value.response["Error"]["Message"] == "Request limit exceeded."
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    # Mutating actions have their own bucket (default 200 / 5 a second).
    ec2.create_volume(Size=1, AvailabilityZone=f"{REGION}a")
    # RDS is not throttled here (rds: false).
    rds = emu.client("rds", acct)
    for _ in range(10):
        rds.describe_db_snapshots()
    assert _counts(emu, acct) == {(REGION, "ec2"): (6, 1)}
    buckets = {b["category"]: b for b in emu.control("GET", "/throttling")["buckets"] if b["account"] == acct}
    assert buckets["non_mutating"]["burst"] == 5 and buckets["mutating"]["burst"] == 200 and buckets["mutating"]["per_second"] == 5.0
    refused = [r for r in emu.requests_for(acct) if r["error_code"] == "RequestLimitExceeded"]
    assert [(r["operation"], r["status"], r["throttled"]) for r in refused] == [("DescribeVolumes", 503, True)]
    time.sleep(1.1)
    ec2.describe_snapshots(OwnerIds=["self"])


def test_throttling_for_all_accounts_with_an_account_exempt(emu, accounts, throttling):
    acct, exempt = accounts(2)
    status = throttling(rds={"burst": 2, "per_second": 0})
    assert status["all_accounts"]["rds"] == {"burst": 2, "per_second": 0.0}
    assert status["all_accounts"]["ec2"] == {"non_mutating": {"burst": 100, "per_second": 20.0}, "mutating": {"burst": 200, "per_second": 5.0}}
    throttling(account=exempt, off=True)
    rds = emu.client("rds", acct)
    rds.describe_db_snapshots()
    rds.describe_db_snapshots()
    with pytest.raises(ClientError) as exc:
        rds.describe_db_snapshots()
    assert error_code(exc) == "Throttling"
    exempt_rds = emu.client("rds", exempt)
    for _ in range(5):
        exempt_rds.describe_db_snapshots()
    assert _counts(emu, exempt) == {}
    # Switched off everywhere (DELETE): no more refusals; the counts stay readable.
    assert emu.control("DELETE", "/throttling")["enabled"] is False
    for _ in range(5):
        rds.describe_db_snapshots()
    assert _counts(emu, acct) == {(REGION, "rds"): (2, 1)}


def test_new_settings_give_a_full_bucket(emu, accounts, throttling):
    (acct,) = accounts(1)
    throttling(account=acct, rds={"burst": 1, "per_second": 0}, ec2=False)
    rds = emu.client("rds", acct)
    rds.describe_db_snapshots()
    with pytest.raises(ClientError):
        rds.describe_db_snapshots()
    throttling(account=acct, rds={"burst": 3, "per_second": 0}, ec2=False)
    for _ in range(3):
        rds.describe_db_snapshots()
    with pytest.raises(ClientError) as exc:
        rds.describe_db_snapshots()
    assert error_code(exc) == "Throttling"


@pytest.mark.parametrize(
    "body",
    [
        {"account": "123"},
        {"account": 111111111111},
        {"rds": {"burst": -1}},
        {"rds": {"burst": 1.5}},
        {"rds": {"per_second": "fast"}},
        {"rds": {"rate": 3}},
        {"rds": "on"},
        {"ec2": {"burst": 5, "mutating": {"burst": 1}}},
        {"ec2": {"non_mutating": {"nope": 1}}},
        {"off": "yes"},
        {"off": True, "rds": {"burst": 1}},
        {"bogus": 1},
        [],
    ],
)
def test_bad_throttling_body_is_400(emu, body):
    resp = requests.post(f"{emu.url}/_snapferry/throttling", json=body, timeout=10)
    assert resp.status_code == 400 and "error" in resp.json()
    assert emu.control("GET", "/throttling")["enabled"] is False


def test_resets_and_throttling():
    """moto's reset keeps the settings (config) but refills the buckets and clears the counts; the emulator's reset switches throttling off."""
    with private_emulator() as (url, _):

        def ctl(method: str, body: Any = None) -> Any:
            return requests.request(method, f"{url}/_snapferry/throttling", json=body, timeout=10).json()

        rds = boto3.client(
            "rds",
            endpoint_url=url,
            region_name=REGION,
            aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
            aws_secret_access_key="x",
            config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),  # the SDK would retry Throttling
        )
        ctl("POST", {"rds": {"burst": 1, "per_second": 0}})
        rds.describe_db_snapshots()
        with pytest.raises(ClientError) as exc:
            rds.describe_db_snapshots()
        assert error_code(exc) == "Throttling"
        assert [(c["admitted"], c["refused"]) for c in ctl("GET")["counts"]] == [(1, 1)]
        assert requests.post(f"{url}/moto-api/reset", timeout=10).status_code == 200
        status = ctl("GET")
        assert status["enabled"] is True and status["counts"] == [] and status["buckets"] == []
        rds.describe_db_snapshots()  # a full bucket again
        with pytest.raises(ClientError):
            rds.describe_db_snapshots()
        assert requests.post(f"{url}/_snapferry/reset", timeout=10).json() == {"ok": True}
        assert ctl("GET") == {"enabled": False, "all_accounts": None, "accounts": {}, "counts": [], "buckets": []}
        for _ in range(5):
            rds.describe_db_snapshots()
