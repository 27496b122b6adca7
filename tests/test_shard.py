"""Shard logic without Ray: panes close by watermark, dedupe, and every sharding
strategy merges to the same answer as a single-process reference."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from factories import parsed_stream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logpipe.reference import reference_counts, reference_distinct_users, reference_quantile
from logpipe.routing import split
from logpipe.shard import ShardCore, merge_totals
from logpipe.windows import (
    AGGREGATED_COLUMNS,
    PaneAggregate,
    WindowSpec,
    aggregate_table,
)

WINDOW = WindowSpec(4_000, 1_000)


stream = parsed_stream


def run_shards(parsed, strategy: str, n: int) -> tuple[list[ShardCore], dict[int, PaneAggregate]]:
    shards = [ShardCore(i, WINDOW) for i in range(n)]
    merged: dict[int, PaneAggregate] = {}
    closed_by_shard: list[list[int]] = [[] for _ in range(n)]

    def take(i: int, panes: list[PaneAggregate]) -> None:
        for p in panes:
            closed_by_shard[i].append(p.pane)
            if p.pane in merged:
                merged[p.pane].merge(p)
            else:
                merged[p.pane] = p.copy()

    for batch, table in parsed:
        outs = split(table, strategy, n, batch.meta.batch_id)
        for i, (shard, out) in enumerate(zip(shards, outs)):
            m = batch.meta
            take(i, shard.ingest(m.batch_id, m.first_event_ms, m.last_event_ms, out))
    for i, shard in enumerate(shards):
        take(i, shard.flush())
    # Every shard closes exactly the same panes, consecutively.
    assert all(c == closed_by_shard[0] for c in closed_by_shard)
    assert closed_by_shard[0] == list(range(closed_by_shard[0][0], closed_by_shard[0][-1] + 1))
    # Each pane names the one closed before it (the detector's ordering key).
    closed = closed_by_shard[0]
    assert all([s.prev_pane(p) for p in closed] == [None, *closed[:-1]] for s in shards)
    return shards, merged


CASES = [("single", 1)] + [
    (s, n) for s in ("by_service", "by_endpoint", "round_robin") for n in (1, 2, 4)
]


@pytest.mark.parametrize(("strategy", "n"), CASES)
def test_every_strategy_matches_the_reference(strategy: str, n: int) -> None:
    parsed = stream(seed=3)
    tables = [t for _, t in parsed]
    shards, merged = run_shards(parsed, strategy, n)
    ref = reference_counts(tables, WINDOW.pane_ms)
    for pane, agg in merged.items():
        want = ref.get(pane, {"lines": 0, "service": {}, "endpoint": {}})
        assert agg.counts() == want, pane
    rows = pa.concat_tables(tables).to_pylist()
    totals = merge_totals([s.state.totals for s in shards])
    assert sum(v["requests"] for v in totals["service"].values()) == len(rows)
    assert sum(s.state.rows for s in shards) == len(rows)


def test_sketches_within_their_stated_bounds_after_merging_shards() -> None:
    parsed = stream(seed=5)
    rows = pa.concat_tables([t for _, t in parsed]).to_pylist()
    _, merged = run_shards(parsed, "round_robin", 4)
    pane = sorted(merged)[2]
    in_pane = [r for r in rows if r["event_ms"] // 1000 == pane]
    by_service: dict[str, list[dict]] = {}
    for r in in_pane:
        by_service.setdefault(r["service"], []).append(r)
    for svc, svc_rows in by_service.items():
        stats = merged[pane].services[svc]
        exact = reference_quantile([r["latency_s"] for r in svc_rows], 0.95)
        got = stats.latency.quantile(0.95)
        assert got == pytest.approx(exact, rel=stats.latency.rel_accuracy * 1.01 + 1e-9)
        distinct = reference_distinct_users(svc_rows)
        err = stats.users.standard_error()
        assert abs(stats.users.estimate() - distinct) <= max(2, 4 * err * distinct)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    strategy=st.sampled_from(["by_service", "by_endpoint", "round_robin"]),
    n=st.integers(1, 4),
    json_fraction=st.sampled_from([0.0, 0.5]),
)
def test_property_strategies_agree_with_single(seed, strategy, n, json_fraction) -> None:
    parsed = stream(seed, seconds=3.0, rate_lps=2_000, json_fraction=json_fraction)
    _, single = run_shards(parsed, "single", 1)
    _, sharded = run_shards(parsed, strategy, n)
    assert sorted(single) == sorted(sharded)
    for pane in single:
        assert single[pane].counts() == sharded[pane].counts()
        for svc, stats in single[pane].services.items():
            other = sharded[pane].services[svc]
            # Quantile buckets and HLL registers merge exactly.
            assert stats.latency.quantile(0.99) == other.latency.quantile(0.99)
            assert stats.users.estimate() == other.users.estimate()


@pytest.mark.parametrize("project", [False, True])
def test_batches_straddling_pane_ends_close_the_same_panes(project: bool) -> None:
    # Rows out of event order inside each batch, so most batches straddle a pane end
    # and a closing pane takes some tables whole and filters others.
    parsed = stream(seed=3, seconds=5.0)
    rng = np.random.default_rng(3)
    shuffled = []
    for batch, table in parsed:
        table = table.take(pa.array(rng.permutation(table.num_rows)))
        shuffled.append((batch, table.select(list(AGGREGATED_COLUMNS)) if project else table))
    core = ShardCore(0, WINDOW)
    closed: dict[int, PaneAggregate] = {}
    for batch, table in shuffled:
        m = batch.meta
        for agg in core.ingest(m.batch_id, m.first_event_ms, m.last_event_ms, table):
            closed[agg.pane] = agg
    for agg in core.flush():
        closed[agg.pane] = agg
    whole = aggregate_table(pa.concat_tables(t for _, t in shuffled), WINDOW.pane_ms)
    assert closed.keys() >= whole.keys()
    for pane, agg in whole.items():
        assert closed[pane] == agg
    assert core.state.buffered == [] and core.state.late_rows == 0


def test_redelivered_batch_counts_once() -> None:
    parsed = stream(seed=1, seconds=2.0)
    core = ShardCore(0, WINDOW)
    batch, table = parsed[0]
    m = batch.meta
    core.ingest(m.batch_id, m.first_event_ms, m.last_event_ms, table)
    core.ingest(m.batch_id, m.first_event_ms, m.last_event_ms, table)
    assert core.state.rows == table.num_rows
    assert core.state.duplicates == 1


def test_panes_close_only_when_the_watermark_passes_their_end() -> None:
    core = ShardCore(0, WINDOW)
    empty = pa.table({})  # no rows: a shard that got nothing from this batch
    assert core.ingest(0, 10_000, 10_999, []) == []
    closed = core.ingest(1, 11_000, 11_000, [])
    assert [p.pane for p in closed] == [10]
    closed = core.ingest(2, 11_001, 13_500, [])
    assert [p.pane for p in closed] == [11, 12]
    assert all(p.lines == 0 for p in closed)
    assert [p.pane for p in core.flush()] == [13]
    assert empty.num_rows == 0


def test_late_rows_count_in_totals_but_not_in_closed_panes() -> None:
    parsed = stream(seed=2, seconds=4.0)
    core = ShardCore(0, WINDOW)
    batch, table = parsed[-1]
    m = batch.meta
    core.ingest(m.batch_id, m.first_event_ms, m.last_event_ms, table)
    # An old batch arrives after its panes closed (e.g. an unsorted replay file).
    old_batch, old_table = parsed[0]
    core.ingest(99, old_batch.meta.first_event_ms, old_batch.meta.last_event_ms, old_table)
    assert core.state.late_rows == old_table.num_rows
    assert core.state.rows == table.num_rows + old_table.num_rows
    assert not math.isnan(core.state.rows)


class _OneShot:
    """A stall hook with state, like the harness's: it fires once."""

    def __init__(self) -> None:
        self.fired = False

    def __call__(self, first_event_ms: int, last_event_ms: int) -> float:
        fire, self.fired = not self.fired, True
        return 0.5 if fire else 0.0


