"""The ViewStore contract against chDB (one session path per process: shared by the class)."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pytest

from core.errors import HubError
from tests.contract.views_contract import ViewStoreContract

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
