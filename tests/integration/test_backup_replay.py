"""Replay of a portable backup (``storage.portable``) whose log has offsets that hold no record:
a retention cut (the partition starts above 0, the ledger still holds the removed records'
leaves and the ``retention.delete`` entry) and commit markers; the Kafka case with aborted
transactions is in ``test_backup_distributed.py`` (it needs a broker).

What must hold: the restored log starts each partition where the original did and holds the
very same records at the very same offsets, the restored ledger has the original's root and
verifies against it (steps 1 and 6 of ``hub ledger verify``: leaves, and every raised start
is a recorded cut), the projections give the same digests; an export with an offset the target
log cannot recreate is refused naming the topic, partition and offset. Small data: a few
seconds, no external component (a hub whose ledger is the tiles store takes the portable path).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from adapters.local_objectstore import LocalObjectStore
from adapters.sqlite_log import SqliteEventLog
from core.ports.eventlog import EventLog, Record
from hub.bootstrap import bootstrap
from hub.recovery import backup, restore
from hub.settings import load_settings
from ledger.verify import verify_ledger
from storage.backup import create_kek_file
from storage.portable import LOG_EXPORT, ReplayRefused, export_log, replay_log
from tests.integration.test_backup import account

pytestmark = pytest.mark.integration
VIEWS = ["accounts"]


def _records(log: EventLog, topic: str) -> dict[int, list[tuple[int, bytes | None]]]:
    return {
        p: [(r.offset, r.value) for r in log.scan(topic, p)]
        for p in range(log.topic(topic).partitions)
    }


def test_a_backup_with_a_retention_cut_restores_with_the_same_root_offsets_and_digests(
    tmp_path: Path,
) -> None:
    data, objects = tmp_path / "site-a" / "hub", tmp_path / "objects"
    settings = load_settings(environ={}, data_dir=data, ledger_store="tiles")
    h = bootstrap(settings)
    try:
        token = h.keys.create(["admin"], owner="dr-admin").token
        for start in range(0, 200, 40):  # several appends over several partitions: markers
            h.publisher.publish(
                "accounts",
                [account(f"ACC-{i:04d}", f"Name {i}") for i in range(start, start + 40)],
                producer="test",
            )
        h.governance.set_policy("topic:accounts", max_records=15, actor="dr-admin")
        h.retention.run()
        begins = h.log.beginning_offsets("accounts")
        assert any(begins.values()), "the retention cut must raise a start offset"
        before = _records(h.log, "accounts")
        h.projections.run(VIEWS)  # over what the cut left, as the restored hub will
        digests = {n: h.projections.digest(n, save=False) for n in VIEWS}
        kek = create_kek_file(tmp_path / "vault" / "backup.kek")
        made = backup(h, LocalObjectStore(objects), kek, chunk_bytes=1 << 20)
    finally:
        h.close()

    target = tmp_path / "site-b" / "hub"
    embedded = load_settings(environ={}, data_dir=data, object_store_dir=objects)
    done = restore(embedded, LocalObjectStore(objects), kek, target, token, backup_id=made.id)
    assert done.ledger_root == made.ledger_root
    r = bootstrap(embedded.model_copy(update={"data_dir": target}), install_domain=False)
    try:
        assert r.ledger.store.root(made.ledger_size).hex() == made.ledger_root
        report = verify_ledger(r.ledger)
        assert report.first is None, report.first.describe()
        assert report.removed > 0  # the cut records' leaves are kept, not recomputed
        assert r.log.beginning_offsets("accounts") == begins
        assert _records(r.log, "accounts") == before
        r.projections.run(VIEWS)
        assert {n: r.projections.digest(n, save=False) for n in VIEWS} == digests
    finally:
        r.close()


def _log(path: Path) -> SqliteEventLog:
    return SqliteEventLog(path)


def test_a_cut_that_starts_at_a_commit_marker_and_a_partition_cut_to_its_end_replay(
    tmp_path: Path,
) -> None:
    src = _log(tmp_path / "a.sqlite")
    try:
        src.create_topic("t", 3)
        for n in range(4):  # one transaction per round: a marker after each partition's run
            with src.transaction(f"w{n}") as txn:
                txn.append("t", [Record(value=b"%d-%d" % (n, p), partition=p) for p in (0, 1)])
        src.append("t", [Record(value=b"plain", partition=2)] * 3)
        src.delete_records_before("t", 0, 3)  # offset 3 is a marker: the first record is at 4
        src.delete_records_before("t", 2, 3)  # every record of partition 2 is gone
        want = _records(src, "t")
        begins = src.beginning_offsets("t")
        export_log(src, tmp_path / LOG_EXPORT)
    finally:
        src.close()
    assert begins == {0: 3, 1: 0, 2: 3} and want[0][0][0] == 4
    dst = _log(tmp_path / "b.sqlite")
    try:
        replay_log(tmp_path / LOG_EXPORT, dst)
        assert dst.beginning_offsets("t") == begins
        assert _records(dst, "t") == want
        assert dst.integrity_problems() == []
    finally:
        dst.close()


def test_a_gap_of_an_aborted_transaction_is_refused_by_the_embedded_log_naming_it(
    tmp_path: Path,
) -> None:
    """The embedded log gives an aborted transaction no offsets, so a Kafka backup with one
    cannot replay into it: refused before anything is reported restored, naming the place."""
    src = _log(tmp_path / "a.sqlite")
    try:
        src.create_topic("t", 1)
        src.append("t", [Record(value=b"x", partition=0)] * 3)
        export_log(src, tmp_path / LOG_EXPORT)
    finally:
        src.close()
    with sqlite3.connect(tmp_path / LOG_EXPORT) as conn:  # as Kafka stores it: 3 offsets skipped
        conn.execute("UPDATE records SET off = off + 3 WHERE off = 2")
    dst = _log(tmp_path / "b.sqlite")
    try:
        with pytest.raises(ReplayRefused) as err:
            replay_log(tmp_path / LOG_EXPORT, dst)
    finally:
        dst.close()
    assert "'t' partition 0, offset 2" in err.value.message
    assert "an aborted transaction of 3 offsets" in err.value.message
    assert "restore this backup into Kafka" in err.value.message
