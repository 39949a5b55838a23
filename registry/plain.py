"""Plain companions of subjects whose registered schema stores PII encrypted.

A subject whose schema has fields classified ``pii`` is registered in its log form
(``core.pii.encrypted_schema``: such a field is ``bytes`` ciphertext), so that
Confluent clients read every stored record. A publisher holds the plain ``.avsc``; the hub
encrypts. When the plain form of one of the subject's live log schemas is registered (or looked
up) under the subject, the registry keeps it under the companion subject ``<subject>-plain``
instead and answers with that schema's id: a stock Confluent ``AvroSerializer`` configured with
the plain schema and the subject's name then writes wire-format values whose schema id is the
plain schema's, and ``POST /v1/ingest/{topic}/avro`` encrypts them before they enter the log.
"""

from __future__ import annotations

from core.errors import HubError
from core.pii import encrypted_schema, encrypts, pii_fields, plan

SUFFIX = "-plain"


def plain_subject(subject: str) -> str:
    """The companion subject holding the plain forms of ``subject``'s log schemas."""
    return subject + SUFFIX


def log_form(text: str) -> str | None:
    """The log form of ``text`` when ``text`` is a plain schema with PII fields, else None."""
    try:
        if not pii_fields(text) or encrypts(text):
            return None
        return encrypted_schema(text)
    except (HubError, ValueError, TypeError, KeyError):
        return None  # not a schema shredding understands: the registry reports it as usual


def unsealed(text: str) -> list[str]:
    """Paths (``a/b``) of fields ``text`` classifies PII but stores in clear (not ciphertext)."""
    p = plan(text)
    return ["/".join(f.path) for f in p.fields if f.path not in p.encrypted]
