"""KMS helpers: AWS-managed keys and key resolution across accounts.

Why: moto creates the ``alias/aws/rds`` / ``alias/aws/ebs`` keys lazily with
``KeyManager: CUSTOMER`` and RDS stores the placeholder string
``default_kms_key_id`` for "encrypted with the AWS-managed key".  The layer
needs that key to be a real, describable key (``KeyManager: AWS``) so the
refusal to share such snapshots can be detected and so callers can see it
through ``DescribeKey``.  moto also only resolves key ids within the caller's
own account; AWS lets an account use another account's CMK by ARN when the
key policy allows it (key policies are NOT evaluated here - documented in
README).

``GetKeyPolicy`` / ``PutKeyPolicy`` without ``PolicyName`` use the policy
``default`` and ``GetKeyPolicy`` answers ``PolicyName`` (KMS API
*API_GetKeyPolicy*, *API_PutKeyPolicy*: "If no policy name is specified, the
default value is default") [moto: ``NotFoundException`` "No such policy
exists" without a name; no ``PolicyName`` in the answer].
"""

from __future__ import annotations

import json
import re
from typing import Any

AWS_MANAGED_DESCRIPTIONS = {
    "alias/aws/rds": "Default key that protects my RDS database volumes when no other key is defined",
    "alias/aws/ebs": "Default key that protects my EBS volumes when no other key is defined",
}

KEY_ARN_RE = re.compile(r"^arn:aws[\w-]*:kms:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):(?P<kind>key|alias)/(?P<name>.+)$")


def kms_backend(account: str, region: str) -> Any:
    from moto.kms.models import kms_backends

    return kms_backends[account][region]


def aws_managed_key(account: str, region: str, alias: str) -> Any:
    """The account's AWS-managed key for ``alias`` (e.g. alias/aws/rds), created on demand."""
    kms = kms_backend(account, region)
    key_id = kms.get_key_id_from_alias(alias)
    if key_id is None:  # alias not reserved in this moto version: create it ourselves
        key = kms.create_key(None, "ENCRYPT_DECRYPT", "SYMMETRIC_DEFAULT", AWS_MANAGED_DESCRIPTIONS.get(alias, ""), None)
        kms.create_alias(key.id, alias)
        key_id = key.id
    key = kms.keys[key_id]
    mark_aws_managed(key, alias)
    return key


def mark_aws_managed(key: Any, alias: str) -> None:
    key.key_manager = "AWS"
    if alias in AWS_MANAGED_DESCRIPTIONS:
        key.description = AWS_MANAGED_DESCRIPTIONS[alias]


def resolve_key(caller_account: str, region: str, ref: str | None) -> Any | None:
    """Find the KMS key ``ref`` names (key id, alias, key ARN, alias ARN).

    Bare ids and aliases are looked up in the caller's account and ``region``;
    ARNs in the account/region they name.  Returns None if there is no such key.
    """
    if not ref:
        return None
    account, key_region, name = caller_account, region, ref
    m = KEY_ARN_RE.match(ref)
    if m:
        account, key_region = m.group("account"), m.group("region")
        name = ("alias/" if m.group("kind") == "alias" else "") + m.group("name")
    kms = kms_backend(account, key_region)
    if name.startswith("alias/aws/"):
        return aws_managed_key(account, key_region, name)
    try:
        key_id = kms.any_id_to_key_id(name)
    except Exception:  # noqa: BLE001 - moto raises KeyError/TypeError for unknown aliases
        return None
    return kms.keys.get(key_id) if key_id else None


def key_usable(key: Any) -> bool:
    return key is not None and getattr(key, "enabled", True) and getattr(key, "key_state", "Enabled") == "Enabled"


