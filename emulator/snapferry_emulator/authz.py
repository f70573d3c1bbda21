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
}


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


def refusal(req: protocol.AwsRequest, session: Session | None) -> tuple[int, list[tuple[str, str]], bytes] | None:
    """The error response for a call the session's policies don't allow, else None."""
    if session is None or session.statements is None:
        return None
    action = action_of(req)
    if action in ALWAYS_ALLOWED:
        return None
    verdict = decide(action, session.statements)
    if verdict is None:
        return None
    # Wording of AWS's access-denied messages (IAM User Guide *troubleshoot_access-denied*).
    if verdict == "deny":
        message = f"User: {session.arn} is not authorized to perform: {action} with an explicit deny in an identity-based policy"
    else:
        message = f"User: {session.arn} is not authorized to perform: {action} because no identity-based policy allows the {action} action"
    if req.service == "ec2":
        message = "You are not authorized to perform this operation. " + message
    code, status = DENIED.get(req.service) or (("AccessDeniedException", 400) if req.json_protocol else ("AccessDenied", 403))
    return protocol.error_response(req, code, message, status)


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
