"""LocalObjectStore: the ObjectStore port on a local folder, write-once by default.

Layout: an object ``a/b/c`` is the file ``<root>/a/b/c``. Writes go to a temporary file in the
same folder, are fsynced, then linked into place with ``os.link`` (which fails if the name
exists: atomic create-if-absent, no overwrite window) and made read-only for the owner alone
(0400; folders 0700, whatever the umask: backups, evidence packs and lake files hold every
tenant's records, and were world-readable under the usual umask 022). With
``write_once=False`` (scratch use) ``put`` replaces atomically with ``os.replace``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from core.errors import HubError
from core.ports.keyfiles import private_dir
from core.ports.objectstore import (
    BLOCK_BYTES,
    ObjectExists,
    ObjectImmutable,
    ObjectNotFound,
    ObjectStore,
    check_key,
    folder_after,
    read_bounded,
)


class LocalObjectStore(ObjectStore):
    def __init__(self, root: Path, *, write_once: bool = True) -> None:
        self.root = Path(root)
        self.write_once = write_once

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _write_temp(self, path: Path, data: bytes) -> str:
        private_dir(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o400)
        except BaseException:
            os.unlink(tmp)
            raise
        return tmp

    def put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        try:
            tmp = self._write_temp(path, data)
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
        except OSError as exc:
            raise HubError(
                f"Cannot write object {key!r} under {self.root}: {exc}", code="objectstore_io"
            ) from exc
        return True

    def put(self, key: str, data: bytes) -> None:
        if self.write_once:
            if not self.put_if_absent(key, data):
                raise ObjectExists(
                    f"Object {key!r} already exists in the write-once store {self.root}; "
                    "objects there are never replaced."
                )
            return
        path = self._path(key)
        try:
            os.replace(self._write_temp(path, data), path)
        except OSError as exc:
            raise HubError(f"Cannot write object {key!r}: {exc}", code="objectstore_io") from exc

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(f"No object {key!r} in {self.root}.") from None
        except OSError as exc:
            raise HubError(f"Cannot read object {key!r}: {exc}", code="objectstore_io") from exc

    def stream(self, key: str, *, max_bytes: int, block: int = BLOCK_BYTES) -> Iterator[bytes]:
        try:
            f = self._path(key).open("rb")
        except FileNotFoundError:
            raise ObjectNotFound(f"No object {key!r} in {self.root}.") from None
        except OSError as exc:
            raise HubError(f"Cannot read object {key!r}: {exc}", code="objectstore_io") from exc
        with f:
            yield from read_bounded(f.read, key, max_bytes, block)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise ObjectNotFound(f"No object {key!r} in {self.root}.") from None

    def delete(self, key: str) -> None:
        path = self._path(key)
        if self.write_once:
            raise ObjectImmutable(
                f"Object {key!r} is in the write-once store {self.root}; it cannot be deleted "
                "through the hub."
            )
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise HubError(f"Cannot delete object {key!r}: {exc}", code="objectstore_io") from exc

    def list(self, prefix: str = "", *, start_after: str = "") -> list[str]:
        # Walk only the folder the prefix names (backups list manifests, not every chunk), and
        # with ``start_after`` skip the sub-folders wholly before it without reading them.
        folder = self.root.joinpath(*prefix.split("/")[:-1]) if "/" in prefix else self.root
        if ".." in prefix.split("/") or not folder.is_dir():
            return []
        out = []
        for dirpath, dirs, files in os.walk(folder):
            rel = Path(dirpath).relative_to(self.root)
            base = rel.as_posix() + "/" if rel.parts else ""
            if start_after:
                dirs[:] = [d for d in dirs if folder_after(base + d + "/", start_after)]
            for f in files:
                key = base + f
                if key.startswith(prefix) and key > start_after and not f.startswith(".tmp-"):
                    out.append(key)
        return sorted(out)
