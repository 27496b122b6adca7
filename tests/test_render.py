"""The renderer's lines: both formats well formed, mixed in event order, realistic draws."""

from __future__ import annotations

import collections
import datetime as dt
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loglines import COMBINED, ISO_MS, JSON_KEYS, path_template, stream_offsets

from logpipe import schema
from logpipe.generate import GeneratorConfig, Injection, event_ms, plan_injections
from logpipe.render import Renderer
from logpipe.traffic import METHODS, PROTOCOLS, build_catalog


def _render(cfg: GeneratorConfig, off: np.ndarray) -> list[str]:
    """Every line of the stream, rendered as one batch."""
    cat = build_catalog(cfg)
    ems = event_ms(cfg, off)
    renderer = Renderer(cfg, cat, plan_injections(cfg, cat), ems)
    return renderer.render(0, 0, len(ems), float(off[-1])).raw.decode().splitlines()


@pytest.fixture(scope="module")
def base() -> tuple[GeneratorConfig, list[str]]:
    cfg = GeneratorConfig(seed=11)
    return cfg, _render(cfg, stream_offsets(10_000.0, 6.0))


def test_combined_line_format(base) -> None:
    cfg, lines = base
    cat = build_catalog(cfg)
    ems = event_ms(cfg, stream_offsets(10_000.0, 6.0))
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
        assert path_template(m["path"]) in per_service[m["service"]]
        assert 100 <= int(m["status"]) <= 599
    assert any("?" in line for line in lines)
    assert lines[0].split(" [")[1].startswith("01/Jan/2026:00:00:00 +0000]")


def test_json_line_format() -> None:
    cfg = GeneratorConfig(seed=3, json_fraction=1.0)
    off = stream_offsets(2000.0, 2.0)
    ems = event_ms(cfg, off)
    lines = _render(cfg, off)
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
    off = stream_offsets(4000.0, 5.0)
    lines = _render(cfg, off)
    is_json = np.array([ln.startswith("{") for ln in lines])
    assert 0.27 < is_json.mean() < 0.33
    assert all(COMBINED.match(ln) for ln, j in zip(lines, is_json) if not j)
    # Same random draws as the all-combined stream: only the rendering differs.
    plain = _render(GeneratorConfig(seed=8), off)
    for ln, other in zip(lines[:500], plain[:500]):
        if ln.startswith("{"):
            obj = json.loads(ln)
            assert other.startswith(f"{obj['ip']} - {obj['user']} [")
            assert other.endswith(f"{obj['request_time']:.3f} {obj['service']}")
        else:
            assert ln == other


def test_distributions_without_injections(base) -> None:
    _, lines = base
    rows = [COMBINED.match(ln) for ln in lines]
    status = np.array([int(r["status"]) for r in rows])
    assert 0.01 <= np.mean(status >= 500) <= 0.02
    assert 0.03 <= np.mean((status >= 400) & (status < 500)) <= 0.12
    assert np.mean(status < 400) > 0.85
    users = collections.Counter(r["user"] for r in rows)
    assert 0.1 < users.pop("-") / len(rows) < 0.3
    counts = sorted(users.values(), reverse=True)
    assert counts[0] > 20 * counts[len(counts) // 2]  # Zipf: heavy head, long tail
    endpoints = collections.Counter((r["service"], path_template(r["path"])) for r in rows)
    ep_counts = sorted(endpoints.values(), reverse=True)
    assert ep_counts[0] > 10 * ep_counts[len(ep_counts) // 2]
    rt = collections.defaultdict(list)
    for r in rows:
        rt[r["service"]].append(float(r["rt"]))
    medians = [np.median(v) for v in rt.values()]
    assert max(medians) > 2 * min(medians)  # per-service latency medians differ


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
    for line in _render(cfg, stream_offsets(300.0, 1.0)):
        if line.startswith("{"):
            assert list(json.loads(line)) == JSON_KEYS
        else:
            assert COMBINED.match(line), line
