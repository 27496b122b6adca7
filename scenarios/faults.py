"""Faults: does the pipeline lose, duplicate or miscount anything when its parts
die mid-run, and how long does it take to recover?

One variant per fault, on the same 10 s stream at 40k lines/s with two anomalies:
``parse_workers`` (the workers running parse tasks SIGKILLed three times),
``shard`` (an aggregator shard killed; it restarts from its checkpoint and the
driver replays the batches since), ``detector`` and ``alerting`` (killed and
restarted; no alert lost or duplicated), ``object_store`` (an 80 MiB store
under 10 MB uncompressed batches, 16 in flight: spilling, no loss) and
``node_loss`` (a simulated 3-node cluster loses a worker node). Every replicate
records its faults with ``recovery_s``; ``integrity.ok`` must hold throughout.
"""

from harness.scenario import (
    GeneratorSpec,
    InjectionSpec,
    Matrix,
    MeasurementSpec,
    RateSpec,
    RaySpec,
    Scenario,
    ShardingSpec,
    WindowsSpec,
)

MiB = 1024 * 1024

BASE = Scenario(
    name="faults",
    description="kill parse workers, a shard, the detector, alerting; store pressure; node loss",
    generator=GeneratorSpec(
        rate=RateSpec.constant(40_000),
        duration_s=10.0,
        batch_lines=4_000,
        seed=3,
        injections=(
            InjectionSpec("error_rate", start_s=5.0, duration_s=3.0),
            InjectionSpec("latency", start_s=5.5, duration_s=3.0),
        ),
    ),
    sharding=ShardingSpec(strategy="by_service", shards=2),
    windows=WindowsSpec(size_s=4, slide_s=1),
    detector={"warmup_windows": 3},
    ray=RaySpec(object_store_memory=256 * MiB),
    measurement=MeasurementSpec(warmup_s=1.0, replicates=2),
    thresholds=("integrity.ok == 1",),
)


def _kills(kind: str, *times: float, target: int = 0) -> list[dict[str, object]]:
    return [{"kind": kind, "at_s": t, "target": target} for t in times]


SCENARIO = Matrix(
    BASE,
    variants={
        "parse_workers": {"faults": _kills("kill_parse_worker", 2.5, 4.5, 6.5)},
        "shard": {"faults": _kills("kill_shard", 4.0, target=1)},
        "detector": {"faults": _kills("kill_detector", 5.5)},
        "alerting": {"faults": _kills("kill_alerting", 6.5)},
        "object_store": {
            "ray.object_store_memory": 80 * MiB,
            "generator.batch_lines": 50_000,
            "generator.codec": "none",
            "generator.rate": {"kind": "constant", "rate": 200_000},
            "measurement.max_in_flight": 16,
        },
        "node_loss": {
            "ray.simulated_nodes": 3,
            "sharding.spread": True,
            "faults": _kills("remove_node", 4.0, target=0),
        },
    },
)
