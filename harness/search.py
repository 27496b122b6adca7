"""Maximum sustainable throughput: search the arrival rate, keep the evidence.

A probe runs the scenario at one constant rate for ``measurement.search_step_s``
seconds (after warm-up). The rate is **sustainable** when, over the measured
window, neither batch latency nor backlog trends upward: the least-squares
growth of batch latency across the window stays under
:data:`MAX_LATENCY_GROWTH_S` (or under half the median latency, whichever is
larger), and no more than :data:`MAX_TAIL_BACKLOG` batches are still waiting to
be emitted in the last quarter of the window. An overloaded open-loop pipeline
fails both: its queue, and so its latency, grows for as long as it runs.

The search multiplies the rate by :data:`GROWTH` from ``search_low`` until a
probe fails (or ``search_high`` is reached), then bisects between the last
sustainable and the first unsustainable rate :data:`BISECTIONS` times.

The search probes carry no anomalies. Once the maximum sustainable rate R is
found, one **detection probe** runs the scenario's own generator (its
``duration_s`` and injections) at the constant rate
``measurement.search_detection_fraction`` x R, so detection is measured on a
pipeline with headroom; its ``detection.*`` figures replace the search probes'
(vacuous: nothing was injected) in the summarized result.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from harness.results import Replicate, RunResult

GROWTH = 1.6
BISECTIONS = 3
MAX_LATENCY_GROWTH_S = 0.5
MAX_TAIL_BACKLOG = 2
# Allowance over one window slide for the detection probe's delay over the oracle.
DETECTION_ALLOWANCE_S = 0.25


@dataclass(frozen=True)
class Probe:
    """One probed rate and the evidence for its verdict."""

    rate: float
    sustainable: bool
    latency_growth_s: float
    tail_backlog: float
    throughput: float
    result: RunResult


def judge(rep: Replicate) -> tuple[bool, float, float]:
    """(sustainable, latency growth over the window in s, max backlog in the last quarter)."""
    lat = list(rep.samples.get("latency.batch_s", []))
    backlog = rep.series.get("backlog.batches", {})
    t_b, v_b = list(backlog.get("t_s", [])), list(backlog.get("values", []))
    if len(lat) < 3:
        return False, float("inf"), float("inf")
    x = np.arange(len(lat), dtype=float)
    slope = float(np.polyfit(x, np.asarray(lat, dtype=float), 1)[0])
    growth = slope * (len(lat) - 1)
    limit = max(MAX_LATENCY_GROWTH_S, 0.5 * float(np.median(lat)))
    tail_from = t_b[-1] - 0.25 * (t_b[-1] - t_b[0]) if t_b else 0.0
    tail = max((v for t, v in zip(t_b, v_b) if t >= tail_from), default=0.0)
    ok = growth <= limit and tail <= MAX_TAIL_BACKLOG and rep.complete
    return ok, growth, float(tail)


def probe_scenario(scenario: Any, rate: float) -> Any:
    """The scenario held at one constant ``rate`` for one search step."""
    meas = scenario.measurement
    duration = meas.warmup_s + meas.search_step_s
    return scenario.with_overrides(
        [
            "generator.rate=" + json.dumps({"kind": "constant", "rate": rate}),
            f"generator.duration_s={duration}",
            "generator.injections=[]",
            "measurement.replicates=1",
            "measurement.search=false",
        ]
    )


def detection_probe_scenario(scenario: Any, rate: float) -> Any:
    """The scenario's own run (duration, injections) held at one constant ``rate``."""
    return scenario.with_overrides(
        [
            "generator.rate=" + json.dumps({"kind": "constant", "rate": rate}),
            "measurement.replicates=1",
            "measurement.search=false",
        ]
    )


def detection_target_s(scenario: Any) -> float:
    """One window slide in wall seconds (event seconds / ``event_speed``) plus 250 ms."""
    slide_s = scenario.windows.slide_s / scenario.generator.event_speed
    return float(slide_s + DETECTION_ALLOWANCE_S)


@dataclass(frozen=True)
class DetectionProbe:
    """The run at a fraction of the maximum sustainable rate that carries the injections."""

    rate: float
    result: RunResult


def detection_probe(
    scenario: Any,
    probes: list[Probe],
    run: Callable[[Any], RunResult],
    should_stop: Callable[[], bool],
) -> DetectionProbe | None:
    """Run the scenario with its injections at ``search_detection_fraction`` x the
    highest sustainable rate; ``None`` when no rate was sustainable, nothing is
    injected, or the run is being stopped."""
    sustainable = [p.rate for p in probes if p.sustainable]
    if not sustainable or not scenario.generator.injections or should_stop():
        return None
    rate = max(sustainable) * scenario.measurement.search_detection_fraction
    return DetectionProbe(rate, run(detection_probe_scenario(scenario, rate)))


