"""Alert recording: in-memory log, JSON-lines file, webhook sink, alerting actor.

The alerting actor is the end of the pipeline: it stamps the wall time of
detection (what time-to-detect is measured against), drops replayed alerts
(the detector may resend after a restart) and fans alerts out to sinks. A sink
failure is counted, never raised: alerting must not stop the pipeline.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, Any, Protocol

from logpipe.detector import Alert

DedupeKey = tuple[str, str, int]


def dedupe_key(alert: Alert) -> DedupeKey:
    """Identity of an incident: the same (kind, key, window start) is one alert."""
    return (alert.kind, alert.key, alert.window_start_ms)


class AlertSink(Protocol):
    """Receives newly recorded alerts; must not raise for delivery failures."""

    def send(self, alerts: Sequence[Alert]) -> None: ...


class AlertLog:
    """Records alerts once each, stamping ``detected_wall_s`` with ``clock()``.

    ``path``: optional JSON-lines file, appended to and flushed on every record
    call so a crash loses nothing already recorded. ``resume``: load the alerts
    already in ``path`` first (after a restart), so replays of them are dropped.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        sinks: Iterable[AlertSink] = (),
        clock: Callable[[], float] = time.time,
        resume: bool = False,
    ) -> None:
        self._clock = clock
        self._sinks = list(sinks)
        self._seen: set[DedupeKey] = set()
        self._alerts: list[Alert] = []
        self.duplicates = 0
        self.sink_errors = 0
        self._file: IO[str] | None = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            if resume and Path(path).exists():
                self._alerts = read_jsonl(path)
                self._seen = {dedupe_key(a) for a in self._alerts}
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def record(self, alerts: Iterable[Alert | Mapping[str, Any]]) -> list[Alert]:
        """Stamp, store, write and send the alerts not seen before; return them."""
        now = self._clock()
        fresh: list[Alert] = []
        for item in alerts:
            alert = item if isinstance(item, Alert) else Alert.from_dict(dict(item))
            key = dedupe_key(alert)
            if key in self._seen:
                self.duplicates += 1
                continue
            self._seen.add(key)
            fresh.append(replace(alert, detected_wall_s=now))
        if not fresh:
            return fresh
        self._alerts.extend(fresh)
        if self._file is not None:
            self._file.write("".join(json.dumps(a.to_dict()) + "\n" for a in fresh))
            self._file.flush()
        for sink in self._sinks:
            try:
                sink.send(fresh)
            except Exception:  # a broken sink must not stop alerting
                self.sink_errors += 1
        return fresh

    @property
    def alerts(self) -> list[Alert]:
        return list(self._alerts)

    def alerts_since(self, start: int) -> list[Alert]:
        return self._alerts[max(start, 0) :]

    def __len__(self) -> int:
        return len(self._alerts)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_jsonl(path: str | Path) -> list[Alert]:
    """Read alerts written by :class:`AlertLog` (validated)."""
    with open(path, encoding="utf-8") as fh:
        return [Alert.from_dict(json.loads(line)) for line in fh if line.strip()]


