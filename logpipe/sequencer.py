"""Per-shard in-order release of pane partials that may arrive out of order or twice.

A shard sends its panes to the detector in increasing order, each naming the
pane it sent before (``prev``; ``None`` for its first). Ray keeps that order
while the detector lives, but when the detector actor restarts, a call that
never ran is retried and may arrive after a later call from the same shard. The
sequencer holds such a pane until its predecessor has arrived, drops every
pane it has already seen, and releases each shard's panes in order.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Final, Literal


class _Order(enum.Enum):
    ARRIVAL = "arrival"  # an enum member keeps its identity through pickling (journals)


# ``prev`` for a caller that does not know it: arrival order is taken as pane
# order (a pane after a later one is a duplicate), as for in-process callers.
ARRIVAL_ORDER: Final = _Order.ARRIVAL
Prev = int | None | Literal[_Order.ARRIVAL]


@dataclass
class PaneSequencer:
    """Tracks, per shard, the last pane released in order and the panes held back.

    Picklable: detector snapshots hold it.
    """

    through: dict[int, int] = field(default_factory=dict)  # shard -> last released pane
    held: dict[int, dict[int, tuple[int | None, Any]]] = field(default_factory=dict)
    reordered: int = 0  # panes that arrived ahead of their predecessor

    def offer(
        self, shard: int, pane: int, prev: Prev, item: Any, floor: int | None = None
    ) -> list[tuple[int, Any]] | None:
        """Take one pane; return the ``(pane, item)`` now released in order, ``None`` for a
        duplicate. ``floor``: panes below it are already complete (late: duplicates)."""
        last = self.through.get(shard)
        held = self.held.setdefault(shard, {})
        if (last is not None and pane <= last) or pane in held:
            return None
        if floor is not None and pane < floor:
            return None
        held[pane] = (last if prev is ARRIVAL_ORDER else prev, item)
        released = self._release(shard)
        if not released:
            self.reordered += 1
        return released

    def _release(self, shard: int) -> list[tuple[int, Any]]:
        held = self.held[shard]
        out: list[tuple[int, Any]] = []
        while held:
            pane = min(held)
            prev, item = held[pane]
            last = self.through.get(shard)
            # Released when its predecessor is: the shard's first pane (prev None),
            # or one following a pane already released.
            if prev is not None and (last is None or prev > last):
                break
            del held[pane]
            self.through[shard] = pane
            out.append((pane, item))
        return out

    def release_all(self) -> list[tuple[int, int, Any]]:
        """End of stream: every held pane as ``(shard, pane, item)``, predecessors or not
        (a predecessor that never came is counted empty by the caller)."""
        out: list[tuple[int, int, Any]] = []
        for shard, held in self.held.items():
            for pane in sorted(held):
                out.append((shard, pane, held.pop(pane)[1]))
                self.through[shard] = pane
        return out

    def complete_through(self, n_shards: int) -> int | None:
        """The last pane every shard has released in order, once every shard has sent one."""
        if len(self.through) < n_shards:
            return None
        return min(self.through.values())

    @property
    def held_count(self) -> int:
        return sum(len(h) for h in self.held.values())
