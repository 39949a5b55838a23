"""``hub ledger verify`` with the native paths and with the pure-Python reference (session 21).

Session 21 moved more of a verification's reads into native code and the page cache: the log's
stored-batch CRC (``adapters.sqlite_log.batch.stored_crc``, native ``crc32_from``) and
memory-mapped reads of the log and the tile store (``adapters.sqlite_open.MMAP_BYTES``). A
faster path must refuse exactly what the reference refuses: one byte changed in a stored log
batch, a side-index batch, a leaf hash (a level-0 tile) or a checkpoint's note fails the
verification, with the same first problem on both paths (the natives off: the log's CRC by
``zlib``, the leaves by ``ledger.leaves``' Python encoders).
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
from core.ports.ledgerstore import leaf_schema
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
    """Every native path a verification takes off: the pure-Python references run."""
    monkeypatch.setattr(batch_module, "native_crc32_from", None)
    for name in ("_native_stored_batch", "_native_column_batch", "_native_leaf_batch"):
        monkeypatch.setattr(leaves_module, name, None)


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
