"""RFC 9162 Merkle hashing in batches, native when the ``hub_native`` extension is built.

Two functions, each with a pure-Python reference that gives the same bytes (the reference is
what runs when the extension is absent, and what ``tests/unit/test_native_merkle.py`` compares
the extension against on random batches):

- :func:`leaf_hashes`: ``SHA-256(0x00 || item)`` of every item, packed back to back;
- :func:`parents`: ``SHA-256(0x01 || left || right)`` of every complete pair of 32-byte nodes
  given back to back (a trailing odd node has no parent here).

``hashlib`` costs one Python call, one hash object and one ``bytes`` per leaf or node; the
extension (``native/src/merkle.rs``, built by ``make setup``) does one call per batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from types import ModuleType

__all__ = ["NATIVE", "leaf_hashes", "leaf_hashes_py", "parents", "parents_py", "split"]

_sha256 = hashlib.sha256
_digest = type(_sha256()).digest
_LEAF = b"\x00"
_NODE = b"\x01"


def leaf_hashes_py(items: Sequence[bytes]) -> bytes:
    """Reference: ``SHA-256(0x00 || item)`` per item, packed."""
    return b"".join(map(_digest, map(_sha256, map(_LEAF.__add__, items))))


def parents_py(nodes: bytes) -> bytes:
    """Reference: the parent of every complete pair of 32-byte nodes, packed."""
    sha = _sha256
    node = _NODE
    return b"".join([sha(node + nodes[i : i + 64]).digest() for i in range(0, len(nodes) - 63, 64)])


def split(packed: bytes) -> list[bytes]:
    """Packed 32-byte hashes as a list of ``bytes``."""
    return [packed[i : i + 32] for i in range(0, len(packed), 32)]


def _load() -> ModuleType | None:
    try:
        import hub_native  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return hub_native  # type: ignore[no-any-return]


_native = _load()
NATIVE: bool = _native is not None
"""Whether the native extension is loaded (``make setup`` builds it where cargo exists)."""

leaf_hashes: Callable[[list[bytes]], bytes] = (
    _native.leaf_hashes if _native is not None else leaf_hashes_py
)
parents: Callable[[bytes], bytes] = _native.parents if _native is not None else parents_py
