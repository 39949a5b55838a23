"""The console's data calls (``/ui/api/...``): JSON for the pages' scripts, and one live stream.

Every call declares its policy action(s) with ``authorize(...)``, so the PolicyEngine decides it
and the decision is recorded on the ledger like any API access. Queries go through the guarded
query path (``ProjectionService.query``: the views the principal may see, masked and filtered by
tenant); Explore's queries and exports through ``export_query``, one lineage run each, as
``POST /v1/query``. State-changing calls are POSTs, which the gate admits only with the
session's CSRF token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from core.errors import InvalidInput
from core.ports.policy import Principal
from core.sqlguard_limits import QueryLimited
from governance.cases import cases_within
from governance.enrolment import EnrolmentTicket
from hub.api.deps import MAX_INT64, authorize, authorize_hub_wide, decision_context, hub_of
from hub.api.routers.cases import check_case
from hub.api.routers.ledger import tenant_scope
from hub.api.routers.policy import WITHHELD, sees_bundle_text
from hub.console.gate import live_session, sessions_of
from hub.console.live_bars import TABLE, LiveBars, mergeable, snapshot_sql

router = APIRouter(prefix="/ui/api", include_in_schema=False)

_SYMBOL = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
STREAM_IDLE_S = 1.0  # a live stream without commits still checks disconnection this often
KEY_RECHECK_S = 5.0  # how often a live stream re-reads its session's key (revocation)
STREAM_PENDING_MAX = 256  # commits a live stream holds for a slow reader before re-querying


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Rows(BaseModel):
    columns: list[str]
    rows: list[dict[str, Any]]


class Bars(Rows):
    instrument: str
    currency: str
    batch_seq: int


class QueryIn(BaseModel):
    sql: str = Field(min_length=1, max_length=100_000)
    store: str = Field(default="analytics", pattern="^(analytics|transactional)$")
    format: str = Field(default="json", pattern="^(json|csv|parquet)$")
    signed: bool = Field(
        default=False, description="CSV/Parquet only: a zip with a signed manifest (hub-export/v1)."
    )
    csv_cells: str = Field(
        default="formula-safe",
        pattern="^(formula-safe|raw)$",
        description="CSV only, as POST /v1/query's csv_cells (the signed manifest names it).",
    )


class ApproveIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2_000)
    # the bundle_version shown with the diff: the page always sends it, so what is approved is
    # what was shown (``governance.changes.check_as_shown``)
    expected_version: str = Field(min_length=1, max_length=200)


def _rows(table: Any) -> dict[str, Any]:
    """A query result as ``{"columns", "rows"}`` in the canonical JSON representations."""
    from projections.types import render

    data, _ = render(table, "json")
    out: dict[str, Any] = json.loads(data)
    return out


def _symbol(value: str, what: str, pattern: re.Pattern[str]) -> str:
    if not pattern.match(value):
        raise InvalidInput(
            f"{what}={value[:80]!r} is not valid: use letters, digits and . _ : - "
            "(currencies: three capital letters, e.g. USD).",
            code="invalid_parameter",
        )
    return value


# A page sends its few queries at once (positions, instruments, bars, the live stream) and one
# principal runs one query at a time (HUB_QUERY_MAX_RUNNING_PER_PRINCIPAL): each waits this long
# for a running slot before its 429 (rates and query-seconds still refuse at once).
PAGE_WAIT_S = 10.0


def _query(hub: Any, principal: Principal, sql: str, store: str = "analytics") -> dict[str, Any]:
    """``sql`` as ``principal``'s query, admitted as ``/v1/query``'s are (429 past the
    principal's or the tenant's rate or query-seconds limit, or past ``PAGE_WAIT_S`` waiting
    for a running slot): the pages' queries take the same engine from the other tenants as an
    analyst's own SQL."""
    from hub.api.exports import query_limits

    with query_limits(hub, principal, sql, wait_s=PAGE_WAIT_S):
        return _rows(hub.projections.query(hub.policy, principal, sql, store))


@contextlib.contextmanager
def _page_slot(hub: Any, principal: Principal) -> Iterator[None]:
    """The block run as one of ``principal``'s queries (``_query``'s limits and wait)."""
    from hub.api.exports import query_limiter

    with query_limiter(hub).admit(principal.id, principal.tenant, wait_s=PAGE_WAIT_S):
        yield


def _admitted(hub: Any, principal: Principal) -> None:
    """Admitted as one of ``principal``'s queries (``_query``'s limits), holding nothing."""
    with _page_slot(hub, principal):
        pass


def _tenant_of(grants: Any) -> str | None:
    """The tenant a grant of the bars table is limited to (None: every tenant)."""
    for g in grants:
        if g.name == TABLE:
            return g.tenant  # type: ignore[no-any-return]
    return None


