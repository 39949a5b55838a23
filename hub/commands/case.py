"""``hub case open|close|list``: investigation cases (purpose of use, ``governance.cases``).

Commands act as the principal of ``--key KEY_ID:SECRET`` (``HUB_API_KEY``, or the hub's
``--key-file``); each asks the policy first (``case.open``, ``case.close``, ``case.read``);
another tenant's case is left out, or answered as a missing one
(``governance.cases.decide_on_case``).
"""

from __future__ import annotations

import json

import click

from core.errors import Forbidden
from governance.cases import CaseNotFound, cases_within, decide_on_case
from hub.cli import Ctx, authorize, key_option, main, principal_for, run_safely

CLI = {"channel": "cli"}


@main.group()
def case() -> None:
    """Investigation cases: while one is open, its investigators read PII in plaintext."""


@case.command("open")
@click.option("--reason", required=True, help="The matter or request the case serves.")
@click.option("--subject", "subjects", multiple=True, help="A data subject in scope (repeat).")
@click.option(
    "--investigator",
    "investigators",
    multiple=True,
    help="A principal id that may read under the case (repeat; default: you).",
)
@click.option("--expires-in", default=None, help="e.g. 90m, 12h, 7d (default 7d).")
@key_option
@click.pass_obj
def case_open(
    obj: Ctx,
    reason: str,
    subjects: tuple[str, ...],
    investigators: tuple[str, ...],
    expires_in: str | None,
    key: str | None,
) -> None:
    """Open a case; prints it (its case_id goes in X-Hub-Case)."""

    def go() -> None:
        with obj.hub() as h:
            who = principal_for(h, key)
            authorize(h, "case.open", "cases", who)
            opened = h.cases.open(
                reason=reason,
                actor=who.id,
                tenant=who.tenant,
                subjects=subjects,
                investigators=investigators,
                expires_in=expires_in,
            )
            click.echo(json.dumps(opened, indent=2))

    run_safely(go)


@case.command("close")
@click.argument("case_id")
@click.option("--reason", default="", help="Why it is closed.")
@key_option
@click.pass_obj
def case_close(obj: Ctx, case_id: str, reason: str, key: str | None) -> None:
    """Close CASE_ID: from now on it unmasks nothing."""

    def go() -> None:
        with obj.hub() as h:
            who = principal_for(h, key)
            authorize(h, "case.close", f"cases/{case_id}", who)
            found = h.cases.get(case_id)
            ruled = decide_on_case(h.policy, who, "case.close", found, CLI)
            if not ruled.allow:
                if found.tenant != who.tenant:
                    # As the API answers (hub.api.routers.cases.check_case): the policy's reason
                    # names the case's tenant, and a refusal would confirm the id is a real case
                    # of some tenant. The deny is recorded with its full reason all the same.
                    raise CaseNotFound(
                        f"There is no case {case_id!r}: list the cases with `hub case list`."
                    )
                raise Forbidden(f"Access denied: {ruled.reason}.")
            click.echo(json.dumps(h.cases.close(case_id, actor=who.id, reason=reason), indent=2))

    run_safely(go)


@case.command("list")
@click.option("--status", type=click.Choice(["open", "closed", "expired"]), default=None)
@key_option
@click.pass_obj
def case_list(obj: Ctx, status: str | None, key: str | None) -> None:
    """Every case with its status (open, expired, closed)."""

    def go() -> None:
        with obj.hub() as h:
            who = authorize(h, "case.read", "cases", principal_for(h, key))
            found = cases_within(h.policy, who, h.cases.list_cases(status=status), CLI)
            click.echo(json.dumps(found, indent=2))

    run_safely(go)
