"""The exact reference: per-pane counts, quantiles and user counts in plain Python.

Tests compare the vectorized aggregates of :mod:`logpipe.windows` (and the
sketches inside them) against these answers. Rows are dicts of ``PARSED_SCHEMA``
fields; nulls are handled exactly as :func:`logpipe.windows.aggregate_table`
handles them (see that module's docstring).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from logpipe.schema import DEFAULT_SERVICE, DIM_ENDPOINT, DIM_SERVICE, endpoint_key
from logpipe.windows import COUNT_FIELDS, DENIED_STATUSES, NULL_ENDPOINT, NULL_USER


def reference_rows(tables_or_rows: Any) -> list[dict[str, Any]]:
    """Flatten a table, a row dict, or (nested) iterables of them into row dicts."""
    if isinstance(tables_or_rows, pa.Table):
        return tables_or_rows.to_pylist()
    if isinstance(tables_or_rows, dict):
        return [tables_or_rows]
    rows: list[dict[str, Any]] = []
    for item in tables_or_rows:
        rows.extend(reference_rows(item))
    return rows


def reference_user(row: dict[str, Any]) -> str:
    """The user key of a row: ``user``, else ``ip``, else ``"-"``."""
    user = row.get("user")
    if user is None or user in (NULL_USER, ""):
        ip = row.get("ip")
        return NULL_USER if ip is None else ip
    return str(user)


def reference_counts(tables_or_rows: Any, pane_ms: int) -> dict[int, dict[str, Any]]:
    """Exact per-pane counts in plain Python, shaped like ``PaneAggregate.counts()``."""
    out: dict[int, dict[str, Any]] = {}
    for row in reference_rows(tables_or_rows):
        pane = row["event_ms"] // pane_ms
        svc = DEFAULT_SERVICE if row.get("service") is None else row["service"]
        ep = NULL_ENDPOINT if row.get("endpoint") is None else row["endpoint"]
        status = row.get("status") or 0
        agg = out.setdefault(pane, {"lines": 0, DIM_SERVICE: {}, DIM_ENDPOINT: {}})
        agg["lines"] += 1
        for dim, key in ((DIM_SERVICE, svc), (DIM_ENDPOINT, endpoint_key(svc, ep))):
            c = agg[dim].setdefault(key, dict.fromkeys(COUNT_FIELDS, 0))
            c["requests"] += 1
            c["status_4xx"] += 400 <= status < 500
            c["status_5xx"] += 500 <= status < 600
            c["denied"] += status in DENIED_STATUSES
            c["bytes"] += row.get("bytes") or 0
    for agg in out.values():
        for dim in (DIM_SERVICE, DIM_ENDPOINT):
            agg[dim] = dict(sorted(agg[dim].items()))
    return out


def reference_quantile(values: Iterable[float], q: float) -> float:
    """Exact lower quantile: the sorted value at rank ``floor(q * (n - 1))``."""
    ordered = sorted(v for v in values if v is not None and math.isfinite(v))
    if not ordered:
        return math.nan
    return ordered[math.floor(q * (len(ordered) - 1))]


def reference_distinct_users(rows: Iterable[dict[str, Any]]) -> int:
    """Exact number of distinct user keys."""
    return len({reference_user(r) for r in rows})


def reference_user_counts(rows: Iterable[dict[str, Any]], denied_only: bool = False) -> dict:
    """Exact requests (or 401/403 responses) per user key."""
    counts: dict[str, int] = {}
    for r in rows:
        if not denied_only or r.get("status") in DENIED_STATUSES:
            key = reference_user(r)
            counts[key] = counts.get(key, 0) + 1
    return counts


def reference_top_users(
    rows: Iterable[dict[str, Any]], n: int, denied_only: bool = False
) -> list[tuple[str, int]]:
    """Exact top ``n`` users, descending, ties broken by key."""
    counts = reference_user_counts(rows, denied_only)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
