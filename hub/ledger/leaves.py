"""Turning log records into ledger leaves, fast: leaf inputs, leaf hashes and query columns.

:func:`leaf_input` MUST produce exactly ``audit.leaf.encode`` (the evidence verifier recomputes
leaves with that one); it is a batch-friendly transcription that caches the encoding of repeated
header pairs (event type, producer, tenant repeat across a batch) and of topic prefixes.
``tests/unit/test_leaf.py`` checks both agree on generated records.

Query columns (not evidence, recomputed by ``verify``):
- ``actor``: the ``ce_source`` header (the producer or principal);
- ``action``: the ``hub_action`` header (audit actions) else ``ce_type`` (event type);
- ``resource``: the ``ce_subject`` header else the key as UTF-8 text (``0x<hex>`` if binary);
- ``tenant``: ``ce_tenant``.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

from audit import leaf as leaf_format
from hub.ports.eventlog import StoredRecord

H_ACTION = "hub_action"
H_SUBJECT = "ce_subject"

_sha256 = hashlib.sha256
_POS = struct.Struct(">IQq")
_U32 = struct.Struct(">I")
_LEAF = b"\x00"


class LeafEncoder:
    """Encodes records into leaf inputs and ledger rows; keeps small caches between batches."""

    def __init__(self) -> None:
        self._pairs: dict[tuple[str, bytes], bytes] = {}
        self._topics: dict[str, bytes] = {}

    def _pair(self, pair: tuple[str, bytes]) -> bytes:
        enc = self._pairs.get(pair)
        if enc is None:
            name, value = pair
            n = name.encode()
            if len(n) > 0xFFFF:
                raise leaf_format.LeafError(f"header {name[:40]!r} is too long to encode.")
            enc = struct.pack(">H", len(n)) + n + _U32.pack(len(value)) + value
            if len(value) <= 64 and len(self._pairs) < 100_000:  # ids and times: not reused
                self._pairs[pair] = enc
        return enc

    def leaf_input(self, r: StoredRecord) -> bytes:
        head = self._topics.get(r.topic)
        if head is None:
            t = r.topic.encode()
            head = self._topics[r.topic] = struct.pack(">BH", leaf_format.VERSION, len(t)) + t
        key, value, headers = r.key, r.value, r.headers
        found = list(map(self._pairs.get, headers))  # C-level lookups; misses are None
        encoded: list[bytes] = (
            [e or self._pair(p) for e, p in zip(found, headers, strict=True)]
            if None in found
            else found  # type: ignore[assignment]  # no None left
        )
        return b"".join(
            (
                head,
                _POS.pack(r.partition, r.offset, r.timestamp_ms),
                b"\x00" if key is None else b"\x01" + _sha256(key).digest(),
                _U32.pack(len(headers)),
                *encoded,
                b"\x00" if value is None else b"\x01" + _sha256(value).digest(),
            )
        )

    def leaf_hashes(self, records: Sequence[StoredRecord]) -> list[bytes]:
        sha, li = _sha256, self.leaf_input
        return [sha(_LEAF + li(r)).digest() for r in records]


def query_columns(r: StoredRecord) -> tuple[str | None, str | None, str | None, str | None]:
    """(actor, action, resource, tenant) of a record, from its headers and key."""
    h = dict(r.headers)
    src = h.get("ce_source")
    act = h.get(H_ACTION) or h.get("ce_type")
    subj = h.get(H_SUBJECT)
    ten = h.get("ce_tenant")
    if subj is not None:
        resource: str | None = subj.decode("utf-8", "replace")
    elif r.key is None:
        resource = None
    else:
        try:
            resource = r.key.decode("utf-8")
        except UnicodeDecodeError:
            resource = "0x" + r.key.hex()
    return (
        None if src is None else src.decode("utf-8", "replace"),
        None if act is None else act.decode("utf-8", "replace"),
        resource,
        None if ten is None else ten.decode("utf-8", "replace"),
    )
