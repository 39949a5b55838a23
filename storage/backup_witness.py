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

Erasure lines (``{"kind": "erasure", "subject", "erased_at_ms", "ledger", "mac"}``, the same
chain; ``ledger`` is the erasing hub's ledger key) anchor erasures made after the newest backup,
which the store's erasure journal alone cannot: its writer could delete an entry
(``hub.recovery.journal_erasure`` writes them; a restore re-applies them;
docs/trust-model.md argues the choice).

Restore (``check_not_rolled_back``): the witnessed backups that match the restore's bounds
(ledger size, time) are compared with the store's choice; when a newer witnessed one is not a
complete backup in the store, the restore is refused naming it, unless the operator accepts the
older backup explicitly (``--allow-older``); a missing witness file is reported as a warning
(the restore cannot tell), never silently.
"""

from __future__ import annotations

import fcntl
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


@dataclass(frozen=True)
class WitnessedErasure:
    """An erasure, witnessed when it was made (``hub.recovery.journal_erasure``): the anchor
    of an erasure made after the newest backup, which the store's journal alone cannot be."""

    subject: str
    erased_at_ms: int
    ledger: str  # the erasing hub's ledger verifier key: hubs sharing a KEK share the witness


def _mac(kek: Kek, prev: str, w: Witnessed | WitnessedErasure) -> str:
    key = hashlib.sha256(b"hub-backup-witness\x00" + kek.key).digest()
    if isinstance(w, Witnessed):
        body = f"{prev}|{w.id}|{w.created_at_ms}|{w.ledger_size}|{w.manifest_sha256}"
    else:  # JSON-quoted: a subject holding "|" cannot pose as a backup line's fields
        body = f"{prev}|erasure|{w.erased_at_ms}|{json.dumps(w.ledger)}|{json.dumps(w.subject)}"
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def read_witness(kek: Kek, path: Path | None = None) -> list[Witnessed] | None:
    """The witnessed backups, oldest first; None when there is no witness file. Raises
    ``BackupCorrupt`` naming the file and line when a line fails its MAC."""
    lines = _read(kek, path or witness_path(kek))
    return None if lines is None else [w for w in lines if isinstance(w, Witnessed)]


def witnessed_erasures(kek: Kek, path: Path | None = None) -> list[WitnessedErasure] | None:
    """The erasures the witness records, oldest first; None when there is no witness file."""
    lines = _read(kek, path or witness_path(kek))
    return None if lines is None else [w for w in lines if isinstance(w, WitnessedErasure)]


def _read(kek: Kek, path: Path) -> list[Witnessed | WitnessedErasure] | None:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BackupError(f"Cannot read the backup witness {path}: {exc.strerror}.") from exc
    return _parse(kek, path, lines)


def _parse(kek: Kek, path: Path, lines: list[str]) -> list[Witnessed | WitnessedErasure]:
    out: list[Witnessed | WitnessedErasure] = []
    prev = _GENESIS
    for n, line in enumerate(lines, 1):
        try:
            d = json.loads(line)
            w: Witnessed | WitnessedErasure
            if d.get("kind") == "erasure":
                w = WitnessedErasure(str(d["subject"]), int(d["erased_at_ms"]), str(d["ledger"]))
            else:
                w = Witnessed(
                    str(d["id"]), int(d["created_at_ms"]), int(d["ledger_size"]), str(d["sha256"])
                )
            mac = str(d["mac"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BackupCorrupt(
                f"Line {n} of the backup witness {path} is not readable ({exc}); it was changed."
            ) from None
        if not hmac.compare_digest(mac, _mac(kek, prev, w)):
            what = f"backup {w.id}" if isinstance(w, Witnessed) else "an erasure"
            raise BackupCorrupt(
                f"Line {n} of the backup witness {path} ({what}) fails its MAC under the "
                f"KEK {kek.source}: the file was changed, or belongs to another KEK."
            )
        out.append(w)
        prev = mac
    return out


def add_to_witness(kek: Kek, w: Witnessed | WitnessedErasure, path: Path | None = None) -> Path:
    """Append ``w`` to the witness (created mode 0600 beside the KEK); fsynced. An exclusive
    lock on the file spans reading the last MAC and appending: a backup and an erasure (two
    processes) appending at once would otherwise chain both lines to the same predecessor,
    and the file would fail its check for good."""
    path = path or witness_path(kek)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "r+") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            lines = f.read().splitlines()
            prev = _GENESIS
            if lines:
                _parse(kek, path, lines)  # never extend a chain that does not verify
                prev = str(json.loads(lines[-1])["mac"])
            line: dict[str, object]
            if isinstance(w, Witnessed):
                line = {
                    "id": w.id,
                    "created_at_ms": w.created_at_ms,
                    "ledger_size": w.ledger_size,
                    "sha256": w.manifest_sha256,
                }
            else:
                line = {
                    "kind": "erasure",
                    "subject": w.subject,
                    "erased_at_ms": w.erased_at_ms,
                    "ledger": w.ledger,
                }
            line["mac"] = _mac(kek, prev, w)
            f.write(json.dumps(line, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        what = (
            f"Backup {w.id} is complete in the store, but its witness"
            if isinstance(w, Witnessed)
            else f"The erasure of {w.subject!r} is done, but its witness line"
        )
        raise BackupError(
            f"{what} could not be written to {path} ({exc.strerror}): a restore cannot tell "
            "whether it was removed. Make the folder of the KEK file writable for backups, or "
            "keep the witness by hand."
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
