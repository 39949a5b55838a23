"""``hub quarantine list|show|replay`` and ``hub rules show|set|list``."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml

from audit.printable import printable
from core.errors import ConfigError, Forbidden
from core.ports.policy import Principal
from core.yamlkeys import load_unique
from domain.quality import RuleSet
from hub.cli import Ctx, authorize, authorize_hub_wide, current_principal, decided, main, run_safely


@main.group()
def quarantine() -> None:
    """Records rejected at ingest, with their reason and original bytes."""


@quarantine.command("list")
@click.option("--offset", type=int, default=0)
@click.option("--limit", type=int, default=50)
@click.option("--topic", default=None, help="Only records meant for this topic.")
@click.option(
    "--status",
    type=click.Choice(["all", "pending", "replayed", "requarantined"]),
    default="all",
    help="Only entries with this replay status.",
)
@click.pass_obj
def quarantine_list(obj: Ctx, offset: int, limit: int, topic: str | None, status: str) -> None:
    """One line per quarantined record: offset, topic, source, rule or reason code, attempt,
    replay status (pending, replayed, requarantined), the subject a sealed original is sealed
    for (``sealed_for=``; ``unattributed:<id>`` when the record named none: the name to pass to
    ``hub erase``), reason."""
    from ingest.quarantine import entries

    def go() -> None:
        with obj.hub() as h:
            scope = _tenant_scope(h, "quarantine")
            found = entries(
                h.ingest, offset, 10**9 if status != "all" else limit, topic, tenant_scope=scope
            )
            chosen = [e for e in found if status in ("all", e["status"])][:limit]
            for e in chosen:
                click.echo(  # a reason may quote the sender's record: escaped (audit.printable)
                    f"{e['offset']}\t{e['topic']}\t{printable(str(e['source']))}\t"
                    f"{e['rule_id'] or e['reason_code']}\tattempt={e['attempt']}\t"
                    f"status={e['status']}\t{sealed(e)}{printable(str(e['reason']))}"
                )

    run_safely(go)


def sealed(entry: dict[str, Any]) -> str:
    """The list column naming whom an entry's original is sealed for (and whether erased)."""
    if "sealed_for" not in entry:
        return ""
    erased = " (erased)" if entry["erased"] else ""
    return f"sealed_for={entry['sealed_for']}{erased}\t"


def _tenant_scope(h: Any, resource: str) -> str | None:
    """The tenant the command's ``quarantine.read`` decision limits it to (None: every tenant);
    raises ``Forbidden`` on a deny."""
    from ledger.service import tenant_scope_of

    return tenant_scope_of(decided(h, "quarantine.read", resource, current_principal(h)).row_filter)


@quarantine.command("show")
@click.argument("offset", type=int)
@click.pass_obj
def quarantine_show(obj: Ctx, offset: int) -> None:
    """A quarantined record as JSON, its original bytes as text when UTF-8, else base64."""
    from core.avro import serde
    from ingest.quarantine import decode_entry
    from ledger.service import tenant_scope_of

    def go() -> None:
        with obj.hub() as h:
            decision = decided(h, "quarantine.read", f"quarantine/{offset}", current_principal(h))
            scope = tenant_scope_of(decision.row_filter)
            masked = "pii" in decision.mask  # a sealed original stays sealed, as over HTTP
            e = decode_entry(h.ingest, offset, unseal=not masked, tenant_scope=scope)
            original: bytes = e.pop("original")
            out = serde.to_json(e)
            try:
                out["original_text"] = original.decode("utf-8")
            except UnicodeDecodeError:
                out["original_base64"] = base64.b64encode(original).decode()
            click.echo(json.dumps(out, indent=2))

    run_safely(go)


