"""The native ledger batch (``native/src/ledger_batch.rs``: leaf hashes and side-index columns
in one call) gives exactly what the pure-Python reference gives (``audit.leaf.encode`` and
``ledger.leaves.query_columns`` record by record): the same leaf hashes, the same columns, the
same side-index bytes; records it cannot take go the Python way with the reference's errors;
a ledger synced either way stores the same tiles and side index, and a tampered store gets the
same verdict, naming the same place, either way."""

from __future__ import annotations

import dataclasses
import hashlib
import random
import sqlite3
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import ledger.leaves as leaves_module
from adapters.local_signer import LocalKeyFileSigner
from adapters.sqlite_log import SqliteEventLog
from adapters.sqlite_log.batch import encode_batch, open_batch
from adapters.tile_ledgerstore import TileLedgerStore, decode_side_index, encode_side_index
from audit import leaf as leaf_format
from core.ports.eventlog import Record, StoredRecord
from domain.envelope import is_envelope_header
from ledger.leaves import LeafEncoder, leaf_batch_reference
from ledger.service import Ledger, LedgerConfig
from ledger.verify import verify_ledger
from tests.native import native_module

QUERY = ("ce_source", "hub_action", "ce_type", "ce_subject", "ce_tenant")


@pytest.fixture(scope="module")
def native() -> Any:
    return native_module("record_leaf_batch")


def _value(rnd: random.Random) -> bytes:
    return rnd.choice(
        (
            b"",
            b"ingest-api",
            "h\u00e9llo \u6f22 \U0001f600".encode(),
            b"\xff\xfe bad \xed\xa0\x80 utf8 \xe6\xbc",  # invalid: U+FFFD the way Python does it
            rnd.randbytes(rnd.randint(1, 40)),
            b"acme",
        )
    )


def records(rnd: random.Random, n: int) -> list[StoredRecord]:
    shared = [(name, _value(rnd)) for name in QUERY for _ in range(3)]  # one object, many uses
    out = []
    for i in range(n):
        headers: list[tuple[str, bytes]] = []
        for _ in range(rnd.choice((0, 1, 4, 9))):
            pick = rnd.random()
            if pick < 0.4:
                headers.append(rnd.choice(shared))
            elif pick < 0.7:  # equal content, another object
                headers.append((rnd.choice(QUERY), bytes(bytearray(_value(rnd)))))
            else:
                headers.append((rnd.choice(("ce_id", "x-\u00e9", "")), rnd.randbytes(8)))
        # an envelope name at most once (a repeated one sends the batch to Python: below)
        once: list[tuple[str, bytes]] = []
        for h in headers:
            if not is_envelope_header(h[0]) or h[0] not in {k for k, _ in once}:
                once.append(h)
        headers = once
        out.append(
            StoredRecord(
                topic=rnd.choice(("trades", "hub.audit", "t\u00e9")),
                partition=rnd.choice((0, 1, 7, 2**31 - 1)),
                offset=rnd.choice((i, 2**63 - 1)),
                timestamp_ms=rnd.choice((0, 1_764_000_000_000, -1, -(2**63), 2**63 - 1)),
                key=rnd.choice(
                    (None, b"", b"account-7", b"\xff\x00binary", rnd.randbytes(rnd.randint(1, 9)))
                ),
                value=rnd.choice((None, b"", rnd.randbytes(rnd.randint(1, 300)))),
                headers=tuple(headers) if rnd.random() < 0.8 else headers,  # type: ignore[arg-type]
            )
        )
    return out


def _same(a: Any, b: Any) -> None:
    assert a.first == b.first
    assert a.hashes == b.hashes
    assert a.columns.equals(b.columns), (a.columns.to_pylist()[:3], b.columns.to_pylist()[:3])
    assert encode_side_index(a.columns) == encode_side_index(b.columns)
    assert a.rows() == b.rows()


