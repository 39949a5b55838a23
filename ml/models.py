"""The model registry service: lifecycle events on ``hub.models`` (their fold is the state in
force), artifacts in a ModelRegistry port, and promotion to champion as a governed change.

Events (``domain/schemas/Model*.avsc``), in log order:
    ModelRegistered      a version with its artifact's SHA-256, features, threshold, training-set
                         manifest and holdout metrics
    ModelPromoted        CHAMPION (only through an approved two-person change ``model.champion:
                         <name>``, the change id recorded) or CHALLENGER with a traffic share
    ModelRetired         no longer served nor promotable
    ModelDriftDetected   (``ml.drift``) a window of live inputs drifted from the reference

Every event is on the ledger like any record; promotion requests and approvals are also
``hub.config-changes`` events (``governance.configchanges``: propose, approve by another person).
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.errors import Conflict, InvalidInput, NotFound
from core.events import OutgoingEvent
from core.fold import RecordDecoder, TopicFold, decoded
from core.ports.eventlog import EventLog
from core.ports.ml import ModelRegistry
from core.ports.policy import HUB_TENANT, Principal
from domain.envelope import H_ID
from governance.changes import Identities, Need
from governance.configchanges import Auditor, ConfigChanges, ConfigResource, Effect, Prepare
from governance.configstore import ConfigChangeStore
from governance.store import PolicyStore
from ingest.publish import Publisher
from ml.ab import MAX_CHALLENGER_SHARE as MAX_CHALLENGER_SHARE
from ml.ab import check_share
from ml.schedule import RETRAIN_PREFIX  # when a model is retrained (governed config)
from registry.service import SchemaRegistry

MODELS_TOPIC = "hub.models"
REGISTERED = "hub.ModelRegistered"
PROMOTED = "hub.ModelPromoted"
RETIRED = "hub.ModelRetired"
DRIFT = "hub.ModelDriftDetected"
CHAMPION_PREFIX = "model.champion:"
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


class ModelNotFound(NotFound):
    code = "model_not_found"


def check_name(name: str) -> str:
    if not name or len(name) > 64 or not set(name) <= NAME_CHARS:
        raise InvalidInput(
            f"Model name {name!r} is not allowed: use 1-64 lower-case letters, digits, '_' or "
            "'-' (e.g. payment_risk)."
        )
    return name


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class ModelVersion:
    model: str
    version: int
    family: str
    artifact_sha256: str
    features: list[str]
    threshold: float
    manifest: dict[str, Any]
    metrics: dict[str, Any]
    registered_by: str
    registered_at: str
    stage: str = "NONE"  # NONE | CHAMPION | CHALLENGER | RETIRED
    share: float = 0.0
    change_id: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "family": self.family,
            "stage": self.stage,
            "share": self.share,
            "artifact_sha256": self.artifact_sha256,
            "features": self.features,
            "threshold": self.threshold,
            "metrics": self.metrics,
            "manifest": self.manifest,
            "registered_by": self.registered_by,
            "registered_at": self.registered_at,
            "promotion_change_id": self.change_id,
        }


@dataclass
class ModelState:
    versions: dict[int, ModelVersion] = field(default_factory=dict)
    champion: int | None = None
    challenger: int | None = None
    drift: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Loaded:
    """A version ready to score: its estimator and the training reference for drift."""

    info: ModelVersion
    estimator: Any
    reference: dict[str, list[float]]
    fast: Any = None  # ml.fastpath: the same probabilities as plain numpy, when supported

    def predict(self, rows: Any) -> Any:
        """The probability of class 1 per row."""
        if self.fast is not None:
            return self.fast(rows)
        return self.estimator.predict_proba(rows)[:, 1]


def _fast(estimator: Any, info: ModelVersion, reference: Mapping[str, list[float]]) -> Any:
    """``ml.fastpath``'s numpy form, checked on probe rows (training reference rows, plus
    random ones around the scaler's mean, so a model without a reference is checked too)."""
    import numpy as np

    from ml.fastpath import compile_predict

    rows = np.zeros((0, len(info.features)))
    if all(f in reference for f in info.features):
        ref = np.array([reference[f][:64] for f in info.features], dtype=np.float64).T
        rows = ref if ref.size else rows
    try:
        return compile_predict(estimator, rows)
    except Exception:  # any doubt: score through predict_proba
        return None


