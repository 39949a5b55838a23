"""Reading the members of a signed zip pack (evidence packs, report and export packs)."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from typing import Any

from audit.errors import AuditError, NoteError
from audit.note import VerifierKey, parse_verifier_key

PUBLIC_KEY = "public-key.txt"


def read_member(zf: zipfile.ZipFile, name: str, error: type[AuditError]) -> bytes:
    """The bytes of ``name``; a missing or unreadable member raises ``error`` naming it."""
    try:
        return zf.read(name)
    except KeyError:
        raise error(f"the pack has no {name}.") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise error(f"{name} cannot be read from the pack: {exc}.") from None


def pack_key(
    zf: zipfile.ZipFile,
    manifest: Mapping[str, Any],
    trusted: VerifierKey | None,
    error: type[AuditError],
    trusted_from: str = "",
) -> VerifierKey:
    """The key to verify the pack with: ``trusted`` when given (the pack's own key must be that
    key), else the pack's ``public-key.txt``, which the manifest must name."""
    text = read_member(zf, PUBLIC_KEY, error).decode("utf-8", "replace").strip()
    try:
        key = parse_verifier_key(text)
    except NoteError as exc:
        raise error(f"{PUBLIC_KEY} is not a verifier key: {exc}") from None
    if manifest.get("public_key") != text:
        raise error(f"manifest public_key differs from {PUBLIC_KEY}.")
    if trusted is not None and trusted.encode() != key.encode():
        raise error(
            f"the pack is signed with key {key.name}+{key.key_id:08x}, not the trusted "
            f"key {trusted.name}+{trusted.key_id:08x}{trusted_from}: it did not come from "
            "that hub."
        )
    return trusted or key
