"""KafkaEventLog: the EventLog port over Apache Kafka (confluent-kafka / librdkafka).

Topics, partitions, offsets, keys, values, headers and timestamps are Kafka's own; the hub adds
two internal compacted topics, hidden from ``topics()``:

- ``_hub_topics``: per topic, the config keys that are not Kafka topic configs (``hub.*``). Kafka
  rejects unknown topic configs, so ``create_topic`` passes every other key to Kafka (which
  validates it) and keeps the ``hub.*`` keys here; ``topic().config`` is Kafka's explicitly set
  topic configs merged with these.
- ``_hub_producer_state``: per (topic, idempotent producer id), the last sequence and where its
  batch landed (see *Idempotent appends*).

Atomic appends
- A batch bound for ONE partition is sent by an idempotent producer (``acks=all``) as ONE Kafka
  record batch: ``linger.ms`` is long and ``batch.size``/``batch.num.messages`` are at their
  maximum, and ``flush()`` (which ignores linger) sends it, so the broker appends it whole or not
  at all. No transaction, so no commit marker: offsets stay dense across such appends, exactly as
  in the SQLite adapter.
- A batch spanning SEVERAL partitions (or too big for one record batch) goes through a Kafka
  transaction (one transactional producer per log instance), the only cross-partition atomicity
  Kafka has. Its commit marker takes one offset in every partition it touched, so the next
  append there starts one offset later: offsets are dense within the batch but not across it.
  Readers use ``isolation.level=read_committed``.
- ``append`` returns once every record's delivery report has arrived (or raises): waiting at most
  ``delivery_timeout_s``, so a broker restart shorter than that only stalls appends.
- A transaction's errors are handled as librdkafka documents them (``errors.TxnAction``: retry
  the call, abort and run the transaction again, or rebuild the producer under the same
  ``transactional.id``, which fences the old one and aborts what it left open). Its
  ``transaction.timeout.ms`` is ``atomic_transaction_timeout_s`` (10 s): a process killed
  mid-transaction hides later records of those partitions from ``read_committed`` readers,
  and so stalls every other process's atomic appends, for that long (plus the broker's check
  interval), not for minutes.

Idempotent appends (``IdempotenceKey``)
Kafka's own idempotence only spans one producer session, so the adapter adds its own, durable and
recoverable without reading whole topics:
  1. Intent: write ``{seq, start offsets of the touched partitions, partitions per record, the
     previous batch's metadata}`` under the key (topic, producer id) to ``_hub_producer_state``.
  2. Write the batch (as above); every record carries the header ``__hub.idem = "<seq>:<id>"``
     (stripped again by ``read``; the name is reserved).
  3. Done: write ``{seq, metadata}`` under the same key (not awaited: it leaves with the next
     flush or at ``close``; a recovery covers its loss).
The state topic is read once per log instance. When the latest entry for a key is an intent
(a crash or failure between 1 and 3), the adapter scans the touched partitions from the intent's
start offsets for records carrying that header: found means the batch is stored (its metadata is
rebuilt from them), absent means it is not (the previous batch's metadata is in the intent).
One writer per producer id at a time, as the port's sequences imply.

Transactions
``transaction(id)`` maps to a Kafka transaction of a producer with ``transactional.id=id``
(cached per id, so sequential transactions reuse it; a second process with the same id fences the
first). ``commit_offsets`` inside it is ``send_offsets_to_transaction``. ``commit`` waits until
the records and offsets are visible (Kafka writes commit markers asynchronously), so a read right
after sees them.

Namespaces (``topic_prefix``)
Several hubs (or test runs) can share one cluster: ``topic_prefix="t123."`` puts that prefix on
every topic name on the wire (the caller's topics, ``_schemas``, and the internal ``_hub_*``
topics) and on every transactional id (so that two namespaces never fence each other), and strips
it again: ``topics()`` lists only the namespace's topics, under their names without the prefix.
Consumer group ids are not prefixed (a group's offsets are per topic, hence already apart).
Kafka's 249-character limit holds on the wire: names get at most ``249 - len(prefix)``.
A namespace other than the default MACs its records under a key of its own
(``auth.namespace_key``); its first verified read after the upgrade writes its marker
(``bind_namespace``, ``_hub_namespace``), so that the records it wrote before that key keep
being read. (Not when the log is opened: a restore notes the namespace's topics right after
opening it, to delete what it created if it fails.)

Limits (known, deliberate)
- ``timestamp_ms=0`` cannot be stored: librdkafka reads 0 as "now".
- An idempotent batch's state entry holds its metadata as JSON: keep such batches under ~300 k
  records (16 MiB). Plain batches above 15 MiB or 1 M records take the transactional path.
- After an append fails with an unknown outcome, the producer is replaced and its queue purged;
  a request already on the wire to a live broker could still land after a retry's recovery scan
  (a window of one request round trip). Stopped brokers cannot do this.
- Partition counts are cached per instance (the hub never adds partitions).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import replace
from itertools import islice
from typing import Any, Final, TypeVar

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
    Producer,
)
from confluent_kafka import TopicPartition as KafkaTP
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported without __all__
    AdminClient,
    ConfigResource,
    ConfigSource,
    NewTopic,
    OffsetSpec,
)

from adapters.kafka_log.auth import (
    MAC_HEADER,
    Vouch,
    mac_required,
    mac_valid,
    namespace_key,
    record_macs,
    record_macs_rows,
    tenant_macs,
    tenant_macs_rows,
    verify_run,
)
from adapters.kafka_log.batch import (
    IDEM_HEADER,
    BatchDelivery,
    Delivery,
    KafkaAppended,
    PreparedBatch,
    ProducerState,
    check_record,
    columns_valid,
    produce_columns,
    stored_record,
    stored_run,
    strip_idem,
)
from adapters.kafka_log.errors import (
    RETRYABLE_CODES,
    TxnAction,
    delivery_action,
    kafka_error,
    translate,
    txn_action,
)
from adapters.kafka_log.readers import KeptReader, ReaderPool
from adapters.kafka_log.replays import (
    HELD_BACK_GRACE_MS,
    HELD_BACK_SCAN,
    first_copy,
    held_back_what,
    original_of,
    replay_what,
)
from adapters.kafka_log.seals import SEALS_TOPIC, PartitionSeal, SealCorrupt, fold_seals
from adapters.kafka_log.sequence import (
    SEQ_HEADER,
    WRITER_BYTES,
    PartitionSequence,
    Sequencer,
    genuine_sequences,
    replay_skipped_what,
)
from adapters.kafka_log.tailwatch import TailWatches
from adapters.kafka_log.transactions import KafkaTransaction
from core.errors import (
    Conflict,
    HubError,
    InvalidInput,
    LogTampered,
    OutOfOrderSequence,
    PayloadTooLarge,
    Retryable,
    TopicExists,
    TopicNotFound,
)
from core.partitioner import default_partition
from core.ports.eventlog import (
    AppendSignal,
    ColumnBatch,
    EventLog,
    Headers,
    IdempotenceKey,
    LogProblem,
    Record,
    RecordMetadata,
    StoredRecord,
    TopicInfo,
    TopicPartition,
    Transaction,
    check_envelope_headers,
    is_transactional_append,
    payload_size,
)
from core.ports.eventlog_checks import TOPIC_NAME, records_valid
from core.ports.eventlog_checks import check_id as _check_id
from core.ports.eventlog_checks import check_offset as _check_offset
from core.ports.eventlog_checks import check_topic_name as _check_topic_name
from core.tenant_mac import TMAC_HEADER

_T = TypeVar("_T")
_LOG = logging.getLogger("hub.kafka")
SEQUENCE_CURSORS: Final = 4
"""Readers' states kept per partition (one per reader going on from where it stopped)."""
SEQUENCE_SNAPSHOT_EVERY: Final = 100_000
"""Offsets between two kept snapshots of a partition's readers' state."""
# Answers that mean the client's idea of a partition's leader is out of date.
_STALE_METADATA_CODES = frozenset(
    {
        KafkaError.FENCED_LEADER_EPOCH,
        KafkaError.UNKNOWN_LEADER_EPOCH,
        KafkaError.NOT_LEADER_FOR_PARTITION,
    }
)
# librdkafka's "No leaders found" (see ``_list_offsets``): the metadata has no leader yet.
_NO_LEADER_YET = frozenset({KafkaError._NOENT})
# What a consumer's ``get_watermark_offsets`` answers, from its metadata cache and without asking
# a broker, while the cached leader of the partition is a broker the client has since dropped
# (killed, fenced, no longer in any metadata answer): "Local: Unknown partition" (librdkafka's
# ``rd_kafka_topic_partition_list_query_leaders`` calls that permanent). A consumer that never
# subscribes refreshes a topic's cache entry only when ``metadata.max.age.ms`` (15 min) expires it,
# so until then every answer was this one (``_watermarks`` refreshes the entry and asks again).
_LEADER_GONE_FROM_CACHE = frozenset(
    {KafkaError._UNKNOWN_PARTITION, KafkaError.LEADER_NOT_AVAILABLE}
)

TOPICS_TOPIC: Final = "_hub_topics"
PRODUCER_STATE_TOPIC: Final = "_hub_producer_state"
HUB_CONFIG_PREFIX: Final = "hub."

_TOPIC_NAME = TOPIC_NAME
# One record batch at most this big (and the broker's message.max.bytes must allow it; the
# infra/kafka.sh broker allows 16 MiB). Bigger single-partition batches go through a transaction.
_MAX_BATCH_RECORDS = 1_000_000
_OFFSET_INVALID = -1001
_OUT_OF_RANGE_CODES = {KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET}
# Set on every topic the hub creates (unless its config says otherwise): the broker deletes nothing
# by time or size; the hub's governed retention does (see ``create_topic``).
NO_BROKER_DELETION = {"retention.ms": "-1", "retention.bytes": "-1"}
# How long ``topic()`` answers from memory: the hub never changes a topic's config after creating
# it, so this only bounds how late an operator's ``kafka-configs --alter`` is seen (publishing
# asked Kafka for the config on every call: a round trip per batch).
TOPIC_CONFIG_TTL_S = 5.0
# How long a scan that met the last stable offset below the end waits for transaction markers.
MARKER_WAIT_S = 2.0
# a kept reader assignment unused this long is dropped (``_drop_idle_reader``)
READER_IDLE_S = 1.0

_INTERNAL = re.compile(r"^(__|_hub_)")
NAMESPACE_TOPIC: Final = "_hub_namespace"  # the namespace's marker (``bind_namespace``)
_LATEST: Any = OffsetSpec.latest()  # type: ignore[no-untyped-call]
_EARLIEST: Any = OffsetSpec.earliest()  # type: ignore[no-untyped-call]


def is_internal(name: str) -> bool:
    """Whether a topic is one of the log's own (hidden from ``topics()``, so never on the
    ledger): ``_hub_topics``, ``_hub_producer_state``, ``_hub_seals``."""
    return _INTERNAL.match(name) is not None


