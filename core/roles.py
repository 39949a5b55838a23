"""Roles, actions and the embedded role-table policy.

Actions are ``<area>.<verb>``. Each role grants a set of actions; ``admin`` grants all. This table
is the policy of the foundation; the governance layer replaces it with Rego policies behind the
same ``PolicyEngine`` port, so every caller already asks the port, never this table directly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from core.ports.policy import Decision, PolicyEngine, Principal

ROLES = (
    "publisher",
    "analyst",
    "compliance_officer",
    "security_admin",
    "ml_engineer",
    "admin",
)

ACTIONS = (
    "schema.read",
    "schema.write",
    "schema.delete",
    "registry.config",
    "topic.read",
    "topic.create",
    "event.publish",
    "event.read",
    "keys.create",
    "keys.read",
    "keys.revoke",
    "keys.rotate",
    "internal.read",
    "metrics.read",
    "api.docs",
    "ingest.publish",
    "ingest.connector",
    "quarantine.read",
    "quarantine.replay",
    "rules.read",
    "rules.write",
    "ledger.read",
    "ledger.verify",
    "evidence.export",
    "policy.read",
    "policy.propose",
    "policy.approve",
    "config.read",
    "config.propose",
    "config.approve",
    "query.run",
    "projection.read",
    "projection.rebuild",
    "pii.read",
    "tenant.all",
    "catalog.read",
    "retention.write",
    "legalhold.write",
    "subject.erase",
    "case.open",
    "case.close",
    "case.read",
    "backup.create",
    "backup.read",
    "backup.restore",
    "lake.export",
    "model.read",
    "model.train",
    "model.promote",
    "model.approve",
    "model.predict",
    "report.run",
    "report.read",
)

ROLE_ACTIONS: Mapping[str, frozenset[str]] = {
    "publisher": frozenset(
        {"schema.read", "schema.write", "topic.read", "event.publish", "api.docs"}
        | {"ingest.publish", "rules.read", "quarantine.read"}
    ),
    "analyst": frozenset({"schema.read", "topic.read", "event.read", "api.docs", "rules.read"})
    | {"query.run", "projection.read", "model.read", "model.predict"}
    | {"catalog.read"},
    "compliance_officer": frozenset(
        {"schema.read", "topic.read", "event.read", "metrics.read", "api.docs"}
        | {"ledger.read", "ledger.verify", "evidence.export", "quarantine.read", "rules.read"}
        | {"policy.read", "policy.approve"}
        | {"config.read", "config.propose", "config.approve"}  # propose needs the write action too
        | {"query.run", "projection.read", "pii.read"}
        | {"catalog.read", "retention.write", "legalhold.write", "subject.erase"}
        | {"case.open", "case.close", "case.read"}
        | {"model.read", "model.approve"}  # a champion is approved by a second person
        | {"report.run", "report.read"}  # signed compliance and data-quality reports
    ),
    "security_admin": frozenset(
        {"schema.read", "topic.read", "keys.create", "metrics.read", "registry.config", "api.docs"}
        | {"keys.read", "keys.revoke"}  # within its own roles (hub.apikeys issuance rules)
        | {"ledger.read", "ledger.verify", "rules.read"}
        | {"policy.read", "policy.propose", "policy.approve"}
        | {"config.read", "config.propose", "config.approve"}
        | {"catalog.read", "retention.write", "legalhold.write"}
    ),
    "ml_engineer": frozenset({"schema.read", "topic.read", "event.read", "api.docs"})
    | {"model.read", "model.train", "model.promote", "model.approve", "model.predict"},
    "admin": frozenset(ACTIONS),
}
# Everyone may rotate their own key (hub.apikeys decides whose keys a principal may rotate).
ROLE_ACTIONS = {role: actions | {"keys.rotate"} for role, actions in ROLE_ACTIONS.items()}


def _table_version() -> str:
    text = json.dumps({r: sorted(a) for r, a in ROLE_ACTIONS.items()}, sort_keys=True)
    return "roletable-" + hashlib.sha256(text.encode()).hexdigest()[:16]


class RoleTablePolicy(PolicyEngine):
    """Allow when one of the principal's roles grants the action; deny otherwise."""

    version = _table_version()

    def decide(
        self,
        principal: Principal,
        action: str,
        resource: str,
        context: Mapping[str, Any] | None = None,
    ) -> Decision:
        for role in sorted(principal.roles):
            if action in ROLE_ACTIONS.get(role, frozenset()):
                return Decision(True, f"role {role!r} grants {action!r}", self.version)
        roles = ", ".join(sorted(principal.roles)) or "none"
        return Decision(
            False,
            f"no role of principal {principal.id!r} (roles: {roles}) grants {action!r} "
            f"on {resource!r}",
            self.version,
        )
