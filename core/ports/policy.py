"""PolicyEngine: the port every access decision goes through.

``decide(principal, action, resource, context)`` MUST return a ``Decision`` and MUST NOT raise for
a deny; an engine that cannot decide raises ``HubError`` and callers fail closed (deny).
The embedded role table (``core.roles.RoleTablePolicy``) is the first adapter; Rego (in-process and
OPA over HTTP) adapters implement the same port.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# The hub's own tenant (every key's default): its operators' keys. What belongs to no single
# tenant (the process's metrics and readiness figures, retention of shared topics, whose records
# carry every tenant's header) is decided as this tenant's (``context.tenant``): a key of
# another tenant needs ``tenant.all`` (or a grant opening this tenant) for it.
HUB_TENANT = "default"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: the owner (a person) of the API key used, over HTTP and on the CLI alike.

    ``id`` is the owner; ``attributes["key_id"]`` names the key that authenticated."""

    id: str
    roles: frozenset[str]
    tenant: str = "default"
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer. ``mask`` (classifications to mask) and ``row_filter`` (column -> required
    value) are obligations an allowed read MUST apply; ``decision_id`` is set once recorded."""

    allow: bool
    reason: str
    policy_version: str
    mask: tuple[str, ...] = ()
    row_filter: Mapping[str, str] = field(default_factory=dict)
    decision_id: str = ""


DecisionRequest = tuple[Principal, str, str, Mapping[str, Any] | None]
"""One request of ``PolicyEngine.decide_many``: principal, action, resource, context."""


class PolicyEngine(abc.ABC):
    @abc.abstractmethod
    def decide(
        self,
        principal: Principal,
        action: str,
        resource: str,
        context: Mapping[str, Any] | None = None,
    ) -> Decision:
        """Decide whether ``principal`` may perform ``action`` on ``resource``."""

    def decide_digested(
        self,
        principal: Principal,
        action: str,
        resource: str,
        context: Mapping[str, Any] | None = None,
    ) -> tuple[Decision, str | None]:
        """``decide``, with the SHA-256 of the input document it decided when the engine
        computes it on the way (``core.policybundle.input_digest`` of ``decision_input``: the
        Rego and OPA engines, from the serialization their cache key needs); None: the caller
        digests the input itself. A recording engine stores it with the decision."""
        return self.decide(principal, action, resource, context), None

    def decide_many(self, requests: Sequence[DecisionRequest]) -> list[Decision]:
        """``decide`` of each (principal, action, resource, context), in order. An engine that
        records decisions (``governance.decisions.RecordingPolicyEngine``) records them all
        and waits once; this default asks ``decide`` one request at a time."""
        return [self.decide(p, a, r, c) for p, a, r, c in requests]
