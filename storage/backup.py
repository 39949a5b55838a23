"""Backups of the embedded footprint's data folder to an ObjectStore, and their safe restore.

What a backup holds (``hub backup create``)
- every SQLite database of the data folder (the event log, the ledger, the key ring ...) as a
  consistent snapshot (SQLite's online backup API: a read transaction, so a running ``hub
  serve`` goes on writing meanwhile), and every other file (witnessed checkpoints, ...);
  the projection views are not copied: they are folds of the log, rebuilt after a restore;
- key material (``keys/`` and any ``*.key`` file: the ledger signing key, the log MAC key, the
  API key pepper, the key ring's master key and the sealed data keys; also the secret files the
  settings name when they lie in the data folder, and any small file holding nothing but a hub
  credential, as an admin key saved under another name) only inside one object
  sealed with AES-256-GCM under a key-encryption key (KEK) that the store never holds: the
  operator keeps the KEK file elsewhere (``--kek-file``, ``HUB_BACKUP_KEK_FILE``) and a KEK
  inside the data folder or the local object folder is refused;
- a manifest: the ledger's tree size and root hash and latest checkpoint at the snapshot, the
  log's end offsets, per file its size, SHA-256 and chunk list, the sealed keys' SHA-256; and
  a C2SP signed note over the manifest's SHA-256 by the ledger's signing key.

Steps of ``create_backup`` (numbered as in the code)
1. sync the ledger (every record appended so far gets its leaf) and sign a checkpoint;
2. snapshot the ledger first, then every other database: the log snapshot then holds every
   record the ledger snapshot covers (records appended in between are adopted by the ledger at
   restore, where they verify under the restored log MAC key);
3. cut each snapshot file into chunks named by their SHA-256 (``backup-chunks/ab/<sha256>``,
   write-once): a chunk the store already holds is not uploaded again, so a backup after a
   previous one uploads what changed since (an incremental backup), and a restore needs only the
   chunks its manifest names;
4. seal the key material under the KEK (AAD: the backup id);
5. write the manifest, then its signature last: a backup without ``manifest.sig`` is incomplete
   and never listed or restored.

Steps of ``fetch_backup`` (the restore's first half; ``hub.recovery`` does the rest)
1. read the manifest and its signature; open the sealed keys with the KEK (a wrong KEK or a
   changed byte fails AES-GCM's tag: refused naming the object); verify the manifest's
   signature with the ledger key found inside, and that key against the manifest's;
2. stream every chunk into a staging folder beside the target, checking its SHA-256 as it
   arrives (a changed byte fails naming the object) with one block in memory, never more bytes
   than its file has left (a forged, huge chunk is refused there), then each file's SHA-256;
3. check that the restored ledger's root at the manifest's tree size equals the manifest's root.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from audit.errors import NoteError
from audit.note import open_note, parse_signer_key
from core.errors import ConfigError, HubError, InvalidInput, NotFound
from core.ports.keyfiles import private_dir
from core.ports.objectstore import ObjectNotFound, ObjectStore, ObjectTooLarge
from storage.erasures import PREFIX as ERASURES_PREFIX

FORMAT = "hub-backup/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
KEYS_OBJECT = "keys.enc"
BACKUPS = "backups/"
CHUNKS = "backup-chunks/"
DEFAULT_CHUNK_BYTES = 8 << 20
KEK_BYTES = 32
SKIP_DIRS = frozenset({"views"})  # folds of the log: rebuilt after a restore
SQLITE_MAGIC = b"SQLite format 3\x00"
# The embedded ledger stores' files (tiles, rows): snapshotted first (step 2); the caller's
# ``ledger_state`` / ``ledger_root`` open whichever a folder holds through the LedgerStore port.
LEDGER_FILES = ("ledger-tiles.sqlite", "ledger.sqlite")
BACKUP_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,63}")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# Bounds on objects read whole before their signature or seal is checked: whoever writes the
# store could otherwise make a restore (or `hub backup list`) load any size into memory. A
# manifest lists ~70 bytes per chunk: 32 MiB covers ~480k chunks, 4 TB at the default 8 MiB
# chunk size (a bigger folder takes bigger chunks, HUB_BACKUP_CHUNK_KIB).
MAX_MANIFEST_BYTES = 32 << 20
MAX_NOTE_BYTES = 64 << 10
MAX_KEYS_BYTES = 256 << 20  # the key ring's sealed data keys, one per subject
Progress = Callable[[str], None]


class BackupError(HubError):
    code = "backup_failed"


class BackupNotFound(NotFound):
    code = "backup_not_found"


class BackupCorrupt(HubError):
    """A backup object fails its check: the message names the object."""

    code = "backup_corrupt"
    http_status = 422


class RestoreRefused(HubError):
    code = "restore_refused"
    http_status = 409


# -- the key-encryption key ------------------------------------------------------------------------


@dataclass(frozen=True)
class Kek:
    """A 32-byte key-encryption key and where it came from."""

    key: bytes
    source: str

    @property
    def id(self) -> str:
        """A public fingerprint, stored in manifests (which KEK sealed a backup's keys)."""
        return hashlib.sha256(b"hub-backup-kek\x00" + self.key).hexdigest()[:16]


def create_kek_file(path: Path, *, forbidden_under: tuple[Path, ...] = ()) -> Kek:
    """Write a new random KEK (base64, mode 0600) to ``path``; refuses to replace a file, and
    a place under ``forbidden_under`` (``load_kek`` would refuse it there at every use)."""
    path = Path(path).expanduser()
    check_kek_place(path, forbidden_under)
    key = os.urandom(KEK_BYTES)
    private_dir(path.parent)  # whoever may write it may swap the KEK or delete the witness
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InvalidInput(
            f"The KEK file {path} already exists; a KEK is never overwritten (backups sealed "
            "under it would become unreadable). Choose another path."
        ) from None
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(key).decode() + "\n")
        f.flush()
        os.fsync(f.fileno())
    return Kek(key, str(path))


