"""The columnar fast path for Arrow sources (Parquet): whole-column rules, vectorised encoding.

``ingest_arrow`` takes one Arrow record batch and gives exactly the result the per-record path
gives for the same rows (``IngestPipeline.ingest`` with one ``RawRecord(kind="datum")`` per
``to_pylist()`` row): same accepted values, keys, headers and order, same quarantine reasons,
rule ids, originals and counts, same dedupe.

How
1. Quality rules run over whole columns (``pyarrow.compute`` and numpy): ``required`` as null /
   empty-string masks, ``range`` as exact integer comparisons of unscaled decimals or integers,
   ``regex`` with RE2 when the pattern means the same in RE2 as in Python (else Python's regex
   over the column's distinct values), ``enum`` with ``is_in``, ``compare`` field to field,
   ``freshness`` as integer microseconds against the receipt time. Each gives a mask of rows that
   fail *or that it cannot decide exactly* (a float near a bound, a type it does not handle).
2. The Avro encoder (``avro_vector``) flags rows it cannot write exactly as fastavro would.
3. Rows in neither mask are encoded in one vectorised pass. Every other row goes through the
   per-record path (``IngestPipeline.accept_one``), which names each failure exactly as before;
   rows the masks were unsure of are accepted there if they pass. Masks may be pessimistic,
   never optimistic: a row they pass would pass the per-record rules and encode identically.
4. Natural keys and record keys are read column-wise; dedupe runs in one ordered pass, as the
   per-record path does. The accepted rows go to the log as columns (``ColumnBatch``: keys,
   values, the envelope's shared values once and the ids per row), which the log stores exactly
   as it stores the per-record path's ``Record``s.

A batch whose layout the encoder or the rules do not handle (nested rule paths, an Arrow type
without a vectorised Avro mapping, a target that cannot be resolved) is ingested by the
per-record path whole.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from functools import partial
from itertools import repeat
from operator import is_, is_not, itemgetter
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from core.avro import serde
from core.avro import vector as avro_vector
from core.errors import HubError
from core.pii import data_subject_field
from core.ports.eventlog import ColumnBatch, Headers, Record, RecordMetadata, appended_columns
from domain import envelope as env
from domain.quality import Rule, split_path
from ingest.dedupe import NK_HEADER, Deduper, DistinctKeys, KeyWindow
from ingest.groupcommit import Companion, Prior, Staged
from ingest.ids import uuid7_bytes
from ingest.pipeline import (
    BatchCache,
    IngestPipeline,
    IngestResult,
    RawRecord,
    Target,
    _Reject,
    batch_headers,
    gc_paused,
    new_records,
)

Bools = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]
Mask = Callable[[pa.RecordBatch, datetime, "_Memo"], "Bools | None"]
"""A rule's rows to send row by row (see ``_rule_mask``); None when it proves there are none."""
_I64_MAX, _I64_MIN = 2**63 - 1, -(2**63)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32")
_TS_US = {"s": 1_000_000, "ms": 1_000, "us": 1}
_T = TypeVar("_T")
column_append = True
"""Accepted rows go to the log as one ``ColumnBatch`` (``EventLog.append_columns``: no
``Record`` or header tuple per row). False: a ``Record`` per row, the reference path the
differential tests and ``benchmarks/file_columns.py`` compare with; both store the same bytes."""


# -- column access ---------------------------------------------------------------------------
class _Source:
    """Where a top-level field's values come from: a column, the schema default, or nothing."""

    __slots__ = ("column", "constant", "has_constant")

    def __init__(self, column: int = -1, constant: Any = None, has_constant: bool = False):
        self.column, self.constant, self.has_constant = column, constant, has_constant

    def array(self, rb: pa.RecordBatch) -> pa.Array:
        if self.column >= 0:
            return rb.column(self.column)
        n = rb.num_rows
        if not self.has_constant or self.constant is None:
            return pa.nulls(n)
        return pa.array([self.constant] * n)

    def pylist(self, rb: pa.RecordBatch) -> list[Any]:
        if self.column >= 0:
            return list(rb.column(self.column).to_pylist())
        return [self.constant if self.has_constant else None] * rb.num_rows


class _AllWide(set[int]):
    """Every column is "wide": a ``_Memo`` over it never hashes (the reference masks)."""

    def __contains__(self, column: object) -> bool:
        return True


class _Memo:
    """One ``bad_rows`` call's distinct values per column: one hash pass (``pc.unique``), shared
    by the regex, enum and encoder enum checks of a column, proves a whole batch clean from a few
    values. A column found too varied for that to pay is remembered in the plan's ``wide`` set
    and then checked row by row in Arrow as before (same masks either way)."""

    __slots__ = ("found", "rb", "wide")

    def __init__(self, rb: pa.RecordBatch, wide: set[int]) -> None:
        self.rb, self.wide = rb, wide
        self.found: dict[int, pa.Array] = {}

    def distinct(self, column: int) -> pa.Array | None:
        """Column ``column``'s distinct non-null values (a string column), or None."""
        if column < 0 or column in self.wide:
            return None
        got = self.found.get(column)
        if got is None:
            arr = self.rb.column(column)
            if not _is_str(arr.type):
                return None
            got = pc.unique(arr)
            if got.null_count:
                got = got.drop_null()
            if len(got) * 8 > len(arr) + 64:  # mostly distinct: the hash pass only adds work
                self.wide.add(column)
            self.found[column] = got
        return got


_ALL_WIDE = _AllWide()


def _empty(arr: pa.Array) -> Bools:
    """Rows of a string column holding "" (null rows too): their offsets, no compute kernel."""
    large = pa.types.is_large_string(arr.type)
    offs = np.frombuffer(arr.buffers()[1], dtype=np.int64 if large else np.int32)
    offs = offs[arr.offset : arr.offset + len(arr) + 1]
    out: Bools = offs[1:] == offs[:-1]
    return out


