"""The command line: exit codes, one-line errors, and each command's output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factories import from_samples

from harness.cli import main
from harness.results import write_result


def write(result, directory: Path) -> Path:
    return write_result(result, directory)


STEADY = [1000.0, 1001.0, 999.0, 1000.5, 999.5, 1002.0, 998.0, 1000.2, 999.8, 1001.5]


def test_compare_identical_results_exits_0(tmp_path, capsys) -> None:
    a = write(from_samples({"throughput.lines_per_s": STEADY}), tmp_path)
    b = write(from_samples({"throughput.lines_per_s": STEADY}), tmp_path)
    assert main(["compare", str(a), str(b)]) == 0
    assert "unchanged" in capsys.readouterr().out


def test_compare_regression_exits_1_and_json_is_machine_readable(tmp_path, capsys) -> None:
    a = write(from_samples({"throughput.lines_per_s": STEADY}), tmp_path)
    b = write(from_samples({"throughput.lines_per_s": [x * 0.7 for x in STEADY]}), tmp_path)
    assert main(["compare", str(a), str(b), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    text = json.dumps(doc)
    assert "regressed" in text


def test_compare_different_scenarios_is_a_usage_error(tmp_path, capsys) -> None:
    a = write(from_samples({"throughput.lines_per_s": STEADY}), tmp_path)
    b = write(from_samples({"throughput.lines_per_s": STEADY}, name="other"), tmp_path)
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("logbench: error:") and "\n" not in err


def test_compare_truncated_file_is_one_line_error(tmp_path, capsys) -> None:
    a = write(from_samples({"throughput.lines_per_s": STEADY}), tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text(a.read_text()[:50])
    assert main(["compare", str(a), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "bad.json" in err and "\n" not in err


@pytest.mark.parametrize("fmt", ["bmf", "pytest-benchmark", "gab-bigger", "gab-smaller"])
def test_export_formats_are_json(tmp_path, capsys, fmt) -> None:
    a = write(from_samples({"throughput.lines_per_s": STEADY}), tmp_path)
    assert main(["export", str(a), "--format", fmt]) == 0
    json.loads(capsys.readouterr().out)


def test_export_unknown_format_exits_2(tmp_path, capsys) -> None:
    a = write(from_samples({"throughput.lines_per_s": STEADY}), tmp_path)
    assert main(["export", str(a), "--format", "csv"]) == 2
    assert "--format" in capsys.readouterr().err


def test_report_writes_html(tmp_path) -> None:
    a = write(from_samples({"throughput.lines_per_s": STEADY}), tmp_path)
    out = tmp_path / "r.html"
    assert main(["report", str(a), "-o", str(out)]) == 0
    assert out.read_text().lstrip().lower().startswith("<!doctype html")


def test_list_shows_every_shipped_scenario(capsys) -> None:
    assert main(["list", "scenarios"]) == 0
    out = capsys.readouterr().out
    for name in ("smoke", "baseline", "sharding", "max_throughput"):
        assert name in out


def test_bad_scenario_setting_is_one_line_naming_the_field(tmp_path, capsys) -> None:
    code = main(["run", "scenarios/smoke.py", "--set", "sharding.shards=0", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "sharding.shards" in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_missing_scenario_file_exits_2(tmp_path, capsys) -> None:
    assert main(["run", str(tmp_path / "nope.py"), "--out", str(tmp_path)]) == 2
    assert "nope.py" in capsys.readouterr().err


def test_usage_errors_exit_2() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["compare", "--tolerance", "7", "a", "b"])
    assert exc.value.code == 2


def test_generate_writes_lines_and_truth(tmp_path, capsys) -> None:
    out = tmp_path / "access.log.zst"
    code = main(
        ["generate", str(out), "--duration", "3", "--rate", "2000", "--inject", "error_rate@1+1"]
    )
    assert code == 0
    truth = json.loads((tmp_path / "access.log.zst.truth.json").read_text())
    assert truth["lines"] == 6000
    assert truth["truth"][0]["kind"] == "error_rate"


def test_generate_bad_injection_exits_2(tmp_path, capsys) -> None:
    code = main(["generate", str(tmp_path / "x.log"), "--inject", "oops"])
    assert code == 2
    assert "--inject" in capsys.readouterr().err
    assert not (tmp_path / "x.log").exists()


@pytest.mark.usefixtures("ray_session")
def test_demo_alerts_every_injected_anomaly(tmp_path, capsys) -> None:
    out = tmp_path / "demo.json"
    assert main(["demo", "--json", str(out), "--duration", "11"]) == 0
    doc = json.loads(out.read_text())
    assert doc["lines_emitted"] == doc["lines_parsed"] + doc["lines_rejected"] > 0
    assert len(doc["injected"]) == 3
    assert doc["detected"] == 3
    assert {a["kind"] for a in doc["alerts"]} >= {"error_rate", "latency", "user_activity"}
    assert "ALERT" in capsys.readouterr().out