@pytest.mark.parametrize("seed", range(4))
def test_native_batch_equals_reference(native: Any, seed: int) -> None:
    rnd = random.Random(seed)
    recs = records(rnd, 400)
    assert native.record_leaf_batch(recs) is not None  # the native path really ran
    ref = leaf_batch_reference(recs, 17)
    _same(LeafEncoder().leaf_batch(recs, 17), ref)
    _same(LeafEncoder()._leaf_batch_py(recs, 17), ref)  # the Python fallback too


def test_unusual_records_take_the_python_path(native: Any) -> None:
    rnd = random.Random(9)
    recs = records(rnd, 20)
    # out of the side index's int32/int64 range (the leaf format takes them): Python decides
    wide = StoredRecord("t", 2**32 - 1, 2**64 - 1, 0, None, None, ())
    assert native.record_leaf_batch([*recs, wide]) is None
    with pytest.raises(Exception) as native_err:
        LeafEncoder().leaf_batch([*recs, wide], 0)
    with pytest.raises(Exception) as ref_err:
        leaf_batch_reference([*recs, wide], 0)
    assert type(native_err.value) is type(ref_err.value)
    bad = StoredRecord("t", 0, 1, 0, "not bytes", None, ())  # type: ignore[arg-type]
    assert native.record_leaf_batch([bad]) is None
    with pytest.raises(TypeError):
        LeafEncoder().leaf_batch([bad], 0)
    # an envelope header carried twice: declined, and the Python path reads it as absent
    twice = StoredRecord("t", 0, 2, 0, None, None, (("ce_tenant", b"a"), ("ce_tenant", b"b")))
    assert native.record_leaf_batch([*recs, twice]) is None
    enc = LeafEncoder()
    _same(enc.leaf_batch([*recs, twice], 0), leaf_batch_reference([*recs, twice], 0))
    assert enc.duplicates == [(len(recs), "ce_tenant")]
    long_topic = StoredRecord("x" * 70_000, 0, 1, 0, None, None, ())
    with pytest.raises(leaf_format.LeafError):
        LeafEncoder().leaf_batch([long_topic], 0)


def _ledger(tmp: Path, log: SqliteEventLog) -> Ledger:
    signer = LocalKeyFileSigner(tmp.parent.parent / "ledger.key", "test/ledger")
    return Ledger(log, TileLedgerStore(tmp), signer, LedgerConfig(origin="test/ledger"))


def _dump(path: Path) -> list[Any]:
    with sqlite3.connect(path) as conn:
        return [
            conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
            for t in ("tiles", "batches", "ranges", "positions")
        ]


