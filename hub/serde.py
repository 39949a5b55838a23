"""Confluent wire format (magic byte 0, 4-byte big-endian schema id, Avro binary) and JSON mapping.

JSON input maps to Avro as a publisher expects: decimals from strings or exact JSON numbers (parse
request bodies with ``parse_float=Decimal`` so no float ever touches money), timestamps from RFC
3339 strings or integers in the logical type's unit, dates from ISO dates, bytes/fixed from base64.
Output maps back the same way (decimals as strings, timestamps as RFC 3339).
"""

from __future__ import annotations

import base64
import io
import struct
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import fastavro
from fastavro.validation import ValidationError as AvroValidationError
from fastavro.validation import validate

from hub.errors import SerializationError
from hub.registry.avro_schema import ParsedSchema

MAGIC = 0
_HEADER = struct.Struct(">bI")


def split_wire(data: bytes) -> tuple[int, memoryview]:
    """Schema id and Avro body of a Confluent wire format value; raises SerializationError."""
    if len(data) < 5 or data[0] != MAGIC:
        raise SerializationError(
            "Value is not in Confluent wire format: it must start with magic byte 0 and a 4-byte "
            f"schema id (got {len(data)} bytes starting {bytes(data[:5]).hex() or 'nothing'})."
        )
    _, schema_id = _HEADER.unpack_from(data)
    return schema_id, memoryview(data)[5:]


def encode(schema_id: int, schema: ParsedSchema, datum: Any) -> bytes:
    """Avro-encode a Python datum (fastavro types) in Confluent wire format."""
    buf = io.BytesIO()
    buf.write(_HEADER.pack(MAGIC, schema_id))
    try:
        fastavro.schemaless_writer(buf, schema.parsed, datum)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        raise SerializationError(
            f"Record does not match schema {schema.name or schema_id}: {exc}"
        ) from exc
    return buf.getvalue()


def decode(data: bytes, writer: ParsedSchema, reader: ParsedSchema | None = None) -> Any:
    """Decode a wire format value written with ``writer``, resolved to ``reader`` if given."""
    _, body = split_wire(data)
    try:
        return fastavro.schemaless_reader(
            io.BytesIO(body),
            writer.parsed,
            reader.parsed if reader is not None else None,
        )
    except Exception as exc:  # fastavro raises many types on corrupt input
        raise SerializationError(
            f"Cannot decode a value written with schema {writer.name}: {exc}"
        ) from exc


def check(schema: ParsedSchema, datum: Any) -> None:
    """Raise SerializationError naming the field path if ``datum`` does not fit ``schema``."""
    try:
        validate(datum, schema.parsed, raise_errors=True)
    except AvroValidationError as exc:
        raise SerializationError(f"Record does not match schema {schema.name}: {exc}") from exc


# -- JSON <-> Avro datum ------------------------------------------------------------------------
def from_json(
    value: Any, schema: Any, path: str = "", named: Mapping[str, Any] | None = None
) -> Any:
    """Convert a JSON-decoded value to the datum fastavro expects for ``schema`` (parsed form).

    Named types referred to by name are looked up in ``named`` (by default the parsed schema's
    own ``__named_schemas`` table, as ``ParsedSchema.parsed`` carries it).
    """
    if named is None:
        named = schema.get("__named_schemas", {}) if isinstance(schema, Mapping) else {}
    if isinstance(schema, str) and schema in named:
        schema = named[schema]
    if isinstance(schema, list):  # union: the first branch that converts without error
        if value is None and "null" in schema:
            return None
        if isinstance(value, Mapping) and len(value) == 1:
            ((tag, inner),) = value.items()
            for branch in schema:
                if _type_name(branch) == tag or _short(_type_name(branch)) == tag:
                    return from_json(inner, branch, path, named)

        for branch in schema:
            if branch == "null":
                continue
            try:
                return from_json(value, branch, path, named)
            except SerializationError:
                continue
        raise SerializationError(f"{path or '/'}: no union branch accepts {value!r}.")
    if isinstance(schema, str):
        return _primitive(value, schema, path)
    t = schema["type"]
    logical = schema.get("logicalType")
    if logical == "decimal":
        return _decimal(value, schema, path)
    if logical in (
        "timestamp-micros",
        "timestamp-millis",
        "local-timestamp-micros",
        "local-timestamp-millis",
    ):
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError as exc:
                raise SerializationError(
                    f"{path}: {value!r} is not an RFC 3339 timestamp."
                ) from exc
        return _primitive(value, t, path)
    if logical == "date":
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError as exc:
                raise SerializationError(f"{path}: {value!r} is not an ISO date.") from exc
        return _primitive(value, t, path)
    if t == "record" or t == "error":
        if not isinstance(value, Mapping):
            raise SerializationError(f"{path or '/'}: expected an object, got {value!r}.")
        out = {}
        known = set()
        for f in schema["fields"]:
            name = f["name"]
            known.add(name)
            if name in value:
                out[name] = from_json(value[name], f["type"], f"{path}/{name}", named)
            elif "default" in f:
                out[name] = _from_default(f["default"], f["type"], named)
            else:
                raise SerializationError(f"{path}/{name}: required field is missing.")
        unknown = set(value) - known
        if unknown:
            raise SerializationError(
                f"{path or '/'}: unknown field(s) {', '.join(sorted(unknown))} for record "
                f"{schema.get('name')}."
            )
        return out
    if t == "enum":
        if value not in schema["symbols"]:
            raise SerializationError(
                f"{path}: {value!r} is not one of {', '.join(schema['symbols'])}."
            )
        return value
    if t == "array":
        if not isinstance(value, list):
            raise SerializationError(f"{path}: expected an array, got {value!r}.")
        return [from_json(v, schema["items"], f"{path}/{i}", named) for i, v in enumerate(value)]
    if t == "map":
        if not isinstance(value, Mapping):
            raise SerializationError(f"{path}: expected an object, got {value!r}.")
        return {k: from_json(v, schema["values"], f"{path}/{k}", named) for k, v in value.items()}
    if t == "fixed":
        raw = _bytes(value, path)
        if len(raw) != schema["size"]:
            raise SerializationError(f"{path}: fixed size {schema['size']}, got {len(raw)} bytes.")
        return raw
    return from_json(value, t, path, named)


