"""Session 23 (verify23): the side-index body written by one native call
(``hub_native.side_index_body``, ``native/src/side_body.rs``) when every string column comes
as its dictionary: ``hub ledger verify`` re-encodes every recomputed batch this way and
compares it with the stored body byte for byte, and the sync writes it.

The NumPy writer (``sideindex.body_of_reference``) stays the reference: the same bytes on
random columns (every index and delta width, nulls, empty and non-ASCII texts, differences
wrapping modulo 2**64, no rows, one row); what the native call declines (a lone surrogate, a
column it cannot read) goes to the reference, which gives its own answer. A tampered ledger
fails with the same first problem whichever writes the recomputed body (the session-21
tamper suite runs both: its ``_reference`` turns the native body off too)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from adapters import tile_sideindex as sideindex
from core.ports.ledgerstore import LEAF_COLUMNS, int_array, leaf_schema
from ledger.leaves import LeafEncoder

from .test_s21_verify_paths import TAMPER, _build, _first_problem, _open, _reference

pytestmark = pytest.mark.skipif(sideindex._native_body is None, reason="hub_native not built")

_ALPHABET = ["a", "é", "€", "𝄞", "", "zz", "\x00"]


def _dictionary(rng: random.Random, rows: int) -> tuple[list[str], bytes]:
    """Distinct texts (a count picked to reach every index width) and int32 indexes (-1 null)."""
    count = rng.choice([0, 1, 2, 200, 254, 255, 256, 3000, 70_000])
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < count:
        w = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 4))) + str(len(words))
        if w not in seen:
            seen.add(w)
            words.append(w)
    nulls = rng.random() < 0.5
    lo = -1 if nulls or not count else 0
    idx = np.array(
        [rng.randint(lo, max(count - 1, lo)) for _ in range(rows)] if count else [-1] * rows,
        dtype="<i4",
    )
    if count and rows and rng.random() < 0.3:
        idx[rng.randrange(rows)] = count - 1  # the widest index present
    return words, idx.tobytes()


def _integers(rng: random.Random, rows: int, kind: str) -> np.ndarray:
    shape = rng.choice(["run", "small", "wide", "extremes"])
    if shape == "run":
        start = rng.randint(-(2**31), 2**31 - 1)
        out = np.arange(start, start + rows, dtype=np.int64)
    elif shape == "small":
        out = np.cumsum([rng.randint(-300, 70_000) for _ in range(rows)], dtype=np.int64)
    elif shape == "wide":
        out = np.array([rng.randint(-(2**40), 2**40) for _ in range(rows)], dtype=np.int64)
    else:  # differences that wrap modulo 2**64
        out = np.array(
            [rng.choice([-(2**63), 2**63 - 1, 0, -1]) for _ in range(rows)], dtype=np.int64
        )
    if kind == "<i4":
        out = np.clip(out, -(2**31), 2**31 - 1)
    return out.astype(kind)


def _random_batch(seed: int) -> tuple[pa.Table, dict[str, tuple[list[str], bytes]]]:
    rng = random.Random(seed)
    rows = rng.choice([0, 1, 2, 17, 500, 5000])
    schema = leaf_schema()
    dicts: dict[str, tuple[list[str], bytes]] = {}
    arrays = []
    for field in schema:
        if field.type == pa.string():
            words, index = _dictionary(rng, rows)
            dicts[field.name] = (words, index)
            idx = np.frombuffer(index, dtype="<i4")
            arrays.append(pa.array([None if i < 0 else words[i] for i in idx], pa.string()))
        else:
            kind = "<i4" if field.type == pa.int32() else "<i8"
            arrays.append(int_array(_integers(rng, rows, kind), field.type))
    return pa.Table.from_arrays(arrays, schema=schema), dicts


@pytest.mark.parametrize("seed", range(40))
def test_the_native_body_is_the_references(seed: int) -> None:
    table, dicts = _random_batch(seed)
    native = sideindex.body_of(table, dicts)
    reference = sideindex.body_of_reference(table, dicts)
    assert native is not None
    assert native == reference
    # and the columns' own dictionary encoding (no dictionaries handed on) decodes the same
    decoded = sideindex.decode_body(table.num_rows, native, 0)
    assert decoded.equals(table)


def test_the_native_call_writes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The native call is the one that runs when every dictionary is given (not the reference
    behind a fallback)."""
    table, dicts = _random_batch(3)
    calls: list[int] = []
    real = sideindex._native_body

    def counted(columns: list[object]) -> object:
        calls.append(len(columns))
        return real(columns)

    monkeypatch.setattr(sideindex, "_native_body", counted)
    assert sideindex.body_of(table, dicts) == sideindex.body_of_reference(table, dicts)
    assert calls == [len(LEAF_COLUMNS)]
    partial = {k: v for k, v in dicts.items() if k != "resource"}
    assert sideindex.body_of(table, partial) == sideindex.body_of_reference(table, partial)
    assert calls == [len(LEAF_COLUMNS)]  # a column without its dictionary: the reference


