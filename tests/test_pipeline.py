"""The pipeline end to end on real Ray: accounting, exact counts, same alerts
for every sharding strategy, bounded in-flight work, corrupt batches."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import numpy as np
import pytest
import ray

from harness.integrity import build_reference
from logpipe import rate
from logpipe.actors import JournaledDetector
from logpipe.batch import Batch
from logpipe.detector import DetectorConfig
from logpipe.events import PipelineEvents
from logpipe.generate import GeneratorConfig, Injection, generate
from logpipe.parse import ParseOptions
from logpipe.pipeline import Pipeline, PipelineConfig
from logpipe.windows import PaneAggregate, WindowSpec

pytestmark = pytest.mark.usefixtures("ray_session")

WINDOW = WindowSpec(4_000, 1_000)
DETECTOR = {"warmup_windows": 3}


@pytest.fixture(scope="module")
def stream():
    cfg = GeneratorConfig(
        seed=11,
        batch_lines=2_000,
        json_fraction=0.3,
        injections=(Injection("error_rate", 6.0, 3.0),),
    )
    return generate(cfg, rate.Constant(5_000).line_offsets(12.0))


def run(batches: list[Batch], strategy: str, n: int, parse: str = "arrow", **kw):
    from logpipe.detector import DetectorConfig

    cfg = PipelineConfig(
        parse=ParseOptions(strategy=parse),
        sharding=strategy,
        n_shards=n,
        window=WINDOW,
        detector=DetectorConfig(**DETECTOR),
        **kw,
    )
    events = PipelineEvents()
    seen: list[int] = []
    events.batch_emitted.add_listener(lambda batch_id, t_s, in_flight: seen.append(in_flight))
    with Pipeline(cfg, events) as pipe:
        for b in batches:
            pipe.submit(b)
        out = pipe.finish()
    return cfg, out, seen


@pytest.fixture(scope="module")
def single(stream):
    return run(stream.batches, "single", 1)[1]


def alert_keys(out):
    return sorted((a["kind"], a["key"], a["window_start_ms"]) for a in out.alerts)


@pytest.mark.parametrize(
    ("strategy", "n"), [("single", 1), ("by_service", 2), ("by_endpoint", 3), ("round_robin", 2)]
)
def test_counts_exact_and_alerts_identical_across_strategies(stream, single, strategy, n) -> None:
    cfg, out, _ = run(stream.batches, strategy, n)
    assert out.lines_emitted == stream.lines
    assert out.lines_emitted == out.lines_parsed + out.lines_rejected
    ref = build_reference(stream.batches, cfg.parse, strategy, n)
    assert out.merged_totals == ref.merged
    assert out.shard_totals == ref.per_shard
    assert alert_keys(out) == alert_keys(single)
    assert any(k[0] == "error_rate" for k in alert_keys(out))


def test_naive_regex_strategy_gives_the_same_counts_and_alerts(stream, single) -> None:
    _, naive, _ = run(stream.batches, "single", 1, parse="regex")
    assert naive.merged_totals == single.merged_totals
    assert alert_keys(naive) == alert_keys(single)


def test_in_flight_work_is_bounded(stream) -> None:
    _, _, seen = run(stream.batches, "round_robin", 2, max_in_flight=3)
    assert max(seen) <= 3


def test_corrupt_and_truncated_batches_are_rejected_whole_and_counted(stream) -> None:
    good = stream.batches[:4]
    bad = dataclasses.replace(good[1], payload=good[1].payload[: len(good[1].payload) // 2])
    junk = dataclasses.replace(good[2], payload=np.frombuffer(b"not zstd at all", np.uint8))
    batches = [good[0], bad, junk, good[3]]
    _, out, _ = run(batches, "by_service", 2)
    assert out.lines_emitted == sum(b.meta.line_count for b in batches)
    assert out.lines_rejected == bad.meta.line_count + junk.meta.line_count
    assert out.lines_parsed == good[0].meta.line_count + good[3].meta.line_count
    assert sum(out.batch_errors.values()) == 2


def test_given_state_dir_gets_a_private_subdirectory_and_keeps_its_contents(tmp_path) -> None:
    keep = tmp_path / "users-file"
    keep.write_text("not the pipeline's")
    cfg = PipelineConfig(window=WINDOW, state_dir=str(tmp_path))
    with Pipeline(cfg) as first, Pipeline(cfg) as second:
        dirs = {first.state_dir, second.state_dir}
        assert len(dirs) == 2  # two runs (replicates) never read each other's state
        assert all(os.path.dirname(d) == str(tmp_path) for d in dirs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["users-file"]
    assert keep.read_text() == "not the pipeline's"
    with pytest.raises(ValueError, match=r"^state_dir: no such directory"):
        Pipeline(dataclasses.replace(cfg, state_dir=str(tmp_path / "unmounted")))


def test_journaled_detector_replays_held_panes_and_cuts_a_torn_tail(tmp_path) -> None:
    def fresh() -> JournaledDetector:
        return JournaledDetector(DetectorConfig(), WINDOW, 2, None, str(tmp_path), 1_000)

    first = fresh()
    first.submit(0, PaneAggregate.empty(5), 0, None)
    first.submit(1, PaneAggregate.empty(5), 0, None)
    first.submit(0, PaneAggregate.empty(7), 2, 6)  # arrived before pane 6: held
    before = first.stats()
    first._journal.close()  # killed: only the journal remains
    with open(tmp_path / "detector.journal", "ab") as fh:
        fh.write(b"\x80\x05torn")  # a write cut short by the kill
    second = fresh()
    assert second.replayed == 3 and second.stats() == before
    assert second.submit(0, PaneAggregate.empty(7), 2, 6) == 0  # a duplicate of a held pane
    second.submit(0, PaneAggregate.empty(6), 1, 5)
    second._journal.close()
    third = fresh()  # entries written after the torn one are still read
    assert third.replayed == 5 and third.stats() == second.stats()
    assert third.stats()["held_panes"] == 0 and third.stats()["duplicates_ignored"] == 1
    third._journal.close()


def drain_and_read_store(
    config: PipelineConfig, seed: int, inspect: Callable[[Pipeline], None]
) -> tuple[float, int, int]:
    """Push 4 s of 50 000 lines/s (10 000-line batches) through a pipeline and drain
    it; then, before ``finish``, call ``inspect(pipe)`` and read the store's usage
    above its level before the run (waiting up to 10 s for it to fall under 5 % of
    the payload). Returns (bytes held, payload bytes, lines parsed minus lines sent)."""
    from harness.objstore import StoreStatsReader, wait_for

    cfg = GeneratorConfig(seed=seed, batch_lines=10_000)
    batches = generate(cfg, rate.Constant(50_000).line_offsets(4.0)).batches
    payload = sum(len(b.payload) for b in batches)
    reader = StoreStatsReader()
    try:
        before = reader.read().used_bytes
        with Pipeline(config) as pipe:
            for b in batches:
                pipe.submit(b)
            pipe.drain()
            inspect(pipe)
            limit = before + 0.05 * payload
            held = wait_for(reader, lambda s: s.used_bytes < limit, 10.0).used_bytes - before
            out = pipe.finish()
    finally:
        reader.close()
    return held, payload, out.lines_parsed - sum(b.meta.line_count for b in batches)


def test_drained_pipeline_holds_nothing_in_the_object_store() -> None:
    # Open panes of 20 s hold every row the shards got, and a checkpoint period
    # longer than the stream keeps every batch retained for replay: before rows
    # were copied out of the store and retained batches left it, this held tens of
    # MiB of store memory with nothing in flight.
    def inspect(pipe: Pipeline) -> None:
        assert pipe.retained == pipe.submitted_through + 1  # every batch kept for a replay
        summaries = ray.get([s.summary.remote() for s in pipe.shards])
        assert sum(s["rows"] for s in summaries) == pipe.outcome.lines_emitted

    config = PipelineConfig(window=WindowSpec(40_000, 20_000), checkpoint_every=1_000)
    held, payload, missing = drain_and_read_store(config, 12, inspect)
    assert held < 0.05 * payload, f"{held} bytes held in the store after the drain"
    assert missing == 0


def test_detector_window_holds_no_object_store_memory() -> None:
    # Panes of 50 000 lines (about 440 KB each, above Ray's 100 KiB inline limit)
    # reach the detector through the store, and its 4 s window keeps the last four.
    # Read zero-copy, they pinned the shard's objects for the window's length;
    # copied out on arrival, the store holds nothing once the pipeline is drained.
    def inspect(pipe: Pipeline) -> None:
        # Closed panes are in the detector's window while the store is read.
        assert ray.get(pipe.detector.stats.remote())["panes_completed"] >= 3

    config = PipelineConfig(sharding="single", n_shards=1, window=WindowSpec(4_000, 1_000))
    held, payload, missing = drain_and_read_store(config, 13, inspect)
    assert held < 0.05 * payload, f"{held} bytes held in the store after the drain"
    assert missing == 0


def test_warm_up_parses_outside_the_stream_and_changes_no_count(stream) -> None:
    cfg, out, _ = run(stream.batches[:6], "by_service", 2)
    with Pipeline(cfg) as pipe:
        pipe.warm_up()
        assert (pipe.outcome.batches, pipe.outcome.lines_parsed, pipe.in_flight) == (0, 0, 0)
        for b in stream.batches[:6]:
            pipe.submit(b)
        warmed = pipe.finish()
    assert warmed.merged_totals == out.merged_totals
    assert (warmed.batches, warmed.lines_parsed) == (out.batches, out.lines_parsed)
