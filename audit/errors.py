"""The audit package's exception tree (standalone: no import of the hub's ``HubError``).

    AuditError
    ├── ProofError                  a proof, hash or tree size does not verify or is malformed
    └── NoteError                   a signed note or key is unusable
        ├── MalformedNoteError      the note text / signature lines break c2sp.org/signed-note
        ├── MalformedKeyError       a verifier or signer key string is malformed
        ├── MalformedCheckpointError the note verifies but its body breaks c2sp.org/tlog-checkpoint
        ├── UnknownKeyError         no signature in the note is by a key the caller trusts
        ├── AmbiguousKeyError       two trusted keys share a name and key id
        └── InvalidSignatureError   a signature by a trusted key does not verify

The hub MAY wrap these at its boundary (``raise HubError(...) from exc``); the standalone verifier
maps every ``AuditError`` to exit status 1 with the message on stderr.
"""

from __future__ import annotations


class AuditError(Exception):
    """Root of every error raised by ``audit``."""


class ProofError(AuditError):
    """A Merkle proof, root or size does not verify, or its inputs are malformed."""


class NoteError(AuditError):
    """A signed note, checkpoint or key is unusable."""


class MalformedNoteError(NoteError):
    """The bytes are not a well-formed signed note."""


class MalformedKeyError(NoteError):
    """A verifier or signer key string is not well formed."""


class MalformedCheckpointError(NoteError):
    """A note's text is not a well-formed tlog checkpoint (or hub extension lines)."""


class UnknownKeyError(NoteError):
    """No signature on the note is from a key the caller trusts."""


class AmbiguousKeyError(NoteError):
    """Two trusted keys share the same (name, key id): the trust list is broken."""


class InvalidSignatureError(NoteError):
    """A signature by a trusted key does not verify over the note text."""
