"""Micro-benchmarks: parse one 10k-line batch (decompression included) per strategy.

Run with ``make bench`` (``pytest bench --benchmark-only``). The batch is built
inline and seeded: combined lines with realistic user agents (about 250 bytes a
line), or JSON lines, zstd-compressed; ``generator`` is a batch of
:mod:`logpipe.generate` at its default mix (combined lines, every field). Arrow
runs on one thread (``pyarrow.set_cpu_count(1)``, ``use_threads=False``), so the
figures are per core. ``extra_info["lines_per_s"]`` is derived from the mean time
per batch.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from rates import record_rate

from logpipe.batch import Batch, make_batch
from logpipe.parse import ParseOptions, parse_batch

LINES = 10_000
_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
)
_SERVICES = ("checkout", "search", "auth", "catalog", "orders", "profile")


def _fields(rng: random.Random, i: int) -> dict[str, Any]:
    path = rng.choice(
        (
            f"/api/users/{rng.randrange(10**6)}",
            f"/orders/{rng.randrange(10**5)}/items",
            "/search?q=shoes&page=2",
            "/static/app.js",
        )
    )
    return {
        "ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
        "user": f"user{rng.randrange(5000)}",
        "second": i // 100,
        "method": rng.choice(("GET", "GET", "POST")),
        "path": path,
        "status": rng.choice((200, 200, 200, 201, 304, 404, 500)),
        "bytes": rng.randrange(10**5),
        "referer": "https://www.example.com/",
        "user_agent": rng.choice(_AGENTS),
        "request_time": round(rng.random(), 3),
        "service": rng.choice(_SERVICES),
    }


def _combined(f: dict[str, Any]) -> str:
    ts = (
        f"01/Jan/2026:{f['second'] // 3600:02d}:{f['second'] // 60 % 60:02d}:{f['second'] % 60:02d}"
    )
    return (
        f'{f["ip"]} - {f["user"]} [{ts} +0000] "{f["method"]} {f["path"]} HTTP/1.1" '
        f'{f["status"]} {f["bytes"]} "{f["referer"]}" "{f["user_agent"]}" '
        f"{f['request_time']:.3f} {f['service']}"
    )


def _json(f: dict[str, Any]) -> str:
    s = f["second"]
    obj = {k: v for k, v in f.items() if k != "second"}
    obj["time"] = f"2026-01-01T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}.000Z"
    obj["protocol"] = "HTTP/1.1"
    return json.dumps(obj)


def make_batch_of(fmt: str, seed: int = 7) -> Batch:
    if fmt == "generator":
        from logpipe.generate import GeneratorConfig, generate

        config = GeneratorConfig(seed=1, batch_lines=LINES)
        return generate(config, np.linspace(0, 10, LINES)).batches[0]
    rng = random.Random(seed)
    render = _combined if fmt == "combined" else _json
    raw = "".join(render(_fields(rng, i)) + "\n" for i in range(LINES)).encode()
    return make_batch(0, raw, LINES, 0, 0, "zstd")


@pytest.fixture
def one_core() -> Iterator[None]:
    """Arrow's thread pools at one thread for the test, restored afterwards."""
    cpus, io = pa.cpu_count(), pa.io_thread_count()
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    yield
    pa.set_cpu_count(cpus)
    pa.set_io_thread_count(io)


@pytest.mark.parametrize("fmt", ["combined", "generator", "json"])
@pytest.mark.parametrize("strategy", ["arrow", "regex"])
def test_parse_batch(benchmark: Any, one_core: None, strategy: str, fmt: str) -> None:
    batch = make_batch_of(fmt)
    options = ParseOptions(strategy=strategy)
    rounds = 15 if strategy == "arrow" else 3
    stats, _ = benchmark.pedantic(
        parse_batch, args=(batch, options), rounds=rounds, warmup_rounds=1
    )
    assert (stats.parsed, stats.rejected) == (LINES, 0)
    record_rate(benchmark, "lines", LINES)
    benchmark.extra_info["raw_bytes_per_line"] = batch.meta.raw_bytes / LINES
