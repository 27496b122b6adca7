"""Metric definitions on synthetic inputs with known answers."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from harness import measures
from harness.measures import BatchRecord


def rec(i: int, planned: float, emitted: float | None, done: float | None, lines: int = 100):
    return BatchRecord(i, lines, lines * 200, i * 1000, i * 1000 + 999, planned, emitted, done)


@dataclass
class Truth:
    kind: str
    key: str
    start_ms: int
    end_ms: int


def test_throughput_counts_lines_completed_after_warmup_over_steady_window() -> None:
    records = [rec(i, float(i), float(i), float(i) + 0.5) for i in range(10)]
    # warm-up 2 s: completions at 2.5 .. 9.5 (8 batches), window 2 .. 9.5 = 7.5 s
    m = measures.throughput(records, warmup_s=2.0)
    assert m["throughput.lines_per_s"] == pytest.approx(800 / 7.5)
    assert m["throughput.mb_per_s"] == pytest.approx(800 * 200 / 7.5 / 1e6)


def test_throughput_is_zero_when_nothing_completed() -> None:
    records = [rec(0, 0.0, 0.0, None)]
    assert measures.throughput(records, 0.0)["throughput.lines_per_s"] == 0.0


def test_batch_latency_runs_from_planned_not_actual_emit() -> None:
    # Emitted 3 s late (pipeline full): latency must include the wait.
    records = [rec(0, 1.0, 4.0, 4.5), rec(1, 2.0, 2.0, 2.1)]
    lat = measures.batch_latencies(records, warmup_s=0.0)
    assert lat == pytest.approx([3.5, 0.1])
    assert measures.lateness(records) == pytest.approx([3.0, 0.0])


def test_batches_planned_in_warmup_are_excluded_from_latency() -> None:
    records = [rec(0, 0.5, 0.5, 9.0), rec(1, 2.0, 2.0, 2.5)]
    assert measures.batch_latencies(records, warmup_s=1.0) == pytest.approx([0.5])


def test_backlog_counts_due_but_unemitted_batches() -> None:
    planned = np.array([0.0, 1.0, 2.0, 3.0])
    assert measures.backlog_at(planned, emitted_count=1, now_s=2.5) == 2
    assert measures.backlog_at(planned, emitted_count=3, now_s=2.5) == 0


def test_imbalance() -> None:
    assert measures.imbalance([100, 100]) == 1.0
    assert measures.imbalance([300, 100]) == pytest.approx(1.5)
    assert measures.imbalance([]) == 1.0


def test_time_to_detect_from_a_known_plan() -> None:
    # Batch 2 is the first overlapping the anomaly; planned at 2 s, emitted at 2.5 s.
    records = [
        rec(i, float(i), float(i) + (0.5 if i == 2 else 0.0), float(i) + 1) for i in range(6)
    ]
    truth = [Truth("error_rate", "svc", 2500, 4000)]
    origin = 1000.0
    alerts = [
        {"alert_id": 0, "kind": "error_rate", "key": "svc", "detected_wall_s": origin + 3.75},
        {"alert_id": 1, "kind": "latency", "key": "x", "detected_wall_s": origin + 1.0},
    ]

    def matches(a, t):
        return a["kind"] == t.kind and a["key"] == t.key

    rows = measures.detections(truth, alerts, records, origin, matches, oracle_batches={0: 3})
    (row,) = rows
    assert row["detected"] and row["alert_id"] == 0 and row["first_batch_id"] == 2
    assert row["ttd_s"] == pytest.approx(1.75)
    assert row["ttd_actual_s"] == pytest.approx(1.25)
    assert row["delay_over_oracle_s"] == pytest.approx(0.75)
    m = measures.detection_metrics(rows, alerts, matched_alerts=1)
    assert m["detection.recall"] == 1.0
    assert m["detection.precision"] == 0.5
    assert m["detection.false_alerts"] == 1.0
    assert m["detection.ttd_p50_s"] == pytest.approx(1.75)


def test_missed_anomaly_lowers_recall_and_has_no_ttd() -> None:
    records = [rec(0, 0.0, 0.0, 1.0)]
    truth = [Truth("latency", "svc /a", 0, 500)]
    rows = measures.detections(truth, [], records, 0.0, lambda a, t: True)
    m = measures.detection_metrics(rows, [], 0)
    assert m["detection.recall"] == 0.0
    assert m["detection.precision"] == 1.0
    assert math.isnan(m["detection.ttd_p50_s"])


def test_delay_over_oracle_p99_interpolates_over_detected_anomalies_only() -> None:
    detected = [
        {"detected": True, "ttd_s": 1.0, "delay_over_oracle_s": d}
        for d in (0.2, 0.4, 0.6, 0.8, 1.0)
    ]
    no_oracle = {"detected": True, "ttd_s": 9.0}  # the oracle never fired: no delay
    missed = {"detected": False, "delay_over_oracle_s": 50.0}  # not a detection
    m = measures.detection_metrics([*detected, no_oracle, missed], [], 0)
    # Linear interpolation at rank 0.99 x 4 = 3.96 between 0.8 and 1.0.
    assert m["detection.delay_over_oracle_p99_s"] == pytest.approx(0.992)
    assert m["detection.delay_over_oracle_s"] == pytest.approx(0.6)
    assert math.isnan(
        measures.detection_metrics([missed], [], 0)["detection.delay_over_oracle_p99_s"]
    )


def test_per_second_series_bins_completions() -> None:
    records = [rec(0, 0, 0, 0.2), rec(1, 0, 0, 0.7), rec(2, 0, 0, 2.1)]
    t, v = measures.per_second_series(records)
    assert t == [0.0, 1.0, 2.0]
    assert v == [200.0, 0.0, 100.0]


def test_inflight_bound_is_batches_in_flight_times_mean_batch_bytes() -> None:
    # Means: compressed (100 + 300) / 2 = 200, parsed (1000 + 3000) / 2 = 2000.
    m = measures.inflight_bound(8, [100, 300], [1000, 3000], peak_bytes=22_000.0)
    assert m["object_store.inflight_bound_bytes"] == 8 * (200 + 2000) == 17_600
    assert m["object_store.peak_over_bound"] == pytest.approx(22_000 / 17_600)


@pytest.mark.parametrize(
    "compressed, outputs, peak",
    [
        ([100], None, 5.0),  # regex records: output size unknown
        ([], [], 5.0),  # no batch completed
        ([0], [0], 5.0),  # nothing to bound
    ],
)
def test_inflight_bound_is_nan_without_a_size(compressed, outputs, peak) -> None:
    m = measures.inflight_bound(4, compressed, outputs, peak)
    assert math.isnan(m["object_store.inflight_bound_bytes"])
    assert math.isnan(m["object_store.peak_over_bound"])


def test_inflight_bound_needs_the_same_batches_and_passes_a_missing_peak() -> None:
    with pytest.raises(ValueError, match="same batches"):
        measures.inflight_bound(4, [1, 2], [3], 5.0)
    m = measures.inflight_bound(2, [10], [40], math.nan)
    assert m["object_store.inflight_bound_bytes"] == 100
    assert math.isnan(m["object_store.peak_over_bound"])


def test_cpu_seconds_between_counts_each_interval_inside_the_window() -> None:
    t = [0.0, 1.0, 2.0, 3.0]
    pct = [999.0, 100.0, 200.0, 50.0]  # the first sample's interval is unknown: unused
    assert measures.cpu_seconds_between(t, pct, 0.0, 3.0) == pytest.approx(3.5)
    # Half of (1, 2] at 200 % and half of (2, 3] at 50 %.
    assert measures.cpu_seconds_between(t, pct, 1.5, 2.5) == pytest.approx(1.25)
    assert math.isnan(measures.cpu_seconds_between([0.0], [50.0], 0.0, 1.0))


def test_cpu_us_per_line_over_the_steady_window() -> None:
    recs = [
        measures.BatchRecord(i, 1_000, 0, 0, 0, planned_s=0.1 * i, done_s=done)
        for i, done in enumerate([0.5, 1.5, 2.0, 3.0])
    ]
    cpu = {"t_s": [0.0, 1.0, 2.0, 3.0], "values": [0.0, 100.0, 100.0, 200.0]}
    # Window (1.0, 3.0]: 1 s at 100 % + 1 s at 200 % = 3 CPU-s for 3 000 lines.
    assert measures.cpu_us_per_line(cpu, recs, warmup_s=1.0) == pytest.approx(1_000.0)
    # Samples that stop before the window ends price the part they cover: (1, 2],
    # 1 CPU-s for the two batches completed in it (at 1.5 s and 2.0 s).
    short = {"t_s": [0.0, 1.0, 2.0], "values": [0.0, 100.0, 100.0]}
    assert measures.cpu_us_per_line(short, recs, warmup_s=1.0) == pytest.approx(500.0)
    assert math.isnan(measures.cpu_us_per_line({}, recs, warmup_s=1.0))
    late = {"t_s": [3.0, 4.0], "values": [100.0, 100.0]}  # nothing completed while sampled
    assert math.isnan(measures.cpu_us_per_line(late, recs, warmup_s=1.0))
