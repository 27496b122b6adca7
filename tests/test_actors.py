"""Pipeline actors reused across runs: reset leaves no state, files or refs behind."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
import ray

from logpipe import rate
from logpipe.actors import PipelineActors
from logpipe.detector import DetectorConfig
from logpipe.generate import GeneratorConfig, Injection, generate
from logpipe.pipeline import Pipeline, PipelineConfig
from logpipe.windows import SketchConfig, WindowSpec

pytestmark = pytest.mark.usefixtures("ray_session")

CONFIG = PipelineConfig(
    sharding="by_service",
    n_shards=2,
    window=WindowSpec(4_000, 1_000),
    detector=DetectorConfig(warmup_windows=3),
    checkpoint_every=4,  # checkpoints are written, so reset has files to remove
)


@pytest.fixture(scope="module")
def stream():
    cfg = GeneratorConfig(
        seed=5, batch_lines=2_000, injections=(Injection("error_rate", 6.0, 3.0),)
    )
    return generate(cfg, rate.Constant(4_000).line_offsets(12.0))


def run(batches, actors=None):
    with Pipeline(CONFIG, actors=actors) as pipe:
        for b in batches:
            pipe.submit(b)
        out = pipe.finish()
        files = sorted(os.listdir(pipe.state_dir))
    assert pipe.retained == 0  # close() let go of every batch and parsed output
    return out, files


def summary(out):
    alerts = sorted((a["kind"], a["key"], a["window_start_ms"]) for a in out.alerts)
    return out.lines_parsed, out.shard_totals, out.merged_totals, alerts


def test_reused_actors_give_the_same_outcome_as_fresh_ones(stream) -> None:
    fresh, _ = run(stream.batches)
    assert fresh.alerts, "the injected anomaly must alert, or this test compares nothing"
    with PipelineActors(CONFIG) as actors:
        ids = [a._actor_id for a in [*actors.shards, actors.detector, actors.alerting]]
        first, files = run(stream.batches, actors)
        assert any(f.startswith("shard-") for f in files) and "detector.journal" in files
        second, _ = run(stream.batches, actors)  # state from the first run must not leak in
        # Closing a pipeline left the given actors alive: the same ones ran both times.
        assert [a._actor_id for a in [*actors.shards, actors.detector, actors.alerting]] == ids
        state_dir = actors.state_dir
    assert summary(first) == summary(fresh) == summary(second)
    assert not os.path.exists(state_dir)  # closing the set removed its directory


def test_closing_a_pipeline_resets_given_actors_and_their_files(stream) -> None:
    with PipelineActors(CONFIG) as actors:
        _, during = run(stream.batches[:8], actors)
        assert "shard-0.ckpt" in during and "detector.journal" in during
        # After close: no checkpoint left; the journal and alerts file are there, empty.
        after = {
            f: os.path.getsize(os.path.join(actors.state_dir, f))
            for f in os.listdir(actors.state_dir)
        }
        assert after == {"alerts.jsonl": 0, "detector.journal": 0}
        status = ray.get([s.status.remote() for s in actors.shards])
        assert [(a.applied_through, a.checkpointed_through) for a in status] == [(-1, -1)] * 2
        assert ray.get(actors.alerting.count.remote()) == 0


def test_actors_of_another_configuration_are_refused() -> None:
    with PipelineActors(CONFIG) as actors:
        other = PipelineConfig(sharding="single", n_shards=1)
        with pytest.raises(ValueError, match="another pipeline configuration"):
            Pipeline(other, actors=actors)


def test_the_sketch_configuration_reaches_the_detector() -> None:
    sketch = SketchConfig(rel_accuracy=0.02, hll_precision=10, heavy_hitters=16)
    assert sketch != SketchConfig()
    with PipelineActors(replace(CONFIG, sketch=sketch)) as actors:
        assert ray.get(actors.detector.state.remote())["_sketch"] == sketch
        actors.reset()  # a reset detector is rebuilt from the same arguments
        assert ray.get(actors.detector.state.remote())["_sketch"] == sketch
