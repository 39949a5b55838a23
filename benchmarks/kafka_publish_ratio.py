"""hub publish to Kafka beside raw confluent-kafka produce of the same bytes, alternating rounds.

``python -m benchmarks.kafka_publish_ratio [CHECKOUT] [EVENTS] [BATCH]`` runs the publish path of
CHECKOUT (default: this one; point it at an export of an older commit to compare before/after)
against this checkout's broker (``infra/kafka.sh``). Both sides: one partition, batches of BATCH
(2,000 unless given; small ones show the per-publish costs, e.g. the registry's catch-up)
``payments`` events; raw = ``test_bench_kafka.raw_produce`` (idempotent, acks=all, linger.ms=5,
one flush) of the very records the hub writes; hub = ``Publisher.publish`` (conversion,
validation, PII encryption, Avro, envelope headers, one acknowledged append per batch). Prints
the best events/s by wall time and per CPU second (all threads, librdkafka's included) and the
hub/raw ratios. No ledger sync (``test_bench_kafka`` has that row). ``hub`` writes every record
with its MAC header (``adapters.kafka_log.auth``), as a deployed hub does; ``hub-nomac`` is the
same hub with its log's MAC key unset for the round (what the MAC costs, same run, alternated).
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path


def main(checkout: str, n: int, batch: int = 2000) -> None:
    sys.path.insert(0, checkout)
    os.chdir(checkout)
    from benchmarks.test_bench_kafka import make_hub, payment, raw_produce
    from tests.contract.test_eventlog_kafka import kafka_bootstrap

    kafka = kafka_bootstrap()
    hub = make_hub(Path(tempfile.mkdtemp()), kafka, 1)
    run = uuid.uuid4().hex[:6]
    events = [payment(i, run) for i in range(n)]
    prepared = hub.publisher.prepare("payments", events[:batch], producer="bench")
    raw = [(r.key or b"", r.value or b"", list(r.headers)) for r in prepared] * (n // batch)
    raw_topic = f"bench.raw.{run}"
    hub.log.create_topic(raw_topic, 1)
    wire = hub.log._wire(raw_topic)
    hub.publisher.publish("payments", events[:batch], producer="bench")  # warm: keys, caches

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    # ListOffsets per topic (a one-partition topic's go through ``_watermarks``), counted
    # during the hub rounds: the registry's catch-up asked one of ``_schemas`` per publish
    asked: dict[str, int] = {}
    watermarks = hub.log._watermarks  # type: ignore[attr-defined]

    def counted(topic: str, **kw: object) -> dict[int, int]:
        asked[topic] = asked.get(topic, 0) + 1
        return watermarks(topic, **kw)  # type: ignore[no-any-return]

    hub.log._watermarks = counted  # type: ignore[attr-defined]
    publishes = 0

    def hub_round() -> None:
        nonlocal publishes
        for i in range(0, n, batch):
            hub.publisher.publish("payments", events[i : i + batch], producer="bench")
            publishes += 1

    mac_key = hub.log._mac_key  # type: ignore[attr-defined]

    def hub_nomac_round() -> None:
        hub.log._mac_key = None  # type: ignore[attr-defined]
        try:
            hub_round()
        finally:
            hub.log._mac_key = mac_key  # type: ignore[attr-defined]

    rounds = (
        ("raw", lambda: raw_produce(kafka, wire, raw)),
        ("hub", hub_round),
        ("hub-nomac", hub_nomac_round),
    )
    best: dict[str, list[float]] = {}
    for _ in range(3):
        for name, fn in rounds:
            t, c = time.perf_counter(), cpu()
            fn()
            wall, used = time.perf_counter() - t, cpu() - c
            b = best.setdefault(name, [0.0, 0.0])
            b[0], b[1] = max(b[0], n / wall), max(b[1], n / used)
    hub.close()
    print(f"{checkout}: raw {best['raw'][0]:,.0f}/s ({best['raw'][1]:,.0f}/CPU-s)")
    per = {t: round(c / max(publishes, 1), 3) for t, c in sorted(asked.items())}
    print(f"  ListOffsets per hub publish, by topic: {per}")
    for name in ("hub", "hub-nomac"):
        print(
            f"  {name} {best[name][0]:,.0f}/s ({best[name][1]:,.0f}/CPU-s); hub/raw "
            f"{best[name][0] / best['raw'][0]:.3f}x wall, "
            f"{best[name][1] / best['raw'][1]:.3f}x per CPU-s"
        )


if __name__ == "__main__":
    here = str(Path(__file__).resolve().parents[1])
    main(
        sys.argv[1] if len(sys.argv) > 1 else here,
        int(sys.argv[2]) if len(sys.argv) > 2 else 10000,
        int(sys.argv[3]) if len(sys.argv) > 3 else 2000,
    )
