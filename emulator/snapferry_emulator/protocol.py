"""Identify AWS requests and render AWS-shaped errors.

The WSGI layer needs, for every AWS call: the service, the operation, the
calling account and the region.  They are found the way moto finds them:

* service and region: the SigV4 credential scope of the ``Authorization``
  header (``Credential=AKID/date/REGION/SERVICE/aws4_request``);
* operation: ``X-Amz-Target`` (JSON protocols: KMS ``TrentService.X``,
  EventBridge ``AWSEvents.X``, SQS ``AmazonSQS.X``, DynamoDB
  ``DynamoDB_20120810.X``) or ``Action=`` in the
  form body / query string (query protocols: RDS, EC2, STS, IAM);
* account: ``x-moto-account-id`` header, else the access key id from the
  ``Authorization`` header mapped through moto's IAM/STS access keys
  (``moto.iam.models.get_account_id_from``), exactly like
  ``moto.core.responses.BaseResponse.get_current_account``.

Errors (fault injection, layer refusals raised outside moto) are rendered in
the shape each protocol's SDK parser reads the error code from:

* RDS/STS/IAM (awsQuery): ``<ErrorResponse><Error><Type/><Code/><Message/>``
* EC2 (ec2Query): ``<Response><Errors><Error><Code/><Message/>``
* JSON 1.0/1.1 (KMS, EventBridge, SQS, DynamoDB): ``{"__type": CODE, "message": ...}``
  plus ``x-amzn-query-error: CODE;Sender`` (SQS is awsQueryCompatible and
  the SDKs take the code from that header when present).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

ACCESS_KEY_RE = re.compile(r"AWS.*(?P<access_key>(?<![A-Z0-9])[A-Z0-9]{20}(?![A-Z0-9]))[:/]")
CREDENTIAL_RE = re.compile(r"Credential=([^/,\s]+)/([^/]+)/([^/]+)/([^/]+)/aws4_request")
# moto's own default, for requests that name no account.
from moto.core import DEFAULT_ACCOUNT_ID as DEFAULT_ACCOUNT  # noqa: E402
DEFAULT_REGION = "us-east-1"

TARGET_PREFIX_SERVICE = {
    "TrentService": "kms",
    "AWSEvents": "events",
    "AmazonSQS": "sqs",
    "DynamoDB_20120810": "dynamodb",
}
# Targets of JSON 1.0 services (the others are JSON 1.1); the Content-Type says it too.
JSON_1_0_PREFIXES = {"AmazonSQS", "DynamoDB_20120810"}


@dataclass
class AwsRequest:
    service: str
    operation: str
    account: str
    region: str
    json_protocol: bool
    json_version: str  # "1.0" or "1.1" when json_protocol
    params: dict[str, Any]  # flat query params, or the JSON body


def identify(environ: dict[str, Any], body: bytes) -> AwsRequest | None:
    """Return what the request is, or None when it is not an AWS API call."""
    auth = environ.get("HTTP_AUTHORIZATION", "") or ""
    target = environ.get("HTTP_X_AMZ_TARGET", "") or ""
    service = region = None
    m = CREDENTIAL_RE.search(auth)
    if m:
        region, service = m.group(3), m.group(4).lower()
        if service == "eventbridge":
            service = "events"
    operation = None
    params: dict[str, Any] = {}
    json_protocol = bool(target)
    content_type = environ.get("CONTENT_TYPE", "") or ""
    json_version = "1.1"
    if target:
        prefix, _, operation = target.partition(".")
        service = service or TARGET_PREFIX_SERVICE.get(prefix)
        if "1.0" in content_type or prefix in JSON_1_0_PREFIXES:
            json_version = "1.0"
        try:
            loaded = json.loads(body or b"{}")
            params = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            params = {}
    else:
        flat: dict[str, list[str]] = {}
        if body and "json" not in content_type:
            try:
                flat = parse_qs(body.decode("utf-8"), keep_blank_values=True)
            except UnicodeDecodeError:
                flat = {}
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        for key, values in query.items():
            flat.setdefault(key, values)
        params = {k: v[0] for k, v in flat.items()}
        operation = params.get("Action")
    if not service or not operation:
        return None
    return AwsRequest(
        service=service,
        operation=operation,
        account=account_of(environ, auth),
        region=region or DEFAULT_REGION,
        json_protocol=json_protocol,
        json_version=json_version,
        params=params,
    )


def account_of(environ: dict[str, Any], auth: str) -> str:
    header = environ.get("HTTP_X_MOTO_ACCOUNT_ID")
    if header:
        return header
    m = ACCESS_KEY_RE.search(auth)
    if not m:
        return DEFAULT_ACCOUNT
    from moto.iam.models import get_account_id_from

    return get_account_id_from(m.group("access_key"))


def error_response(
    req: AwsRequest, code: str, message: str, status: int = 400, json_type: str | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    """An AWS error in the protocol shape of ``req``'s service.  ``json_type``: the
    JSON ``__type`` when it is not the bare code (the SDKs keep what follows ``#``)."""
    request_id = str(uuid.uuid4())
    fault = "Receiver" if status >= 500 else "Sender"
    if req.json_protocol:
        body = json.dumps({"__type": json_type or code, "message": message}).encode()
        headers = [
            ("Content-Type", f"application/x-amz-json-{req.json_version}"),
            ("x-amzn-RequestId", request_id),
            ("X-Amzn-ErrorType", code),
            ("x-amzn-query-error", f"{code};{fault}"),
        ]
    elif req.service == "ec2":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
            f"</Error></Errors><RequestID>{request_id}</RequestID></Response>"
        ).encode()
        headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
    else:
        body = (
            f"<ErrorResponse><Error><Type>{fault}</Type><Code>{escape(code)}</Code>"
            f"<Message>{escape(message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
    headers.append(("Content-Length", str(len(body))))
    return status, headers, body


XML_CODE_RE = re.compile(rb"<Code>([^<]+)</Code>")


def error_code_of(status: int, headers: list[tuple[str, str]], body: bytes) -> str | None:
    """The AWS error code of a response, or None for a success."""
    if status < 300:
        return None
    for name, value in headers:
        if name.lower() == "x-amzn-query-error" and value:
            return value.split(";")[0]
    m = XML_CODE_RE.search(body or b"")
    if m:
        return m.group(1).decode(errors="replace")
    try:
        data = json.loads(body or b"{}")
        code = data.get("__type") or data.get("code") or data.get("Code")
        if code:
            code = code.split("#")[-1].split(":")[0]
            return code
    except (ValueError, AttributeError):
        pass
    for name, value in headers:
        if name.lower() == "x-amzn-errortype" and value:
            return value.split(":")[0].split("#")[-1]
    return f"HTTP{status}"
