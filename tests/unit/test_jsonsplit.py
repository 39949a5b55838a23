"""``jsonsplit.events``: whenever every text it gives is one JSON value, the texts are exactly the
elements of the body's ``events`` array (checked against ``json.loads`` on random bodies with
quotes, backslashes, brackets and separators inside strings, pretty-printed or compact)."""

from __future__ import annotations

import json
import random

import pytest

from ingest.jsonsplit import events


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
