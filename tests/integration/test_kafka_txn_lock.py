"""On the real broker, a transaction begins and ends without the log's own lock: a read holds
that lock for its ListOffsets and fetch round trips, and the decision flusher's transactions
(each registration's decision and ``_schemas`` record) queued behind the registry's folds
(17 ms a transaction under 8 concurrent registrations, s20)."""

from __future__ import annotations

import threading
import uuid

import pytest

from adapters.kafka_log import KafkaEventLog
from core.ports.eventlog import Record
from tests.contract.test_eventlog_kafka import MAC_KEY, TENANT_KEY, kafka_bootstrap

pytestmark = pytest.mark.integration


def test_a_transaction_begins_and_ends_while_a_read_holds_the_logs_lock() -> None:
    log = KafkaEventLog(
        kafka_bootstrap(),
        mac_key=MAC_KEY,
        tenant_key=TENANT_KEY,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
    )
    try:
        log.create_topic("acts", 1, {})
        with log.transaction("warm") as txn:  # the producer built, its topic known
            txn.append("acts", [Record(value=b"0", key=b"k")])
        begun, ended, go_on = threading.Event(), threading.Event(), threading.Event()
        errors: list[BaseException] = []

        def writer() -> None:
            try:
                with log.transaction("warm") as txn:
                    begun.set()
                    assert go_on.wait(30)
                    txn.append("acts", [Record(value=b"1", key=b"k")])
                ended.set()
            except BaseException as exc:
                errors.append(exc)
                begun.set()

        with log._lock:  # what a read holds during its round trips
            t = threading.Thread(target=writer)
            t.start()
            assert begun.wait(10), "beginning a transaction waited for the log's lock"
        go_on.set()
        t.join(60)
        assert not errors
        assert ended.is_set()
        assert [r.value for r in log.read("acts", 0, 0, 10)] == [b"0", b"1"]
    finally:
        log.close()
