"""Every policy decision becomes an event: ``hub.PolicyDecisionRecorded`` on ``hub.decisions``.

``RecordingPolicyEngine`` wraps any PolicyEngine. For each decision it records the decision id
(UUIDv7), principal and the id of the key it authenticated with (never a secret), action,
resource, policy bundle version, result, reason, obligations and the
SHA-256 of the canonical JSON input, as an Avro event; the audit ledger gives it a Merkle leaf
like every other event.

Batching without losing an allow (group commit, ``DecisionCommitter``):
    1. the caller's decision is queued in the open batch;
    2. a flusher thread takes the batch when it is full (``max_batch``), or, while no other
       batch is being prepared or stored, when its linger ran out: ``linger_ms`` (default 0,
       i.e. at once) when an allowed decision waits in it, ``deny_linger_ms`` when only
       denials do; and under load once the callers the last store woke are back (adaptive
       linger, see ``DecisionCommitter``);
    3. the flusher encodes the batch column-wise (``DecisionEncoder``) and appends it in ONE
       event-log append (one transaction, one fsync on SQLite with ``synchronous=FULL``), then
       wakes the batch's waiters at once (one event per batch; each event loop is woken once
       and settles all of its waiters of the batch in that one call);
    4. an ALLOWED decision is returned to its caller only after step 3 succeeded for its batch:
       a crash before then loses the decision, but the action never ran. If the append fails or
       does not finish within ``wait_timeout_s``, ``decide`` raises ``DecisionNotRecorded`` (a
       ``Retryable``: HTTP 503) instead of allowing (fail closed).
    5. a DENIED decision is returned at once; it is appended with the next batch. A crash may
       lose denials queued in the last ``deny_linger_ms`` (they allowed nothing).
    6. an allowed READ whose action the operator listed in ``policy_unsynced_reads`` is returned
       once queued (flushed at once, like an allow), not once stored: a crash may lose the
       records of reads answered in the last store (one batch per flusher, a few ms). While
       the last store failed, such reads wait like any allow (fail closed). Writes always wait.
       The trade-off is written up in docs/decisions-unsynced-reads.md.
While one batch is being stored the next one fills, so under concurrency many decisions share
one fsync without any caller waiting for a timer. ``decide_async`` does the same for an event
loop: the decision is queued in the loop and awaited without a thread. A caller with many
requests uses ``decide_many`` (or ``decide_many_async``): each request is decided and recorded
as by ``decide``, the records are queued together (one lock, one wake-up, one batch, in
request order) and the call waits once, so the per-decision hand-off costs are paid per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from operator import itemgetter
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, cast

from core.avro import serde
from core.avro.varint import varint, zigzag
from core.errors import PayloadTooLarge, Retryable, is_storage_full
from core.events import OutgoingEvent
from core.policybundle import (
    InputDocumentEngine,
    PreparedInput,
    decision_input,
    input_digest,
    with_now,
)
from core.ports.eventlog import ColumnBatch, Record
from core.ports.policy import Decision, DecisionRequest, PolicyEngine, Principal
from domain.envelope import (
    CONTENT_TYPE,
    H_CAUSATION,
    H_CLASSIFICATION,
    H_CONTENT_TYPE,
    H_CORRELATION,
    H_ID,
    H_SOURCE,
    H_SPECVERSION,
    H_TENANT,
    H_TIME,
    H_TYPE,
    SPECVERSION,
    reserve_uuid7,
    rfc3339_micros,
)

if TYPE_CHECKING:
    from core.ports.eventlog import EventLog
    from ingest.publish import Publisher
    from registry.service import SchemaRegistry

log = logging.getLogger("hub.governance.decisions")

DECISIONS_TOPIC = "hub.decisions"
DECISION_EVENT_TYPE = "hub.PolicyDecisionRecorded"
H_ACTION = "hub_action"  # the ledger's query columns (hub.ledger.leaves)
H_SUBJECT = "ce_subject"


class DecisionNotRecorded(Retryable):
    """An allowed decision could not be stored; the action MUST NOT run (retry later)."""

    code = "decision_not_recorded"
    http_status = 503


class DecisionLogFull(DecisionNotRecorded):
    """The decision could not be stored because the disk has no room (HTTP 507, like
    ``StorageFull``); the action did not run."""

    code = "storage_full"
    http_status = 507


_NO_ROW_FILTER: Mapping[str, str] = MappingProxyType({})


class DecisionRecord(NamedTuple):
    """One decision as recorded. A named tuple, not a frozen dataclass: immutable alike, and
    built in a fifth of the time (one is built per decision, on the caller's path)."""

    decision_id: str
    principal: str
    tenant: str
    roles: tuple[str, ...]
    action: str
    resource: str
    allow: bool
    reason: str
    policy_version: str
    input_sha256: str
    decided_at_us: int
    mask: tuple[str, ...] = ()
    row_filter: Mapping[str, str] = _NO_ROW_FILTER
    purpose: str = ""
    case_id: str = ""
    key_id: str = ""  # the API key that authenticated (never its secret); "" for none

    def value(self) -> dict[str, Any]:
        """The ``hub.PolicyDecisionRecorded`` payload (JSON form)."""
        return {
            "decision_id": self.decision_id,
            "principal": self.principal,
            "tenant": self.tenant,
            "roles": list(self.roles),
            "action": self.action,
            "resource": self.resource,
            "allow": self.allow,
            "reason": self.reason,
            "policy_version": self.policy_version,
            "input_sha256": self.input_sha256,
            "mask": list(self.mask),
            "row_filter": dict(self.row_filter),
            "purpose": self.purpose,
            "case_id": self.case_id,
            "decided_at": datetime.fromtimestamp(self.decided_at_us / 1e6, UTC).isoformat(),
            "key_id": self.key_id,
        }


class DecisionSink(Protocol):
    """Where decision records go, in two steps so that one batch is prepared while another is
    being stored: ``prepare`` MUST NOT store anything (it may raise on a record it cannot
    encode); ``store`` MUST store all of a prepared batch durably or nothing, and raise on
    failure."""

    def prepare(self, records: Sequence[DecisionRecord]) -> Any:
        """The batch ready to store (encoded); raises on a record that cannot be stored."""

    def store(self, prepared: Any) -> None:
        """Store a prepared batch durably, all or nothing; raise on failure."""


class CompanionSink(DecisionSink, Protocol):
    """A sink that can also store other records in the same atomic write as a batch."""

    def store_with(self, prepared: Any, companions: Sequence[Companions]) -> None:
        """Store a prepared batch and every companion's records durably in ONE atomic write
        (all of them or nothing); raise on failure."""


class Companions:
    """Records that a caller's action appends in the same transaction as its decision's batch
    (``DecisionCommitter.enqueue(..., companions=)``): the action's effect and the decision
    that allowed it become durable together, with one fsync. ``error`` is set when they could
    not be stored; the batch's decisions are then stored without them (never lost)."""

    __slots__ = ("error", "records", "topic")

    def __init__(self, topic: str, records: Sequence[Record]) -> None:
        self.topic = topic
        self.records = list(records)
        self.error: BaseException | None = None


class LogDecisionSink:
    """Appends decision records to ``hub.decisions`` in one atomic event-log append.

    The batch is encoded by ``DecisionEncoder`` (schema resolved once, no JSON conversion per
    record); its output is byte-identical to ``Publisher.prepare`` of the same events, which
    stays the reference (and the path taken if the schema ever holds PII or a data subject).
    """

    def __init__(self, log: EventLog, registry: SchemaRegistry, publisher: Publisher) -> None:
        self._log = log
        self._registry = registry
        self._publisher = publisher
        self._encoder: DecisionEncoder | None = None
        # One producer per sink (process): Kafka fences an older producer of the same id.
        self._transactional_id = f"hub.decisions-{uuid.uuid4().hex[:16]}"

    def _ensure_topic(self) -> DecisionEncoder:
        if self._encoder is not None:
            return self._encoder
        from core.errors import TopicNotFound
        from core.events import KEY_FIELD_CONFIG, STRATEGY_CONFIG
        from domain.catalog import schema_text

        try:
            self._log.topic(DECISIONS_TOPIC)
        except TopicNotFound:
            self._log.create_topic(
                DECISIONS_TOPIC, 1, {STRATEGY_CONFIG: "topic", KEY_FIELD_CONFIG: "principal"}
            )
        self._registry.register(f"{DECISIONS_TOPIC}-value", schema_text(DECISION_EVENT_TYPE))
        self._encoder = DecisionEncoder(self._publisher)
        return self._encoder

    def prepare(self, records: Sequence[DecisionRecord]) -> ColumnBatch | list[Record]:
        return self._ensure_topic().encode_batch(records)

    def store(self, prepared: ColumnBatch | list[Record]) -> None:
        if isinstance(prepared, ColumnBatch):
            # The columns straight to the log: no Record or header tuple per decision, and
            # the log's column path encodes them (the same stored bytes as ``append``).
            self._log.append_columns(DECISIONS_TOPIC, prepared)
        else:
            self._log.append(DECISIONS_TOPIC, prepared)

    def store_with(
        self, prepared: ColumnBatch | list[Record], companions: Sequence[Companions]
    ) -> None:
        """The batch (if any) and the companions' records in one event-log transaction: one
        append per topic, the companions' records in their order (on Kafka each append waits
        for its produce round trip, and concurrent registrations each bring one companion)."""
        by_topic: dict[str, list[Record]] = {}
        for c in companions:
            by_topic.setdefault(c.topic, []).extend(c.records)
        with self._log.transaction(self._transactional_id) as txn:
            if len(prepared):
                if isinstance(prepared, ColumnBatch):
                    txn.append_columns(DECISIONS_TOPIC, prepared)
                else:
                    txn.append(DECISIONS_TOPIC, prepared)
            for topic, records in by_topic.items():
                txn.append(topic, records)

    def append(self, records: Sequence[DecisionRecord]) -> None:
        """``prepare`` then ``store``, in the caller's thread."""
        self.store(self.prepare(records))


def decision_event(r: DecisionRecord) -> OutgoingEvent:
    """The event ``Publisher.prepare`` would be given for ``r`` (the reference encoding)."""
    return OutgoingEvent(
        value=r.value(),
        event_type=DECISION_EVENT_TYPE,
        key=r.principal,
        event_id=r.decision_id,
        occurred_at=r.value()["decided_at"],
        headers={H_ACTION: r.action, H_SUBJECT: r.resource},
    )


class DecisionEncoder:
    """Encodes decision records for ``hub.decisions`` a batch at a time.

    Resolves the subject's schema once (the hub registers it itself at start) and fills the
    Avro datum straight from the typed record into the schema's generated encoder
    (``serde.encoder``) and builds the envelope headers without an ``Envelope``;
    ``Publisher.prepare`` instead resolves the schema and converts JSON per call.
    Where the schema needs what only the publisher does (PII encryption, erased data subjects),
    every batch goes through ``Publisher.prepare``.
    """

    def __init__(self, publisher: Publisher) -> None:
        from core.events import classification_of
        from core.pii import plan

        self._publisher = publisher
        self.schema_id, self._schema = publisher.writer_schema(f"{DECISIONS_TOPIC}-value")
        self._name = self._schema.name or DECISION_EVENT_TYPE
        self._classification = classification_of(self._schema)
        pii = plan(self._schema.text)
        self.direct = not pii.encrypted and pii.subject_field is None
        self._max_bytes = publisher.max_record_bytes
        self._encode = serde.encoder(self.schema_id, self._schema)
        self._spec = SPECVERSION.encode()
        self._type = self._name.encode()
        self._class = self._classification.encode()
        self._content = CONTENT_TYPE.encode()
        # The envelope's headers in ``Envelope.to_headers`` order, then the ledger's two.
        self._names = (
            H_SPECVERSION, H_ID, H_TYPE, H_TIME, H_SOURCE, H_CORRELATION, H_CAUSATION,
            H_TENANT, H_CLASSIFICATION, H_CONTENT_TYPE, H_ACTION, H_SUBJECT,
        )  # fmt: skip
        self._header = struct.pack(">bI", serde.MAGIC, self.schema_id)  # Confluent wire header
        # ``_columns``' memos, kept from batch to batch (bounded by _MEMO_MAX).
        self._avro: dict[str, bytes] = {}  # str -> Avro string (zigzag length + UTF-8)
        self._utf8: dict[str, bytes] = {}  # str -> UTF-8 (header values)
        self._lists: dict[tuple[str, ...], bytes] = {}  # array of strings -> Avro array
        self._seconds: dict[int, bytes] = {}  # whole second -> its RFC 3339 prefix
        # every field but the id, digest and time -> their encodings (``_Fixed``)
        self._middles: dict[tuple[Any, ...], _Fixed] = {}
        self._tails: dict[int, bytes] = {}  # zig-zag time >> 14 -> its varint (see _time)

    def encode(self, records: Sequence[DecisionRecord]) -> list[Record]:
        """The batch as ``Record`` objects (what ``EventLog.append`` takes)."""
        batch = self.encode_batch(records)
        return batch.records() if isinstance(batch, ColumnBatch) else batch

    def encode_batch(self, records: Sequence[DecisionRecord]) -> ColumnBatch | list[Record]:
        """The batch for the log: columns (``EventLog.append_columns``) on the direct path,
        else the publisher's records."""
        if not self.direct:
            out: list[Record] = []
            for r in records:  # one prepare per record: each has its own producer and tenant
                out += self._publisher.prepare(
                    DECISIONS_TOPIC, [decision_event(r)], producer=r.principal, tenant=r.tenant
                )
            return out
        return self._columns(records)

    def _columns(self, records: Sequence[DecisionRecord]) -> ColumnBatch:
        """The batch as columns, a column value at a time: within a batch principals, tenants,
        roles, actions, resources, reasons and policy versions repeat, so each distinct string
        (and its header bytes) is encoded once per batch and the Avro datum is a join of
        ready-made parts; the envelope headers the whole batch shares are one ``bytes`` each.
        ``records()`` of it is byte-identical to the generated encoder (``_one``, the
        reference; tests/service/test_decision_encoding.py compares both with
        ``Publisher.prepare``)."""
        # The memos outlive the batch: a batch of one (a lone request's decision) otherwise
        # encodes every string afresh (~half of its 13 us). Each entry is a pure function of
        # its key, so a race between flusher threads at worst computes one twice; cleared
        # together when large, as principals and resources come from callers.
        avro, utf8, lists, seconds = self._avro, self._utf8, self._lists, self._seconds
        middles, tails = self._middles, self._tails
        held = len(avro) + len(utf8) + len(lists) + len(seconds) + len(middles) + len(tails)
        if held > _MEMO_MAX:
            for memo in (avro, utf8, lists, seconds, middles, tails):
                memo.clear()

        def s(text: str) -> bytes:
            found = avro.get(text)
            if found is None:
                raw = text.encode()
                found = avro[text] = _long(len(raw)) + raw
            return found

        def u(text: str) -> bytes:
            found = utf8.get(text)
            if found is None:
                found = utf8[text] = text.encode()
            return found

        def array(items: tuple[str, ...]) -> bytes:
            found = lists.get(items)
            if found is None:
                found = lists[items] = (
                    _long(len(items)) + b"".join(map(s, items)) + b"\x00" if items else b"\x00"
                )
            return found

        def parts(r: DecisionRecord) -> _Fixed:
            """What a record shares with every record of the same request and answer."""
            if r.row_filter:
                pairs = b"".join(s(k) + s(v) for k, v in r.row_filter.items())
                row_filter = _long(len(r.row_filter)) + pairs + b"\x00"
            else:
                row_filter = b"\x00"
            return (
                b"".join(
                    (
                        s(r.principal),
                        s(r.tenant),
                        array(r.roles),
                        s(r.action),
                        s(r.resource),
                        b"\x01" if r.allow else b"\x00",
                        s(r.reason),
                        s(r.policy_version),
                    )
                ),
                array(r.mask) + row_filter + s(r.purpose) + s(r.case_id),
                s(r.key_id),
                u(r.principal),
                u(r.tenant),
                u(r.action),
                u(r.resource),
            )

        header, limit = self._header, self._max_bytes
        small = _SMALL
        values: list[bytes] = []
        ids: list[bytes] = []
        fixed: list[_Fixed] = []
        for r in records:
            # Every field but the id, the digest and the time repeats together across a batch
            # (the same caller asking the same thing, answered alike): one lookup instead of
            # encoding thirteen fields. The key is those fields in order (a row filter's pairs
            # appended: a key of another length, so it never equals one without them).
            same: tuple[Any, ...] = r[1:9] + r[11:12] + r[13:]
            if r.row_filter:
                same += tuple(r.row_filter.items())
            shared = middles.get(same)
            if shared is None:
                shared = middles[same] = parts(r)
            event_id = r.decision_id.encode()  # unique: not memoised
            n = len(event_id)
            # The input's digest holds ``now``: unique too, so not memoised either (kept, each
            # filled the memos towards their clearing, which drops the useful entries).
            digest = r.input_sha256.encode()
            d = len(digest)
            value = b"".join(
                (
                    header,
                    small[n] if n < 256 else _long(n),
                    event_id,
                    shared[0],  # principal .. policy_version
                    small[d] if d < 256 else _long(d),
                    digest,
                    shared[1],  # mask, row_filter, purpose, case_id
                    _time(r.decided_at_us, tails),
                    shared[2],  # key_id
                )
            )
            if len(value) > limit:
                raise self._too_large(r, len(value))
            values.append(value)
            ids.append(event_id)
            fixed.append(shared)
        # The per-record header columns, one C-level pass each (the ids are unique: no memo).
        principals = list(map(_PRINCIPAL, fixed))
        stamps = [_stamp(r.decided_at_us, seconds) for r in records]
        tenants = list(map(_TENANT, fixed))
        actions = list(map(_ACTION, fixed))
        subjects = list(map(_SUBJECT, fixed))
        return ColumnBatch(
            principals,  # the key: the principal (the topic's key field)
            values,
            self._names,
            (
                self._spec,
                ids,  # ce_id
                self._type,
                stamps,
                principals,  # ce_source
                ids,  # correlation: the decision's own id
                b"",  # causation
                tenants,
                self._class,
                self._content,
                actions,
                subjects,
            ),
        )

    def _too_large(self, r: DecisionRecord, size: int) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"Policy decision {r.decision_id} encodes to {size} bytes, over the limit "
            f"of {self._max_bytes} (HUB_MAX_RECORD_BYTES); its resource or reason is too "
            "long."
        )

    def _one(self, r: DecisionRecord) -> Record:
        """One record through the schema's generated encoder: the reference ``_columns``
        must match byte for byte."""
        value = self._encode(
            {
                "decision_id": r.decision_id,
                "principal": r.principal,
                "tenant": r.tenant,
                "roles": list(r.roles),
                "action": r.action,
                "resource": r.resource,
                "allow": r.allow,
                "reason": r.reason,
                "policy_version": r.policy_version,
                "input_sha256": r.input_sha256,
                "mask": list(r.mask),
                "row_filter": dict(r.row_filter),
                "purpose": r.purpose,
                "case_id": r.case_id,
                "decided_at": r.decided_at_us,
                "key_id": r.key_id,
            }
        )
        if len(value) > self._max_bytes:
            raise self._too_large(r, len(value))
        # The headers Envelope(...).to_headers() gives, without building the Envelope.
        event_id = r.decision_id.encode()
        return Record(
            value=value,
            key=r.principal.encode(),
            headers=(
                (H_SPECVERSION, SPECVERSION.encode()),
                (H_ID, event_id),
                (H_TYPE, self._name.encode()),
                (H_TIME, _rfc3339(r.decided_at_us)),
                (H_SOURCE, r.principal.encode()),
                (H_CORRELATION, event_id),
                (H_CAUSATION, b""),
                (H_TENANT, r.tenant.encode()),
                (H_CLASSIFICATION, self._classification.encode()),
                (H_CONTENT_TYPE, CONTENT_TYPE.encode()),
                (H_ACTION, r.action.encode()),
                (H_SUBJECT, r.resource.encode()),
            ),
        )


