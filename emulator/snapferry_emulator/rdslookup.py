"""RDS snapshot lookup by identifier or ARN, as AWS resolves it for a caller.

Its own module because both ``rds`` (its patches) and ``dbdata`` (restores,
the control API's corruption targets) need it, and ``rds`` imports
``dbdata``: kept in either, it would make an import cycle.
"""

from __future__ import annotations

import re
from typing import Any

RDS_ARN_RE = re.compile(r"^arn:aws[\w-]*:rds:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):(?P<type>[a-z-]+):(?P<name>.+)$")


def rds_backend(account: str, region: str) -> Any:
    from moto.rds.models import rds_backends

    return rds_backends[account][region]


def snapshot_store(backend: Any, cluster: bool) -> dict[str, Any]:
    return backend.cluster_snapshots if cluster else backend.database_snapshots


def shared_with(snap: Any, account: str) -> bool:
    return account in snap.attributes.get("restore", []) or "all" in snap.attributes.get("restore", [])


def not_found(cluster: bool, identifier: str) -> Exception:
    from moto.rds.exceptions import DBClusterSnapshotNotFoundError, DBSnapshotNotFoundFault

    return DBClusterSnapshotNotFoundError(identifier) if cluster else DBSnapshotNotFoundFault(identifier)


def find_snapshot(caller: Any, identifier: str, cluster: bool) -> Any:
    """Resolve an identifier or ARN as AWS does for ``caller`` (an RDSBackend)."""
    if identifier and identifier.startswith("arn:"):
        m = RDS_ARN_RE.match(identifier)
        expected = "cluster-snapshot" if cluster else "snapshot"
        if not m or m.group("type") != expected:
            raise not_found(cluster, identifier)
        owner = rds_backend(m.group("account"), m.group("region"))
        store = snapshot_store(owner, cluster)
        snap = store.get(m.group("name")) or store.get(m.group("name").lower())
        if snap is None:
            raise not_found(cluster, identifier)
        if m.group("account") != caller.account_id and not shared_with(snap, caller.account_id):
            raise not_found(cluster, identifier)
        return snap
    store = snapshot_store(caller, cluster)
    snap = store.get(identifier) if identifier else None
    if snap is None and identifier:
        snap = store.get(identifier.lower())
    if snap is None:
        raise not_found(cluster, identifier)
    return snap
