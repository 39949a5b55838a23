"""The one ingest pipeline every source uses: convert, check rules, dedupe, append atomically.

Input is a batch of ``RawRecord`` (original bytes, decoded value when the source decoded it, an
error when it could not, envelope fields) from one source. Per record, in order:

1. a source-side error (not UTF-8, not JSON, a CSV row with the wrong number of columns) or a
   size over ``max_record_bytes`` rejects the record;
2. schema conversion: JSON via ``serde.from_json`` against the subject's latest schema; a
   Confluent wire-format value is decoded with its writer schema (found by id) and resolved to
   the subject's latest schema (the reader); a writer schema the reader cannot read (Avro schema
   resolution, ``check_reader_writer``) rejects the record with each incompatibility named. A
   value whose writer schema is the latest is appended byte for byte, never re-encoded;
3. the subject's quality rules (``domain.quality``), first failure's rule id and field path kept,
   every failure named in the reason; ``ref`` rules against the referenced topic's record keys
   (``refs.KeyIndex``, caught up once per batch);
4. dedupe: an event id, or a ``unique`` rule's natural key, seen in the window (``dedupe.py``) or
   earlier in the same batch makes the record a duplicate: counted, reported, not appended.

Per-record, not all-or-nothing: one bad record never blocks the others. The batch commits in
one log transaction (steps numbered in ``_commit``): 1. the accepted records on the topic,
2. the rejected ones on ``hub.quarantine`` (reason, rule id, field path, source, original bytes),
3. the source's new position on ``hub.source-positions``. Either all three land or none, so a
source that restarts after a crash resumes exactly where the last committed batch ended. An HTTP
request's batch also carries the policy decision that allowed it (step 0, ``companions``): on
the embedded log the decision and the batch are one commit.

Group commit (``ingest.groupcommit``): steps 1-3 of batches of one topic run side by side;
step 4 and the commit run in the topic's dedupe section, where batches that arrived while
another committed are decided in arrival order (each sees the keys of those before it) and
share one log transaction; every caller is answered once its batch is durable.

Quarantined originals are kept whole up to ``max_record_bytes``; a larger record (rejected for
its size) keeps its first ``max_record_bytes`` bytes with ``truncated=true`` and the SHA-256 and
size of the whole, so the quarantine topic's own records stay bounded. For a topic with personal
data, the original and its SHA-256 are sealed under the data subject's key (an erasure shreds
both); when no subject can be told, under a synthetic subject of their own,
``unattributed:<the quarantine entry's event id>`` (header ``hub_sealed_for``), which an officer
erases like any other (``hub erase unattributed:...``); a late record for an erased subject keeps
neither: the entry keeps the reason and the size.

The strict alternative stays ``Publisher.publish`` (``POST /v1/topics/{topic}/events``):
all-or-nothing, the first bad record fails the call.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from itertools import repeat
from typing import Any, Literal

from core import tracing
from core.avro import serde
from core.avro.compatibility import check_reader_writer
from core.avro.schema import ParsedSchema, recursive_type
from core.errors import HubError, InvalidInput, SchemaNotFound, SubjectNotFound, TopicNotFound
from core.events import is_internal_topic, refuse_internal, tenant_of
from core.fold import TopicFold
from core.metrics import Metrics
from core.pii import (
    UNATTRIBUTED,
    data_subject_field,
    data_subject_of,
    encrypts,
    pii_fields,
    refuse_erased,
)
from core.ports.eventlog import (
    ColumnBatch,
    EventLog,
    Record,
    RecordColumns,
    RecordMetadata,
    StoredRecord,
)
from core.ports.eventlog import Headers as env_Headers
from core.ports.keystore import DecryptionFailed, KeyDestroyed, check_subject
from core.ports.policy import HUB_TENANT
from core.tenant_quota import IngestRateLimiter, IngestRates, QuarantineQuota, StoredQuota
from domain import envelope as env
from domain.envelope import Envelope, parse_rfc3339
from domain.quality import (
    Evaluator,
    Rule,
    RuleSet,
    compile_natural_key,
    compile_rules,
    ref_violation,
)
from ingest.dedupe import Deduper, KeyWindow
from ingest.groupcommit import Companion, Prior, Staged, TopicCommitter
from ingest.ids import uuid7_bytes
from ingest.parquet_pool import ParquetDecoders
from ingest.positions import PositionStore
from ingest.publish import Publisher
from ingest.refs import KeyIndex
from ingest.replays import ReplayMarks
from ingest.rules import RulesStore
from ingest.stats import QualityStats
from ingest.targets import record_key
from ingest.unattributed import UnattributedKeys
from registry.plain import plain_subject
from registry.service import SchemaRegistry

SEALED_FOR = "hub_sealed_for"  # quarantine header: the original is sealed under this subject's key
# ``UNATTRIBUTED`` (core.pii): the synthetic data subject a quarantined personal record naming
# no subject is sealed under is this prefix and the quarantine entry's own event id (a fresh
# UUIDv7 the hub draws, never a sender's id: a sender could otherwise make two records share one
# key, or name a subject check_subject refuses). One key per entry: erasing it shreds that entry
# only. A record naming a subject under the prefix is refused (``data_subject_reserved``).
# ``original_sha256`` of an entry sealed for a subject: the digest is sealed with the original
# (base64 after this prefix), so an erasure shreds it too; a clear digest of a small personal
# record would let anyone holding a guess confirm it long after the erasure.
SEALED_DIGEST = "sealed:"
QUARANTINE_TOPIC = "hub.quarantine"
_NONE: frozenset[str] = frozenset()


def _nothing() -> None:
    """``IngestPipeline.limit``'s charge while the limits are off."""


class QuarantineBytes:
    """Bytes of the quarantine entries the log keeps, per tenant (``QuarantineQuota``'s
    count): a fold of the quarantine topic that each call catches up with the log, reading only
    what was appended since the last call, by this process or any other on the same log."""

    def __init__(self, log: EventLog) -> None:
        self._held: dict[str, int] = {}
        self._fold = TopicFold(log, QUARANTINE_TOPIC, self._apply)

    def _apply(self, rec: StoredRecord) -> None:
        tenant = tenant_of(rec) or "default"
        self._held[tenant] = self._held.get(tenant, 0) + len(rec.value or b"")

    def __call__(self) -> dict[str, int]:
        self._fold.catch_up()
        with self._fold.lock:
            return dict(self._held)


def stored_bytes(log: EventLog) -> dict[str, int]:
    """Bytes of the values the log keeps per tenant on every external topic (the records ingest
    and the publish route accepted) and in the quarantine (``StoredQuota``'s fold: run once, at
    start). Records retention has cut are not counted."""
    held = QuarantineBytes(log)()
    for info in log.topics():
        if is_internal_topic(info.name):
            continue
        try:
            for partition, start in log.beginning_offsets(info.name).items():
                for rec in log.scan(info.name, partition, start):
                    tenant = tenant_of(rec) or "default"
                    held[tenant] = held.get(tenant, 0) + len(rec.value or b"")
        except TopicNotFound:  # deleted since it was listed
            continue
    return held


