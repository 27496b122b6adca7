"""Ray lifecycle for a run: start a local Ray sized by the scenario, or attach.

Whatever this module starts, it shuts down, also on Ctrl-C or an exception.
A local Ray started here keeps the dashboard off unless asked for, and then
binds it to 127.0.0.1. Token authentication is left as Ray sets it up.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# Ray's default on Linux is the machine's outbound IP; this makes a local Ray
# advertise (and its dashboard bind to) loopback instead. Applied only to the
# process that starts Ray, not at import.
_LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}

# How often (ms) the raylet of a Ray started here evicts objects whose last
# reference is gone. Ray's default, 1000, batches the frees, so the store holds up
# to a second of finished batches beyond the pipeline's in-flight work (4-8x the
# in-flight bound, measured); 0 evicts each object as it is released
# (docs/performance.md, "Object store"). None leaves Ray's default.
FREE_OBJECTS_PERIOD_MS: int | None = 0


class RayStartError(RuntimeError):
    """Ray could not be started or attached to; the message is one line."""


@dataclass(frozen=True)
class RaySession:
    """What the run is attached to."""

    address: str | None
    started_here: bool
    num_cpus: float
    object_store_bytes: int | None
    cluster: Any = None  # the ray.cluster_utils.Cluster when simulated_nodes >= 2
    # The eviction period in the cluster's system config, read back from its GCS;
    # None when not set there (Ray's default, 1000 ms, unless the raylet's
    # environment sets RAY_free_objects_period_milliseconds).
    free_objects_period_ms: int | None = None


@contextmanager
def ray_session(
    num_cpus: int | None = None,
    object_store_memory: int | None = None,
    address: str | None = None,
    include_dashboard: bool = False,
    simulated_nodes: int = 0,
    free_objects_period_ms: int | None = FREE_OBJECTS_PERIOD_MS,
) -> Iterator[RaySession]:
    """Start or attach to Ray for the duration of the block.

    ``simulated_nodes >= 2`` starts a ``ray.cluster_utils.Cluster`` on this
    machine instead (a head and ``simulated_nodes - 1`` workers, sharing
    ``num_cpus`` and the object store), for multi-node fault runs.
    ``free_objects_period_ms`` applies only to a Ray started here.
    """
    import ray

    if ray.is_initialized():
        # An embedding program (tests, notebooks) owns this Ray: use it, leave it.
        yield _describe(address=None, started=False)
        return
    handlers = _signal_handlers()
    system_config = (
        {}
        if free_objects_period_ms is None or address
        else {"free_objects_period_milliseconds": int(free_objects_period_ms)}
    )
    try:
        cluster = _start(
            num_cpus,
            object_store_memory,
            address,
            include_dashboard,
            simulated_nodes,
            system_config,
        )
    except Exception as exc:  # Ray raises bare Exception (and others) when it cannot start
        ray.shutdown()  # whatever part of it did start
        _restore_signal_handlers(handlers)
        lines = str(exc).strip().splitlines()
        raise RayStartError(lines[0] if lines else type(exc).__name__) from exc
    _restore_signal_handlers(handlers)
    try:
        session = _describe(address=address, started=not address)
        yield RaySession(
            session.address,
            session.started_here,
            session.num_cpus,
            session.object_store_bytes,
            cluster,
            session.free_objects_period_ms,
        )
    finally:
        # Stops what we started; for an attached cluster only disconnects the driver.
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()


def _start(
    num_cpus: int | None,
    object_store_memory: int | None,
    address: str | None,
    include_dashboard: bool,
    simulated_nodes: int,
    system_config: dict[str, Any],
) -> Any:
    """Start or attach to Ray; returns the simulated cluster, if one was started."""
    import ray

    if simulated_nodes >= 2:
        return _start_cluster(simulated_nodes, num_cpus, object_store_memory, system_config)
    if address:
        _check_reachable(address)
        ray.init(address=address, log_to_driver=False, configure_logging=False)
        return None
    _loopback_only()
    ray.init(
        # "local" always starts a private instance: never attach by accident to
        # another program's Ray found on this machine.
        address="local",
        num_cpus=num_cpus,
        object_store_memory=object_store_memory,
        include_dashboard=include_dashboard,
        dashboard_host="127.0.0.1",
        log_to_driver=False,
        configure_logging=False,
        _system_config=system_config or None,
    )
    return None


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast when nothing listens at a ``HOST:PORT`` address.

    Ray keeps retrying an unreachable GCS for minutes before it gives up; a
    mistyped ``--address`` should cost seconds. Other forms (``auto``,
    ``ray://...``) are left to Ray.
    """
    if "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise RayStartError(f"address {address!r}: the port must be a number")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise RayStartError(f"nothing answers at {address}: {exc.strerror or exc}") from None


def _loopback_only() -> None:
    """Make the Ray started here bind and advertise 127.0.0.1 only.

    Ray reads ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` once, when ``ray`` is first
    imported (usually long before a run starts), into
    ``ray._private.ray_constants.ENABLE_RAY_CLUSTER``; the node address -- and
    with it the address every Ray server binds -- is chosen from that constant
    when Ray starts. Set both; the environment is inherited by Ray's processes.
    An explicit user setting of the variable is respected.
    """
    from ray._private import ray_constants

    for key, value in _LOOPBACK_ENV.items():
        os.environ.setdefault(key, value)
    if os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0":
        ray_constants.ENABLE_RAY_CLUSTER = False


def _signal_handlers() -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_signal_handlers(handlers: dict[int, Any]) -> None:
    """Put back the caller's Python handlers that ``ray.init`` replaced.

    ``ray.init`` sets SIGTERM to ``sys.exit`` and its core worker installs a C++
    failure handler that aborts the process, so without this a SIGTERM kills the
    run before the harness can stop it, save the partial result and stop Ray.
    """
    for sig, handler in handlers.items():
        if callable(handler):
            signal.signal(sig, handler)


def _start_cluster(
    nodes: int, num_cpus: int | None, store: int | None, system_config: dict[str, Any]
) -> Any:
    from ray.cluster_utils import Cluster

    _loopback_only()
    cpus = max(1, (num_cpus or os.cpu_count() or 2) // nodes)
    per_node: dict[str, Any] = {"num_cpus": cpus, "include_dashboard": False}
    if store:
        per_node["object_store_memory"] = max(store // nodes, 75 * 1024 * 1024)
    # The system config is the cluster's: given to the head, the other nodes get it from it.
    head = per_node | ({"_system_config": system_config} if system_config else {})
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        for _ in range(nodes - 1):
            cluster.add_node(**{k: v for k, v in per_node.items() if k != "include_dashboard"})
        cluster.wait_for_nodes()
        import ray

        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
    except BaseException:
        cluster.shutdown()
        raise
    return cluster


def _describe(address: str | None, started: bool) -> RaySession:
    import ray

    resources = ray.cluster_resources()
    store = resources.get("object_store_memory")
    return RaySession(
        address=address,
        started_here=started,
        num_cpus=float(resources.get("CPU", 0.0)),
        object_store_bytes=int(store) if store else None,
        free_objects_period_ms=_free_objects_period_ms(),
    )


def _free_objects_period_ms() -> int | None:
    """The eviction period in the connected cluster's system config, if set there.

    Read from the GCS (``ray._private.state``: Ray has no public reader), so a
    result records the setting in force also on a cluster this run attached to.
    """
    try:
        from ray._private.state import state

        value = state.get_system_config().get("free_objects_period_milliseconds")
    except Exception:  # a private API: a change in it costs the record, not the run
        return None
    return int(value) if isinstance(value, (int, float)) else None
