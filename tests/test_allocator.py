"""Parse workers and shard actors start with glibc's keep-freed-memory tunables."""

from __future__ import annotations

import os
from dataclasses import replace

import psutil
import pytest
import ray

from logpipe import rate
from logpipe.allocator import KEEP_FREED_MEMORY_ENV, worker_options
from logpipe.generate import GeneratorConfig, generate
from logpipe.pipeline import Pipeline, PipelineConfig

CONFIG = PipelineConfig(sharding="by_service", n_shards=2, max_in_flight=4)


def test_off_asks_ray_for_nothing() -> None:
    assert worker_options(False) == {}


def test_on_gives_glibc_tunables_as_whole_numbers() -> None:
    env = worker_options(True)["runtime_env"]["env_vars"]
    assert set(env) == {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"}
    assert all(int(v) >= 64 * 1024 * 1024 for v in env.values())
    env["MALLOC_TRIM_THRESHOLD_"] = "0"  # a copy: the module's settings stay as they are
    assert KEEP_FREED_MEMORY_ENV["MALLOC_TRIM_THRESHOLD_"] != "0"


def start_env(pid: int) -> dict[str, str]:
    """The environment a process was started with (what glibc read at start-up)."""
    with open(f"/proc/{pid}/environ", "rb") as fh:
        pairs = [item.split(b"=", 1) for item in fh.read().split(b"\0") if b"=" in item]
    return {k.decode(): v.decode(errors="replace") for k, v in pairs}


def tuned(env: dict[str, str]) -> bool:
    return all(env.get(k) == v for k, v in KEEP_FREED_MEMORY_ENV.items())


def run_and_read_envs(config: PipelineConfig) -> tuple[list[dict[str, str]], set[int]]:
    """Run a short stream; the shard actors' start-up environments and the pids of the
    other tuned Ray workers (read while the pipeline's actors are alive)."""
    stream = generate(
        GeneratorConfig(seed=3, batch_lines=1_000), rate.Constant(4_000).line_offsets(2.0)
    )
    with Pipeline(config) as pipe:
        for batch in stream.batches:
            pipe.submit(batch)
        pipe.finish()
        shards = set(ray.get([s.__ray_call__.remote(lambda _: os.getpid()) for s in pipe.shards]))
        workers = set()
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmd = proc.info["cmdline"] or [""]
            if cmd[0].startswith("ray::") and proc.pid not in shards:
                try:
                    if tuned(start_env(proc.pid)):
                        workers.add(proc.pid)
                except OSError:  # exited meanwhile
                    continue
        envs = [start_env(pid) for pid in shards]
    return envs, workers


@pytest.mark.skipif(not os.path.exists("/proc/self/environ"), reason="reads /proc")
@pytest.mark.usefixtures("ray_session")
def test_parse_workers_and_shards_are_tuned_only_when_asked() -> None:
    shards, tuned_workers = run_and_read_envs(CONFIG)
    assert len(shards) == 2 and all(tuned(env) for env in shards)
    assert tuned_workers, "no parse worker started with the tunables"
    plain, _ = run_and_read_envs(replace(CONFIG, keep_freed_memory=False))
    assert len(plain) == 2 and not any(tuned(env) for env in plain)

    def plain_pid() -> int:  # local, so that Ray ships it by value
        return os.getpid()

    # The harness's own tasks (calibration, reference parsing) never share a tuned process.
    assert not tuned(start_env(ray.get(ray.remote(plain_pid).remote())))
