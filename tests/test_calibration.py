"""The frozen calibration benchmark: fixed workload, sane figures, version guard."""

from __future__ import annotations

import math
import re

import pytest

from harness import calibration
from harness.calibration import (
    CALIBRATION_VERSION,
    WORKLOAD_SHA256,
    CalibrationMismatch,
    CoreCalibration,
    all_core_burst,
    calibrate,
    normalisation_factor,
    workload_digest,
    workload_lines,
)


def test_workload_is_frozen() -> None:
    lines = workload_lines()
    assert len(lines) == calibration.WORKLOAD_LINES
    assert workload_digest(lines) == WORKLOAD_SHA256
    # Pinned here too, so a change to both module constants still fails a test.
    assert WORKLOAD_SHA256 == "9569d61b1b29dc129d8b760fe86ea98c1bf1072dc7e319519c3921bd8d93235e"
    assert CALIBRATION_VERSION == 2


def test_workload_exercises_both_parsers() -> None:
    lines = workload_lines(500)
    assert all(calibration._PY_PATTERN.fullmatch(line) for line in lines)
    assert all(re.fullmatch(calibration._ARROW_PATTERN, line) for line in lines)
    assert any(' "-" ' in line for line in lines)  # dash referer
    assert any(re.search(r'" \d{3} - "', line) for line in lines)  # dash size
    assert len({line.split()[0] for line in lines}) > 100  # many client ips


def test_calibrate_reports_positive_finite_figures() -> None:
    result = calibrate(rounds=3)
    assert result["version"] == CALIBRATION_VERSION
    assert result["mode"] == "one_core"
    assert len(result["samples"]) == 3
    assert all(math.isfinite(s) and s > 0 for s in result["samples"])
    assert min(result["samples"]) <= result["lines_per_s"] <= max(result["samples"])


def test_calibrate_uses_the_injected_clock() -> None:
    ticks = iter(range(0, 1000, 2))  # every round appears to take exactly 2 "seconds"
    result = calibrate(rounds=2, clock=lambda: float(next(ticks)))
    assert result["samples"] == [calibration.WORKLOAD_LINES / 2.0] * 2
    assert result["lines_per_s"] == calibration.WORKLOAD_LINES / 2.0


def test_calibrate_rejects_zero_rounds() -> None:
    with pytest.raises(ValueError):
        calibrate(rounds=0)


def test_normalisation_factor_and_version_guard() -> None:
    fast = {"lines_per_s": 200_000.0, "samples": [], "version": 1}
    slow = {"lines_per_s": 100_000.0, "samples": [], "version": 1}
    with pytest.raises(CalibrationMismatch, match="modes differ"):
        normalisation_factor({**fast, "mode": "all_cores"}, {**slow, "mode": "one_core"})
    assert normalisation_factor(fast, slow) == pytest.approx(2.0)
    with pytest.raises(CalibrationMismatch, match="versions differ"):
        normalisation_factor(fast, {**slow, "version": 2})
    with pytest.raises(CalibrationMismatch, match="no usable calibration"):
        normalisation_factor(fast, None)
    with pytest.raises(CalibrationMismatch):
        normalisation_factor({"lines_per_s": float("nan"), "version": 1}, slow)


def test_core_calibration_accumulates_bursts_and_reports_the_median() -> None:
    calls: list[tuple[int, int]] = []

    def fake_burst(cores: int, rounds: int) -> list[float]:
        calls.append((cores, rounds))
        return [100.0 * (len(calls) + i) for i in range(cores * rounds)]

    cal = CoreCalibration(cores=2, rounds=2, burst_fn=fake_burst)
    assert cal.result() is None  # nothing measured yet: nothing to claim
    cal.burst()
    cal.burst()
    result = cal.result()
    assert result is not None
    assert calls == [(2, 2), (2, 2)]
    assert result["samples"] == [100.0, 200.0, 300.0, 400.0, 200.0, 300.0, 400.0, 500.0]
    assert result["lines_per_s"] == 300.0
    assert (result["mode"], result["cores"], result["bursts"]) == ("all_cores", 2, 2)
    assert result["version"] == CALIBRATION_VERSION


@pytest.mark.usefixtures("ray_session")
def test_all_core_burst_runs_one_task_per_core_under_ray() -> None:
    samples = all_core_burst(cores=2, rounds=2)
    assert len(samples) == 4  # 2 cores x 2 timed rounds
    assert all(math.isfinite(s) and s > 0 for s in samples)
