"""A backup planted in the store (a ``manifest.sig`` under a new id, nothing else, or junk)
MUST NOT stop the restore of a genuine backup.

Whoever can write the object store planted ``backups/<id sorting last>/manifest.sig``. Every
restore then failed: without ``--backup`` the choice and the erasure-journal check
(``check_erasures_kept``) opened the planted id as the newest backup, and even with a named,
genuine backup the erasure check did, so in a disaster the hub could not be restored at all
(``hub backup list`` failed the same way). A planted backup fails its signature: it is now
reported and skipped. Skipping cannot roll a restore back: deleting a genuine newest backup's
signature is what the backup witness catches (test_backup_store_rollback)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.adversarial.test_backup_attacks import as_role, copy_site, obj, restore, site

__all__ = ["copy_site", "site"]  # the fixtures, re-used

PLANTED = "99991231T235959Z-ffffffff"


def _plant(site: dict[str, Any], *, manifest: bool) -> None:
    sig = obj(site, f"backups/{PLANTED}/manifest.sig")
    sig.parent.mkdir(parents=True, exist_ok=True)
    sig.write_bytes(b"junk\n")
    if manifest:
        obj(site, f"backups/{PLANTED}/manifest.json").write_bytes(b"{}")


def test_a_planted_signature_does_not_stop_a_named_restore(
    copy_site: dict[str, Any], tmp_path: Path
) -> None:
    site = copy_site
    _plant(site, manifest=False)
    target = tmp_path / "restored"
    r = restore(site, target, site["second"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["backup"] == site["second"]


def test_a_planted_backup_does_not_stop_the_default_restore(
    copy_site: dict[str, Any], tmp_path: Path
) -> None:
    site = copy_site
    _plant(site, manifest=True)
    target = tmp_path / "restored"
    r = restore(site, target)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["backup"] == site["second"]
    assert PLANTED in r.stderr  # reported, not silently ignored
    listed = as_role(site, "admin", "backup", "list")
    assert listed.exit_code == 0, listed.output
    assert [b["id"] for b in json.loads(listed.stdout)] == [site["first"], site["second"]]


def test_a_planted_backup_does_not_stop_the_dr_drill(
    copy_site: dict[str, Any], tmp_path: Path
) -> None:
    """`hub dr drill` took the newest *listed* backup (``latest_backup_id``): the planted one,
    and every drill failed on its signature. It now drills the newest that verifies."""
    site = copy_site
    _plant(site, manifest=True)
    r = as_role(site, "admin", "dr", "drill", "--scratch", str(tmp_path / "scratch"))
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["backup"] == site["second"]
    assert report["ledger_root_matches_live"] is True
    assert PLANTED in r.stderr  # the skipped one is named
