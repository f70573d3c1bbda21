"""EC2/EBS snapshots: sharing, copying across accounts, time, events.

Why each patch exists (the pinned moto's behaviour in brackets):

* ``DescribeSnapshots`` returns what the caller may see - its own snapshots
  plus those shared with it (``createVolumePermission``) or public - and
  honours ``OwnerIds`` / ``RestorableByUserIds`` [only own snapshots; both
  parameters ignored].
* ``CopySnapshot`` can copy a snapshot shared from another account, from
  another region, checks the source state, the copy quota and the KMS keys
  [fails for shared snapshots; no checks].
* ``ModifySnapshotAttribute`` understands the structured
  ``CreateVolumePermission.Add/Remove`` form (what the Rust SDK sends) besides
  ``OperationType`` + ``UserIds`` [structured form silently ignored]; it refuses sharing snapshots on the AWS-managed
  ``aws/ebs`` key, sharing encrypted snapshots publicly, and sharing a
  snapshot that is not ``completed``; a successful share emits the
  ``shareSnapshot`` event to each account it was shared with.
* ``DescribeSnapshots`` and ``DescribeVolumes`` honour ``MaxResults`` (5..1000
  / 5..500, larger values capped) and ``NextToken``, and refuse ``MaxResults``
  with ids, as EC2 does (details in ``paging``) [both ignored]; without
  ``MaxResults`` everything comes in one response, as on AWS.
* Snapshots from encrypted volumes carry the volume's key [no KmsKeyId].
* ``CreateVolume`` from a snapshot shared with the caller works (EBS's
  "restore"), and a volume from an own encrypted snapshot keeps its key
  [NotFound / default key].
* Create/copy start ``pending`` with ``Progress`` rising with the elapsed
  share of the delay and complete after it, emitting ``EBS Snapshot
  Notification`` events.
* ``CreateSnapshots`` (multi-volume, crash-consistent, EBS User Guide
  *ebs-creating-snapshot*): one snapshot per EBS volume of the instance, each
  with the same ``pending`` -> ``completed`` lifecycle as ``CreateSnapshot``,
  and ONE ``EBS Multi-Volume Snapshots Completion Status`` event when all of
  them have ended (*ebs-cloud-watch-events*, createSnapshots) instead of
  per-snapshot events; ``ExcludeDataVolumeIds`` and ``CopyTagsFromSource``
  honoured, ``state`` in the answer [moto: per-snapshot events, both
  parameters ignored, no ``state``].
* Archive tier (EBS User Guide *snapshot-archive*): ``ModifySnapshotTier``
  only for ``completed`` snapshots and it ends existing sharing; an archived
  snapshot can't be shared, copied or restored to a volume; a temporarily
  restored one reports ``StorageTier: standard`` [moto: archives any
  snapshot, the archive tier changes nothing else].
* EBS snapshot lock: ``LockSnapshot``, ``UnlockSnapshot``,
  ``DescribeLockedSnapshots``, and ``DeleteSnapshot`` refused while a lock
  has not expired [not implemented].  Lock states are computed from the
  lock's timestamps against ``LayerState.now()`` (real UTC plus the
  configurable ``clock_offset_seconds``) whenever they are read, so no ticker
  is needed and tests can jump past a cool-off or an expiry.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from . import kmsutil, paging
from .eventbus import emit_native
from .lifecycle import Lifecycle
from .state import LayerState

STATE: LayerState | None = None
LIFE: Lifecycle | None = None


def ec2_backend(account: str, region: str) -> Any:
    from moto.ec2.models import ec2_backends

    return ec2_backends[account][region]


def _err(code: str, message: str) -> Exception:
    from moto.ec2.exceptions import EC2ClientError

    return EC2ClientError(code, message)


def _not_found(snapshot_id: str) -> Exception:
    return _err("InvalidSnapshot.NotFound", f"The snapshot '{snapshot_id}' does not exist.")


def _iso(dt: datetime | None = None) -> str:
    dt = dt or datetime.now(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def snapshot_arn(region: str, snapshot_id: str) -> str:
    # The EBS event format names snapshots without the account: arn:aws:ec2::REGION:snapshot/ID
    return f"arn:aws:ec2::{region}:snapshot/{snapshot_id}"


def visible_to(snap: Any, account: str) -> bool:
    return snap.owner_id == account or account in snap.create_volume_permission_userids or "all" in snap.create_volume_permission_groups


def _all_snapshots(region: str) -> list[Any]:
    from moto.ec2.models import ec2_backends

    found = []
    for _account, regions in list(ec2_backends.items()):
        backend = regions.get(region) if hasattr(regions, "get") else None
        if backend is None:
            continue
        found.extend(list(backend.snapshots.values()))
    return found


def find_snapshot(account: str, region: str, snapshot_id: str) -> Any:
    own = ec2_backend(account, region).snapshots.get(snapshot_id)
    if own is not None:
        return own
    for snap in _all_snapshots(region):
        if snap.id == snapshot_id and visible_to(snap, account):
            return snap
    raise _not_found(snapshot_id)


def _emit(account: str, region: str, event: str, result: str, snapshot_id: str, source: str, start: str, cause: str = "") -> None:
    emit_native(
        account=account,
        region=region,
        source="aws.ec2",
        detail_type="EBS Snapshot Notification",
        resources=[snapshot_arn(region, snapshot_id)],
        detail={
            "event": event,
            "result": result,
            "cause": cause,
            "request-id": str(uuid.uuid4()),
            "snapshot_id": snapshot_arn(region, snapshot_id),
            "source": source,
            "startTime": start,
            "endTime": _iso(),
        },
        key=event,
    )


def _start_lifecycle(snap: Any, event: str, source: str, copy_of: Any = None, member_of: SnapshotSet | None = None) -> None:
    """Make ``snap`` pending and finish it after the delay.

    A snapshot on its own emits its ``event``; a member of a multi-volume set
    (``member_of``) reports to the set instead, which emits one event for all.
    """
    assert LIFE is not None
    backend = snap.ec2_backend
    account, region = backend.account_id, backend.region_name
    snap.status = "pending"
    snap._sf_progress = "0%"
    start = _iso(snap.start_time if isinstance(snap.start_time, datetime) else None)

    def complete(failed: bool) -> None:
        if backend.snapshots.get(snap.id) is not snap:
            if member_of is not None:
                member_of.ended(snap, "error")  # deleted while pending: the set still has to report
            return
        cause = "Injected failure" if failed else ""
        if copy_of is not None and not failed:
            src_backend = copy_of.ec2_backend
            if src_backend.snapshots.get(copy_of.id) is not copy_of:
                failed, cause = True, "Source snapshot was deleted before the copy completed"
        if failed:
            snap.status = "error"
            snap.__dict__.pop("_sf_lock", None)  # a pending snapshot's lock is canceled when creation fails
            if member_of is not None:
                member_of.ended(snap, "error")
            else:
                _emit(account, region, event, "failed", snap.id, source, start, cause)
            return
        snap.status = "completed"
        snap._sf_progress = "100%"
        lock = snap.__dict__.get("_sf_lock")
        if lock is not None and lock.started is None:
            lock.started = _clock()  # a pending snapshot's lock duration starts when it completes
        if member_of is not None:
            member_of.ended(snap, "completed")
        else:
            _emit(account, region, event, "succeeded", snap.id, source, start)

    def status_now() -> str:
        return snap.status if backend.snapshots.get(snap.id) is snap else "deleted"

    snap._sf_pending = LIFE.schedule(
        kind="ebs",
        account=account,
        region=region,
        complete=complete,
        copy_bucket="ebs_copies" if copy_of is not None else None,
        copy_labels={"kind": "ebs", "snapshot_id": snap.id, "arn": snapshot_arn(region, snap.id), "source_arn": source} if copy_of is not None else None,
        status_of=status_now,
    )


# ------------------------------------------------------ multi-volume sets
# EBS User Guide ebs-creating-snapshot (multi-volume snapshots),
# ebs-cloud-watch-events (createSnapshots); EC2 API CreateSnapshots,
# InstanceSpecification.

MULTI_VOLUME_DETAIL_TYPE = "EBS Multi-Volume Snapshots Completion Status"


class SnapshotSet:
    """The snapshots one CreateSnapshots call started; one event when all have ended."""

    def __init__(self, account: str, region: str, members: list[Any]) -> None:
        self.account, self.region = account, region
        self.members = members
        self.start = _iso(members[0].start_time if members and isinstance(members[0].start_time, datetime) else None)
        self.status: dict[str, str] = {}

    def ended(self, snap: Any, status: str) -> None:
        self.status[snap.id] = status
        if len(self.status) == len(self.members):
            self._report()

    def _report(self) -> None:
        failed = [s.id for s in self.members if self.status[s.id] != "completed"]
        arns = [snapshot_arn(self.region, s.id) for s in self.members]
        emit_native(
            account=self.account,
            region=self.region,
            source="aws.ec2",
            detail_type=MULTI_VOLUME_DETAIL_TYPE,
            resources=arns,
            detail={
                "event": "createSnapshots",
                "result": "failed" if failed else "succeeded",
                # wording of the failed example in ebs-cloud-watch-events
                "cause": f"Snapshot {failed[0]} is in status error" if failed else "",
                "request-id": str(uuid.uuid4()),
                "startTime": self.start,
                "endTime": _iso(),
                "snapshots": [
                    {"snapshot_id": arn, "source": f"arn:aws:ec2::{self.region}:volume/{s.volume.id}", "status": self.status[s.id]}
                    for arn, s in zip(arns, self.members)
                ],
            },
            key="createSnapshots",
        )


def _true(value: Any) -> bool:
    return str(value).lower() == "true"


def volumes_to_snapshot(backend: Any, spec: dict[str, Any]) -> list[Any]:
    """The instance's EBS volumes that CreateSnapshots covers, in device order."""
    instance_id = spec.get("InstanceId")
    if not instance_id:
        raise _err("MissingParameter", "The request must contain the parameter InstanceSpecification.InstanceId")
    instance = backend.get_instance(instance_id)  # InvalidInstanceID.NotFound
    excluded = set(spec.get("ExcludeDataVolumeIds") or [])
    volumes = []
    for device, mapping in instance.get_block_device_mapping:
        is_root = device == instance.root_device_name
        if is_root and mapping.volume_id in excluded:
            # InstanceSpecification: "If you specify the ID of the root volume, the
            # request fails." AWS names no code; InvalidParameterValue is EC2's code
            # for a parameter value it won't take (errors-overview).
            raise _err("InvalidParameterValue", f"The volume {mapping.volume_id} is the root volume of {instance_id}; use ExcludeBootVolume to exclude it.")
        if (is_root and _true(spec.get("ExcludeBootVolume"))) or mapping.volume_id in excluded:
            continue
        volumes.append(backend.get_volume(mapping.volume_id))
    return volumes


