"""Freed memory kept or returned: page faults and CPU time per process group.

    .venv/bin/python bench/page_faults.py [--lines 1000000] [--batch-lines 40000] [--rounds 2]

Runs the peers payload flat out (as ``logbench peers`` does: arrow parser, 4 parse
tasks, ``by_service`` x 2, 16 batches in flight) through one set of actors per
setting of ``keep_freed_memory``, the two interleaved (off, on, off, on, ...) in one
Ray session, three replicates each time, the first of them a warm-up. For every
replicate it reads ``/proc/<pid>/stat`` of the driver and every Ray worker before
and after: minor page faults and CPU seconds, summed per process title (parse
workers show as ``ray::IDLE`` or ``ray::parse_and_route``), and prints lines/s from
the first submit to ``finish()``. Linux only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import psutil

from harness.payload import build_payload
from harness.peers import best_scenario
from harness.pipeline_config import pipeline_config
from harness.raysession import ray_session
from logpipe.actors import PipelineActors
from logpipe.pipeline import Pipeline, PipelineConfig

TICKS = os.sysconf("SC_CLK_TCK")


def group_of(title: str) -> str:
    if title in ("ray::IDLE",) or title.startswith("ray::parse_and_route"):
        return "parse workers"
    if title.startswith("ray::ShardActor"):
        return "shards"
    return "driver" if title == "driver" else "other Ray workers"


def snapshot() -> dict[int, tuple[str, int, float]]:
    """pid -> (group, minor faults, CPU seconds) of the driver and every Ray worker."""
    out = {}
    for proc in psutil.process_iter(["pid", "cmdline"]):
        title = (proc.info["cmdline"] or [""])[0]
        if proc.pid == os.getpid():
            title = "driver"
        elif not title.startswith("ray::"):
            continue
        try:
            with open(f"/proc/{proc.pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[proc.pid] = (
            group_of(title),
            int(fields[7]),
            (int(fields[11]) + int(fields[12])) / TICKS,
        )
    return out


def replicate(cfg: PipelineConfig, actors: PipelineActors, batches: list) -> tuple[float, dict]:
    lines = sum(b.meta.line_count for b in batches)
    with Pipeline(cfg, actors=actors) as pipe:
        pipe.warm_up()
        before, t0 = snapshot(), time.perf_counter()
        for batch in batches:
            pipe.submit(batch)
            pipe.poll(0)
        pipe.finish()
        wall, after = time.perf_counter() - t0, snapshot()
    groups: dict[str, list[float]] = {}
    for pid, (group, faults, cpu) in after.items():
        if pid in before:
            acc = groups.setdefault(group, [0.0, 0.0])
            acc[0] += faults - before[pid][1]
            acc[1] += cpu - before[pid][2]
    return lines / wall, groups


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--batch-lines", type=int, default=40_000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    scn = best_scenario(args.lines, 1, args.batch_lines)
    batches = build_payload(scn.generator).batches
    base = pipeline_config(scn)
    with ray_session(2, 256 * 1024 * 1024):
        for rnd in range(args.rounds):
            for keep in (False, True):
                cfg = replace(base, keep_freed_memory=keep)
                with PipelineActors(cfg) as actors:
                    actors.wait_ready()
                    for rep in range(3):
                        rate, groups = replicate(cfg, actors, batches)
                        tag = "warm-up" if rep == 0 else f"rep {rep}"
                        parts = ", ".join(
                            f"{g} {v[0] / 1e3:.0f}k faults {v[1]:.2f} CPU-s"
                            for g, v in sorted(groups.items())
                            if v[1] >= 0.05
                        )
                        head = f"round {rnd} keep_freed_memory={keep} {tag}"
                        print(f"{head}: {rate:,.0f} lines/s; {parts}", flush=True)


if __name__ == "__main__":
    main()
