"""Red team s20 (HA): a new leader's view batch built on a checkpoint a paused old leader moved.

The interleaving (a real PostgreSQL views store shared by two hub processes): the new leader's
projection runner loads the committed checkpoint when it is elected; the old leader, paused
(SIGSTOP) mid-batch, resumes and commits one more batch under its old epoch before the new
leader's first write stores the newer epoch (nothing refuses it: no newer epoch is stored yet).
The new leader's batch then starts from positions the store no longer holds: it re-applies the
records the old leader's batch folded (entity rows count their source records twice, a
prediction's scorings are counted twice) and moves the stored positions BACK. The fenced write
must refuse a batch whose checkpoint is not the committed one, in its own transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.errors import HubError
from core.leadership import WriterFence
from core.ports.views import Checkpoint, Position, Target
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from projections.catalog import by_name
from projections.runner import ProjectionRunner
from tests import infra
from tests.ha.test_fencing import publish

pytest.importorskip("psycopg")

from adapters.sqlalchemy_views import SqlAlchemyViewStore

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    pg = infra.postgres_url("the HA view-checkpoint red-team test")
    schema = f"s20ha_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(pg)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{pg}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def test_a_new_leaders_batch_on_a_checkpoint_the_old_leader_moved_is_refused(
    pg_schema_url: str,
) -> None:
    proj = by_name("payments")
    target = Target("payments")
    old, new = SqlAlchemyViewStore(pg_schema_url), SqlAlchemyViewStore(pg_schema_url)
    try:
        for s in (old, new):
            s.ensure(target, proj.tables)

        def batch(seq: int, offset: int) -> Checkpoint:
            return Checkpoint(seq, {("payments", 0): Position(offset)})

        old.write(target, proj.tables, {}, batch(1, 10), fence=WriterFence("projection.p", 1))
        loaded = new.checkpoint(target)  # the new leader's runner opens (elected)
        assert loaded.batch_seq == 1
        # the old leader resumes and commits its batch: no newer epoch is stored yet
        old.write(target, proj.tables, {}, batch(2, 20), fence=WriterFence("projection.p", 1))
        # the new leader's first batch, folded from ITS checkpoint (offsets 10..14)
        with pytest.raises(HubError, match="checkpoint") as caught:
            new.write(target, proj.tables, {}, batch(2, 15), fence=WriterFence("projection.p", 2))
        assert caught.value.code == "view_checkpoint_moved"
        after = new.checkpoint(target)
        assert after.batch_seq == 2
        assert after.positions[("payments", 0)].next_offset == 20  # never moved back
        # reloaded, the new leader goes on from what is committed; the old one is fenced now
        new.write(target, proj.tables, {}, batch(3, 25), fence=WriterFence("projection.p", 2))
        assert new.checkpoint(target).positions[("payments", 0)].next_offset == 25
    finally:
        old.close()
        new.close()


def test_an_unfenced_store_keeps_its_single_writer_behaviour(pg_schema_url: str) -> None:
    """One process (no leader election): writes are not compared (one writer by construction)."""
    proj = by_name("payments")
    target = Target("payments")
    store = SqlAlchemyViewStore(pg_schema_url)
    try:
        store.ensure(target, proj.tables)
        store.write(target, proj.tables, {}, Checkpoint(1, {("payments", 0): Position(3)}))
        store.write(target, proj.tables, {}, Checkpoint(2, {("payments", 0): Position(6)}))
        assert store.checkpoint(target).batch_seq == 2
    finally:
        store.close()


def test_a_failover_does_not_count_an_old_leaders_trades_twice_in_positions(
    pg_schema_url: str, tmp_path: Path
) -> None:
    """The same interleaving with real runners of the ``positions`` projection (an entity
    view that SUMS trades): before the fix the new leader's batch added the old leader's last
    trades to the position a second time."""
    h = bootstrap(load_settings(environ={}, data_dir=tmp_path / "d"))
    proj = by_name("positions")
    stores = [SqlAlchemyViewStore(pg_schema_url) for _ in range(2)]
    try:
        old, new = (
            ProjectionRunner(
                proj,
                h.log,
                s,
                h.projections.decoder,
                fence=lambda e=epoch: WriterFence("projection.positions", e),
            )
            for s, epoch in zip(stores, (1, 2), strict=True)
        )
        publish(h, 5, 0)
        old.catch_up()
        new.open()  # elected: loads the committed checkpoint
        publish(h, 5, 100)
        old.catch_up()  # the paused old leader resumes with one more batch (no newer epoch yet)
        try:
            new.catch_up()
        except HubError as exc:  # refused: its checkpoint was not the committed one
            assert exc.code == "view_checkpoint_moved"
            new.catch_up()  # reloaded: nothing left to fold
        (row,) = stores[1].rows(Target("positions"), proj.tables[0])
        assert (Decimal(str(row["quantity"])), row["trades"]) == (Decimal(10), 10)
    finally:
        for s in stores:
            s.close()
        h.close()
