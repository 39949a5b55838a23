"""``jsonsplit.events``: whenever every text it gives is one JSON value, the texts are exactly the
elements of the body's ``events`` array (checked against ``json.loads`` on random bodies with
quotes, backslashes, brackets and separators inside strings, pretty-printed or compact); and
``jsonsplit.event_lines`` gives those texts as ``Lines`` byte for byte, natively or not."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from ingest import jsonsplit
from ingest.jsonsplit import event_lines, events
from ingest.lines import Lines


def _value(text: bytes) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(
    "body",
    [
        b'{"events": []}',
        b'{"events": [ ]}',
        b'{"events": [1,]}',
        b'{"events": [{"a": 1},,{"b": 2}]}',
        b'{"x": 1, "events": [1]}',
        b'{"events": [1]], "a": [2]}',
        b'{"events": [1]}x',
        b'{"events": ["]}',
        b'{"events": [{]}',
        b'{"events": [}]}',
        b'{"events": [{"a": "}, {"}]}',
        b'{"events": [{"a": "x\n}, {"}]}',
        b'{"events": [{"a": 1}\n{"b": 2}]}',
        b'\xef\xbb\xbf{"events": [1]}',
        b'{"\\u0065vents": [1]}',
    ],
)
def test_odd_bodies_give_none_or_a_text_that_is_not_one_value(body: bytes) -> None:
    got = events(body)
    assert got is None or not all(map(_value, got))


def test_plain_bodies_split_into_their_elements() -> None:
    assert events(b'{"events":[{"a":1},{"b":2}]}') == [b'{"a":1}', b'{"b":2}']
    assert events(b' {\n "events" : [\n  {"a":\t1},\n  {"b": "x,]\\"y"}\n ]\n}\n') == [
        b'{"a": 1}',
        b'{"b": "x,]\\"y"}',
    ]
    assert events(b'{"events": [{"s": "\\\\"}, {"t": "\\\\\\""}]}') == [
        b'{"s": "\\\\"}',
        b'{"t": "\\\\\\""}',
    ]


def test_random_bodies() -> None:
    rnd = random.Random(3)
    alpha = ["a", '"', "\\", ",", "[", "]", "{", "}", "é", "\n", " ", "\t", "}, {", "},{"]
    split = 0
    for _ in range(3000):
        ev = []
        for _ in range(rnd.randrange(1, 6)):
            text = "".join(rnd.choice(alpha) for _ in range(rnd.randrange(8)))
            ev.append(
                rnd.choice(
                    [{"k": text}, {"k": 1, "m": [text, {"n": None}]}, {}, [text, 1.5], 7, text]
                )
            )
        body = json.dumps(
            {"events": ev},
            indent=rnd.choice([None, None, 1, "\t"]),
            separators=rnd.choice([None, (",", ":")]),
            ensure_ascii=rnd.random() < 0.5,
        ).encode()
        got = events(body)
        assert got is not None
        if all(map(_value, got)):
            assert [json.loads(g) for g in got] == ev, body
            split += 1
    assert split > 1000  # most bodies were split, not left to the whole-body parse


def _same_lines(body: bytes) -> None:
    """``event_lines`` is ``Lines.texts(events(body))`` byte for byte, native and reference."""
    want = events(body)
    for native in (True, False):
        with pytest.MonkeyPatch.context() as m:
            if not native:
                m.setattr(jsonsplit, "_native_array_lines", None)
            got = event_lines(body)
        if want is None:
            assert got is None, body
            continue
        ref = Lines.texts(want)
        assert got is not None, body
        assert got.data == ref.data, body
        for a, b in ((got.starts, ref.starts), (got.ends, ref.ends), (got.numbers, ref.numbers)):
            assert np.array_equal(a, b), body
        assert [got.line(i) for i in range(len(got))] == want


def test_event_lines_are_the_events_texts() -> None:
    rnd = random.Random(5)
    alpha = ["a", '"', "\\", ",", "[", "]", "{", "}", "é", " ", "}, {", "},{", "} , {", "\t"]
    odd = [b'{"events": [{"a": 1}]}', b'{"events":[ {} ]}', b'{"events": [ ]}', b'{"events": [7]}']
    odd += [b'{"events": [  }, {  ]}', b'{"events": [{"a": "}, {"}, {}]}', b'{"events": []}']
    odd += [b'{"events": [},{}, {]}', b'{"events": [{}},{{}]}', b'{"events": [{} , {}]}']
    for body in odd:
        _same_lines(body)
    for _ in range(2000):
        ev = []
        for _ in range(rnd.randrange(1, 6)):
            text = "".join(rnd.choice(alpha) for _ in range(rnd.randrange(8)))
            ev.append(rnd.choice([{"k": text}, {"k": {"m": [text, {}]}}, {}, [text], 7, text]))
        body = json.dumps(
            {"events": ev},
            indent=rnd.choice([None, None, None, 1]),
            separators=rnd.choice([None, (",", ":")]),
            ensure_ascii=rnd.random() < 0.5,
        ).encode()
        if rnd.random() < 0.3:  # spaces around the array, odd separators
            body = body.replace(b"[", b"[  ", 1).replace(b"]}", b" ]}")
        _same_lines(body)


def test_native_array_lines_takes_only_the_two_separators() -> None:
    if jsonsplit._native_array_lines is None:
        pytest.skip("hub_native is not built")
    with pytest.raises(ValueError):
        jsonsplit._native_array_lines(b"{}, {}", b", ")
