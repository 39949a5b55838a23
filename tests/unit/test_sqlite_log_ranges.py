"""The embedded log decodes only the records a column read asks for (``batch.decode_columns`` of
``open_batch(..., start, stop)``): the result is the whole batch's decode, sliced, on random
batches (every section layout) and random ranges, and through the log's ``read_columns`` and
``read_encoded`` against ``read``."""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from adapters.sqlite_log import SqliteEventLog
from adapters.sqlite_log.batch import (
    CorruptBatch,
    decode_columns,
    decode_records,
    encode_batch,
    open_batch,
)
from adapters.sqlite_log.columns import join
from core.errors import HubError
from core.ports.eventlog import Headers, Record, RecordColumns


def _bytes_column(rng: random.Random, n: int) -> list[bytes | None]:
    kind = rng.choice(["null", "mixed", "bytes", "empty"])
    if kind == "null":
        return [None] * n
    if kind == "empty":
        return [b""] * n
    out: list[bytes | None] = [rng.randbytes(rng.randrange(0, 40)) for _ in range(n)]
    if kind == "mixed":
        out = [None if rng.random() < 0.3 else v for v in out]
    return out


def _headers(rng: random.Random, n: int) -> list[Headers]:
    kind = rng.choice(["none", "columns", "pairs"])
    if kind == "none":
        return [()] * n
    if kind == "columns":  # the same names on every record: some constant, some varying
        names = [f"h{j}" for j in range(rng.randrange(1, 5))]
        shared = {name: rng.randbytes(8) for name in names if rng.random() < 0.5}
        return [
            tuple((name, shared.get(name) or rng.randbytes(rng.randrange(0, 12))) for name in names)
            for _ in range(n)
        ]
    return [  # records carrying different headers: the pair layout
        tuple((f"p{rng.randrange(4)}", rng.randbytes(rng.randrange(0, 6))) for _ in range(k))
        for k in (rng.randrange(0, 4) for _ in range(n))
    ]


def _timestamps(rng: random.Random, n: int) -> list[int]:
    base = rng.randrange(0, 2**40)
    kind = rng.choice(["uniform", "narrow", "wide"])
    if kind == "uniform":
        return [base] * n
    spread = 2**20 if kind == "narrow" else 2**36
    return [base + rng.randrange(spread) for _ in range(n)]


def _random_batch(rng: random.Random) -> bytes:
    n = rng.randrange(1, 60)
    version = rng.choice([1, 2, 2])
    return encode_batch(
        _bytes_column(rng, n),
        _bytes_column(rng, n),
        _headers(rng, n),
        _timestamps(rng, n),
        version=version,
    )


def _as_tuple(c: RecordColumns) -> tuple[object, ...]:
    return (
        list(c.offsets),
        list(c.timestamps),
        list(c.keys),
        list(c.values),
        [tuple(h) for h in c.header_rows()],
        c.header_names,
    )


def test_a_range_decodes_to_the_whole_batch_sliced() -> None:
    rng = random.Random(13)
    for _ in range(400):
        blob = _random_batch(rng)
        whole = open_batch(blob)
        n, ts, keys, values, headers = decode_records(whole)
        everything = join("t", 0, [(0, decode_columns(whole))])
        assert list(everything.header_rows()) == [tuple(h) for h in headers]
        for _ in range(5):
            a = rng.randrange(n)
            b = rng.randrange(a + 1, n + 1)
            part = decode_columns(open_batch(blob, n, 100, a, b))
            assert part.count == b - a
            got = join("t", 0, [(100 + a, part)])
            assert _as_tuple(got) == (
                list(range(100 + a, 100 + b)),
                list(ts[a:b]),
                keys[a:b],
                values[a:b],
                [tuple(h) for h in headers[a:b]],
                everything.header_names,
            )


