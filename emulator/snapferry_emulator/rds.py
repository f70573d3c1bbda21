"""RDS: sharing, copying and restoring across accounts like AWS; time; events.

Why each patch exists (the pinned moto's behaviour in brackets):

* Snapshot lookup by ARN honours the ARN's account when the snapshot is
  shared with the caller [moto ignores the ARN's account, so a target account
  can't describe/copy/restore a shared snapshot].
* ``DescribeDB(Cluster)Snapshots`` supports ``IncludeShared`` and an ARN as
  identifier [ignored / not found].
* ``ModifyDB(Cluster)SnapshotAttribute`` refuses what AWS refuses: automated
  snapshots, snapshots on the AWS-managed key, ``all`` on encrypted
  snapshots, more than 20 accounts, snapshots still being created [all
  accepted, or different codes].
* Create/copy put the snapshot in ``creating`` and the ticker finishes it
  after the configured delay, emitting the native ``aws.rds`` events
  [available at once, no events]; meanwhile ``PercentProgress`` rises with
  the elapsed share of the delay [100 at once].  Copies check the source state, quotas
  (manual snapshots, copies in progress), KMS keys (disabled keys, another
  account's AWS-managed key, missing KmsKeyId for shared encrypted
  snapshots).
* Restores and instances created into a cluster go ``creating`` ->
  ``available``; restoring a shared encrypted snapshot directly is refused.
  Plain CreateDBInstance/CreateDBCluster stay as in moto (usable at once).
* DB instances/clusters created with ``StorageEncrypted`` and no key get the
  account's real ``alias/aws/rds`` key ARN [placeholder string
  ``default_kms_key_id``]; unencrypted clusters report no key.
* ``DescribeDBSnapshots``, ``DescribeDBClusterSnapshots``,
  ``DescribeDBInstances``, ``DescribeDBClusters`` page as AWS does:
  ``MaxRecords`` 20..100 (default 100, others ``InvalidParameterValue``),
  ``Marker`` (RDS API Reference *API_DescribeDBSnapshots* ``MaxRecords`` /
  ``Marker``; details in ``paging``) [everything in one response, or moto's
  generic paging without the range check].
* DB snapshots show ``OptionGroupName``: their instance's option group when
  taken, whose option names they also keep [moto: no option group].  A copy
  keeps the source's, or carries the group ``OptionGroupName`` names (which
  must exist where the copy lands: ``OptionGroupNotFoundFault``); a
  cross-region copy of a snapshot with a non-default group holding options
  and no ``OptionGroupName`` is refused (``InvalidParameterValue``): option
  groups belong to a region (RDS API *API_CopyDBSnapshot*
  ``OptionGroupName``).  A restore uses the snapshot's group.
* ``DescribeAccountAttributes`` answers the ``ManualSnapshots`` and
  ``ManualClusterSnapshots`` quotas (used / configured max) [not implemented].
* moto's own automatic "automated snapshot at creation" is switched off:
  automated snapshots are created only through the control API, so tests are
  deterministic (AWS takes them in the backup window, not at creation).
"""

from __future__ import annotations

import copy
import re
from datetime import datetime, timezone
from typing import Any

from . import dbdata, kmsutil, paging
from .eventbus import emit_native, iso_now
from .lifecycle import Lifecycle
from .rdslookup import find_snapshot, not_found, rds_backend, snapshot_store
from .state import ControlError, LayerState

ACCOUNT_RE = re.compile(r"^\d{12}$")

STATE: LayerState | None = None
LIFE: Lifecycle | None = None

# EventID, message, categories for each snapshot event we emit.
DB_EVENTS = {
    "manual_done": ("RDS-EVENT-0042", "Manual snapshot created", ["creation"]),
    "auto_done": ("RDS-EVENT-0091", "Automated snapshot created", ["creation"]),
    "copy_start_same": ("RDS-EVENT-0196", "Started same-Region copy of snapshot", ["notification"]),
    "copy_done_same": ("RDS-EVENT-0197", "Finished same-Region copy of snapshot", ["notification"]),
    "copy_fail_same": ("RDS-EVENT-0190", "Canceled same-Region copy of snapshot", ["notification"]),
    "copy_start_cross": ("RDS-EVENT-0059", "Started cross-Region copy of snapshot", ["notification"]),
    "copy_done_cross": ("RDS-EVENT-0060", "Finished cross-Region copy of snapshot", ["notification"]),
    "copy_fail_cross": ("RDS-EVENT-0061", "Canceled cross-Region copy of snapshot", ["notification"]),
    # AWS documents no snapshot-creation failure EventID; emulator-defined.
    "create_fail": ("SNAPFERRY-EVENT-SNAPSHOT-FAILED", "Snapshot creation failed", ["failure"]),
}
CLUSTER_EVENTS = {
    "manual_done": ("RDS-EVENT-0075", "Manual cluster snapshot created", ["backup"]),
    "auto_done": ("RDS-EVENT-0169", "Automated cluster snapshot created", ["backup"]),
    "create_fail": ("SNAPFERRY-EVENT-SNAPSHOT-FAILED", "Cluster snapshot creation failed", ["failure"]),
}


def _err(code: str, message: str) -> Exception:
    from moto.rds.exceptions import RDSClientError

    return RDSClientError(code, message)


def _kms_inaccessible(key_ref: str | None) -> Exception:
    from moto.rds.exceptions import KMSKeyNotAccessibleFault

    return KMSKeyNotAccessibleFault(str(key_ref))


def _is_cluster(snap: Any) -> bool:
    return hasattr(snap, "db_cluster_snapshot_identifier")


