"""More of what someone with write access to the backup store (not the KEK) can do.

1. Rollback: deleting the newest backup's ``manifest.sig`` made ``hub backup restore`` (no id)
   silently restore an older backup, dropping every record and erasure since. The witness the
   operator keeps beside the KEK records every backup made: the restore MUST refuse naming the
   missing backup, and restore the older one only when told (``--allow-older``); a changed
   witness is refused; a missing witness is a loud warning.
2. Memory: chunks, manifests and signatures were read whole before their hash or signature was
   checked: a huge object planted in the store made a restore (or ``backup verify``/``list``)
   hold all of it in memory. Each MUST be refused naming the object, with memory bounded.
3. Erasure journal: an ``erasures/`` entry planted in the store made the restore crypto-shred
   that subject; entries are signed by the ledger key and a planted one is refused.
"""

from __future__ import annotations

import json
import shutil
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from audit.note import generate_key, sign_note
from storage.backup import MAX_MANIFEST_BYTES, Manifest, chunk_key, manifest_key
from storage.erasures import JournalEntry, journal_key, signed_text
from tests.adversarial.test_backup_attacks import (
    as_role,
    copy_site,
    obj,
    refused,
    restore,
    site,
)

__all__ = ["copy_site", "site"]  # the fixtures, re-used

HUGE = 256 << 20
BOUND = 48 << 20  # what a bounded reader may peak at (blocks, the hub's own state)


def witness_beside(site: dict[str, Any], tmp_path: Path, *, witness: bool = True) -> Path:
    """A copy of the KEK (and its witness) the test may change; the KEK file's path."""
    folder = tmp_path / "vault"
    folder.mkdir()
    kek = Path(site["kek"])
    shutil.copy2(kek, folder / kek.name)
    if witness:
        shutil.copy2(Path(f"{kek}.backups"), folder / f"{kek.name}.backups")
    return folder / kek.name


def delete_sig(site: dict[str, Any], bid: str) -> None:
    path = obj(site, manifest_key(bid, "manifest.sig"))
    path.parent.chmod(0o755)
    path.unlink()


def test_the_site_s_backups_are_witnessed(site: dict[str, Any]) -> None:
    lines = Path(f"{site['kek']}.backups").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [site["first"], site["second"]]


def test_a_deleted_newest_signature_does_not_roll_the_restore_back(
    copy_site: dict[str, Any], tmp_path: Path
) -> None:
    site = copy_site
    delete_sig(site, site["second"])
    target = tmp_path / "restored"
    r = restore(site, target)
    refused(r, target, "restore_refused", site["second"], site["first"], "--allow-older")

    r = restore(site, target, "--allow-older")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["backup"] == site["first"]
    assert "WARNING" in r.stderr and site["second"] in r.stderr


def test_a_bound_that_excludes_the_missing_backup_restores_without_a_flag(
    copy_site: dict[str, Any], tmp_path: Path
) -> None:
    site = copy_site
    first = Manifest.decode(obj(site, manifest_key(site["first"])).read_bytes(), "first")
    delete_sig(site, site["second"])
    target = tmp_path / "restored"
    r = restore(site, target, "--at-size", str(first.ledger_size))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["backup"] == site["first"]


def test_a_changed_witness_is_refused(copy_site: dict[str, Any], tmp_path: Path) -> None:
    site = copy_site
    kek = witness_beside(site, tmp_path)
    witness = Path(f"{kek}.backups")
    lines = witness.read_text().splitlines()
    forged = json.loads(lines[1])
    forged["ledger_size"] = 1  # hide the newest backup from an --at-size restore
    witness.write_text(lines[0] + "\n" + json.dumps(forged) + "\n")
    target = tmp_path / "restored"
    r = restore(site, target, "--kek-file", str(kek))
    refused(r, target, "backup_corrupt", str(witness), "Line 2")


def test_without_a_witness_the_restore_warns(copy_site: dict[str, Any], tmp_path: Path) -> None:
    site = copy_site
    kek = witness_beside(site, tmp_path, witness=False)
    target = tmp_path / "restored"
    r = restore(site, target, "--kek-file", str(kek))
    assert r.exit_code == 0, r.output
    assert "WARNING: no backup witness" in r.stderr


def plant_huge(path: Path) -> None:
    """A sparse file: huge to a reader, nothing on disk."""
    path.chmod(0o644)
    with path.open("wb") as f:
        f.truncate(HUGE)


