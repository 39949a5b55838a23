"""OPEN (session 17 red team, not fixed): an erasure made after the newest backup lives only in
the store's erasure journal, so deleting that one object brings the subject back on restore.

``check_erasures_kept`` compares the journal with the erasures the newest backup's signed
manifest lists; an erasure made since is in no manifest and no witness (the hub that erases
does not hold the KEK, which keys the backup witness). Whoever can write the object store
deletes ``erasures/<sha256(subject)>.json``; the next restore (of the newest backup, made
before the erasure) finds the subject's key in the restored key ring, re-applies nothing, and
the subject's PII reads in clear again. Fix to make: an anchor outside the store (e.g. the
restore asks the surviving ledger or witness for ``subject.erase`` entries after the backup, or
a backup is taken on every erasure). The test is a strict xfail: it passes once that holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.bootstrap import bootstrap
from hub.settings import load_settings
from storage.erasures import journal_key
from tests.adversarial.test_backup_attacks import as_role, copy_site, obj, restore, site

__all__ = ["copy_site", "site"]  # the fixtures, re-used


@pytest.mark.xfail(strict=True, reason="open: erasure journal entries after the newest backup")
def test_an_erasure_after_the_newest_backup_survives_its_journal_entry_deleted(
    copy_site: dict[str, Any], tmp_path: Path
) -> None:
    site = copy_site
    r = as_role(site, "admin", "erase", "ACC-7", "--reason", "DSR-17")
    assert r.exit_code == 0, r.output
    entry = obj(site, journal_key("ACC-7"))
    assert entry.exists()
    entry.parent.chmod(0o755)
    entry.unlink()  # the attacker's one deletion in the object store
    target = tmp_path / "restored"
    r = restore(site, target)
    h = bootstrap(load_settings(data_dir=target))
    try:
        back = h.keystore.exists("ACC-7") and not h.keystore.erased("ACC-7")
    finally:
        h.close()
    assert r.exit_code != 0 or not back, "the erased subject's key is back after the restore"
