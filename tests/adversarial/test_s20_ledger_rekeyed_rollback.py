"""Someone who can write the data folder, without reading any key, copies back an older genuine
folder and then removes what ties it to the old signing key: keys/ledger.key (and .pub), the
signed checkpoints in the ledger store, the in-folder witness copies and the remembered
verification. The ledger's entries stay (the log's MACs need no ledger key).

Before: the hub made a new signing key over the non-empty ledger (only an EMPTY ledger under a
new key was refused, s19 red team c), signed a checkpoint of the rolled-back ledger with it, and
the outside witness, whose file is named after the folder's key, was a new empty file: start-up
and `hub ledger verify` (without --public-key) answered OK; the entries above the copy (an
erasure, a policy change) were gone without a trace. Now a start whose signing key is missing
over a ledger that holds entries is refused, naming the fix, and nothing is made or signed."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from ledger.errors import LedgerIntegrityError
from tests.adversarial.test_s19_witness_rollback import history  # noqa: F401 (the fixture)
from tests.service.test_ledger import cli, make_hub


def rekey(data: Path) -> None:
    """Remove the key and every signature made with it; keep the ledger's entries."""
    for p in (data / "keys").iterdir():
        if p.name.startswith("ledger"):
            p.unlink()
    for name in ("ledger.sqlite", "ledger-tiles.sqlite"):
        if (data / name).exists():
            with sqlite3.connect(data / name) as db:
                tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
                for table in ("checkpoints", "witness_intents"):
                    if table in tables:
                        db.execute(f"DELETE FROM {table}")
    for p in (data / "witness").rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    shutil.rmtree(data / "witness", ignore_errors=True)
    (data / "ledger-verified.note").unlink(missing_ok=True)


def test_an_older_folder_rekeyed_is_refused(
    history: tuple[Path, Path, int, int],  # noqa: F811
) -> None:
    data, snapshot, _old, _new = history
    shutil.rmtree(data)
    shutil.copytree(snapshot, data)
    rekey(data)
    for command in (("ledger", "verify"), ("ledger", "sync")):
        code, out, err = cli(data, *command)
        assert code != 0, out  # before: OK, signed by a new key, the rollback unnoticed
        assert "Traceback" not in err, err
        assert "signing key" in err and "is missing" in err, err
        assert "entries" in err, err
    with pytest.raises(LedgerIntegrityError, match="is missing"):
        make_hub(data, checkpoint_every_leaves=8).close()
    assert not (data / "keys" / "ledger.key").exists()  # nothing was made for the attacker


def test_the_current_folder_rekeyed_is_refused(
    history: tuple[Path, Path, int, int],  # noqa: F811
) -> None:
    """Without the rollback: the re-keyed ledger's history (checkpoint times, witness) is lost."""
    data, _snapshot, _old, _new = history
    rekey(data)
    code, out, err = cli(data, "ledger", "verify")
    assert code != 0, out
    assert "is missing" in err, err
