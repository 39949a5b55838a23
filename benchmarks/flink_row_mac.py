"""What checking a Flink result row's MAC costs the result loader (``projections.flink.rowmac``),
against the loader's per-record work before it (``json.loads`` + ``_physical``), on the same
records in ONE process, alternating round by round:

- ``parse``: ``_physical(t, json.loads(value))``, the record's work before the check (baseline);
- ``check+parse``: ``_authentic`` (JSON of key and value, canonical values, HMAC-SHA256, the
  key compared with the row's), then ``_physical`` of the value it parsed: what ``ResultLoader``
  does now.

Thread CPU time per record, best of ``--rounds``; rows of ``payment_aggregates.aml_daily``.
With ``--load N``: also a whole full load (``ResultLoader._full``: read, check, write to chDB) of
N rows from a hub's log, checked against the same loader trusting the rows (the parse only),
and checked without the per-key version rule (each record replacing its key's, as before s18),
alternated, best wall time of 3 each.

    .venv/bin/python -m benchmarks.flink_row_mac --records 5000 --rounds 7 --load 20000
"""

from __future__ import annotations

import argparse
import json
import time
from decimal import Decimal
from typing import Any

from core.ports.eventlog import StoredRecord
from projections.catalog import PAYMENT_AGGREGATES
from projections.flink.compile import partial_columns, result_topic
from projections.flink.results import _authentic, _physical
from projections.flink.rowmac import COLUMN, row_mac

KEY = b"k" * 32
TABLE = PAYMENT_AGGREGATES.table("aml_daily")


def records(n: int) -> list[StoredRecord]:
    out = []
    for i in range(n):
        ident = {"tenant": "acme", "account_id": f"A{i}", "day": 1_772_409_600_000_000}
        ident |= {"currency": "EUR"}
        value = ident | {
            "events": i,
            "amount": Decimal(f"{i}.25"),
            "near_threshold": i,
            "near_threshold_amount": Decimal(f"{i}.25"),
            "src_topic": "payments",
            "src_partition": 0,
            "src_first": 0,
            "src_last": i,
        }
        value[COLUMN] = row_mac(KEY, TABLE.name, [value[n] for n, _ in partial_columns(TABLE)])
        key = json.dumps(ident | {"src_topic": "payments", "src_partition": 0}).encode()
        body = json.dumps(value, default=float).encode()  # decimals as plain numbers, as Flink
        out.append(StoredRecord("flink.aml_daily", 0, i, 0, key, body))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--load", type=int, default=0)
    args = ap.parse_args()
    rs = records(args.records)
    assert all(_authentic(KEY, TABLE, r)[0] is None for r in rs)

    def parse() -> None:
        for r in rs:
            _physical(TABLE, json.loads(r.value or b"", parse_float=Decimal))

    def check_parse() -> None:
        for r in rs:
            _physical(TABLE, _authentic(KEY, TABLE, r)[1])

    best = {"parse": float("inf"), "check+parse": float("inf")}
    for _ in range(args.rounds):
        for name, fn in (("parse", parse), ("check+parse", check_parse)):
            t0 = time.thread_time()
            fn()
            best[name] = min(best[name], (time.thread_time() - t0) / len(rs))
    for name, s in best.items():
        print(f"{name:12} {s * 1e6:7.2f} us/record  {s / best['parse']:.2f}x of parse")
    if args.load:
        full_load(args.load)


def full_load(n: int) -> None:
    import tempfile
    from pathlib import Path

    from core.ports.eventlog import Record
    from core.ports.views import Target
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings
    from projections.flink import results

    checking = results._authentic
    versioned = results.ResultLoader._fold

    def unversioned(
        self: results.ResultLoader,
        t: Any,
        r: StoredRecord,
        partition: int,
        latest: dict[Any, Any],
        held: Any,
        count: bool,
    ) -> None:
        found = self._row(t, r, partition, count)
        if found is not None:
            latest[found[0]] = found[1]

    def trusting(key: bytes | None, t: object, r: StoredRecord) -> tuple[None, Any, Any]:
        return None, json.loads(r.value or b"", parse_float=Decimal), (str(r.key),)

    best = {"trusting": float("inf"), "checking": float("inf"), "unversioned": float("inf")}
    with tempfile.TemporaryDirectory() as tmp:
        environ = {"HUB_PROJECTION_AUTOSTART": "false"}
        hub = bootstrap(load_settings(environ=environ, data_dir=Path(tmp)))
        topic = result_topic(TABLE)
        hub.log.create_topic(topic, 1)
        hub.log.append(topic, [Record(r.value, key=r.key) for r in records(n)])
        store = hub.projections.store("analytics")
        store.ensure(Target(PAYMENT_AGGREGATES.name, results.LIVE), [TABLE])
        try:
            for _ in range(3):
                for name, fn in (
                    ("trusting", trusting),
                    ("checking", checking),
                    ("unversioned", checking),
                ):
                    results._authentic = fn
                    results.ResultLoader._fold = (  # type: ignore[method-assign]
                        unversioned if name == "unversioned" else versioned
                    )
                    loader = results.ResultLoader(hub.log, store, row_key=KEY)
                    t0 = time.perf_counter()
                    loader._full(PAYMENT_AGGREGATES, [TABLE])
                    best[name] = min(best[name], time.perf_counter() - t0)
                    assert loader.refused == 0
                    assert len(loader.rows(PAYMENT_AGGREGATES, TABLE)) == n
        finally:
            results._authentic = checking
            results.ResultLoader._fold = versioned  # type: ignore[method-assign]
            hub.close()
    ratio = best["checking"] / best["trusting"]
    print(f"full load of {n} rows: trusting {best['trusting']:.2f} s, checking ", end="")
    print(f"{best['checking']:.2f} s ({ratio:.2f}x)")
    ratio = best["checking"] / best["unversioned"]
    print(f"  checking without per-key versions {best['unversioned']:.2f} s: versions {ratio:.2f}x")


if __name__ == "__main__":
    main()
