"""A small JSON file the hub writes for itself, MAC'd under a key held outside it.

    file = MAC (64 hex digits) "\\n" body
    body = JSON
    MAC  = HMAC-SHA256(key, label + body)

Written as a temporary file, fsynced, renamed over the old one: a reader sees the old file or
the new one, never a torn one (after a crash too). Used by the erasure index and the keyring
anchor (``governance.erasure_index``, ``governance.keyring_anchor``).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any


def mac(key: bytes, label: bytes, body: bytes) -> bytes:
    return hmac.new(key, label + body, hashlib.sha256).hexdigest().encode()


def read(path: Path, key: bytes, label: bytes) -> tuple[Any, str | None]:
    """The file's JSON value, or None and why not: ``None, None`` when there is no file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror})"
    got, sep, body = raw.partition(b"\n")
    if not sep or not hmac.compare_digest(got, mac(key, label, body)):
        return None, "fails its MAC (edited, or not written by this hub)"
    try:
        return json.loads(body), None
    except ValueError:
        return None, "is not JSON"


def write(path: Path, key: bytes, label: bytes, fields: Any) -> None:
    """Write ``fields`` with their MAC: a temporary file, fsync, rename."""
    body = json.dumps(fields, separators=(",", ":")).encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(mac(key, label, body) + b"\n" + body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
