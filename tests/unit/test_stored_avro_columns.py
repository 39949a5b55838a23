"""Replay decodes the embedded log's stored batches in place (``EventLog.read_encoded`` into
``projections.columnar.decode_stored``, native ``stored_avro_columns``): fields, schema ids,
tenants, event types and offsets MUST equal the column path (the batches decoded by the log,
``decode_values`` + ``envelope_of_columns``), which stays the reference. Random appends: Avro
values of every kind the column decoder takes, envelope columns with shared and per-record
values (invalid UTF-8, no ``ce_type``, no ``ce_tenant``), the pair layout, no headers, several
schema ids, null and malformed values; read at random positions and sizes. Where the native pass
declines (None), the reference decides: it must then be one of the cases it leaves."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adapters.sqlite_log import SqliteEventLog
from core.ports.eventlog import EncodedColumns, Headers, Record, RecordColumns
from projections import columnar
from projections.columnar import Unsupported, decode_stored, decode_values, envelope_of_columns
from tests.unit.native_module import native_module
from tests.unit.test_native_avro_columns import PARSED, SID, encode

native = native_module()
if not hasattr(native, "stored_avro_columns"):
    pytest.fail("hub_native predates native/src/stored_avro.rs: rerun `make setup`.")

ODD = (b"acme", b"", b"\xff\xfe bad \xed\xa0\x80 utf8", "h\u00e9llo".encode())
NAMES = ("ce_tenant", "ce_type", "ce_id", "x-\u00e9")


def schema_of(sid: int) -> Any:
    if sid not in (SID, SID + 1):
        raise KeyError(sid)
    return PARSED


def name_of(sid: int) -> str:
    return f"t.R{sid}"


def _record(rnd: random.Random) -> dict[str, Any]:
    def opt(v: Any) -> Any:
        return None if rnd.random() < 0.3 else v

    return {
        "l": rnd.randint(-(2**63), 2**63 - 1),
        "i": rnd.randint(-(2**31), 2**31 - 1),
        "s": rnd.choice(("", "x", "h\u00e9llo", "USD")),
        "b": rnd.randbytes(rnd.randint(0, 9)),
        "f": rnd.random() < 0.5,
        "d": rnd.uniform(-1e9, 1e9),
        "g": float(np.float32(rnd.uniform(-1e3, 1e3))),
        "e": rnd.choice("ABC"),
        "m": Decimal(rnd.randint(-(10**14), 10**14)).scaleb(-4),
        "ts": 1_767_225_600_000_000 + rnd.randint(0, 10**12),
        "n": None,
        "os": opt("s"),
        "ol": opt(rnd.randint(-5, 5)),
        "ob": opt(True),
        "od": opt(2.5),
        "oe": opt("B"),
        "om": opt(Decimal("12.34")),
        "ot": opt(1_767_225_600_000_000),
        "oy": opt(b"\x00y"),
    }


def _value(rnd: random.Random, odd: bool) -> bytes | None:
    if odd:
        r = rnd.random()
        if r < 0.3:
            return None
        if r < 0.6:
            return encode(_record(rnd))[:-1]  # truncated
        if r < 0.8:
            return b"\x01" + encode(_record(rnd))[1:]  # no magic byte
        return encode(_record(rnd), SID + 1)  # a second schema id
    return encode(_record(rnd))


def _fill(log: SqliteEventLog, rnd: random.Random, mixed: bool) -> None:
    """Appends of one header shape each (``mixed``: the pair layout and no headers too)."""
    log.create_topic("trades", 2)
    for a in range(16):
        n = rnd.randint(1, 90)
        shape = rnd.choice(("envelope",) * 3 + (("pairs", "none") if mixed else ()))
        names = list(dict.fromkeys(rnd.choice(NAMES) for _ in range(rnd.randint(1, 4))))
        shared = {name: rnd.choice(ODD) for name in names}
        varies = {name: rnd.random() < 0.5 for name in names}
        bad = rnd.randrange(n) if rnd.random() < 0.15 else -1  # one odd value
        recs = []
        for i in range(n):
            headers: Headers
            if shape == "envelope":  # same names, same order: stored as columns
                headers = tuple(
                    (name, rnd.choice(ODD) if varies[name] else shared[name]) for name in names
                )
            elif shape == "pairs":  # names vary per record: the pair layout
                headers = tuple(
                    (name, rnd.choice(ODD))
                    for name in dict.fromkeys(rnd.choice(NAMES) for _ in range(rnd.randint(0, 3)))
                )
            else:
                headers = ()
            value = _value(rnd, i == bad)
            recs.append(Record(value, b"k%d" % (i % 3), headers, 1_764_000_000_000 + a, i % 2))
        log.append("trades", recs)


def _reference(cols: list[RecordColumns]) -> Any:
    """``_fold_columnar``'s column path: the decoded batches' values and header columns."""
    values = [v for c in cols for v in c.values]
    try:
        fields, ids = decode_values(values, schema_of)
        tenants, types, offsets = envelope_of_columns(cols, ids, name_of)
    except (Unsupported, KeyError) as exc:
        return type(exc).__name__
    return fields, ids, tenants, types, offsets


def _same(got: Any, want: Any) -> None:
    assert not isinstance(want, str), f"the native pass took what the reference refuses: {want}"
    for g, w in zip(got, want, strict=True):
        if isinstance(w, np.ndarray):
            assert g.tolist() == w.tolist()
        else:
            assert g.equals(w), (g.to_pylist()[:5], w.to_pylist()[:5])
    assert got[0].schema == want[0].schema


def _declined(cols: list[RecordColumns]) -> bool:
    """Whether the batches hold something ``decode_stored`` leaves to the reference."""
    for c in cols:
        if c.header_names is None or any(v is None for v in c.values):
            return True
        if any(len(v) < 5 or v[0] != 0 or v[1:5] != cols[0].values[0][1:5] for v in c.values):
            return True
    return False


@pytest.mark.parametrize("seed", range(4))
def test_stored_batches_decode_as_the_columns_do(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    log = SqliteEventLog(tmp_path / "log.sqlite")
    try:
        _fill(log, rnd, mixed=seed % 2 == 1)
        taken = 0
        for part in range(2):
            pos = 0
            while True:
                k = rnd.randint(1, 120)
                enc = log.read_encoded("trades", part, pos, k)
                assert isinstance(enc, EncodedColumns)
                if not len(enc):
                    break
                # a read of several partitions' chunks: two reads joined, as the runner does
                pieces = [enc]
                if rnd.random() < 0.3:
                    more = log.read_encoded("trades", 1 - part, rnd.randint(0, 50), 60)
                    if more is not None and len(more):
                        pieces.append(more)
                cols = [e.columns() for e in pieces]
                got = decode_stored([b for e in pieces for b in e.batches], schema_of, name_of)
                want = _reference(cols)
                if got is None:
                    assert _declined(cols) or isinstance(want, str)
                else:
                    _same(got, want)
                    taken += 1
                pos = enc.next_offset()
        assert taken >= (1 if seed % 2 else 5), "the native pass hardly ran"
    finally:
        log.close()


def test_without_the_extension_the_reference_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = SqliteEventLog(tmp_path / "log.sqlite")
    try:
        log.create_topic("trades", 1)
        log.append("trades", [Record(encode(_record(random.Random(1))), None, (), 1, 0)])
        enc = log.read_encoded("trades", 0, 0, 10)
        assert enc is not None
        assert decode_stored(enc.batches, schema_of, name_of) is not None
        monkeypatch.setattr(columnar, "_stored_avro_columns", None)
        assert decode_stored(enc.batches, schema_of, name_of) is None
    finally:
        log.close()


def test_an_unknown_schema_id_is_left_to_the_reference(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "log.sqlite")
    try:
        log.create_topic("trades", 1)
        log.append("trades", [Record(encode(_record(random.Random(2)), 99), None, (), 1, 0)])
        enc = log.read_encoded("trades", 0, 0, 10)
        assert enc is not None
        assert decode_stored(enc.batches, schema_of, name_of) is None
    finally:
        log.close()
