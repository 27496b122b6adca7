"""Task engine vs Ray Data engine: saturated throughput on the same batches, one process.

    .venv/bin/python bench/engines.py [--batches 40] [--batch-lines 10000] [--repeats 3]

Both engines run in one Ray session (2 CPUs, 256 MiB object store by default),
interleaved (tasks, ray_data, tasks, ray_data, ...) so that drifting background
load hits both alike. Each run submits every batch as fast as the in-flight bound
allows (closed loop: the pipeline is the bottleneck) and is timed from the first
submit to ``finish()``; engine start-up is excluded, as in the runner. Prints
lines/s per run, the per-pair ratio ray_data / tasks and its median, and the
load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harness.raysession import ray_session
from logpipe import rate
from logpipe.data_engine import DataPipeline
from logpipe.generate import GeneratorConfig, generate
from logpipe.pipeline import Pipeline, PipelineConfig

ENGINES: dict[str, type[Pipeline]] = {"tasks": Pipeline, "ray_data": DataPipeline}


def timed_run(engine: type[Pipeline], cfg: PipelineConfig, batches: list[Any]) -> float:
    """Lines per second from the first submit to ``finish()`` (integrity checked)."""
    lines = sum(b.meta.line_count for b in batches)
    with engine(cfg) as pipe:
        t0 = time.perf_counter()
        for b in batches:
            pipe.submit(b)
            pipe.poll(timeout_s=0)
        out = pipe.finish()
        elapsed = time.perf_counter() - t0
    if out.lines_emitted != lines or lines != out.lines_parsed + out.lines_rejected:
        raise SystemExit(f"integrity broken in {engine.__name__}: {out.lines_emitted} != {lines}")
    return lines / elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--batch-lines", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-in-flight", type=int, default=8)
    ap.add_argument("--num-cpus", type=int, default=2)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    lines = args.batches * args.batch_lines
    gen = GeneratorConfig(seed=1, batch_lines=args.batch_lines)
    batches = list(generate(gen, rate.Constant(lines / 10.0).line_offsets(10.0)).batches)
    cfg = PipelineConfig(sharding="by_service", n_shards=2, max_in_flight=args.max_in_flight)
    load_before = os.getloadavg()
    runs: dict[str, list[float]] = {name: [] for name in ENGINES}
    with ray_session(num_cpus=args.num_cpus, object_store_memory=256 * 1024 * 1024):
        for i in range(args.repeats):
            for name, engine in ENGINES.items():
                runs[name].append(timed_run(engine, cfg, batches))
                print(f"repeat {i} {name:9s} {runs[name][-1]:>12,.0f} lines/s", flush=True)
    ratios = [d / t for d, t in zip(runs["ray_data"], runs["tasks"])]
    result = {
        "lines": sum(b.meta.line_count for b in batches),
        "batches": len(batches),
        "lines_per_s": runs,
        "ratio_ray_data_over_tasks": ratios,
        "ratio_median": statistics.median(ratios),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "num_cpus": args.num_cpus,
    }
    print(f"ray_data / tasks per pair: {', '.join(f'{r:.2f}' for r in ratios)}")
    print(f"median ratio {result['ratio_median']:.2f}")
    print(f"load average before {load_before}, after {result['loadavg_after']}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
