"""The ``hub`` command line. It works on the data folder directly (embedded footprint).

Every command that reads or changes anything acts as the principal of an API key, exactly as a
route does: ``--key KEY_ID:SECRET`` (or ``HUB_API_KEY``), or ``--key-file FILE`` (or
``HUB_API_KEY_FILE``) holding it; there is no implicit identity. ``hub init`` creates the first
admin key of a fresh data folder (and only then). Every command asks the PolicyEngine port.
Exit codes: 0 success, 1 a hub error (the message names the problem), 2 bad usage.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from audit.printable import printable
from core.errors import Forbidden, HubError, InvalidInput, Unauthenticated, is_storage_full
from core.ports.keyfiles import private_dir
from core.ports.policy import HUB_TENANT, Decision, Principal


class Ctx:
    def __init__(
        self,
        data_dir: str | None,
        config: str | None,
        key: str | None = None,
        key_file: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.config = config
        self.key = key
        self.key_file = key_file

    def token(self) -> str | None:
        """The credential given (``--key`` wins over ``--key-file``), or None."""
        if self.key:
            return self.key.strip()
        if self.key_file:
            try:
                return Path(self.key_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise Unauthenticated(
                    f"Cannot read the key file {self.key_file}: {exc.strerror}. Pass an "
                    "existing file with --key-file (or HUB_API_KEY_FILE)."
                ) from exc
        return None

    @contextmanager
    def hub(
        self,
        install_domain: bool = True,
        sync: bool = True,
        kafka_migration: bool = False,
        witness_refuses: bool = True,
        check_erasures: bool = True,
        pandas: bool = True,
        clock_refuses: bool = True,
    ) -> Iterator[Any]:
        """A hub for one command; ``sync``: give what it appended its ledger leaves on exit
        (False for verifiers, which must not change what they check); ``kafka_migration``,
        ``witness_refuses``: ``bootstrap``'s, for ``hub migrate kafka-seal`` and
        ``hub ledger verify`` only; ``check_erasures``, ``clock_refuses``: ``bootstrap``'s
        (False: verify only);
        ``pandas``: False for a command that hands pyarrow no pandas object: pandas is not
        imported while it runs (:func:`hub.nopandas.without_pandas`)."""
        if not pandas:
            from hub.nopandas import without_pandas

            with (
                without_pandas(_command_line()),
                self.hub(
                    install_domain,
                    sync,
                    kafka_migration,
                    witness_refuses,
                    check_erasures,
                    clock_refuses=clock_refuses,
                ) as h,
            ):
                yield h
            return
        with _startup_without_gc() as frozen:
            from hub.bootstrap import bootstrap
            from hub.settings import load_settings

            overrides: dict[str, Any] = {}
            if self.data_dir:
                overrides["data_dir"] = Path(self.data_dir)
            settings = load_settings(self.config, **overrides)
            if settings.log_level is not None:
                from hub.logs import configure

                configure(settings.log_level, settings.log_json)
            h = bootstrap(
                settings,
                install_domain=install_domain,
                kafka_migration=kafka_migration,
                witness_refuses=witness_refuses,
                check_erasures=check_erasures,
                clock_refuses=clock_refuses,
            )
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
                _sync_after(h)
        finally:
            h.close()
            if frozen:
                gc.unfreeze()  # collectable again (a process running many commands: tests)


@contextmanager
def _startup_without_gc() -> Iterator[bool]:
    """The imports and the bootstrap of a command with the cyclic garbage collector paused,
    then what they built frozen (``gc.freeze``) for the command's length; yields whether it
    froze (not when something else already had: their freeze is theirs to undo).

    Why (session 25, ``verify25``): the start allocates a few hundred thousand long-lived
    objects (modules, classes, the settings' validators); every collection the allocations
    trigger walks them again, and a full one during the command walks them all. Measured on
    ``hub ledger verify`` (one process each): 0.95 -> 0.73 CPU s on a tiny ledger, 2.72 ->
    2.36 on 1M leaves with the collector off. Reference cycles made meanwhile are still
    freed: at the next collection after the command (``gc.unfreeze`` in :meth:`Ctx.hub`)."""
    was_enabled = gc.isenabled()
    gc.disable()
    freeze = gc.get_freeze_count() == 0
    try:
        yield freeze
    except BaseException:
        freeze = False
        raise
    finally:
        if freeze:
            gc.freeze()
        if was_enabled:
            gc.enable()


def _command_line() -> str:
    """The running command's name (``hub ledger verify``), for messages."""
    ctx = click.get_current_context(silent=True)
    return ctx.command_path if ctx is not None else "this command"


def _sync_after(h: Any) -> None:
    """The close-time sync of a command that succeeded. Its changes are committed to the event
    log by now: a disk with no room for the ledger's leaves does not undo them, so the command
    is not reported as failed (``hub keys create`` printed a usable key, then exited 1
    ``storage_full``). It succeeds with a warning that the ledger sync is pending; the next
    sync (``hub ledger sync``, or any command that writes, once there is room) covers them.
    Any other failure of the sync still fails the command."""
    try:
        h.ledger.sync(force_checkpoint=True)
    except HubError as exc:
        if not is_storage_full(exc):
            raise
        click.echo(
            f"warning [{exc.code}]: the command's changes are stored and in effect, but their "
            f"ledger sync is pending: {printable(exc.message)} Free space on the data folder's "
            "disk, then run `hub ledger sync` (any command that writes syncs too).",
            err=True,
        )


def _sync_quietly(h: Any) -> None:
    try:
        h.ledger.sync(force_checkpoint=True)
    except HubError as exc:
        click.echo(
            f"warning [{exc.code}]: the ledger did not sync: {printable(exc.message)}", err=True
        )


def principal_of_token(h: Any, token: str, source: str = "--key") -> Principal:
    key_id, sep, secret = token.partition(":")
    if not sep or not key_id or not secret:
        raise Unauthenticated(
            f"{source} must hold KEY_ID:SECRET, as `hub keys create` or `hub init` printed it."
        )
    principal: Principal = h.keys.verify(key_id, secret)
    return principal


def current_principal(h: Any) -> Principal:
    """The principal of the command's credential; raises ``Unauthenticated`` without one."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_object(Ctx) if ctx is not None else None
    token = obj.token() if obj is not None else None
    if not token:
        raise Unauthenticated(
            "This command needs a credential: pass --key KEY_ID:SECRET or --key-file FILE "
            "(before the command, or HUB_API_KEY / HUB_API_KEY_FILE). On a fresh data folder "
            "create the first admin key with `hub init --key-file .hub/admin.key`."
        )
    return principal_of_token(h, token)


def warn_key_argument(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Callback of every ``--key`` option: a key given on the command line is shown to other
    local users (ps, /proc/<pid>/cmdline) and kept in the shell's history. Told to the person
    at the terminal (scripts' stderr is often parsed: they are not told); not refused, since
    every script written for the hub passes it so (``--key-file`` and ``HUB_API_KEY`` exist)."""
    from_argv = ctx.get_parameter_source(param.name or "") == click.core.ParameterSource.COMMANDLINE
    if value and from_argv and sys.stderr.isatty():
        click.echo(
            "warning: --key KEY_ID:SECRET on the command line shows the secret to other users "
            "of this machine (ps) and to the shell's history; prefer --key-file FILE or "
            "HUB_API_KEY_FILE.",
            err=True,
        )
    return value


# A command-level ``--key`` (after the command name), for governed commands that a second person
# runs with their own key, e.g. ``hub policy approve ID --key KEY_ID:SECRET``.
key_option = click.option(
    "--key",
    envvar="HUB_API_KEY",
    default=None,
    callback=warn_key_argument,
    help="Act as this API key's principal (KEY_ID:SECRET); default: the hub's --key/--key-file.",
)


def principal_for(h: Any, key: str | None) -> Principal:
    """The principal of a command-level ``--key``, else of the hub's ``--key``/``--key-file``."""
    return principal_of_token(h, key) if key else current_principal(h)


def authorize(h: Any, action: str, resource: str, principal: Principal | None = None) -> Principal:
    """Ask the policy decision point as ``principal`` (default: the command's credential);
    raise ``Forbidden`` with its reason on a deny; return the principal that was allowed."""
    principal = principal or current_principal(h)
    decided(h, action, resource, principal)
    return principal


def decided(h: Any, action: str, resource: str, principal: Principal) -> Decision:
    """``authorize``'s allowed decision itself, whose obligations (``mask``, ``row_filter``) a
    command that shows data MUST apply; raises ``Forbidden`` with its reason on a deny."""
    decision: Decision = h.policy.decide(principal, action, resource, {"channel": "cli"})
    if not decision.allow:
        raise Forbidden(f"Access denied: {decision.reason}.")
    return decision


def authorize_hub_wide(h: Any, action: str, resource: str, principal: Principal) -> Principal:
    """``authorize`` for something no single tenant owns (``hub.api.deps.authorize_hub_wide``):
    decided as the hub's own tenant's, so another tenant's key needs ``tenant.all``. The
    principal, as ``authorize`` returns it."""
    context = {"channel": "cli", "tenant": HUB_TENANT}
    decision: Decision = h.policy.decide(principal, action, resource, context)
    if not decision.allow:
        raise Forbidden(f"Access denied: {decision.reason}.")
    return principal


def run_safely(fn: Callable[[], None]) -> None:
    try:
        fn()
    except HubError as exc:
        # A message may quote a file's or a record's text: one escaped line (audit.printable).
        click.echo(f"error [{exc.code}]: {printable(exc.message)}", err=True)
        sys.exit(1)


def echo_change(change: Any, *, diff: bool = False) -> None:
    """Print a governed change (policy or configuration) as JSON, with its diff when asked."""
    out = change.summary()
    if diff:
        out["diff"] = change.diff
    click.echo(json.dumps(out, indent=2))


@click.group()
@click.option("--data-dir", envvar="HUB_DATA_DIR", help="Data folder (default .hub).")
@click.option("--config", envvar="HUB_CONFIG_FILE", help="YAML settings file.")
@click.option(
    "--key",
    envvar="HUB_API_KEY",
    default=None,
    callback=warn_key_argument,
    help="Act as this KEY_ID:SECRET (prefer --key-file: an argument shows in ps).",
)
@click.option(
    "--key-file",
    envvar="HUB_API_KEY_FILE",
    default=None,
    help="A file holding KEY_ID:SECRET (e.g. .hub/admin.key).",
)
@click.pass_context
def main(
    ctx: click.Context,
    data_dir: str | None,
    config: str | None,
    key: str | None,
    key_file: str | None,
) -> None:
    """Event-sourced, compliance-grade data hub."""
    from hub.logs import configure

    configure("WARNING", json_lines=True)  # until a command loads the settings (log_level)
    ctx.obj = Ctx(data_dir, config, key, key_file)


def init_admin_key(h: Any, key_path: Path) -> str:
    """The first admin key of a data folder, written to ``key_path`` (0600); returns the token.

    Refused once any active admin key exists (use it to issue more keys); a ``key_path`` that
    already holds a working key is simply returned.
    """
    if key_path.exists():
        token = key_path.read_text(encoding="utf-8").strip()
        principal_of_token(h, token, str(key_path))
        return token
    if h.keys.has_admin():
        raise Forbidden(
            f"This data folder already has an admin key, so {key_path} was not created: use an "
            "existing admin key (`hub --key-file FILE keys create --role admin --owner NAME` "
            "prints an enrolment token; NAME redeems it with `hub enrol`, the token on stdin).",
            code="already_initialised",
        )
    issued = h.keys.create(["admin"], owner="admin", description="first admin key (hub init)")
    private_dir(key_path.parent)  # 0700 whatever the umask: no one else swaps the admin key
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(issued.token + "\n")
    made: str = issued.token
    return made


@main.command()
@click.option(
    "--key-file",
    "key_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to write the admin key (default <data-dir>/admin.key).",
)
@click.pass_obj
def init(obj: Ctx, key_file: str | None) -> None:
    """Create the first admin key of a fresh data folder (refused once one exists)."""

    def go() -> None:
        with obj.hub() as h:
            path = Path(key_file) if key_file else h.settings.data_dir / "admin.key"
            init_admin_key(h, path)
            click.echo(f"admin key in {path} (mode 0600); use it with --key-file {path}")

    run_safely(go)


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
    from hub.api.headerlimit import serve_protocol
    from hub.logs import configure

    def go() -> None:
        with obj.hub() as h:
            level = h.settings.log_level or "INFO"
            configure(level, h.settings.log_json)
            # the followers take the GIL back after every SQLite, Arrow and chDB call: a shorter
            # wait for it cuts the publish -> visible tail (docs/benchmarks/s24-visible24.md)
            sys.setswitchinterval(h.settings.switch_interval_ms / 1000)
            if h.ingest.parquet is not None:  # the first Parquet upload need not wait for it
                h.ingest.parquet.start_early()
            if h.settings.gc_freeze:
                # start-up is done: later full collections (they hold the GIL) skip what it
                # built; opt-in, measured in docs/benchmarks/s25-visible25.md
                gc.collect()
                gc.freeze()
            else:
                # the command's start-up freeze (_startup_without_gc) is for a command's length;
                # a server's collector is the operator's choice (HUB_GC_FREEZE, default off)
                gc.unfreeze()
            bind_host = host or h.settings.http_host
            bind_port = port or h.settings.http_port
            if admin_key_file:
                key_path = Path(admin_key_file)
                token = init_admin_key(h, key_path)
                shown = token if sys.stdout.isatty() else "[not printed: stdout is not a terminal]"
                url = f"http://{bind_host}:{bind_port}"
                click.echo(
                    "\n".join(
                        [
                            "",
                            f"hub is up on the embedded footprint (data in {h.settings.data_dir})",
                            f"  Console          {url}/ui   (log in with an API key)",
                            f"  API docs         {url}/docs   (log in with the admin key)",
                            f"  OpenAPI          {url}/openapi.json",
                            f"  Schema Registry  {url}/subjects   (Confluent-compatible)",
                            f"  Metrics          {url}/metrics",
                            # The key goes to a terminal only: in a container stdout is a log.
                            f"  Admin key        {shown}   (in {key_path})",
                            f'  Try              curl -u "$(cat {key_path})" {url}/v1/topics',
                            f"  CLI              export HUB_API_KEY_FILE={key_path}",
                            "                   hub topics; hub schema list; hub tail trades",
                            "",
                        ]
                    )
                )
            uvicorn.run(
                create_app(h),
                host=bind_host,
                port=bind_port,
                http=serve_protocol(h.settings),
                log_level=level.lower(),
                access_log=False,  # hub.observability writes the access log, in ECS fields
                log_config=None,  # uvicorn's own lines go through hub.logs too
            )

    run_safely(go)


# -- keys -----------------------------------------------------------------------------------
@main.group()
def keys() -> None:
    """API keys."""


@keys.command("create")
@click.option("--role", "roles", multiple=True, required=True, help="Role (repeatable).")
@click.option("--owner", "--principal", "owner", default=None, help="The person (default: key id).")
@click.option("--tenant", default=None, help="Default: the issuer's tenant.")
@click.option("--description", default="")
@click.option("--expires-in", default=None, help="Lifetime, e.g. 3600, 12h, 30d.")
@click.pass_obj
def keys_create(
    obj: Ctx,
    roles: tuple[str, ...],
    owner: str | None,
    tenant: str | None,
    description: str,
    expires_in: str | None,
) -> None:
    """Issue a key and print KEY_ID:SECRET (shown once). Non-admins issue only roles they
    hold, to new people."""
    from datetime import UTC, datetime

    from governance.apikeys import parse_duration

    def go() -> None:
        with obj.hub() as h:
            principal = authorize(h, "keys.create", "keys")
            expires = datetime.now(UTC) + parse_duration(expires_in) if expires_in else None
            issued = h.keys.issue(
                principal,
                list(roles),
                owner=owner,
                tenant=tenant,
                description=description,
                expires_at=expires,
            )
            if hasattr(issued, "enrolment_id"):
                _echo_ticket(issued)
            else:
                click.echo(issued.token)

    run_safely(go)


def _echo_ticket(ticket: Any) -> None:
    """An enrolment token (``governance.enrolment``): what to hand to whom."""
    click.echo(ticket.token)
    step = (
        f"a second approver runs `hub principals approve {ticket.enrolment_id}` and gives "
        f"{ticket.owner} the second half; then "
        if ticket.requires_approval
        else ""
    )
    click.echo(
        f"enrolment {ticket.enrolment_id} for {ticket.owner} (expires "
        f"{ticket.expires_at.isoformat()}): a key that may approve is never handed over; "
        f"give {ticket.owner} this token; {step}{ticket.owner} runs `hub enrol` on their "
        "own machine, the token on its stdin (or --token-file FILE), never as an argument.",
        err=True,
    )


def _write_key(out: str, token: str) -> None:
    """Write a live key to ``out`` (0600), through a file this call alone creates: whatever
    was at ``out.tmp`` (a world-readable leftover keeps its mode under ``O_TRUNC``; a symbolic
    link would be followed, leaving the secret in its target) is removed first, and the new one
    is made with ``O_EXCL | O_NOFOLLOW``."""
    path = Path(out)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), 0o600)  # the umask may only narrow it; say it exactly
        fh.write(token + "\n")
    tmp.replace(path)


