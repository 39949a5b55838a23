"""Analytics views from Flink's result topics, loaded into the hub's chDB, equal the embedded
runner's views byte for byte (``projections.flink.results``).

The session's one Flink job (``tests/differential/conftest.py``) writes the partial rows of every
analytics table (market bars, positions, latest quotes, payment aggregates) to ``flink.<table>``
with the upsert-kafka connector; ``ResultLoader`` folds the topics into the analytics store under
``Target(<projection>, "flink")``.
"""

from __future__ import annotations

import pytest

from projections.catalog import PROJECTIONS
from projections.flink.results import ResultLoader
from tests.differential.conftest import ROW_KEY, FlinkSession

# the first test to ask for the session's Flink run waits for it: minutes on a busy machine
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def test_result_topics_loaded_into_chdb_equal_the_embedded_views(
    flink_session: FlinkSession,
) -> None:
    print(f"\nloading the result topics into chDB: {flink_session.load_seconds:.1f} s")
    assert set(flink_session.chdb) == {"payment_aggregates", "market_bars", "positions", "quotes"}
    for name, digests in flink_session.chdb.items():
        embedded = flink_session.embedded[name]
        for table, got in digests.items():
            assert got == embedded[table], (name, table)
            assert got["rows"] > 0


def test_loading_again_changes_nothing(flink_session: FlinkSession) -> None:
    """The loader resumes from the positions committed with the views: a loader new to the
    process finds nothing past them, writes nothing, and the views stay as they were."""
    hub = flink_session.views.hub
    loader = ResultLoader(hub.log, hub.projections.store("analytics"), row_key=ROW_KEY)
    p = next(p for p in PROJECTIONS if p.name == "market_bars")
    tables = [p.table(n) for n in flink_session.chdb["market_bars"]]
    assert loader.load(p, tables) == {t.name: 0 for t in tables}
    assert loader.read_records == 0
    assert {t.name: loader.digest(p, t) for t in tables} == flink_session.chdb["market_bars"]
