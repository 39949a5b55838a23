"""Session 18 red team (new surfaces): an erasure whose journal write failed was anchored
nowhere.

``journal_erasure`` wrote the store's erasure journal entry first and the backup witness line
(the anchor beside the KEK, which a store writer cannot delete) second. Whoever can write the
object store made the journal write fail (here: an object planted at ``erasures``, so no
entry can be put under ``erasures/``); the
erasure was done (the key destroyed), the command failed with the store's error, and the
witness line was never written, so a restore of the newest backup (made before the erasure)
brought the subject's key back and said nothing. The witness is now written whatever the
store does, and the command says the journal entry is missing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hub.bootstrap import bootstrap
from hub.settings import load_settings
from storage.backup import load_kek
from storage.backup_witness import witness_path, witnessed_erasures
from tests.adversarial.test_backup_attacks import as_role, copy_site, obj, restore, site

__all__ = ["copy_site", "site"]  # the fixtures, re-used

SUBJECT = "ACC-5"


def _key_back(target: Path, subject: str) -> bool:
    h = bootstrap(load_settings(data_dir=target))
    try:
        return h.keystore.exists(subject) and not h.keystore.erased(subject)
    finally:
        h.close()


def test_an_erasure_whose_journal_write_fails_is_still_witnessed_and_re_applied(
    copy_site: dict[str, Any], tmp_path: Path
) -> None:
    site = copy_site
    w = witness_path(load_kek(Path(site["kek"])))
    saved = w.read_bytes()
    journal = obj(site, "erasures")
    held = tmp_path / "held-journal"
    if journal.exists():
        journal.rename(held)
    journal.write_bytes(b"planted")  # the store writer's act: the journal cannot be written
    try:
        r = as_role(site, "admin", "erase", SUBJECT, "--reason", "DSR-18")
        assert "Traceback" not in r.output, r.output
        assert "journal" in r.output, r.output  # the failure is said
        anchored = [e.subject for e in witnessed_erasures(load_kek(Path(site["kek"]))) or []]
        assert SUBJECT in anchored, "the erasure is anchored nowhere"
        journal.unlink()  # the store works again; the entry was never written
        target = tmp_path / "restored"
        r = restore(site, target)
        assert r.exit_code == 0, r.output
        assert not _key_back(target, SUBJECT), "the erased subject's key is back"
        assert SUBJECT in json.loads(r.stdout)["erasures_reapplied"]
    finally:
        if journal.is_file():
            journal.unlink()
        if held.exists() and not journal.exists():
            held.rename(journal)
        w.write_bytes(saved)
