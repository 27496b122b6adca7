"""Ray lifecycle for a run: start a local Ray sized by the scenario, or attach.

Whatever this module starts, it shuts down, also on Ctrl-C or an exception.
A local Ray started here keeps the dashboard off unless asked for, and then
binds it to 127.0.0.1. Token authentication is left as Ray sets it up.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

# Ray's default on Linux is the machine's outbound IP; this makes a local Ray
# advertise (and its dashboard bind to) loopback instead. Applied only to the
# process that starts Ray, not at import.
_LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


@dataclass(frozen=True)
class RaySession:
    """What the run is attached to."""

    address: str | None
    started_here: bool
    num_cpus: float
    object_store_bytes: int | None


@contextmanager
def ray_session(
    num_cpus: int | None = None,
    object_store_memory: int | None = None,
    address: str | None = None,
    include_dashboard: bool = False,
) -> Iterator[RaySession]:
    """Start or attach to Ray for the duration of the block."""
    import ray

    if ray.is_initialized():
        # An embedding program (tests, notebooks) owns this Ray: use it, leave it.
        yield _describe(address=None, started=False)
        return
    if address:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    else:
        for key, value in _LOOPBACK_ENV.items():
            os.environ.setdefault(key, value)
        ray.init(
            num_cpus=num_cpus,
            object_store_memory=object_store_memory,
            include_dashboard=include_dashboard,
            dashboard_host="127.0.0.1",
            log_to_driver=False,
            configure_logging=False,
        )
    try:
        yield _describe(address=address, started=not address)
    finally:
        # Stops what we started; for an attached cluster only disconnects the driver.
        ray.shutdown()


def _describe(address: str | None, started: bool) -> RaySession:
    import ray

    resources = ray.cluster_resources()
    store = resources.get("object_store_memory")
    return RaySession(
        address=address,
        started_here=started,
        num_cpus=float(resources.get("CPU", 0.0)),
        object_store_bytes=int(store) if store else None,
    )
