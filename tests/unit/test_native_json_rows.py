"""``hub_native.json_rows`` (the JSON-lines batch's native parse, ``arrowread._native_read``)
against Arrow's JSON reader (``arrowread._read``), the reference: every line the native parser
takes must be one Arrow takes, with the same values bit for bit (a float's sign and bits, a
string's bytes, a decimal's scaled integer), on random and hostile lines (duplicate and unknown
keys, escapes, ``\\u0000``, surrogates, huge numbers, ``-0``, ``1e400``, deep nesting, a BOM, a
CR, a second document). And ``json_batch`` with it equals ``json_batch`` without it: the same
batch (its IPC bytes) and the same rows left to the per-record path."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from ingest import arrowread
from ingest.arrowread import _native_read, _read, json_batch, layout
from ingest.lines import Lines
from tests.unit.test_arrow_readers import PARSED_DICT

hub_native = pytest.importorskip("hub_native")

_LAY = layout(PARSED_DICT)
assert _LAY is not None
LAY = _LAY

_STRINGS = [
    '"a"',
    '""',
    '"é日本"',
    '"\\u00e9"',
    '"\\u0000"',
    '"a\\u0000b"',
    '"\\ud83d\\ude00"',  # a surrogate pair
    '"\\uD83D\\uDE00"',
    '"\\ud83d"',  # lone high
    '"\\ude00"',  # lone low
    '"\\ude00\\ud83d"',  # reversed
    '"\\ud83dx"',
    '"\\ud83d\\u0041"',
    '"\\/\\b\\f\\n\\r\\t\\"\\\\"',
    '"\\x"',
    '"\\u12"',
    '"\\uZZZZ"',
    '"\\u"',
    '"a\x01"',
    '"\x7f"',
    '"a\tb"',
    '"\udcff"',  # raw bytes (surrogateescape): 0xFF, not UTF-8
    '"\udced\udca0\udc80"',  # a surrogate as raw (CESU) bytes
    '"\udcc0\udcaf"',  # overlong
    '"\udcf4\udc90\udc80\udc80"',  # above U+10FFFF
    '"abc',
    "5",
    "true",
    "{}",
    "[]",
    '{"x": 1}',
    '"' + "x" * 300 + '"',
]
_INTS = [
    "0",
    "-0",
    "1",
    "-1",
    "01",
    "1.0",
    "1e3",
    "1E3",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "123456789012345678",
    "-123456789012345678",
    "1234567890123456789",
    "-",
    "+1",
    '"5"',
    "true",
    "2147483648",
    "-2147483649",
    "2147483647",
    "99999999999999999999999",
    "[1]",
]
_FLOATS = [
    "0",
    "-0",
    "-0.0",
    "0.0",
    "0.5",
    "1e400",
    "-1e400",
    "1e-400",
    "2.5e-310",
    "4.9e-324",
    "1e-324",
    "1E5",
    "1e+5",
    "1e-5",
    "1.",
    ".5",
    "01.5",
    "-01",
    "1.7976931348623157e308",
    "1.7976931348623159e308",
    "123456789012345678901234567890",
    "0.1",
    "0.30000000000000004",
    "3.4e38",
    "3.5e38",
    "16777217",
    "NaN",
    "Infinity",
    "-Infinity",
    '"1"',
    "1e",
    "1e+",
    "--1",
    "9007199254740993",
    "2.2250738585072011e-308",
]
_BOOLS = ["true", "false", "True", "1", '"true"', "tru", "falsey", "nul"]
_DECIMALS = [  # decimal(10, 2)
    '"1.25"',
    '"1"',
    '"0"',
    '"-0"',
    '"-0.00"',
    '"00.5"',
    '"0.5"',
    '"0.05"',
    '".5"',
    '"1."',
    '"+1"',
    '"1e2"',
    '"1.255"',
    '"12345678.9"',
    '"123456789.12"',
    '"99999999.99"',
    '"-99999999.99"',
    '"100000000.00"',
    '"0000000000001"',
    '"0000001.5"',
    "1.25",
    "1",
    '"x"',
    '"-"',
    '"1.2.3"',
    '" 1"',
    '"1 "',
    '"\\u0031"',
    '""',
    '"1.20"',
]
_TIMES = ['"2026-11-25T14:30:00Z"', '"2026-02-30T10:00:00Z"', '"x"', "5", '"\\u0032026"']
_DATES = ['"2026-11-25"', '"2026-02-30"', "5"]
_ENUMS = ['"USD"', '"EUR"', '"usd"', '""', "3"]

POOLS: dict[str, list[str]] = {
    "s": _STRINGS,
    "l": _INTS,
    "i": _INTS,
    "d": _FLOATS,
    "f": _FLOATS,
    "b": _BOOLS,
    "e": _ENUMS,
    "q": _DECIMALS,
    "ts": _TIMES,
    "dt": _DATES,
    "nl": _INTS,
    "venue": _STRINGS,
}
GOOD = {
    "s": '"a"',
    "l": "1",
    "i": "2",
    "d": "0.5",
    "f": "1.5",
    "b": "true",
    "e": '"USD"',
    "q": '"1.25"',
    "ts": '"2026-11-25T14:30:00Z"',
    "dt": '"2026-11-25"',
    "nl": "1",
    "venue": '"XNAS"',
}


def _sp(rng: random.Random) -> str:
    return rng.choice(["", "", "", " ", "  "])


def _value(rng: random.Random, name: str) -> str:
    r = rng.random()
    if r < 0.02:
        return "null"
    if r < 0.03:  # deep nesting
        d = rng.choice([2, 50, 2000])
        return "[" * d + "1" + "]" * d
    if r < 0.88:
        return GOOD[name]
    return rng.choice(POOLS[name])


def random_line(rng: random.Random) -> bytes:
    names = list(POOLS)
    if rng.random() < 0.5:
        rng.shuffle(names)
    parts = []
    for name in names:
        if rng.random() < 0.05:
            continue  # missing
        key = f'"{name}"'
        if rng.random() < 0.01:
            key = '"\\u0073"' if name == "s" else f'"{name}\\u0020"'  # a key through an escape
        parts.append(f"{key}{_sp(rng)}:{_sp(rng)}{_value(rng, name)}")
    r = rng.random()
    if r < 0.03:
        parts.append(f'"{rng.choice(names)}": {GOOD[rng.choice(names)]}')  # a repeated key
    elif r < 0.05:
        parts.append('"zz": 1')  # unknown
    elif r < 0.06:
        parts.append('"s" 1')  # no colon
    sep = "," + _sp(rng)
    text = _sp(rng) + "{" + _sp(rng) + sep.join(parts) + _sp(rng) + "}" + _sp(rng)
    r = rng.random()
    if r < 0.02:
        text += '{"s": "b"}'  # a second document
    elif r < 0.03:
        text = text.rstrip()[:-1] + ",}"  # a trailing comma
    elif r < 0.04:
        text += "x"
    elif r < 0.05:
        text = "\ufeff" + text  # a BOM
    elif r < 0.06:
        text += "\r"
    elif r < 0.07:
        text = text.replace(" ", "\t")
    elif r < 0.075:
        text = "{}"
    elif r < 0.08:
        text = text[: rng.randrange(len(text))]  # cut short
    return text.encode("utf-8", "surrogateescape")  # the pools' raw bytes as they are


def _bits(t: pa.Table) -> list[Any]:
    """The table's values as comparable Python values, floats by their bits (-0.0 vs 0.0)."""
    out = []
    for col in t.columns:
        arr = col.combine_chunks()
        if pa.types.is_floating(arr.type):
            bits = np.asarray(arr.fill_null(0.0).to_numpy()).view(np.int64).tolist()
            out.append((arr.is_valid().to_pylist(), bits))
        else:
            out.append(arr.to_pylist())
    return out