def user_tags(resource: Any) -> dict[str, str]:
    # The aws: prefix is reserved for AWS's own tags, which are not copied (EC2 User Guide Using_Tags).
    return {t["key"]: t["value"] for t in resource.get_tags() if not t["key"].startswith("aws:")}


# ------------------------------------------------------------ archive tier
# EBS User Guide snapshot-archive (considerations and limitations),
# working-with-snapshot-archiving; EC2 API ModifySnapshotTier.

def temporarily_restored(snap: Any) -> bool:
    from moto.core.utils import utcnow

    expiry = getattr(snap, "restore_expiry_time", None)
    return expiry is not None and utcnow() < expiry


def check_not_archived(snap: Any, doing: str) -> None:
    """Archived snapshots can't be shared, copied or used for volumes until restored."""
    if snap.storage_tier == "archive":
        # AWS documents the restriction (snapshot-archive: "You can't share archived
        # snapshots", "You can't copy an archived snapshot"; restore before use) but
        # no error code for it; IncorrectState is EC2's documented code for a
        # resource in the wrong state for the request (errors-overview).
        raise _err("IncorrectState", f"The snapshot '{snap.id}' is in the archive tier and can't be {doing}. Restore it to the standard tier first (RestoreSnapshotTier).")


# ------------------------------------------------------------ snapshot lock
# EBS User Guide ebs-snapshot-lock, snapshot-lock-concepts,
# snapshot-lock-considerations; EC2 API LockSnapshot, UnlockSnapshot,
# DescribeLockedSnapshots, LockedSnapshotsInfo.

