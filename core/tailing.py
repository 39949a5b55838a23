"""Which records ``hub tail`` prints: exactly ``n`` of them, paged, never capped silently.

Offsets are not record counts (Kafka transaction markers take offsets too, and a topic has
several partitions), so ``n`` is counted in records:

- without a start offset: the last ``n`` records of the topic (or of one partition), across
  partitions ordered by broker timestamp, then partition and offset; each partition is read
  backwards in growing windows until it holds ``n`` records or its beginning is reached;
- with a start offset: the first ``n`` records from that offset, partition after partition (the
  offset applies to each), read in pages until ``n`` are printed or the end is reached.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from core.ports.eventlog import EventLog, StoredRecord

PAGE = 1000


def last_records(log: EventLog, topic: str, parts: Sequence[int], n: int) -> list[StoredRecord]:
    """The last ``n`` records of ``parts``, oldest first (timestamp, partition, offset)."""
    if n <= 0:
        return []
    ends = log.end_offsets(topic)
    starts = log.beginning_offsets(topic)
    found: list[StoredRecord] = []
    for p in parts:
        end, begin = ends.get(p, 0), starts.get(p, 0)
        window = n
        got: list[StoredRecord] = []
        while True:
            start = max(begin, end - window)
            got = list(_forward(log, topic, p, start, end))
            if len(got) >= n or start <= begin:
                break
            window *= 2
        found.extend(got[-n:])
    found.sort(key=lambda r: (r.timestamp_ms, r.partition, r.offset))
    return found[-n:]


def records_from(
    log: EventLog, topic: str, parts: Sequence[int], offset: int, n: int
) -> Iterator[StoredRecord]:
    """The first ``n`` records from ``offset`` in each of ``parts`` in turn."""
    left = n
    ends = log.end_offsets(topic)
    for p in parts:
        if left <= 0:
            return
        for rec in _forward(log, topic, p, offset, ends.get(p, 0)):
            yield rec
            left -= 1
            if left <= 0:
                return


def _forward(
    log: EventLog, topic: str, partition: int, start: int, end: int
) -> Iterator[StoredRecord]:
    """Every record of one partition in ``[start, end)``, read page by page."""
    pos = start
    while pos < end:
        page = log.read(topic, partition, pos, PAGE)
        if not page:
            return
        for rec in page:
            if rec.offset >= end:
                return
            yield rec
        pos = page[-1].offset + 1