# -- Markets ----------------------------------------------------------------------------------
@router.get("/markets/instruments", response_model=Rows)
def instruments(
    request: Request, principal: Principal = Depends(authorize("query.run"))
) -> dict[str, Any]:
    """Instruments with 1-minute bars: number of bars, last close and its change over the day."""
    sql = (
        "SELECT instrument, currency, count() AS bars, max(window_start) AS last_bar, "
        "argMax(close, window_start) AS last_close, argMin(open, window_start) AS first_open "
        "FROM ohlcv_1m GROUP BY instrument, currency ORDER BY instrument, currency"
    )
    return _query(hub_of(request), principal, sql)


def bars_sql(instrument: str, currency: str, limit: int) -> str:
    return (
        "SELECT window_start, open, high, low, close, volume, vwap, events FROM ("
        "SELECT window_start, open, high, low, close, volume, vwap, events FROM ohlcv_1m "
        f"WHERE instrument = '{instrument}' AND currency = '{currency}' "
        f"ORDER BY window_start DESC LIMIT {int(limit)}) ORDER BY window_start"
    )


def _bars(
    hub: Any,
    principal: Principal,
    instrument: str,
    currency: str,
    limit: int,
    grants: Any = None,
) -> Any:
    """The bars as ``/markets/bars`` answers them. With ``grants`` (what the principal may see
    of the views, decided by the policy engine a moment ago), the query runs under them without
    deciding again (``tests/service/test_console_live_bars.py`` compares the stream's merged
    bars with this answer)."""
    seq = hub.projections.runner("market_bars").checkpoint.batch_seq
    sql = bars_sql(instrument, currency, limit)
    if grants is None:
        found = _query(hub, principal, sql)
    else:
        from projections.types import canonical

        found = _rows(canonical(hub.projections.store("analytics").query(sql, grants)))
    return {**found, "instrument": instrument, "currency": currency, "batch_seq": seq}


@router.get("/markets/bars", response_model=Bars)
def bars(
    request: Request,
    instrument: str = Query(..., max_length=64),
    currency: str = Query("USD", max_length=3),
    limit: int = Query(120, ge=1, le=2_000),
    principal: Principal = Depends(authorize("query.run")),
) -> Any:
    """The last ``limit`` one-minute OHLCV bars (with VWAP) of one instrument and currency."""
    _symbol(instrument, "instrument", _SYMBOL)
    _symbol(currency, "currency", _CURRENCY)
    return _bars(hub_of(request), principal, instrument, currency, limit)


@router.get("/markets/positions", response_model=Rows)
def positions(
    request: Request, principal: Principal = Depends(authorize("query.run"))
) -> dict[str, Any]:
    """Positions with realised P&L, and unrealised P&L marked to the latest quote (where a
    quote in the position's currency exists; otherwise ``mark`` is null)."""
    from projections.catalog import MARK_TO_MARKET_SQL

    hub = hub_of(request)
    held = _query(
        hub,
        principal,
        "SELECT account_id, instrument, currency, quantity, avg_cost, realised_pnl, fees "
        "FROM positions ORDER BY account_id, instrument, currency LIMIT 500",
    )
    marked = _query(hub, principal, MARK_TO_MARKET_SQL)
    marks = {(r["account_id"], r["instrument"], r["currency"]): r for r in marked["rows"]}
    for row in held["rows"]:
        m = marks.get((row["account_id"], row["instrument"], row["currency"]))
        row["mark"] = None if m is None else m["mark"]
        row["unrealised_pnl"] = None if m is None else m["unrealised_pnl"]
    held["columns"] += ["mark", "unrealised_pnl"]
    return held


def requery(
    hub: Any,
    principal: Principal,
    snapshot: Callable[[Any], LiveBars],
    grants: Any,
    live: LiveBars,
) -> LiveBars:
    """A live stream's stale bars queried again under ``grants``, admitted as one of the
    principal's queries (a grant that masks the bars re-queries on every commit of the bars,
    which the tenant's publishers make at will). Past a limit: ``live`` as it was, still stale;
    the stream asks again at its next wake (a commit, or ``STREAM_IDLE_S``)."""
    try:
        with _page_slot(hub, principal):
            return snapshot(grants)
    except QueryLimited:
        return live


