"""Hot keys: when a few services, endpoints and users carry most of the traffic,
does keyed sharding pile the load onto one shard, and does round-robin fix it?

Very high Zipf skew (2.0 for users and endpoints, so the top endpoint and user
dominate), 4 shards, routed by service, by endpoint or round-robin. Compare
``shards.imbalance`` with ``throughput.lines_per_s`` and ``latency.batch_p99_s``:
round-robin balances rows but every shard then sees every key.
"""

from harness.scenario import (
    GeneratorSpec,
    InjectionSpec,
    Matrix,
    MeasurementSpec,
    RateSpec,
    Scenario,
    ShardingSpec,
)

BASE = Scenario(
    name="hot_keys",
    description="skew 2.0, 4 shards: by_service vs by_endpoint vs round_robin",
    generator=GeneratorSpec(
        rate=RateSpec.constant(100_000),
        duration_s=15.0,
        user_skew=2.0,
        endpoint_skew=2.0,
        injections=(InjectionSpec("latency", start_s=7.0, duration_s=5.0),),
    ),
    sharding=ShardingSpec(strategy="by_service", shards=4),
    measurement=MeasurementSpec(warmup_s=2.0, replicates=3),
    thresholds=("integrity.ok == 1",),
)

SCENARIO = Matrix(
    BASE,
    axes={"sharding.strategy": ["by_service", "by_endpoint", "round_robin"]},
)
