"""The stored-batch writer, Python reference against native (and libzstd alone), on the batches
a real Parquet publish of 50k trades writes (captured from ``_prepare_columns``); microseconds
of CPU per row, best of 7, and a check that both give the same blobs.
Run: ``.venv/bin/python -m benchmarks.stored_batch_writer``."""

import tempfile
import time
from pathlib import Path

import pyarrow as pa

import adapters.sqlite_log.log as logmod
from adapters.sqlite_log import batch as s
from benchmarks.e2e import write_files
from benchmarks.e2e_common import ACCOUNTS
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from ingest.files import publish_file
from tests.service.accounts import open_accounts

got = []
orig = logmod.encode_batch_columns


def spy(*a):
    got.append(a)  # as log.py passes them (lists, or tuples from the partition picks)
    return orig(*a)


logmod.encode_batch_columns = spy
with tempfile.TemporaryDirectory() as tmp:
    folder = Path(tmp)
    h = bootstrap(load_settings(environ={}, data_dir=folder / "d", projection_autostart=False))
    try:
        open_accounts(h, [f"ACC-{i}" for i in range(ACCOUNTS)])
        path = write_files(folder / "f", 50_000, 10**8)["Parquet"]
        publish_file(h.ingest, path, "trades", batch_size=10_000)
    finally:
        h.close()
print(len(got), "batches; rows per batch", sorted({len(a[0]) for a in got})[:5], "...")
z = pa.Codec("zstd", compression_level=1)
bodies = [s._body(s.native_stored_columns(*a), 2, len(a[0]))[0] for a in got]
print("body bytes/row", sum(map(len, bodies)) / sum(len(a[0]) for a in got))
best = {}
for _ in range(7):
    for name, f in (
        ("py", lambda: [s.encode_batch_columns_py(*a) for a in got]),
        ("native", lambda: [s.native_stored_columns(*a) for a in got]),
        ("zstd only", lambda: [z.compress(b, asbytes=True) for b in bodies]),
    ):
        t = time.process_time()
        f()
        best[name] = min(best.get(name, 1e9), time.process_time() - t)
rows = sum(len(a[0]) for a in got)
print(
    {k: f"{v / rows * 1e6:.3f} us/row" for k, v in best.items()},
    "native/py",
    round(best["native"] / best["py"], 2),
)
assert all(s.native_stored_columns(*a) == s.encode_batch_columns_py(*a) for a in got)
print("identical blobs on all", len(got), "batches")
