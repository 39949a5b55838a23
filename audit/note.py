"""C2SP signed notes (c2sp.org/signed-note) and tlog checkpoints (c2sp.org/tlog-checkpoint).

Stdlib and ``cryptography`` only. Ed25519 (signature type 0x01) is the one algorithm supported.

Signed note::

    <text, one or more lines, each ending in \\n>
    \\n
    — <key name> <base64(4-byte big-endian key id || 64-byte Ed25519 signature)>\\n   (1 or more)

The signature covers the text including its final newline, not the blank line. Key id =
``SHA-256(name || 0x0A || 0x01 || 32-byte public key)[:4]``. Key strings use the
golang.org/x/mod/sumdb/note encoding: ``<name>+<8 hex key id>+<base64(0x01 || public key)>`` for a
verifier key and ``PRIVATE+KEY+<name>+<8 hex key id>+<base64(0x01 || 32-byte seed)>`` for a
signer key (secret: anyone holding it can sign).

Checkpoint text::

    <origin>\\n
    <tree size, decimal, no leading zeros>\\n
    <base64 of the 32-byte RFC 9162 root>\\n
    [<extension line>\\n]...

Hub extension lines (both written by the hub, in this order; other logs' checkpoints may lack
them and still parse)::

    prev <base64 of the 32-byte checkpoint_hash of the previous checkpoint>
    time <signing time, integer microseconds since the Unix epoch, no leading zeros>

The first checkpoint of a chain has ``prev`` = base64 of 32 zero bytes (:data:`GENESIS_PREV`).
:func:`checkpoint_hash` is SHA-256 of the checkpoint *text* (not its signature lines), so that a
witness adding a cosignature does not change the chain.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit.errors import (
    AmbiguousKeyError,
    InvalidSignatureError,
    MalformedCheckpointError,
    MalformedKeyError,
    MalformedNoteError,
    UnknownKeyError,
)

__all__ = [
    "ALG_ED25519",
    "GENESIS_PREV",
    "MAX_SIGNATURES",
    "Checkpoint",
    "Note",
    "Signature",
    "SignerKey",
    "VerifierKey",
    "checkpoint_hash",
    "format_checkpoint",
    "generate_key",
    "key_id",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint",
    "parse_signer_key",
    "parse_verifier_key",
    "sign_note",
]

ALG_ED25519 = 0x01
MAX_SIGNATURES = 100  # the spec asks verifiers to accept at least 16; golang's note caps at 100
GENESIS_PREV = bytes(32)
_SIG_PREFIX = "— "  # em dash U+2014, space


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    """Strict standard base64 (RFC 4648 §4, padded); raises ``binascii.Error``/``ValueError``."""
    if not text.isascii():
        raise ValueError("base64 text must be ASCII")
    return base64.b64decode(text, validate=True)


def _valid_name(name: str) -> bool:
    # Spec: non-empty, no Unicode spaces, no '+'. Control characters are banned note-wide.
    return bool(name) and "+" not in name and not any(c.isspace() or ord(c) < 0x20 for c in name)


def key_id(name: str, public_key: bytes) -> int:
    """The 32-bit key id of an Ed25519 key: ``SHA-256(name || 0x0A || 0x01 || pubkey)[:4]``."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


# --------------------------------------------------------------------------------------------
# Keys


@dataclass(frozen=True)
class VerifierKey:
    """A trusted Ed25519 public key with its note key name and id."""

    name: str
    public_key: bytes
    key_id: int = field(init=False)

    def __post_init__(self) -> None:
        if not _valid_name(self.name):
            raise MalformedKeyError(
                f"key name {self.name!r} is invalid: it must be non-empty with no spaces or '+'."
            )
        if len(self.public_key) != 32:
            raise MalformedKeyError(
                f"an Ed25519 public key is 32 bytes, got {len(self.public_key)}."
            )
        object.__setattr__(self, "key_id", key_id(self.name, self.public_key))

    def encode(self) -> str:
        """``<name>+<hex key id>+<base64(0x01 || public key)>``."""
        return f"{self.name}+{self.key_id:08x}+{_b64(bytes([ALG_ED25519]) + self.public_key)}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True, repr=False)