def _tamper(path: Path, what: str) -> None:
    with sqlite3.connect(path) as conn:
        if what == "tile":
            (data,) = conn.execute("SELECT data FROM tiles WHERE level = 0 AND idx = 1").fetchone()
            data = bytearray(data)
            data[5 * 32 + 3] ^= 1
            conn.execute("UPDATE tiles SET data = ? WHERE level = 0 AND idx = 1", (bytes(data),))
        elif what == "side index, digest redone":  # a column rewritten with a fresh SHA-256
            first, blob = conn.execute("SELECT first, cols FROM batches LIMIT 1").fetchone()
            table = decode_side_index(bytes(blob))
            actors = table.column("actor").to_pylist()
            actors[7] = "mallory"
            table = table.set_column(4, "actor", pa.array(actors, pa.string()))
            blob = encode_side_index(table)
            conn.execute(
                "UPDATE batches SET cols = ?, digest = ? WHERE first = ?",
                (blob, hashlib.sha256(blob).digest(), first),
            )
        else:  # the side index: one byte of a batch's columns
            first, blob = conn.execute("SELECT first, cols FROM batches LIMIT 1").fetchone()
            blob = bytearray(blob)
            blob[len(blob) // 2] ^= 0x40
            conn.execute("UPDATE batches SET cols = ? WHERE first = ?", (bytes(blob), first))


@pytest.mark.parametrize("damage", ["tile", "side index", "side index, digest redone", "log"])
def test_native_and_python_ledgers_store_and_judge_alike(
    native: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    verdicts = []
    dumps = []
    for way in ("native", "python"):
        if way == "python":
            monkeypatch.setattr(leaves_module, "_native_leaf_batch", None)
            monkeypatch.setattr(leaves_module, "_native_record_hashes", None)
            monkeypatch.setattr(leaves_module, "_native_column_batch", None)
            monkeypatch.setattr(leaves_module, "_native_stored_batch", None)
        folder = tmp_path / way
        folder.mkdir()
        log = SqliteEventLog(folder / "log.sqlite", mac_key=b"k" * 32)
        log.create_topic("trades", 2)
        recs = records(random.Random(1), 700)
        for part in (0, 1):
            log.append(
                "trades",
                [
                    Record(r.value, r.key, tuple(r.headers), 1_764_000_000_000 + i, part)
                    for i, r in enumerate(recs[part::2])
                ],
            )
        ledger = Ledger(
            log,
            TileLedgerStore(folder / "ledger.sqlite"),
            LocalKeyFileSigner(tmp_path / "ledger.key", "test/ledger"),
            LedgerConfig(origin="test/ledger", sync_batch=256),
        )
        ledger.sync(force_checkpoint=True)
        assert verify_ledger(ledger).ok
        dumps.append(_dump(folder / "ledger.sqlite"))
        ledger.store.close()
        if damage == "log":  # a record read back changed after its leaf: leaves differ
            # (verify reads the log as columns, the way the sync does)
            monkeypatch.setattr(log, "read_columns", altered_read_columns(log.read_columns, 300))
            monkeypatch.setattr(log, "read_encoded", altered_read_encoded(log.read_encoded, 0, 300))
        else:
            _tamper(folder / "ledger.sqlite", damage)
        ledger = _ledger(folder / "ledger.sqlite", log)
        report = verify_ledger(ledger)
        assert not report.ok
        first = report.first
        assert first is not None
        verdicts.append(first.describe().replace(str(folder), "<dir>"))
        assert first.index == {"tile": 261, "log": 300}.get(damage, first.index)
        ledger.store.close()
        log.close()
        monkeypatch.undo()
    assert dumps[0] == dumps[1]  # the same tiles, side index, ranges and positions
    assert verdicts[0] == verdicts[1], verdicts


def altered_read_columns(read_columns: Any, at: int) -> Any:
    """The log's column read as if record ``at`` of partition 0 had another value (the MAC
    check aside)."""

    def altered(topic: str, part: int, offset: int, max_records: int = 1000) -> Any:
        got = read_columns(topic, part, offset, max_records)
        if part != 0 or at not in got.offsets:
            return got
        values = list(got.values)
        values[list(got.offsets).index(at)] = b"changed"
        return dataclasses.replace(got, values=values, built_from=None)

    return altered


def altered_read_encoded(
    read_encoded: Any, at_part: int, at: int, value: bytes = b"changed"
) -> Any:
    """The log's stored-batch read as if record ``at`` of partition ``at_part`` had another
    value: its batch decoded, changed and encoded again (the MAC check aside)."""

    def altered(topic: str, part: int, offset: int, max_records: int = 1000) -> Any:
        got = read_encoded(topic, part, offset, max_records)
        if got is None or part != at_part or at not in got.offsets:
            return got
        batches = []
        for b in got.batches:
            if b.base_offset <= at < b.base_offset + b.count:
                whole = got.decode(
                    got.topic, got.partition, [dataclasses.replace(b, start=0, stop=b.count)]
                )
                values = list(whole.values)
                values[at - b.base_offset] = value
                blob = encode_batch(whole.keys, values, whole.header_rows(), whole.timestamps)
                ob = open_batch(blob)
                b = dataclasses.replace(
                    b,
                    flags=ob.flags,
                    layout=ob.layout,
                    base_timestamp=ob.base_timestamp,
                    body=ob.body,
                    pos=ob.pos,
                )
            batches.append(b)
        return dataclasses.replace(got, batches=tuple(batches))

    return altered