class Models:
    """The fold of ``hub.models`` and the commands that append to it."""

    def __init__(
        self,
        log: EventLog,
        reader: RecordDecoder,
        publisher: Publisher,
        registry: ModelRegistry,
    ) -> None:
        self._log = log
        self._reader = reader
        self._publisher = publisher
        self.store = registry
        self._lock = threading.RLock()
        self._fold = TopicFold(
            log, MODELS_TOPIC, decoded(reader, self._apply), lock=self._lock, once_by=H_ID
        )
        self._state: dict[str, ModelState] = {}
        self._loaded: dict[tuple[str, int], Loaded] = {}
        self.clock = now_iso  # the time events are stamped with (tests move it)
        self._refreshed_at = float("-inf")

    # -- the fold --------------------------------------------------------------------------------
    def refresh(self) -> None:
        self._fold.catch_up()
        self._refreshed_at = time.monotonic()

    def serving_state(self, name: str, max_age_s: float = 0.5) -> ModelState:
        """``state`` for the scoring hot path: the fold is caught up at most every
        ``max_age_s`` (a change made through this object is folded at once; one made by
        another process is served within ``max_age_s``)."""
        if time.monotonic() - self._refreshed_at >= max_age_s:
            self.refresh()
        state = self._state.get(name)
        if state is None or not state.versions:
            return self.state(name)  # refreshes and names the problem
        return state

    def _apply(self, rec: dict[str, Any]) -> None:
        v = rec.get("value")
        if not isinstance(v, dict):
            return
        kind = rec["headers"].get("ce_type")
        state = self._state.setdefault(v["model"], ModelState())
        if kind == REGISTERED:
            state.versions[v["version"]] = ModelVersion(
                v["model"],
                v["version"],
                v["family"],
                v["artifact_sha256"],
                list(v["features"]),
                float(v["threshold"]),
                json.loads(v["manifest"]),
                json.loads(v["metrics"]),
                v["registered_by"],
                v["registered_at"],
            )
            return
        mv = state.versions.get(v.get("version", -1))
        if kind == DRIFT:
            state.drift.append({**v, "report": json.loads(v["report"])})
            return
        if mv is None:
            return
        if kind == PROMOTED:
            if v["stage"] == "CHAMPION":
                if state.champion is not None and state.champion in state.versions:
                    state.versions[state.champion].stage = "NONE"
                if state.challenger == mv.version:
                    state.challenger = None
                state.champion = mv.version
                mv.stage, mv.share, mv.change_id = "CHAMPION", 0.0, v.get("change_id", "")
            else:
                if state.challenger is not None and state.challenger in state.versions:
                    old = state.versions[state.challenger]
                    old.stage, old.share = "NONE", 0.0
                state.challenger = mv.version
                mv.stage, mv.share = "CHALLENGER", float(v.get("share", 0.0))
        elif kind == RETIRED:
            if state.champion == mv.version:
                state.champion = None
            if state.challenger == mv.version:
                state.challenger = None
            mv.stage, mv.share = "RETIRED", 0.0

    # -- reading ---------------------------------------------------------------------------------
    def names(self) -> list[str]:
        self.refresh()
        return sorted(self._state)

    def state(self, name: str) -> ModelState:
        self.refresh()
        state = self._state.get(name)
        if state is None or not state.versions:
            raise ModelNotFound(
                f"There is no model {name!r}: train one with `hub ml train {name}` (known: "
                f"{', '.join(sorted(self._state)) or 'none'})."
            )
        return state

    def champion_of(self, name: str) -> int | None:
        """The champion version, or None (also for an unknown model)."""
        self.refresh()
        state = self._state.get(name)
        return None if state is None else state.champion

    def version(self, name: str, version: int) -> ModelVersion:
        state = self.state(name)
        mv = state.versions.get(version)
        if mv is None:
            raise ModelNotFound(
                f"Model {name!r} has no version {version} (versions: "
                f"{', '.join(map(str, sorted(state.versions)))})."
            )
        return mv

    def load(self, name: str, version: int) -> Loaded:
        """The estimator of a version; its bytes MUST hash to the ledgered SHA-256."""
        key = (name, version)
        with self._lock:
            loaded = self._loaded.get(key)
            if loaded is not None:
                return loaded
            info = self.version(name, version)
            data = self.store.get(name, version, info.artifact_sha256)
            sha = hashlib.sha256(data).hexdigest()
            if sha != info.artifact_sha256:
                raise Conflict(
                    f"The stored artifact of {name} v{version} hashes to {sha[:16]}..., not the "
                    f"{info.artifact_sha256[:16]}... registered on the ledger: it was changed; "
                    "it will not be loaded."
                )
            import joblib  # scikit-learn's own persistence; loaded only once the hash matched

            bundle = joblib.load(io.BytesIO(data))
            estimator, reference = bundle["estimator"], bundle.get("reference", {})
            loaded = Loaded(info, estimator, reference, _fast(estimator, info, reference))
            self._loaded[key] = loaded
            return loaded

    def alias_mismatches(self, name: str) -> list[str]:
        """Where the registry's aliases differ from the ledger's fold (empty: in step).

        An adapter such as MLflow lets its own users move an alias; the hub never follows such a
        move (it scores with the ledger's champion) and reports it here, one sentence per alias."""
        state = self.state(name)
        want = {
            alias: v
            for alias, v in (("champion", state.champion), ("challenger", state.challenger))
            if v is not None
        }
        have = self.store.aliases(name)
        out = []
        for alias in sorted(set(want) | set(have)):
            w, h = want.get(alias), have.get(alias)
            if w == h:
                continue
            ledger = f"v{w}" if w is not None else "no version"
            store = f"v{h}" if h is not None and h >= 0 else "an unregistered version"
            if h is None:
                store = "nothing"
            out.append(
                f"{name}: the registry's alias {alias!r} names {store} but the ledger's "
                f"{alias} is {ledger}; it was moved outside the hub (the hub scores with the "
                f"ledger's); `hub ml sync-aliases {name}` puts the registry back in step."
            )
        return out

    def sync_aliases(self, name: str) -> list[str]:
        """Put the registry's aliases back to the ledger's fold; the mismatches it mended."""
        found = self.alias_mismatches(name)
        state = self.state(name)
        for alias, v in (("champion", state.champion), ("challenger", state.challenger)):
            self.store.set_alias(name, alias, v)
        for alias in self.store.aliases(name):
            if alias not in ("champion", "challenger"):
                self.store.set_alias(name, alias, None)
        return found

    # -- commands --------------------------------------------------------------------------------
    def register(
        self,
        principal: Principal,
        name: str,
        estimator: Any,
        *,
        family: str,
        features: Sequence[str],
        threshold: float,
        manifest: Mapping[str, Any],
        metrics: Mapping[str, Any],
        reference: Mapping[str, list[float]],
    ) -> ModelVersion:
        import joblib

        check_name(name)
        buf = io.BytesIO()
        joblib.dump({"estimator": estimator, "reference": dict(reference)}, buf)
        with self._lock:
            self.refresh()
            state = self._state.get(name)
            version = 1 + max(state.versions, default=0) if state else 1
            stored = self.store.put(
                name, version, buf.getvalue(), {"family": family, "features": list(features)}
            )
            value = {
                "model": name,
                "version": version,
                "family": family,
                "artifact_sha256": stored.sha256,
                "features": list(features),
                "threshold": float(threshold),
                "manifest": json.dumps(manifest, sort_keys=True),
                "metrics": json.dumps(metrics, sort_keys=True),
                "registered_by": principal.id,
                "registered_at": self.clock(),
            }
            self._publish(principal, REGISTERED, value)
            return self.version(name, version)

    def promote_challenger(
        self, principal: Principal, name: str, version: int, share: float, reason: str = ""
    ) -> ModelVersion:
        check_share(share)
        mv = self.promotable(name, version)
        if self.state(name).champion == version:
            raise Conflict(f"{name} v{version} is the champion; promote another challenger.")
        self._publish(
            principal,
            PROMOTED,
            {
                "model": name,
                "version": version,
                "stage": "CHALLENGER",
                "share": share,
                "change_id": "",
                "promoted_by": principal.id,
                "reason": reason,
                "promoted_at": now_iso(),
            },
        )
        self.store.set_alias(name, "challenger", version)
        return self.version(name, mv.version)

    def retire(self, principal: Principal, name: str, version: int, reason: str) -> ModelVersion:
        mv = self.version(name, version)
        if mv.stage == "RETIRED":
            raise Conflict(f"{name} v{version} is already retired.")
        if mv.stage == "CHAMPION":
            # Retiring the champion would stop all scoring on one person's word; the champion
            # changes only through the two-person change ``model.champion:<name>``.
            raise Conflict(
                f"{name} v{version} is the champion and cannot be retired by one person: make "
                f"another version the champion first (`hub ml promote {name} VERSION --reason "
                "WHY`, approved by a second person), then retire this one.",
                code="champion_retire",
            )
        self._publish(
            principal,
            RETIRED,
            {
                "model": name,
                "version": version,
                "retired_by": principal.id,
                "reason": reason,
                "retired_at": now_iso(),
            },
        )
        aliases = self.store.aliases(name)
        for alias, v in aliases.items():
            if v == version:
                self.store.set_alias(name, alias, None)
        return self.version(name, version)

    def promotable(self, name: str, version: int) -> ModelVersion:
        mv = self.version(name, version)
        if mv.stage == "RETIRED":
            raise Conflict(f"{name} v{version} is retired and cannot be promoted.")
        return mv

    def champion_event(self, name: str, version: int, by: str, reason: str, change_id: str) -> Any:
        return OutgoingEvent(
            value={
                "model": name,
                "version": version,
                "stage": "CHAMPION",
                "share": 0.0,
                "change_id": change_id,
                "promoted_by": by,
                "reason": reason,
                "promoted_at": now_iso(),
            },
            event_type=PROMOTED,
            key=name,
            correlation_id=change_id,
        )

    def publish_drift(self, value: dict[str, Any]) -> None:
        self._publisher.publish(MODELS_TOPIC, [OutgoingEvent(value, DRIFT, value["model"])], "ml")
        self.refresh()

    def _publish(self, principal: Principal, event_type: str, value: dict[str, Any]) -> None:
        self._publisher.publish(
            MODELS_TOPIC,
            [OutgoingEvent(value=value, event_type=event_type, key=value["model"])],
            principal.id,
            principal.tenant,
        )
        self.refresh()


