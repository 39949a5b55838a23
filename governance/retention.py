"""Retention policies and legal holds, as a fold of the ``hub.governance`` topic, and the job
that enforces them on topics and on projections (views).

Events (``domain/schemas/{RetentionPolicySet,LegalHoldPlaced,LegalHoldReleased}.avsc``):
    RetentionPolicySet   the policy in force for a scope (the latest per scope wins; a policy
                         with neither limit clears it)
    LegalHoldPlaced      nothing in the scope may be deleted or erased ...
    LegalHoldReleased    ... until this event names the hold

Scopes: ``topic:<name>``, ``projection:<name>`` (policies and holds) and ``subject:<id>`` (holds
only: a data subject, as the ``hub.data_subject`` field of a schema names it).

``RetentionJob.run(now)`` enforces topic policies; per partition it:
    1. syncs the ledger first, so every record it removes already has its leaf;
    2. computes the first offset to keep: the first record younger than ``max_age_ms`` (by record
       timestamp, as Kafka's time retention stops at the first young record), and at most
       ``max_records`` offsets below the end offset, whichever is later;
    3. refuses a scope under a legal hold (the topic's), and stops before the first record of a
       held data subject;
    4. calls ``EventLog.delete_records_before`` and records ``retention.delete`` on the ledger
       with the topic, partition, removed offset range and count (offsets, commit markers
       included).

It enforces projection policies (``max_age_ms`` and a ``time_column``, a timestamp column that
``core.ports.views.check_time_column`` accepts); per projection it:
    5. refuses a scope under a legal hold (the projection's);
    6. under the live runner's lock (so no batch rewrites a row it loaded before the cut), in each
       table of the projection that has the time column, calls
       ``ViewStore.delete_rows_before(live, table, column, (now - max_age_ms) in µs)``: the view
       rows whose time column is older go (a NULL time is kept), except the rows of a data
       subject under a legal hold (``held_rows``: the table's subject column names it), which
       stay as the subject's log records do;
    7. records ``retention.delete`` on the ledger per table that lost rows, with the projection,
       table, time column, cutoff and count.
``plan()`` (the dry run) counts with ``ViewStore.count_rows_before`` and deletes nothing.

Rows that retention removed MUST NOT come back: ``hub projection rebuild`` replays the log into a
copy, and ``projections.service`` calls ``cut_expired_rows`` on that copy, under the live runner's
lock, just before the swap: the active policy's cut as of that moment (recorded on the ledger as
``retention.delete`` with the copy's ``target``), unless the projection is under a legal hold
(then nothing is cut, so a rebuild may restore rows cut before the hold). Time travel (``hub
projection at``) applies the same cut to its temporary copy, unrecorded. A later event for a row
that was cut writes it again, from that event on (a late trade for an old window, an update of an
old account); the next run cuts it again if it is still old. The job and the runner coordinate
within one process only: run the job through the API of the ``hub serve`` that runs the
projections (a second process cannot open its chDB views anyway).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core import clock
from core.errors import HubError, InvalidInput, NotFound, TopicNotFound
from core.events import OutgoingEvent, tenant_of
from core.fold import TopicFold
from core.ports.eventlog import EventLog, StoredRecord
from core.ports.policy import HUB_TENANT
from core.ports.views import Target, check_time_column
from domain.envelope import H_ID, H_TENANT, H_TYPE

if TYPE_CHECKING:
    from core.fold import RecordDecoder
    from core.projection import Projection, Table
    from ingest.publish import EventReader, Publisher
    from ledger.service import Ledger
    from projections.service import ProjectionService
    from registry.service import SchemaRegistry

log = logging.getLogger("hub.retention")

GOVERNANCE_TOPIC = "hub.governance"
POLICY_SET = "hub.RetentionPolicySet"
HOLD_PLACED = "hub.LegalHoldPlaced"
HOLD_RELEASED = "hub.LegalHoldReleased"
SCOPE_KINDS = ("topic", "projection", "subject")
# Removing these would remove the evidence itself (the ledger's actions, the registry's schemas)
# or the events the hub's own state is folded from: with their early records gone, keys (an
# admin's too) and their provenance, the active policy, configuration and its approvals, open
# cases, model approvals, replay marks and source positions would be folded wrong at next start.
PROTECTED_TOPICS = frozenset(
    {
        "hub.audit",
        "hub.governance",
        "_schemas",
        "hub.principals",
        "hub.policies",
        "hub.config",
        "hub.config-changes",
        "hub.cases",
        "hub.models",
        "hub.quarantine-replays",
        "hub.source-positions",
    }
)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def _now_ms() -> int:
    return int(clock.now().timestamp() * 1000)


def parse_scope(scope: str, *, allow: tuple[str, ...] = SCOPE_KINDS) -> tuple[str, str]:
    """``kind:name`` split and checked; raises ``InvalidInput`` naming the allowed kinds."""
    kind, sep, name = scope.partition(":")
    if not sep or not name or kind not in allow:
        kinds = ", ".join(f"{k}:<name>" for k in allow)
        raise InvalidInput(
            f"Scope {scope!r} is invalid: use one of {kinds} (e.g. topic:trades).",
            code="invalid_scope",
        )
    return kind, name


def time_columns(proj: Projection) -> list[str]:
    """The columns a projection's retention policy may name: timestamp columns that every table
    having them accepts (``check_time_column``)."""
    names = {c.name for t in proj.tables for c in t.columns if c.type == "timestamp"}
    usable = []
    for name in sorted(names):
        try:
            for t in proj.tables:
                if any(c.name == name for c in t.columns):
                    check_time_column(t, name)
        except InvalidInput:
            continue
        usable.append(name)
    return usable


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    scope: str
    max_age_ms: int | None = None
    max_records: int | None = None
    time_column: str | None = None
    set_by: str = ""
    reason: str = ""
    set_at: str = ""

    @property
    def kind(self) -> str:
        return self.scope.partition(":")[0]

    @property
    def name(self) -> str:
        return self.scope.partition(":")[2]

    def as_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "max_age_ms": self.max_age_ms,
            "max_records": self.max_records,
            "time_column": self.time_column,
            "set_by": self.set_by,
            "reason": self.reason,
            "set_at": self.set_at,
        }


@dataclass(frozen=True, slots=True)
class LegalHold:
    hold_id: str
    scope: str
    matter: str = ""
    placed_by: str = ""
    reason: str = ""
    placed_at: str = ""
    # The placer's tenant (the record's ce_tenant header, not a field of the event's schema):
    # a tenant-limited reader lists and releases its own tenant's holds only.
    tenant: str = "default"

    def as_dict(self) -> dict[str, Any]:
        return {
            "hold_id": self.hold_id,
            "scope": self.scope,
            "matter": self.matter,
            "placed_by": self.placed_by,
            "reason": self.reason,
            "placed_at": self.placed_at,
            "tenant": self.tenant,
        }


@dataclass
class GovernanceState:
    """The fold: policies in force per scope and active holds per hold id."""

    policies: dict[str, RetentionPolicy] = field(default_factory=dict)
    holds: dict[str, LegalHold] = field(default_factory=dict)
    positions: dict[int, int] = field(default_factory=dict)

    def apply(self, event_type: str, v: Mapping[str, Any], tenant: str = "default") -> None:
        if event_type == POLICY_SET:
            policy = RetentionPolicy(
                v["scope"],
                v.get("max_age_ms"),
                v.get("max_records"),
                v.get("time_column"),
                v.get("set_by", ""),
                v.get("reason", ""),
                str(v.get("set_at", "")),
            )
            if policy.max_age_ms is None and policy.max_records is None:
                self.policies.pop(policy.scope, None)
            else:
                self.policies[policy.scope] = policy
        elif event_type == HOLD_PLACED:
            self.holds[v["hold_id"]] = LegalHold(
                v["hold_id"],
                v["scope"],
                v.get("matter", ""),
                v.get("placed_by", ""),
                v.get("reason", ""),
                str(v.get("placed_at", "")),
                tenant,
            )
        elif event_type == HOLD_RELEASED:
            self.holds.pop(v["hold_id"], None)


class Governance:
    """Reads and writes retention policies and legal holds (events on ``hub.governance``)."""

    def __init__(self, log: EventLog, reader: RecordDecoder, publisher: Publisher) -> None:
        self._log = log
        self._reader = reader
        self._publisher = publisher
        self._state = GovernanceState()
        self._fold = TopicFold(log, GOVERNANCE_TOPIC, self._apply, once_by=H_ID)

    # -- reading -----------------------------------------------------------------------------
    def state(self) -> GovernanceState:
        """The fold, brought up to date with what was appended since the last call."""
        with self._fold.lock:
            self._fold.catch_up()
            self._state.positions = self._fold.positions
            return self._state

    def _apply(self, rec: StoredRecord) -> None:
        decoded = self._reader.decode(rec)
        value = decoded.get("value")
        if not isinstance(value, dict):
            log.warning("skipping undecodable governance record at offset %d", rec.offset)
            return
        event_type = (rec.header(H_TYPE) or b"").decode()
        self._state.apply(event_type, value, (rec.header(H_TENANT) or b"default").decode())

    def policies(self) -> dict[str, RetentionPolicy]:
        return dict(self.state().policies)

    def holds(self, tenant_scope: str | None = None) -> list[LegalHold]:
        """Active holds; with ``tenant_scope``, those placed in that tenant only."""
        found = self.state().holds.values()
        mine = [h for h in found if tenant_scope in (None, h.tenant)]
        return sorted(mine, key=lambda h: h.placed_at)

    def is_held(self, scope: str) -> bool:
        """Whether an active legal hold covers ``scope`` (e.g. ``topic:trades``,
        ``subject:ACC-1``): the erasure command MUST refuse a held subject."""
        parse_scope(scope)
        return any(h.scope == scope for h in self.state().holds.values())

    def tenant_holds(self, scope: str) -> TenantHolds:
        """The tenants holding ``scope`` (a projection's) and those holding any subject."""
        holds = self.state().holds.values()
        return TenantHolds(
            frozenset(h.tenant for h in holds if h.scope == scope),
            frozenset(h.tenant for h in holds if h.scope.startswith("subject:")),
        )

    def held_subjects(self) -> frozenset[str]:
        return frozenset(
            h.scope.partition(":")[2]
            for h in self.state().holds.values()
            if h.scope.startswith("subject:")
        )

    # -- writing -----------------------------------------------------------------------------
    def _publish(
        self, event_type: str, value: dict[str, Any], actor: str, tenant: str = "default"
    ) -> None:
        self._publisher.publish(
            GOVERNANCE_TOPIC,
            [OutgoingEvent(value=value, event_type=event_type, key=value["scope"])],
            producer=actor,
            tenant=tenant,
        )

    def check_policy(
        self,
        scope: str,
        *,
        max_age_ms: int | None = None,
        max_records: int | None = None,
        time_column: str | None = None,
    ) -> None:
        """Raise unless ``set_policy`` accepts these settings: ``InvalidInput`` (scope, limits,
        time column), ``TopicNotFound`` or ``NotFound`` (the projection)."""
        kind, name = parse_scope(scope, allow=("topic", "projection"))
        for what, limit in (("max_age_ms", max_age_ms), ("max_records", max_records)):
            if limit is not None and (type(limit) is not int or limit < 1):
                raise InvalidInput(
                    f"{what}={limit!r} is invalid: pass an int >= 1 or nothing.",
                    code="invalid_retention_limit",
                )
        if kind == "topic":
            if name in PROTECTED_TOPICS:
                raise InvalidInput(
                    f"Topic {name!r} holds the hub's own evidence or state and cannot have a "
                    "retention policy.",
                    code="protected_topic",
                )
            self._log.topic(name)  # raises TopicNotFound
            if time_column is not None:
                raise InvalidInput("time_column applies to projections only; omit it for topics.")
        else:
            from projections.service import projection

            proj = projection(name)  # raises NotFound
            if max_records is not None:
                raise InvalidInput("max_records applies to topics only; use max_age_ms.")
            if max_age_ms is not None:
                columns = time_columns(proj)
                if time_column not in columns:
                    raise InvalidInput(
                        f"time_column={time_column!r} is invalid: projection {name!r} needs one "
                        f"of its timestamp columns for max_age_ms: {', '.join(columns) or 'none'} "
                        "(an aggregate table is cut by a key column only).",
                        code="invalid_time_column",
                    )

    def set_policy(
        self,
        scope: str,
        *,
        max_age_ms: int | None = None,
        max_records: int | None = None,
        time_column: str | None = None,
        actor: str,
        reason: str = "",
    ) -> RetentionPolicy:
        """Set (or, with neither limit, clear) the retention policy of a topic or projection.

        The unrecorded primitive: ``hub retention set`` and ``POST /v1/retention/policies`` go
        through ``governance.configchanges`` (resource ``retention:<scope>``: a change event,
        the two-person rule), which checks with ``check_policy`` and appends the same event.
        """
        self.check_policy(
            scope, max_age_ms=max_age_ms, max_records=max_records, time_column=time_column
        )
        policy = RetentionPolicy(
            scope,
            max_age_ms,
            max_records,
            time_column,
            actor,
            reason,
            clock.now().isoformat(),
        )
        self._publish(POLICY_SET, policy.as_dict(), actor)
        return policy

    def place_hold(
        self,
        scope: str,
        *,
        actor: str,
        matter: str = "",
        reason: str = "",
        tenant: str = "default",
    ) -> LegalHold:
        """Place a hold for ``actor`` of ``tenant`` (the hold is that tenant's)."""
        parse_scope(scope)
        hold = LegalHold(
            str(uuid.uuid4()), scope, matter, actor, reason, clock.now().isoformat(), tenant
        )
        value = hold.as_dict()
        del value["tenant"]  # the record's header carries it
        self._publish(HOLD_PLACED, value, actor, tenant)
        return hold

    def release_hold(
        self,
        hold_id: str,
        *,
        actor: str,
        reason: str = "",
        tenant_scope: str | None = None,
        tenant: str = "default",
    ) -> LegalHold:
        """Release ``hold_id`` at once: the unrecorded primitive. The routes and ``hub legal-hold
        release`` never call it: they propose ``legalhold:<hold_id>`` to
        ``governance.configchanges``, whose approval by a second person appends the same event.
        A releaser limited to ``tenant_scope`` gets the same NotFound
        for another tenant's hold as for a missing one: it may neither lift another tenant's
        hold (its records would fall to retention) nor learn that one exists."""
        hold = self.state().holds.get(hold_id)
        if hold is not None and tenant_scope not in (None, hold.tenant):
            hold = None
        if hold is None:
            raise NotFound(
                f"There is no active legal hold {hold_id!r}; list them with `hub legal-hold list`.",
                code="hold_not_found",
            )
        value = {
            "scope": hold.scope,
            "hold_id": hold_id,
            "released_by": actor,
            "reason": reason,
            "released_at": clock.now().isoformat(),
        }
        self._publish(HOLD_RELEASED, value, actor, tenant)
        return hold


# -- the job ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Deletion:
    topic: str
    partition: int
    start: int  # the first offset removed
    end: int  # the new beginning offset (exclusive end of what was removed)

    @property
    def count(self) -> int:
        return self.end - self.start

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "from": self.start,
            "to": self.end,
            "count": self.count,
        }


