"""Compare two run results metric by metric on their raw replicate samples.

The statistics (and the reasons behind each verdict) live in :mod:`harness.stats`
and ``docs/statistics.md``; this module decides *what* may be compared:
same scenario and variant, the same resolved settings apart from
:data:`IGNORED_SETTINGS`, and (with ``normalize``) a machine calibration on
both sides. Machine differences do not refuse a comparison but are reported as
warnings, because they are the usual cause of a "regression" that is not one.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness import metrics as metric_defs
from harness.calibration import CalibrationMismatch, normalisation_factor
from harness.results import RunResult
from harness.stats import DEFAULT_SEED, MetricVerdict, clean, holm, mann_whitney, verdict

__all__ = [
    "DEFAULT_TOLERANCE",
    "IGNORED_SETTINGS",
    "MACHINE_KEYS",
    "CompareError",
    "Comparison",
    "IncompatibleResults",
    "check_compatible",
    "compare",
    "machine_warnings",
    "render_table",
    "to_json",
]

DEFAULT_TOLERANCE = 0.05

# Settings that may differ between two comparable runs: where Ray runs, how many
# replicates / how much warm-up were measured, the prose and the pass/fail
# thresholds do not change the workload (the scenario fingerprint skips the last two).
IGNORED_SETTINGS: tuple[str, ...] = (
    "ray.address",
    "measurement.replicates",
    "measurement.detect_change_pct",
    "measurement.max_replicates",
    "measurement.warmup_s",
    "measurement.warmup_pass_lines",
    "description",
    "thresholds",
)

# Metadata keys whose difference makes a comparison suspect (warned, not refused).
MACHINE_KEYS: tuple[str, ...] = ("cpu_model", "cpu_count", "memory_bytes", "ray", "pyarrow")

_ABSENT = object()


class CompareError(ValueError):
    """Two results cannot be compared as asked (one-line message)."""


class IncompatibleResults(CompareError):
    """The results measure different scenarios or settings."""


@dataclass(frozen=True)
class Comparison:
    """Per-metric verdicts of candidate against base, plus warnings."""

    scenario: str
    verdicts: tuple[MetricVerdict, ...]
    warnings: tuple[str, ...]
    gated: frozenset[str]
    normalized: bool
    tolerances: Mapping[str, float]

    def regressed_gated(self) -> list[MetricVerdict]:
        """Regressions in gated metrics (``MetricDef.gated`` or explicitly requested)."""
        return [v for v in self.verdicts if v.verdict == "regressed" and v.name in self.gated]

    def by_name(self) -> dict[str, MetricVerdict]:
        return {v.name: v for v in self.verdicts if v.name is not None}


def compare(
    base: RunResult,
    cand: RunResult,
    metrics: Sequence[str] | None = None,
    tolerance: float | Mapping[str, float] = DEFAULT_TOLERANCE,
    confidence: float = 0.90,
    normalize: bool = False,
    *,
    alpha: float = 0.05,
    max_cv: float = 0.10,
    n_boot: int = 2000,
    seed: int = DEFAULT_SEED,
) -> Comparison:
    """Compare ``cand`` against ``base``; raises :class:`CompareError` when not comparable.

    ``metrics`` defaults to every metric with a direction that both results have;
    explicitly named metrics are all gated. ``tolerance`` is a relative change
    (0.05 = 5 %), either one value or per metric (others get
    :data:`DEFAULT_TOLERANCE`).
    """
    check_compatible(base, cand)
    names = list(metrics) if metrics is not None else _default_metrics(base, cand)
    defs = [_directed(name) for name in names]
    gated = frozenset(names) if metrics is not None else frozenset(d.name for d in defs if d.gated)
    samples = _scaled_samples(base, cand, defs, normalize)
    # Gated metrics are one family: any of them regressing fails a gate, so their
    # p-values are adjusted together to keep the false-alarm rate at alpha.
    raw_p = {
        name: mann_whitney(b, c) for name, (b, c) in samples.items() if name in gated and b and c
    }
    adjusted = holm(raw_p)
    rng = np.random.default_rng(seed)
    verdicts = []
    tolerances = {d.name: _tolerance(tolerance, d.name) for d in defs}
    for d in defs:
        b, c = samples[d.name]
        verdicts.append(
            verdict(
                b,
                c,
                d.direction or "",
                tolerance=tolerances[d.name],
                alpha=alpha,
                max_cv=max_cv,
                confidence=confidence,
                n_boot=n_boot,
                rng=rng,
                name=d.name,
                family=len(adjusted) if d.name in adjusted else 1,
                adjusted_p=adjusted.get(d.name),
            )
        )
    return Comparison(
        scenario=base.scenario.label,
        verdicts=tuple(verdicts),
        warnings=tuple(machine_warnings(base, cand)),
        gated=gated,
        normalized=normalize,
        tolerances=tolerances,
    )


def _scaled_samples(
    base: RunResult, cand: RunResult, defs: Sequence[metric_defs.MetricDef], normalize: bool
) -> dict[str, tuple[list[float], list[float]]]:
    """Each metric's replicate samples, divided by each side's calibration when normalising."""
    scale_b, scale_c = _calibrations(base, cand) if normalize else (1.0, 1.0)
    out: dict[str, tuple[list[float], list[float]]] = {}
    for d in defs:
        div_b, div_c = (scale_b, scale_c) if d.normalizable else (1.0, 1.0)
        b = [x / div_b for x in clean(base.metric_values(d.name))]
        c = [x / div_c for x in clean(cand.metric_values(d.name))]
        out[d.name] = (b, c)
    return out


def check_compatible(base: RunResult, cand: RunResult) -> None:
    """Raise :class:`IncompatibleResults` naming the first difference."""
    if (base.scenario.name, base.scenario.variant) != (cand.scenario.name, cand.scenario.variant):
        raise IncompatibleResults(
            f"different scenarios: base is {base.scenario.label!r}, "
            f"candidate is {cand.scenario.label!r}"
        )
    diff = _first_difference(base.scenario.settings, cand.scenario.settings, "")
    if diff is not None:
        path, b, c = diff
        raise IncompatibleResults(
            f"incompatible settings at {path!r}: base {_show(b)}, candidate {_show(c)}"
        )


def _first_difference(b: Any, c: Any, path: str) -> tuple[str, Any, Any] | None:
    if path in IGNORED_SETTINGS:
        return None
    if isinstance(b, Mapping) and isinstance(c, Mapping):
        for key in sorted(set(b) | set(c), key=str):
            sub = f"{path}.{key}" if path else str(key)
            found = _first_difference(b.get(key, _ABSENT), c.get(key, _ABSENT), sub)
            if found is not None:
                return found
        return None
    if isinstance(b, list) and isinstance(c, list) and len(b) == len(c):
        for i, (x, y) in enumerate(zip(b, c)):
            found = _first_difference(x, y, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    # bool is an int in Python: 1 == True must still count as a difference.
    if type(b) is bool or type(c) is bool:
        return None if b is c else (path or "settings", b, c)
    return None if b == c else (path or "settings", b, c)


def _show(x: Any) -> str:
    return "absent" if x is _ABSENT else repr(x)


def machine_warnings(base: RunResult, cand: RunResult) -> list[str]:
    """Reasons to distrust the comparison that do not make it impossible."""
    out = []
    mb, mc = base.metadata, cand.metadata
    for key in MACHINE_KEYS:
        if not _same_machine_value(key, mb.get(key), mc.get(key)):
            out.append(f"machine differs: {key} {mb.get(key)!r} (base) vs {mc.get(key)!r}")
    for label, meta in (("base", mb), ("candidate", mc)):
        if meta.get("git_dirty"):
            out.append(f"{label} ran from a dirty git tree ({meta.get('git_commit')})")
    for label, res in (("base", base), ("candidate", cand)):
        if not res.complete:
            out.append(f"{label} result is partial (interrupted run)")
    return out


# The kernel's MemTotal moves by a few hundred KiB between boots of one machine.
_MEMORY_REL_TOLERANCE = 0.01


def _same_machine_value(key: str, b: Any, c: Any) -> bool:
    if key == "memory_bytes" and isinstance(b, int) and isinstance(c, int) and max(b, c) > 0:
        return abs(b - c) <= _MEMORY_REL_TOLERANCE * max(b, c)
    return bool(b == c)


def _default_metrics(base: RunResult, cand: RunResult) -> list[str]:
    def present(res: RunResult) -> set[str]:
        return {name for r in res.complete_replicates for name in r.metrics}

    both = present(base) & present(cand)
    return [n for n, d in metric_defs.METRICS.items() if d.direction and n in both]


def _directed(name: str) -> metric_defs.MetricDef:
    try:
        d = metric_defs.get(name)
    except metric_defs.UnknownMetric as exc:
        raise CompareError(str(exc.args[0])) from None
    if d.direction is None:
        raise CompareError(f"metric {name!r} has no direction (a fact, not a score)")
    return d


def _tolerance(tolerance: float | Mapping[str, float], name: str) -> float:
    tol = tolerance.get(name, DEFAULT_TOLERANCE) if isinstance(tolerance, Mapping) else tolerance
    if isinstance(tol, (int, float)) and math.isfinite(tol) and tol >= 0:
        return float(tol)
    raise CompareError(f"tolerance for {name!r} must be a finite number >= 0, got {tol!r}")


def _calibrations(base: RunResult, cand: RunResult) -> tuple[float, float]:
    """Both calibrations' lines/s, after checking they can be compared at all."""
    cal_b: Any = base.metadata.get("calibration")
    cal_c: Any = cand.metadata.get("calibration")
    try:
        normalisation_factor(cal_b, cal_c)
    except CalibrationMismatch as exc:
        # An incompatibility of this pair of files for a normalised comparison, like a
        # settings mismatch (and reported the same way by the CLI and the gate).
        raise IncompatibleResults(
            f"cannot normalize: {exc} (rerun with calibration, or compare without --normalize)"
        ) from None
    return float(cal_b["lines_per_s"]), float(cal_c["lines_per_s"])