@router.get("/markets/stream")
async def stream(
    request: Request,
    instrument: str = Query(..., max_length=64),
    currency: str = Query("USD", max_length=3),
    limit: int = Query(120, ge=1, le=2_000),
    principal: Principal = Depends(authorize("query.run")),
) -> StreamingResponse:
    """Server-Sent Events: ``bars`` (as ``/markets/bars``) now and whenever a market-bars commit
    changed them. The first message is a snapshot queried under the grant the policy engine
    decided for the principal; each commit then hands its rows to the stream
    (``ProjectionRunner.on_commit_rows``), and those the grant covers are merged into the bars
    (``hub.console.live_bars``): a push costs no query, no SQL rewrite and no wait for the views'
    lock. What cannot be merged (a missed batch, a rebuild, a changed grant) is queried again.
    The grant is re-decided every ``KEY_RECHECK_S``; a comment every 15 s keeps proxies from
    closing the stream. It ends when the session's key is revoked or expires, or the session
    ends."""
    _symbol(instrument, "instrument", _SYMBOL)
    _symbol(currency, "currency", _CURRENCY)
    hub = hub_of(request)
    # Admitted as one of the principal's queries when it opens (429 past a limit, before the
    # stream's 200; it waits for a running slot as the page's other queries do); its later
    # snapshots too (``requery``: past a limit, they wait).
    await run_in_threadpool(_admitted, hub, principal)
    token = request.state.console_token
    store = sessions_of(request.scope)
    runner = hub.projections.runner("market_bars")

    def decide_grants() -> Any:
        return hub.projections.grants(hub.policy, principal, "analytics")

    def snapshot(grants: Any) -> LiveBars:
        """The bars between two batches, their batch number exact, under ``grants``."""
        sql = snapshot_sql(instrument, currency, limit)
        with runner.between_batches() as cp:
            table = hub.projections.store("analytics").query(sql, grants)
        return LiveBars(instrument, currency, limit, _tenant_of(grants), table, cp.batch_seq)

    def first() -> tuple[Any, LiveBars]:
        """The full path once, as ``/markets/bars`` takes it (the policy decides and records
        what the principal sees; the views are ensured), then the grant the snapshots and
        merges use, decided (and recorded) again, and the first snapshot under it."""
        hub.projections.query(
            hub.policy, principal, snapshot_sql(instrument, currency, 1), "analytics"
        )
        grants = decide_grants()
        return grants, snapshot(grants)

    def recheck() -> Any:
        """The session's key still valid: the grant decided again; None: the stream ends."""
        if live_session(hub, store, token) is None:
            return None
        return decide_grants()

    def message(live: LiveBars) -> bytes:
        found = {
            **_rows(live.shown()),
            "instrument": instrument,
            "currency": currency,
            "batch_seq": live.seq,
            "sent_at": datetime.now(UTC).isoformat(),
        }
        return b"event: bars\ndata: " + json.dumps(found).encode() + b"\n\n"

    async def events() -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        committed = asyncio.Event()
        commits: list[tuple[int, Any]] = []  # (batch_seq, rows), in commit order

        def heard(seq: int, rows: Any) -> None:  # the runner's thread, after each commit
            def take() -> None:
                if len(commits) >= STREAM_PENDING_MAX:  # a reader this far behind: let go of
                    commits.clear()  # the rows; the gap in batch numbers re-queries the bars
                commits.append((seq, rows))
                committed.set()

            with contextlib.suppress(RuntimeError):  # the loop closed: the stream is gone
                loop.call_soon_threadsafe(take)

        unsubscribe = runner.on_commit_rows(heard)
        try:
            grants, live = await run_in_threadpool(first)
            merge = mergeable(grants)
            yield message(live)
            last_beat = last_check = time.monotonic()
            check: asyncio.Future[Any] | None = None  # the key and grant re-check in flight
            while not await request.is_disconnected():
                now = time.monotonic()
                if check is None and now - last_check >= KEY_RECHECK_S:
                    # off the push path: a decision recorded under load may take a while
                    check = asyncio.ensure_future(run_in_threadpool(recheck))
                if check is not None and check.done():
                    decided, check, last_check = check.result(), None, time.monotonic()
                    if decided is None:
                        yield b"event: ended\ndata: {}\n\n"
                        return
                    if decided != grants:  # what the principal may see changed: start over
                        grants, merge = decided, mergeable(decided)
                        live.stale = True
                committed.clear()
                taken, commits[:] = list(commits), []
                changed = False
                for seq, rows in taken:
                    if merge:
                        changed = live.apply(seq, rows) or changed
                    elif seq > live.seq:
                        live.stale = True  # a grant that masks the bars: query each commit
                if live.stale:  # counted against the query limits; past one, asked again later
                    fresh = await run_in_threadpool(requery, hub, principal, snapshot, grants, live)
                    changed, live = fresh is not live, fresh
                if changed:
                    yield message(live)
                    last_beat = now
                elif now - last_beat >= 15:
                    last_beat = now
                    yield b": keep-alive\n\n"
                waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(committed.wait())]
                idle = STREAM_IDLE_S
                if check is not None:
                    waits.append(check)
                else:  # wake for the next re-check too
                    idle = min(idle, max(0.0, last_check + KEY_RECHECK_S - time.monotonic()))
                await asyncio.wait(waits, timeout=idle, return_when="FIRST_COMPLETED")
                waits[0].cancel()
        finally:
            unsubscribe()
            if check is not None:
                check.cancel()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"x-accel-buffering": "no"},
    )