@dataclass(frozen=True, slots=True)
class RowDeletion:
    """View rows of one projection table older than ``cutoff_us`` (by ``time_column``)."""

    projection: str
    table: str
    time_column: str
    cutoff_us: int
    count: int
    target: str  # the live id (the projection's name), or a rebuild copy's

    def as_dict(self) -> dict[str, Any]:
        return {
            "projection": self.projection,
            "table": self.table,
            "time_column": self.time_column,
            "cutoff": datetime.fromtimestamp(self.cutoff_us / 1e6, UTC).isoformat(),
            "cutoff_us": self.cutoff_us,
            "count": self.count,
            "target": self.target,
        }


@dataclass
class RetentionReport:
    deleted: list[Deletion] = field(default_factory=list)
    deleted_rows: list[RowDeletion] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "deleted": [d.as_dict() for d in self.deleted],
            "deleted_rows": [d.as_dict() for d in self.deleted_rows],
            "skipped": list(self.skipped),
        }


def held_rows(proj: Projection, table: Table, held: frozenset[str]) -> dict[str, list[str]] | None:
    """What a retention cut of ``table`` leaves for the ``held`` data subjects: the rows whose
    subject column (named as the ``hub.data_subject`` field of the projection's event schemas,
    e.g. ``account_id``) is one of them. ``None`` (keep every row) for an entity or append table
    fed by events that name subjects but without such a column (``payment_history``: a row per
    payment event, its account not stored): its rows cannot be told apart, so none is cut while
    a subject is held, as topic retention stops at a held subject's first record. An aggregate
    table's rows sum many subjects' events and are no one subject's: they are cut as usual."""
    if not held:
        return {}
    from governance.subjects import subject_fields

    fields = subject_fields(proj)
    names = [c.name for c in table.columns if c.name in fields and c.type == "string"]
    if not names:
        return None if fields and table.kind != "aggregate" else {}
    return {name: sorted(held) for name in names}


