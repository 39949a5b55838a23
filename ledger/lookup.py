"""Find the ledger entry of one event: by event id (``ce_id``) or by topic/partition/offset.

:func:`find_entry` answers the entry (index, leaf hash, fields), its inclusion proof against the
latest signed checkpoint (syncing and signing one first when the event is not covered yet), and,
with ``include_event``, the event itself as ``hub-verify leaf`` reads it: topic, partition,
offset, timestamp_ms, headers ``[[name, base64]]`` and the key and value bytes as base64, so an
auditor can recompute the leaf hash from the event alone.

Finding an event id: a UUIDv7 carries its creation time (48-bit Unix milliseconds), so the
ledger's time column is searched first in a window of ``WINDOW_MS`` around it; an id that is not
a UUIDv7, or an event whose log time is far from its id's time, falls back to a scan of every
synced record. Event ids are read from the records' ``ce_id`` header, never trusted from an index.

An event id is not unique across the log: a sender may supply its own (``event_id``), and
duplicates are refused per topic within a window only. So every record in the searched range
that carries the id is found, and when more than one is visible to the reader the answer is
``AmbiguousEventId`` naming each position, never the first one met: the first met was a
matter of partition order, and a publisher of another topic (or of the same one, past the
duplicate window) could make its own record the one an auditor is handed, proof and all.
"""

from __future__ import annotations

import base64
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from core.errors import Conflict, DuplicateEnvelopeHeader, Forbidden, InvalidInput
from core.events import is_internal_topic, tenant_of
from core.ports.eventlog import StoredRecord
from core.ports.policy import Decision, PolicyEngine, Principal
from ledger.errors import CheckpointNotFound, EntryNotFound
from ledger.service import Ledger

WINDOW_MS = 10 * 60 * 1000
EVENT_ID_HEADER = "ce_id"


def event_json(record: StoredRecord) -> dict[str, Any]:
    """An event as ``hub-verify leaf`` reads it (bytes as base64, ``None`` kept as null)."""

    def b64(data: bytes | None) -> str | None:
        return None if data is None else base64.b64encode(data).decode("ascii")

    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": record.timestamp_ms,
        "headers": [[k, base64.b64encode(v).decode("ascii")] for k, v in record.headers],
        "key": b64(record.key),
        "value": b64(record.value),
    }


def _uuid7_ms(event_id: str) -> int | None:
    try:
        u = uuid.UUID(event_id)
    except ValueError:
        return None
    return u.int >> 80 if u.version == 7 else None


class AmbiguousEventId(Conflict):
    code = "ambiguous_event_id"


def _matches(records: Iterable[StoredRecord], wanted: bytes) -> list[StoredRecord]:
    out = []
    for r in records:
        try:
            if r.header(EVENT_ID_HEADER) == wanted:
                out.append(r)
        except DuplicateEnvelopeHeader:
            continue  # two ids: it is neither (no copy is picked); verify names the record
    return out


def _search_rows(ledger: Ledger, wanted: bytes, since_ms: int, until_ms: int) -> list[StoredRecord]:
    """Records behind the ledger rows in a time window, read partition range by range: every
    one carrying the id (not the first: see the module docstring)."""
    after = -1
    found: dict[tuple[str, int, int], StoredRecord] = {}
    while True:
        rows = ledger.store.query(since_ms=since_ms, until_ms=until_ms, after=after, limit=10_000)
        if not rows:
            return list(found.values())
        spans: dict[tuple[str, int], list[int]] = defaultdict(list)
        for r in rows:
            spans[(r[1], r[2])].append(r[3])
        for (topic, part), offsets in spans.items():
            span = _read_span(ledger, topic, part, min(offsets), max(offsets))
            for m in _matches(span, wanted):  # a span read on two pages: found once
                found[(m.topic, m.partition, m.offset)] = m
        after = rows[-1][0]


def _read_span(ledger: Ledger, topic: str, part: int, lo: int, hi: int) -> Iterable[StoredRecord]:
    """The records of one partition with offsets in ``[lo, hi]``."""
    pos = lo
    while pos <= hi:
        chunk = [
            r for r in ledger.log.read(topic, part, pos, min(2_000, hi + 1 - pos)) if r.offset <= hi
        ]
        if not chunk:
            return
        yield from chunk
        pos = chunk[-1].offset + 1


def _scan_all(ledger: Ledger, wanted: bytes) -> list[StoredRecord]:
    out: list[StoredRecord] = []
    for t in ledger.log.topics():
        for part, start in sorted(ledger.log.beginning_offsets(t.name).items()):
            out += _matches(ledger.log.scan(t.name, part, start), wanted)
    return out


def records_by_event_id(ledger: Ledger, event_id: str) -> list[StoredRecord]:
    """The log records whose ``ce_id`` header is ``event_id``: those in the id's time window
    (UUIDv7), else those of the whole log; ``EntryNotFound`` if none."""
    text = event_id.strip()
    if not text:
        raise InvalidInput("event_id is empty: give the event's ce_id.", code="invalid_event_id")
    wanted = text.encode()
    found: list[StoredRecord] = []
    ms = _uuid7_ms(text)
    if ms is not None:
        found = _search_rows(ledger, wanted, ms - WINDOW_MS, ms + WINDOW_MS)
    if not found:
        found = _scan_all(ledger, wanted)
    if not found:
        raise _no_event(text)
    return found


