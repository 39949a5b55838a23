"""The native header-section encoder (hub_native.encode_headers, native/src/headers.rs) gives the
pure-Python reference's bytes and flags on random batches, and leaves every malformed or
over-limit batch to the reference, so errors are the reference's own."""

from __future__ import annotations

import os
import random
from typing import Any

import pytest

from adapters.sqlite_log import batch
from core.errors import InvalidInput

native = (
    pytest.importorskip(
        "hub_native",
        reason="LOUD: hub_native is not built (make setup runs native/build.sh; needs cargo)",
    )
    if os.environ.get("CI") != "true"
    else __import__("hub_native")
)

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