def _long(n: int) -> bytes:
    """Avro's zigzag varint of a long."""
    return varint(zigzag(n))


_MEMO_MAX = 4096  # entries of DecisionEncoder's memos before they are cleared
# A record's encodings that its request and answer fix (``DecisionEncoder._columns``): the Avro
# of principal .. policy_version, of mask .. case_id, of key_id, then the UTF-8 header values of
# principal, tenant, action and resource (picked by the four getters).
_Fixed = tuple[bytes, bytes, bytes, bytes, bytes, bytes, bytes]
_PRINCIPAL, _TENANT, _ACTION, _SUBJECT = (itemgetter(k) for k in (3, 4, 5, 6))
_SMALL = tuple(_long(n) for n in range(256))  # Avro longs of the usual string lengths
# The varint's first two bytes (continuation bits set) of each value of a varint's low 14 bits.
_LOW14 = tuple(bytes(((z & 0x7F) | 0x80, ((z >> 7) & 0x7F) | 0x80)) for z in range(1 << 14))


def _time(us: int, tails: dict[int, bytes]) -> bytes:
    """``_long(us)``: a time's varint is its low 14 bits as two bytes, then the varint of the
    rest, which changes every 8 ms, so ``tails`` (the encoder's memo) holds it once per 8 ms."""
    if not 8192 <= us < 1 << 62:  # short varints, negatives, beyond zig-zag's plain shift
        return _long(us)
    z = us << 1
    high = z >> 14
    tail = tails.get(high)
    if tail is None:
        tail = tails[high] = varint(high)
    return _LOW14[z & 0x3FFF] + tail


