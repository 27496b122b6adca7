"""The max-rate search: the sustainability verdict and the search path."""

from __future__ import annotations

from dataclasses import dataclass, field

from factories import make_replicate, make_result

from harness import search
from harness.results import RunResult


def rep_with(latencies: list[float], backlog: list[float], complete: bool = True):
    t = [float(i) for i in range(len(backlog))]
    return make_replicate(
        0,
        {"throughput.lines_per_s": 1000.0, "integrity.ok": 1.0},
        complete=complete,
        samples={"latency.batch_s": latencies},
        series={"backlog.batches": {"t_s": t, "values": backlog}},
    )


def test_flat_latency_and_no_backlog_is_sustainable() -> None:
    ok, growth, tail = search.judge(rep_with([0.2, 0.25, 0.18, 0.22, 0.21] * 4, [0] * 20))
    assert ok and abs(growth) < 0.1 and tail == 0


def test_growing_latency_is_not_sustainable() -> None:
    lat = [0.2 + 0.1 * i for i in range(30)]  # a queue building up: +2.9 s
    ok, growth, _ = search.judge(rep_with(lat, [0] * 30))
    assert not ok and growth > 2.5


def test_backlog_in_the_tail_is_not_sustainable() -> None:
    ok, _, tail = search.judge(rep_with([0.2] * 20, [0] * 15 + [4, 5, 6, 7, 8]))
    assert not ok and tail == 8


def test_too_few_samples_is_not_a_verdict_of_success() -> None:
    assert search.judge(rep_with([0.1], [0]))[0] is False


@dataclass
class FakeMeasurement:
    search_low: float = 10_000
    search_high: float = 1_000_000
    search_step_s: float = 3.0
    warmup_s: float = 1.0
    search_detection_fraction: float = 0.5


@dataclass
class FakeGenerator:
    injections: tuple = ("error_rate", "latency", "user_activity")
    event_speed: float = 1.0


@dataclass
class FakeWindows:
    slide_s: int = 2


@dataclass
class FakeScenario:
    """Stands in for a Scenario: the search overrides it and reads its settings."""

    measurement: FakeMeasurement = field(default_factory=FakeMeasurement)
    rate: float = 0.0
    generator: FakeGenerator = field(default_factory=FakeGenerator)
    windows: FakeWindows = field(default_factory=FakeWindows)

    def with_overrides(self, items: list[str]) -> FakeScenario:
        import json

        rate = json.loads(items[0].split("=", 1)[1])["rate"]
        injections = () if "generator.injections=[]" in items else self.generator.injections
        return FakeScenario(self.measurement, rate, FakeGenerator(injections), self.windows)

    def to_dict(self) -> dict:
        return {"measurement": {"search": True}}


def test_search_converges_below_the_true_capacity() -> None:
    capacity = 95_000.0
    seen: list[float] = []

    def run(scn: FakeScenario) -> RunResult:
        seen.append(scn.rate)
        if scn.rate <= capacity:
            rep = rep_with([0.2] * 20, [0] * 20)
        else:
            rep = rep_with([0.2 + 0.2 * i for i in range(20)], [float(i) for i in range(20)])
        return _result(rep)

    probes = search.search(FakeScenario(), run, lambda: False)
    best = max(p.rate for p in probes if p.sustainable)
    assert best <= capacity
    assert best >= capacity / search.GROWTH  # bisection closes in past one growth step
    assert seen[0] == 10_000
    result = search.summarize_search(FakeScenario(), probes)
    rep = result.replicates[0]
    assert rep.metrics["throughput.max_sustainable_lines_per_s"] == best
    assert rep.series["search.offered_lines_per_s"]["values"] == seen


def _result(rep) -> RunResult:
    from dataclasses import replace

    base = make_result([rep.metrics])
    return replace(base, replicates=(rep,))


CAPACITY = 95_000.0
PROBE_DETECTIONS = ({"kind": "latency", "detected": True, "delay_over_oracle_s": 0.4},)


