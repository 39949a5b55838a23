"""Feature vectors computed from a FeatureStore, point in time: every feature of an event at time
``t`` reads only series points and attribute versions strictly before ``t`` (``domain.features``).

The same code serves online scoring (one event, or a batch from the scoring consumer) and the
offline training set (every labelled event), so the two cannot disagree. A batch reads each
entity's window once and answers every event of it with a bisection over prefix sums.
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from core.errors import InvalidInput
from core.ports.ml import FeatureStore
from domain.features import Feature, FeatureView

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def to_us(value: Any) -> int:
    """Microseconds since the epoch of an RFC 3339 text (or a number already in microseconds)."""
    if isinstance(value, int):
        return value
    try:
        dt = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise InvalidInput(
            f"Time {value!r} is not an RFC 3339 timestamp such as 2026-11-24T10:00:00Z."
        ) from exc
    if dt.tzinfo is None:
        raise InvalidInput(f"Time {value!r} has no time zone: add Z or an offset such as +00:00.")
    return (dt - EPOCH) // _US


def digest(vector: Mapping[str, float]) -> str:
    """SHA-256 of a feature vector's canonical JSON (sorted names, shortest float repr)."""
    return hashlib.sha256(canonical(vector).encode()).hexdigest()


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class _Window:
    """One entity's points of one series: times and prefix sums for O(log n) windows."""

    __slots__ = ("times", "sums", "between")

    def __init__(self, points: list[tuple[int, float]], bands: Sequence[tuple[float, float]]):
        self.times = [t for t, _ in points]
        self.sums = [0.0]
        for _, v in points:
            self.sums.append(self.sums[-1] + v)
        self.between: dict[tuple[float, float], list[int]] = {}
        for low, high in bands:
            acc = [0]
            for _, v in points:
                acc.append(acc[-1] + (1 if low <= v < high else 0))
            self.between[(low, high)] = acc


class FeatureEngine:
    """Computes a view's feature vectors for events of its event type."""

    def __init__(self, view: FeatureView, store: FeatureStore) -> None:
        self.view = view
        self.store = store
        self._max_window = max((f.window_us for f in view.features), default=0)
        self._bands = [
            (f.low, f.high) for f in view.features if f.kind == "count_between"
        ]

    @property
    def names(self) -> tuple[str, ...]:
        return self.view.names

    def entity_time(self, event: Mapping[str, Any]) -> tuple[str, int]:
        entity = event.get(self.view.entity_field)
        if not isinstance(entity, str) or not entity:
            raise InvalidInput(
                f"The event has no {self.view.entity_field!r} (the {self.view.entity} it is "
                f"scored for): give it as a non-empty string."
            )
        if event.get(self.view.time_field) is None:
            raise InvalidInput(
                f"The event has no {self.view.time_field!r}: give the time it happened "
                "(RFC 3339)."
            )
        return entity, to_us(event[self.view.time_field])

    def vectors(self, events: Sequence[Mapping[str, Any]]) -> list[dict[str, float]]:
        """One vector per event, in order; features as of each event's own time."""
        if not events:
            return []
        keys = [self.entity_time(e) for e in events]
        entities = list(dict.fromkeys(k[0] for k in keys))
        start = min(t for _, t in keys) - self._max_window
        end = max(t for _, t in keys)
        windows: dict[str, dict[str, _Window]] = {}
        for series in self.view.series:
            got = self.store.series(series.name, entities, start, end)
            windows[series.name] = {e: _Window(pts, self._bands) for e, pts in got.items()}
        versions = {
            a.name: self.store.attribute_versions(a.name, entities, end)
            for a in self.view.attributes
        }
        empty = _Window([], self._bands)
        out = []
        for event, (entity, t) in zip(events, keys, strict=True):
            attrs_cache: dict[str, dict[str, str]] = {}
            vector: dict[str, float] = {}
            for f in self.view.features:
                vector[f.name] = self._value(
                    f, event, entity, t, windows, versions, attrs_cache, empty
                )
            out.append(vector)
        return out

    def _value(
        self,
        f: Feature,
        event: Mapping[str, Any],
        entity: str,
        t: int,
        windows: Mapping[str, Mapping[str, _Window]],
        versions: Mapping[str, Mapping[str, list[tuple[int, dict[str, str | None]]]]],
        attrs_cache: dict[str, dict[str, str]],
        empty: _Window,
    ) -> float:
        if f.kind == "event":
            return f.level(event.get(f.source))
        if f.kind == "attribute":
            attrs = attrs_cache.get(f.source)
            if attrs is None:
                attrs = {}
                for valid_from, values in versions[f.source].get(entity, ()):
                    if valid_from >= t:
                        break
                    attrs.update({k: v for k, v in values.items() if v is not None})
                attrs_cache[f.source] = attrs
            return f.level(attrs.get(f.attr))
        w = windows[f.source].get(entity, empty)
        hi = bisect_left(w.times, t)  # strictly before t
        lo = bisect_left(w.times, t - f.window_us)
        if f.kind == "count":
            return float(hi - lo)
        if f.kind == "sum":
            return round(w.sums[hi] - w.sums[lo], 2)
        acc = w.between[(f.low, f.high)]
        return float(acc[hi] - acc[lo])
