"""The ledger tree's node layout and its incremental builder (pure: no I/O).

Layout: every *perfect* node of the RFC 9162 tree is stored, by level (0 = leaf hashes), in
*chunks* of ``CHUNK`` (256) consecutive nodes: chunk ``(level, c)`` holds nodes ``[c * 256,
(c + 1) * 256)`` of that level back to back, 32 bytes each (8 KiB when full). Perfect nodes never
change, so a full chunk never changes either; only the right-most chunk of each level grows, and
it is rewritten in place as the tree grows. An inclusion proof at 10M leaves touches 24 levels:
at most 24 chunks (cached by readers, all read in one call by the ``LedgerStore`` port), O(log n).

:class:`TreeBuilder` keeps the right edge (each level's partial chunk) and turns a batch of
leaf hashes into the chunks to write: each new parent is hashed exactly once, level by level,
one ``core.hashing.parents`` call per level (native when built: one call for the level's new
nodes; else one ``hashlib`` call per node). With ``hub_native.tree_parents`` (session 18) a
level is hashed without the GIL, on up to ``threads`` threads when it has 4,096+ pairs per
thread (the same bytes; ``tests/unit/test_ledger_tree_parents.py``). Verification re-runs the
same builder from an empty tree over recomputed leaf hashes and compares chunk by chunk.
"""

from __future__ import annotations

from collections.abc import Callable

from audit.merkle import HASH_SIZE, node_hash
from core.hashing import parents
from core.ports.ledgerstore import CHUNK, Chunk

try:  # native/src/tree_parents.rs: a level's parents in place, GIL released, split on threads
    from hub_native import (  # type: ignore[import-not-found,unused-ignore]
        tree_parents as _native_parents,
    )
except ImportError:  # not built, or built before it existed: core.hashing.parents
    _native_parents = None

__all__ = ["CHUNK", "CHUNK_BYTES", "Chunk", "TreeBuilder", "edge_chunks"]

CHUNK_BYTES = CHUNK * HASH_SIZE


def edge_chunks(size: int) -> list[tuple[int, int, int]]:
    """For a tree of ``size`` leaves: (level, chunk, node count) of each level's partial chunk."""
    out = []
    for level in range(size.bit_length()):
        count = size >> level
        if count % CHUNK:
            out.append((level, count // CHUNK, count % CHUNK))
    return out


class TreeBuilder:
    """The right edge of a stored tree; ``append`` returns the chunks a batch changes.

    MUST be given the exact partial chunks of the stored tree (see :func:`edge_chunks`); a
    single writer owns it (the ledger reloads it inside each write transaction).
    """

    __slots__ = ("_edges", "_threads", "size")

    def __init__(
        self,
        size: int = 0,
        load: Callable[[int, int], bytes] | None = None,
        *,
        threads: int = 1,
    ) -> None:
        if not 1 <= threads <= 8:
            raise ValueError(f"threads must be 1 to 8 (hashing threads per level); got {threads}.")
        self._threads = threads
        self.size = size
        self._edges: list[bytes] = [b""] * max(size.bit_length(), 1)
        for level, chunk, count in edge_chunks(size):
            if load is None:
                raise ValueError("a non-empty tree needs a loader for its edge chunks.")
            data = load(level, chunk)
            if len(data) != count * HASH_SIZE:
                raise ValueError(
                    f"edge chunk ({level}, {chunk}) holds {len(data) // HASH_SIZE} nodes; a tree "
                    f"of size {size} needs {count}."
                )
            self._edges[level] = data

    def append(self, packed: bytes) -> list[Chunk]:
        """Append leaf hashes given back to back; returns every chunk that changed."""
        if len(packed) % HASH_SIZE:
            raise ValueError("packed leaf hashes must be a multiple of 32 bytes.")
        old = self.size
        self.size += len(packed) // HASH_SIZE
        dirty: list[Chunk] = []
        new = packed
        level = 0
        while new:
            if level == len(self._edges):
                self._edges.append(b"")
            count = old >> level  # nodes at this level before the batch
            start = count - count % CHUNK  # first node of the edge chunk
            combined = self._edges[level] + new  # nodes [start, count + new)
            first = start // CHUNK
            for k in range(0, len(combined), CHUNK_BYTES):
                dirty.append((level, first + k // CHUNK_BYTES, combined[k : k + CHUNK_BYTES]))
            tail = len(combined) % CHUNK_BYTES
            self._edges[level] = combined[len(combined) - tail :] if tail else b""
            # Parents of complete pairs: from the pair holding node `count` on.
            lo = ((count & ~1) - start) * HASH_SIZE
            hi = ((count + len(new) // HASH_SIZE) & ~1) - start
            pairs = combined[lo : hi * HASH_SIZE]
            if _native_parents is not None:
                new = _native_parents(pairs, self._threads)
            else:
                new = parents(pairs)
            level += 1
        return dirty

    def root(self) -> bytes:
        """The root (RFC 9162) of the tree of ``size`` leaves, from the right edge alone: each
        set bit of ``size`` names a perfect subtree whose root is the last node of its level's
        edge chunk, folded from the smallest (right) to the largest (left)."""
        if not self.size:
            raise ValueError("an empty tree has no root node.")
        out = b""
        for level in range(self.size.bit_length()):
            if (self.size >> level) & 1:
                top = self._edges[level][-HASH_SIZE:]
                out = node_hash(top, out) if out else top
        return out
