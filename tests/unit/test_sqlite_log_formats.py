"""The embedded log's stored batch formats: a log written by batch format version 1 (the fixture,
made before version 2 existed) stays readable and verifiable, and new appends to it use the
current format beside the old batches."""

from __future__ import annotations

import os
import shutil
import sqlite3
import struct
import zlib
from pathlib import Path

import pytest

from adapters.sqlite_log import SqliteEventLog, batch
from adapters.sqlite_log.batch import CorruptBatch, decode_batch, encode_batch
from core.errors import HubError
from core.partitioner import default_partition
from core.ports.eventlog import Headers, Record
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


def test_appends_to_an_old_log_use_format_2_beside_the_old_batches(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    more = records()["trades"][:50]
    with SqliteEventLog(path, mac_key=KEY) as log:
        end = log.end_offsets("mixed")[0]
        log.append("mixed", [Record(r.value, r.key, r.headers, r.timestamp_ms, 0) for r in more])
        assert log.integrity_problems() == []
        got = log.read("mixed", 0, end, max_records=100)
        assert [(r.key, r.value, tuple(r.headers)) for r in got] == [
            (r.key, r.value, tuple(r.headers)) for r in more
        ]
    assert _versions(path) == {1, 2}


# -- format 2: compression per batch, and what a reader refuses --------------------------------
def _columns(n: int) -> tuple[list[bytes | None], list[bytes | None], list[Headers], list[int]]:
    keys: list[bytes | None] = [b"account-%d" % (i % 9) for i in range(n)]
    values: list[bytes | None] = [b"trade %d at 12.5 USD" % i for i in range(n)]
    hdrs: list[Headers] = [(("ce_id", b"id-%08d" % i), ("ce_type", b"Trade")) for i in range(n)]
    return keys, values, hdrs, [1_700_000_000_000 + i for i in range(n)]


def _reframe(blob: bytes, codec: int, size: int, payload: bytes) -> bytes:
    """A format 2 blob with the given body fields and a correct CRC (a forger can do this)."""
    head = blob[4 : batch._HEAD.size] + batch._BODY.pack(codec, size) + payload
    return struct.pack("<I", zlib.crc32(head)) + head


def test_format_2_compresses_a_batch_and_round_trips() -> None:
    cols = _columns(1000)
    blob = encode_batch(*cols)
    old = encode_batch(*cols, version=1)
    assert blob[4] == 2 and old[4] == 1
    codec, size = batch._BODY.unpack_from(blob, batch._HEAD.size)
    assert codec == batch._CODEC_ZSTD and size == len(old) - batch._HEAD.size
    assert len(blob) < len(old) / 3
    for stored in (blob, old):
        n, ts, keys, values, hdrs = decode_batch(stored)
        assert (n, list(ts), keys, values, [tuple(h) for h in hdrs]) == (1000, cols[3], *cols[:3])


def test_a_body_that_would_not_shrink_is_stored_uncompressed() -> None:
    blob = encode_batch([None], [os.urandom(64)], [()], [5])
    assert batch._BODY.unpack_from(blob, batch._HEAD.size)[0] == batch._CODEC_NONE
    assert decode_batch(blob)[3] == [blob[-64:]]


def test_a_decompression_bomb_is_refused_before_it_inflates() -> None:
    n = 3
    bomb = batch._ZSTD.compress(bytes(64 << 20), asbytes=True)  # 64 MiB of zeros, a few KB
    blob = encode_batch(*_columns(n))
    forged = _reframe(blob, batch._CODEC_ZSTD, 64 << 20, bomb)
    assert batch.inflated_cap(n) == 3 << 20 and len(forged) < 64 << 10
    with pytest.raises(CorruptBatch, match="decompression bomb"):
        decode_batch(forged)
    # Declaring the cap but inflating to more is refused by the fixed-size buffer.
    with pytest.raises(CorruptBatch, match="does not inflate"):
        decode_batch(_reframe(blob, batch._CODEC_ZSTD, batch.inflated_cap(n), bomb))
    # A batch at the overall cap (more records do not raise it).
    assert batch.inflated_cap(10**6) == batch._INFLATED_MAX


@pytest.mark.parametrize(
    ("codec", "delta", "match"),
    [(1, -1, "does not inflate"), (1, 1, "does not inflate"), (7, 0, "unknown compression")],
)
def test_a_body_that_lies_about_its_size_or_codec_is_refused(
    codec: int, delta: int, match: str
) -> None:
    blob = encode_batch(*_columns(50))
    _codec, size = batch._BODY.unpack_from(blob, batch._HEAD.size)
    payload = blob[batch._HEAD.size + batch._BODY.size :]
    with pytest.raises(CorruptBatch, match=match):
        decode_batch(_reframe(blob, codec, size + delta, payload))


def test_an_uncompressed_body_that_lies_about_its_size_is_refused() -> None:
    blob = encode_batch([None], [os.urandom(64)], [()], [5])
    payload = blob[batch._HEAD.size + batch._BODY.size :]
    with pytest.raises(CorruptBatch, match="declares"):
        decode_batch(_reframe(blob, batch._CODEC_NONE, len(payload) + 1, payload))


def test_a_corrupt_compressed_batch_names_its_topic_partition_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    with SqliteEventLog(path) as log:
        log.create_topic("trades", 1)
        log.append("trades", [Record(b"v%d" % i, headers=(("h", b"x"),)) for i in range(100)])
        log.append("trades", [Record(b"w%d" % i, headers=(("h", b"y"),)) for i in range(100)])
    with sqlite3.connect(path) as db:
        bid, blob = db.execute("SELECT id, data FROM batches ORDER BY id DESC LIMIT 1").fetchone()
        bomb = batch._ZSTD.compress(bytes(200 << 20), asbytes=True)
        db.execute(
            "UPDATE batches SET data = ? WHERE id = ?", (_reframe(blob, 1, 200 << 20, bomb), bid)
        )
    with SqliteEventLog(path) as log:
        assert len(log.read("trades", 0, 0, max_records=100)) == 100
        with pytest.raises(HubError, match=r"offset 100 of 'trades' partition 0 .*bomb"):
            log.read("trades", 0, 100)