# -- Payments and AML ---------------------------------------------------------------------------
class CaseOpenIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2_000)
    subjects: list[str] = Field(default_factory=list, max_length=1_000)


class CaseCloseIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2_000)


@router.get("/payments/summary", response_model=Open)
def payments_summary(
    request: Request, principal: Principal = Depends(authorize("query.run"))
) -> dict[str, Any]:
    """Corridor volumes, accounts with payments just under the AML threshold, and daily-limit
    breaches, from the payment projections (analytics and transactional views)."""
    hub = hub_of(request)
    corridors = _query(
        hub,
        principal,
        "SELECT currency, country, sum(events) AS payments, sum(amount) AS amount "
        "FROM payment_volumes_1d GROUP BY currency, country ORDER BY amount DESC LIMIT 50",
    )
    near = _query(
        hub,
        principal,
        "SELECT account_id, day, currency, near_threshold, near_threshold_amount, events, amount "
        "FROM aml_daily WHERE near_threshold > 0 "
        "ORDER BY near_threshold DESC, near_threshold_amount DESC LIMIT 50",
    )
    breaches = _query(
        hub,
        principal,
        "SELECT account_id, day, currency, used, daily_limit, payments FROM payment_limits "
        "WHERE breached = 1 ORDER BY used DESC LIMIT 50",
        "transactional",
    )
    return {"corridors": corridors, "near_threshold": near, "breaches": breaches}


@router.get("/cases", response_model=Open)
def cases(request: Request, who: Principal = Depends(authorize("case.read"))) -> dict[str, Any]:
    """Investigation cases the reader may see (its tenant's, unless ``tenant.all`` or a
    grant), newest first."""
    hub = hub_of(request)
    found = cases_within(hub.policy, who, hub.cases.list_cases(), decision_context(request))
    return {"cases": json.loads(json.dumps(list(reversed(found)), default=str))}


@router.post("/cases", response_model=Open)
def open_case(
    body: CaseOpenIn, request: Request, who: Principal = Depends(authorize("case.open"))
) -> dict[str, Any]:
    """Open a case (an event on the log) naming the accounts it is about."""
    opened: dict[str, Any] = hub_of(request).cases.open(
        reason=body.reason, actor=who.id, tenant=who.tenant, subjects=body.subjects
    )
    return json.loads(json.dumps(opened, default=str))  # type: ignore[no-any-return]


@router.post("/cases/{case_id}/close", response_model=Open)
def close_case(
    case_id: Annotated[str, Path(max_length=100)],
    body: CaseCloseIn,
    request: Request,
    who: Principal = Depends(authorize("case.close")),
) -> dict[str, Any]:
    check_case(request, who, "case.close", hub_of(request).cases.get(case_id))
    closed: dict[str, Any] = hub_of(request).cases.close(case_id, actor=who.id, reason=body.reason)
    return json.loads(json.dumps(closed, default=str))  # type: ignore[no-any-return]


# -- Ledger -----------------------------------------------------------------------------------
@router.get("/ledger/entries", response_model=Open)
def ledger_entries(
    request: Request,
    actor: str | None = Query(None, max_length=200),
    action: str | None = Query(None, max_length=200),
    topic: str | None = Query(None, max_length=255),
    since: str | None = Query(None, alias="from", max_length=64),
    until: str | None = Query(None, alias="to", max_length=64),
    after: int = Query(-1, ge=-1, le=MAX_INT64),
    limit: int = Query(50, ge=1, le=1_000),
    _: Principal = Depends(authorize("ledger.read")),
) -> dict[str, Any]:
    """Ledger entries by actor, action, topic and time (ISO), newest first when no ``after``."""
    from ledger.evidence import parse_time

    def ms(text: str | None, what: str) -> int | None:
        return None if not text else int(parse_time(text, what).timestamp() * 1000)

    entries = hub_of(request).ledger.entries(
        tenant_scope=tenant_scope(request),
        actor=actor or None,
        action=action or None,
        topic=topic or None,
        since_ms=ms(since, "from"),
        until_ms=ms(until, "to"),
        after=after,
        limit=limit,
    )
    return {"entries": entries, "next_after": entries[-1]["index"] if entries else after}


