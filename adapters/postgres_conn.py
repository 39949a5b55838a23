"""What the PostgreSQL adapters that speak psycopg directly share (the ledger store, the leader
lease): the URL as libpq reads it, the URL without its password for messages, one connection
with the driver's errors named, and the setup of a schema that several processes may create at
the same moment."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import sql

from core.errors import HubError


def libpq_url(url: str) -> str:
    """``url`` as libpq reads it: SQLAlchemy's ``postgresql+psycopg://`` prefix accepted."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def redacted(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and logs)."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, userinfo = head.partition("://")
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{tail}"


def lock_key(name: str) -> int:
    """A stable 63-bit advisory lock number for ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1


def connect(
    url: str, *, what: str, setting: str, code: str, timeout_s: int = 10, options: str = ""
) -> psycopg.Connection[Any]:
    """An autocommit connection to ``url``; a failure is a ``HubError`` naming ``what`` the
    connection is for and the ``setting`` that holds the URL."""
    try:
        if options:
            return psycopg.connect(url, autocommit=True, connect_timeout=timeout_s, options=options)
        return psycopg.connect(url, autocommit=True, connect_timeout=timeout_s)
    except psycopg.Error as exc:
        raise HubError(
            f"Cannot connect to the PostgreSQL of {what} at {redacted(url)}: {str(exc).strip()}. "
            f"Check {setting} and that the server runs.",
            code=code,
        ) from exc


def create_schema(
    conn: psycopg.Connection[Any], schema: str, statements: Iterable[sql.Composed], key: int
) -> None:
    """Create ``schema`` and run ``statements`` (``CREATE ... IF NOT EXISTS``) in one
    transaction under the advisory lock ``key``: two processes starting at once can still
    collide on ``IF NOT EXISTS``, so they take turns."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        for statement in statements:
            conn.execute(statement)
