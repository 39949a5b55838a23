"""``hub projection ...`` and ``hub query``: run, inspect, rebuild and query the projections.

These work on the data folder directly (embedded footprint). chDB lets one process open its
folder: while ``hub serve`` runs, use its HTTP API (/v1/projections, /v1/query) instead.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Any

import click

from core.errors import InvalidInput
from core.ports.keyfiles import write_private
from hub.cli import Ctx, authorize, decided, main, run_safely


@main.group()
def projection() -> None:
    """Projections: views folded from the log."""


@projection.command("run")
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every projection.")
@click.option("--follow", "-f", is_flag=True, help="Keep following the log (Ctrl-C stops).")
@click.option(
    "--engine",
    type=click.Choice(["embedded", "flink"]),
    default=None,
    help="The hub's own runner, or Flink jobs (Kafka footprint); default HUB_PROJECTION_ENGINE.",
)
@click.pass_obj
def projection_run(
    obj: Ctx, names: tuple[str, ...], all_: bool, follow: bool, engine: str | None
) -> None:
    """Catch NAMES (or --all) up to the end of the log; with --follow, keep going."""
    from projections.catalog import PROJECTIONS

    def go() -> None:
        chosen = [p.name for p in PROJECTIONS] if all_ else list(names)
        if not chosen:
            raise InvalidInput("Name a projection or pass --all (see `hub projection status`).")
        with obj.hub() as h:
            authorize(h, "projection.rebuild", "projections")
            if (engine or h.settings.projection_engine) == "flink":
                _run_on_flink(h, obj.token() or "", chosen, follow, all_)
                return
            for name, n in h.projections.run(chosen).items():
                click.echo(f"{name}\t{n} events")
            # the embedded twin of Flink's CEP job: the patterns' matches as alert events
            detector = _detector(h)
            if detector is not None:
                click.echo(f"pattern alerts\t{len(detector.step())} raised")
            if follow:
                stop = threading.Event()
                signal.signal(signal.SIGTERM, lambda *_: stop.set())
                h.projections.start(chosen)
                if detector is not None:
                    detector.start()
                try:
                    while not stop.wait(0.5):
                        pass
                except KeyboardInterrupt:
                    pass
                finally:
                    if detector is not None:
                        detector.stop()

    run_safely(go)


def _detector(h: Any) -> Any:
    """The embedded pattern detector (``hub.pattern_alerts``), unless HUB_PATTERN_ALERTS=false."""
    from hub.pattern_alerts import PatternDetector

    return PatternDetector(h) if h.settings.pattern_alerts else None


def _run_on_flink(h: object, token: str, names: list[str], follow: bool, all_: bool) -> None:
    """Bounded Flink jobs to the end offsets now; with ``follow``, unbounded jobs with
    checkpoints, restarted from their newest checkpoint when they die, until Ctrl-C/SIGTERM.
    The ML feature views run with them (``features.<view>``, all of them with ``--all``); their
    vectors are loaded after the bounded job, or after every supervision pass."""
    from hub.flink import flink_projections

    flink = flink_projections(h, token)
    if all_:
        names = [*names, *flink.companions]
    try:
        if not follow:
            for name, done in flink.run(names).items():
                click.echo(json.dumps({name: done}))
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        flink.start(names)
        jobs = ", ".join(flink.jobs)
        click.echo(f"Flink jobs started: {jobs} (Ctrl-C stops them)")
        try:
            while not stop.wait(5.0):
                for name in flink.supervise():
                    click.echo(f"{name}: the job ended; restarted from its newest checkpoint")
                added = flink.fire_alerts()
                if added:
                    click.echo(f"pattern alerts: {len(added)} raised")
                for name, done in flink.load_companions().items():
                    if done.get("read"):
                        click.echo(json.dumps({name: done}))
        except KeyboardInterrupt:
            pass
    finally:
        flink.close()


@projection.command("status")
@click.option(
    "--engine",
    type=click.Choice(["embedded", "flink"]),
    default=None,
    help="Whose positions to show; default HUB_PROJECTION_ENGINE.",
)
@click.pass_obj
def projection_status(obj: Ctx, engine: str | None) -> None:
    """Positions, lag and stored digests of every projection (JSON). On Flink: the consumer
    group's committed offsets (one commit per completed checkpoint) and the views' digests."""

    def go() -> None:
        with obj.hub() as h:
            authorize(h, "projection.read", "projections")
            if (engine or h.settings.projection_engine) == "flink":
                from hub.flink import flink_projections

                flink = flink_projections(h, obj.token() or "")
                try:
                    status = flink.status()
                finally:
                    flink.close()
            else:
                status = h.projections.status()
            click.echo(json.dumps(status, indent=2, default=str))

    run_safely(go)


@projection.command("rebuild")
@click.argument("name")
@click.pass_obj
def projection_rebuild(obj: Ctx, name: str) -> None:
    """Replay NAME into new tables and swap them in; prints the new digests."""

    def go() -> None:
        with obj.hub() as h:
            authorize(h, "projection.rebuild", f"projections/{name}")
            click.echo(json.dumps(h.projections.rebuild(name), indent=2, default=str))

    run_safely(go)


@projection.command("set-aside")
@click.argument("store", type=click.Choice(["analytics", "transactional"]))
@click.option(
    "--lose-rows",
    is_flag=True,
    help="Accept that rows of records retention cut from the log are not folded again.",
)
@click.pass_obj
def projection_set_aside(obj: Ctx, store: str, lose_rows: bool) -> None:
    """Move the embedded view store STORE aside (kept, dated, with a note) so that the next
    start folds it again from the log: the repair of an unreadable store that the hub did not
    move by itself because retention had cut records it was folded from (their rows are then
    lost from the views; restoring the store from a backup keeps them). Acts on the data folder
    as a local operator would with `mv`: run it with the hub stopped."""

    def go() -> None:
        if not lose_rows:
            raise InvalidInput(
                f"Moving the {store} view store aside loses the rows of records retention cut "
                "from the log (the views are folded again from what it still holds). Restore "
                "the store from a backup instead, or pass --lose-rows to accept the loss."
            )
        from hub.bootstrap import set_views_aside

        with obj.hub(install_domain=False, sync=False) as h:
            click.echo(json.dumps(set_views_aside(h.settings, h.log, store), indent=2))

    run_safely(go)


@projection.command("digest")
@click.argument("name")
@click.pass_obj
def projection_digest(obj: Ctx, name: str) -> None:
    """Compute and store the digest of each of NAME's views."""

    def go() -> None:
        with obj.hub() as h:
            authorize(h, "projection.read", f"projections/{name}")
            click.echo(json.dumps(h.projections.digest(name), indent=2))

    run_safely(go)


