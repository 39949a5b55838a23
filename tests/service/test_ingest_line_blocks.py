"""JSON lines and CSV files read by blocks (``ingest.lines.Lines``) store what the line-by-line
reference stores, byte for byte.

The same file, mixing good rows with rows that fail (not JSON, quoted or short CSV rows, rule
failures, duplicates, blank and CRLF lines, rows over the record limit) and with unicode text and
decimals written as strings and as JSON numbers, goes through two hubs:
- the reference: the per-record path (``publish_file(columnar=False)``) fed by line-by-line
  readers as they were before the block readers (``for line in f``, one ``(number, bytes)`` pair
  per line; a CSV row joined across lines while a quote is open);
- the new path: the block readers (``Lines``) and the columnar path.
Event ids, the receipt time and the log's append time are fixed for both runs, so the data
topic's stored batches must be identical (all but the MAC: each hub has its own key), and so
must the quarantine entries (each bad row's original bytes and reason), counts and positions.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from adapters.sqlite_log import SqliteEventLog
from hub.bootstrap import Hub
from ingest import columnar, files, pipeline
from ingest.files import publish_file
from ingest.lines import Lines
from tests.service.test_ingest_arrow_readers import csv_file, jsonl
from tests.service.test_ingest_arrow_readers import two as two
from tests.service.test_ingest_columnar import positions, quarantined

FIXED_NOW = datetime.now(UTC)  # the files' times are drawn around the real clock
FIXED_MS = 1_796_300_000_000


class _Frozen(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return FIXED_NOW


@pytest.fixture
def fixed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The same ids, receipt time and append time on both paths; ``restart()`` per run."""
    state = {"ids": count()}

    def ids(n: int, now_ns: int | None = None) -> list[bytes]:
        return [b"%036d" % next(state["ids"]) for _ in range(n)]

    for module in (columnar, pipeline):
        monkeypatch.setattr(module, "uuid7_bytes", ids)
        monkeypatch.setattr(module, "datetime", _Frozen)
    monkeypatch.setattr(
        SqliteEventLog,
        "_timestamps",
        staticmethod(lambda v: [FIXED_MS if t is None else t for t in v]),
    )

    def restart() -> None:
        state["ids"] = count()

    yield restart


def _jsonl_by_line(path: Any, batch_size: int, max_bytes: int | None = None) -> Iterator[Any]:
    """The reader before the block reader: numbered lines without their ends, blank ones
    skipped, in runs of ``batch_size``."""
    with files._open_rb(path) as f:
        numbered = ((n, line.rstrip(b"\r\n")) for n, line in enumerate(f, 1))
        yield from files._nonblank_batches(numbered, batch_size)


def _csv_by_line(path: Any, max_bytes: int) -> Iterator[Lines]:
    """CSV rows as the line-by-line reader gave them (a row joined over lines while a quoted
    field is open), one pair at a time."""
    with files._open_rb(path) as f:
        parts: list[bytes] = []
        start = 0
        for lineno, raw in enumerate(f, 1):
            line = raw[:-1] if raw.endswith(b"\n") else raw
            odd = line.count(b'"') % 2
            if not parts:
                if not odd:
                    yield Lines.of([(lineno, line.rstrip(b"\r"))])
                    continue
                start = lineno
            parts.append(line)
            if parts[1:] and odd:
                yield Lines.of([(start, b"\n".join(parts).rstrip(b"\r\n"))])
                parts = []
        if parts:
            yield Lines.of([(start, b"\n".join(parts).rstrip(b"\r\n"))])


def _batches(h: Hub, topic: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(h.log._path) as conn:  # type: ignore[attr-defined]
        return conn.execute(
            "SELECT b.part, b.base_offset, b.last_offset, b.record_count, b.max_timestamp,"
            " b.data FROM batches b JOIN topics t ON t.id = b.topic_id WHERE t.name = ?"
            " ORDER BY b.id",
            (topic,),
        ).fetchall()


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_block_readers_store_the_line_by_line_bytes(
    two: tuple[Hub, Hub],
    fixed: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
) -> None:
    if fmt == "jsonl":
        path = jsonl(tmp_path / "t.jsonl", 900, seed=9)
    else:
        path = csv_file(tmp_path / "t.csv", 900, seed=13)
        rnd = random.Random(13)  # some rows end with CRLF, some with CRs before it
        lines = path.read_bytes().split(b"\n")
        path.write_bytes(b"".join(x + rnd.choice([b"\n", b"\r\n", b"\r\r\n"]) for x in lines[:-1]))
    reference, blocks = two
    # Rows over the record limit among the others (a trade with a long unicode trader id, a
    # padded CSV row): refused for their size on both paths, each quarantined with its first
    # bytes and digest.
    rows = path.read_bytes().split(b"\n")
    rnd = random.Random(7)
    # Rows that parse otherwise (a JSON object naming a currency; CSV rows of the header's
    # width): a line the reader cuts at the limit is refused for its size before it is parsed,
    # where the uncut reference here would parse it first and could give another reason.
    width = rows[0].count(b",")
    fit = [
        i
        for i in range(2, len(rows) - 1)
        # (a JSON row without its own trader id: a second one is a duplicate key, refused as
        # such when parsed)
        if (
            b'"currency"' in rows[i] and b'"trader_id"' not in rows[i]
            if fmt == "jsonl"
            else rows[i].count(b",") == width
        )
    ]
    for at in sorted(rnd.sample(fit, 6), reverse=True):
        row = rows[at]
        if fmt == "jsonl":  # unicode text over the limit
            long = row.replace(
                b'"currency"', b'"trader_id": "' + "é".encode() * 1500 + b'", "currency"'
            )
        else:
            body = row.rstrip(b"\r")  # the padding goes before the row's CRs, if any
            long = body + b"x" * rnd.choice([2_990, 3_000, 9_000]) + row[len(body) :]
        rows.insert(at, long)
    path.write_bytes(b"\n".join(rows))
    for h in two:
        h.ingest.max_record_bytes = 3_000
    # small blocks: batches, blank lines and CRLF ends straddle block ends
    monkeypatch.setattr(files, "_LINES_BLOCK_BYTES", 4096)
    with monkeypatch.context() as m:
        m.setattr(files, "_jsonl_lines", _jsonl_by_line)
        m.setattr(files, "_csv_pieces", _csv_by_line)
        fixed()
        want = publish_file(reference.ingest, path, "trades", batch_size=97, columnar=False)
    fixed()
    got = publish_file(blocks.ingest, path, "trades", batch_size=97)
    assert got.result.as_dict() == want.result.as_dict()
    assert (got.records, got.skipped) == (want.records, want.skipped)
    r = got.result
    assert r.accepted > 300 and r.rejected > 60 and r.duplicates > 10  # every outcome ran
    codes = [x["reason_code"] for x in r.as_dict()["rejections"]]
    assert codes.count("payload_too_large") >= 5  # the long rows
    assert len(_batches(blocks, "trades")) > 5
    assert _batches(blocks, "trades") == _batches(reference, "trades")
    assert quarantined(blocks) == quarantined(reference)  # original bytes, reason, line
    assert list(map(_timeless, positions(blocks))) == list(map(_timeless, positions(reference)))


def _timeless(value: bytes | None) -> bytes | None:
    """A stored position without its last field, the time it was recorded (a zigzag varint:
    its last byte has no continuation bit, the ones before it do)."""
    if value is None:
        return None
    end = len(value) - 1
    while end and value[end - 1] & 0x80:
        end -= 1
    return value[:end]
