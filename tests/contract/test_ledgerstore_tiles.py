"""The LedgerStore contract against the tlog-tiles store (``adapters/tile_ledgerstore.py``),
plus what only it has: the tlog-tiles layout (hash tiles of 256, partial tiles, the path
encoding), no per-leaf rows, and the same roots as the SQLite reference store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from adapters.sqlite_ledgerstore import SqliteLedgerStore
from adapters.tile_ledgerstore import TileLedgerStore
from audit.merkle import HASH_SIZE, range_root
from core.errors import HubError
from tests.contract.ledgerstore_contract import FileLedgerStoreContract, append, reference, rows


class TestTileLedgerStore(FileLedgerStoreContract):
    def open_store(self, folder: Path) -> TileLedgerStore:
        return TileLedgerStore(folder / "ledger-tiles.sqlite")


def test_the_tree_is_kept_as_tiles_of_every_eighth_level_and_no_leaf_rows(
    tmp_path: Path,
) -> None:
    store = TileLedgerStore(tmp_path / "t.sqlite")
    n = 256 * 256 + 300  # two tile levels, full and partial tiles on both
    for start in range(0, n, 10_000):
        append(store, rows(start, min(10_000, n - start)))
    hashes = [r[9] for b in store.iter_leaves() for r in b]
    ref = reference(hashes)
    tiles = {(lv, i): d for lv, i, d in store.iter_tiles()}
    assert {lv for lv, _ in tiles} == {0, 1, 2}
    assert len(tiles[(0, 0)]) == 256 * HASH_SIZE and len(tiles[(0, 257)]) == 44 * HASH_SIZE
    assert tiles[(1, 0)] == b"".join(ref.node(8, i) for i in range(256))
    assert tiles[(1, 1)] == ref.node(8, 256)  # partial: one level-8 node
    assert tiles[(2, 0)] == ref.node(16, 0)
    # levels between tile levels are computed, not stored
    assert store.node(5, 3) == ref.node(5, 3) and store.node(13, 0) == ref.node(13, 0)
    conn = sqlite3.connect(tmp_path / "t.sqlite")
    (batches,) = conn.execute("SELECT count(*) FROM batches").fetchone()
    assert batches == 7  # one side-index row per appended batch, none per leaf
    conn.close()
    assert store.root(n) == range_root(ref, 0, n)
    store.close()


def test_tiles_give_the_sqlite_stores_roots_and_proofs(tmp_path: Path) -> None:
    tiles = TileLedgerStore(tmp_path / "t.sqlite")
    rowstore = SqliteLedgerStore(tmp_path / "s.sqlite")
    for start, k in ((0, 1), (1, 700), (701, 3000), (3701, 5)):
        new = rows(start, k)
        append(tiles, new)
        append(rowstore, new)
    size = 3706
    for s in (1, 255, 256, 257, 2048, size):
        assert tiles.root(s) == rowstore.root(s)
    for i, s in ((0, size), (700, 701), (3705, size), (2047, 2048)):
        assert tiles.inclusion_proof(i, s) == rowstore.inclusion_proof(i, s)
    assert tiles.consistency_proof(700, size) == rowstore.consistency_proof(700, size)
    assert list(tiles.iter_chunks()) == list(rowstore.iter_chunks())
    assert [r for b in tiles.iter_leaves() for r in b] == [
        r for b in rowstore.iter_leaves() for r in b
    ]
    tiles.close()
    rowstore.close()


def test_a_row_ledger_file_is_refused(tmp_path: Path) -> None:
    SqliteLedgerStore(tmp_path / "l.sqlite").close()
    with pytest.raises(HubError, match="is not a version-1 or version-2 hub tile ledger"):
        TileLedgerStore(tmp_path / "l.sqlite")
