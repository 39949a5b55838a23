"""``hub ledger verify`` is incremental from the last verified checkpoint (remembered in a note
signed by the ledger key); ``--full`` and the periodic full verify still re-check everything, so
tampering in the already-verified range that no new proof touches is caught there."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from tests.service.test_ledger import _log_batch, cli, make_hub, publish


@pytest.fixture(params=["sqlite", "tiles"])
def data(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HUB_LEDGER_STORE", request.param)
    d = tmp_path / "data"
    h = make_hub(d, checkpoint_every_leaves=64)
    try:
        publish(h, 300)
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    return d


def grow(data: Path, n: int, start: int) -> None:
    h = make_hub(data, checkpoint_every_leaves=64)
    try:
        publish(h, n, start=start)
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()


def verify(data: Path, *args: str) -> tuple[int, str, str]:
    return cli(data, "ledger", "verify", *args)


def entries_checked(out: str) -> int:
    return int(re.search(r"OK ledger: (\d+) entries", out).group(1))  # type: ignore[union-attr]


def test_the_second_run_checks_only_the_new_entries(data: Path) -> None:
    code, out, err = verify(data)
    assert code == 0, err
    assert "full (no earlier verification is remembered)" in out
    assert entries_checked(out) >= 300
    assert (data / "ledger-verified.note").read_bytes().startswith(b"hub ledger verified\n")
    grow(data, 50, 300)
    code, out, err = verify(data)
    assert code == 0, err
    assert "incremental from checkpoint" in out
    assert 50 <= entries_checked(out) < 300  # the new ones (and the runs' own audit records)
    code, out, err = verify(data)
    assert code == 0 and "incremental" in out and entries_checked(out) < 10
    code, out, err = verify(data, "--full")
    assert code == 0 and "full (--full asked)" in out and entries_checked(out) >= 350


def _flip_an_old_event(data: Path) -> None:
    """One byte of a trades record below the verified size (the log's MAC then fails)."""
    batch_id, blob, _ = _log_batch(data, 0, 3)
    b = bytearray(blob)
    b[-3] ^= 0x01
    with sqlite3.connect(data / "log.sqlite") as db:
        db.execute("UPDATE batches SET data = ? WHERE id = ?", (bytes(b), batch_id))


def test_tampering_below_the_verified_size_is_caught_by_full_and_the_periodic_full(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert verify(data)[0] == 0
    grow(data, 20, 300)
    _flip_an_old_event(data)
    code, out, _ = verify(data)
    # the documented trade-off: the incremental run does not re-read the verified range
    assert code == 0 and "incremental" in out
    code, _, err = verify(data, "--full")
    assert code == 1 and "INVALID" in err and "trades" in err
    monkeypatch.setenv("HUB_LEDGER_FULL_VERIFY_EVERY_S", "0")  # the periodic full verify is due
    code, _, err = verify(data)
    assert code == 1 and "INVALID" in err


def test_a_changed_node_the_new_tree_relies_on_fails_the_incremental_run(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert verify(data)[0] == 0
    grow(data, 20, 300)
    tiles = (data / "ledger-tiles.sqlite").exists()
    with sqlite3.connect(data / ("ledger-tiles.sqlite" if tiles else "ledger.sqlite")) as db:
        table, where = (
            ("tiles", "level = 1 AND idx = 0") if tiles else ("nodes", "level = 8 AND chunk = 0")
        )
        (blob,) = db.execute(f"SELECT data FROM {table} WHERE {where}").fetchone()
        db.execute(f"UPDATE {table} SET data = ? WHERE {where}", (bytes([blob[0] ^ 1]) + blob[1:],))
    code, _, err = verify(data)
    assert code == 1, err
    assert "no longer gives the root verified last" in err


def test_an_edited_state_is_not_trusted(data: Path) -> None:
    assert verify(data)[0] == 0
    note = data / "ledger-verified.note"
    text = note.read_bytes()
    lines = text.split(b"\n")
    lines[2] = b"1"  # claim less was verified: the signature no longer holds
    note.write_bytes(b"\n".join(lines))
    code, out, err = verify(data)
    assert code == 0, err
    assert "full (the remembered verification" in out and "is not valid" in out
