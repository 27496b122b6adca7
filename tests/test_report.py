"""HTML report: every figure for a realistic result, escaping, PNG output, comparison."""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.figures import RESULT_FIGURES, label, visible
from harness.report import median_ci, render_html, write_report

HOSTILE = "<script>alert(1)</script>\x1b[31mred\x1b[0m"


def _series(fn, n: int = 40, dt: float = 0.25) -> dict[str, list[float]]:
    t = [i * dt for i in range(n)]
    return {"t_s": t, "values": [float(fn(x)) for x in t]}


def _replicate(index: int, rng: np.random.Generator) -> dict[str, Any]:
    lat = rng.lognormal(mean=-2.0, sigma=0.4, size=300).tolist()
    speed = 120_000.0 * (1 + 0.05 * index)
    return {
        "index": index,
        "complete": True,
        "started_at_s": 1_764_770_000.0 + 20 * index,
        "duration_s": 10.0,
        "warmup_s": 2.0,
        "metrics": {
            "throughput.lines_per_s": speed,
            "object_store.peak_bytes": (48 + 3 * index) * 1024 * 1024,
            "detection.ttd_p50_s": 0.9 + 0.1 * index,
            "latency.batch_p50_s": float(np.median(lat)),
            "integrity.ok": 1.0,
        },
        "series": {
            "throughput.lines_per_s": _series(lambda t: speed * min(1.0, t / 2)),
            "object_store.bytes": _series(lambda t: 1e6 * (20 + 10 * math.sin(t))),
            "backlog.batches": _series(lambda t: int(t) % 4),
            "lateness.s": _series(lambda t: 0.01 * (t % 3)),
            "resources.cpu_percent": _series(lambda t: 150 + 10 * math.cos(t)),
            "resources.rss_bytes": _series(lambda t: 8e8 + 1e6 * t),
        },
        "samples": {"latency.batch_s": lat, "lateness.s": [0.0, 0.01, 0.02]},
        "detections": [
            {
                "kind": "error_rate",
                "key": "checkout",
                "start_ms": 0,
                "end_ms": 5000,
                "detected": True,
                "alert_id": 3,
                "first_batch_id": 12,
                "planned_emit_s": 4.1,
                "actual_emit_s": 4.2,
                "detected_s": 5.0,
                "ttd_s": 0.9,
                "ttd_actual_s": 0.8,
                "oracle_s": 4.6,
                "delay_over_oracle_s": 0.4,
            },
            {
                "kind": "latency",
                "key": "api /users/{id}",
                "start_ms": 0,
                "end_ms": 5000,
                "detected": False,
                "alert_id": None,
                "first_batch_id": 20,
                "planned_emit_s": 6.0,
                "actual_emit_s": 6.0,
                "detected_s": None,
                "ttd_s": None,
                "ttd_actual_s": None,
                "oracle_s": None,
                "delay_over_oracle_s": None,
            },
        ],
        "alerts": [
            {
                "alert_id": 3,
                "kind": "error_rate",
                "key": "checkout",
                "window_start_ms": 0,
                "window_end_ms": 5000,
                "observed": 0.4,
                "baseline": 0.01,
                "event_ms": 4000,
                "trigger_batch_id": 14,
                "detected_s": 5.0,
                "matched": True,
            },
            {
                "alert_id": 4,
                "kind": "user_activity",
                "key": HOSTILE,
                "window_start_ms": 0,
                "window_end_ms": 5000,
                "observed": 90.0,
                "baseline": 3.0,
                "event_ms": 7000,
                "trigger_batch_id": 30,
                "detected_s": 7.5,
                "matched": False,
            },
        ],
        "shards": {"lines": [1000 + index, 990, 1010]},
        "faults": [
            {
                "kind": "kill_parse_worker",
                "target": "parse",
                "at_s": 3.0,
                "recovered_s": 3.4,
                "recovery_s": 0.4,
            }
        ],
        "integrity": {"ok": True, "problems": []},
        "rejections": {
            "reasons": {"malformed": 3, "truncated": 1},
            "dead_letters": [
                {"batch_id": 1, "line": 7, "reason": "malformed", "sample": HOSTILE},
                {"batch_id": 2, "line": 0, "reason": "truncated", "sample": "GET / HTTP"},
            ],
        },
    }


def smoke_result(scenario: str = "smoke", seed: int = 0, n: int = 3) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "kind": "logbench.result",
        "schema_version": 1,
        "complete": True,
        "scenario": {
            "name": scenario,
            "variant": None,
            "module": "scenarios/smoke.py",
            "settings": {"rate": 20000, "note": "</pre><script>x()</script>"},
        },
        "metadata": {
            "git_commit": "abc123",
            "cpu_model": "Test CPU",
            "cpu_count": 2,
            "started_at": "2026-12-03T15:00:00Z",
            "user_agent": HOSTILE,
            "calibration": {"lines_per_s": 812345.0, "samples": [1.0], "version": 1},
        },
        "replicates": [_replicate(i, rng) for i in range(n)],
        "summary": {},
    }


def _imgs(page: str) -> int:
    return len(re.findall(r'<img alt="[^"]*" src="data:image/png;base64,[A-Za-z0-9+/=]+">', page))


def _without_figure_data(result: dict[str, Any]) -> dict[str, Any]:
    """The same result with nothing to draw: for tests about tables and text only."""
    for rep in result["replicates"]:
        for key in ("series", "samples", "shards", "detections", "alerts"):
            rep.pop(key, None)
    return result


