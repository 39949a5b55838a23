"""Ingest routes: per-record JSON and Avro batches, quality stats, quarantine and rules.

- ``POST /v1/ingest/{topic}``: JSON, per record (bad ones quarantined, the rest appended in one
  transaction). Body ``{"events": [{"value": {...}, "event_type", "key", "event_id",
  "occurred_at"}]}`` (the quarantine keeps each event's canonical JSON), or
  ``Content-Type: application/x-ndjson`` with one event object per line (byte-exact originals;
  a line that is not UTF-8 or not JSON is quarantined on its own). The strict all-or-nothing
  route stays ``POST /v1/topics/{topic}/events``. A body that is not JSON at all, or over
  ``HUB_MAX_REQUEST_BYTES``, fails the whole request (422 / 413): there are no records to keep.
  The events are read column-wise by Arrow (``hub.api.ingest_batch``); the answer, the stored
  records and the quarantine entries are what the per-record reading gives.
- ``POST /v1/ingest/{topic}/avro``: a body of Confluent wire-format values, each framed by a
  4-byte big-endian length (``application/vnd.hub.wire-batch``); per record like JSON.
- ``GET /v1/quality/stats``: accepted / rejected / replayed counts per topic and rule, from the
  log (``ingest.stats``); duplicates and per-source counts since the process started.
- ``GET /v1/quarantine``, ``GET /v1/quarantine/{offset}``, ``POST /v1/quarantine/replay``.
- ``GET /v1/rules``, ``GET /v1/rules/{subject}``, ``PUT /v1/rules/{subject}`` (a governed config
  change, ``governance.configchanges``).

Push ingest records no OpenLineage run per request (two events per small batch would flood
``hub.lineage``): its per-source counts are in ``/v1/quality/stats`` and the Prometheus metrics,
and every record it appends has its own ledger leaf naming the producer (``ce_source``).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from core.avro import serde
from core.errors import InvalidInput, NotFound
from core.ports.policy import HUB_TENANT, Principal
from domain.quality import RuleSet
from hub.api.deps import (
    MAX_INT64,
    authorize,
    authorize_hub_wide,
    authorize_in_loop,
    count_decision,
    decision_context,
    held_companions,
    hub_of,
    read_body,
    read_json,
    route_of,
)
from hub.api.ingest_batch import ARROW_STREAM, NDJSON, ingest_arrow_body, ingest_body
from hub.api.models import (
    Ingested,
    IngestIn,
    QualityStats,
    QuarantineEntry,
    QuarantinePage,
    ReplayIn,
    RuleSetIn,
    RuleSetOut,
    RuleSetSummary,
    json_body,
    raw_body,
)
from hub.api.positions import codec_of
from ingest.pipeline import QUARANTINE_TOPIC, WIRE, IngestResult, RawRecord

if TYPE_CHECKING:
    from hub.bootstrap import Hub

router = APIRouter(tags=["ingest"])


_body = read_body


def _ingest_body_doc() -> dict[str, Any]:
    """The batch route's bodies: ``{"events": [...]}`` (and NDJSON) by the model, an Arrow IPC
    stream as bytes."""
    doc = json_body(IngestIn, NDJSON)
    doc["requestBody"]["content"][ARROW_STREAM] = {"schema": {"type": "string", "format": "binary"}}
    return doc


@router.post(
    "/v1/ingest/{topic}",
    status_code=200,
    response_model=Ingested,
    openapi_extra=_ingest_body_doc(),
)
async def ingest_json(
    topic: str,
    request: Request,
    principal: Principal = Depends(authorize_in_loop("ingest.publish"), scope="function"),
) -> dict[str, Any]:
    """Ingest JSON records one by one: bad ones go to `hub.quarantine`, the rest are appended
    in one transaction; the answer counts accepted, rejected and duplicate records.

    Body, `Content-Type: application/json`: `{"events": [...]}`. `application/x-ndjson`: one
    event per line (byte-exact originals; a line that is not UTF-8 or JSON is quarantined on its
    own). An event is either the record itself (`{"trade_id": "T1", ...}`) or an envelope
    `{"value": {...record...}, "key", "event_type", "event_id", "occurred_at"}`: an object with
    a `"value"` member is an envelope, any other object is a bare record.

    `application/vnd.apache.arrow.stream`: an uncompressed Arrow IPC stream whose rows are bare
    records, one column per schema field (any order; a missing one takes its default), flat
    types only (bool, ints, floats, decimal, utf8, timestamp, date), no dictionary encoding.
    The records stored are the ones the same events in a JSON body give; a row that fails
    validation or a rule is quarantined with its JSON rendering as the original. The body is
    refused whole (422, `invalid_arrow`) if it is not such a stream or has a column that is
    not a field of the topic's schema.
    """
    hub = hub_of(request)
    _not_spent(hub, principal)
    body = await _body(request)
    # The media type, as HTTP compares it: case-insensitive, parameters apart, whole (a prefix
    # match took `application/vnd.apache.arrow.streamX` for Arrow and `APPLICATION/...` for JSON).
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    ndjson = media == NDJSON
    source = f"http:{principal.id}"

    def work() -> tuple[IngestResult, dict[str, Any]]:
        decided = held_companions(request)  # the decision, stored with the batch
        if media == ARROW_STREAM:
            result = ingest_arrow_body(
                hub.ingest,
                topic,
                body,
                source=source,
                producer=principal.id,
                tenant=principal.tenant,
                companions=decided,
            )
            return result, _covered(hub, result)
        result = ingest_body(
            hub.ingest,
            topic,
            body,
            ndjson=ndjson,
            source=source,
            producer=principal.id,
            tenant=principal.tenant,
            companions=decided,
        )
        return result, _covered(hub, result)

    result, ledger = await run_in_threadpool(work)
    return {"topic": topic, **result.as_dict(), "ledger": ledger}


def _not_spent(hub: Hub, principal: Principal) -> None:
    """Refuse at once (429 ``tenant_rate_limited``) a tenant whose ingest buckets are empty:
    its batch would be refused after its body was read, parsed and validated (the batch itself
    is checked whole before it is stored, ``IngestPipeline.limit``). A flooding tenant's refused
    requests then take next to nothing from the others."""
    hub.ingest.rates.check(principal.tenant, 1, 1)


def _covered(hub: Hub, result: IngestResult) -> dict[str, Any]:
    """The acknowledgement's ``ledger`` member: the accepted records covered, handed over as
    appended (not read back from the log).

    The ingest routes run this and the ingest itself in the thread pool, not in the event
    loop: while one request waits for its log commit's or ledger's fsync, the loop reads and
    authorizes the next ones, whose appends then share a commit (the log's group commit) and
    whose leaves share a ledger sync (a sync covers every record up to the log's end)."""
    return hub.ledger.cover(handed=result.appended_columns)  # built only if a read needs them


@router.post(
    "/v1/ingest/{topic}/avro",
    status_code=200,
    response_model=Ingested,
    openapi_extra=raw_body(
        "application/vnd.hub.wire-batch",
        "application/octet-stream",
        description="Confluent wire-format values, each framed by a 4-byte big-endian length.",
    ),
)
async def ingest_avro(
    topic: str,
    request: Request,
    principal: Principal = Depends(authorize_in_loop("ingest.publish"), scope="function"),
) -> dict[str, Any]:
    """Ingest Confluent wire-format Avro values one by one (bad ones quarantined).

    Body (`Content-Type: application/vnd.hub.wire-batch`): the values back to back, each
    preceded by its length as a 4-byte big-endian unsigned integer:
    `len(v1) v1 len(v2) v2 ...`, where each value is what a Confluent serializer produces
    (magic byte 0, 4-byte big-endian schema id, Avro binary). In Python:
    `b"".join(struct.pack(">I", len(v)) + v for v in values)`. The schema id must be registered
    in this hub's registry; a value written with an older version of the subject is resolved to
    the latest one. On a topic whose schema stores PII encrypted, write plain values with the
    plain `.avsc` (registered under the subject, it is kept under `<subject>-plain`): the hub
    encrypts them. A body that ends inside a frame fails whole (422, `malformed_frame`).
    """
    hub = hub_of(request)
    _not_spent(hub, principal)
    body = await _body(request)
    records: list[RawRecord] = []
    pos = 0
    while pos < len(body):
        if pos + 4 > len(body):
            raise InvalidInput(
                f"The body ends inside a length prefix at byte {pos}: each value must be framed "
                "by a 4-byte big-endian length.",
                code="malformed_frame",
            )
        (n,) = struct.unpack_from(">I", body, pos)
        if pos + 4 + n > len(body):
            raise InvalidInput(
                f"Frame {len(records)} at byte {pos} says {n} bytes, but only "
                f"{len(body) - pos - 4} remain: the body is truncated.",
                code="malformed_frame",
            )
        records.append(RawRecord(body[pos + 4 : pos + 4 + n], kind="wire", content_type=WIRE))
        pos += 4 + n
    if not records:
        raise InvalidInput("The body holds no framed values.", code="invalid_batch")
    records = [_no_ciphertext(hub, r, principal.tenant) for r in records]

    def work() -> tuple[IngestResult, dict[str, Any]]:
        result = hub.ingest.ingest(
            topic,
            records,
            source=f"http:{principal.id}",
            producer=principal.id,
            tenant=principal.tenant,
            companions=held_companions(request),  # the decision, stored with the batch
        )
        return result, _covered(hub, result)

    result, ledger = await run_in_threadpool(work)
    return {"topic": topic, **result.as_dict(), "ledger": ledger}


def _no_ciphertext(hub: Hub, raw: RawRecord, tenant: str) -> RawRecord:
    """``raw``, or an error record (quarantined alone) when its writer schema is a log form
    (PII fields hold ciphertext).

    The pipeline decrypts such a value as a copy of the hub's own record and stores it in the
    sender's tenant; PII keys are per data subject and topics are shared, so from a producer
    that made the hub a decryption oracle across tenants: globex copied acme's stored account
    from the topic (any consumer reads the ciphertext), sent it here, and globex's officer read
    acme's customer in clear. A producer sends plain values; the hub encrypts them."""
    from core.pii import encrypts, pii_fields
    from registry.plain import plain_subject

    try:
        writer_id, _ = serde.split_wire(raw.original)
        text = hub.registry.parsed(writer_id).text
        if not encrypts(text):
            return raw
    except Exception:  # not wire format, an unknown id: the pipeline names the problem
        return raw
    return RawRecord(
        raw.original,
        kind="wire",
        content_type=WIRE,
        error_code="ciphertext_refused",
        error=(
            f"The value was written with schema id {writer_id}, a log form whose PII fields "
            f"({', '.join(pii_fields(text))}) hold ciphertext: producers send plain values, "
            "serialized with the plain schema (the .avsc as shipped; registering it under the "
            f"subject answers with the id of its plain companion, e.g. "
            f"'{plain_subject(_subject_of(hub, writer_id, tenant))}'), and the hub encrypts them."
        ),
    )


def _subject_of(hub: Hub, schema_id: int, tenant: str) -> str:
    """A subject holding ``schema_id`` that ``tenant`` reads (its own or a shared one: the
    error does not name another tenant's), for the error's example, else ``<subject>``."""
    registry = hub.registry
    found = sorted(
        sv.subject
        for sv in registry.subject_versions_of(schema_id)
        if registry.owner(sv.subject) in (None, HUB_TENANT, tenant)
    )
    return found[0] if found else "<subject>"


@router.get("/v1/quality/stats", response_model=QualityStats)
def quality_stats(
    request: Request, _: Principal = Depends(authorize("quarantine.read"))
) -> dict[str, Any]:
    """Accepted records per topic (every record on the topic, from any source), rejected ones
    per topic and rule (the `hub.quarantine` entries) and replays, read from the log so they
    hold across restarts; duplicates are never stored, so `duplicate` and `since_start` come
    from this process's counters. A reader the decision's `row_filter` limits to a tenant gets
    that tenant's counts only (`tenant_scope`), and neither `duplicate` nor `since_start`: the
    process's counters are not kept per tenant."""
    hub = hub_of(request)
    scope = _tenant_scope(request)
    logged = hub.ingest.stats.snapshot(scope)
    totals = {"accepted": logged["accepted"], "rejected": logged["rejected"]}
    by_source: list[dict[str, Any]] = []
    if scope is None:
        for metric in hub.metrics.ingest_records.collect():
            for s in metric.samples:
                if s.name.endswith("_total"):
                    by_source.append({**s.labels, "count": int(s.value)})
        totals["duplicate"] = sum(x["count"] for x in by_source if x["outcome"] == "duplicate")
    return {
        "totals": totals,
        "by_topic": logged["by_topic"],
        "by_rule": logged["by_rule"],
        "replays": logged["replays"],
        "since_start": {"by_source": by_source},
        "quarantine_records": logged["rejected"],
        "tenant_scope": scope,
    }


def _tenant_scope(request: Request) -> str | None:
    """The tenant the ``quarantine.read`` decision's ``row_filter`` limits this reader to (None:
    every tenant, as for a role granting ``tenant.all``)."""
    from ledger.service import tenant_scope_of

    return tenant_scope_of(request.state.decision.row_filter)


@router.get("/v1/quarantine", response_model=QuarantinePage)
def quarantine_list(
    request: Request,
    offset: int = Query(0, ge=0, le=MAX_INT64),
    limit: int = Query(100, ge=1, le=10_000),
    topic: str | None = None,
    _: Principal = Depends(authorize("quarantine.read")),
) -> dict[str, Any]:
    """Quarantined records from ``offset``; a reader the decision's ``row_filter`` limits to a
    tenant gets that tenant's records only (one without a tenant counts as ``default``), with
    positions for offsets (``_positions``)."""
    from ingest.quarantine import entries

    hub = hub_of(request)
    scope = _tenant_scope(request)
    if scope is None:
        items = entries(hub.ingest, offset, limit, topic)
        return {"records": items, "next_offset": items[-1]["offset"] + 1 if items else offset}
    codec = codec_of(hub)
    start = codec.decode(scope, QUARANTINE_TOPIC, 0, offset)
    items = entries(hub.ingest, start, limit, topic, tenant_scope=scope)
    after = codec.encoder(scope, QUARANTINE_TOPIC, 0)(items[-1]["offset"] + 1) if items else offset
    return {"records": [_positions(hub, scope, e) for e in items], "next_offset": after}


def _positions(hub: Hub, scope: str, entry: dict[str, Any]) -> dict[str, Any]:
    """``entry`` as a reader limited to tenant ``scope`` sees it: its ``offset`` and its
    replay's ``replayed_to.offset`` as that tenant's positions (``hub.api.positions``, as the
    event reads give), so the gaps no longer count other tenants' quarantined records."""
    codec = codec_of(hub)
    out = {**entry, "offset": codec.encoder(scope, QUARANTINE_TOPIC, 0)(entry["offset"])}
    to = entry.get("replayed_to")
    if to is not None and to.get("offset") is not None:
        encode = codec.encoder(scope, to["topic"], to["partition"])
        out["replayed_to"] = {**to, "offset": encode(to["offset"])}
    return out


@router.get("/v1/quarantine/{offset}", response_model=QuarantineEntry)
def quarantine_show(
    offset: Annotated[int, Path(ge=0, le=MAX_INT64)],
    request: Request,
    _: Principal = Depends(authorize("quarantine.read")),
) -> dict[str, Any]:
    """One quarantined record; another tenant's, for a reader limited to a tenant, answers 404
    as a missing one."""
    from ingest.quarantine import decode_entry

    masked = "pii" in request.state.decision.mask  # a sealed original stays sealed
    hub = hub_of(request)
    scope = _tenant_scope(request)
    if scope is not None:  # the path names one of the tenant's positions
        try:
            e = decode_entry(
                hub.ingest,
                codec_of(hub).decode(scope, QUARANTINE_TOPIC, 0, offset),
                unseal=not masked,
                tenant_scope=scope,
            )
        except NotFound:  # named by the position asked, not the offset it decodes to
            raise NotFound(
                f"No quarantined record at {offset}: list them with GET /v1/quarantine."
            ) from None
    else:
        e = decode_entry(hub.ingest, offset, unseal=not masked)
    original: bytes = e.pop("original")
    out: dict[str, Any] = serde.to_json(e)
    if scope is not None:
        out = _positions(hub, scope, out)
    out["original_base64"] = base64.b64encode(original).decode()
    return out


@router.post(
    "/v1/quarantine/replay",
    response_model=dict[str, dict[str, Any]],
    openapi_extra=json_body(ReplayIn),
)
async def quarantine_replay(
    request: Request, principal: Principal = Depends(authorize("quarantine.replay"))
) -> dict[str, Any]:
    """Body ``{"offsets": [..]}``; returns the outcome per topic."""
    from ingest.quarantine import replay

    payload = await read_json(request)
    offsets = payload.get("offsets") if isinstance(payload, dict) else None
    if not isinstance(offsets, list) or not all(
        isinstance(o, int) and not isinstance(o, bool) and 0 <= o <= MAX_INT64 for o in offsets
    ):
        raise InvalidInput(
            f'Body must be {{"offsets": [<int>, ...]}} with offsets from 0 to {MAX_INT64}.',
            code="invalid_replay",
        )
    hub = hub_of(request)

    def allow_tenant(tenant: str) -> None:
        """A replay publishes in the record's tenant's name: another tenant's record needs the
        policy's allow for that tenant (as ``model.predict`` over another tenant's history)."""
        if tenant != principal.tenant:
            context = {**decision_context(request), "tenant": tenant}
            decision = hub.policy.decide(principal, "quarantine.replay", "quarantine", context)
            count_decision(hub, route_of(request), "quarantine.replay", decision)

    # in the thread pool: on the event loop a long replay held every other request
    results = await run_in_threadpool(replay, hub.ingest, offsets, principal.id, allow_tenant)
    return {t: r.as_dict() for t, r in results.items()}


def _rules_visible(request: Request, principal: Principal) -> Callable[[str], bool]:
    """``hub.registry_scope.rules_visible`` for this request: another tenant's subject's rules
    are decided again as ``rules.read`` for any tenant (recorded like the registry's)."""
    from hub.registry_scope import rules_visible

    hub = hub_of(request)
    context = decision_context(request)

    def decide(action: str, tenant: str) -> bool:
        decision = hub.policy.decide(
            principal, "rules.read", "rules", {**context, "tenant": tenant}
        )
        return bool(decision.allow)

    return rules_visible(hub.registry, hub.log, principal, hub.ingest.rules.shipped(), decide)


@router.get("/v1/rules", response_model=dict[str, RuleSetSummary])
def rules_list(
    request: Request, principal: Principal = Depends(authorize("rules.read"))
) -> dict[str, Any]:
    """The rule sets of the subjects the caller may see (``_rules_visible``)."""
    store = hub_of(request).ingest.rules
    visible = _rules_visible(request, principal)
    return {
        s: {"version": store.version(s), "rules": len(store.get(s).rules)}
        for s in store.subjects()
        if visible(s)
    }


@router.get("/v1/rules/{subject}", response_model=RuleSetOut)
def rules_get(
    subject: str, request: Request, principal: Principal = Depends(authorize("rules.read"))
) -> dict[str, Any]:
    """A subject's rule set; another tenant's the caller may not see answers as a subject
    without rules does (empty, version ``none``)."""
    store = hub_of(request).ingest.rules
    if not _rules_visible(request, principal)(subject):
        return {**RuleSet(subject).as_dict(), "version": "none"}
    return {**store.get(subject).as_dict(), "version": store.version(subject)}


@router.put("/v1/rules/{subject}", response_model=RuleSetOut, openapi_extra=json_body(RuleSetIn))
async def rules_put(
    subject: str,
    request: Request,
    principal: Principal = Depends(authorize_hub_wide("rules.write", "rules")),
) -> dict[str, Any]:
    """Body: the rule set (``{"rules": [...]}``); published as a ``hub.ConfigChanged`` event.
    A subject's rules quarantine every tenant's records on its topic, so ``rules.write`` is
    decided as the hub's own tenant's (``governance.configchanges.hub_wide``)."""
    payload = await read_json(request, exact_decimals=False)  # rule bounds are JSON numbers
    if isinstance(payload, dict):
        payload.setdefault("subject", subject)
    hub = hub_of(request)
    # A governed change (`hub config`): refused under the two-person rule, recorded on the ledger.
    from ingest.rules import rules_resource

    hub.config_changes.set_direct(principal, rules_resource(subject), payload, "PUT /v1/rules")
    rs, version = hub.ingest.rules.get(subject), hub.ingest.rules.version(subject)
    return {**rs.as_dict(), "version": version}