# The code DeleteSnapshot answers for a locked snapshot.  EC2's API model
# declares no error shapes and no AWS page found states it; kept in one place
# so it can be corrected (see emulator/README.md).
LOCKED_DELETE_CODE = "SnapshotLocked"
LOCK_MODES = ("governance", "compliance")


def _clock() -> datetime:
    assert STATE is not None
    now = STATE.now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)  # AWS reports milliseconds


def _utc(dt: datetime) -> datetime:
    # moto's request parser hands timestamps over as naive UTC datetimes
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


@dataclass
class SnapshotLock:
    mode: str
    created_on: datetime
    duration_days: int | None  # LockDuration, or None when locked until ExpirationDate
    expiration: datetime | None  # ExpirationDate
    started: datetime | None  # lock duration start; None while the snapshot is pending
    cool_off_hours: int | None = None
    cool_off_start: datetime | None = None

    def expires_on(self) -> datetime | None:
        if self.expiration is not None:
            return self.expiration
        if self.started is None or self.duration_days is None:
            return None
        return self.started + timedelta(days=self.duration_days)

    def cool_off_expires_on(self) -> datetime | None:
        if self.cool_off_hours is None or self.cool_off_start is None:
            return None
        return self.cool_off_start + timedelta(hours=self.cool_off_hours)

    def state(self, now: datetime) -> str:
        expires = self.expires_on()
        if expires is not None and now >= expires:
            return "expired"
        if self.mode == "governance":
            return "governance"
        cool_off = self.cool_off_expires_on()
        return "compliance-cooloff" if cool_off is not None and now < cool_off else "compliance"

    def describe(self, snap: Any, now: datetime) -> dict[str, Any]:
        # Fields AWS leaves out are left out: LockDuration when locked until a
        # date, the start/expiry while a duration lock waits for a pending
        # snapshot, the cool-off when there is none.
        info: dict[str, Any] = {"SnapshotId": snap.id, "LockState": self.state(now), "LockCreatedOn": self.created_on}
        if self.duration_days is not None:
            info["LockDuration"] = self.duration_days
        if self.cool_off_hours is not None:
            info["CoolOffPeriod"] = self.cool_off_hours
            info["CoolOffPeriodExpiresOn"] = self.cool_off_expires_on()
        if self.started is not None:
            info["LockDurationStartTime"] = self.started
        if self.expires_on() is not None:
            info["LockExpiresOn"] = self.expires_on()
        return info


def _lock_of(snap: Any) -> SnapshotLock | None:
    return snap.__dict__.get("_sf_lock")


def _bad_value(name: str, value: Any, allowed: str) -> Exception:
    return _err("InvalidParameterValue", f"Value ({value}) for parameter {name} is invalid. {allowed}")


