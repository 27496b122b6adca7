"""Self-contained HTML report of one or more results (``logbench report``).

The page needs no network: figures are base64 PNGs, CSS is inline. Every piece
of text taken from a result (scenario names, keys, dead letters, paths,
metadata) goes through :func:`_t`, which makes control characters visible and
HTML-escapes the rest, so a hostile log line cannot inject markup or terminal
escapes. A figure whose data is missing is replaced by a note.

Confidence intervals are 95 % percentile bootstraps of the median over complete
replicates (fixed seed, so a report is reproducible); with fewer than three
replicates a bootstrap says nothing, and the min-max range is shown instead.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from harness import metrics as vocab
from harness.figures import RESULT_FIGURES, MissingData, fig_comparison, visible

__all__ = ["median_ci", "render_html", "write_report"]

CI_LEVEL = 0.95
_BOOT = 2000
_SEED = 20240601
_MAX_ROWS = 50
_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em}h2{border-bottom:2px solid #ccc;padding-bottom:.2em;margin-top:2em}
h3{margin-top:1.5em}table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#8a5a00;background:#fff6e0;padding:.4em .8em;border-left:3px solid #e0a000}
.bad{color:#b00020;font-weight:bold}.ok{color:#1b7f1b;font-weight:bold}
code,pre{font-family:ui-monospace,monospace;font-size:.85em}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;max-height:24em}
img{max-width:100%;border:1px solid #eee}
"""


def _t(x: Any) -> str:
    """Result text for HTML: control characters shown as ``\\xNN``, then escaped."""
    return html.escape(visible(x), quote=True)


def _as_dict(result: Any) -> dict[str, Any]:
    if hasattr(result, "to_dict"):
        result = result.to_dict()
    if not isinstance(result, Mapping):
        raise TypeError(f"expected a result dict or RunResult, got {type(result).__name__}")
    return dict(result)


def _label(result: Mapping[str, Any], index: int) -> str:
    sc = result.get("scenario") or {}
    name = str(sc.get("name") or f"result {index + 1}")
    if sc.get("variant"):
        name += f"[{sc['variant']}]"
    started = (result.get("metadata") or {}).get("started_at")
    return f"{name} @ {started}" if started else name


def _is_num(x: Any) -> TypeGuard[int | float]:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _metric_values(result: Mapping[str, Any], name: str) -> list[float]:
    """Finite values of ``name`` over complete replicates."""
    out = []
    for rep in result.get("replicates") or []:
        if isinstance(rep, Mapping) and rep.get("complete", True):
            x = (rep.get("metrics") or {}).get(name)
            if _is_num(x):
                out.append(float(x))
    return out


def median_ci(values: Sequence[float]) -> tuple[float, float, float, str] | None:
    """``(median, lo, hi, kind)``: kind ``"ci95"`` (bootstrap, n >= 3) or ``"range"``."""
    x = np.asarray([v for v in values if _is_num(v)], dtype=float)
    if x.size == 0:
        return None
    med = float(np.median(x))
    if x.size < 3:
        return med, float(x.min()), float(x.max()), "range"
    rng = np.random.default_rng(_SEED)
    boot = np.median(x[rng.integers(0, x.size, size=(_BOOT, x.size))], axis=1)
    tail = (1 - CI_LEVEL) / 2
    return med, float(np.quantile(boot, tail)), float(np.quantile(boot, 1 - tail)), "ci95"


