"""What operators watch: readiness per component, the metrics read at scrape time, request ids,
the access log, and the dedicated scrape credential of ``/metrics``.

- ``readiness(hub)``: one check per component (event log, views, policy engine, key store,
  ledger, projections), each naming its adapter (``kafka``, ``opa``, ``vault``...), whether it
  answered, in how many ms, and why not (also logged). ``GET /ready`` answers whether each
  answered (503 when one fails), ``GET /ready/details`` all of it to an operator; the
  Prometheus gauge ``hub_component_ready{component,adapter}`` reads it too.
- ``HubCollector``: gauges computed when Prometheus scrapes: the ledger's tree size, the age of
  its latest signed checkpoint, the records not yet on it; and each projection's lag (the
  ``hub_projection_lag_records`` gauge, refreshed before each render).
- ``ObservabilityMiddleware`` (outermost ASGI layer): gives every request an id (a sane incoming
  ``X-Request-Id`` is kept, else a new one; echoed in the response), logs one access line per
  request in ECS fields (``event.dataset: hub.access``) without any header or query string, so no
  credential reaches the log, and without the request's path: a path names data subjects,
  accounts and events (``/v1/projections/{name}/rows/{key}/sources``), and a copy of it in the
  log or a span would outlive ``hub erase``. The line and the span carry the matched route's
  template (``hub.route``, ``http.route``; ``unmatched`` when none) and ``hub.path.digest``, a
  keyed digest of the path under a key made at start-up and never written (``path_digest``):
  requests for one path can be counted together, but no one can confirm a guessed identifier
  against the log, and once the process ends no one can at all. Metrics are labelled with route
  templates only. It also answers ``GET /metrics`` itself when the request carries the
  scrape token (``HUB_METRICS_TOKEN_FILE``): Prometheus then needs no API key, and scrapes are
  neither policy decisions nor ledger entries. Any other ``/metrics`` request goes through the
  API key and the ``metrics.read`` policy action as before.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, Span, SpanKind, StatusCode
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core import tracing
from core.errors import ConfigError
from hub.logs import redact, request_id

if TYPE_CHECKING:
    from hub.bootstrap import Hub

access_log = logging.getLogger("hub.access")
log = logging.getLogger("hub.observability")

CHECK_TIMEOUT_S = 2.0
READY_CACHE_S = 5.0
MIN_TOKEN_CHARS = 32
# The methods a metric label names; any other token a client sends counts as "other" (a label
# per invented method would let an anonymous client grow the metrics without bound).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# The key of ``path_digest``: made at start-up, never written, gone with the process.
_PATH_KEY = secrets.token_bytes(32)


def route_template(scope: Scope) -> str:
    """The template of the route that served ``scope`` (``/v1/cases/{case_id}``), else
    ``unmatched``: what a log line, a span or a metric label may say of a request's path."""
    route = scope.get("state", {}).get("route") or getattr(scope.get("route"), "path", None)
    return route if isinstance(route, str) and route else "unmatched"


def path_digest(path: str) -> str:
    """A keyed digest of a request's path (16 hex digits, ``_PATH_KEY``): equal for equal
    paths in one process, and says nothing of the path to whoever lacks the key."""
    data = path.encode("utf-8", "surrogateescape")
    return hmac.new(_PATH_KEY, data, hashlib.sha256).hexdigest()[:16]


# -- readiness -------------------------------------------------------------------------------------
def _http_ok(url: str) -> None:
    try:
        response = httpx.get(url, timeout=CHECK_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise RuntimeError(f"{url} did not answer ({exc})") from exc
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}")