# -- promotion to champion: a configuration change under the two-person rule ---------------------
@dataclass
class ChampionResource(ConfigResource):
    """``model.champion:<name>``: the champion version (``None``: no champion)."""

    name: str
    model: str
    models: Models

    def current(self) -> Any:
        return self.models.champion_of(self.model)

    def validate(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(
                f"The champion of {self.model} is a version number such as 3, not {value!r}.",
                code="invalid_model_version",
            )
        self.models.promotable(self.model, value)
        return value

    def effect(self, value: Any, by: str, reason: str, change_id: str, prepare: Prepare) -> Effect:
        event = self.models.champion_event(self.model, int(value), by, reason, change_id)
        return [(MODELS_TOPIC, prepare(MODELS_TOPIC, [event]))]

    def refresh(self) -> None:
        self.models.refresh()
        champion = self.current()
        self.models.store.set_alias(self.model, "champion", champion)

    def topics(self) -> tuple[str, ...]:
        return (MODELS_TOPIC,)

    def fold(self) -> None:
        self.models.refresh()  # the alias is set after an apply only


class ModelChanges(ConfigChanges):
    """Configuration changes that also know ``model.champion:<name>``, always two-person."""

    def __init__(
        self,
        models: Models,
        log: EventLog,
        registry: SchemaRegistry,
        reader: RecordDecoder,
        publisher: Publisher,
        *,
        ledger: Auditor | None = None,
        identities: Identities | None = None,
    ) -> None:
        super().__init__(
            log,
            registry,
            publisher,
            PolicyStore(log, reader),
            ConfigChangeStore(log, reader),
            ledger=ledger,
            identities=identities,
        )
        self.models = models

    def resource(self, name: str) -> ConfigResource:
        if name.startswith(CHAMPION_PREFIX):
            model = check_name(name[len(CHAMPION_PREFIX) :])
            return ChampionResource(name, model, self.models)
        if name.startswith(RETRAIN_PREFIX):
            from ml.schedule import RetrainScheduleResource

            model = check_name(name[len(RETRAIN_PREFIX) :])
            return RetrainScheduleResource(name, model, self.store, self.models)
        return super().resource(name)

    def requires_two_person(self, resource: str) -> bool:
        return resource.startswith(CHAMPION_PREFIX) or super().requires_two_person(resource)

    def proposer_needs(self, resource: str) -> list[Need]:
        """``hub ml promote`` / ``hub ml schedule`` took ``model.promote`` on the model, hub-wide
        (one champion for all tenants), decided again at approval."""
        for prefix in (CHAMPION_PREFIX, RETRAIN_PREFIX):
            if resource.startswith(prefix):
                model = resource[len(prefix) :]
                return [("model.promote", f"model:{model}", {"tenant": HUB_TENANT})]
        return super().proposer_needs(resource)

    def approver_needs(self, resource: str) -> list[Need]:
        """``hub ml approve`` takes ``model.approve``, hub-wide."""
        if resource.startswith((CHAMPION_PREFIX, RETRAIN_PREFIX)):
            return [("model.approve", resource, {"tenant": HUB_TENANT})]
        return super().approver_needs(resource)

    def propose_champion(self, principal: Principal, name: str, version: int, reason: str) -> Any:
        return self.propose(principal, CHAMPION_PREFIX + name, version, reason)
