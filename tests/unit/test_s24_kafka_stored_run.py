"""The Kafka log's consume loop turns a run of plain messages into stored records in one call
(``batch.stored_run``, native ``hub_native.stored_run``; session 24). The native function must
make exactly the records the pure-Python reference ``stored_run_py`` makes and stop at the same
message, for any list a consumer can hand over: end-of-partition events, offsets missing or
below the position, header values that are None or text, keys and values that are text, no
headers, the end and the count reached mid-list; and what it makes must be what
``stored_record`` makes, message by message."""

from __future__ import annotations

import random

import pytest
from confluent_kafka import KafkaError, Message

from adapters.kafka_log import batch
from adapters.kafka_log.batch import stored_record, stored_run, stored_run_py
from core.ports.eventlog import StoredRecord

native = pytest.importorskip("hub_native")
if not hasattr(native, "stored_run"):  # pragma: no cover - a library built before it
    pytest.skip("hub_native has no stored_run (rebuild: make setup)", allow_module_level=True)


def message(rng: random.Random, offset: int | None) -> Message:
    where = -1001 if offset is None else offset  # OFFSET_INVALID: offset() answers None

    def blob(odd: float) -> bytes | str | None:
        roll = rng.random()
        if roll < odd / 2:
            return None
        if roll < odd:
            return "text-é-" + str(rng.randrange(1000))
        return rng.randbytes(rng.randrange(0, 40))

    if rng.random() < 0.03:
        return Message(
            topic="trades",
            partition=0,
            offset=where,
            error=KafkaError(KafkaError._PARTITION_EOF),
        )
    names = ["ce_id", "ce_type", "ce_tenant", "__hub.tmac", "__hub.mac"]
    odd = 0.02 if rng.random() < 0.5 else 0.0
    headers: list[tuple[str, bytes | str | None]] | None = [
        (rng.choice(names), blob(odd) if odd else rng.randbytes(16))
        for _ in range(rng.randrange(0, 14))
    ]
    if rng.random() < 0.1:
        headers = None
    elif rng.random() < 0.05:
        headers = []
    return Message(
        topic="trades",
        partition=0,
        offset=where,
        key=blob(0.05),
        value=blob(0.03),
        headers=headers,
        timestamp=(1, rng.randrange(0, 2**41)),
    )


def messages(rng: random.Random, n: int, first: int) -> list[Message]:
    out, at = [], first
    for _ in range(n):
        roll = rng.random()
        if roll < 0.02:
            out.append(message(rng, None))
            continue
        if roll < 0.05:
            out.append(message(rng, at - rng.randrange(1, 5)))  # below the position
            continue
        at += 1 + (rng.randrange(1, 3) if rng.random() < 0.05 else 0)  # markers take offsets
        out.append(message(rng, at))
    return out


def same(a: list[StoredRecord], b: list[StoredRecord]) -> None:
    assert a == b
    for x, y in zip(a, b, strict=True):  # equal AND of the same types (bytes, not text)
        assert [type(v) for v in (x.key, x.value, x.headers)] == [
            type(v) for v in (y.key, y.value, y.headers)
        ]
        assert [type(v) for _, v in x.headers] == [type(v) for _, v in y.headers]


@pytest.mark.parametrize("seed", range(40))
def test_native_run_is_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    first = rng.randrange(0, 2**40)
    msgs = messages(rng, rng.randrange(0, 300), first)
    start = rng.randrange(0, len(msgs) + 1)
    position = first + rng.randrange(0, 20)
    end = first + rng.randrange(1, 400)
    most = rng.randrange(0, 400)
    got = native.stored_run(StoredRecord, "trades", 0, msgs, start, position, end, most)
    want = stored_run_py(StoredRecord, "trades", 0, msgs, start, position, end, most)
    assert got[1] == want[1]
    same(got[0], want[0])
    # the run's records are what stored_record makes of those messages
    made = [m for m in msgs[start : want[1]]]
    same(want[0], [stored_record("trades", 0, m.offset() or 0, m) for m in made])


def test_a_run_stops_where_the_loop_must_take_over() -> None:
    rng = random.Random(7)
    plain = [
        Message(topic="t", partition=0, offset=i, key=b"k", value=b"v", headers=[("a", b"x")])
        for i in range(10)
    ]
    odd_value = Message(
        topic="t", partition=0, offset=3, key=b"k", value=b"v", headers=[("a", None)]
    )
    eof = Message(topic="t", partition=0, offset=3, error=KafkaError(KafkaError._PARTITION_EOF))
    for cut in (odd_value, eof):
        msgs = [*plain[:3], cut, *plain[4:]]
        for fn in (native.stored_run, stored_run_py):
            rs, k = fn(StoredRecord, "t", 0, msgs, 0, 0, 100, 100)
            assert k == 3 and [r.offset for r in rs] == [0, 1, 2]
    for fn in (native.stored_run, stored_run_py):
        rs, k = fn(StoredRecord, "t", 0, plain, 0, 0, 5, 100)  # the end: offset 4 is the last
        assert (k, rs[-1].offset) == (5, 4)
        rs, k = fn(StoredRecord, "t", 0, plain, 2, 0, 100, 3)  # the count
        assert (k, [r.offset for r in rs]) == (5, [2, 3, 4])
    assert rng  # deterministic


def test_the_wrapper_falls_back_to_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    msgs = messages(random.Random(3), 50, 100)
    with_native = stored_run("trades", 0, msgs, 0, 100, 10**6, 10**6)
    monkeypatch.setattr(batch, "_stored_run", None)
    same(stored_run("trades", 0, msgs, 0, 100, 10**6, 10**6)[0], with_native[0])
    assert stored_run("trades", 0, msgs, 0, 100, 10**6, 10**6)[1] == with_native[1]
