"""Round 4 of the adversarial review: files, storage and outputs (session 12, redteam-d).

Each test is one attack that worked on the tree before its fix (docs/benchmarks/s12-redteam-d.md).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ingest.files as files
from core.errors import InvalidInput
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from ingest.files import FileUnreadable, publish_file, watch_once
from ingest.pipeline import QUARANTINE_TOPIC

LIMIT = 4096  # HUB_MAX_RECORD_BYTES of the small hub below
SECRET = b'{"password": "hunter2"}\n'


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    """A hub whose record limit is 4 KiB."""
    environ = {"HUB_PROJECTION_AUTOSTART": "false", "HUB_MAX_RECORD_BYTES": str(LIMIT)}
    hub = bootstrap(load_settings(environ=environ, data_dir=tmp_path / "data"))
    try:
        yield hub
    finally:
        hub.close()


def _stored(hub: Hub) -> bytes:
    """Every byte the log holds in the trades topic and the quarantine."""
    out = b""
    for topic in ("trades", QUARANTINE_TOPIC):
        try:
            ends = hub.ingest.log.end_offsets(topic)
        except Exception:  # a topic never created holds nothing
            continue
        for partition in range(len(ends)):
            for rec in hub.ingest.log.scan(topic, partition, 0):
                out += rec.value or b""
    return out


def _swap_for_link(path: Path, target: Path) -> None:
    """Put a symbolic link to ``target`` in place of ``path``, atomically (as an attacker would)."""
    tmp = path.with_name(".swap")
    tmp.symlink_to(target)
    os.replace(tmp, path)


# -- 1. symbolic links swapped in after the check --------------------------------------------------
def test_a_file_swapped_for_a_link_after_the_watchers_check_is_not_read(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``watch_once`` checked ``is_symlink()`` and then ``publish_file`` opened the path again:
    a publisher who swapped the dropped file for a link to the hub's keyring in between had it
    read into the topic (here: its line kept in the quarantine). Now the file is opened once
    with ``O_NOFOLLOW``: the link is refused and moved to ``failed/``."""
    secret = tmp_path / "secret.jsonl"
    secret.write_bytes(SECRET)
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.jsonl").write_bytes(b'{"trade_id": "T-1"}\n')
    real = files.publish_file

    def swapped(pipeline: Any, path: Path, *args: Any, **kwargs: Any) -> Any:
        _swap_for_link(Path(path), secret)  # between the watcher's check and the open
        return real(pipeline, path, *args, **kwargs)

    monkeypatch.setattr(files, "publish_file", swapped)
    out = watch_once(hub.ingest, drop, "trades")
    assert out[0][0] == "a.jsonl" and out[0][1].startswith("failed:"), out
    assert "symbolic link" in out[0][1], out
    assert (drop / "failed" / "a.jsonl").is_symlink()
    assert b"hunter2" not in _stored(hub)


