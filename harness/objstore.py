"""Object-store statistics from the raylet: the one place that uses Ray's private API.

Ray exposes no public API for plasma usage when the dashboard is off, so this
module asks a raylet directly (``FormatGlobalMemoryInfo``, the RPC behind
``ray memory --stats-only``). That raylet fans the request out to every node
and returns ``store_stats`` already summed over the cluster, so one reply
covers a multi-node cluster. If a Ray upgrade moves or renames any of it,
:class:`StoreStatsUnavailable` says so here, and nowhere else breaks.

What the figures cover: every ``ray.put`` and every task return over Ray's
inlining threshold (100 KiB by default) lives in the shared-memory store and is
counted; small task returns are inlined in the owner's memory and are not.
Freed objects leave the store asynchronously (the raylet frees in batches, so
expect a few hundred milliseconds of lag after the last reference goes).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "StoreStats",
    "StoreStatsReader",
    "StoreStatsUnavailable",
    "read_store_stats",
    "sampler_accuracy",
    "wait_for",
]


class StoreStatsUnavailable(RuntimeError):
    """The raylet's store statistics cannot be read (API moved, or no cluster)."""


@dataclass(frozen=True)
class StoreStats:
    """Cluster-wide object-store figures; byte counters are cumulative where noted."""

    used_bytes: int  # bytes held in shared memory now
    capacity_bytes: int  # configured object-store memory
    spilled_bytes: int  # cumulative bytes spilled to external storage
    restored_bytes: int  # cumulative bytes restored from external storage
    num_objects: int  # objects held in shared memory now
    fallback_bytes: int  # bytes allocated on the filesystem fallback (store full)


@dataclass(frozen=True)
class _Api:
    get_state_from_address: Callable[..., Any]
    init_grpc_channel: Callable[..., Any]
    stub_class: Callable[[Any], Any]
    request: Any  # FormatGlobalMemoryInfoRequest without per-object detail


def _private_api() -> _Api:
    """Ray's private pieces behind ``ray memory --stats-only`` (2.60)."""
    try:
        from ray._private.grpc_utils import init_grpc_channel
        from ray._private.internal_api import get_state_from_address
        from ray.core.generated import node_manager_pb2, node_manager_pb2_grpc

        return _Api(
            get_state_from_address,
            init_grpc_channel,
            node_manager_pb2_grpc.NodeManagerServiceStub,
            node_manager_pb2.FormatGlobalMemoryInfoRequest(  # type: ignore[attr-defined]
                include_memory_info=False
            ),
        )
    except (ImportError, AttributeError, ValueError) as exc:
        raise StoreStatsUnavailable(
            "Ray's private store-stats API moved (ray._private.internal_api, "
            f"ray._private.grpc_utils, node_manager_pb2 FormatGlobalMemoryInfo): {exc}; "
            "update harness/objstore.py for this Ray version"
        ) from exc


def _connected_gcs_address() -> str | None:
    import ray

    if ray.is_initialized():
        return str(ray.get_runtime_context().gcs_address)
    return None


def _to_stats(reply: Any) -> StoreStats:
    try:
        s = reply.store_stats
        return StoreStats(
            used_bytes=int(s.object_store_bytes_used),
            capacity_bytes=int(s.object_store_bytes_avail),
            spilled_bytes=int(s.spilled_bytes_total),
            restored_bytes=int(s.restored_bytes_total),
            num_objects=int(s.num_local_objects),
            fallback_bytes=int(s.object_store_bytes_fallback),
        )
    except AttributeError as exc:
        raise StoreStatsUnavailable(
            f"Ray's ObjectStoreStats protobuf changed ({exc}); update harness/objstore.py"
        ) from exc


