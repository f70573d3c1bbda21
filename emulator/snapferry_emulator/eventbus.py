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
        if not remote:
            return original_put(self, events)
        if len(events) > 10:
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
            if match is None:
                results.extend(original_put(self, [entry]))
                continue
            problem = _entry_problem(entry)
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
