"""The witness copy of every signed checkpoint, and the window between a commit and its copy.

Every checkpoint the ledger signs is copied to the witness store (``<data>/witness``, an
ObjectStore written once: a copy is never replaced). ``hub ledger verify`` compares each stored
checkpoint with its copy, so rewriting the store's history (even with the signing key) shows as a
witness copy that differs, and deleting a copy shows as a copy missing.

The crash window
    The copy cannot be made inside the store's transaction (the witness is another system), so
    ``Ledger.sync`` writes a *witness intent* (the checkpoint's size, ``LedgerStore``
    ``witness_intents``) in the SAME transaction as the checkpoint, makes the copy after the
    commit, then clears the intent. A process killed between the commit and the copy leaves the
    intent; the next open or sync copies the checkpoint then (``Ledger.copy_to_witness``), and
    ``hub ledger verify`` meanwhile reports the checkpoint as *pending witness* instead of
    failing. A copy missing with NO intent still fails: that is a deleted copy.

Why an intent cannot launder a rewritten checkpoint
    The store is what an attacker may rewrite (intents included); the witness is what they cannot
    rewrite (write-once: at most delete a copy). A checkpoint with an intent is accepted as
    pending, and copied by a process that did not sign it itself, only when ALL of these hold
    (:func:`check_intents`):

    1. every intent names a checkpoint the store holds;
    2. the pending checkpoints (intents without a copy) are exactly the store's checkpoints
       above the NEWEST checkpoint the witness holds: an intent never covers a checkpoint below
       a witnessed one, so a copy deleted in the middle of the history, and the checkpoint
       rewritten, stays a failure;
    3. there are at most ``LedgerConfig.witness_pending_max`` of them: what one sync
       transaction can leave (its checkpoints at every ``checkpoint_every_leaves`` multiple plus
       one timed); more means witnessing kept failing, or intents were forged;
    4. each verifies with the ledger's key, names the ledger's origin, size and root, and the
       ``prev`` hashes chain from the newest witnessed copy (its bytes read from the witness,
       not the store) through every pending one;
    5. the store proves each pending tree CONSISTENT with the newest witnessed root (RFC 9162
       consistency proof): a pending checkpoint only appends to the witnessed tree.

    So an intent can only ever bring into the witness checkpoints that EXTEND the witnessed
    history, by entries no copy vouched for yet. What is left: an attacker who holds the signing
    key and the store, and deletes the newest copies (at most ``witness_pending_max`` of them),
    can replace those newest checkpoints with others extending the same witnessed tree; the
    checkpoints of a crashed transaction were never witnessed, so no store-side record can tell
    them apart. The older copies, and every entry below the newest witnessed checkpoint, stay
    protected; a witness that refuses deletes (S3 object lock) closes the rest.

Copies are made in size order and stop at the first that fails, so the witness never holds a
checkpoint above a missing one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from audit.errors import AuditError
from audit.merkle import verify_consistency
from audit.note import GENESIS_PREV, VerifierKey, checkpoint_hash, open_checkpoint
from core.errors import HubError
from core.ports.ledgerstore import LedgerStore, StoredCheckpoint
from core.ports.objectstore import ObjectNotFound, ObjectStore

PREFIX = "checkpoints/"
# A copy's folder is the first 16 of its size's 20 zero-padded digits: sizes are distinct, so a
# folder holds at most 10,000 copies however often checkpoints are signed, and a reader from a
# known size skips every older folder unread. The decimal cut (not a power of two) keeps the
# flat layout of older witness folders, ``checkpoints/<size:020d>.note``, ordered with it: one
# ``start_after`` mark serves both (see ``witnessed``).
_FOLDER_DIGITS = 16


def witness_key(size: int) -> str:
    """Where a checkpoint's copy is written (the folder layout)."""
    digits = f"{size:020d}"
    return f"{PREFIX}{digits[:_FOLDER_DIGITS]}/{digits}.note"


def legacy_key(size: int) -> str:
    """Where witness folders written before the folder layout hold a copy (still read)."""
    return f"{PREFIX}{size:020d}.note"


def key_size(key: str) -> int | None:
    """The checkpoint size a witness key names, in either layout; None for any other key (a copy
    in the wrong folder included: the writer never puts one there)."""
    rest = key[len(PREFIX) :] if key.startswith(PREFIX) else ""
    folder, _, name = rest.rpartition("/")
    stem = name.removesuffix(".note")
    if not name.endswith(".note") or not stem.isdigit() or not stem.isascii():
        return None
    if folder and (len(stem) != 20 or folder != stem[:_FOLDER_DIGITS]):
        return None
    return int(stem)


def witness_copies(witness: ObjectStore, size: int) -> list[bytes]:
    """The bytes of every copy the witness holds of checkpoint ``size`` (either layout): a
    verifier compares each, so a differing copy planted beside the real one is still seen."""
    out = []
    for key in (witness_key(size), legacy_key(size)):
        try:
            out.append(witness.get(key))
        except ObjectNotFound:
            continue
    return out


def witnessed(witness: ObjectStore, *, above: int = -1) -> list[tuple[int, str]]:
    """``(size, key)`` of every witness key under ``checkpoints/`` larger than ``above``, by
    size then key; size -1 for a key that names no checkpoint (only listed when ``above`` is -1,
    the full run). From a size, the listing starts at its folder's name: it sorts before every
    key of a larger size in both layouts (a flat key with a larger size has the same or a larger
    16-digit head), so only older folders, and flat keys of older heads, are skipped."""
    after = f"{PREFIX}{above:020d}"[: len(PREFIX) + _FOLDER_DIGITS] if above >= 0 else ""
    out = []
    for key in witness.list(PREFIX, start_after=after):
        size = key_size(key)
        if size is None:
            if above < 0:
                out.append((-1, key))
        elif size > above:
            out.append((size, key))
    return sorted(out)


