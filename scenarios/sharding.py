"""Sharding: which routing strategy and shard count aggregate fastest, and how
evenly, at low and at high key skew?

Every strategy x 1/2/4 shards (``single`` only with 1) x user/endpoint Zipf skew
0.8 (flat) and 1.5 (hot keys): 20 variants, e.g. ``by_service-4-skew1.5``. Look at
``throughput.lines_per_s``, ``shards.imbalance`` and ``latency.batch_p99_s``.
Roughly 15 minutes for the whole matrix on 2 cores.
"""

from harness.scenario import (
    GeneratorSpec,
    InjectionSpec,
    Matrix,
    MeasurementSpec,
    RateSpec,
    Scenario,
)

SKEW = ("generator.user_skew", "generator.endpoint_skew")

BASE = Scenario(
    name="sharding",
    description="routing strategy x shard count x key skew",
    generator=GeneratorSpec(
        rate=RateSpec.constant(100_000),
        duration_s=12.0,
        injections=(InjectionSpec("error_rate", start_s=6.0, duration_s=4.0),),
    ),
    measurement=MeasurementSpec(warmup_s=2.0, replicates=3),
    thresholds=("integrity.ok == 1",),
)

SCENARIO = Matrix(
    BASE,
    axes={
        "sharding.strategy": ["single", "by_service", "by_endpoint", "round_robin"],
        "sharding.shards": [1, 2, 4],
        SKEW: [0.8, 1.5],
    },
    labels={"sharding.shards": "", SKEW: "skew"},
    where=lambda v: v["sharding.strategy"] != "single" or v["sharding.shards"] == 1,
)
