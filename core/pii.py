"""Crypto-shredding of PII fields: encrypt them per data subject before they enter the log.

A field is PII when its Avro schema says ``"classification": "pii"``; the record's data subject
is the top-level field marked ``"hub.data_subject": true`` (e.g. ``account_id``). Each PII value
is encrypted with the subject's key (``core.ports.keystore.KeyStore``) under the associated data
``make_aad(topic, field path, subject, tenant)``, ``tenant`` being the tenant of the record the
value is sealed into; ``KeyStore.destroy(subject)`` then makes every copy unreadable, while the
log's bytes, which the audit ledger's leaves hash, never change.

Reading passes the tenant of the record as stored (its ``ce_tenant`` header), so a ciphertext
copied into another tenant's record fails authentication. Values sealed before the tenant was
bound (``make_aad_v1``) open only where the caller says the record may hold them (``legacy``):
a stored record read back, never a value submitted to ingest (docs/trust-model.md, "PII
associated data").

How an encrypted value fits Avro: the log's schema differs from the domain schema in exactly the
PII fields (``encrypted_schema``): such a field's type becomes ``bytes`` (``["null", "bytes"]``
when the plain type admits null; null stays null, unencrypted) and it gains two attributes,
``"hub.encrypted": true`` and ``"hub.plaintype": <the original type>``. The bytes are the
KeyStore's envelope of the Avro binary encoding of the value under its original type, so every
type (strings, dates, decimals, records) encrypts the same way and decodes exactly. Any
Confluent-compatible consumer can still read the record; the attributes tell it which fields are
ciphertext and what they hold. ``plain_schema`` is the inverse.

Datums here are in fastavro's form (what ``core.avro.serde.from_json`` returns and
``core.avro.serde.decode`` yields): ``date`` objects, ``Decimal`` ... This module depends only
on the KeyStore port and the Avro schema JSON.

Limits: PII inside array items or map values cannot be encrypted field by field; mark the whole
array or map field as PII instead (``encrypted_schema`` refuses the schema otherwise).
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import fastavro

from core.avro import serde
from core.avro.varint import varint
from core.errors import InvalidInput, InvalidSchema
from core.ports.keystore import (
    DecryptionFailed,
    KeyDestroyed,
    KeyStore,
    check_subject,
    make_aad,
    make_aad_v1,
)

try:  # a string column's Avro encodings in one call (native/src/avro_strings.rs)
    from hub_native import avro_string_many as _avro_string_many
except ImportError:  # pragma: no cover - built by `make setup`
    _avro_string_many = None

PII = "pii"
ENCRYPTED = "hub.encrypted"
PLAINTYPE = "hub.plaintype"
DATA_SUBJECT = "hub.data_subject"
ERASED = "[erased]"

SchemaJson = str | Mapping[str, Any]
# Avro's length prefix of a string of n UTF-8 bytes (zig-zag varint of n), for n < 8192
_STRING_PREFIX = [varint(n << 1) for n in range(8192)]


@dataclass(frozen=True, slots=True)
class PiiField:
    """One PII field: where it is, its plain Avro type (standalone) and how to (de)serialise it."""

    path: tuple[str, ...]
    nullable: bool
    stringy: bool
    writer: Any  # parsed one-field record schema wrapping the plain type
    plain_string: bool = False  # the plain type is exactly "string" (the common PII field)

    @property
    def name(self) -> str:
        return "/".join(self.path)

    def encode(self, value: Any) -> bytes:
        if self.plain_string and type(value) is str:
            try:  # Avro's string: zig-zag varint length, then UTF-8 (what fastavro writes)
                data = value.encode()
            except UnicodeEncodeError:
                pass  # a lone surrogate: fastavro's own answer below
            else:
                return varint(len(data) << 1) + data
        buf = io.BytesIO()
        try:
            fastavro.schemaless_writer(buf, self.writer, {"v": value})
        except UnicodeEncodeError as exc:  # was a 500 for the whole batch: name the field
            found = serde.surrogate_at(value, "/" + self.name)
            if found is None:
                raise
            raise serde.surrogate_error(*found) from exc
        return buf.getvalue()

    def encode_many(self, values: list[Any]) -> list[bytes]:
        """``[self.encode(v) for v in values]``; for a plain ``string`` field (every PII column
        of a published batch) one native call (``hub_native.avro_string_many``, ~0.03 us a
        value where the ``map``s of ``encode_many_py`` take ~0.17); it answers None for
        anything but a list of exact ``str`` with UTF-8, and the reference decides."""
        if self.plain_string and _avro_string_many is not None and type(values) is list:
            out = _avro_string_many(values)
            if out is not None:
                return out  # type: ignore[no-any-return]
        return self.encode_many_py(values)

    def encode_many_py(self, values: list[Any]) -> list[bytes]:
        """The reference of the native path: for a plain ``string`` field whose values are all
        ``str``, without a Python call per value: the UTF-8 bytes, their lengths and the varint
        prefixes (from a table up to 8 KiB) are made by C-level ``map``s
        (``tests/unit/test_pii_encode_many.py``)."""
        if self.plain_string and set(map(type, values)) <= {str}:
            try:
                data = list(map(str.encode, values))
            except UnicodeEncodeError:
                pass  # a lone surrogate: value by value, as ``encode`` answers it
            else:
                lengths = list(map(len, data))
                if not lengths or max(lengths) < len(_STRING_PREFIX):
                    return list(map(bytes.__add__, map(_STRING_PREFIX.__getitem__, lengths), data))
        return [self.encode(v) for v in values]

    def decode(self, data: bytes) -> Any:
        return fastavro.schemaless_reader(io.BytesIO(data), self.writer, None)["v"]  # type: ignore[call-overload,index]

    @property
    def erased(self) -> Any:
        """What a reader sees once the subject is erased: the marker where a string fits."""
        return ERASED if self.stringy else None


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything shredding needs to know about one schema, computed once."""

    fields: tuple[PiiField, ...]  # every PII field, in schema order
    encrypted: frozenset[tuple[str, ...]]  # paths the given schema stores as ciphertext
    subject_field: str | None


