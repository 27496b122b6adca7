"""`logbench validate`: check that the harness measures known effects correctly.

Runs the small workloads of ``scenarios/validation.py`` in one Ray session:
A/A false positives, detection of a calibrated slowdown, coordinated omission
in time-to-detect, the object-store sampler's accuracy, the samplers' own cost
and the machine's throughput noise (with the replicates a 5 % change needs).
Every figure has a stable dotted name in the JSON report (``--json``); the
methodology and the latest figures are in ``docs/methodology.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.power import replicates_for_change
from harness.raysession import ray_session
from harness.results import RunResult, capture_metadata
from harness.validation.decide import Check, cv_pct
from harness.validation.phases import (
    FULL,
    QUICK,
    THROUGHPUT,
    Counts,
    RunFn,
    calibrate_knobs,
    check_aa,
    check_observer,
    check_slowdown,
    check_stall,
    knob_override,
    run_interleaved,
    slowdown_pools_short,
    slowdown_side,
)

__all__ = ["CHECKS", "add_arguments", "check_noise", "report", "run", "validate"]

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "validation.py"
CHECKS = ("aa", "slowdown", "coordinated_omission", "sampler", "observer", "noise")
MiB = 1024 * 1024
REPORT_KIND = "logbench.validation"


def check_noise(smoke: RunResult | None, baseline: RunResult | None) -> Check:
    """Throughput CV of the smoke-like and baseline-like pools, and the replicates for 5 %."""
    cvs = {
        name: cv_pct(res.metric_values(THROUGHPUT)) if res is not None else math.nan
        for name, res in (("smoke", smoke), ("baseline", baseline))
    }
    finite = [c for c in cvs.values() if math.isfinite(c)]
    # The noisier workload decides: a default must hold for both.
    worst = max(finite) if finite else math.nan
    needed = replicates_for_change(worst / 100.0) if math.isfinite(worst) else None
    return Check(
        "noise",
        passed=None,
        target="report only: CV of throughput across replicates; replicates for a 5% change",
        figures={
            "noise.cv_pct.smoke": cvs["smoke"],
            "noise.cv_pct.baseline": cvs["baseline"],
            "noise.replicates_for_5pct": needed,
        },
        detail="power 0.90 at alpha 0.05 (two-sided), Mann-Whitney efficiency 3/pi, worst CV",
    )


def check_sampler(measure: Callable[[], float], limit_pct: float = 5.0) -> Check:
    """Object-store sampler accuracy against a known number of bytes put."""
    error = measure()
    return Check(
        "sampler",
        passed=error <= limit_pct,
        target=f"object-store growth measured within {limit_pct:g}% of the bytes put",
        figures={"sampler.error_pct": error},
    )


def validate(
    run_fn: RunFn,
    counts: Counts,
    sampler: Callable[[], float],
    only: Sequence[str] = CHECKS,
    log: Callable[[str], None] = lambda _m: None,
    warm_up: bool = True,
) -> list[Check]:
    """Run the selected checks in a fixed order; returns one :class:`Check` each."""
    checks: list[Check] = []
    smoke = baseline = None
    if "sampler" in only:
        # First, while the object store is idle: objects of earlier runs are freed
        # asynchronously and would move the baseline under the measurement.
        log("object-store sampler accuracy")
        checks.append(check_sampler(sampler))
    if warm_up and set(only) - {"sampler"}:
        # Cold Ray workers make the first run of a session slow; it is not measured.
        log("warm-up run (discarded)")
        run_fn("aa", [], 1)
    if "aa" in only or "noise" in only:
        log("A/A pool (aa)")
        aa, smoke = check_aa(run_fn, counts)
        if "aa" in only:
            checks.append(aa)
    if {"slowdown", "observer", "noise"} & set(only):
        log("saturated: calibrating the slowdown knob")
        knobs = calibrate_knobs(run_fn, counts)
        conditions = {
            "base": [],
            "off": ["measurement.samplers=false"],
            "slow10": [knob_override(knobs.knob_10)],
            "slow20": [knob_override(knobs.knob_20)],
        }
        log(f"saturated: {counts.blocks}+ interleaved blocks of {list(conditions)}")
        pools = run_interleaved(
            run_fn,
            conditions,
            counts.blocks,
            counts.block_reps,
            "saturated",
            # The slowdown comparison takes as many replicates as the noise asks for.
            more=lambda p: "slowdown" in only and slowdown_pools_short(p, counts),
            max_blocks=counts.max_blocks,
        )
        baseline = pools["base"]
        if "slowdown" in only:
            side = slowdown_side(baseline, counts)
            log(f"slowdown: {side} replicates per side at this noise")
            checks.append(check_slowdown(pools, knobs, side)[0])
        if "observer" in only:
            checks.append(check_observer(pools))
    if "coordinated_omission" in only:
        log("stall: interleaved with and without the stall")
        checks.append(check_stall(run_fn, counts))
    if "noise" in only:
        checks.append(check_noise(smoke, baseline))
    return checks


def report(checks: Sequence[Check], meta: dict[str, Any], quick: bool, elapsed_s: float) -> dict:
    """The JSON report: every figure by name, every check, the verdict."""
    figures: dict[str, Any] = {}
    for c in checks:
        figures.update({k: _finite(v) for k, v in c.figures.items()})
    return {
        "kind": REPORT_KIND,
        "version": 1,
        "quick": quick,
        "ok": all(c.passed is not False for c in checks),
        "elapsed_s": round(elapsed_s, 1),
        "machine": meta,
        "figures": figures,
        "checks": [
            c.to_dict() | {"figures": {k: _finite(v) for k, v in c.figures.items()}} for c in checks
        ],
    }


def _finite(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``logbench validate``."""
    parser.add_argument("--json", help="write every figure and check to this file")
    parser.add_argument("--quick", action="store_true", help="reduced counts (a sanity pass)")
    parser.add_argument(
        "--only", action="append", choices=CHECKS, help="run only these checks (repeatable)"
    )


