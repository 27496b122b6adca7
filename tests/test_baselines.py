"""EWMA baselines: running-mean start, priors, lazy decay, holds and the key bound."""

from __future__ import annotations

import pytest

from logpipe.baselines import EwmaBaselines


def test_first_updates_are_a_running_mean_then_alpha_takes_over() -> None:
    b = EwmaBaselines(alpha=0.25, max_keys=10)
    assert b.get("svc", 0) == (0.0, 0)
    for w, x in enumerate([1.0, 2.0, 3.0, 6.0]):
        b.update("svc", x, w)
    assert b.get("svc", 4) == (pytest.approx(3.0), 4)  # mean of 1, 2, 3, 6 (1/4 = alpha)
    b.update("svc", 8.0, 4)
    assert b.get("svc", 5)[0] == pytest.approx(3.0 + 0.25 * (8.0 - 3.0))


def test_a_fresh_prior_counts_as_settled_history() -> None:
    b = EwmaBaselines(alpha=0.1, max_keys=10)
    b.update("u1", 1.0, 0, fresh=0.0)
    value, n = b.get("u1", 1)
    assert value == pytest.approx(0.1) and n == 11  # ceil(1 / alpha) prior updates + 1
    b.update("u1", 1.0, 1)
    assert b.get("u1", 2)[0] == pytest.approx(0.1 + 0.1 * 0.9)


def test_decay_reads_missed_windows_as_zero_and_hold_freezes_it() -> None:
    b = EwmaBaselines(alpha=0.5, max_keys=10, decay=True)
    b.update("u", 1.0, 0)
    assert b.get("u", 1)[0] == 1.0  # the next window: nothing missed
    assert b.get("u", 3)[0] == pytest.approx(0.25)  # windows 1 and 2 missed
    b.hold("u", 3)
    assert b.get("u", 4) == (pytest.approx(0.25), 1)  # held: no update, no more decay
    b.hold("absent", 3)
    assert "absent" not in b.items
    steady = EwmaBaselines(alpha=0.5, max_keys=10)
    steady.update("s", 1.0, 0)
    assert steady.get("s", 9)[0] == 1.0


def test_least_recently_updated_key_is_evicted_past_max_keys() -> None:
    b = EwmaBaselines(alpha=0.1, max_keys=2)
    for w, key in enumerate(["a", "b", "a", "c"]):
        b.update(key, 1.0, w)
    assert list(b.items) == ["a", "c"]
    assert b.get("b", 4) == (0.0, 0)
