"""Ledger as C2SP tlog-tiles vs per-leaf rows: append, sync, verify (full and incremental) and
proofs, each beside a same-run baseline.

- ``raw sha256 of leaf bytes``: ``hashlib.sha256`` over the very leaf inputs (one call per
  leaf). Against it: the store append alone (leaf hash + tree nodes + the store's writes) into
  the row store (``SqliteLedgerStore``: one indexed row per leaf) and into the tile store
  (``TileLedgerStore``: tiles of every eighth level + one side-index row per batch), in
  batches of 50k as the ledger syncs; then a full ``Ledger.sync`` from an authenticated log.
- verify: ``verify_ledger`` full on each store, and incremental after 1% more entries.
- proofs at ``LEDGER_BENCH_PROOF_LEAVES`` (default 1M) on the tile store, warm and cold caches,
  beside log2(n) raw SHA-256 calls.
Run: ``.venv/bin/pytest benchmarks/test_bench_ledger_tiles.py -q -s`` (``LEDGER_BENCH_RECORDS``,
default 100k).
"""

from __future__ import annotations

import hashlib
import os
import random
import statistics
import time
from pathlib import Path

import pytest

from adapters.local_signer import LocalKeyFileSigner
from adapters.sqlite_ledgerstore import SqliteLedgerStore
from adapters.sqlite_log import SqliteEventLog
from adapters.tile_ledgerstore import TileLedgerStore
from audit.merkle import verify_inclusion
from benchmarks.conftest import Report
from core.ports.eventlog import Record
from core.ports.ledgerstore import LeafRow, LedgerStore
from domain.envelope import Envelope
from ledger.leaves import LeafEncoder
from ledger.service import Ledger, LedgerConfig
from ledger.tree import TreeBuilder
from ledger.verify import load_verified, save_verified, verify_ledger

pytestmark = pytest.mark.slow

RECORDS = int(os.environ.get("LEDGER_BENCH_RECORDS", "100000"))
PROOF_LEAVES = int(os.environ.get("LEDGER_BENCH_PROOF_LEAVES", "1000000"))
GROUP = "ledger tiles"
RAW = "raw sha256 of leaf bytes"
BATCH = 50_000


def _rows(start: int, hashes: list[bytes]) -> list[LeafRow]:
    return [
        (start + i, "trades", i % 3, start + i, 1_700_000_000_000 + i, "ingest-api",
         "hub.trading.TradeExecuted", f"account-{i % 5000}", "acme", h)
        for i, h in enumerate(hashes)
    ]  # fmt: skip


def _append_all(store: LedgerStore, inputs: list[bytes]) -> None:
    sha = hashlib.sha256
    for k in range(0, len(inputs), BATCH):
        hashes = [sha(b"\x00" + d).digest() for d in inputs[k : k + BATCH]]
        with store.write() as txn:
            size = txn.size()
            chunks = TreeBuilder(size, txn.chunk).append(b"".join(hashes))
            txn.append(_rows(size, hashes), chunks)


