"""SqliteFeatureVectors: the embedded FeatureVectors (one SQLite file beside the feature store):
the feature vectors an engine beside the hub computed (Flink), with the result topic's position
and the source positions they cover, stored in one transaction per load."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from adapters.sqlite_open import open_store
from core.ports.eventlog import TopicPartition
from core.ports.ml import FeatureVectors

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    view TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,
    subject TEXT, entity TEXT NOT NULL, time_us INTEGER NOT NULL, features TEXT NOT NULL,
    PRIMARY KEY (view, partition, offset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS loaded (
    view TEXT PRIMARY KEY, next_offset INTEGER NOT NULL, covers TEXT NOT NULL
);
"""


class SqliteFeatureVectors(FeatureVectors):
    def __init__(self, path: Path | str) -> None:
        self._db = open_store(path, _SCHEMA)
        self._lock = threading.Lock()

    def apply(
        self,
        view: str,
        rows: Sequence[Mapping[str, Any]],
        deleted: Sequence[tuple[int, int]],
        position: int,
        covers: Mapping[TopicPartition, int],
    ) -> None:
        covered = json.dumps(
            {f"{tp.topic}/{tp.partition}": o for tp, o in covers.items()}, sort_keys=True
        )
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "DELETE FROM vectors WHERE view = ? AND partition = ? AND offset = ?",
                    [(view, p, o) for p, o in deleted],
                )
                self._db.executemany(
                    "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            view,
                            r["partition"],
                            r["offset"],
                            r["subject"],
                            r["entity"],
                            r["time_us"],
                            json.dumps(r["features"], sort_keys=True),
                        )
                        for r in rows
                    ],
                )
                self._db.execute(
                    "INSERT OR REPLACE INTO loaded VALUES (?, ?, ?)", (view, position, covered)
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def rows(self, view: str) -> list[dict[str, Any]]:
        with self._lock:
            got = self._db.execute(
                "SELECT subject, entity, time_us, features, partition, offset FROM vectors "
                "WHERE view = ? ORDER BY partition, offset",
                (view,),
            ).fetchall()
        return [
            {
                "subject": s,
                "entity": e,
                "time_us": t,
                "features": json.loads(f),
                "partition": p,
                "offset": o,
            }
            for s, e, t, f, p, o in got
        ]

    def at(
        self, view: str, keys: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], dict[str, Any]]:
        wanted = set(keys)
        spans: dict[int, tuple[int, int]] = {}
        for p, o in wanted:  # one primary-key range per partition
            lo, hi = spans.get(p, (o, o))
            spans[p] = (min(lo, o), max(hi, o))
        got = []
        with self._lock:
            for p, (lo, hi) in sorted(spans.items()):
                got += self._db.execute(
                    "SELECT subject, entity, time_us, features, partition, offset FROM vectors "
                    "WHERE view = ? AND partition = ? AND offset BETWEEN ? AND ?",
                    (view, p, lo, hi),
                ).fetchall()
        got = [g for g in got if (g[4], g[5]) in wanted]
        features = json.loads("[" + ",".join(g[3] for g in got) + "]")  # one parse, not one a row
        return {
            (p, o): {
                "subject": s,
                "entity": e,
                "time_us": t,
                "features": f,
                "partition": p,
                "offset": o,
            }
            for (s, e, t, _, p, o), f in zip(got, features, strict=True)
        }

    def _loaded(self, view: str) -> tuple[int, str]:
        with self._lock:
            row = self._db.execute(
                "SELECT next_offset, covers FROM loaded WHERE view = ?", (view,)
            ).fetchone()
        return (0, "{}") if row is None else (int(row[0]), str(row[1]))

    def position(self, view: str) -> int:
        return self._loaded(view)[0]

    def covers(self, view: str) -> dict[TopicPartition, int]:
        out = {}
        for key, offset in json.loads(self._loaded(view)[1]).items():
            topic, _, part = key.rpartition("/")
            out[TopicPartition(topic, int(part))] = int(offset)
        return out

    def close(self) -> None:
        with self._lock:
            self._db.close()
