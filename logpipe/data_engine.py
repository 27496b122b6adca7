"""The pipeline with its parse stage on Ray Data (``parser.engine: "ray_data"``).

:class:`DataPipeline` is a :class:`logpipe.pipeline.Pipeline` (same constructor,
methods, events, outcome, shard/detector/alerting actors, sequencing, recovery)
whose parse stage is one long-lived streaming Ray Data ``Dataset`` instead of one
``parse_task`` per batch::

    submit(batch) -> ray.put -> feed queue (actor) -> read task (1, 0 CPUs, never ends)
        -> map_batches(parse_and_route, batch_format="pyarrow", batch_size=1,
                       compute=TaskPoolStrategy(max_in_flight), num_cpus=parse_num_cpus)
        -> iter_internal_ref_bundles (driver thread) -> driver unpacks each block
        -> ray.put per shard -> the same ShardActor.ingest calls as the task engine

How submitted batches enter: Ray Data pulls from its source, the runner pushes on
an open-loop schedule. The dataset's only read task blocks on a
``ray.util.queue.Queue`` and yields one 1-row block (``seq``, pickled ``Batch``)
per batch it takes; ``submit`` puts the batch's ref on that queue (a blocking
put, so the queue holds batches in submission order). One dataset lives for the
whole run, so planning and executor start-up are paid once, in the constructor
(a ping crosses the whole dataset before it returns, as actor start-up is
excluded from the runner's clock). The alternative, one small dataset per poll,
pays them per micro-batch and holds batches until the next poll.

Order and block shape: ``preserve_order`` plus a 1-byte target block size make
every batch its own block in both operators (a row cannot be split), so the k-th
output block is batch ``k``; the unpack step checks the ``seq`` it finds and
fails loudly otherwise.

Bounds: at most ``max_in_flight`` map tasks of ``parse_num_cpus`` each (the task
engine's bound), at most ``max_in_flight`` batches submitted and not aggregated
(the inherited ``submit``), and Ray Data's object-store budget capped at a
quarter of the store (64 MiB of a 256 MiB store). Progress bars and stats logging
are off. All settings go to the dataset's own ``DataContext`` copy.

The costs, honestly: every batch makes hops the task engine does not make
(driver -> queue actor -> read task -> read block -> map task -> output block ->
driver -> per-shard objects). Ray Data blocks cannot carry object refs, so the
per-shard outputs cannot leave the map task as separate objects: the parsed
outputs are pickled into the output block, and the driver maps the block
(zero-copy on one node), unpickles it and ``ray.put``s each shard's part: two
copies and driver CPU the task engine does not spend, and on a multi-node
cluster the block travels to the driver. (A 0-CPU unpack task per block was
tried first: it waited seconds for a worker process while Ray Data's tasks held
the CPU slots.) The read task holds a worker process for the whole run; the
driver runs Ray Data's executor thread and a consumer thread; ``poll`` waits in
short slices (it watches both the dataset's outputs and the shards' acks).
Recovery: a restarted shard is replayed exactly as in the task engine (the
driver holds the per-shard refs); a failed dataset fails the run (``poll``
raises); parse retries are Ray Data's, not ``parse_max_retries``.
"""

from __future__ import annotations

import pickle
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import ray
from ray.data import DataContext, ExecutionResources
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask
from ray.util.queue import Queue

from logpipe.actors import PipelineActors
from logpipe.allocator import worker_options
from logpipe.batch import Batch
from logpipe.events import PipelineEvents
from logpipe.parse import ParseOptions, parse_and_route
from logpipe.pipeline import Pipeline, PipelineConfig, _Sent

__all__ = ["DataPipeline"]

_END = None  # the feed's end-of-stream marker
_PING = "ping"  # taken and ignored by the read task: proves it is running
_START_TIMEOUT_S = 120.0
_SLICE_S = 0.005  # poll granularity while watching two sources (outputs and acks)