_EXACT_US = 2**32 * 1_000_000  # below it, us / 1e6 rounds to the exact microsecond (year 2106)


def _stamp(us: int, seconds: dict[int, bytes]) -> bytes:
    """``_rfc3339(us)``, formatting each whole second once per batch. Only where the float
    division of the reference cannot round differently from integer division; elsewhere the
    reference itself."""
    if not 0 <= us < _EXACT_US:
        return _rfc3339(us)
    second, micro = divmod(us, 1_000_000)
    prefix = seconds.get(second)
    if prefix is None:
        prefix = seconds[second] = _rfc3339(second * 1_000_000)[:-8]  # without ".000000Z"
    return b"%s.%06dZ" % (prefix, micro)


def _rfc3339(us: int) -> bytes:
    """``rfc3339_micros(datetime.fromtimestamp(us / 1e6, UTC))`` (the reference's rounding)."""
    d = datetime.fromtimestamp(us / 1e6, UTC)
    if d.year < 1000:  # strftime does not pad the year to four digits on every platform
        return rfc3339_micros(d).encode()
    return (
        f"{d.year}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}"
        f".{d.microsecond:06d}Z"
    ).encode()


class _Batch:
    __slots__ = ("companions", "done", "error", "loops", "opened", "records", "waiters")

    def __init__(self) -> None:
        self.records: list[DecisionRecord] = []
        self.companions: list[Companions] = []  # stored in the same transaction
        self.waiters = 0
        self.opened = 0.0
        self.done = threading.Event()
        self.error: BaseException | None = None
        # Event loops awaiting this batch: each loop is woken ONCE when it is stored, and
        # settles all of its waiters' futures in that one call (``_LoopWaiters``).
        self.loops: dict[asyncio.AbstractEventLoop, _LoopWaiters] = {}


