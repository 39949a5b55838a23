"""Erasure of a data subject by crypto-shredding (``hub erase SUBJECT --reason ...``).

The subject's PII was encrypted under its own key before it entered the log
(``core.pii``), so erasing it never rewrites the log: the audit ledger's leaves,
which commit to the stored bytes, keep verifying. ``Eraser.erase`` (the caller has asked the policy
decision point for ``subject.erase`` first):

1. refuses without a reason; decides which keys go (``Eraser.plan``): keys are per (tenant,
   subject), so a reader limited to one tenant erases that tenant's subject of the id alone and
   ``tenant.all`` erases the id in every tenant; a hub-wide key made before keys were scoped goes
   with them when the erasure covers every tenant that named it, and a tenant officer's erasure
   is refused (``Forbidden``) a live one other tenants named too (the migration rule, written
   out in ``plan``); and refuses a subject under a legal hold (``subject:<id>``) of the hub or
   of a tenant erased, or whose PII a held topic holds in those tenants' records, or while a
   projection that stores PII is held (``_held_scopes_shredded``);
1b. writes its intent (subject, scope, reason, actor, the keys its plan destroys) to the data
   folder (``governance.erasure_intents``), removed at 5b;
2. destroys every version of those keys (``KeyStore.destroy``: irreversible, idempotent).
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
   3b. deletes the subject's derived rows on the ML side (``derived``: the feature store's
   points and versions of the erased tenants' entity, Flink's stored vectors of their events),
   counted per store; from step 2 on the feature feed, training sets and scorer leave the
   subject's events out (``ml.erased``), so nothing folds them back;
4. records ``subject.erase`` on the audit ledger (actor, reason, whether a key existed, the
   rows scrubbed per projection and table, the projections rebuilt, the derived ML rows deleted,
   the officer's tenant scope,
   the tenants whose keys were destroyed and whether the legacy key was), once per such tenant
   (so each tenant's officer and evidence see it; the eraser's tenant when none), and signs a
   checkpoint at once, so the erasure itself is provable. Views are scrubbed in the erased
   tenants' rows only;
5. brings the erasure index up to date (``governance.erasure_index``: it reads the new ledger
   entries), so the next open finds nothing new to read. A crash before 5 costs that open a
   read of the entries after the index's cursor, nothing more; 5b. removes the intent.

Every open of the hub checks, through that index, that no erased subject's key is live again
(``undone``: a key store put back to a copy from before an erasure).

A crash (or a failure) between 2 and 4 leaves the key destroyed but the erasure unrecorded and
the views holding the subject's plaintext: every open completes such an erasure from its intent
(``complete_interrupted``: steps 2-5 again, the reason saying it was interrupted); an intent
whose keys are all live erased nothing and is dropped. Running the same command again is safe
too (step 2 is idempotent). Other processes that cache keys stop decrypting within the
KeyStore's documented cache lifetime (``keystore_cache_ttl_s``); a projection running in
another process (``hub serve``) keeps the rows it already wrote until it is scrubbed or rebuilt
there, so run ``hub erase`` against the serving hub's API (``POST /v1/erasures``) when one is
running.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core.errors import Conflict, Forbidden, InvalidInput
from core.ports.keystore import UNVERIFIED_TENANTS, check_subject, scoped_subject
from core.ports.policy import HUB_TENANT, Principal
from core.ports.views import Target, check_erasable
from governance.erasure_index import ACTION, erasure_entries, first_of_each
from governance.erasure_intents import ErasureIntents, Intent
from governance.subjects import subject_fields

if TYPE_CHECKING:
    from core.ports.keystore import KeyStore, SubjectTenants
    from core.projection import Projection, Table
    from governance.erasure_index import ErasureIndex
    from governance.retention import Governance, RetentionJob
    from ledger.service import Ledger
    from projections.service import ProjectionService


log = logging.getLogger(__name__)


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
class KeyPlan:
    """The keys an erasure destroys (``Eraser.plan``): each tenant's scoped key of the
    subject, and the legacy hub-wide key or not; ``legacy_named``: the frozen record of the
    tenants that named the legacy key."""

    tenants: tuple[str, ...]
    legacy: bool
    legacy_named: frozenset[str]


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
    tenant_scope: str | None = None  # the erasing officer's tenant; None: every tenant

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
            "tenant_scope": self.tenant_scope,
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
        index: ErasureIndex | None = None,
        intents: ErasureIntents | None = None,
    ) -> None:
        self._index = index  # the ledger's erasure entries, for ``undone`` (kept up to date)
        self._intents = intents  # erasures begun and not yet recorded (1b, 5b)
        # step 3b: deletes the subject's derived rows beyond the views (the ML side's feature
        # rows and stored vectors: ``ml.service.MachineLearning.forget``), given the subject and
        # the tenants erased; returns the rows deleted per store (recorded). None: none kept.
        self.derived: Callable[[str, Sequence[str]], Mapping[str, Any]] | None = None
        self._subject_tenants = subject_tenants
        self._retention = retention  # scans a held topic for the subject's records
        self._keystore = keystore
        self._ledger = ledger
        self._governance = governance
        self._projections = projections

    def tenants_of(self, subject: str) -> frozenset[str]:
        """The tenants whose records named ``subject`` under its hub-wide (legacy) key, before
        keys were scoped per tenant: the frozen record (empty: none recorded)."""
        if self._subject_tenants is None:
            return frozenset()
        return self._subject_tenants.tenants_of(check_subject(subject))

    def plan(self, subject: str, tenant_scope: str | None, *, reapply: bool = False) -> KeyPlan:
        """Which keys erasing ``subject`` for a reader limited to ``tenant_scope`` (None: every
        tenant) destroys; raises ``Forbidden`` when that reader may not.

        Keys are per (tenant, subject) (``core.ports.keystore.TenantKeys``): a tenant's officer
        erases its tenant's subject alone, whoever else names the same id. ``tenant.all``
        erases the id in every tenant: every tenant's key the key store lists
        (``KeyStore.key_tenants``) and every tenant the legacy record names.

        Migration rule (keys made before scoping were hub-wide, key id = the subject id): the
        legacy key, if any, is destroyed with the scoped ones when the erasure covers every
        tenant that named it: always for ``tenant.all``; for a tenant's officer only when the
        legacy record names that tenant alone. A legacy key that tenant never named is left
        (it holds none of its data). A live legacy key that other tenants named too, or whose
        tenants are unknown (named before they were recorded, or a record failing its MAC),
        holds other tenants' old values: only an officer of every tenant may destroy it, so a
        tenant officer's erasure is refused (``subject_shared``). The legacy record is frozen:
        no naming adds to it since keys were scoped, so no publisher can make a subject shared.
        ``reapply`` (a restore re-applying a journalled erasure) never refuses: it destroys
        what the same rule allowed when the erasure was made."""
        legacy_named = self.tenants_of(subject)
        verified = legacy_named - {UNVERIFIED_TENANTS}
        if tenant_scope is None:
            listed = self._keystore.key_tenants(subject) or frozenset()
            return KeyPlan(tuple(sorted(listed | verified)), True, legacy_named)
        if not self._keystore.exists(subject):
            return KeyPlan((tenant_scope,), False, legacy_named)  # no live legacy key
        if legacy_named == {tenant_scope}:
            return KeyPlan((tenant_scope,), True, legacy_named)
        if (
            legacy_named
            and UNVERIFIED_TENANTS not in legacy_named
            and (tenant_scope not in legacy_named)
        ):
            return KeyPlan((tenant_scope,), False, legacy_named)  # not this tenant's legacy key
        if reapply:
            return KeyPlan((tenant_scope,), False, legacy_named)
        raise Forbidden(
            f"Access denied: data subject {subject!r} has a key from before keys were kept per "
            "tenant, and "
            + (
                "other tenants' records from then name it too"
                if verified - {tenant_scope}
                else "which tenants named it then is not known"
            )
            + ": destroying that key erases their old values too, so an officer allowed "
            "tenant.all must erase it.",
            code="subject_shared",
        )

    def key_live_again(self, subject: str, scope: str | None) -> bool:
        """Whether a key that an erasure of ``subject`` (``scope``: the officer's tenant, None:
        every tenant) destroyed is live again: an erasure tombstones the subject, so no new key
        is made for it, and a live one is a keyring put back (a restore, or a tamper)."""
        keys = self.plan(subject, scope, reapply=True)
        if keys.legacy and self._keystore.exists(subject):
            return True
        return any(self._keystore.exists(scoped_subject(t, subject)) for t in keys.tenants)

    def undone(self, *, full: bool = False) -> list[tuple[int, str, str]]:
        """The erasures the ledger records whose key is live again (``key_live_again``): each
        as (ledger index, tenant, subject). One entry per tenant an erasure named, so each is
        decided under its own tenant; the first entry of a subject and tenant erased again.

        The erasures come from the erasure index (``governance.erasure_index``: the ledger's
        entries after its cursor only, cheap enough for every open); ``full``: from the whole
        ledger (``hub ledger verify``), the index then compared with them and rewritten when
        it differs. Keys are asked in batches (``KeyStore.live_among``): none live is the usual
        answer; a live one is decided by the plan's rule."""
        if full or self._index is None:
            erased = first_of_each(erasure_entries(self._ledger), set())
            if self._index is not None:
                self._index.reconcile(erased)
        else:
            erased = self._index.entries()
        ids = {i for _, t, s in erased for i in (scoped_subject(t, s), s)}
        live = self._keystore.live_among(ids)
        if not live:
            return []
        return [
            (index, tenant, subject)
            for index, tenant, subject in erased
            if (scoped_subject(tenant, subject) in live or subject in live)
            and self.key_live_again(subject, tenant)
        ]

    def check_scope(self, subject: str, tenant_scope: str | None) -> frozenset[str]:
        """The tenants whose keys an erasure of ``subject`` by a reader limited to
        ``tenant_scope`` destroys; raises ``Forbidden`` when it may not (``plan``)."""
        return frozenset(self.plan(subject, tenant_scope).tenants)

    def erase(
        self,
        principal: Principal,
        subject: str,
        reason: str,
        *,
        tenant_scope: str | None,
        check_holds: bool = True,
        reapply: bool = False,
        resumed: Intent | None = None,
    ) -> Erasure:
        """Erase ``subject`` for a reader limited to ``tenant_scope`` (None: every tenant; see
        ``plan``); raises ``Conflict`` under a legal hold, ``Forbidden`` out of scope.
        ``check_holds=False``: a restore re-applying an erasure made after its backup (the holds
        were checked when it was made; a hold the older backup still holds was released since);
        ``reapply`` likewise (``plan``). ``resumed``: an interrupted erasure's intent
        (``complete_interrupted``): its plan and holds were decided when it began."""
        check_subject(subject)
        if not reason.strip():
            raise InvalidInput(
                "An erasure needs a reason (--reason), e.g. the data subject's request id.",
                code="reason_required",
            )
        if resumed is not None:
            return self._completed(principal, resumed, reason)
        keys = self.plan(subject, tenant_scope, reapply=reapply)  # 1. before the hold
        named = frozenset(keys.tenants)
        if keys.legacy:  # the legacy key's tenants are erased too: their holds count
            named |= keys.legacy_named
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
        live = [t for t in keys.tenants if self._keystore.exists(scoped_subject(t, subject))]
        legacy_live = keys.legacy and self._keystore.exists(subject)
        existed = bool(live) or legacy_live
        held = (
            self._held_scopes_shredded(subject, holds, None if legacy_live else frozenset(live))
            if existed
            else []
        )
        if held:
            raise Conflict(
                f"Erasing data subject {subject!r} would destroy personal data in "
                f"{', '.join(held)}, under a legal hold: erasure is refused until the hold is "
                "released (`hub legal-hold list`).",
                code="legal_hold",
            )
        intent = Intent(
            subject,
            tenant_scope,
            reason,
            principal.id,
            principal.tenant,
            tuple(keys.tenants),
            keys.legacy,
            existed,
            int(time.time() * 1000),
        )
        if self._intents is not None:  # 1b. from here on, a crash is completed at the next open
            self._intents.begin(intent)
        return self._completed(principal, intent, reason, keys)

    def _completed(
        self, principal: Principal, intent: Intent, reason: str, keys: KeyPlan | None = None
    ) -> Erasure:
        """``_complete``; when it fails, the intent's lock is let go (it stays for the next
        completion, which must not take this process's failed erasure for a running one)."""
        try:
            return self._complete(principal, intent, reason, keys)
        except BaseException:
            if self._intents is not None:
                self._intents.release(intent.subject, intent.tenant_scope)
            raise

    def _complete(
        self, principal: Principal, intent: Intent, reason: str, keys: KeyPlan | None = None
    ) -> Erasure:
        """Steps 2-5 of ``intent`` (``keys``: its plan; None: the intent's own, resumed)."""
        subject, tenant_scope, existed = intent.subject, intent.tenant_scope, intent.key_existed
        if keys is None:
            keys = KeyPlan(intent.tenants, intent.legacy, self.tenants_of(subject))
        named = frozenset(keys.tenants)
        if keys.legacy:
            named |= keys.legacy_named
        for tenant in keys.tenants:  # 2. each tenant's key, then the legacy one
            self._keystore.for_tenant(tenant).destroy(subject)
        if keys.legacy:
            self._keystore.destroy(subject)
        scope = None if tenant_scope is None else keys.tenants
        rebuilt, scrubbed = self._erase_views(subject, scope)  # 3.
        erased_in = sorted(named - {UNVERIFIED_TENANTS})
        derived = self._erase_derived(subject, erased_in)  # 3b.
        # 4. one entry per tenant whose key was destroyed, naming it, so that each tenant's
        # officer and evidence see the erasure of its subject (none: the eraser's tenant)
        tenants = sorted(named - {UNVERIFIED_TENANTS}) or [principal.tenant]
        details = {
            "reason": reason,
            "key_existed": existed,
            "rows_scrubbed": scrubbed,
            "projections_rebuilt": rebuilt,
            "erased_by_tenant": principal.tenant,
            "tenant_scope": tenant_scope,  # None: the subject id in every tenant
            "tenants_erased": list(keys.tenants),
            "legacy_key_destroyed": keys.legacy,
        }
        if derived is not None:  # the ML side's rows of the subject deleted, per store
            details["derived_rows_deleted"] = derived
        metas = [
            self._ledger.record_action(
                principal.id, ACTION, f"subject:{subject}", details=details, tenant=tenant
            )
            for tenant in tenants
        ]
        meta = metas[0]
        synced = self._ledger.sync(force_checkpoint=True)
        if self._index is not None:  # 5. the index reads the new entries (the next open: none)
            self._index.entries()
        if self._intents is not None:  # 5b. recorded: nothing left to complete
            self._intents.done(subject, tenant_scope)
        return Erasure(
            subject=subject,
            reason=reason,
            actor=principal.id,
            key_existed=existed,
            projections_rebuilt=tuple(rebuilt),
            rows_scrubbed=scrubbed,
            audit_offset=meta.offset,
            checkpoint_size=synced.size,
            tenant_scope=tenant_scope,
        )

    def complete_interrupted(self) -> list[str]:
        """Complete the erasures an earlier process began and did not record (their intents
        are left: it was killed, or failed, after step 1b); what was done, one line each.

        An intent whose keys were destroyed, any of them, is completed (steps 2-5 again: its
        remaining keys, the views, the derived rows, the ledger entry under its actor, with a
        reason saying it was interrupted). An intent whose keys are all still live erased
        nothing (killed before step 2, or a file someone planted): it is dropped, and said."""
        if self._intents is None:
            return []
        said = []
        for path, intent in self._intents.left():
            if intent is None:
                self._intents.drop(path)
                said.append(f"an erasure intent that does not decode ({path}) was dropped")
                continue
            ids = [scoped_subject(t, intent.subject) for t in intent.tenants]
            ids += [intent.subject] if intent.legacy else []
            if not self._keystore.erased_among(ids):
                self._intents.drop(path)
                said.append(
                    f"the erasure of {intent.subject!r} by {intent.actor} (reason "
                    f"{intent.reason!r}) was interrupted before any key was destroyed: "
                    "nothing was erased; run it again if it is still wanted"
                )
                continue
            begun = datetime.fromtimestamp(intent.begun_at_ms / 1000, tz=UTC).isoformat()
            done = self.erase(
                Principal(intent.actor, frozenset(), intent.actor_tenant),
                intent.subject,
                f"{intent.reason} (completed at the next open: the erasure begun at {begun} "
                "was interrupted after its keys were destroyed)",
                tenant_scope=intent.tenant_scope,
                resumed=intent,
            )
            said.append(
                f"the interrupted erasure of {intent.subject!r} by {intent.actor} was completed "
                f"(ledger record at offset {done.audit_offset})"
            )
        return said

    def _erase_derived(self, subject: str, tenants: list[str]) -> dict[str, Any] | None:
        """Step 3b. The keys are destroyed by now: a failure here must not keep the erasure
        off the ledger, so it is logged and recorded there (``failed``: what went wrong); the
        same ``hub erase`` again deletes what is left (steps 2-4 are idempotent)."""
        if self.derived is None:
            return None
        try:
            return dict(self.derived(subject, tenants))
        except Exception as exc:  # recorded, never swallowed silently
            log.exception("Erasure of %r: the ML side's derived rows were not deleted", subject)
            return {"failed": f"{type(exc).__name__}: {exc}"[:500]}

    def _held_scopes_shredded(
        self, subject: str, holds: set[str], tenants: frozenset[str] | None
    ) -> list[str]:
        """The held ``topic:`` and ``projection:`` scopes whose data crypto-shredding ``subject``
        would change: a held topic holding a record with PII encrypted under the subject's key
        (a hold means nothing in the scope is deleted or erased, README), and a held projection
        that stores PII (step 3 scrubs or rebuilds it). Only a subject hold was checked before,
        so a topic under a litigation hold lost a subject's PII to one officer's erasure."""
        scopes = sorted(holds)
        if not scopes:
            return []  # the caller found no live key: nothing encrypted, so nothing shredded
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
                    and self._retention.holds_pii_of(name, subject, tenants)
                )
            if shredded:
                out.append(scope)
        return out

    def _erase_views(
        self, subject: str, tenants: tuple[str, ...] | None
    ) -> tuple[list[str], dict[str, dict[str, int]]]:
        """Step 3: scrub (or rebuild) every PII projection; returns (rebuilt, rows scrubbed).
        ``tenants``: the rows of these tenants only (None: every tenant's)."""
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
                    table.name: sum(
                        store.erase_values(Target(name), table, column, subject, pii, ERASED, t)
                        for t in (tenants if tenants is not None else (None,))
                    )
                    for table, column, pii in plan
                }
                # A rebuild's copy folded before the key was destroyed holds the plaintext too,
                # and is swapped in as the live views: scrubbed the same way (its rows are not
                # counted). Under the live lock, which the swap takes: no copy is swapped away
                # meanwhile; under the copy's, no batch of it in flight.
                for copy in self._projections.copies(name):
                    with copy.lock:
                        for table, column, pii in plan:
                            for t in tenants if tenants is not None else (None,):
                                store.erase_values(
                                    copy.target, table, column, subject, pii, ERASED, t
                                )
        return rebuilt, scrubbed
