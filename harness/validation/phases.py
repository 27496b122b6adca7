"""The measured checks of ``logbench validate``, each over an injected ``RunFn``.

A :data:`RunFn` runs one variant of ``scenarios/validation.py`` with overrides
and a replicate count and returns its :class:`~harness.results.RunResult`; the
real one goes through :mod:`harness.api`, the tests pass synthetic results.
The decisions are in :mod:`harness.validation.decide`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.ab import merge_results
from harness.compare import compare
from harness.power import replicates_for_change
from harness.results import RunResult
from harness.validation.decide import (
    Check,
    adjacent_pairs,
    aligned_pairs,
    cost_ci_pct,
    cost_pct,
    cv_pct,
    mask_settings,
    median_shift,
    naive_slowdown_knob,
    pooled_knob,
    rate,
    select_replicates,
    shift_within,
)

RunFn = Callable[[str, Sequence[str], int], RunResult]

THROUGHPUT = "throughput.lines_per_s"
SAMPLER_SHARE = "harness.sampler_cpu_share"
SLOWDOWN_KNOB = "testing.slowdown_us_per_line"
SAMPLERS_OFF = "measurement.samplers=false"


@dataclass(frozen=True)
class Counts:
    """How much to measure; :data:`FULL` and :data:`QUICK` are the two presets."""

    aa_pool: int  # replicates of the A/A pool
    side: int  # replicates per side of every compared pair
    probe_reps: int  # replicates per probe when calibrating the slowdown knob
    blocks: int  # interleaved blocks of the saturated conditions
    block_reps: int  # replicates per condition per block
    stall_blocks: int  # interleaved (no stall, stall) blocks
    stall_reps: int  # replicates per arm per block
    refine_rounds: int = 2  # measured corrections of each fitted slowdown knob, at most
    # The slowdown comparison's replicates per side follow the unknobbed pool's noise
    # (slowdown_side), up to max_side; blocks are added, up to max_blocks, until every
    # pool holds that many plus slowdown_pairs - 1.
    max_side: int = 16
    max_blocks: int = 8
    slowdown_pairs: int = 8


FULL = Counts(
    aa_pool=29, side=5, probe_reps=4, blocks=4, block_reps=3, stall_blocks=3, stall_reps=2
)
QUICK = Counts(
    aa_pool=9,
    side=4,
    probe_reps=2,
    blocks=2,
    block_reps=2,
    stall_blocks=1,
    stall_reps=2,
    refine_rounds=1,
    max_side=4,
    max_blocks=2,
)

# Power the slowdown comparison is sized for: the check asks for >= 90 % of its
# pairs, so each pair must detect a 20 % slowdown far more often than 90 %.
SLOWDOWN_POWER = 0.99
SLOWDOWN_CHANGE = 0.20


def check_aa(run: RunFn, counts: Counts) -> tuple[Check, RunResult]:
    """A/A: consecutive windows of one pool compared as ``logbench compare`` would."""
    pool = run("aa", [], counts.aa_pool)
    pairs = adjacent_pairs(len(pool.complete_replicates), counts.side)
    by_metric: dict[str, int] = {}
    flags = []
    for a, b in pairs:
        regressed = compare(
            select_replicates(pool, a), select_replicates(pool, b)
        ).regressed_gated()
        flags.append(bool(regressed))
        for v in regressed:
            by_metric[v.name or "?"] = by_metric.get(v.name or "?", 0) + 1
    fp = rate(flags)
    check = Check(
        "aa",
        passed=bool(pairs) and fp <= 0.10,
        target="no gated regression called in >= 90% of A/A pairs",
        figures={
            "aa.false_positive_rate": fp,
            "aa.pairs": len(pairs),
            "aa.pool_replicates": len(pool.complete_replicates),
            "aa.replicates_per_side": counts.side,
        },
        detail=f"regressions by metric: {by_metric or 'none'}",
    )
    return check, pool


# Calibration stops measuring once a fitted knob lands within this many points of its target.
KNOB_TOLERANCE = 0.025


@dataclass(frozen=True)
class Knobs:
    """The calibrated slowdown knobs and what the probes measured.

    ``points`` are every measured ``(knob µs/line, slowdown)``: the first probe's,
    then each correction's, slowdowns against the unknobbed runs beside them.
    """

    t0: float
    probe_knob: float
    probe_slowdown: float
    knob_10: float
    knob_20: float
    points: tuple[tuple[float, float], ...] = ()


def calibrate_knobs(run: RunFn, counts: Counts, parallel: float = 2.0) -> Knobs:
    """Measure the unknobbed throughput, probe a knob, fit the knobs for 10 % and 20 %.

    The probe aims at a 30 % slowdown (first guess: the cost lands on ``parallel``
    parse tasks) so that the fit is not made from a change lost in the noise; a
    probe that slows by less than 10 % is retried three times larger, up to three
    probes. Then, for each target, the knob :func:`pooled_knob` fits to every point
    so far is measured (beside an unknobbed run, so drift does not count as
    slowdown) and becomes a point, up to ``counts.refine_rounds`` times or until one
    lands within :data:`KNOB_TOLERANCE` of the target. Both knobs returned are the
    fit over all the points.
    """
    t0 = _median(run("saturated", [], counts.probe_reps))
    knob = naive_slowdown_knob(t0, 0.30, parallel)
    for _ in range(3):
        t_probe = _median(run("saturated", [knob_override(knob)], counts.probe_reps))
        if t_probe < 0.90 * t0:
            break
        knob *= 3.0
    points = [(knob, 1.0 - t_probe / t0)]
    for fraction in (0.10, 0.20):
        for _ in range(counts.refine_rounds):
            k = pooled_knob(points, fraction)
            slowed = _median(run("saturated", [knob_override(k)], counts.probe_reps))
            base = _median(run("saturated", [], counts.probe_reps))
            points.append((k, 1.0 - slowed / base))
            if abs(points[-1][1] - fraction) <= KNOB_TOLERANCE:
                break
    return Knobs(
        t0=t0,
        probe_knob=knob,
        probe_slowdown=points[0][1],
        knob_10=pooled_knob(points, 0.10),
        knob_20=pooled_knob(points, 0.20),
        points=tuple(points),
    )


def knob_override(us_per_line: float) -> str:
    """The override that sets the slowdown knob (µs per parsed line)."""
    return f"{SLOWDOWN_KNOB}={us_per_line:.6g}"


def run_interleaved(
    run: RunFn,
    conditions: dict[str, list[str]],
    blocks: int,
    reps: int,
    variant: str,
    more: Callable[[dict[str, RunResult]], bool] = lambda _pools: False,
    max_blocks: int = 0,
) -> dict[str, RunResult]:
    """Run every condition ``blocks`` times in rotating order (A B C, B C A, ...); merge each.

    Then, while ``more(pools)`` says so, further blocks, up to ``max_blocks`` in all.
    """
    names = list(conditions)
    parts: dict[str, list[RunResult]] = {n: [] for n in names}
    b = 0
    while True:
        pools = {n: merge_results(parts[n]) for n in names} if b else {}
        if b >= max(blocks, 1) and (b >= max_blocks or not more(pools)):
            return pools
        shift = b % len(names)
        for name in names[shift:] + names[:shift]:
            parts[name].append(run(variant, conditions[name], reps))
        b += 1


def slowdown_side(base: RunResult, counts: Counts) -> int:
    """Replicates per side with which a 20 % slowdown is called with 99 % power at the
    throughput noise of ``base`` (``harness.power``), within ``[counts.side, counts.max_side]``."""
    cv = cv_pct(base.metric_values(THROUGHPUT))
    if not math.isfinite(cv):
        return counts.side
    needed = replicates_for_change(cv / 100.0, SLOWDOWN_CHANGE, power=SLOWDOWN_POWER)
    return min(max(counts.side, needed or counts.max_side), max(counts.side, counts.max_side))


def slowdown_pools_short(pools: dict[str, RunResult], counts: Counts) -> bool:
    """True while a pool holds fewer replicates than ``slowdown_pairs`` aligned pairs
    of :func:`slowdown_side` replicates need."""
    wanted = slowdown_side(pools["base"], counts) + counts.slowdown_pairs - 1
    return min(len(p.complete_replicates) for p in pools.values()) < wanted


def check_slowdown(
    pools: dict[str, RunResult], knobs: Knobs, side: int
) -> tuple[Check, dict[int, float]]:
    """Known slowdown: how often compare flags the knobbed runs as a throughput regression."""
    base = pools["base"]
    figures: dict[str, float | int | None] = {
        "slowdown.knob_us_per_line_at_10pct": knobs.knob_10,
        "slowdown.knob_us_per_line_at_20pct": knobs.knob_20,
        "slowdown.calibration_points": len(knobs.points),
        "slowdown.replicates_per_side": side,
        "slowdown.cv_pct": cv_pct(pools["base"].metric_values(THROUGHPUT)),
    }
    rates = {}
    for pct in (10, 20):
        cand = pools[f"slow{pct}"]
        n = min(len(base.complete_replicates), len(cand.complete_replicates))
        flags = [
            bool(
                compare(
                    select_replicates(base, a),
                    mask_settings(select_replicates(cand, b), base),
                    metrics=[THROUGHPUT],
                ).regressed_gated()
            )
            for a, b in aligned_pairs(n, side)
        ]
        rates[pct] = rate(flags)
        figures[f"slowdown.detection_rate_at_{pct}pct"] = rates[pct]
        figures[f"slowdown.pairs_at_{pct}pct"] = len(flags)
        slowed, unknobbed = cand.metric_values(THROUGHPUT), base.metric_values(THROUGHPUT)
        figures[f"slowdown.achieved_pct_at_{pct}pct"] = cost_pct(slowed, unknobbed)
        # Which slowdown the rate belongs to is itself measured: its 90 % interval.
        lo, hi = cost_ci_pct(slowed, unknobbed)
        figures[f"slowdown.achieved_ci_lo_pct_at_{pct}pct"] = lo
        figures[f"slowdown.achieved_ci_hi_pct_at_{pct}pct"] = hi
    check = Check(
        "slowdown",
        passed=rates[20] >= 0.90,
        target=(
            "throughput regression called in >= 90% of pairs at a 20% slowdown, "
            "with the replicates per side the measured noise calls for"
        ),
        figures=figures,
        detail=(
            f"unknobbed {knobs.t0:,.0f} lines/s; measured (µs/line: slowdown) "
            + ", ".join(f"{k:.3g}: {100 * s:.1f}%" for k, s in knobs.points)
        ),
    )
    return check, rates


def check_observer(pools: dict[str, RunResult], target_pct: float = 2.0) -> Check:
    """Observer effect: throughput with the samplers on against off (interleaved)."""
    on, off = pools["base"].metric_values(THROUGHPUT), pools["off"].metric_values(THROUGHPUT)
    cost = cost_pct(on, off)
    ci_lo, ci_hi = cost_ci_pct(on, off)
    # Pass only when the interval rules out the target, fail only when it rules it in:
    # on a noisy machine the point estimate alone would pass or fail by chance.
    passed = True if ci_hi < target_pct else False if ci_lo >= target_pct else None
    # The samplers' own CPU time over the run's: the direct cost, free of the
    # throughput noise (it misses indirect costs such as the driver's GIL).
    shares = [x for x in pools["base"].metric_values(SAMPLER_SHARE) if x is not None]
    share_pct = 100.0 * statistics.median(shares) if shares else math.nan
    return Check(
        "observer",
        passed=passed if math.isfinite(cost) else None,
        target=f"samplers cost < {target_pct:g}% of throughput (90% interval)",
        figures={
            "observer.cost_pct": cost,
            "observer.cost_ci_lo_pct": ci_lo,
            "observer.cost_ci_hi_pct": ci_hi,
            "observer.replicates_per_side": min(len(on), len(off)),
            "observer.sampler_cpu_share_pct": share_pct,
        },
        detail=(
            ("" if passed is not None else "inconclusive: the interval straddles the target; ")
            + f"the samplers used {share_pct:.2g}% of the run's CPU time (median)"
        ),
    )


def check_stall(run: RunFn, counts: Counts, stall_s: float = 0.5) -> Check:
    """Coordinated omission: a stall during the first anomaly must add itself to its TTD."""
    knobs = [f"testing.aggregation_stall_s={stall_s:g}", "testing.stall_during_anomaly=true"]
    pools = run_interleaved(
        run, {"base": [], "stall": knobs}, counts.stall_blocks, counts.stall_reps, "stall"
    )
    ttd = {k: _first_anomaly(v, "ttd_s") for k, v in pools.items()}
    ttd_actual = {k: _first_anomaly(v, "ttd_actual_s") for k, v in pools.items()}
    shift = median_shift(ttd["base"], ttd["stall"])
    return Check(
        "coordinated_omission",
        passed=shift_within(shift, stall_s, 0.10),
        target=f"planned-emit time-to-detect grows by the {stall_s:g} s stall (within 10%)",
        figures={
            "coordinated_omission.stall_s": stall_s,
            "coordinated_omission.ttd_shift_s": shift,
            "coordinated_omission.ttd_actual_shift_s": median_shift(
                ttd_actual["base"], ttd_actual["stall"]
            ),
            "coordinated_omission.replicates_per_arm": min(len(v) for v in ttd.values()),
        },
    )


def _first_anomaly(result: RunResult, key: str) -> list[float]:
    out = []
    for rep in result.complete_replicates:
        rows = list(rep.detections)
        value = rows[0].get(key) if rows else None
        if isinstance(value, (int, float)) and math.isfinite(value):
            out.append(float(value))
    return out


def _median(result: RunResult) -> float:
    values = result.metric_values(THROUGHPUT)
    if not values:
        raise RuntimeError("no complete replicate measured throughput")
    return float(statistics.median(values))