def fake_run(seen: list[FakeScenario]):
    """Sustainable up to CAPACITY; a run with injections detects them (the detection probe)."""

    def run(scn: FakeScenario) -> RunResult:
        seen.append(scn)
        if scn.generator.injections:
            rep = make_replicate(
                0,
                {
                    "integrity.ok": 1.0,
                    "detection.recall": 0.5,
                    "detection.ttd_p50_s": 1.1,
                    "detection.delay_over_oracle_p99_s": 0.9,
                },
                detections=PROBE_DETECTIONS,
                alerts=({"kind": "latency", "matched": True},),
                integrity={"ok": True, "problems": []},
            )
        elif scn.rate <= CAPACITY:
            rep = rep_with([0.2] * 20, [0] * 20)
        else:
            rep = rep_with([0.2 + 0.2 * i for i in range(20)], [float(i) for i in range(20)])
        return _result(rep)

    return run


def test_search_result_carries_the_detection_probe_at_a_fraction_of_the_best_rate() -> None:
    seen: list[FakeScenario] = []
    scn = FakeScenario()
    probes = search.search(scn, fake_run(seen), lambda: False)
    assert all(not s.generator.injections for s in seen)  # search probes inject nothing
    best = max(p.rate for p in probes if p.sustainable)
    detection = search.detection_probe(scn, probes, fake_run(seen), lambda: False)
    assert detection is not None and detection.rate == best * 0.5
    assert seen[-1].rate == best * 0.5 and seen[-1].generator.injections
    rep = search.summarize_search(scn, probes, detection).replicates[0]
    m = rep.metrics
    assert m["throughput.max_sustainable_lines_per_s"] == best
    assert m["search.detection_rate_lines_per_s"] == best * 0.5
    assert m["search.detection_target_s"] == 2.25  # slide 2 s at event speed 1, + 0.25 s
    assert m["detection.delay_over_oracle_p99_s"] == 0.9
    assert m["detection.recall"] == 0.5 and m["detection.ttd_p50_s"] == 1.1
    assert m["integrity.ok"] == 1.0
    assert rep.detections == PROBE_DETECTIONS and len(rep.alerts) == 1


def test_detection_target_is_one_slide_of_wall_time() -> None:
    fast = FakeScenario(generator=FakeGenerator(event_speed=4.0), windows=FakeWindows(slide_s=2))
    assert search.detection_target_s(fast) == 0.5 + 0.25


def test_no_detection_probe_without_injections_a_sustainable_rate_or_time() -> None:
    seen: list[FakeScenario] = []
    probes = search.search(FakeScenario(), fake_run(seen), lambda: False)
    n = len(seen)
    bare = FakeScenario(generator=FakeGenerator(injections=()))
    assert search.detection_probe(bare, probes, fake_run(seen), lambda: False) is None
    assert search.detection_probe(FakeScenario(), probes, fake_run(seen), lambda: True) is None
    failing = [p for p in probes if not p.sustainable]
    assert search.detection_probe(FakeScenario(), failing, fake_run(seen), lambda: False) is None
    assert len(seen) == n  # nothing was run
    rep = search.summarize_search(FakeScenario(), probes, None).replicates[0]
    assert "search.detection_rate_lines_per_s" not in rep.metrics


def test_a_detection_probe_that_fails_integrity_fails_the_result() -> None:
    seen: list[FakeScenario] = []
    probes = search.search(FakeScenario(), fake_run(seen), lambda: False)
    bad = make_replicate(
        0, {"integrity.ok": 0.0}, integrity={"ok": False, "problems": ["3 lines lost"]}
    )
    detection = search.DetectionProbe(1000.0, _result(bad))
    rep = search.summarize_search(FakeScenario(), probes, detection).replicates[0]
    assert rep.metrics["integrity.ok"] == 0.0
    assert rep.integrity["ok"] is False
    assert "detection probe: 3 lines lost" in rep.integrity["problems"]
