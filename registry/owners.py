"""Owners of the subjects registered before the registry recorded one: the upgrade rule.

A subject whose ``_schemas`` records name no tenant is given one from the ledger: the tenant
of the keys whose ALLOWED ``schema.write`` decisions on it (``/subjects/<s>/versions`` over
HTTP, ``subjects/<s>`` from the CLI) ``hub.decisions`` holds, when exactly one tenant has any
and it is not the hub's own. Otherwise (no decision left, e.g. cut by retention; only the
hub's own keys; or several tenants, e.g. a subject another tenant already added a version to)
the subject is the hub's own: only the hub's own keys and ``tenant.all`` holders change it,
every tenant reads it. Ambiguity never hands a subject to a tenant.

The owner is written once (``SchemaRegistry.record_owners``: the version records again, now
naming it), so the ledger is read at the first start after the upgrade only.
"""

from __future__ import annotations

import logging

from core.avro import serde
from core.errors import NotFound
from core.ports.eventlog import EventLog
from core.ports.policy import HUB_TENANT
from domain.envelope import H_ACTION, H_SUBJECT, H_TENANT
from registry.plain import SUFFIX
from registry.service import SchemaRegistry

log = logging.getLogger("hub.registry.owners")

DECISIONS_TOPIC = "hub.decisions"  # governance.decisions.DECISIONS_TOPIC (a layer beside)


def subject_of_resource(resource: str) -> str | None:
    """The subject a ``schema.write`` decision's resource names, else None."""
    rest = resource.lstrip("/")
    if not rest.startswith("subjects/"):
        return None
    rest = rest[len("subjects/") :]
    if rest.endswith("/versions"):
        rest = rest[: -len("/versions")]
    return rest or None


def writers(log_: EventLog, subjects: set[str], registry: SchemaRegistry) -> dict[str, set[str]]:
    """subject -> tenants of the allowed ``schema.write`` decisions on it in the ledger."""
    found: dict[str, set[str]] = {s: set() for s in subjects}
    try:
        ends = log_.end_offsets(DECISIONS_TOPIC)
    except NotFound:
        return found
    for partition, end in ends.items():
        offset = 0
        while offset < end:
            batch = log_.read(DECISIONS_TOPIC, partition, offset, 5000)
            if not batch:
                break
            for rec in batch:
                offset = rec.offset + 1
                if rec.header(H_ACTION) != b"schema.write" or rec.value is None:
                    continue
                subject = subject_of_resource((rec.header(H_SUBJECT) or b"").decode())
                if subject not in found:
                    continue
                try:
                    schema_id, _ = serde.split_wire(rec.value)
                    value = serde.decode(rec.value, registry.parsed(schema_id))
                except Exception:  # an unreadable decision attributes nothing
                    continue
                if isinstance(value, dict) and value.get("allow") is True:
                    found[subject].add((rec.header(H_TENANT) or b"").decode() or HUB_TENANT)
    return found


def owner_of(tenants: set[str]) -> str:
    """The upgrade rule: the one tenant other than the hub's that wrote it, else the hub."""
    return next(iter(tenants)) if len(tenants) == 1 else HUB_TENANT


def adopt(registry: SchemaRegistry, log_: EventLog) -> dict[str, str]:
    """Give every unowned subject its owner (the module's rule) and record it; the owners
    written, by subject. Nothing to do (and nothing read) when every subject has an owner."""
    unowned = registry.unowned()
    if not unowned:
        return {}
    owners = {s: owner_of(t) for s, t in writers(log_, set(unowned), registry).items()}
    for subject in unowned:  # a -plain companion follows its subject (decisions name that)
        base = subject[: -len(SUFFIX)] if subject.endswith(SUFFIX) else None
        if base is not None and (base in owners or registry.owner(base) is not None):
            owners[subject] = owners.get(base) or registry.owner(base) or HUB_TENANT
    written = registry.record_owners(owners)
    for subject in written:
        log.info(
            "registry subject %r registered before ownership now belongs to tenant %r",
            subject,
            owners[subject],
        )
    return {s: owners[s] for s in written}
