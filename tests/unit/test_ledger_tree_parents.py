"""The ledger tree's native level hashing (``native/src/tree_parents.rs``, ``tree_parents``:
GIL released, a large level split over threads) gives exactly the pure-Python reference's bytes
(``core.hashing.parents_py``) for every split, and a ``TreeBuilder`` on threads writes the same
chunks as one on a single thread."""

from __future__ import annotations

import random
from typing import Any

import pytest

from core import hashing
from ledger.tree import TreeBuilder
from tests.native import native_module


@pytest.fixture(scope="module")
def native() -> Any:
    return native_module("tree_parents")


def test_tree_parents_match_the_reference_for_every_split(native: Any) -> None:
    rnd = random.Random(23)
    # 0/1 node: no pair; 8,192 and 12,289 pairs split over 2 and 3 threads, an odd node left
    for count in (0, 1, 2, 3, 257, 2 * 8192, 2 * 12_289 + 1):
        nodes = rnd.randbytes(32 * count)
        ref = hashing.parents_py(nodes)
        for threads in (1, 2, 3, 8):
            assert native.tree_parents(nodes, threads) == ref, (count, threads)


def test_tree_builder_on_threads_writes_the_same_chunks(native: Any) -> None:
    rnd = random.Random(29)
    one, many = TreeBuilder(), TreeBuilder(threads=3)
    for n in (1, 9_000, 30_000, 3, 17_000):  # odd edges between batches
        leaves = rnd.randbytes(32 * n)
        assert many.append(leaves) == one.append(leaves)
    with pytest.raises(ValueError, match="threads must be 1 to 8"):
        TreeBuilder(threads=9)
