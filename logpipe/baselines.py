"""Per-key EWMA baselines for the detector's rules, bounded in the number of keys.

A key is a service, an endpoint key or a user; ``window`` arguments are the
detector's window index (one per slide, empty windows included).
"""

from __future__ import annotations

import math
from collections import OrderedDict


class EwmaBaselines:
    """Per-key EWMA baselines, bounded to ``max_keys`` (least recently updated evicted).

    With ``decay``, a key not updated for some windows is read as if it had been
    observed at 0 in each of them (a user who went quiet), computed lazily so
    absent keys cost nothing per window.
    """

    def __init__(self, alpha: float, max_keys: int, decay: bool = False) -> None:
        self.alpha = alpha
        self.max_keys = max_keys
        self.decay = decay
        # key -> [value, updates, window index of the last update or hold]
        self.items: OrderedDict[str, list[float]] = OrderedDict()

    def get(self, key: str, window: int) -> tuple[float, int]:
        """(baseline as of the window before ``window``, number of updates)."""
        item = self.items.get(key)
        if item is None:
            return 0.0, 0
        value, n, last = item
        if self.decay and window - last > 1:
            value *= (1.0 - self.alpha) ** (window - last - 1)
        return value, int(n)

    def update(self, key: str, x: float, window: int, fresh: float | None = None) -> None:
        """Fold ``x`` in; a new key starts from ``fresh`` when given.

        Without a prior the first updates weigh ``1/n`` (a running mean) until that
        drops below ``alpha``, so a baseline is not dominated by its first window.
        """
        value, n = self.get(key, window)
        if n == 0 and fresh is not None:
            value = fresh + self.alpha * (x - fresh)
            n = math.ceil(1.0 / self.alpha)  # the prior counts as settled history
        else:
            value += max(self.alpha, 1.0 / (n + 1)) * (x - value)
        self.items[key] = [value, n + 1, window]
        self.items.move_to_end(key)
        if len(self.items) > self.max_keys:
            self.items.popitem(last=False)

    def hold(self, key: str, window: int) -> None:
        """Freeze a key during an incident: no update, and no decay either."""
        item = self.items.get(key)
        if item is not None:
            item[0] = self.get(key, window)[0]
            item[2] = window
