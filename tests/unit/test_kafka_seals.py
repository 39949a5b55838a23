"""The seals of pre-MAC Kafka records (adapters.kafka_log.seals): what a seal vouches for, how
seal records round-trip, and that a damaged or incomplete seal is refused, not half-read."""

from __future__ import annotations

import dataclasses
import json

import pytest

from adapters.kafka_log import seals as seals_module
from adapters.kafka_log.auth import verify_records
from adapters.kafka_log.seals import PartitionSeal, SealCorrupt, fold_seals, seal_digest
from core.errors import LogTampered
from core.ports.eventlog import StoredRecord

KEY = b"k" * 32


def _rec(offset: int, value: bytes = b"v", topic: str = "hub.principals") -> StoredRecord:
    return StoredRecord(topic, 0, offset, 1_700_000_000_000 + offset, b"id", value, (("h", b"x"),))


def _stored(seal: PartitionSeal) -> list[StoredRecord]:
    return [
        StoredRecord("_hub_seals", 0, i, 1, k, v, ()) for i, (k, v) in enumerate(seal.records())
    ]


def test_the_digest_binds_every_field_the_offset_included() -> None:
    r = _rec(3)
    base = seal_digest(r)
    changed = [
        dataclasses.replace(r, topic="hub.policies"),
        dataclasses.replace(r, partition=1),
        dataclasses.replace(r, offset=4),
        dataclasses.replace(r, timestamp_ms=r.timestamp_ms + 1),
        dataclasses.replace(r, key=None),
        dataclasses.replace(r, value=b"w"),
        dataclasses.replace(r, headers=(("h", b"y"),)),
        dataclasses.replace(r, headers=()),
    ]
    assert all(seal_digest(c) != base for c in changed)


def test_a_seal_vouches_only_for_its_listed_records_below_n() -> None:
    old = [_rec(o) for o in (0, 1, 2)]
    seal = PartitionSeal("hub.principals", 0, 3, "ab" * 32, {r.offset: seal_digest(r) for r in old})
    assert all(seal.vouches(r) for r in old)
    assert not seal.vouches(_rec(1, b"forged"))  # changed, at a sealed offset
    assert not seal.vouches(dataclasses.replace(old[0], offset=3))  # a replay at N
    assert not seal.vouches(dataclasses.replace(old[0], topic="hub.policies"))
    # the reader: vouched records read whole, anything else on a hub topic is refused
    assert verify_records(KEY, old, seal.vouches) == old
    with pytest.raises(LogTampered, match=r"offset 1.*hub migrate kafka-seal"):
        verify_records(KEY, [old[0], _rec(1, b"forged")], seal.vouches)


def test_seal_records_round_trip_in_chunks_and_a_newer_seal_replaces_an_older(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(seals_module, "CHUNK", 2)
    first = PartitionSeal("hub.config", 1, 5, "aa" * 32, {o: bytes([o]) * 32 for o in range(5)})
    stored = _stored(first)
    assert len(stored) == 3  # 5 digests, 2 per record
    folded = fold_seals(stored)
    assert folded == {("hub.config", 1): first}
    # a later migration seals up to 7 with 2 chunks; the older third chunk must not survive
    second = PartitionSeal("hub.config", 1, 7, "bb" * 32, {o: bytes([o]) * 32 for o in (5, 6)})
    again = fold_seals(stored + _stored(second))
    assert again == {("hub.config", 1): second}
    # and when compaction has removed the superseded keys, the older chunk 2 alone stays first
    assert fold_seals([stored[2], *_stored(second)]) == {("hub.config", 1): second}


def test_an_incomplete_or_inconsistent_seal_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seals_module, "CHUNK", 2)
    seal = PartitionSeal("hub.config", 0, 5, "aa" * 32, {o: bytes([o]) * 32 for o in range(5)})
    stored = _stored(seal)
    with pytest.raises(SealCorrupt, match="lacks chunks"):
        fold_seals(stored[:2])  # a crash between the chunks: read none of it
    moved = dataclasses.replace(stored[0], key=json.dumps(["hub.policies", 0, 0]).encode())
    with pytest.raises(SealCorrupt, match="names another partition"):
        fold_seals([moved])
    body = json.loads(stored[0].value or b"")
    body["digests"] = body["digests"][:-8]
    short = dataclasses.replace(stored[0], value=json.dumps(body).encode())
    with pytest.raises(SealCorrupt, match="digest bytes"):
        fold_seals([short, *stored[1:]])
    with pytest.raises(SealCorrupt, match="malformed"):
        fold_seals([dataclasses.replace(stored[0], value=b"not json")])


def test_on_a_data_topic_a_seal_keeps_only_the_tenant_claims_it_lists() -> None:
    acme = StoredRecord("payments", 0, 0, 1, b"k", b"v", (("ce_tenant", b"acme"),))
    other = dataclasses.replace(acme, offset=1, value=b"w")
    seal = PartitionSeal("payments", 0, 1, "ab" * 32, {0: seal_digest(acme)})
    got = verify_records(KEY, [acme, other], seal.vouches)
    assert [dict(r.headers).get("ce_tenant") for r in got] == [b"acme", None]
    assert [dict(r.headers).get("ce_tenant") for r in verify_records(KEY, [acme])] == [None]
