"""Which registry subjects belong to the hub itself (internal topics: ``hub.*``, ``flink.*``,
``_*``, as ``core.events.is_internal_topic`` folds them; and ``_schemas``).

The hub's own services write those topics with the schemas it ships (``hub.domain_setup``); a
client that deleted one of those subjects, or made it incompatible, would stop the hub from
recording decisions, keys or holds. The registry API refuses such changes (``internal_subject``).
"""

from __future__ import annotations

import functools

from core.events import is_internal_topic
from domain.catalog import TOPICS, subject_for


@functools.cache
def _catalog_subjects() -> frozenset[str]:
    """Subjects of the shipped internal topics (record-name subjects included)."""
    return frozenset(
        subject_for(spec.name, event_type, spec.subject_strategy)
        for spec in TOPICS
        if is_internal_topic(spec.name)
        for event_type in spec.event_types
    )


def is_internal_subject(subject: str) -> bool:
    """True for a subject of an internal topic: a shipped one, or ``<topic>-<suffix>`` (the topic
    name strategies) where ``<topic>`` is internal. Record names such as
    ``hub.payments.PaymentInitiated`` of a domain topic are not internal."""
    if subject in _catalog_subjects() or subject.startswith("_schemas"):
        return True
    topic, sep, _ = subject.partition("-")
    return bool(sep) and is_internal_topic(topic)
