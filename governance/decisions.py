"""Every policy decision becomes an event: ``hub.PolicyDecisionRecorded`` on ``hub.decisions``.

``RecordingPolicyEngine`` wraps any PolicyEngine. For each decision it records the decision id
(UUIDv7), principal and the id of the key it authenticated with (never a secret), action,
resource, policy bundle version, result, reason, obligations and the
SHA-256 of the canonical JSON input, as an Avro event; the audit ledger gives it a Merkle leaf
like every other event.

Batching without losing an allow (group commit, ``DecisionCommitter``):
    1. the caller's decision is queued in the open batch;
    2. a flusher thread takes the batch when it is full (``max_batch``), or when its linger ran
       out: ``linger_ms`` (default 0, i.e. at once) when an allowed decision waits in it,
       ``deny_linger_ms`` when only denials do;
    3. the flusher appends the whole batch in ONE event-log append (one transaction, one fsync
       on SQLite with ``synchronous=FULL``), then wakes the batch's waiters;
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
While one batch is being appended the next one fills, so under concurrency many decisions share
one fsync without any caller waiting for a timer; with two flushers (the default) one batch is
encoded while the other's fsync runs (the log prepares an append outside its write lock).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from core.avro import serde
from core.errors import PayloadTooLarge, Retryable
from core.events import OutgoingEvent
from core.policybundle import decision_input, input_digest, with_now
from core.ports.eventlog import Record
from core.ports.policy import Decision, PolicyEngine, Principal
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
    rfc3339_micros,
    uuid7,
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


@dataclass(frozen=True, slots=True)
class DecisionRecord:
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
    row_filter: Mapping[str, str] = field(default_factory=dict)
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
    def append(self, records: Sequence[DecisionRecord]) -> None:
        """Store every record durably, all or nothing; raise on failure."""


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

    def append(self, records: Sequence[DecisionRecord]) -> None:
        encoder = self._ensure_topic()
        self._log.append(DECISIONS_TOPIC, encoder.encode(records))


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
        self._spec = (H_SPECVERSION, SPECVERSION.encode())
        self._type = (H_TYPE, self._name.encode())
        self._causation = (H_CAUSATION, b"")
        self._class = (H_CLASSIFICATION, self._classification.encode())
        self._content = (H_CONTENT_TYPE, CONTENT_TYPE.encode())

    def encode(self, records: Sequence[DecisionRecord]) -> list[Record]:
        if not self.direct:
            out: list[Record] = []
            for r in records:  # one prepare per record: each has its own producer and tenant
                out += self._publisher.prepare(
                    DECISIONS_TOPIC, [decision_event(r)], producer=r.principal, tenant=r.tenant
                )
            return out
        return [self._one(r) for r in records]

    def _one(self, r: DecisionRecord) -> Record:
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
            raise PayloadTooLarge(
                f"Policy decision {r.decision_id} encodes to {len(value)} bytes, over the limit "
                f"of {self._max_bytes} (HUB_MAX_RECORD_BYTES); its resource or reason is too "
                "long."
            )
        # The headers Envelope(...).to_headers() gives, without building the Envelope.
        event_id = r.decision_id.encode()
        return Record(
            value=value,
            key=r.principal.encode(),
            headers=(
                self._spec,
                (H_ID, event_id),
                self._type,
                (H_TIME, _rfc3339(r.decided_at_us)),
                (H_SOURCE, r.principal.encode()),
                (H_CORRELATION, event_id),
                self._causation,
                (H_TENANT, r.tenant.encode()),
                self._class,
                self._content,
                (H_ACTION, r.action.encode()),
                (H_SUBJECT, r.resource.encode()),
            ),
        )


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
    __slots__ = ("done", "error", "opened", "records", "waiters")

    def __init__(self) -> None:
        self.records: list[DecisionRecord] = []
        self.waiters = 0
        self.opened = 0.0
        self.done = threading.Event()
        self.error: BaseException | None = None


@dataclass
class CommitStats:
    batches: int = 0
    records: int = 0
    largest_batch: int = 0
    failed_batches: int = 0
    storing_s: float = 0.0  # time spent in the sink's append (step 3): the flusher's busy time


class DecisionCommitter:
    """Group commit of decision records (steps 1-5 of the module docstring). Thread-safe."""

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
        self._wait_timeout = wait_timeout_s
        self._cv = threading.Condition()
        self._batch = _Batch()
        self._storing: list[_Batch] = []  # taken by a flusher, not yet stored
        self._failing = False
        self._closed = False
        self.stats = CommitStats()
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

    def submit(self, record: DecisionRecord, *, wait: bool, prompt: bool | None = None) -> None:
        """Queue ``record``; with ``wait``, return only once it is stored (else raise).

        ``prompt`` (default: ``wait``) flushes the batch with the allow linger, not the deny
        linger, even when nobody waits for it (unsynced reads, step 6)."""
        with self._cv:  # 1.
            if self._closed:
                raise DecisionNotRecorded("The decision log is closed: the hub is shutting down.")
            batch = self._batch
            if not batch.records:
                batch.opened = time.monotonic()
            batch.records.append(record)
            if wait if prompt is None else prompt:
                batch.waiters += 1
            self._cv.notify()
        if not wait:
            return  # 5.
        if not batch.done.wait(self._wait_timeout):  # 4.
            raise DecisionNotRecorded(
                f"Decision {record.decision_id} was not stored within {self._wait_timeout} s."
            )
        if batch.error is not None:
            raise DecisionNotRecorded(
                f"Decision {record.decision_id} could not be stored: {batch.error!r}"
            ) from batch.error

    def _run(self) -> None:
        while True:
            with self._cv:  # 2.
                while not self._batch.records and not self._closed:
                    self._cv.wait()
                if not self._batch.records and self._closed:
                    return
                while not self._closed and len(self._batch.records) < self._max_batch:
                    linger = self._linger if self._batch.waiters else self._deny_linger
                    left = self._batch.opened + linger - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
                batch, self._batch = self._batch, _Batch()
                self._storing.append(batch)
            started = time.perf_counter()
            error: BaseException | None = None
            try:  # 3.
                self._sink.append(batch.records)
            except BaseException as exc:  # every waiter learns; denials are logged
                error = exc
                log.error("storing %d policy decisions failed: %r", len(batch.records), exc)
            with self._cv:
                self._storing.remove(batch)
                self._failing = error is not None
                st = self.stats
                st.storing_s += time.perf_counter() - started
                if error is None:
                    st.batches += 1
                    st.records += len(batch.records)
                    st.largest_batch = max(st.largest_batch, len(batch.records))
                else:
                    st.failed_batches += 1
            batch.error = error
            batch.done.set()

    def flush(self) -> None:
        """Return once everything queued so far is stored (or failed)."""
        with self._cv:
            storing = list(self._storing)  # batches flushers took but may not have stored yet
            batch = self._batch
            if batch.records:
                batch.waiters += 1  # no linger for a flush
                self._cv.notify()
        for taken in storing:
            taken.done.wait(self._wait_timeout)
        if batch.records:
            batch.done.wait(self._wait_timeout)

    def close(self) -> None:
        """Store what is queued, then stop the flusher."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        for t in self._threads:
            t.join(timeout=self._wait_timeout + 1)


