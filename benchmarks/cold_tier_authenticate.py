"""Cost of checking a cold segment against the ledger (session 13, redteam-f), same run,
alternating old and new.

A hub with the cold tier on gets ``N`` account records in one partition, synced to the ledger
and offloaded as one segment. Each round fetches that segment from the object store with the
segment cache emptied: the old fetch (``ColdTier`` without ``leaves``: SHA-256 and decode) and
the new one (``leaves`` = the ledger's store: each record's leaf hash compared with its stored
leaf), with the ledger's batch encoder as the hub wires it and with the reference encoder.
Baseline beside them: the SHA-256 of the segment bytes alone.

CPU seconds (``time.process_time``), min over rounds; the load average is printed with each
round. Run: ``.venv/bin/python benchmarks/cold_tier_authenticate.py [records] [rounds]``.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

from hub.bootstrap import bootstrap, build_object_store
from hub.settings import load_settings
from ingest.publish import OutgoingEvent
from ledger.leaves import LeafEncoder
from storage.tiering import ColdTier


def main(n: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="cold-bench-") as tmp:
        env = {
            "HUB_COLD_TIER": "true",
            "HUB_TIER_SEGMENT_RECORDS": str(n + 64),
            "HUB_OBJECT_STORE_DIR": f"{tmp}/objects",
            "HUB_PROJECTION_AUTOSTART": "false",
        }
        settings = load_settings(environ=env, data_dir=Path(tmp) / "hub")
        h = bootstrap(settings)
        try:
            h.log.create_topic("bench", 1)
            h.registry.register(
                "bench-value",
                '{"type":"record","name":"B","namespace":"x","fields":[{"name":"id",'
                '"type":"string"},{"name":"amount","type":"long"}]}',
            )
            for start in range(0, n, 5000):
                batch = [
                    OutgoingEvent({"id": f"ID-{i:08d}", "amount": i}, event_type="x.B")
                    for i in range(start, min(n, start + 5000))
                ]
                h.publisher.publish("bench", batch, producer="bench")
            h.ledger.sync(force_checkpoint=True)
            end = h.log.end_offsets("bench")[0]
            old = ColdTier(build_object_store(settings, write_once=False))
            made = old.offload(h.log, "bench", 0, segment_records=end, leaf_of=h.ledger.index_of)
            assert len(made) == 1, made
            ref = ColdTier(build_object_store(settings, write_once=False), leaves=h.ledger.store)
            new = ColdTier(
                build_object_store(settings, write_once=False),
                leaves=h.ledger.store,
                leaf_hashes=lambda rs: LeafEncoder().leaf_hashes(rs),
            )
            seg = made[0]
            raw = old.store.get(seg.key)
            best = {"sha256 only": 1e9, "old": 1e9, "new": 1e9, "new (ref)": 1e9}
            for r in range(rounds):
                t = time.process_time()
                hashlib.sha256(raw).hexdigest()
                best["sha256 only"] = min(best["sha256 only"], time.process_time() - t)
                tiers = [("old", old), ("new", new), ("new (ref)", ref)]
                for name, tier in tiers if r % 2 else tiers[::-1]:
                    tier._cache.clear()
                    t = time.process_time()
                    got = tier._records(seg)
                    best[name] = min(best[name], time.process_time() - t)
                    assert len(got) == n
                print(f"round {r}: load {os.getloadavg()}", flush=True)
            print(f"{n} records, {len(raw)} bytes, segment fetch CPU-s (min of {rounds}):")
            for name, s in best.items():
                print(f"  {name:12s} {s:.4f}  ({n / s:,.0f} records/s)")
            print(f"  new/old ratio {best['new'] / best['old']:.2f}")
        finally:
            h.close()


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 20_000,
        int(sys.argv[2]) if len(sys.argv) > 2 else 4,
    )
