"""Batch size: how much does Ray's fixed cost per batch weigh, and which batch size
balances throughput against latency and detection delay?

Every batch is one Ray object and one parse task, so small batches pay that
overhead more often, while large ones make each batch slower and hold more in
the object store. 400k lines/s offered for 2 s (more than a 2-core machine
parses) in batches of 5 000, 10 000, 20 000 and 40 000 lines; ``event_speed=4``
gives the run 8 s of event time, so 4 s windows, a 3-window detector warm-up and
one anomaly of each kind fit (at the same event times as in smoke). Compare
``throughput.lines_per_s``, ``latency.batch_p50_s`` / ``latency.batch_p99_s``,
``detection.ttd_p50_s`` and ``object_store.peak_bytes`` across the variants.
"""

from harness.scenario import (
    Matrix,
    MeasurementSpec,
    Scenario,
)
from harness.workloads import saturating, short_run_pipeline

BASE = Scenario(
    name="batch_size",
    description="lines per batch: 5k, 10k, 20k, 40k at an offered 400k lines/s for 2 s",
    generator=saturating(
        400_000,
        2.0,
        batch_lines=10_000,
        event_speed=4.0,
        anomalies_at=(1.0, 1.1, 1.2),
        anomaly_s=0.6,
    ),
    **short_run_pipeline(),
    measurement=MeasurementSpec(warmup_s=0.5, replicates=3),
    thresholds=("integrity.ok == 1", "min(detection.recall) >= 1"),
)

SCENARIO = Matrix(BASE, axes={"generator.batch_lines": [5_000, 10_000, 20_000, 40_000]})
