"""A one-partition topic's offsets are read again once its old leader broker is gone.

The hub asks a one-partition topic's offsets (decisions, keys, ``_schemas``: the ledger's sync
and every fold) through a consumer that never subscribes. librdkafka answers that consumer's
``get_watermark_offsets`` from its metadata cache: while the cached leader is a broker the
client has since dropped, the answer is "Local: Unknown partition" at once, no broker asked,
and the entry is refreshed only when ``metadata.max.age.ms`` (15 min) expires it. In CI's
failover test a broker was killed and the new leader's ledger sync failed on every turn for
over a minute ("Kafka failed while listing the offsets of 'hub.decisions'"), so the ledger
never covered the records acknowledged after the crash. A three-partition topic (asked through
the admin client's ListOffsets) is checked beside it.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient

from adapters.kafka_log import KafkaEventLog
from core.ports.eventlog import Record
from tests import infra
from tests.ha import hubprocs

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster() -> str:
    return hubprocs.cluster_bootstrap("the broker-gone offsets test")


prefix = f"bg{uuid.uuid4().hex[:8]}."


@pytest.fixture
def log(cluster: str) -> Iterator[KafkaEventLog]:
    log = KafkaEventLog(cluster, topic_prefix=prefix, replication_factor=3)
    yield log
    log.close()


def _leader(admin: AdminClient, wire: str) -> int:
    return int(admin.list_topics(wire, timeout=10).topics[wire].partitions[0].leader)


def _cluster(node: str, *args: str) -> None:
    subprocess.run(
        ["bash", str(infra.script("kafka-cluster")), node, *args], check=True, capture_output=True
    )


def test_offsets_are_read_after_the_cached_leader_broker_is_gone(
    log: KafkaEventLog, cluster: str
) -> None:
    log.create_topic("state", 1)
    log.create_topic("wide", 3)  # asked through the admin client's ListOffsets, not a consumer
    log.append("state", [Record(value=b"v", key=b"k")])
    log.append("wide", [Record(value=b"v", key=b"k", partition=p) for p in range(3)])
    wide = log.end_offsets("wide")  # each record and its transaction's commit marker
    assert wide == log.stable_offsets("wide") and all(end > 0 for end in wide.values())
    before_end = log.end_offsets("state")
    before_stable = log.stable_offsets("state")  # both consumers cache the leader
    assert before_end == before_stable and before_end[0] > 0
    wire = f"{prefix}state"
    admin = AdminClient({"bootstrap.servers": cluster})
    gone = _leader(admin, wire)
    _cluster("kill-broker", str(gone))
    try:
        deadline = time.monotonic() + 90
        while True:  # the controller fences the dead broker and elects another leader
            fresh = AdminClient({"bootstrap.servers": cluster})
            meta = fresh.list_topics(wire, timeout=10)
            leader = meta.topics[wire].partitions[0].leader
            if leader not in (gone, -1) and gone not in meta.brokers:
                break
            assert time.monotonic() < deadline, (
                f"no new leader in 90 s: leader {leader} (killed {gone}), brokers {meta.brokers}"
            )
            time.sleep(0.5)
        # A topic the offsets consumers have not cached yet: its metadata answer tells them the
        # brokers of the cluster now, without the dead one (the cache entry of "state" stays).
        log.create_topic("other", 1)
        assert log.end_offsets("other") == {0: 0}
        assert log.stable_offsets("other") == {0: 0}
        assert log.end_offsets("state") == before_end
        assert log.stable_offsets("state") == before_stable
        assert log.end_offsets("wide") == log.stable_offsets("wide") == wide
        assert log.all_end_offsets()["wide"] == wide
    finally:
        _cluster("start-broker", str(gone))
