"""Bad input never crashes anything and never passes silently: hostile log content,
corrupt batches, invalid settings and flags, broken result and replay files."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import zstandard
from factories import make_result
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.console import safe
from harness.report import render_html
from harness.results import write_result
from logpipe.batch import Batch, BatchMeta, encode, make_batch
from logpipe.parse import ParseOptions, parse_and_route

ROOT = Path(__file__).resolve().parents[1]
GOOD = (
    b'10.0.0.1 - alice [01/Jan/2026:00:00:00 +0000] "GET /api/cart HTTP/1.1" 200 512 '
    b'"-" "curl/8" 0.012 checkout\n'
)
HOSTILE_LINES = [
    b"\xff\xfe\xfd not utf-8 at all \xc3\x28\n",
    b"nul \x00 in \x00 the middle\n",
    b"\x1b[2J\x1b]0;pwned\x07 terminal escapes\n",
    GOOD.replace(b"/api/cart", b"/<script>alert(1)</script>").replace(
        b"curl/8", b"<img src=x onerror=alert(1)>\x1b[0m"
    ),
    b"x" * (3 * 1024 * 1024) + b"\n",  # a 3 MiB line
    b"\n",
    b"{" + b'"a":' * 1000 + b"\n",  # broken JSON
]


def lines_batch(lines: list[bytes], codec: str = "zstd", batch_id: int = 0) -> Batch:
    raw = b"".join(lines)
    return make_batch(batch_id, raw, len(lines), 1_764_756_000_000, 1_764_756_000_999, codec)


def accounted(batch: Batch) -> tuple[int, int, Any]:
    stats = parse_and_route(batch, ParseOptions(), "by_service", 2)[0]
    return stats.parsed, stats.rejected, stats


@pytest.mark.parametrize("strategy", ["arrow", "regex"])
def test_hostile_lines_are_parsed_or_rejected_never_a_crash(strategy: str) -> None:
    batch = lines_batch([GOOD, *HOSTILE_LINES, GOOD])
    stats = parse_and_route(batch, ParseOptions(strategy=strategy), "by_service", 2)[0]
    assert stats.parsed + stats.rejected == batch.meta.line_count
    assert stats.parsed >= 2
    for dl in stats.dead_letters:  # samples are bounded and printable
        assert len(dl.sample) <= 4096
        assert "\x1b" not in safe(dl.sample) and "\x00" not in safe(dl.sample)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=20))
def test_arbitrary_bytes_are_accounted_for(chunks: list[bytes]) -> None:
    lines = [c.replace(b"\n", b" ") + b"\n" for c in chunks]
    parsed, rejected, _ = accounted(lines_batch(lines))
    assert parsed + rejected == len(lines)


def _batch_of(payload: bytes, codec: str, raw_bytes: int, lines: int = 10) -> Batch:
    meta = BatchMeta(0, lines, raw_bytes, 1_764_756_000_000, 1_764_756_000_999, codec)
    return Batch(meta, encode(payload, "none"))


@pytest.mark.parametrize("codec", ["zstd", "gzip"])
def test_truncated_and_corrupt_batches_rejected_with_reason(codec: str) -> None:
    raw = GOOD * 10
    packed = bytes(encode(raw, codec))
    cases = {
        "truncated": packed[: len(packed) // 2],
        "corrupt": packed[:4] + bytes(b ^ 0x5A for b in packed[4:]),
        "garbage": os.urandom(200),
    }
    for name, payload in cases.items():
        parsed, rejected, stats = accounted(_batch_of(payload, codec, len(raw)))
        assert (parsed, rejected) == (0, 10), name
        assert stats.batch_error in ("truncated", "corrupt"), (name, stats.batch_error)


@pytest.mark.parametrize("codec", ["zstd", "gzip"])
def test_decompression_bomb_rejected_with_bounded_output(codec: str) -> None:
    bomb_raw = b"\0" * (64 * 1024 * 1024)
    if codec == "zstd":  # a streamed frame declares no size: the bound must hold anyway
        cctx = zstandard.ZstdCompressor(write_content_size=False)
        payload = cctx.compress(bomb_raw)
    else:
        payload = gzip.compress(bomb_raw, mtime=0)
    parsed, rejected, stats = accounted(_batch_of(payload, codec, 1_000))
    assert (parsed, rejected, stats.batch_error) == (0, 10, "bomb")


def test_report_and_terminal_escape_hostile_text(tmp_path: Path) -> None:
    evil = '<script>alert("x")</script>\x1b[31m'
    result = make_result([{"integrity.ok": 1.0}], name="smoke").to_dict()
    rep = result["replicates"][0]
    rep["alerts"] = [{"alert_id": 1, "kind": "error_rate", "key": evil, "window_start_ms": 0}]
    rep["rejections"] = {"reasons": {evil: 1}, "dead_letters": [{"sample": evil}]}
    result["scenario"]["description"] = evil
    page = render_html([result])
    assert "<script>alert" not in page
    assert "\x1b" not in safe(evil) and "\\x1b" in safe(evil)


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("logbench")]
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "sharding.shards=0"], "sharding.shards"),
        (["--set", "generator.rate.rate=-5"], "generator.rate.rate"),
        (["--set", 'faults=[{"kind": "explode", "at_s": 1}]'], "faults[0].kind"),
        (["--set", "ray.object_store_memory=1"], "ray.object_store_memory"),
        (["--set", "nonsense.field=1"], "nonsense"),
        (["--replicates", "0"], "--replicates"),
        (["--replay", "/nonexistent/missing.log"], "generator.replay"),
    ],
)
def test_invalid_settings_one_line_exit_2_nothing_written(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    out = tmp_path / "out"
    proc = cli("run", "scenarios/smoke.py", "--out", str(out), *args)
    assert_one_line_error(proc, needle)
    assert not out.exists() or not any(out.iterdir())


def test_unreachable_address_fails_fast_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "out"
    proc = cli("run", "scenarios/smoke.py", "--out", str(out), "--address", f"127.0.0.1:{port}")
    assert_one_line_error(proc, f"cannot start Ray: nothing answers at 127.0.0.1:{port}")
    assert not out.exists() or not any(out.iterdir())


def test_replay_files_empty_or_unknown_format(tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.log"
    junk.write_bytes(os.urandom(4096).replace(b"\n", b"."))
    for path, needle in ((empty, "empty log file"), (junk, "unknown log format")):
        proc = cli("run", "scenarios/smoke.py", "--out", str(tmp_path / "o"), "--replay", str(path))
        assert_one_line_error(proc, needle)
    assert not (tmp_path / "o").exists()


def test_broken_result_files_are_refused_in_one_line(tmp_path: Path) -> None:
    good = write_result(make_result([{"throughput.lines_per_s": 1.0}] * 3), tmp_path)
    data = json.loads(good.read_text())
    variants = {
        "truncated": good.read_text()[:200],
        "schema": json.dumps(data | {"schema_version": 99}),
        "edited": json.dumps(
            data | {"replicates": [{**data["replicates"][0], "metrics": {"x": "fast"}}]}
        ),
        "not_json": "\x00\x01 pickle? never",
    }
    for name, text in variants.items():
        bad = tmp_path / f"{name}.json"
        bad.write_text(text)
        proc = cli("compare", str(good), str(bad))
        assert_one_line_error(proc, str(bad.name))
    other = write_result(
        make_result([{"throughput.lines_per_s": 1.0}] * 3, name="burst"), tmp_path / "b"
    )
    proc = cli("compare", str(good), str(other))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.usefixtures("ray_session")
def test_hostile_and_corrupt_batches_through_the_whole_pipeline() -> None:
    from logpipe.pipeline import Pipeline, PipelineConfig

    raw = GOOD * 10
    meta = BatchMeta(1, 10, len(raw), 1_764_756_000_000, 1_764_756_000_999, "zstd")
    corrupt = Batch(meta, encode(bytes(encode(raw, "zstd"))[:20], "none"))
    batches = [
        lines_batch([GOOD, *HOSTILE_LINES], batch_id=0),
        corrupt,
        lines_batch([GOOD] * 5, "gzip", batch_id=2),
    ]
    with Pipeline(PipelineConfig(sharding="by_service", n_shards=2)) as pipe:
        for batch in batches:
            pipe.submit(batch)
        out = pipe.finish()
    assert out.lines_emitted == sum(b.meta.line_count for b in batches)
    assert out.lines_parsed + out.lines_rejected == out.lines_emitted
    assert out.lines_parsed == 7  # GOOD, the HTML/JS line, 5 x GOOD
    assert out.batch_errors == {"truncated": 1}
    assert sum(s["rows"] for s in out.shard_summaries) == out.lines_parsed
