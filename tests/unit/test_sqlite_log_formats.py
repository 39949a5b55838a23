"""The embedded log's stored batch formats: a log written by batch format version 1 (the fixture,
made before version 2 existed) stays readable and verifiable, and new appends to it use the
current format beside the old batches."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from adapters.sqlite_log import SqliteEventLog
from core.partitioner import default_partition
from tests.unit.fixtures.sqlite_log_v1.make_fixture import KEY, records

FIXTURE = Path(__file__).parent / "fixtures" / "sqlite_log_v1" / "log.sqlite"


def _copy(tmp_path: Path) -> Path:
    path = tmp_path / "log.sqlite"
    shutil.copyfile(FIXTURE, path)  # opening switches the file to WAL: never open the fixture
    return path


def _versions(path: Path) -> set[int]:
    with sqlite3.connect(path) as db:
        return {blob[4] for (blob,) in db.execute("SELECT data FROM batches")}


def _read_all(log: SqliteEventLog, topic: str) -> dict[int, list[tuple[object, ...]]]:
    out: dict[int, list[tuple[object, ...]]] = {}
    for p, end in log.end_offsets(topic).items():
        rows = log.read(topic, p, 0, max_records=end + 1)
        out[p] = [(r.key, r.value, tuple(r.headers), r.timestamp_ms) for r in rows]
    return out


def _expected(log: SqliteEventLog, topic: str) -> dict[int, list[tuple[object, ...]]]:
    """The fixture's records per partition, routed as the log routes them, in append order
    (offsets are not dense: a multi-partition append leaves a transaction marker's offset)."""
    nparts = log.topic(topic).partitions
    out: dict[int, list[tuple[object, ...]]] = {p: [] for p in range(nparts)}
    for r in records()[topic]:
        p = 0 if r.key is None or nparts == 1 else default_partition(r.key, nparts)
        out[p].append((r.key, r.value, tuple(r.headers), r.timestamp_ms))
    return out


def test_a_log_written_in_format_1_reads_back_every_record(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    assert _versions(path) == {1}
    with SqliteEventLog(path, mac_key=KEY) as log:
        assert log.integrity_problems() == []
        for topic in ("trades", "mixed"):
            assert _read_all(log, topic) == _expected(log, topic)