class _LoopWaiters:
    """The futures one event loop awaits for one batch, with one timeout for all of them."""

    __slots__ = ("futures", "timer")

    def __init__(self) -> None:
        self.futures: list[asyncio.Future[BaseException | None]] = []
        self.timer: asyncio.TimerHandle | None = None

    def settle(self, error: BaseException | None) -> None:
        """Called in the loop: resolve every waiter's future (the ones not cancelled)."""
        if self.timer is not None:
            self.timer.cancel()
        for future in self.futures:
            if not future.done():
                future.set_result(error)

    def expire(self) -> None:
        """Called in the loop when the batch was not stored in time: every waiter fails."""
        for future in self.futures:
            if not future.done():
                future.set_result(_LATE)


_LATE = TimeoutError("not stored in time")  # what an expired waiter's future holds


class Receipt:
    """A queued decision record: wait for it to be stored (``wait``, or ``wait_async`` without
    a thread), or ask to be called when its batch is stored or failed."""

    __slots__ = ("_batch", "_committer", "_companions", "decision_id")

    def __init__(
        self,
        committer: DecisionCommitter,
        batch: _Batch,
        decision_id: str,
        companions: Companions | None = None,
    ) -> None:
        self._committer = committer
        self._batch = batch
        self.decision_id = decision_id
        self._companions = companions

    def wait(self) -> None:
        """Return once the record is stored; raise ``DecisionNotRecorded`` if it failed or
        did not finish within the committer's ``wait_timeout_s`` (step 4)."""
        if not self._batch.done.wait(self._committer.wait_timeout_s):
            raise self._late()
        self._raise_failed(self._batch.error)

    async def wait_async(self) -> None:
        """``wait`` for an event loop: no thread blocks on the store, and the flusher wakes
        each loop once per batch (one ``call_soon_threadsafe`` settles all of the loop's
        waiters of that batch). The timeout (``wait_timeout_s``) runs from the first of the
        loop's waiters of the batch."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[BaseException | None] = loop.create_future()
        self._committer._await_in(self._batch, loop, future)
        error = await future
        if error is _LATE:
            raise self._late()
        self._raise_failed(error)

    def _late(self) -> DecisionNotRecorded:
        return DecisionNotRecorded(
            f"Decision {self.decision_id} was not stored within {self._committer.wait_timeout_s} s."
        )

    def _raise_failed(self, error: BaseException | None) -> None:
        if error is not None:
            if is_storage_full(error):
                raise DecisionLogFull(
                    f"Decision {self.decision_id} could not be stored, so its action did not "
                    f"run: {error}"
                ) from error
            raise DecisionNotRecorded(
                f"Decision {self.decision_id} could not be stored: {error!r}"
            ) from error
        if self._companions is not None and self._companions.error is not None:
            raise self._companions.error  # the decision is stored; its action's records not


@dataclass
class CommitStats:
    batches: int = 0
    records: int = 0
    largest_batch: int = 0
    failed_batches: int = 0
    storing_s: float = 0.0  # time spent in the sink's store (step 3): the disk's busy time
    preparing_s: float = 0.0  # time spent encoding batches (step 3, outside the store)


class DecisionCommitter:
    """Group commit of decision records (steps 1-6 of the module docstring). Thread-safe.

    When a flusher takes the open batch (step 2, adaptive linger): at once when it is full;
    never while another batch is being prepared or stored (it keeps filling meanwhile: under
    load a batch holds everyone who came during one fsync); else once its linger ran out and
    the callers the last store woke are back: when the open batch holds as many decisions as
    the last stored one, or a quarter of a store's time (moving average, at most
    ``COHORT_WAIT_S``) after that store ended. Without that wait the callers split into
    cohorts that alternate between fsyncs, each batch holding a fraction of them. A quiet
    caller (a last batch of one) is stored at once.
    """

    COHORT_WAIT_S = 0.002

    def __init__(
        self,
        sink: DecisionSink,
        *,
        linger_ms: float = 0.0,
        deny_linger_ms: float = 20.0,
        max_batch: int = 1_000,
        wait_timeout_s: float = 5.0,
        flushers: int = 2,
    ) -> None:
        self._sink = sink
        self._linger = linger_ms / 1000
        self._deny_linger = deny_linger_ms / 1000
        self._max_batch = max_batch
        self.wait_timeout_s = wait_timeout_s
        # The condition's own lock, entered directly on the event loop's path (``with
        # self._cv`` adds two Python calls around it).
        self._mutex = threading.RLock()
        self._cv = threading.Condition(self._mutex)
        self._batch = _Batch()
        self._storing: list[_Batch] = []  # taken by a flusher, not yet stored
        self._store_s = 0.0  # moving average of one store's time (s)
        self._store_ended = 0.0  # when the last store ended (monotonic)
        self._last_size = 0  # records in the last stored batch
        self._failing = False
        self._closed = False
        self._wake_pending = False  # a wake-up ``enqueue(..., wake=False)`` left to ``wake``
        self.stats = CommitStats()
        self._store_turn = threading.Lock()  # one store at a time
        # Whether ``enqueue`` accepts companion records (the sink stores them atomically).
        self.takes_companions = callable(getattr(sink, "store_with", None))
        self._threads = [
            threading.Thread(target=self._run, name=f"decision-flusher-{k}", daemon=True)
            for k in range(max(1, flushers))
        ]
        for t in self._threads:
            t.start()

    @property
    def failing(self) -> bool:
        """True while the last store failed (no unsynced answers then: step 6)."""
        return self._failing

    def enqueue(
        self,
        record: DecisionRecord,
        *,
        prompt: bool,
        wake: bool = True,
        companions: Companions | None = None,
    ) -> Receipt:
        """Queue ``record`` (step 1); ``prompt`` flushes its batch with the allow linger, not
        the deny linger. The receipt tells when it is stored.

        ``wake=False`` leaves the flushers asleep: the caller MUST call ``wake`` soon after
        (an event loop does once the answer is on its way, so that the flusher's work does
        not run in front of it on a busy core).

        ``companions``: records stored in the same atomic write as the batch (the sink's
        ``store_with``; only when ``takes_companions``). If that write fails, the batch is
        stored again without any companions, and the receipt's ``wait`` raises the write's
        error: the decision is never lost, its action's records are refused."""
        return self.enqueue_many((record,), prompt=prompt, wake=wake, companions=companions)

    def enqueue_many(
        self,
        records: Sequence[DecisionRecord],
        *,
        prompt: bool,
        wake: bool = True,
        companions: Companions | None = None,
    ) -> Receipt:
        """Queue ``records`` in order, all in the same batch (one lock, one wake-up); the one
        receipt tells when all of them are stored. ``prompt``, ``wake`` and ``companions`` as
        for ``enqueue``. A batch may exceed ``max_batch`` by the records of one call: it is
        then due at once."""
        if not records:
            raise ValueError("enqueue_many needs at least one decision record.")
        if companions is not None and not self.takes_companions:
            raise ValueError(
                f"The decision sink {type(self._sink).__name__} cannot store companion records "
                "(it has no store_with): append them after the decision is stored."
            )
        with self._cv:
            batch = self._batch
            if self._queue(records, prompt, companions) is not None:
                if wake:
                    self._cv.notify()
                else:
                    self._wake_pending = True  # for ``wake``
        return Receipt(self, batch, records[0].decision_id, companions)

    def enqueue_awaited(
        self, record: DecisionRecord, loop: asyncio.AbstractEventLoop
    ) -> tuple[_Batch, asyncio.Future[BaseException | None]]:
        """``enqueue(record, prompt=True)`` then ``Receipt.wait_async``'s registration, under
        ONE acquisition of the lock (an event loop's allow: ``decide_async``): the batch and
        a future of ``loop`` that resolves as ``wait_async``'s does (the batch's error or
        None, ``_LATE`` after ``wait_timeout_s``). Called in ``loop``."""
        future: asyncio.Future[BaseException | None] = loop.create_future()
        with self._mutex:
            batch = self._batch
            wakes = self._queue((record,), True, None) is not None
            self._register(batch, loop, future)  # the open batch: not stored yet
            if wakes:
                self._cv.notify()
        return batch, future

    def _queue(
        self, records: Sequence[DecisionRecord], prompt: bool, companions: Companions | None
    ) -> _Batch | None:
        """Step 1 under the lock: add ``records`` to the open batch; that batch when a
        flusher must be woken for it (``_wakes``), else None."""
        if self._closed:
            raise DecisionNotRecorded("The decision log is closed: the hub is shutting down.")
        batch = self._batch
        before = len(batch.records)
        if not before:
            batch.opened = time.monotonic()
        batch.records += records
        if companions is not None:
            batch.companions.append(companions)
        if prompt:
            batch.waiters += 1
        return batch if self._wakes(before, prompt and batch.waiters == 1) else None

    def prepare(self, records: Sequence[DecisionRecord]) -> Any:
        """``records`` encoded as the sink stores them (``DecisionSink.prepare``), for a caller
        that appends them in a transaction of its own (``HeldDecision.companion``)."""
        return self._sink.prepare(records)

    def ready(self) -> None:
        """Have the sink do its one-time set-up (its topic, its schema) in this thread, so that
        preparing a batch later needs no lock a caller may hold (``prepare`` of no records)."""
        self._sink.prepare(())

    def wake(self) -> None:
        """Wake a flusher for what ``enqueue(..., wake=False)`` queued, if it needs one."""
        if not self._wake_pending:  # read without the lock: set under it before this call
            return
        with self._cv:
            self._wake_pending = False
            self._cv.notify()

    def _wakes(self, before: int, first_waiter: bool) -> bool:
        """Whether the records just queued (the open batch held ``before``) may have made it
        due earlier than a flusher, asleep, will look again: a flusher waits without a timeout
        for an empty batch, and otherwise with the timeout ``_due_in`` gave, which changes
        only when the batch gets its first waiter (the allow linger), reaches the size of the
        last stored batch (the cohort is back) or is full. While a batch is prepared or
        stored no flusher takes the open one before that store ends (unless it is full),
        and the store's end wakes every flusher. Any other wake-up would find the batch not
        due and sleep again: per decision, it costs the callers a thread switch and the GIL.
        Called under the lock."""
        after = len(self._batch.records)
        if after >= self._max_batch:
            return True
        if self._storing:
            return False
        return before == 0 or first_waiter or before < self._last_size <= after

    def submit(self, record: DecisionRecord, *, wait: bool, prompt: bool | None = None) -> None:
        """Queue ``record``; with ``wait``, return only once it is stored (else raise).

        ``prompt`` (default: ``wait``) flushes the batch with the allow linger, not the deny
        linger, even when nobody waits for it (unsynced reads, step 6)."""
        receipt = self.enqueue(record, prompt=wait if prompt is None else prompt)
        if wait:  # 4. (else 5.)
            receipt.wait()

    def _await_in(
        self,
        batch: _Batch,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[BaseException | None],
    ) -> None:
        """Called in ``loop``: resolve ``future`` when ``batch`` is stored (with its error,
        or None), or with ``_LATE`` after ``wait_timeout_s``."""
        with self._cv:
            if not batch.done.is_set():
                self._register(batch, loop, future)
                return
        future.set_result(batch.error)

    def _register(
        self,
        batch: _Batch,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[BaseException | None],
    ) -> None:
        """``future`` among ``loop``'s waiters of ``batch`` (not stored yet); under the lock."""
        group = batch.loops.get(loop)
        if group is None:
            group = batch.loops[loop] = _LoopWaiters()
            group.timer = loop.call_later(self.wait_timeout_s, group.expire)
        group.futures.append(future)

    def _due_in(self, now: float) -> float | None:
        """Seconds until the open batch is due (0: now; None: when a store ends). Called
        under the lock."""
        batch = self._batch
        if self._closed or len(batch.records) >= self._max_batch:
            return 0.0
        if self._storing:
            return None  # notified when that store ends
        linger = self._linger if batch.waiters else self._deny_linger
        left = batch.opened + linger - now
        if len(batch.records) < self._last_size:  # the woken callers are still coming back
            cohort = min(self._store_s / 4, self.COHORT_WAIT_S)
            left = max(left, self._store_ended + cohort - now)
        return max(left, 0.0)

    def _take(self) -> _Batch | None:
        """Step 2: wait for the open batch to be due and take it; None once closed and empty."""
        with self._cv:
            while True:
                if not self._batch.records:
                    if self._closed:
                        return None
                    self._cv.wait()
                    continue
                due = self._due_in(time.monotonic())
                if due is not None and due <= 0:
                    break
                self._cv.wait(due)
            batch, self._batch = self._batch, _Batch()
            self._storing.append(batch)
            return batch

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            error: BaseException | None = None
            started = time.perf_counter()
            stored_s = prepared_s = 0.0
            try:  # 3. encode outside the store turn, then one append (one fsync)
                prepared = self._sink.prepare(batch.records)
                prepared_s = time.perf_counter() - started
                with self._store_turn:
                    begun = time.perf_counter()
                    try:
                        self._store(prepared, batch.companions)
                    finally:
                        stored_s = time.perf_counter() - begun
            except BaseException as exc:  # every waiter learns; denials are logged
                error = exc
                log.error("storing %d policy decisions failed: %r", len(batch.records), exc)
            with self._cv:
                self._store_s = _average(self._store_s, stored_s)
                self._store_ended = time.monotonic()
                self._last_size = len(batch.records)
                self._storing.remove(batch)
                self._failing = error is not None
                st = self.stats
                st.storing_s += stored_s
                st.preparing_s += prepared_s
                if error is None:
                    st.batches += 1
                    st.records += len(batch.records)
                    st.largest_batch = max(st.largest_batch, len(batch.records))
                else:
                    st.failed_batches += 1
                batch.error = error
                batch.done.set()  # wakes the batch's waiters at once
                loops, batch.loops = batch.loops, {}
                if self._batch.records:
                    # A flusher waiting for this store's end takes the open batch. One is
                    # enough, and none when the batch is empty: ``enqueue`` wakes one for the
                    # first record (each needless wake-up of an idle flusher cost a thread
                    # switch and the GIL per batch: a lone caller's every decision).
                    self._cv.notify()
            for loop, group in loops.items():  # one wake-up per event loop
                with contextlib.suppress(RuntimeError):  # a closed loop: nobody awaits there
                    loop.call_soon_threadsafe(group.settle, error)

    def _store(self, prepared: Any, companions: Sequence[Companions]) -> None:
        """Step 3's one write: the batch, with its companions' records when it has any. If
        that write fails, the batch alone (the decisions are never lost with their action's
        records: the companion learns the error instead); when the batch held several
        companions, each is then tried in a write of its own, so that one that cannot be
        stored (too large, a missing topic) fails only its own action."""
        if not companions:
            self._sink.store(prepared)
            return
        try:
            self._sink.store_with(prepared, companions)  # type: ignore[attr-defined]
        except Exception as exc:
            log.error("storing %d companion record sets failed: %r", len(companions), exc)
            self._sink.store(prepared)
            if len(companions) == 1:
                companions[0].error = exc
                return
            nothing = self._sink.prepare(())
            for c in companions:
                try:
                    self._sink.store_with(nothing, [c])  # type: ignore[attr-defined]
                except Exception as alone:
                    c.error = alone

    def flush(self) -> None:
        """Return once everything queued so far is stored (or failed)."""
        with self._cv:
            storing = list(self._storing)  # batches flushers took but may not have stored yet
            batch = self._batch
            if batch.records:
                batch.waiters += 1  # no linger for a flush
                self._cv.notify_all()
        for taken in storing:
            taken.done.wait(self.wait_timeout_s)
        if batch.records:
            batch.done.wait(self.wait_timeout_s)

    def close(self) -> None:
        """Store what is queued, then stop the flusher."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        for t in self._threads:
            t.join(timeout=self.wait_timeout_s + 1)


def _average(mean: float, sample: float) -> float:
    """A moving average that follows the disk within a few batches."""
    return sample if mean == 0.0 else 0.8 * mean + 0.2 * sample


_id_lock = threading.Lock()
_random: list[int] = []  # random 64-bit words for ids, drawn from the OS 4 KiB at a time
# A forked child draws its own: the parent's pool would give it the parent's next ids' bits.
os.register_at_fork(after_in_child=_random.clear)
_RAND_B = (1 << 62) - 1


def new_decision_id() -> str:
    """A UUIDv7 string, ``str(uuid7())`` of ``domain.envelope`` in its layout and ordering
    (the same monotonic millisecond counter, ``reserve_uuid7``), without a ``UUID`` object and
    without a system call per id: 62 random bits from a pool drawn 4 KiB at a time, and the
    millisecond's text (the first 15 characters) formatted once per millisecond."""
    with _id_lock:  # domain.envelope keeps its monotonic counter in module globals
        ms, counter = reserve_uuid7(1)
        if not _random:
            _random.extend(struct.unpack(">512Q", os.urandom(4096)))
        rand_b = _random.pop() & _RAND_B
        if ms != _ms_text[0]:
            _ms_text[0], _ms_text[1] = ms, "%08x-%04x-7" % (ms >> 16, ms & 0xFFFF)  # noqa: UP031
        head = _ms_text[1]
    # The version nibble (7) ends ``head``; the variant (0b10), then 14 random bits; ``%``
    # formats in half the time of an f-string.
    return "%s%03x-%04x-%012x" % (  # noqa: UP031
        head,
        counter,
        0x8000 | rand_b >> 48,
        rand_b & 0xFFFF_FFFF_FFFF,
    )


