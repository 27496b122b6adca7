"""Mergeable Misra-Gries heavy hitters, built for many groups at once.

:class:`HeavyHitters` keeps at most ``capacity`` string counters; merging uses the
mergeable-summaries merge of Agarwal et al., so shard partials of a pane merge
within a stated bound (exactly while there are at most ``capacity`` distinct
keys). :func:`heavy_hitters_by_group` builds the summaries of every (pane, key)
group of a table from one pass of pre-aggregated counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class HeavyHitters:
    """Mergeable Misra-Gries heavy-hitter summary with at most ``capacity`` counters.

    ``estimate(key)`` never overestimates and underestimates by at most
    :meth:`error_bound` ``= (total - sum(counters)) // (capacity + 1) <= total /
    capacity`` (Agarwal et al., "Mergeable summaries", 2012). With at most
    ``capacity`` distinct keys nothing is ever subtracted and counts are exact.
    """

    __slots__ = ("capacity", "counters", "total")

    def __init__(self, capacity: int = 64) -> None:
        if capacity < 1:
            raise ValueError(f"capacity: must be >= 1, got {capacity!r}")
        self.capacity = int(capacity)
        self.counters: dict[str, int] = {}
        self.total = 0

    def update(
        self, keys: pa.Array | np.ndarray | Sequence[str], counts: np.ndarray | None = None
    ) -> None:
        """Add (key, count) pairs; ``counts`` defaults to one per key."""
        arr = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
        if not isinstance(arr, pa.Array):
            arr = pa.array(arr, type=pa.string())
        enc = pc.dictionary_encode(pc.fill_null(arr, "") if arr.null_count else arr)
        codes = enc.indices.to_numpy()
        cnt = np.ones(len(codes), np.int64) if counts is None else np.asarray(counts, np.int64)
        if len(cnt) != len(codes) or (cnt < 0).any():
            raise ValueError("counts: must be non-negative, one per key")
        sums = np.zeros(len(enc.dictionary), dtype=np.int64)
        np.add.at(sums, codes, cnt)
        names = enc.dictionary.to_pylist()
        batch = heavy_hitters_by_group(sums, np.zeros(len(sums), np.int64), names, 1, self.capacity)
        self.merge(batch[0])

    def merge(self, other: HeavyHitters) -> None:
        """Merge ``other`` into this summary (sum counters, then prune to capacity)."""
        if other.capacity != self.capacity:
            raise ValueError("HeavyHitters.merge: capacity differs")
        merged = self.counters  # our own dict: copy() copies it
        get = merged.get
        for k, v in other.counters.items():
            merged[k] = get(k, 0) + v
        if len(merged) > self.capacity:
            thr = sorted(merged.values(), reverse=True)[self.capacity]
            merged = {k: v - thr for k, v in merged.items() if v > thr}
        self.counters = merged
        self.total += other.total

    def estimate(self, key: str) -> int:
        """Lower bound on ``key``'s count, within :meth:`error_bound` of the truth."""
        return self.counters.get(key, 0)

    def error_bound(self) -> int:
        """Largest possible undercount of any key's :meth:`estimate`."""
        return (self.total - sum(self.counters.values())) // (self.capacity + 1)

    def top(self, n: int) -> list[tuple[str, int]]:
        """The ``n`` largest counters, descending, ties broken by key."""
        return sorted(self.counters.items(), key=lambda kv: (-kv[1], kv[0]))[:n]

    def copy(self) -> HeavyHitters:
        new = HeavyHitters.__new__(HeavyHitters)
        new.capacity, new.counters, new.total = self.capacity, dict(self.counters), self.total
        return new

    def __len__(self) -> int:
        return len(self.counters)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HeavyHitters):
            return NotImplemented
        return (self.capacity, self.total, self.counters) == (
            other.capacity,
            other.total,
            other.counters,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"HeavyHitters(capacity={self.capacity}, total={self.total}, top={self.top(3)})"


def heavy_hitters_by_group(
    counts: np.ndarray,
    groups: np.ndarray,
    names: pa.Array | Sequence[str] | np.ndarray,
    n_groups: int,
    capacity: int = 64,
    key_codes: np.ndarray | None = None,
) -> list[HeavyHitters]:
    """One summary per group from exact, pre-aggregated (group, key, count) rows.

    Row ``i`` says key ``names[key_codes[i]]`` (``names[i]`` when ``key_codes`` is
    None) has ``counts[i]`` in group ``groups[i]``; each (group, key) appears once.
    Each group keeps the counters above its (capacity+1)-th largest count, minus it.
    """
    counts = np.asarray(counts, dtype=np.int64)
    groups = np.asarray(groups, dtype=np.int64)
    codes = np.arange(len(counts)) if key_codes is None else np.asarray(key_codes)
    totals = np.zeros(n_groups, dtype=np.int64)
    np.add.at(totals, groups, counts)
    order = np.argsort(groups, kind="stable")
    g, c, k = groups[order], counts[order], codes[order]
    starts = np.searchsorted(g, np.arange(n_groups + 1))
    sizes = np.diff(starts)
    thr = np.zeros(n_groups, dtype=np.int64)
    # Only groups over capacity need their (capacity+1)-th largest count.
    for i in np.flatnonzero(sizes > capacity).tolist():
        part = c[starts[i] : starts[i + 1]]
        thr[i] = np.partition(part, len(part) - capacity - 1)[len(part) - capacity - 1]
    keep = c > thr[g]
    kept_counts = (c - thr[g])[keep].tolist()
    kept_codes = k[keep]
    if isinstance(names, pa.Array):
        kept_names = names.take(pa.array(kept_codes)).to_pylist()
    elif isinstance(names, np.ndarray):
        kept_names = names[kept_codes].tolist()
    else:
        kept_names = [names[i] for i in kept_codes.tolist()]
    bounds = np.searchsorted(g[keep], np.arange(n_groups + 1)).tolist()
    out = []
    for i, total in enumerate(totals.tolist()):
        s = HeavyHitters.__new__(HeavyHitters)
        lo, hi = bounds[i], bounds[i + 1]
        s.capacity, s.total = capacity, total
        s.counters = dict(zip(kept_names[lo:hi], kept_counts[lo:hi]))
        out.append(s)
    return out
