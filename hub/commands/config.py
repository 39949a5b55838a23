"""``hub config list|show|propose|approve|rollback``: configuration changes as events.

Resources are ``rules:<subject>`` (a subject's quality rules), ``registry.config`` (the global
compatibility level), ``registry.config:<subject>`` and ``retention:<scope>`` (the retention
policy of ``topic:<name>`` or ``projection:<name>``, e.g. ``'{"max_age_ms": 86400000}'``).
Commands act as the hub's credential (``hub --key``/``--key-file``), or this command's own
``--key KEY_ID:SECRET``: the two-person rule needs two people, so the approver passes their key.
Every command asks the policy decision point first, as routes do (``config.read``,
``config.propose`` plus the resource's own write action, ``config.approve``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from audit.printable import printable
from core.errors import InvalidInput
from core.ports.policy import Principal
from core.yamlkeys import load_unique
from hub.cli import (
    Ctx,
    authorize,
    authorize_hub_wide,
    echo_change,
    key_option,
    main,
    principal_for,
    run_safely,
)


def _value(value: str | None, file: str | None, unset: bool) -> Any:
    """The proposed value: VALUE (YAML/JSON text, or a bare level), --file, or --unset."""
    given = [v for v in (value is not None, file is not None, unset) if v]
    if len(given) != 1:
        raise InvalidInput(
            "Give exactly one of VALUE (e.g. FULL, or '{\"max_age_ms\": 86400000}'), --file PATH "
            "(a rule set in YAML or JSON) or --unset (back to the default)."
        )
    if unset:
        return None
    text = Path(file).read_text("utf-8") if file is not None else str(value)
    return load_unique(text, "The value")


@main.group()
def config() -> None:
    """Configuration (quality rules, registry compatibility, retention): changes as events."""


def _hold_in_scope(h: Any, resource: str, principal: Any) -> None:
    """A legal hold's release: the hold's tenant's principals only (``tenant.all``: any), as on
    ``hub legal-hold release``; another tenant's hold is NotFound as a missing one."""
    from governance.configchanges import LEGALHOLD_PREFIX
    from hub.reports import reader_scope

    if resource.startswith(LEGALHOLD_PREFIX):
        scope = reader_scope(h, principal, {}, {}, "legal-holds")
        h.config_changes.check_hold_scope(resource, scope)


def _subjects_shown(h: Any, principal: Principal) -> Callable[[str], bool]:
    """``hub.registry_scope.config_visible`` for a command, as the API decides it."""
    from hub.registry_scope import config_visible

    def decide(action: str, tenant: str) -> bool:
        context = {"channel": "cli", "tenant": tenant}
        return bool(h.policy.decide(principal, "config.read", "config", context).allow)

    return config_visible(h.registry, h.log, principal, h.ingest.rules.shipped(), decide)


@config.command("list")
@click.option("--resource", default=None, help="Only changes of this resource.")
@click.option("--pending", is_flag=True, help="Only changes waiting for approval.")
@key_option
@click.pass_obj
def config_list(obj: Ctx, resource: str | None, pending: bool, key: str | None) -> None:
    """One line per change: id, resource, kind, status, who, approvers, why."""

    def go() -> None:
        with obj.hub() as h:
            from hub.reports import reader_scope

            who = principal_for(h, key)
            authorize(h, "config.read", resource or "config", who)
            scope = reader_scope(h, who, {}, {}, "legal-holds")  # another tenant's releases
            shown = _subjects_shown(h, who)  # and another tenant's subjects' rules
            for c in h.config_changes.store.changes(resource):
                if pending and c.status != "pending_approval":
                    continue
                if not (h.config_changes.visible(c, scope) and shown(c.resource)):
                    continue
                approvers = ",".join(a["approved_by"] for a in c.approvals) or "-"
                click.echo(  # the reason is the proposer's text: escaped (audit.printable)
                    f"{c.change_id}\t{c.resource}\t{c.kind}\t{c.status}\t"
                    f"by={c.proposed_by}\tapproved_by={approvers}\t{printable(c.reason)}"
                )

    run_safely(go)


@config.command("show")
@click.argument("target")
@key_option
@click.pass_obj
def config_show(obj: Ctx, target: str, key: str | None) -> None:
    """A change (TARGET is its id, with its diff) or a resource's value in force."""

    def go() -> None:
        from governance.configchanges import LEGALHOLD_PREFIX
        from governance.configstore import ConfigChangeNotFound

        with obj.hub() as h:
            from hub.reports import reader_scope

            who = principal_for(h, key)
            authorize(h, "config.read", target, who)
            changes = h.config_changes
            scope = reader_scope(h, who, {}, {}, "legal-holds")
            shown = _subjects_shown(h, who)
            try:
                change = changes.store.change(target)
                if not (changes.visible(change, scope) and shown(change.resource)):
                    raise ConfigChangeNotFound(f"No configuration change {target!r}.")
                echo_change(change, diff=True)
            except ConfigChangeNotFound:
                # another tenant's hold answers as a missing one, as GET /v1/config/values does
                if target.startswith(LEGALHOLD_PREFIX):
                    changes.check_hold_scope(target, scope)
                value = changes.value(target)
                if not shown(target):  # another tenant's subject: as one never configured
                    value = {**value, "value": None}
                click.echo(json.dumps(value, indent=2))

    run_safely(go)