def witnessed_sizes(witness: ObjectStore, *, above: int = -1) -> list[int]:
    """The sizes of the checkpoints the witness holds (either layout), ascending, larger than
    ``above`` (other keys ignored)."""
    return sorted({size for size, _key in witnessed(witness, above=above) if size >= 0})


def _witnessed_from(store: LedgerStore, witness: ObjectStore, first: int) -> list[int]:
    """The witnessed sizes from the store's newest checkpoint below ``first`` upward: they hold
    every copy an intent could name (all are at least ``first``) and the newest copy, unless the
    witness holds none from there on; only then is the whole folder listed (the copy of that
    checkpoint is missing, or there is none below ``first``), so the rules see what they did
    when every check listed the folder, at the cost of the copies from that checkpoint on."""
    base, width = None, 1024
    while base is None and first > 0:  # the store's newest checkpoint below ``first``
        lo = max(first - width, 0)
        below = store.checkpoints(min_size=lo, max_size=first - 1)
        base = below[-1].size if below else None
        if lo == 0:
            break
        width *= 4
    if base is not None:
        found = witnessed_sizes(witness, above=base - 1)
        if found:
            return found
    return witnessed_sizes(witness)


@dataclass
class IntentCheck:
    """What :func:`check_intents` found: the intents' checkpoints (ascending, with a copy or
    not), the pending ones among them (no copy yet), or the reason they cannot be honoured."""

    checkpoints: list[StoredCheckpoint] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    problem: str | None = None
    at: int | None = None  # the checkpoint the problem names


def check_intents(
    store: LedgerStore,
    witness: ObjectStore,
    keys: Sequence[VerifierKey],
    origin: str,
    limit: int,
) -> IntentCheck:
    """The rules of the module docstring, against the store's intents and the witness."""
    intents = store.witness_intents()
    if not intents:
        return IntentCheck()
    stored = {cp.size: cp for cp in store.checkpoints(min_size=intents[0])}
    out = IntentCheck()
    for size in intents:
        if size not in stored:  # 1.
            out.problem = (
                f"a witness intent names checkpoint {size}, which the store lacks (an intent is "
                "written with its checkpoint: it was forged, or the checkpoint dropped)."
            )
            out.at = size
            return out
        out.checkpoints.append(stored[size])
    witnessed = _witnessed_from(store, witness, intents[0])
    have = set(witnessed)
    out.pending = [s for s in intents if s not in have]
    if not out.pending:
        return out
    newest = witnessed[-1] if witnessed else 0
    first = out.pending[0]
    if first < newest:  # 2.
        out.problem = (
            f"checkpoint {first} has a witness intent, but the witness already holds the newer "
            f"checkpoint {newest}: an intent only covers the newest, never-witnessed "
            "checkpoints (its copy was deleted, or the intent forged)."
        )
        out.at = first
        return out
    head = [cp.size for cp in store.checkpoints(min_size=newest + 1)]
    if head != out.pending:
        lone = next(s for s in head if s not in out.pending)
        out.problem = (
            f"checkpoint {lone} has neither a witness copy nor a witness intent, while a later "
            "one awaits its copy (a copy was deleted)."
        )
        out.at = lone
        return out
    if len(out.pending) > limit:  # 3.
        out.problem = (
            f"{len(out.pending)} checkpoints await their witness copy, more than one sync "
            f"transaction leaves ({limit}): witnessing has been failing, or intents were "
            "forged. Check the witness store."
        )
        out.at = first
        return out
    # 4. and 5.: chain and consistency from the newest witnessed copy (its bytes, not the store's)
    prev_hash, prev_root = GENESIS_PREV, b""
    try:
        if newest:
            copies = witness_copies(witness, newest)
            if not copies or any(c != copies[0] for c in copies):
                raise HubError(f"its copies ({len(copies)}) are missing or differ")
            note = copies[0]
            prev_root = open_checkpoint(note, keys)[0].root
            prev_hash = checkpoint_hash(note)
    except (AuditError, HubError) as exc:
        out.problem = f"the witness copy of checkpoint {newest} cannot be read or verified: {exc}"
        out.at = newest
        return out
    for size in out.pending:
        cp = stored[size]
        try:
            parsed, _ = open_checkpoint(cp.note, keys)
        except AuditError as exc:
            out.problem = f"checkpoint {size} awaits its witness copy but does not verify: {exc}"
            out.at = size
            return out
        if (parsed.origin, parsed.size, parsed.root) != (origin, cp.size, cp.root):
            reason = "names another origin, size or root than the store's"
        elif parsed.prev_hash != prev_hash:
            reason = (
                f"does not chain to the newest witnessed checkpoint {newest} (prev hash), so it "
                "is not the checkpoint that followed it"
            )
        else:
            reason = ""
            if newest:
                try:
                    proof = store.consistency_proof(newest, size)
                    verify_consistency(newest, size, prev_root, cp.root, proof)
                except (AuditError, IndexError) as exc:
                    reason = f"is not an extension of the witnessed tree of {newest} ({exc})"
        if reason:
            out.problem = f"checkpoint {size} awaits its witness copy but {reason}."
            out.at = size
            return out
        prev_hash = checkpoint_hash(cp.note)
    return out
