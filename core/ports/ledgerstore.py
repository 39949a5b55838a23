"""LedgerStore: the port that keeps the audit ledger's leaves, tree hashes and checkpoints.

Adapters: ``adapters.sqlite_ledgerstore.SqliteLedgerStore`` (one SQLite file in the data
folder, the embedded default) and ``adapters.postgres_ledgerstore.PostgresLedgerStore`` (the
distributed footprint). The ledger service (``ledger.service``) computes every hash; a store only
keeps what it is given and hands it back. It knows no SQL shape: an adapter may keep the tree as
rows, files or C2SP tiles.

What is stored
- Leaves: one :data:`LeafRow` per leaf, dense indexes from 0: the log record's (topic,
  partition, offset), its log timestamp, the query columns (actor, action, resource, tenant:
  conveniences, recomputed by ``hub ledger verify``) and the 32-byte leaf hash.
- Tree hashes: every *perfect* node of the RFC 9162 tree, handed over and read back in *chunks*
  (:data:`Chunk`): ``CHUNK`` (256) consecutive nodes of one level, 32 bytes each, back to back.
  Only a level's right-most chunk grows; a node once stored never changes.
- Positions: per (topic, partition) the next log offset the ledger will read.
- Checkpoints: per tree size the root, time, signed note bytes and ``checkpoint_hash``.
- Witness intents: the sizes of checkpoints committed but not yet copied to the witness
  (``ledger.witness``): written in the same transaction as their checkpoint, cleared once the
  copy is made. A crash between the commit and the copy leaves the intent, never a silent gap.

Contract (``tests/contract/ledgerstore_contract.py`` runs it against every adapter)
- Every change happens inside :meth:`LedgerStore.write`: leaves, chunks, positions and
  checkpoints of one ``write()`` block commit together, or none of them does (an exception
  inside the block rolls all back). Two writers, in one process or in two, MUST serialize: the
  second's block starts after the first committed and sees its state. A writer that cannot get
  the store in time raises ``StorageBusy``.
- Readers see committed state only, never a half-written block.
- ``append`` refuses a leaf index that is already stored (``HubError``); leaf indexes are the
  caller's to keep dense (``size()`` is one past the largest index).
- Chunks: ``read_chunks`` returns the stored bytes of each chunk asked for that exists, and
  omits the others; ``write`` replaces a chunk's bytes (the right edge grows).
- ``checkpoints`` come back ordered by size; adding a second checkpoint of one size is refused.
- ``query`` filters are ANDed, results in index order from ``after + 1``, at most ``limit``.
"""

from __future__ import annotations

import abc
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

from audit.merkle import HASH_SIZE, NodeReader, consistency_proof, inclusion_proof, range_root
from core.errors import ConfigError
from core.leadership import WriterFence

CHUNK = 256
"""Nodes per chunk (one level's nodes ``[c * 256, (c + 1) * 256)``)."""

Chunk = tuple[int, int, bytes]
"""(level, chunk index, packed node hashes)."""

LeafRow = tuple[int, str, int, int, int, str | None, str | None, str | None, str | None, bytes]
"""(idx, topic, part, off, ts_ms, actor, action, resource, tenant, leaf_hash)."""

LEAF_COLUMNS = ("topic", "part", "off", "ts_ms", "actor", "action", "resource", "tenant")
"""The columns of a :class:`LeafBatch` (a :data:`LeafRow` without its index and hash)."""

AMBIGUOUS_TENANT = "(ambiguous)"
"""The ``tenant`` stored for a record that carries ``ce_tenant`` more than once (no copy is
picked). It is not a valid tenant name (those start with a letter or digit), so no tenant's
scope matches it: only a reader of every tenant sees such a leaf, unlike a null tenant (a
record with no ``ce_tenant``: hub-wide, seen by every tenant)."""


def leaf_schema() -> Any:
    """The Arrow schema of :attr:`LeafBatch.columns` (pyarrow imported on first use)."""
    import pyarrow as pa

    s, i32, i64 = pa.string(), pa.int32(), pa.int64()
    return pa.schema(list(zip(LEAF_COLUMNS, (s, i32, i64, i64, s, s, s, s), strict=True)))


