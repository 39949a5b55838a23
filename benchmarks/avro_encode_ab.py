"""The Avro row encoder alone, native (``hub_native.avro_encode_rows``) against its numpy
reference (``VectorEncoder.encode_py``), same process, alternating rounds.

The batches are the trades of ``file_full_path``'s Parquet file (``benchmarks.e2e.write_files``)
in 10,000-row record batches (publish_file's batch size), encoded with the TradeExecuted schema
and a wire header, as ``ingest.columnar`` encodes them. Reported: CPU microseconds per row
(``time.process_time``) and the native/reference ratio of each round.
Run: ``.venv/bin/python -m benchmarks.avro_encode_ab [ROWS] [ROUNDS]``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import fastavro
import pyarrow.parquet as pq

from benchmarks.e2e import write_files
from core.avro.vector import plan


def main(rows: int = 200_000, rounds: int = 5) -> None:
    root = Path(__file__).resolve().parent.parent
    schema = fastavro.parse_schema(
        json.loads((root / "domain/schemas/TradeExecuted.avsc").read_text())
    )
    with tempfile.TemporaryDirectory() as tmp:
        table = pq.read_table(write_files(Path(tmp), rows, 10**8)["Parquet"])
    batches = table.to_batches(max_chunksize=10_000)
    enc = plan(schema, batches[0].schema)
    assert enc is not None
    header = b"\x00\x00\x00\x00\x01"
    assert all(enc.encode(rb, header) == enc.encode_py(rb, header) for rb in batches[:3])
    for r in range(rounds):
        got = {}
        for name, fn in (("reference", enc.encode_py), ("native", enc.encode)):
            c0 = time.process_time()
            for rb in batches:
                fn(rb, header)
            got[name] = (time.process_time() - c0) / rows * 1e6
        print(
            f"round {r}: reference {got['reference']:.3f} us/row, native {got['native']:.3f}"
            f" us/row, ratio {got['native'] / got['reference']:.3f}"
        )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
