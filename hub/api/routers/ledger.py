"""Ledger and evidence routes for compliance officers (``ledger.read``, ``ledger.verify``,
``evidence.export``).

Reads answer from the ledger as synced; ``GET /v1/ledger/entries/{index}`` syncs first when the
entry is not yet covered by a checkpoint. Installing this router also keeps the ledger synced
while the app runs: a FastAPI lifespan starts ``Ledger.start()`` (a background thread syncing
when an append wakes it and signing a checkpoint when one falls due) and stops it on shutdown.

An evidence export (here, in the console and ``hub evidence export``, all through
``hub.evidence.export_evidence_pack``) is one lineage run of ``export.evidence``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import PlainTextResponse, Response

from core.errors import Conflict, Forbidden, InvalidInput, VerifyRunning
from core.ports.eventlog import StoredRecord
from core.ports.policy import HUB_TENANT, Principal
from hub.api.deps import (
    MAX_INT64,
    authorize,
    count_decision,
    decision_context,
    hub_of,
    route_of,
)
from hub.api.models import (
    Checkpoint,
    ConsistencyProof,
    LedgerEntries,
    LedgerEntry,
    Verification,
    binary,
    text,
)
from hub.evidence import export_evidence_pack
from ledger.errors import CheckpointNotFound


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    ledger = app.state.hub.ledger
    ledger.start()
    try:
        yield
    finally:
        ledger.stop()


router = APIRouter(tags=["ledger"], lifespan=lifespan)


def _ms(text: str | None, what: str) -> int | None:
    from ledger.evidence import parse_time

    return None if text is None else int(parse_time(text, what).timestamp() * 1000)


def tenant_scope(request: Request) -> str | None:
    """The tenant the route's decision (``ledger.read``, ``evidence.export``) limits this reader
    to (``tenant_scope_of`` its ``row_filter``); None for every tenant."""
    from ledger.service import tenant_scope_of

    return tenant_scope_of(request.state.decision.row_filter)


@router.get("/v1/ledger/entries", response_model=LedgerEntries)
def list_entries(
    request: Request,
    actor: str | None = None,
    action: str | None = None,
    resource: str | None = None,
    topic: str | None = None,
    since: str | None = Query(None, alias="from", description="ISO time, inclusive"),
    until: str | None = Query(None, alias="to", description="ISO time, exclusive"),
    after: int = Query(-1, ge=-1, le=MAX_INT64),
    limit: int = Query(100, ge=1, le=10_000),
    _: Principal = Depends(authorize("ledger.read")),
) -> dict[str, Any]:
    """Entries matching the filters, in index order, after index ``after``. A reader the
    decision's ``row_filter`` limits to a tenant gets that tenant's entries and those with no
    tenant only; ``next_after`` pages on past the ones it does not see."""
    entries = hub_of(request).ledger.entries(
        tenant_scope=tenant_scope(request),
        actor=actor,
        action=action,
        resource=resource,
        topic=topic,
        since_ms=_ms(since, "from"),
        until_ms=_ms(until, "to"),
        after=after,
        limit=limit,
    )
    return {"entries": entries, "next_after": entries[-1]["index"] if entries else after}


@router.get("/v1/ledger/entries/{index}", response_model=LedgerEntry)
def get_entry(
    index: Annotated[int, Path(ge=0, le=MAX_INT64)],
    request: Request,
    checkpoint: int | None = Query(
        None, ge=1, le=MAX_INT64, description="tree size; default the latest"
    ),
    _: Principal = Depends(authorize("ledger.read")),
) -> dict[str, Any]:
    """An entry with its inclusion proof; another tenant's entry, for a reader limited to a
    tenant, answers 404 as a missing one."""
    ledger = hub_of(request).ledger
    scope = tenant_scope(request)
    try:
        return ledger.entry(index, checkpoint, tenant_scope=scope)
    except CheckpointNotFound:
        if checkpoint is not None:
            raise
        ledger.sync(force_checkpoint=True)
        return ledger.entry(index, checkpoint, tenant_scope=scope)


@router.get("/v1/ledger/lookup", response_model=LedgerEntry)
def lookup(
    request: Request,
    event_id: str | None = Query(None, max_length=200, description="the event's ce_id"),
    topic: str | None = Query(None, max_length=255),
    partition: int | None = Query(None, ge=0, le=2**31 - 1),
    offset: int | None = Query(None, ge=0, le=2**63 - 1),
    include_event: bool = Query(
        False, description="add the event's bytes (base64) for `hub-verify leaf`; needs event.read"
    ),
    principal: Principal = Depends(authorize("ledger.read")),
) -> dict[str, Any]:
    """The ledger entry of one event (by event id, or topic/partition/offset): entry index, leaf
    hash and inclusion proof against the latest checkpoint."""
    from ledger.lookup import authorize_event_read, find_entry

    hub = hub_of(request)

    def event_read(record: StoredRecord) -> None:  # the raw bytes are a read of the event
        authorize_event_read(hub.policy, principal, record, {"method": "GET"})

    return find_entry(
        hub.ledger,
        event_id=event_id,
        topic=topic,
        partition=partition,
        offset=offset,
        authorize_event=event_read if include_event else None,
        tenant_scope=tenant_scope(request),
    )


@router.get("/v1/ledger/checkpoints", response_model=list[Checkpoint])
def list_checkpoints(
    request: Request,
    min_size: int = Query(0, ge=0, le=MAX_INT64),
    max_size: int | None = Query(None, ge=0, le=MAX_INT64),
    _: Principal = Depends(authorize("ledger.read")),
) -> list[dict[str, Any]]:
    return [
        {
            "size": c.size,
            "root": c.root.hex(),
            "time_us": c.time_us,
            "hash": c.hash.hex(),
            "note": c.note.decode(),
        }
        for c in hub_of(request).ledger.checkpoints(min_size=min_size, max_size=max_size)
    ]


@router.get("/v1/ledger/checkpoints/latest", response_class=PlainTextResponse, responses=text())
def latest_checkpoint(
    request: Request, _: Principal = Depends(authorize("ledger.read"))
) -> PlainTextResponse:
    cp = hub_of(request).ledger.store.latest_checkpoint()
    if cp is None:
        raise CheckpointNotFound("No checkpoint has been signed yet: the ledger is empty.")
    return PlainTextResponse(cp.note.decode(), media_type="text/plain; charset=utf-8")


@router.get("/v1/ledger/consistency", response_model=ConsistencyProof)
def consistency(
    request: Request,
    size1: int = Query(..., alias="from", ge=0, le=MAX_INT64),
    size2: int = Query(..., alias="to", ge=0, le=MAX_INT64),
    _: Principal = Depends(authorize("ledger.read")),
) -> dict[str, Any]:
    return hub_of(request).ledger.consistency(size1, size2)


@router.get("/v1/ledger/public-key", response_class=PlainTextResponse, responses=text())
def public_key(
    request: Request, _: Principal = Depends(authorize("ledger.read"))
) -> PlainTextResponse:
    return PlainTextResponse(hub_of(request).ledger.public_key() + "\n")


# -- the ledger in the C2SP tlog-tiles layout (c2sp.org/tlog-tiles) ----------------------------
# Full tiles never change (cached a year), but the routes need ``ledger.read`` and an entry
# bundle is answered by tenant scope: only the reader's own cache may keep a tile (``private``: a
# shared cache would hand it to a client with no key), and only for the key it was fetched
# with (``Vary: Authorization``: one browser used under two keys asks again for the second).
_IMMUTABLE = "private, max-age=31536000, immutable"
_PER_KEY = {"Vary": "Authorization"}


@router.get("/v1/ledger/tlog/checkpoint", response_class=PlainTextResponse, responses=text())
def tlog_checkpoint(
    request: Request, _: Principal = Depends(authorize("ledger.read"))
) -> PlainTextResponse:
    """The latest signed checkpoint (a C2SP signed note), the root of the tile layout."""
    cp = hub_of(request).ledger.store.latest_checkpoint()
    if cp is None:
        raise CheckpointNotFound("No checkpoint has been signed yet: the ledger is empty.")
    return PlainTextResponse(
        cp.note.decode(),
        media_type="text/plain; charset=utf-8",
        headers={"Cache-Control": "no-cache", **_PER_KEY},
    )


@router.get(
    "/v1/ledger/tlog/tile/{path:path}",
    response_class=Response,
    responses=binary("application/octet-stream"),
)
def tlog_tile(
    path: Annotated[str, Path(max_length=200, description="<L>/<N>[.p/<W>] or entries/<N>...")],
    request: Request,
    _: Principal = Depends(authorize("ledger.read")),
) -> Response:
    """A hash tile or an entry bundle; full ones are immutable (cached a year), partial not.
    An entry bundle holding another tenant's entries is refused to a tenant-limited reader."""
    from ledger import tlog

    ledger = hub_of(request).ledger
    tile = tlog.parse(path)
    if tile.level is None:
        data = tlog.entry_bundle(ledger, tile.index, tile.width, tenant_scope=tenant_scope(request))
    else:
        data = tlog.hash_tile(ledger, tile.level, tile.index, tile.width)
    cache = "no-cache" if tile.partial else _IMMUTABLE
    return Response(
        data, media_type="application/octet-stream", headers={"Cache-Control": cache, **_PER_KEY}
    )


