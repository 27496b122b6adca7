"""Smoke: does the whole pipeline work end to end, and does the harness measure it?

The CI scenario. 300k lines offered in 1 s, far more than a 2-core machine
absorbs (about 110k lines/s), so the measured throughput is the pipeline's
capacity, which the CI gate compares with the baseline, normalised by the
machine calibration; lateness and backlog grow accordingly and are recorded.
``event_speed=8`` spreads those lines over 8 s of event time, so 4 s windows
sliding by 1 s, a 3-window detector warm-up and one anomaly of each kind fit
in a replicate of about 3 s. Its thresholds use only machine-independent
metrics: every line is accounted for, every injected anomaly is detected, no
alert is false, and the object store stays bounded.
"""

from harness.scenario import (
    MeasurementSpec,
    RaySpec,
    Scenario,
)
from harness.workloads import saturating, short_run_pipeline

MiB = 1024 * 1024

SCENARIO = Scenario(
    name="smoke",
    description="CI smoke: 300k lines offered in 1 s (8 s of event time), one anomaly of each kind",
    # 8 s of event time in 1 s of schedule: enough windows for the detector to
    # learn a baseline and fire, in a run a few seconds long.
    generator=saturating(
        300_000,
        1.0,
        batch_lines=5_000,
        event_speed=8.0,
        anomalies_at=(0.5, 0.55, 0.6),
        anomaly_s=0.3,
    ),
    **short_run_pipeline(),
    ray=RaySpec(object_store_memory=256 * MiB),
    # 4 against 4 is the fewest replicates whose Mann-Whitney test can reach p < 0.05.
    measurement=MeasurementSpec(warmup_s=0.5, replicates=4),
    thresholds=(
        "integrity.ok == 1",
        "min(detection.recall) >= 1",
        "min(detection.precision) >= 1",
        "max(object_store.peak_bytes) < 134217728",  # 128 MiB: half the store
    ),
)
