"""Object-store readings against a live Ray: growth and release of known objects."""

from __future__ import annotations

import time

import numpy as np
import pytest

from harness import objstore
from harness.objstore import (
    StoreStats,
    StoreStatsReader,
    StoreStatsUnavailable,
    read_store_stats,
    sampler_accuracy,
)

MIB = 1024 * 1024


def _wait_until(reader: StoreStatsReader, pred, timeout_s: float = 10.0) -> StoreStats:
    deadline = time.monotonic() + timeout_s
    stats = reader.read()
    while not pred(stats) and time.monotonic() < deadline:
        time.sleep(0.05)
        stats = reader.read()
    return stats


@pytest.mark.ray
def test_reading_has_the_configured_capacity(ray_session: None) -> None:
    stats = read_store_stats()
    assert stats.capacity_bytes == 256 * MIB
    assert 0 <= stats.used_bytes <= stats.capacity_bytes
    assert stats.spilled_bytes >= 0 and stats.restored_bytes >= 0
    assert stats.num_objects >= 0 and stats.fallback_bytes >= 0


@pytest.mark.ray
def test_used_bytes_tracks_puts_and_release(ray_session: None) -> None:
    import ray

    reader = StoreStatsReader()
    before = _wait_until(reader, lambda s: s.used_bytes < MIB)
    baseline, objects = before.used_bytes, before.num_objects
    refs = [ray.put(np.full(8 * MIB, i, dtype=np.uint8)) for i in range(4)]
    during = reader.read()
    grown = during.used_bytes - baseline
    assert abs(grown - 32 * MIB) <= 0.05 * 32 * MIB
    assert during.num_objects - objects == 4
    del refs
    after = _wait_until(reader, lambda s: s.used_bytes - baseline < MIB)
    assert after.used_bytes - baseline < MIB


@pytest.mark.ray
def test_sampler_accuracy_is_within_five_percent(ray_session: None) -> None:
    err = sampler_accuracy(n_objects=3, object_bytes=4 * MIB)
    assert 0.0 <= err <= 5.0


def test_sampler_accuracy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        sampler_accuracy(n_objects=0)


def test_moved_private_api_is_reported_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray._private.internal_api as internal_api

    monkeypatch.delattr(internal_api, "get_state_from_address")
    with pytest.raises(StoreStatsUnavailable, match="private store-stats API moved"):
        objstore._private_api()


def test_changed_protobuf_is_reported_loudly() -> None:
    class Reply:
        store_stats = object()

    with pytest.raises(StoreStatsUnavailable, match="protobuf changed"):
        objstore._to_stats(Reply())


@pytest.mark.ray
def test_reader_reconnects_after_losing_its_channel(ray_session: None) -> None:
    reader = StoreStatsReader()
    first = reader.read()
    reader._channel.close()  # as if the raylet went away under the cached channel
    assert reader.read().capacity_bytes == first.capacity_bytes
    reader.close()
    assert reader.read().capacity_bytes == first.capacity_bytes


def test_unreachable_cluster_is_unavailable_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray._private.internal_api as internal_api

    def refuse(address=None):
        raise ConnectionError(f"no GCS at {address}")

    monkeypatch.setattr(internal_api, "get_state_from_address", refuse)
    with pytest.raises(StoreStatsUnavailable, match="cannot reach the Ray cluster"):
        StoreStatsReader("127.0.0.1:1").read()
