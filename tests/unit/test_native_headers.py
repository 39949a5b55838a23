"""The native header-section encoder (hub_native.encode_headers, native/src/headers.rs) gives the
pure-Python reference's bytes and flags on random batches, and leaves every malformed or
over-limit batch to the reference, so errors are the reference's own."""

from __future__ import annotations

import contextlib
import random
import struct
from pathlib import Path
from typing import Any

import pytest

from adapters.sqlite_log import batch
from core.errors import InvalidInput
from tests.unit.native_module import native_module

native = native_module()

NAMES = ["ce_id", "ce_type", "ce_time", "hub-natural-key", "é-name", "x" * 300, ""]


def _random_batch(rng: random.Random, n: int, distinct: int) -> list[tuple[tuple[str, bytes], ...]]:
    values = [rng.randbytes(rng.randrange(0, 40)) for _ in range(distinct)]
    return [
        tuple((rng.choice(NAMES), rng.choice(values)) for _ in range(rng.randrange(0, 14)))
        for _ in range(n)
    ]


def _both(headers: list[Any]) -> tuple[tuple[list[bytes], int], tuple[list[bytes], int]]:
    fast: list[bytes] = []
    ref: list[bytes] = []
    flags_fast = batch._encode_headers(headers, fast)
    flags_ref = batch._encode_headers_py(headers, ref)
    return (fast, flags_fast), (ref, flags_ref)


def test_native_is_used_when_built() -> None:
    assert batch.native_headers is native.encode_headers


@pytest.mark.parametrize("seed", range(40))
def test_random_batches_are_byte_identical(seed: int) -> None:
    rng = random.Random(seed)
    headers = _random_batch(rng, rng.randrange(1, 400), rng.randrange(1, 300))
    (fast, ff), (ref, fr) = _both(headers)
    assert b"".join(fast) == b"".join(ref) and ff == fr
    assert native.encode_headers(headers) is not None  # the plain case is native


def test_wide_pair_indices_are_byte_identical() -> None:
    headers = [(("ce_id", i.to_bytes(4, "big")), ("ce_type", b"t")) for i in range(70_000)]
    (fast, ff), (ref, fr) = _both(headers)
    assert ff & batch._WIDE_PAIRS and b"".join(fast) == b"".join(ref) and ff == fr


def test_lists_of_records_and_list_pairs_match_the_reference() -> None:
    headers = [[("a", b"1"), ("b", b"2")], (["a", b"1"],)]  # list pairs: the reference decides
    assert native.encode_headers(headers) is None
    (fast, ff), (ref, fr) = _both(headers)
    assert b"".join(fast) == b"".join(ref) and ff == fr


@pytest.mark.parametrize(
    "headers",
    [
        [(("a", "not bytes"),)],
        [((b"name", b"v"),)],
        [(("a", b"v", b"extra"),)],
        [(("a",),)],
        [("a",)],
    ],
)
def test_malformed_pairs_are_left_to_the_reference(headers: list[Any]) -> None:
    assert native.encode_headers(headers) is None
    with pytest.raises(batch.InvalidBatch):
        batch._encode_headers(headers, [])


def test_a_name_that_is_not_unicode_gets_the_reference_error() -> None:
    headers = [(("bad\udc80", b"v"),)]
    assert native.encode_headers(headers) is None
    with pytest.raises(InvalidInput, match="not valid Unicode"):
        batch._encode_headers(headers, [])


def test_over_limit_batches_get_the_reference_error() -> None:
    headers = [tuple(("a", b"v") for _ in range(0x10000))]
    assert native.encode_headers(headers) is None
    with pytest.raises(InvalidInput, match="at most 65535 headers per record"):
        batch._encode_headers(headers, [])


# -- decoding: hub_native.decode_headers against batch._decode_headers_py --------------------------
def _section(headers: list[Any]) -> tuple[bytes, bool]:
    parts: list[bytes] = []
    flags = batch._encode_headers_py(headers, parts)
    return b"".join(parts), bool(flags & batch._WIDE_PAIRS)