def lock_snapshot(backend: Any, snapshot_id: str, mode: Any, duration: Any, expiration: Any, cool_off: Any) -> dict[str, Any]:
    if not snapshot_id:
        raise _err("MissingParameter", "The request must contain the parameter SnapshotId")
    if not mode:
        raise _err("MissingParameter", "The request must contain the parameter LockMode")
    if mode not in LOCK_MODES:
        raise _bad_value("LockMode", mode, "Valid values are: governance, compliance.")
    if duration is not None and expiration is not None:
        raise _err("InvalidParameterCombination", "Specify either LockDuration or ExpirationDate, but not both.")
    if duration is None and expiration is None:
        raise _err("MissingParameter", "The request must contain either the parameter LockDuration or ExpirationDate")
    if duration is not None and not 1 <= int(duration) <= 36500:
        raise _bad_value("LockDuration", duration, "The lock duration must be between 1 and 36500 days.")
    if cool_off is not None and mode != "compliance":
        raise _err("InvalidParameterCombination", "CoolOffPeriod can be specified only with LockMode compliance.")
    if cool_off is not None and not 1 <= int(cool_off) <= 72:
        raise _bad_value("CoolOffPeriod", cool_off, "The cooling-off period must be between 1 and 72 hours.")
    days = int(duration) if duration is not None else None
    now = _clock()
    if expiration is not None:
        expiration = _utc(expiration)
        if expiration <= now:
            raise _bad_value("ExpirationDate", _iso(expiration), "The expiration date must be in the future.")
        if expiration > now + timedelta(days=36500):
            raise _bad_value("ExpirationDate", _iso(expiration), "The lock can't be longer than 36500 days.")
    snap = backend.get_snapshot(snapshot_id)  # own snapshots only: only the owner can lock
    if snap.status not in ("pending", "completed"):
        raise _err("IncorrectState", f"Snapshot '{snapshot_id}' is in state {snap.status}; only pending or completed snapshots can be locked.")
    old = _lock_of(snap)
    old_state = old.state(now) if old is not None else None
    if old is None or old_state == "expired":
        started = now if snap.status == "completed" else None
        new = SnapshotLock(mode, now, days, expiration, started)
    else:
        # Modifying an existing lock keeps when it was created and when its duration started.
        new = SnapshotLock(mode, old.created_on, days, expiration, old.started, old.cool_off_hours, old.cool_off_start)
        if old_state == "compliance":
            _check_compliance_change(snapshot_id, old, new, cool_off)
    if mode == "compliance" and cool_off is not None:
        if old_state != "compliance-cooloff":
            new.cool_off_start = now  # the cool-off runs from when compliance mode was chosen
        new.cool_off_hours = int(cool_off)
    elif old_state != "compliance":
        new.cool_off_hours = new.cool_off_start = None  # governance, or compliance without cool-off: none
    snap._sf_lock = new
    return new.describe(snap, now)


def _check_compliance_change(snapshot_id: str, old: SnapshotLock, new: SnapshotLock, cool_off: Any) -> None:
    # After the cool-off, a compliance lock can only be extended (snapshot-lock-concepts).
    if new.mode != "compliance":
        raise _err("IncorrectState", f"Snapshot '{snapshot_id}' is locked in compliance mode and its cooling-off period has expired; the lock mode can't be changed.")
    if cool_off is not None:
        raise _err("IncorrectState", f"Snapshot '{snapshot_id}' is locked in compliance mode and its cooling-off period has expired; omit CoolOffPeriod.")
    old_end, new_end = old.expires_on(), new.expires_on()
    if old_end is not None and new_end is not None:
        shorter = new_end < old_end
    else:  # a pending snapshot's duration lock has no end date yet: compare the durations
        shorter = old.duration_days is not None and new.duration_days is not None and new.duration_days < old.duration_days
    if shorter:
        raise _err("IncorrectState", f"Snapshot '{snapshot_id}' is locked in compliance mode and its cooling-off period has expired; the lock can only be extended.")


def unlock_snapshot(backend: Any, snapshot_id: str) -> None:
    if not snapshot_id:
        raise _err("MissingParameter", "The request must contain the parameter SnapshotId")
    snap = backend.get_snapshot(snapshot_id)
    lock = _lock_of(snap)
    if lock is None:
        raise _err("IncorrectState", f"Snapshot '{snapshot_id}' is not locked.")
    if lock.state(_clock()) == "compliance":
        raise _err("IncorrectState", f"Snapshot '{snapshot_id}' is locked in compliance mode and its cooling-off period has expired; it can't be unlocked.")
    del snap._sf_lock


def describe_locked_snapshots(backend: Any, snapshot_ids: list[str], filters: dict[str, Any]) -> list[dict[str, Any]]:
    unknown = set(filters) - {"lock-state"}
    if unknown:
        raise _err("InvalidParameterValue", f"The filter '{sorted(unknown)[0]}' is invalid.")
    for snapshot_id in snapshot_ids:
        backend.get_snapshot(snapshot_id)  # InvalidSnapshot.NotFound, as DescribeSnapshots
    now = _clock()
    found = []
    for snap in sorted(backend.snapshots.values(), key=lambda s: s.id):
        lock = _lock_of(snap)
        if lock is None or (snapshot_ids and snap.id not in snapshot_ids):
            continue
        info = {"OwnerId": snap.owner_id, **lock.describe(snap, now)}
        if "lock-state" in filters and info["LockState"] not in filters["lock-state"]:
            continue
        found.append(info)
    return found


