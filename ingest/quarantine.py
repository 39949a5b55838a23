"""Reading the quarantine topic and replaying its records through the pipeline after a fix.

A quarantined record is a ``hub.RecordQuarantined`` event on ``hub.quarantine`` (one partition),
addressed by its offset. Replay re-ingests the original bytes: JSON as JSON, wire-format values as
wire format, CSV rows parsed with the header their content type carries (``text/csv;
columns=<base64 header line>``) and typed by the topic's current schema; each with the event id
given at first receipt and ``attempt + 1``, from the source ``replay:<original source>``, for
the tenant that first sent it (``ce_tenant``; ``default`` for an entry without one). A
record that fails again is quarantined again (a new offset, the higher attempt); one that passes
is appended once. Truncated originals cannot be replayed, nor erased ones.
A sealed entry's ``original_sha256`` is listed as ``sealed`` and opened with its original; the
list names the subject it is sealed for (``sealed_for``: a data subject id, or
``unattributed:<entry id>`` for a personal record naming none, which an officer erases like
any subject) and whether it was ``erased``.

Each unattributed entry has a key of its own: ``ingest.unattributed`` bounds them per tenant
(``UnattributedKeys.limit``, 10 000 by default, counted over the entries the topic keeps):
beyond the limit, a tenant's further unattributed originals are sealed under one shared key,
``unattributed:overflow:<tenant>`` (their entries' reason says so), so that a sender flooding
unparseable personal records cannot grow the key store without bound. Nothing is refused: the
records are kept sealed all the same; erasing the shared subject shreds them together. When
retention removes entries (a policy on ``topic:hub.quarantine``), ``shred_removed`` destroys
the keys of the unattributed subjects no kept entry names any more (a crypto-shred: a copy of
the topic from before the cut, e.g. a backup, cannot be opened either).

The quarantine is immutable, so a replay is recorded beside it: one ``hub.QuarantineReplayed``
event per replayed entry on ``hub.quarantine-replays`` (outcome ``accepted`` with the topic,
partition and offset it landed at, ``rejected`` with the new quarantine offset, or
``duplicate``), in the same transaction as the replayed records. An entry's ``status`` is the
fold of those events: ``pending``, ``replayed`` (accepted or duplicate) or ``requarantined``.
Replaying an entry that is not pending is refused, naming where it went.
"""

from __future__ import annotations

import base64
import csv
import json
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from core import jsonkeys, lineage
from core.avro import serde
from core.errors import InvalidInput, NotFound
from core.events import tenant_of
from core.pii import legacy_readable
from core.ports.eventlog import EventLog, Record, RecordMetadata, StoredRecord
from core.ports.keystore import KeyStore
from domain.envelope import Envelope
from ingest.files import csv_header_of, csv_types, parse_csv_row
from ingest.pipeline import (
    QUARANTINE_TOPIC,
    SEALED_DIGEST,
    SEALED_FOR,
    WIRE,
    IngestPipeline,
    IngestResult,
    RawRecord,
)
from ingest.replays import REPLAYS_TOPIC
from ingest.unattributed import sealed_for_unattributed

_logger = logging.getLogger("hub.quarantine")


def unattributed_of(rec: StoredRecord) -> str | None:
    """The ``unattributed:*`` subject a quarantine record's original is sealed for, or None."""
    return sealed_for_unattributed(rec, SEALED_FOR)


def sealed_unattributed(
    log: EventLog, partition: int, start: int
) -> list[tuple[int, str, str | None]]:
    """(offset, subject, tenant) of every entry of ``hub.quarantine`` from ``start`` whose
    original is sealed for an unattributed subject: read by retention BEFORE it cuts the topic.
    The tenant is the entry's (its key is that tenant's, ``TenantKeys``); None: no tenant."""
    out = []
    for rec in log.scan(QUARANTINE_TOPIC, partition, start):
        subject = unattributed_of(rec)
        if subject is not None:
            out.append((rec.offset, subject, tenant_of(rec)))
    return out


