"""What every service knows about an event it writes: reserved topic names, topic config keys,
the outgoing event shape, a schema's classification, and secret redaction. Pure: the publish
path itself (encoding through the registry, the append) is ``ingest.publish``."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.avro.schema import ParsedSchema
from core.errors import DuplicateEnvelopeHeader, Forbidden
from core.pii import mask_pii
from core.ports.eventlog import StoredRecord, envelope_header
from domain.envelope import CLASSIFICATIONS, H_TENANT

STRATEGY_CONFIG = "hub.subject.strategy"
KEY_FIELD_CONFIG = "hub.key.field"
# The tenant that owns a topic (set when it is created; a topic without one is the hub's own):
# only that tenant creates the topic's TopicNameStrategy subjects (``hub.registry_scope``).
OWNER_CONFIG = "hub.tenant"
# hub.* topics and _schemas: written by the hub's services only; flink.* are the result topics a
# Flink job writes and projections.flink.results folds into the analytics views.
INTERNAL_PREFIXES = ("hub.", "_", "flink.")
PRINCIPALS_TOPIC = "hub.principals"
# of hub.principals values (key hashes, enrolment token hashes)
SECRET_FIELDS = (
    "secret_sha256",
    "secret_hmac",
    "salt",
    "token_hmac",
    "approval_salt",
    "approval_hmac",
)
REDACTED = "[redacted]"


class InternalTopic(Forbidden):
    """An external write (publish, ingest, topic creation) named an internal topic."""

    code = "internal_topic"


def is_internal_topic(name: str) -> bool:
    """True for ``hub.*``, ``flink.*`` and ``_``-prefixed names, compared after Unicode
    compatibility folding, trimming and case folding (``HUB.principals``, `` hub.x``, fullwidth
    dots)."""
    folded = unicodedata.normalize("NFKC", name).strip().casefold()
    return folded.startswith(INTERNAL_PREFIXES)


def refuse_internal(topic: str) -> None:
    """The one guard of the external write path: raise ``InternalTopic`` for a reserved name.

    Called by ``Publisher.publish(origin="external")``, the ingest pipeline's commit (every
    ingest source) and topic creation over HTTP.
    """
    if is_internal_topic(topic):
        raise InternalTopic(
            f"Topic {topic!r} is internal (hub.*, flink.* and _-prefixed names are reserved): "
            "only the hub's own services write it, whatever the caller's role. Publish to a "
            "business topic instead.",
        )


def redact_secrets(value: Any) -> Any:
    """A ``hub.principals`` value with its hash fields replaced by ``[redacted]``."""
    if not isinstance(value, Mapping):
        return value
    return {k: (REDACTED if k in SECRET_FIELDS and v else v) for k, v in value.items()}


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    """One event to publish: its payload (JSON form) and optional envelope fields."""

    value: Mapping[str, Any]
    event_type: str | None = None
    key: str | None = None
    event_id: str | None = None
    occurred_at: str | None = None
    correlation_id: str = ""
    causation_id: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


def classification_of(schema: ParsedSchema) -> str:
    """The highest ``classification`` attribute on the schema's top-level fields."""
    try:
        fields = json.loads(schema.text).get("fields", [])
    except (ValueError, AttributeError):
        return "internal"
    levels = [f.get("classification", "internal") for f in fields if isinstance(f, dict)]
    ranked = [str(c) for c in levels if c in CLASSIFICATIONS] or ["internal"]
    return max(ranked, key=CLASSIFICATIONS.index)


def mask_pii_of(datum: Any, schema_text: str) -> Any:
    """``datum`` with its PII fields masked, when it is a record."""
    return mask_pii(datum, schema_text) if isinstance(datum, Mapping) else datum


def tenant_of(rec: StoredRecord) -> str | None:
    """The tenant a stored record belongs to: its ``ce_tenant`` header, ``default`` without
    one, and None (no tenant) when it carries ``ce_tenant`` twice: no copy is picked, so no
    tenant's row filter matches it (see ``domain.envelope``)."""
    try:
        raw = envelope_header(rec.headers, H_TENANT)
    except DuplicateEnvelopeHeader:
        return None
    return "default" if raw is None else raw.decode("utf-8", "replace")
