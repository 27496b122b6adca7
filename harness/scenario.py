"""The scenario model: what to run, validated before anything starts.

A scenario is a tree of frozen dataclasses validated on construction; every
error is a :class:`ScenarioError` whose message starts with the dotted setting
path (``sharding.shards: must be >= 1 (got 0)``). These settings are the
user-facing vocabulary documented in ``docs/scenarios.md``; the runner maps them
onto ``logpipe``. A scenario module is a Python file defining ``SCENARIO``, a
:class:`Scenario` or a :class:`Matrix` of variants (:func:`load_scenario_module`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import sys
import traceback
import types
from collections.abc import Mapping, Sequence
from dataclasses import field
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from harness.matrix import Matrix
from harness.overrides import (
    ScenarioError,
    Spec,
    apply_assignments,
    boolean,
    build_detector_config,
    choice,
    detector_overrides,
    fail,
    from_plain,
    integer,
    meta,
    number,
    optional,
    parse_assignment,
    split_path,
    text,
    thresholds,
    to_plain,
)
from logpipe.batch import CODECS
from logpipe.generate import MAX_EVENT_SPEED, MIN_EVENT_SPEED
from logpipe.schema import ANOMALY_KINDS, ERROR_RATE, LATENCY, USER_ACTIVITY
from logpipe.traffic import endpoint_pool

__all__ = [
    "FaultSpec",
    "GeneratorSpec",
    "InjectionSpec",
    "Matrix",
    "MeasurementSpec",
    "ParserSpec",
    "RateSpec",
    "RaySpec",
    "Scenario",
    "ScenarioError",
    "ScenarioInfo",
    "ShardingSpec",
    "TestKnobs",
    "WindowsSpec",
    "detector_config",
    "list_scenarios",
    "load_scenario_module",
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


def _of_type(cls: type) -> Any:
    def check(path: str, value: Any) -> Any:
        if not isinstance(value, cls):
            fail(path, f"must be a {cls.__name__} (got {value!r})")
        return value

    return check


def _items_of_type(cls: type) -> Any:
    def check(path: str, value: Any) -> tuple[Any, ...]:
        if not isinstance(value, (tuple, list)):
            fail(path, f"must be a list of {cls.__name__} (got {value!r})")
        for i, item in enumerate(value):
            _of_type(cls)(f"{path}[{i}]", item)
        return tuple(value)

    return check


@dataclasses.dataclass(frozen=True)
class GeneratorSpec(Spec):
    """The synthetic log stream (or a replayed log file) and its injected anomalies."""

    _path: ClassVar[str] = "generator"
    rate: RateSpec = field(metadata=meta(_of_type(RateSpec)))
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
        default=(), metadata=meta(_items_of_type(InjectionSpec))
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

    When attaching, ``num_cpus`` and ``object_store_memory`` are the cluster's own.
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
    replicates: int = field(default=5, metadata=meta(_at_least_one))
    sample_interval_s: float = field(default=0.25, metadata=meta(_positive))
    # None: 2 x parser.parallelism (see Scenario.max_in_flight)
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


def detector_config(scenario: Scenario) -> Any:
    """The ``logpipe.detector.DetectorConfig`` of ``scenario`` (``None`` if not available)."""
    return build_detector_config(scenario.detector)


# --- the scenario ----------------------------------------------------------------


def _name(path: str, value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", value):
        fail(path, f"must be an identifier: letters, digits and _ (got {value!r})")
    return value


def _description(path: str, value: Any) -> str:
    if not isinstance(value, str):
        fail(path, f"must be a string (got {value!r})")
    return value


# Excluded from the fingerprint: they do not change what is measured.
_NOT_FINGERPRINTED = ("name", "description", "thresholds")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Scenario(Spec):
    """A complete, validated benchmark scenario (see docs/scenarios.md)."""

    _path: ClassVar[str] = ""
    name: str = field(metadata=meta(_name))
    generator: GeneratorSpec = field(metadata=meta(_of_type(GeneratorSpec)))
    description: str = field(default="", metadata=meta(_description))
    parser: ParserSpec = field(default=ParserSpec(), metadata=meta(_of_type(ParserSpec)))
    sharding: ShardingSpec = field(default=ShardingSpec(), metadata=meta(_of_type(ShardingSpec)))
    windows: WindowsSpec = field(default=WindowsSpec(), metadata=meta(_of_type(WindowsSpec)))
    detector: Mapping[str, Any] = field(default_factory=dict, metadata=meta(detector_overrides))
    ray: RaySpec = field(default=RaySpec(), metadata=meta(_of_type(RaySpec)))
    measurement: MeasurementSpec = field(
        default=MeasurementSpec(), metadata=meta(_of_type(MeasurementSpec))
    )
    thresholds: tuple[str, ...] = field(default=(), metadata=meta(thresholds))
    testing: TestKnobs = field(default=TestKnobs(), metadata=meta(_of_type(TestKnobs)))
    faults: tuple[FaultSpec, ...] = field(default=(), metadata=meta(_items_of_type(FaultSpec)))
    allow_test_knobs: bool = field(default=False, metadata=meta(boolean))

    def _validate(self) -> None:
        if self.testing != TestKnobs() and not self.allow_test_knobs:
            fail("testing", "test-only knobs need allow_test_knobs=True")
        m = self.measurement
        limit, what = (
            (m.search_step_s, "measurement.search_step_s")
            if m.search
            else (self.generator.duration_s, "generator.duration_s")
        )
        if m.warmup_s >= limit:
            fail("measurement.warmup_s", f"must be < {what}={limit:g} (got {m.warmup_s:g})")
        # The search's detection probe runs the generator's own duration and injections.
        duration = self.generator.duration_s
        if m.search and self.generator.injections and m.warmup_s >= duration:
            fail(
                "measurement.warmup_s",
                f"must be < generator.duration_s={duration:g}, the detection probe's "
                f"length (got {m.warmup_s:g})",
            )
        self._validate_faults()

    def _validate_faults(self) -> None:
        duration = self.generator.duration_s
        for i, f in enumerate(self.faults):
            if f.at_s >= duration:
                fail(f"faults[{i}].at_s", f"must be < generator.duration_s={duration:g}")
            if f.kind == "kill_shard" and f.target >= self.sharding.shards:
                fail(
                    f"faults[{i}].target",
                    f"no shard {f.target} (sharding.shards={self.sharding.shards})",
                )
            if f.kind == "remove_node" and self.ray.simulated_nodes < 2:
                fail(f"faults[{i}].kind", "remove_node needs ray.simulated_nodes >= 2")

    @property
    def max_in_flight(self) -> int:
        """Batches in flight in the pipeline: the setting, or 2 x parser.parallelism."""
        return self.measurement.max_in_flight or 2 * self.parser.parallelism

    def to_dict(self, resolved: bool = True) -> dict[str, Any]:
        """Plain JSON settings; ``resolved`` fills in derived defaults (for result files)."""
        plain: dict[str, Any] = to_plain(self)
        if resolved:
            plain["measurement"]["max_in_flight"] = self.max_in_flight
            config = detector_config(self)
            if config is not None:
                plain["detector"] = to_plain(config)
        return plain

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        """Rebuild (and validate) a scenario from :meth:`to_dict` output."""
        scenario: Scenario = from_plain(cls, data)
        return scenario

    def with_overrides(
        self, overrides: Sequence[str] | Mapping[str, Any], *, origin: str = "--set"
    ) -> Scenario:
        """A copy with ``["key.path=value", ...]`` (or a path -> value mapping) applied.

        Values given as text are parsed as JSON when they parse, else kept as
        strings. The result is validated again; ``testing.*`` needs
        ``allow_test_knobs`` in the scenario module, which ``--set`` cannot change.
        """
        if isinstance(overrides, str):
            overrides = [overrides]
        if isinstance(overrides, Mapping):
            pairs = list(overrides.items())
        else:
            pairs = [parse_assignment(item, origin) for item in overrides]
        for path, _ in pairs:
            top = split_path(path)[0]
            if top == "allow_test_knobs":
                fail(f"{origin} {path}", "can only be set in the scenario module")
            if top == "testing" and not self.allow_test_knobs:
                fail(
                    f"{origin} {path}", "test-only knobs need allow_test_knobs=True in the scenario"
                )
        tree = apply_assignments(
            self.to_dict(resolved=False), pairs, open_keys=("detector",), origin=origin
        )
        return Scenario.from_dict(tree)

    def fingerprint(self) -> str:
        """A short hash of every resolved setting that can change what is measured."""
        settings = self.to_dict()
        for key in _NOT_FINGERPRINTED:
            settings.pop(key, None)
        blob = json.dumps(settings, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --- scenario modules ------------------------------------------------------------


def _exec_module(file: Path, code: types.CodeType) -> types.ModuleType:
    """Run ``code`` as a fresh module, registered in ``sys.modules`` only while it runs."""
    name = f"_logbench_scenario_{file.stem}"
    module = types.ModuleType(name)
    module.__file__ = str(file)
    previous = sys.modules.get(name)
    # Registered while executing so dataclasses and typing can resolve the module.
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)
    except ScenarioError:
        raise
    except Exception as err:
        frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == str(file)]
        line = frames[-1].lineno if frames else "?"
        raise ScenarioError(f"{file}:{line}: {type(err).__name__}: {err}") from err
    finally:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
    return module


def load_scenario_module(path: str | os.PathLike[str]) -> Scenario | Matrix:
    """Import the scenario file at ``path`` and return its ``SCENARIO``.

    Raises :class:`ScenarioError` for a missing or unreadable file, a syntax
    error (``path:line: syntax error: ...``), any exception while it runs, an
    invalid setting (the message starts with the setting path) or a missing or
    wrongly typed ``SCENARIO``.
    """
    file = Path(path)
    if not file.is_file():
        raise ScenarioError(f"{file}: no such scenario file")
    try:
        source = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ScenarioError(f"{file}: cannot read: {err}") from None
    try:
        code = compile(source, str(file), "exec")
    except SyntaxError as err:
        raise ScenarioError(f"{file}:{err.lineno}: syntax error: {err.msg}") from None
    module = _exec_module(file, code)
    if not hasattr(module, "SCENARIO"):
        raise ScenarioError(f"{file}: defines no SCENARIO (a Scenario or a Matrix)")
    scenario = module.SCENARIO
    if not isinstance(scenario, (Scenario, Matrix)):
        raise ScenarioError(
            f"{file}: SCENARIO must be a Scenario or a Matrix (got {type(scenario).__name__})"
        )
    return scenario


class ScenarioInfo(NamedTuple):
    """One row of ``logbench list``; ``name`` is ``None`` and ``description`` the error
    when the module is broken."""

    path: str
    name: str | None
    variants: tuple[str, ...]
    description: str


def list_scenarios(directory: str | os.PathLike[str]) -> list[ScenarioInfo]:
    """Every scenario module in ``directory`` (sorted; ``_*.py`` skipped), broken ones included."""
    rows = []
    for file in sorted(Path(directory).glob("*.py")):
        if file.name.startswith("_"):
            continue
        try:
            loaded = load_scenario_module(file)
        except ScenarioError as err:
            rows.append(ScenarioInfo(str(file), None, (), f"error: {err}"))
            continue
        if isinstance(loaded, Matrix):
            variants = tuple(name for name, _ in loaded.variants())
            base = loaded.base
        else:
            variants, base = (), loaded
        rows.append(ScenarioInfo(str(file), base.name, variants, base.description))
    return rows
