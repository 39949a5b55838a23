"""Coalesced publishing (``ingest.coalesce``): a group append that may have been stored
(``Retryable``, e.g. a broker that did not answer in time) is not appended again call by call,
which could store the records twice; a refused group append is."""

from __future__ import annotations

from typing import Any

from core.errors import HubError, Retryable
from core.ports.eventlog import Record
from ingest.coalesce import Coalescer, _Publish


def _coalescer(fail: BaseException) -> tuple[Coalescer, list[int]]:
    appends: list[int] = []

    def prepare(events: Any) -> list[Record]:
        return [Record(value=bytes(e)) for e in events]

    def append(records: list[Record]) -> Any:
        appends.append(len(records))
        if len(appends) == 1:
            raise fail
        return [object()] * len(records)

    return Coalescer(prepare, prepare, append), appends


def test_a_group_append_that_may_have_landed_fails_every_call_once() -> None:
    co, appends = _coalescer(Retryable("Kafka did not answer in time"))
    group = [_Publish([b"a", b"b"]), _Publish([b"c"])]  # type: ignore[list-item]
    co._run(group)
    assert appends == [3]  # never appended again
    assert all(isinstance(c.error, Retryable) and c.settled for c in group)


def test_a_refused_group_append_is_appended_call_by_call() -> None:
    co, appends = _coalescer(HubError("refused"))
    group = [_Publish([b"a", b"b"]), _Publish([b"c"])]  # type: ignore[list-item]
    co._run(group)
    assert appends == [3, 2, 1]
    assert all(c.error is None and c.metadata is not None for c in group)


def test_an_ingest_group_transaction_that_may_have_landed_is_not_committed_again() -> None:
    """The same rule for ingest's group commit (``ingest.groupcommit``)."""
    from contextlib import nullcontext

    from ingest.groupcommit import Staged, TopicCommitter, _Batch

    commits: list[int] = []

    def commit_group(source: str, staged: Any) -> Any:
        commits.append(len(staged))
        raise Retryable("Kafka did not answer in time")

    def decide(prior: Any) -> Staged[Any]:
        return Staged([Record(value=b"x")], [], None, None, False, None, {}, lambda m: m)

    tc = TopicCommitter(nullcontext, commit_group)
    group = [_Batch("s", decide), _Batch("s", decide)]
    tc._run(group)
    assert commits == [2]  # not decided and committed again one by one
    assert all(isinstance(p.error, Retryable) and p.settled for p in group)
