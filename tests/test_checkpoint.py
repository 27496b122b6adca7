"""Incremental shard checkpoints: a restored shard is the shard that was saved, each
buffered row is written once, and segments go when their rows have closed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
from factories import parsed_stream as stream

from logpipe.checkpoint import ShardCheckpoint
from logpipe.shard import ShardCore
from logpipe.windows import PaneAggregate, WindowSpec

WINDOW = WindowSpec(4_000, 1_000)


def feed(core: ShardCore, parsed, closed: dict[int, PaneAggregate]) -> None:
    for batch, table in parsed:
        m = batch.meta
        for agg in core.ingest(m.batch_id, m.first_event_ms, m.last_event_ms, table):
            closed[agg.pane] = agg


def shuffled_stream(seed: int, seconds: float = 5.0):
    # Rows out of order inside each batch: tables straddle pane ends, so closing a
    # pane filters buffered tables that a checkpoint has already written.
    rng = np.random.default_rng(seed)
    return [(b, t.take(pa.array(rng.permutation(t.num_rows)))) for b, t in stream(seed, seconds)]


def segment_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("shard-0.seg-*.arrow"))


def test_restored_shard_closes_the_same_panes_as_the_one_never_stopped(tmp_path: Path) -> None:
    parsed = shuffled_stream(seed=5)
    cut = len(parsed) // 2
    ckpt = ShardCheckpoint(tmp_path, 0)
    original, closed_a = ShardCore(0, WINDOW), {}
    for i in range(0, cut, 3):  # several saves, each while some panes are open
        feed(original, parsed[i : min(i + 3, cut)], closed_a)
        ckpt.save(original.state, ("extra", i))
    assert original.state.buffered, "the cut must leave rows buffered"
    restored = ShardCore(0, WINDOW)
    restored.state, extra = ShardCheckpoint(tmp_path, 0).load(WINDOW.pane_ms)
    assert extra == ("extra", max(range(0, cut, 3)))
    # The same buffered rows, tables and ids (a restored table may be a filtered slice).
    assert restored.state.buffered_ids == original.state.buffered_ids
    assert [t.num_rows for t in restored.state.buffered] == [
        t.num_rows for t in original.state.buffered
    ]
    assert pa.concat_tables(restored.state.buffered).equals(
        pa.concat_tables(original.state.buffered)
    )
    assert restored.state.buffered_max == original.state.buffered_max
    assert restored.state.totals == original.state.totals
    closed_b = dict(closed_a)
    feed(original, parsed[cut:], closed_a)
    feed(restored, parsed[cut:], closed_b)
    for agg in original.flush():
        closed_a[agg.pane] = agg
    for agg in restored.flush():
        closed_b[agg.pane] = agg
    assert closed_a == closed_b
    assert restored.state.totals == original.state.totals


def test_each_buffered_row_is_written_once_and_closed_segments_are_deleted(
    tmp_path: Path,
) -> None:
    parsed = stream(seed=6, seconds=6.0)
    core, closed = ShardCore(0, WINDOW), {}
    ckpt = ShardCheckpoint(tmp_path, 0)
    written = expected = rewritten = 0
    before: list[str] = []
    saved_ids: set[int] = set()
    for batch_and_table in parsed:
        feed(core, [batch_and_table], closed)
        st = core.state
        # What this save owes the disk: tables buffered since the last one, as they
        # are now (rows that closed before the save need no checkpoint).
        expected += sum(
            t.num_rows for t, i in zip(st.buffered, st.buffered_ids) if i not in saved_ids
        )
        saved_ids.update(st.buffered_ids)
        rewritten += sum(t.num_rows for t in st.buffered)  # a whole-state pickle's rows
        ckpt.save(st, None)
        now = segment_files(tmp_path)
        added = [n for n in now if n not in before]
        assert len(added) <= 1  # one segment per save, only when there are new rows
        for name in added:
            with pa.OSFile(str(tmp_path / name), "rb") as src:
                written += pa.ipc.open_file(src).read_all().num_rows
        before = now
    # Every buffered row went to disk exactly once, however many saves it stayed for.
    assert written == expected
    assert written < rewritten / 2  # panes hold several batches: most rows stay for saves
    # Only segments holding a still-buffered table remain.
    live = set(core.state.buffered_ids)
    assert live, "the last pane is still open"
    for name in segment_files(tmp_path):
        first, last = (int(x) for x in name.split(".seg-")[1].removesuffix(".arrow").split("-"))
        assert any(first <= t <= last for t in live)
    assert len(segment_files(tmp_path)) < len(parsed) // 2


def test_a_segment_the_state_does_not_name_is_ignored(tmp_path: Path) -> None:
    # A crash after a segment was renamed into place but before the state file
    # naming it was replaced: the older, complete checkpoint is what loads.
    parsed = stream(seed=7, seconds=3.0)
    core, closed = ShardCore(0, WINDOW), {}
    ckpt = ShardCheckpoint(tmp_path, 0)
    feed(core, parsed[:2], closed)
    ckpt.save(core.state, "first")
    saved_rows = sum(t.num_rows for t in core.state.buffered)
    (tmp_path / "shard-0.seg-90-99.arrow").write_bytes(b"not an arrow file")
    state, extra = ShardCheckpoint(tmp_path, 0).load(WINDOW.pane_ms)
    assert extra == "first"
    assert sum(t.num_rows for t in state.buffered) == saved_rows


def test_remove_deletes_the_state_and_every_segment(tmp_path: Path) -> None:
    parsed = stream(seed=8, seconds=3.0)
    core, closed = ShardCore(0, WINDOW), {}
    ckpt = ShardCheckpoint(tmp_path, 0)
    feed(core, parsed, closed)
    ckpt.save(core.state, None)
    other = ShardCheckpoint(tmp_path, 1)
    other.save(ShardCore(1, WINDOW).state, None)
    assert ckpt.exists() and segment_files(tmp_path)
    ckpt.remove()
    assert not ckpt.exists() and not segment_files(tmp_path)
    assert other.exists()  # another shard's files are its own
