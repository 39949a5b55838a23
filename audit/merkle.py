"""RFC 9162 (Certificate Transparency v2) Merkle tree math: pure, no I/O, stdlib only.

Hashes are SHA-256 with domain separation: a leaf is ``SHA-256(0x00 || data)``, an interior node
``SHA-256(0x01 || left || right)``, the empty tree ``SHA-256("")``.

The tree of size ``n`` is viewed by *levels*, as Trillian and Tessera store it: level 0 holds the
leaf hashes, and node ``(level, index)`` is the root of leaves ``[index << level, (index + 1) <<
level)``. Only *perfect* nodes (whose range lies wholly below the tree size) are ever stored; they
never change once written, so one store serves every past tree size. Anything else (the root of a
tree whose size is not a power of two, the right-border sibling in a proof) is *ephemeral* and is
folded from perfect nodes on demand. This level view yields exactly the RFC's MTH, PATH and PROOF
(a node with no right sibling is carried up unchanged, which is what the RFC's split at the
largest power of two below ``n`` amounts to); ``tests/unit/test_merkle.py`` checks that against a
recursive transcription of the RFC text.

Proof generation works over any :class:`NodeReader`, so a persistent store can supply nodes;
:class:`MemoryTree` is the in-memory one (32 bytes a node in one ``bytearray`` a level: 10M leaves
take about 640 MB).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Protocol

from audit.errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "MemoryTree",
    "NodeReader",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "range_root",
    "root_from_consistency_proof",
    "root_from_inclusion_proof",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_sha256 = hashlib.sha256

EMPTY_ROOT = _sha256(b"").digest()
"""MTH({}) = SHA-256 of the empty string (RFC 9162 §2.1.1)."""


def leaf_hash(data: bytes) -> bytes:
    """MTH of a one-leaf tree: ``SHA-256(0x00 || data)``."""
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Interior node: ``SHA-256(0x01 || left || right)``."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH of a tree whose leaf hashes are ``hashes`` (any size, ``EMPTY_ROOT`` for none).

    Iterative, level by level: pairs are hashed, an odd last node is carried up unchanged.
    """
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    while len(level) > 1:
        it = iter(level)
        nxt = [_sha256(_NODE_PREFIX + a + b).digest() for a, b in zip(it, it, strict=False)]
        if len(level) & 1:
            nxt.append(level[-1])
        level = nxt
    return level[0]


# --------------------------------------------------------------------------------------------
# Node access and proof generation


class NodeReader(Protocol):
    """Read access to the perfect nodes of a tree.

    ``node(level, index)`` MUST return the 32-byte root of leaves ``[index << level,
    (index + 1) << level)``; callers here only ask for nodes whose range lies wholly within a
    size the reader holds. A reader MAY raise ``IndexError`` for anything else.
    """

    def node(self, level: int, index: int) -> bytes: ...


def _check_hash(name: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{name} must be {HASH_SIZE} bytes, got {len(value)}.")


def range_root(reader: NodeReader, start: int, end: int) -> bytes:
    """MTH of leaves ``[start, end)`` folded from perfect nodes.

    ``start`` MUST be a multiple of a power of two at least ``end - start`` (true of every
    subtree the RFC's recursion visits); then the range splits into perfect subtrees by the bits
    of its size, largest first, and the RFC's MTH folds them from the right.
    """
    size = end - start
    if size <= 0:
        if size == 0:
            return EMPTY_ROOT
        raise ValueError(f"range_root needs start <= end, got [{start}, {end}).")
    if start & ((1 << (size - 1).bit_length()) - 1):
        raise ValueError(f"range [{start}, {end}) is not aligned to a subtree boundary.")
    parts: list[bytes] = []
    pos = start
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            parts.append(reader.node(level, pos >> level))
            pos += 1 << level
    root = parts[-1]
    for part in reversed(parts[:-1]):
        root = _sha256(_NODE_PREFIX + part + root).digest()
    return root


def inclusion_proof(reader: NodeReader, index: int, size: int) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(index, D[size]), leaf sibling first.

    MUST be called with ``0 <= index < size`` and ``size`` no larger than the reader holds.
    Walks up the levels: a left sibling is always perfect, a right sibling is perfect, partial
    (folded by :func:`range_root`, at most once per proof) or absent (the node is carried up).
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}.")
    proof: list[bytes] = []
    i = index
    level = 0
    last = size - 1
    while last >> level:  # stop at the level where one node spans the whole tree
        sibling = i ^ 1
        begin = sibling << level
        if begin < size:
            if (sibling + 1) << level <= size:
                proof.append(reader.node(level, sibling))
            else:
                proof.append(range_root(reader, begin, size))
        i >>= 1
        level += 1
    return proof


