"""``hub policy show|history|diff|test|propose|approve|rollback``: policies as events.

Commands act as the principal of the hub's credential (``hub --key``/``--key-file``), or of this
command's own ``--key KEY_ID:SECRET``: the two-person rule needs two people, so the approver
passes their own key.
Every command asks the policy decision point first, as routes do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from audit.printable import printable, printable_lines
from core.errors import InvalidInput
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


def _files_from(path: Path, active: Any, target: str | None) -> dict[str, str]:
    """A folder is a whole bundle; a file replaces one file of the active bundle."""
    from core.policybundle import PolicyBundle

    if path.is_dir():
        return dict(PolicyBundle.from_dir(path).files)
    files = dict(active.files)
    if target is None:
        same = [p for p in files if p.rsplit("/", 1)[-1] == path.name]
        if len(same) != 1:
            raise InvalidInput(
                f"{path.name} matches {len(same)} files of the active bundle "
                f"({', '.join(sorted(files))}): say which with --as PATH."
            )
        target = same[0]
    files[target] = path.read_text("utf-8")
    return files


@main.group()
def policy() -> None:
    """Policies: the active bundle, its changes (events) and their tests."""


@policy.command("show")
@key_option
@click.pass_obj
def policy_show(obj: Ctx, key: str | None) -> None:
    """The active bundle's version, files and the change that activated it."""

    def go() -> None:
        with obj.hub() as h:
            authorize(h, "policy.read", "policy", principal_for(h, key))
            store = h.policy_changes.store
            bundle, change = store.active_bundle(), store.active_change()
            click.echo(
                json.dumps(
                    {
                        "version": bundle.version,
                        "engine": h.settings.policy_engine,
                        "files": sorted(bundle.files),
                        "change": change.summary() if change else "shipped",
                    },
                    indent=2,
                )
            )

    run_safely(go)


@policy.command("history")
@key_option
@click.pass_obj
def policy_history(obj: Ctx, key: str | None) -> None:
    """One line per change: id, status, version, who, why."""

    def go() -> None:
        with obj.hub() as h:
            authorize(h, "policy.read", "policy", principal_for(h, key))
            for c in h.policy_changes.store.changes():
                approvers = ",".join(a["approved_by"] for a in c.approvals) or "-"
                click.echo(  # the reason is the proposer's text: escaped (audit.printable)
                    f"{c.change_id}\t{c.kind}\t{c.status}\t{c.bundle_version[:12]}\t"
                    f"by={c.proposed_by}\tapproved_by={approvers}\t{printable(c.reason)}"
                )

    run_safely(go)


@policy.command("diff")
@click.argument("change_id")
@key_option
@click.pass_obj
def policy_diff(obj: Ctx, change_id: str, key: str | None) -> None:
    """The unified diff a change proposed."""

    def go() -> None:
        with obj.hub() as h:
            # the diff names every tenant's principals (hub.api.routers.policy.WITHHELD)
            authorize_hub_wide(h, "policy.read", "policy", principal_for(h, key))
            # the proposer's text: each line escaped (audit.printable), line breaks kept
            change = h.policy_changes.store.change(change_id)
            click.echo(printable_lines(change.diff), nl=False)
            if change.status == "pending_approval":  # what to approve: this diff, no other
                click.echo(
                    f"approve this diff: hub policy approve {change.change_id} "
                    f"--expect {change.bundle_version} --reason ...",
                    err=True,
                )

    run_safely(go)


@policy.command("test")
@click.argument("folder", type=click.Path(exists=True, file_okay=False), required=False)
@click.pass_obj
def policy_test(obj: Ctx, folder: str | None) -> None:
    """Run the policy cases on a bundle folder (default: the shipped one) with rego-cpp, each
    within HUB_POLICY_EVAL_BOUND_MS of CPU time (as a proposal is checked)."""

    def go() -> None:
        from core.policybundle import PolicyBundle
        from governance.changes import validate_bundle
        from hub.bootstrap import Hub, build_policy_timing
        from hub.settings import load_settings

        bundle = PolicyBundle.from_dir(Path(folder)) if folder else PolicyBundle.from_dir()
        bound = build_policy_timing(load_settings(obj.config))
        passed = validate_bundle(bundle, Hub.policy_evaluator, bound)
        click.echo(f"{passed} policy cases pass on bundle {bundle.version[:12]}")

    run_safely(go)


@policy.command("propose")
@click.argument("path", type=click.Path(exists=True))
@click.option("--reason", required=True, help="Why (recorded in the event).")
@click.option("--as", "target", default=None, help="Bundle path FILE replaces (default: by name).")
@key_option
@click.pass_obj
def policy_propose(obj: Ctx, path: str, reason: str, target: str | None, key: str | None) -> None:
    """Propose PATH (a bundle folder, or one file replacing its namesake in the active bundle).

    It is validated (compiles, every policy case passes) and becomes a PolicyChangeProposed
    event; it activates at once unless the two-person rule applies to policies.
    """

    def go() -> None:
        with obj.hub() as h:
            principal = principal_for(h, key)
            authorize_hub_wide(h, "policy.propose", "policy", principal)  # one bundle, all tenants
            changes = h.policy_changes
            files = _files_from(Path(path), changes.store.active_bundle(), target)
            change = changes.propose(principal, files, reason)
            echo_change(change, diff=True)
            if change.requires_approval:
                click.echo(
                    f"two-person rule: another principal must run "
                    f"`hub policy approve {change.change_id} --key ...`",
                    err=True,
                )

    run_safely(go)


@policy.command("approve")
@click.argument("change_id")
@click.option("--reason", default="", help="Why (recorded in the event).")
@click.option(
    "--expect",
    "expected_version",
    default=None,
    help="The bundle version `hub policy diff` showed: refused if the change is no longer it.",
)
@key_option
@click.pass_obj
def policy_approve(
    obj: Ctx, change_id: str, reason: str, expected_version: str | None, key: str | None
) -> None:
    """Approve (and activate) a change someone else proposed. With --expect (as `hub policy
    diff` prints it), only while the change still proposes the bundle whose diff was read."""

    def go() -> None:
        with obj.hub() as h:
            principal = principal_for(h, key)
            authorize_hub_wide(h, "policy.approve", "policy", principal)
            changes = h.policy_changes
            if expected_version is None:
                pending = changes.store.change(change_id)
                click.echo(  # the version approved, to compare with the diff read
                    f"approving bundle {pending.bundle_version} (pass --expect VERSION, as "
                    "`hub policy diff` prints it, to approve only that one)",
                    err=True,
                )
            echo_change(
                changes.approve(principal, change_id, reason, expected_version=expected_version)
            )

    run_safely(go)


@policy.command("rollback")
@click.argument("version")
@click.option("--reason", required=True, help="Why (recorded in the event).")
@key_option
@click.pass_obj
def policy_rollback(obj: Ctx, version: str, reason: str, key: str | None) -> None:
    """Propose the bundle of an earlier VERSION again (a new change event)."""

    def go() -> None:
        with obj.hub() as h:
            principal = principal_for(h, key)
            authorize_hub_wide(h, "policy.propose", "policy", principal)  # one bundle, all tenants
            change = h.policy_changes.rollback(principal, version, reason)
            echo_change(change, diff=True)

    run_safely(go)
