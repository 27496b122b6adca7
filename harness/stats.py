"""Statistics for comparing two sets of replicate measurements.

Decision rules are documented in ``docs/statistics.md``. In short: a change is
called only when a Mann-Whitney U test is significant, the relative change of
the median is at least the tolerance, and the bootstrap confidence interval of
that change excludes zero. When the sample sizes cannot reach significance at
all, the verdict is never "improved"/"regressed". Everything is deterministic:
random resampling uses an injected (or fixed-seed) ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

__all__ = [
    "DEFAULT_SEED",
    "VERDICTS",
    "MetricVerdict",
    "bootstrap_ci_ratio",
    "clean",
    "cv",
    "holm",
    "mann_whitney",
    "min_p_reachable",
    "relative_change",
    "verdict",
]

DEFAULT_SEED = 20240601
VERDICTS = ("improved", "regressed", "unchanged", "inconclusive")


def clean(samples: Iterable[float | None]) -> np.ndarray:
    """Samples as a float array with ``None`` and NaN dropped (±inf kept)."""
    arr = np.asarray([np.nan if x is None else x for x in samples], dtype=float)
    return arr[~np.isnan(arr)]


def relative_change(base: float, cand: float) -> float:
    """``cand / base - 1`` with 0 -> 0 counted as no change and x/0 as ±inf."""
    if base == 0:
        return 0.0 if cand == 0 else math.copysign(math.inf, cand)
    return cand / base - 1.0


def _relative_changes(base: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Vectorised :func:`relative_change` (``base`` may be negative: divide by |base|)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (cand - base) / np.abs(base)
    zero = base == 0
    out[zero] = np.where(cand[zero] == 0, 0.0, np.copysign(np.inf, cand[zero]))
    return out


def bootstrap_ci_ratio(
    base: Iterable[float | None],
    cand: Iterable[float | None],
    confidence: float = 0.90,
    n_boot: int = 2000,
    rng: np.random.Generator | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``median(cand) / median(base) - 1``.

    Each side is resampled independently with replacement. Quantiles use the
    nearest order statistics outward (never interpolated), so the interval is
    conservative and well defined when some ratios are infinite.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    b, c = clean(base), clean(cand)
    if b.size == 0 or c.size == 0:
        return (math.nan, math.nan)
    gen = rng if rng is not None else np.random.default_rng(DEFAULT_SEED)
    b_med = np.median(b[gen.integers(0, b.size, size=(n_boot, b.size))], axis=1)
    c_med = np.median(c[gen.integers(0, c.size, size=(n_boot, c.size))], axis=1)
    ratios = _relative_changes(b_med, c_med)
    tail = (1.0 - confidence) / 2.0
    lo = float(np.quantile(ratios, tail, method="lower"))
    hi = float(np.quantile(ratios, 1.0 - tail, method="higher"))
    return (lo, hi)


def mann_whitney(base: Iterable[float | None], cand: Iterable[float | None]) -> float:
    """Two-sided Mann-Whitney U p-value (1.0 when every value is identical)."""
    b, c = clean(base), clean(cand)
    if b.size == 0 or c.size == 0:
        return 1.0
    pooled = np.concatenate([b, c])
    if np.all(pooled == pooled[0]):
        return 1.0
    return float(sps.mannwhitneyu(c, b, alternative="two-sided").pvalue)


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm-Bonferroni adjusted p-values of a family of tests (step-down).

    Comparing ``p_adj <= alpha`` for each test keeps the chance of calling any
    change when there is none (the family-wise error rate) at ``alpha``, however
    many metrics are gated together; Holm is uniformly more powerful than
    Bonferroni and needs no independence between the tests.
    """
    order = sorted(p_values, key=lambda k: p_values[k])
    m = len(order)
    adjusted: dict[str, float] = {}
    running = 0.0
    for rank, key in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[key]))
        adjusted[key] = running
    return adjusted