def _valid(arr: pa.Array) -> Bools:
    if arr.null_count == 0:
        return np.ones(len(arr), dtype=np.bool_)
    return np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_)


def _np_bool(arr: pa.Array) -> Bools:
    """A boolean Arrow array as numpy (null as False)."""
    return np.asarray(arr.fill_null(False).to_numpy(zero_copy_only=False), dtype=np.bool_)


def _is_str(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _ints(arr: pa.Array) -> I64:
    filled = arr.fill_null(0) if arr.null_count else arr
    return np.asarray(filled.to_numpy(zero_copy_only=False)).astype(np.int64, copy=False)


def _scaled(arr: pa.Array) -> tuple[I64, int, Bools] | None:
    """Integers or decimals as (unscaled int64, scale, rows that do not fit 64 bits)."""
    t = arr.type
    n = len(arr)
    if str(t) in _INTS:
        return _ints(arr), 0, np.zeros(n, dtype=np.bool_)
    if pa.types.is_decimal128(t):
        words = np.frombuffer(arr.buffers()[1], dtype="<i8")[2 * arr.offset : 2 * (arr.offset + n)]
        lo, hi = words[0::2], words[1::2]
        wide = hi != (lo >> np.int64(63))
        return np.where(wide, 0, lo), int(t.scale), wide
    return None


def _micros(arr: pa.Array) -> tuple[I64, Bools] | None:
    """A timestamp column (s, ms, us) as UTC microseconds; rows outside datetime's range."""
    t = arr.type
    if not pa.types.is_timestamp(t) or t.unit not in _TS_US:
        return None
    raw = _ints(arr.view(pa.int64()))
    k = _TS_US[t.unit]
    lim = avro_vector._MAX_US // k, avro_vector._MIN_US // k
    out_of_range = (raw > lim[0]) | (raw < lim[1])
    return np.where(out_of_range, 0, raw) * np.int64(k), out_of_range


def _lt(u: I64, c: int) -> Bools:
    """``u < c`` for an exact Python int ``c`` (any size)."""
    if c > _I64_MAX:
        return np.ones(u.shape, dtype=np.bool_)
    if c <= _I64_MIN:
        return np.zeros(u.shape, dtype=np.bool_)
    return u < np.int64(c)


def _exact(bound: Decimal, scale: int) -> tuple[int, int]:
    """floor and ceil of ``bound * 10**scale``, exactly."""
    with localcontext() as ctx:
        ctx.prec = 400
        x = bound.scaleb(scale)
        return int(x.to_integral_value(ROUND_FLOOR)), int(x.to_integral_value(ROUND_CEILING))


def _rescale(u: I64, by: int, bad: Bools) -> tuple[I64, Bools]:
    """``u * 10**by`` with rows that would overflow int64 marked bad (and zeroed)."""
    if by == 0:
        return u, bad
    if by > 18:
        over = u != 0
    else:
        over = np.abs(u) > np.int64(_I64_MAX // 10**by)
        over |= u == np.int64(_I64_MIN)
    bad = bad | over
    return np.where(over, 0, u) * np.int64(10 ** min(by, 18)), bad


# -- regex: RE2 when it means the same as Python ---------------------------------------------
_WS: str | None = None
_ESCAPED = set(".-+*?()[]{}|\\/^$")
_PLAIN = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _@#%&=,;:'\"/<>!~`")
_QUANT = re.compile(r"\{(\d{1,4})(,(\d{0,4}))?\}")
_PROBES = (
    "",
    "GB",
    "gb",
    "GB\n",
    "\nGB",
    "a@b.co",
    "a b@c.de",
    "a\u00a0b@c.de",
    "a\x0bb@c.de",
    "a\x1cb@c.de",
    "\u00e9t\u00e9@x.fr",
    "US1234567890ABCD",
    "GB82WEST12345698765432",
    "A" * 13,
    "AAPL",
    "BRK.B",
    "x\ny@z.ab",
)


def _whitespace() -> str:
    """Python's ``\\s`` (for str patterns) as an RE2 class body of explicit code points."""
    global _WS
    if _WS is None:
        space = re.compile(r"\s")
        _WS = "".join(f"\\x{{{c:04x}}}" for c in range(0x3001) if space.match(chr(c)))
    return _WS


def re2_pattern(pattern: str) -> str | None:
    """An RE2 pattern whose full match equals Python's ``re.fullmatch(pattern)``, or None.

    Only a conservative subset translates: ASCII literals, escaped punctuation, classes of
    ASCII characters and ranges, ``\\s`` (spelled out as Python's whitespace set), ``.``,
    groups, ``|``, greedy/lazy quantifiers, ``^`` and a final ``$``.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    prev_quant = False
    while i < n:
        c = pattern[i]
        quant = False
        if c == "\\":
            if i + 1 >= n:
                return None
            d = pattern[i + 1]
            if d == "s":
                out.append(f"[{_whitespace()}]")
            elif d in _ESCAPED:
                out.append("\\" + d)
            else:
                return None
            i += 2
        elif c == "[":
            body, i = _class(pattern, i)
            if body is None:
                return None
            out.append(body)
        elif c == "(":
            if pattern.startswith("(?", i) and not pattern.startswith("(?:", i):
                return None
            out.append("(?:" if pattern.startswith("(?:", i) else "(")
            i += 3 if pattern.startswith("(?:", i) else 1
        elif c in ")|.^":
            out.append(c)
            i += 1
        elif c == "$":
            if i != n - 1:
                return None
            out.append(c)
            i += 1
        elif c in "*+?":
            if prev_quant and c != "?":
                return None
            if prev_quant and c == "?" and out[-1].endswith("?") and len(out[-1]) == 1:
                return None
            out.append(c)
            quant = c != "?" or not prev_quant
            i += 1
        elif c == "{":
            m = _QUANT.match(pattern, i)
            if m is None or prev_quant:
                return None
            lo, hi = int(m.group(1)), m.group(3)
            if lo > 1000 or (hi and int(hi) > 1000):
                return None
            out.append(m.group(0))
            quant = True
            i = m.end()
        elif c in _PLAIN:
            out.append(c)
            i += 1
        else:
            return None
        prev_quant = quant
    translated = "\\A(?:" + "".join(out) + ")\\z"
    try:
        python = re.compile(pattern)
        rx = pa.array(list(_PROBES))
        got = _np_bool(pc.match_substring_regex(rx, pattern=translated))
    except (re.error, pa.ArrowException):
        return None
    want = [python.fullmatch(p) is not None for p in _PROBES]
    return translated if list(got) == want else None


def _class(pattern: str, i: int) -> tuple[str | None, int]:
    """Translate the character class starting at ``pattern[i] == '['``."""
    j, n = i + 1, len(pattern)
    parts = ["["]
    if j < n and pattern[j] == "^":
        parts.append("^")
        j += 1
    start = j
    if j < n and pattern[j] == "]":
        return None, j
    while j < n and pattern[j] != "]":
        c = pattern[j]
        if c == "\\":
            if j + 1 >= n:
                return None, j
            d = pattern[j + 1]
            if d == "s":
                parts.append(_whitespace())
            elif d in _ESCAPED:
                parts.append("\\" + d)
            else:
                return None, j
            j += 2
            continue
        if c in "[&|~" or (c == "-" and pattern.startswith("--", j)):
            return None, j
        if c == "-":
            at_edge = j == start or pattern[j + 1 : j + 2] == "]"
            ranged = (
                j > start
                and pattern[j - 1].isascii()
                and pattern[j - 1].isalnum()
                and pattern[j + 1 : j + 2].isascii()
                and pattern[j + 1 : j + 2].isalnum()
            )
            if not (at_edge or ranged):
                return None, j
            parts.append("\\-" if at_edge else "-")
            j += 1
            continue
        if c not in _PLAIN and c not in ".+*?(){}$^":
            return None, j
        parts.append(c)
        j += 1
    if j >= n:
        return None, j
    parts.append("]")
    return "".join(parts), j + 1


# -- rules as column masks --------------------------------------------------------------------
def _rule_mask(rule: Rule, source: Callable[[str], _Source | None]) -> Mask | None:
    """A function giving the rows ``rule`` fails or cannot decide; None if not columnar."""
    kind = rule.kind
    if kind in ("unique", "ref"):  # stateful: dedupe and ``ref_rows`` check them
        return lambda rb, now, memo: None
    srcs = [source(f) for f in rule.fields]
    if any(s is None for s in srcs):
        return None
    sources: list[_Source] = [s for s in srcs if s is not None]
    if kind == "required":

        def required(rb: pa.RecordBatch, now: datetime, memo: _Memo) -> Bools | None:
            bad = None
            for s in sources:
                arr = s.array(rb)
                if _is_str(arr.type):
                    # null rows are bad whatever ``_empty`` says of them
                    this = _empty(arr) | ~_valid(arr) if arr.null_count else _empty(arr)
                elif arr.null_count:
                    this = ~_valid(arr)
                else:
                    continue
                bad = this if bad is None else bad | this
            return None if bad is None or not bad.any() else bad

        return required
    if kind == "compare":
        return _compare_mask(rule, sources[0], sources[1])
    src = sources[0]
    if kind == "range":
        return _range_mask(rule, src)
    if kind == "regex":
        assert rule.pattern is not None and rule._regex is not None
        translated = re2_pattern(rule.pattern)
        fullmatch = rule._regex.fullmatch

        def regex(rb: pa.RecordBatch, now: datetime, memo: _Memo) -> Bools | None:
            arr = src.array(rb)
            if not _is_str(arr.type):
                return _valid(arr)
            distinct = memo.distinct(src.column)
            if distinct is not None:  # a value's verdict is the same in every row that holds it
                if translated is not None:
                    fine = _np_bool(pc.match_substring_regex(distinct, pattern=translated))
                else:
                    fine = np.array([fullmatch(v) is not None for v in distinct.to_pylist()], bool)
                if fine.all():
                    return None
                failing = distinct.filter(pa.array(~fine))
                return _np_bool(pc.is_in(arr, value_set=failing))  # no null in it: nulls pass
            valid = _valid(arr)
            if translated is not None:
                ok = _np_bool(pc.match_substring_regex(arr, pattern=translated))
            else:
                distinct = pc.unique(arr).to_pylist()
                good = [v for v in distinct if v is not None and fullmatch(v)]
                ok = _np_bool(pc.is_in(arr, value_set=pa.array(good, arr.type)))
            return valid & ~ok

        return regex
    if kind == "enum":
        values = rule.values

        def enum(rb: pa.RecordBatch, now: datetime, memo: _Memo) -> Bools | None:
            arr = src.array(rb)
            valid = _valid(arr)
            if _is_str(arr.type):
                allowed = [v for v in values if type(v) is str]
                distinct = memo.distinct(src.column) if allowed else None
                if distinct is not None and set(allowed).issuperset(distinct.to_pylist()):
                    return None
            elif str(arr.type) in _INTS and all(type(v) is int for v in values):
                allowed = list(values)
            else:
                return valid
            if not allowed:
                return valid
            return valid & ~_np_bool(pc.is_in(arr, value_set=pa.array(allowed, arr.type)))

        return enum
    if kind == "freshness":
        age = None if rule.max_age is None else rule.max_age // _US
        future = None if rule.max_future is None else rule.max_future // _US

        def fresh(rb: pa.RecordBatch, now: datetime, memo: _Memo) -> Bools:
            arr = src.array(rb)
            valid = _valid(arr)
            found = _micros(arr)
            if found is None:
                return valid
            us, unsure = found
            now_us = (now - _EPOCH) // _US
            bad = unsure.copy()
            if age is not None:
                bad |= (now_us - us) > age
            if future is not None:
                bad |= (us - now_us) > future
            return valid & bad

        return fresh
    return None


def _range_mask(rule: Rule, src: _Source) -> Mask:
    lo, hi = rule.min, rule.max

    def in_range(rb: pa.RecordBatch, now: datetime, memo: _Memo) -> Bools:
        arr = src.array(rb)
        valid = _valid(arr)
        if pa.types.is_floating(arr.type):
            f = np.asarray(arr.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.float64)
            bad = ~np.isfinite(f)
            for b in (lo, hi):
                if b is not None:  # undecidable near a bound: let the exact path decide
                    fb = float(b)
                    bad |= np.abs(f - fb) <= 1e-9 * max(1.0, abs(fb))
            if lo is not None:
                bad |= f < float(lo)
            if hi is not None:
                bad |= f > float(hi)
            out: Bools = valid & bad
            return out
        found = _scaled(arr)
        if found is None:
            return valid
        u, scale, bad = found
        if lo is not None:
            floor, ceil = _exact(lo, scale)
            bad = bad | (_lt(u, floor + 1) if rule.min_exclusive else _lt(u, ceil))
        if hi is not None:
            floor, ceil = _exact(hi, scale)
            bad = bad | (~_lt(u, ceil) if rule.max_exclusive else ~_lt(u, floor + 1))
        return valid & bad

    return in_range


def _compare_mask(rule: Rule, sa: _Source, sb: _Source) -> Mask:
    op = rule.op

    def compare(rb: pa.RecordBatch, now: datetime, memo: _Memo) -> Bools:
        a, b = sa.array(rb), sb.array(rb)
        both = _valid(a) & _valid(b)
        ta, tb = a.type, b.type
        if _is_str(ta) and _is_str(tb):
            if ta != tb:
                a, b = a.cast(pa.large_string()), b.cast(pa.large_string())
            return both & ~_np_bool(_ARROW_OPS[op](a, b))
        x = y = None
        unsure = np.zeros(len(a), dtype=np.bool_)
        fa, fb = _scaled(a), _scaled(b)
        if fa is not None and fb is not None:
            (ua, sa_, wa), (ub, sb_, wb) = fa, fb
            unsure = wa | wb
            s = max(sa_, sb_)
            ua, unsure = _rescale(ua, s - sa_, unsure)
            ub, unsure = _rescale(ub, s - sb_, unsure)
            x, y = ua, ub
        elif pa.types.is_timestamp(ta) and pa.types.is_timestamp(tb):
            if (ta.tz is None) != (tb.tz is None):
                return both  # naive vs aware: TypeError in Python, a failure
            ma, mb = _micros(a), _micros(b)
            if ma is None or mb is None:
                return both
            x, y, unsure = ma[0], mb[0], ma[1] | mb[1]
        elif pa.types.is_date32(ta) and pa.types.is_date32(tb):
            x, y = _ints(a.view(pa.int32())), _ints(b.view(pa.int32()))
        if x is None or y is None:
            return both
        return both & (unsure | ~_NP_OPS[op](x, y))

    return compare


_ARROW_OPS: Mapping[str, Callable[[Any, Any], Any]] = {
    "<": pc.less,
    "<=": pc.less_equal,
    "==": pc.equal,
    "!=": pc.not_equal,
    ">=": pc.greater_equal,
    ">": pc.greater,
}
_NP_OPS: Mapping[str, Callable[[Any, Any], Bools]] = {
    "<": np.less,
    "<=": np.less_equal,
    "==": np.equal,
    "!=": np.not_equal,
    ">=": np.greater_equal,
    ">": np.greater,
}


# -- keys ---------------------------------------------------------------------------------------
def _objects(arr: pa.Array) -> list[Any]:
    """A string or binary column as Python objects (None for null): ``to_pylist``, faster."""
    return list(arr.to_numpy(zero_copy_only=False).tolist())


def _load_prefixed_bytes() -> Any:
    try:
        import hub_native
    except ImportError:  # not built: the Arrow join below
        return None
    return getattr(hub_native, "prefixed_bytes", None)


_native_prefixed_bytes = _load_prefixed_bytes()


def _prefixed(prefix: str, arr: pa.Array) -> list[bytes | None]:
    """``prefix`` + each row's UTF-8 bytes (None for null) of a string column: one native pass
    over the column's buffers (string_objects.rs, ~0.14 ms per 10,000 rows against ~0.37 ms),
    or the reference, Arrow's join, cast to binary, as Python objects."""
    if _native_prefixed_bytes is not None and arr.type == pa.string():
        valid, offsets, data = arr.buffers()
        out: list[bytes | None] = _native_prefixed_bytes(
            offsets, data, valid, arr.offset, len(arr), prefix.encode()
        )
        return out
    return _objects(pc.binary_join_element_wise(pa.scalar(prefix), arr, "").cast(pa.binary()))


def _texts(src: _Source, rb: pa.RecordBatch) -> list[str | None]:
    """``str`` of each row's value (None stays None), as the per-record path makes keys."""
    if src.column >= 0:
        arr = rb.column(src.column)
        if _is_str(arr.type):
            return _objects(arr)
        return [None if v is None else str(v) for v in arr.to_pylist()]
    value = src.constant if src.has_constant else None
    return [None if value is None else str(value)] * rb.num_rows


class ArrowPlan:
    """A target's columnar work for one Arrow layout (see the module docstring)."""

    def __init__(
        self,
        encoder: avro_vector.VectorEncoder,
        masks: Sequence[Mask],
        key_source: _Source | None,
        unique: Sequence[tuple[Rule, Sequence[_Source]]],
    ) -> None:
        self.encoder, self.masks = encoder, tuple(masks)
        self.key_source, self.unique = key_source, tuple(unique)
        # The encoder's enum checks (``index_in`` per row) go through the batch's distinct
        # values like the rules' (a rule enum and the Avro enum usually share the column); the
        # other fields' checks stay the encoder's own.
        fields = encoder.fields
        self._enums = tuple(
            (f, avro_vector.VectorEncoder((f,))) for f in fields if f.kind == "enum"
        )
        self._rest = avro_vector.VectorEncoder(tuple(f for f in fields if f.kind != "enum"))
        self._wide: set[int] = set()  # columns with too many distinct values (``_Memo``)

    def bad_rows(self, rb: pa.RecordBatch, now: datetime) -> Bools:
        """Rows to decide row by row: the encoder's ``bad_rows`` or'ed with every rule mask
        (``bad_rows_reference``), cheaper for the usual all-good batch: checks whose column
        proves clean (no null where none may be, every distinct value allowed) add nothing."""
        memo = _Memo(rb, self._wide)
        bad = self._rest.bad_rows(rb)
        for f, one in self._enums:
            arr = rb.column(f.column)
            distinct = memo.distinct(f.column) if f.nullable or not arr.null_count else None
            if distinct is None or not set(f.symbols).issuperset(distinct.to_pylist()):
                bad |= one.bad_rows(rb)
        for mask in self.masks:
            found = mask(rb, now, memo)
            if found is not None:
                bad |= found
        return bad

    def bad_rows_reference(self, rb: pa.RecordBatch, now: datetime) -> Bools:
        """``bad_rows`` without the distinct-value proofs: the encoder's whole check and every
        mask row by row (``test_columnar_bad_rows`` compares the two)."""
        memo = _Memo(rb, _ALL_WIDE)
        bad = self.encoder.bad_rows(rb)
        for mask in self.masks:
            found = mask(rb, now, memo)
            if found is not None:
                bad |= found
        return bad

    def keys(self, rb: pa.RecordBatch) -> list[bytes | None]:
        if self.key_source is None:
            return [None] * rb.num_rows
        src = self.key_source
        if src.column >= 0 and _is_str(rb.column(src.column).type):
            return _objects(rb.column(src.column).cast(pa.binary()))
        return [None if k is None else k.encode() for k in _texts(src, rb)]

    def header_values(self, rb: pa.RecordBatch, r: int) -> list[bytes | None] | None:
        """The ``hub-natural-key`` header values of unique rule ``r`` for every row, if cheap."""
        rule, sources = self.unique[r]
        if len(sources) != 1 or sources[0].column < 0:
            return None
        arr = rb.column(sources[0].column)
        if not _is_str(arr.type):
            return None
        return _prefixed(f"{rule.id}\x1f", arr)

    def natural_keys(self, rb: pa.RecordBatch) -> list[list[str | None]]:
        out = []
        for _, sources in self.unique:
            cols = [_texts(s, rb) for s in sources]
            if len(cols) == 1:
                out.append(cols[0])
            else:
                out.append(
                    [
                        None if any(p is None for p in parts) else "\x1f".join(parts)
                        for parts in zip(*cols, strict=True)
                    ]
                )
        return out


def dedupe_one(
    values: Sequence[bytes | None],
    nks: Sequence[str | None],
    window: KeyWindow,
    seen: set[str],
) -> tuple[list[int], list[int], list[str | None]]:
    """One ``unique`` rule's decision for a batch, column-wise: the rows kept (a value and
    either no natural key or the first row of a key that neither ``window`` nor ``seen`` holds),
    the duplicate rows and the kept rows' keys, each in row order; rows without a value are
    neither. It is the row loop it replaced (``test_columnar_dedupe`` compares the two) in C-level
    passes: a row loop in Python cost ~5x the fast path's checks once a batch held one
    duplicate, so a file published again with a few new rows went row by row."""
    n = len(nks)
    every = np.ones(n, np.bool_)
    # ``None in`` is one C-level scan; the masks are built only for batches that need them.
    valid = np.fromiter(map(is_not, values, repeat(None)), np.bool_, n) if None in values else every
    keyless = np.fromiter(map(is_, nks, repeat(None)), np.bool_, n) if None in nks else ~every
    if valid is every and not keyless.any():
        rows: Sequence[int] = range(n)
        keyed = cast("Sequence[str]", nks)
    else:
        rows = np.flatnonzero(valid & ~keyless).tolist()
        keyed = _pick(rows, nks)  # type: ignore[arg-type]
    # Key -> its first row: zip in reverse, so each key's earliest row is written last.
    first = dict(zip(reversed(keyed), reversed(rows), strict=True))
    known = window.common(first.keys())
    if seen:
        known |= seen.intersection(first)
    for k in known:
        del first[k]
    kept = np.zeros(n, np.bool_)
    kept[np.fromiter(first.values(), np.intp, len(first))] = True
    kept |= valid & keyless
    keep = np.flatnonzero(kept).tolist()
    dups = np.flatnonzero(valid & ~keyless & ~kept).tolist()
    return keep, dups, list(_pick(keep, nks))


def _pick(at: list[int], seq: Sequence[_T]) -> Sequence[_T]:
    """The items at ``at`` (one C-level ``itemgetter`` call; it answers an item alone for one)."""
    if not at:
        return []
    if len(at) == 1:
        return [seq[at[0]]]
    return itemgetter(*at)(seq)  # type: ignore[no-any-return]


def _header_column(
    hvals: list[bytes | None] | None, prefix: str, keep: list[int], keys: Sequence[str | None]
) -> list[bytes]:
    """The ``hub-natural-key`` header of every kept row (each has a key)."""
    if hvals is not None:
        return list(_pick(keep, hvals))  # type: ignore[arg-type]
    return [(prefix + nk).encode() for nk in keys]  # type: ignore[operator]


def build_plan(t: Target, schema: pa.Schema, key_field: str | None) -> ArrowPlan | None:
    """The columnar plan of target ``t`` for batches of ``schema``; None if not columnar."""
    parsed = t.schema.parsed
    if not isinstance(parsed, dict) or t.encrypts:
        return None  # PII encryption is per record and per subject: the row path does it
    encoder = avro_vector.plan(parsed, schema)
    if encoder is None:
        return None
    named = parsed.get("__named_schemas", {})
    fields = {f["name"]: f for f in parsed["fields"]}
    names = schema.names

    def by_name(name: str) -> _Source:
        if name in names:
            return _Source(column=names.index(name))
        f = fields.get(name)
        if f is not None and "default" in f:
            return _Source(
                constant=serde._from_default(f["default"], f["type"], named), has_constant=True
            )
        return _Source()

    def source(path: str) -> _Source | None:
        parts = split_path(path)
        return by_name(parts[0]) if len(parts) == 1 else None

    masks = []
    for rule in t.rules.rules:
        mask = _rule_mask(rule, source)
        if mask is None:
            return None
        masks.append(mask)
    unique = []
    for rule in t.rules.unique:
        srcs = [source(f) for f in rule.fields]
        if any(s is None for s in srcs):
            return None
        unique.append((rule, [s for s in srcs if s is not None]))
    key_source = by_name(key_field) if key_field else None
    return ArrowPlan(encoder, masks, key_source, unique)


def decimal_columns(rb: pa.RecordBatch, parsed: Any) -> pa.RecordBatch:
    """``rb`` with its float and integer columns that feed Avro decimal fields converted to
    ``decimal128`` exactly, as the per-record path converts them (``serde._decimal``: a float by
    its shortest repr, never rounded); ``rb`` itself when any row does not convert exactly, so
    that the per-record path names each such row's problem.

    A float ``f`` converts to the unscaled integer ``u = rint(f * 10**scale)`` when
    ``u / 10**scale`` reads back as ``f`` and ``|u| < 2**50``: then the float's shortest repr
    has at most ``scale`` decimals and equals ``u / 10**scale`` (floats that large are closer
    together than ``10**-scale``, so no other decimal of that scale reads back as ``f``).
    """
    fields = serde.decimal_fields(parsed)
    names = rb.schema.names
    columns = list(rb.columns)
    changed = False
    for name, schema in fields:
        if name not in names:
            continue
        i = names.index(name)
        arr = columns[i]
        if not (pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type)):
            continue
        scale, precision = int(schema.get("scale", 0)), int(schema["precision"])
        if precision > 18 or scale > 18:
            return rb
        valid = _valid(arr)
        if pa.types.is_floating(arr.type):
            f = np.asarray(arr.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.float64)
            with np.errstate(all="ignore"):
                u_f = np.rint(f * float(10**scale))
                ok = np.isfinite(u_f) & (np.abs(u_f) < 2.0**50)
                u = np.where(ok, u_f, 0.0).astype(np.int64)
                ok &= (u.astype(np.float64) / float(10**scale)) == f
        else:
            if pa.types.is_uint64(arr.type) and (pc.max(arr).as_py() or 0) >= 2**62:
                return rb
            ints = np.asarray(arr.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
            ok = np.abs(ints) < 10 ** (18 - scale)
            u = np.where(ok, ints, 0) * np.int64(10**scale)
        ok &= np.abs(u) < 10**precision
        if not bool(ok[valid].all()):
            return rb  # the per-record path refuses those rows with their reason
        words = np.empty((len(u), 2), dtype=np.int64)
        words[:, 0] = u
        words[:, 1] = u >> 63
        dec = pa.Array.from_buffers(
            pa.decimal128(precision, scale), len(u), [None, pa.py_buffer(words.tobytes())]
        )
        if arr.null_count:
            dec = pc.if_else(pa.array(valid), dec, pa.scalar(None, dec.type))
        columns[i] = dec
        changed = True
    if not changed:
        return rb
    return pa.RecordBatch.from_arrays(columns, names=names)


def ref_rows(pipeline: IngestPipeline, t: Target, rb: pa.RecordBatch, cache: BatchCache) -> Bools:
    """Rows a ``ref`` rule fails (the value is not a key on its topic), or every row when the
    rule's field is not a top-level column; the per-record path names each failure."""
    bad = np.zeros(rb.num_rows, dtype=np.bool_)
    names = rb.schema.names
    for rule in t.rules.refs:
        assert rule.topic is not None
        parts = split_path(rule.field)
        if len(parts) != 1 or parts[0] not in names:
            return np.ones(rb.num_rows, dtype=np.bool_)
        column = rb.column(names.index(parts[0]))
        if column.type != pa.string():
            column = column.cast(pa.string())
        known = pipeline.ref_keys(rule.topic, cache)
        present = pc.is_in(column, value_set=pa.array(list(known), pa.string()))
        missing = pc.and_(column.is_valid(), pc.invert(present.fill_null(False)))
        bad |= np.asarray(missing.to_numpy(zero_copy_only=False), dtype=np.bool_)
    return bad


def erased_rows(pipeline: IngestPipeline, t: Target, rb: pa.RecordBatch, tenant: str) -> Bools:
    """Rows naming a data subject ``tenant`` erased (one ``KeyStore.erased_among`` for the
    batch's distinct subjects, skipped while ``any_erased`` says no key was ever destroyed);
    the per-record path refuses them with their reason."""
    none = np.zeros(rb.num_rows, dtype=np.bool_)
    name = data_subject_field(t.schema.text)
    pii = pipeline.publisher.pii
    if name is None or pii is None or name not in rb.schema.names:
        return none
    column = rb.column(rb.schema.names.index(name))
    keys = pii.keystore.for_tenant(tenant)
    if not _is_str(column.type) or not keys.any_erased():
        return none  # asked per batch: an erasure between two batches counts from the next
    subjects = [s for s in pc.unique(column).to_pylist() if isinstance(s, str) and s]
    erased = sorted(keys.erased_among(subjects))
    if not erased:
        return none
    found = pc.is_in(column, value_set=pa.array(erased, column.type)).fill_null(False)
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.bool_)


# -- the batch --------------------------------------------------------------------------------
def ingest_arrow(
    pipeline: IngestPipeline,
    topic: str,
    rb: pa.RecordBatch,
    **kwargs: Any,
) -> IngestResult:
    """Ingest one Arrow record batch; the same result as the per-record path gives it.

    Keyword arguments are ``IngestPipeline.ingest``'s, plus ``event_type``. The cyclic garbage
    collector is paused while the batch's objects are built (it would otherwise rescan the
    batch's hundreds of thousands of young tuples several times; none of them form cycles).
    """
    with gc_paused():
        return _ingest_arrow(pipeline, topic, rb, **kwargs)


def _ingest_arrow(
    pipeline: IngestPipeline,
    topic: str,
    rb: pa.RecordBatch,
    *,
    source: str,
    producer: str | None = None,
    tenant: str = "default",
    position: Mapping[str, Any] | None = None,
    consumed: int | None = None,
    done: bool = False,
    attempt: int = 1,
    event_type: str | None = None,
    originals: Callable[[Sequence[int]], list[RawRecord]] | None = None,
    force: Bools | None = None,
    companions: Sequence[Companion] = (),
) -> IngestResult:
    kwargs: dict[str, Any] = dict(
        companions=companions,
        source=source,
        producer=producer,
        tenant=tenant,
        position=position,
        consumed=consumed,
        done=done,
        attempt=attempt,
    )

    def raws(at: Sequence[int]) -> list[RawRecord]:
        """The records as the per-record path receives them: the source's own (``originals``:
        a JSON line with its bytes, an Avro datum) or the batch's rows as datums."""
        if originals is not None:
            return originals(at)
        rows = rb.take(pa.array(at, pa.int64())).to_pylist() if at else []
        return [RawRecord(b"", kind="datum", value=row, event_type=event_type) for row in rows]

    def per_record() -> IngestResult:
        return pipeline.ingest(topic, raws(range(rb.num_rows)), **kwargs)

    pipeline.log.topic(topic)  # raises TopicNotFound
    n = rb.num_rows
    if n == 0:
        return per_record()
    try:
        t = pipeline.target(topic, event_type, tenant)
    except HubError:
        return per_record()  # every row gets the target's error as its reason
    rb = decimal_columns(rb, t.plain.parsed)  # float / int prices into decimals, exactly
    key_field = pipeline.publisher.targets.key_field(topic)
    plan = pipeline.arrow_plan(t, rb.schema, key_field, build_plan)
    if plan is None:
        return per_record()
    producer = producer or source
    now = datetime.now(UTC)
    compiled = pipeline.compiled(t)

    # 1-3. Rules and encoding, column-wise; unsure or failing rows go row by row.
    cache = BatchCache()
    bad = (
        plan.bad_rows(rb, now)
        | erased_rows(pipeline, t, rb, tenant)
        | ref_rows(pipeline, t, rb, cache)
    )
    if force is not None:
        bad |= force
    values: list[bytes | None]
    if not bad.any():
        values = list(plan.encoder.encode(rb, compiled.wire_header))
    else:
        values = [None] * n
        good = np.flatnonzero(~bad)
        if len(good):
            encoded = plan.encoder.encode(rb.take(pa.array(good)), compiled.wire_header)
            for i, v in zip(good.tolist(), encoded, strict=True):
                values[i] = v
    limit = pipeline.max_record_bytes
    if max(map(len, filter(None, values)), default=0) > limit:
        for i, v in enumerate(values):
            if v is not None and len(v) > limit:
                values[i] = None
                bad[i] = True
    keys = plan.keys(rb)
    nks = plan.natural_keys(rb)
    # The per-record path resolves the target at the first row it can read: a row the source
    # could not decode (a malformed JSON line) before any such row is quarantined without it.
    targets: dict[str | None, Target] = {}
    quarantined: list[tuple[int, RawRecord, _Reject, Target | None]] = []
    slow = np.flatnonzero(bad).tolist()
    if slow:
        fast = np.flatnonzero(~bad)
        first_fast = int(fast[0]) if len(fast) else n
        for i, raw in zip(slow, raws(slow), strict=True):
            if i > first_fast:
                targets.setdefault(event_type, t)
            out = pipeline.accept_one(topic, raw, targets, now, cache, tenant=tenant)
            if type(out) is _Reject:
                quarantined.append((i, raw, out, targets.get(event_type)))
                continue
            _, datum, value = out  # type: ignore[misc]
            values[i] = value
            k = datum.get(key_field) if key_field and isinstance(datum, Mapping) else None
            keys[i] = None if k is None else str(k).encode()
            for col, (_, natural_key) in zip(nks, compiled.unique, strict=True):
                col[i] = natural_key(datum)

    # 4. Dedupe (natural keys; file rows carry no event ids), headers, records: decided in the
    # topic's dedupe section in arrival order, the batches arriving meanwhile sharing one commit
    # (``ingest.groupcommit``); ``prior``: keys the group's earlier batches store.
    # Natural keys are remembered per tenant (``ingest.dedupe``, "Tenants").
    scoped = [(Deduper.scope(r.id, tenant), r) for r, _ in plan.unique]

    def decide(prior: Prior) -> Staged[IngestResult]:
        pipeline.deduper.window(topic, Deduper.id_scope(tenant))  # loads the topic's windows
        result = IngestResult()
        keep: list[int] = []
        new_keys: list[list[str]] = [[] for _ in plan.unique]
        nk_headers: list[Headers] = []
        nk_col: list[bytes] | None = (
            None  # the natural-key header's values, when every kept row has one
        )
        if not plan.unique:
            keep = [i for i, v in enumerate(values) if v is not None]
        else:
            windows = [pipeline.deduper.window(topic, s, r.window) for s, r in scoped]
            seen: list[set[str]] = [set(prior.get(s, ())) for s, _ in scoped]
            prefixes = [f"{r.id}\x1f" for r, _ in plan.unique]
            hvals = [plan.header_values(rb, r) for r in range(len(plan.unique))]
            for r, col in enumerate(hvals):  # rows decided row by row: their keys from the datum
                if col is not None:
                    for i in slow:
                        nk = nks[r][i]
                        col[i] = None if nk is None else (prefixes[r] + nk).encode()
            nk_name = NK_HEADER
            if len(plan.unique) == 1:  # the usual case, unrolled
                (w,), (seen0,), (nk0,), (new0,) = windows, seen, nks, new_keys
                h0, p0 = hvals[0], prefixes[0]
                set0 = set(nk0) if None not in values and None not in nk0 else None
                distinct = set0 is not None and len(set0) == n
                keys0 = cast("list[str]", nk0)  # no None when distinct: checked
                if distinct and w.isdisjoint(set0) and seen0.isdisjoint(set0):  # type: ignore[arg-type]
                    # Every row valid, keyed, distinct and new (the usual batch): the loop below
                    # would keep every row in order; the same result in a few C-level passes.
                    keep = list(range(n))
                    new_keys[0] = DistinctKeys(keys0, set0)  # type: ignore[arg-type]
                    nk_col = h0 if h0 is not None else [(p0 + nk).encode() for nk in keys0]
                else:  # duplicates, rows without a key or a value: still column-wise
                    keep, dups, kept_nks = dedupe_one(values, nk0, w, seen0)
                    result.duplicates += len(dups)
                    result.duplicate_indexes += dups
                    new0 += [nk for nk in kept_nks if nk is not None]
                    if keep and None not in kept_nks:
                        nk_col = _header_column(h0, p0, keep, kept_nks)
                    else:  # a kept row without a natural key has no header: rows of pairs
                        for i, nk in zip(keep, kept_nks, strict=True):
                            if nk is None:
                                nk_headers.append(())
                            else:
                                hv = h0[i] if h0 is not None else (p0 + nk).encode()
                                nk_headers.append(((nk_name, hv),))
            else:
                for i in range(n):
                    if values[i] is None:
                        continue
                    found: list[tuple[int, str]] = []
                    dup = False
                    for r in range(len(windows)):
                        nk = nks[r][i]
                        if nk is None:
                            continue
                        if nk in windows[r] or nk in seen[r]:
                            dup = True
                            break
                        found.append((r, nk))
                    if dup:
                        result.duplicates += 1
                        result.duplicate_indexes.append(i)
                        continue
                    for r, nk in found:
                        seen[r].add(nk)
                        new_keys[r].append(nk)
                    keep.append(i)
                    nk_headers.append(
                        tuple((nk_name, (prefixes[r] + nk).encode()) for r, nk in found)
                    )
        (spec,), (typ, tim, src), (caus, ten, cls, ct) = batch_headers(t, producer, tenant, now)
        h_id, h_corr = env.H_ID, env.H_CORRELATION
        fresh = uuid7_bytes(len(keep))
        if nk_col is None and plan.unique and nk_headers and set(map(len, nk_headers)) == {1}:
            nk_col = [nk[0][1] for nk in nk_headers]
        # The accepted records' headers as columns (the envelope is shared but for the two ids;
        # a natural key is one more column when every kept row has one), in the order
        # ``Envelope.to_headers`` writes them.
        names: tuple[str, ...] = (
            spec[0],
            h_id,
            typ[0],
            tim[0],
            src[0],
            h_corr,
            caus[0],
            ten[0],
            cls[0],
            ct[0],
        )
        header_columns: tuple[bytes | list[bytes], ...] = (
            spec[1],
            fresh,
            typ[1],
            tim[1],
            src[1],
            fresh,
            caus[1],
            ten[1],
            cls[1],
            ct[1],
        )
        if nk_col is not None:
            names += (NK_HEADER,)
            header_columns += (nk_col,)
        kept_keys = keys if len(keep) == n else [keys[i] for i in keep]
        kept_values = values if len(keep) == n else [values[i] for i in keep]
        uniform = not plan.unique or nk_col is not None
        accepted: Sequence[Record] | ColumnBatch
        if uniform and column_append:
            accepted = ColumnBatch(kept_keys, kept_values, names, header_columns)
        else:  # the reference: a Record with a headers tuple per row
            if nk_col is not None and not nk_headers:
                nk_headers = [((NK_HEADER, hv),) for hv in nk_col]
            if plan.unique:
                headers = [
                    (spec, (h_id, e), typ, tim, src, (h_corr, e), caus, ten, cls, ct, *nk)
                    for e, nk in zip(fresh, nk_headers, strict=True)
                ]
            else:
                headers = [
                    (spec, (h_id, e), typ, tim, src, (h_corr, e), caus, ten, cls, ct) for e in fresh
                ]
            accepted = new_records(kept_values, kept_keys, headers)  # type: ignore[arg-type]
        q_records = pipeline.quarantine_records(topic, source, quarantined, attempt, now, tenant)
        charge, release = pipeline.limit(tenant, rb.num_rows, accepted, q_records)

        def finish(metas: Sequence[RecordMetadata]) -> IngestResult:
            charge()  # stored: counted first, whatever follows
            if metas and uniform:  # for the ledger (``IngestResult.appended``); else read back
                columns = [[c] if isinstance(c, bytes) else c for c in header_columns]
                result.appended.append(
                    partial(appended_columns, topic, metas, kept_keys, kept_values, names, columns)
                )
            found = [
                (pipeline.deduper.window(topic, scope, rule.window), stored_keys)
                for (scope, rule), stored_keys in zip(scoped, new_keys, strict=True)
            ]
            return pipeline.settle(source, topic, result, len(accepted), quarantined, found)

        stored = {scope: nk for (scope, _), nk in zip(scoped, new_keys, strict=True)}
        return Staged(accepted, q_records, position, consumed, done, None, stored, finish, release)

    result: IngestResult = pipeline.committer(topic).commit(source, decide, companions)
    return result
