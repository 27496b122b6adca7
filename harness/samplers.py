"""Background sampling of the object store and of CPU/memory, off the measured path.

A :class:`Sampler` runs its probes on a daemon thread every ``interval_s`` and
appends ``(t_s, value)`` to named :class:`Series`. The runner creates samplers
and subscribes to them (``sampler.on_sample.append(listener)``); a sampler never
calls into the runner, and a failing probe or listener is counted, not fatal.

Probes are callables returning ``{series_name: value}``: :func:`store_probe`
reads the raylet's store statistics, :class:`ResourceProbe` sums CPU and RSS
over the driver's process tree and the local Ray processes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import psutil

from harness.objstore import StoreStatsReader

__all__ = [
    "Probe",
    "ResourceProbe",
    "Sampler",
    "Series",
    "local_ray_markers",
    "store_probe",
    "sum_series",
]

Probe = Callable[[], Mapping[str, float]]
Listener = Callable[[str, float, float], None]


@dataclass
class Series:
    """Samples of one quantity; ``t_s`` ascending, seconds from the sampler's origin."""

    t_s: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def append(self, t_s: float, value: float) -> None:
        self.t_s.append(float(t_s))
        self.values.append(float(value))

    def extend(self, other: Series) -> None:
        """Add another series' samples (e.g. a later segment), keeping time order."""
        pairs = sorted(zip(self.t_s + other.t_s, self.values + other.values))
        self.t_s = [t for t, _ in pairs]
        self.values = [v for _, v in pairs]

    def __len__(self) -> int:
        return len(self.values)

    def peak(self) -> float | None:
        return max(self.values) if self.values else None

    def mean(self) -> float | None:
        """Mean of the samples (not time-weighted: samples are evenly spaced)."""
        return sum(self.values) / len(self.values) if self.values else None

    def to_dict(self) -> dict[str, list[float]]:
        return {"t_s": list(self.t_s), "values": list(self.values)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Sequence[float]]) -> Series:
        return cls([float(t) for t in data["t_s"]], [float(v) for v in data["values"]])


def sum_series(parts: Iterable[Series]) -> Series:
    """Sum series sampled on different clocks ticks (e.g. one sampler per node).

    At every timestamp of any part, the result is the sum of each part's latest
    value at or before it (sample-and-hold); a part contributes nothing before
    its first sample.
    """
    parts = [p for p in parts if len(p)]
    events = sorted((t, i, v) for i, p in enumerate(parts) for t, v in zip(p.t_s, p.values))
    latest: dict[int, float] = {}
    out = Series()
    for j, (t, i, v) in enumerate(events):
        latest[i] = v
        if j + 1 < len(events) and events[j + 1][0] == t:
            continue  # emit once per distinct timestamp
        out.append(t, sum(latest.values()))
    return out