@quarantine.command("replay")
@click.argument("offsets", type=int, nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Replay every pending quarantined record.")
@click.option("--topic", default=None, help="With --all: only records for this topic.")
@click.pass_obj
def quarantine_replay(
    obj: Ctx, offsets: tuple[int, ...], replay_all: bool, topic: str | None
) -> None:
    """Re-ingest quarantined records (after fixing rules or schemas)."""
    from ingest.quarantine import entries, replay

    def go() -> None:
        with obj.hub() as h:
            principal = authorize(h, "quarantine.replay", "quarantine")
            chosen = list(offsets)
            if replay_all:
                pending = [
                    e for e in entries(h.ingest, 0, 10**9, topic) if e["status"] == "pending"
                ]
                # an erased entry can never be replayed (its original is shredded): one must not
                # make every other pending entry unreplayable by --all
                chosen = [e["offset"] for e in pending if not e["erased"]]
                if len(chosen) < len(pending):
                    click.echo(
                        f"skipped {len(pending) - len(chosen)} entries whose original was erased "
                        "with its data subject: they cannot be replayed",
                        err=True,
                    )
            if not chosen:
                raise ConfigError("Name offsets to replay, or pass --all.")

            def allow_tenant(tenant: str) -> None:
                # a replay publishes in the record's tenant's name (as the API route decides)
                if tenant != principal.tenant:
                    context = {"channel": "cli", "tenant": tenant}
                    action = "quarantine.replay"
                    decision = h.policy.decide(principal, action, "quarantine", context)
                    if not decision.allow:
                        raise Forbidden(f"Access denied: {decision.reason}.")

            for t, r in replay(h.ingest, chosen, principal.id, allow_tenant).items():
                click.echo(
                    f"{t}: accepted={r.accepted} rejected={r.rejected} duplicates={r.duplicates}"
                )

    run_safely(go)


@main.group()
def rules() -> None:
    """Data quality rules per subject (changes are hub.config events)."""


def _rules_visible(h: Any, principal: Principal) -> Callable[[str], bool]:
    """``hub.registry_scope.rules_visible`` for a command, as the API decides it."""
    from hub.registry_scope import rules_visible

    def decide(action: str, tenant: str) -> bool:
        context = {"channel": "cli", "tenant": tenant}
        return bool(h.policy.decide(principal, "rules.read", "rules", context).allow)

    return rules_visible(h.registry, h.log, principal, h.ingest.rules.shipped(), decide)


@rules.command("list")
@click.pass_obj
def rules_list(obj: Ctx) -> None:
    def go() -> None:
        with obj.hub() as h:
            visible = _rules_visible(h, authorize(h, "rules.read", "rules"))
            for s in h.ingest.rules.subjects():
                if not visible(s):
                    continue
                rs = h.ingest.rules.get(s)
                click.echo(f"{s}\t{len(rs.rules)} rules\t{h.ingest.rules.version(s)}")

    run_safely(go)


@rules.command("show")
@click.argument("subject")
@click.pass_obj
def rules_show(obj: Ctx, subject: str) -> None:
    """The subject's rule set as YAML."""

    def go() -> None:
        with obj.hub() as h:
            principal = authorize(h, "rules.read", f"rules/{subject}")
            shown = h.ingest.rules.get(subject)
            if not _rules_visible(h, principal)(subject):  # as a subject without rules
                shown = RuleSet(subject)
            click.echo(yaml.safe_dump(shown.as_dict(), sort_keys=False))

    run_safely(go)


@rules.command("set")
@click.argument("subject")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--reason", default="")
@click.pass_obj
def rules_set(obj: Ctx, subject: str, file: str, reason: str) -> None:
    """Replace the subject's rule set with FILE (YAML or JSON)."""

    def go() -> None:
        with obj.hub() as h:
            principal = authorize(h, "rules.write", f"rules/{subject}")
            # every tenant's records on the subject's topic (configchanges.hub_wide)
            authorize_hub_wide(h, "rules.write", f"rules/{subject}", principal)
            data = load_unique(Path(file).read_text(encoding="utf-8"), f"The rule file {file}")
            # A governed change (`hub config`): recorded and audited, refused under two-person.
            from ingest.rules import rules_resource

            h.config_changes.set_direct(principal, rules_resource(subject), data, reason)
            rs, version = h.ingest.rules.get(subject), h.ingest.rules.version(subject)
            click.echo(f"{subject}: {len(rs.rules)} rules, version {version}")

    run_safely(go)