# -- schema analysis ----------------------------------------------------------------------------
def _load(schema_json: SchemaJson) -> Any:
    if isinstance(schema_json, str):
        try:
            return json.loads(schema_json)
        except ValueError as exc:
            raise InvalidSchema(f"The schema is not valid JSON: {exc}.") from exc
    return copy.deepcopy(dict(schema_json))


def _text(schema_json: SchemaJson) -> str:
    return schema_json if isinstance(schema_json, str) else json.dumps(schema_json, sort_keys=True)


def _is_pii(field: Mapping[str, Any]) -> bool:
    return field.get("classification") == PII or bool(field.get(ENCRYPTED))


def _record_branches(t: Any) -> list[dict[str, Any]]:
    """Inline record definitions a field type holds directly (itself or union branches)."""
    branches = t if isinstance(t, list) else [t]
    return [b for b in branches if isinstance(b, dict) and b.get("type") in ("record", "error")]


def _nullable(t: Any) -> bool:
    return isinstance(t, list) and "null" in t


def _stringy(t: Any) -> bool:
    branches = t if isinstance(t, list) else [t]
    return any(
        b == "string" or (isinstance(b, dict) and b.get("type") == "string") for b in branches
    )


def _no_pii_inside(t: Any, where: str) -> None:
    """Refuse PII nested in arrays or maps (it cannot be encrypted field by field)."""
    if isinstance(t, list):
        for b in t:
            _no_pii_inside(b, where)
    elif isinstance(t, dict):
        if t.get("type") in ("record", "error"):
            for f in t.get("fields", []):
                if _is_pii(f):
                    raise InvalidSchema(
                        f"Field {where} holds records with the PII field {f['name']!r} inside "
                        "an array or map; mark the whole field as PII instead."
                    )
                _no_pii_inside(f["type"], where)
        for key in ("items", "values"):
            if key in t:
                _no_pii_inside(t[key], where)


