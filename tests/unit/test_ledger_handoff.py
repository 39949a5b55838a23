"""``Ledger.cover(handed=...)``: the records a caller just appended, handed over as columns
(``appended_columns``, from the append's own metadata) instead of read back from the log.

The ledger MUST store byte-identical tiles, side index, positions and checkpoints either way
(random appends: header columns and per-record headers, keyed routing with marker offsets,
wall-clock timestamps, sync batches that cut a handed chunk). The handoff is the caller's word,
not the log's: ``hub ledger verify`` re-derives every leaf from the log, so columns that differ
from what was stored are caught there."""

from __future__ import annotations

import random
from pathlib import Path

from adapters.local_signer import LocalKeyFileSigner
from adapters.sqlite_log import SqliteEventLog
from adapters.tile_ledgerstore import TileLedgerStore
from core.ports.eventlog import Record, RecordColumns, appended_columns
from ledger.service import Ledger, LedgerConfig
from ledger.verify import verify_ledger
from tests.unit.test_ledger_columns import _appends, _dump


def _ledger(log: SqliteEventLog, folder: Path, key: Path) -> Ledger:
    return Ledger(
        log,
        TileLedgerStore(folder / "ledger.sqlite"),
        LocalKeyFileSigner(key, "test/ledger"),
        LedgerConfig(origin="test/ledger", sync_batch=97, checkpoint_every_leaves=50),
        clock_us=lambda: 1_764_000_000_000_000,
    )


def test_handed_columns_are_what_the_log_stored(tmp_path: Path) -> None:
    rnd = random.Random(7)
    log = SqliteEventLog(tmp_path / "log.sqlite")
    log.create_topic("trades", 3)
    for recs, part in _appends(rnd, 20):
        if rnd.random() < 0.3:  # the log stamps the time
            recs = [Record(r.value, r.key, r.headers, None, r.partition) for r in recs]
        if part is not None:
            recs = [Record(r.value, r.key, r.headers, r.timestamp_ms, part) for r in recs]
        metas = log.append("trades", recs)
        for c in appended_columns("trades", recs, metas):
            stored = log.read_columns("trades", c.partition, c.offsets[0], len(c))
            assert list(stored.offsets) == list(c.offsets)
            assert stored.records() == c.records()
    log.close()


def test_cover_with_handed_columns_stores_what_reading_the_log_stores(tmp_path: Path) -> None:
    rnd = random.Random(11)
    log = SqliteEventLog(tmp_path / "log.sqlite", mac_key=b"k" * 32)
    log.create_topic("trades", 3)
    log.create_topic("hub.audit", 1)
    (tmp_path / "handed").mkdir()
    (tmp_path / "read").mkdir()
    key = tmp_path / "ledger.key"
    handed, read = _ledger(log, tmp_path / "handed", key), _ledger(log, tmp_path / "read", key)
    used = 0
    for i, (recs, part) in enumerate(_appends(rnd, 40)):
        if i % 3 == 0:
            recs = [Record(r.value, r.key, r.headers, None, r.partition) for r in recs]
        topic = "hub.audit" if part == 2 and rnd.random() < 0.5 else "trades"
        if part is not None:
            recs = [Record(r.value, r.key, r.headers, r.timestamp_ms, 0) for r in recs]
        metas = log.append(topic, recs)
        cols = appended_columns(topic, recs, metas)
        used += sum(c.header_names is not None for c in cols)
        if rnd.random() < 0.2:  # another writer's records, never handed over
            log.append("trades", [Record(b"other", b"k", (("ce_type", b"X"),), None, 1)])
        got = handed.cover(metas, handed=cols)
        assert got["covered"], got
        assert read.cover(metas)["covered"]
    assert used  # the header-column form was handed over
    for ledger in (handed, read):
        assert verify_ledger(ledger).ok
    cps = [
        [(c.size, c.root, c.note) for c in x.store.checkpoints(min_size=0)] for x in (handed, read)
    ]
    assert cps[0] == cps[1]
    for ledger in (handed, read):
        ledger.store.close()
    assert _dump(tmp_path / "handed" / "ledger.sqlite") == _dump(
        tmp_path / "read" / "ledger.sqlite"
    )
    log.close()


def test_verify_catches_handed_columns_that_differ_from_the_log(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "log.sqlite", mac_key=b"k" * 32)
    log.create_topic("trades", 1)
    ledger = _ledger(log, tmp_path, tmp_path / "ledger.key")
    recs = [Record(b"v%d" % i, b"k", (("ce_type", b"Trade"),), None) for i in range(20)]
    metas = log.append("trades", recs)
    (c,) = appended_columns("trades", recs, metas)
    values = list(c.values)
    values[13] = b"not what was appended"
    lie = RecordColumns(
        c.topic, c.partition, c.offsets, c.timestamps, c.keys, values,
        c.header_names, c.header_values,
    )  # fmt: skip
    assert ledger.cover(metas, handed=[lie])["covered"]  # the ledger took the caller's word
    report = verify_ledger(ledger)
    assert not report.ok
    first = report.first
    assert first is not None and first.index == 13, report.as_dict()["first_problem"]
    ledger.store.close()
    log.close()
