"""``hub erase SUBJECT --reason ...``: crypto-shred a data subject (``governance.erasure``).

Needs ``subject.erase``. Works on the data folder directly (embedded footprint); while
``hub serve`` runs, call its ``POST /v1/erasures`` instead, so the serving process rebuilds its
own projections.
"""

from __future__ import annotations

import json

import click

from hub.cli import Ctx, authorize, main, run_safely


@main.command("erase")
@click.argument("subject")
@click.option("--reason", required=True, help="Why (e.g. the data subject's request id).")
@click.pass_obj
def erase_subject(obj: Ctx, subject: str, reason: str) -> None:
    """Destroy SUBJECT's key: its PII becomes unreadable in the log, views and quarantine."""

    def go() -> None:
        with obj.hub() as h:
            principal = authorize(h, "subject.erase", f"subject:{subject}")
            from hub.reports import reader_scope

            scope = reader_scope(h, principal, {}, {"channel": "cli"}, f"subject:{subject}")
            done = h.eraser.erase(principal, subject, reason, tenant_scope=scope)
            from hub.recovery import journal_erasure

            # so that no restored backup brings it back
            warning = journal_erasure(h.settings, done, h.ledger.signer)
            if warning:
                click.echo(warning, err=True)
            click.echo(json.dumps(done.as_dict(), indent=2))

    run_safely(go)
