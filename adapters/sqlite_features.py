"""SqliteFeatureStore: the embedded FeatureStore (one SQLite file; ``":memory:"`` for a training
set cut in memory). Online and offline reads are the same indexed queries: a window is a range
scan of ``(series, entity, time_us)``, an attribute set the versions before a time."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from adapters.sqlite_open import open_store
from core.errors import Conflict
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
    value REAL NOT NULL, PRIMARY KEY (series, entity, time_us, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS versions (
    attributes TEXT NOT NULL, entity TEXT NOT NULL, valid_from_us INTEGER NOT NULL,
    seq INTEGER NOT NULL, field TEXT NOT NULL, value TEXT,
    PRIMARY KEY (attributes, entity, valid_from_us, seq, field)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS positions (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS series_by_seq ON series (seq);
CREATE INDEX IF NOT EXISTS versions_by_seq ON versions (seq);
"""


# What the ``entity`` columns hold: 2 = ``ml.features.entity_key(tenant, entity)``. A store
# without it (entities keyed by id alone, so two tenants' accounts of one id shared a history)
# is emptied on open, positions included: the feed folds the log again from its start.
ENTITY_KEYS = 2


class SqliteFeatureStore(FeatureStore):
    def __init__(self, path: Path | str) -> None:
        self._db = open_store(path, _SCHEMA, "synchronous=NORMAL")
        self._lock = threading.Lock()
        self._upgrade()

    def _upgrade(self) -> None:
        """Empty a store whose entities are not tenant-qualified (``ENTITY_KEYS``): its points,
        versions and positions go in one transaction, so the feed rebuilds it from the log;
        the sequence counter stays (change tokens only grow)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT v FROM meta WHERE k = 'entity_keys'").fetchone()
            if row is None or int(row[0]) != ENTITY_KEYS:
                db.execute("DELETE FROM series")
                db.execute("DELETE FROM versions")
                db.execute("DELETE FROM positions")
                db.execute("INSERT OR REPLACE INTO meta VALUES ('entity_keys', ?)", (ENTITY_KEYS,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def apply(
        self,
        points: Sequence[SeriesPoint],
        versions: Sequence[AttributeVersion],
        positions: Mapping[TopicPartition, int],
        expected: Mapping[TopicPartition, int] | None = None,
    ) -> None:
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
                row = db.execute("SELECT v FROM meta WHERE k = 'seq'").fetchone()
                seq = 0 if row is None else int(row[0])
                db.executemany(
                    "INSERT INTO series VALUES (?, ?, ?, ?, ?)",
                    [
                        (p.series, p.entity, p.time_us, seq + i, p.value)
                        for i, p in enumerate(points)
                    ],
                )
                seq += len(points)
                rows = []
                for i, v in enumerate(versions):
                    for name, value in v.values.items():
                        rows.append((v.attributes, v.entity, v.valid_from_us, seq + i, name, value))
                db.executemany("INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?)", rows)
                seq += len(versions)
                db.execute("INSERT OR REPLACE INTO meta VALUES ('seq', ?)", (seq,))
                db.executemany(
                    "INSERT OR REPLACE INTO positions VALUES (?, ?, ?)",
                    [(tp.topic, tp.partition, off) for tp, off in positions.items()],
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def positions(self) -> dict[TopicPartition, int]:
        with self._lock:
            rows = self._db.execute("SELECT topic, partition, next_offset FROM positions")
            return {TopicPartition(t, p): o for t, p, o in rows}

    def series(
        self, name: str, entities: Sequence[str], start_us: int, end_us: int
    ) -> dict[str, list[tuple[int, float]]]:
        out: dict[str, list[tuple[int, float]]] = {}
        with self._lock:
            for chunk in _chunks(entities):
                rows = self._db.execute(
                    "SELECT entity, time_us, value FROM series WHERE series = ? AND entity IN "
                    f"({','.join('?' * len(chunk))}) AND time_us >= ? AND time_us < ? "
                    "ORDER BY entity, time_us, seq",
                    (name, *chunk, start_us, end_us),
                ).fetchall()
                for entity, t, v in rows:
                    points = out.get(entity)
                    if points is None:
                        points = out[entity] = []
                    points.append((t, v))
        return out

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
                rows = self._db.execute(
                    f"WITH asked(entity, i) AS (VALUES {','.join(['(?, ?)'] * len(chunk))}) "
                    "SELECT asked.i, s.time_us, s.value FROM asked JOIN series s "
                    "ON s.series = ? AND s.entity = asked.entity AND s.time_us >= ? "
                    "AND s.time_us < ? ORDER BY asked.i, s.time_us, s.seq",
                    (*pairs, name, start_us, end_us),
                ).fetchall()
                if rows:
                    parts.append(np.array(rows, dtype=np.float64))  # times < 2**53: exact
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0, dtype=np.float64)
        table = np.concatenate(parts)
        # chunks follow the entities' order, so the rows are sorted by (index, time, seq)
        return table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2].copy()

    def attribute_versions(
        self, name: str, entities: Sequence[str], end_us: int
    ) -> dict[str, list[tuple[int, dict[str, str | None]]]]:
        out: dict[str, list[tuple[int, dict[str, str | None]]]] = {}
        with self._lock:
            for chunk in _chunks(entities):
                rows = self._db.execute(
                    "SELECT entity, valid_from_us, seq, field, value FROM versions WHERE "
                    f"attributes = ? AND entity IN ({','.join('?' * len(chunk))}) AND "
                    "valid_from_us < ? ORDER BY entity, valid_from_us, seq",
                    (name, *chunk, end_us),
                ).fetchall()
                last: tuple[str, int, int] | None = None
                for entity, valid_from, seq, field, value in rows:
                    if (entity, valid_from, seq) != last:
                        out.setdefault(entity, []).append((valid_from, {}))
                        last = (entity, valid_from, seq)
                    out[entity][-1][1][field] = value
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

    def changes_since(self, token: int, limit: int) -> ChangeSet | None:
        with self._lock:
            db = self._db
            db.execute("BEGIN")  # one read snapshot: the token and the rows below it agree
            try:
                now = self._token()
                (n,) = db.execute(
                    "SELECT (SELECT count(*) FROM series WHERE seq >= ?) + "
                    "(SELECT count(*) FROM versions WHERE seq >= ?)",
                    (token, token),
                ).fetchone()
                if n > limit:
                    return None
                points = db.execute(
                    "SELECT series, entity, time_us, seq, value FROM series WHERE seq >= ? "
                    "ORDER BY seq",
                    (token,),
                ).fetchall()
                rows = db.execute(
                    "SELECT attributes, entity, valid_from_us, seq, field, value FROM versions "
                    "WHERE seq >= ? ORDER BY seq",
                    (token,),
                ).fetchall()
            finally:
                db.execute("COMMIT")
        versions: list[tuple[str, str, int, int, dict[str, str | None]]] = []
        for attributes, entity, valid_from, seq, field, value in rows:
            if not versions or versions[-1][3] != seq:
                versions.append((attributes, entity, valid_from, seq, {}))
            versions[-1][4][field] = value
        return ChangeSet(now, points, versions)

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
                        "SELECT asked.i, s.time_us, s.seq, s.value FROM asked JOIN series s "
                        "ON s.series = ? AND s.entity = asked.entity "
                        "ORDER BY asked.i, s.time_us, s.seq",
                        (*pairs, name),
                    ).fetchall()
                    if rows:
                        parts.append(np.array(rows, dtype=np.float64))  # all < 2**53: exact
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

    def versions_history(self, name: str, entities: Sequence[str]) -> VersionHistory:
        out: dict[str, list[tuple[int, int, dict[str, str | None]]]] = {}
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                token = self._token()
                for chunk in _chunks(entities):
                    rows = db.execute(
                        "SELECT entity, valid_from_us, seq, field, value FROM versions WHERE "
                        f"attributes = ? AND entity IN ({','.join('?' * len(chunk))}) "
                        "ORDER BY entity, valid_from_us, seq",
                        (name, *chunk),
                    ).fetchall()
                    for entity, valid_from, seq, field, value in rows:
                        got = out.setdefault(entity, [])
                        if not got or got[-1][1] != seq:
                            got.append((valid_from, seq, {}))
                        got[-1][2][field] = value
            finally:
                db.execute("COMMIT")
        return VersionHistory(token, out)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _chunks(entities: Sequence[str], size: int = 500) -> list[list[str]]:
    """Distinct entities in chunks small enough for one ``IN (...)`` list."""
    distinct = list(dict.fromkeys(entities))
    return [distinct[i : i + size] for i in range(0, len(distinct), size)]
