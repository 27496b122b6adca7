"""Object-store pressure: what happens when the work in flight does not fit in the
object store: does Ray spill, does throughput collapse, does anything leak?

An 80 MiB object store, uncompressed 50k-line batches (about 10 MB each) at
300k lines/s with 16 batches in flight, more than the store holds. Look at
``object_store.spilled_bytes``, ``object_store.peak_bytes``,
``object_store.leaked_bytes`` and ``throughput.lines_per_s``; integrity must hold.
"""

from harness.scenario import (
    GeneratorSpec,
    MeasurementSpec,
    RateSpec,
    RaySpec,
    Scenario,
)

MiB = 1024 * 1024

SCENARIO = Scenario(
    name="object_store_pressure",
    description="80 MiB object store, 50k-line uncompressed batches at 300k lines/s",
    generator=GeneratorSpec(
        rate=RateSpec.constant(300_000),
        duration_s=15.0,
        batch_lines=50_000,
        codec="none",
    ),
    ray=RaySpec(object_store_memory=80 * MiB),
    measurement=MeasurementSpec(warmup_s=2.0, replicates=3, max_in_flight=16),
    thresholds=(
        "integrity.ok == 1",
        "max(object_store.leaked_bytes) < 16777216",  # 16 MiB
    ),
)
