"""Someone who can write the data folder, without any key, downgrades the embedded log to schema
v1 (drops its five MAC columns and sets ``user_version = 1``) after editing a record, and
removes the ledger, its witness copies and the remembered verification. Before session 19 the
hub opened such a log as a genuine pre-MAC one, sealed it as found (trust on first use), rebuilt
the ledger from it and signed the edited history with its genuine key: `hub ledger verify
--full` answered OK. The seal now needs the operator's opt-in (``HUB_LOG_SEAL_V1``)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from adapters.sqlite_log.batch import decode_batch, encode_batch
from tests.service.test_ledger import cli, make_hub, publish

MAC_COLUMNS = (
    ("topics", "mac"),
    ("partitions", "anchor"),
    ("partitions", "head"),
    ("partitions", "mac"),
    ("batches", "mac"),
)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    h = make_hub(data, checkpoint_every_leaves=16, ledger_store="tiles")
    try:
        publish(h, 40)
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    code, _out, err = cli(data, "ledger", "verify", "--full")
    assert code == 0, err
    return data


def edit_a_trade_and_downgrade(data: Path) -> None:
    with sqlite3.connect(data / "log.sqlite", isolation_level=None) as c:
        bid, blob = c.execute(
            "SELECT b.id, b.data FROM batches b JOIN topics t ON t.id = b.topic_id"
            " WHERE t.name = 'trades' ORDER BY b.id LIMIT 1"
        ).fetchone()
        _n, ts, keys, values, headers = decode_batch(blob)
        edited = list(values)
        edited[0] = edited[0][:-1] + bytes([edited[0][-1] ^ 1])
        new = encode_batch(list(keys), edited, [tuple(h) for h in headers], list(ts))
        c.execute("UPDATE batches SET data = ? WHERE id = ?", (new, bid))
        for table, column in MAC_COLUMNS:
            c.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        c.execute("PRAGMA user_version = 1")


def remove_the_ledger(data: Path) -> None:
    for p in data.iterdir():
        if p.name.startswith("ledger") and p.is_file():
            p.unlink()
    shutil.rmtree(data / "witness")


def test_a_downgraded_log_with_an_edit_and_no_ledger_is_refused(data: Path) -> None:
    edit_a_trade_and_downgrade(data)
    remove_the_ledger(data)
    code, out, err = cli(data, "ledger", "sync")
    assert code != 0, out  # before: synced, then `verify --full` answered OK over the edit
    assert "schema version 1" in err and "HUB_LOG_SEAL_V1" in err, err
    code, out, err = cli(data, "ledger", "verify", "--full")
    assert code != 0, out
    assert "schema version 1" in err, err
    with sqlite3.connect(data / "log.sqlite") as c:  # left as found: nothing sealed
        assert c.execute("PRAGMA user_version").fetchone()[0] == 1


def test_a_downgrade_alone_is_refused_too(data: Path) -> None:
    """With the ledger kept the edit was found as a leaf mismatch, but the log was sealed
    (made to authenticate the edit) on the way: nothing is changed now."""
    edit_a_trade_and_downgrade(data)
    code, out, err = cli(data, "ledger", "verify", "--full")
    assert code != 0 and "schema version 1" in err, (out, err)


def test_the_operator_may_seal_a_genuine_v1_log_once(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log from before the MAC (here: made so by dropping the columns of an honest one) is
    sealed as found when the operator says so; the ledger still checks every record."""
    with sqlite3.connect(data / "log.sqlite", isolation_level=None) as c:
        for table, column in MAC_COLUMNS:
            c.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        c.execute("PRAGMA user_version = 1")
    monkeypatch.setenv("HUB_LOG_SEAL_V1", "true")
    code, _out, err = cli(data, "ledger", "verify", "--full")
    assert code == 0, err
    code, _out, err = cli(data, "ledger", "verify", "--full")  # once: left on, refused
    assert code != 0 and "HUB_LOG_SEAL_V1 is set" in err and "unset it" in err, err
    monkeypatch.delenv("HUB_LOG_SEAL_V1")
    code, _out, err = cli(data, "ledger", "verify", "--full")  # sealed: v2 from now on
    assert code == 0, err
