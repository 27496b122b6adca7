"""The pipeline's actors: aggregator shards, the journaled detector and alerting.

:class:`PipelineActors` creates them once, with the private state directory
their checkpoints, journal and alerts file live in, and can :meth:`reset
<PipelineActors.reset>` them for another run of the same configuration: the
runner reuses one set across a scenario's replicates instead of paying for new
worker processes each time (start-up is not part of the workload, but it is
part of how long a run takes). Every reset empties each actor's state and
deletes its files, so replicates never see each other's state; a restarted
actor still finds its current checkpoint in the same directory.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ray

from logpipe.alerting import AlertingActor
from logpipe.allocator import worker_options
from logpipe.detector import DetectorConfig
from logpipe.detector_actor import DetectorActor
from logpipe.named import ActorName
from logpipe.sequencer import ARRIVAL_ORDER, Prev
from logpipe.shard import ShardActor
from logpipe.windows import PaneAggregate, SketchConfig, WindowSpec

if TYPE_CHECKING:
    from logpipe.pipeline import PipelineConfig


class JournaledDetector(DetectorActor):
    """A :class:`DetectorActor` that loses nothing when it is killed.

    Every submitted pane is appended to a journal before it is applied; the
    state is snapshotted every ``snapshot_every`` completed panes (which empties
    the journal). A restarted actor restores the snapshot and re-applies the
    journal: panes it already holds are ignored by the core's per-shard
    deduplication, and alerts recomputed from the journal are deduplicated by the
    alerting actor. Calls that never returned are retried by Ray, possibly after
    later calls from the same shard: the core holds a pane until the one before
    it (``prev_pane``) has arrived.
    """

    def __init__(
        self,
        config: DetectorConfig,
        window: WindowSpec,
        n_shards: int,
        alerting: Any,
        state_dir: str,
        snapshot_every: int = 64,
        sketch: SketchConfig | None = None,
    ) -> None:
        self._ctor = (config, window, n_shards, alerting, state_dir, snapshot_every, sketch)
        snapshot = os.path.join(state_dir, "detector.ckpt")
        super().__init__(config, window, n_shards, alerting, snapshot, snapshot_every, sketch)
        self._journal_path = os.path.join(state_dir, "detector.journal")
        self.replayed = 0
        entries, good_bytes = _read_journal(self._journal_path)
        self._journal = open(self._journal_path, "ab")  # noqa: SIM115 (actor lifetime)
        self._journal.truncate(good_bytes)  # a torn tail would hide later entries
        for shard_id, pane, trigger, prev in entries:
            self.replayed += 1
            self.apply(shard_id, pane, trigger, prev)

    def reset(self) -> int:
        """Forget everything, snapshot and journal included, as a new actor would
        (to reuse it for another run; call only when nothing is in flight)."""
        self._journal.close()
        for path in (self._journal_path, self.checkpoint_path):
            if path is not None and os.path.exists(path):
                os.remove(path)
        JournaledDetector.__init__(self, *self._ctor)
        return self.core.panes_completed

    def submit(
        self,
        shard_id: int,
        pane: PaneAggregate,
        trigger_batch_id: int,
        prev_pane: Prev = ARRIVAL_ORDER,
    ) -> int:
        record = pickle.dumps(
            (shard_id, pane, trigger_batch_id, prev_pane), pickle.HIGHEST_PROTOCOL
        )
        self._journal.write(record)
        self._journal.flush()  # a killed process loses nothing flushed to the OS
        # The journal's bytes give the heap copy of the pane (detector_actor.heap_copy).
        shard_id, pane, trigger_batch_id, prev_pane = pickle.loads(record)
        return self._submit_owned(shard_id, pane, trigger_batch_id, prev_pane)

    def checkpoint(self) -> None:
        super().checkpoint()
        journal = getattr(self, "_journal", None)
        if journal is not None:  # the snapshot covers every journalled pane
            journal.truncate(0)
            journal.seek(0)


def _read_journal(path: str) -> tuple[list[tuple[int, PaneAggregate, int, Prev]], int]:
    """Entries of a journal this pipeline wrote, and the bytes they span; a torn
    last entry is dropped (its call never returned, so Ray retries it)."""
    entries: list[tuple[int, PaneAggregate, int, Prev]] = []
    good = 0
    if not os.path.exists(path):
        return entries, good
    with open(path, "rb") as fh:
        while True:
            try:
                entries.append(pickle.load(fh))
            except Exception:  # EOF, or any error in our own file: a torn tail
                break
            good = fh.tell()
    return entries, good


def make_state_dir(parent: str | None) -> str:
    """A new, private directory for one pipeline's state, inside ``parent`` when given."""
    # Never created here: a shared mount missing on this node must not silently
    # become a local directory the other nodes cannot see.
    if parent is not None and not os.path.isdir(parent):
        raise ValueError(f"state_dir: no such directory {parent!r} (is it mounted here?)")
    try:
        return tempfile.mkdtemp(prefix="logpipe-state-", dir=parent)
    except OSError as err:
        raise ValueError(f"state_dir: cannot write in {parent!r}: {err.strerror}") from None


