"""Policy routes: the active bundle, its history, and changes as events (``policy.read``,
``policy.propose``, ``policy.approve``).

Installing this router also keeps the policy engine on the active bundle while the app runs: a
lifespan starts a ``PolicyFollower`` that folds ``hub.policies`` every second, so a change
activated by another process (``hub policy approve``) reaches this server too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, Field

from core.ports.policy import Principal
from governance.changes import PolicyChanges
from hub.api.deps import allowed_hub_wide, authorize, authorize_hub_wide, hub_of, principal_of
from hub.api.models import ActivePolicy, PolicyChange


def _changes(app: Any) -> PolicyChanges:
    changes: PolicyChanges = app.state.hub.policy_changes
    return changes


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    follower = app.state.hub.policy_follower
    follower.start()
    try:
        yield
    finally:
        follower.stop()


router = APIRouter(tags=["policy"], lifespan=lifespan)

# One bundle decides for every tenant: proposing, approving or rolling it back is decided as
# the hub's own tenant's (``authorize_hub_wide``), so two officers of one tenant cannot give
# themselves ``tenant.all`` (the two-person rule counts persons, not tenants).


# What a reader limited to one tenant sees of the bundle: its version, file names and the
# changes' summaries (proposers and approvers are the hub's own officers), not the text. The
# bundle's data (``grants``, ``open_cases``) names every tenant's principals and subjects, so a
# change's diff and the files' text are for a reader allowed ``policy.read`` hub-wide.
WITHHELD = "the diff names every tenant's principals: reading it needs policy.read hub-wide"


async def sees_bundle_text(request: Request) -> bool:
    """Whether the caller may read the bundle's text (``WITHHELD``)."""
    return await allowed_hub_wide(request, principal_of(request), "policy.read", "policy")


class ProposeBody(BaseModel):
    files: dict[str, str] = Field(description="The whole bundle: relative path -> text.")
    reason: str = Field(min_length=1)


class ApproveBody(BaseModel):
    reason: str = ""
    expected_version: str | None = Field(
        None,
        max_length=200,
        description="The bundle_version the approver was shown (GET /v1/policy/changes/{id}): "
        "refused (409 change_not_as_shown) when the pending change no longer proposes it.",
    )


class RollbackBody(BaseModel):
    version: str = Field(min_length=4, description="A bundle version (a unique prefix will do).")
    reason: str = Field(min_length=1)


@router.get("/v1/policy", response_model=ActivePolicy)
def active_policy(
    request: Request, _: Principal = Depends(authorize("policy.read", "policy"))
) -> dict[str, Any]:
    changes = _changes(request.app)
    changes.store.refresh()
    active = changes.store.active_change()
    bundle = changes.store.active_bundle()
    return {
        "version": bundle.version,
        "engine": hub_of(request).settings.policy_engine,
        "change": active.summary() if active else None,
        "files": sorted(bundle.files),
        "two_person": list(bundle.hub_data.get("two_person", [])),
    }


@router.get("/v1/policy/changes", response_model=list[PolicyChange])
def list_changes(
    request: Request, _: Principal = Depends(authorize("policy.read", "policy"))
) -> list[dict[str, Any]]:
    changes = _changes(request.app)
    changes.store.refresh()
    return [c.summary() for c in changes.store.changes()]


@router.get("/v1/policy/changes/{change_id}", response_model=PolicyChange)
def get_change(
    change_id: str,
    request: Request,
    _: Principal = Depends(authorize("policy.read", "policy")),
    full: bool = Depends(sees_bundle_text),
) -> dict[str, Any]:
    changes = _changes(request.app)
    changes.store.refresh()
    change = changes.store.change(change_id)
    if not full:
        return {**change.summary(), "diff": None, "withheld": WITHHELD}
    return {**change.summary(), "diff": change.diff}


@router.post("/v1/policy/changes", status_code=201, response_model=PolicyChange)
def propose(
    body: ProposeBody,
    request: Request,
    principal: Principal = Depends(authorize_hub_wide("policy.propose", "policy")),
) -> dict[str, Any]:
    change = _changes(request.app).propose(principal, body.files, body.reason)
    return {**change.summary(), "diff": change.diff}


@router.post("/v1/policy/changes/{change_id}/approve", response_model=PolicyChange)
def approve(
    change_id: str,
    body: ApproveBody,
    request: Request,
    principal: Principal = Depends(authorize_hub_wide("policy.approve", "policy")),
) -> dict[str, Any]:
    changes = _changes(request.app)
    return changes.approve(
        principal, change_id, body.reason, expected_version=body.expected_version
    ).summary()


@router.post("/v1/policy/rollback", status_code=201, response_model=PolicyChange)
def rollback(
    body: RollbackBody,
    request: Request,
    principal: Principal = Depends(authorize_hub_wide("policy.propose", "policy")),
) -> dict[str, Any]:
    change = _changes(request.app).rollback(principal, body.version, body.reason)
    return {**change.summary(), "diff": change.diff}
