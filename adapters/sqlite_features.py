"""SqliteFeatureStore: the embedded FeatureStore (one SQLite file; ``":memory:"`` for a training
set cut in memory). Online and offline reads are the same indexed queries: a window is a range
scan of ``(series, entity, time_us)``, an attribute set the versions before a time.

Scoring reads this file (and the Feast rows, MACed as genuine, are written from it), so that
whoever can write the file cannot change what a model scores on, every row carries ``mac``:
HMAC-SHA256 under the hub's key for the feature table (``mac_key``, derived with ``MAC_LABEL``)
over the row's identifying columns and value(s): a series point over its series, entity (the
tenant-qualified key), time, sequence number and value; an attribute version over its set,
entity, time, sequence number and every field with its value (each of the version's rows holds
that one MAC, so a dropped or added field is noticed too). Every read refuses a row whose MAC is
missing or wrong (``FeatureRowRefused``, ``on_refused`` told, an ERROR log naming the entity by
a digest): nothing is scored on it.

Deletions: a per-row MAC cannot tell a row deleted whole (a payment gone from a window, a later
KYC version gone so an older one applies). So the store also keeps, per series or attribute set
and entity, a MACed *head*: how many rows the entity has there (``heads``). Every read counts the
rows of the entities it reads (all of them, not only the window's) and refuses when the count is
not the head's, or the head's MAC is wrong. The whole table is vouched for by a MACed *summary*
(``table_mac``) over the sequence counter, the total rows, the reset base and the feed positions:
checked on open and before each ``apply`` (positions edited alone would make the feed fold records
again, doubling them); and the heads' sum must equal the total rows (an entity's rows deleted with
its head, or a head put back to an older genuine copy with rows deleted): checked on open, in
``apply`` and on a read of an entity without rows, at most every ``check_every_s`` seconds. Points
and versions take the sequence numbers in ``[base, seq)`` densely, so ``changes_since`` (the
cache's feed) also refuses a gap. On any of these the table is emptied with its positions in one
transaction (the reset), an ERROR log (``feature_table_reset``) and ``on_refused(name, "rows
missing")`` name the problem, and the read raises ``FeatureRowRefused`` (nothing is scored; the
feed folds the authenticated log again before the retry), or ``apply`` raises ``Conflict`` (the
feed reads the positions again and folds from the start). An older genuine copy of the whole file
is consistent: its positions go back with it and the feed folds the rest again; re-folding loses
what retention already cut from the log. See docs/trust-model.md."""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

