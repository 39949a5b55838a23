"""The hub's one HTTP application: health, metrics, topics, events, keys and the Schema Registry.

Every path but ``GET /health`` is authenticated (``AuthMiddleware``); every route that reads or
changes data declares its action and is decided by the PolicyEngine port (``authorize``).
Errors answer ``{"error_code": <int>, "reason": <stable code>, "message": <sentence>}``.
"""

from __future__ import annotations

import html
import json
import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from core.errors import (
    BodyBudgetFull,
    Forbidden,
    HubError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    VerifyRunning,
    is_storage_full,
    storage_full,
)
from core.events import (
    KEY_FIELD_CONFIG,
    OWNER_CONFIG,
    STRATEGY_CONFIG,
    OutgoingEvent,
    is_internal_topic,
    refuse_internal,
)
from core.ports.policy import Principal
from core.roles import ROLES
from core.sqlguard_limits import QueryLimited
from core.tenant_quota import TenantRateLimited
from governance.apikeys import parse_duration
from governance.enrolment import TENANT_PATTERN, EnrolmentTicket
from hub.api.auth import AuthMiddleware, KeyChecks
from hub.api.bodylimit import (
    RETRY_AFTER_S,
    BodyBudget,
    BodyLimitMiddleware,
    TenantShareMiddleware,
    TenantShares,
)
from hub.api.deps import (
    MAX_INT64,
    MAX_JSON_DEPTH,
    MAX_PARTITION,
    authorize,
    authorize_hub_wide,
    count_decision,
    decision_context,
    hub_of,
    read_json,
    route_actions,
    route_of,
)
from hub.api.headers import ApiHeadersMiddleware
from hub.api.hosts import AllowedHostsMiddleware
from hub.api.models import (
    ERROR_STATUSES,
    RAW_BODY_MODELS,
    REGISTRY_ERROR_STATUSES,
    EnrolmentTicketOut,
    ErrorBody,
    Health,
    KeyIssued,
    Liveness,
    Published,
    PublishIn,
    Readiness,
    ReadyStatus,
    Records,
    TopicCreated,
    TopicOut,
    WhoAmI,
    json_body,
    text,
)
from hub.api.registry_fast import RegistryFastPath
from hub.bootstrap import Hub
from hub.observability import (
    HubCollector,
    ObservabilityMiddleware,
    ReadinessCache,
    RouteMetricsMiddleware,
    ScrapeToken,
)
from ingest.parquet_pool import DecodersBusy

router = APIRouter()
log = logging.getLogger("hub.api")


def error_body(exc: HubError) -> dict[str, Any]:
    return {
        "error_code": exc.http_status * 100 + 1 if exc.http_status < 600 else 50001,
        "reason": exc.code,
        "message": exc.message,
    }


# -- health and metrics ---------------------------------------------------------------------
@router.get("/health", tags=["ops"], response_model=Liveness)
def health(request: Request) -> dict[str, Any]:
    """Liveness, answered without a key (a probe cannot send one): the process serves
    requests, and its role under leader election. Calls no component (a liveness probe must
    not restart the hub because Kafka is down: that is /ready). Only that: the process's id in
    the lease (``hostname:pid``), its epoch and its adapters tell an anonymous caller which
    host runs which technology; ``GET /health/details`` gives them to an operator."""
    from hub.ha import role

    return {"status": "ok", "leader": {"role": role(hub_of(request))["role"]}}


@router.get("/health/details", tags=["ops"], response_model=Health)
def health_details(
    request: Request, _: Principal = Depends(authorize_hub_wide("metrics.read", "metrics"))
) -> dict[str, Any]:
    """``GET /health`` with each component's adapter and the process's place in leader
    election (lease, ``holder``: this process's id, epoch); calls no component. Decided as
    ``GET /ready/details``: ``metrics.read`` as the hub's own tenant's (``HUB_TENANT``)."""
    from hub.ha import role

    hub = hub_of(request)
    s = hub.settings
    return {
        "status": "ok",
        "leader": role(hub),
        "event_log": s.event_log,
        "adapters": {
            "event_log": s.event_log,
            "policy": s.policy_engine,
            "keystore": s.keystore,
            "views_analytics": s.views_analytics,
            "views_transactional": "postgresql"
            if s.views_sql_url.startswith("postgres")
            else "sqlite",
            "ledger": hub.ledger.store.kind,  # a folder keeps the ledger it has
        },
    }


