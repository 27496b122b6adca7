"""Anomaly rules over sliding windows: configuration and alert records.

Three rules, one per kind in :data:`schema.ANOMALY_KINDS`:

- ``error_rate`` (key: service): the window's 5xx share of requests against the
  service's EWMA baseline share.
- ``latency`` (key: endpoint key): a window latency quantile (p95 by default)
  against the endpoint's EWMA baseline of that quantile.
- ``user_activity`` (key: user): the user's share of the window's traffic (and
  share of denied 401/403 requests) against the user's EWMA baseline share; a
  user first seen after warm-up starts from a zero baseline.

Every rule compares intensive quantities (shares, quantiles), so a change of
arrival rate (ramps, bursts) or a partially filled first window is not an anomaly.
An incident is alerted once and ends after ``clear_after_windows`` normal
windows; windows that fire, or fall inside an incident, never feed a baseline.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from logpipe import schema
from logpipe.baselines import EwmaBaselines
from logpipe.sequencer import ARRIVAL_ORDER, PaneSequencer, Prev
from logpipe.sliding import SlidingWindow, WindowView
from logpipe.windows import PaneAggregate, SketchConfig, WindowSpec


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
    error_factor: float = 2.5
    error_floor: float = 0.03
    error_z: float = 5.0
    min_requests: int = 100
    # latency: window quantile >= factor * baseline quantile, with enough samples.
    latency_quantile: float = 0.95
    latency_factor: float = 2.5
    latency_min_requests: int = 100
    # user_activity: share of window lines (or of denied requests over window
    # lines) >= max(factor * baseline share, min share) and count >= min count.
    user_factor: float = 3.0
    user_min_count: int = 30
    user_min_share: float = 0.01
    user_min_denied_share: float = 0.005
    user_candidates: int = 32
    # An incident alerts once and ends after this many consecutive normal windows.
    clear_after_windows: int = 5
    # Bound on tracked baselines per kind (least recently updated evicted first).
    max_keys: int = 20_000

    def __post_init__(self) -> None:
        a = self.ewma_alpha
        _check(_finite(a) and 0.0 < a <= 1.0, "ewma_alpha", "must be in (0, 1]", a)
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
        missing = [f.name for f in fields(cls) if f.name not in data and f.default is not None]
        if missing:
            raise ValueError(f"alert.{missing[0]}: missing field")
        if data["kind"] not in schema.ANOMALY_KINDS:
            raise ValueError(f"alert.kind: unknown kind {data['kind']!r}")
        for name in _ALERT_INTS:
            if not _int(data[name]):
                raise ValueError(f"alert.{name}: expected an integer (got {data[name]!r})")
        detected = data.get("detected_wall_s")
        return cls(
            **{name: data[name] for name in _ALERT_INTS},
            kind=str(data["kind"]),
            key=str(data["key"]),
            observed=float(data["observed"]),
            baseline=float(data["baseline"]),
            detected_wall_s=None if detected is None else float(detected),
        )


_ALERT_INTS = ("alert_id", "window_start_ms", "window_end_ms", "event_ms", "trigger_batch_id")


@dataclass
class _Pending:
    parts: dict[int, PaneAggregate]  # shard -> its partial
    trigger_batch_id: int

    def merged(self) -> PaneAggregate:
        # Shard order, not arrival order: heavy-hitter merges are order-sensitive,
        # and the same partials must always give the same window.
        shards = sorted(self.parts)
        if len(shards) == 1:
            return self.parts[shards[0]]  # the sliding window never mutates it
        agg = self.parts[shards[0]].copy()  # never mutate the submitted objects
        for s in shards[1:]:
            agg.merge(self.parts[s])
        return agg


@dataclass(frozen=True)
class _Finding:
    kind: str
    key: str
    observed: float
    baseline: float


class DetectorCore:
    """Merges per-shard pane partials in pane order and runs the rules (no Ray).

    Each shard's panes are taken in its own order (``prev_pane``, see
    :mod:`logpipe.sequencer`: one that arrives before its predecessor waits for
    it), so pane ``p`` is complete once every shard has released ``p`` or a
    later pane; a pane no shard sent (a gap) is slid in empty. A resubmitted
    ``(shard, pane)`` is ignored. Alerts are
    numbered in order, sorted by (kind, key) within a window, so the output does
    not depend on the order in which shards' partials arrive. ``sketch`` must be
    the shards' sketch settings (merges need equal capacities); when ``None`` the
    heavy-hitter capacity is taken from the first pane received.
    """

    def __init__(
        self,
        config: DetectorConfig,
        window: WindowSpec,
        n_shards: int,
        sketch: SketchConfig | None = None,
    ) -> None:
        if not _int(n_shards) or n_shards < 1:
            raise ValueError(f"detector.n_shards: must be an integer >= 1 (got {n_shards!r})")
        self.config = config
        self.spec = window
        self.n_shards = n_shards
        self._sketch = sketch
        self._window: SlidingWindow | None = None
        self._pending: dict[int, _Pending] = {}
        self._order = PaneSequencer()
        self._next_pane: int | None = None
        alpha, cap = config.ewma_alpha, config.max_keys
        self._error = EwmaBaselines(alpha, cap)
        self._latency = EwmaBaselines(alpha, cap)
        self._user = EwmaBaselines(alpha, cap, decay=True)
        self._denied = EwmaBaselines(alpha, cap, decay=True)
        self._incidents: dict[tuple[str, str], int] = {}  # -> consecutive normal windows
        self.window_index = 0  # windows slid, empty ones included
        self.windows_evaluated = 0  # windows with traffic (the warm-up counter)
        self.panes_completed = 0
        self.duplicates_ignored = 0
        self.next_alert_id = 0

    def submit(
        self,
        shard_id: int,
        pane: PaneAggregate,
        trigger_batch_id: int,
        prev_pane: Prev = ARRIVAL_ORDER,
    ) -> list[Alert]:
        """Add one shard's partial of ``pane``; return alerts of the panes it completed.

        ``prev_pane``: the pane the shard sent before (``None``: its first); without
        it, arrival order is pane order.
        """
        if not _int(shard_id) or not 0 <= shard_id < self.n_shards:
            raise ValueError(f"detector.submit: shard_id {shard_id!r} not in [0, {self.n_shards})")
        item = (pane, trigger_batch_id)
        released = self._order.offer(shard_id, pane.pane, prev_pane, item, self._next_pane)
        if released is None:
            self.duplicates_ignored += 1
            return []
        for _, (agg, trigger) in released:
            self._add_part(shard_id, agg, trigger)
        low = self._order.complete_through(self.n_shards)
        if low is None or not released:
            return []
        return self._complete_through(low, trigger_batch_id)

    def _add_part(self, shard_id: int, pane: PaneAggregate, trigger_batch_id: int) -> None:
        if self._sketch is None:
            self._sketch = SketchConfig(heavy_hitters=pane.users.capacity)
        slot = self._pending.get(pane.pane)
        if slot is None:
            self._pending[pane.pane] = _Pending({shard_id: pane}, trigger_batch_id)
        else:
            slot.parts[shard_id] = pane
            slot.trigger_batch_id = max(slot.trigger_batch_id, trigger_batch_id)

    def flush(self) -> list[Alert]:
        """End of stream: complete every pending pane, missing partials counted empty."""
        for shard_id, _, (agg, trigger) in self._order.release_all():
            self._add_part(shard_id, agg, trigger)
        if not self._pending:
            return []
        last = max(self._pending)
        return self._complete_through(last, self._pending[last].trigger_batch_id)

    def _complete_through(self, low: int, trigger_batch_id: int) -> list[Alert]:
        if self._next_pane is None:
            self._next_pane = min(self._pending)
        alerts: list[Alert] = []
        # After this many empty panes the window is empty and every incident has
        # cleared, so a longer gap changes nothing more.
        idle_cap = self.spec.panes_per_window + self.config.clear_after_windows
        while self._next_pane <= low:
            p = self._next_pane
            slot = self._pending.pop(p, None)
            if slot is not None:
                alerts.extend(self._slide(slot.merged(), slot.trigger_batch_id))
                self._next_pane = p + 1
                continue
            gap_end = min([q for q in self._pending if q > p] + [low + 1])
            slid_to = min(gap_end, p + idle_cap)
            for q in range(p, slid_to):
                alerts.extend(self._slide(PaneAggregate.empty(q, self._sketch), trigger_batch_id))
            self.window_index += gap_end - slid_to  # quiet users' baselines keep decaying
            self._next_pane = gap_end
        return alerts

    def _slide(self, agg: PaneAggregate, trigger_batch_id: int) -> list[Alert]:
        if self._window is None:
            self._window = SlidingWindow(self.spec, self._sketch)
        view = self._window.push(agg)
        self.panes_completed += 1
        w = self.window_index
        self.window_index += 1
        armed = self.windows_evaluated >= self.config.warmup_windows
        if view.lines > 0:
            self.windows_evaluated += 1
        # Keys seen with too little volume to judge: neither anomalous nor normal.
        unjudged: set[tuple[str, str]] = set()
        findings = [
            *self._error_rule(view, w, armed, unjudged),
            *self._latency_rule(view, w, armed, unjudged),
            *self._user_rule(view, w, armed),
        ]
        return self._open_incidents(findings, unjudged, view, trigger_batch_id)

    def _open_incidents(
        self,
        findings: list[_Finding],
        unjudged: set[tuple[str, str]],
        view: WindowView,
        trigger_batch_id: int,
    ) -> list[Alert]:
        findings.sort(key=lambda f: (schema.ANOMALY_KINDS.index(f.kind), f.key))
        alerts: list[Alert] = []
        fired = set()
        for f in findings:
            ident = (f.kind, f.key)
            fired.add(ident)
            if ident not in self._incidents:
                start, end, n = view.start_ms, view.end_ms, self.next_alert_id
                alert = Alert(
                    n, f.kind, f.key, start, end, f.observed, f.baseline, end, trigger_batch_id
                )
                alerts.append(alert)
                self.next_alert_id += 1
            self._incidents[ident] = 0
        for ident in [i for i in self._incidents if i not in fired and i not in unjudged]:
            self._incidents[ident] += 1
            if self._incidents[ident] >= self.config.clear_after_windows:
                del self._incidents[ident]
        return alerts

    def _judge(
        self,
        kind: str,
        key: str,
        fire: bool,
        ewma: EwmaBaselines,
        x: float,
        w: int,
        fresh: float | None = None,
    ) -> None:
        # Anomalous windows (firing, or inside an open incident) never feed a baseline.
        if fire or (kind, key) in self._incidents:
            ewma.hold(key, w)
        else:
            ewma.update(key, x, w, fresh)

    def _error_rule(
        self, view: WindowView, w: int, armed: bool, unjudged: set[tuple[str, str]]
    ) -> list[_Finding]:
        cfg, out = self.config, list[_Finding]()
        for service, st in view.services.items():
            n = st.requests
            if n < cfg.min_requests or n <= 0:
                unjudged.add((schema.ERROR_RATE, service))
                continue
            share = st.status_5xx / n
            base, seen = self._error.get(service, w)
            noise = cfg.error_z * math.sqrt(n * base * (1.0 - base))
            fire = (
                armed
                and seen >= cfg.warmup_windows
                and share >= max(cfg.error_factor * base, cfg.error_floor)
                and st.status_5xx - n * base >= noise
            )
            if fire:
                out.append(_Finding(schema.ERROR_RATE, service, share, base))
            self._judge(schema.ERROR_RATE, service, fire, self._error, share, w)
        return out

    def _latency_rule(
        self, view: WindowView, w: int, armed: bool, unjudged: set[tuple[str, str]]
    ) -> list[_Finding]:
        cfg, out = self.config, list[_Finding]()
        floor = max(cfg.latency_min_requests, 1)
        for key, st in view.endpoints.items():
            # requests first: a cheap filter before counting the sketch (rows without
            # a request time are in requests, not in the latency sketch).
            if st.requests < floor or st.latency.count < floor:
                unjudged.add((schema.LATENCY, key))
                continue
            q = float(st.latency.quantile(cfg.latency_quantile))
            base, seen = self._latency.get(key, w)
            fire = (
                armed and seen >= cfg.warmup_windows and base > 0 and q >= cfg.latency_factor * base
            )
            if fire:
                out.append(_Finding(schema.LATENCY, key, q, base))
            self._judge(schema.LATENCY, key, fire, self._latency, q, w)
        return out

    def _user_rule(self, view: WindowView, w: int, armed: bool) -> list[_Finding]:
        cfg, out = self.config, list[_Finding]()
        lines = view.lines
        if lines <= 0:
            return out
        top = cfg.user_candidates
        candidates = dict.fromkeys(k for k, _ in view.users.top(top))
        candidates.update(dict.fromkeys(k for k, _ in view.denied_users.top(top)))
        for user in candidates:
            count, denied = view.users.estimate(user), view.denied_users.estimate(user)
            share, denied_share = count / lines, denied / lines
            base = self._user.get(user, w)[0]
            dbase = self._denied.get(user, w)[0]
            by_share = count >= cfg.user_min_count and share >= max(
                cfg.user_factor * base, cfg.user_min_share
            )
            by_denied = denied >= cfg.user_min_count and denied_share >= max(
                cfg.user_factor * dbase, cfg.user_min_denied_share
            )
            fire = armed and (by_share or by_denied)
            if fire:
                observed, baseline = (share, base) if by_share else (denied_share, dbase)
                out.append(_Finding(schema.USER_ACTIVITY, user, observed, baseline))
            # After warm-up a user first seen starts from 0: its first windows may
            # already hold a burst building up, which must not become its normal.
            fresh = 0.0 if armed else None
            self._judge(schema.USER_ACTIVITY, user, fire, self._user, share, w, fresh)
            self._judge(schema.USER_ACTIVITY, user, fire, self._denied, denied_share, w, fresh)
        for kind, user in self._incidents:
            if kind == schema.USER_ACTIVITY and user not in candidates:
                self._user.hold(user, w)
                self._denied.hold(user, w)
        return out

    def state(self) -> dict[str, Any]:
        """A deep, picklable snapshot of everything :meth:`restore` needs."""
        return copy.deepcopy({k: v for k, v in vars(self).items() if k in _STATE_FIELDS})

    def restore(self, state: dict[str, Any]) -> None:
        """Resume from a :meth:`state` snapshot (same config, window and shard count)."""
        missing = _STATE_FIELDS - set(state)
        if missing:
            raise ValueError(f"detector.restore: snapshot lacks {sorted(missing)}")
        for name, value in copy.deepcopy(state).items():
            if name in _STATE_FIELDS:
                setattr(self, name, value)

    def stats(self) -> dict[str, Any]:
        return {
            "panes_completed": self.panes_completed,
            "duplicates_ignored": self.duplicates_ignored,
            "windows_evaluated": self.windows_evaluated,
            "alerts": self.next_alert_id,
            "pending_panes": len(self._pending),
            "held_panes": self._order.held_count,
            "panes_reordered": self._order.reordered,
            "open_incidents": len(self._incidents),
            "tracked_keys": sum(
                len(e.items) for e in (self._error, self._latency, self._user, self._denied)
            ),
        }


_STATE_FIELDS = frozenset(
    {
        "_sketch", "_window", "_pending", "_order", "_next_pane", "_error", "_latency", "_user",
        "_denied", "_incidents", "window_index", "windows_evaluated", "panes_completed",
        "duplicates_ignored", "next_alert_id",
    }
)  # fmt: skip
