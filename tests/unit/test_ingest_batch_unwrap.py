"""``ingest_batch.unwrapped_lines`` (envelopes ``{"value": {...}}`` of a JSON body's events as
their inner objects, in numpy passes) gives byte for byte what the line-by-line ``_unwrapped``
gives: data, starts, ends and numbers, on envelopes as ``json.dumps`` writes them (the fast
path) and on every other shape (the fallback), mixed in one body."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from hub.api import ingest_batch
from hub.api.ingest_batch import _unwrapped, unwrapped_lines
from ingest.jsonsplit import event_lines
from ingest.lines import Lines

ODD = [
    '{"value": {}}',
    '{"value": {"a": 1} }',
    '{"value": {"a": 1}, "key": "k"}',
    '{"value":{"a":1}}',
    '{ "value" : {"a": 1}}',
    '{"value": 5}',
    '{"value": "x"}',
    '{"value": [1, 2]}',
    '{"a": {"value": {"b": 1}}}',
    '{"trade_id": "T1", "value": {"x": 1}}',
    '{"value": {"s": "}"}}',
    '{"value": {"s": "\\u00e9"}}',
    '{"value": {"value": {"a": 1}}}',
    "{}",
]


def reference(whole: Lines) -> Lines:
    return Lines.texts([_unwrapped(whole.line(i)) for i in range(len(whole))])


def same(a: Lines, b: Lines) -> None:
    assert a.data == b.data
    assert np.array_equal(a.starts, b.starts) and np.array_equal(a.ends, b.ends)
    assert np.array_equal(a.numbers, b.numbers)
    assert [a.line(i) for i in range(len(a))] == [b.line(i) for i in range(len(b))]


def record(rng: random.Random, i: int) -> dict[str, object]:
    return {
        "trade_id": f"T-{i}",
        "price": f"{rng.randint(1, 99)}.5",
        "s": rng.choice(["", "}", "{", '"', "é", "a b", "\\"]),
        "n": rng.choice([1, -2, 3.5, None, True, [1, {"x": "}"}], {"y": {}}]),
    }


def test_envelopes_as_json_dumps_writes_them_take_the_fast_path_byte_for_byte(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(24)
    for size in (1, 2, 7, 500):
        for ensure_ascii in (True, False):
            events = [{"value": record(rng, i)} for i in range(size)]
            body = json.dumps({"events": events}, ensure_ascii=ensure_ascii)
            whole = event_lines(body.encode())
            assert whole is not None
            want = reference(whole)
            with monkeypatch.context() as m:  # the fast path never calls the line-by-line one
                m.setattr(ingest_batch, "_unwrapped", None)
                got = unwrapped_lines(whole)
            same(got, want)


def test_every_other_shape_and_mixes_give_the_reference() -> None:
    rng = random.Random(2024)
    for _ in range(400):
        items = []
        for i in range(rng.randint(1, 12)):
            if rng.random() < 0.6:
                items.append(json.dumps({"value": record(rng, i)}))
            else:
                items.append(rng.choice(ODD))
        sep = rng.choice([", ", ",", ",\n  ", " , "])
        body = ('{"events": [' + sep.join(items) + "]}").encode()
        whole = event_lines(body)
        if whole is None:
            continue
        same(unwrapped_lines(whole), reference(whole))
    for text in ODD:
        whole = Lines.texts([text.encode()] * 3)
        same(unwrapped_lines(whole), reference(whole))