def shred_removed(
    sealed: list[tuple[int, str, str | None]], keystore: KeyStore, removed_to: int
) -> list[str]:
    """Destroy the keys of the unattributed subjects (``sealed_unattributed``) of the entries
    below ``removed_to``, which retention deleted, except those an entry kept still names (a
    tenant's overflow subject); returns the subjects whose keys were destroyed. Each entry's
    tenant-scoped key is destroyed, and the subject's hub-wide key of before keys were scoped
    (the subject is the hub's own, one per entry or tenant: no other tenant's data is under it)."""
    gone = {(subject, tenant) for offset, subject, tenant in sealed if offset < removed_to}
    kept = {(subject, tenant) for offset, subject, tenant in sealed if offset >= removed_to}
    shredded = sorted(gone - kept, key=lambda st: (st[0], st[1] or ""))
    kept_subjects = {subject for subject, _ in kept}
    for subject, tenant in shredded:
        if tenant is not None:
            keystore.for_tenant(tenant).destroy(subject)
        if subject not in kept_subjects:
            keystore.destroy(subject)
    if shredded:
        _logger.info("retention destroyed %d unattributed quarantine keys", len(shredded))
    return sorted({subject for subject, _ in shredded})


def replay_marks(pipeline: IngestPipeline) -> dict[int, dict[str, Any]]:
    """The latest ``hub.QuarantineReplayed`` event per quarantine offset."""
    return pipeline.replays.all()


def status_of(mark: dict[str, Any] | None) -> str:
    if mark is None:
        return "pending"
    return "requarantined" if mark["outcome"] == "rejected" else "replayed"


def _where(mark: dict[str, Any]) -> str:
    at = serde.to_json(mark["replayed_at"])
    if mark["outcome"] == "accepted":
        return (
            f"at {at} by {mark['replayed_by']}: it is on topic {mark['topic']!r} partition "
            f"{mark['partition']} offset {mark['offset']}"
        )
    if mark["outcome"] == "duplicate":
        return f"at {at} by {mark['replayed_by']}: the record was already in {mark['topic']!r}"
    return (
        f"at {at} by {mark['replayed_by']} and failed again: replay its new quarantine entry "
        f"at offset {mark['offset']} instead"
    )


def decode_entry(
    pipeline: IngestPipeline,
    offset: int,
    *,
    unseal: bool = True,
    tenant_scope: str | None = None,
) -> dict[str, Any]:
    """The quarantine entry at ``offset``; a sealed original is unsealed unless ``unseal`` is
    False (a reader whose decision masks PII): then it is left out (``original_masked``).
    A reader limited to ``tenant_scope`` (None: every tenant) is told another tenant's entry
    is not there, as for a missing one."""
    recs = pipeline.log.read(QUARANTINE_TOPIC, 0, offset, 1)
    if (
        not recs
        or recs[0].offset != offset
        or recs[0].value is None
        or (tenant_scope is not None and tenant_of(recs[0]) != tenant_scope)
    ):
        raise NotFound(
            f"No quarantined record at offset {offset}: list them with `hub quarantine list`.",
            code="quarantine_entry_not_found",
        )
    rec = recs[0]
    schema_id, _ = serde.split_wire(rec.value)  # type: ignore[arg-type]
    value: dict[str, Any] = serde.decode(rec.value, pipeline.registry.parsed(schema_id))  # type: ignore[arg-type]
    value["offset"] = rec.offset
    value["tenant"] = tenant_of(rec)
    sealed_for = next((v.decode() for k, v in rec.headers if k == SEALED_FOR), None)
    if sealed_for is not None:
        # The original was sealed under its data subject's key (it holds PII in clear).
        value["sealed_for"] = sealed_for
        digest: str = value["original_sha256"]
        if not unseal:
            value["original"] = b""
            value["original_masked"] = True
            value["original_sha256"] = _shown_digest(digest)
            return value
        codec = pipeline.publisher.codec()
        # opened as the entry's own tenant (ce_tenant as stored); entries sealed before the
        # tenant was bound (v1) stay readable: a stored record, not a submitted value
        legacy = legacy_readable(rec.headers)
        opened = codec.unseal(
            sealed_for, value["original"], QUARANTINE_TOPIC, tenant=value["tenant"], legacy=legacy
        )
        value["erased"] = opened is None
        value["original"] = b"" if opened is None else opened
        if digest.startswith(SEALED_DIGEST):
            plain = codec.unseal(
                sealed_for,
                base64.b64decode(digest[len(SEALED_DIGEST) :]),
                QUARANTINE_TOPIC,
                "original_sha256",
                tenant=value["tenant"],
                legacy=legacy,
            )
            value["original_sha256"] = "" if plain is None else plain.decode()
    elif value["reason_code"] == "key_destroyed":
        value["erased"] = True
    return value


