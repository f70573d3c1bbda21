"""Paging of Describe calls the way AWS pages them (the pinned moto's behaviour in brackets).

RDS ``DescribeDBSnapshots``, ``DescribeDBClusterSnapshots``,
``DescribeDBInstances``, ``DescribeDBClusters``: ``MaxRecords`` "Default: 100.
Constraints: Minimum 20, maximum 100"; "If more records exist than the
specified MaxRecords value, a pagination token called a marker is included in
the response"; a request with ``Marker`` gets "only records beyond the marker,
up to the value specified by MaxRecords" (RDS API Reference,
*API_DescribeDBSnapshots* ``MaxRecords`` / ``Marker``, the same wording on the
other three).  A ``MaxRecords`` outside 20..100 is refused with
``InvalidParameterValue`` (HTTP 400) [moto: snapshots and clusters ignore
both parameters and answer everything in one response; instances page with
moto's generic paginator and accept any ``MaxRecords``].

EC2 ``DescribeSnapshots`` / ``DescribeVolumes``: ``MaxResults`` "can be
between 5 and 1,000 [volumes: 500]; if this value is larger than 1,000, only
1,000 results are returned. If this parameter is not used, then the request
returns all snapshots. You cannot specify this parameter and the snapshot IDs
parameter in the same request" (EC2 API Reference *DescribeSnapshots* /
*DescribeVolumes* ``MaxResults``, as the SDK documentation carries it, e.g.
boto3 1.26 ``ec2.Volume.snapshots``; newer pages only link to *Pagination*)
[moto: ``MaxResults`` and ``NextToken`` ignored, everything in one response].
Refusals: ``MaxResults`` with ids -> ``InvalidParameterCombination`` "The
parameter volumeSet cannot be used with the parameter maxResults" (wording as
AWS answered it, aws/aws-cli#1976; ``snapshotSet`` for snapshots); below 5 ->
``InvalidParameterValue`` "Value ( 1 ) for parameter maxResults is invalid.
Expecting a value greater than 5." (as AWS answered it,
aws/aws-sdk-ruby#2575); a token this layer didn't make ->
``InvalidPaginationToken`` (EC2 API *errors-overview*).  Without
``MaxResults`` and ``NextToken`` nothing changes (moto's answer, all items).

Order: AWS documents none ("Applications should not assume the elements
appear in a particular order"), so pages here are in a fixed order (RDS: by
identifier, then ARN, since shared snapshots of other accounts may repeat an
identifier; EC2: by id) and the token names the last item returned, not an
index: items created or deleted between two pages never make a later page
skip or repeat one that existed throughout.  The token is opaque to clients
(base64 of JSON); the Rust SDK's and boto3's paginators pass it back as is.

Not modelled: AWS may answer fewer than ``MaxResults`` items (even none) with
a ``NextToken`` when filters apply after paging (boto/boto3#1776); here a
page is always full unless it is the last.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Callable, Sequence, TypeVar

T = TypeVar("T")

RDS_MIN_RECORDS, RDS_MAX_RECORDS, RDS_DEFAULT_RECORDS = 20, 100, 100
EC2_MIN_RESULTS = 5
EC2_MAX_RESULTS = {"DescribeSnapshots": 1000, "DescribeVolumes": 500}


class BadToken(ValueError):
    """A Marker / NextToken this layer did not hand out."""


def encode_token(key: Sequence[str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(["sf1", *key]).encode()).decode()


def decode_token(token: str) -> tuple[str, ...]:
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error, UnicodeError):
        raise BadToken(token) from None
    if not isinstance(value, list) or not value or value[0] != "sf1" or not all(isinstance(v, str) for v in value[1:]):
        raise BadToken(token)
    return tuple(value[1:])


def page(items: Sequence[T], key: Callable[[T], tuple[str, ...]], limit: int | None, token: str | None) -> tuple[list[T], str | None]:
    """One page of ``items`` in ``key`` order: those after ``token``'s item, at
    most ``limit`` (None: all the rest), and the token for the next page (None
    when this page is the last)."""
    ordered = sorted(items, key=key)
    start = 0
    if token:
        after = decode_token(token)
        start = next((i for i, item in enumerate(ordered) if key(item) > after), len(ordered))
    end = len(ordered) if limit is None else min(len(ordered), start + limit)
    chunk = ordered[start:end]
    return chunk, (encode_token(key(chunk[-1])) if chunk and end < len(ordered) else None)


# ---------------------------------------------------------------------- RDS
def _rds_error(code: str, message: str) -> Exception:
    from moto.rds.exceptions import RDSClientError

    return RDSClientError(code, message)


def rds_page(params: Any, items: Sequence[T], key: Callable[[T], tuple[str, ...]]) -> tuple[list[T], str | None]:
    """Page ``items`` by the request's ``MaxRecords`` and ``Marker`` (RDS rules, see module doc)."""
    raw = params.get("MaxRecords")
    if raw is None or raw == "":
        limit = RDS_DEFAULT_RECORDS
    else:
        try:
            limit = int(raw)
        except (TypeError, ValueError):
            raise _rds_error("InvalidParameterValue", f"Invalid value {raw} for MaxRecords. Must be between {RDS_MIN_RECORDS} and {RDS_MAX_RECORDS}") from None
        if not RDS_MIN_RECORDS <= limit <= RDS_MAX_RECORDS:
            raise _rds_error("InvalidParameterValue", f"Invalid value {limit} for MaxRecords. Must be between {RDS_MIN_RECORDS} and {RDS_MAX_RECORDS}")
    marker = params.get("Marker") or None
    try:
        return page(items, key, limit, marker)
    except BadToken:
        # RDS documents no code for a bad marker; InvalidParameterValue is its code for a bad parameter value.
        raise _rds_error("InvalidParameterValue", f"The marker {marker} is not valid.") from None


