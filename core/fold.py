"""Folding a topic into memory: every service that keeps state as events (rules, registry, config
and policy changes, retention and legal holds, positions, API keys, cases, lineage) follows its
topic through one ``TopicFold``.

A ``TopicFold`` remembers, per partition, the next offset to apply. ``catch_up()``:
    1. asks the log for the topic's end offsets (a topic that does not exist yet has nothing to
       fold: no error, and it is folded from offset 0 once it exists);
    2. per partition, reads from the remembered offset to the end offset seen in step 1, in
       batches, checks each batch read against the log's own authentication
       (``EventLog.check_records``: the embedded log's MAC chain, which plain reads skip), and
       hands each record to ``apply`` in offset order (an empty read is tried once more, then
       the partition waits for the next call: only commit markers were left, or a Kafka read
       came back early). Such a partition remembers the end offset it stopped short of, and
       later calls skip its reads while the log still answers that end offset, for at most
       ``recheck_after`` seconds: on Kafka a transactional append ends in a commit marker, so
       without this every catch-up of a state topic read twice and got nothing. A record
       becomes readable only with a new end offset (its own, or the marker that commits it),
       so step 1 still sees it at once; the time bound retries a read that came back early
       (right after a broker restart) although records were there;
    3. moves the partition's position past each record right after ``apply`` returns, so a
       record is applied once: an ``apply`` that raises leaves the position on that record, the
       error reaches the caller, and the next ``catch_up`` retries it.
With ``once_by`` (a header name, the envelope's ``ce_id``), a record whose id an earlier record
of the topic carried is skipped: on Kafka anyone with produce access can copy a genuine,
correctly sealed record into the same partition again (its MAC cannot bind an offset the
broker has not given yet), and a replayed "policy activated" or "key created" event would roll
the folded state back. State topics (policies, config changes, keys, holds, models, rules,
cases) fold with it; high-volume topics (positions, lineage, stats) do not keep the ids.
Records below a partition's beginning offset (removed by retention) are skipped: the log reads
from its beginning. Partitions added later are folded from offset 0.

Thread-safety: steps 1-2 (the log's round trips) run under the fold's own read lock, not the
fold's lock; step 3 runs under the fold's lock (an ``RLock``, which the owner may pass in and
hold too, so that its queries never see a half-applied record), applying the records read so
far, by whichever caller, that lie at or past each partition's position (idempotent by offset:
a record is applied once, in offset order). So a caller that does not hold the lock reads
without blocking the owner's queries; one that holds it reads as before. The read lock is
never held while waiting for the fold's lock. Reads are shared: ``catch_up(ticket)`` with a
``ticket()`` taken when the caller arrived skips steps 1-2 when a read begun after that
arrival has ended meanwhile (it saw every record the caller's own would have), and only
applies. A call made from inside ``apply`` on the same thread (the registry parses a schema
whose references read the registry again) returns ``False`` at once instead of applying the
same records twice.

Watched catch-ups (``watch_s`` > 0, ``catch_up(recent=True)``): step 1's round trip is skipped
when the log can tell that nothing new is there: no write to the topic through this log object
since the last step 1 began (``append_generation``), the log's watcher of the topic has learnt
of no record committed at or past the positions read (``EventLog.tail_quiet``: on Kafka a kept
consumer whose waiting fetch the broker answers when a record commits, so another process's
record is learnt of about one round trip after its commit), and that step 1 began less than
``watch_s`` seconds ago. So a record another process committed at time T is applied by every
watched catch-up that begins after T + ``watch_s`` whatever the watcher does (a broker restart,
a stalled fetch), and usually by those beginning a round trip after T; this process's own
writes are seen at once. Without ``recent`` (every caller but the write path's schema lookup),
step 1 asks the log as before. A watched catch-up that skips step 1 shares nothing with ticket
holders (only a read that asked the log ends one).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from core.errors import InvalidInput, TopicNotFound
from core.ports.eventlog import EventLog, StoredRecord


class SharedCatchUps:
    """Catch-ups shared by concurrent callers of one fold behind one lock.

    A caller takes a ``ticket`` when it arrives (before its wait for the lock) and calls ``run``
    under the lock: when a whole catch-up that BEGAN after it arrived has ended meanwhile, it
    returns without asking the log again. That catch-up read the end offsets after the caller
    arrived, so what it folded is as fresh as the caller's own catch-up would be (another
    instance's write or a key revoked before the request arrived is seen): only the round trip
    (a ListOffsets on Kafka, under the lock, one after another) is saved. A nested call (a fold's
    reader calling back) always catches up and reads no ends of its own."""

    def __init__(self) -> None:
        self._begun = 0  # catch-ups begun
        self._covered = 0  # the number of the last one that ended (returned)
        self._depth = 0

    def ticket(self) -> int:
        """The number of catch-ups begun so far (an int read: atomic, no lock needed)."""
        return self._begun

    def run(self, ticket: int, catch_up: Callable[[], object]) -> None:
        """Under the caller's lock: ``catch_up()`` unless one begun after ``ticket`` ended."""
        if self._depth or self._covered <= ticket:
            self._depth += 1
            self._begun += 1
            number = self._begun
            try:
                catch_up()
            finally:
                self._depth -= 1
            if not self._depth:  # a nested call read no ends of its own
                self._covered = number  # only reached when catch_up returned