_ms_text: list[Any] = [-1, ""]  # the last id's millisecond and its text (``new_decision_id``)


def _decision_copier() -> Callable[[Decision, str], Decision]:
    """``replace(decision, decision_id=...)`` for a ``Decision``, in half the time of its
    constructor (a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``): a new instance's slots set directly. Built for the fields it
    knows; a ``Decision`` with other fields, or with a ``__post_init__`` to run, gets
    ``replace`` itself."""
    names = tuple(f.name for f in fields(Decision))
    known = ("allow", "reason", "policy_version", "mask", "row_filter", "decision_id")
    if names != known or hasattr(Decision, "__post_init__"):
        return lambda d, ident: replace(d, decision_id=ident)
    new = object.__new__
    allow, reason, version, mask, row_filter, decision_id = (
        getattr(Decision, n).__set__ for n in names
    )

    def copy(d: Decision, ident: str) -> Decision:
        c = new(Decision)
        allow(c, d.allow)
        reason(c, d.reason)
        version(c, d.policy_version)
        mask(c, d.mask)
        row_filter(c, d.row_filter)
        decision_id(c, ident)
        return c

    return copy


_with_id = _decision_copier()


class HeldDecision:
    """An allowed decision whose record waits for its action's records (``decide_held``).

    ``commit(topic, records)`` queues the decision with the records as its companions and
    returns once both are stored in one transaction; ``settle()`` stores the decision alone
    unless ``commit`` ran. Either raises ``DecisionNotRecorded`` when the decision could not
    be stored (fail closed). When only the records could not be stored, the decision is
    stored anyway and ``commit`` raises the append's error. One ``commit`` per decision.

    The other way round, ``companion()`` hands the decision's record to the action, which
    appends it in its own transaction (the ingest routes: ``IngestPipeline._commit``'s step 0)
    and calls ``stored()`` once that transaction is committed; ``settle()`` (or
    ``settle_async()``) then stores nothing. If the action's transaction failed or never ran
    (a refused body, a quota), ``settle`` stores the decision alone, as before. Only for a
    log that ``commits_locally``: the decision is then exactly as durable as the records."""

    __slots__ = ("_committer", "_ended", "_record")

    def __init__(self, committer: DecisionCommitter, record: DecisionRecord) -> None:
        self._committer = committer
        self._record = record
        self._ended = False

    def companion(self) -> HeldRecord:
        """The decision's record, encoded for the action's own transaction (see the class)."""
        if self._ended:
            raise ValueError(
                f"Decision {self._record.decision_id} is already stored or being stored."
            )
        return HeldRecord(self, self._committer.prepare((self._record,)))

    async def settle_async(self) -> None:
        """``settle`` for an event loop: no thread blocks while the decision is stored."""
        if not self._ended:
            self._ended = True
            receipt = self._committer.enqueue(self._record, prompt=True)
            await receipt.wait_async()

    @property
    def decision_id(self) -> str:
        return self._record.decision_id

    def commit(self, topic: str, records: Sequence[Record]) -> None:
        """Store the decision and ``records`` (for ``topic``) together; see the class."""
        if self._ended:
            raise ValueError(
                f"Decision {self._record.decision_id} is already stored or being stored: one "
                "commit per held decision."
            )
        self._end(Companions(topic, records))

    def settle(self) -> None:
        """Store the decision alone, unless ``commit`` already ran; wait for it."""
        if not self._ended:
            self._end(None)

    def _end(self, companions: Companions | None) -> None:
        self._ended = True
        receipt = self._committer.enqueue(self._record, prompt=True, companions=companions)
        receipt.wait()


