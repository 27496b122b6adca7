"""Ingestion and wiring: batches in, alerts out, with bounded in-flight work.

The driver puts each batch into the object store, submits one ``parse_task``
per batch with ``1 + n_shards`` returns (a small :class:`ParseStats` and one
parsed output per shard) and hands the output refs straight to the shard
actors. The driver never ``ray.get``s parsed data: it waits only on the shards'
small acks (backpressure via ``ray.wait``) and reads the parse stats.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray

from logpipe.alerting import AlertingActor
from logpipe.batch import Batch
from logpipe.detector import DetectorActor, DetectorConfig
from logpipe.events import PipelineEvents
from logpipe.parse import ParseOptions, ParseStats, parse_task
from logpipe.routing import STRATEGIES
from logpipe.shard import Counts, ShardActor, merge_totals
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
    alerts_path: str | None = None
    webhook_url: str | None = None
    max_dead_letters: int = 50

    def __post_init__(self) -> None:
        if self.sharding not in STRATEGIES:
            raise ValueError(
                f"sharding.strategy: unknown strategy {self.sharding!r} "
                f"(expected one of {', '.join(STRATEGIES)})"
            )
        if self.n_shards < 1:
            raise ValueError(f"sharding.shards: must be >= 1 (got {self.n_shards})")
        if self.sharding == "single" and self.n_shards != 1:
            raise ValueError("sharding.shards: strategy 'single' needs exactly 1 shard")
        if self.max_in_flight < 1:
            raise ValueError(f"max_in_flight: must be >= 1 (got {self.max_in_flight})")
        if self.parse_num_cpus <= 0:
            raise ValueError("parser.cpus_per_task: must be > 0")


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


@dataclass
class _InFlight:
    batch: Batch
    stats_ref: Any
    acks_left: int
    emitted_s: float


class Pipeline:
    """The running pipeline; use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        config: PipelineConfig,
        events: PipelineEvents | None = None,
        clock: Callable[[], float] = time.time,
        stall: Callable[[int, int], float] | None = None,
    ) -> None:
        self.config = config
        self.events = events or PipelineEvents()
        self.clock = clock
        self.outcome = PipelineOutcome()
        self._in_flight: dict[int, _InFlight] = {}
        self._ack_owner: dict[Any, int] = {}
        self._alerts_seen = 0
        self._last_batch_id = -1
        self._closed = False
        self._make_actors(stall)

    def _make_actors(self, stall: Callable[[int, int], float] | None) -> None:
        cfg = self.config
        # Actors reserve no CPU slot: parse tasks get the cores, actors share them.
        self.alerting = (
            ray.remote(AlertingActor)
            .options(num_cpus=0, max_restarts=-1, max_task_retries=-1)
            .remote(path=cfg.alerts_path, webhook_url=cfg.webhook_url)
        )
        self.detector = (
            ray.remote(DetectorActor)
            .options(num_cpus=0, max_restarts=-1, max_task_retries=-1)
            .remote(cfg.detector, cfg.window, cfg.n_shards, self.alerting)
        )
        strategy = "SPREAD" if cfg.spread_shards else "DEFAULT"
        self.shards = [
            ray.remote(ShardActor)
            .options(num_cpus=0, scheduling_strategy=strategy)
            .remote(i, cfg.window, self.detector, cfg.sketch, stall)
            for i in range(cfg.n_shards)
        ]

    # -- feeding -----------------------------------------------------------
    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def submit(self, batch: Batch) -> float:
        """Send one batch; blocks while ``max_in_flight`` batches are unfinished.

        Returns the wall time at which the batch entered the pipeline.
        """
        while len(self._in_flight) >= self.config.max_in_flight:
            self.poll(timeout_s=None)
        cfg = self.config
        meta = batch.meta
        batch_ref = ray.put(batch)
        refs = parse_task.options(num_returns=1 + cfg.n_shards, num_cpus=cfg.parse_num_cpus).remote(
            batch_ref, cfg.parse, cfg.sharding, cfg.n_shards
        )
        stats_ref, outputs = refs[0], refs[1:]
        now = self.clock()
        for shard, out_ref in zip(self.shards, outputs):
            ack = shard.ingest.remote(
                meta.batch_id, meta.first_event_ms, meta.last_event_ms, out_ref
            )
            self._ack_owner[ack] = meta.batch_id
        self._in_flight[meta.batch_id] = _InFlight(batch, stats_ref, len(outputs), now)
        self._last_batch_id = max(self._last_batch_id, meta.batch_id)
        self.outcome.batches += 1
        self.outcome.lines_emitted += meta.line_count
        self.events.batch_emitted.fire(batch_id=meta.batch_id, t_s=now, in_flight=self.in_flight)
        return now

    def poll(self, timeout_s: float | None = 0.0) -> int:
        """Account for finished batches; wait up to ``timeout_s`` for one (None: forever)."""
        if not self._ack_owner:
            return 0
        refs = list(self._ack_owner)
        if timeout_s is None:
            ready, _ = ray.wait(refs, num_returns=1)
            more, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            ready = list({*ready, *more})
        else:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        done = 0
        for ref in ready:
            batch_id = self._ack_owner.pop(ref)
            ray.get(ref)  # surfaces an actor failure instead of hiding it
            entry = self._in_flight[batch_id]
            entry.acks_left -= 1
            if entry.acks_left == 0:
                self._finish_batch(batch_id, entry)
                done += 1
        return done

    def _finish_batch(self, batch_id: int, entry: _InFlight) -> None:
        del self._in_flight[batch_id]
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
        self.events.batch_done.fire(batch_id=batch_id, t_s=self.clock(), stats=stats)

    def drain(self) -> None:
        """Wait until every submitted batch is aggregated."""
        while self._in_flight:
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
        ray.get([s.flush.remote(self._last_batch_id) for s in self.shards])
        ray.get(self.detector.flush.remote())
        out = self.outcome
        out.shard_summaries = ray.get([s.summary.remote() for s in self.shards])
        out.shard_totals = ray.get([s.totals.remote() for s in self.shards])
        out.merged_totals = merge_totals(out.shard_totals)
        out.detector = ray.get(self.detector.stats.remote())
        out.alerts = ray.get(self.alerting.alerts_since.remote(0))
        return out

    def close(self) -> None:
        """Kill the pipeline's actors (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for actor in [*self.shards, self.detector, self.alerting]:
            ray.kill(actor, no_restart=True)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
