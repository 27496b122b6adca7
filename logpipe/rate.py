"""Arrival-rate profiles: how many log lines per second the source emits over time.

A profile maps time ``t`` (seconds since the start of the run) to a rate ``r(t)``
in lines per second. Line ``i`` is emitted at the time where the integral of the
rate, ``R(t)``, reaches ``i + 1``, so a run of ``duration_s`` seconds emits
``floor(R(duration_s))`` lines. Offsets are computed in closed form per profile
segment (vectorized), never with a Python loop per line.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

PROFILE_KINDS = ("constant", "ramp", "step", "burst")

# Absorbs float error in R(duration) so that e.g. 0.1 * 30 still yields 3 lines.
_COUNT_EPS = 1e-9


def _check_rate(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{name}: must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value!r}")
    if value < 0:
        raise ValueError(f"{name}: must be >= 0, got {value!r}")


def _check_positive(name: str, value: float) -> None:
    _check_rate(name, value)
    if value <= 0:
        raise ValueError(f"{name}: must be > 0, got {value!r}")


def _check_duration(duration_s: float) -> None:
    _check_rate("duration_s", duration_s)


def _line_count(total: float) -> int:
    return max(0, math.floor(total + _COUNT_EPS))


def _piecewise_offsets(bounds: np.ndarray, rates: np.ndarray, n: int) -> np.ndarray:
    """Invert a piecewise-constant rate: segment ``k`` is ``[bounds[k], bounds[k+1])``."""
    widths = np.diff(bounds)
    cum = np.concatenate(([0.0], np.cumsum(widths * rates)))
    targets = np.arange(1, n + 1, dtype=np.float64)
    # side="left": a target equal to a segment's end belongs to that segment, so a
    # zero-rate segment that follows is never chosen (it would divide by zero).
    seg = np.searchsorted(cum, targets, side="left") - 1
    seg = np.clip(seg, 0, len(rates) - 1)
    rate = rates[seg]
    with np.errstate(divide="ignore", invalid="ignore"):
        within = np.where(rate > 0, (targets - cum[seg]) / rate, 0.0)
    out = bounds[seg] + within
    # Float error must not push a line past the end or out of order.
    out = np.minimum(out, bounds[-1])
    return np.maximum.accumulate(out) if n else out


@dataclass(frozen=True)
class Constant:
    """A constant rate in lines per second."""

    rate: float

    def __post_init__(self) -> None:
        _check_rate("rate", self.rate)

    def rate_at(self, t: float, duration_s: float | None = None) -> float:
        """Rate at time ``t`` (lines/s)."""
        return float(self.rate) if t >= 0 else 0.0

    def expected_lines(self, duration_s: float) -> float:
        """Integral of the rate over ``[0, duration_s]``."""
        _check_duration(duration_s)
        return float(self.rate) * duration_s

    def line_offsets(self, duration_s: float) -> np.ndarray:
        """Emit offsets (seconds, float64, nondecreasing) of every line."""
        n = _line_count(self.expected_lines(duration_s))
        if n == 0:
            return np.empty(0, dtype=np.float64)
        out = np.arange(1, n + 1, dtype=np.float64) / float(self.rate)
        return np.minimum(out, float(duration_s))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "constant", **asdict(self)}


@dataclass(frozen=True)
class Ramp:
    """A rate changing linearly from ``start_rate`` to ``end_rate`` over the run."""

    start_rate: float
    end_rate: float

    def __post_init__(self) -> None:
        _check_rate("start_rate", self.start_rate)
        _check_rate("end_rate", self.end_rate)

    def rate_at(self, t: float, duration_s: float | None = None) -> float:
        """Rate at time ``t``; a ramp needs the run's ``duration_s``."""
        if duration_s is None:
            raise ValueError("duration_s: required for a ramp profile")
        _check_duration(duration_s)
        if t < 0:
            return 0.0
        if duration_s == 0 or t >= duration_s:
            return float(self.end_rate)
        return self.start_rate + (self.end_rate - self.start_rate) * t / duration_s

    def expected_lines(self, duration_s: float) -> float:
        _check_duration(duration_s)
        return 0.5 * (self.start_rate + self.end_rate) * duration_s

    def line_offsets(self, duration_s: float) -> np.ndarray:
        """Emit offsets solving ``a t + k t^2 = i + 1`` with ``k = (b - a) / 2d``."""
        n = _line_count(self.expected_lines(duration_s))
        if n == 0:
            return np.empty(0, dtype=np.float64)
        a = float(self.start_rate)
        k = (float(self.end_rate) - a) / (2.0 * duration_s)
        y = np.arange(1, n + 1, dtype=np.float64)
        disc = np.maximum(a * a + 4.0 * k * y, 0.0)
        # 2y / (a + sqrt(a^2 + 4ky)) is the root without cancellation when k ~ 0.
        out = 2.0 * y / (a + np.sqrt(disc))
        out = np.minimum(out, float(duration_s))
        return np.maximum.accumulate(out)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "ramp", **asdict(self)}


