"""The groups of scenario settings: generator (rate, injections), parser, sharding,
windows, ray, faults, measurement and test knobs.

Each group is a frozen :class:`~harness.overrides.Spec` dataclass whose fields
carry their check; rules across fields live in ``_validate``. Errors start with
the dotted setting path (``_path``). :mod:`harness.scenario` assembles the groups
into a :class:`~harness.scenario.Scenario` and re-exports them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import field
from typing import Any, ClassVar

from harness.overrides import (
    Spec,
    boolean,
    choice,
    fail,
    integer,
    items_of_type,
    meta,
    number,
    of_type,
    optional,
    text,
)
from harness.raysession import FREE_OBJECTS_PERIOD_MS
from logpipe.batch import CODECS
from logpipe.generate import MAX_EVENT_SPEED, MIN_EVENT_SPEED
from logpipe.schema import ANOMALY_KINDS, ERROR_RATE, LATENCY, USER_ACTIVITY
from logpipe.traffic import endpoint_pool

__all__ = [
    "INTENSITY_BOUNDS",
    "FaultSpec",
    "GeneratorSpec",
    "InjectionSpec",
    "MeasurementSpec",
    "ParserSpec",
    "RateSpec",
    "RaySpec",
    "ShardingSpec",
    "TestKnobs",
    "WindowsSpec",
]

MiB = 1024 * 1024
RATE_KINDS = ("constant", "ramp", "step", "burst")
PARSE_STRATEGIES = ("arrow", "regex")
# "tasks": one @ray.remote parse task per batch (the default: faster, see
# docs/performance.md); "ray_data": the parse stage as a streaming Ray Data map_batches.
PARSE_ENGINES = ("tasks", "ray_data")
SHARDING_STRATEGIES = ("single", "by_service", "by_endpoint", "round_robin")
REPLAY_FORMATS = ("auto", "combined", "json")
FAULT_KINDS = ("kill_parse_worker", "kill_shard", "kill_detector", "kill_alerting", "remove_node")
MIN_OBJECT_STORE_BYTES = 75 * MiB
# The generator's own limits, so that a valid scenario never fails when it starts.
MAX_SERVICES = 256
MAX_USERS = 500_000
MAX_SKEW = 10.0
# Default batches in flight per parse task. Two per task left a saturated 2-core
# run waiting on round trips (CPUs about 70 % busy, throughput CV about 10 %);
# four keep every stage fed (CV about 3 %, docs/performance.md).
IN_FLIGHT_PER_TASK = 4

_rate = number(0)
_positive = number(0, above=True)
_at_least_one = integer(1)


def _absolute_path(path: str, value: Any) -> str:
    if not isinstance(value, str) or not os.path.isabs(value) or "\0" in value:
        fail(path, f"must be an absolute path (got {value!r})")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _steps(path: str, value: Any) -> tuple[tuple[float, float], ...]:
    if not isinstance(value, (tuple, list)) or not value:
        fail(path, f"must be a non-empty list of (duration_s, rate) pairs (got {value!r})")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            fail(f"{path}[{i}]", f"must be a (duration_s, rate) pair (got {item!r})")
        out.append(
            (_positive(f"{path}[{i}].duration_s", item[0]), _rate(f"{path}[{i}].rate", item[1]))
        )
    return tuple(out)


_RATE_REQUIRED = {
    "constant": ("rate",),
    "ramp": ("start_rate", "end_rate"),
    "step": ("steps",),
    "burst": ("base_rate", "burst_rate", "burst_start_s", "burst_duration_s"),
}
_RATE_OPTIONAL = {"burst": ("burst_every_s",)}


@dataclasses.dataclass(frozen=True)
class RateSpec(Spec):
    """Arrival-rate profile in lines/s; only the fields of ``kind`` may be set.

    ``burst_rate`` is added to ``base_rate`` during a burst (as in ``logpipe.rate``):
    the peak is ``base_rate + burst_rate``.
    Build with ``RateSpec.constant(r)``, ``.ramp(a, b)``, ``.step([(d, r), ...])``
    or ``.burst(base, peak, start_s, duration_s, every_s=None)``.
    """

    _path: ClassVar[str] = "generator.rate"
    kind: str = field(default="constant", metadata=meta(choice(*RATE_KINDS)))
    rate: float | None = field(default=None, metadata=meta(optional(_rate)))
    start_rate: float | None = field(default=None, metadata=meta(optional(_rate)))
    end_rate: float | None = field(default=None, metadata=meta(optional(_rate)))
    steps: tuple[tuple[float, float], ...] | None = field(
        default=None, metadata=meta(optional(_steps))
    )
    base_rate: float | None = field(default=None, metadata=meta(optional(_rate)))
    burst_rate: float | None = field(default=None, metadata=meta(optional(_positive)))
    burst_start_s: float | None = field(default=None, metadata=meta(optional(number(0))))
    burst_duration_s: float | None = field(default=None, metadata=meta(optional(_positive)))
    burst_every_s: float | None = field(default=None, metadata=meta(optional(_positive)))

    def _validate(self) -> None:
        required = _RATE_REQUIRED[self.kind]
        used = required + _RATE_OPTIONAL.get(self.kind, ())
        for f in dataclasses.fields(self)[1:]:
            value = getattr(self, f.name)
            if f.name not in used and value is not None:
                fail(self._p(f.name), f"not used by kind {self.kind!r} (it uses {', '.join(used)})")
            if f.name in required and value is None:
                fail(self._p(f.name), f"required by kind {self.kind!r}")
        if self.kind == "burst":
            every, dur = self.burst_every_s, self.burst_duration_s
            if every is not None and dur is not None and every <= dur:
                fail(
                    self._p("burst_every_s"),
                    f"must exceed burst_duration_s={dur:g} (got {every:g})",
                )
        if self.peak_rate() <= 0:
            fail(self._path, "the peak rate must be > 0 (the run would emit nothing)")

    def peak_rate(self) -> float:
        """The highest rate of the profile (lines/s)."""
        if self.kind == "ramp":
            return max(self.start_rate or 0.0, self.end_rate or 0.0)
        if self.kind == "step":
            return max(r for _, r in self.steps or ((0.0, 0.0),))
        if self.kind == "burst":
            return (self.base_rate or 0.0) + (self.burst_rate or 0.0)
        return float(self.rate or 0.0)

    @classmethod
    def constant(cls, rate: float) -> RateSpec:
        return cls(kind="constant", rate=rate)

    @classmethod
    def ramp(cls, start_rate: float, end_rate: float) -> RateSpec:
        """Linear from ``start_rate`` to ``end_rate`` over the generator's duration."""
        return cls(kind="ramp", start_rate=start_rate, end_rate=end_rate)

    @classmethod
    def step(cls, steps: Sequence[tuple[float, float]]) -> RateSpec:
        """``(duration_s, rate)`` pairs in order; the last rate holds to the end."""
        return cls(kind="step", steps=tuple(steps))

    @classmethod
    def burst(
        cls,
        base_rate: float,
        peak_rate: float,
        start_s: float,
        duration_s: float,
        every_s: float | None = None,
    ) -> RateSpec:
        """``base_rate``; ``peak_rate`` for ``duration_s`` from ``start_s``, every ``every_s``."""
        both = _is_number(peak_rate) and _is_number(base_rate)
        if both and peak_rate <= base_rate:
            fail(f"{cls._path}.burst_rate", f"the peak {peak_rate:g} must exceed base_rate")
        return cls(
            kind="burst",
            base_rate=base_rate,
            # Anything not a number is passed through for the field check to report.
            burst_rate=peak_rate - base_rate if both else peak_rate,
            burst_start_s=start_s,
            burst_duration_s=duration_s,
            burst_every_s=every_s,
        )