def _snap_id(snap: Any) -> str:
    return snap.db_cluster_snapshot_identifier if _is_cluster(snap) else snap.db_snapshot_identifier


def _bad_state(cluster: bool, message: str) -> Exception:
    return _err("InvalidDBClusterSnapshotStateFault" if cluster else "InvalidDBSnapshotState", message)


def _shared_snapshots(caller: Any, cluster: bool) -> list[Any]:
    from moto.rds.models import rds_backends

    found = []
    for account, regions in list(rds_backends.items()):
        if account == caller.account_id:
            continue
        backend = regions.get(caller.region_name) if hasattr(regions, "get") else None
        if backend is None:
            continue
        for snap in list(snapshot_store(backend, cluster).values()):
            if caller.account_id in snap.attributes.get("restore", []):
                found.append(snap)
    return found


def _key_of(snap: Any) -> Any:
    owner = snap.backend
    return kmsutil.resolve_key(owner.account_id, owner.region_name, snap.kms_key_id)


def _validate_new_key(caller: Any, key_ref: str) -> str:
    """A KmsKeyId the caller passes for a new resource -> key ARN, or KMSKeyNotAccessibleFault."""
    key = kmsutil.resolve_key(caller.account_id, caller.region_name, key_ref)
    if key is None or key.region != caller.region_name or not kmsutil.usable_by(key, caller.account_id):
        raise _kms_inaccessible(key_ref)
    return key.arn


def normalize_key_ref(backend: Any, value: Any) -> Any:
    """``default_kms_key_id`` -> the account's aws/rds key ARN; ids/aliases -> key ARN."""
    if value is None or backend is None:
        return value
    if value == "default_kms_key_id":
        return kmsutil.aws_managed_key(backend.account_id, backend.region_name, "alias/aws/rds").arn
    if isinstance(value, str) and not value.startswith("arn:"):
        key = kmsutil.resolve_key(backend.account_id, backend.region_name, value)
        if key is not None:
            return key.arn
    return value


# ------------------------------------------------------------------ events
def _emit(snap: Any, which: str) -> None:
    cluster = _is_cluster(snap)
    table = CLUSTER_EVENTS if cluster else DB_EVENTS
    if which not in table:
        return
    event_id, message, categories = table[which]
    emit_native(
        account=snap.backend.account_id,
        region=snap.backend.region_name,
        source="aws.rds",
        detail_type="RDS DB Cluster Snapshot Event" if cluster else "RDS DB Snapshot Event",
        resources=[snap.arn],
        detail={
            "EventCategories": categories,
            "SourceType": "CLUSTER_SNAPSHOT" if cluster else "SNAPSHOT",
            "SourceArn": snap.arn,
            "Date": iso_now(),
            "Message": message,
            "SourceIdentifier": _snap_id(snap),
            "EventID": event_id,
        },
        key=event_id,
    )


def _start_snapshot_lifecycle(snap: Any, *, copy_of: Any = None) -> None:
    """Put a new snapshot/copy in 'creating' and schedule its completion."""
    assert LIFE is not None
    cluster = _is_cluster(snap)
    snap.status = "creating"
    snap.percent_progress = 0
    backend = snap.backend
    automated = snap.snapshot_type == "automated"
    # Creation-start events (0040/0090/0074/0168) are not emitted: consumers
    # key on completions, and the harness expects the first event of a new
    # snapshot to be its completion.  Copy-start events (0196/0059) are.
    if copy_of is not None and not cluster:
        cross = copy_of.backend.region_name != backend.region_name
        _emit(snap, "copy_start_cross" if cross else "copy_start_same")
    source_ref = (copy_of.backend.account_id, copy_of.backend.region_name, _snap_id(copy_of)) if copy_of else None

    def complete(failed: bool) -> None:
        if not any(v is snap for v in list(snapshot_store(backend, cluster).values())):
            return  # deleted meanwhile
        if source_ref is not None and not failed:
            src_store = snapshot_store(rds_backend(source_ref[0], source_ref[1]), cluster)
            failed = not any(v is copy_of for v in list(src_store.values()))  # source deleted before the copy finished
        if not failed:
            # PostgreSQL- or MariaDB-backed: take/copy the data now.
            failed = not dbdata.snapshot_completed(snap, copy_of)
        if failed:
            snap.status = "failed"
            if copy_of is None:
                _emit(snap, "create_fail")
            elif not cluster:
                cross = copy_of.backend.region_name != backend.region_name
                _emit(snap, "copy_fail_cross" if cross else "copy_fail_same")
            return
        snap.status = "available"
        snap.percent_progress = 100
        if copy_of is None:
            _emit(snap, "auto_done" if automated else "manual_done")
        elif not cluster:
            cross = copy_of.backend.region_name != backend.region_name
            _emit(snap, "copy_done_cross" if cross else "copy_done_same")
        # No event for a finished cluster snapshot copy: AWS sends none.

    def status_now() -> str:
        return snap.status if any(v is snap for v in list(snapshot_store(backend, cluster).values())) else "deleted"

    snap._sf_pending = LIFE.schedule(
        kind="db-cluster" if cluster else "db-instance",
        account=backend.account_id,
        region=backend.region_name,
        complete=complete,
        copy_bucket=("rds_cluster_copies" if cluster else "rds_instance_copies") if copy_of is not None else None,
        copy_labels={"kind": "db-cluster" if cluster else "db-instance", "snapshot_id": _snap_id(snap), "arn": snap.arn, "source_arn": copy_of.arn}
        if copy_of is not None
        else None,
        status_of=status_now,
    )


