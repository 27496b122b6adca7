"""Max throughput: what is the highest arrival rate this machine sustains, and how
quickly is an anomaly detected at half of it?

With ``measurement.search`` (on here) the runner searches for the highest
constant rate R it sustains between ``search_low`` and ``search_high``, holding
each probed rate for ``search_step_s`` seconds (no anomalies). Then one
detection probe runs the generator below (40 s, two anomalies of each kind)
at the constant rate R/2 (``search_detection_fraction``): its ``detection.*``
metrics are the result's, and the thresholds ask that every anomaly be found
and that detection lag the earliest possible one (the oracle) by at most one
window slide plus 250 ms at p99. With ``--set measurement.search=false`` it
runs the ramp once instead: 50k to 600k lines/s over 40 s, past the capacity of
a 2-core machine, where the ``backlog.batches`` and ``lateness.s`` series show
when the pipeline falls behind (and the same anomalies, at rising load).
"""

from harness.scenario import (
    GeneratorSpec,
    InjectionSpec,
    MeasurementSpec,
    ParserSpec,
    RateSpec,
    Scenario,
    ShardingSpec,
    WindowsSpec,
)

# Two anomalies of each kind, 4 s each, 5 s apart, after the detector's 5-window
# warm-up; the second of a kind gets a different key from the generator.
KINDS = ("error_rate", "latency", "user_activity")
INJECTIONS = tuple(
    InjectionSpec(KINDS[i % 3], start_s=10.0 + 5.0 * i, duration_s=4.0) for i in range(6)
)

SCENARIO = Scenario(
    name="max_throughput",
    description="searches the highest sustained rate; detection delay at half of it",
    generator=GeneratorSpec(
        rate=RateSpec.ramp(50_000, 600_000), duration_s=40.0, injections=INJECTIONS
    ),
    # The best measured settings for 2 cores (docs/performance.md).
    parser=ParserSpec(parallelism=2),
    sharding=ShardingSpec(strategy="by_service", shards=2),
    # The detector's defaults (5 warm-up windows) fire on the generator's anomalies
    # within a slide or two of their onset at these sizes.
    windows=WindowsSpec(size_s=10, slide_s=1),
    measurement=MeasurementSpec(
        warmup_s=2.0,
        replicates=1,
        search=True,
        search_low=50_000,
        search_high=1_000_000,
        search_step_s=5.0,
        search_detection_fraction=0.5,
    ),
    thresholds=(
        "integrity.ok == 1",
        "min(detection.recall) >= 1",
        # One window slide (1 s at event_speed 1) + 0.25 s: search.detection_target_s.
        "max(detection.delay_over_oracle_p99_s) <= 1.25",
    ),
)
