"""Omission through a rewritten side index. Whoever can write ``ledger-tiles.sqlite`` (not
``keys/``) rewrites one entry's tenant, action or time in its side-index batch and recomputes
the batch's SHA-256: readers that filter on those columns before reading any log record (a
tenant's ``entries``, the evidence selection) would silently leave the entry out, and the
default (incremental) verify had nothing new to look at. Each batch now carries a MAC under a
key kept in ``keys/`` (over its columns, first leaf, count and time range): the default verify
fails naming the batch, the readers refuse instead of omitting, and a MAC stripped or swapped
fails too. Batches written before the MAC existed are counted, not failed."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from adapters.tile_ledgerstore import decode_side_index, encode_side_index
from hub.api.app import create_app
from tests.adversarial._api import basic
from tests.service.test_ledger import cli, make_hub, publish

FILE = "ledger-tiles.sqlite"


def _batches(data: Path) -> list[tuple[int, int]]:
    with sqlite3.connect(data / FILE) as conn:
        return [(int(f), int(n)) for f, n in conn.execute("SELECT first, n FROM batches")]


def rewrite(data: Path, index: int, change: Callable[[dict[str, Any]], None]) -> int:
    """Rewrite entry ``index``'s side-index row with ``change``, the batch's SHA-256 and time
    range recomputed as the store computes them; the batch's first leaf."""
    with sqlite3.connect(data / FILE) as conn:
        first, cols = conn.execute(
            "SELECT first, cols FROM batches WHERE first <= ? ORDER BY first DESC LIMIT 1",
            (index,),
        ).fetchone()
        table = decode_side_index(cols).to_pylist()
        change(table[index - first])
        fake = encode_side_index([(first + i, *r.values(), b"") for i, r in enumerate(table)])
        times = [r["ts_ms"] for r in table]
        conn.execute(
            "UPDATE batches SET cols = ?, digest = ?, min_ts = ?, max_ts = ? WHERE first = ?",
            (fake, hashlib.sha256(fake).digest(), min(times), max(times), first),
        )
    return int(first)


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tile ledger of several batches (one per sync), acme's ``policy.change`` in the middle
    one, verified once (the default verify is incremental from here)."""
    monkeypatch.setenv("HUB_LEDGER_STORE", "tiles")
    data = tmp_path / "data"
    h = make_hub(data, checkpoint_every_leaves=64, ledger_store="tiles")
    try:
        publish(h, 100)
        h.ledger.sync(force_checkpoint=True)
        h.ledger.record_action("ann", "policy.change", "policy/bundle-7", tenant="acme")
        publish(h, 20, start=100)
        h.ledger.sync(force_checkpoint=True)
        publish(h, 30, start=120)
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    assert len(_batches(data)) >= 3
    code, _out, err = cli(data, "ledger", "verify")
    assert code == 0, err
    return data


def _policy_change(data: Path) -> int:
    code, out, err = cli(data, "ledger", "entries", "--action", "policy.change")
    assert code == 0, err
    (line,) = out.splitlines()
    return int(json.loads(line)["index"])


def _verify_fails(data: Path, first: int, said: str) -> None:
    code, out, err = cli(data, "ledger", "verify")  # the default: incremental
    assert code == 1, out + err
    assert f"side-index batch starting at leaf {first}" in err + out and said in err + out, err


FORGERIES: dict[str, Callable[[dict[str, Any]], None]] = {
    "tenant": lambda r: r.update(tenant="globex"),
    "action": lambda r: r.update(action="note.seen"),
    "time": lambda r: r.update(ts_ms=1000),
}


@pytest.mark.parametrize("column", sorted(FORGERIES))
def test_the_default_verify_names_a_rewritten_batch(data: Path, column: str) -> None:
    first = rewrite(data, _policy_change(data), FORGERIES[column])
    _verify_fails(data, first, "does not match its MAC")


def test_a_tenants_entries_refuse_a_batch_whose_tenant_was_rewritten(data: Path) -> None:
    """acme's entry moved to globex: acme's officer's list would just lack it."""
    index = _policy_change(data)
    h = make_hub(data)
    try:
        token = h.keys.create(["compliance_officer"], principal="o", tenant="acme").token
    finally:
        h.close()
    h = make_hub(data)
    try:
        with TestClient(create_app(h), raise_server_exceptions=False) as client:
            r = client.get("/v1/ledger/entries", params={"limit": 1000}, headers=basic(token))
            assert r.status_code == 200 and index in [e["index"] for e in r.json()["entries"]]
            first = rewrite(data, index, FORGERIES["tenant"])
            h.ledger.store.clear_caches()
            r = client.get("/v1/ledger/entries", params={"limit": 1000}, headers=basic(token))
            assert r.status_code >= 500, r.text
            assert f"batch starting at leaf {first}" in r.json()["message"], r.json()
    finally:
        h.close()