@dataclass(frozen=True)
class TenantHolds:
    """Who holds what a projection cut touches: the tenants with a hold on the projection's
    scope, and those with a hold on any data subject (``Governance.tenant_holds``)."""

    projection: frozenset[str] = frozenset()
    subjects: frozenset[str] = frozenset()


def tenant_keep(
    proj: Projection, table: Table, held: frozenset[str], holders: TenantHolds
) -> dict[str, list[str]] | None:
    """What a retention cut of ``table`` leaves: ``held_rows`` (the held subjects' rows), plus
    every row of a tenant holding the projection, or, where a held subject's rows cannot be told
    apart (no subject column), of a tenant holding a subject. None (keep the whole table) when
    the hub's own tenant holds it so, or the table has no ``tenant`` column. Counting every
    hold whoever placed it let acme's officer keep globex's expired rows past globex's policy,
    under a hold globex can neither list nor release (as topics before session 18)."""
    keep = held_rows(proj, table, held)
    tenants = set(holders.projection)
    if keep is None:
        keep = {}
        tenants |= holders.subjects
    if HUB_TENANT in tenants:
        return None
    if tenants:
        if not any(c.name == "tenant" and c.type == "string" for c in table.columns):
            return None
        keep = {**keep, "tenant": sorted(tenants)}
    return keep