def _secret_from(
    path: str | None,
    from_env: str | None,
    env: str,
    what: str,
    *,
    stdin: bool = False,
    required: bool = True,
) -> str | None:
    """A secret from a file (``-``: stdin), else the environment variable ``env`` (its value
    ``from_env``, read by click), else (with ``stdin``) standard input, hidden when it is a
    terminal; never from an argument."""
    text: str | None
    if path is not None:
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise click.UsageError(f"Cannot read the {what} from {path}: {exc.strerror}.") from exc
    elif from_env:
        text = from_env
    elif stdin and sys.stdin.isatty():
        text = click.prompt(f"The {what}", hide_input=True, err=True)
    elif stdin:
        text = sys.stdin.read()
    else:
        text = None
    text = text.strip() if text else None
    if required and not text:
        raise click.UsageError(
            f"No {what} was given: pipe it on stdin, or pass --token-file FILE or {env}."
        )
    return text


def _refuse_secret_argument(name: str, alternatives: str) -> Callable[..., Any]:
    """A click callback refusing a secret passed as an argument (without repeating it); the
    same parameter's environment variable is taken."""

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        source = ctx.get_parameter_source(param.name or "")
        if value and source == click.core.ParameterSource.COMMANDLINE:
            raise click.UsageError(
                f"{name} is not taken on the command line: other users of this machine read a "
                f"command's arguments (ps) and the shell keeps them in its history; "
                f"{alternatives}.",
                ctx,
            )
        return value

    return check


