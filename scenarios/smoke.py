"""Smoke: does the whole pipeline work end to end, and does the harness measure it?

The CI scenario. About 8 s of load at 60k lines/s with one anomaly of each kind
inside the measured window; it must finish well under 30 s on 2 cores, Ray start
included. Its thresholds use only machine-independent metrics: every line is
accounted for, every injected anomaly is detected, no alert is false, and the
object store stays bounded.
"""

from harness.scenario import (
    GeneratorSpec,
    InjectionSpec,
    MeasurementSpec,
    RateSpec,
    RaySpec,
    Scenario,
    WindowsSpec,
)

MiB = 1024 * 1024

SCENARIO = Scenario(
    name="smoke",
    description="CI smoke test: 8 s at 60k lines/s, one anomaly of each kind",
    generator=GeneratorSpec(
        rate=RateSpec.constant(60_000),
        duration_s=8.0,
        batch_lines=5_000,
        seed=1,
        injections=(
            InjectionSpec("error_rate", start_s=3.5, duration_s=3.0),
            InjectionSpec("latency", start_s=4.0, duration_s=3.0),
            InjectionSpec("user_activity", start_s=4.5, duration_s=3.0),
        ),
    ),
    # Short windows and a short detector warm-up so that alerts can fire a few
    # seconds into an 8 s run.
    windows=WindowsSpec(size_s=4, slide_s=1),
    detector={"warmup_windows": 3},
    ray=RaySpec(object_store_memory=256 * MiB),
    measurement=MeasurementSpec(warmup_s=1.0, replicates=3),
    thresholds=(
        "integrity.ok == 1",
        "min(detection.recall) >= 1",
        "min(detection.precision) >= 1",
        "max(object_store.peak_bytes) < 134217728",  # 128 MiB: half the store
    ),
)
