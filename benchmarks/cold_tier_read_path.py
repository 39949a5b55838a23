"""Cost of reading the cold tier as readers do after session 14 (coldtier): the start taken from
the ledger's retention cuts (``ledger.cuts.RecordedCuts``), the gap checks between segments and
the streamed, size-capped fetch, against the same reads without them, same run, alternating.

A hub with the cold tier on gets ``N`` records in one partition, synced and offloaded in
segments of ``SEG`` offsets, the hot log cut behind them. Each round reads the whole cold range
in pages of 1000 with the segment cache emptied: ``checked`` is the hub's tiered log (the ledger's
cuts set, every read below the hot start); ``baseline`` a ``ColdTier`` over the same store and
ledger leaves (each segment still authenticated) with the ledger's cuts left out and the
store's marker as start, as reads were before. Beside them: SHA-256 of every segment's bytes.

CPU seconds (``time.process_time``), min over rounds. Run:
``.venv/bin/python benchmarks/cold_tier_read_path.py [records] [rounds]``.
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
from storage.tiering import ColdTier, TieredEventLog

SEG = 2000


class _Unchecked(ColdTier):
    """The baseline: reads start at the store's marker and skip what no segment spans."""

    def _start(self, topic: str, partition: int) -> int:
        return self.cold_start(topic, partition)

    def _no_leaves(self, topic: str, partition: int, start: int, end: int) -> None:
        return None


def main(n: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="cold-read-bench-") as tmp:
        env = {
            "HUB_COLD_TIER": "true",
            "HUB_TIER_SEGMENT_RECORDS": str(SEG),
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
            store = build_object_store(settings, write_once=False)
            made = ColdTier(store).offload(
                h.ledger.log, "bench", 0, segment_records=SEG, leaf_of=h.ledger.index_of
            )
            cold_end = made[-1].end
            h.ledger.log.delete_records_before("bench", 0, cold_end)
            tiered = h.log
            assert isinstance(tiered, TieredEventLog)
            checked = tiered.cold
            baseline = _Unchecked(
                store,
                leaves=h.ledger.store,
                leaf_hashes=lambda rs: LeafEncoder().leaf_hashes(rs),
            )
            raws = [store.get(s.key) for s in made]

            def read_all(tier: ColdTier) -> int:
                tier._cache.clear()
                pos, got = 0, 0
                while pos < cold_end:
                    page = tier.read("bench", 0, pos, 1000, cold_end)
                    if not page:
                        break
                    got += len(page)
                    pos = page[-1].offset + 1
                return got

            best = {"sha256 only": 1e9, "baseline": 1e9, "checked": 1e9}
            for r in range(rounds):
                t = time.process_time()
                for raw in raws:
                    hashlib.sha256(raw).hexdigest()
                best["sha256 only"] = min(best["sha256 only"], time.process_time() - t)
                tiers = [("baseline", baseline), ("checked", checked)]
                counts = set()
                for name, tier in tiers if r % 2 else tiers[::-1]:
                    t = time.process_time()
                    counts.add(read_all(tier))
                    best[name] = min(best[name], time.process_time() - t)
                assert len(counts) == 1, counts
                print(f"round {r}: load {os.getloadavg()}", flush=True)
            print(f"{counts.pop()} cold records in {len(made)} segments, CPU-s (min of {rounds}):")
            for name, s in best.items():
                print(f"  {name:12s} {s:.6f}")
            print(f"  checked/baseline ratio {best['checked'] / best['baseline']:.3f}")
        finally:
            h.close()


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 40_000,
        int(sys.argv[2]) if len(sys.argv) > 2 else 5,
    )
