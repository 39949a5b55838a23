"""``SubjectTenants`` in a SQLite file beside the keyring (``keys/subject_tenants.sqlite``).

Subjects are stored as the keyring's SHA-256 digests (``subject_digest``), never in clear; one
row per (subject, tenant). A process remembers the pairs it wrote or read, so a batch of known
subjects costs a set difference and no write; the memory is bounded (``cache_size`` pairs,
forgotten all at once beyond it: a forgotten pair costs one ``INSERT OR IGNORE`` again).

With ``mac_key`` (the hub's, derived from its MAC key) each row carries an HMAC of its subject
and tenant. A row whose MAC is missing or wrong (written by an older hub, or by whoever edited
this file to claim another tenant's subject for a tenant's officer, or to add a tenant to it)
is not believed: ``tenants_of`` answers :data:`UNVERIFIED` for it, which no tenant-scoped
officer holds, so only an officer of every tenant may erase that subject. Naming the pair again
(its tenant publishing the subject) keys an older row.
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from adapters.local_keystore import subject_digest
from adapters.sqlite_open import open_store, write_transaction
from core.errors import InvalidInput, StorageBusy
from core.ports.keystore import KeyStoreError, SubjectTenants, check_subject

_SCHEMA = """
CREATE TABLE IF NOT EXISTS subject_tenants (
    subject BLOB NOT NULL,
    tenant TEXT NOT NULL,
    mac BLOB,
    PRIMARY KEY (subject, tenant)
) WITHOUT ROWID;
"""
UNVERIFIED = "(unverified)"
"""What ``tenants_of`` answers for a row whose MAC is missing or wrong (module docstring)."""
_LABEL = b"hub subject tenant v1\x00"


def pair_mac(key: bytes, digest: bytes, tenant: str) -> bytes:
    return hmac.new(key, _LABEL + digest + tenant.encode(), hashlib.sha256).digest()


class SqliteSubjectTenants(SubjectTenants):
    def __init__(
        self, path: str | Path, *, cache_size: int = 1_000_000, mac_key: bytes | None = None
    ) -> None:
        self.path = Path(path)
        self._key = mac_key
        self._lock = threading.RLock()
        self._known: dict[str, set[str]] = {}  # tenant -> subjects it is recorded to name
        self._size = 0
        self._cache_size = cache_size
        try:
            self._db = open_store(self.path, _SCHEMA, "synchronous=FULL")
            columns = {r[1] for r in self._db.execute("PRAGMA table_info(subject_tenants)")}
            if "mac" not in columns:  # an older file: its rows stay unverified until named
                self._db.execute("ALTER TABLE subject_tenants ADD COLUMN mac BLOB")
        except sqlite3.Error as exc:
            raise KeyStoreError(f"Cannot open {self.path}: {exc}") from exc

    def _busy(self, exc: sqlite3.OperationalError) -> StorageBusy:
        return StorageBusy(f"{self.path} is locked by another process: {exc}. Retry.")

    def _failed(self, exc: sqlite3.Error) -> KeyStoreError:
        return KeyStoreError(f"Cannot commit to {self.path}: {exc}")

    def name(self, tenant: str, subject_ids: Iterable[str]) -> None:
        known = self._known.get(tenant)
        new = set(subject_ids) if known is None else set(subject_ids) - known
        if not new:
            return
        # an id the keyring would refuse seals nothing: the writer names it in its own error
        rows = []
        key = self._key
        for s in new:
            try:
                digest = subject_digest(check_subject(s))
            except InvalidInput:  # not a subject id (a non-string too): it seals nothing
                continue
            rows.append((digest, tenant, None if key is None else pair_mac(key, digest, tenant)))
        with write_transaction(self._db, self._lock, self._busy, self._failed):
            # a row kept without a MAC (older file) is keyed now that its tenant named it
            self._db.executemany(
                "INSERT INTO subject_tenants VALUES (?, ?, ?) ON CONFLICT (subject, tenant) "
                "DO UPDATE SET mac = excluded.mac WHERE mac IS NOT excluded.mac",
                rows,
            )
        with self._lock:
            if self._size + len(new) > self._cache_size:
                self._known.clear()
                self._size = 0
            self._known.setdefault(tenant, set()).update(new)
            self._size += len(new)

    def tenants_of(self, subject_id: str) -> frozenset[str]:
        digest = subject_digest(check_subject(subject_id))
        with self._lock:
            rows = self._db.execute(
                "SELECT tenant, mac FROM subject_tenants WHERE subject = ?", (digest,)
            ).fetchall()
        key = self._key
        if key is None:
            return frozenset(str(t) for t, _ in rows)
        return frozenset(
            str(t)
            if mac is not None and hmac.compare_digest(bytes(mac), pair_mac(key, digest, str(t)))
            else UNVERIFIED
            for t, mac in rows
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()
