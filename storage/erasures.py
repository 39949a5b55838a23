"""The erasure journal: every erasure is also written to the object store, write-once, so that
a restore from an older backup never brings an erased data subject back.

A backup made before ``hub erase ACC-1`` still holds ACC-1's data key (sealed in its key ring).
The live hub that recorded the erasure may be gone when the backup is restored, so the proof
that ACC-1 was erased must live where the backups live: ``erasures/<sha256(subject)>.json``
(``{"subject", "erased_at_ms", "reason_ref"}``). A restore lists the journal and erases again
every subject whose key the restored key ring still holds, before it reports success. The
journal cannot vouch for an entry deleted from it: erasures made after the newest backup are
also witnessed beside the KEK (``storage.backup_witness``), which the restore reads too.
The journal names subject ids (account ids), never PII: the same ids the ledger's
``subject.erase`` entries name.

Each entry carries a C2SP signed note by the ledger's key over its fields (``note``): whoever
can write the store could otherwise plant an entry, and the restore would destroy that
subject's key (crypto-shredding their data) on the word of the store. ``erased_subjects``
refuses (``ErasureJournalCorrupt``, naming the object) an entry that is unreadable, larger than
any the hub writes, unsigned, signed by another key, or whose note does not match its fields.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from audit.errors import NoteError
from audit.note import VerifierKey, open_note
from core.errors import HubError
from core.ports.objectstore import ObjectNotFound, ObjectStore, ObjectTooLarge

PREFIX = "erasures/"
MAX_ENTRY_BYTES = 64 << 10  # a subject id (at most 1 KiB), two numbers and one signed note


class ErasureJournalCorrupt(HubError):
    code = "erasure_journal_corrupt"
    http_status = 422


@dataclass(frozen=True)
class JournalEntry:
    subject: str
    erased_at_ms: int
    audit_offset: int | None = None


def journal_key(subject: str) -> str:
    return f"{PREFIX}{hashlib.sha256(subject.encode()).hexdigest()}.json"


def signed_text(entry: JournalEntry) -> str:
    """What an entry's note signs (the subject JSON-quoted: one line whatever it holds)."""
    return (
        f"hub-erasure/1\nsubject {json.dumps(entry.subject)}\n"
        f"erased_at_ms {entry.erased_at_ms}\naudit_offset {entry.audit_offset}\n"
    )


def record_erasure(
    store: ObjectStore, entry: JournalEntry, sign_note: Callable[[str], bytes]
) -> bool:
    """Write the entry once, signed with ``sign_note`` (the ledger's signer); a second erasure
    of the same subject keeps the first. True if new."""
    body = json.dumps(
        {
            "subject": entry.subject,
            "erased_at_ms": entry.erased_at_ms,
            "audit_offset": entry.audit_offset,
            "note": sign_note(signed_text(entry)).decode(),
        },
        sort_keys=True,
    ).encode()
    return store.put_if_absent(journal_key(entry.subject), body)


def erased_subjects(store: ObjectStore, verifiers: Iterable[VerifierKey]) -> list[JournalEntry]:
    """Every journalled erasure, oldest first, each verified against ``verifiers`` (the ledger's
    key); ``ErasureJournalCorrupt`` names the first entry that fails."""
    keys = list(verifiers)
    out = []
    for key in store.list(PREFIX):
        try:
            raw = b"".join(store.stream(key, max_bytes=MAX_ENTRY_BYTES))
        except ObjectNotFound:
            continue  # listed, then removed: a missing entry is what the backup witness checks
        except ObjectTooLarge:
            raise _bad(key, f"it is larger than {MAX_ENTRY_BYTES} bytes") from None
        try:
            d = json.loads(raw)
            offset = d.get("audit_offset")
            entry = JournalEntry(
                str(d["subject"]), int(d["erased_at_ms"]), None if offset is None else int(offset)
            )
            note = str(d["note"]).encode()
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise _bad(key, f"it is not a readable signed entry ({exc})") from None
        if key != journal_key(entry.subject):
            raise _bad(key, f"it names the subject of another entry ({journal_key(entry.subject)})")
        try:
            opened = open_note(note, keys)
        except NoteError as exc:
            raise _bad(key, f"its note does not verify with the ledger key ({exc})") from None
        if opened.text != signed_text(entry):
            raise _bad(key, "its fields are not the ones its note signs")
        out.append(entry)
    return sorted(out, key=lambda e: (e.erased_at_ms, e.subject))


def _bad(key: str, why: str) -> ErasureJournalCorrupt:
    return ErasureJournalCorrupt(
        f"The erasure journal entry {key} is refused: {why}. It was planted or changed in the "
        "object store (or signed by a ledger key this hub does not hold); a restore re-applies "
        "only erasures signed by the ledger. Check the object and remove it, then restore again."
    )
