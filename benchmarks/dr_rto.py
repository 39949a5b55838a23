"""RTO for a large hub, measured end to end: build, back up, destroy, restore, verify, rebuild.

``make bench-dr`` (``DR_EVENTS=10000000`` by default) runs, timing each step:
1. build: a data folder with DR_EVENTS trades ingested from a Parquet file through the columnar
   ingest path (the fast path: quality rules, dedupe, envelopes, the log), then the ledger sync
   (one leaf per record) and a signed checkpoint;
2. baseline: a plain copy of the same data-folder files, cut into the same chunk size, to a
   fresh local object folder (no snapshot, no hashing, no manifest), and the plain read back;
3. ``hub backup create`` into another fresh local object folder;
4. destroy: the data folder is deleted (RPO: the time from the backup's snapshot to here, and
   the records the backup lacks: none, the hub is quiet);
5. ``hub backup restore`` into the empty path (signature, KEK, every chunk's SHA-256, the root at
   the manifest's size, full ``hub ledger verify``, policy, erasure journal) - the restore RTO;
6. rebuild every projection over the restored log (``--no-views`` skips it) - the full RTO is
   restore + views;
7. the restored ledger's root equals the root before the disaster.
Each step prints one line as it ends (so a long run shows progress) and the last line is a JSON
summary. Beside each step's wall time, ``*_cpu_s`` is the CPU time this process used in it (all
its threads): on a machine shared with other work the wall time includes waiting for a core.
Figures are MB/s of data-folder bytes beside the same-run plain copy, and events/s.

Run: ``make bench-dr`` or ``.venv/bin/python -m benchmarks.dr_rto --events 1000000 --work DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from adapters.local_objectstore import LocalObjectStore
from benchmarks.test_bench_backup import folder_bytes, plain_copy, plain_get
from hub.bootstrap import bootstrap
from hub.recovery import backup, restore
from hub.settings import load_settings
from storage.backup import create_kek_file

CHUNK = 8 << 20
BUILT = "built.json"
REBUILD_BATCH = 100_000
PARQUET_CHUNK = 250_000
INGEST_BATCH = 100_000  # the columnar ingest commits per batch: fewer, bigger transactions


def _say(step: str, **figures: Any) -> None:
    print(json.dumps({"step": step, **figures}, default=str), flush=True)


def build(data: Path, parquet: Path, events: int) -> tuple[str, float, float]:
    """Steps 1: the hub, its trades and its ledger; (admin token, ingest s, ledger sync s)."""
    from benchmarks.test_bench_ingest import parquet_file
    from ingest.files import publish_file
    from tests.service.accounts import open_accounts

    if not parquet.exists():
        t = time.perf_counter()
        parquet_file(parquet, events, chunk=PARQUET_CHUNK)
        _say("parquet file written", rows=events, seconds=round(time.perf_counter() - t, 1))
    h = bootstrap(load_settings(environ={}, data_dir=data, sqlite_synchronous="NORMAL"))
    try:
        token = h.keys.create(["admin"], owner="bench-dr").token
        open_accounts(h, [f"ACC-{i}" for i in range(500)])
        t = time.perf_counter()
        done = [0]

        def tick(n: int, _r: object) -> None:
            done[0] += n
            if done[0] % 1_000_000 < n:
                _say("ingest progress", events=done[0], seconds=round(time.perf_counter() - t, 1))

        out = publish_file(h.ingest, parquet, "trades", batch_size=INGEST_BATCH, on_batch=tick)
        ingest_s = time.perf_counter() - t
        if out.result.accepted != events:
            raise SystemExit(f"ingest accepted {out.result.accepted} of {events} rows")
        t = time.perf_counter()
        h.ledger.sync(force_checkpoint=True)
        sync_s = time.perf_counter() - t
    finally:
        h.close()
    return token, ingest_s, sync_s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--events", type=int, default=int(os.environ.get("DR_EVENTS", "10000000")))
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("DR_WORK", ".bench/dr")))
    ap.add_argument("--no-views", action="store_true", help="Skip the projection rebuild.")
    ap.add_argument("--keep", action="store_true", help="Keep the work folder afterwards.")
    ap.add_argument(
        "--build-only",
        action="store_true",
        help="Only step 1: build the hub into the work folder and stop (a later run with the "
        "same --work and --events starts from it: the build is set-up, not part of the RTO).",
    )
    args = ap.parse_args(argv)
    if args.events < 1:
        ap.error(f"--events must be at least 1, not {args.events}.")
    work: Path = args.work.resolve()
    built_file = work / BUILT
    built: dict[str, Any] | None = None
    if built_file.exists() and not args.build_only:
        built = json.loads(built_file.read_text())
        if built["events"] != args.events:
            ap.error(f"{work} holds a build of {built['events']} events, not {args.events}.")
    elif work.exists() and any(p.name != "trades.parquet" for p in work.iterdir()):
        ap.error(f"The work folder {work} is not empty; remove it or pass another --work.")
    work.mkdir(parents=True, exist_ok=True)
    data, objects, plain = work / "hub", work / "objects", work / "plain"
    summary: dict[str, Any] = {"events": args.events}
    try:
        t0 = time.perf_counter()
        if built is None:  # 1
            c0 = time.process_time()
            token, ingest_s, sync_s = build(data, work / "trades.parquet", args.events)
            built = {
                "events": args.events,
                "token": token,
                "ingest_s": round(ingest_s, 1),
                "ingest_events_s": round(args.events / ingest_s),
                "ledger_sync_s": round(sync_s, 1),
                "build_cpu_s": round(time.process_time() - c0, 1),
            }
            if args.build_only:
                built_file.write_text(json.dumps(built))
                shown = {k: v for k, v in built.items() if k != "token"}
                _say("built", **shown, seconds=round(time.perf_counter() - t0, 1))
                args.keep = True
                return 0
        else:
            built_file.unlink()  # the build is used once: the run below destroys it
            _say("reusing the build", folder=str(data))
        token = built.pop("token")
        built.pop("events")
        size = folder_bytes(data)
        mb = size / 1e6
        summary |= {"folder_mb": round(mb, 1), **built}
        _say("built", **summary, seconds=round(time.perf_counter() - t0, 1))

        t = time.perf_counter()  # 2
        plain_copy(data, LocalObjectStore(plain))
        copy_s = time.perf_counter() - t
        t = time.perf_counter()
        plain_get(LocalObjectStore(plain), work / "plain-out")
        get_s = time.perf_counter() - t
        shutil.rmtree(plain)
        shutil.rmtree(work / "plain-out")
        summary |= {
            "plain_copy_mb_s": round(mb / copy_s, 1),
            "plain_get_mb_s": round(mb / get_s, 1),
        }
        _say("baseline", plain_copy_s=round(copy_s, 1), plain_get_s=round(get_s, 1))

        kek = create_kek_file(work / "kek" / "backup.kek")  # 3
        settings = load_settings(environ={}, data_dir=data, object_store_dir=objects)
        h = bootstrap(settings)
        try:
            t, c = time.perf_counter(), time.process_time()
            m = backup(h, LocalObjectStore(objects), kek, chunk_bytes=CHUNK)
            backup_s = time.perf_counter() - t
            summary["backup_cpu_s"] = round(time.process_time() - c, 1)
            root_before = h.ledger.store.root(m.ledger_size).hex()
        finally:
            h.close()
        summary |= {
            "backup_s": round(backup_s, 1),
            "backup_mb_s": round(mb / backup_s, 1),
            "backup_vs_plain_copy": round(copy_s / backup_s, 2),
            "backup_events_s": round(args.events / backup_s),
            "ledger_size": m.ledger_size,
        }
        _say("backup", backup_s=summary["backup_s"], backup_mb_s=summary["backup_mb_s"])

        shutil.rmtree(data)  # 4: the disaster
        disaster_ms = time.time_ns() // 1_000_000
        summary["rpo_s"] = round((disaster_ms - m.created_at_ms) / 1000, 1)
        summary["records_lost"] = 0
        _say("destroyed", data=str(data))

        t, c = time.perf_counter(), time.process_time()  # 5
        result = restore(settings, LocalObjectStore(objects), kek, data, token, backup_id=m.id)
        restore_s = time.perf_counter() - t
        summary["restore_cpu_s"] = round(time.process_time() - c, 1)
        summary |= {
            "restore_s": round(restore_s, 1),
            "restore_mb_s": round(mb / restore_s, 1),
            "restore_vs_plain_get": round(get_s / restore_s, 3),
            "restore_events_s": round(args.events / restore_s),
            "restore_steps_s": result.as_dict()["seconds"],
        }
        _say("restored", restore_s=summary["restore_s"], steps=summary["restore_steps_s"])

        views_s = 0.0
        if not args.no_views:  # 6
            from projections.catalog import PROJECTIONS

            # a catch-up over the whole log: batches of REBUILD_BATCH records (one fold and one
            # insert per batch; HUB_PROJECTION_BATCH_RECORDS, 20,000 by default, suits following)
            rebuild = settings.model_copy(update={"projection_batch_records": REBUILD_BATCH})
            h = bootstrap(rebuild, install_domain=False)
            try:
                t, c = time.perf_counter(), time.process_time()
                h.projections.run([p.name for p in PROJECTIONS])
                views_s = time.perf_counter() - t
                summary["views_cpu_s"] = round(time.process_time() - c, 1)
            finally:
                h.close()
            _say("views rebuilt", views_s=round(views_s, 1))
        summary["views_s"] = round(views_s, 1) if not args.no_views else None
        summary["rto_s"] = round(restore_s + views_s, 1)

        h = bootstrap(settings, install_domain=False)  # 7
        try:
            root_after = h.ledger.store.root(m.ledger_size).hex()
        finally:
            h.close()
        if root_after != root_before:
            raise SystemExit(f"restored root {root_after} differs from {root_before}")
        summary["ledger_root"] = root_after
        _say("summary", **summary)
    finally:
        if not args.keep:
            for p in (data, objects, plain, work / "plain-out", work / "kek"):
                shutil.rmtree(p, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
