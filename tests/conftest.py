"""Shared fixtures: one local Ray instance per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

# CI runs the same examples every time (no flaky first encounters on a fresh clone);
# local runs keep exploring new ones.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """A local Ray with 2 CPUs and a modest object store, shared by the session."""
    from harness.raysession import ray_session as started

    with started(num_cpus=2, object_store_memory=256 * 1024 * 1024):
        yield
