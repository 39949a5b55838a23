"""PostgresLedgerStore: the LedgerStore port (``core.ports.ledgerstore``) in PostgreSQL.

The distributed footprint's ledger (``HUB_LEDGER_STORE=postgres``, ``HUB_LEDGER_POSTGRES_URL``):
several hub processes on several machines share one ledger. The tables live in their own
PostgreSQL schema (``HUB_LEDGER_POSTGRES_SCHEMA``, default ``hub_ledger``), so hubs can share a
database; they mirror the SQLite adapter's (``adapters.sqlite_ledgerstore``): ``leaves``,
``nodes`` (chunks of 256 node hashes per level), ``positions``, ``checkpoints`` and ``meta``
(schema version).

Writes: :meth:`PostgresLedgerStore.write` is one transaction that first takes a
transaction-scoped advisory lock named after the schema (``pg_advisory_xact_lock``), so two
writers, in one process or on two machines, serialize like SQLite's ``BEGIN IMMEDIATE``; the
second re-reads the state after the first committed (READ COMMITTED: each statement sees what
was committed before it). A writer waiting longer than ``lock_timeout_s`` gets ``StorageBusy``.
A writer that stops inside its transaction (a paused or hung process) would hold the lock for
ever: the store's sessions set ``idle_in_transaction_session_timeout`` (``idle_timeout_s``,
``HUB_LEDGER_POSTGRES_IDLE_TIMEOUT_S``, default 60 s), so PostgreSQL ends such a session,
rolling its transaction back and freeing the lock; correctness stays with the epoch fencing
(``fence``), the timeout only bounds the wait.
Leaves go in with ``COPY``; chunks are upserted. Readers run outside any transaction and see
committed state only.

The rows' MAC, as the SQLite row store's (``adapters.sqlite_ledgerstore``): whoever can write
these tables (a database role, a restored dump) rewrites a row's tenant, action, actor or time
and the entry drops out of filtered reads while leaf hashes, tree and checkpoints stay as they
were. Each appended batch carries, in ``leaf_macs``, ``rows_mac`` under ``side_key`` (from the
hub's ``keys/``, never from the database); ``integrity_problems`` (the default verify) checks
every batch and that they cover every leaf. Rows written before the MAC are keyed as found on
the first keyed open, once: ``keyed_marker`` (a file in ``keys/``) records it, so a schema whose
MACs were all removed fails instead of being keyed again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from adapters.postgres_conn import connect, create_schema, libpq_url, lock_key
from adapters.sqlite_ledgerstore import row_mac_problems, rows_mac
from core.errors import ConfigError, HubError, StorageBusy
from core.leadership import Fenced, WriterFence
from core.ports.ledgerstore import (
    Chunk,
    LeafQuery,
    LeafRow,
    LedgerStore,
    LedgerWrite,
    Positions,
    StoredCheckpoint,
)

SCHEMA_VERSION = 1

_TABLES = """
CREATE TABLE IF NOT EXISTS {s}.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.leaves (
    idx BIGINT PRIMARY KEY,
    topic TEXT NOT NULL,
    part INTEGER NOT NULL,
    off BIGINT NOT NULL,
    ts_ms BIGINT NOT NULL,
    actor TEXT,
    action TEXT,
    resource TEXT,
    tenant TEXT,
    leaf_hash BYTEA NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS leaves_by_position ON {s}.leaves (topic, part, off);
CREATE INDEX IF NOT EXISTS leaves_by_actor ON {s}.leaves (actor);
CREATE INDEX IF NOT EXISTS leaves_by_action ON {s}.leaves (action);
CREATE INDEX IF NOT EXISTS leaves_by_resource ON {s}.leaves (resource);
CREATE INDEX IF NOT EXISTS leaves_by_time ON {s}.leaves (ts_ms);
CREATE TABLE IF NOT EXISTS {s}.nodes (
    level INTEGER NOT NULL,
    chunk BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (level, chunk)
);
CREATE TABLE IF NOT EXISTS {s}.positions (
    topic TEXT NOT NULL,
    part INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (topic, part)
);
CREATE TABLE IF NOT EXISTS {s}.checkpoints (
    size BIGINT PRIMARY KEY,
    root BYTEA NOT NULL,
    time_us BIGINT NOT NULL,
    note BYTEA NOT NULL,
    hash BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.writer_epochs (writer TEXT PRIMARY KEY, epoch BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.witness_intents (size BIGINT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS {s}.leaf_macs (
    first BIGINT PRIMARY KEY,
    n BIGINT NOT NULL,
    mac BYTEA NOT NULL
)
"""
_COLUMNS = "idx, topic, part, off, ts_ms, actor, action, resource, tenant, leaf_hash"
_CHECKPOINT_COLUMNS = "size, root, time_us, note, hash"


def _checkpoint(row: Sequence[Any]) -> StoredCheckpoint:
    s, r, t, n, h = row
    return StoredCheckpoint(int(s), bytes(r), int(t), bytes(n), bytes(h))


def _leaf(row: Sequence[Any]) -> LeafRow:
    i, t, p, o, ts, ac, an, rs, tn, h = row
    return (int(i), t, int(p), int(o), int(ts), ac, an, rs, tn, bytes(h))


class _Queries:
    """The schema-qualified statements, composed once."""

    def __init__(self, schema: str) -> None:
        s = sql.Identifier(schema)

        def q(text: str) -> sql.Composed:
            return sql.SQL(text).format(s=s)

        self.tables = [q(t) for t in _TABLES.split(";") if t.strip()]
        self.size = q("SELECT max(idx) FROM {s}.leaves")
        self.positions = q("SELECT topic, part, next_offset FROM {s}.positions")
        self.chunk = q("SELECT data FROM {s}.nodes WHERE level = %s AND chunk = %s")
        self.chunks = q(
            "SELECT n.level, n.chunk, n.data FROM {s}.nodes AS n JOIN "
            "unnest(%s::integer[], %s::bigint[]) AS k(level, chunk) "
            "ON n.level = k.level AND n.chunk = k.chunk"
        )
        self.all_chunks = q("SELECT level, chunk, data FROM {s}.nodes ORDER BY level, chunk")
        self.copy_leaves = q(f"COPY {{s}}.leaves ({_COLUMNS}) FROM STDIN")
        self.upsert_chunk = q(
            "INSERT INTO {s}.nodes VALUES (%s, %s, %s) ON CONFLICT (level, chunk) "
            "DO UPDATE SET data = excluded.data"
        )
        self.upsert_position = q(
            "INSERT INTO {s}.positions VALUES (%s, %s, %s) ON CONFLICT (topic, part) "
            "DO UPDATE SET next_offset = excluded.next_offset"
        )
        self.add_checkpoint = q("INSERT INTO {s}.checkpoints VALUES (%s, %s, %s, %s, %s)")
        self.latest = q(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM {{s}}.checkpoints ORDER BY size DESC LIMIT 1"
        )
        self.checkpoints = q(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM {{s}}.checkpoints "
            "WHERE size >= %s AND (%s::bigint IS NULL OR size <= %s) ORDER BY size"
        )
        self.covering = q(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM {{s}}.checkpoints WHERE size > %s "
            "ORDER BY size LIMIT 1"
        )
        self.leaf = q(f"SELECT {_COLUMNS} FROM {{s}}.leaves WHERE idx = %s")
        self.index_of = q("SELECT idx FROM {s}.leaves WHERE topic = %s AND part = %s AND off = %s")
        self.leaves_after = q(
            f"SELECT {_COLUMNS} FROM {{s}}.leaves WHERE idx > %s ORDER BY idx LIMIT %s"
        )
        self.count_by_topic = q(
            "SELECT topic, count(*) FROM {s}.leaves WHERE ts_ms >= %s AND ts_ms < %s "
            "GROUP BY topic ORDER BY topic"
        )
        self.leaves = q(f"SELECT {_COLUMNS} FROM {{s}}.leaves")
        # The fence: record the epoch unless a newer one is stored (no row back: refused).
        self.fence = q(
            "INSERT INTO {s}.writer_epochs VALUES (%s, %s) ON CONFLICT (writer) DO UPDATE "
            "SET epoch = excluded.epoch WHERE {s}.writer_epochs.epoch <= excluded.epoch "
            "RETURNING epoch"
        )
        self.add_intent = q("INSERT INTO {s}.witness_intents VALUES (%s) ON CONFLICT DO NOTHING")
        self.clear_intent = q("DELETE FROM {s}.witness_intents WHERE size = %s")
        self.intents = q("SELECT size FROM {s}.witness_intents ORDER BY size")
        self.fenced_by = q("SELECT epoch FROM {s}.writer_epochs WHERE writer = %s")
        self.add_mac = q("INSERT INTO {s}.leaf_macs VALUES (%s, %s, %s)")
        self.macs = q("SELECT first, n, mac FROM {s}.leaf_macs ORDER BY first")
        self.covered = q("SELECT coalesce(max(first + n), 0) FROM {s}.leaf_macs")
        self.rows = q(
            f"SELECT {_COLUMNS} FROM {{s}}.leaves WHERE idx >= %s AND idx < %s ORDER BY idx"
        )
        self.meta_version = q("SELECT value FROM {s}.meta WHERE key = 'schema_version'")
        self.set_version = q(
            "INSERT INTO {s}.meta VALUES ('schema_version', %s) ON CONFLICT (key) DO NOTHING"
        )


class _Write(LedgerWrite):
    def __init__(
        self, conn: psycopg.Connection[Any], q: _Queries, key: bytes | None = None
    ) -> None:
        self._conn, self._q, self._key = conn, q, key

    def size(self) -> int:
        row = self._conn.execute(self._q.size).fetchone()
        return 0 if row is None or row[0] is None else int(row[0]) + 1

    def positions(self) -> Positions:
        rows = self._conn.execute(self._q.positions).fetchall()
        return {(str(t), int(p)): int(o) for t, p, o in rows}

    def chunk(self, level: int, chunk: int) -> bytes:
        row = self._conn.execute(self._q.chunk, (level, chunk)).fetchone()
        if row is None:
            raise IndexError(f"no node chunk ({level}, {chunk}) in the ledger store.")
        return bytes(row[0])

    def append(self, rows: Sequence[LeafRow], chunks: Iterable[Chunk]) -> None:
        with self._conn.cursor() as cur:
            try:
                with self._conn.transaction(), cur.copy(self._q.copy_leaves) as copy:
                    for row in rows:
                        copy.write_row(row)
            except pg_errors.UniqueViolation as exc:
                raise HubError(
                    f"A leaf index or log position is already on the ledger ({exc}); the "
                    "ledger appends each record once.",
                    code="ledger_store",
                ) from exc
            if rows and self._key is not None:
                first = int(rows[0][0])
                cur.execute(self._q.add_mac, (first, len(rows), rows_mac(self._key, first, rows)))
            cur.executemany(self._q.upsert_chunk, list(chunks))

    def key_uncovered(self, key: bytes) -> None:
        """One MAC over the rows no batch covers, as they are (the first keyed open)."""
        row = self._conn.execute(self._q.covered).fetchone()
        start, size = (0 if row is None else int(row[0])), self.size()
        if size > start:
            rows = [_leaf(r) for r in self._conn.execute(self._q.rows, (start, size))]
            self._conn.execute(self._q.add_mac, (start, len(rows), rows_mac(key, start, rows)))

    def set_positions(self, positions: Positions) -> None:
        with self._conn.cursor() as cur:
            cur.executemany(self._q.upsert_position, [(t, p, o) for (t, p), o in positions.items()])

    def add_checkpoint(self, cp: StoredCheckpoint) -> None:
        try:
            with self._conn.transaction():
                self._conn.execute(
                    self._q.add_checkpoint, (cp.size, cp.root, cp.time_us, cp.note, cp.hash)
                )
        except pg_errors.UniqueViolation as exc:
            raise HubError(
                f"The ledger already holds a checkpoint of size {cp.size}.", code="ledger_store"
            ) from exc

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        row = self._conn.execute(self._q.latest).fetchone()
        return None if row is None else _checkpoint(row)

    def add_witness_intents(self, sizes: Sequence[int]) -> None:
        with self._conn.cursor() as cur:
            cur.executemany(self._q.add_intent, [(s,) for s in sizes])

    def clear_witness_intents(self, sizes: Sequence[int]) -> None:
        with self._conn.cursor() as cur:
            cur.executemany(self._q.clear_intent, [(s,) for s in sizes])

    def fence(self, token: WriterFence) -> None:
        # The upsert locks the writer's row until this transaction ends: a newer leader's
        # write waits for it, then stores its own epoch; an older one finds the newer epoch.
        if self._conn.execute(self._q.fence, (token.writer, token.epoch)).fetchone() is None:
            row = self._conn.execute(self._q.fenced_by, (token.writer,)).fetchone()
            raise Fenced(
                f"The ledger refused a write of {token.writer!r} under epoch {token.epoch}: a "
                f"newer leader (epoch {None if row is None else row[0]}) already wrote. This "
                "process is no longer the leader; it stops its single-writer parts."
            )


class PostgresLedgerStore(LedgerStore):
    """The ledger in PostgreSQL. Thread-safe: one connection guarded by a lock."""

    kind = "postgres"

    def __init__(
        self,
        url: str,
        *,
        schema: str = "hub_ledger",
        lock_timeout_s: float = 30.0,
        idle_timeout_s: float = 60.0,
        side_key: bytes | None = None,
        keyed_marker: Path | None = None,
    ) -> None:
        """``side_key``: the rows' MAC key (module docstring); without it rows are written
        without a MAC and nothing is checked. ``keyed_marker``: the file (in ``keys/``) that
        says this schema's rows were keyed once; absent, the rows found are keyed as they are
        and the file is written."""
        super().__init__()
        self._side_key, self._keyed_marker = side_key, keyed_marker
        if not idle_timeout_s > 0:
            raise ConfigError(
                f"The ledger's idle-in-transaction timeout must be positive, got {idle_timeout_s}"
                " s: without it a paused writer holds the ledger's lock for ever."
            )
        self.url = libpq_url(url)
        self.schema = schema
        self._lock_timeout_ms = int(lock_timeout_s * 1000)
        self._idle_timeout_ms = max(1, int(idle_timeout_s * 1000))
        self._q = _Queries(schema)
        self._lock_key = lock_key(f"hub-ledger:{schema}")  # serializes writers, per schema
        self._lock = threading.RLock()
        self._conn = self._connect()
        self._setup()

    def _connect(self) -> psycopg.Connection[Any]:
        return connect(
            self.url,
            what="the ledger",
            setting="HUB_LEDGER_POSTGRES_URL",
            code="ledger_store",
            options=f"-c idle_in_transaction_session_timeout={self._idle_timeout_ms}",
        )

    def _setup(self) -> None:
        with self._session() as conn:
            create_schema(conn, self.schema, self._q.tables, self._lock_key)
            conn.execute(self._q.set_version, (str(SCHEMA_VERSION),))  # the first one stays
            row = conn.execute(self._q.meta_version).fetchone()
        if row is None or row[0] != str(SCHEMA_VERSION):
            raise HubError(
                f"The PostgreSQL schema {self.schema!r} holds a ledger of version "
                f"{None if row is None else row[0]}, not {SCHEMA_VERSION}; point "
                "HUB_LEDGER_POSTGRES_SCHEMA at another schema.",
                code="ledger_store",
            )
        key, marker = self._side_key, self._keyed_marker
        if key is not None and not (marker is not None and marker.exists()):
            # first keyed open: the rows no batch covers are keyed as found (trust on first
            # use), then never again (the marker is outside the database)
            with self.write() as w:
                assert isinstance(w, _Write)
                w.key_uncovered(key)
            if marker is not None:
                marker.write_text(f"ledger rows keyed: PostgreSQL schema {self.schema}\n")

    @contextmanager
    def _session(self) -> Iterator[psycopg.Connection[Any]]:
        """The connection (reopened if it broke), under the lock; driver errors as HubError."""
        with self._lock:
            if self._conn.closed or self._conn.broken:
                self._conn = self._connect()
            try:
                yield self._conn
            except pg_errors.LockNotAvailable as exc:
                raise StorageBusy(
                    f"The ledger in PostgreSQL schema {self.schema!r} is locked by another "
                    f"writer for longer than {self._lock_timeout_ms} ms; retry."
                ) from exc
            except psycopg.Error as exc:
                raise HubError(
                    f"The ledger's PostgreSQL failed: {str(exc).strip()}.", code="ledger_store"
                ) from exc

    # -- transactions ------------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[LedgerWrite]:
        with self._session() as conn, conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = {self._lock_timeout_ms}")
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
            yield _Write(conn, self._q, self._side_key)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def drop(self) -> None:
        """Remove the schema and everything in it (tests, and the rollback of a failed restore
        into a schema that was empty before it)."""
        with self._session() as conn:
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
            )
        self.clear_caches()

    def integrity_problems(self, decoded: Iterable[int] = (), verified: int = 0) -> list[str]:
        """Every batch of rows against its MAC, and the batches covering every leaf once (the
        module docstring): a rewritten column lies below any incremental start, so every
        batch is checked on every run."""
        key = self._side_key
        if key is None:
            return []
        size = self.tree_size()
        with self._session() as conn:
            macs = conn.execute(self._q.macs).fetchall()

        def rows_of(first: int, n: int) -> Sequence[Sequence[Any]]:
            with self._session() as conn:
                return [_leaf(r) for r in conn.execute(self._q.rows, (first, first + n))]

        where = f"the PostgreSQL schema {self.schema!r}"
        return row_mac_problems(key, macs, rows_of, size, where, "the ledger")

    # -- state -------------------------------------------------------------------------------
    def tree_size(self) -> int:
        with self._session() as conn:
            return _Write(conn, self._q).size()

    def positions(self) -> Positions:
        with self._session() as conn:
            return _Write(conn, self._q).positions()

    # -- nodes -------------------------------------------------------------------------------
    def read_chunks(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        if not keys:
            return {}
        levels = [k[0] for k in keys]
        chunks = [k[1] for k in keys]
        with self._session() as conn:
            rows = conn.execute(self._q.chunks, (levels, chunks)).fetchall()
        return {(int(lv), int(ch)): bytes(data) for lv, ch, data in rows}

    def iter_chunks(self) -> Iterator[Chunk]:
        with self._session() as conn:
            rows = conn.execute(self._q.all_chunks).fetchall()
        yield from ((int(a), int(b), bytes(c)) for a, b, c in rows)

    # -- leaves ------------------------------------------------------------------------------
    def leaf(self, index: int) -> LeafRow | None:
        with self._session() as conn:
            row = conn.execute(self._q.leaf, (index,)).fetchone()
        return None if row is None else _leaf(row)

    def index_of(self, topic: str, partition: int, offset: int) -> int | None:
        with self._session() as conn:
            row = conn.execute(self._q.index_of, (topic, partition, offset)).fetchone()
        return None if row is None else int(row[0])

    def iter_leaves(self, start: int = 0, batch: int = 50_000) -> Iterator[list[LeafRow]]:
        last = start - 1
        while True:
            with self._session() as conn:
                rows = conn.execute(self._q.leaves_after, (last, batch)).fetchall()
            if not rows:
                return
            out = [_leaf(r) for r in rows]
            yield out
            last = out[-1][0]

    def find(self, where: LeafQuery, *, after: int = -1, limit: int = 100) -> list[LeafRow]:
        clauses: list[sql.Composable] = [sql.SQL("idx > %s")]
        args: list[Any] = [after]
        for column, value in (
            ("actor", where.actor),
            ("action", where.action),
            ("resource", where.resource),
            ("topic", where.topic),
        ):
            if value is not None:
                clauses.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
                args.append(value)
        if where.topics is not None:
            clauses.append(sql.SQL("topic = ANY(%s)"))
            args.append(list(where.topics))
        if where.tenant_scope is not None:
            clauses.append(sql.SQL("(tenant = %s OR tenant IS NULL)"))
            args.append(where.tenant_scope)
        if where.since_ms is not None:
            clauses.append(sql.SQL("ts_ms >= %s"))
            args.append(where.since_ms)
        if where.until_ms is not None:
            clauses.append(sql.SQL("ts_ms < %s"))
            args.append(where.until_ms)
        statement = sql.SQL("{} WHERE {} ORDER BY idx LIMIT %s").format(
            self._q.leaves, sql.SQL(" AND ").join(clauses)
        )
        with self._session() as conn:
            rows = conn.execute(statement, (*args, limit)).fetchall()
        return [_leaf(r) for r in rows]

    def count_by_topic(self, since_ms: int, until_ms: int) -> dict[str, int]:
        with self._session() as conn:
            rows = conn.execute(self._q.count_by_topic, (since_ms, until_ms)).fetchall()
        return {str(t): int(n) for t, n in rows}

    # -- checkpoints -------------------------------------------------------------------------
    def checkpoints(
        self, *, min_size: int = 0, max_size: int | None = None
    ) -> list[StoredCheckpoint]:
        with self._session() as conn:
            rows = conn.execute(self._q.checkpoints, (min_size, max_size, max_size)).fetchall()
        return [_checkpoint(r) for r in rows]

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        with self._session() as conn:
            return _Write(conn, self._q).latest_checkpoint()

    def witness_intents(self) -> list[int]:
        with self._session() as conn:
            rows = conn.execute(self._q.intents).fetchall()
        return [int(r[0]) for r in rows]

    def first_checkpoint_covering(self, index: int) -> StoredCheckpoint | None:
        with self._session() as conn:
            row = conn.execute(self._q.covering, (index,)).fetchone()
        return None if row is None else _checkpoint(row)
