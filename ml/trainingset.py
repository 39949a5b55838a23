"""Training sets: labelled events with their point-in-time feature vectors, cut at a recorded
position of the log and a signed ledger checkpoint, so that anyone can rebuild them.

``cut`` steps: 1. snapshot the end offset of every topic the set reads (events, series,
attributes, labels); 2. sync the ledger and take its checkpoint (size, root), which then covers
every record below those offsets; 3. fold the sources below the offsets into an in-memory
FeatureStore (the same feed and engine as online scoring); 4. collect labels below the offsets:
1 when the view's positive label event (``FraudConfirmed``, ``TradeAnomalyConfirmed``) names the
subject, 0 when its negative one (``PaymentSettled``, ``TradeCleared``) does without a positive;
a label counts only for an event of its own tenant (both ``ce_tenant`` headers, ``default``
without one): a tenant MUST NOT label another tenant's payment or trade (the same subject id in
two tenants is two subjects, as entities are in ``ml.features.entity_key``); unlabelled events
are left out; 5. compute the vectors as of each event's own time; 6. sort
rows by (time, subject) and hash their canonical JSON lines. ``rebuild(manifest)`` repeats 3-6
at the manifest's offsets and must give the same digest.

``cut(view, vectors=...)`` takes the vectors an engine beside the hub computed (Flink's, loaded
into a ``FeatureVectors`` table) instead of 3 and 5: the view's topics are cut at the source
positions those vectors cover (the labels topic at its end), each labelled event's vector is
looked up by its (partition, offset), and a labelled event without one is refused. Rows, order
and digest are as above, so ``verify`` of such a manifest recomputes every vector from the log
with the embedded engine and must find the same digest. (An unbounded job may have folded a
fact that arrived late, past the positions, into a vector before it was loaded: ``verify`` then
differs and says so.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import Conflict, InvalidInput, TopicNotFound
from core.ports.eventlog import EventLog, TopicPartition
from core.ports.ml import FeatureVectors
from domain.features import VIEWS, FeatureView
from ml.erased import Erased, none_erased
from ml.features import DEFAULT_TENANT, FeatureEngine, canonical, to_us
from ml.feed import FeatureFeed, Reader

Checkpoint = Callable[[], tuple[int, str]]  # sync the ledger; (tree size, root hex)


@dataclass(frozen=True, slots=True)
class TrainingSet:
    manifest: dict[str, Any]
    rows: list[dict[str, Any]]

    @property
    def digest(self) -> str:
        return str(self.manifest["digest"])


def rows_digest(rows: list[dict[str, Any]]) -> str:
    h = hashlib.sha256()
    for row in rows:
        h.update(canonical(row).encode())
        h.update(b"\n")
    return h.hexdigest()


def _key(tp: TopicPartition) -> str:
    return f"{tp.topic}/{tp.partition}"


def _parse_key(text: str) -> TopicPartition:
    topic, _, partition = text.rpartition("/")
    if not topic or not partition.isdigit():
        raise InvalidInput(f"Manifest position {text!r} is not TOPIC/PARTITION.")
    return TopicPartition(topic, int(partition))


class TrainingSets:
    def __init__(
        self,
        log: EventLog,
        reader: Reader,
        checkpoint: Checkpoint,
        *,
        in_memory_store: Any,
        erased: Erased = none_erased,
    ) -> None:
        """``erased``: an erased data subject's events and facts are left out (``ml.erased``),
        so a training set cut (or rebuilt) after an erasure has no row of it."""
        self._erased = erased
        self._log = log
        self._reader = reader
        self._checkpoint = checkpoint
        self._new_store = in_memory_store  # () -> FeatureStore (an empty, private one)

    def _topics(self, view: FeatureView) -> list[str]:
        topics = {view.event_topic, view.labels["topic"]}
        topics |= {s.topic for s in view.series} | {a.topic for a in view.attributes}
        return sorted(topics)

    def cut(self, view_name: str, vectors: FeatureVectors | None = None) -> TrainingSet:
        view = _view(view_name)
        positions: dict[TopicPartition, int] = {}
        covers = vectors.covers(view.name) if vectors is not None else {}
        for topic in self._topics(view):  # 1.
            try:
                ends = self._log.end_offsets(topic)
            except TopicNotFound:
                continue
            if vectors is not None and topic != view.labels["topic"]:
                ends = {p: min(o, covers.get(TopicPartition(topic, p), 0)) for p, o in ends.items()}
            positions.update({TopicPartition(topic, p): o for p, o in ends.items()})
        size, root = self._checkpoint()  # 2.
        return self._build(view, positions, {"size": size, "root": root}, vectors)

    def rebuild(self, manifest: Mapping[str, Any]) -> TrainingSet:
        """The training set a manifest describes, recomputed from the log."""
        view = _view(str(manifest.get("view", "")))
        positions = {_parse_key(k): int(v) for k, v in dict(manifest["positions"]).items()}
        built = self._build(view, positions, dict(manifest["checkpoint"]))
        return built

    def verify(self, manifest: Mapping[str, Any]) -> TrainingSet:
        """Rebuild and raise ``Conflict`` when the digest differs from the manifest's."""
        built = self.rebuild(manifest)
        if built.digest != manifest.get("digest"):
            raise Conflict(
                f"The training set rebuilt at the manifest's offsets has digest {built.digest}, "
                f"not {manifest.get('digest')}: the log below those offsets changed (retention "
                "or erasure), or the feature definitions did."
            )
        return built

    def _build(
        self,
        view: FeatureView,
        positions: dict[TopicPartition, int],
        checkpoint: dict[str, Any],
        stored: FeatureVectors | None = None,
    ) -> TrainingSet:
        if stored is None:
            store = self._new_store()
            try:
                feed = FeatureFeed(view, self._log, self._reader, store, erased=self._erased)
                feed.catch_up(positions)  # 3.
                found, labels = self._events_and_labels(view, positions)  # 4.
                kept = [(e, t) for _, e, t in found if (t, e[view.subject_field]) in labels]
                labelled = [e for e, _ in kept]
                tenants = [t for _, t in kept]
                # each event reads its own tenant's facts of its entity
                vectors = FeatureEngine(view, store).vectors(labelled, tenants)  # 5.
            finally:
                store.close()
        else:
            found, labels = self._events_and_labels(view, positions)  # 4.
            chosen = [(at, e, t) for at, e, t in found if (t, e[view.subject_field]) in labels]
            labelled = [e for _, e, _ in chosen]
            tenants = [t for _, _, t in chosen]
            vectors = _looked_up(view, stored, [at for at, _, _ in chosen])  # 5.
        rows = [
            {
                "subject": e[view.subject_field],
                "entity": e[view.entity_field],
                "time_us": to_us(e[view.time_field]),
                "features": v,
                "label": labels[(t, e[view.subject_field])],  # its own tenant's label
            }
            for e, t, v in zip(labelled, tenants, vectors, strict=True)
        ]
        rows.sort(key=lambda r: (r["time_us"], r["subject"]))  # 6.
        manifest = {
            "view": view.name,
            "features": list(view.names),
            "query": {
                "events": f"{view.event_topic}:{view.event_type}",
                "as_of": "each event's own time; facts strictly before it",
                "label": f"1: {view.labels['topic']}:{view.labels['positive']} names the "
                "subject; 0: "
                f"{view.labels['negative']} without it; others left out",
                "order": "time_us, subject",
            },
            "positions": {_key(tp): o for tp, o in sorted(positions.items(), key=_sort)},
            "checkpoint": checkpoint,
            "rows": len(rows),
            "positives": sum(r["label"] for r in rows),
            "digest": rows_digest(rows),
        }
        if stored is not None:
            manifest["vectors"] = f"flink.features.{view.name} (verify recomputes them)"
        return TrainingSet(manifest, rows)

    def _events_and_labels(
        self, view: FeatureView, positions: Mapping[TopicPartition, int]
    ) -> tuple[list[tuple[tuple[int, int], dict[str, Any], str]], dict[tuple[str, str], int]]:
        """The view's scored events below ``positions`` with their (partition, offset) and
        tenant, and the labels of their subjects keyed by (tenant, subject): a label record's
        own ``ce_tenant``, so one tenant's label never reaches another tenant's event."""
        events: list[tuple[tuple[int, int], dict[str, Any], str]] = []
        labels: dict[tuple[str, str], int] = {}
        fraud: set[tuple[str, str]] = set()
        for tp, end in sorted(positions.items(), key=_sort):
            if tp.topic not in (view.event_topic, view.labels["topic"]):
                continue
            offset = 0
            while offset < end:
                got = self._reader.read(
                    tp.topic, tp.partition, offset, min(2000, end - offset), mask_pii=True
                )
                got = [r for r in got if r["offset"] < end]
                if not got:
                    break
                for rec in got:
                    value, kind = rec.get("value"), rec["headers"].get("ce_type")
                    if not isinstance(value, dict):
                        continue
                    subject = value.get(view.subject_field)
                    tenant = rec["headers"].get("ce_tenant", DEFAULT_TENANT)
                    if kind == view.event_type and tp.topic == view.event_topic:
                        events.append(((tp.partition, rec["offset"]), value, tenant))
                    elif kind == view.labels["negative"] and isinstance(subject, str):
                        labels.setdefault((tenant, subject), 0)
                    elif kind == view.labels["positive"] and isinstance(subject, str):
                        fraud.add((tenant, subject))
                offset = got[-1]["offset"] + 1
        labels.update(dict.fromkeys(fraud, 1))
        erased = self._erased(
            (t, e[view.entity_field])
            for _, e, t in events
            if isinstance(e.get(view.entity_field), str)
        )
        if erased:
            events = [x for x in events if (x[2], x[1].get(view.entity_field)) not in erased]
        return events, labels


def _looked_up(
    view: FeatureView, stored: FeatureVectors, keys: list[tuple[int, int]]
) -> list[dict[str, float]]:
    """The stored vectors of the scored events at ``keys`` (partition, offset), in that order;
    ``Conflict`` naming the first event without one."""
    by_key = {(r["partition"], r["offset"]): r["features"] for r in stored.rows(view.name)}
    missing = [k for k in keys if k not in by_key]
    if missing:
        p, o = missing[0]
        raise Conflict(
            f"The stored vectors of view {view.name!r} lack {len(missing)} labelled event(s), "
            f"the first {view.event_topic}/{p} offset {o}: load Flink's vectors again (`hub "
            "projection run --engine flink`), or cut the training set from the log."
        )
    return [dict(by_key[k]) for k in keys]


def _sort(item: tuple[TopicPartition, int]) -> tuple[str, int]:
    return item[0].topic, item[0].partition


def _view(name: str) -> FeatureView:
    view = VIEWS.get(name)
    if view is None:
        raise InvalidInput(
            f"There is no feature view {name!r}: known views are {', '.join(sorted(VIEWS))}."
        )
    return view
