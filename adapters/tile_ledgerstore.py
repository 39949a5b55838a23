"""TileLedgerStore: the LedgerStore port kept as C2SP tlog-tiles (c2sp.org/tlog-tiles).

``<data_dir>/ledger-tiles.sqlite`` (``HUB_LEDGER_STORE=tiles``). No per-leaf indexed rows:

- ``tiles``: the Merkle tree as tlog-tiles hash tiles: tile ``(L, N)`` holds the hashes of tree
  level ``8 * L``, nodes ``[N * 256, (N + 1) * 256)``, 32 bytes each, back to back (a *full*
  tile, 8 KiB, never changes) or fewer (the level's right-most, *partial* tile, which grows in
  place; a partial tile of width W served over HTTP is its first W hashes, and a node once
  stored never changes). Level 0 holds the leaf hashes themselves, so no other table repeats
  them. Tree levels between two tile levels are not stored: a node of level ``8L + d`` is the
  RFC 9162 hash of ``2**d`` consecutive hashes of ONE tile of level L, computed on read.
- ``edges``: the right-most partial chunk of every level that is not a tile level (at most a
  few dozen small rows): what the tree builder needs to append without rehashing tiles. Not
  evidence: reads of the tree never use it, and a wrong edge shows in the next tile written.
- ``batches``: the leaf metadata queries need, ONE row per appended batch: its first leaf
  index, leaf count, time range, and the columns (topic, partition, offset, log time, actor,
  action, resource, tenant) as one blob, the columnar side index (``adapters.tile_sideindex``:
  version 2 dictionary/delta columns under zstd; version 1, zstd Arrow IPC, still read), its
  SHA-256 and its MAC (``batch_mac``, below).
- ``ranges``: per batch and (topic, partition), the lowest and highest log offset: finds the
  batch holding a record without a per-record index, and refuses a position stored twice.
  Derived from the batch's columns; a batch's rows are under their own MAC (``batches.rmac``,
  ``ranges_mac``): a range edited or removed would turn "which leaf holds this record?" into
  "none", which the cold tier and ``hub lake verify`` read as "nothing was dropped".
- ``positions``, ``checkpoints``, ``meta``: as the SQLite store.

Why SQLite blobs rather than files: a checkpoint must never point at tiles that are not on disk.
Tiles, side index, positions and checkpoint of one ``write()`` commit in ONE SQLite transaction
(WAL): after a crash either all of it is there or none of it, with no ordering of file fsyncs
and renames to get right, and two writers (two processes) serialize on ``BEGIN IMMEDIATE`` as
the contract asks. The HTTP layer serves the tiles in the tlog-tiles URL layout from here.

The side index's MAC. The SHA-256 of a batch catches damage, not forgery: whoever can write
this file rewrites a row's tenant, topic, action or time, recomputes the SHA, and readers that
filter on those columns (a tenant's ``entries``, evidence selections, the access review) drop
the entry without reading its log record. So each batch also carries
``HMAC-SHA256(side_key, label | first | n | min_ts | max_ts | SHA-256(cols))``: ``side_key`` is
derived by the composition root from the hub's MAC key (``hub.bootstrap.derived_secret``), kept
in ``keys/``, never in this file; the batch's position and time range are under the MAC, so a
batch (or its MAC) moved, swapped or replayed elsewhere fails, and so does a time range
narrowed to hide it from a period's query. ``meta.side_mac_from`` (under its own MAC) names the
first keyed batch: batches before it were written before the MAC existed (``KEYED_SINCE``) and
are counted as *unkeyed* (their SHA-256 and ``verify --full`` still check them); a batch at or
after it without a MAC had its MAC removed (a downgrade) and fails, as does a keyed batch below
it or a keyed batch when the marker is gone. Every read of a batch checks it when the handle
has the key; a handle without one (a backup's copy opened alone) checks the SHA-256 only.
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import struct
from collections import OrderedDict
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from adapters import tile_sideindex as sideindex
from adapters.sqlite_ledgerfile import (
    INTENTS_TABLE,
    SHARED_TABLES,
    CheckpointWrites,
    SqliteLedgerFile,
    create_schema,
    immediate,
    positions_of,
)
from adapters.sqlite_open import MMAP_BYTES
from audit.merkle import HASH_SIZE
from audit.tiles import TILE_HEIGHT, TILE_WIDTH, tile_path
from core.errors import HubError
from core.hashing import parents
from core.ports.ledgerstore import (
    CHUNK,
    Chunk,
    LeafBatch,
    LeafQuery,
    LeafRow,
    LedgerWrite,
    Positions,
    StoredLeafBatch,
    column_values,
    int_values,
    leaf_schema,
)

SCHEMA_VERSION = 2
"""Store versions: 1 kept the side index as zstd Arrow IPC streams in 4 KiB pages; 2 writes it
as ``adapters.tile_sideindex`` version 2 in 1 KiB pages (a full 8 KiB tile then takes 1.6% more
than its bytes on disk, against 7.2% in 4 KiB pages: measured in docs/benchmarks/s8-storage.md).
A version-1 file is upgraded on open by marking it version 2: its batches stay as they are
(each blob says its encoding) and new ones are written as version 2; its page size stays until
a ``VACUUM``."""
PAGE_SIZE = 1024  # for files created at version 2
WAL_KEEP = 1 << 20  # journal_size_limit: the WAL is cut back to this after a checkpoint
APPLICATION_ID = 0x48554254  # "HUBT"
TILE_BYTES = TILE_WIDTH * HASH_SIZE
assert TILE_WIDTH == CHUNK

_SCHEMA = (
    """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE tiles (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE edges (level INTEGER PRIMARY KEY, chunk INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE batches (
    first INTEGER PRIMARY KEY,
    n INTEGER NOT NULL,
    min_ts INTEGER NOT NULL,
    max_ts INTEGER NOT NULL,
    cols BLOB NOT NULL,
    digest BLOB NOT NULL,
    mac BLOB,
    rmac BLOB
);
CREATE TABLE ranges (
    topic TEXT NOT NULL,
    part INTEGER NOT NULL,
    lo INTEGER NOT NULL,
    hi INTEGER NOT NULL,
    batch INTEGER NOT NULL,
    PRIMARY KEY (topic, part, lo)
) WITHOUT ROWID;
INSERT INTO meta VALUES ('size', '0');
"""
    + SHARED_TABLES
)

_SIDE_SCHEMA = leaf_schema()  # the port's LeafBatch columns
_sha256 = hashlib.sha256

KEYED_SINCE = "hub 0.1.0 session 15 (side-index MAC)"
"""The release that began writing a MAC per side-index batch (messages about unkeyed ones)."""
_MAC_LABEL = b"hub ledger side-index batch v1\x00"
_FROM_LABEL = b"hub ledger side-index keyed from v1\x00"
_MAC_POS = struct.Struct("<QQqq")  # first, n, min_ts, max_ts
_BATCH_COLS = "first, n, min_ts, max_ts, cols, digest, mac"
_RANGES_LABEL = b"hub ledger side-index ranges v1\x00"
Span = tuple[str, int, int, int]
"""A ``ranges`` row of one batch: topic, partition, lowest and highest log offset."""
Stored = tuple[int, int, int, int, bytes, bytes, bytes | None]
"""A ``batches`` row: first, n, min_ts, max_ts, cols, digest, mac (None: unkeyed)."""


def batch_mac(key: bytes, first: int, n: int, min_ts: int, max_ts: int, digest: bytes) -> bytes:
    """The MAC of a side-index batch: its position and time range and its columns' SHA-256."""
    msg = _MAC_LABEL + _MAC_POS.pack(first, n, min_ts, max_ts) + digest
    return hmac.new(key, msg, _sha256).digest()


def spans_of(table: pa.Table, dictionaries: sideindex.Dicts | None = None) -> list[Span]:
    """The (topic, partition) offset ranges of one side-index batch's columns, sorted: what
    its ``ranges`` rows MUST hold. With the topic column's dictionary
    (``LeafBatch.dictionaries``: distinct texts, int32 indexes) and no null topic, from the
    indexes and the integer columns (:func:`_spans_by_index`: the topic column is not read);
    else grouped by Arrow (the reference)."""
    given = dictionaries.get("topic") if dictionaries else None
    if given is not None:
        idx = np.frombuffer(given[1], dtype="<i4")
        part, off = table.column("part"), table.column("off")
        whole = len(idx) == table.num_rows and not part.null_count and not off.null_count
        if whole and len(idx) and int(idx.min()) >= 0:
            return _spans_by_index(given[0], idx, part, off)
    grouped = table.group_by(["topic", "part"], use_threads=False).aggregate(
        [("off", "min"), ("off", "max")]
    )
    return sorted(
        zip(
            grouped.column("topic").to_pylist(),
            grouped.column("part").to_pylist(),
            grouped.column("off_min").to_pylist(),
            grouped.column("off_max").to_pylist(),
            strict=True,
        )
    )


def _spans_by_index(texts: Sequence[str], idx: Any, part: Any, off: Any) -> list[Span]:
    """:func:`spans_of` from the topic indexes (``texts[idx[i]]`` is row i's topic; the texts
    distinct): the rows cut into runs of one (topic, partition), each run's lowest and
    highest offset, runs of one key merged. The same spans as the Arrow grouping
    (``tests/adversarial/test_s22_verify_sync.py``), without Arrow's query engine (its import
    loads pandas) and without reading a string."""
    parts = int_values(part.combine_chunks())
    offs = int_values(off.combine_chunks())
    key = (idx.astype(np.int64) << np.int64(32)) | parts.view(np.uint32).astype(np.int64)
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    lows = np.minimum.reduceat(offs, starts).tolist()
    highs = np.maximum.reduceat(offs, starts).tolist()
    spans: dict[tuple[int, int], list[int]] = {}
    for t, p, lo, hi in zip(idx[starts].tolist(), parts[starts].tolist(), lows, highs, strict=True):
        got = spans.get((t, p))
        if got is None:
            spans[(t, p)] = [lo, hi]
        else:
            got[0], got[1] = min(got[0], lo), max(got[1], hi)
    return sorted((texts[t], p, lo, hi) for (t, p), (lo, hi) in spans.items())


def ranges_mac(key: bytes, first: int, spans: Sequence[Span]) -> bytes:
    """The MAC of the ``ranges`` rows of the batch at leaf ``first`` (all of them, sorted):
    a row edited, removed, added or moved to another batch fails it."""
    parts = [_RANGES_LABEL, struct.pack("<QI", first, len(spans))]
    for topic, part, lo, hi in sorted(spans):
        name = topic.encode()
        parts += [struct.pack("<I", len(name)), name, struct.pack("<qqq", part, lo, hi)]
    return hmac.new(key, b"".join(parts), _sha256).digest()


def _from_mac(key: bytes, first: int) -> str:
    return hmac.new(key, _FROM_LABEL + struct.pack("<Q", first), _sha256).hexdigest()


def _stored(row: Sequence[Any]) -> Stored:
    f, n, lo, hi, cols, digest, mac = row
    return int(f), int(n), int(lo), int(hi), bytes(cols), bytes(digest), mac and bytes(mac)


def _altered(first: int, why: str) -> HubError:
    return HubError(
        f"The side-index batch starting at leaf {first} {why}; the tile store was altered "
        "(entries could be hidden from or misattributed in filtered reads): run `hub ledger "
        "verify --full` and restore the ledger file from a backup.",
        code="ledger_store",
    )


def keyed_from(conn: sqlite3.Connection, key: bytes | None) -> int | None:
    """The first leaf of the first keyed batch (``meta.side_mac_from``), its MAC checked when
    ``key`` is given; None when no batch was written with a MAC."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'side_mac_from'").fetchone()
    if row is None:
        return None
    first, _, tag = str(row[0]).partition(" ")
    if not (first.isascii() and first.isdigit()) or (
        key is not None and not hmac.compare_digest(tag, _from_mac(key, int(first)))
    ):
        raise HubError(
            f"The side-index keyed-from marker ({row[0]!r}) does not match its MAC; the tile "
            "store was altered: run `hub ledger verify --full`.",
            code="ledger_store",
        )
    return int(first)


def check_batch(stored: Stored, key: bytes | None, keyed: int | None) -> None:
    """The batch's SHA-256, and with ``key`` its MAC and place among keyed batches (module
    docstring); HubError naming the batch otherwise."""
    first, n, lo, hi, blob, digest, mac = stored
    _check_digest(blob, digest, first)
    if key is None:
        return
    if mac is None:
        if keyed is not None and first >= keyed:
            raise _altered(
                first,
                f"has no MAC though every batch from leaf {keyed} on was written with one "
                "(its MAC was removed)",
            )
        return
    if keyed is None or first < keyed:
        raise _altered(
            first,
            "has a MAC but the keyed-from marker "
            + ("is missing" if keyed is None else f"says keyed batches start at leaf {keyed}"),
        )
    if not hmac.compare_digest(mac, batch_mac(key, first, n, lo, hi, digest)):
        raise _altered(
            first,
            f"({n} leaves) does not match its MAC: its columns, position or time range were "
            "rewritten, or its MAC is another batch's",
        )


def side_table(rows: Sequence[LeafRow]) -> pa.Table:
    """The batch's query columns (topic .. tenant) as an Arrow table: one C-level transpose of
    the rows, then one array per column (no per-row Python)."""
    cols: Sequence[Sequence[Any]] = list(zip(*rows, strict=True))[1:9] if rows else [()] * 8
    return pa.Table.from_arrays(
        [pa.array(c, type=f.type) for c, f in zip(cols, _SIDE_SCHEMA, strict=True)],
        schema=_SIDE_SCHEMA,
    )


def encode_side_index(
    rows: Sequence[LeafRow] | pa.Table,
    version: int = SCHEMA_VERSION,
    dictionaries: sideindex.Dicts | None = None,
) -> bytes:
    """The batch's query columns as one blob: ``adapters.tile_sideindex`` version 2 (version 1,
    a zstd Arrow IPC stream, when ``version`` is 1 or version 2 cannot hold the batch); string
    columns in ``dictionaries`` (``LeafBatch.dictionaries``) are written from them."""
    # a table, or a batch's columns built on read (``LeafBatch.columns``): they have ``column``
    table = rows if hasattr(rows, "column") else side_table(rows)
    if version >= 2:
        return sideindex.encode(table, dictionaries)
    return sideindex.encode_v1(table)


def decode_side_index(
    blob: bytes, digest: bytes | None = None, first: int = 0, n: int | None = None
) -> pa.Table:
    """The columns of one batch (either encoding); HubError when the blob does not match its
    digest, is damaged, or (``n`` given) holds another number of rows than its batch row says.
    The digest covers the columns only, so a batch swapped with another, digest and all,
    shows as a row count that differs or as columns that differ from the log records."""
    if digest is not None:
        _check_digest(blob, digest, first)
    table = sideindex.decode(blob, first)
    if n is not None and table.num_rows != n:
        raise HubError(
            f"The side-index batch starting at leaf {first} holds {table.num_rows} rows, not the "
            f"{n} its batch row names (batches were swapped or moved); the tile store was "
            "altered: run `hub ledger verify --full`.",
            code="ledger_store",
        )
    return table


def _hashes_complete(nxt: int, hashes: bytes, rows: int) -> None:
    """HubError unless the level-0 tiles held a leaf hash for each of ``rows`` side-index rows
    from leaf ``nxt``."""
    if len(hashes) != rows * HASH_SIZE:
        raise HubError(
            f"Leaf {nxt + len(hashes) // HASH_SIZE} has a side-index row but no leaf hash in its "
            "level-0 tile; the tile store is damaged: run `hub ledger verify --full`.",
            code="ledger_store",
        )


def _encoded_batch(first: int, n: int, hashes: bytes, body: bytes) -> StoredLeafBatch:
    """A whole version-2 batch of ``n`` rows from ``first`` (inflated ``body``) as
    :meth:`TileLedgerStore.iter_stored_batches` hands it."""

    def same(batch: LeafBatch) -> bool:
        return sideindex.body_of(batch.columns, batch.dictionaries) == body

    def load() -> LeafBatch:
        return LeafBatch(first, hashes, sideindex.decode_body(n, body, first))

    keys = sideindex.keys_of(n, body, first)
    return StoredLeafBatch(first, hashes, keys, same, load, dictionaries_only=True)


def _check_digest(blob: bytes, digest: bytes, first: int) -> None:
    if _sha256(blob).digest() != digest:
        raise HubError(
            f"The side-index batch starting at leaf {first} does not match its SHA-256; the tile "
            "store was altered: run `hub ledger verify --full`.",
            code="ledger_store",
        )


def fold_up(nodes: bytes, depth: int) -> bytes:
    """Hash ``nodes`` (back to back) up ``depth`` levels; complete parents only."""
    for _ in range(depth):
        nodes = parents(nodes)
    return nodes


def _size(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT value FROM meta WHERE key = 'size'").fetchone()[0])


def _tiles(conn: sqlite3.Connection, level: int, lo: int, hi: int) -> bytes:
    """The tiles ``[lo, hi]`` of a tile level, joined (stops at the first one missing)."""
    rows = conn.execute(
        "SELECT idx, data FROM tiles WHERE level = ? AND idx BETWEEN ? AND ? ORDER BY idx",
        (level, lo, hi),
    ).fetchall()
    out: list[bytes] = []
    for want, (idx, data) in enumerate(rows, start=lo):
        if idx != want:
            break
        out.append(bytes(data))
        if len(data) < TILE_BYTES:
            break
    return b"".join(out)


_RANGES_EDITED = (
    "has offset ranges (table ``ranges``) that do not match their MAC: a range was edited, "
    "removed, added or moved, so a lookup by log position could miss its entry"
)
_RANGES_ORPHAN = "has offset ranges (table ``ranges``) but no such batch exists"


_CHAIN_SQL = (  # one pass in leaf order: a batch not starting where the one before ended
    "SELECT coalesce(min(first), 0), coalesce(max(first + n), 0), coalesce(sum(n), 0), "
    "min(CASE WHEN prev != first THEN first END) FROM "
    "(SELECT first, n, lag(first + n) OVER (ORDER BY first) AS prev FROM batches)"
)


def _check_chain(conn: sqlite3.Connection, path: str) -> None:
    """The batches cover the leaves ``[0, size)`` once each, with no gap: a batch row deleted
    would otherwise drop its entries from every filtered read (a tenant's ``entries``, an
    evidence population) with no batch left to fail its MAC. Its leaves are named; the
    batches' own (first, n) are under their MACs when read."""
    lo, end, total, gap = conn.execute(_CHAIN_SQL).fetchone()
    size = _size(conn)
    if lo == 0 and end == size and total == size and gap is None:
        return
    gap_at = "" if gap is None else f", the one before leaf {gap} not ending there"
    raise HubError(
        f"The side index of {path} does not cover every leaf once ({total} leaves in batches "
        f"from leaf {lo} to {end - 1}{gap_at}; tree size {size}): a side-index batch "
        "was removed or added, and filtered reads would miss or double its entries. Run `hub "
        "ledger verify` and restore the ledger file from a backup.",
        code="ledger_store",
    )


