"""The embedded log's transactions: one SQLite write transaction holding the write lock from start
to commit or abort; each staged append is atomic on its own (SAVEPOINT)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Protocol

from adapters.sqlite_log.batch import PreparedAppend
from adapters.sqlite_log.handoff import Noted, StoredHandoff
from core.errors import HubError, is_storage_full, storage_full
from core.ports.eventlog import (
    AppendedMetadata,
    AppendSignal,
    ColumnBatch,
    Record,
    RecordMetadata,
    TopicPartition,
    Transaction,
    metadata_list,
)


class TransactionHost(Protocol):
    """What a transaction uses of the log that opened it (``SqliteEventLog``): its writer
    connection and write lock, and the append steps it stages inside its own transaction."""

    _writer: sqlite3.Connection
    _lock: threading.Lock
    _appended: AppendSignal
    _handoff: StoredHandoff
    _txn_thread: int | None

    def _check_usable(self) -> None: ...
    def _acquire(self, doing: str) -> None: ...
    def _translate(self, exc: sqlite3.Error, doing: str) -> HubError: ...
    def _prepare(self, name: str, records: Sequence[Record]) -> PreparedAppend: ...
    def _prepare_columns(self, name: str, batch: ColumnBatch) -> PreparedAppend: ...
    def _store(
        self, conn: sqlite3.Connection, prepared: PreparedAppend, *, marker: bool
    ) -> AppendedMetadata: ...
    def _reseal(self, conn: sqlite3.Connection, tid: int, part: int) -> None: ...
    def _offset_rows(
        self, group: str, offsets: Mapping[TopicPartition, int]
    ) -> list[tuple[str, int, int, int]]: ...
    def _store_offsets(
        self, conn: sqlite3.Connection, rows: list[tuple[str, int, int, int]]
    ) -> None: ...


class SqliteTransaction(Transaction):
    """An open SQLite write transaction; each staged append is atomic on its own (SAVEPOINT)."""

    def __init__(self, log: TransactionHost, transactional_id: str) -> None:
        self._log = log
        self._id = transactional_id
        self._guard = threading.Lock()  # one staged write at a time on the shared connection
        self._state = "open"
        self._written: set[tuple[int, int]] = set()  # partitions that get a commit marker
        self._topics_written: set[str] = set()  # their topics (wakes their followers)
        self._noted: list[Noted | None] = []  # the stored rows (``handoff``)
        self._lost: HubError | None = None  # set once SQLite rolled the transaction back
        log._check_usable()
        log._acquire(f"beginning transaction {transactional_id!r}")
        try:
            log._writer.execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            log._lock.release()
            if isinstance(exc, sqlite3.Error):
                raise log._translate(exc, f"beginning transaction {transactional_id!r}") from exc
            raise
        log._txn_thread = threading.get_ident()

    @contextmanager
    def _staging(self, doing: str) -> Iterator[sqlite3.Connection]:
        with self._guard:
            if self._state != "open":
                raise HubError(
                    f"Transaction {self._id!r} is already {self._state}; start a new one.",
                    code="transaction_closed",
                )
            if self._lost is not None:
                raise self._lost
            conn = self._log._writer
            conn.execute("SAVEPOINT staged")
            try:
                yield conn
                conn.execute("RELEASE staged")
            except BaseException as exc:
                error = self._log._translate(exc, doing) if isinstance(exc, sqlite3.Error) else exc
                if conn.in_transaction:
                    conn.execute("ROLLBACK TO staged")
                    conn.execute("RELEASE staged")
                else:
                    # SQLite rolled the whole transaction back (SQLITE_FULL, an I/O error):
                    # what was staged before is gone, so nothing more may be staged (it would
                    # be written outside any transaction) and the commit fails.
                    lost = f"Transaction {self._id!r} was rolled back by SQLite after: {error}"
                    self._lost = (
                        storage_full(lost)
                        if is_storage_full(exc)
                        else HubError(lost, code="storage_error")
                    )
                if error is not exc:
                    raise error from exc
                raise

    @property
    def state(self) -> str:
        """``open``, ``committed`` or ``aborted``."""
        return self._state

    def append(self, topic: str, records: Sequence[Record]) -> list[RecordMetadata]:
        """Stage records; the returned offsets are final (the write lock is held)."""
        return metadata_list(self._stage(topic, self._log._prepare(topic, records)))

    def append_columns(self, topic: str, batch: ColumnBatch) -> Sequence[RecordMetadata]:
        """Stage ``batch`` as ``append(topic, batch.records())`` would, the same stored bytes,
        without the per-record objects (``SqliteEventLog._prepare_columns``); the answer is an
        ``AppendedMetadata`` (columns; records built when asked for)."""
        return self._stage(topic, self._log._prepare_columns(topic, batch))

    def _stage(self, topic: str, prepared: PreparedAppend) -> Sequence[RecordMetadata]:
        if not prepared.count:
            return []
        try:
            with self._staging(f"appending to {topic!r} in transaction {self._id!r}") as conn:
                metadata = self._log._store(conn, prepared, marker=False)
        finally:
            noted = self._log._handoff.take(prepared)
        self._noted.append(noted)  # handed on once committed (``handoff``)
        self._written.update((prepared.topic.id, g.partition) for g in prepared.groups)
        self._topics_written.add(prepared.topic.info.name)
        return metadata

    def commit_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        rows = self._log._offset_rows(group, offsets)
        with self._staging(f"committing offsets in transaction {self._id!r}") as conn:
            self._log._store_offsets(conn, rows)

    def commit(self) -> None:
        """Commit everything staged; a no-op once committed, an error once aborted."""
        self._end("COMMIT", "committed")

    def abort(self) -> None:
        """Discard everything staged; a no-op once ended."""
        if self._state == "open":
            self._end("ROLLBACK", "aborted")

    def _end(self, statement: str, state: str) -> None:
        with self._guard:
            if self._state == state:
                return
            if self._state != "open":
                raise HubError(
                    f"Transaction {self._id!r} is already {self._state}; it cannot be {state}.",
                    code="transaction_closed",
                )
            log = self._log
            try:
                if statement == "COMMIT" and self._lost is not None:
                    state = "aborted"
                    raise self._lost
                if statement == "COMMIT" and self._written:
                    # Kafka's commit marker takes one offset in each partition written.
                    log._writer.executemany(
                        "UPDATE partitions SET next_offset = next_offset + 1"
                        " WHERE topic_id = ? AND part = ?",
                        sorted(self._written),
                    )
                    for tid, part in sorted(self._written):
                        log._reseal(log._writer, tid, part)
                if statement == "COMMIT" or log._writer.in_transaction:
                    log._writer.execute(statement)  # (a ROLLBACK SQLite already did is done)
                if statement == "COMMIT" and self._written:
                    log._appended.bump(self._topics_written)
            except sqlite3.Error as exc:
                if log._writer.in_transaction:
                    log._writer.execute("ROLLBACK")
                state = "aborted"
                raise log._translate(exc, f"ending transaction {self._id!r}") from exc
            finally:
                self._state = state
                log._txn_thread = None
                log._lock.release()
        if statement == "COMMIT":  # outside the write lock: opening the batches inflates them
            log._handoff.hand(self._noted, marker=True)
        self._noted = []
