"""API request throttling as RDS and EC2 apply it: token buckets per account and region.

Off by default; switched on per account (or for all accounts) through
``POST /_snapferry/throttling`` (see ``Throttling.configure``).  While on,
every RDS / EC2 API call of that account takes one token from its bucket
before anything else happens (IAM check, injected faults, moto); a call that
finds the bucket empty is refused and logged in the request log with its
error code and ``"throttled": true``.  The control API, moto's own internal
calls (the layer calls moto's backends directly, not over HTTP) and other
services are never throttled.

* RDS: "Amazon RDS throttles API requests for each AWS account in each AWS
  Region ... By default, you can make up to 300 requests in a burst and a
  sustained 12 requests per second" (RDS User Guide *rds-api-throttling*,
  "Request throttling for the Amazon RDS API"): one bucket per account and
  region shared by every caller and every RDS action, capacity (``burst``)
  300, refill (``per_second``) 12.  Refusal: HTTP 400, code ``Throttling``,
  message ``Rate exceeded`` - the code RDS's query API answers
  (aws/aws-cli#8604: "An error occurred (Throttling) when calling the
  DescribeDBInstances operation ...: Rate exceeded"; the User Guide's example
  line names ``ThrottlingException``, the code of AWS's JSON services).  Both
  codes are throttling errors to the SDKs' retry classifiers.
* EC2: "Amazon EC2 throttles EC2 API requests for each AWS account on a
  per-Region basis" with the token bucket algorithm; "If you exceed an API
  throttling limit, you get the RequestLimitExceeded error code" (EC2
  Developer Guide *ec2-api-throttling*, "Request throttling for the Amazon
  EC2 API").  EC2 keeps buckets per action category (and per API for some);
  here two per account and region: non-mutating actions (``Describe*``,
  ``Get*``, ``List*``, ``Search*``) with EC2's documented default "bucket size
  for non-mutating (Describe*) API actions is 100 tokens, and the refill rate
  is 20 tokens per second" (same page), and all other (mutating) actions,
  default 200 / 5 - a configurable placeholder: no AWS page found here
  confirms those two numbers.  Refusal: ``RequestLimitExceeded`` (same
  page), HTTP 503, message "Request limit exceeded." (status and wording as
  EC2 answers it; the page names only the code).

Buckets refill continuously (``burst`` tokens at most, ``per_second`` tokens a
second, fractions kept) by the monotonic clock, so a test's wall-clock jumps
(``clock_offset_seconds``) never refill them.  A bucket is made full when its
account and region first call with throttling on, and made anew (full) when
its account's settings change.  Counts (admitted / refused per account,
region and service) cover calls made while throttling applied to them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from .state import ControlError

RDS_DEFAULT = {"burst": 300, "per_second": 12.0}
EC2_DEFAULTS = {"non_mutating": {"burst": 100, "per_second": 20.0}, "mutating": {"burst": 200, "per_second": 5.0}}
EC2_NON_MUTATING_PREFIXES = ("Describe", "Get", "List", "Search")

# service -> (error code, message, HTTP status)
REFUSALS = {
    "rds": ("Throttling", "Rate exceeded", 400),
    "ec2": ("RequestLimitExceeded", "Request limit exceeded.", 503),
}

ALL = "*"  # the settings key for "every account without its own"


@dataclass
class Bucket:
    burst: float
    per_second: float
    tokens: float
    stamp: float  # monotonic time of the last refill

    def take(self, now: float) -> bool:
        # Continuous refill: what accrued since the last call, capped at the capacity.
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.per_second)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def category(service: str, operation: str) -> str:
    if service == "ec2":
        return "non_mutating" if operation.startswith(EC2_NON_MUTATING_PREFIXES) else "mutating"
    return "all"


def _rate(value: Any, defaults: dict[str, Any], where: str) -> dict[str, Any]:
    """A {"burst", "per_second"} object, missing fields from ``defaults``."""
    if not isinstance(value, dict):
        raise ControlError(f"{where} must be a JSON object {{\"burst\": N, \"per_second\": R}} or false")
    unknown = set(value) - {"burst", "per_second"}
    if unknown:
        raise ControlError(f"unknown keys in {where}: {sorted(unknown)}")
    burst = value.get("burst", defaults["burst"])
    per_second = value.get("per_second", defaults["per_second"])
    if not isinstance(burst, int) or isinstance(burst, bool) or burst < 0:
        raise ControlError(f"{where}.burst must be an integer >= 0")
    if not isinstance(per_second, (int, float)) or isinstance(per_second, bool) or per_second < 0:
        raise ControlError(f"{where}.per_second must be a number >= 0")
    return {"burst": burst, "per_second": float(per_second)}


def _service_settings(body: dict[str, Any]) -> dict[str, Any]:
    """{"rds": {...} | None, "ec2": {"non_mutating": {...}, "mutating": {...}} | None} from a POST body."""
    rds = body.get("rds", {})
    ec2 = body.get("ec2", {})
    out: dict[str, Any] = {}
    out["rds"] = None if rds is False or rds is None else _rate(rds, RDS_DEFAULT, "rds")
    if ec2 is False or ec2 is None:
        out["ec2"] = None
    elif not isinstance(ec2, dict):
        raise ControlError("ec2 must be a JSON object or false")
    elif set(ec2) & {"non_mutating", "mutating"}:
        if set(ec2) - {"non_mutating", "mutating"}:
            raise ControlError("ec2 takes either burst/per_second (both categories) or non_mutating/mutating objects, not both")
        out["ec2"] = {cat: _rate(ec2.get(cat, {}), EC2_DEFAULTS[cat], f"ec2.{cat}") for cat in EC2_DEFAULTS}
    else:
        out["ec2"] = {cat: _rate(ec2, EC2_DEFAULTS[cat], "ec2") for cat in EC2_DEFAULTS}
    return out


class Throttling:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.reset()

    def reset(self, keep_settings: bool = False) -> None:
        with self.lock:
            if not keep_settings:
                # account (or ALL) -> service settings, or None: explicitly off for that account
                self.settings: dict[str, dict[str, Any] | None] = {}
            self.buckets: dict[tuple[str, str, str, str], Bucket] = {}
            self.counts: dict[tuple[str, str, str], list[int]] = {}

    # ------------------------------------------------------------ control API
    def configure(self, body: Any) -> dict[str, Any]:
        """``POST /_snapferry/throttling``.

        ``{"account": "<12 digits>" | null, "rds": {"burst", "per_second"} | false,
        "ec2": {"burst", "per_second"} | {"non_mutating": {...}, "mutating": {...}} | false}``
        switches throttling on for that account (``account`` null or absent:
        every account without settings of its own); a service left out gets
        AWS's defaults, ``false`` leaves it unthrottled, missing fields take
        the defaults.  ``{"off": true}`` switches it off everywhere (and
        forgets per-account settings); ``{"account": A, "off": true}`` switches
        it off for A even while it is on for all accounts.
        """
        if not isinstance(body, dict):
            raise ControlError("throttling body must be a JSON object")
        unknown = set(body) - {"account", "rds", "ec2", "off"}
        if unknown:
            raise ControlError(f"unknown throttling keys: {sorted(unknown)}")
        account = body.get("account")
        if account is not None and (not isinstance(account, str) or not account.isdigit() or len(account) != 12):
            raise ControlError("account must be a 12-digit account id or null (all accounts)")
        off = body.get("off", False)
        if not isinstance(off, bool):
            raise ControlError("off must be true or false")
        if off and set(body) & {"rds", "ec2"}:
            raise ControlError("off takes no rds/ec2 settings")
        settings = None if off else _service_settings(body)
        with self.lock:
            if account is None:
                if off:
                    self.settings = {}
                else:
                    self.settings[ALL] = settings
                self.buckets = {}
            else:
                self.settings[account] = settings
                self.buckets = {k: b for k, b in self.buckets.items() if k[0] != account}
        return self.status()

    def switch_off(self) -> dict[str, Any]:
        """``DELETE /_snapferry/throttling``: off everywhere (counts are kept)."""
        return self.configure({"off": True})

    def status(self) -> dict[str, Any]:
        """``GET /_snapferry/throttling``."""
        with self.lock:
            now = self.clock()
            everyone = self.settings.get(ALL)
            return {
                "enabled": any(s is not None and (s["rds"] or s["ec2"]) for s in self.settings.values()),
                "all_accounts": everyone,
                "accounts": {a: (s if s is not None else {"off": True}) for a, s in self.settings.items() if a != ALL},
                "counts": [
                    {"account": a, "region": r, "service": s, "admitted": c[0], "refused": c[1]}
                    for (a, r, s), c in sorted(self.counts.items())
                ],
                "buckets": [
                    {
                        "account": a,
                        "region": r,
                        "service": s,
                        "category": cat,
                        "burst": b.burst,
                        "per_second": b.per_second,
                        "tokens": round(min(b.burst, b.tokens + max(0.0, now - b.stamp) * b.per_second), 3),
                    }
                    for (a, r, s, cat), b in sorted(self.buckets.items())
                ],
            }

    # ------------------------------------------------------------- AWS calls
    def admit(self, service: str, operation: str, account: str, region: str) -> bool:
        """Take a token for one call; False = refuse it (see ``REFUSALS``)."""
        if service not in REFUSALS:
            return True
        with self.lock:
            # The account's own settings (None: explicitly off) win over those for all accounts.
            settings = self.settings[account] if account in self.settings else self.settings.get(ALL)
            if settings is None or settings.get(service) is None:
                return True
            cat = category(service, operation)
            rate = settings[service] if service == "rds" else settings[service][cat]
            key = (account, region, service, cat)
            now = self.clock()
            bucket = self.buckets.get(key)
            if bucket is None:
                bucket = self.buckets[key] = Bucket(float(rate["burst"]), rate["per_second"], float(rate["burst"]), now)
            admitted = bucket.take(now)
            count = self.counts.setdefault((account, region, service), [0, 0])
            count[0 if admitted else 1] += 1
            return admitted
