"""Secret files on local disk (ledger signing key, log MAC key, API key pepper): one way to make
and read them.

``read_secret_file(path, what, make)`` creates ``path`` once with ``make()``'s bytes, exclusively
(two processes starting together agree on one file), mode 0600 and fsynced before it is used;
it refuses a file that group or others may read, and returns the file's bytes.

``private_dir(path)`` creates a folder, and every missing folder above it, with mode 0700
whatever the umask: the data folder (the event log and the views hold every tenant's records)
and the local object store's folders (backups, evidence, lake, witness copies) are the owner's
alone, as the key files inside them are.

``write_private(path, data)`` writes a file only its owner may read, whatever the umask: what a
command exports (query results, evidence packs, reports, ledger findings) may hold personal
data or every tenant's rows.
"""

from __future__ import annotations

import os
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path

from core.errors import ConfigError


def private_dir(path: Path) -> None:
    """Create ``path`` and its missing parents with mode 0700 (an existing folder is left as
    it is: its owner chose its mode)."""
    path = Path(path)
    missing = []
    while not path.exists():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:  # another process made it first: theirs is ours
            continue
        os.chmod(folder, 0o700)  # mkdir's mode is cut by the umask: set it exactly


def write_private(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600: into a new file this call alone creates
    beside it (``O_EXCL | O_NOFOLLOW``, mode set exactly whatever the umask), then renamed
    over ``path``. Whatever was at ``path`` is replaced, never written into: a symbolic or hard
    link planted there by someone who can write to the folder leaves its target untouched (an
    open with ``O_TRUNC`` wrote the export into the link's target), and a reader never sees a
    half-written file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode is cut by the umask: set it exactly
        with os.fdopen(fd, "wb") as f:
            fd = -1
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if fd != -1:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise


def read_secret_file(path: Path, what: str, make: Callable[[], bytes]) -> bytes:
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(make())
                f.flush()
                os.fsync(f.fileno())
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"The {what} {path} has mode {mode:o}: other users may read it. Run `chmod 600 {path}`."
        )
    data = path.read_bytes()
    for _ in range(100):  # a writer in another process may not have written it yet
        if data:
            break
        time.sleep(0.01)
        data = path.read_bytes()
    return data