def test_a_file_swapped_between_its_digest_and_its_read_is_read_as_opened(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``publish_file`` hashed the path (the source's name), then each reader opened the path
    again: a name swapped for a link after the hash was read under the first file's source.
    Now every read goes through the one descriptor opened first, so the first file is read."""
    secret = tmp_path / "secret.jsonl"
    secret.write_bytes(SECRET)
    f = tmp_path / "a.jsonl"
    f.write_bytes(b'{"trade_id": "T-1"}\n{"trade_id": "T-2"}\n{"trade_id": "T-3"}\n')
    positions = hub.ingest.positions
    real = positions.get

    def swap_then_get(source: str) -> Any:  # after the digest, before any reader opens
        _swap_for_link(f, secret)
        return real(source)

    monkeypatch.setattr(positions, "get", swap_then_get)
    res = publish_file(hub.ingest, f, "trades")
    assert res.records == 3
    assert b"hunter2" not in _stored(hub)


def test_a_link_named_on_the_command_line_is_refused_by_publish_file(
    hub: Hub, tmp_path: Path
) -> None:
    """``publish_file`` opened whatever the name pointed to. A link is now refused by name."""
    secret = tmp_path / "secret.jsonl"
    secret.write_bytes(SECRET)
    (tmp_path / "l.jsonl").symlink_to(secret)
    with pytest.raises(FileUnreadable, match="symbolic link"):
        publish_file(hub.ingest, tmp_path / "l.jsonl", "trades")
    fifo = tmp_path / "f.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(FileUnreadable, match="is not a file"):
        publish_file(hub.ingest, fifo, "trades")  # must not block on the open either


def test_the_watcher_does_not_move_files_through_a_linked_done_folder(
    hub: Hub, tmp_path: Path
) -> None:
    """Whoever may drop files could replace ``done/`` with a link to another folder: the
    watcher moved every ingested file there (``shutil.move`` follows it), planting files the
    hub can write anywhere. Now a linked ``done/`` or ``failed/`` is refused before any read."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "done").symlink_to(elsewhere, target_is_directory=True)
    (drop / "a.jsonl").write_bytes(b'{"trade_id": "T-1"}\n')
    with pytest.raises(InvalidInput, match="symbolic link"):
        watch_once(hub.ingest, drop, "trades")
    assert list(elsewhere.iterdir()) == []
    assert (drop / "a.jsonl").exists()


def test_a_link_under_the_files_name_in_done_does_not_redirect_the_move(
    hub: Hub, tmp_path: Path
) -> None:
    """``done/a.jsonl`` planted as a link to a folder elsewhere: ``shutil.move`` moved the
    ingested file *into* that folder. Now the move renames the entry over the link."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    drop = tmp_path / "drop"
    (drop / "done").mkdir(parents=True)
    (drop / "done" / "a.jsonl").symlink_to(elsewhere, target_is_directory=True)
    (drop / "a.jsonl").write_bytes(b'{"trade_id": "T-1"}\n')
    out = watch_once(hub.ingest, drop, "trades")
    assert [name for name, _ in out] == ["a.jsonl"]
    assert list(elsewhere.iterdir()) == []
    assert (drop / "done" / "a.jsonl").is_file() and not (drop / "done" / "a.jsonl").is_symlink()


# -- 3. a JSON lines file without a newline -------------------------------------------------------
def test_a_jsonl_file_without_a_newline_is_read_with_memory_bounded(
    hub: Hub, tmp_path: Path
) -> None:
    """``_jsonl_lines`` read whole lines (``readlines``): one 24 MB line with no newline was held
    about 3x over before it was refused for its size. Now a line is cut once it passes the
    record limit and the rest of it is skipped: the peak stays near one 4 MiB block."""
    import tracemalloc

    from ingest.quarantine import entries

    f = tmp_path / "one-line.jsonl"
    with f.open("wb") as out:
        out.write(b'{"trade_id": "')
        for _ in range(24):
            out.write(b"x" * (1 << 20))
        out.write(b'"}\n{"trade_id": "T-2"}')
    tracemalloc.start()
    try:
        res = publish_file(hub.ingest, f, "trades")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert res.records == 2
    assert peak < 16 * (1 << 20), f"peak {peak / (1 << 20):.1f} MiB"
    found = entries(hub.ingest, topic="trades")
    assert found[0]["reason_code"] == "payload_too_large" and found[0]["truncated"], found[0]
    whole = hashlib.sha256(b'{"trade_id": "')
    for _ in range(24):
        whole.update(b"x" * (1 << 20))
    whole.update(b'"}')
    assert found[0]["original_size"] == 24 * (1 << 20) + 16  # the whole line, not the kept start
    assert found[0]["original_sha256"] == whole.hexdigest()


@pytest.mark.parametrize("seed", range(20))
def test_cut_lines_keep_the_whole_lines_size_and_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Against the reference (whole lines): same numbers and lines, except that a line over the
    limit is its first limit + 1 bytes carrying the whole line's size and SHA-256, wherever the
    blocks fall (tiny blocks here) and whatever CRs end it."""
    import random

    rnd = random.Random(seed)
    monkeypatch.setattr(files, "_LINES_BLOCK_BYTES", rnd.choice([1, 3, 7, 64]))
    data = b"".join(
        rnd.choice([b"a", b"\r", b"\n", b" ", b"{}"]) * rnd.choice([1, 1, 2, 30]) for _ in range(80)
    )
    f = tmp_path / "r.jsonl"
    f.write_bytes(data)
    limit = rnd.choice([1, 4, 16])
    got = [pair for batch in files._jsonl_lines(f, 5, limit) for pair in batch]
    want = [pair for batch in files._jsonl_lines(f, 5) for pair in batch]
    assert [n for n, _ in got] == [n for n, _ in want]
    for (_, line), (_, full) in zip(got, want, strict=True):
        if len(full) <= limit + 1:  # refused for its size by the pipeline, as before
            assert line == full and not isinstance(line, files._CutLine)
        else:
            assert isinstance(line, files._CutLine) and line == full[: limit + 1]
            assert (line.size, line.sha256) == (len(full), hashlib.sha256(full).hexdigest())


# -- 2. Parquet dictionary bombs -------------------------------------------------------------------
def _bomb(path: Path, value_bytes: int, rows: int, *, arrow_schema: bool = False) -> Path:
    """A Parquet file whose one string column repeats one value ``rows`` times: the writer
    stores it once in the dictionary page (zstd) and ``rows`` small indices."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    column = pa.array(["x" * value_bytes] * rows)
    pq.write_table(
        pa.table({"trade_id": column}), path, compression="zstd", store_schema=arrow_schema
    )
    return path


@pytest.mark.parametrize("arrow_schema", [False, True])
def test_a_parquet_dictionary_bomb_is_refused_at_its_first_batch(
    hub: Hub, tmp_path: Path, arrow_schema: bool
) -> None:
    """A ~600-byte Parquet file (a 100 KB dictionary value, 1,000 rows) decoded to 100 MB and
    was ingested: each row quarantined with its 100 KB rendering. Now a batch decoding to more
    than the record limit per row refuses the file before any of it is appended; a file that
    stored its Arrow schema comes as a dictionary column, whose rows are counted decoded."""
    f = _bomb(tmp_path / "bomb.parquet", 100_000, 1000, arrow_schema=arrow_schema)
    assert f.stat().st_size < 3000
    with pytest.raises(FileUnreadable, match="HUB_MAX_RECORD_BYTES"):
        publish_file(hub.ingest, f, "trades", batch_size=10_000)
    assert b"xxxxxxxx" not in _stored(hub)


def test_a_parquet_bomb_under_the_record_limit_is_refused_by_its_expansion(
    hub: Hub, tmp_path: Path
) -> None:
    """Values under the record limit (2 KB, 40,000 rows: 80 MB from a few KB) passed every
    per-record check. Now the file is refused once its decoded bytes pass 64 MiB plus 1024
    times its size."""
    f = _bomb(tmp_path / "bomb.parquet", 2000, 40_000)
    assert f.stat().st_size < 20_000
    with pytest.raises(FileUnreadable, match="1024x its size"):
        publish_file(hub.ingest, f, "trades", batch_size=50_000)
    assert b"xxxxxxxx" not in _stored(hub)
