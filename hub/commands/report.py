"""``hub report run|list|show|verify``: signed reports (``hub.reports``).

``run`` and ``list``/``show`` ask the policy first (``report.run``, ``report.read``); ``verify``
checks a pack (report or signed export) offline: with ``--public-key`` nothing of the hub is
opened; without it, the hub's own ledger key (from the data folder) is the trusted key.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from core.ports.keyfiles import write_private
from core.ports.policy import Principal
from hub.cli import Ctx, decided, key_option, main, principal_for, run_safely


def _scope(h: Any, action: str, resource: str, principal: Principal) -> str | None:
    """The tenant the command's allowed decision limits it to (``hub.reports.reader_scope``;
    None: every tenant); ``Forbidden`` on a deny."""
    from hub.reports import reader_scope

    row_filter = decided(h, action, resource, principal).row_filter
    return reader_scope(h, principal, row_filter, {"channel": "cli"})


@main.group()
def report() -> None:
    """Signed reports: daily compliance, data quality and reconciliation, daily trading summary,
    CC6 access review (HTML + PDF)."""


@report.command("run")
@click.argument(
    "kind",
    type=click.Choice(["compliance-daily", "data-quality", "trading-daily", "access-review"]),
)
@click.option("--day", default=None, help="UTC day YYYY-MM-DD (default: yesterday).")
@click.option(
    "--days",
    type=click.IntRange(1, 366),
    default=None,
    help="access-review only: the period in days ending with --day (default 30).",
)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the zip here.")
@key_option
@click.pass_obj
def report_run(
    obj: Ctx, kind: str, day: str | None, days: int | None, out: str | None, key: str | None
) -> None:
    """Build, sign and record a report; prints its id, summary and manifest digest."""
    from hub.reports import run_report

    def go() -> None:
        with obj.hub() as h:
            who = principal_for(h, key)
            scope = _scope(h, "report.run", f"reports/{kind}", who)
            made = run_report(h, who, kind, day, days, tenant_scope=scope)
            if out:
                write_private(out, made.data)
            click.echo(
                json.dumps(
                    {
                        "report_id": made.report_id,
                        "kind": made.kind,
                        "manifest_sha256": made.manifest_sha256,
                        "checkpoint": made.manifest["checkpoint"],
                        "summary": made.manifest["summary"],
                    },
                    indent=2,
                    default=str,
                )
            )

    run_safely(go)


@report.command("list")
@key_option
@click.pass_obj
def report_list(obj: Ctx, key: str | None) -> None:
    """Every report recorded on hub.reports: id, kind, day, created, checkpoint size."""
    from hub.reports import list_reports

    def go() -> None:
        with obj.hub() as h:
            scope = _scope(h, "report.read", "reports", principal_for(h, key))
            for r in list_reports(h, scope):
                click.echo(
                    f"{r['report_id']}\t{r['kind']}\t{r['day'] or '-'}\t{r['created_at']}\t"
                    f"{r['created_by']}\tcheckpoint={r['checkpoint_size']}"
                )

    run_safely(go)


@report.command("show")
@click.argument("report_id")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the zip here.")
@key_option
@click.pass_obj
def report_show(obj: Ctx, report_id: str, out: str | None, key: str | None) -> None:
    """A report's event (summary, manifest digest); ``--out`` writes its signed pack."""
    from hub.reports import find_report

    def go() -> None:
        with obj.hub() as h:
            scope = _scope(h, "report.read", f"reports/{report_id}", principal_for(h, key))
            event, data = find_report(h, report_id, scope)
            if out:
                write_private(out, data)
            click.echo(json.dumps(event, indent=2, default=str))

    run_safely(go)


@report.command("verify")
@click.argument("pack", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--public-key",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="The hub's verifier key file (fully offline); default: this hub's ledger key.",
)
@click.pass_obj
def report_verify(obj: Ctx, pack: str, public_key: str | None) -> None:
    """Verify a signed report or export (manifest, checkpoint, digests, signature)."""
    from audit.errors import AuditError
    from audit.note import parse_verifier_key
    from audit.printable import printable
    from hub.reports import verify_pack

    def go() -> None:
        data = Path(pack).read_bytes()
        if public_key is not None:
            trusted = parse_verifier_key(Path(public_key).read_text().strip())
        else:
            with obj.hub() as h:
                trusted = parse_verifier_key(h.ledger.public_key())
        try:
            click.echo(printable(verify_pack(data, trusted)))  # a pack's names: its sender's
        except AuditError as exc:
            click.echo(f"FAILED: {printable(str(exc))}", err=True)
            sys.exit(1)

    run_safely(go)
