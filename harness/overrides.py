"""Mechanics of the scenario settings tree: field checks, JSON form, overrides.

A scenario (:mod:`harness.scenario`) is a tree of frozen dataclasses whose fields
carry a check (:func:`meta`). This module holds what does not depend on any
particular setting: the checks themselves, conversion of a tree to plain JSON and
back (from the dataclass type hints), and ``key.path=value`` assignments applied
to the plain form (``--set``; :class:`harness.matrix.Matrix` builds its variants
with them). An overridden tree is always rebuilt through the dataclasses, so it
is validated again.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import importlib
import importlib.util
import json
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, NoReturn

from harness.metrics import METRICS


class ScenarioError(ValueError):
    """An invalid scenario, setting or scenario module.

    For a bad setting the message starts with the dotted field path
    (``sharding.shards: must be >= 1 (got 0)``) and ``field``/``reason`` hold the
    two halves; for a module-level problem ``field`` is ``None``.
    """

    def __init__(self, message: str, *, field: str | None = None, reason: str | None = None):
        super().__init__(message)
        self.field = field
        self.reason = reason if reason is not None else message

    @classmethod
    def at(cls, field: str, reason: str) -> ScenarioError:
        """An error about the setting at dotted path ``field``."""
        return cls(f"{field}: {reason}", field=field, reason=reason)


def join_path(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


# --- field checks: each takes (path, value) and returns the normalised value ------

Check = Callable[[str, Any], Any]


def fail(path: str, reason: str) -> NoReturn:
    raise ScenarioError.at(path, reason)


def meta(check: Check) -> dict[str, Check]:
    """Field metadata: :meth:`Spec.__post_init__` passes the field's value through ``check``."""
    return {"check": check}


def optional(check: Check) -> Check:
    """``check``, letting ``None`` through."""
    return lambda path, value: None if value is None else check(path, value)


