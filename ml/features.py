"""Feature vectors computed from a FeatureStore, point in time: every feature of an event at time
``t`` reads only series points and attribute versions strictly before ``t`` (``domain.features``).

The same code serves online scoring (one event, or a batch from the scoring consumer) and the
offline training set (every labelled event), so the two cannot disagree. A batch reads each
entity's window once and answers every event of it with a bisection over prefix sums.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.errors import InvalidInput
from core.ports.ml import FeatureStore
from domain.features import Feature, FeatureView

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
DEFAULT_TENANT = "default"  # a record without a ``ce_tenant`` header belongs to it


def entity_key(tenant: str, entity: str) -> str:
    """The key a FeatureStore keeps an entity's facts under: its tenant and its id, as
    ``<len(tenant)>:<tenant>:<entity>`` (unambiguous whatever either holds). An account id
    present in two tenants is two entities with two separate histories."""
    return f"{len(tenant)}:{tenant}:{entity}"


def tenant_keys(tenants: str | Sequence[str], names: Sequence[str]) -> list[str]:
    """``entity_key`` of every name, with one tenant for all or one tenant per name."""
    if isinstance(tenants, str):
        prefix = f"{len(tenants)}:{tenants}:"
        return [prefix + n for n in names]
    if len(tenants) != len(names):
        raise InvalidInput(
            f"{len(tenants)} tenants given for {len(names)} events: give one tenant per event "
            "(or one for all)."
        )
    return [f"{len(t)}:{t}:{n}" for t, n in zip(tenants, names, strict=True)]


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
    """SHA-256 of a feature vector: the canonical JSON of its sorted names, a newline, then its
    values in that order as little-endian float64 (cheap enough for every scored event)."""
    names = sorted(vector)
    values = np.asarray([vector[n] for n in names], dtype="<f8")
    return row_digest(canonical(names).encode() + b"\n", values)


def row_digest(header: bytes, values: NDArray[Any]) -> str:
    """``digest`` of a matrix row whose names' header (``canonical(names) + "\\n"``) is given."""
    return hashlib.sha256(header + values.astype("<f8", copy=False).tobytes()).hexdigest()


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class FeatureEngine:
    """Computes a view's feature vectors for events of its event type.

    A batch is answered column-wise: every entity's points of a series are laid end to end,
    sorted by (entity, time), under an int64 key ``entity_index * span + (time - base)``; the
    window ``[t - w, t)`` of an event is then two ``searchsorted`` calls on that key and a
    difference of prefix sums, for all events at once.
    """

    def __init__(self, view: FeatureView, store: FeatureStore) -> None:
        self.view = view
        self.store = store
        self._max_window = max((f.window_us for f in view.features), default=0)
        self._column = {f.name: j for j, f in enumerate(view.features)}
        self._visible = [j for j, f in enumerate(view.features) if not f.internal]
        for f in view.features:
            if f.kind == "derived" and any(
                self._column.get(a, len(view.features)) >= self._column[f.name] for a in f.args
            ):
                raise InvalidInput(
                    f"Feature {f.name!r} of view {view.name!r} derives from {f.args}: each must "
                    "be a feature defined before it."
                )

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
                f"The event has no {self.view.time_field!r}: give the time it happened (RFC 3339)."
            )
        return entity, to_us(event[self.view.time_field])

    def _entities_times(self, events: Sequence[Mapping[str, Any]]) -> tuple[list[str], Any]:
        """Every event's entity and time (µs) as a list and an int64 array: one pass per field
        when they are well formed (strings; integer µs or RFC 3339), else ``entity_time``
        per event for its error."""
        view = self.view
        names = [e.get(view.entity_field) for e in events]
        times = [e.get(view.time_field) for e in events]
        if not all(type(n) is str and n for n in names) or None in times:
            pairs = [self.entity_time(e) for e in events]
            return [p[0] for p in pairs], np.fromiter((p[1] for p in pairs), np.int64, len(pairs))
        if all(type(t) is int for t in times):
            return names, np.asarray(times, dtype=np.int64)  # type: ignore[return-value]
        return names, np.fromiter(map(to_us, times), np.int64, len(times))  # type: ignore[return-value]

    def vectors(
        self, events: Sequence[Mapping[str, Any]], tenants: str | Sequence[str] = DEFAULT_TENANT
    ) -> list[dict[str, float]]:
        """One vector per event, in order; features as of each event's own time, read from
        the facts of the event's tenant's entity only (``tenants``: see ``matrix``)."""
        names = self.view.names
        rows = self.matrix(events, tenants).tolist()
        return [dict(zip(names, row, strict=True)) for row in rows]

    def matrix(
        self, events: Sequence[Mapping[str, Any]], tenants: str | Sequence[str] = DEFAULT_TENANT
    ) -> NDArray[Any]:
        """The vectors as a float64 matrix, one row per event, columns in ``names`` order.
        ``tenants``: the tenant the events belong to (one for all, or one per event); an
        event reads the facts of ``entity_key(its tenant, its entity)`` only, never another
        tenant's entity of the same id."""
        features = self.view.features
        out = np.zeros((len(events), len(features)), dtype=np.float64)
        if not events:
            return out[:, self._visible]
        names, ev_time = self._entities_times(events)
        names = tenant_keys(tenants, names)
        entities = list(dict.fromkeys(names))
        index = {e: i for i, e in enumerate(entities)}
        ev_entity = np.fromiter(map(index.__getitem__, names), np.int64, len(names))
        base = int(ev_time.min()) - self._max_window - 1  # below every event and window
        end = int(ev_time.max())
        span = end - base + 1
        if span * (len(entities) + 1) >= 2**62:
            raise InvalidInput(
                f"The events span {span / 3.6e9:.0f} hours over {len(entities)} entities: "
                "too wide for one batch; score them in smaller batches of nearby times."
            )
        ev_key = ev_entity * span + (ev_time - base)
        # searchsorted is several times faster on sorted needles (memory locality): search the
        # events in key order, then put the answers back in the events' order
        order = np.argsort(ev_key, kind="stable")
        sorted_key = ev_key[order]
        columns: dict[str, tuple[NDArray[Any], NDArray[Any]]] = {}
        for series in self.view.series:
            ent, time_us, values = self.store.series_columns(series.name, entities, base, end)
            columns[series.name] = (ent * span + (time_us - base), values)
        start = int(ev_time.min())
        attrs = {
            a.name: self.store.attribute_state(a.name, entities, start, end)
            for a in self.view.attributes
        }
        for j, f in enumerate(features):
            if f.kind == "event":
                out[:, j] = _event_column(f, events)
            elif f.kind == "attribute":
                out[:, j] = _attribute(f, attrs[f.source], entities, ev_key, base, span)
            elif f.kind == "derived":
                out[:, j] = _derived(f, [out[:, self._column[a]] for a in f.args])
            else:
                point_key, values = columns[f.source]
                hi = np.empty_like(ev_key)
                lo = np.empty_like(ev_key)
                hi[order] = np.searchsorted(point_key, sorted_key, "left")  # strictly before t
                lo[order] = np.searchsorted(point_key, sorted_key - f.window_us, "left")
                out[:, j] = _window(f, point_key, values, ev_key, lo, hi)
        return out[:, self._visible]


