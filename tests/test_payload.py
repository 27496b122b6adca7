from __future__ import annotations

import pytest

from harness.payload import build_payload
from harness.scenario import GeneratorSpec, InjectionSpec, RateSpec
from logpipe.generate import DEFAULT_START_MS


def _spec(event_speed: float) -> GeneratorSpec:
    return GeneratorSpec(
        rate=RateSpec.constant(2_000),
        duration_s=2.0,
        batch_lines=500,
        event_speed=event_speed,
        injections=(InjectionSpec("error_rate", start_s=1.0, duration_s=0.5),),
    )


def test_payload_schedule_is_in_stream_seconds_and_event_time_follows_event_speed() -> None:
    real, fast = build_payload(_spec(1.0)), build_payload(_spec(5.0))
    assert real.lines == fast.lines == 4_000
    assert list(real.planned_s) == list(fast.planned_s)
    spans = [p.batches[-1].meta.last_event_ms - DEFAULT_START_MS for p in (real, fast)]
    assert spans[1] == pytest.approx(5 * spans[0], abs=5)
    (t_real,), (t_fast,) = real.truth, fast.truth
    assert t_real.start_ms - DEFAULT_START_MS == 1_000
    assert t_fast.start_ms - DEFAULT_START_MS == 5_000
    assert t_fast.end_ms - t_fast.start_ms == 2_500
