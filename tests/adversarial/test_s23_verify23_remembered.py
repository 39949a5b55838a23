"""Session 23 (verify23): ``hub ledger verify`` remembers each partition's last verified offset
(``save_verified``) from the key columns of the stored batches (``iter_stored_batches``) and
the last row of each run of one partition, instead of decoding every batch whole and building
a dict from every row (~0.35 CPU s of a 1M-leaf CLI run). The row-by-row update stays the
reference: the same offsets, in the same order, on random key columns (interleaved
partitions, nulls, one row, none), and the same signed state from a real ledger."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pytest

from adapters.tile_ledgerstore import TileLedgerStore
from core.ports.ledgerstore import LedgerStore
from ledger import verify as verify_module
from ledger.verify import _last_offsets, _last_offsets_by_row, verify_remembered

from .test_s21_verify_paths import _build, _open


def _keys(seed: int) -> pa.Table:
    rng = random.Random(seed)
    rows = rng.choice([0, 1, 2, 30, 700])
    topics = [rng.choice(["a", "b", "trades", "é"]) for _ in range(rows)]
    parts = [rng.randint(0, 3) for _ in range(rows)]
    if rows and rng.random() < 0.5:  # runs: the usual shape
        topics.sort()
    if rows and rng.random() < 0.2:
        topics[rng.randrange(rows)] = None  # type: ignore[call-overload]
    if rows and rng.random() < 0.2:
        parts[rng.randrange(rows)] = None  # type: ignore[call-overload]
    offs = [rng.randint(0, 10**12) for _ in range(rows)]
    return pa.table(
        {
            "topic": pa.array(topics, pa.string()),
            "part": pa.array(parts, pa.int32()),
            "off": pa.array(offs, pa.int64()),
        }
    )


@pytest.mark.parametrize("seed", range(60))
def test_the_last_offsets_of_runs_are_the_row_by_row_ones(seed: int) -> None:
    keys = _keys(seed)
    before = {("z", 9): 5, ("a", 0): 1}
    got, want = dict(before), dict(before)
    _last_offsets(keys, got)
    _last_offsets_by_row(keys, want)
    assert list(got.items()) == list(want.items())


def test_the_remembered_state_is_the_reference_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two full runs of ``verify_remembered`` on one ledger: the state remembered through the
    key columns and through the reference (every batch decoded, every row) names the same
    checkpoint and the same offsets, in the same order."""
    _build(tmp_path)
    states = []
    for reference in (False, True):
        with monkeypatch.context() as m:
            if reference:
                m.setattr(verify_module, "_last_offsets", _last_offsets_by_row)
                m.setattr(TileLedgerStore, "iter_stored_batches", LedgerStore.iter_stored_batches)
            log, ledger = _open(tmp_path)
            try:
                path = tmp_path / f"verified-{reference}"
                run = verify_remembered(ledger, path, log, full=True, full_every_s=86_400)
                assert run.report.ok, run.report.as_dict()
                state = run.remember(ledger, path)
                assert state is not None and state.last_offsets
                states.append((state.size, state.root, list(state.last_offsets.items())))
            finally:
                ledger.close()
                log.close()
    assert states[0] == states[1]
