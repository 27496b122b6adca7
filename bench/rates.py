"""Throughput figures for benchmark ``extra_info`` (shared by the bench suites)."""

from __future__ import annotations

from typing import Any


def record_rate(benchmark: Any, unit: str, n: int) -> None:
    """Store ``n`` and ``n / mean time`` as ``extra_info[unit]`` and ``[unit + "_per_s"]``."""
    benchmark.extra_info[unit] = n
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info[f"{unit}_per_s"] = n / benchmark.stats.stats.mean
