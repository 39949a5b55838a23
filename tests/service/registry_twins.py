"""What the registry's twin tests share (``test_registry_lean``, ``test_registry_fast``): a
policy engine that refuses and fails for two principals, and the recorded decisions."""

from __future__ import annotations

from typing import Any

from core.ports.policy import Decision, PolicyEngine, Principal
from governance.decisions import DECISIONS_TOPIC
from hub.bootstrap import Hub
from ingest.publish import EventReader


class Refusing(PolicyEngine):
    """The hub's engine, but ``p-publisher`` is denied and ``p-analyst``'s decision fails."""

    def __init__(self, inner: PolicyEngine) -> None:
        self.inner = inner

    def decide(
        self, principal: Principal, action: str, resource: str, context: Any = None
    ) -> Decision:
        if principal.id == "p-publisher":
            return Decision(False, "refused for the test", "t1")
        if principal.id == "p-analyst":
            raise RuntimeError("engine exploded")
        return self.inner.decide(principal, action, resource, context)


def decided(hub: Hub) -> int:
    """How many decisions are recorded (queued ones flushed first): ``decisions``' start."""
    hub.policy.committer.flush()  # type: ignore[attr-defined]
    return hub.log.end_offsets(DECISIONS_TOPIC)[0]


def decisions(hub: Hub, start: int = 0) -> list[dict[str, Any]]:
    """The recorded decisions from offset ``start`` of the decisions topic on (queued ones
    flushed first)."""
    hub.policy.committer.flush()  # type: ignore[attr-defined]
    reader = EventReader(hub.log, hub.registry)
    end = hub.log.end_offsets(DECISIONS_TOPIC)[0]
    if end <= start:
        return []
    return [reader.decode(r)["value"] for r in hub.log.read(DECISIONS_TOPIC, 0, start, end - start)]
