"""Column-wise decoding of Confluent wire-format Avro records into Arrow: no Python per record.

Records are ``0x00 + 4-byte schema id + Avro binary body``. All bodies of one batch are joined
into one byte buffer; each field of the (flat) writer schema is then parsed for *every* record
at once with numpy: a cursor per record, varints read from a ``(n, 10)`` byte gather, strings
gathered into an Arrow string array through prefix sums. Type mapping (mirrors
``core.avro.vector``, in reverse):

- ``string`` -> string (UTF-8 validated by Arrow); ``bytes`` -> binary
- ``long`` / ``int`` -> int64; ``long`` + ``timestamp-micros`` -> int64 micros
- ``boolean`` -> bool; ``double`` / ``float`` -> float64
- ``enum`` -> string (the symbol)
- ``bytes`` + ``decimal`` (at most 8 bytes unscaled) -> decimal128(38, scale)
- ``["null", T]`` / ``[T, "null"]`` of those -> nullable

Anything else (nested records, arrays, maps, fixed, wider decimals, bad magic byte, unknown
schema id, a cursor running past its record, invalid UTF-8, an out-of-range enum index or a
timestamp outside Python's datetime range) raises ``Unsupported``; the caller then folds the
whole batch on the per-record (fastavro) path, which is the reference and owns every error
decision (poison events, quarantine). So this module never decides anything fastavro would
decide differently: it either produces exactly fastavro's values or declines.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from core.ports.eventlog import EncodedBatch, Headers, RecordColumns, StoredRecord
from domain.envelope import H_TENANT, H_TYPE, duplicated_envelope_header, duplicated_envelope_name

try:
    from hub_native import (  # type: ignore[import-not-found,unused-ignore]
        avro_columns as _avro_columns,
    )
    from hub_native import (  # type: ignore[import-not-found,unused-ignore]
        envelope_columns as _envelope_columns,
    )
except ImportError:  # not built (no cargo): the numpy reference runs
    _avro_columns = None
    _envelope_columns = None
try:  # native/src/stored_avro.rs (newer than the two above: a stale build lacks it)
    from hub_native import (  # type: ignore[import-not-found,unused-ignore]
        stored_avro_columns as _stored_avro_columns,
    )
except ImportError:
    _stored_avro_columns = None

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]

_PAD = 16


_AR8 = np.arange(8, dtype=np.int64)
# Python's datetime range in microseconds since the epoch, a day inside each end (fastavro
# turns timestamp-micros into datetimes and fails outside it).
_MIN_US = -62_135_596_800_000_000 + 86_400_000_000
_MAX_US = 253_402_300_799_999_999 - 86_400_000_000


class Unsupported(Exception):
    """The batch cannot be decoded column-wise exactly; use the per-record path."""


class _Cursor:
    __slots__ = ("buf", "cur", "end")

    def __init__(self, buf: U8, cur: I64, end: I64) -> None:
        self.buf, self.cur, self.end = buf, cur, end

    def check(self) -> None:
        if len(self.cur) and bool((self.cur > self.end).any()):
            raise Unsupported("a record is shorter than its schema")

    def varint(self) -> I64:
        """Zig-zag varints (Avro int/long) at every cursor; advances them. One numpy pass per
        byte position, over only the records whose varint is still going (most are short)."""
        cur = self.cur
        b = self.buf[cur]
        z = (b & 0x7F).astype(np.uint64)
        nbytes = np.ones(len(cur), np.int64)
        active = np.flatnonzero(b & 0x80)
        k = 1
        while active.size:
            if k == 10:
                raise Unsupported("a varint longer than 10 bytes")
            bb = self.buf[cur[active] + k]
            z[active] |= (bb & 0x7F).astype(np.uint64) << np.uint64(7 * k)
            nbytes[active] += 1
            active = active[(bb & 0x80) != 0]
            k += 1
        self.cur = cur + nbytes
        self.check()
        out: I64 = (z >> np.uint64(1)).astype(np.int64) ^ -((z & np.uint64(1)).astype(np.int64))
        return out

    def lengths(self) -> I64:
        n = self.varint()
        if len(n) and (bool((n < 0).any()) or bool((self.cur + n > self.end).any())):
            raise Unsupported("a length runs past its record")
        return n

    def raw(self, n: I64) -> tuple[pa.Buffer, pa.Buffer]:
        """Offsets (int32) and data buffers of the ``n`` bytes at every cursor; advances them."""
        offsets = np.zeros(len(n) + 1, np.int64)
        np.cumsum(n, out=offsets[1:])
        total = int(offsets[-1])
        if total >= 2**31:
            raise Unsupported("more than 2 GiB of strings in one batch")
        idx = np.repeat(self.cur - offsets[:-1], n) + np.arange(total, dtype=np.int64)
        data = self.buf[idx]
        self.cur = self.cur + n
        return pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)

    def fixed(self, width: int) -> U8:
        m = self.buf[self.cur[:, None] + np.arange(width, dtype=np.int64)[None, :]]
        self.cur = self.cur + width
        self.check()
        return m


def _resolve(t: Any, named: Mapping[str, Any]) -> Any:
    return named[t] if isinstance(t, str) and t in named else t


def _decimal_array(c: _Cursor, scale: int) -> pa.Array:
    n = c.lengths()
    if len(n) and bool((n > 8).any()):
        raise Unsupported("a decimal wider than 64 bits")
    b = c.buf[c.cur[:, None] + _AR8].astype(np.uint64)
    shift = (n[:, None] - 1 - _AR8[None, :]) * 8
    keep = _AR8[None, :] < n[:, None]
    b[~keep] = 0
    u = (b << np.where(keep, shift, 0).astype(np.uint64)).sum(axis=1, dtype=np.uint64)
    v = u.view(np.int64).copy()
    neg = (n > 0) & (n < 8) & ((c.buf[c.cur] & 0x80) != 0)
    v[neg] -= np.left_shift(np.int64(1), (8 * n[neg]).astype(np.int64))
    c.cur = c.cur + n
    words = np.empty((len(v), 2), np.int64)
    words[:, 0] = v
    words[:, 1] = v >> 63
    return pa.Array.from_buffers(pa.decimal128(38, scale), len(v), [None, pa.py_buffer(words)])


def _value(c: _Cursor, t: Any, named: Mapping[str, Any]) -> pa.Array:
    """Parse one non-union Avro type at every cursor."""
    t = _resolve(t, named)
    if isinstance(t, Mapping):
        kind, logical = t.get("type"), t.get("logicalType")
        if kind == "enum":
            idx = c.varint()
            symbols = list(t["symbols"])
            if len(idx) and (bool((idx < 0).any()) or bool((idx >= len(symbols)).any())):
                raise Unsupported("an enum index out of range")
            return pa.array(symbols, pa.string()).take(pa.array(idx))
        if kind == "bytes" and logical == "decimal":
            return _decimal_array(c, int(t.get("scale", 0)))
        if kind == "long" and logical == "timestamp-micros":
            v = c.varint()
            if len(v) and (bool((v < _MIN_US).any()) or bool((v > _MAX_US).any())):
                raise Unsupported("a timestamp outside Python's datetime range")
            return pa.array(v, pa.int64())
        if logical is not None or kind in ("record", "error", "array", "map", "fixed"):
            raise Unsupported(f"type {kind}/{logical}")
        t = kind
    if t in ("long", "int"):
        return pa.array(c.varint(), pa.int64())
    if t in ("string", "bytes"):
        n = c.lengths()
        offsets, data = c.raw(n)
        arr = pa.Array.from_buffers(
            pa.string() if t == "string" else pa.binary(), len(n), [None, offsets, data]
        )
        if t == "string":
            try:
                arr.validate(full=True)
            except pa.ArrowInvalid as exc:
                raise Unsupported("invalid UTF-8") from exc
        return arr
    if t == "boolean":
        m = c.fixed(1)[:, 0]
        if len(m) and bool((m > 1).any()):
            raise Unsupported("a boolean byte other than 0/1")
        return pa.array(m.astype(bool))
    if t == "double":
        return pa.array(c.fixed(8).copy().view("<f8")[:, 0])
    if t == "float":
        return pa.array(c.fixed(4).copy().view("<f4")[:, 0].astype(np.float64))
    if t == "null":
        return pa.nulls(len(c.cur))
    raise Unsupported(f"type {t!r}")


def decode_bodies(buf: U8, cur: I64, end: I64, schema: Mapping[str, Any]) -> pa.Table:
    """Every field of a flat record ``schema`` (fastavro-parsed) for the bodies at ``cur``."""
    if not isinstance(schema, Mapping) or schema.get("type") not in ("record", "error"):
        raise Unsupported("not a record schema")
    named = schema.get("__named_schemas", {})
    c = _Cursor(buf, cur, end)
    cols: dict[str, pa.Array] = {}
    for f in schema["fields"]:
        t = _resolve(f["type"], named)
        if isinstance(t, list):
            if len(t) != 2 or "null" not in t:
                raise Unsupported("a union other than [null, T]")
            null_index = t.index("null")
            branch = c.varint()
            if len(branch) and bool(((branch != 0) & (branch != 1)).any()):
                raise Unsupported("a union branch out of range")
            present = branch != null_index
            sub = _Cursor(buf, c.cur[present], end[present])
            got = _value(sub, t[1 - null_index], named)
            c.cur = c.cur.copy()
            c.cur[present] = sub.cur
            take = np.full(len(branch), -1, np.int64)
            take[present] = np.arange(int(present.sum()), dtype=np.int64)
            cols[f["name"]] = got.take(pa.array(take, mask=~present))
        else:
            cols[f["name"]] = _value(c, t, named)
        c.check()
    return pa.table(cols)


def decode_values(
    values: Sequence[bytes | None],
    schema_of: Callable[[int], Mapping[str, Any]],
) -> tuple[pa.Table, I64]:
    """Decode wire-format ``values``: (fields table in input order, schema id per value).

    Natively (``hub_native.avro_columns``) when the extension is built, every value has the
    first one's schema id and the schema's fields are all of the kinds it takes; otherwise (and
    for every decision the native decoder leaves to it) by :func:`decode_values_py`, the
    reference, which gives equal columns and the same ``Unsupported`` messages."""
    native = _native_decode(values, schema_of)
    if native is not None:
        return native
    return decode_values_py(values, schema_of)


def decode_values_py(
    values: Sequence[bytes | None],
    schema_of: Callable[[int], Mapping[str, Any]],
) -> tuple[pa.Table, I64]:
    """The reference of :func:`decode_values`, in numpy.

    Values of several schema ids are decoded per id and combined (a field missing from one
    schema is null in its rows; the same field with two Arrow types declines)."""
    n = len(values)
    if not n:
        raise Unsupported("no records")
    if any(v is None for v in values):
        raise Unsupported("a null value")
    lens = np.fromiter(map(len, values), np.int64, n)  # type: ignore[arg-type]
    if bool((lens < 5).any()):
        raise Unsupported("a value shorter than the wire-format prefix")
    blob = b"".join(values)  # type: ignore[arg-type]
    buf = np.empty(len(blob) + _PAD, np.uint8)
    buf[: len(blob)] = np.frombuffer(blob, np.uint8)
    buf[len(blob) :] = 0
    end = np.cumsum(lens)
    start = end - lens
    if bool((buf[start] != 0).any()):
        raise Unsupported("a value without the wire-format magic byte")
    ids = (
        buf[start + 1].astype(np.int64) << 24
        | buf[start + 2].astype(np.int64) << 16
        | buf[start + 3].astype(np.int64) << 8
        | buf[start + 4].astype(np.int64)
    )
    first = int(ids[0])
    if not bool((ids != first).any()):
        return decode_bodies(buf, start + 5, end, schema_of(first)), ids
    parts: list[pa.Table] = []
    order: list[I64] = []
    for sid in np.unique(ids).tolist():
        sel = np.flatnonzero(ids == sid)
        parts.append(decode_bodies(buf, start[sel] + 5, end[sel], schema_of(int(sid))))
        order.append(sel)
    try:
        combined = pa.concat_tables(parts, promote_options="default")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise Unsupported(f"schemas disagree on a field type: {exc}") from exc
    return combined.take(pa.array(np.argsort(np.concatenate(order), kind="stable"))), ids


def envelope(
    recs: Sequence[StoredRecord], ids: I64, name_of: Callable[[int], str]
) -> tuple[list[str], list[str]]:
    """(tenant, event type) per record from the ``ce_tenant`` / ``ce_type`` headers (the event
    type defaults to the writer schema's name). A record carrying an envelope header twice
    raises ``Unsupported``: the caller then decodes record by record, and the reference decoder
    quarantines that record (no copy is picked, see ``domain.envelope``).
    Per record: one ``dict`` of its headers (C-level) and two lookups; the decoded strings are
    cached per distinct (header bytes, schema id)."""
    return envelope_rows([r.headers for r in recs], ids, name_of)


def envelope_rows(
    rows: Sequence[Headers], ids: I64, name_of: Callable[[int], str]
) -> tuple[list[str], list[str]]:
    """:func:`envelope` of each record's headers ``rows[i]``."""
    names: dict[int, str] = {}
    tenant_of: dict[bytes | None, str] = {None: "default"}
    type_of: dict[tuple[bytes | None, int], str] = {}
    tenants: list[str] = []
    types: list[str] = []
    for headers, sid in zip(rows, ids.tolist(), strict=True):
        h = dict(headers)
        if len(h) != len(headers) and duplicated_envelope_header(headers) is not None:
            raise Unsupported("a record carries an envelope header twice")
        t, n = h.get("ce_tenant"), h.get("ce_type")
        tenant = tenant_of.get(t)
        if tenant is None:
            tenant = tenant_of[t] = t.decode("utf-8", "replace")  # type: ignore[union-attr]
        event_type = type_of.get((n, sid))
        if event_type is None:
            if n is None:
                if sid not in names:
                    names[sid] = name_of(sid)
                event_type = names[sid]
            else:
                event_type = n.decode("utf-8", "replace")
            type_of[(n, sid)] = event_type
        tenants.append(tenant)
        types.append(event_type)
    return tenants, types


# -- the native decoder's plan and the Arrow arrays around its buffers -----------------------------
# Kind codes of native/src/avro_columns.rs.
_LONG, _TIMESTAMP, _STRING, _BYTES, _BOOLEAN, _DOUBLE, _FLOAT, _ENUM, _DECIMAL, _NULL = range(10)
_PLAIN = {
    "long": _LONG,
    "int": _LONG,
    "string": _STRING,
    "bytes": _BYTES,
    "boolean": _BOOLEAN,
    "double": _DOUBLE,
    "float": _FLOAT,
    "null": _NULL,
}
_PlanField = tuple[str, int, int, int, Any]  # name, kind, null branch (-1: not a union), aux, extra
_plans: dict[int, tuple[Mapping[str, Any], list[_PlanField] | None]] = {}


def _plan_kind(t: Any, named: Mapping[str, Any]) -> tuple[int, int, Any] | None:
    """(kind, aux, extra) of one non-union type as ``_value`` reads it; None where ``_value``
    would decline (the reference then runs and declines at the same field)."""
    t = _resolve(t, named)
    if isinstance(t, Mapping):
        kind, logical = t.get("type"), t.get("logicalType")
        if kind == "enum":
            symbols = list(t["symbols"])
            return _ENUM, len(symbols), pa.array(symbols, pa.string())
        if kind == "bytes" and logical == "decimal":
            return _DECIMAL, 0, int(t.get("scale", 0))
        if kind == "long" and logical == "timestamp-micros":
            return _TIMESTAMP, 0, None
        if logical is not None or kind in ("record", "error", "array", "map", "fixed"):
            return None
        t = kind
    if isinstance(t, str) and t in _PLAIN:
        return _PLAIN[t], 0, None
    return None


def _plan(schema: Mapping[str, Any]) -> list[_PlanField] | None:
    got = _plans.get(id(schema))
    if got is not None and got[0] is schema:
        return got[1]
    plan: list[_PlanField] | None = []
    if not isinstance(schema, Mapping) or schema.get("type") not in ("record", "error"):
        plan = None
    else:
        named = schema.get("__named_schemas", {})
        for f in schema["fields"]:
            t = _resolve(f["type"], named)
            null_index = -1
            if isinstance(t, list):
                if len(t) != 2 or "null" not in t:
                    plan = None
                    break
                null_index = t.index("null")
                t = t[1 - null_index]
            k = _plan_kind(t, named)
            if k is None or (null_index >= 0 and k[0] == _NULL):
                plan = None
                break
            assert plan is not None
            plan.append((f["name"], k[0], null_index, k[1], k[2]))
    if len(_plans) > 256:
        _plans.clear()
    _plans[id(schema)] = (schema, plan)
    return plan


def _native_decode(
    values: Sequence[bytes | None], schema_of: Callable[[int], Mapping[str, Any]]
) -> tuple[pa.Table, I64] | None:
    if _avro_columns is None or not values:
        return None
    v0 = values[0]
    if v0 is None or len(v0) < 5 or v0[0] != 0:
        return None  # the reference names the problem
    sid = int.from_bytes(v0[1:5], "big")
    try:
        plan = _plan(schema_of(sid))
    except Exception:  # an unknown id (Poison): the reference checks the values first
        return None
    if plan is None:
        return None
    got = _avro_columns(
        values if type(values) is list else list(values),
        sid,
        [(kind, null_index, aux) for _, kind, null_index, aux, _ in plan],
    )
    if got is None:
        return None  # several schema ids
    if isinstance(got, str):
        raise Unsupported(got)
    n = len(values)
    cols = {
        name: _column(kind, extra, n, *parts)
        for (name, kind, _, _, extra), parts in zip(plan, got, strict=True)
    }
    return pa.table(cols), np.full(n, sid, np.int64)


def _column(
    kind: int, extra: Any, n: int, words: bytes, valid: bytes | None, data: bytes | None
) -> pa.Array:
    mask = None if valid is None else np.frombuffer(valid, np.uint8) == 0
    if kind in (_STRING, _BYTES):
        bitmap, nulls = None, 0
        if mask is not None and mask.any():
            bitmap = pa.py_buffer(np.packbits(~mask, bitorder="little"))
            nulls = int(mask.sum())
        return pa.Array.from_buffers(
            pa.string() if kind == _STRING else pa.binary(),
            n,
            [bitmap, pa.py_buffer(words), pa.py_buffer(data or b"")],
            nulls,
        )
    if kind == _NULL:
        return pa.nulls(n)
    if kind == _BOOLEAN:
        return pa.array(np.frombuffer(words, np.uint8).astype(bool), mask=mask)
    if kind in (_DOUBLE, _FLOAT):
        return pa.array(np.frombuffer(words, np.float64), mask=mask)
    ints = np.frombuffer(words, np.int64)
    if kind == _ENUM:
        return extra.take(pa.array(ints, mask=mask))
    if kind == _DECIMAL:
        pairs = np.empty((n, 2), np.int64)
        pairs[:, 0] = ints
        pairs[:, 1] = ints >> 63
        bitmap, nulls = None, 0
        if mask is not None and mask.any():
            bitmap = pa.py_buffer(np.packbits(~mask, bitorder="little"))
            nulls = int(mask.sum())
        return pa.Array.from_buffers(
            pa.decimal128(38, extra), n, [bitmap, pa.py_buffer(pairs)], nulls
        )
    return pa.array(ints, mask=mask)


def envelope_arrays(
    recs: Sequence[StoredRecord], ids: I64, name_of: Callable[[int], str]
) -> tuple[pa.Array, pa.Array, I64]:
    """(tenant, event type, offset) columns of ``recs``: :func:`envelope` as Arrow, natively
    (``hub_native.envelope_columns``) for a batch of one schema id when the extension is
    built; the same values either way (a record carrying an envelope header twice raises
    ``Unsupported``, which the native pass does not check: it is left to the reference)."""
    heads = [r.headers for r in recs]
    repeats = list(map(len, map(dict, heads))) != list(map(len, heads))
    if (
        _envelope_columns is not None
        and len(recs)
        and not repeats
        and not bool((ids != ids[0]).any())
    ):
        got = _envelope_columns(recs if type(recs) is list else list(recs))
        if got is not None:
            offsets, tenant_idx, type_idx, tenants, types = got
            sid = int(ids[0])
            tenant_names = [
                "default" if t is None else t.decode("utf-8", "replace") for t in tenants
            ]
            type_names = [
                name_of(sid) if t is None else t.decode("utf-8", "replace") for t in types
            ]
            return (
                pa.array(tenant_names, pa.string()).take(
                    pa.array(np.frombuffer(tenant_idx, np.uint32))
                ),
                pa.array(type_names, pa.string()).take(
                    pa.array(np.frombuffer(type_idx, np.uint32))
                ),
                np.frombuffer(offsets, np.int64),
            )
    tenants_py, types_py = envelope(recs, ids, name_of)
    return (
        pa.array(tenants_py, pa.string()),
        pa.array(types_py, pa.string()),
        np.fromiter((r.offset for r in recs), np.int64, len(recs)),
    )


def envelope_of_columns(
    chunks: Sequence[RecordColumns], ids: I64, name_of: Callable[[int], str]
) -> tuple[pa.Array, pa.Array, I64]:
    """:func:`envelope_arrays` of the records of ``chunks`` in order (``ids``: their schema ids,
    in the same order), read from the header columns: each distinct ``ce_tenant`` / ``ce_type``
    value is decoded once and taken by index, no Python object per record. A chunk with headers
    per record (or a null header value) goes through :func:`envelope_rows`; the values are the
    reference's either way."""
    tenant_parts: list[pa.Array] = []
    type_parts: list[pa.Array] = []
    offset_parts: list[I64] = []
    at = 0
    for c in chunks:
        n = len(c)
        sids = ids[at : at + n]
        at += n
        offs = c.offsets
        offset_parts.append(
            np.arange(offs.start, offs.stop, dtype=np.int64)
            if type(offs) is range and offs.step == 1
            else np.fromiter(offs, np.int64, n)
        )
        got = _envelope_of_header_columns(c, sids, name_of)
        if got is None:
            tenants_py, types_py = envelope_rows(c.header_rows(), sids, name_of)
            got = pa.array(tenants_py, pa.string()), pa.array(types_py, pa.string())
        tenant_parts.append(got[0])
        type_parts.append(got[1])
    if at != len(ids):
        raise ValueError(f"{len(ids)} schema ids for {at} records: pass one id per record.")
    if len(chunks) == 1:
        return tenant_parts[0], type_parts[0], offset_parts[0]
    return (
        pa.concat_arrays(tenant_parts) if tenant_parts else pa.array([], pa.string()),
        pa.concat_arrays(type_parts) if type_parts else pa.array([], pa.string()),
        np.concatenate(offset_parts) if offset_parts else np.zeros(0, np.int64),
    )


def _only_column(c: RecordColumns, name: str) -> Sequence[bytes] | None:
    """The values of header ``name`` (an envelope header: its one column, checked by the
    caller)."""
    assert c.header_names is not None
    for j, have in enumerate(c.header_names):
        if have == name:
            return c.header_values[j]
    return None


def _decoded(col: Sequence[bytes], n: int) -> pa.Array | None:
    """``col`` as strings (UTF-8 with replacement, as the reference decodes): the distinct
    values decoded once, then taken by index. None when a value is not bytes."""
    try:
        enc = pa.array(col, pa.binary()).dictionary_encode()
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if enc.null_count or len(enc) != n:
        return None
    words = [b.decode("utf-8", "replace") for b in enc.dictionary.to_pylist()]
    return pa.array(words, pa.string()).take(enc.indices)


def _envelope_of_header_columns(
    c: RecordColumns, sids: I64, name_of: Callable[[int], str]
) -> tuple[pa.Array, pa.Array] | None:
    if c.header_names is None or len(c.header_values) != len(c.header_names):
        return None
    if duplicated_envelope_name(c.header_names) is not None:
        raise Unsupported("the records carry an envelope header twice")
    n = len(c)
    tenant_col = _only_column(c, H_TENANT)
    type_col = _only_column(c, H_TYPE)
    if tenant_col is None:
        tenants = pa.repeat(pa.scalar("default", pa.string()), n)
    elif (tenants := _decoded(tenant_col, n)) is None:
        return None
    if type_col is not None:
        if (types := _decoded(type_col, n)) is None:
            return None
    elif n and not bool((sids != sids[0]).any()):
        types = pa.repeat(pa.scalar(name_of(int(sids[0])), pa.string()), n)
    else:
        uniq, inverse = np.unique(sids, return_inverse=True)
        types = pa.array([name_of(int(s)) for s in uniq.tolist()], pa.string()).take(
            pa.array(inverse.astype(np.int64))
        )
    return tenants, types


def decode_stored(
    batches: Sequence[EncodedBatch],
    schema_of: Callable[[int], Mapping[str, Any]],
    name_of: Callable[[int], str],
) -> tuple[pa.Table, I64, pa.Array, pa.Array, I64] | None:
    """What :func:`decode_values` and :func:`envelope_of_columns` give for the records of the
    stored batches ``batches`` (in order), read in place from their bodies by one native call
    (``hub_native.stored_avro_columns``): (fields, schema id per record, tenant, event type,
    offset). No Python object per record: values and header values stay slices of the bodies.

    None when the extension is not built or the batches hold anything it leaves to the reference
    (the pair header layout, an envelope header twice, a null value, several schema ids, a
    field kind or a value it does not decode): the caller then decodes the batches
    (``EncodedColumns.columns``) and takes those two functions, which make every decision."""
    if _stored_avro_columns is None or not batches:
        return None
    plans: dict[int, list[_PlanField]] = {}

    def plan_of(sid: int) -> list[tuple[int, int, int]] | None:
        try:
            plan = _plan(schema_of(sid))
        except Exception:  # an unknown id (Poison): the reference decides
            return None
        if plan is None:
            return None
        plans[sid] = plan
        return [(kind, null_index, aux) for _, kind, null_index, aux, _ in plan]

    got = _stored_avro_columns(
        [(b.start, b.stop, b.count, b.flags, b.layout, b.body, b.pos) for b in batches], plan_of
    )
    if got is None:
        return None
    sid, parts, tenant_idx, tenant_values, type_idx, type_values = got
    if not isinstance(parts, list):
        return None  # a message or several schema ids: the reference says which
    n = sum(b.stop - b.start for b in batches)
    fields = pa.table(
        {
            name: _column(kind, extra, n, *p)
            for (name, kind, _, _, extra), p in zip(plans[sid], parts, strict=True)
        }
    )
    tenant_words = ["default" if v is None else v.decode("utf-8", "replace") for v in tenant_values]
    type_words = [name_of(sid) if v is None else v.decode("utf-8", "replace") for v in type_values]
    tenants = pa.array(tenant_words, pa.string()).take(
        pa.array(np.frombuffer(tenant_idx, np.uint32))
    )
    types = pa.array(type_words, pa.string()).take(pa.array(np.frombuffer(type_idx, np.uint32)))
    offsets = np.concatenate(
        [
            np.arange(b.base_offset + b.start, b.base_offset + b.stop, dtype=np.int64)
            for b in batches
        ]
    )
    return fields, np.full(n, sid, np.int64), tenants, types, offsets