def test_reset_gives_a_one_shot_stall_hook_back_its_shot(tmp_path) -> None:
    from logpipe.shard import ShardActor
    from logpipe.windows import WindowSpec

    actor = ShardActor(0, WindowSpec(4_000, 1_000), None, None, _OneShot(), str(tmp_path))
    assert actor.stall is not None
    assert actor.stall(0, 1) == 0.5 and actor.stall(0, 1) == 0.0  # fired once
    actor.reset()
    # A reset actor stalls again, as a new one would (the validation's stall arm
    # runs several replicates on one set of actors).
    assert actor.stall(0, 1) == 0.5 and actor.stall(0, 1) == 0.0
    actor.reset()
    assert actor.stall(0, 1) == 0.5


def test_heap_copy_is_equal_and_shares_no_buffer_with_its_input() -> None:
    from logpipe.shard import heap_copy

    _, table = parsed_stream(seed=4, seconds=1.0)[0]
    sliced = table.slice(100, 300)  # a slice keeps its parent's buffers
    for original in (table, sliced):
        copy = heap_copy(original)
        assert copy.equals(original)
        mine = {b.address for col in copy.columns for ch in col.chunks for b in ch.buffers() if b}
        theirs = {
            b.address for col in original.columns for ch in col.chunks for b in ch.buffers() if b
        }
        assert not mine & theirs
    assert heap_copy(sliced).get_total_buffer_size() < table.get_total_buffer_size()
