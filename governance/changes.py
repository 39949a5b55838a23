"""Policy changes are commands that become events: propose, approve, roll back.

``propose`` (who, why, the files) 1. builds the bundle and its version; 2. validates it: it must
compile on rego-cpp, decide every Python-driven policy case (``governance.policycases``) within
a CPU-time bound (timed in a child process that is killed past it: ``timing``, set by the
composition root; checked again at approval) and pass every case;
3. computes the diff against the active bundle; 4. decides whether the two-person rule applies:
the resource is listed in the ACTIVE bundle's ``data.hub.two_person``, exactly or by a prefix
entry ending in ``*`` (``two_person_applies``, as for configuration changes), never the proposed
one's, so a proposal cannot switch the rule off for itself; 5. appends ``PolicyChangeProposed`` and,
when no approval is needed, ``PolicyChangeActivated`` in the same atomic append; 6. reloads the
engine when the bundle became active.

``approve`` by another person than the proposer (owners compared; an approver whose identity the
proposer created is refused: ``governance.apikeys.ApiKeys.check_approver``) appends
``PolicyChangeApproved`` and ``PolicyChangeActivated`` atomically, then reloads; it is refused
when another change became active since the proposal (its diff would be stale: propose again),
also when that happened in another process between the check and the append (the fold applies
an activation only against the version it names, ``governance.store``).
``rollback VERSION`` is a new proposal whose files are that version's, under the same validation
and approval. ``withdraw_revoked`` (told by the keyring after each revocation) appends
``PolicyChangeWithdrawn`` for each pending change whose proposer may no longer propose it; a
withdrawn change is never approved (409 ``change_withdrawn``), nor activated by an activation
that another process appended after the withdrawal (``governance.store``).

Callers (``hub policy ...``, ``/v1/policy/...``) ask the policy decision point for
``policy.propose`` / ``policy.approve`` / ``policy.read`` before calling in here.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from core import clock
from core.errors import Conflict, Forbidden, HubError
from core.policybundle import (
    PolicyBundle,
    PolicyError,
    refuse_hidden_text,
    refuse_shadowed_data,
)
from core.ports.policy import HUB_TENANT, Decision, Principal
from governance.decisions import new_decision_id
from governance.policycases import all_cases, run_cases
from governance.store import (
    ACTIVATED,
    APPROVED,
    POLICIES_TOPIC,
    PROPOSED,
    WITHDRAWN,
    Change,
    PolicyStore,
)

if TYPE_CHECKING:
    from ingest.publish import Publisher

log = logging.getLogger("hub.governance.changes")

POLICY_RESOURCE = "policy"  # what policy.propose and policy.approve are decided on


class Evaluator(Protocol):
    def decide_input(self, doc: Any) -> Decision: ...


# (action, resource, decision context) a person needed: decided again at approval
Need = tuple[str, str, Mapping[str, Any] | None]
# the answers of ``check_proposer`` when a proposal no longer counts
PROPOSER_LOST = ("proposer_revoked", "proposer_not_permitted")
POLICY_PROPOSE: tuple[Need, ...] = (("policy.propose", POLICY_RESOURCE, {"tenant": HUB_TENANT}),)
POLICY_APPROVE: tuple[Need, ...] = (("policy.approve", POLICY_RESOURCE, {"tenant": HUB_TENANT}),)


class Identities(Protocol):
    """Who is a separate person (``governance.apikeys.ApiKeys``)."""

    def check_approver(
        self, proposed_by: str, approver: Principal, proposed_at: Any, what: str
    ) -> None: ...

    def check_proposer(
        self,
        proposed_by: str,
        proposed_key: str,
        what: str,
        needs: Sequence[Need] = (),
        decide: Callable[[Principal, str, str, Mapping[str, Any] | None], Decision] | None = None,
    ) -> None: ...

    def check_permitted(self, principal: Principal, needs: Sequence[Need], what: str) -> None: ...


def check_two_person(
    identities: Identities | None,
    proposed_by: str,
    approver: Principal,
    proposed_at: Any,
    what: str,
    *,
    proposed_key: str = "",
    proposer_needs: Sequence[Need] = (),
    approver_needs: Sequence[Need] = (),
) -> None:
    """Raise ``Forbidden`` when ``approver`` is not another person than the proposer, or the
    policy in force no longer allows the approver ``approver_needs``; ``Conflict``
    (``proposer_revoked``, ``proposer_not_permitted``) when the proposer no longer holds a key
    that may propose it (``governance.apikeys.ApiKeys.check_proposer``)."""
    if identities is not None:
        identities.check_proposer(proposed_by, proposed_key, what, proposer_needs)
        identities.check_approver(proposed_by, approver, proposed_at, what)
        identities.check_permitted(approver, approver_needs, what)
    elif approver.id.strip().casefold() == proposed_by.strip().casefold():
        raise Forbidden(
            f"Two-person rule: {approver.id!r} proposed {what} and may not approve it too; "
            "another person must.",
            code="two_person_rule",
        )


def two_person_applies(patterns: Sequence[Any], resource: str) -> bool:
    """Whether a ``data.hub.two_person`` list names the resource (the policy's own, ``policy``,
    or a configuration change's).

    An entry is an exact name, or a prefix ending in ``*`` (``rules:*``); ``X:*`` also matches
    ``X`` itself, so ``registry.config:*`` covers the global level too. One rule for every
    resource: a bundle listing ``*`` puts the policy itself under the rule, as it does every
    configuration change (before session 23 the policy compared its name exactly, so ``*`` left
    one person free to change the policy, and with it the list).
    """
    for entry in patterns:
        if not isinstance(entry, str):
            continue
        if not entry.endswith("*"):
            if entry == resource:
                return True
            continue
        prefix = entry[:-1]
        if resource.startswith(prefix) or (prefix.endswith(":") and resource == prefix[:-1]):
            return True
    return False


class ChangeWithdrawn(Conflict):
    """An approval of a change that was withdrawn (its proposer lost the right to propose)."""

    code = "change_withdrawn"


class NotAsShown(Conflict):
    """An approval naming another bundle than the one the pending change now proposes."""

    code = "change_not_as_shown"


def check_as_shown(change: Change, expected_version: str) -> None:
    """Raise ``NotAsShown`` unless ``expected_version`` (what the approver was shown) is the
    change's whole ``bundle_version``: a prefix is not enough, one can be searched for."""
    if expected_version.strip().lower() != change.bundle_version:
        shown = expected_version.strip()[:64] or "(empty)"
        raise NotAsShown(
            f"Policy change {change.change_id} now proposes bundle {change.bundle_version}, "
            f"not {shown!r}, the one you were shown: it changed since. Nothing was approved; "
            "read its diff again (hub policy diff, or reload the page) before approving."
        )


def withdrawn_error(what: str, by: str | None, reason: str) -> ChangeWithdrawn:
    return ChangeWithdrawn(
        f"{what[:1].upper()}{what[1:]} was withdrawn by {by!r}: {reason}. It is no longer "
        "pending; someone who may propose it must propose it again."
    )


def lost_right(
    identities: Identities | None,
    proposed_by: str,
    proposed_key: str,
    what: str,
    needs: Sequence[Need] = (),
    decide: Callable[[Principal, str, str, Mapping[str, Any] | None], Decision] | None = None,
) -> str | None:
    """Why the proposer of ``what`` may no longer propose it (``check_proposer``'s message;
    under ``decide`` when given, else the policy in force), or None while they may."""
    if identities is None:
        return None
    try:
        identities.check_proposer(proposed_by, proposed_key, what, needs, decide)
    except HubError as exc:
        if exc.code not in PROPOSER_LOST:
            raise
        return exc.message
    return None


def refused_for_proposer(
    ledger: Any,
    approver: Principal,
    action: str,
    resource: str,
    change_id: str,
    exc: Exception,
    *,
    tenant: str,
) -> None:
    """Record in the audit ledger an approval refused because the proposer lost the right to
    propose (``proposer_revoked``): an auditor sees who tried to complete whose change, not
    only the changes that were applied. ``tenant``: the change's (a hold release's is the
    hold's; the policy's the hub's own), where its tenant's officers read it, not the
    approver's. Best effort: the refusal stands if recording fails."""
    if ledger is None or getattr(exc, "code", "") not in PROPOSER_LOST:
        return
    try:
        ledger.record_action(
            approver.id,
            action,
            resource,
            outcome="refused",
            details={
                "change_id": change_id,
                "reason": getattr(exc, "code", ""),
                "message": str(exc),
            },
            tenant=tenant,
        )
    except Exception:  # the answer is still the refusal; the log line keeps the trace
        log.exception("recording the refused approval of %s failed", change_id)
    log.warning("approval of %s by %s refused: %s", change_id, approver.id, exc)


class Reloadable(Protocol):
    def load(self, bundle: PolicyBundle) -> None: ...

    @property
    def version(self) -> str: ...


# Times every policy case of a bundle under a bound, where a slow evaluation can be stopped
# (``adapters.rego_deadline.BoundedEvaluation``): raises ``PolicyError`` naming the slow case.
Timing = Callable[[PolicyBundle, Sequence[tuple[str, Any]]], None]


# What a ``data.hub.two_person`` entry may be: a resource name, or a prefix of one ending in
# ``*`` (no space, no control character, the ``*`` last only).
_TWO_PERSON_ENTRY = re.compile(r"^[^\s*]*\*?$")


def two_person_entries(hub_data: Mapping[str, Any]) -> list[Any]:
    """The ``two_person`` list of a bundle's ``data.hub``: [] when absent. A value that is not
    a list (only a bundle activated before proposals were checked for it could hold one) fails
    closed: ``["*"]``, every resource, when it is not empty."""
    listed = hub_data.get("two_person")
    if listed is None or isinstance(listed, list):
        return listed or []
    return ["*"] if listed else []


def check_two_person_list(bundle: PolicyBundle) -> None:
    """Raise ``PolicyError`` (``policy_two_person_invalid``) unless the bundle's
    ``data.hub.two_person`` is absent or a list of entries ``two_person_applies`` reads: names
    or ``prefix*``. Any other value would read as "nothing listed" while its diff still shows
    the names (``"policy"`` for ``["policy"]``), so the second person would approve the end of
    the two-person rule as a reformatting."""
    if "two_person" not in bundle.hub_data:
        return
    listed = bundle.hub_data["two_person"]
    bad = (
        [listed]
        if not isinstance(listed, list)
        else [
            e
            for e in listed
            if not isinstance(e, str) or not e or not _TWO_PERSON_ENTRY.fullmatch(e)
        ]
    )
    if bad:
        shown = json.dumps(bad[0])[:80]
        raise PolicyError(
            f"data.hub.two_person must be a list of resource names or prefixes ending in '*' "
            f'(e.g. ["policy", "rules:*"]); {shown} is not one. A value the hub cannot read '
            "as such a list would put nothing under the two-person rule.",
            code="policy_two_person_invalid",
        )


def validate_bundle(
    bundle: PolicyBundle,
    evaluator: Callable[[PolicyBundle], Evaluator],
    timing: Timing | None = None,
) -> int:
    """Compile ``bundle`` with ``evaluator`` (an embedded engine, built by the composition root)
    and run every policy case on it; returns how many passed.

    Its ``data.hub.two_person`` must be a list of names (``check_two_person_list``), and no
    Rego rule may define what its data files define (``refuse_shadowed_data``).
    With ``timing``, the cases are first timed by it: a bundle with a slow decision is refused
    before any of its evaluations runs here (rego-cpp cannot stop one).
    Raises ``PolicyError`` naming each failing case (at most ten).
    """
    check_two_person_list(bundle)
    refuse_shadowed_data(bundle)
    engine = evaluator(bundle)
    cases = all_cases(bundle)
    if timing is not None:
        timing(bundle, [(case.name, case.input) for case in cases])
    failures = run_cases(engine.decide_input, cases)
    if failures:
        lines = [f"{case.name}: {'; '.join(problems)}" for case, problems in failures[:10]]
        more = f" (and {len(failures) - 10} more)" if len(failures) > 10 else ""
        raise PolicyError(
            f"The proposed policy bundle fails {len(failures)} of {len(cases)} policy cases"
            f"{more}: " + " | ".join(lines)
        )
    return len(cases)


def bundle_diff(old: Mapping[str, str], new: Mapping[str, str]) -> str:
    """A unified diff of two bundles, file by file (sorted)."""
    out: list[str] = []
    for path in sorted(set(old) | set(new)):
        a, b = old.get(path), new.get(path)
        if a == b:
            continue
        out += difflib.unified_diff(
            (a or "").splitlines(keepends=True),
            (b or "").splitlines(keepends=True),
            fromfile=f"a/{path}" if a is not None else "/dev/null",
            tofile=f"b/{path}" if b is not None else "/dev/null",
        )
    return "".join(line if line.endswith("\n") else line + "\n" for line in out)


def _now() -> str:
    return clock.now().isoformat()


class PolicyChanges:
    """The policy change commands. ``engine`` (if given) is reloaded on every activation."""

    def __init__(
        self,
        store: PolicyStore,
        publisher: Publisher,
        engine: Reloadable | None = None,
        *,
        evaluator: Callable[[PolicyBundle], Evaluator],
        identities: Identities | None = None,
        ledger: Any = None,
        timing: Timing | None = None,
    ) -> None:
        self.store = store
        self.timing = timing  # bounds each case's evaluation (``validate_bundle``)
        self._identities = identities
        self._ledger = ledger  # records refused approvals (``refused_for_proposer``)
        self._publisher = publisher
        self._engine = engine
        self._evaluator = evaluator
        self._lock = threading.Lock()
        self._activated_hooks: list[Callable[[str, str], Any]] = []

    def requires_two_person(self, resource: str) -> bool:
        listed = two_person_entries(self.store.active_bundle().hub_data)
        return two_person_applies(listed, resource)

    def propose(
        self,
        principal: Principal,
        files: Mapping[str, str],
        reason: str,
        *,
        kind: str = "change",
        resource: str = POLICY_RESOURCE,
    ) -> Change:
        if not reason.strip():
            raise PolicyError("A policy change needs a reason (--reason).", code="reason_required")
        with self._lock:
            self.store.refresh()
            refuse_hidden_text(files)  # 1. (new text only: a diff must show what it changes)
            bundle = PolicyBundle.from_files(files)
            active = self.store.active_bundle()
            if bundle.version == active.version:
                raise Conflict(
                    f"The proposed bundle is the active one ({active.version[:12]}): "
                    "nothing to change."
                )
            passed = validate_bundle(bundle, self._evaluator, self.timing)  # 2.
            diff = bundle_diff(active.files, bundle.files)  # 3.
            requires = self.requires_two_person(resource)  # 4.
            change_id = new_decision_id()
            events = [
                self._event(
                    PROPOSED,
                    change_id,
                    {
                        "change_id": change_id,
                        "resource": resource,
                        "kind": kind,
                        "bundle_version": bundle.version,
                        "base_version": active.version,
                        "files": dict(bundle.files),
                        "diff": diff,
                        "proposed_by": principal.id,
                        "proposed_by_key": str(principal.attributes.get("key_id", "")),
                        "reason": reason,
                        "requires_approval": requires,
                        "tests_passed": passed,
                        "proposed_at": _now(),
                    },
                )
            ]
            if not requires:
                events.append(self._activated(change_id, bundle, active, principal))
                events += self._withdrawn_under(bundle, change_id, principal.id)
            self._publisher.publish(  # 5.
                POLICIES_TOPIC, events, producer=principal.id, tenant=principal.tenant
            )
            self.store.refresh()
            if not requires:
                self._activated_or_conflict(change_id)
                self._reload(bundle)  # 6.
        if not requires:
            self._after_activation(principal.id, bundle)
        return self.store.change(change_id)

    def approve(
        self,
        principal: Principal,
        change_id: str,
        reason: str = "",
        *,
        expected_version: str | None = None,
    ) -> Change:
        """Approve ``change_id`` as the second person. ``expected_version``: the
        ``bundle_version`` the approver was shown with the diff (the console always sends it,
        ``hub policy approve --expect``, the API's ``expected_version``); refused
        (``change_not_as_shown``) unless the pending change still proposes exactly that bundle
        and its recorded diff is still the one of that bundle against the active one, so a
        change replaced between showing and approving is never approved unseen."""
        with self._lock:
            self.store.refresh()
            change = self.store.change(change_id)
            if expected_version is not None:
                check_as_shown(change, expected_version)
            if change.activated_at is not None:
                raise Conflict(f"Policy change {change_id} is already active.")
            if change.withdrawn_at is not None:
                raise withdrawn_error(
                    f"policy change {change_id}", change.withdrawn_by, change.withdrawn_reason
                )
            try:
                check_two_person(
                    self._identities,
                    change.proposed_by,
                    principal,
                    change.proposed_at,
                    f"policy change {change_id}",
                    proposed_key=change.proposed_by_key,
                    proposer_needs=POLICY_PROPOSE,
                    approver_needs=POLICY_APPROVE,
                )
            except Conflict as exc:
                refused_for_proposer(
                    self._ledger,
                    principal,
                    "policy.approve_refused",
                    change.resource,
                    change_id,
                    exc,
                    tenant=HUB_TENANT,  # one bundle, hub-wide: the hub's officers read it
                )
                raise
            active = self.store.active_bundle()
            if change.base_version != active.version:
                raise Conflict(
                    f"Policy change {change_id} was proposed against {change.base_version[:12]} "
                    f"but {active.version[:12]} is active now: propose it again."
                )
            bundle = PolicyBundle.from_files(change.files)
            if expected_version is not None and (
                bundle.version != change.bundle_version
                or bundle_diff(active.files, bundle.files) != change.diff
            ):
                raise NotAsShown(
                    f"Policy change {change_id}: the diff shown with it is not the diff of the "
                    "files it would activate (the recorded change is inconsistent). Nothing "
                    "was approved; ask for it to be proposed again."
                )
            validate_bundle(bundle, self._evaluator, self.timing)  # the cases may have grown since
            events = [
                self._event(
                    APPROVED,
                    change_id,
                    {
                        "change_id": change_id,
                        "approved_by": principal.id,
                        "reason": reason,
                        "approved_at": _now(),
                    },
                ),
                self._activated(change_id, bundle, active, principal),
                *self._withdrawn_under(bundle, change_id, principal.id),
            ]
            self._publisher.publish(
                POLICIES_TOPIC, events, producer=principal.id, tenant=principal.tenant
            )
            self.store.refresh()
            self._activated_or_conflict(change_id)
            self._reload(bundle)
        self._after_activation(principal.id, bundle)
        return self.store.change(change_id)

    def withdraw_revoked(
        self, key_ids: Sequence[str], owners: frozenset[str], by: str, why: str
    ) -> list[str]:
        """Withdraw each pending change proposed by one of ``owners`` (casefolded) who may no
        longer propose it now that ``key_ids`` were revoked (``ApiKeys.on_revoked``): one
        append of ``PolicyChangeWithdrawn``, with the reason. The ids withdrawn."""
        with self._lock:
            self.store.refresh()
            events = []
            for change in self.store.changes():
                if (
                    change.activated_at is not None
                    or change.withdrawn_at is not None
                    or change.proposed_by.strip().casefold() not in owners
                ):
                    continue
                what = f"policy change {change.change_id}"
                lost = lost_right(
                    self._identities,
                    change.proposed_by,
                    change.proposed_by_key,
                    what,
                    POLICY_PROPOSE,
                )
                if lost is None:
                    continue
                events.append(
                    self._withdrawn(change.change_id, by, f"{why}: {lost}", ",".join(key_ids))
                )
            if events:
                self._publisher.publish(POLICIES_TOPIC, events, producer=by, tenant="default")
                self.store.refresh()
            return [str(e.value["change_id"]) for e in events]

    def _withdrawn_under(self, bundle: PolicyBundle, activating: str, by: str) -> list[Any]:
        """``PolicyChangeWithdrawn`` for each pending change (but ``activating``) whose proposer
        may not propose it under ``bundle``, to append with ``bundle``'s activation, in the same
        atomic append: a policy that takes ``policy.propose`` away withdraws what was proposed
        under it at once (before, it stayed pending, refused only when someone approved it),
        and no reader ever sees the new policy with such a change still pending."""
        if self._identities is None:
            return []
        pending = [
            c
            for c in self.store.changes()
            if c.activated_at is None and c.withdrawn_at is None and c.change_id != activating
        ]
        if not pending:
            return []
        engine: Any = self._evaluator(bundle)
        if not hasattr(engine, "decide"):  # an evaluator of inputs only: approval still checks
            return []
        version = bundle.version[:12]
        events = []
        for change in pending:
            lost = lost_right(
                self._identities,
                change.proposed_by,
                change.proposed_by_key,
                f"policy change {change.change_id}",
                POLICY_PROPOSE,
                engine.decide,
            )
            if lost is None:
                continue
            reason = f"policy {version} activated by {by}: {lost}"
            events.append(self._withdrawn(change.change_id, by, reason, revoked_key=""))
        return events

    def on_activated(self, hook: Callable[[str, str], Any]) -> None:
        """Call ``hook(by, why)`` after each activation, once the engine holds the new bundle
        (the composition root: the configuration change store withdraws the pending changes
        whose proposer the new policy no longer lets propose them; another topic, so not in
        the activation's append). A hook that fails is logged; approval still refuses."""
        self._activated_hooks.append(hook)

    def _after_activation(self, by: str, bundle: PolicyBundle) -> None:
        why = f"policy {bundle.version[:12]} activated by {by}"
        for hook in list(self._activated_hooks):
            try:
                hook(by, why)
            except Exception:
                log.exception("withdrawing pending changes after policy %s failed", why)

    def rollback(self, principal: Principal, version: str, reason: str) -> Change:
        """Propose the files of an earlier version again (a new change, never an undo)."""
        target = self.store.bundle_of(version)
        return self.propose(principal, target.files, reason, kind="rollback")

    def sync(self) -> bool:
        """Fold new events (another process may have activated a bundle) and reload if needed."""
        self.store.refresh()
        bundle = self.store.active_bundle()
        if self._engine is not None and self._engine.version != bundle.version:
            self._reload(bundle)
            return True
        return False

    def _activated_or_conflict(self, change_id: str) -> None:
        """Raise ``Conflict`` when the activation just appended was not applied: another
        process activated a change against the same version first (``governance.store``)."""
        change = self.store.change(change_id)
        if change.activated_at is None and change.withdrawn_at is not None:
            raise withdrawn_error(
                f"policy change {change_id}", change.withdrawn_by, change.withdrawn_reason
            )
        if change.activated_at is None:
            active = self.store.active_bundle().version
            raise Conflict(
                f"Policy change {change_id} was not activated: another change ({active[:12]}) "
                "became active at the same time, against the same version. Review the active "
                "policy and propose again."
            )

    def _reload(self, bundle: PolicyBundle) -> None:
        if self._engine is None:
            return
        try:
            self._engine.load(bundle)
        except PolicyError as exc:  # e.g. OPA down: it keeps denying until a later sync works
            log.error("reloading the policy engine failed: %s", exc.message)

    @staticmethod
    def _event(event_type: str, change_id: str, value: dict[str, Any]) -> Any:
        from core.events import OutgoingEvent

        return OutgoingEvent(value=value, event_type=event_type, key=change_id)

    def _withdrawn(self, change_id: str, by: str, reason: str, revoked_key: str) -> Any:
        """``PolicyChangeWithdrawn`` of ``change_id``; ``revoked_key``: the revoked key ids
        that withdrew it (comma-separated), or empty (a policy activation withdrew it)."""
        return self._event(
            WITHDRAWN,
            change_id,
            {
                "change_id": change_id,
                "withdrawn_by": by,
                "reason": reason,
                "revoked_key": revoked_key,
                "withdrawn_at": _now(),
            },
        )

    def _activated(
        self, change_id: str, bundle: PolicyBundle, active: PolicyBundle, by: Principal
    ) -> Any:
        return self._event(
            ACTIVATED,
            change_id,
            {
                "change_id": change_id,
                "bundle_version": bundle.version,
                "previous_version": active.version,
                "activated_by": by.id,
                "activated_at": _now(),
            },
        )


class PolicyFollower:
    """Keeps an engine on the active bundle while a server runs (polls ``hub.policies``)."""

    def __init__(self, changes: PolicyChanges, interval_s: float = 1.0) -> None:
        self._changes = changes
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start following (again, after ``stop``: one hub may serve several apps in turn)."""
        if self._thread is not None:
            return
        stop = self._stop = threading.Event()  # each run its own: a stopped one stays stopped

        def loop() -> None:
            while not stop.wait(self._interval):
                try:
                    self._changes.sync()
                except Exception:  # keep following; the next round retries
                    log.exception("following hub.policies failed")

        self._thread = threading.Thread(target=loop, name="policy-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
