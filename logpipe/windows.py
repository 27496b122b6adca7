"""Pane aggregates and the pane closing rule.

A pane is the window slide: pane ``p`` covers event times ``[p*pane_ms,
(p+1)*pane_ms)``. Shards fold parsed rows into per-pane :class:`PaneAggregate`
objects with :func:`aggregate_table` (vectorized: one dictionary encoding per key
column, then ``bincount``/sort passes per dimension, never a Python loop over
rows); partial aggregates of the same pane merge exactly (counts add, quantile
buckets add, HLL registers take maxima) except heavy hitters beyond capacity,
which stay within their stated bound. :class:`logpipe.sliding.SlidingWindow` keeps the
last ``size_ms / slide_ms`` panes of them.

Null handling (shared with the exact reference, :mod:`logpipe.reference`):
``event_ms`` must not be null (the parser rejects such lines); a null service is
``schema.DEFAULT_SERVICE``, a null endpoint ``"-"``, null bytes count 0, a null
status is neither 4xx nor 5xx, null latency is skipped by the latency sketch. The
user key is ``user``, falling back to ``ip`` when user is null, ``"-"`` or empty,
and to ``"-"`` when ip is null too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from logpipe.hashing import hash_strings
from logpipe.heavy_hitters import HeavyHitters, heavy_hitters_by_group
from logpipe.schema import (
    DEFAULT_SERVICE,
    DIM_ENDPOINT,
    DIM_SERVICE,
    PARSED_SCHEMA,
    endpoint_key,
)
from logpipe.sketches import (
    DistinctSketch,
    QuantileSketch,
    distinct_sketches_by_group,
    quantile_sketches_by_group,
)

# The parsed columns aggregate_table reads (ingest needs no others: the parse task
# sends shards only these, so paths, referers and user agents never travel on).
AGGREGATED_COLUMNS = (
    "ip",
    "user",
    "event_ms",
    "status",
    "bytes",
    "latency_s",
    "service",
    "endpoint",
)

NULL_ENDPOINT = "-"
NULL_USER = "-"
COUNT_FIELDS = ("requests", "status_4xx", "status_5xx", "denied", "bytes")
DENIED_STATUSES = (401, 403)


@dataclass(frozen=True)
class SketchConfig:
    """Sketch parameters shared by every shard and the detector."""

    rel_accuracy: float = 0.01
    hll_precision: int = 12
    heavy_hitters: int = 64  # capacity of every HeavyHitters summary

    def __post_init__(self) -> None:
        if not 0.0 < self.rel_accuracy < 1.0:
            raise ValueError(f"sketches.rel_accuracy: must be in (0, 1), got {self.rel_accuracy}")
        if not 4 <= self.hll_precision <= 18:
            raise ValueError(
                f"sketches.hll_precision: must be in [4, 18], got {self.hll_precision}"
            )
        if self.heavy_hitters < 1:
            raise ValueError(f"sketches.heavy_hitters: must be >= 1, got {self.heavy_hitters}")


@dataclass(frozen=True)
class WindowSpec:
    """A sliding window: ``size_ms`` long, advancing by ``slide_ms`` (= one pane)."""

    size_ms: int
    slide_ms: int

    def __post_init__(self) -> None:
        for name in ("size_ms", "slide_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"windows.{name}: must be an integer, got {value!r}")
            if value <= 0:
                raise ValueError(f"windows.{name}: must be positive, got {value}")
        if self.slide_ms % 1000:
            raise ValueError(
                f"windows.slide_ms: must be a multiple of 1000 ms (log timestamps have "
                f"second precision), got {self.slide_ms}"
            )
        if self.size_ms % self.slide_ms:
            raise ValueError(
                f"windows.size_ms: must be a multiple of slide_ms ({self.slide_ms}), "
                f"got {self.size_ms}"
            )

    @property
    def pane_ms(self) -> int:
        return self.slide_ms

    @property
    def panes_per_window(self) -> int:
        return self.size_ms // self.slide_ms


def pane_closed(pane: int, watermark_ms: int, pane_ms: int) -> bool:
    """Whether pane ``pane`` is closed once the watermark reaches ``watermark_ms``."""
    return watermark_ms >= (pane + 1) * pane_ms


def closable_panes(open_panes: Iterable[int], watermark_ms: int, pane_ms: int) -> list[int]:
    """The panes among ``open_panes`` that ``watermark_ms`` closes, ascending."""
    return sorted(p for p in open_panes if pane_closed(p, watermark_ms, pane_ms))


# --------------------------------------------------------------------------- aggregates


@dataclass(slots=True)
class KeyStats:
    """Exact counters and sketches for one key (service or endpoint) in a pane."""

    requests: int
    status_4xx: int
    status_5xx: int
    denied: int
    bytes: int
    latency: QuantileSketch
    users: DistinctSketch
    top_users: HeavyHitters

    @classmethod
    def empty(cls, config: SketchConfig | None = None) -> KeyStats:
        cfg = config or SketchConfig()
        return cls(
            0,
            0,
            0,
            0,
            0,
            QuantileSketch(cfg.rel_accuracy),
            DistinctSketch(cfg.hll_precision),
            HeavyHitters(cfg.heavy_hitters),
        )

    def merge(self, other: KeyStats) -> None:
        """Add ``other`` into this one, in place."""
        self.requests += other.requests
        self.status_4xx += other.status_4xx
        self.status_5xx += other.status_5xx
        self.denied += other.denied
        self.bytes += other.bytes
        self.latency.merge(other.latency)
        self.users.merge(other.users)
        self.top_users.merge(other.top_users)

    def copy(self) -> KeyStats:
        return KeyStats(
            self.requests,
            self.status_4xx,
            self.status_5xx,
            self.denied,
            self.bytes,
            self.latency.copy(),
            self.users.copy(),
            self.top_users.copy(),
        )

    def counts(self) -> dict[str, int]:
        """The exact integer counters."""
        return {name: getattr(self, name) for name in COUNT_FIELDS}


def _merge_keyed(into: dict[str, KeyStats], other: dict[str, KeyStats]) -> None:
    for key, stats in other.items():
        mine = into.get(key)
        if mine is None:
            into[key] = stats.copy()
        else:
            mine.merge(stats)


@dataclass
class PaneAggregate:
    """Everything a shard knows about one pane; partials of a pane merge."""

    pane: int
    lines: int = 0
    services: dict[str, KeyStats] = field(default_factory=dict)
    endpoints: dict[str, KeyStats] = field(default_factory=dict)
    # Requests, and 401/403 responses, per user over the pane. The defaults have
    # the default capacity: use ``empty(pane, config)`` for another SketchConfig.
    users: HeavyHitters = field(default_factory=HeavyHitters)
    denied_users: HeavyHitters = field(default_factory=HeavyHitters)

    @classmethod
    def empty(cls, pane: int, config: SketchConfig | None = None) -> PaneAggregate:
        cap = (config or SketchConfig()).heavy_hitters
        return cls(pane, 0, {}, {}, HeavyHitters(cap), HeavyHitters(cap))

    def merge(self, other: PaneAggregate) -> None:
        """Add ``other`` (another shard's partial, or another pane) in place."""
        self.lines += other.lines
        _merge_keyed(self.services, other.services)
        _merge_keyed(self.endpoints, other.endpoints)
        self.users.merge(other.users)
        self.denied_users.merge(other.denied_users)

    def copy(self) -> PaneAggregate:
        return PaneAggregate(
            self.pane,
            self.lines,
            {k: v.copy() for k, v in self.services.items()},
            {k: v.copy() for k, v in self.endpoints.items()},
            self.users.copy(),
            self.denied_users.copy(),
        )

    def counts(self) -> dict[str, Any]:
        """Exact counts: ``{"lines": n, "service": {key: {...}}, "endpoint": {...}}``."""
        return {
            "lines": self.lines,
            DIM_SERVICE: {k: v.counts() for k, v in sorted(self.services.items())},
            DIM_ENDPOINT: {k: v.counts() for k, v in sorted(self.endpoints.items())},
        }


@dataclass
class _Columns:
    """The decoded columns of one table, as numpy arrays."""

    pane_code: np.ndarray
    is_4xx: np.ndarray  # boolean masks over rows
    is_5xx: np.ndarray
    denied: np.ndarray
    bytes: np.ndarray
    latency: np.ndarray
    user_code: np.ndarray
    user_hash: np.ndarray  # of each name in user_names
    user_names: np.ndarray  # object array of str, indexed by user_code


def _as_array(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    return arr


def _encode(col: pa.ChunkedArray | pa.Array, fill: str) -> tuple[np.ndarray, pa.Array]:
    """Dictionary-encode a string column: (int64 codes, dictionary)."""
    arr = _as_array(col)
    if arr.null_count:
        arr = pc.fill_null(arr, fill)
    enc = pc.dictionary_encode(arr)
    return enc.indices.to_numpy().astype(np.int64), enc.dictionary


def _user_key(table: pa.Table) -> pa.Array:
    user = pc.fill_null(_as_array(table.column("user")), NULL_USER)
    missing = pc.is_in(user, value_set=pa.array([NULL_USER, ""]))
    return pc.if_else(missing, pc.fill_null(_as_array(table.column("ip")), NULL_USER), user)


def _dense_enough(size: int, n: int) -> bool:
    # A bincount over ``size`` slots beats a sort of ``n`` codes up to about this size.
    return size <= 4 * n + 4096


def _compact(codes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Renumber ``codes`` in ``[0, size)`` to dense group ids: (ids, code of each id)."""
    if _dense_enough(size, len(codes)):
        present = np.bincount(codes, minlength=size) > 0
        remap = np.cumsum(present) - 1
        return remap[codes], np.flatnonzero(present)
    uniq, inverse = np.unique(codes, return_inverse=True)
    return inverse.reshape(-1), uniq


def _count_codes(codes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``codes`` in ``[0, size)``, ascending, and how often each occurs."""
    if _dense_enough(size, len(codes)):
        counts = np.bincount(codes, minlength=size)
        uniq = np.flatnonzero(counts)
        return uniq, counts[uniq]
    return np.unique(codes, return_counts=True)


def _key_stats(groups: np.ndarray, n: int, cols: _Columns, cfg: SketchConfig) -> list[KeyStats]:
    """Build the KeyStats of every group id in ``range(n)`` in one pass per field."""
    requests = np.bincount(groups, minlength=n).tolist()
    s4 = np.bincount(groups[cols.is_4xx], minlength=n).tolist()
    s5 = np.bincount(groups[cols.is_5xx], minlength=n).tolist()
    denied = np.bincount(groups[cols.denied], minlength=n).tolist()
    nbytes = np.zeros(n, dtype=np.int64)
    np.add.at(nbytes, groups, cols.bytes)  # exact: a float bincount would round large sums
    lat = quantile_sketches_by_group(cols.latency, groups, n, cfg.rel_accuracy)
    # Both user summaries read the distinct (group, user) pairs, not the rows: a
    # distinct-count sketch is the same whatever the repeats, and there are far
    # fewer pairs than rows (users repeat within a pane).
    grp, user, counts = _user_pairs(groups, n, cols)
    hll = distinct_sketches_by_group(cols.user_hash[user], grp, n, cfg.hll_precision)
    top = heavy_hitters_by_group(counts, grp, cols.user_names, n, cfg.heavy_hitters, user)
    b = nbytes.tolist()
    return [
        KeyStats(requests[i], s4[i], s5[i], denied[i], b[i], lat[i], hll[i], top[i])
        for i in range(n)
    ]


def _user_pairs(
    groups: np.ndarray, n: int, cols: _Columns, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (group, user code) pairs over ``rows`` (all when None), with their counts."""
    users = cols.user_code if rows is None else cols.user_code[rows]
    n_users = max(len(cols.user_names), 1)
    uniq, counts = _count_codes(groups * n_users + users, n * n_users)
    grp, user = np.divmod(uniq, n_users)
    return grp, user, counts


def _users_by_group(
    groups: np.ndarray, n: int, cols: _Columns, capacity: int, rows: np.ndarray | None = None
) -> list[HeavyHitters]:
    """Per-group heavy hitters of the user key (over ``rows`` when given)."""
    grp, user, counts = _user_pairs(groups, n, cols, rows)
    return heavy_hitters_by_group(counts, grp, cols.user_names, n, capacity, key_codes=user)


def _decode(table: pa.Table, pane_ms: int) -> tuple[np.ndarray, _Columns]:
    ev = _as_array(table.column("event_ms"))
    if ev.null_count:
        raise ValueError("event_ms: null event times cannot be placed in a pane")
    pane_of = ev.to_numpy() // pane_ms
    first = int(pane_of.min())
    # Panes of one table are a short run of consecutive numbers: no sort needed.
    pane_code, present = _compact(pane_of - first, int(pane_of.max()) - first + 1)
    panes = present + first
    user_code, user_names = _encode(_user_key(table), NULL_USER)
    status = pc.fill_null(_as_array(table.column("status")), 0).to_numpy()
    cols = _Columns(
        pane_code=pane_code.astype(np.int64, copy=False),
        is_4xx=(status >= 400) & (status < 500),
        is_5xx=(status >= 500) & (status < 600),
        denied=(status == DENIED_STATUSES[0]) | (status == DENIED_STATUSES[1]),
        bytes=pc.fill_null(_as_array(table.column("bytes")), 0).to_numpy().astype(np.int64),
        latency=_as_array(table.column("latency_s")).to_numpy(zero_copy_only=False),
        user_code=user_code,
        user_hash=hash_strings(user_names),
        user_names=user_names.to_numpy(zero_copy_only=False),
    )
    return panes, cols


def aggregate_table(
    table: pa.Table, pane_ms: int, config: SketchConfig | None = None
) -> dict[int, PaneAggregate]:
    """Fold a parsed table (``PARSED_SCHEMA``) into one aggregate per pane touched."""
    cfg = config or SketchConfig()
    if table.num_rows == 0:
        return {}
    panes, cols = _decode(table, pane_ms)
    n_panes = len(panes)
    svc_code, svc_dict = _encode(table.column("service"), DEFAULT_SERVICE)
    ep_code, ep_dict = _encode(table.column("endpoint"), NULL_ENDPOINT)
    svc_names, ep_names = svc_dict.to_pylist(), ep_dict.to_pylist()
    n_svc, n_ep = len(svc_names), len(ep_names)
    pane_svc = cols.pane_code * n_svc + svc_code
    out = {
        int(p): PaneAggregate.empty(int(p), cfg)
        for p in panes.tolist()  # ascending: np.unique sorts
    }
    aggs = list(out.values())
    lines = np.bincount(cols.pane_code, minlength=n_panes).tolist()
    for agg, n in zip(aggs, lines):
        agg.lines = n
    groups, present = _compact(pane_svc, n_panes * n_svc)
    for code, stats in zip(present.tolist(), _key_stats(groups, len(present), cols, cfg)):
        p, s = divmod(code, n_svc)
        aggs[p].services[svc_names[s]] = stats
    groups, present = _compact(pane_svc * n_ep + ep_code, n_panes * n_svc * n_ep)
    for code, stats in zip(present.tolist(), _key_stats(groups, len(present), cols, cfg)):
        ps, e = divmod(code, n_ep)
        p, s = divmod(ps, n_svc)
        aggs[p].endpoints[endpoint_key(svc_names[s], ep_names[e])] = stats
    cap = cfg.heavy_hitters
    users = _users_by_group(cols.pane_code, n_panes, cols, cap)
    denied = _users_by_group(cols.pane_code[cols.denied], n_panes, cols, cap, cols.denied)
    for agg, u, d in zip(aggs, users, denied):
        agg.users, agg.denied_users = u, d
    return out


def warm_up(config: SketchConfig | None = None) -> None:
    """Aggregate one row, so that this process pays its lazy imports now.

    pyarrow imports pandas, when installed, on a process's first compute call
    (about 0.5 s of CPU on the development machine); a shard paid that on its
    first batch, inside the first replicate's measured window.
    """
    row = {name: None for name in PARSED_SCHEMA.names} | {"event_ms": 0, "status": 200}
    aggregate_table(pa.Table.from_pylist([row], schema=PARSED_SCHEMA), 1_000, config)


def aggregate_records(
    records: list[dict[str, Any]], pane_ms: int, config: SketchConfig | None = None
) -> dict[int, PaneAggregate]:
    """Aggregate parsed records (the naive ``regex`` strategy's output)."""
    if not records:
        return {}
    return aggregate_table(pa.Table.from_pylist(records, schema=PARSED_SCHEMA), pane_ms, config)
