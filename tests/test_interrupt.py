"""Ctrl-C / SIGTERM during ``logbench run``: the run stops within seconds, the
partial result is saved marked incomplete, and no Ray process of that run is left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from harness.faults import ray_processes

# Each case starts and interrupts a whole `logbench run` in a subprocess.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def wait_for_pipeline(proc: subprocess.Popen[bytes], timeout_s: float) -> list[psutil.Process]:
    """Ray processes of the CLI, once its shard actors exist (a replicate is running)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        procs = ray_processes(proc.pid)
        titles = []
        for p in procs:
            try:
                titles.append(" ".join(p.cmdline()[:1]))
            except psutil.Error:
                continue
        if any(t.startswith("ray::ShardActor") for t in titles):
            time.sleep(1.5)  # let the replicate start emitting
            return ray_processes(proc.pid)
        time.sleep(0.2)
    pytest.fail("the run did not start Ray in time")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_run_saves_partial_result_and_leaves_no_ray(
    tmp_path: Path, sig: signal.Signals
) -> None:
    out = tmp_path / "runs"
    cmd = [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        "scenarios/smoke.py",
        "--replicates",
        "1",
        "--set",
        "generator.duration_s=40",
        "--set",
        "generator.rate.rate=10000",
        "--out",
        str(out),
    ]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ray_procs = wait_for_pipeline(proc, timeout_s=150)
        assert any(p.name() == "raylet" for p in ray_procs)
        sent = time.monotonic()
        proc.send_signal(sig)
        proc.communicate(timeout=60)
        stopped_s = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert stopped_s < 30  # Ray shutdown included; the run itself stops at once
    files = list(out.glob("*.json"))
    assert len(files) == 1
    result = json.loads(files[0].read_text())
    assert result["complete"] is False
    assert all(not r["complete"] for r in result["replicates"])
    time.sleep(1.0)
    alive = [p for p in ray_procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, [(p.pid, p.name()) for p in alive]