def _decoded(fn: Any, body: bytes, pos: int, n: int, wide: bool) -> object:
    """What ``fn`` returns, or the fact that it raised (the two must agree on both)."""
    try:
        return fn(body, pos, n, wide)
    except (batch.CorruptBatch, struct.error, ValueError, IndexError):
        return "raised"


def test_the_native_decoder_is_used_when_built() -> None:
    assert batch.native_decode_headers is native.decode_headers


@pytest.mark.parametrize("seed", range(30))
def test_random_sections_decode_to_the_references_records(seed: int) -> None:
    rng = random.Random(seed)
    headers = [h for h in _random_batch(rng, rng.randrange(1, 300), rng.randrange(1, 200))]
    if not any(headers):
        headers[0] = (("a", b"b"),)
    body, wide = _section(headers)
    prefix = rng.randbytes(rng.randrange(0, 9))  # the section need not start the body
    got = native.decode_headers(prefix + body, len(prefix), len(headers), wide)
    assert got == batch._decode_headers_py(prefix + body, len(prefix), len(headers), wide)
    assert got == [tuple(h) for h in headers]
    # Each distinct pair is one shared tuple, as in the reference (records share envelopes).
    flat = [pair for record in got for pair in record]
    assert len({id(p) for p in flat}) == len(set(flat))


def test_wide_pair_indices_decode_alike() -> None:
    headers = [(("ce_id", i.to_bytes(4, "big")), ("ce_type", b"t")) for i in range(70_000)]
    body, wide = _section(headers)
    assert wide
    assert native.decode_headers(body, 0, len(headers), wide) == headers


@pytest.mark.parametrize("seed", range(12))
def test_corrupted_sections_raise_where_the_reference_raises(seed: int) -> None:
    """Flipped bytes, truncations and wrong counts: both decoders raise, or both return the same
    records (a flipped value byte still parses); neither reads past the end of the body."""
    rng = random.Random(1000 + seed)
    headers = _random_batch(rng, rng.randrange(1, 60), rng.randrange(1, 40))
    headers[0] = headers[0] or (("a", b"b"),)
    body, wide = _section(headers)
    n = len(headers)
    for _ in range(60):
        bad = bytearray(body)
        kind = rng.randrange(3)
        if kind == 0:
            at = rng.randrange(len(bad))
            bad[at] ^= 1 << rng.randrange(8)
        elif kind == 1:
            del bad[rng.randrange(len(bad)) :]
        cut = bytes(bad)
        count = n if kind != 2 else rng.choice([0, 1, n - 1, n + 1, n * 3])
        ref = _decoded(batch._decode_headers_py, cut, 0, count, wide)
        assert _decoded(native.decode_headers, cut, 0, count, wide) == ref


# -- format 2's header columns: hub_native.decode_header_columns against the reference -------------
def _column_section(rng: random.Random, n: int) -> tuple[bytes, list[Any]]:
    names = [rng.choice(NAMES) for _ in range(rng.randrange(1, 12))]
    constant = [rng.random() < 0.5 for _ in names]
    shared = [rng.randbytes(rng.randrange(0, 30)) for _ in names]
    headers = [
        tuple(
            (name, shared[j] if constant[j] else rng.randbytes(rng.randrange(0, 30)))
            for j, name in enumerate(names)
        )
        for _ in range(n)
    ]
    parts: list[bytes] = []
    assert batch._encode_header_columns_py(headers, n, parts)
    return b"".join(parts), headers


def test_the_native_column_decoder_is_used_when_built() -> None:
    assert batch.native_decode_header_columns is native.decode_header_columns