def _int_dtype(type: Any) -> Any:
    """The little-endian NumPy dtype of an Arrow integer type (``to_pandas_dtype`` imports
    pandas)."""
    import numpy as np
    import pyarrow as pa

    if not pa.types.is_integer(type):
        raise ValueError(f"{type} is not an integer type")
    sign = "i" if pa.types.is_signed_integer(type) else "u"
    return np.dtype(f"<{sign}{type.bit_width // 8}")


def int_array(values: Any, type: Any, mask: Any = None) -> Any:
    """A NumPy integer array of ``type``'s own dtype as an Arrow array of ``type`` (``mask``
    True: null), its buffer shared: what ``pyarrow.array(values, type=type, mask=mask)``
    builds, without ``pyarrow.array``'s first call importing pandas (0.25-0.3 CPU s: a fifth
    of a process verifying a 1M-leaf ledger, which needs nothing of pandas). ValueError when
    the array's dtype is not ``type``'s (never cast silently)."""
    import numpy as np
    import pyarrow as pa

    data = np.ascontiguousarray(values)
    if data.dtype != _int_dtype(type):
        raise ValueError(f"int_array: a {data.dtype} array is not {type} (cast it first)")
    valid = None
    if mask is not None and bool(np.any(mask)):
        valid = pa.py_buffer(np.packbits(~np.asarray(mask, dtype=bool), bitorder="little"))
    return pa.Array.from_buffers(type, len(data), [valid, pa.py_buffer(data)])


def int_values(array: Any) -> Any:
    """The values of an Arrow integer array without nulls as a read-only NumPy view of its
    buffer: ``array.to_numpy()`` without its first call importing pandas (:func:`int_array`).
    ValueError when the array holds a null."""
    import numpy as np

    if array.null_count:
        raise ValueError("int_values: the array holds a null")
    dtype = _int_dtype(array.type)
    data = array.buffers()[1]
    if data is None:
        return np.zeros(0, dtype=dtype)
    return np.frombuffer(data, dtype=dtype, count=array.offset + len(array))[array.offset :]


