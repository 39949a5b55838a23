"""``hub lake verify`` against a raw read of the same Parquet files, rows per second.

Baseline: every data file of the table read with pyarrow (``ParquetFile.iter_batches``, all
columns, the default batch size), which is the least any check of every row must do. The
verification also reads the log's records at the rows' positions, recomputes their leaf hashes,
reads the ledger's leaves and decodes each value (PII masked) to compare ``value_json``; the
ratio says what that costs per row. Second baseline: the export of the same rows, which builds
the same rows from the same records (decoding included) and writes them.
Size: ``HUB_BENCH_LAKE_EVENTS`` (default 20,000).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from benchmarks.conftest import Report, peak_rss_mb
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from ingest.publish import OutgoingEvent
from ledger.leaves import LeafEncoder
from storage.lake import export_topic, open_catalog
from storage.lake_verify import verify_topic_table

EVENTS = int(os.environ.get("HUB_BENCH_LAKE_EVENTS", "20000"))


def _event(i: int) -> OutgoingEvent:
    return OutgoingEvent(
        event_type="hub.accounts.AccountOpened",
        value={
            "account_id": f"ACC-{i:07d}",
            "customer_name": f"Name {i}",
            "email": f"a{i}@example.org",
            "date_of_birth": "1980-02-03",
            "country": "GB",
            "kyc_level": "STANDARD",
            "risk_rating": "LOW",
            "base_currency": "EUR",
            "opened_at": "2026-11-25T10:00:00Z",
        },
    )


@pytest.mark.benchmark(group="lake")
def test_lake_verify_against_a_raw_parquet_read(tmp_path: Path, report: Report) -> None:
    h = bootstrap(load_settings(environ={}, data_dir=tmp_path / "hub"))
    try:
        for first in range(0, EVENTS, 2000):
            h.publisher.publish(
                "accounts", [_event(i) for i in range(first, min(EVENTS, first + 2000))], "bench"
            )
        h.ledger.sync(force_checkpoint=True)
        lake = tmp_path / "lake"
        lake.mkdir()
        catalog = open_catalog(f"sqlite:///{lake / 'c.sqlite'}", (lake / "wh").as_uri())

        def decode(r):  # type: ignore[no-untyped-def]
            return h.reader.decode(r, mask_pii=True)

        t = time.perf_counter()
        assert export_topic(catalog, h.log, "accounts", decode, None) == EVENTS
        export_s = time.perf_counter() - t
        table = catalog.load_table("raw.accounts")
        files = [t.file.file_path.removeprefix("file://") for t in table.scan().plan_files()]

        raw = []
        for _ in range(3):
            t = time.perf_counter()
            n = 0
            for path in files:
                for batch in pq.ParquetFile(path).iter_batches():
                    n += batch.num_rows
            raw.append(time.perf_counter() - t)
            assert n == EVENTS
        report.add("lake verify", "raw Parquet read (best of 3)", EVENTS / min(raw), "rows/s")

        rss = peak_rss_mb()
        took = []
        for _ in range(2):
            t = time.perf_counter()
            check = verify_topic_table(
                catalog, h.log, h.ledger.store, "accounts", decode, LeafEncoder().leaf_hashes
            )
            took.append(time.perf_counter() - t)
            assert check.against_log_and_ledger == EVENTS
        report.add(
            "lake verify",
            "hub lake verify (best of 2)",
            EVENTS / min(took),
            "rows/s",
            baseline="raw Parquet read (best of 3)",
        )
        # the export builds the same rows from the same records (and writes them): verify
        # re-derives every row, so it cannot be much faster than the export
        report.add("lake verify", "hub lake export (first, once)", EVENTS / export_s, "rows/s")
        report.add(
            "lake verify",
            "hub lake verify (best of 2) vs export",
            EVENTS / min(took),
            "rows/s",
            baseline="hub lake export (first, once)",
        )
        report.add("lake verify", "peak RSS growth in verify", peak_rss_mb() - rss, "MiB")
    finally:
        h.close()
