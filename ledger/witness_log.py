"""The ledger's OUTSIDE witness: an append-only file of every signed checkpoint, kept away from
the data folder, so a rolled-back folder cannot roll its witness back with it.

The write-once witness folder (``ledger.witness``, ``<data>/witness``) lives in the data folder:
whoever can write that folder can copy back an older genuine copy of it (log, ledger, witness,
verified note), or roll the ledger back and delete the witness copies above it, and every local
check passes. A transparency log's answer is a witness the log's operator does not hold; here,
a file the data folder's writer does not reach (``HUB_LEDGER_WITNESS_DIR``; default
``<data>-witness`` beside the data folder, the way the object folder defaults; never inside it).

Format: one record a line, ``checkpoint <base64 note>`` or ``rollback <base64 note>``, each a
note signed with the ledger's key, in a file named after that key (``ledger-<id>.witness``: a
new data folder has a new key and starts a new file, so ``rm -rf data; make run`` just works).
Lines are appended (``O_APPEND`` under ``flock``, fsync'd): several processes may share a file
(HA), and their checkpoints are fenced, so sizes only grow in append order.

Rules (``check_ledger``, at every start-up in ``hub.bootstrap.build_ledger`` and in
``hub ledger verify``):
1. The *head* is the largest checkpoint after the last rollback record (or that record's ``to``
   size and root when no checkpoint follows it).
2. The ledger MUST hold at least the head's size and have the head's root at that size;
   otherwise it was rolled back (smaller) or rewritten/spliced (same size, other root), and the
   hub refuses, naming both sizes and roots.
3. A legitimate rollback (``hub backup restore`` of an older backup) is acknowledged by a
   ``rollback`` record, ``from N <root> to M <root>``, signed with the ledger key by the restore
   after it verified the restored ledger (and recorded ``backup.restore`` on it naming N). A
   silent rollback has no such record; forging one needs the signing key.
4. A record that does not verify with the ledger's key, or names another origin, is a finding
   (the file was edited); a last line without its newline is a crash's torn write and ignored.
5. A rollback record's ``from`` is the head in force before it (``_check_rollbacks``): a genuine
   record appended again later (a replay, all an append-only witness file allows) is a finding.

Start-up reads only the file's tail (``TAIL_BYTES``, each record in it verified): the head is the
last record (sizes grow), and a rollback above the tail is listed by full runs only;
``hub ledger verify --full`` reads it all and checks every checkpoint since the last rollback.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from audit.errors import AuditError
from audit.note import VerifierKey, open_checkpoint, open_note
from core.errors import ConfigError, HubError
from core.ports.keyfiles import private_dir
from core.ports.ledgerstore import LedgerStore
from core.ports.objectstore import ObjectStore
from core.ports.signer import Signer
from ledger.witness import key_size

CHECKPOINT = "checkpoint"
ROLLBACK = "rollback"
ROLLBACK_HEADER = "hub-ledger-rollback/1"
TAIL_BYTES = 8 * 1024  # about 20 records: the head is the last one (sizes grow)


class WitnessLogError(HubError):
    """The outside witness cannot be read or written."""


@dataclass(frozen=True)
class Record:
    kind: str  # CHECKPOINT or ROLLBACK
    size: int  # a checkpoint's size; a rollback's ``to`` size
    root: bytes
    offset: int  # byte offset of the line in the file (what a finding names)
    from_size: int = 0  # a rollback's
    from_root: bytes = b""
    time_ms: int = 0
    reason: str = ""


@dataclass(frozen=True)
class Head:
    size: int
    root: bytes
    rollbacks: tuple[Record, ...]  # the rollback records read (acknowledged restores)
    checkpoints: tuple[Record, ...]  # the checkpoint records since the last rollback


def outside_dir(data_dir: Path, configured: Path | None) -> Path:
    """The outside witness folder: ``configured``, else ``<data>-witness`` beside the data
    folder. Refused inside the data folder (what it protects against is that folder's writer)."""
    path = (configured or data_dir.parent / f"{data_dir.name}-witness").expanduser()
    root, resolved = data_dir.expanduser().resolve(), path.resolve()
    if resolved == root or root in resolved.parents:
        raise ConfigError(
            f"HUB_LEDGER_WITNESS_DIR {path} lies inside the data folder {root}: whoever can roll "
            "that folder back would roll its witness back with it; set it elsewhere."
        )
    return path


def log_path(folder: Path, key: VerifierKey) -> Path:
    """The file of the ledger signed with ``key`` in the outside witness ``folder``."""
    digest = hashlib.sha256(key.encode().encode()).hexdigest()[:16]
    return folder / f"ledger-{digest}.witness"


def rollback_text(
    origin: str,
    from_size: int,
    from_root: bytes,
    to_size: int,
    to_root: bytes,
    time_ms: int,
    reason: str,
) -> str:
    reason = " ".join(reason.split())  # one line
    b64 = base64.b64encode
    return (
        f"{ROLLBACK_HEADER}\n{origin}\nfrom {from_size} {b64(from_root).decode()}\n"
        f"to {to_size} {b64(to_root).decode()}\ntime {time_ms}\nreason {reason}\n"
    )


class WitnessLog:
    """The append-only file (module docstring) of one ledger key."""

    def __init__(self, path: Path, keys: Sequence[VerifierKey], origin: str) -> None:
        self.path = path
        self.keys = list(keys)
        self.origin = origin

    # -- writing
    def append(self, kind: str, note: bytes) -> None:
        line = f"{kind} {base64.b64encode(note).decode()}\n".encode()
        try:
            private_dir(self.path.parent)  # 0700 whatever the umask: the rollback check's anchor
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise WitnessLogError(f"cannot open the outside witness {self.path}: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # several processes (HA) share one file
            end = os.lseek(fd, 0, os.SEEK_END)
            if end and os.pread(fd, 1, end - 1) != b"\n":
                line = b"\n" + line  # a crash's torn line stays a line of its own
            os.write(fd, line)
            os.fsync(fd)
        except OSError as exc:
            raise WitnessLogError(
                f"cannot append to the outside witness {self.path}: {exc}"
            ) from None
        finally:
            os.close(fd)

    def append_rollback(
        self,
        signer: Signer,
        from_size: int,
        from_root: bytes,
        to_size: int,
        to_root: bytes,
        time_ms: int,
        reason: str,
    ) -> None:
        text = rollback_text(self.origin, from_size, from_root, to_size, to_root, time_ms, reason)
        self.append(ROLLBACK, signer.sign_note(text))

    # -- reading
    def _lines(self, *, full: bool) -> Iterator[tuple[int, bytes]]:
        try:
            with self.path.open("rb") as f:
                size = f.seek(0, os.SEEK_END)
                start = 0 if full else max(0, size - TAIL_BYTES)
                f.seek(start)
                data = f.read()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise WitnessLogError(f"cannot read the outside witness {self.path}: {exc}") from None
        offset = start
        if start:  # the first line of the tail is partial
            cut = data.find(b"\n") + 1
            data, offset = data[cut:], start + cut
        for line in data.split(b"\n")[:-1]:  # the last piece is "" or a torn line
            if line:
                yield offset, line
            offset += len(line) + 1

    def first(self) -> Record | None:
        """The file's first record (where the witness begins), or None when it holds none."""
        try:
            with self.path.open("rb") as f:
                line = f.readline(TAIL_BYTES * 8)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise WitnessLogError(f"cannot read the outside witness {self.path}: {exc}") from None
        if not line.endswith(b"\n"):  # empty, or a first record torn by a crash
            return None
        return self._parse(0, line[:-1])

    def records(self, *, full: bool = False) -> list[Record]:
        out = []
        for offset, line in self._lines(full=full):
            out.append(self._parse(offset, line))
        return out

    def _parse(self, offset: int, line: bytes) -> Record:
        where = f"the outside witness {self.path}, byte {offset}"
        kind, _, b64 = line.decode("ascii", "replace").partition(" ")
        try:
            note = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise WitnessLogError(f"{where}: not a witness record (edited?).") from None
        try:
            if kind == CHECKPOINT:
                cp, _ = open_checkpoint(note, self.keys)
                if cp.origin != self.origin:
                    raise WitnessLogError(f"{where}: a checkpoint of origin {cp.origin!r}.")
                return Record(
                    CHECKPOINT, cp.size, cp.root, offset, time_ms=(cp.time_micros or 0) // 1000
                )
            if kind == ROLLBACK:
                text = open_note(note, self.keys).text
                return self._rollback(text, offset, where)
        except AuditError as exc:
            raise WitnessLogError(
                f"{where}: the {kind} does not verify with the ledger's key ({exc}): the "
                "witness file was edited."
            ) from None
        raise WitnessLogError(f"{where}: unknown record kind {kind[:20]!r} (edited?).")

    def _rollback(self, text: str, offset: int, where: str) -> Record:
        lines = text.split("\n")
        try:
            head, origin, frm, to, at, reason = lines[:6]
            _, fs, fr = frm.split(" ")
            _, ts, tr = to.split(" ")
            ok = head == ROLLBACK_HEADER and frm.startswith("from ") and to.startswith("to ")
            ok = ok and at.startswith("time ") and reason.startswith("reason ")
            if not ok or origin != self.origin:
                raise ValueError
            return Record(
                ROLLBACK,
                int(ts),
                base64.b64decode(tr, validate=True),
                offset,
                from_size=int(fs),
                from_root=base64.b64decode(fr, validate=True),
                time_ms=int(at[5:]),
                reason=reason[7:],
            )
        except (ValueError, binascii.Error):
            raise WitnessLogError(f"{where}: a malformed rollback record.") from None

    def head(self, *, full: bool = False) -> Head | None:
        """Rule 1 over the file's tail (or all of it); None when it holds no record."""
        records = self.records(full=full)
        if not records:
            return None
        self._check_rollbacks(records)
        last = max((i for i, r in enumerate(records) if r.kind == ROLLBACK), default=-1)
        since = [r for r in records[last + 1 :] if r.kind == CHECKPOINT]
        rollbacks = tuple(r for r in records if r.kind == ROLLBACK)
        top = max(since, key=lambda r: r.size, default=None)
        if top is None:
            if last < 0:
                return None
            top = records[last]
        return Head(top.size, top.root, rollbacks, tuple(since))

    def _check_rollbacks(self, records: list[Record]) -> None:
        """Rule 5: a rollback acknowledges the head in force when the restore made it (its
        ``from`` is that head's size and root), so a genuine record copied to the end of the
        file (a replay: appending is all an append-only witness allows) does not acknowledge
        a later rollback. Exact where the records read start at the file's start or at an
        earlier rollback; over a tail that starts after the head (its checkpoints above the
        tail), only a ``from`` below the head seen is known to be wrong."""
        head: tuple[int, bytes] | None = None
        exact = records[0].offset == 0
        for r in records:
            if r.kind == CHECKPOINT:
                if head is None or r.size >= head[0]:
                    head = (r.size, r.root)
                continue
            if head is not None:
                size, root = head
                wrong = (r.from_size, r.from_root) != head if exact else r.from_size < size
                if wrong or (r.from_size == size and r.from_root != root):
                    raise WitnessLogError(
                        f"the outside witness {self.path}, byte {r.offset}: a rollback record "
                        f"from size {r.from_size} (root {_hex(r.from_root)}) to size {r.size}, "
                        f"but the witnessed head before it is size {size} (root {_hex(root)}): "
                        "a rollback record replayed from earlier in the file (the file was "
                        "edited); it acknowledges no rollback."
                    )
            head, exact = (r.size, r.root), True


def _hex(root: bytes) -> str:
    return root.hex()


def check_ledger(
    store: LedgerStore, wlog: WitnessLog, *, full: bool = False
) -> tuple[str | None, Head | None]:
    """Rule 2: the problem (naming both sizes and roots), or None; and the head read."""
    head = wlog.head(full=full)
    if head is None:
        return None, None
    try:
        return _check(store, wlog, head, full), head
    except (IndexError, AuditError, HubError) as exc:  # a damaged store: verify names where
        return f"the ledger's root cannot be computed ({exc}): the store is damaged.", head


def _check(store: LedgerStore, wlog: WitnessLog, head: Head, full: bool) -> str | None:
    size = store.tree_size()
    ours = store.root(size) if size else b""
    if size < head.size:
        return (
            f"the ledger holds {size} entries (root {_hex(ours)}), fewer than the checkpoint of "
            f"size {head.size} (root {_hex(head.root)}) the outside witness {wlog.path} "
            "recorded: the ledger, or the whole data folder, was rolled back. Restore the "
            "newest backup with `hub backup restore` (an older one is recorded as an "
            "acknowledged rollback), or put the current data folder back."
        )
    pairs = {r.size: r.root for r in head.checkpoints} if full else {}  # retries: once each
    pairs[head.size] = head.root
    for r_size, r_root in sorted(pairs.items()):
        if r_size > size:
            continue
        at = store.root(r_size) if r_size else b""
        if at != r_root:
            return (
                f"the ledger of {size} entries (root {_hex(ours)}) has root {_hex(at)} at size "
                f"{r_size}, but the outside witness {wlog.path} recorded root {_hex(r_root)} "
                "for that size: the ledger is not an extension of the witnessed one (rolled "
                "back and rewritten, or spliced from another copy)."
            )
    return None


class WitnessTee(ObjectStore):
    """The in-folder witness store, each checkpoint copy it takes also appended to the outside
    witness (after the copy is made or found identical: the ledger's retry makes it again)."""

    def __init__(self, inner: ObjectStore, log: WitnessLog, *, append: bool = True) -> None:
        self.inner = inner
        self.log = log
        self.append = append  # False: a ledger the outside witness refused (verify only)
        self.write_once = inner.write_once

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)
        self._outside(key, data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        stored = self.inner.put_if_absent(key, data)
        if stored or self.inner.get(key) == data:
            self._outside(key, data)
        return stored

    def _outside(self, key: str, data: bytes) -> None:
        if self.append and key_size(key) is not None:
            self.log.append(CHECKPOINT, data)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def size(self, key: str) -> int:
        return self.inner.size(key)

    def list(self, prefix: str = "", *, start_after: str = "") -> list[str]:
        return self.inner.list(prefix, start_after=start_after)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


def outside_log(witness: ObjectStore | None) -> WitnessLog | None:
    """The outside witness behind a ledger's witness store, if it has one."""
    return witness.log if isinstance(witness, WitnessTee) else None
