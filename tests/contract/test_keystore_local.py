"""The KeyStore contract against the embedded SQLite keyring, plus what only it has: files on
disk that must hold no key material after a destroy, the master key and its rotation."""

from __future__ import annotations

import base64
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters.local_keystore import (
    LocalKeyStore,
    _wrap_aad,
    open_keyring,
    rotate_master_key_file,
    subject_digest,
)
from core.errors import ConfigError
from core.ports.keystore import KeyDestroyed, KeyStore
from tests.contract.keystore_contract import AAD, KeyStoreContract, Reopen, subject

MASTER = bytes(range(32))


class TestLocalKeyStore(KeyStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[KeyStore]:
        self._opened: list[KeyStore] = []
        ks = LocalKeyStore(tmp_path / "keyring.sqlite", MASTER)
        self._opened.append(ks)
        yield ks
        for opened in self._opened:
            opened.close()

    @pytest.fixture
    def reopen(self, tmp_path: Path) -> Reopen:
        def reopen(ks: KeyStore) -> KeyStore:
            ks.close()
            fresh = LocalKeyStore(tmp_path / "keyring.sqlite", MASTER)
            self._opened.append(fresh)
            return fresh

        return reopen

    @pytest.fixture
    def peer(self, tmp_path: Path, store: KeyStore) -> Iterator[KeyStore]:
        ks = LocalKeyStore(tmp_path / "keyring.sqlite", MASTER, cache_ttl_s=0)
        yield ks
        ks.close()


def keyring_bytes(path: Path) -> bytes:
    """Every byte of the keyring's files (database, WAL, shared memory)."""
    return b"".join(
        p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()
    )


def key_rows(path: Path, subject_id: str) -> list[tuple[int, bytes]]:
    db = sqlite3.connect(path)
    try:
        rows = db.execute(
            "SELECT version, wrapped FROM data_keys WHERE subject = ?",
            (subject_digest(subject_id),),
        ).fetchall()
    finally:
        db.close()
    return [(int(v), bytes(w)) for v, w in rows]


def test_destroy_leaves_no_key_material_in_the_files(tmp_path: Path) -> None:
    path = tmp_path / "keyring.sqlite"
    ks = LocalKeyStore(path, MASTER)
    victim, other = subject(), subject()
    ks.encrypt(victim, b"Ada", AAD)
    ks.rotate(victim)
    ks.encrypt(other, b"Bob", AAD)
    rows = key_rows(path, victim)
    assert [v for v, _ in rows] == [1, 2]
    master = AESGCM(MASTER)
    raws = [master.decrypt(w[:12], w[12:], _wrap_aad(subject_digest(victim), v)) for v, w in rows]
    before = keyring_bytes(path)
    assert all(w in before for _, w in rows)  # the probe finds what is there
    assert not any(raw in before for raw in raws)  # raw keys are never stored
    ks.destroy(victim)
    after = keyring_bytes(path)
    for (_, wrapped), raw in zip(rows, raws, strict=True):
        assert wrapped not in after
        assert raw not in after
        assert wrapped[12:28] not in after  # not even a fragment of the wrapped key
    assert subject_digest(victim) in after  # the tombstone names it by digest only
    assert victim.encode() not in after
    assert key_rows(path, other)  # the other subject is untouched
    ks.close()


def test_a_wrong_master_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keyring.sqlite"
    LocalKeyStore(path, MASTER).close()
    with pytest.raises(ConfigError, match="master key does not open"):
        LocalKeyStore(path, bytes(32))
    with pytest.raises(ConfigError, match="32 bytes"):
        LocalKeyStore(path, b"short")


def test_master_key_file_is_created_private(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "master.key"
    ks = open_keyring(tmp_path / "keys" / "keyring.sqlite", key_file)
    ct = ks.encrypt("s1", b"x", AAD)
    ks.close()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(base64.b64decode(key_file.read_text())) == 32
    again = open_keyring(tmp_path / "keys" / "keyring.sqlite", key_file)
    assert again.decrypt("s1", ct, AAD) == b"x"
    again.close()
    os.chmod(key_file, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        open_keyring(tmp_path / "keys" / "keyring.sqlite", key_file)


def test_master_key_from_the_environment(tmp_path: Path) -> None:
    env = base64.b64encode(MASTER).decode()
    ks = open_keyring(tmp_path / "k.sqlite", tmp_path / "unused.key", env)
    ct = ks.encrypt("s1", b"x", AAD)
    ks.close()
    assert not (tmp_path / "unused.key").exists()
    assert LocalKeyStore(tmp_path / "k.sqlite", MASTER).decrypt("s1", ct, AAD) == b"x"
    with pytest.raises(ConfigError, match="base64"):
        open_keyring(tmp_path / "k.sqlite", tmp_path / "unused.key", "not base64!")


def test_master_key_rotation_rewraps_every_data_key(tmp_path: Path) -> None:
    db, key_file = tmp_path / "keyring.sqlite", tmp_path / "master.key"
    ks = open_keyring(db, key_file)
    cts = {s: ks.encrypt(s, s.encode(), AAD) for s in (subject() for _ in range(5))}
    dead = subject()
    ks.encrypt(dead, b"x", AAD)
    ks.destroy(dead)
    old_key = key_file.read_bytes()
    assert rotate_master_key_file(ks, key_file) == 5
    assert key_file.read_bytes() != old_key
    assert not (tmp_path / "master.key.next").exists()
    ks.close()
    fresh = open_keyring(db, key_file)
    for s, ct in cts.items():
        assert fresh.decrypt(s, ct, AAD) == s.encode()
    with pytest.raises(KeyDestroyed):
        fresh.encrypt(dead, b"x", AAD)
    fresh.close()
    with pytest.raises(ConfigError):
        LocalKeyStore(db, base64.b64decode(old_key))


def test_an_interrupted_master_rotation_is_finished_on_open(tmp_path: Path) -> None:
    db, key_file = tmp_path / "keyring.sqlite", tmp_path / "master.key"
    ks = open_keyring(db, key_file)
    ct = ks.encrypt("s1", b"x", AAD)
    # Steps 1 and 2 of rotate_master_key_file, then a crash before step 3 (the rename).
    new = os.urandom(32)
    pending = tmp_path / "master.key.next"
    pending.write_bytes(base64.b64encode(new) + b"\n")
    pending.chmod(0o600)
    ks.rewrap(new)
    ks.close()
    again = open_keyring(db, key_file)
    assert again.decrypt("s1", ct, AAD) == b"x"
    assert base64.b64decode(key_file.read_text()) == new
    assert not pending.exists()
    again.close()


def test_reading_a_known_key_takes_no_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "keyring.sqlite"
    writer, reader = LocalKeyStore(path, MASTER), LocalKeyStore(path, MASTER)
    try:
        ct = writer.encrypt("s1", b"x", AAD)
        reader._db.execute("PRAGMA busy_timeout = 100")  # fail fast instead of waiting 30 s
        publisher = sqlite3.connect(path, isolation_level=None)
        publisher.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            assert reader.ensure_key("s1").version == 1  # a cold cache: read from the file
            assert reader.decrypt("s1", ct, AAD) == b"x"
        finally:
            publisher.execute("ROLLBACK")
            publisher.close()
    finally:
        writer.close()
        reader.close()


def test_two_connections_creating_one_subjects_key_end_with_one_key(tmp_path: Path) -> None:
    path = tmp_path / "keyring.sqlite"
    stores = [LocalKeyStore(path, MASTER), LocalKeyStore(path, MASTER)]
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # both see no key, then queue for the write lock
    sealed: dict[int, bytes] = {}
    errors: list[BaseException] = []

    def create(i: int) -> None:
        try:
            sealed[i] = stores[i].encrypt("new-subject", b"m%d" % i, AAD)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(i,)) for i in (0, 1)]
    try:
        for t in threads:
            t.start()
        time.sleep(0.3)
        blocker.execute("ROLLBACK")
        for t in threads:
            t.join()
    finally:
        blocker.close()
    try:
        assert errors == []
        assert len(key_rows(path, "new-subject")) == 1
        # each process can open what the other sealed: the same key
        assert stores[1].decrypt("new-subject", sealed[0], AAD) == b"m0"
        assert stores[0].decrypt("new-subject", sealed[1], AAD) == b"m1"
    finally:
        for s in stores:
            s.close()


def test_erased_among_asks_in_chunks_and_finds_every_erased_id(tmp_path: Path) -> None:
    ks = LocalKeyStore(tmp_path / "keyring.sqlite", MASTER)
    try:
        ids = [subject() for _ in range(1_203)]  # three IN (...) queries of at most 500
        gone = set(ids[::97]) | {ids[499], ids[500], ids[-1]}
        for s in gone:
            ks.destroy(s)
        assert ks.erased_among([*ids, "\x00"]) == gone
        assert ks.erased_among(ids[1:97]) == set()
    finally:
        ks.close()
