"""Pure decision logic of ``logbench validate``: pairs, rates, knob values, shifts, power.

Nothing here runs Ray or reads a clock; every function is tested on synthetic
data (``tests/test_validate.py``). The methodology is in ``docs/methodology.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import stats as sps

from harness.results import RunResult
from harness.stats import clean, min_p_reachable

__all__ = [
    "Check",
    "adjacent_pairs",
    "aligned_pairs",
    "cost_pct",
    "cv_pct",
    "fit_slowdown_knob",
    "interpolate_knob",
    "mask_settings",
    "median_shift",
    "min_replicates_for_test",
    "naive_slowdown_knob",
    "rate",
    "replicates_for_change",
    "select_replicates",
    "shift_within",
    "t_test_power",
]

# Mann-Whitney's asymptotic relative efficiency against the t-test for normal data.
MW_EFFICIENCY = 3.0 / math.pi


@dataclass(frozen=True)
class Check:
    """The outcome of one validation check; ``passed`` is ``None`` for report-only checks."""

    name: str
    passed: bool | None
    target: str
    figures: dict[str, float | int | None] = field(default_factory=dict)
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "target": self.target,
            "figures": dict(self.figures),
            "detail": self.detail,
        }


# --------------------------------------------------------------------------- pairs


def adjacent_pairs(n_pool: int, size: int) -> list[tuple[range, range]]:
    """A/A pairs from a time-ordered pool: replicates ``[k, k+size)`` vs ``[k+size, k+2*size)``.

    Each pair compares a run with the one taken right after it, as a user
    comparing two consecutive runs would; pairs overlap (stride 1), so drift
    during the session shows up in several neighbouring pairs.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1 (got {size})")
    return [
        (range(k, k + size), range(k + size, k + 2 * size)) for k in range(n_pool - 2 * size + 1)
    ]


def aligned_pairs(n_pool: int, size: int) -> list[tuple[range, range]]:
    """Pairs from two interleaved pools of ``n_pool`` each: the same window ``[k, k+size)``."""
    if size < 1:
        raise ValueError(f"size must be >= 1 (got {size})")
    return [(range(k, k + size), range(k, k + size)) for k in range(n_pool - size + 1)]


def select_replicates(result: RunResult, indices: Iterable[int]) -> RunResult:
    """A result holding the chosen complete replicates (renumbered from 0)."""
    reps = result.complete_replicates
    chosen = [replace(reps[i], index=j) for j, i in enumerate(indices)]
    return RunResult.create(result.scenario, result.metadata, chosen, complete=True)


def mask_settings(cand: RunResult, base: RunResult) -> RunResult:
    """``cand`` presented with ``base``'s scenario settings.

    A test knob is a change ``compare`` would refuse as a settings difference; a
    code change (what the knob stands for) leaves the settings equal.
    """
    return replace(cand, scenario=base.scenario)


def rate(flags: Sequence[bool]) -> float:
    """Fraction of true flags (NaN when there are none)."""
    return sum(1 for f in flags if f) / len(flags) if flags else math.nan


# --------------------------------------------------------------------------- slowdown knob


def naive_slowdown_knob(lines_per_s: float, fraction: float, parallel: float) -> float:
    """Busy-wait per line (µs) that slows ``lines_per_s`` by ``fraction``, if parsing is the
    bottleneck and runs on ``parallel`` cores: a first guess for the probe.

    The unknobbed cost is ``1/lines_per_s`` s of wall per line; slowing by ``f`` adds
    ``f / ((1 - f) * lines_per_s)`` s, spread over ``parallel`` concurrent parse tasks.
    """
    _check_fraction(fraction)
    if not lines_per_s > 0 or not parallel > 0:
        raise ValueError("lines_per_s and parallel must be > 0")
    return 1e6 * parallel * fraction / ((1.0 - fraction) * lines_per_s)


