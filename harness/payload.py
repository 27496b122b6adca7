"""Build the payload before the timed window: batches, planned emit times, truth.

Generation (or reading a replay file) must not compete with the pipeline for
CPU, so the whole payload is built up front and its build time reported as
``generation.build_s``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from logpipe import rate as rate_mod
from logpipe.batch import Batch
from logpipe.generate import GeneratorConfig, GroundTruth, Injection, generate
from logpipe.replay import ReplayError, detect_format, read_batches


@dataclass
class Payload:
    """Everything the runner emits, in order, with its schedule."""

    batches: list[Batch]
    planned_s: np.ndarray  # per batch, seconds after the replicate origin
    truth: list[GroundTruth] = field(default_factory=list)
    build_s: float = 0.0
    source: str = "generator"

    @property
    def lines(self) -> int:
        return sum(b.meta.line_count for b in self.batches)

    @property
    def raw_bytes(self) -> int:
        return sum(b.meta.raw_bytes for b in self.batches)

    @property
    def compressed_bytes(self) -> int:
        return sum(b.compressed_bytes for b in self.batches)

    @property
    def max_batch_bytes(self) -> int:
        return max((b.compressed_bytes for b in self.batches), default=0)


def rate_profile(spec: Any) -> Any:
    """The logpipe rate profile for a scenario's ``RateSpec``."""
    if spec.kind == "constant":
        return rate_mod.Constant(spec.rate)
    if spec.kind == "ramp":
        return rate_mod.Ramp(spec.start_rate, spec.end_rate)
    if spec.kind == "step":
        return rate_mod.Step(tuple(tuple(s) for s in spec.steps))
    if spec.kind == "burst":
        return rate_mod.Burst(
            spec.base_rate,
            spec.burst_rate,
            spec.burst_start_s,
            spec.burst_duration_s,
            spec.burst_every_s,
        )
    raise ValueError(f"generator.rate.kind: unknown profile {spec.kind!r}")


def generator_config(gen: Any) -> GeneratorConfig:
    """The logpipe generator config for a scenario's ``GeneratorSpec``."""
    return GeneratorConfig(
        seed=gen.seed,
        batch_lines=gen.batch_lines,
        codec=gen.codec,
        json_fraction=gen.json_fraction,
        n_services=gen.n_services,
        endpoints_per_service=gen.endpoints_per_service,
        n_users=gen.n_users,
        user_skew=gen.user_skew,
        endpoint_skew=gen.endpoint_skew,
        error_5xx_rate=gen.error_5xx_rate,
        event_speed=gen.event_speed,
        injections=tuple(
            Injection(i.kind, i.start_s, i.duration_s, key=i.key, intensity=i.intensity)
            for i in gen.injections
        ),
    )


def check_replay(gen: Any) -> None:
    """Fail early, with one line naming ``generator.replay``, on a replay file that
    does not exist, is empty, unreadable or of an unknown format."""
    from harness.scenario import ScenarioError

    if not gen.replay:
        return
    try:
        if gen.replay_format == "auto":
            detect_format(gen.replay)
        else:  # reads only the first batch (the reader is lazy)
            next(iter(read_batches(gen.replay, gen.replay_format, 1_000, "none")), None)
    except ReplayError as err:
        raise ScenarioError(f"generator.replay: {err}", field="generator.replay") from None


def build_payload(gen: Any, clock: Callable[[], float] = time.perf_counter) -> Payload:
    """Generate (or read) every batch and plan its emit time.

    A replay file that cannot be read raises ``ScenarioError`` (one line).
    """
    from harness.scenario import ScenarioError

    started = clock()
    profile = rate_profile(gen.rate)
    if gen.replay:
        try:
            batches = list(read_batches(gen.replay, gen.replay_format, gen.batch_lines, gen.codec))
        except ReplayError as err:
            raise ScenarioError(f"generator.replay: {err}", field="generator.replay") from None
        planned = _retime(batches, profile, gen.duration_s)
        return Payload(batches, planned, [], clock() - started, f"replay:{gen.replay}")
    offsets = profile.line_offsets(gen.duration_s)
    stream = generate(generator_config(gen), offsets)
    return Payload(
        list(stream.batches),
        np.asarray(stream.planned_emit_s, dtype=float),
        list(stream.truth),
        clock() - started,
    )


def _retime(batches: list[Batch], profile: Any, duration_s: float) -> np.ndarray:
    """Planned emit times for replayed batches at the scenario's arrival rate.

    A batch is due when its last line would have arrived; past the profile's
    duration the final rate continues.
    """
    ends = np.cumsum([b.meta.line_count for b in batches])
    if len(ends) == 0:
        return np.zeros(0)
    offsets = profile.line_offsets(duration_s)
    total = int(ends[-1])
    if len(offsets) < total:
        last_rate = max(profile.rate_at(duration_s, duration_s), 1e-9)
        start = offsets[-1] if len(offsets) else 0.0
        extra = start + np.arange(1, total - len(offsets) + 1) / last_rate
        offsets = np.concatenate([offsets, extra])
    return np.asarray(offsets[ends - 1], dtype=float)
