"""The embedded log's appends hand their stored batches to the ledger (``EventLog.on_stored``,
``adapters/sqlite_log/handoff.py``): the ledger hashes those instead of reading them back.

The ledger MUST store byte-identical tiles, side index, positions and checkpoints either way
(random appends: plain, column, multi-partition with marker offsets, transactions with several
staged appends, another log object's appends interleaved, sync batches cutting handed batches).
A handed batch reaches the ledger only while the log holds it with the MAC of those bytes:
retention meanwhile, a changed MAC, or forged handed bytes fall back to reading the log, whose
own check decides."""

from __future__ import annotations

import random
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from adapters.local_signer import LocalKeyFileSigner
from adapters.sqlite_log import SqliteEventLog, handoff
from adapters.sqlite_log.auth import ReadChain, StoredRow
from adapters.sqlite_log.handoff import HandedChain
from adapters.tile_ledgerstore import TileLedgerStore
from core.errors import LogTampered
from core.ports.eventlog import ColumnBatch, EncodedColumns, Record
from ledger.service import Ledger, LedgerConfig
from ledger.verify import verify_ledger
from tests.unit.test_ledger_columns import _appends, _dump


@pytest.fixture(autouse=True)
def _hand_every_append(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests hand small appends: the floor that spares them in production is lowered."""
    monkeypatch.setattr(handoff, "MIN_HANDED", 1)


KEY = b"k" * 32


def _ledger(log: SqliteEventLog, folder: Path, key: Path) -> Ledger:
    folder.mkdir(exist_ok=True)
    return Ledger(
        log,
        TileLedgerStore(folder / "ledger.sqlite"),
        LocalKeyFileSigner(key, "test/ledger"),
        LedgerConfig(origin="test/ledger", sync_batch=97, checkpoint_every_leaves=50),
        clock_us=lambda: 1_764_000_000_000_000,
    )


class _Reads:
    """Counts the log reads a ledger makes (``read_encoded``), calling the real one."""

    def __init__(self, log: SqliteEventLog) -> None:
        self.records = 0
        real = log.read_encoded

        def counted(topic: str, part: int, offset: int, n: int = 1000) -> EncodedColumns:
            got = real(topic, part, offset, n)
            self.records += len(got)
            return got

        log.read_encoded = counted  # type: ignore[method-assign,assignment]


def _append_randomly(rnd: random.Random, mine: SqliteEventLog, other: SqliteEventLog) -> int:
    """Random appends through ``mine`` (handed) and ``other`` (another writer: never handed);
    the number of records appended through ``mine``."""
    handed = 0
    for i, (recs, part) in enumerate(_appends(rnd, 30)):
        if part is not None:
            recs = [Record(r.value, r.key, r.headers, r.timestamp_ms, part) for r in recs]
        how = rnd.random()
        if how < 0.15:
            other.append("trades", recs)
            continue
        if how < 0.35:  # a transaction of two staged appends (one marker per partition)
            with mine.transaction(f"t{i}") as txn:
                txn.append("trades", recs)
                txn.append(
                    "hub.audit",
                    [Record(r.value, r.key, r.headers, r.timestamp_ms) for r in recs[:3]],
                )
            handed += len(recs) + min(3, len(recs))
        elif how < 0.5 and all(r.headers == recs[0].headers for r in recs):
            batch = ColumnBatch(
                [r.key for r in recs],
                [r.value for r in recs],
                tuple(name for name, _ in recs[0].headers),
                tuple(value for _, value in recs[0].headers),
                timestamp_ms=recs[0].timestamp_ms,
            )
            mine.append_columns("trades", batch)
            handed += len(recs)
        else:
            mine.append("trades", recs)
            handed += len(recs)
    return handed


@pytest.mark.parametrize("seed", range(3))
def test_handed_stored_batches_store_what_reading_the_log_stores(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    mine = SqliteEventLog(tmp_path / "log.sqlite", mac_key=KEY)
    mine.create_topic("trades", 3)
    mine.create_topic("hub.audit", 1)
    other = SqliteEventLog(tmp_path / "log.sqlite", mac_key=KEY)  # another process's view
    key = tmp_path / "ledger.key"
    handed = _ledger(mine, tmp_path / "handed", key)
    read = _ledger(other, tmp_path / "read", key)  # nothing appended through it: reads
    reads = _Reads(mine)
    appended = 0
    for _ in range(4):
        appended += _append_randomly(rnd, mine, other)
        handed.sync()
        read.sync()
    handed.sync(force_checkpoint=True)
    read.sync(force_checkpoint=True)
    total = handed.store.tree_size()
    assert total == read.store.tree_size() > appended > 0
    # only the other writer's records were read (and a few past a marker offset: a log read
    # asks a number of records, which the markers before the next handed batch do not count)
    assert total - appended <= reads.records <= (total - appended) + 120
    for ledger in (handed, read):
        assert verify_ledger(ledger).ok
    for ledger in (handed, read):
        ledger.close()
    assert _dump(tmp_path / "handed" / "ledger.sqlite") == _dump(
        tmp_path / "read" / "ledger.sqlite"
    )
    mine.close()
    other.close()


def _rows(enc: EncodedColumns) -> tuple[StoredRow, ...]:
    assert isinstance(enc.auth, ReadChain)
    return enc.auth.rows


def _one_append(tmp_path: Path, mac_key: bytes | None = KEY) -> tuple[SqliteEventLog, Ledger]:
    log = SqliteEventLog(tmp_path / "log.sqlite", mac_key=mac_key)
    log.create_topic("trades", 1)
    ledger = _ledger(log, tmp_path / "ledger", tmp_path / "ledger.key")
    log.append("trades", [Record(b"v%d" % i, b"k%d" % i, (), 1_000 + i) for i in range(300)])
    log.append("trades", [Record(b"w%d" % i, b"k%d" % i, (), 2_000 + i) for i in range(300)])
    return log, ledger


@pytest.mark.parametrize("mac_key", [KEY, None])
def test_records_removed_after_the_append_are_read_back_not_handed(
    tmp_path: Path, mac_key: bytes | None
) -> None:
    log, ledger = _one_append(tmp_path, mac_key)
    log.delete_records_before("trades", 0, 450)  # retention before the sync
    reads = _Reads(log)
    ledger.sync(force_checkpoint=True)
    assert ledger.store.tree_size() == 150  # the records the log still holds, read back
    assert reads.records == 150
    assert [r[3] for r in ledger.store.query()][:2] == [450, 451]
    ledger.close()
    log.close()


def test_a_changed_mac_in_the_log_refuses_the_handed_batch(tmp_path: Path) -> None:
    log, ledger = _one_append(tmp_path)
    with sqlite3.connect(tmp_path / "log.sqlite") as conn:
        conn.execute("UPDATE batches SET mac = zeroblob(32) WHERE base_offset = 300")
    with pytest.raises(LogTampered, match="offset 300"):
        ledger.sync()
    assert ledger.store.tree_size() <= 300  # nothing of the failing batch adopted
    ledger.close()
    log.close()


def test_rewritten_stored_bytes_leave_the_appended_leaf_and_fail_verify(tmp_path: Path) -> None:
    """The handed check compares MACs, not the stored copy: a batch rewritten in the file after
    the append (no key) gets the leaf of what was appended, and verify names the batch."""
    log, ledger = _one_append(tmp_path)
    honest = _ledger(
        SqliteEventLog(tmp_path / "log.sqlite", mac_key=KEY), tmp_path / "h", tmp_path / "k"
    )
    honest.sync()  # read back before the rewrite
    blob = _rows(log.read_encoded("trades", 0, 0, 1))[0][5]
    with sqlite3.connect(tmp_path / "log.sqlite") as conn:
        conn.execute(
            "UPDATE batches SET data = ? WHERE base_offset = 300",
            (blob,),  # another (valid) batch's bytes
        )
    ledger.sync()
    assert [r[9] for r in ledger.store.query()] == [r[9] for r in honest.store.query()]
    report = verify_ledger(ledger)
    assert not report.ok
    assert any("300" in p.describe() for p in report.problems)
    for x in (ledger, honest):
        x.close()
    log.close()


def test_forged_handed_bytes_never_reach_the_ledger(tmp_path: Path) -> None:
    """Bytes handed with a MAC that is not the stored one (an in-process bug) are refused by
    the check and the range is read back: the ledger holds the log's records."""
    log, ledger = _one_append(tmp_path)
    second = log.read_encoded("trades", 0, 300, 300)
    forged = EncodedColumns(
        "trades",
        0,
        tuple(replace(b, base_offset=b.base_offset - 300) for b in second.batches),
        second.decode,
        HandedChain(
            tuple((r[0] - 300, r[1] - 300, *r[2:4], b"x" * 32, r[5]) for r in _rows(second))
        ),
    )
    ledger._stored.clear()
    ledger._stored.add("trades", 0, 0, 300, 300, lambda: forged)  # 0-299: the 2nd batch's bytes
    honest = _ledger(
        SqliteEventLog(tmp_path / "log.sqlite", mac_key=KEY), tmp_path / "h", tmp_path / "k"
    )
    ledger.sync(force_checkpoint=True)
    honest.sync(force_checkpoint=True)
    assert [r[9] for r in ledger.store.query()] == [r[9] for r in honest.store.query()]
    assert verify_ledger(ledger).ok
    for x in (ledger, honest):
        x.close()
    log.close()


def test_a_handed_batch_that_a_log_read_also_carried_is_still_checked(tmp_path: Path) -> None:
    """A log read past a transaction marker takes the first record of the handed batch after
    it; the rest of that batch comes from the handed bytes, which are checked on their own
    (not only the read's copy of the batch)."""
    mine = SqliteEventLog(tmp_path / "log.sqlite", mac_key=KEY)
    mine.create_topic("trades", 1)
    other = SqliteEventLog(tmp_path / "log.sqlite", mac_key=KEY)
    ledger = _ledger(mine, tmp_path / "ledger", tmp_path / "ledger.key")
    with other.transaction("t") as txn:  # offsets 0-9, then the marker at 10
        txn.append("trades", [Record(b"o%d" % i, b"k", (), 1_000) for i in range(10)])
    mine.append("trades", [Record(b"v%d" % i, b"k%d" % i, (), 2_000 + i) for i in range(300)])
    mine.append("trades", [Record(b"w%d" % i, b"k%d" % i, (), 3_000 + i) for i in range(300)])
    second = mine.read_encoded("trades", 0, 311, 300)
    forged = EncodedColumns(  # the second batch's bytes claimed for the first (offsets 11-310)
        "trades",
        0,
        tuple(replace(b, base_offset=11) for b in second.batches),
        second.decode,
        HandedChain(tuple((11, 310, *r[2:4], b"x" * 32, r[5]) for r in _rows(second))),
    )
    ledger._stored.clear()
    ledger._stored.add("trades", 0, 11, 311, 311, lambda: forged)
    reads = _Reads(mine)
    ledger.sync(force_checkpoint=True)
    assert reads.records >= 11  # the read ran past the marker into offset 11
    honest = _ledger(other, tmp_path / "h", tmp_path / "ledger.key")
    honest.sync(force_checkpoint=True)
    assert [r[9] for r in ledger.store.query()] == [r[9] for r in honest.store.query()]
    assert verify_ledger(ledger).ok
    for x in (ledger, honest):
        x.close()
    mine.close()
    other.close()


def test_appends_below_the_floor_are_read_back_not_handed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Production floor (``MIN_HANDED``): a small append hands nothing (its sync reads it back,
    where the read is the cheaper path); one at the floor is handed and not read back; the
    ledger stores the same leaves either way."""
    monkeypatch.setattr(handoff, "MIN_HANDED", 256)
    log = SqliteEventLog(tmp_path / "log.sqlite", mac_key=KEY)
    log.create_topic("t", 1)
    ledger = _ledger(log, tmp_path / "l", tmp_path / "k")
    reads = _Reads(log)
    log.append("t", [Record(b"s%d" % i) for i in range(255)])
    assert len(ledger._stored) == 0
    ledger.sync()
    assert reads.records == 255
    log.append("t", [Record(b"b%d" % i) for i in range(256)])
    assert len(ledger._stored) == 256
    ledger.sync()
    assert reads.records == 255 and ledger.store.tree_size() == 511
    assert verify_ledger(ledger).ok
    ledger.close()
    log.close()
