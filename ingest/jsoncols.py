"""JSON event values of one event type encoded column-wise: ``Publisher.prepare``'s common case.

``ColumnPlan(target).encode(values, seal)`` turns a batch of JSON-decoded values (dicts with the
same keys) into Arrow columns, checks them column by column, seals the PII columns and writes
every row's Avro value with the vectorised encoder (``core.avro.vector``), wire header included.
It gives exactly what ``serde.from_json`` + ``PiiCodec.encrypt`` + ``serde.encode`` give row by
row (``tests/unit/test_publish_batch.py`` compares them), or None: the caller then encodes record
by record, which converts what this does not and names every error. Pessimistic, never
optimistic: a column is taken only when every value has the one exact JSON form handled here.

Handled (plain field type <- JSON values; ``["null", T]`` admits None too):
- ``string`` <- str; ``enum`` <- str (a non-symbol makes the batch go row by row)
- ``long`` / ``int`` <- int in range (not bool); ``double`` <- float; ``boolean`` <- bool
- ``bytes`` decimal(P <= 18, S) <- text ``-?digits[.digits]`` (at most S fraction digits, no
  leading zeros, at most P - S integer digits: ``"100"``, ``"12.5"`` and ``"12.50"`` are 12.50 at
  scale 2, as ``from_json`` makes them) cast by Arrow exactly (it rescales, never rounds), or
  int with fewer than P - S digits
- ``long`` timestamp-micros <- RFC 3339 text with ``Z`` or an offset and at most 6 fractional
  digits (the instant Python's ``fromisoformat`` gives; Arrow refuses impossible dates), or int
- PII fields (top level, plain type ``string`` or ``["null", "string"]``): each non-null value
  encoded in its plain type; every PII column sealed by ONE ``seal([(field, subjects,
  plaintexts), ...])`` call per batch once all columns passed their checks (one fresh nonce per
  value).
A field absent from every value takes its default (the encoder writes the constant), whatever
its type; a field present in some values only, a value of any other type or form: None.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from core.avro import serde
from core.avro import vector as avro_vector
from core.errors import SerializationError
from core.pii import PiiField
from core.pii import plan as pii_plan
from ingest.targets import WriteTarget

# [(field name, subjects, plaintexts) per PII column] -> each column's ciphertexts, in order
Seal = Callable[[list[tuple[str, list[str], list[bytes]]]], list[list[bytes]]]

_TS_RE = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
_LONG = (-(2**63), 2**63)
_INT = (-(2**31), 2**31)
_NONE = type(None)
_TS_UTC = pa.timestamp("us", tz="UTC")


def _load_text_column() -> Any:
    try:
        import hub_native
    except ImportError:  # not built: Arrow's regex and cast decide
        return None
    return getattr(hub_native, "json_text_column", None)


_native_text_column = _load_text_column()


def _native_text(
    data: list[Any], typ: pa.DataType, decimal: bool, precision: int, scale: int
) -> pa.Array | None:
    """A decimal / timestamp text column by one native pass over the list
    (``hub_native.json_text_column``, native/src/json_text.rs): ~0.8 us a value of
    ``pa.array`` + regex + cast gone. None when not built or when any value is not of the
    strict form (or not a calendar instant): the Arrow path below then decides, so a batch it
    takes has the reference's values and one it refuses is refused as before."""
    if _native_text_column is None or (decimal and not 1 <= precision <= 18):
        return None
    got = _native_text_column(data, decimal, precision, scale)
    if got is None:
        return None
    validity, values = got
    bufs = [None if validity is None else pa.py_buffer(validity), pa.py_buffer(values)]
    return pa.Array.from_buffers(typ, len(data), bufs)


class _Col:
    __slots__ = ("kind", "name", "nullable", "pii", "precision", "regex", "scale")

    def __init__(self, name: str, kind: str, nullable: bool) -> None:
        self.name, self.kind, self.nullable = name, kind, nullable
        self.pii: PiiField | None = None
        self.precision = self.scale = 0
        self.regex = ""


