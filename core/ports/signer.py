"""Signer: the port that signs the ledger's checkpoints and evidence manifests (Ed25519).

Adapters: ``adapters.local_signer.LocalKeyFileSigner`` (a key file under the data folder, the
default) and, later, a Vault/OpenBao transit adapter. The private key never leaves the adapter:
callers get signatures and the public half only.

Contract
- ``name`` MUST be a valid C2SP note key name (non-empty, no spaces, no ``+``); ``public_key``
  MUST be the 32-byte raw Ed25519 public key; both MUST NOT change for the adapter's lifetime.
- ``sign(message)`` MUST return the 64-byte Ed25519 signature of exactly ``message``; a failure
  to sign raises ``HubError`` (``SigningFailed``), never returns a partial value.
- ``verifier_key()`` is the note verifier key string ``<name>+<key id>+<base64>`` (what
  ``hub-verify --public-key`` reads); publishing it MUST be safe.
- ``created`` MUST be True only when this adapter made the key itself on opening (a new key,
  which has signed nothing yet); the composition root refuses an empty ledger over a non-empty
  log under a key that existed before (``hub.bootstrap``).
"""

from __future__ import annotations

import abc
import base64

from audit.note import VerifierKey
from core.errors import HubError


class SigningFailed(HubError):
    code = "signing_failed"
    http_status = 503


class Signer(abc.ABC):
    """Signs bytes with an Ed25519 key it keeps to itself."""

    created: bool = False  # the key was made on opening (see the contract)

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The note key name (by convention the ledger's origin)."""

    @property
    @abc.abstractmethod
    def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""

    @abc.abstractmethod
    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""

    def verifier(self) -> VerifierKey:
        return VerifierKey(self.name, self.public_key)

    def verifier_key(self) -> str:
        return self.verifier().encode()

    def sign_note(self, text: str) -> bytes:
        """A C2SP signed note of ``text`` (MUST end in newline) with one signature line.

        Same bytes as ``audit.note.sign_note`` produces, without needing the private key here.
        """
        if not text.endswith("\n"):
            raise SigningFailed("A note's text must end with a newline.")
        v = self.verifier()
        sig = self.sign(text.encode())
        if len(sig) != 64:
            raise SigningFailed(f"The signer returned {len(sig)} bytes, not a 64-byte signature.")
        line = base64.b64encode(v.key_id.to_bytes(4, "big") + sig).decode("ascii")
        return (text + "\n" + f"— {v.name} {line}\n").encode()