class RecordDecoder(Protocol):
    """Decodes a stored record into a JSON-ready dict (``ingest.publish.EventReader`` does)."""

    def decode(self, rec: StoredRecord) -> dict[str, Any]: ...


class TopicFold:
    """Applies every record of one topic once, in offset order per partition (see the module
    docstring for the steps)."""

    def __init__(
        self,
        log: EventLog,
        topic: str,
        apply: Callable[[StoredRecord], None],
        *,
        batch: int = 1000,
        lock: threading.RLock | None = None,
        once_by: str | None = None,
        recheck_after: float = 1.0,
        watch_s: float = 0.0,
    ) -> None:
        if type(batch) is not int or batch < 1:
            raise InvalidInput(f"batch={batch!r} is invalid: pass an int >= 1.")
        if type(recheck_after) not in (int, float) or not 0 <= recheck_after <= 60:
            raise InvalidInput(
                f"recheck_after={recheck_after!r} is invalid: pass seconds between 0 and 60."
            )
        if type(watch_s) not in (int, float) or not 0 <= watch_s <= 60:
            raise InvalidInput(f"watch_s={watch_s!r} is invalid: pass seconds between 0 and 60.")
        self.topic = topic
        self._log = log
        self._apply = apply
        self._batch = batch
        self._positions: dict[int, int] = {}
        self._lock = lock if lock is not None else threading.RLock()
        # steps 1-2 (see the module): held for the log's round trips, never while waiting for
        # ``_lock``; guards ``_fetched``, ``_stalled``, ``_begun``, ``_covered``
        self._read_lock = threading.Lock()
        self._fetched: dict[int, int] = {}  # per partition, the next offset to read
        # per partition, records read and not yet applied, in offset order (``_handoff``)
        self._pending: dict[int, list[StoredRecord]] = {}
        self._handoff = threading.Lock()
        self._begun = 0  # reads (steps 1-2) begun
        self._covered = 0  # the number of the last read that ended (returned)
        self._applying: int | None = None  # the thread applying records (step 3), if any
        self._once_by = once_by
        self._seen: set[bytes] = set()
        self._recheck_after = float(recheck_after)
        # per partition: (end offset, position, monotonic time) of the last catch-up that
        # read nothing between position and end offset (step 2's empty reads)
        self._stalled: dict[int, tuple[int, int, float]] = {}
        # watched catch-ups (the module's last paragraph): (monotonic time, append generation,
        # partitions) taken when the last step 1 that returned began; None: none yet
        self._watch_s = float(watch_s)
        self._asked: tuple[float, int, tuple[int, ...]] | None = None

    @property
    def lock(self) -> threading.RLock:
        """The lock ``catch_up`` holds: hold it to read the folded state consistently."""
        return self._lock

    @property
    def positions(self) -> dict[int, int]:
        """Per partition, the next offset to apply (partitions never read are absent)."""
        with self._lock:
            return dict(self._positions)

    def ticket(self) -> int:
        """The number of reads begun so far, for ``catch_up(ticket)`` (an int read: atomic)."""
        return self._begun

    def catch_up(self, ticket: int | None = None, *, recent: bool = False) -> bool:
        """Apply what was appended since the last call; True when any record was applied.

        ``ticket`` (``ticket()`` when the caller arrived): the log is not asked again when a
        read begun after it has ended; the records it read are applied all the same.
        ``recent``: a watched catch-up (the module's last paragraph; no effect without
        ``watch_s``)."""
        if self._applying == threading.get_ident():
            return False  # re-entered from ``apply``: the outer call is folding already
        self._read(ticket, recent)
        with self._lock:
            return self._apply_read()

    def _read(self, ticket: int | None, recent: bool = False) -> None:
        """Steps 1-2 under the read lock: read past what was read so far, into ``_pending``."""
        if ticket is not None and self._covered > ticket:
            return  # shared: a whole read begun after the caller arrived has ended
        with self._read_lock:
            if ticket is not None and self._covered > ticket:
                return
            if recent and self._quiet():
                return  # watched: nothing new as far as the log can tell (see the module)
            self._begun += 1
            number = self._begun
            self._asked = None  # until this read returns
            asked = time.monotonic(), self._log.append_generation([self.topic])
            try:
                ends = self._log.end_offsets(self.topic)  # 1.
            except TopicNotFound:
                ends = {}
            self._read_to(ends)
            if ends:
                self._asked = (*asked, tuple(sorted(ends)))
            self._covered = number  # only reached when every read returned

    def _quiet(self) -> bool:
        """Under the read lock: whether a watched catch-up may skip steps 1-2 (the module's
        last paragraph): the last step 1 began less than ``watch_s`` ago, nothing was written
        to the topic through this log since, and the log's watcher saw nothing committed at
        or past the positions read."""
        asked = self._asked
        if asked is None or not self._watch_s:
            return False
        began, generation, parts = asked
        if time.monotonic() - began >= self._watch_s:
            return False
        if self._log.append_generation([self.topic]) != generation:
            return False
        return self._log.tail_quiet(self.topic, {p: self._fetched.get(p, 0) for p in parts})

    def _read_to(self, ends: Mapping[int, int]) -> None:
        for part in sorted(ends):
            end = ends[part]
            pos = self._fetched.get(part, 0)
            stalled = self._stalled.get(part)
            if (
                stalled is not None
                and stalled[:2] == (end, pos)
                and time.monotonic() - stalled[2] < self._recheck_after
            ):
                continue  # nothing readable below an end offset that has not moved
            while pos < end:  # 2.
                chunk = self._log.read(self.topic, part, pos, min(self._batch, end - pos))
                if not chunk:
                    # Only commit markers may be left, or the read came back early (a Kafka
                    # consumer right after a broker restart): read once more, as ``scan`` does;
                    # still nothing: stop here, the next call starts from this position again.
                    chunk = self._log.read(self.topic, part, pos, min(self._batch, end - pos))
                    if not chunk:
                        self._stalled[part] = (end, pos, time.monotonic())
                        break
                # 2a. state folds into what decides access (keys, policies, schemas, config):
                # plain reads skip the log's MAC chain, so a batch re-encoded in the log file
                # with a fresh CRC would be applied; check it before applying (LogTampered)
                self._log.check_records(self.topic, part, pos, chunk[-1].offset + 1)
                with self._handoff:
                    self._pending.setdefault(part, []).extend(chunk)
                pos = self._fetched[part] = chunk[-1].offset + 1

    def _apply_read(self) -> bool:
        """Step 3 under the lock: apply the records read (by any caller) at or past each
        partition's position, in offset order; those not applied (``apply`` raised) stay
        pending, first, for the next call."""
        with self._handoff:
            taken, self._pending = self._pending, {}
        moved = False
        self._applying = threading.get_ident()
        try:
            for part in sorted(taken):
                records = taken[part]
                for i, rec in enumerate(records):
                    if rec.offset >= self._positions.get(part, 0):
                        rid = None if self._once_by is None else self._id(rec)
                        if rid is None or rid not in self._seen:
                            try:
                                self._apply(rec)
                            except BaseException:
                                taken[part] = records[i:]
                                raise
                            if rid is not None:  # only once applied: a raising apply is retried
                                self._seen.add(rid)
                        self._positions[part] = rec.offset + 1  # 3.
                        moved = True
                taken[part] = []
        finally:
            self._applying = None
            left = {part: records for part, records in taken.items() if records}
            if left:  # ``apply`` raised: its record and those after it go back, first
                with self._handoff:
                    for part, records in left.items():
                        self._pending[part] = records + self._pending.get(part, [])
        return moved

    def _id(self, rec: StoredRecord) -> bytes | None:
        """``rec``'s id header (``once_by``), None without one (no replay of an identified
        event: applied as before)."""
        ids = [v for k, v in rec.headers if k == self._once_by]
        return bytes(ids[-1]) if ids and ids[-1] is not None else None


def decoded(
    reader: RecordDecoder, apply: Callable[[dict[str, Any]], None]
) -> Callable[[StoredRecord], None]:
    """An ``apply`` for ``TopicFold`` that hands ``apply`` the decoded record (``headers``,
    ``value``, ``offset`` ...) instead of the stored bytes."""

    def apply_decoded(rec: StoredRecord) -> None:
        apply(reader.decode(rec))

    return apply_decoded
