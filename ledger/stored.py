"""The stored batches this process's log appends handed over (``EventLog.on_stored``) that the
ledger has not passed yet: ``Ledger.sync`` hashes them instead of reading them back.

Bounded: at most ``limit`` records are kept; past it the oldest of the partition go (they are
read back from the log, as every batch another process appended is). Entries the sync passes
are dropped as it passes them. Thread-safe: appenders add, the syncing thread takes.
"""

from __future__ import annotations

import threading
from bisect import insort
from collections.abc import Callable
from dataclasses import dataclass, field

from core.ports.eventlog import EncodedColumns


@dataclass(order=True, slots=True)
class _Entry:
    base: int
    end: int  # one past the last record
    reach: int  # ``end``, or ``end + 1`` when a transaction marker follows
    open: Callable[[], EncodedColumns] = field(compare=False)
    enc: EncodedColumns | None = field(default=None, compare=False)

    def opened(self) -> EncodedColumns:
        """The batches, opened once (by the syncing thread: a dropped entry is never opened)."""
        if self.enc is None:
            self.enc = self.open()
        return self.enc


class StoredBatches:
    """Handed stored batches by (topic, partition), in offset order."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._by: dict[tuple[str, int], list[_Entry]] = {}
        self._count = 0
        self._lock = threading.Lock()

    def add(
        self,
        topic: str,
        part: int,
        first: int,
        end: int,
        reach: int,
        open_: Callable[[], EncodedColumns],
    ) -> None:
        """``EventLog.on_stored``'s receiver."""
        if end <= first:
            return
        entry = _Entry(first, end, reach, open_)
        n = end - first
        with self._lock:
            entries = self._by.setdefault((topic, part), [])
            if not entries or entries[-1].base < first:
                entries.append(entry)
            else:  # group-committed appenders may hand out of order
                insort(entries, entry)
            self._count += n
            while self._count > self._limit and entries:
                old = entries.pop(0)
                self._count -= old.end - old.base
            if self._count > self._limit:  # other partitions hold the rest: start afresh
                self._by.clear()
                self._count = 0

    def clear(self) -> None:
        with self._lock:
            self._by.clear()
            self._count = 0

    def __len__(self) -> int:
        return self._count

    def at(self, topic: str, part: int, pos: int) -> EncodedColumns | None:
        """The handed records that a log read from ``pos`` would return first: those from
        ``pos`` on of the entry holding it, or the entry right after the transaction marker at
        ``pos``; None when no handed entry is there (read the log). Entries wholly below
        ``pos`` are dropped."""
        with self._lock:
            entries = self._by.get((topic, part))
            if not entries:
                return None
            k = 0
            while k < len(entries) and entries[k].reach <= pos:
                self._count -= entries[k].end - entries[k].base
                k += 1
            if k:
                del entries[:k]
            if not entries:
                return None
            e = entries[0]
            # only a transaction marker lies between (offsets come from one writer's lock)
            if pos == e.end == e.reach - 1 and len(entries) > 1 and entries[1].base == e.reach:
                e, pos = entries[1], e.reach
            if not e.base <= pos < e.end:
                return None
        enc = e.opened()  # outside the lock: appenders add meanwhile
        return enc if pos == e.base else enc.slice(pos - e.base, e.end - e.base)

    def marker_only(self, topic: str, part: int, pos: int, end: int) -> bool:
        """Whether a handed entry ends at ``pos`` and is followed by its transaction marker
        up to ``end`` or beyond: then ``[pos, end)`` holds no record (no read needed)."""
        with self._lock:
            for e in self._by.get((topic, part), ()):
                if e.end == pos:
                    return e.reach > pos and end <= e.reach
                if e.base > pos:
                    break
        return False

    def next_base(self, topic: str, part: int, pos: int) -> int | None:
        """Where the first handed entry above ``pos`` begins (None: none is): a log read from
        ``pos`` need not go past it."""
        with self._lock:
            for e in self._by.get((topic, part), ()):
                if e.base > pos:
                    return e.base
        return None