from adapters.sqlite_open import open_store, shred_freed
from core.errors import Conflict, FeatureRowRefused, HubError
from core.ports.eventlog import TopicPartition
from core.ports.ml import (
    AttributeVersion,
    ChangeSet,
    FeatureStore,
    History,
    SeriesPoint,
    VersionHistory,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    series TEXT NOT NULL, entity TEXT NOT NULL, time_us INTEGER NOT NULL, seq INTEGER NOT NULL,
    value REAL NOT NULL, mac BLOB, PRIMARY KEY (series, entity, time_us, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS versions (
    attributes TEXT NOT NULL, entity TEXT NOT NULL, valid_from_us INTEGER NOT NULL,
    seq INTEGER NOT NULL, field TEXT NOT NULL, value TEXT, mac BLOB,
    PRIMARY KEY (attributes, entity, valid_from_us, seq, field)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS positions (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS heads (
    kind TEXT NOT NULL, name TEXT NOT NULL, entity TEXT NOT NULL, n INTEGER NOT NULL, mac BLOB,
    PRIMARY KEY (kind, name, entity)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS table_mac (id INTEGER PRIMARY KEY CHECK (id = 0), mac BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS series_by_seq ON series (seq);
CREATE INDEX IF NOT EXISTS versions_by_seq ON versions (seq);
"""


# What the ``entity`` columns hold: 2 = ``ml.features.entity_key(tenant, entity)``. A store
# without it (entities keyed by id alone, so two tenants' accounts of one id shared a history)
# is emptied on open, positions included: the feed folds the log again from its start.
ENTITY_KEYS = 2

MAC_LABEL = b"hub embedded feature table"  # the purpose the hub derives ``mac_key`` with

log = logging.getLogger(__name__)


def _text(value: str | None) -> bytes:
    """A text field as the MAC covers it: length-prefixed (unambiguous whatever it holds)."""
    if value is None:
        return b"~"
    data = value.encode()
    return b"%d:%b" % (len(data), data)


_POINT = struct.Struct(">qqd")  # time_us, seq, value: fixed width, exact (the float's bits)


def _keyed(key: bytes, kind: bytes) -> Any:
    """Keyed BLAKE2b-256 (a MAC by design, RFC 7693: no HMAC wrapper needed), domain-separated
    by ``kind``; copied for each row, so the key's set-up is done once."""
    return hashlib.blake2b(b"hub-feature-%b/v1|" % kind, key=key, digest_size=32)


def point_base(points: Any, series: str, entity: str) -> Any:
    """``points`` (``_keyed(key, b"point")``) having absorbed a series and entity: every point
    of that entity's series is MACed from a copy of it (the hot read checks many per entity)."""
    base = points.copy()
    base.update(b"%b|%b|" % (_text(series), _text(entity)))
    return base


def point_mac(base: Any, time_us: int, seq: int, value: float) -> bytes:
    """The MAC of a series point: its series and entity (in ``base``), time, sequence number
    and value (the float's exact bits)."""
    mac = base.copy()
    mac.update(_POINT.pack(time_us, seq, value))
    digest: bytes = mac.digest()
    return digest


def version_mac(
    versions: Any,
    attributes: str,
    entity: str,
    valid_from_us: int,
    seq: int,
    values: Mapping[str, str | None],
) -> bytes:
    """The MAC of an attribute version (``versions``: ``_keyed(key, b"version")``): its set,
    entity, time, sequence number and every field (sorted) with its value, null included."""
    mac = versions.copy()
    mac.update(
        b"%b|%b|%d|%d|%d" % (_text(attributes), _text(entity), valid_from_us, seq, len(values))
    )
    for name in sorted(values):
        mac.update(b"|%b=%b" % (_text(name), _text(values[name])))
    digest: bytes = mac.digest()
    return digest


SERIES, ATTRIBUTES = "s", "a"  # a head's kind
_SUMMARY = struct.Struct(">qqq")  # seq, rows, base


def head_mac(heads: Any, kind: str, name: str, entity: str, n: int) -> bytes:
    """The MAC of an entity's head (``heads``: ``_keyed(key, b"head")``): its kind, series or
    set, entity and row count."""
    mac = heads.copy()
    mac.update(b"%b|%b|%b|%d" % (_text(kind), _text(name), _text(entity), n))
    digest: bytes = mac.digest()
    return digest


class _RowsMissing(Exception):
    """Rows were deleted from the table (or its bookkeeping edited): raised inside a read or
    write, turned into the reset outside its transaction (``SqliteFeatureStore._reset``)."""

    def __init__(self, name: str, entity: str | None, why: str) -> None:
        super().__init__(why)
        self.name, self.entity, self.why = name, entity, why


F = TypeVar("F", bound=Callable[..., Any])


def _guarded(method: F) -> F:
    """A read that found rows missing (``_RowsMissing``) resets the table, then refuses."""

    @functools.wraps(method)
    def read(self: SqliteFeatureStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except _RowsMissing as missing:
            raise self._refused_missing(missing) from None

    return cast(F, read)


def _counts(db: Any, name: str, entities: Sequence[str]) -> dict[str, int]:
    """How many points each of ``entities`` has in series ``name`` (all times)."""
    return dict(
        db.execute(
            "SELECT entity, count(*) FROM series WHERE series = ? AND "
            f"entity IN ({','.join('?' * len(entities))}) GROUP BY entity",
            (name, *entities),
        )
    )


def entity_ref(entity: str) -> str:
    """How errors and logs name an entity: a digest, not its id (an account id may identify a
    person)."""
    return "entity #" + hashlib.sha256(entity.encode()).hexdigest()[:16]


class SqliteFeatureStore(FeatureStore):
    def __init__(
        self,
        path: Path | str,
        *,
        mac_key: bytes | None = None,
        on_refused: Callable[[str, str], None] | None = None,
        check_every_s: float = 5.0,
    ) -> None:
        """``mac_key``: the key of the rows' MACs (32+ bytes; the hub's is derived with
        ``MAC_LABEL``), required for a file; ``":memory:"`` may omit it (nothing outside this
        process can write it: a random key, so the one code path is always the checked one).
        ``on_refused(name, reason)``: told of every refused row (a metric). ``check_every_s``:
        how often at most the heads' sum is checked against the summary (module docstring)."""
        if mac_key is None:
            if str(path) != ":memory:":
                raise HubError(
                    f"The feature store {path} needs a MAC key (mac_key=, derived with "
                    f"{MAC_LABEL.decode()!r}): its rows are checked on every read."
                )
            mac_key = os.urandom(32)
        if len(mac_key) < 32:
            raise HubError(
                f"The feature table's MAC key is {len(mac_key)} bytes: give at least 32."
            )
        self._points = _keyed(mac_key, b"point")
        self._versions_key = _keyed(mac_key, b"version")
        self._heads_key = _keyed(mac_key, b"head")
        self._summary_key = _keyed(mac_key, b"summary")
        self.check_every_s = check_every_s
        self._checked = 0.0  # monotonic time of the last heads' sum check
        # (kind, name, entity) -> (n, mac) of heads whose MAC was checked (a cache: bounded)
        self._good_heads: dict[tuple[str, str, str], tuple[int, bytes]] = {}
        self.resets = 0  # tables emptied by this process (rows found missing)
        # Per (series, entity), the MAC state having absorbed them (a cache: bounded, rebuilt).
        self._bases: dict[tuple[str, str], Any] = {}
        self._on_refused = on_refused
        self.refused = 0  # rows refused by this process
        self._path = str(path)
        self._db = open_store(path, _SCHEMA, "synchronous=NORMAL")
        self._lock = threading.Lock()
        self._upgrade()
        try:
            with self._lock:
                self._check_totals(self._db, force=True)
        except _RowsMissing as missing:
            self._reset(missing)

    def _refuse(self, kind: str, name: str, entity: str, mac: object) -> FeatureRowRefused:
        """Count and log a refused row; the error to raise (nothing may be scored on it)."""
        reason = "missing MAC" if not mac else "wrong MAC"
        self.refused += 1
        log.error(
            "Embedded feature %s row %s/%s refused: %s", kind, name, entity_ref(entity), reason
        )
        if self._on_refused is not None:
            self._on_refused(name, reason)
        why = (
            "it carries no MAC (not written by the hub)"
            if not mac
            else "its MAC does not match (edited, forged, or copied from another entity, tenant, "
            "time or set, or MACed under another hub's key)"
        )
        return FeatureRowRefused(
            f"A {kind} row of {name!r} for {entity_ref(entity)} in the embedded feature table is "
            f"refused: {why}. Nothing was scored on it. Check who can write ml/features.sqlite; "
            "to rebuild it, stop the hub, delete the file and start it again (the feed folds the "
            "authenticated log again from its start)."
        )

    def _base(self, name: str, entity: str) -> Any:
        base = self._bases.get((name, entity))
        if base is None:
            if len(self._bases) >= 50_000:
                self._bases.clear()
            base = self._bases[name, entity] = point_base(self._points, name, entity)
        return base

    def _check_point(self, name: str, entity: str, t: int, seq: int, v: float, mac: object) -> None:
        if not (
            isinstance(mac, bytes)
            and hmac.compare_digest(mac, point_mac(self._base(name, entity), t, seq, v))
        ):
            raise self._refuse("series", name, entity, mac)

    def _check_version(
        self,
        name: str,
        entity: str,
        valid_from: int,
        seq: int,
        values: Mapping[str, str | None],
        macs: set[object],
    ) -> None:
        """All rows of one version carry the one MAC over all its fields."""
        mac = next(iter(macs)) if len(macs) == 1 else None
        if not (
            isinstance(mac, bytes)
            and hmac.compare_digest(
                mac, version_mac(self._versions_key, name, entity, valid_from, seq, values)
            )
        ):
            raise self._refuse("attribute", name, entity, mac if len(macs) == 1 else b"?")

    def _upgrade(self) -> None:
        """Empty a store whose entities are not tenant-qualified (``ENTITY_KEYS``) or whose rows
        carry no MAC (a file from before the MACs: its rows cannot be vouched for): its points,
        versions and positions go in one transaction, so the feed rebuilds it from the log (whose
        events are authenticated); the sequence counter stays (change tokens only grow)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT v FROM meta WHERE k = 'entity_keys'").fetchone()
            unmaced = False
            for table in ("series", "versions"):
                if "mac" not in {r[1] for r in db.execute(f"PRAGMA table_info({table})")}:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN mac BLOB")
                    unmaced = True
            # a file from before the heads: deletions cannot be ruled out, so it is rebuilt too
            # (a file with the marker and no summary is a deletion: found by the first check)
            headless = db.execute("SELECT v FROM meta WHERE k = 'heads'").fetchone() is None
            if unmaced or headless or row is None or int(row[0]) != ENTITY_KEYS:
                had = db.execute("SELECT EXISTS (SELECT 1 FROM positions)").fetchone()[0]
                self._empty(db)
                db.execute("INSERT OR REPLACE INTO meta VALUES ('entity_keys', ?)", (ENTITY_KEYS,))
                db.execute("INSERT OR REPLACE INTO meta VALUES ('heads', 1)")
                if had:
                    log.warning(
                        "Embedded feature table emptied on open: written by an earlier release "
                        "(or its markers removed); the feed folds the log again from its start",
                        extra={"event": "feature_table_reset", "why": "upgrade"},
                    )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # -- deletions: heads, summary, reset (module docstring) ---------------------------------

    def _meta(self, db: Any) -> tuple[int, int, int]:
        got = dict(db.execute("SELECT k, v FROM meta WHERE k IN ('seq', 'rows', 'base')"))
        return int(got.get("seq", 0)), int(got.get("rows", 0)), int(got.get("base", 0))

    def _summary(self, db: Any) -> bytes:
        """The summary MAC of the table as it is: its counters and feed positions."""
        mac = self._summary_key.copy()
        mac.update(_SUMMARY.pack(*self._meta(db)))
        for topic, partition, offset in db.execute(
            "SELECT topic, partition, next_offset FROM positions ORDER BY topic, partition"
        ):
            mac.update(b"|%b/%d=%d" % (_text(topic), partition, offset))
        digest: bytes = mac.digest()
        return digest

    def _seal(self, db: Any) -> None:
        db.execute("INSERT OR REPLACE INTO table_mac VALUES (0, ?)", (self._summary(db),))

    def _empty(self, db: Any) -> None:
        """Delete every row, head and position (in the caller's transaction); the sequence
        numbers go on above the old ones (a change token from before is below ``base``: the
        cache starts afresh) and the summary is sealed again."""
        seq, _, base = self._meta(db)
        seq += seq > base  # a token of the old rows is then below the new base
        for table in ("series", "versions", "heads", "positions"):
            db.execute(f"DELETE FROM {table}")
        db.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)", [("seq", seq), ("rows", 0), ("base", seq)]
        )
        self._seal(db)

    def _check_totals(self, db: Any, *, force: bool = False) -> None:
        """The summary's MAC and (at most every ``check_every_s``, or ``force``) the heads'
        sum against its total rows; raises ``_RowsMissing``."""
        got = db.execute("SELECT mac FROM table_mac WHERE id = 0").fetchone()
        if got is None or not hmac.compare_digest(bytes(got[0]), self._summary(db)):
            raise _RowsMissing(
                "(table)",
                None,
                "its summary (sequence counter, row count, feed positions) does not match its MAC",
            )
        now = time.monotonic()
        if not force and now - self._checked < self.check_every_s:
            return
        rows = self._meta(db)[1]
        (total,) = db.execute("SELECT coalesce(sum(n), 0) FROM heads").fetchone()
        if int(total) != rows:
            raise _RowsMissing(
                "(table)",
                None,
                f"its entities' heads count {total} rows, its summary {rows}: an entity's rows "
                "were deleted with its head, or a head was put back to an older copy",
            )
        self._checked = now

    def _head(self, kind: str, name: str, entity: str, n: Any, mac: Any) -> int:
        """A stored head's count, its MAC checked (a pair checked before is not recomputed: the
        same bytes under the same key); raises ``_RowsMissing``."""
        key = (kind, name, entity)
        if self._good_heads.get(key) == (n, mac):
            return int(n)
        if not (
            isinstance(mac, bytes)
            and type(n) is int
            and hmac.compare_digest(mac, head_mac(self._heads_key, kind, name, entity, n))
        ):
            raise _RowsMissing(name, entity, "its head's MAC does not match")
        if len(self._good_heads) >= 100_000:
            self._good_heads.clear()
        self._good_heads[key] = (n, mac)
        return n

    def _heads(self, db: Any, kind: str, name: str, entities: Sequence[str]) -> dict[str, int]:
        """The checked heads of ``entities`` (absent: no row yet); raises ``_RowsMissing``."""
        out: dict[str, int] = {}
        for chunk in _chunks(entities):
            for entity, n, mac in db.execute(
                "SELECT entity, n, mac FROM heads WHERE kind = ? AND name = ? AND "
                f"entity IN ({','.join('?' * len(chunk))})",
                (kind, name, *chunk),
            ):
                out[entity] = self._head(kind, name, entity, n, mac)
        return out

    def _match_series(self, db: Any, name: str, entities: Sequence[str]) -> None:
        """``_match`` for a window read of series ``name`` (its rows are not all read): each
        head and its entity's count of points in one query; an entity without a head is
        counted apart (no point: one index probe)."""
        got = db.execute(
            "SELECT h.entity, h.n, h.mac, (SELECT count(*) FROM series s WHERE s.series = ? "
            "AND s.entity = h.entity) FROM heads h WHERE h.kind = 's' AND h.name = ? AND "
            f"h.entity IN ({','.join('?' * len(entities))})",
            (name, name, *entities),
        ).fetchall()
        for entity, n, mac, have in got:
            want = self._head(SERIES, name, entity, n, mac)
            if want != have:
                raise _RowsMissing(name, entity, f"it has {have} rows where its head counts {want}")
        if len(got) < len(entities):
            headed = {g[0] for g in got}
            absent = [e for e in entities if e not in headed]
            for entity, have in _counts(db, name, absent).items():
                raise _RowsMissing(name, entity, f"it has {have} rows where its head counts 0")
            self._check_totals(db)

    def _match(
        self, db: Any, kind: str, name: str, entities: Sequence[str], counts: Mapping[str, int]
    ) -> None:
        """Raise ``_RowsMissing`` unless each of ``entities`` has as many rows (``counts``) as
        its head says; an entity without rows nor head may have been deleted whole: the
        table's totals are checked (at most every ``check_every_s``)."""
        heads = self._heads(db, kind, name, entities)
        absent = False
        for entity in entities:
            want, have = heads.get(entity, 0), counts.get(entity, 0)
            if want != have:
                raise _RowsMissing(name, entity, f"it has {have} rows where its head counts {want}")
            absent = absent or not want
        if absent:
            self._check_totals(db)

    def _reset(self, missing: _RowsMissing) -> None:
        """Empty the table (``_empty``) and name the problem: an ERROR log, ``on_refused``."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                self._empty(db)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        self.resets += 1
        where = "" if missing.entity is None else f" row(s) of {entity_ref(missing.entity)}"
        log.error(
            "Embedded feature table: %s%s missing or its bookkeeping edited (%s); the table was "
            "emptied and the feed folds the log again from its start",
            missing.name,
            where,
            missing.why,
            extra={
                "event": "feature_table_reset",
                "feature": missing.name,
                "entity": None if missing.entity is None else entity_ref(missing.entity),
                "why": missing.why,
            },
        )
        if self._on_refused is not None:
            self._on_refused(missing.name, "rows missing")

    def _refused_missing(self, missing: _RowsMissing) -> FeatureRowRefused:
        self._reset(missing)
        where = "" if missing.entity is None else f" for {entity_ref(missing.entity)}"
        return FeatureRowRefused(
            f"Rows of {missing.name!r}{where} are missing from the embedded feature table: "
            f"{missing.why}. Nothing was scored. The table was emptied and the feed folds the "
            "authenticated log again from its start (retry); check who can write "
            "ml/features.sqlite."
        )

    def apply(
        self,
        points: Sequence[SeriesPoint],
        versions: Sequence[AttributeVersion],
        positions: Mapping[TopicPartition, int],
        expected: Mapping[TopicPartition, int] | None = None,
    ) -> None:
        try:
            self._apply(points, versions, positions, expected)
        except _RowsMissing as missing:
            self._reset(missing)
            raise Conflict(
                f"The embedded feature table was emptied: rows of {missing.name!r} are missing "
                f"({missing.why}); read the positions again and fold from the start."
            ) from None

    def _apply(
        self,
        points: Sequence[SeriesPoint],
        versions: Sequence[AttributeVersion],
        positions: Mapping[TopicPartition, int],
        expected: Mapping[TopicPartition, int] | None,
    ) -> None:
        versions = [v for v in versions if v.values]  # no field, no row: no sequence number
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                for tp, want in (expected or {}).items():
                    row = db.execute(
                        "SELECT next_offset FROM positions WHERE topic = ? AND partition = ?",
                        (tp.topic, tp.partition),
                    ).fetchone()
                    have = 0 if row is None else int(row[0])
                    if have != want:
                        raise Conflict(
                            f"The feature store's position of {tp.topic}[{tp.partition}] is "
                            f"{have}, not {want}: another feed folded it meanwhile; read the "
                            "positions again."
                        )
                self._check_totals(db)  # before adding to them (nothing edited is re-sealed)
                seq, total, _ = self._meta(db)
                added: dict[tuple[str, str, str], int] = {}
                for p in points:
                    added[SERIES, p.series, p.entity] = (
                        added.get((SERIES, p.series, p.entity), 0) + 1
                    )
                for v in versions:
                    k = (ATTRIBUTES, v.attributes, v.entity)
                    added[k] = added.get(k, 0) + len(v.values)
                base = self._base
                db.executemany(
                    "INSERT INTO series VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (
                            p.series,
                            p.entity,
                            p.time_us,
                            seq + i,
                            float(p.value),
                            point_mac(base(p.series, p.entity), p.time_us, seq + i, float(p.value)),
                        )
                        for i, p in enumerate(points)
                    ],
                )
                seq += len(points)
                rows = []
                for i, v in enumerate(versions):
                    mac = version_mac(
                        self._versions_key,
                        v.attributes,
                        v.entity,
                        v.valid_from_us,
                        seq + i,
                        v.values,
                    )
                    for name, value in v.values.items():
                        rows.append(
                            (v.attributes, v.entity, v.valid_from_us, seq + i, name, value, mac)
                        )
                db.executemany("INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                seq += len(versions)
                self._add_heads(db, added)
                total += sum(added.values())
                db.executemany(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)", [("seq", seq), ("rows", total)]
                )
                db.executemany(
                    "INSERT OR REPLACE INTO positions VALUES (?, ?, ?)",
                    [(tp.topic, tp.partition, off) for tp, off in positions.items()],
                )
                self._seal(db)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _add_heads(self, db: Any, added: Mapping[tuple[str, str, str], int]) -> None:
        """Each head of ``added``'s (kind, name, entity) counts its new rows (its MAC checked
        first: an edited head is not carried on)."""
        by_name: dict[tuple[str, str], list[str]] = {}
        for kind, name, entity in added:
            by_name.setdefault((kind, name), []).append(entity)
        rows = []
        for (kind, name), entities in by_name.items():
            heads = self._heads(db, kind, name, entities)
            for entity in entities:
                n = heads.get(entity, 0) + added[kind, name, entity]
                rows.append(
                    (kind, name, entity, n, head_mac(self._heads_key, kind, name, entity, n))
                )
        db.executemany("INSERT OR REPLACE INTO heads VALUES (?, ?, ?, ?, ?)", rows)

    def forget(self, entities: Sequence[str]) -> int:
        """Delete the points, versions and heads of ``entities`` in one transaction (the port's
        contract): the summary's row count goes down by the rows deleted, which must be what
        their heads counted (else the table is reset: ``_RowsMissing``), and its reset base
        moves up to the sequence counter, so a change token from before (an in-memory cache
        holding the deleted rows, in any process) is below it and that cache starts afresh
        instead of finding a gap. The feed positions stay."""
        try:
            return self._forget(entities)
        except _RowsMissing as missing:
            self._reset(missing)  # emptied: nothing of anyone is left to delete
            return 0

    def _forget(self, entities: Sequence[str]) -> int:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                self._check_totals(db, force=True)  # nothing edited is re-sealed
                deleted = counted = 0
                for chunk in _chunks(list(dict.fromkeys(entities))):
                    marks = ",".join("?" * len(chunk))
                    for kind, name, entity, n, mac in db.execute(
                        f"SELECT kind, name, entity, n, mac FROM heads WHERE entity IN ({marks})",
                        chunk,
                    ).fetchall():
                        counted += self._head(kind, name, entity, n, mac)
                    for table in ("series", "versions"):
                        deleted += db.execute(
                            f"DELETE FROM {table} WHERE entity IN ({marks})", chunk
                        ).rowcount
                    db.execute(f"DELETE FROM heads WHERE entity IN ({marks})", chunk)
                if deleted != counted:
                    raise _RowsMissing(
                        "(table)", None, f"the erased entities had {deleted} rows, heads {counted}"
                    )
                if deleted:
                    seq, total, base = self._meta(db)
                    seq += seq > base  # as ``_empty``: a token of the old rows is below base
                    db.executemany(
                        "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                        [("seq", seq), ("rows", total - deleted), ("base", seq)],
                    )
                    self._seal(db)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            gone = set(entities)
            for key in [k for k in self._good_heads if k[2] in gone]:
                del self._good_heads[key]
            if deleted and self._path != ":memory:":
                shred_freed(db)  # not in the file's free pages either
            return deleted

    def positions(self) -> dict[TopicPartition, int]:
        with self._lock:
            rows = self._db.execute("SELECT topic, partition, next_offset FROM positions")
            return {TopicPartition(t, p): o for t, p, o in rows}

    @_guarded
    def series(
        self, name: str, entities: Sequence[str], start_us: int, end_us: int
    ) -> dict[str, list[tuple[int, float]]]:
        out: dict[str, list[tuple[int, float]]] = {}
        with self._lock:
            for chunk in _chunks(entities):
                rows = self._db.execute(
                    "SELECT entity, time_us, seq, value, mac FROM series WHERE series = ? AND "
                    f"entity IN ({','.join('?' * len(chunk))}) AND time_us >= ? AND time_us < ? "
                    "ORDER BY entity, time_us, seq",
                    (name, *chunk, start_us, end_us),
                ).fetchall()
                for entity, t, seq, v, mac in rows:
                    self._check_point(name, entity, t, seq, v, mac)
                    points = out.get(entity)
                    if points is None:
                        points = out[entity] = []
                    points.append((t, v))
                # then no point is missing: each entity's count (all times) is its head's
                self._match_series(self._db, name, chunk)
        return out

    @_guarded
    def series_columns(
        self, name: str, entities: Sequence[str], start_us: int, end_us: int
    ) -> tuple[Any, Any, Any]:
        """One indexed range scan per chunk of entities, joined to the entities' indexes so every
        row is numbers (one C-level conversion to numpy, no per-row Python)."""
        import numpy as np

        distinct = list(dict.fromkeys(entities))
        index = {e: i for i, e in enumerate(entities)}
        parts = []
        with self._lock:
            for start in range(0, len(distinct), 400):
                chunk = distinct[start : start + 400]
                pairs = [x for e in chunk for x in (e, index[e])]
                named = {index[e]: e for e in chunk}
                rows = self._db.execute(
                    f"WITH asked(entity, i) AS (VALUES {','.join(['(?, ?)'] * len(chunk))}) "
                    "SELECT asked.i, s.time_us, s.value, s.seq, s.mac FROM asked JOIN series s "
                    "ON s.series = ? AND s.entity = asked.entity AND s.time_us >= ? "
                    "AND s.time_us < ? ORDER BY asked.i, s.time_us, s.seq",
                    (*pairs, name, start_us, end_us),
                ).fetchall()
                check = self._check_point
                for i, t, v, seq, mac in rows:
                    check(name, named[i], t, seq, v, mac)
                self._match_series(self._db, name, chunk)
                if rows:
                    # times < 2**53: exact
                    parts.append(np.array([r[:3] for r in rows], dtype=np.float64))
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0, dtype=np.float64)
        table = np.concatenate(parts)
        # chunks follow the entities' order, so the rows are sorted by (index, time, seq)
        return table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2].copy()

    @_guarded
    def attribute_versions(
        self, name: str, entities: Sequence[str], end_us: int
    ) -> dict[str, list[tuple[int, dict[str, str | None]]]]:
        out: dict[str, list[tuple[int, dict[str, str | None]]]] = {}
        with self._lock:
            for chunk in _chunks(entities):
                # every version, not only those before ``end_us``: their rows are counted
                # against the heads (an entity has few)
                rows = self._db.execute(
                    "SELECT entity, valid_from_us, seq, field, value, mac FROM versions WHERE "
                    f"attributes = ? AND entity IN ({','.join('?' * len(chunk))}) "
                    "ORDER BY entity, valid_from_us, seq",
                    (name, *chunk),
                ).fetchall()
                counts: dict[str, int] = {}
                for r in rows:
                    counts[r[0]] = counts.get(r[0], 0) + 1
                checked = self._versions(name, rows)  # MACs first, then the counts
                self._match(self._db, ATTRIBUTES, name, chunk, counts)
                for entity, valid_from, _seq, values in checked:
                    if valid_from < end_us:
                        out.setdefault(entity, []).append((valid_from, values))
        return out

    def attribute_entities(self, name: str) -> list[str]:
        """Every entity with a version of attribute set ``name`` (for exports such as Feast's)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT entity FROM versions WHERE attributes = ? ORDER BY entity", (name,)
            ).fetchall()
        return [r[0] for r in rows]

    def change_token(self) -> int | None:
        """The next sequence number ``apply`` will give (every point and version has one)."""
        with self._lock:
            return self._token()

    def _token(self) -> int:
        row = self._db.execute("SELECT v FROM meta WHERE k = 'seq'").fetchone()
        return 0 if row is None else int(row[0])

    @_guarded
    def changes_since(self, token: int, limit: int) -> ChangeSet | None:
        with self._lock:
            db = self._db
            db.execute("BEGIN")  # one read snapshot: the token and the rows below it agree
            try:
                now, _, base = self._meta(db)
                if token < base:  # from before a reset: the rows it had seen are gone
                    return None
                (n,) = db.execute(
                    "SELECT (SELECT count(*) FROM series WHERE seq >= ?) + "
                    "(SELECT count(*) FROM versions WHERE seq >= ?)",
                    (token, token),
                ).fetchone()
                if n > limit:
                    return None
                maced = db.execute(
                    "SELECT series, entity, time_us, seq, value, mac FROM series WHERE seq >= ? "
                    "ORDER BY seq",
                    (token,),
                ).fetchall()
                rows = db.execute(
                    "SELECT attributes, entity, valid_from_us, seq, field, value, mac FROM "
                    "versions WHERE seq >= ? ORDER BY seq, attributes, entity, valid_from_us",
                    (token,),
                ).fetchall()
            finally:
                db.execute("COMMIT")
        points = []
        for series, entity, t, seq, v, mac in maced:
            self._check_point(series, entity, t, seq, v, mac)
            points.append((series, entity, t, seq, v))
        versions: list[tuple[str, str, int, int, dict[str, str | None]]] = []
        group: list[tuple[Any, ...]] = []
        for row in rows:
            if group and group[-1][:4] != row[:4]:
                versions.extend(
                    (group[0][0], *v) for v in self._versions(group[0][0], [r[1:] for r in group])
                )
                group = []
            group.append(row)
        if group:
            versions.extend(
                (group[0][0], *v) for v in self._versions(group[0][0], [r[1:] for r in group])
            )
        # each point and version took one sequence number of [token, now): a gap is a deletion
        taken = len(points) + len(versions)
        if taken != now - token:
            raise _RowsMissing(
                "(table)", None, f"{now - token - taken} of the rows applied since {token} are gone"
            )
        return ChangeSet(now, points, versions)

    @_guarded
    def series_history(self, name: str, entities: Sequence[str]) -> History:
        import numpy as np

        index = {e: i for i, e in enumerate(entities)}
        parts = []
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                token = self._token()
                for chunk in _chunks(entities):
                    pairs = [x for e in chunk for x in (e, index[e])]
                    rows = db.execute(
                        f"WITH asked(entity, i) AS (VALUES {','.join(['(?, ?)'] * len(chunk))}) "
                        "SELECT asked.i, s.time_us, s.seq, s.value, s.mac FROM asked JOIN series s "
                        "ON s.series = ? AND s.entity = asked.entity "
                        "ORDER BY asked.i, s.time_us, s.seq",
                        (*pairs, name),
                    ).fetchall()
                    named = {index[e]: e for e in chunk}
                    counts: dict[str, int] = {}
                    for i, t, seq, v, mac in rows:
                        self._check_point(name, named[i], t, seq, v, mac)
                        counts[named[i]] = counts.get(named[i], 0) + 1
                    self._match(db, SERIES, name, chunk, counts)
                    if rows:
                        # all < 2**53: exact
                        parts.append(np.array([r[:4] for r in rows], dtype=np.float64))
            finally:
                db.execute("COMMIT")
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return History(token, empty, empty, empty, np.zeros(0, dtype=np.float64))
        table = np.concatenate(parts)
        return History(
            token,
            table[:, 0].astype(np.int64),
            table[:, 1].astype(np.int64),
            table[:, 2].astype(np.int64),
            table[:, 3].copy(),
        )

    @_guarded
    def versions_history(self, name: str, entities: Sequence[str]) -> VersionHistory:
        out: dict[str, list[tuple[int, int, dict[str, str | None]]]] = {}
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                token = self._token()
                for chunk in _chunks(entities):
                    rows = db.execute(
                        "SELECT entity, valid_from_us, seq, field, value, mac FROM versions "
                        f"WHERE attributes = ? AND entity IN ({','.join('?' * len(chunk))}) "
                        "ORDER BY entity, valid_from_us, seq",
                        (name, *chunk),
                    ).fetchall()
                    counts: dict[str, int] = {}
                    for r in rows:
                        counts[r[0]] = counts.get(r[0], 0) + 1
                    checked = self._versions(name, rows)  # MACs first, then the counts
                    self._match(db, ATTRIBUTES, name, chunk, counts)
                    for entity, valid_from, seq, values in checked:
                        out.setdefault(entity, []).append((valid_from, seq, values))
            finally:
                db.execute("COMMIT")
        return VersionHistory(token, out)

    def _versions(
        self, name: str, rows: Sequence[tuple[Any, ...]]
    ) -> list[tuple[str, int, int, dict[str, str | None]]]:
        """Rows ``(entity, valid_from_us, seq, field, value, mac)`` sorted by version, as
        ``(entity, valid_from_us, seq, values)``, each version's MAC checked (raises)."""
        out: list[tuple[str, int, int, dict[str, str | None]]] = []
        macs: set[object] = set()
        for entity, valid_from, seq, field, value, mac in rows:
            if not out or out[-1][:3] != (entity, valid_from, seq):
                if out:
                    self._check_version(name, *out[-1], macs)
                out.append((entity, valid_from, seq, {}))
                macs = set()
            out[-1][3][field] = value
            macs.add(mac)
        if out:
            self._check_version(name, *out[-1], macs)
        return out

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _chunks(entities: Sequence[str], size: int = 500) -> list[list[str]]:
    """Distinct entities in chunks small enough for one ``IN (...)`` list."""
    distinct = list(dict.fromkeys(entities))
    return [distinct[i : i + size] for i in range(0, len(distinct), size)]
