"""Projection routes: status, rebuild, time travel, provable rows, and the analysts' query API.

Installing this router also installs a lifespan hook: the app follows every projection in the
background while it serves (``HUB_PROJECTION_AUTOSTART``), and stops the runners on shutdown.

A query result leaves the hub, whatever its format: each ``POST /v1/query`` (and ``hub query``,
both through ``export_query``) is one lineage run of ``export.query`` reading the projections
whose views the SQL names (``query_inputs``) and writing the store's one query dataset,
``hub://exports/query:<store>`` (``query:analytics``, ``query:transactional``): queries are
recorded in lineage without adding a catalog dataset per query. ``SHOW TABLES`` and
``DESCRIBE`` answer from the catalog's metadata and export no data: no run.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pyarrow as pa
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from governance import lineage
from hub.api.deps import authorize, hub_of
from hub.errors import InvalidInput
from hub.ports.policy import Principal
from projections import metadata

router = APIRouter(tags=["projections"])


@asynccontextmanager
async def follow_projections(app: FastAPI) -> AsyncIterator[None]:
    hub = app.state.hub
    started = False
    if getattr(hub, "projections", None) is not None and hub.settings.projection_autostart:
        hub.projections.start()
        started = True
    try:
        yield
    finally:
        if started:
            hub.projections.stop()


router.lifespan_context = follow_projections  # merged into the app by include_router


def _service(request: Request) -> Any:
    return hub_of(request).projections


@router.get("/v1/projections")
def status(request: Request, _: Principal = Depends(authorize("projection.read"))) -> Any:
    return _service(request).status()


@router.post("/v1/projections/{name}/rebuild")
def rebuild(
    name: str, request: Request, _: Principal = Depends(authorize("projection.rebuild"))
) -> Any:
    return _service(request).rebuild(name)


@router.get("/v1/projections/{name}/at")
def at(
    name: str,
    request: Request,
    offset: int | None = Query(None, ge=0),
    time_ms: int | None = Query(None, ge=0),
    table: str | None = None,
    _: Principal = Depends(authorize("projection.rebuild")),
) -> Any:
    return json.loads(
        json.dumps(
            _service(request).at(name, offset=offset, time_ms=time_ms, table=table), default=str
        )
    )


@router.get("/v1/projections/{name}/rows/{key}/sources")
def sources(
    name: str,
    key: str,
    request: Request,
    table: str | None = None,
    _: Principal = Depends(authorize("projection.read")),
    __: Principal = Depends(authorize("event.read")),
) -> Any:
    """The events behind one row (key values joined by ``|``), with ledger proofs if known.

    PII (row columns and event fields) is masked when the ``event.read`` decision says so."""
    mask = "pii" in request.state.decision.mask
    found = _service(request).sources(name, table, key, mask_pii=mask)
    return json.loads(json.dumps(found, default=str))


class QueryBody(BaseModel):
    sql: str = Field(min_length=1, max_length=100_000)
    format: str = Field(default="json", pattern="^(json|csv|parquet)$")
    store: str = Field(default="analytics", pattern="^(analytics|transactional)$")


def export(table: pa.Table, fmt: str) -> tuple[bytes, str]:
    """A query result as CSV, Parquet or JSON (decimals as strings, exact)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(table, buf)
        return buf.getvalue(), "application/vnd.apache.parquet"
    if fmt == "csv":
        import pyarrow.csv as pcsv

        buf = io.BytesIO()
        pcsv.write_csv(table, buf)
        return buf.getvalue(), "text/csv"
    if fmt == "json":
        rows = table.to_pylist()
        return json.dumps({"columns": table.column_names, "rows": rows}, default=str).encode(), (
            "application/json"
        )
    raise InvalidInput(f"format={fmt!r} is invalid: use csv, parquet or json.")


def query_inputs(sql: str, store: str) -> list[lineage.Dataset]:
    """The projections of ``store`` whose views ``sql`` reads (as the query guard parses it);
    all of the store's when it does not parse (the reads are not known)."""
    from projections.catalog import PROJECTIONS
    from projections.sqlguard import views_named

    names = views_named(sql, "clickhouse" if store == "analytics" else "sqlite")
    mine = [p for p in PROJECTIONS if p.store == store]
    if names is None:
        return [lineage.projection_dataset(p.name) for p in mine]
    named = [p for p in mine if any(t.name.lower() in names for t in p.tables)]
    return [lineage.projection_dataset(p.name) for p in named]


def query_dataset(store: str) -> lineage.Dataset:
    """The one export dataset that every query of ``store`` writes."""
    return lineage.export_dataset(f"query:{store}")


def export_query(
    hub: Any, principal: Principal, sql: str, fmt: str, store: str
) -> tuple[bytes, str]:
    """Run ``sql`` and render the result as ``fmt`` (bytes, media type): one lineage run of
    ``export.query``."""
    if fmt not in ("csv", "parquet", "json"):
        raise InvalidInput(f"format={fmt!r} is invalid: use csv, parquet or json.")
    if metadata.statement(sql) is not None:  # catalog metadata only: no data leaves
        return export(hub.projections.query(hub.policy, principal, sql, store), fmt)
    with lineage.run(
        hub,
        "export.query",
        query_inputs(sql, store),
        [query_dataset(store)],
        producer=principal.id,
    ):
        table = hub.projections.query(hub.policy, principal, sql, store)
        return export(table, fmt)


@router.post("/v1/query")
def run_query(
    body: QueryBody, request: Request, principal: Principal = Depends(authorize("query.run"))
) -> Response:
    data, media = export_query(hub_of(request), principal, body.sql, body.format, body.store)
    return Response(data, media_type=media)
