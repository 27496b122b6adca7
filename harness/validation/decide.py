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

from harness.results import RunResult
from harness.stats import bootstrap_ci_ratio, clean

__all__ = [
    "Check",
    "adjacent_pairs",
    "aligned_pairs",
    "cost_ci_pct",
    "cost_pct",
    "cv_pct",
    "mask_settings",
    "median_shift",
    "naive_slowdown_knob",
    "pooled_knob",
    "rate",
    "select_replicates",
    "shift_within",
]


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


def pooled_knob(points: Sequence[tuple[float, float]], fraction: float) -> float:
    """Knob (µs/line) for a ``fraction`` slowdown, fitted to every measured point.

    ``points`` are measured ``(knob, slowdown)`` pairs. The knob spins the parse
    task's CPU, so on a saturated pipeline it adds CPU time per line and the
    model is ``T0 / T(s) = 1 + beta * s``; ``beta`` is the least-squares slope
    through the origin over all points (each measured against its own
    unknobbed run). One point's slowdown is as noisy as the throughput, so
    pooling them, rather than following the two that bracket the target, is
    what makes more points a better knob. Raises ``ValueError`` when the fit
    says the knob does not slow the pipeline.
    """
    _check_fraction(fraction)
    pts = [(k, s) for k, s in points if k > 0 and math.isfinite(s) and s < 1]
    excess = sum(k * (1.0 / (1.0 - s) - 1.0) for k, s in pts)
    if not pts or excess <= 0:
        raise ValueError("no measured point slowed throughput: the knob cannot be calibrated")
    beta = excess / sum(k * k for k, _ in pts)
    return (1.0 / (1.0 - fraction) - 1.0) / beta


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


def cost_ci_pct(
    with_cost: Sequence[float | None], without: Sequence[float | None]
) -> tuple[float, float]:
    """90 % bootstrap interval of :func:`cost_pct` (NaNs when a side is empty)."""
    if not clean(with_cost).size or not clean(without).size:
        return (math.nan, math.nan)
    lo, hi = bootstrap_ci_ratio(without, with_cost)  # of median(with) / median(without) - 1
    return (-100.0 * hi, -100.0 * lo)


def cv_pct(values: Sequence[float | None]) -> float:
    """Coefficient of variation in % (sample stdev / |mean|; NaN below two values)."""
    x = clean(values)
    if x.size < 2 or np.mean(x) == 0:
        return math.nan
    return float(100.0 * np.std(x, ddof=1) / abs(np.mean(x)))