# Bounds of an injection's intensity per kind: (exclusive lower, inclusive upper).
INTENSITY_BOUNDS: dict[str, tuple[float, float | None]] = {
    ERROR_RATE: (0.0, 1.0),  # the service's 5xx share during the injection
    LATENCY: (1.0, None),  # multiplier of the endpoint's latency
    USER_ACTIVITY: (0.0, 1.0),  # the user's share of all traffic
}


@dataclasses.dataclass(frozen=True)
class InjectionSpec(Spec):
    """An anomaly injected into the generated stream; the generator records its ground truth.

    ``key``: the service, endpoint key or user (``None``: the generator picks one).
    ``intensity``: see :data:`INTENSITY_BOUNDS` (``None``: the generator's default).
    """

    _path: ClassVar[str] = "generator.injections[]"
    kind: str = field(metadata=meta(choice(*ANOMALY_KINDS)))
    start_s: float = field(metadata=meta(number(0)))
    duration_s: float = field(metadata=meta(_positive))
    key: str | None = field(default=None, metadata=meta(optional(text)))
    intensity: float | None = None

    def _validate(self) -> None:
        if self.key is not None and '"' in self.key:
            fail(self._p("key"), f"must not contain quotes (got {self.key!r})")
        if self.kind == USER_ACTIVITY and self.key is not None and " " in self.key:
            fail(self._p("key"), f"a user id has no spaces (got {self.key!r})")
        if self.intensity is not None:
            lo, hi = INTENSITY_BOUNDS[self.kind]
            check = number(lo, above=True, hi=hi)
            object.__setattr__(self, "intensity", check(self._p("intensity"), self.intensity))

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclasses.dataclass(frozen=True)
class GeneratorSpec(Spec):
    """The synthetic log stream (or a replayed log file) and its injected anomalies."""

    _path: ClassVar[str] = "generator"
    rate: RateSpec = field(metadata=meta(of_type(RateSpec)))
    duration_s: float = field(metadata=meta(_positive))
    batch_lines: int = field(default=10_000, metadata=meta(_at_least_one))
    json_fraction: float = field(default=0.0, metadata=meta(number(0, hi=1)))
    codec: str = field(default="zstd", metadata=meta(choice(*CODECS)))
    n_services: int = field(default=8, metadata=meta(integer(1, MAX_SERVICES)))
    endpoints_per_service: int = field(default=20, metadata=meta(integer(1, len(endpoint_pool()))))
    n_users: int = field(default=10_000, metadata=meta(integer(1, MAX_USERS)))
    user_skew: float = field(default=1.1, metadata=meta(number(0, hi=MAX_SKEW)))
    endpoint_skew: float = field(default=1.1, metadata=meta(number(0, hi=MAX_SKEW)))
    error_5xx_rate: float = field(default=0.015, metadata=meta(number(0, hi=1)))
    seed: int = field(default=1, metadata=meta(integer(0)))
    # Event seconds per second of the schedule (1: real time). Lets a short run
    # hold the several windows of event time that detection needs.
    event_speed: float = field(
        default=1.0, metadata=meta(number(MIN_EVENT_SPEED, hi=MAX_EVENT_SPEED))
    )
    injections: tuple[InjectionSpec, ...] = field(
        default=(), metadata=meta(items_of_type(InjectionSpec))
    )
    replay: str | None = field(default=None, metadata=meta(optional(text)))
    replay_format: str = field(default="auto", metadata=meta(choice(*REPLAY_FORMATS)))

    def _validate(self) -> None:
        for i, inj in enumerate(self.injections):
            if inj.end_s > self.duration_s:
                fail(
                    f"{self._p('injections')}[{i}]",
                    f"the injection ends at {inj.end_s:g} s, after the end of the run "
                    f"(generator.duration_s={self.duration_s:g})",
                )
        if self.replay is not None:
            # A replayed log has no ground truth: injections cannot apply.
            object.__setattr__(self, "injections", ())
        after_end = f"after the end of the run (generator.duration_s={self.duration_s:g})"
        rate = self.rate
        if rate.kind == "burst" and (rate.burst_start_s or 0.0) >= self.duration_s:
            fail(f"{rate._path}.burst_start_s", f"the burst starts {after_end}")
        elapsed = 0.0
        for i, (duration, _) in enumerate(rate.steps or ()):
            if elapsed >= self.duration_s:
                fail(f"{rate._path}.steps[{i}]", f"starts at {elapsed:g} s, {after_end}")
            elapsed += duration


