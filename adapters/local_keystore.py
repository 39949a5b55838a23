"""The embedded KeyStore: a SQLite keyring of AES-256-GCM data keys wrapped under a master key.

Files (under the data folder): ``keys/keyring.sqlite`` and the master key file
``keys/master.key`` (base64 of 32 random bytes, mode 0600, created on first use) unless the master
key comes from ``HUB_MASTER_KEY`` (base64).

Data ciphertext (envelope format 1), as stored in the log::

    byte 0       0x01 (format: local keyring, AES-256-GCM)
    bytes 1-4    key version, unsigned big-endian
    bytes 5-16   96-bit random nonce
    bytes 17-    AES-256-GCM ciphertext followed by its 16-byte tag
    AAD          bind_subject(subject, bytes 0-4, caller AAD)  (hub.ports.keystore)

Wrapped data key (one row per subject and version)::

    nonce (12) || AES-256-GCM(master key, data key, AAD = "hub.wrap.v1" || subject hash || version)

Subjects are stored as SHA-256 digests, never in clear. Destroying a subject deletes its rows with
``secure_delete`` on (SQLite zeroes freed content), writes a tombstone, truncates the WAL and
vacuums, so neither the wrapped nor the raw key remains in any of the keyring's files. Unwrapped
keys are cached in memory (bounded LRU, ``cache_ttl_s`` lifetime so that a destroy by another
process takes effect here within that time); a destroy purges this process's cache at once.

Master key rotation (``rotate_master_key_file``) re-wraps every data key in one transaction.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters import _aead
from adapters._aead import (
    KEY_LEN,
    NONCE_LEN,
    CreatedKeys,
    DataKey,
    KeyCache,
    open_sealed,
    parse_header,
    seal,
)
from adapters.keyring_set import TABLES, SetSummary, set_key
from adapters.sqlite_open import open_store, write_transaction
from core.errors import ConfigError, InvalidInput, StorageBusy
from core.ports.keystore import (
    DecryptionFailed,
    KeyDestroyed,
    KeyRef,
    KeyStore,
    KeyStoreError,
    KeyStoreState,
    KeyUnknown,
    check_key_id,
    check_subject,
    parse_scoped,
)

FORMAT_LOCAL = 0x01
_CHECK_PLAINTEXT_V1 = b"hub.keystore.master-check.v1"  # a keyring without a row summary
_CHECK_PLAINTEXT = b"hub.keystore.master-check.v2"  # a keyring with one (``keyring_set``)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS data_keys (
    subject BLOB NOT NULL,
    version INTEGER NOT NULL,
    wrapped BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (subject, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS erased (
    subject BLOB PRIMARY KEY,
    erased_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS scoped_keys (
    family BLOB NOT NULL,
    tenant TEXT NOT NULL,
    PRIMARY KEY (family, tenant)
) WITHOUT ROWID;
"""


_IN_CHUNK = 500  # ids per ``IN (...)`` query: under SQLite's 999 bound parameters of old builds


def subject_digest(subject_id: str) -> bytes:
    """How the keyring names a subject: SHA-256 of a labelled id, never the id itself."""
    return hashlib.sha256(b"hub.subject.v1\x00" + subject_id.encode()).digest()


def _note_scoped(db: sqlite3.Connection, key_id: str, summary: SetSummary) -> None:
    """Record the tenant of a scoped key under its subject's digest (``key_tenants``), in the
    transaction that makes or destroys the key: an erasure of a subject in every tenant finds
    each tenant's key here, in the keyring itself (deleting a row needs write access to the
    keys, which already is the power to destroy them)."""
    pair = parse_scoped(key_id)
    if pair is not None:
        tenant, subject_id = pair
        row = (subject_digest(subject_id), tenant)
        if db.execute("INSERT OR IGNORE INTO scoped_keys VALUES (?, ?)", row).rowcount:
            summary.add("scoped_keys", row)


def _wrap_aad(subject: bytes, version: int) -> bytes:
    return b"hub.wrap.v1" + subject + version.to_bytes(4, "big")


