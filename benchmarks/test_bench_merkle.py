"""Merkle ledger math: batched append throughput and proof latency at 1M and 10M leaves.

Same-run baselines: raw ``hashlib.sha256`` of the same leaf bytes (append throughput), and
``log2(n)`` raw SHA-256 calls on 65-byte inputs, the hashing a proof of that size needs at least
(proof latency). The tree is built once at ``MERKLE_BENCH_LEAVES`` (default 10M, about 20 s and
700 MB here); proofs "at 1M" are proofs for tree size 1M served from the same store (perfect
nodes do not change as the tree grows, so the work is that of a 1M tree).

Run: ``.venv/bin/pytest benchmarks/test_bench_merkle.py -q -s``
"""

from __future__ import annotations

import hashlib
import os
import random
import statistics
import time

import pytest

from audit.merkle import MemoryTree, verify_consistency, verify_inclusion
from benchmarks.conftest import Report, peak_rss_mb

pytestmark = pytest.mark.slow

LEAVES = int(os.environ.get("MERKLE_BENCH_LEAVES", "10000000"))
BATCH = 65_536
LEAF_SIZE = 100  # about a ledger leaf: topic, partition, offset, headers digest, value digest
SAMPLES = 2_000
GROUP_APPEND = "merkle append"


def _batch(start: int, stop: int, prefix: bytes) -> list[bytes]:
    return [prefix + i.to_bytes(8, "big") for i in range(start, stop)]


@pytest.fixture(scope="module")
def tree(report: Report) -> MemoryTree:
    """Build the big tree, timing raw hashing and tree appends batch by batch, interleaved."""
    prefix = os.urandom(LEAF_SIZE - 8)
    sha = hashlib.sha256
    t = MemoryTree()
    raw_s = append_s = 0.0
    for start in range(0, LEAVES, BATCH):
        leaves = _batch(start, min(LEAVES, start + BATCH), prefix)
        t0 = time.perf_counter()
        _ = [sha(d).digest() for d in leaves]
        t1 = time.perf_counter()
        t.append_leaves(leaves)
        t2 = time.perf_counter()
        raw_s += t1 - t0
        append_s += t2 - t1
    assert t.size == LEAVES
    report.add(GROUP_APPEND, "raw sha256 of leaf bytes", LEAVES / raw_s, "leaves/s")
    report.add(
        GROUP_APPEND,
        f"MemoryTree.append_leaves ({LEAVES:,}, batch {BATCH})",
        LEAVES / append_s,
        "leaves/s",
        baseline="raw sha256 of leaf bytes",
    )
    report.add(GROUP_APPEND, "peak RSS after build", peak_rss_mb(), "MiB")
    return t


def _pcts(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return q[49], q[98]


def _raw_hash_baseline(report: Report, group: str, size: int) -> str:
    """Time log2(size) SHA-256 calls on 65 bytes: the floor for one proof's hashing."""
    name = f"raw sha256 x{size.bit_length()} (65 B)"
    data = [os.urandom(65) for _ in range(size.bit_length())]
    sha = hashlib.sha256
    samples = []
    for _ in range(SAMPLES):
        t0 = time.perf_counter()
        for d in data:
            sha(d).digest()
        samples.append((time.perf_counter() - t0) * 1e6)
    report.add(group, name, _pcts(samples)[0], "µs p50", higher_is_better=False)
    return name


def _label(size: int) -> str:
    return f"{size // 1_000_000}M" if size % 1_000_000 == 0 else f"{size:,}"


def _sizes() -> list[int]:
    return sorted({min(1_000_000, LEAVES), LEAVES})


@pytest.mark.parametrize("size", _sizes())
def test_inclusion_proofs(tree: MemoryTree, report: Report, size: int) -> None:
    group = f"inclusion {_label(size)}"
    base = _raw_hash_baseline(report, group, size)
    rng = random.Random(size)
    root = tree.root(size)
    gen, ver = [], []
    for _ in range(SAMPLES):
        index = rng.randrange(size)
        leaf = tree.leaf_hash_at(index)
        t0 = time.perf_counter()
        proof = tree.inclusion_proof(index, size)
        t1 = time.perf_counter()
        verify_inclusion(leaf, index, size, proof, root)
        t2 = time.perf_counter()
        gen.append((t1 - t0) * 1e6)
        ver.append((t2 - t1) * 1e6)
    for what, samples in (("generate", gen), ("verify", ver)):
        p50, p99 = _pcts(samples)
        report.add(group, f"{what} p50", p50, "µs", baseline=base, higher_is_better=False)
        report.add(group, f"{what} p99", p99, "µs", baseline=base, higher_is_better=False)
    assert _pcts(gen)[0] < 1000, "inclusion proof generation goal: under 1 ms"


@pytest.mark.parametrize("size", _sizes())
def test_consistency_proofs(tree: MemoryTree, report: Report, size: int) -> None:
    group = f"consistency {_label(size)}"
    base = _raw_hash_baseline(report, group, size)
    rng = random.Random(size + 1)
    root2 = tree.root(size)
    gen, ver = [], []
    for _ in range(SAMPLES):
        size1 = rng.randrange(1, size)
        root1 = tree.root(size1)
        t0 = time.perf_counter()
        proof = tree.consistency_proof(size1, size)
        t1 = time.perf_counter()
        verify_consistency(size1, size, root1, root2, proof)
        t2 = time.perf_counter()
        gen.append((t1 - t0) * 1e6)
        ver.append((t2 - t1) * 1e6)
    for what, samples in (("generate", gen), ("verify", ver)):
        p50, p99 = _pcts(samples)
        report.add(group, f"{what} p50", p50, "µs", baseline=base, higher_is_better=False)
        report.add(group, f"{what} p99", p99, "µs", baseline=base, higher_is_better=False)
