"""SOC 2 trust services criteria and the population of ledger entries that evidences each
(mapping as data). A control's population is EVERY entry in the period whose topic, event type
or audit action is listed for it; an entry may belong to several controls.

- CC6 (logical access): API keys (``hub.principals``, every ``hub.ApiKey*`` event: issued,
  revoked, rotated ...), every policy decision allow and deny (``hub.decisions``), investigation
  cases (``hub.cases``), and audit actions not mapped below (exports, ...).
- CC7 (system operations, monitoring): ledger verification runs (``ledger.verify``), quarantine
  (``hub.quarantine``), alerts and anomalies (``hub.alerts``, ``alert.*``, ``anomaly.*``).
- CC8 (change management, CC8.1): schema registrations, deletions and registry configuration
  (``_schemas``), configuration (``hub.config``, ``hub.config-changes``), policy (``hub.polic*``),
  model (``hub.model*``) changes, retention policies and legal holds (``hub.governance``), and
  ``schema.``/``config.``/``policy.change``/``model.`` audit actions.
- PI1 (processing integrity): quarantine and replays (``hub.quarantine``), ``quarantine.``/
  ``validation.``/``ingest.`` audit actions, retention deletions (``retention.delete``) and
  erasures (``subject.erase``); the report adds the records ingested per topic in the period.
"""

from __future__ import annotations

CONTROLS: dict[str, str] = {
    "CC6": "CC6 Logical access: API keys, every access decision (allow and deny), cases",
    "CC7": "CC7 System operations: verification runs, quarantine, alerts and anomalies",
    "CC8": "CC8.1 Change management: schema, configuration, policy and model changes",
    "PI1": "PI1 Processing integrity: ingest, quarantine and replay, retention, erasure",
}
ALIASES = {"CC8.1": "CC8", "PI1.1": "PI1", "CC6.1": "CC6", "CC7.2": "CC7"}
AUDIT_TOPIC = "hub.audit"

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
_TOPIC_PREFIXES = (("hub.polic", ("CC8",)), ("hub.model", ("CC8",)))
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


def parse_controls(text: str) -> list[str]:
    """``"CC6,CC8.1"`` → ``["CC6", "CC8"]``; raises ValueError naming an unknown control."""
    out: list[str] = []
    for raw in text.split(","):
        name = raw.strip().upper()
        if not name:
            continue
        name = ALIASES.get(name, name)
        if name not in CONTROLS:
            raise ValueError(
                f"unknown control {raw.strip()!r}: use {', '.join(CONTROLS)} (or CC8.1)."
            )
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError(f"no control given: use {', '.join(CONTROLS)}.")
    return out


def topic_controls(topic: str) -> tuple[str, ...]:
    """The controls a topic's entries evidence (``hub.audit``: every one, by action)."""
    if topic == AUDIT_TOPIC:
        return tuple(CONTROLS)
    if topic in _TOPICS:
        return _TOPICS[topic]
    for prefix, controls in _TOPIC_PREFIXES:
        if topic.startswith(prefix):
            return controls
    return ()


def topic_control(topic: str) -> str | None:
    """The first control of :func:`topic_controls` (kept for callers that want one)."""
    found = topic_controls(topic)
    return found[0] if found else None


def controls_of(topic: str, action: str | None) -> tuple[str, ...]:
    """Every control an entry evidences; empty for business events."""
    if topic == AUDIT_TOPIC:
        for prefix, controls in _ACTION_PREFIXES:
            if (action or "").startswith(prefix):
                return controls
        return ("CC6",)
    return topic_controls(topic)


def control_of(topic: str, action: str | None) -> str | None:
    """The first control an entry evidences, or None for business events."""
    found = controls_of(topic, action)
    return found[0] if found else None


def shows_key(topic: str) -> bool:
    """Whether a report may show the record key as text (control-plane ids, not personal data)."""
    return topic in (
        "_schemas",
        "hub.config",
        "hub.principals",
        "hub.decisions",
        "hub.cases",
        AUDIT_TOPIC,
    ) or any(topic.startswith(p) for p, _ in _TOPIC_PREFIXES)