class SignerKey:
    """An Ed25519 private key (its 32-byte seed) with its note key name. Secret: never logged."""

    name: str
    seed: bytes
    verifier: VerifierKey = field(init=False)
    # The loaded key, made once: ``from_private_bytes`` derives the public half (a scalar
    # multiplication, as dear as a signature), and the ledger signs every checkpoint with the
    # same key. A rotated key is a new ``SignerKey`` (the signer reads its file when built).
    _private: Ed25519PrivateKey = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.seed) != 32:
            raise MalformedKeyError(
                f"an Ed25519 private key seed is 32 bytes, got {len(self.seed)}."
            )
        private = Ed25519PrivateKey.from_private_bytes(self.seed)
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        object.__setattr__(self, "_private", private)
        object.__setattr__(self, "verifier", VerifierKey(self.name, public))

    def __repr__(self) -> str:
        return f"SignerKey(name={self.name!r}, key_id={self.key_id:08x}, seed=<redacted>)"

    @property
    def key_id(self) -> int:
        return self.verifier.key_id

    def encode(self) -> str:
        """``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>``."""
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{_b64(bytes([ALG_ED25519]) + self.seed)}"

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._private.sign(message)


def generate_key(name: str) -> SignerKey:
    """A fresh Ed25519 signer key (``.verifier`` holds its public half)."""
    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    return SignerKey(name, seed)


def _parse_key_parts(name: str, hex_id: str, b64: str, what: str) -> tuple[int, bytes]:
    if len(hex_id) != 8 or any(c not in "0123456789abcdefABCDEF" for c in hex_id):
        raise MalformedKeyError(f"{what} key id {hex_id!r} must be 8 hex digits.")
    try:
        raw = _unb64(b64)
    except (binascii.Error, ValueError):
        raise MalformedKeyError(f"{what} key data {b64!r} is not valid base64.") from None
    if not raw:
        raise MalformedKeyError(f"{what} key data is empty.")
    if raw[0] != ALG_ED25519:
        raise MalformedKeyError(
            f"{what} key algorithm {raw[0]:#04x} is unsupported; only Ed25519 (0x01) is."
        )
    if len(raw) != 33:
        raise MalformedKeyError(f"{what} Ed25519 key is 32 bytes, got {len(raw) - 1}.")
    if not _valid_name(name):
        raise MalformedKeyError(f"{what} key name {name!r} is invalid.")
    return int(hex_id, 16), raw[1:]


def parse_verifier_key(text: str) -> VerifierKey:
    """Parse ``<name>+<hex id>+<base64(0x01 || pubkey)>``; the id MUST match the key."""
    parts = text.strip().split("+", 2)
    if len(parts) != 3:
        raise MalformedKeyError(
            f"verifier key {text!r} must look like <name>+<8 hex digits>+<base64 key>."
        )
    kid, public = _parse_key_parts(parts[0], parts[1], parts[2], "verifier")
    key = VerifierKey(parts[0], public)
    if key.key_id != kid:
        raise MalformedKeyError(
            f"verifier key id {kid:08x} does not match its name and key "
            f"(which give {key.key_id:08x})."
        )
    return key


def parse_signer_key(text: str) -> SignerKey:
    """Parse ``PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>``; the id MUST match."""
    parts = text.strip().split("+", 4)
    if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
        raise MalformedKeyError("signer key must look like PRIVATE+KEY+<name>+<id>+<base64 key>.")
    kid, seed = _parse_key_parts(parts[2], parts[3], parts[4], "signer")
    key = SignerKey(parts[2], seed)
    if key.key_id != kid:
        raise MalformedKeyError(
            f"signer key id {kid:08x} does not match its name and key "
            f"(which give {key.key_id:08x})."
        )
    return key