def _checks(hub: Hub) -> list[tuple[str, str, Callable[[], dict[str, Any] | None]]]:
    """(component, adapter, check): a check raises when the component does not answer."""
    s = hub.settings
    out: list[tuple[str, str, Callable[[], dict[str, Any] | None]]] = []

    def event_log() -> dict[str, Any]:
        return {"topics": len(hub.log.topics())}

    out.append(("event_log", s.event_log, event_log))

    if s.policy_engine == "opa":

        def policy() -> None:
            _http_ok(s.opa_url.rstrip("/") + "/health")

    else:

        def policy() -> None:  # evaluated in-process: answering means it is loaded
            return None

    out.append(("policy", s.policy_engine, policy))

    if s.keystore == "vault":

        def keystore() -> None:
            _http_ok(s.vault_url.rstrip("/") + "/v1/sys/health")

    else:

        def keystore() -> None:
            hub.keystore.exists("hub-readiness-probe")

    out.append(("keystore", s.keystore, keystore))

    def ledger() -> dict[str, Any]:
        size, age, pending = ledger_figures(hub)
        return {"tree_size": size, "checkpoint_age_s": age, "pending_records": pending}

    out.append(("ledger", "sqlite", ledger))

    if hub.projections is not None:
        from projections.catalog import PROJECTIONS

        adapters = {
            "analytics": s.views_analytics,
            "transactional": "postgresql" if s.views_sql_url.startswith("postgres") else "sqlite",
        }
        for kind in sorted({p.store for p in PROJECTIONS}):
            first = next(p.name for p in PROJECTIONS if p.store == kind)

            def views(kind: str = kind, first: str = first) -> dict[str, Any]:
                return {"states": len(hub.projections.store(kind).states(first))}

            out.append((f"views_{kind}", adapters.get(kind, kind), views))

        def projections() -> dict[str, Any]:
            return {"lag": projection_lags(hub)}

        out.append(("projections", "in-process", projections))
    return out


def readiness(hub: Hub) -> dict[str, Any]:
    """``{"ready": bool, "components": [{component, adapter, ok, ms, reason?, ...}]}``."""
    components = []
    for component, adapter, check in _checks(hub):
        started = time.perf_counter()
        entry: dict[str, Any] = {"component": component, "adapter": adapter}
        try:
            details = check()
            entry["ok"] = True
            if details:
                entry.update(details)
        except Exception as exc:  # a check must report, never raise
            entry["ok"] = False
            entry["reason"] = redact(f"{type(exc).__name__}: {exc}")[:300]
            # GET /ready says only that it failed; the reason is for operators (here and in
            # GET /ready/details, which the policy engine must be up to allow)
            log.warning("readiness: %s (%s) failed: %s", component, adapter, entry["reason"])
        entry["ms"] = round((time.perf_counter() - started) * 1000, 1)
        components.append(entry)
    return {"ready": all(c["ok"] for c in components), "components": components}


