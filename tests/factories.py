"""Synthetic run results for tests of the result layer, comparison and exports, and
small parsed streams for the shard and checkpoint tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from harness.overrides import ScenarioError
from harness.results import Replicate, RunResult, ScenarioInfo

BASE_SETTINGS: dict[str, Any] = {
    "workload": {"lines": 100_000, "rate": {"profile": "constant", "lines_per_s": 50_000}},
    "pipeline": {"shards": 2, "parse": "arrow"},
    "measurement": {"replicates": 3, "warmup_s": 1.0},
    "ray": {"address": None},
}

BASE_METADATA: dict[str, Any] = {
    "git_commit": "0123456789abcdef0123456789abcdef01234567",
    "git_dirty": False,
    "cpu_model": "Test CPU @ 3.0GHz",
    "cpu_count": 2,
    "memory_bytes": 8 * 1024**3,
    "platform": "Linux-test",
    "python": "3.11.7",
    "ray": "2.60.0",
    "pyarrow": "26.0.0",
    "numpy": "2.4.6",
    "logbench": "0.1.0",
    "started_at": "2026-12-03T15:00:00Z",
    "ray_address": None,
    "calibration": {"lines_per_s": 1_000_000.0, "samples": [990_000.0, 1_010_000.0]},
}


def make_replicate(
    index: int, metrics: Mapping[str, float | None], complete: bool = True, **extra: Any
) -> Replicate:
    return Replicate(
        index=index,
        complete=complete,
        started_at_s=1_764_770_000.0 + 20 * index,
        duration_s=12.0,
        warmup_s=1.0,
        metrics=dict(metrics),
        **extra,
    )


def make_result(
    per_replicate: Sequence[Mapping[str, float | None]],
    *,
    name: str = "smoke",
    variant: str | None = None,
    settings: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    complete: bool = True,
) -> RunResult:
    """A result whose replicate ``i`` has metrics ``per_replicate[i]``."""
    return RunResult.create(
        scenario=ScenarioInfo(
            name=name,
            variant=variant,
            module=f"scenarios/{name}.py",
            settings=dict(settings if settings is not None else BASE_SETTINGS),
        ),
        metadata=dict(metadata if metadata is not None else BASE_METADATA),
        replicates=[make_replicate(i, m) for i, m in enumerate(per_replicate)],
        complete=complete,
    )


def from_samples(samples: Mapping[str, Sequence[float]], **kwargs: Any) -> RunResult:
    """A result with ``len(values)`` replicates, metric by metric."""
    n = max(len(v) for v in samples.values())
    rows = [{k: v[i] for k, v in samples.items() if i < len(v)} for i in range(n)]
    return make_result(rows, **kwargs)


def full_replicate_dict() -> dict[str, Any]:
    """A replicate object with every nested part filled, as the runner writes it."""
    return {
        "index": 0,
        "complete": True,
        "started_at_s": 1_764_770_000.0,
        "duration_s": 12.3,
        "warmup_s": 2.0,
        "metrics": {"throughput.lines_per_s": 123_456.0, "detection.ttd_p50_s": None},
        "series": {"backlog.batches": {"t_s": [0.0, 0.5], "values": [0, 3]}},
        "samples": {"latency.batch_s": [0.1, 0.2, 0.15]},
        "detections": [{"kind": "error_rate", "key": "checkout", "detected": True}],
        "alerts": [{"alert_id": 3, "kind": "error_rate", "key": "checkout"}],
        "shards": {"lines": [1000, 990]},
        "faults": [],
        "integrity": {"ok": True, "problems": []},
        "rejections": {"reasons": {"malformed": 3}, "dead_letters": []},
    }


def fails(build: Callable[[], Any], path: str) -> ScenarioError:
    """Assert ``build()`` raises a one-line ScenarioError naming ``path``; return it."""
    with pytest.raises(ScenarioError) as info:
        build()
    message = str(info.value)
    assert message.startswith(path + ":"), message
    assert isinstance(info.value, ValueError)
    return info.value


def parsed_stream(
    seed: int, seconds: float = 6.0, rate_lps: float = 3_000, json_fraction: float = 0.0
) -> list[tuple[Any, Any]]:
    """Generated batches of 700 lines and their parsed tables: ``[(batch, table), ...]``."""
    from logpipe import rate
    from logpipe.generate import GeneratorConfig, generate
    from logpipe.parse import ParseOptions, parse_batch

    cfg = GeneratorConfig(seed=seed, batch_lines=700, json_fraction=json_fraction, n_users=300)
    gen = generate(cfg, rate.Constant(rate_lps).line_offsets(seconds))
    return [(b, parse_batch(b, ParseOptions())[1]) for b in gen.batches]
