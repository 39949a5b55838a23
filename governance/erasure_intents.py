"""Erasures begun and not yet recorded: ``Eraser.erase``'s intent, kept in the data folder.

An erasure destroys the subject's keys (its step 2) before it scrubs the views, deletes the
derived ML rows and records itself on the ledger (steps 3-4). A process killed in between
(``kill -9``, the OOM killer, a lost node) left the keys destroyed, the views holding the
subject's plaintext and nothing on the ledger, and nothing told anyone to run the erasure again.
So the eraser writes its intent first (``begin``: one file per subject and scope, mode 0600,
fsynced with its folder) and removes it once the erasure is recorded (``done``); every open
finds what is left (``left``) and completes it (``Eraser.complete_interrupted``). Under leader
election (HA replicas sharing the data folder) only the lease's holder completes intents, inside
the lease's fence, and the leader does so again on each election
(``hub.bootstrap.complete_interrupted_erasures``): one completion, one ledger entry.

A file holds the subject id, the officer's tenant scope, the reason, the actor and the keys the
plan destroys: nothing the ledger entry it becomes does not show.

An intent is also there while its erasure is still running, in this process or another one
sharing the folder: the eraser holds an exclusive ``flock`` on the file from ``begin`` to
``done`` (taken on the temporary file before it is renamed into place, so the lock moves with
the file), and ``left`` returns only intents it could lock itself (their erasure is no longer
running: the process died, or failed), holding that lock until ``drop``, ``done`` or
``release``. Without it an open or an election during a live erasure completed it a second time.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from core.ports.keyfiles import private_dir, write_private


@dataclass(frozen=True)
class Intent:
    """An erasure as it was decided: who, why, and which keys its plan destroys."""

    subject: str
    tenant_scope: str | None
    reason: str
    actor: str
    actor_tenant: str
    tenants: tuple[str, ...]
    legacy: bool
    key_existed: bool
    begun_at_ms: int

    @classmethod
    def decode(cls, data: bytes) -> Intent:
        fields = json.loads(data)
        fields["tenants"] = tuple(str(t) for t in fields["tenants"])
        intent = cls(**fields)
        if not isinstance(intent.subject, str) or not isinstance(intent.reason, str):
            raise ValueError("subject and reason must be strings")
        return intent


class ErasureIntents:
    """The intents left in ``folder`` (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._held: dict[Path, int] = {}  # the intents this process holds the lock of
        self._lock = threading.Lock()

    def _path(self, subject: str, tenant_scope: str | None) -> Path:
        name = hashlib.sha256(json.dumps([subject, tenant_scope]).encode()).hexdigest()[:32]
        return self.folder / f"{name}.json"

    def begin(self, intent: Intent) -> None:
        """Write ``intent`` durably (replacing one of the same subject and scope)."""
        private_dir(self.folder)
        path = self._path(intent.subject, intent.tenant_scope)
        tmp = path.with_suffix(".tmp")
        write_private(tmp, json.dumps(asdict(intent), sort_keys=True).encode())
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
            fcntl.flock(fd, fcntl.LOCK_EX)  # running: no one else's to complete
            os.replace(tmp, path)
        except BaseException:
            os.close(fd)
            raise
        self._hold(path, fd)
        self._sync_folder()

    def done(self, subject: str, tenant_scope: str | None) -> None:
        """The erasure is recorded: forget its intent."""
        self.drop(self._path(subject, tenant_scope))

    def release(self, subject: str, tenant_scope: str | None) -> None:
        """The erasure failed in this process: its intent stays, for a later completion."""
        self._unhold(self._path(subject, tenant_scope))

    def left(self) -> list[tuple[Path, Intent | None]]:
        """The intents left behind, oldest file first; None for a file that does not decode.
        An intent whose erasure is running (its lock held, here or in another process) is not
        left behind: it is skipped. Each returned intent is locked until ``drop``."""
        if not self.folder.is_dir():
            return []
        out: list[tuple[Path, Intent | None]] = []
        for path in sorted(self.folder.glob("*.json"), key=_mtime):
            if not self._try_hold(path):
                continue
            try:
                out.append((path, Intent.decode(path.read_bytes())))
            except (OSError, ValueError, TypeError, KeyError):
                out.append((path, None))
        return out

    def drop(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        self._sync_folder()
        self._unhold(path)

    def _try_hold(self, path: Path) -> bool:
        """Lock ``path`` unless its erasure is running (locked) or it is gone."""
        with self._lock:
            if path in self._held:
                return False  # this process's own erasure, running
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # still the file at ``path``: not one its eraser finished and removed meanwhile
            if os.fstat(fd).st_ino != os.stat(path).st_ino:
                raise FileNotFoundError(path)
        except OSError:  # BlockingIOError: running elsewhere; FileNotFoundError: done
            os.close(fd)
            return False
        self._hold(path, fd)
        return True

    def _hold(self, path: Path, fd: int) -> None:
        with self._lock:
            old = self._held.pop(path, None)
            self._held[path] = fd
        if old is not None:
            os.close(old)

    def _unhold(self, path: Path) -> None:
        with self._lock:
            fd = self._held.pop(path, None)
        if fd is not None:
            os.close(fd)  # releases the lock

    def _sync_folder(self) -> None:
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _mtime(path: Path) -> tuple[float, Path]:
    try:
        return (path.stat().st_mtime, path)
    except FileNotFoundError:
        return (0.0, path)
