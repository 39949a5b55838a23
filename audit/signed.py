"""Signed reports and exports, formats ``hub-report/v1`` and ``hub-export/v1``: layout and the
offline verifier (standard library + cryptography, like the rest of ``audit``).

Layout of the zip::

    manifest.json      format, origin, kind, who made it and when, the ledger checkpoint it was
                       derived against ({size, root}), the queries (name, store, SQL, rows,
                       digest), and the SHA-256 of every other file ("files"); an export also
                       its scope: ``tenant_scope`` (null: every tenant) and ``masked_columns``
    manifest.sig       C2SP signed note by the hub's ledger key over the text
                       "<format>\\nmanifest.json sha256 <hex>\\n"
    public-key.txt     the hub's verifier key (<name>+<key id>+<base64>)
    checkpoint.note    the signed ledger checkpoint named in the manifest
    data.json          (reports) every query's rows: {"<query name>": {"columns", "rows"}}
    report.html/.pdf   (reports) the rendered report
    query.csv/.parquet (exports) the exported rows

A query's ``digest`` is the SHA-256 of its rows as canonical JSON lines
(:func:`rows_digest`), so a reader of ``data.json`` can recompute it; an export's digest is the
SHA-256 of the data file.

:func:`verify_signed` checks, in order (the first failure raises ``SignedPackError``):
    1. the verifier key: the pack's, or ``trusted`` (``--public-key``), which MUST have signed;
    2. the checkpoint note's signature, and that its origin, size and root are the manifest's;
    3. every file's SHA-256 against the manifest, and no unlisted file;
    4. (reports) every query digest recomputed from ``data.json``; (exports) the data file's
       digest equals the query's;
    5. the manifest's signature over its SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterable, Mapping
from typing import Any

from audit.errors import AuditError, NoteError
from audit.note import VerifierKey, open_checkpoint, open_note
from audit.packfile import PUBLIC_KEY as PUBLIC_KEY  # the member name, for the pack writers
from audit.packfile import pack_key, read_member

REPORT_FORMAT = "hub-report/v1"
EXPORT_FORMAT = "hub-export/v1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
CHECKPOINT = "checkpoint.note"
DATA = "data.json"
UNSIGNED = frozenset({MANIFEST, SIGNATURE})


class SignedPackError(AuditError):
    """A signed report or export fails verification."""


def note_text(fmt: str, manifest_bytes: bytes) -> str:
    """The text the hub signs for a manifest of format ``fmt``."""
    return f"{fmt}\n{MANIFEST} sha256 {hashlib.sha256(manifest_bytes).hexdigest()}\n"


def canonical_line(row: Mapping[str, Any]) -> bytes:
    return json.dumps(row, sort_keys=True, separators=(",", ":"), default=str).encode() + b"\n"


def rows_digest(rows: Iterable[Mapping[str, Any]]) -> str:
    """SHA-256 of the rows as canonical JSON lines (sorted keys, no spaces), in order."""
    h = hashlib.sha256()
    for row in rows:
        h.update(canonical_line(row))
    return h.hexdigest()


def _checkpoint(zf: zipfile.ZipFile, manifest: Mapping[str, Any], key: VerifierKey) -> int:
    want = manifest.get("checkpoint")
    if not isinstance(want, dict):
        raise SignedPackError("manifest names no ledger checkpoint {size, root}.")
    try:
        cp, _ = open_checkpoint(read_member(zf, CHECKPOINT, SignedPackError), [key])
    except NoteError as exc:
        raise SignedPackError(f"{CHECKPOINT}: {exc}") from None
    if (cp.origin, cp.size, cp.root.hex()) != (
        manifest.get("origin"),
        want.get("size"),
        want.get("root"),
    ):
        raise SignedPackError(
            f"{CHECKPOINT} is origin {cp.origin!r} size {cp.size} root {cp.root.hex()}, not the "
            f"manifest's origin {manifest.get('origin')!r} size {want.get('size')!r} root "
            f"{want.get('root')!r}."
        )
    return cp.size


def _files(zf: zipfile.ZipFile, manifest: Mapping[str, Any]) -> dict[str, str]:
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise SignedPackError("manifest files must be an object {name: sha256}.")
    names = {i.filename for i in zf.infolist()} - UNSIGNED
    if names != set(files):
        extra = sorted(names - set(files))
        missing = sorted(set(files) - names)
        raise SignedPackError(
            f"pack files differ from the manifest (extra {extra}, missing {missing})."
        )
    for name in sorted(files):
        if hashlib.sha256(read_member(zf, name, SignedPackError)).hexdigest() != files[name]:
            raise SignedPackError(f"{name} does not match its SHA-256 in the manifest (altered).")
    return dict(files)


def _queries(zf: zipfile.ZipFile, manifest: Mapping[str, Any], files: Mapping[str, str]) -> int:
    queries = manifest.get("queries")
    if not isinstance(queries, list) or not queries:
        raise SignedPackError("manifest lists no queries.")
    # checked before the signature (step 5): an altered manifest gets INVALID naming the
    # field, not a traceback (a list item that is no object, an unhashable name, two queries)
    for n, q in enumerate(queries):
        if not isinstance(q, dict) or not isinstance(q.get("name", ""), str):
            raise SignedPackError(f"manifest query {n} is not an object with a text name.")
    if manifest["format"] == EXPORT_FORMAT:
        if len(queries) != 1:
            raise SignedPackError(f"an export holds one query; the manifest lists {len(queries)}.")
        (q,) = queries
        name = str(q.get("file", ""))
        if name not in files or q.get("digest") != files[name]:
            raise SignedPackError(f"the export's digest is not the SHA-256 of {name!r}.")
        return 1
    try:
        data = json.loads(read_member(zf, DATA, SignedPackError))
    except ValueError as exc:
        raise SignedPackError(f"{DATA} is not JSON: {exc}.") from None
    for q in queries:
        got = data.get(q.get("name")) if isinstance(data, dict) else None
        if not isinstance(got, dict) or not isinstance(got.get("rows"), list):
            raise SignedPackError(f"{DATA} has no rows for query {q.get('name')!r}.")
        if len(got["rows"]) != q.get("rows") or rows_digest(got["rows"]) != q.get("digest"):
            raise SignedPackError(
                f"query {q.get('name')!r}: the rows in {DATA} do not give the manifest's row "
                "count and digest."
            )
    return len(queries)


def verify_signed(
    zf: zipfile.ZipFile, manifest: dict[str, object], trusted: VerifierKey | None = None
) -> str:
    """Verify an opened ``hub-report/v1`` or ``hub-export/v1`` pack; returns the OK line."""
    fmt = manifest.get("format")
    if fmt not in (REPORT_FORMAT, EXPORT_FORMAT):
        raise SignedPackError(f"format {fmt!r} is not {REPORT_FORMAT} or {EXPORT_FORMAT}.")
    key = pack_key(zf, manifest, trusted, SignedPackError)  # 1
    size = _checkpoint(zf, manifest, key)  # 2
    files = _files(zf, manifest)  # 3
    n = _queries(zf, manifest, files)  # 4
    try:  # 5
        note = open_note(read_member(zf, SIGNATURE, SignedPackError), [key])
    except NoteError as exc:
        raise SignedPackError(f"the manifest signature does not verify: {exc}") from None
    if note.text != note_text(str(fmt), read_member(zf, MANIFEST, SignedPackError)):
        raise SignedPackError("manifest.sig signs a different manifest.json (it was altered).")
    origin = "the trusted key (integrity and origin)" if trusted else "the key inside the pack"
    what = "report " + str(manifest.get("kind")) if fmt == REPORT_FORMAT else "export"
    return (
        f"OK {fmt} {what}: {n} quer{'y' if n == 1 else 'ies'} and {len(files)} files match the "
        f"manifest, derived at ledger checkpoint size {size}; signed by "
        f"{key.name}+{key.key_id:08x}, checked with {origin}{_scope(manifest)}"
    )


def _scope(manifest: Mapping[str, Any]) -> str:
    """Whose rows an export holds, for the OK line: the same SQL answers differently for each
    tenant's reader (and masks personal columns without pii.read)."""
    if manifest.get("format") != EXPORT_FORMAT:
        return ""
    if "tenant_scope" not in manifest:
        return "; the rows' tenant scope is not recorded (an export made before it was)"
    scope = manifest["tenant_scope"]
    out = "; rows of every tenant" if scope is None else f"; rows of tenant {str(scope)!r} only"
    masked = manifest.get("masked_columns") or []
    if isinstance(masked, list) and masked:
        out += f", personal columns masked ({len(masked)}: {', '.join(map(str, masked[:8]))}"
        out += ", ...)" if len(masked) > 8 else ")"
    return out
