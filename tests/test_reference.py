"""The exact reference on hand-checked rows: user key, counts, quantiles, top users."""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa

from logpipe.reference import (
    reference_counts,
    reference_distinct_users,
    reference_quantile,
    reference_rows,
    reference_top_users,
    reference_user,
    reference_user_counts,
)
from logpipe.schema import DEFAULT_SERVICE, DIM_ENDPOINT, DIM_SERVICE, PARSED_SCHEMA, endpoint_key

PANE_MS = 1_000


def test_reference_rows_accepts_tables_rows_and_nests() -> None:
    rows = [{"event_ms": 1, "service": "a"}, {"event_ms": 2, "service": "b"}]
    mixed = [pa.Table.from_pylist(rows[:1], schema=PARSED_SCHEMA), [rows[1]]]
    assert [r["event_ms"] for r in reference_rows(mixed)] == [1, 2]
    assert reference_rows(rows[0]) == [rows[0]]
    assert reference_counts(mixed, PANE_MS) == reference_counts(rows, PANE_MS)


def test_user_key_falls_back_to_ip_then_dash() -> None:
    rows = [
        {"ip": "1.1.1.1", "user": None},
        {"ip": "1.1.1.1", "user": "-"},
        {"ip": "2.2.2.2", "user": ""},
        {"ip": None, "user": None},
        {"ip": "3.3.3.3", "user": "dave"},
    ]
    assert [reference_user(r) for r in rows] == ["1.1.1.1", "1.1.1.1", "2.2.2.2", "-", "dave"]
    assert reference_distinct_users(rows) == 4


def test_counts_per_pane_with_nulls() -> None:
    rows = [
        {"event_ms": 100, "service": "api", "endpoint": "/a", "status": 503, "bytes": 10},
        {"event_ms": 900, "service": "api", "endpoint": "/a", "status": 401, "bytes": None},
        {"event_ms": 1_000, "service": None, "endpoint": None, "status": None, "bytes": 7},
    ]
    counts = reference_counts(rows, PANE_MS)
    assert sorted(counts) == [0, 1]
    api = counts[0][DIM_SERVICE]["api"]
    assert api == {"requests": 2, "status_4xx": 1, "status_5xx": 1, "denied": 1, "bytes": 10}
    assert counts[0]["lines"] == 2
    assert counts[0][DIM_ENDPOINT][endpoint_key("api", "/a")] == api
    default = counts[1][DIM_SERVICE][DEFAULT_SERVICE]
    assert default == {"requests": 1, "status_4xx": 0, "status_5xx": 0, "denied": 0, "bytes": 7}
    assert list(counts[1][DIM_ENDPOINT]) == [endpoint_key(DEFAULT_SERVICE, "-")]


def test_quantile_is_the_lower_quantile_of_finite_values() -> None:
    values: list[Any] = [4.0, None, 1.0, math.nan, 3.0, math.inf, 2.0]
    assert reference_quantile(values, 0.0) == 1.0
    assert reference_quantile(values, 0.5) == 2.0  # rank floor(1.5)
    assert reference_quantile(values, 1.0) == 4.0
    assert math.isnan(reference_quantile([], 0.5))


def test_user_counts_and_top_users_break_ties_by_key() -> None:
    rows = [
        {"user": "b", "status": 200},
        {"user": "a", "status": 403},
        {"user": "b", "status": 401},
        {"user": "a", "status": 200},
        {"user": "c", "status": 500},
    ]
    assert reference_user_counts(rows) == {"b": 2, "a": 2, "c": 1}
    assert reference_user_counts(rows, denied_only=True) == {"a": 1, "b": 1}
    assert reference_top_users(rows, 2) == [("a", 2), ("b", 2)]
    assert reference_top_users(rows, 1, denied_only=True) == [("a", 1)]