@dataclasses.dataclass(frozen=True)
class ParserSpec(Spec):
    """How batches are parsed: strategy, engine, parse tasks in flight, CPUs per task."""

    _path: ClassVar[str] = "parser"
    strategy: str = field(default="arrow", metadata=meta(choice(*PARSE_STRATEGIES)))
    engine: str = field(default="tasks", metadata=meta(choice(*PARSE_ENGINES)))
    parallelism: int = field(default=4, metadata=meta(_at_least_one))
    cpus_per_task: float = field(default=1.0, metadata=meta(_positive))
    max_dead_letters: int = field(default=20, metadata=meta(integer(0)))


@dataclasses.dataclass(frozen=True)
class ShardingSpec(Spec):
    """How parsed rows are routed to aggregator shards."""

    _path: ClassVar[str] = "sharding"
    strategy: str = field(default="single", metadata=meta(choice(*SHARDING_STRATEGIES)))
    shards: int = field(default=1, metadata=meta(_at_least_one))
    spread: bool = field(default=False, metadata=meta(boolean))

    def _validate(self) -> None:
        if self.strategy == "single" and self.shards != 1:
            fail(self._p("shards"), f"strategy 'single' needs exactly 1 shard (got {self.shards})")


@dataclasses.dataclass(frozen=True)
class WindowsSpec(Spec):
    """Sliding detection windows in whole seconds; the slide is the pane."""

    _path: ClassVar[str] = "windows"
    size_s: int = field(default=10, metadata=meta(_at_least_one))
    slide_s: int = field(default=1, metadata=meta(_at_least_one))

    def _validate(self) -> None:
        if self.size_s % self.slide_s:
            fail(
                self._p("size_s"),
                f"must be a multiple of slide_s={self.slide_s} (got {self.size_s})",
            )


