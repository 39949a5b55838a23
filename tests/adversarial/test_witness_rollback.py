"""An insider with write access to the data folder against the tile store and the witness:
tiles or side-index batches swapped, the right edge rolled back to an older partial tile, witness
copies deleted or rolled back, and the remembered verification (``ledger-verified.note``) kept
while history was changed under it. Each MUST make ``hub ledger verify`` exit 1 naming the
entry, tile or checkpoint; the incremental run (the default, from the remembered checkpoint)
included where the change touches what it covers."""

from __future__ import annotations

from pathlib import Path

from tests.adversarial.test_tile_tamper import N, db, invalid, synced
from tests.service.test_ledger import cli, make_hub, publish

__all__ = ["synced"]  # the fixture, re-used


def incremental_invalid(data: Path, *words: str) -> str:
    code, out, err = cli(data, "ledger", "verify")
    assert code == 1, (out, err)
    assert err.startswith("INVALID: ")
    for w in words:
        assert w in err, (w, err)
    return err


def witness_notes(data: Path) -> list[Path]:
    return sorted((data / "witness" / "checkpoints").glob("*.note"))


# -- 1. the tile store -----------------------------------------------------------------------------
def test_two_full_leaf_tiles_swapped(synced: Path) -> None:
    with db(synced) as conn:
        (x,) = conn.execute("SELECT data FROM tiles WHERE level = 0 AND idx = 0").fetchone()
        (y,) = conn.execute("SELECT data FROM tiles WHERE level = 0 AND idx = 1").fetchone()
        conn.execute("UPDATE tiles SET data = ? WHERE level = 0 AND idx = 0", (y,))
        conn.execute("UPDATE tiles SET data = ? WHERE level = 0 AND idx = 1", (x,))
    invalid(synced, "entry 0", "tile/0/000")


def test_two_side_index_batches_swapped_with_their_digests(synced: Path) -> None:
    with db(synced) as conn:
        rows = conn.execute("SELECT first, n, cols, digest FROM batches ORDER BY first").fetchall()
        (a, na, ca, da), (b, _nb, cb, db_) = rows[0], rows[1]
        conn.execute("UPDATE batches SET cols = ?, digest = ? WHERE first = ?", (cb, db_, a))
        conn.execute("UPDATE batches SET cols = ?, digest = ? WHERE first = ?", (ca, da, b))
    err = invalid(synced)
    assert any(f"entry {a + i}" in err or f"leaf {a}" in err for i in range(na)), err


def test_the_right_edge_rolled_back_to_an_older_partial_tile(synced: Path) -> None:
    with db(synced) as conn:
        old = conn.execute("SELECT level, chunk, data FROM edges").fetchall()
    h = make_hub(synced, checkpoint_every_leaves=128, ledger_store="tiles")
    try:
        publish(h, 40, start=N)
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    with db(synced) as conn:
        conn.execute("DELETE FROM edges")
        conn.executemany("INSERT INTO edges VALUES (?, ?, ?)", old)
    incremental_invalid(synced, "right-edge cache")
    invalid(synced, "right-edge cache")
