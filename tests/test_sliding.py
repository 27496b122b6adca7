"""Sliding windows against a brute-force merge of their panes and the exact reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from parsed_rows import parsed_table, rows_strategy

from logpipe.reference import reference_counts, reference_user_counts
from logpipe.sketches import merge_all
from logpipe.sliding import SlidingWindow
from logpipe.windows import PaneAggregate, SketchConfig, WindowSpec, aggregate_table

PANE_MS = 1_000
EXACT = SketchConfig(heavy_hitters=1_000)  # capacity above any test's distinct users


@settings(max_examples=25, deadline=None)
@given(
    rows_strategy,
    st.integers(1, 4),
    st.lists(st.integers(0, 12), min_size=1, max_size=10, unique=True),
)
def test_sliding_window_equals_brute_force(
    rows: list[dict[str, Any]], k: int, extra_panes: list[int]
) -> None:
    aggs = aggregate_table(parsed_table(rows), PANE_MS, EXACT)
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
        view = window.push(aggregate_table(parsed_table(rows_by_pane[p]), PANE_MS, cfg)[p])
        window_rows = [r for q in range(max(0, p - 4), p + 1) for r in rows_by_pane[q]]
        truth = reference_user_counts(window_rows)
        bound = view.users.error_bound()
        assert view.users.total == len(window_rows) and bound <= len(window_rows) / 4
        for user, count in truth.items():
            assert count - bound <= view.users.estimate(user) <= count
        assert view.users.top(1)[0][0] == "heavy"