def _transform(schema: Any, encrypt: bool) -> Any:
    """Rewrite PII fields of every inline record definition, in place; returns ``schema``."""
    for rec in _record_branches(schema):
        for f in rec.get("fields", []):
            if encrypt and f.get("classification") == PII and not f.get(ENCRYPTED):
                plain = f["type"]
                f[PLAINTYPE] = plain
                f[ENCRYPTED] = True
                if _nullable(plain):
                    f["type"] = ["null", "bytes"]
                    if "default" in f and f["default"] is not None:
                        del f["default"]
                    if plain[0] == "null" and "default" in f:
                        f["default"] = None
                else:
                    f["type"] = "bytes"
                    f.pop("default", None)
            elif not encrypt and f.get(ENCRYPTED):
                f["type"] = f.pop(PLAINTYPE)
                del f[ENCRYPTED]
                if _nullable(f["type"]) and f["type"][0] != "null":
                    f.pop("default", None)
            else:
                t = f["type"]
                if isinstance(t, dict) and t.get("type") in ("array", "map"):
                    _no_pii_inside(t, f["name"])
                for branch in _record_branches(t):
                    _transform(branch, encrypt)
    return schema


def encrypted_schema(schema_json: SchemaJson) -> str:
    """The log's form of a domain schema: PII fields become ciphertext ``bytes`` (idempotent)."""
    out = _transform(_load(schema_json), encrypt=True)
    try:
        fastavro.parse_schema(copy.deepcopy(out))
    except Exception as exc:  # fastavro raises several types for a bad schema
        raise InvalidSchema(
            f"The schema with encrypted PII fields is not valid Avro ({exc}); a PII field "
            "probably defines a named type that other fields use: define it outside the PII "
            "field."
        ) from exc
    return json.dumps(out, separators=(",", ":"))


def plain_schema(schema_json: SchemaJson) -> str:
    """The inverse of ``encrypted_schema``: every encrypted field back to its plain type."""
    return json.dumps(_transform(_load(schema_json), encrypt=False), separators=(",", ":"))


def _walk(schema: Any, prefix: tuple[str, ...], out: list[tuple[tuple[str, ...], Any]]) -> None:
    """Collect (path, field) of every PII field in an expanded schema, recursing into records."""
    for rec in _record_branches(schema):
        for f in rec.get("fields", []):
            path = (*prefix, f["name"])
            if _is_pii(f):
                out.append((path, f))
            else:
                _walk(f["type"], path, out)


def _field_writer(path: tuple[str, ...], plain: Any) -> Any:
    wrapper = {"type": "record", "name": "hub.pii.Value", "fields": [{"name": "v", "type": plain}]}
    try:
        return fastavro.parse_schema(wrapper)
    except Exception as exc:  # fastavro raises several types for a bad schema
        raise InvalidSchema(f"PII field {'/'.join(path)} has an unusable type: {exc}.") from exc


@lru_cache(maxsize=512)
def _plan(text: str) -> Plan:
    schema = _load(text)
    plain = _transform(copy.deepcopy(schema), encrypt=False)
    try:
        expanded_plain = fastavro.parse_schema(plain, expand=True)
        expanded_given = fastavro.parse_schema(copy.deepcopy(schema), expand=True)
    except Exception as exc:  # fastavro raises several types for a bad schema
        raise InvalidSchema(f"The schema is not valid Avro: {exc}.") from exc
    found: list[tuple[tuple[str, ...], Any]] = []
    _walk(expanded_plain, (), found)
    given: list[tuple[tuple[str, ...], Any]] = []
    _walk(expanded_given, (), given)
    fields = tuple(
        PiiField(
            path=path,
            nullable=_nullable(f["type"]),
            stringy=_stringy(f["type"]),
            writer=_field_writer(path, f["type"]),
            plain_string=f["type"] == "string",
        )
        for path, f in found
    )
    subjects = [f["name"] for f in plain.get("fields", []) if f.get(DATA_SUBJECT)]
    if len(subjects) > 1:
        raise InvalidSchema(
            f"Schema {plain.get('name')} marks {len(subjects)} fields as {DATA_SUBJECT} "
            f"({', '.join(subjects)}); mark exactly one."
        )
    return Plan(
        fields=fields,
        encrypted=frozenset(path for path, f in given if f.get(ENCRYPTED)),
        subject_field=subjects[0] if subjects else None,
    )


def plan(schema_json: SchemaJson) -> Plan:
    """The shredding plan of a schema (cached by schema text)."""
    return _plan(_text(schema_json))


def _field_paths(schema: Any, prefix: tuple[str, ...], out: set[tuple[str, ...]]) -> None:
    for rec in _record_branches(schema):
        for f in rec.get("fields", []):
            path = (*prefix, f["name"])
            out.add(path)
            _field_paths(f["type"], path, out)