@main.command("enrol")
@click.argument(
    "token",
    required=False,
    expose_value=False,
    callback=_refuse_secret_argument(
        "The enrolment token",
        "pipe it on stdin (hub enrol < token.txt), or pass --token-file FILE or HUB_ENROL_TOKEN",
    ),
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, allow_dash=True),
    default=None,
    help="A file holding the enrolment token ('-': stdin). Default: HUB_ENROL_TOKEN, else stdin.",
)
@click.option(
    "--token",
    "env_token",
    envvar="HUB_ENROL_TOKEN",
    hidden=True,
    default=None,
    callback=_refuse_secret_argument(
        "The enrolment token",
        "pipe it on stdin (hub enrol < token.txt), or pass --token-file FILE or HUB_ENROL_TOKEN",
    ),
)
@click.option(
    "--second",
    "env_second",
    envvar="HUB_ENROL_SECOND",
    hidden=True,
    default=None,
    callback=_refuse_secret_argument(
        "The approver's second half", "pass --second-file FILE or HUB_ENROL_SECOND"
    ),
)
@click.option(
    "--second-file",
    type=click.Path(dir_okay=False, allow_dash=True),
    default=None,
    help="A file holding the approver's second half, if apart (or HUB_ENROL_SECOND).",
)
@click.option(
    "--out", type=click.Path(dir_okay=False), default=None, help="Write the key (0600) here."
)
@click.pass_obj
def enrol_cmd(
    obj: Ctx,
    token_file: str | None,
    env_token: str | None,
    second_file: str | None,
    env_second: str | None,
    out: str | None,
) -> None:
    """Redeem an enrolment token (from stdin, --token-file or HUB_ENROL_TOKEN; never an
    argument): a secret is generated here, only its salted HMAC reaches the hub; prints (or
    writes) your new KEY_ID:SECRET. Run it yourself, without another's key."""
    import secrets as _secrets

    second = _secret_from(
        second_file, env_second, "HUB_ENROL_SECOND", "approver's second half", required=False
    )
    token = _secret_from(token_file, env_token, "HUB_ENROL_TOKEN", "enrolment token", stdin=True)
    if token is None:  # _secret_from refused it already (required)
        raise click.UsageError("No enrolment token was given.")

    def go() -> None:
        secret = _secrets.token_urlsafe(32)
        with obj.hub() as h:
            given = obj.token()
            presented = principal_of_token(h, given) if given else None
            issued = h.keys.redeem(token, secret, second=second, presented_by=presented)
            if out:
                _write_key(out, issued.token)
                click.echo(f"{issued.key_id} ({issued.owner}) written to {out}")
            else:
                click.echo(issued.token)

    run_safely(go)