@projection.command("verify")
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every projection.")
@click.pass_obj
def projection_verify(obj: Ctx, names: tuple[str, ...], all_: bool) -> None:
    """Replay the log up to each view's checkpoint and compare digests (moved positions or
    edited rows); exit 1 on a difference."""

    def go() -> None:
        from projections.catalog import PROJECTIONS

        chosen = [p.name for p in PROJECTIONS] if all_ else list(names)
        if not chosen:
            raise click.UsageError("Name a projection, or give --all.")
        bad = False
        with obj.hub() as h:
            for name in chosen:
                authorize(h, "projection.read", f"projections/{name}")
                result = h.projections.verify(name)
                click.echo(json.dumps(result, indent=2, default=str))
                bad = bad or not result["ok"]
        if bad:
            raise SystemExit(1)

    run_safely(go)


@projection.command("at")
@click.argument("name")
@click.option("--offset", type=int, default=None, help="Every partition up to this offset.")
@click.option("--time", "time_", default=None, help="RFC 3339 time or epoch ms (log time).")
@click.option(
    "--event-time",
    default=None,
    help="RFC 3339 time or epoch ms: events whose own time (executed_at, ...) is at or before.",
)
@click.option("--table", default=None, help="Only this view.")
@click.option("--sql", default=None, help="Run this query (as `hub query`) over that state.")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "json"]), default="csv")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write to FILE.")
@click.pass_obj
def projection_at(
    obj: Ctx,
    name: str,
    offset: int | None,
    time_: str | None,
    event_time: str | None,
    table: str | None,
    sql: str | None,
    fmt: str,
    out: str | None,
) -> None:
    """NAME's views as of a past offset, log time or event time (a bounded replay); with --sql,
    the result of a query over them instead."""
    from domain.envelope import parse_rfc3339

    def go() -> None:
        from projections.service import at_json, point_in_time_us

        time_ms = None
        if time_ is not None:
            try:
                time_ms = (
                    int(time_) if time_.isdigit() else int(parse_rfc3339(time_).timestamp() * 1000)
                )
            except ValueError as exc:
                raise InvalidInput(
                    f"--time {time_!r} is not a time: give RFC 3339 or epoch milliseconds."
                ) from exc
        event_us = None if event_time is None else point_in_time_us(event_time)
        with obj.hub() as h:
            reader = authorize(h, "projection.rebuild", f"projections/{name}")
            if sql is None:
                found = h.projections.at(  # the rows this reader may see, as over HTTP
                    name,
                    offset=offset,
                    time_ms=time_ms,
                    event_time_us=event_us,
                    table=table,
                    reader=(h.policy, reader),
                )
                click.echo(json.dumps(at_json(found), indent=2, default=str))
                return
            principal = authorize(h, "query.run", "query")
            from projections.types import render

            result = h.projections.at_query(
                h.policy,
                principal,
                name,
                sql,
                offset=offset,
                time_ms=time_ms,
                event_time_us=event_us,
            )
            data, _ = render(result, fmt)
            if out:
                write_private(out, data)
            else:
                sys.stdout.buffer.write(data)
                if fmt != "parquet":
                    sys.stdout.buffer.write(b"\n")

    run_safely(go)


