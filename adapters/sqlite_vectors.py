"""SqliteFeatureVectors: the embedded FeatureVectors (one SQLite file beside the feature store):
the feature vectors an engine beside the hub computed (Flink), with the result topic's position
and the source positions they cover, stored in one transaction per load.

The Flink loader checks each vector's row MAC before it is stored; the file then keeps it for
scoring. So that whoever can write the file cannot change the features a model scores on, each
row carries ``mac``: HMAC-SHA256 under the hub's key for stored vectors (``mac_key``: derived from
its local MAC key, ``hub.ml_setup``) over the view, the row's place (partition, offset), subject,
entity, time, features and version (``ml.flink_features``: the number of facts the vector was
folded from, which the loader compares before replacing a vector). A read refuses a row whose
MAC is missing or wrong (``FeatureRowRefused``): edited, forged, or moved to another view or
place, or its version changed (which would let an older vector replace it, or keep the newer
from being loaded).

The ``loaded`` row of a view (the result topic's next offset, where the loader resumes, and the
covers, the source offsets its vectors are complete through, which the scorer waits for) carries
``mac`` too (``positions_mac``): an edited position would skip vectors never loaded, edited
covers would have events scored as covered without a vector. A file of before (no such column)
drops its positions when opened: the next load reads the result topics again from the start."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from adapters.sqlite_open import open_store, shred_freed
from core.errors import FeatureRowRefused, HubError
from core.ports.eventlog import TopicPartition
from core.ports.ml import FeatureVectors

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    view TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,
    subject TEXT, entity TEXT NOT NULL, time_us INTEGER NOT NULL, features TEXT NOT NULL,
    mac TEXT, version INTEGER,
    PRIMARY KEY (view, partition, offset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS loaded (
    view TEXT PRIMARY KEY, next_offset INTEGER NOT NULL, covers TEXT NOT NULL, mac TEXT
);
"""


MAC_LABEL = b"hub stored feature vectors"  # the purpose the hub derives ``mac_key`` with


def _text(value: Any) -> str:
    """A text field as the MAC covers it: length-prefixed (unambiguous whatever it holds)."""
    if value is None:
        return "~"
    text = str(value)
    return f"{len(text)}:{text}"


def vector_mac(
    key: bytes | hmac.HMAC,
    view: str,
    partition: int,
    offset: int,
    subject: Any,
    entity: str,
    time_us: int,
    features: str,
    version: int,
) -> str:
    """The hex MAC of a stored vector row (``features``: its JSON as stored, last, so that no
    separator inside it matters). ``key``: the key, or an HMAC of it to copy (every read checks
    every row: the key's set-up is done once)."""
    message = (
        f"hub-stored-vector/v2|{_text(view)}|{int(partition)}|{int(offset)}|{_text(subject)}|"
        f"{_text(entity)}|{int(time_us)}|{int(version)}|{features}"
    )
    mac = key.copy() if isinstance(key, hmac.HMAC) else hmac.new(key, digestmod=hashlib.sha256)
    mac.update(message.encode())
    return mac.hexdigest()


def positions_mac(key: bytes | hmac.HMAC, view: str, position: int, covers: str) -> str:
    """The hex MAC of a view's ``loaded`` row (``covers``: its JSON as stored, last)."""
    message = f"hub-stored-vector-positions/v1|{_text(view)}|{int(position)}|{covers}"
    mac = key.copy() if isinstance(key, hmac.HMAC) else hmac.new(key, digestmod=hashlib.sha256)
    mac.update(message.encode())
    return mac.hexdigest()


