"""The ViewStore contract against chDB (one session path per process: shared by the class)."""

from __future__ import annotations

import time
from decimal import Decimal

import pyarrow as pa
import pytest

from core.errors import HubError
from core.ports.views import Checkpoint, Position, Target
from core.projection import Table
from tests.contract.views_contract import AGG, Boom, ViewStoreContract, volume

pytest.importorskip("chdb")


class TestChdbViews(ViewStoreContract):
    aggregates = True

    @pytest.fixture(scope="class")
    @classmethod
    def _store(cls, tmp_path_factory):
        from adapters.chdb_views import ChdbViewStore

        s = ChdbViewStore(tmp_path_factory.mktemp("chdb"))
        yield s
        s.close()

    @pytest.fixture
    def store(self, _store):
        return _store

    def test_insert_round_trips_every_column_type_and_a_failed_insert_leaves_the_session_usable(
        self, store
    ):
        """``_insert`` streams Arrow IPC bytes: every type the views use comes back unchanged,
        and an insert that chDB rejects raises ``HubError`` with nothing written and the session
        still usable (the streaming insert is cancelled, not left open)."""
        store._run("CREATE DATABASE IF NOT EXISTS hub_views")
        store._run("DROP TABLE IF EXISTS hub_views.t_insert")
        store._run(
            "CREATE TABLE hub_views.t_insert (s String, i Nullable(Int64), "
            "d Decimal(38, 8), ts DateTime64(6, 'UTC'), seq UInt64) "
            "ENGINE = MergeTree ORDER BY s"
        )
        data = pa.table(
            {
                "s": pa.array(["a", "b'\\c"], pa.string()),
                "i": pa.array([None, -(2**62)], pa.int64()),
                "d": pa.array([Decimal("1.00000001"), Decimal("-12345.5")], pa.decimal128(38, 8)),
                "ts": pa.array([1_767_225_600_000_001, 0], pa.timestamp("us", tz="UTC")),
                "seq": pa.array([2**63 + 1, 0], pa.uint64()),
                "unused": pa.array([1, 2], pa.int64()),  # not inserted: only ``columns`` are
            }
        )
        cols = ["s", "i", "d", "ts", "seq"]
        try:
            store._insert("hub_views.t_insert", cols, data)
            got = store._arrow("SELECT s, i, d, ts, seq FROM hub_views.t_insert ORDER BY s")
            assert got.to_pylist() == data.select(cols).to_pylist()

            bad = data.select(cols).set_column(3, "ts", pa.array(["x", "y"], pa.string()))
            with pytest.raises(HubError) as caught:
                store._insert("hub_views.t_insert", cols, bad)
            assert caught.value.code == "views_error"
            with pytest.raises(HubError):
                store._insert("hub_views.no_such_table", cols, data)
            n = store._arrow("SELECT count() AS n FROM hub_views.t_insert")
            assert n.column("n")[0].as_py() == 2
        finally:
            store._run("DROP TABLE IF EXISTS hub_views.t_insert")

    def test_query_filters_tenant_and_masks_pii_in_a_reader_process(self, store, target):
        """The same guarded query with every query answered by a reader process on a snapshot
        (``inline_seconds = 0``): the tenant filter, the masks and the refusals hold there."""
        from adapters.chdb_views import INLINE_SECONDS

        store.inline_seconds = 0.0
        try:
            self.test_query_filters_tenant_and_masks_pii(store, target)
        finally:
            store.inline_seconds = INLINE_SECONDS


# a second aggregate table with AGG's columns: the two share one physical table (as the bars'
# three window sizes do)
AGG_2 = Table("ct_volumes_2", "aggregate", AGG.columns)


def _inserts(store, monkeypatch) -> list[str]:
    """The tables ``store`` inserts into from now on (the inserts still run)."""
    done: list[str] = []
    real = store._insert

    def counted(table, columns, data):
        done.append(table)
        real(table, columns, data)

    monkeypatch.setattr(store, "_insert", counted)
    return done


def _own_tables(store, target) -> list[tuple[str, str]]:
    got = store._arrow(
        "SELECT name, engine FROM system.tables WHERE database = 'hub_views' "
        f"AND name LIKE '%__{target.suffix}%' ORDER BY name"
    )
    return [(r["name"], r["engine"]) for r in got.to_pylist()]


