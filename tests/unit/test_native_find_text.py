"""``hub_native.contains_text`` (the JSON reader's test for a field's name in a batch) against
``bytes.__contains__``, and ``json_batch`` with the native search against the ``in`` reference:
the same batch and the same forced rows on random JSON lines that leave a defaulted field out,
name it (with a value, with null), or could spell it through an escape."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from ingest import arrowread
from ingest.arrowread import csv_batch, csv_layout, json_batch, layout
from ingest.lines import Lines
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


def _old_marked_rows(rows: Lines) -> list[bool]:
    """The row marking ``csv_batch`` made before (``np.isin`` of the marked positions against
    the joining newlines): the reference its in-place unmarking must equal."""
    octets = np.frombuffer(rows.data, dtype=np.uint8)
    force = np.zeros(len(rows), dtype=np.bool_)
    odd = np.flatnonzero(((octets < 0x20) & (octets != 0x09)) | (octets == 0x22))
    if len(odd):
        odd = odd[~np.isin(odd, rows.ends[:-1])]
        force[np.searchsorted(rows.starts, odd, side="right") - 1] = True
    return force.tolist()


@pytest.mark.parametrize("kind", ["texts", "block"])
def test_csv_batch_marks_quote_and_control_rows_as_before(kind: str) -> None:
    """A one-string-column CSV: a row is forced for a quote, a control byte (not a tab), a comma
    or its length, and the quote/control marking equals the old ``np.isin`` formula, on rows cut
    from a file region (CRLF, CR, blank lines) and on texts."""
    rng = random.Random(18 + len(kind))
    schema = {"type": "record", "name": "R", "fields": [{"name": "s", "type": "string"}]}
    lay = csv_layout(layout(schema), ["s"], schema["fields"])
    assert lay is not None
    alphabet = b'ab\t\r"\x01\x1f ,' + b"x" * 20
    marked_seen = 0
    for _ in range(300):
        n = rng.choice([1, 2, 7, 60])
        texts = [bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(n)]
        if kind == "block":
            rows = Lines.block(
                b"".join(t + rng.choice([b"\n", b"\r\n"]) for t in texts).rstrip(b"\n"), 1
            )
        else:
            rows = Lines.texts([t.replace(b"\r", b"") for t in texts])
        _, force = csv_batch(rows, ["s"], lay, set(), 10)
        old = _old_marked_rows(rows)
        expected = [
            old[i] or b"," in rows.line(i) or len(rows.line(i)) > 10 for i in range(len(rows))
        ]
        assert force.tolist() == expected, (rows.data, force.tolist(), expected)
        for i in range(len(rows)):  # the marking is the row's own bytes
            line = rows.line(i)
            assert old[i] == any((b < 0x20 and b != 0x09) or b == 0x22 for b in line), line
        marked_seen += sum(old)
    assert marked_seen > 100
