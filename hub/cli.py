"""The ``hub`` command line. It works on the data folder directly (embedded footprint).

The local operator has filesystem access to the data folder and acts as the ``local-operator``
principal with the admin role; every command still asks the PolicyEngine port, as routes do.
Exit codes: 0 success, 1 a hub error (the message names the problem), 2 bad usage.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from hub.errors import Forbidden, HubError
from hub.ports.policy import Principal

OPERATOR = Principal("local-operator", frozenset({"admin"}))


class Ctx:
    def __init__(self, data_dir: str | None, config: str | None) -> None:
        self.data_dir = data_dir
        self.config = config

    @contextmanager
    def hub(self, install_domain: bool = True, sync: bool = True) -> Iterator[Any]:
        """A hub for one command; ``sync``: give what it appended its ledger leaves on exit
        (False for verifiers, which must not change what they check)."""
        from hub.bootstrap import bootstrap
        from hub.settings import load_settings

        overrides: dict[str, Any] = {}
        if self.data_dir:
            overrides["data_dir"] = Path(self.data_dir)
        settings = load_settings(self.config, **overrides)
        h = bootstrap(settings, install_domain=install_domain)
        h.sync_on_close = sync
        try:
            try:
                yield h
            except BaseException:
                if sync:
                    _sync_quietly(h)  # what a failing command appended is still covered
                raise
            # Whatever the command appended is on the ledger (and under a signed checkpoint)
            # before it returns: no window in which a change goes unrecorded.
            if sync:
                h.ledger.sync(force_checkpoint=True)
        finally:
            h.close()


def _sync_quietly(h: Any) -> None:
    try:
        h.ledger.sync(force_checkpoint=True)
    except HubError as exc:
        click.echo(f"warning [{exc.code}]: the ledger did not sync: {exc.message}", err=True)


def authorize(h: Any, action: str, resource: str, principal: Principal = OPERATOR) -> None:
    """Ask the policy decision point; raise ``Forbidden`` with its reason on a deny. Commands
    act as the local operator unless a ``--key`` names another principal."""
    decision = h.policy.decide(principal, action, resource, {"channel": "cli"})
    if not decision.allow:
        raise Forbidden(f"Access denied: {decision.reason}.")


def run_safely(fn: Callable[[], None]) -> None:
    try:
        fn()
    except HubError as exc:
        click.echo(f"error [{exc.code}]: {exc.message}", err=True)
        sys.exit(1)


@click.group()
@click.option("--data-dir", envvar="HUB_DATA_DIR", help="Data folder (default .hub).")
@click.option("--config", envvar="HUB_CONFIG_FILE", help="YAML settings file.")
@click.pass_context
def main(ctx: click.Context, data_dir: str | None, config: str | None) -> None:
    """Event-sourced, compliance-grade data hub."""
    from hub.logs import configure

    configure(os.environ.get("HUB_LOG_LEVEL", "WARNING"), json_lines=True)
    ctx.obj = Ctx(data_dir, config)


# -- serve ----------------------------------------------------------------------------------
@main.command()
@click.option("--host", default=None, help="Bind address (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8080).")
@click.option(
    "--admin-key-file",
    type=click.Path(),
    default=None,
    help="Create an admin key if this file does not exist and write it there.",
)
@click.pass_obj
def serve(obj: Ctx, host: str | None, port: int | None, admin_key_file: str | None) -> None:
    """Serve the HTTP API (events, Schema Registry, metrics) on the embedded footprint."""
    import uvicorn

    from hub.api.app import create_app
    from hub.logs import configure

    def go() -> None:
        with obj.hub() as h:
            configure(h.settings.log_level, h.settings.log_json)
            bind_host = host or h.settings.http_host
            bind_port = port or h.settings.http_port
            if admin_key_file:
                key_path = Path(admin_key_file)
                if not key_path.exists():
                    issued = h.keys.create(
                        ["admin"], principal="admin", description="created by hub serve"
                    )
                    key_path.parent.mkdir(parents=True, exist_ok=True)
                    key_path.write_text(issued.token + "\n")
                    key_path.chmod(0o600)
                token = key_path.read_text().strip()
                url = f"http://{bind_host}:{bind_port}"
                click.echo(
                    "\n".join(
                        [
                            "",
                            f"hub is up on the embedded footprint (data in {h.settings.data_dir})",
                            f"  API docs         {url}/docs   (log in with the admin key)",
                            f"  OpenAPI          {url}/openapi.json",
                            f"  Schema Registry  {url}/subjects   (Confluent-compatible)",
                            f"  Metrics          {url}/metrics",
                            f"  Admin key        {token}   (also in {key_path})",
                            f"  Try              curl -u '{token}' {url}/v1/topics",
                            "                   hub topics; hub schema list; hub tail trades",
                            "",
                        ]
                    )
                )
            uvicorn.run(
                create_app(h),
                host=bind_host,
                port=bind_port,
                log_level=h.settings.log_level.lower(),
                access_log=False,
            )

    run_safely(go)


# -- keys -----------------------------------------------------------------------------------
@main.group()
def keys() -> None:
    """API keys."""


@keys.command("create")
@click.option("--role", "roles", multiple=True, required=True, help="Role (repeatable).")
@click.option("--principal", default=None, help="Owner name (default: the key id).")
@click.option("--tenant", default="default")
@click.option("--description", default="")
@click.pass_obj
def keys_create(
    obj: Ctx, roles: tuple[str, ...], principal: str | None, tenant: str, description: str
) -> None:
    """Issue a key and print KEY_ID:SECRET (shown once)."""

    def go() -> None:
        with obj.hub() as h:
            authorize(h, "keys.create", "keys")
            issued = h.keys.create(
                list(roles),
                principal=principal,
                tenant=tenant,
                description=description,
                issued_by=OPERATOR.id,
            )
            click.echo(issued.token)

    run_safely(go)


@keys.command("list")
@click.pass_obj
def keys_list(obj: Ctx) -> None:
    """Active keys (ids and roles, never secrets)."""

    def go() -> None:
        with obj.hub() as h:
            authorize(h, "keys.create", "keys")
            for k in h.keys.active():
                click.echo(f"{k.key_id}\t{k.principal.id}\t{','.join(sorted(k.principal.roles))}")

    run_safely(go)


# -- schemas --------------------------------------------------------------------------------
@main.group()
def schema() -> None:
    """Schema Registry."""


@schema.command("register")
@click.argument("subject")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.pass_obj
def schema_register(obj: Ctx, subject: str, file: str) -> None:
    """Register FILE (.avsc) under SUBJECT; prints the id and version."""

    def go() -> None:
        with obj.hub() as h:
            authorize(h, "schema.write", f"subjects/{subject}")
            sv = h.registry.register(subject, Path(file).read_text(encoding="utf-8"))
            click.echo(json.dumps({"subject": subject, "version": sv.version, "id": sv.id}))

    run_safely(go)


@schema.command("check")
@click.argument("subject")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.pass_obj
def schema_check(obj: Ctx, subject: str, file: str) -> None:
    """Check FILE against SUBJECT's compatibility level; exit 1 when incompatible."""

    def go() -> None:
        with obj.hub() as h:
            authorize(h, "schema.read", f"subjects/{subject}")
            problems = h.registry.check(subject, Path(file).read_text(encoding="utf-8"))
            level = h.registry.compatibility(subject)
            if problems:
                click.echo(f"INCOMPATIBLE with {subject} under {level}:", err=True)
                for p in problems:
                    click.echo(f"  {p.path}: {p.message} [{p.rule}]", err=True)
                sys.exit(1)
            click.echo(f"compatible with {subject} under {level}")

    run_safely(go)


