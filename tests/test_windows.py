"""Pane aggregation against the exact reference, and sliding windows by brute force."""

from __future__ import annotations

import math
import pickle
from itertools import pairwise
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logpipe.reference import (
    reference_counts,
    reference_distinct_users,
    reference_quantile,
    reference_top_users,
    reference_user_counts,
)
from logpipe.schema import DEFAULT_SERVICE, PARSED_SCHEMA, endpoint_key
from logpipe.sketches import merge_all
from logpipe.windows import (
    AGGREGATED_COLUMNS,
    PaneAggregate,
    SketchConfig,
    SlidingWindow,
    WindowSpec,
    aggregate_records,
    aggregate_table,
    closable_panes,
    pane_closed,
)

PANE_MS = 1_000
EXACT = SketchConfig(heavy_hitters=1_000)  # capacity above any test's distinct users

rows_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "ip": st.sampled_from(["10.0.0.1", "10.0.0.2", "", None]),
            "user": st.sampled_from(["alice", "bob", "carol", "-", "", None]),
            "event_ms": st.integers(-2_500, 6_500),
            "status": st.sampled_from([200, 204, 301, 400, 401, 403, 404, 500, 503, None]),
            "bytes": st.one_of(st.none(), st.integers(0, 10**6)),
            "latency_s": st.one_of(st.none(), st.floats(0.0, 30.0), st.just(math.nan)),
            "service": st.sampled_from(["api", "auth", "shop", None]),
            "endpoint": st.sampled_from(["/", "/users/{id}", "/cart", None]),
        }
    ),
    max_size=120,
)


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=PARSED_SCHEMA)


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
    aggs = aggregate_table(_table(rows), PANE_MS)
    assert _counts(aggs) == reference_counts(rows, PANE_MS)
    assert sum(a.lines for a in aggs.values()) == len(rows)
    assert all(p == a.pane for p, a in aggs.items())


@settings(max_examples=40, deadline=None)
@given(rows_strategy, st.lists(st.integers(0, 120), max_size=4))
def test_split_and_merge_equals_whole(rows: list[dict[str, Any]], cuts: list[int]) -> None:
    table = _table(rows)
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
    table = _table(rows)
    projected = table.select(list(AGGREGATED_COLUMNS))
    assert aggregate_table(projected, PANE_MS, EXACT) == aggregate_table(table, PANE_MS, EXACT)


@settings(max_examples=30, deadline=None)
@given(rows_strategy)
def test_aggregate_records_equals_aggregate_table(rows: list[dict[str, Any]]) -> None:
    records = [{**r, "method": "GET", "path": "/x", "status_class": None} for r in rows]
    assert aggregate_records(records, PANE_MS) == aggregate_table(_table(records), PANE_MS)


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
    (agg,) = aggregate_table(_table(rows), PANE_MS).values()
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
    table = _table(rows)
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
    (agg,) = aggregate_table(_table(rows), PANE_MS).values()
    assert agg.users.counters == {"1.1.1.1": 2, "2.2.2.2": 1, "-": 1, "dave": 1}
    assert agg.denied_users.counters == {"1.1.1.1": 1, "2.2.2.2": 1}
    assert set(agg.services) == {DEFAULT_SERVICE}
    assert set(agg.endpoints) == {endpoint_key(DEFAULT_SERVICE, "-")}


def test_edge_cases_empty_null_event_time_and_pickle() -> None:
    assert aggregate_table(_table([]), PANE_MS) == {}
    assert aggregate_records([], PANE_MS) == {}
    with pytest.raises(ValueError, match=r"^event_ms:"):
        aggregate_table(_table([{"event_ms": None}]), PANE_MS)
    rows = [{"event_ms": 1_500, "service": "api", "endpoint": "/", "latency_s": 0.2}]
    aggs = aggregate_table(_table(rows), PANE_MS)
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


@settings(max_examples=25, deadline=None)
@given(
    rows_strategy,
    st.integers(1, 4),
    st.lists(st.integers(0, 12), min_size=1, max_size=10, unique=True),
)
def test_sliding_window_equals_brute_force(
    rows: list[dict[str, Any]], k: int, extra_panes: list[int]
) -> None:
    aggs = aggregate_table(_table(rows), PANE_MS, EXACT)
    for p in extra_panes:  # gaps and empty panes between the data panes
        aggs.setdefault(p, PaneAggregate.empty(p, EXACT))
    window = SlidingWindow(WindowSpec(k * PANE_MS, PANE_MS), EXACT)
    pushed = {p: aggs[p].copy() for p in aggs}
    for p in sorted(aggs):
        view = window.push(aggs[p])
        inside = [aggs[q] for q in sorted(aggs) if p - k < q <= p]
        expected = merge_all(inside)
        assert (view.start_ms, view.end_ms, view.last_pane) == (
            (p - k + 1) * PANE_MS,
            (p + 1) * PANE_MS,
            p,
        )
        assert view.lines == expected.lines
        assert view.services == expected.services and view.endpoints == expected.endpoints
        assert view.users == expected.users and view.denied_users == expected.denied_users
        window_rows = [r for r in rows if p - k < r["event_ms"] // PANE_MS <= p]
        assert {
            "lines": view.lines,
            "service": {k2: v.counts() for k2, v in sorted(view.services.items())},
            "endpoint": {k2: v.counts() for k2, v in sorted(view.endpoints.items())},
        } == (_window_reference(window_rows))
    assert all(aggs[p] == pushed[p] for p in aggs)  # pushes never mutate their input
    with pytest.raises(ValueError, match=r"^pane:"):
        window.push(PaneAggregate.empty(min(aggs), EXACT))


def _window_reference(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Exact counts of a whole window: the per-pane reference counts, summed."""
    total: dict[str, Any] = {"lines": 0, "service": {}, "endpoint": {}}
    for pane in reference_counts(rows, PANE_MS).values():
        total["lines"] += pane["lines"]
        for dim in ("service", "endpoint"):
            for key, counts in pane[dim].items():
                acc = total[dim].setdefault(key, dict.fromkeys(counts, 0))
                for name, value in counts.items():
                    acc[name] += value
    for dim in ("service", "endpoint"):
        total[dim] = dict(sorted(total[dim].items()))
    return total


def test_sliding_window_bounded_heavy_hitters_over_many_panes() -> None:
    cfg = SketchConfig(heavy_hitters=4)
    window = SlidingWindow(WindowSpec(5_000, 1_000), cfg)
    rng = np.random.default_rng(5)
    rows_by_pane = {}
    for p in range(30):
        users = rng.integers(0, 40, 200)
        rows_by_pane[p] = [
            {"user": f"u{u}", "event_ms": p * PANE_MS, "status": 200} for u in users.tolist()
        ] + [{"user": "heavy", "event_ms": p * PANE_MS, "status": 200}] * 60
        view = window.push(aggregate_table(_table(rows_by_pane[p]), PANE_MS, cfg)[p])
        window_rows = [r for q in range(max(0, p - 4), p + 1) for r in rows_by_pane[q]]
        truth = reference_user_counts(window_rows)
        bound = view.users.error_bound()
        assert view.users.total == len(window_rows) and bound <= len(window_rows) / 4
        for user, count in truth.items():
            assert count - bound <= view.users.estimate(user) <= count
        assert view.users.top(1)[0][0] == "heavy"
