"""Publishing events to the log and reading them back, through the Schema Registry.

A topic's config says how its records are named in the registry (``hub.subject.strategy``:
``topic`` | ``record`` | ``topic_record``, Confluent's three strategies) and which payload field is
the record key (``hub.key.field``). Publishing is all-or-nothing per batch: every record is
converted, validated and encoded before one atomic append; the first bad record fails the call
with its index and the reason, and nothing is appended.

``Publisher.prepare`` works per batch: the envelope headers that repeat (spec version, type,
source, tenant, classification, content type) are encoded once per event type, new event ids are
drawn for the whole batch at once (``ingest.ids``), records without ``occurred_at`` share the
batch's receipt time, and every value is written into one Avro buffer. ``publish`` hands such a
batch of one event type (events without headers of their own) to the log as columns
(``EventLog.append_columns``: the shared envelope headers held once, no ``Record`` per event),
which stores the same records ``prepare`` returns. ``prepare_reference`` is
the record-at-a-time path it replaced: kept as the reference that the batch path must match byte
for byte (``tests/unit/test_publish_batch.py``), and the path that names the first bad record
when a batch fails.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice, repeat
from typing import Any, Literal

from core import tracing
from core.avro import serde
from core.avro.schema import ParsedSchema
from core.errors import (
    HubError,
    InvalidInput,
    PayloadTooLarge,
    SubjectNotFound,
)
from core.events import (
    PRINCIPALS_TOPIC,
    OutgoingEvent,
    mask_pii_of,
    redact_secrets,
    refuse_internal,
    tenant_of,
)
from core.metrics import Metrics
from core.pii import UNATTRIBUTED, PiiCodec, legacy_readable, refuse_erased
from core.pii import plan as pii_plan
from core.ports import eventlog_rows
from core.ports.eventlog import (
    ColumnBatch,
    EventLog,
    Headers,
    Record,
    RecordMetadata,
    StoredRecord,
)
from core.ports.keystore import KeyStore, SubjectTenants, make_aad
from core.ports.policy import HUB_TENANT, Decision
from domain import envelope as env
from domain.catalog import SubjectStrategy
from domain.envelope import Envelope, parse_rfc3339, rfc3339_micros
from ingest.coalesce import Coalescer, Prepared
from ingest.dedupe import NK_HEADER
from ingest.ids import uuid7_bytes
from ingest.jsoncols import ColumnPlan
from ingest.targets import TargetResolver, WriteTarget, record_key
from registry.service import SchemaRegistry

# (topic, field, tenant) -> {subject: AAD} kept across batches: at most this many AADs in all,
# each of a subject id of at most _AAD_CACHE_SUBJECT characters, so that callers naming many
# long subjects cannot make the cache large (~10 MB at most); other AADs are made per batch
_AAD_CACHE_SIZE = 16_384
_AAD_CACHE_SUBJECT = 256


class NoKeyStore(HubError):
    """A schema holds encrypted PII fields but this component was built without a KeyStore."""

    code = "keystore_missing"
    http_status = 500


def seal_column_values(
    keys: KeyStore,
    aads_of: Callable[[str, list[str]], dict[str, bytes]],
    cols: list[tuple[str, list[str], list[bytes]]],
) -> list[list[bytes]]:
    """Every PII column of a batch sealed in one ``keys.seal_keyed`` call: column ``(name,
    owners, values)``'s value i for ``owners[i]`` under ``aads_of(name, subjects)[owners[i]]``.
    Byte for byte ``keys.seal_many`` of the concatenated owners, values and AADs (the former
    form; ``tests/adversarial/test_s21_kafka_seal_columns.py``): the distinct subjects are
    taken once, in first-seen order across the columns (``seal_many``'s key look-up order), and
    ``aads_of`` is asked with the batch's distinct subjects instead of every value (a set of
    ~500 instead of ~2,000 per column), so two passes over every value are gone."""
    index: dict[str, int] = {}
    for _, owners, _ in cols:
        index.update(dict.fromkeys(owners, 0))  # first-seen order, as dict.fromkeys of all
    distinct = list(index)
    index = {s: i for i, s in enumerate(distinct)}
    key_of: list[int] = []
    plaintexts: list[bytes] = []
    aad_list: list[bytes] = []
    for name, owners, values in cols:
        aad_of = aads_of(name, distinct)
        key_of += map(index.__getitem__, owners)
        plaintexts += values
        aad_list += map(aad_of.__getitem__, owners)
    sealed = keys.seal_keyed(distinct, key_of, plaintexts, aad_list)
    out = []
    at = 0
    for _, owners, _ in cols:
        out.append(sealed[at : at + len(owners)])
        at += len(owners)
    return out


class Publisher:
    """Encodes events with the subject's latest schema and appends them atomically.

    A schema whose PII fields are stored encrypted (``core.pii``) is filled from the
    JSON in its plain form (so PII values are validated against their real types), then each PII
    value is encrypted under the data subject's key before encoding.
    """

    def __init__(
        self,
        log: EventLog,
        registry: SchemaRegistry,
        max_record_bytes: int,
        metrics: Metrics,
        keystore: KeyStore | None = None,
    ) -> None:
        self._log = log
        self._registry = registry
        self._max_bytes = max_record_bytes
        self._metrics = metrics
        self.pii = None if keystore is None else PiiCodec(keystore)
        # which tenants named each data subject (set by the composition root): an officer
        # limited to one tenant may erase only a subject no other tenant named
        self.subject_tenants: SubjectTenants | None = None
        self.targets = TargetResolver(log, registry)  # shared with the IngestPipeline
        # concurrent publishes per (topic, producer, tenant), prepared and appended together
        self._coalescers: dict[tuple[str, str, str], Coalescer] = {}
        self._coalescers_guard = threading.Lock()
        # make_aad(topic, field, subject, tenant) of recent batches: a pure function of its
        # arguments (no key material), so kept across batches, where the same subjects recur;
        # per (topic, field, tenant) so that a column's AADs are one C-level map (``_aads_of``)
        self._aads: dict[tuple[str, str, str], dict[str, bytes]] = {}
        self._aads_held = 0
        self._aads_guard = threading.Lock()

    @property
    def max_record_bytes(self) -> int:
        """The largest encoded value ``prepare`` accepts (HUB_MAX_RECORD_BYTES)."""
        return self._max_bytes

    def plain(self, schema_id: int, schema: ParsedSchema) -> ParsedSchema:
        """The schema callers fill datums with: ``schema`` itself, or its plain form when its
        PII fields are stored encrypted (cached per schema id)."""
        return self.targets.plain(schema_id, schema)

    def codec(self) -> PiiCodec:
        """The PII codec; raises when this publisher has no KeyStore."""
        if self.pii is None:
            raise NoKeyStore(
                "This schema stores PII encrypted, but the hub was built without a KeyStore."
            )
        return self.pii

    def name_subjects(self, tenant: str, subjects: Iterable[str]) -> None:
        """Record that ``tenant`` names ``subjects`` (before their records are appended: a
        crash after leaves a pair recorded for nothing, which only restricts erasure). Called
        after their values are sealed: a subject whose key the seal just made is new, one with
        an older key and no record is not (``adapters.subject_tenants``)."""
        if self.subject_tenants is not None:
            self.subject_tenants.name(tenant, subjects)

    def _aads_of(self, topic: str, name: str, tenant: str, owners: list[str]) -> dict[str, bytes]:
        """``{subject: make_aad(topic, name, subject, tenant)}`` for every subject in ``owners``
        (and maybe others): the cached dict of (topic, name, tenant) when it holds them all (the
        steady state: one C-level set difference, no Python call per subject). A subject in the
        hub's reserved namespace raises ``TypeError`` (the reference path names it); a cached
        one passed that check when it was added. The cache is replaced, never cleared in place,
        so a dict another thread is reading stays whole."""
        key = (topic, name, tenant)
        known = self._aads.get(key)
        missing = set(owners).difference(known) if known is not None else set(owners)
        if not missing and known is not None:
            return known
        fresh: dict[str, bytes] = {}
        for s in missing:
            if s.startswith(UNATTRIBUTED):
                raise TypeError("reserved data subject")  # the reference names it
            fresh[s] = make_aad(topic, name, s, tenant)
        if any(len(s) > _AAD_CACHE_SUBJECT for s in fresh):
            # long subject ids are not kept: this batch's AADs only
            out = dict(known) if known is not None else {}
            out.update(fresh)
            return out
        checked = known
        with self._aads_guard:
            if self._aads_held + len(fresh) > _AAD_CACHE_SIZE:
                self._aads, self._aads_held = {}, 0  # the subjects of recent batches only
            known = self._aads.get(key)
            if known is None:
                known = self._aads[key] = {}
            if known is not checked:
                # another batch emptied or replaced the cache since ``missing`` was taken: the
                # subjects found in the old dict are not in this one (a KeyError for them)
                for s in set(owners).difference(known, fresh):
                    fresh[s] = make_aad(topic, name, s, tenant)  # checked: they were cached
            known.update(fresh)
            self._aads_held += len(fresh)
        if len(fresh) > _AAD_CACHE_SIZE:  # one batch larger than the whole cache
            with self._aads_guard:
                self._aads, self._aads_held = {}, 0
        return known

    def strategy(self, topic: str) -> SubjectStrategy:
        return self.targets.strategy(topic)

    def writer_schema(self, subject: str) -> tuple[int, ParsedSchema]:
        """The id and parsed schema of the subject's latest version."""
        return self.targets.writer_schema(subject)

    def prepare(
        self, topic: str, events: Sequence[OutgoingEvent], producer: str, tenant: str = "default"
    ) -> list[Record]:
        """Convert, validate and encode every event; raises naming the first bad one.

        The batch path (see the module docstring) assumes every record is good; on the first
        failure the whole batch is redone by ``prepare_reference``, which raises the same error
        (index, code, message, metric) the record-at-a-time path always raised."""
        found = self._prepare_or_none(topic, events, producer, tenant, columns=False)
        if found is None:
            return self.prepare_reference(topic, events, producer, tenant)
        assert not isinstance(found, ColumnBatch)  # columns=False
        return found

    def _prepare_or_none(
        self,
        topic: str,
        events: Sequence[OutgoingEvent],
        producer: str,
        tenant: str,
        *,
        columns: bool,
    ) -> list[Record] | ColumnBatch | None:
        """``_prepare_any``, or None where the batch path failed (``prepare_reference`` then
        names the error)."""
        try:
            return self._prepare_any(topic, events, producer, tenant, columns=columns)
        except (HubError, ValueError, TypeError, KeyError, AttributeError, OverflowError):
            return None  # fastavro's own errors included, as serde.encode catches them

    def _prepare_for_append(
        self, topic: str, events: Sequence[OutgoingEvent], producer: str, tenant: str
    ) -> list[Record] | ColumnBatch:
        """``prepare`` for ``publish``: the same records, as a ``ColumnBatch`` where they can
        be (``_envelope_columns``), so that the log appends them without a ``Record`` each."""
        found = self._prepare_or_none(topic, events, producer, tenant, columns=True)
        if found is None:
            return self.prepare_reference(topic, events, producer, tenant)
        return found

    def _prepare_batch(
        self, topic: str, events: Sequence[OutgoingEvent], producer: str, tenant: str
    ) -> list[Record]:
        """The batch path of ``prepare``: assumes every record is good (raises otherwise)."""
        found = self._prepare_any(topic, events, producer, tenant, columns=False)
        assert not isinstance(found, ColumnBatch)  # columns=False
        return found

    def _prepare_any(
        self,
        topic: str,
        events: Sequence[OutgoingEvent],
        producer: str,
        tenant: str,
        *,
        columns: bool,
    ) -> list[Record] | ColumnBatch:
        """The batch path; with ``columns`` a batch of one event type encoded column-wise comes
        back as a ``ColumnBatch`` (``_envelope_columns``) when no event brings headers."""
        key_field = self.targets.key_field(topic)
        now = rfc3339_micros(datetime.now(UTC)).encode()  # the receipt time of the batch
        fresh = iter(uuid7_bytes(sum(1 for ev in events if not ev.event_id)))
        shapes: dict[str | None, _Shape] = {}
        erased_seen: dict[str, bool] = {}
        times: dict[str, bytes] = {}
        # the tenant's own keys (``TenantKeys``): acme's "alice" is not globex's
        keystore = None if self.pii is None else self.pii.keystore.for_tenant(tenant)
        # PII: one sealer (the subject's key, looked up once) per subject, one AAD per field and
        # subject, for this batch only
        sealers: dict[str, Callable[[bytes, bytes], bytes]] = {}
        aads: dict[tuple[str, str], bytes] = {}
        limit = self._max_bytes
        records: list[Record] = []
        add = records.append

        def seal(subject: str, name: str, plaintext: bytes) -> bytes:
            sealer = sealers.get(subject)
            if sealer is None:
                if subject.startswith(UNATTRIBUTED):
                    raise TypeError("reserved data subject")  # the reference names it
                sealer = sealers[subject] = self.codec().keystore.for_tenant(tenant).sealer(subject)
            aad = aads.get((name, subject))
            if aad is None:
                aad = aads[name, subject] = make_aad(topic, name, subject, tenant)
            return sealer(plaintext, aad)

        def seal_columns(cols: list[tuple[str, list[str], list[bytes]]]) -> list[list[bytes]]:
            return seal_column_values(
                self.codec().keystore.for_tenant(tenant),
                lambda name, distinct: self._aads_of(topic, name, tenant, distinct),
                cols,
            )

        # one event type (the common case): every value encoded column-wise when it can be
        columnar: list[bytes] | None = None
        first = events[0].event_type if events else None
        if events and all(ev.event_type == first for ev in events):
            one = shapes[first] = _Shape(self.targets.resolve(topic, first), producer, tenant)
            if one.columns is not None:
                values = [ev.value for ev in events]
                if keystore is not None and one.subject is not None:
                    field = one.subject
                    named: set[Any]
                    if set(map(type, values)) == {dict}:  # the common case: C-level passes
                        named = set(map(dict.get, values, repeat(field)))  # type: ignore[arg-type]
                    else:
                        named = {v.get(field) for v in values if type(v) is dict}
                    subjects = [s for s in named if type(s) is str and s]
                    gone = keystore.erased_among(subjects)
                    erased_seen.update(dict.fromkeys(subjects, False))
                    erased_seen.update(dict.fromkeys(gone, True))
                    # refuse_erased raises only for an erased subject (all in ``gone`` now) or
                    # asks the keystore for a str subclass (not in ``subjects``); other values
                    # it passes, so only those two kinds are handed to it
                    odd = [s for s in named if type(s) is not str and isinstance(s, str)]
                    for s in (*gone, *odd):
                        refuse_erased({field: s}, one.text, keystore, erased_seen, tenant=tenant)
                columnar = one.columns.encode(values, seal_columns)
                if columnar is not None:
                    self.name_subjects(tenant, erased_seen)
                    if columns and not any(ev.headers for ev in events):
                        return self._envelope_columns(events, columnar, one, key_field, now, fresh)
                    return self._column_records(events, columnar, one, key_field, now, fresh)
        for i, ev in enumerate(events):
            shape = shapes.get(ev.event_type)
            if shape is None:
                target = self.targets.resolve(topic, ev.event_type)
                shape = shapes[ev.event_type] = _Shape(target, producer, tenant)
            if columnar is not None:
                value = columnar[i]
            else:
                datum = shape.convert(ev.value)
                if keystore is not None:
                    refuse_erased(datum, shape.text, keystore, erased_seen, tenant=tenant)
                if shape.encrypts:
                    if shape.pii is None or keystore is None:
                        datum = self.codec().encrypt(datum, shape.text, topic, tenant=tenant)
                    else:
                        subject = datum.get(shape.subject)
                        for name, pii in shape.pii:
                            plain = datum.get(name)
                            if plain is None:
                                continue
                            if type(subject) is not str or not subject:
                                raise TypeError("no data subject")  # the reference names it
                            datum[name] = seal(subject, name, pii.encode(plain))
                value = shape.encode(datum)
            if len(value) > limit:
                raise PayloadTooLarge("A record is over HUB_MAX_RECORD_BYTES.")  # redone below
            key = record_key(ev.key, key_field, ev.value)
            eid = ev.event_id.encode() if ev.event_id else next(fresh)
            at = now
            if ev.occurred_at:
                at = times.get(ev.occurred_at) or times.setdefault(
                    ev.occurred_at, rfc3339_micros(parse_rfc3339(ev.occurred_at)).encode()
                )
            corr = ev.correlation_id.encode() if ev.correlation_id else eid
            h = (
                *shape.first,
                *((env.H_ID, eid), shape.type_h, (env.H_TIME, at), shape.source_h),
                *((env.H_CORRELATION, corr), (env.H_CAUSATION, ev.causation_id.encode())),
                *shape.last,
            )
            if ev.headers:
                h += tuple((k, v.encode()) for k, v in ev.headers.items())
            add(Record(value=value, key=None if key is None else key.encode(), headers=h))
        self.name_subjects(tenant, erased_seen)
        return records

    def _column_records(
        self,
        events: Sequence[OutgoingEvent],
        values: list[bytes],
        shape: _Shape,
        key_field: str | None,
        now: bytes,
        fresh: Iterator[bytes],
    ) -> list[Record]:
        """The records of a batch of one event type whose values were encoded column-wise
        (every ``ev.value`` is a dict): the loop of ``_prepare_batch`` with the shape, the
        header names and the key rule (``record_key``) bound once."""
        if values and max(map(len, values)) > self._max_bytes:
            raise PayloadTooLarge("A record is over HUB_MAX_RECORD_BYTES.")  # redone by prepare
        first, type_h, source_h, last = shape.first, shape.type_h, shape.source_h, shape.last
        h_id, h_time, h_corr, h_cause = env.H_ID, env.H_TIME, env.H_CORRELATION, env.H_CAUSATION
        times: dict[str, bytes] = {}
        keys: list[bytes | None] = []
        heads: list[Headers] = []
        add_key, add = keys.append, heads.append
        for ev in events:
            key = ev.key
            if key is None and key_field:
                raw = ev.value.get(key_field)
                key = None if raw is None else str(raw)
            add_key(None if key is None else key.encode())
            eid = ev.event_id.encode() if ev.event_id else next(fresh)
            at = now
            if ev.occurred_at:
                at = times.get(ev.occurred_at) or times.setdefault(
                    ev.occurred_at, rfc3339_micros(parse_rfc3339(ev.occurred_at)).encode()
                )
            h = (
                *first,
                (h_id, eid),
                type_h,
                (h_time, at),
                source_h,
                (h_corr, ev.correlation_id.encode() if ev.correlation_id else eid),
                (h_cause, ev.causation_id.encode()),
                *last,
            )
            if ev.headers:
                h += tuple((k, v.encode()) for k, v in ev.headers.items())
            add(h)
        if len(values) != len(keys):
            raise ValueError(f"{len(values)} encoded values for {len(keys)} events.")
        return eventlog_rows.records(values, keys, heads)  # type: ignore[arg-type]

    def _envelope_columns(
        self,
        events: Sequence[OutgoingEvent],
        values: list[bytes],
        shape: _Shape,
        key_field: str | None,
        now: bytes,
        fresh: Iterator[bytes],
    ) -> ColumnBatch:
        """``_column_records``'s records as columns (events without headers of their own): the
        same keys, values and envelope headers in the same order (``ColumnBatch.records()``
        equals its list, ``tests/unit/test_publish_columns.py``), with the headers every record
        shares held once and only the event id, time, correlation and causation per record."""
        if values and max(map(len, values)) > self._max_bytes:
            raise PayloadTooLarge("A record is over HUB_MAX_RECORD_BYTES.")  # redone by prepare
        # column by column with C-level passes where every event is alike (the common case:
        # no event id, correlation or key of its own), else event by event as before
        n = len(events)
        given = [ev.event_id for ev in events]
        if not any(given):
            ids = list(islice(fresh, n))  # ``fresh`` holds one id per event without one
        else:
            ids = [eid.encode() if eid else next(fresh) for eid in given]
        corr_in = [ev.correlation_id for ev in events]
        if not any(corr_in):
            corrs = list(ids)
        else:
            corrs = [c.encode() if c else eid for c, eid in zip(corr_in, ids, strict=True)]
        keys: list[bytes | None]
        own = [ev.key for ev in events]
        unkeyed = own.count(None) == n
        if unkeyed and not key_field:
            keys = [None] * n
        elif unkeyed:
            get: Callable[..., Any] = dict.get  # every value is an exact dict here
            raws: list[Any] = list(map(get, [ev.value for ev in events], repeat(key_field)))
            if set(map(type, raws)) == {str}:
                keys = list(map(str.encode, raws))
            else:
                keys = [None if raw is None else str(raw).encode() for raw in raws]
        else:
            keys = []
            add_key = keys.append
            for ev, key in zip(events, own, strict=True):
                if key is None and key_field:
                    raw = ev.value.get(key_field)
                    key = None if raw is None else str(raw)
                add_key(None if key is None else key.encode())
        if len(values) != len(keys) or len(ids) != n:
            raise ValueError(f"{len(values)} encoded values for {len(keys)} events.")
        at: bytes | list[bytes] = now
        if any(ev.occurred_at for ev in events):
            times: dict[str, bytes] = {}
            at = [
                times.get(ev.occurred_at)
                or times.setdefault(
                    ev.occurred_at, rfc3339_micros(parse_rfc3339(ev.occurred_at)).encode()
                )
                if ev.occurred_at
                else now
                for ev in events
            ]
        causes = {ev.causation_id for ev in events}
        cause: bytes | list[bytes] = (
            causes.pop().encode()
            if len(causes) == 1
            else [ev.causation_id.encode() for ev in events]
        )
        first, last = shape.first, shape.last
        names = (
            *(k for k, _ in first),
            *(env.H_ID, shape.type_h[0], env.H_TIME, shape.source_h[0]),
            *(env.H_CORRELATION, env.H_CAUSATION),
            *(k for k, _ in last),
        )
        cols: tuple[bytes | list[bytes], ...] = (
            *(v for _, v in first),
            *(ids, shape.type_h[1], at, shape.source_h[1], corrs, cause),
            *(v for _, v in last),
        )
        return ColumnBatch(keys, values, names, cols)

    def prepare_reference(
        self, topic: str, events: Sequence[OutgoingEvent], producer: str, tenant: str = "default"
    ) -> list[Record]:
        """The record-at-a-time path: what ``prepare`` must give byte for byte (apart from the
        fresh event ids and receipt times), and the path that names a batch's first bad record."""
        key_field = self.targets.key_field(topic)
        resolved: dict[str | None, WriteTarget] = {}
        erased_seen: dict[str, bool] = {}
        records = []
        for i, ev in enumerate(events):
            try:
                target = resolved.get(ev.event_type)
                if target is None:
                    target = resolved[ev.event_type] = self.targets.resolve(topic, ev.event_type)
                schema_id, schema, plain = target.schema_id, target.schema, target.plain
                datum = serde.from_json(ev.value, plain.parsed)
                if self.pii is not None:  # a record naming an erased data subject is refused
                    keys = self.pii.keystore
                    refuse_erased(datum, schema.text, keys, erased_seen, tenant=tenant)
                if plain is not schema:
                    datum = self.codec().encrypt(datum, schema.text, topic, tenant=tenant)
                value = serde.encode(schema_id, schema, datum)
                if len(value) > self._max_bytes:
                    raise PayloadTooLarge(
                        f"Encoded record is {len(value)} bytes, over the limit of "
                        f"{self._max_bytes} (HUB_MAX_RECORD_BYTES)."
                    )
                key = record_key(ev.key, key_field, ev.value)
                occurred = parse_rfc3339(ev.occurred_at) if ev.occurred_at else datetime.now(UTC)
                env_kwargs: dict[str, Any] = {}
                if ev.event_id:
                    env_kwargs["event_id"] = ev.event_id
                envelope = Envelope(
                    event_type=target.name,
                    producer=producer,
                    tenant=tenant,
                    classification=target.classification,
                    occurred_at=occurred,
                    correlation_id=ev.correlation_id,
                    causation_id=ev.causation_id,
                    **env_kwargs,
                )
            except HubError as exc:
                self._metrics.events_rejected.labels(topic, exc.code).inc()
                exc.message = f"Record {i}: {exc.message}"
                exc.args = (exc.message,)
                raise
            except ValueError as exc:
                self._metrics.events_rejected.labels(topic, "invalid_input").inc()
                raise InvalidInput(f"Record {i}: {exc}") from exc
            extra = tuple((k, v.encode()) for k, v in ev.headers.items())
            records.append(
                Record(
                    value=value,
                    key=None if key is None else key.encode(),
                    headers=envelope.to_headers() + extra,
                )
            )
        self.name_subjects(tenant, erased_seen)
        return records

    def publish(
        self,
        topic: str,
        events: Sequence[OutgoingEvent],
        producer: str,
        tenant: str = "default",
        *,
        origin: Literal["internal", "external"] = "internal",
    ) -> Sequence[RecordMetadata]:
        """Publish a batch all-or-nothing; returns where each record landed (a sequence: the
        log's columnar answer, ``AppendedMetadata``, builds its records when first read).

        Calls from several threads at once for the same topic, producer and tenant are prepared
        and appended together (``ingest.coalesce``); each still succeeds or fails on its own.

        ``origin="external"`` (every route or command publishing a caller's records) refuses
        internal topics (``refuse_internal``) before anything else, then any caller header named
        like one the hub stamps (``refuse_reserved_headers``).
        """
        if origin != "internal":
            refuse_internal(topic)
            refuse_reserved_headers(events)
        self._log.topic(topic)  # raises TopicNotFound first
        if origin != "internal":
            self._refuse_foreign_subjects(topic, events, tenant)
        with tracing.publishing(topic, len(events)):
            started = time.perf_counter()
            meta = self._coalescer(topic, producer, tenant).publish(events)
        self._metrics.append_seconds.labels(topic).observe(time.perf_counter() - started)
        self._metrics.events_appended.labels(topic).inc(len(meta))
        return meta

    def _refuse_foreign_subjects(
        self, topic: str, events: Sequence[OutgoingEvent], tenant: str
    ) -> None:
        """A caller's records are not validated against another tenant's subject
        (``registry.service``'s owners): ``SubjectNotFound``, as the ingest pipeline and the
        registry answer that tenant."""
        for event_type in {ev.event_type for ev in events}:
            try:
                subject = self.targets.subject(topic, event_type)
            except HubError:
                continue  # the batch's own preparation names the problem
            owner = self._registry.owner(subject, refresh=False)
            if owner not in (None, HUB_TENANT, tenant):
                raise SubjectNotFound(
                    f"Topic {topic!r} takes records of subject {subject!r}, which is not one of "
                    f"tenant {tenant!r}'s subjects nor one the hub shares: ask the hub's "
                    "operators for a topic with a shared subject."
                )

    def _coalescer(self, topic: str, producer: str, tenant: str) -> Coalescer:
        """The coalescer of concurrent publishes with these envelope fields
        (``ingest.coalesce``)."""
        key = (topic, producer, tenant)
        found = self._coalescers.get(key)
        if found is None:
            with self._coalescers_guard:
                found = self._coalescers.get(key)
                if found is None:
                    if len(self._coalescers) > 4_096:  # bound memory; idle ones only
                        self._coalescers = {k: c for k, c in self._coalescers.items() if c.busy}

                    def append(records: Prepared) -> Sequence[RecordMetadata]:
                        if isinstance(records, ColumnBatch):
                            batch = records
                            # the log's columnar answer as it is: a RecordMetadata per record
                            # is built only if a caller reads one (a cost per record otherwise)
                            return tracing.traced_append(
                                topic, len(batch), lambda: self._log.append_columns(topic, batch)
                            )
                        return tracing.traced_append(
                            topic, len(records), lambda: self._log.append(topic, records)
                        )

                    found = self._coalescers[key] = Coalescer(
                        lambda evs: self._prepare_any(topic, evs, producer, tenant, columns=True),
                        lambda evs: self._prepare_for_append(topic, evs, producer, tenant),
                        append,
                    )
        return found


