"""Shared fixtures of the benchmarks: one local Ray instance per session.

The harness runner reuses an initialised Ray, so the scenario benchmarks pay
for starting Ray once, not once per round.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """A local Ray with 2 CPUs and a 256 MiB object store, shared by the session."""
    from harness.raysession import ray_session as started

    with started(num_cpus=2, object_store_memory=256 * 1024 * 1024):
        yield


@pytest.fixture(scope="session")
def calibration() -> dict[str, object]:
    """The machine calibration, measured once (about a second)."""
    from harness.calibration import calibrate

    return calibrate()