def run(args: argparse.Namespace) -> int:
    """``logbench validate``: 0 every check passed, 1 a check failed (2 from the CLI when
    Ray does not start)."""
    from harness import api
    from harness.calibration import calibrate
    from harness.objstore import sampler_accuracy

    started = time.monotonic()
    calibration = calibrate()

    def run_fn(variant: str, overrides: Sequence[str], replicates: int) -> RunResult:
        (planned,) = api.plan(SCENARIO, variant, list(overrides), replicates)
        return api.run_planned(planned, calibration=calibration)

    # One Ray for every run: the runner reuses it instead of paying start-up each time.
    # (A start failure is RayStartError: one line and exit 2 from the CLI.)
    with ray_session(num_cpus=2, object_store_memory=256 * MiB):
        checks = validate(
            run_fn, QUICK if args.quick else FULL, sampler_accuracy, args.only or CHECKS, _log
        )
    meta = _machine(calibration)
    doc = report(checks, meta, args.quick, time.monotonic() - started)
    _print(checks)
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0 if doc["ok"] else 1


def _machine(calibration: dict[str, Any]) -> dict[str, Any]:
    meta = capture_metadata(calibration, None)
    keys = ("cpu_model", "cpu_count", "memory_bytes", "platform", "python", "ray", "git_commit")
    out = {k: meta.get(k) for k in keys}
    out["calibration_lines_per_s"] = calibration.get("lines_per_s")
    try:
        import os

        out["load_average"] = list(os.getloadavg())
    except OSError:
        out["load_average"] = None
    return out


def _log(message: str) -> None:
    print(f"validate: {message}", file=sys.stderr, flush=True)


def _print(checks: Sequence[Check]) -> None:
    for c in checks:
        mark = {True: "PASS", False: "FAIL", None: "info"}[c.passed]
        print(f"{mark}  {c.name}: {c.target}")
        for name, value in c.figures.items():
            shown = (
                "-"
                if value is None or (isinstance(value, float) and math.isnan(value))
                else (f"{value:.4g}" if isinstance(value, float) else str(value))
            )
            print(f"      {name} = {shown}")
        if c.detail:
            print(f"      ({c.detail})")
