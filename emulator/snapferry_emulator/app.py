"""The WSGI layer in front of moto's server app, and the control API.

For every request:

1. ``/_snapferry/...`` is the control API (JSON in/out, never logged as an
   AWS call, malformed input -> 400 with a message; ``GET /_snapferry/rds-ca``
   answers PEM).
2. ``/moto-api/reset`` is passed to moto and also clears the layer's runtime
   state (faults, logs, pending completions, throttling buckets and counts).
3. AWS calls are identified (service, operation, account, region - see
   ``protocol``), throttled when throttling is switched on for the account
   (RDS and EC2 token buckets, ``throttle``; refused calls are logged with
   ``"throttled": true``), checked against the IAM policies of the signing role when
   it is an assumed role that exists in moto's IAM (``authz``), matched
   against injected faults (both answered in the protocol's error shape),
   passed to moto under one global lock (moto is not thread-safe and the
   ticker mutates the same backends), and logged with their HTTP status,
   error code, principal (the assumed role's name) and IAM actions.  SQS
   ``ReceiveMessage`` runs outside the lock because long polling would
   otherwise block everyone.  An unexpected exception inside moto is
   answered as ``InternalFailure`` (HTTP 500) in the service's error shape
   and logged with its traceback on stderr.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs

from . import authz, dbdata, mydata, pgdata, protocol, sqs, throttle
from .lifecycle import Lifecycle
from .state import ControlError, LayerState

LOG = logging.getLogger("snapferry_emulator")

UNLOCKED_OPERATIONS = {("sqs", "ReceiveMessage")}


class SnapferryApp:
    def __init__(self, moto_app: Callable[..., Any], state: LayerState, life: Lifecycle, moto_lock: threading.RLock) -> None:
        self.moto_app = moto_app
        self.state = state
        self.life = life
        self.moto_lock = moto_lock
        # API request throttling (control API /throttling): its settings are kept
        # like the config, its buckets and counts cleared like the runtime state.
        self.throttle = throttle.Throttling()

    # ------------------------------------------------------------- WSGI entry
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or ""
        try:
            if path.startswith("/_snapferry/") or path == "/_snapferry":
                return self._control(environ, start_response, path)
            if path.startswith("/moto-api/reset"):
                with self.moto_lock:
                    result = self._call_moto(environ)
                    self.state.reset(keep_config=True)
                    self.throttle.reset(keep_settings=True)
                    dbdata.reset()
                return self._reply(start_response, *result)
            return self._aws(environ, start_response)
        except Exception as exc:  # noqa: BLE001 - the server must never die on a request
            LOG.exception("unhandled error for %s", path)
            body = json.dumps({"error": f"internal emulator error: {exc!r}"}).encode()
            start_response("500 Internal Server Error", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]

    # ---------------------------------------------------------------- AWS path
    def _aws(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        arrived = time.time()  # logged as "at": before the body is read and moto's lock awaited
        body = _read_body(environ)
        req = protocol.identify(environ, body)
        if req is None:
            with self.moto_lock:
                return self._reply(start_response, *self._call_moto(environ))
        # IAM first (AWS authorizes before the service acts), so a refused call
        # consumes no injected fault.  moto's IAM/STS state is read under the
        # lock on every call (no cache: a policy change applies to the next call).
        with self.moto_lock:
            session = authz.session_of(environ, req.region)
        # Throttling before everything else (when switched on, see ``throttle``):
        # a refused call reaches neither IAM, nor the faults, nor moto.
        throttled = not self.throttle.admit(req.service, req.operation, req.account, req.region)
        refused = None if throttled else authz.refusal(req, session)
        fault = self.state.take_fault(req.operation, req.account) if refused is None and not throttled else None
        if throttled:
            code, message, http_status = throttle.REFUSALS[req.service]
            status, headers, payload = protocol.error_response(req, code, message, http_status)
        elif refused is not None:
            status, headers, payload = refused
        elif fault is not None:
            status, headers, payload = protocol.error_response(req, fault.error_code, fault.message, fault.status)
        elif (req.service, req.operation) in UNLOCKED_OPERATIONS:
            status, headers, payload = self._call_moto(environ)
        else:
            try:
                with self.moto_lock:
                    status, headers, payload = self._call_moto(environ)
            except Exception as exc:  # noqa: BLE001 - a moto/layer bug: answer like AWS's InternalFailure
                LOG.exception("unhandled error in %s %s", req.service, req.operation)
                status, headers, payload = protocol.error_response(req, "InternalFailure", f"emulator error: {exc!r}", 500)
        entry = {
            "service": req.service,
            "operation": req.operation,
            "account": req.account,
            "region": req.region,
            "status": status,
            "error_code": protocol.error_code_of(status, headers, payload),
            "principal": session.role_name if session else None,
            # The IAM actions the call is authorized as (a DynamoDB transaction: its
            # items' actions, see authz), so the log compares to IAM policies.
            "actions": authz.actions_of(req),
            "at": arrived,
        }
        if throttled:
            entry["throttled"] = True
        self.state.log_request(entry)
        return self._reply(start_response, status, headers, payload)

    def _call_moto(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"] = int(status.split(" ", 1)[0])
            captured["headers"] = list(headers)
            return lambda _data: None

        chunks = self.moto_app(environ, capture)
        try:
            payload = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()
        return captured.get("status", 500), captured.get("headers", []), payload

    @staticmethod
    def _reply(start_response: Callable[..., Any], status: int, headers: list[tuple[str, str]], payload: bytes) -> list[bytes]:
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(payload))))
        start_response(f"{status} {_reason(status)}", headers)
        return [payload]

    # ------------------------------------------------------------ control API
    def _control(self, environ: dict[str, Any], start_response: Callable[..., Any], path: str) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        route = path[len("/_snapferry") :].rstrip("/") or "/"
        if route == "/rds-ca" and method == "GET":  # PEM, not JSON: clients load it as a CA bundle file
            pem = dbdata.ca_pem()
            start_response("200 OK", [("Content-Type", "application/x-pem-file"), ("Content-Length", str(len(pem)))])
            return [pem]
        try:
            raw = _read_body(environ)
            body: Any = {}
            if raw.strip():
                try:
                    body = json.loads(raw)
                except ValueError as exc:
                    raise ControlError(f"body is not valid JSON: {exc}") from None
            query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
            status, result = self._dispatch(method, route, body, query)
        except ControlError as exc:
            status, result = 400, {"error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - e.g. moto errors from automated-snapshot
            status, result = 400, {"error": _describe_exc(exc)}
        payload = json.dumps(result, default=str).encode()
        start_response(f"{status} {_reason(status)}", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]

    def _dispatch(self, method: str, route: str, body: Any, query: dict[str, str]) -> tuple[int, Any]:
        st = self.state
        if route == "/health" and method == "GET":
            return 200, {"ok": True}
        if route == "/reset" and method == "POST":
            self.reset()
            return 200, {"ok": True}
        if route == "/config":
            if method == "GET":
                return 200, st.config()
            if method == "POST":
                return 200, st.update_config(body)
        if route == "/faults":
            if method == "POST":
                return 200, {"id": st.add_fault(body).id}
            if method == "GET":
                with st.lock:
                    return 200, [f.to_json() for f in st.faults]
            if method == "DELETE":
                with st.lock:
                    st.faults = []
                return 200, {"ok": True}
        if route == "/drop-events":
            if method == "POST":
                return 200, {"id": st.add_drop(body).id}
            if method == "GET":
                with st.lock:
                    return 200, [d.to_json() for d in st.drops]
            if method == "DELETE":
                with st.lock:
                    st.drops = []
                return 200, {"ok": True}
        if route == "/fail-completions":
            if method == "POST":
                return 200, {"id": st.add_fail_completion(body).id}
            if method == "GET":
                with st.lock:
                    return 200, [f.to_json() for f in st.fail_completions]
            if method == "DELETE":
                with st.lock:
                    st.fail_completions = []
                return 200, {"ok": True}
        if route == "/automated-snapshot" and method == "POST":
            return 200, self._automated_snapshot(body)
        if route == "/seed" and method == "POST":
            return 200, self._seed(body)
        if route == "/corrupt-snapshot" and method == "POST":
            with self.moto_lock:
                return 200, (mydata if mydata.is_mysql_snapshot(body) else pgdata).corrupt_snapshot(body)
        if route == "/postgres" and method == "GET":
            return 200, pgdata.ENGINE.status()
        if route == "/mysql" and method == "GET":
            return 200, mydata.ENGINE.status()
        if route == "/requests":
            if method == "GET":
                try:
                    since = int(query.get("since", "0"))
                except ValueError:
                    raise ControlError("since must be an integer") from None
                return 200, {"requests": st.requests_since(since)}
            if method == "DELETE":
                st.clear_requests()
                return 200, {"ok": True}
        if route == "/throttling":
            if method == "GET":
                return 200, self.throttle.status()
            if method == "POST":
                return 200, self.throttle.configure(body)
            if method == "DELETE":
                return 200, self.throttle.switch_off()
        if route == "/sqs-counts" and method == "GET":
            with self.moto_lock:
                return 200, sqs.counts()
        if route == "/events" and method == "GET":
            return 200, st.events_copy()  # a bare JSON list, as the harness expects
        if route == "/copies" and method == "GET":
            return 200, {"copies": st.copies_copy()}
        return 404, {"error": f"no control endpoint {method} /_snapferry{route}"}

    def _automated_snapshot(self, body: Any) -> dict[str, Any]:
        from .rds import create_automated_snapshot

        if not isinstance(body, dict):
            raise ControlError("body must be a JSON object")
        account, region = body.get("account"), body.get("region")
        instance, cluster = body.get("db_instance_identifier"), body.get("db_cluster_identifier")
        if not isinstance(account, str) or not isinstance(region, str):
            raise ControlError("account and region (strings) are required")
        if bool(instance) == bool(cluster):
            raise ControlError("give exactly one of db_instance_identifier or db_cluster_identifier")
        with self.moto_lock:
            return create_automated_snapshot(account, region, instance, cluster)

    def _seed(self, body: Any) -> dict[str, Any]:
        """``POST /_snapferry/seed``: an account's history of manual snapshots, in-process
        (``rds.seed_snapshots``), for benchmarks of listings and scale."""
        from .rds import SEED_KINDS, SEED_MAX, SEED_PREFIX_RE, seed_snapshots

        if not isinstance(body, dict):
            raise ControlError("body must be a JSON object")
        unknown = set(body) - {"account", "region", "kind", "count", "prefix", "start", "kms_key_id"}
        if unknown:
            raise ControlError(f"unknown seed keys: {sorted(unknown)}")
        account, region = body.get("account"), body.get("region", "us-east-1")
        if not isinstance(account, str) or not account.isdigit() or len(account) != 12:
            raise ControlError("account must be a 12-digit account id")
        if not isinstance(region, str) or not region:
            raise ControlError("region must be a region name")
        kind = body.get("kind", "db-instance")
        if kind not in SEED_KINDS:
            raise ControlError(f"kind must be one of {list(SEED_KINDS)}")
        count, start = body.get("count"), body.get("start", 0)
        for name, value, low in (("count", count, 1), ("start", start, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ControlError(f"{name} must be an integer >= {low}")
        if count > SEED_MAX:
            raise ControlError(f"count must be at most {SEED_MAX} a request")
        prefix = body.get("prefix", "seed-")
        if not isinstance(prefix, str) or not SEED_PREFIX_RE.match(prefix):
            raise ControlError("prefix must start with a lowercase letter, then lowercase letters, digits and single hyphens")
        key = body.get("kms_key_id")
        if key is not None and (not isinstance(key, str) or not key):
            raise ControlError("kms_key_id must be a key id, ARN or alias")
        started = time.monotonic()
        with self.moto_lock:
            result = seed_snapshots(account, region, kind, count, prefix, start, key)
        return {**result, "seconds": round(time.monotonic() - started, 3)}

    def reset(self) -> None:
        from moto.moto_api._internal.models import moto_api_backend

        with self.moto_lock:
            moto_api_backend.reset()
            self.state.reset()
            self.throttle.reset()
            dbdata.reset()


def _read_body(environ: dict[str, Any]) -> bytes:
    """Read the request body once and put it back for the next reader."""
    if "snapferry.body" in environ:
        return environ["snapferry.body"]
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ.get("wsgi.input")
    body = stream.read(length) if (stream is not None and length > 0) else b""
    environ["snapferry.body"] = body
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def _describe_exc(exc: Exception) -> str:
    code = getattr(exc, "code", None) or getattr(exc, "error_type", None)
    message = getattr(exc, "message", None) or str(exc)
    return f"{code}: {message}" if code else message


_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 409: "Conflict", 500: "Internal Server Error", 503: "Service Unavailable"}


def _reason(status: int) -> str:
    return _REASONS.get(status, "Status")
