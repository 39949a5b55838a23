"""``hub publish FILE``, ``hub watch FOLDER`` and ``hub connector run NAME --config FILE``.

``publish`` streams a file (JSON lines, CSV, Parquet, Avro OCF) through the ingest pipeline with a
progress bar, prints accepted / rejected / duplicate counts, and exits 1 when the file itself is
unreadable (``ingest.files``). ``watch`` polls a folder: each new file is published, then
moved to ``done/`` (or ``failed/`` when unreadable); a file already fully ingested is recognised
by its digest and not ingested twice. ``connector run`` runs a pull connector described by a YAML
file (``kind: db``, ``kind: http`` or ``kind: debezium``, see ``ingest.db``, ``ingest.httppull``
and ``ingest.debezium``) until its source is exhausted (``--follow``: a Debezium source keeps
consuming); it resumes from its stored position.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from core.errors import ConfigError, HubError, InvalidInput
from core.yamlkeys import load_unique
from hub.cli import Ctx, authorize, main, run_safely


@contextmanager
def _ledger_followed(h: Any) -> Iterator[None]:
    """The ledger's follower on its own thread while a file is published (``Ledger.start``, as
    ``hub serve`` runs it): the leaves of the batches already committed are hashed and written
    while the next batches are read and validated, on the second core (the native hashing,
    tile building and SQLite writes run outside the GIL). Before, every leaf waited for the
    close-time sync, after the whole file. The close-time sync still runs (the last batches'
    leaves and a signed checkpoint before the command returns): nothing is recorded later, only
    sooner. Not for a hub that must not sync (``sync=False``) or a process that is not the
    ledger's writer."""
    if not (h.sync_on_close and h.ledger.is_writer()):
        yield
        return
    h.ledger.start()
    try:
        yield
    finally:
        h.ledger.stop()