class TestChdbSharedLayout:
    """The shared physical table of aggregate tables with the same columns (chDB)."""

    @pytest.fixture(scope="class")
    @classmethod
    def _store(cls, tmp_path_factory):
        from adapters.chdb_views import ChdbViewStore

        s = ChdbViewStore(tmp_path_factory.mktemp("chdb_shared"))
        yield s
        s.close()

    def test_tables_with_the_same_columns_are_written_in_one_insert_and_read_apart(
        self, _store, monkeypatch
    ):
        """A batch of two aggregate tables with the same columns makes ONE insert, rows and
        positions (the commit point) together; each view reads its own rows only, a retention
        cut of one leaves the other's, and dropping one keeps the other readable."""
        from adapters.clickhouse_views import shared_table

        store, target = _store, Target("ctshare", "shr")
        store.drop(target, (AGG, AGG_2))
        store.ensure(target, (AGG, AGG_2))
        done = _inserts(store, monkeypatch)
        cp = Checkpoint(1, {("p", 0): Position(12), ("p", 1): Position(3, -5)})
        store.write(
            target,
            (AGG, AGG_2),
            {
                "ct_volumes": [volume(0, 2, 0)],
                "ct_volumes_2": [volume(0, 3, 2), volume(86_400_000_000, 7, 5)],
            },
            cp,
        )
        assert done == [shared_table(target, AGG)]
        assert store.checkpoint(target) == cp
        assert shared_table(target, AGG) == shared_table(target, AGG_2)
        assert [(r["day"], r["events"]) for r in store.rows(target, AGG)] == [(0, 2)]
        assert [(r["day"], r["events"]) for r in store.rows(target, AGG_2)] == [
            (0, 3),
            (86_400_000_000, 7),
        ]
        # the cut of day 0 in AGG_2 removes AGG_2's day 0 only, not AGG's
        assert store.delete_rows_before(target, AGG_2, "day", 1) == 1
        assert [r["events"] for r in store.rows(target, AGG)] == [2]
        assert [r["events"] for r in store.rows(target, AGG_2)] == [7]

        # rows and positions are one INSERT: one that chDB refuses (a String where the shared
        # table wants a number) leaves neither
        real = store._insert

        def corrupt(table, columns, data):
            i = data.column_names.index("src_first")
            bad = pa.array(["x"] * data.num_rows, pa.string())
            real(table, columns, data.set_column(i, "src_first", bad))

        monkeypatch.setattr(store, "_insert", corrupt)
        with pytest.raises(HubError):
            store.write(
                target,
                (AGG, AGG_2),
                {"ct_volumes": [volume(0, 5, 12)], "ct_volumes_2": [volume(0, 1, 12)]},
                Checkpoint(2, {("p", 0): Position(17)}),
            )
        monkeypatch.setattr(store, "_insert", real)
        assert store.recover(target, (AGG, AGG_2)) == 0
        assert store.checkpoint(target) == cp
        assert [r["events"] for r in store.rows(target, AGG)] == [2]

        # a crash once the rows' hook fired: the batch is committed with them (nothing to undo)
        def crash(step: str) -> None:
            if step == "rows:ct_volumes_2":
                raise Boom(step)

        later = Checkpoint(2, {("p", 0): Position(17), ("p", 1): Position(3, 9)})
        with pytest.raises(Boom):
            store.write(
                target,
                (AGG, AGG_2),
                {"ct_volumes": [volume(0, 5, 12)], "ct_volumes_2": [volume(0, 1, 12)]},
                later,
                hook=crash,
            )
        assert store.recover(target, (AGG, AGG_2)) == 0
        assert store.checkpoint(target) == later
        assert [r["events"] for r in store.rows(target, AGG)] == [7]
        assert [r["events"] for r in store.rows(target, AGG_2)] == [1, 7]
        store.drop(target, (AGG,))
        assert [r["events"] for r in store.rows(target, AGG_2)] == [1, 7]
        store.drop(target, (AGG_2,))
        assert _own_tables(store, target) == []

    def test_positions_of_an_older_store_are_read_and_old_position_rows_are_pruned(
        self, _store, monkeypatch
    ):
        """A store upgraded from positions in ``_projection_offsets`` (and a shared table without
        the watermark column) starts from them; later batches commit in the shared table, whose
        older position rows are deleted every PRUNE_EVERY batches, the checkpoint unchanged.
        ``drop`` of one table forgets the positions, as it did in ``_projection_offsets``."""
        import adapters.clickhouse_views as cv

        store, target = _store, Target("ctprune", "pr")
        store.drop(target, (AGG, AGG_2))
        store.ensure(target, (AGG, AGG_2))
        shared = cv.shared_table(target, AGG)
        # the layout before this change: no watermark column, positions in _projection_offsets
        store._run(f"ALTER TABLE {shared} DROP COLUMN {cv.POS_WATERMARK}")
        old = Checkpoint(4, {("p", 0): Position(12, 77)})
        store._write_positions(target, old)
        assert store.checkpoint(target) == old  # read before ensure added the column
        store.ensure(target, (AGG, AGG_2))
        assert store.recover(target, (AGG, AGG_2)) == 0
        assert store.checkpoint(target) == old
        assert store.rows(target, AGG) == []

        monkeypatch.setattr(cv, "PRUNE_EVERY", 4)
        for seq in range(5, 14):
            cp = Checkpoint(seq, {("p", 0): Position(12 + seq, 100 + seq), ("p", 1): Position(1)})
            store.write(target, (AGG, AGG_2), {"ct_volumes": [volume(0, 1, 12 + seq)]}, cp)
            assert store.checkpoint(target) == cp
        assert [r["events"] for r in store.rows(target, AGG)] == [9]

        def position_rows() -> list[int]:
            got = store._arrow(
                f"SELECT batch_seq FROM {shared} WHERE view_table = '#positions' ORDER BY 1"
            )
            return sorted(set(got.column("batch_seq").to_pylist()))

        deadline = time.monotonic() + 20  # the prune is not waited for
        while position_rows() != [12, 13] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert position_rows() == [12, 13]
        assert store.checkpoint(target) == cp
        store.drop(target, (AGG_2,))
        assert store.checkpoint(target) == Checkpoint()
        assert [r["events"] for r in store.rows(target, AGG)] == [9]
        store.drop(target, (AGG,))

    def test_ensure_moves_an_old_layout_table_into_the_shared_one_even_after_a_crash(self, _store):
        """A store written before the shared layout (a MergeTree ``T__p`` per aggregate table)
        reads the same after ``ensure``: the rows move into the shared table and the old table
        goes. A move cut by a crash after the copy (rows in both) counts each row once when
        rerun."""
        from adapters.clickhouse_views import physical_columns, view_sql

        store, target = _store, Target("ctold", "old")
        store.drop(target, (AGG, AGG_2))
        cols = [n for n, _, _ in physical_columns(AGG)]

        def old_layout(t: Table, rows: list) -> None:
            store._run("CREATE DATABASE IF NOT EXISTS hub_views")
            spec = ", ".join(f"{n} {ty}" for n, ty, _ in physical_columns(t))
            phys = f"hub_views.{target.table(t.name)}__p"
            kind = "VIEW" if store._engine(f"{target.table(t.name)}__p") == "View" else "TABLE"
            store._run(f"DROP {kind} IF EXISTS {phys}")
            store._run(f"CREATE TABLE {phys} ({spec}) ENGINE = MergeTree ORDER BY (tenant, day)")
            store._run(f"DROP VIEW IF EXISTS hub_views.{target.table(t.name)}")
            store._run(f"CREATE VIEW hub_views.{target.table(t.name)} AS {view_sql(t, phys)}")
            from adapters.clickhouse_views import rows_to_arrow

            store._insert(phys, cols, rows_to_arrow(t, rows, 1))

        old_layout(AGG, [volume(0, 2, 0), volume(86_400_000_000, 4, 2)])
        old_layout(AGG_2, [volume(0, 3, 6)])
        before = [store.rows(target, AGG), store.rows(target, AGG_2)]
        store.ensure(target, (AGG, AGG_2))
        assert [store.rows(target, AGG), store.rows(target, AGG_2)] == before
        # one table (the shared one) and the views T and T__p of each table: the old tables went
        assert sorted(e for _, e in _own_tables(store, target)) == ["MergeTree"] + ["View"] * 4
        # a crash after the copy, before the old table went: both hold AGG's rows
        old_layout(AGG, [volume(0, 2, 0), volume(86_400_000_000, 4, 2)])
        store.ensure(target, (AGG, AGG_2))
        assert [store.rows(target, AGG), store.rows(target, AGG_2)] == before
        store.ensure(target, (AGG, AGG_2))  # nothing left to move
        assert [store.rows(target, AGG), store.rows(target, AGG_2)] == before
        store.drop(target, (AGG, AGG_2))
        assert _own_tables(store, target) == []
