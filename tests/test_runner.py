"""The runner end to end on real Ray: a smoke run gives a valid, honest result."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import api
from harness.payload import build_payload
from harness.raysession import FREE_OBJECTS_PERIOD_MS
from harness.results import load_result

pytestmark = pytest.mark.usefixtures("ray_session")


@pytest.fixture(scope="module")
def smoke_result(tmp_path_factory):
    (planned,) = api.plan("scenarios/smoke.py", replicates=2)
    result = api.run_planned(planned)  # calibrates in-session
    path = api.save(result, tmp_path_factory.mktemp("runs"))
    return result, path


def test_result_file_is_valid_and_complete(smoke_result) -> None:
    _, path = smoke_result
    loaded = load_result(path)
    assert loaded.complete
    assert loaded.scenario.name == "smoke"
    assert len(loaded.replicates) == 2
    cal = loaded.metadata["calibration"]
    # One all-core burst before each replicate and one after the last, on both cores.
    assert (cal["mode"], cal["cores"], cal["bursts"]) == ("all_cores", 2, 3)
    assert len(cal["samples"]) == 2 * 3 * 3  # cores x rounds x bursts
    assert min(cal["samples"]) <= cal["lines_per_s"] <= max(cal["samples"])
    assert loaded.scenario.settings["generator"]["duration_s"] == 1.0
    # Read back from the GCS of the Ray the tests started with logbench's default.
    assert loaded.metadata["ray_free_objects_period_ms"] == FREE_OBJECTS_PERIOD_MS == 0


def test_metrics_are_measured_not_empty(smoke_result) -> None:
    result, _ = smoke_result
    for rep in result.replicates:
        m = rep.metrics
        assert m["throughput.lines_per_s"] > 0
        assert m["object_store.peak_bytes"] > 0
        assert m["integrity.ok"] == 1.0, rep.integrity
        assert (
            m["integrity.lines_emitted"]
            == m["integrity.lines_parsed"] + m["integrity.lines_rejected"]
        )
        assert m["latency.batch_p99_s"] >= m["latency.batch_p50_s"] > 0
        assert m["resources.cpu_us_per_line"] > 0
        series = rep.series
        # One throughput bin per second, from 0 to the last completion; the
        # store is sampled (4 per second) for the whole replicate.
        thr = series["throughput.lines_per_s"]
        assert thr["t_s"] == [float(i) for i in range(len(thr["t_s"]))]
        assert sum(thr["values"]) == m["integrity.lines_emitted"]
        assert len(series["object_store.bytes"]["values"]) >= int(rep.duration_s)
        assert m["object_store.inflight_bound_bytes"] > 0
        assert m["object_store.peak_over_bound"] == pytest.approx(
            m["object_store.peak_bytes"] / m["object_store.inflight_bound_bytes"]
        )


def test_end_to_end_rate_spans_first_emit_to_final_flush(smoke_result) -> None:
    result, _ = smoke_result
    (planned,) = api.plan("scenarios/smoke.py")
    last_emit_s = float(build_payload(planned.scenario.generator).planned_s[-1])
    for rep in result.replicates:
        m = rep.metrics
        emitted = m["integrity.lines_emitted"]
        # The flush ends after the last batch's planned emit time and before the
        # replicate's clock stops (which also covers the samplers' shutdown).
        assert emitted / rep.duration_s <= m["throughput.end_to_end_lines_per_s"]
        assert m["throughput.end_to_end_lines_per_s"] < emitted / last_emit_s


def test_every_injected_anomaly_is_detected(smoke_result) -> None:
    result, _ = smoke_result
    for rep in result.replicates:
        kinds = sorted(d["kind"] for d in rep.detections)
        assert kinds == ["error_rate", "latency", "user_activity"]
        assert all(d["detected"] for d in rep.detections), rep.detections
        for d in rep.detections:
            # planned basis >= actual basis: emission can only be late, never early
            assert d["ttd_s"] >= d["ttd_actual_s"] - 1e-6
            assert d["ttd_s"] > 0
        assert rep.metrics["detection.recall"] == 1.0
        assert rep.metrics["detection.precision"] == 1.0


def test_summary_covers_replicates(smoke_result) -> None:
    result, _ = smoke_result
    row = result.summary["throughput.lines_per_s"]
    samples = result.metric_values("throughput.lines_per_s")
    assert row["n"] == 2
    assert min(samples) <= row["median"] <= max(samples)


def test_result_lands_in_the_requested_directory(smoke_result) -> None:
    _, path = smoke_result
    assert Path(path).suffix == ".json" and Path(path).name.startswith("smoke-")


def test_parser_engine_selects_the_pipeline_class() -> None:
    from harness.runner import _engine
    from logpipe.data_engine import DataPipeline
    from logpipe.pipeline import Pipeline

    assert _engine("tasks") is Pipeline
    assert _engine("ray_data") is DataPipeline


def test_ray_data_engine_runs_the_smoke_scenario_exactly() -> None:
    (planned,) = api.plan("scenarios/smoke.py", overrides=["parser.engine=ray_data"], replicates=1)
    result = api.run_planned(planned, calibration={"lines_per_s": 1.0, "version": 2})
    (rep,) = result.replicates
    assert result.scenario.settings["parser"]["engine"] == "ray_data"
    assert rep.complete and rep.metrics["integrity.ok"] == 1.0, rep.integrity
    assert rep.metrics["detection.recall"] == 1.0
    assert rep.metrics["throughput.lines_per_s"] > 0


def test_bound_metrics_average_the_completed_batches_and_skip_regex() -> None:
    import math

    import numpy as np

    from harness.payload import Payload
    from harness.runner import _bound_metrics, _Trace
    from logpipe.batch import make_batch
    from logpipe.parse import ParseOptions
    from logpipe.pipeline import PipelineConfig

    batches = [make_batch(i, b"x" * 1000 * (i + 1), 1, 0, 0, "none") for i in range(3)]
    payload = Payload(batches, np.zeros(3))
    trace = _Trace(output_bytes={0: 4000, 2: 8000})  # batch 1 never completed
    cfg = PipelineConfig(max_in_flight=4)
    m = _bound_metrics(cfg, payload, trace, peak=30_000.0)
    # Compressed ("none" codec): 1000 and 3000 bytes; outputs 4000 and 8000.
    assert m["object_store.inflight_bound_bytes"] == 4 * (2000 + 6000)
    assert m["object_store.peak_over_bound"] == pytest.approx(30_000 / 32_000)
    regex = PipelineConfig(max_in_flight=4, parse=ParseOptions(strategy="regex"))
    assert math.isnan(
        _bound_metrics(regex, payload, trace, 30_000.0)["object_store.peak_over_bound"]
    )


def test_adaptive_replicates_stop_where_the_noise_says(tmp_path: Path) -> None:
    from harness.power import replicates_wanted

    (planned,) = api.plan(
        "scenarios/smoke.py",
        replicates=2,
        overrides=["measurement.detect_change_pct=5", "measurement.max_replicates=4"],
    )
    result = api.run_planned(planned)
    values = result.metric_values("throughput.lines_per_s")
    n = len(values)
    assert result.complete and 2 <= n <= 4 and len(result.replicates) == n

    def wanted(k: int) -> int:
        return replicates_wanted(values[:k], 0.05, minimum=2, maximum=4)

    # It went on while the replicates so far asked for more, and stopped once they
    # did not (or at the maximum).
    assert all(wanted(k) > k for k in range(2, n))
    assert n == 4 or wanted(n) <= n
