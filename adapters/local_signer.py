"""LocalKeyFileSigner: the Signer port with an Ed25519 key in a file (embedded default).

The key file holds the C2SP signer key string (``PRIVATE+KEY+<name>+<id>+<base64>``). On first
use it is created with mode 0600 (refusing to start if an existing one is readable by group or
others), and its verifier key is published beside it in ``<name>.pub`` (mode 0644), which is what
an auditor passes to ``hub-verify --public-key``.
"""

from __future__ import annotations

import os
from pathlib import Path

from audit.errors import NoteError
from audit.note import SignerKey, generate_key, parse_signer_key
from core.errors import ConfigError
from core.ports.keyfiles import read_secret_file
from core.ports.signer import Signer


class LocalKeyFileSigner(Signer):
    def __init__(self, key_file: Path, name: str) -> None:
        self.key_file = Path(key_file)
        self.public_file = self.key_file.with_suffix(".pub")
        self.created = not self.key_file.exists()
        self._key = self._load_or_create(name)

    def _load_or_create(self, name: str) -> SignerKey:
        path = self.key_file
        text = read_secret_file(
            path, "ledger signing key", lambda: (generate_key(name).encode() + "\n").encode()
        )
        try:
            key = parse_signer_key(text.decode("utf-8"))
        except (NoteError, UnicodeDecodeError) as exc:
            raise ConfigError(f"The ledger signing key {path} is unusable: {exc}") from exc
        if key.name != name:
            raise ConfigError(
                f"The ledger signing key {path} is named {key.name!r}, but the ledger origin is "
                f"{name!r}: set HUB_LEDGER_ORIGIN={key.name} or move the key file away."
            )
        public = key.verifier.encode() + "\n"
        if not self.public_file.exists() or self.public_file.read_text() != public:
            self.public_file.write_text(public)
            self.public_file.chmod(0o644)
        return key

    @property
    def name(self) -> str:
        return self._key.name

    @property
    def public_key(self) -> bytes:
        return self._key.verifier.public_key

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"LocalKeyFileSigner({self.key_file}, {self._key!r})"


MAC_KEY_BYTES = 32


def load_or_create_mac_key(path: Path) -> bytes:
    """A secret MAC key in a file (32 random bytes, mode 0600), created on first use.

    The embedded event log authenticates its appends with it; it lives with the other keys,
    outside the log file, so that whoever can rewrite the log file alone cannot forge a batch.
    """
    path = Path(path)
    key = read_secret_file(path, "event log MAC key", lambda: os.urandom(MAC_KEY_BYTES))
    if len(key) != MAC_KEY_BYTES:
        raise ConfigError(
            f"The event log MAC key {path} holds {len(key)} bytes, not {MAC_KEY_BYTES}: it was "
            "truncated or replaced. Restore it from a backup; a new key makes every stored "
            "batch fail verification."
        )
    return key