@config.command("propose")
@click.argument("resource")
@click.argument("value", required=False)
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option(
    "--unset", is_flag=True, help="Back to the default (shipped rules, global level, no policy)."
)
@click.option("--reason", required=True, help="Why (recorded in the event).")
@key_option
@click.pass_obj
def config_propose(
    obj: Ctx,
    resource: str,
    value: str | None,
    file: str | None,
    unset: bool,
    reason: str,
    key: str | None,
) -> None:
    """Propose a new value for RESOURCE: VALUE, or --file, or --unset.

    VALUE is YAML or JSON: a level (FULL), a retention policy ('{"max_age_ms": 86400000}').

    It is validated and becomes a ConfigChangeProposed event; it applies at once unless the
    two-person rule (data.hub.two_person of the active policy) names the resource.
    """

    def go() -> None:
        from governance.configchanges import hub_wide, write_action

        with obj.hub() as h:
            principal = principal_for(h, key)
            authorize(h, "config.propose", resource, principal)
            if hub_wide(resource):  # a retention policy: every tenant's records
                authorize_hub_wide(h, write_action(resource), resource, principal)
            else:
                authorize(h, write_action(resource), resource, principal)
            _hold_in_scope(h, resource, principal)
            change = h.config_changes.propose(
                principal, resource, _value(value, file, unset), reason
            )
            echo_change(change, diff=True)
            if change.requires_approval:
                click.echo(
                    f"two-person rule: another principal must run "
                    f"`hub config approve {change.change_id} --key ...`",
                    err=True,
                )

    run_safely(go)


@config.command("approve")
@click.argument("change_id")
@click.option("--reason", default="", help="Why (recorded in the event).")
@click.option(
    "--expect",
    "expected",
    default=None,
    help="The new value you read, as JSON: refused if the change no longer sets it.",
)
@key_option
@click.pass_obj
def config_approve(
    obj: Ctx, change_id: str, reason: str, expected: str | None, key: str | None
) -> None:
    """Approve (and apply) a change someone else proposed (with --expect, only while it sets
    the value you read)."""

    def go() -> None:
        from governance.configchanges import (
            LEGALHOLD_PREFIX,
            NOT_GIVEN,
            hub_wide,
            write_action,
        )

        with obj.hub() as h:
            principal = principal_for(h, key)
            changes = h.config_changes
            resource = changes.store.change(change_id).resource
            authorize(h, "config.approve", resource, principal)
            if hub_wide(resource):  # approved as the hub's own tenant's, as proposed
                authorize_hub_wide(h, "config.approve", resource, principal)
            if resource.startswith(LEGALHOLD_PREFIX):  # one who may release that hold
                authorize(h, write_action(resource), resource, principal)
                _hold_in_scope(h, resource, principal)
            wanted: Any = NOT_GIVEN
            if expected is not None:
                try:
                    wanted = json.loads(expected)
                except ValueError as exc:
                    raise InvalidInput(f"--expect is not JSON: {exc}.") from exc
            echo_change(changes.approve(principal, change_id, reason, expected_new_value=wanted))

    run_safely(go)


@config.command("rollback")
@click.argument("resource")
@click.argument("change_id")
@click.option("--undo", is_flag=True, help="Restore the value CHANGE_ID replaced instead.")
@click.option("--reason", required=True, help="Why (recorded in the event).")
@key_option
@click.pass_obj
def config_rollback(
    obj: Ctx, resource: str, change_id: str, undo: bool, reason: str, key: str | None
) -> None:
    """Propose again the value CHANGE_ID applied to RESOURCE (a new change event)."""

    def go() -> None:
        from governance.configchanges import hub_wide, write_action

        with obj.hub() as h:
            principal = principal_for(h, key)
            authorize(h, "config.propose", resource, principal)
            if hub_wide(resource):  # a retention policy: every tenant's records
                authorize_hub_wide(h, write_action(resource), resource, principal)
            else:
                authorize(h, write_action(resource), resource, principal)
            _hold_in_scope(h, resource, principal)
            change = h.config_changes.rollback(principal, resource, change_id, reason, undo=undo)
            echo_change(change, diff=True)

    run_safely(go)
