"""`logbench ab`: a scenario on a baseline git revision and on the working tree, interleaved.

The baseline revision is checked out with ``git worktree`` into a temporary
directory. Each side runs one replicate per invocation of ``harness.cli run``
in its own subprocess, with ``PYTHONPATH`` pointing at its own tree and the
same interpreter, alternating A B A B ... so that machine drift during the
session hits both sides alike. The one-replicate results of each side are then
merged (:func:`merge_results`) and compared with :func:`harness.compare.compare`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from harness.compare import CompareError, check_compatible, compare, render_table, to_json
from harness.results import ResultError, RunResult, load_result

__all__ = [
    "AbError",
    "Side",
    "add_arguments",
    "merge_results",
    "run",
    "run_command",
    "worktree",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
USAGE, REGRESSION, OK = 2, 1, 0


class AbError(RuntimeError):
    """The A/B session could not run (one-line message)."""


def merge_results(results: Sequence[RunResult]) -> RunResult:
    """One result holding every replicate of ``results``, in order, renumbered from 0.

    The results must be of the same scenario with comparable settings
    (:func:`harness.compare.check_compatible`); metadata is the first result's,
    with ``merged_runs`` added. Complete only when every part is.
    """
    if not results:
        raise ValueError("merge_results: nothing to merge")
    first = results[0]
    for other in results[1:]:
        check_compatible(first, other)
    reps = [rep for res in results for rep in res.replicates]
    renumbered = [replace(rep, index=i) for i, rep in enumerate(reps)]
    metadata = dict(first.metadata) | {"merged_runs": len(results)}
    return RunResult.create(
        first.scenario, metadata, renumbered, complete=all(r.complete for r in results)
    )


@dataclass(frozen=True)
class Side:
    """One side of the A/B session: a source tree and the directory for its results."""

    label: str
    tree: Path
    out: Path


def run_command(
    side: Side, scenario: Path, variant: str | None, overrides: Sequence[str]
) -> list[str]:
    """The command line that runs one replicate of ``scenario`` on ``side``'s tree."""
    cmd = [sys.executable, "-m", "harness.cli", "run", str(scenario), "--replicates", "1"]
    cmd += ["--out", str(side.out)]
    if variant:
        cmd += ["--variant", variant]
    for item in overrides:
        cmd += ["--set", item]
    return cmd


def side_env(tree: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a side's subprocess: its own tree first on ``PYTHONPATH``."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = str(tree)
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    return env


@contextmanager
def worktree(rev: str, repo: Path = REPO_ROOT) -> Iterator[Path]:
    """A detached ``git worktree`` of ``rev`` in a temporary directory, removed afterwards."""
    if shutil.which("git") is None:
        raise AbError("git is not installed")
    parent = Path(tempfile.mkdtemp(prefix="logbench-ab-"))
    dest = parent / "baseline"
    proc = _git(repo, "worktree", "add", "--detach", str(dest), rev)
    if proc.returncode != 0:
        shutil.rmtree(parent, ignore_errors=True)
        raise AbError(f"git worktree add {rev!r} failed: {proc.stderr.strip()}")
    try:
        yield dest
    finally:
        _git(repo, "worktree", "remove", "--force", str(dest))
        shutil.rmtree(parent, ignore_errors=True)
        _git(repo, "worktree", "prune")


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
    )


def run_one(side: Side, cmd: list[str]) -> RunResult:
    """Run one replicate on ``side``; the result file it wrote, loaded."""
    before = set(side.out.glob("*.json"))
    proc = subprocess.run(
        cmd, cwd=side.tree, env=side_env(side.tree), capture_output=True, text=True, check=False
    )
    written = sorted(set(side.out.glob("*.json")) - before)
    if proc.returncode != 0 or len(written) != 1:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise AbError(f"{side.label} run failed (exit {proc.returncode}): {tail[0]}")
    try:
        return load_result(written[0])
    except ResultError as exc:
        raise AbError(f"{side.label}: {exc}") from None


def run_pairs(
    sides: tuple[Side, Side],
    scenario: Path,
    pairs: int,
    variant: str | None = None,
    overrides: Sequence[str] = (),
    progress: Callable[[str], None] | None = None,
) -> tuple[RunResult, RunResult]:
    """Alternate the two sides ``pairs`` times; each side's replicates merged into one result."""
    got: dict[str, list[RunResult]] = {s.label: [] for s in sides}
    for i in range(pairs):
        for side in sides:
            side.out.mkdir(parents=True, exist_ok=True)
            if progress is not None:
                progress(f"pair {i + 1}/{pairs}: {side.label}")
            got[side.label].append(run_one(side, run_command(side, scenario, variant, overrides)))
    base, cand = (merge_results(got[s.label]) for s in sides)
    return base, cand


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``logbench ab``."""
    parser.add_argument("scenario", help="scenario module (the working tree's file runs on both)")
    parser.add_argument("--baseline-rev", required=True, help="git revision of the baseline")
    parser.add_argument("--pairs", type=int, default=5, help="A/B replicate pairs (>= 4 to test)")
    parser.add_argument("--variant", help="one variant of a matrix scenario")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE"
    )
    parser.add_argument("--tolerance", type=float, default=0.05, help="effect size (0.05 = 5%%)")
    parser.add_argument("--metric", action="append", help="compare only these metrics")
    parser.add_argument("--json", help="write the comparison (and result paths) as JSON here")
    parser.add_argument("--out", help="keep the per-replicate result files in this directory")
    parser.add_argument(
        "--repo", default=str(REPO_ROOT), help="candidate git checkout (default: this one)"
    )


def run(args: argparse.Namespace) -> int:
    """``logbench ab``: 0 no gated regression, 1 regression, 2 usage or run error."""
    scenario = Path(args.scenario).resolve()
    if args.pairs < 1:
        return _error(f"--pairs: must be >= 1 (got {args.pairs})")
    if not scenario.is_file():
        return _error(f"{args.scenario}: no such scenario file")
    try:
        repo = Path(args.repo).resolve()
        with worktree(args.baseline_rev, repo) as tree, _out_dir(args.out) as out:
            sides = (
                Side("baseline", tree, out / "baseline"),
                Side("candidate", repo, out / "candidate"),
            )
            base, cand = run_pairs(
                sides, scenario, args.pairs, args.variant, args.overrides, _progress
            )
            comparison = compare(base, cand, metrics=args.metric or None, tolerance=args.tolerance)
    except (AbError, CompareError) as exc:
        return _error(str(exc))
    print(render_table(comparison))
    if args.json:
        doc = to_json(comparison) | {"baseline_rev": args.baseline_rev, "pairs": args.pairs}
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return REGRESSION if comparison.regressed_gated() else OK


@contextmanager
def _out_dir(keep: str | None) -> Iterator[Path]:
    if keep:
        path = Path(keep)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="logbench-ab-results-") as tmp:
        yield Path(tmp)


def _progress(message: str) -> None:
    print(f"ab: {message}", file=sys.stderr, flush=True)


def _error(message: str) -> int:
    print(f"logbench: error: {message.splitlines()[0] if message else 'error'}", file=sys.stderr)
    return USAGE
