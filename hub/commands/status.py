"""``hub status``: who runs the single-writer parts (README "High availability").

Without ``--url`` it reads the leader lease from PostgreSQL (``HUB_LEADER_ELECTION=postgres``):
the process holding it, its epoch and how long the lease still runs. With ``--url`` it asks one
served process's ``GET /health`` for its own role (leader, follower, or single without leader
election). Like ``GET /health`` it needs no API key: it shows who leads, nothing else, and it
opens only the lease (no event log, no ledger), so it answers in about a second. Without
``--url`` it also lists the view stores a start found unreadable and set aside
(``views_set_aside``: folder, broken files, reason, time; ``adapters.view_setaside``).
"""

from __future__ import annotations

import json
from typing import Any

import click

from core.errors import InvalidInput
from hub.cli import Ctx, main, run_safely


@main.command("status")
@click.option("--url", default=None, help="A served hub's base URL: show that process's role.")
@click.pass_obj
def status(obj: Ctx, url: str | None) -> None:
    """The leader lease (holder, epoch) or, with --url, one process's role."""

    def go() -> None:
        if url is not None:
            click.echo(json.dumps(_served(url), indent=2))
            return
        from pathlib import Path

        from hub.bootstrap import build_leader, views_set_aside
        from hub.settings import load_settings

        overrides: dict[str, Any] = {"data_dir": Path(obj.data_dir)} if obj.data_dir else {}
        settings = load_settings(obj.config, **overrides)
        leader = build_leader(settings)
        if leader is None:
            out: dict[str, object] = {
                "leader_election": "none",
                "role": "single",
                "detail": "one process runs every single-writer part",
            }
        else:
            try:
                held = leader.leadership.current()
            finally:
                leader.leadership.close()
            out = {
                "leader_election": settings.leader_election,
                "lease": leader.leadership.name,
                "leader": None if held is None else held.holder,
                "epoch": None if held is None else held.epoch,
                "expires_in_s": None if held is None else round(held.expires_in_s, 3),
            }
        # view stores found unreadable at a start and set aside (each folded again from the
        # log by the process that found it; `hub projection status` shows how far)
        out["views_set_aside"] = views_set_aside(settings)
        click.echo(json.dumps(out, indent=2))

    run_safely(go)


def _served(url: str) -> dict[str, object]:
    import httpx

    from hub.logs import redact, redact_url

    shown = redact_url(url)  # a proxy's basic-auth password stays out of the message
    if not url.startswith(("http://", "https://")):
        raise InvalidInput(
            f"--url {shown!r} is not an http(s) URL; give a served hub's base URL, e.g. "
            "http://127.0.0.1:8080."
        )
    try:
        resp = httpx.get(f"{url.rstrip('/')}/health", timeout=5)
        resp.raise_for_status()
        body = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise InvalidInput(
            f"The hub at {shown} did not answer GET /health ({redact(str(exc))}); check the URL "
            "and that it serves."
        ) from exc
    return {"url": shown, **body.get("leader", {"role": "unknown"})}