def declassified(old_json: SchemaJson, new_json: SchemaJson) -> list[str]:
    """Paths (``a/b``) of fields ``old_json`` classifies PII (or stores encrypted) that
    ``new_json`` keeps as fields without that protection, and ``old_json``'s data subject field
    when ``new_json`` marks another or none: a new version of a shared subject must not turn
    every tenant's personal data into clear, unmasked or unerasable text."""
    old, new = plan(old_json), plan(new_json)
    try:
        expanded = fastavro.parse_schema(_load(new_json), expand=True)
    except Exception as exc:  # fastavro raises several types for a bad schema
        raise InvalidSchema(f"The schema is not valid Avro: {exc}.") from exc
    present: set[tuple[str, ...]] = set()
    _field_paths(expanded, (), present)
    new_pii = {f.path for f in new.fields}
    lost = {f.path for f in old.fields if f.path in present and f.path not in new_pii}
    lost |= {p for p in old.encrypted if p in present and p not in new.encrypted}
    if old.subject_field is not None and new.subject_field != old.subject_field:
        # The data subject keys the PII's encryption: moved (to ``country``, say) or dropped,
        # erasing a person would no longer shred their records.
        lost.add((old.subject_field,))
    return sorted("/".join(p) for p in lost)


def pii_fields(schema_json: SchemaJson) -> list[str]:
    """Paths (``a/b`` for nested records) of every field classified PII, in schema order."""
    return [f.name for f in plan(schema_json).fields]


def data_subject_field(schema_json: SchemaJson) -> str | None:
    """The top-level field marked ``hub.data_subject``, or None."""
    return plan(schema_json).subject_field


# Data subject ids under this prefix are the hub's own: a quarantined personal record that names
# no subject is sealed under ``unattributed:<its quarantine entry id>`` (ingest.pipeline). A
# record naming such a subject is refused, or a sender could put its PII under the key of a
# quarantine entry (one erasure then shredding both).
UNATTRIBUTED = "unattributed:"


def data_subject_of(datum: Mapping[str, Any], schema_json: SchemaJson) -> str | None:
    """The data subject id a record names (its ``hub.data_subject`` field), or None."""
    name = plan(schema_json).subject_field
    if name is None:
        return None
    value = datum.get(name)
    return None if value is None else str(value)


def refuse_erased(
    datum: Any,
    schema_json: SchemaJson,
    keystore: KeyStore,
    seen: dict[str, bool] | None = None,
    *,
    tenant: str,
) -> None:
    """Raise ``KeyDestroyed`` when ``datum`` names a data subject that ``tenant`` (the
    record's) erased, in its ``hub.data_subject`` field, whether or not the schema holds PII:
    after ``hub erase``, a late trade or payment naming the account is refused like a late
    account event. ``seen`` caches answers for one batch (one tenant); asking never creates a
    key."""
    keystore = keystore.for_tenant(tenant)
    if not isinstance(datum, Mapping):
        return
    name = plan(schema_json).subject_field
    subject = None if name is None else datum.get(name)
    if not isinstance(subject, str) or not subject:
        return
    erased = None if seen is None else seen.get(subject)
    if erased is None:
        try:
            erased = keystore.erased(subject)
        except InvalidInput:
            erased = False  # not a valid subject id: nothing can have been erased under it
        if seen is not None:
            seen[subject] = erased
    if erased:
        raise KeyDestroyed(
            f"Data subject {subject!r} (field {name}) was erased: a record naming it is "
            "refused, and its content is not kept."
        )


