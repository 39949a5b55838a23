"""High availability: which hub process runs the single-writer parts (README "High availability").

Several ``hub serve`` processes share one distributed footprint (Kafka cluster + PostgreSQL,
``HUB_LEADER_ELECTION=postgres``). Every process serves reads and publishes; the lease in
PostgreSQL (``core.leadership``) elects the one that runs the single-writer parts, and each of
their writes carries the leader's epoch, which the store checks in the write's own transaction:

How each single-writer part is fenced:
- ledger appender + checkpointer (``Ledger.sync``), PostgreSQL ledger store: its
  ``writer_epochs`` row ``ledger`` is upserted first in each sync batch's transaction;
- projection runners, PostgreSQL views (SQLAlchemy): the ``_writer_epochs`` row
  ``projection.<name>`` in each batch's transaction (chDB views are each process's own files:
  one writer by construction, nothing to fence);
- ML scoring (``hub ml score --follow``), Kafka (predictions and input offsets in one
  transaction): Kafka fences it: the ``transactional.id`` is stable (``<group>.<partition>``), so
  a new scorer's ``init_transactions`` bumps the producer epoch and the old producer is refused.

A follower's publish waits (up to ``Ledger.cover_wait_s``) for the leader's ledger sync to cover
its records before it acknowledges them as covered.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from core.errors import ConfigError

if TYPE_CHECKING:
    from hub.bootstrap import Hub

log = logging.getLogger("hub.ha")


def following(hub: Hub) -> list[str] | None:
    """The projections ``hub serve`` follows (``HUB_PROJECTION_FOLLOW``; None: all)."""
    from projections.catalog import PROJECTIONS

    names = [n for n in hub.settings.projection_follow.split(",") if n]
    known = {p.name for p in PROJECTIONS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            f"HUB_PROJECTION_FOLLOW names unknown projection(s) {', '.join(unknown)}; known: "
            f"{', '.join(sorted(known))}."
        )
    return names or None


@contextmanager
def single_writers(hub: Hub, *, projections: bool = True) -> Iterator[None]:
    """Run the leader elector while inside; the projection runners follow the log only while
    this process is the leader (started when elected, stopped when the lease is lost). Without
    leader election (one process) the runners simply run."""
    leader = hub.leader
    names = following(hub)
    if leader is None:
        if projections:
            hub.projections.start(names)
        try:
            yield
        finally:
            if projections:
                hub.projections.stop()
        return

    def elected(epoch: int) -> None:
        if projections:
            hub.projections.start(names)
        log.info("single-writer parts started", extra={"epoch": epoch})

    def lost(epoch: int) -> None:
        if projections:
            hub.projections.stop()
        log.warning("single-writer parts stopped", extra={"epoch": epoch})

    leader.on_elected.append(elected)
    leader.on_lost.append(lost)
    epoch = leader.epoch
    if epoch is not None:  # taken on demand before the loop ran (a sync while starting up)
        elected(epoch)
    leader.start()
    try:
        yield
    finally:
        leader.stop()  # runs ``lost`` when leading, and releases the lease
