"""Fault injection during a replicate: kill parse workers, shards, the detector,
the alerting actor, or remove a node of a simulated cluster; measure recovery.

A fault is *recovered* once every batch that had entered the pipeline when it
struck is aggregated by every shard and, for an actor, once the actor answers
again (a probe call queued at the fault). ``recovery_s`` is that time minus
``at_s``; both are seconds after the replicate's origin. Faults act only on Ray
processes started by this driver (descendants of this process): a local Ray or a
simulated ``ray.cluster_utils.Cluster``, never an attached cluster's.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psutil

FAULT_KINDS = (
    "kill_parse_worker",
    "kill_shard",
    "kill_detector",
    "kill_alerting",
    "remove_node",
)
# A Ray worker retitles itself ``ray::<function>`` while it runs a task; parse
# tasks run ``logpipe.parse.parse_and_route`` (psutil's name() is cut to 15 chars).
PARSE_WORKER_TITLE = "ray::parse_and_route"


def ray_processes(root_pid: int | None = None) -> list[psutil.Process]:
    """Ray processes (gcs_server, raylet, ``ray::`` workers...) descending from ``root_pid``."""
    try:
        root = psutil.Process(root_pid or os.getpid())
        children = root.children(recursive=True)
    except psutil.Error:
        return []
    out = []
    for proc in children:
        try:
            name = proc.name()
            title = " ".join(proc.cmdline()[:1])
        except psutil.Error:
            continue
        if name in ("raylet", "gcs_server") or "ray" in name or title.startswith("ray::"):
            out.append(proc)
    return out


def kill_parse_workers(root_pid: int | None = None) -> int:
    """SIGKILL every worker currently running a parse task; returns how many."""
    killed = 0
    for proc in ray_processes(root_pid):
        try:
            if " ".join(proc.cmdline()[:1]).startswith(PARSE_WORKER_TITLE):
                proc.send_signal(signal.SIGKILL)
                killed += 1
        except psutil.Error:
            continue
    return killed


@dataclass
class FaultEvent:
    """One planned fault; ``target`` is the shard index or worker-node index."""

    kind: str
    at_s: float
    target: int = 0


@dataclass
class _Active:
    event: FaultEvent
    fired_s: float
    mark: int
    probe: Any
    detail: str


class FaultInjector:
    """Fires planned faults from the runner's emission loop and times recovery.

    ``tick(pipe, t_s)`` is called often with ``t_s`` seconds after the origin;
    ``cluster`` (a ``ray.cluster_utils.Cluster``) is needed for ``remove_node``.
    """

    def __init__(
        self,
        plan: Sequence[Any],
        cluster: Any = None,
        kill_parse: Callable[[], int] = kill_parse_workers,
    ) -> None:
        self.plan = sorted(
            (FaultEvent(str(f.kind), float(f.at_s), int(getattr(f, "target", 0))) for f in plan),
            key=lambda e: e.at_s,
        )
        self.cluster = cluster
        self.kill_parse = kill_parse
        self._next = 0
        self._active: list[_Active] = []
        self.records: list[dict[str, Any]] = []

    def tick(self, pipe: Any, t_s: float) -> None:
        while self._next < len(self.plan) and self.plan[self._next].at_s <= t_s:
            self._fire(pipe, self.plan[self._next], t_s)
            self._next += 1
        self._check(pipe, t_s)

    def finish(self, pipe: Any, t_s: float) -> list[dict[str, Any]]:
        """At the end of the replicate: settle recoveries; faults never fired are dropped."""
        self._check(pipe, t_s, final=True)
        return list(self.records)

    def _fire(self, pipe: Any, event: FaultEvent, t_s: float) -> None:
        import ray

        probe, detail = None, ""
        if event.kind == "kill_parse_worker":
            detail = f"{self.kill_parse()} worker(s)"
        elif event.kind == "kill_shard":
            actor = pipe.shards[event.target % len(pipe.shards)]
            ray.kill(actor, no_restart=False)
            probe, detail = actor.status.remote(), f"shard {event.target % len(pipe.shards)}"
        elif event.kind == "kill_detector":
            ray.kill(pipe.detector, no_restart=False)
            probe, detail = pipe.detector.stats.remote(), "detector"
        elif event.kind == "kill_alerting":
            ray.kill(pipe.alerting, no_restart=False)
            probe, detail = pipe.alerting.count.remote(), "alerting"
        elif event.kind == "remove_node":
            detail = self._remove_node(event.target)
        else:
            raise ValueError(f"faults: unknown kind {event.kind!r}")
        self._active.append(_Active(event, t_s, pipe.submitted_through, probe, detail))

    def _remove_node(self, target: int) -> str:
        if self.cluster is None:
            raise RuntimeError(
                "faults: remove_node needs a simulated cluster (ray.simulated_nodes)"
            )
        workers = [n for n in self.cluster.list_all_nodes() if n is not self.cluster.head_node]
        if not workers:
            return "no worker node left"
        node = workers[target % len(workers)]
        self.cluster.remove_node(node, allow_graceful=False)
        return f"worker node {target % len(workers)}"

    def _check(self, pipe: Any, t_s: float, final: bool = False) -> None:
        import ray

        still = []
        for act in self._active:
            caught_up = pipe.done_through >= act.mark
            answered = act.probe is None or bool(ray.wait([act.probe], timeout=0)[0])
            if not (final or (caught_up and answered)):
                still.append(act)
                continue
            self.records.append(
                {
                    "kind": act.event.kind,
                    "target": act.detail,
                    "at_s": act.fired_s,
                    "recovered_s": t_s,
                    "recovery_s": max(t_s - act.fired_s, 0.0),
                }
            )
        self._active = still
