"""Replays and held-back records on the Kafka log, which a broker producer can cause without
the hub's key.

A genuine record copied again into its own partition: a record MAC (``auth``) binds the
topic, partition, key, value, headers and timestamp, but not the offset, which the broker
assigns on append. Anyone with produce access to the broker can copy a genuine record,
timestamp and MAC included, to a later offset of the same partition, and it verifies there as
the hub's own (on a data topic with its tenant). The embedded log's MAC chain binds offsets and
refuses such a copy. The hub never writes two records with one MAC (each carries its own event
id or idempotence marker), so a valid MAC seen twice in a partition is a replay: ``hub ledger
verify`` (step 5, ``KafkaEventLog.integrity_problems``) names the first copy of each
partition.

An open transaction of another producer: it pins the partition's last stable offset, so no
``read_committed`` reader sees the hub's records past it (``held_back_what``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from adapters.kafka_log.auth import MAC_HEADER
from core.ports.eventlog import StoredRecord


def first_replay(
    records: Iterable[StoredRecord], genuine: Callable[[StoredRecord], bool]
) -> tuple[int, int] | None:
    """``(copy, original)``: the offsets of the first record of ``records`` (one partition,
    as stored, in offset order) whose MAC header repeats an earlier record's and is valid
    (``genuine``), and of that earlier record; None when no record does. Keeps one entry per
    MAC'd record read."""
    seen: dict[bytes, int] = {}
    for r in records:
        if not r.headers or r.headers[-1][0] != MAC_HEADER:
            continue
        first = seen.setdefault(r.headers[-1][1], r.offset)
        if first != r.offset and genuine(r):
            return r.offset, first
    return None


def replay_what(original: int) -> str:
    """The problem's text for a copy of the record at ``original``."""
    return (
        f"this record carries the same valid hub MAC as the record at offset {original}: a "
        "genuine record was copied again into its partition (a replay by someone with produce "
        "access to the broker, which the record MAC cannot tell from the original); readers "
        "take the copy for a second event of the hub's. Revoke that producer's access (the "
        "broker's ACLs), then rebuild the projections that read the topic from a copy of the "
        "log without it."
    )


HELD_BACK_SCAN = 10_000
"""Records read past a partition's last stable offset when looking for held-back ones."""

HELD_BACK_GRACE_MS = 5_000
"""Added to the hub's longest transaction timeout (the coordinator aborts a transaction of the
hub's by then) for clock skew, before a held-back record is a finding."""


def held_back_what(offset: int) -> str:
    """The problem's text for a partition whose last stable offset holds back the hub's
    record at ``offset``."""
    return (
        "the partition's last stable offset stays here, below a record the hub wrote and "
        f"acknowledged (offset {offset}) longer than any transaction of the hub's can stay "
        "open: another producer's open transaction holds it back, so the projections and the "
        "ledger do not see the records past this offset. Deny that producer transactional "
        "writes (the broker's TransactionalId ACLs), lower the broker's "
        "transaction.max.timeout.ms, and run `hub ledger sync` once the transaction is gone."
    )
