"""Mergeable quantile and distinct-count sketches with vectorized (numpy) batch updates.

Two summaries, each mergeable exactly, so that shards can aggregate panes
independently and the detector can merge them:

* :class:`QuantileSketch`: DDSketch-style log-bucketed histogram with a relative
  error guarantee; merging adds bucket counts, so it is exact.
* :class:`DistinctSketch`: HyperLogLog over 64-bit hashes (see
  :func:`logpipe.hashing.hash_strings`), sparse until it fills; merging takes
  register maxima, so it is exact.

The third summary, heavy hitters, lives in :mod:`logpipe.heavy_hitters`;
:func:`merge_all` merges any of the three.

Why not ``datasketches`` / ``ddsketch``: neither is installed, and both take one
value per Python call. Our updates arrive as Arrow/numpy columns of ~10k values,
so a numpy update (one ``log``, one sort or ``bincount`` per column) beats a
per-value Python loop by one to two orders of magnitude (``bench/``
compares them). The ``*_by_group`` builders go further: one pass over a column
builds the sketches of every (pane, key) group at once.

Arrays held by the sketches are never mutated in place (updates and merges make
new ones), so ``copy()`` shares them and is O(1).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

_U64 = np.uint64
# Values with a magnitude below this (0.0 and subnormals) land in the zero bucket.
_MIN_INDEXABLE = sys.float_info.min


def _empty_i64() -> np.ndarray:
    return np.empty(0, dtype=np.int64)


def _empty_i32() -> np.ndarray:
    return np.empty(0, dtype=np.int32)


# --------------------------------------------------------------------------- quantiles


class QuantileSketch:
    """Relative-error quantile sketch (DDSketch, unbounded log buckets).

    A value ``x > 0`` goes to bucket ``ceil(log_gamma(x))`` with
    ``gamma = (1 + a) / (1 - a)``; the bucket's representative value is within a
    relative error ``a = rel_accuracy`` of every value in it. Negative values are
    kept in a mirrored store (same guarantee on their magnitude); ``0.0`` and
    subnormals are counted exactly in a zero bucket. NaN (how Arrow nulls arrive
    through ``to_numpy(zero_copy_only=False)``) and +-inf are skipped and counted in
    ``invalid``, never in ``count``.

    ``quantile(q)`` estimates the sorted value at rank ``floor(q * (count - 1))``
    (the lower quantile), clamped to ``[min, max]``, which are exact.
    """

    __slots__ = ("_ln_gamma", "_max", "_min", "_neg", "_pos", "invalid", "rel_accuracy", "zero")

    def __init__(self, rel_accuracy: float = 0.01) -> None:
        if not 0.0 < rel_accuracy < 1.0:
            raise ValueError(f"rel_accuracy: must be in (0, 1), got {rel_accuracy!r}")
        self.rel_accuracy = float(rel_accuracy)
        self._ln_gamma = math.log((1.0 + rel_accuracy) / (1.0 - rel_accuracy))
        # (sorted bucket keys, counts); the negative store is keyed by magnitude.
        self._pos: tuple[np.ndarray, np.ndarray] = (_empty_i64(), _empty_i64())
        self._neg: tuple[np.ndarray, np.ndarray] = (_empty_i64(), _empty_i64())
        self.zero = 0
        self.invalid = 0
        self._min = math.inf
        self._max = -math.inf

    @property
    def count(self) -> int:
        """Number of values summarized (excluding invalid ones)."""
        return int(self._pos[1].sum()) + int(self._neg[1].sum()) + self.zero

    @property
    def min(self) -> float:
        return self._min if self.count else math.nan

    @property
    def max(self) -> float:
        return self._max if self.count else math.nan

    def bins(self) -> dict[str, Any]:
        """The sketch state: positive and negative (keys, counts), zero, invalid."""
        return {"pos": self._pos, "neg": self._neg, "zero": self.zero, "invalid": self.invalid}

    def update(self, values: np.ndarray | Sequence[float]) -> None:
        """Add a batch of values."""
        other = quantile_sketches_by_group(
            np.asarray(values, dtype=np.float64), None, 1, self.rel_accuracy
        )[0]
        self.merge(other)

    def merge(self, other: QuantileSketch) -> None:
        """Add ``other``'s buckets to this sketch (exact)."""
        if other.rel_accuracy != self.rel_accuracy:
            raise ValueError("QuantileSketch.merge: rel_accuracy differs")
        self._pos = _add_sparse(self._pos, other._pos)
        self._neg = _add_sparse(self._neg, other._neg)
        self.zero += other.zero
        self.invalid += other.invalid
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)

    def quantile(self, q: float) -> float:
        """Estimated value at quantile ``q`` in [0, 1]; NaN when empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q: must be in [0, 1], got {q!r}")
        n = self.count
        if n == 0:
            return math.nan
        rank = math.floor(q * (n - 1))
        if rank in (0, n - 1):  # the extremes are tracked exactly
            return self._min if rank == 0 else self._max
        scale = 2.0 / (1.0 + math.exp(self._ln_gamma))
        nk, nc = self._neg
        values = np.concatenate(
            [
                -np.exp(nk[::-1] * self._ln_gamma) * scale,
                [0.0],
                np.exp(self._pos[0] * self._ln_gamma) * scale,
            ]
        )
        counts = np.concatenate([nc[::-1], [self.zero], self._pos[1]])
        i = int(np.searchsorted(np.cumsum(counts), rank, side="right"))
        return float(min(max(values[i], self._min), self._max))

    def copy(self) -> QuantileSketch:
        new = QuantileSketch.__new__(QuantileSketch)
        for name in QuantileSketch.__slots__:
            setattr(new, name, getattr(self, name))
        return new

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuantileSketch):
            return NotImplemented
        return (
            self.rel_accuracy == other.rel_accuracy
            and _sparse_equal(self._pos, other._pos)
            and _sparse_equal(self._neg, other._neg)
            and (self.zero, self.invalid) == (other.zero, other.invalid)
            and (self._min, self._max) == (other._min, other._max)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"QuantileSketch(rel_accuracy={self.rel_accuracy}, count={self.count})"


def _add_sparse(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    if len(b[0]) == 0:
        return a
    if len(a[0]) == 0:
        return b
    lo = min(int(a[0][0]), int(b[0][0]))
    span = max(int(a[0][-1]), int(b[0][-1])) - lo + 1
    if span > 4 * (len(a[0]) + len(b[0])) + 4096:  # far-apart keys: stay sparse
        keys = np.union1d(a[0], b[0])
        counts = np.zeros(len(keys), dtype=np.int64)
        counts[np.searchsorted(keys, a[0])] += a[1]
        counts[np.searchsorted(keys, b[0])] += b[1]
        return keys, counts
    dense = np.zeros(span, dtype=np.int64)
    dense[a[0] - lo] = a[1]  # keys are unique within each side
    dense[b[0] - lo] += b[1]
    nz = np.flatnonzero(dense)
    return nz + lo, dense[nz]


def _sparse_equal(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> bool:
    return np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def _group_sparse(
    keys: np.ndarray, groups: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count (group, key) pairs: returns sorted keys, counts and group boundaries."""
    if len(keys) == 0:
        return _empty_i64(), _empty_i64(), np.zeros(n_groups + 1, dtype=np.int64)
    kmin = int(keys.min())
    span = int(keys.max()) - kmin + 1
    code = groups * span + (keys - kmin)
    if n_groups * span <= max(4 * len(keys), 1 << 16):
        dense = np.bincount(code, minlength=n_groups * span)
        uniq = np.flatnonzero(dense)
        counts = dense[uniq]
    else:
        res = np.unique(code, return_counts=True)
        uniq, counts = res[0], res[1]
    grp, key = np.divmod(uniq, span)
    bounds = np.searchsorted(grp, np.arange(n_groups + 1))
    return key + kmin, counts.astype(np.int64), bounds


