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

from audit.controls import AUDIT_TOPIC, CONTROLS, TOPIC_PREFIXES, controls_of, topic_controls

__all__ = ["AUDIT_TOPIC", "CONTROLS", "controls_of", "topic_controls"]

ALIASES = {"CC8.1": "CC8", "PI1.1": "PI1", "CC6.1": "CC6", "CC7.2": "CC7"}


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
    """The first control of :func:`topic_controls` (kept for callers that want one)."""
    found = topic_controls(topic)
    return found[0] if found else None


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
    ) or any(topic.startswith(p) for p, _ in TOPIC_PREFIXES)