class StoreStatsReader:
    """Reads :class:`StoreStats` repeatedly over one cached gRPC channel to a raylet.

    ``address`` is a GCS address (``host:port``); ``None`` means the cluster this
    process is connected to, else the local cluster Ray would auto-detect. The
    cached channel makes a reading cost about 1 ms of CPU instead of about 4
    (the figure is sampled several times a second during a run).
    """

    def __init__(self, address: str | None = None, timeout_s: float = 10.0) -> None:
        self._address = address
        self._timeout_s = timeout_s
        self._api: _Api | None = None
        self._stub: Any = None
        self._channel: Any = None

    def _connect(self, api: _Api) -> None:
        address = self._address or _connected_gcs_address()
        try:
            state = api.get_state_from_address(address)
            alive = [n for n in state.node_table() if n.get("Alive")]
        except Exception as exc:
            raise StoreStatsUnavailable(
                f"cannot reach the Ray cluster at {address or 'auto'}: {exc}"
            ) from exc
        if not alive:
            raise StoreStatsUnavailable(f"no alive raylet in the cluster at {address or 'auto'}")
        try:
            raylet = f"{alive[0]['NodeManagerAddress']}:{int(alive[0]['NodeManagerPort'])}"
        except KeyError as exc:
            raise StoreStatsUnavailable(f"Ray's node table lost field {exc}") from exc
        self._channel = api.init_grpc_channel(raylet)
        self._stub = api.stub_class(self._channel)

    def read(self) -> StoreStats:
        """One reading; reconnects once if the cached raylet stopped answering."""
        api = self._api = self._api or _private_api()
        for attempt in (0, 1):
            if self._stub is None:
                self._connect(api)
            try:
                reply = self._stub.FormatGlobalMemoryInfo(api.request, timeout=self._timeout_s)
            except AttributeError as exc:
                raise StoreStatsUnavailable(f"Ray's raylet RPC moved: {exc}") from exc
            except Exception as exc:
                # The raylet may have died (e.g. node removed); pick another once.
                self.close()
                if attempt:
                    raise StoreStatsUnavailable(f"raylet store-stats RPC failed: {exc}") from exc
                continue
            return _to_stats(reply)
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Drop the cached channel (the next read reconnects)."""
        if self._channel is not None:
            self._channel.close()
        self._channel = self._stub = None


def read_store_stats(address: str | None = None) -> StoreStats:
    """One cluster-wide object-store reading (dashboard not required)."""
    reader = StoreStatsReader(address)
    try:
        return reader.read()
    finally:
        reader.close()


def wait_for(
    reader: StoreStatsReader,
    done: Callable[[StoreStats], bool],
    timeout_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> StoreStats:
    """Read until ``done`` holds or ``timeout_s`` passes; the last reading (the raylet's
    figure lags released references: it frees objects in batches)."""
    deadline = clock() + timeout_s
    stats = reader.read()
    while not done(stats) and clock() < deadline:
        time.sleep(0.02)
        stats = reader.read()
    return stats


def sampler_accuracy(
    n_objects: int = 4,
    object_bytes: int = 8 * 1024 * 1024,
    settle_timeout_s: float = 10.0,
    clock: Callable[[], float] = time.monotonic,
) -> float:
    """Put ``n_objects`` arrays of ``object_bytes`` and measure the store's growth.

    Returns the relative error, in percent, of the measured growth against the
    bytes put. Raises :class:`StoreStatsUnavailable` if the store did not drop
    back within ``settle_timeout_s`` after the references were released (that
    would be a leak or a broken reading, not an accuracy figure). Needs Ray
    initialised, and an otherwise idle store for a meaningful figure.
    """
    if n_objects < 1 or object_bytes < 1:
        raise ValueError("n_objects and object_bytes must be positive")
    reader = StoreStatsReader()
    try:
        return _measure(reader, n_objects, object_bytes, settle_timeout_s, clock)
    finally:
        reader.close()


def _measure(
    reader: StoreStatsReader,
    n_objects: int,
    object_bytes: int,
    settle_timeout_s: float,
    clock: Callable[[], float],
) -> float:
    import numpy as np
    import ray

    before = reader.read().used_bytes
    expected = n_objects * object_bytes
    refs = [ray.put(np.full(object_bytes, i % 251, dtype=np.uint8)) for i in range(n_objects)]
    # Puts are synchronous, but poll briefly in case the raylet's view lags.
    during = wait_for(
        reader, lambda s: s.used_bytes - before >= expected, settle_timeout_s, clock
    ).used_bytes
    del refs
    gc.collect()
    after = wait_for(
        reader, lambda s: s.used_bytes - before < 0.05 * expected, settle_timeout_s, clock
    ).used_bytes
    if after - before >= 0.05 * expected:
        raise StoreStatsUnavailable(
            f"object store did not release {expected} bytes within {settle_timeout_s}s "
            f"(before={before}, after={after})"
        )
    return 100.0 * abs((during - before) - expected) / expected
