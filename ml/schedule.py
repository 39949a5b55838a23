"""Scheduled retraining as governed configuration: the resource ``ml.retrain:<model>``.

Its value says when a model is retrained (``MachineLearning.retrain``: a fresh training-set cut,
evaluated beside the champion on the same holdout, registered as the challenger for ``share`` of
the entity keys; promotion stays a human, two-person decision)::

    {"every": "7d", "on_drift": true, "share": 0.1}

``every`` is a period (``30m``, ``12h``, ``7d``; at least 10 minutes) or absent; ``on_drift``
retrains once per ``ModelDriftDetected`` event of every tenant's predictions (``tenant`` null:
``hub ml drift --all-tenants``) recorded after the model's newest version (a check of one
tenant's predictions is recorded but retrains nothing: a tenant's key would otherwise change the
challenger that scores every tenant's accounts);
``None`` (null) stops scheduled retraining. The value changes only through the config-change flow
(``ModelChanges``: propose, and approve by a second person when the active policy bundle's
``two_person`` list names the resource, e.g. ``ml.retrain:*``).

``RetrainScheduler`` runs while the hub serves. It keeps no state of its own: the schedules are
folded from the applied changes, and a run is a ``ModelRegistered`` event by the scheduler's
principal (``ml.scheduler``) on ``hub.models``, so a restart neither repeats nor skips a run:
a period's run is due when the newest version the scheduler registered (else the change that
set the schedule) is at least ``every`` old; a hub down for several periods runs once on start.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from core.errors import InvalidInput
from core.events import OutgoingEvent
from core.periodic import Periodic
from core.ports.policy import Principal
from governance.configchanges import CONFIG_TOPIC, ConfigResource, Effect, Prepare
from ml.ab import MAX_CHALLENGER_SHARE

if TYPE_CHECKING:
    from governance.configstore import ConfigChangeStore

log = logging.getLogger(__name__)

RETRAIN_PREFIX = "ml.retrain:"


class ModelsFold(Protocol):
    """What the schedule reads of ``ml.models.Models`` (typed here: ``ml.models`` imports this
    module, not the other way round)."""

    def names(self) -> list[str]: ...

    def state(self, name: str) -> Any: ...


class Retrainer(Protocol):
    """``ml.service.MachineLearning`` as the scheduler uses it."""

    @property
    def models(self) -> ModelsFold: ...

    def retrain(self, principal: Principal, name: str, share: float, reason: str) -> Any: ...


SCHEDULER = Principal("ml.scheduler", frozenset({"ml_engineer"}))
MIN_EVERY = timedelta(minutes=10)
_PERIOD = re.compile(r"^([1-9][0-9]{0,5})([mhd])$")
_UNITS = {"m": 60, "h": 3600, "d": 86400}
_FIELDS = ("every", "on_drift", "share")


@dataclass(frozen=True, slots=True)
class RetrainSchedule:
    model: str
    every: timedelta | None
    on_drift: bool
    share: float
    since: datetime  # when the schedule came into force (its change was applied)

    def as_value(self) -> dict[str, Any]:
        return schedule_value(self.every, self.on_drift, self.share)


def _bad(message: str) -> InvalidInput:
    return InvalidInput(message, code="invalid_retrain_schedule")


def period(text: Any) -> timedelta:
    """``30m``, ``12h`` or ``7d`` as a timedelta (at least ten minutes)."""
    m = _PERIOD.match(text) if isinstance(text, str) else None
    if m is None:
        raise _bad(f"every {text!r} is not a period: write a number and a unit m, h or d, e.g. 7d.")
    got = timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    if got < MIN_EVERY:
        raise _bad(f"every {text!r} is shorter than 10 minutes: a retrain cuts a training set.")
    return got


def _period_text(every: timedelta) -> str:
    seconds = int(every.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds // 60}m"  # pragma: no cover - periods are whole minutes


def schedule_value(every: timedelta | None, on_drift: bool, share: float) -> dict[str, Any]:
    out: dict[str, Any] = {"on_drift": on_drift, "share": share}
    if every is not None:
        out["every"] = _period_text(every)
    return out


def parse_value(value: Any) -> dict[str, Any] | None:
    """The canonical value of a proposed schedule; ``InvalidInput`` naming the first problem."""
    if value is None:
        return None
    if not isinstance(value, dict) or not set(value) <= set(_FIELDS):
        raise _bad(
            f"A retrain schedule is an object of {', '.join(_FIELDS)} (e.g. "
            f'{{"every": "7d", "on_drift": true, "share": 0.1}}; null stops it), not {value!r}.'
        )
    every = None if value.get("every") is None else period(value["every"])
    on_drift = value.get("on_drift", False)
    if not isinstance(on_drift, bool):
        raise _bad(f"on_drift is true or false, not {on_drift!r}.")
    share = value.get("share", 0.1)
    if (
        isinstance(share, bool)
        or not isinstance(share, int | float)
        or not 0 < share <= MAX_CHALLENGER_SHARE
    ):
        raise _bad(
            f"share is the challenger's share of keys, above 0 and at most "
            f"{MAX_CHALLENGER_SHARE} (more is a champion: a two-person change), not {share!r}."
        )
    if every is None and not on_drift:
        raise _bad(
            "A retrain schedule needs every (e.g. 7d) or on_drift true; null stops it instead."
        )
    return schedule_value(every, on_drift, float(share))


def _when(text: str) -> datetime:
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def schedules(store: ConfigChangeStore) -> dict[str, RetrainSchedule]:
    """The schedules in force, per model: each resource's last applied change."""
    store.refresh()
    last: dict[str, Any] = {}
    for change in store.changes():
        if change.resource.startswith(RETRAIN_PREFIX) and change.applied_at is not None:
            last[change.resource[len(RETRAIN_PREFIX) :]] = change
    out: dict[str, RetrainSchedule] = {}
    for model, change in sorted(last.items()):
        value = None if change.new_value is None else json.loads(change.new_value)
        if value is None:
            continue
        every = value.get("every")
        out[model] = RetrainSchedule(
            model,
            None if every is None else period(every),
            bool(value.get("on_drift", False)),
            float(value.get("share", 0.1)),
            _when(str(change.applied_at)),
        )
    return out


