"""Power analysis: replicates a change needs, the change a count detects, the adaptive count."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import power


def test_power_of_the_t_test_matches_known_values() -> None:
    # Cohen's tables: d = 1, n = 10 per side, alpha .05 two-sided -> power 0.56.
    assert power.t_test_power(10, 1.0, 0.05) == pytest.approx(0.56, abs=0.01)
    # d = 0.5 needs n = 86 per side for 0.90 (Cohen: 85-86).
    assert power.t_test_power(86, 0.5, 0.05) >= 0.90 > power.t_test_power(80, 0.5, 0.05)


def test_replicates_for_change() -> None:
    assert power.min_replicates_for_test(0.05) == 4  # 2/C(8,4) = 0.029
    assert power.replicates_for_change(0.0) == 4
    quiet, noisy = power.replicates_for_change(0.02), power.replicates_for_change(0.05)
    assert quiet is not None and noisy is not None and 4 <= quiet < noisy
    # CV equal to the change: d = 1 -> t-test needs 23 per side, /0.955 -> 25.
    assert noisy == 25
    assert power.replicates_for_change(1.0, max_n=50) is None


@given(st.floats(0.001, 0.2))
@settings(max_examples=15, deadline=None)
def test_more_noise_never_needs_fewer_replicates(cv: float) -> None:
    a, b = power.replicates_for_change(cv), power.replicates_for_change(cv * 1.5)
    assert a is not None and (b is None or b >= a)


def test_power_analysis_agrees_with_a_simulated_mann_whitney() -> None:
    from scipy.stats import mannwhitneyu

    cv = 0.03
    n = power.replicates_for_change(cv)
    assert n is not None
    rng = np.random.default_rng(7)
    hits = sum(
        mannwhitneyu(rng.normal(1.0, cv, n), rng.normal(0.95, cv, n)).pvalue < 0.05
        for _ in range(400)
    )
    assert hits / 400 >= 0.85  # 0.90 by design; 400 draws leave a few % of slack


def test_detectable_change_inverts_replicates_for_change() -> None:
    for cv in (0.02, 0.05, 0.10):
        n = power.replicates_for_change(cv, 0.05)
        assert n is not None
        # n replicates detect 5 % (and a little less); n - 1 do not quite.
        at_n = power.detectable_change(cv, n)
        assert at_n is not None and at_n <= 0.05 + 1e-9
        fewer = power.detectable_change(cv, n - 1)
        assert fewer is None or fewer > at_n
    assert power.detectable_change(0.05, 3) is None  # 3 a side can never reach p < 0.05


def test_replicates_wanted_follows_the_noise_within_its_bounds() -> None:
    quiet = [100.0, 101.0, 99.0, 100.5, 99.5]  # CV about 0.8 %: the minimum is enough
    assert power.replicates_wanted(quiet, 0.05, minimum=5, maximum=40) == 5
    rng = np.random.default_rng(3)
    noisy = (100.0 * (1 + 0.04 * rng.standard_normal(6))).tolist()
    wanted = power.replicates_wanted(noisy, 0.05, minimum=5, maximum=40)
    cv = float(np.std(noisy, ddof=1) / np.mean(noisy))
    assert wanted == min(power.replicates_for_change(cv, 0.05) or 40, 40) and wanted > 5
    wild = [50.0, 150.0, 80.0, 120.0, 60.0]  # needs far more than the maximum
    assert power.replicates_wanted(wild, 0.05, minimum=5, maximum=12) == 12
    # Fewer values than the minimum: run the minimum first; then at least 3 to see noise.
    assert power.replicates_wanted([100.0], 0.05, minimum=5, maximum=40) == 5
    assert power.replicates_wanted([100.0, 101.0], 0.05, minimum=2, maximum=40) == 3
    assert power.replicates_wanted([100.0, math.nan, 101.0], 0.05, minimum=2, maximum=40) == 3
