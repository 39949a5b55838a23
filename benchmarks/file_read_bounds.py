"""Cost of the bounded file readers (session 12, redteam-d), same run, alternating old and new.

- Parquet: the old read (``ParquetFile(path).iter_batches``) against ``parquet_batches`` with
  the record limit (one descriptor opened without following links, each batch's decoded size
  checked), on a 1M-row x 10-column file (10M cells) written by pyarrow's defaults.
- JSON lines: the old block reader (``readlines`` of whole lines) against ``_jsonl_lines`` with
  the record limit (block split, lines cut at the limit), on 1M trade lines.

CPU seconds (``time.process_time``) of each pass; the machine is shared, so the load average is
printed with each round. Run: ``.venv/bin/python benchmarks/file_read_bounds.py [rounds]``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from itertools import compress, count, repeat
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ingest.files import _jsonl_lines, parquet_batches
from ingest.localfile import OpenedFile

ROWS = 1_000_000
LIMIT = 1_048_576  # HUB_MAX_RECORD_BYTES default


def _write(folder: Path) -> tuple[Path, Path]:
    n = ROWS
    table = pa.table(
        {
            "trade_id": [f"T-{i}" for i in range(n)],
            "account_id": [f"ACC-{i % 1000}" for i in range(n)],
            "instrument": [("AAPL", "MSFT", "GOOG")[i % 3] for i in range(n)],
            "side": [("BUY", "SELL")[i % 2] for i in range(n)],
            "quantity": [str(i % 500) for i in range(n)],
            "price": [f"{i % 1000}.12345678" for i in range(n)],
            "currency": ["USD"] * n,
            "executed_at": ["2026-11-25T14:30:00.123456Z"] * n,
            "q2": pa.array(range(n), pa.int64()),
            "p2": [float(i) for i in range(n)],
        }
    )
    pq_path = folder / "n.parquet"
    pq.write_table(table, pq_path)
    js_path = folder / "n.jsonl"
    with js_path.open("wb") as f:
        for i in range(n):
            f.write(
                b'{"trade_id": "T-%d", "account_id": "ACC-%d", "instrument": "AAPL", '
                b'"side": "BUY", "quantity": "100", "price": "189.12345678", '
                b'"currency": "USD", "executed_at": "2026-11-25T14:30:00.123456Z"}\n'
                % (i, i % 1000)
            )
    return pq_path, js_path


def old_parquet(path: Path) -> int:
    return sum(rb.num_rows for rb in pq.ParquetFile(path).iter_batches(batch_size=10_000))


def new_parquet(path: Path) -> int:
    with OpenedFile(path) as opened:
        return sum(rb.num_rows for rb in parquet_batches(opened, 10_000, LIMIT))


def _old_jsonl_lines(path: Path, batch_size: int) -> Iterator[list[tuple[int, bytes]]]:
    """The session 11 reader (whole lines by ``readlines``), kept here as the baseline."""
    pending: list[tuple[int, bytes]] = []
    number = 1
    with path.open("rb") as f:
        while lines := f.readlines(1 << 22):
            raws = list(map(bytes.rstrip, lines, repeat(b"\r\n")))
            pending += compress(zip(count(number), raws), map(bytes.strip, raws))
            number += len(lines)
            if len(pending) >= batch_size:
                full = len(pending) - len(pending) % batch_size
                for start in range(0, full, batch_size):
                    yield pending[start : start + batch_size]
                pending = pending[full:]
    if pending:
        yield pending


def old_jsonl(path: Path) -> int:
    return sum(len(b) for b in _old_jsonl_lines(path, 10_000))


def new_jsonl(path: Path) -> int:
    with OpenedFile(path) as opened:
        return sum(len(b) for b in _jsonl_lines(opened, 10_000, LIMIT))


def _cpu(fn: Callable[[Path], int], path: Path) -> float:
    start = time.process_time()
    fn(path)
    return time.process_time() - start


def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pq_path, js_path = _write(Path(tmp))
        assert old_parquet(pq_path) == new_parquet(pq_path) == ROWS
        assert old_jsonl(js_path) == new_jsonl(js_path) == ROWS
        totals = {k: 0.0 for k in ("pq_old", "pq_new", "js_old", "js_new")}
        for r in range(rounds):
            figures = {
                "pq_old": _cpu(old_parquet, pq_path),
                "pq_new": _cpu(new_parquet, pq_path),
                "js_old": _cpu(old_jsonl, js_path),
                "js_new": _cpu(new_jsonl, js_path),
            }
            for k, v in figures.items():
                totals[k] += v
            print(
                f"round {r}: " + "  ".join(f"{k} {v:.3f}" for k, v in figures.items()),
                f" load {os.getloadavg()[0]:.1f}",
            )
        print(
            f"parquet new/old {totals['pq_new'] / totals['pq_old']:.3f}x   "
            f"jsonl new/old {totals['js_new'] / totals['js_old']:.3f}x"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