def _from_default(value: Any, schema: Any, named: Mapping[str, Any]) -> Any:
    """A field default (Avro JSON encoding) as a datum: bytes defaults are latin-1 strings."""
    if isinstance(schema, str) and schema in named:
        schema = named[schema]
    if isinstance(schema, list):  # a union's default belongs to its first branch
        return _from_default(value, schema[0], named)
    if isinstance(schema, dict):
        t = schema.get("type")
        if schema.get("logicalType") == "decimal" and t in ("bytes", "fixed"):
            unscaled = int.from_bytes(value.encode("latin-1"), "big", signed=True)
            return Decimal(unscaled).scaleb(-int(schema.get("scale", 0)))
        if t in ("bytes", "fixed"):
            return value.encode("latin-1")
        if t in ("record", "error") and isinstance(value, Mapping):
            return {
                f["name"]: _from_default(value.get(f["name"], f.get("default")), f["type"], named)
                for f in schema["fields"]
            }
        if t == "array" and isinstance(value, list):
            return [_from_default(v, schema["items"], named) for v in value]
        if t == "map" and isinstance(value, Mapping):
            return {k: _from_default(v, schema["values"], named) for k, v in value.items()}
        return value
    if schema == "bytes" and isinstance(value, str):
        return value.encode("latin-1")
    return value


def _type_name(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, Mapping):
        return str(schema.get("name") or schema.get("type"))
    return ""


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _primitive(value: Any, t: str, path: str) -> Any:
    ok = {
        "null": value is None,
        "boolean": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31,
        "long": isinstance(value, int)
        and not isinstance(value, bool)
        and -(2**63) <= value < 2**63,
        "float": isinstance(value, (int, float, Decimal)) and not isinstance(value, bool),
        "double": isinstance(value, (int, float, Decimal)) and not isinstance(value, bool),
        "string": isinstance(value, str),
    }
    if t == "bytes":
        return _bytes(value, path)
    if t not in ok:
        raise SerializationError(f"{path}: named type {t!r} is not resolvable here.")
    if not ok[t]:
        raise SerializationError(f"{path}: expected {t}, got {value!r}.")
    if t in ("float", "double"):
        return float(value)
    return value


def _bytes(value: Any, path: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise SerializationError(f"{path}: expected base64 text for bytes, got {value!r}.")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise SerializationError(f"{path}: {value!r} is not valid base64.") from exc


def _decimal(value: Any, schema: Mapping[str, Any], path: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise SerializationError(
            f"{path}: a decimal must be a string or an exact JSON number, got {value!r}."
        )
    try:
        d = Decimal(value)
    except InvalidOperation as exc:
        raise SerializationError(f"{path}: {value!r} is not a decimal number.") from exc
    if not d.is_finite():
        raise SerializationError(f"{path}: {value!r} is not a finite decimal.")
    scale = int(schema.get("scale", 0))
    precision = int(schema["precision"])
    exponent = d.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > scale:
        raise SerializationError(
            f"{path}: {value} has more than {scale} decimal places (decimal({precision},{scale}));"
            " round it before publishing."
        )
    q = d.quantize(Decimal(1).scaleb(-scale))
    if len(q.as_tuple().digits) > precision:
        raise SerializationError(
            f"{path}: {value} has more than {precision} significant digits "
            f"(decimal({precision},{scale}))."
        )
    return q


def to_json(value: Any) -> Any:
    """A decoded Avro datum as JSON-ready data (decimals as strings, times as RFC 3339)."""
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.isoformat()
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value