@schema.command("list")
@click.option("--deleted", is_flag=True, help="Include soft-deleted subjects.")
@click.pass_obj
def schema_list(obj: Ctx, deleted: bool) -> None:
    """Subjects with their latest version and id."""

    def go() -> None:
        with obj.hub() as h:
            authorize(h, "schema.read", "subjects")
            for s in h.registry.subjects(include_deleted=deleted):
                sv = h.registry.get_version(s, "latest", include_deleted=deleted)
                click.echo(f"{s}\tv{sv.version}\tid={sv.id}")

    run_safely(go)


# -- topics and tail ------------------------------------------------------------------------
@main.command()
@click.pass_obj
def topics(obj: Ctx) -> None:
    """Topics with partitions and record counts."""

    def go() -> None:
        with obj.hub() as h:
            authorize(h, "topic.read", "topics")
            for t in h.log.topics():
                ends = h.log.end_offsets(t.name)
                # End offsets, not record counts: Kafka transaction markers take offsets too.
                offsets = ",".join(str(ends[p]) for p in sorted(ends))
                click.echo(f"{t.name}\tpartitions={t.partitions}\tend_offsets={offsets}")

    run_safely(go)


@main.command()
@click.argument("topic")
@click.option("--partition", type=int, default=None, help="Only this partition.")
@click.option(
    "--offset", type=click.IntRange(min=0), default=None, help="Start offset in each partition."
)
@click.option(
    "--lines",
    "-n",
    type=click.IntRange(min=0),
    default=10,
    help="How many records: the last N, or the first N from --offset.",
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events.")
@click.pass_obj
def tail(
    obj: Ctx, topic: str, partition: int | None, offset: int | None, lines: int, follow: bool
) -> None:
    """Print exactly N of a topic's records as JSON lines (decoded through the registry)."""
    from hub.ports.eventlog import StoredRecord
    from hub.tailing import last_records, records_from

    def go() -> None:
        with obj.hub() as h:
            authorize(h, "event.read", f"topics/{topic}")
            parts = (
                [partition] if partition is not None else list(range(h.log.topic(topic).partitions))
            )
            pos = dict(h.log.end_offsets(topic))
            shown: Iterable[StoredRecord]
            if offset is None:
                shown = last_records(h.log, topic, parts, lines)
            else:
                shown = records_from(h.log, topic, parts, offset, lines)
            for rec in shown:
                click.echo(json.dumps(h.reader.decode(rec)))
            while follow:
                got = 0
                for p in parts:
                    for ev in h.reader.read(topic, p, pos[p], 1000):
                        click.echo(json.dumps(ev))
                        pos[p] = ev["offset"] + 1
                        got += 1
                if not got:
                    time.sleep(0.2)

    run_safely(go)


def _load_command_modules() -> None:
    import importlib
    import pkgutil

    import hub.commands

    for mod in pkgutil.iter_modules(hub.commands.__path__):
        importlib.import_module(f"hub.commands.{mod.name}")


_load_command_modules()

if __name__ == "__main__":
    main()
