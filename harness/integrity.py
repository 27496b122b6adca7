"""Integrity: every line accounted for, counts exact, alerts neither lost nor doubled.

The exact reference re-parses every batch after the timed window (in Ray tasks,
with bounded in-flight work) and counts rows per shard, per dimension and per
key with ``pyarrow``'s own group-by: an implementation independent of the
pipeline's numpy aggregation, routing transport, deduplication and pane logic.
It shares the parser with the pipeline: parsing correctness is covered by the
parser's tests and the accounting identity, not by this check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import ray

from logpipe.batch import Batch, BatchMeta
from logpipe.parse import ParseOptions, parse_and_route
from logpipe.schema import DIM_ENDPOINT, DIM_SERVICE, PARSED_SCHEMA
from logpipe.shard import Counts, add_counts

T = TypeVar("T")

COUNT_FIELDS = ("requests", "status_4xx", "status_5xx", "denied", "bytes")


def table_counts(output: Any) -> Counts:
    """Exact per-dimension, per-key counts of parsed rows, via pyarrow group-by."""
    table = output if isinstance(output, pa.Table) else _records_table(output)
    if table.num_rows == 0:
        return {}
    status = table["status"]
    klass = table["status_class"]
    table = pa.table(
        {
            DIM_SERVICE: table["service"],
            DIM_ENDPOINT: pc.binary_join_element_wise(table["service"], table["endpoint"], " "),
            "s4": pc.cast(pc.equal(klass, 4), pa.int64()),
            "s5": pc.cast(pc.equal(klass, 5), pa.int64()),
            "den": pc.cast(pc.is_in(status, pa.array([401, 403], pa.int16())), pa.int64()),
            "bytes": table["bytes"],
        }
    )
    out: Counts = {}
    for dim in (DIM_SERVICE, DIM_ENDPOINT):
        grouped = table.group_by(dim).aggregate(
            [("s4", "count"), ("s4", "sum"), ("s5", "sum"), ("den", "sum"), ("bytes", "sum")]
        )
        rows = grouped.to_pydict()
        out[dim] = {
            key: dict(zip(COUNT_FIELDS, (int(n), int(a), int(b), int(c), int(d or 0))))
            for key, n, a, b, c, d in zip(
                rows[dim],
                rows["s4_count"],
                rows["s4_sum"],
                rows["s5_sum"],
                rows["den_sum"],
                rows["bytes_sum"],
            )
        }
    return out


def _records_table(records: Any) -> pa.Table:
    return pa.Table.from_pylist(list(records or []), schema=PARSED_SCHEMA)


def _reference_one(
    batch: Batch, options: ParseOptions, sharding: str, n_shards: int
) -> tuple[list[Counts], pa.Table]:
    # Every column: the group-by below reads status_class, which shards never see.
    _, *outputs = parse_and_route(batch, options, sharding, n_shards, columns=None)
    tables = [o if isinstance(o, pa.Table) else _records_table(o) for o in outputs]
    return [table_counts(t) for t in tables], pa.concat_tables(tables)


_reference_task = ray.remote(_reference_one)


def ordered_map(
    submit: Callable[[T], Any], items: Iterable[T], max_in_flight: int
) -> Iterator[Any]:
    """Submit Ray work per item with bounded in-flight refs; yield results in order."""
    window: list[Any] = []
    for item in items:
        window.append(submit(item))
        if len(window) >= max_in_flight:
            yield ray.get(window.pop(0))
    for ref in window:
        yield ray.get(ref)


@dataclass
class Reference:
    """Exact counts per shard and merged, computed once per payload."""

    per_shard: list[Counts] = field(default_factory=list)
    merged: Counts = field(default_factory=dict)


def reference_stream(
    batches: list[Batch],
    options: ParseOptions,
    sharding: str,
    n_shards: int,
    into: Reference,
    max_in_flight: int = 4,
) -> Iterator[tuple[BatchMeta, pa.Table]]:
    """Re-parse every batch in Ray tasks, add its exact counts to ``into`` and yield
    its rows, in batch order.

    Consume it as it goes (the detection oracle does): a table read back from the
    object store pins its store memory while it is held, so keeping every batch's
    rows would fill the store on long runs and stall the tasks behind them.
    """
    # Test-only parse costs do not belong in the reference.
    clean = ParseOptions(
        strategy=options.strategy,
        max_dead_letters=0,
        max_line_bytes=options.max_line_bytes,
    )
    results = ordered_map(
        lambda b: _reference_task.remote(b, clean, sharding, n_shards), batches, max_in_flight
    )
    for batch, (shard_counts, table) in zip(batches, results):
        for i, counts in enumerate(shard_counts):
            add_counts(into.per_shard[i], counts)
            add_counts(into.merged, counts)
        yield batch.meta, table


def build_reference(
    batches: list[Batch],
    options: ParseOptions,
    sharding: str,
    n_shards: int,
    on_table: Callable[[BatchMeta, pa.Table], None] | None = None,
    max_in_flight: int = 4,
) -> Reference:
    """Re-parse every batch and count exactly; ``on_table`` sees each batch's rows in order."""
    ref = Reference(per_shard=[{} for _ in range(n_shards)])
    for meta, table in reference_stream(batches, options, sharding, n_shards, ref, max_in_flight):
        if on_table is not None:
            on_table(meta, table)
    return ref


def _diff(name: str, got: Counts, want: Counts, limit: int = 3) -> list[str]:
    problems = []
    for dim in sorted(set(got) | set(want)):
        g, w = got.get(dim, {}), want.get(dim, {})
        for key in sorted(set(g) | set(w)):
            if g.get(key) != w.get(key):
                problems.append(f"{name} {dim} {key!r}: got {g.get(key)} want {w.get(key)}")
                if len(problems) >= limit:
                    return problems
    return problems


def check(
    emitted: int,
    parsed: int,
    rejected: int,
    shard_totals: list[Counts],
    merged: Counts,
    reference: Reference,
    alerts: list[dict[str, Any]],
    alerts_emitted: int | None,
) -> dict[str, Any]:
    """The integrity verdict of one replicate: ``{"ok": bool, "problems": [...]}``."""
    problems: list[str] = []
    if emitted != parsed + rejected:
        problems.append(f"lines: emitted {emitted} != parsed {parsed} + rejected {rejected}")
    for i, (got, want) in enumerate(zip(shard_totals, reference.per_shard)):
        problems += _diff(f"shard {i}", got, want)
    problems += _diff("merged", merged, reference.merged)
    keys = [(a["kind"], a["key"], a["window_start_ms"]) for a in alerts]
    if len(set(keys)) != len(keys):
        problems.append("alerts: duplicate alert recorded")
    if alerts_emitted is not None and alerts_emitted != len(alerts):
        problems.append(f"alerts: detector raised {alerts_emitted}, recorded {len(alerts)}")
    return {"ok": not problems, "problems": problems}
