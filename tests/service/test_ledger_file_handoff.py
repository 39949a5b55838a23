"""File ingest hands what it appended to the ledger: ``publish_file`` commits each batch in a
log transaction (records, quarantine, source position), whose stored batches the embedded log
hands over on COMMIT (``EventLog.on_stored``); the ledger's sync hashes them without reading
one back, and the result verifies."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.sqlite_log import SqliteEventLog, handoff
from core.ports.eventlog import EncodedColumns
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from ingest.files import publish_file
from ledger.verify import verify_ledger
from tests.service.accounts import open_accounts
from tests.service.test_ingest_arrow_readers import csv_file


@pytest.fixture(autouse=True)
def _hand_every_append(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests hand small appends: the floor that spares them in production is lowered."""
    monkeypatch.setattr(handoff, "MIN_HANDED", 1)


def test_file_ingest_is_hashed_as_the_append_handed_it(tmp_path: Path) -> None:
    h = bootstrap(load_settings(environ={}, data_dir=tmp_path / "hub"))
    try:
        open_accounts(h, ["A", *(f"ACC-{i}" for i in range(60))])
        h.ledger.sync()
        log = h.log
        assert isinstance(log, SqliteEventLog)
        read: list[tuple[str, int]] = []
        real = log.read_encoded

        def counted(topic: str, part: int, offset: int, n: int = 1000) -> EncodedColumns:
            got = real(topic, part, offset, n)
            read.append((topic, len(got)))
            return got

        log.read_encoded = counted  # type: ignore[method-assign,assignment]
        f = csv_file(tmp_path / "t.csv", 400, seed=4)
        result = publish_file(h.ingest, f, "trades", batch_size=61).result
        assert result.accepted > 50
        h.ledger.sync(force_checkpoint=True)
        assert sum(n for topic, n in read if topic == "trades") == 0, read
        assert h.ledger.store.tree_size() >= result.accepted
        del log.read_encoded
        assert verify_ledger(h.ledger).ok
    finally:
        h.close()
