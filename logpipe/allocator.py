"""Allocator settings for the pipeline's worker processes.

Each parsed batch allocates tens of MB of short-lived buffers in its worker: the
decompressed text, numpy temporaries, the routed outputs. glibc's malloc serves
large requests with fresh ``mmap`` pages and returns freed memory to the kernel
(heap trimming), so the next batch faults every page in again: in a saturated
run the parse workers took about 170 000 minor page faults per million lines.
With the thresholds below, freed memory stays in the process and is reused:
about 17 000 faults, and 20-25 % less CPU time in the parse tasks for the same
lines (docs/performance.md, "Page faults"). The cost is resident memory: each
worker keeps its high-water mark (a few batches' buffers) instead of giving it
back between batches.

The settings are glibc's own environment tunables, given to the parse tasks and
the shard actors through Ray's ``runtime_env``: Ray starts those in dedicated
worker processes whose environment has them from the start, so no other task
(the harness's calibration, the reference parse) shares a tuned process. Other
C libraries ignore the variables.
"""

from __future__ import annotations

from typing import Any

MiB = 1024 * 1024

# Requests below this come from the heap (which is reused) instead of fresh mmaps;
# larger than any batch buffer at the batch sizes the scenarios use.
MMAP_THRESHOLD_BYTES = 256 * MiB
# Free memory at the top of the heap is returned to the kernel only beyond this.
TRIM_THRESHOLD_BYTES = 1024 * MiB

KEEP_FREED_MEMORY_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD_BYTES),
    "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD_BYTES),
}


def worker_options(keep_freed_memory: bool) -> dict[str, Any]:
    """Ray ``.options(...)`` for a worker that should (or need not) keep freed memory."""
    if not keep_freed_memory:
        return {}
    return {"runtime_env": {"env_vars": dict(KEEP_FREED_MEMORY_ENV)}}
