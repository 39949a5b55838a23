"""Which registry subjects belong to the hub itself (internal topics: ``hub.*``, ``flink.*``,
``_*``, as ``core.events.is_internal_topic`` folds them; and ``_schemas``).

The hub's own services write those topics with the schemas it ships (``hub.domain_setup``); a
client that deleted one of those subjects, or made it incompatible, would stop the hub from
recording decisions, keys or holds. The registry API refuses such changes (``internal_subject``).
"""

from __future__ import annotations

import functools
from typing import Any

from core.errors import Forbidden, InvalidInput, NotFound
from core.events import is_internal_topic
from core.hubactions import reserved_names_of
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


def refuse_internal_subject(subject: str, change: str) -> None:
    """Subjects of internal topics change only with the hub's own release (``domain_setup``):
    403 ``internal_subject`` for every role, from the registry API and ``hub schema register``
    alike (one rule, so the CLI cannot become the way around the API's refusal)."""
    if is_internal_subject(subject):
        raise Forbidden(
            f"Subject {subject!r} belongs to an internal topic of the hub: {change} it is "
            "refused for every role (registry API and CLI alike), because the hub's own "
            "services write with its schema (the hub registers its internal schemas itself "
            "at start).",
            code="internal_subject",
        )


def reserved_name_subjects(registry: Any) -> list[tuple[str, str, str]]:
    """(subject, event type, why) for each live subject outside the hub's own whose versions
    name an event type the hub reserves (``core.hubactions``): registered before the registry
    refused them, they keep working, and ``hub ledger verify`` names them so that an auditor
    reads their ledger entries as a publisher's, not the hub's."""
    out: list[tuple[str, str, str]] = []
    for subject in registry.subjects():
        if is_internal_subject(subject):
            continue
        seen: set[str] = set()
        for version in registry.versions(subject):
            text = registry.get_version(subject, version).schema.text
            for name, why in reserved_names_of(text):
                if name not in seen:
                    seen.add(name)
                    out.append((subject, name, why))
    return out


def refuse_reserved_names(registry: Any, subject: str, text: str) -> None:
    """A schema whose event type is the hub's (an action it records, or its namespace
    ``hub.*``: ``core.hubactions``) is refused with 422 ``reserved_name``: its records' ledger
    action would read as the hub's own. A subject that already holds a version of that name
    (registered before this rule) keeps evolving; ``hub ledger verify`` names it."""
    reserved = reserved_names_of(text)
    if not reserved:
        return
    try:
        live = {
            n
            for v in registry.versions(subject)
            for n, _ in reserved_names_of(registry.get_version(subject, v).schema.text)
        }
    except NotFound:  # a new subject
        live = set()
    refused = [(n, why) for n, why in reserved if n not in live]
    if refused:
        name, why = refused[0]
        raise InvalidInput(
            f"Subject {subject!r}: the {why}. Name the record in your own namespace (for "
            f"example 'com.example.{name.rsplit('.', 1)[-1]}').",
            code="reserved_name",
        )
