"""LocalModelRegistry: the embedded ModelRegistry. Artifacts are files named by their SHA-256
under a folder (written once, fsynced); versions, metadata and aliases live in one SQLite file."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.errors import Conflict, NotFound
from core.ports.ml import ModelRegistry, StoredModel

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL, version INTEGER NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    metadata TEXT NOT NULL, PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS aliases (
    name TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (name, alias)
);
"""


class LocalModelRegistry(ModelRegistry):
    def __init__(self, folder: Path) -> None:
        self._folder = folder
        (folder / "artifacts").mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            str(folder / "registry.sqlite"), check_same_thread=False, isolation_level=None
        )
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def _path(self, sha256: str) -> Path:
        return self._folder / "artifacts" / sha256

    def put(
        self, name: str, version: int, artifact: bytes, metadata: Mapping[str, Any]
    ) -> StoredModel:
        sha = hashlib.sha256(artifact).hexdigest()
        with self._lock:
            row = self._db.execute(
                "SELECT sha256 FROM versions WHERE name = ? AND version = ?", (name, version)
            ).fetchone()
            if row is not None and row[0] != sha:
                raise Conflict(
                    f"Model {name!r} version {version} is already stored with other bytes "
                    f"(sha256 {row[0][:12]}...): register a new version instead."
                )
            path = self._path(sha)
            if not path.exists():
                tmp = path.with_suffix(".tmp")
                with open(tmp, "wb") as fh:
                    fh.write(artifact)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            meta = json.dumps(dict(metadata), sort_keys=True, default=str)
            self._db.execute(
                "INSERT OR IGNORE INTO versions VALUES (?, ?, ?, ?, ?)",
                (name, version, sha, len(artifact), meta),
            )
        return StoredModel(name, version, sha, len(artifact), dict(metadata))

    def get(self, name: str, version: int, sha256: str | None = None) -> bytes:
        with self._lock:
            row = self._db.execute(
                "SELECT sha256 FROM versions WHERE name = ? AND version = ?", (name, version)
            ).fetchone()
        if row is None:
            raise NotFound(f"Model {name!r} has no stored version {version}: see `hub ml models`.")
        return self._path(row[0]).read_bytes()

    def versions(self, name: str) -> list[StoredModel]:
        with self._lock:
            rows = self._db.execute(
                "SELECT version, sha256, size, metadata FROM versions WHERE name = ? "
                "ORDER BY version",
                (name,),
            ).fetchall()
        return [StoredModel(name, v, s, n, json.loads(m)) for v, s, n, m in rows]

    def set_alias(self, name: str, alias: str, version: int | None) -> None:
        with self._lock:
            if version is None:
                self._db.execute("DELETE FROM aliases WHERE name = ? AND alias = ?", (name, alias))
            else:
                self._db.execute(
                    "INSERT OR REPLACE INTO aliases VALUES (?, ?, ?)", (name, alias, version)
                )

    def aliases(self, name: str) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT alias, version FROM aliases WHERE name = ?", (name,)
            ).fetchall()
        return {a: v for a, v in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()