def _summary(label: str, accepted: int, rejected: int, duplicates: int) -> str:
    return f"{label}: accepted={accepted} rejected={rejected} duplicates={duplicates}"


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--topic", "-t", required=True, help="Topic to publish to.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "jsonl", "csv", "parquet", "avro"]),
    default="auto",
    show_default=True,
)
@click.option("--batch-size", type=int, default=10_000, show_default=True)
@click.option("--event-type", default=None, help="Avro full name (topics with several types).")
@click.pass_obj
def publish(
    obj: Ctx, file: str, topic: str, fmt: str, batch_size: int, event_type: str | None
) -> None:
    """Publish FILE to a topic, record by record (bad records go to quarantine)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ingest.files import FileUnreadable, publish_file

    path = Path(file)

    def go() -> None:
        with obj.hub(pandas=False) as h:
            principal = authorize(h, "ingest.publish", f"topics/{topic}")
            size = path.stat().st_size if path.exists() else 0
            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[counts]}"),
                TimeElapsedColumn(),
                transient=False,
                disable=not sys.stderr.isatty(),
            ) as progress:
                task = progress.add_task(path.name, total=None, counts="")
                seen = [0, 0, 0]

                def on_batch(n: int, r: object) -> None:
                    from ingest.pipeline import IngestResult

                    assert isinstance(r, IngestResult)
                    seen[0] += r.accepted
                    seen[1] += r.rejected
                    seen[2] += r.duplicates
                    progress.update(
                        task,
                        advance=n,
                        counts=f"ok {seen[0]:,}  rejected {seen[1]:,}  dup {seen[2]:,}",
                    )

                try:
                    with _ledger_followed(h):
                        out = publish_file(
                            h.ingest,
                            # A link the operator names on the command line is theirs to follow;
                            # publish_file itself never follows one (a dropped file's name).
                            path.resolve(),
                            topic,
                            fmt,
                            batch_size,
                            event_type=event_type,
                            producer=principal.id,
                            tenant=principal.tenant,  # the key's own, as the HTTP routes stamp
                            on_batch=on_batch,
                        )
                except FileUnreadable:
                    raise
            if out.already_done:
                click.echo(
                    f"{path.name}: already ingested ({out.skipped} records, source "
                    f"{out.source}); nothing to do."
                )
                return
            r = out.result
            click.echo(
                _summary(
                    f"{path.name} ({out.format}, {size:,} bytes)",
                    r.accepted,
                    r.rejected,
                    r.duplicates,
                )
                + (f" resumed_after={out.skipped}" if out.skipped else "")
            )
            if r.rejected:
                click.echo("  rejected records are in quarantine: hub quarantine list")

    run_safely(go)


@main.command()
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--topic", "-t", required=True)
@click.option("--interval", type=float, default=2.0, show_default=True, help="Poll seconds.")
@click.option("--once", is_flag=True, help="Process what is there, then exit.")
@click.option("--batch-size", type=int, default=10_000, show_default=True)
@click.option(
    "--settle",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Take a file only once unchanged for this many seconds (a guess that its writer is "
    "done: write elsewhere and rename in to be sure).",
)
@click.pass_obj
def watch(
    obj: Ctx, folder: str, topic: str, interval: float, once: bool, batch_size: int, settle: float
) -> None:
    """Publish every file dropped into FOLDER; move it to done/ or failed/ afterwards.

    Rule for writers: write each file under a temporary name (elsewhere on the same file
    system, or as .name in FOLDER, which is never read) and rename it into FOLDER when it is
    complete. --settle only guesses that a writer is done: a file modified in the last
    --settle seconds is left for a later pass, and one that changes while it is read goes to
    failed/; but a writer that pauses longer than --settle and then goes on gets the part
    written before the pause published and the file moved to done/, where the rest is never
    read."""
    from audit.printable import printable
    from ingest.files import watch_once

    def go() -> None:
        with obj.hub() as h:
            who = authorize(h, "ingest.connector", f"topics/{topic}")
            if h.ingest.parquet is not None:  # the first Parquet file need not wait for it
                h.ingest.parquet.start_early()
            while True:
                with _ledger_followed(h):  # each file's leaves while the next batches are read
                    done = watch_once(
                        h.ingest,
                        Path(folder),
                        topic,
                        batch_size,
                        producer=who.id,
                        tenant=who.tenant,  # the key's own, as the HTTP routes stamp
                        settle_s=settle,
                    )
                if done:
                    h.ledger.sync(force_checkpoint=True)  # on the ledger before we report it
                for name, outcome in done:
                    click.echo(printable(f"{name}: {outcome}"))  # a dropped file's name
                if once:
                    return
                time.sleep(interval)

    run_safely(go)


@main.group()
def connector() -> None:
    """Pull connectors (databases, HTTP APIs)."""


@connector.command("run")
@click.argument("name")
@click.option("--config", "config_file", required=True, type=click.Path(dir_okay=False))
@click.option(
    "--follow",
    is_flag=True,
    help="kind: debezium only: keep consuming change events until interrupted (Ctrl-C).",
)
@click.pass_obj
def connector_run(obj: Ctx, name: str, config_file: str, follow: bool) -> None:
    """Run connector NAME described by a YAML file until its source is exhausted.

    \b
    kind: db        poll a table by a cursor column (ingest/db.py)
    kind: http      page through an HTTP API (ingest/httppull.py); public addresses only
                    unless allow_private_network: true (never link-local or redirects)
    kind: debezium  consume a Debezium change topic (Kafka Connect, infra/connect.sh capture):
                    source_topic: cdc.public.accounts, topic: <hub topic>, optional
                    bootstrap_servers (default HUB_KAFKA_BOOTSTRAP_SERVERS), batch_size, poll_s
    """

    def go() -> None:
        try:
            cfg = load_unique(Path(config_file).read_text(encoding="utf-8"), config_file)
        except (OSError, InvalidInput) as exc:
            raise ConfigError(f"Cannot read connector config {config_file!r}: {exc}") from exc
        if not isinstance(cfg, dict) or cfg.get("kind") not in ("db", "http", "debezium"):
            raise ConfigError(
                f"Connector config {config_file!r} must be a mapping with kind: db, kind: http "
                "or kind: debezium."
            )
        if follow and cfg.get("kind") != "debezium":
            raise ConfigError(
                f"--follow applies to kind: debezium only; {config_file!r} is kind: "
                f"{cfg.get('kind')}, which runs until its source is exhausted."
            )
        with obj.hub() as h:
            who = authorize(h, "ingest.connector", f"connectors/{name}")
            # The config file names the topic: writing it is decided too (a grant of
            # ingest.connector on connectors/x- alone must not open every topic), and the
            # records carry the running key's id and tenant, as every publish does.
            authorize(h, "ingest.connector", f"topics/{cfg.get('topic')}", who)
            stamp = {"producer": who.id, "tenant": who.tenant}
            kind = cfg.pop("kind")
            if kind == "db":
                from ingest.db import DbConnector, DbSourceConfig

                result = DbConnector(h.ingest, DbSourceConfig(name=name, **cfg), **stamp).run()
            elif kind == "http":
                from ingest.httppull import HttpPullConfig, HttpPullConnector

                config = HttpPullConfig(name=name, **cfg)
                pull = HttpPullConnector(h.ingest, config, producer=who.id, tenant=who.tenant)
                result = pull.run()
            else:
                result = _run_debezium(h, name, cfg, follow, stamp)
            click.echo(_summary(name, result.accepted, result.rejected, result.duplicates))

    try:
        run_safely(go)
    except TypeError as exc:  # unknown keys in the YAML
        click.echo(f"error [config_invalid]: connector config {config_file!r}: {exc}", err=True)
        sys.exit(1)


def _run_debezium(
    h: Any, name: str, cfg: dict[str, Any], follow: bool, stamp: dict[str, str]
) -> Any:
    """A Debezium source; with ``follow``, until SIGTERM (after the batch in flight) or Ctrl-C
    (a batch interrupted midway is not committed: it is read again on the next run)."""
    import signal
    import threading

    from ingest.debezium import DebeziumSource, DebeziumSourceConfig
    from ingest.pipeline import IngestResult

    cfg.setdefault("bootstrap_servers", h.settings.kafka_bootstrap_servers)
    if follow:
        cfg["follow"] = True
    config = DebeziumSourceConfig(name=name, **cfg)
    stop = threading.Event()
    seen = IngestResult()

    def batch_done(r: IngestResult) -> None:
        seen.add(r)
        h.ledger.sync()  # each batch on the ledger as it lands, not only when the command ends
        click.echo(_summary(f"{name} batch", r.accepted, r.rejected, r.duplicates))

    source = DebeziumSource(h.ingest, config, stop, batch_done if follow else None, **stamp)
    if not follow:
        return source.run()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    click.echo(
        f"{name}: following {config.source_topic} into {config.topic} (SIGTERM or Ctrl-C stops)"
    )
    try:
        source.run()
    except KeyboardInterrupt:
        stop.set()
    return seen


__all__ = ["HubError", "connector", "publish", "shutil", "watch"]