def _window(
    f: Feature,
    point_key: NDArray[Any],
    values: NDArray[Any],
    ev_key: NDArray[Any],
    lo: NDArray[Any],
    hi: NDArray[Any],
) -> NDArray[Any]:
    """A window feature of every event at once; its window is ``[lo, hi)`` of the points."""
    n = hi - lo
    if f.kind == "count":
        counts: NDArray[Any] = n.astype(np.float64)
        return counts
    if f.kind in ("last", "age"):
        some = n > 0
        last = np.maximum(hi - 1, 0)
        if f.kind == "last":
            got = values[last] if values.size else np.zeros(len(n))
        else:
            got = (ev_key - point_key[last]) / 1e6 if point_key.size else np.zeros(len(n))
        out: NDArray[Any] = np.where(some, got, f.default)
        return out
    if f.kind == "std":
        prefix = np.concatenate(([0.0], np.cumsum(values)))
        squares = np.concatenate(([0.0], np.cumsum(values * values)))
        safe = np.maximum(n, 1)
        mean = (prefix[hi] - prefix[lo]) / safe
        var = np.maximum((squares[hi] - squares[lo]) / safe - mean * mean, 0.0)
        std: NDArray[Any] = np.where(n > 1, np.round(np.sqrt(var), 9), f.default)
        return std
    picked = values if f.kind == "sum" else ((values >= f.low) & (values < f.high)) * 1.0
    prefix = np.concatenate(([0.0], np.cumsum(picked)))
    got_sum = prefix[hi] - prefix[lo]
    summed: NDArray[Any] = np.round(got_sum, 2) if f.kind == "sum" else np.rint(got_sum)
    return summed


