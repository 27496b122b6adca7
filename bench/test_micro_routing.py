"""Micro-benchmarks of the hot paths after parsing: routing, shard ingest, detection.

Run with ``make bench`` (``pytest bench --benchmark-only``). Inputs are real
parser output: one 10k-line generated batch (8 services x 20 endpoints), parsed
once per module. ``extra_info["rows_per_s"]`` is derived from the mean.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from rates import record_rate

from harness import peers
from harness.payload import build_payload
from logpipe import routing
from logpipe.detector import DetectorConfig, DetectorCore
from logpipe.parse import ParseOptions, parse_batch
from logpipe.shard import ShardCore
from logpipe.windows import PaneAggregate, WindowSpec, aggregate_table

WINDOW = WindowSpec(10_000, 1_000)


@pytest.fixture(scope="module")
def batches() -> list[Any]:
    """Ten consecutive 10k-line batches of the generator's combined lines."""
    return build_payload(peers.best_scenario(100_000, 1, batch_lines=10_000).generator).batches


@pytest.fixture(scope="module")
def tables(batches: list[Any]) -> list[pa.Table]:
    return [parse_batch(b, ParseOptions())[1] for b in batches]


@pytest.fixture(scope="module")
def records(batches: list[Any]) -> list[dict[str, Any]]:
    out = parse_batch(batches[0], ParseOptions(strategy="regex"))[1]
    assert isinstance(out, list)
    return out


@pytest.mark.parametrize(
    ("strategy", "shards"),
    [("single", 1), ("by_service", 2), ("by_service", 4), ("by_endpoint", 4), ("round_robin", 4)],
)
def test_split_table(benchmark: Any, tables: list[pa.Table], strategy: str, shards: int) -> None:
    table = tables[0]
    parts = benchmark(routing.split, table, strategy, shards, 0)
    assert sum(p.num_rows for p in parts) == table.num_rows
    record_rate(benchmark, "rows", table.num_rows)


def test_split_records_naive(benchmark: Any, records: list[dict[str, Any]]) -> None:
    """The regex strategy's dict records, as the naive pipeline routes them."""
    parts = benchmark(routing.split, records, "by_service", 4, 0)
    assert sum(len(p) for p in parts) == len(records)
    record_rate(benchmark, "rows", len(records))


def test_shard_ingest_and_close(benchmark: Any, batches: list[Any], tables: list[Any]) -> None:
    """A fresh shard ingests ten batches (about 10 panes close) and flushes the rest."""

    def run() -> int:
        core = ShardCore(0, WINDOW)
        closed = []
        for b, t in zip(batches, tables):
            closed += core.ingest(b.batch_id, b.meta.first_event_ms, b.meta.last_event_ms, t)
        closed += core.flush()
        return sum(p.lines for p in closed)

    rows = sum(t.num_rows for t in tables)
    assert benchmark.pedantic(run, rounds=5, warmup_rounds=1) == rows
    record_rate(benchmark, "rows", rows)


@pytest.fixture(scope="module")
def panes(tables: list[pa.Table]) -> list[PaneAggregate]:
    merged = pa.concat_tables(tables)
    return [agg for _, agg in sorted(aggregate_table(merged, WINDOW.pane_ms).items())]


@pytest.mark.parametrize("shards", [1, 4])
def test_detector_submit(benchmark: Any, panes: list[PaneAggregate], shards: int) -> None:
    """Every pane from every shard: one window slide and rule evaluation per pane."""

    def run() -> int:
        core = DetectorCore(DetectorConfig(), WINDOW, shards)
        for p in panes:
            for s in range(shards):
                core.submit(s, p, p.pane)
        core.flush()
        return core.panes_completed

    assert benchmark.pedantic(run, rounds=5, warmup_rounds=1) == len(panes)
    record_rate(benchmark, "panes", len(panes))
