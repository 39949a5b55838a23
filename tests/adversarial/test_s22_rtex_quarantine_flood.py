"""A body whose every line is refused (session 22, red team: exhaustion).

The columnar JSON-lines reader parses a batch with Arrow and, when Arrow refuses it, halves it
down to single lines (``ingest.arrowread._read``): for a body of N bad lines that is about 2N
parses, each of which first joined its lines with ``Lines.joined``, which built a mask over, and
copied, the WHOLE body whatever the lines asked for. Work (and memory traffic) grew as N times
the body: a publisher's 18 MB body of 20,000 bad lines (``{"n": "not a number"}`` for a long)
held a worker thread and a core for over 300 s (2,000 such lines: 32 s, under load 15), where
the same lines accepted take well under a second. Now ``joined`` touches only the span of the
lines asked for, so the halving costs the body's size times its depth (log N).
"""

from __future__ import annotations

import json
import random
import tracemalloc

import numpy as np

from ingest.lines import Lines


def _lines(n: int, width: int) -> Lines:
    return Lines.texts([json.dumps({"i": i, "s": "y" * width}).encode() for i in range(n)])


def test_joining_a_few_lines_of_a_large_body_does_not_touch_the_whole_body() -> None:
    lines = _lines(20_000, 900)  # 18 MB, as the attack's body
    assert len(lines.data) > 18_000_000
    for idx in ([5, 6], [19_998, 19_999], [100, 300, 301]):
        tracemalloc.start()
        try:
            got = lines.joined(idx)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert got == b"".join(lines.line(i) + b"\n" for i in idx)
        # before: a copy of the body, a mask over it and one bool per line (> 36 MB)
        assert peak < 1_000_000, (idx, peak)


def test_joined_equals_the_reference_for_any_ascending_selection() -> None:
    rng = random.Random(22)
    for _ in range(200):
        n = rng.randint(1, 40)
        texts = [bytes(rng.choice(b'ab{}" \t') for _ in range(rng.randint(0, 6))) for _ in range(n)]
        lines = Lines.texts(texts)
        k = rng.randint(0, n)
        idx = sorted(rng.sample(range(n), k))
        want = b"".join(t + b"\n" for t in (texts[i] for i in idx)) if idx else b""
        assert lines.joined(idx) == want
        assert lines.joined(np.asarray(idx, dtype=np.int64)) == want
        assert lines.joined(None) == b"".join(t + b"\n" for t in texts)
        if n > 2:  # a slice of the lines keeps its own offsets
            sub = lines[1 : n - 1]
            sub_idx = [i - 1 for i in idx if 1 <= i < n - 1]
            assert sub.joined(sub_idx) == b"".join(texts[i + 1] + b"\n" for i in sub_idx)