class LocalKeyStore(KeyStore):
    """Data keys in a SQLite file, wrapped under ``master_key`` (32 bytes)."""

    def __init__(
        self,
        path: str | Path,
        master_key: bytes,
        *,
        cache_size: int = 10_000,
        cache_ttl_s: float = 30.0,
    ) -> None:
        if len(master_key) != KEY_LEN:
            raise ConfigError(
                f"The keyring's master key must be {KEY_LEN} bytes, got {len(master_key)}: "
                "generate one with `python -c 'import os,base64;print(base64.b64encode("
                "os.urandom(32)).decode())'`."
            )
        self.path = Path(path)
        self._master = AESGCM(master_key)
        self._set_key = set_key(master_key)
        # table -> the file's state when its rows last matched the summary (``_check_table``)
        self._checked: dict[str, tuple[int, int]] = {}
        self._lock = threading.RLock()
        self._cache = KeyCache(cache_size, cache_ttl_s)
        self._created = CreatedKeys()  # created_here
        self._watchers: list[Callable[[KeyStoreState, bool], None]] = []  # watch_state
        try:
            self._db = open_store(self.path, _SCHEMA, "synchronous=FULL", "secure_delete=ON")
        except sqlite3.Error as exc:
            raise KeyStoreError(f"Cannot open the keyring {self.path}: {exc}") from exc
        with contextlib.suppress(OSError):
            os.chmod(self.path, 0o600)
        try:
            self._check_master()
        except BaseException:
            self._db.close()
            raise

    # -- master key ---------------------------------------------------------------------------
    def _master_check_blob(self, plaintext: bytes = _CHECK_PLAINTEXT) -> bytes:
        nonce = os.urandom(NONCE_LEN)
        return nonce + self._master.encrypt(nonce, plaintext, b"hub.master")

    def _check_master(self) -> None:
        """Store a check value on first use; afterwards refuse a master key that does not fit,
        then check every row against the MAC'd row summary (writing it once for a keyring made
        before summaries: its master check says which)."""
        with self._tx():
            row = self._db.execute("SELECT value FROM meta WHERE name = 'master_check'").fetchone()
            if row is None:
                self._refuse_reset()
                check = self._master_check_blob()
                self._db.execute("INSERT INTO meta VALUES ('master_check', ?)", (check,))
                self._store_summary(SetSummary.of_rows(self._set_key, self._db))
                return
            try:
                blob = bytes(row[0])
                plain = self._master.decrypt(blob[:NONCE_LEN], blob[NONCE_LEN:], b"hub.master")
            except InvalidTag as exc:
                raise ConfigError(
                    f"The master key does not open the keyring {self.path}: it was created "
                    "under another master key. Set HUB_MASTER_KEY (or the master key file) to "
                    "the key it was created with."
                ) from exc
            if plain == _CHECK_PLAINTEXT_V1:  # the upgrade: the summary of the rows as they are
                self._refuse_v1_beside_summary()
                self._store_summary(SetSummary.of_rows(self._set_key, self._db))
                self._db.execute(
                    "UPDATE meta SET value = ? WHERE name = 'master_check'",
                    (self._master_check_blob(),),
                )
                return
            self._summary().check_rows(self._db, self.path)

    def _refuse_reset(self) -> None:
        """A keyring without its master check is a new one only while it holds nothing: with
        rows or a summary, the check was deleted so that the next open would take the rows as
        they are (a deleted key row or a forged tombstone) for a new keyring's."""
        held = [t for t in ("meta", *TABLES) if self._db.execute(f"SELECT 1 FROM {t}").fetchone()]
        if held:
            raise KeyStoreError(
                f"The keyring {self.path} was edited outside the hub: its master check is "
                f"missing, but it holds rows ({', '.join(held)}), so it is not a new keyring. "
                "Refusing to use it: restore the keyring from a backup, or investigate who "
                "wrote to the file."
            )

    def _refuse_v1_beside_summary(self) -> None:
        """A pre-summary (v1) check is never beside a summary: the hub writes the v2 check in
        the transaction that writes the first summary. One copied from an older copy of the file
        would make this open re-derive the summary from the rows as they are (edits taken)."""
        if self._db.execute("SELECT 1 FROM meta WHERE name = 'set_summary'").fetchone():
            raise KeyStoreError(
                f"The keyring {self.path} was edited outside the hub: its master check is of "
                "a keyring from before row summaries (v1), but it holds a row summary, so the "
                "check was copied from an older copy of the file. Refusing to use it: restore "
                "the keyring from a backup, or investigate who wrote to the file."
            )

    def _summary(self) -> SetSummary:
        """The stored row summary, its MAC checked (in the open transaction)."""
        row = self._db.execute("SELECT value FROM meta WHERE name = 'set_summary'").fetchone()
        if row is None:
            raise KeyStoreError(
                f"The row summary of the keyring {self.path} is missing, though its master check "
                "says it has one: the keyring was edited outside the hub. Restore it from a "
                "backup."
            )
        return SetSummary.decode(self._set_key, bytes(row[0]), self.path)

    def _store_summary(self, summary: SetSummary) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO meta VALUES ('set_summary', ?)", (summary.encode(),)
        )

    @contextlib.contextmanager
    def _guarded_tx(self) -> Iterator[SetSummary]:
        """A write transaction that first checks the row counts against the MAC'd summary (an
        edited keyring is refused before anything is written to it), hands the summary to the
        writer to keep up to date, and stores it before the commit."""
        with self._tx():
            summary = self._summary()
            summary.check_counts(self._db, self.path)
            yield summary
            summary.generation += 1
            self._store_summary(summary)
        state = summary.state()
        for watcher in self._watchers:
            watcher(state, False)

    def _check_table(self, table: str) -> None:
        """Full check of one table (a read that found a missing key or a tombstone): the summary
        and the rows read in one snapshot (a destroy committed by another process in between
        would otherwise look like an edit). Skipped while the file is as it was at this table's
        last full check: no other connection committed (``PRAGMA data_version``) and this one
        wrote nothing (``total_changes``); else every read of an erased value re-hashed the
        whole table (13.7 ms a read at 5,000 keys)."""
        with self._lock:
            if self._db.in_transaction:
                self._check_rows(table)
                return
            with self._read_tx():
                self._check_rows(table)

    def _check_rows(self, table: str) -> None:
        (version,) = self._db.execute("PRAGMA data_version").fetchone()
        state = (int(version), self._db.total_changes)
        if self._checked.get(table) == state:
            return
        self._summary().check_rows(self._db, self.path, (table,))
        self._checked[table] = state

    def rewrap(self, new_master_key: bytes) -> int:
        """Re-wrap every data key under ``new_master_key`` in one transaction; returns the count.

        The old wrapped values are overwritten (secure_delete) and the file vacuumed afterwards.
        """
        if len(new_master_key) != KEY_LEN:
            raise ConfigError(f"A master key must be {KEY_LEN} bytes, got {len(new_master_key)}.")
        new = AESGCM(new_master_key)
        new_set_key = set_key(new_master_key)
        with self._guarded_tx() as summary:
            summary.check_rows(self._db, self.path)
            rows = self._db.execute("SELECT subject, version, wrapped FROM data_keys").fetchall()
            for subject, version, wrapped in rows:
                raw = self._unwrap(bytes(subject), version, bytes(wrapped))
                nonce = os.urandom(NONCE_LEN)
                rewrapped = nonce + new.encrypt(nonce, raw, _wrap_aad(bytes(subject), version))
                self._db.execute(
                    "UPDATE data_keys SET wrapped = ? WHERE subject = ? AND version = ?",
                    (rewrapped, subject, version),
                )
            nonce = os.urandom(NONCE_LEN)
            check = nonce + new.encrypt(nonce, _CHECK_PLAINTEXT, b"hub.master")
            self._db.execute("UPDATE meta SET value = ? WHERE name = 'master_check'", (check,))
            rekeyed = SetSummary.of_rows(new_set_key, self._db)
            summary.key, summary.counts, summary.digests = (
                new_set_key,
                rekeyed.counts,
                rekeyed.digests,
            )
        self._master = new
        self._set_key = new_set_key
        self._compact()
        return len(rows)

    # -- helpers ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        """One IMMEDIATE transaction (the write lock up front, so processes serialise cleanly)."""
        with write_transaction(self._db, self._lock, self._busy, self._commit_failed):
            yield

    def _busy(self, exc: sqlite3.OperationalError) -> StorageBusy:
        return StorageBusy(f"The keyring {self.path} is locked by another process: {exc}. Retry.")

    def _commit_failed(self, exc: sqlite3.Error) -> KeyStoreError:
        return KeyStoreError(f"Cannot commit to the keyring {self.path}: {exc}")

    @contextlib.contextmanager
    def _read_tx(self) -> Iterator[None]:
        """One DEFERRED transaction that only reads: one snapshot, and never the write lock."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield
            finally:
                self._db.execute("ROLLBACK")

    def _unwrap(self, subject: bytes, version: int, wrapped: bytes) -> bytes:
        try:
            return self._master.decrypt(
                wrapped[:NONCE_LEN], wrapped[NONCE_LEN:], _wrap_aad(subject, version)
            )
        except InvalidTag as exc:
            raise KeyStoreError(
                f"A data key (version {version}) in {self.path} does not unwrap under the master "
                "key: the keyring is damaged or was edited."
            ) from exc

    def _new_key(self, subject: bytes, version: int, summary: SetSummary) -> DataKey:
        raw = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(NONCE_LEN)
        wrapped = nonce + self._master.encrypt(nonce, raw, _wrap_aad(subject, version))
        self._db.execute(
            "INSERT INTO data_keys VALUES (?, ?, ?, ?)",
            (subject, version, wrapped, int(time.time() * 1000)),
        )
        summary.add("data_keys", (subject, version))
        return DataKey(raw)

    def _erased(self, subject: bytes) -> bool:
        row = self._db.execute("SELECT 1 FROM erased WHERE subject = ?", (subject,)).fetchone()
        return row is not None

    def _destroyed_error(self, subject_id: str) -> KeyDestroyed:
        return KeyDestroyed(
            f"The key of data subject {subject_id!r} was destroyed (erased): its data cannot be "
            "read, and no new data can be encrypted for it."
        )

    def _newest(self, subject_id: str) -> tuple[int, AESGCM | DataKey]:
        hit = self._cache.newest(subject_id)
        if hit is not None:
            return hit
        subject = subject_digest(check_key_id(subject_id))
        # Read in a deferred transaction (a WAL reader: no write lock, publishers not stalled);
        # only a subject without a key takes the write lock, and checks again under it.
        with self._read_tx():
            found = self._newest_row(subject_id, subject)
        if found is None:
            with self._guarded_tx() as summary:
                found = self._newest_row(subject_id, subject)
                if found is None:
                    found = 1, self._new_key(subject, 1, summary)
                    _note_scoped(self._db, subject_id, summary)
                    self._created.add(subject_id)
        version, aead = found
        self._cache.put(subject_id, version, aead, newest=True)
        return version, aead

    def _newest_row(self, subject_id: str, subject: bytes) -> tuple[int, DataKey] | None:
        """The newest key of ``subject`` in the open transaction; None when it has none."""
        if self._erased(subject):
            self._check_table("erased")
            raise self._destroyed_error(subject_id)
        row = self._db.execute(
            "SELECT version, wrapped FROM data_keys WHERE subject = ? "
            "ORDER BY version DESC LIMIT 1",
            (subject,),
        ).fetchone()
        if row is None:
            return None
        version = int(row[0])
        return version, DataKey(self._unwrap(subject, version, bytes(row[1])))

    def _version(self, subject_id: str, version: int) -> AESGCM | DataKey:
        aead = self._cache.get(subject_id, version)
        if aead is not None:
            return aead
        subject = subject_digest(check_key_id(subject_id))
        with self._lock:
            row = self._db.execute(
                "SELECT wrapped FROM data_keys WHERE subject = ? AND version = ?",
                (subject, version),
            ).fetchone()
            if row is None:
                # A key missing: deleted rows or a forged tombstone are named, not taken as an
                # erasure or as data from another keyring.
                self._check_table("data_keys")
                if self._erased(subject):
                    self._check_table("erased")
                    raise self._destroyed_error(subject_id)
                exists = self._db.execute(
                    "SELECT 1 FROM data_keys WHERE subject = ? LIMIT 1", (subject,)
                ).fetchone()
                if exists is None:
                    # A ciphertext can only exist if its key once existed: a missing key is a
                    # destroyed one (this keyring was reset, or the data came from another).
                    raise KeyUnknown(
                        f"Data subject {subject_id!r} has no key in {self.path}: its data cannot "
                        "be read (erased, or encrypted by another keyring)."
                    )
                raise DecryptionFailed(
                    f"The ciphertext names key version {version}, which data subject "
                    f"{subject_id!r} never had: it was changed or belongs to another keyring."
                )
            aead = DataKey(self._unwrap(subject, version, bytes(row[0])))
        self._cache.put(subject_id, version, aead, newest=False)
        return aead

    def _compact(self) -> None:
        """Leave no freed page behind: truncate the WAL, vacuum, truncate again."""
        with self._lock:
            for _ in range(50):
                busy = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                if not busy:
                    break
                time.sleep(0.02)
            try:
                self._db.execute("VACUUM")
            except sqlite3.OperationalError as exc:
                raise StorageBusy(
                    f"Cannot vacuum the keyring {self.path} after a destroy: {exc}. The rows are "
                    "deleted and zeroed; retry the destroy to compact the file."
                ) from exc
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- the port -----------------------------------------------------------------------------
    def ensure_key(self, subject_id: str) -> KeyRef:
        version, _ = self._newest(subject_id)
        return KeyRef(subject_id, version)

    def encrypt(self, subject_id: str, plaintext: bytes, aad: bytes) -> bytes:
        version, aead = self._newest(subject_id)
        return seal(FORMAT_LOCAL, version, aead, subject_id, plaintext, aad)

    def sealer(self, subject_id: str) -> Callable[[bytes, bytes], bytes]:
        version, aead = self._newest(subject_id)
        return _aead.sealer(FORMAT_LOCAL, version, aead, subject_id)

    def seal_many(
        self, subject_ids: Sequence[str], plaintexts: Sequence[bytes], aads: Sequence[bytes]
    ) -> list[bytes]:
        return _aead.seal_many(
            FORMAT_LOCAL, self._newest, subject_ids, plaintexts, aads, self._cache.newest_many
        )

    def seal_keyed(
        self,
        subject_ids: list[str],
        key_of: list[int],
        plaintexts: Sequence[bytes],
        aads: Sequence[bytes],
    ) -> list[bytes]:
        return _aead.seal_keyed(
            FORMAT_LOCAL,
            self._newest,
            subject_ids,
            key_of,
            plaintexts,
            aads,
            self._cache.newest_many,
        )

    def decrypt(self, subject_id: str, ciphertext: bytes, aad: bytes) -> bytes:
        version = parse_header(FORMAT_LOCAL, ciphertext, "local-keyring")
        return open_sealed(self._version(subject_id, version), subject_id, ciphertext, aad)

    def rotate(self, subject_id: str) -> KeyRef:
        subject = subject_digest(check_key_id(subject_id))
        with self._guarded_tx() as summary:
            if self._erased(subject):
                self._check_table("erased")
                raise self._destroyed_error(subject_id)
            row = self._db.execute(
                "SELECT MAX(version) FROM data_keys WHERE subject = ?", (subject,)
            ).fetchone()
            version = int(row[0] or 0) + 1
            aead = self._new_key(subject, version, summary)
            _note_scoped(self._db, subject_id, summary)
        self._cache.put(subject_id, version, aead, newest=True)
        return KeyRef(subject_id, version)

    def destroy(self, subject_id: str) -> None:
        subject = subject_digest(check_key_id(subject_id))
        # 1. overwrite, delete and tombstone in one transaction (secure_delete zeroes the pages);
        with self._guarded_tx() as summary:
            versions = self._db.execute(
                "SELECT version FROM data_keys WHERE subject = ?", (subject,)
            ).fetchall()
            self._db.execute(
                "UPDATE data_keys SET wrapped = zeroblob(length(wrapped)) WHERE subject = ?",
                (subject,),
            )
            self._db.execute("DELETE FROM data_keys WHERE subject = ?", (subject,))
            for (version,) in versions:
                summary.remove("data_keys", (subject, version))
            if self._db.execute(
                "INSERT OR IGNORE INTO erased VALUES (?, ?)", (subject, int(time.time() * 1000))
            ).rowcount:
                summary.add("erased", (subject,))
            _note_scoped(self._db, subject_id, summary)
        # 2. forget the unwrapped keys this process holds;
        self._cache.purge(subject_id)
        # 3. leave no copy in the WAL or free pages.
        self._compact()

    def state(self) -> KeyStoreState:
        """The generation, row counts and digest of the MAC'd row summary (one row read)."""
        with self._read_tx():
            return self._summary().state()

    def watch_state(self, callback: Callable[[KeyStoreState, bool], None]) -> None:
        self._watchers.append(callback)

    def erased(self, subject_id: str) -> bool:
        subject = subject_digest(check_key_id(subject_id))
        with self._lock:
            if not self._erased(subject):
                return False
            self._check_table("erased")  # a tombstone the hub wrote, not an inserted one
            return True

    def any_erased(self) -> bool:
        """One look at the (usually empty) erasure table."""
        with self._lock:
            return self._db.execute("SELECT 1 FROM erased LIMIT 1").fetchone() is not None

    def erased_among(self, subject_ids: Iterable[str]) -> set[str]:
        """One look at the (usually empty) erasure table, then one query per 500 ids."""
        ids = set(subject_ids)
        if not ids or not self.any_erased():
            return set()
        found = self._among(ids, "SELECT subject FROM erased WHERE subject IN ({marks})")
        if found:
            self._check_table("erased")
        return found

    def known_among(self, subject_ids: Iterable[str]) -> set[str]:
        """One query per 500 ids over the keys, one over the erasure table."""
        return self._among(
            subject_ids,
            "SELECT subject FROM data_keys WHERE subject IN ({marks}) UNION "
            "SELECT subject FROM erased WHERE subject IN ({marks})",
        )

    def live_among(self, subject_ids: Iterable[str]) -> set[str]:
        """One query per 500 ids over the keys."""
        return self._among(
            subject_ids, "SELECT DISTINCT subject FROM data_keys WHERE subject IN ({marks})"
        )

    def _among(self, subject_ids: Iterable[str], sql: str) -> set[str]:
        """The ids whose digest ``sql`` (its ``{marks}``: one ``IN`` list of digests, repeated
        as often as it appears) returns, asked 500 digests at a time; an id that is not a valid
        subject id is left out (no key is kept under it)."""
        by_digest: dict[bytes, str] = {}
        for subject_id in set(subject_ids):
            try:
                by_digest[subject_digest(check_key_id(subject_id))] = subject_id
            except InvalidInput:
                continue
        digests = list(by_digest)
        repeat = sql.count("{marks}")
        found: set[str] = set()
        with self._lock:
            for i in range(0, len(digests), _IN_CHUNK):
                part = digests[i : i + _IN_CHUNK]
                rows = self._db.execute(sql.format(marks=",".join("?" * len(part))), part * repeat)
                found.update(by_digest[bytes(row[0])] for row in rows)
        return found

    def created_here(self, subject_ids: Iterable[str]) -> set[str]:
        return self._created.among(subject_ids)

    def forget_created(self, subject_ids: Iterable[str]) -> None:
        self._created.forget(subject_ids)

    def exists(self, subject_id: str) -> bool:
        subject = subject_digest(check_key_id(subject_id))
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM data_keys WHERE subject = ? LIMIT 1", (subject,)
            ).fetchone()
        return row is not None

    def key_tenants(self, subject_id: str) -> frozenset[str]:
        family = subject_digest(check_subject(subject_id))
        with self._lock:
            rows = self._db.execute(
                "SELECT tenant FROM scoped_keys WHERE family = ?", (family,)
            ).fetchall()
        return frozenset(str(r[0]) for r in rows)

    def close(self) -> None:
        with self._lock:
            if self._watchers:
                with contextlib.suppress(KeyStoreError, sqlite3.Error):
                    state = self.state()
                    for watcher in self._watchers:
                        watcher(state, True)
            self._db.close()


