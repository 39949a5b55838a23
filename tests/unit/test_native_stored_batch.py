"""The native stored-batch writer (native/src/stored_batch.rs) against the pure-Python reference
``encode_batch_columns_py``: the same header and uncompressed body, a zstd frame the reader
inflates to that body, the CRC the reader checks; and None (so the reference decides and raises)
for anything but plain lists or tuples of ``bytes``."""

from __future__ import annotations

import random
import struct
import zlib
from typing import Any

import pytest

from adapters.sqlite_log import batch as stored
from adapters.sqlite_log.batch import (
    CorruptBatch,
    decode_batch,
    encode_batch,
    encode_batch_columns,
    encode_batch_columns_py,
    native_stored_columns,
)
from tests.unit.test_column_append import random_batch

needs_native = pytest.mark.skipif(native_stored_columns is None, reason="hub_native not built")
_HEAD = stored._HEAD.size + stored._BODY.size


def _inflated(blob: bytes) -> tuple[bytes, bytes]:
    """The header (without the CRC) and the uncompressed body of a stored batch."""
    assert zlib.crc32(blob[4:]) == struct.unpack_from("<I", blob)[0]
    codec = blob[stored._HEAD.size]
    if codec == stored._CODEC_NONE:
        return blob[4:_HEAD], blob[_HEAD:]
    assert codec == stored._CODEC_ZSTD
    body, _ = stored._body(blob, stored._VERSION, struct.unpack_from("<I", blob, 6)[0])
    return blob[4:_HEAD], body


def _encode_both(
    keys: Any, values: Any, names: Any, columns: Any, stamps: Any
) -> tuple[bytes, bytes]:
    assert native_stored_columns is not None
    got = native_stored_columns(keys, values, names, columns, stamps)
    assert got is not None
    return got, encode_batch_columns_py(keys, values, names, columns, stamps)


@needs_native
def test_same_header_and_body_as_the_reference_on_random_batches() -> None:
    """Timestamps uniform, 32-bit deltas and 64-bit; keys and values null, mixed or not;
    shared, varying and equal-varying header columns; one list under two names."""
    rng = random.Random(16)
    compressed = plain = 0
    for trial in range(600):
        n = rng.choice([1, 2, 3, 17, 200, 1000])
        batch = random_batch(rng, n)
        base = 1_700_000_000_000
        stamps = [
            [base] * n,
            [base + rng.randrange(1000) for _ in range(n)],
            [base + rng.choice([0, 1 << 40]) for _ in range(n)],
            [rng.choice([-(1 << 62), 1 << 62]) for _ in range(n)],
        ][trial % 4]
        names = [name.encode() for name in batch.header_names]
        columns: Any = batch.header_columns
        keys: Any = batch.keys
        if trial % 3 == 0:  # the partition picks give tuples
            keys, columns = (
                tuple(keys),
                tuple(c if isinstance(c, bytes) else tuple(c) for c in columns),
            )
        got, expected = _encode_both(keys, batch.values, names, columns, stamps)
        assert _inflated(got) == _inflated(expected), trial
        if got == expected:
            plain += got[stored._HEAD.size] == stored._CODEC_NONE
        compressed += got[stored._HEAD.size] == stored._CODEC_ZSTD
        # what the reader makes of it is what the per-record reference stores
        rows = batch.header_rows()
        assert decode_batch(got, n) == decode_batch(
            encode_batch(batch.keys, batch.values, rows, stamps), n
        )
    assert compressed > 100 and plain > 50  # both codecs were exercised


@needs_native
def test_zstd_frame_is_the_python_writers() -> None:
    """The zstd crate's libzstd gives pyarrow's frame on the hub's batches (so the per-record
    and columnar appends store the same bytes and MACs: test_column_append)."""
    rng = random.Random(5)
    for n in (10, 1000, 10_000):
        keys = [b"ACC-%d" % rng.randrange(500) for _ in range(n)]
        values = [rng.randbytes(20) + b"trade-payload" * 4 for _ in range(n)]
        ids = [b"%032x" % rng.getrandbits(128) for _ in range(n)]
        got, expected = _encode_both(
            keys, values, [b"ce_id", b"ce_type"], [ids, b"trade.v1"], [1_700_000_000_000] * n
        )
        assert got[stored._HEAD.size] == stored._CODEC_ZSTD
        assert got == expected


def _trades(rng: random.Random, n: int) -> tuple[list[bytes], list[bytes], list[bytes]]:
    keys = [b"ACC-%d" % rng.randrange(500) for _ in range(n)]
    values = [rng.randbytes(20) + b"trade-payload" * rng.randrange(1, 6) for _ in range(n)]
    ids = [b"%032x" % rng.getrandbits(128) for _ in range(n)]
    return keys, values, ids