@main.group()
def principals() -> None:
    """People: their keys, how each was issued, and enrolments."""


@principals.command("list")
@click.pass_obj
def principals_list(obj: Ctx) -> None:
    """Each active key's owner, roles and issuance (approvers flagged legacy-issued must
    re-enrol), then each enrolment; records lapsed enrolments on the ledger."""
    from datetime import UTC, datetime

    def go() -> None:
        with obj.hub() as h:
            from hub.reports import reader_scope

            who = authorize(h, "keys.read", "keys")
            scope = reader_scope(h, who, {}, {}, "keys")
            h.keys.expire_due()
            for k in h.keys.active():
                if scope not in (None, k.tenant):
                    continue
                p = k.public()
                flag = (
                    "\tlegacy-issued: re-enrol (hub keys rotate KEY_ID)"
                    if p["legacy_issued"]
                    else ""
                )
                click.echo(f"{k.owner}\t{k.key_id}\t{','.join(p['roles'])}\t{k.issuance}{flag}")
            now = datetime.now(UTC)
            for e in h.keys.enrolments():
                if scope in (None, e.tenant):
                    approval = (  # the reason is the approver's text: escaped
                        f"\tapproved by {e.approved_by}: "
                        f"{printable(e.approval_reason) or '(no reason)'}"
                        if e.approved_by
                        else ""
                    )
                    click.echo(
                        f"{e.owner}\t{e.enrolment_id}\t{','.join(sorted(e.roles))}\t"
                        f"enrolment {e.kind} {e.state(now)} by {e.requested_by}{approval}"
                    )

    run_safely(go)


