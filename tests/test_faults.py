"""Faults on a single node: parse workers, a shard, the detector and the alerting
actor killed mid-run; counts stay exact and no alert is lost or duplicated."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import ray

from harness.faults import FaultInjector, kill_parse_workers, ray_processes
from harness.integrity import build_reference, check
from logpipe import rate
from logpipe.detector import DetectorConfig
from logpipe.generate import GeneratorConfig, Injection, generate
from logpipe.parse import ParseOptions
from logpipe.pipeline import Pipeline, PipelineConfig, PipelineOutcome
from logpipe.windows import WindowSpec

pytestmark = pytest.mark.usefixtures("ray_session")


@pytest.fixture(scope="module")
def stream() -> Any:
    cfg = GeneratorConfig(
        seed=5, batch_lines=1_000, injections=(Injection("error_rate", 4.5, 3.0),)
    )
    return generate(cfg, rate.Constant(3_000).line_offsets(9.0))


def config(**kw: Any) -> PipelineConfig:
    base: dict[str, Any] = {
        "sharding": "by_service",
        "n_shards": 2,
        "window": WindowSpec(4_000, 1_000),
        "detector": DetectorConfig(warmup_windows=3),
        "checkpoint_every": 4,
        "snapshot_every": 3,
        "max_in_flight": 6,
    }
    return PipelineConfig(**(base | kw))


def run(
    stream: Any, cfg: PipelineConfig, at: int = -1, fault: Callable[[Pipeline], None] | None = None
) -> PipelineOutcome:
    with Pipeline(cfg) as pipe:
        for i, batch in enumerate(stream.batches):
            pipe.submit(batch)
            if i == at and fault is not None:
                fault(pipe)
        return pipe.finish()


def alert_keys(out: PipelineOutcome) -> list[tuple[str, str, int]]:
    return sorted((a["kind"], a["key"], a["window_start_ms"]) for a in out.alerts)


def assert_exact(stream: Any, cfg: PipelineConfig, out: PipelineOutcome) -> None:
    ref = build_reference(stream.batches, cfg.parse, cfg.sharding, cfg.n_shards)
    verdict = check(
        out.lines_emitted,
        out.lines_parsed,
        out.lines_rejected,
        out.shard_totals,
        out.merged_totals,
        ref,
        out.alerts,
        out.detector.get("alerts"),
    )
    assert verdict["ok"], verdict["problems"]
    assert out.lines_emitted == stream.lines


@pytest.fixture(scope="module")
def baseline(stream: Any) -> PipelineOutcome:
    out = run(stream, config())
    assert any(k[0] == "error_rate" for k in alert_keys(out))
    return out


def test_shard_killed_restores_checkpoint_and_replays(stream: Any, baseline: Any) -> None:
    cfg = config()
    out = run(stream, cfg, 13, lambda p: ray.kill(p.shards[1], no_restart=False))
    assert_exact(stream, cfg, out)
    assert out.recovery["shard_restarts"] >= 1
    assert out.recovery["replayed"] >= 1
    assert out.recovery["unrecoverable"] == 0
    assert alert_keys(out) == alert_keys(baseline)


def test_shard_restart_after_outputs_released_reparses_and_stays_exact(
    stream: Any, baseline: Any
) -> None:
    # A checkpoint every 10 batches: after 14 drained batches, 10..13 are held for
    # replay but finished, so their parsed outputs are gone and must be parsed again.
    cfg = config(checkpoint_every=10)
    with Pipeline(cfg) as pipe:
        for i, batch in enumerate(stream.batches):
            pipe.submit(batch)
            assert pipe.retained_outputs == pipe.in_flight  # only in-flight outputs held
            if i == 13:
                pipe.drain()
                assert pipe.retained >= 1 and pipe.retained_outputs == 0
                ray.kill(pipe.shards[1], no_restart=False)
        out = pipe.finish()
    assert_exact(stream, cfg, out)
    assert out.recovery["shard_restarts"] >= 1
    assert out.recovery["reparsed"] >= 1
    assert out.recovery["unrecoverable"] == 0
    assert alert_keys(out) == alert_keys(baseline)


def test_every_actor_killed_twice_loses_and_duplicates_nothing(stream: Any, baseline: Any) -> None:
    cfg = config()

    def kill_all(p: Pipeline) -> None:
        for actor in [*p.shards, p.detector, p.alerting]:
            ray.kill(actor, no_restart=False)

    with Pipeline(cfg) as pipe:
        for i, batch in enumerate(stream.batches):
            pipe.submit(batch)
            if i in (10, 19):
                kill_all(pipe)
        out = pipe.finish()
    assert_exact(stream, cfg, out)
    assert alert_keys(out) == alert_keys(baseline)
    assert len({a["alert_id"] for a in out.alerts}) == len(out.alerts)


def test_detector_killed_after_alerts_resumes_from_journal(stream: Any, baseline: Any) -> None:
    # Ray retries the calls the dead detector never ran, possibly after later calls
    # from the same shard: the detector must hold such a pane, not drop it.
    cfg = config(snapshot_every=50)  # nothing snapshotted: recovery is all journal
    out = run(stream, cfg, 21, lambda p: ray.kill(p.detector, no_restart=False))
    assert_exact(stream, cfg, out)
    assert alert_keys(out) == alert_keys(baseline)
    assert out.detector["held_panes"] == 0 and out.detector["pending_panes"] == 0


def test_alerting_killed_resumes_from_its_file(stream: Any, baseline: Any) -> None:
    cfg = config()

    def kill(p: Pipeline) -> None:
        p.drain()
        assert p.poll_alerts() or True
        ray.kill(p.alerting, no_restart=False)

    out = run(stream, cfg, 22, kill)
    assert_exact(stream, cfg, out)
    assert alert_keys(out) == alert_keys(baseline)


def test_parse_workers_killed_tasks_retry(stream: Any) -> None:
    slow = ParseOptions(test_slowdown_us_per_line=400.0)  # ~0.4 s per batch: catchable
    cfg = config(parse=slow, max_in_flight=2)
    batches = stream.batches[:12]
    kills: list[int] = []

    def kill_one() -> None:
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            n = kill_parse_workers()
            if n:
                kills.append(n)
                return
            time.sleep(0.02)

    with Pipeline(cfg) as pipe:
        for i, batch in enumerate(batches):
            pipe.submit(batch)
            if i in (2, 7):
                kill_one()
        out = pipe.finish()
    assert len(kills) == 2  # both kills found a running parse task
    ref = build_reference(batches, cfg.parse, cfg.sharding, cfg.n_shards)
    assert out.merged_totals == ref.merged
    assert out.shard_totals == ref.per_shard
    assert out.lines_parsed + out.lines_rejected == sum(b.meta.line_count for b in batches)


def test_injector_records_recovery(stream: Any) -> None:
    cfg = config()
    plan = [type("F", (), {"kind": "kill_shard", "at_s": 0.0, "target": 0})()]
    faults = FaultInjector(plan)
    with Pipeline(cfg) as pipe:
        for i, batch in enumerate(stream.batches[:20]):
            pipe.submit(batch)
            if i >= 10:
                faults.tick(pipe, float(i))
        pipe.finish()
        records = faults.finish(pipe, 99.0)
    assert [r["kind"] for r in records] == ["kill_shard"]
    rec = records[0]
    assert rec["at_s"] == 10.0
    assert rec["recovered_s"] >= rec["at_s"]
    assert rec["recovery_s"] == pytest.approx(rec["recovered_s"] - rec["at_s"])


def test_ray_processes_are_this_drivers_descendants() -> None:
    procs = ray_processes()
    names = {p.name() for p in procs}
    assert "raylet" in names and "gcs_server" in names
