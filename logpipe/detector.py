"""Anomaly rules over sliding windows: configuration and alert records.

Three rules, one per kind in :data:`schema.ANOMALY_KINDS`:

- ``error_rate`` (key: service): the window's 5xx share of requests against the
  service's EWMA baseline share.
- ``latency`` (key: endpoint key): a window latency quantile (p95 by default)
  against the endpoint's EWMA baseline of that quantile.
- ``user_activity`` (key: user): the user's share of the window's traffic (and
  share of denied 401/403 requests) against the user's EWMA baseline share.

Every rule compares intensive quantities (shares, quantiles), so a change of
arrival rate (ramps, bursts) or a partially filled first window is not an anomaly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from logpipe import schema


@dataclass(frozen=True)
class DetectorConfig:
    """Settings of the anomaly rules; validated on construction.

    The defaults detect the generator's injections (a service at ~40 % 5xx, an
    endpoint 10x slower, a new user at ~8 % of traffic) within one or two slides
    and stay quiet on a steady Zipf stream.
    """

    ewma_alpha: float = 0.1
    # Windows evaluated (baselines updated) before any alert may fire; a service or
    # endpoint also needs this many baseline updates of its own.
    warmup_windows: int = 5
    # error_rate: share >= max(factor * baseline, floor), requests >= min_requests,
    # and the 5xx count must exceed the baseline expectation by error_z binomial
    # standard deviations (keeps low-volume services quiet).
    error_factor: float = 3.0
    error_floor: float = 0.05
    error_z: float = 4.0
    min_requests: int = 100
    # latency: window quantile >= factor * baseline quantile, with enough samples.
    latency_quantile: float = 0.95
    latency_factor: float = 3.0
    latency_min_requests: int = 50
    # user_activity: share of window lines (or of denied requests over window
    # lines) >= max(factor * baseline share, min share) and count >= min count.
    user_factor: float = 3.0
    user_min_count: int = 50
    user_min_share: float = 0.03
    user_min_denied_share: float = 0.01
    user_candidates: int = 32
    # An incident alerts once and ends after this many consecutive normal windows.
    clear_after_windows: int = 5
    # Bound on tracked baselines per kind (least recently updated evicted first).
    max_keys: int = 20_000

    def __post_init__(self) -> None:
        _check(0.0 < self.ewma_alpha <= 1.0, "ewma_alpha", "must be in (0, 1]", self.ewma_alpha)
        for name in ("error_factor", "latency_factor", "user_factor"):
            value = getattr(self, name)
            _check(_finite(value) and value >= 1.0, name, "must be a number >= 1", value)
        for name in ("error_floor", "user_min_share", "user_min_denied_share"):
            value = getattr(self, name)
            _check(_finite(value) and 0.0 <= value <= 1.0, name, "must be in [0, 1]", value)
        _check(_finite(self.error_z) and self.error_z >= 0, "error_z", "must be >= 0", self.error_z)
        q = self.latency_quantile
        _check(_finite(q) and 0.0 < q < 1.0, "latency_quantile", "must be in (0, 1)", q)
        for name in ("warmup_windows", "min_requests", "latency_min_requests", "user_min_count"):
            value = getattr(self, name)
            _check(_int(value) and value >= 0, name, "must be an integer >= 0", value)
        for name in ("user_candidates", "clear_after_windows", "max_keys"):
            value = getattr(self, name)
            _check(_int(value) and value >= 1, name, "must be an integer >= 1", value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorConfig:
        """Build from a (possibly partial) mapping; unknown fields are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"detector.{unknown[0]}: unknown setting")
        return cls(**data)


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(ok: bool, field: str, message: str, value: object) -> None:
    if not ok:
        raise ValueError(f"detector.{field}: {message} (got {value!r})")


@dataclass(frozen=True)
class Alert:
    """One anomaly incident, alerted once by the detector.

    ``observed``/``baseline`` are a 5xx share (error_rate), seconds (latency) or
    a share of window lines (user_activity). ``detected_wall_s`` is ``None`` until
    the alerting actor records the alert.
    """

    alert_id: int
    kind: str
    key: str
    window_start_ms: int
    window_end_ms: int
    observed: float
    baseline: float
    event_ms: int
    trigger_batch_id: int
    detected_wall_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        """Parse and validate a dict produced by :meth:`to_dict` (e.g. read from JSON)."""
        try:
            kind = str(data["kind"])
            if kind not in schema.ANOMALY_KINDS:
                raise ValueError(f"alert.kind: unknown kind {kind!r}")
            detected = data.get("detected_wall_s")
            return cls(
                alert_id=_as_int(data["alert_id"], "alert_id"),
                kind=kind,
                key=str(data["key"]),
                window_start_ms=_as_int(data["window_start_ms"], "window_start_ms"),
                window_end_ms=_as_int(data["window_end_ms"], "window_end_ms"),
                observed=float(data["observed"]),
                baseline=float(data["baseline"]),
                event_ms=_as_int(data["event_ms"], "event_ms"),
                trigger_batch_id=_as_int(data["trigger_batch_id"], "trigger_batch_id"),
                detected_wall_s=None if detected is None else float(detected),
            )
        except KeyError as exc:
            raise ValueError(f"alert.{exc.args[0]}: missing field") from None


def _as_int(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"alert.{field}: expected an integer (got {value!r})")
    return value