class HeldRecord:
    """A held decision's record as an action's transaction appends it (an
    ``ingest.groupcommit.Companion``): ``topic``, ``batch``, and ``stored()`` once committed."""

    __slots__ = ("_held", "batch")

    topic = DECISIONS_TOPIC

    def __init__(self, held: HeldDecision, batch: ColumnBatch | list[Record]) -> None:
        self._held = held
        self.batch = batch

    @property
    def pending(self) -> bool:
        return not self._held._ended

    def stored(self) -> None:
        self._held._ended = True


class _Request:
    """A request ``RecordingPolicyEngine`` saw before: its prepared input (the inner engine's
    ``decide_prepared``) and the fields its records share."""

    __slots__ = (
        "action", "case_id", "inner", "key_id", "prepared", "principal", "purpose", "resource",
        "roles", "tenant",
    )  # fmt: skip

    def __init__(
        self,
        inner: InputDocumentEngine,
        prepared: PreparedInput,
        principal: str,
        tenant: str,
        roles: tuple[str, ...],
        action: str,
        resource: str,
        purpose: str,
        case_id: str,
        key_id: str,
    ) -> None:
        self.inner, self.prepared = inner, prepared
        self.principal, self.tenant, self.roles = principal, tenant, roles
        self.action, self.resource = action, resource
        self.purpose, self.case_id, self.key_id = purpose, case_id, key_id

    def decide(self, now: int) -> tuple[Decision, str]:
        return self.inner.decide_prepared(self.prepared, now)

    def record(self, digest: str, now: int, decision: Decision) -> DecisionRecord:
        """The record ``_decide_input`` builds for this request at ``now`` (all 16 fields, so
        built by ``tuple.__new__`` without the named tuple's ``__new__`` frame)."""
        return _new_tuple(
            DecisionRecord,
            (
                new_decision_id(),
                self.principal,
                self.tenant,
                self.roles,
                self.action,
                self.resource,
                decision.allow,
                decision.reason,
                decision.policy_version,
                digest,
                now // 1000,
                tuple(decision.mask),
                dict(decision.row_filter) if decision.row_filter else _NO_ROW_FILTER,
                self.purpose,
                self.case_id,
                self.key_id,
            ),
        )


