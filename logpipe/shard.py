"""Aggregator shards: event-time pane aggregates, deduplicated by batch id.

:class:`ShardCore` holds the logic (plain Python, testable without Ray);
:class:`ShardActor` is the Ray actor that wraps it and pushes closed panes to
the detector. Every shard receives every batch id in order (an empty output
when it gets no rows), so its watermark is exact: pane ``p`` closes once a batch
whose last event is at or past the pane end has been ingested.
"""

from __future__ import annotations

import copy
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from logpipe.checkpoint import ShardCheckpoint
from logpipe.named import resolve
from logpipe.schema import PARSED_SCHEMA
from logpipe.windows import (
    PaneAggregate,
    SketchConfig,
    WindowSpec,
    aggregate_table,
    pane_closed,
    warm_up,
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
    """Everything a shard needs to resume after a restart (picklable).

    ``buffered`` holds the rows of panes that are still open, one table per
    batch, with each table's largest event time in ``buffered_max``; they are
    aggregated once, when their pane closes (aggregating each batch and merging it
    into its open pane costs 2.3x the CPU per row at 40 000-line batches and 5x at
    10 000, measured: docs/performance.md, Findings).
    A closing pane takes whole tables whose rows are all before its end and
    filters only the tables that straddle it, so rows are not copied twice.
    Each buffered table has an id (``buffered_ids``, increasing in arrival order;
    a filtered table keeps its id), so a checkpoint can tell the tables it has
    already written from the new ones (:mod:`logpipe.checkpoint`).
    """

    shard_id: int
    buffered: list[pa.Table] = field(default_factory=list)
    buffered_max: list[int] = field(default_factory=list)
    buffered_ids: list[int] = field(default_factory=list)
    next_table_id: int = 0
    next_pane: int | None = None
    first_pane: int | None = None
    watermark_ms: int | None = None
    seen: set[int] = field(default_factory=set)
    rows: int = 0
    late_rows: int = 0
    duplicates: int = 0
    totals: Counts = field(default_factory=dict)


class ShardCore:
    """Buffers parsed rows per open pane and aggregates each pane as it closes."""

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
        """Take one batch's rows; return the panes this batch closed, in order."""
        st = self.state
        if batch_id in st.seen:
            st.duplicates += 1  # at-least-once delivery: a retried batch counts once
            return []
        st.seen.add(batch_id)
        pane_ms = self.window.pane_ms
        if st.next_pane is None:
            st.next_pane = st.first_pane = first_event_ms // pane_ms
        table = as_table(output)
        if table.num_rows:
            st.rows += table.num_rows
            self._buffer(table, st.next_pane * pane_ms)
        if st.watermark_ms is None or last_event_ms > st.watermark_ms:
            st.watermark_ms = last_event_ms
        return self._close(st.watermark_ms)

    def flush(self) -> list[PaneAggregate]:
        """End of stream: close every pane up to the one holding the watermark."""
        st = self.state
        if st.next_pane is None or st.watermark_ms is None:
            return []
        last = st.watermark_ms // self.window.pane_ms
        return self._close((last + 1) * self.window.pane_ms)

    def _buffer(self, table: pa.Table, open_from_ms: int) -> None:
        st = self.state
        late = pc.less(table["event_ms"], open_from_ms)
        n_late = pc.sum(late).as_py() or 0
        if n_late:
            # Rows for panes already closed (an unsorted replay): totals only.
            st.late_rows += n_late
            for agg in aggregate_table(
                table.filter(late), self.window.pane_ms, self.sketch
            ).values():
                add_counts(st.totals, agg.counts())
            table = table.filter(pc.invert(late))
            if table.num_rows == 0:
                return
        st.buffered.append(table)
        st.buffered_max.append(pc.max(table["event_ms"]).as_py())
        st.buffered_ids.append(st.next_table_id)
        st.next_table_id += 1

    def _close(self, watermark_ms: int) -> list[PaneAggregate]:
        st = self.state
        pane_ms = self.window.pane_ms
        assert st.next_pane is not None
        first = st.next_pane
        while pane_closed(st.next_pane, watermark_ms, pane_ms):
            st.next_pane += 1
        if st.next_pane == first:
            return []
        panes = self._take_rows_before(st.next_pane * pane_ms)
        closed = []
        for p in range(first, st.next_pane):
            agg = panes.get(p)
            if agg is None:
                agg = PaneAggregate.empty(p, self.sketch)
            else:
                add_counts(st.totals, agg.counts())
            closed.append(agg)
        return closed

    def _take_rows_before(self, end_ms: int) -> dict[int, PaneAggregate]:
        """Aggregate (and drop from the buffer) every buffered row before ``end_ms``."""
        st = self.state
        ready: list[pa.Table] = []
        keep: list[pa.Table] = []
        keep_max: list[int] = []
        keep_ids: list[int] = []
        for table, hi, tid in zip(st.buffered, st.buffered_max, st.buffered_ids):
            if hi < end_ms:
                ready.append(table)
                continue
            done = pc.less(table["event_ms"], end_ms)
            if pc.any(done).as_py():
                ready.append(table.filter(done))
                table = table.filter(pc.invert(done))
            keep.append(table)  # still holds its largest event time, hi
            keep_max.append(hi)
            keep_ids.append(tid)
        st.buffered, st.buffered_max, st.buffered_ids = keep, keep_max, keep_ids
        if not ready:
            return {}
        return aggregate_table(pa.concat_tables(ready), self.window.pane_ms, self.sketch)

    def prev_pane(self, pane: int) -> int | None:
        """The pane closed before ``pane`` (``None`` for the first): panes close in order."""
        return None if pane == self.state.first_pane else pane - 1

    def summary(self) -> dict[str, Any]:
        st = self.state
        return {
            "shard_id": st.shard_id,
            "rows": st.rows,
            "late_rows": st.late_rows,
            "duplicates": st.duplicates,
            "batches": len(st.seen),
        }


def as_table(output: Any) -> pa.Table:
    """A parse output as an Arrow table (the ``regex`` strategy yields records)."""
    if isinstance(output, pa.Table):
        return output
    return pa.Table.from_pylist(list(output or []), schema=PARSED_SCHEMA)


def heap_copy(table: pa.Table) -> pa.Table:
    """``table`` with its buffers copied into this process's memory (one copy).

    A table read from the object store is zero-copy: its buffers are the store
    object's, which stays pinned for as long as any of them is referenced. A shard
    keeps the rows of its open panes for up to a pane's length of events, and the
    store, bounded and shared by every in-flight batch, is the wrong place for
    that state: held there, it made the store's peak several times the in-flight
    work and pushed long runs into spilling (docs/performance.md).
    """
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return pa.ipc.open_stream(sink.getvalue()).read_all()


class ShardAck(NamedTuple):
    """A shard's reply to ``ingest``/``flush``: what it has applied and made durable.

    ``applied_through``: highest sequence number applied with every earlier one
    applied too; ``checkpointed_through``: highest covered by the shard's latest
    checkpoint (the driver may drop its batches up to the minimum over shards);
    ``incarnation``: set when the actor (re)starts, larger after every restart.
    """

    shard_id: int
    seq: int
    applied_through: int
    checkpointed_through: int
    incarnation: int


class ShardActor:
    """Ray actor around :class:`ShardCore`; pushes closed panes to the detector.

    Calls carry the driver's sequence number ``seq`` (0, 1, 2, ... per pipeline).
    A call ahead of the next expected ``seq`` (a retried call reaching a restarted
    actor before the driver replays what it lost) is held, not applied, so rows
    always enter in order and the watermark stays exact. With ``checkpoint_dir``
    the state is written there every ``checkpoint_every`` applied batches, and a
    restarted actor resumes from it; the driver replays the batches since.

    Rows are copied out of the object store as they arrive (:func:`heap_copy`),
    so the store holds only batches in flight, never a shard's open panes.

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
        checkpoint_dir: str | None = None,
        checkpoint_every: int = 16,
    ) -> None:
        # What reset() rebuilds from; the stall hook as given, unused: a one-shot hook
        # keeps state, and a reset actor must stall again as a new one would.
        fresh = copy.deepcopy(stall)
        self._ctor = (shard_id, window, detector, sketch, fresh, checkpoint_dir, checkpoint_every)
        self.core = ShardCore(shard_id, window, sketch)
        warm_up(sketch)
        self.detector = detector
        self.stall = stall
        self.checkpoint_every = max(1, checkpoint_every)
        self._ckpt = None if checkpoint_dir is None else ShardCheckpoint(checkpoint_dir, shard_id)
        self._pending: list[Any] = []
        self._held: dict[int, tuple[int, int, int, Any]] = {}
        self.applied_through = -1
        self.checkpointed_through = -1
        self.last_batch_id = -1
        # Wall-clock nanoseconds: a restarted actor's value is larger (see ShardAck).
        self.incarnation = time.time_ns()
        self._restore()

    def _restore(self) -> None:
        if self._ckpt is None or not self._ckpt.exists():
            return
        state, (through, self.last_batch_id) = self._ckpt.load(self.core.window.pane_ms)
        self.core.state = state
        self.applied_through = self.checkpointed_through = through

    def ingest(
        self, seq: int, batch_id: int, first_event_ms: int, last_event_ms: int, output: Any
    ) -> ShardAck:
        """Apply batch ``seq`` (or hold it until the ones before it arrive)."""
        if seq > self.applied_through:
            self._held[seq] = (batch_id, first_event_ms, last_event_ms, output)
        while (nxt := self.applied_through + 1) in self._held:
            self._apply(nxt, *self._held.pop(nxt))
        if self.applied_through - self.checkpointed_through >= self.checkpoint_every:
            self.checkpoint()
        return self._ack(seq)

    def _apply(self, seq: int, batch_id: int, first_ms: int, last_ms: int, output: Any) -> None:
        if self.stall is not None:
            pause = self.stall(first_ms, last_ms)
            if pause > 0:
                time.sleep(pause)
        if isinstance(output, pa.Table):
            output = heap_copy(output)
        closed = self.core.ingest(batch_id, first_ms, last_ms, output)
        self._submit(closed, batch_id)
        self.applied_through = seq
        self.last_batch_id = batch_id

    def reset(self) -> ShardAck:
        """Forget everything, checkpoint file included, as a new actor would (to reuse it
        for another run; call only when no batch is in flight)."""
        if self._ckpt is not None:
            self._ckpt.remove()
        ShardActor.__init__(self, *self._ctor)
        return self._ack(-1)

    def status(self) -> ShardAck:
        """What the shard has applied and checkpointed (``seq`` is -1)."""
        return self._ack(-1)

    def _ack(self, seq: int) -> ShardAck:
        return ShardAck(
            self.core.shard_id,
            seq,
            self.applied_through,
            self.checkpointed_through,
            self.incarnation,
        )

    def checkpoint(self) -> None:
        """Write the state atomically (no-op without ``checkpoint_dir``); rows already
        written by an earlier checkpoint are not written again (:mod:`logpipe.checkpoint`).

        Waits first until the detector has taken every pane closed so far: a
        pane whose call died with this process before it left would otherwise
        be neither delivered nor, after a restart from this checkpoint, resent.
        """
        if self._ckpt is None:
            return
        if self._pending:
            import ray

            pending, self._pending = self._pending, []
            ray.get(pending)
        self._ckpt.save(self.core.state, (self.applied_through, self.last_batch_id))
        self.checkpointed_through = self.applied_through

    def flush(self, last_seq: int) -> tuple[ShardAck, dict[str, Any] | None, Counts | None]:
        """Close every pane once all of ``0..last_seq`` is applied; summary and totals.

        Returns ``(ack, None, None)`` without flushing while batches are missing
        (the driver replays them and asks again): the totals come from the same
        call that closed the panes, so a restart in between cannot lose them.
        """
        import ray

        if self.applied_through < last_seq:
            return self._ack(last_seq), None, None
        self._submit(self.core.flush(), self.last_batch_id)
        pending, self._pending = self._pending, []
        ray.get(pending)
        return self._ack(last_seq), self.core.summary(), self.core.state.totals

    def _submit(self, closed: list[PaneAggregate], batch_id: int) -> None:
        sid = self.core.shard_id
        self.detector = resolve(self.detector)  # an ActorName is looked up once
        for pane in closed:
            prev = self.core.prev_pane(pane.pane)
            self._pending.append(self.detector.submit.remote(sid, pane, batch_id, prev))
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
    merged: Counts = defaultdict(dict)
    for part in parts:
        add_counts(merged, part)
    return dict(merged)
