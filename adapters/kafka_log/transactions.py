"""The Kafka log's transactions: one Kafka transaction of a producer with ``transactional.id``;
offsets are staged with ``send_offsets_to_transaction``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaException, Producer
from confluent_kafka import TopicPartition as KafkaTP

from adapters.kafka_log.batch import BatchDelivery, Delivery, PreparedBatch
from adapters.kafka_log.errors import TxnAction, translate, txn_action
from core.errors import (
    Conflict,
    HubError,
    Retryable,
)
from core.ports.eventlog import (
    AppendSignal,
    Headers,
    Record,
    RecordMetadata,
    TopicInfo,
    TopicPartition,
    Transaction,
)


class TransactionHost(Protocol):
    """What a transaction uses of the log that opened it (``KafkaEventLog``): the lock of its
    transactions (``_txn_lock``, not the log's ``_lock``, which reads hold during broker round
    trips), the cache of transactional producers, and the append and offset steps it runs
    inside the transaction."""

    _txn_lock: threading.RLock
    _timeout: float
    _open_txns: set[str]
    _txn_producers: dict[str, Producer]
    _appended: AppendSignal

    def _transactional(self, transactional_id: str) -> Producer: ...
    def _prepare(self, name: str, records: Sequence[Record]) -> PreparedBatch: ...
    def _send(
        self,
        producer: Producer,
        topic: str,
        rows: Sequence[tuple[int, bytes | None, bytes | None, Headers, int | None]],
        *,
        may_split: bool,
        delivery: Delivery | BatchDelivery | None = None,
    ) -> Delivery | BatchDelivery: ...
    def _await(
        self, producer: Producer, delivery: Delivery | BatchDelivery, doing: str
    ) -> list[RecordMetadata]: ...
    def _offsets_request(
        self, group: str, offsets: Mapping[TopicPartition, int]
    ) -> list[KafkaTP]: ...
    def _group_metadata(self, group: str) -> Any: ...
    def _unwire(self, name: str) -> str: ...
    def _await_visible(self, topic: str, ends: Mapping[int, int]) -> None: ...
    def _info(self, name: str) -> TopicInfo: ...
    def _committed(self, group: str, topic: str, n: int) -> dict[int, int]: ...
    def _wait(self, condition: Callable[[], bool], what: str) -> None: ...


class KafkaTransaction(Transaction):
    """One Kafka transaction; offsets are staged with ``send_offsets_to_transaction``.

    Errors as librdkafka documents them (``errors.TxnAction``): a retriable
    ``commit_transaction`` is called again within the log's timeout; an abortable one aborts
    (nothing of the transaction is visible) and raises ``Retryable``: the caller runs its
    transaction again; a fatal one (fenced, or the producer's state lost) drops the cached
    producer, so the next transaction of this id builds a new one whose ``init_transactions``
    aborts what this one left open. A commit that failed otherwise has an unknown outcome and
    says so (the producer is dropped too)."""

    def __init__(self, log: TransactionHost, transactional_id: str) -> None:
        self._log = log
        self._id = transactional_id
        self.state = "open"
        self._touched: dict[str, dict[int, int]] = {}  # topic -> partition -> offset after
        self._offsets: dict[str, dict[tuple[str, int], int]] = {}
        with log._txn_lock:
            if transactional_id in log._open_txns:
                raise Conflict(
                    f"Transaction {transactional_id!r} is already open on this log; end it first.",
                    code="transaction_open",
                )
            producer = log._txn_producers.get(transactional_id)
            if producer is None:
                producer = log._transactional(transactional_id)
                log._txn_producers[transactional_id] = producer
            try:
                producer.begin_transaction()
            except KafkaException as exc:
                # A producer left mid-transaction or broken: the next one (same id) fences it.
                log._txn_producers.pop(transactional_id, None)
                raise translate(exc, f"beginning transaction {transactional_id!r}") from exc
            log._open_txns.add(transactional_id)
        self._producer = producer

    def _check(self, doing: str) -> None:
        if self.state != "open":
            raise HubError(
                f"Transaction {self._id!r} is {self.state}; cannot go on {doing}. Open a new one.",
                code="transaction_closed",
            )

    def append(self, topic: str, records: Sequence[Record]) -> list[RecordMetadata]:
        doing = f"appending to {topic!r} in transaction {self._id!r}"
        self._check(doing)
        batch = self._log._prepare(topic, records)
        if not batch.records:
            return []
        rows = [
            (p, r.key, r.value, tuple(r.headers), ts)
            for r, p, ts in zip(batch.records, batch.partitions, batch.timestamps, strict=True)
        ]
        delivery = self._log._send(self._producer, topic, rows, may_split=True)
        meta = self._log._await(self._producer, delivery, doing)
        ends = self._touched.setdefault(topic, {})
        for m in meta:
            ends[m.partition] = max(ends.get(m.partition, 0), m.offset + 1)
        return meta

    def commit_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        doing = f"committing offsets of group {group!r} in transaction {self._id!r}"
        self._check(doing)
        tps = self._log._offsets_request(group, offsets)
        if not tps:
            return
        try:
            self._producer.send_offsets_to_transaction(
                tps, self._log._group_metadata(group), self._log._timeout
            )
        except KafkaException as exc:
            raise translate(exc, doing) from exc
        staged = self._offsets.setdefault(group, {})
        for tp in tps:
            staged[(self._log._unwire(tp.topic), tp.partition)] = tp.offset

    def commit(self) -> None:
        doing = f"committing transaction {self._id!r}"
        self._check(doing)
        deadline = time.monotonic() + self._log._timeout
        while True:
            try:
                self._producer.commit_transaction(max(0.1, deadline - time.monotonic()))
                break
            except KafkaException as exc:
                action = txn_action(exc)
                if action is TxnAction.RETRY and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue  # librdkafka resumes the commit it started
                if action is TxnAction.ABORT:
                    self.abort()
                    raise Retryable(
                        f"Kafka could not commit transaction {self._id!r} ({exc}); it was "
                        "aborted, nothing of it is visible: run the transaction again.",
                        code="log_unavailable",
                    ) from exc
                self._drop()
                self._end("failed")
                if action is TxnAction.REBUILD and isinstance(translate(exc, doing), Conflict):
                    raise translate(exc, doing) from exc  # fenced: another owner of this id
                raise Retryable(
                    f"Kafka failed while {doing} ({exc}); the outcome is unknown (a later "
                    "transaction of this id settles it): check what is stored before running "
                    "it again.",
                    code="log_unavailable",
                ) from exc
        self._end("committed")
        # Visible together: wait for the commit markers to land in the topics and the offsets.
        for topic, ends in self._touched.items():
            self._log._await_visible(topic, ends)
        for group, staged in self._offsets.items():
            for topic in {t for t, _ in staged}:
                want = {p: o for (t, p), o in staged.items() if t == topic}
                n = self._log._info(topic).partitions

                def stored(
                    group: str = group, topic: str = topic, n: int = n, want: dict[int, int] = want
                ) -> bool:
                    got = self._log._committed(group, topic, n)
                    return all(got.get(p) == o for p, o in want.items())

                self._log._wait(stored, f"the offsets of group {group!r} to become visible")
        if self._touched:
            self._log._appended.bump(self._touched)

    def abort(self) -> None:
        if self.state != "open":
            return
        deadline = time.monotonic() + self._log._timeout
        while True:
            try:
                self._producer.abort_transaction(max(0.1, deadline - time.monotonic()))
                break
            except KafkaException as exc:
                if txn_action(exc) is TxnAction.RETRY and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                # A producer that cannot abort is dropped; the next init_transactions aborts for it.
                self._drop()
                self._end("aborted")
                raise translate(exc, f"aborting transaction {self._id!r}") from exc
        self._end("aborted")

    def _drop(self) -> None:
        with self._log._txn_lock:
            if self._log._txn_producers.get(self._id) is self._producer:
                del self._log._txn_producers[self._id]

    def _end(self, state: str) -> None:
        self.state = state
        with self._log._txn_lock:
            self._log._open_txns.discard(self._id)