@dataclasses.dataclass(frozen=True)
class RaySpec(Spec):
    """The Ray instance: started locally, or attached to at ``address``.

    When attaching, ``num_cpus``, ``object_store_memory`` and
    ``free_objects_period_ms`` are the cluster's own.
    """

    _path: ClassVar[str] = "ray"
    num_cpus: int | None = field(default=None, metadata=meta(optional(_at_least_one)))
    object_store_memory: int | None = field(
        default=256 * MiB, metadata=meta(optional(integer(MIN_OBJECT_STORE_BYTES)))
    )
    address: str | None = field(default=None, metadata=meta(optional(text)))
    include_dashboard: bool = field(default=False, metadata=meta(boolean))
    # >= 2: a simulated cluster on this machine (ray.cluster_utils), a head and
    # simulated_nodes - 1 workers sharing num_cpus; for multi-node fault runs.
    simulated_nodes: int = field(default=0, metadata=meta(integer(0, 8)))
    # Checkpoints and journals (None: a temp directory on the driver's disk); on a
    # real cluster a shared filesystem path mounted on every node (docs/cluster.md).
    state_dir: str | None = field(default=None, metadata=meta(optional(_absolute_path)))
    # Parse workers and shard actors keep freed memory for reuse instead of returning
    # it to the kernel between batches (logpipe/allocator.py).
    keep_freed_memory: bool = field(default=True, metadata=meta(boolean))
    # How often the raylet evicts released objects (ms; 0: as each is released;
    # None: Ray's default, 1000). See harness/raysession.py.
    free_objects_period_ms: int | None = field(
        default=FREE_OBJECTS_PERIOD_MS, metadata=meta(optional(integer(0, 60_000)))
    )

    def _validate(self) -> None:
        if self.simulated_nodes == 1:
            fail(self._p("simulated_nodes"), "must be 0 (one local node) or >= 2 (got 1)")
        if self.simulated_nodes and self.address:
            fail(self._p("simulated_nodes"), "cannot be used with ray.address")


