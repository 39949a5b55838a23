"""Cost of session 13's reader bounds, same run, alternating old and new (CPU seconds).

- Parquet: ``parquet_batches`` of the old tree (``--against``, a ``git archive`` of main) and of
  this one, on the 10M-cell file of ``benchmarks/file_read_bounds.py`` (one row group, pyarrow
  defaults) and on the same rows in 100 row groups of 10,000 (the dictionary probe runs once per
  row group).
- CSV: ``_csv_rows`` old (``for line in f``) and new (``readline`` capped at the record limit)
  on 1M trade rows.

The old module is loaded from ``<against>/ingest/files.py`` beside this tree's packages (the
modules it imports are unchanged). Run:
``.venv/bin/python -m benchmarks.bounded_readers_s13 /tmp/old [rounds]``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from benchmarks.file_read_bounds import LIMIT, ROWS, _write
from ingest import files as new
from ingest.localfile import OpenedFile


def _old(against: Path) -> Any:
    spec = importlib.util.spec_from_file_location("old_files", against / "ingest" / "files.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_files"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _parquet(mod: Any) -> Callable[[Path], int]:
    def run(path: Path) -> int:
        with OpenedFile(path) as opened:
            return sum(rb.num_rows for rb in mod.parquet_batches(opened, 10_000, LIMIT))

    return run


def _csv(mod: Any) -> Callable[[Path], int]:
    def run(path: Path) -> int:
        with OpenedFile(path) as opened:
            return sum(1 for _ in mod._csv_rows(opened, LIMIT))

    return run


def _cpu(fn: Callable[[Path], int], path: Path) -> float:
    start = time.process_time()
    fn(path)
    return time.process_time() - start


def main(against: Path, rounds: int) -> None:
    old = _old(against)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        one, _ = _write(folder)
        many = folder / "many.parquet"
        pq.write_table(pq.read_table(one), many, row_group_size=10_000)
        csv_path = folder / "n.csv"
        with csv_path.open("wb") as f:
            f.write(b"trade_id,account_id,instrument,side,quantity,price,currency,executed_at\n")
            for i in range(ROWS):
                f.write(b"T-%d,ACC-%d,AAPL,BUY,100,189.12,USD,2026-11-25T14:30:00Z\n" % (i, i))
        cases = {
            "pq1": (one, _parquet(old), _parquet(new)),
            "pq100": (many, _parquet(old), _parquet(new)),
            "csv": (csv_path, _csv(old), _csv(new)),
        }
        totals = {f"{k}_{w}": 0.0 for k in cases for w in ("old", "new")}
        for r in range(rounds):
            line = []
            for k, (path, o, n) in cases.items():
                for w, fn in (("old", o), ("new", n)) if r % 2 == 0 else (("new", n), ("old", o)):
                    t = _cpu(fn, path)
                    totals[f"{k}_{w}"] += t
                    line.append(f"{k}_{w} {t:.3f}")
            print(f"round {r}: " + "  ".join(line), f" load {os.getloadavg()[0]:.1f}")
        print(
            "  ".join(f"{k} new/old {totals[k + '_new'] / totals[k + '_old']:.3f}x" for k in cases)
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 6)
