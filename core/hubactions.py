"""The action names the hub writes on its ledger, and who may write them.

The ledger's ``action`` column is the ``hub_action`` header of the hub's own audit records
(``hub.audit``) and policy decisions (``hub.decisions``), but for a data record it is the event
type, the full name of a schema a publisher registered. A publisher who named a schema
``lake.export`` or ``subject.erase`` got entries whose action reads as the hub's own. Two rules
close that:

1. a reader that means "the hub did X" takes only entries on internal topics
   (:func:`core.events.is_internal_topic`: only the hub's services write them, and the ledger
   commits to each entry's topic); :func:`restrict_to_hub` narrows a ledger query that way;
2. the registry refuses a schema whose event type is one of :data:`HUB_ACTIONS` or lies in
   the hub's namespace ``hub.*`` (other than the shipped business types of
   ``domain.catalog``): :func:`reserved_event_type` names the collision.

Pure: no I/O.
"""

from __future__ import annotations

import functools
import json
import unicodedata
from collections.abc import Iterable
from typing import Any

from core.events import is_internal_topic
from core.roles import ACTIONS as POLICY_ACTIONS

AUDIT_TOPIC = "hub.audit"  # ledger.service.AUDIT_TOPIC (a test keeps them equal)

AUDIT_ACTIONS: frozenset[str] = frozenset(
    {
        # every ``Ledger.record_action`` of the hub (tests/adversarial/test_s18_actions_*
        # checks the literal ones in the source are listed here)
        "backup.create",
        "clock.ahead_accepted",
        "clock.accepted_stop",
        "backup.restore",
        "config.accept_offsets",
        "config.approve",
        "config.approve_refused",
        "config.propose",
        "console.login",
        "console.logout",
        "evidence.export",
        "lake.export",
        "ledger.verify",
        "legalhold.release",
        "migration.apply",
        "policy.approve_refused",
        "policy.decisions_unrecorded",
        "retention.delete",
        "subject.erase",
    }
)
"""Actions the hub records on ``hub.audit``."""

HUB_ACTIONS: frozenset[str] = AUDIT_ACTIONS | frozenset(POLICY_ACTIONS)
"""Every action name the hub writes: its audit actions and the policy actions its decisions
(``hub.decisions``) name."""

RESERVED_NAMESPACE = "hub"


def _fold(name: str) -> str:
    return unicodedata.normalize("NFKC", name).strip().casefold()


@functools.cache
def _folded_actions() -> dict[str, str]:
    return {_fold(a): a for a in HUB_ACTIONS}


@functools.cache
def _shipped_types() -> frozenset[str]:
    """The business event types the hub ships in its own namespace (``hub.payments.*`` ...):
    publishers publish them on business topics, so their subjects stay registrable."""
    from domain.catalog import TOPICS

    return frozenset(
        t for spec in TOPICS if not is_internal_topic(spec.name) for t in spec.event_types
    )


def reserved_event_type(name: str) -> str | None:
    """Why the event type (an Avro full name) ``name`` is the hub's, as a sentence; None when a
    publisher may use it. Compared after Unicode folding and case folding."""
    folded = _fold(name)
    action = _folded_actions().get(folded)
    if action is not None:
        return (
            f"event type {name!r} is the hub's own action {action!r}: on the ledger a record of "
            "it would read as the hub's audit entry or policy decision"
        )
    if folded == RESERVED_NAMESPACE or folded.startswith(RESERVED_NAMESPACE + "."):
        if name in _shipped_types():
            return None
        return (
            f"event type {name!r} is in the namespace {RESERVED_NAMESPACE}.*, reserved for the "
            "hub's own events"
        )
    return None


def top_level_names(schema: Any, namespace: str = "") -> list[str]:
    """The full names a registered schema's records would carry as their event type: the
    top-level named type, each named branch of a top-level union, a named reference."""
    if isinstance(schema, str):
        return [] if schema in _PRIMITIVES else [schema]
    if isinstance(schema, list):
        return [n for branch in schema for n in top_level_names(branch, namespace)]
    if isinstance(schema, dict):
        name = schema.get("name")
        if isinstance(name, str) and schema.get("type") in ("record", "error", "enum", "fixed"):
            if "." in name:
                return [name]
            ns = schema.get("namespace", namespace)
            return [f"{ns}.{name}" if isinstance(ns, str) and ns else name]
        inner = schema.get("type")
        if isinstance(inner, (str, list, dict)) and inner is not schema:
            return top_level_names(inner, namespace)
    return []


_PRIMITIVES = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string", "record"}
)


def reserved_names_of(text: str) -> list[tuple[str, str]]:
    """(event type, why) for each reserved top-level name of an Avro schema's JSON text (an
    empty list for text that is not JSON: the registry's parser names that problem)."""
    try:
        schema = json.loads(text)
        names = top_level_names(schema)
    except (ValueError, RecursionError):  # nested too deeply: the parser refuses it (422)
        return []
    out = []
    for name in names:
        why = reserved_event_type(name)
        if why is not None:
            out.append((name, why))
    return out


def hub_topics(topics: Iterable[str]) -> list[str]:
    """The internal topics among ``topics`` (the ones only the hub writes)."""
    return sorted(t for t in topics if is_internal_topic(t))


def means_hub(action: str | None) -> bool:
    """Whether a ledger filter on ``action`` asks what the hub did: a hub action name or an
    event type of its namespace."""
    return action is not None and reserved_event_type(action) is not None
