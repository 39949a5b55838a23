"""Readers of a rewritten side index. Whoever can write ``ledger-tiles.sqlite`` rewrites one
entry's actor (or tenant) in its side-index batch and recomputes the batch's SHA-256: the leaf
hashes, the tree and the checkpoints are untouched, so the default (incremental) ``hub ledger
verify`` has nothing new to look at. Every reader that serves the entry (``hub ledger
entries``, ``hub ledger entry``, the evidence pack, an entry bundle read under a tenant scope)
recomputes the columns from the log record and refuses the difference, naming the entry,
instead of serving (and, for a pack, signing) the forged value."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from adapters.tile_ledgerstore import batch_mac, decode_side_index, encode_side_index
from hub.api.app import create_app
from hub.bootstrap import SIDE_INDEX_PURPOSE
from hub.derived_secrets import derived_secret
from hub.settings import load_settings
from tests.adversarial._api import basic
from tests.service.test_ledger import cli, make_hub, publish

N = 300


def rewrite(data: Path, index: int, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite entry ``index``'s side-index row with ``change``, the batch digest recomputed,
    and its MAC too, with the key from ``keys/``: these readers' own check (against the log
    record) is what is tested here, for an insider who holds the key as well
    (test_side_index_mac: one who does not)."""
    key = derived_secret(load_settings(environ={}, data_dir=data), SIDE_INDEX_PURPOSE)
    with sqlite3.connect(data / "ledger-tiles.sqlite") as conn:
        first, n, lo, hi, cols = conn.execute(
            "SELECT first, n, min_ts, max_ts, cols FROM batches WHERE first <= ? "
            "ORDER BY first DESC LIMIT 1",
            (index,),
        ).fetchone()
        table = decode_side_index(cols).to_pylist()
        change(table[index - first])
        fake = encode_side_index([(first + i, *r.values(), b"") for i, r in enumerate(table)])
        digest = hashlib.sha256(fake).digest()
        conn.execute(
            "UPDATE batches SET cols = ?, digest = ?, mac = ? WHERE first = ?",
            (fake, digest, batch_mac(key, first, n, lo, hi, digest), first),
        )


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HUB_LEDGER_STORE", "tiles")
    data = tmp_path / "data"
    h = make_hub(data, checkpoint_every_leaves=64, ledger_store="tiles")
    try:
        publish(h, N)
        h.ledger.record_action("ann", "policy.change", "policy/bundle-7", tenant="acme")
        publish(h, 20, start=N)
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    code, _out, err = cli(data, "ledger", "verify")  # remembers the verified size
    assert code == 0, err
    return data


def _policy_change(data: Path) -> int:
    code, out, err = cli(data, "ledger", "entries", "--action", "policy.change")
    assert code == 0, err
    (line,) = out.splitlines()
    assert json.loads(line)["actor"] == "ann"
    return int(json.loads(line)["index"])


def _forge_actor(data: Path) -> int:
    index = _policy_change(data)
    rewrite(data, index, lambda r: r.update(actor="mallory"))
    return index


def _refused(code: int, out: str, err: str, index: int, said: str = "actor 'mallory'") -> None:
    assert code != 0, out
    assert "mallory" not in out
    assert f"Ledger entry {index}" in err and said in err, err


def test_entries_do_not_serve_a_forged_actor(data: Path) -> None:
    index = _forge_actor(data)
    _refused(*cli(data, "ledger", "entries", "--actor", "mallory"), index)
    _refused(*cli(data, "ledger", "entries", "--topic", "hub.audit", "--limit", "1000"), index)


def test_an_entry_does_not_serve_a_forged_actor(data: Path) -> None:
    index = _forge_actor(data)
    _refused(*cli(data, "ledger", "entry", str(index)), index)


def test_an_evidence_pack_does_not_sign_a_forged_actor(data: Path, tmp_path: Path) -> None:
    index = _forge_actor(data)
    out = tmp_path / "pack.zip"
    code, stdout, err = cli(
        data, "evidence", "export", "--from", "2000-01-01", "--to", "2100-01-01",
        "--controls", "CC8", "--out", str(out),
    )  # fmt: skip
    _refused(code, stdout, err, index)
    assert not out.exists()


def test_an_evidence_pack_does_not_drop_an_entry_whose_action_was_forged(
    data: Path, tmp_path: Path
) -> None:
    """``policy.change`` rewritten to an action no control lists: the entry would fall out of
    the CC8 population of a pack that still verifies; the export refuses instead."""
    index = _policy_change(data)
    rewrite(data, index, lambda r: r.update(action="note.seen"))
    out = tmp_path / "pack.zip"
    code, stdout, err = cli(
        data, "evidence", "export", "--from", "2000-01-01", "--to", "2100-01-01",
        "--controls", "CC8", "--out", str(out),
    )  # fmt: skip
    _refused(code, stdout, err, index, "action 'note.seen'")
    assert not out.exists()


def test_the_full_verify_names_the_forged_entry(data: Path) -> None:
    index = _forge_actor(data)
    code, _out, err = cli(data, "ledger", "verify", "--full")
    assert code == 1 and f"entry {index}" in err, err


def test_an_entry_bundle_is_not_served_on_a_forged_tenant(data: Path) -> None:
    """A tenant-limited reader gets an entry bundle only when each entry is its tenant's or has
    none; acme's entry with its tenant column forged to the reader's must not open acme's
    envelope headers to default's officer."""
    acme = _policy_change(data)
    h = make_hub(data)
    try:
        size = h.ledger.store.tree_size()
        token = h.keys.create(["compliance_officer"], principal="d", tenant="default").token
    finally:
        h.close()
    first = acme - acme % 256
    width = min(256, size - first)
    path = f"/v1/ledger/tlog/tile/entries/{first // 256:03d}" + (
        f".p/{width}" if width < 256 else ""
    )
    h = make_hub(data)
    try:
        with TestClient(create_app(h), raise_server_exceptions=False) as client:
            assert client.get(path, headers=basic(token)).status_code == 403  # acme's entry
            rewrite(data, acme, lambda r: r.update(tenant="default"))
            h.ledger.store.clear_caches()
            r = client.get(path, headers=basic(token))
            assert r.status_code == 500, r.status_code
            assert r.json()["reason"] == "ledger_mismatch", r.json()
            assert f"entry {acme}" in r.json()["message"].lower()
            assert "acme" not in r.text  # the record's own tenant is not told
            one = client.get(f"/v1/ledger/entries/{acme}", headers=basic(token))
            assert one.status_code == 500 and one.json()["reason"] == "ledger_mismatch"
            assert "policy/bundle-7" not in one.text and "acme" not in one.text
            assert b"policy/bundle-7" not in r.content
    finally:
        h.close()


def test_the_row_store_is_read_the_same_way(tmp_path: Path) -> None:
    """The check sits in the ledger, not in one store: an actor edited in ``ledger.sqlite``'s
    ``leaves`` row (no digest there at all) is refused by the same readers."""
    data = tmp_path / "rows"
    h = make_hub(data, ledger_store="sqlite")
    try:
        h.ledger.record_action("ann", "policy.change", "policy/bundle-7", tenant="acme")
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    index = _policy_change(data)
    with sqlite3.connect(data / "ledger.sqlite") as conn:
        conn.execute("UPDATE leaves SET actor = 'mallory' WHERE idx = ?", (index,))
    _refused(*cli(data, "ledger", "entry", str(index)), index)
    _refused(*cli(data, "ledger", "entries", "--actor", "mallory"), index)
