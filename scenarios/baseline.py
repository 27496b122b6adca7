"""Baseline: how does the pipeline perform at a load a 2-core machine sustains?

The default of ``make run``: 30 s at 60k lines/s (below the capacity of a
2-core machine, so latency and detection times are not queueing artefacts),
two services' shards, two parse tasks in flight, one anomaly of each kind,
five replicates (the fewest with which a comparison can call a 5 % change
significant; see docs/statistics.md). Its numbers are the reference point the
other scenarios are compared with (``logbench compare``).
"""

from harness.scenario import (
    GeneratorSpec,
    MeasurementSpec,
    ParserSpec,
    RateSpec,
    Scenario,
    ShardingSpec,
)
from harness.workloads import one_of_each

SCENARIO = Scenario(
    name="baseline",
    description="30 s at 60k lines/s, by_service x2, one anomaly of each kind",
    generator=GeneratorSpec(
        rate=RateSpec.constant(60_000),
        duration_s=30.0,
        injections=one_of_each((10.0, 15.0, 21.0), 5.0),
    ),
    parser=ParserSpec(parallelism=2),
    sharding=ShardingSpec(strategy="by_service", shards=2),
    measurement=MeasurementSpec(warmup_s=2.0, replicates=5),
    thresholds=(
        "integrity.ok == 1",
        "min(detection.recall) >= 1",
        "min(detection.precision) >= 1",
    ),
)
