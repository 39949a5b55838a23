"""Session 18 micro A/B of the file readers' batch building, one process, alternating, thread
CPU (``time.thread_time``) per call, best of ``--repeat`` calls, ``--rounds`` rounds:

- ``json``: ``ingest.arrowread.json_batch`` of 10,000 JSON-lines trades (``benchmarks.e2e``;
  ``venue`` and ``fees`` left out, so ``_missing`` searches their names) with the native name
  search (native/src/find_text.rs), then with ``bytes.__contains__`` (the reference).
- ``csv mark``: the quote/control-byte marking of 10,000 CSV trade rows, in place (as
  ``csv_batch`` now does), against ``np.isin`` of the marked positions (before).

Run: ``.venv/bin/python -m benchmarks.read_batch_ab [--rounds 7] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.ab_common import print_ratios, thread_cpu
from benchmarks.e2e import write_files
from ingest import arrowread
from ingest.arrowread import json_batch, layout
from ingest.lines import Lines

N = 10_000


def _mark_isin(rows: Lines) -> Any:
    octets = np.frombuffer(rows.data, dtype=np.uint8)
    odd = np.flatnonzero(((octets < 0x20) & (octets != 0x09)) | (octets == 0x22))
    return odd[~np.isin(odd, rows.ends[:-1])]


def _mark_in_place(rows: Lines) -> Any:
    octets = np.frombuffer(rows.data, dtype=np.uint8)
    marked = ((octets < 0x20) & (octets != 0x09)) | (octets == 0x22)
    joins = rows.ends[:-1]
    marked[joins[joins < len(marked)]] = False
    return np.flatnonzero(marked)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    schema = json.loads(Path("domain/schemas/TradeExecuted.avsc").read_text())
    lay = layout(schema)
    assert lay is not None
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_files(Path(tmp), N, 10**8)
        jl = Lines.texts(paths["JSONL"].read_bytes().splitlines())
        csv = Lines.texts(paths["CSV"].read_bytes().splitlines()[1:])
    native = arrowread._native_contains_text
    assert native is not None, "hub_native is not built"
    assert np.array_equal(_mark_isin(csv), _mark_in_place(csv))

    def json_off() -> Any:
        arrowread._native_contains_text = None
        try:
            return json_batch(jl, lay, 10**6)
        finally:
            arrowread._native_contains_text = native

    assert json_off()[0].equals(json_batch(jl, lay, 10**6)[0])
    ratios: dict[str, list[float]] = {"json": [], "csv mark": []}
    for r in range(args.rounds):
        on = thread_cpu(lambda: json_batch(jl, lay, 10**6), args.repeat)
        off = thread_cpu(json_off, args.repeat)
        new = thread_cpu(lambda: _mark_in_place(csv), args.repeat)
        old = thread_cpu(lambda: _mark_isin(csv), args.repeat)
        ratios["json"].append(on / off)
        ratios["csv mark"].append(new / old)
        print(
            f"round {r}: json_batch native {on * 1e3:.2f} ms, reference {off * 1e3:.2f} ms"
            f" ({on / off:.3f}); csv mark in place {new * 1e3:.3f} ms, isin {old * 1e3:.3f} ms"
            f" ({new / old:.3f})",
            flush=True,
        )
    print_ratios(ratios)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
