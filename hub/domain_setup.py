"""Create the domain's topics and register their shipped schemas; idempotent."""

from __future__ import annotations

from domain.catalog import TOPICS, schema_text, subject_for
from hub.events import KEY_FIELD_CONFIG, STRATEGY_CONFIG
from hub.ports.eventlog import EventLog
from hub.registry.service import SchemaRegistry
from hub.settings import Settings


def install(log: EventLog, registry: SchemaRegistry, settings: Settings) -> None:
    """Make sure every catalog topic exists and every shipped schema is registered.

    Re-registering an identical schema is a no-op, so this runs at every start.
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
            registry.register(subject, schema_text(event_type))
