"""Earliest possible detection: the same detector, offline, on the exact data.

The oracle replays the parsed batches in batch order through one in-process
"shard" that applies the pipeline's pane closing rule (watermark = largest
``last_event_ms`` so far), feeding the same :class:`DetectorCore` with one
shard. The batch after which it first alerts for an injection is the earliest a
streaming run with the same settings could have alerted: the harness reports
the pipeline's delay over it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from logpipe.batch import BatchMeta
from logpipe.detector import Alert, DetectorConfig, DetectorCore
from logpipe.windows import PaneAggregate, SketchConfig, WindowSpec, aggregate_table, pane_closed


def _field(item: Any, name: str) -> Any:
    return item[name] if isinstance(item, Mapping) else getattr(item, name)


def matches(alert: Alert | Mapping[str, Any], truth_item: Any, window: WindowSpec) -> bool:
    """Whether ``alert`` detects the injection ``truth_item``.

    Same kind and key, and the alert's window ``[window_start_ms, window_end_ms)``
    overlaps ``[start_ms, end_ms + window.size_ms)``: a window still holds
    anomalous panes up to one window size after the injection ends. Both
    arguments may be objects or dicts (e.g. alerts read back from JSON).
    """
    if _field(alert, "kind") != _field(truth_item, "kind"):
        return False
    if _field(alert, "key") != _field(truth_item, "key"):
        return False
    start, end = int(_field(truth_item, "start_ms")), int(_field(truth_item, "end_ms"))
    return (
        int(_field(alert, "window_start_ms")) < end + window.size_ms
        and int(_field(alert, "window_end_ms")) > start
    )


def replay_alerts(
    tables_by_batch: Iterable[tuple[BatchMeta, pa.Table]],
    window: WindowSpec,
    config: DetectorConfig,
    sketch: SketchConfig | None = None,
) -> list[Alert]:
    """Every alert an exact single-shard run raises on the batches, in order."""
    pane_ms = window.pane_ms
    core = DetectorCore(config, window, 1, sketch)
    open_panes: dict[int, PaneAggregate] = {}
    next_pane: int | None = None
    watermark: int | None = None
    last_batch = -1
    alerts: list[Alert] = []
    for meta, table in tables_by_batch:
        last_batch = meta.batch_id
        if next_pane is None:
            next_pane = meta.first_event_ms // pane_ms
        for p, agg in aggregate_table(table, pane_ms, sketch).items():
            if p < next_pane:
                continue  # late: its pane has closed, detection never sees it
            if p in open_panes:
                open_panes[p].merge(agg)
            else:
                open_panes[p] = agg
        watermark = meta.last_event_ms if watermark is None else max(watermark, meta.last_event_ms)
        while pane_closed(next_pane, watermark, pane_ms):
            alerts += core.submit(0, _take(open_panes, next_pane, sketch), meta.batch_id)
            next_pane += 1
    # End of stream: every open pane closes, triggered by the last batch.
    if next_pane is not None:
        for p in range(next_pane, max(open_panes, default=next_pane - 1) + 1):
            alerts += core.submit(0, _take(open_panes, p, sketch), last_batch)
    alerts += core.flush()
    return alerts


def _take(
    open_panes: dict[int, PaneAggregate], pane: int, sketch: SketchConfig | None
) -> PaneAggregate:
    found = open_panes.pop(pane, None)
    return found if found is not None else PaneAggregate.empty(pane, sketch)


def first_matches(
    alerts: Iterable[Alert | Mapping[str, Any]], truth: Sequence[Any], window: WindowSpec
) -> dict[int, Alert | Mapping[str, Any] | None]:
    """For each injection (by index in ``truth``), its earliest matching alert or None.

    "Earliest" is by ``trigger_batch_id``, then ``alert_id``.
    """
    best: dict[int, Alert | Mapping[str, Any] | None] = dict.fromkeys(range(len(truth)))
    ordered = sorted(
        alerts, key=lambda a: (int(_field(a, "trigger_batch_id")), int(_field(a, "alert_id")))
    )
    for alert in ordered:
        for i, item in enumerate(truth):
            if best[i] is None and matches(alert, item, window):
                best[i] = alert
    return best


def earliest_detections(
    tables_by_batch: Iterable[tuple[BatchMeta, pa.Table]],
    window: WindowSpec,
    config: DetectorConfig,
    truth: Sequence[Any],
    sketch: SketchConfig | None = None,
) -> dict[int, int | None]:
    """Batch id after which an exact detector first fires for each injection, or None.

    ``truth`` items have ``kind``, ``key``, ``start_ms`` and ``end_ms`` (objects
    or dicts); keys of the result are indices into ``truth``.
    """
    alerts = replay_alerts(tables_by_batch, window, config, sketch)
    return {
        i: None if a is None else int(_field(a, "trigger_batch_id"))
        for i, a in first_matches(alerts, truth, window).items()
    }
