"""The pure parts of ``storage``: the cold segment format, the KEK rules, sealing, manifests."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from adapters.local_objectstore import LocalObjectStore
from audit.note import generate_key, sign_note
from core.errors import ConfigError, InvalidInput
from core.ports.eventlog import StoredRecord
from storage.backup import (
    BackupCorrupt,
    BackupNotFound,
    Manifest,
    create_kek_file,
    load_kek,
    read_manifest,
    seal,
    unseal,
)
from storage.erasures import JournalEntry, erased_subjects, record_erasure
from storage.tiering import decode_segment, encode_segment


def test_segments_round_trip_records_byte_for_byte() -> None:
    records = [
        StoredRecord("t", 2, 10, 1_700_000_000_000, b"k", b"\x00\x00\x00\x00\x01v", (("a", b"1"),)),
        StoredRecord("t", 2, 12, 1_700_000_000_001, None, None, ()),
        StoredRecord("t", 2, 13, -5, b"", b"", (("h", b""), ("h", b"\xff" * 300))),
    ]
    assert decode_segment(encode_segment(records), "t", 2) == records
    with pytest.raises(ValueError):
        decode_segment(b"not a segment", "t", 2)


def test_kek_file_rules(tmp_path: Path) -> None:
    kek = create_kek_file(tmp_path / "safe" / "k.kek")
    assert load_kek(tmp_path / "safe" / "k.kek").id == kek.id
    with pytest.raises(InvalidInput):
        create_kek_file(tmp_path / "safe" / "k.kek")  # never overwritten
    with pytest.raises(ConfigError, match="beside what it protects"):
        load_kek(tmp_path / "safe" / "k.kek", forbidden_under=(tmp_path / "safe",))
    with pytest.raises(ConfigError, match="No key-encryption key"):
        load_kek(None)
    short = tmp_path / "short.kek"
    short.write_text(base64.b64encode(b"x" * 16).decode())
    short.chmod(0o600)
    with pytest.raises(ConfigError, match="32 bytes"):
        load_kek(short)
    (tmp_path / "safe" / "k.kek").chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_kek(tmp_path / "safe" / "k.kek")


def test_sealed_keys_open_only_with_their_kek_and_backup_id(tmp_path: Path) -> None:
    a, b = create_kek_file(tmp_path / "a"), create_kek_file(tmp_path / "b")
    sealed = seal(a, "backup-1", b"secret keys")
    assert unseal(a, "backup-1", sealed, "x") == b"secret keys"
    with pytest.raises(BackupCorrupt, match=b.id):
        unseal(b, "backup-1", sealed, "x")
    with pytest.raises(BackupCorrupt):
        unseal(a, "backup-2", sealed, "x")  # moved to another backup
    with pytest.raises(BackupCorrupt):
        unseal(a, "backup-1", sealed[:-1] + bytes([sealed[-1] ^ 1]), "x")


def test_unreadable_manifest_and_missing_backup_are_named(tmp_path: Path) -> None:
    with pytest.raises(BackupCorrupt, match=r"backups/x/manifest\.json"):
        Manifest.decode(b"{not json", "backups/x/manifest.json")
    with pytest.raises(BackupNotFound, match="hub backup list"):
        read_manifest(LocalObjectStore(tmp_path), "nope")


def test_the_erasure_journal_keeps_the_first_entry(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    key = generate_key("hub.test")

    def sign(text: str) -> bytes:
        return sign_note(text, key)

    assert record_erasure(store, JournalEntry("ACC-1", 20, 7), sign)
    assert not record_erasure(store, JournalEntry("ACC-1", 30, 9), sign)
    assert record_erasure(store, JournalEntry("ACC-2", 10), sign)
    want = [JournalEntry("ACC-2", 10), JournalEntry("ACC-1", 20, 7)]
    assert erased_subjects(store, [key.verifier]) == want


def test_a_backup_leaves_out_views_temporary_files_and_an_inner_object_folder(
    tmp_path: Path,
) -> None:
    from storage.backup import data_files

    for rel in ("log.sqlite", "log.sqlite-wal", "ledger.sqlite", "keys/ledger.key"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    for rel in ("views/chdb/data.bin", "objects/backups/b/manifest.json", ".tmp-1"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    got = data_files(tmp_path, (tmp_path / "objects",))
    assert got == ["ledger.sqlite", "keys/ledger.key", "log.sqlite"]
