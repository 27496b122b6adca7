"""Tests of `logbench validate`: decision logic on synthetic data, checks on a model world,
and one small end-to-end pass on real Ray."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest
from factories import BASE_METADATA, from_samples
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.compare import IncompatibleResults, compare
from harness.power import replicates_for_change
from harness.results import Replicate, RunResult, ScenarioInfo
from harness.validate import CHECKS, add_arguments, check_noise, report, validate
from harness.validation import decide
from harness.validation.phases import FULL, QUICK, Counts, calibrate_knobs, slowdown_side

THR = "throughput.lines_per_s"


# --------------------------------------------------------------------------- pairs


def test_adjacent_pairs_compare_consecutive_windows() -> None:
    pairs = decide.adjacent_pairs(12, 5)
    assert len(pairs) == 3
    assert pairs[0] == (range(0, 5), range(5, 10))
    assert pairs[-1] == (range(2, 7), range(7, 12))
    assert decide.adjacent_pairs(9, 5) == []


def test_aligned_pairs_use_the_same_window_on_both_pools() -> None:
    pairs = decide.aligned_pairs(7, 5)
    assert [a for a, _ in pairs] == [range(0, 5), range(1, 6), range(2, 7)]
    assert all(a == b for a, b in pairs)
    with pytest.raises(ValueError):
        decide.aligned_pairs(7, 0)


@given(st.integers(0, 60), st.integers(1, 10))
@settings(max_examples=50, deadline=None)
def test_pairs_stay_in_the_pool(n: int, size: int) -> None:
    for a, b in decide.adjacent_pairs(n, size):
        assert len(a) == len(b) == size and a.stop <= b.start and b.stop <= n
    assert len(decide.aligned_pairs(n, size)) == max(0, n - size + 1)


def test_select_replicates_renumbers_and_keeps_only_complete() -> None:
    res = from_samples({THR: [1.0, 2.0, 3.0, 4.0]})
    sub = decide.select_replicates(res, [3, 1])
    assert sub.metric_values(THR) == [4.0, 2.0]
    assert [r.index for r in sub.replicates] == [0, 1]
    assert sub.summary[THR]["n"] == 2


def test_mask_settings_lets_a_knobbed_run_be_compared() -> None:
    base = from_samples({THR: [100.0] * 5})
    cand = from_samples({THR: [80.0] * 5}, settings={"testing": {"slowdown_us_per_line": 9}})
    with pytest.raises(IncompatibleResults):
        compare(base, cand)
    masked = decide.mask_settings(cand, base)
    assert masked.metric_values(THR) == [80.0] * 5
    verdict = compare(base, masked, metrics=[THR]).by_name()[THR].verdict
    assert verdict == "regressed"


def test_rate() -> None:
    assert decide.rate([True, False, False, True]) == 0.5
    assert math.isnan(decide.rate([]))


# --------------------------------------------------------------------------- slowdown knob


def test_naive_knob_matches_the_cost_model() -> None:
    # 100k lines/s = 10 µs of wall per line; +20 % slowdown -> +2.5 µs of wall, x2 cores.
    assert decide.naive_slowdown_knob(100_000, 0.20, 2.0) == pytest.approx(5.0)
    with pytest.raises(ValueError):
        decide.naive_slowdown_knob(100_000, 1.0, 2.0)


@given(
    t0=st.floats(1e3, 1e7),
    per_knob=st.floats(1e-9, 1e-5),
    probes=st.lists(st.floats(0.1, 100.0), min_size=1, max_size=4),
    fraction=st.floats(0.01, 0.9),
)
@settings(max_examples=60, deadline=None)
def test_pooled_knob_gives_the_asked_slowdown_under_a_linear_model(
    t0: float, per_knob: float, probes: list[float], fraction: float
) -> None:
    def throughput(knob: float) -> float:
        return 1.0 / (1.0 / t0 + per_knob * knob)

    points = [(k, 1.0 - throughput(k) / t0) for k in probes]
    knob = decide.pooled_knob(points, fraction)
    assert 1.0 - throughput(knob) / t0 == pytest.approx(fraction, rel=1e-6)


def test_pooled_knob_averages_points_rather_than_following_one() -> None:
    # T0/T - 1 = beta * knob; two points with beta 0.08 and 0.12 give 0.10 pooled
    # (least squares through the origin, equal knobs weigh equally).
    points = [(2.0, 1.0 - 1.0 / 1.16), (2.0, 1.0 - 1.0 / 1.24)]
    assert decide.pooled_knob(points, 0.20) == pytest.approx(0.25 / 0.10)
    # A point that sped the pipeline up still counts (it is noise, not absent).
    assert decide.pooled_knob([(1.0, 0.2), (1.0, -0.1)], 0.10) > decide.pooled_knob(
        [(1.0, 0.2)], 0.10
    )


def test_pooled_knob_refuses_points_that_did_not_slow() -> None:
    with pytest.raises(ValueError, match="cannot be calibrated"):
        decide.pooled_knob([(5.0, -0.01)], 0.2)
    with pytest.raises(ValueError, match="cannot be calibrated"):
        decide.pooled_knob([], 0.2)


# --------------------------------------------------------------------------- shifts, costs, noise


def test_median_shift_and_tolerance() -> None:
    assert decide.median_shift([1.0, 1.2, 1.1], [1.6, 1.58, 1.7]) == pytest.approx(0.5)
    assert math.isnan(decide.median_shift([], [1.0]))
    assert decide.shift_within(0.54, 0.5, 0.10)
    assert not decide.shift_within(0.56, 0.5, 0.10)
    assert not decide.shift_within(math.nan, 0.5, 0.10)


def test_cost_and_cv() -> None:
    assert decide.cost_pct([98.0, 98.0], [100.0, 100.0]) == pytest.approx(2.0)
    assert decide.cost_pct([101.0], [100.0]) == pytest.approx(-1.0)
    assert decide.cv_pct([10.0, 10.0, 10.0]) == 0.0
    assert decide.cv_pct([9.0, 11.0]) == pytest.approx(100 * math.sqrt(2) / 10)
    assert math.isnan(decide.cv_pct([5.0]))


def test_cost_interval_brackets_the_cost_and_narrows_with_samples() -> None:
    rng = np.random.default_rng(5)
    few = decide.cost_ci_pct(rng.normal(90, 5, 4).tolist(), rng.normal(100, 5, 4).tolist())
    many = decide.cost_ci_pct(rng.normal(90, 5, 40).tolist(), rng.normal(100, 5, 40).tolist())
    assert few[0] < 10.0 < few[1] and many[0] < 10.0 < many[1]
    assert many[1] - many[0] < few[1] - few[0]
    assert all(math.isnan(x) for x in decide.cost_ci_pct([], [1.0]))


# --------------------------------------------------------------------------- a model world


@dataclass
class Model:
    """A fake pipeline: throughput falls linearly in wall time per line with the knob."""

    t0: float = 50_000.0
    cv: float = 0.01
    per_knob: float = 1e-6  # s of wall per line per µs/line of knob
    sampler_cost: float = 0.005
    stall_effect: float = 1.0  # how much of the stall reaches time-to-detect
    seed: int = 3
    calls: list[tuple[str, tuple[str, ...], int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def __call__(self, variant: str, overrides: Sequence[str], replicates: int) -> RunResult:
        self.calls.append((variant, tuple(overrides), replicates))
        opts = dict(o.split("=", 1) for o in overrides)
        knob = float(opts.get("testing.slowdown_us_per_line", 0))
        stall = float(opts.get("testing.aggregation_stall_s", 0)) * self.stall_effect
        thr = 1.0 / (1.0 / self.t0 + self.per_knob * knob)
        if opts.get("measurement.samplers") != "false":
            thr *= 1.0 - self.sampler_cost
        reps = []
        for i in range(replicates):
            ttd = 0.3 + stall + float(self.rng.normal(0, 0.01))
            reps.append(
                Replicate(
                    index=i,
                    complete=True,
                    started_at_s=0.0,
                    duration_s=1.0,
                    warmup_s=0.1,
                    metrics={THR: thr * float(self.rng.normal(1.0, self.cv))},
                    detections=({"kind": "error_rate", "ttd_s": ttd, "ttd_actual_s": ttd},),
                )
            )
        info = ScenarioInfo("validation", variant, "scenarios/validation.py", opts)
        return RunResult.create(info, dict(BASE_METADATA), reps)


def test_calibrated_knobs_reproduce_the_slowdowns_of_the_model() -> None:
    model = Model(cv=0.0)
    knobs = calibrate_knobs(model, QUICK)
    for fraction, knob in ((0.10, knobs.knob_10), (0.20, knobs.knob_20)):
        slowed = 1.0 / (1.0 / model.t0 + model.per_knob * knob)
        assert 1.0 - slowed / model.t0 == pytest.approx(fraction, rel=1e-4)


def test_calibration_retries_a_probe_lost_in_noise() -> None:
    model = Model(cv=0.0, per_knob=3e-8)  # the first two probes slow by under 10 %
    knobs = calibrate_knobs(model, QUICK)
    # The unknobbed run, then three probes, each knob three times the last.
    first = [float(c[1][0].split("=")[1]) if c[1] else 0.0 for c in model.calls[:4]]
    assert first[0] == 0.0
    assert first[2] == pytest.approx(3 * first[1], rel=1e-5)
    assert first[3] == pytest.approx(3 * first[2], rel=1e-5)
    assert knobs.probe_knob == pytest.approx(first[3], rel=1e-5)
    assert knobs.probe_slowdown >= 0.10


def test_more_measured_points_make_a_better_knob_on_a_noisy_pipeline() -> None:
    # 5 % throughput noise: the line through the probe alone against the fit over
    # every point FULL measures, over 30 seeded pipelines.
    probe_err, pooled_err = [], []
    for seed in range(30):
        model = Model(cv=0.05, seed=seed)
        knobs = calibrate_knobs(model, FULL)
        assert len(knobs.points) > 1
        truth = decide.pooled_knob([(1.0, 1.0 - 1.0 / (1.0 + model.t0 * model.per_knob))], 0.10)
        alone = decide.pooled_knob(knobs.points[:1], 0.10)
        probe_err.append(abs(alone / truth - 1.0))
        pooled_err.append(abs(knobs.knob_10 / truth - 1.0))
    assert float(np.mean(pooled_err)) < 0.9 * float(np.mean(probe_err))


COUNTS = Counts(
    aa_pool=14, side=5, probe_reps=2, blocks=2, block_reps=5, stall_blocks=2, stall_reps=3
)


def test_every_check_passes_in_a_well_behaved_world() -> None:
    model = Model(cv=0.003)
    checks = {c.name: c for c in validate(model, COUNTS, lambda: 1.5)}
    assert set(checks) == set(CHECKS)
    assert all(c.passed is not False for c in checks.values()), [
        (c.name, c.figures) for c in checks.values()
    ]
    figs = checks["aa"].figures
    assert figs["aa.pairs"] == 14 - 2 * 5 + 1 and figs["aa.false_positive_rate"] == 0.0
    assert checks["slowdown"].figures["slowdown.detection_rate_at_20pct"] == 1.0
    slow = checks["slowdown"].figures
    assert slow["slowdown.achieved_pct_at_20pct"] == pytest.approx(20.0, abs=2.0)
    lo, hi = (
        slow["slowdown.achieved_ci_lo_pct_at_10pct"],
        slow["slowdown.achieved_ci_hi_pct_at_10pct"],
    )
    assert lo <= slow["slowdown.achieved_pct_at_10pct"] <= hi and lo < 10.0 < hi
    shift = checks["coordinated_omission"].figures["coordinated_omission.ttd_shift_s"]
    assert shift == pytest.approx(0.5, abs=0.03)
    assert checks["observer"].figures["observer.cost_pct"] == pytest.approx(0.5, abs=1.0)
    assert checks["noise"].figures["noise.replicates_for_5pct"] == 4


def test_slowdown_side_follows_the_noise_within_its_bounds() -> None:
    counts = Counts(
        aa_pool=9, side=5, probe_reps=2, blocks=2, block_reps=3, stall_blocks=1, stall_reps=1
    )
    quiet = from_samples({THR: [100.0, 100.5, 99.5, 100.2]})
    assert slowdown_side(quiet, counts) == 5  # never below the configured side
    rng = np.random.default_rng(1)
    values = (100.0 * (1 + 0.09 * rng.standard_normal(40))).tolist()
    noisy = from_samples({THR: values})
    cv = decide.cv_pct(values) / 100.0
    expected = replicates_for_change(cv, 0.20, power=0.99)
    assert expected is not None and 5 < expected < 16
    assert slowdown_side(noisy, counts) == expected
    wild = from_samples({THR: [100.0, 160.0, 40.0, 120.0]})
    assert slowdown_side(wild, counts) == counts.max_side
    assert slowdown_side(from_samples({THR: [100.0]}), counts) == 5  # no CV yet


def test_a_noisy_world_gets_the_replicates_a_20pct_slowdown_needs() -> None:
    # At 10 % noise, 5 replicates a side call a 20 % slowdown in too few pairs; the
    # check adds interleaved blocks until its pools hold the side the noise asks for.
    model = Model(cv=0.10, seed=11)
    (check,) = validate(model, COUNTS, lambda: 1.0, only=("slowdown",))
    figs = check.figures
    side = figs["slowdown.replicates_per_side"]
    assert isinstance(side, int) and 8 <= side <= COUNTS.max_side
    assert figs["slowdown.pairs_at_20pct"] >= COUNTS.slowdown_pairs  # type: ignore[operator]
    assert check.passed, figs
    # Interleaved unknobbed blocks (calibration runs use probe_reps, not block_reps).
    blocks = [c for c in model.calls if c == ("saturated", (), COUNTS.block_reps)]
    assert COUNTS.blocks < len(blocks) <= COUNTS.max_blocks


def test_checks_fail_when_the_world_misbehaves() -> None:
    model = Model(sampler_cost=0.10, stall_effect=0.0)
    checks = {c.name: c for c in validate(model, COUNTS, lambda: 12.0)}
    assert checks["observer"].passed is False
    assert checks["coordinated_omission"].passed is False
    assert checks["sampler"].passed is False
    assert checks["aa"].passed is True


def test_observer_is_inconclusive_when_noise_straddles_the_target() -> None:
    from harness.validation.phases import check_observer

    def pools(on: list[float], off: list[float]) -> dict[str, RunResult]:
        return {"base": from_samples({THR: on}), "off": from_samples({THR: off})}

    noisy = check_observer(pools([80.0, 120.0, 95.0, 105.0], [100.0, 90.0, 115.0, 85.0]))
    assert noisy.passed is None and "inconclusive" in noisy.detail
    costly = check_observer(pools([90.0, 90.5, 89.5, 90.2], [100.0, 100.5, 99.5, 100.2]))
    assert costly.passed is False
    free = check_observer(pools([100.0, 100.5, 99.5, 100.2], [100.1, 100.4, 99.6, 100.2]))
    assert free.passed is True


def test_observer_reports_the_samplers_cpu_share() -> None:
    from harness.validation.phases import check_observer

    base = from_samples(
        {THR: [100.0, 101.0, 99.0], "harness.sampler_cpu_share": [0.002, 0.004, 0.003]}
    )
    check = check_observer({"base": base, "off": from_samples({THR: [100.0, 99.5, 100.5]})})
    assert check.figures["observer.sampler_cpu_share_pct"] == pytest.approx(0.3)
    assert "0.3% of the run's CPU time" in check.detail
    bare = check_observer({"base": from_samples({THR: [100.0]}), "off": base})
    assert math.isnan(bare.figures["observer.sampler_cpu_share_pct"])


def test_a_noisy_world_raises_false_positives_and_needed_replicates() -> None:
    quiet = check_noise(from_samples({THR: [100.0, 101.0, 99.0]}), None)
    noisy = check_noise(from_samples({THR: [100.0, 120.0, 80.0]}), None)
    assert quiet.figures["noise.cv_pct.baseline"] is None or math.isnan(
        quiet.figures["noise.cv_pct.baseline"]  # type: ignore[arg-type]
    )
    q, n = quiet.figures["noise.replicates_for_5pct"], noisy.figures["noise.replicates_for_5pct"]
    assert isinstance(q, int) and (n is None or n > q)


def test_only_runs_the_selected_checks() -> None:
    model = Model()
    checks = validate(model, COUNTS, lambda: 0.5, only=("sampler",))
    assert [c.name for c in checks] == ["sampler"] and model.calls == []
    validate(model, COUNTS, lambda: 0.5, only=("coordinated_omission",))
    assert model.calls[0] == ("aa", (), 1)  # the discarded warm-up run comes first


def test_report_is_json_with_stable_names_and_null_for_nan() -> None:
    checks = validate(Model(), COUNTS, lambda: 1.0, only=("sampler", "coordinated_omission"))
    checks.append(decide.Check("x", None, "t", {"x.nan": math.nan}))
    doc = json.loads(json.dumps(report(checks, {"cpu_count": 2}, True, 3.0), allow_nan=False))
    assert doc["kind"] == "logbench.validation" and doc["ok"] is True
    assert doc["figures"]["sampler.error_pct"] == 1.0
    assert doc["figures"]["x.nan"] is None
    assert "coordinated_omission.ttd_actual_shift_s" in doc["figures"]


def test_cli_arguments() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--quick", "--json", "out.json", "--only", "sampler"])
    assert args.quick and args.json == "out.json" and args.only == ["sampler"]
    with pytest.raises(SystemExit):
        parser.parse_args(["--only", "nonsense"])


# --------------------------------------------------------------------------- end to end


@pytest.mark.ray
def test_stall_and_sampler_on_real_ray(ray_session: None) -> None:
    from harness import api
    from harness.calibration import calibrate
    from harness.objstore import sampler_accuracy
    from harness.validate import SCENARIO

    calibration = calibrate(rounds=1)

    def run_fn(variant: str, overrides: Sequence[str], replicates: int) -> RunResult:
        (planned,) = api.plan(SCENARIO, variant, list(overrides), replicates)
        return api.run_planned(planned, calibration=calibration)

    tiny = Counts(
        aa_pool=1, side=1, probe_reps=1, blocks=1, block_reps=1, stall_blocks=1, stall_reps=1
    )
    checks = {
        c.name: c
        for c in validate(
            run_fn, tiny, sampler_accuracy, only=("coordinated_omission", "sampler"), warm_up=False
        )
    }
    figures = checks["coordinated_omission"].figures
    # Both arms detected the anomaly (a finite shift needs a TTD on each side); the size
    # of the shift is a timing, checked by the full `logbench validate`, not here.
    assert figures["coordinated_omission.replicates_per_arm"] == 1
    assert math.isfinite(figures["coordinated_omission.ttd_shift_s"])  # type: ignore[arg-type]
    assert math.isfinite(figures["coordinated_omission.ttd_actual_shift_s"])  # type: ignore[arg-type]
    assert 0 <= checks["sampler"].figures["sampler.error_pct"] <= 5.0  # type: ignore[operator]