@router.get(
    "/ready",
    tags=["ops"],
    response_model=ReadyStatus,
    responses={503: {"model": ReadyStatus, "description": "a component failed its check"}},
)
def ready(request: Request) -> JSONResponse:
    """Readiness, answered without a key (a probe cannot send one): ``{"ready": true}``, or
    ``false`` with 503 when a component did not answer its check. Only that: which components
    and adapters the hub runs on (``kafka``, ``opa``, ``vault``, ``postgresql``), which one
    failed and why, and their figures tell an anonymous caller what to attack;
    ``GET /ready/details`` gives them to an operator, and a failed check is logged."""
    report = request.app.state.readiness.get()
    return JSONResponse({"ready": report["ready"]}, status_code=200 if report["ready"] else 503)


@router.get(
    "/ready/details",
    tags=["ops"],
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "a component failed its check"}},
)
def ready_details(
    request: Request, _: Principal = Depends(authorize_hub_wide("metrics.read", "metrics"))
) -> JSONResponse:
    """``GET /ready`` with each component's figures (topics, tree size, pending records, lags)
    and the reason of a failed check (hub.observability.readiness). The figures count every
    tenant's records: ``metrics.read`` decided as the hub's own tenant's (``HUB_TENANT``), so
    another tenant's key also needs ``tenant.all``."""
    report = request.app.state.readiness.get()
    return JSONResponse(report, status_code=200 if report["ready"] else 503)


@router.get("/metrics", tags=["ops"], response_class=Response, responses=text())
def metrics(
    request: Request, _: Principal = Depends(authorize_hub_wide("metrics.read", "metrics"))
) -> Response:
    """The process's Prometheus metrics. Their labels are topics, routes and projections, not
    tenants: every figure counts every tenant's traffic, so ``metrics.read`` is decided as the
    hub's own tenant's (``HUB_TENANT``): its operators' keys read them, another tenant's key
    needs ``tenant.all`` too (that tenant's officer sees its own figures in
    ``GET /v1/quality/stats``). Prometheus scrapes with the token of ``HUB_METRICS_TOKEN_FILE``
    (``hub.observability``), no key."""
    return Response(hub_of(request).metrics.render(), media_type="text/plain; version=0.0.4")


# -- topics and events ----------------------------------------------------------------------
class TopicCreate(BaseModel):
    name: str
    partitions: int = Field(default=3, ge=1, le=1024)
    subject_strategy: str = Field(default="topic", pattern="^(topic|record|topic_record)$")
    key_field: str | None = None
    # the owning tenant (default: the creator's): only it creates the topic's subjects
    tenant: str | None = None


@router.get("/v1/topics", tags=["topics"], response_model=list[TopicOut])
def list_topics(
    request: Request, who: Principal = Depends(authorize("topic.read"))
) -> list[dict[str, Any]]:
    """The topics; ``end_offsets`` only to a reader allowed ``tenant.all`` on ``topics``: tenants
    share topics, so a topic's end offset counts every tenant's records, and a tenant's reader
    polling it would learn another tenant's volume. Anyone else gets ``{}`` (counting its own
    tenant's records would read the whole topic)."""
    from hub.reports import reader_scope

    hub = hub_of(request)
    row_filter = request.state.decision.row_filter
    scoped = reader_scope(hub, who, row_filter, decision_context(request), "topics") is not None
    out = []
    for t in hub.log.topics():
        ends = {} if scoped else hub.log.end_offsets(t.name)
        out.append(
            {
                "name": t.name,
                "partitions": t.partitions,
                "config": dict(t.config),
                "end_offsets": {str(p): o for p, o in ends.items()},
            }
        )
    return out


