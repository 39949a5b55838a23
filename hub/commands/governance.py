"""``hub catalog``, ``hub lineage``, ``hub retention ...`` and ``hub legal-hold ...``.

Actions are checked with the PolicyEngine like routes: ``catalog.read`` for the catalog, lineage
and listings, ``retention.write`` for policies and runs, ``legalhold.write`` for holds. Setting a
policy is a configuration change (``governance.configchanges``, resource ``retention:<scope>``);
placing a hold is not; releasing one is a change of ``legalhold:<hold_id>`` that another person
approves (``hub config approve``).
Exit codes: 0 success, 1 a hub error.
"""

from __future__ import annotations

import json
from typing import Any

import click

from hub.cli import Ctx, authorize, authorize_hub_wide, main, run_safely


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


@main.command("catalog")
@click.option("--kind", type=click.Choice(["topic", "projection", "export"]), default=None)
@click.pass_obj
def catalog_cmd(obj: Ctx, kind: str | None) -> None:
    """Datasets (topics, projections, exports): owner, schemas, classification, retention."""

    def go() -> None:
        with obj.hub() as h:
            authorize(h, "catalog.read", "catalog")
            _echo_json([d.as_dict() for d in h.catalog.datasets() if kind in (None, d.kind)])

    run_safely(go)


@main.group("lineage", invoke_without_command=True)
@click.pass_context
def lineage_cmd(ctx: click.Context) -> None:
    """The lineage graph (datasets and jobs); ``hub lineage events`` lists run events."""
    if ctx.invoked_subcommand is None:
        obj: Ctx = ctx.obj

        def go() -> None:
            with obj.hub() as h:
                who = authorize(h, "catalog.read", "lineage")
                _echo_json(h.lineage.graph(_lineage_scope(h, who)))

        run_safely(go)


@lineage_cmd.command("events")
@click.option("--job", default=None)
@click.option("--limit", type=int, default=100, show_default=True)
@click.pass_obj
def lineage_events(obj: Ctx, job: str | None, limit: int) -> None:
    """OpenLineage run events (indexed fields and the full event JSON)."""

    def go() -> None:
        with obj.hub() as h:
            who = authorize(h, "catalog.read", "lineage")
            _echo_json(h.lineage.events(job, limit, _lineage_scope(h, who)))

    run_safely(go)


def _lineage_scope(h: Any, who: Any) -> str | None:
    """The tenant a lineage reader is limited to (its own unless allowed ``tenant.all``)."""
    from hub.reports import reader_scope

    return reader_scope(h, who, {}, {}, "lineage")


def _holds_scope(h: Any, who: Any) -> str | None:
    """The tenant whose legal holds ``who`` lists and releases (``tenant.all``: None, all)."""
    from hub.reports import reader_scope

    return reader_scope(h, who, {}, {}, "legal-holds")


@main.group("retention")
def retention() -> None:
    """Retention policies per topic or projection, and the job that enforces them."""


@retention.command("set")
@click.argument("scope")
@click.option("--max-age-ms", type=int, default=None)
@click.option("--max-records", type=int, default=None)
@click.option(
    "--time-column",
    default=None,
    help="Projections: the timestamp column whose age the cut uses (e.g. at, window_start).",
)
@click.option("--reason", default="")
@click.pass_obj
def retention_set(
    obj: Ctx,
    scope: str,
    max_age_ms: int | None,
    max_records: int | None,
    time_column: str | None,
    reason: str,
) -> None:
    """Set SCOPE's policy (topic:<name> or projection:<name>); no limits clears it.

    A configuration change of ``retention:SCOPE`` (recorded as change events); refused when the
    two-person rule names it: then use ``hub config propose retention:SCOPE VALUE``.
    """

    def go() -> None:
        with obj.hub() as h:
            principal = authorize(h, "retention.write", scope)
            authorize_hub_wide(h, "retention.write", scope, principal)  # every tenant's records
            policy = h.config_changes.set_retention(
                principal,
                scope,
                max_age_ms=max_age_ms,
                max_records=max_records,
                time_column=time_column,
                reason=reason,
            )
            _echo_json(policy.as_dict())

    run_safely(go)


@retention.command("list")
@click.pass_obj
def retention_list(obj: Ctx) -> None:
    """The retention policies in force."""

    def go() -> None:
        with obj.hub() as h:
            authorize(h, "catalog.read", "retention")
            _echo_json([p.as_dict() for _, p in sorted(h.governance.policies().items())])

    run_safely(go)


@retention.command("run")
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; delete nothing.")
@click.pass_obj
def retention_run(obj: Ctx, dry_run: bool) -> None:
    """Delete what the policies expire now (legal holds respected); records it on the ledger."""

    def go() -> None:
        with obj.hub() as h:
            principal = authorize(h, "retention.write", "retention")
            authorize_hub_wide(h, "retention.write", "retention", principal)  # every tenant's
            report = h.retention.plan() if dry_run else h.retention.run(actor=principal.id)
            if not dry_run:
                h.ledger.sync(force_checkpoint=True)
            _echo_json(report.as_dict())

    run_safely(go)


@main.group("legal-hold")
def legal_hold() -> None:
    """Legal holds: block deletion and erasure for a topic, projection or data subject."""


@legal_hold.command("place")
@click.argument("scope")
@click.option("--matter", default="")
@click.option("--reason", default="")
@click.pass_obj
def hold_place(obj: Ctx, scope: str, matter: str, reason: str) -> None:
    """Place a hold on SCOPE (topic:<name>, projection:<name> or subject:<id>)."""

    def go() -> None:
        with obj.hub() as h:
            principal = authorize(h, "legalhold.write", scope)
            hold = h.governance.place_hold(
                scope, actor=principal.id, matter=matter, reason=reason, tenant=principal.tenant
            )
            _echo_json(hold.as_dict())

    run_safely(go)


@legal_hold.command("release")
@click.argument("hold_id")
@click.option("--reason", default="")
@click.pass_obj
def hold_release(obj: Ctx, hold_id: str, reason: str) -> None:
    """Propose the release of the hold HOLD_ID: it stays in force until another person runs
    `hub config approve CHANGE_ID` (two-person rule, always)."""

    def go() -> None:
        from governance.configchanges import legalhold_resource

        with obj.hub() as h:
            principal = authorize(h, "legalhold.write", hold_id)
            resource = legalhold_resource(hold_id)
            # its tenant's holds only (as over HTTP)
            h.config_changes.check_hold_scope(resource, _holds_scope(h, principal))
            hold = h.governance.state().holds.get(hold_id)
            why = reason.strip() or f"release legal hold {hold_id}"
            change = h.config_changes.propose(principal, resource, None, why)
            assert hold is not None  # propose refused a hold that is not active
            _echo_json({"hold": hold.as_dict(), "change": change.summary()})
            click.echo(
                f"two-person rule: another principal must run "
                f"`hub config approve {change.change_id} --key ...`",
                err=True,
            )

    run_safely(go)


@legal_hold.command("list")
@click.pass_obj
def hold_list(obj: Ctx) -> None:
    """The active holds."""

    def go() -> None:
        with obj.hub() as h:
            who = authorize(h, "catalog.read", "legal-hold")
            _echo_json([h2.as_dict() for h2 in h.governance.holds(_holds_scope(h, who))])

    run_safely(go)
