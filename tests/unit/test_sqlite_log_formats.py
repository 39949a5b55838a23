"""The embedded log's stored batch formats: a log written by batch format version 1 (the fixture,
made before version 2 existed) stays readable and verifiable, and new appends to it use the
current format beside the old batches."""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    layout = batch._BODY.unpack_from(blob, batch._HEAD.size)[1]
    head = blob[4 : batch._HEAD.size] + batch._BODY.pack(codec, layout, size) + payload
    return struct.pack("<I", zlib.crc32(head)) + head


def test_format_2_compresses_a_batch_and_round_trips() -> None:
    cols = _columns(1000)
    blob = encode_batch(*cols)
    old = encode_batch(*cols, version=1)
    assert blob[4] == 2 and old[4] == 1
    codec, layout, _size = batch._BODY.unpack_from(blob, batch._HEAD.size)
    assert codec == batch._CODEC_ZSTD and layout == batch._HEADER_COLUMNS
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
    _codec, _layout, size = batch._BODY.unpack_from(blob, batch._HEAD.size)
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


# -- format 2's header columns ------------------------------------------------------------------
NAMES = st.lists(st.text(max_size=6), min_size=1, max_size=5)


@settings(max_examples=60, deadline=None)
@given(NAMES, st.integers(1, 40), st.data())
def test_uniform_headers_are_stored_as_columns_and_round_trip(
    names: list[str], n: int, data: st.DataObject
) -> None:
    """Every record with the same names in the same order (repeated names allowed): columns,
    constant ones stored once; formats 1 and 2 decode to the same records."""
    constant = [data.draw(st.booleans()) for _ in names]
    one = [data.draw(st.binary(max_size=6)) for _ in names]
    hdrs: list[Headers] = [
        tuple(
            (name, one[j] if constant[j] else data.draw(st.binary(max_size=6)))
            for j, name in enumerate(names)
        )
        for _ in range(n)
    ]
    keys, values, _h, stamps = _columns(n)
    blob = encode_batch(keys, values, hdrs, stamps)
    assert batch._BODY.unpack_from(blob, batch._HEAD.size)[1] == batch._HEADER_COLUMNS
    for stored in (blob, encode_batch(keys, values, hdrs, stamps, version=1)):
        got = decode_batch(stored)[4]
        assert [tuple(h) for h in got] == hdrs


@pytest.mark.parametrize(
    "hdrs",
    [
        [(("a", b"1"),), (("a", b"1"), ("b", b"2"))],  # different counts
        [(("a", b"1"), ("b", b"2")), (("b", b"2"), ("a", b"1"))],  # different order
        [[("a", b"1")], [("a", b"2")]],  # records as lists: left to the pair layout
    ],
)
def test_other_header_shapes_use_the_pair_layout(hdrs: list[Headers]) -> None:
    blob = encode_batch([None] * 2, [b"v"] * 2, hdrs, [1, 2])
    assert batch._BODY.unpack_from(blob, batch._HEAD.size)[1] == batch._HEADER_PAIRS
    assert [tuple(map(tuple, h)) for h in decode_batch(blob)[4]] == [
        tuple(map(tuple, h)) for h in hdrs
    ]


@pytest.mark.parametrize(
    "hdrs",
    [[(("a", "text"),)] * 2, [((b"a", b"1"),)] * 2, [(("a", b"1", b"x"),)] * 2],
)
def test_malformed_uniform_headers_are_refused_as_before(hdrs: list[Headers]) -> None:
    with pytest.raises(batch.InvalidBatch):
        encode_batch([None] * 2, [b"v"] * 2, hdrs, [1, 2])


def test_corrupted_header_columns_raise_a_parse_error_never_short_records() -> None:
    rng = random.Random(7)
    n = 30
    hdrs: list[Headers] = [
        (("ce_id", b"%d" % i), ("t", b"same"), ("é", b"x" * (i % 3))) for i in range(n)
    ]
    parts: list[bytes] = []
    assert batch._encode_header_columns(hdrs, n, parts)
    section = b"".join(parts)
    assert batch._decode_header_columns_py(section, 0, n) == hdrs
    outcomes = set()
    for _ in range(400):
        bad = bytearray(section)
        if rng.random() < 0.5:
            bad[rng.randrange(len(bad))] ^= 1 << rng.randrange(8)
        else:
            del bad[rng.randrange(len(bad)) :]
        try:
            got = batch._decode_header_columns_py(bytes(bad), 0, n)
        except (CorruptBatch, struct.error, ValueError, IndexError):
            outcomes.add("raised")
        else:
            assert len(got) == n and all(len(h) == 3 for h in got)
            outcomes.add("parsed")
    assert outcomes == {"raised", "parsed"}


def test_a_batch_whose_record_count_disagrees_with_its_row_is_refused(tmp_path: Path) -> None:
    """A forged count (CRC recomputed) must not make a plain read allocate for 10**9 records."""
    path = tmp_path / "log.sqlite"
    with SqliteEventLog(path) as log:
        log.create_topic("t", 1)
        log.append("t", [Record(b"v", headers=(("h", b"x"),)) for _ in range(10)])
    with sqlite3.connect(path) as db:
        bid, blob = db.execute("SELECT id, data FROM batches").fetchone()
        _crc, version, flags, _n, base = batch._HEAD.unpack_from(blob)
        head = batch._HEAD.pack(0, version, flags, 10**9, base)[4:] + blob[batch._HEAD.size :]
        forged = struct.pack("<I", zlib.crc32(head)) + head
        db.execute("UPDATE batches SET data = ? WHERE id = ?", (forged, bid))
    with SqliteEventLog(path) as log, pytest.raises(HubError, match="holds 1000000000 records"):
        log.read("t", 0, 0)