_id_lock = threading.Lock()


def new_decision_id() -> str:
    with _id_lock:  # domain.envelope.uuid7 keeps its monotonic counter in module globals
        return str(uuid7())


class RecordingPolicyEngine(PolicyEngine):
    """Decides through ``inner`` and records every decision (see the module docstring)."""

    def __init__(
        self,
        inner: PolicyEngine,
        committer: DecisionCommitter,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        enrich: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
        unsynced: frozenset[str] = frozenset(),
    ) -> None:
        self.inner = inner
        self.committer = committer
        self._unsynced = unsynced  # read actions answered before their record's fsync (6.)
        self._clock_ns = clock_ns
        self._enrich = enrich  # adds what the hub knows to the context (open cases)

    def decide(
        self,
        principal: Principal,
        action: str,
        resource: str,
        context: Mapping[str, Any] | None = None,
    ) -> Decision:
        ctx = with_now(context, self._clock_ns)
        try:
            if self._enrich is not None:
                ctx = dict(self._enrich(ctx))
            decision = self.inner.decide(principal, action, resource, ctx)
        except Exception as exc:  # an engine that raises: deny, and record the deny
            decision = Decision(
                False,
                f"Access denied because the policy engine failed: {exc!r}",
                str(getattr(self.inner, "version", "unknown")),
            )
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
            input_sha256=input_digest(decision_input(principal, action, resource, ctx)),
            decided_at_us=int(ctx["now"]) // 1000 if isinstance(ctx["now"], int) else 0,
            mask=tuple(decision.mask),
            row_filter=dict(decision.row_filter),
            purpose=str(ctx.get("purpose") or ""),
            case_id=str(ctx.get("case") or ""),
            key_id=str(principal.attributes.get("key_id", "")),
        )
        wait = decision.allow and (action not in self._unsynced or self.committer.failing)
        try:
            self.committer.submit(record, wait=wait, prompt=decision.allow)
        except DecisionNotRecorded:
            if decision.allow:
                raise  # fail closed: no allow without its record; callers answer 503
        return replace(decision, decision_id=record.decision_id)

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
