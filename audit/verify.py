"""``hub-verify``: the standalone auditor's verifier (stdlib, ``cryptography`` and ``audit`` only).

An auditor runs this without the rest of the hub. Subcommands::

    hub-verify root --leaves-file F
    hub-verify inclusion --leaf-hash H --index I --size N --root R --proof P1,P2,...
    hub-verify consistency --size1 M --size2 N --root1 R1 --root2 R2 --proof P1,P2,...
    hub-verify checkpoint FILE --public-key KEYFILE [--previous PREV [--proof P1,...]]
    hub-verify bundle EVIDENCE.zip [--public-key KEYFILE]
    hub-verify leaf EVENT.json [--public-key KEYFILE]

It also runs as a script from a copy of the ``audit/`` folder alone (``python3 audit/verify.py
...``, even ``python3 -I``): run that way, it puts the folder's parent first on ``sys.path`` so
that ``audit`` is the copy beside it, whatever else is installed.

Exit status: 0 valid (``OK ...`` on stdout), 1 invalid (the reason on stderr), 2 bad usage
(malformed hex, missing arguments, unreadable file, unsupported evidence pack). Hashes are 64 hex
digits, either case; a proof is comma-separated hashes, the empty string for an empty proof.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import sys
import zipfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

if not __package__:  # run as a script: import the ``audit`` package this file belongs to
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audit import bundle, signed
from audit import leaf as leaf_format
from audit.errors import AuditError, MalformedKeyError
from audit.merkle import (
    CompactRange,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from audit.note import (
    Checkpoint,
    VerifierKey,
    checkpoint_hash,
    open_checkpoint,
    parse_verifier_key,
)
from audit.printable import printable

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2

_HEX = frozenset("0123456789abcdefABCDEF")


class UsageError(Exception):
    """Bad input to the tool itself (not evidence that fails): exit status 2."""


# --------------------------------------------------------------------------------------------
# Argument parsing helpers


def parse_hash(text: str, what: str) -> bytes:
    """64 hex digits (either case) to 32 bytes; anything else is a ``UsageError``."""
    if len(text) != 64 or not set(text) <= _HEX:
        raise UsageError(f"{what} must be 64 hex digits (a SHA-256 hash), got {text!r}.")
    return bytes.fromhex(text)


def parse_proof(text: str) -> list[bytes]:
    """Comma-separated hashes; the empty string is the empty proof."""
    if text == "":
        return []
    return [parse_hash(p, f"proof element {i}") for i, p in enumerate(text.split(","))]


def _size(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return int(text)


def _read_bytes(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path!r}: {exc.strerror or exc}.") from None


# --------------------------------------------------------------------------------------------
# Subcommands: each returns the OK line or raises AuditError (invalid) / UsageError (usage).


def cmd_root(args: argparse.Namespace) -> str:
    # Streamed through a compact range: memory stays O(log n) for any number of leaves.
    tree = CompactRange()
    try:
        with open(args.leaves_file, encoding="ascii", newline="\n") as f:
            for lineno, line in enumerate(f, 1):
                data = line.rstrip("\n").rstrip("\r")
                if len(data) % 2 or not set(data) <= _HEX:
                    raise UsageError(
                        f"{args.leaves_file}:{lineno}: leaf must be hex-encoded bytes, "
                        f"got {data[:80]!r}."
                    )
                tree.append(leaf_hash(bytes.fromhex(data)))
    except OSError as exc:
        raise UsageError(f"cannot read leaves file {args.leaves_file!r}: {exc}.") from None
    except UnicodeDecodeError:
        raise UsageError(f"leaves file {args.leaves_file!r} is not ASCII hex text.") from None
    return tree.root().hex()


def cmd_inclusion(args: argparse.Namespace) -> str:
    leaf = parse_hash(args.leaf_hash, "--leaf-hash")
    root = parse_hash(args.root, "--root")
    proof = parse_proof(args.proof)
    verify_inclusion(leaf, args.index, args.size, proof, root)
    return (
        f"OK inclusion: leaf hash {leaf.hex()} is at index {args.index} of the tree of size "
        f"{args.size} with root {root.hex()}"
    )


def cmd_consistency(args: argparse.Namespace) -> str:
    root1 = parse_hash(args.root1, "--root1")
    root2 = parse_hash(args.root2, "--root2")
    proof = parse_proof(args.proof)
    verify_consistency(args.size1, args.size2, root1, root2, proof)
    return (
        f"OK consistency: the tree of size {args.size2} with root {root2.hex()} extends the "
        f"tree of size {args.size1} with root {root1.hex()}"
    )


def _describe(cp: Checkpoint) -> str:
    parts = [f"origin={cp.origin}", f"size={cp.size}", f"root={cp.root.hex()}"]
    if cp.time_micros is not None:
        when = datetime.fromtimestamp(cp.time_micros / 1e6, tz=UTC)
        parts.append(f"time={when.isoformat()}")
    if cp.prev_hash is not None:
        parts.append(f"prev={cp.prev_hash.hex()}")
    return " ".join(parts)


def _verifier_key_file(path: str) -> VerifierKey:
    key_text = _read_bytes(path, "public key file")
    try:
        return parse_verifier_key(key_text.decode("utf-8"))
    except (MalformedKeyError, UnicodeDecodeError) as exc:
        raise UsageError(f"public key file {path!r} is not a verifier key: {exc}") from None


def cmd_checkpoint(args: argparse.Namespace) -> str:
    key = _verifier_key_file(args.public_key)
    message = _read_bytes(args.file, "checkpoint file")
    cp, note = open_checkpoint(message, [key])
    signers = ", ".join(f"{s.name}+{s.key_id:08x}" for s in note.verified)
    line = f"OK checkpoint {_describe(cp)} signed by {signers}"
    if args.previous is None:
        if args.proof is not None:
            raise UsageError("--proof needs --previous (the checkpoint it proves consistency to).")
        return line
    # Chain link: the previous checkpoint MUST verify with the same key, be named by ``prev``,
    # be no larger and no later; with --proof the two trees MUST be consistent.
    prev_message = _read_bytes(args.previous, "previous checkpoint file")
    prev_cp, _ = open_checkpoint(prev_message, [key])
    want = checkpoint_hash(prev_message)
    if cp.prev_hash != want:
        got = "none" if cp.prev_hash is None else cp.prev_hash.hex()
        raise AuditError(
            f"checkpoint's prev hash is {got}, but the previous checkpoint hashes to {want.hex()}."
        )
    if prev_cp.origin != cp.origin:
        raise AuditError(f"origins differ: {prev_cp.origin!r} then {cp.origin!r}.")
    if (
        cp.time_micros is not None
        and prev_cp.time_micros is not None
        and cp.time_micros < prev_cp.time_micros
    ):
        raise AuditError(
            f"checkpoint time {cp.time_micros} is before the previous one's "
            f"({prev_cp.time_micros})."
        )
    if args.proof is not None:
        verify_consistency(prev_cp.size, cp.size, prev_cp.root, cp.root, parse_proof(args.proof))
        return f"{line}; chains to and is consistent with the checkpoint of size {prev_cp.size}"
    if cp.size < prev_cp.size:
        raise AuditError(f"tree shrank from {prev_cp.size} to {cp.size}.")
    return f"{line}; chains to the checkpoint of size {prev_cp.size} (consistency not checked)"


def _field(event: dict[str, object], name: str, kind: type) -> object:
    if name not in event:
        raise UsageError(f"event file has no {name!r} field.")
    value = event[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UsageError(f"event field {name!r} must be a {kind.__name__}, got {value!r}.")
    return value


def _b64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise UsageError(f"{what} must be base64 text, got {text!r}.")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UsageError(f"{what} is not valid base64: {text[:40]!r}.") from None


def _digest(event: dict[str, object], name: str) -> bytes | None:
    """SHA-256 of the ``name`` bytes (base64), or its ``<name>_sha256`` (hex); None for null."""
    if name in event:
        raw = event[name]
        return None if raw is None else hashlib.sha256(_b64(raw, f"event field {name!r}")).digest()
    hexed = event.get(f"{name}_sha256", "absent")
    if hexed is None:
        return None
    if not isinstance(hexed, str) or hexed == "absent":
        raise UsageError(f"event file has neither {name!r} (base64) nor {name}_sha256 (hex).")
    return parse_hash(hexed, f"{name}_sha256")


_COLUMNS = ("actor", "action", "resource")


def _stated_fields(event: dict[str, object], headers: list[tuple[str, bytes]], where: str) -> None:
    """What the event file states beside the hashed fields, checked against them (as an
    evidence pack's entries are, ``audit.bundle``): an auditor reads ``actor``, ``time`` or
    ``event_id`` from the file ``hub ledger find --export`` wrote, so an edited one must not
    pass under the OK line. Time and tenant; the ledger's actor, action and resource (from the
    headers and the key); ``event_id`` (the ``ce_id`` header); a ``key_sha256`` or
    ``value_sha256`` stated beside the bytes. A field the file leaves out is not checked."""
    for name in ("key", "value"):
        stated = event.get(f"{name}_sha256")
        if name in event and stated is not None:
            digest = _digest(event, name)
            if digest is None or parse_hash(str(stated), f"{name}_sha256") != digest:
                raise AuditError(
                    f"{where}: its {name}_sha256 {stated} is not the SHA-256 of its {name} "
                    "(the event file was altered)."
                )
    key = _digest(event, "key")
    shown: dict[str, object] = {k: v for k, v in event.items() if k in ("time", "tenant")}
    shown |= {"timestamp_ms": event["timestamp_ms"], "topic": "hub.leaf"}  # columns below
    shown["key_sha256"] = None if key is None else key.hex()
    shown["leaf_columns"] = {k: event[k] for k in _COLUMNS if k in event}
    try:
        bundle.check_displayed(shown, headers, where)
    except bundle.PackError as exc:
        raise AuditError(str(exc).replace("entry's display fields", "event file")) from None
    if "event_id" in event:
        ids = [v for n, v in headers if n == "ce_id"]
        want = ids[0].decode("utf-8", "replace") if len(ids) == 1 else None
        if event["event_id"] != want:
            raise AuditError(
                f"{where}: its event_id is {event['event_id']!r}, but the hashed record's ce_id "
                f"header says {want!r} (the event file was altered)."
            )


def cmd_leaf(args: argparse.Namespace) -> str:
    """Recompute an exported event's leaf hash; check its inclusion proof when it has one."""
    raw = _read_bytes(args.event, "event file")
    try:
        event = json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"event file {args.event!r} is not JSON: {exc}.") from None
    if not isinstance(event, dict):
        raise UsageError(f"event file {args.event!r} must hold one JSON object.")
    topic = _field(event, "topic", str)
    partition = _field(event, "partition", int)
    offset = _field(event, "offset", int)
    ts = _field(event, "timestamp_ms", int)
    headers_raw = _field(event, "headers", list)
    assert isinstance(topic, str) and isinstance(partition, int) and isinstance(offset, int)
    assert isinstance(ts, int) and isinstance(headers_raw, list)
    headers: list[tuple[str, bytes]] = []
    for i, h in enumerate(headers_raw):
        if not (isinstance(h, list) and len(h) == 2 and isinstance(h[0], str)):
            raise UsageError(f"header {i} must be [name, base64 value], got {h!r}.")
        headers.append((h[0], _b64(h[1], f"header {h[0]!r}")))
    try:
        data = leaf_format.encode_digests(
            topic, partition, offset, ts, _digest(event, "key"), headers, _digest(event, "value")
        )
    except leaf_format.LeafError as exc:
        raise UsageError(f"the event cannot be encoded as a leaf: {exc}") from None
    leaf = leaf_hash(data)
    where = f"{topic}[{partition}]@{offset}"
    stated = event.get("leaf_hash")
    if stated is not None:
        if not isinstance(stated, str):
            raise UsageError(f"leaf_hash must be hex text, got {stated!r}.")
        if parse_hash(stated, "leaf_hash") != leaf:
            raise AuditError(
                f"the leaf hash recomputed from the event {where} is {leaf.hex()}, but the "
                f"file states {stated.lower()}: the event was changed."
            )
    _stated_fields(event, headers, where)  # once the hashed fields are known to be the event's
    proof_raw, index, cp = event.get("proof"), event.get("index"), event.get("checkpoint")
    if proof_raw is None or index is None or not isinstance(cp, dict):
        if args.public_key is not None:
            raise UsageError("--public-key needs an event file with index, proof and checkpoint.")
        return f"OK leaf: the leaf hash of {where} is {leaf.hex()} (no inclusion proof checked)"
    if not isinstance(index, int) or not isinstance(proof_raw, list):
        raise UsageError("index must be an integer and proof a list of hex hashes.")
    proof = [parse_hash(str(p), f"proof element {i}") for i, p in enumerate(proof_raw)]
    size, root = cp.get("size"), cp.get("root")
    if not isinstance(size, int) or not isinstance(root, str):
        raise UsageError("checkpoint must give size (integer) and root (hex).")
    root_bytes = parse_hash(root, "checkpoint root")
    signed = ""
    if args.public_key is not None:
        note = cp.get("note")
        if not isinstance(note, str):
            raise UsageError("--public-key needs the checkpoint's signed note in the event file.")
        opened, _ = open_checkpoint(note.encode(), [_verifier_key_file(args.public_key)])
        if (opened.size, opened.root) != (size, root_bytes):
            raise AuditError(
                f"the signed checkpoint is size {opened.size} root {opened.root.hex()}, but the "
                f"file states size {size} root {root}."
            )
        signed = f", signed by {opened.origin}"
    verify_inclusion(leaf, index, size, proof, root_bytes)
    return (
        f"OK leaf: the leaf hash of {where} is {leaf.hex()}, entry {index} of the tree of size "
        f"{size} with root {root_bytes.hex()}{signed}"
        + ("" if signed else " (checkpoint signature not checked: give --public-key)")
    )


