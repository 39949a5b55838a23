"""Models over HTTP (``ml.service``): ``GET /v1/models`` and ``GET /v1/models/{name}``
(``model.read``), ``POST /v1/models/{name}/predict`` (``model.predict``: scores one event with
the champion, or the challenger for its share of entity keys, from online features of the
caller's tenant, or of the body's ``tenant`` when the policy allows ``model.predict`` for it;
recorded on ``hub.predictions``), ``GET /v1/models/{name}/ab`` (``model.read``: the A/B report),
``POST /v1/models/{name}/retrain`` (``model.train`` and ``model.promote``, as ``hub ml retrain``:
a new version evaluated beside the champion becomes the challenger for ``share`` of the keys;
making it the champion stays a two-person decision).

While the app serves, a lifespan runs the retrain scheduler (``ml.schedule``): every minute it
folds the governed ``ml.retrain:<model>`` settings and retrains the models that are due (the ML
service, and scikit-learn, are built only once a schedule exists)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Path, Request
from pydantic import BaseModel, Field

from core.ports.policy import Principal
from hub.api.deps import (
    authorize,
    authorize_hub_wide,
    count_decision,
    decision_context,
    hub_of,
    route_of,
)
from ml.ab import MAX_CHALLENGER_SHARE


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    from hub.ha import Guard, while_leader
    from hub.ml_setup import ml_of
    from ml.schedule import RetrainScheduler

    hub = app.state.hub

    def start(fence: Guard) -> RetrainScheduler:  # under election: the leader only, fenced
        scheduler = RetrainScheduler(hub.config_changes.store, lambda: ml_of(hub), fence=fence)
        scheduler.start(hub.settings.scheduler_check_s)
        return scheduler

    with while_leader(hub, "ml.retrain", start):
        yield


router = APIRouter(tags=["ml"], lifespan=lifespan)

NAME = Path(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")


class ModelVersionOut(BaseModel):
    model: str
    version: int
    family: str
    stage: str = Field(description="NONE, CHAMPION, CHALLENGER or RETIRED")
    share: float
    artifact_sha256: str
    features: list[str]
    threshold: float
    metrics: dict[str, Any]
    manifest: dict[str, Any] = Field(
        description="The training set: ledger checkpoint, offsets, query, rows, digest."
    )
    registered_by: str
    registered_at: str
    promotion_change_id: str


class ModelOut(BaseModel):
    model: str
    champion: int | None
    challenger: int | None
    versions: list[ModelVersionOut]


class PredictIn(BaseModel):
    event: dict[str, Any] = Field(
        description="The event to score, e.g. a PaymentInitiated: account_id, amount, "
        "counterparty_country, initiated_at (RFC 3339), payment_id.",
        examples=[
            {
                "payment_id": "P-1",
                "account_id": "ACC-0042",
                "amount": "9800.00",
                "counterparty_country": "GB",
                "initiated_at": "2026-11-24T15:00:00Z",
            }
        ],
    )
    tenant: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="The tenant whose history of the event's entity is read; default the "
        "caller's. Another tenant's needs model.predict allowed for that tenant (tenant.all "
        "or a grant of it).",
    )


class PredictionOut(BaseModel):
    model: str
    version: int
    variant: str
    entity: str
    subject: str
    source: str
    features: dict[str, float]
    feature_digest: str
    score: float
    decision: str
    latency_us: int


class VariantOut(BaseModel):
    versions: list[int]
    predictions: int
    alerts: int
    alert_rate: float
    mean_score: float
    latency_us_p50: int
    latency_us_p99: int
    labelled: int
    precision: float | None
    recall: float | None


class AbReportOut(BaseModel):
    model: str
    champion: int | None
    challenger: int | None
    variants: dict[str, VariantOut]
    alert_rate_p_value: float | None = Field(
        description="Two-sided p-value that champion and challenger alert at the same rate."
    )


def _ml(request: Request) -> Any:
    from hub.ml_setup import ml_of

    return ml_of(hub_of(request))


@router.get("/v1/models", response_model=list[ModelOut])
def list_models(
    request: Request, _: Principal = Depends(authorize("model.read", "model:*"))
) -> list[dict[str, Any]]:
    models = _ml(request).models
    return [_model(models, name) for name in models.names()]


@router.get("/v1/models/{name}", response_model=ModelOut)
def get_model(
    request: Request,
    name: str = NAME,
    _: Principal = Depends(authorize("model.read")),
) -> dict[str, Any]:
    return _model(_ml(request).models, name)


@router.post("/v1/models/{name}/predict", response_model=PredictionOut)
def predict(
    body: PredictIn,
    request: Request,
    name: str = NAME,
    who: Principal = Depends(authorize("model.predict")),
) -> dict[str, Any]:
    tenant = body.tenant or who.tenant
    if tenant != who.tenant:  # another tenant's history: asked about that tenant
        hub = hub_of(request)
        context = {**decision_context(request), "tenant": tenant}
        decision = hub.policy.decide(who, "model.predict", f"models/{name}", context)
        count_decision(hub, route_of(request), "model.predict", decision)
    result: dict[str, Any] = _ml(request).predict(who, name, body.event, tenant=tenant).as_dict()
    return result


class RetrainIn(BaseModel):
    share: float = Field(
        0.1,
        gt=0.0,
        le=MAX_CHALLENGER_SHARE,
        description="The challenger's share of the keys (more is a champion: two people).",
    )
    reason: str = Field("retrain", min_length=1, max_length=500)


@router.post("/v1/models/{name}/retrain", response_model=ModelVersionOut)
def retrain(
    body: RetrainIn,
    request: Request,
    name: str = NAME,
    who: Principal = Depends(authorize("model.train")),
    _: Principal = Depends(authorize_hub_wide("model.promote")),  # one champion, all tenants
) -> dict[str, Any]:
    made: dict[str, Any] = _ml(request).retrain(who, name, body.share, body.reason).as_dict()
    return made


@router.get("/v1/models/{name}/ab", response_model=AbReportOut)
def ab_report(
    request: Request,
    name: str = NAME,
    who: Principal = Depends(authorize("model.read")),
) -> dict[str, Any]:
    """The A/B report of the caller's tenant's predictions and labels; a reader the policy
    allows ``tenant.all`` on ``models`` (admin) gets every tenant's."""
    from hub.reports import reader_scope

    hub = hub_of(request)
    row_filter = request.state.decision.row_filter
    scope = reader_scope(hub, who, row_filter, decision_context(request), "models")
    report: dict[str, Any] = _ml(request).ab_report(name, scope)
    return report


def _model(models: Any, name: str) -> dict[str, Any]:
    state = models.state(name)
    return {
        "model": name,
        "champion": state.champion,
        "challenger": state.challenger,
        "versions": [v.as_dict() for _, v in sorted(state.versions.items())],
    }