@router.get("/ledger/entries/{index}", response_model=Open)
def ledger_entry(
    index: Annotated[int, Path(ge=0, le=MAX_INT64)],
    request: Request,
    _: Principal = Depends(authorize("ledger.read")),
) -> dict[str, Any]:
    """One entry with its fields (digests and headers), the latest signed checkpoint and the
    inclusion proof the browser verifies."""
    from ledger.errors import CheckpointNotFound

    ledger = hub_of(request).ledger
    scope = tenant_scope(request)  # another tenant's entry answers 404 as a missing one
    try:
        found: dict[str, Any] = ledger.entry(index, tenant_scope=scope)
    except CheckpointNotFound:
        ledger.sync(force_checkpoint=True)
        found = ledger.entry(index, tenant_scope=scope)
    return found


@router.get("/ledger/lookup", response_model=Open)
def ledger_lookup(
    request: Request,
    event_id: str = Query(..., min_length=1, max_length=200),
    _: Principal = Depends(authorize("ledger.read")),
) -> dict[str, Any]:
    """The entry index of an event id."""
    from ledger.lookup import find_entry

    found: dict[str, Any] = find_entry(
        hub_of(request).ledger, event_id=event_id, tenant_scope=tenant_scope(request)
    )
    return {"index": found["index"]}


@router.get("/ledger/key", response_model=Open)
def ledger_key(
    request: Request, _: Principal = Depends(authorize("ledger.read"))
) -> dict[str, Any]:
    """The checkpoint signer's verifier key (``name+id+base64(0x01 || public key)``)."""
    return {"verifier_key": hub_of(request).ledger.public_key()}


@router.get("/ledger/checkpoints", response_model=Open)
def ledger_checkpoints(
    request: Request,
    limit: int = Query(10, ge=1, le=100),
    _: Principal = Depends(authorize("ledger.read")),
) -> dict[str, Any]:
    """The latest signed checkpoints (tree size, root, time), newest first."""
    ledger = hub_of(request).ledger
    size = ledger.store.tree_size()
    found = ledger.checkpoints(min_size=max(0, size - 100_000))[-limit:]
    return {
        "checkpoints": [
            {
                "size": c.size,
                "root": c.root.hex(),
                "time": datetime.fromtimestamp(c.time_us / 1e6, UTC).isoformat(),
            }
            for c in reversed(found)
        ]
    }


class EvidenceIn(BaseModel):
    since: str = Field(alias="from", min_length=1, max_length=64)
    until: str = Field(alias="to", min_length=1, max_length=64)
    controls: str = Field(default="CC6,CC7,CC8,PI1", max_length=200)


@router.post("/evidence", responses={200: {"content": {"application/zip": {}}}})
def evidence(
    body: EvidenceIn,
    request: Request,
    principal: Principal = Depends(authorize("evidence.export")),
) -> Response:
    """A SOC 2 evidence pack (zip) for a period, as ``POST /v1/evidence``."""
    from hub.evidence import export_evidence_pack
    from ledger.controls import parse_controls
    from ledger.evidence import parse_time

    try:
        wanted = parse_controls(body.controls)
    except ValueError as exc:
        raise InvalidInput(f"controls: {exc}", code="invalid_controls") from exc
    pack = export_evidence_pack(
        hub_of(request),
        parse_time(body.since, "from"),
        parse_time(body.until, "to"),
        wanted,
        actor=principal.id,
        tenant_scope=tenant_scope(request),
    )
    return Response(
        pack.data,
        media_type="application/zip",
        headers={"content-disposition": f'attachment; filename="{pack.filename}"'},
    )


# -- Explore ----------------------------------------------------------------------------------
@router.get("/catalog", response_model=Open)
def catalog(request: Request, _: Principal = Depends(authorize("catalog.read"))) -> dict[str, Any]:
    """The views (projections' tables with their columns, types and descriptions) by store,
    and the catalog's named queries (shipped with the hub, e.g. ``mark_to_market``)."""
    from projections.catalog import NAMED_QUERIES

    views = [
        {"projection": d.name, "store": d.extra["store"], "tables": d.extra["tables"]}
        for d in hub_of(request).catalog.datasets()
        if d.kind == "projection"
    ]
    saved = [
        {"name": name, "store": q["store"], "description": q["description"], "sql": q["sql"]}
        for name, q in sorted(NAMED_QUERIES.items())
    ]
    return {"projections": views, "queries": saved}


@router.post("/query", response_model=Rows, responses={200: {"content": {"text/csv": {}}}})
def query(
    body: QueryIn, request: Request, principal: Principal = Depends(authorize("query.run"))
) -> Response:
    """Run SQL over the views (guarded query path) as JSON rows, or export it as CSV or
    Parquet; with ``signed``, the export comes in a zip with a manifest signed by the ledger key
    (query, checkpoint, row count, digest: ``hub-verify bundle`` checks it offline)."""
    from hub.api.exports import query_limits

    hub = hub_of(request)
    started = time.perf_counter()
    with query_limits(hub, principal, body.sql):  # as /v1/query: 429 past a limit
        return _run_query(hub, principal, body, started)