# -- master key files -------------------------------------------------------------------------
def decode_master_key(text: str, source: str) -> bytes:
    """A base64 master key as bytes; ``source`` names where it came from for the message."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"The master key in {source} is not valid base64: {exc}.") from exc
    if len(raw) != KEY_LEN:
        raise ConfigError(
            f"The master key in {source} decodes to {len(raw)} bytes; it must be {KEY_LEN}."
        )
    return raw


def _write_secret(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 (never existing before) and fsync it and its folder."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_master_key_file(path: Path) -> bytes:
    """Read a master key file, refusing one that others than its owner can read."""
    mode = path.stat().st_mode
    if mode & 0o077:
        raise ConfigError(
            f"The master key file {path} is readable by others (mode {oct(mode & 0o777)}): "
            f"run `chmod 600 {path}`."
        )
    return decode_master_key(path.read_text("ascii"), str(path))


def load_or_create_master_key(path: Path) -> bytes:
    """The master key in ``path``, created (32 random bytes, base64, mode 0600) if absent."""
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # a racing process made it first
            _write_secret(path, base64.b64encode(os.urandom(KEY_LEN)) + b"\n")
    return read_master_key_file(path)


def _pending(path: Path) -> Path:
    return path.with_name(path.name + ".next")


def open_keyring(
    db_path: Path,
    key_file: Path,
    env_master_key: str | None = None,
    *,
    cache_size: int = 10_000,
    cache_ttl_s: float = 30.0,
) -> LocalKeyStore:
    """The local keyring, its master key from ``env_master_key`` (base64) or ``key_file``.

    Finishes an interrupted ``rotate_master_key_file``: when the current key file no longer
    opens the keyring but the pending ``<key_file>.next`` does, the pending key is promoted.
    """

    def open_with(master: bytes) -> LocalKeyStore:
        return LocalKeyStore(db_path, master, cache_size=cache_size, cache_ttl_s=cache_ttl_s)

    if env_master_key:
        return open_with(decode_master_key(env_master_key, "HUB_MASTER_KEY"))
    try:
        return open_with(load_or_create_master_key(key_file))
    except ConfigError:
        pending = _pending(key_file)
        if not pending.exists():
            raise
        store = open_with(read_master_key_file(pending))
        os.replace(pending, key_file)
        _fsync_dir(key_file.parent)
        return store


def rotate_master_key_file(store: LocalKeyStore, key_file: Path) -> int:
    """Rotate the master key kept in ``key_file``; returns how many data keys were re-wrapped.

    Steps (a crash between any two leaves a keyring that ``open_keyring`` opens):
    1. write the new key to ``<key_file>.next`` (0600, fsynced);
    2. re-wrap every data key under it in one transaction;
    3. rename ``<key_file>.next`` over ``key_file``.
    """
    pending = _pending(key_file)
    pending.unlink(missing_ok=True)
    new = os.urandom(KEY_LEN)
    _write_secret(pending, base64.b64encode(new) + b"\n")  # 1
    count = store.rewrap(new)  # 2
    os.replace(pending, key_file)  # 3
    _fsync_dir(key_file.parent)
    return count
