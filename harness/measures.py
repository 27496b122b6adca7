"""Metric computations from raw per-batch records (pure functions, no Ray).

The runner records, for every batch, its planned emit time, actual emit time and
completion time (seconds relative to the replicate's time origin), and collects
alerts stamped with wall times. Everything here turns those raw records into the
metrics named in :mod:`harness.metrics`; the definitions live there and in
``docs/metrics.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class BatchRecord:
    """Timing of one batch, seconds relative to the replicate origin."""

    batch_id: int
    lines: int
    raw_bytes: int
    first_event_ms: int
    last_event_ms: int
    planned_s: float
    emitted_s: float | None = None
    done_s: float | None = None


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100, linear interpolation); NaN when empty."""
    if len(values) == 0:
        return math.nan
    return float(np.percentile(np.asarray(values, dtype=float), q))


def steady_window(records: Sequence[BatchRecord], warmup_s: float) -> tuple[float, float]:
    """(start, end) of the steady-state window: warm-up end to last completion."""
    done = [r.done_s for r in records if r.done_s is not None]
    end = max(done) if done else warmup_s
    return warmup_s, max(end, warmup_s)


def throughput(records: Sequence[BatchRecord], warmup_s: float) -> dict[str, float]:
    """Lines and raw MB completed per second over the steady-state window."""
    start, end = steady_window(records, warmup_s)
    steady = [r for r in records if r.done_s is not None and r.done_s > start]
    duration = end - start
    planned = [r for r in records if r.planned_s > start]
    planned_span = max((r.planned_s for r in planned), default=start) - start
    if duration <= 0 or not steady:
        return {
            "throughput.lines_per_s": 0.0,
            "throughput.mb_per_s": 0.0,
            "throughput.offered_lines_per_s": 0.0,
        }
    lines = sum(r.lines for r in steady)
    raw = sum(r.raw_bytes for r in steady)
    offered = sum(r.lines for r in planned) / planned_span if planned_span > 0 else 0.0
    return {
        "throughput.lines_per_s": lines / duration,
        "throughput.mb_per_s": raw / duration / 1e6,
        "throughput.offered_lines_per_s": offered,
    }


def cpu_seconds_between(
    t_s: Sequence[float], percent: Sequence[float], lo: float, hi: float
) -> float:
    """CPU seconds in ``[lo, hi]`` from a ``resources.cpu_percent`` series.

    Sample ``i`` is the mean rate over ``(t_s[i-1], t_s[i]]`` (100 % = one core), so
    each interval counts for the part of it inside the window; the first sample's
    interval has no known start and is left out. NaN with fewer than two samples.
    """
    if len(t_s) < 2 or len(t_s) != len(percent):
        return math.nan
    total = 0.0
    for i in range(1, len(t_s)):
        overlap = min(t_s[i], hi) - max(t_s[i - 1], lo)
        if overlap > 0:
            total += overlap * percent[i] / 100.0
    return total


def cpu_us_per_line(
    cpu: dict[str, list[float]], records: Sequence[BatchRecord], warmup_s: float
) -> float:
    """CPU microseconds of the run's processes per line completed, over the part of the
    steady window that the CPU samples cover (they stop up to one interval early)."""
    t, v = cpu.get("t_s", []), cpu.get("values", [])
    if len(t) < 2:
        return math.nan
    start, end = steady_window(records, warmup_s)
    lo, hi = max(start, t[0]), min(end, t[-1])
    lines = sum(r.lines for r in records if r.done_s is not None and lo < r.done_s <= hi)
    if hi <= lo or not lines:
        return math.nan
    return 1e6 * cpu_seconds_between(t, v, lo, hi) / lines


