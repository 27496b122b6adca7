"""Threshold parsing (valid and each invalid form) and evaluation."""

from __future__ import annotations

import pytest
from factories import make_replicate, make_result
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.results import RunResult
from harness.thresholds import (
    AGGREGATES,
    OPERATORS,
    Threshold,
    ThresholdError,
    evaluate,
    parse_threshold,
)

THR = "throughput.lines_per_s"


@pytest.mark.parametrize(
    ("expr", "aggregate", "op", "value"),
    [
        ("throughput.lines_per_s > 1000", "med", ">", 1000.0),
        ("throughput.lines_per_s>=1e6", "med", ">=", 1e6),
        ("  med(throughput.lines_per_s) <= 2.5  ", "med", "<=", 2.5),
        ("min( throughput.lines_per_s ) < -3", "min", "<", -3.0),
        ("max(throughput.lines_per_s) == .5", "max", "==", 0.5),
        ("mean(throughput.lines_per_s) != 1.5E-3", "mean", "!=", 1.5e-3),
        ("throughput.lines_per_s < +7.", "med", "<", 7.0),
    ],
)
def test_parse_valid(expr: str, aggregate: str, op: str, value: float) -> None:
    th = parse_threshold(expr)
    assert th == Threshold(expr=expr, metric=THR, aggregate=aggregate, op=op, value=value)


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("", "empty expression"),
        ("   ", "empty expression"),
        ("throughput.lines_per_s 1000", "no comparison operator"),
        ("throughput.lines_per_s = 1000", "use == for equality"),
        ("throughput.lines_per_s < 1 < 2", "more than one comparison operator"),
        ("< 5", "missing metric before the operator"),
        ("throughput.lines_per_s >", "missing number after '>'"),
        ("throughput.lines_per_s > fast", "'fast' is not a number"),
        ("throughput.lines_per_s > 10ms", "'10ms' is not a number"),
        ("throughput.lines_per_s > 1e", "'1e' is not a number"),
        ("throughput.lines_per_s > nan", "'nan' is not a number"),
        ("p99(throughput.lines_per_s) > 1", "unknown aggregate 'p99' (use med, min, max, mean)"),
        ("med(throughput.lines_per_s > 1", "unbalanced parentheses"),
        ("throughput.lines_per_s) > 1", "unbalanced parentheses"),
        ("med() > 1", "'' is not a metric name"),
        ("throughput lines > 1", "'throughput lines' is not a metric name"),
        ("__import__('os') > 1", "unknown aggregate '__import__'"),
        ("os.system('x') > 1", "unexpected parentheses"),
        ("throughput.line_per_s > 1", "did you mean throughput.lines_per_s"),
        ("totally.unknown > 1", "unknown metric 'totally.unknown'"),
    ],
)
def test_parse_invalid(expr: str, problem: str) -> None:
    with pytest.raises(ThresholdError) as exc:
        parse_threshold(expr)
    msg = str(exc.value)
    assert msg.startswith(f"invalid threshold {expr!r}: ")
    assert problem in msg
    assert "\n" not in msg


def test_unknown_metric_without_close_match_has_no_hint() -> None:
    with pytest.raises(ThresholdError) as exc:
        parse_threshold("zzz > 1")
    assert "did you mean" not in str(exc.value)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(list(AGGREGATES)),
    st.sampled_from(list(OPERATORS)),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
)
def test_parse_round_trips_str(agg: str, op: str, value: float) -> None:
    th = parse_threshold(f"{agg}({THR}) {op} {value!r}")
    assert (th.aggregate, th.op, th.value) == (agg, op, value)
    again = parse_threshold(str(th))
    assert (again.aggregate, again.op, again.metric) == (agg, op, THR)


def result() -> RunResult:
    return make_result([{THR: 100.0}, {THR: 300.0}, {THR: 200.0}, {THR: None}])


@pytest.mark.parametrize(
    ("expr", "value", "passed"),
    [
        ("throughput.lines_per_s > 150", 200.0, True),
        ("throughput.lines_per_s > 200", 200.0, False),
        ("throughput.lines_per_s >= 200", 200.0, True),
        ("min(throughput.lines_per_s) >= 150", 100.0, False),
        ("max(throughput.lines_per_s) < 300", 300.0, False),
        ("max(throughput.lines_per_s) <= 300", 300.0, True),
        ("mean(throughput.lines_per_s) == 200", 200.0, True),
        ("mean(throughput.lines_per_s) != 200", 200.0, False),
    ],
)
def test_evaluate(expr: str, value: float, passed: bool) -> None:
    (outcome,) = evaluate([expr], result())
    assert outcome.expr == expr
    assert outcome.value == value and outcome.passed is passed
    assert "over 3 replicate(s)" in outcome.reason


def test_missing_metric_fails_with_reason() -> None:
    outcomes = evaluate(["latency.batch_p50_s < 1", parse_threshold(f"{THR} > 1")], result())
    assert [o.passed for o in outcomes] == [False, True]
    assert outcomes[0].value is None
    assert "absent from result" in outcomes[0].reason


def test_incomplete_replicates_do_not_count() -> None:
    base = result()
    partial = RunResult.create(
        base.scenario, {}, [make_replicate(0, {THR: 1e9}, complete=False)], complete=False
    )
    (outcome,) = evaluate([f"{THR} > 1"], partial)
    assert not outcome.passed and "no complete replicate" in outcome.reason


def test_evaluate_rejects_invalid_string() -> None:
    with pytest.raises(ThresholdError):
        evaluate(["throughput.lines_per_s >> 3"], result())
