"""Group commit per topic for ingest: batches of one topic that arrive while another commits
share the next log transaction (one fsync for all of them).

A caller converts, validates and encodes its batch first (outside any lock), then hands a
``decide`` function to :meth:`TopicCommitter.commit`:

1. Queue ``decide``; wait while another thread leads and this batch is not settled.
2. Lead: hold the topic's dedupe section (``IngestPipeline.deduping``), then take the queued
   batches of the first one's source (the log transaction is named after it), in arrival order;
   batches of other sources wait for the next round.
3. Decide each batch in arrival order: ``decide(prior)`` reads the dedupe windows and ``prior``,
   the keys the group's earlier batches are storing, so a key is stored once and every batch
   gets the outcome (accepted / duplicate / quarantined) it would get committed alone in this
   order. ``decide`` returns the records to append (a :class:`Staged`).
4. Append every batch's records in ONE log transaction and commit it (``IngestPipeline._commit``),
   with each batch's companions (``Companion``: an HTTP request's policy decision).
5. After the commit, in arrival order, ``Staged.finish`` adds each batch's keys to the windows and
   builds its result; only then is any caller answered: each once its batch is durable.
6. If the group's transaction is refused, nothing of it was stored and no window changed: each
   batch is decided again and committed alone, in order, so a failing batch fails only its caller
   (with its own error) and the others' duplicates are judged against what was really stored.
   A ``Retryable`` failure (it may have been stored after all) fails every batch of the group
   with that error instead, as each would have failed alone.
7. Release the section, hand leadership to the next waiter.

A lone batch leads at once: one decide, one transaction, as before grouping.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from core.errors import HubError, Retryable
from core.ports.eventlog import ColumnBatch, Record, RecordMetadata

R = TypeVar("R")

# Keys earlier batches of a group are storing, per dedupe scope (a tenant's event ids,
# ``Deduper.id_scope``, or a ``unique`` rule's keys in a tenant, ``Deduper.scope``).
Prior = Mapping[str, set[str]]
Outcomes = Callable[[Sequence[RecordMetadata], Sequence[RecordMetadata]], list[tuple[str, Record]]]


class Companion(Protocol):
    """Records another party stores in the transaction of a caller's batch (the policy decision
    that allowed an HTTP request's batch, ``governance.decisions.HeldDecision``).

    ``IngestPipeline._commit`` appends ``batch`` to ``topic`` in the batch's transaction while
    ``pending``, and calls ``stored()`` once that transaction is committed (durable): only then
    does ``pending`` turn False. A companion whose transaction failed stays pending; its owner
    then stores it on its own. A batch decided again (step 6) takes its companions again."""

    @property
    def topic(self) -> str:
        """The topic ``batch`` goes to."""

    @property
    def batch(self) -> Sequence[Record] | ColumnBatch:
        """The records, as ``append`` or ``append_columns`` takes them."""

    @property
    def pending(self) -> bool:
        """True until ``stored`` is called."""

    def stored(self) -> None:
        """Called once the transaction holding ``batch`` is committed."""


@dataclass
class Staged(Generic[R]):
    """One decided batch: what to append, the keys it stores, and what to do once committed.

    ``finish`` gets the accepted records' metadata and returns the caller's result; it adds the
    batch's keys to the dedupe windows. ``release`` is called instead when the batch is not
    written (its transaction failed; a group retried one by one decides it again): it frees
    what ``decide`` reserved (the tenant quotas' bytes)."""

    accepted: Sequence[Record] | ColumnBatch
    quarantined: Sequence[Record]
    position: Mapping[str, Any] | None
    consumed: int | None
    done: bool
    outcomes: Outcomes | None
    keys: Mapping[str, Sequence[str]]
    finish: Callable[[Sequence[RecordMetadata]], R]
    release: Callable[[], None] = lambda: None
    companions: Sequence[Companion] = ()  # stored in the batch's transaction (``Companion``)


Decide = Callable[[Prior], Staged[Any]]
CommitGroup = Callable[[str, Sequence[Staged[Any]]], list[Sequence[RecordMetadata]]]


@dataclass
class _Batch:
    source: str
    decide: Decide
    companions: Sequence[Companion] = ()
    result: Any = None
    error: BaseException | None = None
    settled: bool = False


class TopicCommitter:
    """Group commit of one topic's ingest batches (steps 1-7 of the module docstring).

    ``section`` is the topic's dedupe section; ``commit_group(source, staged)`` appends the
    batches in one transaction and returns each one's accepted metadata. ``commits`` counts the
    transactions committed and ``batches`` the batches they held."""

    def __init__(
        self, section: Callable[[], AbstractContextManager[None]], commit_group: CommitGroup
    ) -> None:
        self.section = section
        self.commit_group = commit_group
        self._cv = threading.Condition(threading.Lock())
        self._queue: list[_Batch] = []
        self._leading = False
        self.commits = 0
        self.batches = 0

    def commit(self, source: str, decide: Decide, companions: Sequence[Companion] = ()) -> Any:
        """Decide and commit one batch (with those queued beside it); its result, or its own
        error. ``companions`` are stored in the transaction that stores the batch."""
        mine = _Batch(source, decide, companions)
        with self._cv:  # 1.
            self._queue.append(mine)
            while self._leading and not mine.settled:
                self._cv.wait()
            lead = not mine.settled
            if lead:
                self._leading = True
        if lead:
            try:
                while not mine.settled:  # this batch may wait behind another source's run
                    group: list[_Batch] = []
                    try:
                        with self.section():
                            with self._cv:  # 2. (batches queued while the section was busy too)
                                first = self._queue[0].source
                                group = [p for p in self._queue if p.source == first]
                                self._queue = [p for p in self._queue if p.source != first]
                            self._run(group)
                    finally:
                        with self._cv:
                            for p in group:
                                if not p.settled:  # only when _run itself was interrupted
                                    p.error = p.error or HubError("The group commit was cut off.")
                                    p.settled = True
                            self._cv.notify_all()
            finally:
                with self._cv:  # 7.
                    self._leading = False
                    self._cv.notify_all()
        if mine.error is not None:
            raise mine.error
        return mine.result

    def _run(self, group: list[_Batch]) -> None:
        source = group[0].source
        prior: dict[str, set[str]] = {}
        staged: list[tuple[_Batch, Staged[Any]]] = []
        for p in group:  # 3.
            try:
                s = p.decide(prior)
            except BaseException as exc:
                _settle(p, error=exc)
                continue
            s.companions = p.companions
            staged.append((p, s))
            for scope, keys in s.keys.items():
                prior.setdefault(scope, set()).update(keys)
        if not staged:
            return
        try:
            metas = self.commit_group(source, [s for _, s in staged])  # 4.
        except BaseException as exc:
            for _, s in staged:  # not written (a Retryable's maybe: counted at the next start)
                s.release()
            if not isinstance(exc, Exception):
                raise
            if len(staged) == 1 or isinstance(exc, Retryable):
                # Retryable: the transaction may have committed after all (a broker that did not
                # answer in time); deciding and committing each batch again could store its
                # records twice, so each fails as it would have alone.
                for p, _ in staged:
                    _settle(p, error=exc)
                return
            for p, _ in staged:  # 6. one by one, each decided again
                self._alone(p)
            return
        self.commits += 1
        self.batches += len(staged)
        for (p, s), m in zip(staged, metas, strict=True):  # 5.
            try:
                _settle(p, result=s.finish(m))
            except BaseException as exc:
                _settle(p, error=exc)

    def _alone(self, p: _Batch) -> None:
        try:
            s = p.decide({})
            s.companions = p.companions
            try:
                (m,) = self.commit_group(p.source, [s])
            except BaseException:
                s.release()
                raise
            self.commits += 1
            self.batches += 1
            _settle(p, result=s.finish(m))
        except BaseException as exc:
            _settle(p, error=exc)


def _settle(p: _Batch, *, result: Any = None, error: BaseException | None = None) -> None:
    p.result, p.error, p.settled = result, error, True
