"""Shared fixtures: one local Ray instance per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """A local Ray with 2 CPUs and a modest object store, shared by the session."""
    from harness.raysession import ray_session as started

    with started(num_cpus=2, object_store_memory=256 * 1024 * 1024):
        yield
