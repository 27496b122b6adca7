"""Validation: does the harness see a real change, invent none, and time stalls right?

Small, fast scenarios with which ``logbench validate`` checks the harness.

Not benchmarks: each variant is the smallest workload that shows one known effect.

- ``aa``: the smoke scenario's settings (300k lines offered in 1 s, above
  capacity, one anomaly of each kind); run many times and compared with itself
  (A/A), and its throughput noise.
- ``saturated``: the baseline's pipeline settings driven far above capacity for a
  short burst, so throughput measures the pipeline's cost per line (the known
  slowdown, the observer effect and the baseline-like noise figure).
- ``stall``: far below capacity, batches of 1.5 s of events and 1 s panes; the
  anomaly starts at 3.2 s, just after the batch boundary at 3.0 s, so the first
  batch overlapping it, (3.0, 4.5], closes the anomalous pane [3, 4) by itself:
  its aggregation is the detection, and a stall of that batch
  (``testing.aggregation_stall_s``) must add itself to the time-to-detect.

``allow_test_knobs`` is set so that ``logbench validate`` may switch the
test-only knobs on with overrides; every variant leaves them off.
"""

from harness.scenario import (
    GeneratorSpec,
    Matrix,
    MeasurementSpec,
    RateSpec,
    Scenario,
    WindowsSpec,
)
from harness.workloads import one_of_each

AA = Scenario(
    name="validation",
    description="harness validation workloads (logbench validate); not a benchmark",
    generator=GeneratorSpec(
        rate=RateSpec.constant(10_000),
        duration_s=5.0,
        batch_lines=1_000,
        seed=1,
        injections=one_of_each((2.0, 2.0, 2.5), 2.5),
    ),
    windows=WindowsSpec(size_s=2, slide_s=1),
    detector={"warmup_windows": 1},
    measurement=MeasurementSpec(warmup_s=0.5, replicates=1),
    allow_test_knobs=True,
)

# The smoke scenario's workload and pipeline settings (scenarios/smoke.py; a test
# holds the two equal), so that the A/A check and the smoke noise figure are about
# the scenario CI gates with.
SMOKE = {
    "generator.rate.rate": 300_000,
    "generator.duration_s": 1.0,
    "generator.batch_lines": 5_000,
    "generator.event_speed": 8.0,
    "generator.injections": [
        {"kind": i.kind, "start_s": i.start_s, "duration_s": i.duration_s}
        for i in one_of_each((0.5, 0.55, 0.6), 0.3)
    ],
    "parser.parallelism": 2,
    "sharding.strategy": "by_service",
    "sharding.shards": 2,
    "windows.size_s": 4,
    "detector": {"warmup_windows": 3},
    "ray.object_store_memory": 256 * 1024 * 1024,
}

SCENARIO = Matrix(
    AA,
    variants={
        "aa": SMOKE,
        "saturated": {
            "generator.rate.rate": 400_000,
            # 800k lines, about 2.5 s of work at capacity: with 320k lines (1 s of
            # work) one quiet-machine run measured a 14 % throughput CV, as much as
            # the 20 % slowdown it had to see.
            "generator.duration_s": 2.0,
            "generator.batch_lines": 5_000,
            "generator.injections": [],
            "windows.size_s": 10,
            "detector": {},
            "measurement.warmup_s": 0.2,
            # The baseline scenario's pipeline settings.
            "parser.parallelism": 2,
            "sharding.strategy": "by_service",
            "sharding.shards": 2,
        },
        "stall": {
            "generator.rate.rate": 5_000,
            "generator.duration_s": 6.0,
            "generator.batch_lines": 7_500,
            "generator.injections": [
                {"kind": "error_rate", "start_s": 3.2, "duration_s": 1.8},
            ],
            "windows.size_s": 1,
            "detector": {"warmup_windows": 2},
        },
    },
)
