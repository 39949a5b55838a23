"""Session 23 (issue 13, HTTP speed): a JSON batch body's events read as one ``Lines`` made from
the rewritten array (``jsonsplit.event_lines``, natively or by ``bytes.replace``) store what the
texts split apart and joined again (``Lines.texts(jsonsplit.events(body))``, the path before)
stored, byte for byte.

Both hubs get the same bodies (random trades, spoiled values, duplicates, envelopes, elements
that go row by row or send the body to the reference whole, compact and spaced separators,
pretty-printed bodies, a lone event with spaces around it, bodies refused whole). With the same
ids and times, the results (or refusals), the stored batches of the topic and the quarantine
entries with their originals must be equal.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from hub.bootstrap import Hub
from ingest import jsonsplit
from ingest.lines import Lines
from tests.service.test_ingest_columnar import quarantined
from tests.service.test_ingest_http_columnar import ODD_BODIES, event, json_body, outcome
from tests.service.test_ingest_http_columnar import two as two
from tests.service.test_ingest_line_blocks import _batches
from tests.service.test_ingest_line_blocks import fixed as fixed


def _before(body: bytes) -> Lines | None:
    """The path before: the texts as ``bytes`` objects, joined again."""
    texts = jsonsplit.events(body)
    return None if texts is None else Lines.texts(texts)


def _bodies(seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    out = list(ODD_BODIES)
    out += [b'{"events": [ ' + json.dumps(event(9, rnd, 0.0)).encode() + b"  ]}"]
    for k in range(14):
        n = rnd.choice([1, 2, 40, 150])
        bad = rnd.choice([0.0, 0.1, 0.3])
        if k % 3 == 2:  # what json.dumps writes, compact or pretty-printed
            evs = [event(1000 * k + i, rnd, bad) for i in range(n)]
            out.append(
                json.dumps(
                    {"events": evs},
                    separators=rnd.choice([None, (",", ":")]),
                    indent=rnd.choice([None, 2]),
                ).encode()
            )
        else:
            out.append(json_body(n, rnd, bad, envelopes=k % 4 == 0, base=1000 * k))
    return out


def _run(h: Hub, bodies: list[bytes], restart: Any) -> list[Any]:
    restart()
    return [outcome(h, body, ndjson=False, columnar=True) for body in bodies]


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("seed", [3, 17])
def test_event_lines_store_the_split_texts_bytes(
    two: tuple[Hub, Hub], fixed: Any, monkeypatch: pytest.MonkeyPatch, native: bool, seed: int
) -> None:
    if native and jsonsplit._native_array_lines is None:
        pytest.fail("hub_native predates json_array_lines: rerun `make setup`.")
    before, after = two
    bodies = _bodies(seed)
    with monkeypatch.context() as m:
        m.setattr(jsonsplit, "event_lines", _before)
        want = _run(before, bodies, fixed)
    calls = {"n": 0}
    real = jsonsplit.event_lines

    def counted(body: bytes) -> Lines | None:
        calls["n"] += 1
        return real(body)

    monkeypatch.setattr(jsonsplit, "event_lines", counted)
    if not native:
        monkeypatch.setattr(jsonsplit, "_native_array_lines", None)
    got = _run(after, bodies, fixed)
    assert calls["n"] >= 10  # the new reader was used
    assert got == want
    accepted = sum(w["accepted"] for w in want if isinstance(w, dict))
    refused = [w for w in want if not isinstance(w, dict)]
    assert accepted > 300 and len(refused) >= 5
    assert any(w["rejections"] for w in want if isinstance(w, dict))
    assert _batches(after, "trades") == _batches(before, "trades")
    assert quarantined(after) == quarantined(before)