@dataclass(frozen=True, slots=True)
class LeafBatch:
    """Consecutive leaves from index ``first`` as columns (what ``Ledger.sync`` appends, built in
    one native call per batch): ``hashes`` the leaf hashes back to back, 32 bytes each, and
    ``columns`` an Arrow table of :func:`leaf_schema` with one row per leaf.

    ``dictionaries`` (optional) holds string columns as the encoder built them: ``{name:
    (distinct strings in order of first appearance, one little-endian int32 per row: the
    string's position, -1 for null)}``. Each MUST decode to its column and hold each string
    once; a store MAY encode a column from it instead of dictionary-encoding the column again
    (the tile store's side index does: the same bytes)."""

    first: int
    hashes: bytes
    columns: Any  # pyarrow.Table
    dictionaries: Mapping[str, tuple[list[str], bytes]] | None = None

    def __len__(self) -> int:
        return len(self.hashes) // HASH_SIZE

    @classmethod
    def of_rows(cls, rows: Sequence[LeafRow]) -> LeafBatch:
        """Consecutive leaf rows as a batch (``first`` the first row's index, 0 when empty)."""
        import pyarrow as pa

        schema = leaf_schema()
        cols: Sequence[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [()] * 10
        return cls(
            cols[0][0] if rows else 0,
            b"".join(cols[9]),
            pa.Table.from_arrays(
                [pa.array(c, type=f.type) for c, f in zip(cols[1:9], schema, strict=True)],
                schema=schema,
            ),
        )

    def rows(self) -> list[LeafRow]:
        """The batch as :data:`LeafRow` tuples (for stores that keep rows)."""
        n = len(self)
        if self.columns.num_rows != n:
            raise ValueError(f"a leaf batch of {n} hashes has {self.columns.num_rows} rows.")
        cols = [column_values(self.columns.column(name)) for name in LEAF_COLUMNS]
        h = self.hashes
        hashes = [h[i : i + HASH_SIZE] for i in range(0, len(h), HASH_SIZE)]
        return list(zip(range(self.first, self.first + n), *cols, hashes, strict=True))


@dataclass(frozen=True, slots=True)
class StoredLeafBatch:
    """A stored batch as ``hub ledger verify`` compares it
    (:meth:`LedgerStore.iter_stored_batches`): ``first`` and ``hashes`` as in
    :class:`LeafBatch`; ``keys`` an Arrow table of the ``topic``, ``part`` and ``off`` columns
    (which log records the leaves name); ``same(batch)`` whether a :class:`LeafBatch` of the
    same leaves holds exactly the stored query columns (True only when every value is equal;
    False may still mean equal values held in other bytes: the caller then compares
    ``load()``'s columns); ``load()`` the batch decoded (HubError as
    :meth:`LedgerStore.iter_leaf_batches` raises for a damaged one).

    ``dictionaries_only``: ``same`` reads a string column from ``batch.dictionaries`` when it
    is there, never from ``batch.columns`` (the tile store's encoded comparison): the caller
    may then hand a batch whose string columns are built only when read
    (``LeafEncoder.column_batch(strings=False)``)."""

    first: int
    hashes: bytes
    keys: Any  # pyarrow.Table
    same: Callable[[LeafBatch], bool]
    load: Callable[[], LeafBatch]
    dictionaries_only: bool = False

    def __len__(self) -> int:
        return len(self.hashes) // HASH_SIZE

    @classmethod
    def of(cls, batch: LeafBatch) -> StoredLeafBatch:
        """A decoded batch as one (its columns compared value by value)."""
        cols = batch.columns
        return cls(
            batch.first,
            batch.hashes,
            cols.select(list(LEAF_COLUMNS[:3])),
            lambda other: bool(other.columns.equals(cols)),
            lambda: batch,
        )


def column_values(column: Any) -> list[Any]:
    """An Arrow column as Python values, through NumPy (15-30x faster than ``to_pylist``; the
    same values: ``str``/``int``, None for a null string); ``to_pylist`` when a number is null."""
    if column.null_count and str(column.type) != "string":
        return list(column.to_pylist())
    return list(column.to_numpy(zero_copy_only=False).tolist())


Positions = dict[tuple[str, int], int]
"""(topic, partition) -> the next log offset the ledger reads."""

_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    size: int
    root: bytes
    time_us: int
    note: bytes
    hash: bytes


@dataclass(frozen=True, slots=True)
class LeafQuery:
    """Filters of :meth:`LedgerStore.query` (each one given is ANDed)."""

    actor: str | None = None
    action: str | None = None
    resource: str | None = None
    topic: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    topics: tuple[str, ...] | None = None
    #: A reader limited to one tenant: only leaves whose ``tenant`` is this one or none (the
    #: hub-wide records that carry no ``ce_tenant``), never :data:`AMBIGUOUS_TENANT`; None:
    #: every leaf.
    tenant_scope: str | None = None


class LedgerWrite(abc.ABC):
    """One write transaction of a :class:`LedgerStore` (see :meth:`LedgerStore.write`).

    Reads inside it see the transaction's own writes and the state committed before it began.

    ``appends_dictionaries``: :meth:`append_batch` reads a string column from
    ``batch.dictionaries`` when it is there, never from ``batch.columns`` (the tile store
    writes its side index from them): the caller may then hand a batch whose string columns
    are built only when read (``LeafEncoder.column_batch(strings=False)``, ``Ledger.sync``).
    """

    appends_dictionaries: bool = False

    @abc.abstractmethod
    def size(self) -> int:
        """The number of leaves (one past the largest index), 0 when empty."""

    @abc.abstractmethod
    def positions(self) -> Positions: ...

    @abc.abstractmethod
    def chunk(self, level: int, chunk: int) -> bytes:
        """A stored chunk's bytes; IndexError when there is none."""

    def node(self, level: int, index: int) -> bytes:
        """One stored node; IndexError when there is none. The default reads its chunk; a store
        that derives a level on read (tiles) computes the one node alone."""
        data = self.chunk(level, index >> 8)
        off = (index & (CHUNK - 1)) * 32
        if off + 32 > len(data):
            raise IndexError(f"node ({level}, {index}) is not stored yet.")
        return data[off : off + 32]

    @abc.abstractmethod
    def append(self, rows: Sequence[LeafRow], chunks: Iterable[Chunk]) -> None:
        """Add leaf rows and store (insert or replace) the chunks that changed."""

    def append_batch(self, batch: LeafBatch, chunks: Iterable[Chunk]) -> None:
        """:meth:`append` of a batch given as columns (``batch.first`` MUST be ``size()``). The
        default turns it into rows; a columnar store (tiles) keeps the columns as they are."""
        self.append(batch.rows(), chunks)

    @abc.abstractmethod
    def set_positions(self, positions: Positions) -> None:
        """Insert or update the positions given (others stay)."""

    @abc.abstractmethod
    def add_checkpoint(self, cp: StoredCheckpoint) -> None: ...

    @abc.abstractmethod
    def latest_checkpoint(self) -> StoredCheckpoint | None: ...

    @abc.abstractmethod
    def add_witness_intents(self, sizes: Sequence[int]) -> None:
        """Record that the checkpoints ``sizes`` (added in this transaction) await their
        witness copy; an intent already recorded stays."""

    @abc.abstractmethod
    def clear_witness_intents(self, sizes: Sequence[int]) -> None:
        """Forget the intents of ``sizes`` (their witness copies are made); others stay."""

    def fence(self, token: WriterFence) -> None:
        """Refuse this transaction (``Fenced``) when the store already took a write of
        ``token.writer`` under a newer epoch; otherwise record ``token.epoch`` in it, so that an
        older leader's later write is refused (``core.leadership``). Stores shared by several
        processes MUST implement it; the default refuses to run fenced at all."""
        raise ConfigError(
            f"The {type(self).__name__} ledger store cannot fence writers, so it cannot be "
            "shared by several hub processes; use HUB_LEDGER_STORE=postgres with "
            "HUB_LEADER_ELECTION=postgres."
        )


class _Recorder:
    """A NodeReader that records what is asked (and answers zeros): a proof's dry run."""

    def __init__(self) -> None:
        self.keys: list[tuple[int, int]] = []

    def node(self, level: int, index: int) -> bytes:
        self.keys.append((level, index))
        return bytes(HASH_SIZE)


class _Nodes:
    """A NodeReader over prefetched nodes."""

    def __init__(self, nodes: dict[tuple[int, int], bytes]) -> None:
        self._nodes = nodes

    def node(self, level: int, index: int) -> bytes:
        got = self._nodes.get((level, index))
        if got is None:
            raise IndexError(f"node ({level}, {index}) is not stored yet.")
        return got


class LedgerStore(abc.ABC):
    """Leaves, tree hashes, positions and checkpoints of one ledger. Thread-safe.

    Adapters implement the abstract methods; node reads, proofs and roots are built here on
    :meth:`read_chunks`, through a chunk cache (LRU, ``chunk_cache`` chunks): a stored node never
    changes, so a chunk, or the prefix of a partial right-edge chunk, read once stays valid.
    A proof or root first runs over a recording reader to learn which nodes it needs (a proof's
    shape depends on the sizes only), then reads every chunk not cached in ONE call.
    """

    #: the adapter's name as ``HUB_LEDGER_STORE`` spells it (``/health`` shows the one in use)
    kind: str = "unnamed"

    def __init__(self, *, chunk_cache: int = 4096) -> None:
        self._chunks: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._chunk_limit = chunk_cache
        self._cache_lock = threading.Lock()

    # -- writes ------------------------------------------------------------------------------
    @abc.abstractmethod
    def write(self) -> AbstractContextManager[LedgerWrite]:
        """One write transaction: committed on normal exit, rolled back on an exception."""

    # -- state -------------------------------------------------------------------------------
    @abc.abstractmethod
    def tree_size(self) -> int:
        """The committed number of leaves."""

    @abc.abstractmethod
    def positions(self) -> Positions:
        """The committed positions."""

    # -- tree hashes -------------------------------------------------------------------------
    @abc.abstractmethod
    def read_chunks(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The stored bytes of the chunks ``(level, chunk)`` asked for; absent ones omitted.

        Uncached: always what the store holds now (``hub ledger verify`` relies on it).
        """

    @abc.abstractmethod
    def iter_chunks(self) -> Iterator[Chunk]:
        """Every stored chunk, by level then chunk index."""

    #: True when the hashes :meth:`iter_leaf_batches` hands out are read from the stored
    #: level-0 chunks themselves (the tile store's level-0 tiles), so a complete level-0 chunk
    #: equal to those hashes is the stored chunk (``hub ledger verify`` then compares it with
    #: the hashes in hand instead of reading it again). A store keeping leaf hashes apart from
    #: its node chunks (the row store) MUST leave it False.
    leaf_hashes_are_level0: bool = False

    def derived_level(self, level: int) -> bool:
        """Whether the nodes of ``level`` are computed on read from a stored level below rather
        than stored (a tile store keeps every eighth level). ``hub ledger verify`` compares the
        stored levels only: a derived chunk equals the recomputed one whenever the stored
        chunks it is folded from do."""
        return False

    def stored_chunk_keys(self) -> list[tuple[int, int]]:
        """``(level, chunk)`` of every chunk held on the stored levels, by level then chunk."""
        return [(level, chunk) for level, chunk, _ in self.iter_chunks()]

    def read_chunk(self, level: int, chunk: int) -> bytes:
        """One stored chunk, uncached; IndexError when there is none."""
        got = self.read_chunks([(level, chunk)]).get((level, chunk))
        if got is None:
            raise IndexError(f"no node chunk ({level}, {chunk}) in the ledger store.")
        return got

    def _cached(self, level: int, index: int) -> bytes | None:
        key = (level, index // CHUNK)
        data = self._chunks.get(key)
        off = (index % CHUNK) * HASH_SIZE
        if data is None or off + HASH_SIZE > len(data):
            return None
        with self._cache_lock:
            if key in self._chunks:
                self._chunks.move_to_end(key)
        return data[off : off + HASH_SIZE]

    def _cache(self, key: tuple[int, int], data: bytes) -> None:
        with self._cache_lock:
            self._chunks[key] = data
            self._chunks.move_to_end(key)
            while len(self._chunks) > self._chunk_limit:
                self._chunks.popitem(last=False)

    def clear_caches(self) -> None:
        """Forget cached chunks (benchmarks: the uncached path)."""
        with self._cache_lock:
            self._chunks.clear()

    def node(self, level: int, index: int) -> bytes:
        """``NodeReader``: the perfect node ``(level, index)``; IndexError if not stored."""
        got = self._cached(level, index)
        if got is None:
            got = self.nodes([(level, index)]).get((level, index))
        if got is None:
            raise IndexError(f"node ({level}, {index}) is not stored yet.")
        return got

    def nodes(self, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The stored perfect nodes among ``keys`` ((level, index) pairs); others absent.

        Served from the chunk cache; every chunk missing is read in ONE ``read_chunks`` call.
        """
        out: dict[tuple[int, int], bytes] = {}
        missing: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for key in keys:
            got = self._cached(*key)
            if got is None:
                missing.setdefault((key[0], key[1] // CHUNK), []).append(key)
            else:
                out[key] = got
        if not missing:
            return out
        for ckey, data in self.read_chunks(list(missing)).items():
            self._cache(ckey, data)
            for key in missing[ckey]:
                off = (key[1] % CHUNK) * HASH_SIZE
                if off + HASH_SIZE <= len(data):
                    out[key] = data[off : off + HASH_SIZE]
        return out

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """``audit.merkle.inclusion_proof`` over this store, its nodes read in one call."""
        return self._prefetched(inclusion_proof, index, size)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """``audit.merkle.consistency_proof`` over this store, its nodes read in one call."""
        return self._prefetched(consistency_proof, size1, size2)

    def root(self, size: int) -> bytes:
        """The root of the tree of ``size`` leaves (MTH), its nodes read in one call."""
        return self._prefetched(range_root, 0, size)

    def _prefetched(self, fn: Callable[[NodeReader, int, int], _R], a: int, b: int) -> _R:
        wanted = _Recorder()
        fn(wanted, a, b)
        return fn(_Nodes(self.nodes(wanted.keys)), a, b)

    # -- leaves ------------------------------------------------------------------------------
    @abc.abstractmethod
    def leaf(self, index: int) -> LeafRow | None: ...

    @abc.abstractmethod
    def index_of(self, topic: str, partition: int, offset: int) -> int | None:
        """The leaf index of a log record, or None if the ledger has not synced it yet."""

    @abc.abstractmethod
    def iter_leaves(self, start: int = 0, batch: int = 50_000) -> Iterator[list[LeafRow]]:
        """All leaf rows from index ``start`` in index order, in batches."""

    def iter_leaf_batches(self, start: int = 0, batch: int = 50_000) -> Iterator[LeafBatch]:
        """The leaves of :meth:`iter_leaves` as :class:`LeafBatch` columns, in index order, each
        batch's ``first`` the index of its first leaf (``hub ledger verify`` compares them
        column to column). This default builds them from the rows; a columnar store (tiles)
        hands its stored columns and leaf hashes as they are, in its own batches, without a
        row per leaf. Raises what :meth:`iter_leaves` raises for a damaged store."""
        for rows in self.iter_leaves(start, batch):
            yield LeafBatch.of_rows(rows)

    def iter_stored_batches(self, start: int = 0) -> Iterator[StoredLeafBatch]:
        """The batches of :meth:`iter_leaf_batches` as :class:`StoredLeafBatch` (``hub ledger
        verify``'s usual case). This default wraps the decoded batches; a store holding its
        columns encoded (tiles) decodes only the keys and compares a recomputed batch by its
        encoded bytes, decoding the rest only when they differ."""
        for batch in self.iter_leaf_batches(start):
            yield StoredLeafBatch.of(batch)

    @abc.abstractmethod
    def find(self, where: LeafQuery, *, after: int = -1, limit: int = 100) -> list[LeafRow]:
        """Leaves matching every filter of ``where``, in index order, from index ``after + 1``."""

    def query(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        resource: str | None = None,
        topic: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        topics: Sequence[str] | None = None,
        tenant_scope: str | None = None,
        after: int = -1,
        limit: int = 100,
    ) -> list[LeafRow]:
        """:meth:`find` with keyword filters."""
        where = LeafQuery(
            actor,
            action,
            resource,
            topic,
            since_ms,
            until_ms,
            None if topics is None else (*topics,),
            tenant_scope,
        )
        return self.find(where, after=after, limit=limit)

    @abc.abstractmethod
    def count_by_topic(self, since_ms: int, until_ms: int) -> dict[str, int]:
        """Leaves per topic whose log time is in ``[since_ms, until_ms)``, by topic name."""

    # -- integrity ---------------------------------------------------------------------------
    def integrity_problems(self, decoded: Collection[int] = (), verified: int = 0) -> list[str]:
        """Damage visible in the store's own layout (side indexes, caches of the right edge),
        as sentences; ``hub ledger verify`` reports them. Empty for stores with none.

        ``decoded``: the first leaves of side-index batches the caller has already read
        through :meth:`iter_leaf_batches` (each one digest-checked, decoded and its row count
        compared there); ``verified``: an incremental verify's starting size, below which an
        earlier run checked every batch. A store MAY skip decoding those batches and the
        batches whose leaves all lie below ``verified`` (the periodic full verify re-reads
        them: an incremental run's cost must not grow with the ledger), and MUST still check
        every other batch and the layout (contiguity, counts, edges)."""
        return []

    unkeyed_since = ""
    """The release from which the store writes a MAC per side-index batch ("" for stores
    without batches)."""

    def unkeyed_batches(self) -> int:
        """Side-index batches stored without a MAC (written before ``unkeyed_since``): only
        their unkeyed digest and ``hub ledger verify --full`` check them. A store MUST check
        every other batch's MAC (keyed by a secret kept outside the store) on every read, and
        MUST refuse a batch whose MAC was removed while an earlier batch has one. 0 for stores
        without side-index batches."""
        return 0

    def location(self, level: int, index: int) -> str:
        """Where node ``(level, index)`` is kept, for messages ("" if nothing more specific)."""
        return ""

    # -- checkpoints -------------------------------------------------------------------------
    @abc.abstractmethod
    def checkpoints(
        self, *, min_size: int = 0, max_size: int | None = None
    ) -> list[StoredCheckpoint]:
        """Checkpoints with ``min_size <= size <= max_size``, ordered by size."""

    def checkpoint(self, size: int) -> StoredCheckpoint | None:
        got = self.checkpoints(min_size=size, max_size=size)
        return got[0] if got else None

    @abc.abstractmethod
    def latest_checkpoint(self) -> StoredCheckpoint | None: ...

    @abc.abstractmethod
    def first_checkpoint_covering(self, index: int) -> StoredCheckpoint | None:
        """The smallest checkpoint whose tree includes leaf ``index`` (size > index)."""

    @abc.abstractmethod
    def witness_intents(self) -> list[int]:
        """The committed witness intents (checkpoint sizes awaiting their copy), ascending."""

    @abc.abstractmethod
    def close(self) -> None: ...
