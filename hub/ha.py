"""High availability: which hub process runs the single-writer parts (README "High availability").

Several ``hub serve`` processes share one distributed footprint (Kafka cluster + PostgreSQL,
``HUB_LEADER_ELECTION=postgres``). Every process serves reads and publishes; the lease in
PostgreSQL (``core.leadership``) elects the one that runs the single-writer parts, and each of
their writes carries the leader's epoch, which the store checks in the write's own transaction:

How each single-writer part is fenced:
- ledger appender + checkpointer (``Ledger.sync``), PostgreSQL ledger store: its
  ``writer_epochs`` row ``ledger`` is upserted first in each sync batch's transaction;
- projection runners, PostgreSQL views (SQLAlchemy): the ``_writer_epochs`` row
  ``projection.<name>`` in each batch's transaction, and in a rebuild's swap (a rebuild on a
  follower is refused before any work); chDB views are each process's own files, followed by
  EVERY process (a cache derived from the log: one writer by construction, nothing to fence);
- the console's alert engine, the daily report scheduler and the ML retrain scheduler
  (``while_leader``): they run in the leader only, started afresh on each election (each folds
  what the previous leader appended, so a failover neither repeats nor skips an alert or a
  report) and stopped when the lease is lost. Their appends go to the log through the shared
  publisher, which checks no epoch, so each append (an alert, a report, a retrain) runs inside
  the lease's fence of its loop (``Leadership.fenced``, writer ``loop.<part>``), which the new
  leader takes once BEFORE it folds: an old leader's append either committed before that (and
  is folded) or is refused (``Fenced``);
- ML scoring (``hub ml score --follow``), Kafka (predictions and input offsets in one
  transaction): Kafka fences it: the ``transactional.id`` is stable (``<group>.<partition>``), so
  a new scorer's ``init_transactions`` bumps the producer epoch and the old producer is refused.

A follower's publish waits (up to ``Ledger.cover_wait_s``) for the leader's ledger sync to cover
its records before it acknowledges them as covered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, Protocol

from core.errors import ConfigError, HubError
from core.leadership import Fenced, LeaderElector, NotLeader, WriterFence

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
    """Run the leader elector while inside. Projections whose views are in a SHARED store
    (PostgreSQL, fenced) follow the log only while this process is the leader (started when
    elected, stopped when the lease is lost); projections in a PRIVATE store (chDB: this
    process's own files) follow the log in every process, so a follower answers analytics
    queries from its own up-to-date copy. Without leader election (one process) every runner
    simply runs."""
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
    from projections.catalog import PROJECTIONS

    wanted = (names or [p.name for p in PROJECTIONS]) if projections else []
    private = [n for n in wanted if not hub.projections.shared(n)]
    shared = [n for n in wanted if n not in private]

    def elected(epoch: int) -> None:
        if shared:
            hub.projections.start(shared, group="shared")
        log.info("single-writer parts started", extra={"epoch": epoch})
        # the erasures a killed process (any of them: the data folder is shared) left half
        # done, completed by the leader only (``bootstrap.complete_interrupted_erasures``)
        from hub.bootstrap import complete_interrupted_erasures

        complete_interrupted_erasures(hub)

    def lost(epoch: int) -> None:
        if shared:
            hub.projections.stop("shared")
        log.warning("single-writer parts stopped", extra={"epoch": epoch})

    if private:  # a derived cache per process: no leader, no fence
        hub.projections.start(private, group="private")
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
        if private:
            hub.projections.stop("private")


class Loop(Protocol):
    """A background loop that writes events or shared state (alert engine, schedulers)."""

    def stop(self) -> None: ...


Guard = Callable[[], AbstractContextManager[object]]
"""What a leader-only loop runs each append in (the fence of its part, or nothing)."""


def claim(leader: LeaderElector, part: str, epoch: int, retry_s: float = 0.2) -> Guard:
    """Take the fence of the loop ``part`` under ``epoch`` (writer ``loop.<part>``) and return
    the guard its appends run in.

    Called on election BEFORE the loop folds what was appended: an old leader inside an append
    holds the fence, so this waits until that append is in the log (then the fold sees it); an
    old leader that appends later is refused. Waiting too long is retried while this process
    still leads under ``epoch``. The guard refuses at once when this process no longer believes
    it leads under ``epoch`` (``NotLeader``), else enters the lease's fence (``Fenced``)."""
    token = WriterFence(f"loop.{part}", epoch)
    while True:
        try:
            with leader.leadership.fenced(token):
                break
        except Fenced:
            raise
        except HubError as exc:
            if leader.epoch != epoch:
                raise NotLeader(
                    f"This process lost the lease (epoch {epoch}) while it waited for the fence "
                    f"of the {part} loop; the new leader runs it."
                ) from exc
            log.warning("waiting for the fence of a leader-only loop: %s", exc.message)
            time.sleep(retry_s)

    @contextmanager
    def guard() -> Iterator[None]:
        if leader.epoch != epoch:
            raise NotLeader(
                f"The {part} loop did not append: this process no longer leads under epoch "
                f"{epoch} (its lease ran out or another process took it)."
            )
        with leader.leadership.fenced(token):
            yield

    return guard


@contextmanager
def while_leader(hub: Hub, part: str, start: Callable[[Guard], Loop]) -> Iterator[None]:
    """Run a single-writer background loop only while this process is the leader.

    ``start(guard)`` builds the loop afresh and starts it (so it folds what the previous leader
    wrote, e.g. the firing alerts or the reports already made); the loop runs each append
    inside ``guard()`` (``claim``: the fence of this election's epoch). It is stopped when the
    lease is lost and started again on the next election. Without leader election the loop
    runs for the whole block, unguarded. Either way it is stopped on exit."""
    leader = hub.leader
    if leader is None:
        loop = start(nullcontext)
        try:
            yield
        finally:
            loop.stop()
        return
    lock = threading.Lock()
    running: list[Loop] = []

    def elected(epoch: int) -> None:
        with lock:
            if running or not leader.is_leader():
                return
            guard = claim(leader, part, epoch)  # before the loop folds (see ``claim``)
            running.append(start(guard))
        log.info("leader-only loop started", extra={"part": part, "epoch": epoch})

    def lost(epoch: int) -> None:
        with lock:
            if not running:
                return
            loop = running.pop()
        # stopped off the transitions thread: a loop in the middle of a pass (a report being
        # made) finishes it, and must not hold up the next election's transitions meanwhile
        threading.Thread(target=loop.stop, name=f"stop-{part}", daemon=True).start()
        log.info("leader-only loop stopped", extra={"part": part, "epoch": epoch})

    leader.on_elected.append(elected)
    leader.on_lost.append(lost)
    epoch = leader.epoch
    if epoch is not None:  # already leading (the elector started before this block)
        elected(epoch)
    try:
        yield
    finally:
        for callbacks, cb in ((leader.on_elected, elected), (leader.on_lost, lost)):
            if cb in callbacks:
                callbacks.remove(cb)
        with lock:
            last = running.pop() if running else None
        if last is not None:
            last.stop()  # on exit: wait for it


def role(hub: Hub) -> dict[str, Any]:
    """This process's role for ``/health``, ``hub status`` and the ``hub_leader`` metric:
    ``leader`` or ``follower`` under leader election (with the lease's name, this process's id
    and the epoch it leads under), ``single`` without it."""
    leader = hub.leader
    if leader is None:
        return {"role": "single", "lease": None, "holder": None, "epoch": None}
    epoch = leader.epoch
    return {
        "role": "follower" if epoch is None else "leader",
        "lease": leader.leadership.name,
        "holder": leader.leadership.holder,
        "epoch": epoch,
    }
