from __future__ import annotations

import collections
import datetime as dt
import json
import re
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logpipe import schema
from logpipe.batch import decode
from logpipe.generate import (
    DEFAULT_START_MS,
    GeneratedStream,
    GeneratorConfig,
    GroundTruth,
    Injection,
    event_ms,
    generate,
    ground_truth,
    iter_raw_batches,
)
from logpipe.logfile import load_truth, write_log
from logpipe.rate import Constant
from logpipe.traffic import METHODS, PROTOCOLS, build_catalog

COMBINED = re.compile(
    r"^(?P<ip>\d{1,3}(?:\.\d{1,3}){3}) - (?P<user>-|u\d{6,7}) "
    r"\[(?P<ts>\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000)\] "
    r'"(?P<method>[A-Z]+) (?P<path>/[^ "]*) (?P<protocol>HTTP/\d\.\d)" '
    r'(?P<status>\d{3}) (?P<bytes>\d+) "(?P<referer>[^"]*)" "(?P<ua>[^"]+)" '
    r"(?P<rt>\d+\.\d{3}) (?P<service>[a-z-]+\d*)$"
)
JSON_KEYS = [
    "ip",
    "user",
    "time",
    "method",
    "path",
    "protocol",
    "status",
    "bytes",
    "referer",
    "user_agent",
    "request_time",
    "service",
]
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def _offsets(rate: float = 4000.0, seconds: float = 5.0) -> np.ndarray:
    return Constant(rate).line_offsets(seconds)


def _text(stream: GeneratedStream) -> list[str]:
    return b"".join(decode(b) for b in stream.batches).decode().splitlines()


def _template(path: str) -> str:
    """What the parser does: drop the query, numeric segments become {id}."""
    return "/".join("{id}" if s.isdigit() else s for s in path.split("?", 1)[0].split("/"))


@pytest.fixture(scope="module")
def base() -> tuple[GeneratorConfig, GeneratedStream, list[str]]:
    cfg = GeneratorConfig(seed=11, batch_lines=3000)
    stream = generate(cfg, _offsets(10_000.0, 6.0))
    return cfg, stream, _text(stream)


def test_same_seed_same_bytes_other_seed_differs() -> None:
    off = _offsets(2000.0, 3.0)
    a = generate(GeneratorConfig(seed=5), off)
    b = generate(GeneratorConfig(seed=5), off)
    c = generate(GeneratorConfig(seed=6), off)
    assert [x.payload.tobytes() for x in a.batches] == [x.payload.tobytes() for x in b.batches]
    assert a.truth == b.truth
    assert _text(a) != _text(c)


def test_content_does_not_depend_on_batch_size_or_codec() -> None:
    off = _offsets(3000.0, 4.0)
    ref = _text(generate(GeneratorConfig(seed=2, batch_lines=10_000), off))
    for cfg in (
        GeneratorConfig(seed=2, batch_lines=777, codec="gzip"),
        GeneratorConfig(seed=2, batch_lines=8192, codec="none"),
    ):
        assert _text(generate(cfg, off)) == ref


def test_iterator_matches_in_memory_form() -> None:
    cfg = GeneratorConfig(seed=4, batch_lines=1000, json_fraction=0.5)
    off = _offsets(1000.0, 3.0)
    raw = b"".join(rb.raw for rb in iter_raw_batches(cfg, off))
    assert raw == b"".join(decode(b) for b in generate(cfg, off).batches)


def test_batches_meta_and_planned_emit(base) -> None:
    cfg, stream, lines = base
    off = _offsets(10_000.0, 6.0)
    ems = event_ms(cfg, off)
    assert [b.batch_id for b in stream.batches] == list(range(len(stream.batches)))
    assert stream.lines == len(lines) == len(off) == sum(b.meta.line_count for b in stream.batches)
    assert stream.raw_bytes == sum(b.meta.raw_bytes for b in stream.batches)
    assert stream.build_s > 0
    lo = 0
    for i, b in enumerate(stream.batches):
        hi = lo + b.meta.line_count
        assert b.meta.line_count == min(cfg.batch_lines, len(off) - lo)
        assert (b.meta.first_event_ms, b.meta.last_event_ms) == (ems[lo], ems[hi - 1])
        assert stream.planned_emit_s[i] == off[hi - 1]
        assert b.meta.codec == "zstd" and len(decode(b)) == b.meta.raw_bytes
        lo = hi


def test_injected_clock_measures_build_time() -> None:
    ticks = iter([10.0, 12.5])
    stream = generate(GeneratorConfig(seed=1), _offsets(100.0, 1.0), clock=lambda: next(ticks))
    assert stream.build_s == 2.5


