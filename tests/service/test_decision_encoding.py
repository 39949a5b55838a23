"""The batch encoder of policy decisions gives the bytes ``Publisher.prepare`` gives (the
reference path), and what it stores reads back as the decision."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Sequence
from datetime import datetime

import pytest

import governance.decisions as decisions_module
from core.errors import PayloadTooLarge
from core.ports.eventlog import ColumnBatch, Record, RecordMetadata, Transaction
from governance.decisions import (
    DECISIONS_TOPIC,
    Companions,
    DecisionEncoder,
    DecisionRecord,
    LogDecisionSink,
    _long,
    _rfc3339,
    _stamp,
    _time,
    decision_event,
    new_decision_id,
)
from hub.bootstrap import Hub
from ingest.publish import EventReader

RECORDS = [
    DecisionRecord(
        new_decision_id(),
        "root",
        "default",
        ("admin",),
        "event.read",
        "topics/t1",
        True,
        "Allowed: admin may read.",
        "v" * 64,
        "a" * 64,
        1_764_640_000_123_456,
    ),
    DecisionRecord(
        new_decision_id(),
        "ann",
        "acme",
        ("analyst", "auditor"),
        "event.read",
        "topics/pay/ü",
        False,
        "Denied: no role grants event.read on topics/pay/ü.",
        "v" * 64,
        "b" * 64,
        1_764_640_000_000_001,
        mask=("iban", "name"),
        row_filter={"tenant": "acme", "x": "é"},
        purpose="fraud-review",
        case_id="case-7",
    ),
    DecisionRecord(
        new_decision_id(),
        "svc",
        "globex",
        (),
        "schema.read",
        "",
        True,
        "",
        "",
        "",
        0,
    ),
]


def test_batch_encoding_is_byte_identical_to_the_publisher(hub: Hub) -> None:
    sink = LogDecisionSink(hub.log, hub.registry, hub.publisher)
    sink.append(RECORDS[:1])  # creates the topic and registers the schema
    encoder = DecisionEncoder(hub.publisher)
    assert encoder.direct, "the decision schema holds no PII: the direct path must be taken"
    fast = encoder.encode(RECORDS)
    for r, got in zip(RECORDS, fast, strict=True):
        (ref,) = hub.publisher.prepare(
            DECISIONS_TOPIC, [decision_event(r)], producer=r.principal, tenant=r.tenant
        )
        assert got.value == ref.value
        assert got.key == ref.key
        assert got.headers == ref.headers


def test_stored_decisions_read_back_as_recorded(hub: Hub) -> None:
    sink = LogDecisionSink(hub.log, hub.registry, hub.publisher)
    sink.append(RECORDS)
    reader = EventReader(hub.log, hub.registry)
    stored = [reader.decode(rec) for rec in hub.log.read(DECISIONS_TOPIC, 0, 0, 100)]
    by_id = {s["value"]["decision_id"]: s for s in stored}
    for r in RECORDS:
        got = by_id[r.decision_id]
        want = r.value()
        assert {**got["value"], "decided_at": None} == {**want, "decided_at": None}
        assert datetime.fromisoformat(got["value"]["decided_at"]) == datetime.fromisoformat(
            want["decided_at"]
        )
        assert got["headers"]["hub_action"] == r.action
        assert got["headers"]["ce_id"] == r.decision_id


def test_an_oversized_decision_is_refused_naming_it(hub: Hub) -> None:
    sink = LogDecisionSink(hub.log, hub.registry, hub.publisher)
    big = DecisionRecord(
        new_decision_id(),
        "root",
        "default",
        (),
        "event.read",
        "r" * (hub.publisher.max_record_bytes + 1),
        True,
        "",
        "",
        "",
        0,
    )
    with pytest.raises(PayloadTooLarge, match=big.decision_id):
        sink.append([big])


def test_column_wise_batch_is_byte_identical_to_the_generated_encoder(hub: Hub) -> None:
    """``_columns`` (shared strings encoded once per batch) against ``_one`` per record, over
    repeats, multi-byte lengths and characters, empty and several-entry maps, negative,
    zero and far-future times."""
    LogDecisionSink(hub.log, hub.registry, hub.publisher).append(RECORDS[:1])
    encoder = DecisionEncoder(hub.publisher)
    rng = random.Random(7)
    records = [
        DecisionRecord(
            new_decision_id(),
            f"user-{i % 7}",
            rng.choice(["acme", "é" * 70, ""]),
            tuple(rng.sample(["admin", "analyst", "auditor"], i % 4)),
            "event.read",
            f"topics/p/{i % 5}" + "x" * rng.randrange(0, 9000),
            i % 3 == 0,
            rng.choice(["Allowed", "Denied: ü" * 40]),
            "v" * 64,
            f"{i:064x}",
            rng.choice(
                [
                    0,
                    -1,
                    1,
                    2**32 * 10**6,
                    253_402_000_000_000_000,
                    1_764_640_000_000_000 + i * 999_999,
                ]
            ),
            mask=("pii",) * (i % 2),
            row_filter={f"k{j}": "é" * j for j in range(i % 4)},
            purpose="p" * (i % 130),
            case_id=str(i),
            key_id="k" * (i % 3),
        )
        for i in range(300)
    ]
    assert encoder.encode(records) == [encoder._one(r) for r in records]
    seconds: dict[int, bytes] = {}
    for us in [
        0,
        999_999,
        2**32 * 10**6 - 1,
        *(rng.randrange(0, 2**32 * 10**6) for _ in range(5000)),
    ]:
        assert _stamp(us, seconds) == _rfc3339(us)


def test_unmemoised_digests_and_ids_of_any_length_are_byte_identical(hub: Hub) -> None:
    """The digest and the id are written without the memos, with a length from a table of
    the lengths below 256: around and past that bound, multi-byte, empty."""
    LogDecisionSink(hub.log, hub.registry, hub.publisher).append(RECORDS[:1])
    encoder = DecisionEncoder(hub.publisher)
    texts = ["", "a", "f" * 63, "f" * 64, "f" * 127, "é" * 127, "é" * 128, "x" * 255, "x" * 256]
    texts += ["ü" * 300, "x" * 20_000]
    records = [
        RECORDS[0]._replace(input_sha256=digest, decision_id=ident)
        for digest in texts
        for ident in (new_decision_id(), digest or "-")
    ]
    assert encoder.encode(records) == [encoder._one(r) for r in records]


def test_memos_carried_between_batches_keep_every_batch_byte_identical(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``_columns``' memos outlive a batch (a lone decision's batch of one reuses them) and are
    cleared past ``_MEMO_MAX``: batches of 1 to 5 through one encoder, with the bound made small
    enough to be crossed many times, each equal to the generated encoder's records, and the
    memos never held much more than the bound."""
    LogDecisionSink(hub.log, hub.registry, hub.publisher).append(RECORDS[:1])
    monkeypatch.setattr(decisions_module, "_MEMO_MAX", 40)
    encoder = DecisionEncoder(hub.publisher)
    records = _varied(400)
    rng = random.Random(5)
    at = 0
    while at < len(records):
        batch = records[at : at + rng.randrange(1, 6)]
        at += len(batch)
        assert encoder.encode(batch) == [encoder._one(r) for r in batch]
        held = len(encoder._avro) + len(encoder._utf8) + len(encoder._lists)
        held += len(encoder._seconds) + len(encoder._middles) + len(encoder._tails)
        assert held < 40 + 5 * 40  # without the clearing: thousands