def _run_query(hub: Any, principal: Principal, body: QueryIn, started: float) -> Response:
    from hub.api.exports import export_headers, export_query

    if body.signed:
        from hub.reports import signed_export

        if body.format == "json":
            raise InvalidInput(
                "signed=true needs format csv or parquet (a signed export is a file).",
                code="invalid_parameter",
            )
        data = signed_export(hub, principal, body.sql, body.format, body.store, body.csv_cells)
        name = f"query-{body.format}-signed.zip"
        return Response(
            data,
            media_type="application/zip",
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )
    data, media = export_query(
        hub, principal, body.sql, body.format, body.store, csv_cells=body.csv_cells
    )
    headers = {
        "x-hub-elapsed-ms": f"{(time.perf_counter() - started) * 1000:.1f}",
        **export_headers(body.format, body.csv_cells),
    }
    if body.format != "json":
        headers["content-disposition"] = f'attachment; filename="query.{body.format}"'
    return Response(data, media_type=media, headers=headers)


# -- Reports ----------------------------------------------------------------------------------
class ReportIn(BaseModel):
    kind: str = Field(pattern="^(compliance-daily|data-quality)$")
    day: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")


_REPORT_ID = Annotated[str, Path(min_length=36, max_length=36, pattern="^[0-9a-f-]{36}$")]


@router.get("/reports", response_model=Open)
def reports(
    request: Request, _: Principal = Depends(authorize("report.read", "reports"))
) -> dict[str, Any]:
    """Every report recorded on ``hub.reports``, newest first."""
    from hub.api.routers.reports import report_scope
    from hub.reports import KINDS, list_reports

    found = list_reports(hub_of(request), report_scope(request))
    return {"reports": list(reversed(found)), "kinds": KINDS}


@router.post("/reports", response_model=Open)
def run_report(
    body: ReportIn,
    request: Request,
    principal: Principal = Depends(authorize("report.run", "reports")),
) -> dict[str, Any]:
    """Build, sign and record a report now (on demand)."""
    from hub.api.routers.reports import report_scope
    from hub.reports import run_report as run

    made = run(hub_of(request), principal, body.kind, body.day, tenant_scope=report_scope(request))
    return {
        "report_id": made.report_id,
        "kind": made.kind,
        "manifest_sha256": made.manifest_sha256,
        "summary": json.loads(json.dumps(made.manifest["summary"], default=str)),
    }


_PACK_PARTS = {
    "pack": ("application/zip", None),
    "pdf": ("application/pdf", "report.pdf"),
    "html": ("text/html; charset=utf-8", "report.html"),
}