def rds_snapshot_key(snap: Any) -> tuple[str, str]:
    ident = snap.db_cluster_snapshot_identifier if hasattr(snap, "db_cluster_snapshot_identifier") else snap.db_snapshot_identifier
    return (ident, snap.arn)


def rds_instance_key(db: Any) -> tuple[str]:
    return (db.db_instance_identifier,)


def rds_cluster_key(cluster: Any) -> tuple[str]:
    return (cluster.db_cluster_identifier,)


# ---------------------------------------------------------------------- EC2
def _ec2_error(code: str, message: str) -> Exception:
    from moto.ec2.exceptions import EC2ClientError

    return EC2ClientError(code, message)


def ec2_paging_params(operation: str, max_results: Any, next_token: Any, ids: Sequence[str], id_set: str) -> tuple[bool, int | None, str | None]:
    """(paged?, limit, token) of an EC2 Describe request, or the refusal AWS answers."""
    if max_results in (None, "") and not next_token:
        return False, None, None  # unpaged: everything, as moto answers
    limit = None
    if max_results not in (None, ""):
        if ids:
            raise _ec2_error("InvalidParameterCombination", f"The parameter {id_set} cannot be used with the parameter maxResults")
        try:
            limit = int(max_results)
        except (TypeError, ValueError):
            raise _ec2_error("InvalidParameterValue", f"Value ( {max_results} ) for parameter maxResults is invalid.") from None
        if limit < EC2_MIN_RESULTS:
            raise _ec2_error("InvalidParameterValue", f"Value ( {limit} ) for parameter maxResults is invalid. Expecting a value greater than {EC2_MIN_RESULTS}.")
        limit = min(limit, EC2_MAX_RESULTS[operation])  # larger values are capped, not refused
    return True, limit, (next_token or None)


def ec2_page(operation: str, items: Sequence[T], max_results: Any, next_token: Any, ids: Sequence[str], id_set: str) -> tuple[list[T], str | None]:
    paged, limit, token = ec2_paging_params(operation, max_results, next_token, ids, id_set)
    if not paged:
        return list(items), None
    try:
        return page(items, lambda item: (item.id,), limit, token)
    except BadToken:
        raise _ec2_error("InvalidPaginationToken", f"The pagination token '{token}' is invalid.") from None
