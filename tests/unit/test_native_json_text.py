"""``hub_native.json_text_column`` (native/src/json_text.rs) against the Arrow reference of
``ingest.jsoncols.ColumnPlan._array``: for decimal and timestamp text columns, random and edge
values, nullable or not, the native pass gives the very array (or the same refusal, None) that
``pa.array`` + ``match_substring_regex`` + ``pc.cast`` give."""

from __future__ import annotations

import random
from typing import Any

import pyarrow as pa
import pytest

from ingest import jsoncols

native = pytest.importorskip("hub_native")
if not hasattr(native, "json_text_column"):
    pytest.skip("hub_native built without json_text_column", allow_module_level=True)

DEC_EDGE = [
    "0", "-0", "0.0", "-0.00", "00", "01", "1.", ".5", "-", "", "1.2.3", "+1", " 1", "1 ",
    "1e3", "١", "12345678901234", "123456789012345", "99999999999999.9999", "-0.0001",
    "0.00001", "1,5", "\ud800", "10", "100.5", "9" * 18, "1" + "0" * 14,
]  # fmt: skip
TS_EDGE = [
    "2026-12-02T08:00:00.123456Z", "2026-12-02T08:00:00.1234567Z", "2026-02-29T00:00:00Z",
    "2024-02-29T23:59:59+23:59", "2026-02-30T00:00:00Z", "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59.999999-23:59", "2026-13-01T00:00:00Z",
    "2026-00-10T00:00:00Z", "2026-01-32T00:00:00Z", "2026-01-00T00:00:00Z",
    "2026-01-01T24:00:00Z", "2026-01-01T00:60:00Z", "2026-01-01T00:00:60Z",
    "2026-01-01T00:00:00", "2026-01-01T00:00:00z", "2026-01-01t00:00:00Z",
    "2026-01-01 00:00:00Z", "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00+0100",
    "2026-01-01T00:00:00+24:00", "2026-01-01T00:00:00Z ", "2026-1-01T00:00:00Z", "",
    "2026-01-01T00:00:00\ud800Z", "１９９９-01-01T00:00:00Z",
]  # fmt: skip


def _col(field_type: Any, nullable: bool) -> jsoncols._Col:
    found = jsoncols._column_kind(["null", field_type] if nullable else field_type, {})
    assert found is not None
    kind, null, extra = found
    col = jsoncols._Col("f", kind, null)
    for k, v in extra.items():
        setattr(col, k, v)
    return col


def _array(col: jsoncols._Col, data: list[Any]) -> Any:
    try:
        return jsoncols.ColumnPlan._array(col, data)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, UnicodeError):
        return None  # what ``encode`` makes of it


def _reference(col: jsoncols._Col, data: list[Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as m:
        m.setattr(jsoncols, "_native_text_column", None)
        return _array(col, data)


def _same(col: jsoncols._Col, data: list[Any], monkeypatch: pytest.MonkeyPatch) -> bool:
    ref = _reference(col, data, monkeypatch)
    got = _array(col, data)
    if ref is None:
        assert got is None, data
        return False
    assert got is not None, data
    assert got.type == ref.type and got.equals(ref), data
    # the values themselves (as int: a year-1 instant with an offset is outside datetime)
    storage = pa.int64() if pa.types.is_timestamp(ref.type) else None
    if storage is not None:
        got, ref = got.view(storage), ref.view(storage)
    assert got.to_pylist() == ref.to_pylist()
    return True


def _dec_text(rng: random.Random, p: int, s: int) -> str:
    ints = rng.randrange(10 ** rng.randrange(1, max(2, p - s + 1)))
    text = ("-" if rng.random() < 0.3 else "") + str(ints if p > s else 0)
    if s and rng.random() < 0.7:
        text += "." + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, s)))
    return text


def _ts_text(rng: random.Random) -> str:
    y, mo, d = rng.randint(1, 9999), rng.randint(1, 12), rng.randint(1, 28)
    text = f"{y:04d}-{mo:02d}-{d:02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
    text += f"{rng.randint(0, 59):02d}"
    if rng.random() < 0.5:
        text += "." + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 6)))
    if rng.random() < 0.4:
        return text + "Z"
    return text + f"{rng.choice('+-')}{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"


@pytest.mark.parametrize("seed", range(40))
def test_decimal_column_is_the_reference_array(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    p = rng.randint(1, 18)
    s = rng.randint(0, p)
    nullable = rng.random() < 0.5
    col = _col({"type": "bytes", "logicalType": "decimal", "precision": p, "scale": s}, nullable)
    data: list[Any] = [_dec_text(rng, p, s) for _ in range(rng.randint(1, 300))]
    if nullable:
        data = [None if rng.random() < 0.2 else x for x in data]
        data[0] = data[0] or "0"
    taken = _same(col, data, monkeypatch)
    if s < p or s == 0:
        assert taken  # well-formed values: the column is taken, by the native pass
        assert native.json_text_column(data, True, p, s) is not None
    for bad in rng.sample(DEC_EDGE, 6):
        k = rng.randrange(len(data))
        _same(col, [*data[:k], bad, *data[k + 1 :]], monkeypatch)


@pytest.mark.parametrize("seed", range(40))
def test_timestamp_column_is_the_reference_array(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    nullable = rng.random() < 0.5
    col = _col({"type": "long", "logicalType": "timestamp-micros"}, nullable)
    data: list[Any] = [_ts_text(rng) for _ in range(rng.randint(1, 300))]
    if nullable:
        data = [None if rng.random() < 0.2 else x for x in data]
        data[0] = data[0] or "2026-01-01T00:00:00Z"
    assert _same(col, data, monkeypatch)  # calendar dates (days <= 28): the column is taken
    assert native.json_text_column(data, False, 0, 0) is not None  # by the native pass
    for bad in rng.sample(TS_EDGE, 6):
        k = rng.randrange(len(data))
        _same(col, [*data[:k], bad, *data[k + 1 :]], monkeypatch)


@pytest.mark.parametrize("text", DEC_EDGE)
@pytest.mark.parametrize("ps", [(18, 4), (4, 4), (3, 0), (14, 4), (1, 0)])
def test_each_decimal_edge_is_decided_as_the_reference(
    text: str, ps: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    p, s = ps
    col = _col({"type": "bytes", "logicalType": "decimal", "precision": p, "scale": s}, False)
    _same(col, ["1" if p > s else "0", text], monkeypatch)


@pytest.mark.parametrize("text", TS_EDGE)
def test_each_timestamp_edge_is_decided_as_the_reference(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    col = _col({"type": "long", "logicalType": "timestamp-micros"}, True)
    _same(col, [None, text, "2026-01-01T00:00:00Z"], monkeypatch)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(TypeError, match="value 1 is a int"):
        native.json_text_column(["0", 5], True, 9, 2)
    with pytest.raises(ValueError, match="precision <= 18"):
        native.json_text_column(["0"], True, 19, 2)