def test_combined_line_format(base) -> None:
    cfg, _, lines = base
    cat = build_catalog(cfg)
    ems = event_ms(cfg, _offsets(10_000.0, 6.0))
    per_service = collections.defaultdict(set)
    for t, s in zip(cat.templates, cat.endpoint_service):
        per_service[cat.services[s]].add(t)
    for i, line in enumerate(lines):
        m = COMBINED.match(line)
        assert m, line
        stamp = dt.datetime.fromtimestamp(ems[i] // 1000, dt.timezone.utc)
        assert m["ts"] == stamp.strftime("%d/%b/%Y:%H:%M:%S +0000")
        assert m["method"] in METHODS and m["protocol"] in PROTOCOLS
        assert m["service"] in cat.services
        assert _template(m["path"]) in per_service[m["service"]]
        assert 100 <= int(m["status"]) <= 599
    assert any("?" in line for line in lines)
    assert lines[0].split(" [")[1].startswith("01/Jan/2026:00:00:00 +0000]")


def test_json_line_format() -> None:
    cfg = GeneratorConfig(seed=3, json_fraction=1.0)
    off = _offsets(2000.0, 2.0)
    ems = event_ms(cfg, off)
    lines = _text(generate(cfg, off))
    for i, line in enumerate(lines):
        obj = json.loads(line)
        assert list(obj) == JSON_KEYS
        assert ISO_MS.match(obj["time"])
        when = dt.datetime.fromisoformat(obj["time"].replace("Z", "+00:00"))
        assert round(when.timestamp() * 1000) == ems[i]
        assert isinstance(obj["status"], int) and isinstance(obj["bytes"], int)
        assert isinstance(obj["request_time"], (int, float)) and obj["request_time"] >= 0
        assert obj["method"] in METHODS and obj["path"].startswith("/")


def test_heterogeneous_stream_mixes_formats_in_event_order() -> None:
    cfg = GeneratorConfig(seed=8, json_fraction=0.3)
    off = _offsets(4000.0, 5.0)
    lines = _text(generate(cfg, off))
    is_json = np.array([ln.startswith("{") for ln in lines])
    assert 0.27 < is_json.mean() < 0.33
    assert all(COMBINED.match(ln) for ln, j in zip(lines, is_json) if not j)
    # Same random draws as the all-combined stream: only the rendering differs.
    plain = _text(generate(GeneratorConfig(seed=8), off))
    for ln, other in zip(lines[:500], plain[:500]):
        if ln.startswith("{"):
            obj = json.loads(ln)
            assert other.startswith(f"{obj['ip']} - {obj['user']} [")
            assert other.endswith(f"{obj['request_time']:.3f} {obj['service']}")
        else:
            assert ln == other


def test_distributions_without_injections(base) -> None:
    _, _, lines = base
    rows = [COMBINED.match(ln) for ln in lines]
    status = np.array([int(r["status"]) for r in rows])
    assert 0.01 <= np.mean(status >= 500) <= 0.02
    assert 0.03 <= np.mean((status >= 400) & (status < 500)) <= 0.12
    assert np.mean(status < 400) > 0.85
    users = collections.Counter(r["user"] for r in rows)
    assert 0.1 < users.pop("-") / len(rows) < 0.3
    counts = sorted(users.values(), reverse=True)
    assert counts[0] > 20 * counts[len(counts) // 2]  # Zipf: heavy head, long tail
    endpoints = collections.Counter((r["service"], _template(r["path"])) for r in rows)
    ep_counts = sorted(endpoints.values(), reverse=True)
    assert ep_counts[0] > 10 * ep_counts[len(ep_counts) // 2]
    rt = collections.defaultdict(list)
    for r in rows:
        rt[r["service"]].append(float(r["rt"]))
    medians = [np.median(v) for v in rt.values()]
    assert max(medians) > 2 * min(medians)  # per-service latency medians differ


def _rows_in(lines: list[str], ems: np.ndarray, truth: GroundTruth, inside: bool) -> list:
    sel = (ems >= truth.start_ms) & (ems < truth.end_ms)
    return [COMBINED.match(ln) for ln, s in zip(lines, sel) if s == inside]


@pytest.fixture(scope="module")
def injected() -> tuple[GeneratorConfig, list[str], np.ndarray, list[GroundTruth]]:
    injections = (
        Injection(schema.ERROR_RATE, 4.0, 3.0),
        Injection(schema.LATENCY, 4.0, 3.0),
        Injection(schema.USER_ACTIVITY, 8.0, 2.0),
    )
    cfg = GeneratorConfig(seed=21, injections=injections)
    off = _offsets(5000.0, 12.0)
    stream = generate(cfg, off)
    return cfg, _text(stream), event_ms(cfg, off), stream.truth


def test_ground_truth_windows_and_keys(injected) -> None:
    cfg, _, _, truth = injected
    cat = build_catalog(cfg)
    assert [t.kind for t in truth] == [schema.ERROR_RATE, schema.LATENCY, schema.USER_ACTIVITY]
    assert truth[0].key in cat.services
    assert truth[1].key in cat.endpoint_keys()
    assert truth[2].key not in cat.user_ids
    assert (truth[0].start_ms, truth[0].end_ms) == (
        DEFAULT_START_MS + 4000,
        DEFAULT_START_MS + 7000,
    )
    assert ground_truth(cfg) == truth
    # The default error-rate key is a busy service: among the top three.
    assert truth[0].key in [cat.services[i] for i in np.argsort(-cat.service_share())[:3]]


def test_error_rate_injection(injected) -> None:
    _, lines, ems, truth = injected
    t = truth[0]
    inside = [r for r in _rows_in(lines, ems, t, True) if r["service"] == t.key]
    outside = [r for r in _rows_in(lines, ems, t, False) if r["service"] == t.key]
    share_in = np.mean([int(r["status"]) >= 500 for r in inside])
    share_out = np.mean([int(r["status"]) >= 500 for r in outside])
    assert len(inside) > 500 and 0.33 < share_in < 0.47
    assert share_out < 0.03


def test_latency_injection(injected) -> None:
    _, lines, ems, truth = injected
    t = truth[1]
    service, template = t.key.split(" ", 1)

    inside = [r for r in _rows_in(lines, ems, t, True) if r["service"] == service]
    outside = [r for r in _rows_in(lines, ems, t, False) if r["service"] == service]
    mine_in = [float(r["rt"]) for r in inside if _template(r["path"]) == template]
    mine_out = [float(r["rt"]) for r in outside if _template(r["path"]) == template]
    assert len(mine_in) > 50
    assert np.median(mine_in) > 6 * np.median(mine_out)


def test_user_activity_injection(injected) -> None:
    _, lines, ems, truth = injected
    t = truth[2]
    inside = _rows_in(lines, ems, t, True)
    outside = _rows_in(lines, ems, t, False)
    mine = [r for r in inside if r["user"] == t.key]
    assert not any(r["user"] == t.key for r in outside)
    assert 0.06 < len(mine) / len(inside) < 0.10
    endpoints = {(r["service"], _template(r["path"])) for r in mine}
    assert len(endpoints) > 60  # a scan, not a hot endpoint
    denied = np.mean([r["status"] in ("401", "403") for r in mine])
    assert denied > 0.6
    assert len({r["ip"] for r in mine}) == 1


def test_baseline_traffic_is_unchanged_outside_injections() -> None:
    off = _offsets(2000.0, 6.0)
    inj = (Injection(schema.USER_ACTIVITY, 2.0, 1.0), Injection(schema.ERROR_RATE, 2.0, 1.0))
    plain = _text(generate(GeneratorConfig(seed=9), off))
    with_inj = _text(generate(GeneratorConfig(seed=9, injections=inj), off))
    ems = event_ms(GeneratorConfig(seed=9), off)
    outside = (ems < DEFAULT_START_MS + 2000) | (ems >= DEFAULT_START_MS + 3000)
    assert [a for a, o in zip(plain, outside) if o] == [b for b, o in zip(with_inj, outside) if o]
    assert plain != with_inj


def test_explicit_keys_and_intensity() -> None:
    cfg = GeneratorConfig(seed=1)
    cat = build_catalog(cfg)
    ep = cat.endpoint_keys()[3]
    injections = (
        Injection(schema.ERROR_RATE, 0.0, 1.0, key=cat.services[2], intensity=0.9),
        Injection(schema.LATENCY, 0.0, 1.0, key=ep, intensity=3.0),
        Injection(schema.USER_ACTIVITY, 0.0, 1.0, key="mallory", intensity=0.5),
    )
    cfg = GeneratorConfig(seed=1, injections=injections)
    assert [t.key for t in ground_truth(cfg)] == [cat.services[2], ep, "mallory"]
    lines = _text(generate(cfg, _offsets(2000.0, 1.0)))
    assert 0.4 < np.mean([" mallory [" in ln for ln in lines]) < 0.6


@pytest.mark.parametrize(
    ("make", "prefix"),
    [
        (lambda: GeneratorConfig(json_fraction=1.5), "json_fraction:"),
        (lambda: GeneratorConfig(codec="lz4"), "codec:"),
        (lambda: GeneratorConfig(seed=-1), "seed:"),
        (lambda: GeneratorConfig(batch_lines=0), "batch_lines:"),
        (lambda: GeneratorConfig(n_services=0), "n_services:"),
        (lambda: GeneratorConfig(endpoints_per_service=10_000), "endpoints_per_service:"),
        (lambda: GeneratorConfig(error_5xx_rate=float("nan")), "error_5xx_rate:"),
        (lambda: GeneratorConfig(event_speed=0.0), "event_speed:"),
        (lambda: GeneratorConfig(event_speed=float("inf")), "event_speed:"),
        (lambda: Injection("spike", 0.0, 1.0), "kind:"),
        (lambda: Injection(schema.ERROR_RATE, -1.0, 1.0), "start_s:"),
        (lambda: Injection(schema.ERROR_RATE, 0.0, 0.0), "duration_s:"),
        (lambda: Injection(schema.ERROR_RATE, 0.0, 1.0, intensity=2.0), "intensity:"),
        (lambda: Injection(schema.USER_ACTIVITY, 0.0, 1.0, key="a b"), "key:"),
    ],
)
def test_validation(make: Callable[[], object], prefix: str) -> None:
    with pytest.raises(ValueError) as info:
        make()
    assert str(info.value).startswith(prefix)


def test_unknown_injection_key_and_bad_offsets() -> None:
    cfg = GeneratorConfig(injections=(Injection(schema.ERROR_RATE, 0.0, 1.0, key="nope"),))
    with pytest.raises(ValueError, match="unknown service"):
        generate(cfg, _offsets(10.0, 1.0))
    with pytest.raises(ValueError, match=r"^offsets_s: must be nondecreasing"):
        generate(GeneratorConfig(), np.array([0.0, 2.0, 1.0]))


def test_event_speed_scales_event_time_and_injection_windows() -> None:
    offsets = np.array([0.0, 0.5, 1.0, 2.25])
    fast = GeneratorConfig(event_speed=4.0, injections=(Injection(schema.ERROR_RATE, 1.0, 0.5),))
    assert list(event_ms(fast, offsets) - DEFAULT_START_MS) == [0, 2_000, 4_000, 9_000]
    # The injection's window is in stream seconds: [1.0, 1.5) s -> [4, 6) event seconds.
    (truth,) = ground_truth(fast)
    assert (truth.start_ms - DEFAULT_START_MS, truth.end_ms - DEFAULT_START_MS) == (4_000, 6_000)
    # The lines themselves carry the scaled time: the last batch ends 4x later.
    real = generate(GeneratorConfig(batch_lines=100), _offsets(1_000.0, 3.0))
    scaled = generate(GeneratorConfig(batch_lines=100, event_speed=4.0), _offsets(1_000.0, 3.0))
    span = [s.batches[-1].meta.last_event_ms - DEFAULT_START_MS for s in (real, scaled)]
    assert span[1] == pytest.approx(4 * span[0], abs=4)
    # The schedule (planned emit times) does not change with the event speed.
    assert np.array_equal(real.planned_emit_s, scaled.planned_emit_s)


def test_config_dict_round_trip() -> None:
    cfg = GeneratorConfig(seed=3, injections=(Injection(schema.LATENCY, 1.0, 2.0),))
    assert GeneratorConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize("suffix", [".log", ".log.gz", ".log.zst"])
def test_write_log_is_deterministic_with_truth(tmp_path, suffix: str) -> None:
    cfg = GeneratorConfig(seed=5, injections=(Injection(schema.ERROR_RATE, 0.5, 0.5),))
    off = _offsets(1000.0, 2.0)
    a = write_log(tmp_path / f"a{suffix}", cfg, off)
    b = write_log(tmp_path / f"b{suffix}", cfg, off)
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.lines == len(off)
    assert a.truth_path.name == f"a{suffix}.truth.json"
    assert load_truth(a.truth_path) == a.truth == ground_truth(cfg)
    expected = b"".join(decode(x) for x in generate(cfg, off).batches)
    if suffix == ".log":
        assert a.path.read_bytes() == expected
    assert a.raw_bytes == len(expected)


@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    n_services=st.integers(1, 20),
    per=st.integers(1, 40),
    json_fraction=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_any_small_config_renders_valid_lines(seed, n_services, per, json_fraction) -> None:
    cfg = GeneratorConfig(
        seed=seed,
        n_services=n_services,
        endpoints_per_service=per,
        n_users=50,
        json_fraction=json_fraction,
        injections=(Injection(schema.USER_ACTIVITY, 0.0, 0.5), Injection(schema.LATENCY, 0, 1)),
    )
    for line in _text(generate(cfg, _offsets(300.0, 1.0))):
        if line.startswith("{"):
            assert list(json.loads(line)) == JSON_KEYS
        else:
            assert COMBINED.match(line), line