def quantile_sketches_by_group(
    values: np.ndarray, groups: np.ndarray | None, n_groups: int, rel_accuracy: float = 0.01
) -> list[QuantileSketch]:
    """One :class:`QuantileSketch` per group id in ``range(n_groups)``, in one pass."""
    proto = QuantileSketch(rel_accuracy)
    values = np.asarray(values, dtype=np.float64)
    if groups is None:
        groups = np.zeros(len(values), dtype=np.int64)
    finite = np.isfinite(values)
    invalid = np.bincount(groups[~finite], minlength=n_groups)
    mag = np.abs(values)
    zero_mask = finite & (mag < _MIN_INDEXABLE)
    zeros = np.bincount(groups[zero_mask], minlength=n_groups)
    keep = finite & ~zero_mask
    v, g = values[keep], groups[keep]
    keys = np.ceil(np.log(np.abs(v)) / proto._ln_gamma).astype(np.int64)
    neg = v < 0
    pos_k, pos_c, pos_b = _group_sparse(keys[~neg], g[~neg], n_groups)
    neg_k, neg_c, neg_b = _group_sparse(keys[neg], g[neg], n_groups)
    mins = np.full(n_groups, math.inf)
    maxs = np.full(n_groups, -math.inf)
    np.minimum.at(mins, g, v)
    np.maximum.at(maxs, g, v)
    has_zero = zeros > 0
    mins[has_zero] = np.minimum(mins[has_zero], 0.0)
    maxs[has_zero] = np.maximum(maxs[has_zero], 0.0)
    parts = zip(
        _split_sparse(pos_k, pos_c, pos_b),
        _split_sparse(neg_k, neg_c, neg_b),
        zeros.tolist(),
        invalid.tolist(),
        mins.tolist(),
        maxs.tolist(),
    )
    out = []
    for pos, neg, zero, inv, lo, hi in parts:
        # Bypass __init__: hundreds of sketches per table, validated once by proto.
        s = QuantileSketch.__new__(QuantileSketch)
        s.rel_accuracy, s._ln_gamma = proto.rel_accuracy, proto._ln_gamma
        s._pos, s._neg, s.zero, s.invalid, s._min, s._max = pos, neg, zero, inv, lo, hi
        out.append(s)
    return out


