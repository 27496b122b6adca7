"""Aggregator shards: event-time pane aggregates, deduplicated by batch id.

:class:`ShardCore` holds the logic (plain Python, testable without Ray);
:class:`ShardActor` is the Ray actor that wraps it and pushes closed panes to
the detector. Every shard receives every batch id in order (an empty output
when it gets no rows), so its watermark is exact: pane ``p`` closes once a batch
whose last event is at or past the pane end has been ingested.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from logpipe.windows import (
    PaneAggregate,
    SketchConfig,
    WindowSpec,
    aggregate_records,
    aggregate_table,
    pane_closed,
)

Counts = dict[str, dict[str, dict[str, int]]]


def add_counts(into: Counts, other: Counts) -> None:
    """Add exact per-dimension, per-key counts ``other`` into ``into``."""
    for dim, keys in other.items():
        if not isinstance(keys, dict):
            continue  # scalar fields such as "lines" are tracked separately
        dst = into.setdefault(dim, {})
        for key, fields in keys.items():
            slot = dst.setdefault(key, {})
            for name, value in fields.items():
                slot[name] = slot.get(name, 0) + int(value)


@dataclass
class ShardState:
    """Everything a shard needs to resume after a restart (picklable)."""

    shard_id: int
    open_panes: dict[int, PaneAggregate] = field(default_factory=dict)
    next_pane: int | None = None
    watermark_ms: int | None = None
    seen: set[int] = field(default_factory=set)
    rows: int = 0
    late_rows: int = 0
    duplicates: int = 0
    totals: Counts = field(default_factory=dict)


class ShardCore:
    """Folds parsed outputs into pane aggregates and closes panes by watermark."""

    def __init__(
        self, shard_id: int, window: WindowSpec, sketch: SketchConfig | None = None
    ) -> None:
        self.window = window
        self.sketch = sketch
        self.state = ShardState(shard_id)

    @property
    def shard_id(self) -> int:
        return self.state.shard_id

    def ingest(
        self, batch_id: int, first_event_ms: int, last_event_ms: int, output: Any
    ) -> list[PaneAggregate]:
        """Aggregate one batch's rows; return the panes this batch closed, in order."""
        st = self.state
        if batch_id in st.seen:
            st.duplicates += 1  # at-least-once delivery: a retried batch counts once
            return []
        st.seen.add(batch_id)
        pane_ms = self.window.pane_ms
        if st.next_pane is None:
            st.next_pane = first_event_ms // pane_ms
        panes = self._aggregate(output)
        for p, agg in sorted(panes.items()):
            st.rows += agg.lines
            add_counts(st.totals, agg.counts())
            if p < st.next_pane:
                st.late_rows += agg.lines  # pane already closed: totals only
                continue
            current = st.open_panes.get(p)
            if current is None:
                st.open_panes[p] = agg
            else:
                current.merge(agg)
        if st.watermark_ms is None or last_event_ms > st.watermark_ms:
            st.watermark_ms = last_event_ms
        return self._close(st.watermark_ms)

    def flush(self) -> list[PaneAggregate]:
        """End of stream: close every open pane."""
        st = self.state
        if st.next_pane is None:
            return []
        last = max(st.open_panes, default=st.next_pane - 1)
        return self._close((last + 1) * self.window.pane_ms)

    def _aggregate(self, output: Any) -> dict[int, PaneAggregate]:
        pane_ms = self.window.pane_ms
        if isinstance(output, pa.Table):
            if output.num_rows == 0:
                return {}
            return aggregate_table(output, pane_ms, self.sketch)
        if not output:
            return {}
        return aggregate_records(list(output), pane_ms, self.sketch)

    def _close(self, watermark_ms: int) -> list[PaneAggregate]:
        st = self.state
        closed: list[PaneAggregate] = []
        pane_ms = self.window.pane_ms
        assert st.next_pane is not None
        while pane_closed(st.next_pane, watermark_ms, pane_ms):
            pane = st.open_panes.pop(st.next_pane, None)
            closed.append(
                pane if pane is not None else PaneAggregate.empty(st.next_pane, self.sketch)
            )
            st.next_pane += 1
        return closed

    def summary(self) -> dict[str, Any]:
        st = self.state
        return {
            "shard_id": st.shard_id,
            "rows": st.rows,
            "late_rows": st.late_rows,
            "duplicates": st.duplicates,
            "batches": len(st.seen),
        }


class ShardActor:
    """Ray actor around :class:`ShardCore`; pushes closed panes to the detector.

    ``stall`` is a test-only hook (``None`` in normal runs): a callable given the
    batch's event range that returns seconds to sleep, used to validate that the
    harness sees stalls in the aggregation path.
    """

    def __init__(
        self,
        shard_id: int,
        window: WindowSpec,
        detector: Any,
        sketch: SketchConfig | None = None,
        stall: Callable[[int, int], float] | None = None,
    ) -> None:
        self.core = ShardCore(shard_id, window, sketch)
        self.detector = detector
        self.stall = stall
        self._pending: list[Any] = []

    def ingest(
        self, batch_id: int, first_event_ms: int, last_event_ms: int, output: Any
    ) -> tuple[int, int]:
        if self.stall is not None:
            pause = self.stall(first_event_ms, last_event_ms)
            if pause > 0:
                time.sleep(pause)
        closed = self.core.ingest(batch_id, first_event_ms, last_event_ms, output)
        self._submit(closed, batch_id)
        return self.core.shard_id, batch_id

    def flush(self, last_batch_id: int) -> int:
        """Close every pane and wait until the detector has received them."""
        import ray

        self._submit(self.core.flush(), last_batch_id)
        pending, self._pending = self._pending, []
        ray.get(pending)
        return len(pending)

    def _submit(self, closed: list[PaneAggregate], batch_id: int) -> None:
        sid = self.core.shard_id
        for pane in closed:
            self._pending.append(self.detector.submit.remote(sid, pane, batch_id))
        # Keep only refs that may still be running, so memory stays bounded.
        if len(self._pending) > 256:
            import ray

            _, self._pending = ray.wait(self._pending, num_returns=len(self._pending), timeout=0)

    def totals(self) -> Counts:
        return self.core.state.totals

    def summary(self) -> dict[str, Any]:
        return self.core.summary()


def merge_totals(parts: list[Counts]) -> Counts:
    """Sum exact counts over shards."""
    merged: Counts = defaultdict(dict)  # type: ignore[assignment]
    for part in parts:
        add_counts(merged, part)
    return dict(merged)
