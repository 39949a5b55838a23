"""The analyst-query reader of the chDB views: a child process that runs one guarded query on a
snapshot of the store's files, so that the query never holds the writer's chDB session.

Why a process: chDB allows one session per process and deadlocks on concurrent queries of that
session, so inside the hub's process a query and every tenant's projection writes take turns
(s19 red team finding 3: a 3.45 s query held another tenant's write 3.04 s). A second process
cannot open the live folder (ClickHouse locks ``<path>/status``), and one that could would not
see parts written after it loaded; so ``ChdbViewStore`` hard-links the folder's parts into a
snapshot (``snapshot``, under its write lock: a step boundary, so never half a batch) and this
process opens the snapshot, runs the SQL and closes it; the parent deletes the snapshot after
the answer (erased or expired values linked by it live no longer than the query).

This module imports nothing of the hub (it runs as a script): the parent sends SQL already
rewritten by ``core.sqlguard`` with its bounds (``readonly = 1``, time, memory, rows) in its
SETTINGS; this process adds no scope of its own and trusts only its parent's pipe.

Protocol on stdin/stdout, one request at a time: a request is a 4-byte big-endian length and a
JSON object ``{"path": snapshot folder, "sql": text}``; the answer is one status byte (``A``:
an Arrow IPC stream follows, ``E``: UTF-8 error text follows), a 8-byte length and the bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
from typing import BinaryIO

# the one part of a chDB folder never linked: ClickHouse flocks it, and a hard link shares the
# lock (the reader's open then fails with "Cannot lock file")
_SKIP_FILES = frozenset({"status"})


def snapshot(src: str, dst: str) -> int:
    """Hard-link every committed part of chDB folder ``src`` into new folder ``dst`` (same file
    system); return the number of files linked. A part (a folder with ``checksums.txt``) is
    immutable once renamed into place, so a link is the part as committed; every other file
    (metadata, mutation entries: small) is copied, so nothing the reader's engine rewrites can
    reach the live store. Left out: ``status`` (the lock), ``tmp*`` folders (a part or merge
    being written: not committed) and ``detached`` parts. A file that vanishes while walked
    belongs to an outdated part removed by the cleanup after a merge; the part covering it is
    linked, and ClickHouse sets the partial one aside at load."""
    linked = 0
    os.mkdir(dst, 0o700)
    for root, dirs, files in os.walk(src, followlinks=False):
        rel = os.path.relpath(root, src)
        out = dst if rel == "." else os.path.join(dst, rel)
        keep = []
        for d in dirs:
            here = os.path.join(root, d)
            if d.startswith("tmp") or d == "detached":
                continue
            if os.path.islink(here):  # data/<db>/<table> -> ../../store/...: relative
                os.symlink(os.readlink(here), os.path.join(out, d))
                continue
            os.mkdir(os.path.join(out, d), 0o700)
            keep.append(d)
        dirs[:] = keep
        part = "checksums.txt" in files
        for f in files:
            if rel == "." and f in _SKIP_FILES:
                continue
            here = os.path.join(root, f)
            try:
                if os.path.islink(here):
                    os.symlink(os.readlink(here), os.path.join(out, f))
                elif part:
                    os.link(here, os.path.join(out, f))
                    linked += 1
                else:
                    shutil.copyfile(here, os.path.join(out, f))
            except FileNotFoundError:
                continue
    return linked


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _answer(out: BinaryIO, status: bytes, payload: bytes) -> None:
    out.write(status + struct.pack(">Q", len(payload)) + payload)
    out.flush()


def serve(inp: BinaryIO, out: BinaryIO) -> None:
    import pyarrow  # noqa: F401  - before chDB, or the process aborts (STACK-NOTES)
    from chdb import session

    while True:
        head = _read_exact(inp, 4)
        if head is None:
            return  # the parent closed the pipe: done
        body = _read_exact(inp, struct.unpack(">I", head)[0])
        if body is None:
            return
        req = json.loads(body)
        try:
            sess = session.Session(req["path"])  # type: ignore[no-untyped-call]
        except Exception as exc:
            _answer(out, b"E", f"the reader could not open the snapshot: {exc}".encode())
            continue
        try:
            res = sess.query(req["sql"], "ArrowStream")  # type: ignore[no-untyped-call]
            _answer(out, b"A", res.bytes())
        except Exception as exc:  # chDB's own error text: the parent translates it
            _answer(out, b"E", str(exc).encode("utf-8", "replace"))
        finally:
            sess.close()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    # the protocol owns stdout: anything chDB prints goes to stderr instead
    proto = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(sys.stdin.buffer, proto)
