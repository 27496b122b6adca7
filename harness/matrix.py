"""Matrices: named variants of a base scenario, from axes of values or explicit overrides.

Each variant is the base with a set of ``key.path=value`` overrides applied
(:meth:`harness.scenario.Scenario.with_overrides`), so it is validated like any
scenario; variant names are built from the axis values and safe in file names.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from harness.overrides import ScenarioError, split_path

if TYPE_CHECKING:
    from harness.scenario import Scenario

__all__ = ["Matrix", "default_axis_label", "format_axis_value"]


# --- variant names ---------------------------------------------------------------

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.]+")


def format_axis_value(value: Any) -> str:
    """A short, file-name-safe rendering of one axis value."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "none"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float, str)):
        text = str(value)
    else:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return _NAME_UNSAFE.sub("_", text).strip("_") or "x"


def _axis_part(label: str, value: Any) -> str:
    # "samplers_on" reads better than "sampleron"; numbers stay glued: "shards4".
    sep = "_" if label and isinstance(value, bool) else ""
    return f"{label}{sep}{format_axis_value(value)}"


def default_axis_label(key: str | tuple[str, ...], value: Any) -> str:
    """Strings stand alone (``by_service``); other values get the setting's name (``shards4``)."""
    if isinstance(value, str):
        return ""
    first = key if isinstance(key, str) else key[0]
    return split_path(first)[-1]


_VARIANT_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
AxisKey = str | tuple[str, ...]
Overrides = Mapping[str, Any] | Iterable[str]


class Matrix:
    """Variants of a base scenario: the product of ``axes``, or explicit ``variants``.

    ``axes`` maps a setting path (or a tuple of paths set to the same value) to its
    values; variants are named by joining each value with its label (``labels``,
    default: the setting's last name for non-strings), e.g. ``by_service-4-skew1.5``.
    ``where`` filters combinations (it gets the axis key -> value mapping).
    ``variants`` maps names to a Scenario or to overrides of the base (a path ->
    value mapping or ``"path=value"`` strings). Every variant is built and
    validated on construction.
    """

    def __init__(
        self,
        base: Scenario,
        axes: Mapping[AxisKey, Iterable[Any]] | None = None,
        *,
        variants: Mapping[str, Scenario | Overrides] | None = None,
        labels: Mapping[AxisKey, str] | None = None,
        where: Callable[[Mapping[AxisKey, Any]], bool] | None = None,
    ) -> None:
        if not hasattr(base, "with_overrides"):
            raise ScenarioError(f"matrix: base must be a Scenario (got {base!r})")
        if (axes is None) == (variants is None):
            raise ScenarioError("matrix: give either axes or variants")
        self.base = base
        if axes is not None:
            built = self._from_axes(axes, labels or {}, where)
        else:
            assert variants is not None
            built = self._from_variants(variants)
        if not built:
            raise ScenarioError("matrix: no variants (where= excluded every combination?)")
        names = [name for name, _ in built]
        for name in names:
            if names.count(name) > 1:
                raise ScenarioError(f"matrix: variant name {name!r} is not unique")
        self._variants: tuple[tuple[str, Scenario], ...] = tuple(built)

    @property
    def name(self) -> str:
        return self.base.name

    @property
    def description(self) -> str:
        return self.base.description

    def variants(self) -> list[tuple[str, Scenario]]:
        """``(variant name, scenario)`` pairs in a deterministic order."""
        return list(self._variants)

    def _variant(self, name: str, overrides: Overrides, origin: str) -> Scenario:
        try:
            return self.base.with_overrides(overrides, origin=origin)  # type: ignore[arg-type]
        except ScenarioError as err:
            raise ScenarioError(
                f"{err} (matrix variant {name!r})", field=err.field, reason=err.reason
            ) from None

    def _from_axes(
        self,
        axes: Mapping[AxisKey, Iterable[Any]],
        labels: Mapping[AxisKey, str],
        where: Callable[[Mapping[AxisKey, Any]], bool] | None,
    ) -> list[tuple[str, Scenario]]:
        if not isinstance(axes, Mapping) or not axes:
            raise ScenarioError("matrix.axes: must be a non-empty mapping of setting -> values")
        keys = list(axes)
        values = []
        for key in keys:
            options = list(axes[key]) if not isinstance(axes[key], (str, bytes)) else []
            if not options:
                raise ScenarioError(f"matrix.axes[{key!r}]: must be a non-empty list of values")
            values.append(options)
        built = []
        for combo in itertools.product(*values):
            chosen = dict(zip(keys, combo))
            if where is not None and not where(chosen):
                continue
            parts = [
                _axis_part(labels.get(key, default_axis_label(key, value)), value)
                for key, value in chosen.items()
            ]
            name = "-".join(parts)
            overrides = {
                path: value
                for key, value in chosen.items()
                for path in ((key,) if isinstance(key, str) else key)
            }
            built.append((name, self._variant(name, overrides, "matrix axis")))
        return built

    def _from_variants(
        self, variants: Mapping[str, Scenario | Overrides]
    ) -> list[tuple[str, Scenario]]:
        if not isinstance(variants, Mapping) or not variants:
            raise ScenarioError("matrix.variants: must be a non-empty mapping of name -> variant")
        built = []
        for name, spec in variants.items():
            if not isinstance(name, str) or not _VARIANT_NAME_RE.match(name):
                raise ScenarioError(
                    f"matrix.variants[{name!r}]: names use letters, digits, '_', '.', '-'"
                )
            if hasattr(spec, "with_overrides"):
                built.append((name, typing.cast("Scenario", spec)))
            else:
                overrides = typing.cast("Overrides", spec)
                built.append((name, self._variant(name, overrides, "matrix variant")))
        return built