class _FeedSource(Datasource):
    """A datasource with one never-ending read task that takes batches from a queue."""

    def __init__(self, feed: Queue) -> None:
        super().__init__()
        self._feed = feed

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(
        self,
        parallelism: int,
        per_task_row_limit: int | None = None,
        data_context: DataContext | None = None,
    ) -> list[ReadTask]:
        feed = self._feed
        meta = BlockMetadata(num_rows=None, size_bytes=None, input_files=None, exec_stats=None)
        return [ReadTask(lambda: _read_feed(feed), meta)]


def _read_feed(feed: Queue) -> Iterator[pa.Table]:
    """One 1-row block per submitted batch, until the end marker."""
    while (item := feed.get(block=True)) is not _END:
        if item == _PING:  # passes through the map stage: warms it before the clock starts
            yield pa.table({"seq": [-1], "batch": [b""]})
            continue
        seq, batch_ref = item
        batch = ray.get(batch_ref)
        yield pa.table({"seq": [seq], "batch": [pickle.dumps(batch, pickle.HIGHEST_PROTOCOL)]})


class _ParseRoute:
    """The map_batches UDF: the task engine's ``parse_and_route`` on each row."""

    def __init__(self, options: ParseOptions, sharding: str, n_shards: int) -> None:
        self.options = options
        self.sharding = sharding
        self.n_shards = n_shards

    def __call__(self, table: pa.Table) -> pa.Table:
        results = []
        for seq, blob in zip(table.column("seq").to_pylist(), table.column("batch").to_pylist()):
            if seq < 0:
                results.append(b"")  # the start-up ping
                continue
            batch: Batch = pickle.loads(blob)  # our own bytes, from _read_feed
            out = parse_and_route(batch, self.options, self.sharding, self.n_shards)
            results.append(pickle.dumps(out, pickle.HIGHEST_PROTOCOL))
        return pa.table({"seq": table.column("seq"), "result": pa.array(results, pa.binary())})


def _unpack(block: pa.Table, seq: int) -> tuple[Any, ...]:
    """``(ParseStats, out_0, ..., out_{n-1})`` from a 1-row output block of batch ``seq``."""
    found = block.column("seq").to_pylist()
    if found != [seq]:
        raise RuntimeError(f"ray_data engine: expected block of batch seq {seq}, got {found}")
    result: tuple[Any, ...] = pickle.loads(block.column("result")[0].as_py())
    return result