class PipelineActors:
    """Shards, detector and alerting actors of one configuration, reusable across runs."""

    def __init__(
        self, config: PipelineConfig, stall: Callable[[int, int], float] | None = None
    ) -> None:
        self.config = config
        self.state_dir = make_state_dir(config.state_dir)
        self._closed = False
        restart = {"num_cpus": 0, "max_restarts": -1, "max_task_retries": -1}
        # Actors reserve no CPU slot: parse tasks get the cores, actors share them.
        # Constructor arguments stay small (no object-store refs; other actors by name,
        # logpipe/named.py) so restarts work.
        self._own_alerts = config.alerts_path is None
        alerts_path = config.alerts_path or os.path.join(self.state_dir, "alerts.jsonl")
        # Unique per pipeline: the state directory's name is (mkdtemp).
        alerting_name = f"logpipe-alerting-{os.path.basename(self.state_dir)}"
        detector_name = f"logpipe-detector-{os.path.basename(self.state_dir)}"
        # Actor handles are typed Any: Ray's stubs do not model ``.remote`` on methods.
        self.alerting: Any = (
            ray.remote(AlertingActor)
            .options(name=alerting_name, **restart)
            .remote(path=alerts_path, webhook_url=config.webhook_url)
        )
        self.detector: Any = (
            ray.remote(JournaledDetector)
            .options(name=detector_name, **restart)
            .remote(
                config.detector,
                config.window,
                config.n_shards,
                ActorName(alerting_name),  # by name: see logpipe/named.py
                self.state_dir,
                config.snapshot_every,
                config.sketch,  # gap panes and windows must match the shards' sketches
            )
        )
        strategy = "SPREAD" if config.spread_shards else "DEFAULT"
        self.shards: list[Any] = [
            ray.remote(ShardActor)
            .options(
                scheduling_strategy=strategy,
                **restart,
                **worker_options(config.keep_freed_memory),
            )
            .remote(
                i,
                config.window,
                ActorName(detector_name),
                config.sketch,
                stall,
                self.state_dir,
                config.checkpoint_every,
            )
            for i in range(config.n_shards)
        ]

    def wait_ready(self, timeout_s: float | None = None) -> None:
        """Block until every actor is constructed (its worker process started)."""
        ray.get(
            [s.status.remote() for s in self.shards]
            + [self.detector.stats.remote(), self.alerting.count.remote()],
            timeout=timeout_s,
        )

    def reset(self) -> None:
        """Empty every actor's state and files, as if newly created (nothing in flight)."""
        if self._closed:
            raise RuntimeError("these pipeline actors are closed")
        ray.get(
            [s.reset.remote() for s in self.shards]
            + [self.detector.reset.remote(), self.alerting.reset.remote(self._own_alerts)]
        )

    def close(self) -> None:
        """Kill the actors and remove the state directory (idempotent)."""
        if self._closed:
            return
        self._closed = True
        # An actor still being constructed would create its files (journal, alerts)
        # after the directory is removed: let construction finish first.
        with contextlib.suppress(ray.exceptions.RayError):
            self.wait_ready(timeout_s=30.0)
        for actor in [*self.shards, self.detector, self.alerting]:
            ray.kill(actor, no_restart=True)
        # Only the directory made here; a user's state_dir itself stays.
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> PipelineActors:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
