"""Someone who can write the data folder, without any key, removes the ledger, its witness
folder, the remembered verification AND the ledger signing key (keys/ledger.key). The hub took
that for its own first start (``Signer.created``), rebuilt the ledger from the log and signed it
under a key it made then: `hub ledger verify` (without --public-key) answered OK, with a new
checkpoint history. The s19 refusal of an empty ledger over a non-empty log ("under a key that
existed before") was one ``rm`` away. The log's MAC key existing before the ledger key is new
tells a removed key from a first start: such a start is now refused, naming the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.service.test_ledger import cli, make_hub, publish


@pytest.fixture
def data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    h = make_hub(data, checkpoint_every_leaves=16, ledger_store="tiles")
    try:
        publish(h, 30)
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    code, _out, err = cli(data, "ledger", "verify")
    assert code == 0, err
    return data


def remove_ledger_and_its_key(data: Path) -> None:
    for p in data.iterdir():
        if p.name.startswith("ledger") and p.is_file():
            p.unlink()
    shutil.rmtree(data / "witness", ignore_errors=True)
    for p in (data / "keys").iterdir():
        if p.name.startswith("ledger"):
            p.unlink()


def test_a_removed_ledger_key_does_not_make_a_first_start(data: Path) -> None:
    remove_ledger_and_its_key(data)
    for command in (("ledger", "verify"), ("ledger", "sync")):
        code, out, err = cli(data, *command)
        assert code != 0, out  # before: a new key, the ledger rebuilt and signed, verify OK
        assert "its signing key" in err and "is missing" in err, err
        assert "Restore the ledger file, its key" in err, err
    assert not (data / "keys" / "ledger.key").exists()  # nothing was made for the attacker


def test_a_removed_key_under_a_kept_ledger_is_noticed(data: Path) -> None:
    """Only the key removed (the ledger kept): the hub makes a new key; verify must not pass
    the old checkpoints as the folder's own."""
    for p in (data / "keys").iterdir():
        if p.name.startswith("ledger"):
            p.unlink()
    code, out, _err = cli(data, "ledger", "verify")
    assert code != 0, out
