"""The hub on Apache Kafka beside raw confluent-kafka, on the local broker (``infra/kafka.sh``).

Throughput (events/s, best of ``ROUNDS`` alternating rounds; the machine is shared):
- baseline: a raw confluent-kafka ``Producer`` (idempotent, ``acks=all``, ``linger.ms=5``)
  producing pre-encoded Avro values (Confluent wire format, the same bytes the hub writes) with
  their keys and the hub's envelope headers, and ONE ``flush()`` at the end (``make bench-e2e``
  adds 200-byte records, ``acks=1`` and Kafka's own ``kafka-producer-perf-test``);
- the hub's publish path: ``Publisher.publish`` of the same events as JSON-form dicts (subject
  lookup, conversion and validation, Avro encoding, envelope headers, one atomic append to Kafka
  per batch, acknowledged), and the same followed by ``Ledger.sync()`` (one Merkle leaf per
  event, checkpoints) per batch.
Topics have one partition (a batch is one Kafka record batch); a three-partition variant of the
hub path shows the cost of the Kafka transaction that makes a multi-partition batch atomic.

End to end: events published at ``E2E_RATE``/s (batches every 10 ms) for ``E2E_SECONDS`` s while
the ``payments`` projection follows the log into PostgreSQL (``infra/postgres.sh``); an event's
latency is from the start of its publish call to the commit of the view transaction that holds
its row (observed by polling the projection's positions row, written in that same
transaction, every 10 ms). p50 and p99 are reported; goal: p99 < 250 ms at 10 k events/s.

Run: ``make bench`` or ``.venv/bin/pytest benchmarks/test_bench_kafka.py -q -s``.
Environment: ``KAFKA_BENCH_EVENTS`` (per round, 20000), ``KAFKA_BENCH_E2E_RATE`` (10000),
``KAFKA_BENCH_E2E_SECONDS`` (10, at most 30).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from confluent_kafka import Producer

from benchmarks.conftest import Report
from core.events import OutgoingEvent
from core.ports.views import Target
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from projections.catalog import PAYMENTS
from tests.contract.test_eventlog_kafka import kafka_bootstrap
from tests.infra import postgres_url

pytestmark = [pytest.mark.slow, pytest.mark.integration]

EVENTS = int(os.environ.get("KAFKA_BENCH_EVENTS", "20000"))
BATCH = 2000
ROUNDS = 3
E2E_RATE = int(os.environ.get("KAFKA_BENCH_E2E_RATE", "10000"))
E2E_SECONDS = min(30.0, float(os.environ.get("KAFKA_BENCH_E2E_SECONDS", "5")))
# The goal's rate, and a lower one that one process on this machine sustains (for the shape).
E2E_RATES = (E2E_RATE, 2000)
GROUP = "kafka publish"
EVENT_TYPE = "hub.payments.PaymentInitiated"


def payment(i: int, run: str) -> OutgoingEvent:
    return OutgoingEvent(
        event_type=EVENT_TYPE,
        value={
            "payment_id": f"{run}-{i}",
            "account_id": f"A{i % 500}",
            "amount": f"{100 + i % 9000}.25",
            "currency": "EUR",
            "counterparty_name": f"Person {i % 1000}",
            "counterparty_iban": "DE89370400440532013000",
            "counterparty_country": "DE",
            "reference": None,
            "initiated_at": "2026-01-02T10:00:00Z",
        },
    )


@pytest.fixture(scope="module")
def kafka() -> str:
    return kafka_bootstrap()


def make_hub(tmp: Path, kafka: str, partitions: int, views_url: str = "") -> Hub:
    return bootstrap(
        load_settings(
            environ={},
            data_dir=tmp,
            event_log="kafka",
            kafka_bootstrap_servers=kafka,
            kafka_topic_prefix=f"b{uuid.uuid4().hex[:10]}.",
            default_partitions=partitions,
            views_sql_url=views_url,
            policy_record_decisions=False,
        )
    )


@pytest.fixture(scope="module")
def hub1(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = make_hub(tmp_path_factory.mktemp("hub1"), kafka, 1)
    yield h
    h.close()


def raw_produce(kafka: str, topic: str, records: list[tuple[bytes, bytes, Any]]) -> float:
    """Seconds to produce every record and flush ONCE at the end, as librdkafka's authors
    recommend for throughput (a flush per batch of BATCH, as before, measured 32k/s: a baseline
    held back by its own configuration)."""
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
    started = time.perf_counter()
    for key, value, headers in records:
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=headers)
                break
            except BufferError:  # local queue full: serve delivery reports, then retry
                producer.poll(0.001)
    left = producer.flush(60)
    assert left == 0, f"{left} records still undelivered after 60 s"
    return time.perf_counter() - started


def test_hub_publish_vs_raw_produce(hub1: Hub, kafka: str, report: Report, tmp_path: Path) -> None:
    hub = hub1
    run = uuid.uuid4().hex[:6]
    events = [payment(i, run) for i in range(EVENTS)]
    # The same bytes the hub writes, encoded once: the baseline does no encoding at all.
    prepared = hub.publisher.prepare("payments", events[:BATCH], producer="bench")
    raw = [(r.key or b"", r.value or b"", list(r.headers)) for r in prepared for _ in range(1)] * (
        EVENTS // BATCH
    )
    raw_topic = f"bench.raw.{run}"
    hub.log.create_topic(raw_topic, 1)
    wire_raw = hub.log._wire(raw_topic)  # type: ignore[attr-defined]

    def hub_round(sync_ledger: bool) -> float:
        started = time.perf_counter()
        for i in range(0, EVENTS, BATCH):
            hub.publisher.publish("payments", events[i : i + BATCH], producer="bench")
            if sync_ledger:
                hub.ledger.sync()
        return time.perf_counter() - started

    hub.ledger.sync()  # the leaves of the setup events, outside the measurement
    best: dict[str, float] = {}
    for _ in range(ROUNDS):
        for name, fn in (
            ("raw confluent-kafka produce (Avro bytes)", lambda: raw_produce(kafka, wire_raw, raw)),
            ("hub publish (validate+Avro+append)", lambda: hub_round(False)),
            ("hub publish + ledger sync", lambda: hub_round(True)),
        ):
            took = fn()
            best[name] = max(best.get(name, 0.0), EVENTS / took)
    baseline = "raw confluent-kafka produce (Avro bytes)"
    for name, rate in best.items():
        report.add(GROUP, name, rate, "events/s", baseline=None if name == baseline else baseline)

    # Three partitions: each batch is a Kafka transaction (atomic across partitions).
    hub3 = make_hub(tmp_path / "hub3", kafka, 3)
    try:
        hub3.publisher.publish("payments", events[:BATCH], producer="bench")  # warm-up
        started = time.perf_counter()
        for i in range(0, EVENTS, BATCH):
            hub3.publisher.publish("payments", events[i : i + BATCH], producer="bench")
        rate = EVENTS / (time.perf_counter() - started)
        report.add(
            GROUP, "hub publish, 3 partitions (Kafka txn)", rate, "events/s", baseline=baseline
        )
    finally:
        hub3.close()


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    url = postgres_url("the Kafka -> PostgreSQL benchmark")
    schema = f"b_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def paced_publish(
    hub: Hub, rate: int, seconds: float
) -> tuple[list[tuple[int, int, float]], float]:
    """Publish ``rate`` events/s (one batch every 10 ms) for ``seconds``.

    Returns, per batch, (partition, offset of its last record, wall time the publish call began),
    and the publish phase's length in seconds."""
    run = uuid.uuid4().hex[:6]
    per_tick = max(1, rate // 100)
    ticks = int(seconds * 100)
    batches = [[payment(t * per_tick + i, run) for i in range(per_tick)] for t in range(ticks)]
    sent: list[tuple[int, int, float]] = []
    started = time.perf_counter()
    for t, batch in enumerate(batches):
        pause = started + t * 0.01 - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        t0 = time.time()
        meta = hub.publisher.publish("payments", batch, producer="bench")
        sent.append((meta[-1].partition, meta[-1].offset, t0))
    return sent, time.perf_counter() - started


def _publisher_process(argv: list[str]) -> None:
    """``python -m benchmarks.test_bench_kafka KAFKA PREFIX DATA_DIR RATE SECONDS``: a second hub
    in the same namespace publishes, then prints its batches and publish time as JSON."""
    kafka, prefix, data_dir, rate, seconds = argv
    hub = bootstrap(
        load_settings(
            environ={},
            data_dir=Path(data_dir),
            event_log="kafka",
            kafka_bootstrap_servers=kafka,
            kafka_topic_prefix=prefix,
            default_partitions=1,
            policy_record_decisions=False,
        )
    )
    try:
        print("ready", flush=True)
        sys.stdin.readline()  # go
        sent, took = paced_publish(hub, int(rate), float(seconds))
        print(json.dumps({"sent": sent, "seconds": took}), flush=True)
    finally:
        hub.close()


@pytest.mark.parametrize("separate", [False, True], ids=["one-process", "publisher-process"])
@pytest.mark.parametrize("rate", E2E_RATES)
def test_end_to_end_publish_to_postgres_row(
    rate: int, separate: bool, kafka: str, pg_schema_url: str, report: Report, tmp_path: Path
) -> None:
    """The projection (and the observer) run here; the publisher runs in this process too, or in
    a process of its own (as an ingest service would), so that the two do not share one GIL."""
    hub = make_hub(tmp_path / "e2e", kafka, 1, pg_schema_url)
    proc: subprocess.Popen[str] | None = None
    try:
        hub.projections.run(["payments"])  # creates the tables and positions before timing
        if separate:
            prefix = hub.log._prefix  # type: ignore[attr-defined]
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.test_bench_kafka",
                    kafka,
                    prefix,
                    str(tmp_path / "publisher"),
                    str(rate),
                    str(E2E_SECONDS),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=Path(__file__).resolve().parents[1],
            )
            assert proc.stdout is not None and proc.stdin is not None
            assert proc.stdout.readline().strip() == "ready"
        engine = sa.create_engine(pg_schema_url)
        seen: list[tuple[int, int, float]] = []  # (partition, next_offset, wall time visible)
        done = threading.Event()

        def watch() -> None:
            last: dict[int, int] = {}
            q = sa.text(
                "SELECT part, next_offset FROM _projection_offsets "
                "WHERE projection_id = 'payments' AND topic = 'payments'"
            )
            with engine.connect() as conn:
                while not done.is_set():
                    now = time.time()
                    for part, nxt in conn.execute(q):
                        if nxt != last.get(part):
                            last[part] = nxt
                            seen.append((part, nxt, now))
                    conn.rollback()
                    time.sleep(0.01)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        hub.projections.start(["payments"], poll_s=0.005)
        if proc is not None:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
            out = json.loads(proc.stdout.readline())
            sent = [tuple(x) for x in out["sent"]]
            publish_s = out["seconds"]
            proc.wait(30)
        else:
            sent, publish_s = paced_publish(hub, rate, E2E_SECONDS)
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline:
            if seen and max(n for p, n, _ in seen if p == sent[-1][0]) > sent[-1][1]:
                break
            time.sleep(0.05)
        done.set()
        watcher.join(5)
        hub.projections.stop()
        engine.dispose()

        latencies = []
        for part, offset, t0 in sent:
            visible = next((ts for p, n, ts in seen if p == part and n > offset), None)
            assert visible is not None, f"batch ending at {part}/{offset} never became visible"
            latencies.append((visible - t0) * 1000)
        history = next(t for t in PAYMENTS.tables if t.name == "payment_history")
        rows = len(hub.projections.store("transactional").rows(Target("payments"), history))
        total = len(sent) * max(1, rate // 100)
        assert rows == total, f"{rows} rows in PostgreSQL, {total} events published"
        latencies.sort()
        p50 = statistics.median(latencies)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        group = f"e2e {rate}/s {'2 procs' if separate else '1 proc'}"
        report.add(group, "publish rate achieved", total / publish_s, "events/s")
        report.add(group, "p99 goal", 250.0, "ms", higher_is_better=False)
        for name, value in (("p50", p50), ("p99", p99)):
            report.add(
                group,
                f"publish -> PostgreSQL row {name}",
                value,
                "ms",
                baseline="p99 goal",
                higher_is_better=False,
            )
        print(
            f"\ne2e at {rate}/s ({group}): {total} events in {publish_s:.1f} s; "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        hub.close()


if __name__ == "__main__":
    _publisher_process(sys.argv[1:])
