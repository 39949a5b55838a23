"""Which SOC 2 control each ledger entry evidences, as data (standard library only).

The mapping the hub's evidence packs select their populations by (``ledger.controls``, which
documents it), kept here so that ``hub-verify bundle`` (``audit.bundle``) checks each entry a
pack lists under a control against the entry's hashed topic and action, from this folder
alone. A change to it is a change to the evidence format.
"""

from __future__ import annotations

# Written into every evidence manifest ("claims"): the mapping (and the range and tenant-scope
# rules) its populations were selected by. A pack without it predates the check (its mapping may
# have been another): hub-verify says so instead of failing it.
MAPPING = "hub-controls/1"

CONTROLS: dict[str, str] = {
    "CC6": "CC6 Logical access: API keys, every access decision (allow and deny), cases",
    "CC7": "CC7 System operations: verification runs, quarantine, alerts and anomalies",
    "CC8": "CC8.1 Change management: schema, configuration, policy and model changes",
    "PI1": "PI1 Processing integrity: ingest, quarantine and replay, retention, erasure",
}
AUDIT_TOPIC = "hub.audit"
# The audit action of a start of the hub that records no access decision
# (``HUB_POLICY_RECORD_DECISIONS`` off): a CC6 entry, named in hub-verify's OK line.
DECISIONS_UNRECORDED = "policy.decisions_unrecorded"

_TOPICS: dict[str, tuple[str, ...]] = {
    "hub.principals": ("CC6",),
    "hub.decisions": ("CC6",),
    "hub.cases": ("CC6",),
    "_schemas": ("CC8",),
    "hub.config": ("CC8",),
    "hub.config-changes": ("CC8",),
    "hub.governance": ("CC8",),
    "hub.quarantine": ("CC7", "PI1"),
    "hub.alerts": ("CC7",),
}
TOPIC_PREFIXES = (("hub.polic", ("CC8",)), ("hub.model", ("CC8",)))
_ACTION_PREFIXES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("schema.", ("CC8",)),
    ("config.", ("CC8",)),
    ("policy.change", ("CC8",)),
    ("policy.update", ("CC8",)),
    ("model.", ("CC8",)),
    ("quarantine.", ("PI1",)),
    ("validation.", ("PI1",)),
    ("ingest.", ("PI1",)),
    ("retention.", ("PI1",)),
    ("subject.erase", ("PI1",)),
    ("ledger.verify", ("CC7",)),
    ("alert.", ("CC7",)),
    ("anomaly.", ("CC7",)),
)


def topic_controls(topic: str) -> tuple[str, ...]:
    """The controls a topic's entries evidence (``hub.audit``: every one, by action)."""
    if topic == AUDIT_TOPIC:
        return tuple(CONTROLS)
    if topic in _TOPICS:
        return _TOPICS[topic]
    for prefix, controls in TOPIC_PREFIXES:
        if topic.startswith(prefix):
            return controls
    return ()


def controls_of(topic: str, action: str | None) -> tuple[str, ...]:
    """Every control an entry evidences; empty for business events."""
    if topic == AUDIT_TOPIC:
        for prefix, controls in _ACTION_PREFIXES:
            if (action or "").startswith(prefix):
                return controls
        return ("CC6",)
    return topic_controls(topic)
