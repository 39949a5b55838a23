"""Erasures begun and not yet recorded: ``Eraser.erase``'s intent, kept in the data folder.

An erasure destroys the subject's keys (its step 2) before it scrubs the views, deletes the
derived ML rows and records itself on the ledger (steps 3-4). A process killed in between
(``kill -9``, the OOM killer, a lost node) left the keys destroyed, the views holding the
subject's plaintext and nothing on the ledger, and nothing told anyone to run the erasure again.
So the eraser writes its intent first (``begin``: one file per subject and scope, mode 0600,
fsynced with its folder) and removes it once the erasure is recorded (``done``); every open
finds what is left (``left``) and completes it (``Eraser.complete_interrupted``).

A file holds the subject id, the officer's tenant scope, the reason, the actor and the keys the
plan destroys: nothing the ledger entry it becomes does not show.
"""

from __future__ import annotations

import hashlib
import json
import os
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

    def _path(self, subject: str, tenant_scope: str | None) -> Path:
        name = hashlib.sha256(json.dumps([subject, tenant_scope]).encode()).hexdigest()[:32]
        return self.folder / f"{name}.json"

    def begin(self, intent: Intent) -> None:
        """Write ``intent`` durably (replacing one of the same subject and scope)."""
        private_dir(self.folder)
        path = self._path(intent.subject, intent.tenant_scope)
        tmp = path.with_suffix(".tmp")
        write_private(tmp, json.dumps(asdict(intent), sort_keys=True).encode())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self._sync_folder()

    def done(self, subject: str, tenant_scope: str | None) -> None:
        """The erasure is recorded: forget its intent."""
        self._path(subject, tenant_scope).unlink(missing_ok=True)
        self._sync_folder()

    def left(self) -> list[tuple[Path, Intent | None]]:
        """The intents left behind, oldest file first; None for a file that does not decode."""
        if not self.folder.is_dir():
            return []
        out: list[tuple[Path, Intent | None]] = []
        for path in sorted(self.folder.glob("*.json"), key=lambda p: (p.stat().st_mtime, p)):
            try:
                out.append((path, Intent.decode(path.read_bytes())))
            except (OSError, ValueError, TypeError, KeyError):
                out.append((path, None))
        return out

    def drop(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        self._sync_folder()

    def _sync_folder(self) -> None:
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
