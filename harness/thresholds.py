"""Pass/fail thresholds on result metrics, in the spirit of k6 thresholds.

Grammar (whitespace is free around every token)::

    threshold := [aggregate "("] metric [")"] op number
    aggregate := "med" | "min" | "max" | "mean"      (default: med)
    op        := "<" | "<=" | ">" | ">=" | "==" | "!="
    number    := decimal integer or float, optional exponent ("1e6", "-2.5", ".5")

The aggregate runs over the metric's values in the complete replicates of a
result. The expression is parsed by hand (never ``eval``) and every problem is
reported with the expression it came from.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from harness import metrics as metric_defs
from harness.results import RunResult

__all__ = [
    "AGGREGATES",
    "OPERATORS",
    "Threshold",
    "ThresholdError",
    "ThresholdOutcome",
    "evaluate",
    "parse_threshold",
]

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}

AGGREGATES: dict[str, Callable[[Sequence[float]], float]] = {
    "med": statistics.median,
    "min": min,
    "max": max,
    "mean": statistics.fmean,
}

_OP_RE = re.compile(r"<=|>=|==|!=|<|>")
_METRIC_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")
_CALL_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)")
_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


class ThresholdError(ValueError):
    """An expression that is not a valid threshold (one-line message)."""


@dataclass(frozen=True)
class Threshold:
    """A parsed threshold; ``expr`` is the text it came from."""

    expr: str
    metric: str
    aggregate: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.aggregate}({self.metric}) {self.op} {self.value:g}"

    def check(self, observed: float) -> bool:
        return OPERATORS[self.op](observed, self.value)


@dataclass(frozen=True)
class ThresholdOutcome:
    """Result of one threshold on one result; ``value`` is ``None`` when unavailable."""

    expr: str
    value: float | None
    passed: bool
    reason: str = ""


def parse_threshold(expr: str) -> Threshold:
    """Parse ``"<metric> <op> <number>"`` (optionally ``agg(<metric>)``)."""

    def error(problem: str) -> ThresholdError:
        return ThresholdError(f"invalid threshold {expr!r}: {problem}")

    text = expr.strip()
    if not text:
        raise error("empty expression")
    ops = list(_OP_RE.finditer(text))
    if not ops:
        hint = "; use == for equality" if "=" in text else ""
        raise error(f"no comparison operator (one of {' '.join(OPERATORS)}){hint}")
    if len(ops) > 1:
        raise error("more than one comparison operator")
    lhs, op, rhs = text[: ops[0].start()].strip(), ops[0].group(), text[ops[0].end() :].strip()
    aggregate, metric = _parse_lhs(lhs, error)
    if not rhs:
        raise error(f"missing number after {op!r}")
    if not _NUMBER_RE.fullmatch(rhs):
        raise error(f"{rhs!r} is not a number")
    return Threshold(expr=expr, metric=metric, aggregate=aggregate, op=op, value=float(rhs))


def _parse_lhs(lhs: str, error: Callable[[str], ThresholdError]) -> tuple[str, str]:
    if not lhs:
        raise error("missing metric before the operator")
    aggregate = "med"
    call = _CALL_RE.fullmatch(lhs)
    if call:
        aggregate, lhs = call.group(1), call.group(2).strip()
        if aggregate not in AGGREGATES:
            raise error(f"unknown aggregate {aggregate!r} (use {', '.join(AGGREGATES)})")
    elif lhs.count("(") != lhs.count(")"):
        raise error("unbalanced parentheses")
    elif "(" in lhs:
        raise error(
            f"unexpected parentheses (write agg(metric), agg one of {', '.join(AGGREGATES)})"
        )
    if not _METRIC_RE.fullmatch(lhs):
        raise error(f"{lhs!r} is not a metric name")
    if not metric_defs.is_known(lhs):
        close = difflib.get_close_matches(lhs, list(metric_defs.METRICS), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise error(f"unknown metric {lhs!r}{hint}")
    return aggregate, lhs


def evaluate(thresholds: Iterable[Threshold | str], result: RunResult) -> list[ThresholdOutcome]:
    """Evaluate each threshold on ``result``; a missing metric fails, never passes."""
    outcomes = []
    for item in thresholds:
        th = parse_threshold(item) if isinstance(item, str) else item
        values = result.metric_values(th.metric)
        if not values:
            reason = (
                "no complete replicate in result"
                if not result.complete_replicates
                else f"metric {th.metric!r} absent from result"
            )
            outcomes.append(ThresholdOutcome(th.expr, None, False, reason))
            continue
        observed = float(AGGREGATES[th.aggregate](values))
        passed = math.isfinite(observed) and th.check(observed)
        outcomes.append(
            ThresholdOutcome(
                th.expr,
                observed,
                passed,
                f"{th.aggregate} over {len(values)} replicate(s) = {observed:g}",
            )
        )
    return outcomes
