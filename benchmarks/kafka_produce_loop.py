"""The column append's produce loop alone: list of header tuples per record vs one reused dict.

``python -m benchmarks.kafka_produce_loop [ROUNDS]`` prepares one batch of 2,000 ``payments``
records as the hub writes them (its envelope headers plus the tenant MAC and record MAC
columns, ``KafkaEventLog._produce_columns``'s batch) and produces it with a real idempotent
producer (acks=all, linger.ms=5) against this checkout's broker (``infra/kafka.sh``), timing
the calling thread's CPU inside the loop only (the flush is outside), ROUNDS times, the three
loops alternated: ``hub_native.produce_columns`` (a list per record), ``produce_columns_dict``
(one dict) and the Python reference ``batch.produce_columns_py``. Prints the median and best
per record and the dict/list ratio of each round's pair.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any


def main(rounds: int) -> None:
    import hub_native
    from confluent_kafka import Producer

    from adapters.kafka_log import batch as kbatch
    from adapters.kafka_log.auth import MAC_HEADER, record_macs, tenant_macs
    from adapters.kafka_log.log import _with_mac_column
    from benchmarks.test_bench_kafka import make_hub, payment
    from core.ports.eventlog import ColumnBatch
    from core.tenant_mac import TMAC_HEADER
    from tests.contract.test_eventlog_kafka import kafka_bootstrap

    kafka = kafka_bootstrap()
    hub = make_hub(Path(tempfile.mkdtemp()), kafka, 1)
    run = uuid.uuid4().hex[:6]
    n = 2000
    records = hub.publisher.prepare("payments", [payment(i, run) for i in range(n)], producer="b")
    names = tuple(name for name, _ in records[0].headers)
    columns = tuple(
        [r.headers[j][1] for r in records] for j in range(len(names))
    )  # per record, as the publisher's envelope columns are
    shared = tuple(c[0] if len(set(c)) == 1 else c for c in columns)
    ts = time.time_ns() // 1_000_000
    batch = ColumnBatch([r.key for r in records], [r.value for r in records], names, shared, ts)
    batch = _with_mac_column(batch, TMAC_HEADER, tenant_macs, b"t" * 32, "payments", ts)
    batch = _with_mac_column(batch, MAC_HEADER, record_macs, b"k" * 32, "payments", ts)
    topic = f"bench.loop.{run}"
    hub.log.create_topic(topic, 1)
    wire = hub.log._wire(topic)  # type: ignore[attr-defined]
    hub.close()
    producer = Producer(
        {
            "bootstrap.servers": kafka,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "batch.size": 1 << 20,
            "compression.type": "none",
        }
    )
    args = (batch.keys, batch.values, batch.header_names, batch.header_columns, ts)

    def native_list() -> None:
        assert hub_native.produce_columns(producer.produce, wire, *args, None, None)

    def native_dict() -> None:
        assert hub_native.produce_columns_dict(producer.produce, wire, *args, None, None)

    def reference() -> None:
        kbatch.produce_columns_py(producer.produce, wire, batch, ts, None, None)

    loops: dict[str, Any] = {"list": native_list, "dict": native_dict, "reference": reference}
    spent: dict[str, list[float]] = {name: [] for name in loops}
    for r in range(rounds):
        order = list(loops) if r % 2 == 0 else list(reversed(loops))
        for name in order:
            t = time.thread_time()
            loops[name]()
            spent[name].append((time.thread_time() - t) / n * 1e6)
            assert producer.flush(60) == 0
    heads = len(batch.header_names)
    per = sum(type(c) is not bytes for c in batch.header_columns)
    print(f"{n} records, {heads} headers ({per} per record)")
    for name, xs in spent.items():
        print(f"  {name:9s} median {statistics.median(xs):.3f} us/rec, best {min(xs):.3f}")
    pairs = [d / lst for d, lst in zip(spent["dict"], spent["list"], strict=True)]
    print(
        f"  dict/list per round: median {statistics.median(pairs):.3f}x "
        f"({', '.join(f'{p:.2f}' for p in pairs)})"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