def peak_of(call: Callable[[], Result]) -> tuple[Result, int]:
    tracemalloc.start()
    try:
        r = call()
        return r, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_huge_chunk_is_refused_with_bounded_memory(
    copy_site: dict[str, Any], tmp_path: Path
) -> None:
    site = copy_site
    second = Manifest.decode(obj(site, manifest_key(site["second"])).read_bytes(), "second")
    victim = next(f for f in second.files if f.path == "log.sqlite").chunks[0]
    plant_huge(obj(site, chunk_key(victim)))
    target = tmp_path / "restored"
    r, peak = peak_of(lambda: restore(site, target, site["second"]))
    refused(r, target, chunk_key(victim), "larger than")
    assert peak < BOUND, peak
    r, peak = peak_of(lambda: as_role(site, "admin", "backup", "verify", site["second"]))
    assert r.exit_code == 1 and chunk_key(victim) in r.stderr, r.output
    assert peak < BOUND, peak


def test_a_huge_manifest_or_signature_is_refused_with_bounded_memory(
    copy_site: dict[str, Any], tmp_path: Path
) -> None:
    site = copy_site
    for name in ("manifest.json", "manifest.sig"):
        path = obj(site, manifest_key(site["second"], name))
        kept = path.read_bytes()
        plant_huge(path)
        target = tmp_path / f"restored-{name}"
        r, peak = peak_of(lambda: restore(site, target, site["second"]))  # noqa: B023
        refused(r, target, manifest_key(site["second"], name), "larger than")
        assert peak < 2 * MAX_MANIFEST_BYTES + (16 << 20) < HUGE // 2, peak  # read up to the cap
        path.write_bytes(kept)


@pytest.mark.parametrize("signed_by", ["nobody", "the attacker"])
def test_an_erasure_planted_in_the_journal_is_not_applied(
    copy_site: dict[str, Any], tmp_path: Path, signed_by: str
) -> None:
    """Unsigned, a planted ``erasures/`` entry made the restore destroy that subject's key."""
    site = copy_site
    entry = JournalEntry("ACC-1", 1, None)
    body: dict[str, Any] = {"subject": "ACC-1", "erased_at_ms": 1, "audit_offset": None}
    if signed_by == "the attacker":
        body["note"] = sign_note(signed_text(entry), generate_key("hub.local")).decode()
    planted = obj(site, journal_key("ACC-1"))
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_text(json.dumps(body))
    target = tmp_path / "restored"
    refused(restore(site, target), target, "erasure_journal_corrupt", journal_key("ACC-1"))


def test_an_erasure_deleted_from_the_journal_fails_the_restore_of_an_older_backup(
    copy_site: dict[str, Any], tmp_path: Path
) -> None:
    """Deleting ``erasures/<subject>.json`` let a restore of a backup made before the erasure
    bring the subject back; the newest backup's signed manifest lists the journal. (Late in the
    file: it erases a subject in the module's data folder.)"""
    site = copy_site
    kek = witness_beside(site, tmp_path)
    r = as_role(site, "admin", "erase", "ACC-2", "--reason", "DSR-7")
    assert r.exit_code == 0, r.output
    r = as_role(site, "admin", "backup", "create", "--kek-file", str(kek))
    assert r.exit_code == 0, r.output
    third = json.loads(r.stdout)["id"]
    manifest = Manifest.decode(obj(site, manifest_key(third)).read_bytes(), third)
    assert journal_key("ACC-2") in manifest.erasures
    entry = obj(site, journal_key("ACC-2"))
    entry.parent.chmod(0o755)
    entry.unlink()
    target = tmp_path / "restored"
    r = restore(site, target, site["second"], "--kek-file", str(kek))
    refused(r, target, "restore_refused", journal_key("ACC-2"), "bring those subjects back")


def test_the_witness_file_can_live_elsewhere_but_not_beside_the_data(
    copy_site: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = copy_site
    kek = witness_beside(site, tmp_path, witness=False)
    inside = Path(site["data"]) / "witness.backups"
    monkeypatch.setenv("HUB_BACKUP_WITNESS_FILE", str(inside))
    before = sorted(p.name for p in (Path(site["objects"]) / "backups").iterdir())
    r = as_role(site, "admin", "backup", "create", "--kek-file", str(kek))
    assert r.exit_code == 1 and "HUB_BACKUP_WITNESS_FILE" in r.stderr, r.output
    assert sorted(p.name for p in (Path(site["objects"]) / "backups").iterdir()) == before
    elsewhere = tmp_path / "ops" / "hub.backups"
    elsewhere.parent.mkdir()
    monkeypatch.setenv("HUB_BACKUP_WITNESS_FILE", str(elsewhere))
    r = as_role(site, "admin", "backup", "create", "--kek-file", str(kek))
    assert r.exit_code == 0, r.output
    assert json.loads(elsewhere.read_text())["id"] == json.loads(r.stdout)["id"]
