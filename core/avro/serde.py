"""Confluent wire format (magic byte 0, 4-byte big-endian schema id, Avro binary) and JSON mapping.

JSON input maps to Avro as a publisher expects: decimals from strings, exact JSON numbers (parse
request bodies with ``parse_float=Decimal`` so no float ever touches money) or floats (through
their shortest repr, then exactly to the scale; never rounded), timestamps from RFC
3339 strings or integers in the logical type's unit, dates from ISO dates, bytes/fixed from base64.
Output maps back the same way (decimals as strings, timestamps as RFC 3339).
"""

from __future__ import annotations

import base64
import io
import math
import re
import struct
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from decimal import Context, Decimal, InvalidOperation
from typing import Any

import fastavro
from fastavro.validation import ValidationError as AvroValidationError
from fastavro.validation import validate

from core.avro.schema import ParsedSchema, recursive_type
from core.avro.varint import varint
from core.errors import SerializationError
from domain.shown import shown, shown_str

# Enough digits for any Avro decimal the hub keeps (precision up to 38) and the products of two:
# Python's default context has 28 and rounds wider values (scaleb, arithmetic) silently.
_EXACT = Context(prec=80)

MAGIC = 0
_HEADER = struct.Struct(">bI")


def wire_header(schema_id: int) -> bytes:
    """The 5-byte Confluent wire format prefix (magic byte, big-endian schema id)."""
    return _HEADER.pack(MAGIC, schema_id)


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
        found = surrogate_at(datum) if isinstance(exc, UnicodeEncodeError) else None
        if found is not None:
            raise surrogate_error(*found) from exc
        raise SerializationError(
            f"Record does not match schema {schema.name or schema_id}: {exc}"
        ) from exc
    return buf.getvalue()


def surrogate_error(path: str, text: str) -> SerializationError:
    """The refusal of ``text`` at ``path``, a string holding a lone surrogate (``surrogate_at``)."""
    return SerializationError(
        f"{path or '/'}: the text {text[:40]!r} holds a lone UTF-16 surrogate (a JSON escape "
        "such as \\ud800 without its pair), which is not Unicode text and cannot be stored as "
        "UTF-8: send the pair (\\ud83d\\ude00) or the character itself."
    )


