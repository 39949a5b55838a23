"""The ML feature views (``domain.features``) compiled to Flink: one feature vector per scored
event, as of its own time, equal to what the embedded feed and engine compute.

What runs where:
- Flink SQL does the stateful part: it reads the view's topics (the scored events' topic, its
  series' and attribute sets' topics), and joins every scored event with the facts of its entity
  that lie strictly before its time (series points within the view's longest window, attribute
  versions whatever their age). A regular join, not a watermark window: a late fact (one whose
  time is earlier than events already read) joins the events after it whenever it arrives, so
  late events change the vectors they belong to, as in the embedded store, which answers "as of
  t" from every fact folded so far.
- Two Python functions of this module run inside Flink's Python workers (the hub's checkout is
  on their path, as for the entity folds): ``extract_rows`` (a table function) turns a decoded
  record into facts with the embedded feed's own rules (``ml.feed.FeatureFeed.extract``), and
  ``vector_of`` (an aggregate function per scored event) folds the event's facts into an
  in-memory ``SqliteFeatureStore`` in the feed's order and asks ``ml.features.FeatureEngine`` for
  the vector: the very code of online scoring, so no feature kind has a second implementation
  and the float arithmetic (prefix sums, rounding, derived ratios) is the same.
- The vectors go to a result topic ``flink.features.<view>`` (``upsert-kafka``, key: the scored
  event's partition and offset); ``FeatureVectorLoader`` reads the newest value per key, the
  offline feature table of the view (what a training set or a backfill reads).

Ties: facts of one time fold in log order (topic, partition, offset), the order one
``FeatureFeed.catch_up`` applies them in (the store breaks ties by the order applied).

Versions: each vector carries ``version``, the number of facts it was folded from, inside the
JSON its row MAC covers. The job's join and aggregate only ever add facts to a scored event
(append-only sources, no retractions), so every vector the job writes for an event has more
facts than the one before: the count orders them. ``FeatureVectorLoader`` keeps, per scored
event, the highest version it loaded and refuses a vector of a lower or equal one (``stale``;
an equal one is a checkpoint restart re-emitting the same facts, counted in ``repeated``): an
older genuine vector re-sent to the topic no longer replaces the newer one. A re-run of the job
from the earliest offsets (fresh state) emits each event's vectors again from few facts up:
they are refused until the re-run reaches the version held, so readers never see a re-run's
partial vectors. Upgrade rule: a vector of a job from before versions (no ``version`` field) is
version -1: loaded only where nothing or another unversioned vector is held (the old rule, last
one wins), never over a versioned vector; a versioned vector always replaces it. Running the job
again from the earliest offsets rewrites every event's vector with a version and closes the gap
for the old ones.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from core.errors import ConfigError, DuplicateEnvelopeHeader, InvalidInput, TopicNotFound
from core.ports.eventlog import EventLog, StoredRecord, TopicPartition, envelope_header
from core.ports.ml import AttributeVersion, FeatureStore, FeatureVectors, SeriesPoint
from domain.envelope import H_TENANT
from domain.features import VIEWS, FeatureView
from ml.erased import NONE_ERASED, ErasedIn
from projections.flink import rowmac

log = logging.getLogger(__name__)

RESULT_PREFIX = "flink.features."
VERSION_FIELD = "version"  # in a vector's JSON: the number of facts it was folded from
UNVERSIONED = -1  # the version of a vector written by a job from before versions
# The module Flink's Python workers load for the functions (``register_features``): this one's
# functions with the in-memory feature store a vector is folded in (an adapter, so built in the
# application layer).
WORKER_MODULE = "hub.flink_features"
EVENT, POINT, VERSION = "e", "s", "a"
# (kind, name, entity, time_us, index within the record, payload)
FactRow = tuple[str, str, str, int, int, str]


# State TTL of the unbounded jobs (Flink's state TTL counts processing time since a row was
# written). A vector reads series points of the view's longest window W before its event and
# every attribute version before it. Points and events stay in the joins' state for W plus
# ``LATENESS_H``: a point and an event it belongs to that reach the job at most LATENESS_H
# apart beyond their distance in event time still meet, so the result is the one without TTL
# (a replay or a backfill reads faster than event time: closer, never further apart; a job down
# for longer than LATENESS_H and restarted from its checkpoint may miss pairs across the gap:
# rerun it from the earliest offsets). Versions keep no TTL (one row per attribute change).
# Not ``table.exec.state.ttl``: the job shares its statement set with the projections, whose
# entity folds must keep their state for ever; per-operator ``STATE_TTL`` hints instead.
LATENESS_H = 6 * 24
AGGREGATE_MARGIN_H = 1


def state_ttl(view: FeatureView, margin_h: int = 0) -> str:
    """The state TTL of ``view``'s joins (plus ``margin_h`` hours: the aggregate's), as Flink
    reads a duration: the longest window rounded up to hours, plus ``LATENESS_H``."""
    window = max((f.window_us for f in view.features), default=0) + 1
    hours = -(-window // 3_600_000_000) + LATENESS_H + margin_h
    return f"{hours} h"


def result_topic(view: FeatureView) -> str:
    """The topic (without the hub's prefix) the Flink job writes the view's vectors to."""
    return f"{RESULT_PREFIX}{view.name}"


def view_named(name: str) -> FeatureView:
    if name not in VIEWS:
        raise ConfigError(
            f"There is no feature view {name!r}; the feature views are: {', '.join(sorted(VIEWS))}."
        )
    return VIEWS[name]


def view_topics(view: FeatureView) -> list[str]:
    """Every topic the view reads: its scored events', its series' and attribute sets'."""
    return sorted(
        {view.event_topic} | {s.topic for s in view.series} | {a.topic for a in view.attributes}
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def event_fields(view: FeatureView) -> list[str]:
    """The fields of a scored event the engine reads (entity, time, subject, event features)."""
    fields = [view.entity_field, view.time_field, view.subject_field]
    fields += [f.source for f in view.features if f.kind == "event"]
    return list(dict.fromkeys(fields))


# -- inside Flink's Python workers -----------------------------------------------------------------
def extract_rows(
    view: FeatureView,
    topic: str,
    datum: Mapping[str, Any] | None,
    event_type: str,
    tenant: str | None = None,
) -> list[FactRow]:
    """The facts (series points, attribute versions) a decoded record of ``topic`` of
    ``tenant`` (its ``ce_tenant`` header; ``default`` without one) gives the view, with the
    feed's own rules, and the record itself when it is a scored event (with an entity and a
    time: the engine refuses others). Every row's entity is the tenant-qualified key
    (``ml.features.entity_key``), so the job joins an event with its own tenant's facts only."""
    from ml.features import DEFAULT_TENANT, entity_key, to_us
    from ml.feed import FeatureFeed

    if not isinstance(datum, dict):
        return []
    tenant = tenant or DEFAULT_TENANT
    feed = FeatureFeed.__new__(FeatureFeed)
    feed.view = view
    points, versions = feed.extract(
        [{"topic": topic, "value": datum, "headers": {"ce_type": event_type, "ce_tenant": tenant}}]
    )
    rows: list[FactRow] = []
    for i, p in enumerate(points):
        rows.append((POINT, p.series, p.entity, p.time_us, i, repr(p.value)))
    for j, v in enumerate(versions, start=len(points)):
        rows.append((VERSION, v.attributes, v.entity, v.valid_from_us, j, json.dumps(v.values)))
    entity, at = datum.get(view.entity_field), datum.get(view.time_field)
    scored = topic == view.event_topic and event_type == view.event_type
    if scored and isinstance(entity, str) and entity and at is not None:
        payload = {f: _plain(datum.get(f)) for f in event_fields(view)}
        key = entity_key(tenant, entity)
        rows.append((EVENT, view.name, key, to_us(_plain(at)), len(rows), json.dumps(payload)))
    return rows


# (topic, partition, offset, index, kind, name, time_us, payload) of one joined fact
Fact = tuple[str, int, int, int, str, str, int, str]


def vector_of(
    view: FeatureView,
    event: Mapping[str, Any],
    facts: Iterable[Fact],
    new_store: Callable[[], FeatureStore],
) -> dict[str, Any]:
    """The scored event's vector from the facts of its entity before its time: folded into an
    empty store (``new_store``; the workers' is in memory: ``hub.flink_features``) in log order,
    then the engine of online scoring. The job joined the facts of the event's own tenant only
    (``extract_rows``); they are folded here under the event's entity in the default tenant.
    The vector's ``version`` is the number of facts (module docstring: Versions)."""
    from ml.features import DEFAULT_TENANT, FeatureEngine, entity_key, to_us

    entity = str(event[view.entity_field])
    key = entity_key(DEFAULT_TENANT, entity)
    points: list[SeriesPoint] = []
    versions: list[AttributeVersion] = []
    ordered = sorted(facts)
    for _, _, _, _, kind, name, time_us, payload in ordered:
        if kind == POINT:
            points.append(SeriesPoint(name, key, time_us, float(payload)))
        elif kind == VERSION:
            versions.append(AttributeVersion(name, key, time_us, json.loads(payload)))
    store = new_store()
    try:
        store.apply(points, versions, {})
        vector = FeatureEngine(view, store).vectors([event], DEFAULT_TENANT)[0]
    finally:
        store.close()
    return {
        "subject": event.get(view.subject_field),
        "entity": entity,
        "time_us": to_us(event[view.time_field]),
        "features": vector,
        VERSION_FIELD: len(ordered),
    }


# -- the hub's side -----------------------------------------------------------------------------
def vectors_digest(rows: Sequence[Mapping[str, Any]]) -> str:
    """SHA-256 of the rows' canonical JSON lines, sorted by (time, subject, partition, offset)."""
    ordered = sorted(
        rows, key=lambda r: (r["time_us"], str(r["subject"]), r["partition"], r["offset"])
    )
    h = hashlib.sha256()
    for r in ordered:
        h.update(json.dumps(r, sort_keys=True, separators=(",", ":")).encode() + b"\n")
    return h.hexdigest()


MAC_COLUMNS = (("ev_partition", "BIGINT"), ("ev_offset", "BIGINT"), ("vector", "STRING"))


def mac_name(view: FeatureView) -> str:
    """What a vector's MAC names besides its values (``projections.flink.rowmac``)."""
    return f"features.{view.name}"


# A scored event's state in a read: (version, its vector row; None: deleted as of that version;
# _STORED: the row the store holds, unchanged)
_STORED: dict[str, Any] = {}
Held = tuple[int, dict[str, Any] | None]


class FeatureVectorLoader:
    """Reads a view's result topic: the newest vector per scored event (signed tombstones
    remove). A vector without a valid MAC under ``row_key`` (the one the hub gives its Flink
    jobs) is refused: counted in ``refused``, logged, not loaded (whoever can produce to
    ``flink.*`` cannot write vectors, so cannot steer a model trained on them). A tombstone
    without a valid ``rowmac.DELETE_HEADER`` is ignored (``ignored_tombstones``, the first
    logged): nobody without the key can delete a vector (the job emits no deletes). A genuine
    vector whose version is not above the one held for its event (module docstring: Versions)
    is not loaded: ``stale`` (lower; the first logged) or ``repeated`` (equal). A signed delete
    as of version V removes a vector held at a version <= V, and the event's vectors <= V are
    refused after it in the same read.

    Erasure: the result topic keeps the vectors the job wrote before a subject was erased (the
    erasure cannot delete Kafka records), so a read of it (a table loaded again from the start,
    vectors re-sent) would store them again. With ``erased`` (``ml.erased``), a vector whose
    scored event's tenant (its record's ``ce_tenant``) erased the vector's entity is not loaded
    (``erased_vectors``; its key in ``erased_keys``), nor one whose event is no longer on the log
    (``gone_vectors``: its tenant cannot be told, and no reader of the table uses a vector
    without its event), once the key store has destroyed any key."""

    def __init__(
        self,
        log: EventLog,
        batch: int = 5000,
        row_key: bytes | None = None,
        erased: ErasedIn = NONE_ERASED,
    ) -> None:
        self.log = log
        self.batch = batch
        self.read_records = 0
        self.row_key = row_key
        self.refused = 0
        self.ignored_tombstones = 0
        self.stale = 0
        self.repeated = 0
        self._erased = erased
        self.erased_vectors = 0
        self.gone_vectors = 0
        self.erased_keys: set[tuple[int, int]] = set()  # (partition, offset) of scored events

    def _not_erased(self, view: FeatureView, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``rows`` (vector rows) but those of an erased subject's events (class docstring)."""
        if not rows or not self._erased.any():
            return rows
        tenants = self._tenants(view, {(r["partition"], r["offset"]) for r in rows})
        erased = self._erased(
            (tenants[(r["partition"], r["offset"])], r["entity"])
            for r in rows
            if (r["partition"], r["offset"]) in tenants
        )
        kept = []
        for r in rows:
            at = (r["partition"], r["offset"])
            tenant = tenants.get(at)
            if tenant is not None and (tenant, r["entity"]) not in erased:
                kept.append(r)
                continue
            if tenant is None:
                self.gone_vectors += 1
            else:
                self.erased_vectors += 1
            self.erased_keys.add(at)
        return kept

    def _tenants(self, view: FeatureView, keys: set[tuple[int, int]]) -> dict[tuple[int, int], str]:
        """The tenant of each scored event at ``keys`` still on the log (batched reads of the
        view's event topic; a record without ``ce_tenant`` is the default tenant's)."""
        from ml.features import DEFAULT_TENANT  # numpy: not at import (Flink workers)

        out: dict[tuple[int, int], str] = {}
        by_partition: dict[int, list[int]] = {}
        for partition, offset in keys:
            by_partition.setdefault(partition, []).append(offset)
        for partition, offsets in by_partition.items():
            wanted = sorted(offsets)
            i = 0
            while i < len(wanted):
                records = self.log.read(view.event_topic, partition, wanted[i], self.batch)
                if not records:
                    break
                for r in records:
                    try:
                        tenant = r.header(H_TENANT)
                    except DuplicateEnvelopeHeader:  # no tenant to tell: as an event gone
                        continue
                    if r.value is not None:
                        out[(partition, r.offset)] = (
                            tenant.decode() if tenant is not None else DEFAULT_TENANT
                        )
                i = bisect.bisect_right(wanted, records[-1].offset, lo=i)
        return {k: v for k, v in out.items() if k in keys}

    def _vector(self, view: FeatureView, r: StoredRecord) -> Held | None:
        """The record as (its version, the vector row; None: a signed delete as of it), or None:
        refused or ignored, and counted."""
        if r.value is None:
            try:  # a key not the job's, or the header twice, is no delete (nor a load's end)
                at = _result_key(r.topic, r.key)
                header = envelope_header(r.headers, rowmac.DELETE_HEADER)
            except (InvalidInput, DuplicateEnvelopeHeader) as exc:
                why: str | None = str(exc)
                version = 0
            else:
                why, version = rowmac.check_delete(self.row_key, mac_name(view), list(at), header)
            if why is None:
                return version, None
            self.ignored_tombstones += 1
            if self.ignored_tombstones == 1:  # one line: a flood must not flood the log
                log.warning(
                    "Flink feature tombstone %s/%d@%d ignored, nothing deleted: %s (further ones "
                    "are counted in ignored_tombstones, not logged)",
                    r.topic,
                    r.partition,
                    r.offset,
                    why,
                )
            return None
        try:
            value = json.loads(r.value)
            ok = isinstance(value, dict)
        except ValueError:
            ok = False
        if not ok:
            reason: str | None = "its value is not a JSON object"
        else:
            values = [value.get(n) for n, _ in MAC_COLUMNS]
            reason = rowmac.check(self.row_key, mac_name(view), values, value.get(rowmac.COLUMN))
        if reason is None and _result_key(r.topic, r.key) != (
            value["ev_partition"],
            value["ev_offset"],
        ):
            reason = "its Kafka key is not its vector's scored event"
        if reason is None:
            row = vector_row(view, value)
            return row.pop(VERSION_FIELD), row
        self.refused += 1
        log.warning(
            "Flink feature vector %s/%d@%d refused, not loaded: %s",
            r.topic,
            r.partition,
            r.offset,
            reason,
        )
        return None

    def _replaces(self, r: StoredRecord, got: Held, held: Held | None) -> bool:
        """Whether ``got`` (record ``r``'s) replaces what is ``held`` for its scored event
        (class docstring); a vector that does not is counted (``stale``/``repeated``)."""
        if held is None:
            return True
        version, row = got
        if row is None:  # a signed delete as of ``version``
            return held[0] <= version
        if version > held[0] or (
            version == held[0] == UNVERSIONED and held[1] is not None  # the old rule
        ):
            return True
        if version == held[0] and held[1] is not None:
            self.repeated += 1  # a restart from a checkpoint re-emits the same facts' vector
            return False
        self.stale += 1
        if self.stale == 1:
            log.warning(
                "Flink feature vector %s/%d@%d of version %d not loaded: the event's vector "
                "held is of version %d%s (an older vector sent again, or a job re-run not yet "
                "past it; further ones are counted in stale, not logged)",
                r.topic,
                r.partition,
                r.offset,
                version,
                held[0],
                ", deleted as of it" if held[1] is None else "",
            )
        return False

    def ensure_topic(self, view: FeatureView) -> None:
        """Create the result topic before the job writes it (one partition)."""
        self.log.create_topic(result_topic(view), 1)

    def load(self, view: FeatureView) -> list[dict[str, Any]]:
        topic = result_topic(view)
        # by the scored event, not the key's bytes: one key spelled two ways is one vector
        latest: dict[tuple[int, int], Held] = {}
        self.read_records = 0
        try:
            ends = self.log.end_offsets(topic)
        except TopicNotFound:
            return []
        starts = self.log.beginning_offsets(topic)
        for partition, end in sorted(ends.items()):
            offset = starts.get(partition, 0)
            while offset < end:
                records = self.log.read(topic, partition, offset, self.batch)
                if not records:
                    break
                self.read_records += len(records)
                for r in records:
                    got = self._vector(view, r)
                    if got is not None:
                        key = _result_key(topic, r.key)
                        if self._replaces(r, got, latest.get(key)):
                            latest[key] = got
                offset = records[-1].offset + 1
        return self._not_erased(view, [row for _, row in latest.values() if row is not None])

    def load_into(
        self, view: FeatureView, store: FeatureVectors, covers: Mapping[TopicPartition, int]
    ) -> int:
        """Fold the result records past ``store``'s position into it, with ``covers`` (the
        source positions the job had committed, read BEFORE the result topic's end: every
        vector of a record below them was flushed before that commit, so it is in what this
        reads); one ``apply`` per call (rows, deletions, position, coverage together). Each
        record is weighed against the version the store holds for its event (``versions``),
        as in ``load``. Returns the result records read."""
        topic = result_topic(view)
        self.read_records = 0
        try:
            ends = self.log.end_offsets(topic)
        except TopicNotFound:
            return 0
        if len(ends) != 1:
            raise ConfigError(
                f"The result topic {topic!r} has {len(ends)} partitions; the loader reads one "
                "(the hub creates it with one: delete it and run the job again)."
            )
        ((partition, end),) = ends.items()
        start = store.position(view.name)
        offset = max(start, self.log.beginning_offsets(topic).get(partition, 0))
        latest: dict[tuple[int, int], Held] = {}
        while offset < end:
            records = self.log.read(topic, partition, offset, self.batch)
            if not records:
                break
            self.read_records += len(records)
            got = [(r, self._vector(view, r)) for r in records]
            # what the store holds of the events first seen here (one read a batch)
            new = {_result_key(topic, r.key) for r, g in got if g is not None}
            stored = store.versions(view.name, sorted(new - latest.keys()))
            latest |= {key: (v, _STORED) for key, v in stored.items()}
            for r, g in got:
                if g is not None:
                    key = _result_key(topic, r.key)
                    if self._replaces(r, g, latest.get(key)):
                        latest[key] = g
            offset = records[-1].offset + 1
        rows = self._not_erased(
            view,
            [
                row | {VERSION_FIELD: v}
                for v, row in latest.values()
                if row is not None and row is not _STORED
            ],
        )
        deleted = [key for key, (_, row) in latest.items() if row is None]
        store.apply(view.name, rows, deleted, max(offset, start), covers)
        return self.read_records


def _result_key(topic: str, key: bytes | None) -> tuple[int, int]:
    """The scored event's (partition, offset) of a result record's JSON key."""
    try:
        got = json.loads(key or b"")
        return int(got["ev_partition"]), int(got["ev_offset"])
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidInput(
            f"A record of {topic!r} has key {key!r}, not the Flink job's "
            '{"ev_partition": P, "ev_offset": O}: only the feature job may write that topic.'
        ) from exc


def vector_row(view: FeatureView, value: Mapping[str, Any]) -> dict[str, Any]:
    """A result record's value as a vector row, checked: the view's feature names, finite
    numbers, an entity and a time (anything else did not come from the view's job), with its
    ``version`` (``UNVERSIONED`` for a job from before versions)."""
    try:
        row = json.loads(value["vector"])
        features = row["features"]
        ok = (
            isinstance(features, dict)
            and sorted(features) == sorted(view.names)
            and all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                for v in features.values()
            )
            and isinstance(row["entity"], str)
            and isinstance(row["time_us"], int)
        )
        version = row.get(VERSION_FIELD, UNVERSIONED)
        ok = ok and type(version) is int and version >= UNVERSIONED
        at = {"partition": int(value["ev_partition"]), "offset": int(value["ev_offset"])}
    except (ValueError, TypeError, KeyError):
        ok = False
    if not ok:
        raise InvalidInput(
            f"A record of {result_topic(view)!r} is not a vector of view {view.name!r} "
            f"(features {', '.join(view.names)}): {str(value)[:200]}. Only the view's Flink "
            "job may write that topic."
        )
    return dict(row) | at | {VERSION_FIELD: version}


def embedded_vectors(
    view: FeatureView, log: EventLog, reader: Any, store: Any
) -> list[dict[str, Any]]:
    """The embedded side: the feed folds every record of the view's topics into ``store``, then
    the engine answers each scored event (read as the scorer reads them), one at a time as
    online scoring does for a single event."""
    from ml.features import DEFAULT_TENANT, FeatureEngine, to_us
    from ml.feed import FeatureFeed

    FeatureFeed(view, log, reader, store).catch_up()
    engine = FeatureEngine(view, store)
    rows: list[dict[str, Any]] = []
    for partition, end in sorted(log.end_offsets(view.event_topic).items()):
        offset = 0
        while offset < end:
            got = reader.read(view.event_topic, partition, offset, 2000, mask_pii=True)
            if not got:
                break
            for rec in got:
                value = rec.get("value")
                if not isinstance(value, dict) or rec["headers"].get("ce_type") != view.event_type:
                    continue
                entity = value.get(view.entity_field)
                if not isinstance(entity, str) or not entity or value.get(view.time_field) is None:
                    continue
                rows.append(
                    {
                        "subject": value.get(view.subject_field),
                        "entity": entity,
                        "time_us": to_us(value[view.time_field]),
                        "features": engine.vectors(
                            [value], rec["headers"].get("ce_tenant", DEFAULT_TENANT)
                        )[0],
                        "partition": partition,
                        "offset": rec["offset"],
                    }
                )
            offset = got[-1]["offset"] + 1
    return rows


# -- the compiled job ----------------------------------------------------------------------------
def compile_features(view: FeatureView, at: Any, group: str) -> Any:
    """The Flink job of ``view`` (a ``JobSpec``; ``at`` a ``FlinkPlacement``): the sources of its
    topics (shared with the projections' in one statement set), one extracting table function
    per topic, the join of scored events with their entity's earlier facts, and the vector
    aggregate per scored event into the result topic."""
    from projections.flink.compile import (
        KAFKA_PATIENCE,
        JobSpec,
        _config,
        _options,
        kafka_source,
        tenant,
        upsert_kafka_options,
        with_row_mac,
    )
    from projections.flink.compile import q as qq
    from projections.flink.compile import s as ss

    name = view.name
    window = max((f.window_us for f in view.features), default=0)
    statements: list[str] = []
    udfs: list[dict[str, Any]] = []
    selects: list[str] = []
    for topic in view_topics(view):
        source = f"{topic}__source"
        statements.append(kafka_source(source, topic, group, at))
        function = f"{name}__{topic}__extract"
        udfs.append(
            {
                "function": function,
                "kind": "extract",
                "view": name,
                "module": WORKER_MODULE,
                "topic": topic,
                "registry_url": at.registry_url,
            }
        )
        selects.append(
            f"SELECT CAST({ss(topic)} AS STRING) AS {qq('src_topic')}, "
            f"CAST(e.{qq('src_partition')} AS BIGINT) AS {qq('src_partition')}, "
            f"e.{qq('src_offset')}, r.*\n"
            f"FROM {qq(source)} AS e, LATERAL TABLE({qq(function)}(e.{qq('value')}, "
            f"COALESCE(CAST(e.{qq('headers')}['ce_type'] AS STRING), ''), "
            f"{tenant(topic, at, 'e')})) AS "
            f"r({', '.join(qq(c) for c in ('kind', 'name', 'entity', 't', 'i', 'payload'))})"
        )
    facts = f"{name}__facts"
    statements.append(f"CREATE TEMPORARY VIEW {qq(facts)} AS\n" + "\nUNION ALL\n".join(selects))
    for part, kind in (("events", EVENT), ("points", POINT), ("versions", VERSION)):
        statements.append(
            f"CREATE TEMPORARY VIEW {qq(f'{name}__{part}')} AS SELECT * FROM {qq(facts)} "
            f"WHERE {qq('kind')} = {ss(kind)}"
        )
    vector = f"{name}__vector"
    udfs.append({"function": vector, "kind": "vector", "view": name, "module": WORKER_MODULE})
    ttl = state_ttl(view)
    # the engine reads series points from ``t - window - 1`` (its batch base): the same points.
    # Series points and scored events are kept ``ttl`` in the joins' state (``state_ttl``),
    # attribute versions for ever (a version applies whatever its age, as in the store).
    fact_cols = ("src_topic", "src_partition", "src_offset", "i", "kind", "name", "t", "payload")
    head = (
        f"SELECT ev.{qq('src_partition')} AS {qq('ev_partition')}, ev.{qq('src_offset')} AS "
        f"{qq('ev_offset')}, ev.{qq('payload')} AS {qq('ev_payload')}, "
    )
    joined = (
        f"SELECT /*+ STATE_TTL('ev' = '{ttl}', 'f' = '{ttl}') */ {head[7:]}"
        + ", ".join(f"f.{qq(c)} AS {qq('f_' + c)}" for c in fact_cols)
        + f"\nFROM {qq(name + '__events')} AS ev JOIN {qq(name + '__points')} AS f "
        f"ON f.{qq('entity')} = ev.{qq('entity')} AND f.{qq('t')} < ev.{qq('t')} "
        f"AND f.{qq('t')} >= ev.{qq('t')} - {window + 1}\n"
        "UNION ALL\n"
        f"SELECT /*+ STATE_TTL('ev' = '{ttl}') */ {head[7:]}"
        + ", ".join(f"v.{qq(c)} AS {qq('f_' + c)}" for c in fact_cols)
        + f"\nFROM {qq(name + '__events')} AS ev JOIN {qq(name + '__versions')} AS v "
        f"ON v.{qq('entity')} = ev.{qq('entity')} AND v.{qq('t')} < ev.{qq('t')}\n"
        "UNION ALL\n"
        f"SELECT {qq('src_partition')}, {qq('src_offset')}, {qq('payload')}, "
        "CAST(NULL AS STRING), CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), "
        "CAST(NULL AS STRING), CAST(NULL AS STRING), CAST(NULL AS BIGINT), CAST(NULL AS STRING)\n"
        f"FROM {qq(name + '__events')}"
    )
    joined_view = f"{name}__joined"
    statements.append(f"CREATE TEMPORARY VIEW {qq(joined_view)} AS\n{joined}")
    sink = f"{name}__vectors__topic"
    options = {
        **upsert_kafka_options(at, result_topic(view)),
        "sink.buffer-flush.interval": "1s",
        "sink.buffer-flush.max-rows": "5000",
        **{k: v for k, v in KAFKA_PATIENCE.items() if k != "properties.default.api.timeout.ms"},
    }
    statements.append(
        f"CREATE TEMPORARY TABLE {qq(sink)} (\n"
        f"  {qq('ev_partition')} BIGINT,\n  {qq('ev_offset')} BIGINT,\n  {qq('vector')} STRING,\n"
        f"  {qq(rowmac.COLUMN)} STRING,\n"
        f"  PRIMARY KEY ({qq('ev_partition')}, {qq('ev_offset')}) NOT ENFORCED\n"
        f") WITH (\n{_options(options)}\n)"
    )
    args = ", ".join(qq(c) for c in ["ev_payload", *(f"f_{c}" for c in fact_cols)])
    # an event's accumulator outlives its row in the joins' state (written no later), so a fact
    # that still joins the event always finds its accumulator (never a fresh, partial one)
    vectors = (
        f"SELECT /*+ STATE_TTL({ss(joined_view)} = "
        f"'{state_ttl(view, AGGREGATE_MARGIN_H)}') */ {qq('ev_partition')}, {qq('ev_offset')}, "
        f"{qq(vector)}({args})\nFROM {qq(joined_view)}\n"
        f"GROUP BY {qq('ev_partition')}, {qq('ev_offset')}"
    )
    # each vector MACed with its scored event's position (the loader refuses one without)
    insert = f"INSERT INTO {qq(sink)}\n" + with_row_mac(mac_name(view), MAC_COLUMNS, vectors)
    return JobSpec(
        name=name,
        config=_config(name, at),
        decoders=[],
        statements=statements,
        inserts=[insert],
        tables=(),
        tenant_prefixes=(at.topic_prefix,),
        features=udfs,
        row_macs=True,
    )
