"""The backup witness: which backups exist, kept by the operator beside the KEK, not in the store.

A restore without a named backup takes the newest one whose ``manifest.sig`` verifies. Whoever
can write the object store cannot forge a backup (the signature, the sealed keys), but can delete
the newest ``manifest.sig``: the restore would then silently take an older backup, a rollback
that drops records, erasures and key revocations made since. The store cannot vouch for what is
missing from it, and the data folder is what a restore replaces, so the witness lives with the
KEK, the one thing the operator already keeps apart from both (``<KEK file>.backups``).

Format: one JSON line per backup created, oldest first: ``id``, ``created_at_ms``,
``ledger_size``, ``manifest_sha256``, and ``mac``: HMAC-SHA256, under a key derived from the
KEK, of the line's other fields and the previous line's ``mac`` (a chain: a line changed,
reordered or inserted without the KEK fails, naming the file). Truncating the file is not
detectable from the file alone; it sits where the KEK sits, so whoever can truncate it can also
take the KEK.

Restore (``check_not_rolled_back``): the witnessed backups that match the restore's bounds
(ledger size, time) are compared with the store's choice; when a newer witnessed one is not a
complete backup in the store, the restore is refused naming it, unless the operator accepts the
older backup explicitly (``--allow-older``); a missing witness file is reported as a warning
(the restore cannot tell), never silently.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path

from storage.backup import BackupCorrupt, BackupError, Kek, RestoreRefused

SUFFIX = ".backups"
_GENESIS = "0" * 64


@dataclass(frozen=True)
class Witnessed:
    id: str
    created_at_ms: int
    ledger_size: int
    manifest_sha256: str


def witness_path(kek: Kek) -> Path:
    """Where the witness of backups sealed under ``kek`` lives: beside its file."""
    return Path(kek.source + SUFFIX)


def _mac(kek: Kek, prev: str, w: Witnessed) -> str:
    key = hashlib.sha256(b"hub-backup-witness\x00" + kek.key).digest()
    body = f"{prev}|{w.id}|{w.created_at_ms}|{w.ledger_size}|{w.manifest_sha256}"
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def read_witness(kek: Kek, path: Path | None = None) -> list[Witnessed] | None:
    """The witnessed backups, oldest first; None when there is no witness file. Raises
    ``BackupCorrupt`` naming the file and line when a line fails its MAC."""
    path = path or witness_path(kek)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BackupError(f"Cannot read the backup witness {path}: {exc.strerror}.") from exc
    out, prev = [], _GENESIS
    for n, line in enumerate(lines, 1):
        try:
            d = json.loads(line)
            w = Witnessed(
                str(d["id"]), int(d["created_at_ms"]), int(d["ledger_size"]), str(d["sha256"])
            )
            mac = str(d["mac"])
        except (ValueError, KeyError, TypeError) as exc:
            raise BackupCorrupt(
                f"Line {n} of the backup witness {path} is not readable ({exc}); it was changed."
            ) from None
        if not hmac.compare_digest(mac, _mac(kek, prev, w)):
            raise BackupCorrupt(
                f"Line {n} of the backup witness {path} (backup {w.id}) fails its MAC under the "
                f"KEK {kek.source}: the file was changed, or belongs to another KEK."
            )
        out.append(w)
        prev = mac
    return out


def add_to_witness(kek: Kek, w: Witnessed, path: Path | None = None) -> Path:
    """Append ``w`` to the witness (created mode 0600 beside the KEK); fsynced."""
    path = path or witness_path(kek)
    prev = _GENESIS
    try:
        last = path.read_text().splitlines()[-1:]
    except FileNotFoundError:
        last = []
    if last:
        read_witness(kek, path)  # never extend a chain that does not verify
        prev = str(json.loads(last[0])["mac"])
    line = {
        "id": w.id,
        "created_at_ms": w.created_at_ms,
        "ledger_size": w.ledger_size,
        "sha256": w.manifest_sha256,
        "mac": _mac(kek, prev, w),
    }
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(json.dumps(line, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise BackupError(
            f"Backup {w.id} is complete in the store, but its witness could not be written to "
            f"{path} ({exc.strerror}): a restore cannot tell whether it was removed. Make the "
            "folder of the KEK file writable for backups, or keep the witness by hand."
        ) from exc
    return path


def check_not_rolled_back(
    kek: Kek,
    chosen: str,
    complete: list[str],
    *,
    at_size: int | None,
    at_time_ms: int | None,
    allow_older: bool,
    path: Path | None = None,
) -> str | None:
    """Refuse (``RestoreRefused``) restoring ``chosen`` when the witness records a newer backup
    within the same bounds that ``complete`` (the store's verified backups) lacks, unless
    ``allow_older``. Returns a warning to show (a missing witness, an older backup accepted),
    or None."""
    path = path or witness_path(kek)
    seen = read_witness(kek, path)
    if seen is None:
        return (
            f"WARNING: no backup witness at {path}: this restore cannot tell whether a newer "
            "backup was removed from the store (its newest complete one was taken)."
        )
    fits = [
        w
        for w in seen
        if (at_size is None or w.ledger_size <= at_size)
        and (at_time_ms is None or w.created_at_ms <= at_time_ms)
    ]
    newest = max(fits, key=lambda w: w.id, default=None)
    if newest is None or newest.id <= chosen:
        return None
    if newest.id in complete:  # cannot happen: the choice is the newest complete one
        return None
    what = (
        f"The backup witness {path} records backup {newest.id} (ledger size "
        f"{newest.ledger_size}), newer than {chosen}, the newest complete backup in the store: "
        f"{newest.id} was removed or its manifest.sig deleted there, and restoring {chosen} "
        "would roll the hub back"
    )
    if not allow_older:
        raise RestoreRefused(
            f"{what}. The restore is refused: repair the store from a copy, or pass "
            f"--allow-older to restore {chosen} knowingly (the restore records it)."
        )
    return f"WARNING: {what}; --allow-older given, restoring {chosen}."


def newer_than_named(kek: Kek, chosen: str, path: Path | None = None) -> str | None:
    """For a restore of a backup the operator named: a warning naming the newest backup the
    witness records after ``chosen`` (the restore rolls the hub back past it), else None. The
    named choice is honoured (a point-in-time restore is legitimate); the warning is shown and
    recorded on the restored ledger's ``backup.restore`` entry, which otherwise named only the
    backup's own size: nothing on the restored hub said that newer history had existed."""
    path = path or witness_path(kek)
    seen = read_witness(kek, path)
    newer = [w for w in seen or [] if w.id > chosen]
    if not newer:
        return None
    last = max(newer, key=lambda w: w.id)
    return (
        f"WARNING: backup {chosen} is older than {len(newer)} backup(s) the witness {path} "
        f"records, the newest {last.id} (ledger size {last.ledger_size}): the restored hub is "
        "rolled back past them."
    )
