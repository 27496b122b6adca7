"""Shared workload pieces, and the scenario modules built from them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.scenario import Matrix, Scenario, ScenarioError, load_scenario_module
from harness.workloads import one_of_each, saturating

ROOT = Path(__file__).resolve().parent.parent
SCENARIO_DIR = ROOT / "scenarios"
SHIPPED = sorted(p for p in SCENARIO_DIR.glob("*.py") if not p.name.startswith("_"))
BASELINES = ROOT / "results" / "baselines"
KINDS = ["error_rate", "latency", "user_activity"]


def variants(path: Path) -> list[tuple[str, Scenario]]:
    loaded = load_scenario_module(path)
    return loaded.variants() if isinstance(loaded, Matrix) else [("", loaded)]


def test_one_of_each_gives_every_kind_in_order() -> None:
    injections = one_of_each((1.0, 1.5, 2.5), 0.5)
    assert [i.kind for i in injections] == KINDS
    assert [i.start_s for i in injections] == [1.0, 1.5, 2.5]
    assert all(i.duration_s == 0.5 and i.key is None for i in injections)


def test_one_of_each_rejects_bad_values() -> None:
    with pytest.raises(ScenarioError, match=r"^generator\.injections\[\]\.duration_s"):
        one_of_each((1.0, 1.0, 1.0), 0.0)
    with pytest.raises(ValueError):
        one_of_each((1.0, 1.0), 1.0)  # type: ignore[arg-type]


def test_saturating_is_a_constant_rate_with_one_anomaly_of_each_kind() -> None:
    g = saturating(
        250_000, 3.0, batch_lines=2_000, event_speed=5.0, anomalies_at=(1, 1.2, 1.4), anomaly_s=1
    )
    assert g.rate.kind == "constant" and g.rate.peak_rate() == 250_000
    assert (g.duration_s, g.batch_lines, g.event_speed) == (3.0, 2_000, 5.0)
    assert [i.kind for i in g.injections] == KINDS
    assert [i.start_s for i in g.injections] == [1, 1.2, 1.4]


def test_saturating_validates_like_a_generator_spec() -> None:
    with pytest.raises(ScenarioError, match="after the end of the run"):
        saturating(
            100_000,
            1.0,
            batch_lines=1_000,
            event_speed=2.0,
            anomalies_at=(0.5, 0.6, 0.9),
            anomaly_s=0.2,
        )


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_scenario_loads_and_resolves(path: Path) -> None:
    for name, scenario in variants(path):
        settings = scenario.to_dict()
        assert settings["name"] == path.stem, name
        # The detector settings resolve in full (an empty mapping would mean the
        # detector config could not be built and the settings silently changed).
        assert settings["detector"]["warmup_windows"] >= 1, name


def baseline_settings(name: str) -> Any:
    recorded = json.loads((BASELINES / f"{name}.json").read_text())
    assert recorded["scenario"]["name"] == name and recorded["scenario"]["variant"] is None
    return recorded["scenario"]["settings"]


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """The dotted paths at which two plain settings trees differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(a.keys() | b.keys())
        return [d for k in keys for d in differences(a.get(k), b.get(k), f"{path}.{k}".strip("."))]
    # As the gate compares: 1 and 1.0 are equal, 1 and True are not.
    same = a == b and (type(a) is bool) == (type(b) is bool)
    return [] if same else [path or "settings"]


def test_differences_names_nested_paths() -> None:
    assert differences({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3, "d": 4}}) == ["a.c", "a.d"]
    assert differences({"x": [1, 2]}, {"x": [1, 2]}) == []
    assert differences({"x": 1}, {"x": True}) == ["x"]
    assert differences({"x": 1}, {"x": 1.0}) == []


def test_smoke_settings_equal_the_ci_baseline() -> None:
    # The CI gate compares runs with the baseline by their settings: a refactor of
    # the scenario modules must not change them.
    smoke = load_scenario_module(SCENARIO_DIR / "smoke.py")
    assert isinstance(smoke, Scenario)
    recorded = baseline_settings("smoke")
    current = json.loads(json.dumps(smoke.to_dict()))
    changed = differences(recorded, current)
    assert not changed, f"smoke settings differ from results/baselines/smoke.json at {changed}"


def test_batch_size_varies_only_the_batch_size_above_capacity() -> None:
    found = variants(SCENARIO_DIR / "batch_size.py")
    assert [s.generator.batch_lines for _, s in found] == [5_000, 10_000, 20_000, 40_000]
    plain = [s.to_dict() for _, s in found]
    for settings in plain:
        settings["generator"].pop("batch_lines")
    assert all(p == plain[0] for p in plain)
    s = found[0][1]
    g = s.generator
    # Offered faster than 2 cores parse (smoke's rule), for about 2 s.
    assert g.rate.peak_rate() >= 200_000 and g.duration_s <= 3.0
    assert (s.parser.parallelism, s.sharding.strategy, s.sharding.shards) == (2, "by_service", 2)
    assert s.measurement.replicates == 3
    # Every anomaly starts after the detector's warm-up (event time) and ends in the run.
    warmup_event_s = s.detector["warmup_windows"] * s.windows.slide_s
    assert all(warmup_event_s < i.start_s * g.event_speed for i in g.injections)
    assert [i.kind for i in g.injections] == KINDS
    assert all(i.start_s >= s.measurement.warmup_s for i in g.injections)
    metrics = " ".join(s.thresholds)
    assert "integrity.ok" in metrics and "detection.recall" in metrics
    assert "throughput" not in metrics and "latency" not in metrics and "ttd" not in metrics


def test_validation_aa_variant_is_the_smoke_scenario() -> None:
    # The A/A check and the smoke noise figure must measure what CI gates with.
    smoke = load_scenario_module(SCENARIO_DIR / "smoke.py")
    assert isinstance(smoke, Scenario)
    aa = dict(variants(SCENARIO_DIR / "validation.py"))["aa"]
    mine, theirs = aa.to_dict(), smoke.to_dict()
    # What may differ: naming, the gate's thresholds, how many replicates and the
    # validation's permission to switch test knobs on (every knob stays off).
    for settings in (mine, theirs):
        for key in ("name", "description", "thresholds", "allow_test_knobs"):
            settings.pop(key, None)
        settings["measurement"].pop("replicates")
    changed = differences(theirs, mine)
    assert not changed, f"validation 'aa' differs from smoke at {changed}"