@dataclass
class RetrainScheduleResource(ConfigResource):
    """``ml.retrain:<model>`` for the config-change flow."""

    name: str
    model: str
    store: ConfigChangeStore
    models: ModelsFold

    def current(self) -> Any:
        got = schedules(self.store).get(self.model)
        return None if got is None else got.as_value()

    def validate(self, value: Any) -> Any:
        canonical = parse_value(value)
        if canonical is not None:
            self.models.state(self.model)  # ModelNotFound: train it first
        return canonical

    def effect(self, value: Any, by: str, reason: str, change_id: str, prepare: Prepare) -> Effect:
        changed = OutgoingEvent(
            value={
                "key": self.name,
                "old_value": json.dumps(self.current()),
                "new_value": json.dumps(value),
                "changed_by": by,
                "reason": reason,
                "changed_at": datetime.now(UTC).isoformat(),
            },
            key=self.name,
            correlation_id=change_id,
        )
        return [(CONFIG_TOPIC, prepare(CONFIG_TOPIC, [changed]))]

    def refresh(self) -> None:
        self.store.refresh()

    def topics(self) -> tuple[str, ...]:
        return ()  # its value is folded from hub.config-changes


class RetrainScheduler:
    """Runs the due retrains (see the module docstring); ``run_due`` is one tick."""

    def __init__(
        self,
        store: ConfigChangeStore,
        ml: Callable[[], Retrainer],
        principal: Principal = SCHEDULER,
        fence: Callable[[], AbstractContextManager[object]] = nullcontext,
    ) -> None:
        self.store = store
        self.fence = fence  # each retrain runs inside it (a leader's epoch: ``hub.ha.claim``)
        self._ml = ml  # built on first need: a hub without schedules never imports scikit-learn
        self.principal = principal
        self._failed: dict[str, datetime] = {}
        self._loop = Periodic(
            "hub-ml-retrain", self.run_due, "the retrain scheduler's tick failed", log
        )

    def due(self, now: datetime) -> list[tuple[RetrainSchedule, str]]:
        """The (schedule, reason) of every model whose retrain is due at ``now``."""
        found = schedules(self.store)
        if not found:
            return []
        models = self._ml().models
        out = []
        for model, sched in found.items():
            if model not in models.names():
                continue
            state = models.state(model)
            versions = list(state.versions.values())
            newest = max(_when(v.registered_at) for v in versions)
            if sched.on_drift:
                # a drift of every tenant's predictions only: one tenant's check (a tenant's
                # ml engineer may run it) must not retrain the model all tenants are scored with
                drifted = [
                    d
                    for d in state.drift
                    if d.get("tenant") is None and _when(str(d["detected_at"])) > newest
                ]
                if drifted:
                    names = ", ".join(drifted[-1].get("drifted") or ["the score"])
                    out.append((sched, f"drift in {names} ({drifted[-1]['detected_at']})"))
                    continue
            if sched.every is not None:
                mine = [
                    _when(v.registered_at) for v in versions if v.registered_by == self.principal.id
                ]
                last = max(mine, default=sched.since)
                if now >= last + sched.every:
                    out.append((sched, f"scheduled: every {_period_text(sched.every)}"))
        return out

    def run_due(self, now: datetime | None = None) -> list[Any]:
        """Retrain every due model; returns the versions made (a failure is logged and retried
        an hour later, not every tick)."""
        now = now or datetime.now(UTC)
        made = []
        for sched, reason in self.due(now):
            failed = self._failed.get(sched.model)
            if failed is not None and now < failed + timedelta(hours=1):
                continue
            try:
                with self.fence():  # refused (Fenced, NotLeader) when another process leads
                    mv = self._ml().retrain(self.principal, sched.model, sched.share, reason)
            except Exception:
                self._failed[sched.model] = now
                log.exception("scheduled retrain of %s failed", sched.model)
                continue
            self._failed.pop(sched.model, None)
            log.info("retrained %s: v%s (%s)", sched.model, mv.version, reason)
            made.append(mv)
        return made

    def start(self, check_every_s: float = 60.0) -> None:
        self._loop.start(check_every_s)

    def stop(self) -> None:
        self._loop.stop()
