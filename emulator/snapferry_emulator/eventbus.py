"""EventBridge: native AWS events and fixes to moto's event delivery.

Why:

* moto emits no ``aws.rds`` / ``aws.ec2`` events.  ``emit_native`` builds the
  real envelope (version, id, detail-type, source, account, time, region,
  resources, detail) and routes it through moto's rules on the owning
  account's *default* bus, so existing rules deliver it to their SQS targets.
  Fault injection may drop it; every emitted or dropped event is recorded for
  ``GET /_snapferry/events``.
* moto's default target input template leaves out ``account``: patched in.
* moto forwards events to another account's bus as a *new* event (new id,
  ``account`` = receiving account, no resources) and ignores that bus's
  resource policy.  ``Rule.send_to_targets`` is patched so the envelope is
  kept and the receiving bus's policy (PutPermission / Policy) must admit the
  forwarding account; otherwise the event is dropped and logged.  Targets in
  another account (e.g. an SQS queue) are delivered in that account, and a
  target moto can't handle (e.g. Lambda) is skipped with a warning instead of
  failing the whole PutEvents / native event.
* ``PutEvents`` with ``EventBusName`` = another account's bus ARN fails in
  moto.  It is routed to that bus when its policy admits the caller, else the
  call fails with ``AccessDeniedException`` (as AWS does).
* Drop rules (``POST /_snapferry/drop-events``) apply to ``PutEvents`` entries
  too (local bus and another account's bus by ARN), so tests can lose a
  pipeline event (e.g. "Snapshot Shared") the way EventBridge delivery is
  best effort.  A valid entry whose ``DetailType`` matches a rule, the rule's
  ``account`` being the *calling* account and its ``event_id`` absent or equal
  to the entry's ``Source``, is accepted as AWS would accept it (an
  ``EventId``, ``FailedEntryCount`` unchanged) but delivered nowhere, and is
  recorded in the event log with ``dropped: true`` (``event_id_or_name`` = the
  ``Source``, plus ``event_bus`` = the bus ARN).  Delivered entries are not
  recorded (the log stays the list of native events).  [moto: no such hook]
* ``PutPermission`` with ``Policy`` replaces the bus's whole resource policy
  [moto merges the statements into the existing ones]; ``RemovePermission``
  of an unknown ``StatementId`` on a bus without a policy answers AWS's
  ``ResourceNotFoundException`` "Statement with the provided id does not
  exist." [moto: "EventBus does not have a policy."].  Both as recorded
  against AWS in localstack's ``tests/aws/services/events/test_events.snapshot.json``
  (``test_put_permission``, ``test_remove_permission_non_existing_sid``);
  EventBridge API *API_PutPermission*, *API_RemovePermission*.
"""

from __future__ import annotations

import copy
import json
import logging
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from .state import LayerState

STATE: LayerState | None = None  # set by install()
LOG = logging.getLogger("snapferry_emulator")


def iso_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def events_backend(account: str, region: str) -> Any:
    from moto.events.models import events_backends

    return events_backends[account][region]


def route(bus: Any, event_msg: dict[str, Any]) -> None:
    """Deliver an envelope to every enabled rule of ``bus`` (moto's own matching)."""
    for rule in list(bus.rules.values()):
        if getattr(rule, "state", "ENABLED") not in ("ENABLED", None):
            continue
        rule.send_to_targets(copy.deepcopy(event_msg))


def emit_native(
    *,
    account: str,
    region: str,
    source: str,
    detail_type: str,
    resources: list[str],
    detail: dict[str, Any],
    key: str,
) -> dict[str, Any]:
    """Put a native AWS event on ``account``'s default bus in ``region``.

    ``key`` is the RDS EventID or the EBS event name, used by drop rules.
    """
    assert STATE is not None
    envelope = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": iso_now(),
        "region": region,
        "resources": resources,
        "detail": detail,
    }
    dropped = STATE.take_drop(detail_type, key, account)
    STATE.record_event(
        {
            "account": account,
            "region": region,
            "detail_type": detail_type,
            "event_id_or_name": key,
            "dropped": dropped,
            "event": copy.deepcopy(envelope),
        }
    )
    if not dropped:
        bus = events_backend(account, region).describe_event_bus("default")
        msg = dict(envelope)
        msg["time"] = time.time()  # moto's targets expect epoch seconds and format it
        msg["ingestion-time"] = msg["time"]
        try:
            route(bus, msg)
        except Exception:  # noqa: BLE001 - a broken target must not fail the API call
            LOG.exception("delivering %s %s to %s failed", detail_type, key, account)
    return envelope


