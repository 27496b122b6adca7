"""Scenario settings mapped onto the pipeline's configuration."""

from __future__ import annotations

from typing import Any

from harness.pipeline_config import pipeline_config
from harness.scenario import GeneratorSpec, RateSpec, RaySpec, Scenario, ShardingSpec


def scenario(**kw: Any) -> Scenario:
    generator = GeneratorSpec(RateSpec.constant(1_000), duration_s=5.0)
    return Scenario(name="t", generator=generator, **kw)


def test_sharding_and_spread_reach_the_pipeline() -> None:
    cfg = pipeline_config(scenario(sharding=ShardingSpec("by_service", 3, spread=True)))
    assert (cfg.sharding, cfg.n_shards, cfg.spread_shards) == ("by_service", 3, True)


def test_state_dir_defaults_to_a_driver_temp_dir_and_passes_a_shared_path_through() -> None:
    assert pipeline_config(scenario()).state_dir is None
    shared = scenario(ray=RaySpec(address="auto", state_dir="/mnt/shared/logbench"))
    assert pipeline_config(shared).state_dir == "/mnt/shared/logbench"
    overridden = scenario().with_overrides(["ray.state_dir=/nfs/state"])
    assert pipeline_config(overridden).state_dir == "/nfs/state"