def _spans_rows(conn: sqlite3.Connection, first: int) -> list[Span]:
    """The ``ranges`` rows of the batch at leaf ``first``, sorted."""
    rows = conn.execute("SELECT topic, part, lo, hi FROM ranges WHERE batch = ?", (first,))
    return sorted((str(t), int(p), int(a), int(b)) for t, p, a, b in rows)


def _batch_row(conn: sqlite3.Connection, first: int) -> Stored:
    """The stored row of the side-index batch starting at leaf ``first``."""
    row = conn.execute(f"SELECT {_BATCH_COLS} FROM batches WHERE first = ?", (first,)).fetchone()
    return _stored(row)


def _derived_chunk(conn: sqlite3.Connection, level: int, chunk: int) -> bytes | None:
    """Chunk ``(level, chunk)`` of the port, read from the tiles; None when it has no node."""
    base, depth = divmod(level, TILE_HEIGHT)
    if depth == 0:
        row = conn.execute(
            "SELECT data FROM tiles WHERE level = ? AND idx = ?", (base, chunk)
        ).fetchone()
        return None if row is None else bytes(row[0])
    span = 1 << depth
    data = fold_up(_tiles(conn, base, chunk * span, (chunk + 1) * span - 1), depth)
    return data or None


def _rows_of(
    table: pa.Table, first: int, picks: Sequence[int], leaf_hashes: bytes, skip: int = 0
) -> list[LeafRow]:
    """Rows ``picks`` (batch-relative) of a decoded batch; ``leaf_hashes`` of leaves from
    ``first + skip`` on."""
    if not picks:
        return []
    if isinstance(picks, range) and picks.step == 1:  # a run: slices, no gather
        sub = table.slice(picks.start, len(picks))
    else:
        sub = table.take(pa.array(picks, type=pa.int64()))
    last = picks[-1] - skip
    if len(leaf_hashes) < (last + 1) * HASH_SIZE or min(picks) < skip:
        have = len(leaf_hashes) // HASH_SIZE + skip
        missing = next(i for i in picks if i < skip or i >= have)
        raise HubError(
            f"Leaf {first + missing} has a side-index row but no leaf hash in its level-0 tile; "
            "the tile store is damaged: run `hub ledger verify --full`.",
            code="ledger_store",
        )
    hashes = [leaf_hashes[(i - skip) * HASH_SIZE : (i - skip + 1) * HASH_SIZE] for i in picks]
    columns = [column_values(sub.column(name)) for name in _SIDE_SCHEMA.names]
    indexes = map(first.__add__, picks)
    return list(zip(indexes, *columns, hashes, strict=True))


