"""Parser parallelism: how does throughput scale with parse tasks in flight, and
where does adding more stop helping on this machine?

An offered load above what the whole pipeline sustains on 2 cores (600k lines/s
for 5 s; it absorbs about 400k at its best settings) with 1, 2, 4 and 8
parse tasks in flight (``measurement.max_in_flight`` follows: 4 x parallelism).
Shards: ``by_service`` x 2. Compare ``throughput.lines_per_s``, ``resources.cpu_busy_fraction`` and
``object_store.peak_bytes`` across the variants.
"""

from harness.scenario import (
    GeneratorSpec,
    Matrix,
    MeasurementSpec,
    RateSpec,
    Scenario,
    ShardingSpec,
)

BASE = Scenario(
    name="parser_parallelism",
    description="parse tasks in flight: 1, 2, 4, 8 at an offered 600k lines/s",
    generator=GeneratorSpec(rate=RateSpec.constant(600_000), duration_s=5.0),
    # Two shards, so that the single shard's serial aggregation is not what bounds
    # the parse tasks (by_service x 2 is the best measured sharding on 2 cores).
    sharding=ShardingSpec(strategy="by_service", shards=2),
    measurement=MeasurementSpec(warmup_s=1.0, replicates=3),
    thresholds=("integrity.ok == 1",),
)

SCENARIO = Matrix(BASE, axes={"parser.parallelism": [1, 2, 4, 8]})