def test_records_differing_in_one_shared_field_never_share_an_encoding(hub: Hub) -> None:
    """``_columns`` memoises what a request and its answer fix (every field but the id, the
    digest and the time) under one key: records equal but for one of those fields (each in
    turn, row filters of the same pairs in another order, a filter against none, ``True``
    against ``1``), shuffled through batches that carry the memo over, each byte-identical to
    the generated encoder. Fails if the key left a field out."""
    LogDecisionSink(hub.log, hub.registry, hub.publisher).append(RECORDS[:1])
    encoder = DecisionEncoder(hub.publisher)
    base = RECORDS[1]
    variants = [
        base,
        base._replace(principal="bob"),
        base._replace(tenant="globex"),
        base._replace(roles=("analyst",)),
        base._replace(action="event.write"),
        base._replace(resource="topics/pay/v"),
        base._replace(allow=True),
        base._replace(allow=1),  # type: ignore[arg-type]  # equal to True: encodes alike
        base._replace(reason="Allowed."),
        base._replace(policy_version="w" * 64),
        base._replace(mask=("iban",)),
        base._replace(mask=()),
        base._replace(row_filter={"x": "é", "tenant": "acme"}),  # same pairs, other order
        base._replace(row_filter={"tenant": "globex", "x": "é"}),  # same keys, other value
        base._replace(row_filter={"tenant": "acme"}),
        base._replace(row_filter={}),
        base._replace(purpose=""),
        base._replace(case_id="case-8"),
        base._replace(key_id="key-1"),
    ]
    rng = random.Random(20)
    records = [
        v._replace(
            decision_id=new_decision_id(),
            input_sha256=f"{rng.getrandbits(256):064x}",
            decided_at_us=1_764_640_000_000_000 + rng.randrange(10**9),
        )
        for v in variants * 20
    ]
    rng.shuffle(records)
    for at in range(0, len(records), 37):
        batch = records[at : at + 37]
        assert encoder.encode(batch) == [encoder._one(r) for r in batch]


