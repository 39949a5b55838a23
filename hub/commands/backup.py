"""``hub backup ...`` and ``hub dr drill``: backups to the object store, restore, DR drill.

The object store is the one the settings name (``HUB_OBJECT_STORE=local`` a folder,
``HUB_OBJECT_STORE_DIR``, default ``<data dir>-objects`` beside the data folder; ``s3`` a bucket
through ``HUB_S3_*``). The key-encryption key is ``--kek-file`` (or ``HUB_BACKUP_KEK_FILE``),
kept away from both. Actions: ``backup.create``, ``backup.read``, ``backup.restore``
(admins). Exit codes: 0 success, 1 a hub error (the message names the object or the check
that failed), 2 bad usage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from hub.cli import Ctx, authorize, main, run_safely

kek_option = click.option(
    "--kek-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Key-encryption key file (default HUB_BACKUP_KEK_FILE); `hub backup kek FILE` makes one.",
)


def _echo(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def _settings(obj: Ctx) -> Any:
    from hub.settings import load_settings

    overrides: dict[str, Any] = {}
    if obj.data_dir:
        overrides["data_dir"] = Path(obj.data_dir)
    return load_settings(obj.config, **overrides)


def _kek_forbidden(settings: Any) -> tuple[Path, ...]:
    """Where a KEK must not lie: the data folder and the local object folder."""
    forbidden = [settings.data_dir]
    if settings.object_store == "local":
        forbidden.append(settings.objects_dir)
    return tuple(forbidden)


def _kek(settings: Any, kek_file: str | None) -> Any:
    from storage.backup import load_kek

    path = Path(kek_file) if kek_file else settings.backup_kek_file
    return load_kek(path, forbidden_under=_kek_forbidden(settings))


def _progress(msg: str) -> None:
    click.echo(msg, err=True)


@main.group()
def backup() -> None:
    """Backups of the data folder in the object store: kek, create, list, show, verify, restore."""


@backup.command("kek")
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_obj
def backup_kek(obj: Ctx, file: str) -> None:
    """Write a new random key-encryption key to FILE (0600); keep it away from the data (a
    FILE inside the data folder or the local object folder is refused)."""
    from storage.backup import create_kek_file

    def go() -> None:
        kek = create_kek_file(Path(file), forbidden_under=_kek_forbidden(_settings(obj)))
        click.echo(f"wrote KEK {kek.id} to {file}; store it apart from the data and the backups")

    run_safely(go)


@backup.command("create")
@kek_option
@click.pass_obj
def backup_create(obj: Ctx, kek_file: str | None) -> None:
    """Back up the data folder (only chunks the store lacks are uploaded: incremental)."""
    from hub.bootstrap import build_object_store
    from hub.recovery import backup as make_backup

    def go() -> None:
        with obj.hub() as h:
            principal = authorize(h, "backup.create", "backups")
            kek = _kek(h.settings, kek_file)
            store = build_object_store(h.settings)
            m = make_backup(
                h, store, kek, chunk_bytes=h.settings.backup_chunk_kib << 10, progress=_progress
            )
            h.ledger.record_action(
                principal.id,
                "backup.create",
                f"backup:{m.id}",
                tenant=principal.tenant,
                details={"ledger_size": m.ledger_size, "ledger_root": m.ledger_root},
            )
            _echo({**m.summary(), "stats": m.stats})

    run_safely(go)


@backup.command("list")
@click.pass_obj
def backup_list(obj: Ctx) -> None:
    """Complete backups in the store, oldest first."""
    from hub.bootstrap import build_object_store
    from storage.backup import list_backups

    def go() -> None:
        settings = _settings(obj)
        if settings.log_path.exists():
            with obj.hub(install_domain=False) as h:
                authorize(h, "backup.read", "backups")
        # On a machine without the hub (a disaster), the store's own credentials are the gate.
        _echo(list_backups(build_object_store(settings)))

    run_safely(go)


@backup.command("show")
@click.argument("backup_id")
@click.pass_obj
def backup_show(obj: Ctx, backup_id: str) -> None:
    """One backup's manifest (files, chunks, ledger size and root)."""
    from hub.bootstrap import build_object_store
    from storage.backup import read_manifest

    def go() -> None:
        settings = _settings(obj)
        if settings.log_path.exists():
            with obj.hub(install_domain=False) as h:
                authorize(h, "backup.read", f"backup:{backup_id}")
        _echo(read_manifest(build_object_store(settings), backup_id)[0].as_dict())

    run_safely(go)


