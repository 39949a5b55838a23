"""Projection routes: status, rebuild, time travel, provable rows, and the analysts' query API.

Installing this router also installs a lifespan hook: the app follows every projection in the
background while it serves (``HUB_PROJECTION_AUTOSTART``), and stops the runners on shutdown;
with several processes (``HUB_LEADER_ELECTION``) only the elected leader runs them (``hub.ha``).
Beside them, the embedded pattern detector (``hub.pattern_alerts.detecting``).

A query result leaves the hub, whatever its format: each ``POST /v1/query`` (and ``hub query``,
both through ``export_query``) is one lineage run of ``export.query`` reading the projections
whose views the SQL names (``query_inputs``) and writing the store's one query dataset,
``hub://exports/query:<store>`` (``query:analytics``, ``query:transactional``): queries are
recorded in lineage without adding a catalog dataset per query. ``SHOW TABLES`` and
``DESCRIBE`` answer from the catalog's metadata and export no data: no run.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from core.ports.policy import Principal
from hub.api.deps import MAX_INT64, authorize, decision_context, hub_of
from hub.api.exports import export, export_headers, export_query, query_limits
from hub.api.models import ProjectionAt, ProjectionStatus, Rebuilt, RowSources

router = APIRouter(tags=["projections"])


@asynccontextmanager
async def follow_projections(app: FastAPI) -> AsyncIterator[None]:
    from hub.ha import single_writers
    from hub.pattern_alerts import detecting

    hub = app.state.hub
    run = getattr(hub, "projections", None) is not None and hub.settings.projection_autostart
    if not run and getattr(hub, "leader", None) is None:
        yield
        return
    # one process: the runners run; several (HUB_LEADER_ELECTION): only in the leader
    with single_writers(hub, projections=run), detecting(hub, run) as detector:
        app.state.pattern_detector = detector
        yield


router.lifespan_context = follow_projections  # merged into the app by include_router


def _service(request: Request) -> Any:
    return hub_of(request).projections


@router.get("/v1/projections", response_model=list[ProjectionStatus])
def status(request: Request, who: Principal = Depends(authorize("projection.read"))) -> Any:
    """Each projection's state. Its ``positions`` (the next offset per topic partition) and its
    views' ``digests`` (rows, positions, digest of every row) count and cover every tenant's
    records, so only a reader allowed ``tenant.all`` on ``projections`` gets them, as
    ``GET /v1/topics`` gives end offsets; anyone else gets ``{}`` for both. The ``lag`` and
    ``batch_seq`` count every tenant's records too (another tenant's publishing shows as the
    batch number moving), so such a reader gets null for both."""
    from hub.reports import reader_scope

    hub = hub_of(request)
    found = _service(request).status()
    row_filter = request.state.decision.row_filter
    if reader_scope(hub, who, row_filter, decision_context(request), "projections") is None:
        return found
    return [{**s, "positions": {}, "digests": {}, "lag": None, "batch_seq": None} for s in found]


@router.post("/v1/projections/{name}/rebuild", response_model=Rebuilt)
def rebuild(
    name: str, request: Request, _: Principal = Depends(authorize("projection.rebuild"))
) -> Any:
    return _service(request).rebuild(name)


@router.get("/v1/projections/{name}/at", response_model=ProjectionAt)
def at(
    name: str,
    request: Request,
    offset: int | None = Query(None, ge=0, le=MAX_INT64),
    time_ms: int | None = Query(None, ge=0, le=MAX_INT64),
    event_time: str | None = Query(None, max_length=64),
    table: str | None = None,
    principal: Principal = Depends(authorize("projection.rebuild")),
) -> Any:
    """The views as of a past point: ``offset``, log time ``time_ms``, or ``event_time`` (RFC
    3339 or epoch ms: events whose own time, e.g. ``executed_at``, is at or before it).

    Rows are those the live views would show this reader (``ProjectionService.grants``: its
    tenant's rows unless the policy allows it ``tenant.all``, PII columns null unless
    ``pii.read``), as ``/at/query`` shows them; a view's digest covers every row, so it is
    given only to a reader who sees the whole view (null otherwise)."""
    from projections.service import at_json, point_in_time_us

    hub = hub_of(request)
    event_us = None if event_time is None else point_in_time_us(event_time)
    found = _service(request).at(
        name,
        offset=offset,
        time_ms=time_ms,
        event_time_us=event_us,
        table=table,
        reader=(hub.policy, principal),
    )
    return json.loads(json.dumps(at_json(found), default=str))


# A query answers in the format asked for: JSON rows, CSV text or a Parquet file.
QUERY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/QueryResult"}},
            "text/csv": {"schema": {"type": "string"}},
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
        }
    }
}


# one definition for both query bodies (a Field is a default value: pydantic copies it per model)
CSV_CELLS_FIELD: str = Field(
    default="formula-safe",
    pattern="^(formula-safe|raw)$",
    description="CSV only: formula-safe (default) prefixes a text cell a spreadsheet would "
    "run as a formula (= + - @ tab CR first) with ', numbers untouched; raw writes text as "
    "stored (for programs; never open it in a spreadsheet). The answer names it in "
    "X-Hub-CSV-Cells.",
)


class AtQueryBody(BaseModel):
    sql: str = Field(min_length=1, max_length=100_000)
    format: str = Field(default="json", pattern="^(json|csv|parquet)$")
    offset: int | None = Field(default=None, ge=0, le=MAX_INT64)
    time_ms: int | None = Field(default=None, ge=0, le=MAX_INT64)
    event_time: str | None = Field(default=None, max_length=64)
    csv_cells: str = CSV_CELLS_FIELD


@router.post(
    "/v1/projections/{name}/at/query",
    responses=QUERY_RESPONSES,
)
def at_query(
    name: str,
    body: AtQueryBody,
    request: Request,
    principal: Principal = Depends(authorize("projection.rebuild")),
    __: Principal = Depends(authorize("query.run")),
) -> Response:
    """The guarded query of ``POST /v1/query`` over ``name``'s views replayed to one point."""
    from projections.service import point_in_time_us

    hub = hub_of(request)
    event_us = None if body.event_time is None else point_in_time_us(body.event_time)
    with query_limits(hub, principal, body.sql, replays=True):
        table = hub.projections.at_query(
            hub.policy,
            principal,
            name,
            body.sql,
            offset=body.offset,
            time_ms=body.time_ms,
            event_time_us=event_us,
        )
    data, media = export(table, body.format, body.csv_cells)
    return Response(data, media_type=media, headers=export_headers(body.format, body.csv_cells))


