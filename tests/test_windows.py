"""Pane aggregation against the exact reference, and sliding windows by brute force."""

from __future__ import annotations

import pickle
from itertools import pairwise
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from parsed_rows import parsed_table, rows_strategy

from logpipe.reference import (
    reference_counts,
    reference_distinct_users,
    reference_quantile,
    reference_top_users,
    reference_user_counts,
)
from logpipe.schema import DEFAULT_SERVICE, endpoint_key
from logpipe.windows import (
    AGGREGATED_COLUMNS,
    PaneAggregate,
    SketchConfig,
    WindowSpec,
    aggregate_records,
    aggregate_table,
    closable_panes,
    pane_closed,
)

PANE_MS = 1_000
EXACT = SketchConfig(heavy_hitters=1_000)  # capacity above any test's distinct users


def _counts(aggs: dict[int, PaneAggregate]) -> dict[int, dict[str, Any]]:
    return {p: a.counts() for p, a in aggs.items()}


def _merge_panes(parts: list[dict[int, PaneAggregate]]) -> dict[int, PaneAggregate]:
    out: dict[int, PaneAggregate] = {}
    for part in parts:
        for p, agg in part.items():
            if p in out:
                out[p].merge(agg)
            else:
                out[p] = agg.copy()
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------- aggregation


@settings(max_examples=50, deadline=None)
@given(rows_strategy)
def test_aggregate_counts_match_reference(rows: list[dict[str, Any]]) -> None:
    aggs = aggregate_table(parsed_table(rows), PANE_MS)
    assert _counts(aggs) == reference_counts(rows, PANE_MS)
    assert sum(a.lines for a in aggs.values()) == len(rows)
    assert all(p == a.pane for p, a in aggs.items())


@settings(max_examples=40, deadline=None)
@given(rows_strategy, st.lists(st.integers(0, 120), max_size=4))
def test_split_and_merge_equals_whole(rows: list[dict[str, Any]], cuts: list[int]) -> None:
    table = parsed_table(rows)
    bounds = sorted({0, len(rows), *[min(c, len(rows)) for c in cuts]})
    parts = [
        aggregate_table(table.slice(lo, hi - lo), PANE_MS, EXACT) for lo, hi in pairwise(bounds)
    ]
    assert _merge_panes(parts) == aggregate_table(table, PANE_MS, EXACT)
    assert _merge_panes(parts[::-1]) == aggregate_table(table, PANE_MS, EXACT)


@settings(max_examples=30, deadline=None)
@given(rows_strategy)
def test_aggregated_columns_are_all_aggregation_reads(rows: list[dict[str, Any]]) -> None:
    # The parse task sends shards only AGGREGATED_COLUMNS: nothing else may matter.
    table = parsed_table(rows)
    projected = table.select(list(AGGREGATED_COLUMNS))
    assert aggregate_table(projected, PANE_MS, EXACT) == aggregate_table(table, PANE_MS, EXACT)


@settings(max_examples=30, deadline=None)
@given(rows_strategy)
def test_aggregate_records_equals_aggregate_table(rows: list[dict[str, Any]]) -> None:
    records = [{**r, "method": "GET", "path": "/x", "status_class": None} for r in rows]
    assert aggregate_records(records, PANE_MS) == aggregate_table(parsed_table(records), PANE_MS)


def test_sketches_in_aggregates_match_exact_answers() -> None:
    rng = np.random.default_rng(11)
    n = 3_000
    rows = [
        {
            "ip": f"10.0.0.{i % 7}",
            "user": "-" if i % 5 == 0 else f"user{int(u)}",
            "event_ms": int(t),
            "status": int(s),
            "bytes": 100,
            "latency_s": float(lat),
            "service": "api",
            "endpoint": "/users/{id}" if i % 2 else "/",
        }
        for i, (u, t, s, lat) in enumerate(
            zip(
                rng.zipf(1.5, n) % 500,
                rng.integers(0, PANE_MS, n),
                rng.choice([200, 401, 403, 500], n),
                rng.lognormal(-2, 1, n),
            )
        )
    ]
    (agg,) = aggregate_table(parsed_table(rows), PANE_MS).values()
    svc = agg.services["api"]
    for q in (0.5, 0.9, 0.99):
        exact = reference_quantile([r["latency_s"] for r in rows], q)
        assert abs(svc.latency.quantile(q) - exact) <= 0.01 * exact * (1 + 1e-9)
    distinct = reference_distinct_users(rows)
    assert abs(svc.users.estimate() - distinct) <= 3 * svc.users.standard_error() * distinct
    ((top_user, top_count),) = reference_top_users(rows, 1)
    assert agg.users.top(1)[0][0] == top_user
    assert top_count - agg.users.error_bound() <= agg.users.estimate(top_user) <= top_count
    truth = reference_user_counts(rows, denied_only=True)
    for user, count in truth.items():
        est = agg.denied_users.estimate(user)
        assert count - agg.denied_users.error_bound() <= est <= count
    ep = agg.endpoints[endpoint_key("api", "/")]
    assert ep.requests == sum(1 for r in rows if r["endpoint"] == "/")


