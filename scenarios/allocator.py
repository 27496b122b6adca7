"""Allocator: what do the page faults of re-allocating every batch's buffers cost?

``ray.keep_freed_memory`` off (Ray's default workers: glibc returns freed memory to
the kernel, and the next batch faults its pages in again) and on (parse tasks and
shard actors keep freed memory for reuse; logpipe/allocator.py), above capacity
(600k lines/s offered for 5 s) at the baseline's pipeline settings: arrow parser,
2 parse tasks, ``by_service`` x 2. Compare ``throughput.lines_per_s`` and
``resources.cpu_us_per_line``; run it twice to see both orders. Each variant runs
at least 5 replicates and then as many as its own throughput noise says a 5 %
change needs, up to 12 (``measurement.detect_change_pct``).
"""

from harness.scenario import (
    GeneratorSpec,
    Matrix,
    MeasurementSpec,
    ParserSpec,
    RateSpec,
    Scenario,
    ShardingSpec,
)

BASE = Scenario(
    name="allocator",
    description="freed memory kept for reuse in parse and shard workers, or not",
    generator=GeneratorSpec(rate=RateSpec.constant(600_000), duration_s=5.0),
    parser=ParserSpec(parallelism=2),
    sharding=ShardingSpec(strategy="by_service", shards=2),
    measurement=MeasurementSpec(
        warmup_s=1.0, replicates=5, detect_change_pct=5.0, max_replicates=12
    ),
    thresholds=("integrity.ok == 1",),
)

SCENARIO = Matrix(BASE, axes={"ray.keep_freed_memory": [False, True]})
