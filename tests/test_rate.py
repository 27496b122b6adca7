from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from logpipe.rate import Burst, Constant, Ramp, Step, profile_from_dict

rates = st.floats(min_value=0, max_value=2000, allow_nan=False)
durations = st.floats(min_value=0.5, max_value=20, allow_nan=False)


def _cumulative(profile, t: float, duration: float, grid: int = 20_000) -> float:
    """Numeric integral of rate_at over [0, t] (midpoint rule)."""
    if t <= 0:
        return 0.0
    dt = t / grid
    mids = (np.arange(grid) + 0.5) * dt
    return float(sum(profile.rate_at(m, duration) for m in mids) * dt)


def _midpoint_error(profile, t: float, duration: float, grid: int) -> float:
    """Bound on the midpoint rule's error: total variation of the rate times the cell.

    A cell holding a rate step (a burst edge, a step change) can be off by the jump
    times the cell width; linear pieces contribute only second-order terms.
    """
    if t <= 0:
        return 0.0
    dt = t / grid
    edges = np.array([profile.rate_at(e, duration) for e in np.arange(grid + 1) * dt])
    return float(np.sum(np.abs(np.diff(edges))) * dt)


def test_constant_offsets_are_exact() -> None:
    off = Constant(4.0).line_offsets(2.6)
    assert off.dtype == np.float64
    np.testing.assert_allclose(off, [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5])
    assert Constant(4.0).expected_lines(2.6) == pytest.approx(10.4)


def test_float_error_does_not_lose_the_last_line() -> None:
    # 0.1 * 30 is 3.0000000000000004 and 0.7 * 10 is 7.000000000000001 in binary.
    assert len(Constant(0.1).line_offsets(30)) == 3
    assert len(Constant(0.7).line_offsets(10)) == 7
    assert len(Constant(0.0).line_offsets(10)) == 0


def test_ramp_integral_reaches_i_plus_one() -> None:
    ramp = Ramp(100.0, 300.0)
    d = 10.0
    off = ramp.line_offsets(d)
    assert len(off) == 2000
    integral = 100.0 * off + (200.0 / (2 * d)) * off**2
    np.testing.assert_allclose(integral, np.arange(1, 2001), rtol=1e-9)
    assert ramp.rate_at(5.0, d) == pytest.approx(200.0)


def test_ramp_down_to_zero_and_from_zero() -> None:
    down = Ramp(100.0, 0.0).line_offsets(4.0)
    up = Ramp(0.0, 100.0).line_offsets(4.0)
    assert len(down) == len(up) == 200
    # Falling rate: lines bunch at the start; rising: at the end.
    assert np.sum(down < 1.0) > np.sum(up < 1.0)
    assert up[-1] <= 4.0 and down[-1] <= 4.0


def test_ramp_rate_at_needs_duration() -> None:
    with pytest.raises(ValueError, match=r"^duration_s:"):
        Ramp(1.0, 2.0).rate_at(0.5)


def test_step_offsets_and_last_rate_holds() -> None:
    step = Step(((1.0, 10.0), (1.0, 0.0), (1.0, 5.0)))
    off = step.line_offsets(4.0)
    # 10 lines in [0, 1], none in (1, 2], 5/s from 2 s on (the last rate holds to 4 s).
    assert len(off) == 20 == step.expected_lines(4.0)
    np.testing.assert_allclose(off[:10], np.arange(1, 11) / 10.0)
    np.testing.assert_allclose(off[10:], 2.0 + np.arange(1, 11) / 5.0)
    assert step.rate_at(1.5) == 0.0 and step.rate_at(100.0) == 5.0


def test_step_shorter_run_than_steps() -> None:
    step = Step(((2.0, 10.0), (2.0, 100.0)))
    assert step.expected_lines(1.0) == pytest.approx(10.0)
    assert len(step.line_offsets(1.0)) == 10


def test_burst_single_and_repeating() -> None:
    once = Burst(10.0, 90.0, start_s=1.0, duration_s=1.0)
    off = once.line_offsets(3.0)
    assert len(off) == 120
    in_burst = np.sum((off > 1.0) & (off <= 2.0))
    assert in_burst == 100
    rep = Burst(10.0, 90.0, start_s=1.0, duration_s=1.0, every_s=2.0)
    assert rep.expected_lines(5.0) == pytest.approx(50 + 2 * 90)
    assert rep.rate_at(3.5) == 100.0 and rep.rate_at(2.5) == 10.0
    # A burst cut short by the end of the run only counts its part inside.
    assert rep.expected_lines(3.5) == pytest.approx(35 + 90 + 45)