@router.post("/v1/topics", tags=["topics"], status_code=201, response_model=TopicCreated)
def create_topic(
    body: TopicCreate, request: Request, who: Principal = Depends(authorize("topic.create"))
) -> dict[str, Any]:
    """Create a topic owned by ``tenant`` (default: the creator's tenant; another tenant's is
    decided again as that tenant's): only its owner creates its ``<topic>-value`` / ``-key``
    subjects (``hub.registry_scope``); the hub's own tenant's topics are shared."""
    refuse_internal(body.name)  # hub.* and _-prefixed names are reserved for the hub's services
    owner = who.tenant if body.tenant is None else body.tenant
    if not TENANT_PATTERN.fullmatch(owner):
        raise InvalidInput(
            f"Tenant {owner!r} is not a valid tenant name: use 1-128 ASCII letters, digits "
            "and . _ @ + - (starting with a letter or digit), e.g. acme.",
            code="invalid_tenant",
        )
    hub = hub_of(request)
    if owner != who.tenant:
        context = {**decision_context(request), "tenant": owner}
        decision = hub.policy.decide(who, "topic.create", "topics", context)
        count_decision(hub, route_of(request), "topic.create", decision)
    config = {STRATEGY_CONFIG: body.subject_strategy, OWNER_CONFIG: owner}
    if body.key_field:
        config[KEY_FIELD_CONFIG] = body.key_field
    info = hub.log.create_topic(body.name, body.partitions, config)
    return {"name": info.name, "partitions": info.partitions, "config": dict(info.config)}


@router.post(
    "/v1/topics/{topic}/events",
    tags=["events"],
    status_code=201,
    response_model=Published,
    openapi_extra=json_body(PublishIn),
)
async def publish(
    topic: str, request: Request, principal: Principal = Depends(authorize("event.publish"))
) -> dict[str, Any]:
    """Publish a batch of JSON events, all-or-nothing.

    Body: ``{"events": [{"value": {...}, "event_type": "...", "key": "...", "event_id": "...",
    "occurred_at": "...", "correlation_id": "...", "causation_id": "..."}]}``.
    """
    hub = hub_of(request)
    hub.ingest.rates.check(principal.tenant, 1, 1)  # an empty bucket: refused before the parse
    payload = await read_json(request)  # a repeated member name: 422 duplicate_key
    items = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not items:
        raise InvalidInput(
            'Body must be {"events": [ ... ]} with at least one event.', code="invalid_batch"
        )
    events = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("value"), dict):
            raise InvalidInput(
                f'Event {i} must be an object with a "value" object.', code="invalid_batch"
            )
        allowed = {
            "value",
            "event_type",
            "key",
            "event_id",
            "occurred_at",
            "correlation_id",
            "causation_id",
            "headers",
        }
        unknown = set(item) - allowed
        if unknown:
            raise InvalidInput(
                f"Event {i} has unknown member(s) {', '.join(sorted(unknown))}.",
                code="invalid_batch",
            )
        _check_event_members(item, i)
        events.append(
            OutgoingEvent(
                value=item["value"],
                event_type=item.get("event_type"),
                key=None if item.get("key") is None else str(item["key"]),
                event_id=item.get("event_id"),
                occurred_at=item.get("occurred_at"),
                correlation_id=item.get("correlation_id") or "",
                causation_id=item.get("causation_id") or "",
                headers={str(k): str(v) for k, v in (item.get("headers") or {}).items()},
            )
        )
    # The tenant's ingest rate and storage quota (core.tenant_quota) cover this route too: the
    # batch whole, its bytes the request body's (the records are encoded inside the publisher:
    # the body stands for their values; the fold at the next start counts the values).
    rates, stored = hub.ingest.rates, hub.ingest.stored_quota
    nbytes = len(await request.body()) if rates.on or stored.on else 0

    def write() -> dict[str, Any]:
        """Written in the thread pool (as ``/v1/ingest``): on the event loop, one batch being
        written held every other request of the process, any tenant's, ``/health`` too. The
        settling runs in the same thread, so a client gone mid-write never undoes it."""
        tenant = principal.tenant
        rates.take(tenant, len(events), nbytes)  # seen by concurrent requests' checks
        try:
            stored.reserve(tenant, nbytes)  # counted by concurrent requests' checks
        except BaseException:
            rates.refund(tenant, len(events), nbytes)
            raise
        try:
            meta = hub.publisher.publish(
                topic, events, producer=principal.id, tenant=tenant, origin="external"
            )
        except BaseException:
            stored.settle(tenant, nbytes, written=False)
            rates.refund(tenant, len(events), nbytes)
            raise
        stored.settle(tenant, nbytes, written=True)
        return {
            "topic": topic,
            "count": len(meta),
            "offsets": [{"partition": m.partition, "offset": m.offset} for m in meta],
            "ledger": hub.ledger.cover(meta),  # on the ledger before the acknowledgement
        }

    return await run_in_threadpool(write)


