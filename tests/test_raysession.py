"""Ray's lifecycle for a run: the session reports the eviction period in force."""

from __future__ import annotations

import pytest

from harness.raysession import FREE_OBJECTS_PERIOD_MS, RaySession, ray_session


@pytest.mark.usefixtures("ray_session")
def test_reused_session_reads_the_eviction_period_back_from_the_cluster() -> None:
    # The tests' Ray was started by ray_session with its default; an attached or
    # reused session reads the setting from the GCS, not from its own argument.
    with ray_session(free_objects_period_ms=None) as session:
        assert isinstance(session, RaySession)
        assert not session.started_here
        assert session.free_objects_period_ms == FREE_OBJECTS_PERIOD_MS == 0