def test_store_append_sync_and_verify(tmp_path: Path, report: Report) -> None:
    rnd = random.Random(7)
    inputs = [rnd.randbytes(200) for _ in range(RECORDS)]
    sha = hashlib.sha256
    t0 = time.perf_counter()
    _ = [sha(d).digest() for d in inputs]
    t_raw = time.perf_counter() - t0
    report.add(GROUP, RAW, RECORDS / t_raw, "leaves/s")
    for name, store in (
        ("rows", SqliteLedgerStore(tmp_path / "rows.sqlite")),
        ("tiles", TileLedgerStore(tmp_path / "tiles.sqlite")),
    ):
        t0 = time.perf_counter()
        _append_all(store, inputs)
        t = time.perf_counter() - t0
        report.add(GROUP, f"store append, {name}", RECORDS / t, "leaves/s", baseline=RAW)
        store.close()
    rows_bytes = (tmp_path / "rows.sqlite").stat().st_size
    tiles_bytes = (tmp_path / "tiles.sqlite").stat().st_size
    report.add(GROUP, "bytes per leaf, rows", rows_bytes / RECORDS, "B", higher_is_better=False)
    report.add(
        GROUP,
        "bytes per leaf, tiles",
        tiles_bytes / RECORDS,
        "B",
        baseline="bytes per leaf, rows",
        higher_is_better=False,
    )

    # a full sync and verify from an authenticated log, on each store
    log = SqliteEventLog(tmp_path / "log.sqlite", synchronous="OFF", mac_key=os.urandom(32))
    log.create_topic("trades", 3)
    for start in range(0, RECORDS, 4096):
        batch = []
        for i in range(start, min(RECORDS, start + 4096)):
            env = Envelope("hub.trading.TradeExecuted", "ingest-api", tenant="acme")
            batch.append(Record(os.urandom(150), b"account-%024d" % (i % 5000), env.to_headers()))
        log.append("trades", batch)
    records = [r for p in range(3) for r in log.scan("trades", p)]
    leaf_inputs = LeafEncoder().leaf_inputs(records)
    t0 = time.perf_counter()
    _ = [sha(d).digest() for d in leaf_inputs]
    t_raw2 = time.perf_counter() - t0
    raw2 = "raw sha256 of the log's leaf inputs"
    report.add(GROUP, raw2, len(records) / t_raw2, "leaves/s")
    signer = LocalKeyFileSigner(tmp_path / "keys" / "ledger.key", "bench/ledger")
    for name, store in (
        ("rows", SqliteLedgerStore(tmp_path / "rows-sync.sqlite")),
        ("tiles", TileLedgerStore(tmp_path / "tiles-sync.sqlite")),
    ):
        ledger = Ledger(
            log, store, signer, LedgerConfig(origin="bench/ledger", checkpoint_every_leaves=10_000)
        )
        t0 = time.perf_counter()
        assert ledger.sync(force_checkpoint=True).appended >= len(records)  # + the 1% of before
        t = time.perf_counter() - t0
        report.add(GROUP, f"Ledger.sync, {name}", len(records) / t, "leaves/s", baseline=raw2)
        rep = verify_ledger(ledger)
        assert rep.ok, rep.first
        report.add(
            GROUP, f"verify full, {name}", rep.leaves / rep.seconds, "entries/s", baseline=raw2
        )
        state = tmp_path / f"{name}.verified"
        save_verified(ledger, state, rep, store.latest_checkpoint(), 0, None)
        more = [
            Record(os.urandom(150), b"k", Envelope("t", "s").to_headers())
            for _ in range(len(records) // 100)
        ]
        log.append("trades", more)
        ledger.sync(force_checkpoint=True)
        since, why = load_verified(ledger, state)
        assert since is not None, why
        rep = verify_ledger(ledger, since=since)
        assert rep.ok, rep.first
        report.add(
            GROUP,
            f"verify incremental (+1%), {name}: seconds",
            rep.seconds,
            "s",
            higher_is_better=False,
        )
        store.close()


def proof_times(
    store: TileLedgerStore, n: int, cold: bool, rnd: random.Random, root: bytes
) -> list[float]:
    """Seconds of 300 inclusion proofs of random leaves at size ``n`` (``cold``: the store's
    caches cleared before each), every proof verified against ``root``."""
    times = []
    for i in rnd.sample(range(n), 300):
        if cold:
            store.clear_caches()
        t0 = time.perf_counter()
        proof = store.inclusion_proof(i, n)
        times.append(time.perf_counter() - t0)
        verify_inclusion(store.node(0, i), i, n, proof, root)
    return times


def test_proofs_from_tiles(tmp_path: Path, report: Report) -> None:
    store = TileLedgerStore(tmp_path / "proofs.sqlite")
    rnd = random.Random(3)
    _append_all(store, [rnd.randbytes(32) for _ in range(PROOF_LEAVES)])
    n = PROOF_LEAVES
    root = store.root(n)
    sha = hashlib.sha256
    depth = n.bit_length()
    t0 = time.perf_counter()
    for _ in range(2000):
        for _ in range(depth):
            sha(b"x" * 65).digest()
    base = (time.perf_counter() - t0) / 2000
    report.add(GROUP, f"log2(n) raw sha256 at {n:,}", base * 1e6, "us", higher_is_better=False)
    for cold in (False, True):
        times = proof_times(store, n, cold, rnd, root)
        report.add(
            GROUP,
            f"tile proof at {n:,}, {'cold' if cold else 'warm'} cache (p50)",
            statistics.median(times) * 1e6,
            "us",
            baseline=f"log2(n) raw sha256 at {n:,}",
            higher_is_better=False,
        )
    store.close()