def _check_event_members(item: dict[str, Any], i: int) -> None:
    """Event members other than ``value`` are strings (``key`` may be a number), or null."""
    for name in ("event_type", "event_id", "occurred_at", "correlation_id", "causation_id"):
        if item.get(name) is not None and not isinstance(item[name], str):
            raise InvalidInput(
                f'Event {i}: "{name}" must be a string or null, not {type(item[name]).__name__}.',
                code="invalid_batch",
            )
    headers = item.get("headers")
    if headers is not None and not isinstance(headers, dict):
        raise InvalidInput(
            f'Event {i}: "headers" must be an object of strings, not {type(headers).__name__}.',
            code="invalid_batch",
        )
    if isinstance(item.get("key"), (dict, list)):
        raise InvalidInput(f'Event {i}: "key" must be a string.', code="invalid_batch")


@router.get("/v1/topics/{topic}/events", tags=["events"], response_model=Records)
def read_events(
    topic: str,
    request: Request,
    partition: int = Query(0, ge=0, le=MAX_PARTITION),
    offset: int = Query(0, ge=0, le=MAX_INT64),
    limit: int = Query(100, ge=1, le=10_000),
    principal: Principal = Depends(authorize("event.read")),
) -> dict[str, Any]:
    """Records decoded with their schemas. The decision's obligations apply: ``mask`` hides PII
    fields (``***``, never decrypted), ``row_filter`` keeps only the principal's tenant.
    Internal topics need ``internal.read`` too; key hashes are never served."""
    hub = hub_of(request)
    decision = request.state.decision
    if is_internal_topic(topic):
        internal = hub.policy.decide(principal, "internal.read", request.url.path, {})
        if not internal.allow:
            raise Forbidden(
                f"Topic {topic!r} is internal: reading it needs the internal.read permission "
                f"({internal.reason}).",
                code="internal_topic",
            )
    tenant = decision.row_filter.get("tenant") if decision.row_filter else None
    if tenant is not None:  # a tenant's reader of a shared topic: positions, not offsets
        return _read_positions(hub, topic, partition, offset, limit, decision, tenant)
    records, next_offset = hub.reader.read_visible(topic, partition, offset, limit, decision)
    return {"topic": topic, "partition": partition, "next_offset": next_offset, "records": records}


def _read_positions(
    hub: Hub, topic: str, partition: int, position: int, limit: int, decision: Any, tenant: str
) -> dict[str, Any]:
    """``read_events`` for a reader the decision limits to ``tenant`` (``hub.api.positions``):
    the page filled with its own records, each record's ``offset`` and ``next_offset`` given
    as its tenant's positions, ``offset=`` read as one."""
    from hub.api.positions import codec_of, read_filled

    codec = codec_of(hub)
    start = codec.decode(tenant, topic, partition, position)
    pairs, after = read_filled(
        lambda at, n: hub.log.read(topic, partition, at, n),
        lambda rec: hub.reader.visible(rec, decision),
        start,
        limit,
        budget=max(10_000, 10 * limit),
    )
    encode = codec.encoder(tenant, topic, partition)
    records = [{**r, "offset": encode(o)} for o, r in pairs]
    return {
        "topic": topic,
        "partition": partition,
        "next_offset": encode(after),
        "records": records,
    }


# -- keys -----------------------------------------------------------------------------------
class KeyCreate(BaseModel):
    roles: list[str] = Field(min_length=1)
    owner: str | None = Field(default=None, description="The person the key belongs to.")
    principal: str | None = Field(default=None, description="Former name of owner.")
    tenant: str | None = None
    description: str = ""
    expires_at: datetime | None = None
    expires_in: str | None = Field(default=None, description="e.g. 3600, 12h, 30d")


