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


@dataclass
class FakeScenario:
    """Stands in for a Scenario: the search only overrides and reads measurement."""

    measurement: FakeMeasurement = field(default_factory=FakeMeasurement)
    rate: float = 0.0

    def with_overrides(self, items: list[str]) -> FakeScenario:
        import json

        rate = json.loads(items[0].split("=", 1)[1])["rate"]
        return FakeScenario(self.measurement, rate)

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
