"""Same process, one hub: publish_file of fresh 200k-trade Parquet (or JSONL) files, alternating
the native writers on (stored batch + uuid text) and off (the Python references); events per
CPU-s of each publish. Same-run baseline for the native writers' gain without the noise of
separate processes. Run: ``.venv/bin/python -m benchmarks.file_native_ab Parquet 200000 4``."""

import sys
import tempfile
import time
from pathlib import Path

from adapters.sqlite_log import batch as sb
from benchmarks.e2e import write_files
from benchmarks.e2e_common import ACCOUNTS
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from ingest import ids
from ingest.files import publish_file
from tests.service.accounts import open_accounts

fmt, n, pairs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
native = (sb.native_stored_columns, ids.native_uuid7_text)
with tempfile.TemporaryDirectory() as tmp:
    folder = Path(tmp)
    h = bootstrap(load_settings(environ={}, data_dir=folder / "d", projection_autostart=False))
    try:
        open_accounts(h, [f"ACC-{i}" for i in range(ACCOUNTS)])
        files = [write_files(folder / f"f{k}", n, 10**8 + k * n)[fmt] for k in range(2 * pairs + 1)]
        publish_file(h.ingest, files[-1], "trades", batch_size=10_000)  # warm-up
        rates = {"on": [], "off": []}
        for k in range(2 * pairs):
            mode = ("on", "off")[(k + k // 2) % 2]  # on off off on on off ...
            sb.native_stored_columns, ids.native_uuid7_text = (
                native if mode == "on" else (None, None)
            )
            c = time.process_time()
            out = publish_file(h.ingest, files[k], "trades", batch_size=10_000)
            rates[mode].append(n / (time.process_time() - c))
            assert out.result.accepted == n, out.result
        sb.native_stored_columns, ids.native_uuid7_text = native
        print(
            fmt,
            "on",
            [f"{r:,.0f}" for r in rates["on"]],
            "off",
            [f"{r:,.0f}" for r in rates["off"]],
            "ratios",
            [round(a / b, 3) for a, b in zip(rates["on"], rates["off"], strict=True)],
        )
    finally:
        h.close()
