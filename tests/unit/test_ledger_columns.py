"""The ledger reads the log as columns (``EventLog.read_columns`` into
``LeafEncoder.column_batch``, native ``column_leaf_batch``): the leaves, side index, tiles and
checkpoint roots MUST be byte-identical to the record path (``read`` -> ``StoredRecord`` ->
``leaf_batch``), which stays the reference. Random records with odd headers: the envelope
(header columns with shared and per-record values), repeated and empty names, invalid UTF-8,
no headers, null and binary keys and values, transactions leaving marker offsets, batches that
a sync cuts in the middle."""

from __future__ import annotations

import dataclasses
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from adapters.local_signer import LocalKeyFileSigner
from adapters.sqlite_log import SqliteEventLog
from adapters.tile_ledgerstore import TileLedgerStore, encode_side_index
from core.ports.eventlog import EventLog, Headers, Record, RecordColumns
from domain.envelope import is_envelope_header
from ledger.leaves import LeafEncoder, leaf_batch_reference
from ledger.service import Ledger, LedgerConfig
from ledger.verify import save_verified, verify_ledger
from tests.native import native_module
from tests.unit.test_native_ledger_batch import altered_read_encoded

QUERY = ("ce_source", "hub_action", "ce_type", "ce_subject", "ce_tenant")
ODD = (
    b"",
    b"\xff\xfe bad \xed\xa0\x80 utf8",
    "h\u00e9llo \U0001f600".encode(),
    b"acme",
    b"\x00\x01",
)


@pytest.fixture(scope="module")
def native() -> Any:
    return native_module("column_leaf_batch")


class RecordPathLog(SqliteEventLog):
    """The same log, read the way the ledger read it before: ``read_columns`` is the port's
    default (``read``, one ``StoredRecord`` per record, headers per record)."""

    read_columns = EventLog.read_columns
    read_encoded = EventLog.read_encoded


def _once(names: list[str]) -> list[str]:
    """``names`` with each envelope name kept once (the log refuses one twice); other names may
    repeat."""
    out: list[str] = []
    for name in names:
        if not is_envelope_header(name) or name not in out:
            out.append(name)
    return out


def _appends(rnd: random.Random, n_appends: int) -> list[tuple[list[Record], int | None]]:
    """Appends of one header shape each; partition None spreads an append over partitions."""
    out = []
    for a in range(n_appends):
        n = rnd.randint(1, 120)
        shape = rnd.choice(("envelope", "envelope", "pairs", "none"))
        names = _once(
            [rnd.choice((*QUERY, "ce_id", "x-\u00e9", "")) for _ in range(rnd.randint(1, 8))]
        )
        shared = {name: rnd.choice(ODD) for name in names}
        varies = {name: rnd.random() < 0.5 for name in names}
        recs = []
        for i in range(n):
            headers: Headers
            if shape == "envelope":  # same names, same order: stored as columns
                headers = tuple(
                    (name, b"%d-%d" % (a, i) if varies[name] else shared[name]) for name in names
                )
            elif shape == "pairs":  # names vary per record: the pair layout
                headers = tuple(
                    (name, rnd.choice(ODD))
                    for name in _once([rnd.choice(QUERY) for _ in range(rnd.randint(0, 5))])
                )
            else:
                headers = ()
            recs.append(
                Record(
                    value=rnd.choice((None, b"", rnd.randbytes(rnd.randint(1, 200)))),
                    key=rnd.choice((None, b"", b"acct-%d" % (i % 4), b"\xff\x00bin")),
                    headers=headers,
                    timestamp_ms=rnd.choice(
                        (1_764_000_000_000 + i, 0, 2**40)
                    ),  # not None: no wall time
                )
            )
        out.append((recs, rnd.choice((0, 1, 2, None))))
    return out


def _fill(log: SqliteEventLog, rnd: random.Random) -> None:
    log.create_topic("trades", 3)
    log.create_topic("hub.audit", 1)
    for recs, part in _appends(rnd, 14):
        if part is None:
            log.append("trades", recs)  # keyed routing: a transaction with marker offsets
        else:
            topic = "hub.audit" if part == 2 and rnd.random() < 0.5 else "trades"
            log.append(topic, [Record(r.value, r.key, r.headers, r.timestamp_ms, 0) for r in recs])


def _dump(path: Path) -> list[Any]:
    with sqlite3.connect(path) as conn:
        return [
            conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
            for t in ("tiles", "batches", "ranges", "positions")
        ]