JSON = "application/json"
WIRE = "application/vnd.confluent.avro"
Kind = Literal["json", "wire", "datum"]
# Replay marks: (batch index, outcome, where it landed) per record -> (topic, record) to append.
Marks = Callable[[list[tuple[int, str, "RecordMetadata | None"]]], list[tuple[str, "Record"]]]


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record as a source received it.

    ``kind``: ``json`` (``value`` is JSON-decoded data), ``wire`` (``original`` is a Confluent
    wire-format value; ``value`` may hold its already-decoded datum), or ``datum`` (``value`` is
    an Avro datum for the subject's latest schema, e.g. a Parquet row). ``error``/``error_code``
    mark a record the source could not decode; it is quarantined with its original bytes.
    """

    original: bytes
    kind: Kind = "json"
    value: Any = None
    content_type: str = JSON
    error: str | None = None
    error_code: str = "malformed_record"
    event_type: str | None = None
    key: str | None = None
    event_id: str | None = None
    occurred_at: str | None = None
    position: Any = None
    # (size, SHA-256 hex) of the whole original when the source kept only its start (a JSON
    # line over the record limit is read as its first bytes): the quarantine records these.
    whole: tuple[int, str] | None = None


@dataclass(slots=True)
class BatchCache:
    """What one batch looks up once: erased data subjects (``refuse_erased``) and the record
    keys of the topics its ``ref`` rules name (``KeyIndex``)."""

    erased: dict[str, bool] = field(default_factory=dict)
    refs: dict[str, set[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    reason_code: str
    reason: str
    rule_id: str | None = None
    field_path: str | None = None


@dataclass
class IngestResult:
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    duplicate_indexes: list[int] = field(default_factory=list)
    appended: list[Callable[[], list[RecordColumns]]] = field(default_factory=list, repr=False)
    """What this one batch appended, as ``appended_columns`` builds it (built on demand: only
    ``Ledger.cover`` asks). ``add`` does not carry it over: a running total would hold a whole
    file. Empty when the path that ingested the batch does not keep its columns."""

    def appended_columns(self) -> list[RecordColumns]:
        """The accepted records as the log stored them: what ``Ledger.cover`` takes as
        ``handed`` instead of reading them back."""
        return [c for build in self.appended for c in build()]

    def add(self, other: IngestResult, offset: int = 0) -> None:
        self.accepted += other.accepted
        self.rejected += other.rejected
        self.duplicates += other.duplicates
        self.rejections.extend(
            Rejection(r.index + offset, r.reason_code, r.reason, r.rule_id, r.field_path)
            for r in other.rejections[: max(0, 1000 - len(self.rejections))]
        )
        self.duplicate_indexes.extend(i + offset for i in other.duplicate_indexes[:1000])

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "rejections": [
                {
                    "index": r.index,
                    "reason_code": r.reason_code,
                    "reason": r.reason,
                    "rule_id": r.rule_id,
                    "field_path": r.field_path,
                }
                for r in self.rejections
            ],
            "duplicate_indexes": self.duplicate_indexes,
        }


def _with_defaults(datum: Any, schema: Any) -> Any:
    """A datum with the schema's defaults filled in for missing top-level fields."""
    if not isinstance(datum, dict) or not isinstance(schema, dict) or "fields" not in schema:
        return datum
    missing = [f for f in schema["fields"] if f["name"] not in datum and "default" in f]
    if not missing:
        return datum
    out = dict(datum)
    named = schema.get("__named_schemas", {})
    for f in missing:
        out[f["name"]] = serde._from_default(f["default"], f["type"], named)
    return out


_new_record: Callable[..., list[Record]]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch's objects are built (see callers).

    Batches ingested in several threads at once (HTTP requests in the thread pool) share one
    pause: the collector is enabled again when the last of them leaves, and only if it was
    enabled when the first came in."""
    with _gc_guard:
        if _gc_pauses[0] == 0:
            _gc_pauses[1] = gc.isenabled()
            gc.disable()
        _gc_pauses[0] += 1
    try:
        yield
    finally:
        with _gc_guard:
            _gc_pauses[0] -= 1
            if _gc_pauses[0] == 0 and _gc_pauses[1]:
                gc.enable()


_gc_guard = threading.Lock()
_gc_pauses: list[Any] = [0, False]  # batches inside ``gc_paused``; was the collector enabled


def _record_builder() -> Callable[..., list[Record]]:
    """Build ``n`` Records from one iterable per field, setting slots directly.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` (about
    1 us per Record); setting the slots through their descriptors in C-level maps is ~2.5x
    faster. If Record stops being a plain slots dataclass, its constructor is used.
    """
    import dataclasses

    names = tuple(f.name for f in dataclasses.fields(Record))
    if getattr(Record, "__slots__", None) != names or hasattr(Record, "__post_init__"):
        return lambda n, *columns: list(map(Record, *columns))
    setters = [getattr(Record, name).__set__ for name in names]
    new = object.__new__

    def build(n: int, *columns: Iterable[object]) -> list[Record]:
        made: list[Record] = list(map(new, repeat(Record, n)))
        for set_slot, column in zip(setters, columns, strict=True):
            deque(map(set_slot, made, column), maxlen=0)
        return made

    return build


_new_record = _record_builder()


def new_records(
    values: Sequence[bytes], keys: Sequence[bytes | None], headers: Sequence[env_Headers]
) -> list[Record]:
    """Records (value, key, headers; no timestamp or partition) for a batch."""
    n = len(values)
    return _new_record(n, values, keys, headers, repeat(None, n), repeat(None, n))


class _Reject(Exception):
    def __init__(
        self, code: str, reason: str, rule_id: str | None = None, path: str | None = None
    ) -> None:
        super().__init__(reason)
        self.code, self.reason, self.rule_id, self.path = code, reason, rule_id, path


def tracked_pull(
    pipeline: IngestPipeline,
    job: str,
    source: Any,
    topic: str,
    pull: Callable[[IngestResult], None],
    redact: Mapping[str, str],
) -> IngestResult:
    """One OpenLineage run (``core.lineage.tracked``) around a pull connector's ``pull``,
    which adds its batches' counts to the result; ``hub.quarantine`` becomes an output as soon
    as a record was rejected, also when the pull then fails (those records are kept)."""
    from core import lineage

    with lineage.tracked(
        pipeline.publisher, job, [source], [lineage.topic_dataset(topic)], redact=redact
    ) as run:
        total = IngestResult()
        try:
            pull(total)
        finally:
            if total.rejected:
                run.add_output(lineage.topic_dataset(QUARANTINE_TOPIC))
        return total


def _redacted(rej: _Reject, value: Any, target: Target | None) -> _Reject:
    """``rej`` with every PII value of the record that its reason quotes replaced by ``***``:
    a rule's message quotes the failing value, and the reason is kept in clear."""
    if target is None or not isinstance(value, Mapping):
        return rej
    reason = rej.reason
    for path in pii_fields(target.schema.text):
        node: Any = value
        for name in path.split("/"):
            node = node.get(name) if isinstance(node, Mapping) else None
        if node is not None and str(node):
            reason = reason.replace(repr(node), "'***'").replace(str(node), "***")
    return _Reject(rej.code, reason, rej.rule_id, rej.path)


@dataclass(frozen=True, slots=True)
class Target:
    """What a record on a topic is written with: subject, latest schema and its rules."""

    subject: str
    schema_id: int
    schema: ParsedSchema
    name: str
    classification: str
    rules: RuleSet
    plain: ParsedSchema  # what datums are filled with: ``schema`` unless it encrypts PII

    @property
    def encrypts(self) -> bool:
        """True when PII values are encrypted (``core.pii``) before encoding."""
        return self.plain is not self.schema


class Compiled:
    """A target's per-record work, prepared once per (schema, rule set).

    ``check`` is ``domain.quality.evaluate`` compiled to closures; ``fill`` adds the schema's
    defaults for missing top-level fields (and returns the datum itself when nothing is
    missing); ``unique`` pairs each ``unique`` rule with its compiled natural key.
    """

    __slots__ = (
        "check",
        "conform",
        "default_values",
        "defaults",
        "encode",
        "has_rules",
        "refs",
        "schema",
        "stamps",
        "unique",
        "wire_header",
    )

    def __init__(self, t: Target) -> None:
        self.schema = t.plain.parsed
        self.check: Evaluator = compile_rules(t.rules)
        self.has_rules = bool(t.rules.rules)
        self.unique: tuple[tuple[Rule, Callable[[Any], str | None]], ...] = tuple(
            (r, compile_natural_key(r)) for r in t.rules.unique
        )
        self.refs: tuple[tuple[Rule, Callable[[Any], str | None]], ...] = tuple(
            (r, compile_natural_key(r)) for r in t.rules.refs
        )
        fields = self.schema.get("fields", []) if isinstance(self.schema, dict) else []
        self.defaults = frozenset(f["name"] for f in fields if "default" in f)
        self.wire_header = serde.wire_header(t.schema_id)
        self.conform = serde.row_fields(self.schema)  # decimals and maps, at any depth
        self.stamps = serde.stamp_fields(self.schema)
        self.encode: Callable[[Any], bytes] = serde.encoder(t.schema_id, t.schema)
        # Defaults as datums, computed once when every one is immutable (shared safely).
        named = self.schema.get("__named_schemas", {}) if isinstance(self.schema, dict) else {}
        values = [
            (f["name"], serde._from_default(f["default"], f["type"], named))
            for f in fields
            if "default" in f
        ]
        immutable = (str, bytes, int, float, bool, Decimal, type(None), date, datetime)
        ok = all(type(v) in immutable for _, v in values)
        self.default_values: tuple[tuple[str, Any], ...] | None = tuple(values) if ok else None

    def fill(self, datum: Any) -> Any:
        """``datum`` with the defaults of its missing top-level fields (itself if none miss)."""
        if type(datum) is dict:
            if datum.keys() >= self.defaults:
                return datum
            if self.default_values is not None:
                out = dict(datum)
                for name, value in self.default_values:
                    if name not in out:
                        out[name] = value
                return out
        return _with_defaults(datum, self.schema)


def batch_headers(
    t: Target, producer: str, tenant: str, now: datetime
) -> tuple[env_Headers, env_Headers, env_Headers]:
    """The parts of an accepted record's envelope headers shared by a batch.

    A record's headers are ``first + ((ce_id, id),) + middle + ((ce_correlationid, id),) +
    last`` (the order ``Envelope.to_headers`` writes), ``ce_time`` being the batch's receipt time.
    """
    e = Envelope(
        event_type=t.name,
        producer=producer,
        tenant=tenant,
        classification=t.classification,
        occurred_at=now,
        event_id="-",
    )
    h = e.to_headers()
    assert h[1][0] == env.H_ID and h[5][0] == env.H_CORRELATION
    return h[:1], h[2:5], h[6:]


class IngestPipeline:
    """Validates and appends batches from any source (see the module docstring)."""

    def __init__(
        self,
        log: EventLog,
        registry: SchemaRegistry,
        publisher: Publisher,
        metrics: Metrics,
        rules: RulesStore,
        positions: PositionStore,
        deduper: Deduper,
        max_record_bytes: int,
        parquet: ParquetDecoders | None = None,
        rates: IngestRates | None = None,
        quarantine_max_bytes: int = 0,
        stored_max_bytes: int = 0,
    ) -> None:
        self.log = log
        self.registry = registry
        self.publisher = publisher
        self.metrics = metrics
        self.rules = rules
        self.positions = positions
        self.deduper = deduper
        self.max_record_bytes = max_record_bytes
        # the Parquet decoder processes (None: the process's default pool, parquet_pool.shared)
        self.parquet = parquet
        self._compat: dict[tuple[int, int], list[str]] = {}
        self._recursive: dict[int, str | None] = {}  # writer schema id -> a recursive type
        self._readable_ids: set[tuple[int, str]] = set()  # (writer id, tenant): _readable_id
        self._compiled: dict[tuple[int, int], tuple[RuleSet, Compiled]] = {}
        self._arrow_plans: dict[Any, tuple[RuleSet, Any]] = {}
        self.stats = QualityStats(log, registry)  # GET /v1/quality/stats
        self.refs = KeyIndex(log)  # the keys ``ref`` rules check against
        self.replays = ReplayMarks(log, registry)  # hub.quarantine-replays, folded
        self._dedupe_locks: dict[str, threading.RLock] = {}
        self._dedupe_guard = threading.Lock()
        self._committers: dict[str, TopicCommitter] = {}  # group commit per topic
        # bounds the keys of unattributed quarantine entries (ingest.unattributed)
        self.unattributed = UnattributedKeys(log, QUARANTINE_TOPIC, SEALED_FOR)
        # per-tenant limits (core.tenant_quota), off unless set; refusals counted per tenant
        refused = metrics.tenant_refusals.labels
        self.rates = IngestRateLimiter(
            rates or IngestRates(), refused=lambda t, limit: refused(t, limit).inc()
        )
        self.quarantine_quota = QuarantineQuota(
            quarantine_max_bytes,
            QuarantineBytes(log),
            refused=lambda t, limit: refused(t, limit).inc(),
        )
        self.stored_quota = StoredQuota(
            stored_max_bytes,
            partial(stored_bytes, log),
            refused=lambda t, limit: refused(t, limit).inc(),
        )

    @contextmanager
    def deduping(self, topic: str) -> Iterator[None]:
        """Hold ``topic``'s dedupe section: from reading its windows, through the commit, to
        adding the batches' keys to them. Batches of one topic ingested in several threads at
        once (HTTP requests in the thread pool, a file watcher) are decided in it one group at a
        time (``committer``), so that a key two of them carry is stored once; their conversion,
        rules and encoding run side by side, outside it."""
        lock = self._dedupe_locks.get(topic)
        if lock is None:
            with self._dedupe_guard:
                lock = self._dedupe_locks.setdefault(topic, threading.RLock())
        with lock:
            yield

    def committer(self, topic: str) -> TopicCommitter:
        """``topic``'s group commit (``ingest.groupcommit``): batches of the topic arriving
        while one commits are decided in arrival order in its dedupe section and share the next
        log transaction."""
        found = self._committers.get(topic)
        if found is None:
            with self._dedupe_guard:
                found = self._committers.get(topic)
                if found is None:
                    found = self._committers[topic] = TopicCommitter(
                        lambda: self.deduping(topic),
                        lambda source, staged: self._commit(topic, source, staged),
                    )
        return found

    def arrow_plan(
        self,
        t: Target,
        schema: Any,
        key_field: str | None,
        build: Callable[[Target, Any, str | None], Any],
    ) -> Any:
        """The columnar plan (``columnar.build_plan``) of ``t`` for an Arrow layout, cached."""
        key = (t.schema_id, id(t.rules), key_field, schema)
        found = self._arrow_plans.get(key)
        if found is None or found[0] is not t.rules:
            if len(self._arrow_plans) > 64:
                self._arrow_plans.clear()
            found = self._arrow_plans[key] = (t.rules, build(t, schema, key_field))
        return found[1]

    def compiled(self, t: Target) -> Compiled:
        """The target's prepared per-record work (cached per schema id and rule set)."""
        key = (t.schema_id, id(t.rules))
        found = self._compiled.get(key)
        if found is None or found[0] is not t.rules:
            if len(self._compiled) > 256:
                self._compiled.clear()
            found = self._compiled[key] = (t.rules, Compiled(t))
        return found[1]

    # -- targets ------------------------------------------------------------------------------
    def target(self, topic: str, event_type: str | None, tenant: str | None = None) -> Target:
        """The subject, latest schema and rules for a record; raises ``InvalidInput``. With
        ``tenant`` (the sender's), a subject another tenant owns is refused
        (``SubjectNotFound``, as the registry answers that tenant): its records are validated
        only against their own tenant's subjects and the hub's shared ones."""
        w = self.publisher.targets.resolve(topic, event_type)
        if tenant is not None:
            owner = self.registry.owner(w.subject, refresh=False)
            if owner not in (None, HUB_TENANT, tenant):
                raise SubjectNotFound(
                    f"Topic {topic!r} takes records of subject {w.subject!r}, which is not one of "
                    f"tenant {tenant!r}'s subjects nor one the hub shares: ask the hub's "
                    "operators for a topic with a shared subject."
                )
        return Target(
            w.subject,
            w.schema_id,
            w.schema,
            w.name,
            w.classification,
            self.rules.get(w.subject),
            w.plain,
        )

    def _writer(self, writer_id: int) -> ParsedSchema:
        """The writer schema of a wire-format value, refused (``recursive_schema``) when it holds
        a recursive type: the registry refuses those now, but one registered before, or in an
        external registry, would let a deeply nested value crash the process in fastavro's
        compiled reader (``core.avro.schema.recursive_type``) before any error is raised."""
        writer = self.registry.parsed(writer_id)
        if writer_id not in self._recursive:
            self._recursive[writer_id] = recursive_type(writer.normalized)
        name = self._recursive[writer_id]
        if name is not None:
            raise HubError(
                f"The value names schema id {writer_id}, whose type {name!r} contains itself: "
                "the hub does not decode values of recursive types (their depth is unbounded). "
                "Write it with a flat schema.",
                code="recursive_schema",
            )
        return writer

    def _readable_id(self, writer_id: int, tenant: str) -> bool:
        """Whether ``tenant``'s records may name ``writer_id``: a schema of its own tenant's
        subjects or of a shared one (``SchemaRegistry.id_tenants``; another tenant's reads as
        unknown). Only True is cached: an id's tenants only grow."""
        if (writer_id, tenant) in self._readable_ids:
            return True
        tenants = self.registry.id_tenants(writer_id)
        if tenants and tenant not in tenants and HUB_TENANT not in tenants:
            return False
        if len(self._readable_ids) > 4096:
            self._readable_ids.clear()
        self._readable_ids.add((writer_id, tenant))
        return True

    def _incompatibilities(self, reader: Target, writer_id: int) -> list[str]:
        key = (reader.schema_id, writer_id)
        found = self._compat.get(key)
        if found is None:
            writer = self.publisher.plain(writer_id, self.registry.parsed(writer_id))
            # Strict: values are re-encoded here, and a decimal read at another scale is wrong.
            strict = check_reader_writer(reader.plain, writer, strict_logical_types=True)
            found = [f"{i.path}: {i.message}" for i in strict]
            self._compat[key] = found
        return found

    # -- one record ---------------------------------------------------------------------------
    def _convert(
        self, topic: str, raw: RawRecord, targets: dict[str | None, Target], tenant: str
    ) -> tuple[Target, Any, bytes | None]:
        """The record's target, its datum, and its value bytes if they can be kept as sent
        (``tenant``: the sender's, the tenant of the record it becomes)."""
        if raw.error is not None:
            raise _Reject(raw.error_code, raw.error)
        if len(raw.original) > self.max_record_bytes:
            raise _Reject(
                "payload_too_large",
                f"The record is {len(raw.original)} bytes, over the limit of "
                f"{self.max_record_bytes} (HUB_MAX_RECORD_BYTES): split or shrink it.",
            )
        event_type = raw.event_type
        writer_id = None
        if raw.kind == "wire":
            try:
                writer_id, _ = serde.split_wire(raw.original)
                writer = self._writer(writer_id)
                if not self._readable_id(writer_id, tenant):
                    raise SchemaNotFound(f"Schema id {writer_id} not found.")
            except SchemaNotFound as exc:
                raise _Reject(
                    "unknown_schema_id",
                    f"The value names schema id {writer_id}, which this registry does not hold: "
                    "register the writer schema first.",
                ) from exc
            except HubError as exc:
                raise _Reject(exc.code, exc.message) from exc
            event_type = event_type or writer.name
        try:
            if event_type not in targets:
                targets[event_type] = self.target(topic, event_type, tenant)
            t = targets[event_type]
            if raw.kind == "json":
                return t, serde.from_json(raw.value, t.plain.parsed), None
            if raw.kind == "datum":
                c = self.compiled(t)  # file rows: floats and ints into decimals, exactly, and
                # map columns' pairs into maps, at any depth (``serde.conform_row``)
                serde.check_stamps(raw.value, c.stamps)  # and times never cut to the unit
                return t, c.fill(serde.conform_row(raw.value, c.conform)), None
            assert writer_id is not None
            problems = self._incompatibilities(t, writer_id)
            if problems:
                raise _Reject(
                    "incompatible_schema",
                    f"The record was written with schema id {writer_id}, which the reader schema "
                    f"of {t.subject} (id {t.schema_id}) cannot read: {'; '.join(problems)}. "
                    "Register a compatible schema or convert the record.",
                )
            keep = raw.original if writer_id == t.schema_id else None
            writer = self.registry.parsed(writer_id)
            if t.encrypts or (keep is None and encrypts(writer.text)):
                plain = self._plain_datum(topic, raw.original, writer_id, writer, t, tenant)
                return t, plain, keep
            if raw.value is not None and keep is not None:
                return t, raw.value, keep
            datum = serde.decode(raw.original, writer, None if keep else t.schema)
            return t, datum, keep
        except HubError as exc:
            raise _Reject(exc.code, exc.message) from exc

    def _plain_datum(
        self, topic: str, value: bytes, writer_id: int, writer: ParsedSchema, t: Target, tenant: str
    ) -> Any:
        """A wire-format value as a plain datum of ``t``: PII decrypted, resolved to the latest.

        Values written with a schema whose PII is ciphertext (a copy of the hub's own records)
        are decrypted under their subject's key first; a subject without a live key (erased, or
        never seen by this hub) is refused like any late event of an erased subject.
        """
        datum = serde.decode(value, writer, None)
        if encrypts(writer.text):
            codec = self.publisher.codec()
            subject = data_subject_of(datum, writer.text)
            keys = codec.keystore.for_tenant(tenant)  # the sender's own keys
            if subject is not None and keys.erased(subject):
                raise _Reject(
                    "key_destroyed",
                    f"Data subject {subject!r} was erased: the record's PII cannot be read and "
                    "no new data is accepted for it, so it is refused.",
                )
            not_ours = _Reject(
                "not_hub_ciphertext",
                f"The value was written with schema id {writer_id}, the log form of "
                f"{t.subject}, whose PII fields ({', '.join(pii_fields(writer.text))}) hold "
                "ciphertext of this hub, but these bytes do not open as ciphertext of this "
                "tenant's record (another tenant's copy, a value sealed before tenants were "
                "bound, or not the hub's at all): send plain values instead, "
                "serialized with the plain schema (the .avsc as shipped; registering it under "
                f"{t.subject!r} answers with the id of its plain companion "
                f"{plain_subject(t.subject)!r}), and the hub encrypts them.",
            )
            if subject is not None and not keys.exists(subject):
                raise not_ours  # no key was ever made for this subject: not our ciphertext
            try:
                # Opened as the sender's tenant, v2 only: a copy of another tenant's record, or
                # any v1 value (not bound to a tenant), fails and is refused; the hub never
                # decrypts for one tenant what another's record holds (docs/trust-model.md).
                datum = codec.decrypt(datum, writer.text, topic, tenant=tenant, legacy=False)
            except DecryptionFailed as exc:
                raise not_ours from exc
        plain_writer = self.publisher.plain(writer_id, writer)
        if writer_id == t.schema_id:
            return datum
        return serde.decode(serde.encode(writer_id, plain_writer, datum), plain_writer, t.plain)

    def ref_keys(self, topic: str, batch: BatchCache | None) -> set[str]:
        """The record keys on ``topic``, caught up once per batch."""
        if batch is None:
            return self.refs.keys(topic)
        found = batch.refs.get(topic)
        if found is None:
            found = batch.refs[topic] = self.refs.keys(topic)
        return found

    def _check_rules(
        self, t: Target, datum: Any, now: datetime, batch: BatchCache | None = None
    ) -> _Reject | None:
        c = self.compiled(t)
        if not c.has_rules:
            return None
        found = c.check(datum, now)
        for rule, get in c.refs:
            value = get(datum)
            assert rule.topic is not None
            if value is not None and value not in self.ref_keys(rule.topic, batch):
                found = [*found, ref_violation(rule, value)]
        if not found:
            return None
        first = found[0]
        detail = " ".join(f"[{v.rule_id}] {v.message}" for v in found)
        return _Reject("rule_failed", detail, first.rule_id, first.field_path)

    def accept_one(
        self,
        topic: str,
        raw: RawRecord,
        targets: dict[str | None, Target],
        now: datetime,
        batch: BatchCache | None = None,
        *,
        tenant: str,
    ) -> tuple[Target, Any, bytes] | _Reject:
        """Steps 1-3 for one record: its target, datum and value bytes, or why it is rejected.

        A record naming an erased data subject (``core.pii.refuse_erased``) is
        rejected first; ``batch`` caches look-ups for one batch."""
        try:
            t, datum, value = self._convert(topic, raw, targets, tenant)
        except _Reject as converting:
            return converting
        if self.publisher.pii is not None:
            seen = None if batch is None else batch.erased
            try:
                keys = self.publisher.pii.keystore
                refuse_erased(datum, t.schema.text, keys, seen, tenant=tenant)
            except KeyDestroyed as exc:
                return _Reject(exc.code, exc.message)
        failed = self._check_rules(t, datum, now, batch)
        if failed is not None:
            return failed
        if value is None:
            try:
                stored = datum
                if t.encrypts:  # PII to ciphertext under the data subject's key
                    stored = self.publisher.codec().encrypt(
                        datum, t.schema.text, topic, tenant=tenant
                    )
                value = self.compiled(t).encode(stored)  # = serde.encode, generated per schema
            except HubError as exc:
                return _Reject(exc.code, exc.message)
            if len(value) > self.max_record_bytes:
                return _Reject(
                    "payload_too_large",
                    f"The encoded record is {len(value)} bytes, over the limit of "
                    f"{self.max_record_bytes} (HUB_MAX_RECORD_BYTES).",
                )
        return t, datum, value

    # -- batches ------------------------------------------------------------------------------
    def ingest(
        self,
        topic: str,
        records: Sequence[RawRecord],
        *,
        source: str,
        producer: str | None = None,
        tenant: str = "default",
        position: Mapping[str, Any] | None = None,
        consumed: int | None = None,
        done: bool = False,
        attempt: int = 1,
        marks: Marks | None = None,
        companions: Sequence[Companion] = (),
    ) -> IngestResult:
        """Ingest one batch per record (see the module docstring); returns the counts.

        ``position`` is the source's position after this batch; ``consumed`` the source's total
        records read so far (both stored with the batch). ``marks`` (quarantine replay) is given
        every record's outcome with where it landed and returns more records to append in the
        same transaction (step 4 of ``_commit``). ``companions`` (the request's policy
        decision) are stored in the batch's transaction (step 0 of ``_commit``), even when
        the batch stores nothing else. Raises only for problems of the whole
        batch (an unknown topic, storage failure), never for one bad record. The cyclic garbage
        collector is paused while the batch is built (``gc_paused``).
        """
        refuse_internal(topic)  # early, for a clear error; ``_commit`` is the gate itself
        with tracing.publishing(topic, len(records), source), gc_paused():
            return self._ingest(
                topic,
                records,
                source=source,
                producer=producer,
                tenant=tenant,
                position=position,
                consumed=consumed,
                done=done,
                attempt=attempt,
                marks=marks,
                companions=companions,
            )

    def _ingest(
        self,
        topic: str,
        records: Sequence[RawRecord],
        *,
        source: str,
        producer: str | None,
        tenant: str,
        position: Mapping[str, Any] | None,
        consumed: int | None,
        done: bool,
        attempt: int,
        marks: Marks | None = None,
        companions: Sequence[Companion] = (),
    ) -> IngestResult:
        self.log.topic(topic)  # raises TopicNotFound
        producer = producer or source
        now = datetime.now(UTC)
        targets: dict[str | None, Target] = {}
        key_field = self.publisher.targets.key_field(topic)
        batch = BatchCache()
        # Steps 1-3 outside the dedupe section (batches of one topic convert side by side); each
        # rejection keeps the target known when it was rejected.
        converted: list[tuple[Target, Any, bytes] | tuple[_Reject, Target | None]] = []
        for raw in records:
            out = self.accept_one(topic, raw, targets, now, batch, tenant=tenant)
            if type(out) is _Reject:
                converted.append((out, targets.get(raw.event_type)))
            else:
                converted.append(out)  # type: ignore[arg-type]
        self.publisher.name_subjects(tenant, batch.erased)  # every subject the batch names

        def decide(prior: Prior) -> Staged[IngestResult]:
            """Step 4 and the records to append, in the section (``ingest.groupcommit``)."""
            ids_scope = Deduper.id_scope(tenant)  # per tenant, as natural keys (ingest.dedupe)
            ids_window = self.deduper.window(topic, ids_scope)
            prior_ids = prior.get(ids_scope, _NONE)
            batch_ids: set[str] = set()
            batch_keys: dict[str, set[str]] = {}
            new_keys: dict[str, list[str]] = {}
            windows: dict[str, KeyWindow] = {}
            # Accepted rows: target, value, key, event id, ce_time (None: receipt time), nk
            # headers.
            rows: list[
                tuple[Target, bytes, bytes | None, bytes | None, bytes | None, env_Headers]
            ] = []
            quarantined: list[tuple[int, RawRecord, _Reject, Target | None]] = []
            accepted_at: list[int] = []  # the batch index of each row
            result = IngestResult()
            for i, (raw, out) in enumerate(zip(records, converted, strict=True)):
                if type(out[0]) is _Reject:
                    quarantined.append((i, raw, out[0], out[1]))
                    continue
                t, datum, value = out  # type: ignore[misc]
                # Dedupe: event id first, then each unique rule's natural key.
                eid = raw.event_id
                if eid and (eid in ids_window or eid in batch_ids or eid in prior_ids):
                    result.duplicates += 1
                    result.duplicate_indexes.append(i)
                    continue
                nk_headers: list[tuple[str, str]] = []
                dup = False
                for rule, natural_key in self.compiled(t).unique:
                    nk = natural_key(datum)
                    if nk is None:
                        continue
                    w = windows.get(rule.id)
                    if w is None:
                        w = windows[rule.id] = self.deduper.window(
                            topic, Deduper.scope(rule.id, tenant), rule.window
                        )
                    seen = batch_keys.setdefault(rule.id, set())
                    prior_keys = prior.get(Deduper.scope(rule.id, tenant), _NONE)
                    if nk in w or nk in seen or nk in prior_keys:
                        dup = True
                        break
                    nk_headers.append((rule.id, nk))
                if dup:
                    result.duplicates += 1
                    result.duplicate_indexes.append(i)
                    continue
                for rule_id, nk in nk_headers:
                    batch_keys[rule_id].add(nk)
                    new_keys.setdefault(rule_id, []).append(nk)
                if eid:
                    batch_ids.add(eid)
                key = record_key(raw.key, key_field, datum)
                accepted_at.append(i)
                stamp = None
                if raw.occurred_at:
                    stamp = env.rfc3339_micros(parse_rfc3339(raw.occurred_at)).encode()
                rows.append(
                    (
                        t,
                        value,
                        None if key is None else key.encode(),
                        eid.encode() if eid else None,
                        stamp,
                        tuple(Deduper.header(rid, nk) for rid, nk in nk_headers),
                    )
                )
            accepted = self._accepted(rows, producer, tenant, now)
            q_records = self.quarantine_records(topic, source, quarantined, attempt, now, tenant)
            charge, release = self.limit(tenant, len(records), accepted, q_records)
            outcomes = None
            if marks is not None:
                dup_at, q_at = result.duplicate_indexes, [i for i, *_ in quarantined]

                def outcomes(
                    metas: Sequence[RecordMetadata], q_metas: Sequence[RecordMetadata]
                ) -> list[tuple[str, Record]]:
                    found: list[tuple[int, str, RecordMetadata | None]] = [
                        *((i, "accepted", m) for i, m in zip(accepted_at, metas, strict=True)),
                        *((i, "rejected", m) for i, m in zip(q_at, q_metas, strict=True)),
                        *((i, "duplicate", None) for i in dup_at),
                    ]
                    return marks(sorted(found, key=lambda x: x[0]))

            def finish(metas: Sequence[RecordMetadata]) -> IngestResult:
                # After the commit: count it; the keys it stored join their windows (per tenant).
                charge()
                found: list[tuple[KeyWindow, Iterable[str]]] = [(ids_window, batch_ids)]
                found += [
                    (
                        self.deduper.window(topic, Deduper.scope(rule.id, tenant), rule.window),
                        new_keys.get(rule.id, []),
                    )
                    for t in targets.values()
                    for rule in t.rules.unique
                ]
                return self.settle(source, topic, result, len(accepted), quarantined, found)

            keys: dict[str, Sequence[str]] = {ids_scope: list(batch_ids)}
            keys.update((Deduper.scope(r, tenant), nks) for r, nks in new_keys.items())
            return Staged(
                accepted, q_records, position, consumed, done, outcomes, keys, finish, release
            )

        result: IngestResult = self.committer(topic).commit(source, decide, companions)
        return result

    @staticmethod
    def _accepted(
        rows: Sequence[tuple[Target, bytes, bytes | None, bytes | None, bytes | None, env_Headers]],
        producer: str,
        tenant: str,
        now: datetime,
    ) -> list[Record]:
        """Records with their envelope headers; shared header pairs are built once per target."""
        if not rows:
            return []
        fresh = iter(uuid7_bytes(sum(1 for r in rows if r[3] is None)))
        shared: dict[str, tuple[env_Headers, env_Headers, env_Headers]] = {}
        h_id, h_corr, h_time = env.H_ID, env.H_CORRELATION, env.H_TIME
        headers: list[env_Headers] = []
        for t, _, _, eid, stamp, nks in rows:
            parts = shared.get(t.subject)
            if parts is None:
                parts = shared[t.subject] = batch_headers(t, producer, tenant, now)
            first, middle, last = parts
            if eid is None:
                eid = next(fresh)
            if stamp is not None:
                middle = (middle[0], (h_time, stamp), middle[2])
            headers.append((*first, (h_id, eid), *middle, (h_corr, eid), *last, *nks))
        return new_records([r[1] for r in rows], [r[2] for r in rows], headers)

    def limit(
        self,
        tenant: str,
        records: int,
        accepted: Sequence[Record] | ColumnBatch,
        quarantined: Sequence[Record],
    ) -> tuple[Callable[[], None], Callable[[], None]]:
        """Refuse a decided batch of ``records`` (both ingest paths, in ``decide``: before
        anything of it is written) past ``tenant``'s ingest rate, quarantine quota or storage
        quota (``core.tenant_quota``): take it from the rate buckets and reserve its bytes under
        both quotas (every later check counts them: batches decided side by side never pass a
        rate or a quota together). Returns ``(charge, release)``: ``charge`` once the batch is
        stored (the reservation becomes held bytes), ``release`` when it is not written
        (``Staged``'s ``release``, called by the group commit: the buckets get the batch back,
        the reservation is dropped); whichever comes first settles it, the other then does
        nothing. The bytes are the values stored, accepted and quarantined (the same
        on both paths and for every source). Nothing is summed while the limits are off."""
        rates, quota, stored = self.rates, self.quarantine_quota, self.stored_quota
        if not (rates.on or quota.on or stored.on):
            return _nothing, _nothing
        q_bytes = sum(len(r.value or b"") for r in quarantined)
        values = (
            accepted.values if isinstance(accepted, ColumnBatch) else [r.value for r in accepted]
        )
        nbytes = q_bytes + sum(len(v) for v in values if v)
        rates.take(tenant, records, nbytes)  # checked and taken at once: see ``take``
        try:
            quota.reserve(tenant, q_bytes)
        except BaseException:
            rates.refund(tenant, records, nbytes)
            raise
        try:
            stored.reserve(tenant, nbytes)
        except BaseException:
            quota.settle(tenant, q_bytes, written=False)
            rates.refund(tenant, records, nbytes)
            raise
        open_ = [True]

        def settle(written: bool) -> None:
            if open_:
                open_.clear()
                if not written:
                    rates.refund(tenant, records, nbytes)
                quota.settle(tenant, q_bytes, written=written)
                stored.settle(tenant, nbytes, written=written)

        return partial(settle, True), partial(settle, False)

    def quarantine_records(
        self,
        topic: str,
        source: str,
        quarantined: Sequence[tuple[int, RawRecord, _Reject, Target | None]],
        attempt: int,
        now: datetime,
        tenant: str,
    ) -> list[Record]:
        """The ``hub.RecordQuarantined`` records of a batch's rejected rows (both ingest paths:
        the per-record ``ingest`` and ``ingest.columnar``), in batch order."""
        return [
            self._quarantine_record(topic, source, raw, rej, attempt, now, t, tenant)
            for _, raw, rej, t in quarantined
        ]

    def settle(
        self,
        source: str,
        topic: str,
        result: IngestResult,
        accepted: int,
        quarantined: Sequence[tuple[int, RawRecord, _Reject, Target | None]],
        new_keys: Iterable[tuple[KeyWindow, Iterable[str]]],
    ) -> IngestResult:
        """A batch's bookkeeping once its commit is durable, shared by both ingest paths: the
        keys it stored join their dedupe windows (only now: an aborted commit must not make a
        later retry look like a duplicate), its counts and rejections go into ``result``, the
        metrics count it. Returns ``result``."""
        for window, keys in new_keys:
            window.add_all(keys)
        result.accepted = accepted
        result.rejected = len(quarantined)
        for i, _, rj, _ in quarantined:
            result.rejections.append(Rejection(i, rj.code, rj.reason, rj.rule_id, rj.path))
        self.count(source, topic, result)
        return result

    def count(self, source: str, topic: str, result: IngestResult) -> None:
        m = self.metrics
        if result.accepted:
            m.ingest_records.labels(source, topic, "accepted").inc(result.accepted)
            m.events_appended.labels(topic).inc(result.accepted)
        if result.duplicates:
            m.ingest_records.labels(source, topic, "duplicate").inc(result.duplicates)
        if result.rejected:
            m.ingest_records.labels(source, topic, "rejected").inc(result.rejected)
            for r in result.rejections:
                m.ingest_rule_failures.labels(source, topic, r.rule_id or r.reason_code).inc()

    def _commit(
        self, topic: str, source: str, staged: Sequence[Staged[Any]]
    ) -> list[Sequence[RecordMetadata]]:
        """Append decided batches in one transaction (per batch, the steps below); each batch's
        accepted records' metadata. Nothing is stored unless all of it is. A batch's ``accepted``
        as a ``ColumnBatch`` (the columnar path) is appended with ``append_columns``: the same
        stored records, without a ``Record`` each. Step 0 stores each batch's pending
        companions (the policy decision that allowed it) first; they are told ``stored`` once
        the transaction is committed (5.)."""
        refuse_internal(topic)  # every ingest source commits here: never into hub.* or _schemas
        work = []
        for s in staged:
            pos_record = None
            if s.position is not None:
                pos_record = self.positions.record(
                    source, topic, dict(s.position), s.consumed or 0, s.done
                )
            work.append((s, pos_record))
        out: list[Sequence[RecordMetadata]] = [[] for _ in staged]
        companions = [c for s in staged for c in s.companions if c.pending]
        if not companions and not any(
            s.accepted or s.quarantined or pos is not None or s.outcomes is not None
            for s, pos in work
        ):
            return out
        started = time.perf_counter()
        with self.log.transaction(f"ingest:{source}") as txn:
            for c in companions:  # 0. what allowed the batches (their decisions)
                if isinstance(c.batch, ColumnBatch):
                    txn.append_columns(c.topic, c.batch)
                else:
                    txn.append(c.topic, c.batch)
            for k, (s, pos_record) in enumerate(work):
                metas: Sequence[RecordMetadata] = []
                q_metas: Sequence[RecordMetadata] = []
                if s.accepted:
                    accepted = s.accepted
                    metas = tracing.traced_append(  # 1. the accepted records
                        topic,
                        len(accepted),
                        partial(txn.append_columns, topic, accepted)
                        if isinstance(accepted, ColumnBatch)
                        else partial(txn.append, topic, accepted),
                    )
                if s.quarantined:
                    q_metas = txn.append(QUARANTINE_TOPIC, s.quarantined)  # 2. the rejected ones
                if pos_record is not None:
                    txn.append("hub.source-positions", [pos_record])  # 3. the new position
                if s.outcomes is not None:  # 4. what the caller records (replay marks)
                    for extra_topic, extra in s.outcomes(metas, q_metas):
                        txn.append(extra_topic, [extra])
                out[k] = metas
        for c in companions:  # 5. committed: durable with the batches
            c.stored()
        self.metrics.append_seconds.labels(topic).observe(time.perf_counter() - started)
        return out

    def _quarantine_record(
        self,
        topic: str,
        source: str,
        raw: RawRecord,
        rej: _Reject,
        attempt: int,
        now: datetime,
        target: Target | None,
        tenant: str = "default",
    ) -> Record:
        """The ``hub.RecordQuarantined`` record for a rejected record; its envelope carries the
        publisher's ``tenant`` (``ce_tenant``), as the batch's accepted records do, so quarantine
        reads can be limited to a tenant."""
        original = raw.original
        content_type = raw.content_type
        if raw.kind == "datum" and not original:
            # Rows of columnar files (Parquet, Avro OCF) have no per-row bytes of their own: the
            # quarantine keeps their JSON rendering, which replays through the JSON path.
            original = json.dumps(serde.to_json(raw.value), default=str).encode()
            content_type = JSON
        extra_headers: tuple[tuple[str, bytes], ...] = ()
        subject, seen = self._pii_subject(raw, target)
        original_size, digest = len(original), hashlib.sha256(original).hexdigest()
        if raw.whole is not None:
            original_size, digest = raw.whole
        truncated = original_size > self.max_record_bytes
        if truncated:
            original = original[: self.max_record_bytes]
        from domain.envelope import uuid7

        entry_id = str(uuid7())  # the quarantine record's own event id (ce_id)
        if subject is None and rej.code != "key_destroyed" and self._holds_pii(topic, target):
            # A record for a topic with personal data whose data subject cannot be told (not
            # decodable, no subject field, unknown event type): kept all the same (nothing
            # refused is lost), sealed under a synthetic subject of its own, so that the same
            # erasure path shreds it (an officer names ``unattributed:<id>``), and a reader who
            # may see originals can open and replay it. Kept in clear, no erasure could reach it.
            subject, shared = self.unattributed.subject_for(tenant, entry_id)
            if shared:
                rej = _Reject(
                    rej.code,
                    f"{rej.reason} (Sealed under {subject!r}, shared: tenant {tenant!r} has "
                    f"{self.unattributed.limit} unattributed quarantine entries with keys of "
                    "their own; erasing that subject shreds all of them.)",
                    rej.rule_id,
                    rej.path,
                )
        if subject is not None and rej.code != "key_destroyed":
            try:
                # The original holds PII in clear: it is kept sealed under the subject's key, so
                # an erasure shreds the quarantined copy too (``hub quarantine show`` unseals).
                codec = self.publisher.codec()
                original = codec.seal(subject, original, QUARANTINE_TOPIC, tenant=tenant)
                sealed = codec.seal(
                    subject, digest.encode(), QUARANTINE_TOPIC, "original_sha256", tenant=tenant
                )
                # named after sealing (and before the append), as every batch: a key made by
                # the seal is then known as new (``KeyStore.created_here``)
                self.publisher.name_subjects(tenant, (subject,))
                digest = SEALED_DIGEST + base64.b64encode(sealed).decode()
                extra_headers = ((SEALED_FOR, subject.encode()),)
                rej = _redacted(rej, seen, target)
            except KeyDestroyed:
                rej = _Reject("key_destroyed", f"Data subject {subject!r} was erased. {rej.reason}")
        if rej.code == "key_destroyed":
            # A late record for an erased data subject: its PII is not kept anywhere, not even
            # here, nor a digest of it; the entry keeps the reason and the size.
            original, digest = b"", ""
        value = {
            "topic": topic,
            "source": source,
            "reason_code": rej.code,
            "reason": rej.reason,
            "rule_id": rej.rule_id,
            "field_path": rej.path,
            "event_type": raw.event_type or (target.name if target else None),
            "event_id": raw.event_id or str(uuid7()),
            "key": raw.key,
            "content_type": content_type,
            "original": original,
            "original_size": original_size,
            "original_sha256": digest,
            "truncated": truncated,
            "source_position": None
            if raw.position is None
            else json.dumps(raw.position, default=str),
            "attempt": attempt,
            "received_at": now.isoformat(),
        }
        # Encoded here, not by Publisher.prepare: a quarantine record may exceed the record size
        # limit by its metadata (the original alone is capped at max_record_bytes).
        q = self.target(QUARANTINE_TOPIC, None)
        datum = serde.from_json(value, q.schema.parsed)
        envelope = Envelope(
            event_type=q.name,
            producer=source,
            classification=q.classification,
            occurred_at=now,
            tenant=tenant,
            event_id=entry_id,
        )
        return Record(
            value=serde.encode(q.schema_id, q.schema, datum),
            key=topic.encode(),
            headers=envelope.to_headers() + extra_headers,
        )

    def _holds_pii(self, topic: str, target: Target | None) -> bool:
        """Whether a rejected record for ``topic`` may hold personal data: its target's schema
        encrypts PII, or (no target: the event type was not resolved) one of the topic's
        shipped event types does."""
        if self.publisher.pii is None:
            return False
        if target is not None:
            return target.encrypts
        from domain.catalog import TOPICS, schema_text

        return any(
            bool(pii_fields(schema_text(t)))
            for spec in TOPICS
            if spec.name == topic
            for t in spec.event_types
        )

    def _pii_subject(self, raw: RawRecord, target: Target | None) -> tuple[str | None, Any]:
        """The data subject whose PII a rejected record may hold in clear, when it can be told,
        and the record's value as far as it could be read.

        Only records aimed at a schema that encrypts PII are considered; the subject is read from
        the decoded value (JSON object, file row, or a wire-format value decoded with its writer
        schema). A record whose subject cannot be told (not JSON, not decodable, no subject field)
        gets None: ``_quarantine_record`` seals it under a synthetic subject (``UNATTRIBUTED``).
        """
        if target is None or not target.encrypts or self.publisher.pii is None:
            return None, None
        field_name = data_subject_field(target.schema.text)
        value = raw.value
        if value is None and raw.kind == "wire":
            try:  # a rejected wire-format value: decode it with its writer schema to find out
                writer_id, _ = serde.split_wire(raw.original)
                value = serde.decode(raw.original, self._writer(writer_id))
            except (HubError, ValueError):
                return None, None
        if field_name is None or not isinstance(value, Mapping):
            return None, None
        subject = value.get(field_name)
        if not isinstance(subject, str) or not subject or subject.startswith(UNATTRIBUTED):
            # a reserved id a sender wrote is no subject: the quarantine mints its own
            return None, value
        try:
            check_subject(subject)
        except InvalidInput:  # no key can be named by it (a lone surrogate, NUL, too long)
            return None, value
        return subject, value
