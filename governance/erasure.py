"""Erasure of a data subject by crypto-shredding (``hub erase SUBJECT --reason ...``).

The subject's PII was encrypted under its own key before it entered the log
(``core.pii``), so erasing it never rewrites the log: the audit ledger's leaves,
which commit to the stored bytes, keep verifying. ``Eraser.erase`` (the caller has asked the policy
decision point for ``subject.erase`` first):

1. refuses without a reason; refuses (``Forbidden``) a reader limited to one tenant a subject
   another tenant named too, or one named before the hub recorded its tenants
   (``check_scope``: the key is hub-wide, so only an officer of every tenant may destroy it
   then); and refuses a subject under a legal hold (``subject:<id>``), or whose PII a held
   topic holds, or while a projection that stores PII is held (``_held_scopes_shredded``);
2. destroys every version of the subject's key (``KeyStore.destroy``: irreversible, idempotent).
   From here on every log read, quarantine entry and projection fold sees ``"[erased]"`` where
   the PII was, and a late event naming the subject is refused at ingest;
3. scrubs the subject's view rows: in every projection table that stores PII columns and has a
   column naming the data subject (a column called as the ``hub.data_subject`` field of the
   projection's event schemas, e.g. ``account_id``), under the live runner's lock (so no batch
   rewrites a row it loaded before the scrub), one ``ViewStore.erase_values`` sets the PII
   columns of the rows where that column is the subject to ``"[erased]"`` (NULL stays NULL).
   That is exactly what a rebuild would write now: the folds copy each PII value from an event
   naming the row's subject, and decrypting with the destroyed key yields ``"[erased]"`` for a
   string (``PiiField.erased``). A projection with a PII table that has no subject column, or
   whose PII columns are not strings, is rebuilt instead (replay into a new table and swap, as
   ``hub projection rebuild`` does). Either way no view row still holds the subject's
   plaintext; exports are queries of the views, so they hold none either;
4. records ``subject.erase`` on the audit ledger (actor, reason, whether a key existed, the
   rows scrubbed per projection and table, the projections rebuilt), once per tenant that named
   the subject (so each tenant's officer and evidence see it; the eraser's tenant when none
   did), and signs a checkpoint at once, so the erasure itself is provable.

A crash between 2 and 4 leaves the key destroyed but the erasure unrecorded; running the same
command again is safe (step 2 is idempotent) and completes 3 and 4. Other processes that cache
keys stop decrypting within the KeyStore's documented cache lifetime (``keystore_cache_ttl_s``);
a projection running in another process (``hub serve``) keeps the rows it already wrote until it
is scrubbed or rebuilt there, so run ``hub erase`` against the serving hub's API
(``POST /v1/erasures``) when one is running.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.errors import Conflict, Forbidden, InvalidInput
from core.ports.keystore import check_subject
from core.ports.policy import HUB_TENANT
from core.ports.views import Target, check_erasable
from governance.subjects import subject_fields

if TYPE_CHECKING:
    from core.ports.keystore import KeyStore, SubjectTenants
    from core.ports.policy import Principal
    from core.projection import Projection, Table
    from governance.retention import Governance, RetentionJob
    from ledger.service import Ledger
    from projections.service import ProjectionService

ACTION = "subject.erase"


def _binds(hold_tenant: str, named: frozenset[str]) -> bool:
    """Whether a hold placed in ``hold_tenant`` stops the erasure of a subject that the tenants
    ``named`` named: the hub's own tenant's holds always, and a tenant's hold only when that
    tenant named the subject (it has records of the subject to keep), or when who named it is
    not known. A tenant that never named the subject has nothing of it under its hold: before,
    acme's officer placed a hold on ``subject:<globex's customer>`` (or, with topic holds
    counted, on ``topic:accounts``) and globex's erasures answered ``legal_hold`` with no hold
    globex could list or release."""
    return hold_tenant == HUB_TENANT or not named or hold_tenant in named


@dataclass(frozen=True, slots=True)
class Erasure:
    """What an erasure did; ``rows_scrubbed`` counts the subject's rows per projection and table
    that were scrubbed, ``projections_rebuilt`` names those rebuilt instead; ``audit_offset`` is
    the ``hub.audit`` record naming it and ``checkpoint_size`` the size of the signed checkpoint
    that covers it."""

    subject: str
    reason: str
    actor: str
    key_existed: bool
    projections_rebuilt: tuple[str, ...] = ()
    rows_scrubbed: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    audit_offset: int | None = None
    checkpoint_size: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "reason": self.reason,
            "actor": self.actor,
            "key_existed": self.key_existed,
            "projections_rebuilt": list(self.projections_rebuilt),
            "rows_scrubbed": {p: dict(t) for p, t in self.rows_scrubbed.items()},
            "audit_offset": self.audit_offset,
            "checkpoint_size": self.checkpoint_size,
        }


def pii_projections() -> list[str]:
    """The projections whose tables store PII columns (scrubbed or rebuilt by an erasure)."""
    from projections.catalog import PROJECTIONS

    return [p.name for p in PROJECTIONS if any(c.pii for t in p.tables for c in t.columns)]


def scrub_plan(proj: Projection) -> list[tuple[Table, str, tuple[str, ...]]] | None:
    """(table, subject column, PII columns) for each of the projection's PII tables, or None when
    one of them cannot be scrubbed (no single subject column, or PII ``erase_values`` refuses,
    such as a non-string column): the projection is then rebuilt."""
    fields = subject_fields(proj)
    if len(fields) != 1:
        return None
    (subject,) = fields
    plan = []
    for table in proj.tables:
        pii = tuple(c.name for c in table.columns if c.pii)
        if not pii:
            continue
        try:
            check_erasable(table, subject, pii)
        except InvalidInput:
            return None
        plan.append((table, subject, pii))
    return plan


class Eraser:
    """Erases data subjects (see the module docstring for the steps)."""

    def __init__(
        self,
        keystore: KeyStore,
        ledger: Ledger,
        governance: Governance,
        projections: ProjectionService,
        subject_tenants: SubjectTenants | None = None,
        retention: RetentionJob | None = None,
    ) -> None:
        self._subject_tenants = subject_tenants
        self._retention = retention  # scans a held topic for the subject's records
        self._keystore = keystore
        self._ledger = ledger
        self._governance = governance
        self._projections = projections

    def tenants_of(self, subject: str) -> frozenset[str]:
        """The tenants whose records named ``subject`` (empty: none recorded)."""
        if self._subject_tenants is None:
            return frozenset()
        return self._subject_tenants.tenants_of(check_subject(subject))

    def check_scope(self, subject: str, tenant_scope: str | None) -> frozenset[str]:
        """The tenants that named ``subject``; raises ``Forbidden`` when a reader limited to
        ``tenant_scope`` (None: every tenant) may not erase it. The key is hub-wide, so its
        destruction erases the subject for every tenant that named it: only an officer of every
        tenant (``tenant.all``) may erase a subject another tenant named too. A subject with a key
        (or erased) but no record of its tenants was named before they were recorded: which
        tenants named it is unknown, so it too needs ``tenant.all``. A subject nobody named
        (no record, no key) keeps its answer: the officer may erase it ahead of its data."""
        named = self.tenants_of(subject)
        if tenant_scope is None:
            return named
        others = sorted(named - {tenant_scope})
        if others and tenant_scope in named:
            raise Forbidden(
                f"Access denied: data subject {subject!r} is shared with other tenants; erasing "
                "it destroys its key for all of them, so an officer allowed tenant.all must "
                "erase it.",
                code="subject_shared",
            )
        if others:
            raise Forbidden(
                f"Access denied: data subject {subject!r} belongs to another tenant, not to "
                f"tenant {tenant_scope!r}.",
                code="subject_other_tenant",
            )
        if not named and (self._keystore.exists(subject) or self._keystore.erased(subject)):
            raise Forbidden(
                f"Access denied: data subject {subject!r} was named before the hub recorded "
                "which tenants name a subject, so its tenants are unknown: an officer allowed "
                "tenant.all must erase it.",
                code="subject_tenants_unknown",
            )
        return named

    def erase(
        self,
        principal: Principal,
        subject: str,
        reason: str,
        *,
        tenant_scope: str | None,
        check_holds: bool = True,
    ) -> Erasure:
        """Erase ``subject`` for a reader limited to ``tenant_scope`` (None: every tenant; see
        ``check_scope``); raises ``Conflict`` under a legal hold, ``Forbidden`` out of scope.
        ``check_holds=False``: a restore re-applying an erasure made after its backup (the holds
        were checked when it was made; a hold the older backup still holds was released since)."""
        check_subject(subject)
        if not reason.strip():
            raise InvalidInput(
                "An erasure needs a reason (--reason), e.g. the data subject's request id.",
                code="reason_required",
            )
        named = self.check_scope(subject, tenant_scope)  # 1. before the hold: no hold is told
        holds = (
            {h.scope for h in self._governance.holds() if _binds(h.tenant, named)}
            if check_holds
            else set()
        )
        if f"subject:{subject}" in holds:
            raise Conflict(
                f"Data subject {subject!r} is under a legal hold: erasure is refused until the "
                "hold is released (`hub legal-hold list`).",
                code="legal_hold",
            )
        held = self._held_scopes_shredded(subject, holds)
        if held:
            raise Conflict(
                f"Erasing data subject {subject!r} would destroy personal data in "
                f"{', '.join(held)}, under a legal hold: erasure is refused until the hold is "
                "released (`hub legal-hold list`).",
                code="legal_hold",
            )
        existed = self._keystore.exists(subject)
        self._keystore.destroy(subject)  # 2.
        rebuilt, scrubbed = self._erase_views(subject)  # 3.
        # 4. one entry per tenant that named the subject, so that each tenant's officer and
        # evidence see the erasure of its subject (none recorded: the eraser's tenant)
        tenants = sorted(named) or [principal.tenant]
        details = {
            "reason": reason,
            "key_existed": existed,
            "rows_scrubbed": scrubbed,
            "projections_rebuilt": rebuilt,
            "erased_by_tenant": principal.tenant,
        }
        metas = [
            self._ledger.record_action(
                principal.id, ACTION, f"subject:{subject}", details=details, tenant=tenant
            )
            for tenant in tenants
        ]
        meta = metas[0]
        synced = self._ledger.sync(force_checkpoint=True)
        return Erasure(
            subject=subject,
            reason=reason,
            actor=principal.id,
            key_existed=existed,
            projections_rebuilt=tuple(rebuilt),
            rows_scrubbed=scrubbed,
            audit_offset=meta.offset,
            checkpoint_size=synced.size,
        )

    def _held_scopes_shredded(self, subject: str, holds: set[str]) -> list[str]:
        """The held ``topic:`` and ``projection:`` scopes whose data crypto-shredding ``subject``
        would change: a held topic holding a record with PII encrypted under the subject's key
        (a hold means nothing in the scope is deleted or erased, README), and a held projection
        that stores PII (step 3 scrubs or rebuilds it). Only a subject hold was checked before,
        so a topic under a litigation hold lost a subject's PII to one officer's erasure."""
        scopes = sorted(holds)
        if not scopes or not self._keystore.exists(subject):
            return []  # no key: nothing of the subject's is encrypted, so nothing is shredded
        stores_pii = set(pii_projections())
        out = []
        for scope in scopes:
            kind, _, name = scope.partition(":")
            if kind == "projection":
                shredded = name in stores_pii
            else:
                shredded = (
                    kind == "topic"
                    and self._retention is not None
                    and self._retention.holds_pii_of(name, subject)
                )
            if shredded:
                out.append(scope)
        return out

    def _erase_views(self, subject: str) -> tuple[list[str], dict[str, dict[str, int]]]:
        """Step 3: scrub (or rebuild) every PII projection; returns (rebuilt, rows scrubbed)."""
        from core.pii import ERASED
        from projections.catalog import by_name

        rebuilt: list[str] = []
        scrubbed: dict[str, dict[str, int]] = {}
        for name in pii_projections():
            proj = by_name(name)
            plan = scrub_plan(proj)
            if plan is None:
                self._projections.rebuild(name)
                rebuilt.append(name)
                continue
            live = self._projections.runner(name)
            store = self._projections.store(proj.store)
            with live.lock:  # no batch in flight: none writes back a row it loaded before
                live.checkpoint  # noqa: B018 - opens the runner: its tables exist from here on
                scrubbed[name] = {
                    table.name: store.erase_values(
                        Target(name), table, column, subject, pii, ERASED
                    )
                    for table, column, pii in plan
                }
        return rebuilt, scrubbed