def test_a_null_integer_is_no_body_on_both() -> None:
    table, dicts = _random_batch(4)
    assert table.num_rows
    offs = table.column("off").to_pylist()
    offs[0] = None
    at = table.schema.get_field_index("off")
    table = table.set_column(at, "off", pa.array(offs, pa.int64()))
    assert sideindex.body_of(table, dicts) is None
    assert sideindex.body_of_reference(table, dicts) is None


def test_a_lone_surrogate_is_refused_as_before() -> None:
    """Declined natively; the reference raises the error it always raised."""
    table, dicts = _random_batch(7)
    words, index = dicts["actor"]
    bad = dict(dicts, actor=(["\ud800", *words[1:]] if words else ["\ud800"], index))
    assert sideindex._native_body is not None
    given = [bad.get(n, b"") for n in LEAF_COLUMNS]
    assert sideindex._native_body(given) is None
    with pytest.raises(UnicodeEncodeError):
        sideindex.body_of_reference(table, bad)
    with pytest.raises(UnicodeEncodeError):
        sideindex.body_of(table, bad)


def test_what_the_native_call_cannot_read_it_declines() -> None:
    body = sideindex._native_body
    assert body is not None
    assert body([b"\x00" * 7]) is None  # not a whole int64
    assert body([(["a"], b"\x00\x00\x00")]) is None  # not a whole int32 index
    assert body([("a", b"")]) is None  # not a list of texts
    assert body([([b"a"], b"")]) is None  # bytes, not texts
    assert body([(["a"], b"", 1)]) is None  # a tuple of three
    assert body([]) == b""


def test_a_recomputed_ledger_batch_is_the_same_body(tmp_path: Path) -> None:
    """The batch verify recomputes from the log (the native leaf batch's dictionaries)."""
    _build(tmp_path)
    log, ledger = _open(tmp_path)
    try:
        enc = log.read_encoded("trades", 0, 0, 10_000)
        assert enc is not None
        batch = LeafEncoder().column_batch([enc], 0, strings=False)
        assert set(batch.dictionaries or {}) >= {"topic", "actor", "action", "tenant"}
        native = sideindex.body_of(batch.columns, batch.dictionaries)
        assert native == sideindex.body_of_reference(batch.columns, batch.dictionaries)
    finally:
        ledger.close()
        log.close()


@pytest.mark.parametrize("what", sorted(TAMPER))
def test_a_tamper_fails_the_same_with_the_body_written_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    _build(tmp_path)
    assert _first_problem(tmp_path) is None
    TAMPER[what](tmp_path)
    native = _first_problem(tmp_path)
    assert native is not None, what
    with monkeypatch.context() as m:
        m.setattr(sideindex, "_native_body", None)  # only the body's writer changed
        assert _first_problem(tmp_path) == native
    with monkeypatch.context() as m:
        _reference(m)  # every native path off
        assert _first_problem(tmp_path) == native