class ReadinessCache:
    """The last readiness report, reused for ``READY_CACHE_S`` (probes and scrapes share it)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._lock = threading.Lock()
        self._at = 0.0
        self._report: dict[str, Any] | None = None

    def get(self) -> dict[str, Any]:
        with self._lock:
            if self._report is None or time.monotonic() - self._at > READY_CACHE_S:
                self._report = readiness(self.hub)
                self._at = time.monotonic()
            return self._report


# -- figures read at scrape time -----------------------------------------------------------------
def ledger_figures(hub: Hub) -> tuple[int, float | None, int]:
    """(tree size, seconds since the latest signed checkpoint or None, records not yet covered)."""
    store = hub.ledger.store
    size = store.tree_size()
    latest = store.latest_checkpoint()
    age = None if latest is None else max(0.0, time.time() - latest.time_us / 1e6)
    positions = store.positions()
    pending = 0
    for topic in hub.log.topics():
        for partition, end in hub.log.end_offsets(topic.name).items():
            pending += max(0, end - positions.get((topic.name, partition), 0))
    return size, age, pending


def projection_lags(hub: Hub) -> dict[str, int]:
    if hub.projections is None:
        return {}
    from projections.catalog import PROJECTIONS

    return {p.name: hub.projections.runner(p.name).lag() for p in PROJECTIONS}


class HubCollector(Collector):
    """Gauges computed on each scrape; a failing source is logged and left out, never raised."""

    def __init__(self, hub: Hub, ready: ReadinessCache) -> None:
        self.hub = hub
        self.ready = ready

    def collect(self) -> Iterator[GaugeMetricFamily]:
        component = GaugeMetricFamily(
            "hub_component_ready",
            "1 when the component answered its readiness check (GET /ready), else 0.",
            labels=["component", "adapter"],
        )
        for c in self.ready.get()["components"]:
            component.add_metric([c["component"], c["adapter"]], 1.0 if c["ok"] else 0.0)
        yield component
        yield from self._leader()
        try:
            size, age, pending = ledger_figures(self.hub)
        except Exception:
            log.exception("ledger figures for /metrics failed")
        else:
            yield GaugeMetricFamily("hub_ledger_tree_size", "Leaves on the ledger.", value=size)
            yield GaugeMetricFamily(
                "hub_ledger_pending_records",
                "Records in the log that have no ledger leaf yet.",
                value=pending,
            )
            if age is not None:
                yield GaugeMetricFamily(
                    "hub_ledger_checkpoint_age_seconds",
                    "Seconds since the latest signed checkpoint.",
                    value=age,
                )
        if self.hub.settings.projection_engine == "flink":
            try:
                from hub.flink_metrics import flink_gauges

                yield from list(flink_gauges(self.hub))
            except Exception:
                log.exception("Flink figures for /metrics failed")

    def _leader(self) -> Iterator[GaugeMetricFamily]:
        """``hub_leader{name}``: 1 while this process runs the single-writer parts (always, in a
        hub without leader election), else 0; ``hub_leader_epoch{name}``: the lease's current
        epoch as PostgreSQL holds it (it grows by one per failover; absent while no one holds
        the lease or the store does not answer)."""
        from hub.ha import role

        now = role(self.hub)
        name = now["lease"] or self.hub.settings.leader_name
        leading = GaugeMetricFamily(
            "hub_leader",
            "1 when this process is the leader (runs the single-writer parts), else 0.",
            labels=["name"],
        )
        leading.add_metric([name], 0.0 if now["role"] == "follower" else 1.0)
        yield leading
        leader = self.hub.leader
        if leader is None:
            return
        try:
            held = leader.leadership.current()
        except Exception:
            log.exception("the leader lease for /metrics failed")
            held = None
        epoch = held.epoch if held is not None else now["epoch"]
        if epoch is not None:
            gauge = GaugeMetricFamily(
                "hub_leader_epoch", "The leader lease's current epoch.", labels=["name"]
            )
            gauge.add_metric([name], float(epoch))
            yield gauge

    def refresh(self) -> None:
        """Set each projection's lag gauge (hub_projection_lag_records), also in a process that
        runs no projection (the API pods): the gauge is otherwise set only by a running runner."""
        try:
            lags = projection_lags(self.hub)
        except Exception:
            log.exception("projection lags for /metrics failed")
            return
        for name, value in lags.items():
            self.hub.metrics.projection_lag.labels(name).set(value)


# -- the scrape credential -----------------------------------------------------------------------
class ScrapeToken:
    """The token in ``HUB_METRICS_TOKEN_FILE``, re-read when the file changes (rotation)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._token = b""
        self.read()

    def read(self) -> bytes:
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp != self._stamp:
                token = self.path.read_text(encoding="utf-8").strip()
                if len(token) < MIN_TOKEN_CHARS or ":" in token:
                    raise ConfigError(
                        f"HUB_METRICS_TOKEN_FILE={self.path} holds {len(token)} characters; a "
                        f"scrape token is at least {MIN_TOKEN_CHARS} characters without ':' "
                        "(e.g. `openssl rand -hex 32 > FILE`)."
                    )
                self._token, self._stamp = token.encode(), stamp
        except OSError as exc:
            raise ConfigError(
                f"HUB_METRICS_TOKEN_FILE={self.path} cannot be read ({exc.strerror}); create it "
                "with `openssl rand -hex 32 > FILE` or unset the setting."
            ) from exc
        return self._token

    def matches(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return False
        try:
            token = self.read()
        except ConfigError as exc:
            log.error("%s", exc.message)
            return False
        return hmac.compare_digest(value.strip().encode(), token)


# -- the outermost middleware ------------------------------------------------------------------
class RouteMetricsMiddleware:
    """Counts each request and times it by method, route template and status
    (``hub_http_requests_total``, ``hub_http_request_seconds``), and leaves the route template in
    ``scope["state"]`` for the access log (``ObservabilityMiddleware``, outside this one).

    Plain ASGI: Starlette's ``BaseHTTPMiddleware`` (``@app.middleware("http")``) runs the rest of
    the stack in a task of its own with a memory stream for the body, a cost paid by every
    request (measured: about a sixth of a served schema read's CPU)."""

    def __init__(self, app: ASGIApp, hub: Hub) -> None:
        self.app = app
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, send_status)
        # The router put the matched route into this same scope (Starlette updates it in place).
        path = route_template(scope)
        scope.setdefault("state", {})["route"] = path
        metrics = self.hub.metrics
        method = scope["method"] if scope["method"] in METHODS else "other"
        metrics.http_requests.labels(method, path, str(status)).inc()
        metrics.http_seconds.labels(method, path).observe(time.perf_counter() - started)