# --------------------------------------------------------------------------- output


def _fmt(x: float | None) -> str:
    if x is None or math.isnan(x):
        return "-"
    if math.isinf(x):
        return "+inf" if x > 0 else "-inf"
    if x != 0 and (abs(x) >= 1e6 or abs(x) < 1e-3):
        return f"{x:.4g}"
    return f"{x:,.2f}" if abs(x) >= 100 else f"{x:.4g}"


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else ("+inf" if x > 0 else "-inf") if math.isinf(x) else f"{x:+.1f}"


def _flags(v: MetricVerdict, comparison: Comparison) -> str:
    flags = []
    if v.erratic:
        flags.append("erratic")
    if v.p_value is None:
        flags.append("few samples")
    elif v.family > 1:
        flags.append(f"p Holm-adjusted over {v.family}")
    if v.name in comparison.gated:
        flags.append("gated")
    if comparison.normalized and v.name and metric_defs.METRICS[v.name].normalizable:
        flags.append("normalized")
    return ", ".join(flags)


def render_table(comparison: Comparison, width: int = 140) -> str:
    """The comparison as a plain-text table (no colour codes), then its warnings."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{comparison.scenario}: candidate vs base", title_justify="left")
    for col in ("metric", "base median", "cand median", "Δ %", "CI %", "p", "verdict", "flags"):
        table.add_column(col, justify="left" if col in ("metric", "verdict", "flags") else "right")
    for v in comparison.verdicts:
        ci = "-" if math.isnan(v.ci_lo_pct) else f"[{_pct(v.ci_lo_pct)}, {_pct(v.ci_hi_pct)}]"
        p = "-" if v.p_value is None else f"{v.p_value:.3g}"
        table.add_row(
            v.name or "",
            _fmt(v.base_median),
            _fmt(v.cand_median),
            _pct(v.delta_pct),
            ci,
            p,
            v.verdict,
            _flags(v, comparison),
        )
    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None, force_terminal=False)
    console.print(table)
    for w in comparison.warnings:
        console.print(f"warning: {w}", highlight=False, markup=False)
    return buf.getvalue()


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def to_json(comparison: Comparison) -> dict[str, Any]:
    """A JSON-safe dict (non-finite numbers become ``null``)."""
    return {
        "scenario": comparison.scenario,
        "normalized": comparison.normalized,
        "warnings": list(comparison.warnings),
        "regressed_gated": [v.name for v in comparison.regressed_gated()],
        "metrics": [_verdict_json(v, comparison) for v in comparison.verdicts],
    }


def _verdict_json(v: MetricVerdict, comparison: Comparison) -> dict[str, Any]:
    return {
        "name": v.name,
        "verdict": v.verdict,
        "reason": v.reason,
        "base_median": _finite(v.base_median),
        "cand_median": _finite(v.cand_median),
        "delta_pct": _finite(v.delta_pct),
        "ci_lo_pct": _finite(v.ci_lo_pct),
        "ci_hi_pct": _finite(v.ci_hi_pct),
        "p_value": _finite(v.p_value),
        "p_family": v.family,
        "erratic": v.erratic,
        "n_base": v.n_base,
        "n_cand": v.n_cand,
        "gated": v.name in comparison.gated,
        "tolerance": comparison.tolerances.get(v.name or ""),
    }
