"""Tampering with the tlog-tiles ledger store (``HUB_LEDGER_STORE=tiles``): one byte flipped in a
hash tile (leaf level and an upper level), an entry's side-index batch, the right-edge cache or
a checkpoint makes ``hub ledger verify`` exit 1 naming what was changed. Entry bundles are not
stored (they are rebuilt from the log and checked against the level-0 tile on every read), so a
changed event shows as a log/leaf mismatch, covered by the event tamper tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from tests.adversarial._api import basic
from tests.service.test_ledger import cli, make_hub, publish

N = 600


@pytest.fixture
def synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HUB_LEDGER_STORE", "tiles")
    data = tmp_path / "data"
    h = make_hub(data, checkpoint_every_leaves=128, ledger_store="tiles")
    try:
        publish(h, N)
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    code, _out, err = cli(data, "ledger", "verify")
    assert code == 0, err
    assert not (data / "ledger.sqlite").exists()  # the tile store, not the row store
    return data


def db(data: Path) -> sqlite3.Connection:
    return sqlite3.connect(data / "ledger-tiles.sqlite")


def flip(blob: bytes, at: int) -> bytes:
    return blob[:at] + bytes([blob[at] ^ 0x01]) + blob[at + 1 :]


def invalid(data: Path, *words: str) -> str:
    code, out, err = cli(data, "ledger", "verify", "--full")  # below the verified size
    assert code == 1, (out, err)
    assert err.startswith("INVALID: ")
    for w in words:
        assert w in err, (w, err)
    return err


def test_a_byte_of_a_leaf_tile(synced: Path) -> None:
    with db(synced) as conn:
        (data,) = conn.execute("SELECT data FROM tiles WHERE level = 0 AND idx = 1").fetchone()
        conn.execute(
            "UPDATE tiles SET data = ? WHERE level = 0 AND idx = 1", (flip(data, 32 * 7 + 3),)
        )
    invalid(synced, "entry 263", "leaf hash differs", "tile/0/001")


def test_a_byte_of_an_upper_tile(synced: Path) -> None:
    with db(synced) as conn:
        (data,) = conn.execute("SELECT data FROM tiles WHERE level = 1 AND idx = 0").fetchone()
        conn.execute("UPDATE tiles SET data = ? WHERE level = 1 AND idx = 0", (flip(data, 40),))
    invalid(synced, "node chunk (8, 0)", "tile/1/000")


def test_a_byte_of_a_side_index_batch(synced: Path) -> None:
    with db(synced) as conn:
        first, cols = conn.execute(
            "SELECT first, cols FROM batches ORDER BY first LIMIT 1 OFFSET 1"
        ).fetchone()
        conn.execute(
            "UPDATE batches SET cols = ? WHERE first = ?", (flip(cols, len(cols) // 2), first)
        )
    invalid(synced, f"side-index batch starting at leaf {first}")


def test_a_side_index_batch_rewritten_with_a_fresh_digest(synced: Path) -> None:
    """A tamperer who recomputes the digest and (holding ``keys/`` too) the MAC: the columns
    no longer match the log records. Without the key: tests/adversarial/test_side_index_mac."""
    import hashlib

    from adapters.tile_ledgerstore import batch_mac, decode_side_index, encode_side_index
    from hub.bootstrap import SIDE_INDEX_PURPOSE
    from hub.derived_secrets import derived_secret
    from hub.settings import load_settings

    key = derived_secret(load_settings(environ={}, data_dir=synced), SIDE_INDEX_PURPOSE)
    with db(synced) as conn:
        first, n, lo, hi, cols = conn.execute(
            "SELECT first, n, min_ts, max_ts, cols FROM batches ORDER BY first LIMIT 1"
        ).fetchone()
        table = decode_side_index(cols).to_pylist()
        table[3]["actor"] = "someone-else"
        fake = encode_side_index(
            [(first + i, *r.values(), b"") for i, r in enumerate(table)]  # type: ignore[misc]
        )
        digest = hashlib.sha256(fake).digest()
        conn.execute(
            "UPDATE batches SET cols = ?, digest = ?, mac = ? WHERE first = ?",
            (fake, digest, batch_mac(key, first, n, lo, hi, digest), first),
        )
    invalid(synced, f"entry {first + 3}", "query columns")


def test_the_right_edge_cache(synced: Path) -> None:
    with db(synced) as conn:
        level, data = conn.execute(
            "SELECT level, data FROM edges ORDER BY level LIMIT 1"
        ).fetchone()
        conn.execute("UPDATE edges SET data = ? WHERE level = ?", (flip(data, 0), level))
    invalid(synced, f"right-edge cache of level {level}")


def test_a_byte_of_a_checkpoint(synced: Path) -> None:
    with db(synced) as conn:
        size, note = conn.execute(
            "SELECT size, note FROM checkpoints ORDER BY size LIMIT 1 OFFSET 1"
        ).fetchone()
        i = note.index(b"\n", note.index(b"\n") + 1) + 5  # a byte of the root line
        conn.execute("UPDATE checkpoints SET note = ? WHERE size = ?", (flip(note, i), size))
    invalid(synced, f"checkpoint {size}")


def test_a_changed_tile_is_not_served_as_a_proof_of_anything(
    synced: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The entry bundle built from the log no longer hashes to the tampered leaf tile."""
    with db(synced) as conn:
        (data,) = conn.execute("SELECT data FROM tiles WHERE level = 0 AND idx = 0").fetchone()
        conn.execute("UPDATE tiles SET data = ? WHERE level = 0 AND idx = 0", (flip(data, 0),))
    h = make_hub(synced)
    try:
        with TestClient(create_app(h), raise_server_exceptions=False) as client:
            token = h.keys.create(["compliance_officer"], principal="t").token
            r = client.get("/v1/ledger/tlog/tile/entries/000", headers=basic(token))
            assert r.status_code == 500 and r.json()["reason"] == "ledger_mismatch"
            assert "entry 0" in r.json()["message"].lower()
    finally:
        h.close()