class ObservabilityMiddleware:
    """Request ids, the access log and token scrapes of ``/metrics`` (see the module docstring)."""

    def __init__(self, app: ASGIApp, hub: Hub, scrape: ScrapeToken | None) -> None:
        self.app = app
        self.hub = hub
        self.scrape = scrape

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tr = tracing.tracer()
        if tr is None:
            await self._serve(scope, receive, send, None)
            return
        parent = tracing.parse_traceparent(
            dict(scope.get("headers", ())).get(b"traceparent", b"").decode("latin-1")
        )
        context = trace.set_span_in_context(NonRecordingSpan(parent)) if parent else None
        with tr.start_as_current_span(
            f"HTTP {scope['method']}",
            context=context,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": scope["method"],
                "hub.path.digest": path_digest(scope["path"]),
            },
        ) as span:
            await self._serve(scope, receive, send, span)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, span: Span | None) -> None:
        headers = dict(scope.get("headers", ()))
        rid = request_id_of(headers)
        token = request_id.set(rid)
        started = time.perf_counter()
        status = {"code": 500, "bytes": 0}
        scraped = False

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            elif message["type"] == "http.response.body":
                status["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            scraped = (
                self.scrape is not None
                and scope["method"] == "GET"
                and scope["path"] == "/metrics"
                and self.scrape.matches(headers.get(b"authorization", b"").decode("latin-1"))
            )
            if scraped:  # answered here, never routed: its route named for the log and span
                scope.setdefault("state", {})["route"] = "/metrics"
                await self._metrics(send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            if span is not None:
                route = route_template(scope)
                span.update_name(f"HTTP {scope['method']} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status["code"])
                span.set_attribute("http.request.id", rid)
                if status["code"] >= 500:
                    span.set_status(StatusCode.ERROR)
            log_access(scope, headers, status["code"], status["bytes"], started, scraped=scraped)
            request_id.reset(token)

    async def _metrics(self, send: Send) -> None:
        body = self.hub.metrics.render()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def request_id_of(headers: dict[bytes, bytes]) -> str:
    """The request's id: a sane incoming ``X-Request-Id``, else a new one. An incoming id that
    carries a credential is not kept (it would be logged)."""
    incoming = headers.get(b"x-request-id", b"").decode("latin-1")
    sane = _REQUEST_ID.match(incoming) and redact(incoming) == incoming
    return incoming if sane else uuid.uuid4().hex


def log_access(
    scope: Scope,
    headers: dict[bytes, bytes],
    code: int,
    nbytes: int,
    started: float,
    *,
    scraped: bool = False,
) -> None:
    """One access line (ECS fields, ``event.dataset: hub.access``) for a served request, built
    only when ``hub.access`` logs at INFO."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    state = scope.get("state", {})
    principal = state.get("principal")
    client = scope.get("client") or ("", 0)
    fields: dict[str, Any] = {
        "event.kind": "event",
        "event.category": ["web"],
        "event.type": ["access"],
        "event.dataset": "hub.access",
        "event.outcome": "success" if code < 400 else "failure",
        "event.duration": int((time.perf_counter() - started) * 1e9),
        "http.request.method": scope["method"],
        "http.response.status_code": code,
        "http.response.body.bytes": nbytes,
        "client.ip": client[0],
        "hub.route": route_template(scope),
        "hub.path.digest": path_digest(scope["path"]),
    }
    traced = tracing.ids()
    if traced is not None:
        fields["trace.id"], fields["span.id"] = traced
    agent = headers.get(b"user-agent")
    if agent:
        fields["user_agent.original"] = agent.decode("latin-1")[:256]
    if principal is not None:
        fields["user.id"] = principal.id
    elif scraped:
        fields["user.name"] = "metrics-scraper"
    access_log.info("%s %s %d", scope["method"], fields["hub.route"], code, extra=fields)
