"""``SubjectTenants`` in a SQLite file beside the keyring (``keys/subject_tenants.sqlite``).

Subjects are stored as the keyring's SHA-256 digests (``subject_digest``), never in clear; one
row per (subject, tenant). A process remembers the pairs it wrote or read, so a batch of known
subjects costs a set difference and no write; the memory is bounded (``cache_size`` pairs,
forgotten all at once beyond it: a forgotten pair costs one ``INSERT OR IGNORE`` again).
"""

from __future__ import annotations

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
    PRIMARY KEY (subject, tenant)
) WITHOUT ROWID;
"""


class SqliteSubjectTenants(SubjectTenants):
    def __init__(self, path: str | Path, *, cache_size: int = 1_000_000) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._known: dict[str, set[str]] = {}  # tenant -> subjects it is recorded to name
        self._size = 0
        self._cache_size = cache_size
        try:
            self._db = open_store(self.path, _SCHEMA, "synchronous=FULL")
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
        for s in new:
            try:
                rows.append((subject_digest(check_subject(s)), tenant))
            except InvalidInput:  # not a subject id (a non-string too): it seals nothing
                continue
        with write_transaction(self._db, self._lock, self._busy, self._failed):
            self._db.executemany("INSERT OR IGNORE INTO subject_tenants VALUES (?, ?)", rows)
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
                "SELECT tenant FROM subject_tenants WHERE subject = ?", (digest,)
            ).fetchall()
        return frozenset(r[0] for r in rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()
