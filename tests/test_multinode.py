"""Multi-node runs on a simulated cluster (``ray.cluster_utils.Cluster``): the
runner attached by address to a 3-node cluster, a worker node removed mid-run,
and an object store far smaller than the work in flight.

Each case runs in a subprocess with its own cluster, so it never meets the
session fixture's Ray (one Ray per process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Each test starts its own multi-node cluster in a subprocess: minutes, not seconds.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]

# Prints one JSON line: the replicates' integrity, faults and shard lines.
RUN = textwrap.dedent(
    """
    import json, sys
    from harness.runner import Runner
    from harness.scenario import load_scenario_module
    overrides = json.loads(sys.argv[1])
    base = load_scenario_module("scenarios/smoke.py").with_overrides(overrides)
    cluster = None
    address = None
    if sys.argv[2] == "attach":
        from ray.cluster_utils import Cluster
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        cluster.add_node(num_cpus=1)
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        address = cluster.address
    try:
        result = Runner(base, address=address).run()
    finally:
        if cluster is not None:
            cluster.shutdown()
    print(json.dumps([
        {"complete": r.complete, "integrity": r.integrity, "faults": list(r.faults),
         "metrics": {k: r.metrics.get(k) for k in
                     ("integrity.lines_emitted", "integrity.lines_parsed",
                      "object_store.spilled_bytes")}}
        for r in result.replicates
    ]))
    """
)

SMALL = {
    "generator.rate": {"kind": "constant", "rate": 20_000},
    "generator.duration_s": 4.0,
    "generator.batch_lines": 2_000,
    "generator.injections": [],
    "generator.event_speed": 1.0,
    "measurement.replicates": 1,
    "measurement.warmup_s": 0.5,
    "measurement.samplers": False,
    "sharding.strategy": "by_service",
    "sharding.shards": 3,
    "sharding.spread": True,
}


def run_case(overrides: dict[str, object], mode: str = "local") -> list[dict[str, object]]:
    proc = subprocess.run(
        [sys.executable, "-c", RUN, json.dumps(overrides), mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    reps: list[dict[str, object]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return reps


def assert_exact(reps: list[dict[str, object]]) -> None:
    assert reps and all(r["complete"] for r in reps)
    for r in reps:
        assert r["integrity"] == {"ok": True, "problems": []}, r["integrity"]
        m = r["metrics"]
        assert isinstance(m, dict) and m["integrity.lines_emitted"] == 80_000


def test_runner_attached_to_three_node_cluster_counts_exactly() -> None:
    assert_exact(run_case(SMALL, "attach"))


def test_worker_node_removed_mid_run_counts_exactly() -> None:
    reps = run_case(
        SMALL
        | {
            "ray.simulated_nodes": 3,
            "ray.num_cpus": 3,
            "faults": [{"kind": "remove_node", "at_s": 1.5, "target": 0}],
        }
    )
    assert_exact(reps)
    faults = reps[0]["faults"]
    assert isinstance(faults, list) and [f["kind"] for f in faults] == ["remove_node"]
    assert faults[0]["recovery_s"] >= 0


def test_object_store_pressure_keeps_running_and_loses_nothing() -> None:
    reps = run_case(
        SMALL
        | {
            "ray.object_store_memory": 80 * 1024 * 1024,
            "generator.codec": "none",
            "generator.batch_lines": 20_000,
            "generator.rate": {"kind": "constant", "rate": 100_000},
            "generator.duration_s": 3.0,
            "measurement.max_in_flight": 16,
            "sharding.spread": False,
            "measurement.samplers": True,
        }
    )
    assert reps and all(r["complete"] for r in reps)
    rep = reps[0]
    assert rep["integrity"] == {"ok": True, "problems": []}, rep["integrity"]
    metrics = rep["metrics"]
    assert isinstance(metrics, dict)
    assert metrics["integrity.lines_emitted"] == 300_000
    assert metrics["object_store.spilled_bytes"] is not None  # sampled, so the run is evidence


LISTENERS = textwrap.dedent(
    """
    import json, psutil, ray
    from harness.raysession import ray_session
    with ray_session(num_cpus=1, object_store_memory=80 * 1024 * 1024):
        ray.get(ray.remote(lambda: 1).remote())
        me = psutil.Process()
        pids = {me.pid} | {p.pid for p in me.children(recursive=True)}
        print(json.dumps(sorted(
            [c.laddr.ip, psutil.Process(c.pid).name()]
            for c in psutil.net_connections("inet")
            if c.status == psutil.CONN_LISTEN and c.pid in pids
        )))
    """
)


def test_local_ray_listens_on_loopback_only() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", LISTENERS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    listeners = json.loads(proc.stdout.strip().splitlines()[-1])
    names = {name for _, name in listeners}
    assert "raylet" in names and "gcs_server" in names
    exposed = [(ip, name) for ip, name in listeners if ip not in ("127.0.0.1", "::ffff:127.0.0.1")]
    assert not exposed
