"""SOC 2 trust services criteria and which ledger entries evidence each (mapping as data).

- CC6 (logical access): API key issuance and revocation (``hub.principals``) and the audit
  actions on ``hub.audit`` (access decisions, exports, erasures) not mapped below.
- CC7 (system operations): alerts (``hub.alerts``) and ``alert.*`` audit actions.
- CC8 (change management, CC8.1): schema (``_schemas``), configuration (``hub.config``), policy
  (``hub.polic*``) and model (``hub.model*``) changes, and ``schema.``/``config.``/
  ``policy.change``/``model.`` audit actions.
- PI1 (processing integrity): validation rejections and quarantine (``hub.quarantine``) and
  ``quarantine.``/``validation.`` audit actions.
"""

from __future__ import annotations

CONTROLS: dict[str, str] = {
    "CC6": "CC6 Logical access: access decisions, API key issuance and revocation, exports",
    "CC7": "CC7 System operations: alerts and incident signals",
    "CC8": "CC8.1 Change management: schema, configuration, policy and model changes",
    "PI1": "PI1 Processing integrity: validation rejections and quarantine",
}
ALIASES = {"CC8.1": "CC8", "PI1.1": "PI1", "CC6.1": "CC6", "CC7.2": "CC7"}
AUDIT_TOPIC = "hub.audit"

_TOPICS = {
    "hub.principals": "CC6",
    "_schemas": "CC8",
    "hub.config": "CC8",
    "hub.config-changes": "CC8",
    "hub.quarantine": "PI1",
    "hub.alerts": "CC7",
}
_TOPIC_PREFIXES = (("hub.polic", "CC8"), ("hub.model", "CC8"))
_ACTION_PREFIXES = (
    ("schema.", "CC8"),
    ("config.", "CC8"),
    ("policy.change", "CC8"),
    ("policy.update", "CC8"),
    ("model.", "CC8"),
    ("quarantine.", "PI1"),
    ("validation.", "PI1"),
    ("alert.", "CC7"),
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


def topic_control(topic: str) -> str | None:
    """The control a topic's entries evidence (``hub.audit`` depends on the action)."""
    if topic in _TOPICS:
        return _TOPICS[topic]
    for prefix, control in _TOPIC_PREFIXES:
        if topic.startswith(prefix):
            return control
    return None


def control_of(topic: str, action: str | None) -> str | None:
    """The control an entry evidences, or None for business events."""
    if topic == AUDIT_TOPIC:
        for prefix, control in _ACTION_PREFIXES:
            if (action or "").startswith(prefix):
                return control
        return "CC6"
    return topic_control(topic)


def shows_key(topic: str) -> bool:
    """Whether a report may show the record key as text (control-plane ids, not personal data)."""
    return topic in ("_schemas", "hub.config", "hub.principals", AUDIT_TOPIC) or any(
        topic.startswith(p) for p, _ in _TOPIC_PREFIXES
    )
