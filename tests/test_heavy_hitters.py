"""Heavy hitters against exact counts: exact within capacity, bounded beyond it."""

from __future__ import annotations

import pickle
from collections import Counter
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logpipe.heavy_hitters import HeavyHitters
from logpipe.sketches import merge_all

keyed_counts = st.lists(
    st.tuples(st.sampled_from([f"k{i}" for i in range(40)]), st.integers(1, 50)),
    min_size=1,
    max_size=200,
)


@settings(max_examples=60, deadline=None)
@given(keyed_counts, st.integers(1, 50), st.lists(st.integers(0, 200), max_size=3))
def test_heavy_hitters_exact_or_within_bound(
    pairs: list[tuple[str, int]], capacity: int, cuts: list[int]
) -> None:
    truth: Counter[str] = Counter()
    for k, c in pairs:
        truth[k] += c
    bounds = sorted({0, len(pairs), *[min(c, len(pairs)) for c in cuts]})
    parts = []
    for lo, hi in pairwise(bounds):
        hh = HeavyHitters(capacity)
        hh.update([k for k, _ in pairs[lo:hi]], np.array([c for _, c in pairs[lo:hi]]))
        parts.append(hh)
    merged = merge_all(parts)
    total = sum(truth.values())
    assert merged.total == total and len(merged) <= capacity
    assert merged.error_bound() <= total / capacity
    if len(truth) <= capacity:
        assert merged.counters == dict(truth) and merged.error_bound() == 0
    for key, true in truth.items():
        assert true - merged.error_bound() <= merged.estimate(key) <= true


def test_heavy_hitters_top_is_sorted_with_ties_by_key() -> None:
    hh = HeavyHitters(8)
    hh.update(["b", "a", "c", "c", "d"], np.array([2, 2, 1, 2, 5]))
    assert hh.top(3) == [("d", 5), ("c", 3), ("a", 2)]
    assert hh.top(10)[-1] == ("b", 2)
    assert hh.estimate("zzz") == 0


def test_heavy_hitters_finds_the_heavy_key_in_a_long_tail() -> None:
    rng = np.random.default_rng(3)
    keys = [f"tail{i}" for i in rng.integers(0, 5_000, 20_000)] + ["heavy"] * 2_000
    hh = HeavyHitters(64)
    hh.update(keys)
    assert hh.top(1)[0][0] == "heavy"
    assert 2_000 - hh.error_bound() <= hh.estimate("heavy") <= 2_000
    with pytest.raises(ValueError, match="capacity differs"):
        hh.merge(HeavyHitters(32))
    with pytest.raises(ValueError, match=r"^counts:"):
        hh.update(["a"], np.array([-1]))
    assert pickle.loads(pickle.dumps(hh)) == hh
