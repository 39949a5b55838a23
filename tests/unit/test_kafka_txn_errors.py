"""What the Kafka adapter does after a transactional producer's error (``errors.txn_action``,
``errors.delivery_action``), judged on librdkafka's own ``KafkaError`` objects: built with the
flags librdkafka sets, and raised by a real producer's transactional calls (no broker needed:
an unreachable bootstrap server makes ``init_transactions`` time out, and calls made out of
order are refused by librdkafka's state machine)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from adapters.kafka_log.errors import TxnAction, delivery_action, translate, txn_action
from core.errors import Conflict, Forbidden, Retryable


@pytest.mark.parametrize(
    ("error", "action"),
    [
        # fatal wins over everything: the producer is unusable, a new one (same id) fences it
        (KafkaError(KafkaError._FENCED, "fenced", fatal=True), TxnAction.REBUILD),
        (KafkaError(KafkaError.PRODUCER_FENCED, "fenced"), TxnAction.REBUILD),
        (KafkaError(KafkaError.INVALID_PRODUCER_EPOCH, "epoch"), TxnAction.REBUILD),
        (KafkaError(KafkaError._TIMED_OUT, "x", fatal=True, retriable=True), TxnAction.REBUILD),
        # abortable: abort_transaction, then the whole transaction again
        (KafkaError(KafkaError._STATE, "abort", txn_requires_abort=True), TxnAction.ABORT),
        (
            KafkaError(KafkaError._TIMED_OUT, "t", retriable=True, txn_requires_abort=True),
            TxnAction.ABORT,
        ),
        # retriable: the same call again
        (KafkaError(KafkaError._TIMED_OUT, "timed out", retriable=True), TxnAction.RETRY),
        (KafkaError(KafkaError.COORDINATOR_NOT_AVAILABLE, "moving"), TxnAction.RETRY),
        (KafkaError(KafkaError.NOT_COORDINATOR, "moved"), TxnAction.RETRY),
        (KafkaError(KafkaError.CONCURRENT_TRANSACTIONS, "busy"), TxnAction.RETRY),
        # refusals a new producer would meet too
        (KafkaError(KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "acl"), TxnAction.FAIL),
        (KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "big"), TxnAction.FAIL),
        # anything else: "treat any other error as a fatal error" (confluent-kafka's docstrings)
        (KafkaError(KafkaError._INVALID_ARG, "odd"), TxnAction.REBUILD),
    ],
)
def test_txn_action_follows_librdkafkas_order(error: KafkaError, action: TxnAction) -> None:
    assert txn_action(error) is action
    assert txn_action(KafkaException(error)) is action  # as the transactional calls raise it


def test_a_non_kafka_exception_is_a_failure() -> None:
    assert txn_action(ValueError("not Kafka's")) is TxnAction.FAIL


@pytest.mark.parametrize(
    ("error", "action"),
    [
        (KafkaError(KafkaError._MSG_TIMED_OUT, "timed out"), TxnAction.ABORT),
        (KafkaError(KafkaError.NOT_ENOUGH_REPLICAS, "isr"), TxnAction.ABORT),
        (KafkaError(KafkaError._PURGE_QUEUE, "purged"), TxnAction.ABORT),
        (KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION, "moved", retriable=True), TxnAction.ABORT),
        (KafkaError(KafkaError._FENCED, "fenced", fatal=True), TxnAction.REBUILD),
        (KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "acl"), TxnAction.FAIL),
        (KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "big"), TxnAction.FAIL),
    ],
)
def test_a_failed_delivery_inside_a_transaction(error: KafkaError, action: TxnAction) -> None:
    assert delivery_action(error) is action


def test_errors_raised_by_a_real_transactional_producer() -> None:
    producer = Producer(
        {
            "bootstrap.servers": "127.0.0.1:1",  # nobody listens: nothing to reach
            "transactional.id": "hub.test.txn-errors",
            "log_level": 0,
            "socket.connection.setup.timeout.ms": 1000,
        }
    )
    with pytest.raises(KafkaException) as timed_out:
        producer.init_transactions(0.5)
    err = timed_out.value.args[0]
    assert err.code() == KafkaError._TIMED_OUT and err.retriable()
    assert txn_action(timed_out.value) is TxnAction.RETRY  # init again, later
    assert isinstance(translate(timed_out.value, "starting"), Retryable)
    with pytest.raises(KafkaException) as out_of_order:
        producer.commit_transaction(0.2)  # no transaction: librdkafka refuses, retriably
    assert txn_action(out_of_order.value) is TxnAction.RETRY
    producer.purge()
    producer.flush(0)


def test_fenced_and_refused_translate_to_the_hubs_errors() -> None:
    fenced = KafkaError(KafkaError._FENCED, "fenced", fatal=True)
    assert isinstance(translate(fenced, "committing"), Conflict)
    acl = KafkaError(KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "acl")
    assert isinstance(translate(acl, "committing"), Forbidden)
