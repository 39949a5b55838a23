"""A CSV file without newlines is read with memory bounded (session 12's "left", redteam-d #4).

Finding (low): ``_csv_rows`` iterated the file's lines (``for line in f``), so one 24 MB line
with no newline was held whole (and copied) before the record limit refused it; JSONL had been
fixed in session 12. The fix: ``_csv_lines`` reads at most ``limit + 1`` bytes of a line and
skips the rest in blocks, keeping the whole line's size and SHA-256 for the quarantine.
"""

from __future__ import annotations

import hashlib
import io
import random
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

import ingest.files as files
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from ingest.files import publish_file
from ingest.quarantine import entries

LIMIT = 4096  # HUB_MAX_RECORD_BYTES of the small hub below
MIB = 1 << 20
HEADER = b"trade_id,account_id,instrument,side,quantity,price,currency,executed_at,trader_id\n"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    environ = {"HUB_PROJECTION_AUTOSTART": "false", "HUB_MAX_RECORD_BYTES": str(LIMIT)}
    hub = bootstrap(load_settings(environ=environ, data_dir=tmp_path / "data"))
    try:
        yield hub
    finally:
        hub.close()


@pytest.mark.parametrize("columnar", [True, False], ids=["columnar", "per-record"])
def test_a_csv_file_without_a_newline_is_read_with_memory_bounded(
    hub: Hub, tmp_path: Path, columnar: bool
) -> None:
    f = tmp_path / "one-line.csv"
    start, end = b"T-1,ACC-1,", b",BUY,1,1.5,USD,2026-11-25T14:30:00Z,"
    with f.open("wb") as out:
        out.write(HEADER + start)
        for _ in range(24):
            out.write(b"x" * MIB)
        out.write(end)
    tracemalloc.start()
    try:
        res = publish_file(hub.ingest, f, "trades", columnar=columnar)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert res.records == 1 and res.result.rejected == 1
    assert peak < 16 * MIB, f"peak {peak / MIB:.1f} MiB"
    (found,) = entries(hub.ingest, topic="trades")
    assert found["reason_code"] == "payload_too_large" and found["truncated"], found
    whole = hashlib.sha256(start)
    for _ in range(24):
        whole.update(b"x" * MIB)
    whole.update(end)
    assert found["original_size"] == len(start) + 24 * MIB + len(end)  # whole, not the start
    assert found["original_sha256"] == whole.hexdigest()


@pytest.mark.parametrize("seed", range(20))
def test_csv_lines_match_the_whole_line_reference(
    monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Against ``for line in f``: the same lines (without their ``\\n``), except that a line
    over the cap is its first cap bytes carrying the whole line's size and SHA-256 (without its
    end), whatever the block size and whatever CRs end it."""
    rnd = random.Random(seed)
    monkeypatch.setattr(files, "_LINES_BLOCK_BYTES", rnd.choice([1, 3, 7, 64]))
    cap = rnd.choice([4, 9, 16])
    pieces = [b"a", b"\r", b"\n", b" ", b'"', b"bc,d", b"\r\n", b"xxxxxxxxxxxx"]
    data = b"".join(rnd.choice(pieces) for _ in range(rnd.randrange(0, 80)))
    got = [line for lines, _ in files._csv_lines(io.BytesIO(data), cap) for line in lines]
    want = list(io.BytesIO(data))
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        body = w.rstrip(b"\r\n")
        if not w.strip():  # skipped alike: blank, or cut and marked blank
            assert not g.strip() and getattr(g, "blank", True), (g, w)
        elif len(body) <= cap:
            assert not isinstance(g, files._CutLine) and g.rstrip(b"\r\n") == body, (g, w)
        else:
            assert isinstance(g, files._CutLine) and bytes(g) == body[:cap], (g, w)
            assert (g.size, g.sha256) == (len(body), hashlib.sha256(body).hexdigest())
