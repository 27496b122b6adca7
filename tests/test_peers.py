"""Peers: every implementation computes the same aggregates on the same bytes."""

from __future__ import annotations

import argparse
import collections
from pathlib import Path
from typing import Any

import pytest
from factories import from_samples

from harness import peers
from harness.payload import build_payload
from logpipe import routing
from logpipe.parse import ParseOptions, parse_batch

LINES = 20_000


@pytest.fixture(scope="module")
def scenario() -> Any:
    return peers.best_scenario(LINES, 1)


@pytest.fixture(scope="module")
def raw(scenario: Any) -> bytes:
    return peers.raw_text(scenario)


def _pipeline_counts(scenario: Any, strategy: str, sharding: str, shards: int) -> peers.Counts:
    """What the pipeline's parse tasks hand the shards, counted per key and window."""
    counts: collections.Counter[tuple[str, str, int]] = collections.Counter()
    for batch in build_payload(scenario.generator).batches:
        _, out = parse_batch(batch, ParseOptions(strategy=strategy))
        for part in routing.split(out, sharding, shards, batch.batch_id):
            rows = part.to_pylist() if hasattr(part, "to_pylist") else part
            for r in rows:
                counts[(r["service"], r["endpoint"], r["event_ms"] // peers.WINDOW_MS)] += 1
    return dict(counts)


def test_python_matches_the_pipeline_parsers(scenario: Any, raw: bytes) -> None:
    py = peers.python_counts(raw)
    assert sum(py.values()) == LINES
    assert len({k[1] for k in py}) > 10  # endpoints really templated, not one bucket
    assert py == _pipeline_counts(scenario, "arrow", "by_service", 2)
    assert py == _pipeline_counts(scenario, "regex", "single", 1)


def test_duckdb_matches_python(raw: bytes, tmp_path: Path) -> None:
    pytest.importorskip("duckdb")
    path = tmp_path / "access.log"
    path.write_bytes(raw)
    assert peers.duckdb_counts(path, threads=2) == peers.python_counts(raw)


def test_python_skips_lines_outside_the_grammar() -> None:
    line = (
        b'1.2.3.4 - u7 [01/Jan/2026:00:00:12 +0100] "GET /api/v1/users/42?x=1 HTTP/1.1" '
        b'200 5 "-" "curl/8" 0.010 auth\n'
    )
    got = peers.python_counts(line + b"garbage\n" + line.replace(b" 0.010 auth", b""))
    hour_ms = 3_600_000
    window = (1_767_225_600_000 - hour_ms + 12_000) // peers.WINDOW_MS
    assert got == {
        ("auth", "/api/v1/users/{id}", window): 1,
        ("default", "/api/v1/users/{id}", window): 1,
    }


def test_busy_fraction_and_ratios() -> None:
    cpu = collections.namedtuple("cpu", "user system idle iowait")
    assert peers.busy_fraction(cpu(0, 0, 0, 0), cpu(3, 1, 4, 0)) == pytest.approx(0.5)
    assert peers.busy_fraction(cpu(0, 0, 0, 0), cpu(0, 0, 0, 0)) == 0.0
    results = {
        "duckdb": peers.PeerResult("duckdb", [100.0, 300.0, 200.0]),
        "python": peers.PeerResult("python", [50.0]),
        "naive_ray": peers.PeerResult("naive_ray", note="no complete replicate"),
        "pipeline": peers.PeerResult("pipeline", [400.0, 400.0]),
    }
    out = peers.to_json(results, 1000, batch_lines=500)
    assert out["batch_lines"] == 500
    assert out["ratios"] == {"duckdb": 2.0, "python": 8.0, "naive_ray": None}
    assert out["lines_per_s"]["duckdb"] == [100.0, 300.0, 200.0]
    assert out["notes"] == {"naive_ray": "no complete replicate"}
    # 2 pipeline replicates against 3 and 1: no pairs
    assert out["pair_ratios"] == {"duckdb": [], "python": []}
    assert peers.render(results).row_count == 4


def test_pipeline_rate_is_end_to_end_with_the_steady_rate_beside_it() -> None:
    result = from_samples(
        {
            "throughput.lines_per_s": [500.0, 520.0],
            "throughput.end_to_end_lines_per_s": [400.0, 410.0],
            "resources.cpu_busy_fraction": [0.9, 0.95],
        }
    )
    seen: list[Any] = []

    def run(planned: Any, **kwargs: Any) -> Any:
        seen.append(planned.scenario)
        return result

    scenario = peers.best_scenario(20_000, 2)
    out = peers.measure_pipeline("pipeline", scenario, {}, run=run)
    assert seen == [scenario]
    assert out.lines_per_s == [400.0, 410.0]
    assert out.steady_lines_per_s == [500.0, 520.0]
    assert out.cpu_busy == [0.9, 0.95]
    duck = peers.PeerResult("duckdb", [200.0, 205.0])
    body = peers.to_json({"duckdb": duck, "pipeline": out}, 20_000)
    assert body["steady_lines_per_s"] == {"pipeline": [500.0, 520.0]}


def test_pair_ratios_divide_replicate_by_replicate() -> None:
    results = {
        "duckdb": peers.PeerResult("duckdb", [100.0, 200.0, 400.0]),
        "pipeline": peers.PeerResult("pipeline", [150.0, 200.0, 200.0]),
    }
    assert peers.pair_ratios(results) == pytest.approx([1.5, 1.0, 0.5])
    results["python"] = peers.PeerResult("python", [15.0, 20.0, 40.0])
    assert peers.pair_ratios(results, "python") == pytest.approx([10.0, 10.0, 5.0])
    assert peers.to_json(results, 1000)["pair_ratios"]["python"] == pytest.approx([10, 10, 5])


def test_sample_appends_one_timed_run() -> None:
    into = peers.PeerResult("python", [1.0], cpu_busy=[0.5])
    calls: list[int] = []
    peers.sample(into, lambda: calls.append(1), 1000)
    assert calls == [1] and len(into.lines_per_s) == 2 and len(into.cpu_busy) == 2
    assert into.lines_per_s[1] > 0 and 0.0 <= into.cpu_busy[1] <= 1.0


def test_interleaving_reporter_runs_the_peer_as_each_replicate_starts() -> None:
    calls: list[int] = []
    reporter = peers.interleaving_reporter(lambda: calls.append(len(calls)))
    for index in range(3):
        reporter.replicate_started(index, 3, 1.0)
        reporter.progress(index, 0.5, 10, 0)  # the other callbacks do nothing
        reporter.replicate_finished(index, {})
    assert calls == [0, 1, 2]


def test_cli_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    peers.add_arguments(parser)
    assert peers.run(parser.parse_args(["--lines", "10"])) == 2
    assert peers.run(parser.parse_args(["--batch-lines", "0"])) == 2
    assert peers.run(parser.parse_args(["--lines", "20000", "--batch-lines", "30000"])) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("peers: ") for line in err)
    args = parser.parse_args(["--json", "x.json", "--replicates", "2"])
    assert (args.json, args.replicates, args.lines) == (Path("x.json"), 2, 1_000_000)
    assert args.batch_lines == peers.BATCH_LINES


def test_batch_lines_regroups_the_same_bytes() -> None:
    small = peers.best_scenario(LINES, 1, batch_lines=5_000)
    big = peers.best_scenario(LINES, 1, batch_lines=20_000)
    assert peers.naive_scenario(LINES, 1, 20_000).generator.batch_lines == 20_000
    assert len(build_payload(small.generator).batches) == 4
    assert len(build_payload(big.generator).batches) == 1
    assert peers.raw_text(small) == peers.raw_text(big)