BundleVerifier = Callable[..., str]
"""Verifies one evidence pack format: gets the open zip and its parsed ``manifest.json`` (and,
only when ``--public-key`` is given, ``trusted=<VerifierKey>`` as a keyword), returns the OK
line, raises ``AuditError`` when the evidence fails."""

BUNDLE_FORMATS: dict[str, BundleVerifier] = {
    bundle.FORMAT: bundle.verify_pack,
    signed.REPORT_FORMAT: signed.verify_signed,  # console reports (issue 15)
    signed.EXPORT_FORMAT: signed.verify_signed,  # signed query exports (issue 15)
}
"""The evidence pack hook: ``manifest.json``'s ``"format"`` value → its verifier."""


def cmd_bundle(args: argparse.Namespace) -> str:
    try:
        zf = zipfile.ZipFile(args.evidence)
    except (OSError, zipfile.BadZipFile) as exc:
        raise UsageError(f"cannot open evidence pack {args.evidence!r}: {exc}.") from None
    with zf:
        try:
            manifest = json.loads(zf.read("manifest.json"))
        except KeyError:
            raise UsageError(f"evidence pack {args.evidence!r} has no manifest.json.") from None
        except (ValueError, zipfile.BadZipFile) as exc:
            raise UsageError(f"evidence pack manifest.json is unreadable: {exc}.") from None
        fmt = manifest.get("format") if isinstance(manifest, dict) else None
        verifier = BUNDLE_FORMATS.get(fmt) if isinstance(fmt, str) else None
        if verifier is None:
            known = ", ".join(sorted(BUNDLE_FORMATS)) or "none"
            raise UsageError(
                f"evidence pack format {fmt!r} is not supported by this version of hub-verify "
                f"(supported: {known}); upgrade hub-verify."
            )
        assert isinstance(manifest, dict)
        if args.public_key is None:
            return verifier(zf, manifest)
        return verifier(zf, manifest, trusted=_verifier_key_file(args.public_key))


# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hub-verify",
        description="Verify the hub's audit ledger evidence (RFC 9162 proofs, signed checkpoints)"
        " without the hub. Exit 0 valid, 1 invalid, 2 bad usage.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("root", help="print the Merkle root of hex-encoded leaf inputs")
    r.add_argument("--leaves-file", required=True, help="one hex leaf input per line")
    r.set_defaults(func=cmd_root)

    i = sub.add_parser("inclusion", help="verify an inclusion proof")
    i.add_argument("--leaf-hash", required=True)
    i.add_argument("--index", required=True, type=_size)
    i.add_argument("--size", required=True, type=_size)
    i.add_argument("--root", required=True)
    i.add_argument("--proof", required=True, help='comma-separated hex hashes; "" when empty')
    i.set_defaults(func=cmd_inclusion)

    c = sub.add_parser("consistency", help="verify a consistency proof")
    c.add_argument("--size1", required=True, type=_size)
    c.add_argument("--size2", required=True, type=_size)
    c.add_argument("--root1", required=True)
    c.add_argument("--root2", required=True)
    c.add_argument("--proof", required=True, help='comma-separated hex hashes; "" when empty')
    c.set_defaults(func=cmd_consistency)

    k = sub.add_parser("checkpoint", help="verify a signed checkpoint (C2SP tlog-checkpoint)")
    k.add_argument("file", help="the signed checkpoint note")
    k.add_argument("--public-key", required=True, help="file holding the verifier key string")
    k.add_argument("--previous", help="the previous signed checkpoint: check the prev chain link")
    k.add_argument("--proof", help="consistency proof from --previous to this checkpoint")
    k.set_defaults(func=cmd_checkpoint)

    b = sub.add_parser("bundle", help="verify an evidence pack (.zip)")
    b.add_argument("evidence")
    b.add_argument(
        "--public-key",
        help="file holding the hub's verifier key, obtained independently of the pack: without "
        "it, the key inside the pack proves integrity only, not origin",
    )
    b.set_defaults(func=cmd_bundle)

    f = sub.add_parser(
        "leaf", help="recompute an exported event's leaf hash and check its inclusion proof"
    )
    f.add_argument(
        "event",
        help="JSON: topic, partition, offset, timestamp_ms, headers [[name, base64]], key and "
        "value (base64 or null); optionally leaf_hash, index, proof and checkpoint (as written "
        "by `hub ledger find --export`)",
    )
    f.add_argument("--public-key", help="verifier key file: also check the checkpoint's signature")
    f.set_defaults(func=cmd_leaf)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 valid, 1 invalid, 2 bad usage)."""
    args = build_parser().parse_args(argv)  # argparse itself exits 2 on bad usage
    func: Callable[[argparse.Namespace], str] = args.func
    try:
        # Names and kinds inside a pack are the sender's text: shown escaped (audit.printable).
        print(printable(func(args)))
    except UsageError as exc:
        print(f"hub-verify: usage error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except AuditError as exc:
        print(f"hub-verify: INVALID: {printable(str(exc))}", file=sys.stderr)
        return EXIT_INVALID
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
