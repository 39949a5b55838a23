"""PostgresLeadership: the Leadership port (``core.leadership``) as a lease row in PostgreSQL.

One row per lease name in ``<schema>.leases`` (holder, epoch, expires_at). Every decision is
one statement judged by the server's clock (``clock_timestamp()``), so the processes' own clocks
never meet:
- acquire: insert the row, or take it over when it has expired, adding 1 to its epoch (the
  fencing token: it only grows, it survives restarts of every hub process);
- renew: push ``expires_at`` on, only while the row still carries this holder's epoch;
- release: expire the row now (a clean shutdown hands over without waiting out the lease).

Why a lease row rather than a session advisory lock: an advisory lock lives as long as its
connection, and the connection of a leader paused by SIGSTOP stays open (the kernel keeps the TCP
session alive), so a paused leader would keep the lock forever and no one would take over. A
lease expires on the server's clock whatever the holder does.

The fencing itself happens in the stores the single-writer parts write to (``writer_epochs`` of
the ledger and view stores). Writers whose store checks no epoch (the loops that append events
to the log) use ``fenced``: the row (lease, writer) of ``<schema>.writer_epochs`` is upserted
with the epoch, refused when a newer one is stored, and stays locked until the block ends, on a
connection of its own per writer (a long fenced block never delays a renewal).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from adapters.postgres_conn import connect, create_schema, libpq_url, lock_key, redacted
from core.errors import ConfigError, HubError
from core.leadership import Fenced, Leadership, LeaseHolder, WriterFence


class PostgresLeadership(Leadership):
    """A named lease among hub processes, kept in PostgreSQL. Thread-safe."""

    def __init__(
        self,
        url: str,
        name: str,
        holder: str,
        *,
        lease_s: float = 10.0,
        schema: str = "hub_leadership",
        statement_timeout_s: float = 5.0,
    ) -> None:
        if not name or not holder:
            raise ConfigError(
                f"A leader lease needs a name and a holder id (got {name!r}, {holder!r}); set "
                "HUB_LEADER_NAME and HUB_LEADER_ID, or leave them to their defaults."
            )
        if not 0.5 <= lease_s <= 600:
            raise ConfigError(
                f"HUB_LEADER_LEASE_S={lease_s} is outside 0.5..600 seconds; a lease of 5 to 15 "
                "seconds fits most deployments."
            )
        self.url = libpq_url(url)
        self.name = name
        self.holder = holder
        self.lease_s = lease_s
        self.schema = schema
        self._timeout_ms = int(statement_timeout_s * 1000)
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._writers: dict[str, tuple[threading.Lock, list[psycopg.Connection[Any]]]] = {}
        s = sql.Identifier(schema)

        def q(text: str) -> sql.Composed:
            return sql.SQL(text).format(s=s)

        self._create = [
            q(
                "CREATE TABLE IF NOT EXISTS {s}.leases (name TEXT PRIMARY KEY, holder TEXT NOT "
                "NULL, epoch BIGINT NOT NULL, expires_at TIMESTAMPTZ NOT NULL)"
            ),
            q(
                "CREATE TABLE IF NOT EXISTS {s}.writer_epochs (lease TEXT NOT NULL, writer TEXT "
                "NOT NULL, epoch BIGINT NOT NULL, PRIMARY KEY (lease, writer))"
            ),
        ]
        # The fence: record the epoch unless a newer one is stored (no row back: refused).
        self._fence = q(
            "INSERT INTO {s}.writer_epochs AS w VALUES (%(n)s, %(w)s, %(e)s) "
            "ON CONFLICT (lease, writer) DO UPDATE SET epoch = excluded.epoch "
            "WHERE w.epoch <= excluded.epoch RETURNING epoch"
        )
        self._fenced_by = q(
            "SELECT epoch FROM {s}.writer_epochs WHERE lease = %(n)s AND writer = %(w)s"
        )
        self._acquire = q(
            "INSERT INTO {s}.leases AS l VALUES (%(n)s, %(h)s, 1, "
            "clock_timestamp() + %(lease)s * interval '1 second') "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, epoch = l.epoch + 1, "
            "expires_at = excluded.expires_at WHERE l.expires_at < clock_timestamp() "
            "RETURNING epoch"
        )
        self._renew = q(
            "UPDATE {s}.leases SET expires_at = clock_timestamp() + %(lease)s * interval "
            "'1 second' WHERE name = %(n)s AND holder = %(h)s AND epoch = %(e)s RETURNING epoch"
        )
        self._release = q(
            "UPDATE {s}.leases SET expires_at = clock_timestamp() - interval '1 second' "
            "WHERE name = %(n)s AND holder = %(h)s AND epoch = %(e)s"
        )
        self._current = q(
            "SELECT holder, epoch, extract(epoch FROM expires_at - clock_timestamp()) "
            "FROM {s}.leases WHERE name = %(n)s AND expires_at >= clock_timestamp()"
        )
        with self._session() as conn:
            create_schema(conn, schema, self._create, lock_key(f"hub-leadership:{schema}"))

    def _connect(self) -> psycopg.Connection[Any]:
        return connect(
            self.url,
            what=f"the leader lease {self.name!r}",
            setting="HUB_LEADER_POSTGRES_URL",
            code="leadership",
            timeout_s=max(1, int(self.lease_s)),
            options=f"-c statement_timeout={self._timeout_ms}",
        )

    def _translated(self, exc: psycopg.Error) -> HubError:
        return HubError(
            f"The leader lease {self.name!r} in PostgreSQL at {redacted(self.url)} failed: "
            f"{str(exc).strip()}. Check HUB_LEADER_POSTGRES_URL and that the server runs.",
            code="leadership",
        )

    @contextmanager
    def _session(self) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = self._connect()
            try:
                yield self._conn
            except psycopg.Error as exc:
                raise self._translated(exc) from exc

    def _args(self, epoch: int | None = None) -> dict[str, Any]:
        return {"n": self.name, "h": self.holder, "lease": self.lease_s, "e": epoch}

    def try_acquire(self) -> int | None:
        with self._session() as conn:
            row = conn.execute(self._acquire, self._args()).fetchone()
        return None if row is None else int(row[0])

    def renew(self, epoch: int) -> bool:
        with self._session() as conn:
            return conn.execute(self._renew, self._args(epoch)).fetchone() is not None

    def release(self, epoch: int) -> None:
        with self._session() as conn:
            conn.execute(self._release, self._args(epoch))

    def current(self) -> LeaseHolder | None:
        with self._session() as conn:
            row = conn.execute(self._current, self._args()).fetchone()
        return None if row is None else LeaseHolder(str(row[0]), int(row[1]), float(row[2]))

    @contextmanager
    def fenced(self, token: WriterFence) -> Iterator[None]:
        with self._lock:
            lock, held = self._writers.setdefault(token.writer, (threading.Lock(), []))
        with lock:
            if not held or held[0].closed or held[0].broken:
                held[:] = [self._connect()]
            conn = held[0]
            args = {"n": self.name, "w": token.writer, "e": token.epoch}
            inside = False  # the block's own errors are not the fence's
            try:
                with conn.transaction():
                    # The row stays locked until the block ends: a newer leader's claim waits
                    # for this block's write, then stores its epoch; an older one finds it.
                    if conn.execute(self._fence, args).fetchone() is None:
                        row = conn.execute(self._fenced_by, args).fetchone()
                        raise Fenced(
                            f"The leader lease {self.name!r} refused a write of "
                            f"{token.writer!r} under epoch {token.epoch}: a newer leader (epoch "
                            f"{None if row is None else row[0]}) already wrote. This process is "
                            "no longer the leader; it stops its single-writer parts."
                        )
                    inside = True
                    yield
                    inside = False
            except pg_errors.QueryCanceled as exc:
                if inside:
                    raise
                raise HubError(
                    f"Waiting for the fence of {token.writer!r} under epoch {token.epoch} took "
                    f"longer than {self._timeout_ms} ms: another process holds it (an old leader "
                    "paused inside a write); retry.",
                    code="leadership",
                ) from exc
            except psycopg.Error as exc:
                if inside:
                    raise
                raise self._translated(exc) from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            for lock, held in self._writers.values():
                with lock:
                    for conn in held:
                        conn.close()
            self._writers.clear()
