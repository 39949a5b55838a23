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

Deleting a row is not an edit a pair MAC sees: removing the other tenant's (valid) row made a
shared subject look single-tenant, so one tenant's officer could erase it. So each subject also
has one ``subject_sets`` row, the sorted set of tenants that named it under a MAC; naming adds
to it. ``tenants_of`` answers the set and the verified pairs, so a deleted pair changes
nothing, and a missing or wrong set row of a subject that has pairs adds :data:`UNVERIFIED`
(naming the subject again does not make such a set anew). Sets of an older file are built from
its verified pairs on the first keyed open, once (``keyed_marker``, a file beside this one).

Deleting a subject's pairs AND its set row made it look never named: the next tenant to name
it got a set of its own and its officer could erase the first tenant's data. The anchor outside
this file is the keyring: a set is made anew only for a subject with no key (and not erased), or
whose key the hub's own ``KeyStore`` made in this process since its last naming
(``KeyStore.created_here``: batches are sealed, so keys made, before their subjects are named).
A subject with an older key and no record is left without a set: UNVERIFIED, an officer of every
tenant erases it. So is a subject whose key an older hub made before tenants were recorded.
Not covered: replacing the set row AND the pairs by an older copy's (an earlier valid state,
e.g. before the second tenant named the subject), and a subject with no key at all (its records
hold no PII, so an erasure shreds nothing; it tombstones the subject, refusing its later
records).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from adapters.local_keystore import subject_digest
from adapters.sqlite_open import open_store, write_transaction
from core.errors import InvalidInput, StorageBusy
from core.ports.keystore import (
    UNVERIFIED_TENANTS,
    KeyStore,
    KeyStoreError,
    SubjectTenants,
    check_subject,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS subject_tenants (
    subject BLOB NOT NULL,
    tenant TEXT NOT NULL,
    mac BLOB,
    PRIMARY KEY (subject, tenant)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS subject_sets (
    subject BLOB PRIMARY KEY,
    tenants TEXT NOT NULL,
    mac BLOB NOT NULL
) WITHOUT ROWID;
"""
UNVERIFIED = UNVERIFIED_TENANTS
"""What ``tenants_of`` answers for a row whose MAC is missing or wrong (module docstring)."""
_LABEL = b"hub subject tenant v1\x00"


_SET_LABEL = b"hub subject tenant set v1\x00"


def pair_mac(key: bytes, digest: bytes, tenant: str) -> bytes:
    return hmac.new(key, _LABEL + digest + tenant.encode(), hashlib.sha256).digest()


def set_text(tenants: Iterable[str]) -> str:
    return json.dumps(sorted(set(tenants)), separators=(",", ":"))


def set_mac(key: bytes, digest: bytes, text: str) -> bytes:
    return hmac.new(key, _SET_LABEL + digest + text.encode(), hashlib.sha256).digest()


def _set_of(key: bytes, digest: bytes, row: tuple[object, object] | None) -> set[str] | None:
    """The tenants of a subject's set row, None if the row is missing or fails its MAC."""
    if row is None:
        return None
    text, mac = str(row[0]), row[1]
    if not isinstance(mac, bytes) or not hmac.compare_digest(mac, set_mac(key, digest, text)):
        return None
    return {str(t) for t in json.loads(text)}


class SqliteSubjectTenants(SubjectTenants):
    def __init__(
        self,
        path: str | Path,
        *,
        cache_size: int = 1_000_000,
        mac_key: bytes | None = None,
        keyed_marker: Path | None = None,
        keystore: KeyStore | None = None,
    ) -> None:
        self.path = Path(path)
        self._key = mac_key
        self._keystore = keystore  # the anchor of a new subject (module docstring)
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
        if mac_key is not None and not (keyed_marker is not None and keyed_marker.exists()):
            self._build_sets(mac_key)
            if keyed_marker is not None:
                keyed_marker.write_text(f"subject tenant sets built: {self.path}\n")

    def _build_sets(self, key: bytes) -> None:
        """The first keyed open: a set row for every subject with pairs and none, from its
        verified pairs (possibly none: naming adds to it)."""
        with write_transaction(self._db, self._lock, self._busy, self._failed):
            rows = self._db.execute(
                "SELECT subject, tenant, mac FROM subject_tenants WHERE subject NOT IN "
                "(SELECT subject FROM subject_sets)"
            ).fetchall()
            sets: dict[bytes, set[str]] = {}
            for subject, tenant, mac in rows:
                digest = bytes(subject)
                found = sets.setdefault(digest, set())
                if mac is not None and hmac.compare_digest(
                    bytes(mac), pair_mac(key, digest, str(tenant))
                ):
                    found.add(str(tenant))
            self._db.executemany(
                "INSERT INTO subject_sets VALUES (?, ?, ?)",
                [(d, set_text(t), set_mac(key, d, set_text(t))) for d, t in sets.items()],
            )

    def _busy(self, exc: sqlite3.OperationalError) -> StorageBusy:
        return StorageBusy(f"{self.path} is locked by another process: {exc}. Retry.")

    def _failed(self, exc: sqlite3.Error) -> KeyStoreError:
        return KeyStoreError(f"Cannot commit to {self.path}: {exc}")

    def name(self, tenant: str, subject_ids: Iterable[str]) -> None:
        ids = set(subject_ids)
        known = self._known.get(tenant)
        new = ids if known is None else ids - known
        keystore = self._keystore
        if not new:
            if keystore is not None:  # a key made since for a recorded subject: not new
                keystore.forget_created(ids)
            return
        # an id the keyring would refuse seals nothing: the writer names it in its own error
        rows = []
        of: dict[bytes, str] = {}
        key = self._key
        for s in new:
            try:
                digest = subject_digest(check_subject(s))
            except InvalidInput:  # not a subject id (a non-string too): it seals nothing
                continue
            of[digest] = s
            rows.append((digest, tenant, None if key is None else pair_mac(key, digest, tenant)))
        with write_transaction(self._db, self._lock, self._busy, self._failed):
            if key is not None:  # before the pairs: a set is new only for a new subject
                self._add_to_sets(key, tenant, of)
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
        if keystore is not None:  # recorded: their keys are no longer new (after the commit,
            keystore.forget_created(ids)  # so a failed one leaves them new for the retry)

    def _add_to_sets(self, key: bytes, tenant: str, of: dict[bytes, str]) -> None:
        """Add ``tenant`` to each subject's set (in the caller's transaction, before its pairs
        are written; ``of``: digest -> id). A subject whose set row is missing although pairs
        exist (its own tenant's too), or fails its MAC, is left as it is (``tenants_of`` says
        UNVERIFIED): making it anew would launder a deletion. So is one with neither whose key
        is older than this naming (``_new_subjects``)."""
        unrecorded: dict[bytes, str] = {}
        for digest, subject_id in of.items():
            row = self._db.execute(
                "SELECT tenants, mac FROM subject_sets WHERE subject = ?", (digest,)
            ).fetchone()
            found = _set_of(key, digest, row)
            if found is None:
                if row is not None:
                    continue
                named = self._db.execute(
                    "SELECT 1 FROM subject_tenants WHERE subject = ? LIMIT 1", (digest,)
                ).fetchone()
                if named is None:
                    unrecorded[digest] = subject_id
            elif tenant not in found:
                self._write_set(key, digest, found | {tenant})
        if unrecorded:
            new = self._new_subjects(set(unrecorded.values()))
            for digest, subject_id in unrecorded.items():
                if subject_id in new:
                    self._write_set(key, digest, {tenant})

    def _new_subjects(self, subject_ids: set[str]) -> set[str]:
        """The ids among ``subject_ids`` (no set, no pairs) that are new: no key and never
        erased, or a key this process's keystore made since their last naming. Any other key
        was made for an earlier naming whose record is gone (deleted, or never kept by an older
        hub): not new (module docstring)."""
        keystore = self._keystore
        if keystore is None:
            return subject_ids
        made = keystore.created_here(subject_ids)
        rest = subject_ids - made
        return made | (rest - keystore.known_among(rest)) if rest else made

    def _write_set(self, key: bytes, digest: bytes, tenants: set[str]) -> None:
        text = set_text(tenants)
        self._db.execute(
            "INSERT INTO subject_sets VALUES (?, ?, ?) ON CONFLICT (subject) "
            "DO UPDATE SET tenants = excluded.tenants, mac = excluded.mac",
            (digest, text, set_mac(key, digest, text)),
        )

    def tenants_of(self, subject_id: str) -> frozenset[str]:
        digest = subject_digest(check_subject(subject_id))
        with self._lock:
            rows = self._db.execute(
                "SELECT tenant, mac FROM subject_tenants WHERE subject = ?", (digest,)
            ).fetchall()
            set_row = self._db.execute(
                "SELECT tenants, mac FROM subject_sets WHERE subject = ?", (digest,)
            ).fetchone()
        key = self._key
        if key is None:
            return frozenset(str(t) for t, _ in rows)
        out = {
            str(t)
            if mac is not None and hmac.compare_digest(bytes(mac), pair_mac(key, digest, str(t)))
            else UNVERIFIED
            for t, mac in rows
        }
        found = _set_of(key, digest, set_row)
        if found is not None:  # a deleted pair changes nothing: the set still names it
            out |= found
        elif rows or set_row is not None:  # pairs without a set, or a set that fails its MAC
            out.add(UNVERIFIED)
        return frozenset(out)

    def close(self) -> None:
        with self._lock:
            self._db.close()