def _start_resource_lifecycle(resource: Any, account: str, region: str) -> None:
    """DB instance / cluster: 'creating' -> 'available' after the delay."""
    assert LIFE is not None
    resource.status = "creating"

    def complete(failed: bool) -> None:
        # 'failed' is RDS's own status for an instance or cluster that could not be created.
        if resource.status == "creating":
            resource.status = "failed" if failed else "available"

    LIFE.schedule(kind="restore", account=account, region=region, complete=complete)


# ----------------------------------------------------------------- checks
def _manual_snapshots(backend: Any, cluster: bool) -> int:
    """What the manual-snapshot quota counts (every manual snapshot of the account in the region, copies included)."""
    return sum(1 for s in list(snapshot_store(backend, cluster).values()) if s.snapshot_type == "manual")


def _check_manual_quota(backend: Any, cluster: bool) -> None:
    assert STATE is not None
    limit = STATE.quota("manual_cluster_snapshots" if cluster else "manual_db_snapshots", backend.account_id)
    if _manual_snapshots(backend, cluster) >= limit:
        kind = "DB cluster snapshots" if cluster else "DB snapshots"
        raise _err(
            "SnapshotQuotaExceeded",
            f"The request would result in the user exceeding the allowed number of {kind} "
            f"(maximum number of manual snapshots exceeded: {limit}).",
        )


def _check_copy_quota(backend: Any, cluster: bool, cross_region: bool) -> None:
    assert STATE is not None
    bucket = "rds_cluster_copies" if cluster else "rds_instance_copies"
    limit = STATE.quota(bucket, backend.account_id)
    if STATE.copies_in_progress(bucket, backend.account_id, backend.region_name) >= limit:
        where = "across regions" if cross_region else f"at the same time to region {backend.region_name}"
        raise _err("SnapshotQuotaExceeded", f"Cannot copy more than {limit} snapshots {where}.")


def _check_share(snap: Any, cluster: bool, values_to_add: list[str]) -> None:
    if not values_to_add:
        return
    ident = _snap_id(snap)
    for value in values_to_add:
        if value != "all" and not ACCOUNT_RE.match(str(value)):
            raise _err("InvalidParameterValue", f"Invalid AWS account id: {value}")
    if snap.snapshot_type != "manual" or ident.startswith("rds:"):
        raise _bad_state(cluster, "Only manual snapshots may be shared. Copy the automated snapshot to a manual snapshot first.")
    if snap.status != "available":
        raise _bad_state(cluster, f"Snapshot {ident} is not in the available state (it is {snap.status}).")
    encrypted = bool(getattr(snap, "storage_encrypted", False) or getattr(snap, "encrypted", False))
    if encrypted and "all" in values_to_add:
        raise _err("InvalidParameterValue", "Encrypted snapshots can't be shared publicly: the value 'all' is not allowed for an encrypted snapshot.")
    if encrypted and kmsutil.is_aws_managed(_key_of(snap)):
        raise _err(
            "InvalidParameterValue",
            "Snapshots encrypted with the AWS-managed key (alias/aws/rds) can't be shared. "
            "Copy the snapshot with a customer managed key and share the copy.",
        )
    current = [v for v in snap.attributes.get("restore", []) if v != "all"]
    accounts = set(current) | {v for v in values_to_add if v != "all"}
    if len(accounts) > 20:
        raise _err("SharedSnapshotQuotaExceeded", "A manual snapshot can be shared with at most 20 AWS accounts.")


# ---------------------------------------------------------- option groups
def _option_group_of(database: Any) -> tuple[str, list[str]]:
    """The instance's option group name and its options' names now (what a snapshot of it keeps)."""
    name = database.option_group_name
    group = database.backend.option_groups.get(name) if name else None
    return name, list(group._options) if group is not None else []


def _copy_option_group(caller: Any, source: Any, cross_region: bool, name: str | None, copy_group: bool = False) -> tuple[str, list[str]]:
    """(name, option names) a copy of a DB snapshot carries, or AWS's refusal.

    RDS API *API_CopyDBSnapshot* ``OptionGroupName``: "Specify this option if
    you are copying a snapshot from one AWS Region to another, and your DB
    instance uses a nondefault option group" (option groups are per region).
    Without it AWS refuses such a copy with the message below (as users got it:
    awslabs/rds-snapshot-tool#57, cloud-custodian#4955).

    ``CopyOptionGroup``: "Specifies whether to copy the DB option group
    associated with the source DB snapshot to the target AWS account and
    associate with the target DB snapshot. The associated option group can be
    copied only with cross-account snapshot copy calls." So a cross-account
    copy of a snapshot of a non-default group has that group (copied into the
    caller's account and region, with its options) only with it, and the
    engine's default group without it."""
    from moto.rds.exceptions import OptionGroupNotFoundFaultError
    from moto.rds.models import OptionGroup

    if name:
        group = caller.option_groups.get(name)
        if group is None:
            raise OptionGroupNotFoundFaultError(name)
        return group.name, list(group._options)
    options = list(source._sf_option_names)
    cross_account = source.backend.account_id != caller.account_id
    if cross_account and not cross_region and not source.option_group_name.startswith("default:"):
        if not copy_group:
            return f"default:{source.engine}-{'-'.join(str(source.engine_version).split('.')[:2])}", []
        if source.option_group_name not in caller.option_groups:
            origin = source.backend.option_groups.get(source.option_group_name)
            engine = origin.engine_name if origin is not None else source.engine
            major = origin.major_engine_version if origin is not None else str(source.engine_version).rsplit(".", 1)[0]
            group = OptionGroup(caller, source.option_group_name, engine, major, "copied with a DB snapshot")
            group.add_options([{"OptionName": o} for o in options])
            caller.option_groups[source.option_group_name] = group
        return source.option_group_name, options
    if cross_region and options and not source.option_group_name.startswith("default:"):
        # The brackets and ", " are how AWS's (Java) service prints a list.
        raise _err("InvalidParameterValue", f"The snapshot requires a target option group with the following options: [{', '.join(options)}]")
    return source.option_group_name, options


