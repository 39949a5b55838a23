"""The transaction coordinator of the adapter's atomic appends dies mid-stream (issue 17 item 8).

On the three-broker cluster (``infra/kafka-cluster.sh``: replication factor 3,
``min.insync.replicas=2``), a publisher appends numbered multi-partition batches (each a Kafka
transaction of the log's one transactional producer) with an ``IdempotenceKey``, retrying a
failed batch with the same key, as the publish path does. Midway the broker that is the
transaction coordinator of that producer's ``transactional.id`` (the leader of its
``__transaction_state`` partition, found as Kafka places it) is killed (SIGKILL) and started
again in the background. Two brokers stay up, so the appends must go on after a bounded stall,
and every acknowledged record must be in the log exactly once, nothing else.
"""

from __future__ import annotations

import itertools
import subprocess
import threading
import time
import uuid

import pytest
from confluent_kafka.admin import AdminClient

from adapters.kafka_log import KafkaEventLog
from core.errors import HubError
from core.ports.eventlog import IdempotenceKey, Record
from tests import infra
from tests.ha import hubprocs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

BATCHES = 12
RECORDS = 9
PARTITIONS = 3
# the coordinator's partitions move once the controller drops the dead broker (its session
# timeout: 6 s), then the producer finds the new coordinator; generous for a loaded machine
STALL_BOUND_S = 45.0
TXN_STATE_PARTITIONS = 8  # transaction.state.log.num.partitions in infra/kafka-cluster.sh


def java_hash(text: str) -> int:
    """Java's ``String.hashCode`` (Kafka places a transactional id by it), for ASCII text."""
    h = 0
    for ch in text:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def coordinator(bootstrap: str, transactional_id: str) -> int:
    """The node id leading the ``__transaction_state`` partition of ``transactional_id``."""
    h = java_hash(transactional_id)
    partition = (0 if h == -(1 << 31) else abs(h)) % TXN_STATE_PARTITIONS
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    md = admin.list_topics(topic="__transaction_state", timeout=30)
    return int(md.topics["__transaction_state"].partitions[partition].leader)


def batch(seq: int) -> list[Record]:
    return [
        Record(b"v", headers=(("uid", b"%d-%d" % (seq, i)),), partition=i % PARTITIONS)
        for i in range(RECORDS)
    ]


def test_atomic_appends_survive_their_transaction_coordinators_death() -> None:
    hubprocs.wait_prestarted()
    infra.require("kafka-cluster", "the coordinator failover test")
    script = str(infra.script("kafka-cluster"))
    bootstrap = subprocess.run(
        ["bash", script, "bootstrap"], capture_output=True, text=True, check=True
    ).stdout.strip()
    log = KafkaEventLog(
        bootstrap,
        topic_prefix=f"txc{uuid.uuid4().hex[:8]}.",
        replication_factor=3,
        timeout_s=10,
        delivery_timeout_s=20,
    )
    restart: subprocess.Popen[bytes] | None = None
    acks: list[tuple[int, float]] = []
    failures: list[str] = []
    stop = threading.Event()

    def publish() -> None:
        for seq in range(BATCHES):
            while not stop.is_set():
                try:
                    log.append("t", batch(seq), idempotence=IdempotenceKey("pub", seq))
                except HubError as exc:  # retried with the same key: no duplicate
                    failures.append(f"{seq}: {exc.code}: {exc.message[:200]}")
                    time.sleep(0.2)
                    continue
                acks.append((seq, time.monotonic()))
                break

    try:
        log.create_topic("t", PARTITIONS)
        log.append("t", [Record(b"warm", partition=p) for p in range(PARTITIONS)])
        node = coordinator(bootstrap, log._wire(log._atomic_id))
        thread = threading.Thread(target=publish, daemon=True)
        thread.start()
        deadline = time.monotonic() + 120
        while len(acks) < 3 and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(acks) >= 3, f"no appends before the kill: {failures[-3:]}"
        killed = time.monotonic()
        subprocess.run(["bash", script, "kill-broker", str(node)], check=True, capture_output=True)
        restart = subprocess.Popen(
            ["bash", script, "start-broker", str(node)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        thread.join(timeout=240)
        stop.set()
        assert not thread.is_alive(), f"the publisher stalled: {failures[-3:]}"
        assert [s for s, _ in acks] == list(range(BATCHES))
        times = [killed] + [t for _, t in acks if t > killed]
        stall = max(b - a for a, b in itertools.pairwise(times))
        assert stall < STALL_BOUND_S, f"appends stalled {stall:.1f} s: {failures[-3:]}"

        stored = [r for p in range(PARTITIONS) for r in log.scan("t", p)]
        uids = [dict(r.headers)["uid"] for r in stored if r.value == b"v"]
        want = [b"%d-%d" % (s, i) for s in range(BATCHES) for i in range(RECORDS)]
        assert len(uids) == len(set(uids)), "a record is stored twice"
        assert sorted(uids) == sorted(want), "a record is missing or foreign"
        print(
            f"\ncoordinator node {node} killed after {len(acks) - len(times) + 1} batches: "
            f"longest stall {stall:.2f} s, {len(failures)} failed attempts retried"
        )
    finally:
        stop.set()
        if restart is not None:
            restart.wait(timeout=240)  # the next HA test needs all three nodes
        log.delete_namespace_topics(log.namespace_topics())
        log.close()
