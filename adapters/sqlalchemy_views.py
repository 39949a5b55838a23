"""SqlAlchemyViewStore: transactional views through SQLAlchemy (SQLite, or PostgreSQL by URL).

Entity tables hold one row per key (upserted), append tables one row per fact (inserted once);
aggregate tables belong to the analytics stores and are refused here. Money is exact: decimals
are ``NUMERIC(38, s)`` on PostgreSQL and canonical text on SQLite (whose NUMERIC is a float).
Timestamps are integer microseconds since the epoch (exact on every engine).

Write protocol, per batch, in ONE SQL transaction:
  1. upsert the rows of every table (hook ``rows:<table>`` after each);
  2. upsert the projection's positions (hook ``offsets``);
  3. commit (hook ``commit`` after). A crash before 3 leaves nothing; after it, everything.

Retention (``delete_rows_before``) is one ``DELETE ... WHERE column < cutoff`` in one
transaction; entity tables hold one row per key, so the view row and the stored row are the same.
Erasure (``erase_values``) is likewise one ``UPDATE ... SET c = CASE WHEN c IS NULL THEN NULL
ELSE marker END ... WHERE column = value`` in one transaction.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Context, Decimal
from pathlib import Path
from sys import getsizeof
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlglot import expressions as sg_exp

from adapters.view_setaside import set_aside
from core.errors import ConfigError, HubError, InvalidInput
from core.leadership import Fenced, WriterFence
from core.ports.views import (
    Checkpoint,
    Hook,
    Keep,
    Position,
    SetAside,
    Target,
    ViewGrant,
    ViewState,
    ViewStore,
    check_erasable,
    check_keep,
    check_time_column,
    no_hook,
)
from core.projection import Column, Row, Table
from core.sealedquery import sealed_outputs
from core.sqlguard import (
    MAX_ROWS,
    QUERY_MEMORY_BYTES,
    QUERY_SECONDS,
    guard,
    query_failed,
    too_many_rows,
    too_much_memory,
    too_slow,
)

log = logging.getLogger(__name__)


_EXACT = Context(prec=80)  # decimals of up to 38 digits, never rounded (the default has 28)

_KEY_CHUNK = 200


class ExactDecimal(sa.types.TypeDecorator[Decimal]):
    """NUMERIC(38, scale) where the engine has an exact one, canonical text otherwise."""

    impl = sa.String
    cache_ok = True

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self._q = Decimal(1).scaleb(-scale)

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(sa.Numeric(38, self.scale, asdecimal=True))
        return dialect.type_descriptor(sa.String(60))

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        d = Decimal(value).quantize(self._q, context=_EXACT)
        return d if dialect.name == "postgresql" else str(d)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Decimal | None:
        return None if value is None else Decimal(value).quantize(self._q, context=_EXACT)


def _sa_type(c: Column) -> sa.types.TypeEngine[Any]:
    if c.type == "decimal":
        return ExactDecimal(c.scale)
    if c.type in ("int", "timestamp"):
        return sa.BigInteger()
    return sa.Text()


def _insert_for(dialect: str) -> Any:
    """The dialect's INSERT with ON CONFLICT (SQLite and PostgreSQL)."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
    else:
        raise ConfigError(f"The view store supports SQLite and PostgreSQL, not {dialect}.")
    return insert


def _set_aside_if_unreadable(
    database: str | None, may_set_aside: Callable[[str, Sequence[str]], None] | None
) -> SetAside | None:
    """Move a SQLite views file that cannot be read aside (``adapters.view_setaside``), with
    its -wal and -shm: the store then starts empty and is folded again from the log; unless
    ``may_set_aside(reason, files)`` raises (then the file stays and the error goes up)."""
    if not database or database == ":memory:":
        return None
    path = Path(database)
    reason = _sqlite_unreadable(path)
    if reason is None:
        return None
    if may_set_aside is not None:
        may_set_aside(reason, [path.name])
    siblings = [path.with_name(path.name + x) for x in ("-wal", "-shm", "-journal")]
    return set_aside([path, *siblings], [path.name], reason)


def _sqlite_unreadable(path: Path) -> str | None:
    """Why the SQLite file at ``path`` cannot be a whole database, None when it can: not a
    SQLite file, or shorter than its header says (truncated) while no write-ahead log holds
    its newest pages. Reads the 100-byte header only (the file may be large)."""
    try:
        size = path.stat().st_size
        if size == 0:
            return None  # a new, empty database
        with open(path, "rb") as f:
            head = f.read(100)
        wal = path.with_name(path.name + "-wal")
        wal_size = wal.stat().st_size if wal.exists() else 0
    except OSError:
        return None  # SQLite itself says what is wrong with a file it cannot open
    if len(head) < 100 or not head.startswith(b"SQLite format 3\x00"):
        return f"{path} is not a SQLite database (its header is missing or damaged, {size} bytes)"
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    pages = int.from_bytes(head[28:32], "big")
    valid = head[24:28] == head[92:96]  # the header's page count is current (SQLite's rule)
    if valid and wal_size == 0 and size < pages * page:
        return (
            f"{path} is truncated: its header counts {pages} pages of {page} bytes "
            f"({pages * page} bytes) but the file has {size}"
        )
    return None