class _Write(CheckpointWrites, LedgerWrite):
    """A write transaction on the store's connection (``BEGIN IMMEDIATE`` already run)."""

    appends_dictionaries = True  # the side index is written from the batch's dictionaries

    def __init__(
        self, conn: sqlite3.Connection, version: int = SCHEMA_VERSION, key: bytes | None = None
    ) -> None:
        self._conn = conn
        self._version = version
        self._key = key
        # The edges table as read by the transaction's first ``chunk`` (one statement, not
        # one per level: a sync's TreeBuilder loads every level's edge); dropped when written.
        self._edges: dict[tuple[int, int], bytes] | None = None

    def size(self) -> int:
        return _size(self._conn)

    def positions(self) -> Positions:
        return positions_of(self._conn)

    def chunk(self, level: int, chunk: int) -> bytes:
        if level % TILE_HEIGHT:
            if self._edges is None:
                rows = self._conn.execute("SELECT level, chunk, data FROM edges")
                self._edges = {(lv, ch): bytes(data) for lv, ch, data in rows}
            edge = self._edges.get((level, chunk))
            if edge is not None:
                return edge
        got = _derived_chunk(self._conn, level, chunk)
        if got is None:
            raise IndexError(f"no node chunk ({level}, {chunk}) in the ledger tiles.")
        return got

    def node(self, level: int, index: int) -> bytes:
        """Folded from the ``2**d`` hashes under it in ONE tile (not its whole chunk): a
        checkpoint's root needs one node per level, not the ``2**d`` tiles of a chunk."""
        base, depth = divmod(level, TILE_HEIGHT)
        first = index << depth
        off = first % TILE_WIDTH
        row = self._conn.execute(
            "SELECT data FROM tiles WHERE level = ? AND idx = ?", (base, first // TILE_WIDTH)
        ).fetchone()
        end = (off + (1 << depth)) * HASH_SIZE
        if row is None or len(row[0]) < end:
            raise IndexError(f"node ({level}, {index}) is not stored yet.")
        return fold_up(bytes(row[0])[off * HASH_SIZE : end], depth)

    def append(self, rows: Sequence[LeafRow], chunks: Iterable[Chunk]) -> None:
        size = _size(self._conn)
        if rows:
            idxs = next(zip(*rows, strict=True))
            if idxs != tuple(range(size, size + len(rows))):
                raise HubError(
                    f"The leaves appended start at index {idxs[0]} but the ledger holds {size} "
                    "leaves; a leaf index is already on the ledger or one is skipped (the "
                    "ledger appends each record once, densely).",
                    code="ledger_store",
                )
            self._side_index(size, side_table(rows))
        self._chunks(chunks)

    def append_batch(self, batch: LeafBatch, chunks: Iterable[Chunk]) -> None:
        """The batch's columns go into the side index as they are (no rows built); its leaf
        hashes MUST be the level-0 nodes the chunks end with (the tiles keep them)."""
        size = _size(self._conn)
        n = len(batch)
        if n:
            if batch.first != size:
                raise HubError(
                    f"The leaves appended start at index {batch.first} but the ledger holds "
                    f"{size} leaves; a leaf index is already on the ledger or one is skipped "
                    "(the ledger appends each record once, densely).",
                    code="ledger_store",
                )
            if batch.columns.num_rows != n or not batch.columns.schema.equals(_SIDE_SCHEMA):
                raise HubError(
                    f"A leaf batch of {n} hashes has {batch.columns.num_rows} rows or other "
                    "columns than the side index's.",
                    code="ledger_store",
                )
            self._side_index(size, batch.columns, batch.dictionaries)
        chunks = list(chunks)
        level0 = b"".join(data for level, _, data in chunks if level == 0)
        if n and not level0.endswith(batch.hashes):
            raise HubError(
                "The level-0 tiles appended do not end with the batch's leaf hashes; the tree "
                "and the side index would disagree.",
                code="ledger_store",
            )
        self._chunks(chunks)

    def _side_index(
        self, size: int, table: pa.Table, dictionaries: sideindex.Dicts | None = None
    ) -> None:
        """One side-index batch from leaf ``size``, its (topic, partition) offset ranges (a
        position already on the ledger is refused) and the new tree size."""
        conn = self._conn
        n = table.num_rows
        spans = spans_of(table, dictionaries)  # lowest, highest offset per (topic, partition)
        for topic, part, lo, hi in spans:
            clash = conn.execute(
                "SELECT lo, hi FROM ranges WHERE topic = ? AND part = ? AND lo <= ? "
                "AND hi >= ? LIMIT 1",
                (topic, part, hi, lo),
            ).fetchone()
            if clash is not None:
                raise HubError(
                    f"Log positions {topic}/{part} offsets {lo}..{hi} overlap offsets "
                    f"{clash[0]}..{clash[1]} already on the ledger; the ledger appends each "
                    "record once.",
                    code="ledger_store",
                )
        conn.executemany(
            "INSERT INTO ranges VALUES (?, ?, ?, ?, ?)",
            [(t, p, lo, hi, size) for t, p, lo, hi in spans],
        )
        bounds = pc.min_max(table.column("ts_ms")).as_py()
        blob = encode_side_index(table, self._version, dictionaries)
        digest = _sha256(blob).digest()
        mac = rmac = None
        if self._key is not None:
            mac = batch_mac(self._key, size, n, bounds["min"], bounds["max"], digest)
            rmac = ranges_mac(self._key, size, spans)
            # the first keyed batch: from here on a batch without a MAC is a removed one
            conn.execute(
                "INSERT INTO meta VALUES ('side_mac_from', ?) ON CONFLICT (key) DO NOTHING",
                (f"{size} {_from_mac(self._key, size)}",),
            )
        conn.execute(
            f"INSERT INTO batches ({_BATCH_COLS}, rmac) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (size, n, bounds["min"], bounds["max"], blob, digest, mac, rmac),
        )
        conn.execute("UPDATE meta SET value = ? WHERE key = 'size'", (str(size + n),))

    def _chunks(self, chunks: Iterable[Chunk]) -> None:
        conn = self._conn
        self._edges = None
        tiles: list[tuple[int, int, bytes]] = []
        for level, chunk, data in chunks:
            base, depth = divmod(level, TILE_HEIGHT)
            if depth == 0:
                tiles.append((base, chunk, data))
            elif len(data) < TILE_BYTES:
                conn.execute(
                    "INSERT INTO edges VALUES (?, ?, ?) ON CONFLICT (level) DO UPDATE SET "
                    "chunk = excluded.chunk, data = excluded.data",
                    (level, chunk, data),
                )
            else:
                conn.execute("DELETE FROM edges WHERE level = ? AND chunk = ?", (level, chunk))
        conn.executemany(
            "INSERT INTO tiles VALUES (?, ?, ?) ON CONFLICT (level, idx) "
            "DO UPDATE SET data = excluded.data",
            tiles,
        )


class TileLedgerStore(SqliteLedgerFile):
    """The ledger as tlog-tiles in one SQLite file. Thread-safe: one connection, one lock.

    Node reads go through a tile cache (LRU): a node of level ``8L + d`` is folded up from
    ``2**d`` hashes of one tile of level L, so a proof reads at most one tile per tree level.
    """

    kind = "tiles"
    described = "ledger tile store"

    def __init__(
        self,
        path: Path | str,
        *,
        busy_timeout_s: float = 30.0,
        tile_cache: int = 4096,
        version: int = SCHEMA_VERSION,
        side_key: bytes | None = None,
    ) -> None:
        """``version`` is the store version this handle writes (new files are created at it);
        1 only for tests and benchmarks that need a ledger as the previous version wrote it
        (a version-1 file opened with ``version=1`` stays version 1). ``side_key``: the
        side-index MAC key (module docstring); without it batches are written unkeyed and
        read with their SHA-256 checked only."""
        if version not in (1, SCHEMA_VERSION):
            raise ValueError(f"tile store version {version}: only 1 and {SCHEMA_VERSION} exist.")
        self.version = version
        self._side_key = side_key
        self._tile_cache: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._derived: OrderedDict[tuple[int, int], bytes] = OrderedDict()  # folded nodes
        self._tile_limit = tile_cache
        self._ranges_ok: set[int] = set()  # batches whose ranges this handle checked
        pragmas = ["journal_mode=WAL", "synchronous=NORMAL", f"mmap_size={MMAP_BYTES}"]
        if version >= 2:  # no effect on a file that already has pages
            pragmas[:0] = [f"page_size={PAGE_SIZE}", f"journal_size_limit={WAL_KEEP}"]
        super().__init__(str(path), busy_timeout_s, pragmas, chunk_cache=0)

    def _setup(self) -> None:
        conn = self._conn
        (app,) = conn.execute("PRAGMA application_id").fetchone()
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version == 0 and app == 0:
            create_schema(conn, _SCHEMA, APPLICATION_ID, self.version)
        elif app != APPLICATION_ID or version not in (1, SCHEMA_VERSION):
            newer = app == APPLICATION_ID and version > SCHEMA_VERSION
            raise HubError(
                f"{self.path} is not a version-1 or version-{SCHEMA_VERSION} hub tile ledger "
                f"(application id {app:#x}, version {version}); "
                + (
                    "upgrade the hub to open it."
                    if newer
                    else "move it away or point HUB_DATA_DIR elsewhere."
                ),
                code="ledger_store",
            )
        elif version < self.version:  # upgrade: mark it; old batches are read as they are
            with immediate(conn):
                conn.execute(f"PRAGMA user_version={self.version}")
        elif version > self.version:
            raise ValueError(f"{self.path} is store version {version}; open it without version=1.")
        conn.execute(INTENTS_TABLE)
        columns = {r[1] for r in conn.execute("PRAGMA table_info(batches)")}
        if "mac" not in columns:  # written before KEYED_SINCE: its batches stay unkeyed
            with immediate(conn):
                conn.execute("ALTER TABLE batches ADD COLUMN mac BLOB")
        if "rmac" not in columns:  # written before the ranges' MAC: filled in below
            with immediate(conn):
                conn.execute("ALTER TABLE batches ADD COLUMN rmac BLOB")
        conn.execute("CREATE INDEX IF NOT EXISTS ranges_batch ON ranges (batch)")
        self._key_ranges(conn)

    def _key_ranges(self, conn: sqlite3.Connection) -> None:
        """Give the ranges of each batch without a MAC one (batches written before it, or by a
        handle without the key), when they equal the ranges derived from the batch's own
        (MAC-checked) columns; a batch whose ranges differ, or whose columns fail their
        check, is left without one, for readers and verify to name."""
        if self._side_key is None:
            return
        firsts = [int(f) for (f,) in conn.execute("SELECT first FROM batches WHERE rmac IS NULL")]
        if not firsts:
            return
        keyed = []
        for first in firsts:
            try:
                got = self._derived_spans(conn, first)
            except HubError:
                continue
            if got is not None:
                keyed.append((ranges_mac(self._side_key, first, got), first))
        with immediate(conn):
            conn.executemany("UPDATE batches SET rmac = ? WHERE first = ? AND rmac IS NULL", keyed)

    def _derived_spans(self, conn: sqlite3.Connection, first: int) -> list[Span] | None:
        """The batch's ranges derived from its columns when its ``ranges`` rows equal them,
        else None. HubError when the batch fails its own digest or MAC."""
        found = self._batch_at(conn, first)
        if found is None or found[0] != first:
            return None
        derived = spans_of(found[2])
        return derived if _spans_rows(conn, first) == derived else None

    def _range_problems(
        self, conn: sqlite3.Connection, lo: int, hi: int | None, *, cached: bool = True
    ) -> list[str]:
        """A message for each batch starting in ``[lo, hi]`` whose ``ranges`` rows do
        not match their MAC (a batch without one: the ranges derived from its columns), and
        for ranges rows there that name no batch. Nothing without the key. ``cached``: a
        batch this handle found right before is not checked again."""
        key = self._side_key
        if key is None:
            return []
        top = (1 << 63) - 1 if hi is None else hi
        spans: dict[int, list[Span]] = {}
        for t, p, a, b, batch in conn.execute(
            "SELECT topic, part, lo, hi, batch FROM ranges WHERE batch BETWEEN ? AND ?",
            (lo, top),
        ):
            spans.setdefault(int(batch), []).append((str(t), int(p), int(a), int(b)))
        problems: list[str] = []
        for first, rmac in conn.execute(
            "SELECT first, rmac FROM batches WHERE first BETWEEN ? AND ? ORDER BY first",
            (lo, top),
        ).fetchall():
            first = int(first)
            rows = sorted(spans.pop(first, []))
            if cached and first in self._ranges_ok:
                continue
            if rmac is None:
                try:
                    ok = self._derived_spans(conn, first) is not None
                except HubError as exc:
                    problems.append(exc.message)
                    continue
            else:
                ok = hmac.compare_digest(bytes(rmac), ranges_mac(key, first, rows))
            if ok:
                self._ranges_ok.add(first)
            else:
                problems.append(_altered(first, _RANGES_EDITED).message)
        problems += [_altered(b, _RANGES_ORPHAN).message for b in sorted(spans)]
        return problems

    def _check_ranges(self, conn: sqlite3.Connection, lo: int, hi: int | None) -> None:
        """``_range_problems``, the first raised as a HubError naming its batch."""
        for why in self._range_problems(conn, lo, hi)[:1]:
            raise HubError(why, code="ledger_store")

    def _writer(self, conn: sqlite3.Connection) -> LedgerWrite:
        return _Write(conn, self.version, self._side_key)

    def _checked(self, conn: sqlite3.Connection, rows: Sequence[Stored]) -> None:
        """Each batch's SHA-256 and MAC (``check_batch``); HubError naming the first bad one."""
        keyed = keyed_from(conn, self._side_key)
        for stored in rows:
            check_batch(stored, self._side_key, keyed)

    def unkeyed_batches(self) -> int:
        """Side-index batches without a MAC (written before ``KEYED_SINCE``, or by a handle
        without the key)."""
        with self._read() as conn:
            return int(conn.execute("SELECT count(*) FROM batches WHERE mac IS NULL").fetchone()[0])

    unkeyed_since = KEYED_SINCE

    # -- state -------------------------------------------------------------------------------
    def tree_size(self) -> int:
        with self._read() as conn:
            return _size(conn)

    # -- tiles (tlog-tiles) ------------------------------------------------------------------
    def tile(self, level: int, index: int) -> bytes | None:
        """The stored hash tile ``(level, index)`` (full or partial), uncached; None if absent."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT data FROM tiles WHERE level = ? AND idx = ?", (level, index)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def iter_tiles(self) -> Iterator[tuple[int, int, bytes]]:
        """Every stored tile (level, index, bytes), by level then index."""
        with self._read() as conn:
            rows = conn.execute("SELECT level, idx, data FROM tiles ORDER BY level, idx")
            yield from ((int(a), int(b), bytes(c)) for a, b, c in rows.fetchall())

    def _cached_tile(self, key: tuple[int, int], need: int) -> bytes | None:
        data = self._tile_cache.get(key)
        if data is None or len(data) < need:
            return None
        with self._cache_lock:
            if key in self._tile_cache:
                self._tile_cache.move_to_end(key)
        return data

    def clear_caches(self) -> None:
        super().clear_caches()
        with self._cache_lock:
            self._tile_cache.clear()
            self._derived.clear()
        with self._read():
            self._ranges_ok.clear()

    def nodes(self, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Perfect nodes among ``keys``, each folded from one tile; missing tiles in one query."""
        want: list[tuple[tuple[int, int], tuple[int, int], int, int]] = []
        for level, index in keys:
            base, depth = divmod(level, TILE_HEIGHT)
            first = index << depth  # first base-level node under it
            off = first % TILE_WIDTH
            end = (off + (1 << depth)) * HASH_SIZE
            want.append(((level, index), (base, first // TILE_WIDTH), off * HASH_SIZE, end))
        tiles: dict[tuple[int, int], bytes] = {}
        missing: set[tuple[int, int]] = set()
        for _, tkey, _, end in want:
            got = self._cached_tile(tkey, end)
            if got is None:
                missing.add(tkey)
            else:
                tiles[tkey] = got
        if missing:
            with self._read() as conn:
                for tkey in missing:
                    row = conn.execute(
                        "SELECT data FROM tiles WHERE level = ? AND idx = ?", tkey
                    ).fetchone()
                    if row is not None:
                        tiles[tkey] = bytes(row[0])
                        with self._cache_lock:
                            self._tile_cache[tkey] = tiles[tkey]
                            self._tile_cache.move_to_end(tkey)
                            while len(self._tile_cache) > self._tile_limit:
                                self._tile_cache.popitem(last=False)
        out: dict[tuple[int, int], bytes] = {}
        for key, tkey, start, end in want:
            data = tiles.get(tkey)
            if data is None or len(data) < end:
                continue
            depth = key[0] % TILE_HEIGHT
            if depth == 0:
                out[key] = data[start:end]
                continue
            got = self._derived.get(key)  # a perfect node never changes once computed
            if got is None:
                got = fold_up(data[start:end], depth)
                with self._cache_lock:
                    self._derived[key] = got
                    while len(self._derived) > self._tile_limit * 8:
                        self._derived.popitem(last=False)
            out[key] = got
        return out

    def node(self, level: int, index: int) -> bytes:
        got = self.nodes([(level, index)]).get((level, index))
        if got is None:
            raise IndexError(f"node ({level}, {index}) is not stored yet.")
        return got

    # -- chunks (the port's view of the tree) ------------------------------------------------
    def read_chunks(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        out: dict[tuple[int, int], bytes] = {}
        with self._read() as conn:
            for level, chunk in keys:
                got = _derived_chunk(conn, level, chunk)
                if got is not None:
                    out[(level, chunk)] = got
        return out

    def iter_chunks(self) -> Iterator[Chunk]:
        with self._read() as conn:
            size = _size(conn)
            keys = [
                (level, c)
                for level in range(size.bit_length())
                for c in range(-(-(size >> level) // CHUNK))
            ]
        for level, c in keys:
            got = self.read_chunks([(level, c)]).get((level, c))
            if got is not None:
                yield level, c, got

    leaf_hashes_are_level0 = True  # iter_leaf_batches reads the level-0 tiles

    def derived_level(self, level: int) -> bool:
        return level % TILE_HEIGHT != 0

    def stored_chunk_keys(self) -> list[tuple[int, int]]:
        with self._read() as conn:
            rows = conn.execute("SELECT level, idx FROM tiles ORDER BY level, idx").fetchall()
        return [(int(a) * TILE_HEIGHT, int(b)) for a, b in rows]

    # -- leaves ------------------------------------------------------------------------------
    def _batch_at(self, conn: sqlite3.Connection, index: int) -> tuple[int, int, pa.Table] | None:
        row = conn.execute(
            f"SELECT {_BATCH_COLS} FROM batches WHERE first <= ? ORDER BY first DESC LIMIT 1",
            (index,),
        ).fetchone()
        if row is None or index >= row[0] + row[1]:
            return None
        stored = _stored(row)
        self._checked(conn, [stored])
        first, n = stored[0], stored[1]
        return first, n, decode_side_index(stored[4], None, first, n)

    def _leaf_hashes(self, conn: sqlite3.Connection, first: int, n: int) -> bytes:
        """Leaf hashes ``[first, first + n)`` from the level-0 tiles, uncached."""
        lo, hi = first // TILE_WIDTH, (first + n - 1) // TILE_WIDTH
        data = _tiles(conn, 0, lo, hi)
        start = (first - lo * TILE_WIDTH) * HASH_SIZE
        return data[start : start + n * HASH_SIZE]

    def leaf_hashes(self, first: int, n: int) -> bytes:
        """Leaf hashes ``[first, first + n)`` from the level-0 tiles (fewer when not stored)."""
        with self._read() as conn:
            return self._leaf_hashes(conn, first, n)

    def side_batches(self) -> Iterator[tuple[int, pa.Table]]:
        """Every side-index batch as (first leaf, columns), in leaf order, digest-checked."""
        with self._read() as conn:
            rows = conn.execute("SELECT first FROM batches ORDER BY first").fetchall()
        for (first,) in rows:
            with self._read() as conn:
                got = self._batch_at(conn, int(first))
            if got is not None:
                yield got[0], got[2]

    def leaf(self, index: int) -> LeafRow | None:
        with self._read() as conn:
            got = self._batch_at(conn, index)
            if got is None:
                return None
            first, _n, table = got
            hashes = self._leaf_hashes(conn, index, 1)
        return _rows_of(table, first, [index - first], hashes, index - first)[0]

    def index_of(self, topic: str, partition: int, offset: int) -> int | None:
        """The leaf of a log position, found through ``ranges``. The ranges each candidate
        batch was found by are checked against their MAC, and so on a miss are those of every
        batch between the partition's ranges below and above ``offset`` (the leaves of one
        partition are appended in offset order): a range edited or removed to hide an entry
        fails here instead of answering "no entry" (the cold tier and ``hub lake verify`` take
        that answer as "nothing was dropped")."""
        with self._read() as conn:
            rows = [
                _stored(r)
                for r in conn.execute(
                    "SELECT b.first, b.n, b.min_ts, b.max_ts, b.cols, b.digest, b.mac "
                    "FROM ranges AS r JOIN batches AS b ON b.first = r.batch "
                    "WHERE r.topic = ? AND r.part = ? AND r.lo <= ? AND r.hi >= ?",
                    (topic, partition, offset, offset),
                )
            ]
            self._checked(conn, rows)
            for row in rows:
                self._check_ranges(conn, row[0], row[0])
        for first, _n, _lo, _hi, blob, _digest, _mac in rows:
            table = decode_side_index(blob, None, first)
            mask = pc.and_(
                pc.and_(
                    pc.equal(table.column("topic"), topic),
                    pc.equal(table.column("part"), partition),
                ),
                pc.equal(table.column("off"), offset),
            )
            hits = pc.indices_nonzero(mask).to_pylist()
            if hits:
                return int(first) + int(hits[0])
        with self._read() as conn:
            (below,) = conn.execute(
                "SELECT max(batch) FROM ranges WHERE topic = ? AND part = ? AND lo <= ?",
                (topic, partition, offset),
            ).fetchone()
            (above,) = conn.execute(
                "SELECT min(batch) FROM ranges WHERE topic = ? AND part = ? AND lo > ?",
                (topic, partition, offset),
            ).fetchone()
            self._check_ranges(conn, int(below or 0), None if above is None else int(above))
        return None

    def iter_leaves(self, start: int = 0, batch: int = 50_000) -> Iterator[list[LeafRow]]:
        """All leaf rows in index order, in batches of ``batch`` (uncached reads)."""
        pending: list[LeafRow] = []
        for first, n, table, hashes, skip in self._stored_from(start):
            pending += _rows_of(table, first, range(skip, n), hashes, skip)
            while len(pending) >= batch:
                yield pending[:batch]
                pending = pending[batch:]
        if pending:
            yield pending

    def iter_leaf_batches(self, start: int = 0, batch: int = 50_000) -> Iterator[LeafBatch]:
        """The side-index batches as they are stored (``batch`` is not used), from leaf
        ``start`` on, with their leaf hashes from the level-0 tiles: no row per leaf."""
        for first, n, table, hashes, skip in self._stored_from(start):
            nxt = first + skip
            _hashes_complete(nxt, hashes, n - skip)
            yield LeafBatch(nxt, hashes, table.slice(skip) if skip else table)

    def iter_stored_batches(self, start: int = 0) -> Iterator[StoredLeafBatch]:
        """The batches of :meth:`iter_leaf_batches`, each read once with its digest and MAC
        checked; a version-2 batch read whole (not from mid-batch) has only its ``KEYS``
        columns decoded, and a recomputed batch is the same when its version-2 body
        (``sideindex.body_of``, deterministic) equals the stored inflated body byte for byte:
        equal bytes decode to equal columns. Any other batch, or a body that differs, is
        decoded in full (``load``) and compared value by value, as before."""
        nxt = start
        while True:
            with self._read() as conn:
                row = conn.execute(
                    f"SELECT {_BATCH_COLS} FROM batches WHERE first <= ? "
                    "ORDER BY first DESC LIMIT 1",
                    (nxt,),
                ).fetchone()
                if row is None or nxt >= row[0] + row[1]:
                    return
                stored = _stored(row)
                self._checked(conn, [stored])
                first, n, blob = stored[0], stored[1], stored[4]
                hashes = self._leaf_hashes(conn, nxt, first + n - nxt)
            skip = nxt - first
            _hashes_complete(nxt, hashes, n - skip)
            got = sideindex.inflated(blob, first) if not skip else None
            if got is None or got[0] != n:  # version 1, mid-batch, or rows to be named: decoded
                table = decode_side_index(blob, None, first, n)
                yield StoredLeafBatch.of(LeafBatch(nxt, hashes, table.slice(skip)))
            else:
                yield _encoded_batch(first, n, hashes, got[1])
            nxt = first + n

    def _stored_from(self, start: int) -> Iterator[tuple[int, int, pa.Table, bytes, int]]:
        """Each stored side-index batch from leaf ``start`` on, one read each: its first leaf,
        its size, its decoded table, the level-0 hashes of its leaves from ``start`` on, and
        how many of its leaves lie before ``start`` (non-zero for the first batch only)."""
        nxt = start
        while True:
            with self._read() as conn:
                got = self._batch_at(conn, nxt)
                if got is None:
                    return
                first, n, table = got
                hashes = self._leaf_hashes(conn, nxt, first + n - nxt)
            yield first, n, table, hashes, nxt - first
            nxt = first + n

    def _batches(
        self, conn: sqlite3.Connection, after: int, since: int | None, until: int | None
    ) -> list[tuple[int, int, bytes, bytes]]:
        """The batches past leaf ``after`` whose time range meets ``[since, until)``, each
        checked (``check_batch``: the time range a batch is picked by is under its MAC)."""
        sql = f"SELECT {_BATCH_COLS} FROM batches WHERE first + n - 1 > ?"
        args: list[int] = [after]
        if since is not None:
            sql += " AND max_ts >= ?"
            args.append(since)
        if until is not None:
            sql += " AND min_ts < ?"
            args.append(until)
        _check_chain(conn, self.path)
        rows = [_stored(r) for r in conn.execute(sql + " ORDER BY first", args)]
        self._checked(conn, rows)
        return [(f, n, c, d) for f, n, _lo, _hi, c, d, _mac in rows]

    def find(self, where: LeafQuery, *, after: int = -1, limit: int = 100) -> list[LeafRow]:
        if where.topics is not None and not where.topics:
            return []
        out: list[LeafRow] = []
        with self._read() as conn:
            batches = self._batches(conn, after, where.since_ms, where.until_ms)
        equal = [
            (column, value)
            for column, value in (
                ("actor", where.actor),
                ("action", where.action),
                ("resource", where.resource),
                ("topic", where.topic),
            )
            if value is not None
        ]
        for first, n, blob, _digest in batches:
            # a batch whose string dictionaries lack a value asked is not decoded (its digest
            # and MAC were checked by _batches, so a value removed from one is caught there)
            if equal and not all(sideindex.may_hold(blob, c, v, first) for c, v in equal):
                continue
            table = decode_side_index(blob, None, first, n)
            mask = pc.greater(pa.array(range(first, first + n), type=pa.int64()), after)
            for column, value in equal:
                mask = pc.and_(mask, pc.fill_null(pc.equal(table.column(column), value), False))
            if where.topics is not None:
                mask = pc.and_(
                    mask, pc.is_in(table.column("topic"), value_set=pa.array(where.topics))
                )
            if where.tenant_scope is not None:  # the tenant's leaves and those with none
                tenant = table.column("tenant")
                mask = pc.and_(
                    mask,
                    pc.or_(
                        pc.is_null(tenant),
                        pc.fill_null(pc.equal(tenant, where.tenant_scope), False),
                    ),
                )
            if where.since_ms is not None:
                mask = pc.and_(mask, pc.greater_equal(table.column("ts_ms"), where.since_ms))
            if where.until_ms is not None:
                mask = pc.and_(mask, pc.less(table.column("ts_ms"), where.until_ms))
            picks = pc.indices_nonzero(mask).to_pylist()[: limit - len(out)]
            if picks:
                with self._read() as conn:
                    hashes = self._leaf_hashes(conn, first, n)
                out += _rows_of(table, first, picks, hashes)
            if len(out) >= limit:
                break
        return out

    def count_by_topic(self, since_ms: int, until_ms: int) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._read() as conn:
            batches = self._batches(conn, -1, since_ms, until_ms)
        for first, n, blob, _digest in batches:
            table = decode_side_index(blob, None, first, n)
            ts = table.column("ts_ms")
            mask = pc.and_(pc.greater_equal(ts, since_ms), pc.less(ts, until_ms))
            for item in pc.value_counts(table.column("topic").filter(mask)).to_pylist():
                counts[item["values"]] = counts.get(item["values"], 0) + int(item["counts"])
        return dict(sorted(counts.items()))

    # -- integrity ---------------------------------------------------------------------------
    def location(self, level: int, index: int) -> str:
        base, depth = divmod(level, TILE_HEIGHT)
        return f"{tile_path(base, (index << depth) // TILE_WIDTH)} of {self.path}"

    def integrity_problems(self, decoded: Collection[int] = (), verified: int = 0) -> list[str]:
        """Side-index batches (digest, MAC, decodable, contiguous, count = tree size; the
        blobs of batches in ``decoded`` are not read again: their digest and MAC were checked
        when they were read; batches wholly below ``verified`` have their digest and MAC
        checked but are not decoded again), every batch's ``ranges`` rows against their MAC, no
        tile longer than a tile, and the right edge kept for appends (equal to the nodes
        computed from the tiles)."""
        problems: list[str] = []
        skip = frozenset(decoded)
        with self._read() as conn:
            size = _size(conn)
            try:
                keyed = keyed_from(conn, self._side_key)
            except HubError as exc:
                problems.append(exc.message)
                keyed = None
            batches: list[tuple[int, int, Any]] = [
                (first, n, None if first in skip else _batch_row(conn, first))
                for first, n in conn.execute("SELECT first, n FROM batches ORDER BY first")
            ]
            long_tiles = conn.execute(
                "SELECT level, idx, length(data) FROM tiles WHERE length(data) > ?",
                (TILE_BYTES,),
            ).fetchall()
            edges = conn.execute("SELECT level, chunk, data FROM edges").fetchall()
            derived = {
                (int(lv), int(ch)): _derived_chunk(conn, int(lv), int(ch)) for lv, ch, _ in edges
            }
            # every batch's ranges: one read of the (small) table and a MAC per batch
            problems += self._range_problems(conn, 0, None, cached=False)
        expected = 0
        for first, n, got in batches:
            if first != expected:
                problems.append(
                    f"side-index batch at leaf {first} follows leaf {expected - 1} (leaves "
                    f"missing or doubled in the side index of {self.path})."
                )
            if got is None:  # decoded by the caller (``decoded``)
                expected = int(first) + int(n)
                continue
            try:
                check_batch(got, self._side_key, keyed)
                if int(first) + int(n) <= verified:  # decoded by the run that verified it
                    expected = int(first) + int(n)
                    continue
                table = decode_side_index(got[4], None, int(first))
                if table.num_rows != n:
                    problems.append(
                        f"side-index batch at leaf {first} holds {table.num_rows} rows, not {n}."
                    )
            except HubError as exc:
                problems.append(exc.message)
            expected = int(first) + int(n)
        if expected != size:
            problems.append(
                f"the side index of {self.path} covers {expected} leaves but the tree size "
                f"recorded is {size}."
            )
        for lv, idx, length in long_tiles:
            problems.append(
                f"tile {tile_path(int(lv), int(idx))} of {self.path} holds {length} bytes, more "
                f"than a tile's {TILE_BYTES} (hashes appended to it)."
            )
        for lv, ch, data in edges:
            if derived[(int(lv), int(ch))] != bytes(data):
                problems.append(
                    f"the right-edge cache of level {lv} (chunk {ch}) in {self.path} differs "
                    "from the nodes computed from the tiles."
                )
        return problems
