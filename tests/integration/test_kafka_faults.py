"""Fault test: the Kafka broker dies (SIGKILL) and restarts while batches are being appended.

A publisher thread appends numbered batches with an ``IdempotenceKey`` and retries a failed
batch with the same key until it is acknowledged. Midway the broker is killed with SIGKILL and
started again by ``infra/kafka.sh``. Afterwards every record (found by its unique ``uid`` header)
of every acknowledged batch must be in the log exactly once, and no record may be duplicated.
Batches alternate between one partition (one Kafka record batch) and several partitions (a Kafka
transaction), so both append paths are exercised. Every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from adapters.kafka_log import KafkaEventLog
from core.errors import HubError, OutOfOrderSequence
from core.ports.eventlog import IdempotenceKey, Record
from tests.contract.test_eventlog_kafka import SCRIPT, kafka_bootstrap

BATCHES = 60
RECORDS = 20
PARTITIONS = 3
DEADLINE_S = 240


def broker_pid() -> int:
    state = Path(os.environ.get("HUB_INFRA_DIR", Path.home() / ".cache/hub/infra")) / "kafka"
    return int((state / "kafka.pid").read_text().strip())


def batch(seq: int) -> list[Record]:
    if seq % 2:  # keyed: spread over the partitions, so appended in a Kafka transaction
        return [
            Record(b"v", key=b"k%d" % i, headers=(("uid", b"%d-%d" % (seq, i)),))
            for i in range(RECORDS)
        ]
    return [
        Record(b"v", headers=(("uid", b"%d-%d" % (seq, i)),), partition=seq % PARTITIONS)
        for i in range(RECORDS)
    ]


@pytest.mark.integration
@pytest.mark.slow
def test_acknowledged_batches_survive_a_broker_kill_exactly_once() -> None:
    bootstrap = kafka_bootstrap()
    # Short timeouts: appends fail while the broker is down, so retries go through recovery
    # (an intent without its done entry) rather than merely stalling.
    log = KafkaEventLog(bootstrap, timeout_s=3, delivery_timeout_s=3)
    topic = f"faults.{uuid.uuid4().hex[:12]}"
    log.create_topic(topic, PARTITIONS)
    producer = f"fault-producer-{uuid.uuid4().hex[:8]}"
    acked: list[int] = []
    errors: list[str] = []
    stop = threading.Event()
    deadline = time.monotonic() + DEADLINE_S

    def publish() -> None:
        for seq in range(BATCHES):
            while not stop.is_set():
                if time.monotonic() > deadline:
                    errors.append(f"batch {seq} not acknowledged before the deadline")
                    return
                try:
                    log.append(topic, batch(seq), idempotence=IdempotenceKey(producer, seq))
                except HubError as exc:  # the broker is down: retry the same batch
                    errors.append(f"batch {seq}: {type(exc).__name__}: {exc}")
                    time.sleep(0.5)
                    continue
                acked.append(seq)
                break
            time.sleep(0.05)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    try:
        while len(acked) < BATCHES // 3 and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(acked) >= BATCHES // 3, f"the publisher stalled before the kill: {errors}"
        os.kill(broker_pid(), signal.SIGKILL)
        killed_at = len(acked)
        time.sleep(2)
        started = subprocess.run(
            ["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=180
        )
        assert started.returncode == 0, started.stderr
        thread.join(timeout=max(1.0, deadline - time.monotonic()))
        assert not thread.is_alive(), f"the publisher did not finish in time: {errors[-5:]}"
    finally:
        stop.set()
        thread.join(timeout=30)

    assert acked == list(range(BATCHES)), errors[-5:]
    assert killed_at < BATCHES, "the broker was killed after the stream had ended"
    uids = Counter(r.header("uid") or b"" for p in range(PARTITIONS) for r in log.scan(topic, p))
    duplicates = {u: n for u, n in uids.items() if n > 1}
    assert not duplicates, f"records stored more than once: {sorted(duplicates)[:10]}"
    expected = {b"%d-%d" % (seq, i) for seq in acked for i in range(RECORDS)}
    missing, unexpected = sorted(expected - set(uids)), sorted(set(uids) - expected)
    assert not missing and not unexpected, f"missing {missing[:10]}, unexpected {unexpected[:10]}"
    print(f"killed after {killed_at} acknowledged batches; {len(errors)} failed attempts retried")
    log.close()


class Crash(Exception):
    """Stands for the process dying at a chosen step of an idempotent append."""


@pytest.mark.integration
@pytest.mark.parametrize("stored", [True, False], ids=["after-the-batch", "before-the-batch"])
def test_a_retry_after_a_crash_mid_append_is_stored_once(stored: bool) -> None:
    """A crash between the intent (step 1) and the done entry (step 3), then a retry elsewhere."""
    bootstrap = kafka_bootstrap()
    log = KafkaEventLog(bootstrap, timeout_s=10, delivery_timeout_s=10)
    topic = f"faults.{uuid.uuid4().hex[:12]}"
    log.create_topic(topic, PARTITIONS)
    producer = f"crash-producer-{uuid.uuid4().hex[:8]}"
    first = log.append(topic, batch(0), idempotence=IdempotenceKey(producer, 0))
    write = log._write

    def crash(b, marker):
        if stored:
            write(b, marker)
        raise Crash

    log._write = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        log.append(topic, batch(1), idempotence=IdempotenceKey(producer, 1))
    log.close()

    fresh = KafkaEventLog(bootstrap, timeout_s=10, delivery_timeout_s=10)
    try:
        before = sum(fresh.end_offsets(topic).values())
        if stored:  # batch 1 is the last stored one: sequence 0 is now a rewind
            with pytest.raises(OutOfOrderSequence):
                fresh.append(topic, batch(0), idempotence=IdempotenceKey(producer, 0))
        else:  # batch 0 is still the last stored one: its retry answers with its metadata
            assert fresh.append(topic, batch(0), idempotence=IdempotenceKey(producer, 0)) == first
        meta = fresh.append(topic, batch(1), idempotence=IdempotenceKey(producer, 1))
        assert fresh.append(topic, batch(1), idempotence=IdempotenceKey(producer, 1)) == meta
        after = sum(fresh.end_offsets(topic).values())
        if stored:
            assert after == before, "the retry of a stored batch was appended again"
        else:
            assert after > before, "the retry of a batch that never landed was not appended"
        uids = Counter(r.header("uid") for p in range(PARTITIONS) for r in fresh.scan(topic, p))
        assert set(uids) == {b"%d-%d" % (s, i) for s in (0, 1) for i in range(RECORDS)}
        assert set(uids.values()) == {1}
        assert [m.offset for m in meta] == [
            r.offset
            for m in meta
            for r in fresh.read(topic, m.partition, m.offset, 1)
            if r.header("uid") is not None
        ]
    finally:
        fresh.close()
