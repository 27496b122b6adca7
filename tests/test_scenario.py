"""Scenario model: validation with field paths, module loading, matrices, overrides."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from factories import fails
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.scenario import (
    GeneratorSpec,
    InjectionSpec,
    Matrix,
    MeasurementSpec,
    ParserSpec,
    RateSpec,
    Scenario,
    ScenarioError,
    ShardingSpec,
    TestKnobs,
    WindowsSpec,
    detector_config,
    list_scenarios,
    load_scenario_module,
)

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"
SHIPPED = sorted(p for p in SCENARIO_DIR.glob("*.py") if not p.name.startswith("_"))
MiB = 1024 * 1024


def gen(**kw: Any) -> GeneratorSpec:
    kw.setdefault("rate", RateSpec.constant(1000))
    kw.setdefault("duration_s", 10.0)
    return GeneratorSpec(**kw)


def scn(**kw: Any) -> Scenario:
    kw.setdefault("name", "t")
    kw.setdefault("generator", gen())
    return Scenario(**kw)


BAD_FIELDS: list[tuple[str, Callable[[], Any]]] = [
    ("name", lambda: scn(name="has space")),
    ("name", lambda: scn(name="")),
    ("description", lambda: scn(description=3)),
    ("generator", lambda: scn(generator=None)),
    ("parser", lambda: scn(parser={"strategy": "arrow"})),
    ("measurement.warmup_s", lambda: scn(measurement=MeasurementSpec(warmup_s=10))),
    (  # searching with injections: the detection probe runs generator.duration_s
        "measurement.warmup_s",
        lambda: scn(
            generator=gen(duration_s=3.0, injections=[InjectionSpec("latency", 1, 1)]),
            measurement=MeasurementSpec(warmup_s=4, search=True, search_low=1, search_high=2),
        ),
    ),
    ("thresholds", lambda: scn(thresholds="integrity.ok == 1")),
    ("thresholds[1]", lambda: scn(thresholds=("integrity.ok == 1", "x > 1"))),
    ("thresholds[0]", lambda: scn(thresholds=("integrity.ok",))),
    ("thresholds[0]", lambda: scn(thresholds=(5,))),
    ("detector", lambda: scn(detector=["warmup_windows"])),
    ("testing", lambda: scn(testing=TestKnobs(slowdown_us_per_line=5))),
]


@pytest.mark.parametrize(
    ("path", "build"), BAD_FIELDS, ids=[f"{i}-{p}" for i, (p, _) in enumerate(BAD_FIELDS)]
)
def test_bad_field_names_its_path(path: str, build: Callable[[], Any]) -> None:
    fails(build, path)


def test_unknown_metric_suggests_close_names() -> None:
    err = fails(
        lambda: scn(thresholds=("integrity.ok == 1", "detection.recal >= 1")), "thresholds[1]"
    )
    assert "unknown metric 'detection.recal'" in str(err)
    assert "detection.recall" in str(err)


def test_aggregated_thresholds_accepted() -> None:
    exprs = ("med(throughput.lines_per_s) > 1e5", "max(object_store.peak_bytes) < 134217728")
    assert scn(thresholds=exprs).thresholds == exprs


def test_detector_overrides_are_validated_by_the_detector_config() -> None:
    fails(lambda: scn(detector={"no_such_setting": 1}), "detector.no_such_setting")
    fails(lambda: scn(detector={"ewma_alpha": 5.0}), "detector.ewma_alpha")
    s = scn(detector={"warmup_windows": 3})
    config = detector_config(s)
    assert config is not None and config.warmup_windows == 3
    with pytest.raises(TypeError):
        s.detector["warmup_windows"] = 4  # type: ignore[index]


def test_test_knobs_need_the_explicit_flag() -> None:
    knobs = TestKnobs(aggregation_stall_s=2.0, stall_during_anomaly=True)
    s = scn(testing=knobs, allow_test_knobs=True)
    assert s.testing.aggregation_stall_s == 2.0
    assert scn(allow_test_knobs=True).testing == TestKnobs()


def test_numbers_are_normalised() -> None:
    s = scn(
        generator=gen(rate=RateSpec.constant(1000), duration_s=10),
        parser=ParserSpec(parallelism=4.0),  # type: ignore[arg-type]
    )
    assert isinstance(s.generator.rate.rate, float) and isinstance(s.generator.duration_s, float)
    assert s.parser.parallelism == 4 and isinstance(s.parser.parallelism, int)
    assert s.fingerprint() == scn(generator=gen(rate=RateSpec.constant(1000.0))).fingerprint()


def test_max_in_flight_follows_parallelism_until_set() -> None:
    s = scn(parser=ParserSpec(parallelism=3))
    assert s.max_in_flight == 12  # IN_FLIGHT_PER_TASK (4) x parallelism
    assert s.to_dict()["measurement"]["max_in_flight"] == 12
    assert s.to_dict(resolved=False)["measurement"]["max_in_flight"] is None
    assert s.with_overrides(["parser.parallelism=8"]).max_in_flight == 32
    assert s.with_overrides(["measurement.max_in_flight=5"]).max_in_flight == 5


# --- to_dict / from_dict / fingerprint --------------------------------------------


def test_from_dict_reports_nested_paths() -> None:
    base = scn().to_dict()
    bad = json.loads(json.dumps(base))
    bad["generator"]["injections"] = [
        {"kind": "latency", "start_s": 1, "duration_s": 1},
        {"kind": "latency", "start_s": 1, "duration_s": -1},
    ]
    fails(lambda: Scenario.from_dict(bad), "generator.injections[1].duration_s")
    bad = json.loads(json.dumps(base))
    bad["sharding"]["colour"] = "red"
    fails(lambda: Scenario.from_dict(bad), "sharding.colour")
    del bad["sharding"]["colour"], bad["generator"]["duration_s"]
    fails(lambda: Scenario.from_dict(bad), "generator.duration_s")
    fails(lambda: Scenario.from_dict({"name": "x", "generator": 3}), "generator")


def test_fingerprint_ignores_labels_but_not_settings() -> None:
    s = scn(thresholds=("integrity.ok == 1",))
    same = scn(name="other", description="words")
    assert s.fingerprint() == same.fingerprint()
    assert s.fingerprint() != s.with_overrides(["generator.seed=2"]).fingerprint()
    assert len(s.fingerprint()) == 16


finite = st.floats(min_value=1, max_value=1e6, allow_nan=False, allow_infinity=False)
rates = st.one_of(
    finite.map(RateSpec.constant),
    st.tuples(finite, finite).map(lambda ab: RateSpec.ramp(*ab)),
    st.lists(st.tuples(st.floats(0.5, 3), finite), min_size=1, max_size=3).map(RateSpec.step),
    st.tuples(finite, st.floats(0, 5), st.floats(0.1, 2)).map(
        lambda t: RateSpec.burst(t[0], t[0] * 2, t[1], t[2], every_s=t[2] * 2)
    ),
)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    duration = draw(st.floats(10, 100))
    strategy = draw(st.sampled_from(["single", "by_service", "by_endpoint", "round_robin"]))
    shards = 1 if strategy == "single" else draw(st.integers(1, 8))
    slide = draw(st.integers(1, 5))
    kind = draw(st.sampled_from(["error_rate", "latency", "user_activity"]))
    return Scenario(
        name=draw(st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)),
        generator=GeneratorSpec(
            rate=draw(rates),
            duration_s=duration,
            user_skew=draw(st.floats(0, 10)),
            seed=draw(st.integers(0, 2**31)),
            injections=(InjectionSpec(kind, draw(st.floats(0, duration - 1)), 1.0),),
        ),
        sharding=ShardingSpec(strategy=strategy, shards=shards),
        windows=WindowsSpec(size_s=slide * draw(st.integers(1, 10)), slide_s=slide),
        detector=draw(st.sampled_from([{}, {"warmup_windows": 2}])),
        measurement=MeasurementSpec(max_in_flight=draw(st.none() | st.integers(1, 64))),
    )


@settings(max_examples=40, deadline=None)
@given(scenarios())
def test_to_dict_from_dict_round_trip(s: Scenario) -> None:
    raw = s.to_dict(resolved=False)
    assert Scenario.from_dict(json.loads(json.dumps(raw))) == s
    resolved = s.to_dict()
    again = Scenario.from_dict(json.loads(json.dumps(resolved)))
    assert again.to_dict() == resolved
    assert again.fingerprint() == s.fingerprint()


# --- --set overrides --------------------------------------------------------------


def test_set_applies_json_and_string_values() -> None:
    s = scn().with_overrides(
        [
            "sharding.strategy=by_endpoint",
            "sharding.shards=4",
            "sharding.spread=true",
            'generator.rate={"kind": "ramp", "start_rate": 10, "end_rate": 20}',
            "generator.injections=[]",
            "detector.warmup_windows=2",
            "ray.address=ray://head:10001",
        ]
    )
    assert (s.sharding.strategy, s.sharding.shards, s.sharding.spread) == ("by_endpoint", 4, True)
    assert s.generator.rate == RateSpec.ramp(10, 20)
    assert s.detector == {"warmup_windows": 2}
    assert s.ray.address == "ray://head:10001"


def test_set_can_index_lists_and_takes_a_mapping() -> None:
    s = scn(generator=gen(injections=[InjectionSpec("latency", 1, 1)]))
    assert (
        s.with_overrides(["generator.injections[0].start_s=5"]).generator.injections[0].end_s == 6
    )
    assert s.with_overrides({"generator.injections.0.kind": "error_rate"}).generator.injections[
        0
    ].kind == ("error_rate")


@pytest.mark.parametrize(
    ("assignment", "path"),
    [
        ("foo.bar=1", "--set foo.bar"),
        ("sharding.shard=2", "--set sharding.shard"),
        ("sharding.shards.x=2", "--set sharding.shards.x"),
        ("generator.injections[3].start_s=1", "--set generator.injections[3].start_s"),
        ("sharding.shards=0", "sharding.shards"),
        ("sharding.shards=4", "sharding.shards"),  # strategy is single
        ("sharding.shards=four", "sharding.shards"),
        ("generator.rate.kind=ramp", "generator.rate.rate"),
        ("windows.slide_s=3", "windows.size_s"),
        ("generator.duration_s=1", "measurement.warmup_s"),
        ('thresholds=["nope > 1"]', "thresholds[0]"),
        ("detector.nope=1", "detector.nope"),
        ("ray.state_dir=state", "ray.state_dir"),
        ("testing.slowdown_us_per_line=5", "--set testing.slowdown_us_per_line"),
        ("testing={}", "--set testing"),
        ("allow_test_knobs=true", "--set allow_test_knobs"),
    ],
)
def test_set_errors_name_the_setting(assignment: str, path: str) -> None:
    base = scn()
    fails(lambda: base.with_overrides([assignment]), path)


def test_unknown_setting_message() -> None:
    err = fails(lambda: scn().with_overrides(["sharding.shard=2"]), "--set sharding.shard")
    assert "unknown setting" in str(err) and "shards" in str(err)


def test_malformed_assignment() -> None:
    with pytest.raises(ScenarioError, match=r"expected key\.path=value"):
        scn().with_overrides(["sharding.shards"])


def test_set_testing_allowed_only_when_the_scenario_allows() -> None:
    s = scn(allow_test_knobs=True).with_overrides(["testing.slowdown_us_per_line=3"])
    assert s.testing.slowdown_us_per_line == 3.0


# --- scenario modules -------------------------------------------------------------


def write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


GOOD_MODULE = """
from harness.scenario import GeneratorSpec, RateSpec, Scenario
SCENARIO = Scenario(name="mine", generator=GeneratorSpec(RateSpec.constant(10), 5.0))
"""


def test_load_module_by_path_without_polluting_sys_modules(tmp_path: Path) -> None:
    before = set(sys.modules)
    loaded = load_scenario_module(write(tmp_path, "mine.py", GOOD_MODULE))
    assert isinstance(loaded, Scenario) and loaded.name == "mine"
    assert set(sys.modules) - before == set()


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        ("x = (\n", r"bad\.py:1: syntax error: "),
        ("import harness\nX = 1\n", r"bad\.py: defines no SCENARIO"),
        ("SCENARIO = 42\n", r"bad\.py: SCENARIO must be a Scenario or a Matrix \(got int\)"),
        ("\n\nSCENARIO = undefined_name\n", r"bad\.py:3: NameError: "),
    ],
)
def test_broken_modules(tmp_path: Path, body: str, pattern: str) -> None:
    path = write(tmp_path, "bad.py", body)
    with pytest.raises(ScenarioError, match=pattern):
        load_scenario_module(path)


def test_missing_module(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario_module(tmp_path / "nope.py")


def test_validation_error_in_module_keeps_the_field_path(tmp_path: Path) -> None:
    body = GOOD_MODULE.replace("5.0))", "5.0), windows=WindowsSpec(10, 3))").replace(
        "Scenario\n", "Scenario, WindowsSpec\n"
    )
    fails(lambda: load_scenario_module(write(tmp_path, "w.py", body)), "windows.size_s")


def test_list_scenarios_reports_broken_modules(tmp_path: Path) -> None:
    write(tmp_path, "a_good.py", GOOD_MODULE)
    write(tmp_path, "b_bad.py", "SCENARIO = (\n")
    write(tmp_path, "_helper.py", "raise RuntimeError('never imported')\n")
    rows = list_scenarios(tmp_path)
    assert [Path(r.path).name for r in rows] == ["a_good.py", "b_bad.py"]
    assert rows[0].name == "mine" and rows[0].variants == ()
    assert rows[1].name is None and "syntax error" in rows[1].description


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_scenarios_load_and_round_trip(path: Path) -> None:
    loaded = load_scenario_module(path)
    assert loaded.name == path.stem
    assert loaded.description
    module_doc = path.read_text().split('"""')[1]
    assert "?" in module_doc  # each says what question it answers
    variants = loaded.variants() if isinstance(loaded, Matrix) else [("", loaded)]
    for _, s in variants:
        settings_ = json.loads(json.dumps(s.to_dict()))
        assert Scenario.from_dict(settings_).to_dict() == settings_
        for inj in s.generator.injections:
            assert inj.start_s >= s.measurement.warmup_s  # inside the measured window