class _Shape:
    """What every record of one event type in a batch shares: the schemas, the wire prefix and
    the envelope headers that do not vary, encoded once (in ``Envelope.to_headers`` order)."""

    __slots__ = (
        *("columns", "convert", "encode", "encrypts", "first", "last", "pii"),
        *("source_h", "subject", "text", "type_h"),
    )

    def __init__(self, target: WriteTarget, producer: str, tenant: str) -> None:
        self.convert = serde.json_converter(target.plain.parsed)
        self.encode = serde.encoder(target.schema_id, target.schema)  # wire header included
        self.text = target.schema.text
        self.encrypts = target.encrypts
        # top-level PII fields (name, field) sealed here per batch; None: nested ones, which
        # ``PiiCodec.encrypt`` handles record by record
        shred = pii_plan(self.text)
        self.subject = shred.subject_field
        top = all(len(f.path) == 1 for f in shred.fields) and self.subject is not None
        self.pii = tuple((f.path[0], f) for f in shred.fields) if top else None
        self.columns = ColumnPlan.build(target)  # None: this type is encoded record by record
        h = Envelope(
            event_type=target.name,
            producer=producer,
            tenant=tenant,
            classification=target.classification,  # validated here, once
            event_id="-",
        ).to_headers()
        names = (env.H_SPECVERSION, env.H_ID, env.H_TYPE, env.H_TIME, env.H_SOURCE)
        assert tuple(k for k, _ in h[:5]) == names and h[5][0] == env.H_CORRELATION
        self.first, self.type_h, self.source_h, self.last = h[:1], h[2], h[4], h[7:]