# -- datum rewriting ----------------------------------------------------------------------------
def _get(datum: Mapping[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    node: Any = datum
    for name in path:
        if not isinstance(node, Mapping) or name not in node:
            return False, None
        node = node[name]
    return True, node


def _set(datum: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set a nested value, copying each dict on the way so the caller's datum is not changed."""
    node = datum
    for name in path[:-1]:
        child = dict(node[name])
        node[name] = child
        node = child
    node[path[-1]] = value


def encrypt_pii(
    datum: Mapping[str, Any],
    schema_json: SchemaJson,
    subject_id: str | None,
    keystore: KeyStore,
    topic: str,
    *,
    tenant: str,
) -> dict[str, Any]:
    """A copy of ``datum`` with every PII value replaced by its ciphertext (nulls stay null),
    bound to ``tenant``, the tenant of the record it goes into.

    Raises ``InvalidInput`` when the record has PII values but no data subject, and
    ``KeyDestroyed`` when the subject was erased (a late event for an erased subject).
    """
    p = plan(schema_json)
    out = dict(datum)
    keystore = keystore.for_tenant(tenant)  # the tenant's own key of the subject
    for field in p.fields:
        present, value = _get(datum, field.path)
        if not present or value is None:
            continue
        if not subject_id:
            raise InvalidInput(
                f"Field {field.name} is PII but the record names no data subject: give its "
                f"{p.subject_field or DATA_SUBJECT + ' field'} a value.",
                code="data_subject_missing",
            )
        if subject_id.startswith(UNATTRIBUTED):
            raise InvalidInput(
                f"Data subject {subject_id!r} is in the namespace the hub reserves for quarantined "
                f"records naming no subject ({UNATTRIBUTED!r}): give the "
                f"{p.subject_field or DATA_SUBJECT + ' field'} another value.",
                code="data_subject_reserved",
            )
        aad = make_aad(topic, field.name, check_subject(subject_id), tenant)
        _set(out, field.path, keystore.encrypt(subject_id, field.encode(value), aad))
    return out


def decrypt_pii(
    datum: Mapping[str, Any],
    schema_json: SchemaJson,
    subject_id: str | None,
    keystore: KeyStore,
    topic: str,
    only: frozenset[str] | None = None,
    *,
    tenant: str,
    legacy: bool = False,
) -> dict[str, Any]:
    """A copy of ``datum`` (written with ``schema_json``) with its PII values in plaintext.

    ``only`` names the fields (paths ``a/b``) to decrypt; the others stay ciphertext (a reader
    that needs some PII decrypts no more than that). ``tenant`` is the tenant of the record
    as stored (never one a caller asks for); ``legacy`` lets a value sealed before the tenant
    was bound (v1) open too: only for a record read back from the log, never for a value
    submitted to ingest (a copied v1 ciphertext would open for anyone there).

    When the subject's key was destroyed, each PII value reads as ``"[erased]"`` where the plain
    type admits a string, else None. A ciphertext that fails authentication raises
    ``DecryptionFailed`` (tampering is an error, not an erasure).
    """
    p = plan(schema_json)
    out = dict(datum)
    keystore = keystore.for_tenant(tenant)  # the stored record's tenant's key (or legacy)
    erased = False
    old = False  # a field opened as v1: the record was sealed before v2, try v1 first
    for field in p.fields:
        if field.path not in p.encrypted:
            continue  # written in plaintext (a schema without encryption)
        if only is not None and field.name not in only:
            continue
        present, value = _get(datum, field.path)
        if not present or value is None:
            continue
        if erased or not subject_id:
            _set(out, field.path, field.erased)
            continue
        try:
            ct = bytes(value)
            if old:  # the same two forms accepted (``legacy``), in the likelier order
                plaintext = _v1_or_none(keystore, subject_id, ct, topic, field.name)
                if plaintext is None:
                    plaintext = open_value(keystore, subject_id, ct, topic, field.name, tenant)
            else:
                try:
                    plaintext = open_value(keystore, subject_id, ct, topic, field.name, tenant)
                except DecryptionFailed:
                    found = _v1_or_none(keystore, subject_id, ct, topic, field.name)
                    if not legacy or found is None:
                        raise
                    plaintext, old = found, True
        except KeyDestroyed:
            erased = True
            _set(out, field.path, field.erased)
            continue
        _set(out, field.path, field.decode(plaintext))
    return out


def open_value(
    keystore: KeyStore,
    subject_id: str,
    ciphertext: bytes,
    topic: str,
    part: str,
    tenant: str,
    legacy: bool = False,
) -> bytes:
    """Decrypt one sealed value (``part``: its field path, or what ``PiiCodec.seal`` names)
    under the v2 associated data of ``tenant``; with ``legacy``, a value that fails it is tried
    under v1 (sealed before the tenant was bound). Both failing raises the v2
    ``DecryptionFailed``: a copy from another tenant's record opens under neither.

    Readers pass ``legacy`` only for a stored record that carries its own ``ce_tenant`` header
    (``legacy_readable``), never for a submitted value."""
    keystore = keystore.for_tenant(tenant)
    try:
        return keystore.decrypt(subject_id, ciphertext, make_aad(topic, part, subject_id, tenant))
    except DecryptionFailed:
        found = _v1_or_none(keystore, subject_id, ciphertext, topic, part) if legacy else None
        if found is None:
            raise
        return found


def _v1_or_none(
    keystore: KeyStore, subject_id: str, ciphertext: bytes, topic: str, part: str
) -> bytes | None:
    """The plaintext of a value sealed under the legacy v1 associated data, or None."""
    try:
        return keystore.decrypt(subject_id, ciphertext, make_aad_v1(topic, part, subject_id))
    except DecryptionFailed:
        return None


def legacy_readable(headers: Any) -> bool:
    """Whether a stored record's v1 values (sealed before the tenant was bound) may be opened:
    it carries its own ``ce_tenant`` header. The hub writes one on every record it has ever
    written (``domain.envelope``); a Kafka record the hub did not write has its tenant claim
    dropped when read (``adapters.kafka_log.auth``), so a raw producer's copy of an old value
    never opens (docs/trust-model.md, "PII associated data")."""
    return any(name == "ce_tenant" for name, _ in headers)  # domain.envelope.H_TENANT


MASKED = "***"


def encrypts(schema_json: SchemaJson) -> bool:
    """True when records written with this schema hold ciphertext PII fields."""
    return bool(plan(schema_json).encrypted)


def mask_pii(datum: Mapping[str, Any], schema_json: SchemaJson) -> dict[str, Any]:
    """A copy of ``datum`` with every PII value hidden, without decrypting anything.

    A PII value reads as ``"***"`` where its plain type admits a string, else None; the
    reader without ``pii.read`` sees that the field exists and has a value, never the value.
    """
    out = dict(datum)
    for field in plan(schema_json).fields:
        present, value = _get(datum, field.path)
        if present and value is not None:
            _set(out, field.path, MASKED if field.stringy else None)
    return out


class PiiCodec:
    """Encrypts and decrypts the PII fields of datums with one KeyStore; see the module doc.

    ``encrypt(datum, schema, topic)`` takes a datum in the plain form of ``schema`` (the log's
    schema, PII fields as ciphertext bytes) and returns it in the log's form; ``decrypt`` is the
    inverse for a datum read with ``schema``. Both find the data subject in the datum itself.
    """

    def __init__(self, keystore: KeyStore) -> None:
        self.keystore = keystore

    def encrypt(
        self, datum: Mapping[str, Any], schema_json: SchemaJson, topic: str, *, tenant: str
    ) -> Any:
        if not encrypts(schema_json):
            return datum
        subject = data_subject_of(datum, schema_json)
        return encrypt_pii(datum, schema_json, subject, self.keystore, topic, tenant=tenant)

    def decrypt(
        self,
        datum: Mapping[str, Any],
        schema_json: SchemaJson,
        topic: str,
        only: frozenset[str] | None = None,
        *,
        tenant: str,
        legacy: bool = False,
    ) -> Any:
        """See ``decrypt_pii``: ``tenant`` is the stored record's, ``legacy`` only for a
        record read back from the log."""
        if not encrypts(schema_json) or not isinstance(datum, Mapping):
            return datum
        subject = data_subject_of(datum, schema_json)
        return decrypt_pii(
            datum, schema_json, subject, self.keystore, topic, only, tenant=tenant, legacy=legacy
        )

    def seal(
        self, subject_id: str, data: bytes, topic: str, part: str = "original", *, tenant: str
    ) -> bytes:
        """Encrypt opaque bytes of a subject (a quarantined original, or its digest: ``part``
        names which, so one cannot be passed off as the other) under its key, bound to the
        tenant of the record that holds them."""
        return self.keystore.for_tenant(tenant).encrypt(
            subject_id, data, make_aad(topic, part, subject_id, tenant)
        )

    def unseal(
        self,
        subject_id: str,
        data: bytes,
        topic: str,
        part: str = "original",
        *,
        tenant: str,
        legacy: bool = False,
    ) -> bytes | None:
        """The bytes ``seal`` encrypted, or None once the subject is erased; ``tenant`` is the
        tenant of the stored record that holds them (``decrypt_pii`` on ``legacy``)."""
        try:
            return open_value(self.keystore, subject_id, data, topic, part, tenant, legacy)
        except KeyDestroyed:
            return None