@pytest.mark.parametrize("seed", range(3))
def test_sync_by_columns_stores_what_sync_by_records_stores(
    native: Any, tmp_path: Path, seed: int
) -> None:
    dumps, roots = [], []
    for way, cls in (("columns", SqliteEventLog), ("records", RecordPathLog)):
        folder = tmp_path / way
        folder.mkdir()
        log = cls(folder / "log.sqlite", mac_key=b"k" * 32)
        _fill(log, random.Random(seed))
        ledger = Ledger(
            log,
            TileLedgerStore(folder / "ledger.sqlite"),
            LocalKeyFileSigner(tmp_path / "ledger.key", "test/ledger"),
            LedgerConfig(origin="test/ledger", sync_batch=97, checkpoint_every_leaves=50),
        )
        ledger.sync(force_checkpoint=True)
        if way == "columns":
            log.read("trades", 0, 0, 5)  # read's cache does not change what columns give
        log.append("trades", [Record(b"late", b"k", (("ce_type", b"Late"),), 5, 0)])
        ledger.sync(force_checkpoint=True)
        assert verify_ledger(ledger).ok
        roots.append([(c.size, c.root) for c in ledger.store.checkpoints(min_size=0)])
        ledger.store.close()
        log.close()
        dumps.append(_dump(folder / "ledger.sqlite"))
    assert dumps[0] == dumps[1]  # the same tiles, side index, ranges and positions
    assert roots[0] == roots[1]


def _heads(c: RecordColumns) -> tuple[object, object]:
    return c.header_names, c.header_values


def _same(a: Any, b: Any) -> None:
    assert a.hashes == b.hashes
    assert a.columns.equals(b.columns)
    assert encode_side_index(a.columns) == encode_side_index(b.columns)
    for x in (a, b):  # the encoder's dictionaries, where handed on, write the same side index
        assert encode_side_index(x.columns, dictionaries=x.dictionaries) == encode_side_index(
            x.columns
        )


@pytest.mark.parametrize("seed", range(3))
def test_column_batch_equals_the_reference(native: Any, tmp_path: Path, seed: int) -> None:
    log = SqliteEventLog(tmp_path / "log.sqlite")
    _fill(log, random.Random(seed))
    rnd = random.Random(seed)
    chunks: list[RecordColumns] = []
    for topic in ("hub.audit", "trades"):
        for part in log.end_offsets(topic):
            pos = rnd.randint(0, 3)
            while True:
                c = log.read_columns(topic, part, pos, rnd.randint(1, 150))
                if not len(c):
                    break
                chunks.append(c)
                pos = c.offsets[-1] + 1
    assert any(c.header_names for c in chunks)  # the native column path ran on some
    records = [r for c in chunks for r in c.records()]
    ref = leaf_batch_reference(records, 11)
    _same(LeafEncoder().column_batch(chunks, 11), ref)
    columnar = [c for c in chunks if c.header_names is not None]
    args = [
        # offsets as a list: the non-dense form
        (c.topic, c.partition, list(c.offsets), c.timestamps, c.keys, c.values, *_heads(c))
        for c in columnar
    ]
    assert native.column_leaf_batch(args) is not None
    _same(
        LeafEncoder().column_batch(columnar, 0),
        leaf_batch_reference([r for c in columnar for r in c.records()], 0),
    )
    log.close()


def test_unusual_columns_take_the_record_path(native: Any) -> None:
    base = ("t", 0, 0, [1], [None], [b"v"], ("ce_type",), ([b"T"],))
    assert native.column_leaf_batch([base]) is not None
    for i, bad in [
        (1, 2**32),  # partition outside the leaf's u32
        (1, 2**31),  # outside the side index's int32
        (2, 2**63),  # offset outside int64
        (3, ["1"]),  # a timestamp that is no int
        (4, ["k"]),  # a key that is no bytes
        (5, [b"a", b"b"]),  # a column of another length
        (7, (["T"],)),  # a header value that is no bytes
        (6, ("a", "b")),  # names and columns disagree
    ]:
        args = list(base)
        args[i] = bad
        assert native.column_leaf_batch([tuple(args)]) is None, (i, bad)
    # the encoder then takes the records' path, which gives the reference's answer or error
    wide = RecordColumns("t", 2**31, [0], [1], [None], [b"v"], ("ce_type",), ([b"T"],))
    with pytest.raises(Exception) as got:
        LeafEncoder().column_batch([wide], 0)
    with pytest.raises(Exception) as ref:
        leaf_batch_reference(wide.records(), 0)
    assert type(got.value) is type(ref.value)
    bad_key = RecordColumns("t", 0, [0], [1], ["k"], [b"v"], ("a",), ([b"T"],))  # type: ignore[list-item]
    with pytest.raises(TypeError):
        LeafEncoder().column_batch([bad_key], 0)


