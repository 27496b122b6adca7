"""Comparing two results: compatibility, warnings, normalisation and output."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest
from factories import BASE_METADATA, BASE_SETTINGS, from_samples

from harness.compare import (
    IGNORED_SETTINGS,
    CompareError,
    IncompatibleResults,
    compare,
    render_table,
    to_json,
)
from harness.results import RunResult

THR = "throughput.lines_per_s"
P50 = "latency.batch_p50_s"
PEAK = "object_store.peak_bytes"


def noisy(median: float, n: int = 10, rel: float = 0.01, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(median * (1 + rel * rng.standard_normal(n)))


def pair(**cand_kwargs: Any) -> tuple[RunResult, RunResult]:
    base = from_samples({THR: noisy(1000, seed=1), P50: noisy(0.2, seed=2)})
    cand = from_samples({THR: noisy(1000, seed=3), P50: noisy(0.2, seed=4)}, **cand_kwargs)
    return base, cand


def test_same_distribution_is_unchanged_and_default_metrics() -> None:
    base, cand = pair()
    comp = compare(base, cand)
    names = [v.name for v in comp.verdicts]
    assert names == [THR, P50]  # vocabulary order, only metrics both results have
    assert {v.verdict for v in comp.verdicts} == {"unchanged"}
    assert comp.warnings == ()
    assert comp.regressed_gated() == []


def test_regression_is_gated() -> None:
    base = from_samples({THR: noisy(1000, seed=1), P50: noisy(0.2, seed=2), PEAK: noisy(1e6)})
    cand = from_samples({THR: noisy(800, seed=3), P50: noisy(0.3, seed=4), PEAK: noisy(1e6)})
    comp = compare(base, cand)
    by = comp.by_name()
    assert by[THR].verdict == "regressed" and by[P50].verdict == "regressed"
    assert by[PEAK].verdict == "unchanged"
    assert {v.name for v in comp.regressed_gated()} == {THR, P50}


def test_explicit_metrics_are_gated() -> None:
    base = from_samples({"detection.recall": noisy(1.0, seed=5)})
    cand = from_samples({"detection.recall": noisy(0.7, seed=6)})
    assert compare(base, cand).regressed_gated() == []  # recall is not gated by default
    comp = compare(base, cand, metrics=["detection.recall"])
    assert [v.name for v in comp.regressed_gated()] == ["detection.recall"]


def test_uses_raw_replicate_samples_not_summary() -> None:
    base, cand = pair()
    fake_summary = {THR: {"median": 1.0, "mean": 1.0, "min": 1, "max": 1, "n": 10}}
    cand = RunResult(cand.scenario, cand.metadata, cand.replicates, fake_summary)
    assert compare(base, cand, metrics=[THR]).verdicts[0].verdict == "unchanged"


def test_per_metric_tolerance() -> None:
    base = from_samples({THR: noisy(1000, rel=0.002, seed=7)})
    cand = from_samples({THR: noisy(1030, rel=0.002, seed=8)})
    assert compare(base, cand, tolerance=0.05).verdicts[0].verdict == "unchanged"
    assert compare(base, cand, tolerance={THR: 0.01}).verdicts[0].verdict == "improved"
    with pytest.raises(CompareError, match="tolerance"):
        compare(base, cand, tolerance={THR: -0.1})


def test_refuses_different_scenarios() -> None:
    base, _ = pair()
    _, other = pair(name="baseline")
    with pytest.raises(IncompatibleResults, match="different scenarios: base is 'smoke'"):
        compare(base, other)
    _, variant = pair(variant="shards=4")
    with pytest.raises(IncompatibleResults, match=r"candidate is 'smoke\[shards=4\]'"):
        compare(base, variant)


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda s: s["pipeline"].__setitem__("shards", 4), "pipeline.shards"),
        (
            lambda s: s["workload"]["rate"].__setitem__("lines_per_s", 1),
            "workload.rate.lines_per_s",
        ),
        (lambda s: s["pipeline"].__setitem__("batch", 10), "pipeline.batch"),
        (lambda s: s.pop("workload"), "workload"),
        (lambda s: s["pipeline"].__setitem__("parse", True), "pipeline.parse"),
    ],
)
def test_refuses_incompatible_settings(mutate: Any, path: str) -> None:
    settings = copy.deepcopy(BASE_SETTINGS)
    mutate(settings)
    base, cand = pair(settings=settings)
    with pytest.raises(IncompatibleResults, match=f"incompatible settings at '{path}'") as exc:
        compare(base, cand)
    assert "\n" not in str(exc.value)


def test_bool_and_int_settings_differ() -> None:
    a, b = copy.deepcopy(BASE_SETTINGS), copy.deepcopy(BASE_SETTINGS)
    a["flag"], b["flag"] = 1, True
    base, _ = pair(settings=a)
    _, cand = pair(settings=b)
    with pytest.raises(IncompatibleResults, match="'flag'"):
        compare(base, cand)


def test_ignored_settings_may_differ() -> None:
    settings = copy.deepcopy(BASE_SETTINGS)
    settings["ray"]["address"] = "ray://head:10001"
    settings["measurement"] = {"replicates": 10, "warmup_s": 5.0}
    settings["thresholds"] = ["throughput.lines_per_s > 1"]
    base, cand = pair(settings=settings)
    assert len(compare(base, cand).verdicts) == 2
    assert {"ray.address", "measurement.replicates", "measurement.warmup_s"} <= set(
        IGNORED_SETTINGS
    )


def test_warns_on_machine_differences_and_dirty_tree() -> None:
    meta = dict(BASE_METADATA, cpu_count=16, ray="2.61.0", git_dirty=True)
    base, cand = pair(metadata=meta, complete=False)
    comp = compare(base, cand)
    text = " | ".join(comp.warnings)
    assert "cpu_count 2 (base) vs 16" in text
    assert "ray '2.60.0' (base) vs '2.61.0'" in text
    assert "candidate ran from a dirty git tree" in text
    assert "candidate result is partial" in text
    assert "memory_bytes" not in text


def test_memory_warns_only_beyond_one_percent() -> None:
    mem = BASE_METADATA["memory_bytes"]
    for other, warned in ((mem + 128 * 1024, False), (int(mem * 1.5), True)):
        base, cand = pair(metadata=dict(BASE_METADATA, memory_bytes=other))
        text = " | ".join(compare(base, cand).warnings)
        assert ("machine differs: memory_bytes" in text) is warned


def test_normalize_divides_by_own_calibration() -> None:
    # The candidate machine is twice as fast and measures twice the throughput:
    # raw numbers look like +100 %, normalised they are unchanged.
    fast = dict(BASE_METADATA, calibration={"lines_per_s": 2_000_000.0})
    base = from_samples({THR: noisy(1000, seed=1), P50: noisy(0.2, seed=2)})
    cand = from_samples({THR: noisy(2000, seed=3), P50: noisy(0.2, seed=4)}, metadata=fast)
    assert compare(base, cand).by_name()[THR].verdict == "improved"
    comp = compare(base, cand, normalize=True)
    thr = comp.by_name()[THR]
    assert thr.verdict == "unchanged"
    assert thr.base_median == pytest.approx(1000 / 1e6, rel=0.05)
    assert comp.by_name()[P50].base_median == pytest.approx(0.2, rel=0.05)  # not normalizable
    assert "normalized" in render_table(comp)


def test_normalize_refuses_missing_calibration() -> None:
    meta = {k: v for k, v in BASE_METADATA.items() if k != "calibration"}
    base, cand = pair(metadata=meta)
    with pytest.raises(IncompatibleResults, match=r"cannot normalize: candidate has no usable c"):
        compare(base, cand, normalize=True)
    assert compare(base, cand).verdicts  # fine without normalisation


def test_normalize_refuses_calibrations_of_different_modes() -> None:
    one_core = {"lines_per_s": 1e6, "version": 2, "mode": "one_core"}
    all_cores = {**one_core, "mode": "all_cores"}
    base = from_samples(
        {THR: noisy(1000, seed=1)}, metadata=dict(BASE_METADATA, calibration=one_core)
    )
    cand = from_samples(
        {THR: noisy(1000, seed=2)}, metadata=dict(BASE_METADATA, calibration=all_cores)
    )
    with pytest.raises(IncompatibleResults, match="calibration modes differ"):
        compare(base, cand, normalize=True)


def test_unknown_or_undirected_metric() -> None:
    base, cand = pair()
    with pytest.raises(CompareError, match="unknown metric 'nope'"):
        compare(base, cand, metrics=["nope"])
    with pytest.raises(CompareError, match="no direction"):
        compare(base, cand, metrics=["integrity.lines_emitted"])


def test_explicit_metric_absent_is_inconclusive() -> None:
    base, cand = pair()
    v = compare(base, cand, metrics=[PEAK]).verdicts[0]
    assert v.verdict == "inconclusive" and v.n_base == 0


def test_render_table_and_json() -> None:
    base = from_samples({THR: noisy(1000, seed=1), PEAK: [0.0] * 10})
    cand = from_samples(
        {THR: noisy(800, seed=3), PEAK: [5e6] * 10},
        metadata=dict(BASE_METADATA, cpu_model="Other CPU"),
    )
    comp = compare(base, cand)
    table = render_table(comp)
    assert "\x1b[" not in table  # plain text
    for col in ("metric", "base median", "cand median", "Δ %", "CI %", "p", "verdict", "flags"):
        assert col in table
    assert "regressed" in table and "gated" in table and "+inf" in table
    assert "warning: machine differs: cpu_model" in table
    data = to_json(comp)
    json.dumps(data, allow_nan=False)  # strictly JSON
    assert data["regressed_gated"] == [THR, PEAK]
    peak = next(m for m in data["metrics"] if m["name"] == PEAK)
    assert peak["delta_pct"] is None and peak["verdict"] == "regressed"
    assert peak["tolerance"] == 0.05 and peak["gated"] is True


def test_deterministic() -> None:
    base, cand = pair()
    assert to_json(compare(base, cand)) == to_json(compare(base, cand))


def test_gated_metrics_share_one_holm_family() -> None:
    # Two gated metrics: the family's smallest p-value is doubled (Holm's first step).
    base = from_samples(
        {THR: noisy(1000, n=6, rel=0.02, seed=1), P50: noisy(0.2, n=6, rel=0.02, seed=2)}
    )
    cand = from_samples(
        {THR: noisy(930, n=6, rel=0.02, seed=3), P50: noisy(0.2, n=6, rel=0.02, seed=4)}
    )
    comp = compare(base, cand)
    by = comp.by_name()
    assert by[THR].family == 2 and by[P50].family == 2
    alone = compare(base, cand, metrics=[THR]).by_name()[THR]
    assert alone.family == 1
    # The adjusted p is the raw one times the family size at the smallest rank.
    assert by[THR].p_value == pytest.approx(min(1.0, 2 * alone.p_value))
    assert "Holm-adjusted over 2" in render_table(comp)
    assert to_json(comp)["metrics"][0]["p_family"] == 2


def test_ungated_metrics_are_not_adjusted() -> None:
    mean = "object_store.mean_bytes"  # directed but not gated by default
    base = from_samples({THR: noisy(1000, seed=1), P50: noisy(0.2, seed=2), mean: noisy(1e6)})
    cand = from_samples({THR: noisy(1000, seed=3), P50: noisy(0.2, seed=4), mean: noisy(2e6)})
    by = compare(base, cand).by_name()
    assert by[THR].family == 2 and by[P50].family == 2
    assert by[mean].family == 1 and by[mean].verdict == "regressed"