# --------------------------------------------------------------------------------------------
# Notes


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, key id and the base64 text as it appeared."""

    name: str
    key_id: int
    base64: str


@dataclass(frozen=True)
class Note:
    """An opened note: its text and which signatures verified (``unverified``: unknown keys)."""

    text: str
    verified: tuple[Signature, ...]
    unverified: tuple[Signature, ...] = ()


def _check_chars(text: str, what: str) -> None:
    for i, c in enumerate(text):
        if ord(c) < 0x20 and c != "\n":
            raise MalformedNoteError(
                f"{what} has control character {c!r} at offset {i}; only newline is allowed."
            )


def sign_note(text: str, *signers: SignerKey) -> bytes:
    """Encode ``text`` signed by each signer. ``text`` MUST end in a newline."""
    if not text.endswith("\n"):
        raise MalformedNoteError("note text must end with a newline.")
    _check_chars(text, "note text")
    if not signers:
        raise ValueError("sign_note needs at least one signer.")
    message = text.encode()
    lines = [
        f"{_SIG_PREFIX}{s.name} {_b64(s.key_id.to_bytes(4, 'big') + s.sign(message))}\n"
        for s in signers
    ]
    return (text + "\n" + "".join(lines)).encode()


def open_note(message: bytes, verifiers: Iterable[VerifierKey]) -> Note:
    """Parse a signed note and verify it against trusted keys.

    Raises ``MalformedNoteError`` (bad syntax), ``InvalidSignatureError`` (a trusted key's
    signature fails: the whole note is rejected), ``UnknownKeyError`` (no signature by a trusted
    key), ``AmbiguousKeyError`` (two trusted keys share name and id). Signatures by unknown keys
    are ignored, as the spec requires, and reported in ``Note.unverified``.
    """
    by_id: dict[tuple[str, int], list[VerifierKey]] = {}
    for v in verifiers:
        by_id.setdefault((v.name, v.key_id), []).append(v)

    try:
        decoded = message.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedNoteError(f"note is not valid UTF-8 (byte offset {exc.start}).") from None
    _check_chars(decoded, "note")
    split = decoded.rfind("\n\n")
    if split < 0:
        raise MalformedNoteError("note has no blank line before its signature lines.")
    text, sig_block = decoded[: split + 1], decoded[split + 2 :]
    if not sig_block or not sig_block.endswith("\n"):
        raise MalformedNoteError("note's signature block is empty or lacks its final newline.")

    verified: list[Signature] = []
    unverified: list[Signature] = []
    seen_known: set[tuple[str, int]] = set()
    seen_unknown: set[str] = set()
    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNoteError(f"note has {len(lines)} signatures; at most {MAX_SIGNATURES}.")
    text_bytes = text.encode()
    for n, line in enumerate(lines, 1):
        if not line.startswith(_SIG_PREFIX):
            raise MalformedNoteError(f"signature line {n} does not start with '— ': {line!r}.")
        name, sep, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        try:
            raw = _unb64(b64)
        except (binascii.Error, ValueError):
            raw = b""
        if not sep or not _valid_name(name) or len(raw) < 5:
            raise MalformedNoteError(f"signature line {n} is malformed: {line!r}.")
        kid = int.from_bytes(raw[:4], "big")
        candidates = by_id.get((name, kid))
        if candidates is None:
            if line not in seen_unknown:
                seen_unknown.add(line)
                unverified.append(Signature(name, kid, b64))
            continue
        if len(candidates) > 1:
            raise AmbiguousKeyError(f"two trusted keys are named {name}+{kid:08x}.")
        # Every signature by a trusted key is checked, repeats too, before a repeat is dropped
        # (as golang's note.Open): else a forged line after a good one passed unnoticed.
        if not candidates[0].verify(text_bytes, raw[4:]):
            raise InvalidSignatureError(
                f"signature by trusted key {name}+{kid:08x} does not verify: the note was "
                f"altered or signed by another key."
            )
        if (name, kid) in seen_known:
            continue
        seen_known.add((name, kid))
        verified.append(Signature(name, kid, b64))

    if not verified:
        found = ", ".join(f"{s.name}+{s.key_id:08x}" for s in unverified)
        trusted = ", ".join(f"{n}+{k:08x}" for n, k in by_id) or "none"
        raise UnknownKeyError(
            f"note has no signature by a trusted key (signed by: {found}; trusted: {trusted})."
        )
    return Note(text, tuple(verified), tuple(unverified))


# --------------------------------------------------------------------------------------------
# Checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """A tlog checkpoint body. ``extensions`` are the raw extension lines, without newlines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    @property
    def prev_hash(self) -> bytes | None:
        """The hub ``prev`` extension (checkpoint_hash of the previous checkpoint), if any."""
        return _parse_prev(self.extensions)

    @property
    def time_micros(self) -> int | None:
        """The hub ``time`` extension (microseconds since the Unix epoch), if any."""
        return _parse_time(self.extensions)

    def text(self) -> str:
        return format_checkpoint(self.origin, self.size, self.root, self.extensions)


_MAX_U64 = (1 << 64) - 1


