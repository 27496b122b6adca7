"""Map a scenario's user-facing settings onto the pipeline's configuration."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from logpipe.detector import DetectorConfig
from logpipe.parse import ParseOptions
from logpipe.pipeline import PipelineConfig
from logpipe.windows import WindowSpec


def pipeline_config(scn: Any) -> PipelineConfig:
    """The :class:`PipelineConfig` a scenario asks for."""
    parser = scn.parser
    return PipelineConfig(
        parse=ParseOptions(
            strategy=parser.strategy,
            max_dead_letters=parser.max_dead_letters,
            test_slowdown_us_per_line=scn.testing.slowdown_us_per_line,
        ),
        sharding=scn.sharding.strategy,
        n_shards=scn.sharding.shards,
        window=WindowSpec(int(scn.windows.size_s * 1000), int(scn.windows.slide_s * 1000)),
        detector=DetectorConfig(**dict(scn.detector)),
        max_in_flight=scn.max_in_flight,
        parse_num_cpus=parser.cpus_per_task,
        spread_shards=scn.sharding.spread,
        keep_freed_memory=scn.ray.keep_freed_memory,
        state_dir=scn.ray.state_dir,
    )


def check_state_dir(scn: Any) -> None:
    """Fail before anything runs, with one line naming ``ray.state_dir``, when the
    directory is missing or not writable here (the pipeline would fail per replicate)."""
    from harness.scenario import ScenarioError

    path = scn.ray.state_dir
    if path is None:
        return
    if not os.path.isdir(path):
        raise ScenarioError(f"ray.state_dir: no such directory {path!r} (is it mounted here?)")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ScenarioError(f"ray.state_dir: not writable: {path!r}")


def stall_hook(scn: Any, truth: Sequence[Any]) -> Callable[[int, int], float] | None:
    """Test-only: a stall in the aggregation path, once, during the first anomaly.

    Returns ``None`` unless the scenario sets ``testing.aggregation_stall_s``. The
    stall hits the first batch whose events overlap the first injected anomaly
    (or the first batch when ``stall_during_anomaly`` is false or none is injected).
    """
    stall_s = float(scn.testing.aggregation_stall_s)
    if stall_s <= 0:
        return None
    during = bool(scn.testing.stall_during_anomaly) and bool(truth)
    start_ms = truth[0].start_ms if during else None
    return _Stall(stall_s, start_ms)


class _Stall:
    """Picklable one-shot stall per shard actor (each actor holds its own copy)."""

    def __init__(self, seconds: float, start_ms: int | None) -> None:
        self.seconds = seconds
        self.start_ms = start_ms
        self.fired = False

    def __call__(self, first_event_ms: int, last_event_ms: int) -> float:
        if self.fired:
            return 0.0
        if self.start_ms is not None and last_event_ms < self.start_ms:
            return 0.0
        self.fired = True
        return self.seconds
