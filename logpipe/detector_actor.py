"""The detector as a Ray actor: :class:`DetectorCore` behind calls from the shards."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from logpipe.detector import Alert, DetectorConfig, DetectorCore
from logpipe.named import resolve
from logpipe.sequencer import ARRIVAL_ORDER, Prev
from logpipe.windows import PaneAggregate, SketchConfig, WindowSpec


def heap_copy(pane: PaneAggregate) -> PaneAggregate:
    """``pane`` with its arrays in this process's memory.

    A pane larger than Ray's inline limit (100 KiB) arrives through the object
    store, and its numpy arrays (sketch registers) are read zero-copy: while the
    window holds them they pin the shard's object in the store, where they would
    count as in-flight work for the whole window. Pickling in-band copies them out.
    """
    copied: PaneAggregate = pickle.loads(pickle.dumps(pane, pickle.HIGHEST_PROTOCOL))
    return copied


class DetectorActor:
    """Ray actor body around :class:`DetectorCore`; forwards alerts to the alerting actor.

    Not decorated here: wrap it with :func:`remote_detector` (restart defaults) or
    ``ray.remote(DetectorActor).options(...)``. ``submit`` returns only the number
    of new alerts (shards wait on it) and forwards alerts without waiting.
    With ``checkpoint_path``, the core's state is written there atomically every
    ``checkpoint_every`` completed panes and on flush, and a restarted actor
    resumes from it; panes completed after the last checkpoint are lost on a
    crash (their shards have moved on), and replayed alerts are deduplicated by
    the alerting actor.
    """

    def __init__(
        self,
        config: DetectorConfig,
        window: WindowSpec,
        n_shards: int,
        alerting: Any = None,
        checkpoint_path: str | None = None,
        checkpoint_every: int = 64,
        sketch: SketchConfig | None = None,
    ) -> None:
        self.core = DetectorCore(config, window, n_shards, sketch)
        self.alerting = alerting
        self.checkpoint_path = checkpoint_path
        self.checkpoint_every = max(1, checkpoint_every)
        self._checkpointed_at = 0
        self._inflight: list[Any] = []
        if checkpoint_path is not None and Path(checkpoint_path).exists():
            with open(checkpoint_path, "rb") as fh:
                self.core.restore(pickle.load(fh))
            self._checkpointed_at = self.core.panes_completed

    def submit(
        self,
        shard_id: int,
        pane: PaneAggregate,
        trigger_batch_id: int,
        prev_pane: Prev = ARRIVAL_ORDER,
    ) -> int:
        return self._submit_owned(shard_id, heap_copy(pane), trigger_batch_id, prev_pane)

    def _submit_owned(
        self, shard_id: int, pane: PaneAggregate, trigger_batch_id: int, prev_pane: Prev
    ) -> int:
        """``submit`` for a pane already in this process's memory (see :func:`heap_copy`)."""
        alerts = self.apply(shard_id, pane, trigger_batch_id, prev_pane)
        if self.core.panes_completed - self._checkpointed_at >= self.checkpoint_every:
            self.checkpoint()
        return len(alerts)

    def apply(
        self,
        shard_id: int,
        pane: PaneAggregate,
        trigger_batch_id: int,
        prev_pane: Prev = ARRIVAL_ORDER,
    ) -> list[Alert]:
        """Give one partial to the core and forward its alerts; no checkpoint
        (subclasses replaying a journal call this)."""
        alerts = self.core.submit(shard_id, pane, trigger_batch_id, prev_pane)
        self._forward(alerts)
        return alerts

    def flush(self) -> int:
        """Complete every pane; return once the alerting actor has recorded all alerts."""
        alerts = self.core.flush()
        self._forward(alerts)
        self.checkpoint()
        if self._inflight:
            import ray

            ray.get(self._inflight)
            self._inflight = []
        return len(alerts)

    def _forward(self, alerts: list[Alert]) -> None:
        if not alerts or self.alerting is None:
            return
        self.alerting = resolve(self.alerting)  # an ActorName is looked up once
        self._inflight.append(self.alerting.record.remote(alerts))
        if len(self._inflight) > 64:
            import ray

            # Drop refs already done so the list stays short; never blocks.
            _, self._inflight = ray.wait(self._inflight, num_returns=len(self._inflight), timeout=0)

    def checkpoint(self) -> None:
        if self.checkpoint_path is None:
            return
        tmp = f"{self.checkpoint_path}.tmp"
        with open(tmp, "wb") as fh:
            pickle.dump(self.core.state(), fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, self.checkpoint_path)
        self._checkpointed_at = self.core.panes_completed

    def stats(self) -> dict[str, Any]:
        return self.core.stats()

    def state(self) -> dict[str, Any]:
        return self.core.state()

    def restore(self, state: dict[str, Any]) -> None:
        self.core.restore(state)


def remote_detector(**options: Any) -> Any:
    """``ray.remote(DetectorActor)`` with restart defaults; ``options`` override them."""
    import ray

    defaults: dict[str, Any] = {"num_cpus": 0, "max_restarts": -1, "max_task_retries": -1}
    return ray.remote(**{**defaults, **options})(DetectorActor)
