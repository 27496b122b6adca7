"""Result-file validation: every field a reader relies on, checked by name.

Hand-written rather than a schema library: messages must name the exact field
(``replicates[0].metrics: expected object, got array``) and stay one line.
:mod:`harness.results` runs these checks on every file it loads or writes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["ResultError", "check_replicate", "check_result"]


class ResultError(ValueError):
    """A result file that cannot be used; the message is one line naming the problem."""


def _kind_of(x: Any) -> str:
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "boolean"
    if isinstance(x, int):
        return "number" if _is_num(x) else "number out of float range"
    if isinstance(x, float):
        return "number" if math.isfinite(x) else repr(x).replace("nan", "NaN")
    if isinstance(x, str):
        return "string"
    return "array" if isinstance(x, list) else "object" if isinstance(x, dict) else type(x).__name__


def _fail(path: str, expected: str, got: Any) -> None:
    raise ResultError(f"{path}: expected {expected}, got {_kind_of(got)}")


_FLOAT_MAX = 1.7976931348623157e308


def _is_num(x: Any) -> bool:
    """A finite JSON number that also fits a float (huge ints would overflow later)."""
    if isinstance(x, float):
        return math.isfinite(x)
    return isinstance(x, int) and not isinstance(x, bool) and -_FLOAT_MAX <= x <= _FLOAT_MAX


def _field(obj: Mapping[str, Any], key: str, path: str, kind: str, optional: bool = False) -> Any:
    """``obj[key]`` checked against ``kind``: object, array, string, string?, bool, int, number."""
    where = f"{path}.{key}" if path else key
    if key not in obj:
        if optional:
            return None
        raise ResultError(f"{where}: missing")
    x = obj[key]
    ok = {
        "object": isinstance(x, dict),
        "array": isinstance(x, list),
        "string": isinstance(x, str),
        "string or null": x is None or isinstance(x, str),
        "boolean": isinstance(x, bool),
        "integer": isinstance(x, int) and not isinstance(x, bool),
        "finite number": _is_num(x),
    }[kind]
    if not ok:
        _fail(where, kind, x)
    return x


_NUMBER_TYPES = frozenset({float, int})
_NULLABLE_TYPES = _NUMBER_TYPES | {type(None)}


def _check_numbers(values: Any, path: str, nullable: bool) -> None:
    # Fast path for long series: element types and finiteness checked in C;
    # only a failing array is walked in Python to name the bad element.
    types = set(map(type, values))
    if types <= (_NULLABLE_TYPES if nullable else _NUMBER_TYPES):
        nums = [x for x in values if x is not None] if type(None) in types else values
        try:
            if np.isfinite(np.asarray(nums, dtype=np.float64)).all():
                return
        except OverflowError:
            pass
    expected = "finite number or null" if nullable else "finite number"
    for i, x in enumerate(values):
        if not (_is_num(x) or (nullable and x is None)):
            _fail(f"{path}[{i}]", expected, x)


def _check_metric_map(metrics: Mapping[str, Any], path: str) -> None:
    for name, x in metrics.items():
        if not (x is None or _is_num(x)):
            _fail(f"{path}.{name}", "finite number or null", x)


def check_replicate(rep: Any, path: str) -> None:
    """Validate one replicate object found at ``path``; raises :class:`ResultError`."""
    if not isinstance(rep, dict):
        _fail(path, "object", rep)
    _field(rep, "index", path, "integer")
    _field(rep, "complete", path, "boolean")
    for key in ("started_at_s", "duration_s", "warmup_s"):
        _field(rep, key, path, "finite number")
    _check_metric_map(_field(rep, "metrics", path, "object"), f"{path}.metrics")
    for key in ("shards", "integrity", "rejections"):
        _field(rep, key, path, "object", optional=True)
    for key in ("detections", "alerts", "faults"):
        items = _field(rep, key, path, "array", optional=True) or []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                _fail(f"{path}.{key}[{i}]", "object", item)
    samples = _field(rep, "samples", path, "object", optional=True) or {}
    for name in samples:
        _check_numbers(
            _field(samples, name, f"{path}.samples", "array"), f"{path}.samples.{name}", False
        )
    series = _field(rep, "series", path, "object", optional=True) or {}
    for name in series:
        where = f"{path}.series.{name}"
        one = _field(series, name, f"{path}.series", "object")
        t_s = _field(one, "t_s", where, "array")
        values = _field(one, "values", where, "array")
        if len(t_s) != len(values):
            raise ResultError(f"{where}: t_s has {len(t_s)} points but values has {len(values)}")
        _check_numbers(t_s, f"{where}.t_s", False)
        _check_numbers(values, f"{where}.values", True)


def check_result(data: Mapping[str, Any]) -> None:
    """Validate a current-version result object; raises :class:`ResultError`."""
    _field(data, "kind", "", "string")  # value checked by migrate()
    _field(data, "complete", "", "boolean")
    scenario = _field(data, "scenario", "", "object")
    _field(scenario, "name", "scenario", "string")
    _field(scenario, "variant", "scenario", "string or null", optional=True)
    _field(scenario, "module", "scenario", "string", optional=True)
    _field(scenario, "settings", "scenario", "object")
    _field(data, "metadata", "", "object")
    for i, rep in enumerate(_field(data, "replicates", "", "array")):
        check_replicate(rep, f"replicates[{i}]")
    summary = _field(data, "summary", "", "object")
    for name in summary:
        entry = _field(summary, name, "summary", "object")
        _check_metric_map(entry, f"summary.{name}")