def surrogate_at(value: Any, path: str = "") -> tuple[str, str] | None:
    """The path and text of the first string in ``value`` (a datum: records and maps are dicts,
    a map's key counting as its map's) that UTF-8 cannot encode; None when there is none.
    Walked only once the encoder has refused a value, to name it."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return path, value
        return None
    if isinstance(value, Mapping):
        for k, v in value.items():
            if isinstance(k, str) and surrogate_at(k) is not None:
                return path, k
            found = surrogate_at(v, f"{path}/{k}")
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found = surrogate_at(v, f"{path}/{i}")
            if found is not None:
                return found
    return None


# (fingerprint, references) -> the recursive type a schema holds, or None; schemas are few
_RECURSIVE: dict[tuple[str, tuple[tuple[str, str], ...]], str | None] = {}


def refuse_recursive_values(schema: ParsedSchema) -> None:
    """Raise ``SerializationError`` (``recursive_schema``) when ``schema`` holds a recursive type.

    fastavro's compiled reader recurses on the C stack once per level of a value: a deep value
    of such a type kills the process (SIGSEGV), so no error could be raised after the fact. The
    registry refuses such schemas now, but one registered before (still in ``_schemas``), or in
    an external registry, stays readable by id: every reader of stored values checks here."""
    key = (schema.fingerprint, schema.references)
    if key not in _RECURSIVE:
        _RECURSIVE[key] = recursive_type(schema.normalized)
    name = _RECURSIVE[key]
    if name is not None:
        raise SerializationError(
            f"Cannot decode a value written with schema {schema.name}: its type {name!r} "
            "contains itself, and the hub does not decode values of recursive types (a deeply "
            "nested one crashes the decoder). The schema predates the registry's refusal of "
            "recursive types; re-publish the data with a flat schema.",
            code="recursive_schema",
        )


def decode(data: bytes, writer: ParsedSchema, reader: ParsedSchema | None = None) -> Any:
    """Decode a wire format value written with ``writer``, resolved to ``reader`` if given.
    Values of a recursive schema are refused (``refuse_recursive_values``)."""
    _, body = split_wire(data)
    refuse_recursive_values(writer)
    if reader is not None:
        refuse_recursive_values(reader)
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
        raise SerializationError(
            f"Record does not match schema {schema.name}: {shown_str(exc, 300)}"
        ) from exc


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
                    tagged = from_json(inner, branch, path, named)
                    _refuse_ambiguous_tag(value, tag, schema, path, named)
                    return tagged

        errors: list[tuple[Any, SerializationError]] = []
        for branch in schema:
            if branch == "null":
                continue
            try:
                return from_json(value, branch, path, named)
            except SerializationError as exc:
                errors.append((branch, exc))
        fits = [exc for branch, exc in errors if _shape_fits(value, branch, named)]
        if len(fits) == 1:  # one branch of the value's shape: its error names what to fix
            raise fits[0]
        raise SerializationError(f"{path or '/'}: no union branch accepts {shown(value)}.")
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
                stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError as exc:
                raise SerializationError(
                    f"{path}: {shown(value)} is not an RFC 3339 timestamp."
                ) from exc
            _stamp_keeps(stamp, value, logical, path)
            return _readable_stamp(stamp, value, path)
        return _readable(_primitive(value, t, path), logical, path)
    if logical == "date":
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError as exc:
                raise SerializationError(f"{path}: {shown(value)} is not an ISO date.") from exc
        return _readable(_primitive(value, t, path), logical, path)
    if logical in ("time-millis", "time-micros") and t in ("int", "long"):
        return _readable(_primitive(value, t, path), logical, path)
    if logical == "uuid" and t == "string":
        value = _primitive(value, t, path)
        try:
            uuid.UUID(value)
        except ValueError as exc:
            raise SerializationError(f"{path}: {shown(value)} is not a UUID.") from exc
        return value
    if t == "record" or t == "error":
        if not isinstance(value, Mapping):
            raise SerializationError(f"{path or '/'}: expected an object, got {shown(value)}.")
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
                f"{path or '/'}: unknown field(s) {shown_str(', '.join(sorted(unknown)), 200)} "
                "for record "
                f"{schema.get('name')}."
            )
        return out
    if t == "enum":
        if value not in schema["symbols"]:
            raise SerializationError(
                f"{path}: {shown(value)} is not one of {', '.join(schema['symbols'])}."
            )
        return value
    if t == "array":
        if not isinstance(value, list):
            raise SerializationError(f"{path}: expected an array, got {shown(value)}.")
        return [from_json(v, schema["items"], f"{path}/{i}", named) for i, v in enumerate(value)]
    if t == "map":
        if not isinstance(value, Mapping):
            raise SerializationError(f"{path}: expected an object, got {shown(value)}.")
        return {k: from_json(v, schema["values"], f"{path}/{k}", named) for k, v in value.items()}
    if t == "fixed":
        raw = _bytes(value, path)
        if len(raw) != schema["size"]:
            raise SerializationError(f"{path}: fixed size {schema['size']}, got {len(raw)} bytes.")
        return raw
    return from_json(value, t, path, named)


_FAST = {  # a plain field type -> the exact Python type ``from_json`` passes through unchanged
    "string": str,
    "boolean": bool,
    "double": float,
    "float": float,
    "long": int,
    "int": int,
}
_RANGE = {"long": (-(2**63), 2**63), "int": (-(2**31), 2**31)}
# The integers of each logical type that fastavro's reader turns back into a date, datetime or
# time (from 0001-01-01 to 9999-12-31, or within one day). fastavro writes any int or long,
# but raises on reading one outside: such a record would be stored and never read again (by
# the API, projections or exports), so it is refused at the door instead.
_STAMP_MS = (-62_135_596_800_000, 253_402_300_799_999 + 1)
_STAMP_US = (-62_135_596_800_000_000, 253_402_300_799_999_999 + 1)
_READABLE = {
    "date": (-719_162, 2_932_896 + 1),
    "timestamp-millis": _STAMP_MS,
    "timestamp-micros": _STAMP_US,
    "local-timestamp-millis": _STAMP_MS,
    "local-timestamp-micros": _STAMP_US,
    "time-millis": (0, 86_400_000),
    "time-micros": (0, 86_400_000_000),
}


def _readable(value: Any, logical: str, path: str) -> Any:
    """``value`` (an int of logical type ``logical``) if it reads back, else SerializationError."""
    lo, hi = _READABLE[logical]
    if type(value) is int and not lo <= value < hi:
        raise SerializationError(
            f"{path}: {shown_str(value)} is outside the range of a {logical} value "
            f"({lo} to {hi - 1}): it could be written but not read back as a "
            + ("time of day" if logical.startswith("time-") else "date from year 1 to 9999")
            + "."
        )
    return value


# The fraction of a second in timestamp text (the date and the offset hold no '.' or ',').
_FRACTION = re.compile(r"[.,]([0-9]+)")
_UNIT_DIGITS = {"timestamp-millis": 3, "local-timestamp-millis": 3}  # micros: 6


def _stamp_keeps(stamp: datetime, text: str, logical: str, path: str) -> None:
    """Refuse timestamp text whose value the field would not keep as written.

    1. An instant (``timestamp-*``) without a UTC offset: fastavro stores a naive time as UTC,
       so ``2026-01-01T10:00:00`` written in Paris became 10:00Z, an hour off, silently.
    2. A local time (``local-timestamp-*``) with an offset: fastavro dropped the offset, so
       ``10:00:00+05:30`` and ``10:00:00-08:00`` were stored as the same value.
    3. More fraction digits than the unit holds: ``10:00:00.999999Z`` in a millis field was
       stored as .999, and nanoseconds were cut to microseconds (Python keeps six digits).
    """
    if stamp.tzinfo is None and logical.startswith("timestamp-"):
        raise SerializationError(
            f"{path}: {shown(text)} has no UTC offset, so the instant it names is unknown "
            "(it would be stored as if in UTC): add 'Z' or an offset such as '+01:00'."
        )
    if stamp.tzinfo is not None and logical.startswith("local-timestamp-"):
        raise SerializationError(
            f"{path}: {shown(text)} has a UTC offset, which a {logical} value (a wall-clock time "
            "with no zone) cannot hold: the offset would be dropped. Send the local time "
            "without an offset, or use a timestamp-* field for an instant."
        )
    m = _FRACTION.search(text)
    keep = _UNIT_DIGITS.get(logical, 6)
    if m is not None and m.group(1)[keep:].strip("0"):
        raise SerializationError(
            f"{path}: {shown(text)} has more than {keep} digits of fractional seconds, which a "
            f"{logical} value cannot hold (they would be cut off): round it to {keep} digits."
        )


def _readable_stamp(stamp: datetime, text: str, path: str) -> datetime:
    """``stamp`` if its instant is within years 1 to 9999 in UTC, where it reads back: an offset
    can push a time near either end (``0001-01-01T00:00:00+01:00``) out of it."""
    if stamp.tzinfo is not None and stamp.year in (1, 9999):
        try:
            stamp.astimezone(UTC)
        except OverflowError as exc:
            raise SerializationError(
                f"{path}: {shown(text)} is before year 1 or after year 9999 in UTC: it could be "
                "written but not read back."
            ) from exc
    return stamp


def json_converter(schema: Any) -> Callable[[Any], Any]:
    """``from_json`` for one record schema (parsed form), with the per-field dispatch done once.

    It returns what ``from_json(value, schema)`` returns. Fields of a plain type whose JSON value
    already has the exact Python type (``str`` for a string, ``int`` in range for a long, ...)
    are taken as they are; every other field value goes through ``from_json`` itself. It raises
    where ``from_json`` raises, though not always with the same message: callers that name
    errors (``Publisher.prepare``) redo a failing batch with ``from_json``.
    """
    if not isinstance(schema, Mapping) or schema.get("type") not in ("record", "error"):
        return lambda value: from_json(value, schema)
    named = schema.get("__named_schemas", {})
    plan: list[tuple[str, Callable[[Any], Any], bool, Any]] = []
    for f in schema["fields"]:
        name, t = f["name"], f["type"]
        plan.append(
            (name, _field_converter(t, f"/{name}", named), "default" in f, f.get("default"))
        )
    known = frozenset(f["name"] for f in schema["fields"])

    def convert(value: Any) -> Any:
        if not isinstance(value, Mapping):
            return from_json(value, schema)
        out = {}
        for name, field_conv, has_default, default in plan:
            if name in value:
                out[name] = field_conv(value[name])
            elif has_default:
                out[name] = _from_default(default, schema_of[name], named)
            else:
                return from_json(value, schema)  # raises: a required field is missing
        if not known.issuperset(value):
            return from_json(value, schema)  # raises: unknown fields
        return out

    schema_of = {f["name"]: f["type"] for f in schema["fields"]}
    return convert


def _field_converter(t: Any, path: str, named: Mapping[str, Any]) -> Callable[[Any], Any]:
    def generic(v: Any) -> Any:
        return from_json(v, t, path, named)

    if isinstance(t, list) and len(t) == 2 and "null" in t:  # ["null", T] or [T, "null"]
        other = t[1] if t[0] == "null" else t[0]
        if isinstance(other, str) and other not in named and other in _FAST and other != "int":
            # from_json: None -> the null branch; a value of T's exact type -> the T branch
            # (a long's range is checked by the branch, so longs and ints stay generic; a float
            # too: a double too small for a float32 is refused there)
            exact_t = _FAST[other]
            if other not in ("long", "float"):
                return lambda v: None if v is None else v if type(v) is exact_t else generic(v)
        return generic
    if isinstance(t, Mapping):
        logical = t.get("logicalType")
        if logical == "decimal":
            return _decimal_converter(t, path)
        if logical in ("timestamp-micros", "timestamp-millis") and t.get("type") == "long":
            return _timestamp_converter(generic, logical)
        if t.get("type") == "enum":
            symbols = frozenset(t["symbols"])
            return lambda v: v if type(v) is str and v in symbols else generic(v)
        return generic
    if not isinstance(t, str) or t in named or t not in _FAST or t == "float":
        return generic
    exact = _FAST[t]
    bounds = _RANGE.get(t)
    if bounds is not None:
        lo, hi = bounds
        return lambda v: v if type(v) is int and lo <= v < hi else generic(v)
    return lambda v: v if type(v) is exact else generic(v)


def _decimal_converter(t: Mapping[str, Any], path: str) -> Callable[[Any], Any]:
    """``_decimal`` for one decimal schema, with decimal text already at the schema's scale (the
    common JSON form, ``"100.25"`` for scale 2) taken straight: ``_decimal`` would return that
    very value (quantizing to its own exponent changes nothing). Anything else goes through
    ``_decimal``, which converts or names the error."""
    quantum = Decimal(1).scaleb(-int(t.get("scale", 0)))
    precision = int(t["precision"])
    if precision > 28:  # beyond the default context's precision, where quantize may refuse
        return lambda v: _decimal(v, t, path)

    def convert(v: Any) -> Any:
        if type(v) is str and v.isascii() and "_" not in v:  # else ``_decimal`` refuses it
            try:
                d = Decimal(v)
            except InvalidOperation:
                return _decimal(v, t, path)
            if d.same_quantum(quantum) and len(d.as_tuple().digits) <= precision:
                return d
        return _decimal(v, t, path)

    return convert


def _timestamp_converter(generic: Callable[[Any], Any], logical: str) -> Callable[[Any], Any]:
    """``from_json`` for a timestamp field: RFC 3339 text parsed as ``from_json`` parses it, a
    long in the readable range as it is, anything else through ``from_json`` itself."""
    lo, hi = _READABLE[logical]
    parse = datetime.fromisoformat
    keep = _UNIT_DIGITS.get(logical, 6)

    def fine(v: str) -> bool:
        m = _FRACTION.search(v)
        return m is None or not m.group(1)[keep:].strip("0")

    def convert(v: Any) -> Any:
        if type(v) is str and v.isascii() and "_" not in v:  # else ``_decimal`` refuses it
            try:
                stamp = parse(v.replace("Z", "+00:00"))
            except ValueError:
                return generic(v)  # raises naming the value
            # near either end of the range from_json checks that it reads back, naming it;
            # text without an offset, or with more fraction digits than kept, it refuses
            if stamp.tzinfo is None or not 1 < stamp.year < 9999 or not fine(v):
                return generic(v)
            return stamp
        if type(v) is int and lo <= v < hi:
            return v
        return generic(v)

    return convert


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
            return Decimal(unscaled).scaleb(-int(schema.get("scale", 0)), _EXACT)
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


def _refuse_ambiguous_tag(
    value: Mapping[str, Any], tag: str, union: list[Any], path: str, named: Mapping[str, Any]
) -> None:
    """Refuse a one-key object that reads both as the union branch its key names and, untagged,
    as a map or record branch of the same union: ``{"string": "x"}`` for
    ``["null", "string", map<string>]`` was stored as the string "x", though it is also the map
    it looks like (and the map the hub's own JSON gives back for a stored map value)."""
    for branch in union:
        b = named.get(branch, branch) if isinstance(branch, str) else branch
        if not isinstance(b, Mapping) or b.get("type") not in ("map", "record", "error"):
            continue
        try:
            from_json(value, b, path, named)
        except SerializationError:
            continue
        raise SerializationError(
            f"{path or '/'}: {{{shown(tag)}: ...}} is ambiguous: it is the union's "
            f"{shown(tag)} branch in Avro's tagged form, and also a {b['type']} value of the "
            f"branch {_type_name(b)!r}. Send the value tagged with the branch you mean "
            f'(for instance {{"{_type_name(b)}": {{"{shown_str(tag)}": ...}}}}), or, for the '
            f"{shown(tag)} branch, untagged."
        )


def _shape_fits(value: Any, branch: Any, named: Mapping[str, Any]) -> bool:
    """Whether ``value`` has the JSON shape of union branch ``branch``: an object for a map, or
    for a record holding every one of its keys; an array for an array. Only these: a scalar
    may read as several branches (a string as a string, an enum, bytes, a decimal ...), and a
    union's message names none of them rather than the wrong one."""
    b = named.get(branch, branch) if isinstance(branch, str) else branch
    t = b.get("type") if isinstance(b, Mapping) else None
    if isinstance(value, Mapping):
        if t == "map":
            return True
        return t in ("record", "error") and set(value) <= {f["name"] for f in b["fields"]}
    return isinstance(value, list) and t == "array"


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
        raise SerializationError(f"{path}: expected {t}, got {shown(value)}.")
    if t in ("float", "double"):
        try:
            number = float(value)
        except OverflowError:  # an int past a double's range (float() raised, uncaught)
            number = math.inf if value > 0 else -math.inf
        if abs(number) >= _FLOAT_INF[t] and not isinstance(value, float):
            # JSON text (parsed as Decimal) too large for the type: stored as infinity, it read
            # back as null, though the NaN and Infinity literals themselves are refused; an
            # int that large raised OverflowError (float) or struct.error (a float32)
            raise SerializationError(
                f"{path}: {shown_str(value)} is out of the range of a {t} (it would be stored "
                "as infinity): send a smaller number."
            )
        stored = number if t == "double" else _F32.unpack(_F32.pack(number))[0]
        if stored == 0 and value != 0:
            # too small for the type: a non-zero source read back as 0.0, accepted
            raise SerializationError(
                f"{path}: {shown_str(value)} is too small for a {t} (it would be stored as 0): "
                "send 0, or a number the type can hold (or use a decimal field)."
            )
        return number
    return value


_F32 = struct.Struct("<f")


# The magnitude from which a number is written as infinity: a float32 rounds to infinity from
# halfway between its largest value and 2**128.
_FLOAT_INF = {"double": math.inf, "float": 2.0**128 - 2.0**103}


def _bytes(value: Any, path: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise SerializationError(f"{path}: expected base64 text for bytes, got {shown(value)}.")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise SerializationError(f"{path}: {shown(value)} is not valid base64.") from exc


def _decimal(value: Any, schema: Mapping[str, Any], path: str) -> Decimal:
    """``value`` (decimal text, an int, an exact JSON number or a float) as the Avro decimal of
    ``schema``, exactly, or ``SerializationError`` naming the value and the fix.

    A float (what pandas and Parquet writers give for a price) converts through its shortest
    repr (``101.25`` is ``Decimal("101.25")``, not the binary expansion), then must fit the
    scale and precision exactly: nothing is ever rounded silently.
    """
    where = path or "/"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise SerializationError(
                f"{where}: {shown(value)} is not a finite number, so it cannot be a decimal; "
                "send a number or null (if the field is nullable)."
            )
        value = repr(value)
    elif isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise SerializationError(
            f"{where}: a decimal must be a number or a string of digits, got {shown(value)}."
        )
    if isinstance(value, str) and not (value.isascii() and "_" not in value):
        # Python's Decimal reads "1_000.50" as 1000.50 and "١٢" (Arabic-Indic) as 12
        raise SerializationError(
            f"{where}: {shown(value)} is not a decimal number in plain digits: write it with ASCII "
            "digits 0-9 and no '_' grouping (for instance '1000.50')."
        )
    try:
        d = value if isinstance(value, Decimal) else Decimal(value)
    except InvalidOperation as exc:
        raise SerializationError(f"{where}: {shown(value)} is not a decimal number.") from exc
    if not d.is_finite():
        raise SerializationError(f"{where}: {shown(value)} is not a finite decimal.")
    scale = int(schema.get("scale", 0))
    precision = int(schema["precision"])
    try:  # at the schema's precision: the default context's 28 digits would refuse a wider
        # decimal(38, s) value that Arrow's column path takes
        q = d.quantize(Decimal(1).scaleb(-scale), context=Context(prec=max(precision, 1)))
    except InvalidOperation as exc:
        raise SerializationError(
            f"{where}: {shown_str(value)} has more than {precision} significant digits "
            f"(decimal({precision},{scale}))."
        ) from exc
    if q != d:
        raise SerializationError(
            f"{where}: {shown_str(value)} has more than {scale} decimal places "
            f"(decimal({precision},{scale})); round it before publishing."
        )
    if len(q.as_tuple().digits) > precision:
        raise SerializationError(
            f"{where}: {shown_str(value)} has more than {precision} significant digits "
            f"(decimal({precision},{scale}))."
        )
    return q


def decimal_fields(schema: Any) -> tuple[tuple[str, Mapping[str, Any]], ...]:
    """The top-level fields of a record schema (fastavro-parsed) whose type is a decimal, or a
    nullable union holding one, with that decimal's schema."""
    if not isinstance(schema, Mapping) or schema.get("type") != "record":
        return ()
    out = []
    for f in schema.get("fields", []):
        t = f["type"]
        branches = t if isinstance(t, list) else [t]
        for b in branches:
            if isinstance(b, Mapping) and b.get("logicalType") == "decimal":
                out.append((f["name"], b))
                break
    return tuple(out)


def coerce_decimals(datum: Any, fields: tuple[tuple[str, Mapping[str, Any]], ...]) -> Any:
    """``datum`` (an Avro datum from a file row) with ints, floats and text in its decimal
    ``fields`` converted exactly (``_decimal``); itself when nothing needs converting."""
    if not fields or type(datum) is not dict:
        return datum
    out = None
    for name, schema in fields:
        v = datum.get(name)
        if v is None or type(v) is Decimal:
            continue
        if out is None:
            out = dict(datum)
        out[name] = _decimal(v, schema, "/" + name)
    return datum if out is None else out


# Microseconds per unit of a time type: a datum finer than its unit loses digits.
_STAMP_UNIT_US = {
    "timestamp-millis": 1000,
    "local-timestamp-millis": 1000,
    "timestamp-micros": 1,
    "local-timestamp-micros": 1,
    "time-millis": 1000,
    "time-micros": 1,
}


def _type_plan(
    t: Any,
    named: dict[str, Any],
    seen: dict[str, list[Any]],
    leaf: Callable[[Mapping[str, Any], Any], Any],
    union: Callable[[list[Any], tuple[Any, ...]], Any],
    *,
    every_map: bool = False,
) -> Any:
    """Where the Avro type ``t`` (fastavro-parsed) holds what ``leaf`` plans for (its plan of a
    type, None where the type is not one): ``("r", [(field, plan), ...])`` for a record,
    ``("a", plan)`` / ``("m", plan)`` for an array's items / a map's values (``every_map``: a
    map is planned even when its values need no plan), ``union(branches, plans)`` for a union
    some of whose branches can; None where nothing can be. A recursive record's plan holds
    itself (the list is filled after it is made)."""

    def walk(t: Any) -> Any:
        if isinstance(t, str):
            if t in seen:
                return ("r", seen[t])
            t = named.get(t, t)
            if isinstance(t, str):
                return None
        if isinstance(t, list):
            plans = tuple(p for p in map(walk, t) if p is not None)
            return union(t, plans) if plans else None
        if not isinstance(t, Mapping):
            return None
        kind = t.get("type")
        found = leaf(t, kind)
        if found is not None:
            return found
        if kind == "array":
            p = walk(t.get("items"))
            return None if p is None else ("a", p)
        if kind == "map":
            p = walk(t.get("values"))
            return ("m", p) if p is not None or every_map else None
        if kind == "record" or kind == "error":
            name = str(t.get("name", ""))
            fields: list[Any] = []
            seen[name] = fields
            named[name] = t
            for f in t.get("fields", []):
                p = walk(f["type"])
                if p is not None:
                    fields.append((f["name"], p))
            return ("r", fields) if fields else None
        if isinstance(kind, (Mapping, list)):
            return walk(kind)
        return None

    return walk(t)


def _stamp_leaf(t: Mapping[str, Any], kind: Any) -> str | None:
    """A millis or micros time: its logical type's name."""
    if t.get("logicalType") in _STAMP_UNIT_US and kind in ("int", "long"):
        return str(t["logicalType"])
    return None


def _stamp_plan(t: Any, named: dict[str, Any], seen: dict[str, list[Any]]) -> Any:
    """Where the Avro type ``t`` can hold a millis or micros time (``_type_plan``): the
    logical type's name for a time itself, ``("u", (plan, ...))`` for a union's branches that
    can."""
    return _type_plan(t, named, seen, _stamp_leaf, lambda _branches, plans: ("u", plans))


def stamp_fields(schema: Any) -> tuple[tuple[str, Any], ...]:
    """The fields of a record schema (fastavro-parsed) that can hold a millis or micros time,
    at any depth (inside records, arrays, maps and unions), each with its plan for
    ``check_stamps``: the logical type's name for a top-level time field."""
    if not isinstance(schema, Mapping) or schema.get("type") != "record":
        return ()
    plan = _stamp_plan(schema, dict(schema.get("__named_schemas", {})), {})
    return () if plan is None else tuple(plan[1])


def _too_fine(v: Any, logical: str) -> bool:
    if isinstance(v, datetime):
        return bool(getattr(v, "nanosecond", 0)) or v.microsecond % _STAMP_UNIT_US[logical] != 0
    if isinstance(v, time) and logical.startswith("time-"):
        return v.microsecond % _STAMP_UNIT_US[logical] != 0
    return False


def _check_stamp(v: Any, plan: Any, path: str) -> None:
    if v is None:
        return
    if isinstance(plan, str):
        if _too_fine(v, plan):
            unit = "milliseconds" if _STAMP_UNIT_US[plan] > 1 else "microseconds"
            raise SerializationError(
                f"{path}: {v.isoformat()} is finer than the {unit} a {plan} value holds: "
                f"the extra digits would be cut off. Round the times to {unit} before "
                "publishing, or register a version with a finer timestamp type."
            )
        return
    kind, inner = plan
    if kind == "u":
        if isinstance(v, (datetime, time)):  # the first time branch, as fastavro picks it
            leaf = next((p for p in inner if isinstance(p, str)), None)
            if leaf is not None:
                _check_stamp(v, leaf, path)
            return
        for p in inner:  # a record, array or map branch the value may be written as
            if not isinstance(p, str):
                _check_stamp(v, p, path)
    elif kind == "r":
        if isinstance(v, Mapping):
            for name, p in inner:
                _check_stamp(v.get(name), p, f"{path}/{name}")
    elif kind == "a":
        if isinstance(v, (list, tuple)):
            for i, item in enumerate(v):
                _check_stamp(item, inner, f"{path}/{i}")
    elif isinstance(v, Mapping):
        for k, item in v.items():
            _check_stamp(item, inner, f"{path}/{k}")


def check_stamps(datum: Any, fields: tuple[tuple[str, Any], ...]) -> None:
    """Raise ``SerializationError`` for a time in ``fields`` (``stamp_fields``) of ``datum`` (a
    file row), at any depth, finer than its field's unit, which fastavro would store cut
    without a word: nanoseconds (a Parquet ``timestamp[ns]`` column's rows are pandas
    Timestamps) in any field, or microseconds in a millis field (``timestamp[us]``, or an Avro
    file's micros field read through a later millis version). The reason names the value's
    path (``/leg/at``, ``/fills/1``, ``/marks/key``)."""
    if not fields or type(datum) is not dict:
        return
    for name, plan in fields:
        _check_stamp(datum.get(name), plan, "/" + name)


# Python types of the values a file row holds, by the Avro primitive that takes them as they are.
_TAKES = {
    "double": (float, int),
    "float": (float, int),
    "long": (int,),
    "int": (int,),
    "string": (str,),
}


def _row_leaf(t: Mapping[str, Any], kind: Any) -> Any:
    """A decimal: ``("d", (schema, its quantum, the largest adjusted exponent of a value that
    fits))``."""
    if t.get("logicalType") == "decimal" and kind in ("bytes", "fixed"):
        scale, precision = int(t.get("scale", 0)), int(t["precision"])
        return ("d", (t, Decimal(1).scaleb(-scale), precision - scale - 1))
    return None


def _row_union(branches: list[Any], plans: tuple[Any, ...]) -> Any:
    """A union's plans and the Python types its primitive branches take as they are."""
    takes = tuple(k for b in branches if isinstance(b, str) and b in _TAKES for k in _TAKES[b])
    return ("u", (plans, takes))


def _row_plan(t: Any, named: dict[str, Any], seen: dict[str, list[Any]]) -> Any:
    """Where the Avro type ``t`` holds a decimal or a map, which a file row may carry in another
    form (a float, an int or text for a decimal; a Parquet map's list of key/value pairs for a
    map): ``_type_plan`` with ``("d", ...)`` for a decimal, ``("m", plan or None)`` for every
    map, ``("u", (plans, primitive types))`` for a union."""
    return _type_plan(t, named, seen, _row_leaf, _row_union, every_map=True)


def row_fields(schema: Any) -> tuple[tuple[str, Any], ...]:
    """The fields of a record schema (fastavro-parsed) that can hold a decimal or a map at any
    depth (inside records, arrays, maps and unions), each with its plan for ``conform_row``."""
    if not isinstance(schema, Mapping) or schema.get("type") != "record":
        return ()
    plan = _row_plan(schema, dict(schema.get("__named_schemas", {})), {})
    return () if plan is None else tuple(plan[1])


def _pairs(v: Any) -> bool:
    """Whether ``v`` is a Parquet/Arrow map's value as pyarrow gives it: a list of (key, value)
    tuples."""
    return type(v) is list and all(type(e) is tuple and len(e) == 2 for e in v)


def _map_of_pairs(v: list[tuple[Any, Any]], path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, item in v:
        if type(k) is not str:
            raise SerializationError(
                f"{path}: the map's key {shown(k)} is {type(k).__name__}, but the keys of an "
                "Avro map are text: write the column with string keys (for instance "
                "map<string, ...>), or register the field as an array of key/value records."
            )
        if k in out:
            raise SerializationError(
                f"{path}: the map holds the key {shown(k)} more than once; an Avro map keeps "
                "one value per key, so the others would be lost: make its keys unique."
            )
        out[k] = item
    return out


def _conform(v: Any, plan: Any, path: str) -> Any:
    """``v`` as the Avro type of ``plan`` takes it (``conform_row``); ``v`` itself when nothing
    in it changes."""
    if v is None:
        return v
    kind, inner = plan
    if kind == "d":  # a decimal of the field's scale as it is; any other value converted exactly
        schema, quantum, top = inner
        if type(v) is Decimal and v.is_finite() and v.same_quantum(quantum) and v.adjusted() <= top:
            return v
        return _decimal(v, schema, path)
    if kind == "u":
        plans, takes = inner
        if type(v) is not Decimal and type(v) is not bool and isinstance(v, takes):
            return v  # a value a primitive branch takes as it is
        shape = (
            "m"
            if _pairs(v) and v
            else "r"
            if isinstance(v, Mapping)
            else "a"
            if isinstance(v, list)
            else "d"
        )
        order = {"m": "mra", "r": "rm", "a": "am", "d": "d"}[shape]
        for k in order:
            p = next((p for p in plans if p[0] == k), None)
            if p is not None:
                return _conform(v, p, path)
        return v
    if kind == "r":
        if not isinstance(v, Mapping):
            return v
        out = None
        for name, p in inner:
            item = v.get(name)
            new = _conform(item, p, f"{path}/{name}")
            if new is not item:
                if out is None:
                    out = dict(v)
                out[name] = new
        return v if out is None else out
    if kind == "a":
        if not isinstance(v, list):
            return v
        items = [_conform(item, inner, f"{path}/{i}") for i, item in enumerate(v)]
        return v if all(a is b for a, b in zip(items, v, strict=True)) else items
    # a map: a Parquet map column's list of pairs becomes a dict; values converted in place
    if _pairs(v):
        v = _map_of_pairs(v, path)
    if inner is None or not isinstance(v, Mapping):
        return v
    out = None
    for k, item in v.items():
        new = _conform(item, inner, f"{path}/{k}")
        if new is not item:
            if out is None:
                out = dict(v)
            out[k] = new
    return v if out is None else out


def conform_row(datum: Any, fields: tuple[tuple[str, Any], ...]) -> Any:
    """``datum`` (an Avro datum from a file row) with its decimals and maps (``row_fields``),
    at any depth, as the schema takes them: an int, a float (by its shortest repr) or text in a
    decimal converted exactly (``_decimal``, never rounded: a value that does not fit the scale
    and precision raises ``SerializationError`` naming its path, ``/leg/price``,
    ``/prices/2``), a decimal of another scale checked the same way, and a Parquet map column
    (read by pyarrow as a list of key/value pairs) made a map, refused naming the column when a
    key is not text or appears twice. ``datum`` itself when nothing changes."""
    if not fields or type(datum) is not dict:
        return datum
    out = None
    for name, plan in fields:
        v = datum.get(name)
        if v is None:
            continue
        if plan[0] == "d" and type(v) is Decimal:  # the common case inline: a file's decimal
            _, quantum, top = plan[1]
            if v.is_finite() and v.same_quantum(quantum) and v.adjusted() <= top:
                continue
        new = _conform(v, plan, "/" + name)
        if new is not v:
            if out is None:
                out = dict(datum)
            out[name] = new
    return datum if out is None else out


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


# -- generated per-schema encoders ----------------------------------------------------------------
# ``encoder(schema_id, schema)`` returns a function equal to ``encode(schema_id, schema, datum)``
# for every datum: Python source generated once per schema writes the common cases (strings,
# ints, booleans, doubles, enums, bytes decimals, timestamp-micros, dates, arrays and maps of
# those, nullable unions of those) with exact type checks; anything else (a missing field,
# another type, a value fastavro would refuse) raises inside the generated code and the datum is
# encoded by fastavro instead, which gives its own bytes or its own error. Schemas with other
# field types use fastavro only.
_SMALL = [bytes([i]) for i in range(128)]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_EPOCH_DAY = date(1970, 1, 1)
_ENCODERS: dict[int, tuple[ParsedSchema, Any]] = {}


def _micros(v: datetime) -> int:
    delta = v - (_EPOCH_NAIVE if v.tzinfo is None else _EPOCH)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _decimal_bytes(v: Decimal, precision: int, scale: int) -> bytes:
    _, digits, exp = v.as_tuple()
    if not isinstance(exp, int) or len(digits) > precision or exp + scale < 0:
        raise ValueError("left to fastavro")
    u = int(v.scaleb(scale, _EXACT))
    return u.to_bytes((abs(u).bit_length() + 8) // 8, "big", signed=True)


def _field_code(
    t: Any, named: Mapping[str, Any], var: str, lines: list[str], pad: str, consts: dict[str, Any]
) -> bool:
    """Append code writing ``var`` of Avro type ``t``; False if ``t`` is not generated."""
    if isinstance(t, str) and t in named:
        t = named[t]
    if isinstance(t, list):
        if len(t) != 2 or "null" not in t:
            return False
        null_at = t.index("null")
        inner: list[str] = []
        if not _field_code(t[1 - null_at], named, var, inner, pad + "    ", consts):
            return False
        lines.append(f"{pad}if {var} is None:")
        lines.append(f"{pad}    ap({bytes([2 * null_at])!r})")
        lines.append(f"{pad}else:")
        lines.append(f"{pad}    ap({bytes([2 * (1 - null_at)])!r})")
        lines.extend(inner)
        return True
    logical = t.get("logicalType") if isinstance(t, dict) else None
    base = t.get("type") if isinstance(t, dict) else t
    varint = f"{pad}ap(_S[z] if z < 128 else _varint(z))"
    if logical == "decimal" and base == "bytes":
        precision, scale = int(t["precision"]), int(t.get("scale", 0))
        if precision > 27:
            return False
        quantum = f"_Q{len(consts)}"
        consts[quantum] = Decimal(1).scaleb(-scale)
        lines.append(f"{pad}if type({var}) is not _Decimal: raise TypeError")
        lines.append(f"{pad}if {var}.same_quantum({quantum}):")  # exponent == -scale: exact
        lines.append(f"{pad}    u = int({var}.scaleb({scale}))")
        lines.append(f"{pad}    if not -{10**precision} < u < {10**precision}: raise ValueError")
        lines.append(f"{pad}    b = u.to_bytes((abs(u).bit_length() + 8) >> 3, 'big', signed=True)")
        lines.append(f"{pad}else:")
        lines.append(f"{pad}    b = _decimal_bytes({var}, {precision}, {scale})")
        lines.append(f"{pad}ap(_S[len(b) << 1])")
        lines.append(f"{pad}ap(b)")
        return True
    if logical == "timestamp-micros" and base == "long":
        # fastavro writes a datetime as its microseconds and an int as it is.
        lines.append(f"{pad}if type({var}) is _datetime:")
        lines.append(f"{pad}    v = _micros({var})")
        lines.append(f"{pad}elif type({var}) is int and {-(2**63)} <= {var} < {2**63}:")
        lines.append(f"{pad}    v = {var}")
        lines.append(f"{pad}else:")
        lines.append(f"{pad}    raise TypeError")
        lines.append(f"{pad}z = (v << 1) ^ (v >> 63)")
        lines.append(varint)
        return True
    if logical == "date" and base == "int":
        lines.append(f"{pad}if type({var}) is not _date: raise TypeError")
        lines.append(f"{pad}v = ({var} - _EPOCH_DAY).days")
        lines.append(f"{pad}z = (v << 1) ^ (v >> 63)")
        lines.append(varint)
        return True
    if logical is not None:
        return False
    if base in ("array", "map"):
        # fastavro: one block of len(items) items (absent when empty), then the 0 block.
        item = f"i{len(pad)}"
        inner = []
        if base == "map":
            inner.append(f"{pad}    if type(k{len(pad)}) is not str: raise TypeError")
            inner.append(f"{pad}    b = k{len(pad)}.encode()")
            inner.append(f"{pad}    z = len(b) << 1")
            inner.append(f"{pad}    ap(_S[z] if z < 128 else _varint(z))")
            inner.append(f"{pad}    ap(b)")
        if not _field_code(
            t["values" if base == "map" else "items"], named, item, inner, pad + "    ", consts
        ):
            return False
        kind = "dict" if base == "map" else "list"
        loop = f"k{len(pad)}, {item} in {var}.items()" if base == "map" else f"{item} in {var}"
        lines.append(f"{pad}if type({var}) is not {kind}: raise TypeError")
        lines.append(f"{pad}if {var}:")
        lines.append(f"{pad}    z = len({var}) << 1")
        lines.append(f"{pad}    {varint.strip()}")
        lines.append(f"{pad}for {loop}:")
        lines.extend(inner)
        lines.append(f"{pad}ap(b'\\x00')")
        return True
    if base == "enum":
        if len(t["symbols"]) > 64:
            return False
        name = f"_E{len(consts)}"
        consts[name] = {s: _SMALL[i << 1] for i, s in enumerate(t["symbols"])}
        lines.append(f"{pad}ap({name}[{var}])")
        return True
    if base == "string":
        lines.append(f"{pad}if type({var}) is not str: raise TypeError")
        lines.append(f"{pad}b = {var}.encode()")
        lines.append(f"{pad}z = len(b) << 1")
        lines.append(varint)
        lines.append(f"{pad}ap(b)")
        return True
    if base == "bytes":
        lines.append(f"{pad}if type({var}) is not bytes: raise TypeError")
        lines.append(f"{pad}z = len({var}) << 1")
        lines.append(varint)
        lines.append(f"{pad}ap({var})")
        return True
    if base in ("long", "int"):
        bits = 63 if base == "long" else 31
        lines.append(f"{pad}v = {var}")
        lines.append(
            f"{pad}if type(v) is not int or not {-(2**bits)} <= v < {2**bits}: raise TypeError"
        )
        lines.append(f"{pad}z = (v << 1) ^ (v >> 63)")
        lines.append(varint)
        return True
    if base == "boolean":
        lines.append(f"{pad}if type({var}) is not bool: raise TypeError")
        lines.append(f"{pad}ap(b'\\x01' if {var} else b'\\x00')")
        return True
    if base == "double":
        lines.append(f"{pad}if type({var}) is not float: raise TypeError")
        lines.append(f"{pad}ap(_pack_d({var}))")
        return True
    return False


def _generate(schema: ParsedSchema) -> Any:
    parsed = schema.parsed
    if not isinstance(parsed, dict) or parsed.get("type") not in ("record", "error"):
        return None
    named = parsed.get("__named_schemas", {})
    lines = ["def _generated(d, header):", "    out = [header]", "    ap = out.append"]
    consts: dict[str, Any] = {}
    for i, f in enumerate(parsed["fields"]):
        lines.append(f"    f{i} = d[{f['name']!r}]")
        if not _field_code(f["type"], named, f"f{i}", lines, "    ", consts):
            return None
    lines.append("    return b''.join(out)")
    scope: dict[str, Any] = {
        **consts,
        "_S": _SMALL,
        "_varint": varint,
        "_micros": _micros,
        "_decimal_bytes": _decimal_bytes,
        "_Decimal": Decimal,
        "_datetime": datetime,
        "_date": date,
        "_EPOCH_DAY": _EPOCH_DAY,
        "_pack_d": struct.Struct("<d").pack,
    }
    exec(compile("\n".join(lines), f"<avro encoder {schema.name}>", "exec"), scope)
    return scope["_generated"]


def encoder(schema_id: int, schema: ParsedSchema) -> Any:
    """A function ``datum -> bytes`` equal to ``encode(schema_id, schema, datum)`` (see above)."""
    found = _ENCODERS.get(schema_id)
    if found is not None and found[0] is schema:
        return found[1]
    generated = _generate(schema)
    header = _HEADER.pack(MAGIC, schema_id)

    if generated is None:

        def encode_one(datum: Any) -> bytes:
            return encode(schema_id, schema, datum)

    else:

        def encode_one(datum: Any) -> bytes:
            if type(datum) is dict:
                try:
                    return generated(datum, header)  # type: ignore[no-any-return]
                except Exception:
                    pass
            return encode(schema_id, schema, datum)

    if len(_ENCODERS) > 1024:
        _ENCODERS.clear()
    _ENCODERS[schema_id] = (schema, encode_one)
    return encode_one
