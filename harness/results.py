"""Result files: immutable records, summaries, migration and atomic writes.

A result file is one JSON object per run (see ``docs/results-format.md``). Files
are plain JSON, never pickled and never evaluated; :func:`load_result` migrates
old schema versions and validates every field it relies on
(:mod:`harness.result_schema`) before building the records, so a truncated or
hand-edited file fails with a one-line message that names the offending field.

Version history (keep in step with ``MIGRATIONS`` and the docs):

- **0** (pre-release draft): no ``kind`` field and no ``summary``; readers
  computed the per-metric summary themselves.
- **1**: adds ``"kind": "logbench.result"`` and stores ``summary`` (computed
  over complete replicates by :meth:`RunResult.create`).
- **2**: ``scenario.settings.ray.free_objects_period_ms`` is always present
  (logbench now sets Ray's object-eviction period itself; ``null`` means Ray's
  own default of 1000 ms, which every version-1 file ran with).
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

from harness.result_schema import ResultError, check_replicate, check_result

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

SCHEMA_VERSION = 2
RESULT_KIND = "logbench.result"

JSON = dict[str, Any]


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
        check_replicate(data, path)
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
        check_result(data)
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
            check_replicate(rep, f"replicates[{i}]")
        parsed = [Replicate.from_dict(r) for r in reps]
        out["summary"] = summarize(r for r in parsed if r.complete)
    out["schema_version"] = 1
    return out


def _v1_to_v2(data: JSON) -> JSON:
    """v1 runs before the eviction setting existed ran with Ray's default period (``null``)."""
    out = dict(data)
    scenario = out.get("scenario")
    if isinstance(scenario, dict) and isinstance(scenario.get("settings"), dict):
        settings = dict(scenario["settings"])
        ray = settings.get("ray")
        if isinstance(ray, dict) and "free_objects_period_ms" not in ray:
            settings["ray"] = {**ray, "free_objects_period_ms": None}
        out["scenario"] = {**scenario, "settings": settings}
    out["schema_version"] = 2
    return out


# from_version -> step producing from_version + 1.
MIGRATIONS: Mapping[int, Callable[[JSON], JSON]] = {0: _v0_to_v1, 1: _v1_to_v2}


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