# Key of the PostgreSQL advisory lock that serializes the store's CREATE TABLEs across processes.
_DDL_LOCK = 0x6875625F76696577  # "hub_view"


def _serialize_ddl(conn: Connection) -> None:
    """Hold, until the transaction ends, a PostgreSQL lock that every process creating these
    tables takes first: ``create(checkfirst=True)`` checks then creates, so two hub processes
    starting together could both find a table missing and one fail on the other's CREATE
    (unique violation in ``pg_type``). SQLite's write transaction already serializes."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _DDL_LOCK})


class SqlAlchemyViewStore(ViewStore):
    kind = "transactional"

    def __init__(
        self,
        url: str,
        unseal: Callable[[Any, str | None], Any] | None = None,
        may_set_aside: Callable[[str, Sequence[str]], None] | None = None,
        **engine_kwargs: Any,
    ) -> None:
        """``unseal(value, row_tenant)`` opens a sealed PII value (any other value as it is;
        ``projections.flink.sealed.reader``): given for PostgreSQL, the store keeps its PII
        columns sealed (``seals_pii``) and opens them in ``rows`` and ``query``. SQLite keeps
        plaintext (its file is zeroed and its -wal emptied on erasure). ``may_set_aside(reason,
        files)``, asked before an unreadable SQLite file is moved aside, raises to keep it (the
        composition root's: a rebuild from the log would lose rows retention cut from it)."""
        try:
            self._engine: Engine = sa.create_engine(url, **engine_kwargs)
        except (sa.exc.ArgumentError, ImportError, ValueError) as exc:
            # Whatever precedes the last '@' may hold a password, parsed or not: never shown.
            head, at, host = url.rpartition("@")
            scheme, sep, _ = head.partition("://")
            shown = f"{scheme if sep else ''}{sep}[redacted]@{host}" if at else url
            raise ConfigError(f"Cannot use the view database URL {shown!r}: {exc}") from exc
        self.set_aside: SetAside | None = None
        if self._engine.dialect.name == "sqlite":
            try:
                self.set_aside = _set_aside_if_unreadable(self._engine.url.database, may_set_aside)
            except BaseException:
                self._engine.dispose()
                raise
            # Every connection zeroes what it frees: a rebuild's swap, a time-travel or verify
            # copy dropped, a retention cut leave the views' plaintext (an erased subject's too)
            # in free pages otherwise. SQLite's default is its build's (SQLITE_SECURE_DELETE:
            # on in Debian's, off in others), so it is set here, not left to the build.
            sa.event.listen(self._engine, "connect", _secure_delete)
        self._unseal = unseal if self._engine.dialect.name == "postgresql" else None
        # PostgreSQL keeps the WAL, dead rows and backups of every value it held: PII is written
        # sealed, so destroying the subject's key erases every copy (crypto-shredding)
        self.seals_pii = self._unseal is not None
        self._md = sa.MetaData()
        self._tables: dict[str, sa.Table] = {}
        self._lock = threading.RLock()
        self.query_seconds = QUERY_SECONDS  # time bound of ``query`` (core.sqlguard)
        # PostgreSQL queries running at once (each on a pooled connection of its own)
        self._query_slots = threading.BoundedSemaphore(QUERY_CONNECTIONS)
        # an erasure's WAL truncation a query's older snapshot kept from finishing: retried
        # after each write until it does (the -wal still holds the erased values)
        self._wal_erased_pending = False
        # memory bound of a ``query``'s result (HUB_QUERY_MAX_MEMORY_BYTES)
        self.query_memory_bytes = QUERY_MEMORY_BYTES
        self._offsets = sa.Table(
            "_projection_offsets",
            self._md,
            sa.Column("projection_id", sa.Text, primary_key=True),
            sa.Column("topic", sa.Text, primary_key=True),
            sa.Column("part", sa.BigInteger, primary_key=True),
            sa.Column("next_offset", sa.BigInteger, nullable=False),
            sa.Column("watermark_us", sa.BigInteger),
            sa.Column("batch_seq", sa.BigInteger, nullable=False),
        )
        self._epochs = sa.Table(  # fencing tokens of single-writer parts (core.leadership)
            "_writer_epochs",
            self._md,
            sa.Column("writer", sa.Text, primary_key=True),
            sa.Column("epoch", sa.BigInteger, nullable=False),
        )
        self._states = sa.Table(
            "_view_states",
            self._md,
            sa.Column("projection_id", sa.Text, primary_key=True),
            sa.Column("table_name", sa.Text, primary_key=True),
            sa.Column("digest", sa.Text, nullable=False),
            sa.Column("rows", sa.BigInteger, nullable=False),
            sa.Column("positions", sa.Text, nullable=False),
            sa.Column("ledger_size", sa.BigInteger),
            sa.Column("computed_at_ms", sa.BigInteger, nullable=False),
        )
        with self._tx("creating the projection tables") as conn:
            _serialize_ddl(conn)
            self._offsets.create(conn, checkfirst=True)
            self._states.create(conn, checkfirst=True)
            self._epochs.create(conn, checkfirst=True)
        self._read_uri = self._wal_reader_uri()

    def _wal_reader_uri(self) -> str | None:
        """The URI a query's own read-only connection opens, after switching the file to WAL;
        None where queries must share the writers' connection and lock (not SQLite, in-memory).

        Why: with the rollback journal a reader's SHARED lock keeps every writer out, and SQLite
        checks a query's deadline only between VM steps, never inside one ``instr``/``replace``
        call (seconds each over 1 MiB values): one analyst query held every tenant's projection
        writes for 75 s under a 1 s bound. In WAL a reader never blocks a writer and reads the
        snapshot of the last commit only, so it cannot see half a projection batch. WAL is a
        property of the file (it stays on, for every process that opens it); backups skip the
        views folder and the hub reads the file only through SQLite, so the -wal beside it is
        never left behind."""
        url = self._engine.url
        if self._engine.dialect.name != "sqlite":
            return None
        db = url.database or ""
        if db in ("", ":memory:") or db.startswith("file:") or "uri" in url.query:
            return None  # in-memory, or a URI whose file another connection may not name
        try:
            with self._lock, self._engine.connect() as conn:
                mode = conn.exec_driver_sql("PRAGMA journal_mode = WAL").scalar()
                conn.commit()
        except sa.exc.SQLAlchemyError as exc:
            raise self._translate(exc, "switching the views file to WAL journaling") from exc
        if str(mode).lower() != "wal":
            raise ConfigError(
                f"The views database {db!r} could not be switched to WAL journaling (it stays "
                f"{mode!r}): a query would hold every projection write; check the file system "
                "supports shared memory (not a network mount)."
            )
        return f"file:{quote(db)}?mode=ro"

    # -- plumbing ----------------------------------------------------------------------------------
    def _tx(self, doing: str) -> Any:
        store = self

        class _Tx:
            def __enter__(self) -> Connection:
                store._lock.acquire()
                try:
                    self.cm = store._engine.begin()
                    return self.cm.__enter__()
                except sa.exc.SQLAlchemyError as exc:
                    store._lock.release()
                    raise store._translate(exc, doing) from exc

            def __exit__(self, *exc: Any) -> None:
                try:
                    self.cm.__exit__(*exc)
                except sa.exc.SQLAlchemyError as err:
                    raise store._translate(err, doing) from err
                finally:
                    store._lock.release()

        return _Tx()

    def _translate(self, exc: Exception, doing: str) -> HubError:
        return HubError(f"The view database failed while {doing}: {exc}", code="views_error")

    def _table(self, target: Target, t: Table) -> sa.Table:
        name = target.table(t.name)
        if name in self._tables:
            return self._tables[name]
        if t.kind == "aggregate":
            raise ConfigError(
                f"Table {t.name!r} is an aggregate table: it belongs in the analytics store "
                "(chDB/ClickHouse), not the transactional one."
            )
        cols = [
            sa.Column(c.name, _sa_type(c), primary_key=c.agg == "key", nullable=c.nullable)
            for c in t.columns
        ]
        if t.kind == "entity":
            cols.append(sa.Column("src_offsets", sa.Text, nullable=False))
        if name in self._md.tables:  # dropped and made again
            self._md.remove(self._md.tables[name])
        table = sa.Table(name, self._md, *cols)
        self._tables[name] = table
        return table

    # -- schema and positions -------------------------------------------------------------
    def ensure(self, target: Target, tables: Sequence[Table]) -> None:
        with self._tx("creating view tables") as conn:
            _serialize_ddl(conn)
            for t in tables:
                self._table(target, t).create(conn, checkfirst=True)

    def checkpoint(self, target: Target) -> Checkpoint:
        o = self._offsets
        with self._tx("reading positions") as conn:
            rows = conn.execute(sa.select(o).where(o.c.projection_id == target.id)).all()
        if not rows:
            return Checkpoint()
        return Checkpoint(
            max(r.batch_seq for r in rows),
            {(r.topic, r.part): Position(r.next_offset, r.watermark_us) for r in rows},
        )

    def recover(self, target: Target, tables: Sequence[Table]) -> int:
        return 0  # a crashed batch's transaction was never committed

    def _upsert(self, conn: Connection, table: sa.Table, rows: list[dict[str, Any]], update: bool):  # type: ignore[no-untyped-def]
        stmt = _insert_for(conn.dialect.name)(table)
        keys = [c.name for c in table.primary_key.columns]
        if update:
            others = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
            stmt = stmt.on_conflict_do_update(index_elements=keys, set_=others)
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=keys)
        conn.execute(stmt, rows)

    def write(
        self,
        target: Target,
        tables: Sequence[Table],
        rows: Mapping[str, Any],
        checkpoint: Checkpoint,
        hook: Hook = no_hook,
        fence: WriterFence | None = None,
    ) -> None:
        with self._tx("writing a batch") as conn:
            # 0. fenced (several hub processes): refused when a newer leader wrote as this writer
            if fence is not None:
                self._fence(conn, fence)
                self._check_follows(conn, target, checkpoint)
            # 1. rows of every table
            for t in tables:
                batch = rows.get(t.name) or ()
                if batch:
                    table = self._table(target, t)
                    names = [c.name for c in table.columns]
                    prepared = [
                        {
                            n: (
                                json.dumps(r[n], separators=(",", ":"))
                                if n == "src_offsets"
                                else r.get(n)
                            )
                            for n in names
                        }
                        for r in batch
                    ]
                    self._upsert(conn, table, prepared, update=t.kind == "entity")
                hook(f"rows:{t.name}")
            # 2. positions, in the same transaction
            self._upsert(
                conn,
                self._offsets,
                [
                    {
                        "projection_id": target.id,
                        "topic": topic,
                        "part": part,
                        "next_offset": p.next_offset,
                        "watermark_us": p.watermark_us,
                        "batch_seq": checkpoint.batch_seq,
                    }
                    for (topic, part), p in sorted(checkpoint.positions.items())
                ],
                update=True,
            )
            hook("offsets")
        # 3. committed
        hook("commit")
        if self._wal_erased_pending:  # an erasure's truncation still owed: try again, no wait
            self._truncate_wal(wait_s=0.0)

    def _fence(self, conn: Connection, fence: WriterFence) -> None:
        """Record ``fence.epoch`` for its writer unless a newer one is stored (then refuse).

        The upsert holds the writer's row lock until the batch commits: a newer leader's batch
        waits for this one, then stores its epoch; an older leader's finds the newer epoch."""
        w = self._epochs
        stmt = _insert_for(conn.dialect.name)(w).values(writer=fence.writer, epoch=fence.epoch)
        stmt = stmt.on_conflict_do_update(
            index_elements=[w.c.writer],
            set_={"epoch": stmt.excluded.epoch},
            where=w.c.epoch <= stmt.excluded.epoch,
        ).returning(w.c.epoch)
        if conn.execute(stmt).first() is None:
            stored = conn.execute(sa.select(w.c.epoch).where(w.c.writer == fence.writer)).scalar()
            raise Fenced(
                f"The view store refused a batch of {fence.writer!r} under epoch {fence.epoch}: "
                f"a newer leader (epoch {stored}) already wrote. This process is no longer the "
                "leader; it stops its single-writer parts."
            )

    def _check_follows(self, conn: Connection, target: Target, checkpoint: Checkpoint) -> None:
        """Refuse a fenced batch not folded from the committed checkpoint (``batch_seq`` one
        above the stored one). Under the writer's row lock (``_fence``), so no other batch
        commits in between: a new leader's runner loaded its checkpoint when elected, and an
        old leader paused mid-batch may have committed one more under its old epoch before the
        new epoch was stored; that runner's batch would apply those records again and move
        the positions back. Its runner reloads the checkpoint and folds again."""
        o = self._offsets
        stored = conn.execute(
            sa.select(sa.func.max(o.c.batch_seq)).where(o.c.projection_id == target.id)
        ).scalar()
        stored = int(stored or 0)
        if checkpoint.batch_seq != stored + 1:
            raise HubError(
                f"The view store refused batch {checkpoint.batch_seq} of {target.id!r}: the "
                f"committed checkpoint is batch {stored}, not {checkpoint.batch_seq - 1} (another "
                "process, an old leader, committed a batch after this one loaded it). Reloading "
                "the checkpoint and folding again.",
                code="view_checkpoint_moved",
            )

    def load(
        self, target: Target, table: Table, keys: Sequence[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], Row]:
        st = self._table(target, table)
        out: dict[tuple[Any, ...], Row] = {}
        unique = list(dict.fromkeys(keys))
        with self._tx("loading entity rows") as conn:
            for i in range(0, len(unique), _KEY_CHUNK):
                chunk = unique[i : i + _KEY_CHUNK]
                cond = sa.or_(
                    *[
                        sa.and_(*[st.c[k] == v for k, v in zip(table.key, key, strict=True)])
                        for key in chunk
                    ]
                )
                for r in conn.execute(sa.select(st).where(cond)).mappings():
                    row = dict(r)
                    row["src_offsets"] = json.loads(row["src_offsets"])
                    out[tuple(row[k] for k in table.key)] = row
        return out

    def rows(
        self, target: Target, table: Table, where: Mapping[str, Any] | None = None
    ) -> list[Row]:
        st = self._table(target, table)
        q = sa.select(st).order_by(*[st.c[k] for k in table.key])
        pii = [c.name for c in table.columns if c.pii] if self._unseal is not None else []
        after = {n: v for n, v in (where or {}).items() if n in pii}  # sealed: compared opened
        for name, value in (where or {}).items():
            if name not in after:
                q = q.where(st.c[name] == value)
        with self._tx("reading view rows") as conn:
            out = [dict(r) for r in conn.execute(q).mappings()]
        for r in out:
            if "src_offsets" in r:
                r["src_offsets"] = json.loads(r["src_offsets"])
            if pii:
                self._open_row(r, pii)
        if after:
            out = [r for r in out if all(r[n] == v for n, v in after.items())]
        return out

    def _open_row(self, row: dict[str, Any], pii: Sequence[str]) -> None:
        """The sealed PII values of ``row`` opened (``[erased]`` once the subject's key is
        destroyed) under the row's own tenant: a value of another tenant is refused."""
        assert self._unseal is not None
        tenant = row.get("tenant")
        owner = tenant if isinstance(tenant, str) else None
        for name in pii:
            row[name] = self._unseal(row.get(name), owner)

    def swap(
        self,
        live: Target,
        other: Target,
        tables: Sequence[Table],
        fence: WriterFence | None = None,
    ) -> None:
        o = self._offsets
        with self._tx("swapping in a rebuilt view") as conn:
            if fence is not None:  # the live views' writer: a replaced leader's swap is refused
                self._fence(conn, fence)
            for t in tables:
                old, new = live.table(t.name), other.table(t.name)
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{old}"'))
                conn.execute(sa.text(f'ALTER TABLE "{new}" RENAME TO "{old}"'))
            conn.execute(sa.delete(o).where(o.c.projection_id == live.id))
            conn.execute(
                sa.update(o).where(o.c.projection_id == other.id).values(projection_id=live.id)
            )
        for t in tables:  # the cached Table objects now name other tables
            self._tables.pop(other.table(t.name), None)

    def drop(self, target: Target, tables: Sequence[Table]) -> None:
        o = self._offsets
        with self._tx("dropping view tables") as conn:
            for t in tables:
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{target.table(t.name)}"'))
                self._tables.pop(target.table(t.name), None)
            conn.execute(sa.delete(o).where(o.c.projection_id == target.id))

    # -- retention -----------------------------------------------------------------------------
    def _existing(self, conn: Connection, target: Target, table: Table) -> sa.Table:
        st = self._table(target, table)
        if not sa.inspect(conn).has_table(st.name):
            raise InvalidInput(
                f"Projection target {target.id!r} has no table {st.name!r}; create it first "
                "(ensure) or check the projection name.",
                code="view_table_not_found",
            )
        return st

    def _expired(
        self, conn: Connection, target: Target, table: Table, column: str
    ) -> tuple[sa.Table, sa.Column[Any]]:
        check_time_column(table, column)
        st = self._existing(conn, target, table)
        return st, st.c[column]

    @staticmethod
    def _cut(st: sa.Table, col: sa.Column[Any], before_us: int, keep: Keep) -> Any:
        """Expired, and not a kept row (a NULL subject is kept by nothing)."""
        cond = col < before_us
        for name, values in (keep or {}).items():
            if values:
                c = st.c[name]
                cond = sa.and_(cond, sa.or_(c.is_(None), c.not_in(list(values))))
        return cond

    def count_rows_before(
        self, target: Target, table: Table, column: str, before_us: int, keep: Keep = None
    ) -> int:
        check_keep(table, keep)
        with self._tx("counting expired view rows") as conn:
            st, col = self._expired(conn, target, table, column)
            where = self._cut(st, col, before_us, keep)
            n = conn.execute(sa.select(sa.func.count()).select_from(st).where(where))
            return int(n.scalar_one())

    def delete_rows_before(
        self, target: Target, table: Table, column: str, before_us: int, keep: Keep = None
    ) -> int:
        check_keep(table, keep)
        with self._tx("deleting expired view rows") as conn:  # one transaction: all or nothing
            st, col = self._expired(conn, target, table, column)
            where = self._cut(st, col, before_us, keep)
            return int(conn.execute(sa.delete(st).where(where)).rowcount)

    # -- erasure -------------------------------------------------------------------------------
    def erase_values(
        self,
        target: Target,
        table: Table,
        column: str,
        value: Any,
        columns: Sequence[str],
        marker: str,
        tenant: str | None = None,
    ) -> int:
        check_erasable(table, column, columns)
        with self._tx("erasing view values") as conn:  # one transaction: all or nothing
            if self._read_uri is not None:
                # the file's freed cell space is zeroed, not left holding the erased values
                conn.exec_driver_sql("PRAGMA secure_delete = ON")
            st = self._existing(conn, target, table)
            scrub = {c: sa.case((st.c[c].is_(None), None), else_=marker) for c in columns}
            where = st.c[column] == value
            if tenant is not None:
                where = sa.and_(where, st.c.tenant == tenant)
            erased = int(conn.execute(sa.update(st).where(where).values(scrub)).rowcount)
        if self._read_uri is not None and erased:
            # queries end within their time bound (the timer interrupts them): wait that long,
            # once (a query that outlived one wait is retried after writes, not waited for
            # again with the writers held, once per table of an erasure)
            pending = self._wal_erased_pending
            self._truncate_wal(wait_s=0.0 if pending else self.query_seconds + 1.0)
        return erased

    def _truncate_wal(self, wait_s: float) -> None:
        """Copy the WAL into the file and empty it: its older frames still hold the pages as
        they were before an erasure (the values in plaintext). A query reading an older
        snapshot keeps the checkpoint from finishing; SQLite waits up to ``wait_s`` for it (the
        driver's own 5 s was shorter than a query may run). One still running then (a row of
        slow calls runs past the bound) leaves the values in the -wal: logged, and retried
        after every write until the truncation finishes (a new reader never blocks it: once
        the WAL is copied, new snapshots read the file)."""
        with self._lock, self._engine.connect() as conn:
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(wait_s * 1000)}")
            try:
                busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()[0]
                conn.commit()
            finally:
                conn.exec_driver_sql("PRAGMA busy_timeout = 5000")  # the driver's default
        if busy and not self._wal_erased_pending:
            log.warning(
                "views: erased values stay in the -wal file of %s until a running query with "
                "an older snapshot ends (the truncation is retried after each write)",
                self._engine.url.database,
            )
        elif not busy and self._wal_erased_pending:
            log.info(
                "views: the -wal file of %s is emptied of erased values", self._engine.url.database
            )
        self._wal_erased_pending = bool(busy)

    def query(self, sql: str, grants: Sequence[ViewGrant]) -> pa.Table:
        """Run ``sql`` as ``core.sqlguard`` rewrites it (each granted view becomes a
        filtered/masked subquery over its table), at most ``MAX_ROWS`` rows.

        SQLite: on its own read-only connection to the WAL file (``_sqlite_reader``: no
        projection write waits for it), with ``PRAGMA query_only`` and an authorizer that denies
        reading any table but the granted ones and reads their masked columns as NULL.
        PostgreSQL: in a READ ONLY transaction with a statement timeout, rolled back, through a
        server-side cursor, on its own pooled connection (not under the writers' lock). Both:
        the result's values at most ``query_memory_bytes`` (422 ``query_memory_limit``)."""
        dialect = self._engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ConfigError(
                f"Queries over transactional views run on SQLite or PostgreSQL, not {dialect}."
            )
        inspector = sa.inspect(self._engine)
        names = [*inspector.get_table_names(), *inspector.get_view_names()]
        rel = {g.name: g.relation for g in grants}  # a time-travel grant reads its copy
        if dialect == "postgresql":
            rewritten = guard(
                sql, "postgres", grants, lambda v: sg_exp.table_(rel.get(v, v)), names
            )
            if self._unseal is None:
                return self._query_postgres(rewritten)
            sensitive = [c for g in grants for c in g.pii - g.masked]
            sealed = sealed_outputs(sql, "postgres", sensitive)  # refused before it runs
            return self._open_result(self._query_postgres(rewritten), sealed, grants)
        rewritten = guard(
            sql, "sqlite", grants, lambda v: sg_exp.table_(rel.get(v, v), db="main"), names
        )
        masked = {g.relation: g.masked for g in grants}

        def authorize(
            action: int, arg1: str | None, arg2: str | None, db: str | None, _: Any
        ) -> int:
            if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE):
                return sqlite3.SQLITE_OK
            if action == sqlite3.SQLITE_READ and db == "main" and arg1 in masked:
                return sqlite3.SQLITE_IGNORE if arg2 in masked[arg1] else sqlite3.SQLITE_OK
            return sqlite3.SQLITE_DENY

        seconds = self.query_seconds
        deadline = time.monotonic() + seconds

        def past_deadline() -> int:  # non-zero interrupts the statement
            return int(time.monotonic() > deadline)

        memory = int(self.query_memory_bytes)
        with self._sqlite_reader() as raw:
            # sqlite3_interrupt from a timer, besides the progress handler. SQLite looks at both
            # only at the VM's jumps, never inside one row's function calls (measured: 300 slow
            # instr columns ran 36 s under a 3 s bound); the handler every 10k steps only, so a
            # row of slow calls was answered late. The interrupt is seen at the next jump: the
            # query is refused after that row. Only the separate connection below keeps such a
            # row from delaying projection writes.
            timer = threading.Timer(seconds, raw.interrupt)
            timer.daemon = True
            # SQLite runs in the hub's process and has no memory bound of its own: one value
            # (zeroblob, printf padding) could be a GB, and the rows are collected here. Each
            # value is held to QUERY_VALUE_BYTES, all of them to the query's memory bound.
            length = raw.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, min(memory, QUERY_VALUE_BYTES))
            try:
                raw.execute("PRAGMA query_only = ON")
                raw.set_authorizer(authorize)
                raw.set_progress_handler(past_deadline, 10_000)  # every 10k VM steps
                timer.start()
                cursor = raw.execute(rewritten)
                columns = [d[0] for d in cursor.description or ()]
                data = _fetch_bounded(cursor, memory)
            except sqlite3.OperationalError as exc:
                if time.monotonic() > deadline and "interrupt" in str(exc):
                    raise too_slow(seconds) from exc
                raise query_failed(str(exc)) from exc
            except sqlite3.DataError as exc:  # a value over SQLITE_LIMIT_LENGTH
                raise InvalidInput(
                    f"A value of the query is longer than {QUERY_VALUE_BYTES:,} bytes, the "
                    f"longest a query may build ({exc}): select a part of it (substr).",
                    code="query_memory_limit",
                ) from exc
            except sqlite3.Error as exc:
                raise query_failed(str(exc)) from exc
            finally:
                timer.cancel()
                timer.join()  # no interrupt lands on the connection once it is handed back
                raw.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, length)
                raw.set_progress_handler(None, 0)
                raw.set_authorizer(None)
        return _result(columns, data)

    @contextlib.contextmanager
    def _sqlite_reader(self) -> Iterator[sqlite3.Connection]:
        """A connection a query reads through: its own read-only one on a WAL file (never under
        the writers' lock: a slow query delays no projection write), else the store's own,
        under the lock (an in-memory database exists on that connection only)."""
        if self._read_uri is not None:
            # mode=ro: SQLite refuses every write on it, whatever the authorizer lets through.
            try:
                raw = sqlite3.connect(self._read_uri, uri=True, timeout=self.query_seconds)
            except sqlite3.Error as exc:
                raise self._translate(exc, "opening a query's read connection") from exc
            try:
                yield raw
            finally:
                raw.close()
            return
        with self._lock, self._engine.connect() as conn:
            shared = conn.connection.dbapi_connection
            assert isinstance(shared, sqlite3.Connection)
            try:
                yield shared
            finally:
                conn.exec_driver_sql("PRAGMA query_only = OFF")
                conn.rollback()

    def _open_result(
        self, result: pa.Table, sealed: frozenset[str], grants: Sequence[ViewGrant]
    ) -> pa.Table:
        """``result`` with the columns ``sealed_outputs`` named opened: under the caller's
        tenant when every grant filters to one (a value of another tenant is refused), else
        under the tenant the sealed text names (a reader of every tenant)."""
        assert self._unseal is not None
        unseal = self._unseal
        tenants = {g.tenant for g in grants}
        owner = next(iter(tenants)) if len(tenants) == 1 else None
        for i, name in enumerate(result.column_names):
            if name.lower() in sealed:
                values = [unseal(v, owner) for v in result.column(i).to_pylist()]
                result = result.set_column(i, result.field(i).name, pa.array(values))
        return result

    def _query_postgres(self, rewritten: str) -> pa.Table:
        """``rewritten`` through a named (server-side) cursor, fetched in bounded chunks: the
        driver's default cursor buffers the whole result in the hub at execute, so one analyst's
        ``lpad(..., 500000000)`` over a few rows took GBs of the hub's memory. Each FETCH runs
        under what is left of the query's time bound (statement_timeout is per statement)."""
        dbapi_error: type[Exception] = self._engine.dialect.loaded_dbapi.Error
        seconds = self.query_seconds
        deadline = time.monotonic() + seconds
        memory = int(self.query_memory_bytes)
        # Not under self._lock (every write takes it): a READ ONLY transaction reads its own
        # snapshot and blocks no writer, so a query of up to its bound delays no projection batch
        # and no other tenant's query (held, one analyst's queries stalled every tenant's views).
        # At most QUERY_CONNECTIONS at once: the writers always find a pooled connection.
        if not self._query_slots.acquire(timeout=seconds):
            raise too_slow(seconds)
        try:
            return self._query_postgres_on(rewritten, deadline, seconds, memory, dbapi_error)
        finally:
            self._query_slots.release()

    def _query_postgres_on(
        self,
        rewritten: str,
        deadline: float,
        seconds: float,
        memory: int,
        dbapi_error: type[Exception],
    ) -> pa.Table:
        with self._engine.connect() as conn:

            def remaining() -> None:  # before each statement: the rest of the time bound
                ms = int((deadline - time.monotonic()) * 1000)
                if ms <= 0:
                    raise too_slow(seconds)
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {ms}")

            try:
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                remaining()
                # The driver's own cursor: no parameter markers, so a '%' in the SQL is literal.
                raw = conn.connection.dbapi_connection
                cursor = raw.cursor(name="hub_query")  # type: ignore[union-attr]
                cursor.execute(_rows_bounded(rewritten))
                columns = [d[0] for d in cursor.description or ()]
                data = _fetch_bounded(cursor, memory, before=remaining)
                cursor.close()
            except (sa.exc.SQLAlchemyError, dbapi_error) as exc:
                if "statement timeout" in str(exc):
                    raise too_slow(seconds) from exc
                if _ROW_TOO_LONG in str(exc):
                    raise InvalidInput(
                        f"A row of the query is longer than {QUERY_VALUE_BYTES:,} bytes, the "
                        "longest a query may return: select a part of the long value (substr, "
                        "left) or fewer columns.",
                        code="query_memory_limit",
                    ) from exc
                raise query_failed(str(getattr(exc, "orig", None) or exc)) from exc
            finally:
                conn.rollback()
        return _result(columns, data)

    def save_state(self, state: ViewState) -> None:
        with self._tx("saving a view digest") as conn:
            self._upsert(
                conn,
                self._states,
                [
                    {
                        "projection_id": state.projection,
                        "table_name": state.table,
                        "digest": state.digest,
                        "rows": state.rows,
                        "positions": state.positions,
                        "ledger_size": state.ledger_size,
                        "computed_at_ms": state.computed_at_ms,
                    }
                ],
                update=True,
            )

    def states(self, projection: str) -> list[ViewState]:
        s = self._states
        with self._tx("reading view digests") as conn:
            rows = conn.execute(
                sa.select(s).where(s.c.projection_id == projection).order_by(s.c.table_name)
            ).all()
        return [
            ViewState(
                r.projection_id,
                r.table_name,
                r.digest,
                r.rows,
                r.positions,
                r.ledger_size,
                r.computed_at_ms,
            )
            for r in rows
        ]

    def close(self) -> None:
        self._engine.dispose()


