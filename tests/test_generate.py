from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
from loglines import COMBINED, path_template, stream_offsets

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
from logpipe.traffic import build_catalog


def _text(stream: GeneratedStream) -> list[str]:
    return b"".join(decode(b) for b in stream.batches).decode().splitlines()


@pytest.fixture(scope="module")
def base() -> tuple[GeneratorConfig, GeneratedStream, list[str]]:
    cfg = GeneratorConfig(seed=11, batch_lines=3000)
    stream = generate(cfg, stream_offsets(10_000.0, 6.0))
    return cfg, stream, _text(stream)


def test_same_seed_same_bytes_other_seed_differs() -> None:
    off = stream_offsets(2000.0, 3.0)
    a = generate(GeneratorConfig(seed=5), off)
    b = generate(GeneratorConfig(seed=5), off)
    c = generate(GeneratorConfig(seed=6), off)
    assert [x.payload.tobytes() for x in a.batches] == [x.payload.tobytes() for x in b.batches]
    assert a.truth == b.truth
    assert _text(a) != _text(c)


def test_content_does_not_depend_on_batch_size_or_codec() -> None:
    off = stream_offsets(3000.0, 4.0)
    ref = _text(generate(GeneratorConfig(seed=2, batch_lines=10_000), off))
    for cfg in (
        GeneratorConfig(seed=2, batch_lines=777, codec="gzip"),
        GeneratorConfig(seed=2, batch_lines=8192, codec="none"),
    ):
        assert _text(generate(cfg, off)) == ref


def test_iterator_matches_in_memory_form() -> None:
    cfg = GeneratorConfig(seed=4, batch_lines=1000, json_fraction=0.5)
    off = stream_offsets(1000.0, 3.0)
    raw = b"".join(rb.raw for rb in iter_raw_batches(cfg, off))
    assert raw == b"".join(decode(b) for b in generate(cfg, off).batches)


def test_batches_meta_and_planned_emit(base) -> None:
    cfg, stream, lines = base
    off = stream_offsets(10_000.0, 6.0)
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
    stream = generate(
        GeneratorConfig(seed=1), stream_offsets(100.0, 1.0), clock=lambda: next(ticks)
    )
    assert stream.build_s == 2.5


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
    off = stream_offsets(5000.0, 12.0)
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
    mine_in = [float(r["rt"]) for r in inside if path_template(r["path"]) == template]
    mine_out = [float(r["rt"]) for r in outside if path_template(r["path"]) == template]
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
    endpoints = {(r["service"], path_template(r["path"])) for r in mine}
    assert len(endpoints) > 60  # a scan, not a hot endpoint
    denied = np.mean([r["status"] in ("401", "403") for r in mine])
    assert denied > 0.6
    assert len({r["ip"] for r in mine}) == 1


def test_baseline_traffic_is_unchanged_outside_injections() -> None:
    off = stream_offsets(2000.0, 6.0)
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
    lines = _text(generate(cfg, stream_offsets(2000.0, 1.0)))
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
        generate(cfg, stream_offsets(10.0, 1.0))
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
    real = generate(GeneratorConfig(batch_lines=100), stream_offsets(1_000.0, 3.0))
    scaled = generate(
        GeneratorConfig(batch_lines=100, event_speed=4.0), stream_offsets(1_000.0, 3.0)
    )
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
    off = stream_offsets(1000.0, 2.0)
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
