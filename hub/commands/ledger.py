"""``hub ledger ...`` and ``hub evidence export``: the audit ledger on the command line.

Every command syncs the ledger first (the CLI is short-lived, so ``sync`` also signs a
checkpoint for whatever it appended: a CLI run never leaves entries unproven). Actions are
checked with the PolicyEngine like routes: ``ledger.read`` for queries and proofs,
``ledger.verify`` for ``verify``, ``evidence.export`` for ``evidence export``.
Exit codes: 0 success, 1 a hub error or a failed verification (the first bad entry is named).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from audit.note import VerifierKey
from core.ports.eventlog import StoredRecord
from core.ports.keyfiles import write_private
from hub.cli import Ctx, authorize, current_principal, decided, main, run_safely


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


@main.group()
def ledger() -> None:
    """Audit ledger: entries, proofs, checkpoints, verification."""


@ledger.command("sync")
@click.option("--no-checkpoint", is_flag=True, help="Append leaves only; sign when due.")
@click.pass_obj
def ledger_sync(obj: Ctx, no_checkpoint: bool) -> None:
    """Append a leaf for every new log record and sign a checkpoint."""

    def go() -> None:
        with obj.hub() as h:
            authorize(h, "ledger.read", "ledger")
            r = h.ledger.sync(force_checkpoint=not no_checkpoint)
            _echo_json({"appended": r.appended, "size": r.size, "checkpoints": r.checkpoints})

    run_safely(go)


def _verifier_key_file(path: str) -> VerifierKey:
    """A ``--public-key`` file, or InvalidInput naming it (not a traceback)."""
    from audit.errors import AuditError
    from audit.note import parse_verifier_key
    from core.errors import InvalidInput

    try:
        return parse_verifier_key(Path(path).read_text())
    except (AuditError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"--public-key {path} is not a verifier key ({exc}); pass the hub's published key "
            "(`hub ledger public-key`, keys/ledger.pub: <name>+<key id>+<base64>).",
            code="invalid_public_key",
        ) from None


@ledger.command("verify")
@click.option(
    "--public-key",
    type=click.Path(exists=True, dir_okay=False),
    multiple=True,
    help="Require checkpoints signed by this verifier key file (your own copy of the hub's "
    "published key; repeat it for a rotated key). Without it the data folder's own key is "
    "trusted, which whoever can write the folder can replace.",
)
@click.option(
    "--full",
    is_flag=True,
    help="Re-verify every entry (default: from the last verified checkpoint, with a "
    "consistency proof and the new entries; full anyway when the last full run is older than "
    "HUB_LEDGER_FULL_VERIFY_EVERY_S).",
)
@click.pass_obj
def ledger_verify(obj: Ctx, public_key: tuple[str, ...], full: bool) -> None:
    """Check the ledger against the log; exit 1 naming the first bad entry."""
    from hub.bootstrap import undone_erasures_problem
    from ledger.verify import verify_remembered

    def go() -> None:
        # verify changes nothing; a ledger the outside witness refuses opens, to be named here
        # (erasures undone are read from the whole ledger below, and reported, not refused)
        with obj.hub(
            install_domain=False,
            sync=False,
            witness_refuses=False,
            check_erasures=False,
            pandas=False,
            clock_refuses=False,
        ) as h:
            principal = authorize(h, "ledger.verify", "ledger")
            trusted = [_verifier_key_file(p) for p in public_key]
            path = h.settings.ledger_verified_path
            run = verify_remembered(
                h.ledger,
                path,
                h.log,
                full=full,
                full_every_s=h.settings.ledger_full_verify_every_s,
                trusted=trusted,
            )
            report, since = run.report, run.since
            from ledger.verify import record_verification

            record_verification(h.ledger, principal, report.as_dict())  # CC7 evidence
            first = report.first
            if first is not None:
                click.echo(f"INVALID: {first.describe()}", err=True)
                _echo_json(report.as_dict())
                sys.exit(1)
            # only over a ledger that verified: the check reads the ledger's erasure entries
            undone = undone_erasures_problem(h, full=True)
            if undone is not None:
                click.echo(f"INVALID: {undone}", err=True)
                _echo_json({**report.as_dict(), "erasures_undone": undone})
                sys.exit(1)
            h.ledger.sync(force_checkpoint=True)  # the run's own record, once the check is done
            signer = h.ledger.signer.verifier()
            run.remember(h.ledger, path)
            kind = (
                f"incremental from checkpoint {since.size}"
                if since is not None
                else f"full ({run.why})"
            )
            click.echo(
                f"OK ledger: {report.leaves} entries and {report.checkpoints} checkpoints verified "
                f"against the log in {report.seconds:.2f} s ({report.pending} records pending; "
                f"{kind}); signed by {signer.name}+{signer.key_id:08x}"
                + (" (the key given with --public-key)" if trusted else " (the folder's own key)")
            )
            from registry.internal import reserved_name_subjects

            for subject, name, why in reserved_name_subjects(h.registry):
                # registered before the registry refused such names: still served, but their
                # ledger entries are a publisher's (readers of the hub's actions skip them)
                click.echo(
                    f"warning: subject {subject!r} names {name!r} ({why}); its records are a "
                    "publisher's, not the hub's: rename the record in your own namespace."
                )
            from ledger.verify import clock_behind

            clock = clock_behind(h.ledger, time.time_ns() // 1000)
            if clock is not None:
                click.echo(f"warning: {clock}")
            for warning in report.witness_warnings:  # what no rollback check could see
                click.echo(f"warning: {warning}")
            for rollback in report.rollbacks_acknowledged:  # restores the operator made
                click.echo(f"acknowledged rollback (outside witness): {rollback}")
            if report.unkeyed_batches:
                click.echo(
                    f"unkeyed batches: {report.unkeyed_batches} (written before "
                    f"{report.unkeyed_since}): their side-index columns are checked against "
                    "the log by `hub ledger verify --full` only."
                )

    run_safely(go)


@ledger.command("entries")
@click.option("--actor", default=None)
@click.option("--action", default=None)
@click.option("--resource", default=None)
@click.option("--topic", default=None)
@click.option("--from", "since", default=None, help="ISO time, inclusive (log time).")
@click.option("--to", "until", default=None, help="ISO time, exclusive.")
@click.option("--after", type=int, default=-1, help="Only entries with a larger index.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100)
@click.pass_obj
def ledger_entries(
    obj: Ctx,
    actor: str | None,
    action: str | None,
    resource: str | None,
    topic: str | None,
    since: str | None,
    until: str | None,
    after: int,
    limit: int,
) -> None:
    """Find ledger entries (JSON lines) by actor, action, resource, topic and time."""
    from ledger.evidence import parse_time

    def go() -> None:
        with obj.hub() as h:
            scope = _tenant_scope(h, "ledger/entries")
            h.ledger.sync(force_checkpoint=True)
            for e in h.ledger.entries(
                tenant_scope=scope,
                actor=actor,
                action=action,
                resource=resource,
                topic=topic,
                since_ms=int(parse_time(since, "--from").timestamp() * 1000) if since else None,
                until_ms=int(parse_time(until, "--to").timestamp() * 1000) if until else None,
                after=after,
                limit=limit,
            ):
                click.echo(json.dumps(e, sort_keys=True))

    run_safely(go)


def _tenant_scope(h: Any, resource: str) -> str | None:
    """The tenant the command's ``ledger.read`` decision limits it to (``tenant_scope_of``);
    ``Forbidden`` on a deny."""
    from ledger.service import tenant_scope_of

    return tenant_scope_of(decided(h, "ledger.read", resource, current_principal(h)).row_filter)


@ledger.command("entry")
@click.argument("index", type=click.IntRange(0))
@click.option("--checkpoint", type=int, default=None, help="Tree size (default: the latest).")
@click.pass_obj
def ledger_entry(obj: Ctx, index: int, checkpoint: int | None) -> None:
    """One entry with its inclusion proof against a checkpoint."""

    def go() -> None:
        with obj.hub(pandas=False) as h:
            scope = _tenant_scope(h, f"ledger/entries/{index}")
            h.ledger.sync(force_checkpoint=True)
            _echo_json(h.ledger.entry(index, checkpoint, tenant_scope=scope))

    run_safely(go)


@ledger.command("checkpoints")
@click.option("--latest", is_flag=True, help="Print only the latest signed note.")
@click.pass_obj
def ledger_checkpoints(obj: Ctx, latest: bool) -> None:
    """Signed checkpoints: size, time, root (or the latest note)."""

    def go() -> None:
        with obj.hub(pandas=False) as h:
            authorize(h, "ledger.read", "ledger/checkpoints")
            h.ledger.sync(force_checkpoint=True)
            if latest:
                cp = h.ledger.store.latest_checkpoint()
                click.echo(cp.note.decode() if cp else "", nl=False)
                return
            for cp in h.ledger.checkpoints():
                click.echo(f"{cp.size}\t{cp.time_us}\t{cp.root.hex()}")

    run_safely(go)


@ledger.command("consistency")
@click.argument("size1", type=click.IntRange(0))
@click.argument("size2", type=click.IntRange(0))
@click.pass_obj
def ledger_consistency(obj: Ctx, size1: int, size2: int) -> None:
    """Consistency proof between the checkpoints of SIZE1 and SIZE2."""

    def go() -> None:
        with obj.hub(pandas=False) as h:
            authorize(h, "ledger.read", "ledger/consistency")
            _echo_json(h.ledger.consistency(size1, size2))

    run_safely(go)


@ledger.command("public-key")
@click.pass_obj
def ledger_public_key(obj: Ctx) -> None:
    """The verifier key of the ledger's checkpoints (for hub-verify --public-key)."""

    def go() -> None:
        with obj.hub() as h:
            authorize(h, "ledger.read", "ledger/public-key")
            click.echo(h.ledger.public_key())

    run_safely(go)


