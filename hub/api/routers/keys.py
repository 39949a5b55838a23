"""Key management beyond issuing (``POST /v1/keys`` lives in ``hub.api.app``): list, revoke,
rotate. Every answer leaves out salts, hashes and secrets, but a rotation's new token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from core.ports.policy import Principal
from governance.apikeys import parse_duration
from hub.api.deps import authorize, hub_of
from hub.api.models import KeyOut, KeyRotated, KeysRevoked

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
    principal: Principal = Depends(authorize("keys.read")),
) -> list[dict[str, Any]]:
    """Keys with owner, roles and state; never a secret, salt or hash. Only an admin lists
    every tenant's keys; anyone else its own tenant's and its own."""
    keys = hub_of(request).keys
    listed = keys.all() if all_keys else keys.active()
    return [k.public() for k in listed if keys.may_see(principal, k)]


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


@router.post("/v1/keys/{key_id}/rotate", tags=["keys"], status_code=201, response_model=KeyRotated)
def rotate_key(
    key_id: str,
    body: KeyRotate,
    request: Request,
    principal: Principal = Depends(authorize("keys.rotate")),
) -> dict[str, Any]:
    """A replacement with the same owner and roles; the old key stops now or after ``grace``.
    Only the key's owner or an admin may rotate it (the answer holds the new secret)."""
    keys = hub_of(request).keys
    grace = parse_duration(body.grace) if body.grace else None
    issued = keys.rotate(principal, key_id, grace=grace, reason=body.reason)
    return {"key_id": issued.key_id, "token": issued.token, "replaces": key_id}
