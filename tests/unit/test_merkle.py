"""audit.merkle against the published RFC 6962/9162 vectors and an independent RFC oracle."""

from __future__ import annotations

import hashlib
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.errors import ProofError
from audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    range_root,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

# --------------------------------------------------------------------------------------------
# Published vectors.
#
# Leaf inputs, node hashes and roots: github.com/transparency-dev/merkle testonly/constants.go
# (LeafInputs, NodeHashes, RootHashes, EmptyRootHash), the same 8 leaves the Certificate
# Transparency test suites use. Inclusion and consistency proofs: transparency-dev/merkle
# proof/verify_test.go (inclusionProofs, whose leaf numbers are 1-based there and 0-based here,
# and consistencyProofs).

h = bytes.fromhex

LEAF_INPUTS = [
    h(""),
    h("00"),
    h("10"),
    h("2021"),
    h("3031"),
    h("40414243"),
    h("5051525354555657"),
    h("606162636465666768696a6b6c6d6e6f"),
]

NODE_HASHES = [
    [
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        h("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
        h("07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
        h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        h("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
        h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        h("46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ],
    [
        h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ],
    [
        h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ],
    [h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")],
]

# Indexed by tree size, 0..8.
ROOTS = [
    h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]

# (0-based leaf index, tree size, proof)
INCLUSION_VECTORS = [
    (0, 1, []),
    (
        0,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        5,
        8,
        [
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (2, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        1,
        5,
        [
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]

# (size1, size2, proof)
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]

SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")


# --------------------------------------------------------------------------------------------
# The oracle: RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1 transcribed literally (recursive, slow).


def oracle_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1 << ((n - 1).bit_length() - 1)  # largest power of two smaller than n
    return hashlib.sha256(b"\x01" + oracle_mth(d[:k]) + oracle_mth(d[k:])).digest()


def oracle_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*oracle_path(m, d[:k]), oracle_mth(d[k:])]
    return [*oracle_path(m - k, d[k:]), oracle_mth(d[:k])]


def oracle_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [oracle_mth(d)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*oracle_subproof(m, d[:k], b), oracle_mth(d[k:])]
    return [*oracle_subproof(m - k, d[k:], False), oracle_mth(d[:k])]


def oracle_proof(m: int, d: list[bytes]) -> list[bytes]:
    return oracle_subproof(m, d, True)


# --------------------------------------------------------------------------------------------
# Shared trees

BIG = 5000
BIG_LEAVES = [i.to_bytes(4, "big") + b"leaf" for i in range(BIG)]


@cache
def big_tree() -> MemoryTree:
    t = MemoryTree()
    # Uneven batches exercise the batch path at every alignment.
    pos = 0
    for step in [1, 2, 3, 5, 8, 13, 100, 255, 256, 257, 1000]:
        t.append_leaves(BIG_LEAVES[pos : pos + step])
        pos += step
    t.append_leaves(BIG_LEAVES[pos:])
    return t


@cache
def oracle_root(n: int) -> bytes:
    return oracle_mth(BIG_LEAVES[:n])


@pytest.fixture(scope="module")
def vec_tree() -> MemoryTree:
    t = MemoryTree()
    t.append_leaves(LEAF_INPUTS)
    return t


# --------------------------------------------------------------------------------------------
# Vectors


def test_empty_root() -> None:
    assert ROOTS[0] == EMPTY_ROOT
    assert root_from_leaf_hashes([]) == EMPTY_ROOT
    assert MemoryTree().root() == EMPTY_ROOT
    assert CompactRange().root() == EMPTY_ROOT


def test_vector_leaf_and_node_hashes(vec_tree: MemoryTree) -> None:
    for i, data in enumerate(LEAF_INPUTS):
        assert leaf_hash(data) == NODE_HASHES[0][i]
    for level, row in enumerate(NODE_HASHES):
        for index, want in enumerate(row):
            assert vec_tree.node(level, index) == want
            if level:
                kids = NODE_HASHES[level - 1]
                assert node_hash(kids[2 * index], kids[2 * index + 1]) == want


@pytest.mark.parametrize("size", range(9))
def test_vector_roots(vec_tree: MemoryTree, size: int) -> None:
    hashes = [leaf_hash(x) for x in LEAF_INPUTS[:size]]
    assert root_from_leaf_hashes(hashes) == ROOTS[size]
    assert vec_tree.root(size) == ROOTS[size]
    cr = CompactRange()
    cr.extend(hashes)
    assert cr.root() == ROOTS[size]
    assert oracle_mth(LEAF_INPUTS[:size]) == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_vector_inclusion(vec_tree: MemoryTree, index: int, size: int, proof: list[bytes]) -> None:
    assert vec_tree.inclusion_proof(index, size) == proof
    assert oracle_path(index, LEAF_INPUTS[:size]) == proof
    leaf = leaf_hash(LEAF_INPUTS[index])
    verify_inclusion(leaf, index, size, proof, ROOTS[size])
    assert_inclusion_tampering_fails(leaf, index, size, proof, ROOTS[size])


@pytest.mark.parametrize(("size1", "size2", "proof"), CONSISTENCY_VECTORS)
def test_vector_consistency(
    vec_tree: MemoryTree, size1: int, size2: int, proof: list[bytes]
) -> None:
    assert vec_tree.consistency_proof(size1, size2) == proof
    if size1 < size2:
        assert oracle_proof(size1, LEAF_INPUTS[:size2]) == proof
    verify_consistency(size1, size2, ROOTS[size1], ROOTS[size2], proof)
    if proof:
        assert_consistency_tampering_fails(size1, size2, ROOTS[size1], ROOTS[size2], proof)


def test_vector_compact_ranges(vec_tree: MemoryTree) -> None:
    # testonly/constants.go CompactTrees(): the compact range hashes for sizes 0..8.
    nh = NODE_HASHES
    want = [
        [],
        [nh[0][0]],
        [nh[1][0]],
        [nh[1][0], nh[0][2]],
        [nh[2][0]],
        [nh[2][0], nh[0][4]],
        [nh[2][0], nh[1][2]],
        [nh[2][0], nh[1][2], nh[0][6]],
        [nh[3][0]],
    ]
    cr = CompactRange()
    for size in range(9):
        assert list(cr.hashes) == want[size]
        assert list(vec_tree.compact_range(size).hashes) == want[size]
        if size < 8:
            cr.append(nh[0][size])


# --------------------------------------------------------------------------------------------
# Tampering helpers (the probes of transparency-dev/merkle's verify_test.go, plus every bit)


def flip(b: bytes, bit: int) -> bytes:
    out = bytearray(b)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def fails_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    try:
        verify_inclusion(leaf, index, size, proof, root)
    except ProofError:
        return True
    return False


def assert_inclusion_tampering_fails(
    leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes, *, all_bits: bool = True
) -> None:
    for i in range(len(proof)):
        bits = range(256) if all_bits else (0, 3, 100, 255)
        for bit in bits:
            bad = list(proof)
            bad[i] = flip(bad[i], bit)
            assert fails_inclusion(leaf, index, size, bad, root), (i, bit)
    for bit in range(256) if all_bits else (0, 255):
        assert fails_inclusion(flip(leaf, bit), index, size, proof, root)
        assert fails_inclusion(leaf, index, size, proof, flip(root, bit))
    for wrong_index in {index - 1, index + 1, index ^ 2, index ^ 1}:
        if wrong_index != index:
            assert fails_inclusion(leaf, wrong_index, size, proof, root), wrong_index
    for wrong_size in {size * 2, size // 2, 0}:
        if wrong_size != size:
            assert fails_inclusion(leaf, index, wrong_size, proof, root), wrong_size
    assert fails_inclusion(leaf, index, size, proof, EMPTY_ROOT)
    assert fails_inclusion(leaf, index, size, proof, SOME_HASH)
    assert fails_inclusion(leaf, index, size, [*proof, root], root)
    assert fails_inclusion(leaf, index, size, [root, *proof], root)
    assert fails_inclusion(leaf, index, size, [*proof, b""], root)
    if proof:
        assert fails_inclusion(leaf, index, size, proof[:-1], root)
    if len(proof) > 1:
        assert fails_inclusion(leaf, index, size, [proof[0], SOME_HASH, *proof[1:]], root)


def fails_consistency(s1: int, s2: int, r1: bytes, r2: bytes, proof: list[bytes]) -> bool:
    try:
        verify_consistency(s1, s2, r1, r2, proof)
    except ProofError:
        return True
    return False


def assert_consistency_tampering_fails(
    s1: int, s2: int, r1: bytes, r2: bytes, proof: list[bytes], *, all_bits: bool = True
) -> None:
    for i in range(len(proof)):
        for bit in range(256) if all_bits else (0, 4, 100, 255):
            bad = list(proof)
            bad[i] = flip(bad[i], bit)
            assert fails_consistency(s1, s2, r1, r2, bad), (i, bit)
    for bit in range(256) if all_bits else (0, 255):
        assert fails_consistency(s1, s2, flip(r1, bit), r2, proof)
        assert fails_consistency(s1, s2, r1, flip(r2, bit), proof)
    for w1 in {s1 - 1, s1 + 1, s1 ^ 2}:
        if w1 != s1:
            assert fails_consistency(w1, s2, r1, r2, proof), w1
    for w2 in {s2 * 2, s2 // 2}:
        if w2 != s2:
            assert fails_consistency(s1, w2, r1, r2, proof), w2
    assert fails_consistency(s1, s2, r2, r1, proof)
    assert fails_consistency(s1, s2, r1, r2, [])
    assert fails_consistency(s1, s2, r1, r2, [*proof, r1])
    assert fails_consistency(s1, s2, r1, r2, [*proof, r2])
    assert fails_consistency(s1, s2, r1, r2, [r1, *proof])
    assert fails_consistency(s1, s2, r1, r2, [r2, *proof])
    assert fails_consistency(s1, s2, r1, r2, [proof[0], *proof])
    assert fails_consistency(s1, s2, r1, r2, proof[:-1])


# --------------------------------------------------------------------------------------------
# Oracle comparisons


def test_roots_match_oracle_for_all_sizes_to_300() -> None:
    t = big_tree()
    hashes = [leaf_hash(x) for x in BIG_LEAVES[:300]]
    cr = CompactRange()
    for n in range(301):
        want = oracle_root(n)
        assert t.root(n) == want, n
        assert root_from_leaf_hashes(hashes[:n]) == want, n
        assert cr.root() == want, n
        assert t.compact_range(n).root() == want
        if n < 300:
            cr.append(hashes[n])


def test_all_proofs_match_oracle_for_sizes_to_40() -> None:
    t = big_tree()
    for n in range(1, 41):
        d = BIG_LEAVES[:n]
        root = oracle_root(n)
        for m in range(n):
            proof = t.inclusion_proof(m, n)
            assert proof == oracle_path(m, d), (m, n)
            verify_inclusion(leaf_hash(d[m]), m, n, proof, root)
        for m in range(1, n):
            proof = t.consistency_proof(m, n)
            assert proof == oracle_proof(m, d), (m, n)
            verify_consistency(m, n, oracle_root(m), root, proof)


def test_exhaustive_wrong_index_fails_for_sizes_to_40() -> None:
    t = big_tree()
    for n in range(1, 41):
        root = t.root(n)
        for m in range(n):
            proof = t.inclusion_proof(m, n)
            leaf = t.leaf_hash_at(m)
            for other in range(n + 2):
                if other != m:
                    assert fails_inclusion(leaf, other, n, proof, root), (m, other, n)


sizes = st.one_of(st.integers(1, 300), st.integers(301, BIG))


@settings(max_examples=60, deadline=None)
@given(size=sizes, data=st.data())
def test_inclusion_matches_oracle(size: int, data: st.DataObject) -> None:
    t = big_tree()
    index = data.draw(st.integers(0, size - 1))
    proof = t.inclusion_proof(index, size)
    assert proof == oracle_path(index, BIG_LEAVES[:size])
    root = oracle_root(size)
    leaf = leaf_hash(BIG_LEAVES[index])
    verify_inclusion(leaf, index, size, proof, root)
    assert root_from_inclusion_proof(leaf, index, size, proof) == root
    assert_inclusion_tampering_fails(leaf, index, size, proof, root, all_bits=False)
    # Any other size, paired with that size's true root from the same log, fails.
    other = data.draw(st.integers(index + 1, BIG).filter(lambda s: s != size))
    assert fails_inclusion(leaf, index, other, proof, t.root(other))


@settings(max_examples=60, deadline=None)
@given(size2=sizes, data=st.data())
def test_consistency_matches_oracle(size2: int, data: st.DataObject) -> None:
    t = big_tree()
    size1 = data.draw(st.integers(1, size2))
    proof = t.consistency_proof(size1, size2)
    if size1 < size2:
        assert proof == oracle_proof(size1, BIG_LEAVES[:size2])
    r1, r2 = oracle_root(size1), oracle_root(size2)
    verify_consistency(size1, size2, r1, r2, proof)
    if proof:
        assert_consistency_tampering_fails(size1, size2, r1, r2, proof, all_bits=False)


@settings(max_examples=40, deadline=None)
@given(
    batches=st.lists(st.lists(st.binary(max_size=8), max_size=40), max_size=12),
)
def test_batched_appends_equal_one_by_one(batches: list[list[bytes]]) -> None:
    flat = [x for b in batches for x in b]
    batched, single, cr = MemoryTree(), MemoryTree(), CompactRange()
    for b in batches:
        batched.append_leaves(b)
    for x in flat:
        single.append_leaf_hashes([leaf_hash(x)])
        cr.append(leaf_hash(x))
    assert batched.size == single.size == cr.size == len(flat)
    assert batched.root() == single.root() == cr.root() == oracle_mth(flat)
    assert batched._levels == single._levels  # same perfect nodes, level by level
    assert batched.compact_range().hashes == cr.hashes


# --------------------------------------------------------------------------------------------
# Edge cases and contracts


def test_verify_consistency_trivial_cases() -> None:
    # After transparency-dev/merkle TestVerifyConsistency, with 32-byte roots: this module
    # requires well-formed hashes and the true empty root for size 0 (see verify_consistency).
    r1, r2 = h("11" * 32), h("22" * 32)
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 5, EMPTY_ROOT, r2, [])
    verify_consistency(1, 1, r2, r2, [])
    for s1, s2, a, b, proof in [
        (0, 0, r1, r2, []),
        (1, 1, r1, r2, []),
        (0, 1, r1, r2, []),  # size 0 has one root
        (1, 0, r1, r2, []),  # time travel
        (2, 1, r1, r2, []),
        (1, 2, r1, r2, []),  # empty proof
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),  # non-empty proof where none is due
        (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
        (1, 1, b"short", b"short", []),
    ]:
        assert fails_consistency(s1, s2, a, b, proof), (s1, s2)


def test_verify_inclusion_edge_cases() -> None:
    data_hash = leaf_hash(b"data")
    verify_inclusion(data_hash, 0, 1, [], data_hash)
    assert fails_inclusion(data_hash, 0, 1, [], b"")
    assert fails_inclusion(b"", 0, 1, [], data_hash)
    for index, size in [(0, 0), (1, 0), (1, 1), (2, 1), (-1, 1)]:
        assert fails_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT)
        assert fails_inclusion(SOME_HASH, index, size, [], SOME_HASH)


def test_proof_generation_rejects_bad_arguments() -> None:
    t = big_tree()
    with pytest.raises(ValueError):
        inclusion_proof(t, 5, 5)
    with pytest.raises(ValueError):
        t.inclusion_proof(0, BIG + 1)
    with pytest.raises(ValueError):
        consistency_proof(t, 6, 5)
    with pytest.raises(ValueError):
        t.root(BIG + 1)
    with pytest.raises(IndexError):
        t.node(0, BIG)
    with pytest.raises(IndexError):
        t.node(40, 0)
    with pytest.raises(ValueError):
        range_root(t, 1, 3)  # not aligned to a subtree
    assert consistency_proof(t, 0, 10) == []
    assert consistency_proof(t, 10, 10) == []


def test_append_rejects_bad_hashes() -> None:
    t = MemoryTree()
    with pytest.raises(ValueError):
        t.append_leaf_hashes([b"x" * 31])
    with pytest.raises(ValueError):
        t.append_packed_leaf_hashes(b"x" * 33)
    assert t.size == 0
    t.append_packed_leaf_hashes(leaf_hash(b"a") + leaf_hash(b"b"))
    assert t.root() == oracle_mth([b"a", b"b"])
    with pytest.raises(ProofError):
        CompactRange().append(b"x")
    with pytest.raises(ValueError):
        CompactRange(3, [SOME_HASH])


def test_compact_range_restores_from_state() -> None:
    hashes = [leaf_hash(x) for x in BIG_LEAVES[:77]]
    a = CompactRange()
    a.extend(hashes[:50])
    b = CompactRange(a.size, a.hashes)
    a.extend(hashes[50:])
    b.extend(hashes[50:])
    assert a.root() == b.root() == oracle_root(77)


def test_old_proofs_stay_valid_after_appends() -> None:
    t = MemoryTree()
    t.append_leaves(BIG_LEAVES[:13])
    proof, root = t.inclusion_proof(4), t.root()
    t.append_leaves(BIG_LEAVES[13:100])
    assert t.inclusion_proof(4, 13) == proof
    assert t.root(13) == root
    verify_consistency(13, 100, root, t.root(), t.consistency_proof(13))
