"""Max throughput: what is the highest arrival rate this machine sustains?

With ``measurement.search`` (on here) the runner searches for the highest
constant rate it sustains between ``search_low`` and ``search_high``, holding
each probed rate for ``search_step_s`` seconds. With
``--set measurement.search=false`` it runs the ramp once instead: 50k to 600k
lines/s over 40 s, past the capacity of a 2-core machine, where the
``backlog.batches`` and ``lateness.s`` series show when the pipeline falls behind.
"""

from harness.scenario import GeneratorSpec, MeasurementSpec, RateSpec, Scenario

SCENARIO = Scenario(
    name="max_throughput",
    description="ramp 50k -> 600k lines/s; searches the highest sustained rate",
    generator=GeneratorSpec(rate=RateSpec.ramp(50_000, 600_000), duration_s=40.0),
    measurement=MeasurementSpec(
        warmup_s=2.0,
        replicates=1,
        search=True,
        search_low=50_000,
        search_high=1_000_000,
        search_step_s=5.0,
    ),
    thresholds=("integrity.ok == 1",),
)
