"""Governance routes: the dataset catalog, the lineage graph, retention policies and legal holds.

``GET /v1/catalog`` and ``GET /v1/lineage/graph`` need ``catalog.read``; setting a retention
policy and running the retention job need ``retention.write``; placing and releasing legal holds
need ``legalhold.write``. Setting a policy is a configuration change of ``retention:<scope>``
(``governance.configchanges``: recorded, refused under the two-person rule); placing a hold is
not, releasing one is a change of ``legalhold:<hold_id>`` that a second person must approve.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from core.ports.policy import Principal
from hub.api.deps import MAX_INT64, authorize, authorize_hub_wide, decision_context, hub_of
from hub.api.models import (
    Catalog,
    Hold,
    Holds,
    LineageEvents,
    LineageGraph,
    ReleaseProposed,
    RetentionPolicies,
    RetentionPolicy,
    RetentionRun,
)
from hub.api.routers.config import changes_of

router = APIRouter(tags=["governance"])


class PolicyIn(BaseModel):
    scope: str = Field(description="topic:<name> or projection:<name>")
    max_age_ms: int | None = Field(None, ge=1, le=MAX_INT64)
    max_records: int | None = Field(None, ge=1, le=MAX_INT64)
    time_column: str | None = None
    reason: str = ""


class HoldIn(BaseModel):
    scope: str = Field(description="topic:<name>, projection:<name> or subject:<id>")
    matter: str = ""
    reason: str = ""


class ReleaseIn(BaseModel):
    reason: str = ""


@router.get("/v1/catalog", response_model=Catalog)
def get_catalog(
    request: Request,
    kind: str | None = Query(None, pattern="^(topic|projection|export)$"),
    who: Principal = Depends(authorize("catalog.read")),
) -> dict[str, Any]:
    """Every dataset; a tenant-limited reader sees its own tenant's legal holds and exports
    only (``Catalog.datasets``)."""
    scope = lineage_scope(request, who)
    catalog = hub_of(request).catalog
    datasets = [d.as_dict() for d in catalog.datasets(scope) if kind in (None, d.kind)]
    return {"datasets": datasets}


def lineage_scope(request: Request, principal: Principal) -> str | None:
    """The tenant a lineage reader is limited to (``hub.reports.reader_scope`` on resource
    ``lineage``: its own unless the policy allows it ``tenant.all``); None for every tenant."""
    from hub.reports import reader_scope

    row_filter = request.state.decision.row_filter
    ctx = decision_context(request)
    return reader_scope(hub_of(request), principal, row_filter, ctx, "lineage")


@router.get("/v1/lineage/graph", response_model=LineageGraph)
def get_lineage_graph(
    request: Request, who: Principal = Depends(authorize("catalog.read"))
) -> dict[str, Any]:
    """Every job and dataset edge; a tenant-limited reader gets last runs and exported files
    of its own tenant's runs only (``core.lineage.LineageLog``)."""
    return hub_of(request).lineage.graph(lineage_scope(request, who))


@router.get("/v1/lineage/events", response_model=LineageEvents)
def get_lineage_events(
    request: Request,
    job: str | None = None,
    limit: int = Query(100, ge=1, le=10_000),
    who: Principal = Depends(authorize("catalog.read")),
) -> dict[str, Any]:
    """Run events, newest ``limit``; a tenant-limited reader gets its own tenant's only."""
    scope = lineage_scope(request, who)
    return {"events": hub_of(request).lineage.events(job, limit, scope)}


@router.get("/v1/retention/policies", response_model=RetentionPolicies)
def list_policies(
    request: Request, _: Principal = Depends(authorize("catalog.read"))
) -> dict[str, Any]:
    policies = hub_of(request).governance.policies()
    return {"policies": [p.as_dict() for _, p in sorted(policies.items())]}


@router.post("/v1/retention/policies", response_model=RetentionPolicy)
def set_policy(
    body: PolicyIn,
    request: Request,
    who: Principal = Depends(authorize_hub_wide("retention.write", "retention")),
) -> dict[str, Any]:
    """A configuration change of ``retention:<scope>``: 403 ``two_person_required`` when the
    two-person rule names it (then ``POST /v1/config/changes``). A policy deletes every
    tenant's records of its scope: decided as the hub's own tenant's, so another tenant's key
    needs ``tenant.all`` too (``governance.configchanges.hub_wide``)."""
    policy = changes_of(request).set_retention(
        who,
        body.scope,
        max_age_ms=body.max_age_ms,
        max_records=body.max_records,
        time_column=body.time_column,
        reason=body.reason,
    )
    return policy.as_dict()


@router.post("/v1/retention/run", response_model=RetentionRun)
def run_retention(
    request: Request,
    dry_run: bool = False,
    who: Principal = Depends(authorize_hub_wide("retention.write", "retention")),
) -> dict[str, Any]:
    """Run (or plan) the retention job: it deletes every tenant's expired records, so
    ``retention.write`` is decided as the hub's own tenant's (another tenant's key needs
    ``tenant.all``)."""
    job = hub_of(request).retention
    return (job.plan() if dry_run else job.run(actor=who.id)).as_dict()


def holds_scope(request: Request, principal: Principal) -> str | None:
    """The tenant whose legal holds this principal lists and releases (``hub.reports.
    reader_scope`` on resource ``legal-holds``: its own unless allowed ``tenant.all``). A hold's
    matter and reason name an investigation, its subject scope a tenant's customer."""
    from hub.reports import reader_scope

    ctx = decision_context(request)
    return reader_scope(hub_of(request), principal, {}, ctx, "legal-holds")


@router.get("/v1/legal-holds", response_model=Holds)
def list_holds(
    request: Request, who: Principal = Depends(authorize("catalog.read"))
) -> dict[str, Any]:
    """Active holds: a tenant-limited reader's own tenant's only."""
    holds = hub_of(request).governance.holds(holds_scope(request, who))
    return {"holds": [h.as_dict() for h in holds]}


@router.post("/v1/legal-holds", status_code=201, response_model=Hold)
def place_hold(
    body: HoldIn, request: Request, who: Principal = Depends(authorize("legalhold.write"))
) -> dict[str, Any]:
    hold = hub_of(request).governance.place_hold(
        body.scope, actor=who.id, matter=body.matter, reason=body.reason, tenant=who.tenant
    )
    return hold.as_dict()


@router.post("/v1/legal-holds/{hold_id}/release", status_code=202, response_model=ReleaseProposed)
def release_hold(
    hold_id: str,
    body: ReleaseIn,
    request: Request,
    who: Principal = Depends(authorize("legalhold.write")),
) -> dict[str, Any]:
    """Propose the release of a hold of this principal's tenant (any tenant's with
    ``tenant.all``; another tenant's answers 404 as a missing one). The hold stays in force
    until ANOTHER person approves the change (``POST /v1/config/changes/{change_id}/approve``):
    a compliance officer also erases subjects and sets retention, so one person alone must not
    lift a hold (``governance.configchanges``, resource ``legalhold:<hold_id>``)."""
    from governance.configchanges import legalhold_resource

    hub = hub_of(request)
    changes = changes_of(request)
    resource = legalhold_resource(hold_id)
    changes.check_hold_scope(resource, holds_scope(request, who))
    hold = hub.governance.state().holds.get(hold_id)
    reason = body.reason.strip() or f"release legal hold {hold_id}"
    change = changes.propose(who, resource, None, reason)
    assert hold is not None  # propose refused a hold that is not active (hold_not_found)
    return {"hold": hold.as_dict(), "change": {**change.summary(), "diff": change.diff}}