@pytest.mark.parametrize("where", ["row count", "compressed body"])
def test_a_byte_of_a_compressed_side_index_with_a_fresh_digest(synced: Path, where: str) -> None:
    """Store version 2 keeps each batch's columns zstd-compressed (``adapters.tile_sideindex``);
    a changed byte there, its SHA-256 recomputed, is caught when verify decodes the batch or
    compares its columns with the log records, and the message names the batch or its entry."""
    import hashlib

    from adapters.tile_sideindex import MAGIC

    with db(synced) as conn:
        first, n, cols = conn.execute(
            "SELECT first, n, cols FROM batches ORDER BY n DESC LIMIT 1"
        ).fetchone()
        assert bytes(cols).startswith(MAGIC)
        fake = flip(cols, 5 if where == "row count" else 12 + (len(cols) - 12) // 2)
        conn.execute(
            "UPDATE batches SET cols = ?, digest = ? WHERE first = ?",
            (fake, hashlib.sha256(fake).digest(), first),
        )
    err = invalid(synced)
    named = [f"leaf {first}"] + [f"entry {first + i}" for i in range(n)]
    assert any(w in err for w in named), err


@pytest.mark.parametrize("idx", [0, 1])
def test_hashes_appended_to_a_complete_leaf_tile(synced: Path, idx: int) -> None:
    """verify compares a complete level-0 chunk with the leaf hashes it read from the same
    tiles instead of reading the tile again: a tile with hashes appended after its 256 still
    fails (the store's layout check names it, or the shifted hashes differ)."""
    with db(synced) as conn:
        (data,) = conn.execute(
            "SELECT data FROM tiles WHERE level = 0 AND idx = ?", (idx,)
        ).fetchone()
        assert len(data) == 256 * 32
        conn.execute(
            "UPDATE tiles SET data = ? WHERE level = 0 AND idx = ?", (data + data[:32], idx)
        )
    invalid(synced)