# ------------------------------------------------------------------ copies
def _copy(caller: Any, cluster: bool, source_id: str, target_id: str, kms_key_id: str | None, tags: Any, copy_tags: Any, option_group_name: str | None = None, copy_option_group: bool = False) -> Any:
    from moto.rds.exceptions import DBClusterSnapshotAlreadyExistsError, DBSnapshotAlreadyExistsError
    from moto.rds.models import DBClusterSnapshot, DBSnapshot

    source = find_snapshot(caller, source_id, cluster)
    if target_id in snapshot_store(caller, cluster):
        raise DBClusterSnapshotAlreadyExistsError(target_id) if cluster else DBSnapshotAlreadyExistsError(target_id)
    if source.status != "available":
        raise _bad_state(cluster, f"Snapshot {_snap_id(source)} is not in the available state (it is {source.status}); it can't be copied yet.")
    cross_account = source.backend.account_id != caller.account_id
    cross_region = source.backend.region_name != caller.region_name
    encrypted = bool(source.storage_encrypted)
    if encrypted:
        src_key = _key_of(source)
        if src_key is None or not kmsutil.usable_by(src_key, caller.account_id):
            raise _kms_inaccessible(source.kms_key_id)
        if not kms_key_id and cross_account:
            raise _err("InvalidParameterValue", "KmsKeyId must be specified when copying an encrypted snapshot that is shared from another AWS account.")
        if not kms_key_id and cross_region:
            raise _err("InvalidParameterValue", "KmsKeyId must be specified when copying an encrypted snapshot to another AWS Region.")
    new_key = _validate_new_key(caller, kms_key_id) if kms_key_id else (source.kms_key_id if encrypted else None)
    option_group = None if cluster else _copy_option_group(caller, source, cross_region, option_group_name, copy_option_group)
    _check_manual_quota(caller, cluster)
    _check_copy_quota(caller, cluster, cross_region)
    if tags:
        new_tags = tags
    elif copy_tags:
        new_tags = list(source.tags or [])
    else:
        new_tags = []
    if cluster:
        snap = DBClusterSnapshot(caller, source.cluster, target_id, tags=new_tags, kms_key_id=new_key)
        if not new_key:
            snap.kms_key_id = snap.cluster.kms_key_id = None
        snap.source_db_cluster_snapshot_arn = source.arn
    else:
        snap = DBSnapshot(
            caller,
            source.database,
            target_id,
            tags=new_tags,
            kms_key_id=new_key,
            original_created_at=source.original_snapshot_create_time,
        )
        snap.source_db_snapshot_identifier = source.arn
        snap.source_region = source.backend.region_name if cross_region else None
        for attr in ("db_instance_identifier", "dbi_resource_id", "engine_version", "allocated_storage", "master_username", "port", "instance_create_time"):
            setattr(snap, attr, getattr(source, attr))
        snap.kms_key_id = new_key
        snap.option_group_name, snap._sf_option_names = option_group
    snap.engine = source.engine
    snap.engine_version = source.engine_version
    snap.allocated_storage = source.allocated_storage
    snap.storage_encrypted = bool(new_key)
    snap.encrypted = bool(new_key)
    snapshot_store(caller, cluster)[target_id] = snap
    _start_snapshot_lifecycle(snap, copy_of=source)
    return snap