def _one(found: list[StoredRecord], event_id: str) -> StoredRecord:
    if len(found) == 1:
        return found[0]
    where = ", ".join(f"{r.topic}[{r.partition}]@{r.offset}" for r in found[:10])
    more = f" and {len(found) - 10} more" if len(found) > 10 else ""
    raise AmbiguousEventId(
        f"Event id {event_id!r} is carried by {len(found)} records ({where}{more}): an event id "
        "is not unique (a sender may supply its own), so none of them is answered for it. Look "
        "the entry up by topic, partition and offset."
    )


def _no_event(text: str) -> EntryNotFound:
    return EntryNotFound(
        f"No event with id {text!r} is in the log: check the id (the event's ce_id header)."
    )


def _record_in_scope(record: StoredRecord, tenant_scope: str) -> bool:
    """``in_scope`` of a record not yet synced, read as its leaf will be (``query_columns``)."""
    from ledger.leaves import query_columns

    tenant = query_columns(record)[3]
    return tenant is None or tenant == tenant_scope


def find_entry(
    ledger: Ledger,
    *,
    event_id: str | None = None,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    authorize_event: Callable[[StoredRecord], object] | None = None,
    tenant_scope: str | None = None,
) -> dict[str, Any]:
    """The ledger entry of one event with its inclusion proof against the latest checkpoint.
    With ``authorize_event``, the event's own bytes too (``event_json``), once it was called
    with the record and returned (it raises to refuse them: ``authorize_event_read``). With
    ``tenant_scope`` (``tenant_scope_of`` the decision), another tenant's event answers the
    same ``EntryNotFound`` as a missing one."""
    by_position = (topic, partition, offset)
    if event_id is not None and any(x is not None for x in by_position):
        raise InvalidInput(
            "Give either event_id or topic, partition and offset, not both.",
            code="invalid_lookup",
        )
    if event_id is None and any(x is None for x in by_position):
        raise InvalidInput(
            "Give event_id, or all three of topic, partition and offset (got "
            f"topic={topic!r}, partition={partition!r}, offset={offset!r}).",
            code="invalid_lookup",
        )
    ledger.sync()
    missing = EntryNotFound(
        f"There is no record at {topic}[{partition}]@{offset} in the log: check the "
        "topic, partition and offset (`hub tail` lists them)."
    )
    if event_id is not None:
        missing = _no_event(event_id.strip())
        found = records_by_event_id(ledger, event_id)
        if tenant_scope is not None:  # another tenant's record is not there for this reader
            found = [r for r in found if _record_in_scope(r, tenant_scope)] or [found[0]]
        record = _one(found, event_id.strip())
    else:
        assert topic is not None and partition is not None and offset is not None
        got = ledger.record_at(topic, partition, offset)
        if got is None:
            raise missing
        record = got
    if tenant_scope is not None and not _record_in_scope(record, tenant_scope):
        raise missing  # another tenant's event: answered as a missing one
    index = ledger.index_of(record.topic, record.partition, record.offset)
    if index is None:
        raise EntryNotFound(
            f"The record {record.topic}[{record.partition}]@{record.offset} has no ledger entry "
            "yet: run `hub ledger sync` and retry."
        )
    try:
        out = ledger.entry(index, tenant_scope=tenant_scope)
    except CheckpointNotFound:
        ledger.sync(force_checkpoint=True)
        out = ledger.entry(index, tenant_scope=tenant_scope)
    except EntryNotFound:
        raise missing from None
    out["event_id"] = (record.header(EVENT_ID_HEADER) or b"").decode("utf-8", "replace") or None
    if authorize_event is not None:
        authorize_event(record)
        out.update(event_json(record))
    return out


def authorize_event_read(
    policy: PolicyEngine,
    principal: Principal,
    record: StoredRecord,
    context: Mapping[str, Any],
) -> Decision:
    """May ``principal`` have ``record``'s own bytes (``event_json``)? The ``event.read``
    decision asked about the record's tenant (its ``ce_tenant``: another tenant's record needs
    ``tenant.all`` or a grant of that tenant, as on the event route), and on an internal topic
    ``internal.read`` too. Raises ``Forbidden`` with the refusing decision's reason; returns the
    allowed ``event.read`` decision. ``context`` is the caller's (channel, method, purpose)."""
    resource = f"/v1/topics/{record.topic}/events"
    decision = policy.decide(
        principal, "event.read", resource, {**context, "tenant": tenant_of(record)}
    )
    if not decision.allow:
        raise Forbidden(f"Access denied: {decision.reason} (policy {decision.policy_version}).")
    if is_internal_topic(record.topic):
        internal = policy.decide(principal, "internal.read", resource, dict(context))
        if not internal.allow:
            raise Forbidden(
                f"Topic {record.topic!r} is internal: reading its events needs the "
                f"internal.read permission ({internal.reason}).",
                code="internal_topic",
            )
    return decision
