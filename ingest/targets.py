"""Where a record on a topic is written, and with what: the one resolver of both write paths.

``Publisher`` (``ingest/publish.py``: the API's publish and internal events) and
``IngestPipeline`` (``ingest/pipeline.py``: files, pulls, columnar batches) both ask it:

- the subject, from the topic's subject strategy (``hub.subject.strategy``: ``topic`` |
  ``record`` | ``topic_record``) and the record's event type;
- the subject's latest schema (id and parsed), the record name and its classification, and the
  plain form of the schema that datums are filled with (its PII fields in their real types,
  encrypted afterwards, see ``core.pii``);
- the record key: the caller's key, else the payload field named by the topic's
  ``hub.key.field``.

The partition is not resolved here: the log derives it from the key (``core.partitioner``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.avro.schema import ParsedSchema, parse_schema
from core.errors import InvalidInput, SubjectNotFound
from core.events import KEY_FIELD_CONFIG, STRATEGY_CONFIG, classification_of
from core.pii import encrypts, plain_schema
from core.ports.eventlog import EventLog
from domain.catalog import SubjectStrategy, subject_for
from registry.service import SchemaRegistry


@dataclass(frozen=True, slots=True)
class WriteTarget:
    """What a record on a topic is written with: subject, latest schema, name, classification."""

    topic: str
    subject: str
    schema_id: int
    schema: ParsedSchema
    name: str
    classification: str
    plain: ParsedSchema  # what datums are filled with: ``schema`` unless it encrypts PII

    @property
    def encrypts(self) -> bool:
        """True when PII values are encrypted (``core.pii``) before encoding."""
        return self.plain is not self.schema


def record_key(key: str | None, key_field: str | None, value: Any) -> str | None:
    """The record key: ``key`` if given, else the payload's ``key_field`` (as text), else none."""
    if key is None and key_field and isinstance(value, Mapping):
        raw = value.get(key_field)
        return None if raw is None else str(raw)
    return key


class TargetResolver:
    """Resolves write targets from the topic's config and the Schema Registry (see the module
    docstring); caches the plain form of each schema id."""

    def __init__(self, log: EventLog, registry: SchemaRegistry) -> None:
        self._log = log
        self._registry = registry
        self._plain: dict[int, ParsedSchema] = {}

    def strategy(self, topic: str) -> SubjectStrategy:
        """The topic's subject strategy; raises ``TopicNotFound`` or ``InvalidInput``."""
        value = self._log.topic(topic).config.get(STRATEGY_CONFIG, "topic")
        if value not in ("topic", "record", "topic_record"):
            raise InvalidInput(f"Topic {topic!r} has an unknown subject strategy {value!r}.")
        return value  # type: ignore[return-value]

    def key_field(self, topic: str) -> str | None:
        """The payload field whose value keys the topic's records (``hub.key.field``), if any."""
        return self._log.topic(topic).config.get(KEY_FIELD_CONFIG)

    def writer_schema(self, subject: str) -> tuple[int, ParsedSchema]:
        """The id and parsed schema of the subject's latest version (as recent as
        ``SchemaRegistry.writer_version`` guarantees: another process's registration within
        the registry's ``tail_watch_s``)."""
        sv = self._registry.writer_version(subject)
        return sv.id, self._registry.parsed(sv.id)

    def plain(self, schema_id: int, schema: ParsedSchema) -> ParsedSchema:
        """``schema`` itself, or its plain form when its PII fields are stored encrypted."""
        found = self._plain.get(schema_id)
        if found is None:
            found = schema
            if encrypts(schema.text):
                found = parse_schema(plain_schema(schema.text), schema.references)
            self._plain[schema_id] = found
        return found

    def subject(self, topic: str, event_type: str | None) -> str:
        """The subject a record of ``event_type`` on ``topic`` is written under."""
        strategy = self.strategy(topic)
        if strategy == "topic":
            return subject_for(topic, "", "topic")
        if not event_type:
            raise InvalidInput(
                f"Topic {topic!r} carries several event types: give each record an event_type "
                "(the Avro record's full name).",
                code="event_type_required",
            )
        return subject_for(topic, event_type, strategy)

    def resolve(self, topic: str, event_type: str | None) -> WriteTarget:
        """The target of a record of ``event_type`` (``None``: the topic's only type)."""
        subject = self.subject(topic, event_type)
        try:
            schema_id, schema = self.writer_schema(subject)
        except SubjectNotFound as exc:
            raise InvalidInput(
                f"No schema is registered for subject {subject!r} (topic {topic!r}): register "
                "one with `hub schema register` or POST /subjects/{subject}/versions.",
                code="subject_not_registered",
            ) from exc
        name = schema.name or subject
        if event_type and event_type != name:
            raise InvalidInput(
                f"event_type {event_type!r} does not match the schema of subject {subject!r} "
                f"({name}).",
                code="event_type_mismatch",
            )
        return WriteTarget(
            topic,
            subject,
            schema_id,
            schema,
            name,
            classification_of(schema),
            self.plain(schema_id, schema),
        )