def min_p_reachable(n1: int, n2: int) -> float:
    """Smallest two-sided exact Mann-Whitney p-value possible: ``2 / C(n1+n2, n1)``."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    return min(1.0, 2.0 / math.comb(n1 + n2, n1))


def cv(samples: Iterable[float | None]) -> float:
    """Coefficient of variation ``stdev / |mean|`` (sample stdev).

    0 for fewer than two samples or no spread; ``inf`` for spread around a zero mean.
    """
    x = clean(samples)
    if x.size < 2:
        return 0.0
    sd = float(np.std(x, ddof=1))
    mean = float(np.mean(x))
    if sd == 0:
        return 0.0
    return math.inf if mean == 0 else sd / abs(mean)


@dataclass(frozen=True)
class MetricVerdict:
    """The outcome of comparing one metric; percentages are relative to the base median."""

    name: str | None
    verdict: str
    delta_pct: float
    ci_lo_pct: float
    ci_hi_pct: float
    p_value: float | None  # None when the sample sizes cannot reach significance
    erratic: bool
    n_base: int
    n_cand: int
    base_median: float
    cand_median: float
    reason: str
    family: int = 1  # tests whose p-values were Holm-adjusted together (1: not adjusted)


def verdict(
    base: Iterable[float | None],
    cand: Iterable[float | None],
    direction: str,
    tolerance: float = 0.05,
    alpha: float = 0.05,
    max_cv: float = 0.10,
    *,
    confidence: float = 0.90,
    n_boot: int = 2000,
    rng: np.random.Generator | None = None,
    name: str | None = None,
    family: int = 1,
    adjusted_p: float | None = None,
) -> MetricVerdict:
    """Decide improved / regressed / unchanged / inconclusive for one metric.

    When the metric is one of ``family`` metrics gated together, pass its
    Holm-adjusted p-value as ``adjusted_p`` (see :func:`holm`); significance is
    then possible only when ``family`` times the smallest reachable p is within
    ``alpha``.
    """
    if direction not in ("higher", "lower"):
        raise ValueError(f"direction must be 'higher' or 'lower', got {direction!r}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    b, c = clean(base), clean(cand)
    b_med = float(np.median(b)) if b.size else math.nan
    c_med = float(np.median(c)) if c.size else math.nan
    if family < 1:
        raise ValueError(f"family must be >= 1, got {family}")
    testable = b.size > 0 and c.size > 0 and family * min_p_reachable(b.size, c.size) <= alpha
    p_val = None
    if testable:
        p_val = adjusted_p if adjusted_p is not None else mann_whitney(b, c)
    if b.size == 0 or c.size == 0:
        delta = lo = hi = math.nan
        label, reason = "inconclusive", f"no samples in {'base' if b.size == 0 else 'candidate'}"
    elif np.array_equal(np.sort(b), np.sort(c)):
        delta = lo = hi = 0.0
        label, reason = "unchanged", "identical samples"
    else:
        delta = relative_change(b_med, c_med)
        lo, hi = bootstrap_ci_ratio(b, c, confidence, n_boot, rng)
        label, reason = _decide(delta, lo, hi, p_val, direction, tolerance, alpha)
    return MetricVerdict(
        name=name,
        verdict=label,
        delta_pct=100.0 * delta,
        ci_lo_pct=100.0 * lo,
        ci_hi_pct=100.0 * hi,
        p_value=p_val,
        erratic=cv(b) > max_cv or cv(c) > max_cv,
        n_base=int(b.size),
        n_cand=int(c.size),
        base_median=b_med,
        cand_median=c_med,
        reason=reason,
        family=family,
    )


def _decide(
    delta: float,
    lo: float,
    hi: float,
    p: float | None,
    direction: str,
    tol: float,
    alpha: float,
) -> tuple[str, str]:
    within = -tol <= lo and hi <= tol
    if within:
        return "unchanged", f"CI within ±{100 * tol:g}%"
    if p is None:
        return "inconclusive", "too few samples for a significance test"
    if p >= alpha:
        return "unchanged", f"not significant (p={p:.3g} >= {alpha:g})"
    if abs(delta) < tol:
        return "inconclusive", f"significant but |Δ| < {100 * tol:g}% and CI exceeds it"
    if lo <= 0 <= hi:
        return "inconclusive", "significant but CI includes 0"
    better = (delta > 0) == (direction == "higher")
    return ("improved" if better else "regressed"), f"p={p:.3g}, |Δ| >= {100 * tol:g}%"
