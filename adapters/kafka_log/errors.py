"""Kafka and librdkafka errors as the hub's errors: which codes are worth a retry, which mean a
batch is too large or a client is not allowed, and ``translate`` naming what was being done;
``txn_action``: what a transactional producer must do after an error (librdkafka's rules)."""

from __future__ import annotations

from enum import Enum

from confluent_kafka import (
    KafkaError,
    KafkaException,
)

from core.errors import (
    Conflict,
    Forbidden,
    HubError,
    PayloadTooLarge,
    Retryable,
    TopicNotFound,
)

RETRYABLE_CODES = {
    KafkaError._MSG_TIMED_OUT,
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._WAIT_COORD,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NOT_ENOUGH_REPLICAS,
    KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.UNKNOWN_LEADER_EPOCH,  # "leader epoch is newer than broker epoch": a broker
    KafkaError.FENCED_LEADER_EPOCH,  # still loading partitions after a restart
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.NOT_COORDINATOR,
    KafkaError.CONCURRENT_TRANSACTIONS,
    KafkaError.UNSTABLE_OFFSET_COMMIT,
    # "Leader high watermark is not caught up": a partition's new leader answers ListOffsets so
    # until its high watermark catches up after the election (Kafka's OffsetNotAvailable is a
    # RetriableException; librdkafka's error object for it says not retriable). Seen right after
    # a broker kill on the three-broker cluster (tests/ha/test_cluster_offsets_broker_gone.py).
    KafkaError.OFFSET_NOT_AVAILABLE,
}
TOO_LARGE_CODES = {KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE}
AUTH_CODES = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
}
FENCED_CODES = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}


def kafka_error(exc: BaseException) -> KafkaError | None:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    if isinstance(exc, KafkaError):
        return exc
    return None


def translate(exc: BaseException | KafkaError, doing: str) -> HubError:
    """A ``core.errors`` exception for a librdkafka error met while ``doing`` something."""
    err = exc if isinstance(exc, KafkaError) else kafka_error(exc)
    if err is None and isinstance(exc, TimeoutError):  # an admin future's result(timeout=...)
        return Retryable(
            f"Kafka did not answer in time while {doing}; retry later, and check "
            "'infra/kafka.sh status'.",
            code="log_unavailable",
        )
    if err is None:
        return HubError(f"Kafka failed while {doing}: {exc}.", code="kafka_error")
    code, text = err.code(), err.str()
    if code == KafkaError.UNKNOWN_TOPIC_OR_PART:
        return TopicNotFound(f"Kafka does not know the topic while {doing} ({text}).")
    if code in TOO_LARGE_CODES:
        return PayloadTooLarge(
            f"Kafka refused a record as too large while {doing} ({text}); keep records under "
            "the topic's max.message.bytes (the hub's broker allows 16 MiB)."
        )
    if code in AUTH_CODES:
        return Forbidden(f"Kafka denied access while {doing} ({text}); check the ACLs.")
    if code in FENCED_CODES:
        return Conflict(
            f"Another producer with the same transactional id took over while {doing} ({text}); "
            "this one is fenced: stop it, or use a distinct transactional id per process.",
            code="producer_fenced",
        )
    if code in RETRYABLE_CODES or err.retriable():
        return Retryable(
            f"Kafka is unavailable or busy while {doing} ({text}); retry later, and check "
            "'infra/kafka.sh status'.",
            code="log_unavailable",
        )
    return HubError(f"Kafka failed while {doing} ({text}).", code="kafka_error")


class TxnAction(Enum):
    """What a transactional producer does after an error, in librdkafka's order of precedence
    (rdkafka.h, ``rd_kafka_commit_transaction`` and the transactional example; confluent-kafka's
    ``KafkaError.fatal()``, ``txn_requires_abort()``, ``retriable()``):

    - ``REBUILD``: a fatal error (``fatal()``, or fenced): the producer instance is unusable; a
      new one with the SAME ``transactional.id`` fences it, and its ``init_transactions`` makes
      the coordinator abort (or finish committing) whatever the old one left open;
    - ``ABORT``: ``txn_requires_abort()``: the current transaction cannot commit, the producer
      can go on: ``abort_transaction`` and run the whole transaction again (nothing of it is
      visible: the abort marker hides it);
    - ``RETRY``: ``retriable()`` (or a code the hub knows to be transient): call the same
      operation again (``commit_transaction`` resumes a commit already under way);
    - ``FAIL``: refusals that a new producer would meet too (too large, not allowed): abort
      and report. Any other error is treated as fatal, as confluent-kafka's docstrings say.
    """

    REBUILD = "rebuild"
    ABORT = "abort"
    RETRY = "retry"
    FAIL = "fail"


def txn_action(exc: BaseException | KafkaError) -> TxnAction:
    """What to do after ``exc`` raised by a transactional API call (``begin_transaction``,
    ``send_offsets_to_transaction``, ``commit_transaction``, ``abort_transaction``)."""
    err = exc if isinstance(exc, KafkaError) else kafka_error(exc)
    if err is None:
        return TxnAction.FAIL
    if err.fatal() or err.code() in FENCED_CODES or err.code() == KafkaError._FATAL:
        return TxnAction.REBUILD
    if err.txn_requires_abort():
        return TxnAction.ABORT
    if err.retriable() or err.code() in RETRYABLE_CODES:
        return TxnAction.RETRY
    if err.code() in AUTH_CODES or err.code() in TOO_LARGE_CODES:
        return TxnAction.FAIL  # a new producer would meet the same refusal
    return TxnAction.REBUILD  # "Treat any other error as a fatal error" (confluent-kafka)


def delivery_action(err: KafkaError) -> TxnAction:
    """What to do when a record of a transaction failed to deliver (its delivery report): any
    such failure leaves the transaction unable to commit, so a transient one means abort and
    run the transaction again, a fatal one rebuild the producer, the others abort and fail."""
    if err.fatal() or err.code() in FENCED_CODES or err.code() == KafkaError._FATAL:
        return TxnAction.REBUILD
    if (
        err.retriable()
        or err.txn_requires_abort()
        or err.code() in RETRYABLE_CODES
        or err.code() in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT)
    ):
        return TxnAction.ABORT
    return TxnAction.FAIL