@router.get(
    "/reports/{report_id}/{part}",
    responses={200: {"content": {"application/zip": {}, "application/pdf": {}}}},
)
def report_file(
    report_id: _REPORT_ID,
    part: Annotated[str, Path(pattern="^(pack|pdf|html)$")],
    request: Request,
    _: Principal = Depends(authorize("report.read", "reports")),
) -> Response:
    """A report's signed pack (zip), or its PDF or HTML (always as a download)."""
    import io
    import zipfile

    from hub.api.routers.reports import report_scope
    from hub.reports import find_report

    data = find_report(hub_of(request), report_id, report_scope(request))[1]
    media, member = _PACK_PARTS[part]
    name = f"report-{report_id}.zip"
    if member is not None:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            data = zf.read(member)
        name = f"report-{report_id}.{part}"
    return Response(
        data,
        media_type=media,
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


@router.post("/reports/{report_id}/verify", response_model=Open)
def verify_report(
    report_id: _REPORT_ID,
    request: Request,
    _: Principal = Depends(authorize("report.read", "reports")),
) -> dict[str, Any]:
    """Verify a stored report's pack against this hub's ledger key."""
    from audit.errors import AuditError
    from audit.note import parse_verifier_key
    from hub.api.routers.reports import report_scope
    from hub.reports import find_report, verify_pack

    hub = hub_of(request)
    data = find_report(hub, report_id, report_scope(request))[1]
    try:
        trusted = parse_verifier_key(hub.ledger.public_key())
        return {"ok": True, "message": verify_pack(data, trusted)}
    except AuditError as exc:
        return {"ok": False, "message": str(exc)}


# -- Data health ------------------------------------------------------------------------------
@router.get("/health", response_model=Open)
def health(
    request: Request,
    __: Principal = Depends(authorize("projection.read")),
    # decided last, so request.state.decision is this read's (its row_filter scopes the counts)
    _: Principal = Depends(authorize("quarantine.read")),
) -> dict[str, Any]:
    """Records per topic (the page turns two readings into a rate), quarantine by topic and
    rule, and each projection's lag. A reader the decisions' ``row_filter`` limits to a tenant
    gets that tenant's records and rejects only (``ingest.stats`` keeps counts per tenant); the
    projections' lag is the hub's own jobs' state, the same for every tenant, and stays."""
    from ledger.service import tenant_scope_of

    hub = hub_of(request)
    scope = tenant_scope_of(request.state.decision.row_filter)
    stats = hub.ingest.stats.snapshot(scope)
    if scope is None:
        topics = {
            t.name: sum(hub.log.end_offsets(t.name).values())
            for t in hub.log.topics()
            if not t.name.startswith(("hub.", "_"))
        }
    else:  # the log's end offsets count every tenant's records
        topics = {t["topic"]: t["accepted"] for t in stats["by_topic"] if t["accepted"]}
    lag = [
        {"projection": s["projection"], "lag": s["lag"], "batch_seq": s["batch_seq"]}
        for s in hub.projections.status()
    ]
    return {
        "at": time.time(),
        "records": topics,
        "accepted": stats["accepted"],
        "rejected": stats["rejected"],
        "by_rule": stats["by_rule"],
        "projections": lag,
        "tenant_scope": scope,
    }


@router.get("/alerts", response_model=Open)
def alerts(
    request: Request,
    limit: int = Query(50, ge=1, le=1_000),
    _: Principal = Depends(authorize("quarantine.read")),
) -> dict[str, Any]:
    """Alert events (fired, resolved), newest first, and the rules evaluated.

    An event's ``value`` is what its rule measured over the whole hub (the quarantine rate of
    every tenant's records, drift of any model, the ledger's verification and its first
    problem) or, for a SQL rule, over the alerting principal's tenant. A reader the decision
    limits to a tenant sees the figures of its own tenant's SQL rules and the projections' lag
    (the hub's own jobs, the same for every tenant; the health page shows it too); any other
    event keeps its rule, severity and times, its value withheld (``value`` null, ``withheld``
    naming ``tenant.all``) and its summary the rule's own."""
    from governance.alertrules import rule_dict, rules_in_force
    from hub.console.alerts import engine_for
    from ledger.service import tenant_scope_of

    hub = hub_of(request)
    engine = request.app.state.console_alerts or engine_for(hub)
    rules = rules_in_force(hub.config_changes.store)
    scope = tenant_scope_of(request.state.decision.row_filter)
    events = list(reversed(engine.events(limit)))
    if scope is not None:
        events = [_scoped_alert(e, rules, scope, engine.principal.tenant) for e in events]

    def shown(rule: Any) -> dict[str, Any]:
        d = rule_dict(rule)
        d["measures"] = (
            f"{rule.store}: {rule.sql}"
            if rule.kind == "sql"
            else " ".join(x for x in (rule.kind, rule.metric) if x)
            + (f" over {rule.window_s} s" if "window_s" in d else "")
        )
        return d

    return {"events": events, "rules": [shown(r) for r in rules]}


def _scoped_alert(
    event: dict[str, Any], rules: Any, scope: str, alerting_tenant: str
) -> dict[str, Any]:
    """``event`` as a reader limited to tenant ``scope`` sees it (``alerts``' docstring): a rule
    no longer in force counts as hub-wide."""
    rule = next((r for r in rules if r.name == event.get("rule")), None)
    own = rule is not None and (
        (rule.kind == "sql" and scope == alerting_tenant)
        or (rule.kind == "metric" and rule.metric == "projection_lag")
    )
    if own:
        return event
    out = {**event, "value": None}
    out["withheld"] = "the value measures more than this tenant's data: reading it needs tenant.all"
    if "summary" in out:
        out["summary"] = rule.summary if rule is not None else ""
    return out


# -- Security ---------------------------------------------------------------------------------
@router.get("/security/policy", response_model=Open)
def policy(
    request: Request,
    _: Principal = Depends(authorize("policy.read", "policy")),
    full: bool = Depends(sees_bundle_text),
) -> dict[str, Any]:
    """The active policy bundle's text (every file; a reader limited to one tenant sees each
    file's name with its text withheld: ``hub.api.routers.policy.WITHHELD``) and the changes
    waiting for approval, each with its diff (withheld alike): the second person approves what
    the page shows, never a change id alone."""
    changes = hub_of(request).policy_changes
    changes.store.refresh()
    bundle = changes.store.active_bundle()
    return {
        "version": bundle.version,
        "engine": hub_of(request).settings.policy_engine,
        "files": {
            name: bundle.files[name] if full else f"({WITHHELD})" for name in sorted(bundle.files)
        },
        "pending": [
            {**c.summary(), "diff": c.diff if full else None}
            for c in changes.store.changes()
            if c.status == "pending_approval"
        ],
    }


@router.post("/security/policy/changes/{change_id}/approve", response_model=Open)
def approve(
    change_id: Annotated[str, Path(max_length=100)],
    body: ApproveIn,
    request: Request,
    principal: Principal = Depends(
        authorize_hub_wide("policy.approve", "policy")
    ),  # one bundle, all tenants
) -> dict[str, Any]:
    """Approve a pending policy change (the two-person rule applies: not its proposer), the
    one the page showed: refused (409 ``change_not_as_shown``) when the change now proposes
    another bundle than ``expected_version``."""
    changes = hub_of(request).policy_changes
    summary: dict[str, Any] = changes.approve(
        principal, change_id, body.reason, expected_version=body.expected_version
    ).summary()
    return summary


@router.get("/security/keys", response_model=Open)
def keys(request: Request, principal: Principal = Depends(authorize("keys.read"))) -> Any:
    """The API keys this principal may manage (never a hash or a secret)."""
    hub = hub_of(request)
    mine = [k.public() for k in hub.keys.all() if hub.keys.may_manage(principal, k)]
    return {"keys": json.loads(json.dumps(mine, default=str))}


class KeyCreateIn(BaseModel):
    roles: list[Annotated[str, Field(max_length=64)]] = Field(min_length=1, max_length=20)
    owner: str = Field(min_length=1, max_length=128, description="The person the key is for.")
    description: str = Field(default="", max_length=500)
    expires_in: str | None = Field(default=None, max_length=20, description="e.g. 12h, 30d")


class KeyRevokeIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2_000)