def test_a_range_of_a_forged_batch_is_refused_like_the_whole() -> None:
    """A body whose CRC matches but whose value lengths run past its end: every range refuses it,
    not only the ranges that reach the missing bytes."""
    n = 20
    keys: Sequence[bytes | None] = [b"k%d" % i for i in range(n)]
    blob = encode_batch(keys, [None] * n, [()] * n, [7] * n)
    ob = open_batch(blob)
    lens_at = ob.pos  # uniform timestamps: the keys' lengths come first
    body = bytearray(ob.body)
    struct.pack_into("<I", body, lens_at + 4 * (n - 1), 10_000)
    forged = replace(ob, body=bytes(body))
    for a, b in [(0, n), (0, 1), (5, 6), (n - 1, n)]:
        with pytest.raises(CorruptBatch, match="run past the end"):
            decode_columns(replace(forged, start=a, stop=b))
    with pytest.raises(CorruptBatch, match="run past the end"):
        decode_records(forged)


def test_read_columns_of_any_range_returns_what_read_returns(tmp_path: Path) -> None:
    rng = random.Random(7)
    log = SqliteEventLog(tmp_path / "log.db")
    try:
        log.create_topic("t")
        envelope = (("event_type", b"Paid"), ("tenant", b"acme"))
        for size in (1, 300, 57, 1000, 2, 120):
            log.append(
                "t",
                [
                    Record(
                        value=rng.randbytes(rng.randrange(1, 50)),
                        key=rng.choice([None, b"k%d" % i]),
                        headers=(*envelope, ("id", b"%d" % i)),
                    )
                    for i in range(size)
                ],
            )
        end = log.end_offsets("t")[0]
        cases = [(0, 1), (0, end), (end - 1, 5), (299, 3), (300, 1), (301, 60), (1358, 2)]
        cases += [(rng.randrange(end), rng.randrange(1, 700)) for _ in range(60)]
        for offset, limit in cases:
            records = log.read("t", 0, offset, limit)
            want = (
                [r.offset for r in records],
                [r.timestamp_ms for r in records],
                [r.key for r in records],
                [r.value for r in records],
                [tuple(r.headers) for r in records],
            )
            got = log.read_columns("t", 0, offset, limit)
            assert _as_tuple(got)[:5] == want, (offset, limit)
            assert _as_tuple(log.read_encoded("t", 0, offset, limit).columns())[:5] == want
    finally:
        log.close()


def test_a_corrupt_stored_batch_is_named_by_every_read(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "log.db")
    try:
        log.create_topic("t")
        log.append("t", [Record(value=b"v%d" % i) for i in range(10)])
        with log._write("test") as conn:  # flip a byte of the stored batch
            (blob,) = conn.execute("SELECT data FROM batches").fetchone()
            conn.execute("UPDATE batches SET data = ?", (blob[:-1] + bytes([blob[-1] ^ 1]),))
        for read in (log.read, log.read_columns, log.read_encoded):
            with pytest.raises(HubError, match="is corrupt"):
                read("t", 0, 3, 1)
    finally:
        log.close()


def test_without_the_crc_check_a_batch_opens_the_same_and_is_still_checked() -> None:
    """``crc_check=False`` (the handoff's bytes, which never left memory) skips the CRC only:
    the same batch comes out, and a wrong count or a body that does not inflate is still
    refused."""
    rng = random.Random(19)
    for _ in range(200):
        blob = _random_batch(rng)
        whole = open_batch(blob)
        n = whole.count
        assert open_batch(blob, n, 7, crc_check=False) == open_batch(blob, n, 7)
        bad_crc = bytes([blob[0] ^ 0xFF]) + blob[1:]
        with pytest.raises(CorruptBatch, match="CRC mismatch"):
            open_batch(bad_crc, n)
        assert decode_records(open_batch(bad_crc, n, crc_check=False)) == decode_records(whole)
        with pytest.raises(CorruptBatch, match="holds"):
            open_batch(blob, n + 1, crc_check=False)
    n = 300
    blob = encode_batch([b"k"] * n, [b"v" * 50] * n, [()] * n, [7] * n)
    assert blob[18] == 1  # zstd (the codec byte follows the 18-byte header)
    truncated = blob[:-5]
    with pytest.raises(CorruptBatch, match="inflate"):
        open_batch(truncated, n, crc_check=False)
