"""Analytics views from Flink's result topics, loaded into the hub's chDB, equal the embedded
runner's views byte for byte (``projections.flink.results``).

The session's one Flink job (``tests/differential/conftest.py``) writes the partial rows of every
analytics table (market bars, positions, latest quotes, payment aggregates) to ``flink.<table>``
with the upsert-kafka connector; ``ResultLoader`` folds the topics into the analytics store under
``Target(<projection>, "flink")``.
"""

from __future__ import annotations

import json

import pytest

from projections.catalog import PROJECTIONS
from projections.flink.compile import result_topic
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


def test_the_job_writes_no_tombstone_and_no_row_older_than_its_key(
    flink_session: FlinkSession,
) -> None:
    """What the loader's delete and version rules rest on (``projections.flink.results``): the
    job's result queries emit upserts only (a tombstone needs the hub's signature, and the job
    has no way to sign one), and a key's ``src_last`` never goes down while the job runs. So a
    read of the hub's own job's topics refuses nothing, finds no row stale and ignores no
    tombstone."""
    hub = flink_session.views.hub
    loader = ResultLoader(hub.log, hub.projections.store("analytics"), row_key=ROW_KEY)
    p = {p.name: p for p in PROJECTIONS}
    rows = 0
    for name, digests in flink_session.chdb.items():
        for table in digests:
            loader._read(p[name].table(table), None, lambda k: None)  # a full read: no write
            assert (loader.refused, loader.stale, loader.ignored_tombstones) == (0, 0, 0)
            topic = result_topic(p[name].table(table))
            last: dict[bytes | None, int] = {}
            for partition, end in hub.log.end_offsets(topic).items():
                offset = 0
                while offset < end:
                    records = hub.log.read(topic, partition, offset, 5000)
                    if not records:
                        break
                    for r in records:
                        assert r.value is not None, (topic, r.offset)
                        version = json.loads(r.value).get("src_last", -1)
                        assert version >= last.get(r.key, -1), (topic, r.offset, r.key)
                        last[r.key] = version
                        rows += 1
                    offset = records[-1].offset + 1
    assert rows > 0