@pytest.mark.parametrize("way", ["columns", "records"])
def test_verify_catches_a_changed_record_in_the_column_read(
    native: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    """Verify recomputes each leaf from what ``read_columns`` gives (columns from SQLite, or
    the port's default built from ``read``): a record changed there after its leaf is named at
    its entry. Fails if verify stopped reading the log or read it some other way."""
    log = (SqliteEventLog if way == "columns" else RecordPathLog)(
        tmp_path / "log.sqlite", mac_key=b"k" * 32
    )
    _fill(log, random.Random(7))
    ledger = Ledger(
        log,
        TileLedgerStore(tmp_path / "ledger.sqlite"),
        LocalKeyFileSigner(tmp_path / "ledger.key", "test/ledger"),
        LedgerConfig(origin="test/ledger", sync_batch=97, checkpoint_every_leaves=50),
    )
    ledger.sync(force_checkpoint=True)
    assert verify_ledger(ledger).ok
    rows = [row for batch in ledger.store.iter_leaves(start=0) for row in batch]
    idx, topic, part, off = rows[len(rows) * 2 // 3][:4]
    real = log.read_columns
    calls: list[tuple[str, int, int]] = []

    def altered(t: str, p: int, offset: int, max_records: int = 1000) -> RecordColumns:
        got = real(t, p, offset, max_records)
        calls.append((t, p, offset))
        if (t, p) != (topic, part) or off not in got.offsets:
            return got
        values = list(got.values)
        values[list(got.offsets).index(off)] = b"changed after its leaf"
        return dataclasses.replace(got, values=values, built_from=None)

    monkeypatch.setattr(log, "read_columns", altered)
    if way == "columns":  # the stored batches the ledger reads first, changed alike
        encoded = altered_read_encoded(log.read_encoded, part, off, b"changed after its leaf")

        def altered_encoded(t: str, p: int, offset: int, max_records: int = 1000) -> Any:
            calls.append((t, p, offset))
            return encoded(t, p, offset, max_records)

        monkeypatch.setattr(log, "read_encoded", altered_encoded)
    report = verify_ledger(ledger)
    assert not report.ok
    first = report.first
    assert first is not None
    assert (first.index, first.topic, first.partition, first.offset) == (idx, topic, part, off)
    assert "leaf hash differs" in first.what, first.what
    assert calls  # the leaves were checked against the column read
    ledger.store.close()
    log.close()


@pytest.mark.parametrize("seed", range(2))
def test_save_verified_remembers_each_partitions_last_offset(tmp_path: Path, seed: int) -> None:
    """``save_verified`` reads the offsets from the side-index columns: each (topic,
    partition)'s last offset below the checkpoint, as the row-by-row walk finds them, from 0
    and from an earlier remembered size."""
    log = SqliteEventLog(tmp_path / "log.sqlite", mac_key=b"k" * 32)
    _fill(log, random.Random(seed))
    ledger = Ledger(
        log,
        TileLedgerStore(tmp_path / "ledger.sqlite"),
        LocalKeyFileSigner(tmp_path / "ledger.key", "test/ledger"),
        LedgerConfig(origin="test/ledger", sync_batch=97, checkpoint_every_leaves=50),
    )
    try:
        ledger.sync(force_checkpoint=True)
        cps = ledger.store.checkpoints(min_size=0)
        prev = None
        for cp in (cps[len(cps) // 2], cps[-1]):
            report = verify_ledger(ledger)
            got = save_verified(ledger, tmp_path / "state.note", report, cp, 1, prev)
            assert got is not None
            want: dict[tuple[str, int], int] = {}
            for rows in ledger.store.iter_leaves():
                want.update(((r[1], r[2]), r[3]) for r in rows if r[0] < cp.size)
            assert got.last_offsets == want and want
            prev = got
    finally:
        ledger.store.close()
        log.close()