@ledger.command("find")
@click.option("--event-id", default=None, help="The event's id (its ce_id header).")
@click.option("--topic", default=None)
@click.option("--partition", type=click.IntRange(0), default=None)
@click.option("--offset", type=click.IntRange(0), default=None)
@click.option(
    "--export",
    "export",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the event with its proof as JSON for `hub-verify leaf FILE`.",
)
@click.pass_obj
def ledger_find(
    obj: Ctx,
    event_id: str | None,
    topic: str | None,
    partition: int | None,
    offset: int | None,
    export: str | None,
) -> None:
    """The ledger entry of one event (by --event-id, or --topic/--partition/--offset): entry
    index, leaf hash, inclusion proof against the latest checkpoint."""
    from ledger.lookup import authorize_event_read, find_entry
    from ledger.service import tenant_scope_of

    def go() -> None:
        with obj.hub() as h:
            principal = current_principal(h)
            scope = tenant_scope_of(
                decided(h, "ledger.read", "ledger/lookup", principal).row_filter
            )

            def event_read(record: StoredRecord) -> None:  # --export writes the event's bytes
                authorize_event_read(h.policy, principal, record, {"channel": "cli"})

            found = find_entry(
                h.ledger,
                event_id=event_id,
                topic=topic,
                partition=partition,
                offset=offset,
                authorize_event=None if export is None else event_read,
                tenant_scope=scope,
            )
            if export is not None:
                write_private(export, (json.dumps(found, indent=2, sort_keys=True) + "\n").encode())
                for k in ("key", "value"):
                    found.pop(k, None)
            _echo_json(found)

    run_safely(go)