def _derived(f: Feature, args: Sequence[NDArray[Any]]) -> NDArray[Any]:
    if f.op == "sub":
        got = args[0] - args[1]
    elif f.op == "mean":
        got = (args[0] + args[1]) / 2.0
    elif f.op == "abs":
        got = np.abs(args[0])
    elif f.op == "ratio":
        den = args[1]
        got = np.divide(args[0], den, out=np.full(len(den), f.default), where=den != 0)
    else:  # pragma: no cover - domain.features validates ops
        raise InvalidInput(f"Feature {f.name!r} has an unknown op {f.op!r}.")
    scaled: NDArray[Any] = np.round(got * f.scale, 9)
    return scaled


def _event_column(f: Feature, events: Sequence[Mapping[str, Any]]) -> list[float]:
    """``f.level`` of every event's field (a dict lookup for levels, else a number)."""
    if not f.levels:
        raw = [e.get(f.source) for e in events]
        try:  # numbers and numeric strings in one conversion; anything else per value
            column = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError):
            column = None
        if column is not None and column.shape == (len(raw),):
            return column  # type: ignore[return-value]
        return [f.level(v) for v in raw]
    table = dict(reversed(f.levels))  # the first listed wins, as in Feature.level
    default = f.default
    return [table.get(e.get(f.source), default) for e in events]  # type: ignore[arg-type]


def _attribute(
    f: Feature,
    versions: Mapping[str, list[tuple[int, dict[str, str | None]]]],
    entities: Sequence[str],
    ev_key: NDArray[Any],
    base: int,
    span: int,
) -> NDArray[Any]:
    """Per event, the level of the latest non-null value of ``f.attr`` valid before its time:
    every entity's versions laid end to end under the events' (entity, time) key, so one
    ``searchsorted`` answers all events (versions before ``base``, which lies below every
    event's time, are clamped to it and keep their order)."""
    keys: list[int] = []
    levels: list[float] = []
    for i, entity in enumerate(entities):
        offset = i * span
        for valid_from, values in versions.get(entity, ()):
            value = values.get(f.attr)
            if value is not None:
                keys.append(offset + max(valid_from - base, 0))
                levels.append(f.level(value))
    point_key = np.asarray(keys, dtype=np.int64)
    hi = np.searchsorted(point_key, ev_key, "left")  # strictly before t
    if not point_key.size:
        return np.full(len(ev_key), f.level(None))
    last = np.maximum(hi - 1, 0)
    same_entity = (hi > 0) & (point_key[last] // span == ev_key // span)
    got: NDArray[Any] = np.where(same_entity, np.asarray(levels)[last], f.level(None))
    return got
