"""The runner: execute a scenario's replicates open-loop and record what happened.

Per replicate the runner builds a fresh pipeline, emits the prebuilt batches on
their planned schedule (open loop: a batch that cannot enter because the
pipeline is full is emitted late, and its lateness and the backlog are
recorded), drains, checks integrity and computes the metrics. Ray is started
(or attached to) once per run and always shut down by :mod:`harness.raysession`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness import measures
from harness.calibration import CoreCalibration
from harness.faults import FaultInjector
from harness.integrity import Reference, check, reference_stream
from harness.payload import Payload, build_payload
from harness.pipeline_config import pipeline_config, stall_hook
from harness.power import replicates_wanted
from harness.probes import ReplicateProbes
from harness.raysession import ray_session
from harness.reporter import NullReporter, Reporter
from harness.results import Replicate, RunResult, ScenarioInfo, capture_metadata
from logpipe.actors import PipelineActors
from logpipe.events import PipelineEvents
from logpipe.oracle import earliest_detections, matches
from logpipe.pipeline import Pipeline, PipelineConfig

# The metric whose noise sets the adaptive replicate count (measurement.detect_change_pct).
ADAPTIVE_METRIC = "throughput.lines_per_s"


@dataclass
class RunContext:
    """Inputs shared by all replicates of one run."""

    scenario: Any
    payload: Payload
    reference: Reference
    oracle: dict[int, int | None]


@dataclass
class _Trace:
    """Raw per-batch timings of one replicate (seconds after the origin)."""

    emitted: dict[int, float] = field(default_factory=dict)
    done: dict[int, float] = field(default_factory=dict)
    lines_done: int = 0
    backlog: list[tuple[float, int]] = field(default_factory=list)
    alerts: int = 0
    output_bytes: dict[int, int] = field(default_factory=dict)  # ParseStats.output_bytes


class Runner:
    """Runs one scenario (one variant) and returns its :class:`RunResult`."""

    def __init__(
        self,
        scenario: Any,
        module: str = "",
        variant: str | None = None,
        address: str | None = None,
        reporter: Reporter | None = None,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.time,
        calibration: dict[str, Any] | None = None,
    ) -> None:
        self.scenario = scenario
        self.module = module
        self.variant = variant
        self.address = address or scenario.ray.address
        self.reporter = reporter or NullReporter()
        self.stop = stop or threading.Event()
        self.clock = clock
        self.calibration = calibration
        self._cluster: Any = None  # a simulated cluster, for remove_node faults
        # Replicates the run aims for: measurement.replicates, or more when the
        # adaptive count (measurement.detect_change_pct) asks for them.
        self._wanted = scenario.measurement.replicates

    def run(self) -> RunResult:
        """Build the payload, start Ray, run every replicate, summarise."""
        scn = self.scenario
        if scn.measurement.search:
            return self._search()
        metadata = capture_metadata(self.calibration, self.address)
        ray_spec = scn.ray
        replicates: list[Replicate] = []
        cal: CoreCalibration | None = None
        with ThreadPoolExecutor(1, thread_name_prefix="logbench-payload") as pool:
            # Built while Ray starts (mostly waiting on its processes); both are
            # done before the first replicate's clock starts.
            pending = pool.submit(build_payload, scn.generator)
            with ray_session(
                num_cpus=ray_spec.num_cpus,
                object_store_memory=ray_spec.object_store_memory,
                address=self.address,
                include_dashboard=ray_spec.include_dashboard,
                simulated_nodes=ray_spec.simulated_nodes,
                free_objects_period_ms=ray_spec.free_objects_period_ms,
            ) as session:
                metadata["ray_free_objects_period_ms"] = session.free_objects_period_ms
                payload = pending.result()
                self._cluster = session.cluster
                if not self.calibration:
                    # Measured in-session, between replicates, on the cores the run uses.
                    cal = CoreCalibration(round(session.num_cpus))
                with self._actors(payload) as actors:  # they start while the reference builds
                    replicates = self._replicates(self._context(payload), cal, actors)
        if cal is not None:
            metadata["calibration"] = cal.result()
        complete = len(replicates) >= self._wanted and all(r.complete for r in replicates)
        return RunResult.create(
            ScenarioInfo(scn.name, self.variant, self.module, scn.to_dict()),
            metadata,
            replicates,
            complete=complete,
        )

    def _actors(self, payload: Payload) -> AbstractContextManager[PipelineActors | None]:
        """One set of actors for every replicate, reset in between, instead of new worker
        processes each time; fault runs kill actors on purpose and get fresh ones."""
        scn = self.scenario
        if scn.faults:
            return nullcontext()
        return PipelineActors(pipeline_config(scn), stall_hook(scn, payload.truth))

    def _replicates(
        self, ctx: RunContext, cal: CoreCalibration | None, actors: PipelineActors | None
    ) -> list[Replicate]:
        """Every replicate in order, with a calibration burst before the first and after
        each (while the store frees what the replicate released)."""
        out: list[Replicate] = []
        if actors is not None:
            actors.wait_ready()  # not while the first calibration burst runs
        settle = cal.burst if cal is not None else (lambda: None)
        self._warm_pass(ctx, actors)
        meas = ctx.scenario.measurement
        while len(out) < self._wanted:
            if self.stop.is_set():
                break
            if not out:
                settle()
            out.append(self._replicate(ctx, len(out), actors, settle))
            if meas.detect_change_pct is not None:
                self._wanted = replicates_wanted(
                    [r.metrics.get(ADAPTIVE_METRIC) for r in out if r.complete],
                    meas.detect_change_pct / 100.0,
                    meas.replicates,
                    meas.max_replicates,
                )
        return out

    def _warm_pass(self, ctx: RunContext, actors: PipelineActors | None) -> None:
        """Push the payload's first ``measurement.warmup_pass_lines`` lines through the
        reused actors as fast as they take them, unmeasured, then reset them.

        A process's first real batches cost more than later ones: its heap grows to its
        working size (page faults), caches and lazily built state fill. Without this the
        first replicate ran at about 0.7x the others (docs/methodology.md, "Warm-up"),
        which widened every run's spread. Runs without reused actors (fault scenarios,
        which start fresh ones per replicate) skip it.
        """
        limit = ctx.scenario.measurement.warmup_pass_lines
        if actors is None or limit <= 0:
            return
        batches, lines = [], 0
        for batch in ctx.payload.batches:
            if lines >= limit:
                break
            batches.append(batch)
            lines += batch.meta.line_count
        engine = _engine(ctx.scenario.parser.engine)
        cfg = pipeline_config(ctx.scenario)
        with engine(cfg, PipelineEvents(), self.clock, None, actors) as pipe:
            pipe.warm_up()
            for batch in batches:
                if self.stop.is_set():
                    return
                pipe.submit(batch)
            pipe.finish()

    def _search(self) -> RunResult:
        """Maximum sustainable rate: one Ray session, one probe run per rate, then the
        detection probe at a fraction of that rate."""
        from harness.search import detection_probe, search, summarize_search

        ray_spec = self.scenario.ray
        with ray_session(
            num_cpus=ray_spec.num_cpus,
            object_store_memory=ray_spec.object_store_memory,
            address=self.address,
            include_dashboard=ray_spec.include_dashboard,
            free_objects_period_ms=ray_spec.free_objects_period_ms,
        ):
            probes = search(self.scenario, self._probe_run, self.stop.is_set)
            detection = detection_probe(self.scenario, probes, self._probe_run, self.stop.is_set)
        return summarize_search(self.scenario, probes, detection)

    def _probe_run(self, scenario: Any) -> RunResult:
        probe = Runner(
            scenario,
            self.module,
            self.variant,
            self.address,
            self.reporter,
            self.stop,
            self.clock,
            self.calibration,
        )
        return probe.run()

    def _context(self, payload: Payload) -> RunContext:
        scn = self.scenario
        cfg = pipeline_config(scn)
        reference = Reference(per_shard=[{} for _ in range(cfg.n_shards)])
        # One pass: the oracle consumes each batch's rows as the reference counts them.
        stream = reference_stream(payload.batches, cfg.parse, cfg.sharding, cfg.n_shards, reference)
        oracle = (
            earliest_detections(stream, cfg.window, cfg.detector, payload.truth, sketch=cfg.sketch)
            if payload.truth
            else {}
        )
        for _ in stream:  # whatever the oracle did not need still counts
            pass
        return RunContext(scn, payload, reference, oracle)

    # -- one replicate -----------------------------------------------------
    def _replicate(
        self,
        ctx: RunContext,
        index: int,
        actors: PipelineActors | None = None,
        settle: Callable[[], None] = lambda: None,
    ) -> Replicate:
        scn = ctx.scenario
        meas = scn.measurement
        payload = ctx.payload
        total_s = float(payload.planned_s[-1]) if len(payload.planned_s) else 0.0
        self.reporter.replicate_started(index, self._wanted, total_s)
        cfg = pipeline_config(scn)
        events = PipelineEvents()
        trace = _Trace()
        probes = ReplicateProbes(
            meas.sample_interval_s, enabled=meas.samplers, clock=self.clock, address=self.address
        )
        started_at = self.clock()
        faults = FaultInjector(scn.faults, self._cluster)
        engine = _engine(scn.parser.engine)
        with engine(cfg, events, self.clock, stall_hook(scn, payload.truth), actors) as pipe:
            # The clock starts once the actors are up (Pipeline waits for them) and
            # the parse workers have started: start-up is not part of the workload.
            pipe.warm_up()
            origin = self.clock() + 0.2  # lead time so the first batch is not born late
            _subscribe(events, trace, payload, origin)
            probes.start(origin)
            complete = self._emit(pipe, payload, trace, origin, index, faults)
            outcome = pipe.finish() if complete else pipe.outcome
            finished_s = self.clock() - origin
            fault_records = faults.finish(pipe, self.clock() - origin)
        series = probes.stop()
        settle()  # work between the pipeline's close and the leak check, which waits for frees
        leaked = probes.leaked_bytes()
        records = _records(payload, trace)
        integrity = _integrity(ctx, outcome, complete)
        metrics, extra = self._metrics(ctx, records, outcome, trace, origin, integrity)
        metrics.update(probes.summarize(series))
        metrics["resources.cpu_us_per_line"] = measures.cpu_us_per_line(
            series.get("resources.cpu_percent", {}), records, meas.warmup_s
        )
        metrics.update(_bound_metrics(cfg, payload, trace, metrics["object_store.peak_bytes"]))
        metrics.update(_closing_metrics(outcome, complete, finished_s, leaked))
        self.reporter.replicate_finished(index, metrics)
        return Replicate(
            index=index,
            complete=complete,
            started_at_s=started_at,
            duration_s=self.clock() - origin,
            warmup_s=meas.warmup_s,
            metrics=_finite(metrics),
            series=series | extra["series"],
            samples=extra["samples"],
            detections=tuple(extra["detections"]),
            alerts=tuple(extra["alerts"]),
            shards={"lines": [s["rows"] for s in outcome.shard_summaries]},
            faults=tuple(fault_records),
            integrity=integrity,
            rejections=_rejections(outcome),
        )

    def _emit(
        self,
        pipe: Pipeline,
        payload: Payload,
        trace: _Trace,
        origin: float,
        index: int,
        faults: FaultInjector | None = None,
    ) -> bool:
        """Open-loop emission on the planned schedule; False when stopped early."""
        planned = payload.planned_s
        next_report = 0.0
        for i, batch in enumerate(payload.batches):
            due = origin + float(planned[i])
            while (now := self.clock()) < due:
                if faults is not None:
                    faults.tick(pipe, now - origin)
                if self.stop.is_set():
                    return False
                if pipe.in_flight:
                    pipe.poll(timeout_s=min(due - now, 0.02))
                else:
                    time.sleep(min(due - now, 0.02))
            if self.stop.is_set():
                return False
            trace.backlog.append((now - origin, measures.backlog_at(planned, i, now - origin)))
            pipe.submit(batch)
            pipe.poll(timeout_s=0)
            if faults is not None:
                faults.tick(pipe, self.clock() - origin)
            if now - origin >= next_report:
                next_report = now - origin + 0.5
                new_alerts = pipe.poll_alerts()
                trace.alerts += len(new_alerts)
                if new_alerts:
                    self.reporter.alerts(index, new_alerts)
                self.reporter.progress(index, now - origin, trace.lines_done, trace.alerts)
        while pipe.in_flight:
            if faults is not None:
                faults.tick(pipe, self.clock() - origin)
            if self.stop.is_set():
                return False
            pipe.poll(timeout_s=0.1)
        return True

    def _metrics(
        self,
        ctx: RunContext,
        records: list[measures.BatchRecord],
        outcome: Any,
        trace: _Trace,
        origin: float,
        integrity: dict[str, Any],
    ) -> tuple[dict[str, float], dict[str, Any]]:
        scn = ctx.scenario
        warmup = scn.measurement.warmup_s
        window = pipeline_config(scn).window
        metrics: dict[str, float] = {}
        metrics.update(measures.throughput(records, warmup))
        lat = measures.batch_latencies(records, warmup)
        late = measures.lateness(records)
        metrics["latency.batch_p50_s"] = measures.percentile(lat, 50)
        metrics["latency.batch_p99_s"] = measures.percentile(lat, 99)
        metrics["lateness.p99_s"] = measures.percentile(late, 99)
        metrics["backlog.max_batches"] = float(max((b for _, b in trace.backlog), default=0))
        alerts = [dict(a) for a in outcome.alerts]
        truth = ctx.payload.truth
        for a in alerts:
            a["matched"] = any(matches(a, t, window) for t in truth)
            if a.get("detected_wall_s") is not None:
                a["detected_s"] = a["detected_wall_s"] - origin
        rows = measures.detections(
            truth, alerts, records, origin, lambda a, t: matches(a, t, window), ctx.oracle
        )
        metrics.update(
            measures.detection_metrics(rows, alerts, sum(1 for a in alerts if a["matched"]))
        )
        shard_lines = [s["rows"] for s in outcome.shard_summaries]
        metrics["shards.imbalance"] = measures.imbalance(shard_lines)
        metrics["integrity.lines_emitted"] = float(outcome.lines_emitted)
        metrics["integrity.lines_parsed"] = float(outcome.lines_parsed)
        metrics["integrity.lines_rejected"] = float(outcome.lines_rejected)
        metrics["integrity.ok"] = 1.0 if integrity["ok"] else 0.0
        metrics["generation.build_s"] = ctx.payload.build_s
        t_s, values = measures.per_second_series(records)
        extra = {
            "series": {
                "throughput.lines_per_s": {"t_s": t_s, "values": values},
                "backlog.batches": {
                    "t_s": [t for t, _ in trace.backlog],
                    "values": [float(b) for _, b in trace.backlog],
                },
                "lateness.s": {
                    "t_s": [r.planned_s for r in records if r.emitted_s is not None],
                    "values": late,
                },
            },
            "samples": {"latency.batch_s": lat, "lateness.s": late},
            "detections": rows,
            "alerts": alerts,
        }
        return metrics, extra


def _engine(name: str) -> type[Pipeline]:
    """The pipeline class for ``parser.engine``."""
    if name == "ray_data":
        from logpipe.data_engine import DataPipeline  # imports Ray Data: only when chosen

        return DataPipeline
    return Pipeline


def _subscribe(events: PipelineEvents, trace: _Trace, payload: Payload, origin: float) -> None:
    def on_emitted(batch_id: int, t_s: float, in_flight: int) -> None:
        trace.emitted[batch_id] = t_s - origin

    def on_done(batch_id: int, t_s: float, stats: Any) -> None:
        trace.done[batch_id] = t_s - origin
        trace.lines_done += stats.lines
        trace.output_bytes[batch_id] = stats.output_bytes

    events.batch_emitted.add_listener(on_emitted)
    events.batch_done.add_listener(on_done)


def _closing_metrics(
    outcome: Any, complete: bool, finished_s: float, leaked: int | None
) -> dict[str, float]:
    """The replicate as a whole: first emit to final flush, and what the store kept after."""
    return {
        "throughput.end_to_end_lines_per_s": (
            outcome.lines_emitted / finished_s if complete and finished_s > 0 else math.nan
        ),
        "object_store.leaked_bytes": float(leaked) if leaked is not None else math.nan,
    }


def _rejections(outcome: Any) -> dict[str, Any]:
    """Why lines or batches were not aggregated (every line is accounted for)."""
    return {
        "reasons": dict(outcome.reasons),
        "batch_errors": dict(outcome.batch_errors),
        "dead_letters": outcome.dead_letters,
    }


def _integrity(ctx: RunContext, outcome: Any, complete: bool) -> dict[str, Any]:
    """Every line accounted for against the reference (an interrupted replicate is not)."""
    if not complete:
        return {"ok": False, "problems": ["replicate interrupted"]}
    return check(
        outcome.lines_emitted,
        outcome.lines_parsed,
        outcome.lines_rejected,
        outcome.shard_totals,
        outcome.merged_totals,
        ctx.reference,
        outcome.alerts,
        outcome.detector.get("alerts"),
    )


def _bound_metrics(
    cfg: PipelineConfig, payload: Payload, trace: _Trace, peak: float
) -> dict[str, float]:
    """The in-flight bound over the batches the replicate completed (arrow outputs only)."""
    done = [b for b in payload.batches if b.meta.batch_id in trace.output_bytes]
    outputs = [trace.output_bytes[b.meta.batch_id] for b in done]
    return measures.inflight_bound(
        cfg.max_in_flight,
        [b.compressed_bytes for b in done],
        outputs if cfg.parse.strategy == "arrow" else None,
        peak,
    )


def _records(payload: Payload, trace: _Trace) -> list[measures.BatchRecord]:
    return [
        measures.BatchRecord(
            batch_id=b.meta.batch_id,
            lines=b.meta.line_count,
            raw_bytes=b.meta.raw_bytes,
            first_event_ms=b.meta.first_event_ms,
            last_event_ms=b.meta.last_event_ms,
            planned_s=float(payload.planned_s[i]),
            emitted_s=trace.emitted.get(b.meta.batch_id),
            done_s=trace.done.get(b.meta.batch_id),
        )
        for i, b in enumerate(payload.batches)
    ]


def _finite(metrics: dict[str, float]) -> dict[str, float | None]:
    """NaN (no data, e.g. no anomaly detected) is stored as null in JSON."""
    return {k: (float(v) if v is not None and np.isfinite(v) else None) for k, v in metrics.items()}


def write(result: RunResult, out_dir: str | Path) -> Path:
    """Persist a result (atomic) and return its path."""
    from harness.results import write_result

    return write_result(result, Path(out_dir))