def _shown_digest(digest: str) -> str:
    """A listed entry's ``original_sha256``: a digest sealed with the original is shown as
    ``sealed`` (``decode_entry`` opens it for a reader who may see the original)."""
    return "sealed" if digest.startswith(SEALED_DIGEST) else digest


def entries(
    pipeline: IngestPipeline,
    offset: int = 0,
    limit: int = 100,
    topic: str | None = None,
    tenant_scope: str | None = None,
) -> list[dict[str, Any]]:
    """Quarantined records from ``offset`` (without their original bytes), each with its
    ``tenant``, replay ``status`` (``pending``, ``replayed``, ``requarantined``) and
    ``replayed_to``; a sealed one names ``sealed_for``, and ``erased`` says whether its
    original was shredded (asking the key store once for the whole page). A reader limited to
    ``tenant_scope`` (None: every tenant) gets that tenant's entries only (an entry without a
    tenant counts as ``default``; one carrying ``ce_tenant`` twice belongs to no tenant: only
    an every-tenant reader sees it)."""
    out = []
    marks = replay_marks(pipeline)
    for rec in pipeline.log.scan(QUARANTINE_TOPIC, 0, offset):
        if rec.value is None:
            continue
        tenant = tenant_of(rec)
        if tenant_scope is not None and tenant != tenant_scope:
            continue
        schema_id, _ = serde.split_wire(rec.value)
        v = serde.decode(rec.value, pipeline.registry.parsed(schema_id))
        if topic and v["topic"] != topic:
            continue
        v.pop("original")
        v["original_sha256"] = _shown_digest(v["original_sha256"])
        sealed_for = next((h.decode() for k, h in rec.headers if k == SEALED_FOR), None)
        if sealed_for is not None:
            v["sealed_for"] = sealed_for  # the subject an officer names to shred the original
        v["erased"] = v["reason_code"] == "key_destroyed"
        v["offset"] = rec.offset
        v["tenant"] = tenant
        mark = marks.get(rec.offset)
        v["status"] = status_of(mark)
        v["replayed_to"] = None
        if mark is not None:
            v["replayed_to"] = {k: mark[k] for k in ("topic", "partition", "offset", "outcome")}
        out.append(serde.to_json(v))
        if len(out) >= limit:
            break
    by_tenant: dict[str, set[str]] = {}
    for e in out:
        if "sealed_for" in e and e["tenant"] is not None:
            by_tenant.setdefault(e["tenant"], set()).add(e["sealed_for"])
    if by_tenant and pipeline.publisher.pii is not None:
        keystore = pipeline.publisher.pii.keystore
        erased = {  # each entry's key is its tenant's
            (t, s)
            for t, subjects in by_tenant.items()
            for s in keystore.for_tenant(t).erased_among(subjects)
        }
        for e in out:
            if (e["tenant"], e.get("sealed_for")) in erased:
                e["erased"] = True
    return out


def _log_form(pipeline: IngestPipeline, entry: dict[str, Any]) -> bool:
    """Whether a quarantined wire value's writer schema is now a log form (PII as ciphertext);
    an id still unknown, or bytes that are no wire value, are not (the pipeline names those)."""
    from core.pii import encrypts

    try:
        writer_id, _ = serde.split_wire(entry["original"])
        return encrypts(pipeline.registry.parsed(writer_id).text)
    except Exception:  # not wire format, an id the registry does not hold
        return False


