"""The ledger taking the stored batches the embedded log's appends hand over (issue 13, session
16), old tree vs new tree alternating, beside raw SHA-256 of the same leaf inputs.

One round in a fresh subprocess per tree (``PYTHONPATH`` the tree; the same venv and
``hub_native``): ``--events`` records appended ``--append`` at a time (MAC key on, as the hub
runs), either plain appends or file-ingest shaped transactions (``--txn``); then ONE
``Ledger.sync`` (or, with ``--each``, a ``Ledger.cover`` after each append: the HTTP shape);
then raw SHA-256 (``hashlib``, one call per leaf input) of the same leaves. CPU seconds of the
process (``time.process_time``) per phase. The append phase is reported too: the new tree
opens (CRC, inflate) each handed batch in the appending thread, which the old tree's sync did.

    git archive main | tar -x -C /tmp/ledger-old
    .venv/bin/python -m benchmarks.ledger_stored_ab /tmp/ledger-old --events 200000 --rounds 4

``--verify`` times a full ``verify_ledger`` after the sync (entries per CPU s). The child runs
each tree's own copy of this script: copy this one into the old tree when it predates a flag.

The SHA-256 floor (session 20): the ledger hashes more than the raw baseline does. Per leaf it
hashes the key and the value (their digests are in the leaf input), the RFC 6962 leaf
``0x00 || leaf input``, and one tree parent (``0x01 || left || right``: 65 bytes, two blocks);
verify also MACs the stored batches it reads (HMAC-SHA256 over their bytes). ``floor`` counts
those 64-byte compression blocks exactly (padding included) and prices them at the block cost
of ONE long ``hashlib`` stream measured in the same child (no per-call overhead): the CPU the
hashing alone needs, whatever the implementation. ``sync / floor`` is then what the rest
(parsing, side index, SQLite, Python) adds, and ``floor / raw`` bounds the ``x raw`` goal:
sync can reach at most ``raw / floor`` x raw with everything but the hashing free.

``--threads N`` sets ``LedgerConfig.hash_threads`` (session 18: the native leaf hashing on up
to N threads, GIL released) where the tree has it; a tree without it hashes on one. CPU
seconds count every thread of the process, so per-CPU-s figures do not gain from threads;
wall seconds (``time.perf_counter``) are reported beside them, and on this shared, loaded
2-core machine they depend on what else runs; so is the calling thread's own CPU
(``time.thread_time``): the critical path, what the wall would be with a free core per thread.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

KEY = b"m" * 32


def sha_blocks(n: int) -> int:
    """64-byte SHA-256 compression blocks for an ``n``-byte message (0x80, 8-byte length)."""
    return (n + 9 + 63) // 64


def block_seconds(mib: int = 16) -> float:
    """CPU seconds per SHA-256 block of one long ``hashlib`` stream (best of 3)."""
    data = bytes(1 << 20)
    best = float("inf")
    for _ in range(3):
        h = hashlib.sha256()
        t0 = time.process_time()
        for _ in range(mib):
            h.update(data)
        best = min(best, time.process_time() - t0)
    return best / (mib * (1 << 20) // 64)


def floor_blocks(records: list[Any], inputs: list[bytes]) -> int:
    """Blocks the sync must hash for these records: key and value digests, the RFC 6962 leaf
    hash of each input (``0x00`` prefix), and the ``len - 1`` tree parents (65 bytes each)."""
    total = sum(sha_blocks(1 + len(d)) for d in inputs)
    total += sum(sha_blocks(len(r.key)) for r in records if r.key is not None)
    total += sum(sha_blocks(len(r.value)) for r in records if r.value is not None)
    return total + (len(inputs) - 1) * sha_blocks(65)


def mac_blocks(path: Path) -> int:
    """Blocks of the HMAC-SHA256 verify computes over every stored batch of the log at ``path``
    (inner: key block, label, row fields and previous MAC (~2 blocks) and the bytes; outer: 2)."""
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        sizes = [int(n) for (n,) in conn.execute("SELECT length(data) FROM batches")]
    finally:
        conn.close()
    return sum(1 + sha_blocks(128 + n) + 2 for n in sizes)


def one_round(
    events: int,
    step: int,
    txn: bool,
    each: bool,
    parts: int = 1,
    every: int = 0,
    verify: bool = False,
    threads: int = 0,
) -> dict[str, float]:
    from adapters.local_signer import LocalKeyFileSigner
    from adapters.sqlite_log import SqliteEventLog
    from adapters.tile_ledgerstore import TileLedgerStore
    from benchmarks.e2e_common import ledger_records
    from ledger.leaves import LeafEncoder
    from ledger.service import Ledger, LedgerConfig

    # The first side-index write imports pyarrow.acero, which imports pandas (~0.15-0.25 CPU s
    # once per process, a third of a 200k-leaf sync): paid here, outside the timed phases, so
    # the sync figure is the steady state of a running hub (``imports`` reports it).
    t0 = time.process_time()
    import pyarrow.acero  # noqa: F401

    imports = time.process_time() - t0
    tmp = Path(tempfile.mkdtemp(prefix="ledger-stored-ab-"))
    log = SqliteEventLog(tmp / "log.sqlite", synchronous="OFF", mac_key=KEY)
    log.create_topic("trades", parts)
    signer = LocalKeyFileSigner(tmp / "keys" / "ledger.key", "bench/ledger")
    config = LedgerConfig(origin="bench/ledger")
    if threads and hasattr(config, "hash_threads"):
        config = dataclasses.replace(config, hash_threads=threads)
    ledger = Ledger(log, TileLedgerStore(tmp / "ledger.sqlite"), signer, config)
    batches = [ledger_records(min(step, events - s), s) for s in range(0, events, step)]
    spent = {"append": 0.0, "sync": 0.0, "imports": imports, "sync_wall": 0.0}
    for k, recs in enumerate(batches, 1):
        t0 = time.process_time()
        if txn:
            with log.transaction("bench") as t:
                t.append("trades", recs)
        else:
            log.append("trades", recs)
        spent["append"] += time.process_time() - t0
        if each:
            t0 = time.process_time()
            got = ledger.cover()
            spent["sync"] += time.process_time() - t0
            assert got["covered"], got
        elif every and k % every == 0:  # the woken follower's shape: a sync per few appends
            t0 = time.process_time()
            ledger.sync()
            spent["sync"] += time.process_time() - t0
    if not each:
        t0, w0, c0 = time.process_time(), time.perf_counter(), time.thread_time()
        ledger.sync()
        spent["sync"] += time.process_time() - t0
        spent["sync_wall"] += time.perf_counter() - w0
        spent["sync_caller"] = time.thread_time() - c0
    assert ledger.store.tree_size() == events
    ledger.sync(force_checkpoint=True)
    cp = ledger.store.latest_checkpoint()
    assert cp is not None
    stored = [r for p in range(parts) for r in log.scan("trades", p)]
    inputs = LeafEncoder().leaf_inputs(stored)
    t0 = time.process_time()
    _ = [hashlib.sha256(d).digest() for d in inputs]
    spent["raw"] = time.process_time() - t0
    per_block = block_seconds()
    spent["floor"] = floor_blocks(stored, inputs) * per_block
    spent["floor_blocks"] = floor_blocks(stored, inputs) / events
    spent["raw_blocks"] = sum(sha_blocks(len(d)) for d in inputs) / events
    spent["verify_floor"] = spent["floor"] + mac_blocks(tmp / "log.sqlite") * per_block
    if verify:  # ``hub ledger verify --full``'s work (steps 1-9), CPU of this process
        from ledger.verify import verify_ledger

        t0, w0, c0 = time.process_time(), time.perf_counter(), time.thread_time()
        report = verify_ledger(ledger)
        spent["verify"] = time.process_time() - t0
        spent["verify_wall"] = time.perf_counter() - w0
        spent["verify_caller"] = time.thread_time() - c0
        assert report.ok and report.leaves == events, report.as_dict()
    ledger.close()
    log.close()
    return spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old_tree", nargs="?", type=Path)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--append", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--txn", action="store_true", help="append in transactions (file ingest)")
    ap.add_argument("--each", action="store_true", help="cover after each append (HTTP shape)")
    ap.add_argument("--partitions", type=int, default=1, help="of the topic (keys spread)")
    ap.add_argument("--every", type=int, default=0, help="sync after every N appends")
    ap.add_argument("--verify", action="store_true", help="then a full verify_ledger, timed")
    ap.add_argument("--threads", type=int, default=0, help="LedgerConfig.hash_threads (0: default)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child = one_round(
            args.events,
            args.append,
            args.txn,
            args.each,
            args.partitions,
            args.every,
            args.verify,
            args.threads,
        )
        print(json.dumps(child))
        return
    new_tree = Path(__file__).resolve().parent.parent
    trees = {"new": new_tree} if args.old_tree is None else {"old": args.old_tree, "new": new_tree}
    got: dict[str, list[dict[str, float]]] = {k: [] for k in trees}
    flags = [f"--events={args.events}", f"--append={args.append}"]
    flags += [f"--partitions={args.partitions}", f"--every={args.every}"]
    flags += [f"--threads={args.threads}"]
    flags += ["--txn"] * args.txn + ["--each"] * args.each + ["--verify"] * args.verify
    for r in range(args.rounds):
        order = list(trees) if r % 2 == 0 else list(reversed(trees))
        for side in order:
            env = {**os.environ, "PYTHONPATH": str(trees[side])}
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.ledger_stored_ab", "--child", *flags],
                env=env,
                cwd=trees[side],
                capture_output=True,
                text=True,
                check=True,
            )
            got[side].append(json.loads(out.stdout.strip().splitlines()[-1]))
    n = args.events
    print(f"{n} leaves, {args.rounds} rounds alternating; load {os.getloadavg()}")
    for side, rs in got.items():
        raw = median(n / x["raw"] for x in rs)
        sync = median(n / x["sync"] for x in rs)
        both = median(n / (x["sync"] + x["append"]) for x in rs)
        ratio = median((n / x["sync"]) / (n / x["raw"]) for x in rs)
        print(
            f"{side}: raw SHA-256 {raw:,.0f}/CPU s; sync {sync:,.0f} leaves/CPU s = "
            f"{ratio:.3f}x raw (median of per-round ratios); append "
            f"{median(x['append'] / n * 1e6 for x in rs):.2f} us/rec; sync "
            f"{median(x['sync'] / n * 1e6 for x in rs):.3f} us/leaf; append+sync {both:,.0f}/CPU s"
        )
        if all("floor" in x for x in rs):  # trees from session 20 on
            print(
                f"{side}: SHA-256 floor {median(x['floor_blocks'] for x in rs):.2f} blocks/leaf "
                f"(raw {median(x['raw_blocks'] for x in rs):.2f}): "
                f"{median(x['floor'] / n * 1e6 for x in rs):.3f} us/leaf = "
                f"{median(x['floor'] / x['raw'] for x in rs):.3f}x the raw CPU, so sync <= "
                f"{median(x['raw'] / x['floor'] for x in rs):.3f}x raw even if all else were "
                f"free; sync / floor {median(x['sync'] / x['floor'] for x in rs):.2f}"
            )
        print(
            f"{side}: sync us/leaf per round: "
            + ", ".join(f"{x['sync'] / n * 1e6:.3f}" for x in rs)
        )
        if not args.each and not args.every:  # one timed sync: its wall time too
            print(
                f"{side}: sync wall {median(n / x['sync_wall'] for x in rs):,.0f} leaves/s = "
                f"{median((n / x['sync_wall']) / (n / x['raw']) for x in rs):.3f}x raw per "
                "CPU s (the raw baseline is one thread's CPU); calling thread's CPU "
                f"{median(n / x['sync_caller'] for x in rs):,.0f} leaves/s = "
                f"{median((n / x['sync_caller']) / (n / x['raw']) for x in rs):.3f}x raw"
            )
        if args.verify:
            ver = [n / x["verify"] for x in rs]
            print(
                f"{side}: verify --full {median(ver):,.0f} entries/CPU s (rounds: "
                + ", ".join(f"{v:,.0f}" for v in ver)
                + f"); {median((n / x['verify']) / (n / x['raw']) for x in rs):.3f}x raw SHA-256; "
                f"wall {median(n / x['verify_wall'] for x in rs):,.0f} entries/s; calling "
                f"thread's CPU {median(n / x['verify_caller'] for x in rs):,.0f} entries/s"
            )
            if all("verify_floor" in x for x in rs):
                print(
                    f"{side}: verify SHA-256 floor (leaves, tree, log MACs) "
                    f"{median(n / x['verify_floor'] for x in rs):,.0f} entries/CPU s; verify / "
                    f"floor {median(x['verify'] / x['verify_floor'] for x in rs):.2f}"
                )


if __name__ == "__main__":
    main()
