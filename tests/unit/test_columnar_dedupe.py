"""``ingest.columnar.dedupe_one`` (a unique rule's decision for a batch, column-wise) against
the row loop it replaced: the same kept rows, duplicates and new keys, in order, for batches
with rows without a value or a key, keys repeated in the batch, in the window's two generations
and among the keys earlier batches of the commit group store."""

from __future__ import annotations

import random
from datetime import timedelta

from ingest.columnar import dedupe_one
from ingest.dedupe import KeyWindow


def _row_loop(
    values: list[bytes | None], nks: list[str | None], window: KeyWindow, seen: set[str]
) -> tuple[list[int], list[int], list[str | None]]:
    """The reference: the row loop ``_ingest_arrow``'s ``decide`` ran (session 16)."""
    seen = set(seen)
    keep: list[int] = []
    dups: list[int] = []
    kept: list[str | None] = []
    for i, v in enumerate(values):
        if v is None:
            continue
        nk = nks[i]
        if nk is None:
            keep.append(i)
            kept.append(None)
        elif nk in window or nk in seen:
            dups.append(i)
        else:
            seen.add(nk)
            keep.append(i)
            kept.append(nk)
    return keep, dups, kept


def test_the_same_decisions_as_the_row_loop_on_random_batches() -> None:
    rng = random.Random(17)
    dup_trials = 0
    for trial in range(400):
        n = rng.choice([1, 2, 3, 10, 200, 2000])
        universe = [f"T-{i}" for i in range(rng.choice([1, 5, n, 3 * n]))]
        window = KeyWindow(max_keys=rng.choice([4, 100, 10_000]), window=timedelta(hours=1))
        window.add_all(rng.sample(universe, rng.randrange(len(universe) + 1)))
        window.add_all([f"T-{i}" for i in range(rng.randrange(3))])  # rotations on small windows
        seen = set(rng.sample(universe, rng.randrange(len(universe) + 1) // 3))
        p_none_value, p_none_key = rng.choice([0, 0.1, 1]), rng.choice([0, 0.1, 1])
        values = [None if rng.random() < p_none_value else b"v" for _ in range(n)]
        nks: list[str | None] = [
            None if rng.random() < p_none_key else rng.choice(universe) for _ in range(n)
        ]
        got = dedupe_one(values, nks, window, set(seen))
        expected = _row_loop(values, nks, window, seen)
        assert got == expected, trial
        dup_trials += bool(expected[1])
    assert dup_trials > 100


def test_a_batch_of_new_distinct_keys_keeps_every_row_in_order() -> None:
    window = KeyWindow(100, timedelta(hours=1))
    window.add_all(["old"])
    keep, dups, kept = dedupe_one([b"v"] * 3, ["c", "a", "b"], window, set())
    assert (keep, dups, kept) == ([0, 1, 2], [], ["c", "a", "b"])
    keep, dups, kept = dedupe_one([b"v"] * 4, ["old", "a", "a", None], window, {"z"})
    assert (keep, dups, kept) == ([1, 3], [0, 2], ["a", None])
