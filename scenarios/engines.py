"""Engines: which parse engine is faster here, Ray tasks or Ray Data, on the same load?

The same saturating workload (300k lines/s offered for 4 s, more than 2 cores
parse) through ``parser.engine="tasks"`` (one Ray task per batch, the default)
and ``parser.engine="ray_data"`` (the parse stage as one streaming Ray Data
``map_batches``); aggregation, detection and alerting are the same actors. One
anomaly of each kind checks that detection works on both. ``logbench run`` prints
both variants side by side; docs/performance.md has the figures and the reason
the task engine is the default.
"""

from harness.scenario import (
    Matrix,
    MeasurementSpec,
    Scenario,
)
from harness.workloads import saturating, short_run_pipeline

BASE = Scenario(
    name="engines",
    description="parse engine: Ray tasks vs Ray Data, 300k lines/s offered for 4 s",
    generator=saturating(
        300_000,
        4.0,
        batch_lines=10_000,
        event_speed=4.0,
        anomalies_at=(2.0, 2.2, 2.4),
        anomaly_s=1.0,
    ),
    **short_run_pipeline(),
    measurement=MeasurementSpec(warmup_s=1.0, replicates=3),
    thresholds=("integrity.ok == 1", "min(detection.recall) >= 1"),
)

SCENARIO = Matrix(BASE, axes={"parser.engine": ["tasks", "ray_data"]})
