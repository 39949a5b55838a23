"""An incremental ``hub ledger verify`` decodes the new entries, not the whole ledger (#13 item 4).

The scaling run found the incremental verify decoding every side-index batch of the tile store
(``integrity_problems``), the ones an earlier run verified too: its cost grew with the ledger.
Those batches are now left to the periodic full verify, like their leaves; the batches the run
reads are decoded once."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

import adapters.tile_ledgerstore as tiles
from adapters.local_signer import LocalKeyFileSigner
from adapters.sqlite_log import SqliteEventLog
from core.ports.eventlog import Record
from ledger.service import Ledger, LedgerConfig
from ledger.verify import save_verified, verify_ledger

BATCH = 10  # leaves per sync batch: one side-index batch each
STORE = "ledger-tiles.sqlite"


def _ledger(tmp_path: Path) -> tuple[Ledger, SqliteEventLog]:
    log = SqliteEventLog(tmp_path / "log.sqlite", mac_key=b"k" * 32)
    log.create_topic("trades", 1)
    ledger = Ledger(
        log,
        tiles.TileLedgerStore(tmp_path / STORE),
        LocalKeyFileSigner(tmp_path / "ledger.key", "test/ledger"),
        LedgerConfig(origin="test/ledger", sync_batch=BATCH, checkpoint_every_leaves=BATCH),
    )
    return ledger, log


def _append(log: SqliteEventLog, first: int, n: int) -> None:
    now = time.time_ns() // 1_000_000
    log.append(
        "trades", [Record(f"trade {i}".encode(), b"k", (), now, 0) for i in range(first, first + n)]
    )


def _batches(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [int(f) for (f,) in conn.execute("SELECT first FROM batches ORDER BY first")]


@pytest.mark.parametrize("old", [200, 800])
def test_incremental_verify_decodes_only_the_new_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: int
) -> None:
    ledger, log = _ledger(tmp_path)
    try:
        _append(log, 0, old)
        ledger.sync(force_checkpoint=True)
        full = verify_ledger(ledger)
        state = save_verified(
            ledger, tmp_path / "state.note", full, ledger.store.latest_checkpoint(), 1, None
        )
        assert full.ok and state is not None and state.size == old
        _append(log, old, 3 * BATCH)
        ledger.sync(force_checkpoint=True)

        # a batch read: decoded whole, or (verify's usual case) its keys decoded and the rest
        # compared as encoded bytes (``iter_stored_batches``)
        decoded: list[int] = []
        real, real_keys = tiles.decode_side_index, tiles.sideindex.keys_of

        def counting(blob: bytes, digest: bytes, first: int, n: int | None = None) -> Any:
            decoded.append(first)
            return real(blob, digest, first, n)

        def counting_keys(rows: int, body: bytes, first: int) -> Any:
            decoded.append(first)
            return real_keys(rows, body, first)

        monkeypatch.setattr(tiles, "decode_side_index", counting)
        monkeypatch.setattr(tiles.sideindex, "keys_of", counting_keys)
        inc = verify_ledger(ledger, since=state)
        assert inc.ok, inc.as_dict()
        assert inc.incremental_from == old and inc.leaves == 3 * BATCH
        # each new batch once, none below the verified size: the same at 200 and 800 old leaves
        assert sorted(decoded) == [f for f in _batches(tmp_path / STORE) if f >= old]
        decoded.clear()
        assert verify_ledger(ledger).ok  # the full run still decodes every batch
        assert len(decoded) == len(_batches(tmp_path / STORE))
    finally:
        ledger.store.close()
        log.close()


def test_a_damaged_old_batch_is_still_found_by_both_runs(tmp_path: Path) -> None:
    """A side-index batch below the verified size whose blob no longer matches its digest: the
    incremental run no longer decodes it, yet still reports it (step 6 reads every batch's
    action dictionary, digest-checked, looking for retention cuts), naming the batch as the
    full run does."""
    ledger, log = _ledger(tmp_path)
    try:
        _append(log, 0, 100)
        ledger.sync(force_checkpoint=True)
        full = verify_ledger(ledger)
        state = save_verified(
            ledger, tmp_path / "state.note", full, ledger.store.latest_checkpoint(), 1, None
        )
        assert state is not None
        _append(log, 100, BATCH)
        ledger.sync(force_checkpoint=True)
        old = _batches(tmp_path / STORE)[3]
        with sqlite3.connect(tmp_path / STORE) as conn:
            conn.execute("UPDATE batches SET digest = zeroblob(32) WHERE first = ?", (old,))
        for damaged in (verify_ledger(ledger, since=state), verify_ledger(ledger)):
            assert not damaged.ok
            assert damaged.first is not None
            assert f"leaf {old} does not match its SHA-256" in damaged.first.describe()
    finally:
        ledger.store.close()
        log.close()