def _arrow_one(line: bytes) -> pa.Table | None:
    parsed: list[Any] = []
    force = np.zeros(1, dtype=np.bool_)
    _read(Lines.texts([line]), [0], LAY.read_schema, parsed, force)
    return None if force[0] else parsed[0][1]


def _native_one(line: bytes) -> pa.Table | None:
    parsed: list[Any] = []
    left = _native_read(Lines.texts([line]), np.array([0], dtype=np.int64), LAY, parsed)
    return None if len(left) else parsed[0][1]


def test_native_rows_are_arrows_rows_on_random_lines() -> None:
    rng = random.Random(1913)
    taken = arrow_took = 0
    for _ in range(6000):
        line = random_line(rng)
        native = _native_one(line)
        arrow = _arrow_one(line)
        if arrow is not None:
            arrow_took += 1
        if native is None:
            continue
        taken += 1
        assert arrow is not None, line  # taken natively, so Arrow takes it too
        assert native.schema.equals(arrow.schema)
        assert _bits(native) == _bits(arrow), line
    # not vacuous: the native parser takes most of what Arrow takes here
    assert taken > 1000 and taken > 0.8 * arrow_took, (taken, arrow_took)


HOSTILE = [
    b'{"s": "a", "s": "b"}',
    b'{"s": "a"} {"s": "b"}',
    b'{"s": "a"}{}',
    b'{"s": "\\u0000"}',
    b'{"s": "\\ud800"}',
    b'{"s": "\\udfff"}',
    b'{"s": "\\udbff\\udfff"}',
    b'{"s": "\\ud800\\ud800"}',
    b'{"l": 99999999999999999999999999999999}',
    b'{"l": -0}',
    b'{"d": -0}',
    b'{"d": -0.0}',
    b'{"d": 1e400}',
    b'{"d": -1e400}',
    b'{"d": 1e-400}',
    b'{"q": "-0"}',
    b'{"q": "-0.00"}',
    b'{"s": ' + b"[" * 10000 + b"]" * 10000 + b"}",
    b'{"s": {"s": {"s": "a"}}}',
    b'\xef\xbb\xbf{"s": "a"}',
    b'{"s": "a"}\r',
    b'{"s":\r"a"}',
    b'{"s": "a\r"}',
    b'{"s": "\xff"}',
    b'{"\xff": "a"}',
    b'{"s": "a"',
    b"{",
    b"}",
    b"",
    b" ",
    b"null",
    b"[]",
    b"{}",
    b"  {  }  ",
    b'{"zz": 1}',
    b'{"S": "a"}',
    b'{"s": "a",}',
    b'{,"s": "a"}',
    b'{"s": "a" "l": 1}',
    b'{"s" "a"}',
    b'{"s": "a", "l": 1, "i": 2, "d": 0.5, "f": 1.5, "b": true, "e": "USD", "q": "1.25"}',
]