class WebhookSink:
    """POSTs alerts as JSON (``{"alerts": [...]}``) to an http(s) URL.

    Attempts per request: ``1 + retries``; connection errors, timeouts and 5xx
    responses are retried after ``backoff_s * 2**attempt``; other 4xx responses
    are not. Bodies are kept under ``max_body_bytes`` by splitting the alerts
    over several requests; an alert too large on its own is counted as failed.
    ``delivered``/``failed`` count alerts.
    """

    def __init__(
        self,
        url: str,
        timeout_s: float = 2.0,
        retries: int = 3,
        backoff_s: float = 0.2,
        max_body_bytes: int = 256 * 1024,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"webhook.url: only http(s) URLs are accepted (got {url!r})")
        if timeout_s <= 0 or retries < 0 or backoff_s < 0 or max_body_bytes < 64:
            raise ValueError("webhook: timeout_s > 0, retries >= 0, backoff_s >= 0, body >= 64")
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_body_bytes = max_body_bytes
        self._sleep = sleep
        self._lock = threading.Lock()
        self.delivered = 0
        self.failed = 0
        self.requests = 0
        self.last_error: str | None = None

    def send(self, alerts: Sequence[Alert]) -> None:
        for chunk in self._chunks(alerts):
            ok = self._post(json.dumps({"alerts": chunk}).encode())
            with self._lock:
                if ok:
                    self.delivered += len(chunk)
                else:
                    self.failed += len(chunk)

    def _chunks(self, alerts: Sequence[Alert]) -> Iterable[list[dict[str, Any]]]:
        overhead = len(b'{"alerts": []}')
        chunk: list[dict[str, Any]] = []
        size = overhead
        for alert in alerts:
            item = alert.to_dict()
            item_size = len(json.dumps(item).encode()) + 2  # ", " separator
            if overhead + item_size > self.max_body_bytes:
                with self._lock:
                    self.failed += 1
                    self.last_error = "alert larger than max_body_bytes"
                continue
            if chunk and size + item_size > self.max_body_bytes:
                yield chunk
                chunk, size = [], overhead
            chunk.append(item)
            size += item_size
        if chunk:
            yield chunk

    def _post(self, body: bytes) -> bool:
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff_s * 2 ** (attempt - 1))
            request = urllib.request.Request(
                self.url,
                data=body,
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            with self._lock:
                self.requests += 1
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    response.read()
                return True
            except urllib.error.HTTPError as exc:
                self.last_error = f"HTTP {exc.code}"
                if exc.code < 500:
                    return False
            except (urllib.error.URLError, OSError) as exc:  # refused, reset, timeout
                self.last_error = f"{type(exc).__name__}: {exc}"
        return False

    def stats(self) -> dict[str, Any]:
        return {
            "delivered": self.delivered,
            "failed": self.failed,
            "requests": self.requests,
            "last_error": self.last_error,
        }


class AlertingActor:
    """Ray actor body around :class:`AlertLog`.

    Wrap with ``ray.remote(AlertingActor)`` (see :func:`remote_alerting`). Runs
    sinks synchronously, so a slow webhook delays alerting, never the detector,
    which forwards alerts without waiting.
    """

    def __init__(
        self,
        path: str | None = None,
        webhook_url: str | None = None,
        webhook_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._ctor = (path, webhook_url, webhook_options)
        sinks: list[AlertSink] = []
        self._webhook: WebhookSink | None = None
        if webhook_url is not None:
            self._webhook = WebhookSink(webhook_url, **dict(webhook_options or {}))
            sinks.append(self._webhook)
        self._log = AlertLog(path, sinks, resume=path is not None and _reconstructed())

    def reset(self, remove_file: bool = True) -> int:
        """Forget every alert, as a new actor would (to reuse it for another run).

        ``remove_file``: delete the alerts file first (the pipeline's own file in its
        state directory), so a later restart cannot resume the previous run's alerts.
        """
        path, webhook_url, webhook_options = self._ctor
        self._log.close()
        if remove_file and path is not None:
            Path(path).unlink(missing_ok=True)
        AlertingActor.__init__(self, path, webhook_url, webhook_options)
        return len(self._log)

    def record(self, alerts: Sequence[Alert | Mapping[str, Any]]) -> int:
        """Record alerts; returns how many were new."""
        return len(self._log.record(alerts))

    def alerts(self) -> list[dict[str, Any]]:
        return [a.to_dict() for a in self._log.alerts]

    def alerts_since(self, start: int) -> list[dict[str, Any]]:
        """Alerts recorded after the first ``start`` ones, in record order (for polling)."""
        return [a.to_dict() for a in self._log.alerts_since(start)]

    def count(self) -> int:
        return len(self._log)

    def stats(self) -> dict[str, Any]:
        return {
            "recorded": len(self._log),
            "duplicates": self._log.duplicates,
            "sink_errors": self._log.sink_errors,
            "webhook": None if self._webhook is None else self._webhook.stats(),
        }


def _reconstructed() -> bool:
    """True inside an actor that Ray has restarted (False outside Ray actors)."""
    import ray

    if not ray.is_initialized():
        return False
    ctx = ray.get_runtime_context()
    if ctx.get_actor_id() is None:
        return False
    return bool(ctx.was_current_actor_reconstructed)


def remote_alerting(**options: Any) -> Any:
    """``ray.remote(AlertingActor)`` with restart defaults; ``options`` override them.

    A restarted alerting actor starts empty: alerts already written to ``path``
    stay there, and the detector's replayed alerts are deduplicated again.
    """
    import ray

    defaults: dict[str, Any] = {"num_cpus": 0, "max_restarts": -1, "max_task_retries": -1}
    return ray.remote(**{**defaults, **options})(AlertingActor)