@main.group()
def evidence() -> None:
    """SOC 2 evidence packs."""


@evidence.command("export")
@click.option("--from", "since", required=True, help="ISO date/time, inclusive (log time).")
@click.option("--to", "until", required=True, help="ISO date/time, exclusive.")
@click.option("--controls", default="CC6,CC7,CC8,PI1", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Zip file to write.")
@click.pass_obj
def evidence_export(obj: Ctx, since: str, until: str, controls: str, out: str | None) -> None:
    """Write an evidence pack (zip) that `hub-verify bundle` checks offline (one lineage run of
    ``export.evidence``, see ``hub.api.routers.ledger``)."""
    from core.errors import InvalidInput
    from hub.evidence import export_evidence_pack
    from ledger.controls import parse_controls
    from ledger.evidence import parse_time
    from ledger.service import tenant_scope_of

    def go() -> None:
        try:
            wanted = parse_controls(controls)
        except ValueError as exc:
            raise InvalidInput(f"--controls: {exc}", code="invalid_controls") from exc
        since_t, until_t = parse_time(since, "--from"), parse_time(until, "--to")
        with obj.hub() as h:
            principal = current_principal(h)
            decision = decided(h, "evidence.export", "evidence", principal)
            pack = export_evidence_pack(
                h,
                since_t,
                until_t,
                wanted,
                actor=principal.id,
                tenant_scope=tenant_scope_of(decision.row_filter),
            )
            h.ledger.sync(force_checkpoint=True)  # the export's own audit leaf
            path = Path(out or pack.filename)
            write_private(path, pack.data)
            click.echo(
                f"wrote {path} ({pack.entries} entries, checkpoints {pack.checkpoints[0]}.."
                f"{pack.checkpoints[-1]}); verify with: hub-verify bundle {path} --public-key "
                f"{h.settings.ledger_key_path.with_suffix('.pub')}"
            )
            if until_t.timestamp() > time.time():
                click.echo(
                    f"warning: --to {until} is after the export: the pack holds entries up to "
                    "now only, and says so (report and hub-verify: INCOMPLETE); export again "
                    "once the period is over for its evidence.",
                    err=True,
                )

    run_safely(go)
