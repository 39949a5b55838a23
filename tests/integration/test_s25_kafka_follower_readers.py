"""Each follower keeps its own reader (issue 13, s25): the views' follower and the ledger's
follower read the same partition from different offsets; with one kept reader each read of
one re-pointed the reader the other had left (a new assignment and fetch per read). Now a
read takes the reader kept at its offset (``adapters.kafka_log.readers``).

What must hold (real broker, ``infra/kafka.sh``): each follower reads every committed record
exactly once, in order, while appends, transactions and a third reader of another topic come
between their reads; once both are warm, their reads assign no reader anew."""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import Iterator

import pytest

from adapters.kafka_log import KafkaEventLog
from adapters.kafka_log import log as kafka_log
from core.ports.eventlog import Record
from tests.contract.test_eventlog_kafka import kafka_bootstrap

pytestmark = pytest.mark.integration


@pytest.fixture
def log() -> Iterator[KafkaEventLog]:
    kafka = KafkaEventLog(kafka_bootstrap(), topic_prefix=f"f{uuid.uuid4().hex[:10]}.")
    yield kafka
    kafka.close()


def _assigns(log: KafkaEventLog) -> int:
    return sum(r.assigns for r in log._readers.readers)


def test_two_followers_each_read_every_record_once_without_reassigning(
    log: KafkaEventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the idle reaper (a reader unused for READER_IDLE_S) is not what is measured: under this
    # machine's load a lagging follower's pause can pass 1 s
    monkeypatch.setattr(kafka_log, "READER_IDLE_S", 60.0)
    rng = random.Random(25)
    log.create_topic("trades", 1)
    log.create_topic("other", 1)
    committed: list[bytes] = []
    got: dict[str, list[bytes]] = {"views": [], "ledger": []}
    position = {"views": 0, "ledger": 0}

    def follow(who: str, most: int) -> None:
        end = log.end_offsets("trades")[0]
        while position[who] < end:
            chunk = log.read("trades", 0, position[who], most)
            if not chunk:
                break  # only markers left below the end
            got[who] += [r.value or b"" for r in chunk]
            position[who] = chunk[-1].offset + 1

    def step(n: int) -> None:
        values = [f"{n}.{i}".encode() for i in range(rng.randint(1, 20))]
        if n % 5 == 4:
            with contextlib.suppress(RuntimeError), log.transaction("t") as txn:
                txn.append("trades", [Record(v) for v in values])
                if n % 10 == 9:
                    raise RuntimeError("abort")
            if n % 10 != 9:
                committed.extend(values)
        else:
            log.append("trades", [Record(v) for v in values])
            committed.extend(values)
        follow("views", 500)
        if n % 3 == 0:  # the ledger lags and reads in smaller steps
            follow("ledger", 7)

    for n in range(10):
        step(n)
    warm = _assigns(log)
    for n in range(10, 40):
        step(n)
    assert _assigns(log) == warm, [(r.assigns, r.at) for r in log._readers.readers]
    log.append("other", [Record(b"x")])
    assert [r.value for r in log.read("other", 0, 0, 10)] == [b"x"]  # a third reader
    for n in range(40, 50):
        step(n)
    follow("views", 500)
    follow("ledger", 7)
    assert got["views"] == committed
    assert got["ledger"] == committed
