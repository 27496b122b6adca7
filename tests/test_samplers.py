"""Sampler scheduling, failure accounting and series helpers; the real resource probe."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.samplers import ResourceProbe, Sampler, Series, local_ray_markers, sum_series


class FakeClock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_ticks_record_named_series_relative_to_origin() -> None:
    clock = FakeClock()
    values = iter([1.0, 5.0, 3.0])
    sampler = Sampler({"p": lambda: {"a": next(values), "b": 2.0}}, interval_s=0.5, clock=clock)
    sampler._origin = 100.0
    for dt in (0.0, 0.5, 1.0):
        clock.t = 100.0 + dt
        sampler.tick()
    series = sampler.series()
    assert series["a"].t_s == [0.0, 0.5, 1.0]
    assert series["a"].values == [1.0, 5.0, 3.0]
    assert series["a"].peak() == 5.0
    assert series["a"].mean() == pytest.approx(3.0)
    assert series["b"].values == [2.0, 2.0, 2.0]
    assert sampler.ticks == 3


def test_probe_failure_is_counted_and_other_probes_continue() -> None:
    calls = {"n": 0}

    def flaky() -> dict[str, float]:
        calls["n"] += 1
        if calls["n"] % 2:
            raise OSError("raylet gone")
        return {"flaky": 1.0}

    sampler = Sampler({"flaky": flaky, "ok": lambda: {"ok": 7.0}}, clock=FakeClock())
    for _ in range(4):
        sampler.tick()
    assert sampler.failures == {"flaky": 2, "ok": 0}
    assert "raylet gone" in sampler.last_errors["flaky"]
    assert len(sampler.series()["flaky"]) == 2
    assert len(sampler.series()["ok"]) == 4


def test_listeners_are_notified_and_their_errors_contained() -> None:
    seen: list[tuple[str, float, float]] = []
    sampler = Sampler({"p": lambda: {"x": 4.0}}, clock=FakeClock())
    sampler.on_sample.append(lambda name, t, v: seen.append((name, t, v)))

    def broken(name: str, t: float, v: float) -> None:
        raise ZeroDivisionError

    sampler.on_sample.append(broken)
    sampler._origin = 99.0
    sampler.tick()
    assert seen == [("x", 1.0, 4.0)]
    assert sampler.listener_failures == 1
    assert len(sampler.series()["x"]) == 1


def test_thread_samples_until_stopped_and_takes_a_final_sample() -> None:
    got_three = threading.Event()
    n = {"calls": 0}

    def probe() -> dict[str, float]:
        n["calls"] += 1
        if n["calls"] >= 3:
            got_three.set()
        return {"v": float(n["calls"])}

    sampler = Sampler({"p": probe}, interval_s=0.002).start()
    assert got_three.wait(5.0)
    series = sampler.stop()
    assert series["v"].values == [float(i) for i in range(1, n["calls"] + 1)]
    assert series["v"].t_s == sorted(series["v"].t_s)
    assert series["v"].t_s[0] >= 0.0
    calls_at_stop = n["calls"]
    time.sleep(0.01)
    assert n["calls"] == calls_at_stop  # the thread is really gone
    with pytest.raises(RuntimeError):
        sampler.start()


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Sampler({}, interval_s=0)


def test_series_round_trip_and_extend_keeps_time_order() -> None:
    a = Series([0.0, 2.0], [1.0, 3.0])
    a.extend(Series([1.0, 3.0], [2.0, 4.0]))
    assert a.t_s == [0.0, 1.0, 2.0, 3.0] and a.values == [1.0, 2.0, 3.0, 4.0]
    assert Series.from_dict(a.to_dict()) == a
    assert Series().peak() is None and Series().mean() is None


def test_sum_series_holds_each_part_latest_value() -> None:
    a = Series([0.0, 2.0], [10.0, 20.0])
    b = Series([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    total = sum_series([a, b, Series()])
    assert total.t_s == [0.0, 1.0, 2.0, 3.0]
    assert total.values == [10.0, 11.0, 22.0, 23.0]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 1000)), max_size=8), max_size=4)
)
def test_sum_series_ends_at_the_sum_of_last_values(raw: list[list[tuple[int, int]]]) -> None:
    parts = []
    for samples in raw:
        samples = sorted(dict(samples).items())
        parts.append(Series([float(t) for t, _ in samples], [float(v) for _, v in samples]))
    total = sum_series(parts)
    assert total.t_s == sorted(set(total.t_s))
    nonempty = [p for p in parts if len(p)]
    if nonempty:
        assert total.values[-1] == sum(p.values[-1] for p in nonempty)
    else:
        assert len(total) == 0


def test_resource_probe_sees_a_busy_child_process() -> None:
    busy = subprocess.Popen(
        [sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<30: pass"]
    )
    try:
        probe = ResourceProbe()
        assert busy.pid in {p.pid for p in probe.processes()}
        first = probe()
        assert "resources.cpu_percent" not in first  # priming call
        assert first["resources.rss_bytes"] > 0
        time.sleep(0.3)
        second = probe()
        # The spinning child alone keeps most of a core busy (shared 2-core machine).
        assert second["resources.cpu_percent"] > 20.0
        assert second["resources.rss_bytes"] >= first["resources.rss_bytes"] * 0.5
    finally:
        busy.kill()
        busy.wait()
    # A process that vanished between calls is simply no longer counted.
    assert busy.pid not in {p.pid for p in probe.processes()}
    assert "resources.cpu_percent" in probe()


def test_marked_processes_outside_the_tree_are_included(tmp_path) -> None:
    marker = str(tmp_path / "session_fake")
    code = "import time\ntime.sleep(30)"
    other = subprocess.Popen([sys.executable, "-c", code, marker], start_new_session=True)
    try:
        # No tree root (no such pid): only the marker can bring `other` in.
        probe = ResourceProbe(root_pid=1 << 30, markers=[marker])
        pids = {p.pid for p in probe.processes()}
        assert other.pid in pids
        unmarked = ResourceProbe(root_pid=1 << 30, markers=[])
        assert other.pid not in {p.pid for p in unmarked.processes()}
    finally:
        other.kill()
        other.wait()


@pytest.mark.ray
def test_local_ray_markers_find_the_session(ray_session: None) -> None:
    markers = local_ray_markers()
    assert markers and all(os.path.isdir(m) for m in markers)
    probe = ResourceProbe(root_pid=1 << 30, markers=markers)  # markers alone
    names = {p.name() for p in probe.processes()}
    assert {"raylet", "gcs_server"} <= names
