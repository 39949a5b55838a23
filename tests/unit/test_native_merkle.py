"""The native Merkle hashing (``native/src/merkle.rs``) gives exactly the bytes of its
pure-Python reference (``core.hashing``), and the tree built with either is the RFC tree."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from audit.merkle import leaf_hash, node_hash
from core import hashing
from tests.native import native_module


@pytest.fixture(scope="module")
def native() -> object:
    return native_module()


def test_leaf_hashes_are_byte_identical_on_random_batches(native: object) -> None:
    rnd = random.Random(13)
    for n in (0, 1, 2, 255, 256, 1000):
        items = [rnd.randbytes(rnd.choice((0, 1, 31, 32, 64, 200, 1500))) for _ in range(n)]
        got = native.leaf_hashes(items)  # type: ignore[attr-defined]
        assert got == hashing.leaf_hashes_py(items)
        assert hashing.split(got) == [leaf_hash(d) for d in items]


def test_parents_are_byte_identical_and_drop_an_odd_last_node(native: object) -> None:
    rnd = random.Random(17)
    for count in (0, 1, 2, 3, 256, 257, 4097):
        nodes = rnd.randbytes(32 * count)
        got = native.parents(nodes)  # type: ignore[attr-defined]
        assert got == hashing.parents_py(nodes)
        assert len(got) == 32 * (count // 2)
        want = [
            node_hash(nodes[i : i + 32], nodes[i + 32 : i + 64])
            for i in range(0, 64 * (count // 2), 64)
        ]
        assert hashing.split(got) == want


def test_native_rejects_a_list_that_is_not_bytes(native: object) -> None:
    with pytest.raises(TypeError, match="list of bytes"):
        native.leaf_hashes([b"a", "b"])  # type: ignore[attr-defined]


def test_the_hub_uses_the_native_path_when_it_is_built(native: object) -> None:
    assert hashing.NATIVE and hashing.parents is native.parents  # type: ignore[attr-defined]


def _tiles(
    leaf_fn: Callable[[list[bytes]], bytes],
    parents_fn: Callable[[bytes], bytes],
    inputs: list[bytes],
    cuts: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> dict[tuple[int, int], bytes]:
    """The stored chunks (tiles) after appending ``inputs`` in the batches ``cuts`` marks:
    the last bytes written to each (level, index), as a store keeps them."""
    import ledger.tree as tree_module
    from ledger.tree import TreeBuilder

    monkeypatch.setattr(tree_module, "parents", parents_fn)
    b = TreeBuilder()
    tiles: dict[tuple[int, int], bytes] = {}
    for lo, hi in zip([0, *cuts], [*cuts, len(inputs)], strict=True):
        for level, index, data in b.append(leaf_fn(inputs[lo:hi])):
            tiles[(level, index)] = data
    return tiles


class _Tiles:
    """NodeReader over stored chunks (256 nodes of a level each)."""

    def __init__(self, tiles: dict[tuple[int, int], bytes]) -> None:
        self.tiles = tiles

    def node(self, level: int, index: int) -> bytes:
        data = self.tiles[(level, index // 256)]
        return data[(index % 256) * 32 : (index % 256 + 1) * 32]


@pytest.mark.parametrize("size", [255, 256, 257, 65535, 65536, 65537, "random"])
def test_native_tiles_and_root_equal_the_reference_across_tile_boundaries(
    native: object, size: int | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leaf hashes and tree nodes through the native extension give the same tiles (partial
    ones included) and the same RFC 9162 root as the pure-Python reference, whatever the
    batches the leaves arrive in (one batch, or cut at random points: a batch ending inside a
    tile, on a tile boundary, one past it)."""
    from audit.merkle import range_root, root_from_leaf_hashes

    rnd = random.Random(f"tiles-{size}")
    n = rnd.randint(1, 70_000) if size == "random" else int(size)
    inputs = [rnd.randbytes(rnd.choice((0, 1, 40, 443))) for _ in range(n)]
    leaves = hashing.split(hashing.leaf_hashes_py(inputs))
    want_root = root_from_leaf_hashes(leaves)
    for cuts in (
        [],
        sorted(rnd.sample(range(1, n), min(5, n - 1))),
        [c for c in (255, 256, 257, 65536) if c < n],
    ):
        ref = _tiles(hashing.leaf_hashes_py, hashing.parents_py, inputs, cuts, monkeypatch)
        nat = _tiles(native.leaf_hashes, native.parents, inputs, cuts, monkeypatch)  # type: ignore[attr-defined]
        assert nat == ref
        # the partial right-most tile of level 0 holds exactly the leaves past the last full one
        assert len(ref[(0, (n - 1) // 256)]) == 32 * (n - 256 * ((n - 1) // 256))
        assert range_root(_Tiles(nat), 0, n) == want_root