profiles = st.one_of(
    st.builds(Constant, rates),
    st.builds(Ramp, rates, rates),
    st.builds(
        Step,
        st.lists(st.tuples(st.floats(0.1, 5), rates), min_size=1, max_size=4).map(tuple),
    ),
    st.builds(
        Burst,
        rates,
        rates,
        st.floats(0, 10),
        st.floats(0.1, 3),
        st.one_of(st.none(), st.floats(3, 6)),
    ),
)


@settings(max_examples=40, deadline=None)
@given(profile=profiles, duration=durations)
@example(
    profile=Burst(base_rate=0.0, burst_rate=822.0, start_s=1.0, duration_s=0.25),
    duration=12.0,
)  # a short burst: the grid integral's own error exceeds a fixed slack
def test_offsets_match_the_integral(profile, duration: float) -> None:
    off = profile.line_offsets(duration)
    assert off.dtype == np.float64
    assert len(off) == math.floor(profile.expected_lines(duration) + 1e-9)
    assert np.all(np.diff(off) >= 0)
    if len(off):
        assert off[0] >= 0 and off[-1] <= duration
    # Lines emitted by t equal floor(R(t)) (up to the numeric integral's error).
    for t in np.linspace(0, duration, 5)[1:]:
        emitted = np.sum(off <= t)
        integral = _cumulative(profile, float(t), duration, grid=4000)
        slack = _midpoint_error(profile, float(t), duration, grid=4000)
        assert abs(emitted - integral) <= 1.5 + 0.002 * emitted + slack


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Constant(-1.0), "rate: must be >= 0"),
        (lambda: Constant(math.inf), "rate: must be finite"),
        (lambda: Constant(math.nan), "rate: must be finite"),
        (lambda: Constant("5"), "rate: must be a number"),
        (lambda: Ramp(1.0, -2.0), "end_rate: must be >= 0"),
        (lambda: Step(()), "steps: must be"),
        (lambda: Step(((0.0, 1.0),)), "steps[0].duration_s: must be > 0"),
        (lambda: Step(((1.0, 1.0), (1.0, -1.0))), "steps[1].rate: must be >= 0"),
        (lambda: Burst(1.0, 1.0, -1.0, 1.0), "start_s: must be >= 0"),
        (lambda: Burst(1.0, 1.0, 0.0, 0.0), "duration_s: must be > 0"),
        (lambda: Burst(1.0, 1.0, 0.0, 2.0, every_s=1.0), "every_s: must be >= duration_s"),
    ],
)
def test_validation_messages_start_with_the_field(make, field: str) -> None:
    with pytest.raises(ValueError) as info:
        make()
    assert str(info.value).startswith(field)


def test_negative_duration_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"^duration_s:"):
        Constant(1.0).line_offsets(-1.0)


@pytest.mark.parametrize(
    "profile",
    [
        Constant(12.5),
        Ramp(1.0, 50.0),
        Step(((1.0, 2.0), (3.0, 4.0))),
        Burst(5.0, 50.0, 2.0, 1.0),
        Burst(5.0, 50.0, 2.0, 1.0, every_s=4.0),
    ],
)
def test_dict_round_trip_through_json(profile) -> None:
    d = json.loads(json.dumps(profile.to_dict()))
    assert d["kind"] in ("constant", "ramp", "step", "burst")
    back = profile_from_dict(d)
    assert back == profile
    np.testing.assert_array_equal(back.line_offsets(7.0), profile.line_offsets(7.0))


def test_profile_from_dict_errors() -> None:
    with pytest.raises(ValueError, match=r"^kind: unknown"):
        profile_from_dict({"kind": "sine", "rate": 1})
    with pytest.raises(ValueError, match=r"^constant: bad fields"):
        profile_from_dict({"kind": "constant", "rate": 1, "extra": 2})
    with pytest.raises(ValueError, match=r"^rate: must be >= 0"):
        profile_from_dict({"kind": "constant", "rate": -1})


def test_large_profile_is_vectorized() -> None:
    # Two million lines must not take a Python loop per line (this would take seconds).
    off = Burst(100_000.0, 300_000.0, 1.0, 2.0, every_s=5.0).line_offsets(10.0)
    assert len(off) == 100_000 * 10 + 300_000 * 4
    assert np.all(np.diff(off) >= 0)