@backup.command("verify")
@click.argument("backup_id", required=False)
@kek_option
@click.pass_obj
def backup_verify(obj: Ctx, backup_id: str | None, kek_file: str | None) -> None:
    """Check BACKUP_ID (default: the newest) without restoring: signature, sealed keys and every
    chunk's SHA-256; exit 1 naming the first bad object."""
    from hub.bootstrap import build_object_store
    from storage.backup import check_backup, choose_backup

    def go() -> None:
        settings = _settings(obj)
        if settings.log_path.exists():
            with obj.hub(install_domain=False) as h:
                authorize(h, "backup.read", "backups")
        store = build_object_store(settings)
        _echo(check_backup(store, choose_backup(store, backup_id), _kek(settings, kek_file)))

    run_safely(go)


@backup.command("restore")
@click.argument("backup_id", required=False)
@click.option("--target", type=click.Path(file_okay=False), default=None, help="New data folder.")
@click.option("--at-size", type=click.IntRange(0, None), default=None, help="Ledger size bound.")
@click.option("--at-time", default=None, help="RFC 3339 time or epoch ms: newest backup before.")
@click.option(
    "--allow-older",
    is_flag=True,
    help="Restore the store's newest backup even if the witness beside the KEK records a newer.",
)
@kek_option
@click.pass_obj
def backup_restore(
    obj: Ctx,
    backup_id: str | None,
    target: str | None,
    at_size: int | None,
    at_time: str | None,
    allow_older: bool,
    kek_file: str | None,
) -> None:
    """Restore BACKUP_ID (default: the newest, or the newest at --at-size / --at-time) into an
    empty folder (--target, default the data folder); succeeds only if the ledger verifies."""
    from hub.bootstrap import build_object_store
    from hub.recovery import restore

    def go() -> None:
        settings = _settings(obj)
        time_ms = _parse_time(at_time) if at_time is not None else None
        result = restore(
            settings,
            build_object_store(settings),
            _kek(settings, kek_file),
            Path(target) if target else settings.data_dir,
            obj.token(),
            backup_id=backup_id,
            at_size=at_size,
            at_time_ms=time_ms,
            allow_older=allow_older,
            progress=_progress,
        )
        _echo(result.as_dict())
        click.echo(
            f"OK restored backup {result.backup_id} into {result.target}: ledger root "
            f"{result.ledger_root} at size {result.ledger_size_in_backup} verified",
            err=True,
        )

    run_safely(go)


def _parse_time(text: str) -> int:
    from core.errors import InvalidInput
    from domain.envelope import parse_rfc3339

    if text.isdigit():
        return int(text)
    try:
        return int(parse_rfc3339(text).timestamp() * 1000)
    except (ValueError, InvalidInput) as exc:
        raise InvalidInput(
            f"--at-time {text!r} is neither epoch milliseconds nor an RFC 3339 time "
            "(2026-12-02T10:00:00Z)."
        ) from exc


@main.group()
def dr() -> None:
    """Disaster recovery: the drill."""


@dr.command("drill")
@kek_option
@click.option("--scratch", type=click.Path(file_okay=False), default=None, help="Work folder.")
@click.option("--backup-first", is_flag=True, help="Take a backup first (RPO then ~0).")
@click.option("--rebuild-views", is_flag=True, help="Also rebuild every projection (in the RTO).")
@click.pass_obj
def dr_drill(
    obj: Ctx, kek_file: str | None, scratch: str | None, backup_first: bool, rebuild_views: bool
) -> None:
    """Copy the data folder, destroy the copy, restore it from the store's newest backup, and
    print the measured RTO and RPO (the live folder is never touched)."""
    from hub.bootstrap import build_object_store
    from hub.recovery import drill

    def go() -> None:
        with obj.hub() as h:
            authorize(h, "backup.restore", "backups")
            report = drill(
                h,
                build_object_store(h.settings),
                _kek(h.settings, kek_file),
                obj.token(),
                Path(scratch) if scratch else None,
                backup_first=backup_first,
                rebuild_views=rebuild_views,
                chunk_bytes=h.settings.backup_chunk_kib << 10,
                progress=_progress,
            )
        _echo(report)
        click.echo(
            f"DR drill: RTO {report['rto_s']:.2f} s, RPO {report['rpo_s']:.2f} s "
            f"({report['records_lost']} records after the backup)",
            err=True,
        )

    run_safely(go)
