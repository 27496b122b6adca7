"""Export a run result to the formats other benchmark dashboards read.

- ``pytest-benchmark``: the JSON ``pytest --benchmark-json`` writes, one
  benchmark per metric (its replicate values are the "rounds"), so
  ``pytest-benchmark compare`` and tools built on that file can read it.
- ``bmf``: Bencher Metric Format, one benchmark per scenario, one measure per metric.
- ``gab-bigger`` / ``gab-smaller``: github-action-benchmark ``customBiggerIsBetter``
  / ``customSmallerIsBetter`` lists, split by the metric's direction.

Only complete replicates and non-null values are exported; metrics without a
single value are left out rather than exported as zeros.
"""

from __future__ import annotations

import json
import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness import metrics as metric_defs
from harness.results import RunResult

__all__ = ["FORMATS", "PYTEST_BENCHMARK_VERSION", "ExportFormat", "export"]

# The pytest-benchmark release whose --benchmark-json shape this mirrors.
PYTEST_BENCHMARK_VERSION = "5.3.1"


@dataclass(frozen=True)
class ExportFormat:
    name: str
    description: str
    build: Callable[[RunResult], Any]


def _metric_values(result: RunResult) -> dict[str, list[float]]:
    """Metric name -> non-null values over complete replicates (metrics with values only)."""
    names = sorted({n for r in result.complete_replicates for n in r.metrics})
    values = {n: result.metric_values(n) for n in names}
    return {n: xs for n, xs in values.items() if xs}


def _bench_name(result: RunResult) -> str:
    return result.scenario.label


# --------------------------------------------------------------------------- pytest-benchmark


def _quartiles(data: Sequence[float]) -> tuple[float, float]:
    """Q1 and Q3 exactly as pytest-benchmark computes them (Wikipedia methods 2 and 3)."""
    n, s = len(data), sorted(data)
    if n == 1:
        return s[0], s[0]
    if n % 2 == 0:
        return statistics.median(s[: n // 2]), statistics.median(s[n // 2 :])
    k, r = n // 4, n % 4
    if r == 1:
        return 0.25 * s[k - 1] + 0.75 * s[k], 0.75 * s[3 * k] + 0.25 * s[3 * k + 1]
    return 0.75 * s[k] + 0.25 * s[k + 1], 0.25 * s[3 * k + 1] + 0.75 * s[3 * k + 2]


def _pb_stats(data: list[float]) -> dict[str, Any]:
    s = sorted(data)
    mean = statistics.mean(data)  # not fmean: outlier counts must match pytest-benchmark's
    stddev = statistics.stdev(data) if len(data) > 1 else 0
    q1, q3 = _quartiles(data)
    iqr = q3 - q1
    lo_fence, hi_fence = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    iqr_outliers = sum(1 for x in data if x < lo_fence or x > hi_fence)
    sd_outliers = sum(1 for x in data if x < mean - stddev or x > mean + stddev)
    total = sum(data)
    single = len(data) == 1
    return {
        "min": s[0],
        "max": s[-1],
        "mean": mean,
        "stddev": stddev,
        "rounds": len(data),
        "median": statistics.median(data),
        "iqr": iqr,
        "q1": q1,
        "q3": q3,
        "iqr_outliers": iqr_outliers,
        "stddev_outliers": sd_outliers,
        "outliers": f"{sd_outliers};{iqr_outliers}",
        "ld15iqr": data[0] if single else s[bisect_left(s, lo_fence)],
        "hd15iqr": data[0] if single else s[bisect_right(s, hi_fence) - 1],
        "ops": len(data) / total if total else 0,
        "total": total,
        "data": list(data),
        "iterations": 1,
    }


def _pytest_benchmark(result: RunResult) -> dict[str, Any]:
    meta, sc = result.metadata, result.scenario
    benchmarks = []
    warmup = any(r.warmup_s > 0 for r in result.complete_replicates)
    for name, data in _metric_values(result).items():
        d = metric_defs.METRICS.get(name)
        benchmarks.append(
            {
                "group": sc.label,
                "name": f"{sc.label}::{name}",
                "fullname": f"{sc.module or sc.name}::{sc.label}::{name}",
                "params": None if sc.variant is None else {"variant": sc.variant},
                "param": sc.variant,
                "extra_info": {
                    "metric": name,
                    "unit": d.unit if d else None,
                    "direction": d.direction if d else None,
                    "scenario": sc.name,
                    "variant": sc.variant,
                    "complete": result.complete,
                },
                "options": {
                    "disable_gc": False,
                    "timer": "logbench",
                    "min_rounds": len(data),
                    "max_time": None,
                    "min_time": None,
                    "warmup": warmup,
                },
                "stats": _pb_stats(data),
            }
        )
    return {
        "machine_info": {
            "node": "",
            "processor": meta.get("cpu_model") or "",
            "python_version": meta.get("python"),
            "platform": meta.get("platform"),
            "cpu": {"brand_raw": meta.get("cpu_model"), "count": meta.get("cpu_count")},
            "memory_bytes": meta.get("memory_bytes"),
        },
        "commit_info": {
            "id": meta.get("git_commit") or "unknown",
            "time": None,
            "author_time": None,
            "dirty": bool(meta.get("git_dirty")),
            "project": "logbench",
            "branch": None,
        },
        "benchmarks": benchmarks,
        "datetime": meta.get("started_at"),
        "version": PYTEST_BENCHMARK_VERSION,
    }


# --------------------------------------------------------------------------- Bencher / GAB


def _slug(metric: str) -> str:
    return metric.lower().replace(".", "-").replace("_", "-")


def _bmf(result: RunResult) -> dict[str, Any]:
    """Median as value, replicate min/max as the bounds."""
    measures = {
        _slug(name): {
            "value": statistics.median(xs),
            "lower_value": min(xs),
            "upper_value": max(xs),
        }
        for name, xs in _metric_values(result).items()
    }
    return {_bench_name(result): measures}


def _gab(direction: str) -> Callable[[RunResult], list[dict[str, Any]]]:
    def build(result: RunResult) -> list[dict[str, Any]]:
        out = []
        for name, xs in _metric_values(result).items():
            d = metric_defs.METRICS.get(name)
            if d is None or d.direction != direction:
                continue
            entry: dict[str, Any] = {
                "name": f"{_bench_name(result)} - {name}",
                "unit": d.unit,
                "value": statistics.median(xs),
                "extra": f"median of {len(xs)} replicate(s); min {min(xs):g}; max {max(xs):g}",
            }
            if len(xs) > 1:
                entry["range"] = f"± {statistics.stdev(xs):.6g}"
            out.append(entry)
        return out

    return build


FORMATS: Mapping[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("pytest-benchmark", "pytest-benchmark --benchmark-json", _pytest_benchmark),
        ExportFormat("bmf", "Bencher Metric Format", _bmf),
        ExportFormat("gab-bigger", "github-action-benchmark customBiggerIsBetter", _gab("higher")),
        ExportFormat("gab-smaller", "github-action-benchmark customSmallerIsBetter", _gab("lower")),
    )
}


def export(result: RunResult, fmt: str) -> str:
    """``result`` rendered as JSON text in format ``fmt`` (a key of :data:`FORMATS`)."""
    try:
        spec = FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})") from None
    return json.dumps(spec.build(result), indent=2, allow_nan=False) + "\n"