def test_an_evidence_pack_refuses_a_batch_whose_time_was_rewritten(
    data: Path, tmp_path: Path
) -> None:
    """Time moved to 1970: the entry would fall out of the period's selection before any log
    record is read, in a pack that verifies."""
    first = rewrite(data, _policy_change(data), FORGERIES["time"])
    out = tmp_path / "pack.zip"
    code, stdout, err = cli(
        data, "evidence", "export", "--from", "2000-01-01", "--to", "2100-01-01",
        "--controls", "CC8", "--out", str(out),
    )  # fmt: skip
    assert code != 0, stdout
    assert f"side-index batch starting at leaf {first}" in err, err
    assert not out.exists()


def test_a_narrowed_time_range_fails(data: Path) -> None:
    """The batch row's time range alone moved (columns untouched): a period query would skip
    the whole batch before decoding it."""
    _, (middle, _), *_ = _batches(data)
    with sqlite3.connect(data / FILE) as conn:
        conn.execute("UPDATE batches SET min_ts = 0, max_ts = 1 WHERE first = ?", (middle,))
    _verify_fails(data, middle, "does not match its MAC")


def test_a_stripped_mac_fails(data: Path) -> None:
    _, (middle, _), *_ = _batches(data)
    with sqlite3.connect(data / FILE) as conn:
        conn.execute("UPDATE batches SET mac = NULL WHERE first = ?", (middle,))
    _verify_fails(data, middle, "has no MAC")


def test_swapped_macs_fail(data: Path) -> None:
    (a, _), (b, _), *_ = _batches(data)
    with sqlite3.connect(data / FILE) as conn:
        mac_a, mac_b = (
            conn.execute("SELECT mac FROM batches WHERE first = ?", (f,)).fetchone()[0]
            for f in (a, b)
        )
        conn.execute("UPDATE batches SET mac = ? WHERE first = ?", (mac_b, a))
        conn.execute("UPDATE batches SET mac = ? WHERE first = ?", (mac_a, b))
    _verify_fails(data, a, "does not match its MAC")


def test_a_removed_marker_fails(data: Path) -> None:
    """Every MAC kept but the keyed-from marker deleted: the batches cannot pass as old ones."""
    with sqlite3.connect(data / FILE) as conn:
        conn.execute("DELETE FROM meta WHERE key = 'side_mac_from'")
    _verify_fails(data, 0, "keyed-from marker is missing")


@pytest.mark.parametrize("full", [False, True])
def test_every_mac_and_the_marker_stripped_fails(data: Path, full: bool) -> None:
    """Each batch alone then passes as one written before the MAC; the verification
    remembered (signed, ``keys/``) counted none, so verify, full or not, fails."""
    with sqlite3.connect(data / FILE) as conn:
        conn.execute("UPDATE batches SET mac = NULL")
        conn.execute("DELETE FROM meta WHERE key = 'side_mac_from'")
    code, out, err = cli(data, "ledger", "verify", *(["--full"] if full else []))
    assert code == 1, out + err
    n = len(_batches(data))
    assert f"{n} side-index batches have no MAC" in err and "counted 0" in err, err


def test_batches_written_before_the_mac_are_counted_not_failed(data: Path) -> None:
    """A file from before the MAC: no mac column values, no marker. Verify passes and counts
    them; the next sync writes keyed batches after them, and stripping one of those fails."""
    n = len(_batches(data))
    with sqlite3.connect(data / FILE) as conn:
        conn.execute("UPDATE batches SET mac = NULL")
        conn.execute("DELETE FROM meta WHERE key = 'side_mac_from'")
    (data / "ledger-verified.note").unlink()  # an old hub remembered no count
    code, out, err = cli(data, "ledger", "verify", "--full")
    assert code == 0, err
    assert f"unkeyed batches: {n} (written before" in out, out
    h = make_hub(data, ledger_store="tiles")
    try:
        publish(h, 10, start=150)
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    code, out, err = cli(data, "ledger", "verify")
    assert code == 0, err
    assert f"unkeyed batches: {n} (" in out, out  # the new batches are keyed
    last = _batches(data)[-1][0]
    with sqlite3.connect(data / FILE) as conn:
        conn.execute("UPDATE batches SET mac = NULL WHERE first = ?", (last,))
    _verify_fails(data, last, "has no MAC")
