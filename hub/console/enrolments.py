"""The console's enrolment pages: approving pending enrolments, and redeeming a token.

``/ui/enrolments`` (in ``pages.PAGES``, action ``keys.read``) lists the enrolments of the
reader's tenant (every tenant for a reader with ``tenant.all``), as ``GET /v1/enrolments`` does,
with an Approve button on each one pending approval. The button's data call is decided under
``keys.create``, as ``POST /v1/enrolments/{id}/approve``, and calls the same governance method
(``EnrolmentCommands.approve_enrolment``): the two-person rule, the proposer re-check, the
approver's own permission and the role/tenant rule are decided there, once, for both. A refusal
answers with the API's code and message. The approver is shown the token's second half once.

``/ui/enrol`` is public (the person has no key yet). It is a static page: its script generates
the secret **in the browser** (``crypto.getRandomValues``, 32 bytes, as ``hub enrol`` does with
``secrets.token_urlsafe(32)``) and sends it with the token to ``POST /v1/enrol``, the same public
API call the CLI makes, without cookies. The hub receives the secret in that one request (as
from the CLI) and stores only its salted HMAC; nobody else ever sees it. The page has no session
and no form of its own to forge: a token is the credential, as for the API.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from core.ports.policy import Principal
from hub.api.deps import authorize, decision_context, hub_of

router = APIRouter(include_in_schema=False)

REDEEM_PAGE = "/ui/enrol"
OPEN_STATES = ("pending_approval", "ready")


class EnrolmentApproveIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2_000)


class EnrolmentList(BaseModel):
    enrolments: list[dict[str, Any]]


class EnrolmentApprovedOut(BaseModel):
    enrolment_id: str
    owner: str
    second_half: str = Field(description="For the person only; shown once.")


@router.get(REDEEM_PAGE, response_class=HTMLResponse)
def redeem_page() -> HTMLResponse:
    """The token redemption page (public: the gate lets it through without a session)."""
    text = (resources.files("hub.console") / "templates" / "enrol.html").read_text("utf-8")
    return HTMLResponse(text)


@router.get("/ui/api/enrolments", response_model=EnrolmentList)
def enrolments(
    request: Request,
    all_states: bool = Query(False, alias="all", description="Also redeemed, expired, withdrawn."),
    who: Principal = Depends(authorize("keys.read")),
) -> dict[str, Any]:
    """Enrolments (never a token half or a digest) of the reader's tenant unless it reads every
    tenant (``hub.reports.reader_scope`` on ``keys``, as ``GET /v1/enrolments``); open ones only
    unless ``all``."""
    from hub.reports import reader_scope

    hub = hub_of(request)
    scope = reader_scope(hub, who, {}, decision_context(request), "keys")
    now = datetime.now(UTC)
    shown = [e.public(now) for e in hub.keys.enrolments() if scope in (None, e.tenant)]
    if not all_states:
        shown = [e for e in shown if e["state"] in OPEN_STATES]
    shown.sort(key=lambda e: (e["state"] != "pending_approval", e["requested_at"]))
    return {"enrolments": json.loads(json.dumps(shown, default=str))}


@router.post("/ui/api/enrolments/{enrolment_id}/approve", response_model=EnrolmentApprovedOut)
def approve(
    enrolment_id: Annotated[str, Path(max_length=100)],
    body: EnrolmentApproveIn,
    request: Request,
    principal: Principal = Depends(authorize("keys.create")),
) -> dict[str, Any]:
    """Approve a pending enrolment as the second person, as ``POST /v1/enrolments/{id}/approve``
    (same action, same governance method, same refusals); the answer holds the second half."""
    keys = hub_of(request).keys
    second = keys.approve_enrolment(principal, enrolment_id, body.reason)
    owner = next(e.owner for e in keys.enrolments() if e.enrolment_id == enrolment_id)
    return {"enrolment_id": enrolment_id, "owner": owner, "second_half": second}


__all__ = ["REDEEM_PAGE", "router"]
