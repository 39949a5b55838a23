"""Audit ledger: batched leaf appends, full sync, full verify, proofs from the SQLite store.

Same-run baselines (every figure is printed as a ratio to one of them):
- ``raw sha256 of leaf bytes``: ``hashlib.sha256`` over the very leaf inputs the ledger builds
  (one call per leaf, list comprehension). Measured against it: the batched tree append (RFC
  leaf hash + every parent node, ``TreeBuilder``); the leaf encoding plus append, through the
  batch encoder (``LeafEncoder.encode``) and, for comparison, through the per-record reference
  ``audit.leaf.encode``; a full ``Ledger.sync`` (log read, encoding, hashing, SQLite writes of
  leaves with their query indexes and node chunks, positions, checkpoints every 10k leaves);
  and ``hub ledger verify`` (re-reading the log and recomputing everything).
- proofs: generated from a ``SqliteLedgerStore`` (node chunks) of ``LEDGER_BENCH_PROOF_LEAVES``
  (default 1M; 10M with ``LEDGER_BENCH_PROOF_LEAVES=10000000``), beside ``log2(n)`` raw SHA-256
  calls (the hashing a proof needs at least). Two paths: ``store.inclusion_proof`` (what the
  ledger, API and evidence packs use: one SQL query for the nodes not cached, node cache) and
  ``audit.merkle.inclusion_proof(store, ...)`` (one ``node`` call, chunk cache, per level);
  each with warm caches and with caches cleared before every proof (SQLite pages still warm).

The log is authenticated as the hub's is (a MAC key: the sync checks the chain of the range it
adopts, verify the whole log); ``LEDGER_BENCH_MAC=0`` measures it without.
Records: 200k CloudEvents-shaped records (10 headers as the publisher writes them, a 32-byte
key, a 150-byte value) over 3 partitions. Run: ``.venv/bin/pytest benchmarks/test_bench_ledger.py
-q -s``.
"""

from __future__ import annotations

import hashlib
import os
import random
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from adapters.local_signer import LocalKeyFileSigner
from adapters.sqlite_ledgerstore import SqliteLedgerStore
from adapters.sqlite_log import SqliteEventLog
from audit import leaf
from audit.merkle import leaf_hash, range_root, verify_consistency, verify_inclusion
from benchmarks.conftest import Report
from core.ports.eventlog import Record
from domain.envelope import Envelope
from ledger.leaves import LeafEncoder
from ledger.service import Ledger, LedgerConfig
from ledger.tree import TreeBuilder
from ledger.verify import verify_ledger

pytestmark = pytest.mark.slow

RECORDS = int(os.environ.get("LEDGER_BENCH_RECORDS", "200000"))
PROOF_LEAVES = int(os.environ.get("LEDGER_BENCH_PROOF_LEAVES", "1000000"))
GROUP = "ledger append"
RAW = "raw sha256 of leaf bytes"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[SqliteEventLog, Path]:
    root = tmp_path_factory.mktemp("ledger-bench")
    # LEDGER_BENCH_MAC=0: an unauthenticated log (the sync then skips the MAC chain check).
    key = os.urandom(32) if os.environ.get("LEDGER_BENCH_MAC", "1") != "0" else None
    log = SqliteEventLog(root / "log.sqlite", synchronous="OFF", mac_key=key)
    log.create_topic("trades", 3)
    for start in range(0, RECORDS, 4096):
        batch = []
        for i in range(start, min(RECORDS, start + 4096)):
            env = Envelope("hub.trading.TradeExecuted", "ingest-api", tenant="acme")
            batch.append(Record(os.urandom(150), b"account-%024d" % (i % 5000), env.to_headers()))
        log.append("trades", batch)
    return log, root


