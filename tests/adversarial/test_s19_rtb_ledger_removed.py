"""Someone who can write the data folder, without any key, removes the ledger (or replaces its
file by an empty one), its witness folder and the remembered verification. The hub rebuilt the
ledger from the log on its next start and signed it under its genuine key: `hub ledger verify`
answered OK, while the checkpoint history (times, the witness's copies) was new and the records
removed by retention were gone from the tree. An empty ledger over a non-empty log under a key
that existed before is now refused, naming the fix."""

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


def remove_the_ledger(data: Path, *, leave_empty_file: bool = False) -> None:
    for p in data.iterdir():
        if p.name.startswith("ledger") and p.is_file():
            p.unlink()
    shutil.rmtree(data / "witness")
    if leave_empty_file:
        (data / "ledger-tiles.sqlite").touch()


@pytest.mark.parametrize("empty_file", [False, True])
def test_a_removed_ledger_is_not_rebuilt_under_the_old_key(data: Path, empty_file: bool) -> None:
    remove_the_ledger(data, leave_empty_file=empty_file)
    for command in (("ledger", "verify"), ("ledger", "sync")):
        code, out, err = cli(data, *command)
        assert code != 0, out  # before: rebuilt, re-signed, then verify OK
        assert "the ledger store was removed or replaced" in err, err
        assert "Restore the ledger file" in err, err


def test_the_first_start_of_a_new_folder_still_builds_its_ledger(tmp_path: Path) -> None:
    """Covered by every hub a test makes; here after records exist before the key does (the
    domain's topics and schemas are appended before the ledger opens)."""
    data = tmp_path / "fresh"
    h = make_hub(data, ledger_store="tiles")
    try:
        assert h.ledger.signer.created
        assert h.ledger.store.tree_size() > 0 or h.ledger.sync().size > 0
    finally:
        h.close()
