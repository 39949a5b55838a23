"""What reading a sealed pre-MAC record costs (``hub migrate kafka-seal``), against reading a
record that carries its MAC, on the same records in ONE process, alternating round by round:

- ``mac``: ``auth.verify_records`` of records with ``__hub.mac`` (the usual read path);
- ``seal``: the same records without the MAC header, vouched by their partition's seal as
  a reader holds it (``fold_seals``: ``seal_digest`` in Python, one ``Digests`` lookup);
- ``sha256``: bare ``hashlib.sha256`` of each record's value + headers joined (the floor).

Thread CPU time per record, best of ``--rounds``; records of ``--value-bytes`` with 8 headers.

    .venv/bin/python -m benchmarks.kafka_seal_vouch --records 2000 --rounds 9
"""

from __future__ import annotations

import argparse
import hashlib
import time

from adapters.kafka_log.auth import MAC_HEADER, record_mac, verify_records
from adapters.kafka_log.seals import PartitionSeal, fold_seals, seal_digest
from core.ports.eventlog import StoredRecord

KEY = b"m" * 32


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--value-bytes", type=int, default=200)
    args = ap.parse_args()
    old: list[StoredRecord] = []
    for i in range(args.records):
        headers = tuple((f"ce_h{j}", f"value-{i}-{j}".encode()) for j in range(8))
        old.append(
            StoredRecord(
                "hub.config",
                0,
                i,
                1_700_000_000_000 + i,
                b"k%d" % i,
                bytes(args.value_bytes),
                headers,
            )
        )
    macd = [
        StoredRecord(
            r.topic,
            r.partition,
            r.offset,
            r.timestamp_ms,
            r.key,
            r.value,
            (
                *r.headers,
                (
                    MAC_HEADER,
                    record_mac(
                        KEY, r.topic, r.partition, r.key, r.value, r.headers, r.timestamp_ms
                    ),
                ),
            ),
        )
        for r in old
    ]
    planned = PartitionSeal(
        "hub.config", 0, len(old), "0" * 64, {r.offset: seal_digest(r) for r in old}
    )
    # as a reader holds it: folded from its seal records (``Digests``, not the plan's dict)
    stored = [
        StoredRecord("_hub_seals", 0, i, 1, k, v, ()) for i, (k, v) in enumerate(planned.records())
    ]
    seal = fold_seals(stored)[("hub.config", 0)]
    assert verify_records(KEY, old, seal.vouches) == old
    assert verify_records(KEY, macd) == old

    def sha() -> None:
        for r in old:
            hashlib.sha256(b"".join([r.value or b"", *(v for _, v in r.headers)])).digest()

    runs = {
        "mac": lambda: verify_records(KEY, macd),
        "seal": lambda: verify_records(KEY, old, seal.vouches),
        "sha256": sha,
    }
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(args.rounds):
        for name, fn in runs.items():
            t0 = time.thread_time()
            fn()
            best[name] = min(best[name], time.thread_time() - t0)
    per = {k: v / args.records * 1e6 for k, v in best.items()}
    for name, us in per.items():
        print(
            f"{name:7s} {us:6.2f} us/record  {us / per['mac']:5.2f}x mac  "
            f"{us / per['sha256']:5.2f}x sha256"
        )


if __name__ == "__main__":
    main()