def _best(fn, rounds: int = 3) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def test_append_and_sync(world: tuple[SqliteEventLog, Path], report: Report) -> None:
    log, root = world
    records = [r for p in range(3) for r in log.scan("trades", p)]
    inputs = LeafEncoder().leaf_inputs(records)
    n = len(inputs)
    sha = hashlib.sha256

    def raw() -> None:
        _ = [sha(d).digest() for d in inputs]

    def tree_append() -> None:
        packed = b"".join([sha(b"\x00" + d).digest() for d in inputs])
        b = TreeBuilder()
        for k in range(0, len(packed), 50_000 * 32):
            b.append(packed[k : k + 50_000 * 32])

    def encode_and_append() -> None:
        e = LeafEncoder()
        b = TreeBuilder()
        for k in range(0, n, 50_000):
            hashes, _ = e.encode(records[k : k + 50_000])
            b.append(b"".join(hashes))

    def reference_encode_and_append() -> None:
        packed = b"".join(
            [
                leaf_hash(
                    leaf.encode(
                        r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.headers, r.value
                    )
                )
                for r in records
            ]
        )
        TreeBuilder().append(packed)

    # Interleave raw and measured rounds (shared, noisy machine): best of 3 each.
    t_raw = _best(raw)
    t_tree = _best(tree_append)
    t_enc = _best(encode_and_append)
    t_ref = _best(reference_encode_and_append, rounds=2)
    report.add(GROUP, RAW, n / t_raw, "leaves/s")
    report.add(
        GROUP, "tree append (leaf hash + nodes, batched)", n / t_tree, "leaves/s", baseline=RAW
    )
    report.add(GROUP, "encode + tree append (batch encoder)", n / t_enc, "leaves/s", baseline=RAW)
    report.add(
        GROUP, "encode + tree append (audit.leaf per record)", n / t_ref, "leaves/s", baseline=RAW
    )

    signer = LocalKeyFileSigner(root / "keys" / "ledger.key", "bench/ledger")
    ledger = Ledger(
        log,
        SqliteLedgerStore(root / "ledger.sqlite"),
        signer,
        LedgerConfig(origin="bench/ledger", checkpoint_every_leaves=10_000),
    )
    t0 = time.perf_counter()
    result = ledger.sync(force_checkpoint=True)
    t_sync = time.perf_counter() - t0
    assert result.appended == n
    report.add(
        GROUP, "Ledger.sync (log read + SQLite, batched)", n / t_sync, "leaves/s", baseline=RAW
    )
    t0 = time.perf_counter()
    rep = verify_ledger(ledger)
    t_verify = time.perf_counter() - t0
    assert rep.ok, rep.as_dict()
    report.add(GROUP, "hub ledger verify (full re-check)", n / t_verify, "leaves/s", baseline=RAW)
    ledger.close()


def _pcts(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return q[49], q[98]


def test_proofs_from_the_sqlite_store(tmp_path: Path, report: Report) -> None:
    store = SqliteLedgerStore(tmp_path / "proofs.sqlite")
    builder = TreeBuilder()
    t0 = time.perf_counter()
    step = 1 << 18
    seed = os.urandom(8)
    for start in range(0, PROOF_LEAVES, step):
        stop = min(PROOF_LEAVES, start + step)
        packed = b"".join([leaf_hash(seed + i.to_bytes(8, "big")) for i in range(start, stop)])
        with store.write() as conn:
            conn.append([], builder.append(packed))
    label = f"{PROOF_LEAVES // 1_000_000}M" if PROOF_LEAVES >= 1_000_000 else str(PROOF_LEAVES)
    group = f"store proofs {label}"
    report.add(
        group,
        "node store build (hash + SQLite)",
        time.perf_counter() - t0,
        "s",
        higher_is_better=False,
    )
    size = PROOF_LEAVES
    root = range_root(store, 0, size)
    raw = [os.urandom(65) for _ in range(size.bit_length())]
    base = []
    for _ in range(1000):
        t = time.perf_counter()
        for d in raw:
            hashlib.sha256(d).digest()
        base.append((time.perf_counter() - t) * 1e6)
    base_name = f"raw sha256 x{size.bit_length()} (65 B)"
    report.add(group, base_name, _pcts(base)[0], "µs p50", higher_is_better=False)
    rng = random.Random(1)
    from audit.merkle import consistency_proof, inclusion_proof

    samples: dict[str, list[float]] = {}

    def timed(name: str, fn: Callable[[], list[bytes]], clear: bool = False) -> list[bytes]:
        if clear:
            store.clear_caches()
        t = time.perf_counter()
        out = fn()
        samples.setdefault(name, []).append((time.perf_counter() - t) * 1e6)
        return out

    batched, per_node = "store.inclusion_proof", "merkle.inclusion_proof(store)"
    for k in range(2000):
        index = rng.randrange(size)
        leaf = store.node(0, index)
        if k < 300:  # caches cleared first (SQLite's page cache, the mapped file, stay warm)
            timed(f"{batched} (no cache)", partial(store.inclusion_proof, index, size), True)
            timed(f"{per_node} (no cache)", partial(inclusion_proof, store, index, size), True)
        proof = timed(f"{per_node} (cache warm)", partial(inclusion_proof, store, index, size))
        proof = timed(f"{batched} (cache warm)", partial(store.inclusion_proof, index, size))
        assert proof == inclusion_proof(store, index, size)
        t1 = time.perf_counter()
        verify_inclusion(leaf, index, size, proof, root)
        samples.setdefault("inclusion verify", []).append((time.perf_counter() - t1) * 1e6)
        if k < 300:
            size1 = rng.randrange(1, size)
            cproof = timed(
                "store.consistency_proof (cache warm)",
                partial(store.consistency_proof, size1, size),
            )
            assert cproof == consistency_proof(store, size1, size)
            verify_consistency(size1, size, store.root(size1), root, cproof)
    for name, got in samples.items():
        p50, p99 = _pcts(got)
        report.add(group, f"{name} p50", p50, "µs", baseline=base_name, higher_is_better=False)
        report.add(group, f"{name} p99", p99, "µs", baseline=base_name, higher_is_better=False)
    store.close()
    for name in (f"{batched} (cache warm)", f"{batched} (no cache)"):
        assert _pcts(samples[name])[0] < 1000, "inclusion proof generation goal: under 1 ms"