def consistency_proof(reader: NodeReader, size1: int, size2: int) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(size1, D[size2]).

    MUST be called with ``0 <= size1 <= size2``; returns ``[]`` when ``size1`` is 0 or equal to
    ``size2`` (nothing to prove). The RFC's SUBPROOF recursion is unrolled: each step appends one
    subtree root, and the result is that list reversed.
    """
    if not 0 <= size1 <= size2:
        raise ValueError(f"consistency proof needs 0 <= size1 <= size2, got {size1}, {size2}.")
    if size1 == 0 or size1 == size2:
        return []
    out: list[bytes] = []
    start, end, m = 0, size2, size1
    complete = True  # SUBPROOF's b: True while the old tree is a left spine of the new one
    while m != end - start:
        k = 1 << ((end - start - 1).bit_length() - 1)  # largest power of two below the size
        if m <= k:
            out.append(range_root(reader, start + k, end))
            end = start + k
        else:
            out.append(reader.node(k.bit_length() - 1, start >> (k.bit_length() - 1)))
            start += k
            m -= k
            complete = False
    if not complete:
        out.append(range_root(reader, start, end))
    out.reverse()
    return out


# --------------------------------------------------------------------------------------------
# Proof verification (RFC 9162 §2.1.3.2 and §2.1.4.2, iterative as written there)


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root implied by an inclusion proof; raises ``ProofError`` if it is malformed.

    Malformed means: index out of range, a hash not 32 bytes, or a proof of the wrong length
    for ``(index, size)``. A caller MUST still compare the result with a trusted root.
    """
    _check_hash("leaf hash", leaf)
    if size <= 0 or not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}.")
    fn, sn = index, size - 1
    r = leaf
    for pos, p in enumerate(proof):
        _check_hash(f"proof[{pos}]", p)
        if sn == 0:
            raise ProofError(
                f"inclusion proof has {len(proof)} hashes, more than a leaf at index {index} "
                f"of a tree of size {size} needs."
            )
        if fn & 1 or fn == sn:
            r = _sha256(_NODE_PREFIX + p + r).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _sha256(_NODE_PREFIX + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(
            f"inclusion proof has {len(proof)} hashes, fewer than a leaf at index {index} "
            f"of a tree of size {size} needs."
        )
    return r


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Return if ``leaf`` is at ``index`` of the tree ``(size, root)``, else raise ProofError."""
    _check_hash("root", root)
    got = root_from_inclusion_proof(leaf, index, size, proof)
    if got != root:
        raise ProofError(
            f"inclusion proof for leaf {index} of tree size {size} gives root {got.hex()}, "
            f"not the expected {root.hex()}."
        )


def root_from_consistency_proof(
    size1: int, size2: int, root1: bytes, proof: Sequence[bytes]
) -> bytes:
    """The size2 root implied by a consistency proof from ``(size1, root1)``.

    Raises ``ProofError`` if the proof is malformed or does not match ``root1``. Requires
    ``0 < size1 < size2``; the trivial cases are handled by :func:`verify_consistency`.
    """
    if not 0 < size1 < size2:
        raise ValueError(f"needs 0 < size1 < size2, got {size1}, {size2}.")
    _check_hash("root1", root1)
    for pos, p in enumerate(proof):
        _check_hash(f"proof[{pos}]", p)
    if not proof:
        raise ProofError(f"consistency proof from size {size1} to {size2} is empty.")
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # size1 is a power of two: the old root is itself a node
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(
                f"consistency proof from size {size1} to {size2} has too many hashes "
                f"({len(proof)})."
            )
        if fn & 1 or fn == sn:
            fr = _sha256(_NODE_PREFIX + c + fr).digest()
            sr = _sha256(_NODE_PREFIX + c + sr).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _sha256(_NODE_PREFIX + sr + c).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(
            f"consistency proof from size {size1} to {size2} has too few hashes ({len(proof)})."
        )
    if fr != root1:
        raise ProofError(
            f"consistency proof from size {size1} to {size2} gives old root {fr.hex()}, "
            f"not the expected {root1.hex()}."
        )
    return sr


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """Return if tree ``(size2, root2)`` extends ``(size1, root1)``; else raise ``ProofError``.

    Trivial cases: ``size1 == size2`` needs an empty proof and equal roots; ``size1 == 0`` needs
    an empty proof and ``root1 == EMPTY_ROOT`` (stricter than RFC 9162, which leaves it
    undefined: an empty tree has exactly one root).
    """
    _check_hash("root1", root1)
    _check_hash("root2", root2)
    if size1 < 0 or size2 < size1:
        raise ProofError(f"tree size went from {size1} to {size2}: a log MUST NOT shrink.")
    if size1 == size2 or size1 == 0:
        if proof:
            raise ProofError(
                f"consistency proof from size {size1} to {size2} MUST be empty, "
                f"got {len(proof)} hashes."
            )
        if size1 == 0:
            if root1 != EMPTY_ROOT:
                raise ProofError(f"root of the empty tree must be {EMPTY_ROOT.hex()}.")
        elif root1 != root2:
            raise ProofError(f"two roots for tree size {size1}: {root1.hex()} and {root2.hex()}.")
        return
    got = root_from_consistency_proof(size1, size2, root1, proof)
    if got != root2:
        raise ProofError(
            f"consistency proof from size {size1} to {size2} gives new root {got.hex()}, "
            f"not the expected {root2.hex()}."
        )


# --------------------------------------------------------------------------------------------
# Incremental trees


class CompactRange:
    """The roots of the perfect subtrees covering ``[0, size)``, largest first (a compact range).

    Appending is O(log n) hashes worst case, one amortised; memory is O(log n). ``hashes`` has
    one entry per set bit of ``size``, so ``(size, hashes)`` can be persisted and restored.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(hashes) != size.bit_count():
            raise ValueError(
                f"a compact range of size {size} has {max(size, 0).bit_count()} hashes, "
                f"got {len(hashes)}."
            )
        for h in hashes:
            _check_hash("compact range hash", h)
        self._size = size
        self._hashes = list(hashes)

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        return tuple(self._hashes)

    def append(self, leaf_hash_: bytes) -> None:
        """Append one leaf hash (MUST be 32 bytes: the leaf's hash, not its data)."""
        _check_hash("leaf hash", leaf_hash_)
        h = leaf_hash_
        n = self._size
        stack = self._hashes
        while n & 1:  # each trailing 1 bit is a perfect subtree that now has a right sibling
            h = _sha256(_NODE_PREFIX + stack.pop() + h).digest()
            n >>= 1
        stack.append(h)
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        for h in leaf_hashes:
            self.append(h)

    def root(self) -> bytes:
        """MTH of the current size."""
        if not self._hashes:
            return EMPTY_ROOT
        r = self._hashes[-1]
        for h in reversed(self._hashes[:-1]):
            r = _sha256(_NODE_PREFIX + h + r).digest()
        return r


class MemoryTree:
    """An append-only tree holding every perfect node in memory, one ``bytearray`` per level.

    Implements :class:`NodeReader`. Appends are batched: a batch is hashed level by level, each
    new parent once. Not thread-safe: a single writer MUST own it; readers of past sizes are
    unaffected by appends because perfect nodes never change.
    """

    __slots__ = ("_levels", "_size")

    def __init__(self) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    def node(self, level: int, index: int) -> bytes:
        if level < 0 or index < 0:
            raise IndexError(f"no node ({level}, {index}).")
        off = index * HASH_SIZE
        try:
            buf = self._levels[level]
        except IndexError:
            raise IndexError(
                f"no node ({level}, {index}) in a tree of size {self._size}."
            ) from None
        if off + HASH_SIZE > len(buf):
            raise IndexError(f"no node ({level}, {index}) in a tree of size {self._size}.")
        return bytes(buf[off : off + HASH_SIZE])

    def leaf_hash_at(self, index: int) -> bytes:
        return self.node(0, index)

    def append_leaves(self, leaves: Iterable[bytes]) -> int:
        """Hash each leaf's data (RFC leaf hash) and append; returns the new size."""
        return self._append([_sha256(_LEAF_PREFIX + d).digest() for d in leaves])

    def append_leaf_hashes(self, hashes: Iterable[bytes]) -> int:
        """Append 32-byte leaf hashes; returns the new size. A wrong length raises ValueError."""
        hs = [bytes(h) for h in hashes]
        for h in hs:
            if len(h) != HASH_SIZE:
                raise ValueError(f"leaf hash must be {HASH_SIZE} bytes, got {len(h)}.")
        return self._append(hs)

    def append_packed_leaf_hashes(self, packed: bytes) -> int:
        """Append leaf hashes given back to back (``len(packed)`` MUST be a multiple of 32)."""
        if len(packed) % HASH_SIZE:
            raise ValueError(f"packed leaf hashes must be a multiple of {HASH_SIZE} bytes.")
        data = bytes(packed)
        return self._append([data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)])

    def _append(self, new: list[bytes]) -> int:
        if not new:
            return self._size
        levels = self._levels
        self._size += len(new)
        level = 0
        # Level by level: the batch's new nodes are paired (the first with the level's last
        # stored node when that one had no right sibling yet), each new parent hashed once, and
        # the new nodes stored. Stop when a level completes no parent: nothing above changes.
        while new:
            if level == len(levels):
                levels.append(bytearray())
            buf = levels[level]
            odd = len(buf) // HASH_SIZE & 1
            seq = [bytes(buf[-HASH_SIZE:]), *new] if odd else new
            buf += b"".join(new)
            it = iter(seq)
            new = [_sha256(_NODE_PREFIX + a + b).digest() for a, b in zip(it, it, strict=False)]
            level += 1
        return self._size

    def root(self, size: int | None = None) -> bytes:
        """MTH at ``size`` (default: the current size); any past size is available."""
        n = self._size if size is None else size
        if not 0 <= n <= self._size:
            raise ValueError(f"tree size {n} is outside 0..{self._size}.")
        return range_root(self, 0, n)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        n = self._size if size is None else size
        if n > self._size:
            raise ValueError(f"tree size {n} is larger than the tree ({self._size}).")
        return inclusion_proof(self, index, n)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        n = self._size if size2 is None else size2
        if n > self._size:
            raise ValueError(f"tree size {n} is larger than the tree ({self._size}).")
        return consistency_proof(self, size1, n)

    def compact_range(self, size: int | None = None) -> CompactRange:
        """The compact range at ``size``, e.g. to hand over to an incremental writer."""
        n = self._size if size is None else size
        if not 0 <= n <= self._size:
            raise ValueError(f"tree size {n} is outside 0..{self._size}.")
        hashes = []
        pos = 0
        for level in range(n.bit_length() - 1, -1, -1):
            if n >> level & 1:
                hashes.append(self.node(level, pos >> level))
                pos += 1 << level
        return CompactRange(n, hashes)
