"""Tests of `logbench ab`: merging replicate results, the side commands, and whole sessions
on a temporary git repository whose ``harness.cli`` writes known results (no Ray)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from factories import from_samples

from harness import ab
from harness.compare import IncompatibleResults, compare
from harness.results import load_result

THR = "throughput.lines_per_s"


def test_merge_keeps_every_replicate_in_order_and_renumbers() -> None:
    parts = [from_samples({THR: [float(i)]}) for i in range(5)]
    merged = ab.merge_results(parts)
    assert merged.metric_values(THR) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert [r.index for r in merged.replicates] == list(range(5))
    assert merged.summary[THR]["n"] == 5 and merged.summary[THR]["median"] == 2.0
    assert merged.metadata["merged_runs"] == 5 and merged.complete


def test_merge_of_a_partial_part_is_partial_and_skips_it_in_statistics() -> None:
    done = from_samples({THR: [1.0, 2.0]})
    partial = from_samples({THR: [9.0]}, complete=False)
    partial = ab.merge_results([partial])  # parts keep their replicate flags
    merged = ab.merge_results([done, partial])
    assert not merged.complete and len(merged.replicates) == 3


def test_merge_refuses_different_settings_and_nothing() -> None:
    a = from_samples({THR: [1.0]})
    b = from_samples({THR: [1.0]}, settings={"other": 1})
    with pytest.raises(IncompatibleResults):
        ab.merge_results([a, b])
    with pytest.raises(ValueError):
        ab.merge_results([])


def test_merged_sides_compare_like_one_run_each() -> None:
    base = ab.merge_results([from_samples({THR: [100.0 + i]}) for i in range(5)])
    cand = ab.merge_results([from_samples({THR: [70.0 + i]}) for i in range(5)])
    assert compare(base, cand).regressed_gated()[0].name == THR


def test_run_command_and_environment(tmp_path: Path) -> None:
    side = ab.Side("baseline", tmp_path / "tree", tmp_path / "out")
    cmd = ab.run_command(side, Path("/s/x.py"), "v1", ["a.b=1"])
    assert cmd[:4] == [sys.executable, "-m", "harness.cli", "run"]
    out = str(tmp_path / "out")
    expected = ["/s/x.py", "--replicates", "1", "--out", out, "--variant", "v1", "--set", "a.b=1"]
    assert cmd[4:] == expected
    env = ab.side_env(side.tree, {"PYTHONPATH": "/elsewhere", "HOME": "/h"})
    assert env["PYTHONPATH"] == str(side.tree) and env["HOME"] == "/h"


# --------------------------------------------------------------------------- whole sessions

# A stand-in for `python -m harness.cli run`: one result file with a fixed throughput,
# and the tree it ran from (proves each side imports its own tree).
FAKE_CLI = """
import json, pathlib, sys, time
args = sys.argv[1:]
out = pathlib.Path(args[args.index("--out") + 1])
out.mkdir(parents=True, exist_ok=True)
value = THROUGHPUT
rep = {"index": 0, "complete": True, "started_at_s": time.time(), "duration_s": 1.0,
       "warmup_s": 0.0, "metrics": {"throughput.lines_per_s": value}}
doc = {"kind": "logbench.result", "schema_version": 1, "complete": True,
       "scenario": {"name": "fake", "variant": None, "module": args[1], "settings": {"a": 1}},
       "metadata": {"tree": str(pathlib.Path(__file__).resolve().parent.parent)},
       "replicates": [rep], "summary": {}}
n = len(list(out.glob("*.json")))
(out / f"fake-{n}.json").write_text(json.dumps(doc))
"""


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


@pytest.fixture
def fake_repo(tmp_path: Path) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed: logbench ab needs git worktree")
    repo = tmp_path / "repo"
    (repo / "harness").mkdir(parents=True)
    (repo / "harness" / "__init__.py").write_text("")
    (repo / "harness" / "cli.py").write_text(FAKE_CLI.replace("THROUGHPUT", "100.0"))
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    return repo


def _args(repo: Path, scenario: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    ab.add_arguments(parser)
    return parser.parse_args([str(scenario), "--baseline-rev", "HEAD", "--repo", str(repo), *extra])


def test_a_slower_working_tree_is_a_regression(fake_repo: Path, tmp_path: Path) -> None:
    (fake_repo / "harness" / "cli.py").write_text(FAKE_CLI.replace("THROUGHPUT", "80.0"))
    scenario = tmp_path / "s.py"
    scenario.write_text("")
    out = tmp_path / "kept"
    report = tmp_path / "ab.json"
    code = ab.run(
        _args(fake_repo, scenario, "--pairs", "4", "--out", str(out), "--json", str(report))
    )
    assert code == 1
    base = [load_result(p) for p in sorted((out / "baseline").glob("*.json"))]
    cand = [load_result(p) for p in sorted((out / "candidate").glob("*.json"))]
    assert len(base) == len(cand) == 4
    # Each side ran from its own tree: the baseline from a worktree of HEAD.
    assert {r.metadata["tree"] for r in cand} == {str(fake_repo.resolve())}
    assert all(r.metadata["tree"] != str(fake_repo.resolve()) for r in base)
    assert {r.metric_values(THR)[0] for r in base} == {100.0}
    assert '"regressed_gated"' in report.read_text()
    # The temporary worktree is gone.
    assert _git(fake_repo, "worktree", "list").count("\n") == 0


def test_an_unchanged_tree_is_not_a_regression(fake_repo: Path, tmp_path: Path) -> None:
    scenario = tmp_path / "s.py"
    scenario.write_text("")
    assert ab.run(_args(fake_repo, scenario, "--pairs", "1")) == 0


def test_usage_errors(fake_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "s.py"
    scenario.write_text("")
    assert ab.run(_args(fake_repo, scenario, "--pairs", "0")) == 2
    assert ab.run(_args(fake_repo, tmp_path / "missing.py")) == 2
    bad_rev = _args(fake_repo, scenario)
    bad_rev.baseline_rev = "no-such-rev"
    assert ab.run(bad_rev) == 2
    assert "git worktree add 'no-such-rev' failed" in capsys.readouterr().err
