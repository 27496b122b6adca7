"""Terminal output: live progress, summary tables, safe printing of log text.

Everything printed that came from log content (keys, paths, dead letters) goes
through :func:`safe`, so control characters and terminal escape sequences are
shown escaped instead of being interpreted by the terminal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from statistics import median
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from harness import metrics as metric_defs
from harness.power import detectable_change, min_replicates_for_test
from harness.stats import cv

SUMMARY_METRICS = (
    "throughput.lines_per_s",
    "throughput.mb_per_s",
    "latency.batch_p50_s",
    "latency.batch_p99_s",
    "detection.recall",
    "detection.precision",
    "detection.ttd_p50_s",
    "detection.delay_over_oracle_s",
    "object_store.peak_bytes",
    "object_store.spilled_bytes",
    "backlog.max_batches",
    "lateness.p99_s",
    "shards.imbalance",
    "resources.cpu_busy_fraction",
    "resources.cpu_us_per_line",
    "integrity.ok",
)


def safe(text: object) -> str:
    """``text`` with control characters (ESC, NUL, ...) escaped for the terminal."""
    s = str(text)
    out = []
    for ch in s:
        code = ord(ch)
        if code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    return "".join(out)


def fmt(value: Any, unit: str = "") -> str:
    """Human formatting of a metric value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    v = float(value)
    if unit == "bytes":
        for suffix in ("B", "KiB", "MiB", "GiB"):
            if abs(v) < 1024 or suffix == "GiB":
                return f"{v:,.0f} {suffix}" if suffix == "B" else f"{v:,.1f} {suffix}"
            v /= 1024
    if unit in ("lines/s", "lines", "count", "batches"):
        return f"{v:,.0f}"
    if unit == "s":
        return f"{v * 1000:,.0f} ms" if abs(v) < 1 else f"{v:,.2f} s"
    return f"{v:,.3g}"


class ProgressReporter:
    """A rich progress bar per replicate, plus alerts printed as they arrive."""

    def __init__(self, console: Console, label: str, show_alerts: bool = False) -> None:
        self.console = console
        self.label = label
        self.show_alerts = show_alerts
        self._progress: Progress | None = None
        self._task: Any = None

    def replicate_started(self, index: int, total: int, planned_s: float) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[rate]} lines/s  alerts {task.fields[alerts]}"),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        desc = f"{safe(self.label)} replicate {index + 1}/{total}"
        self._task = self._progress.add_task(desc, total=max(planned_s, 0.1), rate="-", alerts=0)

    def progress(self, index: int, elapsed_s: float, lines: int, alerts: int) -> None:
        if self._progress is None:
            return
        rate = f"{lines / elapsed_s:,.0f}" if elapsed_s > 0 else "-"
        self._progress.update(self._task, completed=elapsed_s, rate=rate, alerts=alerts)

    def alerts(self, index: int, alerts: Sequence[dict[str, Any]]) -> None:
        if not self.show_alerts:
            return
        for a in alerts:
            self.console.print(
                Text(
                    f"ALERT {safe(a.get('kind'))} {safe(a.get('key'))} "
                    f"observed={fmt(a.get('observed'))} baseline={fmt(a.get('baseline'))}"
                ),
                style="bold red",
            )

    def replicate_finished(self, index: int, metrics: dict[str, float]) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=self._progress.tasks[0].total)
            self._progress.stop()
            self._progress = None


def summary_table(title: str, summary: Mapping[str, Mapping[str, Any]]) -> Table:
    """Median (min-max) of the main metrics over replicates."""
    table = Table(title=safe(title))
    table.add_column("metric")
    table.add_column("median", justify="right")
    table.add_column("min .. max", justify="right")
    table.add_column("n", justify="right")
    for name in SUMMARY_METRICS:
        if name not in summary:
            continue
        row = summary[name]
        unit = metric_defs.get(name).unit
        table.add_row(
            name,
            fmt(row.get("median"), unit),
            f"{fmt(row.get('min'), unit)} .. {fmt(row.get('max'), unit)}",
            str(row.get("n", "")),
        )
    return table


def matrix_table(rows: Iterable[tuple[str, Mapping[str, Mapping[str, Any]]]]) -> Table:
    """One row per variant: throughput, imbalance, detection latency, store peak."""
    cols = (
        "throughput.lines_per_s",
        "shards.imbalance",
        "detection.ttd_p50_s",
        "latency.batch_p99_s",
        "object_store.peak_bytes",
        "integrity.ok",
    )
    table = Table(title="variants (medians over replicates)")
    table.add_column("variant")
    for c in cols:
        table.add_column(c, justify="right")
    for name, summary in rows:
        cells = [fmt(summary.get(c, {}).get("median"), metric_defs.get(c).unit) for c in cols]
        table.add_row(safe(name), *cells)
    return table


def noise_line(values: Sequence[float], offered: Sequence[float] = ()) -> str | None:
    """What a run's replicates can tell apart: throughput CV and the smallest change
    their count detects against as many again (90 % power, alpha 0.05). Below
    capacity (throughput within 2 % of the offered rate) it says so: there the
    figure is the schedule's, not the pipeline's."""
    if len(values) < 2:
        return None
    spread = cv(values)
    smallest = detectable_change(spread, len(values))
    head = f"throughput CV {100 * spread:.1f} % over {len(values)} replicates: "
    if smallest is None:
        floor = min_replicates_for_test(0.05)
        line = head + f"too few to call any change significant (need {floor} or more)"
    else:
        line = head + f"a change of {100 * smallest:.1f} % or more is detected (90 % power)"
    if offered and math.isclose(median(values), median(offered), rel_tol=0.02):
        line += (
            "; below capacity: throughput is the offered rate, so compare latency and "
            "detection, or a saturating scenario, for the pipeline's speed"
        )
    return line


def make_console(stream: TextIO | None = None) -> Console:
    return Console(file=stream, highlight=False, soft_wrap=True)
