"""Session 17 (closed in rtstore2): an erasure made after the newest backup lived only in the
store's erasure journal, so deleting that one object brought the subject back on restore.

``check_erasures_kept`` compares the journal with the erasures the newest backup's signed
manifest lists; an erasure made since is in no manifest. Whoever could write the object store
deleted ``erasures/<sha256(subject)>.json``; the restore of the newest backup (made before the
erasure) found the subject's key in the restored key ring, re-applied nothing, and the
subject's PII read in clear again, exit 0. The anchor is now the backup witness beside the KEK
(``storage.backup_witness``): each erasure appends a line MACed under the KEK, and the restore
re-applies every witnessed erasure, naming those whose journal entry the store lost."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from hub.bootstrap import bootstrap
from hub.settings import load_settings
from storage.backup import BackupCorrupt, create_kek_file, load_kek
from storage.backup_witness import (
    Witnessed,
    WitnessedErasure,
    add_to_witness,
    read_witness,
    witness_path,
    witnessed_erasures,
)
from storage.erasures import journal_key
from tests.adversarial.test_backup_attacks import as_role, copy_site, obj, restore, site
from tests.adversarial.test_s17_store_named_rollback import _restore_entry_details

__all__ = ["copy_site", "site"]  # the fixtures, re-used


def _key_back(target: Path, subject: str) -> bool:
    h = bootstrap(load_settings(data_dir=target))
    try:
        keys = h.keystore.for_tenant("default")  # the site's tenant (s18: keys per tenant)
        return keys.exists(subject) and not keys.erased(subject)
    finally:
        h.close()


def test_an_erasure_after_the_newest_backup_survives_its_journal_entry_deleted(
    copy_site: dict[str, Any], tmp_path: Path
) -> None:
    site = copy_site
    r = as_role(site, "admin", "erase", "ACC-7", "--reason", "DSR-17")
    assert r.exit_code == 0, r.output
    assert "WARNING" not in r.stderr  # witnessed: HUB_BACKUP_KEK_FILE is set
    entry = obj(site, journal_key("ACC-7"))
    assert entry.exists()
    entry.parent.chmod(0o755)
    entry.unlink()  # the attacker's one deletion in the object store
    target = tmp_path / "restored"
    r = restore(site, target)
    assert r.exit_code == 0, r.output
    assert not _key_back(target, "ACC-7"), "the erased subject's key is back after the restore"
    assert "erasure journal lacks" in r.stderr and "ACC-7" in r.stderr
    assert "ACC-7" in json.loads(r.stdout)["erasures_reapplied"]
    assert _restore_entry_details(target)["erasure_journal_lost"] == ["ACC-7"]


def test_a_witness_erasure_line_without_the_kek_shreds_nobody(
    copy_site: dict[str, Any], tmp_path: Path
) -> None:
    """Whoever can write the witness but lacks the KEK cannot make a restore erase someone."""
    site = copy_site
    path = witness_path(create_kek_file(tmp_path / "other.kek"))
    w = Path(str(site["kek"]) + ".backups")
    saved = w.read_bytes()
    try:
        forged = {"kind": "erasure", "subject": "ACC-3", "erased_at_ms": 1, "ledger": "x"}
        forged["mac"] = "0" * 64
        w.write_bytes(saved + (json.dumps(forged) + "\n").encode())
        target = tmp_path / "restored"
        r = restore(site, target)
        assert r.exit_code == 1, r.output
        assert "fails its MAC" in r.stderr and "an erasure" in r.stderr
        assert not target.exists() or not any(target.iterdir())
    finally:
        w.write_bytes(saved)
    assert not path.exists()


def test_another_hubs_witnessed_erasure_is_not_applied_here(
    copy_site: dict[str, Any], tmp_path: Path
) -> None:
    """Two hubs sharing a KEK share its witness; subject ids are per hub, so hub B's erasure
    of ACC-3 must not shred hub A's ACC-3 on A's restore."""
    site = copy_site
    kek = load_kek(Path(site["kek"]))
    w = witness_path(kek)
    saved = w.read_bytes()
    try:
        add_to_witness(kek, WitnessedErasure("ACC-3", 1, "other-hub+01020304+AAAA"))
        target = tmp_path / "restored"
        r = restore(site, target)
        assert r.exit_code == 0, r.output
        assert _key_back(target, "ACC-3")
        assert "ACC-3" not in json.loads(r.stdout)["erasures_reapplied"]
    finally:
        w.write_bytes(saved)


def test_an_erasure_without_a_configured_kek_says_it_is_not_witnessed(
    site: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HUB_BACKUP_KEK_FILE")
    r = as_role(site, "admin", "erase", "ACC-8", "--reason", "DSR-18")
    assert r.exit_code == 0, r.output
    assert "journalled in the object store only" in r.stderr
    assert "HUB_BACKUP_KEK_FILE" in r.stderr


def test_concurrent_backup_and_erasure_lines_keep_the_chain(tmp_path: Path) -> None:
    """A backup and an erasure append from two processes; unlocked, both chained to the same
    line and the witness failed its check for good (every later restore refused)."""
    kek = create_kek_file(tmp_path / "k.kek")

    def backups() -> None:
        for i in range(30):
            add_to_witness(kek, Witnessed(f"20261205T0000{i:02d}000Z-aaaa", i, i, "ab" * 32))

    def erasures() -> None:
        for i in range(30):
            add_to_witness(kek, WitnessedErasure(f"ACC-{i}", i, "hub+1234+abc"))

    threads = [threading.Thread(target=backups), threading.Thread(target=erasures)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(read_witness(kek) or []) == 30
    assert [e.subject for e in witnessed_erasures(kek) or []] == [f"ACC-{i}" for i in range(30)]
    lines = witness_path(kek).read_text().splitlines()
    # the threads interleave: take an erasure line wherever it landed
    at = next(i for i, line in enumerate(lines) if '"kind": "erasure"' in line)
    turned = json.loads(lines[at])
    turned.pop("kind")  # an erasure line passed off as a backup line fails its check
    lines[at] = json.dumps(turned)
    witness_path(kek).write_text("\n".join(lines) + "\n")
    with pytest.raises(BackupCorrupt):
        read_witness(kek)
