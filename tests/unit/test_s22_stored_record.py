"""The Kafka log's ``stored_record`` takes a consumed message's header pairs as they are when
every value is bytes (session 22: a fifth of a live projection step's Kafka read was the
per-header conversion). It must build the very records the per-header conversion built, for any
message a consumer can hand over: values that are bytes, None or text, no headers at all, keys
and values missing or text, header names repeated."""

from __future__ import annotations

import random

import pytest
from confluent_kafka import Message

from adapters.kafka_log.batch import stored_record
from core.ports.eventlog import StoredRecord


def reference(topic: str, partition: int, offset: int, msg: Message) -> StoredRecord:
    """``stored_record`` as it was before session 22: every header converted one by one."""
    raw = msg.headers() or []
    headers = tuple(
        (k, b"" if v is None else v if isinstance(v, bytes) else v.encode()) for k, v in raw
    )
    key, value = msg.key(), msg.value()
    return StoredRecord(
        topic,
        partition,
        offset,
        msg.timestamp()[1],
        key if key is None or isinstance(key, bytes) else key.encode(),
        value if value is None or isinstance(value, bytes) else value.encode(),
        headers,
    )


def random_message(rng: random.Random, offset: int) -> Message:
    def blob() -> bytes | str | None:
        roll = rng.random()
        if roll < 0.08:
            return None
        if roll < 0.16:
            return "text-é-" + str(rng.randrange(1000))
        return rng.randbytes(rng.randrange(0, 40))

    names = ["ce_id", "ce_type", "ce_time", "ce_tenant", "hub-idem", "hub-tmac", "hub-mac"]
    headers: list[tuple[str, bytes | str | None]] | None = [
        (rng.choice(names), blob() if rng.random() < 0.3 else rng.randbytes(16))
        for _ in range(rng.randrange(0, 14))
    ]
    if rng.random() < 0.1:
        headers = None
    return Message(
        topic="trades",
        partition=rng.randrange(3),
        offset=offset,
        key=blob(),
        value=blob(),
        headers=headers,
        timestamp=(1, rng.randrange(0, 2**41)),
    )


@pytest.mark.parametrize("seed", range(20))
def test_records_equal_the_per_header_conversion(seed: int) -> None:
    rng = random.Random(seed)
    for offset in range(200):
        msg = random_message(rng, offset)
        got = stored_record("trades", msg.partition() or 0, offset, msg)
        want = reference("trades", msg.partition() or 0, offset, msg)
        assert got == want
        assert all(type(v) is bytes for _, v in got.headers)  # never a None or text value
        assert type(got.headers) is tuple and all(type(h) is tuple for h in got.headers)


def test_a_header_without_value_reads_as_empty_bytes() -> None:
    msg = Message(topic="t", partition=0, offset=1, headers=[("a", b"x"), ("b", None)])
    assert stored_record("t", 0, 1, msg).headers == (("a", b"x"), ("b", b""))
    assert stored_record("t", 0, 1, Message(topic="t", offset=1, headers=None)).headers == ()
