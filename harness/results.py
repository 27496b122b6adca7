"""Result files: immutable records, validation, migration and atomic writes.

A result file is one JSON object per run (see ``docs/results-format.md``). Files
are plain JSON, never pickled and never evaluated; :func:`load_result` migrates
old schema versions and validates every field it relies on before building the
records, so a truncated or hand-edited file fails with a one-line message that
names the offending field.

Version history (keep in step with ``MIGRATIONS`` and the docs):

- **0** (pre-release draft): no ``kind`` field and no ``summary``; readers
  computed the per-metric summary themselves.
- **1**: adds ``"kind": "logbench.result"`` and stores ``summary`` (computed
  over complete replicates by :meth:`RunResult.create`).
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import statistics
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MIGRATIONS",
    "RESULT_KIND",
    "SCHEMA_VERSION",
    "Replicate",
    "ResultError",
    "RunResult",
    "ScenarioInfo",
    "capture_metadata",
    "from_json_text",
    "load_result",
    "migrate",
    "result_filename",
    "summarize",
    "write_result",
]

SCHEMA_VERSION = 1
RESULT_KIND = "logbench.result"

JSON = dict[str, Any]


class ResultError(ValueError):
    """A result file that cannot be used; the message is one line naming the problem."""


@dataclass(frozen=True)
class ScenarioInfo:
    """Which scenario produced the run, and its fully resolved settings."""

    name: str
    variant: str | None
    module: str
    settings: Mapping[str, Any]

    @property
    def label(self) -> str:
        return self.name if self.variant is None else f"{self.name}[{self.variant}]"

    def to_dict(self) -> JSON:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class Replicate:
    """One replicate of a run. Nested parts stay plain JSON-compatible data."""

    index: int
    complete: bool
    started_at_s: float
    duration_s: float
    warmup_s: float
    metrics: Mapping[str, float | None]
    series: Mapping[str, Any] = field(default_factory=dict)
    samples: Mapping[str, Sequence[float]] = field(default_factory=dict)
    detections: tuple[Mapping[str, Any], ...] = ()
    alerts: tuple[Mapping[str, Any], ...] = ()
    shards: Mapping[str, Any] = field(default_factory=dict)
    faults: tuple[Mapping[str, Any], ...] = ()
    integrity: Mapping[str, Any] = field(default_factory=dict)
    rejections: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> JSON:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "replicate") -> Replicate:
        """Validate ``data`` (one replicate object) and build the record."""
        _check_replicate(data, path)
        return cls(
            index=data["index"],
            complete=data["complete"],
            started_at_s=float(data["started_at_s"]),
            duration_s=float(data["duration_s"]),
            warmup_s=float(data["warmup_s"]),
            metrics={k: None if x is None else float(x) for k, x in data["metrics"].items()},
            series=data.get("series", {}),
            samples=data.get("samples", {}),
            detections=tuple(data.get("detections", ())),
            alerts=tuple(data.get("alerts", ())),
            shards=data.get("shards", {}),
            faults=tuple(data.get("faults", ())),
            integrity=data.get("integrity", {}),
            rejections=data.get("rejections", {}),
        )


@dataclass(frozen=True)
class RunResult:
    """A whole run: scenario, machine metadata, replicates and their summary."""

    scenario: ScenarioInfo
    metadata: Mapping[str, Any]
    replicates: tuple[Replicate, ...]
    summary: Mapping[str, Mapping[str, float | int | None]]
    complete: bool = True
    kind: str = RESULT_KIND
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def create(
        cls,
        scenario: ScenarioInfo,
        metadata: Mapping[str, Any],
        replicates: Iterable[Replicate],
        complete: bool = True,
    ) -> RunResult:
        """Build a current-version result, summarising its complete replicates."""
        reps = tuple(replicates)
        return cls(
            scenario=scenario,
            metadata=metadata,
            replicates=reps,
            summary=summarize(r for r in reps if r.complete),
            complete=complete,
        )

    @property
    def complete_replicates(self) -> tuple[Replicate, ...]:
        """Replicates that ran to the end; only these count in statistics."""
        return tuple(r for r in self.replicates if r.complete)

    def metric_values(self, name: str) -> list[float]:
        """Non-null values of metric ``name`` over complete replicates, in order."""
        out = []
        for rep in self.complete_replicates:
            x = rep.metrics.get(name)
            if x is not None:
                out.append(float(x))
        return out

    def to_dict(self) -> JSON:
        return {
            "kind": self.kind,
            "schema_version": self.schema_version,
            "complete": self.complete,
            "scenario": self.scenario.to_dict(),
            "metadata": _plain(self.metadata),
            "replicates": [r.to_dict() for r in self.replicates],
            "summary": _plain(self.summary),
        }

    @classmethod
    def from_dict(cls, data: Any) -> RunResult:
        """Migrate and validate a decoded result object; raises :class:`ResultError`."""
        data = migrate(data)
        _check_result(data)
        sc = data["scenario"]
        return cls(
            scenario=ScenarioInfo(
                name=sc["name"],
                variant=sc.get("variant"),
                module=sc.get("module", ""),
                settings=sc["settings"],
            ),
            metadata=data["metadata"],
            replicates=tuple(
                Replicate.from_dict(r, f"replicates[{i}]") for i, r in enumerate(data["replicates"])
            ),
            summary=data["summary"],
            complete=data["complete"],
            kind=data["kind"],
            schema_version=data["schema_version"],
        )


_SCALARS = (float, int, str, bool, type(None))


def _plain(obj: Any) -> Any:
    """A deep copy made of dicts, lists and scalars, so callers cannot alias ours."""
    if type(obj) in _SCALARS:
        return obj
    if isinstance(obj, Mapping):
        return {str(k): _plain(x) for k, x in obj.items()}
    if isinstance(obj, (list, tuple)):
        # Fast path: long series/sample lists are usually plain floats.
        return [x if type(x) in _SCALARS else _plain(x) for x in obj]
    tolist = getattr(obj, "tolist", None)  # numpy arrays and scalars -> Python values
    if callable(tolist) and not isinstance(obj, (str, bytes)):
        return _plain(tolist())
    return obj


# --------------------------------------------------------------------------- validation
# Hand-written rather than a schema library: messages must name the exact field
# ("replicates[0].metrics: expected object, got array") and stay one line.


def _kind_of(x: Any) -> str:
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "boolean"
    if isinstance(x, int):
        return "number" if _is_num(x) else "number out of float range"
    if isinstance(x, float):
        return "number" if math.isfinite(x) else repr(x).replace("nan", "NaN")
    if isinstance(x, str):
        return "string"
    return "array" if isinstance(x, list) else "object" if isinstance(x, dict) else type(x).__name__


def _fail(path: str, expected: str, got: Any) -> None:
    raise ResultError(f"{path}: expected {expected}, got {_kind_of(got)}")


_FLOAT_MAX = 1.7976931348623157e308


def _is_num(x: Any) -> bool:
    """A finite JSON number that also fits a float (huge ints would overflow later)."""
    if isinstance(x, float):
        return math.isfinite(x)
    return isinstance(x, int) and not isinstance(x, bool) and -_FLOAT_MAX <= x <= _FLOAT_MAX


def _field(obj: Mapping[str, Any], key: str, path: str, kind: str, optional: bool = False) -> Any:
    """``obj[key]`` checked against ``kind``: object, array, string, string?, bool, int, number."""
    where = f"{path}.{key}" if path else key
    if key not in obj:
        if optional:
            return None
        raise ResultError(f"{where}: missing")
    x = obj[key]
    ok = {
        "object": isinstance(x, dict),
        "array": isinstance(x, list),
        "string": isinstance(x, str),
        "string or null": x is None or isinstance(x, str),
        "boolean": isinstance(x, bool),
        "integer": isinstance(x, int) and not isinstance(x, bool),
        "finite number": _is_num(x),
    }[kind]
    if not ok:
        _fail(where, kind, x)
    return x


_NUMBER_TYPES = frozenset({float, int})
_NULLABLE_TYPES = _NUMBER_TYPES | {type(None)}


def _check_numbers(values: Any, path: str, nullable: bool) -> None:
    # Fast path for long series: element types and finiteness checked in C;
    # only a failing array is walked in Python to name the bad element.
    types = set(map(type, values))
    if types <= (_NULLABLE_TYPES if nullable else _NUMBER_TYPES):
        nums = [x for x in values if x is not None] if type(None) in types else values
        try:
            if np.isfinite(np.asarray(nums, dtype=np.float64)).all():
                return
        except OverflowError:
            pass
    expected = "finite number or null" if nullable else "finite number"
    for i, x in enumerate(values):
        if not (_is_num(x) or (nullable and x is None)):
            _fail(f"{path}[{i}]", expected, x)


def _check_metric_map(metrics: Mapping[str, Any], path: str) -> None:
    for name, x in metrics.items():
        if not (x is None or _is_num(x)):
            _fail(f"{path}.{name}", "finite number or null", x)


def _check_replicate(rep: Any, path: str) -> None:
    if not isinstance(rep, dict):
        _fail(path, "object", rep)
    _field(rep, "index", path, "integer")
    _field(rep, "complete", path, "boolean")
    for key in ("started_at_s", "duration_s", "warmup_s"):
        _field(rep, key, path, "finite number")
    _check_metric_map(_field(rep, "metrics", path, "object"), f"{path}.metrics")
    for key in ("shards", "integrity", "rejections"):
        _field(rep, key, path, "object", optional=True)
    for key in ("detections", "alerts", "faults"):
        items = _field(rep, key, path, "array", optional=True) or []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                _fail(f"{path}.{key}[{i}]", "object", item)
    samples = _field(rep, "samples", path, "object", optional=True) or {}
    for name in samples:
        _check_numbers(
            _field(samples, name, f"{path}.samples", "array"), f"{path}.samples.{name}", False
        )
    series = _field(rep, "series", path, "object", optional=True) or {}
    for name in series:
        where = f"{path}.series.{name}"
        one = _field(series, name, f"{path}.series", "object")
        t_s = _field(one, "t_s", where, "array")
        values = _field(one, "values", where, "array")
        if len(t_s) != len(values):
            raise ResultError(f"{where}: t_s has {len(t_s)} points but values has {len(values)}")
        _check_numbers(t_s, f"{where}.t_s", False)
        _check_numbers(values, f"{where}.values", True)


def _check_result(data: Mapping[str, Any]) -> None:
    _field(data, "kind", "", "string")  # value checked by migrate()
    _field(data, "complete", "", "boolean")
    scenario = _field(data, "scenario", "", "object")
    _field(scenario, "name", "scenario", "string")
    _field(scenario, "variant", "scenario", "string or null", optional=True)
    _field(scenario, "module", "scenario", "string", optional=True)
    _field(scenario, "settings", "scenario", "object")
    _field(data, "metadata", "", "object")
    for i, rep in enumerate(_field(data, "replicates", "", "array")):
        _check_replicate(rep, f"replicates[{i}]")
    summary = _field(data, "summary", "", "object")
    for name in summary:
        entry = _field(summary, name, "summary", "object")
        _check_metric_map(entry, f"summary.{name}")


# --------------------------------------------------------------------------- summary


def summarize(replicates: Iterable[Replicate]) -> dict[str, dict[str, float | int | None]]:
    """Per metric: median, mean, min, max, stdev, cv and n over non-null replicate values.

    ``stdev`` is the sample standard deviation (``None`` below 2 values); ``cv`` is
    ``stdev / |mean|`` (``None`` when undefined).
    """
    values: dict[str, list[float]] = {}
    for rep in replicates:
        for name, x in rep.metrics.items():
            bucket = values.setdefault(name, [])
            if x is not None and math.isfinite(x):
                bucket.append(float(x))
    return {name: _summary_of(xs) for name, xs in sorted(values.items())}


def _summary_of(xs: list[float]) -> dict[str, float | int | None]:
    if not xs:
        return dict.fromkeys(("median", "mean", "min", "max", "stdev", "cv"), None) | {"n": 0}
    mean = statistics.fmean(xs)
    stdev = statistics.stdev(xs) if len(xs) > 1 else None
    cv = stdev / abs(mean) if stdev is not None and mean != 0 else None
    return {
        "median": statistics.median(xs),
        "mean": mean,
        "min": min(xs),
        "max": max(xs),
        "stdev": stdev,
        "cv": cv,
        "n": len(xs),
    }


# --------------------------------------------------------------------------- migration


def _v0_to_v1(data: JSON) -> JSON:
    """v0 had no ``kind`` and no stored ``summary``."""
    out = dict(data)
    out["kind"] = RESULT_KIND
    reps = out.get("replicates")
    if isinstance(reps, list):
        # Validate first so a broken v0 file is reported by field, not by a crash here.
        for i, rep in enumerate(reps):
            _check_replicate(rep, f"replicates[{i}]")
        parsed = [Replicate.from_dict(r) for r in reps]
        out["summary"] = summarize(r for r in parsed if r.complete)
    out["schema_version"] = 1
    return out


# from_version -> step producing from_version + 1.
MIGRATIONS: Mapping[int, Callable[[JSON], JSON]] = {0: _v0_to_v1}


def migrate(data: Any) -> Any:
    """Upgrade a decoded result object to :data:`SCHEMA_VERSION` (no-op when current)."""
    if not isinstance(data, dict):
        raise ResultError("top level: expected object")
    kind = data.get("kind", RESULT_KIND)
    if kind != RESULT_KIND:
        raise ResultError(f"not a logbench result (kind {kind!r}, expected {RESULT_KIND!r})")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ResultError("schema_version: expected integer")
    if version > SCHEMA_VERSION:
        raise ResultError(
            f"written by a newer logbench (schema {version} > {SCHEMA_VERSION}); upgrade"
        )
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise ResultError(f"schema_version {version} is not supported (no migration)")
        data = step(data)
        version = data["schema_version"]
    return data


# --------------------------------------------------------------------------- files


def from_json_text(text: str) -> RunResult:
    """Parse result JSON text; errors are :class:`ResultError` without a file prefix."""
    try:
        # NaN/Infinity literals are decoded so validation can name the field holding them.
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ResultError(f"not a valid result file: {exc}") from None
    return RunResult.from_dict(data)


def load_result(path: str | os.PathLike[str]) -> RunResult:
    """Read, migrate and validate one result file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ResultError(f"{p}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ResultError(f"{p}: not a valid result file: not UTF-8 ({exc.reason})") from None
    try:
        return from_json_text(text)
    except ResultError as exc:
        raise ResultError(f"{p}: {exc}") from None


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def result_filename(result: RunResult, when: datetime, n: int = 0) -> str:
    """``<scenario>[-<variant>]-<YYYYmmddTHHMMSSZ>[-n].json`` (unsafe characters -> ``_``)."""
    stem = _UNSAFE.sub("_", result.scenario.name)
    if result.scenario.variant is not None:
        stem += "-" + _UNSAFE.sub("_", result.scenario.variant)
    stamp = when.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    suffix = f"-{n}" if n else ""
    return f"{stem}-{stamp}{suffix}.json"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def write_result(
    result: RunResult,
    directory: str | os.PathLike[str],
    clock: Callable[[], datetime] = _utcnow,
) -> Path:
    """Validate and write ``result`` atomically into ``directory``; never overwrites.

    The JSON goes to a temporary file in the same directory, is fsynced, then
    hard-linked to its final name (``link`` fails instead of replacing an existing
    file, so concurrent writers cannot clobber each other; on file systems
    without hard links it falls back to ``os.replace`` after an existence check).
    """
    data = result.to_dict()
    RunResult.from_dict(data)  # never write what load_result would refuse
    try:
        # No indent: json's C encoder only runs without one (10x faster on big series).
        text = json.dumps(data, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise ResultError(f"result is not JSON-serialisable: {exc}") from None
    dest_dir = Path(directory)
    dest_dir.mkdir(parents=True, exist_ok=True)
    when = clock()
    fd, tmp_name = tempfile.mkstemp(prefix=".result-", suffix=".tmp", dir=dest_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        return _publish(tmp, dest_dir, lambda n: result_filename(result, when, n))
    finally:
        tmp.unlink(missing_ok=True)


def _publish(tmp: Path, dest_dir: Path, name_for: Callable[[int], str]) -> Path:
    for n in range(10_000):
        dest = dest_dir / name_for(n)
        try:
            os.link(tmp, dest)
            return dest
        except FileExistsError:
            continue
        except OSError:
            if dest.exists():
                continue
            os.replace(tmp, dest)
            return dest
    raise ResultError(f"{dest_dir}: no free result file name for {name_for(0)}")


# --------------------------------------------------------------------------- metadata


def capture_metadata(
    calibration: Mapping[str, Any] | None,
    ray_address: str | None,
    clock: Callable[[], datetime] = _utcnow,
    repo_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Machine, software and source-tree facts recorded once per result file.

    Never imports Ray (versions come from package metadata) and tolerates a
    missing ``git`` or a tree that is not a git checkout (fields become ``None``).
    """
    import psutil

    repo = Path(repo_dir) if repo_dir is not None else Path(__file__).resolve().parent.parent
    commit = _git(repo, "rev-parse", "HEAD")
    status = _git(repo, "status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": commit,
        "git_dirty": None if status is None else bool(status.strip()),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": int(psutil.virtual_memory().total),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "ray": _version("ray"),
        "pyarrow": _version("pyarrow"),
        "numpy": _version("numpy"),
        "logbench": _version("logbench"),
        "started_at": clock().astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ray_address": ray_address,
        "calibration": None if calibration is None else _plain(calibration),
    }


def _git(repo: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip()


def _cpu_model(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> str | None:
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware", "cpu model"):
                    return value.strip() or None
    except OSError:
        pass
    return platform.processor() or None


def _version(dist: str) -> str | None:
    try:
        return importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return None
