"""The Ray Data engine against the task engine on the same batches: same counts,
same shard totals, same alerts, events for every batch, bounded in-flight work."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import pyarrow as pa
import pytest

from harness.integrity import build_reference
from logpipe import rate
from logpipe.data_engine import DataPipeline, _unpack
from logpipe.detector import DetectorConfig
from logpipe.events import PipelineEvents
from logpipe.generate import GeneratorConfig, Injection, generate
from logpipe.pipeline import Pipeline, PipelineConfig
from logpipe.windows import WindowSpec

CFG = PipelineConfig(
    sharding="by_service",
    n_shards=2,
    window=WindowSpec(4_000, 1_000),
    detector=DetectorConfig(warmup_windows=3),
    max_in_flight=3,
)


@pytest.fixture(scope="module")
def batches() -> list[Any]:
    gen = GeneratorConfig(
        seed=5,
        batch_lines=3_000,
        json_fraction=0.3,
        injections=(Injection("error_rate", 6.0, 3.0),),
    )
    out = list(generate(gen, rate.Constant(5_000).line_offsets(12.0)).batches)
    # One truncated batch: rejected whole, by both engines alike.
    cut = out[4]
    out[4] = dataclasses.replace(cut, payload=cut.payload[: len(cut.payload) // 2])
    return out


def _run(engine: type[Pipeline], batches: list[Any]) -> dict[str, Any]:
    events = PipelineEvents()
    seen: dict[str, list[Any]] = {"emitted": [], "done": [], "in_flight": []}

    def on_emitted(batch_id: int, t_s: float, in_flight: int) -> None:
        seen["emitted"].append(batch_id)
        seen["in_flight"].append(in_flight)

    events.batch_emitted.add_listener(on_emitted)
    events.batch_done.add_listener(
        lambda batch_id, t_s, stats: seen["done"].append((batch_id, stats.lines))
    )
    with engine(CFG, events) as pipe:
        for b in batches:
            pipe.submit(b)
            pipe.poll(timeout_s=0)
        seen["outcome"] = pipe.finish()
    return seen


@pytest.fixture(scope="module")
def runs(ray_session: None, batches: list[Any]) -> dict[str, dict[str, Any]]:
    return {"tasks": _run(Pipeline, batches), "ray_data": _run(DataPipeline, batches)}


def _alert_keys(outcome: Any) -> list[tuple[Any, ...]]:
    return sorted((a["kind"], a["key"], a["window_start_ms"]) for a in outcome.alerts)


def test_same_counts_totals_and_alerts_as_the_task_engine(runs, batches) -> None:
    tasks, data = runs["tasks"]["outcome"], runs["ray_data"]["outcome"]
    lines = sum(b.meta.line_count for b in batches)
    assert data.lines_emitted == lines == data.lines_parsed + data.lines_rejected
    assert data.lines_rejected == batches[4].meta.line_count  # the truncated batch
    assert (data.lines_parsed, data.lines_rejected) == (tasks.lines_parsed, tasks.lines_rejected)
    assert data.reasons == tasks.reasons and data.batch_errors == tasks.batch_errors
    ref = build_reference(batches, CFG.parse, CFG.sharding, CFG.n_shards)
    assert data.shard_totals == ref.per_shard == tasks.shard_totals
    assert data.merged_totals == ref.merged == tasks.merged_totals
    assert _alert_keys(data) == _alert_keys(tasks)
    assert any(k[0] == "error_rate" for k in _alert_keys(data))


def test_events_fire_once_per_batch_and_in_flight_stays_bounded(runs, batches) -> None:
    ids = [b.meta.batch_id for b in batches]
    seen = runs["ray_data"]
    assert seen["emitted"] == ids
    assert sorted(seen["done"]) == sorted((b.meta.batch_id, b.meta.line_count) for b in batches)
    assert [i for i, _ in seen["done"]] == ids  # done in order, as in the task engine
    assert max(seen["in_flight"]) <= CFG.max_in_flight


def test_unpack_refuses_a_block_of_another_batch() -> None:
    block = pa.table({"seq": [7], "result": [pickle.dumps(("stats", "out"))]})
    assert _unpack(block, 7) == ("stats", "out")
    with pytest.raises(RuntimeError, match="expected block of batch seq 6"):
        _unpack(block, 6)
