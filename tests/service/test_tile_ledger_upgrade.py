"""A tile ledger written by store version 1 (side index as zstd Arrow IPC in 4 KiB pages) under
the hub: `hub ledger verify` passes on it as it is, the next sync appends version-2 batches
beside the old ones, and the whole ledger still verifies and serves its tlog-tiles."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from fastapi.testclient import TestClient

from adapters.tile_ledgerstore import decode_side_index, encode_side_index
from adapters.tile_sideindex import MAGIC
from audit.tiles import decode_bundle
from hub.api.app import create_app
from tests.adversarial._api import basic
from tests.service.test_ledger import cli, make_hub, publish


def downgrade(path: Path) -> None:
    """Rewrite a version-2 tile store as version 1 wrote it: every batch re-encoded as an Arrow
    IPC stream with its digest, no MAC column nor keyed-from marker, 4 KiB pages,
    ``user_version`` 1."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        for first, blob in conn.execute("SELECT first, cols FROM batches").fetchall():
            old = encode_side_index(decode_side_index(bytes(blob)), version=1)
            conn.execute(
                "UPDATE batches SET cols = ?, digest = ? WHERE first = ?",
                (old, hashlib.sha256(old).digest(), first),
            )
        conn.execute("ALTER TABLE batches DROP COLUMN mac")
        conn.execute("DELETE FROM meta WHERE key = 'side_mac_from'")
        conn.execute("PRAGMA user_version = 1")
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA page_size = 4096")
        conn.execute("VACUUM")
    finally:
        conn.close()


def test_a_version_1_ledger_verifies_then_grows_in_version_2(tmp_path: Path) -> None:
    data = tmp_path / "data"
    h = make_hub(data, checkpoint_every_leaves=128, ledger_store="tiles")
    try:
        publish(h, 300)
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    path = data / "ledger-tiles.sqlite"
    downgrade(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA page_size").fetchone()[0] == 4096
        old = conn.execute("SELECT count(*) FROM batches").fetchone()[0]
    code, out, err = cli(data, "ledger", "verify", "--full")
    assert code == 0, (out, err)
    assert f"unkeyed batches: {old} (written before" in out, out

    h = make_hub(data, checkpoint_every_leaves=128, ledger_store="tiles")
    try:
        publish(h, 300, start=1000)
        h.ledger.sync(force_checkpoint=True)
        with TestClient(create_app(h)) as client:
            token = h.keys.create(["compliance_officer"], principal="t").token
            r = client.get("/v1/ledger/tlog/tile/entries/000", headers=basic(token))
            assert r.status_code == 200, r.text
            assert len(decode_bundle(r.content)) == 256
    finally:
        h.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        blobs = [bytes(b) for (b,) in conn.execute("SELECT cols FROM batches ORDER BY first")]
    assert [b.startswith(MAGIC) for b in blobs] == [False] * old + [True] * (len(blobs) - old)
    assert len(blobs) > old
    code, out, err = cli(data, "ledger", "verify", "--full")
    assert code == 0, (out, err)
    assert out.startswith("OK ledger")
