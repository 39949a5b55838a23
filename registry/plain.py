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

import json
from typing import Any

from core.errors import HubError
from core.pii import ENCRYPTED, PLAINTYPE, encrypted_schema, encrypts, pii_fields, plan

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


def falsely_sealed(text: str) -> list[str]:
    """Paths (``a/b``) of fields ``text`` marks ``hub.encrypted`` whose type is not ciphertext
    (``bytes``, or ``["null", "bytes"]``) or that name no ``hub.plaintype``: a schema that tells
    an auditor a field is crypto-shreddable while it holds the value as given."""
    out: list[str] = []

    def walk(t: Any, prefix: tuple[str, ...]) -> None:
        if isinstance(t, list):
            for branch in t:
                walk(branch, prefix)
        elif isinstance(t, dict):
            if t.get("type") == "record":
                for f in t.get("fields", []):
                    if not isinstance(f, dict):
                        continue
                    path = (*prefix, str(f.get("name")))
                    if f.get(ENCRYPTED):
                        if f.get("type") not in ("bytes", ["null", "bytes"]) or PLAINTYPE not in f:
                            out.append("/".join(path))
                    else:
                        walk(f.get("type"), path)
            elif t.get("type") in ("array", "map"):
                walk(t.get("items", t.get("values")), prefix)

    try:
        walk(json.loads(text), ())
    except ValueError:
        return []  # not JSON: the registry reports it as usual
    return out