class SqliteFeatureVectors(FeatureVectors):
    def __init__(self, path: Path | str, *, mac_key: bytes) -> None:
        if len(mac_key) < 32:
            raise HubError(
                f"The stored feature vectors' MAC key is {len(mac_key)} bytes: give at least 32."
            )
        self._key = hmac.new(mac_key, digestmod=hashlib.sha256)  # copied for each row
        self._db = open_store(path, _SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(vectors)")}
        if not {"mac", "version"} <= columns:
            # A file from before the MACs or the versions: its rows cannot be vouched for (or
            # weighed against a newer one). They are derived data, so they are dropped with the
            # load positions, and the next load reads the result topics again from the start
            # (each row's Flink row MAC checked again, each event's newest version kept).
            self._db.execute("BEGIN IMMEDIATE")
            try:
                again = {r[1] for r in self._db.execute("PRAGMA table_info(vectors)")}
                if not {"mac", "version"} <= again:  # not done meanwhile by another process
                    for column, kind in (("mac", "TEXT"), ("version", "INTEGER")):
                        if column not in again:
                            self._db.execute(f"ALTER TABLE vectors ADD COLUMN {column} {kind}")
                    self._db.execute("DELETE FROM vectors")
                    self._db.execute("DELETE FROM loaded")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        if "mac" not in {r[1] for r in self._db.execute("PRAGMA table_info(loaded)")}:
            # positions of before their MAC (session 21): not vouched for, so dropped; the next
            # load reads the result topics from the start (the vectors' own MACs checked)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if "mac" not in {r[1] for r in self._db.execute("PRAGMA table_info(loaded)")}:
                    self._db.execute("ALTER TABLE loaded ADD COLUMN mac TEXT")
                    self._db.execute("DELETE FROM loaded")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self._lock = threading.Lock()

    def _verify(self, view: str, got: Sequence[tuple[Any, ...]]) -> None:
        """Refuse (raise) unless every row ``(subject, entity, time_us, features, partition,
        offset, mac, version)`` carries its valid MAC."""
        for s, e, t, f, p, o, mac, v in got:
            if (
                isinstance(mac, str)
                and type(v) is int
                and hmac.compare_digest(mac, vector_mac(self._key, view, p, o, s, e, t, f, v))
            ):
                continue
            why = (
                "it carries no MAC (stored before stored vectors were MACed, or not by the hub)"
                if not mac
                else "its MAC does not match (edited, forged, or moved from another view or place)"
            )
            raise FeatureRowRefused(
                f"The stored feature vector of view {view!r} at partition {p} offset {o} is "
                f"refused: {why}. Nothing was scored on it. Delete the view's rows and load "
                "them again (`hub projection run --engine flink`), and check who can write "
                "the vectors file."
            )

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
                    "INSERT OR REPLACE INTO vectors "
                    "(view, partition, offset, subject, entity, time_us, features, mac, version) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [self._row(view, r) for r in rows],
                )
                mac = positions_mac(self._key, view, position, covered)
                self._db.execute(
                    "INSERT OR REPLACE INTO loaded VALUES (?, ?, ?, ?)",
                    (view, position, covered, mac),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _row(self, view: str, r: Mapping[str, Any]) -> tuple[Any, ...]:
        features = json.dumps(r["features"], sort_keys=True)
        p, o, s, e, t = r["partition"], r["offset"], r["subject"], r["entity"], r["time_us"]
        v = int(r.get("version", -1))
        mac = vector_mac(self._key, view, p, o, s, e, t, features, v)
        return (view, p, o, s, e, t, features, mac, v)

    def rows(self, view: str) -> list[dict[str, Any]]:
        with self._lock:
            got = self._db.execute(
                "SELECT subject, entity, time_us, features, partition, offset, mac, version "
                "FROM vectors WHERE view = ? ORDER BY partition, offset",
                (view,),
            ).fetchall()
        self._verify(view, got)
        return [
            {
                "subject": s,
                "entity": e,
                "time_us": t,
                "features": json.loads(f),
                "partition": p,
                "offset": o,
            }
            for s, e, t, f, p, o, _, _ in got
        ]

    def versions(self, view: str, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], int]:
        got = self._rows_at(view, keys)
        return {(g[4], g[5]): g[7] for g in got}

    def at(
        self, view: str, keys: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], dict[str, Any]]:
        got = self._rows_at(view, keys)
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
            for (s, e, t, _, p, o, _, _), f in zip(got, features, strict=True)
        }

    def _rows_at(self, view: str, keys: Sequence[tuple[int, int]]) -> list[tuple[Any, ...]]:
        """The stored rows of ``view`` at ``keys``, their MACs checked (``_verify``)."""
        wanted = set(keys)
        spans: dict[int, tuple[int, int]] = {}
        for p, o in wanted:  # one primary-key range per partition
            lo, hi = spans.get(p, (o, o))
            spans[p] = (min(lo, o), max(hi, o))
        got = []
        with self._lock:
            for p, (lo, hi) in sorted(spans.items()):
                got += self._db.execute(
                    "SELECT subject, entity, time_us, features, partition, offset, mac, version "
                    "FROM vectors WHERE view = ? AND partition = ? AND offset BETWEEN ? AND ?",
                    (view, p, lo, hi),
                ).fetchall()
        got = [g for g in got if (g[4], g[5]) in wanted]
        self._verify(view, got)
        return got

    def _loaded(self, view: str) -> tuple[int, str]:
        """The view's position and covers, their MAC checked (refused: ``FeatureRowRefused``)."""
        with self._lock:
            row = self._db.execute(
                "SELECT next_offset, covers, mac FROM loaded WHERE view = ?", (view,)
            ).fetchone()
        if row is None:
            return 0, "{}"
        position, covers, mac = row
        if (
            isinstance(mac, str)
            and type(position) is int
            and isinstance(covers, str)
            and hmac.compare_digest(mac, positions_mac(self._key, view, position, covers))
        ):
            return position, covers
        why = (
            "they carry no MAC (not stored by the hub)"
            if not mac
            else "their MAC does not match (edited, forged, or moved from another view)"
        )
        raise FeatureRowRefused(
            f"The stored load positions of view {view!r} (the result topic's next offset and "
            f"the source offsets its vectors cover) are refused: {why}. Nothing was loaded or "
            "scored on them. Delete the view's row of `loaded` (the next load reads the result "
            "topic again from the start), and check who can write the vectors file."
        )

    def position(self, view: str) -> int:
        return self._loaded(view)[0]

    def covers(self, view: str) -> dict[TopicPartition, int]:
        out = {}
        for key, offset in json.loads(self._loaded(view)[1]).items():
            topic, _, part = key.rpartition("/")
            out[TopicPartition(topic, int(part))] = int(offset)
        return out

    def shred(self) -> None:
        with self._lock:
            shred_freed(self._db)

    def close(self) -> None:
        with self._lock:
            self._db.close()
