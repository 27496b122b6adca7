"""Machine-speed calibration: a frozen single-core parse benchmark, independent of logpipe.

Throughput measured on different machines is compared after dividing by this
figure. The workload deliberately shares no code with ``logpipe`` so that a
pipeline regression can never be normalised away: fixed combined-log lines
from an in-module generator (splitmix64, fixed seed; no dependence on
``random``/numpy stream guarantees or on the locale), parsed per line with a
fixed ``re`` pattern, then once more with ``pyarrow.compute.extract_regex``,
then a small group-by.

Two modes, recorded as ``mode`` and never compared with each other:

- ``all_cores`` (what every run records): the round runs on every core of the
  Ray session at once, in short bursts before each replicate and after the last,
  so the figure is the per-core speed with all cores busy, as the pipeline runs,
  and follows the machine's drift over the run. A one-core figure taken on an
  idle machine does not: on a VM whose vCPUs share physical cores it moved by
  50 % between runs minutes apart while the pipeline's throughput moved 10 %.
- ``one_core``: :func:`calibrate`, one process, for quick standalone use.

**Any change to the workload, patterns or round structure must bump
CALIBRATION_VERSION** (and ``WORKLOAD_SHA256`` if the lines change); figures of
different versions or modes are not comparable and :func:`normalisation_factor`
refuses them.
"""

from __future__ import annotations

import hashlib
import math
import re
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "CALIBRATION_VERSION",
    "WORKLOAD_SHA256",
    "CalibrationMismatch",
    "CoreCalibration",
    "all_core_burst",
    "burst",
    "calibrate",
    "normalisation_factor",
    "workload_digest",
    "workload_lines",
]

CALIBRATION_VERSION = 2
MODE_ALL_CORES = "all_cores"
MODE_ONE_CORE = "one_core"
WORKLOAD_SEED = 20_240_601
WORKLOAD_LINES = 10_000
# sha256 of "\n".join(workload_lines()); guards against accidental workload drift.
WORKLOAD_SHA256 = "9569d61b1b29dc129d8b760fe86ea98c1bf1072dc7e319519c3921bd8d93235e"

_MASK = (1 << 64) - 1
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_METHODS = ("GET", "GET", "GET", "POST", "PUT", "DELETE")
_PATHS = ("/", "/login", "/cart", "/checkout", "/search", "/api/items", "/api/users", "/static")
_STATUSES = (200, 200, 200, 200, 201, 204, 301, 304, 400, 403, 404, 500, 502, 503)
_REFERERS = ("-", "https://example.com/", "https://search.example.org/?q=shoes")
_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 Safari/605.1.15",
    "curl/8.4.0",
    "python-requests/2.31.0",
)
_SERVICES = ("web", "api", "auth", "search", "checkout")

_PY_PATTERN = re.compile(
    r'(\S+) \S+ (\S+) \[([^\]]+)\] "(\S+) (\S+) (\S+)" (\d{3}) (\d+|-) '
    r'"([^"]*)" "([^"]*)" (\d+\.\d+) (\S+)'
)
_ARROW_PATTERN = (
    r'^(?P<ip>\S+) \S+ (?P<user>\S+) \[(?P<ts>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+) '
    r'(?P<proto>\S+)" (?P<status>\d{3}) (?P<bytes>\d+|-) "(?P<referer>[^"]*)" '
    r'"(?P<agent>[^"]*)" (?P<latency>\d+\.\d+) (?P<service>\S+)$'
)


class CalibrationMismatch(ValueError):
    """Two calibrations that cannot be compared (different versions or missing)."""


def _splitmix64(seed: int) -> Iterator[int]:
    state = seed & _MASK
    while True:
        state = (state + 0x9E3779B97F4A7C15) & _MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        yield z ^ (z >> 31)


def workload_lines(n: int = WORKLOAD_LINES, seed: int = WORKLOAD_SEED) -> list[str]:
    """The frozen calibration lines (combined log format plus latency and service)."""
    rng = _splitmix64(seed)
    lines = []
    for i in range(n):
        r = [next(rng) for _ in range(10)]
        ip = f"10.{r[0] % 256}.{(r[0] >> 8) % 256}.{(r[0] >> 16) % 256}"
        user = "-" if r[1] % 3 else f"user{r[1] % 500}"
        day, sec = 1 + i * 28 // n, (i * 7 + r[2] % 5) % 86_400
        ts = f"{day:02d}/{_MONTHS[r[2] % 12]}/2024:{sec // 3600:02d}:{sec // 60 % 60:02d}:"
        ts += f"{sec % 60:02d} +0000"
        path = _PATHS[r[4] % len(_PATHS)]
        if r[4] % 5 == 0:
            path += f"/{r[4] % 10_000}"
        size = "-" if r[6] % 17 == 0 else str(r[6] % 50_000)
        lines.append(
            f'{ip} - {user} [{ts}] "{_METHODS[r[3] % len(_METHODS)]} {path} HTTP/1.1" '
            f"{_STATUSES[r[5] % len(_STATUSES)]} {size} "
            f'"{_REFERERS[r[7] % len(_REFERERS)]}" "{_AGENTS[r[8] % len(_AGENTS)]}" '
            f"{r[9] % 3000 / 1000:.3f} {_SERVICES[r[9] % len(_SERVICES)]}"
        )
    return lines