@projection.command("sources")
@click.argument("name")
@click.argument("key")
@click.option("--table", default=None)
@click.pass_obj
def projection_sources(obj: Ctx, name: str, key: str, table: str | None) -> None:
    """The events behind one row of NAME (KEY = key values joined by '|'). As over HTTP, it
    needs ``event.read`` too, whose decision masks PII and limits it to the reader's tenant."""
    from ledger.service import tenant_scope_of

    def go() -> None:
        with obj.hub() as h:
            who = authorize(h, "projection.read", f"projections/{name}")
            d = decided(h, "event.read", f"projections/{name}/rows", who)
            found = h.projections.sources(
                name,
                table,
                key,
                mask_pii="pii" in d.mask,
                tenant_scope=tenant_scope_of(d.row_filter),
            )
            click.echo(json.dumps(found, indent=2, default=str))

    run_safely(go)


@main.command("query")
@click.argument("sql")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "json"]), default="csv")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write to FILE.")
@click.option("--store", type=click.Choice(["analytics", "transactional"]), default="analytics")
@click.option(
    "--csv-cells",
    type=click.Choice(["formula-safe", "raw"]),
    default="formula-safe",
    show_default=True,
    help="CSV only: formula-safe prefixes a text cell a spreadsheet would run as a formula "
    "with '; raw writes text as stored (for programs, never for a spreadsheet).",
)
@click.pass_obj
def query(obj: Ctx, sql: str, fmt: str, out: str | None, store: str, csv_cells: str) -> None:
    """Run a read-only SELECT over the projection views (policy-checked; one lineage run of
    ``export.query``, see ``hub.api.routers.projections``)."""
    from hub.api.exports import export_query

    def go() -> None:
        with obj.hub() as h:
            principal = authorize(h, "query.run", "query")
            data, _ = export_query(h, principal, sql, fmt, store, csv_cells=csv_cells)
            if out:
                write_private(out, data)
            else:
                sys.stdout.buffer.write(data)
                if fmt != "parquet":
                    sys.stdout.buffer.write(b"\n")

    run_safely(go)
