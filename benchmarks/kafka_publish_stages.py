"""Where a hub publish to Kafka spends its CPU, stage by stage (thread CPU per record).

``python -m benchmarks.kafka_publish_stages [CHECKOUT] [EVENTS]`` publishes EVENTS ``payments``
events (batches of 2,000, one partition, record MAC on) with CHECKOUT's code against this
checkout's broker (``infra/kafka.sh``) and prints, per record: the process CPU of the whole
publish (all threads, librdkafka's included), and the calling thread's CPU inside
``Publisher._prepare_for_append`` (convert, PII seal, Avro, envelope) and inside
``KafkaEventLog.append_columns`` (MAC, produce, delivery wait, answer), plus the CPU of handing
the answer's records on (reading one record's metadata, as a caller that looks at it does).
Run it on an old and a new tree alternately: the figures are only comparable within one run of
both (the machine is shared). ``KAFKA_STAGES_FREEZE=1`` freezes the garbage collector's tracked
heap after set-up (``gc.freeze``, as in docs/benchmarks/s15-kafka.md): that hides what a
tracked object per record costs in collections, so the default leaves the collector as a
deployed hub runs it. ``KAFKA_STAGES_NOMAC=1`` unsets the log's MAC key (what the record MAC
costs, stage by stage); ``KAFKA_STAGES_NOTMAC=1`` unsets only the tenant MAC key (what the
Flink jobs' tenant MAC, ``core.tenant_mac``, costs; an older CHECKOUT has none).
"""

from __future__ import annotations

import gc
import os
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


def main(checkout: str, n: int, batch: int = 2000) -> None:
    sys.path.insert(0, checkout)
    os.chdir(checkout)
    from adapters.kafka_log.log import KafkaEventLog
    from benchmarks.test_bench_kafka import make_hub, payment
    from ingest.publish import Publisher
    from tests.contract.test_eventlog_kafka import kafka_bootstrap

    hub = make_hub(Path(tempfile.mkdtemp()), kafka_bootstrap(), 1)
    run = uuid.uuid4().hex[:6]
    events = [payment(i, run) for i in range(n)]
    hub.publisher.publish("payments", events[:batch], producer="bench")  # warm: keys, caches
    spent: dict[str, float] = {"prepare": 0.0, "append_columns": 0.0}

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.thread_time() - t

        return wrapper

    Publisher._prepare_for_append = timed("prepare", Publisher._prepare_for_append)  # type: ignore[method-assign]
    KafkaEventLog.append_columns = timed("append_columns", KafkaEventLog.append_columns)  # type: ignore[method-assign]
    hub.publisher._coalescers.clear()  # rebuilt with the timed methods
    if os.environ.get("KAFKA_STAGES_NOMAC") == "1":
        hub.log._mac_key = None  # type: ignore[attr-defined]
    if os.environ.get("KAFKA_STAGES_NOTMAC") == "1":
        hub.log._tenant_key = None  # type: ignore[attr-defined]
    gc.collect()
    if os.environ.get("KAFKA_STAGES_FREEZE") == "1":
        gc.freeze()

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    c = cpu()
    read = 0.0
    for i in range(0, n, batch):
        meta = hub.publisher.publish("payments", events[i : i + batch], producer="bench")
        t = time.thread_time()
        read += sum(m.offset for m in meta[-1:])  # a caller reading one record's metadata
        spent.setdefault("answer", 0.0)
        spent["answer"] += time.thread_time() - t
    used = cpu() - c
    hub.close()
    us = 1e6 / n
    print(
        f"{checkout}: process CPU {used * us:.2f} us/rec; "
        + "; ".join(f"{k} {v * us:.2f}" for k, v in spent.items())
    )


if __name__ == "__main__":
    here = str(Path(__file__).resolve().parents[1])
    main(
        sys.argv[1] if len(sys.argv) > 1 else here, int(sys.argv[2]) if len(sys.argv) > 2 else 40000
    )
