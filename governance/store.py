"""The active policy bundle as a fold of the ``hub.policies`` topic.

Events (``domain/schemas/PolicyChange*.avsc``), in log order:
    PolicyChangeProposed   a validated bundle someone proposed (the whole bundle is in it)
    PolicyChangeApproved   a second principal approved it (two-person rule)
    PolicyChangeActivated  it became the active bundle
    PolicyChangeWithdrawn  its proposer lost the right to propose it (key revoked): it is never
                           activated after this, even by an activation appended later

The active bundle is the bundle of the last ``PolicyChangeActivated``; before any, it is the
bundle shipped in ``governance/policies``. An activation is a compare-and-set on that version:
one whose ``previous_version`` is not the active bundle's when it is folded (two processes
approved or proposed against the same version at once, and this one appended second) is not
applied, so no change silently replaces another its approver never saw; its process reports the
conflict (``PolicyChanges``). Nothing is updated in place: a rollback is a new
proposal whose files are those of an earlier version. ``refresh()`` folds what was appended
since the last call (another process may have appended).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import NotFound
from core.fold import RecordDecoder, TopicFold, decoded
from core.policybundle import DEFAULT_POLICY_DIR, PolicyBundle
from domain.envelope import H_ID

if TYPE_CHECKING:
    from core.ports.eventlog import EventLog

POLICIES_TOPIC = "hub.policies"
PROPOSED = "hub.PolicyChangeProposed"
APPROVED = "hub.PolicyChangeApproved"
ACTIVATED = "hub.PolicyChangeActivated"
WITHDRAWN = "hub.PolicyChangeWithdrawn"


class ChangeNotFound(NotFound):
    code = "policy_change_not_found"


@dataclass
class Change:
    """What the log says about one proposed change."""

    change_id: str
    resource: str
    kind: str
    bundle_version: str
    base_version: str
    files: dict[str, str]
    diff: str
    proposed_by: str
    reason: str
    requires_approval: bool
    tests_passed: int
    proposed_at: str
    approvals: list[dict[str, str]] = field(default_factory=list)
    activated_at: str | None = None
    activated_by: str | None = None
    proposed_by_key: str = ""  # empty in events from before it was recorded
    withdrawn_at: str | None = None
    withdrawn_by: str | None = None
    withdrawn_reason: str = ""
    # later proposals under this change's id, ignored by the fold (the first one stands)
    ignored_proposals: int = 0

    @property
    def status(self) -> str:
        if self.activated_at is not None:
            return "activated"
        if self.withdrawn_at is not None:
            return "withdrawn"
        return "pending_approval" if self.requires_approval else "proposed"

    def summary(self) -> dict[str, Any]:
        return {
            "change_id": self.change_id,
            "resource": self.resource,
            "kind": self.kind,
            "status": self.status,
            "bundle_version": self.bundle_version,
            "base_version": self.base_version,
            "proposed_by": self.proposed_by,
            "reason": self.reason,
            "requires_approval": self.requires_approval,
            "approvals": list(self.approvals),
            "tests_passed": self.tests_passed,
            "proposed_at": self.proposed_at,
            "activated_at": self.activated_at,
            "activated_by": self.activated_by,
            "withdrawn_at": self.withdrawn_at,
            "withdrawn_by": self.withdrawn_by,
            "withdrawn_reason": self.withdrawn_reason or None,
            "ignored_proposals": self.ignored_proposals,
        }


class PolicyStore:
    """Folds ``hub.policies``. Thread-safe."""

    def __init__(
        self,
        log: EventLog,
        reader: RecordDecoder,
        *,
        shipped_dir: Path = DEFAULT_POLICY_DIR,
    ) -> None:
        self._log = log
        self._reader = reader
        self.shipped = PolicyBundle.from_dir(shipped_dir)
        self._changes: dict[str, Change] = {}
        self._activations: list[str] = []  # change ids, in log order
        self._lock = threading.RLock()
        self._fold = TopicFold(
            log, POLICIES_TOPIC, decoded(self._reader, self._apply), lock=self._lock, once_by=H_ID
        )
        self.refresh()

    def refresh(self) -> bool:
        """Fold records appended since the last call; True when anything new was folded."""
        return self._fold.catch_up()

    def _apply(self, rec: Mapping[str, Any]) -> None:
        kind = rec.get("headers", {}).get("ce_type")
        v = rec.get("value") or {}
        if kind == PROPOSED and v.get("change_id") in self._changes:
            # a change id names its first proposal: a later one under it (an insider's append,
            # a copy carrying another change's id) would replace what was shown and approved
            self._changes[v["change_id"]].ignored_proposals += 1
        elif kind == PROPOSED:
            self._changes[v["change_id"]] = Change(
                change_id=v["change_id"],
                resource=v["resource"],
                kind=v["kind"],
                bundle_version=v["bundle_version"],
                base_version=v["base_version"],
                files=dict(v["files"]),
                diff=v["diff"],
                proposed_by=v["proposed_by"],
                reason=v["reason"],
                requires_approval=v["requires_approval"],
                tests_passed=v["tests_passed"],
                proposed_at=str(v["proposed_at"]),
                proposed_by_key=str(v.get("proposed_by_key") or ""),
            )
        elif kind == APPROVED and v.get("change_id") in self._changes:
            self._changes[v["change_id"]].approvals.append(
                {
                    "approved_by": v["approved_by"],
                    "reason": v["reason"],
                    "approved_at": str(v["approved_at"]),
                }
            )
        elif kind == ACTIVATED and v.get("change_id") in self._changes:
            change = self._changes[v["change_id"]]
            if (
                change.activated_at is not None
                or change.withdrawn_at is not None  # withdrawn first: its approval came too late
                or not self._follows_active(v)
            ):
                return  # a lost race (module docstring): the change stays as it was
            change.activated_at = str(v["activated_at"])
            change.activated_by = v["activated_by"]
            self._activations.append(change.change_id)
        elif kind == WITHDRAWN and v.get("change_id") in self._changes:
            change = self._changes[v["change_id"]]
            if change.activated_at is None and change.withdrawn_at is None:
                change.withdrawn_at = str(v["withdrawn_at"])
                change.withdrawn_by = v["withdrawn_by"]
                change.withdrawn_reason = v.get("reason") or ""

    def _follows_active(self, v: Mapping[str, Any]) -> bool:
        """Whether an activation names the active version as its previous one (always true of
        the first: the shipped bundle it replaced may differ from the one shipped now)."""
        if not self._activations:
            return True
        return v.get("previous_version") == self._changes[self._activations[-1]].bundle_version

    # -- queries -------------------------------------------------------------------------------
    def change(self, change_id: str) -> Change:
        with self._lock:
            found = self._changes.get(change_id)
        if found is None:
            raise ChangeNotFound(
                f"No policy change {change_id!r}: `hub policy history` lists them."
            )
        return found

    def changes(self) -> list[Change]:
        with self._lock:
            return list(self._changes.values())

    def active_change(self) -> Change | None:
        with self._lock:
            return self._changes[self._activations[-1]] if self._activations else None

    def active_bundle(self) -> PolicyBundle:
        change = self.active_change()
        return self.shipped if change is None else PolicyBundle.from_files(change.files)

    def bundle_of(self, version: str) -> PolicyBundle:
        """The bundle of a version ever proposed or shipped (a unique prefix is enough)."""
        candidates = {self.shipped.version: self.shipped}
        for c in self.changes():
            candidates.setdefault(c.bundle_version, PolicyBundle.from_files(c.files))
        hits = [v for v in candidates if v.startswith(version)] if version else []
        if len(hits) != 1:
            what = "matches no" if not hits else "matches several"
            raise NotFound(
                f"Policy version {version!r} {what} known bundle version: "
                "`hub policy history` lists them.",
                code="policy_version_not_found",
            )
        return candidates[hits[0]]