def usable_by(key: Any, caller_account: str) -> bool:
    """Whether ``caller_account`` may use ``key`` for snapshot copy/restore.

    Own keys: if enabled.  Another account's key: only an enabled
    customer-managed key (an AWS-managed key can never be used by another
    account).  Key policies are not evaluated.
    """
    if not key_usable(key):
        return False
    if key.account_id != caller_account and getattr(key, "key_manager", "CUSTOMER") == "AWS":
        return False
    return True


def is_aws_managed(key: Any) -> bool:
    return key is not None and getattr(key, "key_manager", "CUSTOMER") == "AWS"


def install() -> None:
    """Patch moto: reserved ``alias/aws/*`` keys report ``KeyManager: AWS``;
    Disable/EnableKey and Schedule/CancelKeyDeletion take key ARNs; another account's CMK works by ARN for
    the data-plane/grant operations AWS allows across accounts."""
    from moto.kms.models import KmsBackend

    original = KmsBackend._generate_default_keys
    if getattr(original, "_snapferry", False):
        return

    def _generate_default_keys(self: Any, alias_name: str) -> str | None:
        key_id = original(self, alias_name)
        if key_id is not None and alias_name.startswith("alias/aws/"):
            mark_aws_managed(self.keys[key_id], alias_name)
        return key_id

    _generate_default_keys._snapferry = True  # type: ignore[attr-defined]
    KmsBackend._generate_default_keys = _generate_default_keys

    # DisableKey / EnableKey / ScheduleKeyDeletion / CancelKeyDeletion accept a
    # key ARN in AWS; moto only a bare key id (HTTP 500).
    for name in ("disable_key", "enable_key", "schedule_key_deletion", "cancel_key_deletion"):
        orig = getattr(KmsBackend, name)

        def by_any_id(self: Any, key_id: str, *args: Any, _orig: Any = orig) -> Any:
            return _orig(self, self.get_key_id(key_id), *args)

        setattr(KmsBackend, name, by_any_id)

    # Cross-account use of a customer-managed key by ARN (moto looks only in
    # the caller's account): route the operations AWS allows across accounts
    # to the key owner's backend.  Management operations stay same-account.
    from moto.kms.responses import KmsResponse

    def kms_backend(self: Any) -> Any:
        own = kms_backend_of(self.current_account, self.region)
        if self._get_action() not in CROSS_ACCOUNT_OPERATIONS:
            return own
        try:
            params = json.loads(self.body or "{}")
        except ValueError:
            return own
        ref = params.get("KeyId") if isinstance(params, dict) else None
        m = KEY_ARN_RE.match(ref) if isinstance(ref, str) else None
        if not m or m.group("kind") != "key" or m.group("account") == self.current_account:
            return own
        owner = kms_backend_of(m.group("account"), m.group("region"))
        key = owner.keys.get(m.group("name"))
        if key is None or is_aws_managed(key):
            return own  # not found, as AWS answers for keys you can't use
        return owner

    KmsResponse.kms_backend = property(kms_backend)

    # PolicyName is optional (default "default") and GetKeyPolicy answers it.
    from moto.kms import responses as kms_responses

    original_assert = kms_responses._assert_default_policy
    kms_responses._assert_default_policy = lambda name: original_assert("default" if name is None else name)
    original_get_policy = KmsResponse.get_key_policy

    def get_key_policy(self: Any) -> str:
        answer = json.loads(original_get_policy(self))
        answer["PolicyName"] = "default"
        return json.dumps(answer)

    KmsResponse.get_key_policy = get_key_policy


# KMS operations AWS lets another account perform on a key (given key policy).
CROSS_ACCOUNT_OPERATIONS = {
    "DescribeKey",
    "Encrypt",
    "Decrypt",
    "ReEncrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "CreateGrant",
    "ListGrants",
    "RevokeGrant",
    "RetireGrant",
    "GetPublicKey",
    "Sign",
    "Verify",
    "GenerateMac",
    "VerifyMac",
}


def kms_backend_of(account: str, region: str) -> Any:
    return kms_backend(account, region)