def search(
    scenario: Any, run: Callable[[Any], RunResult], should_stop: Callable[[], bool]
) -> list[Probe]:
    """Probe rates (growth, then bisection); returns every probe in order."""
    meas = scenario.measurement
    low, high = float(meas.search_low), float(meas.search_high)
    probes: list[Probe] = []

    def probe(rate: float) -> Probe:
        result = run(probe_scenario(scenario, rate))
        rep = result.replicates[0]
        ok, growth, tail = judge(rep)
        thr = rep.metrics.get("throughput.lines_per_s") or 0.0
        p = Probe(rate, ok and rep.metrics.get("integrity.ok") == 1.0, growth, tail, thr, result)
        probes.append(p)
        return p

    good: float | None = None
    bad: float | None = None
    rate = low
    while not should_stop():
        if probe(rate).sustainable:
            good = rate
            if rate >= high:
                break
            rate = min(rate * GROWTH, high)
        else:
            bad = rate
            break
    if good is not None and bad is not None:
        for _ in range(BISECTIONS):
            if should_stop():
                break
            mid = (good + bad) / 2
            if probe(mid).sustainable:
                good = mid
            else:
                bad = mid
    return probes


def summarize_search(
    scenario: Any, probes: list[Probe], detection: DetectionProbe | None = None
) -> RunResult:
    """A result for the search: the best sustainable probe's run plus the evidence.

    The returned replicate is the highest sustainable probe (or the first probe
    when none was sustainable) with ``throughput.max_sustainable_lines_per_s``
    added and the probes recorded as ``search.*`` series indexed by probe number.
    With a ``detection`` probe, its ``detection.*`` metrics, detections and alerts
    replace the best probe's (see :func:`with_detection`).
    """
    sustainable = [p for p in probes if p.sustainable]
    best = max(sustainable, key=lambda p: p.rate) if sustainable else probes[0]
    base = best.result
    rep = base.replicates[0]
    index = list(range(len(probes)))
    evidence = {
        "search.offered_lines_per_s": {"t_s": index, "values": [p.rate for p in probes]},
        "search.sustainable": {
            "t_s": index,
            "values": [1.0 if p.sustainable else 0.0 for p in probes],
        },
        "search.latency_growth_s": {
            "t_s": index,
            "values": [p.latency_growth_s for p in probes],
        },
        "search.throughput_lines_per_s": {
            "t_s": index,
            "values": [p.throughput for p in probes],
        },
    }
    metrics = dict(rep.metrics)
    metrics["throughput.max_sustainable_lines_per_s"] = best.rate if sustainable else None
    rep = replace(rep, metrics=metrics, series=dict(rep.series) | evidence)
    complete = bool(probes)
    if detection is not None:
        rep = with_detection(scenario, rep, detection)
        complete = complete and detection.result.replicates[0].complete
    info = replace(base.scenario, settings=scenario.to_dict())
    return RunResult.create(info, base.metadata, [rep], complete=complete)


def with_detection(scenario: Any, rep: Replicate, detection: DetectionProbe) -> Replicate:
    """``rep`` with the detection probe's ``detection.*`` metrics, detections and alerts.

    Adds ``search.detection_rate_lines_per_s`` (the rate the probe offered) and
    ``search.detection_target_s`` (:func:`detection_target_s`). A detection probe
    that failed its integrity check fails the result's (``integrity.ok`` = 0).
    """
    probe = detection.result.replicates[0]
    metrics = {k: v for k, v in rep.metrics.items() if not k.startswith("detection.")}
    metrics |= {k: v for k, v in probe.metrics.items() if k.startswith("detection.")}
    metrics["search.detection_rate_lines_per_s"] = detection.rate
    metrics["search.detection_target_s"] = detection_target_s(scenario)
    integrity = dict(rep.integrity)
    if probe.metrics.get("integrity.ok") != 1.0:
        metrics["integrity.ok"] = 0.0
        problems = probe.integrity.get("problems") or ["integrity check failed"]
        integrity["ok"] = False
        integrity["problems"] = list(integrity.get("problems") or []) + [
            f"detection probe: {p}" for p in problems
        ]
    return replace(
        rep,
        metrics=metrics,
        detections=probe.detections,
        alerts=probe.alerts,
        integrity=integrity,
    )
