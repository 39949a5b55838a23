"""Machine learning on the log, one service: features, training sets, the model registry,
scoring (streamed and on request), A/B reports and drift checks. ``hub.ml_setup`` builds it
with its adapters; CLI and HTTP call it after asking the policy decision point."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from core.errors import InvalidInput, TopicNotFound
from core.metrics import Metrics
from core.ports.eventlog import EventLog
from core.ports.keystore import KeyDestroyed
from core.ports.ml import FeatureStore, FeatureVectors, ModelRegistry
from core.ports.policy import Principal
from domain.features import VIEWS, FeatureView
from governance.changes import Identities
from governance.configchanges import Auditor
from ingest.positions import TOPIC as POSITIONS_TOPIC
from ingest.positions import PositionStore
from ingest.publish import EventReader, Publisher
from ml import ab, drift, training
from ml.ab import check_share
from ml.erased import erased_in
from ml.features import DEFAULT_TENANT, FeatureEngine, entity_key
from ml.feed import FeatureFeed
from ml.models import ModelChanges, ModelNotFound, Models, ModelVersion
from ml.offsets import PRODUCER as POSITIONS_PRODUCER
from ml.offsets import Move
from ml.offsets import follows as positions_follow
from ml.scoring import PREDICTIONS_TOPIC, Prediction, Scorer, ScoringConsumer
from ml.stored_vectors import StoredVectors
from ml.trainingset import Checkpoint, TrainingSet, TrainingSets
from registry.service import SchemaRegistry

DEFAULT_FAMILY = "sklearn-lr"


REQUEST = "request:"  # the source of a prediction made on request (``predict``)


class Family(Protocol):
    """A model family: fits an estimator with ``predict_proba`` on a training set and returns it
    with its holdout metrics (``ml.training.split``'s holdout, evaluated by ``training.evaluate``).
    """

    label: str  # recorded as the version's family

    def fit(
        self, ts: TrainingSet, names: Sequence[str], threshold: float = 0.5
    ) -> tuple[Any, dict[str, Any]]: ...


class SklearnFamily:
    label = training.FAMILY

    def fit(
        self, ts: TrainingSet, names: Sequence[str], threshold: float = 0.5
    ) -> tuple[Any, dict[str, Any]]:
        return training.fit(ts, names, threshold)


def view_named(name: str) -> FeatureView:
    view = VIEWS.get(name)
    if view is None:
        raise InvalidInput(
            f"There is no feature view {name!r}: known views are {', '.join(sorted(VIEWS))}."
        )
    return view


# the views whose entity can be a data subject (an account; an instrument is none)
_PERSON_VIEWS = frozenset(name for name, view in VIEWS.items() if view.entity == "account")


class MachineLearning:
    def __init__(
        self,
        log: EventLog,
        reader: EventReader,
        publisher: Publisher,
        registry: SchemaRegistry,
        features: FeatureStore,
        models: ModelRegistry,
        checkpoint: Checkpoint,
        memory_store: Callable[[], FeatureStore],
        *,
        ledger: Auditor | None = None,
        identities: Identities | None = None,
        metrics: Metrics | None = None,
        families: Mapping[str, Family] | None = None,
        vectors: FeatureVectors | None = None,
    ) -> None:
        self._log = log
        # the streaming scorer's vectors: computed by the engine (None), or read from this
        # table (HUB_FEATURE_ENGINE=flink: the vectors Flink's feature jobs computed)
        self.vectors = vectors
        self.families: dict[str, Family] = {DEFAULT_FAMILY: SklearnFamily(), **(families or {})}
        self._metrics = metrics
        self._reader = reader
        self._publisher = publisher
        self._ledger = ledger
        # the scoring consumers' own positions (``ml.offsets``), beside ingest's on one topic
        self.positions = PositionStore(
            log, registry, publisher, producer=POSITIONS_PRODUCER, follows=positions_follow
        )
        self.features = features
        self.models = Models(log, reader, publisher, models)
        self.changes = ModelChanges(
            self.models, log, registry, reader, publisher, ledger=ledger, identities=identities
        )
        # an erased data subject's events: folded, cut into training sets and scored no more
        self.erased = erased_in(None if publisher.pii is None else publisher.pii.keystore)
        self.training_sets = TrainingSets(
            log, reader, checkpoint, in_memory_store=memory_store, erased=self.erased
        )
        self._feeds: dict[str, FeatureFeed] = {}
        self._scorers: dict[str, Scorer] = {}

    def close(self) -> None:
        self.features.close()
        self.models.store.close()
        if self.vectors is not None:
            self.vectors.close()

    # -- erasure -------------------------------------------------------------------------------
    def forget(self, subject: str, tenants: Sequence[str]) -> dict[str, Any]:
        """Delete the derived rows of data subject ``subject`` (an entity id) of ``tenants``
        (``governance.erasure`` calls it after destroying their keys): its points and versions
        in the feature store, and the stored vectors (Flink's) of the events of those tenants
        naming it. Returns the rows deleted per store. From the destruction on, the feed, the
        training sets and the scorer leave its events out (``self.erased``), so nothing folds
        them back. Predictions on ``hub.predictions`` stay (the log is append-only): their
        ``features`` are sealed under the subject's key since session 23, so destroying it
        shreds them; those written before keep theirs in clear (docs/benchmarks/
        s23-trustleftb23.md), and this service's reads leave them out (``predictions``)."""
        keys = [entity_key(t, subject) for t in tenants]
        done: dict[str, Any] = {"feature_rows": self.features.forget(keys)}
        if self.vectors is not None:
            done["stored_vectors"] = sum(
                self._forget_vectors(view, subject, set(tenants)) for view in VIEWS.values()
            )
        # A model already trained keeps what it learnt (a known limit): the versions whose
        # training set was cut before now from a view keyed by such an entity are named, so
        # the ledger says which may have been trained on the subject's data; `hub ml
        # trainingset verify` of one tells (its digest differs now if the subject was in it).
        trained = {
            name: sorted(
                n
                for n, v in self.models.state(name).versions.items()
                if v.manifest.get("view") in _PERSON_VIEWS
            )
            for name in self.models.names()
        }
        done["models_trained_before"] = {name: vs for name, vs in trained.items() if vs}
        return done

    def _forget_vectors(self, view: FeatureView, subject: str, tenants: set[str]) -> int:
        """Delete the stored vectors of ``view`` whose event names ``subject`` in one of
        ``tenants`` (the event's tenant is its record's, read from the log)."""
        vectors = self.vectors
        assert vectors is not None
        named = [
            (r["partition"], r["offset"]) for r in vectors.rows(view.name) if r["entity"] == subject
        ]
        gone = []
        for partition, offset in named:
            got = self._reader.read(view.event_topic, partition, offset, 1, mask_pii=True)
            rec = got[0] if got and got[0]["offset"] == offset else None
            if rec is None or rec["headers"].get("ce_tenant", DEFAULT_TENANT) in tenants:
                gone.append((partition, offset))  # an event gone from the log: kept no longer
        if gone:
            vectors.apply(
                view.name, [], gone, vectors.position(view.name), vectors.covers(view.name)
            )
            vectors.shred()
        return len(gone)

    # -- features --------------------------------------------------------------------------------
    def feed(self, view: FeatureView) -> FeatureFeed:
        feed = self._feeds.get(view.name)
        if feed is None:
            feed = self._feeds[view.name] = FeatureFeed(
                view, self._log, self._reader, self.features, erased=self.erased
            )
        return feed

    def view_of(self, name: str) -> FeatureView:
        """The feature view a model reads: its champion's (else latest version's), or the view
        of the same name for a model not trained yet."""
        try:
            state = self.models.state(name)
        except ModelNotFound:
            return view_named(name)
        version = state.champion or max(state.versions)
        return view_named(str(state.versions[version].manifest.get("view", name)))

    def scorer(self, name: str) -> Scorer:
        scorer = self._scorers.get(name)
        if scorer is None:
            view = self.view_of(name)
            engine = FeatureEngine(view, self.features)
            scorer = Scorer(self.models, engine, name, self._metrics)
            self._scorers[name] = scorer
        return scorer

    # -- training --------------------------------------------------------------------------------
    def family(self, name: str) -> Family:
        family = self.families.get(name)
        if family is None:
            raise InvalidInput(
                f"There is no model family {name!r}: known families are "
                f"{', '.join(sorted(self.families))}."
            )
        return family

    def train(
        self,
        principal: Principal,
        name: str,
        view_name: str | None = None,
        family: str = DEFAULT_FAMILY,
        vectors: FeatureVectors | None = None,
    ) -> ModelVersion:
        """Cut a training set (from the log, or with ``vectors`` from the vectors Flink
        computed: ``TrainingSets.cut``), fit with ``family``, evaluate beside the champion on
        the same holdout, register the new version (never promoted: that stays a human,
        two-person decision)."""
        fitter = self.family(family)
        view = view_named(view_name or name)
        ts = self.training_sets.cut(view.name, vectors)
        names = list(view.names)
        estimator, metrics = fitter.fit(ts, names)
        champion = self.models.champion_of(name) if name in self.models.names() else None
        if champion is not None:
            loaded = self.models.load(name, champion)
            _, holdout = training.split(ts.rows)
            metrics["champion"] = {
                "version": champion,
                "holdout": training.evaluate(
                    loaded.estimator, holdout, loaded.info.features, loaded.info.threshold
                ),
            }
        return self.models.register(
            principal,
            name,
            estimator,
            family=fitter.label,
            features=names,
            threshold=0.5,
            manifest=ts.manifest,
            metrics=metrics,
            reference=training.reference(estimator, ts, names),
        )

    def retrain(
        self,
        principal: Principal,
        name: str,
        share: float = 0.1,
        reason: str = "retrain",
        family: str = DEFAULT_FAMILY,
    ) -> ModelVersion:
        """Train a new version (evaluated beside the champion on the same holdout) and make it
        the challenger for ``share`` of the entity keys; promotion to champion stays a human,
        two-person decision. Triggered by a command or by a drift check (``check_drift``)."""
        check_share(share)  # before training: a refused share wastes no fit
        view = self.view_of(name)
        mv = self.train(principal, name, view.name, family)
        if self.models.champion_of(name) is None:
            return mv
        return self.models.promote_challenger(principal, name, mv.version, share, reason)

    # -- scoring ---------------------------------------------------------------------------------
    def consumer(self, name: str, **kwargs: Any) -> ScoringConsumer:
        """The model's scoring consumer; with a vectors table it scores with the stored
        vectors (``ml.stored_vectors``), else the feed and the engine compute them."""
        scorer = self.scorer(name)
        view = scorer.engine.view
        stored = None if self.vectors is None else StoredVectors(view, self.vectors)
        return ScoringConsumer(
            self._log,
            self._reader,
            self._publisher,
            self.feed(view),
            scorer,
            positions=self.positions,
            vectors=stored,
            metrics=self._metrics,
            erased=self.erased,
            **kwargs,
        )

    def accept_offsets(self, principal: Principal, name: str, reason: str) -> list[Move]:
        """Take the scoring group's committed offsets as the scorer's positions where they
        differ (a deliberate reset: ``ml.offsets`` refuses a forward move and undoes a rewind
        otherwise). Recorded on the ledger first (``config.accept_offsets``, who, why, each
        partition's expected and found offset), then the positions are appended. Callers MUST
        have had the policy allow ``model.promote`` on the model."""
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidInput(
                "A reason is required to accept moved consumer-group offsets: pass --reason "
                "WHY (it is recorded on the ledger)."
            )
        if self._ledger is None:
            raise InvalidInput(
                "This ML service has no ledger to record an accepted offset move on; run it "
                "through the hub (`hub ml accept-offsets`)."
            )
        positions = self.consumer(name).positions
        moves = positions.moves()
        if not moves:
            return []
        self._ledger.record_action(  # 1. who took which move, and why, before it takes effect
            principal.id,
            "config.accept_offsets",
            f"consumer_group:{positions.group}",
            details={"reason": reason, "moves": [m.as_dict() for m in moves]},
            tenant=principal.tenant,
        )
        with self._log.transaction(f"{positions.group}.accept") as txn:  # 2. the positions
            txn.append(POSITIONS_TOPIC, positions.accepted(moves))
        return moves

    def predict(
        self,
        principal: Principal,
        name: str,
        event: Mapping[str, Any],
        *,
        record: bool = True,
        tenant: str | None = None,
    ) -> Prediction:
        """Score one event now with features from the online store; recorded on
        ``hub.predictions`` (source ``request:<principal>``). The features are those of the
        event's entity in ``tenant`` only (default ``principal``'s; callers MUST have had the
        policy allow ``model.predict`` for any other tenant). Always the engine's features,
        whatever ``vectors``: the event is not on the log, so no engine beside the hub has
        seen it."""
        scorer = self.scorer(name)
        # one tenant's facts only: an account id of another tenant is another entity
        tenants = tenant or principal.tenant
        self._refuse_erased(scorer.engine.entity_time(event)[0], tenants)
        scorer.serving()  # loads the versions in force once; not part of a request's latency
        started = time.perf_counter_ns()
        self.feed(scorer.engine.view).catch_up()
        (pred,) = scorer.score([dict(event)], [REQUEST + principal.id], tenants)
        latency = (time.perf_counter_ns() - started) // 1000
        pred = Prediction(**{**pred.as_dict(), "latency_us": int(latency)})
        if record:  # in the tenant whose facts scored it, so a tenant's report counts it
            self._publisher.publish(PREDICTIONS_TOPIC, [pred.event()], principal.id, tenants)
        return pred

    def _refuse_erased(self, entity: str, tenant: str) -> None:
        """``KeyDestroyed`` when ``tenant`` erased the data subject ``entity`` (an account): as a
        late event naming it is refused at ingest, no prediction reads its features or records
        a new fact about it."""
        if self._publisher.pii is not None and self._publisher.pii.keystore.for_tenant(
            tenant
        ).erased(entity):
            raise KeyDestroyed(
                f"Data subject {entity!r} was erased in tenant {tenant!r}: nothing is scored "
                "or recorded for it any more."
            )

    # -- monitoring ------------------------------------------------------------------------------
    def predictions(
        self, name: str, version: int | None = None, tenant: str | None = None
    ) -> list[dict[str, Any]]:
        """The model's recorded predictions (of ``version`` if given), oldest first; with
        ``tenant``, only those of events of that tenant (a prediction's ``ce_tenant``). Those of
        an entity whose data subject its tenant erased are left out (``self.erased``): the log
        keeps them (append-only), but no A/B report or drift window reads their facts."""
        out: list[tuple[str, dict[str, Any]]] = []
        offset = 0
        try:
            end = self._log.end_offsets(PREDICTIONS_TOPIC).get(0, 0)
        except TopicNotFound:
            return []
        while offset < end:
            got = self._reader.read(PREDICTIONS_TOPIC, 0, offset, 5000)
            if not got:
                break
            for rec in got:
                v = rec.get("value")
                if (
                    isinstance(v, dict)
                    and v["model"] == name
                    and (version is None or v["version"] == version)
                    and (
                        tenant is None or rec["headers"].get("ce_tenant", DEFAULT_TENANT) == tenant
                    )
                ):
                    out.append((rec["headers"].get("ce_tenant", DEFAULT_TENANT), v))
            offset = got[-1]["offset"] + 1
        erased = self.erased((t, v["entity"]) for t, v in out if isinstance(v.get("entity"), str))
        return [v for t, v in out if (t, v.get("entity")) not in erased]

    def labels(self, view: FeatureView, tenant: str | None = None) -> dict[str, int]:
        """Labels known now: 1 positive (confirmed fraud, confirmed anomaly), 0 negative (settled,
        cleared) without a positive. A label of a subject with scored events on the log counts
        only from those events' tenants (its record's own ``ce_tenant``, as ``trainingset``
        keys them), so another tenant naming a payment id cannot relabel it in the A/B report.
        With ``tenant``, only that tenant's labels."""
        labels: dict[tuple[str, str], int] = {}
        fraud: set[tuple[str, str]] = set()
        owners: dict[str, set[str]] = {}  # subject -> tenants of its scored events
        for topic in (view.event_topic, view.labels["topic"]):
            try:
                ends = self._log.end_offsets(topic)
            except TopicNotFound:
                continue
            for partition, end in ends.items():
                offset = 0
                while offset < end:
                    got = self._reader.read(topic, partition, offset, 5000, mask_pii=True)
                    if not got:
                        break
                    for rec in got:
                        kind, v = rec["headers"].get("ce_type"), rec.get("value")
                        if not isinstance(v, dict):
                            continue
                        key = (
                            rec["headers"].get("ce_tenant", DEFAULT_TENANT),
                            str(v[view.subject_field]),
                        )
                        if kind == view.event_type and topic == view.event_topic:
                            owners.setdefault(key[1], set()).add(key[0])
                        if kind == view.labels["negative"]:
                            labels.setdefault(key, 0)
                        elif kind == view.labels["positive"]:
                            fraud.add(key)
                    offset = got[-1]["offset"] + 1
        labels.update(dict.fromkeys(fraud, 1))
        out: dict[str, int] = {}
        for (labelled_in, subject), label in labels.items():
            if tenant is not None and labelled_in != tenant:
                continue
            # a subject scored only on request (no event on the log) has no known tenant
            if subject not in owners or labelled_in in owners[subject]:
                out[subject] = max(out.get(subject, 0), label)
        return out

    def ab_report(self, name: str, tenant: str | None = None) -> dict[str, Any]:
        """The A/B report of ``name``; with ``tenant``, of that tenant's predictions and labels
        only (what a tenant-bound reader is shown), else of every tenant's."""
        state = self.models.state(name)
        view = self.view_of(name)
        out = ab.report(self.predictions(name, tenant=tenant), self.labels(view, tenant))
        out["model"] = name
        out["champion"] = state.champion
        out["challenger"] = state.challenger
        return out

    def check_drift(
        self,
        name: str,
        window: int = 500,
        thresholds: drift.DriftThresholds = drift.DEFAULT,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """Compare the champion's last ``window`` predictions with its training reference;
        append ``ModelDriftDetected`` when a feature (or the score) drifted. With ``tenant``,
        of that tenant's predictions only (as ``ab_report``): the report's figures describe the
        scored events' inputs, so a tenant's operator must not read another tenant's; None,
        every tenant's (callers allowed ``tenant.all`` only), of scored events only: predictions
        made on request (``predict``: any caller's probes, source ``request:``) are left out of
        the window whose drift a schedule answers by retraining for every tenant."""
        state = self.models.state(name)
        if state.champion is None:
            raise InvalidInput(f"Model {name!r} has no champion to check for drift.")
        loaded = self.models.load(name, state.champion)
        preds = self.predictions(name, state.champion, tenant=tenant)
        if tenant is None:  # what may retrain every tenant's model: the log's traffic only
            preds = [p for p in preds if not str(p.get("source", "")).startswith(REQUEST)]
        preds = preds[-window:]
        if len(preds) < thresholds.min_window:
            return {
                "model": name,
                "version": state.champion,
                "tenant": tenant,
                "window": len(preds),
                "drifted": [],
                "report": {},
                "detail": f"too few predictions ({len(preds)} < {thresholds.min_window})",
            }
        live: dict[str, list[float]] = {f: [] for f in loaded.reference}
        for p in preds:
            vector = json.loads(p["features"])
            for f in live:
                live[f].append(float(p["score"]) if f == "score" else float(vector.get(f, 0.0)))
        drifted, report = drift.compare(loaded.reference, live, thresholds)
        if self._metrics is not None:
            for feature, figures in report.items():
                self._metrics.ml_drift_psi.labels(name, feature).set(figures["psi"])
        out = {
            "model": name,
            "version": state.champion,
            "window": len(preds),
            "drifted": drifted,
            "report": report,
        }
        if drifted:
            from ml.models import now_iso

            self.models.publish_drift(  # naming whose predictions: a tenant's retrains nothing
                {
                    **out,
                    "report": json.dumps(report, sort_keys=True),
                    "detected_at": now_iso(),
                    "tenant": tenant,
                }
            )
        return {**out, "tenant": tenant}