def test_shipped_set_is_complete() -> None:
    expected = {
        "smoke",
        "baseline",
        "sharding",
        "hot_keys",
        "burst",
        "parser_parallelism",
        "batch_size",
        "engines",
        "object_store_pressure",
        "max_throughput",
        "faults",
        "validation",
        "allocator",
    }
    assert {p.stem for p in SHIPPED} == expected


def test_smoke_is_small_and_checks_machine_independent_metrics() -> None:
    smoke = load_scenario_module(SCENARIO_DIR / "smoke.py")
    assert isinstance(smoke, Scenario)
    g = smoke.generator
    # A few seconds a replicate on 2 cores (~110k lines/s), offered faster than that.
    assert g.duration_s * g.rate.peak_rate() <= 400_000
    assert g.rate.peak_rate() >= 200_000
    # Enough event time for the detector's warm-up and every injection to end inside.
    event_s = g.duration_s * g.event_speed
    warmup_event_s = smoke.detector["warmup_windows"] * smoke.windows.slide_s
    assert all(warmup_event_s < i.start_s * g.event_speed for i in g.injections)
    assert all(i.start_s + i.duration_s <= g.duration_s for i in g.injections)
    assert event_s >= smoke.windows.size_s * 2
    assert {i.kind for i in g.injections} == {"error_rate", "latency", "user_activity"}
    assert smoke.ray.object_store_memory == 256 * MiB and smoke.measurement.replicates == 4
    metrics = " ".join(smoke.thresholds)
    for metric in ("integrity.ok", "detection.recall", "detection.precision", "object_store."):
        assert metric in metrics
    assert "throughput" not in metrics and "ttd" not in metrics