def _column_kind(t: Any, named: Mapping[str, Any]) -> tuple[str, bool, dict[str, Any]] | None:
    if isinstance(t, str) and t in named:
        t = named[t]
    nullable = False
    if isinstance(t, list):
        if len(t) != 2 or "null" not in t:
            return None
        t = t[1 - t.index("null")]
        if isinstance(t, str) and t in named:
            t = named[t]
        nullable = True
    if isinstance(t, str):
        return (t, nullable, {}) if t in ("string", "long", "int", "double", "boolean") else None
    if not isinstance(t, Mapping):
        return None
    logical, base = t.get("logicalType"), t.get("type")
    if logical == "decimal" and base == "bytes":
        p, s = int(t["precision"]), int(t.get("scale", 0))
        if p > 18 or s > p:
            return None
        ints = f"(0|[1-9][0-9]{{0,{p - s - 1}}})" if p > s else "0"
        regex = f"^-?{ints}" + (f"(\\.[0-9]{{1,{s}}})?$" if s else "$")
        return "decimal", nullable, {"precision": p, "scale": s, "regex": regex}
    if logical == "timestamp-micros" and base == "long":
        return "timestamp", nullable, {}
    if logical is None and base == "enum":
        return "enum", nullable, {}
    return None


class ColumnPlan:
    """How one write target's values are encoded column-wise (``None`` from ``build``: never)."""

    def __init__(self, target: WriteTarget, cols: list[_Col], subject: str | None) -> None:
        self.parsed: Mapping[str, Any] = target.schema.parsed  # type: ignore[assignment]
        self.wire = serde.wire_header(target.schema_id)
        self.cols = {c.name: c for c in cols}
        self.known = frozenset(self.cols)
        self.subject = subject

    @classmethod
    def build(cls, target: WriteTarget) -> ColumnPlan | None:
        plain = target.plain.parsed
        if not isinstance(plain, Mapping) or plain.get("type") != "record":
            return None
        named = plain.get("__named_schemas", {})
        shred = pii_plan(target.schema.text)
        pii = {f.path[0]: f for f in shred.fields if len(f.path) == 1}
        if len(pii) != len(shred.fields) or (pii and not target.encrypts):
            return None
        cols = []
        for f in plain["fields"]:
            found = _column_kind(f["type"], named)
            if found is None:
                if "default" not in f or f["name"] in pii:
                    return None
                cols.append(_Col(f["name"], "", False))  # only ever absent: its default
                continue
            kind, nullable, extra = found
            col = _Col(f["name"], kind, nullable)
            for k, v in extra.items():
                setattr(col, k, v)
            if f["name"] in pii:
                if kind != "string":
                    return None
                col.pii = pii[f["name"]]
            cols.append(col)
        subject = shred.subject_field
        if pii and (subject is None or subject not in {c.name for c in cols}):
            return None
        return cls(target, cols, subject)

    def encode(self, values: Sequence[Any], seal: Seal | None) -> list[bytes] | None:
        """Every value's Avro bytes (wire header first), or None (see the module docstring)."""
        if not values or type(values[0]) is not dict:
            return None
        keys = values[0].keys()
        if not self.known.issuperset(keys):
            return None
        # every value a dict with exactly the first one's keys: all of the same size (C-level
        # passes, ~0.04 us a value where comparing each one's keys took ~0.19), and a missing
        # key (KeyError below) then means some other key is there instead
        if set(map(type, values)) != {dict} or set(map(len, values)) != {len(keys)}:
            return None
        try:
            columns: dict[str, list[Any]] = {
                name: list(map(itemgetter(name), values)) for name in keys
            }
        except KeyError:
            return None
        arrays: list[pa.Array | None] = []
        names: list[str] = []
        subjects = columns.get(self.subject) if self.subject is not None else None
        pending: list[tuple[int, list[int] | None, int]] = []  # (array index, rows, length)
        to_seal: list[tuple[str, list[str], list[bytes]]] = []
        try:
            for name, data in columns.items():
                col = self.cols[name]
                if col.pii is None:
                    arr = self._array(col, data)
                    if arr is None:
                        return None
                else:
                    # sealed below: only ``_array``'s type check (its Arrow string array was
                    # never used; the plain encoding in ``_plaintexts`` refuses what Arrow would)
                    if self._one_type(col, data) not in (str, _NONE):
                        return None
                    if seal is None or subjects is None:
                        return None
                    found = self._plaintexts(col.pii, data, subjects)
                    if found is None:
                        return None
                    rows, owners, plaintexts = found
                    pending.append((len(arrays), rows, len(data)))
                    to_seal.append((name, owners, plaintexts))
                    arr = None  # sealed below, once every column is known to be good
                arrays.append(arr)
                names.append(name)
        except (
            pa.ArrowInvalid,
            pa.ArrowTypeError,
            OverflowError,
            UnicodeError,
            SerializationError,
        ):
            return None  # the record path names the value (a lone surrogate: ``PiiField.encode``)
        if to_seal:
            assert seal is not None
            for (at, rows, n), sealed in zip(pending, seal(to_seal), strict=True):
                if rows is None:
                    arrays[at] = pa.array(sealed, pa.binary())
                    continue
                out: list[bytes | None] = [None] * n
                for i, ciphertext in zip(rows, sealed, strict=True):
                    out[i] = ciphertext
                arrays[at] = pa.array(out, pa.binary())
        rb = pa.RecordBatch.from_arrays(arrays, names=names)
        enc = avro_vector.plan(self.parsed, rb.schema)
        if enc is None or enc.bad_rows(rb).any():
            return None
        return enc.encode(rb, self.wire)

    @staticmethod
    def _one_type(col: _Col, data: list[Any]) -> type | None:
        """The one type of the column's values (``NoneType``: every value None, the column
        nullable); None when the field's type is not handled here, a value is None in a
        column that is not nullable, or the values are of several types."""
        if not col.kind:
            return None  # a value for a field of a type not handled here
        types = set(map(type, data))
        if col.nullable:
            types.discard(_NONE)
        elif _NONE in types:
            return None
        if not types:
            return _NONE
        if len(types) != 1:
            return None
        (t,) = types
        return t

    @staticmethod
    def _array(col: _Col, data: list[Any]) -> pa.Array | None:
        t = ColumnPlan._one_type(col, data)
        if t is None:
            return None
        if t is _NONE:
            return pa.nulls(len(data), pa.string() if col.kind != "long" else pa.int64())
        kind = col.kind
        if kind in ("string", "enum"):
            return pa.array(data, pa.string()) if t is str else None
        if kind in ("long", "int"):
            if t is not int:
                return None
            lo, hi = _LONG if kind == "long" else _INT
            present = [x for x in data if x is not None] if col.nullable else data
            if min(present) < lo or max(present) >= hi:
                return None
            return pa.array(data, pa.int64() if kind == "long" else pa.int32())
        if kind == "double":
            return pa.array(data, pa.float64()) if t is float else None
        if kind == "boolean":
            return pa.array(data, pa.bool_()) if t is bool else None
        if kind == "decimal":
            if t is int:
                present = [x for x in data if x is not None] if col.nullable else data
                bound = 10 ** (col.precision - col.scale)
                if min(present) <= -bound or max(present) >= bound:
                    return None
                wide = pa.array(data, pa.int64()).cast(pa.decimal128(19 + col.scale, col.scale))
                return wide.cast(pa.decimal128(col.precision, col.scale))  # checked above
            if t is not str:
                return None
            dec = pa.decimal128(col.precision, col.scale)
            native = _native_text(data, dec, True, col.precision, col.scale)
            if native is not None:
                return native
            text = pa.array(data, pa.string())
            if pc.any(pc.invert(pc.match_substring_regex(text, col.regex))).as_py():
                return None
            return pc.cast(text, dec)
        if kind == "timestamp":
            if t is int:
                present = [x for x in data if x is not None] if col.nullable else data
                if min(present) < _LONG[0] or max(present) >= _LONG[1]:
                    return None
                return pa.array(data, pa.int64()).cast(_TS_UTC)
            if t is not str:
                return None
            native = _native_text(data, _TS_UTC, False, 0, 0)
            if native is not None:
                return native
            text = pa.array(data, pa.string())
            if pc.any(pc.invert(pc.match_substring_regex(text, _TS_RE))).as_py():
                return None
            return pc.cast(text, _TS_UTC)
        return None

    @staticmethod
    def _plaintexts(
        field: PiiField, data: list[Any], subjects: list[Any]
    ) -> tuple[list[int] | None, list[str], list[bytes]] | None:
        """A PII column's rows with a value (None: all of them), their subjects and the values
        encoded in their plain type; None when a value has no data subject."""
        if None in data:
            rows: list[int] | None = [i for i, value in enumerate(data) if value is not None]
            assert rows is not None
            values = [data[i] for i in rows]
            owners = [subjects[i] for i in rows]
        else:
            rows, values, owners = None, data, subjects
        if not set(map(type, owners)) <= {str} or "" in owners:
            return None  # no data subject: the record path names the error
        return rows, owners, field.encode_many(values)
