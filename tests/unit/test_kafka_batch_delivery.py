"""``BatchDelivery`` takes reports of a batch's first and last record only: the metadata of
every record follows from them only when they are exactly ``n - 1`` offsets apart (one record
batch); anything else (a split batch, a missing record, another producer's record in between)
must be refused, not answered with offsets the broker never gave these records."""

from __future__ import annotations

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME, KafkaError

from adapters.kafka_log.batch import BatchDelivery, KafkaAppended
from core.errors import HubError
from core.ports.eventlog import AppendedMetadata


class _Report:  # the three fields of a delivered confluent_kafka.Message that are read
    def __init__(self, offset: int, partition: int = 0) -> None:
        self._offset, self._partition = offset, partition

    def offset(self) -> int:
        return self._offset

    def partition(self) -> int:
        return self._partition

    def timestamp(self) -> tuple[int, int]:
        return TIMESTAMP_CREATE_TIME, 7


def _delivered(n: int, first: int, last: int) -> BatchDelivery:
    d = BatchDelivery("t", 0, 7, n, producer=[])
    if d.on_first is not None:
        d.on_first(None, _Report(first))  # type: ignore[arg-type]
    d.on_last(None, _Report(last))  # type: ignore[arg-type]
    return d


def test_consecutive_first_and_last_give_every_offset() -> None:
    meta = _delivered(4, 10, 13).metadata()
    assert [(m.offset, m.timestamp_ms) for m in meta] == [(10, 7), (11, 7), (12, 7), (13, 7)]
    assert [m.offset for m in _delivered(1, 5, 5).metadata()] == [5]


@pytest.mark.parametrize(("first", "last"), [(10, 14), (11, 13), (13, 10)])
def test_a_gap_or_overlap_between_first_and_last_is_refused(first: int, last: int) -> None:
    with pytest.raises(HubError, match="not as one record batch"):
        _delivered(4, first, last).metadata()


def test_an_error_on_either_report_is_seen() -> None:
    for which in ("first", "last"):
        d = BatchDelivery("t", 0, 7, 3, producer=[])
        err = KafkaError(KafkaError._MSG_TIMED_OUT)
        ok, bad = (d.on_last, d.on_first) if which == "first" else (d.on_first, d.on_last)
        assert ok is not None and bad is not None
        ok(None, _Report(1))  # type: ignore[arg-type]
        bad(err, _Report(-1))  # type: ignore[arg-type]
        assert [e.code() for e in d.errors] == [KafkaError._MSG_TIMED_OUT]


class _AppendTimeReport(_Report):
    def timestamp(self) -> tuple[int, int]:
        return TIMESTAMP_LOG_APPEND_TIME, 99


@pytest.mark.parametrize("stamps", [7, [5, 6, 7, 8]])
def test_the_answer_is_columns_building_what_the_reference_builds(stamps: int | list[int]) -> None:
    d = BatchDelivery("t", 2, stamps, 4, producer=[])
    assert d.on_first is not None
    d.on_first(None, _Report(10, 2))  # type: ignore[arg-type]
    d.on_last(None, _Report(13, 2))  # type: ignore[arg-type]
    got = d.answer()
    assert isinstance(got, KafkaAppended) and got.parts == ((2, 10, None),)
    assert len(got) == 4 and got._built is None  # nothing per record until asked for
    listed = stamps if isinstance(stamps, list) else [stamps] * 4
    reference = AppendedMetadata("t", listed, ((2, 10, None),)).as_list()  # the port's builder
    assert got.as_list() == reference == d.metadata()
    assert [(m.partition, m.offset, m.timestamp_ms) for m in got] == [
        (2, 10 + i, ts) for i, ts in enumerate(listed)
    ]
    assert got[1:3] == reference[1:3] and got.as_list() is got.as_list()


def test_a_log_append_time_topic_answers_the_brokers_stamp() -> None:
    d = BatchDelivery("t", 0, 7, 3, producer=[])
    assert d.on_first is not None
    d.on_first(None, _AppendTimeReport(0))  # type: ignore[arg-type]
    d.on_last(None, _AppendTimeReport(2))  # type: ignore[arg-type]
    assert [m.timestamp_ms for m in d.answer()] == [99, 99, 99]
    assert d.answer().timestamps == [99, 99, 99]


def test_the_answer_refuses_a_gap_too() -> None:
    with pytest.raises(HubError, match="not as one record batch"):
        _delivered(4, 10, 14).answer()
