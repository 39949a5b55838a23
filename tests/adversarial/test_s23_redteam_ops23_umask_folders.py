"""The folders the hub makes outside its data folder are its owner's alone, whatever the umask.

Session 21 made the data folder, the object store's folders and the restore's target 0700
whatever the umask. Three folders outside them were still made with ``mkdir(parents=True)``,
i.e. with the umask's mode: under ``umask 000`` (a container's or a service manager's setting)
or ``002`` (the default of many distributions' user accounts), other users (or the group) could
WRITE them, so rename, delete or replace what they hold:
- the KEK's folder (``hub backup kek PATH``), which also holds the backup witness: a KEK put
  in its place seals the next backup's key material (the key ring's master key, the ledger's
  signing key, the log's MAC key) under a key someone else holds; a deleted witness turns the
  restore's rollback check into a warning;
- the outside witness (``<data>-witness``, ``HUB_LEDGER_WITNESS_DIR``), the anchor of the
  ledger's rollback check, made at the first start;
- the folder of ``hub init``'s admin key file (``--key-file``): the admin key could be
  replaced with another's.
Each missing folder is now made 0700 (an existing one keeps the mode its owner chose).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from hub.bootstrap import bootstrap
from hub.cli import main
from hub.settings import load_settings


@pytest.fixture(params=[0o000, 0o002], ids=["umask000", "umask002"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def writable_by_others(folder: Path, top: Path) -> list[str]:
    """``folder`` and each folder above it up to ``top`` (excluded) that group or others may
    write, with its mode."""
    found = []
    while folder != top:
        mode = stat.S_IMODE(folder.stat().st_mode)
        if mode & 0o022:
            found.append(f"{folder.relative_to(top)} {mode:o}")
        folder = folder.parent
    return found


def test_the_kek_folder_is_the_owners_alone(tmp_path: Path, umask: int) -> None:
    kek = tmp_path / "vault" / "hub" / "backup.kek"
    r = CliRunner().invoke(main, ["backup", "kek", str(kek)])
    assert r.exit_code == 0, r.output
    assert writable_by_others(kek.parent, tmp_path) == []


def test_the_outside_witness_folder_is_the_owners_alone(tmp_path: Path, umask: int) -> None:
    witness = tmp_path / "anchors" / "ledger"
    env = {"HUB_PROJECTION_AUTOSTART": "false", "HUB_LEDGER_WITNESS_DIR": str(witness)}
    h = bootstrap(load_settings(environ=env, data_dir=tmp_path / "hub"))
    try:
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    assert any(witness.iterdir()), "the outside witness holds nothing"
    assert writable_by_others(witness, tmp_path) == []


def test_the_default_outside_witness_folder_is_the_owners_alone(tmp_path: Path, umask: int) -> None:
    h = bootstrap(
        load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=tmp_path / "hub")
    )
    try:
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    assert writable_by_others(tmp_path / "hub-witness", tmp_path) == []


def test_the_admin_key_folder_is_the_owners_alone(tmp_path: Path, umask: int) -> None:
    key = tmp_path / "secrets" / "ops" / "admin.key"
    r = CliRunner().invoke(
        main, ["--data-dir", str(tmp_path / "hub"), "init", "--key-file", str(key)]
    )
    assert r.exit_code == 0, r.output
    assert key.exists()
    assert writable_by_others(key.parent, tmp_path) == []
