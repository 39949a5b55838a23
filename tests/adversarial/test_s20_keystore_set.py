"""The local keyring's rows authenticated as a set (keys/keyring.sqlite).

Before: deleting a subject's ``data_keys`` rows crypto-shredded it with no erasure record
(readers got a misleading "no key / another keyring" error, verify said OK), and inserting an
``erased`` tombstone (subject digests are plain SHA-256) faked an erasure. Now the keyring keeps a
MAC'd summary (row counts and a keyed set digest per table, under a key derived from the master
key): opening, and every write, refuses a keyring whose rows do not match it, naming the table;
a read that finds a missing key or a tombstone checks that table and names the edit."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from adapters.local_keystore import LocalKeyStore, subject_digest
from core.ports.keystore import KeyDestroyed, KeyStoreError, TenantKeys, scoped_subject

MASTER = bytes(range(32))
AAD = b"aad"


def edit(path: Path, sql: str, *args: object) -> None:
    """What an attacker with write access to the file (not the master key) does."""
    db = sqlite3.connect(path)
    try:
        db.execute(sql, args)
        db.commit()
    finally:
        db.close()


def make(path: Path) -> bytes:
    ks = LocalKeyStore(path, MASTER)
    try:
        ks.ensure_key("ACC-0001")
        blob = ks.encrypt("ACC-0002", b"pii", AAD)
        ks.ensure_key(scoped_subject("t1", "ACC-0003"))
        ks.ensure_key("ACC-0003")
        ks.destroy("ACC-0003")
    finally:
        ks.close()
    return blob


def test_deleted_key_rows_are_named_on_open(tmp_path: Path) -> None:
    path = tmp_path / "keyring.sqlite"
    make(path)
    edit(path, "DELETE FROM data_keys WHERE subject = ?", subject_digest("ACC-0002"))
    with pytest.raises(KeyStoreError, match="edited outside the hub: its table data_keys"):
        LocalKeyStore(path, MASTER)


def test_deleted_key_rows_are_named_by_a_reader_and_refused_before_a_write(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keyring.sqlite"
    blob = make(path)
    ks = LocalKeyStore(path, MASTER, cache_ttl_s=0)
    try:
        edit(path, "DELETE FROM data_keys WHERE subject = ?", subject_digest("ACC-0002"))
        with pytest.raises(KeyStoreError, match="data_keys"):
            ks.decrypt("ACC-0002", blob, AAD)
        with pytest.raises(KeyStoreError, match="data_keys"):
            ks.ensure_key("ACC-0009")  # a write: refused
    finally:
        ks.close()


def test_a_forged_tombstone_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keyring.sqlite"
    make(path)
    ks = LocalKeyStore(path, MASTER, cache_ttl_s=0)
    try:
        edit(path, "INSERT INTO erased VALUES (?, ?)", subject_digest("ACC-0001"), 1)
        with pytest.raises(KeyStoreError, match="erased"):
            ks.erased("ACC-0001")
        with pytest.raises(KeyStoreError, match="erased"):
            ks.encrypt("ACC-0001", b"x", AAD)
    finally:
        ks.close()
    with pytest.raises(KeyStoreError, match="erased"):
        LocalKeyStore(path, MASTER)


def test_a_swapped_tombstone_is_refused_on_open(tmp_path: Path) -> None:
    """Same row count, another subject: only the keyed digest tells."""
    path = tmp_path / "keyring.sqlite"
    make(path)
    edit(path, "UPDATE erased SET subject = ?", subject_digest("ACC-0001"))
    with pytest.raises(KeyStoreError, match="erased"):
        LocalKeyStore(path, MASTER)


def test_removing_the_summary_does_not_reset_it(tmp_path: Path) -> None:
    path = tmp_path / "keyring.sqlite"
    make(path)
    edit(path, "DELETE FROM meta WHERE name = 'set_summary'")
    with pytest.raises(KeyStoreError, match="summary"):
        LocalKeyStore(path, MASTER)


def test_honest_use_keeps_the_summary(tmp_path: Path) -> None:
    path = tmp_path / "keyring.sqlite"
    make(path)
    ks = LocalKeyStore(path, MASTER)
    try:
        ks.rotate("ACC-0001")
        ks.ensure_key("ACC-0004")
        ks.destroy("ACC-0001")
        ks.rewrap(bytes(range(1, 33)))
    finally:
        ks.close()
    ks = LocalKeyStore(path, bytes(range(1, 33)))
    try:
        assert ks.erased("ACC-0001")
        with pytest.raises(KeyDestroyed):
            ks.ensure_key("ACC-0003")
    finally:
        ks.close()


def test_a_keyring_from_before_the_summary_is_upgraded_once(tmp_path: Path) -> None:
    """An existing keyring (no summary, version-1 master check) gets its summary written once,
    from its rows as they are; afterwards edits are caught."""
    path = tmp_path / "keyring.sqlite"
    make(path)
    from adapters import local_keystore as lk

    ks = LocalKeyStore(path, MASTER)
    old_check = ks._master_check_blob(lk._CHECK_PLAINTEXT_V1)
    ks.close()
    edit(path, "DELETE FROM meta WHERE name = 'set_summary'")
    edit(path, "UPDATE meta SET value = ? WHERE name = 'master_check'", old_check)
    ks = LocalKeyStore(path, MASTER)  # the upgrade
    ks.close()
    edit(path, "INSERT INTO erased VALUES (?, ?)", subject_digest("ACC-0002"), int(time.time()))
    with pytest.raises(KeyStoreError, match="erased"):
        LocalKeyStore(path, MASTER)


def test_a_tenant_reader_is_told_of_the_deleted_rows_not_of_another_tenant(
    tmp_path: Path,
) -> None:
    """Before: "sealed for another tenant's record (or another hub)"."""
    path = tmp_path / "keyring.sqlite"
    ks = LocalKeyStore(path, MASTER, cache_ttl_s=0)
    try:
        acme = TenantKeys(ks, "acme")
        blob = acme.encrypt("ACC-0005", b"pii", AAD)
        edit(path, "DELETE FROM data_keys")
        with pytest.raises(KeyStoreError, match="edited outside the hub: its table data_keys"):
            acme.decrypt("ACC-0005", blob, AAD)
    finally:
        ks.close()


def test_a_destroy_by_another_process_is_not_taken_for_an_edit(tmp_path: Path) -> None:
    """A reader's table check reads the summary and the rows in one snapshot: a destroy
    committed by another keyring handle between the two reads is no edit."""
    path = tmp_path / "keyring.sqlite"
    ids = [f"ACC-{i:04d}" for i in range(40)]
    writer = LocalKeyStore(path, MASTER)
    reader = LocalKeyStore(path, MASTER, cache_ttl_s=0)
    errors: list[BaseException] = []
    try:
        for s in ids:
            writer.ensure_key(s)
        writer.destroy(ids[0])
        done = threading.Event()

        def read() -> None:
            try:
                while not done.is_set():
                    reader.erased_among(ids)
            except BaseException as exc:  # reported below
                errors.append(exc)

        thread = threading.Thread(target=read)
        thread.start()
        try:
            for s in ids[1:]:
                writer.destroy(s)
        finally:
            done.set()
            thread.join(30)
        assert not errors, errors
        assert reader.erased_among(ids) == set(ids)
    finally:
        writer.close()
        reader.close()
