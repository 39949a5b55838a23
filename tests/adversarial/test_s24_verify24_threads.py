"""``hub ledger verify`` on two threads gives the one-thread verdict (session 24, ``verify24``).

With ``LedgerConfig.verify_threads`` 2 or more (``HUB_LEDGER_VERIFY_THREADS``, default 1), a
verification reads and authenticates the log for batch k+1 of the stored leaves while a worker
thread recomputes and compares batch k. Whatever is wrong, and wherever, the report MUST be the
one the one-thread check gives: the same outcome, the same problems in the same order, the same
first problem named, the same counts. The cases below change one byte of a log batch, of a
side-index batch, of a leaf hash or of a checkpoint, at the first, a middle and the last batch
of a ledger of several batches over two partitions (so that a batch fails while the next one is
already read), remove a side-index batch or a log batch, and run full and incremental
verifications, with the natives on and off.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import ledger.leaves as leaves_module
from adapters import tile_sideindex as sideindex
from adapters.local_signer import LocalKeyFileSigner
from adapters.sqlite_log import SqliteEventLog
from adapters.tile_ledgerstore import TileLedgerStore
from core.errors import ConfigError
from core.ports.eventlog import Record
from domain.envelope import Envelope
from hub.settings import load_settings
from ledger.service import Ledger, LedgerConfig
from ledger.verify import Verified, load_verified, verify_ledger, verify_remembered

KEY = b"k" * 32
BATCHES = 6  # one ledger sync (one side-index batch) per append of 500 records


def _records(n: int, start: int) -> list[Record]:
    env = Envelope("hub.trading.TradeExecuted", "ingest-api", tenant="acme")
    return [
        Record(os.urandom(40), b"account-%06d" % (i % 97), env.to_headers())
        for i in range(start, start + n)
    ]


def _open(tmp: Path, threads: int = 2) -> tuple[SqliteEventLog, Ledger]:
    log = SqliteEventLog(tmp / "log.sqlite", synchronous="OFF", mac_key=KEY)
    signer = LocalKeyFileSigner(tmp / "keys" / "ledger.key", "test/ledger")
    config = dataclasses.replace(LedgerConfig("test/ledger"), verify_threads=threads)
    return log, Ledger(log, TileLedgerStore(tmp / "ledger.sqlite"), signer, config)


def _build(tmp: Path) -> None:
    log, ledger = _open(tmp)
    log.create_topic("trades", 2)
    for s in range(0, 500 * BATCHES, 500):
        log.append("trades", _records(500, s))
        ledger.sync(force_checkpoint=True)
    ledger.close()
    log.close()


def _report(tmp: Path, threads: int, since: Verified | None = None) -> dict[str, Any]:
    log, ledger = _open(tmp, threads)
    try:
        got = verify_ledger(ledger, since=since).as_dict()
    finally:
        ledger.close()
        log.close()
    del got["seconds"]
    return got


def _flip(path: Path, table: str, column: str, keys: str, pick: str) -> None:
    """Change one byte in the middle of ``column`` of the ``table`` row ``pick`` selects."""
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


def _delete(path: Path, table: str, pick: str) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute(f"DELETE FROM {table} WHERE rowid = (SELECT rowid FROM {table} {pick})")
        conn.commit()
    finally:
        conn.close()


def _log_batch(k: int) -> Callable[[Path], None]:
    return lambda d: _flip(
        d / "log.sqlite", "batches", "data", "id", f"ORDER BY id LIMIT 1 OFFSET {k}"
    )


def _side_index(k: int) -> Callable[[Path], None]:
    return lambda d: _flip(
        d / "ledger.sqlite", "batches", "cols", "first", f"ORDER BY first LIMIT 1 OFFSET {k}"
    )


TAMPER: dict[str, Callable[[Path], None]] = {
    "log batch, first": _log_batch(0),
    "log batch, middle": _log_batch(5),
    "log batch, last": _log_batch(2 * BATCHES - 1),
    "side index, first": _side_index(0),
    "side index, middle": _side_index(2),
    "side index, last": _side_index(BATCHES - 1),
    "leaf hash": lambda d: _flip(
        d / "ledger.sqlite", "tiles", "data", "level, idx", "WHERE level = 0 LIMIT 1"
    ),
    "leaf hash, last": lambda d: _flip(
        d / "ledger.sqlite",
        "tiles",
        "data",
        "level, idx",
        "WHERE level = 0 ORDER BY idx DESC LIMIT 1",
    ),
    "checkpoint": lambda d: _flip(
        d / "ledger.sqlite", "checkpoints", "note", "size", "ORDER BY size LIMIT 1 OFFSET 2"
    ),
    "side-index batch removed": lambda d: _delete(
        d / "ledger.sqlite", "batches", "ORDER BY first LIMIT 1 OFFSET 3"
    ),
    "log batch removed": lambda d: _delete(
        d / "log.sqlite", "batches", "ORDER BY id LIMIT 1 OFFSET 4"
    ),
}


def test_a_clean_ledger_verifies_alike_on_one_and_two_threads(tmp_path: Path) -> None:
    _build(tmp_path)
    one = _report(tmp_path, 1)
    assert one["ok"] and one["leaves"] == 500 * BATCHES
    assert _report(tmp_path, 2) == one
    assert _report(tmp_path, 8) == one


@pytest.mark.parametrize("what", sorted(TAMPER))
def test_a_tampered_ledger_fails_with_the_same_report_on_one_and_two_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    _build(tmp_path)
    TAMPER[what](tmp_path)
    one = _report(tmp_path, 1)
    assert not one["ok"], what
    assert one["first_problem"]
    assert _report(tmp_path, 2) == one
    with monkeypatch.context() as m:  # the Python leaf encoders (the reference) on the worker
        for name in ("_native_stored_batch", "_native_column_batch", "_native_leaf_batch"):
            m.setattr(leaves_module, name, None)
        assert _report(tmp_path, 2) == _report(tmp_path, 1) == one


@pytest.mark.parametrize("what", ["log batch, last", "side index, last", "leaf hash, last"])
def test_an_incremental_run_fails_alike_on_one_and_two_threads(tmp_path: Path, what: str) -> None:
    log, ledger = _open(tmp_path)
    log.create_topic("trades", 2)
    state = tmp_path / "ledger-verified.note"
    for s in range(0, 500 * BATCHES, 500):
        log.append("trades", _records(500, s))
        ledger.sync(force_checkpoint=True)
        if s == 1000:  # the state remembered after three batches
            run = verify_remembered(ledger, state, log, full=True, full_every_s=10**9)
            assert run.report.ok and run.remember(ledger, state) is not None
    since, why = load_verified(ledger, state)
    assert since is not None and since.size == 1500, why
    ledger.close()
    log.close()
    clean = _report(tmp_path, 1, since)
    assert clean["ok"] and clean["incremental_from"] == 1500
    assert _report(tmp_path, 2, since) == clean
    TAMPER[what](tmp_path)
    one = _report(tmp_path, 1, since)
    assert not one["ok"]
    assert _report(tmp_path, 2, since) == one


def _wide(real: Callable[..., Any], table: pa.Table, d: Any) -> Any:
    """A side-index body of the same values in other bytes (every index at 8 bytes): what an
    older encoder wrote; verify passes it after comparing its values (row by row)."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(sideindex, "_WIDTHS", ())
        return sideindex.body_of_reference(table, d)