# The Kafka log's own headers (``__hub.mac``, ``__hub.tmac``, ``__hub.idem``; future ones too).
LOG_HEADER_PREFIX = "__hub."


def reserved_header(name: str) -> bool:
    """Whether a header name is the hub's to set, compared without case: an envelope header
    (``domain.envelope.is_envelope_header``: ``ce_*``, ``hub_*``, ``content-type``) or one of
    the Kafka log's (``__hub.*``). A caller's envelope copy would repeat the hub's own, which
    every append refuses (``DuplicateEnvelopeHeader``); refusing it here names the caller's
    header instead. A caller's ``__hub.tmac`` would sit before the log's own tenant MAC, and a
    reader keeping the first (or, on a log without a tenant key, the only) copy of a name would
    take it for the hub's. The ingest dedupe's ``hub-natural-key`` too: a caller's copy would
    count its keys as seen when the windows are rebuilt after a restart."""
    folded = name.lower()
    return (
        env.is_envelope_header(folded)
        or folded.startswith(LOG_HEADER_PREFIX)
        or folded == NK_HEADER  # the dedupe windows' rebuild reads it (``ingest.dedupe``)
    )


def refuse_reserved_headers(events: Sequence[OutgoingEvent]) -> None:
    """Raise ``InvalidInput`` (``reserved_header``) naming the first caller header that
    :func:`reserved_header` keeps for the hub."""
    for i, ev in enumerate(events):
        for name in ev.headers:
            if reserved_header(name):
                raise InvalidInput(
                    f"Event {i}: header {name!r} is set by the hub (ce_* and content-type are "
                    "the event envelope, hub_* the audit headers: tenant, producer, type and "
                    "action come from your key and the schema; __hub.* the log's MACs); send "
                    "your own headers under other names.",
                    code="reserved_header",
                )


