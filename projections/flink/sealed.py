"""PII in Flink views: sealed by the job, opened by the hub.

A Flink job has no key store, so an encrypted PII field (``core.pii``) reaches a view as the
text ``pii:v1:<topic>:<schema id>:<field>:<base64 ciphertext>:<data subject>``
(``projections/flink/job.py`` ``seal``; the format is defined there and parsed here). The hub
opens it when it reads the view: it looks the field's plain type up in the writer schema,
decrypts under the same associated data the publisher encrypted with, and decodes. Once the
subject's key is destroyed the value reads as erased (``"[erased]"`` where a string fits), so
crypto-shredding covers the Flink views too, without rewriting them.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any, Protocol

from core.errors import HubError
from core.pii import plan
from core.ports.keystore import KeyDestroyed, KeyStore, make_aad

SEALED = "pii:v1:"


class _Registry(Protocol):
    def parsed(self, schema_id: int) -> Any: ...


class SealedValueInvalid(HubError):
    code = "sealed_value_invalid"


def opener(registry: _Registry, keystore: KeyStore) -> Callable[[str], Any]:
    """``unseal(text)``: the plaintext of a sealed PII value (see the module docstring)."""

    def unseal(text: str) -> Any:
        try:
            topic, schema_id, name, data, subject = text[len(SEALED) :].split(":", 4)
            ciphertext = base64.b64decode(data, validate=True)
            schema_text = registry.parsed(int(schema_id)).text
        except (ValueError, binascii.Error) as exc:
            raise SealedValueInvalid(
                f"A Flink view holds {text[:60]!r}..., which is not a sealed PII value "
                f"(pii:v1:topic:schema:field:ciphertext:subject): {exc}. Rebuild the view."
            ) from exc
        field = next((f for f in plan(schema_text).fields if f.name == name), None)
        if field is None:
            raise SealedValueInvalid(
                f"Schema {schema_id} has no PII field {name!r}, yet a Flink view holds a sealed "
                "value of it; rebuild the view."
            )
        try:
            plaintext = keystore.decrypt(subject, ciphertext, make_aad(topic, field.name, subject))
        except KeyDestroyed:
            return field.erased
        return field.decode(plaintext)

    return unseal