@principals.command("approve")
@click.argument("enrolment_id")
@click.option("--reason", default="")
@key_option
@click.pass_obj
def principals_approve(obj: Ctx, enrolment_id: str, reason: str, key: str | None) -> None:
    """Approve an enrolment as a second person; prints the second half, for the person only."""

    def go() -> None:
        with obj.hub() as h:
            principal = authorize(h, "keys.create", "keys", principal_for(h, key))
            click.echo(h.keys.approve_enrolment(principal, enrolment_id, reason))

    run_safely(go)


@keys.command("list")
@click.option("--all", "all_keys", is_flag=True, help="Include revoked and expired keys.")
@click.pass_obj
def keys_list(obj: Ctx, all_keys: bool) -> None:
    """Keys: id, owner, roles, state (never secrets or hashes)."""

    def go() -> None:
        with obj.hub() as h:
            from hub.reports import reader_scope

            who = authorize(h, "keys.read", "keys")
            scope = reader_scope(h, who, {}, {}, "keys")  # its tenant's, as GET /v1/keys
            for k in h.keys.all() if all_keys else h.keys.active():
                if scope not in (None, k.tenant):
                    continue
                p = k.public()
                flags = p["state"] + (",legacy" if p["legacy"] else "")
                click.echo(
                    f"{k.key_id}\t{k.owner}\t{','.join(p['roles'])}\t{flags}"
                    f"\texpires={p['expires_at'] or '-'}"
                )

    run_safely(go)


