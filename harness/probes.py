"""The probes of one replicate: object store and resources, relative to its start.

Object-store figures are differences from the reading taken just before the
replicate's pipeline was built, so objects left by an earlier replicate or by
another program do not count as this replicate's usage.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from harness.objstore import StoreStatsReader, StoreStatsUnavailable
from harness.samplers import (
    Probe,
    ResourceProbe,
    Sampler,
    Series,
    local_ray_markers,
    store_probe,
)


class ReplicateProbes:
    """Starts the samplers for a replicate and turns their series into metrics."""

    def __init__(
        self,
        interval_s: float,
        enabled: bool = True,
        clock: Callable[[], float] = time.time,
        address: str | None = None,
    ) -> None:
        self.enabled = enabled
        self.clock = clock
        self.reader = StoreStatsReader(address)
        start = self._settled_read()
        self.base_used = start.used_bytes if start else 0
        self.base_spilled = start.spilled_bytes if start else 0
        self.end_spilled: int | None = None
        self.sampler: Sampler | None = None
        if enabled:
            probes: dict[str, Probe] = {
                "store": store_probe(self.reader),
                "resources": ResourceProbe(markers=local_ray_markers(), clock=time.monotonic),
            }
            self.sampler = Sampler(probes, interval_s, clock)

    def _settled_read(self, wait_s: float = 2.0, step_s: float = 0.1, steady: int = 3) -> Any:
        """The store's stats once usage has stopped falling for ``steady`` readings in a
        row (at most ``wait_s``).

        Objects released before the replicate are freed asynchronously, in batches;
        read as the baseline while still going, their frees during the run would
        hide the run's own usage (a peak of 0 was measured that way). One reading
        that did not fall can sit between two batches of frees, hence ``steady``.
        """
        deadline = time.monotonic() + wait_s
        last = self._read()
        calm = 0
        while last is not None and time.monotonic() < deadline:
            time.sleep(step_s)
            now = self._read()
            if now is None:
                return last
            calm = calm + 1 if now.used_bytes >= last.used_bytes else 0
            last = now
            if calm >= steady:
                break
        return last

    def _read(self) -> Any:
        try:
            return self.reader.read()
        except StoreStatsUnavailable:
            return None

    def start(self, origin: float) -> None:
        if self.sampler is not None:
            self.sampler.start(origin)

    def stop(self) -> dict[str, dict[str, list[float]]]:
        """Stop sampling; series as JSON-able ``{"t_s": [...], "values": [...]}``."""
        end = self._read()
        self.end_spilled = end.spilled_bytes if end else None
        if self.sampler is None:
            return {}
        return {name: s.to_dict() for name, s in self.sampler.stop().items()}

    def leaked_bytes(self, wait_s: float = 3.0) -> int | None:
        """Store usage left after the pipeline is gone, waiting briefly for frees.

        Closes the store reader: call it last.
        """
        deadline = time.monotonic() + wait_s
        try:
            while True:
                now = self._read()
                if now is None:
                    return None
                left = max(0, now.used_bytes - self.base_used)
                if left == 0 or time.monotonic() >= deadline:
                    return left
                time.sleep(0.1)
        finally:
            self.reader.close()

    def summarize(self, series: dict[str, dict[str, list[float]]]) -> dict[str, float]:
        """Object-store and resource metrics of the replicate."""
        out: dict[str, float] = {}
        store = (
            Series.from_dict(series["object_store.bytes"])
            if series.get("object_store.bytes")
            else None
        )
        if store is not None and store.values:
            out["object_store.peak_bytes"] = max(0.0, max(store.values) - self.base_used)
            mean = sum(store.values) / len(store.values)
            out["object_store.mean_bytes"] = max(0.0, mean - self.base_used)
        else:
            out["object_store.peak_bytes"] = math.nan
            out["object_store.mean_bytes"] = math.nan
        if self.end_spilled is not None:
            out["object_store.spilled_bytes"] = float(max(0, self.end_spilled - self.base_spilled))
        cpu = series.get("resources.cpu_percent", {}).get("values", [])
        rss = series.get("resources.rss_bytes", {}).get("values", [])
        out["resources.cpu_percent"] = sum(cpu) / len(cpu) if cpu else math.nan
        cores = os.cpu_count() or 1
        out["resources.cpu_busy_fraction"] = (
            out["resources.cpu_percent"] / (100.0 * cores) if cpu else math.nan
        )
        out["resources.rss_peak_bytes"] = max(rss) if rss else math.nan
        if self.sampler is not None:
            out["harness.sampler_failures"] = float(sum(self.sampler.failures.values()))
            out["harness.sampler_cpu_s"] = self.sampler.overhead_s
            used = cpu_seconds(series.get("resources.cpu_percent", {}))
            out["harness.sampler_cpu_share"] = (
                self.sampler.overhead_s / used if used > 0 else math.nan
            )
        return out


def cpu_seconds(cpu: Mapping[str, Sequence[float]]) -> float:
    """CPU seconds used over a ``resources.cpu_percent`` series (trapezoid rule over
    its sample times; 100 % = one core); NaN with fewer than two samples."""
    t, v = list(cpu.get("t_s", [])), list(cpu.get("values", []))
    if len(t) < 2 or len(t) != len(v):
        return math.nan
    area = sum((t[i + 1] - t[i]) * (v[i] + v[i + 1]) / 2.0 for i in range(len(t) - 1))
    return area / 100.0