def expire_rows(
    service: ProjectionService,
    proj: Projection,
    target: Target,
    policy: RetentionPolicy,
    now_ms: int,
    *,
    apply: bool,
    held: frozenset[str] = frozenset(),
    holders: TenantHolds | None = None,
) -> Iterator[RowDeletion]:
    """Cut (``apply``) or count the rows of ``target`` that ``policy`` expires as of ``now_ms``,
    table by table (those with the policy's time column), yielding each table that lost rows
    right after its cut: a caller records it before the next table is tried. The rows of the
    ``held`` data subjects stay (``held_rows``), as their log records do, and those of the
    tenants whose holds ``holders`` names (``tenant_keep``)."""
    if policy.max_age_ms is None or policy.time_column is None:
        return
    column, cutoff_us = policy.time_column, (now_ms - policy.max_age_ms) * 1000
    store = service.store(proj.store)
    store.ensure(target, proj.tables)
    for table in proj.tables:
        if not any(c.name == column for c in table.columns):
            continue
        keep = tenant_keep(proj, table, held, holders or TenantHolds())
        if keep is None:
            continue  # a held subject's rows may be among them (held_rows)
        if apply:
            n = store.delete_rows_before(target, table, column, cutoff_us, keep)
        else:
            n = store.count_rows_before(target, table, column, cutoff_us, keep)
        if n:
            yield RowDeletion(proj.name, table.name, column, cutoff_us, n, target.id)


