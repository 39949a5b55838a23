"""``hub ledger verify --full`` reads and MACs every stored log batch once: step 1
authenticates the batches it reads on the bytes read (``EventLog.check_records(read=...)``)
and step 5 (``integrity_problems(checked)``) reads only the rest of the log.

The one-read run MUST name every log problem the full second read names (the same first
problem per partition), wherever the tampered batch lies: the first batch, inside step 1's
reads, at the edge of a read, beyond the ledger's position (not read by step 1), below the
partition's start; and a clean run notes each partition's range read as authenticated."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.local_signer import LocalKeyFileSigner
from adapters.sqlite_log import SqliteEventLog
from adapters.tile_ledgerstore import TileLedgerStore
from core.ports.eventlog import Record
from ledger.service import Ledger, LedgerConfig
from ledger.verify import verify_ledger

KEY = b"k" * 32
BATCH = 40  # records per append (one stored batch each)


def _hub(
    tmp_path: Path, synced: int = 10, pending: int = 3, sync_batch: int = 70
) -> tuple[SqliteEventLog, Ledger]:
    """Two partitions, ``synced`` appends of ``BATCH`` records each on the ledger, then
    ``pending`` more appends the ledger has not synced."""
    log = SqliteEventLog(tmp_path / "log.sqlite", mac_key=KEY)
    log.create_topic("trades", 2)
    ledger = Ledger(
        log,
        TileLedgerStore(tmp_path / "ledger.sqlite"),
        LocalKeyFileSigner(tmp_path / "ledger.key", "test/ledger"),
        # sync batches of 70 cut stored batches: step 1 reads end inside batches too
        LedgerConfig(origin="test/ledger", sync_batch=sync_batch, checkpoint_every_leaves=50),
        clock_us=lambda: 1_764_000_000_000_000,
    )

    def append(k: int) -> None:
        for part in (0, 1):
            recs = [
                Record(b"v%d-%d" % (k, i), b"k%d" % i, (), 1_000 + k * BATCH + i, part)
                for i in range(BATCH)
            ]
            log.append("trades", recs)

    for k in range(synced):
        append(k)
    ledger.sync(force_checkpoint=True)
    for k in range(synced, synced + pending):
        append(k)
    return log, ledger


def _sql(sql: str) -> Callable[[Path, int], None]:
    def tamper(path: Path, base: int) -> None:
        with sqlite3.connect(path) as db:
            db.execute(sql.replace("{where}", f"part = 0 AND base_offset = {base}"))

    return tamper


TAMPERS: dict[str, Callable[[Path, int], None]] = {
    "a MAC zeroed": _sql("UPDATE batches SET mac = zeroblob(32) WHERE {where}"),
    "another batch's bytes": _sql(
        "UPDATE batches SET data = (SELECT data FROM batches b2 WHERE b2.part = 0 AND"
        " b2.base_offset != batches.base_offset ORDER BY b2.base_offset LIMIT 1) WHERE {where}"
    ),
    "a byte flipped": _sql(
        "UPDATE batches SET data = CAST(substr(data, 1, length(data) - 1) || CASE"
        " WHEN hex(substr(data, -1)) = '00' THEN x'01' ELSE x'00' END AS BLOB) WHERE {where}"
    ),
    "max timestamp moved": _sql(
        "UPDATE batches SET max_timestamp = max_timestamp + 1 WHERE {where}"
    ),
    "the batch deleted": _sql("DELETE FROM batches WHERE {where}"),
    "another batch's MAC": _sql(
        "UPDATE batches SET mac = (SELECT mac FROM batches b2 WHERE b2.part = 0 AND"
        " b2.base_offset != batches.base_offset ORDER BY b2.base_offset LIMIT 1) WHERE {where}"
    ),
}
# the first batch, one in the middle of step 1's reads, the last one on the ledger, one past
# the ledger's position (step 1 never reads it), the very last one (the chain head)
WHERE = {"first": 0, "middle": 160, "last on the ledger": 360, "past": 400, "head": 480}


def _log_problems(report: Any) -> list[str]:
    return [p.what for p in report.problems if "fails its own authentication" in p.what]


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("tamper", TAMPERS)
def test_one_read_names_what_the_second_read_names(tmp_path: Path, tamper: str, where: str) -> None:
    log, ledger = _hub(tmp_path)
    TAMPERS[tamper](tmp_path / "log.sqlite", WHERE[where])
    # the reference: the whole log read again and MAC'd (what step 5 did alone)
    want = [
        f"the event log fails its own authentication: {p.describe()}"
        for p in log.integrity_problems()
    ]
    assert want, "the tamper must be visible to the log's own check"
    report = verify_ledger(ledger, now_ms=2_000)
    assert not report.ok
    assert _log_problems(report) == want
    # listed before step 1's: report.first of equal index is the log's own finding
    assert report.problems[: len(want)] == [p for p in report.problems if p.what in want]
    ledger.close()
    log.close()


def test_a_clean_run_notes_each_partition_read_as_authenticated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log, ledger = _hub(tmp_path)
    seen: list[dict[tuple[str, int], tuple[int, int]] | None] = []
    real = log.integrity_problems

    def spy(checked: dict[tuple[str, int], tuple[int, int]] | None = None) -> Any:
        seen.append(None if checked is None else dict(checked))
        return real(checked)

    monkeypatch.setattr(log, "integrity_problems", spy)
    report = verify_ledger(ledger, now_ms=2_000)
    assert report.ok, report.as_dict()
    # step 1 read both partitions from 0 past the ledger's position (reads take whole chunks)
    (checked,) = seen
    assert checked is not None and set(checked) == {("trades", 0), ("trades", 1)}
    for lo, hi in checked.values():
        assert lo == 0 and hi >= 400
    ledger.close()
    log.close()


def test_a_read_that_fails_its_check_is_not_noted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A MAC changed inside step 1's reads: that read's check fails, the noting stops before
    it, and step 5 reads from there (it names the batch)."""
    log, ledger = _hub(tmp_path, synced=200, pending=0, sync_batch=5000)  # reads of 5000
    seen: list[dict[tuple[str, int], tuple[int, int]]] = []
    real = log.integrity_problems

    def spy(checked: dict[tuple[str, int], tuple[int, int]] | None = None) -> Any:
        seen.append(dict(checked or {}))
        return real(checked)

    monkeypatch.setattr(log, "integrity_problems", spy)
    TAMPERS["a MAC zeroed"](tmp_path / "log.sqlite", 6000)
    report = verify_ledger(ledger, now_ms=2_000)
    assert _log_problems(report) == [
        "the event log fails its own authentication: " + p.describe() for p in real()
    ]
    (checked,) = seen
    _lo, hi = checked.get(("trades", 0), (0, 0))
    assert hi <= 6000  # nothing at or past the tampered batch was taken as authenticated
    ledger.close()
    log.close()