def _legacy_marks(marker: StoredRecord | None, prefix: str) -> dict[tuple[str, int], int]:
    """The ``legacy_below`` offsets of a namespace marker (``KafkaEventLog.bind_namespace``);
    a marker that does not parse or names another namespace is tampering (it is MAC'd)."""
    try:
        if marker is None or marker.value is None:
            raise ValueError("no marker record")
        body = json.loads(marker.value)
        if body["namespace"] != prefix:
            raise ValueError(f"it names namespace {body['namespace']!r}")
        return {(str(t), int(p)): int(end) for t, p, end in body["legacy_below"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise LogTampered(
            f"The namespace marker of {prefix!r} ({NAMESPACE_TOPIC!r}) is unreadable ({exc}): "
            "someone with access to the broker changed it; restore the topic from a backup.",
            code="log_tampered",
        ) from exc


def _ends(meta: Sequence[RecordMetadata]) -> dict[int, int]:
    """Per partition, the offset after the last of these records."""
    ends: dict[int, int] = {}
    for m in meta:
        ends[m.partition] = max(ends.get(m.partition, 0), m.offset + 1)
    return ends


def _eof_at(msg: Message, position: int) -> int | None:
    """Where the consumer stands when ``msg``, the one message a read left after its last
    record, is the end-of-partition event at or past ``position`` (taken with the records
    under load: the reader may still be kept there); None for anything else."""
    err = msg.error()
    if err is None or err.code() != KafkaError._PARTITION_EOF:
        return None
    eof = msg.offset() or 0
    return eof if eof >= position else None


class KafkaEventLog(EventLog):
    """An EventLog on a Kafka cluster (see the module docstring for the design).

    ``bootstrap_servers`` e.g. ``"127.0.0.1:19092"`` (``infra/kafka.sh``). ``timeout_s`` bounds
    each admin and read call; ``delivery_timeout_s`` bounds how long an append waits for the
    broker (librdkafka's ``message.timeout.ms``). ``atomic_transaction_timeout_s`` is the
    ``transaction.timeout.ms`` of atomic appends' transactions: how long one may stay open, and
    so how long a crashed process's open transaction can hide later records from readers
    (``read_committed``) before the coordinator aborts it; an attempt that takes longer is
    aborted and run again. ``transaction_timeout_s`` is the ``transaction.timeout.ms`` of the
    other transactions (``transaction()``), by default max(60 s, twice ``delivery_timeout_s``);
    the longer of the two bounds how long a record of the hub's may wait behind an open
    transaction before verify names its partition held back (``held_back_after_ms``).
    ``client_config`` is merged into every client's
    configuration (security settings and the like). ``topic_prefix`` namespaces the topics and
    transactional ids on the wire (see *Namespaces*); empty by default.
    """

    remote = True  # every end-offset read is a ListOffsets round trip to a broker

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        timeout_s: float = 15.0,
        delivery_timeout_s: float = 60.0,
        atomic_transaction_timeout_s: float = 10.0,
        transaction_timeout_s: float | None = None,
        replication_factor: int = 1,
        client_config: Mapping[str, str] | None = None,
        topic_prefix: str = "",
        mac_key: bytes | None = None,
        tenant_key: bytes | None = None,
    ) -> None:
        if not isinstance(bootstrap_servers, str) or not bootstrap_servers:
            raise InvalidInput(
                f"bootstrap_servers={bootstrap_servers!r} is invalid: pass 'host:port[,...]'."
            )
        if not isinstance(topic_prefix, str) or (
            topic_prefix and not _TOPIC_NAME.fullmatch(topic_prefix)
        ):
            raise InvalidInput(
                f"topic_prefix={topic_prefix!r} is invalid: use characters from a-z, A-Z, 0-9, "
                "'.', '_' and '-', e.g. 'team1.' (or '' for none)."
            )
        if mac_key is not None and (type(mac_key) is not bytes or len(mac_key) < 16):
            raise InvalidInput("mac_key is invalid: pass at least 16 random bytes (or None).")
        # see adapters.kafka_log.auth: every record written and read, under the namespace's
        # own key (``namespace_key``); the hub's key itself only for records of before that
        self._mac_key = None if mac_key is None else namespace_key(mac_key, topic_prefix)
        self._unbound_key = mac_key
        # (topic, partition) -> the offset below which records MAC'd under the unbound key are
        # read (``bind_namespace``); None: not read yet
        self._legacy_below: dict[tuple[str, int], int] | None = None
        if tenant_key is not None and (
            type(tenant_key) is not bytes or len(tenant_key) < 32 or mac_key is None
        ):
            raise InvalidInput(
                "tenant_key is invalid: pass at least 32 random bytes, apart from mac_key, and "
                "only with a mac_key (the tenant MAC header sits under the record MAC), or None."
            )
        if tenant_key is not None and tenant_key == mac_key:
            raise InvalidInput(
                "tenant_key must not be mac_key: the Flink jobs that check it could then sign "
                "records of the hub's own topics (core.tenant_mac)."
            )
        # every data-topic record also carries a tenant MAC (core.tenant_mac) under this key,
        # the namespace's (derived from the one the Flink jobs hold, as the record MAC's is):
        # they trust a record's ce_tenant only when it verifies
        self._tenant_key = None if tenant_key is None else namespace_key(tenant_key, topic_prefix)
        self._prefix = topic_prefix
        self._servers = bootstrap_servers
        self._timeout = float(timeout_s)
        self._delivery_timeout = float(delivery_timeout_s)
        if not 1.0 <= float(atomic_transaction_timeout_s) <= 900.0:
            raise InvalidInput(
                f"atomic_transaction_timeout_s={atomic_transaction_timeout_s!r} is invalid: pass "
                "1 to 900 seconds (Kafka's transaction.max.timeout.ms is 15 min by default)."
            )
        self._atomic_txn_timeout = float(atomic_transaction_timeout_s)
        if transaction_timeout_s is not None and not 1.0 <= float(transaction_timeout_s) <= 900.0:
            raise InvalidInput(
                f"transaction_timeout_s={transaction_timeout_s!r} is invalid: pass 1 to 900 "
                "seconds (Kafka's transaction.max.timeout.ms is 15 min by default), or None for "
                "max(60 s, twice delivery_timeout_s)."
            )
        self._txn_timeout_ms = (
            max(60_000, int(self._delivery_timeout * 2000))
            if transaction_timeout_s is None
            else int(float(transaction_timeout_s) * 1000)
        )
        self._replication = replication_factor
        self._base: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "client.id": "hub",
            "logger": _LOG,  # librdkafka's log lines go to logging, not stderr
            **dict(client_config or {}),
        }
        self._admin = AdminClient(dict(self._base))
        self._retired_admins: list[tuple[float, AdminClient]] = []
        self._lock = threading.RLock()
        # The transactions' bookkeeping (``_txn_producers``, ``_open_txns``): its own lock, so
        # that beginning and ending a transaction never waits for a read, which holds ``_lock``
        # for a ListOffsets and a fetch (a registration's decision waited 17 ms a transaction).
        # Taken before ``_lock`` where both are held (``close``).
        self._txn_lock = threading.RLock()
        self._closed = False
        self._topics: dict[str, TopicInfo] = {}
        self._topic_configs: dict[str, tuple[TopicInfo, float]] = {}  # name -> (info, expires)
        self._appended = AppendSignal()  # bumped after every write acknowledged through this log
        self._hub_config: dict[str, dict[str, str]] | None = None
        self._producer_states: dict[tuple[str, str], ProducerState] | None = None
        self._plain: Producer | None = None
        self._atomic: Producer | None = None
        # One id for this instance's atomic appends (see ``_produce_atomically``).
        self._atomic_id = f"hub.append.{uuid.uuid4().hex}"
        self._txn_producers: dict[str, Producer] = {}
        self._open_txns: set[str] = set()
        # The kept readers (``readers``): a reader stays assigned after a read that left
        # nothing it had taken from librdkafka unreturned, and a read from that offset (the
        # record after the last it returned: a fold's next read) goes on without a new
        # assignment, from the records the consumer fetched meanwhile (``_read_raw``)
        # and the offset the consumer itself reached (past markers). A kept assignment
        # fetches while idle (fetch.wait.max.ms): one left unused for READER_IDLE_S is
        # dropped by a daemon thread (``_drop_idle_reader``)
        self._readers = ReaderPool(self._reader_consumer)
        self._reader_reaper: threading.Thread | None = None
        self._group_consumers: dict[str, Consumer] = {}
        # ``_watermarks`` of a one-partition topic: a consumer per isolation level that never
        # joins a group nor fetches, only asks ListOffsets (``_offsets_consumer``)
        self._offsets_consumers: dict[IsolationLevel, Consumer] = {}
        self._offsets_lock = threading.Lock()
        # ``tail_quiet``: a kept consumer per watched one-partition topic (``tailwatch``)
        self._tail_watches = TailWatches(self._tail_consumer)
        self._internal_ready = False
        # Hub sequences (adapters.kafka_log.sequence): a writer per producer; per partition the
        # readers' states (a few cursors, the most recent first) and snapshots every
        # ``SEQUENCE_SNAPSHOT_EVERY`` offsets, which a read from an earlier offset starts from
        self._sequencer = Sequencer()
        self._sequences: dict[tuple[str, int], list[PartitionSequence]] = {}
        self._sequence_snapshots: dict[tuple[str, int], list[PartitionSequence]] = {}
        self._replays_skipped = 0
        self._uncommitted_pool: list[Consumer] = []  # read_uncommitted scans (_uncommitted_iter)
        self._replays_named: set[tuple[str, int, int]] = set()
        self._on_replay: Callable[[str], None] | None = None
        # Records written before record MACs (adapters.kafka_log.seals): the partitions' seals,
        # read from ``_hub_seals`` at the first such record; and, only while ``hub migrate
        # kafka-seal`` runs, what else may vouch for one (``vouch_unsealed``).
        self._seals: dict[tuple[str, int], PartitionSeal] | None = None
        self._migration_vouch: Vouch | None = None

    # -- namespace -------------------------------------------------------------------------------
    def _wire(self, name: str) -> str:
        """The name on the wire of a topic or transactional id (see *Namespaces*)."""
        return self._prefix + name

    def _unwire(self, name: str) -> str:
        return name[len(self._prefix) :]

    # -- clients -----------------------------------------------------------------------------------
    def _producer_config(self) -> dict[str, Any]:
        return {
            **self._base,
            "enable.idempotence": True,
            "acks": "all",
            # Longest linger, largest batches and local queue: a batch leaves only on flush(),
            # as one record batch per partition (flush ignores linger); producing a big batch
            # in Python may take longer than any short linger would allow.
            "linger.ms": max(1, min(900_000, int(self._delivery_timeout * 1000) - 1)),
            "batch.num.messages": _MAX_BATCH_RECORDS,
            "batch.size": 1 << 30,
            "queue.buffering.max.messages": 2_147_483_647,
            "queue.buffering.max.kbytes": 2_147_483_647,
            "message.max.bytes": 16 << 20,
            "message.timeout.ms": int(self._delivery_timeout * 1000),
            "partitioner": "murmur2_random",  # unused (partitions are explicit); Kafka's choice
        }

    def _plain_producer(self) -> Producer:
        if self._plain is None:
            self._plain = Producer(self._producer_config())
        return self._plain

    def _transactional(self, transactional_id: str, timeout_ms: int | None = None) -> Producer:
        """A transactional producer, ``init_transactions`` done. ``timeout_ms`` (librdkafka's
        ``transaction.timeout.ms``) bounds how long a transaction may stay open: the
        coordinator aborts it after that, which is also how long a crashed process's open
        transaction keeps the last stable offset (what ``read_committed`` readers see) from
        passing it. librdkafka requires ``message.timeout.ms`` <= it, and linger below that."""
        timeout_ms = timeout_ms or self._txn_timeout_ms
        config = {
            **self._producer_config(),
            "transactional.id": self._wire(transactional_id),
            "transaction.timeout.ms": timeout_ms,
        }
        if config["message.timeout.ms"] > timeout_ms:
            config["message.timeout.ms"] = timeout_ms
            config["linger.ms"] = max(1, min(config["linger.ms"], timeout_ms - 1))
        producer = Producer(config)
        try:
            producer.init_transactions(self._timeout)
        except KafkaException as exc:
            raise translate(exc, f"starting transactional producer {transactional_id!r}") from exc
        return producer

    def _reader_consumer(self) -> Consumer:
        """A new reader consumer (``ReaderPool`` keeps them)."""
        return Consumer(
            {
                **self._base,
                # Never joins or commits: reads use assign(); librdkafka requires a group id.
                "group.id": f"hub.reader.{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                # Never moved silently: an offset deleted under a read is handled by the
                # read (``_restart``); librdkafka's own reset could skip records.
                "auto.offset.reset": "error",
                # a fetch with nothing new waits this long at the broker: reads that end
                # at a record or a marker return without it; an assignment kept between
                # reads (``KeptReader.at``) polls ~10 times a second while idle
                "fetch.wait.max.ms": 5,
                "queued.max.messages.kbytes": 16384,
                "receive.message.max.bytes": 100_000_000,
            }
        )

    def _tail_consumer(self) -> Consumer:
        """A new tail watcher (``TailWatches``): a waiting fetch, answered by the broker as
        soon as a record commits (or after ``fetch.wait.max.ms`` with nothing)."""
        return Consumer(
            {
                **self._base,
                "group.id": f"hub.tail.{uuid.uuid4().hex}",  # required; never joined
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": False,
                "auto.offset.reset": "error",  # an offset gone: an error, the watcher dropped
                "fetch.wait.max.ms": 500,
            }
        )

    def _group_metadata(self, group: str) -> Any:
        consumer = self._group_consumers.get(group)
        if consumer is None:
            consumer = Consumer({**self._base, "group.id": group, "enable.auto.commit": False})
            self._group_consumers[group] = consumer
        return consumer.consumer_group_metadata()

    def _check_open(self) -> None:
        if self._closed:
            raise HubError("This KafkaEventLog is closed; open a new one.", code="log_closed")

    # -- topics ------------------------------------------------------------------------------------
    def create_topic(
        self, name: str, partitions: int = 1, config: Mapping[str, str] | None = None
    ) -> TopicInfo:
        """Create a topic, or return it if it exists with the same partition count.

        ``hub.*`` keys are kept in ``_hub_topics``; the others go to Kafka, which validates them.
        An existing topic keeps its config (the ``config`` passed is then ignored).
        """
        self._check_open()
        _check_topic_name(name)
        if type(partitions) is not int or partitions < 1:
            raise InvalidInput(
                f"partitions={partitions!r} is invalid for topic {name!r}: pass an int >= 1."
            )
        cfg = dict(config or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in cfg.items()):
            raise InvalidInput(
                f"The config of topic {name!r} must map str to str (as Kafka's does), got {cfg!r}."
            )
        self._ensure_internal_topics()
        hub_cfg = {k: v for k, v in cfg.items() if k.startswith(HUB_CONFIG_PREFIX)}
        kafka_cfg = {k: v for k, v in cfg.items() if not k.startswith(HUB_CONFIG_PREFIX)}
        # The hub's governed retention (policies, legal holds, retention.delete events on the
        # ledger) is the only deleter: left to the broker's defaults (7 days by time), Kafka
        # would delete records on its own, judged by their timestamps, with no event saying so,
        # and the ledger would prove records that are gone. A config passed explicitly wins.
        for key, value in NO_BROKER_DELETION.items():
            kafka_cfg.setdefault(key, value)
        created = self._create_kafka_topic(name, partitions, kafka_cfg)
        existing = self._lookup(name)
        if existing is None:
            # On a cluster each broker learns of a new topic on its own time: the broker asked
            # may not know it yet although the creating one does (seen with three brokers).
            self._wait(lambda: self._lookup(name) is not None, f"topic {name!r} in the metadata")
            existing = self._lookup(name)
        if existing is None:
            raise Retryable(
                f"Topic {name!r} was created but is not in Kafka's metadata yet; retry.",
                code="log_unavailable",
            )
        if existing.partitions != partitions:
            raise TopicExists(
                f"Topic {name!r} already exists with {existing.partitions} partitions, not "
                f"{partitions}; use the existing count or another topic name."
            )
        if created:
            # A partition's leader may not have loaded a partition the controller just gave it:
            # its ListOffsets answer UNKNOWN_TOPIC_OR_PART for a moment (seen on the three-broker
            # cluster, `hub init` failed on it in CI). The topic is returned once every
            # partition's offsets can be read, so the caller's first read does not fail.
            request = {KafkaTP(self._wire(name), p): _LATEST for p in range(partitions)}
            self._retrying(
                lambda: [
                    f.result(timeout=self._timeout)
                    for f in self._admin.list_offsets(
                        request, request_timeout=self._timeout
                    ).values()
                ],
                f"waiting for the partitions of the new topic {name!r}",
                transient=_NO_LEADER_YET | {KafkaError.UNKNOWN_TOPIC_OR_PART},
            )
        if created and hub_cfg:
            self._write_hub_config(name, hub_cfg)
        self._topic_configs.pop(name, None)
        return self.topic(name)

    def _create_kafka_topic(self, name: str, partitions: int, config: dict[str, str]) -> bool:
        """Create the topic in Kafka; False if it already existed."""
        wire = self._wire(name)
        new = NewTopic(wire, partitions, self._replication, config=config)
        future = self._admin.create_topics([new], request_timeout=self._timeout)[wire]
        try:
            future.result(timeout=self._timeout)
        except (KafkaException, TimeoutError) as exc:
            err = kafka_error(exc)
            code = err.code() if err else None
            if code == KafkaError.TOPIC_ALREADY_EXISTS:
                return False
            text = err.str() if err else str(exc)
            if code == KafkaError.INVALID_CONFIG:
                raise InvalidInput(
                    f"Kafka rejected the config {config!r} of topic {name!r} ({text}); use Kafka "
                    f"topic configs, or the '{HUB_CONFIG_PREFIX}' prefix for the hub's own keys.",
                    code="invalid_topic_config",
                ) from exc
            if code == KafkaError.TOPIC_EXCEPTION:
                raise InvalidInput(
                    f"Kafka rejected the topic name {name!r} ({text}); Kafka also refuses names "
                    "that differ from an existing one only by '.' versus '_'.",
                    code="invalid_topic_name",
                ) from exc
            if code == KafkaError.INVALID_REPLICATION_FACTOR:
                raise InvalidInput(
                    f"Kafka cannot place {self._replication} replicas of topic {name!r} ({text});"
                    " pass replication_factor no larger than the number of brokers.",
                ) from exc
            raise translate(exc, f"creating topic {name!r}") from exc
        self._wait(lambda: self._has_leaders(name, partitions), f"topic {name!r} to get leaders")
        return True

    def _has_leaders(self, name: str, partitions: int) -> bool:
        """Whether Kafka's metadata shows every partition of the topic with a leader."""
        try:
            md = self._admin.list_topics(topic=self._wire(name), timeout=self._timeout)
        except KafkaException:
            return False
        t = md.topics.get(self._wire(name))
        return (
            t is not None
            and t.error is None
            and len(t.partitions) == partitions
            and all(pm.leader >= 0 and pm.error is None for pm in t.partitions.values())
        )

    def _lookup(self, name: str) -> TopicInfo | None:
        """Kafka's view of one topic (partition count), or None when it does not exist."""
        cached = self._topics.get(name)
        if cached is not None:
            return cached
        try:
            md = self._admin.list_topics(topic=self._wire(name), timeout=self._timeout)
        except KafkaException as exc:
            raise translate(exc, f"looking up topic {name!r}") from exc
        t = md.topics.get(self._wire(name))
        if t is None or t.error is not None or not t.partitions:
            if (
                t is not None
                and t.error is not None
                and t.error.code()
                not in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.LEADER_NOT_AVAILABLE)
            ):
                raise translate(t.error, f"looking up topic {name!r}")
            return None
        info = TopicInfo(name, len(t.partitions))
        self._topics[name] = info
        return info

    def _info(self, name: str) -> TopicInfo:
        _check_topic_name(name)
        info = self._lookup(name)
        if info is None:
            raise TopicNotFound(
                f"Topic {name!r} does not exist on the Kafka cluster {self._servers}; create it "
                "first (create_topic)."
            )
        return info

    def _partition_counts(self) -> dict[str, int]:
        """Partitions per topic of this namespace (not the internal ones), from one metadata
        request, sorted by name."""
        try:
            md = self._admin.list_topics(timeout=self._timeout)
        except KafkaException as exc:
            raise translate(exc, "listing topics") from exc
        counts = {
            self._unwire(n): len(t.partitions)
            for n, t in md.topics.items()
            if n.startswith(self._prefix) and t.partitions
        }
        return {n: counts[n] for n in sorted(counts) if not _INTERNAL.match(n)}

    def topics(self) -> list[TopicInfo]:
        self._check_open()
        counts = self._partition_counts()
        names = list(counts)
        configs = self._kafka_configs(names)
        hub = self._hub_configs()
        return [TopicInfo(n, counts[n], {**configs.get(n, {}), **hub.get(n, {})}) for n in names]

    def topic(self, name: str) -> TopicInfo:
        """The topic with its config, from memory for ``TOPIC_CONFIG_TTL_S`` after a lookup."""
        self._check_open()
        hit = self._topic_configs.get(name)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        info = self._info(name)
        config = {**self._kafka_configs([name]).get(name, {}), **self._hub_configs().get(name, {})}
        found = TopicInfo(name, info.partitions, config)
        self._topic_configs[name] = (found, now + TOPIC_CONFIG_TTL_S)
        return found

    def _kafka_configs(self, names: Sequence[str]) -> dict[str, dict[str, str]]:
        """The topic configs set explicitly on each topic (not broker or default values)."""
        if not names:
            return {}
        resources = [ConfigResource(ConfigResource.Type.TOPIC, self._wire(n)) for n in names]
        out: dict[str, dict[str, str]] = {}
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                futures = self._admin.describe_configs(resources, request_timeout=self._timeout)
                for res, future in futures.items():
                    entries = future.result(timeout=self._timeout)
                    out[self._unwire(res.name)] = {
                        k: e.value
                        for k, e in entries.items()
                        if e.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
                        and e.value is not None
                        and NO_BROKER_DELETION.get(k) != e.value  # the hub's default, not a choice
                    }
                return out
            except (KafkaException, TimeoutError) as exc:
                # On a cluster the broker answering may not know a topic just created (each
                # broker applies the metadata on its own time): wait for it, within the timeout.
                err = exc.args[0] if exc.args else None
                unknown = (
                    isinstance(err, KafkaError) and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
                )
                if not unknown or time.monotonic() >= deadline:
                    raise translate(exc, f"describing the config of {list(names)!r}") from exc
                time.sleep(0.05)

    # -- the namespace as a whole (a failed restore's rollback) -----------------------------------
    def namespace_topics(self) -> set[str]:
        """Every topic of this namespace as named on the wire (with the prefix), the hub's
        internal topics included."""
        self._check_open()
        try:
            md = self._admin.list_topics(timeout=self._timeout)
        except KafkaException as exc:
            raise translate(exc, "listing topics") from exc
        return {n for n in md.topics if n.startswith(self._prefix) and not n.startswith("__")}

    def delete_namespace_topics(self, wire_names: set[str]) -> None:
        """Delete these topics of this namespace (wire names, as ``namespace_topics`` gives them)
        and wait until the broker no longer lists them; refuses a name outside the namespace."""
        self._check_open()
        outside = sorted(n for n in wire_names if not n.startswith(self._prefix))
        if outside:
            raise InvalidInput(
                f"Topics {outside} are outside this log's namespace {self._prefix!r}: not deleted."
            )
        if not wire_names:
            return
        try:
            futures = self._admin.delete_topics(sorted(wire_names), request_timeout=self._timeout)
            for name, future in futures.items():
                try:
                    future.result(timeout=self._timeout)
                except KafkaException as exc:
                    if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                        raise translate(exc, f"deleting topic {name!r}") from exc
        except (KafkaException, TimeoutError) as exc:
            raise translate(exc, f"deleting topics {sorted(wire_names)!r}") from exc
        with self._lock:
            self._internal_ready = False
            self._seals = None
            self._legacy_below = None
            self._drop_kept_reader()  # its partition may be gone
        self._tail_watches.drop(wire_names)
        self._wait(
            lambda: not (self.namespace_topics() & wire_names),
            f"the broker to drop topics {sorted(wire_names)!r}",
        )

    # -- the internal topics -----------------------------------------------------------------------
    def _ensure_internal_topics(self) -> None:
        if self._internal_ready:
            return
        # Compacted, with hourly segments so that compaction (which skips the active segment)
        # keeps the state that every log instance reads at first use small.
        compacted = {
            "cleanup.policy": "compact",
            "min.cleanable.dirty.ratio": "0.1",
            "segment.ms": "3600000",
        }
        for name in (TOPICS_TOPIC, PRODUCER_STATE_TOPIC):
            if self._lookup(name) is None:
                self._create_kafka_topic(name, 1, {**compacted, "max.message.bytes": str(16 << 20)})
        self._internal_ready = True

    # -- the namespace's own MAC key (adapters.kafka_log.auth.namespace_key) ----------------------
    def bind_namespace(self) -> dict[tuple[str, int], int]:
        """Record, once per namespace, up to which offsets its records may carry MACs under the
        hub's unbound key (those written before namespaces had keys of their own), and return
        those offsets by (topic, partition). The first call on a namespace writes its marker
        (``_hub_namespace``: every partition's end, or none for a new namespace) and later
        calls read it; the first marker counts, so that no later start widens it. A no-op
        ({}) for the default namespace (whose key is the hub's key) and without a MAC key."""
        if not self._prefix or self._unbound_key is None:
            return {}
        with self._lock:
            if self._legacy_below is not None:
                return self._legacy_below
            if self._lookup(NAMESPACE_TOPIC) is None:
                marks = {
                    (name, p): end
                    for name in sorted(self._unwire(n) for n in self.namespace_topics())
                    if name != NAMESPACE_TOPIC
                    for p, end in self._watermarks(name).items()
                    if end > 0
                }
                body = {
                    "namespace": self._prefix,
                    "legacy_below": [[t, p, end] for (t, p), end in sorted(marks.items())],
                }
                config = {"cleanup.policy": "delete", "retention.ms": "-1"}
                self._create_kafka_topic(NAMESPACE_TOPIC, 1, config)
                self._wait(lambda: self._lookup(NAMESPACE_TOPIC) is not None, "the marker topic")
                row = (0, b"namespace", json.dumps(body, sort_keys=True).encode(), (), None)
                self._produce_and_wait(NAMESPACE_TOPIC, [row], "writing the namespace marker")
            first = next(iter(self._scan_raw(NAMESPACE_TOPIC, 0, 0, 1)), None)
            self._legacy_below = _legacy_marks(first, self._prefix)
            return self._legacy_below

    def _legacy(self, r: StoredRecord) -> bool:
        """Whether a record whose MAC fails under the namespace's key is one it wrote before
        it had a key of its own: below its marker, with a valid MAC under the unbound key."""
        if r.topic == NAMESPACE_TOPIC or self._unbound_key is None or not self._prefix:
            return False
        # bound before the read that checks ``r`` (``_read_raw``): never here, mid-read
        below = (self._legacy_below or {}).get((r.topic, r.partition), 0)
        return r.offset < below and mac_valid(self._unbound_key, r)

    # -- seals of records written before record MACs (adapters.kafka_log.seals) ------------------
    def _vouch(self, r: StoredRecord) -> bool:
        """Whether a hub-topic record without a valid MAC is read: its partition's seal lists it
        (offset below the seal's N, same digest); during the migration, the ledger vouches."""
        if r.topic == SEALS_TOPIC:
            return False  # the seals themselves: MAC'd records only
        seal = self.seals().get((r.topic, r.partition))
        if seal is not None and seal.vouches(r):
            return True
        return self._migration_vouch is not None and self._migration_vouch(r)

    def seals(self) -> dict[tuple[str, int], PartitionSeal]:
        """The seals of this namespace by (topic, partition), read once per instance."""
        with self._lock:
            if self._seals is None:
                if self._lookup(SEALS_TOPIC) is None:
                    self._seals = {}
                else:
                    try:
                        self._seals = fold_seals(self._scan_raw(SEALS_TOPIC, 0, 0))
                    except SealCorrupt as exc:
                        raise LogTampered(str(exc), code="log_tampered") from exc
            return self._seals

    def write_seals(self, seals: Sequence[PartitionSeal]) -> list[RecordMetadata]:
        """Store these seals in ``_hub_seals`` (each record MAC'd like every record the log
        writes); the next unsealed record read consults them. Needs the MAC key."""
        if self._mac_key is None:
            raise InvalidInput("A seal needs the log's MAC key: this log was opened without one.")
        with self._lock:
            if self._lookup(SEALS_TOPIC) is None:
                config = {
                    "cleanup.policy": "compact",
                    "min.cleanable.dirty.ratio": "0.1",
                    "max.message.bytes": str(16 << 20),
                }
                self._create_kafka_topic(SEALS_TOPIC, 1, config)
                self._wait(lambda: self._lookup(SEALS_TOPIC) is not None, "the seals topic")
            rows = [(0, k, v, (), None) for seal in seals for k, v in seal.records()]
            meta = self._produce_and_wait(SEALS_TOPIC, rows, "writing seals") if rows else []
            self._seals = None
            return meta

    def vouch_unsealed(self, vouch: Vouch | None) -> None:
        """Only for ``hub migrate kafka-seal``: also read hub-topic records without a MAC that
        ``vouch`` accepts (the ledger's leaf of the record matches), so that the migration can
        authenticate and read the approvals it needs on a deployment not yet sealed."""
        self._migration_vouch = vouch

    def sealable_partitions(self) -> list[tuple[str, int]]:
        """Every (topic, partition) of this namespace, the internal topics included, but not
        the seals themselves (``hub migrate kafka-seal`` judges which records need a seal)."""
        names = sorted(
            self._unwire(n) for n in self.namespace_topics() if self._unwire(n) != SEALS_TOPIC
        )
        return [(n, p) for n in names for p in range(self._info(n).partitions)]

    def has_valid_mac(self, r: StoredRecord) -> bool:
        """Whether a record as ``scan_stored`` gives it carries a valid MAC (False without a
        MAC key: then nothing is sealed)."""
        return self._mac_key is not None and mac_valid(self._mac_key, r)

    def integrity_problems(
        self, checked: Mapping[tuple[str, int], tuple[int, int]] | None = None
    ) -> list[LogProblem]:
        """The broker stores the records (its ACLs and replication protect them); what this
        log checks is replays (``replays``): per partition, the first copy of a record
        (``first_copy``: a hub sequence not above its writer's last; before sequences, a
        repeated valid MAC), named with its original's offset (a second read of the
        partition, only then). The partitions are read ``read_uncommitted``: a committed copy
        of a record of a transaction the hub aborted is a copy too (``replays``), which a
        ``read_committed`` scan cannot tell from a new record. Reads every record of the
        namespace once more (``checked`` is of no use: readers strip the MACs); nothing to
        check without a MAC key."""
        key = self._mac_key
        if key is None:
            return []
        found: list[LogProblem] = []
        for t in self.topics():
            for p in range(t.partitions):

                def committed(offset: int, topic: str = t.name, part: int = p) -> bool:
                    return self._committed_at(topic, part, offset)

                hit = first_copy(
                    key,
                    lambda: self._scan_uncommitted(t.name, p),  # noqa: B023
                    committed,
                )
                if hit is not None:
                    original = original_of(self._scan_uncommitted(t.name, p), hit[1])
                    if original == hit[0]:  # not left below the copy (retention cut it)
                        original = None
                    aborted = original is not None and not committed(original)
                    found.append(
                        LogProblem(t.name, p, hit[0], replay_what(original, aborted=aborted))
                    )
        return found + self._held_back()

    def _committed_at(self, topic: str, partition: int, offset: int) -> bool:
        """Whether the record at ``offset`` is committed (a ``read_committed`` read from it
        starts with it; an aborted record, or one of a transaction still open, is skipped)."""
        chunk, _, _ = self._read_raw(topic, partition, offset, 1, verify=False)
        return bool(chunk) and chunk[0].offset == offset

    def _scan_uncommitted(self, topic: str, partition: int) -> Iterator[StoredRecord]:
        """Every record of a partition as stored, aborted ones and those of transactions still
        open included (``read_uncommitted``), up to the high watermark as it is now."""
        self._check_open()
        end = self._watermarks(topic)[partition]
        if end <= 0:
            return
        yield from self._uncommitted_iter(topic, partition, OFFSET_BEGINNING, end)

    @property
    def held_back_after_ms(self) -> int:
        """How old a record of the hub's above a partition's last stable offset must be before
        verify names it held back (``_held_back``): the longest a transaction of this log can
        stay open (the coordinator aborts it then: ``transaction_timeout_s``, the atomic
        appends' ``atomic_transaction_timeout_s``) plus ``HELD_BACK_GRACE_MS``."""
        longest = max(self._txn_timeout_ms, int(self._atomic_txn_timeout * 1000))
        return longest + HELD_BACK_GRACE_MS

    def _held_back(self) -> list[LogProblem]:
        """Partitions whose last stable offset stays below a record of the hub's own, with a
        valid MAC, older than any transaction of the hub's can stay open (``_transactional``'s
        timeout, the atomic one's, plus ``HELD_BACK_GRACE_MS``): another producer's open
        transaction pins it, so ``read_committed`` readers (projections, the ledger's sync) do
        not see records the hub acknowledged. Reads ``read_uncommitted`` from the last stable
        offset, at most ``HELD_BACK_SCAN`` records per partition."""
        cutoff = time.time_ns() // 1_000_000 - self.held_back_after_ms
        found: list[LogProblem] = []
        for t in self.topics():
            stable = self._watermarks(t.name, committed=True)
            high = self._watermarks(t.name)
            for p, lso in sorted(stable.items()):
                if lso >= high.get(p, 0):
                    continue
                for r in self._uncommitted(t.name, p, lso, min(high[p], lso + HELD_BACK_SCAN)):
                    if r.timestamp_ms < cutoff and self.has_valid_mac(r):
                        found.append(LogProblem(t.name, p, lso, held_back_what(r.offset)))
                        break
        return found

    def _uncommitted(self, topic: str, partition: int, start: int, end: int) -> list[StoredRecord]:
        """The records from ``start`` below ``end`` as stored, transactions still open
        included (``read_uncommitted``); a fresh consumer, never the reader."""
        return list(self._uncommitted_iter(topic, partition, start, end))

    def _uncommitted_iter(
        self, topic: str, partition: int, start: int, end: int
    ) -> Iterator[StoredRecord]:
        """:meth:`_uncommitted` a batch at a time; the read ends at ``end``, at the end of the
        partition, or when nothing comes for the client timeout. The consumer is taken from a
        small pool (a new one costs a metadata round trip: verify's replay scan reads every
        partition) and given back unassigned."""
        wire = self._wire(topic)
        with self._lock:
            consumer = self._uncommitted_pool.pop() if self._uncommitted_pool else None
        if consumer is None:
            consumer = Consumer(
                {
                    **self._base,
                    "group.id": f"hub.held.{uuid.uuid4().hex}",
                    "enable.auto.commit": False,
                    "isolation.level": "read_uncommitted",
                    "enable.partition.eof": True,
                }
            )
        try:
            consumer.assign([KafkaTP(wire, partition, start)])
            deadline = time.monotonic() + self._timeout
            while time.monotonic() < deadline:
                msgs = consumer.consume(500, 1.0)
                done = False  # an empty consume is a slow fetch: the EOF event ends it
                out: list[StoredRecord] = []
                for m in msgs:
                    if m.topic() != wire or m.partition() != partition:
                        continue  # fetched for an earlier assignment
                    at = m.offset()
                    if m.error() is not None or at is None or at >= end - 1:
                        done = True
                    if m.error() is None and at is not None and at < end:
                        out.append(stored_record(topic, partition, at, m))
                if out:
                    deadline = time.monotonic() + self._timeout  # still coming
                yield from out
                if done:
                    break
        finally:
            kept = False
            with suppress(Exception):
                consumer.unassign()
                with self._lock:
                    if not self._closed and len(self._uncommitted_pool) < 2:
                        self._uncommitted_pool.append(consumer)
                        kept = True
            if not kept:
                consumer.close()

    def scan_stored(self, topic: str, partition: int) -> Iterator[StoredRecord]:
        """Every committed record of a partition exactly as stored: no MAC checked, none of
        the hub's headers stripped (the migration's plan judges them itself)."""
        self._check_open()
        return self._scan_raw(topic, partition, 0, verify=False)

    def _read_internal(self, topic: str) -> Iterator[StoredRecord]:
        """Every record of a one-partition internal topic, from the beginning."""
        self._ensure_internal_topics()
        yield from self._scan_raw(topic, 0, 0)

    def _hub_configs(self) -> dict[str, dict[str, str]]:
        with self._lock:
            if self._hub_config is None:
                state: dict[str, dict[str, str]] = {}
                for r in self._read_internal(TOPICS_TOPIC):
                    if r.key is None:
                        continue
                    name = r.key.decode()
                    if r.value is None:
                        state.pop(name, None)
                        continue
                    try:
                        config = json.loads(r.value)["config"]
                    except (ValueError, KeyError, TypeError):
                        _LOG.warning(
                            "Skipping a malformed %s entry at offset %d.", TOPICS_TOPIC, r.offset
                        )
                        continue
                    state[name] = {str(k): str(v) for k, v in config.items()}
                self._hub_config = state
            return self._hub_config

    def _write_hub_config(self, name: str, config: dict[str, str]) -> None:
        value = json.dumps({"config": config}, sort_keys=True).encode()
        with self._lock:
            self._produce_and_wait(TOPICS_TOPIC, [(0, name.encode(), value, (), None)], "config")
            self._hub_configs()[name] = dict(config)

    # -- writing -----------------------------------------------------------------------------------
    def _prepare(self, name: str, records: Sequence[Record]) -> PreparedBatch:
        """Validate and route a batch; raise before anything is sent."""
        info = self._info(name)
        if not isinstance(records, (list, tuple)):
            records = list(records)
        n = info.partitions
        now = time.time_ns() // 1_000_000
        if records_valid(records, n, IDEM_HEADER):  # the whole batch at once (the usual case)
            check_envelope_headers([r.headers for r in records], name)
            if n == 1:  # one partition: no murmur2 and no per-record routing
                parts = [0] * len(records)
            else:
                parts = [
                    r.partition if r.partition is not None else default_partition(r.key, n)
                    for r in records
                ]
            stamps = [now if r.timestamp_ms is None else r.timestamp_ms for r in records]
            size = payload_size([r.key for r in records], [r.value for r in records])
            return PreparedBatch(name, records, parts, stamps, size)
        parts = []
        stamps = []
        for i, r in enumerate(records):  # raises naming the first bad record
            check_record(r, i, n, name)  # names a repeated envelope header too
            if r.partition is not None:
                parts.append(r.partition)
            else:  # one partition: no murmur2 per record
                parts.append(default_partition(r.key, n) if n > 1 else 0)
            stamps.append(now if r.timestamp_ms is None else r.timestamp_ms)
        size = payload_size([r.key for r in records], [r.value for r in records])
        return PreparedBatch(name, records, parts, stamps, size)

    def append(
        self,
        topic: str,
        records: Sequence[Record],
        *,
        idempotence: IdempotenceKey | None = None,
    ) -> list[RecordMetadata]:
        """Append a batch atomically and durably; metadata is in the order of ``records``.

        A retry of the last idempotent batch MUST carry the same number of records bound for the
        same partitions, else it raises ``OutOfOrderSequence``. An idempotent append of no
        records raises ``InvalidInput``.
        """
        self._check_open()
        if idempotence is not None:
            if not isinstance(idempotence, IdempotenceKey):
                raise InvalidInput(f"idempotence={idempotence!r} must be an IdempotenceKey.")
            _check_id(idempotence.producer_id, "idempotent producer id")
            _check_offset(idempotence.sequence, "idempotent sequence number")
            if not records:
                raise InvalidInput(
                    f"An idempotent append to {topic!r} needs at least one record; do not "
                    "spend sequence numbers on empty batches."
                )
        batch = self._prepare(topic, records)
        if not batch.records:
            return []
        with self._lock:
            if idempotence is None:
                meta = self._write(batch, None)
            else:
                meta = self._append_idempotent(batch, idempotence)
        self._appended.bump((topic,))
        return meta

    def append_columns(self, topic: str, batch: ColumnBatch) -> Sequence[RecordMetadata]:
        """``append(topic, batch.records())`` without a ``Record`` per record: on a one-partition
        topic a batch that ``columns_valid`` passes is checked once per column and produced
        from its columns, as ONE record batch, with the same records, timestamps, delivery
        wait and metadata as ``append``. Any other batch (several partitions, too big for one
        record batch, anything unusual) goes through ``append`` as records, which stores or
        refuses it exactly as before."""
        self._check_open()
        if not isinstance(batch, ColumnBatch):
            raise InvalidInput(
                f"append_columns to {topic!r} takes a ColumnBatch, got {type(batch).__name__}; "
                "pass records to append instead."
            )
        batch.check(topic)
        n = len(batch)
        info = self._info(topic)  # raises TopicNotFound first, as append does
        # What is checked is what is produced: the columns are copied once (pointer copies),
        # so a sequence that answers differently when read again cannot slip past the check.
        own = ColumnBatch(
            list(batch.keys),
            list(batch.values),
            batch.header_names,
            tuple(
                c if isinstance(c, bytes) or type(c) not in (list, tuple) else list(c)
                for c in batch.header_columns
            ),
            batch.timestamp_ms,
        )
        if (
            not n
            or info.partitions != 1
            or len(own) != n
            or not columns_valid(own, IDEM_HEADER)
            or is_transactional_append(1, payload_size(own.keys, own.values), n)
        ):
            return self.append(topic, batch.records())
        ts = own.timestamp_ms
        if ts is None:
            ts = time.time_ns() // 1_000_000
        with self._lock:
            meta = self._produce_columns(topic, own, ts)
        self._appended.bump((topic,))
        return meta

    def _produce_columns(self, topic: str, batch: ColumnBatch, ts: int) -> KafkaAppended:
        """``_produce_and_wait`` of a checked one-partition column batch as ONE record batch:
        the rows come straight from the columns (``produce_columns``), every record stamped
        ``ts``, the reports counted per batch (``BatchDelivery``)."""
        doing = f"appending to {topic!r}"
        producer = self._plain_producer()
        n = len(batch)
        delivery = BatchDelivery(topic, 0, ts, n, producer)
        wire = self._wire(topic)
        try:
            try:
                if self._mac_key is not None:  # readers skip a copy (``sequence``)
                    batch = replace(
                        batch,
                        header_names=(*batch.header_names, SEQ_HEADER),
                        header_columns=(*batch.header_columns, self._sequencer.values(producer, n)),
                    )
                tenant_key = self._tenant_key
                if tenant_key is not None and not mac_required(topic):  # under the record MAC
                    batch = _with_mac_column(batch, TMAC_HEADER, tenant_macs, tenant_key, topic, ts)
                if self._mac_key is not None:  # each record sealed: its MAC a last header column
                    batch = _with_mac_column(
                        batch, MAC_HEADER, record_macs, self._mac_key, topic, ts
                    )
                # a report for the first and the last record only (see BatchDelivery)
                produce_columns(
                    producer.produce,
                    wire,
                    batch,
                    ts,
                    delivery.on_first or delivery.on_last,
                    delivery.on_last,
                )
            except BufferError as exc:  # librdkafka's local queue is full
                raise PayloadTooLarge(
                    f"A batch of {len(batch)} records for {topic!r} overflows the Kafka "
                    "producer's local queue; append smaller batches."
                ) from exc
            self._delivered(producer, delivery, doing)
            return delivery.answer()  # columns: no RecordMetadata until one is asked for
        except HubError:
            # A fresh producer next time, so nothing of this batch can still be sent later.
            self._plain = None
            producer.purge(in_queue=True, in_flight=False)
            raise

    def append_generation(self, topics: Sequence[str] | None = None) -> int:
        return self._appended.generation_of(topics)

    def wait_for_append(
        self, generation: int, timeout_s: float, topics: Sequence[str] | None = None
    ) -> int:
        return self._appended.wait(generation, timeout_s, topics)

    def _write(self, batch: PreparedBatch, marker: bytes | None) -> list[RecordMetadata]:
        if marker is None:
            rows = [
                (p, r.key, r.value, r.headers, ts)
                for r, p, ts in zip(batch.records, batch.partitions, batch.timestamps, strict=True)
            ]
        else:
            extra: Headers = ((IDEM_HEADER, marker),)
            rows = [
                (p, r.key, r.value, tuple(r.headers) + extra, ts)
                for r, p, ts in zip(batch.records, batch.partitions, batch.timestamps, strict=True)
            ]
        if batch.single_record_batch:
            return self._produce_and_wait(
                batch.topic, rows, f"appending to {batch.topic!r}", batch.timestamps
            )
        return self._produce_atomically(batch.topic, rows)

    def _send(
        self,
        producer: Producer,
        topic: str,
        rows: Sequence[tuple[int, bytes | None, bytes | None, Headers, int | None]],
        *,
        may_split: bool,
        delivery: Delivery | BatchDelivery | None = None,
    ) -> Delivery | BatchDelivery:
        """Produce every row; ``delivery`` collects the reports (default: one per record)."""
        if delivery is None:
            delivery = Delivery(topic, len(rows))
        if self._mac_key is not None:
            rows = self._sealed(topic, rows, producer)
        wire = self._wire(topic)
        if isinstance(delivery, BatchDelivery) and not may_split:
            # one record batch: a report for its first and last record only (see BatchDelivery)
            produce, last = producer.produce, len(rows) - 1
            try:
                for i, (partition, key, value, headers, ts) in enumerate(rows):
                    if 0 < i < last:  # positional, as in _produce_columns
                        produce(
                            wire, value, key, partition, None, None, ts or 0, list(headers) or None
                        )
                        continue
                    produce(
                        wire,
                        value=value,
                        key=key,
                        partition=partition,
                        on_delivery=delivery.on_last if i == last else delivery.on_first,
                        timestamp=ts or 0,
                        headers=list(headers) or None,
                    )
            except BufferError as exc:  # librdkafka's local queue is full
                raise PayloadTooLarge(
                    f"A batch of {len(rows)} records for {topic!r} overflows the Kafka "
                    "producer's local queue; append smaller batches."
                ) from exc
            return delivery
        assert isinstance(delivery, Delivery)  # a split batch: a report per record
        for i, (partition, key, value, headers, ts) in enumerate(rows):
            while True:
                try:
                    producer.produce(
                        wire,
                        value=value,
                        key=key,
                        partition=partition,
                        on_delivery=delivery.callback(i),
                        timestamp=ts or 0,
                        headers=list(headers) or None,
                    )
                    break
                except BufferError as exc:  # librdkafka's local queue is full
                    if not may_split:  # draining now would split the record batch
                        raise PayloadTooLarge(
                            f"A batch of {len(rows)} records for {topic!r} overflows the Kafka "
                            "producer's local queue; append smaller batches."
                        ) from exc
                    producer.flush(0.1)
        return delivery

    def _await(
        self, producer: Producer, delivery: Delivery | BatchDelivery, doing: str
    ) -> list[RecordMetadata]:
        self._delivered(producer, delivery, doing)
        return delivery.metadata()

    def _delivered(
        self, producer: Producer, delivery: Delivery | BatchDelivery, doing: str
    ) -> None:
        """Wait for every report of ``delivery``; raise on a missing or failed one."""
        deadline = time.monotonic() + self._delivery_timeout + self._timeout
        while delivery.pending and time.monotonic() < deadline:
            producer.flush(min(1.0, max(0.0, deadline - time.monotonic())))
        if delivery.pending:
            raise Retryable(
                f"Kafka did not acknowledge {delivery.pending} records within "
                f"{self._delivery_timeout + self._timeout:.0f} s while {doing}; the outcome is "
                "unknown: retry with an IdempotenceKey to avoid duplicates.",
                code="log_unavailable",
            )
        errors = delivery.errors
        if errors:
            raise translate(errors[0], doing)

    def _seal_maybe(
        self,
        topic: str,
        rows: Sequence[tuple[int, bytes | None, bytes | None, Headers, int | None]],
        producer: Producer,
    ) -> Sequence[tuple[int, bytes | None, bytes | None, Headers, int | None]]:
        return rows if self._mac_key is None else self._sealed(topic, rows, producer)

    def _sealed(
        self,
        topic: str,
        rows: Sequence[tuple[int, bytes | None, bytes | None, Headers, int | None]],
        producer: Producer,
    ) -> list[tuple[int, bytes | None, bytes | None, Headers, int | None]]:
        """The rows with their MAC header last (``auth.record_mac``), on a data topic with the
        tenant MAC right before it (``core.tenant_mac``), and before that ``producer``'s next
        hub sequence numbers (``sequence``: readers skip a copy); a row without a timestamp
        gets "now" here, as the MACs bind it (librdkafka would stamp it after)."""
        key = self._mac_key
        assert key is not None
        now = time.time_ns() // 1_000_000
        seqs = self._sequencer.values(producer, len(rows))
        stamped = [
            (topic, p, k, v, (*h, (SEQ_HEADER, seq)), ts or now)
            for (p, k, v, h, ts), seq in zip(rows, seqs, strict=True)
        ]
        if self._tenant_key is not None and not mac_required(topic):
            tmacs = tenant_macs_rows(self._tenant_key, stamped)
            stamped = [
                (t, p, k, v, (*h, (TMAC_HEADER, tmac)), ts)
                for (t, p, k, v, h, ts), tmac in zip(stamped, tmacs, strict=True)
            ]
        macs = record_macs_rows(key, stamped)  # one call for all (``auth.record_mac`` each)
        return [
            (p, k, v, (*h, (MAC_HEADER, mac)), ts)
            for (_, p, k, v, h, ts), mac in zip(stamped, macs, strict=True)
        ]

    def _produce_and_wait(
        self,
        topic: str,
        rows: Sequence[tuple[int, bytes | None, bytes | None, Headers, int | None]],
        doing: str,
        one_record_batch: Sequence[int] | int | None = None,
    ) -> list[RecordMetadata]:
        """Send rows with the idempotent (non-transactional) producer; wait for every ack.

        ``one_record_batch`` (the rows' timestamps, or the one they all carry) says the rows are
        one record batch of one partition: their reports are then counted per batch
        (``BatchDelivery``)."""
        producer = self._plain_producer()
        delivery: Delivery | BatchDelivery | None = None
        stamps = one_record_batch
        # a timestamp of 0 is stamped by librdkafka on its own ("now"): not counted per batch
        stamped = stamps != 0 if isinstance(stamps, int) else stamps is not None and all(stamps)
        if one_record_batch is not None and rows and stamped:
            delivery = BatchDelivery(topic, rows[0][0], one_record_batch, len(rows), producer)
        try:
            # inside the try: records produced before a refusal must not leave with a later flush
            delivery = self._send(producer, topic, rows, may_split=False, delivery=delivery)
            return self._await(producer, delivery, doing)
        except HubError:
            # A fresh producer next time, so nothing of this batch can still be sent later.
            self._plain = None
            producer.purge(in_queue=True, in_flight=False)
            raise

    def _produce_atomically(
        self,
        topic: str,
        rows: Sequence[tuple[int, bytes | None, bytes | None, Headers, int | None]],
    ) -> list[RecordMetadata]:
        """Send rows in one Kafka transaction (several partitions: the only atomic way).

        Errors are handled as librdkafka documents (``errors.TxnAction``), within
        ``delivery_timeout_s + timeout_s``: a failed delivery or an abortable error aborts the
        transaction and runs it again (the aborted one is never visible, so nothing is written
        twice); a retriable ``commit_transaction`` is called again; a fatal error (fenced, or
        the coordinator lost the producer) rebuilds the producer with the SAME transactional id,
        whose ``init_transactions`` aborts what the old one left open at once, instead of
        leaving it to block readers (the last stable offset) until ``transaction.timeout.ms``.
        Once ``commit_transaction`` was called, a failure that is not "abort" leaves the
        outcome unknown: the transaction is not run again (it may be committed); the caller
        gets ``Retryable`` saying so (an ``IdempotenceKey`` makes its retry safe)."""
        doing = f"appending atomically to {topic!r}"
        deadline = time.monotonic() + self._delivery_timeout + self._timeout
        delay = 0.05
        attempt = 0
        while True:
            attempt += 1
            try:
                producer = self._atomic_producer()
            except Retryable:  # init_transactions: the coordinator is moving or loading
                if time.monotonic() + delay >= deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            committing = False
            try:
                producer.begin_transaction()
                delivery = self._send(producer, topic, rows, may_split=True)
                self._flush_within(producer, delivery, deadline)
                if delivery.pending:
                    action, failure = TxnAction.ABORT, None  # unacknowledged: abort, run again
                elif delivery.errors:
                    failure = delivery.errors[0]
                    action = delivery_action(failure)
                else:
                    meta = delivery.metadata()
                    committing = True
                    self._commit_within(producer, deadline, doing)
                    try:
                        self._await_visible(topic, _ends(meta))
                    except Retryable as exc:
                        raise Retryable(
                            f"The batch {doing} is committed but not readable yet (an open "
                            f"transaction of another producer hides it: {exc.message}); a "
                            "retry with the same IdempotenceKey returns it, a retry without "
                            "one would store it twice.",
                            code="log_unavailable",
                        ) from exc
                    if attempt > 1:
                        _LOG.info("%s: committed at attempt %d.", doing, attempt)
                    return meta
            except KafkaException as exc:
                action, failure = txn_action(exc), exc.args[0] if exc.args else None
                if committing and action is not TxnAction.ABORT:
                    # commit_transaction failed for good: committed or not, nobody can say
                    # until the next init_transactions settles it. Never run it again.
                    self._drop_atomic(producer)
                    raise Retryable(
                        f"Kafka failed while committing the transaction {doing} ({exc}); the "
                        "outcome is unknown: retry with an IdempotenceKey to avoid duplicates.",
                        code="log_unavailable",
                    ) from exc
            except HubError:
                # _send (local queue), _commit_within (outcome unknown) or _await_visible (the
                # commit is done, readers lag): nothing to run again.
                if not committing:
                    self._abort_or_drop(producer)
                raise
            _LOG.warning("%s: attempt %d failed (%s); %s.", doing, attempt, failure, action.value)
            if action is TxnAction.REBUILD:
                self._drop_atomic(producer)
            else:
                self._abort_or_drop(producer)
            if action is TxnAction.FAIL:
                if isinstance(failure, KafkaError):
                    raise translate(failure, doing)
                raise HubError(f"Kafka failed while {doing} ({failure}).", code="kafka_error")
            if time.monotonic() + delay >= deadline:
                raise Retryable(
                    f"Kafka did not take the transaction while {doing} within "
                    f"{self._delivery_timeout + self._timeout:.0f} s ({attempt} attempts, the "
                    f"last: {failure}); nothing was written: retry later, and check "
                    "'infra/kafka.sh status'.",
                    code="log_unavailable",
                )
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _atomic_producer(self) -> Producer:
        """The transactional producer of atomic appends: ONE transactional id per log instance,
        so that a rebuilt producer fences its predecessor and aborts what it left open."""
        if self._atomic is None:
            self._atomic = self._transactional(
                self._atomic_id, timeout_ms=int(self._atomic_txn_timeout * 1000)
            )
        return self._atomic

    def _drop_atomic(self, producer: Producer) -> None:
        """Forget a producer that cannot go on; the next one (same id) fences it."""
        if self._atomic is producer:
            self._atomic = None
        with suppress(KafkaException, RuntimeError):
            producer.purge(in_queue=True, in_flight=True)

    def _abort_or_drop(self, producer: Producer) -> None:
        """``abort_transaction`` (retried while retriable, for a few seconds); a producer that
        cannot abort is dropped, and the next one's ``init_transactions`` aborts for it."""
        deadline = time.monotonic() + min(5.0, self._timeout)
        while True:
            try:
                producer.abort_transaction(max(0.1, deadline - time.monotonic()))
                return
            except KafkaException as exc:
                if txn_action(exc) is not TxnAction.RETRY or time.monotonic() >= deadline:
                    self._drop_atomic(producer)
                    return
            time.sleep(0.05)

    def _flush_within(
        self, producer: Producer, delivery: Delivery | BatchDelivery, deadline: float
    ) -> None:
        """Wait for the delivery reports, until ``deadline`` at the latest."""
        while delivery.pending and time.monotonic() < deadline:
            producer.flush(min(1.0, max(0.0, deadline - time.monotonic())))

    def _commit_within(self, producer: Producer, deadline: float, doing: str) -> None:
        """``commit_transaction``, called again while it fails retriably (librdkafka resumes
        the commit it started), until ``deadline``: then the outcome is unknown."""
        while True:
            try:
                producer.commit_transaction(
                    max(0.1, min(self._timeout, deadline - time.monotonic()))
                )
                return
            except KafkaException as exc:
                if txn_action(exc) is not TxnAction.RETRY:
                    raise
                if time.monotonic() >= deadline:
                    self._drop_atomic(producer)
                    raise Retryable(
                        f"Kafka did not confirm the commit while {doing} ({exc}); the outcome "
                        "is unknown: retry with an IdempotenceKey to avoid duplicates.",
                        code="log_unavailable",
                    ) from exc
            time.sleep(0.05)

    def _await_visible(self, topic: str, ends: Mapping[int, int]) -> None:
        """Wait until committed records are readable (Kafka writes commit markers async):
        ``ends`` maps each partition to the offset after the last record to see. The last
        stable offset passes it once this transaction's marker is written; waiting for the high
        watermark instead would also wait for other producers' transactions begun later."""

        def visible() -> bool:
            lso = self._watermarks(topic, committed=True)
            return all(lso[p] >= end for p, end in ends.items())

        self._wait(visible, f"the transaction's records in {topic!r} to become readable")

    # -- idempotent appends ------------------------------------------------------------------------
    def _state_key(self, topic: str, producer_id: str) -> bytes:
        return f"{topic}\x00{producer_id}".encode()

    def _states(self) -> dict[tuple[str, str], ProducerState]:
        if self._producer_states is None:
            states: dict[tuple[str, str], ProducerState] = {}
            for r in self._read_internal(PRODUCER_STATE_TOPIC):
                if r.key is None:
                    continue
                topic, _, producer = r.key.decode().partition("\x00")
                if r.value is None:
                    states.pop((topic, producer), None)
                    continue
                try:
                    states[(topic, producer)] = self._decode_state(topic, json.loads(r.value))
                except (ValueError, KeyError, TypeError):
                    _LOG.warning(
                        "Skipping a malformed %s entry at offset %d.",
                        PRODUCER_STATE_TOPIC,
                        r.offset,
                    )
            self._producer_states = states
        return self._producer_states

    @staticmethod
    def _decode_state(topic: str, doc: dict[str, Any]) -> ProducerState:
        def meta(rows: list[list[int]]) -> list[RecordMetadata]:
            return [RecordMetadata(topic, p, o, t) for p, o, t in rows]

        if doc["kind"] == "done":
            return ProducerState(doc["seq"], meta(doc["meta"]))
        prev = doc["prev"]
        return ProducerState(prev["seq"], meta(prev["meta"]), intent=doc)

    @staticmethod
    def _encode_meta(meta: Sequence[RecordMetadata]) -> list[list[int]]:
        return [[m.partition, m.offset, m.timestamp_ms] for m in meta]

    def _append_idempotent(self, batch: PreparedBatch, key: IdempotenceKey) -> list[RecordMetadata]:
        """Append unless this retries the producer's last batch (see the module docstring).

        1. Intent in ``_hub_producer_state`` (awaited). 2. The batch, each record marked.
        3. Done in ``_hub_producer_state`` (not awaited).
        """
        topic, producer = batch.topic, key.producer_id
        self._ensure_internal_topics()
        states = self._states()
        state = states.get((topic, producer))
        if state is not None and state.intent is not None:
            state = self._recover(topic, producer, state)
        last = -1 if state is None else state.seq
        if state is not None and key.sequence == last:
            self._check_retry(batch, key, state)
            return list(state.meta)
        if key.sequence != last + 1:
            expected = "0 (a new producer starts at 0)" if state is None else f"{last + 1}"
            raise OutOfOrderSequence(
                f"Producer {producer!r} sent sequence {key.sequence} to topic {topic!r}, but the "
                f"next expected is {expected} (a retry may repeat {last}); resend from the "
                "expected sequence or use a new producer id."
            )
        touched = sorted(set(batch.partitions))
        start = self._watermarks(topic, committed=True)
        intent = {
            "kind": "intent",
            "seq": key.sequence,
            "start": {str(p): start[p] for p in touched},
            "parts": batch.partitions,
            "prev": {
                "seq": last,
                "meta": self._encode_meta(state.meta) if state is not None else [],
            },
        }
        state_key = self._state_key(topic, producer)
        doing = f"recording the intent of producer {producer!r} on {topic!r}"
        self._produce_and_wait(  # 1.
            PRODUCER_STATE_TOPIC, [(0, state_key, json.dumps(intent).encode(), (), None)], doing
        )
        states[(topic, producer)] = self._decode_state(topic, intent)
        marker = f"{key.sequence}:{producer}".encode()
        meta = self._write(batch, marker)  # 2.
        done = {"kind": "done", "seq": key.sequence, "meta": self._encode_meta(meta)}
        states[(topic, producer)] = ProducerState(key.sequence, meta)
        ((_, _, done_value, done_headers, done_ts),) = self._seal_maybe(
            PRODUCER_STATE_TOPIC,
            [(0, state_key, json.dumps(done).encode(), (), None)],
            self._plain_producer(),
        )
        self._plain_producer().produce(  # 3.
            self._wire(PRODUCER_STATE_TOPIC),
            value=done_value,
            key=state_key,
            partition=0,
            headers=list(done_headers) or None,
            timestamp=done_ts or 0,
        )
        self._plain_producer().poll(0)
        return meta

    def _recover(self, topic: str, producer: str, state: ProducerState) -> ProducerState:
        """Settle an intent without a done entry: did its batch land?

        Only once every transaction that could hold the batch is decided: a read_committed scan
        stops at the last stable offset, so an open transaction (ours whose commit is not yet
        written, or a crashed process's, until the coordinator aborts it) would hide the batch,
        wholly (taken for "not stored": appended again, a duplicate) or partly. So first wait
        until the last stable offset of every touched partition reaches its high watermark as
        it is now (the batch, if written, lies below it); raise ``Retryable`` if it does not."""
        intent = state.intent
        assert intent is not None
        touched = {int(p) for p in intent["start"]}
        high = self._watermarks(topic)
        try:
            self._wait(
                lambda: all(self._watermarks(topic, committed=True)[p] >= high[p] for p in touched),
                f"the open transactions on {topic!r} partitions {sorted(touched)} to end",
            )
        except Retryable as exc:
            raise Retryable(
                f"Cannot tell yet whether batch {intent['seq']} of producer {producer!r} on "
                f"{topic!r} was stored: {exc.message} Retry later (nothing was appended).",
                code="log_unavailable",
            ) from exc
        marker = f"{intent['seq']}:{producer}".encode()
        found: dict[int, list[StoredRecord]] = {}
        for p_text, start in intent["start"].items():
            p = int(p_text)
            found[p] = [
                r
                for r in self._scan_raw(topic, p, int(start))
                if r.headers and r.headers[-1] == (IDEM_HEADER, marker)
            ]
        parts: list[int] = intent["parts"]
        total = sum(len(v) for v in found.values())
        if total == 0:
            settled = ProducerState(state.seq, state.meta)
        elif total == len(parts):
            cursor = dict.fromkeys(found, 0)
            meta = []
            for p in parts:
                r = found[p][cursor[p]]
                cursor[p] += 1
                meta.append(RecordMetadata(topic, p, r.offset, r.timestamp_ms))
            settled = ProducerState(intent["seq"], meta)
        else:
            raise HubError(
                f"Batch {intent['seq']} of producer {producer!r} on topic {topic!r} is only "
                f"partly stored ({total} of {len(parts)} records); the log is inconsistent.",
                code="log_inconsistent",
            )
        _LOG.info(
            "Settled batch %d of producer %r on %r from its intent: %s.",
            intent["seq"],
            producer,
            topic,
            "stored" if total else "not stored",
        )
        self._states()[(topic, producer)] = settled
        return settled

    def _check_retry(self, batch: PreparedBatch, key: IdempotenceKey, state: ProducerState) -> None:
        stored = [m.partition for m in state.meta]
        if stored != batch.partitions:
            raise OutOfOrderSequence(
                f"Producer {key.producer_id!r} reused sequence {key.sequence} on topic "
                f"{batch.topic!r} for a different batch ({len(batch.records)} records) than the "
                f"stored one ({len(stored)} records, or other partitions); a retry must resend "
                "the same batch."
            )

    # -- transactions ------------------------------------------------------------------------------
    def transaction(self, transactional_id: str) -> AbstractContextManager[Transaction]:
        """A Kafka transaction of the producer ``transactional.id=transactional_id``."""
        self._check_open()
        _check_id(transactional_id, "transactional id")
        return self._transaction(transactional_id)

    @contextmanager
    def _transaction(self, transactional_id: str) -> Iterator[Transaction]:
        txn = KafkaTransaction(self, transactional_id)
        try:
            yield txn
        except BaseException:
            if txn.state == "open":
                txn.abort()
            raise
        if txn.state == "open":  # the block may have committed or aborted explicitly
            txn.commit()

    # -- reading -----------------------------------------------------------------------------------
    def _watermarks(self, topic: str, *, committed: bool = False) -> dict[int, int]:
        """Per partition: the high watermark, or with ``committed`` the last stable offset.

        A one-partition topic (the hub's state topics: keys, ``_schemas``, decisions, whose
        folds ask on every request) is asked through a consumer's ListOffsets: the same request
        to the same broker, answered in the calling thread. The admin client's answer comes as
        a future per partition, completed by Python callbacks on its background thread: twice
        the CPU (0.16 against 0.09 ms a call, s22) and the GIL taken once more a call."""
        n = self._info(topic).partitions
        level = IsolationLevel.READ_COMMITTED if committed else IsolationLevel.READ_UNCOMMITTED
        if n != 1:
            return self._list_offsets(topic, n, _LATEST, level)
        tp = KafkaTP(self._wire(topic), 0)

        def call() -> dict[int, int]:
            consumer = self._offsets_consumer(level)
            try:
                return {0: consumer.get_watermark_offsets(tp, self._timeout, cached=False)[1]}
            except KafkaException as exc:
                err = kafka_error(exc)
                if err is not None and err.code() in _LEADER_GONE_FROM_CACHE:
                    self._refresh_topic_metadata(consumer, tp.topic, err)
                raise

        return self._retrying(
            call,
            f"listing the offsets of {topic!r}",
            transient=_NO_LEADER_YET | _LEADER_GONE_FROM_CACHE,
        )

    def _refresh_topic_metadata(self, consumer: Consumer, wire: str, err: KafkaError) -> None:
        """Ask the brokers for ``wire``'s metadata through ``consumer``: the answer replaces the
        topic's entry in the client's cache (``_LEADER_GONE_FROM_CACHE``). In CI's broker-kill
        failover the ledger's sync failed for a minute and more on every turn without it."""
        _LOG.warning("refreshing the metadata of %s after %s", wire, err.name())
        try:
            consumer.list_topics(wire, timeout=self._timeout)
        except KafkaException as exc:  # the retry that follows names what is wrong
            _LOG.warning("refreshing the metadata of %s failed: %s", wire, exc)

    def _offsets_consumer(self, level: IsolationLevel) -> Consumer:
        """The consumer that asks ListOffsets at ``level`` (its ``isolation.level`` is what the
        request carries); it never subscribes, is never assigned and never fetches."""
        with self._offsets_lock:
            self._check_open()
            consumer = self._offsets_consumers.get(level)
            if consumer is None:
                committed = level == IsolationLevel.READ_COMMITTED
                consumer = Consumer(
                    {
                        **self._base,
                        "group.id": f"hub.offsets.{uuid.uuid4().hex}",  # required; never joined
                        "enable.auto.commit": False,
                        "isolation.level": "read_committed" if committed else "read_uncommitted",
                    }
                )
                self._offsets_consumers[level] = consumer
            return consumer

    def _list_offsets(
        self, topic: str, n: int, spec: OffsetSpec, level: IsolationLevel
    ) -> dict[int, int]:
        request = {KafkaTP(self._wire(topic), p): spec for p in range(n)}

        def call() -> dict[int, int]:
            futures = self._admin.list_offsets(
                request, isolation_level=level, request_timeout=self._timeout
            )
            return {
                tp.partition: f.result(timeout=self._timeout).offset for tp, f in futures.items()
            }

        # librdkafka answers ``_NOENT`` "Failed to query partition leaders: No leaders found"
        # (not marked retriable) while the client's metadata has no leader for a partition yet:
        # seen on about half the ListOffsets sent right after CreateTopics on one broker, and
        # it failed `hub init` on the three-broker cluster in CI. A missing topic is another
        # error (UNKNOWN_TOPIC_OR_PART), so this one is waited out within the timeout.
        return self._retrying(call, f"listing the offsets of {topic!r}", transient=_NO_LEADER_YET)

    def _retrying(
        self, call: Callable[[], _T], doing: str, transient: frozenset[int] = frozenset()
    ) -> _T:
        """``call()``, retried on retriable Kafka errors (leader moves, coordinator loading)
        and on the ``transient`` codes the caller knows to pass in its context."""
        deadline = time.monotonic() + self._timeout
        delay = 0.01
        stale = 0  # answers in a row that say the client's metadata is stale
        while True:
            try:
                return call()
            except TimeoutError as exc:
                raise translate(exc, doing) from exc
            except KafkaException as exc:
                err = kafka_error(exc)
                retriable = err is not None and (
                    err.retriable() or err.code() in RETRYABLE_CODES or err.code() in transient
                )
                if not retriable or time.monotonic() + delay >= deadline:
                    raise translate(exc, doing) from exc
                if err is not None and (
                    err.code() in _STALE_METADATA_CODES or err.code() in transient
                ):
                    stale += 1
                    if stale >= 2:
                        self._renew_admin(doing, err)
                        stale = 0
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _renew_admin(self, doing: str, err: KafkaError) -> None:
        """A new admin client, with fresh metadata. After a broker restart librdkafka's admin
        client was seen sending ListOffsets with a stale leader epoch for minutes (every answer
        FENCED_LEADER_EPOCH), stalling every append behind it; a new client asks again."""
        _LOG.warning("renewing the Kafka admin client after %s while %s", err.name(), doing)
        # The old client is kept, not dropped: destroying a librdkafka handle while one of its
        # requests is still in flight (a ListOffsets that timed out on our side) fails
        # librdkafka's assertion `eonce->refcnt > 0` in rd_kafka_enq_once_del_source_return and
        # aborts the process (seen in CI after a broker kill). Retired clients are released once
        # their requests must have ended (twice the request timeout, checked at the next renewal).
        now = time.monotonic()
        self._retired_admins = [
            (t, a) for t, a in self._retired_admins if now - t < 2 * self._timeout + 30
        ]
        self._retired_admins.append((now, self._admin))
        self._admin = AdminClient(dict(self._base))

    def end_offsets(self, topic: str) -> dict[int, int]:
        self._check_open()
        return dict(sorted(self._watermarks(topic).items()))

    def tail_quiet(self, topic: str, positions: Mapping[int, int]) -> bool:
        """One-partition topics: the topic's tail watcher (``tailwatch``, started by the
        first call) learnt of no record committed at or past ``positions[0]``. Others: False."""
        if self._closed or set(positions) != {0}:
            return False
        try:
            if self._info(topic).partitions != 1:
                return False
        except TopicNotFound:
            return False
        return self._tail_watches.quiet(self._wire(topic), positions[0])

    def all_end_offsets(self) -> dict[str, dict[int, int]]:
        """Two round trips for every topic: the metadata (no configs: ``topics()`` also asks
        for every topic's config, which a ledger sync never reads) and one ListOffsets for all
        their partitions (``end_offsets`` per topic is a request each). The ledger's sync asked
        both on every turn: in s21 27% of a registering server's samples."""
        self._check_open()
        counts = self._partition_counts()
        request = {KafkaTP(self._wire(n), p): _LATEST for n, k in counts.items() for p in range(k)}
        if not request:
            return {}

        def call() -> dict[str, dict[int, int]]:
            futures = self._admin.list_offsets(
                request,
                isolation_level=IsolationLevel.READ_UNCOMMITTED,
                request_timeout=self._timeout,
            )
            ends: dict[str, dict[int, int]] = {n: {} for n in counts}
            for tp, f in futures.items():
                ends[self._unwire(tp.topic)][tp.partition] = f.result(timeout=self._timeout).offset
            return {n: dict(sorted(parts.items())) for n, parts in ends.items()}

        # as in ``_list_offsets``: a partition without a leader yet is waited out
        return self._retrying(call, "listing the end offsets of every topic", _NO_LEADER_YET)

    def stable_offsets(self, topic: str) -> dict[int, int]:
        self._check_open()
        return dict(sorted(self._watermarks(topic, committed=True).items()))

    def beginning_offsets(self, topic: str) -> dict[int, int]:
        self._check_open()
        n = self._info(topic).partitions
        offsets = self._list_offsets(topic, n, _EARLIEST, IsolationLevel.READ_COMMITTED)
        return dict(sorted(offsets.items()))

    def delete_records_before(self, topic: str, partition: int, offset: int) -> int:
        """Kafka's DeleteRecords: raise the partition's log start offset; the new start."""
        self._check_open()
        info = self._info(topic)
        if type(partition) is not int or not 0 <= partition < info.partitions:
            raise InvalidInput(
                f"Partition {partition!r} is out of range for topic {topic!r}, which has "
                f"partitions 0..{info.partitions - 1}.",
                code="partition_out_of_range",
            )
        _check_offset(offset, f"offset to delete records before in {topic!r}")
        end = self._watermarks(topic)[partition]
        if offset > end:
            raise InvalidInput(
                f"Cannot delete records of {topic!r} partition {partition} before offset "
                f"{offset}: the end offset is {end}; pass an offset <= {end}.",
                code="offset_out_of_range",
            )
        start = self._list_offsets(topic, info.partitions, _EARLIEST, IsolationLevel.READ_COMMITTED)
        if offset <= start[partition]:  # Kafka would answer the same; skip the round trip
            return start[partition]
        request = [KafkaTP(self._wire(topic), partition, offset)]

        def call() -> int:
            futures = self._admin.delete_records(
                request, request_timeout=self._timeout, operation_timeout=self._timeout
            )
            (future,) = futures.values()
            return int(future.result(timeout=self._timeout).low_watermark)

        moved = self._retrying(call, f"deleting records of {topic!r} partition {partition}")
        with self._lock:
            self._drop_kept_reader()  # it may hold records fetched before the delete
        self._tail_watches.drop({self._wire(topic)})  # its offset may be gone
        return moved

    def _check_partition(self, info: TopicInfo, partition: int) -> None:
        if type(partition) is not int or not 0 <= partition < info.partitions:
            raise InvalidInput(
                f"Partition {partition!r} is out of range for topic {info.name!r}, which has "
                f"partitions 0..{info.partitions - 1}.",
                code="partition_out_of_range",
            )

    def read(
        self, topic: str, partition: int, offset: int, max_records: int = 1000
    ) -> list[StoredRecord]:
        """Up to ``max_records`` committed records from ``offset`` on, in offset order.

        Offsets of commit markers and aborted records are skipped, so offsets returned may
        have gaps around transactional appends. An ``offset`` below the partition's start (its
        records deleted) reads from the start.
        """
        self._check_open()
        self._check_partition(self._info(topic), partition)
        _check_offset(offset, f"offset to read in {topic!r}")
        if type(max_records) is not int or max_records < 1:
            raise InvalidInput(f"max_records={max_records!r} is invalid: pass an int >= 1.")
        records, _, _ = self._read_raw(topic, partition, offset, max_records)
        return [strip_idem(r) for r in records]

    def scan(
        self, topic: str, partition: int, start: int = 0, batch: int = 10_000
    ) -> Iterator[StoredRecord]:
        """Every committed record of a partition from ``start`` to the end offset seen at the
        first read; from the partition's start if ``start`` was deleted.

        Goes by the position each read reached, not by the records it returned: a read that
        returns nothing (only markers or aborted records left, or records deleted meanwhile) is
        not taken for the end; the scan ends at the end offset or where a read found the end of
        what is committed. A read that cannot reach either raises ``Retryable``.
        """
        self._check_open()
        self._check_partition(self._info(topic), partition)
        _check_offset(start, f"offset to scan {topic!r} from")
        if type(batch) is not int or batch < 1:
            raise InvalidInput(f"batch={batch!r} is invalid: pass an int >= 1.")
        return (strip_idem(r) for r in self._scan_raw(topic, partition, start, batch))

    def _scan_raw(
        self, topic: str, partition: int, start: int, batch: int = 10_000, *, verify: bool = True
    ) -> Iterator[StoredRecord]:
        end = self._watermarks(topic)[partition]
        offset = start
        while offset < end:
            chunk, offset, at_end = self._read_raw(
                topic, partition, offset, min(batch, end - offset), verify=verify
            )
            yield from chunk
            if at_end and (offset >= end or not self._stable_past(topic, partition, offset)):
                return  # the end of what is committed (a transaction is still open)

    def _stable_past(self, topic: str, partition: int, offset: int) -> bool:
        """Whether the last stable offset moves past ``offset`` within ``MARKER_WAIT_S``.

        A transaction's end returns to its producer once the coordinator has decided; its
        markers reach the partitions just after. Until then the last stable offset stays at
        the transaction's first record, so a scan right after an abort (or commit) followed by
        more appends would stop short of records that are already committed. A transaction
        that is really still open keeps it there: the scan then ends at what is committed."""
        deadline = time.monotonic() + MARKER_WAIT_S
        while True:
            if self._watermarks(topic, committed=True)[partition] > offset:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def _read_raw(
        self, topic: str, partition: int, offset: int, max_records: int, *, verify: bool = True
    ) -> tuple[list[StoredRecord], int, bool]:
        """Committed records from ``offset``, with the hub's own headers still on them, the
        offset to go on from, and whether the read reached the end of what is committed (the
        last stable offset it saw; everything below the offset returned is then read).

        The reader never lets librdkafka move its position silently (``auto.offset.reset`` is
        ``error``): an offset below the partition's start (deleted by retention, possibly
        while reading) answers "out of range"; the read then looks up the start and goes on
        from there. An end-of-partition event below the last stable offset found at the start
        of the read (seen after broker restarts) does not end the read.
        """
        with self._lock:
            end = self._watermarks(topic, committed=True)[partition]
            if offset >= end:
                return [], offset, True
            if verify and topic != NAMESPACE_TOPIC:
                self.bind_namespace()  # before the reader is assigned (it reads the marker)
            doing = f"reading {topic!r} partition {partition} from offset {offset}"
            wire = self._wire(topic)
            reader = self._readers.take(wire, partition, offset)
            try:
                return self._read_on(
                    reader, topic, partition, offset, max_records, end, verify, doing
                )
            finally:
                self._readers.give_back(reader)

    def _read_on(
        self,
        reader: KeptReader,
        topic: str,
        partition: int,
        offset: int,
        max_records: int,
        end: int,
        verify: bool,
        doing: str,
    ) -> tuple[list[StoredRecord], int, bool]:
        """``_read_raw`` on ``reader`` (under ``_lock``): goes on from its kept assignment when
        it stands at ``offset``, and keeps it where this read ended when it can."""
        wire = self._wire(topic)
        at, reader.at = reader.at, None
        kept = at is not None and at[:3] == (wire, partition, offset)
        if kept and at is not None and at[3] >= end:
            # only markers between the offset asked and where the consumer stands, and
            # nothing committed past it: the end-of-partition event came already
            reader.at = at
            return [], end, True
        try:
            try:
                if not kept:
                    reader.assign(wire, partition, offset)
                mark = reader.assigns
                records, position, at_end, reached = self._consume(
                    reader, topic, partition, offset, max_records, end, verify, doing
                )
            except (KafkaException, HubError):
                if not kept:
                    raise
                # an error queued on the kept assignment (the topic deleted and created
                # again, a broker restart): read again from a new assignment
                reader.consumer.unassign()
                reader.assign(wire, partition, offset)
                mark = reader.assigns
                records, position, at_end, reached = self._consume(
                    reader, topic, partition, offset, max_records, end, verify, doing
                )
        except KafkaException as exc:
            reader.unassign()
            raise translate(exc, doing) from exc
        except BaseException:
            reader.unassign()
            raise
        if reader.assigns != mark:
            pass  # the read restarted (records deleted under it): it said where
        elif reached is not None:  # every message taken was handled: keep the reader
            next_offset = records[-1].offset + 1 if records else offset
            reader.at = (wire, partition, next_offset, reached)
            reader.used = time.monotonic()
            if self._reader_reaper is None:
                self._reader_reaper = threading.Thread(
                    target=self._drop_idle_reader, name="hub-kafka-reader-idle", daemon=True
                )
                self._reader_reaper.start()
        else:
            reader.unassign()
        return records, position, at_end

    def _drop_idle_reader(self) -> None:
        """The reaper thread: drops kept assignments unused for ``READER_IDLE_S`` (they
        would poll the broker every ``fetch.wait.max.ms`` while the hub is idle); ends at
        close."""
        while not self._closed:
            time.sleep(READER_IDLE_S / 2)
            if self._lock.acquire(timeout=READER_IDLE_S):
                try:
                    if not self._closed:
                        self._readers.drop_idle(time.monotonic(), READER_IDLE_S)
                finally:
                    self._lock.release()

    def _drop_kept_reader(self) -> None:
        """Under ``_lock``: the next reads assign their readers anew (records they fetched
        ahead are dropped)."""
        self._readers.drop_all()

    def _consume(
        self,
        reader: KeptReader,
        topic: str,
        partition: int,
        offset: int,
        max_records: int,
        end: int,
        verify: bool,
        doing: str,
    ) -> tuple[list[StoredRecord], int, bool, int | None]:
        """``_read_raw``'s consume loop on the assigned reader; the fourth value: the offset
        the consumer reached when no message taken from librdkafka was left unhandled and no
        restart moved the reader (its assignment may be kept for a read from the offset after
        the last record), else None."""
        out: list[StoredRecord] = []
        mac_key = self._mac_key if verify else None
        consumer = reader.consumer

        def checked(rs: list[StoredRecord]) -> list[StoredRecord]:
            # every record's MAC checked in one call (auth.verify_records); one
            # without a valid MAC on a hub topic is read only if a seal vouches for it
            if mac_key is None:
                return rs
            read, seqs = verify_run(mac_key, rs, self._vouch, self._legacy)
            return self._unreplayed(topic, partition, offset, read, seqs)  # copies skipped

        position = offset  # the next offset this read expects
        restarted = waited = False
        deadline = time.monotonic() + self._timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Retryable(
                    f"Kafka did not deliver the records while {doing} within "
                    f"{self._timeout:.0f} s (got up to offset {position}, the end is "
                    f"{end}); retry later.",
                    code="log_unavailable",
                )
            # consume() waits until it has ``num`` messages or the timeout: ask for no
            # more than the offsets left below the end. Where markers or aborted records
            # take offsets there are fewer records (a read from the offset after a
            # transaction's last record starts at its marker): the end-of-partition event
            # fills the count by one only, so each wait is short (5 ms), not 100 ms; the
            # first takes what the consumer holds already (a kept assignment's records)
            num = min(max_records - len(out), end - position, 10_000)
            msgs = consumer.consume(max(num, 1), min(left, 0.005) if waited else 0)
            waited = True
            last = len(msgs) - 1
            # the plain records first, in one call (batch.stored_run); the loop below takes
            # any message that ends the run (an event, a skipped offset) and the rest
            most = max(0, max_records - len(out))
            run, k = stored_run(topic, partition, msgs, 0, position, end, most)
            if run:
                out += run
                position = run[-1].offset + 1
                reached = position if k - 1 == last and not restarted else None
                if position >= end:
                    if k == last and not restarted:  # the run ended before the last message
                        reached = _eof_at(msgs[k], position)
                    return checked(out), position, True, reached
                if len(out) >= max_records:
                    return checked(out), position, False, reached
            for i, msg in enumerate(islice(msgs, k, None), k):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        eof = msg.offset() or 0
                        if eof >= end:
                            clean = i == last and not restarted
                            return checked(out), max(position, end), True, eof if clean else None
                        continue  # an early end-of-partition: keep reading
                    if err.code() in _OUT_OF_RANGE_CODES:
                        position = self._restart(reader, topic, partition, position, err)
                        restarted = True
                        continue
                    raise translate(err, doing)
                o = msg.offset()
                if o is None or o < position:
                    continue
                r = stored_record(topic, partition, o, msg)
                out.append(r)
                position = o + 1
                reached = position if i == last and not restarted else None
                if position >= end:
                    if i + 1 == last and not restarted:
                        reached = _eof_at(msgs[last], position)
                    return checked(out), position, True, reached
                if len(out) >= max_records:
                    return checked(out), position, False, reached

    @property
    def replays_skipped(self) -> int:
        """Copies the readers of this log skipped as replays (``sequence``) so far, each
        counted once however many readers skip it."""
        return self._replays_skipped

    def on_replay(self, count: Callable[[str], None] | None) -> None:
        """Call ``count(topic)`` for every record a reader skips as a replay (the composition
        root counts them in a metric)."""
        self._on_replay = count

    def _unreplayed(
        self,
        topic: str,
        partition: int,
        start: int,
        read: Sequence[StoredRecord],
        seqs: Sequence[bytes | None],
    ) -> list[StoredRecord]:
        """``read`` (``verify_run``'s records, from ``start`` on, the sequence headers off)
        without the copies of records already read (``sequence.PartitionSequence``); ``seqs``:
        each one's genuine sequence (``verify_run``: only a record whose MAC verified has one)."""
        state = self._sequence_at(topic, partition, start)
        out: list[StoredRecord] = []
        for v, seq in zip(read, seqs, strict=True):
            if state.admit(v.offset, seq):
                out.append(v)
                continue
            assert seq is not None
            if (topic, partition, v.offset) in self._replays_named:
                continue  # counted and logged once, not once per reader
            if len(self._replays_named) >= 10_000:
                self._replays_named.clear()
            self._replays_named.add((topic, partition, v.offset))
            self._replays_skipped += 1
            _LOG.warning(
                "Skipped the Kafka record at %r partition %d offset %d: %s",
                topic,
                partition,
                v.offset,
                replay_skipped_what(seq[:WRITER_BYTES], int.from_bytes(seq[WRITER_BYTES:], "big")),
            )
            if self._on_replay is not None:
                self._on_replay(topic)
        self._snapshot_sequence(topic, partition, state)
        return out

    def _sequence_at(self, topic: str, partition: int, start: int) -> PartitionSequence:
        """The readers' state of a partition for a read from ``start``: a cursor that covers
        it, else the nearest cursor or snapshot below it brought up to ``start``
        (``_learn``)."""
        where = (topic, partition)
        cursors = self._sequences.setdefault(where, [])
        for i, c in enumerate(cursors):
            if c.covers(start):
                cursors.insert(0, cursors.pop(i))
                return c
        below = [c for c in cursors if c.high <= start]
        if below:  # a reader that went on past what it read: the same state, brought up
            state = max(below, key=lambda c: c.high)
            cursors.remove(state)
        else:
            snaps = [s for s in self._sequence_snapshots.get(where, []) if s.high <= start]
            state = max(snaps, key=lambda c: c.high).copy() if snaps else PartitionSequence()
        self._learn(topic, partition, state, start)
        cursors.insert(0, state)
        del cursors[SEQUENCE_CURSORS:]
        return state

    def _learn(self, topic: str, partition: int, state: PartitionSequence, end: int) -> None:
        """Bring ``state`` up to ``end``: read the partition as stored from ``state.high``
        (a nested read, as the seals' are) and take every record's genuine sequence."""
        key = self._mac_key
        assert key is not None
        at = state.high
        while at < end:
            chunk, position, at_end = self._read_raw(
                topic, partition, at, min(10_000, end - at), verify=False
            )
            chunk = [r for r in chunk if r.offset < end]
            for r, seq in zip(chunk, genuine_sequences(key, chunk), strict=True):
                state.admit(r.offset, seq)
            self._snapshot_sequence(topic, partition, state)
            if position <= at or at_end:
                break
            at = position
        state.high = max(state.high, end)

    def _snapshot_sequence(self, topic: str, partition: int, state: PartitionSequence) -> None:
        """Keep a copy of ``state`` once it passes the next multiple of
        ``SEQUENCE_SNAPSHOT_EVERY`` (a read from an earlier offset starts from one)."""
        snaps = self._sequence_snapshots.setdefault((topic, partition), [])
        last = snaps[-1].high if snaps else 0
        if state.high // SEQUENCE_SNAPSHOT_EVERY > last // SEQUENCE_SNAPSHOT_EVERY:
            snaps.append(state.copy())

    def _restart(
        self, reader: KeptReader, topic: str, partition: int, position: int, err: KafkaError
    ) -> int:
        """After "offset out of range": the partition's start when ``position`` lies below it
        (those records were deleted), assigned to the reader; otherwise the error."""
        n = self._info(topic).partitions
        start = self._list_offsets(topic, n, _EARLIEST, IsolationLevel.READ_COMMITTED)[partition]
        if position >= start:
            raise translate(err, f"reading {topic!r} partition {partition} from offset {position}")
        reader.assign(self._wire(topic), partition, start)
        return start

    # -- consumer groups ---------------------------------------------------------------------------
    def _offsets_request(self, group: str, offsets: Mapping[TopicPartition, int]) -> list[KafkaTP]:
        _check_id(group, "consumer group")
        tps = []
        for tp, offset in offsets.items():
            if not isinstance(tp, TopicPartition):
                raise InvalidInput(f"Offsets must be keyed by TopicPartition, got {tp!r}.")
            info = self._info(tp.topic)
            if type(tp.partition) is not int or not 0 <= tp.partition < info.partitions:
                raise InvalidInput(
                    f"Partition {tp.partition!r} is out of range for topic {tp.topic!r}, which "
                    f"has partitions 0..{info.partitions - 1}.",
                    code="partition_out_of_range",
                )
            _check_offset(offset, f"offset to commit for {tp.topic!r}/{tp.partition}")
            tps.append(KafkaTP(self._wire(tp.topic), tp.partition, offset))
        return tps

    def commit_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        self._check_open()
        tps = self._offsets_request(group, offsets)
        if not tps:
            return
        doing = f"committing offsets of group {group!r}"
        try:
            futures = self._admin.alter_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group, tps)], request_timeout=self._timeout
            )
            result = futures[group].result(timeout=self._timeout)
        except (KafkaException, TimeoutError) as exc:
            err = kafka_error(exc)
            if err is not None and err.code() == KafkaError.UNKNOWN_MEMBER_ID:
                raise Conflict(
                    f"Consumer group {group!r} has active members, so its offsets cannot be "
                    "set from outside; commit from its consumers or stop them first.",
                    code="group_active",
                ) from exc
            raise translate(exc, doing) from exc
        for tp in result.topic_partitions or []:
            if tp.error is not None:
                raise translate(tp.error, doing)

    def committed(self, group: str, topic: str) -> dict[int, int]:
        self._check_open()
        _check_id(group, "consumer group")
        n = self._info(topic).partitions
        return self._committed(group, topic, n)

    def _committed(self, group: str, topic: str, n: int) -> dict[int, int]:
        request = ConsumerGroupTopicPartitions(
            group, [KafkaTP(self._wire(topic), p) for p in range(n)]
        )
        doing = f"reading the offsets of group {group!r} on {topic!r}"
        try:
            futures = self._admin.list_consumer_group_offsets(
                [request], request_timeout=self._timeout
            )
            result = futures[group].result(timeout=self._timeout)
        except (KafkaException, TimeoutError) as exc:
            err = kafka_error(exc)
            if err is not None and err.code() == KafkaError.GROUP_ID_NOT_FOUND:
                return {}
            raise translate(exc, doing) from exc
        out = {}
        for tp in result.topic_partitions or []:
            if tp.error is not None:
                raise translate(tp.error, doing)
            if tp.offset >= 0:
                out[tp.partition] = tp.offset
        return dict(sorted(out.items()))

    # -- helpers -----------------------------------------------------------------------------------
    def _wait(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self._timeout
        delay = 0.005
        while not condition():
            if time.monotonic() >= deadline:
                raise Retryable(
                    f"Timed out after {self._timeout:.0f} s waiting for {what}; retry later.",
                    code="log_unavailable",
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    # -- lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        with self._txn_lock, self._lock:
            if self._closed:
                return
            self._closed = True
            for producer in (self._plain, self._atomic, *self._txn_producers.values()):
                if producer is not None:
                    producer.flush(min(self._timeout, 10.0))
            self._readers.close()
            self._tail_watches.close()
            for consumer in (*self._group_consumers.values(), *self._uncommitted_pool):
                consumer.close()
            self._uncommitted_pool.clear()
            self._plain = self._atomic = None
            self._txn_producers.clear()
            self._group_consumers.clear()
        with self._offsets_lock:
            # not closed here: a call in another thread may be inside one; each is freed when
            # its last call returns (a consumer that never joined leaves no group to leave)
            self._offsets_consumers.clear()

    def __enter__(self) -> KafkaEventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        prefix = f", topic_prefix={self._prefix!r}" if self._prefix else ""
        return f"KafkaEventLog({self._servers!r}{prefix})"


def _with_mac_column(
    batch: ColumnBatch, name: str, macs_of: Callable[..., Any], key: bytes, topic: str, ts: int
) -> ColumnBatch:
    """``batch`` with one more header column ``name``: each record's MAC by ``macs_of``
    (``record_macs`` or ``tenant_macs``) under ``key`` over its partition-0 record as written
    at ``ts``, the header columns before it included."""
    macs = macs_of(
        key, topic, 0, ts, batch.keys, batch.values, batch.header_names, batch.header_columns
    )
    return replace(
        batch,
        header_names=(*batch.header_names, name),
        header_columns=(*batch.header_columns, macs),
    )