# PostgreSQL queries one store runs at once: below the engine's default pool (5 + 10 overflow),
# so the projection writers never wait for a connection behind analysts' queries.
QUERY_CONNECTIONS = 4

# Longest one text or blob value of a SQLite query's result may be (SQLITE_LIMIT_LENGTH while it
# runs): no view stores values near it, and it lets rows be fetched in chunks whose worst case
# fits what is left of the query's memory bound.
QUERY_VALUE_BYTES = 1 << 20


def _secure_delete(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA secure_delete = ON")


# PostgreSQL builds values of up to 1 GB (repeat, lpad) and a FETCH sends a row whole: one
# row of one value came into the hub before any count (3.9 GB of RSS and 85 s for one
# analyst's repeat('x', 1000000000)). Each result row is measured where it is made and refused
# there past QUERY_VALUE_BYTES; the error carries this mark.
_ROW_TOO_LONG = "hub_query_row_too_long"


def _rows_bounded(rewritten: str) -> str:
    """``rewritten`` (one guarded PostgreSQL query) with each result row held to
    ``QUERY_VALUE_BYTES`` by PostgreSQL itself: the same columns, names and order (a subquery
    with ORDER BY is scanned in its order), an error naming ``_ROW_TOO_LONG`` past it. The
    size is not a constant, so the cast runs per row, never when the query is planned.
    ``OFFSET 0`` keeps the planner from pulling the query up into the check, which evaluated
    each result expression once per reference of the row (1.8x the time of a long value)."""
    size = "pg_column_size(hub_q.*)"
    return (
        f"SELECT hub_q.* FROM (SELECT * FROM ({rewritten}) AS hub_i OFFSET 0) AS hub_q "
        f"WHERE CASE WHEN {size} > "
        f"{QUERY_VALUE_BYTES} THEN CAST('{_ROW_TOO_LONG} ' || {size} AS integer) = 0 "
        "ELSE TRUE END"
    )


_SLOT = 8  # a value's pointer in its row tuple
_ROW = getsizeof(())  # a row tuple's own header


def _fetch_bounded(cursor: Any, memory: int, before: Callable[[], None] | None = None) -> list[Any]:
    """Up to ``MAX_ROWS + 1`` rows, refused (``query_memory_limit``) once the Python objects
    holding them (values, their slots and the row tuples) pass ``memory``.

    SQLite (``before`` None): each chunk is at most what is left of ``memory`` were each of its
    values as long as SQLite lets one be. PostgreSQL (``before`` runs before each FETCH: the
    rest of the time bound): a value may be up to its 1 GB whatever the chunk, so chunks are
    sized on the longest row seen so far (twice it), starting at 10 rows; sizing them on the
    worst case made a 100k-row query 2-3x slower (thousands of FETCH round trips). PostgreSQL
    refuses a row past ``QUERY_VALUE_BYTES`` (``_rows_bounded``), so a chunk is also at most
    what is left of ``memory`` in rows of that size: small rows first did not size a chunk of
    10,000 long ones."""
    rows: list[Any] = []
    used = widest = 0
    if before is None:
        width = max(1, len(cursor.description or ())) * QUERY_VALUE_BYTES
    else:
        width = max(1, memory // 10)  # the first chunk: 10 rows
    while len(rows) <= MAX_ROWS:
        size = min(10_000, MAX_ROWS + 1 - len(rows), max(1, (memory - used) // width))
        if before is not None:
            size = min(size, max(1, (memory - used) // QUERY_VALUE_BYTES))
            before()
        chunk = cursor.fetchmany(size)
        if not chunk:
            break
        for row in chunk:
            # what the hub holds: each value's object and its slot in the row tuple (counted by
            # length, a 2-character str took 30x its count: 51 bytes and a slot)
            n = sum(map(getsizeof, row)) + _SLOT * len(row) + _ROW
            used += n
            widest = max(widest, n)
        if before is not None:
            width = max(64, 2 * widest)
        if used > memory:
            raise too_much_memory(memory)
        rows.extend(chunk)
    return rows


def _result(columns: list[str], data: Sequence[Sequence[Any]]) -> pa.Table:
    """The rows as an Arrow table: every column named, also when there are no rows."""
    if len(data) > MAX_ROWS:
        raise too_many_rows()
    values = list(zip(*data, strict=True)) if data else [() for _ in columns]
    return pa.Table.from_arrays([pa.array(list(v)) for v in values], names=columns)
