"""Group commit for the embedded log: appends from concurrent threads share one SQLite write
transaction and one fsync.

An appender queues its prepared batch, then either waits (another thread leads a commit) or
leads: it takes every batch queued so far and stores them, in queue order, in one transaction.

1. Queue the prepared batch; wait while another thread leads and this batch is not settled.
2. Lead: take the whole queue (this batch included), then the log's write lock
   (``BEGIN IMMEDIATE``).
3. Store each batch in queue order, each under its own SAVEPOINT when the group holds more than
   one: a batch that fails (an out-of-order idempotent sequence, a SQLite error) is rolled back
   alone and fails only its own caller, with its own error; the others' offsets stay dense.
4. ``COMMIT`` once (one fsync with ``synchronous=FULL``). Only then is any caller answered:
   each caller returns once its records are durable. A failed ``COMMIT`` fails every caller of
   the group with that error (nothing of the group was stored).
5. Wake the topics' followers once, hand leadership to the next waiter.

A lone appender leads at once: no wait, no SAVEPOINT, the same statements as before.
"""

from __future__ import annotations

import copy
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

from adapters.sqlite_log.batch import PreparedAppend
from core.errors import HubError
from core.leadergroups import LeaderGroups
from core.ports.eventlog import AppendSignal, IdempotenceKey, RecordMetadata


class GroupHost(Protocol):
    """What a group commit uses of its log (``SqliteEventLog``)."""

    _writer: sqlite3.Connection
    _lock: threading.Lock
    _appended: AppendSignal

    def _check_usable(self) -> None: ...
    def _acquire(self, doing: str) -> None: ...
    def _translate(self, exc: sqlite3.Error, doing: str) -> HubError: ...
    def _store(
        self, conn: sqlite3.Connection, prepared: PreparedAppend, *, marker: bool
    ) -> Sequence[RecordMetadata]: ...
    def _store_idempotent(
        self, conn: sqlite3.Connection, prepared: PreparedAppend, key: IdempotenceKey
    ) -> Sequence[RecordMetadata]: ...


class _Pending:
    __slots__ = ("error", "idempotence", "metadata", "prepared", "settled")

    def __init__(self, prepared: PreparedAppend, idempotence: IdempotenceKey | None) -> None:
        self.prepared = prepared
        self.idempotence = idempotence
        self.metadata: Sequence[RecordMetadata] | None = None
        self.error: BaseException | None = None
        self.settled = False


class GroupCommit:
    """Commits the appends of concurrent threads together (steps 1-5 of the module docstring).

    ``commits`` counts the transactions that committed and ``appends`` the appends they held
    (``appends / commits`` is the mean group size)."""

    def __init__(self, host: GroupHost) -> None:
        self._host = host
        self._groups: LeaderGroups[_Pending] = LeaderGroups()
        self.commits = 0
        self.appends = 0

    def append(
        self, prepared: PreparedAppend, idempotence: IdempotenceKey | None
    ) -> Sequence[RecordMetadata]:
        """Store ``prepared`` durably (with the appends queued beside it); its metadata, or
        its own error."""
        mine = _Pending(prepared, idempotence)
        self._groups.submit(
            mine, self._commit, lambda: HubError("The group commit was interrupted.")
        )
        assert mine.metadata is not None
        return mine.metadata

    def _commit(self, group: list[_Pending]) -> None:
        host = self._host
        if len(group) == 1:  # the lone appender (one request's decision): no set, no sort
            doing = f"appending to topic {group[0].prepared.topic.info.name!r}"
        else:
            topics = sorted({p.prepared.topic.info.name for p in group})
            doing = (
                f"appending to topic {topics[0]!r}"
                if len(topics) == 1
                else (f"appending to topics {', '.join(map(repr, topics))}")
            )
        try:
            host._check_usable()
            host._acquire(doing)
        except BaseException as exc:
            _fail(group, exc)
            return
        try:
            conn = host._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                _fail(group, host._translate(exc, doing))
                return
            try:
                if len(group) == 1:
                    p = group[0]
                    p.metadata = self._store(conn, p)
                else:
                    for p in group:  # 3.
                        with _savepoint(conn, p, host._translate, doing):
                            p.metadata = self._store(conn, p)
                conn.execute("COMMIT")  # 4.
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    exc = host._translate(exc, doing)
                _fail(group, exc)
                return
            self.commits += 1
            self.appends += len(group)
            stored = {p.prepared.topic.info.name for p in group if p.error is None}
            for p in group:
                p.settled = True
            host._appended.bump(stored)  # 5.
        finally:
            host._lock.release()

    def _store(self, conn: sqlite3.Connection, p: _Pending) -> Sequence[RecordMetadata]:
        if p.idempotence is None:
            return self._host._store(conn, p.prepared, marker=p.prepared.transactional)
        return self._host._store_idempotent(conn, p.prepared, p.idempotence)


@contextmanager
def _savepoint(
    conn: sqlite3.Connection,
    p: _Pending,
    translate: Callable[[sqlite3.Error, str], HubError],
    doing: str,
) -> Iterator[None]:
    """One batch of a group: its failure rolls back only its own writes and becomes its
    caller's error; the group goes on."""
    conn.execute("SAVEPOINT grouped")
    try:
        yield
    except Exception as exc:
        if not conn.in_transaction:  # SQLite rolled the whole group back (SQLITE_FULL, ...)
            raise  # every batch of the group fails with this error (the caller's handler)
        conn.execute("ROLLBACK TO grouped")
        conn.execute("RELEASE grouped")
        p.error = translate(exc, doing) if isinstance(exc, sqlite3.Error) else exc
        p.metadata = None
        return
    conn.execute("RELEASE grouped")


def _fail(group: list[_Pending], exc: BaseException) -> None:
    """Every caller of a group that did not commit gets the error, each its own copy (one
    exception object raised in several threads would share one traceback)."""
    for i, p in enumerate(group):
        p.error = exc if i == 0 else _copy(exc)
        p.metadata = None
        p.settled = True


def _copy(exc: BaseException) -> BaseException:
    try:
        twin = copy.copy(exc)
    except Exception:
        return exc
    twin.__cause__ = exc.__cause__
    return twin
