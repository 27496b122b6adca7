"""Burst: how much backlog and detection delay does a burst above capacity cause,
and how fast does the pipeline recover once it passes?

60k lines/s with 3 s bursts to 240k lines/s every 10 s (at 8, 18 and 28 s). A
latency anomaly between bursts and an error-rate anomaly inside the second burst
show whether time-to-detect grows with the backlog. Look at
``backlog.max_batches``, ``lateness.p99_s``, ``detection.ttd_p50_s`` and the
``backlog.batches`` series.
"""

from harness.scenario import GeneratorSpec, InjectionSpec, MeasurementSpec, RateSpec, Scenario

SCENARIO = Scenario(
    name="burst",
    description="60k lines/s with 3 s bursts to 240k lines/s every 10 s",
    generator=GeneratorSpec(
        rate=RateSpec.burst(60_000, 240_000, start_s=8.0, duration_s=3.0, every_s=10.0),
        duration_s=30.0,
        injections=(
            InjectionSpec("latency", start_s=12.0, duration_s=4.0),
            InjectionSpec("error_rate", start_s=18.0, duration_s=4.0),
        ),
    ),
    measurement=MeasurementSpec(warmup_s=2.0, replicates=3),
    thresholds=("integrity.ok == 1", "min(detection.recall) >= 1"),
)