class DataPipeline(Pipeline):
    """A :class:`Pipeline` whose parse stage is a streaming Ray Data dataset.

    Same constructor and interface as :class:`Pipeline`, so a runner can use either.
    """

    def __init__(
        self,
        config: PipelineConfig,
        events: PipelineEvents | None = None,
        clock: Callable[[], float] = time.time,
        stall: Callable[[int, int], float] | None = None,
        actors: PipelineActors | None = None,
    ) -> None:
        super().__init__(config, events, clock, stall, actors)
        self._pending: dict[int, Any] = {}  # seq -> meta, in the dataset
        self._outputs: queue.Queue[Any] = queue.Queue()
        self._feed = Queue(actor_options={"num_cpus": 0, "max_restarts": 0})
        self.dataset = self._dataset()
        self._consumer = threading.Thread(
            target=self._consume, args=(self.dataset,), name="logpipe-ray-data", daemon=True
        )
        self._consumer.start()
        self._wait_started()

    def _wait_started(self) -> None:
        """Return once a ping has crossed the whole dataset: like actor start-up, the
        start of Ray Data's workers is not part of the workload."""
        self._feed.put(_PING)
        try:
            item = self._outputs.get(timeout=_START_TIMEOUT_S)
            ok = (
                not isinstance(item, BaseException) and ray.get(item).column("seq")[0].as_py() == -1
            )
        except queue.Empty:
            ok = False
        if not ok:
            self.close()
            raise RuntimeError("ray_data engine: the dataset did not start")

    def _dataset(self) -> Any:
        cfg = self.config
        ds = ray.data.read_datasource(
            _FeedSource(self._feed), override_num_blocks=1, num_cpus=0
        ).map_batches(
            _ParseRoute(cfg.parse, cfg.sharding, cfg.n_shards),
            batch_format="pyarrow",
            batch_size=1,
            zero_copy_batch=True,
            compute=ray.data.TaskPoolStrategy(size=cfg.max_in_flight),
            num_cpus=cfg.parse_num_cpus,
            **worker_options(cfg.keep_freed_memory),
        )
        _configure(ds.context)
        return ds

    def _consume(self, ds: Any) -> None:
        """Driver thread: hand each output block to ``poll`` (which runs on the caller)."""
        try:
            for bundle in ds.iter_internal_ref_bundles():
                for entry in bundle.blocks:
                    self._outputs.put(entry.ref)
        except BaseException as err:  # surfaced by poll, not lost in a thread
            self._outputs.put(err)

    # -- feeding -----------------------------------------------------------
    def warm_up(self) -> None:
        """Nothing to do: construction already sent a ping through the whole dataset
        (parse tasks of the task engine would only start workers it never uses)."""

    def submit(self, batch: Batch) -> float:
        """Send one batch; blocks while ``max_in_flight`` batches are unfinished.

        Returns the wall time at which the batch entered the pipeline.
        """
        while self.in_flight >= self.config.max_in_flight:
            self.poll(timeout_s=None)
        meta = batch.meta
        seq = self._next_seq
        self._feed.put((seq, ray.put(batch)))
        now = self.clock()
        self._next_seq += 1
        self._pending[seq] = (meta, now)
        self.outcome.batches += 1
        self.outcome.lines_emitted += meta.line_count
        self.events.batch_emitted.fire(batch_id=meta.batch_id, t_s=now, in_flight=self.in_flight)
        return now

    def poll(self, timeout_s: float | None = 0.0) -> int:
        """Account for finished batches; wait up to ``timeout_s`` for one (None: forever)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            step = _SLICE_S if left is None else min(_SLICE_S, left)
            if self._acks:
                self._forward(wait_s=0.0)
                done = super().poll(timeout_s=step)
            else:
                self._forward(wait_s=step if self._pending else 0.0)
                done = super().poll(timeout_s=0.0)
            if done or left == 0.0 or not (self._pending or self._acks):
                return done

    def _forward(self, wait_s: float) -> None:
        """Send every output block that is ready to the shards, in seq order."""
        try:
            item = self._outputs.get(timeout=wait_s) if wait_s else self._outputs.get_nowait()
        except queue.Empty:
            return
        while True:
            if isinstance(item, BaseException):
                raise RuntimeError(f"ray_data engine: the dataset failed: {item}") from item
            self._ingest_block(item)
            try:
                item = self._outputs.get_nowait()
            except queue.Empty:
                return

    def _ingest_block(self, block_ref: Any) -> None:
        seq = next(iter(self._pending))  # preserve_order: blocks come in submission order
        meta, emitted = self._pending.pop(seq)
        # Unpacked here, not in a task: a 0-CPU task per batch waited seconds for a
        # worker process while Ray Data's tasks held the CPU slots (measured).
        stats, *outs = _unpack(ray.get(block_ref), seq)
        sent = _Sent(
            meta.batch_id, meta, None, None, ray.put(stats), [ray.put(o) for o in outs], emitted
        )
        self._sent[seq] = sent
        for i in range(self.config.n_shards):
            self._ingest(i, seq, sent)

    # -- finishing ---------------------------------------------------------
    def close(self) -> None:
        """End the dataset, then kill the actors and remove the state directory."""
        if self._closed:
            return
        try:
            self._feed.put(_END)
            self._consumer.join(timeout=30)
        finally:
            feed: Any = self._feed.actor  # Ray's stubs type it as a class or handle
            ray.kill(feed, no_restart=True)
            super().close()


def _configure(ctx: DataContext) -> None:
    """Bound the dataset's own resource use (its context, not the global one)."""
    ctx.execution_options.preserve_order = True
    # Every 1-row block is emitted alone: a batch is never coalesced with the next
    # (which would wait for it) and never split (a row cannot be).
    ctx.target_max_block_size = 1
    store = ray.cluster_resources().get("object_store_memory", 0.0)
    if store:
        ctx.execution_options.resource_limits = ExecutionResources.for_limits(
            object_store_memory=store / 4
        )
    ctx.enable_progress_bars = False
    ctx.enable_auto_log_stats = False
    ctx.print_on_execution_start = False