def fit_slowdown_knob(t0: float, t_probe: float, knob_probe: float, fraction: float) -> float:
    """Knob (µs/line) for a ``fraction`` slowdown, from the unknobbed and a probed throughput.

    Model: wall time per line grows linearly with the knob, ``1/T(s) = 1/T0 + b*s``;
    ``b`` comes from the probe. Raises ``ValueError`` when the probe did not slow the
    pipeline (``t_probe >= t0``): then the knob cannot be calibrated.
    """
    _check_fraction(fraction)
    if not (t0 > 0 and t_probe > 0 and knob_probe > 0):
        raise ValueError("t0, t_probe and knob_probe must be > 0")
    if t_probe >= t0:
        raise ValueError(
            f"the probe knob {knob_probe:.3g} µs/line did not slow throughput "
            f"({t_probe:.4g} >= {t0:.4g} lines/s)"
        )
    per_knob = (1.0 / t_probe - 1.0 / t0) / knob_probe
    return fraction / ((1.0 - fraction) * t0 * per_knob)


def interpolate_knob(points: Sequence[tuple[float, float]], fraction: float) -> float:
    """Knob (µs/line) for a ``fraction`` slowdown from measured ``(knob, slowdown)`` points.

    The slowdown is not linear in the knob: while another stage bounds the
    pipeline, idle CPU absorbs part of the busy-wait, so the line through one probe
    overshoots small slowdowns. The knob is interpolated linearly between the two
    measured points (``(0, 0)`` included) that bracket ``fraction``, after making
    the slowdowns non-decreasing in the knob (noise can swap neighbours); past the
    largest slowdown measured, :func:`fit_slowdown_knob` extends from that point.
    """
    _check_fraction(fraction)
    pts = sorted((k, s) for k, s in points if k > 0 and math.isfinite(s))
    if not pts or max(s for _, s in pts) <= 0:
        raise ValueError("no measured point slowed throughput: the knob cannot be calibrated")
    knobs = [0.0] + [k for k, _ in pts]
    slows = list(np.maximum.accumulate([0.0] + [s for _, s in pts]))
    for i in range(1, len(knobs)):
        if slows[i] >= fraction and slows[i] > slows[i - 1]:
            t = (fraction - slows[i - 1]) / (slows[i] - slows[i - 1])
            return knobs[i - 1] + t * (knobs[i] - knobs[i - 1])
    k_top, s_top = knobs[-1], slows[-1]
    return fit_slowdown_knob(1.0, 1.0 - s_top, k_top, fraction)


def _check_fraction(fraction: float) -> None:
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1) (got {fraction})")


# --------------------------------------------------------------------------- shifts and costs


def median_shift(base: Sequence[float | None], cand: Sequence[float | None]) -> float:
    """``median(cand) - median(base)`` (NaN when either side is empty)."""
    b, c = clean(base), clean(cand)
    if b.size == 0 or c.size == 0:
        return math.nan
    return float(np.median(c) - np.median(b))


def shift_within(measured: float, expected: float, rel_tol: float) -> bool:
    """Whether ``measured`` is within ``rel_tol`` (relative) of ``expected``."""
    return math.isfinite(measured) and abs(measured - expected) <= rel_tol * abs(expected)


def cost_pct(with_cost: Sequence[float | None], without: Sequence[float | None]) -> float:
    """Throughput lost to a cost, in % of the median without it (negative: none seen)."""
    on, off = clean(with_cost), clean(without)
    if on.size == 0 or off.size == 0 or np.median(off) == 0:
        return math.nan
    return float(100.0 * (1.0 - np.median(on) / np.median(off)))


def cv_pct(values: Sequence[float | None]) -> float:
    """Coefficient of variation in % (sample stdev / |mean|; NaN below two values)."""
    x = clean(values)
    if x.size < 2 or np.mean(x) == 0:
        return math.nan
    return float(100.0 * np.std(x, ddof=1) / abs(np.mean(x)))


# --------------------------------------------------------------------------- power analysis


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
    cv: float, change: float = 0.05, alpha: float = 0.05, power: float = 0.90, max_n: int = 1000
) -> int | None:
    """Replicates per side for a ``change`` (relative) to be significant with ``power``.

    ``cv`` is the metric's coefficient of variation (a fraction). The t-test sample
    size (noncentral t) is inflated by Mann-Whitney's efficiency (3/π) and never
    below the fewest replicates the exact test needs to reach ``alpha``. ``None``
    when more than ``max_n`` would be needed.
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
