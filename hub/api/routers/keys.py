"""Key management beyond issuing (``POST /v1/keys`` lives in ``hub.api.app``): list, revoke,
rotate. Every answer leaves out salts, hashes and secrets, but a rotation's new token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from core.ports.policy import Principal
from governance.apikeys import parse_duration
from governance.enrolment import EnrolmentTicket
from hub.api.deps import authorize, decision_context, hub_of
from hub.api.models import (
    EnrolmentApprovedOut,
    EnrolmentOut,
    EnrolmentTicketOut,
    KeyOut,
    KeyRotated,
    KeysRevoked,
)

router = APIRouter()


class KeyRevoke(BaseModel):
    reason: str = Field(min_length=1)
    cascade: bool = False


class KeyRotate(BaseModel):
    grace: str | None = Field(default=None, description="Old key keeps working this long.")
    reason: str = ""


@router.get("/v1/keys", tags=["keys"], response_model=list[KeyOut])
def list_keys(
    request: Request,
    all_keys: bool = Query(False, alias="all", description="Include revoked and expired keys."),
    who: Principal = Depends(authorize("keys.read")),
) -> list[dict[str, Any]]:
    """Keys with owner, roles and state; never a secret, salt or hash. A reader limited to a
    tenant (``hub.reports.reader_scope`` on ``keys``: without ``tenant.all``) lists its own
    tenant's keys only: another tenant's owners and roles are that tenant's."""
    from hub.reports import reader_scope

    keys = hub_of(request).keys
    scope = reader_scope(hub_of(request), who, {}, decision_context(request), "keys")
    found = keys.all() if all_keys else keys.active()
    return [k.public() for k in found if scope in (None, k.tenant)]


@router.post("/v1/keys/{key_id}/revoke", tags=["keys"], response_model=KeysRevoked)
def revoke_key(
    key_id: str,
    body: KeyRevoke,
    request: Request,
    principal: Principal = Depends(authorize("keys.revoke")),
) -> dict[str, Any]:
    ids = hub_of(request).keys.revoke(
        key_id, revoked_by=principal.id, reason=body.reason, actor=principal, cascade=body.cascade
    )
    return {"revoked": ids}


@router.post(
    "/v1/keys/{key_id}/rotate",
    tags=["keys"],
    status_code=201,
    response_model=KeyRotated | EnrolmentTicketOut,
)
def rotate_key(
    key_id: str,
    body: KeyRotate,
    request: Request,
    principal: Principal = Depends(authorize("keys.rotate")),
) -> dict[str, Any]:
    """A replacement with the same owner and roles; the old key stops now or after ``grace``.
    Only the key's owner or an admin may rotate it (the answer holds the new secret). An admin's
    rotation of another person's key that may approve is a reset: the key stops now and the
    answer is an enrolment token for its owner (two-person when the rule is on)."""
    keys = hub_of(request).keys
    grace = parse_duration(body.grace) if body.grace else None
    issued = keys.rotate(principal, key_id, grace=grace, reason=body.reason)
    if isinstance(issued, EnrolmentTicket):
        return issued.public()
    return {"key_id": issued.key_id, "token": issued.token, "replaces": key_id}


# -- enrolment (governance.enrolment) --------------------------------------------------------
class EnrolIn(BaseModel):
    token: str = Field(min_length=1, max_length=200, description="he_ID.FIRST[.SECOND]")
    second_half: str | None = Field(default=None, max_length=100)
    secret: str = Field(
        min_length=1,
        max_length=256,
        description="Generated where the person is (32-256 URL-safe characters); the hub "
        "stores only its salted HMAC.",
    )


class EnrolOut(BaseModel):
    key_id: str
    owner: str
    roles: list[str]
    tenant: str


class EnrolmentApprove(BaseModel):
    reason: str = ""


@router.post("/v1/enrol", tags=["keys"], status_code=201, response_model=EnrolOut)
def enrol(body: EnrolIn, request: Request) -> dict[str, Any]:
    """Redeem an enrolment token with a secret the person generated; the answer names the new
    key (the secret is the caller's own). No API key is needed; a caller that sends one must be
    the token's owner (an admin may not redeem a token they were handed)."""
    from core.errors import Unauthenticated
    from hub.api.auth import credentials

    hub = hub_of(request)
    presented = None
    header = request.headers.get("authorization")
    if header:
        try:
            presented = hub.keys.verify(*credentials(header))
        except Unauthenticated as exc:
            raise Unauthenticated(
                "The credential sent with the enrolment is not valid: enrol without one."
            ) from exc
    issued = hub.keys.redeem(
        body.token, body.secret, second=body.second_half, presented_by=presented
    )
    key = hub.keys.get(issued.key_id)
    return {
        "key_id": key.key_id,
        "owner": key.owner,
        "roles": sorted(key.roles),
        "tenant": key.tenant,
    }


@router.get("/v1/enrolments", tags=["keys"], response_model=list[EnrolmentOut])
def list_enrolments(
    request: Request, who: Principal = Depends(authorize("keys.read"))
) -> list[dict[str, Any]]:
    """Enrolments (never a token half), of the reader's tenant unless it reads every tenant."""
    from datetime import UTC, datetime

    from hub.reports import reader_scope

    hub = hub_of(request)
    scope = reader_scope(hub, who, {}, decision_context(request), "keys")
    now = datetime.now(UTC)
    return [e.public(now) for e in hub.keys.enrolments() if scope in (None, e.tenant)]


@router.post(
    "/v1/enrolments/{enrolment_id}/approve", tags=["keys"], response_model=EnrolmentApprovedOut
)
def approve_enrolment(
    enrolment_id: str,
    body: EnrolmentApprove,
    request: Request,
    principal: Principal = Depends(authorize("keys.create")),
) -> dict[str, Any]:
    """A second approver approves an enrolment (two-person rule); the answer holds the token's
    second half, for the person only."""
    keys = hub_of(request).keys
    second = keys.approve_enrolment(principal, enrolment_id, body.reason)
    owner = next(e.owner for e in keys.enrolments() if e.enrolment_id == enrolment_id)
    return {"enrolment_id": enrolment_id, "owner": owner, "second_half": second}