class _Piecewise:
    """Profiles made of constant-rate segments (``_segments`` gives their bounds)."""

    def _segments(self, duration_s: float) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def expected_lines(self, duration_s: float) -> float:
        _check_duration(duration_s)
        bounds, rates = self._segments(duration_s)
        return float(np.sum(np.diff(bounds) * rates))

    def line_offsets(self, duration_s: float) -> np.ndarray:
        n = _line_count(self.expected_lines(duration_s))
        bounds, rates = self._segments(duration_s)
        return _piecewise_offsets(bounds, rates, n)


@dataclass(frozen=True)
class Step(_Piecewise):
    """Piecewise-constant rate: ``steps`` is ``((duration_s, rate), ...)``; the last rate holds."""

    steps: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if not isinstance(self.steps, (tuple, list)) or not self.steps:
            raise ValueError("steps: must be a non-empty sequence of (duration_s, rate)")
        norm = []
        for i, item in enumerate(self.steps):
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise ValueError(f"steps: item {i} must be a (duration_s, rate) pair")
            _check_positive(f"steps[{i}].duration_s", item[0])
            _check_rate(f"steps[{i}].rate", item[1])
            norm.append((float(item[0]), float(item[1])))
        object.__setattr__(self, "steps", tuple(norm))

    def _segments(self, duration_s: float) -> tuple[np.ndarray, np.ndarray]:
        starts = np.concatenate(([0.0], np.cumsum([d for d, _ in self.steps])[:-1]))
        rates = np.array([r for _, r in self.steps], dtype=np.float64)
        keep = starts < duration_s
        keep[0] = True
        bounds = np.concatenate((starts[keep], [float(duration_s)]))
        return bounds, rates[keep]

    def rate_at(self, t: float, duration_s: float | None = None) -> float:
        if t < 0:
            return 0.0
        elapsed = 0.0
        for d, r in self.steps:
            elapsed += d
            if t < elapsed:
                return r
        return self.steps[-1][1]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "step", "steps": [list(s) for s in self.steps]}


@dataclass(frozen=True)
class Burst(_Piecewise):
    """``base_rate`` plus ``burst_rate`` during ``[start_s, start_s + duration_s)``.

    With ``every_s`` the burst repeats every ``every_s`` seconds from ``start_s``.
    """

    base_rate: float
    burst_rate: float
    start_s: float
    duration_s: float
    every_s: float | None = None

    def __post_init__(self) -> None:
        _check_rate("base_rate", self.base_rate)
        _check_rate("burst_rate", self.burst_rate)
        _check_rate("start_s", self.start_s)
        _check_positive("duration_s", self.duration_s)
        if self.every_s is not None:
            _check_positive("every_s", self.every_s)
            if self.every_s < self.duration_s:
                raise ValueError(
                    f"every_s: must be >= duration_s ({self.duration_s}), got {self.every_s}"
                )

    def _burst_starts(self, duration_s: float) -> np.ndarray:
        if self.start_s >= duration_s:
            return np.empty(0, dtype=np.float64)
        if self.every_s is None:
            return np.array([float(self.start_s)])
        count = math.ceil((duration_s - self.start_s) / self.every_s)
        starts = self.start_s + self.every_s * np.arange(count, dtype=np.float64)
        return starts[starts < duration_s]

    def _segments(self, duration_s: float) -> tuple[np.ndarray, np.ndarray]:
        starts = self._burst_starts(duration_s)
        ends = np.minimum(starts + self.duration_s, duration_s)
        # Alternating base / burst segments: [0, s0), [s0, e0), [e0, s1), ...
        edges = np.empty(2 * len(starts), dtype=np.float64)
        edges[0::2], edges[1::2] = starts, ends
        bounds = np.concatenate(([0.0], edges, [float(duration_s)]))
        rates = np.full(len(bounds) - 1, float(self.base_rate))
        rates[1::2] = self.base_rate + self.burst_rate
        return bounds, rates

    def rate_at(self, t: float, duration_s: float | None = None) -> float:
        if t < 0:
            return 0.0
        rel = t - self.start_s
        if rel < 0:
            return float(self.base_rate)
        if self.every_s is not None:
            rel = math.fmod(rel, self.every_s)
        in_burst = rel < self.duration_s
        return float(self.base_rate + (self.burst_rate if in_burst else 0.0))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "burst", **asdict(self)}


RateProfile = Constant | Ramp | Step | Burst

_BY_KIND: dict[str, type[Constant] | type[Ramp] | type[Step] | type[Burst]] = {
    "constant": Constant,
    "ramp": Ramp,
    "step": Step,
    "burst": Burst,
}


def profile_from_dict(d: dict[str, Any]) -> RateProfile:
    """Build a profile from its ``to_dict()`` form, e.g. ``{"kind": "ramp", ...}``."""
    if not isinstance(d, dict):
        raise ValueError(f"profile: must be a JSON object, got {type(d).__name__}")
    fields = dict(d)
    kind = fields.pop("kind", None)
    cls = _BY_KIND.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(
            f"kind: unknown rate profile {kind!r} (expected {', '.join(PROFILE_KINDS)})"
        )
    if cls is Step and isinstance(fields.get("steps"), list):
        fields["steps"] = tuple(tuple(s) if isinstance(s, list) else s for s in fields["steps"])
    try:
        return cls(**fields)
    except TypeError as exc:
        raise ValueError(f"{kind}: bad fields {sorted(fields)}: {exc}") from None
