"""The performance gate: thresholds, baseline comparison, one exit code.

Exit codes: 0 pass, 1 regression against the baseline, 2 usage or configuration
error (raised before anything runs), 3 thresholds failed, 4 invalid measurement
(integrity broken, run incomplete, or erratic replicates). When several apply,
the most fundamental wins: 4, then 3, then 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.compare import CompareError, Comparison, compare
from harness.results import RunResult
from harness.stats import cv
from harness.thresholds import ThresholdOutcome, evaluate, parse_threshold

PASS, REGRESSED, USAGE, THRESHOLDS_FAILED, INVALID = 0, 1, 2, 3, 4


@dataclass
class GateOutcome:
    """Everything the gate decided, and why."""

    exit_code: int
    reasons: list[str] = field(default_factory=list)
    thresholds: list[ThresholdOutcome] = field(default_factory=list)
    comparison: Comparison | None = None


def invalid_reasons(result: RunResult, max_cv: float) -> list[str]:
    """Why a measurement cannot be trusted (empty when it can)."""
    reasons = []
    if not result.complete:
        reasons.append("run incomplete (interrupted)")
    for rep in result.replicates:
        integrity: dict[str, Any] = dict(rep.integrity)
        if not integrity.get("ok", False):
            problems = "; ".join(integrity.get("problems", [])[:3])
            reasons.append(f"replicate {rep.index}: integrity failed: {problems}")
    samples = result.metric_values("throughput.lines_per_s")
    if len(samples) >= 2:
        spread = cv(samples)
        if spread > max_cv:
            reasons.append(
                f"erratic: throughput CV {spread:.1%} over replicates exceeds {max_cv:.0%}"
            )
    return reasons


def evaluate_gate(
    result: RunResult,
    thresholds: list[str],
    baseline: RunResult | None = None,
    normalize: bool = False,
    tolerance: float | dict[str, float] = 0.05,
    max_cv: float = 0.25,
    metrics: list[str] | None = None,
) -> GateOutcome:
    """Decide the gate's exit code for a finished run."""
    outcome = GateOutcome(PASS)
    invalid = invalid_reasons(result, max_cv)
    outcome.thresholds = evaluate([parse_threshold(t) for t in thresholds], result)
    failed = [t for t in outcome.thresholds if not t.passed]
    if baseline is not None:
        try:
            outcome.comparison = compare(
                baseline,
                result,
                metrics=metrics,
                tolerance=tolerance,
                normalize=normalize,
                max_cv=max_cv,  # the table's "erratic" flag and exit 4 use one limit
            )
        except CompareError as exc:
            outcome.exit_code = USAGE
            outcome.reasons.append(str(exc))
            return outcome
    regressed = outcome.comparison.regressed_gated() if outcome.comparison else []
    if invalid:
        outcome.exit_code = INVALID
        outcome.reasons += invalid
    if failed:
        outcome.exit_code = outcome.exit_code or THRESHOLDS_FAILED
        outcome.reasons += [f"threshold failed: {t.expr} (value {t.value})" for t in failed]
    if regressed:
        outcome.exit_code = outcome.exit_code or REGRESSED
        outcome.reasons += [f"regressed: {v.name}" for v in regressed]
    return outcome
