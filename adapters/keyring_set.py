"""The local keyring's rows authenticated as a set: a MAC'd summary kept in its ``meta`` table.

For each table (``data_keys``, ``erased``, ``scoped_keys``) the summary holds the row count and
a keyed set digest: the sum, modulo 2**256, of HMAC-SHA256(set key, table tag || row fields)
over its rows. A sum is updated in O(1) per row added or removed; the whole summary is MAC'd
under the same set key, which is derived from the master key (so a file editor without the
master key can neither recompute a digest nor forge the MAC). ``wrapped`` and the timestamps
are left out: a wrapped key is already bound to its subject and version by its AEAD.

Layout of ``meta.set_summary`` (v2): for each table, count (8 bytes) || digest (32 bytes); the
generation (8 bytes: one more per committed change, so that a copy of the file put back whole is
older than the state the hub anchored outside it, ``governance.keyring_anchor``); then the
HMAC-SHA256 of all that under the set key with the label ``hub.keyring.set-summary.v2``. A v1
summary (no generation, label ``...v1``) reads as generation 0 and is written as v2 next time.
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from core.ports.keystore import KeyStoreError, KeyStoreState

_MOD = 1 << 256

Row = tuple[bytes | str | int, ...]
"""A row's authenticated fields: blobs, texts, integers."""
_SUMMARY_LABEL_V1 = b"hub.keyring.set-summary.v1"
_SUMMARY_LABEL = b"hub.keyring.set-summary.v2"

TABLES: dict[str, tuple[bytes, str]] = {
    # table: (tag, the query of its authenticated fields)
    "data_keys": (b"k", "SELECT subject, version FROM data_keys"),
    "erased": (b"e", "SELECT subject FROM erased"),
    "scoped_keys": (b"s", "SELECT family, tenant FROM scoped_keys"),
}

_BODY = 40 * len(TABLES)  # counts and digests

_ROW_MEANING = {
    "data_keys": "data key rows (a deleted row destroys a subject's key with no erasure record)",
    "erased": "erasure tombstones (an inserted one fakes an erasure, a removed one un-erases)",
    "scoped_keys": "tenant rows of scoped keys",
}


def set_key(master_key: bytes) -> bytes:
    """The key of the summary and of the row digests, derived from the master key."""
    return hmac.digest(master_key, b"hub.keyring.set-key.v1", "sha256")


def _fields(row: Row) -> bytes:
    """The row's fields, each length-prefixed, as bytes (blobs, ints, texts)."""
    out = bytearray()
    for value in row:
        if isinstance(value, int):
            raw = value.to_bytes(8, "big", signed=True)
        elif isinstance(value, str):
            raw = value.encode()
        else:
            raw = bytes(value)
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)


@dataclass
class SetSummary:
    """Row count and keyed set digest of each table, and how to check and keep them."""

    key: bytes
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    digests: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    generation: int = 0

    def element(self, table: str, row: Row) -> int:
        tag = TABLES[table][0]
        return int.from_bytes(hmac.digest(self.key, tag + _fields(row), "sha256"), "big")

    def add(self, table: str, row: Row) -> None:
        self.counts[table] += 1
        self.digests[table] = (self.digests[table] + self.element(table, row)) % _MOD

    def remove(self, table: str, row: Row) -> None:
        self.counts[table] -= 1
        self.digests[table] = (self.digests[table] - self.element(table, row)) % _MOD

    def body(self) -> bytes:
        return b"".join(
            self.counts[t].to_bytes(8, "big") + self.digests[t].to_bytes(32, "big") for t in TABLES
        )

    def encode(self) -> bytes:
        body = self.body() + self.generation.to_bytes(8, "big")
        return body + hmac.digest(self.key, _SUMMARY_LABEL + body, "sha256")

    def state(self) -> KeyStoreState:
        """What the hub anchors outside the file: the generation, the row counts and a digest
        of the summary (a keyed digest: it reveals nothing of the rows)."""
        body = self.body() + self.generation.to_bytes(8, "big")
        return KeyStoreState(self.generation, dict(self.counts), hashlib.sha256(body).hexdigest())

    @classmethod
    def decode(cls, key: bytes, blob: bytes, path: Path) -> SetSummary:
        """The stored summary, its MAC checked; a clear error when it was edited."""
        size, label = (
            (_BODY, _SUMMARY_LABEL_V1) if len(blob) == _BODY + 32 else (_BODY + 8, _SUMMARY_LABEL)
        )
        body, mac = blob[:size], blob[size:]
        good = hmac.digest(key, label + body, "sha256")
        if len(blob) != size + 32 or not hmac.compare_digest(mac, good):
            raise KeyStoreError(
                f"The row summary of the keyring {path} does not verify under the master key: "
                "the keyring was edited outside the hub. Restore it from a backup."
            )
        out = cls(key)
        for i, table in enumerate(TABLES):
            part = body[40 * i : 40 * (i + 1)]
            out.counts[table] = int.from_bytes(part[:8], "big")
            out.digests[table] = int.from_bytes(part[8:], "big")
        out.generation = int.from_bytes(body[_BODY:], "big")  # b"" (v1): 0
        return out

    @classmethod
    def of_rows(
        cls, key: bytes, db: sqlite3.Connection, tables: tuple[str, ...] = ()
    ) -> SetSummary:
        """The summary of the rows as they are (of ``tables``, or all)."""
        out = cls(key)
        for table in tables or tuple(TABLES):
            for row in db.execute(TABLES[table][1]):
                out.add(table, tuple(row))
        return out

    def check_counts(self, db: sqlite3.Connection, path: Path) -> None:
        """Cheap check: each table's row count against the summary's."""
        for table in TABLES:
            (count,) = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
            if count != self.counts[table]:
                raise _edited(path, table, f"it has {count} rows, the summary {self.counts[table]}")

    def check_rows(self, db: sqlite3.Connection, path: Path, tables: tuple[str, ...] = ()) -> None:
        """Full check of ``tables`` (or all): counts and digests recomputed from the rows."""
        found = SetSummary.of_rows(self.key, db, tables)
        for table in tables or tuple(TABLES):
            if found.counts[table] != self.counts[table]:
                raise _edited(
                    path,
                    table,
                    f"it has {found.counts[table]} rows, the summary {self.counts[table]}",
                )
            if found.digests[table] != self.digests[table]:
                raise _edited(path, table, "its rows do not match the summary's digest")


def _edited(path: Path, table: str, detail: str) -> KeyStoreError:
    return KeyStoreError(
        f"The keyring {path} was edited outside the hub: its table {table} "
        f"({_ROW_MEANING[table]}) does not match the MAC'd row summary ({detail}). Refusing to "
        "use it: restore the keyring from a backup, or investigate who wrote to the file."
    )
