"""The tile store's ``ranges`` table (which batch holds a log position) under a MAC. Whoever
can write ``ledger-tiles.sqlite`` (not ``keys/``) edits, removes or moves one batch's offset
range: the side-index batches, their MACs, the tiles and the checkpoints stay untouched, so
before the ranges' own MAC the default verify passed and a lookup by position answered "no
ledger entry" for a record that has one; the cold tier and ``hub lake verify`` read that
answer as "no record was dropped here". Now the default verify names the batch and the
lookup refuses."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hub.bootstrap import bootstrap
from hub.settings import load_settings
from tests.service.test_ledger import cli, make_hub, publish

FILE = "ledger-tiles.sqlite"


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Three batches (one per sync) of ``trades``, verified once (default verify is
    incremental from here)."""
    monkeypatch.setenv("HUB_LEDGER_STORE", "tiles")
    data = tmp_path / "data"
    h = make_hub(data, checkpoint_every_leaves=64, ledger_store="tiles")
    try:
        for start in (0, 40, 80):
            publish(h, 40, start=start)
            h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    code, _out, err = cli(data, "ledger", "verify")
    assert code == 0, err
    return data


def _middle_range(data: Path) -> tuple[str, int, int, int, int]:
    """A ``trades`` range of the middle batch: topic, part, lo, hi, batch."""
    with sqlite3.connect(data / FILE) as conn:
        firsts = [f for (f,) in conn.execute("SELECT first FROM batches ORDER BY first")]
        row = conn.execute(
            "SELECT topic, part, lo, hi, batch FROM ranges WHERE batch = ? AND topic = 'trades' "
            "ORDER BY hi - lo DESC LIMIT 1",
            (firsts[1],),
        ).fetchone()
    assert row is not None and row[3] > row[2], row
    return row


def _find(data: Path, topic: str, part: int, offset: int) -> tuple[int, str, str]:
    return cli(
        data, "ledger", "find", "--topic", topic, "--partition", str(part),
        "--offset", str(offset),
    )  # fmt: skip


def _caught(data: Path, batch: int, offset_of: tuple[str, int, int]) -> None:
    code, out, err = cli(data, "ledger", "verify")  # the default: incremental
    assert code == 1, out + err
    assert f"side-index batch starting at leaf {batch} has offset ranges" in out + err, out + err
    code, out, err = _find(data, *offset_of)
    assert code != 0, out
    assert f"side-index batch starting at leaf {batch} has offset ranges" in err, err


def test_a_lookup_finds_the_entry_before_any_edit(data: Path) -> None:
    topic, part, lo, _hi, _batch = _middle_range(data)
    code, _out, err = _find(data, topic, part, lo)
    assert code == 0, err


def test_a_removed_range_fails(data: Path) -> None:
    topic, part, lo, _hi, batch = _middle_range(data)
    with sqlite3.connect(data / FILE) as conn:
        conn.execute(
            "DELETE FROM ranges WHERE topic = ? AND part = ? AND lo = ?", (topic, part, lo)
        )
    _caught(data, batch, (topic, part, lo))


def test_a_narrowed_range_fails(data: Path) -> None:
    topic, part, lo, hi, batch = _middle_range(data)
    with sqlite3.connect(data / FILE) as conn:
        conn.execute(
            "UPDATE ranges SET hi = lo WHERE topic = ? AND part = ? AND lo = ?", (topic, part, lo)
        )
    _caught(data, batch, (topic, part, hi))


def test_a_range_moved_to_another_batch_fails(data: Path) -> None:
    topic, part, lo, _hi, batch = _middle_range(data)
    with sqlite3.connect(data / FILE) as conn:
        conn.execute(
            "UPDATE ranges SET batch = 0 WHERE topic = ? AND part = ? AND lo = ?",
            (topic, part, lo),
        )
    code, out, err = cli(data, "ledger", "verify")
    assert code == 1, out + err
    assert f"batch starting at leaf {batch} has offset ranges" in out + err
    assert "batch starting at leaf 0 has offset ranges" in out + err


def test_a_stripped_ranges_mac_with_an_edit_fails(data: Path) -> None:
    """The MAC removed as well: the ranges are then compared with the ones derived from the
    batch's own (MAC-checked) columns, and not re-keyed."""
    topic, part, lo, _hi, batch = _middle_range(data)
    with sqlite3.connect(data / FILE) as conn:
        conn.execute("UPDATE batches SET rmac = NULL WHERE first = ?", (batch,))
        conn.execute(
            "UPDATE ranges SET hi = lo WHERE topic = ? AND part = ? AND lo = ?", (topic, part, lo)
        )
    code, out, err = cli(data, "ledger", "verify")
    assert code == 1, out + err
    assert f"side-index batch starting at leaf {batch} has offset ranges" in out + err
    with sqlite3.connect(data / FILE) as conn:
        (rmac,) = conn.execute("SELECT rmac FROM batches WHERE first = ?", (batch,)).fetchone()
    assert rmac is None


def test_ranges_written_before_their_mac_are_keyed_on_open(data: Path) -> None:
    """A file from before the ranges' MAC (every ``rmac`` NULL): verify passes, and the first
    keyed open gives each batch a MAC, after its ranges were compared with its columns."""
    with sqlite3.connect(data / FILE) as conn:
        conn.execute("UPDATE batches SET rmac = NULL")
    code, out, err = cli(data, "ledger", "verify")
    assert code == 0, out + err
    with sqlite3.connect(data / FILE) as conn:
        assert conn.execute("SELECT count(*) FROM batches WHERE rmac IS NULL").fetchone()[0] == 0


def test_a_miss_past_the_last_range_checks_the_batches_after_it(data: Path) -> None:
    """The partition's last range removed: the lookup finds no range above the offset, so it
    checks every batch after the range below it (there is none: all of them)."""
    h = bootstrap(load_settings(environ={}, data_dir=data, ledger_store="tiles"))
    try:
        store = h.ledger.store
        with sqlite3.connect(data / FILE) as conn:
            topic, part, lo, batch = conn.execute(
                "SELECT topic, part, lo, batch FROM ranges ORDER BY batch DESC LIMIT 1"
            ).fetchone()
        assert store.index_of(topic, part, lo) is not None
        with sqlite3.connect(data / FILE) as conn:
            conn.execute(
                "DELETE FROM ranges WHERE topic = ? AND part = ? AND lo = ?", (topic, part, lo)
            )
        store.clear_caches()
        with pytest.raises(Exception, match=f"leaf {batch} has offset ranges"):
            store.index_of(topic, part, lo)
        # its MAC removed too: the ranges derived from its columns still show the removal
        with sqlite3.connect(data / FILE) as conn:
            conn.execute("UPDATE batches SET rmac = NULL WHERE first = ?", (batch,))
        store.clear_caches()
        with pytest.raises(Exception, match=f"leaf {batch} has offset ranges"):
            store.index_of(topic, part, lo)
    finally:
        h.close()


def test_an_unedited_store_answers_a_miss(data: Path) -> None:
    h = bootstrap(load_settings(environ={}, data_dir=data, ledger_store="tiles"))
    try:
        assert h.ledger.store.index_of("trades", 0, 10**9) is None
        assert h.ledger.store.index_of("nope", 0, 0) is None
    finally:
        h.close()