class KeyRotateIn(BaseModel):
    reason: str = Field(default="", max_length=2_000)
    grace: str | None = Field(default=None, max_length=20, description="old key works this long")


class KeyIssuedOut(BaseModel):
    key_id: str
    token: str = Field(description="KEY_ID:SECRET, shown once and never again.")
    owner: str
    roles: list[str]
    replaces: str | None = None


class EnrolmentTicketOut(BaseModel):
    """A key that may approve is never handed over: its owner enrols (``governance.enrolment``)."""

    enrolment_id: str
    enrolment_token: str = Field(description="he_ID.FIRST_HALF, shown once.")
    owner: str
    roles: list[str]
    status: str
    expires_at: str
    resets: str | None = None


class KeysRevokedOut(BaseModel):
    revoked: list[str]


# The buttons call the same key service, under the same policy actions and issuance rules, as
# POST /v1/keys, /v1/keys/{id}/revoke and /v1/keys/{id}/rotate: nobody issues a role they lack
# or a second key to themselves, and only a key's owner or an admin rotates it.
@router.post("/security/keys", response_model=KeyIssuedOut | EnrolmentTicketOut, status_code=201)
def create_key(
    body: KeyCreateIn, request: Request, principal: Principal = Depends(authorize("keys.create"))
) -> dict[str, Any]:
    """Issue a key; the answer holds its secret, the only time it is shown."""
    from governance.apikeys import parse_duration

    expires = datetime.now(UTC) + parse_duration(body.expires_in) if body.expires_in else None
    issued = hub_of(request).keys.issue(
        principal,
        body.roles,
        owner=body.owner,
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


@router.post("/security/keys/{key_id}/revoke", response_model=KeysRevokedOut)
def revoke_key(
    key_id: Annotated[str, Path(max_length=100)],
    body: KeyRevokeIn,
    request: Request,
    principal: Principal = Depends(authorize("keys.revoke")),
) -> dict[str, Any]:
    """Revoke a key this principal may manage; its sessions end at their next request."""
    ids = hub_of(request).keys.revoke(
        key_id, revoked_by=principal.id, reason=body.reason, actor=principal
    )
    return {"revoked": ids}


@router.post(
    "/security/keys/{key_id}/rotate",
    response_model=KeyIssuedOut | EnrolmentTicketOut,
    status_code=201,
)
def rotate_key(
    key_id: Annotated[str, Path(max_length=100)],
    body: KeyRotateIn,
    request: Request,
    principal: Principal = Depends(authorize("keys.rotate")),
) -> dict[str, Any]:
    """A replacement with the same owner and roles (secret shown once); the old key stops now
    or after ``grace``. Only the key's owner or an admin may rotate it."""
    from governance.apikeys import parse_duration

    keys = hub_of(request).keys
    grace = parse_duration(body.grace) if body.grace else None
    issued = keys.rotate(principal, key_id, grace=grace, reason=body.reason)
    if isinstance(issued, EnrolmentTicket):
        return issued.public()
    return {
        "key_id": issued.key_id,
        "token": issued.token,
        "owner": issued.owner,
        "roles": sorted(keys.get(issued.key_id).roles),
        "replaces": key_id,
    }