# ---------------------------------------------------------------- install
def install(state: LayerState, life: Lifecycle) -> None:  # noqa: C901 - one place for all RDS patches
    global STATE, LIFE
    STATE, LIFE = state, life
    from moto.rds import models as m
    from moto.rds import responses as r

    B = m.RDSBackend
    if getattr(B, "_snapferry", False):
        return

    # ManageMasterUserPassword: RDS writes the master user's own name into the secret and a
    # password it generates (moto: always "admin" and one fixed password), so whoever logs in
    # with the secret logs in as the master user.
    def _generate_secret_string(self: Any) -> str:
        import json
        import secrets

        return json.dumps({"username": self.resource.master_username, "password": secrets.token_urlsafe(24)})

    m.MasterUserSecret._generate_secret_string = _generate_secret_string
    B._snapferry = True

    # Quotas are enforced by the layer (configurable); moto's own check off.
    B.SNAPSHOT_QUOTA = property(lambda self: 10**9)

    # PercentProgress of a snapshot or copy in progress: the elapsed share of
    # its delay (0..99), so a reader can estimate when it ends (and a copy slot
    # frees); 100 once available [moto: 100 at once; the layer's 0 until done].
    def _get_progress(self: Any) -> int:
        pending = self.__dict__.get("_sf_pending")
        if pending is not None and self.status == "creating":
            return pending.percent()
        return self.__dict__.get("_sf_percent_progress", 100)

    def _set_progress(self: Any, value: int) -> None:
        self.__dict__["_sf_percent_progress"] = value

    m.DBSnapshot.percent_progress = property(_get_progress, _set_progress)
    m.DBClusterSnapshot.percent_progress = property(_get_progress, _set_progress)

    # A DB snapshot keeps its instance's option group (``OptionGroupName`` in
    # answers) and that group's option names as they were when it was taken
    # (a cross-region copy needs them) [moto: no option group on snapshots].
    orig_snapshot_init = m.DBSnapshot.__init__

    def snapshot_init(self: Any, backend: Any, database: Any, *args: Any, **kwargs: Any) -> None:
        orig_snapshot_init(self, backend, database, *args, **kwargs)
        self.option_group_name, self._sf_option_names = _option_group_of(database)

    m.DBSnapshot.__init__ = snapshot_init

    # Automated snapshots only via the control API.
    m.DBInstance.save_automated_backup = lambda self: None
    m.DBCluster.save_automated_backup = lambda self: None

    # Real KMS key ARNs instead of the 'default_kms_key_id' placeholder.
    def _inst_get_key(self: Any) -> Any:
        return self.__dict__.get("_kms_key_id")

    def _inst_set_key(self: Any, value: Any) -> None:
        self.__dict__["_kms_key_id"] = normalize_key_ref(self.__dict__.get("backend"), value)

    m.DBInstance.kms_key_id = property(_inst_get_key, _inst_set_key)

    def _cluster_get_key(self: Any) -> Any:
        if not self.__dict__.get("storage_encrypted"):
            return None
        return self.__dict__.get("_sf_kms_key_id")

    def _cluster_set_key(self: Any, value: Any) -> None:
        self.__dict__["_sf_kms_key_id"] = normalize_key_ref(self.__dict__.get("backend"), value)

    m.DBCluster.kms_key_id = property(_cluster_get_key, _cluster_set_key)
    # Plain cluster status (moto flips 'creating' to 'available' on first read).
    m.DBCluster.status = property(lambda self: self.__dict__.get("_status"), lambda self, v: self.__dict__.__setitem__("_status", v))

    # Snapshot lookups (used by moto's copy/attribute code paths) honour ARNs + sharing.
    def get_snapshot(self: Any, identifier: str, resource_type: Any, not_found_exception: Any) -> Any:
        return find_snapshot(self, identifier, resource_type is m.DBClusterSnapshot)

    B.get_snapshot = get_snapshot

    # Describe: ARN identifiers, SnapshotType=shared, IncludeShared.
    orig_describe = B.describe_db_snapshots
    orig_describe_cluster = B.describe_db_cluster_snapshots

    def _describe(orig: Any, cluster: bool) -> Any:
        parent_kw = "db_cluster_identifier" if cluster else "db_instance_identifier"

        def describe(self: Any, *args: Any, include_shared: bool = False, **kwargs: Any) -> list[Any]:
            names = [parent_kw, "db_snapshot_identifier", "snapshot_type", "filters"]
            values = dict(zip(names, args))
            values.update(kwargs)
            parent_id = values.get(parent_kw)
            snapshot_id = values.get("db_snapshot_identifier")
            snapshot_type = values.get("snapshot_type")
            filters = values.get("filters")
            if snapshot_id and snapshot_id.startswith("arn:"):
                return [find_snapshot(self, snapshot_id, cluster)]
            if snapshot_type == "shared":
                shared = _shared_snapshots(self, cluster)
                if snapshot_id:
                    shared = [s for s in shared if _snap_id(s) == snapshot_id.lower()]
                return shared
            own = orig(self, parent_id, snapshot_id, snapshot_type, filters)
            if include_shared and not snapshot_id and snapshot_type in (None, ""):
                own = list(own) + _shared_snapshots(self, cluster)
            return own

        return describe

    B.describe_db_snapshots = _describe(orig_describe, False)
    B.describe_db_cluster_snapshots = _describe(orig_describe_cluster, True)

    def _bool(value: Any) -> bool:
        return str(value).lower() == "true"

    def resp_describe_db_snapshots(self: Any) -> Any:
        filters = {f["Name"]: f["Values"] for f in self.params.get("Filters", [])}
        snaps = self.backend.describe_db_snapshots(
            self.params.get("DBInstanceIdentifier"),
            self.params.get("DBSnapshotIdentifier"),
            self.params.get("SnapshotType"),
            filters,
            include_shared=_bool(self.params.get("IncludeShared")),
        )
        snaps, marker = paging.rds_page(self.params, snaps, paging.rds_snapshot_key)
        return r.ActionResult({"DBSnapshots": snaps, "Marker": marker})

    def resp_describe_db_cluster_snapshots(self: Any) -> Any:
        filters = {f["Name"]: f["Values"] for f in self.params.get("Filters", [])}
        snaps = self.backend.describe_db_cluster_snapshots(
            self.params.get("DBClusterIdentifier"),
            self.params.get("DBClusterSnapshotIdentifier"),
            self.params.get("SnapshotType"),
            filters,
            include_shared=_bool(self.params.get("IncludeShared")),
        )
        snaps, marker = paging.rds_page(self.params, snaps, paging.rds_snapshot_key)
        return r.ActionResult({"DBClusterSnapshots": snaps, "Marker": marker})

    # DescribeDBInstances / DescribeDBClusters: moto's lookups, paged as AWS pages
    # (MaxRecords 20..100, default 100, Marker; see ``paging``).
    def resp_describe_db_instances(self: Any) -> Any:
        filters = {f["Name"]: f["Values"] for f in self.params.get("Filters", [])}
        dbs = list(self.backend.describe_db_instances(self.params.get("DBInstanceIdentifier"), filters=filters))
        dbs, marker = paging.rds_page(self.params, dbs, paging.rds_instance_key)
        return r.ActionResult({"DBInstances": dbs, "Marker": marker})

    def resp_describe_db_clusters(self: Any) -> Any:
        filters = {f["Name"]: f["Values"] for f in self.params.get("Filters", [])}
        clusters = list(self.backend.describe_db_clusters(db_cluster_identifier=self.params.get("DBClusterIdentifier"), filters=filters))
        clusters, marker = paging.rds_page(self.params, clusters, paging.rds_cluster_key)
        return r.ActionResult({"DBClusters": clusters, "Marker": marker})

    r.RDSResponse.describe_db_snapshots = resp_describe_db_snapshots
    r.RDSResponse.describe_db_cluster_snapshots = resp_describe_db_cluster_snapshots
    r.RDSResponse.describe_db_instances = resp_describe_db_instances
    r.RDSResponse.describe_db_clusters = resp_describe_db_clusters

    # DescribeAccountAttributes [not implemented]: the two quotas the layer
    # enforces, with the configured maximums (RDS API AccountQuota names).
    def resp_describe_account_attributes(self: Any) -> Any:
        assert STATE is not None
        quotas = [
            {"AccountQuotaName": name, "Used": _manual_snapshots(self.backend, cluster), "Max": STATE.quota(quota, self.backend.account_id)}
            for name, cluster, quota in (
                ("ManualSnapshots", False, "manual_db_snapshots"),
                ("ManualClusterSnapshots", True, "manual_cluster_snapshots"),
            )
        ]
        return r.ActionResult({"AccountQuotas": quotas})

    r.RDSResponse.describe_account_attributes = resp_describe_account_attributes

    # Sharing refusals (replace moto's: owner-only lookup + AWS's checks).
    def modify_db_snapshot_attribute(self: Any, db_snapshot_identifier: str, attribute_name: str, values_to_add: Any = None, values_to_remove: Any = None) -> Any:
        snap = find_snapshot(self, db_snapshot_identifier, False)
        if snap.backend is not self:
            raise not_found(False, db_snapshot_identifier)
        if attribute_name == "restore":
            _check_share(snap, False, list(values_to_add or []))
        snap.modify_attribute(attribute_name, values_to_add, values_to_remove)
        return snap.attributes

    def modify_db_cluster_snapshot_attribute(self: Any, db_cluster_snapshot_identifier: str, attribute_name: str, values_to_add: Any = None, values_to_remove: Any = None) -> Any:
        snap = find_snapshot(self, db_cluster_snapshot_identifier, True)
        if snap.backend is not self:
            raise not_found(True, db_cluster_snapshot_identifier)
        if attribute_name == "restore":
            _check_share(snap, True, list(values_to_add or []))
        snap.modify_attribute(attribute_name, values_to_add, values_to_remove)
        return snap.attributes

    B.modify_db_snapshot_attribute = modify_db_snapshot_attribute
    B.modify_db_cluster_snapshot_attribute = modify_db_cluster_snapshot_attribute

    # Create snapshots: quota, source state/key, 'creating' + events.
    orig_create = B.create_db_snapshot
    orig_create_cluster = B.create_db_cluster_snapshot

    def create_db_snapshot(self: Any, db_instance_identifier: str, db_snapshot_identifier: str, snapshot_type: str = "manual", tags: Any = None, original_created_at: Any = None, kms_key_id: Any = None, **_: Any) -> Any:
        db = self.databases.get(db_instance_identifier)
        if db is not None:
            if db.status != "available":
                raise _err("InvalidDBInstanceState", f"Cannot create a snapshot because the database instance {db_instance_identifier} is not currently in the available state.")
            if db.storage_encrypted and not kmsutil.key_usable(kmsutil.resolve_key(self.account_id, self.region_name, db.kms_key_id)):
                raise _kms_inaccessible(db.kms_key_id)
        if snapshot_type == "manual" and db_snapshot_identifier not in self.database_snapshots:
            _check_manual_quota(self, False)
        snap = orig_create(self, db_instance_identifier, db_snapshot_identifier, snapshot_type, tags, original_created_at, kms_key_id)
        _start_snapshot_lifecycle(snap)
        return snap

    def create_db_cluster_snapshot(self: Any, db_cluster_identifier: str, db_cluster_snapshot_identifier: str, snapshot_type: str = "manual", tags: Any = None, **_: Any) -> Any:
        cluster = self.clusters.get(db_cluster_identifier)
        if cluster is not None:
            if cluster.status != "available":
                raise _err("InvalidDBClusterStateFault", f"Cannot create a snapshot because the DB cluster {db_cluster_identifier} is not currently in the available state.")
            if cluster.storage_encrypted and not kmsutil.key_usable(kmsutil.resolve_key(self.account_id, self.region_name, cluster.kms_key_id)):
                raise _kms_inaccessible(cluster.kms_key_id)
        if snapshot_type == "manual" and db_cluster_snapshot_identifier not in self.cluster_snapshots:
            _check_manual_quota(self, True)
        snap = orig_create_cluster(self, db_cluster_identifier, db_cluster_snapshot_identifier, snapshot_type, tags)
        _start_snapshot_lifecycle(snap)
        return snap

    B.create_db_snapshot = create_db_snapshot
    B.create_db_cluster_snapshot = create_db_cluster_snapshot

    # Copies.
    def copy_db_snapshot(self: Any, source_db_snapshot_identifier: str, target_db_snapshot_identifier: str, kms_key_id: Any = None, tags: Any = None, copy_tags: Any = False, option_group_name: Any = None, copy_option_group: Any = False, **_: Any) -> Any:
        copy_group = str(copy_option_group).lower() == "true"
        return _copy(self, False, source_db_snapshot_identifier, target_db_snapshot_identifier, kms_key_id, tags, copy_tags, option_group_name, copy_group)

    def copy_db_cluster_snapshot(self: Any, source_db_cluster_snapshot_identifier: str, target_db_cluster_snapshot_identifier: str, kms_key_id: Any = None, copy_tags: Any = False, tags: Any = None, **_: Any) -> Any:
        return _copy(self, True, source_db_cluster_snapshot_identifier, target_db_cluster_snapshot_identifier, kms_key_id, tags, copy_tags)

    B.copy_db_snapshot = copy_db_snapshot
    B.copy_db_cluster_snapshot = copy_db_cluster_snapshot

    # Instances / clusters: KmsKeyId checks, 'creating' for instances in clusters.
    orig_create_instance = B.create_db_instance
    orig_create_cluster_res = B.create_db_cluster

    def create_db_instance(self: Any, db_kwargs: dict[str, Any]) -> Any:
        if db_kwargs.get("kms_key_id") and not db_kwargs.get("_sf_key_checked"):
            db_kwargs["kms_key_id"] = _validate_new_key(self, db_kwargs["kms_key_id"])
        db_kwargs.pop("_sf_key_checked", None)
        db = orig_create_instance(self, db_kwargs)
        if db_kwargs.get("db_cluster_identifier"):
            _start_resource_lifecycle(db, self.account_id, self.region_name)
        return db

    def create_db_cluster(self: Any, kwargs: dict[str, Any]) -> Any:
        if kwargs.get("kms_key_id") and not kwargs.pop("_sf_key_checked", False):
            kwargs["kms_key_id"] = _validate_new_key(self, kwargs["kms_key_id"])
        kwargs.pop("_sf_key_checked", None)
        cluster = orig_create_cluster_res(self, kwargs)
        # As moto: the answer says 'creating', the cluster is usable at once
        # (test set-up stays quick).  Restores are timed, see below.
        answer = copy.copy(cluster)
        cluster.status = "available"
        return answer

    B.create_db_instance = create_db_instance
    B.create_db_cluster = create_db_cluster

    # Restores.
    def _restore_checks(self: Any, snap: Any, cluster: bool, overrides: dict[str, Any]) -> str | None:
        ident = _snap_id(snap)
        if snap.status != "available":
            raise _bad_state(cluster, f"Snapshot {ident} is not in the available state (it is {snap.status}).")
        cross_account = snap.backend.account_id != self.account_id
        if cross_account and snap.storage_encrypted:
            raise _bad_state(
                cluster,
                f"Snapshot {snap.arn} is an encrypted snapshot shared from another AWS account and can't be restored directly; "
                "copy it into your account with your own KmsKeyId first and restore the copy.",
            )
        key_ref = overrides.get("kms_key_id")
        if key_ref:
            return _validate_new_key(self, key_ref)
        if snap.storage_encrypted:
            key = _key_of(snap)
            if key is None or not kmsutil.usable_by(key, self.account_id):
                raise _kms_inaccessible(snap.kms_key_id)
            return snap.kms_key_id
        return None

    def restore_db_instance_from_db_snapshot(self: Any, from_snapshot_id: str, overrides: dict[str, Any]) -> Any:
        from moto.rds.exceptions import DBInstanceAlreadyExists, InvalidParameterValue

        snap = find_snapshot(self, from_snapshot_id, False)
        key = _restore_checks(self, snap, False, overrides)
        if overrides["db_instance_identifier"] in self.databases:
            raise DBInstanceAlreadyExists()
        original = snap.database
        props: dict[str, Any] = {}
        for k, v in original.__dict__.items():
            if k.startswith("_"):
                k = k[1:]
            if k not in ("backend", "db_parameter_group_name", "vpc_security_group_ids", "max_allocated_storage", "status"):
                props[k] = copy.copy(v)
        props["kms_key_id"] = key
        props["storage_encrypted"] = bool(key)
        # The snapshot's group (a copy may carry another than its instance's);
        # for a default one moto names the engine's default itself.
        if snap.option_group_name.startswith("default:"):
            props.pop("option_group_name", None)
        else:
            props["option_group_name"] = snap.option_group_name
        if "allocated_storage" in overrides and overrides["allocated_storage"] and overrides["allocated_storage"] < snap.allocated_storage:
            raise InvalidParameterValue("The allocated storage size can't be less than the source snapshot or backup size.")
        props["engine"] = snap.engine
        props["engine_version"] = snap.engine_version
        props["allocated_storage"] = snap.allocated_storage
        for k, v in overrides.items():
            if v and k != "kms_key_id":
                props[k] = v
        props["_sf_key_checked"] = True
        db = self.create_db_instance(props)
        _start_resource_lifecycle(db, self.account_id, self.region_name)
        return db

    def restore_db_cluster_from_snapshot(self: Any, from_snapshot_id: str, overrides: dict[str, Any]) -> Any:
        snap = find_snapshot(self, from_snapshot_id, True)
        key = _restore_checks(self, snap, True, overrides)
        props = _cluster_cfg(snap.cluster)
        for k, v in overrides.items():
            if v:
                props[k] = v
        props["kms_key_id"] = key
        props["storage_encrypted"] = bool(key)
        props["engine"] = snap.engine
        props["engine_version"] = snap.engine_version
        props["_sf_key_checked"] = True
        answer = self.create_db_cluster(props)
        _start_resource_lifecycle(self.clusters[props["db_cluster_identifier"]], self.account_id, self.region_name)
        return answer

    B.restore_db_instance_from_db_snapshot = restore_db_instance_from_db_snapshot
    B.restore_db_cluster_from_snapshot = restore_db_cluster_from_snapshot