@pytest.mark.parametrize("seed", range(20))
def test_random_column_sections_decode_to_the_references_records(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randrange(1, 300)
    body, headers = _column_section(rng, n)
    prefix = rng.randbytes(rng.randrange(0, 9))
    got = native.decode_header_columns(prefix + body, len(prefix), n)
    assert got == batch._decode_header_columns_py(prefix + body, len(prefix), n) == headers
    # A constant header (the encoder stores a column whose values are all equal once) is one
    # tuple shared by every record, as in the reference.
    for j in range(len(headers[0])):
        if len({h[j] for h in headers}) == 1:
            assert len({id(record[j]) for record in got}) == 1


@pytest.mark.parametrize("seed", range(12))
def test_corrupted_column_sections_raise_where_the_reference_raises(seed: int) -> None:
    rng = random.Random(2000 + seed)
    n = rng.randrange(1, 40)
    body, _headers = _column_section(rng, n)
    for _ in range(60):
        bad = bytearray(body)
        kind = rng.randrange(3)
        if kind == 0:
            bad[rng.randrange(len(bad))] ^= 1 << rng.randrange(8)
        elif kind == 1:
            del bad[rng.randrange(len(bad)) :]
        count = n if kind != 2 else rng.choice([0, 1, n + 1, n * 3])
        cut = bytes(bad)

        def ref(b: bytes, p: int, c: int, _w: bool) -> object:
            return batch._decode_header_columns_py(b, p, c)

        def fast(b: bytes, p: int, c: int, _w: bool) -> object:
            return native.decode_header_columns(b, p, c)

        assert _decoded(fast, cut, 0, count, False) == _decoded(ref, cut, 0, count, False)


# -- format 2's header columns: hub_native.encode_header_columns against the reference -------------
def _columns_both(headers: list[Any]) -> tuple[tuple[bool, bytes], tuple[bool, bytes]]:
    fast: list[bytes] = []
    ref: list[bytes] = []
    done_fast = batch._encode_header_columns(headers, len(headers), fast)
    done_ref = batch._encode_header_columns_py(headers, len(headers), ref)
    return (done_fast, b"".join(fast)), (done_ref, b"".join(ref))


def _odd_column_batch(rng: random.Random, n: int) -> list[Any]:
    """Envelope-shaped headers (shared pair objects, fresh ids), sometimes spoiled in one place:
    equal names or values that are other objects, a varying column equal but in one record, a
    name that differs, a list record or pair, a str value, a width that differs, a bad name."""
    names = [rng.choice(NAMES) for _ in range(rng.randrange(1, 12))]
    shared = [(name, rng.randbytes(rng.randrange(0, 30))) for name in names]
    varying = [rng.random() < 0.3 for _ in names]
    headers: list[Any] = [
        tuple(
            (name, rng.randbytes(rng.randrange(0, 20))) if varying[j] else shared[j]
            for j, name in enumerate(names)
        )
        for _ in range(n)
    ]
    r, j = rng.randrange(n), rng.randrange(len(names))
    record = list(headers[r])
    name, value = record[j]
    spoil = rng.randrange(12)
    if spoil == 0:  # equal contents, other objects: still one column
        record[j] = ("".join(name), bytes(bytearray(value)))
    elif spoil == 1:  # one record differs in a constant column
        record[j] = (name, value + b"!")
    elif spoil == 2:
        record[j] = (name + "2", value)
    elif spoil == 3:
        record[j] = [name, value]
    elif spoil == 4:
        record[j] = (name, "text")
    elif spoil == 5:
        record.append(("extra", b"x"))
    elif spoil == 6:
        record[j] = ("bad\udc80", value)
    elif spoil == 7:
        headers[r] = record  # a list record
        return headers
    elif spoil == 8:
        record[j] = (name, value, b"third")
    elif spoil == 9 and n > 1:  # a varying column whose values are all equal: constant
        headers = [(*h[:j], (name, value), *h[j + 1 :]) for h in headers]
        return headers
    headers[r] = tuple(record)
    return headers


def test_the_native_column_encoder_is_used_when_built() -> None:
    assert batch.native_header_columns is native.encode_header_columns


@pytest.mark.parametrize("seed", range(60))
def test_random_header_columns_are_byte_identical(seed: int) -> None:
    rng = random.Random(seed)
    headers = _odd_column_batch(rng, rng.randrange(1, 300))
    (done_fast, fast), (done_ref, ref) = _columns_both(headers)
    assert done_fast == done_ref and fast == ref
    if not done_ref:
        assert native.encode_header_columns(headers) is None  # the reference decided


@pytest.mark.parametrize("seed", range(20))
def test_envelope_batches_take_the_native_path(seed: int) -> None:
    rng = random.Random(500 + seed)
    n = rng.randrange(1, 400)
    _, headers = _column_section(rng, n)
    section = native.encode_header_columns(headers)
    ref: list[bytes] = []
    assert batch._encode_header_columns_py(headers, n, ref)
    assert section == b"".join(ref)


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [()],
        [(("a", b"1"),), ()],
        [[("a", b"1")]],
        [(("a", b"1"),), (("b", b"1"),)],
        [(("é" * 40_000, b"v"),)],  # a name over 65535 bytes
        [((1, b"v"),)],
        [(("a", bytearray(b"v")),)],
    ],
)
def test_odd_header_columns_are_left_to_the_reference(headers: list[Any]) -> None:
    assert native.encode_header_columns(headers) is None
    (done_fast, fast), (done_ref, ref) = _columns_both(headers)
    assert done_fast == done_ref and fast == ref


