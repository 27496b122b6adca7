"""Figures of the HTML report, drawn with matplotlib's object API (no pyplot state).

Each ``fig_*`` function takes one result dict (docs/results-format.md) and
returns a PNG, or raises :class:`MissingData` saying what it lacked, so the
report can omit that figure with a note instead of failing. Text taken from a
result is passed through :func:`label` before matplotlib sees it: control
characters are made visible and ``$`` is escaped (mathtext would parse it).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

__all__ = [
    "RESULT_FIGURES",
    "MissingData",
    "fig_comparison",
    "label",
    "png_bytes",
    "visible",
]

MIB = 1024.0 * 1024.0
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_MAX_REPLICATE_PANELS = 4


class MissingData(Exception):
    """The result lacks what a figure needs; the message says what."""


def visible(text: Any) -> str:
    """``str(text)`` with control characters (terminal escapes) shown as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def label(text: Any, width: int = 48) -> str:
    """Result text made safe for a matplotlib label: visible, short, no mathtext."""
    s = visible(text)
    s = s if len(s) <= width else s[: width - 1] + "…"
    return s.replace("$", r"\$")


def png_bytes(fig: Figure, dpi: int = 96) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _replicates(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    reps = result.get("replicates") or []
    return [r for r in reps if isinstance(r, Mapping)]


def _series(rep: Mapping[str, Any], name: str) -> tuple[np.ndarray, np.ndarray] | None:
    s = (rep.get("series") or {}).get(name)
    if not isinstance(s, Mapping):
        return None
    t = np.asarray(s.get("t_s") or [], dtype=float)
    v = np.asarray(s.get("values") or [], dtype=float)
    if t.size == 0 or t.size != v.size:
        return None
    return t, v


def _plot_series(ax: Axes, reps: list[Mapping[str, Any]], name: str, scale: float) -> int:
    n = 0
    for rep in reps:
        tv = _series(rep, name)
        if tv is not None:
            ax.plot(tv[0], tv[1] / scale, lw=1.2, label=f"rep {label(rep.get('index', n))}")
            n += 1
    return n


def _series_panels(result: Mapping[str, Any], panels: Sequence[tuple[str, str, float]]) -> bytes:
    """Stacked time-series panels ``(series name, y label, scale)``, one line per replicate."""
    reps = _replicates(result)
    present = [p for p in panels if any(_series(r, p[0]) for r in reps)]
    if not present:
        raise MissingData("no series " + ", ".join(p[0] for p in panels) + " (samplers off?)")
    fig = Figure(figsize=(8.0, 2.4 * len(panels)))
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    warmup = max((_num(r.get("warmup_s")) or 0.0 for r in reps), default=0.0)
    for ax, (name, ylabel, scale) in zip(axes, panels):
        if warmup > 0:
            ax.axvspan(0.0, warmup, color="grey", alpha=0.12, lw=0)
        if _plot_series(ax, reps, name, scale) == 0:
            ax.text(0.5, 0.5, f"{name}: not recorded", ha="center", transform=ax.transAxes)
        elif len(reps) > 1:
            ax.legend(fontsize="small", loc="upper right")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time since replicate start (s); grey: warm-up")
    return png_bytes(fig)


def fig_throughput_store(result: Mapping[str, Any]) -> bytes:
    return _series_panels(
        result,
        [
            ("throughput.lines_per_s", "lines/s", 1.0),
            ("object_store.bytes", "object store (MiB)", MIB),
        ],
    )


def fig_backlog_lateness(result: Mapping[str, Any]) -> bytes:
    return _series_panels(
        result, [("backlog.batches", "backlog (batches)", 1.0), ("lateness.s", "lateness (s)", 1.0)]
    )


def fig_resources(result: Mapping[str, Any]) -> bytes:
    return _series_panels(
        result,
        [("resources.cpu_percent", "CPU (%)", 1.0), ("resources.rss_bytes", "RSS (MiB)", MIB)],
    )


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def _timeline_panel(ax: Axes, rep: Mapping[str, Any]) -> None:
    dets = [d for d in rep.get("detections") or [] if isinstance(d, Mapping)]
    rows: dict[tuple[str, str], int] = {}  # (kind, key) -> first row, for matched alerts
    for y, d in enumerate(dets):
        rows.setdefault((str(d.get("kind")), str(d.get("key"))), y)
        start, found = _num(d.get("planned_emit_s")), _num(d.get("detected_s"))
        if start is None:
            continue
        if d.get("detected") and found is not None:
            ax.plot([start, found], [y, y], color="tab:blue", lw=4, solid_capstyle="butt")
            ttd = _num(d.get("ttd_s"))
            text = f"{ttd:.2f}s" if ttd is not None else ""
            ax.annotate(text, (found, y), xytext=(4, 0), textcoords="offset points", va="center")
        else:
            ax.plot([start], [y], "x", color="tab:red", ms=9)
            ax.annotate("missed", (start, y), xytext=(6, 0), textcoords="offset points")
        oracle = _num(d.get("oracle_s"))
        if oracle is not None:
            ax.plot([oracle], [y], "|", color="black", ms=12)
    false_row = len(dets)
    for a in rep.get("alerts") or []:
        t = _num(a.get("detected_s")) if isinstance(a, Mapping) else None
        if t is None:
            continue
        row = rows.get((str(a.get("kind")), str(a.get("key"))))
        if a.get("matched") and row is not None:
            ax.plot([t], [row], "v", color="tab:green", ms=6)
        else:
            ax.plot([t], [false_row], "^", color="tab:red", ms=6)
    for f in rep.get("faults") or []:
        at = _num(f.get("at_s")) if isinstance(f, Mapping) else None
        if at is None:
            continue
        end = _num(f.get("recovered_s"))
        if end is not None and end > at:
            ax.axvspan(at, end, color="tab:orange", alpha=0.25)
        ax.axvline(at, color="tab:orange", lw=1)
        ax.annotate(label(f.get("kind"), 24), (at, false_row + 0.4), fontsize="x-small")
    names = [label(f"{d.get('kind')}: {d.get('key')}", 32) for d in dets] + ["false alerts"]
    ax.set_yticks(range(len(names)), names, fontsize="small")
    ax.set_ylim(-0.7, false_row + 0.9)
    ax.set_title(f"replicate {label(rep.get('index', '?'))}", fontsize="small", loc="left")
    ax.grid(axis="x", alpha=0.3)


def fig_detection_timeline(result: Mapping[str, Any]) -> bytes:
    """Per injected anomaly: planned emit -> detection bar (TTD), oracle tick, alerts, faults."""
    reps = [r for r in _replicates(result) if r.get("detections") or r.get("alerts")]
    if not reps:
        raise MissingData("no detections or alerts recorded")
    shown = reps[:_MAX_REPLICATE_PANELS]
    heights = [1.0 + 0.35 * (len(r.get("detections") or []) + 1) for r in shown]
    fig = Figure(figsize=(8.0, sum(heights) + 0.6))
    axes = fig.subplots(len(shown), 1, sharex=True, squeeze=False, height_ratios=heights)[:, 0]
    for ax, rep in zip(axes, shown):
        _timeline_panel(ax, rep)
    axes[-1].set_xlabel(
        "time since replicate start (s) — bar: planned emit → alert; |: oracle; "
        "▼ matched alert, ▲ false alert; orange: faults"
    )
    if len(reps) > len(shown):
        fig.suptitle(f"first {len(shown)} of {len(reps)} replicates", fontsize="small")
    return png_bytes(fig)


def fig_latency_distribution(result: Mapping[str, Any]) -> bytes:
    """Histogram of batch latency (all replicates pooled) and one CDF per replicate."""
    per_rep: list[tuple[Any, np.ndarray]] = []
    for rep in _replicates(result):
        xs = np.asarray((rep.get("samples") or {}).get("latency.batch_s") or [], dtype=float)
        xs = xs[np.isfinite(xs)]
        if xs.size:
            per_rep.append((rep.get("index", len(per_rep)), np.sort(xs)))
    if not per_rep:
        raise MissingData("no latency.batch_s samples")
    pooled = np.concatenate([xs for _, xs in per_rep])
    fig = Figure(figsize=(9.0, 3.2))
    hist_ax, cdf_ax = fig.subplots(1, 2)
    hist_ax.hist(pooled, bins=min(60, max(10, pooled.size // 20)), color="tab:blue")
    for q, style in ((50, "--"), (99, ":")):
        hist_ax.axvline(np.percentile(pooled, q), color="black", ls=style, label=f"p{q}")
    hist_ax.legend(fontsize="small")
    hist_ax.set_xlabel("batch latency (s)")
    hist_ax.set_ylabel("batches")
    for index, xs in per_rep:
        cdf_ax.step(xs, np.arange(1, xs.size + 1) / xs.size, where="post", label=f"rep {index}")
    cdf_ax.set_xlabel("batch latency (s)")
    cdf_ax.set_ylabel("fraction of batches")
    cdf_ax.grid(alpha=0.3)
    if len(per_rep) > 1:
        cdf_ax.legend(fontsize="small")
    return png_bytes(fig)


def fig_shard_load(result: Mapping[str, Any]) -> bytes:
    """Lines per shard: mean over replicates with min-max whiskers."""
    loads = []
    for rep in _replicates(result):
        lines = (rep.get("shards") or {}).get("lines")
        if isinstance(lines, list) and lines:
            loads.append([float(x) for x in lines])
    widths = {len(x) for x in loads}
    if not loads or len(widths) != 1:
        raise MissingData("no per-shard line counts (or shard counts differ across replicates)")
    arr = np.asarray(loads)
    mean = arr.mean(axis=0)
    fig = Figure(figsize=(max(4.0, 0.5 * arr.shape[1] + 2.0), 3.0))
    ax = fig.subplots()
    err = np.vstack([mean - arr.min(axis=0), arr.max(axis=0) - mean])
    ax.bar(np.arange(arr.shape[1]), mean, yerr=err, capsize=3, color="tab:blue")
    ax.axhline(mean.mean(), color="black", ls="--", lw=1, label="perfect balance")
    ax.set_xticks(np.arange(arr.shape[1]))
    ax.set_xlabel("shard")
    ax.set_ylabel("lines aggregated")
    ax.legend(fontsize="small")
    return png_bytes(fig)


def _tick(x: float, _pos: Any = None) -> str:
    return f"{x:,.0f}" if abs(x) >= 1e4 else f"{x:.4g}"


def fig_comparison(
    rows: Sequence[tuple[str, str, Sequence[tuple[str, float, float, float]]]],
) -> bytes:
    """One panel per metric ``(name, unit, [(result label, median, lo, hi)])``, stacked."""
    if not rows:
        raise MissingData("no gated metric is shared by the results")
    heights = [0.8 + 0.32 * len(points) for _, _, points in rows]
    fig = Figure(figsize=(8.0, sum(heights) + 0.4), layout="constrained")
    axes = fig.subplots(len(rows), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, (name, unit, points) in zip(axes, rows):
        scale, shown_unit = (MIB, "MiB") if unit == "bytes" else (1.0, unit)
        ys = np.arange(len(points))
        med, lo, hi = (np.asarray([p[k] for p in points]) / scale for k in (1, 2, 3))
        ax.errorbar(med, ys, xerr=[med - lo, hi - med], fmt="o", capsize=4)
        ax.set_yticks(ys, [label(p[0], 44) for p in points], fontsize="small")
        ax.set_ylim(len(points) - 0.5, -0.5)
        ax.set_title(f"{label(name)} ({label(shown_unit)})", fontsize="small", loc="left")
        ax.xaxis.set_major_locator(MaxNLocator(6))
        ax.xaxis.set_major_formatter(FuncFormatter(_tick))
        ax.grid(axis="x", alpha=0.3)
    return png_bytes(fig)


# (file stem, title, builder) for every per-result figure, in report order.
RESULT_FIGURES: tuple[tuple[str, str, Callable[[Mapping[str, Any]], bytes]], ...] = (
    ("throughput_store", "Throughput and object-store usage over time", fig_throughput_store),
    ("backlog_lateness", "Backlog and lateness over time", fig_backlog_lateness),
    ("detection_timeline", "Time to detect per injected anomaly", fig_detection_timeline),
    ("latency", "Batch latency distribution", fig_latency_distribution),
    ("shards", "Per-shard load", fig_shard_load),
    ("resources", "CPU and memory of the driver and Ray processes", fig_resources),
)
