"""A restore must not widen who may read the data folder (session 21, redteam-ops).

The restore stages the backup's files in a folder made 0700 whatever the umask ("the restored
log becomes the data folder: owner only"). When the target already exists and is empty (an
operator's ``mkdir /srv/hub``, a fresh volume's mount point: 0755 under the usual umask 022),
the staged files were moved into it as they were: the restored event log (every tenant's
records), the ledger and the views became readable by every local user, where the backed-up
folder had been the owner's alone; the hub only warned at each start. The restore now makes
the target 0700, as it makes the staging folder (the files inside keep the modes the hub gives
its own files: the folder is what keeps them private, as after ``hub init``).

Also here: ``hub backup kek`` refuses to write a KEK where every later use refuses to read it
(inside the data folder or the local object folder).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from hub.bootstrap import bootstrap
from hub.cli import main
from hub.settings import load_settings
from tests.service.accounts import account_opened


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("rto-restore-modes")
    data, objects, kek = root / "hub", root / "store", root / "vault" / "backup.kek"
    mp = pytest.MonkeyPatch()
    mp.setenv("HUB_OBJECT_STORE_DIR", str(objects))
    mp.setenv("HUB_BACKUP_KEK_FILE", str(kek))
    mp.delenv("HUB_OBJECT_STORE", raising=False)
    assert run("backup", "kek", str(kek)).exit_code == 0
    h = bootstrap(load_settings(data_dir=data))
    try:
        admin = h.keys.create(["admin"], owner="admin-1").token
        event = account_opened("ACC-1", name="Name 1", opened_at="2026-11-25T10:00:00Z")
        h.publisher.publish("accounts", [event], producer="t")
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    made = run("--data-dir", str(data), "--key", admin, "backup", "create")
    assert made.exit_code == 0, made.output
    yield {"root": root, "admin": admin, "backup": json.loads(made.stdout)["id"]}
    mp.undo()


def mode(path: Path) -> str:
    return f"{stat.S_IMODE(path.stat().st_mode):o}"


def restore(site: dict[str, Any], target: Path) -> Result:
    return run(
        "--data-dir", str(target), "--key", site["admin"], "backup", "restore", site["backup"]
    )  # fmt: skip


def test_a_restore_into_an_existing_empty_folder_leaves_it_the_owners_alone(
    site: dict[str, Any],
) -> None:
    target = site["root"] / "mount-point"
    old = os.umask(0o022)
    try:
        target.mkdir()
        os.chmod(target, 0o755)  # what `mkdir` gives under the usual umask
        r = restore(site, target)
    finally:
        os.umask(old)
    assert r.exit_code == 0, r.output
    assert (target / "log.sqlite").exists()
    assert mode(target) == "700"


def test_a_restore_into_a_new_folder_under_umask_022_is_the_owners_alone(
    site: dict[str, Any],
) -> None:
    target = site["root"] / "new-folder"
    old = os.umask(0o022)
    try:
        r = restore(site, target)
    finally:
        os.umask(old)
    assert r.exit_code == 0, r.output
    assert mode(target) == "700"


def test_a_kek_is_not_written_into_the_data_folder_or_the_store(tmp_path: Path) -> None:
    """``hub backup kek`` wrote a KEK inside the data folder without objection (every later use
    refused it, and the next backup with another KEK uploaded the stray one in plaintext)."""
    data, objects = tmp_path / "hub", tmp_path / "store"
    data.mkdir()
    objects.mkdir()
    for path in (data / "backup.kek", data / "sub" / "k.kek", objects / "k.kek"):
        r = CliRunner().invoke(
            main,
            ["--data-dir", str(data), "backup", "kek", str(path)],
            env={"HUB_OBJECT_STORE_DIR": str(objects), "HUB_OBJECT_STORE": "local"},
        )
        assert r.exit_code == 1, r.output
        assert "beside what it protects" in r.output
        assert not path.exists()
    fine = tmp_path / "vault" / "backup.kek"
    r = CliRunner().invoke(
        main,
        ["--data-dir", str(data), "backup", "kek", str(fine)],
        env={"HUB_OBJECT_STORE_DIR": str(objects), "HUB_OBJECT_STORE": "local"},
    )
    assert r.exit_code == 0, r.output
    assert fine.exists()
