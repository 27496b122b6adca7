"""Workload pieces that several scenario modules share.

Scenario modules are loaded by path (:func:`harness.scenario.load_scenario_module`),
not imported as a package, so they cannot import one another: what several of
them have in common is built here. Every function returns new, validated specs.
"""

from __future__ import annotations

from typing import Any

from harness.scenario import (
    GeneratorSpec,
    InjectionSpec,
    ParserSpec,
    RateSpec,
    ShardingSpec,
    WindowsSpec,
)
from logpipe.schema import ERROR_RATE, LATENCY, USER_ACTIVITY

__all__ = ["one_of_each", "saturating", "short_run_pipeline"]


def one_of_each(starts: tuple[float, float, float], duration_s: float) -> tuple[InjectionSpec, ...]:
    """One anomaly of each kind: error_rate, latency and user_activity, in that order.

    ``starts``: their start times (s of the schedule); each lasts ``duration_s``.
    """
    kinds = (ERROR_RATE, LATENCY, USER_ACTIVITY)
    return tuple(
        InjectionSpec(kind, start_s=start, duration_s=duration_s)
        for kind, start in zip(kinds, starts, strict=True)
    )


def saturating(
    rate: float,
    duration_s: float,
    *,
    batch_lines: int,
    event_speed: float,
    anomalies_at: tuple[float, float, float],
    anomaly_s: float,
) -> GeneratorSpec:
    """A short constant load offered faster than the pipeline absorbs, so throughput
    is its capacity, with one anomaly of each kind (:func:`one_of_each`).

    ``event_speed`` > 1 packs enough event time into a run of a few seconds for
    the detector's warm-up and the anomalies' windows.
    """
    return GeneratorSpec(
        rate=RateSpec.constant(rate),
        duration_s=duration_s,
        batch_lines=batch_lines,
        event_speed=event_speed,
        injections=one_of_each(anomalies_at, anomaly_s),
    )


def short_run_pipeline() -> dict[str, Any]:
    """Pipeline settings of the short saturating scenarios (smoke, engines, batch_size),
    as ``Scenario`` keyword arguments: 2 parse tasks, ``by_service`` x 2 shards, 4 s
    windows sliding by 1 s (event time) and a 3-window detector warm-up, so that
    alerts can fire a few event seconds in."""
    return {
        "parser": ParserSpec(parallelism=2),
        "sharding": ShardingSpec(strategy="by_service", shards=2),
        "windows": WindowsSpec(size_s=4, slide_s=1),
        "detector": {"warmup_windows": 3},
    }
