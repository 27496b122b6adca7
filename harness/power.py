"""How many replicates a change needs: power analysis for the comparison's test.

``logbench compare`` calls a change only when the exact two-sided Mann-Whitney
test is significant (docs/statistics.md). Here: the fewest replicates with which
that test can reach ``alpha`` at all, the replicates per side at which a true
relative change is detected with a given power for a metric of known coefficient
of variation, and the inverse, the smallest change a given count detects. The
t-test's sample size (noncentral t) is inflated by Mann-Whitney's asymptotic
efficiency, 3/π. Used by ``logbench validate`` (the noise check) and by the
runner's adaptive replicate count (``measurement.detect_change_pct``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import stats as sps

from harness.stats import cv, min_p_reachable

# Mann-Whitney's asymptotic relative efficiency against the t-test for normal data.
MW_EFFICIENCY = 3.0 / math.pi
POWER = 0.90
ALPHA = 0.05


def min_replicates_for_test(alpha: float) -> int:
    """Fewest replicates per side with which the exact Mann-Whitney test can reach ``alpha``."""
    n = 1
    while min_p_reachable(n, n) > alpha:
        n += 1
    return n


def t_test_power(n: int, effect: float, alpha: float) -> float:
    """Power of a two-sided two-sample t-test, ``n`` per side, standardised ``effect``."""
    if n < 2:
        return 0.0
    df = 2 * n - 2
    nc = effect * math.sqrt(n / 2.0)
    crit = float(sps.t.ppf(1.0 - alpha / 2.0, df))
    power = float(sps.nct.sf(crit, df, nc) + sps.nct.cdf(-crit, df, nc))
    if math.isfinite(power):
        return power
    # scipy's noncentral t gives NaN for a very large noncentrality; the normal
    # approximation of the noncentral t is accurate exactly there.
    return float(sps.norm.cdf((nc - crit) / math.sqrt(1.0 + crit * crit / (2.0 * df))))


def replicates_for_change(
    cv: float, change: float = 0.05, alpha: float = ALPHA, power: float = POWER, max_n: int = 1000
) -> int | None:
    """Replicates per side for a ``change`` (relative) to be significant with ``power``.

    ``cv`` is the metric's coefficient of variation (a fraction). Never below the
    fewest replicates the exact test needs to reach ``alpha``; ``None`` when more
    than ``max_n`` would be needed.
    """
    if not (change > 0 and 0 < alpha < 1 and 0 < power < 1) or not cv >= 0:
        raise ValueError("need change > 0, 0 < alpha < 1, 0 < power < 1, cv >= 0")
    floor = min_replicates_for_test(alpha)
    if cv == 0:
        return floor
    effect = change / cv
    for n in range(2, max_n + 1):
        if t_test_power(n, effect, alpha) >= power:
            needed = math.ceil(n / MW_EFFICIENCY)
            return max(needed, floor) if needed <= max_n else None
    return None


def detectable_change(
    cv: float, n: int, alpha: float = ALPHA, power: float = POWER
) -> float | None:
    """Smallest relative change that ``n`` replicates per side detect with ``power``
    (the inverse of :func:`replicates_for_change`); ``None`` when ``n`` is below the
    fewest the exact test needs, so that no change can be detected."""
    if n < min_replicates_for_test(alpha) or not cv >= 0:
        return None
    n_t = math.floor(n * MW_EFFICIENCY)  # the t-test sample size n replicates match
    if n_t < 2:
        return None
    scale = max(cv, 1e-12)

    def detected(change: float) -> bool:
        return t_test_power(n_t, change / scale, alpha) >= power

    lo, hi = 0.0, scale
    while not detected(hi):
        hi *= 2.0
    for _ in range(60):  # bisection on the change; power grows with it
        mid = (lo + hi) / 2.0
        lo, hi = (lo, mid) if detected(mid) else (mid, hi)
    return hi


def replicates_wanted(
    values: Sequence[float | None], change: float, minimum: int, maximum: int
) -> int:
    """How many replicates a run should have, given its replicates' values so far.

    At least ``minimum``; then as many as :func:`replicates_for_change` says the
    values' coefficient of variation needs for ``change``, never more than
    ``maximum`` (also when the noise would need more than that, or when too few
    values exist to estimate it: three at least).
    """
    done = [v for v in values if v is not None and math.isfinite(v)]
    if len(done) < max(minimum, 3):
        return max(minimum, 3) if len(done) >= minimum else minimum
    needed = replicates_for_change(cv(done), change, max_n=maximum)
    return maximum if needed is None else max(minimum, min(needed, maximum))