# ------------------------------------------------------------ bus policies
def _principal_accounts(principal: Any) -> list[str]:
    if principal == "*":
        return ["*"]
    values: list[str] = []
    if isinstance(principal, dict):
        principal = principal.get("AWS", [])
    if isinstance(principal, str):
        principal = [principal]
    for p in principal or []:
        if p == "*":
            values.append("*")
        elif isinstance(p, str) and p.startswith("arn:"):
            values.append(p.split(":")[4])
        elif isinstance(p, str):
            values.append(p)
    return values


def _action_allows_put(action: Any) -> bool:
    actions = [action] if isinstance(action, str) else list(action or [])
    return any(a in ("events:PutEvents", "events:*", "*") for a in actions)


def bus_admits(bus: Any, sender_account: str) -> bool:
    """Whether ``bus``'s resource policy lets ``sender_account`` put events on it."""
    if bus.account_id == sender_account:
        return True
    policy = bus.policy
    if not policy:
        return False
    try:
        statements = json.loads(policy).get("Statement", [])
    except ValueError:
        return False
    if isinstance(statements, dict):
        statements = [statements]
    allowed = False
    for st in statements:
        if not _action_allows_put(st.get("Action")):
            continue
        accounts = _principal_accounts(st.get("Principal"))
        if "*" in accounts or sender_account in accounts:
            if st.get("Effect") == "Deny":
                return False
            if st.get("Effect") == "Allow":
                allowed = True
    return allowed


def _log_dropped_delivery(sender: str, bus: Any) -> None:
    assert STATE is not None
    STATE.log_request(
        {
            "service": "events",
            "operation": "DeliverToEventBus",
            "account": sender,
            "region": bus.region,
            "status": 403,
            "error_code": "AccessDeniedException",
            "principal": None,
            "actions": [],  # not a call anyone made
            "internal": True,
            "message": f"event from {sender} dropped: policy of {bus.arn} does not admit it",
        }
    )


