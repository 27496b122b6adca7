"""Per-shard in-order release of panes delivered out of order or twice."""

from __future__ import annotations

import pickle

from logpipe.sequencer import ARRIVAL_ORDER, PaneSequencer


def test_a_pane_ahead_of_its_predecessor_waits_then_both_release_in_order() -> None:
    seq = PaneSequencer()
    assert seq.offer(0, 3, None, "a") == [(3, "a")]
    assert seq.offer(0, 5, 4, "c") == []  # pane 4 not here yet
    assert seq.offer(0, 6, 5, "d") == []
    assert seq.held_count == 2
    assert seq.offer(0, 4, 3, "b") == [(4, "b"), (5, "c"), (6, "d")]
    assert seq.held_count == 0 and seq.through == {0: 6}
    assert seq.reordered == 2


def test_duplicates_of_released_and_of_held_panes_are_dropped() -> None:
    seq = PaneSequencer()
    seq.offer(0, 0, None, "a")
    seq.offer(0, 2, 1, "c")
    assert seq.offer(0, 0, None, "a again") is None  # released already
    assert seq.offer(0, 2, 1, "c again") is None  # held already
    assert seq.offer(0, 1, 0, "b") == [(1, "b"), (2, "c")]  # the first copy kept
    assert seq.offer(0, 1, 0, "b again") is None


def test_shards_are_independent_and_completion_needs_every_shard() -> None:
    seq = PaneSequencer()
    seq.offer(0, 0, None, "x")
    assert seq.complete_through(2) is None
    seq.offer(1, 1, 0, "y")  # shard 1's first pane (0) is still on its way
    assert seq.complete_through(2) is None
    seq.offer(1, 0, None, "w")
    assert seq.complete_through(2) == 0 and seq.through == {0: 0, 1: 1}


def test_arrival_order_takes_later_panes_as_gaps_and_earlier_as_duplicates() -> None:
    seq = PaneSequencer()
    assert seq.offer(0, 2, ARRIVAL_ORDER, "a") == [(2, "a")]
    assert seq.offer(0, 5, ARRIVAL_ORDER, "b") == [(5, "b")]
    assert seq.offer(0, 4, ARRIVAL_ORDER, "late") is None


def test_panes_below_the_floor_are_late_and_release_all_ends_the_stream() -> None:
    seq = PaneSequencer()
    seq.offer(0, 0, None, "a")
    assert seq.offer(1, 0, None, "b", floor=1) is None  # pane 0 already complete
    seq.offer(0, 3, 2, "d")
    seq.offer(0, 5, 4, "f")
    assert seq.release_all() == [(0, 3, "d"), (0, 5, "f")]  # panes 1, 2 and 4 never came
    assert seq.held_count == 0 and seq.through[0] == 5


def test_held_state_survives_pickling() -> None:
    seq = PaneSequencer()
    seq.offer(0, 0, None, "a")
    seq.offer(0, 2, 1, "c")
    again = pickle.loads(pickle.dumps(seq))
    assert again.offer(0, 1, 0, "b") == [(1, "b"), (2, "c")]
    assert pickle.loads(pickle.dumps(ARRIVAL_ORDER)) is ARRIVAL_ORDER
