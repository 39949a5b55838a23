"""``hub_native.contains_text`` (the JSON reader's test for a field's name in a batch) against
``bytes.__contains__``, and ``json_batch`` with the native search against the ``in`` reference:
the same batch and the same forced rows on random JSON lines that leave a defaulted field out,
name it (with a value, with null), or could spell it through an escape."""

from __future__ import annotations

import json
import random

import pytest

from ingest import arrowread
from ingest.arrowread import json_batch, layout
from tests.unit.test_arrow_readers import PARSED_DICT

hub_native = pytest.importorskip("hub_native")
contains_text = hub_native.contains_text

ALPHABET = b'{}":, abcdefghijklmnopqrstuvwxyz_0123456789\\\n'


def _random_data(rng: random.Random) -> bytes:
    n = rng.choice([0, 1, 5, 31, 32, 33, 64, 200, 5000])
    data = bytearray(rng.choice(ALPHABET) for _ in range(n))
    if rng.random() < 0.3:  # multi-byte UTF-8 (valid)
        data[rng.randint(0, len(data)) : 0] = "é日本".encode()
    if rng.random() < 0.2:  # not UTF-8: native answers None
        data[rng.randint(0, len(data)) : 0] = rng.choice([b"\xff", b"\xc3", b"\xe6\x97", b"\x80"])
    return bytes(data)


def _random_needle(rng: random.Random, data: bytes) -> str:
    if data and rng.random() < 0.5:  # a piece of the data: found, at any offset and length
        lo = rng.randint(0, len(data) - 1)
        piece = data[lo : lo + rng.randint(1, 40)]
        try:
            return piece.decode("ascii")
        except UnicodeDecodeError:
            pass
    return '"' + "".join(rng.choice("abcdefghij_") for _ in range(rng.randint(0, 33))) + '"'


def test_contains_text_is_bytes_in_or_none_for_non_utf8() -> None:
    rng = random.Random(1813)
    seen = {True: 0, False: 0, None: 0}
    for _ in range(4000):
        data = _random_data(rng)
        needle = _random_needle(rng, data)
        got = contains_text(data, needle)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            assert got is None, (data, needle)
        else:
            assert got is (needle.encode() in data), (data, needle)
        assert arrowread._has_text(data, needle) is (needle.encode() in data)
        seen[got] += 1
    assert min(seen.values()) > 100, seen
    # Needles at the very ends and across the SIMD block edges (16 and 32 bytes).
    for size in (15, 16, 17, 31, 32, 33, 47, 48, 64, 65):
        for at in range(size - 6):
            data = b"x" * at + b'"venue"' + b"y" * (size - at)
            assert contains_text(data, '"venue"') is True
            assert contains_text(data.replace(b"ven", b"vem"), '"venue"') is False
    assert contains_text(b"", '"a"') is False
    assert contains_text(b"abc", "") is True  # as b"" in b"abc"


BASE = {
    "s": "a",
    "l": 1,
    "i": 2,
    "d": 0.5,
    "f": 1.5,
    "b": True,
    "e": "USD",
    "q": "1.25",
    "ts": "2026-11-25T14:30:00Z",
    "nl": 1,
}


def _line(rng: random.Random) -> str:
    row: dict[str, object] = dict(BASE)
    pick = rng.random()
    if pick < 0.1:
        row["venue"] = "XNAS"
    elif pick < 0.15:
        row["venue"] = None  # explicit null: refused by the reference, so forced
    text = json.dumps(row)
    if pick > 0.97:
        text = text.replace('"s"', '"\\u0073"')  # an escape: the name could be spelt
    elif pick > 0.94:
        text = text.replace('"a"', '"venue"')  # the name as a value only
    return text


@pytest.mark.parametrize("seed", range(6))
def test_json_batch_native_search_equals_reference(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    lay = layout(PARSED_DICT)
    forced = rows = 0
    for _ in range(40):
        n = rng.choice([1, 3, 50, 400])
        # Most batches leave venue out everywhere (the fast path); some name it somewhere.
        lines = [_line(rng) if rng.random() < 0.02 * seed else json.dumps(BASE) for _ in range(n)]
        if rng.random() < 0.5:
            lines[rng.randrange(n)] = _line(rng)
        data = [s.encode() for s in lines]
        native_rb, native_force = json_batch(data, lay, 10**6)
        with monkeypatch.context() as m:
            m.setattr(arrowread, "_native_contains_text", None)
            ref_rb, ref_force = json_batch(data, lay, 10**6)
        assert native_rb.equals(ref_rb)
        assert native_force.tolist() == ref_force.tolist()
        forced += int(ref_force.sum())
        rows += n
    assert 0 < forced < rows // 4, (forced, rows)  # most rows go through Arrow
