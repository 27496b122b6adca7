"""Comparison statistics against known distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.stats import (
    bootstrap_ci_ratio,
    cv,
    holm,
    mann_whitney,
    min_p_reachable,
    relative_change,
    verdict,
)


def noisy(median: float, n: int, rel_noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return median * (1.0 + rel_noise * rng.standard_normal(n))


def test_min_p_reachable_values() -> None:
    assert min_p_reachable(2, 2) == pytest.approx(2 / 6)
    assert min_p_reachable(3, 3) == pytest.approx(0.1)
    assert min_p_reachable(4, 4) == pytest.approx(2 / 70)
    assert min_p_reachable(10, 10) == pytest.approx(2 / math.comb(20, 10))
    assert min_p_reachable(1, 1) == 1.0
    assert min_p_reachable(0, 5) == 1.0


def test_min_p_reachable_is_attained_by_scipy() -> None:
    # Complete separation without ties is the most extreme arrangement.
    for n1, n2 in [(3, 3), (4, 4), (3, 5), (5, 6)]:
        p = mann_whitney(list(range(n1)), list(range(100, 100 + n2)))
        assert p == pytest.approx(min_p_reachable(n1, n2))


def test_mann_whitney_basics() -> None:
    assert mann_whitney([1.0] * 5, [1.0] * 5) == 1.0
    assert mann_whitney([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]) == pytest.approx(1.0)
    assert mann_whitney([], [1.0]) == 1.0
    assert mann_whitney(noisy(100, 12, 0.01, 1), noisy(150, 12, 0.01, 2)) < 1e-4


def test_cv() -> None:
    assert cv([10.0, 10.0, 10.0]) == 0.0
    assert cv([5.0]) == 0.0
    assert cv([90.0, 100.0, 110.0]) == pytest.approx(0.1)
    assert cv([-1.0, 1.0]) == math.inf
    assert cv([1.0, None, math.nan, 1.0]) == 0.0


def test_relative_change_zero_handling() -> None:
    assert relative_change(100.0, 120.0) == pytest.approx(0.2)
    assert relative_change(0.0, 0.0) == 0.0
    assert relative_change(0.0, 3.0) == math.inf
    assert relative_change(0.0, -3.0) == -math.inf


def test_identical_samples_unchanged() -> None:
    x = noisy(100, 10, 0.02, 3)
    v = verdict(x, x[::-1], "higher")
    assert v.verdict == "unchanged" and v.delta_pct == 0.0
    assert v.p_value is not None and v.p_value > 0.9
    c = verdict([5.0] * 3, [5.0] * 3, "lower")
    assert c.verdict == "unchanged" and c.p_value is None  # 3 vs 3 cannot be tested


@pytest.mark.parametrize(
    ("direction", "expected"), [("higher", "improved"), ("lower", "regressed")]
)
def test_clear_increase_by_direction(direction: str, expected: str) -> None:
    base, cand = noisy(100, 10, 0.02, 10), noisy(120, 10, 0.02, 11)
    v = verdict(base, cand, direction, name="m")
    assert v.verdict == expected
    assert v.name == "m" and v.n_base == v.n_cand == 10
    assert 15 < v.delta_pct < 25 and v.ci_lo_pct > 5
    assert v.p_value is not None and v.p_value < 0.001
    assert not v.erratic


@pytest.mark.parametrize(
    ("direction", "expected"), [("higher", "regressed"), ("lower", "improved")]
)
def test_clear_decrease_by_direction(direction: str, expected: str) -> None:
    base, cand = noisy(100, 10, 0.02, 20), noisy(80, 10, 0.02, 21)
    v = verdict(base, cand, direction)
    assert v.verdict == expected and v.ci_hi_pct < -5


def test_two_samples_never_call_a_change() -> None:
    v = verdict([100.0, 101.0], [300.0, 305.0], "lower")
    assert v.verdict == "inconclusive"
    assert v.p_value is None and v.delta_pct > 150


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(1, 1e6), min_size=1, max_size=3),
    st.lists(st.floats(1, 1e6), min_size=1, max_size=3),
    st.sampled_from(["higher", "lower"]),
)
def test_tiny_samples_are_never_a_verdict(base: list[float], cand: list[float], d: str) -> None:
    assert verdict(base, cand, d, n_boot=200).verdict in ("unchanged", "inconclusive")


def test_tiny_samples_within_tolerance_are_unchanged() -> None:
    v = verdict([100.0, 100.5], [100.2, 100.7], "higher")
    assert v.verdict == "unchanged" and abs(v.ci_hi_pct) <= 5


def test_small_real_change_below_tolerance_is_not_called() -> None:
    base, cand = noisy(100, 20, 0.002, 30), noisy(101, 20, 0.002, 31)
    v = verdict(base, cand, "higher", tolerance=0.05)
    assert v.p_value is not None and v.p_value < 0.05
    assert v.verdict == "unchanged"


def test_noise_without_shift_is_unchanged() -> None:
    base, cand = noisy(100, 10, 0.03, 40), noisy(100, 10, 0.03, 41)
    assert verdict(base, cand, "higher").verdict == "unchanged"


def test_high_cv_is_flagged_erratic() -> None:
    base, cand = noisy(100, 10, 0.3, 50), noisy(100, 10, 0.01, 51)
    v = verdict(base, cand, "higher", max_cv=0.10)
    assert v.erratic
    assert not verdict(cand, cand * 1.01, "higher", max_cv=0.10).erratic


def test_nan_and_none_are_dropped() -> None:
    base = [*noisy(100, 10, 0.01, 60), math.nan, None]
    cand = [*noisy(130, 10, 0.01, 61), None]
    v = verdict(base, cand, "higher")
    assert v.n_base == 10 and v.n_cand == 10 and v.verdict == "improved"


def test_empty_side_is_inconclusive() -> None:
    v = verdict([], [1.0, 2.0], "lower")
    assert v.verdict == "inconclusive" and "base" in v.reason and math.isnan(v.delta_pct)
    assert verdict([None, math.nan], [1.0], "lower").n_base == 0


def test_zero_baseline() -> None:
    v = verdict([0.0] * 10, [1.0] * 10, "lower")
    assert v.verdict == "regressed" and v.delta_pct == math.inf
    assert verdict([0.0] * 10, [0.0] * 10, "lower").verdict == "unchanged"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="direction"):
        verdict([1.0], [1.0], "up")
    with pytest.raises(ValueError, match="tolerance"):
        verdict([1.0], [1.0], "higher", tolerance=-1)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci_ratio([1.0], [1.0], confidence=1.5)


def test_bootstrap_is_seeded() -> None:
    base, cand = noisy(100, 8, 0.05, 70), noisy(110, 8, 0.05, 71)
    a = bootstrap_ci_ratio(base, cand, rng=np.random.default_rng(5))
    b = bootstrap_ci_ratio(base, cand, rng=np.random.default_rng(5))
    assert a == b
    assert bootstrap_ci_ratio(base, cand) == bootstrap_ci_ratio(base, cand)
    assert verdict(base, cand, "higher") == verdict(base, cand, "higher")


def test_bootstrap_ci_covers_true_shift() -> None:
    # 90 % intervals over 60 synthetic experiments: coverage should be near 90 %;
    # a percentile bootstrap of medians at n=15 is known to under-cover a little.
    rng = np.random.default_rng(123)
    true_shift, covered, trials = 0.10, 0, 60
    for _ in range(trials):
        base = 100 * (1 + 0.05 * rng.standard_normal(15))
        cand = 110 * (1 + 0.05 * rng.standard_normal(15))
        lo, hi = bootstrap_ci_ratio(base, cand, 0.90, n_boot=1000, rng=rng)
        assert lo <= hi
        covered += lo <= true_shift <= hi
    assert covered / trials >= 0.75


def test_bootstrap_ci_contains_point_estimate() -> None:
    base, cand = noisy(50, 9, 0.1, 80), noisy(40, 9, 0.1, 81)
    lo, hi = bootstrap_ci_ratio(base, cand)
    point = float(np.median(cand)) / float(np.median(base)) - 1
    assert lo <= point <= hi
    assert hi < 0


def test_holm_adjusts_step_down_and_keeps_order() -> None:
    adj = holm({"a": 0.01, "b": 0.04, "c": 0.03})
    # ranks: a (x3), c (x2), b (x1), each at least the one before it
    assert adj == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})
    assert holm({"x": 0.02}) == {"x": 0.02}  # a family of one is not adjusted
    assert holm({"a": 0.6, "b": 0.9}) == {"a": 1.0, "b": 1.0}  # capped at 1
    assert holm({}) == {}


def test_family_needs_reachable_significance() -> None:
    base, cand = [100.0, 101, 102, 103], [80.0, 81, 82, 83]  # complete separation, 4 vs 4
    alone = verdict(base, cand, "higher")
    assert alone.verdict == "regressed"  # p = 0.029 <= 0.05
    # Two gated metrics: 2 x 0.029 > 0.05, so 4 vs 4 cannot call anything.
    paired = verdict(base, cand, "higher", family=2, adjusted_p=holm({"m": 0.029, "n": 0.5})["m"])
    assert paired.verdict == "inconclusive" and paired.p_value is None
    assert paired.family == 2
    with pytest.raises(ValueError, match="family"):
        verdict(base, cand, "higher", family=0)


def test_adjusted_p_decides_significance() -> None:
    base, cand = list(noisy(100, 8, 0.01, 1)), list(noisy(80, 8, 0.01, 2))
    raw = verdict(base, cand, "higher")
    assert raw.verdict == "regressed"
    adjusted = verdict(base, cand, "higher", family=3, adjusted_p=0.2)
    assert adjusted.p_value == 0.2 and adjusted.verdict == "unchanged"
