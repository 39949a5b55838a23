"""``KeyWindow.add_all`` of ``DistinctKeys`` (a set merge when the batch fits the generation)
leaves the window exactly as adding the same keys as a plain list, rotations included."""

from __future__ import annotations

import random
from datetime import timedelta

from ingest.dedupe import DistinctKeys, KeyWindow


def test_distinct_keys_fill_and_rotate_like_a_list() -> None:
    rnd = random.Random(13)
    for max_keys in (2, 10, 64, 1000):
        plain = KeyWindow(max_keys, timedelta(hours=1))
        merged = KeyWindow(max_keys, timedelta(hours=1))
        for b in range(200):
            keys = [f"k{b}-{i}" for i in range(rnd.choice([0, 1, 3, max_keys // 2, max_keys]))]
            plain.add_all(list(keys))
            merged.add_all(DistinctKeys(keys, set(keys)))
            assert (merged._cur, merged._prev) == (plain._cur, plain._prev), (max_keys, b)
        assert len(plain) > 0


def test_a_batch_that_fills_the_generation_rotates_at_the_same_key() -> None:
    w = KeyWindow(10, timedelta(hours=1))  # generations of 5 keys
    w.add_all(DistinctKeys(["a", "b", "c"], {"a", "b", "c"}))
    w.add_all(DistinctKeys(["d", "e", "f"], {"d", "e", "f"}))  # "e" fills it: "f" starts the next
    assert w._prev == {"a", "b", "c", "d", "e"} and w._cur == {"f"}
    assert "a" in w and "f" in w
