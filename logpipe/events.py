"""Event hooks: how the pipeline tells observers what happened (locust-style).

Observers (the harness's runner, the demo's printer) subscribe to hooks; the
pipeline fires them and never calls an observer's internals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class EventHook:
    """A list of listeners called in order with keyword arguments."""

    def __init__(self) -> None:
        self._listeners: list[Callable[..., Any]] = []

    def add_listener(self, listener: Callable[..., Any]) -> Callable[..., Any]:
        self._listeners.append(listener)
        return listener

    def remove_listener(self, listener: Callable[..., Any]) -> None:
        self._listeners.remove(listener)

    def fire(self, **kwargs: Any) -> None:
        for listener in self._listeners:
            listener(**kwargs)


@dataclass
class PipelineEvents:
    """The hooks a :class:`logpipe.pipeline.Pipeline` fires.

    - ``batch_emitted(batch_id, t_s, in_flight)``: the batch entered the pipeline.
    - ``batch_done(batch_id, t_s, stats)``: every shard aggregated the batch;
      ``stats`` is its :class:`logpipe.parse.ParseStats`.
    - ``alerts(alerts, t_s)``: new alerts observed by :meth:`Pipeline.poll_alerts`.
    """

    batch_emitted: EventHook = field(default_factory=EventHook)
    batch_done: EventHook = field(default_factory=EventHook)
    alerts: EventHook = field(default_factory=EventHook)