@router.post(
    "/v1/keys",
    tags=["keys"],
    status_code=201,
    response_model=KeyIssued | EnrolmentTicketOut,
)
def create_key(
    body: KeyCreate, request: Request, principal: Principal = Depends(authorize("keys.create"))
) -> dict[str, Any]:
    """Issue a key under the issuance rules of ``governance.apikeys`` (403 naming the rule); for
    a role that may approve, an enrolment token instead (``governance.enrolment``)."""
    expires = body.expires_at
    if expires is not None and expires.tzinfo is None:
        raise InvalidInput("expires_at needs a time zone (e.g. 2027-01-01T00:00:00Z).")
    if body.expires_in:
        expires = datetime.now(UTC) + parse_duration(body.expires_in)
    issued = hub_of(request).keys.issue(
        principal,
        body.roles,
        owner=body.owner or body.principal,
        tenant=body.tenant,
        description=body.description,
        expires_at=expires,
    )
    if isinstance(issued, EnrolmentTicket):
        return issued.public()
    return {
        "key_id": issued.key_id,
        "token": issued.token,
        "owner": issued.owner,
        "roles": sorted(set(body.roles)),
    }


@router.get("/v1/whoami", tags=["keys"], response_model=WhoAmI)
def whoami(request: Request, principal: Principal = Depends(authorize("schema.read"))) -> Any:
    return {
        "principal": principal.id,
        "roles": sorted(principal.roles),
        "tenant": principal.tenant,
        "known_roles": list(ROLES),
    }


_HTTP_REASONS = {404: "route_not_found", 405: "method_not_allowed", 400: "malformed_request"}


def request_problem(exc: RequestValidationError) -> InvalidInput:
    """FastAPI's validation errors as one sentence naming each parameter and the problem."""
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()
    )
    return InvalidInput(f"The request is invalid: {problems}.", code="invalid_request")


def _router_modules() -> list[Any]:
    import importlib
    import pkgutil

    import hub.api.routers as pkg

    return [
        importlib.import_module(f"hub.api.routers.{m.name}")
        for m in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name)
    ]


# Swagger UI for /docs, pinned with Subresource Integrity: the page runs in the hub's origin,
# where the browser holds the credentials it prompted for, so a changed file on the CDN (or a
# floating version moving) must not run there. Hashes of swagger-ui-dist 5.35.0 as published on
# npm (the tarball npm verified), which jsDelivr's /npm/ path serves byte for byte.
SWAGGER_UI = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.35.0"
SWAGGER_JS_SRI = "sha384-gjRm0bEPMeTmMh5jT2cHccIwCUZSTd8YC+j0d0sXw0MdGEfScduGpSyF3ZSSLkX9"
SWAGGER_CSS_SRI = "sha384-WlYgdmXYOOBWL5apwjDEZwN+U3HmXSSu5R6V5aGxEcf7z+KuRNwBhoxKVN1i3D5I"


def swagger_ui_html(openapi_url: str, title: str) -> str:
    """The /docs page: FastAPI's, but with the assets pinned and integrity-checked (FastAPI's
    helper takes no integrity attribute) and nothing else loaded from outside."""
    config = json.dumps({"url": openapi_url, "dom_id": "#swagger-ui"})
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<link rel="stylesheet" href="{SWAGGER_UI}/swagger-ui.css" integrity="{SWAGGER_CSS_SRI}"
 crossorigin="anonymous" referrerpolicy="no-referrer">
</head><body><div id="swagger-ui"></div>
<script src="{SWAGGER_UI}/swagger-ui-bundle.js" integrity="{SWAGGER_JS_SRI}"
 crossorigin="anonymous" referrerpolicy="no-referrer"></script>
