"""Issue 13's ledger goals, each figure beside a same-run baseline, on the tile store (C2SP
tlog-tiles) and the row store (one indexed row per leaf).

Baseline ``raw sha256 of leaf inputs``: ``hashlib.sha256(d).digest()`` once per leaf over the
very leaf inputs the ledger hashes (CloudEvents-shaped records: 10 headers, a 32-byte key, a
150-byte value). Against it:
- ``append`` (goal >= 0.5x): what the ledger does with a batch after reading the log: leaf
  hashes, tree nodes, and the store's transaction (tiles or rows, side index, node chunks), in
  batches of 50k; the hashing alone through ``core.hashing`` (native when built, and the
  pure-Python reference).
- ``Ledger.sync``: the above plus reading the log, checking its MAC chain and the query columns.
- ``verify full`` (goal >= 1M entries/s) and ``verify incremental`` after 1% more entries.
Rates are per CPU second of this process (``time.process_time``), baseline included.
Also: ``add-to-signed-checkpoint`` (goal p99 < 100 ms): 1,000 records appended to the log, then
``Ledger.sync(force_checkpoint=True)``, 100 times on a ledger of ``RECORDS`` leaves, timed from
before the log append to the signed checkpoint; storage per event (log + ledger files with WAL)
beside the raw value bytes (the Avro datum stands in as 150 random bytes); proofs at
``LEDGER_BENCH_PROOF_LEAVES`` are in ``test_bench_ledger_tiles.py``.
Run: ``.venv/bin/pytest benchmarks/test_bench_ledger_goals.py -q -s -p no:randomly``
(``LEDGER_BENCH_RECORDS``, default 100k).
"""

from __future__ import annotations

import hashlib
import os
import statistics
import time
from pathlib import Path

import pyarrow as pa
import pytest

import ledger.tree as tree_module
from adapters.local_signer import LocalKeyFileSigner
from adapters.sqlite_ledgerstore import SqliteLedgerStore
from adapters.sqlite_log import SqliteEventLog
from adapters.tile_ledgerstore import TileLedgerStore
from benchmarks.conftest import Report
from benchmarks.e2e_common import ledger_records
from core import hashing
from core.ports.ledgerstore import LedgerStore
from ledger.leaves import LeafEncoder
from ledger.service import Ledger, LedgerConfig
from ledger.tree import TreeBuilder
from ledger.verify import load_verified, save_verified, verify_ledger

pytestmark = pytest.mark.slow

RECORDS = int(os.environ.get("LEDGER_BENCH_RECORDS", "100000"))
BATCH = 50_000
RAW = "raw sha256 of leaf inputs"


def _cpu() -> float:
    """This process's CPU seconds: rates are per CPU second, so that a shared, loaded machine
    (another process taking the core) moves the baseline and the measure alike."""
    return time.process_time()