@needs_native
def test_reused_zstd_context_gives_the_one_shot_frames_in_any_order_and_thread() -> None:
    """Each thread compresses with one reused zstd context (native/src/zstd_cctx.rs): a frame
    must not depend on what that context compressed before (a large batch, then a tiny one:
    its workspace and tables were sized and filled for the other) nor on the thread. Every
    frame equals the reference writer's one-shot frame, in 4 threads at once."""
    import threading

    sizes = [1, 10_000, 1, 3, 2_000, 1, 40, 10_000, 2, 1]
    failures: list[str] = []
    zstd = [0]

    def run(seed: int) -> None:
        rng = random.Random(seed)
        for round_ in range(4):
            for n in rng.sample(sizes, len(sizes)):
                keys, values, ids = _trades(rng, n)
                got, expected = _encode_both(
                    keys, values, [b"ce_id", b"ce_type"], [ids, b"trade.v1"], [1_700_000] * n
                )
                if got != expected:
                    failures.append(f"seed {seed} round {round_} n {n}")
                zstd[0] += got[stored._HEAD.size] == stored._CODEC_ZSTD

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    assert zstd[0] >= 4 * 4 * 6  # the batches of 3 records and more are compressed


@needs_native
@pytest.mark.parametrize(
    ("keys", "values", "names", "columns", "stamps"),
    [
        ([b"k", "k"], [b"v", b"v"], [], (), [1, 1]),  # a str key
        ([b"k", b"k"], [b"v", bytearray(b"v")], [], (), [1, 1]),  # a bytearray value
        (iter([b"k"]), [b"v"], [], (), [1]),  # not a list or tuple
        ([b"k", b"k"], [b"v", b"v"], [b"h"], ([b"a"],), [1, 1]),  # a column too short
        ([b"k", b"k"], [b"v", b"v"], [b"h"], ([b"a", 7],), [1, 1]),  # an int header value
        ([b"k", b"k"], [b"v", b"v"], ["h"], (b"a",), [1, 1]),  # a str name
        ([b"k"], [b"v"], [], (), [1.5]),  # a float timestamp
        ([b"k"], [b"v"], [], (), [True]),  # a bool timestamp
        ([b"k"], [b"v"], [], (), [1 << 70]),  # past 64 bits
        ([b"k"], [b"v", b"w"], [], (), [1]),  # lengths differ
        ([], [], [], (), []),  # empty
    ],
)
def test_unusual_input_is_left_to_the_reference(
    keys: Any, values: Any, names: Any, columns: Any, stamps: Any
) -> None:
    assert native_stored_columns is not None
    assert native_stored_columns(keys, values, names, columns, stamps) is None


@needs_native
def test_unusual_input_gets_the_references_answer() -> None:
    """The wrapper falls back: the reference's bytes, or the reference's error."""
    keys = (b"a", b"b")
    assert encode_batch_columns(list(keys), [b"v", None], [], (), [5, 5]) == (
        encode_batch_columns_py(list(keys), [b"v", None], [], (), [5, 5])
    )
    with pytest.raises(struct.error):
        encode_batch_columns([b"k", b"k"], [b"v", b"v"], [b"h"], ([b"a"],), [1, 1])


@needs_native
def test_a_flipped_byte_is_caught_by_the_reader() -> None:
    n = 500
    blob, _ = _encode_both(
        [b"k%d" % i for i in range(n)],
        [b"v" * 40] * n,
        [b"ce_id"],
        [[b"%d" % i for i in range(n)]],
        [7] * n,
    )
    for at in (0, 5, 20, len(blob) // 2, len(blob) - 1):
        bad = bytearray(blob)
        bad[at] ^= 0x40
        with pytest.raises(CorruptBatch):
            decode_batch(bytes(bad), n)


def test_python_reference_still_writes_encode_batchs_bytes() -> None:
    """``encode_batch_columns`` now runs the native writer; its reference is held to what
    test_column_append held it to before: ``encode_batch``'s bytes (hub_native built or not)."""
    rng = random.Random(13)
    for trial in range(200):
        n = rng.choice([1, 2, 17, 200])
        batch = random_batch(rng, n)
        stamps = [1_700_000_000_000 + rng.randrange(3) * (trial % 2)] * n
        names = [name.encode() for name in batch.header_names]
        expected = encode_batch(batch.keys, batch.values, batch.header_rows(), stamps)
        got = encode_batch_columns_py(batch.keys, batch.values, names, batch.header_columns, stamps)
        assert got == expected, trial
