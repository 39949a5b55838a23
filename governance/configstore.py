"""Configuration changes as a fold of the ``hub.config-changes`` topic.

Events (``domain/schemas/ConfigChange*.avsc``), in log order:
    ConfigChangeProposed   a validated new value for a resource (old value, new value, diff)
    ConfigChangeApproved   a second principal approved it (two-person rule)
    ConfigChangeApplied    it took effect (written in the same log transaction as its effect)
    ConfigChangeWithdrawn  its proposer lost the right to propose it (key revoked): never applied
                           after this (an approval's guarded append sees the topic moved)

Values are JSON text; ``None`` means the resource has no value of its own (its default applies).
Nothing is updated in place: a rollback is a new proposal. ``refresh()`` folds what was appended
since the last call (another process may have appended).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.errors import NotFound
from core.fold import RecordDecoder, TopicFold, decoded
from domain.envelope import H_ID, H_TENANT

if TYPE_CHECKING:
    from core.ports.eventlog import EventLog

CONFIG_CHANGES_TOPIC = "hub.config-changes"
PROPOSED = "hub.ConfigChangeProposed"
APPROVED = "hub.ConfigChangeApproved"
APPLIED = "hub.ConfigChangeApplied"
WITHDRAWN = "hub.ConfigChangeWithdrawn"


class ConfigChangeNotFound(NotFound):
    code = "config_change_not_found"


@dataclass
class ConfigChange:
    """What the log says about one proposed configuration change."""

    change_id: str
    resource: str
    kind: str
    old_value: str | None
    new_value: str | None
    diff: str
    proposed_by: str
    reason: str
    requires_approval: bool
    rollback_of: str
    proposed_at: str
    approvals: list[dict[str, str]] = field(default_factory=list)
    applied_at: str | None = None
    applied_by: str | None = None
    # The proposer's tenant (the record's ce_tenant header): a legal hold's release is shown
    # to its tenant's readers only (``ConfigChanges.visible``).
    tenant: str = "default"
    proposed_by_key: str = ""  # empty in events from before it was recorded
    withdrawn_at: str | None = None
    withdrawn_by: str | None = None
    withdrawn_reason: str = ""
    # later proposals under this change's id, ignored by the fold (the first one stands)
    ignored_proposals: int = 0

    @property
    def status(self) -> str:
        if self.applied_at is not None:
            return "applied"
        if self.withdrawn_at is not None:
            return "withdrawn"
        return "pending_approval" if self.requires_approval else "proposed"

    def summary(self) -> dict[str, Any]:
        return {
            "change_id": self.change_id,
            "resource": self.resource,
            "kind": self.kind,
            "status": self.status,
            "old_value": None if self.old_value is None else json.loads(self.old_value),
            "new_value": None if self.new_value is None else json.loads(self.new_value),
            "proposed_by": self.proposed_by,
            "reason": self.reason,
            "requires_approval": self.requires_approval,
            "rollback_of": self.rollback_of or None,
            "approvals": list(self.approvals),
            "proposed_at": self.proposed_at,
            "applied_at": self.applied_at,
            "applied_by": self.applied_by,
            "withdrawn_at": self.withdrawn_at,
            "withdrawn_by": self.withdrawn_by,
            "withdrawn_reason": self.withdrawn_reason or None,
            "ignored_proposals": self.ignored_proposals,
        }


class ConfigChangeStore:
    """Folds ``hub.config-changes``. Thread-safe."""

    def __init__(self, log: EventLog, reader: RecordDecoder) -> None:
        self._log = log
        self._reader = reader
        self._changes: dict[str, ConfigChange] = {}
        self._lock = threading.RLock()
        self._fold = TopicFold(
            log,
            CONFIG_CHANGES_TOPIC,
            decoded(self._reader, self._apply),
            lock=self._lock,
            once_by=H_ID,
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
            self._changes[v["change_id"]] = ConfigChange(
                change_id=v["change_id"],
                resource=v["resource"],
                kind=v["kind"],
                old_value=v["old_value"],
                new_value=v["new_value"],
                diff=v["diff"],
                proposed_by=v["proposed_by"],
                reason=v["reason"],
                requires_approval=v["requires_approval"],
                rollback_of=v["rollback_of"],
                proposed_at=str(v["proposed_at"]),
                tenant=str(rec.get("headers", {}).get(H_TENANT) or "default"),
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
        elif kind == APPLIED and v.get("change_id") in self._changes:
            change = self._changes[v["change_id"]]
            change.applied_at = str(v["applied_at"])
            change.applied_by = v["applied_by"]
        elif kind == WITHDRAWN and v.get("change_id") in self._changes:
            change = self._changes[v["change_id"]]
            if change.applied_at is None and change.withdrawn_at is None:
                change.withdrawn_at = str(v["withdrawn_at"])
                change.withdrawn_by = v["withdrawn_by"]
                change.withdrawn_reason = v.get("reason") or ""

    # -- queries -------------------------------------------------------------------------------
    def change(self, change_id: str) -> ConfigChange:
        with self._lock:
            found = self._changes.get(change_id)
        if found is None:
            raise ConfigChangeNotFound(
                f"No configuration change {change_id!r}: `hub config list` lists them."
            )
        return found

    def changes(self, resource: str | None = None) -> list[ConfigChange]:
        """Every change in log order (of one resource, when given)."""
        with self._lock:
            found = list(self._changes.values())
        return [c for c in found if resource is None or c.resource == resource]