def number(lo: float | None = None, *, above: bool = False, hi: float | None = None) -> Check:
    """A finite number, ``>= lo`` (``> lo`` when ``above``) and ``<= hi``; stored as float."""

    def check(path: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(path, f"must be a number (got {value!r})")
        if not math.isfinite(value):
            fail(path, f"must be finite (got {value!r})")
        if lo is not None and (value <= lo if above else value < lo):
            fail(path, f"must be {'>' if above else '>='} {lo:g} (got {value!r})")
        if hi is not None and value > hi:
            fail(path, f"must be <= {hi:g} (got {value!r})")
        return float(value)

    return check


def integer(lo: int | None = None, hi: int | None = None) -> Check:
    """An integer in ``[lo, hi]`` (an integral float such as ``4.0`` is accepted)."""

    def check(path: str, value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            fail(path, f"must be an integer (got {value!r})")
        if lo is not None and value < lo:
            fail(path, f"must be >= {lo} (got {value!r})")
        if hi is not None and value > hi:
            fail(path, f"must be <= {hi} (got {value!r})")
        return value

    return check


def choice(*choices: str) -> Check:
    def check(path: str, value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            close = difflib.get_close_matches(str(value), choices, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            fail(path, f"must be one of {', '.join(choices)} (got {value!r}{hint})")
        return value

    return check


def boolean(path: str, value: Any) -> bool:
    if not isinstance(value, bool):
        fail(path, f"must be true or false (got {value!r})")
    return value


def text(path: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        fail(path, f"must be a non-empty string (got {value!r})")
    return value


def of_type(cls: type) -> Check:
    """An instance of ``cls`` (a nested spec, not its plain form)."""

    def check(path: str, value: Any) -> Any:
        if not isinstance(value, cls):
            fail(path, f"must be a {cls.__name__} (got {value!r})")
        return value

    return check


def items_of_type(cls: type) -> Check:
    """A list or tuple of ``cls`` instances, stored as a tuple."""

    def check(path: str, value: Any) -> tuple[Any, ...]:
        if not isinstance(value, (tuple, list)):
            fail(path, f"must be a list of {cls.__name__} (got {value!r})")
        for i, item in enumerate(value):
            of_type(cls)(f"{path}[{i}]", item)
        return tuple(value)

    return check


class Spec:
    """Base of the settings dataclasses: runs every field's check on construction.

    ``_path`` is where the spec sits in a scenario (error messages start with it);
    subclasses add cross-field rules in :meth:`_validate`.
    """

    _path: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            check = f.metadata.get("check")
            if check is not None:
                object.__setattr__(self, f.name, check(self._p(f.name), getattr(self, f.name)))
        self._validate()

    def _validate(self) -> None:
        """Rules across fields; raise with :func:`fail`."""

    def _p(self, name: str) -> str:
        return join_path(self._path, name)


# --- checks that defer to modules written alongside (thresholds, detector) --------


def _optional_attr(module: str, attr: str) -> Any:
    """``module.attr`` when that module exists, else ``None`` (it may not have landed yet)."""
    try:
        if importlib.util.find_spec(module) is None:
            return None
        return getattr(importlib.import_module(module), attr, None)
    except ImportError:
        return None


_THRESHOLD_RE = re.compile(
    r"^\s*(?:(?:med|min|max|mean)\(\s*(?P<inner>[\w.]+)\s*\)|(?P<bare>[\w.]+))"
    r"\s*(?:<=|>=|==|!=|<|>)\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*$"
)


def _known_metric(path: str, metric: str) -> None:
    if metric not in METRICS:
        close = difflib.get_close_matches(metric, list(METRICS), n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(close)}?" if close else "see docs/metrics.md"
        fail(path, f"unknown metric {metric!r} ({hint})")


def threshold(path: str, expr: Any) -> str:
    """Check ``"<metric> <op> <number>"`` (optionally ``med|min|max|mean(<metric>)``).

    Uses ``harness.thresholds.parse_threshold`` for the full grammar when present.
    """
    if not isinstance(expr, str):
        fail(path, f"must be a string such as 'detection.recall >= 1' (got {expr!r})")
    parse = _optional_attr("harness.thresholds", "parse_threshold")
    match = _THRESHOLD_RE.match(expr)
    if match:
        _known_metric(path, match["inner"] or match["bare"])
    elif parse is None:
        fail(
            path,
            f"expected '<metric> <op> <number>' or 'med(<metric>) <op> <number>' (got {expr!r})",
        )
    if parse is not None:
        try:
            parsed = parse(expr)
        except ValueError as err:  # ThresholdError is expected to be a ValueError
            fail(path, str(err))
        metric = getattr(parsed, "metric", None)
        if isinstance(metric, str):
            _known_metric(path, metric)
    return expr


def thresholds(path: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (tuple, list)):
        fail(path, f"must be a list of expressions (got {value!r})")
    return tuple(threshold(f"{path}[{i}]", expr) for i, expr in enumerate(value))


def build_detector_config(overrides: Mapping[str, Any]) -> Any:
    """``logpipe.detector.DetectorConfig`` with ``overrides`` applied; ``None`` if absent.

    Its errors become ``detector.<field>: ...``.
    """
    cls = _optional_attr("logpipe.detector", "DetectorConfig")
    if cls is None:
        return None
    build = getattr(cls, "from_dict", None) or (lambda d: cls(**d))
    try:
        return build(dict(overrides))
    except TypeError as err:
        fail("detector", str(err))
    except ValueError as err:
        head, sep, reason = str(err).partition(": ")
        if sep and re.fullmatch(r"[\w.\[\]]+", head):
            fail(f"detector.{head.removeprefix('detector.')}", reason)
        fail("detector", str(err))


def detector_overrides(path: str, value: Any) -> Mapping[str, Any]:
    """A read-only mapping of detector settings, validated by the detector's own config."""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        fail(path, f"must be a mapping of setting names to values (got {value!r})")
    build_detector_config(value)
    return types.MappingProxyType(dict(value))


# --- plain JSON form -------------------------------------------------------------


def to_plain(value: Any) -> Any:
    """``value`` as JSON-able data: dataclasses -> dicts, tuples -> lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [to_plain(v) for v in value]
    return value


def _deep_tuple(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_deep_tuple(v) for v in value)
    return value


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _convert(tp: Any, value: Any, path: str) -> Any:
    """Turn plain ``value`` into what a field annotated ``tp`` holds."""
    if _is_dataclass_type(tp):
        return from_plain(tp, value, path)
    if typing.get_origin(tp) is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis and _is_dataclass_type(args[0]):
            return tuple(from_plain(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        return _deep_tuple(value)
    return value


def _relocate(err: ScenarioError, own_path: str, path: str) -> ScenarioError:
    """Rewrite an error raised under a class's default path to the actual ``path``."""
    if err.field is None or own_path == path or not err.field.startswith(own_path):
        return err
    return ScenarioError.at(path + err.field[len(own_path) :], err.reason)


def from_plain(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass ``cls`` from plain ``data``; unknown keys and type errors name the path.

    ``cls`` may declare a ``_path`` class variable: the path its own validation
    reports; errors are re-pointed to ``path`` (e.g. an item of a list).
    """
    if not isinstance(data, Mapping):
        raise ScenarioError.at(path or "scenario", f"must be an object (got {data!r})")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ScenarioError.at(join_path(path, str(key)), unknown_reason(str(key), known))
        kwargs[key] = _convert(hints[key], value, join_path(path, key))
    for name, f in known.items():
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if no_default and name not in kwargs:
            raise ScenarioError.at(join_path(path, name), "required")
    try:
        return cls(**kwargs)
    except ScenarioError as err:
        raise _relocate(err, getattr(cls, "_path", path), path) from None


def unknown_reason(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    return f"unknown setting{hint}"


# --- key.path=value assignments --------------------------------------------------

_PATH_RE = re.compile(r"^[A-Za-z_]\w*(?:\.\w+|\[\d+\])*$")


def parse_value(text: str) -> Any:
    """A ``--set`` value: JSON when it parses (numbers, true, null, lists...), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignment(text: str, origin: str = "--set") -> tuple[str, Any]:
    """Split ``"key.path=value"`` into the path and its parsed value."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not _PATH_RE.match(key):
        raise ScenarioError(f"{origin} {text!r}: expected key.path=value")
    return key, parse_value(raw.strip())


def split_path(path: str) -> list[str]:
    """``"a.b[0].c"`` -> ``["a", "b", "0", "c"]``."""
    return path.replace("[", ".").replace("]", "").split(".")


def _child(node: Any, part: str, path: str, origin: str) -> tuple[Any, Any]:
    """The container ``node`` addressed by ``part``: (key or index, current value)."""
    if isinstance(node, dict) and part in node:
        return part, node[part]
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return int(part), node[int(part)]
    known = list(node) if isinstance(node, dict) else []
    raise ScenarioError.at(f"{origin} {path}", unknown_reason(part, known))


def apply_assignments(
    tree: Mapping[str, Any],
    assignments: Iterable[tuple[str, Any]],
    *,
    open_keys: Iterable[str] = (),
    origin: str = "--set",
) -> dict[str, Any]:
    """A copy of plain ``tree`` with each ``(path, value)`` assigned, in order.

    Every path must already exist in ``tree`` (which holds every setting, ``None``
    included), except directly under an ``open_keys`` mapping, whose keys are free.
    """
    out = copy.deepcopy(dict(tree))
    open_set = set(open_keys)
    for path, value in assignments:
        parts = split_path(path)
        node: Any = out
        for part in parts[:-1]:
            _, node = _child(node, part, path, origin)
        last = parts[-1]
        if len(parts) == 2 and parts[0] in open_set and isinstance(node, dict):
            node[last] = value
            continue
        key, _ = _child(node, last, path, origin)
        node[key] = value
    return out
