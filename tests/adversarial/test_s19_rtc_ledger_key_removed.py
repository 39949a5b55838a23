"""Someone who can write the data folder, without any key, removes the ledger, its witness
folder, the remembered verification AND the ledger signing key (keys/ledger.key). The hub took
that for its own first start (``Signer.created``), rebuilt the ledger from the log and signed it
under a key it made then: `hub ledger verify` (without --public-key) answered OK, with a new
checkpoint history. The s19 refusal of an empty ledger over a non-empty log ("under a key that
existed before") was one ``rm`` away. The log's MAC key existing before the ledger key is new
tells a removed key from a first start: such a start is now refused, naming the fix."""

from __future__ import annotations

from pathlib import Path

from tests.adversarial.test_s19_rtb_ledger_removed import (  # noqa: F401 (the fixture)
    data,
    remove_the_ledger,
)
from tests.service.test_ledger import cli


def remove_ledger_and_its_key(folder: Path) -> None:
    remove_the_ledger(folder)
    for p in (folder / "keys").iterdir():
        if p.name.startswith("ledger"):
            p.unlink()


def test_a_removed_ledger_key_does_not_make_a_first_start(data: Path) -> None:  # noqa: F811
    remove_ledger_and_its_key(data)
    for command in (("ledger", "verify"), ("ledger", "sync")):
        code, out, err = cli(data, *command)
        assert code != 0, out  # before: a new key, the ledger rebuilt and signed, verify OK
        assert "its signing key" in err and "is missing" in err, err
        assert "Restore the ledger file, its key" in err, err
    assert not (data / "keys" / "ledger.key").exists()  # nothing was made for the attacker


def test_a_removed_key_under_a_kept_ledger_is_noticed(data: Path) -> None:  # noqa: F811
    """Only the key removed (the ledger kept): the hub makes a new key; verify must not pass
    the old checkpoints as the folder's own."""
    for p in (data / "keys").iterdir():
        if p.name.startswith("ledger"):
            p.unlink()
    code, out, _err = cli(data, "ledger", "verify")
    assert code != 0, out