def _cluster_cfg(cluster: Any) -> dict[str, Any]:
    """moto's ``DBCluster.get_cfg`` without its KeyError for clusters created
    with ``ManageMasterUserPassword`` (they have no stored password)."""
    cfg = dict(cluster.__dict__)
    cfg.pop("backend", None)
    for key in ("_master_user_password", "_enable_http_endpoint", "_vpc_security_group_ids"):
        if key in cfg:
            cfg[key[1:]] = cfg.pop(key)
    for key in ("_status", "_sf_kms_key_id", "master_user_secret"):
        cfg.pop(key, None)
    if not cfg.get("manage_master_user_password"):
        cfg.setdefault("master_user_password", "restored-from-snapshot")  # AWS needs none on restore
    return cfg


SEED_KINDS = ("db-instance", "db-cluster")
SEED_MAX = 100_000  # per request
SEED_PREFIX_RE = re.compile(r"^[a-z](?!.*--)[a-z0-9-]{0,200}$")  # an RDS snapshot identifier's start


def seed_snapshots(account: str, region: str, kind: str, count: int, prefix: str, start: int = 0, kms_key_id: str | None = None) -> dict[str, Any]:
    """Control API ``POST /_snapferry/seed``: ``count`` manual snapshots, available at
    once, put straight into moto's store (no HTTP call, no lifecycle, no event: they
    stand for snapshots the account has held for long), named ``<prefix><number>``
    (``start`` .. ``start + count - 1``, zero-padded to 5 digits or more).

    Their parent is a DB instance (cluster) object ``<prefix>db`` (``<prefix>cluster``)
    that moto's store doesn't hold, so the account lists no new database and no engine
    backs it with data; MySQL 8.0 (Aurora MySQL 3), 20 GiB, untagged, unencrypted unless
    ``kms_key_id`` names a key of the account (checked as ``CreateDBInstance`` checks it).
    The account's manual snapshot quota applies: a seed past it is refused whole, as is
    one naming a snapshot that exists. Caller holds the moto lock."""
    from moto.rds.models import DBCluster, DBClusterSnapshot, DBInstance, DBSnapshot

    cluster = kind == "db-cluster"
    backend = rds_backend(account, region)
    store = snapshot_store(backend, cluster)
    width = max(5, len(str(start + count - 1)))
    ids = [f"{prefix}{i:0{width}d}" for i in range(start, start + count)]
    taken = [i for i in ids if i in store]
    if taken:
        raise ControlError(f"snapshot {taken[0]} exists already ({len(taken)} of the {count} names are taken)")
    assert STATE is not None
    limit = STATE.quota("manual_cluster_snapshots" if cluster else "manual_db_snapshots", account)
    held = _manual_snapshots(backend, cluster)
    if held + count > limit:
        raise ControlError(
            f"the account holds {held} manual {kind} snapshots in {region} and its quota is {limit}: "
            f"{count} more would pass it (raise it with POST /_snapferry/config quotas)"
        )
    key = _validate_new_key(backend, kms_key_id) if kms_key_id else None
    if cluster:
        parent: Any = DBCluster(
            backend, db_cluster_identifier=f"{prefix}cluster", engine="aurora-mysql",
            engine_version="8.0.mysql_aurora.3.05.2", master_username="admin", master_user_password="seed-password-1",
            storage_encrypted=bool(key), kms_key_id=key,
        )
        parent.status = "available"
    else:
        parent = DBInstance(
            backend, db_instance_identifier=f"{prefix}db", db_instance_class="db.t4g.micro", engine="mysql",
            engine_version="8.0.39", allocated_storage=20, master_username="admin",
            storage_encrypted=bool(key), kms_key_id=key,
        )
    for ident in ids:
        if cluster:
            snap: Any = DBClusterSnapshot(backend, parent, ident, tags=[], kms_key_id=key)
        else:
            snap = DBSnapshot(backend, parent, ident, tags=[], kms_key_id=key)
        store[ident] = snap
    return {
        "account": account,
        "region": region,
        "kind": kind,
        "created": count,
        "first": ids[0] if ids else None,
        "last": ids[-1] if ids else None,
        "manual_snapshots": held + count,
    }


def create_automated_snapshot(account: str, region: str, db_instance_identifier: str | None, db_cluster_identifier: str | None) -> dict[str, Any]:
    """Control API: what AWS's backup window does (moto can't)."""
    backend = rds_backend(account, region)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d-%H-%M")
    if db_cluster_identifier:
        ident = f"rds:{db_cluster_identifier}-{stamp}"
        snap = backend.create_db_cluster_snapshot(db_cluster_identifier, ident, snapshot_type="automated")
        return {"snapshot_id": snap.db_cluster_snapshot_identifier, "db_cluster_snapshot_identifier": snap.db_cluster_snapshot_identifier, "arn": snap.arn, "status": snap.status}
    ident = f"rds:{db_instance_identifier}-{stamp}"
    snap = backend.create_db_snapshot(db_instance_identifier, ident, snapshot_type="automated")
    return {"snapshot_id": snap.db_snapshot_identifier, "db_snapshot_identifier": snap.db_snapshot_identifier, "arn": snap.arn, "status": snap.status}
