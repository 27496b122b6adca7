"""Micro-benchmarks: pane aggregation, window slides, sketch merges and updates.

Run with ``make bench`` (``pytest bench --benchmark-only``). The workload is one
10k-row parsed table: 8 services x 20 endpoints, users Zipf-distributed over 10k
ids, all in one 1 s pane. ``extra_info["rows_per_s"]`` is derived from the mean.
The ``*_python_loop`` cases are the per-value Python equivalent of the numpy
updates: the floor for a library that takes one value per call.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from rates import record_rate

from logpipe.hashing import hash_strings
from logpipe.heavy_hitters import HeavyHitters
from logpipe.schema import PARSED_SCHEMA
from logpipe.sketches import DistinctSketch, QuantileSketch
from logpipe.sliding import SlidingWindow
from logpipe.windows import PaneAggregate, WindowSpec, aggregate_records, aggregate_table

ROWS = 10_000
PANE_MS = 1_000
T0_MS = 1_700_000_000_000  # a whole second: the table is exactly one pane


def make_table(n: int = ROWS, seed: int = 0, span_ms: int = PANE_MS) -> pa.Table:
    """A parsed table shaped like the generator's output."""
    rng = np.random.default_rng(seed)
    users = np.minimum(rng.zipf(1.3, n), 10_000) - 1
    status = rng.choice([200, 200, 200, 201, 304, 401, 403, 404, 500, 503], n).astype(np.int16)
    svc = np.array([f"svc{i}" for i in range(8)], dtype=object)[rng.integers(0, 8, n)]
    ep = np.array([f"/api/v1/res{i}/{{id}}" for i in range(20)], dtype=object)
    user_names = np.array([f"user{i}" for i in range(10_000)], dtype=object)
    columns = {
        "ip": [f"10.0.{u % 256}.{u // 256}" for u in users.tolist()],
        "user": np.where(users % 10 == 0, "-", user_names[users]),
        "event_ms": T0_MS + np.sort(rng.integers(0, span_ms, n)),
        "method": ["GET"] * n,
        "path": ["/api"] * n,
        "protocol": ["HTTP/1.1"] * n,
        "status": status,
        "bytes": rng.integers(0, 50_000, n),
        "referer": ["-"] * n,
        "user_agent": ["curl/8"] * n,
        "latency_s": rng.lognormal(-3.0, 1.0, n),
        "service": svc,
        "endpoint": ep[rng.integers(0, 20, n)],
        "status_class": (status // 100).astype(np.int8),
    }
    return pa.table({k: pa.array(v) for k, v in columns.items()}, schema=PARSED_SCHEMA)


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return make_table()


@pytest.fixture(scope="module")
def pane(table: pa.Table) -> PaneAggregate:
    (agg,) = aggregate_table(table, PANE_MS).values()
    return agg


def test_aggregate_table(benchmark: Any, table: pa.Table) -> None:
    out = benchmark(aggregate_table, table, PANE_MS)
    assert sum(a.lines for a in out.values()) == ROWS
    record_rate(benchmark, "rows", ROWS)


def test_aggregate_table_two_panes(benchmark: Any) -> None:
    table = make_table(span_ms=2 * PANE_MS)
    out = benchmark(aggregate_table, table, PANE_MS)
    assert len(out) == 2
    record_rate(benchmark, "rows", ROWS)


def test_aggregate_records_naive(benchmark: Any, table: pa.Table) -> None:
    records = table.to_pylist()
    out = benchmark(aggregate_records, records, PANE_MS)
    assert sum(a.lines for a in out.values()) == ROWS
    record_rate(benchmark, "rows", ROWS)


def test_pane_merge(benchmark: Any, pane: PaneAggregate) -> None:
    """A shard folding a second batch's partial into an open pane."""

    def merge() -> PaneAggregate:
        acc = pane.copy()
        acc.merge(pane)
        return acc

    assert benchmark(merge).lines == 2 * pane.lines


@pytest.mark.parametrize("panes_per_window", [5, 60])
def test_window_push(benchmark: Any, pane: PaneAggregate, panes_per_window: int) -> None:
    """One slide of a window over panes like ``pane`` (merge per push, no rescans)."""
    window = SlidingWindow(WindowSpec(panes_per_window * PANE_MS, PANE_MS))
    counter = iter(range(10**9))
    for _ in range(panes_per_window):
        window.push(dataclasses.replace(pane, pane=next(counter)))

    def push() -> int:
        return window.push(dataclasses.replace(pane, pane=next(counter))).lines

    assert benchmark(push) == panes_per_window * pane.lines


def _merge_bench(benchmark: Any, a: Any, b: Any) -> None:
    def merge() -> Any:
        acc = a.copy()
        acc.merge(b)
        return acc

    benchmark(merge)


def test_merge_quantile(benchmark: Any) -> None:
    rng = np.random.default_rng(1)
    a, b = QuantileSketch(), QuantileSketch()
    a.update(rng.lognormal(-3, 1, 10_000))
    b.update(rng.lognormal(-3, 1, 10_000))
    _merge_bench(benchmark, a, b)


def test_merge_distinct_dense(benchmark: Any) -> None:
    rng = np.random.default_rng(2)
    a, b = DistinctSketch(), DistinctSketch()
    a.update_hashes(rng.integers(0, 2**64, 10_000, dtype=np.uint64))
    b.update_hashes(rng.integers(0, 2**64, 10_000, dtype=np.uint64))
    _merge_bench(benchmark, a, b)


def test_merge_heavy_hitters(benchmark: Any) -> None:
    rng = np.random.default_rng(3)
    a, b = HeavyHitters(64), HeavyHitters(64)
    a.update([f"u{i}" for i in rng.zipf(1.3, 10_000).tolist()])
    b.update([f"u{i}" for i in rng.zipf(1.3, 10_000).tolist()])
    _merge_bench(benchmark, a, b)


def test_quantile_update_numpy(benchmark: Any) -> None:
    values = np.random.default_rng(4).lognormal(-3, 1, ROWS)
    benchmark(lambda: QuantileSketch().update(values))
    record_rate(benchmark, "rows", ROWS)


def test_quantile_update_python_loop(benchmark: Any) -> None:
    values = np.random.default_rng(4).lognormal(-3, 1, ROWS).tolist()
    ln_gamma = math.log(1.01 / 0.99)

    def update() -> dict[int, int]:
        bins: dict[int, int] = {}
        for v in values:
            k = math.ceil(math.log(v) / ln_gamma)
            bins[k] = bins.get(k, 0) + 1
        return bins

    benchmark(update)
    record_rate(benchmark, "rows", ROWS)


def test_distinct_update_numpy(benchmark: Any, table: pa.Table) -> None:
    users = table.column("user")
    benchmark(lambda: DistinctSketch().update_hashes(hash_strings(users)))
    record_rate(benchmark, "rows", ROWS)


def test_distinct_update_python_loop(benchmark: Any, table: pa.Table) -> None:
    import hashlib

    users = table.column("user").to_pylist()

    def update() -> bytearray:
        regs = bytearray(4096)
        for u in users:
            h = int.from_bytes(hashlib.blake2b(u.encode(), digest_size=8).digest(), "little")
            idx, rest = h >> 52, h & ((1 << 52) - 1)
            regs[idx] = max(regs[idx], 53 - rest.bit_length())
        return regs

    benchmark(update)
    record_rate(benchmark, "rows", ROWS)
