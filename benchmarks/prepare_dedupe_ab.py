"""Session 17 micro A/B, one process, alternating, CPU time (``time.process_time``) per call:

- ``prepare``: ``SqliteEventLog._prepare_columns`` of a 10,000-record column batch shaped like
  a file publish's (32-byte keys of 1,000 accounts, 150-byte values, the envelope's ten header
  columns with the event id twice and a natural key) into a topic of ``--partitions``
  partitions, with the native preparation (native/src/prepare_columns.rs) on, then off (the
  Python route, picks and cuts around the same native stored-batch writer).
- ``dedupe``: one unique rule's decision for a 10,000-row batch holding one duplicate, against
  a window of 700,000 keys: ``ingest.columnar.dedupe_one`` plus the header column, against the
  row loop it replaced (session 16's ``decide``, header pairs included).

Run: ``.venv/bin/python -m benchmarks.prepare_dedupe_ab [--partitions 4] [--rounds 7]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from adapters.sqlite_log import log as log_mod
from adapters.sqlite_log.log import SqliteEventLog
from core.ports.eventlog import ColumnBatch
from ingest.columnar import _header_column, dedupe_one
from ingest.dedupe import NK_HEADER, KeyWindow

N = 10_000


def _cpu(fn: Callable[[], Any], repeat: int) -> float:
    """Best CPU seconds of ``repeat`` calls."""
    best = float("inf")
    for _ in range(repeat):
        c0 = time.process_time()
        fn()
        best = min(best, time.process_time() - c0)
    return best


def _batch() -> ColumnBatch:
    ids = [os.urandom(18).hex().encode()[:36] for _ in range(N)]
    names = ("ce_specversion", "ce_id", "ce_type", "ce_time", "ce_source", "ce_correlationid")
    names += ("ce_causationid", "ce_tenant", "hub_class", "content-type", NK_HEADER)
    columns: tuple[Any, ...] = (b"1.0", ids, b"trade", b"2026-12-05T00:00:00Z", b"file:x", ids)
    columns += (b"", b"default", b"internal", b"application/avro")
    columns += ([f"r\x1fT-{i:09d}".encode() for i in range(N)],)
    keys = [f"ACC-{i % 1000:028d}".encode() for i in range(N)]
    values = [os.urandom(150) for _ in range(N)]
    return ColumnBatch(keys, values, names, columns, 1_764_892_800_000)


def _old_loop(values: Sequence[bytes | None], nks: Sequence[str | None], w: KeyWindow) -> Any:
    seen: set[str] = set()
    keep, dups, new, headers = [], [], [], []
    for i in range(len(values)):
        if values[i] is None:
            continue
        nk = nks[i]
        if nk is None:
            keep.append(i)
            headers.append(())
        elif nk in w or nk in seen:
            dups.append(i)
        else:
            seen.add(nk)
            new.append(nk)
            keep.append(i)
            headers.append(((NK_HEADER, ("r\x1f" + nk).encode()),))
    if headers and set(map(len, headers)) == {1}:
        return keep, dups, new, [h[0][1] for h in headers]
    return keep, dups, new, headers


def _new(values: Sequence[bytes | None], nks: Sequence[str | None], w: KeyWindow) -> Any:
    keep, dups, kept = dedupe_one(values, nks, w, set())
    new = [nk for nk in kept if nk is not None]
    return keep, dups, new, _header_column(None, "r\x1f", keep, kept)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)
    native = log_mod.native_prepare
    assert native is not None, "hub_native not built"
    batch = _batch()
    w = KeyWindow(1_000_000, timedelta(hours=1))
    w.add_all([f"T-{i:09d}" for i in range(700_000)])
    nks: list[str | None] = [f"T-{i:09d}" for i in range(800_000, 800_000 + N)]
    nks[N // 2] = "T-000000001"
    values: list[bytes | None] = list(batch.values)
    assert _new(values, nks, w) == _old_loop(values, nks, w)
    ratios: dict[str, list[float]] = {"prepare": [], "dedupe": []}
    with tempfile.TemporaryDirectory() as tmp:
        log = SqliteEventLog(Path(tmp) / "log.db")
        log.create_topic("t", args.partitions)
        for _ in range(args.rounds):
            log_mod.native_prepare = native
            on = _cpu(lambda: log._prepare_columns("t", batch), 5)
            log_mod.native_prepare = None
            off = _cpu(lambda: log._prepare_columns("t", batch), 5)
            log_mod.native_prepare = native
            ratios["prepare"].append(on / off)
            new = _cpu(lambda: _new(values, nks, w), 5)
            old = _cpu(lambda: _old_loop(values, nks, w), 5)
            ratios["dedupe"].append(new / old)
            print(
                f"prepare native {on * 1e3:.2f} ms / python {off * 1e3:.2f} ms = {on / off:.2f}"
                f" | dedupe column-wise {new * 1e3:.2f} ms / row loop {old * 1e3:.2f} ms"
                f" = {new / old:.2f}",
                flush=True,
            )
        log.close()
    load = os.getloadavg()[0]
    print(
        f"median new/old: prepare {statistics.median(ratios['prepare']):.2f}"
        f" dedupe {statistics.median(ratios['dedupe']):.2f} (load {load:.1f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
