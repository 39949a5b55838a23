"""A restore of an older backup named on the command line MUST say, and record on the restored
ledger, that it rolls the hub back past newer backups the witness records.

Only a restore without ``--backup`` compared its choice with the backup witness (the store may
have lost the newest). Naming an older backup (``hub backup restore OLD``: an admin, or anyone
holding that key, who wants records made since gone) restored it silently: the restored ledger's
``backup.restore`` entry named the backup's own size only, and nothing on the restored hub told
an auditor that newer history had existed and was dropped. A point-in-time restore stays
possible; the rollback is now printed and kept in the entry's details (``warning``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hub.bootstrap import bootstrap
from hub.settings import load_settings
from ledger.cuts import audit_details
from tests.adversarial.test_backup_attacks import copy_site, restore, site

__all__ = ["copy_site", "site"]  # the fixtures, re-used


def _restore_entry_details(target: Path) -> dict[str, Any]:
    h = bootstrap(load_settings(data_dir=target))
    try:
        found = []
        for row in h.ledger.store.query(action="backup.restore"):
            rec = h.ledger.record_at(row[1], row[2], row[3])
            try:  # the policy decision on backup.restore is an entry too, without details
                found.append(audit_details(h.ledger, None if rec is None else rec.value))
            except KeyError:
                continue
        (details,) = found
        return details
    finally:
        h.close()


def test_an_older_backup_named_is_restored_and_the_rollback_recorded(
    copy_site: dict[str, Any], tmp_path: Path
) -> None:
    site = copy_site
    target = tmp_path / "restored"
    r = restore(site, target, site["first"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["backup"] == site["first"]
    assert "WARNING" in r.stderr and site["second"] in r.stderr, r.stderr
    details = _restore_entry_details(target)
    assert site["second"] in details.get("warning", ""), details
    assert "rolled back" in details["warning"]


def test_the_newest_backup_named_records_no_warning(
    copy_site: dict[str, Any], tmp_path: Path
) -> None:
    site = copy_site
    target = tmp_path / "restored"
    r = restore(site, target, site["second"])
    assert r.exit_code == 0, r.output
    assert "WARNING" not in r.stderr, r.stderr
    assert "warning" not in _restore_entry_details(target)