@pytest.fixture(scope="module")
def hostile_page() -> str:
    # Rendering is the slow part (matplotlib); one page serves several tests.
    return render_html([smoke_result(scenario="<script>evil()</script>")], title=HOSTILE)


def test_every_figure_is_embedded_for_a_smoke_result(hostile_page: str) -> None:
    page = hostile_page
    assert _imgs(page) == len(RESULT_FIGURES)
    assert "Figure omitted" not in page
    for _, title, _ in RESULT_FIGURES:
        assert title in page
    assert "http://" not in page and "https://" not in page.replace("https://example", "")
    assert "throughput.lines_per_s" in page and "95% CI" in page
    assert "kill_parse_worker" in page and "malformed" in page


def test_result_text_is_escaped_everywhere(hostile_page: str) -> None:
    page = hostile_page
    assert "<script" not in page.lower()
    assert "\x1b" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\\x1b[31mred" in page
    assert "&lt;script&gt;evil()&lt;/script&gt;" in page
    alert_row = re.search(r"<tr><td[^>]*>4</td><td>user_activity</td><td>(.*?)</td>", page)
    assert alert_row is not None and alert_row.group(1).startswith("&lt;script&gt;alert(1)")
    # Settings cannot close the <pre> early.
    assert "&lt;/pre&gt;&lt;script&gt;x()" in page
    assert page.count("<pre>") == page.count("</pre>") == 1


def test_missing_series_omit_their_figures_with_a_note() -> None:
    result = smoke_result(n=1)
    rep = result["replicates"][0]
    rep["series"] = {}
    rep["samples"] = {}
    del rep["shards"]
    page = render_html([result])
    assert page.count("Figure omitted") == 5
    assert "samplers off?" in page
    assert _imgs(page) == 1  # the detection timeline still has its data


def test_malformed_data_is_reported_not_raised() -> None:
    result = _without_figure_data(smoke_result(n=1))
    result["replicates"][0]["series"] = {"lateness.s": {"t_s": [0, 1], "values": ["x", "y"]}}
    result["replicates"].append("not a replicate")
    page = render_html([result])
    assert "unusable data" in page
    assert _imgs(page) == 0


def test_write_report_with_png_dir(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "report.html"
    written = write_report([smoke_result(scenario="../../etc/x")], out, tmp_path / "png")
    assert written[0] == out and out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    pngs = sorted((tmp_path / "png").iterdir())
    assert sorted(written[1:]) == pngs
    assert len(pngs) == len(RESULT_FIGURES)
    for p in pngs:
        assert p.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert ".." not in p.name and "/" not in p.name
    for name, _, _ in RESULT_FIGURES:
        assert sum(p.name.endswith(f"-{name}.png") for p in pngs) == 1


def test_comparison_section_for_several_results(tmp_path: Path) -> None:
    base = _without_figure_data(smoke_result("smoke", seed=1))
    cand = _without_figure_data(smoke_result("smoke", seed=2))
    cand["scenario"]["variant"] = "fast"
    for rep in cand["replicates"]:
        rep["metrics"]["throughput.lines_per_s"] *= 1.5
    written = write_report([base, cand], tmp_path / "r.html", tmp_path / "png")
    page = written[0].read_text(encoding="utf-8")
    assert 'id="comparison"' in page and "smoke[fast]" in page
    assert page.index('id="comparison"') < page.index('id="result-1"') < page.index('id="result-2"')
    assert _imgs(page) == 1  # only the comparison: the results have nothing else to draw
    assert written[1:] == [tmp_path / "png" / "00-comparison.png"]
    row = re.search(r"<code>throughput.lines_per_s</code>.*?</tr>", page)
    assert row is not None and row.group().count("95% CI") == 2


def test_accepts_objects_with_to_dict() -> None:
    class Result:
        def to_dict(self) -> dict[str, Any]:
            return _without_figure_data(smoke_result(scenario="from-object", n=1))

    assert "from-object" in render_html([Result()])
    with pytest.raises(TypeError):
        render_html([42])
    with pytest.raises(ValueError):
        render_html([])


def test_incomplete_replicates_are_flagged_and_left_out_of_statistics() -> None:
    result = _without_figure_data(smoke_result(n=3))
    result["complete"] = False
    result["replicates"][2]["complete"] = False
    result["replicates"][2]["metrics"]["throughput.lines_per_s"] = 1.0
    page = render_html([result])
    assert "Partial result" in page and "(incomplete)" in page
    row = re.search(r"<code>throughput.lines_per_s</code>.*?</tr>", page)
    assert row is not None and "range" in row.group() and '<td class="n">2</td>' in row.group()


def test_median_ci() -> None:
    assert median_ci([]) is None
    assert median_ci([2.0, 4.0]) == (3.0, 2.0, 4.0, "range")
    med, lo, hi, kind = median_ci([1.0, 2.0, 3.0, 4.0, 100.0])  # type: ignore[misc]
    assert kind == "ci95" and med == 3.0 and 1.0 <= lo <= med <= hi <= 100.0
    assert median_ci([1.0, 2.0, 3.0]) == median_ci([1.0, 2.0, 3.0])  # fixed seed


def test_labels_are_safe_for_matplotlib() -> None:
    assert visible("a\x1bb\x00") == "a\\x1bb\\x00"
    assert label("cost $5 and $6") == r"cost \$5 and \$6"
    assert len(label("x" * 200, width=10)) == 10
    copy.deepcopy(smoke_result())  # the fixture is plain data
