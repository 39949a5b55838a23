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
partition. Since session 24 the hub's records carry a hub sequence under the MAC
(``sequence``): the readers skip a copy, and verify finds one by its writer's numbers
(``first_copy``: a number per writer instead of a MAC per record), the MACs kept only for
records written before sequences.

A record of a transaction the hub aborted is sealed too (its records reach the broker before
the abort marker hides them from ``read_committed`` readers). Anyone who may read the topic
``read_uncommitted`` and produce to it can copy one to the end of its partition, where it reads
as committed. The readers never saw the original, so when its writer wrote nothing later in
that partition the copy's number is above the writer's last: the readers take it (an event
the hub abandoned, made real). ``hub ledger verify`` scans the partitions ``read_uncommitted``
(aborted records included) and names the copy (``replay_what(..., aborted=True)``).

An open transaction of another producer: it pins the partition's last stable offset, so no
``read_committed`` reader sees the hub's records past it (``held_back_what``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice

from adapters.kafka_log.auth import MAC_HEADER, mac_valid
from adapters.kafka_log.sequence import (
    WRITER_BYTES,
    PartitionSequence,
    genuine_sequences,
    sequence_of,
)
from core.ports.eventlog import StoredRecord


def first_copy(
    key: bytes,
    scan: Callable[[], Iterable[StoredRecord]],
    committed: Callable[[int], bool] = lambda offset: True,
) -> tuple[int, bytes] | None:
    """The offset and MAC of the first copy in one partition (``scan()``: its records as
    stored, in offset order, aborted ones included when it reads ``read_uncommitted``), or
    None: a committed record (``committed(offset)``, asked of a copy only) whose genuine hub
    sequence (``sequence``) is not above its writer's last, or, for a record without one
    (written before sequences: the old rule), whose MAC repeats an earlier record's and is
    valid. Memory: per writer one number and the record that set it, one MAC per record
    without a sequence.

    MACs are checked only where a record falls behind its writer (the copy and the record
    that set the writer's number): a record with a forged sequence that raised a number
    makes the partition be read again with every MAC checked (``_first_copy_checked``)."""
    last: dict[bytes, tuple[int, StoredRecord]] = {}
    unsequenced: set[bytes] = set()
    for r in scan():
        seq = sequence_of(r)
        if seq is not None:
            writer, n = seq[:WRITER_BYTES], int.from_bytes(seq[WRITER_BYTES:], "big")
            got = last.get(writer)
            if got is None or n > got[0]:
                last[writer] = (n, r)
            elif mac_valid(key, r):  # else a forged record: readers take it as external
                if not mac_valid(key, got[1]):
                    return _first_copy_checked(key, scan(), committed)
                if committed(r.offset):  # an aborted copy is read by no one
                    return r.offset, r.headers[-1][1]
        elif r.headers and r.headers[-1][0] == MAC_HEADER:
            mac = r.headers[-1][1]
            if mac in unsequenced:
                if mac_valid(key, r) and committed(r.offset):
                    return r.offset, mac
            else:
                unsequenced.add(mac)
    return None


def _first_copy_checked(
    key: bytes,
    records: Iterable[StoredRecord],
    committed: Callable[[int], bool],
    chunk: int = 10_000,
) -> tuple[int, bytes] | None:
    """``first_copy`` with every record's MAC checked before its sequence counts (a chunk
    at a time), as the readers do."""
    state = PartitionSequence()
    unsequenced: set[bytes] = set()
    it = iter(records)
    while batch := list(islice(it, chunk)):
        for r, seq in zip(batch, genuine_sequences(key, batch), strict=True):
            if seq is not None:
                if not state.admit(r.offset, seq) and committed(r.offset):
                    return r.offset, r.headers[-1][1]
            elif r.headers and r.headers[-1][0] == MAC_HEADER and sequence_of(r) is None:
                mac = r.headers[-1][1]
                if mac in unsequenced:
                    if mac_valid(key, r) and committed(r.offset):
                        return r.offset, mac
                else:
                    unsequenced.add(mac)
    return None


def original_of(records: Iterable[StoredRecord], mac: bytes) -> int | None:
    """The offset of the first record of ``records`` whose MAC header is ``mac``."""
    for r in records:
        if r.headers and r.headers[-1][0] == MAC_HEADER and r.headers[-1][1] == mac:
            return r.offset
    return None


def replay_what(original: int | None, *, aborted: bool = False) -> str:
    """The problem's text for a copy of the record at ``original`` (None: no longer stored
    below it: retention cut it, or only the writer's numbers tell); ``aborted``: the original
    is a record of a transaction the hub aborted (never committed, never read)."""
    if aborted:
        return (
            f"this record carries the same valid hub MAC as the record at offset {original}, "
            "which is of a transaction the hub aborted (never committed): a record the hub "
            "abandoned was copied into its partition by someone with produce access to the "
            "broker (read read_uncommitted), and the hub's readers took the copy for an event "
            "of the hub's (they never read the aborted original to compare it with). Revoke "
            "that producer's access (the broker's ACLs), then rebuild the projections that "
            "read the topic from a copy of the log without it."
        )
    first = (
        f"the same valid hub MAC as the record at offset {original}"
        if original is not None
        else "a hub sequence its writer had already used in this partition (the original is "
        "no longer stored: retention cut it)"
    )
    return (
        f"this record carries {first}: a genuine record was copied again into its partition (a "
        "replay by someone with produce access to the broker, which the record MAC cannot tell "
        "from the original); the hub's readers skip it (records written before hub sequences: "
        "readers took the copy for a second event of the hub's). Revoke that producer's access "
        "(the broker's ACLs), then rebuild the projections that read the topic from a copy of "
        "the log without it if it predates sequences."
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