def _split_sparse(
    keys: np.ndarray, counts: np.ndarray, bounds: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    if len(keys) == 0:
        return [(keys, counts)] * (len(bounds) - 1)
    b = bounds.tolist()
    return [(keys[b[i] : b[i + 1]], counts[b[i] : b[i + 1]]) for i in range(len(b) - 1)]


# --------------------------------------------------------------------------- distinct


def _bit_length(x: np.ndarray) -> np.ndarray:
    for s in (1, 2, 4, 8, 16, 32):
        x = x | (x >> _U64(s))
    return np.bitwise_count(x).astype(np.int64)


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y, z = 1.0, x
    while True:
        x *= x
        z_old = z
        z += x * y
        y += y
        if z == z_old:
            return z


def _tau(x: float) -> float:
    if x in (0.0, 1.0):
        return 0.0
    y, z = 1.0, 1.0 - x
    while True:
        x = math.sqrt(x)
        z_old = z
        y *= 0.5
        z -= (1.0 - x) ** 2 * y
        if z == z_old:
            return z / 3.0


class DistinctSketch:
    """HyperLogLog over 64-bit hashes with ``2**precision`` registers.

    Standard error ``1.04 / sqrt(2**precision)`` (1.6 % at p=12). Registers are kept
    sparse (one sorted int32 ``index << 6 | value`` per set register) until an
    eighth of them are set, which keeps per-key pane sketches small to pickle and
    cheap to merge. ``estimate`` uses Ertl's improved raw estimator (2017), whose
    ``sigma`` term is the small-range (linear counting) correction and which needs
    no empirical bias tables.
    """

    __slots__ = ("_dense", "_sparse", "precision")

    def __init__(self, precision: int = 12) -> None:
        if not 4 <= precision <= 18:
            raise ValueError(f"precision: must be in [4, 18], got {precision!r}")
        self.precision = int(precision)
        self._dense: np.ndarray | None = None
        self._sparse = _empty_i32()

    @property
    def m(self) -> int:
        return 1 << self.precision

    def standard_error(self) -> float:
        """Relative standard error of :meth:`estimate`."""
        return 1.04 / math.sqrt(self.m)

    def registers(self) -> np.ndarray:
        """The dense register array (uint8, length ``2**precision``)."""
        if self._dense is not None:
            return self._dense
        regs = np.zeros(self.m, dtype=np.uint8)
        regs[self._sparse >> 6] = self._sparse & 0x3F
        return regs

    def update_hashes(self, hashes: np.ndarray) -> None:
        """Add a batch of 64-bit hashes (see :func:`logpipe.hashing.hash_strings`)."""
        self.merge(distinct_sketches_by_group(hashes, None, 1, self.precision)[0])

    def merge(self, other: DistinctSketch) -> None:
        """Register-wise maximum with ``other`` (exact)."""
        if other.precision != self.precision:
            raise ValueError("DistinctSketch.merge: precision differs")
        if self._dense is None and other._dense is None:
            if len(other._sparse):
                codes = np.sort(np.concatenate([self._sparse, other._sparse]))
                self._set_codes(_last_per_register(codes, 6))
        else:
            self._dense = np.maximum(self.registers(), other.registers())
            self._sparse = _empty_i32()

    def _set_codes(self, codes: np.ndarray) -> None:
        """Store sorted codes with one per register, densely once that is smaller."""
        if len(codes) * 8 > self.m:
            regs = np.zeros(self.m, dtype=np.uint8)
            regs[codes >> 6] = codes & 0x3F
            self._dense, self._sparse = regs, _empty_i32()
        else:
            self._dense, self._sparse = None, codes.astype(np.int32, copy=False)

    def estimate(self) -> float:
        """Estimated number of distinct hashes added."""
        q = 64 - self.precision
        if self._dense is not None:
            hist = np.bincount(self._dense, minlength=q + 2)
        else:
            hist = np.bincount(self._sparse & 0x3F, minlength=q + 2)
            hist[0] += self.m - len(self._sparse)
        m = float(self.m)
        z = m * _tau(1.0 - hist[q + 1] / m)
        for k in range(q, 0, -1):
            z = 0.5 * (z + float(hist[k]))
        z += m * _sigma(hist[0] / m)
        return 0.0 if math.isinf(z) else m * m / (2.0 * math.log(2.0) * z)

    def copy(self) -> DistinctSketch:
        new = DistinctSketch.__new__(DistinctSketch)
        new.precision, new._dense, new._sparse = self.precision, self._dense, self._sparse
        return new

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DistinctSketch):
            return NotImplemented
        return self.precision == other.precision and np.array_equal(
            self.registers(), other.registers()
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"DistinctSketch(precision={self.precision}, estimate={self.estimate():.1f})"


def _last_per_register(codes: np.ndarray, value_bits: int) -> np.ndarray:
    """From sorted ``register << value_bits | value`` codes, keep each register's max."""
    key = codes >> value_bits
    last = np.empty(len(codes), dtype=bool)
    last[-1:] = True
    np.not_equal(key[1:], key[:-1], out=last[:-1])
    return codes[last]


def distinct_sketches_by_group(
    hashes: np.ndarray, groups: np.ndarray | None, n_groups: int, precision: int = 12
) -> list[DistinctSketch]:
    """One :class:`DistinctSketch` per group id in ``range(n_groups)``, in one sort."""
    proto = DistinctSketch(precision)
    h = np.asarray(hashes, dtype=np.uint64)
    if groups is None:
        groups = np.zeros(len(h), dtype=np.int64)
    q = 64 - precision
    idx = (h >> _U64(q)).astype(np.int64)
    rho = q + 1 - _bit_length(h & _U64((1 << q) - 1))
    reg_bits = precision + 6
    code = _last_per_register(np.sort((groups.astype(np.int64) << reg_bits) | (idx << 6) | rho), 6)
    bounds = np.searchsorted(code >> reg_bits, np.arange(n_groups + 1)).tolist()
    codes = (code & ((1 << reg_bits) - 1)).astype(np.int32)
    out = []
    for i in range(n_groups):
        s = proto.copy()
        lo, hi = bounds[i], bounds[i + 1]
        if hi > lo:
            s._set_codes(codes[lo:hi])
        out.append(s)
    return out


def merge_all(sketches: Iterable[Any]) -> Any:
    """Merge an iterable of same-kind sketches into a new one (inputs untouched)."""
    it = iter(sketches)
    acc = next(it).copy()
    for s in it:
        acc.merge(s)
    return acc