def per_second_series(
    records: Sequence[BatchRecord], bin_s: float = 1.0
) -> tuple[list[float], list[float]]:
    """Lines completed per second, binned by completion time."""
    done = [(r.done_s, r.lines) for r in records if r.done_s is not None]
    if not done:
        return [], []
    n_bins = int(max(t for t, _ in done) // bin_s) + 1
    counts = np.zeros(n_bins)
    for t, lines in done:
        counts[int(t // bin_s)] += lines
    return [i * bin_s for i in range(n_bins)], list(counts / bin_s)


def batch_latencies(records: Sequence[BatchRecord], warmup_s: float) -> list[float]:
    """Planned emit -> aggregated on every shard, for batches planned after warm-up."""
    return [
        r.done_s - r.planned_s for r in records if r.done_s is not None and r.planned_s >= warmup_s
    ]


def lateness(records: Sequence[BatchRecord]) -> list[float]:
    """Actual minus planned emit time, per emitted batch (never negative)."""
    return [max(0.0, r.emitted_s - r.planned_s) for r in records if r.emitted_s is not None]


def backlog_at(planned_sorted: np.ndarray, emitted_count: int, now_s: float) -> int:
    """Batches whose planned time has passed but which were not yet emitted."""
    due = int(np.searchsorted(planned_sorted, now_s, side="right"))
    return max(0, due - emitted_count)


def imbalance(shard_lines: Sequence[int]) -> float:
    """Max over mean of lines per shard (1 = balanced); 1 for one shard or no lines."""
    if not shard_lines or sum(shard_lines) == 0:
        return 1.0
    mean = sum(shard_lines) / len(shard_lines)
    return max(shard_lines) / mean


def first_batch_overlapping(
    records: Sequence[BatchRecord], start_ms: int, end_ms: int
) -> BatchRecord | None:
    """The first batch whose event-time range overlaps ``[start_ms, end_ms]``."""
    for r in records:
        if r.last_event_ms >= start_ms and r.first_event_ms <= end_ms:
            return r
    return None


def detections(
    truth: Sequence[Any],
    alerts: Sequence[dict[str, Any]],
    records: Sequence[BatchRecord],
    origin_wall_s: float,
    matches: Callable[[dict[str, Any], Any], bool],
    oracle_batches: dict[int, int | None] | None = None,
) -> list[dict[str, Any]]:
    """Per injected anomaly: matched alert and time-to-detect on both bases.

    ``ttd_s`` runs from the planned emit time of the first anomalous batch (free of
    coordinated omission); ``ttd_actual_s`` from its actual emit time.
    """
    by_id = {r.batch_id: r for r in records}
    out = []
    for i, item in enumerate(truth):
        first = first_batch_overlapping(records, item.start_ms, item.end_ms)
        hits = [a for a in alerts if matches(a, item) and a.get("detected_wall_s") is not None]
        hit = min(hits, key=lambda a: a["detected_wall_s"]) if hits else None
        row: dict[str, Any] = {
            "kind": item.kind,
            "key": item.key,
            "start_ms": item.start_ms,
            "end_ms": item.end_ms,
            "detected": hit is not None,
            "alert_id": hit["alert_id"] if hit else None,
            "first_batch_id": first.batch_id if first else None,
            "planned_emit_s": first.planned_s if first else None,
            "actual_emit_s": first.emitted_s if first else None,
        }
        if hit is not None and first is not None:
            detected_s = hit["detected_wall_s"] - origin_wall_s
            row["detected_s"] = detected_s
            row["ttd_s"] = detected_s - first.planned_s
            if first.emitted_s is not None:
                row["ttd_actual_s"] = detected_s - first.emitted_s
            oracle_id = (oracle_batches or {}).get(i)
            if oracle_id is not None and oracle_id in by_id:
                row["oracle_s"] = by_id[oracle_id].planned_s
                row["delay_over_oracle_s"] = detected_s - by_id[oracle_id].planned_s
        out.append(row)
    return out


def detection_metrics(
    rows: Sequence[dict[str, Any]], alerts: Sequence[dict[str, Any]], matched_alerts: int
) -> dict[str, float]:
    """Recall, precision, false alerts and time-to-detect summaries."""
    detected = [r for r in rows if r["detected"] and "ttd_s" in r]
    ttd = [r["ttd_s"] for r in detected]
    ttd_actual = [r["ttd_actual_s"] for r in detected if "ttd_actual_s" in r]
    over = [r["delay_over_oracle_s"] for r in detected if "delay_over_oracle_s" in r]
    recall = sum(1 for r in rows if r["detected"]) / len(rows) if rows else 1.0
    precision = matched_alerts / len(alerts) if alerts else 1.0
    return {
        "detection.recall": recall,
        "detection.precision": precision,
        "detection.false_alerts": float(len(alerts) - matched_alerts),
        "detection.ttd_p50_s": percentile(ttd, 50),
        "detection.ttd_max_s": max(ttd) if ttd else math.nan,
        "detection.ttd_actual_p50_s": percentile(ttd_actual, 50),
        "detection.delay_over_oracle_s": percentile(over, 50),
        "detection.delay_over_oracle_p99_s": percentile(over, 99),
    }


def inflight_bound(
    max_in_flight: int,
    compressed_bytes: Sequence[int],
    output_bytes: Sequence[int] | None,
    peak_bytes: float,
) -> dict[str, float]:
    """The object store's in-flight bound and the sampled peak relative to it.

    ``compressed_bytes`` and ``output_bytes`` are per batch, over the same batches
    (those the replicate completed): each batch's compressed payload and the parsed
    outputs its parse task handed the shards (``ParseStats.output_bytes``).
    ``output_bytes`` is ``None`` where the outputs' size is not known (the regex
    strategy's record lists): both metrics are then NaN, as they are with no batch.
    ``peak_bytes`` is ``object_store.peak_bytes``, already relative to the store's
    usage when the replicate started.
    """
    nan = {"object_store.inflight_bound_bytes": math.nan, "object_store.peak_over_bound": math.nan}
    if output_bytes is None or not compressed_bytes:
        return nan
    if len(output_bytes) != len(compressed_bytes):
        raise ValueError("compressed_bytes and output_bytes must cover the same batches")
    # Mean compressed plus mean parsed bytes per batch, times the batches in flight.
    bound = max_in_flight * (sum(compressed_bytes) + sum(output_bytes)) / len(compressed_bytes)
    if bound <= 0:
        return nan
    return {
        "object_store.inflight_bound_bytes": bound,
        "object_store.peak_over_bound": peak_bytes / bound,
    }
