"""The native Merkle hashing (``native/src/merkle.rs``) gives exactly the bytes of its
pure-Python reference (``core.hashing``), and the tree built with either is the RFC tree."""

from __future__ import annotations

import random

import pytest

from audit.merkle import leaf_hash, node_hash
from core import hashing
from tests.infra import in_ci


@pytest.fixture(scope="module")
def native() -> object:
    try:
        import hub_native  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        if in_ci():
            pytest.fail("hub_native is not built: `make setup` runs native/build.sh (needs cargo).")
        pytest.skip("LOUD: hub_native is not built (run `make setup` with cargo installed).")
    return hub_native


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