def workload_digest(lines: list[str] | None = None) -> str:
    """sha256 of the workload; must equal :data:`WORKLOAD_SHA256`."""
    text = "\n".join(workload_lines() if lines is None else lines)
    return hashlib.sha256(text.encode()).hexdigest()


def _one_round(lines: list[str], arr: pa.Array) -> tuple[int, int]:
    """Parse twice (re, Arrow) and aggregate; returns (parsed lines, byte total)."""
    by_status: dict[str, int] = {}
    total = 0
    match = _PY_PATTERN.fullmatch
    for line in lines:
        m = match(line)
        if m is not None:
            by_status[m[7]] = by_status.get(m[7], 0) + 1
            size = m[8]
            total += 0 if size == "-" else int(size)
    parsed = pc.extract_regex(arr, _ARROW_PATTERN)
    table = pa.table(
        {
            "status": parsed.field("status"),
            "bytes": pc.cast(pc.replace_substring(parsed.field("bytes"), "-", "0"), pa.int64()),
        }
    )
    agg = table.group_by("status", use_threads=False).aggregate([("bytes", "sum")])
    arrow_total = pc.sum(agg["bytes_sum"]).as_py() or 0
    if arrow_total != total or sum(by_status.values()) != len(table):
        raise AssertionError("calibration passes disagree; the workload or patterns are broken")
    return len(table), total


def burst(rounds: int = 3, clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Lines/s of ``rounds`` timed rounds in this process, after one untimed warm round."""
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    lines = workload_lines()
    digest = workload_digest(lines)
    if digest != WORKLOAD_SHA256:
        raise AssertionError(
            f"calibration workload changed (sha256 {digest}); bump CALIBRATION_VERSION "
            "and WORKLOAD_SHA256 together"
        )
    arr = pa.array(lines, pa.string())
    _one_round(lines, arr)  # warm caches and compiled patterns; not timed
    samples = []
    for _ in range(rounds):
        t0 = clock()
        n, _ = _one_round(lines, arr)
        dt = clock() - t0
        samples.append(n / dt if dt > 0 else math.inf)
    return [float(s) for s in samples if math.isfinite(s)]


def calibrate(rounds: int = 11, clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Run the frozen benchmark (~1 s) in this process: lines per second on one core.

    Returns ``{"lines_per_s": median, "samples": [per-round lines/s], "version": N,
    "mode": "one_core"}``.
    """
    samples = burst(rounds, clock)
    if not samples:
        raise RuntimeError("calibration clock did not advance")
    return {
        "lines_per_s": float(statistics.median(samples)),
        "samples": samples,
        "version": CALIBRATION_VERSION,
        "mode": MODE_ONE_CORE,
    }


def all_core_burst(cores: int, rounds: int = 3) -> list[float]:
    """One burst on ``cores`` cores of the connected Ray at once; every round's lines/s.

    One task per core, each reserving a CPU, so the cores are all busy together
    (Ray's workers are already started: the tasks begin within milliseconds).
    """
    import ray

    task: Any = ray.remote(num_cpus=1, max_retries=0)(burst)
    per_task = ray.get([task.remote(rounds) for _ in range(max(1, cores))])
    return [s for samples in per_task for s in samples]


class CoreCalibration:
    """Accumulates all-core bursts over a run and summarises them for the result file."""

    def __init__(
        self, cores: int, rounds: int = 3, burst_fn: Callable[[int, int], list[float]] | None = None
    ) -> None:
        self.cores = max(1, int(cores))
        self.rounds = rounds
        self._burst = burst_fn or all_core_burst
        self.samples: list[float] = []
        self.bursts = 0

    def burst(self) -> None:
        """Measure once more (call between replicates, never during one)."""
        self.samples.extend(self._burst(self.cores, self.rounds))
        self.bursts += 1

    def result(self) -> dict[str, Any] | None:
        """``{"lines_per_s": median per core, "samples", "version", "mode", "cores",
        "bursts"}``, or None before the first burst."""
        if not self.samples:
            return None
        return {
            "lines_per_s": float(statistics.median(self.samples)),
            "samples": list(self.samples),
            "version": CALIBRATION_VERSION,
            "mode": MODE_ALL_CORES,
            "cores": self.cores,
            "bursts": self.bursts,
        }


def normalisation_factor(baseline: Any, candidate: Any) -> float:
    """Factor to multiply the candidate's throughput by to put it on the baseline machine.

    ``baseline.lines_per_s / candidate.lines_per_s``. Raises
    :class:`CalibrationMismatch` if either calibration is missing or malformed,
    or if their versions or modes differ (two calibrations both without a
    version, from before versioning, are treated as comparable).
    """
    for name, cal in (("baseline", baseline), ("candidate", candidate)):
        if not isinstance(cal, dict) or not _positive(cal.get("lines_per_s")):
            raise CalibrationMismatch(f"{name} has no usable calibration: {cal!r}")
    for key in ("version", "mode"):
        vb, vc = baseline.get(key), candidate.get(key)
        if vb != vc:
            raise CalibrationMismatch(
                f"calibration {key}s differ (baseline {vb}, candidate {vc}); "
                "throughput cannot be normalised across them (re-record the baseline)"
            )
    return float(baseline["lines_per_s"]) / float(candidate["lines_per_s"])


def _positive(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x > 0