@settings(max_examples=20, deadline=None)
@given(rows_strategy, st.integers(0, 120))
def test_chunked_and_dictionary_columns_aggregate_alike(
    rows: list[dict[str, Any]], cut: int
) -> None:
    table = parsed_table(rows)
    chunked = pa.concat_tables([table.slice(0, cut), table.slice(cut)])
    encoded = table.set_column(
        table.schema.get_field_index("service"),
        "service",
        table.column("service").dictionary_encode(),
    )
    whole = aggregate_table(table, PANE_MS)
    assert aggregate_table(chunked, PANE_MS) == whole
    assert aggregate_table(encoded, PANE_MS) == whole


def test_user_key_falls_back_to_ip() -> None:
    rows = [
        {"ip": "1.1.1.1", "user": None, "event_ms": 0, "status": 200},
        {"ip": "1.1.1.1", "user": "-", "event_ms": 0, "status": 401},
        {"ip": "2.2.2.2", "user": "", "event_ms": 0, "status": 403},
        {"ip": None, "user": None, "event_ms": 0, "status": 200},
        {"ip": "3.3.3.3", "user": "dave", "event_ms": 0, "status": 200},
    ]
    (agg,) = aggregate_table(parsed_table(rows), PANE_MS).values()
    assert agg.users.counters == {"1.1.1.1": 2, "2.2.2.2": 1, "-": 1, "dave": 1}
    assert agg.denied_users.counters == {"1.1.1.1": 1, "2.2.2.2": 1}
    assert set(agg.services) == {DEFAULT_SERVICE}
    assert set(agg.endpoints) == {endpoint_key(DEFAULT_SERVICE, "-")}


def test_edge_cases_empty_null_event_time_and_pickle() -> None:
    assert aggregate_table(parsed_table([]), PANE_MS) == {}
    assert aggregate_records([], PANE_MS) == {}
    with pytest.raises(ValueError, match=r"^event_ms:"):
        aggregate_table(parsed_table([{"event_ms": None}]), PANE_MS)
    rows = [{"event_ms": 1_500, "service": "api", "endpoint": "/", "latency_s": 0.2}]
    aggs = aggregate_table(parsed_table(rows), PANE_MS)
    assert list(aggs) == [1]
    assert pickle.loads(pickle.dumps(aggs)) == aggs
    with pytest.raises(ValueError, match=r"^sketches\.heavy_hitters:"):
        SketchConfig(heavy_hitters=0)


# --------------------------------------------------------------------------- windows


@pytest.mark.parametrize(
    ("size", "slide", "message"),
    [
        (0, 1_000, r"^windows\.size_ms: must be positive"),
        (5_000, -1_000, r"^windows\.slide_ms: must be positive"),
        (5_000, 1_500, r"^windows\.slide_ms: must be a multiple of 1000"),
        (5_000, 2_000, r"^windows\.size_ms: must be a multiple of slide_ms"),
        (5_000.0, 1_000, r"^windows\.size_ms: must be an integer"),
        (True, 1_000, r"^windows\.size_ms: must be an integer"),
    ],
)
def test_window_spec_validation(size: Any, slide: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WindowSpec(size, slide)


def test_window_spec_panes() -> None:
    spec = WindowSpec(60_000, 5_000)
    assert (spec.pane_ms, spec.panes_per_window) == (5_000, 12)


def test_pane_closing_rule() -> None:
    assert not pane_closed(3, 3_999, 1_000)
    assert pane_closed(3, 4_000, 1_000)
    assert pane_closed(-1, 0, 1_000) and not pane_closed(0, 999, 1_000)
    assert closable_panes({5, 2, 3, 9}, 6_000, 1_000) == [2, 3, 5]
    assert closable_panes([], 10**9, 1_000) == []