def test_time_varint_matches_the_reference_long() -> None:
    """``_time`` (low 14 bits from a table, the rest memoised per batch) is ``_long``."""
    rng = random.Random(3)
    tails: dict[int, bytes] = {}
    edges = [0, -1, 1, 8191, 8192, 8193, 2**14, 2**21, 2**62 - 1, 2**62, 2**63 - 1, -(2**63)]
    now = 1_764_640_000_000_000
    for us in [*edges, *(now + rng.randrange(-(10**9), 10**9) for _ in range(20_000))]:
        assert _time(us, tails) == _long(us), us


def _varied(n: int) -> list[DecisionRecord]:
    """Decisions with repeats, denials, masks, row filters, multi-byte text and odd times."""
    rng = random.Random(11)
    return [
        DecisionRecord(
            new_decision_id(),
            f"user-{i % 5}-ü",
            rng.choice(["acme", "globex", ""]),
            tuple(rng.sample(["admin", "analyst", "auditor"], i % 4)),
            rng.choice(["event.read", "schema.write"]),
            f"topics/p/{i % 3}",
            i % 4 != 0,
            rng.choice(["Allowed", "Denied: é"]),
            "v" * 64,
            f"{i:064x}",
            rng.choice([0, -1, 2**32 * 10**6, 1_764_640_000_000_000 + i * 999_999]),
            mask=("pii",) * (i % 2),
            row_filter={f"k{j}": "é" * j for j in range(i % 3)},
            purpose="p" * (i % 3),
            case_id=str(i),
        )
        for i in range(n)
    ]


def _stored(hub: Hub, topic: str) -> list[tuple[object, ...]]:
    return [(s.offset, s.key, s.value, s.headers) for s in hub.log.read(topic, 0, 0, 10_000)]


