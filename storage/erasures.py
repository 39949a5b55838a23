"""The erasure journal: every erasure is also written to the object store, write-once, so that
a restore from an older backup never brings an erased data subject back.

A backup made before ``hub erase ACC-1`` still holds ACC-1's data key (sealed in its key ring).
The live hub that recorded the erasure may be gone when the backup is restored, so the proof
that ACC-1 was erased must live where the backups live: ``erasures/<sha256(subject)>.json``
(``{"subject", "erased_at_ms", "reason_ref"}``). A restore lists the journal and erases again
every subject whose key the restored key ring still holds, before it reports success.
The journal names subject ids (account ids), never PII: the same ids the ledger's
``subject.erase`` entries name.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from core.ports.objectstore import ObjectStore

PREFIX = "erasures/"


@dataclass(frozen=True)
class JournalEntry:
    subject: str
    erased_at_ms: int
    audit_offset: int | None = None


def journal_key(subject: str) -> str:
    return f"{PREFIX}{hashlib.sha256(subject.encode()).hexdigest()}.json"


def record_erasure(store: ObjectStore, entry: JournalEntry) -> bool:
    """Write the entry once (a second erasure of the same subject keeps the first); True if new."""
    body = json.dumps(
        {
            "subject": entry.subject,
            "erased_at_ms": entry.erased_at_ms,
            "audit_offset": entry.audit_offset,
        },
        sort_keys=True,
    ).encode()
    return store.put_if_absent(journal_key(entry.subject), body)


def erased_subjects(store: ObjectStore) -> list[JournalEntry]:
    """Every journalled erasure, oldest first."""
    out = []
    for key in store.list(PREFIX):
        d = json.loads(store.get(key))
        offset = d.get("audit_offset")
        out.append(
            JournalEntry(
                str(d["subject"]),
                int(d["erased_at_ms"]),
                None if offset is None else int(offset),
            )
        )
    return sorted(out, key=lambda e: (e.erased_at_ms, e.subject))
