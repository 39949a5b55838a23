"""An in-memory columnar cache in front of a FeatureStore, for scoring at memory speed.

Per (series, entity) it keeps the entity's whole series as numpy arrays (time, application
sequence, value) sorted by (time, seq), and per (attribute set, entity) its versions; a batch of
events then reads its windows with array slicing instead of an SQL range scan per batch.

Kept up to date by the fold: every ``apply`` (by this process's feed or by any other writer of
the same store) gives each point and version a sequence number below the store's
``change_token``; before each read the cache compares that token with the one it is complete
through and, if it moved, folds ``changes_since`` into the entries it holds (one indexed read of
the new rows). An entry loaded on a miss is read with the token of its snapshot, so the next
catch-up adds to it only rows it did not see. Point-in-time answers are those of the store: the
same ``[start, end)`` bounds are applied to the same points (``tests/unit/test_series_cache.py``
compares both on random histories).

Bounded: at most ``max_points`` points and versions are held, least recently read entries
evicted first (they are read from the store again on the next miss); more changes at once than
that, and the cache starts afresh. A store whose ``change_token`` is None is read directly.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.ports.eventlog import TopicPartition
from core.ports.ml import AttributeVersion, FeatureStore, SeriesPoint

Versions = list[tuple[int, int, dict[str, str | None]]]  # (valid_from_us, seq, values), sorted
_EMPTY_I = np.zeros(0, dtype=np.int64)
_EMPTY_F = np.zeros(0, dtype=np.float64)


@dataclass(slots=True)
class _Series:
    time_us: NDArray[np.int64]
    seq: NDArray[np.int64]
    value: NDArray[np.float64]

    def add(self, time_us: list[int], seq: list[int], value: list[float]) -> None:
        t = np.concatenate((self.time_us, np.asarray(time_us, dtype=np.int64)))
        s = np.concatenate((self.seq, np.asarray(seq, dtype=np.int64)))
        v = np.concatenate((self.value, np.asarray(value, dtype=np.float64)))
        if t.size > 1 and (np.any(np.diff(t) < 0) or np.any(np.diff(s)[np.diff(t) == 0] < 0)):
            order = np.lexsort((s, t))  # by time, ties by application order
            t, s, v = t[order], s[order], v[order]
        self.time_us, self.seq, self.value = t, s, v


Entry = _Series | Versions


class CachedFeatureStore(FeatureStore):
    """``store`` with its series and attribute versions cached in memory (module docstring)."""

    def __init__(self, store: FeatureStore, *, max_points: int = 2_000_000) -> None:
        self.store = store
        self.max_points = max_points
        self._lock = threading.RLock()
        self._entries: OrderedDict[tuple[str, str, str], Entry] = OrderedDict()
        self._size = 0
        self._token = store.change_token()  # None: the store has no change feed, no cache
        self._fresh: dict[tuple[str, str, str], int] = {}  # loaded after the last catch-up
        self.hits = 0
        self.misses = 0

    # -- writes and positions: the store's -------------------------------------------------

    def apply(
        self,
        points: Sequence[SeriesPoint],
        versions: Sequence[AttributeVersion],
        positions: Mapping[TopicPartition, int],
        expected: Mapping[TopicPartition, int] | None = None,
    ) -> None:
        self.store.apply(points, versions, positions, expected)  # folded in on the next read

    def positions(self) -> dict[TopicPartition, int]:
        return self.store.positions()

    def change_token(self) -> int | None:
        return self.store.change_token()

    def forget(self, entities: Sequence[str]) -> int:
        """The store's ``forget``; every entry is dropped (none keeps a deleted row)."""
        with self._lock:
            deleted = self.store.forget(entities)
            self._clear(self.store.change_token())
            return deleted

    def close(self) -> None:
        with self._lock:
            self._entries.clear()
            self._size = 0
        self.store.close()

    def clear(self) -> None:
        """Drop every entry (each is read from the store again on its next use)."""
        with self._lock:
            self._clear(self.store.change_token())

    @property
    def size(self) -> int:
        """Points and versions held."""
        return self._size

    # -- reads -----------------------------------------------------------------------------

    def series(
        self, name: str, entities: Sequence[str], start_us: int, end_us: int
    ) -> dict[str, list[tuple[int, float]]]:
        if self._token is None:
            return self.store.series(name, entities, start_us, end_us)
        distinct = list(dict.fromkeys(entities))
        ent, time_us, value = self.series_columns(name, distinct, start_us, end_us)
        out: dict[str, list[tuple[int, float]]] = {}
        for i, t, v in zip(ent.tolist(), time_us.tolist(), value.tolist(), strict=True):
            out.setdefault(distinct[i], []).append((t, v))
        return out

    def series_columns(
        self, name: str, entities: Sequence[str], start_us: int, end_us: int
    ) -> tuple[Any, Any, Any]:
        if self._token is None:
            return self.store.series_columns(name, entities, start_us, end_us)
        index = {e: i for i, e in enumerate(entities)}
        order = sorted(index, key=index.__getitem__)
        with self._lock:
            self._catch_up()
            got = self._get_series(name, order)
            self._evict()
        lengths = np.fromiter((g.time_us.size for g in got), np.int64, len(got))
        if not lengths.sum():
            return _EMPTY_I, _EMPTY_I, _EMPTY_F
        time_us = np.concatenate([g.time_us for g in got])
        value = np.concatenate([g.value for g in got])
        ent = np.repeat(np.fromiter((index[e] for e in order), np.int64, len(order)), lengths)
        keep = (time_us >= start_us) & (time_us < end_us)
        return ent[keep], time_us[keep], value[keep]

    def attribute_versions(
        self, name: str, entities: Sequence[str], end_us: int
    ) -> dict[str, list[tuple[int, dict[str, str | None]]]]:
        if self._token is None:
            return self.store.attribute_versions(name, entities, end_us)
        distinct = list(dict.fromkeys(entities))
        with self._lock:
            self._catch_up()
            got = self._get_versions(name, distinct)
            self._evict()
        out: dict[str, list[tuple[int, dict[str, str | None]]]] = {}
        for entity, versions in zip(distinct, got, strict=True):
            before = [(t, dict(values)) for t, _, values in versions if t < end_us]
            if before:
                out[entity] = before
        return out

    def attribute_state(
        self, name: str, entities: Sequence[str], start_us: int, end_us: int
    ) -> dict[str, list[tuple[int, dict[str, str | None]]]]:
        """As the port's default (the versions before ``start_us`` merged into one), from the
        cached versions without copying the later ones' lists twice."""
        if self._token is None:
            return self.store.attribute_state(name, entities, start_us, end_us)
        distinct = list(dict.fromkeys(entities))
        with self._lock:
            self._catch_up()
            got = self._get_versions(name, distinct)
            self._evict()
        out: dict[str, list[tuple[int, dict[str, str | None]]]] = {}
        for entity, versions in zip(distinct, got, strict=True):
            if not versions or versions[0][0] >= end_us:
                continue
            merged: dict[str, str | None] = {}
            at = None
            late: list[tuple[int, dict[str, str | None]]] = []
            for t, _, values in versions:
                if t >= end_us:
                    break
                if t < start_us:
                    merged.update({k: v for k, v in values.items() if v is not None})
                    at = t
                else:
                    late.append((t, dict(values)))
            out[entity] = late if at is None else [(at, merged), *late]
        return out

    # -- the cache ---------------------------------------------------------------------------

    def _lookup(self, kind: str, name: str, entities: Sequence[str]) -> tuple[list[Any], list[int]]:
        """The cached entries of ``entities`` (None where absent, each hit made most recent) and
        the indexes of the misses; counts hits and misses."""
        out: list[Any] = []
        missing: list[int] = []
        entries = self._entries
        for i, entity in enumerate(entities):
            key = (kind, name, entity)
            entry = entries.get(key)
            if entry is None:
                missing.append(i)
                out.append(None)
            else:
                entries.move_to_end(key)
                out.append(entry)
        self.hits += len(entities) - len(missing)
        self.misses += len(missing)
        return out, missing

    def _get_series(self, name: str, entities: Sequence[str]) -> list[_Series]:
        out, missing = self._lookup("s", name, entities)
        if missing:
            asked = [entities[i] for i in missing]
            history = self.store.series_history(name, asked)
            bounds = np.searchsorted(history.entity, np.arange(len(asked) + 1), "left")
            for j, i in enumerate(missing):
                lo, hi = int(bounds[j]), int(bounds[j + 1])
                series = _Series(
                    history.time_us[lo:hi].copy(),
                    history.seq[lo:hi].copy(),
                    history.value[lo:hi].copy(),
                )
                out[i] = series
                self._put(("s", name, entities[i]), series, hi - lo, history.token)
        return out

    def _get_versions(self, name: str, entities: Sequence[str]) -> list[Versions]:
        out, missing = self._lookup("v", name, entities)
        if missing:
            history = self.store.versions_history(name, [entities[i] for i in missing])
            for i in missing:
                versions = history.versions.get(entities[i], [])
                out[i] = versions
                self._put(("v", name, entities[i]), versions, len(versions), history.token)
        return out

    def _put(self, key: tuple[str, str, str], entry: Entry, size: int, token: int) -> None:
        if size + 1 > self.max_points // 4:
            return  # too big to keep: answered from the store each time
        self._entries[key] = entry
        self._size += size + 1
        if self._token is not None and token > self._token:
            self._fresh[key] = token

    def _evict(self) -> None:
        while self._size > self.max_points and self._entries:
            key, entry = self._entries.popitem(last=False)
            self._fresh.pop(key, None)
            self._size -= 1 + (entry.time_us.size if isinstance(entry, _Series) else len(entry))

    def _clear(self, token: int | None) -> None:
        self._entries.clear()
        self._fresh.clear()
        self._size = 0
        self._token = token

    def _catch_up(self) -> None:
        """Fold what was applied since the token the cache is complete through."""
        assert self._token is not None
        now = self.store.change_token()
        if now == self._token:
            return
        if now is None or now < self._token:  # the store was replaced or rebuilt
            self._clear(now)
            return
        changes = self.store.changes_since(self._token, self.max_points)
        if changes is None:
            self._clear(now)
            return
        entries, fresh, since = self._entries, self._fresh, self._token
        added: dict[tuple[str, str, str], tuple[list[int], list[int], list[float]]] = {}
        for series, entity, time_us, seq, value in changes.points:
            key = ("s", series, entity)
            if key in entries and seq >= fresh.get(key, since):
                t, s, v = added.setdefault(key, ([], [], []))
                t.append(time_us)
                s.append(seq)
                v.append(value)
        for key, (t, s, v) in added.items():
            entry = entries[key]
            assert isinstance(entry, _Series)
            entry.add(t, s, v)
            self._size += len(t)
        for attributes, entity, valid_from, seq, values in changes.versions:
            key = ("v", attributes, entity)
            versions = entries.get(key)
            if versions is not None and seq >= fresh.get(key, since):
                assert isinstance(versions, list)
                versions.append((valid_from, seq, values))
                if len(versions) > 1 and versions[-2][:2] > versions[-1][:2]:
                    versions.sort(key=lambda x: (x[0], x[1]))
                self._size += 1
        self._token = changes.token
        self._fresh.clear()  # every entry is now complete through the new token
        self._evict()
