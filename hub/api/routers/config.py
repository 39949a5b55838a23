"""Configuration change routes: quality rules, registry compatibility and retention policies as
governed changes.

``config.read`` lists changes and shows values; ``config.propose`` (plus the resource's own write
action: ``rules.write``, ``registry.config`` or ``retention.write``, so this path never grants
more than the direct one) proposes and rolls back; ``config.approve`` approves. See
``governance.configchanges``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from core.errors import Forbidden
from core.ports.policy import HUB_TENANT, Principal
from governance.configchanges import (
    LEGALHOLD_PREFIX,
    NOT_GIVEN,
    ConfigChanges,
    hub_wide,
    write_action,
)
from governance.configstore import ConfigChangeNotFound
from hub.api.deps import authorize, decision_context, hub_of
from hub.api.models import ConfigChange, ConfigValue

router = APIRouter(tags=["config"])


def changes_of(request: Request) -> ConfigChanges:
    """The hub's configuration change service."""
    return hub_of(request).config_changes


def _may_write(request: Request, principal: Principal, resource: str) -> None:
    """The resource's own write action, asked of the policy engine like ``authorize`` does.

    The compatibility level of an internal subject is not a client's to change (403
    ``internal_subject``, as on ``PUT /config/{subject}``)."""
    from registry.internal import is_internal_subject

    kind, _, subject = resource.partition(":")
    if kind == "registry.config" and subject and is_internal_subject(subject):
        raise Forbidden(
            f"Subject {subject!r} belongs to an internal topic of the hub: changing its "
            "compatibility level is refused for every role.",
            code="internal_subject",
        )
    _decide(request, principal, write_action(resource), resource)
    if resource.startswith(LEGALHOLD_PREFIX):  # its tenant's holds only (as on /v1/legal-holds)
        changes_of(request).check_hold_scope(resource, _holds_scope(request, principal))


def _holds_scope(request: Request, principal: Principal) -> str | None:
    """The tenant whose legal holds (and their releases) the principal sees; None: all."""
    from hub.reports import reader_scope

    return reader_scope(hub_of(request), principal, {}, decision_context(request), "legal-holds")


def _decide(request: Request, principal: Principal, action: str, resource: str) -> None:
    """``action`` on ``resource``, asked of the policy engine; a hub-wide resource's as the
    hub's own tenant's (another tenant's key needs ``tenant.all``)."""
    context: dict[str, Any] = {"method": request.method}
    if hub_wide(resource):  # a retention policy deletes every tenant's records
        context["tenant"] = HUB_TENANT
    decision = hub_of(request).policy.decide(principal, action, resource, context)
    if not decision.allow:
        raise Forbidden(f"Access denied: {decision.reason} (policy {decision.policy_version}).")


class ProposeBody(BaseModel):
    resource: str = Field(min_length=1, examples=["registry.config:trades-value"])
    value: Any = Field(description="The new value; null restores the default.")
    reason: str = Field(min_length=1)


class ApproveBody(BaseModel):
    reason: str = ""
    expected_new_value: Any = Field(
        None,
        description="The new value the approver was shown (GET /v1/config/changes/{id}); when "
        "given (null included), refused (409 change_not_as_shown) unless the change still sets it.",
    )


class RollbackBody(BaseModel):
    resource: str = Field(min_length=1)
    to_change_id: str = Field(min_length=1, description="Restore the value this change applied.")
    undo: bool = Field(False, description="Restore the value the change replaced instead.")
    reason: str = Field(min_length=1)


@router.get("/v1/config/changes", response_model=list[ConfigChange])
def list_changes(
    request: Request,
    resource: str | None = None,
    who: Principal = Depends(authorize("config.read", "config")),
) -> list[dict[str, Any]]:
    changes = changes_of(request)
    changes.store.refresh()
    scope = _holds_scope(request, who)
    shown = _subjects_shown(request, who)
    return [
        c.summary()
        for c in changes.store.changes(resource)
        if changes.visible(c, scope) and shown(c.resource)
    ]


@router.get("/v1/config/changes/{change_id}", response_model=ConfigChange)
def get_change(
    change_id: str,
    request: Request,
    who: Principal = Depends(authorize("config.read", "config")),
) -> dict[str, Any]:
    changes = changes_of(request)
    changes.store.refresh()
    change = changes.store.change(change_id)
    visible = changes.visible(change, _holds_scope(request, who))
    if not (visible and _subjects_shown(request, who)(change.resource)):
        raise ConfigChangeNotFound(
            f"No configuration change {change_id!r}: `hub config list` lists them."
        )
    return {**change.summary(), "diff": change.diff}


@router.get("/v1/config/values/{resource}", response_model=ConfigValue)
def get_value(
    resource: str,
    request: Request,
    who: Principal = Depends(authorize("config.read", "config")),
) -> dict[str, Any]:
    """A resource's value in force; another tenant's legal hold answers as a missing one (404),
    as its changes and its release do: its value ("held") told the reader it exists."""
    if resource.startswith(LEGALHOLD_PREFIX):
        changes_of(request).check_hold_scope(resource, _holds_scope(request, who))
    value = changes_of(request).value(resource)
    if not _subjects_shown(request, who)(resource):  # as for a subject never configured
        value = {**value, "value": None}
    return value


def _subjects_shown(request: Request, principal: Principal) -> Callable[[str], bool]:
    """``hub.registry_scope.config_visible`` for this request: the rules or compatibility
    level of another tenant's subject answer as a missing subject's (the registry's 404)."""
    from hub.registry_scope import config_visible

    hub = hub_of(request)
    context = decision_context(request)

    def decide(action: str, tenant: str) -> bool:
        decision = hub.policy.decide(
            principal, "config.read", "config", {**context, "tenant": tenant}
        )
        return bool(decision.allow)

    return config_visible(hub.registry, hub.log, principal, hub.ingest.rules.shipped(), decide)


@router.post("/v1/config/changes", status_code=201, response_model=ConfigChange)
def propose(
    body: ProposeBody,
    request: Request,
    principal: Principal = Depends(authorize("config.propose", "config")),
) -> dict[str, Any]:
    _may_write(request, principal, body.resource)
    change = changes_of(request).propose(principal, body.resource, body.value, body.reason)
    return {**change.summary(), "diff": change.diff}


@router.post("/v1/config/changes/{change_id}/approve", response_model=ConfigChange)
def approve(
    change_id: str,
    body: ApproveBody,
    request: Request,
    principal: Principal = Depends(authorize("config.approve", "config")),
) -> dict[str, Any]:
    """A hub-wide resource's change is approved as the hub's own tenant's; a legal hold's
    release by one who may release that hold (``legalhold.write``, its tenant)."""
    changes = changes_of(request)
    changes.store.refresh()
    resource = changes.store.change(change_id).resource
    if hub_wide(resource):
        _decide(request, principal, "config.approve", resource)
    if resource.startswith(LEGALHOLD_PREFIX):
        _may_write(request, principal, resource)
    expected = (
        body.expected_new_value
        if "expected_new_value" in body.model_fields_set
        else NOT_GIVEN  # not named: approved as it stands (as before)
    )
    return changes.approve(principal, change_id, body.reason, expected_new_value=expected).summary()


@router.post("/v1/config/rollback", status_code=201, response_model=ConfigChange)
def rollback(
    body: RollbackBody,
    request: Request,
    principal: Principal = Depends(authorize("config.propose", "config")),
) -> dict[str, Any]:
    _may_write(request, principal, body.resource)
    change = changes_of(request).rollback(
        principal, body.resource, body.to_change_id, body.reason, undo=body.undo
    )
    return {**change.summary(), "diff": change.diff}
