"""Dropping the newest checkpoints from the store (a rollback of the signed tree head) is
caught by the default, incremental ``hub ledger verify`` too (session 14 review).

Before the fix only ``--full`` compared the witness's copies with the store: an incremental run
started from the remembered checkpoint, saw the store's newest checkpoints as the whole story,
and answered OK while the write-once witness held a newer signed head the store lacked."""

from __future__ import annotations

from pathlib import Path

from tests.service.test_ledger import cli

from .test_tile_tamper import db, synced  # noqa: F401  (fixture)


def test_the_newest_checkpoint_dropped_from_the_store_fails_an_incremental_verify(
    synced: Path,  # noqa: F811
) -> None:
    code, out, err = cli(synced, "ledger", "verify")
    assert code == 0 and "incremental" in out, (out, err)
    with db(synced) as conn:
        (newest,) = conn.execute("SELECT max(size) FROM checkpoints").fetchone()
        conn.execute("DELETE FROM checkpoints WHERE size = ?", (newest,))
    code, out, err = cli(synced, "ledger", "verify")
    assert code == 1, (out, err)
    assert f"checkpoint {newest}" in err and "store lacks" in err, err


def test_an_honest_incremental_verify_still_passes(synced: Path) -> None:  # noqa: F811
    for _ in range(2):
        code, out, err = cli(synced, "ledger", "verify")
        assert code == 0 and "incremental" in out, (out, err)


def test_a_deleted_upper_tile_is_reported_not_a_crash(synced: Path) -> None:  # noqa: F811
    """Before the fix the incremental verify raised IndexError (a traceback, no INVALID line)."""
    code, out, err = cli(synced, "ledger", "verify")
    assert code == 0, (out, err)
    with db(synced) as conn:
        conn.execute("DELETE FROM tiles WHERE level = 1")
    code, out, err = cli(synced, "ledger", "verify")
    assert code == 1 and err.startswith("INVALID: "), (out, err)
    assert "altered or removed" in err, err
