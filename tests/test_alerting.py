"""Alert log dedupe and JSONL output, webhook delivery against a real local server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from logpipe.alerting import AlertingActor, AlertLog, WebhookSink, read_jsonl, remote_alerting
from logpipe.detector import Alert


def make_alert(alert_id: int = 0, kind: str = "error_rate", key: str = "checkout", start=0):
    return Alert(
        alert_id=alert_id,
        kind=kind,
        key=key,
        window_start_ms=start,
        window_end_ms=start + 10_000,
        observed=0.4,
        baseline=0.015,
        event_ms=start + 10_000,
        trigger_batch_id=7,
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_record_stamps_and_dedupes() -> None:
    log = AlertLog(clock=FakeClock())
    first = log.record([make_alert(0), make_alert(1, key="search")])
    assert [a.detected_wall_s for a in first] == [101.0, 101.0]
    # A replay of the same incident (new id after a detector restart) is dropped.
    again = log.record([make_alert(5), make_alert(6, start=2_000)])
    assert [a.alert_id for a in again] == [6]
    assert again[0].detected_wall_s == 102.0
    assert len(log) == 3 and log.duplicates == 1
    assert [a.alert_id for a in log.alerts] == [0, 1, 6]


def test_jsonl_file_is_written_per_record_and_resumable(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "alerts.jsonl"
    log = AlertLog(path, clock=FakeClock())
    log.record([make_alert(0)])
    # Flushed before close: a reader sees it immediately.
    assert [a.alert_id for a in read_jsonl(path)] == [0]
    log.record([make_alert(0), make_alert(1, kind="latency", key="shop /cart")])
    log.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[1])["kind"] == "latency"
    resumed = AlertLog(path, resume=True)
    assert resumed.record([make_alert(9)]) == []
    assert len(resumed) == 2
    resumed.close()


def test_broken_sink_is_counted_not_raised() -> None:
    class Broken:
        def send(self, alerts: Any) -> None:
            raise RuntimeError("down")

    log = AlertLog(sinks=[Broken()])
    assert len(log.record([make_alert()])) == 1
    assert log.sink_errors == 1


def test_record_accepts_dicts_and_validates() -> None:
    log = AlertLog()
    assert log.record([make_alert(3).to_dict()])[0].alert_id == 3
    with pytest.raises(ValueError, match=r"alert\.kind"):
        log.record([{**make_alert().to_dict(), "kind": "nope"}])


@dataclass
class Recorder:
    fail_first: int = 0
    status: int = 503
    delay_s: float = 0.0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    hits: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def server() -> Iterator[tuple[str, Recorder]]:
    rec = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with rec.lock:
                rec.hits += 1
                fail = rec.hits <= rec.fail_first
            if rec.delay_s:
                time.sleep(rec.delay_s)
            if fail:
                self.send_response(rec.status)
                self.end_headers()
                return
            with rec.lock:
                rec.bodies.append(json.loads(body))
            try:
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and hung up: the case a delay is there to test

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/hook", rec
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_webhook_delivers_json(server: tuple[str, Recorder]) -> None:
    url, rec = server
    sink = WebhookSink(url, sleep=lambda s: None)
    sink.send([make_alert(0), make_alert(1, key="search")])
    assert sink.delivered == 2 and sink.failed == 0
    assert [a["key"] for a in rec.bodies[0]["alerts"]] == ["checkout", "search"]


def test_webhook_retries_5xx_with_backoff(server: tuple[str, Recorder]) -> None:
    url, rec = server
    rec.fail_first = 2
    sleeps: list[float] = []
    sink = WebhookSink(url, retries=3, backoff_s=0.5, sleep=sleeps.append)
    sink.send([make_alert()])
    assert sink.delivered == 1 and rec.hits == 3
    assert sleeps == [0.5, 1.0]


def test_webhook_gives_up_after_retries(server: tuple[str, Recorder]) -> None:
    url, rec = server
    rec.fail_first = 100
    sink = WebhookSink(url, retries=2, sleep=lambda s: None)
    sink.send([make_alert()])
    assert sink.failed == 1 and sink.delivered == 0 and rec.hits == 3
    assert sink.last_error == "HTTP 503"


def test_webhook_does_not_retry_4xx(server: tuple[str, Recorder]) -> None:
    url, rec = server
    rec.fail_first, rec.status = 100, 400
    sink = WebhookSink(url, retries=3, sleep=lambda s: None)
    sink.send([make_alert()])
    assert sink.failed == 1 and rec.hits == 1


def test_webhook_timeout_is_retried(server: tuple[str, Recorder]) -> None:
    url, rec = server
    rec.delay_s = 0.5
    sink = WebhookSink(url, timeout_s=0.05, retries=1, sleep=lambda s: None)
    sink.send([make_alert()])
    assert sink.failed == 1 and sink.requests == 2
    assert sink.last_error is not None and "timed out" in sink.last_error.lower()


def test_webhook_connection_refused_counts_failure() -> None:
    sink = WebhookSink("http://127.0.0.1:9/none", timeout_s=0.5, retries=1, sleep=lambda s: None)
    sink.send([make_alert()])
    assert sink.failed == 1 and sink.requests == 2


def test_webhook_splits_bodies(server: tuple[str, Recorder]) -> None:
    url, rec = server
    one = len(json.dumps({"alerts": [make_alert().to_dict()]}).encode())
    sink = WebhookSink(url, max_body_bytes=one + 10, sleep=lambda s: None)
    sink.send([make_alert(i, start=i) for i in range(3)])
    assert [len(b["alerts"]) for b in rec.bodies] == [1, 1, 1]
    assert sink.delivered == 3
    tiny = WebhookSink(url, max_body_bytes=64, sleep=lambda s: None)
    tiny.send([make_alert()])
    assert tiny.failed == 1 and len(rec.bodies) == 3


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "127.0.0.1:80", "http://", "gopher://x"]
)
def test_webhook_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ValueError, match=r"webhook\.url"):
        WebhookSink(url)


def test_alerting_actor_core_with_webhook(server: tuple[str, Recorder], tmp_path: Path) -> None:
    url, rec = server
    actor = AlertingActor(str(tmp_path / "a.jsonl"), url, {"sleep": lambda s: None})
    assert actor.record([make_alert(0), make_alert(0)]) == 1
    assert actor.count() == 1
    assert actor.alerts()[0]["detected_wall_s"] is not None
    assert actor.stats()["webhook"]["delivered"] == 1
    actor.record([make_alert(1, key="search")])
    assert [a["key"] for a in actor.alerts_since(1)] == ["search"]
    assert actor.alerts_since(2) == []
    assert [len(b["alerts"]) for b in rec.bodies] == [1, 1]


@pytest.mark.ray
def test_alerting_actor_under_ray(ray_session: None, tmp_path: Path) -> None:
    import ray

    actor = remote_alerting().remote(str(tmp_path / "alerts.jsonl"))
    assert ray.get(actor.record.remote([make_alert(0), make_alert(1, key="x")])) == 2
    assert ray.get(actor.record.remote([make_alert(0)])) == 0
    assert ray.get(actor.count.remote()) == 2
    dicts = ray.get(actor.alerts.remote())
    assert [Alert.from_dict(d).key for d in dicts] == ["checkout", "x"]
    assert len(read_jsonl(tmp_path / "alerts.jsonl")) == 2
    # After a restart the log resumes from its file, so a replay is still dropped.
    ray.kill(actor, no_restart=False)
    assert ray.get(actor.record.remote([make_alert(7)])) == 0
    assert ray.get(actor.count.remote()) == 2
    assert len(read_jsonl(tmp_path / "alerts.jsonl")) == 2
    ray.kill(actor)