def _files(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def _store(kind: str, path: Path) -> LedgerStore:
    return TileLedgerStore(path) if kind == "tiles" else SqliteLedgerStore(path)


@pytest.mark.timeout(3600)
def test_ledger_goals(tmp_path: Path, report: Report) -> None:
    pa.array(("warm-up",))  # pyarrow imports pandas on its first conversion: not a ledger cost
    log = SqliteEventLog(tmp_path / "log.sqlite", synchronous="OFF", mac_key=os.urandom(32))
    log.create_topic("trades", 3)
    for start in range(0, RECORDS, 4096):
        log.append("trades", ledger_records(min(4096, RECORDS - start), start))
    records = [r for p in range(3) for r in log.scan("trades", p)]
    encoder = LeafEncoder()
    inputs = encoder.leaf_inputs(records)
    n = len(inputs)
    sha = hashlib.sha256
    group = f"ledger goals ({'native' if hashing.NATIVE else 'no native'})"

    def raw() -> float:
        t0 = _cpu()
        _ = [sha(d).digest() for d in inputs]
        return _cpu() - t0

    t_raw = min(raw() for _ in range(3))
    report.add(group, RAW, n / t_raw, "leaves/s")

    def hash_tree(leaf_fn) -> float:  # type: ignore[no-untyped-def]
        t0 = _cpu()
        b = TreeBuilder()
        for k in range(0, n, BATCH):
            b.append(leaf_fn(inputs[k : k + BATCH]))
        return _cpu() - t0

    native_parents = tree_module.parents
    tree_module.parents = hashing.parents_py  # the pure-Python reference, for comparison
    try:
        t_ref = hash_tree(hashing.leaf_hashes_py)
    finally:
        tree_module.parents = native_parents
    report.add(group, "leaf + tree hashes, reference", n / t_ref, "leaves/s", baseline=RAW)
    if hashing.NATIVE:
        t_nat = min(hash_tree(hashing.leaf_hashes) for _ in range(3))
        report.add(group, "leaf + tree hashes, native", n / t_nat, "leaves/s", baseline=RAW)

    # the path before the native batch (session 7): hashes + Python query columns, then rows
    store = _store("tiles", tmp_path / "append-tiles-rows.sqlite")
    t0 = _cpu()
    for k in range(0, n, BATCH):
        chunk = records[k : k + BATCH]
        hashes, cols = encoder.encode(chunk)
        with store.write() as txn:
            size = txn.size()
            nodes = TreeBuilder(size, txn.chunk).append(b"".join(hashes))
            txn.append(
                list(
                    zip(
                        range(size, size + len(chunk)),
                        [r.topic for r in chunk],
                        [r.partition for r in chunk],
                        [r.offset for r in chunk],
                        [r.timestamp_ms for r in chunk],
                        *cols,
                        hashes,
                        strict=True,
                    )
                ),
                nodes,
            )
    t_rows = _cpu() - t0
    store.close()
    name = "append, tiles, as rows (the path before the batch)"
    report.add(group, name, n / t_rows, "leaves/s", baseline=RAW)

    signer = LocalKeyFileSigner(tmp_path / "keys" / "ledger.key", "bench/ledger")
    for kind in ("tiles", "rows"):
        # append: hashes + the store's transaction, from leaf inputs (batches of 50k)
        store = _store(kind, tmp_path / f"append-{kind}.sqlite")
        t0 = _cpu()
        for k in range(0, n, BATCH):
            chunk = records[k : k + BATCH]
            with store.write() as txn:
                size = txn.size()
                leaves = encoder.leaf_batch(chunk, size)  # leaf hashes + side-index columns
                nodes = TreeBuilder(size, txn.chunk).append(leaves.hashes)
                txn.append_batch(leaves, nodes)
        t_app = _cpu() - t0
        store.close()
        report.add(
            group, f"append (encode+hash+store), {kind}", n / t_app, "leaves/s", baseline=RAW
        )

        # sync from the authenticated log, then verify full and incremental
        path = tmp_path / f"ledger-{kind}.sqlite"
        store = _store(kind, path)
        ledger = Ledger(log, store, signer, LedgerConfig(origin="bench/ledger"))
        t0 = _cpu()
        appended = ledger.sync(force_checkpoint=True).appended
        t_sync = _cpu() - t0
        report.add(group, f"Ledger.sync, {kind}", appended / t_sync, "leaves/s", baseline=RAW)
        c0 = _cpu()
        rep = verify_ledger(ledger)
        t_verify = _cpu() - c0
        assert rep.ok, rep.first
        report.add(group, f"verify full, {kind}", rep.leaves / t_verify, "entries/s", baseline=RAW)
        per_event = (_files(tmp_path / "log.sqlite") + _files(path)) / store.tree_size()
        report.add(
            group, f"log + ledger bytes per event, {kind}", per_event, "B", higher_is_better=False
        )
        state = tmp_path / f"{kind}.verified"
        save_verified(ledger, state, rep, store.latest_checkpoint(), 0, None)

        # add-to-signed-checkpoint: 1,000 records at a time on a ledger of n leaves
        lat: list[float] = []
        for j in range(100):
            batch = ledger_records(1000, j * 1000)
            t0 = time.perf_counter()
            log.append("trades", batch)
            ledger.sync(force_checkpoint=True)
            lat.append((time.perf_counter() - t0) * 1000)
        q = statistics.quantiles(lat, n=100, method="inclusive")
        report.add(
            group, f"add-to-signed-checkpoint p50, {kind}", q[49], "ms", higher_is_better=False
        )
        report.add(
            group, f"add-to-signed-checkpoint p99, {kind}", q[98], "ms", higher_is_better=False
        )
        since, why = load_verified(ledger, state)
        assert since is not None, why
        c0 = _cpu()
        rep = verify_ledger(ledger, since=since)
        t_verify = _cpu() - c0
        assert rep.ok, rep.first
        name = f"verify incremental (+{rep.leaves:,}), {kind}"
        report.add(group, name, rep.leaves / t_verify, "entries/s", baseline=RAW)
        store.close()
    report.add(group, "raw value bytes per event (Avro datum)", 150, "B", higher_is_better=False)