def to_raw(entry: dict[str, Any], pipeline: IngestPipeline | None = None) -> RawRecord:
    """The record to re-ingest for a quarantine entry (CSV rows need ``pipeline``'s schemas)."""
    if entry.get("erased"):
        raise InvalidInput(
            f"Quarantined record {entry['offset']} belongs to an erased data subject; its "
            "original is shredded and cannot be replayed.",
            code="not_replayable",
        )
    if entry.get("reason_code") == "ciphertext_refused":
        # A producer sent the hub's own ciphertext (hub.api.routers.ingest._no_ciphertext):
        # replaying it would decrypt it into the sender's tenant, the oracle that was refused.
        raise InvalidInput(
            f"Quarantined record {entry['offset']} holds PII ciphertext a producer sent: it is "
            "never decrypted for its sender, so it is not replayed; ask for plain values.",
            code="not_replayable",
        )
    if entry["content_type"] == WIRE and pipeline is not None and _log_form(pipeline, entry):
        # Its reason is not ``ciphertext_refused`` (it named a schema id nobody held when it
        # came: ``unknown_schema_id``), but that id is a log form now: globex sent acme's stored
        # ciphertext under the next free ids, then registered a compatible log form (one more
        # field of type null: the same bytes) that took one. Replayed, it was decrypted into a
        # globex record, the oracle ``ciphertext_refused`` closes at the route.
        raise InvalidInput(
            f"Quarantined record {entry['offset']} is a wire value whose writer schema is a log "
            "form (its PII fields hold ciphertext): it is never decrypted for its sender, so it "
            "is not replayed; ask for plain values.",
            code="not_replayable",
        )
    if entry["truncated"]:
        raise InvalidInput(
            f"Quarantined record {entry['offset']} was kept truncated "
            f"({entry['original_size']} bytes, over the size limit) and cannot be replayed.",
            code="not_replayable",
        )
    original: bytes = entry["original"]
    common: dict[str, Any] = {
        "event_type": entry["event_type"],
        "key": entry["key"],
        "event_id": entry["event_id"],
    }
    if entry["content_type"] == WIRE:
        return RawRecord(original, kind="wire", content_type=WIRE, **common)
    header = csv_header_of(entry["content_type"]) if pipeline is not None else None
    if header is not None and pipeline is not None:
        types = csv_types(pipeline.target(entry["topic"], entry["event_type"]).plain.parsed)
        try:
            value = parse_csv_row(original, header, types)
        except (ValueError, UnicodeDecodeError, csv.Error) as exc:
            return RawRecord(
                original,
                content_type=entry["content_type"],
                error=f"The CSV row is still malformed: {exc}.",
                error_code="malformed_csv",
                **common,
            )
        return RawRecord(original, value=value, content_type=entry["content_type"], **common)
    try:
        # A replayed original is refused for a repeated member name as on first ingest.
        value = json.loads(
            original.decode("utf-8"),
            parse_float=Decimal,
            object_pairs_hook=jsonkeys.unique_members,
        )
        if not isinstance(value, dict):
            raise ValueError("not an object")
    except jsonkeys.DuplicateKey as exc:
        return RawRecord(
            original,
            content_type=entry["content_type"],
            error=f"The original bytes are still ambiguous JSON: {exc}.",
            error_code="duplicate_key",
            **common,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        return RawRecord(
            original,
            content_type=entry["content_type"],
            error=f"The original bytes are still not a JSON object: {exc}.",
            error_code="malformed_record",
            **common,
        )
    if entry["content_type"] == "application/x-ndjson" and isinstance(value.get("value"), dict):
        value = value["value"]  # an NDJSON line holds the whole event; its value is inside
    return RawRecord(original, value=value, content_type=entry["content_type"], **common)


def replay(
    pipeline: IngestPipeline,
    offsets: Iterable[int],
    replayed_by: str = "operator",
    allow_tenant: Callable[[str], None] | None = None,
) -> dict[str, IngestResult]:
    """Replay quarantined records by offset, per target topic; returns the results by topic.

    One lineage run of ``ingest.replay`` reads ``hub.quarantine`` and writes the topics replayed
    into (and ``hub.quarantine`` again when a record fails again). An offset that is not there
    or not replayable fails the call before the run starts and before anything is appended.
    ``allow_tenant`` is called with each tenant the records belong to before anything is
    appended (a replay publishes in that tenant's name); it raises to refuse the call."""
    by_topic: dict[str, list[tuple[dict[str, Any], RawRecord]]] = {}
    marks = replay_marks(pipeline)
    for off in offsets:
        mark = marks.get(off)
        if mark is not None:
            raise InvalidInput(
                f"Quarantined record {off} was already replayed {_where(mark)}.",
                code="already_replayed",
            )
        e = decode_entry(pipeline, off)
        if e["tenant"] is None:
            raise InvalidInput(
                f"Quarantined record {off} carries its tenant header (ce_tenant) more than once: "
                "it belongs to no tenant and is not replayed.",
                code="ambiguous_tenant",
            )
        by_topic.setdefault(e["topic"], []).append((e, to_raw(e, pipeline)))
    if allow_tenant is not None:
        for tenant in sorted({e["tenant"] for items in by_topic.values() for e, _ in items}):
            allow_tenant(tenant)
    quarantine = lineage.topic_dataset(QUARANTINE_TOPIC)
    out: dict[str, IngestResult] = {}
    with lineage.tracked(
        pipeline.publisher,
        "ingest.replay",
        [quarantine],
        [lineage.topic_dataset(t) for t in by_topic],
        producer=replayed_by,
    ) as run:
        for topic, items in by_topic.items():
            total = IngestResult()
            # One batch per attempt number and tenant, so each re-quarantined record gets its own
            # attempt + 1 and every record keeps the tenant it was first sent by.
            for attempt, tenant in sorted({(e["attempt"], e["tenant"]) for e, _ in items}):
                chosen = [e for e, _ in items if (e["attempt"], e["tenant"]) == (attempt, tenant)]
                group = [r for e, r in items if (e["attempt"], e["tenant"]) == (attempt, tenant)]
                result = pipeline.ingest(
                    topic,
                    group,
                    source=f"replay:{items[0][0]['source']}",
                    producer=replayed_by,
                    tenant=tenant,
                    attempt=attempt + 1,
                    marks=_marker(
                        pipeline, topic, [e["offset"] for e in chosen], replayed_by, tenant
                    ),
                )
                if result.rejected:
                    run.add_output(quarantine)
                total.add(result)
            out[topic] = total
    return out


def _marker(
    pipeline: IngestPipeline, topic: str, offsets: list[int], replayed_by: str, tenant: str
) -> Any:
    """The ``marks`` callback of one replay batch: a ``hub.QuarantineReplayed`` record per entry
    (``offsets[i]`` is the quarantine offset of the batch's record ``i``), carrying the batch's
    ``tenant`` (the entries' own, so replay counts keep to it)."""

    def marks(found: list[tuple[int, str, RecordMetadata | None]]) -> list[tuple[str, Record]]:
        t = pipeline.target(REPLAYS_TOPIC, None)
        now = datetime.now(UTC)
        out: list[tuple[str, Record]] = []
        for i, outcome, meta in found:
            value = {
                "quarantine_offset": offsets[i],
                "topic": topic,
                "outcome": outcome,
                "partition": None if meta is None or outcome != "accepted" else meta.partition,
                "offset": None if meta is None else meta.offset,
                "replayed_by": replayed_by,
                "replayed_at": now,
            }
            envelope = Envelope(
                event_type=t.name,
                producer=replayed_by,
                classification=t.classification,
                occurred_at=now,
                tenant=tenant,
            )
            record = Record(
                value=serde.encode(t.schema_id, t.schema, value),
                key=topic.encode(),
                headers=envelope.to_headers(),
            )
            out.append((REPLAYS_TOPIC, record))
        return out

    return marks
