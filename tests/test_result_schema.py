"""Result-file validation: each bad field is named, in one line."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from factories import make_result

from harness.result_schema import ResultError, check_replicate, check_result


def as_dict() -> dict[str, Any]:
    result = make_result(
        [
            {"throughput.lines_per_s": 100.0, "latency.batch_p50_s": 0.2},
            {"throughput.lines_per_s": 110.0, "latency.batch_p50_s": None},
            {"throughput.lines_per_s": 90.0, "latency.batch_p50_s": 0.4},
        ]
    )
    return json.loads(json.dumps(result.to_dict()))


def test_valid_result_passes_with_null_metrics() -> None:
    d = as_dict()
    assert d["replicates"][1]["metrics"]["latency.batch_p50_s"] is None
    check_result(d)
    check_replicate(d["replicates"][1], "replicates[1]")


def _set(d: Any, path: str, value: Any) -> None:
    keys: list[Any] = [int(k) if k.isdigit() else k for k in re.findall(r"[^.\[\]]+", path)]
    for k in keys[:-1]:
        d = d[k]
    if value is _DELETE:
        del d[keys[-1]]
    else:
        d[keys[-1]] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("replicates.0.metrics", [], r"replicates\[0\]\.metrics: expected object, got array"),
        ("replicates.0.index", "0", r"replicates\[0\]\.index: expected integer, got string"),
        ("replicates.0.complete", 1, r"replicates\[0\]\.complete: expected boolean, got number"),
        ("replicates.0.duration_s", _DELETE, r"replicates\[0\]\.duration_s: missing"),
        ("replicates", {}, r"replicates: expected array, got object"),
        ("scenario.name", None, r"scenario\.name: expected string, got null"),
        ("scenario.settings", "x", r"scenario\.settings: expected object"),
        ("metadata", _DELETE, r"metadata: missing"),
        ("summary.throughput.lines_per_s", 3, r"summary\.throughput\.lines_per_s: expected obj"),
        ("replicates.1", 7, r"replicates\[1\]: expected object, got number"),
        (
            "replicates.0.metrics.throughput.lines_per_s",
            True,
            r"metrics\.throughput\.lines_per_s: expected finite number or null, got boolean",
        ),
        (
            "replicates.0.metrics.throughput.lines_per_s",
            "12",
            r"expected finite number or null, got string",
        ),
        ("replicates.0.alerts", [1], r"replicates\[0\]\.alerts\[0\]: expected object"),
        ("replicates.0.samples", {"latency.batch_s": [1, "x"]}, r"latency\.batch_s\[1\]"),
        ("replicates.0.samples", {"s": [1.0, 2.0, 10**400]}, r"samples\.s\[2\]: expected finite"),
        ("replicates.0.samples", {"s": [1.0, True]}, r"samples\.s\[1\]: expected finite"),
        (
            "replicates.0.series",
            {"b": {"t_s": [0.0, 1.0], "values": [None, 1e400]}},
            r"series\.b\.values\[1\]: expected finite number or null, got inf",
        ),
        (
            "replicates.0.series",
            {"backlog.batches": {"t_s": [0.0], "values": []}},
            r"t_s has 1 points but values has 0",
        ),
    ],
)
def test_bad_field_types_are_named(path: str, value: Any, message: str) -> None:
    d = as_dict()
    # metric names contain dots, so address them with a dedicated key join
    if ".metrics.throughput" in path:
        d["replicates"][0]["metrics"]["throughput.lines_per_s"] = value
    elif path.startswith("summary."):
        d["summary"]["throughput.lines_per_s"] = value
    else:
        _set(d, path, value)
    with pytest.raises(ResultError, match=message) as exc:
        check_result(d)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_metric_is_rejected(literal: str) -> None:
    text = json.dumps(as_dict()).replace('"throughput.lines_per_s": 110.0', f'"x": {literal}', 1)
    # json.loads decodes NaN/Infinity literals, as the reader does.
    with pytest.raises(ResultError, match=r"replicates\[1\]\.metrics\.x: expected finite"):
        check_result(json.loads(text))
