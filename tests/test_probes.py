"""Run probes: the CPU accounting behind the harness's own cost."""

from __future__ import annotations

import math

import pytest

from harness.probes import cpu_seconds


def test_cpu_seconds_integrates_percent_over_sample_times() -> None:
    # One core busy for 2 s, then two cores for 1 s: 2 + 2 = 4 CPU seconds,
    # with the ramps between samples counted as the trapezoid rule does.
    series = {"t_s": [0.0, 2.0, 2.0, 3.0], "values": [100.0, 100.0, 200.0, 200.0]}
    assert cpu_seconds(series) == pytest.approx(4.0)
    ramp = {"t_s": [0.0, 1.0], "values": [0.0, 100.0]}
    assert cpu_seconds(ramp) == pytest.approx(0.5)


def test_cpu_seconds_needs_two_matching_samples() -> None:
    assert math.isnan(cpu_seconds({}))
    assert math.isnan(cpu_seconds({"t_s": [0.0], "values": [50.0]}))
    assert math.isnan(cpu_seconds({"t_s": [0.0, 1.0], "values": [50.0]}))


def test_baseline_waits_for_the_store_to_stop_freeing() -> None:
    from types import SimpleNamespace

    from harness.probes import ReplicateProbes

    readings = iter([500, 300, 120, 120, 90, 90, 90, 90])

    class Fake(ReplicateProbes):
        def __init__(self) -> None:  # no Ray: only the settling logic
            pass

        def _read(self) -> SimpleNamespace:
            return SimpleNamespace(used_bytes=next(readings))

    # Falling, a pause between two batches of frees (120, 120), falling again, then
    # steady for three readings: the steady value is the base, not the pause.
    assert Fake()._settled_read(wait_s=5.0, step_s=0.0).used_bytes == 90
    # No time to wait: the first reading stands.
    readings = iter([500, 400, 300])
    assert Fake()._settled_read(wait_s=0.0, step_s=0.0).used_bytes == 500
