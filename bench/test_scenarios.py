"""Scenario benchmarks: small whole-pipeline runs on real Ray, as pytest-benchmark cases.

Run with ``make bench`` (``pytest bench --benchmark-only``); compare with
``--benchmark-autosave`` then ``--benchmark-compare``. Each round is one run of a
short scenario (one replicate) through the library API; the timed value is the
run's wall time, and the harness metrics of the last round (throughput, batch
latency p99, object-store peak, time to detect) go to ``extra_info``.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from harness import api
from harness.results import RunResult

# Metrics copied into extra_info (first complete replicate of the last round).
METRICS = (
    "throughput.lines_per_s",
    "latency.batch_p99_s",
    "object_store.peak_bytes",
    "detection.ttd_p50_s",
    "detection.recall",
    "integrity.ok",
)


def _plan(path: str, overrides: list[str]) -> api.Planned:
    (planned,) = api.plan(path, overrides=[*overrides, "measurement.replicates=1"])
    return planned


CASES = {
    "smoke": ("scenarios/smoke.py", []),
    "smoke_regex": ("scenarios/smoke.py", ["parser.strategy=regex"]),
    "smoke_by_service_2": (
        "scenarios/smoke.py",
        ["sharding.strategy=by_service", "sharding.shards=2"],
    ),
}


@pytest.mark.ray
@pytest.mark.parametrize("case", list(CASES))
def test_scenario(
    benchmark: Any, ray_session: None, calibration: dict[str, Any], case: str
) -> None:
    path, overrides = CASES[case]
    planned = _plan(path, overrides)
    results: list[RunResult] = []

    def run() -> None:
        results.append(api.run_planned(planned, calibration=calibration))

    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    last = results[-1]
    for name in METRICS:
        values = last.metric_values(name)
        value = values[0] if values else None
        benchmark.extra_info[name] = None if value is None or math.isnan(value) else value
    assert last.metric_values("integrity.ok") == [1.0]
    assert benchmark.extra_info["throughput.lines_per_s"] > 0
