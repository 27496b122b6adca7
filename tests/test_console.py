"""Terminal output escapes log-derived text."""

from __future__ import annotations

import io

import numpy as np

from harness.console import (
    ProgressReporter,
    fmt,
    make_console,
    noise_line,
    safe,
    summary_table,
)
from harness.power import detectable_change


def test_safe_escapes_control_and_escape_sequences() -> None:
    assert safe("a\x1b[31mred\x00\n") == "a\\x1b[31mred\\x00\\x0a"
    assert safe("plain /users/{id}") == "plain /users/{id}"
    assert safe("\x9b2J") == "\\x9b2J"


def test_fmt_units() -> None:
    assert fmt(None) == "-"
    assert fmt(float("nan")) == "-"
    assert fmt(2048, "bytes") == "2.0 KiB"
    assert fmt(0.25, "s") == "250 ms"
    assert fmt(123456.7, "lines/s") == "123,457"


def test_alerts_are_printed_escaped() -> None:
    out = io.StringIO()
    rep = ProgressReporter(make_console(out), "x", show_alerts=True)
    rep.alerts(0, [{"kind": "user_activity", "key": "evil\x1b]0;pwned\x07", "observed": 5}])
    text = out.getvalue()
    assert "\x1b]0" not in text
    assert "evil\\x1b]0;pwned\\x07" in text


def test_summary_table_renders_known_metrics() -> None:
    out = io.StringIO()
    console = make_console(out)
    summary = {"throughput.lines_per_s": {"median": 1000.0, "min": 900.0, "max": 1100.0, "n": 3}}
    console.print(summary_table("smoke", summary))
    assert "throughput.lines_per_s" in out.getvalue()
    assert "1,000" in out.getvalue()


def test_noise_line_says_what_the_replicates_can_tell_apart() -> None:
    values = [100.0, 104.0, 96.0, 101.0, 99.0]
    line = noise_line(values)
    assert line is not None and "over 5 replicates" in line
    smallest = detectable_change(float(np.std(values, ddof=1) / np.mean(values)), 5)
    assert smallest is not None and f"{100 * smallest:.1f} % or more" in line
    assert "too few" in (noise_line([100.0, 101.0, 99.0]) or "")  # 3 a side never reach 0.05
    assert noise_line([100.0]) is None
    assert "below capacity" not in line
    assert "below capacity" in (noise_line(values, [100.5, 100.0, 100.0]) or "")
    assert "below capacity" not in (noise_line(values, [200.0, 200.0]) or "")