def test_stored_batches_are_byte_identical_with_and_without_the_native_encoders(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whole stored batches (encode_batch: zstd, CRC) over random envelope and odd headers."""
    rng = random.Random(7)
    cases = []
    for _ in range(30):
        n = rng.randrange(1, 200)
        headers = _odd_column_batch(rng, n)
        keys = [rng.choice([None, rng.randbytes(5)]) for _ in range(n)]
        values = [rng.randbytes(rng.randrange(0, 50)) for _ in range(n)]
        stamps = [1_700_000_000_000 + rng.randrange(3) for _ in range(n)]
        cases.append((keys, values, headers, stamps))

    def encode_all() -> list[object]:
        out: list[object] = []
        for case in cases:
            try:
                out.append(batch.encode_batch(*case))
            except (batch.InvalidBatch, InvalidInput) as exc:
                out.append(type(exc))
        return out

    fast = encode_all()
    monkeypatch.setattr(batch, "native_header_columns", None)
    monkeypatch.setattr(batch, "native_headers", None)
    assert encode_all() == fast


def test_an_authenticated_log_stores_the_same_batches_and_mac_chain_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two MAC-keyed SQLite logs given the same appends (envelope-shaped and odd headers, keyed
    routing over 3 partitions), one with the native header encoders off: every stored batch
    row (offsets, MAC, bytes) and every partition seal is the same."""
    from adapters.sqlite_log import SqliteEventLog
    from core.ports.eventlog import Record

    rng = random.Random(11)
    appends = []
    for _ in range(25):
        n = rng.randrange(1, 150)
        headers = _odd_column_batch(rng, n)
        appends.append(
            [
                Record(
                    value=rng.randbytes(rng.randrange(0, 40)),
                    key=rng.choice([None, b"a", b"b", b"c", b"d"]),
                    headers=h,
                    timestamp_ms=1_700_000_000_000 + rng.randrange(5),
                )
                for h in headers
            ]
        )

    def stored(name: str) -> tuple[list[object], list[object]]:
        with SqliteEventLog(tmp_path / name, mac_key=b"k" * 32, synchronous="OFF") as log:
            log.create_topic("t", 3)
            for records in appends:
                # a refused batch stores nothing, either way (compared below)
                with contextlib.suppress(InvalidInput):
                    log.append("t", records)
            conn = log._writer
            rows = conn.execute(
                "SELECT part, base_offset, last_offset, record_count, max_timestamp, mac, data"
                " FROM batches ORDER BY id"
            ).fetchall()
            seals = conn.execute("SELECT * FROM partitions ORDER BY part").fetchall()
        return rows, seals

    fast = stored("fast.sqlite")
    monkeypatch.setattr(batch, "native_header_columns", None)
    monkeypatch.setattr(batch, "native_headers", None)
    assert stored("reference.sqlite") == fast
    assert len(fast[0]) >= 25
