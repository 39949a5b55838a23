"""A registration whose append fails must leave nothing behind that maps a schema to an id.

Before session 13 the registry cached the parsed schema under its new id BEFORE the append;
when the append failed (a disk error, a decision that could not be stored), the next new schema
got the same id and the fold kept the failed schema's cached parse for it. The id's identity
became the FAILED schema: registering that schema again anywhere answered the other schema's
id (producers would write records that consumers decode with the wrong schema), and the
stored schema could no longer be looked up.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from adapters.sqlite_log import SqliteEventLog
from core.ports.eventlog import Record
from registry.service import SchemaRegistry

FAILED = json.dumps({"type": "record", "name": "A", "fields": [{"name": "a", "type": "long"}]})
STORED = json.dumps({"type": "record", "name": "B", "fields": [{"name": "b", "type": "string"}]})


def test_a_failed_append_does_not_give_its_schema_another_schemas_id(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "log.db")
    registry = SchemaRegistry(log)

    def broken(topic: str, records: Sequence[Record]) -> object:
        raise OSError("disk I/O error")

    with pytest.raises(OSError):
        registry.register("a-value", FAILED, append=broken)
    stored = registry.register("b-value", STORED)
    assert registry.lookup("b-value", STORED).id == stored.id
    again = registry.register("c-value", FAILED)
    assert again.id != stored.id
    assert registry.get_by_id(again.id).text == FAILED
    # a fresh registry folding the same topic agrees
    assert SchemaRegistry(log).lookup("c-value", FAILED).id == again.id
    log.close()