@keys.command("revoke")
@click.argument("key_id")
@click.option("--reason", required=True, help="Why (recorded on the ledger).")
@click.option("--cascade", is_flag=True, help="Also revoke every key issued with this one.")
@click.pass_obj
def keys_revoke(obj: Ctx, key_id: str, reason: str, cascade: bool) -> None:
    """Revoke a key; it fails everywhere at the next request."""

    def go() -> None:
        if not reason.strip():
            raise InvalidInput("--reason must not be empty.", code="reason_required")
        with obj.hub() as h:
            principal = authorize(h, "keys.revoke", f"keys/{key_id}")
            for kid in h.keys.revoke(
                key_id, revoked_by=principal.id, reason=reason, actor=principal, cascade=cascade
            ):
                click.echo(f"revoked {kid}")

    run_safely(go)


@keys.command("rotate")
@click.argument("key_id")
@click.option("--grace", default=None, help="The old key keeps working this long (e.g. 1h).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the new key.")
@click.pass_obj
def keys_rotate(obj: Ctx, key_id: str, grace: str | None, out: str | None) -> None:
    """Issue a replacement (same owner and roles) and revoke KEY_ID; prints the new key. Only
    the key's owner or an admin may rotate it."""
    from governance.apikeys import parse_duration

    def go() -> None:
        with obj.hub() as h:
            principal = authorize(h, "keys.rotate", f"keys/{key_id}")
            issued = h.keys.rotate(
                principal, key_id, grace=parse_duration(grace) if grace else None
            )
            if hasattr(issued, "enrolment_id"):  # another person's approver key: a reset
                _echo_ticket(issued)
            elif out:
                _write_key(out, issued.token)
                click.echo(f"{issued.key_id} written to {out}")
            else:
                click.echo(issued.token)

    run_safely(go)


