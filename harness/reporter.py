"""Progress events of a run: what the runner tells its caller as replicates go by.

The CLI's progress bar (:class:`harness.console.ProgressReporter`) implements them;
``logbench peers`` subscribes to ``replicate_started`` to alternate a peer's
replicates with the pipeline's. Importing this module does not import Ray.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class Reporter(Protocol):
    """Progress callbacks (the CLI's progress bar implements this)."""

    def replicate_started(self, index: int, total: int, planned_s: float) -> None: ...

    def progress(self, index: int, elapsed_s: float, lines: int, alerts: int) -> None: ...

    def alerts(self, index: int, alerts: Sequence[dict[str, Any]]) -> None: ...

    def replicate_finished(self, index: int, metrics: dict[str, float]) -> None: ...


class NullReporter:
    def replicate_started(self, index: int, total: int, planned_s: float) -> None:
        pass

    def progress(self, index: int, elapsed_s: float, lines: int, alerts: int) -> None:
        pass

    def alerts(self, index: int, alerts: Sequence[dict[str, Any]]) -> None:
        pass

    def replicate_finished(self, index: int, metrics: dict[str, float]) -> None:
        pass
