"""PII in Flink views: sealed by the job, opened by the hub.

A Flink job has no key store, so an encrypted PII field (``core.pii``) reaches a view as the
text ``pii:v2:<topic>:<schema id>:<field>:<base64 ciphertext>:<base64 tenant>:<data subject>``
(the tenant of the record, which the ciphertext's associated data binds; views built before it
hold ``pii:v1:...`` without the tenant, opened under the legacy v1 associated data only)
(``projections/flink/job.py`` ``seal``; the format is defined there and parsed here). The hub
opens it when it reads the view: it looks the field's plain type up in the writer schema,
decrypts under the same associated data the publisher encrypted with, and decodes. Once the
subject's key is destroyed the value reads as erased (``"[erased]"`` where a string fits), so
crypto-shredding covers the Flink views too, without rewriting them.

A v2 text's value sealed under the legacy v1 associated data (no tenant: a record published
before tenants were bound, re-appended since by a portable import) opens only when the text names
a tenant other than ``default``. The job names a tenant only where the hub's tenant MAC on the
record verifies (``core.tenant_mac``); every record it cannot authenticate reads as ``default``,
so a broker producer's copy of an old acme value, or a genuine acme record written before tenant
MACs, never opens in tenant ``default``'s view (the hub's own reader: ``core.pii.
legacy_readable``). A genuine v1 value of tenant ``default`` itself does not open in Flink views.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any, Protocol

from core.errors import HubError
from core.pii import open_value, plan
from core.ports.keystore import KeyDestroyed, KeyStore, make_aad_v1
from core.tenant_mac import DEFAULT_TENANT

SEALED = "pii:v"  # either form below
SEALED_V1 = "pii:v1:"
SEALED_V2 = "pii:v2:"


class _Registry(Protocol):
    def parsed(self, schema_id: int) -> Any: ...


class SealedValueInvalid(HubError):
    code = "sealed_value_invalid"


def opener(registry: _Registry, keystore: KeyStore) -> Callable[..., Any]:
    """``unseal(text, row_tenant=None)``: the plaintext of a sealed PII value (see the module
    docstring). ``row_tenant``, the tenant of the view row holding it: a v2 text naming another
    tenant is refused (``SealedValueInvalid``), never opened as that tenant's. The job writes
    each record's values into its own tenant's row, so only a row written by someone else (or a
    job mixing tenants) holds one, and opening it would show one tenant another's PII."""

    def unseal(text: str, row_tenant: str | None = None) -> Any:
        tenant: str | None = None
        try:
            if text.startswith(SEALED_V2):
                topic, schema_id, name, data, owner, subject = text[len(SEALED_V2) :].split(":", 5)
                tenant = base64.b64decode(owner, validate=True).decode()
            elif text.startswith(SEALED_V1):
                topic, schema_id, name, data, subject = text[len(SEALED_V1) :].split(":", 4)
            else:
                raise ValueError("neither pii:v2: nor pii:v1:")
            ciphertext = base64.b64decode(data, validate=True)
            schema_text = registry.parsed(int(schema_id)).text
        except (ValueError, binascii.Error) as exc:
            raise SealedValueInvalid(
                f"A Flink view holds {text[:60]!r}..., which is not a sealed PII value "
                f"(pii:v2:topic:schema:field:ciphertext:tenant:subject): {exc}. Rebuild the view."
            ) from exc
        if tenant is not None and row_tenant is not None and tenant != row_tenant:
            raise SealedValueInvalid(
                f"A Flink view row of tenant {row_tenant!r} holds a sealed PII value of tenant "
                f"{tenant!r} ({text[:60]!r}...): the job never writes one tenant's value into "
                "another's row, so the row was written by someone else; it is not opened. "
                "Rebuild the view and check who can write its tables."
            )
        field = next((f for f in plan(schema_text).fields if f.name == name), None)
        if field is None:
            raise SealedValueInvalid(
                f"Schema {schema_id} has no PII field {name!r}, yet a Flink view holds a sealed "
                "value of it; rebuild the view."
            )
        try:
            if tenant is None:  # a view built before tenants were bound: v1 only
                aad = make_aad_v1(topic, field.name, subject)
                plaintext = keystore.decrypt(subject, ciphertext, aad)
            else:  # v2; v1 (sealed before tenants were bound) only for an authenticated tenant
                legacy = tenant != DEFAULT_TENANT
                plaintext = open_value(keystore, subject, ciphertext, topic, name, tenant, legacy)
        except KeyDestroyed:
            return field.erased
        return field.decode(plaintext)

    return unseal


def reader(registry: _Registry, keystore: KeyStore) -> Callable[[Any, str | None], Any]:
    """``open_value(value, row_tenant)``: ``opener``'s ``unseal`` for a value that is sealed
    text, any other value as it is (a view an older hub wrote in plaintext, null, the erased
    marker a scrub wrote). For the stores that keep PII sealed (``ViewStore.seals_pii``); call
    it on PII columns only (any other text is a record's as sent, which may look sealed)."""
    unseal = opener(registry, keystore)

    def open_value(value: Any, row_tenant: str | None) -> Any:
        if isinstance(value, str) and value.startswith(SEALED):
            return unseal(value, row_tenant)
        return value

    return open_value
