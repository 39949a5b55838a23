"""``hub ledger verify`` with the native paths and with the pure-Python reference (session 21).

Session 21 moved more of a verification's reads into native code and the page cache: the log's
stored-batch CRC (``adapters.sqlite_log.batch.stored_crc``, native ``crc32_from``) and
memory-mapped reads of the log and the tile store (``adapters.sqlite_open.MMAP_BYTES``). A
faster path must refuse exactly what the reference refuses: one byte changed in a stored log
batch, a side-index batch, a leaf hash (a level-0 tile) or a checkpoint's note fails the
verification, with the same first problem on both paths (the natives off: the log's CRC by
``zlib``, the leaves by ``ledger.leaves``' Python encoders, the side index decoded whole).

Session 21 (second pass) compares a stored side-index batch with the recomputed one as encoded
bytes (``TileLedgerStore.iter_stored_batches``: the recomputed batch's version-2 body against
the stored inflated body; only the topic, partition and offset columns decoded). A side-index
body written under a valid MAC with other values, or one that does not decode, fails as on
the decoding path. A body that decodes to the same values in other bytes (a wider index, say)
is NOT tampering: the side index's contract is its values, its bytes are guarded by its digest
and MAC against anyone without the key, and the value comparison it falls back to passes it.
"""

from __future__ import annotations

import os
import random
import sqlite3
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import adapters.sqlite_log.batch as batch_module
import ledger.leaves as leaves_module
from adapters import tile_sideindex as sideindex
from adapters.local_signer import LocalKeyFileSigner
from adapters.sqlite_log import SqliteEventLog
from adapters.tile_ledgerstore import TileLedgerStore
from core.ports.eventlog import Record
from core.ports.ledgerstore import LedgerStore, leaf_schema
from domain.envelope import Envelope
from ledger.service import Ledger, LedgerConfig
from ledger.verify import verify_ledger

KEY = b"k" * 32


def _records(n: int, start: int) -> list[Record]:
    env = Envelope("hub.trading.TradeExecuted", "ingest-api", tenant="acme")
    return [
        Record(os.urandom(40), b"account-%06d" % (i % 97), env.to_headers())
        for i in range(start, start + n)
    ]


def _open(tmp: Path) -> tuple[SqliteEventLog, Ledger]:
    log = SqliteEventLog(tmp / "log.sqlite", synchronous="OFF", mac_key=KEY)
    signer = LocalKeyFileSigner(tmp / "keys" / "ledger.key", "test/ledger")
    ledger = Ledger(
        log, TileLedgerStore(tmp / "ledger.sqlite"), signer, LedgerConfig("test/ledger")
    )
    return log, ledger


def _build(tmp: Path) -> None:
    log, ledger = _open(tmp)
    log.create_topic("trades", 2)
    for s in range(0, 3000, 500):
        log.append("trades", _records(500, s))
        ledger.sync(force_checkpoint=True)
    assert verify_ledger(ledger).ok
    ledger.close()
    log.close()


