"""An erasure undone by putting back an older copy of the keyring (keys/keyring.sqlite, e.g.
from a snapshot of the data folder taken before `hub erase`). Only the keyring goes back: the
log, the ledger and its outside witness are untouched, so no rollback check fires.

Before: the hub read the erased subject's PII again ("Erin Erasable", not "[erased]"), and
`hub ledger verify` answered OK, though the ledger holds the ``subject.erase`` entry. An erasure
destroys the key and tombstones the subject (no new key is ever made for it), so a live key of
a subject the ledger records as erased is always a keyring put back. Now start-up refuses,
naming the subject and the fix, and verify reports it (exit 1)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hub.bootstrap import bootstrap
from hub.settings import load_settings
from ledger.errors import LedgerIntegrityError
from tests.adversarial.test_erasure_paths import OPERATOR, SUBJECT, load
from tests.service.test_ledger import cli


def settings(data: Path):  # type: ignore[no-untyped-def]
    return load_settings(environ={}, data_dir=data)


@pytest.mark.parametrize("earlier", [0, 100])  # 100: the subject's entry is not on the first page
def test_an_older_keyring_put_back_does_not_undo_an_erasure(tmp_path: Path, earlier: int) -> None:
    data = tmp_path / "data"
    h = bootstrap(settings(data))
    try:
        load(h)
        keyring = h.settings.keyring_path
    finally:
        h.close()
    shutil.copy2(keyring, tmp_path / "keyring.before")  # the attacker's older copy
    # with its anchor (s21, governance.keyring_anchor): the keyring alone is refused as older
    # than its anchor; with both put back, the ledger's erasure entries still refuse it
    anchor = h.settings.keyring_anchor_path
    shutil.copy2(anchor, tmp_path / "anchor.before")
    h = bootstrap(settings(data))
    try:
        for i in range(earlier):  # subjects without a key: each erasure is a ledger entry
            h.eraser.erase(OPERATOR, f"ACC-GONE-{i}", f"dsr-0-{i}", tenant_scope=None)
        h.eraser.erase(OPERATOR, SUBJECT, "dsr-1", tenant_scope=None)
    finally:
        h.close()
    assert cli(data, "ledger", "verify")[0] == 0  # (and the admin key file made)
    for suffix in ("-wal", "-shm"):
        Path(f"{keyring}{suffix}").unlink(missing_ok=True)
    shutil.copy2(tmp_path / "keyring.before", keyring)
    shutil.copy2(tmp_path / "anchor.before", anchor)

    with pytest.raises(LedgerIntegrityError, match=SUBJECT) as info:  # as `hub serve` opens
        bootstrap(settings(data), check_erasures=True).close()  # before: served the PII
    assert "keyring" in str(info.value)
    code, out, err = cli(data, "ledger", "verify")
    assert code != 0, out  # before: OK
    assert "Traceback" not in err, err
    assert SUBJECT in err and "erase" in err, err
