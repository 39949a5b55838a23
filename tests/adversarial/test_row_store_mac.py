"""The row store's query columns under a MAC. Whoever can write ``ledger.sqlite`` (not
``keys/``) rewrites a leaf row's tenant, action, actor or time: the leaf hash, the tree and the
checkpoints are untouched, so the default (incremental) verify passed, and a filtered read
(a tenant's ``entries``, an evidence selection) selects by SQL and simply leaves the entry out
(only rows it serves are recomputed from the log). Each appended batch of rows now carries a
MAC under a key in ``keys/``; the default verify checks every batch and their coverage."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.service.test_ledger import cli, make_hub, publish

FILE = "ledger.sqlite"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    h = make_hub(data, checkpoint_every_leaves=64)
    try:
        publish(h, 60)
        h.ledger.sync(force_checkpoint=True)
        h.ledger.record_action("ann", "policy.change", "policy/bundle-7", tenant="acme")
        publish(h, 20, start=60)
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    code, _out, err = cli(data, "ledger", "verify")
    assert code == 0, err
    return data


def _policy_change(data: Path) -> int:
    with sqlite3.connect(data / FILE) as conn:
        (idx,) = conn.execute("SELECT idx FROM leaves WHERE action = 'policy.change'").fetchone()
    return int(idx)


def _verify_fails(data: Path, said: str) -> str:
    code, out, err = cli(data, "ledger", "verify")  # the default: incremental
    assert code == 1, out + err
    assert said in out + err, out + err
    return out + err


@pytest.mark.parametrize(
    ("column", "value"),
    [("tenant", "'globex'"), ("action", "'note.seen'"), ("ts_ms", "1000"), ("actor", "'bob'")],
)
def test_a_rewritten_column_fails_the_default_verify(data: Path, column: str, value: str) -> None:
    index = _policy_change(data)
    with sqlite3.connect(data / FILE) as conn:
        conn.execute(f"UPDATE leaves SET {column} = {value} WHERE idx = ?", (index,))
    _verify_fails(data, "do not match their MAC")


def test_the_acme_officer_no_longer_sees_the_entry_but_verify_says_why(data: Path) -> None:
    """The omission itself: acme's filtered read lacks the entry (SQL selects it away)."""
    index = _policy_change(data)
    with sqlite3.connect(data / FILE) as conn:
        conn.execute("UPDATE leaves SET action = 'note.seen' WHERE idx = ?", (index,))
    code, out, _err = cli(data, "ledger", "entries", "--action", "policy.change")
    assert code == 0 and out.strip() == "", out
    _verify_fails(data, "leaf rows")


def test_removed_macs_fail_and_are_not_keyed_again(data: Path) -> None:
    index = _policy_change(data)
    with sqlite3.connect(data / FILE) as conn:
        conn.execute("UPDATE leaves SET tenant = 'globex' WHERE idx = ?", (index,))
        conn.execute("DELETE FROM leaf_macs")
    _verify_fails(data, "covered by no MAC")
    _verify_fails(data, "covered by no MAC")  # the open in between did not key them


def test_a_file_from_before_the_mac_is_keyed_once_on_open(data: Path) -> None:
    with sqlite3.connect(data / FILE) as conn:
        conn.execute("DROP TABLE leaf_macs")
    (data / "keys" / "ledger-rows.keyed").unlink()
    code, out, err = cli(data, "ledger", "verify")
    assert code == 0, out + err
    assert (data / "keys" / "ledger-rows.keyed").exists()
    with sqlite3.connect(data / FILE) as conn:
        conn.execute("UPDATE leaves SET actor = 'bob' WHERE idx = 3")
    _verify_fails(data, "do not match their MAC")
