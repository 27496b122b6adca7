"""Ingestion and wiring: batches in, alerts out, with bounded in-flight work.

The driver puts each batch into the object store, submits one ``parse_task``
per batch with ``1 + n_shards`` returns (a small :class:`ParseStats` and one
parsed output per shard) and hands the output refs straight to the shard
actors. The driver never ``ray.get``s parsed data: it waits only on the shards'
small acks (backpressure via ``ray.wait``) and reads the parse stats.

Recovery (see docs/reliability.md): parse tasks retry; shards, detector and
alerting actor restart. Each batch gets a sequence number. The driver holds a
batch's object refs (its compressed batch and parsed outputs in the object
store) only while it is in flight, until every shard has applied it; after that
it keeps the :class:`Batch` itself, in its own memory, until every shard's
checkpoint covers it. So the object store holds in-flight work only (shards
copy the rows they keep into their own memory, :class:`logpipe.shard.ShardActor`).
A restarted shard is replayed every batch after its checkpoint, in order: the
held outputs of a batch still in flight, or, for one whose refs were released,
the output of a fresh ``parse_task`` on the batch put again (parsing is
deterministic); the shard applies batches strictly in order and once each. The
detector journals every pane it receives between snapshots; the alerting actor
resumes from its JSON-lines file. State lives in a directory the pipeline
creates and removes: a fresh temp directory, or a fresh subdirectory of
``state_dir`` (on a multi-node cluster a shared path every node can read).
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray

from logpipe.actors import PipelineActors
from logpipe.allocator import worker_options
from logpipe.batch import Batch
from logpipe.detector import DetectorConfig
from logpipe.events import PipelineEvents
from logpipe.parse import ParseOptions, ParseStats, parse_task, warm_up_batch
from logpipe.routing import validate as validate_sharding
from logpipe.shard import Counts, ShardAck, merge_totals
from logpipe.windows import SketchConfig, WindowSpec


@dataclass(frozen=True)
class PipelineConfig:
    """How the pipeline is built: parser, sharding, windows, detector, limits."""

    parse: ParseOptions = field(default_factory=ParseOptions)
    sharding: str = "by_service"
    n_shards: int = 2
    window: WindowSpec = field(default_factory=lambda: WindowSpec(10_000, 1_000))
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    sketch: SketchConfig | None = None
    max_in_flight: int = 8
    parse_num_cpus: float = 1.0
    spread_shards: bool = False
    # Parse tasks and shard actors keep freed memory for reuse (logpipe/allocator.py).
    keep_freed_memory: bool = True
    alerts_path: str | None = None
    webhook_url: str | None = None
    max_dead_letters: int = 50
    # Recovery: shard checkpoint period (batches), detector snapshot period (panes),
    # parse task retries, and where state lives (None: a fresh temp directory;
    # else a fresh subdirectory of it per pipeline, so runs never share state).
    checkpoint_every: int = 16
    snapshot_every: int = 64
    parse_max_retries: int = 5
    state_dir: str | None = None

    def __post_init__(self) -> None:
        validate_sharding(self.sharding, self.n_shards)
        if self.max_in_flight < 1:
            raise ValueError(f"max_in_flight: must be >= 1 (got {self.max_in_flight})")
        if self.parse_num_cpus <= 0:
            raise ValueError("parser.cpus_per_task: must be > 0")
        if self.checkpoint_every < 1 or self.snapshot_every < 1 or self.parse_max_retries < 0:
            raise ValueError("checkpoint_every, snapshot_every >= 1; parse_max_retries >= 0")


@dataclass
class PipelineOutcome:
    """What a finished pipeline run accounted for."""

    batches: int = 0
    lines_emitted: int = 0
    lines_parsed: int = 0
    lines_rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    batch_errors: Counter[str] = field(default_factory=Counter)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    shard_summaries: list[dict[str, Any]] = field(default_factory=list)
    shard_totals: list[Counts] = field(default_factory=list)
    merged_totals: Counts = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    detector: dict[str, Any] = field(default_factory=dict)
    recovery: dict[str, int] = field(
        default_factory=lambda: {
            "shard_restarts": 0,
            "replayed": 0,
            "reparsed": 0,
            "unrecoverable": 0,
        }
    )


@dataclass
class _Sent:
    """A batch the driver holds until every shard has checkpointed it.

    ``batch_ref`` and ``out_refs`` (one parsed output per shard) are the batch's
    objects in the store, ``None`` once released (when every shard has applied
    it); ``batch`` is the driver's own copy, kept for a re-parse. An entry without
    a ``batch`` (outputs made elsewhere, e.g. the Ray Data engine) keeps its
    outputs, as nothing could parse it again.
    """

    batch_id: int
    meta: Any
    batch: Batch | None
    batch_ref: Any
    stats_ref: Any
    out_refs: list[Any] | None
    emitted_s: float


class Pipeline:
    """The running pipeline; use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        config: PipelineConfig,
        events: PipelineEvents | None = None,
        clock: Callable[[], float] = time.time,
        stall: Callable[[int, int], float] | None = None,
        actors: PipelineActors | None = None,
    ) -> None:
        self.config = config
        self.events = events or PipelineEvents()
        self.clock = clock
        self.outcome = PipelineOutcome()
        self._sent: dict[int, _Sent] = {}
        self._acks: dict[Any, int] = {}  # ack ref -> shard index
        n = config.n_shards
        self._applied = [-1] * n
        self._checkpointed = [-1] * n
        self._incarnation = [0] * n  # set from each shard's status() below
        self._next_seq = 0
        self._done_through = -1
        self._released_through = -1
        self._alerts_seen = 0
        self._closed = False
        # Given actors are the caller's, reused: reset here, left alive at close.
        self._owns_actors = actors is None
        if actors is None:
            actors = PipelineActors(config, stall)
        elif actors.config != config:
            raise ValueError("actors: made for another pipeline configuration")
        else:
            actors.reset()
        self.actors = actors
        self.state_dir = actors.state_dir
        self.shards, self.detector, self.alerting = actors.shards, actors.detector, actors.alerting
        # Learn each shard's incarnation first, so any later one is a restart.
        for ack in ray.get([s.status.remote() for s in self.shards]):
            self._incarnation[ack.shard_id] = ack.incarnation

    # -- feeding -----------------------------------------------------------
    @property
    def in_flight(self) -> int:
        """Batches submitted and not yet applied by every shard."""
        return self._next_seq - 1 - self._done_through

    @property
    def submitted_through(self) -> int:
        """Sequence number of the last batch submitted (-1 before the first)."""
        return self._next_seq - 1

    @property
    def done_through(self) -> int:
        """Every batch up to this sequence number is applied by every shard."""
        return self._done_through

    @property
    def retained(self) -> int:
        """Batches held by reference for replay (not yet checkpointed by every shard)."""
        return len(self._sent)

    @property
    def retained_outputs(self) -> int:
        """Batches whose parsed outputs are held (in flight, or not re-parseable)."""
        return sum(1 for s in self._sent.values() if s.out_refs is not None)

    def submit(self, batch: Batch) -> float:
        """Send one batch; blocks while ``max_in_flight`` batches are unfinished.

        Returns the wall time at which the batch entered the pipeline.
        """
        while self.in_flight >= self.config.max_in_flight:
            self.poll(timeout_s=None)
        meta = batch.meta
        batch_ref = ray.put(batch)
        refs = self._parse(batch_ref)
        now = self.clock()
        seq = self._next_seq
        self._next_seq += 1
        sent = _Sent(meta.batch_id, meta, batch, batch_ref, refs[0], refs[1:], now)
        self._sent[seq] = sent
        for i in range(self.config.n_shards):
            self._ingest(i, seq, sent)
        self.outcome.batches += 1
        self.outcome.lines_emitted += meta.line_count
        self.events.batch_emitted.fire(batch_id=meta.batch_id, t_s=now, in_flight=self.in_flight)
        return now

    def warm_up(self) -> None:
        """Parse a one-line batch in ``max_in_flight`` tasks at once and wait, so that the
        parse workers have started and imported before a measurement starts."""
        ref = ray.put(warm_up_batch())
        ray.get([self._parse(ref)[0] for _ in range(self.config.max_in_flight)])

    def _parse(self, batch_ref: Any) -> list[Any]:
        """Submit one ``parse_task``: refs to its stats, then one output per shard."""
        cfg = self.config
        refs: list[Any] = parse_task.options(
            num_returns=1 + cfg.n_shards,
            num_cpus=cfg.parse_num_cpus,
            max_retries=cfg.parse_max_retries,
            **worker_options(cfg.keep_freed_memory),
        ).remote(batch_ref, cfg.parse, cfg.sharding, cfg.n_shards)
        return list(refs)

    def _ingest(self, shard: int, seq: int, sent: _Sent, out_ref: Any = None) -> None:
        """Send ``shard`` its output of batch ``seq`` (default: the one ``sent`` holds)."""
        if out_ref is None:
            assert sent.out_refs is not None, "released outputs need an explicit out_ref"
            out_ref = sent.out_refs[shard]
        meta = sent.meta
        ack = self.shards[shard].ingest.remote(
            seq, meta.batch_id, meta.first_event_ms, meta.last_event_ms, out_ref
        )
        self._acks[ack] = shard

    def poll(self, timeout_s: float | None = 0.0) -> int:
        """Account for finished batches; wait up to ``timeout_s`` for one (None: forever)."""
        if not self._acks:
            return 0
        refs = list(self._acks)
        if timeout_s is None:
            ready, _ = ray.wait(refs, num_returns=1)
            more, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            ready = list({*ready, *more})
        else:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        for ref in ready:
            del self._acks[ref]
            self._on_ack(ray.get(ref))  # surfaces an actor failure instead of hiding it
        return self._advance()

    def _on_ack(self, ack: ShardAck) -> None:
        i = ack.shard_id
        if ack.incarnation > self._incarnation[i]:
            self._incarnation[i] = ack.incarnation
            self._replay(i, ack.applied_through)
        elif ack.incarnation < self._incarnation[i]:
            return  # a reply from before a restart: the new state supersedes it
        self._applied[i] = max(self._applied[i], ack.applied_through)
        self._checkpointed[i] = max(self._checkpointed[i], ack.checkpointed_through)

    def _replay(self, shard: int, applied_through: int) -> None:
        """Resend to a restarted shard every batch after its restored state."""
        self.outcome.recovery["shard_restarts"] += 1
        if applied_through < self._released_through:
            # Its checkpoint is gone (e.g. a node-local state_dir on a lost node).
            self.outcome.recovery["unrecoverable"] += self._released_through - applied_through
        for seq in range(applied_through + 1, self._next_seq):
            sent = self._sent.get(seq)
            if sent is None:
                continue
            if sent.out_refs is not None:
                out_ref = sent.out_refs[shard]
            else:
                # Finished by every shard, so its objects were let go: parse it again
                # (deterministic) and drop the other shards' outputs at once.
                assert sent.batch is not None, "only re-parseable entries release outputs"
                out_ref = self._parse(ray.put(sent.batch))[1 + shard]
                self.outcome.recovery["reparsed"] += 1
            self._ingest(shard, seq, sent, out_ref)
            self.outcome.recovery["replayed"] += 1

    def _advance(self) -> int:
        """Finish batches every shard has applied, letting go of their objects in the store;
        drop the batches every shard has checkpointed."""
        done = 0
        through = min(self._applied)
        while self._done_through < through:
            self._done_through += 1
            entry = self._sent[self._done_through]
            self._finish_batch(entry)
            if entry.batch is not None:  # a replay can parse it again
                # The stats ref too: while any return of its parse task is referenced,
                # Ray keeps the task's argument (the batch) pinned for lineage.
                entry.out_refs = entry.batch_ref = entry.stats_ref = None
            done += 1
        release = min(min(self._checkpointed), self._done_through)
        while self._released_through < release:
            self._released_through += 1
            self._sent.pop(self._released_through, None)
        return done

    def _finish_batch(self, entry: _Sent) -> None:
        stats: ParseStats = ray.get(entry.stats_ref)
        out = self.outcome
        out.lines_parsed += stats.parsed
        out.lines_rejected += stats.rejected
        out.reasons.update(stats.reasons)
        if stats.batch_error:
            out.batch_errors[stats.batch_error] += 1
        room = self.config.max_dead_letters - len(out.dead_letters)
        for dl in stats.dead_letters[: max(room, 0)]:
            out.dead_letters.append(
                {
                    "batch_id": dl.batch_id,
                    "line": dl.line_no,
                    "reason": dl.reason,
                    "sample": dl.sample,
                }
            )
        self.events.batch_done.fire(batch_id=entry.batch_id, t_s=self.clock(), stats=stats)

    def drain(self) -> None:
        """Wait until every submitted batch is aggregated."""
        while self.in_flight:
            self.poll(timeout_s=None)

    def poll_alerts(self) -> list[dict[str, Any]]:
        """New alerts recorded since the last call (fires the ``alerts`` event)."""
        alerts: list[dict[str, Any]] = ray.get(self.alerting.alerts_since.remote(self._alerts_seen))
        if alerts:
            self._alerts_seen += len(alerts)
            self.events.alerts.fire(alerts=alerts, t_s=self.clock())
        return alerts

    # -- finishing ---------------------------------------------------------
    def finish(self) -> PipelineOutcome:
        """Drain, flush every pane through the detector, collect totals and alerts."""
        self.drain()
        last = self._next_seq - 1
        flushed = self._flush_shards(last)
        ray.get(self.detector.flush.remote())
        out = self.outcome
        out.shard_summaries = [summary for summary, _ in flushed]
        out.shard_totals = [totals for _, totals in flushed]
        out.merged_totals = merge_totals(out.shard_totals)
        out.detector = ray.get(self.detector.stats.remote())
        out.alerts = ray.get(self.alerting.alerts_since.remote(0))
        return out

    def _flush_shards(self, last: int) -> list[tuple[dict[str, Any], Counts]]:
        """Flush every shard; a shard that restarted meanwhile is replayed and asked again."""
        results: list[tuple[dict[str, Any], Counts] | None] = [None] * len(self.shards)
        while True:
            todo = [i for i, r in enumerate(results) if r is None]
            if not todo:
                return [r for r in results if r is not None]
            replies = ray.get([self.shards[i].flush.remote(last) for i in todo])
            for i, (ack, summary, totals) in zip(todo, replies):
                if summary is not None and totals is not None:
                    results[i] = (summary, totals)
                    continue
                self._incarnation[i] = max(self._incarnation[i], ack.incarnation)
                self._replay(i, ack.applied_through)
            while self._acks:  # let the replayed batches land before asking again
                self.poll(timeout_s=None)

    def close(self) -> None:
        """Release every batch it holds; kill its actors, or reset them if given (idempotent)."""
        if self._closed:
            return
        self._closed = True
        # Dropping the refs lets the store free the batches and parsed outputs now,
        # not whenever this object is collected.
        self._sent.clear()
        self._acks.clear()
        if self._owns_actors:
            self.actors.close()
            return
        # Reused actors drop their state now: the detector's window holds zero-copy
        # panes that would pin object-store memory until the next run's reset.
        with contextlib.suppress(ray.exceptions.RayError):  # the next reset reports it
            self.actors.reset()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