def check_deletable(snap: Any) -> None:
    lock = _lock_of(snap)
    if lock is not None and lock.state(_clock()) != "expired":
        raise _err(LOCKED_DELETE_CODE, f"The snapshot '{snap.id}' is locked and can't be deleted until the lock expires or it is unlocked.")


def install(state: LayerState, life: Lifecycle) -> None:
    global STATE, LIFE
    STATE, LIFE = state, life
    from moto.ec2.models.elastic_block_store import EBSBackend

    if getattr(EBSBackend, "_snapferry", False):
        return
    EBSBackend._snapferry = True
    _patch_progress()
    _patch_storage_tier()
    _patch_default_key()
    _patch_snapshot_creation()
    _patch_create_snapshots_response()
    _patch_modify_snapshot_tier()
    _patch_copy_snapshot()
    _patch_copy_snapshot_response()
    _patch_describe_snapshots()
    _patch_describe_snapshots_response()
    _patch_create_volume()
    _patch_sharing()
    _patch_modify_snapshot_attribute_response()
    _patch_delete_snapshot()
    _add_lock_operations()


def _patch_progress() -> None:
    # Progress of a pending snapshot or copy: the elapsed share of its delay
    # ("0%".."99%"), "100%" once completed, so a reader can estimate when it
    # ends (and a copy slot frees).
    from moto.ec2.models.elastic_block_store import Snapshot

    def _get_progress(self: Any) -> str:
        pending = self.__dict__.get("_sf_pending")
        if pending is not None and self.status == "pending":
            return f"{pending.percent()}%"
        return self.__dict__.get("_sf_progress", "100%")

    Snapshot.progress = property(_get_progress)


def _patch_storage_tier() -> None:
    # A temporarily restored snapshot is in the standard tier until its restore
    # expires (working-with-snapshot-archiving: StorageTier is "standard for
    # snapshots stored on the standard tier, including temporarily restored
    # snapshots"); moto leaves it "archive".  Every reader (DescribeSnapshots,
    # the storage-tier filter, the archive checks) goes through this property.
    from moto.ec2.models.elastic_block_store import Snapshot

    def _get_tier(self: Any) -> str:
        tier = self.__dict__.get("_sf_tier", "standard")
        return "standard" if tier == "archive" and temporarily_restored(self) else tier

    def _set_tier(self: Any, value: str) -> None:
        self.__dict__["_sf_tier"] = value

    Snapshot.storage_tier = property(_get_tier, _set_tier)


def _patch_default_key() -> None:
    # The account's aws/ebs key must say KeyManager: AWS.
    from moto.ec2.models.elastic_block_store import EBSBackend

    def _create_default_encryption_key(self: Any) -> str:
        key = kmsutil.aws_managed_key(self.account_id, self.region_name, "alias/aws/ebs")
        self.default_kms_key_id = key.arn
        return key.arn

    EBSBackend._create_default_encryption_key = _create_default_encryption_key


def _patch_snapshot_creation() -> None:
    # CreateSnapshot and CreateSnapshots in one place: both need moto's own
    # create_snapshot, taken here before it is replaced.
    from moto.ec2.models.elastic_block_store import EBSBackend

    orig_create = EBSBackend.create_snapshot

    def create_snapshot(self: Any, volume_id: str, description: str, owner_id: Any = None, from_ami: Any = None) -> Any:
        snap = orig_create(self, volume_id, description, owner_id, from_ami)
        if snap.volume.encrypted and not snap.kms_key_id:
            snap.kms_key_id = snap.volume.kms_key_id
        if from_ami is None:
            _start_lifecycle(snap, "createSnapshot", f"arn:aws:ec2::{self.region_name}:volume/{volume_id}")
        return snap

    EBSBackend.create_snapshot = create_snapshot

    def create_snapshots(self: Any, instance_spec: dict[str, Any], description: str, tags: dict[str, str], copy_tags_from_source: Any = None) -> list[Any]:
        volumes = volumes_to_snapshot(self, instance_spec)
        if copy_tags_from_source not in (None, "", "volume"):
            raise _bad_value("CopyTagsFromSource", copy_tags_from_source, "Valid values are: volume.")
        snaps = []
        for volume in volumes:
            snap = orig_create(self, volume.id, description)  # moto's, not the patched one: members report to the set
            if volume.encrypted and not snap.kms_key_id:
                snap.kms_key_id = volume.kms_key_id
            # Copied volume tags first, so TagSpecification wins on the same key.
            if copy_tags_from_source == "volume":
                snap.add_tags(user_tags(volume))
            snap.add_tags(tags)
            snaps.append(snap)
        if snaps:  # an instance with no volume left to snapshot has nothing to report
            group = SnapshotSet(self.account_id, self.region_name, snaps)
            for snap in snaps:
                _start_lifecycle(snap, "createSnapshots", f"arn:aws:ec2::{self.region_name}:volume/{snap.volume.id}", member_of=group)
        return snaps

    EBSBackend.create_snapshots = create_snapshots


