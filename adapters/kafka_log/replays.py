"""Replays on the Kafka log: a genuine record copied again into its own partition.

A record MAC (``auth``) binds the topic, partition, key, value, headers and timestamp, but not
the offset, which the broker assigns on append: anyone with produce access to the broker can
copy a genuine record, timestamp and MAC included, to a later offset of the same partition, and
it verifies there as the hub's own (on a data topic with its tenant). The embedded log's MAC
chain binds offsets and refuses such a copy. The hub never writes two records with one MAC
(each carries its own event id or idempotence marker), so a valid MAC seen twice in a partition
is a replay: ``hub ledger verify`` (step 5, ``KafkaEventLog.integrity_problems``) names the
first copy of each partition.
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