@router.get("/v1/projections/{name}/rows/{key}/sources", response_model=RowSources)
def sources(
    name: str,
    key: str,
    request: Request,
    table: str | None = None,
    _: Principal = Depends(authorize("projection.read")),
    __: Principal = Depends(authorize("event.read")),
) -> Any:
    """The events behind one row (key values joined by ``|``), with ledger proofs if known.

    PII (row columns and event fields) is masked when the ``event.read`` decision says so; a
    reader its ``row_filter`` limits to a tenant gets 404 for another tenant's row, as for a
    missing one, and that tenant's events only."""
    from ledger.service import tenant_scope_of

    decision = request.state.decision  # event.read's (decided last)
    scope = tenant_scope_of(decision.row_filter)
    found = _service(request).sources(
        name, table, key, mask_pii="pii" in decision.mask, tenant_scope=scope
    )
    return json.loads(json.dumps(found, default=str))


class QueryBody(BaseModel):
    sql: str = Field(min_length=1, max_length=100_000)
    format: str = Field(default="json", pattern="^(json|csv|parquet)$")
    store: str = Field(default="analytics", pattern="^(analytics|transactional)$")
    csv_cells: str = CSV_CELLS_FIELD


@router.post(
    "/v1/query",
    responses=QUERY_RESPONSES,
)
def run_query(
    body: QueryBody, request: Request, principal: Principal = Depends(authorize("query.run"))
) -> Response:
    from governance.cases import purpose_context

    hub = hub_of(request)
    with query_limits(hub, principal, body.sql):  # 429 past a rate or concurrency limit
        data, media = export_query(
            hub,
            principal,
            body.sql,
            body.format,
            body.store,
            purpose_context(request.headers),
            body.csv_cells,
        )
    return Response(data, media_type=media, headers=export_headers(body.format, body.csv_cells))
