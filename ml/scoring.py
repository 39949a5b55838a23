"""Scoring: the champion (and the challenger for its share of entity keys) scores feature
vectors; the scoring consumer turns input events into prediction events exactly once.

``ScoringConsumer.step`` per input partition, as one consume-transform-produce step:
0. check the group's committed offsets against the scorer's own positions on the MAC'd log
(``ml.offsets``: a rewind starts at the hub's position, a jump forward raises
``OffsetsMoved``); 1. read the events after that position; 2. bring the feature feed up to the end
of the log (features are as of each event's own time, so folding later records changes nothing
for it) or, with stored vectors (``HUB_FEATURE_ENGINE=flink``, ``ml.stored_vectors``), keep only
the records the stored vectors cover (the rest wait for the next load); 3. score, with the
engine's vectors or the stored ones; 4. in ONE log transaction append the predictions to
``hub.predictions`` (4a), the scorer's next position to ``hub.source-positions`` (4b) and commit
the group's next offset (4c). A crash before 4 commits leaves neither:
the step runs again and appends each prediction once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.errors import Conflict
from core.metrics import Metrics
from core.ports.eventlog import EventLog, TopicPartition
from ingest.positions import TOPIC as POSITIONS_TOPIC
from ingest.positions import PositionStore
from ingest.publish import Publisher
from ml.ab import CHALLENGER, variant
from ml.erased import Erased, none_erased
from ml.features import DEFAULT_TENANT, FeatureEngine
from ml.feed import FeatureFeed, Reader
from ml.models import Loaded, Models
from ml.offsets import GroupPositions
from ml.predictions import (
    PREDICTION,
    PREDICTIONS_TOPIC,
    Prediction,
    PredictionWriter,
    Scored,
    VectorText,
)
from ml.stored_vectors import StoredVectors

__all__ = ["PREDICTION", "PREDICTIONS_TOPIC", "NoChampion", "Prediction", "Scorer"]


# the feature matrix of a batch of events, when not the engine's (``Scorer.score_batch``)
Features = Callable[[Sequence[Mapping[str, Any]]], NDArray[Any]]


class NoChampion(Conflict):
    code = "no_champion"


class Scorer:
    """Scores events of a model's feature view with the versions in force."""

    def __init__(
        self, models: Models, engine: FeatureEngine, name: str, metrics: Metrics | None = None
    ) -> None:
        self.models = models
        self.engine = engine
        self.name = name
        self._metrics = metrics
        self._text = VectorText(engine.view.names)
        self._latency: Any = None  # the labelled metric children, looked up on first use
        self._counters: dict[tuple[int, str], tuple[Any, Any]] = {}

    def serving(self) -> tuple[Loaded, Loaded | None, float]:
        """The champion, the challenger (or None) and the challenger's share."""
        state = self.models.serving_state(self.name)
        if state.champion is None:
            raise NoChampion(
                f"Model {self.name!r} has no champion: propose one with `hub ml promote "
                f"{self.name} VERSION --reason WHY` and have another person approve it."
            )
        champion = self.models.load(self.name, state.champion)
        if state.challenger is None:
            return champion, None, 0.0
        mv = state.versions[state.challenger]
        return champion, self.models.load(self.name, mv.version), mv.share

    def score_batch(
        self,
        events: Sequence[Mapping[str, Any]],
        features: Features | None = None,
        tenants: str | Sequence[str] = DEFAULT_TENANT,
    ) -> tuple[NDArray[Any], NDArray[Any], list[str], dict[str, Loaded], int]:
        """The columnar core of ``score``: the feature matrix (``names`` order), the scores,
        each event's variant, the versions serving each variant, and the latency in us. One
        feature fetch and one ``predict_proba`` per variant for the whole batch. ``features``
        gives the matrix instead of the engine (stored vectors: ``ml.stored_vectors``);
        ``tenants`` the events' tenant (one, or one per event): the engine reads only that
        tenant's facts of each entity (``FeatureEngine.matrix``)."""
        champion, challenger, share = self.serving()  # loaded once, not part of the latency
        started = time.perf_counter_ns()
        view = self.engine.view
        matrix = self.engine.matrix(events, tenants) if features is None else features(events)
        column = {name: j for j, name in enumerate(view.names)}
        chosen: dict[str, Loaded] = {"champion": champion}
        if challenger is not None:
            chosen[CHALLENGER] = challenger
        split = share if challenger else 0.0
        variants: list[str] = ["champion"] * len(events)
        if split > 0:
            by_key: dict[str, str] = {}
            for i, event in enumerate(events):
                key = str(event[view.entity_field])
                name = by_key.get(key)
                if name is None:
                    name = by_key[key] = variant(key, split)
                variants[i] = name
        scores = np.zeros(len(events))
        if challenger is None:
            groups = {"champion": np.arange(len(events))}
        else:
            flags = np.fromiter((v == CHALLENGER for v in variants), bool, len(variants))
            groups = {"champion": np.flatnonzero(~flags), CHALLENGER: np.flatnonzero(flags)}
        for name, idx in groups.items():
            if not idx.size:
                continue
            loaded = chosen[name]
            cols = [column[f] for f in loaded.info.features]
            scores[idx] = loaded.predict(matrix[idx][:, cols])
        latency = (time.perf_counter_ns() - started) // 1000
        if self._metrics is not None:
            self._observe(latency, groups, chosen, scores)
        return matrix, scores, variants, chosen, int(latency)

    def _observe(
        self,
        latency_us: int,
        groups: Mapping[str, NDArray[Any]],
        chosen: Mapping[str, Loaded],
        scores: NDArray[Any],
    ) -> None:
        """Latency and per-version decision counts; the labelled children are looked up once
        per (version, variant), not per call (a label lookup costs as much as a small score)."""
        assert self._metrics is not None
        if self._latency is None:
            self._latency = self._metrics.ml_scoring_seconds.labels(self.name)
        self._latency.observe(latency_us / 1e6)
        for name, idx in groups.items():
            info = chosen[name].info
            counters = self._counters.get((info.version, name))
            if counters is None:
                counter = self._metrics.ml_predictions
                version = str(info.version)
                counters = self._counters[(info.version, name)] = (
                    counter.labels(self.name, version, name, "alert"),
                    counter.labels(self.name, version, name, "pass"),
                )
            alerts = int(np.count_nonzero(scores[idx] >= info.threshold))
            if alerts:
                counters[0].inc(alerts)
            if len(idx) - alerts:
                counters[1].inc(len(idx) - alerts)

    def scored(
        self,
        events: Sequence[Mapping[str, Any]],
        features: Features | None = None,
        tenants: str | Sequence[str] = DEFAULT_TENANT,
    ) -> Scored:
        """``score_batch`` with what a prediction of each event names (entity, subject)."""
        view = self.engine.view
        matrix, scores, variants, chosen, latency = self.score_batch(events, features, tenants)
        return Scored(
            self.name,
            self._text,
            matrix,
            scores,
            variants,
            {name: loaded.info for name, loaded in chosen.items()},
            [str(e[view.entity_field]) for e in events],
            [str(e.get(view.subject_field, "")) for e in events],
            latency,
        )

    def score(
        self,
        events: Sequence[Mapping[str, Any]],
        sources: Sequence[str],
        tenants: str | Sequence[str] = DEFAULT_TENANT,
    ) -> list[Prediction]:
        """One prediction per event, with the features of the events' tenant (``tenants``: one,
        or one per event). ``latency_us`` is the time from the call to its scores (for a batch,
        the batch's: what each event of it waited)."""
        if not events:
            return []
        return self.scored(events, None, tenants).predictions(sources)