@router.post("/v1/ledger/verify", response_model=Verification)
def verify(
    request: Request,
    full: bool | None = Query(
        None,
        description="true: re-derive every leaf from the log (a key of the hub's own tenant "
        "or one allowed every tenant); false: incremental from the last verified checkpoint "
        "(full when the periodic full verify is due, HUB_LEDGER_FULL_VERIFY_EVERY_S). Default: "
        "full for those keys, incremental for a key of one tenant. A key of one tenant "
        "never runs a full verification: with no verified checkpoint yet (a fresh hub, or "
        "its note gone or invalid) it is refused (409 first_verify_hub_wide) until a hub-wide "
        "key has verified once, and when the periodic full verify is due it still verifies "
        "incrementally (the period is the hub-wide keys' to keep).",
    ),
    principal: Principal = Depends(authorize("ledger.verify")),
) -> dict[str, Any]:
    """Verify the ledger against the log, as ``hub ledger verify`` does, and remember the
    verified checkpoint. A verification re-derives the entries it began with without the
    ledger's sync and holds the sync, which every acknowledgement of every tenant waits for,
    only for the tail (``ledger.verify._Unlocked``): one runs at a time (503
    ``verify_running``, ``Retry-After``),
    and only a key of the hub's own tenant or one allowed every tenant runs a full one (every
    tenant's records re-read); a key of one tenant verifies incrementally, and is refused
    (``first_verify_hub_wide``) while there is no verified checkpoint to start from: else each
    of its requests would be a full verification."""
    from ledger.verify import load_verified, record_verification, verify_remembered

    h = hub_of(request)
    # decided as the hub's own tenant's: one tenant's key needs tenant.all
    context = {**decision_context(request), "tenant": HUB_TENANT}
    decision = h.policy.decide(principal, "ledger.verify", "ledger", context)
    hub_wide = decision.allow  # which kind the key may run: a question, not a refusal
    if full is None:
        full = hub_wide
    elif full:  # asked for: a deny is a refusal, counted as one
        try:
            count_decision(h, route_of(request), "ledger.verify", decision)
        except Forbidden as exc:
            raise Forbidden(
                "A full verification re-reads every tenant's records (and confirms a "
                "finding while every acknowledgement waits): only a key of the hub's own "
                "tenant or one allowed every tenant may ask for one. Verify without full=true "
                "(incremental from the last verified checkpoint), or verify the tiles "
                "offline with hub-verify.",
                code="full_verify_hub_wide",
            ) from exc
    gate = request.app.state.ledger_verify_gate
    if not gate.acquire(blocking=False):
        raise VerifyRunning(
            "A ledger verification is already running in this hub process; send the request "
            "again in a moment (Retry-After)."
        )
    try:
        if not hub_wide:  # one tenant's key never runs a full verification
            remembered, why = load_verified(h.ledger, h.settings.ledger_verified_path)
            if remembered is None:
                raise Conflict(
                    f"There is no verified checkpoint to verify from ({why}), so this would be "
                    "a full verification, which re-reads every tenant's records: a hub-wide key "
                    "(of the hub's own tenant or allowed every tenant) must run the first one "
                    "(POST /v1/ledger/verify, or hub ledger verify). Ask the hub's operator; "
                    "after it, this key verifies incrementally.",
                    code="first_verify_hub_wide",
                )
        run = verify_remembered(
            h.ledger,
            h.settings.ledger_verified_path,
            h.log,
            full=full,
            full_every_s=h.settings.ledger_full_verify_every_s,
            periodic_full=hub_wide,  # the periodic full verify is the hub-wide keys' to run
        )
        result = run.report.as_dict()
        record_verification(h.ledger, principal, result)
        run.remember(h.ledger, h.settings.ledger_verified_path)
    finally:
        gate.release()
    outcome = "ok" if result.get("ok") else "failed"
    h.metrics.ledger_verifications.labels(outcome).inc()
    return result


@router.post("/v1/evidence", response_class=Response, responses=binary("application/zip"))
def export_evidence(
    request: Request,
    since: str = Query(..., alias="from"),
    until: str = Query(..., alias="to"),
    controls: str = Query("CC6,CC7,CC8,PI1"),
    principal: Principal = Depends(authorize("evidence.export")),
) -> Response:
    from ledger.controls import parse_controls
    from ledger.evidence import parse_time

    try:
        wanted = parse_controls(controls)
    except ValueError as exc:
        raise InvalidInput(f"controls: {exc}", code="invalid_controls") from exc
    pack = export_evidence_pack(
        hub_of(request),
        parse_time(since, "from"),
        parse_time(until, "to"),
        wanted,
        actor=principal.id,
        tenant_scope=tenant_scope(request),
    )
    return Response(
        pack.data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{pack.filename}"'},
    )
