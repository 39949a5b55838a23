"""The one Parquet batch that reveals a dictionary bomb is bounded too (session 12's "left",
redteam-d #3).

Finding (medium): ``parquet_batches`` measured each batch after Arrow decoded it, so the first
batch of a dictionary bomb was decoded whole: its rows times the widest dictionary value (10,000
rows of a 1 MB value: 10 GB from a ~5 KB file) before it could be refused. The fix
(``ingest.parquet_child._parquet_batch_rows``): each row group's dictionaries are read as
stored (one copy) and the batch size is cut so that one batch of the widest values stays within
``PARQUET_BATCH_BYTES`` (64 MiB). Arrow's memory pool peak is measured in a process of its own.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

MIB = 1 << 20

PROBE = """
import sys
from pathlib import Path
import pyarrow as pa
from ingest.files import FileUnreadable, parquet_batches
rows = 0
try:
    for rb in parquet_batches(Path(sys.argv[1]), 10_000, MIB):
        rows += rb.num_rows
    print("read", rows)
except FileUnreadable as exc:
    print("refused", exc)
print(pa.default_memory_pool().max_memory())
""".replace("MIB", str(MIB))


def _peak(path: Path) -> tuple[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    *said, peak = done.stdout.strip().splitlines()
    return "\n".join(said), int(peak)


def test_the_first_batch_of_a_dictionary_bomb_is_not_decoded_whole(tmp_path: Path) -> None:
    f = tmp_path / "bomb.parquet"
    wide = "x" * 100_000  # under the 1 MiB record limit: refused by its expansion, not per row
    table = pa.table({"trade_id": pa.array([wide] * 3000), "n": pa.array(range(3000))})
    pq.write_table(table, f, compression="zstd")
    assert f.stat().st_size < 20_000
    said, peak = _peak(f)
    assert said.startswith("refused") and "bomb" in said, said
    # Before: the first batch held 3,000 x 100 KB = 300 MB at once (391 MiB peak); now two
    # batches of at most 64 MiB each (162 MiB).
    assert peak < 200 * MIB, f"Arrow peak {peak / MIB:.0f} MiB"


def test_an_ordinary_file_keeps_its_batches(tmp_path: Path) -> None:
    from ingest.files import parquet_batches

    f = tmp_path / "ok.parquet"
    names = [f"T-{i % 50}" for i in range(30_000)]
    pq.write_table(pa.table({"trade_id": names, "n": range(30_000)}), f)
    sizes = [rb.num_rows for rb in parquet_batches(f, 10_000, MIB)]
    assert sizes == [10_000, 10_000, 10_000]
