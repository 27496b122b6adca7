"""The demo's seeded scenario: every anomaly alerted, a steady stream raises none."""

from __future__ import annotations

import pytest

from harness import api
from harness.demo import demo_scenario, summary_of

pytestmark = pytest.mark.usefixtures("ray_session")

CALIBRATION = {"lines_per_s": 1.0, "samples": [1.0], "version": 1}


def test_seeded_steady_stream_raises_no_alert() -> None:
    steady = demo_scenario(duration_s=14.0).with_overrides(["generator.injections=[]"])
    result = api.run_planned(api.Planned("demo", None, steady), calibration=CALIBRATION)
    summary = summary_of(result)
    assert summary["lines_emitted"] > 0
    assert summary["injected"] == []
    assert summary["alerts"] == []
    assert result.replicates[0].metrics["integrity.ok"] == 1.0


def test_demo_scenario_places_every_anomaly_after_the_baseline_warmup() -> None:
    scn = demo_scenario(duration_s=20.0)
    starts = [i.start_s for i in scn.generator.injections]
    assert starts == sorted(starts) and starts[0] >= 4.0
    assert all(i.start_s + i.duration_s <= 20.0 for i in scn.generator.injections)
