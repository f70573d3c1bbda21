"""IAM identity-policy check for calls made with an assumed-role session.

A call is checked when its SigV4 access key belongs to an STS ``AssumeRole``
session (moto's ``sts_backends[account][partition].assumed_roles``) and the
session's role exists in moto's IAM of that account.  Sessions of roles that
were never created (the test harness's ``snapferry-test``, the CLI's
``snapferry-operator``), IAM users' keys and unsigned calls are not checked.
moto's own IAM auth (``INITIAL_NO_AUTH_ACTION_COUNT``) is not used: it is
global and mis-handles statements with a ``Condition``.

The check evaluates actions only (IAM User Guide *reference_policies_evaluation-logic*):
an explicit ``Deny`` whose ``Action``/``NotAction`` matches refuses; else an
``Allow`` that matches allows; else the call is refused (implicit deny).
``Resource`` and ``Condition`` are not evaluated (the CDK tests do that with
a policy simulator; here they would need request context the emulator does
not model): a statement applies whatever its ``Resource``, an ``Allow`` with
a condition counts as allowing, a ``Deny`` with a condition is ignored.

Nothing is cached: the policies are read from moto under the moto lock on
every call, so ``PutRolePolicy`` & co. apply to the very next call.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from . import protocol

# SigV4 signing name -> IAM action prefix, where they differ
# (Service Authorization Reference, *reference_policies_actions-resources-contextkeys*).
IAM_PREFIX = {"monitoring": "cloudwatch", "email": "ses"}

# SQS authorizes its batch calls with the single-message action
# (SQS Developer Guide *sqs-batch-api-actions*, "Permissions").
ACTION_OF_OPERATION = {
    ("sqs", "SendMessageBatch"): "SendMessage",
    ("sqs", "DeleteMessageBatch"): "DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "ChangeMessageVisibility",
}

# A DynamoDB transaction is not an IAM action of its own: "Permissions for Put,
# Update, Delete, and Get actions are governed by the permissions used for the
# underlying PutItem, UpdateItem, DeleteItem, and GetItem operations. For the
# ConditionCheck action, you can use the dynamodb:ConditionCheckItem permission"
# (DynamoDB Developer Guide *transaction-apis-iam*, "Using IAM with DynamoDB
# transactions").  So the call needs the action of each of its items.
TRANSACTIONS = {("dynamodb", "TransactWriteItems"), ("dynamodb", "TransactGetItems")}
TRANSACT_ITEM_ACTION = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Get": "dynamodb:GetItem",
}

# GetCallerIdentity needs no permission (STS API Reference *API_GetCallerIdentity*).
ALWAYS_ALLOWED = {"sts:GetCallerIdentity"}

# The code and HTTP status each service answers a refused call with.
DENIED = {
    "rds": ("AccessDenied", 403),
    "ec2": ("UnauthorizedOperation", 403),
    "kms": ("AccessDeniedException", 400),
    "sqs": ("AccessDenied", 403),  # awsQueryCompatible: the SDKs read it from x-amzn-query-error
    "events": ("AccessDeniedException", 400),
    "sts": ("AccessDenied", 403),
    "iam": ("AccessDenied", 403),
    "dynamodb": ("AccessDeniedException", 400),
}
# The JSON ``__type`` where the service qualifies the code: DynamoDB answers a refusal
# {"__type":"com.amazon.coral.service#AccessDeniedException","Message":"User: ... is not
# authorized to perform: dynamodb:PutItem on resource: ..."} (HTTP 400), as captured
# from AWS in public logs and reproduced by dynalite; the SDKs read the code after '#'.
DENIED_JSON_TYPE = {"dynamodb": "com.amazon.coral.service#AccessDeniedException"}


@dataclass
class Session:
    role_name: str
    arn: str  # arn:aws:sts::<account>:assumed-role/<role>/<session>
    statements: list[dict[str, Any]] | None  # None: the role is not in IAM, the call is not checked


def session_of(environ: dict[str, Any], region: str) -> Session | None:
    """The assumed-role session that signed the request, or None.  Call under the moto lock."""
    m = protocol.CREDENTIAL_RE.search(environ.get("HTTP_AUTHORIZATION", "") or "")
    if not m:
        return None
    from moto.iam.exceptions import NotFoundException
    from moto.iam.models import get_account_id_from, iam_backends
    from moto.sts.models import sts_backends
    from moto.utilities.utils import get_partition

    key_id = m.group(1)
    account, partition = get_account_id_from(key_id), get_partition(region)
    key = iam_backends[account][partition].access_keys.get(key_id)
    if key is None or not getattr(key, "role_arn", None):
        return None  # an IAM user's key, or unknown
    assumed = sts_backends[account][partition].get_assumed_role_from_access_key(key_id)
    if assumed is None:
        return None
    try:
        role = iam_backends[account][partition].get_role_by_arn(assumed.role_arn)
    except NotFoundException:
        return Session(assumed.role_arn.split("/")[-1], assumed.arn, None)
    documents = list(role.policies.values())
    for policy in role.managed_policies.values():
        documents += [v.document for v in policy.versions if v.version_id == policy.default_version_id]
    statements: list[dict[str, Any]] = []
    for document in documents:
        statements += _statements(document)
    return Session(role.name, assumed.arn, statements)


def action_of(req: protocol.AwsRequest) -> str:
    prefix = IAM_PREFIX.get(req.service, req.service)
    return f"{prefix}:{ACTION_OF_OPERATION.get((req.service, req.operation), req.operation)}"


def actions_of(req: protocol.AwsRequest) -> list[str]:
    """The IAM actions the call needs (logged as ``actions``): one, except for a
    DynamoDB transaction, which needs each of its items' actions (once each, in
    item order; none for a transaction without items, which DynamoDB refuses as
    invalid)."""
    if (req.service, req.operation) not in TRANSACTIONS:
        return [action_of(req)]
    actions: list[str] = []
    items = req.params.get("TransactItems")
    for item in items if isinstance(items, list) else []:
        for kind in item if isinstance(item, dict) else {}:
            action = TRANSACT_ITEM_ACTION.get(kind)
            if action and action not in actions:
                actions.append(action)
    return actions


def refusal(req: protocol.AwsRequest, session: Session | None) -> tuple[int, list[tuple[str, str]], bytes] | None:
    """The error response for a call the session's policies don't allow, else None.
    A call needing several actions (a DynamoDB transaction) is refused as a whole
    for the first of them that is not allowed."""
    if session is None or session.statements is None:
        return None
    for action in actions_of(req):
        if action in ALWAYS_ALLOWED:
            continue
        verdict = decide(action, session.statements)
        if verdict is not None:
            return _denied(req, session, action, verdict)
    return None


def _denied(req: protocol.AwsRequest, session: Session, action: str, verdict: str) -> tuple[int, list[tuple[str, str]], bytes]:
    # Wording of AWS's access-denied messages (IAM User Guide *troubleshoot_access-denied*).
    if verdict == "deny":
        message = f"User: {session.arn} is not authorized to perform: {action} with an explicit deny in an identity-based policy"
    else:
        message = f"User: {session.arn} is not authorized to perform: {action} because no identity-based policy allows the {action} action"
    if req.service == "ec2":
        message = "You are not authorized to perform this operation. " + message
    code, status = DENIED.get(req.service) or (("AccessDeniedException", 400) if req.json_protocol else ("AccessDenied", 403))
    return protocol.error_response(req, code, message, status, DENIED_JSON_TYPE.get(req.service))


def decide(action: str, statements: list[dict[str, Any]]) -> str | None:
    """None = allowed, "deny" = explicit deny, "implicit" = no Allow matches."""
    matching = [s for s in statements if _applies(s, action)]
    if any(s.get("Effect") == "Deny" and "Condition" not in s for s in matching):
        return "deny"
    if any(s.get("Effect") == "Allow" for s in matching):
        return None
    return "implicit"


def _applies(statement: dict[str, Any], action: str) -> bool:
    if "Action" in statement:
        return _matches(statement["Action"], action)
    if "NotAction" in statement:
        return not _matches(statement["NotAction"], action)
    return False


def _matches(patterns: Any, action: str) -> bool:
    if isinstance(patterns, str):
        patterns = [patterns]
    return any(isinstance(p, str) and _pattern(p).fullmatch(action) for p in patterns)


@functools.lru_cache(maxsize=1024)
def _pattern(pattern: str) -> re.Pattern[str]:
    # IAM action wildcards are * and ?; actions compare case-insensitively
    # (IAM User Guide *reference_policies_elements_action*).
    return re.compile(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", "."), re.IGNORECASE)


def _statements(document: Any) -> list[dict[str, Any]]:
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            try:
                document = json.loads(unquote(document))  # URL-encoded, as IAM returns documents
            except ValueError:
                return []  # moto validated it on write; nothing to allow
    statements = document.get("Statement", []) if isinstance(document, dict) else []
    if isinstance(statements, dict):
        statements = [statements]
    return [s for s in statements if isinstance(s, dict)]
