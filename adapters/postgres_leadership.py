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
the ledger and view stores); this adapter only hands out the epochs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from core.errors import ConfigError, HubError
from core.leadership import Leadership, LeaseHolder


def _libpq(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def _redacted(url: str) -> str:
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, userinfo = head.partition("://")
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{tail}"


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
        self.url = _libpq(url)
        self.name = name
        self.holder = holder
        self.lease_s = lease_s
        self.schema = schema
        self._timeout_ms = int(statement_timeout_s * 1000)
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        s = sql.Identifier(schema)

        def q(text: str) -> sql.Composed:
            return sql.SQL(text).format(s=s)

        self._create = [
            q("CREATE SCHEMA IF NOT EXISTS {s}"),
            q(
                "CREATE TABLE IF NOT EXISTS {s}.leases (name TEXT PRIMARY KEY, holder TEXT NOT "
                "NULL, epoch BIGINT NOT NULL, expires_at TIMESTAMPTZ NOT NULL)"
            ),
        ]
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
        # concurrent first starts: CREATE ... IF NOT EXISTS can still collide; serialize them
        with self._session() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('hub-leadership-setup'))")
            for statement in self._create:
                conn.execute(statement)

    @contextmanager
    def _session(self) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            try:
                if self._conn is None or self._conn.closed or self._conn.broken:
                    self._conn = psycopg.connect(
                        self.url,
                        autocommit=True,
                        connect_timeout=max(1, int(self.lease_s)),
                        options=f"-c statement_timeout={self._timeout_ms}",
                    )
                yield self._conn
            except psycopg.Error as exc:
                raise HubError(
                    f"The leader lease {self.name!r} in PostgreSQL at {_redacted(self.url)} "
                    f"failed: {str(exc).strip()}. Check HUB_LEADER_POSTGRES_URL and that the "
                    "server runs.",
                    code="leadership",
                ) from exc

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

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
