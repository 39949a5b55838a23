"""Long-running workers outside the API process, and the health they report to an orchestrator.

``follow_scoring`` keeps a model's exactly-once scoring consumer (``ml.scoring``) going: it
scores whatever arrived, then sleeps in ``EventLog.wait_for_append`` (an append through the
same log wakes it at once; others are seen within ``poll_s``). A failing step (no champion yet,
a component down) is logged, reported as not ready and retried; it never ends the worker.

``WorkerHealth`` is what Kubernetes probes and compose health checks read, on a port of its own
(``--health-port``; no API key: like ``/health`` of the API it says nothing about the data):
- ``GET /health`` (liveness): 200 while the loop went round within ``stale_s`` seconds, 503
  when it is stuck (a restart helps);
- ``GET /ready`` (readiness): 200 when the last step succeeded, 503 naming the error otherwise
  (e.g. no champion promoted yet), with the consumer's lag.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from core.errors import HubError, OffsetsMoved
from core.leadership import LeaderElector
from core.ports.eventlog import EventLog

log = logging.getLogger("hub.workers")


class Steps(Protocol):
    """A consumer that does one batch per ``step`` (``ml.scoring.ScoringConsumer``)."""

    group: str

    def step(self) -> int: ...

    def lag(self) -> int: ...


class WorkerHealth:
    def __init__(self, name: str, stale_s: float = 60.0) -> None:
        self.name = name
        self.stale_s = stale_s
        self._lock = threading.Lock()
        self._beat = time.monotonic()
        self._error: str | None = "not started"
        self._lag: int | None = None
        self._done = 0
        self._server: ThreadingHTTPServer | None = None

    def beat(self, done: int = 0, lag: int | None = None) -> None:
        with self._lock:
            self._beat, self._error = time.monotonic(), None
            self._done += done
            if lag is not None:
                self._lag = lag

    def failed(self, error: str) -> None:
        with self._lock:
            self._beat, self._error = time.monotonic(), error

    def report(self) -> tuple[int, int, dict[str, Any]]:
        """(liveness status, readiness status, body)."""
        with self._lock:
            age = time.monotonic() - self._beat
            body: dict[str, Any] = {
                "worker": self.name,
                "last_round_s_ago": round(age, 3),
                "processed": self._done,
                "lag": self._lag,
                "error": self._error,
            }
            alive = age <= self.stale_s
            ready = alive and self._error is None
        return (200 if alive else 503), (200 if ready else 503), body

    def serve(self, host: str, port: int) -> ThreadingHTTPServer:
        """Answer ``/health`` and ``/ready`` on ``host:port`` from a daemon thread."""
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                alive, ready, body = health.report()
                if self.path == "/health":
                    status = alive
                elif self.path == "/ready":
                    status = ready
                else:
                    status, body = 404, {"error": f"{self.path} is not /health or /ready"}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # probes are not news
                return

        server = ThreadingHTTPServer((host, port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="worker-health", daemon=True).start()
        self._server = server
        return server

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def follow_scoring(
    consumer_of: Callable[[], Steps],
    event_log: EventLog,
    stop: threading.Event,
    health: WorkerHealth,
    *,
    poll_s: float = 0.5,
    retry_s: float = 2.0,
    leader: LeaderElector | None = None,
) -> int:
    """Score until ``stop`` is set; returns how many input records were consumed.

    ``consumer_of`` builds the consumer (again after a failed step: the champion may have
    changed, or the first one been promoted). With ``leader`` (several replicas, a lease per
    model) only the lease holder scores; the others stand by. A replica that lost the lease
    while paused cannot write either: its transactional producer (``<group>.<partition>``) is
    fenced by the new holder's (Kafka's own fencing).
    """
    total = 0
    consumer: Steps | None = None
    while not stop.is_set():
        if leader is not None and not leader.is_leader():
            consumer = None  # a new consumer (and producer) once elected
            health.beat(0)
            stop.wait(poll_s)
            continue
        try:
            if consumer is None:
                consumer = consumer_of()
            seen = event_log.append_generation()  # read before stepping: no lost wake-up
            n = consumer.step()
            total += n
            if n:
                health.beat(n)
                continue
            health.beat(0, consumer.lag())
            event_log.wait_for_append(seen, poll_s)
        except OffsetsMoved as exc:  # records would be skipped: stop, do not retry
            health.failed(exc.message)
            log.error("scoring stopped: group offsets moved", extra={"error": exc.message})
            raise
        except HubError as exc:
            health.failed(exc.message)
            log.error("scoring step failed; retrying", extra={"error": exc.message})
            consumer = None
            stop.wait(retry_s)
    return total
