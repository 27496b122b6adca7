"""Scenario settings mapped onto the pipeline's configuration."""

from __future__ import annotations

from typing import Any

import pytest

from harness.pipeline_config import check_state_dir, pipeline_config
from harness.scenario import (
    GeneratorSpec,
    RateSpec,
    RaySpec,
    Scenario,
    ScenarioError,
    ShardingSpec,
)


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


def test_state_dir_is_checked_before_anything_runs(tmp_path) -> None:
    check_state_dir(scenario())  # the default needs no check
    check_state_dir(scenario(ray=RaySpec(state_dir=str(tmp_path))))
    missing = scenario(ray=RaySpec(state_dir=str(tmp_path / "not-mounted")))
    with pytest.raises(ScenarioError, match=r"^ray\.state_dir: no such directory"):
        check_state_dir(missing)


def test_cli_refuses_a_missing_state_dir_with_one_line_and_writes_nothing(tmp_path, capsys) -> None:
    from harness.cli import main

    out = tmp_path / "runs"
    code = main(
        [
            "run",
            "scenarios/smoke.py",
            "--set",
            f"ray.state_dir={tmp_path / 'nope'}",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "ray.state_dir: no such directory" in err[0]
    assert not out.exists()