def _patch_create_snapshots_response() -> None:
    from moto.ec2.responses.elastic_block_store import ElasticBlockStore

    def resp_create_snapshots(self: Any) -> Any:
        from moto.core.responses import ActionResult

        tags = self._parse_tag_specification().get("snapshot", {})
        self.error_on_dryrun()
        snaps = self.ec2_backend.create_snapshots(
            self._get_param("InstanceSpecification", {}),
            self._get_param("Description", ""),
            tags,
            self._get_param("CopyTagsFromSource"),
        )
        # SnapshotInfo (EC2 API CreateSnapshots); moto's Snapshot has no "state"
        # attribute for the serializer to find, so the items are spelled out.
        return ActionResult(
            {
                "Snapshots": [
                    {
                        "SnapshotId": s.id,
                        "VolumeId": s.volume.id,
                        "State": s.status,
                        "StartTime": s.start_time,
                        "Progress": s.progress,
                        "OwnerId": s.owner_id,
                        "VolumeSize": s.volume.size,
                        "Encrypted": s.encrypted,
                        "Description": s.description,
                        "Tags": s.tag_set,
                    }
                    for s in snaps
                ]
            }
        )

    ElasticBlockStore.create_snapshots = resp_create_snapshots


def _patch_modify_snapshot_tier() -> None:
    from moto.ec2.models.elastic_block_store import EBSBackend

    orig_modify_tier = EBSBackend.modify_snapshot_tier

    def modify_snapshot_tier(self: Any, snapshot_id: str, storage_tier: str) -> Any:
        snap = self.get_snapshot(snapshot_id)  # own snapshots only (a shared one: InvalidSnapshot.NotFound)
        if snap.status != "completed":
            # snapshot-archive: "You can archive snapshots that are in the completed state only."
            raise _err("IncorrectState", f"Snapshot '{snapshot_id}' is in state {snap.status}; only completed snapshots can be archived.")
        snap = orig_modify_tier(self, snapshot_id, storage_tier)
        # snapshot-archive: "If you archive a snapshot that you have shared with other
        # accounts, the accounts with which the snapshot is shared lose access".
        snap.create_volume_permission_userids.clear()
        snap.create_volume_permission_groups.clear()
        return snap

    EBSBackend.modify_snapshot_tier = modify_snapshot_tier


def _patch_copy_snapshot() -> None:
    from moto.ec2.models.elastic_block_store import EBSBackend, Snapshot
    from moto.ec2.utils import random_snapshot_id

    def copy_snapshot(self: Any, source_snapshot_id: str, source_region: str, description: str, kms_key_id: Any, encrypted: bool = False) -> Any:
        source_region = source_region or self.region_name
        source = find_snapshot(self.account_id, source_region, source_snapshot_id)
        if source.status != "completed":
            raise _err("IncorrectState", f"Snapshot '{source_snapshot_id}' is in an invalid state: {source.status}. Only completed snapshots can be copied.")
        check_not_archived(source, "copied")
        assert STATE is not None
        limit = STATE.quota("ebs_copies", self.account_id)
        if STATE.copies_in_progress("ebs_copies", self.account_id, self.region_name) >= limit:
            raise _err("ResourceLimitExceeded", f"Too many snapshot copies in progress. The limit is {limit} for this destination region.")
        if source.encrypted:
            src_key = kmsutil.resolve_key(source.owner_id, source_region, source.kms_key_id)
            if src_key is not None and not kmsutil.key_usable(src_key):
                raise _err("KMS.DisabledException", f"The KMS key {src_key.arn} of the source snapshot is disabled.")
            if src_key is not None and not kmsutil.usable_by(src_key, self.account_id):
                raise _err("KMS.NotFoundException", f"The KMS key {src_key.arn} of the source snapshot is not accessible to account {self.account_id}.")
        new_key = None
        if kms_key_id:
            key = kmsutil.resolve_key(self.account_id, self.region_name, kms_key_id)
            if key is None or key.region != self.region_name:
                raise _err("KMS.NotFoundException", f"Key '{kms_key_id}' does not exist in region {self.region_name}.")
            if not kmsutil.key_usable(key):
                raise _err("KMS.DisabledException", f"The KMS key {key.arn} is disabled.")
            if not kmsutil.usable_by(key, self.account_id):
                raise _err("KMS.NotFoundException", f"The KMS key {key.arn} is not accessible to account {self.account_id}.")
            new_key = key.arn
        elif source.encrypted or encrypted:
            if source.owner_id == self.account_id and source_region == self.region_name:
                new_key = source.kms_key_id
            else:  # AWS uses the destination account's default EBS key
                new_key = self._create_default_encryption_key()
        snap = Snapshot(self, random_snapshot_id(), volume=source.volume, description=description, encrypted=bool(new_key), kms_key_id=new_key)
        self.snapshots[snap.id] = snap
        _start_lifecycle(snap, "copySnapshot", snapshot_arn(source_region, source.id), copy_of=source)
        return snap

    EBSBackend.copy_snapshot = copy_snapshot


def _patch_copy_snapshot_response() -> None:
    from moto.ec2.responses.elastic_block_store import ElasticBlockStore

    def resp_copy_snapshot(self: Any) -> Any:
        from moto.core.responses import ActionResult

        tags = self._parse_tag_specification().get("snapshot", {})
        self.error_on_dryrun()
        snap = self.ec2_backend.copy_snapshot(
            source_snapshot_id=self._get_param("SourceSnapshotId"),
            source_region=self._get_param("SourceRegion"),
            description=self._get_param("Description"),
            kms_key_id=self._get_param("KmsKeyId"),
            encrypted=str(self._get_param("Encrypted")).lower() == "true",
        )
        snap.add_tags(tags)
        return ActionResult({"SnapshotId": snap.id, "Tags": snap.tag_set})

    ElasticBlockStore.copy_snapshot = resp_copy_snapshot


