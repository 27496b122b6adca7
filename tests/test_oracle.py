"""Earliest possible detection on a small constructed stream; the matching rule."""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from logpipe import schema
from logpipe.batch import BatchMeta
from logpipe.detector import Alert, DetectorConfig, DetectorCore
from logpipe.generate import GroundTruth
from logpipe.oracle import earliest_detections, first_matches, matches, replay_alerts
from logpipe.windows import WindowSpec, aggregate_table

SPEC = WindowSpec(4_000, 1_000)
CONFIG = DetectorConfig()
SERVICES = np.array(["auth", "cart", "shop"])


def second(p: int, bad_from: int | None, bad_to: int, n: int = 500) -> pa.Table:
    """Pane ``p`` of steady traffic; service cart at 40 % 5xx in [bad_from, bad_to)."""
    rng = np.random.default_rng(p)
    svc = SERVICES[rng.integers(0, 3, n)]
    p5 = np.full(n, 0.015)
    if bad_from is not None and bad_from <= p < bad_to:
        p5[svc == "cart"] = 0.4
    status = np.where(rng.random(n) < p5, 500, 200).astype(np.int16)
    users = [f"u{u}" for u in rng.zipf(1.5, n) % 300]
    cols = {name: pa.array(["x"] * n) for name in schema.PARSED_COLUMNS}
    cols.update(
        user=pa.array(users),
        event_ms=pa.array(np.sort(p * 1000 + rng.integers(0, 1000, n)), pa.int64()),
        status=pa.array(status, pa.int16()),
        bytes=pa.array(np.full(n, 100), pa.int64()),
        latency_s=pa.array(0.05 * np.exp(0.5 * rng.standard_normal(n))),
        service=pa.array(svc.tolist()),
        endpoint=pa.array(["/a"] * n),
        status_class=pa.array((status // 100).astype(np.int8), pa.int8()),
    )
    return pa.table(cols, schema=schema.PARSED_SCHEMA)


@functools.cache
def stream(seconds: int, bad_from: int | None, bad_to: int) -> pa.Table:
    return pa.concat_tables([second(p, bad_from, bad_to) for p in range(seconds)])


def batches(table: pa.Table, span_ms: int = 700) -> list[tuple[BatchMeta, pa.Table]]:
    """Cut the stream into batches of ``span_ms`` of event time (not pane aligned)."""
    ev = table.column("event_ms")
    out = []
    last = pc.max(ev).as_py()
    for i, lo in enumerate(range(0, last + 1, span_ms)):
        part = table.filter(pc.and_(pc.greater_equal(ev, lo), pc.less(ev, lo + span_ms)))
        pev = part.column("event_ms")
        meta = BatchMeta(i, part.num_rows, 0, pc.min(pev).as_py(), pc.max(pev).as_py())
        out.append((meta, part))
    return out


def alert_pane(table: pa.Table) -> int:
    """The pane whose window first alerts, from a direct run over whole panes."""
    core = DetectorCore(CONFIG, SPEC, 1)
    for p, agg in sorted(aggregate_table(table, SPEC.pane_ms).items()):
        alerts = core.submit(0, agg, p)
        if alerts:
            return alerts[0].trigger_batch_id
    raise AssertionError("no alert")


def closing_batch(bs: list[tuple[BatchMeta, pa.Table]], pane: int) -> int:
    return next(m.batch_id for m, _ in bs if m.last_event_ms >= (pane + 1) * SPEC.pane_ms)


def test_earliest_detection_is_the_batch_closing_the_alerting_pane() -> None:
    table = stream(40, 20, 30)
    pane = alert_pane(table)
    assert pane in (20, 21)
    bs = batches(table)
    truth = [
        GroundTruth(schema.ERROR_RATE, "cart", 20_000, 30_000),
        GroundTruth(schema.ERROR_RATE, "auth", 20_000, 30_000),  # never anomalous
        GroundTruth(schema.LATENCY, "cart /a", 20_000, 30_000),  # wrong kind
    ]
    got = earliest_detections(bs, SPEC, CONFIG, truth)
    assert got == {0: closing_batch(bs, pane), 1: None, 2: None}
    # The pane closes on the first batch holding an event at or past its end.
    end = (pane + 1) * SPEC.pane_ms
    assert bs[got[0] - 1][0].last_event_ms < end <= bs[got[0]][0].last_event_ms


def test_an_injection_at_the_end_is_detected_by_the_final_flush() -> None:
    table = stream(24, 22, 24)
    bs = batches(table, span_ms=5_000)
    truth = [GroundTruth(schema.ERROR_RATE, "cart", 22_000, 24_000)]
    # Pane 23 is only closed by the end of stream: triggered by the last batch.
    assert earliest_detections(bs, SPEC, CONFIG, truth) == {0: len(bs) - 1}


def test_late_events_do_not_reach_detection() -> None:
    table = stream(30, None, 0)
    bs = batches(table)
    late = second(12, 0, 100)  # a burst of 5xx for pane 12, arriving much later
    meta = BatchMeta(len(bs), late.num_rows, 0, 12_000, 12_999)
    assert replay_alerts([*bs, (meta, late)], SPEC, CONFIG) == []
    assert replay_alerts(bs, SPEC, CONFIG) == []


def alert(kind: str = schema.ERROR_RATE, key: str = "cart", start: int = 0, alert_id=0, trig=0):
    return Alert(alert_id, kind, key, start, start + SPEC.size_ms, 0.4, 0.01, 0, trig)


@pytest.mark.parametrize(
    ("window_start", "expected"),
    [
        (10_000 - SPEC.size_ms, False),  # window ends exactly at the injection start
        (10_000 - SPEC.size_ms + 1_000, True),
        (19_000, True),
        (20_000 + SPEC.size_ms - 1_000, True),  # still holds the last anomalous pane
        (20_000 + SPEC.size_ms, False),
    ],
)
def test_matches_window_overlap(window_start: int, expected: bool) -> None:
    truth = GroundTruth(schema.ERROR_RATE, "cart", 10_000, 20_000)
    assert matches(alert(start=window_start), truth, SPEC) is expected
    assert matches(alert(start=window_start).to_dict(), truth.to_dict(), SPEC) is expected


def test_matches_needs_same_kind_and_key() -> None:
    truth = GroundTruth(schema.ERROR_RATE, "cart", 0, 10_000)
    assert matches(alert(), truth, SPEC)
    assert not matches(alert(key="shop"), truth, SPEC)
    assert not matches(alert(kind=schema.LATENCY), truth, SPEC)


def test_first_matches_takes_the_earliest_trigger() -> None:
    truth = [GroundTruth(schema.ERROR_RATE, "cart", 0, 10_000)]
    alerts = [alert(alert_id=1, trig=9, start=4_000), alert(alert_id=2, trig=5, start=1_000)]
    best = first_matches(alerts, truth, SPEC)[0]
    assert best is not None and best.alert_id == 2
