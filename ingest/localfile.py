"""A file to ingest, opened once and never through a symbolic link.

File ingest reads a file several times (its SHA-256 names the source, then a reader streams it;
an Avro reader reads the header twice). Opening the path again for each read let a file be
swapped for a link, or for another file, between the check and the read: whoever may drop files
into a watched folder could make the hub read any file it can read. ``OpenedFile`` opens the
path once with ``O_NOFOLLOW`` (a link as the last component is refused), checks that what it
opened is a regular file (``fstat``, not the path), and every later read goes through a
duplicate of that one descriptor, so all of them see the same file whatever happens to the name.

``open_dir`` does the same for a folder the watcher moves files into: a link there is refused,
and moves name their destination relative to the opened folder (``dst_dir_fd``), so a folder
replaced by a link later is not followed either.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

from core.errors import InvalidInput

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO swapped in must not block the open
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


class FileUnreadable(InvalidInput):
    """The file as a whole cannot be read in its format (see ``ingest.files``)."""

    code = "file_unreadable"


class NotARegularFile(FileUnreadable):
    """The path is a symbolic link, a folder, a FIFO or a device: file ingest reads none."""


class OpenedFile:
    """One open regular file: ``name`` for messages, ``open()`` for each read from its start.

    MUST be closed (or used as a context manager); the readers ``open()`` returns close their
    own duplicate descriptor and MUST NOT be read at the same time (they share one offset)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.name
        try:
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | _NONBLOCK)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise NotARegularFile(
                    f"{str(path)!r} is a symbolic link, not a file; file ingest does not follow "
                    "links: name or drop the file itself."
                ) from exc
            raise NotARegularFile(f"{str(path)!r} is not a file ({exc.strerror}).") from exc
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise NotARegularFile(f"{str(path)!r} is not a file.")
        if _NONBLOCK:
            os.set_blocking(fd, True)
        self.fd = fd

    def open(self) -> BinaryIO:
        """A buffered reader at the file's start over a duplicate of the one descriptor."""
        os.lseek(self.fd, 0, os.SEEK_SET)
        return os.fdopen(os.dup(self.fd), "rb")

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> OpenedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_dir(parent: int, name: str) -> int:
    """The descriptor of folder ``name`` under the open folder ``parent``, created if missing;
    ``NotARegularFile`` if it is a symbolic link (or not a folder)."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, dir_fd=parent)
    try:
        return os.open(name, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=parent)
    except OSError as exc:
        raise NotARegularFile(
            f"The watched folder's {name!r} is a symbolic link or not a folder ({exc.strerror}): "
            f"the watcher moves files only into a real folder; remove it and let the watcher "
            "create it."
        ) from exc