@pytest.mark.parametrize("line", HOSTILE, ids=range(len(HOSTILE)))
def test_native_rows_are_arrows_rows_on_hostile_lines(line: bytes) -> None:
    native = _native_one(line)
    if native is not None:
        arrow = _arrow_one(line)
        assert arrow is not None
        assert _bits(native) == _bits(arrow)


def test_hostile_lines_refused_natively() -> None:
    """What the native parser must leave to Arrow (or the reference after it)."""
    taken = [line for line in HOSTILE if _native_one(line) is not None]
    assert taken == [
        b'{"s": "\\u0000"}',
        b'{"s": "\\udbff\\udfff"}',
        b'{"d": -0}',
        b'{"d": -0.0}',
        b'{"d": 1e-400}',  # 0.0, as Arrow reads it
        b'{"q": "-0"}',
        b'{"q": "-0.00"}',
        b"{}",
        b"  {  }  ",
        HOSTILE[-1],
    ]
    assert _native_one(b'{"d": -0.0}') is not None
    assert _bits(_native_one(b'{"d": -0.0}'))[3][1] == [np.float64(-0.0).view(np.int64)]


def _ipc(rb: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rb.schema) as w:
        w.write_batch(rb)
    return bytes(sink.getvalue().to_pybytes())


@pytest.mark.parametrize("seed", range(4))
def test_json_batch_with_native_rows_equals_reference(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    native_taken = 0
    for _ in range(25):
        n = rng.choice([1, 2, 40, 300])
        lines = [random_line(rng) if rng.random() < 0.3 else _good(rng) for _ in range(n)]
        got_rb, got_force = json_batch(lines, LAY, 10**6)
        parsed: list[Any] = []
        idx = np.arange(n, dtype=np.int64)
        native_taken += n - len(_native_read(Lines.texts(lines), idx, LAY, parsed))
        with monkeypatch.context() as m:
            m.setattr(arrowread, "_native_json_rows", None)
            ref_rb, ref_force = json_batch(lines, LAY, 10**6)
        assert got_force.tolist() == ref_force.tolist()
        assert got_rb.equals(ref_rb)
        assert _ipc(got_rb) == _ipc(ref_rb)
    assert native_taken > 500


STEMS = ["x", "é", "日本", "a\\\\b", "\\u00e9"]


def _good(rng: random.Random) -> bytes:
    row = dict(GOOD)
    row["s"] = f'"{rng.choice(STEMS)}{rng.randrange(10**6)}"'
    row["l"] = str(rng.randrange(-(10**12), 10**12))
    row["d"] = repr(rng.uniform(-1e6, 1e6))
    row["q"] = f'"{rng.randrange(10**6)}.{rng.randrange(100):02d}"'
    if rng.random() < 0.5:
        del row["venue"]  # its default
    if rng.random() < 0.2:
        row["nl"] = "null"
    return ("{" + ", ".join(f'"{k}": {v}' for k, v in row.items()) + "}").encode()


def test_bad_spans_and_kinds_are_errors() -> None:
    rows = hub_native.json_rows
    eight = np.array([0], dtype=np.int64).tobytes()
    with pytest.raises(ValueError, match="outside the data"):
        rows(b"{}", eight, np.array([3], dtype=np.int64).tobytes(), [b"s"], [0], [0], [0])
    with pytest.raises(ValueError, match="outside the data"):
        rows(b"{}", np.array([2], dtype=np.int64).tobytes(), eight, [b"s"], [0], [0], [0])
    with pytest.raises(ValueError, match="one length"):
        rows(b"{}", eight, b"", [b"s"], [0], [0], [0])
    with pytest.raises(ValueError, match="unknown kind 9"):
        rows(b"{}", eight, eight, [b"s"], [9], [0], [0])
    with pytest.raises(ValueError, match="precision"):
        rows(b"{}", eight, eight, [b"q"], [4], [39], [2])
    with pytest.raises(ValueError, match="one kind"):
        rows(b"{}", eight, eight, [b"s", b"l"], [0], [0], [0])


@pytest.mark.parametrize("precision,scale", [(18, 4), (18, 8), (18, 0), (10, 2), (1, 0), (5, 5)])
def test_over_precision_on_words_equals_decimal256(precision: int, scale: int) -> None:
    """``_over_precision``'s 64-bit-word test (precision <= 18) against the decimal256
    comparison, on raw 128-bit values around +-10**precision, past 2**63 and 2**64, with nulls
    and on a slice (an array offset)."""
    rng = random.Random(precision * 100 + scale)
    t = pa.decimal128(precision, scale)
    b = 10**precision
    edges = [0, 1, -1, b - 1, b, b + 1, -b + 1, -b, -b - 1, 2**63 - 1, 2**63, -(2**63)]
    edges += [-(2**63) - 1, 2**64 - 1, 2**64, -(2**64), 10**37, -(10**37), 2**127 - 1, -(2**127)]
    for _ in range(30):
        n = rng.choice([1, 7, 64, 500])
        values = [rng.choice(edges) + rng.choice([0, 0, rng.randrange(-5, 6)]) for _ in range(n)]
        values = [max(-(2**127), min(2**127 - 1, v)) for v in values]
        data = b"".join(v.to_bytes(16, "little", signed=True) for v in values)
        valid = np.array([rng.random() > 0.1 for _ in range(n)])
        mask = pa.array(valid).buffers()[1] if not valid.all() else None
        col = pa.Array.from_buffers(t, n, [mask, pa.py_buffer(data)], null_count=-1)
        for arr in (col, col.slice(rng.randrange(n), rng.randrange(n + 1))):
            got = arrowread._over_precision(arr, t)
            want = arrowread._over_precision_wide(arr, t)
            assert got.tolist() == want.tolist(), (values, valid)


def _random_time(rng: random.Random, dates: bool) -> str | None:
    if rng.random() < 0.05:
        return None
    y = rng.choice([1, 1970, 2000, 2024, 2026, 1900, 9999, 0, 2100, 1600])
    mo, d = rng.choice([(1, 1), (2, 28), (2, 29), (2, 30), (4, 31), (12, 31), (6, 15), (13, 1)])
    if rng.random() < 0.05:
        d = rng.choice([0, 32])
    text = f"{y:04d}-{mo:02d}-{d:02d}"
    if dates:
        tail = rng.choice(["", "", "", "T00:00:00Z", " ", "x"])
        return text + tail
    h, mi, s = rng.choice(
        [(0, 0, 0), (23, 59, 59), (14, 30, 5), (24, 0, 0), (12, 60, 0), (1, 2, 60)]
    )
    text += rng.choice(["T", "T", "T", "t", " "]) + f"{h:02d}:{mi:02d}:{s:02d}"
    if rng.random() < 0.5:
        text += "." + "".join(rng.choice("0123456789") for _ in range(rng.choice([0, 1, 3, 6, 7])))
    text += rng.choice(
        ["Z", "Z", "+00:00", "+02:00", "-01:00", "+23:59", "-23:59", "+24:00", "z", "", "+0200"]
    )
    if rng.random() < 0.03:
        text += rng.choice(["\n", " ", "Z"])
    if rng.random() < 0.02:
        text = text.replace("1", "\u0661")  # an Arabic-Indic digit
    return text


@pytest.mark.parametrize("dates", [False, True])
def test_native_times_equal_regex_and_cast(dates: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """``_finish`` and ``_csv_column`` of a timestamp / date column with the native pass
    (``hub_native.rfc3339_values``) against the regex + cast reference: the same values (their
    IPC bytes) and unsure rows, on random near-RFC 3339 strings, nulls and slices; a column
    with a non-calendar date (a 30th of February, year 0) is left to the reference."""
    from ingest.arrowread import Column, _csv_column, _finish

    rng = random.Random(19 + dates)
    kind = "date" if dates else "timestamp"
    final = pa.date32() if dates else pa.timestamp("us", tz="UTC")
    c = Column("t", kind, pa.string(), final, False)
    native_used = 0
    for _ in range(400):
        n = rng.choice([1, 5, 40])
        values = [_random_time(rng, dates) for _ in range(n)]
        if rng.random() < 0.7:  # mostly calendar dates: the native answer is used
            values = [
                v
                if v is None or not ("-02-30" in v or "-04-31" in v or v.startswith("0000"))
                else v.replace("-02-30", "-02-28")
                .replace("-04-31", "-04-30")
                .replace("0000", "2026")
                for v in values
            ]
        col = pa.array(values, pa.string())
        if rng.random() < 0.3:
            col = col.slice(rng.randrange(n), rng.randrange(n + 1))
        got = arrowread._native_times(col, c)
        native_used += got is not None
        if got is None:  # the reference decides: not on a slice (below)
            col = pa.array(col.to_pylist(), pa.string())
        nullable = rng.random() < 0.5  # CSV: "" is null
        for csv in (False, True):

            def fn(a: pa.Array, csv: bool = csv, nullable: bool = nullable) -> tuple[pa.Array, Any]:
                return _csv_column(c, a, nullable) if csv else _finish(c, a)

            arr, unsure = fn(col)
            with monkeypatch.context() as m:
                m.setattr(arrowread, "_native_rfc3339", None)
                # on a copy at offset 0: this pyarrow's ``if_else`` gives garbage strings for a
                # sliced string array (the reference never sees one: its columns are built)
                ref, ref_unsure = fn(pa.array(col.to_pylist(), pa.string()))
            assert unsure.tolist() == ref_unsure.tolist(), values
            assert arr.equals(ref), values
            assert _ipc(pa.record_batch([arr], ["t"])) == _ipc(pa.record_batch([ref], ["t"]))
    assert native_used > 150, native_used


def _strip_reference(region: bytes) -> bytes:
    from ingest.lines import _without_trailing_crs

    region = region.replace(b"\r\n", b"\n")
    if b"\r\n" in region:
        region = _without_trailing_crs(region)
    return region.rstrip(b"\r")


def test_native_cr_strip_equals_the_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    """``Lines.block``'s native CR strip (csv_rows.rs) against the replace + numpy passes."""
    from ingest import lines as lines_mod

    rng = random.Random(1903)
    for _ in range(3000):
        region = bytes(rng.choice(b"ab,\r\r\n\xc3") for _ in range(rng.choice([0, 1, 3, 20, 300])))
        want = _strip_reference(region)
        assert hub_native.without_trailing_crs(region) == want, region
        got = Lines.block(region, 7)
        with monkeypatch.context() as m:
            m.setattr(lines_mod, "_native_strip", None)
            ref = Lines.block(region, 7)
        assert got.data == ref.data == want
        assert got.starts.tolist() == ref.starts.tolist()
        assert got.ends.tolist() == ref.ends.tolist()
    assert hub_native.without_trailing_crs(b"\r" * 100_000 + b"x") == b"\r" * 100_000 + b"x"
    assert hub_native.without_trailing_crs(b"x" + b"\r" * 100_000) == b"x"


CSV_HEADER = ["s", "q", "ts", "b", "l"]
CSV_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "C",
    "fields": [
        {"name": "s", "type": ["null", "string"], "default": None},
        {
            "name": "q",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2},
        },
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "b", "type": "boolean"},
        {"name": "l", "type": "long"},
    ],
}