def _decimal(text: str, what: str) -> int:
    """A uint64 in decimal. The length is checked before ``int()``, which raises a bare
    ``ValueError`` past 4300 digits (a traceback instead of a refusal)."""
    if not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        raise MalformedCheckpointError(
            f"{what} {text[:40]!r} must be a decimal number without leading zeros."
        )
    if len(text) > 20 or int(text) > _MAX_U64:
        raise MalformedCheckpointError(
            f"{what} {text[:40]!r}{'...' if len(text) > 40 else ''} ({len(text)} digits) is "
            "past 2^64 - 1, the largest a checkpoint may carry."
        )
    return int(text)


def _hash_b64(text: str, what: str) -> bytes:
    try:
        raw = _unb64(text)
    except (binascii.Error, ValueError):
        raise MalformedCheckpointError(f"{what} {text!r} is not valid base64.") from None
    if len(raw) != 32 or _b64(raw) != text:
        raise MalformedCheckpointError(f"{what} {text!r} must be the canonical base64 of 32 bytes.")
    return raw


def _parse_prev(extensions: Sequence[str]) -> bytes | None:
    for line in extensions:
        if line.startswith("prev "):
            return _hash_b64(line[5:], "prev extension")
    return None


def _parse_time(extensions: Sequence[str]) -> int | None:
    for line in extensions:
        if line.startswith("time "):
            return _decimal(line[5:], "time extension")
    return None


def format_checkpoint(
    origin: str,
    size: int,
    root: bytes,
    extensions: Sequence[str] = (),
    *,
    prev: bytes | None = None,
    time_micros: int | None = None,
) -> str:
    """The checkpoint text; ``prev``/``time_micros`` append the hub extension lines."""
    if not origin or "\n" in origin:
        raise MalformedCheckpointError(f"origin {origin!r} must be one non-empty line.")
    if size < 0:
        raise MalformedCheckpointError(f"tree size {size} must not be negative.")
    if len(root) != 32:
        raise MalformedCheckpointError(f"root hash must be 32 bytes, got {len(root)}.")
    lines = [origin, str(size), _b64(root), *extensions]
    if prev is not None:
        if len(prev) != 32:
            raise MalformedCheckpointError(f"prev hash must be 32 bytes, got {len(prev)}.")
        lines.append(f"prev {_b64(prev)}")
    if time_micros is not None:
        if time_micros < 0:
            raise MalformedCheckpointError(f"time {time_micros} must not be negative.")
        lines.append(f"time {time_micros}")
    for line in lines[3:]:
        if not line or "\n" in line:
            raise MalformedCheckpointError(f"extension line {line!r} must be one non-empty line.")
    text = "\n".join(lines) + "\n"
    _check_chars(text, "checkpoint")
    return text


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse checkpoint text (a note's text, ending in newline) strictly per the spec.

    Hub extension lines, when present, MUST be well formed; other extension lines are kept.
    """
    if not text.endswith("\n"):
        raise MalformedCheckpointError("checkpoint text must end with a newline.")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise MalformedCheckpointError(
            f"checkpoint has {len(lines)} lines; it needs origin, size and root hash."
        )
    if any(not line for line in lines):
        raise MalformedCheckpointError("checkpoint lines must be non-empty.")
    origin, size_text, root_text, *extensions = lines
    cp = Checkpoint(
        origin,
        _decimal(size_text, "tree size"),
        _hash_b64(root_text, "root hash"),
        tuple(extensions),
    )
    # Validate hub extensions eagerly so a malformed one is reported at parse time.
    _parse_prev(cp.extensions)
    _parse_time(cp.extensions)
    return cp


def open_checkpoint(message: bytes, verifiers: Iterable[VerifierKey]) -> tuple[Checkpoint, Note]:
    """Verify a signed checkpoint note (see :func:`open_note`) and parse its text."""
    note = open_note(message, verifiers)
    return parse_checkpoint(note.text), note


def checkpoint_hash(note_bytes: bytes) -> bytes:
    """SHA-256 of a checkpoint's text, for the ``prev`` chain.

    Accepts a signed note (its signature lines are excluded: the text ends at the last blank
    line, and checkpoint text never contains one) or the bare text, which MUST end in newline.
    """
    split = note_bytes.rfind(b"\n\n")
    text = note_bytes[: split + 1] if split >= 0 else note_bytes
    if not text.endswith(b"\n"):
        raise MalformedCheckpointError("checkpoint text must end with a newline.")
    return hashlib.sha256(text).digest()
