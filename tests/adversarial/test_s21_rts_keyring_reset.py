"""s21 red team of s20 (trust): the keyring's row summary cannot be reset by deleting its check.

s20 MAC'd the keyring's rows as a set (``adapters.keyring_set``): deleting a subject's key
rows (a crypto-shred with no erasure record) or inserting a tombstone (a faked erasure) is
refused on open. But a keyring with no ``master_check`` row was taken for a new one: opening
stored a fresh check and the summary of the rows as they were. So an editor of the file (no
master key needed) deleted the key rows, then the ``master_check`` and ``set_summary`` rows
of ``meta``, and the next open accepted the edit for good. Now a keyring without its check but
with rows or a summary is refused as edited; an empty one is still a new keyring.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.local_keystore import LocalKeyStore, subject_digest
from core.ports.keystore import KeyStoreError
from tests.adversarial.test_s20_keystore_set import AAD, MASTER, edit, make


def _reset(path: Path) -> None:
    edit(path, "DELETE FROM meta WHERE name IN ('master_check', 'set_summary')")


def test_deleted_key_rows_with_the_check_deleted_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "keyring.sqlite"
    blob = make(path)
    edit(path, "DELETE FROM data_keys WHERE subject = ?", subject_digest("ACC-0002"))
    _reset(path)
    with pytest.raises(KeyStoreError, match="edited outside the hub"):  # before: opened
        LocalKeyStore(path, MASTER).close()
    edit(path, "DELETE FROM data_keys")  # every key row gone: still not a new keyring
    with pytest.raises(KeyStoreError, match="edited outside the hub"):
        LocalKeyStore(path, MASTER).close()
    assert blob


def test_a_forged_tombstone_with_the_check_deleted_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keyring.sqlite"
    make(path)
    edit(path, "INSERT INTO erased VALUES (?, 0)", subject_digest("ACC-0001"))
    edit(path, "DELETE FROM meta WHERE name = 'master_check'")
    with pytest.raises(KeyStoreError, match="edited outside the hub"):  # before: opened
        LocalKeyStore(path, MASTER).close()


def test_a_new_keyring_and_an_untouched_one_open(tmp_path: Path) -> None:
    path = tmp_path / "keyring.sqlite"
    blob = make(path)
    ks = LocalKeyStore(path, MASTER)
    try:
        assert ks.decrypt("ACC-0002", blob, AAD) == b"pii"
    finally:
        ks.close()
    fresh = LocalKeyStore(tmp_path / "new.sqlite", MASTER)
    fresh.close()
    LocalKeyStore(tmp_path / "new.sqlite", MASTER).close()
