"""Sketch error bounds against exact answers, and exact merges."""

from __future__ import annotations

import math
import pickle
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logpipe.hashing import hash_strings
from logpipe.reference import reference_quantile
from logpipe.sketches import DistinctSketch, QuantileSketch, merge_all

QS = (0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)
magnitudes = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False)
sketch_values = st.lists(
    st.one_of(magnitudes, magnitudes.map(lambda x: -x), st.just(0.0)), min_size=1, max_size=300
)


def _quantile(values: list[float], a: float = 0.01) -> QuantileSketch:
    s = QuantileSketch(a)
    s.update(np.array(values, dtype=np.float64))
    return s


# --------------------------------------------------------------------------- quantiles


@settings(max_examples=60, deadline=None)
@given(sketch_values, st.sampled_from([0.01, 0.05]))
def test_quantiles_within_relative_accuracy(values: list[float], a: float) -> None:
    s = _quantile(values, a)
    assert s.count == len(values)
    for q in QS:
        exact = reference_quantile(values, q)
        # A hair of slack for log() rounding exactly at bucket boundaries.
        assert abs(s.quantile(q) - exact) <= a * abs(exact) * (1 + 1e-9), (q, exact)


def test_quantiles_on_a_heavy_tailed_sample() -> None:
    rng = np.random.default_rng(7)
    values = rng.lognormal(-3.0, 1.5, 50_000)
    s = _quantile(values.tolist())
    ordered = np.sort(values)
    for q in QS:
        exact = ordered[math.floor(q * (len(values) - 1))]
        assert abs(s.quantile(q) - exact) <= 0.01 * exact * (1 + 1e-9)


@settings(max_examples=40, deadline=None)
@given(sketch_values, st.lists(st.integers(0, 300), max_size=4))
def test_quantile_merge_of_parts_equals_whole(values: list[float], cuts: list[int]) -> None:
    bounds = sorted({0, len(values), *[min(c, len(values)) for c in cuts]})
    parts = [_quantile(values[lo:hi]) for lo, hi in pairwise(bounds)]
    whole = _quantile(values)
    assert merge_all(parts) == whole
    assert merge_all(reversed(parts)) == whole


def test_quantile_invalid_values_are_counted_apart() -> None:
    s = _quantile([1.0, math.nan, math.inf, -math.inf, 0.0, 2.0])
    assert (s.count, s.invalid, s.zero) == (3, 3, 1)
    assert s.quantile(0.0) == 0.0
    assert s.quantile(1.0) == 2.0
    empty = QuantileSketch()
    assert math.isnan(empty.quantile(0.5)) and empty.count == 0
    with pytest.raises(ValueError, match=r"^q:"):
        s.quantile(1.5)
    with pytest.raises(ValueError, match=r"^rel_accuracy:"):
        QuantileSketch(0.0)
    with pytest.raises(ValueError, match="rel_accuracy differs"):
        s.merge(QuantileSketch(0.02))


def test_quantile_copy_is_independent_and_pickles_compactly() -> None:
    s = _quantile(np.linspace(0.001, 10.0, 10_000).tolist())
    c = s.copy()
    c.update(np.array([1e6]))
    assert s.count == 10_000 and c.count == 10_001
    restored = pickle.loads(pickle.dumps(s))
    assert restored == s and restored.quantile(0.5) == s.quantile(0.5)
    # Sparse bins: a few hundred buckets, not one per value.
    assert len(pickle.dumps(s)) < 20_000


# --------------------------------------------------------------------------- distinct


@pytest.mark.parametrize("n", [0, 1, 10, 100, 1_000, 5_000, 10_000, 20_000, 100_000])
def test_hll_estimate_within_three_standard_errors(n: int) -> None:
    rng = np.random.default_rng(n)
    d = DistinctSketch(12)
    hashes = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    d.update_hashes(np.concatenate([hashes, hashes[: n // 2]]))  # duplicates count once
    assert abs(d.estimate() - n) <= 3 * d.standard_error() * n + 0.5
    assert d.standard_error() == pytest.approx(1.04 / 64)


def test_hll_on_hashed_strings() -> None:
    keys = [f"user-{i}@example.com" for i in range(30_000)]
    d = DistinctSketch(12)
    d.update_hashes(hash_strings(keys))
    assert abs(d.estimate() - 30_000) <= 3 * d.standard_error() * 30_000


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 3_000), st.lists(st.integers(0, 3_000), max_size=4), st.integers(0, 99))
def test_hll_merge_of_parts_equals_whole(n: int, cuts: list[int], seed: int) -> None:
    hashes = np.random.default_rng(seed).integers(0, 2**64, size=n, dtype=np.uint64)
    bounds = sorted({0, n, *[min(c, n) for c in cuts]})
    parts = []
    for lo, hi in pairwise(bounds):
        part = DistinctSketch(10)
        part.update_hashes(hashes[lo:hi])
        parts.append(part)
    whole = DistinctSketch(10)
    whole.update_hashes(hashes)
    if parts:
        assert np.array_equal(merge_all(parts).registers(), whole.registers())
        assert merge_all(reversed(parts)) == whole


def test_hll_sparse_and_dense_agree_and_pickle() -> None:
    rng = np.random.default_rng(1)
    small, big = DistinctSketch(12), DistinctSketch(12)
    small.update_hashes(rng.integers(0, 2**64, 50, dtype=np.uint64))
    big.update_hashes(rng.integers(0, 2**64, 5_000, dtype=np.uint64))
    assert small._dense is None and big._dense is not None
    assert len(pickle.dumps(small)) < 1_000  # sparse: far below 4 KiB of registers
    a, b = small.copy(), big.copy()
    a.merge(big)
    b.merge(small)
    assert a == b and pickle.loads(pickle.dumps(a)) == a
    assert np.array_equal(a.registers(), np.maximum(small.registers(), big.registers()))
    with pytest.raises(ValueError, match="precision differs"):
        a.merge(DistinctSketch(10))