def test_detection_fraction_error_is_one_line_with_the_bounds() -> None:
    err = fails(
        lambda: scn(generator=gen(), measurement=MeasurementSpec(search_detection_fraction=1.5)),
        "measurement.search_detection_fraction",
    )
    assert "\n" not in str(err) and "<= 1" in str(err) and "1.5" in str(err)
    s = scn().with_overrides(["measurement.search_detection_fraction=0.25"])
    assert s.measurement.search_detection_fraction == 0.25
    assert MeasurementSpec().search_detection_fraction == 0.5


def test_max_throughput_detects_each_kind_within_a_slide_of_the_oracle() -> None:
    from harness.search import detection_target_s

    m = load_scenario_module(SCENARIO_DIR / "max_throughput.py")
    assert isinstance(m, Scenario) and m.measurement.search
    assert m.measurement.search_detection_fraction == 0.5
    g = m.generator
    assert len(g.injections) >= 3
    assert {i.kind for i in g.injections} == {"error_rate", "latency", "user_activity"}
    # After the detector's warm-up windows, inside the detection probe's run.
    warmup_windows = detector_config(m).warmup_windows
    assert all(i.start_s * g.event_speed > warmup_windows * m.windows.slide_s for i in g.injections)
    assert all(i.end_s <= g.duration_s for i in g.injections)
    # The threshold's literal is the scenario's own slide + 0.25 s.
    bound = [t for t in m.thresholds if t.startswith("max(detection.delay_over_oracle_p99_s)")]
    assert len(bound) == 1
    assert float(bound[0].split("<=")[1]) == pytest.approx(detection_target_s(m))
    assert "min(detection.recall) >= 1" in m.thresholds


def test_sharding_matrix_covers_every_strategy_and_skew() -> None:
    m = load_scenario_module(SCENARIO_DIR / "sharding.py")
    assert isinstance(m, Matrix)
    combos = {
        (s.sharding.strategy, s.sharding.shards, s.generator.user_skew) for _, s in m.variants()
    }
    assert len(combos) == 20
    assert ("single", 1, 0.8) in combos and ("round_robin", 4, 1.5) in combos
    assert all(shards == 1 for strategy, shards, _ in combos if strategy == "single")
