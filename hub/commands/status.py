"""``hub status``: who runs the single-writer parts (README "High availability").

Without ``--url`` it reads the leader lease from PostgreSQL (``HUB_LEADER_ELECTION=postgres``):
the process holding it, its epoch and how long the lease still runs. With ``--url`` it asks one
served process's ``GET /health`` for its own role (leader, follower, or single without leader
election). Needs ``metrics.read`` (an operator's view, like ``/metrics``).
"""

from __future__ import annotations

import json

import click

from core.errors import InvalidInput
from hub.cli import Ctx, authorize, main, run_safely


@main.command("status")
@click.option("--url", default=None, help="A served hub's base URL: show that process's role.")
@click.pass_obj
def status(obj: Ctx, url: str | None) -> None:
    """The leader lease (holder, epoch) or, with --url, one process's role."""

    def go() -> None:
        if url is not None:
            click.echo(json.dumps(_served(url), indent=2))
            return
        with obj.hub(install_domain=False) as h:
            authorize(h, "metrics.read", "leader")
            if h.leader is None:
                out: dict[str, object] = {
                    "leader_election": "none",
                    "role": "single",
                    "detail": "one process runs every single-writer part",
                }
            else:
                held = h.leader.leadership.current()
                out = {
                    "leader_election": h.settings.leader_election,
                    "lease": h.leader.leadership.name,
                    "leader": None if held is None else held.holder,
                    "epoch": None if held is None else held.epoch,
                    "expires_in_s": None if held is None else round(held.expires_in_s, 3),
                }
            click.echo(json.dumps(out, indent=2))

    run_safely(go)


def _served(url: str) -> dict[str, object]:
    import httpx

    if not url.startswith(("http://", "https://")):
        raise InvalidInput(
            f"--url {url!r} is not an http(s) URL; give a served hub's base URL, e.g. "
            "http://127.0.0.1:8080."
        )
    try:
        resp = httpx.get(f"{url.rstrip('/')}/health", timeout=5)
        resp.raise_for_status()
        body = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise InvalidInput(
            f"The hub at {url} did not answer GET /health ({exc}); check the URL and that it "
            "serves."
        ) from exc
    return {"url": url, **body.get("leader", {"role": "unknown"})}