def _csv_row(rng: random.Random) -> bytes:
    pools = [
        ["a", "", " b ", "é日本", "\t", "\ufeffx", "x\ufeff", "a\x01", 'q"', "\udcff", "a\rb"],
        ["1.25", "", "1e2", "-0", "99999999.99"],
        ["2026-11-25T14:30:00Z", "2026-02-30T00:00:00Z", "", "x"],
        ["true", "0", "", "TRUE", "yes"],
        ["1", "-5", "", "1.0"],
    ]
    fields = [rng.choice(p) if rng.random() < 0.3 else p[0] for p in pools]
    r = rng.random()
    if r < 0.05:
        fields.append("extra")
    elif r < 0.1:
        fields.pop()
    elif r < 0.13:
        fields[0] = "\ufeff" + fields[0]  # a BOM opening the row
    return ",".join(fields).encode("utf-8", "surrogateescape")


@pytest.mark.parametrize("seed", range(4))
def test_csv_batch_native_split_equals_read_csv(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """``csv_batch`` with the native split (``hub_native.csv_split``) against Arrow's
    ``read_csv``: the same batch (IPC bytes) and forced rows, on rows with tabs, spaces,
    non-ASCII text, byte-order marks (opening a row: forced, whichever row of the batch it is),
    quotes, control bytes, bad UTF-8 and wrong field counts."""
    from ingest.arrowread import csv_batch, csv_layout

    rng = random.Random(seed)
    lay = layout(CSV_SCHEMA)
    assert lay is not None
    clay = csv_layout(lay, CSV_HEADER, CSV_SCHEMA["fields"])
    assert clay is not None
    split = 0
    for _ in range(60):
        n = rng.choice([1, 2, 30, 200])
        rows = [_csv_row(rng) for _ in range(n)]
        lines = Lines.block(b"\n".join(rows), 2) if rng.random() < 0.5 else Lines.texts(rows)
        got_rb, got_force = csv_batch(lines, CSV_HEADER, clay, {"s"}, 10**6)
        with monkeypatch.context() as m:
            m.setattr(arrowread, "_native_csv_split", None)
            ref_rb, ref_force = csv_batch(lines, CSV_HEADER, clay, {"s"}, 10**6)
        assert got_force.tolist() == ref_force.tolist()
        assert got_rb.equals(ref_rb)
        assert _ipc(got_rb) == _ipc(ref_rb)
        for i, row in enumerate(rows):
            if row.startswith(b"\xef\xbb\xbf"):
                assert got_force[i], row
        split += int((~got_force).sum())
    assert split > 500, split


def test_csv_split_refuses_what_it_cannot_split() -> None:
    rows = [b"a,b", b"c,d,e"]
    lines = Lines.texts(rows)
    s, e = lines.starts.tobytes(), lines.ends.tobytes()
    assert hub_native.csv_split(lines.data, s, e, 2) is None  # three fields in row 2
    assert hub_native.csv_split(lines.data, s[:8], e[:8], 2) is not None
    bad = Lines.texts([b"a,\xff"])
    assert hub_native.csv_split(bad.data, bad.starts.tobytes(), bad.ends.tobytes(), 2) is None
    with pytest.raises(ValueError, match="outside the data"):
        hub_native.csv_split(b"a,b", s[:8], np.array([9], dtype=np.int64).tobytes(), 2)
    with pytest.raises(ValueError, match="one length"):
        hub_native.csv_split(b"a,b", s, e[:8], 2)


def _decimal_text(rng: random.Random) -> str | None:
    r = rng.random()
    if r < 0.05:
        return None
    if r < 0.25:
        return rng.choice(
            ["", "-", ".", "-.5", "1.", "+1", "1e2", " 1", "1 ", "1.2.3", "--1", "\u0661", "0x1"]
        )
    digits = "".join(rng.choice("0123456789") for _ in range(rng.choice([1, 2, 5, 8, 10, 11, 19])))
    if rng.random() < 0.6:
        digits += "." + "".join(
            rng.choice("0123456789") for _ in range(rng.choice([1, 2, 3, 8, 9]))
        )
    return ("-" if rng.random() < 0.3 else "") + digits


@pytest.mark.parametrize("precision,scale", [(18, 4), (18, 8), (10, 2), (10, 0), (38, 10), (3, 1)])
def test_native_decimal_text_equals_regex_and_cast(
    precision: int, scale: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``_csv_column`` of a decimal column with ``hub_native.decimal_text`` against the regex
    + cast reference: the same values (IPC bytes) and unsure rows, nullable or not, on slices."""
    from ingest.arrowread import Column, _csv_column

    rng = random.Random(precision * 7 + scale)
    t = pa.decimal128(precision, scale)
    c = Column("q", "decimal", t, t, False)
    taken = 0
    for _ in range(200):
        n = rng.choice([1, 6, 50])
        col = pa.array([_decimal_text(rng) for _ in range(n)], pa.string())
        if rng.random() < 0.3:
            col = col.slice(rng.randrange(n), rng.randrange(n + 1))
        nullable = rng.random() < 0.5
        arr, unsure = _csv_column(c, col, nullable)
        with monkeypatch.context() as m:
            m.setattr(arrowread, "_native_decimal_text", None)
            # at offset 0: this pyarrow's ``if_else`` garbles sliced strings (see above)
            ref, ref_unsure = _csv_column(c, pa.array(col.to_pylist(), pa.string()), nullable)
        assert unsure.tolist() == ref_unsure.tolist(), col.to_pylist()
        assert arr.equals(ref), col.to_pylist()
        assert _ipc(pa.record_batch([arr], ["q"])) == _ipc(pa.record_batch([ref], ["q"]))
        taken += arr.null_count < len(arr)
    assert taken > 50


_CONTROLS = [bytes([c]) for c in range(0x20) if c != 0x0A]


def _with_control(rng: random.Random, line: bytes) -> bytes:
    """``line`` with one raw control byte (never ``\\n``) somewhere: in a string, a key, the
    spaces between tokens, before the ``{`` or after the ``}``."""
    at = rng.randrange(len(line) + 1)
    return line[:at] + rng.choice(_CONTROLS) + line[at:]


def _good_ascii(rng: random.Random) -> bytes:
    while not (line := _good(rng)).isascii():
        pass
    return line


@pytest.mark.parametrize("seed", range(4))
def test_json_batch_control_bytes_after_native_parse_equal_reference(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ASCII batches: their control bytes are looked for only in the lines the native parse
    leaves (``json_batch``'s late check). Mostly good lines with a few control bytes anywhere,
    a few lines Arrow alone reads (a tab between tokens) and lines over the size limit: the same
    batch and forced rows as the reference (no native parse, every line checked first)."""
    rng = random.Random(seed)
    for _ in range(25):
        n = rng.choice([1, 3, 40, 300])
        lines = [_good_ascii(rng) for _ in range(n)]
        for _ in range(rng.choice([0, 1, 3])):
            i = rng.randrange(n)
            lines[i] = _with_control(rng, lines[i])
        if rng.random() < 0.3:
            i = rng.randrange(n)
            lines[i] = lines[i].replace(b", ", b",\t", 1)  # Arrow reads it; the reference forces
        if rng.random() < 0.2:
            i = rng.randrange(n)
            lines[i] = lines[i].replace(b'"a', b'"\\u0041', 1)  # an escape: still ASCII
        lines = [ln for ln in lines if ln.strip()]
        if not lines:
            continue
        assert all(ln.isascii() for ln in lines)
        limit = rng.choice([10**6, max(map(len, lines)) - 1])
        got_rb, got_force = json_batch(lines, LAY, limit)
        with monkeypatch.context() as m:
            m.setattr(arrowread, "_native_json_rows", None)
            ref_rb, ref_force = json_batch(lines, LAY, limit)
        assert got_force.tolist() == ref_force.tolist()
        assert _ipc(got_rb) == _ipc(ref_rb)