class EventReader:
    """Decodes stored records (Confluent wire format) into JSON-ready dicts.

    Encrypted PII fields are decrypted with the KeyStore (``"[erased]"`` once the subject's key is
    destroyed), or, with ``mask_pii``, hidden without being decrypted (``"***"``).
    """

    def __init__(
        self,
        log: EventLog,
        registry: SchemaRegistry,
        keystore: KeyStore | None = None,
        *,
        redact: bool = True,
    ) -> None:
        self._log = log
        self._registry = registry
        self.pii = None if keystore is None else PiiCodec(keystore)
        self._redact = redact  # only the API key fold itself reads the hashes

    @property
    def redacts(self) -> bool:
        """Whether secrets (API key hashes) are redacted from decoded records."""
        return self._redact

    def decode(
        self, rec: StoredRecord, reader: ParsedSchema | None = None, *, mask_pii: bool = False
    ) -> dict[str, Any]:
        headers = {k: v.decode("utf-8", "replace") for k, v in rec.headers}
        twice = None
        if len(headers) != len(rec.headers):
            twice = env.duplicated_envelope_header(rec.headers)
            if twice is not None:  # no copy is shown (domain.envelope)
                headers = {k: v for k, v in headers.items() if k != twice}
        out: dict[str, Any] = {
            "topic": rec.topic,
            "partition": rec.partition,
            "offset": rec.offset,
            "timestamp_ms": rec.timestamp_ms,
            "key": None if rec.key is None else rec.key.decode("utf-8", "replace"),
            "headers": headers,
        }
        if twice is not None:
            out["error"] = f"The record carries the envelope header {twice!r} more than once."
        if rec.value is None:
            out["value"] = None
            return out
        try:
            schema_id, _ = serde.split_wire(rec.value)
            writer = self._registry.parsed(schema_id)
            out["schema_id"] = schema_id
            datum = serde.decode(rec.value, writer, reader)
            form = (reader or writer).text
            owner = tenant_of(rec)  # None: ce_tenant twice, no tenant to open the PII as
            if mask_pii or owner is None:
                datum = mask_pii_of(datum, form)
            elif self.pii is not None:
                # the record's own tenant as stored; v1 values (sealed before the tenant was
                # bound) open for the records that hold them (docs/trust-model.md)
                legacy = legacy_readable(rec.headers)
                datum = self.pii.decrypt(datum, form, rec.topic, tenant=owner, legacy=legacy)
            out["value"] = serde.to_json(datum)
            if self._redact and rec.topic == PRINCIPALS_TOPIC:
                out["value"] = redact_secrets(out["value"])
        except HubError as exc:
            out["value"] = None
            out["error"] = exc.message
        return out

    def visible(self, rec: StoredRecord, decision: Decision) -> dict[str, Any] | None:
        """``rec`` decoded under the obligations of an allowed ``event.read`` decision, or None
        when its row filter leaves the record out. The filter's ``tenant`` is the record's
        ``ce_tenant`` header (``default`` without one); a filter on any other column leaves
        every record out (a record has no such column to match). PII is masked when the
        decision's mask names ``pii``."""
        for column, wanted in decision.row_filter.items():
            if column != "tenant" or tenant_of(rec) != wanted:
                return None
        return self.decode(rec, mask_pii="pii" in decision.mask)

    def read_visible(
        self, topic: str, partition: int, offset: int, limit: int, decision: Decision
    ) -> tuple[list[dict[str, Any]], int]:
        """Up to ``limit`` stored records from ``offset``, those the decision lets through
        (:meth:`visible`), and the offset after the last one read (``offset`` if none was)."""
        stored = self._log.read(topic, partition, offset, limit)
        shown = [self.visible(r, decision) for r in stored]
        return [r for r in shown if r is not None], stored[-1].offset + 1 if stored else offset

    def read(
        self, topic: str, partition: int, offset: int, limit: int = 100, *, mask_pii: bool = False
    ) -> list[dict[str, Any]]:
        return [
            self.decode(r, mask_pii=mask_pii)
            for r in self._log.read(topic, partition, offset, limit)
        ]
