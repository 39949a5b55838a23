"""Avro container file ingest: native block decoding beside fastavro's per-record datums.

The same trades (``e2e.write_avro``, other ids per run so none is a duplicate) through
``publish_file`` on one hub, alternating in one run:
- ``native``: each batch's blocks decoded to Arrow columns in one call by
  ``hub_native.avro_batch_columns`` (``ingest.avrofile``), the path ``publish_file`` takes;
- ``per-block``: the path before session 23, one ``hub_native.avro_block_columns`` call and
  one record batch per block, concatenated per batch (``avrofile.native_batch_decoder`` None);
- ``fastavro``: the path before it (``ingest.avrofile.native_decoder`` set to None: fastavro's
  datums, ``arrowread.datum_batch``), the reference;
- ``floor``: ``SqliteEventLog.append`` alone of the same number of pre-encoded records with an
  ingested record's headers (the storage floor).
Each figure is events per wall second and per CPU second of this process, with the load.
Run: ``.venv/bin/python -m benchmarks.avro_file_blocks --rows 200000 --rounds 2``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def _timed(n: int, fn: Callable[[], Any]) -> tuple[float, float]:
    c, t = time.process_time(), time.perf_counter()
    fn()
    return n / (time.perf_counter() - t), n / max(time.process_time() - c, 1e-9)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    n = args.rows

    import fastavro

    from benchmarks.e2e_common import ACCOUNTS, ingested_records, trade
    from core.avro import serde
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings
    from ingest import avrofile
    from ingest.files import publish_file
    from tests.service.accounts import open_accounts

    native, native_batch = avrofile.native_decoder, avrofile.native_batch_decoder
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        h = bootstrap(load_settings(environ={}, data_dir=folder / "d", projection_autostart=False))
        try:
            open_accounts(h, [f"ACC-{i}" for i in range(ACCOUNTS)])
            sv = h.registry.get_version("trades-value", "latest")
            schema = h.registry.parsed(sv.id)
            parsed = schema.parsed
            encoded = [
                serde.encode(sv.id, schema, serde.from_json(trade(i), schema.parsed))
                for i in range(n)
            ]
            h.log.create_topic("bench_floor", 1)
            start = 10**8
            for r in range(args.rounds):
                for mode in ("fastavro", "per-block", "native", "floor"):
                    load = os.getloadavg()[0]
                    if mode == "floor":
                        recs = ingested_records(encoded)

                        def append(recs: list[Any] = recs) -> None:
                            for i in range(0, n, 10_000):
                                h.log.append("bench_floor", recs[i : i + 10_000])

                        rates = _timed(n, append)
                    else:
                        path = folder / f"{mode}{r}.avro"
                        with path.open("wb") as fo:
                            fastavro.writer(
                                fo,
                                fastavro.parse_schema(json.loads(sv.schema.text)),
                                (
                                    serde.from_json({**trade(i), "trade_id": f"A-{i}"}, parsed)
                                    for i in range(start, start + n)
                                ),
                            )
                        start += 10**7
                        avrofile.native_decoder = None if mode == "fastavro" else native
                        avrofile.native_batch_decoder = native_batch if mode == "native" else None
                        out: list[Any] = []

                        def ingest(path: Path = path, out: list[Any] = out) -> None:
                            out.append(publish_file(h.ingest, path, "trades"))

                        rates = _timed(n, ingest)
                        got = out[0].result
                        assert got.accepted == n, (got.accepted, got.rejected, got.duplicates)
                    print(
                        f"round {r} {mode:9s} {rates[0]:10,.0f} events/s "
                        f"{rates[1]:10,.0f} events/cpu-s  (load {load:.1f})",
                        flush=True,
                    )
        finally:
            avrofile.native_decoder, avrofile.native_batch_decoder = native, native_batch
            h.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
