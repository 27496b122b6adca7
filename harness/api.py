"""The library API behind the CLI and the pytest plugin: load, run, persist.

Both front ends are thin layers over these functions; neither reaches into the
other's internals.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.payload import check_replay
from harness.pipeline_config import check_state_dir
from harness.results import RunResult, write_result
from harness.scenario import Matrix, Scenario, ScenarioError, load_scenario_module

if TYPE_CHECKING:
    from harness.reporter import Reporter

DEFAULT_OUT = Path("results/runs")


@dataclass(frozen=True)
class Planned:
    """One variant ready to run."""

    module: str
    variant: str | None
    scenario: Scenario


def plan(
    path: str | Path,
    variant: str | None = None,
    overrides: list[str] | None = None,
    replicates: int | None = None,
    replay: str | None = None,
    replay_format: str | None = None,
) -> list[Planned]:
    """Load a scenario module and resolve the variants to run, overrides applied.

    Raises :class:`ScenarioError` (one line, naming the field) on any invalid input.
    """
    loaded = load_scenario_module(path)
    if isinstance(loaded, Matrix):
        variants: list[tuple[str | None, Scenario]] = list(loaded.variants())
        if variant is not None:
            names = [n for n, _ in variants]
            if variant not in names:
                raise ScenarioError(
                    f"--variant: unknown variant {variant!r} (known: {', '.join(map(str, names))})"
                )
            variants = [(n, s) for n, s in variants if n == variant]
    else:
        if variant is not None:
            raise ScenarioError(f"--variant: {path} defines a single scenario, not a matrix")
        variants = [(None, loaded)]
    extra = list(overrides or [])
    if replicates is not None:
        extra.append(f"measurement.replicates={replicates}")
    if replay is not None:
        extra.append(f"generator.replay={replay}")
    if replay_format is not None:
        extra.append(f"generator.replay_format={replay_format}")
    out = []
    for name, scn in variants:
        if extra:
            scn = scn.with_overrides(extra)
        check_replay(scn.generator)  # a bad replay file fails here, as one line
        check_state_dir(scn)
        out.append(Planned(str(path), name, scn))
    return out


def run_planned(
    planned: Planned,
    address: str | None = None,
    reporter: Reporter | None = None,
    stop: threading.Event | None = None,
    calibration: dict[str, Any] | None = None,
) -> RunResult:
    """Run one variant; without ``calibration`` the runner measures the machine in-session."""
    from harness.runner import Runner  # imports Ray: only commands that run pay for it

    runner = Runner(
        planned.scenario,
        module=planned.module,
        variant=planned.variant,
        address=address,
        reporter=reporter,
        stop=stop,
        calibration=calibration,
    )
    return runner.run()


def save(result: RunResult, out_dir: str | Path = DEFAULT_OUT) -> Path:
    """Write a result file atomically; returns its path."""
    return write_result(result, Path(out_dir))


def with_scenario(planned: Planned, scenario: Scenario) -> Planned:
    return replace(planned, scenario=scenario)