def _patch_describe_snapshots() -> None:
    from moto.ec2.models.elastic_block_store import EBSBackend
    from moto.ec2.utils import generic_filter

    def describe_snapshots(self: Any, snapshot_ids: Any = None, filters: Any = None, owner_ids: Any = None, restorable_by: Any = None) -> list[Any]:
        me = self.account_id
        candidates = [s for s in _all_snapshots(self.region_name) if visible_to(s, me)]
        if snapshot_ids:
            matches = [s for s in candidates if s.id in snapshot_ids]
            missing = [i for i in snapshot_ids if i not in {s.id for s in matches}]
            if missing:
                raise _not_found(missing[0])
            candidates = matches
        if owner_ids:
            owners = {me if o == "self" else o for o in owner_ids}
            candidates = [s for s in candidates if s.owner_id in owners]
        if restorable_by:
            users = {me if u == "self" else u for u in restorable_by}
            candidates = [
                s
                for s in candidates
                if s.owner_id in users or users & s.create_volume_permission_userids or "all" in s.create_volume_permission_groups
            ]
        if filters:
            candidates = generic_filter(filters, candidates)
        return candidates

    EBSBackend.describe_snapshots = describe_snapshots


def _patch_describe_snapshots_response() -> None:
    from moto.ec2.responses.elastic_block_store import ElasticBlockStore

    def resp_describe_snapshots(self: Any) -> Any:
        from moto.core.responses import ActionResult

        snapshot_ids = self._get_param("SnapshotIds", [])
        max_results, next_token = self._get_param("MaxResults"), self._get_param("NextToken")
        paging.ec2_paging_params("DescribeSnapshots", max_results, next_token, snapshot_ids, "snapshotSet")  # refusals before the lookup
        snaps = self.ec2_backend.describe_snapshots(
            snapshot_ids=snapshot_ids,
            filters=self._filters_from_querystring(),
            owner_ids=self._get_param("OwnerIds", []),
            restorable_by=self._get_param("RestorableByUserIds", []),
        )
        snaps, token = paging.ec2_page("DescribeSnapshots", snaps, max_results, next_token, snapshot_ids, "snapshotSet")
        return ActionResult({"Snapshots": snaps, "NextToken": token})

    # DescribeVolumes: moto's lookup, paged by MaxResults/NextToken as AWS pages (see ``paging``).
    def resp_describe_volumes(self: Any) -> Any:
        from moto.core.responses import ActionResult

        volume_ids = self._get_param("VolumeIds", [])
        max_results, next_token = self._get_param("MaxResults"), self._get_param("NextToken")
        paging.ec2_paging_params("DescribeVolumes", max_results, next_token, volume_ids, "volumeSet")
        volumes = self.ec2_backend.describe_volumes(volume_ids=volume_ids, filters=self._filters_from_querystring())
        volumes, token = paging.ec2_page("DescribeVolumes", volumes, max_results, next_token, volume_ids, "volumeSet")
        return ActionResult({"Volumes": volumes, "NextToken": token})

    ElasticBlockStore.describe_snapshots = resp_describe_snapshots
    ElasticBlockStore.describe_volumes = resp_describe_volumes


def _patch_create_volume() -> None:
    from moto.ec2.models.elastic_block_store import EBSBackend

    orig_create_volume = EBSBackend.create_volume

    def create_volume(self: Any, size: Any, zone_name: str, snapshot_id: Any = None, encrypted: bool = False, kms_key_id: Any = None, **kwargs: Any) -> Any:
        if not snapshot_id:
            return orig_create_volume(self, size, zone_name, None, encrypted, kms_key_id, **kwargs)
        snap = find_snapshot(self.account_id, self.region_name, snapshot_id)  # own, or shared with the caller
        if snap.status != "completed":
            raise _err("IncorrectState", f"Snapshot '{snapshot_id}' is not completed (it is {snap.status}).")
        check_not_archived(snap, "used to create a volume")
        if snap.encrypted:
            src_key = kmsutil.resolve_key(snap.owner_id, self.region_name, snap.kms_key_id)
            if src_key is not None and not kmsutil.usable_by(src_key, self.account_id):
                raise _err("KMS.DisabledException" if not kmsutil.key_usable(src_key) else "KMS.NotFoundException", f"The KMS key {src_key.arn} of the snapshot is not usable.")
            encrypted = True
            if not kms_key_id and snap.owner_id == self.account_id:
                kms_key_id = snap.kms_key_id  # a volume keeps its own snapshot's key by default
        volume = orig_create_volume(self, size or snap.volume.size, zone_name, None, encrypted, kms_key_id, **kwargs)
        volume.snapshot_id = snapshot_id
        return volume

    EBSBackend.create_volume = create_volume


