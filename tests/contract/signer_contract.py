"""The Signer contract (``core/ports/signer.py``): one suite, run against every adapter.

Subclasses provide ``signer`` (a signer named ``NAME``) and ``reopen`` (the same key opened
again, as a restarted hub would). Signatures are checked with the auditor's own code
(``audit.note``, what ``hub-verify`` runs) and with ``cryptography`` directly, so a signer whose
notes an auditor cannot open fails here.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.errors import NoteError
from audit.note import format_checkpoint, open_checkpoint, open_note, parse_verifier_key
from core.ports.signer import Signer, SigningFailed

NAME = "contract.example/ledger"
Reopen = Callable[[Signer], Signer]


class SignerContract:
    """Not collected itself (no ``Test`` prefix); subclass it once per adapter."""

    def test_name_and_public_key(self, signer: Signer) -> None:
        assert signer.name == NAME
        assert isinstance(signer.public_key, bytes) and len(signer.public_key) == 32
        verifier = parse_verifier_key(signer.verifier_key())
        assert verifier.name == NAME and verifier.public_key == signer.public_key

    def test_signs_exactly_the_message(self, signer: Signer) -> None:
        key = Ed25519PublicKey.from_public_bytes(signer.public_key)
        for message in (b"", b"hello", bytes(range(256)) * 40):
            sig = signer.sign(message)
            assert len(sig) == 64
            key.verify(sig, message)
            with pytest.raises(InvalidSignature):
                key.verify(sig, message + b"x")

    def test_notes_open_with_the_published_verifier_key(self, signer: Signer) -> None:
        text = format_checkpoint(NAME, 42, bytes(range(32)), prev=bytes(32), time_micros=7)
        note = signer.sign_note(text)
        verifier = parse_verifier_key(signer.verifier_key())
        assert open_note(note, [verifier]).text == text
        cp, _ = open_checkpoint(note, [verifier])
        assert cp.size == 42 and cp.root == bytes(range(32)) and cp.origin == NAME
        forged = note.replace(b"\n42\n", b"\n43\n")
        with pytest.raises(NoteError):
            open_note(forged, [verifier])

    def test_a_note_text_must_end_with_a_newline(self, signer: Signer) -> None:
        with pytest.raises(SigningFailed, match="newline"):
            signer.sign_note("no newline")

    def test_the_key_survives_a_reopen(self, signer: Signer, reopen: Reopen) -> None:
        again = reopen(signer)
        assert again.name == signer.name and again.public_key == signer.public_key
        Ed25519PublicKey.from_public_bytes(signer.public_key).verify(again.sign(b"m"), b"m")