def _flip(path: Path, table: str, column: str, keys: str, pick: str) -> None:
    """Change one byte in the middle of ``column`` of the ``table`` row ``pick`` selects (its
    ``keys`` name the row)."""
    conn = sqlite3.connect(path)
    try:
        *key, blob = conn.execute(f"SELECT {keys}, {column} FROM {table} {pick}").fetchone()
        data = bytearray(blob)
        data[len(data) // 2] ^= 0x01
        where = " AND ".join(f"{k.strip()} = ?" for k in keys.split(","))
        conn.execute(f"UPDATE {table} SET {column} = ? WHERE {where}", (bytes(data), *key))
        conn.commit()
    finally:
        conn.close()


TAMPER: dict[str, Callable[[Path], None]] = {
    "log batch": lambda d: _flip(
        d / "log.sqlite", "batches", "data", "id", "ORDER BY id LIMIT 1 OFFSET 3"
    ),
    "side index": lambda d: _flip(
        d / "ledger.sqlite", "batches", "cols", "first", "ORDER BY first LIMIT 1 OFFSET 1"
    ),
    "leaf hash": lambda d: _flip(
        d / "ledger.sqlite", "tiles", "data", "level, idx", "WHERE level = 0 LIMIT 1"
    ),
    "checkpoint": lambda d: _flip(
        d / "ledger.sqlite", "checkpoints", "note", "size", "ORDER BY size LIMIT 1 OFFSET 2"
    ),
}


def _reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every native path a verification takes off: the pure-Python references run, and the
    tile store's batches are decoded whole and compared value by value (the port's default
    ``iter_stored_batches``) instead of compared as encoded bytes."""
    monkeypatch.setattr(batch_module, "native_crc32_from", None)
    for name in ("_native_stored_batch", "_native_column_batch", "_native_leaf_batch"):
        monkeypatch.setattr(leaves_module, name, None)
    monkeypatch.setattr(TileLedgerStore, "iter_stored_batches", LedgerStore.iter_stored_batches)
    monkeypatch.setattr(sideindex, "_native_body", None)  # the side-index body in NumPy


def _first_problem(tmp: Path) -> str | None:
    log, ledger = _open(tmp)
    try:
        report = verify_ledger(ledger)
        return None if report.ok else report.as_dict()["first_problem"]
    finally:
        ledger.close()
        log.close()


@pytest.mark.parametrize("what", sorted(TAMPER))
def test_one_byte_changed_fails_with_the_same_problem_on_both_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    _build(tmp_path)
    assert _first_problem(tmp_path) is None
    TAMPER[what](tmp_path)
    native = _first_problem(tmp_path)
    with monkeypatch.context() as m:
        _reference(m)
        reference = _first_problem(tmp_path)
    assert native is not None, what
    assert native == reference, (what, native, reference)


def test_the_clean_ledger_verifies_on_both_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _build(tmp_path)
    assert _first_problem(tmp_path) is None
    _reference(monkeypatch)
    assert _first_problem(tmp_path) is None


def test_the_native_crc_is_zlibs() -> None:
    if batch_module.native_crc32_from is None:
        pytest.skip("hub_native not built")
    for n in (0, 1, 3, 4, 5, 63, 64, 65, 4096, 100_003, 556_001):
        data = os.urandom(n)
        assert batch_module.stored_crc(data) == zlib.crc32(data[4:]), n
        if n >= 4:
            assert batch_module.native_crc32_from(data, 4) == zlib.crc32(data[4:]), n
    assert batch_module.native_crc32_from(b"abc", 4) is None  # past the end: the reference
    assert batch_module.stored_crc(bytearray(b"\x00" * 9)) == zlib.crc32(b"\x00" * 5)


def _old_take(words: pa.Array, idx: Any) -> pa.Array:
    """The side-index string column as session 20 expanded it (the reference)."""
    signed = idx.astype(np.int64) - 1
    return pc.take(words, pa.array(signed, mask=signed < 0, type=pa.int64()))


@pytest.mark.parametrize("seed", range(40))
def test_a_side_index_string_column_expands_as_before(seed: int) -> None:
    rng = random.Random(seed)
    count = rng.choice([1, 1, 1, 2, 5])
    texts = [rng.choice(["", "acme", "hub.trading.TradeExecuted", "ü-Ω"]) for _ in range(count)]
    words = pa.array(texts, type=pa.string())
    data = "".join(texts).encode()
    rows = rng.choice([0, 1, 2, 1000])
    null = rng.random() < 0.3
    idx = np.array(
        [0 if null and rng.random() < 0.2 else rng.randint(1, count) for _ in range(rows)],
        dtype=np.uint64,
    )
    want = _old_take(words, idx)
    for got in (sideindex._expand(words, idx, data), sideindex._take(words, idx)):
        assert got.type == pa.string() and got.equals(want), (seed, texts, rows, null)
        assert got.to_pylist() == want.to_pylist()


def test_a_side_index_batch_of_one_string_per_column_decodes_as_encoded() -> None:
    rows = 3000
    table = pa.Table.from_arrays(
        [
            pa.array(["trades"] * rows),
            pa.array([1] * rows, type=pa.int32()),
            pa.array(range(rows), type=pa.int64()),
            pa.array(range(10**12, 10**12 + rows), type=pa.int64()),
            pa.array(["ingest-api"] * rows),
            pa.array([None] * rows, type=pa.string()),
            pa.array([f"account-{i % 7}" for i in range(rows)]),
            pa.array([""] * rows),
        ],
        schema=leaf_schema(),
    )
    assert sideindex.decode(sideindex.encode(table)).equals(table)


def _build_with(tmp: Path, monkeypatch: pytest.MonkeyPatch, alter: Callable[..., Any]) -> None:
    """A ledger of three syncs whose middle one stores its side-index batch through ``alter``
    (called with the real ``body_of``, the table and the dictionaries: the store MACs what it
    returns, as a key holder would)."""
    log, ledger = _open(tmp)
    log.create_topic("trades", 2)
    real = sideindex.body_of
    for k, s in enumerate(range(0, 1500, 500)):
        log.append("trades", _records(500, s))
        with monkeypatch.context() as m:
            if k == 1:
                m.setattr(sideindex, "body_of", lambda t, d=None: alter(real, t, d))
            ledger.sync(force_checkpoint=True)
    ledger.close()
    log.close()


def _actor_changed(real: Callable[..., Any], table: pa.Table, _d: Any) -> Any:
    actors = table.column("actor").to_pylist()
    actors[7] = "mallory"
    at = table.schema.get_field_index("actor")
    return real(table.set_column(at, "actor", pa.array(actors, type=pa.string())), None)


def _wide(real: Callable[..., Any], table: pa.Table, d: Any) -> Any:
    with pytest.MonkeyPatch.context() as m:
        m.setattr(sideindex, "_WIDTHS", ())  # every index and delta at 8 bytes: same values
        return sideindex.body_of_reference(table, d)  # (the widths of the NumPy writer)


SIGNED: dict[str, Callable[..., Any]] = {
    "a value changed": _actor_changed,
    "a byte past the last column": lambda real, t, d: real(t, d) + b"\x00",
    "a column cut short": lambda real, t, d: real(t, d)[:-3],
}


@pytest.mark.parametrize("what", sorted(SIGNED))
def test_a_side_index_body_stored_under_its_mac_fails_the_same_on_both_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    _build_with(tmp_path, monkeypatch, SIGNED[what])
    encoded = _first_problem(tmp_path)
    with monkeypatch.context() as m:
        _reference(m)
        reference = _first_problem(tmp_path)
    assert encoded is not None, what
    assert encoded == reference, (what, encoded, reference)


def test_a_side_index_body_of_the_same_values_in_other_bytes_verifies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _build_with(tmp_path, monkeypatch, _wide)
    log, ledger = _open(tmp_path)
    try:
        batches = list(ledger.store.iter_stored_batches())
        loaded = [b.load() for b in batches]
        # the middle batch is held in other bytes: the encoded comparison says not the same
        # (equal bytes only), and its values are those of the batch as the others store it
        assert [b.same(x) for b, x in zip(batches, loaded, strict=True)] == [True, False, True]
        again = sideindex.decode_body(
            len(loaded[1]), sideindex.body_of(loaded[1].columns), loaded[1].first
        )
        assert again.equals(loaded[1].columns)
    finally:
        ledger.close()
        log.close()
    assert _first_problem(tmp_path) is None
    with monkeypatch.context() as m:
        _reference(m)
        assert _first_problem(tmp_path) is None


@pytest.mark.parametrize("seed", range(20))
def test_the_encoded_comparison_agrees_with_the_decoded_one(seed: int) -> None:
    """Random side-index tables (nulls in the strings, one or many words, any int64): the body
    round-trips, ``keys_of`` is the decoded table's first three columns, and two tables have
    equal bodies exactly when their columns are equal."""
    rng = random.Random(seed)
    rows = rng.randrange(1, 300)

    def strings(words: int) -> pa.Array:
        pool = [None, "", *(f"w{rng.randrange(10**6)}é" for _ in range(words))]
        return pa.array([rng.choice(pool) for _ in range(rows)], type=pa.string())

    def ints(kind: Any, bits: int) -> pa.Array:
        return pa.array([rng.randrange(-(2**bits), 2**bits) for _ in range(rows)], type=kind)

    def table() -> pa.Table:
        return pa.Table.from_arrays(
            [
                strings(rng.randrange(1, 4)),
                ints(pa.int32(), 31 if rng.random() < 0.3 else 3),
                ints(pa.int64(), 63 if rng.random() < 0.3 else 20),
                ints(pa.int64(), 63 if rng.random() < 0.3 else 40),
                *(strings(rng.randrange(1, 50)) for _ in range(4)),
            ],
            schema=leaf_schema(),
        )

    a = table()
    body = sideindex.body_of(a)
    assert body is not None
    assert sideindex.decode_body(rows, body, 0).equals(a)
    assert sideindex.keys_of(rows, body, 0).equals(a.select(["topic", "part", "off"]))
    b = a.set_column(
        k := rng.randrange(8), a.schema.field(k), pa.concat_arrays([table().column(k).chunk(0)])
    )
    assert (sideindex.body_of(b) == body) == b.equals(a)