def check_kek_place(path: Path, forbidden_under: tuple[Path, ...]) -> None:
    """Refuse a KEK file under one of ``forbidden_under`` (symlinks resolved)."""
    resolved = path.resolve()
    for root in forbidden_under:
        try:
            resolved.relative_to(Path(root).expanduser().resolve())
        except ValueError:
            continue
        raise ConfigError(
            f"The KEK file {path} lies inside {root}, beside what it protects; keep it "
            "elsewhere (another disk, a secret manager) and pass that path."
        )


def load_kek(path: Path | None, *, forbidden_under: tuple[Path, ...] = ()) -> Kek:
    """The KEK in ``path`` (base64 of 32 bytes); refuses one stored under ``forbidden_under``
    (the data folder, the local object folder): a KEK kept beside what it protects protects
    nothing."""
    if path is None:
        raise ConfigError(
            "No key-encryption key: pass --kek-file FILE (or set HUB_BACKUP_KEK_FILE). Create "
            "one with `hub backup kek FILE` and keep it away from the data folder and the store."
        )
    path = Path(path).expanduser()
    check_kek_place(path, forbidden_under)
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"Cannot read the KEK file {path}: {exc.strerror}.") from exc
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"The KEK file {path} may be read by others; run `chmod 600 {path}`.")
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:
        key = b""
    if len(key) != KEK_BYTES:
        raise ConfigError(
            f"The KEK file {path} does not hold base64 of {KEK_BYTES} bytes; create one with "
            "`hub backup kek FILE`."
        )
    return Kek(key, str(path))


def seal(kek: Kek, backup_id: str, plaintext: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(kek.key).encrypt(nonce, plaintext, _aad(backup_id))


def unseal(kek: Kek, backup_id: str, sealed: bytes, what: str) -> bytes:
    try:
        return AESGCM(kek.key).decrypt(sealed[:12], sealed[12:], _aad(backup_id))
    except (InvalidTag, ValueError):
        raise BackupCorrupt(
            f"The sealed key material {what} does not open with the KEK {kek.source} (id "
            f"{kek.id}): either that is not the KEK this backup was made with, or the object "
            "was changed."
        ) from None


def _aad(backup_id: str) -> bytes:
    return f"{FORMAT}|keys|{backup_id}".encode()


# -- manifests -------------------------------------------------------------------------------------


@dataclass
class FileEntry:
    path: str  # relative to the data folder, '/'-separated
    size: int
    sha256: str
    chunks: list[str]
    sqlite: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "chunks": self.chunks,
            "sqlite": self.sqlite,
        }