# ----------------------------------------------------------------- patches
def install(state: LayerState) -> None:
    global STATE
    STATE = state
    from moto.events import models as ev_models
    from moto.events import utils as ev_utils
    from moto.events.models import EventsBackend, Rule
    from moto.utilities.arns import parse_arn

    if getattr(Rule.send_to_targets, "_snapferry", False):
        return

    # 1. 'account' in the default input template of targets.
    template = ev_utils.EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE
    if '"account"' not in template:
        ev_utils.EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = template.replace(
            '"version": "0", ', '"version": "0", "account": "<account>", '
        )

    # 2. Cross-account bus targets keep the envelope and honour the bus policy.
    original_send = Rule.send_to_targets

    def send_to_targets(self: Any, original_event: dict[str, Any], transform_input: bool = True) -> None:
        # A rule with a schedule and no pattern is fired by its schedule only; moto would
        # match it against every event on the bus (an empty pattern matches everything).
        if self.scheduled_expression and not self.event_pattern._raw_pattern:
            return None
        if not self.event_pattern.matches_event(original_event):
            return None
        for target in list(self.targets):
            arn = parse_arn(target["Arn"])
            try:
                if arn.service == "events" and arn.resource_type == "event-bus":
                    bus = events_backend(arn.account, arn.region).describe_event_bus(arn.resource_id)
                    if not bus_admits(bus, self.account_id):
                        _log_dropped_delivery(self.account_id, bus)
                        continue
                    route(bus, copy.deepcopy(original_event))
                    continue
                # One target at a time, in the target's own account/region (moto
                # would look for another account's SQS queue in the rule's account).
                shallow = copy.copy(self)
                shallow.targets = [target]
                if arn.account and arn.region:
                    shallow.account_id, shallow.region_name = arn.account, arn.region
                original_send(shallow, copy.deepcopy(original_event), transform_input)
            except Exception:  # noqa: BLE001 - one broken/unsupported target must not break the others
                LOG.warning("delivery of an event to target %s of rule %s failed", target.get("Arn"), self.name, exc_info=True)
        return None

    send_to_targets._snapferry = True  # type: ignore[attr-defined]
    Rule.send_to_targets = send_to_targets

    # 3. PutEvents to another account's (or region's) bus by ARN.
    original_put = EventsBackend.put_events

    def put_events(self: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        remote = []
        for entry in events:
            name = entry.get("EventBusName") or ""
            if name.startswith("arn:"):
                arn = parse_arn(name)
                if arn.account != self.account_id or arn.region != self.region_name:
                    remote.append((entry, arn))
        assert STATE is not None
        if len(events) > 10 or (not remote and not STATE.drops):
            return original_put(self, events)  # moto raises the validation error
        for entry, arn in remote:
            bus = events_backend(arn.account, arn.region).describe_event_bus(arn.resource_id)
            if not bus_admits(bus, self.account_id):
                raise ev_models.JsonRESTError(
                    "AccessDeniedException",
                    f"User: arn:aws:sts::{self.account_id}:assumed-role is not authorized to perform: "
                    f"events:PutEvents on resource: {bus.arn} because no resource-based policy allows "
                    "the events:PutEvents action",
                )
        results = []
        for entry in events:
            match = next((arn for e, arn in remote if e is entry), None)
            problem = _entry_problem(entry)
            if problem is None:
                if match is None:
                    bus = self.describe_event_bus(self._normalize_event_bus_arn(entry.get("EventBusName")))
                else:
                    bus = events_backend(match.account, match.region).describe_event_bus(match.resource_id)
                dropped_id = _drop_put_entry(entry, self.account_id, bus)
                if dropped_id is not None:
                    results.append({"EventId": dropped_id})
                    continue
            if match is None:
                results.extend(original_put(self, [entry]))
                continue
            if problem:
                results.append(problem)
                continue
            event_id = str(uuid.uuid4())
            bus = events_backend(match.account, match.region).describe_event_bus(match.resource_id)
            msg = {
                "version": "0",
                "id": event_id,
                "detail-type": entry["DetailType"],
                "source": entry["Source"],
                "account": self.account_id,
                "time": entry.get("Time") or time.time(),
                "region": match.region,
                "resources": entry.get("Resources", []),
                "detail": json.loads(entry["Detail"]),
                "ingestion-time": time.time(),
            }
            route(bus, msg)
            results.append({"EventId": event_id})
        return results

    put_events._snapferry = True  # type: ignore[attr-defined]
    EventsBackend.put_events = put_events

    # 4. PutPermission(Policy=...) replaces the policy; RemovePermission's message.
    original_put_permission = EventsBackend.put_permission
    original_remove_permission = EventsBackend.remove_permission

    def put_permission(self: Any, event_bus_name: str, action: str, principal: str, statement_id: str, condition: Any, policy: str) -> None:
        if not policy:
            return original_put_permission(self, event_bus_name, action, principal, statement_id, condition, policy)
        bus = self.describe_event_bus(event_bus_name or "default")
        saved = dict(bus._statements)
        bus._statements.clear()
        try:
            return original_put_permission(self, event_bus_name, action, principal, statement_id, condition, policy)
        except Exception:
            bus._statements.clear()
            bus._statements.update(saved)  # a refused policy leaves the old one in place
            raise

    def remove_permission(self: Any, event_bus_name: str | None, statement_id: str, remove_all_permissions: bool) -> None:
        bus = self.describe_event_bus(event_bus_name or "default")
        if not remove_all_permissions and not bus.has_permissions():
            raise ev_models.JsonRESTError("ResourceNotFoundException", "Statement with the provided id does not exist.")
        return original_remove_permission(self, event_bus_name, statement_id, remove_all_permissions)

    EventsBackend.put_permission = put_permission
    EventsBackend.remove_permission = remove_permission


def _drop_put_entry(entry: dict[str, Any], sender: str, bus: Any) -> str | None:
    """Apply the drop rules to one valid PutEvents entry from ``sender`` to ``bus``.

    Returns the EventId it is accepted under when a rule drops it (recorded,
    not delivered), else None.  A rule's ``event_id`` is matched against the
    entry's ``Source`` (absent matches any source).
    """
    assert STATE is not None
    if not STATE.take_drop(entry["DetailType"], entry["Source"], sender):
        return None
    event_id = str(uuid.uuid4())
    when = entry.get("Time")
    if isinstance(when, (int, float)):
        when = datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    elif isinstance(when, datetime):
        when = when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    envelope = {
        "version": "0",
        "id": event_id,
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "account": sender,
        "time": when or iso_now(),
        "region": bus.region,
        "resources": entry.get("Resources", []),
        "detail": json.loads(entry["Detail"]),
    }
    STATE.record_event(
        {
            "account": sender,
            "region": bus.region,
            "detail_type": entry["DetailType"],
            "event_id_or_name": entry["Source"],
            "dropped": True,
            "event_bus": bus.arn,
            "event": envelope,
        }
    )
    return event_id


def _entry_problem(entry: dict[str, Any]) -> dict[str, str] | None:
    for field in ("Source", "DetailType", "Detail"):
        if not entry.get(field):
            return {
                "ErrorCode": "InvalidArgument",
                "ErrorMessage": f"Parameter {field} is not valid. Reason: {field} is a required argument.",
            }
    try:
        json.loads(entry["Detail"])
    except ValueError:
        return {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."}
    return None