def _fmt(x: Any, unit: str = "") -> str:
    if not _is_num(x):
        return "–" if x is None else _t(x)
    x = float(x)
    if unit == "bytes":
        for div, suffix in ((1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB")):
            if abs(x) >= div:
                return f"{x / div:.2f} {suffix}"
        return f"{x:.0f} B"
    if abs(x) >= 1e5:
        return f"{x:,.0f}"
    return f"{x:.4g}"


def _metric_names(results: Sequence[Mapping[str, Any]]) -> list[str]:
    names: set[str] = set()
    for r in results:
        names.update((r.get("summary") or {}).keys())
        for rep in r.get("replicates") or []:
            if isinstance(rep, Mapping):
                names.update((rep.get("metrics") or {}).keys())
    order = {name: i for i, name in enumerate(vocab.METRICS)}
    return sorted(names, key=lambda n: (n not in order, order.get(n, 0), n))


def _unit(name: str) -> str:
    d = vocab.METRICS.get(name)
    return d.unit if d else ""


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: int = 0) -> str:
    """HTML table; cells are already-escaped HTML; the last ``numeric`` columns align right."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = []
    for row in rows:
        cells = [
            f'<td class="n">{c}</td>' if i >= len(row) - numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        ]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _interval(stat: tuple[float, float, float, str] | None, unit: str) -> str:
    if stat is None:
        return "–"
    _, lo, hi, kind = stat
    tag = "95% CI" if kind == "ci95" else "range"
    return f"[{_fmt(lo, unit)}, {_fmt(hi, unit)}] <small>{tag}</small>"


def _stored_stat(result: Mapping[str, Any], name: str) -> tuple[float, float, float, str] | None:
    """The file's own summary, for metrics whose replicate values are absent."""
    s = (result.get("summary") or {}).get(name)
    if not isinstance(s, Mapping) or not _is_num(s.get("median")):
        return None
    med = float(s["median"])
    lo, hi = s.get("min"), s.get("max")
    return med, float(lo) if _is_num(lo) else med, float(hi) if _is_num(hi) else med, "range"


def _summary_section(result: Mapping[str, Any]) -> str:
    rows = []
    for name in _metric_names([result]):
        unit = _unit(name)
        values = _metric_values(result, name)
        stat = median_ci(values) or _stored_stat(result, name)
        if stat is None:
            continue
        mean = float(np.mean(values)) if values else None
        rows.append(
            [
                f"<code>{_t(name)}</code>",
                _t(unit),
                _fmt(stat[0], unit),
                _interval(stat, unit),
                _fmt(mean, unit),
                str(len(values)),
            ]
        )
    if not rows:
        return '<p class="note">No metrics recorded.</p>'
    return _table(["metric", "unit", "median", "interval", "mean", "n"], rows, numeric=4)


def _img(png: bytes, title: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<figure><img alt="{_t(title)}" src="data:image/png;base64,{data}"></figure>'


def _figures(result: Mapping[str, Any], stem: str) -> tuple[str, dict[str, bytes]]:
    parts, pngs = [], {}
    for name, title, build in RESULT_FIGURES:
        parts.append(f"<h3>{_t(title)}</h3>")
        try:
            png = build(result)
        except MissingData as exc:
            parts.append(f'<p class="note">Figure omitted: {_t(exc)}.</p>')
            continue
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            # Malformed data must not cost the rest of the report; say what broke.
            parts.append(
                f'<p class="note">Figure omitted: unusable data ({_t(type(exc).__name__)}: '
                f"{_t(exc)}).</p>"
            )
            continue
        pngs[f"{stem}-{name}.png"] = png
        parts.append(_img(png, title))
    return "".join(parts), pngs


def _detections_table(rep: Mapping[str, Any]) -> str:
    rows = []
    for d in rep.get("detections") or []:
        if not isinstance(d, Mapping):
            continue
        ok = '<span class="ok">yes</span>' if d.get("detected") else '<span class="bad">no</span>'
        rows.append(
            [_t(d.get("kind")), _t(d.get("key")), ok]
            + [_fmt(d.get(k), "s") for k in ("ttd_s", "ttd_actual_s", "delay_over_oracle_s")]
        )
    if not rows:
        return ""
    header = ["kind", "key", "detected", "TTD (s)", "TTD actual (s)", "over oracle (s)"]
    return _table(header, rows, numeric=3)


def _alerts_table(rep: Mapping[str, Any]) -> str:
    alerts = [a for a in rep.get("alerts") or [] if isinstance(a, Mapping)]
    rows = [
        [
            _fmt(a.get("alert_id")),
            _t(a.get("kind")),
            _t(a.get("key")),
            "yes" if a.get("matched") else '<span class="bad">no (false alert)</span>',
        ]
        + [_fmt(a.get(k)) for k in ("observed", "baseline", "detected_s")]
        for a in alerts[:_MAX_ROWS]
    ]
    if not rows:
        return ""
    header = ["alert", "kind", "key", "matched", "observed", "baseline", "detected (s)"]
    more = len(alerts) - len(rows)
    extra = f'<p class="note">{more} more alerts not shown.</p>' if more > 0 else ""
    return _table(header, rows, numeric=3) + extra


def _faults_table(rep: Mapping[str, Any]) -> str:
    rows = [
        [_t(f.get("kind")), _t(f.get("target"))]
        + [_fmt(f.get(k), "s") for k in ("at_s", "recovered_s", "recovery_s")]
        for f in rep.get("faults") or []
        if isinstance(f, Mapping)
    ]
    header = ["fault", "target", "at (s)", "recovered (s)", "recovery (s)"]
    return _table(header, rows, numeric=3) if rows else ""


def _integrity_rejections(rep: Mapping[str, Any]) -> str:
    integ = rep.get("integrity") or {}
    ok = integ.get("ok")
    status = '<span class="ok">ok</span>' if ok else '<span class="bad">FAILED</span>'
    if ok is None:
        status = "not checked"
    parts = [f"<p>Integrity: {status}</p>"]
    problems = integ.get("problems") or []
    if problems:
        parts.append("<ul>" + "".join(f"<li>{_t(p)}</li>" for p in problems) + "</ul>")
    rej = rep.get("rejections") or {}
    reasons = rej.get("reasons") or {}
    if reasons:
        rows = [[_t(k), _fmt(v)] for k, v in sorted(reasons.items(), key=lambda kv: str(kv[0]))]
        parts.append(_table(["rejection reason", "lines"], rows, numeric=1))
    letters = [d for d in rej.get("dead_letters") or [] if isinstance(d, Mapping)]
    if letters:
        rows = [
            [
                _fmt(d.get("batch_id")),
                _fmt(d.get("line")),
                _t(d.get("reason")),
                f"<code>{_t(d.get('sample'))}</code>",
            ]
            for d in letters[:_MAX_ROWS]
        ]
        more = len(letters) - len(rows)
        parts.append("<h4>Dead-letter samples</h4>")
        parts.append(_table(["batch", "line", "reason", "sample"], rows))
        if more > 0:
            parts.append(f'<p class="note">{more} more dead letters not shown.</p>')
    return "".join(parts)


def _replicate_section(rep: Mapping[str, Any]) -> str:
    idx = _t(rep.get("index", "?"))
    head = f"<h3>Replicate {idx}"
    if rep.get("complete") is False:
        head += ' <span class="bad">(incomplete)</span>'
    head += f" — {_fmt(rep.get('duration_s'), 's')} s</h3>"
    tables = _detections_table(rep) + _alerts_table(rep) + _faults_table(rep)
    return head + tables + _integrity_rejections(rep)


def _metadata_section(result: Mapping[str, Any]) -> str:
    meta = result.get("metadata") or {}
    rows = []
    for key in sorted(meta, key=str):
        value = meta[key]
        text = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value
        rows.append([f"<code>{_t(key)}</code>", _t(text)])
    sc = result.get("scenario") or {}
    settings = json.dumps(sc.get("settings") or {}, indent=2, sort_keys=True, default=str)
    return (
        "<h3>Metadata</h3>"
        + (_table(["field", "value"], rows) if rows else '<p class="note">none</p>')
        + f"<h3>Scenario settings</h3><p>module: <code>{_t(sc.get('module'))}</code></p>"
        + f"<pre>{_t(settings)}</pre>"
    )


def _result_section(result: Mapping[str, Any], index: int) -> tuple[str, dict[str, bytes]]:
    label = _label(result, index)
    stem = f"{index + 1:02d}-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", label)[:60].strip("._")
    parts = [f'<section id="result-{index + 1}"><h2>{_t(label)}</h2>']
    if result.get("complete") is False:
        parts.append('<p class="note">Partial result: the run was interrupted.</p>')
    parts.append("<h3>Summary over complete replicates</h3>" + _summary_section(result))
    figs, pngs = _figures(result, stem)
    parts.append(figs)
    reps = [r for r in result.get("replicates") or [] if isinstance(r, Mapping)]
    parts.extend(_replicate_section(r) for r in reps)
    parts.append(_metadata_section(result) + "</section>")
    return "".join(parts), pngs


def _comparison_section(results: Sequence[Mapping[str, Any]]) -> tuple[str, dict[str, bytes]]:
    labels = [_label(r, i) for i, r in enumerate(results)]
    names = _metric_names(results)
    rows, plotted = [], []
    for name in names:
        unit = _unit(name)
        stats = [median_ci(_metric_values(r, name)) for r in results]
        if all(s is None for s in stats):
            continue
        cells = ["–" if s is None else f"{_fmt(s[0], unit)}<br>{_interval(s, unit)}" for s in stats]
        rows.append([f"<code>{_t(name)}</code>", _t(unit), *cells])
        d = vocab.METRICS.get(name)
        if d is not None and d.gated and all(s is not None for s in stats):
            points = [(lab, s[0], s[1], s[2]) for lab, s in zip(labels, stats) if s is not None]
            plotted.append((name, unit, points))
    parts = ['<section id="comparison"><h2>Comparison</h2>']
    parts.append(
        "<p>Median over complete replicates; interval: 95% bootstrap CI of the median "
        "(min-max range with fewer than 3 replicates).</p>"
    )
    parts.append(_table(["metric", "unit", *(_t(lab) for lab in labels)], rows))
    pngs = {}
    try:
        png = fig_comparison(plotted)
        pngs["00-comparison.png"] = png
        parts.append(_img(png, "Comparison of the gated metrics"))
    except MissingData as exc:
        parts.append(f'<p class="note">Comparison figure omitted: {_t(exc)}.</p>')
    parts.append("</section>")
    return "".join(parts), pngs


def _render(results: Sequence[Any], title: str | None) -> tuple[str, dict[str, bytes]]:
    dicts = [_as_dict(r) for r in results]
    if not dicts:
        raise ValueError("no results to report")
    if title is None:
        title = "logbench report: " + ", ".join(_label(r, i) for i, r in enumerate(dicts))
    body, pngs = [], {}
    if len(dicts) > 1:
        html_part, figs = _comparison_section(dicts)
        body.append(html_part)
        pngs.update(figs)
    for i, r in enumerate(dicts):
        html_part, figs = _result_section(r, i)
        body.append(html_part)
        pngs.update(figs)
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_t(title)}</title><style>{_CSS}</style></head>"
        f"<body><h1>{_t(title)}</h1>{''.join(body)}</body></html>"
    )
    return page, pngs


def render_html(results: Sequence[Any], title: str | None = None) -> str:
    """The report page for result dicts (or objects with ``to_dict()``)."""
    return _render(results, title)[0]


def write_report(
    results: Sequence[Any],
    out_path: str | Path,
    png_dir: str | Path | None = None,
    title: str | None = None,
) -> list[Path]:
    """Write the HTML report (and each figure as PNG into ``png_dir``); returns paths written."""
    page, pngs = _render(results, title)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    written = [out]
    if png_dir is not None:
        d = Path(png_dir)
        d.mkdir(parents=True, exist_ok=True)
        for name, png in pngs.items():
            (d / name).write_bytes(png)
            written.append(d / name)
    return written
