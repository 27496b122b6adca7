"""The groups of scenario settings: each bad field is named by its dotted path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from factories import fails

from harness.specs import (
    GeneratorSpec,
    InjectionSpec,
    MeasurementSpec,
    ParserSpec,
    RateSpec,
    RaySpec,
    ShardingSpec,
    TestKnobs,
    WindowsSpec,
)

MiB = 1024 * 1024


def gen(**kw: Any) -> GeneratorSpec:
    kw.setdefault("rate", RateSpec.constant(1000))
    kw.setdefault("duration_s", 10.0)
    return GeneratorSpec(**kw)


BAD_FIELDS: list[tuple[str, Callable[[], Any]]] = [
    ("generator.rate.rate", lambda: RateSpec.constant(-1)),
    ("generator.rate.rate", lambda: RateSpec.constant(float("nan"))),
    ("generator.rate.rate", lambda: RateSpec.constant("fast")),  # type: ignore[arg-type]
    ("generator.rate", lambda: RateSpec.constant(0)),
    ("generator.rate.kind", lambda: RateSpec(kind="sine", rate=1.0)),
    ("generator.rate.rate", lambda: RateSpec(kind="ramp", rate=1.0, start_rate=1, end_rate=2)),
    ("generator.rate.end_rate", lambda: RateSpec(kind="ramp", start_rate=1.0)),
    ("generator.rate", lambda: RateSpec.ramp(0, 0)),
    ("generator.rate.steps", lambda: RateSpec.step([])),
    ("generator.rate.steps[1]", lambda: RateSpec.step([(1, 5), (2,)])),  # type: ignore[list-item]
    ("generator.rate.steps[0].duration_s", lambda: RateSpec.step([(0, 5)])),
    ("generator.rate.steps[0].rate", lambda: RateSpec.step([(1, -5)])),
    ("generator.rate.burst_rate", lambda: RateSpec.burst(100, 50, 1, 1)),
    ("generator.rate.burst_every_s", lambda: RateSpec.burst(1, 5, 1, 2, every_s=2)),
    ("generator.rate.burst_duration_s", lambda: RateSpec.burst(1, 5, 1, 0)),
    ("generator.rate.burst_start_s", lambda: gen(rate=RateSpec.burst(1, 5, 10, 1))),
    ("generator.rate.steps[1]", lambda: gen(rate=RateSpec.step([(10, 5), (1, 2)]))),
    ("generator.rate", lambda: gen(rate={"kind": "constant", "rate": 5})),
    ("generator.duration_s", lambda: gen(duration_s=0)),
    ("generator.batch_lines", lambda: gen(batch_lines=0)),
    ("generator.batch_lines", lambda: gen(batch_lines=2.5)),
    ("generator.json_fraction", lambda: gen(json_fraction=1.5)),
    ("generator.codec", lambda: gen(codec="lz4")),
    ("generator.n_services", lambda: gen(n_services=1000)),
    ("generator.n_users", lambda: gen(n_users=0)),
    ("generator.user_skew", lambda: gen(user_skew=-0.1)),
    ("generator.error_5xx_rate", lambda: gen(error_5xx_rate=2)),
    ("generator.event_speed", lambda: gen(event_speed=0)),
    ("generator.seed", lambda: gen(seed=-1)),
    ("generator.replay", lambda: gen(replay="")),
    ("generator.replay_format", lambda: gen(replay_format="xml")),
    ("generator.injections[0]", lambda: gen(injections=[InjectionSpec("latency", 8, 5)])),
    ("generator.injections[1]", lambda: gen(injections=[InjectionSpec("latency", 1, 1), "x"])),
    ("generator.injections[].kind", lambda: InjectionSpec("cpu", 1, 1)),
    ("generator.injections[].start_s", lambda: InjectionSpec("latency", -1, 1)),
    ("generator.injections[].duration_s", lambda: InjectionSpec("latency", 1, 0)),
    ("generator.injections[].intensity", lambda: InjectionSpec("error_rate", 1, 1, None, 1.5)),
    ("generator.injections[].intensity", lambda: InjectionSpec("latency", 1, 1, None, 0.5)),
    ("generator.injections[].key", lambda: InjectionSpec("user_activity", 1, 1, "a b")),
    ("parser.strategy", lambda: ParserSpec(strategy="pandas")),
    ("parser.engine", lambda: ParserSpec(engine="spark")),
    ("parser.parallelism", lambda: ParserSpec(parallelism=0)),
    ("parser.cpus_per_task", lambda: ParserSpec(cpus_per_task=0)),
    ("parser.max_dead_letters", lambda: ParserSpec(max_dead_letters=-1)),
    ("sharding.shards", lambda: ShardingSpec(strategy="by_service", shards=0)),
    ("sharding.shards", lambda: ShardingSpec(strategy="by_service", shards=True)),
    ("sharding.strategy", lambda: ShardingSpec(strategy="by_user")),
    ("sharding.shards", lambda: ShardingSpec(strategy="single", shards=4)),
    ("sharding.spread", lambda: ShardingSpec(spread="yes")),  # type: ignore[arg-type]
    ("windows.size_s", lambda: WindowsSpec(size_s=10, slide_s=3)),
    ("windows.slide_s", lambda: WindowsSpec(size_s=10, slide_s=0.5)),  # type: ignore[arg-type]
    ("windows.slide_s", lambda: WindowsSpec(size_s=10, slide_s=0)),
    ("ray.num_cpus", lambda: RaySpec(num_cpus=0)),
    ("ray.object_store_memory", lambda: RaySpec(object_store_memory=10 * MiB)),
    ("ray.state_dir", lambda: RaySpec(state_dir="relative/state")),
    ("ray.address", lambda: RaySpec(address="")),
    ("ray.free_objects_period_ms", lambda: RaySpec(free_objects_period_ms=-1)),
    ("ray.free_objects_period_ms", lambda: RaySpec(free_objects_period_ms=0.5)),  # type: ignore[arg-type]
    ("measurement.warmup_s", lambda: MeasurementSpec(warmup_s=-1)),
    ("measurement.replicates", lambda: MeasurementSpec(replicates=0)),
    ("measurement.sample_interval_s", lambda: MeasurementSpec(sample_interval_s=0)),
    ("measurement.max_in_flight", lambda: MeasurementSpec(max_in_flight=0)),
    ("measurement.search_low", lambda: MeasurementSpec(search=True, search_high=10)),
    ("measurement.search_high", lambda: MeasurementSpec(search=True, search_low=5, search_high=5)),
    ("measurement.search_detection_fraction", lambda: MeasurementSpec(search_detection_fraction=0)),
    ("measurement.search_detection_fraction", lambda: MeasurementSpec(search_detection_fraction=2)),
    (
        "measurement.search_detection_fraction",
        lambda: MeasurementSpec(search_detection_fraction="half"),  # type: ignore[arg-type]
    ),
    ("testing.slowdown_us_per_line", lambda: TestKnobs(slowdown_us_per_line=-1)),
    ("testing.stall_during_anomaly", lambda: TestKnobs(stall_during_anomaly=True)),
]


@pytest.mark.parametrize(
    ("path", "build"), BAD_FIELDS, ids=[f"{i}-{p}" for i, (p, _) in enumerate(BAD_FIELDS)]
)
def test_bad_field_names_its_path(path: str, build: Callable[[], Any]) -> None:
    fails(build, path)


def test_burst_rate_is_the_increment_over_base() -> None:
    rate = RateSpec.burst(60_000, 240_000, start_s=8, duration_s=3, every_s=10)
    assert rate.burst_rate == 180_000 and rate.peak_rate() == 240_000


def test_replay_drops_injections() -> None:
    g = gen(replay="access.log", injections=[InjectionSpec("latency", 1, 1)])
    assert g.injections == ()