class Sampler:
    """Calls ``probes`` every ``interval_s`` on a daemon thread and records series.

    ``clock`` (monotonic seconds) is injectable; ``t_s`` is measured from
    ``origin`` (given to :meth:`start`, default: the clock at start) so series
    line up with the replicate that owns them. Ticks follow a fixed schedule
    (``origin + k * interval_s``); a tick that overruns skips the missed slots
    instead of bursting to catch up.
    """

    def __init__(
        self,
        probes: Mapping[str, Probe],
        interval_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.probes = dict(probes)
        self.interval_s = interval_s
        self.clock = clock
        self.on_sample: list[Listener] = []  # listener(name, t_s, value), on the sampler thread
        self.failures: dict[str, int] = {name: 0 for name in self.probes}
        self.last_errors: dict[str, str] = {}
        self.listener_failures = 0
        self.ticks = 0
        self.overhead_s = 0.0  # CPU time the sampling thread spent in probes
        self._series: dict[str, Series] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._origin = 0.0

    def tick(self) -> None:
        """Run every probe once now (the thread calls this; tests may too)."""
        cpu0 = time.thread_time()
        for name, probe in self.probes.items():
            try:
                reading = probe()
            except Exception as exc:  # a probe must never kill sampling
                self.failures[name] += 1
                self.last_errors[name] = f"{type(exc).__name__}: {exc}"
                continue
            t_s = self.clock() - self._origin
            with self._lock:
                for key, value in reading.items():
                    self._series.setdefault(key, Series()).append(t_s, value)
            self._notify(reading, t_s)
        self.ticks += 1
        self.overhead_s += time.thread_time() - cpu0

    def _notify(self, reading: Mapping[str, float], t_s: float) -> None:
        for listener in list(self.on_sample):
            for key, value in reading.items():
                try:
                    listener(key, t_s, float(value))
                except Exception:
                    self.listener_failures += 1

    def _run(self) -> None:
        k = 0
        while not self._stop.is_set():
            self.tick()
            elapsed = self.clock() - self._origin
            k = max(k + 1, int(elapsed / self.interval_s) + 1)
            self._stop.wait(max(0.0, self._origin + k * self.interval_s - self.clock()))

    def start(self, origin: float | None = None) -> Sampler:
        """Start sampling on a daemon thread; the first sample is taken at once."""
        if self._thread is not None:
            raise RuntimeError("sampler already started")
        self._origin = self.clock() if origin is None else origin
        self._thread = threading.Thread(target=self._run, name="logbench-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> dict[str, Series]:
        """Stop the thread, take a final sample, and return every series."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise RuntimeError(f"sampler thread did not stop within {timeout_s}s")
            self.tick()
        return self.series()

    def series(self) -> dict[str, Series]:
        """A copy of the series recorded so far (safe while sampling runs)."""
        with self._lock:
            return {k: Series(list(s.t_s), list(s.values)) for k, s in self._series.items()}


def store_probe(reader: StoreStatsReader | None = None) -> Probe:
    """Object-store usage and cumulative spilled bytes, cluster-wide."""
    r = reader or StoreStatsReader()

    def probe() -> dict[str, float]:
        s = r.read()
        return {"object_store.bytes": s.used_bytes, "object_store.spilled_bytes": s.spilled_bytes}

    return probe


def local_ray_markers() -> list[str]:
    """Session directories of the Ray nodes running on this machine (empty if none).

    Every long-lived Ray process of a node (gcs_server, raylet, monitors) names
    its session directory on its command line; workers and agents are the
    raylet's children.
    """
    import ray

    if not ray.is_initialized():
        return []
    markers = []
    for node in ray.nodes():
        sock = str(node.get("RayletSocketName") or "")
        session = os.path.dirname(os.path.dirname(sock))
        if node.get("Alive") and session and os.path.isdir(session):
            markers.append(session)
    return sorted(set(markers))


class ResourceProbe:
    """CPU percent and RSS summed over the driver's tree and the marked Ray processes.

    CPU is the change in user+system CPU time over wall time since the previous
    call (100 = one core busy); the first call only primes and reports RSS. A
    process that joined since the previous call is charged all its CPU time
    (it was born in the interval); one that exited is lost for its last interval.
    RSS is a plain sum, so shared pages (the plasma store mapped by several
    processes) count once per process.
    """

    def __init__(
        self,
        root_pid: int | None = None,
        markers: Sequence[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root_pid = os.getpid() if root_pid is None else root_pid
        self.markers = tuple(markers)
        self.clock = clock
        # The process table, updated incrementally: only pids new since the
        # previous call are read (a full scan per tick would cost more CPU
        # than everything else the probe does).
        self._table: dict[int, tuple[psutil.Process, int, bool]] = {}  # pid -> (proc, ppid, marked)
        # CPU seconds by (pid, create_time), so a recycled pid is a new process.
        self._cpu: dict[tuple[int, float], float] = {}
        self._last: float | None = None  # clock at the previous call

    def _inspect(self, pid: int) -> tuple[psutil.Process, int, bool] | None:
        try:
            proc = psutil.Process(pid)
            ppid = proc.ppid()
            marked = bool(self.markers) and any(m in " ".join(proc.cmdline()) for m in self.markers)
        except (psutil.Error, OSError):
            return None  # gone already, or not readable: not ours to count
        return proc, ppid, marked

    def processes(self) -> list[psutil.Process]:
        """The driver's tree plus every marked process and its descendants."""
        pids = set(psutil.pids())
        for pid in self._table.keys() - pids:
            del self._table[pid]
        for pid in pids - self._table.keys():
            entry = self._inspect(pid)
            if entry is not None:
                self._table[pid] = entry
        children: dict[int, list[int]] = {}
        for pid, (_, ppid, _) in self._table.items():
            children.setdefault(ppid, []).append(pid)
        stack = [pid for pid, (_, _, marked) in self._table.items() if marked]
        stack.append(self.root_pid)
        seen: dict[int, psutil.Process] = {}
        while stack:
            pid = stack.pop()
            if pid not in seen and pid in self._table:
                seen[pid] = self._table[pid][0]
                stack.extend(children.get(pid, ()))
        return list(seen.values())

    def __call__(self) -> dict[str, float]:
        now = self.clock()
        rss = 0.0
        cpu_s = 0.0
        cpu: dict[tuple[int, float], float] = {}
        for proc in self.processes():
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    mem = proc.memory_info().rss
                    born = proc.create_time()
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue  # exited (or not ours to read) between listing and reading
            total = times.user + times.system
            rss += mem
            key = (proc.pid, born)
            prev = self._cpu.get(key)
            if prev is not None:
                cpu_s += max(0.0, total - prev)
            elif self._last is not None:
                cpu_s += total  # joined since the previous call: born then, or forked in
            cpu[key] = total
        self._cpu = cpu
        out = {"resources.rss_bytes": rss}
        if self._last is not None and now > self._last:
            out["resources.cpu_percent"] = 100.0 * cpu_s / (now - self._last)
        self._last = now
        return out
