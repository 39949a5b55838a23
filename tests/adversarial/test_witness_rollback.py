"""An insider with write access to the data folder against the tile store and the witness:
tiles or side-index batches swapped, the right edge rolled back to an older partial tile, witness
copies deleted or rolled back, and the remembered verification (``ledger-verified.note``) kept
while history was changed under it. Each MUST make ``hub ledger verify`` exit 1 naming the
entry, tile or checkpoint; the incremental run (the default, from the remembered checkpoint)
included where the change touches what it covers."""

from __future__ import annotations

import shutil
from pathlib import Path

from ledger.witness import legacy_key, witness_key
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
    return sorted((data / "witness" / "checkpoints").rglob("*.note"))


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


# -- 2. the witness -------------------------------------------------------------------------------
def test_the_newest_witness_copy_deleted_is_seen_by_the_incremental_verify(synced: Path) -> None:
    newest = witness_notes(synced)[-1]
    newest.chmod(0o644)
    newest.unlink()
    incremental_invalid(synced, f"checkpoint {int(newest.stem)}", "missing")


def test_the_remembered_checkpoints_witness_copy_deleted(synced: Path) -> None:
    from ledger.verify import load_verified

    h = make_hub(synced, checkpoint_every_leaves=128, ledger_store="tiles")
    try:
        state, why = load_verified(h.ledger, h.settings.ledger_verified_path)
        assert state is not None, why
    finally:
        h.close()
    note = synced / "witness" / witness_key(state.size)
    note.chmod(0o644)
    note.unlink()
    incremental_invalid(synced, f"checkpoint {state.size}", "missing")


def test_an_older_witness_copy_deleted_is_the_full_runs_finding(synced: Path) -> None:
    """By design (``Verified``): below the remembered checkpoint only the full run (``--full``,
    or the periodic one) compares the witness copies."""
    older = witness_notes(synced)[1]
    older.chmod(0o644)
    older.unlink()
    invalid(synced, f"checkpoint {int(older.stem)}", "missing")


def test_a_copy_planted_in_an_old_range_is_the_full_runs_finding(synced: Path) -> None:
    """The incremental run lists the witness from the remembered checkpoint on (``start_after``):
    a copy planted below it (a checkpoint the store never had) is the full run's finding, as a
    deleted older copy is; one planted above it is the incremental run's."""
    notes = witness_notes(synced)
    old = int(notes[1].stem) + 1
    planted = notes[1].with_name(f"{old:020d}.note")
    shutil.copyfile(notes[1], planted)
    code, _out, err = cli(synced, "ledger", "verify")
    assert code == 0, err
    invalid(synced, f"{old:020d}.note", "store lacks")
    planted.unlink()
    code, _out, err = cli(synced, "ledger", "verify", "--full")
    assert code == 0, err
    newest = witness_notes(synced)[-1]  # the verify runs above checkpointed their own records
    new = int(newest.stem) + 1000
    shutil.copyfile(newest, newest.with_name(f"{new:020d}.note"))
    incremental_invalid(synced, f"{new:020d}.note", "store lacks")


def test_the_newest_witness_copy_rolled_back_to_an_older_note(synced: Path) -> None:
    notes = witness_notes(synced)
    newest = notes[-1]
    newest.chmod(0o644)
    shutil.copyfile(notes[-2], newest)
    incremental_invalid(synced, f"checkpoint {int(newest.stem)}", "different note")


def test_a_forged_remembered_state_over_a_resigned_checkpoint(synced: Path) -> None:
    """The signing key is in the data folder: the insider re-signs the newest checkpoint (as a
    rewritten history needs) and signs a remembered state naming it, so an incremental verify
    would start past everything. The witness copy still holds the honest note."""
    import time

    from audit.note import checkpoint_hash
    from core.ports.ledgerstore import StoredCheckpoint
    from ledger.verify import VerifyReport, load_verified, save_verified

    h = make_hub(synced, checkpoint_every_leaves=128, ledger_store="tiles")
    try:
        ledger = h.ledger
        path = h.settings.ledger_verified_path
        state, why = load_verified(ledger, path)
        assert state is not None, why
        cp = ledger.store.latest_checkpoint()
        assert cp is not None and cp.size > state.size
        body = cp.note.split(b"\n\n")[0].decode()
        text = body.replace(f"time {cp.time_us}", f"time {cp.time_us + 1}") + "\n"
        assert text != body + "\n"
        note = ledger.signer.sign_note(text)
        forged = StoredCheckpoint(cp.size, cp.root, cp.time_us + 1, note, checkpoint_hash(note))
        now = time.time_ns() // 1_000_000
        assert save_verified(ledger, path, VerifyReport(), forged, now, state) is not None
    finally:
        h.close()
    with db(synced) as conn:
        conn.execute(
            "UPDATE checkpoints SET note = ?, hash = ?, time_us = ? WHERE size = ?",
            (forged.note, forged.hash, forged.time_us, forged.size),
        )
    incremental_invalid(synced, f"checkpoint {forged.size}", "different note")


# -- 3. the witness folder's layouts ---------------------------------------------------------------
def _flatten(data: Path) -> list[int]:
    """Move every copy to the flat layout older witness folders have."""
    sizes = []
    for note in witness_notes(data):
        size = int(note.stem)
        note.rename(data / "witness" / legacy_key(size))
        sizes.append(size)
    return sizes


def test_an_old_flat_witness_folder_still_verifies_and_its_tampering_is_found(
    synced: Path,
) -> None:
    sizes = _flatten(synced)
    assert not list((synced / "witness" / "checkpoints").glob("*/*.note"))
    code, _out, err = cli(synced, "ledger", "verify", "--full")
    assert code == 0, err
    code, _out, err = cli(synced, "ledger", "verify")
    assert code == 0, err
    older = synced / "witness" / legacy_key(sizes[1])
    older.chmod(0o644)
    older.unlink()
    invalid(synced, f"checkpoint {sizes[1]}", "missing")


def test_a_differing_copy_beside_the_real_one_in_the_other_layout(synced: Path) -> None:
    """A size may have a copy in both layouts (a folder upgraded mid-history): every copy is
    compared, so a rolled-back note planted beside the real one is not hidden by it."""
    notes = witness_notes(synced)
    size = int(notes[2].stem)
    shutil.copyfile(notes[1], synced / "witness" / legacy_key(size))
    invalid(synced, f"checkpoint {size}", "different note")


def test_a_copy_in_the_wrong_folder_is_reported(synced: Path) -> None:
    notes = witness_notes(synced)
    size = int(notes[1].stem) + 1
    wrong = synced / "witness" / "checkpoints" / "0000000000000009" / f"{size:020d}.note"
    wrong.parent.mkdir()
    shutil.copyfile(notes[1], wrong)
    invalid(synced, "not a checkpoint copy")
    assert witness_key(size) != f"checkpoints/0000000000000009/{size:020d}.note"