# -- schemas --------------------------------------------------------------------------------
def registry_scope(h: Any, principal: Principal, resource: str) -> Any:
    """``principal``'s view of the registry (``hub.registry_scope``), as the API's: another
    tenant's subject is decided again as that tenant's."""
    from hub.registry_scope import RegistryScope

    def decide(action: str, tenant: str) -> bool:
        context = {"channel": "cli", "tenant": tenant}
        return bool(h.policy.decide(principal, action, resource, context).allow)

    return RegistryScope(h.registry, principal, decide, h.log)


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
            from registry.internal import refuse_internal_subject, refuse_reserved_names

            principal = authorize(h, "schema.write", f"subjects/{subject}")
            refuse_internal_subject(subject, "registering a schema version under")
            tenant = registry_scope(h, principal, f"subjects/{subject}").claim(subject)
            text = Path(file).read_text(encoding="utf-8")
            refuse_reserved_names(h.registry, subject, text)  # as the registry API does
            sv = h.registry.register(subject, text, tenant=tenant)
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
            principal = authorize(h, "schema.read", f"subjects/{subject}")
            registry_scope(h, principal, f"subjects/{subject}").require_readable(subject)
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
            principal = authorize(h, "schema.read", "subjects")
            scope = registry_scope(h, principal, "subjects")
            for s in scope.readable_subjects(h.registry.subjects(include_deleted=deleted)):
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
    """Print N of a topic's records as JSON lines (decoded through the registry), under the
    event.read decision as the event route applies it: records of other tenants left out
    (fewer than N may show), PII masked without pii.read. Internal topics need internal.read;
    key hashes are never shown."""
    from core.events import is_internal_topic
    from core.ports.eventlog import StoredRecord
    from core.tailing import last_records, records_from

    def go() -> None:
        with obj.hub() as h:
            principal = current_principal(h)
            decision = decided(h, "event.read", f"topics/{topic}", principal)
            if is_internal_topic(topic):
                authorize(h, "internal.read", f"topics/{topic}", principal)
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
                ev = h.reader.visible(rec, decision)
                if ev is not None:
                    click.echo(json.dumps(ev))
            while follow:
                got = 0
                for p in parts:
                    evs, after = h.reader.read_visible(topic, p, pos[p], 1000, decision)
                    for ev in evs:
                        click.echo(json.dumps(ev))
                    got += after - pos[p]
                    pos[p] = after
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
