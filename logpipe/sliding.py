"""Sliding windows over pane aggregates.

:class:`SlidingWindow` keeps the last ``size_ms / slide_ms`` panes
(:class:`logpipe.windows.PaneAggregate`) and merges them with two stacks: amortized
O(1) pane merges per slide, whatever the window length, and no row rescanned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from logpipe.heavy_hitters import HeavyHitters
from logpipe.windows import KeyStats, PaneAggregate, SketchConfig, WindowSpec

__all__ = ["SlidingWindow", "WindowView"]


@dataclass
class WindowView:
    """The merged contents of one window ``[start_ms, end_ms)``."""

    start_ms: int
    end_ms: int
    lines: int
    services: dict[str, KeyStats]
    endpoints: dict[str, KeyStats]
    users: HeavyHitters
    denied_users: HeavyHitters
    last_pane: int = field(default=0)


class SlidingWindow:
    """The last ``spec.panes_per_window`` panes, merged on every push.

    Two-stacks sliding aggregation: the back stack holds a running merge of the
    newest panes, the front stack holds suffix merges of the older ones, so each
    push costs an amortized constant number of pane merges plus one merge for the
    view, and no row is ever rescanned. Pushed aggregates are never mutated.
    """

    def __init__(self, spec: WindowSpec, config: SketchConfig | None = None) -> None:
        self.spec = spec
        self._config = config or SketchConfig()
        self._last: int | None = None
        self._front: list[PaneAggregate] = []  # suffix merges; [-1] covers all of front
        self._back: list[PaneAggregate] = []  # raw panes, oldest first
        self._back_agg: PaneAggregate | None = None

    @property
    def last_pane(self) -> int | None:
        return self._last

    def push(self, pane_agg: PaneAggregate) -> WindowView:
        """Add the next pane (panes skipped since the last push count as empty)."""
        p, k = pane_agg.pane, self.spec.panes_per_window
        if self._last is not None and p <= self._last:
            raise ValueError(f"pane: {p} is not after the last pushed pane {self._last}")
        if self._last is None or p - self._last >= k:
            self._front, self._back, self._back_agg = [], [], None
        else:
            for gap in range(self._last + 1, p):
                self._append(PaneAggregate.empty(gap, self._config))
        self._append(pane_agg)
        self._last = p
        return self._view(p)

    def _append(self, agg: PaneAggregate) -> None:
        self._back.append(agg)
        if self._back_agg is None:
            self._back_agg = agg.copy()
        else:
            self._back_agg.merge(agg)
        if len(self._front) + len(self._back) > self.spec.panes_per_window:
            if not self._front:
                self._flip()
            self._front.pop()

    def _flip(self) -> None:
        acc: PaneAggregate | None = None
        for agg in reversed(self._back):
            if acc is None:
                acc = agg.copy()
            else:
                acc = acc.copy()
                acc.merge(agg)
            self._front.append(acc)
        self._back, self._back_agg = [], None

    def _view(self, pane: int) -> WindowView:
        if self._front:
            merged = self._front[-1].copy()
            if self._back_agg is not None:
                merged.merge(self._back_agg)
        else:
            assert self._back_agg is not None
            merged = self._back_agg.copy()
        pane_ms = self.spec.pane_ms
        return WindowView(
            start_ms=(pane - self.spec.panes_per_window + 1) * pane_ms,
            end_ms=(pane + 1) * pane_ms,
            lines=merged.lines,
            services=merged.services,
            endpoints=merged.endpoints,
            users=merged.users,
            denied_users=merged.denied_users,
            last_pane=pane,
        )
