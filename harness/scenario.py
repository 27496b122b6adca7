"""The scenario model: what to run, validated before anything starts.

A scenario is a tree of frozen dataclasses validated on construction; every
error is a :class:`ScenarioError` whose message starts with the dotted setting
path (``sharding.shards: must be >= 1 (got 0)``). These settings are the
user-facing vocabulary documented in ``docs/scenarios.md``; the runner maps them
onto ``logpipe``. The groups of settings (``GeneratorSpec``, ``ParserSpec``, ...)
live in :mod:`harness.specs` and :class:`Matrix` in :mod:`harness.matrix`; both are
re-exported here, the import path of scenario modules. A scenario module is a
Python file defining ``SCENARIO``, a :class:`Scenario` or a :class:`Matrix` of
variants (:func:`load_scenario_module`).
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
    detector_overrides,
    fail,
    from_plain,
    items_of_type,
    meta,
    of_type,
    parse_assignment,
    split_path,
    thresholds,
    to_plain,
)
from harness.specs import (
    IN_FLIGHT_PER_TASK,
    FaultSpec,
    GeneratorSpec,
    InjectionSpec,
    MeasurementSpec,
    ParserSpec,
    RateSpec,
    RaySpec,
    ShardingSpec,
    TestKnobs,
    WindowsSpec,
)

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
    generator: GeneratorSpec = field(metadata=meta(of_type(GeneratorSpec)))
    description: str = field(default="", metadata=meta(_description))
    parser: ParserSpec = field(default=ParserSpec(), metadata=meta(of_type(ParserSpec)))
    sharding: ShardingSpec = field(default=ShardingSpec(), metadata=meta(of_type(ShardingSpec)))
    windows: WindowsSpec = field(default=WindowsSpec(), metadata=meta(of_type(WindowsSpec)))
    detector: Mapping[str, Any] = field(default_factory=dict, metadata=meta(detector_overrides))
    ray: RaySpec = field(default=RaySpec(), metadata=meta(of_type(RaySpec)))
    measurement: MeasurementSpec = field(
        default=MeasurementSpec(), metadata=meta(of_type(MeasurementSpec))
    )
    thresholds: tuple[str, ...] = field(default=(), metadata=meta(thresholds))
    testing: TestKnobs = field(default=TestKnobs(), metadata=meta(of_type(TestKnobs)))
    faults: tuple[FaultSpec, ...] = field(default=(), metadata=meta(items_of_type(FaultSpec)))
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
        """Batches in flight in the pipeline: the setting, or
        :data:`IN_FLIGHT_PER_TASK` x parser.parallelism."""
        return self.measurement.max_in_flight or IN_FLIGHT_PER_TASK * self.parser.parallelism

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