@dataclass
class Manifest:
    id: str
    created_at_ms: int
    ledger_size: int
    ledger_root: str
    ledger_origin: str
    public_key: str  # the ledger's verifier key (C2SP), which signs the manifest
    checkpoint: str  # the latest signed checkpoint at the snapshot, as text
    end_offsets: dict[str, dict[str, int]]
    files: list[FileEntry]
    keys_sha256: str
    kek_id: str
    parent: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    # the erasure journal's objects when the backup was made: a restore checks that none of the
    # newest backup's is gone (a deleted entry would bring an erased subject back)
    erasures: list[str] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(sum(p.values()) for p in self.end_offsets.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "id": self.id,
            "created_at": _iso(self.created_at_ms),
            "created_at_ms": self.created_at_ms,
            "parent": self.parent,
            "ledger": {
                "size": self.ledger_size,
                "root": self.ledger_root,
                "origin": self.ledger_origin,
                "public_key": self.public_key,
                "checkpoint": self.checkpoint,
            },
            "log": {"end_offsets": self.end_offsets},
            "files": [f.as_dict() for f in self.files],
            "keys": {"object": KEYS_OBJECT, "sha256": self.keys_sha256, "kek_id": self.kek_id},
            "stats": self.stats,
            "erasures": self.erasures,
        }

    def encode(self) -> bytes:
        return (json.dumps(self.as_dict(), indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def decode(cls, data: bytes, where: str) -> Manifest:
        try:
            d = json.loads(data)
            if d.get("format") != FORMAT:
                raise ValueError(f"format {d.get('format')!r} is not {FORMAT!r}")
            led, keys = d["ledger"], d["keys"]
            m = cls(
                id=str(d["id"]),
                created_at_ms=int(d["created_at_ms"]),
                ledger_size=int(led["size"]),
                ledger_root=str(led["root"]),
                ledger_origin=str(led["origin"]),
                public_key=str(led["public_key"]),
                checkpoint=str(led["checkpoint"]),
                end_offsets={
                    str(t): {str(p): int(o) for p, o in parts.items()}
                    for t, parts in d["log"]["end_offsets"].items()
                },
                files=[
                    FileEntry(
                        str(f["path"]),
                        int(f["size"]),
                        str(f["sha256"]),
                        [str(c) for c in f["chunks"]],
                        bool(f.get("sqlite", False)),
                    )
                    for f in d["files"]
                ],
                keys_sha256=str(keys["sha256"]),
                kek_id=str(keys["kek_id"]),
                parent=d.get("parent"),
                stats=dict(d.get("stats") or {}),
                erasures=[str(k) for k in d.get("erasures") or []],
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BackupCorrupt(f"The backup manifest {where} is not readable: {exc}.") from None
        m.check_names(where)
        return m

    def check_names(self, where: str) -> None:
        """Refuse a manifest whose names could reach outside the staging folder or the chunk
        folder (even a signed one: the restore's own checks never trust a name)."""
        seen: set[str] = set()
        for f in self.files:
            _safe_rel(f.path)
            if f.path in seen or is_key_material(f.path):
                raise BackupCorrupt(
                    f"The backup manifest {where} lists the file {f.path!r} twice or as a plain "
                    "file although it is key material; the manifest is refused."
                )
            seen.add(f.path)
            for c in f.chunks:
                if not SHA256_HEX.fullmatch(c):
                    raise BackupCorrupt(
                        f"The backup manifest {where} names the chunk {c[:80]!r} of {f.path}, "
                        "which is not a SHA-256 (64 lowercase hex digits); it is refused."
                    )

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": _iso(self.created_at_ms),
            "parent": self.parent,
            "ledger_size": self.ledger_size,
            "ledger_root": self.ledger_root,
            "records": self.records,
            "bytes": sum(f.size for f in self.files),
            "files": len(self.files),
            **{k: v for k, v in self.stats.items() if k in ("uploaded_bytes", "reused_bytes")},
        }


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def check_backup_id(backup_id: str) -> str:
    """``backup_id`` if it has the shape of one (``20261202T042000123Z-1a2b3c4d``), else a
    ``InvalidInput`` naming it: an id is part of object keys, never a path."""
    if not BACKUP_ID.fullmatch(backup_id):
        raise InvalidInput(
            f"The backup id {backup_id[:80]!r} is not valid: ids are letters, digits, '-' and "
            "'_' (like 20261202T042000123Z-1a2b3c4d); `hub backup list` shows them."
        )
    return backup_id


def manifest_key(backup_id: str, name: str = MANIFEST) -> str:
    return f"{BACKUPS}{check_backup_id(backup_id)}/{name}"


def chunk_key(sha256: str) -> str:
    return f"{CHUNKS}{sha256[:2]}/{sha256}"


def signed_text(backup_id: str, manifest_sha256: str) -> str:
    return f"{FORMAT}\n{backup_id}\n{manifest_sha256}\n"


# -- snapshots -------------------------------------------------------------------------------------


def is_key_material(rel: str) -> bool:
    return rel.startswith("keys/") or rel.endswith(".key")


# A hub credential saved on its own under any name (``hub serve --admin-key-file``, ``hub enrol
# --out``, ``hub keys create > FILE``): KEY_ID:SECRET or an enrolment token, alone in the file.
_CREDENTIAL = re.compile(rb"\A\s*h[ke]_[0-9a-f]{16}[:.][A-Za-z0-9_\-.~+/=:]{8,}\s*\Z")
CREDENTIAL_MAX_BYTES = 1024


def holds_credential(path: Path) -> bool:
    """True when ``path`` is a small file holding nothing but a hub credential."""
    try:
        if path.stat().st_size > CREDENTIAL_MAX_BYTES:
            return False
        return _CREDENTIAL.match(path.read_bytes()) is not None
    except OSError:
        return False


def secret_rels(data_dir: Path, secret_files: tuple[Path, ...]) -> set[str]:
    """The paths, relative to ``data_dir``, of the ``secret_files`` that lie inside it."""
    root = Path(data_dir).resolve()
    out = set()
    for f in secret_files:
        try:
            out.add(Path(f).resolve().relative_to(root).as_posix())
        except ValueError:
            continue  # outside the data folder: not backed up at all
    return out


def data_files(data_dir: Path, exclude: tuple[Path, ...] = ()) -> list[str]:
    """The files a backup takes, relative and sorted (ledger first, see step 2); folders in
    ``exclude`` (a local object folder kept inside the data folder) are left out."""
    out = []
    skip = {Path(e).resolve() for e in exclude}
    for dirpath, dirs, files in os.walk(data_dir):
        rel_dir = Path(dirpath).relative_to(data_dir)
        if not rel_dir.parts:
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        dirs[:] = [d for d in dirs if (Path(dirpath) / d).resolve() not in skip]
        for name in files:
            if name.endswith(("-wal", "-shm", "-journal")) or name.startswith(".tmp-"):
                continue
            out.append((rel_dir / name).as_posix() if rel_dir.parts else name)
    ledger_first = sorted(out, key=lambda r: (r not in LEDGER_FILES, r))
    return ledger_first


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(16) == SQLITE_MAGIC
    except OSError:
        return False


def snapshot_file(src: Path, dst: Path) -> bool:
    """Copy ``src`` to ``dst`` consistently; True when it was a SQLite database."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not _is_sqlite(src):
        shutil.copyfile(src, dst)
        return False
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(dst)
    try:
        source.backup(target)  # one step: a single read transaction, a consistent copy
    except sqlite3.Error as exc:
        raise BackupError(f"Cannot snapshot the database {src}: {exc}.") from exc
    finally:
        target.close()
        source.close()
    return True


def _chunks(path: Path, size: int) -> Iterator[bytes]:
    with path.open("rb") as f:
        while True:
            data = f.read(size)
            if not data:
                return
            yield data


def _new_id(now_ms: int) -> str:
    stamp = datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp[:18]}{stamp[-1]}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class LedgerState:
    """What the manifest records of the ledger snapshot (read by the caller from it)."""

    size: int
    root: bytes
    origin: str
    public_key: str
    checkpoint: str


def create_backup(
    data_dir: Path,
    store: ObjectStore,
    kek: Kek,
    *,
    sync_ledger: Callable[[], object],
    sign_note: Callable[[str], bytes],
    ledger_state: Callable[[Path], LedgerState],  # of the snapshot folder
    end_offsets: Callable[[Path], dict[str, dict[str, int]]],
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    progress: Progress | None = None,
    scratch: Path | None = None,
    exclude: tuple[Path, ...] = (),
    extra_stats: dict[str, Any] | None = None,
    secret_files: tuple[Path, ...] = (),
) -> Manifest:
    """Back up ``data_dir`` into ``store`` (steps in the module docstring); the manifest.
    ``secret_files`` (the settings' scrape token, webhook key...) are sealed with the key
    material when they lie in ``data_dir``, as is any small file holding a hub credential."""
    sealed_too = secret_rels(data_dir, secret_files)
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    now_ms = time.time_ns() // 1_000_000
    backup_id = _new_id(now_ms)
    parent = latest_backup_id(store)
    sync_ledger()  # 1
    files: list[FileEntry] = []
    keys: dict[str, str] = {}
    uploaded = reused = chunk_count = 0
    with tempfile.TemporaryDirectory(prefix="hub-backup-", dir=scratch) as tmp:
        snap = Path(tmp)
        for rel in data_files(data_dir, exclude):  # 2: the ledger's file first
            src, dst = data_dir / rel, snap / rel
            if not src.exists():
                continue  # removed meanwhile (a temporary file)
            is_db = snapshot_file(src, dst)
            if is_key_material(rel) or rel in sealed_too or (not is_db and holds_credential(dst)):
                keys[rel] = base64.b64encode(dst.read_bytes()).decode()
                continue
            digest, names = hashlib.sha256(), []
            for data in _chunks(dst, chunk_bytes):  # 3
                sha = hashlib.sha256(data).hexdigest()
                digest.update(data)
                names.append(sha)
                chunk_count += 1
                key = chunk_key(sha)
                if store.exists(key) or not store.put_if_absent(key, data):
                    reused += len(data)
                else:
                    uploaded += len(data)
            files.append(FileEntry(rel, dst.stat().st_size, digest.hexdigest(), names, is_db))
            say(f"{rel}: {dst.stat().st_size} bytes in {len(names)} chunks")
        state = ledger_state(snap)
        offsets = end_offsets(snap / "log.sqlite")
    sealed = seal(kek, backup_id, json.dumps(keys, sort_keys=True).encode())  # 4
    store.put(manifest_key(backup_id, KEYS_OBJECT), sealed)
    manifest = Manifest(
        id=backup_id,
        created_at_ms=now_ms,
        ledger_size=state.size,
        ledger_root=state.root.hex(),
        ledger_origin=state.origin,
        public_key=state.public_key,
        checkpoint=state.checkpoint,
        end_offsets=offsets,
        files=files,
        keys_sha256=hashlib.sha256(sealed).hexdigest(),
        kek_id=kek.id,
        parent=parent,
        erasures=store.list(ERASURES_PREFIX),
        stats={
            "uploaded_bytes": uploaded,
            "reused_bytes": reused,
            "chunks": chunk_count,
            "seconds": round(time.perf_counter() - started, 3),
            **(extra_stats or {}),
        },
    )
    body = manifest.encode()  # 5: the manifest, then its signature, last
    store.put(manifest_key(backup_id), body)
    note = sign_note(signed_text(backup_id, hashlib.sha256(body).hexdigest()))
    store.put(manifest_key(backup_id, SIGNATURE), note)
    say(f"backup {backup_id}: ledger size {state.size}, {uploaded} bytes uploaded")
    return manifest


# -- listing ---------------------------------------------------------------------------------------


def backup_ids(store: ObjectStore) -> list[str]:
    """Complete backups (with a signature), oldest first (ids sort by time)."""
    out = []
    for key in store.list(BACKUPS):
        parts = key.split("/")
        if len(parts) == 3 and parts[2] == SIGNATURE and BACKUP_ID.fullmatch(parts[1]):
            out.append(parts[1])
    return sorted(out)


def latest_backup_id(store: ObjectStore) -> str | None:
    ids = backup_ids(store)
    return ids[-1] if ids else None


def read_manifest(store: ObjectStore, backup_id: str) -> tuple[Manifest, bytes, bytes]:
    """The manifest, its bytes and its signature note (unverified: see ``open_backup``)."""
    key = manifest_key(backup_id)
    try:
        body = read_bounded(store, key, MAX_MANIFEST_BYTES)
        note = read_bounded(store, manifest_key(backup_id, SIGNATURE), MAX_NOTE_BYTES)
    except ObjectNotFound:
        known = ", ".join(backup_ids(store)[-5:]) or "none"
        raise BackupNotFound(
            f"No complete backup {backup_id!r} in the store (newest: {known}); "
            "`hub backup list` shows them."
        ) from None
    return Manifest.decode(body, key), body, note


def list_backups(store: ObjectStore) -> list[dict[str, Any]]:
    """The store's backups; one whose manifest is missing or unreadable is left out (a
    ``manifest.sig`` planted under a new id made the whole listing fail)."""
    out = []
    for b in backup_ids(store):
        try:
            out.append(read_manifest(store, b)[0].summary())
        except (BackupNotFound, BackupCorrupt):
            continue
    return out


def _unverified(exc: HubError, backup_id: str) -> str:
    return f"WARNING: backup {backup_id} in the store does not verify and is skipped: {exc}"


def choose_backup(
    store: ObjectStore,
    backup_id: str | None = None,
    *,
    at_size: int | None = None,
    at_time_ms: int | None = None,
    kek: Kek | None = None,
    skipped: list[str] | None = None,
) -> str:
    """The backup to restore: the one named, else the newest whose ledger size is at most
    ``at_size`` and whose snapshot is at or before ``at_time_ms`` (point in time). With
    ``kek``, a newer backup that does not verify (``open_backup``: planted or damaged) is
    skipped and named in ``skipped``: a ``manifest.sig`` planted under an id sorting last
    made every restore fail. Skipping cannot roll the restore back unseen: a genuine newest
    backup is in the backup witness, which ``check_not_rolled_back`` compares."""
    if backup_id:
        return check_backup_id(backup_id)
    best = None
    failed: HubError | None = None  # the newest that did not verify: raised if none does
    verified = False
    for b in reversed(backup_ids(store)):
        try:
            m = read_manifest(store, b)[0] if kek is None else open_backup(store, b, kek)[0]
        except (BackupNotFound, BackupCorrupt) as exc:
            if kek is None:
                raise
            failed = failed or exc
            if skipped is not None:
                skipped.append(_unverified(exc, b))
            continue
        verified = True
        if at_size is not None and m.ledger_size > at_size:
            continue
        if at_time_ms is not None and m.created_at_ms > at_time_ms:
            continue
        best = b
        break
    if best is None and failed is not None and not verified:
        raise failed
    if best is None:
        raise BackupNotFound(
            "No backup in the store matches"
            + (f" ledger size <= {at_size}" if at_size is not None else "")
            + (f" time <= {_iso(at_time_ms)}" if at_time_ms is not None else "")
            + "; `hub backup list` shows what there is."
        )
    return best


# -- restore: fetch and check ----------------------------------------------------------------------


@dataclass
class Fetched:
    manifest: Manifest
    staging: Path
    bytes: int
    seconds: float


def open_backup(store: ObjectStore, backup_id: str, kek: Kek) -> tuple[Manifest, dict[str, bytes]]:
    """Step 1: the manifest, authenticated, and the key files it sealed."""
    manifest, body, note = read_manifest(store, backup_id)
    keys_key = manifest_key(backup_id, KEYS_OBJECT)
    try:
        sealed = read_bounded(store, keys_key, MAX_KEYS_BYTES)
    except ObjectNotFound:
        raise BackupCorrupt(f"The backup object {keys_key} is missing.") from None
    if manifest.kek_id != kek.id:
        raise RestoreRefused(
            f"Backup {backup_id} sealed its keys under the KEK with id {manifest.kek_id}; "
            f"{kek.source} has id {kek.id}. Pass the KEK file used when it was made."
        )
    if hashlib.sha256(sealed).hexdigest() != manifest.keys_sha256:
        raise BackupCorrupt(
            f"The backup object {keys_key} does not match the SHA-256 in its manifest: it was "
            "changed or damaged."
        )
    plain = unseal(kek, backup_id, sealed, keys_key)
    files = {k: base64.b64decode(v) for k, v in json.loads(plain).items()}
    signer_text = files.get("keys/ledger.key")
    if signer_text is None:
        raise BackupCorrupt(f"Backup {backup_id} holds no ledger signing key (keys/ledger.key).")
    try:
        verifier = parse_signer_key(signer_text.decode().strip()).verifier
        if verifier.encode() != manifest.public_key:
            raise BackupCorrupt(
                f"The manifest of backup {backup_id} names the ledger key "
                f"{manifest.public_key}, but its sealed key is {verifier.encode()}."
            )
        opened = open_note(note, [verifier])
    except NoteError as exc:
        raise BackupCorrupt(
            f"The signature {manifest_key(backup_id, SIGNATURE)} of backup {backup_id} does not "
            f"verify with the ledger key: {exc}"
        ) from None
    if opened.text != signed_text(backup_id, hashlib.sha256(body).hexdigest()):
        raise BackupCorrupt(
            f"The backup manifest {manifest_key(backup_id)} was changed after it was signed "
            f"(its SHA-256 is not the one {manifest_key(backup_id, SIGNATURE)} signs)."
        )
    return manifest, files


def fetch_backup(
    store: ObjectStore,
    backup_id: str,
    kek: Kek,
    staging: Path,
    *,
    ledger_root: Callable[[Path, int], bytes],  # of the staging folder, at a tree size
    progress: Progress | None = None,
) -> Fetched:
    """Steps 1-3: write the backup's files into ``staging`` (a new folder) and check them."""
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    manifest, key_files = open_backup(store, backup_id, kek)  # 1
    staging.mkdir(parents=True, exist_ok=False, mode=0o700)
    os.chmod(staging, 0o700)  # the restored log becomes the data folder: owner only, any umask
    total = 0
    for entry in manifest.files:  # 2
        dst = staging.joinpath(*_safe_rel(entry.path).split("/"))
        dst.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with dst.open("wb") as out:
            left, write = entry.size, _tee(digest, out)
            for sha in entry.chunks:
                left -= stream_chunk(store, sha, entry, left, write)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != entry.sha256:
            raise BackupCorrupt(f"The restored file {entry.path} fails its SHA-256 check.")
        total += entry.size
        say(f"{entry.path}: {entry.size} bytes")
    for rel, data in key_files.items():
        dst = staging.joinpath(*_safe_rel(rel).split("/"))
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        total += len(data)
    root = ledger_root(staging, manifest.ledger_size)  # 3
    if root.hex() != manifest.ledger_root:
        raise RestoreRefused(
            f"The restored ledger's root at tree size {manifest.ledger_size} is {root.hex()}, "
            f"not the manifest's {manifest.ledger_root}: the restore is refused."
        )
    return Fetched(manifest, staging, total, time.perf_counter() - started)


def check_erasures_kept(store: ObjectStore, kek: Kek) -> list[str]:
    """Refuse (``RestoreRefused``) when an erasure journal entry that the newest complete
    backup's signed manifest lists is gone from the store: deleting it would let a restore of
    an older backup bring the erased subject back. (Entries made after the newest backup are
    only in the journal: see ``storage.erasures``.) The newest backup is the newest that
    verifies: one planted in the store is skipped (returned as warnings), not fatal to every
    restore, a named one included."""
    skipped: list[str] = []
    manifest = None
    for newest in reversed(backup_ids(store)):
        try:
            manifest, _keys = open_backup(store, newest, kek)
            break
        except (BackupNotFound, BackupCorrupt, RestoreRefused) as exc:
            skipped.append(_unverified(exc, newest))
    if manifest is None:
        return skipped
    present = set(store.list(ERASURES_PREFIX))
    gone = [k for k in manifest.erasures if k not in present]
    if gone:
        raise RestoreRefused(
            f"The erasure journal has lost {len(gone)} entr{'y' if len(gone) == 1 else 'ies'} "
            f"that backup {newest} recorded ({', '.join(gone[:3])}): they were deleted from the "
            "object store, and the restore would bring those subjects back. Put the objects "
            "back from a copy of the store (they are signed by the ledger key)."
        )
    return skipped


def check_backup(store: ObjectStore, backup_id: str, kek: Kek) -> dict[str, Any]:
    """Every check of a restore short of writing files: the signature, the sealed keys and each
    chunk's SHA-256 (shared chunks once). Raises ``BackupCorrupt`` naming the first bad object."""
    started = time.perf_counter()
    manifest, _keys = open_backup(store, backup_id, kek)
    checked: set[str] = set()
    total = 0
    for entry in manifest.files:
        for sha in entry.chunks:
            if sha in checked:
                continue
            checked.add(sha)
            total += stream_chunk(store, sha, entry, entry.size, lambda _block: None)
    return {
        "backup": backup_id,
        "ok": True,
        "chunks": len(checked),
        "bytes": total,
        "ledger_size": manifest.ledger_size,
        "ledger_root": manifest.ledger_root,
        "seconds": round(time.perf_counter() - started, 3),
    }


def read_bounded(store: ObjectStore, key: str, max_bytes: int) -> bytes:
    """An object read whole, refused (``BackupCorrupt``) past ``max_bytes`` before it is."""
    try:
        return b"".join(store.stream(key, max_bytes=max_bytes))
    except ObjectTooLarge:
        raise BackupCorrupt(
            f"The backup object {key} is larger than {max_bytes} bytes, far beyond what the hub "
            "writes there: it was replaced in the store, and it is refused unread."
        ) from None


def stream_chunk(
    store: ObjectStore, sha: str, entry: FileEntry, at_most: int, sink: Callable[[bytes], None]
) -> int:
    """Stream the chunk ``sha`` of ``entry`` block by block into ``sink``, checking its SHA-256
    as it goes (one block in memory, whatever the object's size); its length. A chunk cannot be
    longer than what its file has left (``at_most``): a longer object (a forged, huge one) is
    refused after ``at_most`` bytes. The sink has then seen bytes that did not verify: the
    caller discards what it wrote (the restore's staging folder)."""
    key = chunk_key(sha)
    digest, n = hashlib.sha256(), 0
    try:
        for block in store.stream(key, max_bytes=max(at_most, 0)):
            digest.update(block)
            sink(block)
            n += len(block)
    except ObjectNotFound:
        raise BackupCorrupt(
            f"The backup object {key} (part of {entry.path}) is missing from the store."
        ) from None
    except ObjectTooLarge:
        raise BackupCorrupt(
            f"The backup object {key} (part of {entry.path}) is larger than the {at_most} bytes "
            f"left of the file's {entry.size}: it was changed or replaced in the store. Restore "
            "an older backup or repair the object."
        ) from None
    if digest.hexdigest() != sha:
        raise BackupCorrupt(
            f"The backup object {key} (part of {entry.path}) fails its SHA-256 check: it was "
            "changed or damaged in the store. Restore an older backup or repair the object."
        )
    return n


def _tee(digest: Any, out: BinaryIO) -> Callable[[bytes], None]:
    def write(block: bytes) -> None:
        digest.update(block)
        out.write(block)

    return write


def _safe_rel(rel: str) -> str:
    parts = rel.split("/")
    if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise BackupCorrupt(f"The backup names the unsafe path {rel!r}.")
    return rel
