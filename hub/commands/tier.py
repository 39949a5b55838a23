"""``hub tier offload|status``: the cold tier of the event log (``storage.tiering``).

``offload`` copies every closed segment (``HUB_TIER_SEGMENT_RECORDS`` offsets, all on the
ledger) of the domain topics (or ``--topic``) to the object store; with ``--trim-hot`` it then
raises each partition's hot beginning offset to the end of what the cold tier holds and records
that cut on the ledger (``retention.delete`` with ``"tier": "cold"``), so ``hub ledger verify``
still passes. Reads below the hot beginning are served from the cold tier when
``HUB_COLD_TIER=true``. Needs ``retention.write`` (offload, trim) or ``topic.read`` (status).
"""

from __future__ import annotations

import json
from typing import Any

import click

from hub.cli import Ctx, authorize, authorize_hub_wide, main, run_safely


def _tier(h: Any) -> Any:
    from hub.tiering import cold_tier

    return cold_tier(h)


def _topics(h: Any, topic: str | None) -> list[str]:
    from hub.tiering import tier_topics

    return tier_topics(h, topic)


@main.group()
def tier() -> None:
    """The cold tier: closed log segments in the object store, read past the hot log."""


@tier.command("offload")
@click.option("--topic", default=None, help="Only this topic (default: every domain topic).")
@click.option("--trim-hot", is_flag=True, help="Then cut the hot log at the cold tier's end.")
@click.pass_obj
def tier_offload(obj: Ctx, topic: str | None, trim_hot: bool) -> None:
    """Offload closed segments to the object store (and, with --trim-hot, drop them from hot)."""

    def go() -> None:
        with obj.hub() as h:
            from hub.tiering import offload

            principal = authorize(h, "retention.write", f"topic:{topic or '*'}")
            authorize_hub_wide(h, "retention.write", "retention", principal)  # every tenant's
            out = offload(h, principal, topic, trim_hot)
            click.echo(json.dumps(out, indent=2))

    run_safely(go)


@tier.command("status")
@click.option("--topic", default=None, help="Only this topic.")
@click.pass_obj
def tier_status(obj: Ctx, topic: str | None) -> None:
    """Per partition: the cold tier's range and segments, and the hot log's range."""

    def go() -> None:
        with obj.hub(install_domain=False) as h:
            authorize(h, "topic.read", f"topic:{topic or '*'}")
            cold, hot = _tier(h), h.ledger.log
            out = []
            for name in _topics(h, topic):
                starts, ends = hot.beginning_offsets(name), hot.end_offsets(name)
                for part in sorted(ends):
                    segs = cold.segments(name, part)
                    out.append(
                        {
                            "topic": name,
                            "partition": part,
                            "cold": cold.cold_range(name, part),
                            "cold_segments": len(segs),
                            "cold_bytes": sum(s.bytes for s in segs),
                            "hot": [starts.get(part, 0), ends[part]],
                        }
                    )
            click.echo(json.dumps(out, indent=2))

    run_safely(go)