_new_tuple = tuple.__new__
_UNPREPARED = cast("_Request", object())  # an entry of ``_requests``: the general path
_REQUESTS_MAX = 4096
_NO_CONTEXT: Mapping[str, Any] = MappingProxyType({})


def _request_key(
    principal: Principal, action: str, resource: str, context: Mapping[str, Any]
) -> tuple[Any, ...]:
    """The ``_requests`` key of a request: its roles, the number of attributes (where the
    attributes end and the context begins), then every part in order."""
    attributes = principal.attributes
    return (
        principal.roles,
        len(attributes),
        principal.id,
        principal.tenant,
        action,
        resource,
        *attributes.keys(),
        *attributes.values(),
        *context.keys(),
        *context.values(),
    )


class RecordingPolicyEngine(PolicyEngine):
    """Decides through ``inner`` and records every decision (see the module docstring).

    ``decide`` blocks its thread until an allow is stored; ``decide_async`` awaits the same in
    an event loop without a thread (the inner engine is asked in the loop unless
    ``inner_blocks``: an engine that does network I/O, e.g. OPA, is asked in a worker thread).
    """

    def __init__(
        self,
        inner: PolicyEngine,
        committer: DecisionCommitter,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        enrich: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
        unsynced: frozenset[str] = frozenset(),
        inner_blocks: bool = False,
    ) -> None:
        self.inner = inner  # (a property: see its setter)
        self.committer = committer
        self._unsynced = unsynced  # read actions answered before their record's fsync (6.)
        self._clock_ns = clock_ns
        # Adds what the hub knows to a context naming a case (open cases); it MUST leave a
        # context that names no case as it is (``blocks`` and ``_decide`` rely on it).
        self._enrich = enrich
        self.inner_blocks = inner_blocks

    @property
    def inner(self) -> PolicyEngine:
        return self._inner

    @inner.setter
    def inner(self, engine: PolicyEngine) -> None:
        """Decide through ``engine`` from now on: the requests prepared for the engine before
        are forgotten (each names the engine it was prepared for)."""
        self._inner = engine
        # Requests seen before -> their prepared input and record fields (``_decide``).
        self._requests: dict[tuple[Any, ...], _Request] = {}
        self._prepares = isinstance(engine, InputDocumentEngine)

    def decide(
        self,
        principal: Principal,
        action: str,
        resource: str,
        context: Mapping[str, Any] | None = None,
    ) -> Decision:
        decision, receipt = self.decide_deferred(principal, action, resource, context)
        if receipt is not None:
            receipt.wait()  # 4. fail closed: no allow without its record; callers answer 503
        return decision

    async def decide_async(
        self,
        principal: Principal,
        action: str,
        resource: str,
        context: Mapping[str, Any] | None = None,
    ) -> Decision:
        """``decide`` for an event loop: the same decision, record and waiting rules. The
        inner engine is asked in a worker thread when it blocks (``inner_blocks``) or when the
        context names a case and ``enrich`` reads the open cases (a read of the log)."""
        loop = asyncio.get_running_loop()
        if self.blocks(context):
            decision, receipt = await loop.run_in_executor(
                None, self.decide_deferred, principal, action, resource, context
            )
            if receipt is not None:
                await receipt.wait_async()
            return decision
        decision, record = self._decide(principal, action, resource, context)
        if self._must_wait(decision, action):
            # One lock for queueing the record and registering this loop's waiter; the
            # flusher is woken at once (the caller waits for it).
            batch, future = self.committer.enqueue_awaited(record, loop)
            error = await future
            if error is not None:  # a Receipt only to word the failure as ``wait`` does
                receipt = Receipt(self.committer, batch, record.decision_id)
                if error is _LATE:
                    raise receipt._late()
                receipt._raise_failed(error)
            return decision
        # A record nobody waits for (a denial, an unsynced read) wakes its flusher on the
        # loop's next turn, once this request's answer is written: not in front of it.
        try:
            self.committer.enqueue(record, prompt=decision.allow, wake=False)
        except DecisionNotRecorded:
            if decision.allow:
                raise
        loop.call_soon(self.committer.wake)
        return decision

    def decide_deferred(
        self,
        principal: Principal,
        action: str,
        resource: str,
        context: Mapping[str, Any] | None = None,
        *,
        wake: bool = True,
    ) -> tuple[Decision, Receipt | None]:
        """Decide and queue the record; with a receipt, the caller MUST wait for it (an allow
        that needs its durable record) before acting on the decision. ``wake=False``: the
        caller MUST call ``committer.wake()`` soon after (``DecisionCommitter.enqueue``)."""
        decision, record = self._decide(principal, action, resource, context)
        wait = self._must_wait(decision, action)
        receipt: Receipt | None = None
        try:
            receipt = self.committer.enqueue(record, prompt=decision.allow, wake=wake)
        except DecisionNotRecorded:
            if decision.allow:
                raise  # fail closed: no allow without its record; callers answer 503
        return decision, receipt if wait else None

    def decide_held(
        self,
        principal: Principal,
        action: str,
        resource: str,
        context: Mapping[str, Any] | None = None,
    ) -> tuple[Decision, HeldDecision | None]:
        """``decide`` for an action that appends records of its own: an allow that must wait
        for its record is returned with a ``HeldDecision`` and NOT queued yet; the caller MUST
        end it (``commit`` with its action's records, stored in the same transaction as the
        decision's batch: one fsync for both, or ``settle`` when it wrote nothing) before
        answering. Anything else (a denial, an unsynced read, a sink without companions) is
        queued and waited for as by ``decide``, with no HeldDecision."""
        decision, record = self._decide(principal, action, resource, context)
        if self._must_wait(decision, action) and self.committer.takes_companions:
            # The sink's first batch registers the decisions schema (the registry's lock),
            # which the holder may hold while it waits: ready the sink here, before that.
            self.committer.ready()
            return decision, HeldDecision(self.committer, record)
        receipt = None
        try:
            receipt = self.committer.enqueue(record, prompt=decision.allow)
        except DecisionNotRecorded:
            if decision.allow:
                raise
        if receipt is not None and self._must_wait(decision, action):
            receipt.wait()
        return decision, None

    def decide_many(self, requests: Sequence[DecisionRequest]) -> list[Decision]:
        """``decide`` of each request, in order, with ONE wait: every request is decided and
        recorded exactly as by ``decide`` (same record, same order), the records are queued
        together in one batch, and the call returns once that batch is stored when any of
        them must wait (step 4). If that store fails, the whole call raises
        ``DecisionNotRecorded`` (no allow without its record), denials included."""
        decisions, receipt = self._decide_many(requests)
        if receipt is not None:
            receipt.wait()
        return decisions

    async def decide_many_async(self, requests: Sequence[DecisionRequest]) -> list[Decision]:
        """``decide_many`` for an event loop (the inner engine asked as by ``decide_async``)."""
        if any(self.blocks(c) for _, _, _, c in requests):
            loop = asyncio.get_running_loop()
            decisions, receipt = await loop.run_in_executor(None, self._decide_many, requests)
        else:
            decisions, receipt = self._decide_many(requests)
        if receipt is not None:
            await receipt.wait_async()
        return decisions

    def _decide_many(
        self, requests: Sequence[DecisionRequest]
    ) -> tuple[list[Decision], Receipt | None]:
        decided = [self._decide(p, a, r, c) for p, a, r, c in requests]
        if not decided:
            return [], None
        decisions = [d for d, _ in decided]
        any_allow = any(d.allow for d in decisions)
        wait = any(self._must_wait(d, q[1]) for d, q in zip(decisions, requests, strict=True))
        try:
            receipt = self.committer.enqueue_many([r for _, r in decided], prompt=any_allow)
        except DecisionNotRecorded:
            if any_allow:
                raise
            return decisions, None
        return decisions, receipt if wait else None

    def blocks(self, context: Mapping[str, Any] | None) -> bool:
        """Whether deciding ``context`` may block its thread before the record is queued (not
        for an event loop): an engine that does I/O (``inner_blocks``), or a context naming a
        case that ``enrich`` completes from the cases log."""
        return self.inner_blocks or (
            self._enrich is not None and context is not None and bool(context.get("case"))
        )

    def _must_wait(self, decision: Decision, action: str) -> bool:
        """Whether the caller must wait for the record before acting (steps 4 and 6)."""
        return decision.allow and (action not in self._unsynced or self.committer.failing)

    def _decide(
        self,
        principal: Principal,
        action: str,
        resource: str,
        context: Mapping[str, Any] | None,
    ) -> tuple[Decision, DecisionRecord]:
        """The inner engine's decision (a deny if it raises) with its id, and its record.

        A request seen before (same principal, action, resource and context, all strings, no
        ``now`` and no case to enrich) takes the prepared path: its input's serialization and
        its record's fixed fields were computed once (``_requests``), and the inner engine
        answers from its decision cache without building the input document. The decision,
        digest and record are those of ``_decide_input`` at the same ``now``
        (tests/unit/test_policy_decisions.py compares both)."""
        if self._prepares and (
            context is None
            or not ("now" in context or (self._enrich is not None and context.get("case")))
        ):
            ctx = context or _NO_CONTEXT
            # Equal keys are equal requests: an entry is made only for a key of strings (a
            # str equals only a str; ``1 == True`` would serialize apart), see ``_prepared``.
            try:
                request = self._requests.get(_request_key(principal, action, resource, ctx))
            except TypeError:  # an unhashable value: the general path
                request = _UNPREPARED
            if request is None:
                request = self._prepared(principal, action, resource, ctx)
            # (An entry names its engine: one prepared just as ``inner`` was swapped is not used.)
            if request is not _UNPREPARED and request.inner is self._inner:
                now = self._clock_ns()
                if type(now) is not int or not 0 <= now < 2**63:  # not an int64 (a test clock)
                    return self._decide_input(principal, action, resource, {**ctx, "now": now})
                try:
                    decision, digest = request.decide(now)
                except Exception:  # the general path words the failure (and denies)
                    return self._decide_input(principal, action, resource, {**ctx, "now": now})
                return self._recorded(decision, request.record(digest, now, decision))
        return self._decide_input(principal, action, resource, context)

    def _prepared(
        self,
        principal: Principal,
        action: str,
        resource: str,
        context: Mapping[str, Any],
    ) -> _Request:
        """The ``_requests`` entry of a request not seen yet (``_UNPREPARED``: the general
        path; not kept unless every part of the key is a string)."""
        attributes = principal.attributes
        key = _request_key(principal, action, resource, context)
        parts = (*principal.roles, *key[2:])  # the key's parts, the roles' one by one
        if not all(type(p) is str for p in parts):
            return _UNPREPARED
        inner = self._inner
        if not isinstance(inner, InputDocumentEngine):  # swapped meanwhile (the setter)
            return _UNPREPARED
        prepared = inner.prepare_input(principal, action, resource, context)
        request = (
            _UNPREPARED
            if prepared is None
            else _Request(
                inner,
                prepared,
                principal.id,
                principal.tenant,
                tuple(sorted(principal.roles)),
                action,
                resource,
                str(context.get("purpose") or ""),
                str(context.get("case") or ""),
                str(attributes.get("key_id", "")),
            )
        )
        requests = self._requests
        if len(requests) >= _REQUESTS_MAX:  # bounded: distinct requests cannot grow it
            requests.clear()
        requests[key] = request
        return request

    @staticmethod
    def _recorded(decision: Decision, record: DecisionRecord) -> tuple[Decision, DecisionRecord]:
        """The decision with its record's id, and the record."""
        if type(decision) is Decision:  # a copy with its id (``replace`` takes longer)
            return _with_id(decision, record.decision_id), record
        return replace(decision, decision_id=record.decision_id), record

    def _decide_input(
        self,
        principal: Principal,
        action: str,
        resource: str,
        context: Mapping[str, Any] | None,
    ) -> tuple[Decision, DecisionRecord]:
        """``_decide`` through the inner engine's general path (the reference)."""
        ctx = with_now(context, self._clock_ns)
        try:
            if self._enrich is not None:
                ctx = dict(self._enrich(ctx))
            decision, digest = self.inner.decide_digested(principal, action, resource, ctx)
        except Exception as exc:  # an engine that raises: deny, and record the deny
            decision, digest = (
                Decision(
                    False,
                    f"Access denied because the policy engine failed: {exc!r}",
                    str(getattr(self.inner, "version", "unknown")),
                ),
                None,
            )
        if digest is None:
            digest = input_digest(decision_input(principal, action, resource, ctx))
        record = DecisionRecord(
            decision_id=new_decision_id(),
            principal=principal.id,
            tenant=principal.tenant,
            roles=tuple(sorted(principal.roles)),
            action=action,
            resource=resource,
            allow=decision.allow,
            reason=decision.reason,
            policy_version=decision.policy_version,
            input_sha256=digest,
            decided_at_us=int(ctx["now"]) // 1000 if isinstance(ctx["now"], int) else 0,
            mask=tuple(decision.mask),
            row_filter=dict(decision.row_filter) if decision.row_filter else _NO_ROW_FILTER,
            purpose=str(ctx.get("purpose") or ""),
            case_id=str(ctx.get("case") or ""),
            key_id=str(principal.attributes.get("key_id", "")),
        )
        return self._recorded(decision, record)

    # Engines that reload (policy changes) are reached through the decorator.
    def load(self, bundle: Any) -> None:
        """Load a policy bundle into the inner engine; an engine without bundles (the role
        table) ignores it: its decisions come from ``core/roles.py``, not from Rego."""
        loader = getattr(self.inner, "load", None)
        if loader is not None:
            loader(bundle)

    @property
    def version(self) -> str:
        return str(getattr(self.inner, "version", "unknown"))

    def close(self) -> None:
        self.committer.close()
        close_inner = getattr(self.inner, "close", None)
        if callable(close_inner):
            close_inner()  # the embedded engine's evaluator thread
