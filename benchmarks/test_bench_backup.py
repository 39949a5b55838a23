"""Backup and restore throughput beside a plain copy of the same bytes to the same store.

Groups (each figure has its same-run baseline):
- ``backup``: ``hub backup create`` of a data folder holding BACKUP_BENCH_EVENTS records (200-byte
  values, 3 partitions, every record on the ledger) into a fresh local object folder, in MB/s of
  data-folder bytes and events/s; baseline: ``plain copy``, the same files cut into the same
  chunk size and written to the same kind of store (no snapshot, no hashing, no manifest).
- ``restore``: ``hub backup restore`` of that backup (fetch with SHA-256 checks, open, ledger
  sync and full ``verify``, policy check, rename), the RTO of this folder; baseline: ``plain
  get``, the same chunks read back and written to a folder.
- ``incremental``: a second backup after 1 % more records: bytes uploaded vs the first's.
Optional S3 rows when infra/s3.sh runs (``s3 backup`` vs ``s3 plain copy``).

Run: ``BACKUP_BENCH_EVENTS=1000000 .venv/bin/pytest benchmarks/test_bench_backup.py -q -s -p
no:randomly``
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from adapters.local_objectstore import LocalObjectStore
from benchmarks.conftest import Report
from core.ports.eventlog import Record
from core.ports.objectstore import ObjectStore
from hub.bootstrap import bootstrap
from hub.recovery import backup, restore
from hub.settings import load_settings
from storage.backup import create_kek_file, data_files

EVENTS = int(os.environ.get("BACKUP_BENCH_EVENTS", "200000"))
CHUNK = int(os.environ.get("BACKUP_BENCH_CHUNK_KIB", "8192")) << 10
ROOT = Path(__file__).resolve().parents[1]


def fill(data: Path, n: int, start: int = 0) -> str:
    """Append ``n`` records to topic ``bench`` and give them ledger leaves; an admin token."""
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        token = h.keys.create(["admin"], owner="bench").token if start == 0 else ""
        h.log.create_topic("bench", 3)
        value = os.urandom(200)
        for base in range(start, start + n, 50_000):
            count = min(50_000, start + n - base)
            h.log.append(
                "bench",
                [Record(value=value, key=f"k{i}".encode(), partition=i % 3) for i in range(count)],
            )
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    return token


def folder_bytes(data: Path) -> int:
    return sum((data / rel).stat().st_size for rel in data_files(data))


def plain_copy(data: Path, store: ObjectStore) -> None:
    for i, rel in enumerate(data_files(data)):
        with (data / rel).open("rb") as f:
            j = 0
            while chunk := f.read(CHUNK):
                store.put(f"plain/{i}/{j}", chunk)
                j += 1


def plain_get(store: ObjectStore, out: Path) -> None:
    out.mkdir(parents=True)
    for key in store.list("plain/"):
        (out / key.replace("/", "_")).write_bytes(store.get(key))


def s3_store(prefix: str) -> ObjectStore | None:
    done = subprocess.run(
        ["bash", str(ROOT / "infra" / "s3.sh"), "status"], capture_output=True, timeout=30
    )
    if done.returncode != 0:
        return None
    from adapters.s3_objectstore import S3ObjectStore

    port = os.environ.get("HUB_S3_PORT", "19333")
    return S3ObjectStore(
        f"127.0.0.1:{port}",
        os.environ.get("HUB_S3_ACCESS_KEY", "hub-dev"),
        os.environ.get("HUB_S3_SECRET_KEY", "hub-dev-secret"),
        "hub-bench",
        prefix=prefix,
    )


@pytest.mark.benchmark(group="backup")
def test_backup_and_restore_throughput(tmp_path: Path, report: Report) -> None:
    data = tmp_path / "hub"
    token = fill(data, EVENTS)
    size_mb = folder_bytes(data) / 1e6
    kek = create_kek_file(tmp_path / "kek" / "backup.kek")
    settings = load_settings(environ={}, data_dir=data, object_store_dir=tmp_path / "objects")

    t = time.perf_counter()
    plain_copy(data, LocalObjectStore(tmp_path / "plain"))
    plain_s = time.perf_counter() - t
    report.add("backup", "plain copy", size_mb / plain_s, "MB/s")

    store = LocalObjectStore(tmp_path / "objects")
    h = bootstrap(settings)
    try:
        t = time.perf_counter()
        m = backup(h, store, kek, chunk_bytes=CHUNK)
        backup_s = time.perf_counter() - t
    finally:
        h.close()
    report.add("backup", "hub backup create", size_mb / backup_s, "MB/s", baseline="plain copy")
    report.add("backup", "hub backup create (events)", EVENTS / backup_s, "events/s")

    t = time.perf_counter()
    plain_get(LocalObjectStore(tmp_path / "plain"), tmp_path / "plain-out")
    get_s = time.perf_counter() - t
    report.add("restore", "plain get", size_mb / get_s, "MB/s")
    t = time.perf_counter()
    result = restore(settings, store, kek, tmp_path / "restored", token, backup_id=m.id)
    restore_s = time.perf_counter() - t
    assert result.ledger_root == m.ledger_root
    report.add(
        "restore", "hub backup restore (RTO)", size_mb / restore_s, "MB/s", baseline="plain get"
    )
    report.add("restore", "hub backup restore (events)", EVENTS / restore_s, "events/s")
    report.add("restore", "RTO of this folder", restore_s, "s", higher_is_better=False)
    for step, secs in result.seconds.items():
        report.add("restore", f"  of which {step}", secs, "s", higher_is_better=False)

    fill(data, max(1, EVENTS // 100), start=EVENTS)
    h = bootstrap(settings)
    try:
        m2 = backup(h, store, kek, chunk_bytes=CHUNK)
    finally:
        h.close()
    first = m.stats["uploaded_bytes"]
    per_file = {
        f.path: len(set(f.chunks) - {c for g in m.files for c in g.chunks}) for f in m2.files
    }
    print("new chunks per file after +1 %:", {k: v for k, v in per_file.items() if v})
    report.add("incremental", "full backup uploaded", first / 1e6, "MB")
    report.add(
        "incremental",
        "after +1 % records uploaded",
        m2.stats["uploaded_bytes"] / 1e6,
        "MB",
        baseline="full backup uploaded",
        higher_is_better=False,
    )

    s3 = s3_store(f"bench-{os.getpid()}-{time.time_ns()}")
    if s3 is not None:
        t = time.perf_counter()
        plain_copy(data, s3)
        report.add("s3 backup", "s3 plain copy", size_mb / (time.perf_counter() - t), "MB/s")
        s3b = s3_store(f"bench-b-{os.getpid()}-{time.time_ns()}")
        assert s3b is not None
        h = bootstrap(settings)
        try:
            t = time.perf_counter()
            backup(h, s3b, kek, chunk_bytes=CHUNK)
            report.add(
                "s3 backup",
                "s3 hub backup create",
                size_mb / (time.perf_counter() - t),
                "MB/s",
                baseline="s3 plain copy",
            )
        finally:
            h.close()
    shutil.rmtree(tmp_path, ignore_errors=True)
