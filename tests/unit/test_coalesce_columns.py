"""Coalesced publishing of batches prepared as columns (``ColumnBatch``): a group is appended as
ONE batch, each call gets the metadata of its own records, and a refused group append is
appended call by call with each call's own slice of the columns."""

from __future__ import annotations

from typing import Any

from core.errors import HubError
from core.ports.eventlog import ColumnBatch, Record
from ingest.coalesce import Coalescer, Prepared, _Publish


def _columns(events: Any) -> ColumnBatch:
    return ColumnBatch(
        [bytes(e) for e in events],
        [b"v" + bytes(e) for e in events],
        ("ce_type", "ce_id"),
        (b"t", [b"id-" + bytes(e) for e in events]),
    )


def test_a_group_of_column_batches_is_one_append_split_per_call() -> None:
    appended: list[list[Record]] = []

    def append(prepared: Prepared) -> Any:
        assert isinstance(prepared, ColumnBatch)
        appended.append(prepared.records())
        return list(range(len(prepared)))

    co = Coalescer(_columns, _columns, append)
    group = [_Publish([b"a", b"b"]), _Publish([b"c"]), _Publish([b"d", b"e", b"f"])]  # type: ignore[list-item]
    co._run(group)
    assert len(appended) == 1
    assert [r.key for r in appended[0]] == [b"a", b"b", b"c", b"d", b"e", b"f"]
    metas: Any = [c.metadata for c in group]
    assert metas == [[0, 1], [2], [3, 4, 5]]


def test_a_refused_group_of_column_batches_is_appended_call_by_call() -> None:
    appended: list[list[Record]] = []

    def append(prepared: Prepared) -> Any:
        records = prepared.records() if isinstance(prepared, ColumnBatch) else prepared
        appended.append(records)
        if len(appended) == 1:
            raise HubError("refused")
        return [r.key for r in records]

    co = Coalescer(_columns, _columns, append)
    group = [_Publish([b"a", b"b"]), _Publish([b"c"])]  # type: ignore[list-item]
    co._run(group)
    assert [len(a) for a in appended] == [3, 2, 1]
    # each call alone holds exactly its own records, headers included
    assert appended[1] == _columns([b"a", b"b"]).records()
    assert appended[2] == _columns([b"c"]).records()
    metas: Any = [c.metadata for c in group]
    assert metas == [[b"a", b"b"], [b"c"]]
    assert all(c.error is None for c in group)