def cut_expired_rows(
    governance: Governance,
    service: ProjectionService,
    proj: Projection,
    target: Target,
    *,
    record: bool = True,
    actor: str = "retention",
) -> list[RowDeletion]:
    """Apply the projection's active policy, as of now, to a copy about to be swapped in or
    shown (``projections.service``: rebuild, time travel), so that replaying the log does not
    bring back rows that retention removed. Nothing under a legal hold. ``record`` writes each
    cut on the ledger (``retention.delete``), when the service has one."""
    state = governance.state()
    scope = f"projection:{proj.name}"
    policy = state.policies.get(scope)
    holders = governance.tenant_holds(scope)
    if policy is None or HUB_TENANT in holders.projection:
        return []
    out = []
    held = governance.held_subjects()
    for d in expire_rows(
        service, proj, target, policy, _now_ms(), apply=True, held=held, holders=holders
    ):
        if record and service.ledger is not None:
            service.ledger.record_action(actor, "retention.delete", scope, details=d.as_dict())
        out.append(d)
    return out


class RetentionJob:
    """Enforces topic and projection retention policies (see the module docstring for the
    steps)."""

    def __init__(
        self,
        log: EventLog,
        reader: EventReader,
        registry: SchemaRegistry,
        publisher: Publisher,
        ledger: Ledger,
        governance: Governance,
        projections: ProjectionService | None = None,
        actor: str = "retention",
    ) -> None:
        self._log = log
        self._reader = reader
        self._registry = registry
        self._publisher = publisher
        self._ledger = ledger
        self.governance = governance
        self._projections = projections
        self.actor = actor

    def plan(self, now_ms: int | None = None) -> RetentionReport:
        """What ``run`` would delete now, without deleting."""
        return self._run(now_ms, apply=False, actor=self.actor)

    def run(
        self, now: datetime | int | None = None, *, actor: str | None = None
    ) -> RetentionReport:
        """Delete what the policies expire as of ``now`` (default: the current time), recorded
        on the ledger as ``actor``'s (default: the job's)."""
        now_ms = int(now.timestamp() * 1000) if isinstance(now, datetime) else now
        from core import lineage

        state = self.governance.state()
        topics = [p.name for p in state.policies.values() if p.kind == "topic"]
        projections = [p.name for p in state.policies.values() if p.kind == "projection"]
        with lineage.run(
            self._publisher,
            "retention",
            inputs=[lineage.topic_dataset(GOVERNANCE_TOPIC)],
            outputs=[lineage.topic_dataset(t) for t in sorted(topics)]
            + [lineage.projection_dataset(p) for p in sorted(projections)],
        ):
            return self._run(now_ms, apply=True, actor=actor or self.actor)

    def _run(self, now_ms: int | None, *, apply: bool, actor: str) -> RetentionReport:
        now_ms = _now_ms() if now_ms is None else now_ms
        report = RetentionReport()
        state = self.governance.state()
        # who holds what: a tenant's hold keeps that tenant's records, the hub's own tenant's
        # every tenant's (as ``governance.erasure._binds``). Topics are shared: counting every
        # hold whoever placed it let acme's officer keep globex's expired records past globex's
        # policy, under a hold globex can neither list nor release.
        held_by: dict[str, set[str]] = {}
        for h in state.holds.values():
            held_by.setdefault(h.scope, set()).add(h.tenant)
        subjects = {
            scope.partition(":")[2]: frozenset(tenants)
            for scope, tenants in held_by.items()
            if scope.startswith("subject:")
        }
        if apply:
            self._ledger.sync()  # 1.
        for scope, policy in sorted(state.policies.items()):
            holders = held_by.get(scope, set())
            # 3. and 5.: the hub's hold keeps the whole scope; a tenant's keeps its records
            # (the cut stops at its first) or its view rows (``tenant_keep``)
            if HUB_TENANT in holders:
                report.skipped.append({"scope": scope, "reason": "under legal hold"})
                continue
            if policy.kind == "topic" and policy.name in PROTECTED_TOPICS:
                # set before the topic was protected: never enforced
                report.skipped.append({"scope": scope, "reason": "protected topic"})
                continue
            if policy.kind == "projection":
                self._projection(policy, now_ms, report, apply=apply, actor=actor)
                continue
            try:
                starts = self._log.beginning_offsets(policy.name)
                ends = self._log.end_offsets(policy.name)
            except TopicNotFound:
                report.skipped.append({"scope": scope, "reason": "topic does not exist"})
                continue
            for part in sorted(ends):
                start, end = starts.get(part, 0), ends[part]
                keep = self._first_to_keep(policy, part, start, end, now_ms)  # 2.
                if (subjects or holders) and keep > start:
                    keep = self._before_held(
                        policy.name, part, start, keep, subjects, frozenset(holders)
                    )
                if keep <= start:
                    continue
                deletion = Deletion(policy.name, part, start, keep)
                if apply:  # 4.
                    sealed = self._unattributed(policy.name, part, start)
                    new_start = self._log.delete_records_before(policy.name, part, keep)
                    deletion = Deletion(policy.name, part, start, new_start)
                    details: dict[str, Any] = deletion.as_dict()
                    if sealed:
                        details["unattributed_keys_destroyed"] = self._shred(sealed, new_start)
                    self._ledger.record_action(
                        actor,
                        "retention.delete",
                        f"topic:{policy.name}",
                        details=details,
                    )
                report.deleted.append(deletion)
        return report

    def _projection(
        self,
        policy: RetentionPolicy,
        now_ms: int,
        report: RetentionReport,
        *,
        apply: bool,
        actor: str,
    ) -> None:
        service = self._projections
        if service is None:
            report.skipped.append({"scope": policy.scope, "reason": "this hub runs no projections"})
            return
        from projections.service import projection

        try:
            proj = projection(policy.name)
            with service.runner(proj.name).lock:  # 6.
                live = Target(proj.name)
                held = self.governance.held_subjects()
                holders = self.governance.tenant_holds(policy.scope)
                for table in proj.tables:
                    timed = any(c.name == policy.time_column for c in table.columns)
                    if timed and tenant_keep(proj, table, held, holders) is None:
                        reason = f"table {table.name}: may hold rows of a data subject under hold"
                        report.skipped.append({"scope": policy.scope, "reason": reason})
                rows = expire_rows(
                    service, proj, live, policy, now_ms, apply=apply, held=held, holders=holders
                )
                for d in rows:
                    if apply:  # 7.
                        self._ledger.record_action(
                            actor, "retention.delete", policy.scope, details=d.as_dict()
                        )
                    report.deleted_rows.append(d)
        except HubError as exc:  # e.g. NotFound, or the view store cannot open here
            log.error("projection retention failed: %s: %s", policy.scope, exc.message)
            report.skipped.append({"scope": policy.scope, "reason": exc.message})

    def _unattributed(self, topic: str, part: int, start: int) -> list[tuple[int, str, str | None]]:
        """For ``hub.quarantine`` with a key store: its entries sealed under their own
        ``unattributed:*`` keys (``ingest.quarantine``), read before the cut."""
        from ingest.pipeline import QUARANTINE_TOPIC
        from ingest.quarantine import sealed_unattributed

        if topic != QUARANTINE_TOPIC or self._publisher.pii is None:
            return []
        return sealed_unattributed(self._log, part, start)

    def _shred(self, sealed: list[tuple[int, str, str | None]], removed_to: int) -> int:
        """Destroy the keys only the removed entries were sealed under: no key is left that
        opened nothing the hub keeps (and a copy from before the cut stays sealed)."""
        from ingest.quarantine import shred_removed

        assert self._publisher.pii is not None
        return len(shred_removed(sealed, self._publisher.pii.keystore, removed_to))

    def _first_to_keep(
        self, policy: RetentionPolicy, part: int, start: int, end: int, now_ms: int
    ) -> int:
        keep = start
        if policy.max_records is not None:
            keep = max(keep, end - policy.max_records)
        if policy.max_age_ms is not None:
            # Only records read and found expired are cut: a scan that ends early (a Kafka read
            # that came back short) never lets the cut run past the last record it saw.
            cutoff = now_ms - policy.max_age_ms
            young = start
            for r in self._records(policy.name, part, start):
                if r.timestamp_ms >= cutoff:
                    break
                young = r.offset + 1
            keep = max(keep, young)
        return min(keep, end)

    def _records(self, topic: str, part: int, start: int) -> Iterator[StoredRecord]:
        return self._log.scan(topic, part, start, batch=4096)

    def _before_held(
        self,
        topic: str,
        part: int,
        start: int,
        keep: int,
        subjects: Mapping[str, frozenset[str]],
        tenants: frozenset[str],
    ) -> int:
        """``keep``, or the offset of the first record below it that a hold keeps: a record of
        a tenant in ``tenants`` (which hold the topic), or one naming a held data subject
        (``subjects``: subject -> the tenants whose holds name it) of a holding tenant, or of
        any tenant when the hub's own tenant holds it. A record without one tenant (``ce_tenant``
        twice) counts as every tenant's."""
        from core.pii import data_subject_of

        schemas: dict[int, str] = {}
        for rec in self._records(topic, part, start):
            if rec.offset >= keep:
                break
            owner = tenant_of(rec)
            if tenants and (owner is None or owner in tenants):
                return rec.offset
            if not subjects:
                continue
            decoded = self._reader.decode(rec)
            value, schema_id = decoded.get("value"), decoded.get("schema_id")
            if not isinstance(value, dict) or schema_id is None:
                continue
            if schema_id not in schemas:
                schemas[schema_id] = self._registry.parsed(schema_id).text
            by = subjects.get(data_subject_of(value, schemas[schema_id]) or "")
            if by is not None and (HUB_TENANT in by or owner is None or owner in by):
                return rec.offset
        return keep

    def holds_pii_of(self, topic: str, subject: str, tenants: frozenset[str] | None = None) -> bool:
        """Whether ``topic`` holds a record whose personal data is encrypted under ``subject``'s
        key (its schema names the subject and classifies a field PII): what crypto-shredding
        the subject would make unreadable there; of ``tenants``' records only when given
        (their keys are the ones destroyed). A whole-topic scan, run only for an erasure
        while that topic is under a legal hold."""
        from core.events import tenant_of
        from core.pii import data_subject_of, plan

        try:
            starts = self._log.beginning_offsets(topic)
        except TopicNotFound:
            return False
        schemas: dict[int, str | None] = {}
        for part, start in sorted(starts.items()):
            for rec in self._records(topic, part, start):
                if tenants is not None and tenant_of(rec) not in tenants:
                    continue
                decoded = self._reader.decode(rec)
                value, schema_id = decoded.get("value"), decoded.get("schema_id")
                if not isinstance(value, dict) or schema_id is None:
                    continue
                if schema_id not in schemas:
                    parsed = self._registry.parsed(schema_id).text
                    schemas[schema_id] = parsed if plan(parsed).fields else None
                text = schemas[schema_id]
                if text is not None and data_subject_of(value, text) == subject:
                    return True
        return False