<script>SwaggerUIBundle(Object.assign({config}, {{presets: [SwaggerUIBundle.presets.apis]}}));
</script></body></html>"""


def create_app(hub: Hub) -> FastAPI:
    """The ASGI app for one hub. Routes decide access through ``hub.policy``."""
    app = FastAPI(
        title="hub",
        version="0.1.0",
        description="Event-sourced, compliance-grade data hub: events, schemas, audit.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.hub = hub
    app.state.ledger_verify_gate = threading.Lock()  # one verification at a time (ledger)

    @app.exception_handler(HubError)
    async def _hub_error(request: Request, exc: HubError) -> JSONResponse:
        # A body refused mid-stream by the in-flight budget (hub.api.bodylimit): come back.
        busy = isinstance(exc, BodyBudgetFull | VerifyRunning | DecodersBusy)
        retry = {"Retry-After": str(RETRY_AFTER_S)} if busy else None
        if isinstance(exc, QueryLimited | TenantRateLimited):  # a rate limit: come back later
            retry = {"Retry-After": str(exc.retry_after)}
        return JSONResponse(error_body(exc), status_code=exc.http_status, headers=retry)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body(request_problem(exc)), status_code=422)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        status = exc.status_code
        body = {"error_code": status * 100 + 1, "reason": _HTTP_REASONS.get(status, "http_error")}
        body["message"] = f"{exc.detail}: {request.method} {request.url.path}."
        if isinstance(exc.__cause__, PayloadTooLarge):  # hub.api.bodylimit, in FastAPI's parse
            return JSONResponse(error_body(exc.__cause__), status_code=413)
        if isinstance(exc.__cause__, BodyBudgetFull):  # the same, over the in-flight budget
            return JSONResponse(
                error_body(exc.__cause__),
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        if isinstance(exc.__cause__, RecursionError):  # FastAPI's own parse of a model body
            status, body = (
                422,
                error_body(
                    InvalidInput(
                        f"Request body nests arrays or objects deeper than {MAX_JSON_DEPTH} "
                        "levels: flatten it.",
                        code="malformed_json",
                    )
                ),
            )
        return JSONResponse(body, status_code=status, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        # Not a way to hide failures: every 5xx is a bug to fix. It is logged with its
        # traceback, and the client gets the error shape instead of a bare text page.
        if isinstance(exc, ClientDisconnect):
            # The client hung up before its body arrived: nothing failed here, and no answer
            # can reach it. Logged as what it is, not as a bug.
            log.info("client disconnected", extra={"hub.route": route_of(request)})
            return JSONResponse({}, status_code=499)
        if is_storage_full(exc):  # a write no adapter translated found the disk full
            log.error(
                "disk full serving %s", route_of(request), extra={"hub.route": route_of(request)}
            )
            full = storage_full(
                f"The hub could not write while serving {request.method} {request.url.path} "
                f"({type(exc).__name__}: {exc})."
            )
            return JSONResponse(error_body(full), status_code=full.http_status)
        log.exception("unexpected failure", extra={"hub.route": route_of(request)})
        body = {
            "error_code": 50001,
            "reason": "internal_error",
            "message": f"The hub failed unexpectedly ({type(exc).__name__}) serving "
            f"{request.method} {request.url.path}: this is a bug; report it with the time.",
        }
        return JSONResponse(body, status_code=500)

    app.add_middleware(RouteMetricsMiddleware, hub=hub)  # innermost: route, status, time

    @app.get("/docs", include_in_schema=False)
    def _docs(_: Principal = Depends(authorize("api.docs"))) -> HTMLResponse:
        if not hub.settings.api_docs:
            raise NotFound(
                "The API docs page is off (it loads Swagger UI from a CDN into the hub's origin): "
                "read GET /openapi.json, or set HUB_API_DOCS=true to serve it."
            )
        return HTMLResponse(swagger_ui_html("/openapi.json", "hub API"))

    from hub.api.routers import registry as registry_api

    errors: dict[int | str, dict[str, Any]] = {s: {"model": ErrorBody} for s in ERROR_STATUSES}
    registry_errors: dict[int | str, dict[str, Any]] = {
        s: {"model": ErrorBody} for s in REGISTRY_ERROR_STATUSES
    }
    # AuthMiddleware answers 401 before any route, as application/json
    registry_errors[401] = {
        "model": ErrorBody,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    for each in [router, *(m.router for m in _router_modules())]:
        declare_actions(each)
        app.include_router(each, responses=dict(errors))
    declare_actions(registry_api.router)
    app.include_router(registry_api.router, responses=dict(registry_errors))
    registry_api.install_lean_routes(app)  # the hot reads, ahead of their FastAPI twins
    _declare_raw_bodies(app)
    from hub.console import install as install_console

    install_console(app)  # the web console under /ui (session cookies, see hub.console.gate)
    # Inside authentication: each tenant's bodies (and unauthenticated ones) to a share of the
    # in-flight budget, so no one tenant holds all of it (hub.api.bodylimit).
    app.add_middleware(
        TenantShareMiddleware,
        limit=hub.settings.max_request_bytes,
        shares=TenantShares(
            hub.settings.max_request_bytes_in_flight, hub.settings.max_request_bytes, hub.metrics
        ),
    )
    checks = KeyChecks(hub)  # one batcher of key checks for both layers that verify keys
    app.add_middleware(AuthMiddleware, hub=hub, checks=checks)
    # Outermost: request ids, the access log, token scrapes of /metrics (hub.observability).
    readiness = ReadinessCache(hub)
    app.state.readiness = readiness
    hub.metrics.watch(HubCollector(hub, readiness))
    token = hub.settings.metrics_token_file
    app.add_middleware(
        ObservabilityMiddleware, hub=hub, scrape=ScrapeToken(token) if token else None
    )
    # Outside even that: the registry's schema-by-id reads, answered without FastAPI's stack
    # (the same steps, in the same order: hub.api.registry_fast).
    app.add_middleware(RegistryFastPath, hub=hub, checks=checks)
    # Outermost: no body over HUB_MAX_REQUEST_BYTES is read by anything (hub.api.bodylimit).
    # It also holds all bodies together to HUB_MAX_REQUEST_BYTES_IN_FLIGHT (503 past it), and
    # each body to HUB_REQUEST_BODY_TIMEOUT_S (+ 1 s per HUB_REQUEST_BODY_MIN_RATE bytes; 408).
    app.add_middleware(
        BodyLimitMiddleware,
        limit=hub.settings.max_request_bytes,
        budget=BodyBudget(hub.settings.max_request_bytes_in_flight, hub.metrics),
        timeout_s=hub.settings.request_body_timeout_s,
        min_rate=hub.settings.request_body_min_rate,
    )
    # Outside all but the headers: a Host not on HUB_ALLOWED_HOSTS is refused (hub.api.hosts).
    if hub.settings.allowed_hosts:
        app.add_middleware(AllowedHostsMiddleware, allowed=hub.settings.allowed_hosts)
    # Outside everything: security headers and no caching on every answer but the console's
    # (its gate sets its own), refusals included (hub.api.headers).
    app.add_middleware(ApiHeadersMiddleware)
    warm_routes(app.router.routes)
    return app


def warm_routes(routes: Sequence[Any]) -> None:
    """Build every included router's route contexts now rather than on the first request.

    FastAPI (0.165) builds them lazily, per included router, on the first request that reaches
    it (pydantic adapters for every route: ~2 s of CPU under load on the first full-stack
    request). An included router is recognised by its ``effective_candidates`` method (the
    class is private); nested ones are warmed in turn."""
    for route in routes:
        build = getattr(route, "effective_candidates", None)
        if callable(build):
            warm_routes(build())
            low = getattr(route, "effective_low_priority_routes", None)
            if callable(low):
                low()


def _declare_raw_bodies(app: FastAPI) -> None:
    """Put the models of bodies that routes read themselves (``hub.api.models.json_body``) into
    the document's components, where their ``$ref`` points."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = generate()
            _, top = models_json_schema(
                [(m, "validation") for m in RAW_BODY_MODELS],
                ref_template="#/components/schemas/{model}",
            )
            doc.setdefault("components", {}).setdefault("schemas", {}).update(top["$defs"])
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def declare_actions(api_router: APIRouter) -> None:
    """State each route's policy actions in the OpenAPI document (``x-hub-actions``), read from
    its ``authorize`` dependencies, so the document itself says what each route needs (the
    route-by-role matrix test is generated from it, and fails for a route that declares none)."""
    for route in api_router.routes:
        if isinstance(route, APIRoute):
            extra = dict(route.openapi_extra or {})
            extra["x-hub-actions"] = route_actions(route.dependant)
            route.openapi_extra = extra
