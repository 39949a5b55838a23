"""Reading the members of a signed zip pack (evidence packs, report and export packs)."""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Mapping
from typing import Any

from audit.errors import AuditError, NoteError
from audit.note import VerifierKey, parse_verifier_key

PUBLIC_KEY = "public-key.txt"
_LOCAL_HEADER = struct.Struct("<4s5H3I2H")  # a zip local file header (30 bytes)
_DESCRIPTOR = b"PK\x07\x08"


def check_archive(zf: zipfile.ZipFile, error: type[AuditError]) -> None:
    """Refuse a zip whose bytes are not exactly its members, each once: the verifier reads the
    central directory (the last entry of a repeated name), while other unzip tools read the
    local headers from the start or show the first copy. A forged ``report.html`` prepended
    before the signed members, hidden between two of them, or added under a name already
    present would otherwise pass verification and be what an auditor opens. The members MUST
    be contiguous from byte 0 up to the central directory, and no name MAY repeat."""
    infos = zf.infolist()
    names = [i.filename for i in infos]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise error(
            f"the pack holds {repeated[0]!r} more than once: an unzip tool may show a copy "
            "other than the one verified."
        )
    fp = zf.fp
    if fp is None:
        raise error("the pack is closed.")
    at = 0
    for info in sorted(infos, key=lambda i: i.header_offset):
        if info.header_offset != at:
            raise error(
                f"the pack has {info.header_offset - at} bytes before {info.filename!r} at byte "
                f"{at} that no member accounts for: data an unzip tool may show, never verified."
            )
        fp.seek(at)
        head = fp.read(_LOCAL_HEADER.size)
        if len(head) != _LOCAL_HEADER.size or head[:4] != b"PK\x03\x04":
            raise error(f"{info.filename!r} has no local file header at byte {at}.")
        name_len, extra_len = _LOCAL_HEADER.unpack(head)[-2:]
        at += _LOCAL_HEADER.size + name_len + extra_len + info.compress_size
        if info.flag_bits & 0x08:  # a data descriptor follows: CRC and sizes, signed or not
            fp.seek(at)
            wide = info.compress_size > 0xFFFFFFFF or info.file_size > 0xFFFFFFFF
            at += (20 if wide else 12) + (4 if fp.read(4) == _DESCRIPTOR else 0)
    if at != zf.start_dir:
        raise error(
            f"the pack has {zf.start_dir - at} bytes at byte {at}, after its last member and "
            "before its central directory, that no member accounts for."
        )


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
    key), else the pack's ``public-key.txt``, which the manifest must name. Every verifier's
    first step, so the archive's layout is checked here first (``check_archive``)."""
    check_archive(zf, error)
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