def _patch_sharing() -> None:
    from moto.ec2.models.elastic_block_store import EBSBackend

    orig_add = EBSBackend.add_create_volume_permission

    def add_create_volume_permission(self: Any, snapshot_id: str, user_ids: Any, groups: Any) -> None:
        snap = self.get_snapshot(snapshot_id)
        user_ids = list(user_ids or [])
        groups = list(groups or [])
        if user_ids or groups:
            if snap.status != "completed":
                raise _err("IncorrectState", f"Snapshot '{snapshot_id}' is not completed (it is {snap.status}) and can't be shared yet.")
            check_not_archived(snap, "shared")
            if snap.encrypted and groups:
                raise _err("InvalidParameter", "Encrypted snapshots can't be made public. Specify another snapshot.")
            if snap.encrypted and kmsutil.is_aws_managed(kmsutil.resolve_key(self.account_id, self.region_name, snap.kms_key_id)):
                raise _err("InvalidParameter", "Snapshots encrypted with the AWS Managed CMK can't be shared. Specify another snapshot.")
        before = set(snap.create_volume_permission_userids)
        orig_add(self, snapshot_id, user_ids, groups)
        start = _iso()
        for account in user_ids:
            if account not in before and account != self.account_id:
                _emit(account, self.region_name, "shareSnapshot", "succeeded", snap.id, self.account_id, start)

    EBSBackend.add_create_volume_permission = add_create_volume_permission


def _patch_modify_snapshot_attribute_response() -> None:
    # The structured form (CreateVolumePermission.Add.N.UserId), which the Rust
    # SDK's builder sends, is ignored by moto (it reads only UserIds/GroupNames).
    from moto.core.responses import EmptyResult
    from moto.ec2.responses.elastic_block_store import ElasticBlockStore

    def resp_modify_snapshot_attribute(self: Any) -> Any:
        snapshot_id = self._get_param("SnapshotId")
        self.error_on_dryrun()
        operation = self._get_param("OperationType")
        users, groups = self._get_param("UserIds", []), self._get_param("GroupNames", [])
        changes = {"add": ([], []), "remove": ([], [])}
        if operation in changes:
            changes[operation][0].extend(users)
            changes[operation][1].extend(groups)
        structured = self._get_param("CreateVolumePermission") or {}
        for op, key in (("add", "Add"), ("remove", "Remove")):
            for perm in structured.get(key) or []:
                if perm.get("UserId"):
                    changes[op][0].append(perm["UserId"])
                if perm.get("Group"):
                    changes[op][1].append(perm["Group"])
        if changes["add"][0] or changes["add"][1]:
            self.ec2_backend.add_create_volume_permission(snapshot_id, user_ids=changes["add"][0], groups=changes["add"][1])
        if changes["remove"][0] or changes["remove"][1]:
            self.ec2_backend.remove_create_volume_permission(snapshot_id, user_ids=changes["remove"][0], groups=changes["remove"][1])
        return EmptyResult()

    ElasticBlockStore.modify_snapshot_attribute = resp_modify_snapshot_attribute


def _patch_delete_snapshot() -> None:
    from moto.ec2.models.elastic_block_store import EBSBackend

    orig_delete = EBSBackend.delete_snapshot

    def delete_snapshot(self: Any, snapshot_id: str) -> Any:
        snap = self.snapshots.get(snapshot_id)
        if snap is not None:
            check_deletable(snap)
        return orig_delete(self, snapshot_id)

    EBSBackend.delete_snapshot = delete_snapshot


def _add_lock_operations() -> None:
    # Snapshot lock operations, which moto lacks.  They are ordinary EC2
    # actions, so the request log, fault injection and IAM apply as to others.
    from moto.core.responses import ActionResult
    from moto.ec2.responses.elastic_block_store import ElasticBlockStore

    def resp_lock_snapshot(self: Any) -> Any:
        self.error_on_dryrun()
        return ActionResult(
            lock_snapshot(
                self.ec2_backend,
                self._get_param("SnapshotId"),
                self._get_param("LockMode"),
                self._get_param("LockDuration"),
                self._get_param("ExpirationDate"),
                self._get_param("CoolOffPeriod"),
            )
        )

    def resp_unlock_snapshot(self: Any) -> Any:
        snapshot_id = self._get_param("SnapshotId")
        self.error_on_dryrun()
        unlock_snapshot(self.ec2_backend, snapshot_id)
        return ActionResult({"SnapshotId": snapshot_id})

    def resp_describe_locked_snapshots(self: Any) -> Any:
        self.error_on_dryrun()
        found = describe_locked_snapshots(self.ec2_backend, self._get_param("SnapshotIds", []), self._filters_from_querystring())
        max_results = self._get_param("MaxResults")
        token = self._get_param("NextToken") or "0"
        if not token.isdigit():
            raise _err("InvalidPaginationToken", f"The pagination token '{token}' is invalid.")
        start = int(token)
        if max_results is None:
            return ActionResult({"Snapshots": found[start:]})
        page = found[start : start + int(max_results)]
        more = start + int(max_results) < len(found)
        return ActionResult({"Snapshots": page, "NextToken": str(start + int(max_results)) if more else None})

    ElasticBlockStore.lock_snapshot = resp_lock_snapshot
    ElasticBlockStore.unlock_snapshot = resp_unlock_snapshot
    ElasticBlockStore.describe_locked_snapshots = resp_describe_locked_snapshots