class ScoringConsumer:
    """The consume-transform-produce loop of one model (see the module docstring)."""

    def __init__(
        self,
        log: EventLog,
        reader: Reader,
        publisher: Publisher,
        feed: FeatureFeed,
        scorer: Scorer,
        *,
        positions: PositionStore,
        batch: int = 1000,
        on_staged: Callable[[], None] | None = None,
        vectors: StoredVectors | None = None,
        metrics: Metrics | None = None,
        erased: Erased = none_erased,
    ) -> None:
        """``positions``: the store of the scorer's own positions (producer ``ml.scoring``,
        ``ml.offsets.PRODUCER``); ``erased``: events of an erased subject are not scored."""
        self._erased = erased
        self._log = log
        self.vectors = vectors  # None: the feed and the engine compute the vectors
        self._reader = reader
        self.feed = feed
        self.scorer = scorer
        self.group = f"ml.scoring.{scorer.name}"
        self._batch = batch
        self._on_staged = on_staged  # called inside the transaction, between 4a and 4b (tests)
        self._writer = PredictionWriter(publisher)
        self.positions = GroupPositions(
            positions,
            log,
            self.group,
            self.topic,
            accept_command=f"hub ml accept-offsets {scorer.name}",
            metrics=metrics,
        )

    @property
    def topic(self) -> str:
        return self.scorer.engine.view.event_topic

    def lag(self) -> int:
        """Offsets between the scorer's position (the hub's own, else the group's) and the end
        (marker offsets of transactions count until a read shows nothing is left)."""
        committed = self._log.committed(self.group, self.topic)
        lag = 0
        for p, end in self._log.stable_offsets(self.topic).items():
            own = self.positions.expected(p)
            at = committed.get(p, 0) if own is None else own
            if end > at and self._log.read(self.topic, p, at, 1):
                lag += end - at
        return lag

    def step(self) -> int:
        """One batch per partition; returns how many input records it consumed."""
        view = self.scorer.engine.view
        consumed = 0
        starts = self.positions.starts()  # 0.
        for partition, start in sorted(starts.items()):
            records = self._reader.read(  # 1.
                self.topic, partition, start, self._batch, mask_pii=True
            )
            if self.vectors is not None:  # 2. (stored vectors): the covered records only
                covered = self.vectors.covered(partition)
                records = [r for r in records if r["offset"] < covered]
            if not records:
                continue
            if self.vectors is None:
                self.feed.catch_up()  # 2.
            chosen = [
                r
                for r in records
                if r["headers"].get("ce_type") == view.event_type and isinstance(r["value"], dict)
            ]
            chosen = self._not_erased(chosen)
            staged = []
            if chosen:
                features = self._stored(partition, [r["offset"] for r in chosen])
                tenants = [r["headers"].get("ce_tenant", DEFAULT_TENANT) for r in chosen]
                scored = self.scorer.scored([r["value"] for r in chosen], features, tenants)  # 3.
                sources = [f"{r['topic']}/{r['partition']}/{r['offset']}" for r in chosen]
                staged = self._writer.records(scored, sources, tenants=tenants)
            next_offset = records[-1]["offset"] + 1
            with self._log.transaction(f"{self.group}.{partition}") as txn:  # 4.
                if staged:
                    txn.append(PREDICTIONS_TOPIC, staged)  # 4a.
                if self._on_staged is not None:
                    self._on_staged()
                txn.append(  # 4b.
                    POSITIONS_TOPIC, [self.positions.record(partition, next_offset)]
                )
                txn.commit_offsets(  # 4c.
                    self.group, {TopicPartition(self.topic, partition): next_offset}
                )
            self.positions.committed(partition, next_offset)
            consumed += len(records)
        return consumed

    def _not_erased(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``records`` but those whose entity's data subject their tenant erased: an event on
        the log before the erasure, read by a scorer lagging it, records nothing new of it
        (as ``MachineLearning.predict`` refuses); its offset is consumed all the same."""
        field = self.scorer.engine.view.entity_field
        pairs = [
            (r["headers"].get("ce_tenant", DEFAULT_TENANT), r["value"].get(field)) for r in records
        ]
        erased = self._erased((t, e) for t, e in pairs if isinstance(e, str))
        if not erased:
            return records
        return [r for r, pair in zip(records, pairs, strict=True) if pair not in erased]

    def _stored(self, partition: int, offsets: list[int]) -> Features | None:
        """The stored vectors of the events at ``offsets`` (None: the engine computes them)."""
        vectors = self.vectors
        if vectors is None:
            return None
        return lambda events: vectors.matrix(partition, offsets, events)

    def run_until_idle(self) -> int:
        total = 0
        while True:
            n = self.step()
            if not n:
                return total
            total += n
