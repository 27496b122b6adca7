"""Detector rules on real pane aggregates, pane ordering across shards, snapshots, actor."""

from __future__ import annotations

import functools
import json
import pickle
import random
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logpipe import schema
from logpipe.detector import Alert, DetectorConfig, DetectorCore
from logpipe.detector_actor import DetectorActor, remote_detector
from logpipe.windows import PaneAggregate, WindowSpec, aggregate_table

SPEC = WindowSpec(4_000, 1_000)  # 4 panes per window
SERVICES = ("auth", "cart", "shop")
ENDPOINTS = ("/a", "/b")
USERS = np.array([f"u{i}" for i in range(200)])
ZIPF = np.arange(1, 201, dtype=float) ** -1.1
ZIPF /= ZIPF.sum()


@dataclass(frozen=True)
class Anomaly:
    kind: str
    key: str
    start: int  # first anomalous pane
    end: int  # first normal pane after it


def pane_table(p: int, anomalies: tuple[Anomaly, ...] = (), n: int = 600, seed: int = 0):
    """One second of steady Zipf traffic in pane ``p``, with ``anomalies`` active in it."""
    rng = np.random.default_rng([seed, p])
    svc = rng.choice(SERVICES, n)
    ep = rng.choice(ENDPOINTS, n)
    user = USERS[rng.choice(len(USERS), n, p=ZIPF)].astype(object)
    p5 = np.full(n, 0.015)
    latency = 0.05 * np.exp(0.6 * rng.standard_normal(n))
    status = np.where(rng.random(n) < 0.02, 401, 200)
    for a in anomalies:
        if not a.start <= p < a.end:
            continue
        if a.kind == schema.ERROR_RATE:
            p5[svc == a.key] = 0.4
        elif a.kind == schema.LATENCY:
            latency[np.array([schema.endpoint_key(s, e) for s, e in zip(svc, ep)]) == a.key] *= 10
        else:
            sel = rng.random(n) < 0.1
            user[sel] = a.key
            status[sel] = np.where(rng.random(int(sel.sum())) < 0.8, 401, 200)
    status = np.where(rng.random(n) < p5, 503, status)
    columns = {
        "ip": pa.array([f"10.0.0.{i % 250}" for i in range(n)]),
        "user": pa.array(user.tolist()),
        "event_ms": pa.array(np.sort(p * 1000 + rng.integers(0, 1000, n)), pa.int64()),
        "method": pa.array(["GET"] * n),
        "path": pa.array(ep.tolist()),
        "protocol": pa.array(["HTTP/1.1"] * n),
        "status": pa.array(status, pa.int16()),
        "bytes": pa.array(rng.integers(100, 5000, n), pa.int64()),
        "referer": pa.array(["-"] * n),
        "user_agent": pa.array(["curl/8"] * n),
        "latency_s": pa.array(latency),
        "service": pa.array(svc.tolist()),
        "endpoint": pa.array(ep.tolist()),
        "status_class": pa.array((status // 100).astype(np.int8), pa.int8()),
    }
    return pa.table(columns, schema=schema.PARSED_SCHEMA)


@functools.cache
def pane_agg(p: int, anomalies: tuple[Anomaly, ...] = (), seed: int = 0) -> PaneAggregate:
    """Cached: the detector and the sliding window never mutate submitted panes."""
    return aggregate_table(pane_table(p, anomalies, seed=seed), SPEC.pane_ms)[p]


def run(panes: range, anomalies: tuple[Anomaly, ...] = (), config=None) -> list[Alert]:
    core = DetectorCore(config or DetectorConfig(), SPEC, 1)
    alerts = []
    for p in panes:
        alerts += core.submit(0, pane_agg(p, anomalies), trigger_batch_id=p)
    return alerts + core.flush()


def test_steady_stream_raises_nothing() -> None:
    assert run(range(60)) == []


@pytest.mark.parametrize(
    "anomaly",
    [
        Anomaly(schema.ERROR_RATE, "cart", 20, 30),
        Anomaly(schema.LATENCY, schema.endpoint_key("shop", "/b"), 20, 30),
        Anomaly(schema.USER_ACTIVITY, "mallory", 20, 30),
    ],
    ids=lambda a: a.kind,
)
def test_each_rule_fires_once_within_two_slides(anomaly: Anomaly) -> None:
    alerts = run(range(50), (anomaly,))
    assert [(a.kind, a.key) for a in alerts] == [(anomaly.kind, anomaly.key)]
    alert = alerts[0]
    # Window ending with pane 20 or 21 (trigger batch id = pane index here).
    assert alert.trigger_batch_id in (20, 21)
    assert alert.window_end_ms == (alert.trigger_batch_id + 1) * 1000 == alert.event_ms
    assert alert.window_start_ms == alert.window_end_ms - SPEC.size_ms
    assert alert.observed > alert.baseline >= 0
    assert alert.alert_id == 0 and alert.detected_wall_s is None


def test_no_alert_during_warmup() -> None:
    anomaly = Anomaly(schema.ERROR_RATE, "cart", 0, 3)
    assert run(range(20), (anomaly,), DetectorConfig(warmup_windows=5)) == []


def test_long_incident_does_not_poison_baseline_and_realerts_after_clearing() -> None:
    first = Anomaly(schema.ERROR_RATE, "auth", 15, 60)
    second = Anomaly(schema.ERROR_RATE, "auth", 80, 90)
    alerts = run(range(100), (first, second), DetectorConfig(clear_after_windows=3))
    assert [(a.key, a.trigger_batch_id in (15, 16, 80, 81)) for a in alerts] == [
        ("auth", True),
        ("auth", True),
    ]
    # 45 windows at 40 % 5xx left the baseline where the normal traffic put it.
    assert alerts[1].baseline == pytest.approx(alerts[0].baseline, abs=0.01)
    assert alerts[1].baseline < 0.05
    assert [a.alert_id for a in alerts] == [0, 1]


def test_low_volume_windows_neither_fire_nor_clear_an_incident() -> None:
    anomaly = (Anomaly(schema.ERROR_RATE, "cart", 20, 50),)
    core = DetectorCore(DetectorConfig(clear_after_windows=3), SPEC, 1)
    alerts = []
    for p in range(55):
        table = pane_table(p, anomaly)
        if 25 <= p < 40:  # cart thinned to ~20 requests a pane: below min_requests
            svc = np.array(table.column("service").to_pylist())
            keep = (svc != "cart") | (np.arange(len(svc)) % 10 == 0)
            table = table.filter(pa.array(keep))
        alerts += core.submit(0, aggregate_table(table, SPEC.pane_ms)[p], p)
    assert [(a.key, a.trigger_batch_id) for a in alerts] == [("cart", alerts[0].trigger_batch_id)]
    assert alerts[0].trigger_batch_id in (20, 21)


def split(agg_table: pa.Table, n_shards: int) -> list[pa.Table]:
    idx = np.arange(agg_table.num_rows)
    return [agg_table.filter(pa.array(idx % n_shards == s)) for s in range(n_shards)]


def shard_partials(panes: range, anomalies: tuple[Anomaly, ...], n_shards: int):
    """Per shard, its partial aggregate of every pane (empty when it got no rows)."""
    out: list[list[PaneAggregate]] = [[] for _ in range(n_shards)]
    for p in panes:
        for s, part in enumerate(split(pane_table(p, anomalies), n_shards)):
            out[s].append(aggregate_table(part, 1000).get(p) or PaneAggregate.empty(p))
    return out


ANOMALIES = (
    Anomaly(schema.ERROR_RATE, "shop", 14, 18),
    Anomaly(schema.USER_ACTIVITY, "eve", 16, 22),
)
PANES = range(30)


@functools.cache
def three_shard_partials() -> list[list[PaneAggregate]]:
    return shard_partials(PANES, ANOMALIES, 3)


@functools.cache
def one_shard_alerts() -> list[Alert]:
    return run(PANES, ANOMALIES)


def interleave(order_seed: int, dup_rate: float) -> tuple[list[Alert], DetectorCore, int]:
    partials = three_shard_partials()
    rng = random.Random(order_seed)
    cursors = [0, 0, 0]
    core = DetectorCore(DetectorConfig(), SPEC, 3)
    alerts: list[Alert] = []
    dups = 0
    while any(c < len(PANES) for c in cursors):
        s = rng.choice([i for i in range(3) if cursors[i] < len(PANES)])
        alerts += core.submit(s, partials[s][cursors[s]], trigger_batch_id=cursors[s])
        if cursors[s] and rng.random() < dup_rate:  # a restarted shard resends a pane
            alerts += core.submit(s, partials[s][rng.randrange(cursors[s])], 0)
            dups += 1
        cursors[s] += 1
    return alerts + core.flush(), core, dups


def test_three_shards_give_the_alerts_of_one_shard() -> None:
    expected = one_shard_alerts()
    assert [(a.kind, a.key) for a in expected] == [
        (schema.ERROR_RATE, "shop"),
        (schema.USER_ACTIVITY, "eve"),
    ]
    alerts, _, _ = interleave(0, 0.0)
    ident = ("alert_id", "kind", "key", "window_start_ms", "window_end_ms", "trigger_batch_id")
    assert [[getattr(a, f) for f in ident] for a in alerts] == [
        [getattr(a, f) for f in ident] for a in expected
    ]
    # Heavy-hitter counts may differ by the summaries' error bound, no more.
    for got, want in zip(alerts, expected):
        assert got.observed == pytest.approx(want.observed, abs=2 * 2400 / 65 / 2400)


@settings(max_examples=6, deadline=None)
@given(order_seed=st.integers(0, 2**32 - 1), dup_rate=st.sampled_from([0.0, 0.3]))
def test_arrival_order_and_duplicates_do_not_change_alerts(order_seed: int, dup_rate: float):
    reference, _, _ = interleave(0, 0.0)
    alerts, core, dups = interleave(order_seed, dup_rate)
    assert alerts == reference
    assert core.duplicates_ignored == dups
    assert core.panes_completed == len(PANES)


def test_pane_waits_for_every_shard() -> None:
    core = DetectorCore(DetectorConfig(), SPEC, 2)
    core.submit(0, PaneAggregate.empty(5), 1)
    core.submit(0, PaneAggregate.empty(6), 2)
    assert core.panes_completed == 0
    core.submit(1, PaneAggregate.empty(5), 1)
    assert core.panes_completed == 1  # pane 6 still misses shard 1
    core.flush()
    assert core.panes_completed == 2


def test_gaps_slide_empty_panes_and_long_gaps_are_capped() -> None:
    config = DetectorConfig(clear_after_windows=2)
    core = DetectorCore(config, SPEC, 1)
    core.submit(0, pane_agg(3), 0)
    core.submit(0, pane_agg(6), 1)  # panes 4 and 5 never sent
    assert core.panes_completed == 4
    core.submit(0, pane_agg(10_000), 2)  # a long idle stretch
    assert core.panes_completed == 4 + SPEC.panes_per_window + 2 + 1
    assert core.stats()["pending_panes"] == 0


def test_submissions_do_not_mutate_the_callers_aggregate() -> None:
    agg = pane_agg(1)
    before = agg.counts()
    core = DetectorCore(DetectorConfig(), SPEC, 2)
    core.submit(0, agg, 0)
    core.submit(1, pane_agg(1, seed=1), 0)
    assert agg.counts() == before


def test_state_restore_round_trip_continues_identically() -> None:
    anomalies = (Anomaly(schema.LATENCY, schema.endpoint_key("auth", "/a"), 24, 30),)
    aggs = [pane_agg(p, anomalies) for p in range(40)]
    whole = DetectorCore(DetectorConfig(), SPEC, 1)
    expected = [a for i, agg in enumerate(aggs) for a in whole.submit(0, agg, i)]
    assert len(expected) == 1
    first = DetectorCore(DetectorConfig(), SPEC, 1)
    for i, agg in enumerate(aggs[:22]):
        assert first.submit(0, agg, i) == []
    snapshot = pickle.loads(pickle.dumps(first.state()))
    resumed = DetectorCore(DetectorConfig(), SPEC, 1)
    resumed.restore(snapshot)
    assert resumed.submit(0, aggs[21], 21) == []  # replayed after restart: ignored
    got = [a for i, agg in enumerate(aggs[22:], 22) for a in resumed.submit(0, agg, i)]
    assert got == expected
    assert resumed.duplicates_ignored == 1
    with pytest.raises(ValueError, match="snapshot lacks"):
        resumed.restore({})


def test_tracked_baselines_are_bounded() -> None:
    core = DetectorCore(DetectorConfig(max_keys=3), SPEC, 1)
    for p in range(8):
        core.submit(0, pane_agg(p), p)
    # Four kinds of baselines (service, endpoint, user share, user denied share).
    assert 0 < core.stats()["tracked_keys"] <= 4 * 3


def test_config_validation_messages() -> None:
    with pytest.raises(ValueError, match=r"^detector\.ewma_alpha: "):
        DetectorConfig(ewma_alpha=0)
    with pytest.raises(ValueError, match=r"^detector\.ewma_alpha: "):
        DetectorConfig(ewma_alpha="0.1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^detector\.latency_quantile: "):
        DetectorConfig(latency_quantile=1.0)
    with pytest.raises(ValueError, match=r"^detector\.warmup_windows: "):
        DetectorConfig(warmup_windows=-1)
    with pytest.raises(ValueError, match=r"^detector\.clear_after_windows: "):
        DetectorConfig(clear_after_windows=True)
    with pytest.raises(ValueError, match=r"^detector\.error_factor: "):
        DetectorConfig(error_factor=0.5)
    with pytest.raises(ValueError, match=r"^detector\.bogus: unknown"):
        DetectorConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match=r"^detector\.n_shards: "):
        DetectorCore(DetectorConfig(), SPEC, 0)
    with pytest.raises(ValueError, match=r"^detector\.submit: "):
        DetectorCore(DetectorConfig(), SPEC, 2).submit(2, PaneAggregate.empty(0), 0)
    config = DetectorConfig(user_factor=4.0)
    assert DetectorConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@given(
    observed=st.floats(allow_nan=False, allow_infinity=False),
    detected=st.none() | st.floats(0, 2e9),
    key=st.text(max_size=20),
)
@settings(max_examples=30)
def test_alert_json_round_trip(observed: float, detected: float | None, key: str) -> None:
    alert = Alert(3, schema.LATENCY, key, 0, 10_000, observed, 0.1, 10_000, 7, detected)
    assert Alert.from_dict(json.loads(json.dumps(alert.to_dict()))) == alert


def test_alert_from_dict_rejects_bad_input() -> None:
    good = Alert(0, schema.ERROR_RATE, "a", 0, 1, 0.5, 0.1, 1, 0).to_dict()
    with pytest.raises(ValueError, match="missing"):
        Alert.from_dict({k: v for k, v in good.items() if k != "key"})
    with pytest.raises(ValueError, match="unknown kind"):
        Alert.from_dict({**good, "kind": "nope"})
    with pytest.raises(ValueError, match="integer"):
        Alert.from_dict({**good, "alert_id": "1"})


class ListAlerting:
    """Stands in for the alerting actor handle: ``record.remote`` appends."""

    def __init__(self) -> None:
        self.got: list[Alert] = []
        self.record = self

    def remote(self, alerts: list[Alert]) -> None:
        self.got.extend(alerts)


def test_detector_actor_body_forwards_and_checkpoints(tmp_path: Path) -> None:
    sink = ListAlerting()
    path = str(tmp_path / "det.pkl")
    anomaly = Anomaly(schema.ERROR_RATE, "cart", 12, 16)
    actor = DetectorActor(DetectorConfig(), SPEC, 1, sink, checkpoint_path=path, checkpoint_every=4)
    new = sum(actor.submit(0, pane_agg(p, (anomaly,)), p) for p in range(14))
    assert new == 1 and [a.key for a in sink.got] == ["cart"]
    # A restarted actor resumes from its last checkpoint (pane 12 completed).
    again = DetectorActor(DetectorConfig(), SPEC, 1, None, checkpoint_path=path)
    assert again.stats()["panes_completed"] == 12
    assert again.submit(0, pane_agg(5), 5) == 0 and again.stats()["duplicates_ignored"] == 1


@pytest.mark.ray
def test_detector_and_alerting_actors_under_ray(ray_session: None) -> None:
    import ray

    from logpipe.alerting import remote_alerting

    alerting = remote_alerting().remote()
    detector = remote_detector().remote(DetectorConfig(), SPEC, 2, alerting)
    anomaly = Anomaly(schema.USER_ACTIVITY, "mallory", 12, 16)
    partials = shard_partials(range(20), (anomaly,), 2)
    local = DetectorCore(DetectorConfig(), SPEC, 2)
    expected = [a for p in range(20) for s in (0, 1) for a in local.submit(s, partials[s][p], p)]
    refs = [detector.submit.remote(s, partials[s][p], p) for p in range(20) for s in (1, 0)]
    assert sum(ray.get(refs)) == 1
    ray.get(detector.flush.remote())
    got = [Alert.from_dict(d) for d in ray.get(alerting.alerts.remote())]
    assert [(a.kind, a.key) for a in got] == [(schema.USER_ACTIVITY, "mallory")]
    assert got[0].detected_wall_s is not None
    assert [replace(a, detected_wall_s=None) for a in got] == expected
    assert ray.get(detector.stats.remote())["panes_completed"] == 20
    ray.kill(detector)
    ray.kill(alerting)


def feed_in_pane_order(core: DetectorCore, deliveries: list[tuple[int, int]], prev: bool):
    """Submit ``(shard, pane index)`` deliveries of the three-shard partials, each with
    the pane its shard sent before (``prev``) or in arrival order only."""
    partials = three_shard_partials()
    alerts: list[Alert] = []
    for s, p in deliveries:
        args = (None if p == 0 else p - 1,) if prev else ()
        alerts += core.submit(s, partials[s][p], p, *args)
    return alerts + core.flush()


def test_redelivered_pane_after_a_later_one_is_held_until_its_turn() -> None:
    in_order = [(s, p) for p in PANES for s in range(3)]
    # As after a detector restart: shard 1's call for pane 14 (the anomaly's first
    # pane) is retried after its panes 15 and 16; pane 15 and pane 14 come twice.
    late = in_order.index((1, 14))
    moved = in_order[:late] + in_order[late + 1 : late + 7]
    deliveries = [*moved, (1, 15), (1, 14), (1, 14), *in_order[late + 7 :]]
    assert sorted(set(deliveries)) == sorted(in_order) and len(deliveries) == len(in_order) + 2
    reference = feed_in_pane_order(DetectorCore(DetectorConfig(), SPEC, 3), in_order, True)
    core = DetectorCore(DetectorConfig(), SPEC, 3)
    alerts = feed_in_pane_order(core, deliveries, True)
    ident = ("alert_id", "kind", "key", "window_start_ms", "window_end_ms", "observed")
    assert [[getattr(a, f) for f in ident] for a in alerts] == [
        [getattr(a, f) for f in ident] for a in reference
    ]
    assert core.duplicates_ignored == 2
    assert core.stats()["panes_reordered"] == 2  # shard 1's panes 15 and 16 waited
    assert core.panes_completed == len(PANES)
    assert core.stats()["held_panes"] == 0
    # Without the previous pane, arrival order is pane order: pane 14 is lost.
    legacy = DetectorCore(DetectorConfig(), SPEC, 3)
    lossy = feed_in_pane_order(legacy, deliveries, False)
    assert legacy.duplicates_ignored == 3
    assert [(a.window_start_ms, a.observed) for a in lossy] != [
        (a.window_start_ms, a.observed) for a in reference
    ]


def test_held_panes_survive_a_snapshot_and_flush_fills_a_pane_never_sent() -> None:
    core = DetectorCore(DetectorConfig(), SPEC, 2)
    core.submit(0, PaneAggregate.empty(5), 0, None)
    core.submit(1, PaneAggregate.empty(5), 0, None)
    core.submit(0, PaneAggregate.empty(7), 2, 6)  # pane 6 of shard 0 not here yet
    core.submit(1, PaneAggregate.empty(6), 1, 5)
    core.submit(1, PaneAggregate.empty(7), 2, 6)
    assert core.panes_completed == 1 and core.stats()["held_panes"] == 1
    resumed = DetectorCore(DetectorConfig(), SPEC, 2)
    resumed.restore(pickle.loads(pickle.dumps(core.state())))
    assert resumed.submit(0, PaneAggregate.empty(7), 2, 6) == []  # held: a duplicate
    resumed.submit(0, PaneAggregate.empty(6), 1, 5)
    assert resumed.panes_completed == 3 and resumed.duplicates_ignored == 1
    core.flush()  # pane 6 of shard 0 never came: counted empty, pane 7 completes
    assert core.panes_completed == 3 and core.stats()["held_panes"] == 0
