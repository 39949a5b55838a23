"""Create the domain's topics and register their shipped schemas; idempotent."""

from __future__ import annotations

import logging

from core.errors import NotFound
from core.events import KEY_FIELD_CONFIG, STRATEGY_CONFIG
from core.pii import encrypted_schema, pii_fields
from core.ports.eventlog import EventLog
from domain.catalog import TOPICS, schema_text, subject_for
from hub.settings import Settings
from registry.service import SchemaRegistry

logger = logging.getLogger("hub.domain_setup")


def install(log: EventLog, registry: SchemaRegistry, settings: Settings) -> None:
    """Make sure every catalog topic exists and every shipped schema is registered.

    A schema already live under its subject is left alone (no write, so a read-only registry
    still starts); a missing one (a deleted subject or version) is registered again, so the
    hub's own services can write their topics. This runs at every start. A schema with
    PII fields is registered in its log form (``core.pii.encrypted_schema``): those
    fields hold ciphertext under the data subject's key, so ``hub erase`` can shred them.
    """
    for spec in TOPICS:
        partitions = 1 if spec.name.startswith("hub.") else settings.default_partitions
        existing = {t.name: t for t in log.topics()}
        if spec.name not in existing:
            log.create_topic(
                spec.name,
                partitions,
                {STRATEGY_CONFIG: spec.subject_strategy, KEY_FIELD_CONFIG: spec.key_field},
            )
        for event_type in spec.event_types:
            subject = subject_for(spec.name, event_type, spec.subject_strategy)
            text = schema_text(event_type)
            if pii_fields(text):
                text = encrypted_schema(text)
            try:
                registry.lookup(subject, text)
                continue
            except NotFound:
                pass
            if subject in registry.subjects(include_deleted=True):
                logger.warning("shipped schema of %s was missing: registering it again", subject)
            registry.register(subject, text)