def test_column_append_stores_what_record_append_stored(hub: Hub) -> None:
    """The sink hands the log columns (``append_columns``); the same decisions appended as
    ``Record`` objects (the path before) to a twin topic store the same offsets, keys, values
    and headers, and decode to the same events, in batch order."""
    sink = LogDecisionSink(hub.log, hub.registry, hub.publisher)
    sink.append(RECORDS)  # creates the topic; RECORDS land first on both topics
    info = hub.log.topic(DECISIONS_TOPIC)
    twin = "hub.decisions-reference"
    hub.log.create_topic(twin, info.partitions, dict(info.config))
    encoder = DecisionEncoder(hub.publisher)
    hub.log.append(twin, [encoder._one(r) for r in RECORDS])
    varied = _varied(300)
    batch = encoder.encode_batch(varied)
    assert isinstance(batch, ColumnBatch), "the direct path must hand the log columns"
    sink.store(batch)
    hub.log.append(twin, [encoder._one(r) for r in varied])
    got, want = _stored(hub, DECISIONS_TOPIC), _stored(hub, twin)
    assert len(got) == len(RECORDS) + 300
    assert got == want
    reader = EventReader(hub.log, hub.registry)
    decoded = [reader.decode(r)["value"] for r in hub.log.read(DECISIONS_TOPIC, 0, 0, 10_000)]
    assert decoded == [reader.decode(r)["value"] for r in hub.log.read(twin, 0, 0, 10_000)]
    assert [d["decision_id"] for d in decoded] == [r.decision_id for r in [*RECORDS, *varied]]
    assert [d["allow"] for d in decoded] == [r.allow for r in [*RECORDS, *varied]]


def test_companion_transaction_stores_the_columns_and_the_records_together(hub: Hub) -> None:
    """``store_with`` (a decision held for its action's records) appends the decisions'
    columns and the companions' records in one transaction: both are there, in order."""
    sink = LogDecisionSink(hub.log, hub.registry, hub.publisher)
    sink.append(RECORDS[:1])
    hub.log.create_topic("acts", 1, {})
    batch = sink.prepare(RECORDS[1:])
    sink.store_with(batch, [Companions("acts", [Record(value=b"done", key=b"k")])])
    encoder = DecisionEncoder(hub.publisher)
    want = [encoder._one(r) for r in RECORDS]
    got = hub.log.read(DECISIONS_TOPIC, 0, 0, 100)
    assert [(s.key, s.value, s.headers) for s in got] == [(w.key, w.value, w.headers) for w in want]
    assert [s.value for s in hub.log.read("acts", 0, 0, 10)] == [b"done"]


def test_companions_of_one_topic_are_stored_in_one_append_in_their_order(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent registrations held for their decisions share a batch, each with one
    ``_schemas`` record: the transaction appends each topic's companions once (one produce
    round trip on Kafka instead of one per companion), the records in the companions' order."""
    sink = LogDecisionSink(hub.log, hub.registry, hub.publisher)
    sink.append(RECORDS[:1])
    hub.log.create_topic("acts", 1, {})
    hub.log.create_topic("other", 1, {})
    appends: list[tuple[str, int]] = []
    opened = hub.log.transaction

    @contextlib.contextmanager
    def counting(transactional_id: str) -> Iterator[Transaction]:
        with opened(transactional_id) as txn:
            inner = txn.append

            def append(topic: str, records: Sequence[Record]) -> list[RecordMetadata]:
                appends.append((topic, len(records)))
                return inner(topic, records)

            monkeypatch.setattr(txn, "append", append)
            yield txn

    monkeypatch.setattr(hub.log, "transaction", counting)
    companions = [
        Companions("acts", [Record(value=b"a1", key=b"k")]),
        Companions("other", [Record(value=b"o1", key=b"k")]),
        Companions("acts", [Record(value=b"a2", key=b"k"), Record(value=b"a3", key=b"k")]),
        Companions("acts", [Record(value=b"a4", key=b"k")]),
    ]
    sink.store_with(sink.prepare(RECORDS[1:]), companions)
    assert appends == [("acts", 4), ("other", 1)]
    assert [s.value for s in hub.log.read("acts", 0, 0, 10)] == [b"a1", b"a2", b"a3", b"a4"]
    assert [s.value for s in hub.log.read("other", 0, 0, 10)] == [b"o1"]
    assert len(hub.log.read(DECISIONS_TOPIC, 0, 0, 100)) == len(RECORDS)
