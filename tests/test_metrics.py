"""The metric vocabulary and its documentation stay in step."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import metrics

DOC = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"


def test_every_metric_is_documented() -> None:
    text = DOC.read_text()
    missing = [name for name in metrics.METRICS if f"`{name}`" not in text]
    assert missing == []


def test_directions_are_valid() -> None:
    for d in metrics.METRICS.values():
        assert d.direction in ("higher", "lower", None), d.name
        assert d.description and d.unit


def test_unknown_metric_names_the_known_ones() -> None:
    with pytest.raises(metrics.UnknownMetric, match=r"throughput\.lines_per_s"):
        metrics.get("throughput.lines")
    assert metrics.is_known("integrity.ok")