@dataclasses.dataclass(frozen=True)
class FaultSpec(Spec):
    """A fault injected during every replicate (see docs/reliability.md).

    ``target``: the shard index for ``kill_shard``, the worker node for
    ``remove_node``; unused otherwise.
    """

    _path: ClassVar[str] = "faults[]"
    kind: str = field(metadata=meta(choice(*FAULT_KINDS)))
    at_s: float = field(metadata=meta(number(0)))
    target: int = field(default=0, metadata=meta(integer(0)))


@dataclasses.dataclass(frozen=True)
class MeasurementSpec(Spec):
    """Replicates, warm-up, sampling, the in-flight bound and the max-rate search."""

    _path: ClassVar[str] = "measurement"
    warmup_s: float = field(default=2.0, metadata=meta(number(0)))
    # Before the first replicate, up to this many of the payload's lines go through
    # the pipeline unmeasured, as fast as it takes them (0: none); see runner._warm_pass.
    warmup_pass_lines: int = field(default=1_000_000, metadata=meta(integer(0)))
    replicates: int = field(default=5, metadata=meta(_at_least_one))
    # When set: after `replicates`, keep adding replicates until their throughput's
    # noise says a change of this many percent is detected (harness/power.py), up
    # to max_replicates. None: exactly `replicates`.
    detect_change_pct: float | None = field(
        default=None, metadata=meta(optional(number(0, above=True, hi=100)))
    )
    max_replicates: int = field(default=40, metadata=meta(_at_least_one))
    sample_interval_s: float = field(default=0.25, metadata=meta(_positive))
    # None: IN_FLIGHT_PER_TASK x parser.parallelism (see Scenario.max_in_flight)
    max_in_flight: int | None = field(default=None, metadata=meta(optional(_at_least_one)))
    samplers: bool = field(default=True, metadata=meta(boolean))
    search: bool = field(default=False, metadata=meta(boolean))
    search_low: float | None = field(default=None, metadata=meta(optional(_positive)))
    search_high: float | None = field(default=None, metadata=meta(optional(_positive)))
    search_step_s: float = field(default=5.0, metadata=meta(_positive))
    # The detection probe's rate, as a fraction of the maximum sustainable rate.
    search_detection_fraction: float = field(
        default=0.5, metadata=meta(number(0, above=True, hi=1))
    )

    def _validate(self) -> None:
        if self.detect_change_pct is not None and self.max_replicates < self.replicates:
            fail(
                self._p("max_replicates"),
                f"must be >= replicates={self.replicates} (got {self.max_replicates})",
            )
        if not self.search:
            return
        if self.search_low is None or self.search_high is None:
            missing = "search_low" if self.search_low is None else "search_high"
            fail(self._p(missing), "required when search is true (lines/s)")
        if self.search_high <= self.search_low:
            fail(
                self._p("search_high"),
                f"must exceed search_low={self.search_low:g} (got {self.search_high:g})",
            )


@dataclasses.dataclass(frozen=True)
class TestKnobs(Spec):
    """Test-only faults that validate the harness itself; never for real benchmarks."""

    __test__: ClassVar[bool] = False  # not a pytest test class
    _path: ClassVar[str] = "testing"
    slowdown_us_per_line: float = field(default=0.0, metadata=meta(number(0)))
    aggregation_stall_s: float = field(default=0.0, metadata=meta(number(0)))
    stall_during_anomaly: bool = field(default=False, metadata=meta(boolean))

    def _validate(self) -> None:
        if self.stall_during_anomaly and self.aggregation_stall_s <= 0:
            fail(self._p("stall_during_anomaly"), "needs aggregation_stall_s > 0")
