"""Investigation cases (purpose of use, ``governance.cases``): ``POST /v1/cases`` opens one
(``case.open``), ``POST /v1/cases/{id}/close`` closes it (``case.close``), ``GET /v1/cases`` and
``GET /v1/cases/{id}`` list them (``case.read``). A reader then sends ``X-Hub-Purpose:
investigation`` and ``X-Hub-Case: <id>``; the policy unmasks PII only for an open, unexpired case
naming the reader, and every decision records the case id."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from core.errors import Forbidden
from core.ports.policy import Principal
from governance.cases import CaseNotFound, cases_within, decide_on_case
from hub.api.deps import authorize, count_decision, decision_context, hub_of, route_of
from hub.api.models import Case, Cases

router = APIRouter(tags=["governance"])


class CaseIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2_000)
    subjects: list[str] = Field(default_factory=list, max_length=1_000)
    investigators: list[str] = Field(
        default_factory=list, max_length=100, description="principal ids; default the opener"
    )
    expires_in: str | None = Field(None, max_length=20, description="e.g. 12h, 7d (default 7d)")


class CaseCloseIn(BaseModel):
    reason: str = Field("", max_length=2_000)


@router.post("/v1/cases", status_code=201, response_model=Case)
def open_case(
    body: CaseIn, request: Request, who: Principal = Depends(authorize("case.open"))
) -> dict[str, Any]:
    return hub_of(request).cases.open(
        reason=body.reason,
        actor=who.id,
        tenant=who.tenant,
        subjects=body.subjects,
        investigators=body.investigators,
        expires_in=body.expires_in,
    )


@router.get("/v1/cases", response_model=Cases)
def list_cases(
    request: Request,
    status: str | None = Query(None, pattern="^(open|closed|expired)$"),
    who: Principal = Depends(authorize("case.read")),
) -> dict[str, Any]:
    hub = hub_of(request)
    found = hub.cases.list_cases(status=status)
    return {"cases": cases_within(hub.policy, who, found, decision_context(request))}


@router.get("/v1/cases/{case_id}", response_model=Case)
def get_case(
    case_id: str, request: Request, who: Principal = Depends(authorize("case.read"))
) -> dict[str, Any]:
    case = hub_of(request).cases.get(case_id)
    check_case(request, who, "case.read", case)
    return case.as_dict()


@router.post("/v1/cases/{case_id}/close", response_model=Case)
def close_case(
    case_id: str,
    body: CaseCloseIn,
    request: Request,
    who: Principal = Depends(authorize("case.close")),
) -> dict[str, Any]:
    check_case(request, who, "case.close", hub_of(request).cases.get(case_id))
    return hub_of(request).cases.close(case_id, actor=who.id, reason=body.reason)


def check_case(request: Request, who: Principal, action: str, case: Any) -> None:
    """``decide_on_case`` for a request: counted, and ``Forbidden`` (403) on a deny; a case of
    another tenant that ``who`` may not see answers as a missing one (404, ``Cases.get``'s
    message): the policy's reason names the case's tenant, and a 403 would tell a guesser that
    the id is some tenant's case. The deny is recorded with its full reason all the same."""
    hub = hub_of(request)
    decision = decide_on_case(hub.policy, who, action, case, decision_context(request))
    try:
        count_decision(hub, route_of(request), action, decision)
    except Forbidden:
        if case.tenant != who.tenant:
            raise CaseNotFound(
                f"There is no case {case.case_id!r}: list the cases with `hub case list`."
            ) from None
        raise
