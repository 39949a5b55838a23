"""A side-index batch row deleted from ``ledger-tiles.sqlite``. Every remaining batch keeps a
valid MAC, so the readers, which check the batches they select, found nothing wrong: ``hub
ledger entries`` lacked the batch's entries and ``hub evidence export`` signed a pack whose
CC8 population missed the policy change (the default verify noticed; the readers did not).
Readers now check that the batches cover every leaf once before answering."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.cli_keys import admin_key_file
from tests.service.test_ledger import cli, make_hub, publish

FILE = "ledger-tiles.sqlite"


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HUB_LEDGER_STORE", "tiles")
    data = tmp_path / "data"
    h = make_hub(data, checkpoint_every_leaves=64, ledger_store="tiles")
    try:
        publish(h, 40)
        h.ledger.sync(force_checkpoint=True)
        h.ledger.record_action("ann", "policy.change", "policy/bundle-7", tenant="acme")
        publish(h, 40, start=40)
        h.ledger.sync(force_checkpoint=True)
        publish(h, 40, start=80)
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    admin_key_file(data)  # the CLI's admin key, made while the folder is whole (every open
    # checks the erasures through the side index, so a tampered folder refuses to make it)
    return data


def _drop_batch_of(data: Path, index: int) -> None:
    with sqlite3.connect(data / FILE) as conn:
        (first,) = conn.execute(
            "SELECT first FROM batches WHERE first <= ? ORDER BY first DESC LIMIT 1", (index,)
        ).fetchone()
        conn.execute("DELETE FROM batches WHERE first = ?", (first,))


def _change(data: Path) -> int:
    code, out, err = cli(data, "ledger", "entries", "--action", "policy.change")
    assert code == 0, err
    return int(json.loads(out.splitlines()[0])["index"])


def test_entries_refuse_instead_of_omitting(data: Path) -> None:
    _drop_batch_of(data, _change(data))
    code, out, err = cli(data, "ledger", "entries", "--action", "policy.change")
    assert code != 0, out
    assert "does not cover every leaf once" in err, err


def test_an_evidence_pack_is_not_signed_without_the_batch(data: Path, tmp_path: Path) -> None:
    _drop_batch_of(data, _change(data))
    out = tmp_path / "p.zip"
    code, stdout, err = cli(
        data, "evidence", "export", "--from", "2000-01-01", "--to", "2100-01-01",
        "--controls", "CC8", "--out", str(out),
    )  # fmt: skip
    assert code != 0, stdout
    assert "does not cover every leaf once" in err, err
    assert not out.exists()


def test_the_last_batch_removed_is_refused_too(data: Path) -> None:
    with sqlite3.connect(data / FILE) as conn:
        conn.execute("DELETE FROM batches WHERE first = (SELECT max(first) FROM batches)")
    code, out, err = cli(data, "ledger", "entries", "--action", "policy.change")
    assert code != 0, out
    assert "does not cover every leaf once" in err, err
