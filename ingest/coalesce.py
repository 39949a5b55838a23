"""Coalesced publishing: concurrent ``Publisher.publish`` calls for one topic, producer and
tenant are prepared as one batch and appended in one log append.

Small batches from many threads paid ``prepare``'s fixed cost each (the columnar plan, the
envelope, the registry look-up: ~3 ms a batch, 80 µs an event at 50 events against 17 µs at
500; docs/benchmarks/s13-groupcommit.md). A call queues its events, then waits (another thread
leads) or leads:

1. Queue the call; wait while another thread leads and this call is not settled.
2. Lead: take every queued call, in arrival order.
3. Prepare their events as one batch (``Publisher._prepare_batch``, the path that assumes every
   record is good). If that raises, prepare each call alone (``Publisher.prepare``): a bad
   record fails only its own call, with its own index and reason.
4. Append the calls' records in one ``EventLog.append`` (atomic: all of them or none) and hand
   each call the metadata of its own records. If that append is refused, append each call
   alone, so that one call's failure is not the others'; if it failed in a way that may have
   stored it (``Retryable``: a broker that did not answer in time), every call fails with that
   error, as it would have alone, so that nothing is stored twice.
5. Settle every call (each is answered once its records are durable), hand leadership on.

A lone call leads at once: one prepare, one append, as before coalescing. Records of one call
stay contiguous and in order; the calls of a group share the receipt time of records without
``occurred_at``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from core.errors import Retryable
from core.events import OutgoingEvent
from core.leadergroups import LeaderGroups
from core.ports.eventlog import ColumnBatch, Record, RecordMetadata

# A prepared batch: records, or the same records as columns (``EventLog.append_columns``).
Prepared = list[Record] | ColumnBatch
PrepareAll = Callable[[Sequence[OutgoingEvent]], Prepared]
PrepareOne = Callable[[Sequence[OutgoingEvent]], Prepared]
Append = Callable[[Prepared], Sequence[RecordMetadata]]


def _records(prepared: Prepared) -> list[Record]:
    return prepared.records() if isinstance(prepared, ColumnBatch) else prepared


def _slice(prepared: Prepared, at: int, n: int) -> Prepared:
    """Records ``at`` to ``at + n`` of a prepared batch, in the same form."""
    if not isinstance(prepared, ColumnBatch):
        return prepared[at : at + n]
    end = at + n
    return ColumnBatch(
        prepared.keys[at:end],
        prepared.values[at:end],
        prepared.header_names,
        tuple(c if isinstance(c, bytes) else c[at:end] for c in prepared.header_columns),
        prepared.timestamp_ms,
    )


class _Publish:
    __slots__ = ("error", "events", "metadata", "records", "settled")

    def __init__(self, events: Sequence[OutgoingEvent]) -> None:
        self.events = events
        self.records: Prepared | None = None
        self.metadata: Sequence[RecordMetadata] | None = None
        self.error: BaseException | None = None
        self.settled = False


class Coalescer:
    """Publishes of one (topic, producer, tenant) coalesced (steps 1-5 of the module docstring).

    ``calls`` counts the calls and ``appends`` the log appends that held them."""

    def __init__(self, prepare_all: PrepareAll, prepare_one: PrepareOne, append: Append) -> None:
        self._prepare_all = prepare_all
        self._prepare_one = prepare_one
        self._append = append
        self._groups: LeaderGroups[_Publish] = LeaderGroups()
        self.calls = 0
        self.appends = 0

    @property
    def busy(self) -> bool:
        """Whether a call is queued or being published."""
        return self._groups.busy

    def publish(self, events: Sequence[OutgoingEvent]) -> Sequence[RecordMetadata]:
        """Prepare and append ``events`` (with the calls queued beside them); their metadata,
        or this call's own error."""
        mine = _Publish(events)
        self._groups.submit(
            mine, self._run, lambda: RuntimeError("The coalesced publish was cut off.")
        )
        assert mine.metadata is not None
        return mine.metadata

    def _run(self, group: list[_Publish]) -> None:
        self.calls += len(group)
        if len(group) == 1:
            c = group[0]
            try:
                c.metadata = self._append(self._prepare_one(c.events))
                self.appends += 1
            except BaseException as exc:
                c.error = exc
            c.settled = True
            return
        together = self._prepare(group)  # 3.
        ready = [c for c in group if c.records is not None]
        if ready:
            try:  # 4.
                if together is None:
                    together = [r for c in ready for r in _records(c.records or [])]
                metas = self._append(together)
                self.appends += 1
            except Retryable as exc:
                # Maybe stored after all (a broker that did not answer in time): appending each
                # call again could store its records twice, so every call fails as it would
                # have alone, and its caller decides whether to retry.
                for c in ready:
                    c.error = exc
            except Exception:
                for c in ready:
                    self._append_alone(c)
            else:
                at = 0
                for c in ready:
                    n = len(c.records or ())
                    c.metadata, at = metas[at : at + n], at + n
        for c in group:
            c.settled = True

    def _prepare(self, group: list[_Publish]) -> Prepared | None:
        """Step 3; the whole group's batch when it was prepared as one (None: call by call)."""
        try:
            prepared = self._prepare_all([e for c in group for e in c.events])
        except Exception:
            for c in group:
                try:
                    c.records = self._prepare_one(c.events)
                except BaseException as exc:
                    c.error = exc
            return None
        if len(prepared) != sum(len(c.events) for c in group):
            raise AssertionError("prepare returned a record count other than the events'")
        at = 0  # each call's own records, for appending it alone if the group's is refused
        for c in group:
            n = len(c.events)
            c.records, at = _slice(prepared, at, n), at + n
        return prepared

    def _append_alone(self, c: _Publish) -> None:
        try:
            c.metadata = self._append(c.records or [])
            self.appends += 1
        except BaseException as exc:
            c.error = exc
            c.metadata = None