@pytest.mark.parametrize("tamper", [None, "last b"])
def test_batches_of_other_partitions_after_one_checked_row_by_row_verify_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tamper: str | None
) -> None:
    """Batches alternate between topics a and b; the batches of a hold their side index in
    other bytes, so each is checked row by row after the next (of b) was already read from
    the log: that read MUST be undone, or b's records would be taken from the wrong place."""
    log, ledger = _open(tmp_path)
    log.create_topic("a", 1)
    log.create_topic("b", 1)
    real = sideindex.body_of
    for k in range(BATCHES):
        log.append("ab"[k % 2], _records(300, 300 * k))
        with monkeypatch.context() as m:
            if k % 2 == 0:
                m.setattr(sideindex, "body_of", lambda t, d=None: _wide(real, t, d))
            ledger.sync(force_checkpoint=True)
    ledger.close()
    log.close()
    if tamper:
        _log_batch(BATCHES - 1)(tmp_path)
    one = _report(tmp_path, 1)
    assert one["ok"] is (tamper is None), one["first_problem"]
    if tamper is None:
        assert one["leaves"] == 300 * BATCHES
    assert _report(tmp_path, 2) == one


def test_the_verify_threads_are_a_hub_setting_from_1_to_8(tmp_path: Path) -> None:
    from hub.bootstrap import bootstrap

    assert load_settings(environ={}).ledger_verify_threads == 1  # session 25: no wall gain
    for bad in ("0", "9", "-1", "two", "1.5"):
        with pytest.raises(ConfigError, match="ledger_verify_threads") as raised:
            load_settings(environ={"HUB_LEDGER_VERIFY_THREADS": bad})
        assert repr(bad) in str(raised.value)
    h = bootstrap(load_settings(environ={"HUB_LEDGER_VERIFY_THREADS": "2"}, data_dir=tmp_path))
    try:
        assert h.ledger.config.verify_threads == 2
        h.ledger.sync()
        assert verify_ledger(h.ledger).ok
    finally:
        h.close()
