"""The EventLog on Apache Kafka (confluent-kafka / librdkafka).

- ``log``: ``KafkaEventLog``, the adapter (topics, atomic and idempotent appends, reads,
  namespaces, limits: its docstring);
- ``batch``: validated appends, idempotent producer state, delivery reports, stored records;
- ``errors``: librdkafka errors translated into the hub's errors;
- ``transactions``: ``KafkaTransaction``, one Kafka transaction.
"""

from __future__ import annotations

from adapters.kafka_log.log import KafkaEventLog

__all__ = ["KafkaEventLog"]
