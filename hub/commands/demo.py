"""``hub demo load``: load the seeded demo trading day (idempotent) and say where to look."""

from __future__ import annotations

import time

import click

from hub.cli import Ctx, authorize, main, run_safely


@main.group()
def demo() -> None:
    """The demo data set (hub.demo)."""


@demo.command("load")
@click.option("--seed", type=int, default=7, show_default=True)
@click.pass_obj
def demo_load(obj: Ctx, seed: int) -> None:
    """Load one trading day of accounts, quotes, trades and payments (once per data folder)."""
    from hub.demo import load

    def go() -> None:
        with obj.hub() as h:
            authorize(h, "ingest.publish", "demo")
            started = time.perf_counter()
            out = load(h.ingest, seed)
            took = time.perf_counter() - started
            if out.get("already_loaded"):
                click.echo(f"demo (seed {seed}) already loaded ({out['records']} events).")
            else:
                click.echo(f"demo (seed {seed}) loaded in {took:.1f} s:")
                for topic, c in out.items():
                    click.echo(
                        f"  {topic:<10} accepted={c['accepted']} rejected={c['rejected']} "
                        f"duplicates={c['duplicates']}"
                    )
            click.echo(
                "  look at: hub topics | hub tail trades | hub quarantine list | "
                "hub quarantine show 0 | hub rules list"
            )

    run_safely(go)
