"""Schema by id from memory (issue 13): a known id costs no log read; an id registered by
another registry on the same log is still found (an unknown id refreshes first)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.sqlite_log import SqliteEventLog
from core.errors import SchemaNotFound
from registry.service import SchemaRegistry

SCHEMA = json.dumps({"type": "record", "name": "T", "fields": [{"name": "a", "type": "string"}]})


def test_a_known_id_is_answered_without_reading_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = SqliteEventLog(tmp_path / "log.db")
    registry = SchemaRegistry(log)
    sid = registry.register("t-value", SCHEMA).id

    def no_reads(topic: str) -> dict[int, int]:
        raise AssertionError("a known schema id must not read the log")

    monkeypatch.setattr(log, "end_offsets", no_reads)
    assert registry.get_by_id(sid).text == SCHEMA
    log.close()


def test_an_id_registered_elsewhere_is_found_and_an_unknown_one_refused(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "log.db")
    reader, writer = SchemaRegistry(log), SchemaRegistry(log)
    with pytest.raises(SchemaNotFound, match="Schema id 1 not found"):
        reader.get_by_id(1)
    sid = writer.register("t-value", SCHEMA).id
    assert reader.get_by_id(sid).text == SCHEMA
    with pytest.raises(SchemaNotFound, match=f"Schema id {sid + 100} not found"):
        reader.get_by_id(sid + 100)
    log.close()
