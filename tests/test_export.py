"""Exports against each documented shape, and pytest-benchmark reading our file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from factories import BASE_METADATA, make_result
from hypothesis import example, given, settings
from hypothesis import strategies as st

from harness.export import FORMATS, export
from harness.results import RunResult

THR = "throughput.lines_per_s"
P50 = "latency.batch_p50_s"
FACT = "integrity.lines_emitted"

PB_STATS = {
    "min", "max", "mean", "stddev", "rounds", "median", "iqr", "q1", "q3", "iqr_outliers",
    "stddev_outliers", "outliers", "ld15iqr", "hd15iqr", "ops", "total", "data", "iterations",
}  # fmt: skip


def result(variant: str | None = None) -> RunResult:
    return make_result(
        [
            {THR: 1000.0, P50: 0.2, FACT: 5000.0, "detection.ttd_p50_s": None},
            {THR: 1200.0, P50: 0.25, FACT: 5000.0, "detection.ttd_p50_s": None},
            {THR: 1100.0, P50: 0.3, FACT: 5000.0, "detection.ttd_p50_s": None},
        ],
        variant=variant,
    )


def load(fmt: str, res: RunResult | None = None) -> Any:
    return json.loads(export(res or result(), fmt))


def test_registry_and_unknown_format() -> None:
    assert set(FORMATS) == {"pytest-benchmark", "bmf", "gab-bigger", "gab-smaller"}
    with pytest.raises(ValueError, match=r"unknown export format 'csv'.*bmf"):
        export(result(), "csv")


def test_pytest_benchmark_shape() -> None:
    doc = load("pytest-benchmark", result(variant="shards=4"))
    assert set(doc) == {"machine_info", "commit_info", "benchmarks", "datetime", "version"}
    assert doc["commit_info"]["id"] == BASE_METADATA["git_commit"]
    assert doc["commit_info"]["dirty"] is False
    assert doc["datetime"] == BASE_METADATA["started_at"]
    names = [b["name"] for b in doc["benchmarks"]]
    # one benchmark per metric with values; all-null metrics are left out
    assert names == [f"smoke[shards=4]::{m}" for m in sorted([THR, P50, FACT])]
    bench = next(b for b in doc["benchmarks"] if b["extra_info"]["metric"] == THR)
    assert set(bench) >= {"group", "name", "fullname", "params", "stats", "options", "extra_info"}
    assert bench["group"] == "smoke[shards=4]"
    assert bench["params"] == {"variant": "shards=4"}
    assert bench["fullname"] == f"scenarios/smoke.py::smoke[shards=4]::{THR}"
    assert set(bench["stats"]) == PB_STATS
    assert bench["stats"]["data"] == [1000.0, 1200.0, 1100.0]
    assert bench["stats"]["median"] == 1100.0 and bench["stats"]["rounds"] == 3
    assert bench["extra_info"]["unit"] == "lines/s"
    assert bench["extra_info"]["direction"] == "higher"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(1e-6, 1e9), min_size=1, max_size=12))
@example([431655767.5059302, 715827883.5059302, 999999999.5059302])  # fmean vs mean
def test_pytest_benchmark_stats_match_its_own_code(data: list[float]) -> None:
    from pytest_benchmark.stats import Stats

    ref = Stats()
    for x in data:
        ref.update(x)
    res = make_result([{THR: x} for x in data])
    (bench,) = load("pytest-benchmark", res)["benchmarks"]
    ours = bench["stats"]
    for key in Stats.fields:
        expected = getattr(ref, key)
        if isinstance(expected, float):
            assert ours[key] == pytest.approx(expected, rel=1e-9), key
        else:
            assert ours[key] == expected, key


def test_pytest_benchmark_can_load_and_compare_our_file(tmp_path: Path) -> None:
    from pytest_benchmark.logger import Logger
    from pytest_benchmark.storage.file import FileStorage

    path = tmp_path / "0001_logbench.json"
    path.write_text(export(result(), "pytest-benchmark"))
    storage = FileStorage(tmp_path, logger=Logger(Logger.QUIET))
    loaded = list(storage.load_benchmarks(str(path)))
    assert {b["name"] for b in loaded} == {f"smoke::{m}" for m in (THR, P50, FACT)}
    assert all("median" in b and "ops" in b for b in loaded)  # stats flattened by the loader

    cli = Path(sys.executable).with_name("pytest-benchmark")
    if not cli.exists():
        pytest.skip("pytest-benchmark CLI not installed next to the interpreter")
    # A second, different run: pytest-benchmark's cache cannot take one file twice.
    other = tmp_path / "0002_logbench.json"
    other.write_text(export(make_result([{THR: 900.0}, {THR: 950.0}]), "pytest-benchmark"))
    proc = subprocess.run(
        [str(cli), "--storage", str(tmp_path), "compare", str(path), str(other)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"smoke::{THR}" in proc.stdout


def test_bmf_shape() -> None:
    doc = load("bmf", result(variant="v1"))
    assert list(doc) == ["smoke[v1]"]
    measures = doc["smoke[v1]"]
    assert set(measures) == {
        "throughput-lines-per-s",
        "latency-batch-p50-s",
        "integrity-lines-emitted",
    }
    thr = measures["throughput-lines-per-s"]
    assert thr == {"value": 1100.0, "lower_value": 1000.0, "upper_value": 1200.0}
    for m in measures.values():
        assert set(m) == {"value", "lower_value", "upper_value"}
        assert m["lower_value"] <= m["value"] <= m["upper_value"]


@pytest.mark.parametrize(
    ("fmt", "metric", "unit"), [("gab-bigger", THR, "lines/s"), ("gab-smaller", P50, "s")]
)
def test_github_action_benchmark_split_by_direction(fmt: str, metric: str, unit: str) -> None:
    doc = load(fmt)
    assert isinstance(doc, list)
    assert [e["name"] for e in doc] == [f"smoke - {metric}"]  # FACT has no direction: left out
    (entry,) = doc
    assert set(entry) <= {"name", "unit", "value", "range", "extra"}
    assert entry["unit"] == unit
    assert isinstance(entry["value"], float)
    assert entry["range"].startswith("± ")
    assert "3 replicate(s)" in entry["extra"]


def test_single_replicate_and_metadata_gaps() -> None:
    res = make_result([{THR: 5.0}], metadata={})
    (entry,) = load("gab-bigger", res)
    assert "range" not in entry  # no spread from one value
    doc = load("pytest-benchmark", res)
    assert doc["commit_info"]["id"] == "unknown"
    assert doc["benchmarks"][0]["stats"]["stddev"] == 0


def test_exports_are_strict_json() -> None:
    def reject(constant: str) -> None:
        pytest.fail(f"non-standard constant {constant} in output")

    for fmt in FORMATS:
        text = export(result(), fmt)
        assert text.endswith("\n")
        json.loads(text, parse_constant=reject)
