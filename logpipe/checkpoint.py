"""A shard's checkpoint on disk, written incrementally.

A shard holds the rows of its open panes until they close (see
:class:`logpipe.shard.ShardState`). Pickling that buffer whole at every
checkpoint rewrote the same rows again and again: in a run where a pane holds
many batches, most of a shard's checkpoint time went to rows it had already
written. Here each buffered table is written once, to an Arrow IPC *segment*
(one file per checkpoint), and the small rest of the state goes to a pickled
state file that names the segments it needs. A segment is deleted once none of
its tables is buffered any more.

Files, in the shard's state directory: ``shard-<id>.ckpt`` (the state) and
``shard-<id>.seg-<first>-<last>.arrow`` (buffered tables by id, the first and last
in the name). Segments are written and renamed into place before the state file that
names them is replaced, so a crash at any point leaves a complete checkpoint:
the old one or the new one. Files are the pipeline's own, in a directory it
created (never user input).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from logpipe.shard import ShardState


class Segment(NamedTuple):
    """One segment file: the buffered tables ``ids``, in order, ``rows`` rows each."""

    name: str
    ids: tuple[int, ...]
    rows: tuple[int, ...]


class ShardCheckpoint:
    """Saves and restores one shard's :class:`ShardState` (and the actor's extras)."""

    def __init__(self, directory: str | os.PathLike[str], shard_id: int) -> None:
        self.directory = Path(directory)
        self.prefix = f"shard-{shard_id}"
        self.path = self.directory / f"{self.prefix}.ckpt"
        self._segments: list[Segment] = []
        self._saved_through = -1  # largest buffered-table id written to a segment

    def exists(self) -> bool:
        return self.path.exists()

    def save(self, state: ShardState, extra: Any) -> None:
        """Write the tables buffered since the last save, then the state atomically."""
        new = [
            (tid, table)
            for tid, table in zip(state.buffered_ids, state.buffered)
            if tid > self._saved_through
        ]
        added = [self._write_segment(group) for group in _same_schema_runs(new)]
        live = set(state.buffered_ids)
        keep = [s for s in self._segments if live.intersection(s.ids)]
        dropped = [s for s in self._segments if s not in keep]
        self._segments = keep + added
        bare = dataclasses.replace(state, buffered=[], buffered_max=[], buffered_ids=[])
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            pickle.dump((bare, self._segments, extra), fh, pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, self.path)
        self._saved_through = state.next_table_id - 1
        for seg in dropped:
            (self.directory / seg.name).unlink(missing_ok=True)

    def load(self, pane_ms: int) -> tuple[ShardState, Any]:
        """The saved state with its buffered rows read back, and the saved extras."""
        with open(self.path, "rb") as fh:
            state, segments, extra = pickle.load(fh)
        self._segments = list(segments)
        self._saved_through = state.next_table_id - 1
        open_from = None if state.next_pane is None else state.next_pane * pane_ms
        for seg in self._segments:
            for tid, table in self._read_segment(seg):
                if open_from is not None:
                    # Rows before the open pane were aggregated before the save.
                    table = table.filter(pc.greater_equal(table["event_ms"], open_from))
                if table.num_rows:
                    state.buffered.append(table)
                    state.buffered_max.append(pc.max(table["event_ms"]).as_py())
                    state.buffered_ids.append(tid)
        return state, extra

    def remove(self) -> None:
        """Delete the state file and every segment of this shard."""
        for path in self.directory.glob(f"{self.prefix}.*"):
            path.unlink(missing_ok=True)
        self._segments, self._saved_through = [], -1

    def _write_segment(self, group: list[tuple[int, pa.Table]]) -> Segment:
        ids = tuple(tid for tid, _ in group)
        seg = Segment(
            f"{self.prefix}.seg-{ids[0]}-{ids[-1]}.arrow", ids, tuple(t.num_rows for _, t in group)
        )
        path = self.directory / seg.name
        tmp = path.with_suffix(".tmp")
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, group[0][1].schema) as w:
            for _, table in group:
                w.write_table(table)
        os.replace(tmp, path)
        return seg

    def _read_segment(self, seg: Segment) -> Iterator[tuple[int, pa.Table]]:
        """The segment's tables, each with its id."""
        with pa.OSFile(str(self.directory / seg.name), "rb") as src:
            whole = pa.ipc.open_file(src).read_all()
        offset = 0
        for tid, n in zip(seg.ids, seg.rows):
            yield tid, whole.slice(offset, n)
            offset += n


def _same_schema_runs(tables: list[tuple[int, pa.Table]]) -> list[list[tuple[int, pa.Table]]]:
    """Consecutive runs of tables with one schema (one IPC file holds one schema)."""
    runs: list[list[tuple[int, pa.Table]]] = []
    for item in tables:
        if runs and runs[-1][-1][1].schema.equals(item[1].schema):
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs
