"""Query exports shared by the API's ``/v1/query``, the console's Explore page and
``hub projection query``: run guarded SQL over the views and render it (CSV, Parquet, JSON) as one
lineage run of ``export.query``."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from core import lineage
from core.errors import InvalidInput
from core.ports.policy import Principal
from core.sqlguard_limits import QueryLimiter, QueryLimits
from projections import metadata

_LIMITER_MADE = threading.Lock()


def query_limiter(hub: Any) -> QueryLimiter:
    """The hub's one limiter of analyst queries, made from its settings on first use."""
    with _LIMITER_MADE:
        if getattr(hub, "query_limiter", None) is None:
            s = hub.settings
            refusals = hub.metrics.query_refusals
            hub.query_limiter = QueryLimiter(
                QueryLimits(
                    per_principal=s.query_max_running_per_principal,
                    per_tenant=s.query_max_running_per_tenant,
                    principal_rate=s.query_rate_per_principal,
                    principal_burst=s.query_burst_per_principal,
                    tenant_rate=s.query_rate_per_tenant,
                    tenant_burst=s.query_burst_per_tenant,
                    principal_seconds=s.query_seconds_per_principal,
                    principal_seconds_burst=s.query_seconds_burst_per_principal,
                    tenant_seconds=s.query_seconds_per_tenant,
                    tenant_seconds_burst=s.query_seconds_burst_per_tenant,
                ),
                refused=lambda code: refusals.labels(code).inc(),
            )
        limiter: QueryLimiter = hub.query_limiter
    return limiter


@contextmanager
def query_limits(
    hub: Any, principal: Principal, sql: str, *, replays: bool = False, wait_s: float = 0.0
) -> Iterator[None]:
    """Run the block as one of ``principal``'s queries, under the per-principal and per-tenant
    rate and concurrency limits (``core.sqlguard_limits``: 429 past one). ``SHOW TABLES`` and
    ``DESCRIBE`` answer from the catalog, not the views' lock: not counted, unless the block
    ``replays`` a projection before it reads the SQL (a point-in-time query replays the log
    into a copy of the views whatever the SQL: uncounted, ``SHOW TABLES`` replayed without
    limit). ``wait_s``: ``QueryLimiter.admit``'s wait for a running slot."""
    if metadata.statement(sql) is not None and not replays:
        yield
        return
    with query_limiter(hub).admit(principal.id, principal.tenant, wait_s=wait_s):
        yield


def export(table: pa.Table, fmt: str, csv_cells: str = "formula-safe") -> tuple[bytes, str]:
    """A query result as CSV, Parquet or JSON in the canonical representations of
    ``projections.types`` (decimals exact, timestamps ISO-8601 UTC in text formats; CSV text
    cells formula-safe unless ``csv_cells="raw"``)."""
    from projections.types import render

    return render(table, fmt, csv_cells)


CSV_CELLS_HEADER = "X-Hub-CSV-Cells"
"""The answer header naming how a CSV export's text cells were written (``formula-safe``:
cells a spreadsheet would run prefixed with ``'``; ``raw``: as stored)."""


def export_headers(fmt: str, csv_cells: str) -> dict[str, str]:
    """The headers an export answer carries: ``X-Hub-CSV-Cells`` for CSV."""
    return {CSV_CELLS_HEADER: csv_cells} if fmt == "csv" else {}


def query_inputs(sql: str, store: str) -> list[lineage.Dataset]:
    """The projections of ``store`` whose views ``sql`` reads (as the query guard parses it);
    all of the store's when it does not parse (the reads are not known)."""
    from core.sqlguard import views_named
    from projections.catalog import PROJECTIONS

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
    hub: Any,
    principal: Principal,
    sql: str,
    fmt: str,
    store: str,
    context: Mapping[str, Any] | None = None,
    csv_cells: str = "formula-safe",
) -> tuple[bytes, str]:
    """Run ``sql`` and render the result as ``fmt`` (bytes, media type): one lineage run of
    ``export.query``. ``context`` (the request's purpose of use) goes with every decision the
    query takes, so an open investigation case unmasks PII here as on the event routes.
    ``csv_cells``: ``projections.types.CSV_CELLS``."""
    if fmt not in ("csv", "parquet", "json"):
        raise InvalidInput(f"format={fmt!r} is invalid: use csv, parquet or json.")
    if metadata.statement(sql) is not None:  # catalog metadata only: no data leaves
        return export(hub.projections.query(hub.policy, principal, sql, store), fmt, csv_cells)
    with lineage.run(
        hub,
        "export.query",
        query_inputs(sql, store),
        [query_dataset(store)],
        producer=principal.id,
        tenant=principal.tenant,  # the run is the exporter's tenant's (LineageLog scopes on it)
    ):
        from governance.cases import WithContext

        policy = WithContext(hub.policy, context) if context else hub.policy
        table = hub.projections.query(policy, principal, sql, store)
        return export(table, fmt, csv_cells)
